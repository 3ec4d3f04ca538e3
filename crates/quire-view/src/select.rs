//! Finding what a person means on the command line: the refs a `--ref` or
//! `--branch` may be, the newest run of a repository or ref, and waiting
//! for a run to end.

use std::time::Duration;

use quire_model::refs::{HEADS, RefName, is_glob};
use quire_store::query::ListFilter;
use quire_store::{Result, Run, Store};

/// Which runs a command looks at: `--repo`, `--ref`, `--branch`.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// A repository as `Store::resolve_repo` takes it.
    pub repo: Option<String>,
    /// A ref: full, short (a branch or tag), or a glob of either.
    pub ref_name: Option<String>,
    /// A branch: short or `refs/heads/...`, or a glob.
    pub branch: Option<String>,
}

impl Scope {
    /// True when any of `--repo`, `--ref`, `--branch` was given.
    pub fn is_given(&self) -> bool {
        self.repo.is_some() || self.ref_name.is_some() || self.branch.is_some()
    }

    /// The filter for these runs (newest first, at most 20: set `limit`).
    pub fn filter(&self, store: &Store) -> Result<ListFilter> {
        let repo_id = match &self.repo {
            Some(given) => Some(store.resolve_repo(given)?.id),
            None => None,
        };
        let mut filter = ListFilter {
            repo_id,
            ..ListFilter::default()
        };
        let refs = match (&self.ref_name, &self.branch) {
            (Some(given), _) => ref_candidates(given),
            (None, Some(given)) => branch_candidates(given),
            (None, None) => Vec::new(),
        };
        for candidate in refs {
            if is_glob(&candidate) {
                filter.ref_globs.push(candidate);
            } else {
                filter.ref_names.push(candidate);
            }
        }
        Ok(filter)
    }
}

/// The full ref names (or globs over them, by the one rule of
/// [`quire_model::refs::RefGlob`]) a user's `--ref` may mean: as given when
/// it starts with `refs/`; else the branch and the tag of that name (and,
/// for a name without glob characters, the name as given, for refs outside
/// `refs/`).
pub fn ref_candidates(given: &str) -> Vec<String> {
    if given.starts_with("refs/") {
        vec![given.to_string()]
    } else {
        let mut candidates = vec![
            RefName::of_branch(given).to_string(),
            RefName::of_tag(given).to_string(),
        ];
        if !is_glob(given) {
            candidates.push(given.to_string());
        }
        candidates
    }
}

/// The full ref name (or glob) a `--branch` means: `refs/heads/NAME`.
fn branch_candidates(given: &str) -> Vec<String> {
    if given.starts_with(HEADS) {
        vec![given.to_string()]
    } else {
        vec![RefName::of_branch(given).to_string()]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_are_full_names_short_names_or_globs() {
        assert_eq!(ref_candidates("refs/heads/main"), ["refs/heads/main"]);
        assert_eq!(
            ref_candidates("v1.0"),
            ["refs/heads/v1.0", "refs/tags/v1.0", "v1.0"]
        );
        assert_eq!(
            ref_candidates("release/*"),
            ["refs/heads/release/*", "refs/tags/release/*"]
        );
        assert_eq!(branch_candidates("main"), ["refs/heads/main"]);
        assert_eq!(branch_candidates("refs/heads/x"), ["refs/heads/x"]);
    }
}
