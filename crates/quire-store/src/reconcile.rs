//! Reconcile: runs whose worker is provably gone become failed/orphaned.
//!
//! A worker is gone when its process no longer exists or its lease ran out
//! without renewal (a stuck or recycled pid). A run whose worker is alive and
//! within its lease is never touched, so cron may reconcile at any moment.
//! Pending runs are reported as waiting for a worker; starting one for them is
//! the caller's business (the worker lives in quire-run).

use std::collections::HashMap;

use quire_model::events::Event;
use rusqlite::Transaction;
use serde::Serialize;

use crate::lifecycle::transition;
use crate::query::{RUN_COLUMNS, RUN_TABLES, run_from_row};
use crate::{Result, Run, Store};
use quire_model::{FailureKind, RunState};

/// Whether a process exists on this machine (`quire_exec::processes::
/// ProcessTable` asks the kernel; tests decide).
pub trait Liveness {
    fn is_alive(&self, pid: u32) -> bool;
}

impl<F: Fn(u32) -> bool> Liveness for F {
    fn is_alive(&self, pid: u32) -> bool {
        self(pid)
    }
}

/// What reconcile found (and, unless a dry run, changed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileReport {
    /// Active runs whose worker is gone: now failed/orphaned.
    pub orphaned: Vec<Orphan>,
    /// Active runs whose worker is alive: untouched.
    pub live: Vec<String>,
    /// Pending runs: they need a worker to be started.
    pub awaiting_worker: Vec<String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Orphan {
    pub run: String,
    pub repo: String,
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// Why the worker counts as gone.
    pub reason: String,
}

impl Store {
    /// Fail every active run whose worker is gone, abort its open jobs, and
    /// report pending runs; all in one transaction. With `dry_run`, report
    /// only.
    pub fn reconcile(&mut self, liveness: &dyn Liveness, dry_run: bool) -> Result<ReconcileReport> {
        // The events files of runs that look orphaned are read before the
        // write lock is taken: a large file must not keep hooks waiting.
        // Inside the transaction each run is judged again.
        let mut recorded: HashMap<String, Vec<Event>> = HashMap::new();
        if !dry_run {
            let now = self.now_ms();
            let runs = self
                .conn
                .prepare(&format!(
                    "SELECT {RUN_COLUMNS} FROM {RUN_TABLES} WHERE state = 'active'"
                ))?
                .query_map([], run_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for run in runs {
                // An id not of quire's shape has no events file to read.
                if gone_reason(&run, liveness, now).is_some()
                    && let Ok(dir) = self.home().run_dir(&run.id)
                {
                    let path = dir.join("events.jsonl");
                    recorded.insert(run.id, crate::events::read_recorded(&path));
                }
            }
        }
        self.write(|tx, now| {
            let mut report = ReconcileReport {
                dry_run,
                ..ReconcileReport::default()
            };
            for run in live_runs(tx)? {
                if run.state == RunState::Pending {
                    report.awaiting_worker.push(run.id);
                    continue;
                }
                match gone_reason(&run, liveness, now) {
                    None => report.live.push(run.id),
                    Some(reason) => {
                        if !dry_run {
                            if let Some(events) = recorded.get(&run.id) {
                                crate::events::recover(tx, &run.id, events);
                            }
                            transition(
                                tx,
                                &run.id,
                                RunState::Failed,
                                Some(FailureKind::Orphaned),
                                Some(&reason),
                                now,
                            )?;
                        }
                        report.orphaned.push(Orphan {
                            run: run.id,
                            repo: run.repo,
                            ref_name: run.ref_name,
                            reason,
                        });
                    }
                }
            }
            Ok(report)
        })
    }
}

fn live_runs(tx: &Transaction<'_>) -> Result<Vec<Run>> {
    let mut stmt = tx.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM {RUN_TABLES} WHERE state IN ('pending', 'active')
         ORDER BY queued_at_ms, runs.id"
    ))?;
    let runs = stmt
        .query_map([], run_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(runs)
}

/// Why an active run's worker is provably gone, or None if it may be alive.
fn gone_reason(run: &Run, liveness: &dyn Liveness, now: i64) -> Option<String> {
    let Some(worker) = &run.worker else {
        return Some("no worker is recorded for it (an active run from before quire 0.1)".into());
    };
    if !liveness.is_alive(worker.pid) {
        return Some(format!("its worker process {} is gone", worker.pid));
    }
    if worker.lease_expires_at_ms < now {
        return Some(format!(
            "its worker (pid {}) stopped renewing its lease {} s ago",
            worker.pid,
            (now - worker.lease_expires_at_ms) / 1000
        ));
    }
    None
}
