//! The run and job state machines (docs/STATE.md): the only code that changes
//! a run's or a job's state. Each allowed edge is a row of [`RUN_EDGES`] or
//! [`JOB_EDGES`]; any other edge is an error, and a change aimed at a row that
//! is already terminal changes nothing (a superseded run is never overwritten
//! by its late finish).

use crate::sql::RowExt;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::query::run_by_id;
use crate::{Error, Result, Store};
use quire_model::{Containment, FailureKind, JobState, Run, RunEvent, RunState, is_object_id};

/// One edge of the run state machine.
#[derive(Debug)]
pub struct RunEdge {
    pub from: &'static [RunState],
    pub to: RunState,
    pub kind: Option<FailureKind>,
    /// Who takes this edge, as docs/STATE.md says.
    pub by: &'static str,
}

use FailureKind as K;
use RunState as R;

/// Every edge a run may take. Mirrors docs/STATE.md row by row.
pub const RUN_EDGES: &[RunEdge] = &[
    RunEdge {
        from: &[R::Pending],
        to: R::Active,
        kind: None,
        by: "a worker claims the run",
    },
    RunEdge {
        from: &[R::Active],
        to: R::Complete,
        kind: None,
        by: "every job that had to pass passed",
    },
    RunEdge {
        from: &[R::Active],
        to: R::Failed,
        kind: Some(K::PipelineFailure),
        by: "a job failed",
    },
    RunEdge {
        from: &[R::Active],
        to: R::Failed,
        kind: Some(K::NodeLost),
        by: "every job that failed was lost with its cluster node",
    },
    RunEdge {
        from: &[R::Pending, R::Active],
        to: R::Failed,
        kind: Some(K::PipelineInvalid),
        by: "the pipeline file is invalid",
    },
    RunEdge {
        from: &[R::Pending],
        to: R::Failed,
        kind: Some(K::ConfigInvalid),
        by: "the home's config.toml could not be read when the push came",
    },
    RunEdge {
        from: &[R::Active],
        to: R::Failed,
        kind: Some(K::ProcessCrashed),
        by: "the worker crashed or could not execute",
    },
    RunEdge {
        from: &[R::Active],
        to: R::Failed,
        kind: Some(K::Orphaned),
        by: "reconcile found no live worker (a pending run has none to lose)",
    },
    RunEdge {
        from: &[R::Pending, R::Active],
        to: R::Failed,
        kind: Some(K::Cancelled),
        by: "quire-runs cancel; SIGINT or SIGTERM to the worker executing the run",
    },
    RunEdge {
        from: &[R::Pending, R::Active],
        to: R::Superseded,
        kind: None,
        by: "a newer run of the same (repo, ref), or the ref was deleted",
    },
];

/// The edge `from -> to` (with `kind` when failing), if the machine has it.
pub fn run_edge(
    from: RunState,
    to: RunState,
    kind: Option<FailureKind>,
) -> Option<&'static RunEdge> {
    RUN_EDGES
        .iter()
        .find(|e| e.to == to && e.kind == kind && e.from.contains(&from))
}

/// One edge of the job state machine.
#[derive(Debug)]
pub struct JobEdge {
    pub from: JobState,
    pub to: JobState,
    pub by: &'static str,
}

use JobState as J;

/// Every edge a job may take.
pub const JOB_EDGES: &[JobEdge] = &[
    JobEdge {
        from: J::Pending,
        to: J::Active,
        by: "the executor starts the job",
    },
    JobEdge {
        from: J::Active,
        to: J::Complete,
        by: "every step exited 0",
    },
    JobEdge {
        from: J::Active,
        to: J::Failed,
        by: "a step exited non-zero or timed out",
    },
    JobEdge {
        from: J::Pending,
        to: J::Skipped,
        by: "its `when` did not match, a job it needs failed or was skipped, or the run ended first",
    },
    JobEdge {
        from: J::Active,
        to: J::Aborted,
        by: "the run was superseded, cancelled or orphaned while the job ran",
    },
];

pub fn job_edge(from: JobState, to: JobState) -> Option<&'static JobEdge> {
    JOB_EDGES.iter().find(|e| e.from == from && e.to == to)
}

/// What a state change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied<S> {
    /// The row left state `from`.
    Changed { from: S },
    /// Nothing changed: the row was already terminal (or, for a claim, not
    /// pending any more), in `state`.
    Unchanged { state: S },
}

