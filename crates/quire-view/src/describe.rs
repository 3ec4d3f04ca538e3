//! Words for what the store records: what a failure kind means, how a run
//! was contained, how a notifier ended. `show`, the web view and the
//! notifiers say them alike.

use quire_store::{Containment, FailureKind, NotificationState};

/// How a notifier ended: `ok`, `failed, exit 3`, `timed-out`, `running`.
pub fn notification_outcome(n: &quire_store::Notification) -> String {
    match (n.state, n.exit_code) {
        (NotificationState::Ok, _) => "ok".to_string(),
        (NotificationState::Running, _) if n.finished_at_ms.is_none() => "running".to_string(),
        (NotificationState::Failed, Some(code)) => format!("failed, exit {code}"),
        (state, _) => state.to_string(),
    }
}

/// How the run's processes were contained, for people.
pub fn contained(containment: Containment, cgroup: Option<&str>) -> String {
    match (containment, cgroup) {
        (Containment::Cgroup, Some(dir)) => format!("by cgroup {dir}"),
        (Containment::Cgroup, None) => "by cgroup".to_string(),
        (Containment::Subreaper, _) => {
            "by subreaper (no cgroup: the worker ended its steps' processes by ancestry)"
                .to_string()
        }
    }
}

/// One sentence for people: what this kind of failure means.
pub fn meaning(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::PipelineFailure => "a job of the pipeline failed",
        FailureKind::PipelineInvalid => {
            "the pipeline file is invalid (missing fields, a cycle, unparsable)"
        }
        FailureKind::ProcessCrashed => "the worker crashed or could not execute the run",
        FailureKind::Orphaned => "reconcile found no live worker for the run",
        FailureKind::Cancelled => "the run was cancelled with `quire-runs cancel`",
        FailureKind::ConfigInvalid => {
            "the home's config.toml could not be read when the push came; fix it, then \
             `quire-runs retry` the run"
        }
        FailureKind::NodeLost => {
            "a cluster node died or left under a job, which could not end on its own; \
             `quire-runs retry` runs it again"
        }
    }
}
