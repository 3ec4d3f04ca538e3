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
/// ended, the ended runs whose logs it packed, and whether it started a
/// worker for the pending runs.
#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    store: ReconcileReport,
    /// Pids of orphaned runs' leftover step processes that were terminated.
    steps_terminated: Vec<u32>,
    /// Ended runs whose worker is gone, whose logs were packed into the
    /// store (or would be, with --dry-run).
    logs_packed: Vec<String>,
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
    // Runs whose worker is gone before it packed their logs: those just
    // orphaned (their steps ended above), and those whose worker died
    // mid-pack.
    let mut logs_packed = store.unpacked_runs(&|pid| ProcessTable.is_alive(pid))?;
    if args.dry_run {
        // An orphan-to-be is still active: it would be packed too.
        logs_packed.extend(
            report
                .orphaned
                .iter()
                .filter(|o| {
                    let events = store.home().run_dir(&o.run).join("events.jsonl");
                    events.is_file()
                })
                .map(|o| o.run.clone()),
        );
        logs_packed.sort();
        logs_packed.dedup();
    } else {
        logs_packed.retain(|run| match store.pack_logs(run) {
            Ok(packed) => packed.is_some(),
            Err(e) => {
                eprintln!("quire-runs: cannot pack the logs of run {run}: {e}");
                false
            }
        });
    }
    let report = Report {
        store: report,
        steps_terminated,
        logs_packed,
        worker_started,
    };
    if args.json {
        return Ok(json::print(&report));
    }
    let Report {
        store: report,
        steps_terminated,
        logs_packed,
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
    for run in &logs_packed {
        let verb = if args.dry_run { "would pack" } else { "packed" };
        let _ = writeln!(text, "{verb} the logs of run {run} into the store");
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
