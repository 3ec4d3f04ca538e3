//! The run a command acts on; the scopes and candidates it is picked from
//! are quire-view's (`quire_view::select`).

use quire_store::query::ListFilter;
use quire_store::{Run, Store};
pub use quire_view::select::*;
use quire_view::text::printable;

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
    let newest = store
        .list_runs(&ListFilter {
            limit: 1,
            ..filter(store, scope)?
        })?
        .into_iter()
        .next();
    match newest {
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

/// The filter for the runs `scope` chooses (as [`Scope::filter`]); a
/// `--repo` that names no repository, said with the repositories whose
/// names it ends (`app` for `team/app.git` and `infra/app.git`).
pub fn filter(store: &Store, scope: &Scope) -> std::result::Result<ListFilter, CommandError> {
    scope.filter(store).map_err(|e| match e {
        quire_store::Error::UnknownRepo(ref given) => unknown_repo(store, &given.clone(), e),
        e => e.into(),
    })
}

/// The error for a `--repo` no repository is known by: naming each whose
/// name `given` is the end of, when there are some.
fn unknown_repo(store: &Store, given: &str, error: quire_store::Error) -> CommandError {
    let stem = |name: &str| name.strip_suffix(".git").unwrap_or(name).to_string();
    let tail = format!("/{}", stem(given));
    let mut matches: Vec<String> = store
        .repo_list()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .filter(|name| stem(name).ends_with(&tail))
        .collect();
    matches.sort();
    let shown: Vec<String> = matches.iter().map(|m| printable(m).into_owned()).collect();
    match shown.as_slice() {
        [] => error.into(),
        [one] => CommandError::not_found(format!("no repository {:?} is known", printable(given)))
            .hint(format!("did you mean {one}? (-R {one})")),
        several => CommandError::not_found(format!(
            "{:?} is ambiguous: it ends the names of {} repositories: {}",
            printable(given),
            several.len(),
            several.join(", ")
        ))
        .hint(format!(
            "give the whole name: -R {} (`quire-runs repos` lists them)",
            several[0]
        )),
    }
}
