//! quire's pipelines: the `.quire/ci.toml` format and its validation
//! ([`pipeline`]), and the order and conditions jobs run in ([`plan`]):
//! what the hook needs to record a run, and nothing that runs it (that is
//! quire-exec).

pub mod pipeline;
pub mod plan;
pub mod resources;

pub use pipeline::{Diagnostic, Job, Limits, Pipeline, Problems, Resources, Step, WorkspaceRefs};
pub use quire_model::refs::{RefGlob, RefName};
