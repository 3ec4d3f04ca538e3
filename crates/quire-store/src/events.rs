//! Ingesting the events a run's executor reports (`quire_model::events`)
//! into the store: live, by the worker, and from `events.jsonl` when
//! reconcile recovers a run whose worker died.
//!
//! Ingesting is idempotent: the same events twice give the same rows, so a
//! worker may ingest live as events happen and again from the file after a
//! crash. Each event's own `at_ms` stamps the rows it writes.

use std::path::Path;

use crate::lifecycle::{
    job_exists, job_state, job_transition, plan_jobs_in, run_state, step_finished_in,
    step_started_in,
};
use crate::{Result, Store};
use quire_model::events::{Event, parse_stream};
use quire_model::{JobState, RunState};

impl Store {
    /// Apply events of `run_id` to its job and step rows, in one transaction.
    pub fn ingest(&mut self, run_id: &str, events: &[Event]) -> Result<()> {
        self.write(|tx, _| {
            for event in events {
                ingest_one(tx, run_id, event)?;
            }
            Ok(())
        })
    }
}

/// The events a run's events.jsonl holds; none when it is missing or
/// garbled (a torn last line is not garbled).
pub(crate) fn read_recorded(path: &Path) -> Vec<Event> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| parse_stream(&bytes).ok())
        .unwrap_or_default()
}

/// Recovery for a run whose worker died: apply what its events.jsonl says
/// happened that the live ingest had not written yet (steps that finished,
/// jobs that ended), inside the caller's transaction. Whatever the file
/// holds, the run itself is not ended here: the worker did not end it, and
/// reconcile records it as orphaned. A file that is missing or garbled
/// recovers nothing and changes nothing. Returns how many events applied.
pub(crate) fn recover(tx: &rusqlite::Connection, run_id: &str, events: &[Event]) -> usize {
    // A savepoint: a stream that cannot be applied leaves no trace.
    if tx.execute_batch("SAVEPOINT recover").is_err() {
        return 0;
    }
    let mut applied = 0;
    for event in events
        .iter()
        .filter(|e| !matches!(e, Event::RunFinished { .. }))
    {
        if ingest_one(tx, run_id, event).is_err() {
            let _ = tx.execute_batch("ROLLBACK TO recover; RELEASE recover");
            return 0;
        }
        applied += 1;
    }
    if tx.execute_batch("RELEASE recover").is_err() {
        return 0;
    }
    applied
}

fn ingest_one(tx: &rusqlite::Connection, run_id: &str, event: &Event) -> Result<()> {
    let at = event.at_ms();
    // A run that ended before its plan was ingested (superseded, cancelled
    // at once) has no job rows: its job events have nothing left to say.
    let job = match event {
        Event::JobStarted { job, .. }
        | Event::StepStarted { job, .. }
        | Event::StepFinished { job, .. }
        | Event::JobFinished { job, .. }
        | Event::JobSkipped { job, .. }
        | Event::JobWaiting { job, .. }
        | Event::ArtifactKept { job, .. } => Some(job),
        Event::RunStarted { .. } | Event::RunFinished { .. } => None,
    };
    if let Some(job) = job
        && !job_exists(tx, run_id, job)?
        && run_state(tx, run_id)?.is_terminal()
    {
        return Ok(());
    }
    match event {
        Event::RunStarted {
            jobs,
            allow_failure,
            ..
        } => {
            let planned: i64 = tx
                .prepare_cached("SELECT count(*) FROM jobs WHERE run_id = ?1")?
                .query_row([run_id], |r| r.get(0))?;
            if planned == 0 && run_state(tx, run_id)? == RunState::Active {
                plan_jobs_in(tx, run_id, jobs, allow_failure)?;
            }
        }
        Event::JobStarted { job, .. } => {
            if job_state(tx, run_id, job)? == JobState::Pending {
                job_transition(tx, run_id, job, JobState::Active, None, None, at)?;
            }
        }
        Event::StepStarted {
            job,
            seq,
            cmd,
            log_at,
            ..
        } => {
            step_started_in(tx, run_id, job, *seq, cmd, *log_at, at)?;
        }
        Event::StepFinished {
            job,
            seq,
            exit_code,
            ..
        } => {
            step_finished_in(tx, run_id, job, *seq, *exit_code, at)?;
        }
        Event::JobFinished {
            job,
            state,
            exit_code,
            ..
        } => {
            job_transition(tx, run_id, job, *state, *exit_code, None, at)?;
        }
        Event::JobSkipped { job, reason, .. } => {
            job_transition(tx, run_id, job, JobState::Skipped, None, Some(reason), at)?;
        }
        Event::JobWaiting { job, reason, .. } => {
            tx.prepare_cached(
                "UPDATE jobs SET waiting = ?3
                 WHERE run_id = ?1 AND job_id = ?2 AND state = 'active'",
            )?
            .execute(rusqlite::params![run_id, job, reason])?;
        }
        Event::ArtifactKept {
            job,
            path,
            size,
            sha256,
            ..
        } => {
            // Keyed by (run, job, path): the same event again changes nothing.
            let size = i64::try_from(*size).unwrap_or(i64::MAX);
            tx.prepare_cached(
                "INSERT INTO artifacts (run_id, job_id, path, size, sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (run_id, job_id, path) DO NOTHING",
            )?
            .execute(rusqlite::params![run_id, job, path, size, sha256])?;
        }
        // The executor's account of how the run went; only the worker ends
        // the run (Store::finish), so the stream never does.
        Event::RunFinished { .. } => {}
    }
    Ok(())
}
