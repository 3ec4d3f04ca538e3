//! The domain: runs, jobs, steps and their states, as stored.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stored or typed value that is not one of an enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a {what}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub text: String,
}

/// Declares a string-valued enum stored as TEXT: `as_str`, `parse`,
/// `FromStr`, `Display`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value named `text`, as stored and as typed on the command line.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                $name::parse(text).ok_or_else(|| UnknownValue {
                    what: stringify!($name),
                    text: text.to_string(),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// A run's state (docs/STATE.md).
    RunState {
        Pending => "pending",
        Active => "active",
        Complete => "complete",
        Failed => "failed",
        Superseded => "superseded",
    }
}

impl RunState {
    /// Terminal states never change.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Complete | RunState::Failed | RunState::Superseded
        )
    }

    /// Pending and active runs are live: at most one per (repo, ref).
    pub fn is_live(self) -> bool {
        !self.is_terminal()
    }
}

text_enum! {
    /// How a `[[notify]]` command run for an ended run went.
    NotificationState {
        Running => "running",
        Ok => "ok",
        Failed => "failed",
        TimedOut => "timed-out",
    }
}

/// A `[[notify]]` command run for an ended run (docs/OPERATIONS.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Its place among the config's `[[notify]]` entries when it ran.
    pub position: i64,
    /// Its argv.
    pub command: Vec<String>,
    pub state: NotificationState,
    pub exit_code: Option<i64>,
    /// The last non-empty line of its stderr, or why it could not start.
    pub stderr_tail: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

text_enum! {
    /// What recorded a run.
    RunEvent {
        Push => "push",
        Retry => "retry",
        Trigger => "trigger",
    }
}

text_enum! {
    /// Why a run failed.
    FailureKind {
        PipelineFailure => "pipeline-failure",
        PipelineInvalid => "pipeline-invalid",
        ProcessCrashed => "process-crashed",
        Orphaned => "orphaned",
        Cancelled => "cancelled",
        ConfigInvalid => "config-invalid",
        NodeLost => "node-lost",
    }
}

text_enum! {
    /// A job's state (docs/STATE.md).
    JobState {
        Pending => "pending",
        Active => "active",
        Complete => "complete",
        Failed => "failed",
        Skipped => "skipped",
        Aborted => "aborted",
    }
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Pending | JobState::Active)
    }
}

text_enum! {
    /// How the worker that executed a run kept track of every process its
    /// steps started (docs/PIPELINE.md, "What a job leaves running"):
    /// `cgroup`, a cgroup v2 per job under the run's own, ended with
    /// `cgroup.kill`; `subreaper`, no cgroup: the worker is the child
    /// subreaper of everything its steps start, and ends them by ancestry.
    Containment {
        Cgroup => "cgroup",
        Subreaper => "subreaper",
    }
}

/// A full git object id as git prints it: 40 (SHA-1) or 64 (SHA-256)
/// lowercase hex digits.
pub fn is_object_id(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64)
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A run id of quire's shape: a UUID written as quire writes one, 36
/// characters, hex digits in groups of 8-4-4-4-12 joined by `-`. Only such an
/// id becomes a path (`runs/<id>/`); one from outside (an upstream store, a
/// row written by hand) that is not of this shape is rewritten where it
/// enters or refused.
pub fn is_run_id(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The longest job id, in bytes: a job id is a folder's name
/// (`runs/<id>/logs/<job>/`), which file systems bound.
pub const MAX_JOB_ID_LEN: usize = 128;

/// Whether `id` can be a job's id, the one rule for pipelines
/// (`[jobs.<id>]`) and for job folders taken over from upstream quire
/// (`migrate-from`): letters, digits, `_` and `-`, at least one and at
/// most [`MAX_JOB_ID_LEN`], so it is safe as a folder's name.
pub fn is_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_JOB_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The worker that holds an active run, and until when it holds it unless it
/// renews its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerLease {
    pub id: String,
    pub pid: u32,
    pub lease_expires_at_ms: i64,
}

