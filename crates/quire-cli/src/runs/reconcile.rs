use std::fmt::Write as _;
use std::process::ExitCode;

use std::path::Path;

use quire_exec::contain;
use quire_exec::processes::ProcessTable;
use quire_store::reconcile::ReconcileReport;
use quire_store::{Containment, Store};
use serde::Serialize;

use crate::runs::cli::ReconcileArgs;
use crate::runs::control::{LEFTOVER_GRACE, start_worker};
use crate::runs::json;
use quire_view::text::printable;

/// What reconcile did beyond the store: the leftover step processes it
/// ended, the ended runs whose logs it packed, and whether it started a
/// worker for the pending runs.
#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    store: ReconcileReport,
    /// Pids of orphaned runs' leftover step processes that were terminated.
    steps_terminated: Vec<u32>,
    /// For each orphaned run, how its leftovers were found.
    leftovers: Vec<Leftovers>,
    /// Ended runs whose worker is gone, whose logs were packed into the
    /// store (or would be, with --dry-run).
    logs_packed: Vec<String>,
    worker_started: bool,
    /// Jobs quire started on a Slurm cluster (by their Slurm job name)
    /// whose run is no longer active, ended with `scancel` (or that would
    /// be, with --dry-run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cluster_jobs_ended: Vec<String>,
}

/// With `[executor] kind = "slurm"`: the cluster's jobs named for quire
/// (`quire-<last group of the run id>-<job>`) whose run is not active any
/// more (its worker died, or it was cancelled while the worker could not
/// end them), ended. Those of active runs are their workers' to end.
fn end_cluster_leftovers(store: &Store, dry_run: bool) -> Vec<String> {
    let Ok(config) = quire_worker::config::Config::load(store.home()) else {
        return Vec::new();
    };
    let Some(slurm) = config.executor.slurm() else {
        return Vec::new();
    };
    use quire_exec::remote::JobHost;
    let names = match slurm.listed() {
        Ok(names) => names,
        Err(e) => {
            eprintln!("quire-runs: cannot list the Slurm cluster's jobs: {e}");
            return Vec::new();
        }
    };
    let mut ended = Vec::new();
    for name in names {
        // `quire-<last 12 hex digits of the run id>-<job>`: a run of this
        // store, found by those digits, and not active. A job of another
        // home's run (another quire on the same cluster and user), or of
        // a run these digits do not name alone, is left alone.
        let Some(tail) = name
            .strip_prefix("quire-")
            .and_then(|rest| rest.get(..12))
            .filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            continue;
        };
        let Ok(run) = store.resolve_run(tail) else {
            continue;
        };
        if run.state == quire_store::RunState::Active
            || !name.starts_with(&quire_exec::exec::job_name(&run.id, ""))
        {
            continue;
        }
        if !dry_run && let Err(e) = slurm.end(&name) {
            eprintln!("quire-runs: cannot end Slurm job {name}: {e}");
            continue;
        }
        ended.push(name);
    }
    ended
}

/// What was found of one orphaned run's processes, and how.
#[derive(Debug, Serialize)]
struct Leftovers {
    run: String,
    /// As its worker recorded it: "cgroup", "subreaper", or null.
    containment: Option<Containment>,
    cgroup: Option<String>,
    /// Killed with the run's cgroup (`cgroup.kill`).
    by_cgroup: Vec<u32>,
    /// Terminated because they carry the run's `QUIRE_RUN_ID`.
    by_environment: Vec<u32>,
    /// What reconcile cannot find of this run, if anything.
    unreachable: Option<String>,
    /// The cgroup could not be ended.
    error: Option<String>,
}

