//! The events a run's executor reports (DESIGN.md §7), their JSON-lines
//! form (`runs/<id>/events.jsonl`), and their ingestion into the store.
//!
//! Ingesting is idempotent: the same events twice give the same rows, so a
//! worker may ingest live as events happen and again from the file after a
//! crash. Each event's own `at_ms` stamps the rows it writes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::lifecycle::{
    job_exists, job_state, job_transition, plan_jobs_in, run_state, step_finished_in,
    step_started_in, transition,
};
use crate::model::{FailureKind, JobState, RunState};
use crate::{Error, Result, Store};

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// The executor started; `jobs` is the plan, in order.
    RunStarted {
        at_ms: i64,
        jobs: Vec<String>,
    },
    JobStarted {
        at_ms: i64,
        job: String,
    },
    StepStarted {
        at_ms: i64,
        job: String,
        seq: i64,
        cmd: String,
    },
    StepFinished {
        at_ms: i64,
        job: String,
        seq: i64,
        exit_code: i64,
    },
    /// `state` is complete, failed or aborted.
    JobFinished {
        at_ms: i64,
        job: String,
        state: JobState,
        exit_code: Option<i64>,
    },
    JobSkipped {
        at_ms: i64,
        job: String,
        reason: String,
    },
    /// `state` is complete or failed.
    RunFinished {
        at_ms: i64,
        state: RunState,
        failure_kind: Option<FailureKind>,
    },
}

impl Event {
    pub fn at_ms(&self) -> i64 {
        match self {
            Event::RunStarted { at_ms, .. }
            | Event::JobStarted { at_ms, .. }
            | Event::StepStarted { at_ms, .. }
            | Event::StepFinished { at_ms, .. }
            | Event::JobFinished { at_ms, .. }
            | Event::JobSkipped { at_ms, .. }
            | Event::RunFinished { at_ms, .. } => *at_ms,
        }
    }
}

/// Parse an events.jsonl stream. A last line without its newline was torn
/// by a crash mid-write and is ignored; any other bad line is an error
/// naming its line number.
pub fn parse_stream(bytes: &[u8]) -> Result<Vec<Event>> {
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => return Ok(Vec::new()),
    };
    let mut events = Vec::new();
    for (n, line) in complete.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event = serde_json::from_slice(line)
            .map_err(|e| Error::BadValue(format!("events line {}: {e}", n + 1)))?;
        events.push(event);
    }
    Ok(events)
}

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
        let events = parse_stream(&bytes)?;
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
