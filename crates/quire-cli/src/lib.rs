//! quire's commands: the two binaries' command trees, thin layers that parse
//! arguments, call the worker, the store and the web view, and render.
//!
//! * [`run`]: `quire-run`, the side that records and executes runs (git's
//!   hook, the worker, trigger, install, migrate-from, validate, exec, demo).
//! * [`runs`]: `quire-runs`, for people and scripts (list, show, logs,
//!   watch, wait, cancel, retry, prune, reconcile, repos, caches, serve).
//! * [`error`]: the one error type commands report, and its exit codes.
//! * [`manual`]: both binaries' completion scripts and manual pages.

pub mod error;
pub mod manual;
pub mod run;
pub mod runs;
pub mod select;

pub use quire_worker::say_converted;