impl<S> Applied<S> {
    pub fn changed(&self) -> bool {
        matches!(self, Applied::Changed { .. })
    }
}

/// How an active run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    Failed {
        kind: FailureKind,
        detail: Option<String>,
    },
}

/// What the hook knows about a pushed ref.
#[derive(Debug, Clone, Default)]
pub struct NewRun<'a> {
    /// The repository ([`Store::register_repo`]).
    pub repo_id: i64,
    pub ref_name: &'a str,
    pub sha: &'a str,
    /// When the push arrived; defaults to now.
    pub pushed_at_ms: Option<i64>,
    /// The ref's tip before the push, if it existed.
    pub previous_sha: Option<&'a str>,
    /// The pipeline file is invalid (this says why, in one line): the run
    /// is recorded failed with `pipeline-invalid`, in the same transaction.
    pub invalid: Option<&'a str>,
    /// The home's config.toml could not be read (this says why): the run
    /// is recorded failed with `config-invalid`, in the same transaction.
    pub config_invalid: Option<&'a str>,
    /// The commit's subject and author (`Name <email>`), when read.
    pub subject: Option<&'a str>,
    pub author: Option<&'a str>,
    /// What records it.
    pub event: Option<RunEvent>,
    /// For a retry: the run it retries.
    pub retry_of: Option<&'a str>,
}

/// A created run, and the live run of the same ref it superseded, if any.
#[derive(Debug, Clone)]
pub struct Created {
    pub run: Run,
    pub superseded: Option<String>,
}

/// A process that executes runs. It holds a claimed run for `lease` at a
/// time and must renew the lease before it runs out; reconcile treats a run
/// whose lease ran out, or whose worker process is gone, as orphaned.
#[derive(Debug, Clone)]
pub struct Worker {
    pub id: String,
    pub pid: u32,
    pub lease: Duration,
}

impl Worker {
    /// This process, as a worker.
    pub fn this_process(lease: Duration) -> Worker {
        Worker {
            id: uuid::Uuid::now_v7().to_string(),
            pid: quire_model::process::host_pid(),
            lease,
        }
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 4)
    }
}

