use std::fmt::Write as _;
use std::process::ExitCode;

use quire_pipeline::processes;
use quire_pipeline::processes::ProcessTable;
use quire_store::Store;
use quire_store::reconcile::ReconcileReport;
use serde::Serialize;

use crate::runs::cli::ReconcileArgs;
use crate::runs::control::{LEFTOVER_GRACE, start_worker};
use crate::runs::json;
use crate::runs::text::emit;

/// What reconcile did beyond the store: the leftover step processes it
/// ended and whether it started a worker for the pending runs.
#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    store: ReconcileReport,
    /// Pids of orphaned runs' leftover step processes that were terminated.
    steps_terminated: Vec<u32>,
    worker_started: bool,
}

pub fn run(store: &mut Store, args: &ReconcileArgs) -> quire_store::Result<ExitCode> {
    let report = store.on_full_disk_use_reserve(|s| {
        s.reconcile(&|pid| ProcessTable.is_alive(pid), args.dry_run)
    })?;
    let mut steps_terminated = Vec::new();
    let mut worker_started = false;
    if !args.dry_run {
        for orphan in &report.orphaned {
            steps_terminated.extend(processes::end(&orphan.run, LEFTOVER_GRACE));
        }
        if !report.awaiting_worker.is_empty() {
            worker_started = start_worker(store)?;
        }
    }
    let report = Report {
        store: report,
        steps_terminated,
        worker_started,
    };
    if args.json {
        return Ok(json::print(&report));
    }
    let Report {
        store: report,
        steps_terminated,
        worker_started,
    } = report;
    let verb = if args.dry_run {
        "would orphan"
    } else {
        "orphaned"
    };
    let mut text = String::new();
    for orphan in &report.orphaned {
        let _ = writeln!(
            text,
            "{verb} {} ({} {}): {}",
            orphan.run, orphan.repo, orphan.ref_name, orphan.reason
        );
    }
    for pid in &steps_terminated {
        let _ = writeln!(text, "terminated leftover step process {pid}");
    }
    for run in &report.awaiting_worker {
        let _ = writeln!(text, "pending {run}: waiting for a worker");
    }
    if worker_started {
        let _ = writeln!(text, "started a worker for the pending runs");
    }
    let _ = writeln!(
        text,
        "{} {verb}, {} live left alone, {} pending{}",
        plural(report.orphaned.len(), "run"),
        report.live.len(),
        report.awaiting_worker.len(),
        if args.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    Ok(emit(&text))
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
