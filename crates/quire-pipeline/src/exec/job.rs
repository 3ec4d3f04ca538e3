//! Running one job: its log directory and environment, then its steps in
//! order until one fails, is timed out or is cancelled.

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::Instant;

use quire_model::JobState;

use super::spawn::Programs;
use super::stop::Stop;
use super::{ExecError, Executor, RunScope, env, step};
use crate::events::EventSink;
use crate::pipeline::Job;

/// A job while it runs: what each of its steps shares.
pub(super) struct RunningJob<'a> {
    pub(super) scope: &'a RunScope<'a>,
    pub(super) job: &'a Job,
    pub(super) env: HashMap<String, String>,
    /// `logs/<job>/`, holding `<seq>.log` for each step.
    pub(super) log_dir: PathBuf,
    /// When the job's timeout runs out, for every step alike.
    pub(super) deadline: Option<Instant>,
}

/// Run `job`'s steps; how it ended, and the exit code of its last step.
pub(super) fn run(
    exec: &Executor,
    scope: &RunScope<'_>,
    job: &Job,
    sink: &mut dyn EventSink,
) -> Result<(JobState, Option<i64>), ExecError> {
    let log_dir = scope.ctx.logs_dir.join(&job.id);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&log_dir)
        .map_err(|source| ExecError::Write {
            what: log_dir.display().to_string(),
            source,
        })?;
    let running = RunningJob {
        scope,
        job,
        env: env::for_job(&scope.env, job, &scope.ctx.secrets)?,
        log_dir,
        deadline: job.timeout.map(|t| Instant::now() + t),
    };
    let mut programs = Programs::on(running.env.get("PATH").map_or("", String::as_str));
    for (n, step) in job.steps.iter().enumerate() {
        let seq = n as i64 + 1;
        let end = step::run(exec, &running, seq, step, programs.of(step), sink)?;
        match end.stop {
            Stop::Exited if end.code == 0 => {}
            Stop::Exited | Stop::Deadline => return Ok((JobState::Failed, Some(end.code))),
            Stop::Cancelled => return Ok((JobState::Aborted, Some(end.code))),
        }
    }
    Ok((JobState::Complete, Some(0)))
}
