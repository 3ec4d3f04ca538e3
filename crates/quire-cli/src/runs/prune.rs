//! prune: delete old finished runs, rows and files.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use quire_store::{Error, Store};
use serde::Serialize;

use crate::runs::cli::PruneArgs;
use crate::runs::json;
use crate::runs::text::{self, Output, emit};

#[derive(Debug, Serialize)]
struct Report {
    /// Ids of the runs deleted (or that would be, with --dry-run).
    runs: Vec<String>,
    /// Bytes of run directories removed (or that would be).
    bytes_freed: u64,
    dry_run: bool,
}

pub fn run(store: &mut Store, args: &PruneArgs, out: &Output) -> quire_store::Result<ExitCode> {
    let config = Config::load(store.home())?;
    let older_than = match (args.older_than, &config.retention.older_than) {
        (Some(span), _) => span,
        (None, Some(text)) => {
            quire_model::clock::parse_span(text).ok_or_else(|| Error::Config {
                path: store.home().dir().join("config.toml"),
                message: format!("retention.older_than {text:?} is not a span"),
            })?
        }
        (None, None) => {
            eprintln!(
                "quire-runs: error: prune needs --older-than SPAN (or retention.older_than in config.toml)"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let keep = args.keep.or(config.retention.keep).unwrap_or(0);
    let cutoff = out.now_ms - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX / 2);
    let runs = store.prune(cutoff, keep, args.dry_run)?;
    let mut bytes_freed = 0;
    for run in &runs {
        let dir = store.home().run_dir(&run.id);
        bytes_freed += size_of(&dir);
        if !args.dry_run
            && dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            eprintln!("quire-runs: cannot remove {}: {e}", dir.display());
        }
    }
    let report = Report {
        runs: runs.iter().map(|r| r.id.clone()).collect(),
        bytes_freed,
        dry_run: args.dry_run,
    };
    if args.json {
        return Ok(json::print(&report));
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
            run.id, run.repo, run.ref_name, run.state
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
    Ok(emit(&text))
}

/// Bytes under `path` (files only; links not followed).
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}
