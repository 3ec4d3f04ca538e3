//! prune: delete old finished runs, rows and files.

use std::process::ExitCode;

use quire_store::Store;
use quire_worker::config::{Config, ConfigError};
use serde::Serialize;

use crate::error::CommandError;
use crate::runs::caches;
use crate::runs::cli::PruneArgs;
use crate::runs::json;
use quire_view::text::{self, Output};

#[derive(Debug, Serialize)]
struct Report {
    /// Ids of the runs deleted (or that would be, with --dry-run).
    runs: Vec<String>,
    /// Bytes of run directories and of step logs packed into the store
    /// removed (or that would be).
    bytes_freed: u64,
    /// Caches evicted to fit `cache_max_mb` (or that would be).
    caches: Vec<CacheJson>,
    /// Bytes of those caches.
    cache_bytes_freed: u64,
    /// What interrupted cache saves and restores left, removed (or that
    /// would be).
    cache_leftovers: Vec<LeftoverJson>,
    dry_run: bool,
}

#[derive(Debug, Serialize)]
struct LeftoverJson {
    path: String,
    size: u64,
}

#[derive(Debug, Serialize)]
struct CacheJson {
    repo: String,
    job: String,
    branch: String,
    size: u64,
}

pub fn run(store: &mut Store, args: &PruneArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let config = Config::load(store.home())?;
    let older_than = match (args.older_than, &config.retention.older_than) {
        (Some(span), _) => span,
        (None, Some(text)) => {
            quire_model::clock::parse_span(text).ok_or_else(|| ConfigError::Invalid {
                path: store.home().dir().join("config.toml"),
                message: format!("retention.older_than {text:?} is not a span"),
            })?
        }
        (None, None) => {
            return Err(CommandError::usage(
                "prune needs --older-than SPAN (or retention.older_than in config.toml)",
            ));
        }
    };
    let keep = args.keep.or(config.retention.keep).unwrap_or(0);
    let cutoff = out.now_ms - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX / 2);
    let mut bytes_freed = 0;
    let mut remove_files = |store: &Store, pruned: &[quire_store::Pruned]| {
        for quire_store::Pruned { run, .. } in pruned {
            // An id not of quire's shape names no path: only its rows go.
            let dir = match store.home().run_dir(&run.id) {
                Ok(dir) => dir,
                Err(e) => {
                    eprintln!("quire-runs: warning: {e}; only its rows were pruned");
                    continue;
                }
            };
            bytes_freed += quire_worker::caches::size_of(&dir);
            if !args.dry_run
                && dir.exists()
                && let Err(e) = std::fs::remove_dir_all(&dir)
            {
                eprintln!("quire-runs: cannot remove {}: {e}", dir.display());
            }
        }
    };
    let pruned = match store.on_full_disk_use_reserve(|s| s.prune(cutoff, keep, args.dry_run)) {
        // Not even room to delete rows (SQLite writes the deletion to its
        // log first): the files of the runs being pruned go first, which
        // makes room, then their rows.
        Err(e) if e.is_disk_full() && !args.dry_run => {
            let doomed = store.prune(cutoff, keep, true)?;
            remove_files(store, &doomed);
            store.prune(cutoff, keep, false)?
        }
        done => done?,
    };
    remove_files(store, &pruned);
    bytes_freed += pruned.iter().map(|p| p.packed_log_bytes).sum::<u64>();
    let runs: Vec<quire_store::Run> = pruned.into_iter().map(|p| p.run).collect();
    let caches: Vec<CacheJson> = caches::trim(store, config.cache_max_mb, args.dry_run)
        .into_iter()
        .map(|e| CacheJson {
            repo: caches::repo_name(store, e.repo_id),
            job: e.job,
            branch: e.branch,
            size: e.size,
        })
        .collect();
    let leftovers: Vec<LeftoverJson> = caches::sweep(store, args.dry_run)
        .into_iter()
        .map(|l| LeftoverJson {
            path: l.dir.display().to_string(),
            size: l.size,
        })
        .collect();
    let report = Report {
        runs: runs.iter().map(|r| r.id.clone()).collect(),
        bytes_freed,
        cache_bytes_freed: caches.iter().map(|c| c.size).sum(),
        caches,
        cache_leftovers: leftovers,
        dry_run: args.dry_run,
    };
    if args.json {
        return json::print(&report);
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut text = String::new();
    for run in &runs {
        text.push_str(&format!(
            "{verb} {} ({} {}, {})\n",
            text::printable(&run.id),
            text::printable(&run.repo),
            text::printable(&run.ref_name),
            run.state
        ));
    }
    text.push_str(&format!(
        "{verb} {} run{}, {} of logs and events{}\n",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        text::human_bytes(bytes_freed),
        if keep > 0 {
            format!("; kept the newest {keep} of each ref")
        } else {
            String::new()
        }
    ));
    if !report.caches.is_empty() {
        let verb = if args.dry_run {
            "would evict"
        } else {
            "evicted"
        };
        for c in &report.caches {
            text.push_str(&format!(
                "{verb} the cache of job {} on branch {} of {} ({})\n",
                text::printable(&c.job),
                text::printable(&c.branch),
                text::printable(&c.repo),
                text::human_bytes(c.size)
            ));
        }
        text.push_str(&format!(
            "{verb} {} cache{}, {}, to fit cache_max_mb = {}\n",
            report.caches.len(),
            if report.caches.len() == 1 { "" } else { "s" },
            text::human_bytes(report.cache_bytes_freed),
            config.cache_max_mb
        ));
    }
    if !report.cache_leftovers.is_empty() {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let n = report.cache_leftovers.len();
        text.push_str(&format!(
            "{verb} {n} leftover{} of interrupted cache saves and restores, {}\n",
            if n == 1 { "" } else { "s" },
            text::human_bytes(report.cache_leftovers.iter().map(|l| l.size).sum())
        ));
    }
    crate::error::output::print(&text)
}
