//! The executor: runs a pipeline's jobs in dependency order, several at
//! once, each step a local child process in its own process group,
//! streaming output into CRI log files and reporting events. Steps can later
//! run elsewhere (a container, a cluster job) behind the same
//! [`Executor::run`] contract.
//!
//! This file decides whether a job runs and how the run ends; `schedule`
//! when each job starts, on a thread of its own, and carries what the job
//! threads report to the sink; `job` runs one job's steps, `step` one step
//! from its start to reaping it, with the environment from `env`, the
//! process from `spawn`, its output copied by `pump`, stopped on cancel or
//! deadline by `stop`, and whatever it leaves running ended by `sweep`;
//! `artifacts` keeps the files a job declares once it has ended,
//! `cache` has the run's [`JobCache`] restore and save a job's caches, and
//! `sandbox` confines each step's process (Landlock, `run_as`).

mod artifacts;
mod cache;
mod contain;
mod env;
mod job;
mod pump;
mod remote;
mod report;
mod running;
mod sandbox;
mod schedule;
mod spawn;
mod step;
mod stop;
mod sweep;
mod vspawn;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use quire_model::clock::now_ms;
use quire_model::events::Event;
use quire_model::{FailureKind, JobState, RunState};

use crate::contain::RunContainment;
use crate::events::EventSink;
use crate::log::Redactor;
use quire_model::refs::RefName;
use quire_pipeline::pipeline::{Job, Pipeline};

pub use artifacts::{CopyError, copy_hashed};
pub use cache::JobCache;
#[cfg(test)]
#[cfg(test)]
pub(crate) use contain::enter_cgroup;
pub use env::STEP_PATH;
pub use remote::{LOST_EXIT, Remote, job_name, send_entry, send_file, times_head};
pub use sandbox::{
    Decision, REQUIRED_ABI, Sandbox, SandboxMode, SandboxPolicy, StepUser, decide, kernel_abi,
};
pub use stop::{MAX_TIMEOUT_NOTE, TIMEOUT_NOTE};

/// What the executor needs to know about the run.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: String,
    pub repo: String,
    pub ref_name: String,
    pub sha: String,
    /// The ref's previous tip, when the push moved an existing ref.
    pub previous_sha: Option<String>,
    pub traceparent: String,
    /// The materialized tree, where the worker's own hands (caches,
    /// artifacts) reach it.
    pub workspace: PathBuf,
    /// Where the steps see that same tree, when it is not `workspace`: the
    /// worker shows it at a path that is the same for every run
    /// (docs/PIPELINE.md, "Workspace"). Steps run here, and
    /// `QUIRE_WORKSPACE` names it.
    pub step_workspace: Option<PathBuf>,
    /// `logs/`: each job's steps write `<job>.log` under it.
    pub logs_dir: PathBuf,
    /// The home's secrets (name, value). A job gets those it asks for as
    /// variables; every value is redacted from logs and recorded commands.
    pub secrets: Vec<(String, String)>,
    /// Where jobs' caches are kept between runs; none, and a job's `cache`
    /// is ignored (`quire-run exec`).
    pub cache: Option<Arc<dyn JobCache>>,
    /// How the run's processes are contained ([`crate::contain`]); none,
    /// and what its steps leave is found only by its `QUIRE_RUN_ID`.
    pub containment: Option<Arc<RunContainment>>,
    /// The run's own HOME and TMPDIR for its steps (`runs/<id>/home`,
    /// `runs/<id>/tmp`); none, and steps get the worker's (`quire-run
    /// exec`).
    pub step_home: Option<PathBuf>,
    pub step_tmpdir: Option<PathBuf>,
    /// The admin's variables for steps (config.toml's `[steps] env`),
    /// before the pipeline's; when some (even empty), steps do not inherit
    /// the worker's PATH: they get this one's, else [`STEP_PATH`]. None:
    /// the caller's PATH (`quire-run exec`).
    pub step_env: Option<Vec<(String, String)>>,
    /// What confines the steps; none, and nothing does (`quire-run exec`).
    pub sandbox: Option<Arc<Sandbox>>,
    /// The run's network namespace, which every step joins
    /// ([`crate::netns`]); none, and steps have the worker's network.
    pub network: Option<Arc<crate::netns::RunNetwork>>,
    /// Where the run's jobs run when not here ([`crate::remote`], the
    /// executor seam); none: on this machine.
    pub remote: Option<Remote>,
}

impl RunContext {
    /// Where steps run and see the workspace.
    pub fn steps_workspace(&self) -> &std::path::Path {
        self.step_workspace.as_deref().unwrap_or(&self.workspace)
    }