impl Store {
    /// Record a new pending run: supersede the live run of the same (repo,
    /// ref), then insert, in one IMMEDIATE transaction.
    pub fn create_run(&mut self, new: &NewRun<'_>) -> Result<Created> {
        check_new_run(new)?;
        self.write(|tx, now| {
            let live = live_run_of(tx, new.repo_id, new.ref_name)?;
            let id = uuid::Uuid::now_v7().to_string();
            if let Some(old) = &live {
                transition(tx, old, R::Superseded, None, None, now)?;
            }
            tx.prepare_cached(
                "INSERT INTO runs (id, repo_id, ref_name, sha, state, pushed_at_ms, queued_at_ms,
                                   traceparent, previous_sha, subject, author, event, retry_of)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                id,
                new.repo_id,
                new.ref_name,
                new.sha,
                new.pushed_at_ms.unwrap_or(now).min(now),
                now,
                traceparent(),
                new.previous_sha,
                new.subject,
                new.author,
                new.event.map(RunEvent::as_str),
                new.retry_of,
            ])?;
            if let Some(old) = &live {
                tx.prepare_cached("UPDATE runs SET superseded_by = ?1 WHERE id = ?2")?
                    .execute(params![id, old])?;
            }
            if let Some(why) = new.config_invalid {
                transition(tx, &id, R::Failed, Some(K::ConfigInvalid), Some(why), now)?;
            } else if let Some(why) = new.invalid {
                transition(tx, &id, R::Failed, Some(K::PipelineInvalid), Some(why), now)?;
            }
            Ok(Created {
                run: load_run(tx, &id)?,
                superseded: live,
            })
        })
    }

    /// Claim the next pending run for `worker`, if there is one it may
    /// take: fairly across repositories (docs/STATE.md, "Claim order"):
    /// among the repositories with pending runs that hold fewer than
    /// `max_per_repo` active runs, the one whose last claim is oldest (one
    /// never claimed first), and its oldest pending run. One compare-and-set
    /// in one IMMEDIATE transaction, so two workers never take one run.
    pub fn claim_next(&mut self, worker: &Worker, max_per_repo: usize) -> Result<Option<Run>> {
        self.write(|tx, now| {
            let Some(id) = next_claimable(tx, max_per_repo)? else {
                return Ok(None);
            };
            claim_in(tx, &id, worker, now)?;
            Ok(Some(load_run(tx, &id)?))
        })
    }

    /// Whether [`Store::claim_next`] would find a run with `max_per_repo`
    /// (a worker that found none looks again once its slot is free).
    pub fn has_claimable(&self, max_per_repo: usize) -> Result<bool> {
        Ok(next_claimable(&self.conn, max_per_repo)?.is_some())
    }

    /// Claim the pending run `run_id` for `worker`.
    pub fn claim(&mut self, run_id: &str, worker: &Worker) -> Result<Applied<RunState>> {
        self.write(|tx, now| claim_in(tx, run_id, worker, now))
    }

    /// Extend `worker`'s lease on `run_id`. False when the worker no longer
    /// holds the run (it was superseded, cancelled or orphaned): stop work.
    pub fn renew_lease(&mut self, run_id: &str, worker: &Worker) -> Result<bool> {
        let lease = worker.lease_ms();
        self.write(|tx, now| {
            let n = tx
                .prepare_cached(
                    "UPDATE runs SET lease_expires_at_ms = MAX(lease_expires_at_ms, ?1)
                 WHERE id = ?2 AND state = 'active' AND worker_id = ?3",
                )?
                .execute(params![now.saturating_add(lease), run_id, worker.id])?;
            Ok(n == 1)
        })
    }

    /// Record how `worker` contains the processes of the active run it
    /// holds: the mechanism and, with cgroups, the run's cgroup directory
    /// (which reconcile kills if the worker dies). False when the worker no
    /// longer holds the run.
    pub fn record_containment(
        &mut self,
        run_id: &str,
        worker: &Worker,
        containment: Containment,
        cgroup: Option<&str>,
    ) -> Result<bool> {
        self.write(|tx, _| {
            let n = tx
                .prepare_cached(
                    "UPDATE runs SET containment = ?1, cgroup = ?2
                 WHERE id = ?3 AND state = 'active' AND worker_id = ?4",
                )?
                .execute(params![containment.as_str(), cgroup, run_id, worker.id])?;
            Ok(n == 1)
        })
    }

    /// Record how the steps of an active run are confined (one line, for
    /// `show`). False when the run is no longer active.
    pub fn record_sandbox(&mut self, run_id: &str, summary: &str) -> Result<bool> {
        self.write(|tx, _| {
            let n = tx
                .prepare_cached("UPDATE runs SET sandbox = ?1 WHERE id = ?2 AND state = 'active'")?
                .execute(params![summary, run_id])?;
            Ok(n == 1)
        })
    }

    /// End an active run.
    pub fn finish(&mut self, run_id: &str, outcome: &Outcome) -> Result<Applied<RunState>> {
        self.write(|tx, now| match outcome {
            Outcome::Complete => transition(tx, run_id, R::Complete, None, None, now),
            Outcome::Failed { kind, detail } => {
                transition(tx, run_id, R::Failed, Some(*kind), detail.as_deref(), now)
            }
        })
    }

    /// Supersede the live run of (repo, ref), if there is one; returns its id.
    pub fn supersede_ref(&mut self, repo_id: i64, ref_name: &str) -> Result<Option<String>> {
        self.write(|tx, now| {
            let live = live_run_of(tx, repo_id, ref_name)?;
            if let Some(id) = &live {
                transition(tx, id, R::Superseded, None, None, now)?;
            }
            Ok(live)
        })
    }

    /// Cancel a live run: it fails with `cancelled`.
    pub fn cancel(&mut self, run_id: &str) -> Result<Applied<RunState>> {
        self.write(|tx, now| transition(tx, run_id, R::Failed, Some(K::Cancelled), None, now))
    }
}

/// Record a run's plan: its jobs, pending, in order, each with whether it
/// may fail (one of `allowed`).
pub(crate) fn plan_jobs_in(
    tx: &Connection,
    run_id: &str,
    job_ids: &[String],
    allowed: &[String],
) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO jobs (run_id, job_id, position, state, allow_failure)
         VALUES (?1, ?2, ?3, 'pending', ?4)",
    )?;
    for (position, job) in job_ids.iter().enumerate() {
        insert.execute(params![run_id, job, position as i64, allowed.contains(job)])?;
    }
    Ok(())
}

