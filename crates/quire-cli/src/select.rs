//! Finding what a person means on the command line: the refs a short name
//! may be, and waiting for a run to end.

use std::time::Duration;

use quire_store::{Result, Run, Store};

/// The full ref names a user's `--ref` may mean.
pub fn ref_candidates(given: &str) -> Vec<String> {
    if given.starts_with("refs/") {
        vec![given.to_string()]
    } else {
        vec![
            format!("refs/heads/{given}"),
            format!("refs/tags/{given}"),
            given.to_string(),
        ]
    }
}

/// Look at the run every `interval` until it is terminal; None if
/// `give_up` says so first (asked between looks).
pub fn wait_terminal(
    store: &Store,
    run_id: &str,
    interval: Duration,
    give_up: impl Fn() -> bool,
) -> Result<Option<Run>> {
    loop {
        let run = store.resolve_run(run_id)?;
        if run.state.is_terminal() {
            return Ok(Some(run));
        }
        if give_up() {
            return Ok(None);
        }
        std::thread::sleep(interval);
    }
}