    /// `artifacts/`, beside `logs/` in the run's directory: each job's kept
    /// files go to `<job>/<path>` under it.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.logs_dir.with_file_name("artifacts")
    }
}

/// A request, from any thread, to stop the run: every running step's
/// process group is terminated and the run ends as cancelled.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for whoever sets it from outside the executor
    /// (a signal handler).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

/// How a run ended, from the executor's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    /// Every job that had to pass passed.
    Complete,
    /// A job without `allow_failure` failed. `kind` is `node-lost` when
    /// every such job was lost with its cluster node, else
    /// `pipeline-failure`; `hosts` names the failed jobs that failed
    /// because of the host they were sent to (a node lost under them, or
    /// never started), not because of their steps: empty on the local
    /// executor. The executor alone knows this; no line a step prints can
    /// claim it.
    Failed {
        kind: FailureKind,
        hosts: Vec<HostFailure>,
    },
    /// Cancelled from outside; the run's state is the canceller's business.
    Cancelled,
}

/// A job that its executor's host failed, rather than its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    pub job: String,
    /// The node the job was lost with; `None` when the host never started
    /// the job.
    pub node: Option<String>,
    /// What the host said, redacted: `srun: error: Node failure on ...`,
    /// or, for a job it never started, its name and why (`slurm: srun:
    /// error: invalid partition ...`).
    pub why: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot write {what}: {source}")]
    Write { what: String, source: io::Error },
    #[error("cannot run a step of job {job}: {source}")]
    Process { job: String, source: io::Error },
    #[error("job {job} asks for secret {name}, which the home's config.toml does not define")]
    MissingSecret { job: String, name: String },
}

/// Runs pipelines. The defaults suit a worker; tests shorten them.
#[derive(Debug, Clone)]
pub struct Executor {
    /// Between SIGTERM and SIGKILL of a step's process group.
    pub grace: Duration,
    /// Log lines longer than this are written as partial chunks.
    pub max_line: usize,
    /// A step's log holds at most this many bytes of its output
    /// (`max_log_mb`); what it prints after that is read, so it never
    /// blocks, and counted in a last line, not written.
    pub max_log_bytes: u64,
    /// How often a running step checks for cancellation and its deadline,
    /// and how often the sink is flushed while jobs run.
    pub tick: Duration,
    /// How many jobs may run at once (0 counts as 1). Among the jobs whose
    /// inputs are done, those first in the plan start first.
    pub max_parallel_jobs: usize,
    /// The CPUs the jobs running at once may ask for together (a job's
    /// `resources.cpus`, 1 for a job that sets none; 0 counts as 1): the
    /// machine's, unless a test says otherwise. A job asking for more runs
    /// alone.
    pub cpus: usize,
    /// The longest any job may run (config.toml's `max_job_timeout`): it
    /// caps each job's `timeout`, and is the timeout of a job that sets
    /// none; no cap when none.
    pub max_job_timeout: Option<Duration>,
}

impl Default for Executor {
    fn default() -> Executor {
        Executor {
            grace: Duration::from_secs(1),
            max_line: 16 * 1024,
            max_log_bytes: DEFAULT_MAX_LOG_MB * 1024 * 1024,
            tick: Duration::from_millis(50),
            max_parallel_jobs: machine_cpus(),
            cpus: machine_cpus(),
            max_job_timeout: None,
        }
    }
}

/// A step's log cap when the home sets none, in MiB.
pub const DEFAULT_MAX_LOG_MB: u64 = 100;

/// The machine's CPUs (1 if that is unknown): as many jobs at once by
/// default, and what their `resources.cpus` may add up to.
fn machine_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What every job of one run shares, across the threads its jobs run on.
struct RunScope<'a> {
    ctx: &'a RunContext,
    target: RefName,
    /// The variables every step starts from, later entries winning.
    env: Vec<(String, String)>,
    redactor: Redactor,
    halt: Halt<'a>,
}

/// Why the running steps must stop: a cancel from outside, or the executor
/// giving up on the run (its sink failed, or a job hit an error of quire's
/// own).
struct Halt<'a> {
    cancel: &'a Cancel,
    given_up: AtomicBool,
}

impl Halt<'_> {
    fn is_set(&self) -> bool {
        self.cancel.is_cancelled() || self.given_up()
    }

    fn given_up(&self) -> bool {
        self.given_up.load(Ordering::SeqCst)
    }

    fn give_up(&self) {
        self.given_up.store(true, Ordering::SeqCst);
    }
}