pub(crate) fn step_started_in(
    tx: &Connection,
    run_id: &str,
    job_id: &str,
    seq: i64,
    cmd: &str,
    log_at: Option<u64>,
    at: i64,
) -> Result<()> {
    if job_state(tx, run_id, job_id)?.is_terminal() {
        return Ok(());
    }
    // An offset past i64 cannot be in a log; stored as unknown.
    let log_at = log_at.and_then(|at| i64::try_from(at).ok());
    tx.prepare_cached(
        "INSERT OR IGNORE INTO sh_events (run_id, job_id, seq, cmd, started_at_ms, log_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![run_id, job_id, seq, cmd, at, log_at])?;
    Ok(())
}

pub(crate) fn step_finished_in(
    tx: &Connection,
    run_id: &str,
    job_id: &str,
    seq: i64,
    exit_code: i64,
    at: i64,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE sh_events SET exit_code = ?1, finished_at_ms = MAX(?2, started_at_ms)
         WHERE run_id = ?3 AND job_id = ?4 AND seq = ?5 AND exit_code IS NULL",
    )?
    .execute(params![exit_code, at, run_id, job_id, seq])?;
    Ok(())
}

fn check_new_run(new: &NewRun<'_>) -> Result<()> {
    let bad = |what: String| Err(Error::InvalidRun(what));
    if !quire_model::refs::RefName::new(new.ref_name).is_full() {
        return bad(format!(
            "{:?} is not a full ref name (refs/...)",
            new.ref_name
        ));
    }
    for sha in std::iter::once(new.sha).chain(new.previous_sha) {
        if !is_object_id(sha) {
            return bad(format!(
                "{sha:?} is not a full commit id (40 or 64 lowercase hex digits)"
            ));
        }
    }
    Ok(())
}

/// A fresh W3C trace context for a run: version 00, random trace and span
/// ids, sampled.
fn traceparent() -> String {
    let trace = uuid::Uuid::now_v7().simple().to_string();
    let span = uuid::Uuid::now_v7().simple().to_string();
    format!("00-{trace}-{}-01", &span[16..])
}

fn live_run_of(tx: &Connection, repo_id: i64, ref_name: &str) -> Result<Option<String>> {
    Ok(tx
        .prepare_cached(
            "SELECT id FROM runs WHERE repo_id = ?1 AND ref_name = ?2
             AND state IN ('pending', 'active')",
        )?
        .query_row(params![repo_id, ref_name], |row| row.get(0))
        .optional()?)
}

fn load_run(tx: &Connection, run_id: &str) -> Result<Run> {
    run_by_id(tx, run_id)?.ok_or_else(|| Error::UnknownRun(run_id.to_string()))
}

pub(crate) fn run_state(tx: &Connection, run_id: &str) -> Result<RunState> {
    tx.prepare_cached("SELECT state FROM runs WHERE id = ?1")?
        .query_row([run_id], |row| row.text(0))
        .optional()?
        .ok_or_else(|| Error::UnknownRun(run_id.to_string()))
}

pub(crate) fn require_active(tx: &Connection, run_id: &str) -> Result<()> {
    match run_state(tx, run_id)? {
        R::Active => Ok(()),
        state => Err(Error::RunNotActive {
            run: run_id.to_string(),
            state,
        }),
    }
}

/// Which pending run the next claim takes (`?1`: the most active runs a
/// repository may hold): public for the test that checks its query plan.
pub const CLAIM_ORDER_SQL: &str =
    "SELECT (SELECT r.id FROM runs r WHERE r.repo_id = p.id AND r.state = 'pending'
             ORDER BY r.queued_at_ms, r.id LIMIT 1) AS next,
            (SELECT r.queued_at_ms FROM runs r WHERE r.repo_id = p.id AND r.state = 'pending'
             ORDER BY r.queued_at_ms, r.id LIMIT 1) AS oldest
     FROM repos p
     WHERE next IS NOT NULL
       AND (SELECT count(*) FROM runs a WHERE a.repo_id = p.id AND a.state = 'active') < ?1
     ORDER BY p.claim_turn, oldest, p.id
     LIMIT 1";

