//! Reconcile: runs whose worker is provably gone become failed/orphaned.
//!
//! A worker is gone when its process no longer exists or its lease ran out
//! without renewal (a stuck or recycled pid). A run whose worker is alive and
//! within its lease is never touched, so cron may reconcile at any moment.
//! Pending runs are reported as waiting for a worker; starting one for them is
//! the caller's business (the worker lives in quire-run).

use rusqlite::Transaction;
use serde::Serialize;

use crate::lifecycle::transition;
use crate::model::{FailureKind, RunState};
use crate::query::{RUN_COLUMNS, run_from_row};
use crate::{Result, Run, Store};

/// Whether a process exists on this machine.
pub trait Liveness {
    fn is_alive(&self, pid: u32) -> bool;
}

/// The real process table: `kill(pid, 0)`, and a zombie (exited, not yet
/// reaped by its parent) counts as gone.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessTable;

impl Liveness for ProcessTable {
    fn is_alive(&self, pid: u32) -> bool {
        let Ok(raw) = i32::try_from(pid) else {
            return false;
        };
        let Some(target) = rustix::process::Pid::from_raw(raw) else {
            return false;
        };
        let exists = match rustix::process::test_kill_process(target) {
            Ok(()) => true,
            // It exists but belongs to someone else.
            Err(e) => e == rustix::io::Errno::PERM,
        };
        exists && !is_zombie(pid)
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
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
        "SELECT {RUN_COLUMNS} FROM runs WHERE state IN ('pending', 'active')
         ORDER BY queued_at_ms, id"
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

/// Terminate what is left of an orphaned run's steps: the process group of
/// every step its `events.jsonl` shows as started and never finished. A
/// group is signalled only while some process in it carries the run's id in
/// its environment (`QUIRE_RUN_ID`), so a recycled process group id is
/// never hit. Returns the process group ids that were ended.
pub fn end_leftover_steps(home: &crate::Home, run_id: &str) -> Vec<u32> {
    let events = home.run_dir(run_id).join("events.jsonl");
    let Ok(bytes) = std::fs::read(&events) else {
        return Vec::new();
    };
    let Ok(events) = crate::events::parse_stream(&bytes) else {
        return Vec::new();
    };
    let mut running: Vec<(String, i64, u32)> = Vec::new();
    for event in events {
        match event {
            crate::events::Event::StepStarted {
                job,
                seq,
                pid: Some(pid),
                ..
            } => running.push((job, seq, pid)),
            crate::events::Event::StepFinished { job, seq, .. } => {
                running.retain(|(j, s, _)| !(*j == job && *s == seq))
            }
            _ => {}
        }
    }
    let mut ended = Vec::new();
    for (_, _, pgid) in running {
        if members_of_run(pgid, run_id).is_empty() {
            continue;
        }
        signal_group(pgid, rustix::process::Signal::TERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !members_of_run(pgid, run_id).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !members_of_run(pgid, run_id).is_empty() {
            signal_group(pgid, rustix::process::Signal::KILL);
        }
        ended.push(pgid);
    }
    ended
}

fn signal_group(pgid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Live (not zombie) processes in process group `pgid` whose environment
/// names `run_id`.
fn members_of_run(pgid: u32, run_id: &str) -> Vec<u32> {
    scan_processes(&format!("QUIRE_RUN_ID={run_id}"), Some(pgid))
}

/// Live (not zombie) processes whose environment holds `QUIRE_RUN_ID` of
/// this run, in any process group or session: what is left of its steps,
/// including a daemon that called setsid. The caller's own process is never
/// listed.
pub fn processes_of_run(run_id: &str) -> Vec<u32> {
    scan_processes(&format!("QUIRE_RUN_ID={run_id}"), None)
}

/// SIGKILL each process of `pids` that still carries `run_id`.
pub fn kill_processes_of_run(run_id: &str, pids: &[u32]) {
    let needle = format!("QUIRE_RUN_ID={run_id}");
    for &pid in pids {
        if has_env(pid, &needle)
            && let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

fn has_env(pid: u32, needle: &str) -> bool {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    environ
        .split(|&b| b == 0)
        .any(|var| var == needle.as_bytes())
}

fn scan_processes(needle: &str, pgid: Option<u32>) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state, ppid, pgrp, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        if let Some(pgid) = pgid
            && fields.get(2).and_then(|g| g.parse::<u32>().ok()) != Some(pgid)
        {
            continue;
        }
        if has_env(pid, needle) {
            found.push(pid);
        }
    }
    found
}
