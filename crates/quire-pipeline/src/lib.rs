//! quire's pipelines: the `.quire/ci.toml` format and its validation
//! ([`pipeline`]), the order and conditions jobs run in ([`plan`]), and an
//! executor that runs steps as local processes, streams their output into
//! CRI-format log files and reports what happened as [`events`].
//!
//! Nothing here knows about git hooks or the store's lifecycle; the caller
//! hands in a workspace, a ref, and a sink for events. Every process a step
//! starts is contained ([`contain`]: a cgroup per job, or the worker as
//! their subreaper) and ended with its job.

// The one crate that needs unsafe (the workspace denies it): raw system
// calls between fork and exec, namespaces, the sandbox. Each unsafe block
// says why it is sound (`// SAFETY:`, which clippy requires).
#![allow(unsafe_code)]

pub mod beneath;
pub mod cgroup;
pub mod contain;
pub mod events;
pub mod exec;
mod log;
pub mod netns;
pub mod pidns;
pub mod pipeline;
pub mod plan;
pub mod processes;

pub use log::{MIN_SECRET_LEN, Redactor};
pub use pipeline::{Diagnostic, Job, Limits, Pipeline, Problems, Step};
pub use plan::RefKind;
