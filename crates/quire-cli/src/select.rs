//! The run a command acts on; the scopes and candidates it is picked from
//! are quire-view's (`quire_view::select`).

use quire_store::{Run, Store};
pub use quire_view::select::*;

use crate::error::CommandError;

/// The run a command acts on: `run` when given (an id, a prefix or a part
/// of one: `Store::resolve_run`), else the newest run in `scope`; when
/// there is none, an error saying there is nothing to `verb`.
pub fn run_or_newest(
    store: &Store,
    run: Option<&str>,
    scope: &Scope,
    verb: &str,
) -> std::result::Result<Run, CommandError> {
    if let Some(given) = run {
        return Ok(store.resolve_run(given)?);
    }
    match newest(store, scope)? {
        Some(run) => Ok(run),
        None => Err(CommandError::not_found(format!(
            "there is no run to {verb}: {}",
            if scope.is_given() {
                "no runs match"
            } else {
                "no runs yet"
            }
        ))
        .hint("`quire-runs list` shows the runs there are")),
    }
}
