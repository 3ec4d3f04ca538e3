//! quire's executor: runs the steps of a plan ([`quire_pipeline::plan`])
//! as local processes, streams their output into CRI-format log files and
//! reports what happened as [`events`].
//!
//! Nothing here knows about git hooks or the store's lifecycle; the caller
//! hands in a workspace, a ref, and a sink for events. Every process a step
//! starts is contained ([`contain`]: a cgroup per job, or the worker as
//! their subreaper), confined ([`exec::sandbox`]: Landlock, `run_as`, its
//! own pid and network namespaces, [`pidns`], [`netns`]) and ended with its
//! job. The worker's own file operations on paths a step could have
//! touched (caches, artifacts, file times) go through [`beneath`].

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
pub mod processes;
pub mod remote;
pub mod slurm;

pub use log::{MIN_SECRET_LEN, Redactor, note_line};
