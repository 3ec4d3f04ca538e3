//! `quire-runs caches [--json]`: the jobs' caches the home keeps, by
//! repository, job and branch (docs/PIPELINE.md, "Caches").

use std::process::ExitCode;

use comfy_table::Cell;
use quire_store::Store;
use serde::Serialize;

use crate::runs::cli::CachesArgs;
use crate::runs::json;
use quire_view::text::{Output, human_bytes, printable, rfc3339};
use quire_worker::caches::{Caches, Entry, Leftover, Owner};

/// The fields of [`CacheJson`], in its order.
const CACHE_FIELDS: &[&str] = &[
    "repo",
    "job",
    "branch",
    "size",
    "run",
    "last_used_at",
    "last_used_at_ms",
    "path",
];

#[derive(Debug, Serialize)]
struct CacheJson<'a> {
    repo: String,
    job: &'a str,
    branch: &'a str,
    size: u64,
    run: Option<&'a str>,
    last_used_at: String,
    last_used_at_ms: i64,
    path: String,
}

pub fn run(store: &Store, args: &CachesArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let entries = Caches::of(store.home()).entries();
    if args.json.wanted() {
        let objects: Vec<CacheJson<'_>> = entries
            .iter()
            .map(|e| CacheJson {
                repo: repo_name(store, e.repo_id),
                job: &e.job,
                branch: &e.branch,
                size: e.size,
                run: e.run.as_deref(),
                last_used_at: rfc3339(e.last_used_ms),
                last_used_at_ms: e.last_used_ms,
                path: e.dir.display().to_string(),
            })
            .collect();
        return json::output(&objects, &args.json, CACHE_FIELDS);
    }
    if entries.is_empty() {
        eprintln!("no caches yet: a job keeps one with cache = [\"PATH\", ...]");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = out.table(&["REPO", "JOB", "BRANCH", "SIZE", "LAST USED"]);
    for e in &entries {
        table.add_row(vec![
            Cell::new(printable(&repo_name(store, e.repo_id))),
            Cell::new(printable(&e.job)),
            Cell::new(printable(&e.branch)),
            Cell::new(human_bytes(e.size)),
            Cell::new(out.age(e.last_used_ms)),
        ]);
    }
    crate::error::output::print(&format!("{}\n", out.render(&mut table, &[3], &[])))
}

/// The repository's display name; its id when the store no longer knows it.
pub(crate) fn repo_name(store: &Store, repo_id: i64) -> String {
    store
        .repo_by_id(repo_id)
        .map_or_else(|_| format!("#{repo_id}"), |r| r.name)
}

/// The caches `quire-runs prune` evicts (or would) so that each
/// repository's fit in `cache_max_mb`.
pub(crate) fn trim(store: &Store, cap_mb: u64, dry_run: bool) -> Vec<Entry> {
    let caches = Caches::of(store.home());
    let cap = cap_mb.saturating_mul(1024 * 1024);
    caches
        .repo_ids()
        .into_iter()
        .flat_map(|id| caches.trim(id, cap, dry_run))
        .collect()
}

/// What interrupted cache saves, restores and evictions left behind (a
/// worker killed midway) whose run has ended or whose process is gone:
/// removed by `quire-runs prune` (or listed, with `dry_run`). A leftover
/// of a run still active, or of a name quire does not make, stays.
pub(crate) fn sweep(store: &Store, dry_run: bool) -> Vec<Leftover> {
    let ended = |owner: &Owner| match owner {
        Owner::Run(id) => match store.resolve_run(id) {
            Ok(run) => run.state.is_terminal(),
            Err(quire_store::Error::UnknownRun(_)) => true,
            Err(_) => false,
        },
        Owner::Process(pid) => rustix::process::Pid::from_raw(*pid).is_none_or(|pid| {
            rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
        }),
        Owner::Unknown => false,
    };
    Caches::of(store.home())
        .leftovers()
        .into_iter()
        .filter(|leftover| ended(&leftover.owner))
        .inspect(|leftover| {
            if !dry_run {
                let _ = std::fs::remove_dir_all(&leftover.dir);
            }
        })
        .collect()
}