/// End one orphaned run's leftovers: its cgroup if it had one, and what
/// carries its id.
fn end_leftovers(store: &Store, run: &str) -> crate::error::Result<Leftovers> {
    let recorded = store.resolve_run(run)?;
    let found = contain::end_orphaned(
        run,
        recorded.cgroup.as_deref().map(Path::new),
        LEFTOVER_GRACE,
    );
    let unreachable = match recorded.cgroup {
        Some(_) => None,
        None => Some(
            "without a cgroup, only processes that still carry its QUIRE_RUN_ID can be found: \
             one that cleared its environment was re-parented away from the dead worker \
             (to pid 1) and nothing tells it apart any more"
                .to_string(),
        ),
    };
    Ok(Leftovers {
        run: run.to_string(),
        containment: recorded.containment,
        cgroup: recorded.cgroup,
        by_cgroup: found.by_cgroup,
        by_environment: found.by_environment,
        unreachable,
        error: found.error,
    })
}

pub fn run(store: &mut Store, args: &ReconcileArgs) -> crate::error::Result<ExitCode> {
    let report = store.on_full_disk_use_reserve(|s| {
        s.reconcile(&|pid| ProcessTable.is_alive(pid), args.dry_run)
    })?;
    let mut steps_terminated = Vec::new();
    let mut leftovers = Vec::new();
    let mut worker_started = false;
    if !args.dry_run {
        for orphan in &report.orphaned {
            let found = end_leftovers(store, &orphan.run)?;
            steps_terminated.extend(&found.by_cgroup);
            steps_terminated.extend(&found.by_environment);
            leftovers.push(found);
        }
        if !report.awaiting_worker.is_empty() {
            worker_started = start_worker(store)?;
        }
        // The runs it orphaned have ended: their notes and notifiers.
        quire_worker::workers::announce_if_needed(store.home(), store);
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
                    // An id not of quire's shape names no file.
                    store
                        .home()
                        .run_dir(&o.run)
                        .is_ok_and(|dir| dir.join("events.jsonl").is_file())
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
    let cluster_jobs_ended = end_cluster_leftovers(store, args.dry_run);
    let report = Report {
        store: report,
        steps_terminated,
        leftovers,
        logs_packed,
        worker_started,
        cluster_jobs_ended,
    };
    if args.json {
        return json::print(&report);
    }
    let Report {
        store: report,
        steps_terminated,
        leftovers,
        logs_packed,
        worker_started,
        cluster_jobs_ended,
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
            printable(&orphan.run),
            printable(&orphan.repo),
            printable(&orphan.ref_name),
            orphan.reason
        );
    }
    for found in &leftovers {
        if let Some(cgroup) = &found.cgroup {
            let _ = writeln!(
                text,
                "killed cgroup {} of run {}: {}",
                printable(cgroup),
                printable(&found.run),
                plural(found.by_cgroup.len(), "process")
            );
        }
        if let Some(error) = &found.error {
            let _ = writeln!(text, "warning: {}", printable(error));
        }
        if let Some(unreachable) = &found.unreachable {
            let _ = writeln!(
                text,
                "run {} had no cgroup ({}): {}",
                printable(&found.run),
                found
                    .containment
                    .map_or("containment unrecorded", Containment::as_str),
                printable(unreachable)
            );
        }
    }
    for name in &cluster_jobs_ended {
        let verb = if args.dry_run { "would end" } else { "ended" };
        let _ = writeln!(
            text,
            "{verb} Slurm job {} (its run is not active)",
            printable(name)
        );
    }
    for pid in &steps_terminated {
        let _ = writeln!(text, "terminated leftover step process {pid}");
    }
    for run in &logs_packed {
        let verb = if args.dry_run { "would pack" } else { "packed" };
        let _ = writeln!(
            text,
            "{verb} the logs of run {} into the store",
            printable(run)
        );
    }
    for run in &report.awaiting_worker {
        let _ = writeln!(text, "pending {}: waiting for a worker", printable(run));
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
    crate::error::output::print(&text)
}

fn plural(n: usize, noun: &str) -> String {
    match (n, noun.ends_with('s')) {
        (1, _) => format!("1 {noun}"),
        (_, true) => format!("{n} {noun}es"),
        _ => format!("{n} {noun}s"),
    }
}
