//! Running one job: its log directory and environment, then its steps in
//! order until one fails, is timed out or is cancelled.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::Instant;

use quire_model::JobState;

use super::report::Reporter;
use super::running::RunningJob;
use super::spawn::Programs;
use super::stop::Stop;
use super::{ExecError, Executor, RunScope, cache, env, step};
use crate::log::CriLog;
use quire_pipeline::pipeline::Job;

/// How a job's steps ended.
pub(super) struct JobEnd {
    pub(super) state: JobState,
    /// The exit code of its last step.
    pub(super) exit_code: Option<i64>,
    /// The job's log, whose end is the last step's: quire's notes after
    /// the job (caches saved, artifacts kept) are appended to it.
    pub(super) last_log: PathBuf,
}

/// Run `job`'s steps until one fails, is timed out or is cancelled.
pub(super) fn run(
    exec: &Executor,
    scope: &RunScope<'_>,
    job: &Job,
    reporter: &Reporter<'_>,
) -> Result<JobEnd, ExecError> {
    // One file for all of the job's steps, not one each: a new file
    // costs more than its bytes on some file systems (ext4 without a
    // journal scans recently deleted inodes for each one).
    let log_path = scope.ctx.logs_dir.join(format!("{}.log", job.id));
    // `logs/`, not what holds it: a run directory deleted meanwhile (its
    // home deleted) is not made again.
    let dir = &scope.ctx.logs_dir;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        done => done.map_err(|source| ExecError::Write {
            what: dir.display().to_string(),
            source,
        })?,
    }
    let mut log = CriLog::create(&log_path)
        .map_err(|source| ExecError::Write {
            what: log_path.display().to_string(),
            source,
        })?
        .capped(exec.max_log_bytes);
    let cgroup = match &scope.ctx.containment {
        Some(run) => run
            .job(&job.id, job.resources.memory_mb)
            .map_err(|source| ExecError::Process {
                job: job.id.clone(),
                source: std::io::Error::other(format!("cannot make the job's cgroup: {source}")),
            })?,
        None => None,
    };
    // The cap stands where it is shorter than the job's own timeout, or
    // the job set none.
    let (timeout, at_deadline) = match (job.timeout, exec.max_job_timeout) {
        (Some(own), Some(cap)) if cap < own => (Some(cap), Stop::MaxTimeout),
        (None, Some(cap)) => (Some(cap), Stop::MaxTimeout),
        (own, _) => (own, Stop::Deadline),
    };
    let running = RunningJob {
        scope,
        job,
        env: env::for_job(&scope.env, job, &scope.ctx.secrets)?,
        log_path,
        deadline: timeout.map(|t| Instant::now() + t),
        at_deadline,
        cgroup,
    };
    let mut programs = Programs::on(running.env.get("PATH").map_or("", String::as_str));
    // Before the first step, and written at the top of its log.
    let mut notes: Vec<String> = scope
        .ctx
        .sandbox
        .as_ref()
        .map(|s| s.notes().to_vec())
        .unwrap_or_default();
    notes.extend(resource_notes(exec, scope, job));
    notes.extend(cache::restore(scope, job));
    let mut seq = 0;
    for step in &job.steps {
        seq += 1;
        let notes = std::mem::take(&mut notes);
        let end = step::run(
            exec,
            &running,
            &mut log,
            seq,
            step,
            programs.of(step),
            &notes,
            reporter,
        )?;
        let state = match end.stop {
            Stop::Exited if end.code == 0 => continue,
            Stop::Exited | Stop::Deadline | Stop::MaxTimeout => JobState::Failed,
            Stop::Cancelled => JobState::Aborted,
        };
        return Ok(running.end(state, Some(end.code)));
    }
    Ok(running.end(JobState::Complete, Some(0)))
}

impl RunningJob<'_> {
    fn end(&self, state: JobState, exit_code: Option<i64>) -> JobEnd {
        JobEnd {
            state,
            exit_code,
            last_log: self.log_path.clone(),
        }
    }
}

/// Lines for the top of the job's log about what its `resources` ask and
/// this executor does not give as asked: CPUs beyond the executor's (the
/// job runs alone), memory its cgroup cannot hold it to or that
/// `job_memory_mb` cuts, and GPUs or node features, which only a cluster's
/// executor has.
fn resource_notes(exec: &Executor, scope: &RunScope<'_>, job: &Job) -> Vec<String> {
    let asks = &job.resources;
    let mut notes = Vec::new();
    if let Some(cpus) = asks.cpus
        && cpus as usize > exec.cpus.max(1)
    {
        notes.push(format!(
            "quire: resources: cpus = {cpus} is more than this machine's {} CPUs; the job runs with no other job of the run beside it",
            exec.cpus.max(1)
        ));
    }
    if let Some(mb) = asks.memory_mb {
        let run = scope.ctx.containment.as_deref();
        match run.and_then(|run| run.job_memory_mb(Some(mb))) {
            Some(got) if got < mb => notes.push(format!(
                "quire: resources: memory = {mb} MiB is more than config.toml's job_memory_mb allows each job; its cgroup's memory.max is {got} MiB"
            )),
            Some(_) => {}
            None => notes.push(format!(
                "quire: resources: memory = {mb} MiB is not enforced: {}",
                run.and_then(|run| run.memory_unenforced())
                    .unwrap_or("there is no cgroup")
            )),
        }
    }
    let cluster: Vec<String> = [
        asks.gpus.filter(|&n| n > 0).map(|n| format!("gpus = {n}")),
        asks.constraint
            .as_ref()
            .map(|c| format!("constraint = {c:?}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !cluster.is_empty() {
        notes.push(format!(
            "quire: resources: {} {} only on a Slurm cluster (docs/PIPELINE.md, \"Resources\"); this job runs on this machine without {}",
            cluster.join(" and "),
            if cluster.len() == 1 { "applies" } else { "apply" },
            if cluster.len() == 1 { "it" } else { "them" },
        ));
    }
    // A constraint is the pusher's text, as a cache path is.
    notes
        .iter()
        .map(|note| scope.redactor.apply_str(note))
        .collect()
}