impl Executor {
    /// Run every job of `pipeline` for the ref in `ctx`: each once the jobs
    /// it needs have ended, up to `max_parallel_jobs` at once.
    pub fn run(
        &self,
        pipeline: &Pipeline,
        ctx: &RunContext,
        sink: &mut dyn EventSink,
        cancel: &Cancel,
    ) -> Result<RunResult, ExecError> {
        let order = pipeline.order();
        emit(
            sink,
            Event::RunStarted {
                at_ms: now_ms(),
                jobs: order.iter().map(|&i| pipeline.jobs[i].id.clone()).collect(),
                allow_failure: order
                    .iter()
                    .map(|&i| &pipeline.jobs[i])
                    .filter(|job| job.allow_failure)
                    .map(|job| job.id.clone())
                    .collect(),
            },
        )?;
        let target = RefName::new(ctx.ref_name.as_str());
        let scope = RunScope {
            ctx,
            env: env::for_run(pipeline, ctx, &target),
            target,
            redactor: Redactor::new(ctx.secrets.iter().map(|(_, v)| v.as_str())),
            halt: Halt {
                cancel,
                given_up: AtomicBool::new(false),
            },
        };
        let ended = schedule::run(self, pipeline, &scope, order, sink);
        remote::wait_for_hosts();
        let (ended, hosts) = ended?;
        finish(pipeline, &ended, hosts, cancel, sink)
    }
}

impl RunScope<'_> {
    /// Why `job`, whose inputs have all ended, does not run: the run was
    /// cancelled, its `when` does not match, or a job it needs did not pass.
    fn skip_reason(
        &self,
        pipeline: &Pipeline,
        job: &Job,
        ended: &[Option<JobState>],
    ) -> Option<String> {
        if self.halt.cancel.is_cancelled() {
            Some("run cancelled".to_string())
        } else if !job.runs_on(&self.target) {
            Some(format!("when does not match {}", self.ctx.ref_name))
        } else {
            blocked_by(pipeline, job, ended)
        }
    }
}

/// Why `job` cannot run: a job it needs failed (without allow_failure), was
/// skipped, or was aborted.
fn blocked_by(pipeline: &Pipeline, job: &Job, ended: &[Option<JobState>]) -> Option<String> {
    for need in job.needs() {
        let name = &pipeline.jobs[need].id;
        match ended[need] {
            Some(JobState::Failed) if !pipeline.jobs[need].allow_failure => {
                return Some(format!("needs {name}, which failed"));
            }
            Some(JobState::Skipped) => return Some(format!("needs {name}, which was skipped")),
            Some(JobState::Aborted) => return Some(format!("needs {name}, which was aborted")),
            _ => {}
        }
    }
    None
}

/// The run's result from how its jobs ended. A cancelled run reports no
/// `RunFinished`: its state is the canceller's to record.
fn finish(
    pipeline: &Pipeline,
    ended: &[Option<JobState>],
    hosts: Vec<HostFailure>,
    cancel: &Cancel,
    sink: &mut dyn EventSink,
) -> Result<RunResult, ExecError> {
    if cancel.is_cancelled() {
        flush(sink)?;
        return Ok(RunResult::Cancelled);
    }
    let failed: Vec<&str> = pipeline
        .jobs
        .iter()
        .zip(ended)
        .filter(|(job, state)| **state == Some(JobState::Failed) && !job.allow_failure)
        .map(|(job, _)| job.id.as_str())
        .collect();
    let (state, failure_kind, result) = if !failed.is_empty() {
        let lost = |job: &str| hosts.iter().any(|h| h.job == job && h.node.is_some());
        let kind = if failed.iter().all(|job| lost(job)) {
            FailureKind::NodeLost
        } else {
            FailureKind::PipelineFailure
        };
        (
            RunState::Failed,
            Some(kind),
            RunResult::Failed { kind, hosts },
        )
    } else {
        (RunState::Complete, None, RunResult::Complete)
    };
    emit(
        sink,
        Event::RunFinished {
            at_ms: now_ms(),
            state,
            failure_kind,
        },
    )?;
    flush(sink)?;
    Ok(result)
}

fn emit(sink: &mut dyn EventSink, event: Event) -> Result<(), ExecError> {
    sink.emit(&event).map_err(events_error)
}

fn flush(sink: &mut dyn EventSink) -> Result<(), ExecError> {
    sink.flush().map_err(events_error)
}

fn events_error(source: io::Error) -> ExecError {
    ExecError::Write {
        what: "the run's events".into(),
        source,
    }
}