/// The run the next claim takes, with at most `max_per_repo` active runs
/// per repository: one search of `repos` (few rows), and per repository
/// with pending runs one search each of `runs_pending_repo` and
/// `runs_active_repo`, however many runs the store holds.
fn next_claimable(conn: &Connection, max_per_repo: usize) -> Result<Option<String>> {
    let cap = i64::try_from(max_per_repo).unwrap_or(i64::MAX);
    let next = conn
        .prepare_cached(CLAIM_ORDER_SQL)?
        .query_row(params![cap], |row| row.get::<_, String>(0))
        .optional()?;
    Ok(next)
}

fn claim_in(tx: &Connection, run_id: &str, worker: &Worker, now: i64) -> Result<Applied<RunState>> {
    let from = run_state(tx, run_id)?;
    // Only a pending run can be claimed; one that another worker holds, or
    // that ended, is left as it is.
    if from != R::Pending {
        return Ok(Applied::Unchanged { state: from });
    }
    check_run_edge(run_id, from, R::Active, None)?;
    tx.prepare_cached(
        "UPDATE runs SET state = 'active', started_at_ms = MAX(?1, queued_at_ms),
                worker_id = ?2, worker_pid = ?3, lease_expires_at_ms = ?4
         WHERE id = ?5 AND state = 'pending'",
    )?
    .execute(params![
        now,
        worker.id,
        worker.pid,
        now.saturating_add(worker.lease_ms()),
        run_id
    ])?;
    // The repository's turn is taken: the others with pending runs come
    // first at the next claim.
    tx.prepare_cached(
        "UPDATE repos SET claim_turn = (SELECT coalesce(max(claim_turn), 0) + 1 FROM repos)
         WHERE id = (SELECT repo_id FROM runs WHERE id = ?1)",
    )?
    .execute(params![run_id])?;
    Ok(Applied::Changed { from })
}

fn check_run_edge(
    run_id: &str,
    from: RunState,
    to: RunState,
    kind: Option<FailureKind>,
) -> Result<()> {
    match run_edge(from, to, kind) {
        Some(_) => Ok(()),
        None => Err(Error::IllegalRunEdge {
            run: run_id.to_string(),
            from,
            to,
        }),
    }
}

/// Move a live run to a terminal state, and close its jobs: those running
/// are aborted, those not started are skipped.
pub(crate) fn transition(
    tx: &Connection,
    run_id: &str,
    to: RunState,
    kind: Option<FailureKind>,
    detail: Option<&str>,
    now: i64,
) -> Result<Applied<RunState>> {
    debug_assert!(to.is_terminal(), "claim_in takes the edge to active");
    let from = run_state(tx, run_id)?;
    if from.is_terminal() {
        return Ok(Applied::Unchanged { state: from });
    }
    check_run_edge(run_id, from, to, kind)?;
    tx.prepare_cached(
        "UPDATE runs SET state = ?1, failure_kind = ?2, failure_detail = ?3,
                finished_at_ms = MAX(?4, COALESCE(started_at_ms, queued_at_ms))
         WHERE id = ?5 AND state = ?6",
    )?
    .execute(params![
        to.as_str(),
        kind.map(K::as_str),
        detail,
        now,
        run_id,
        from.as_str()
    ])?;
    let reason = match kind {
        Some(kind) => format!("run {to} ({kind})"),
        None => format!("run {to}"),
    };
    close_open_jobs(tx, run_id, &reason, now)?;
    Ok(Applied::Changed { from })
}

/// The edges active -> aborted and pending -> skipped, for every open job of
/// a run that just ended.
fn close_open_jobs(tx: &Connection, run_id: &str, reason: &str, now: i64) -> Result<()> {
    debug_assert!(job_edge(J::Active, J::Aborted).is_some());
    debug_assert!(job_edge(J::Pending, J::Skipped).is_some());
    tx.prepare_cached(
        "UPDATE jobs SET state = 'aborted', waiting = NULL,
             finished_at_ms = MAX(?1, started_at_ms)
         WHERE run_id = ?2 AND state = 'active'",
    )?
    .execute(params![now, run_id])?;
    tx.prepare_cached(
        "UPDATE jobs SET state = 'skipped', skip_reason = ?1, finished_at_ms = ?2
         WHERE run_id = ?3 AND state = 'pending'",
    )?
    .execute(params![reason, now, run_id])?;
    tx.prepare_cached(
        "UPDATE sh_events SET exit_code = -1, finished_at_ms = MAX(?1, started_at_ms)
         WHERE run_id = ?2 AND exit_code IS NULL",
    )?
    .execute(params![now, run_id])?;
    Ok(())
}

