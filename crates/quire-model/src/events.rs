//! The events a run's executor reports, and their JSON-lines form
//! (`runs/<id>/events.jsonl`): one object per line, each with `type` and
//! `at_ms`.

use serde::{Deserialize, Serialize};

use crate::model::{FailureKind, JobState, RunState};

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// The executor started; `jobs` is the plan, in order, and
    /// `allow_failure` the jobs of it that may fail (`allow_failure =
    /// true`). Absent (as in files written before it existed) when none
    /// may.
    RunStarted {
        at_ms: i64,
        jobs: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allow_failure: Vec<String>,
    },
    JobStarted {
        at_ms: i64,
        job: String,
    },
    /// `log_at`: where the step's lines begin in its job's log
    /// (`logs/<job>.log`: a job's steps write one log, each step from
    /// here to where the next begins). Absent in files written before a
    /// job had one log, whose steps each wrote `logs/<job>/<seq>.log`.
    StepStarted {
        at_ms: i64,
        job: String,
        seq: i64,
        cmd: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_at: Option<u64>,
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
    /// An active job that has not begun: why (its host holds it,
    /// `queued in Slurm: Resources, job 1234, partition ci`); `reason`
    /// absent once nothing holds it.
    JobWaiting {
        at_ms: i64,
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A file the job's `artifacts` matched, kept under the run as
    /// `artifacts/<job>/<path>`; `path` is relative to the workspace.
    ArtifactKept {
        at_ms: i64,
        job: String,
        path: String,
        size: u64,
        /// Lowercase hex.
        sha256: String,
    },
    /// `state` is complete or failed.
    RunFinished {
        at_ms: i64,
        state: RunState,
        failure_kind: Option<FailureKind>,
    },
}

/// A line of an events stream that is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("events line {line}: {message}")]
pub struct BadEvent {
    pub line: usize,
    pub message: String,
}

impl Event {
    /// The event as one line of events.jsonl, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|e| {
            // Every field is a string, a number or a stored enum: encoding
            // cannot fail; should it ever, the line says so instead.
            format!("{{\"type\":\"unencodable\",\"error\":{:?}}}", e.to_string())
        });
        line.push('\n');
        line
    }

    pub fn at_ms(&self) -> i64 {
        match self {
            Event::RunStarted { at_ms, .. }
            | Event::JobStarted { at_ms, .. }
            | Event::StepStarted { at_ms, .. }
            | Event::StepFinished { at_ms, .. }
            | Event::JobFinished { at_ms, .. }
            | Event::JobSkipped { at_ms, .. }
            | Event::JobWaiting { at_ms, .. }
            | Event::ArtifactKept { at_ms, .. }
            | Event::RunFinished { at_ms, .. } => *at_ms,
        }
    }
}

/// Parse an events.jsonl stream. A last line without its newline was torn
/// by a crash mid-write and is ignored; any other bad line is an error
/// naming its line number.
pub fn parse_stream(bytes: &[u8]) -> Result<Vec<Event>, BadEvent> {
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => return Ok(Vec::new()),
    };
    let mut events = Vec::new();
    for (n, line) in complete.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event = serde_json::from_slice(line).map_err(|e| BadEvent {
            line: n + 1,
            message: e.to_string(),
        })?;
        events.push(event);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_started_carries_the_jobs_that_may_fail_and_reads_old_lines_as_none() {
        let old = b"{\"type\":\"run_started\",\"at_ms\":5,\"jobs\":[\"a\",\"b\"]}\n";
        let none = Event::RunStarted {
            at_ms: 5,
            jobs: vec!["a".into(), "b".into()],
            allow_failure: Vec::new(),
        };
        assert_eq!(parse_stream(old).unwrap(), std::slice::from_ref(&none));
        // A plan without one writes the line it always wrote.
        assert_eq!(none.to_line().as_bytes(), old);
        let some = Event::RunStarted {
            at_ms: 5,
            jobs: vec!["a".into(), "b".into()],
            allow_failure: vec!["b".into()],
        };
        let line = some.to_line();
        assert!(line.contains("\"allow_failure\":[\"b\"]"), "{line}");
        assert_eq!(parse_stream(line.as_bytes()).unwrap(), [some]);
    }
}
