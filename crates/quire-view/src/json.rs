//! The `--json` objects: the field names and types docs/CLI.md promises,
//! and printing them whole or with only the fields `--json FIELD,...`
//! names.

use quire_model::Artifact;
use quire_store::query::{JobDetail, RunDetail};
use quire_store::{Containment, FailureKind, JobState, Run, RunState, Step};
use serde::Serialize;

use crate::text::rfc3339;

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
    /// For a retry: the run it retried (null for retries from before 0023).
    pub retry_of: Option<&'a str>,
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
    /// Why an active job has not begun (a cluster's queue); null else.
    pub waiting: Option<&'a str>,
    pub started_at: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished_at: Option<String>,
    pub finished_at_ms: Option<i64>,
    /// The job's `allow_failure`, recorded with the plan (null for jobs
    /// from before 0015).
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
        retry_of: run.retry_of.as_deref(),
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
        waiting: job
            .waiting
            .as_deref()
            .filter(|_| job.state == JobState::Active),
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
pub fn whole_text(value: &impl Serialize) -> serde_json::Result<String> {
    serde_json::to_string_pretty(value).map(|text| format!("{text}\n"))
}

/// The fields of a run object (`list`), in their order.
pub const RUN_FIELDS: &[&str] = &[
    "id",
    "repo",
    "ref",
    "sha",
    "state",
    "failure_kind",
    "failure_detail",
    "pushed_at",
    "pushed_at_ms",
    "queued_at",
    "queued_at_ms",
    "started_at",
    "started_at_ms",
    "finished_at",
    "finished_at_ms",
    "duration_ms",
    "git_dir",
    "traceparent",
    "worker",
    "containment",
    "cgroup",
    "sandbox",
    "subject",
    "author",
    "event",
    "superseded_by",
    "retry_of",
];

/// The fields of `show`'s object: a run's, then these.
pub const DETAIL_FIELDS: &[&str] = &["jobs", "artifacts", "notifications"];

/// What `--json` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// Every field (`--json` alone).
    All,
    /// These fields, in the objects' order.
    Only(Vec<&'static str>),
}

impl Fields {
    /// `--json`'s value: empty for every field, else fields separated by
    /// commas, each one of `valid`; an unknown one is an error naming them.
    pub fn parse(given: &str, valid: &[&'static str]) -> Result<Fields, String> {
        let mut wanted = Vec::new();
        for name in given.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match valid.iter().find(|v| **v == name) {
                Some(field) => wanted.push(*field),
                None => {
                    return Err(format!(
                        "--json: unknown field {name:?}; the fields are: {}",
                        valid.join(", ")
                    ));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(Fields::All);
        }
        Ok(Fields::Only(
            valid
                .iter()
                .filter(|field| wanted.contains(field))
                .copied()
                .collect(),
        ))
    }
}

/// An object with only some of its fields, in the given order (serde_json's
/// own map would sort them).
#[derive(Debug)]
struct Picked(Vec<(&'static str, serde_json::Value)>);

impl Picked {
    fn of(
        mut object: serde_json::Map<String, serde_json::Value>,
        fields: &[&'static str],
    ) -> Picked {
        Picked(
            fields
                .iter()
                .map(|f| (*f, object.remove(*f).unwrap_or(serde_json::Value::Null)))
                .collect(),
        )
    }
}

impl Serialize for Picked {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// An object or an array of objects with only some of their fields.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Shaped {
    One(Picked),
    Many(Vec<Picked>),
    Other(serde_json::Value),
}

impl Shaped {
    fn of(value: serde_json::Value, fields: &[&'static str]) -> Shaped {
        match value {
            serde_json::Value::Object(object) => Shaped::One(Picked::of(object, fields)),
            serde_json::Value::Array(items) if items.iter().all(serde_json::Value::is_object) => {
                Shaped::Many(
                    items
                        .into_iter()
                        .filter_map(|item| match item {
                            serde_json::Value::Object(object) => Some(Picked::of(object, fields)),
                            _ => None,
                        })
                        .collect(),
                )
            }
            other => Shaped::Other(other),
        }
    }
}

/// `value` (an object or an array of objects) as JSON text with the
/// fields asked for, pretty or compact.
pub fn text(value: &impl Serialize, fields: &Fields, pretty: bool) -> serde_json::Result<String> {
    fn encode(value: &impl Serialize, pretty: bool) -> serde_json::Result<String> {
        if pretty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        }
    }
    match fields {
        Fields::All => encode(value, pretty),
        Fields::Only(only) => encode(&Shaped::of(serde_json::to_value(value)?, only), pretty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_taken_in_the_objects_order_and_checked() {
        assert_eq!(Fields::parse("", RUN_FIELDS), Ok(Fields::All));
        assert_eq!(Fields::parse(" , ", RUN_FIELDS), Ok(Fields::All));
        assert_eq!(
            Fields::parse("state, id,ref,id", RUN_FIELDS),
            Ok(Fields::Only(vec!["id", "ref", "state"]))
        );
        let error = Fields::parse("id,colour", RUN_FIELDS).unwrap_err();
        assert!(
            error.starts_with("--json: unknown field \"colour\"; the fields are: id, repo, "),
            "{error}"
        );
    }

    #[test]
    fn only_the_fields_asked_for_are_written_in_order() {
        let value = serde_json::json!([{"b": 1, "a": {"x": [2]}, "c": null}]);
        let text = text(&value, &Fields::Only(vec!["c", "a"]), false).unwrap();
        assert_eq!(text, r#"[{"c":null,"a":{"x":[2]}}]"#);
        let one = serde_json::json!({"b": 1, "a": 2});
        assert_eq!(
            super::text(&one, &Fields::Only(vec!["b"]), false).unwrap(),
            r#"{"b":1}"#
        );
    }
}
