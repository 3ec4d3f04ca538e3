//! The `--json` objects: the field names and types docs/CLI.md promises.

use quire_model::Artifact;
use quire_store::query::{JobDetail, RunDetail};
use quire_store::{Containment, FailureKind, JobState, Run, RunState, Step};
use serde::Serialize;

use std::process::ExitCode;

use crate::runs::text::{emit, rfc3339};

#[derive(Debug, Serialize)]
pub struct RunJson<'a> {
    pub id: &'a str,
    pub repo: &'a str,
    #[serde(rename = "ref")]
    pub ref_name: &'a str,
    pub sha: &'a str,
    pub state: RunState,
    pub failure_kind: Option<FailureKind>,
    pub failure_detail: Option<&'a str>,
    pub pushed_at: String,
    pub pushed_at_ms: i64,
    pub queued_at: String,
    pub queued_at_ms: i64,
    pub started_at: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished_at: Option<String>,
    pub finished_at_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub git_dir: Option<&'a str>,
    pub traceparent: Option<&'a str>,
    pub worker: Option<WorkerJson<'a>>,
    /// How the run's processes were contained: "cgroup" or "subreaper";
    /// null before a worker started it.
    pub containment: Option<Containment>,
    /// The run's cgroup directory, with "cgroup".
    pub cgroup: Option<&'a str>,
    /// How its steps were confined (the sandbox); null before a worker
    /// started it.
    pub sandbox: Option<&'a str>,
    /// The commit's subject and author; null for runs from before 0015.
    pub subject: Option<&'a str>,
    pub author: Option<&'a str>,
    /// What recorded it: "push", "retry" or "trigger"; null before 0015.
    pub event: Option<quire_store::RunEvent>,
    /// The run that took a superseded run's place.
    pub superseded_by: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct WorkerJson<'a> {
    pub id: &'a str,
    pub pid: u32,
    pub lease_expires_at: String,
    pub lease_expires_at_ms: i64,
}

#[derive(Debug, Serialize)]
pub struct RunDetailJson<'a> {
    #[serde(flatten)]
    pub run: RunJson<'a>,
    pub jobs: Vec<JobJson<'a>>,
    /// The files the run's jobs kept, by job then path.
    pub artifacts: Vec<ArtifactJson<'a>>,
    /// The `[[notify]]` commands run when the run ended.
    pub notifications: Vec<NotificationJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct NotificationJson<'a> {
    pub position: i64,
    pub command: &'a [String],
    pub state: quire_store::NotificationState,
    pub exit_code: Option<i64>,
    pub stderr: Option<&'a str>,
    pub started_at: String,
    pub started_at_ms: i64,
    pub finished_at: Option<String>,
    pub finished_at_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ArtifactJson<'a> {
    pub job: &'a str,
    pub path: &'a str,
    pub size: u64,
    pub sha256: &'a str,
}

#[derive(Debug, Serialize)]
pub struct JobJson<'a> {
    pub id: &'a str,
    pub state: JobState,
    pub exit_code: Option<i64>,
    pub skip_reason: Option<&'a str>,
    pub started_at: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished_at: Option<String>,
    pub finished_at_ms: Option<i64>,
    /// The job's `allow_failure`, once its run ended (null before, and for
    /// jobs from before 0015).
    pub allow_failure: Option<bool>,
    pub steps: Vec<StepJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct StepJson<'a> {
    pub seq: i64,
    pub cmd: &'a str,
    pub exit_code: Option<i64>,
    pub started_at: String,
    pub started_at_ms: i64,
    pub finished_at: Option<String>,
    pub finished_at_ms: Option<i64>,
}

pub fn run(run: &Run, now_ms: i64) -> RunJson<'_> {
    RunJson {
        id: &run.id,
        repo: &run.repo,
        ref_name: &run.ref_name,
        sha: &run.sha,
        state: run.state,
        failure_kind: run.failure_kind,
        failure_detail: run.failure_detail.as_deref(),
        pushed_at: rfc3339(run.pushed_at_ms),
        pushed_at_ms: run.pushed_at_ms,
        queued_at: rfc3339(run.queued_at_ms),
        queued_at_ms: run.queued_at_ms,
        started_at: run.started_at_ms.map(rfc3339),
        started_at_ms: run.started_at_ms,
        finished_at: run.finished_at_ms.map(rfc3339),
        finished_at_ms: run.finished_at_ms,
        duration_ms: run.duration_ms(now_ms),
        git_dir: run.git_dir.as_deref(),
        traceparent: run.traceparent.as_deref(),
        worker: run.worker.as_ref().map(|w| WorkerJson {
            id: &w.id,
            pid: w.pid,
            lease_expires_at: rfc3339(w.lease_expires_at_ms),
            lease_expires_at_ms: w.lease_expires_at_ms,
        }),
        containment: run.containment,
        cgroup: run.cgroup.as_deref(),
        sandbox: run.sandbox.as_deref(),
        subject: run.subject.as_deref(),
        author: run.author.as_deref(),
        event: run.event,
        superseded_by: run.superseded_by.as_deref(),
    }
}

pub fn detail(detail: &RunDetail, now_ms: i64) -> RunDetailJson<'_> {
    RunDetailJson {
        run: run(&detail.run, now_ms),
        jobs: detail.jobs.iter().map(job).collect(),
        artifacts: detail.artifacts.iter().map(artifact).collect(),
        notifications: detail
            .notifications
            .iter()
            .map(|n| NotificationJson {
                position: n.position,
                command: &n.command,
                state: n.state,
                exit_code: n.exit_code,
                stderr: n.stderr_tail.as_deref(),
                started_at: rfc3339(n.started_at_ms),
                started_at_ms: n.started_at_ms,
                finished_at: n.finished_at_ms.map(rfc3339),
                finished_at_ms: n.finished_at_ms,
            })
            .collect(),
    }
}

fn artifact(artifact: &Artifact) -> ArtifactJson<'_> {
    ArtifactJson {
        job: &artifact.job,
        path: &artifact.path,
        size: artifact.size,
        sha256: &artifact.sha256,
    }
}

fn job(detail: &JobDetail) -> JobJson<'_> {
    let job = &detail.job;
    JobJson {
        id: &job.id,
        state: job.state,
        exit_code: job.exit_code,
        skip_reason: job.skip_reason.as_deref(),
        started_at: job.started_at_ms.map(rfc3339),
        started_at_ms: job.started_at_ms,
        finished_at: job.finished_at_ms.map(rfc3339),
        finished_at_ms: job.finished_at_ms,
        allow_failure: job.allow_failure,
        steps: detail.steps.iter().map(step).collect(),
    }
}

fn step(step: &Step) -> StepJson<'_> {
    StepJson {
        seq: step.seq,
        cmd: &step.cmd,
        exit_code: step.exit_code,
        started_at: rfc3339(step.started_at_ms),
        started_at_ms: step.started_at_ms,
        finished_at: step.finished_at_ms.map(rfc3339),
        finished_at_ms: step.finished_at_ms,
    }
}

/// `value` as `--json` prints it: pretty, with a final newline.
pub fn text(value: &impl Serialize) -> serde_json::Result<String> {
    serde_json::to_string_pretty(value).map(|text| format!("{text}\n"))
}

/// Print `value` as pretty JSON on stdout.
pub fn print(value: &impl Serialize) -> ExitCode {
    match text(value) {
        Ok(text) => emit(&text),
        Err(e) => {
            eprintln!("quire-runs: error: cannot encode JSON: {e}");
            ExitCode::from(1)
        }
    }
}
