//! Ingesting the events a run's executor reports (`quire_model::events`)
//! into the store.
//!
//! Ingesting is idempotent: the same events twice give the same rows, so a
//! worker may ingest live as events happen and again from the file after a
//! crash. Each event's own `at_ms` stamps the rows it writes.

use std::path::Path;

use crate::lifecycle::{
    job_exists, job_state, job_transition, plan_jobs_in, run_state, step_finished_in,
    step_started_in, transition,
};
use crate::{Error, Result, Store};
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

    /// Ingest a run's events.jsonl; returns how many events it held.
    pub fn ingest_file(&mut self, run_id: &str, path: &Path) -> Result<usize> {
        let bytes = std::fs::read(path).map_err(|source| Error::Home {
            path: path.to_path_buf(),
            source,
        })?;
        let events = parse_stream(&bytes).map_err(|e| Error::BadValue(e.to_string()))?;
        self.ingest(run_id, &events)?;
        Ok(events.len())
    }
}

fn ingest_one(tx: &rusqlite::Transaction<'_>, run_id: &str, event: &Event) -> Result<()> {
    let at = event.at_ms();
    // A run that ended before its plan was ingested (superseded, cancelled
    // at once) has no job rows: its job events have nothing left to say.
    let job = match event {
        Event::JobStarted { job, .. }
        | Event::StepStarted { job, .. }
        | Event::StepFinished { job, .. }
        | Event::JobFinished { job, .. }
        | Event::JobSkipped { job, .. } => Some(job),
        Event::RunStarted { .. } | Event::RunFinished { .. } => None,
    };
    if let Some(job) = job
        && !job_exists(tx, run_id, job)?
        && run_state(tx, run_id)?.is_terminal()
    {
        return Ok(());
    }
    match event {
        Event::RunStarted { jobs, .. } => {
            let planned: i64 = tx.query_row(
                "SELECT count(*) FROM jobs WHERE run_id = ?1",
                [run_id],
                |r| r.get(0),
            )?;
            if planned == 0 && run_state(tx, run_id)? == RunState::Active {
                let ids: Vec<&str> = jobs.iter().map(String::as_str).collect();
                plan_jobs_in(tx, run_id, &ids)?;
            }
        }
        Event::JobStarted { job, .. } => {
            if job_state(tx, run_id, job)? == JobState::Pending {
                job_transition(tx, run_id, job, JobState::Active, None, None, at)?;
            }
        }
        Event::StepStarted { job, seq, cmd, .. } => {
            step_started_in(tx, run_id, job, *seq, cmd, at)?;
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
        Event::RunFinished {
            state,
            failure_kind,
            ..
        } => {
            transition(tx, run_id, *state, *failure_kind, None, at)?;
        }
    }
    Ok(())
}
