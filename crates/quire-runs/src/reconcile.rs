use std::fmt::Write as _;
use std::process::ExitCode;

use quire_core::Store;
use quire_core::reconcile::ProcessTable;

use crate::cli::ReconcileArgs;
use crate::json;
use crate::text::emit;

pub fn run(store: &mut Store, args: &ReconcileArgs) -> quire_core::Result<ExitCode> {
    let report = store.reconcile(&ProcessTable, args.dry_run)?;
    if args.json {
        return Ok(json::print(&report));
    }
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
    for run in &report.awaiting_worker {
        let _ = writeln!(text, "pending {run}: waiting for a worker");
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
