//! How the pages name things: the address of a run, a job, an artifact
//! and a log; a job's state in words and as classes; a time as "3
//! minutes ago". The lowest of the web's modules: every page, the
//! timeline and the live streams say these alike.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use quire_store::{Job, JobState};

/// Characters a URL path segment keeps as they are.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

pub fn run_url(id: &str) -> String {
    format!("/runs/{}", segment(id))
}

pub fn job_url(run: &str, job: &str) -> String {
    format!("/runs/{}/jobs/{}", segment(run), segment(job))
}

/// `/runs/RUN/artifacts/JOB/PATH`, each segment of the path encoded.
pub fn artifact_url(run: &str, artifact: &quire_model::Artifact) -> String {
    let path: Vec<String> = artifact.path.split('/').map(segment).collect();
    format!(
        "/runs/{}/artifacts/{}/{}",
        segment(run),
        segment(&artifact.job),
        path.join("/")
    )
}

/// "3 minutes ago", for people; the exact time is the element's title.
pub fn ago(now_ms: i64, at_ms: i64) -> String {
    let secs = (now_ms - at_ms).max(0) / 1000;
    let (n, unit) = match secs {
        0..=4 => return "just now".into(),
        5..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        86_400..=5_183_999 => (secs / 86_400, "day"),
        5_184_000..=63_071_999 => (secs / 2_592_000, "month"),
        _ => (secs / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A job's state in words: `failed (allowed)` for a failure its pipeline
/// allows, as `quire-runs show` says it.
pub fn job_state_text(job: &Job) -> String {
    quire_view::text::job_state_text(job.state, job.allow_failure)
}

/// The classes of a job's state: its state, and `allowed` for an allowed
/// failure.
pub fn job_state_class(job: &Job) -> String {
    if job.state == JobState::Failed && job.allow_failure == Some(true) {
        "failed allowed".into()
    } else {
        job.state.to_string()
    }
}