pub(crate) fn job_exists(tx: &Connection, run_id: &str, job_id: &str) -> Result<bool> {
    // Ingest asks this for every event: statements on its path are cached.
    Ok(tx
        .prepare_cached("SELECT 1 FROM jobs WHERE run_id = ?1 AND job_id = ?2")?
        .query_row([run_id, job_id], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(crate) fn job_state(tx: &Connection, run_id: &str, job_id: &str) -> Result<JobState> {
    tx.prepare_cached("SELECT state FROM jobs WHERE run_id = ?1 AND job_id = ?2")?
        .query_row([run_id, job_id], |row| row.text(0))
        .optional()?
        .ok_or_else(|| Error::UnknownJob {
            run: run_id.to_string(),
            job: job_id.to_string(),
        })
}

pub(crate) fn job_transition(
    tx: &Connection,
    run_id: &str,
    job_id: &str,
    to: JobState,
    exit_code: Option<i64>,
    skip_reason: Option<&str>,
    now: i64,
) -> Result<Applied<JobState>> {
    let from = job_state(tx, run_id, job_id)?;
    if from.is_terminal() {
        return Ok(Applied::Unchanged { state: from });
    }
    if job_edge(from, to).is_none() {
        return Err(Error::IllegalJobEdge {
            run: run_id.to_string(),
            job: job_id.to_string(),
            from,
            to,
        });
    }
    require_active(tx, run_id)?;
    if to == J::Active {
        tx.prepare_cached(
            "UPDATE jobs SET state = 'active', started_at_ms =
                 MAX(?1, (SELECT started_at_ms FROM runs WHERE id = ?2))
             WHERE run_id = ?2 AND job_id = ?3 AND state = ?4",
        )?
        .execute(params![now, run_id, job_id, from.as_str()])?;
    } else {
        tx.prepare_cached(
            "UPDATE jobs SET state = ?1, exit_code = ?2, skip_reason = ?3, waiting = NULL,
                 finished_at_ms =
                 MAX(?4, COALESCE(started_at_ms, (SELECT started_at_ms FROM runs WHERE id = ?5)))
             WHERE run_id = ?5 AND job_id = ?6 AND state = ?7",
        )?
        .execute(params![
            to.as_str(),
            exit_code,
            skip_reason,
            now,
            run_id,
            job_id,
            from.as_str()
        ])?;
    }
    Ok(Applied::Changed { from })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_kind_has_an_edge_and_no_edge_leaves_a_terminal_state() {
        for kind in FailureKind::ALL {
            assert!(RUN_EDGES.iter().any(|e| e.kind == Some(*kind)), "{kind}");
        }
        for edge in RUN_EDGES {
            assert!(edge.from.iter().all(|s| s.is_live()), "{edge:?}");
            assert_eq!(edge.kind.is_some(), edge.to == R::Failed, "{edge:?}");
        }
        for edge in JOB_EDGES {
            assert!(!edge.from.is_terminal(), "{edge:?}");
        }
    }

    #[test]
    fn a_pending_run_is_never_failed_as_orphaned() {
        // Reconcile orphans active runs only; upstream's unfinished runs
        // are failed by the conversion, before this machine applies.
        assert!(run_edge(R::Pending, R::Failed, Some(K::Orphaned)).is_none());
        assert!(run_edge(R::Active, R::Failed, Some(K::Orphaned)).is_some());
    }

    #[test]
    fn every_state_is_reached_by_some_edge() {
        for state in RunState::ALL.iter().filter(|s| **s != R::Pending) {
            assert!(RUN_EDGES.iter().any(|e| e.to == *state), "{state}");
        }
        for state in JobState::ALL.iter().filter(|s| **s != J::Pending) {
            assert!(JOB_EDGES.iter().any(|e| e.to == *state), "{state}");
        }
    }

    #[test]
    fn traceparent_is_w3c_shaped() {
        let tp = traceparent();
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len(), parts[3]),
            ("00", 32, 16, "01")
        );
    }
}
