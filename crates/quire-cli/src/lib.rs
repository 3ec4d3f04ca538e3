//! quire's commands: the two binaries' command trees, thin layers that parse
//! arguments, call the store and the pipeline, and render.
//!
//! * [`run`]: `quire-run`, the side that records and executes runs (git's
//!   hook, the worker, trigger, install, migrate-from, validate, exec, demo);
//!   the only code that reads git (gix).
//! * [`runs`]: `quire-runs`, for people and scripts (list, show, logs, watch, wait,
//!   cancel, retry, prune, reconcile, repos, caches).
//! * [`follow`]: following a run's jobs as they start and end (for
//!   `git push -o ci.wait` and `quire-runs watch`).
//! * [`caches`]: jobs' caches between runs, kept in the home.
//! * [`config`]: the home's config.toml; [`workers`]: worker slots and
//!   starting a detached worker.
//! * [`manual`]: both binaries' completion scripts and manual pages.

pub mod caches;
pub mod config;
pub mod error;
pub mod follow;
pub mod manual;
pub mod mtimes;
pub mod run;
pub mod runs;
pub mod select;
pub mod workers;

/// Say once, on stderr, what opening `store` converted from an upstream
/// quire store in place (the one open that converted it; later opens find
/// nothing to convert and say nothing).
pub fn say_converted(store: &quire_store::Store) {
    if let Some(converted) = store.converted() {
        eprintln!("quire: {}: {converted}", store.home().db_path().display());
    }
}