/// One run: one push of one ref, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: String,
    /// The repository's id in `repos`.
    pub repo_id: i64,
    /// The repository's display name (docs/OPERATIONS.md, "Repositories"), as it is now.
    pub repo: String,
    pub ref_name: String,
    pub sha: String,
    pub state: RunState,
    pub failure_kind: Option<FailureKind>,
    /// One line: why the run failed, where something more than the kind is known.
    pub failure_detail: Option<String>,
    pub pushed_at_ms: i64,
    pub queued_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// The bare repository's canonical path (unknown for a repository known
    /// only by name from an upstream store).
    pub git_dir: Option<String>,
    pub traceparent: Option<String>,
    pub worker: Option<WorkerLease>,
    /// The ref's tip before the push, when the push moved an existing ref.
    pub previous_sha: Option<String>,
    /// How its worker contained the processes of its steps; none for a run
    /// no worker has started (or one from before quire recorded it).
    pub containment: Option<Containment>,
    /// The run's cgroup v2 directory, with `Containment::Cgroup`.
    pub cgroup: Option<String>,
    /// How its steps were confined (the sandbox), as its worker said it in
    /// one line; none for a run no worker has started.
    pub sandbox: Option<String>,
    /// The commit's subject (its message's first line), read when the run
    /// was recorded; none for runs from before 0015.
    pub subject: Option<String>,
    /// The commit's author, `Name <email>`; likewise.
    pub author: Option<String>,
    /// What recorded it; none for runs from before 0015.
    pub event: Option<RunEvent>,
    /// The run that took this superseded run's place; none when the ref
    /// was deleted or its new commit recorded no run.
    pub superseded_by: Option<String>,
    /// For a retry: the run it retried (0023; none for retries recorded
    /// before).
    pub retry_of: Option<String>,
    /// For a run upstream quire left pending or active: the upstream
    /// version it came from. quire failed it at migration (`orphaned`) and
    /// never ran it; its finish time is not upstream's, so it has no
    /// duration.
    pub upstream_unfinished: Option<i64>,
}

impl Run {
    /// `complete`, or `failed (orphaned)`: the state with the failure kind.
    pub fn state_text(&self) -> String {
        match self.failure_kind {
            Some(kind) => format!("{} ({kind})", self.state),
            None => self.state.to_string(),
        }
    }

    /// Wall time from start to finish, or to `now_ms` while the run is
    /// active; none for a run that never started, nor for one upstream quire
    /// left unfinished (upstream recorded no finish).
    pub fn duration_ms(&self, now_ms: i64) -> Option<i64> {
        if self.upstream_unfinished.is_some() {
            return None;
        }
        let start = self.started_at_ms?;
        let end = match self.finished_at_ms {
            Some(end) => end,
            None if self.state == RunState::Active => now_ms,
            None => return None,
        };
        Some((end - start).max(0))
    }
}

text_enum! {
    /// How quire knows a repository: `quire-run install` put its hook in, a
    /// push or trigger came through, or only old runs name it.
    HookState {
        Installed => "installed",
        Seen => "seen",
        Unknown => "unknown",
    }
}

/// A repository: identified by the canonical path of its bare git
/// directory, named for people (docs/OPERATIONS.md, "Repositories").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub id: i64,
    pub name: String,
    /// Canonical path; None for a repository known only by name from an
    /// upgraded store, until a push to a matching path adopts it.
    pub git_dir: Option<String>,
    pub hook_state: HookState,
    pub first_seen_at_ms: i64,
    pub installed_at_ms: Option<i64>,
    /// Names it had before, newest first.
    pub former_names: Vec<String>,
}

/// One job of a run, in plan order (`position`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub position: i64,
    pub state: JobState,
    pub exit_code: Option<i64>,
    pub skip_reason: Option<String>,
    /// Why an active job has not begun yet, as its executor said (a
    /// cluster's queue); none when nothing holds it.
    pub waiting: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// The job's `allow_failure`, recorded with the plan (ingest of
    /// `run_started`); none for jobs from before 0015, and for jobs an
    /// older quire planned whose worker died before the run ended (it
    /// recorded this at the end).
    pub allow_failure: Option<bool>,
}

/// One shell step of a job (a row of `sh_events`); `exit_code` and
/// `finished_at_ms` are unset while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub seq: i64,
    pub cmd: String,
    pub exit_code: Option<i64>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// A file a job kept (`runs/<id>/artifacts/<job>/<path>`), as recorded when
/// it was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub job: String,
    /// Relative to the workspace, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl Artifact {
    /// `<job>/<path>` under the run's `artifacts/`, if the recorded job and
    /// path stay inside the job's directory (no `..`, no absolute path, no
    /// `/` in the job): the one place a stored artifact name becomes a
    /// path, for `quire-runs download` and the web's download links.
    pub fn relative_path(&self) -> Option<std::path::PathBuf> {
        use std::path::{Component, Path};
        let rel = Path::new(&self.job).join(&self.path);
        let inside = !self.job.contains('/')
            && rel.components().all(|c| matches!(c, Component::Normal(_)))
            && rel.components().count() >= 2;
        inside.then_some(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_safe_folder_names_of_at_most_128_bytes() {
        assert!(is_job_id("build-1_x"));
        assert!(is_job_id(&"a".repeat(MAX_JOB_ID_LEN)));
        for bad in [
            "",
            "../x",
            "a/b",
            "a b",
            "t\u{435}st",
            &"a".repeat(MAX_JOB_ID_LEN + 1),
        ] {
            assert!(!is_job_id(bad), "{bad:?}");
        }
    }
}
