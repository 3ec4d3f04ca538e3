//! The executor: runs a pipeline's jobs in order, each step a local child
//! process in its own process group, streaming output into CRI log files
//! and reporting events. Steps can later run elsewhere (a container, a
//! cluster job) behind the same [`Executor::run`] contract.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quire_model::events::Event;
use quire_model::{JobState, RunState};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{
    Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, kill_process_group, pidfd_open, waitid,
};

use crate::events::EventSink;
use crate::log::{CriLog, Lines, Redactor, Stream};
use crate::pipeline::{Job, Pipeline, Step};
use crate::plan::RefKind;

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
    /// The materialized tree; every step runs here.
    pub workspace: PathBuf,
    /// `logs/`: each step writes `<job>/<seq>.log` under it.
    pub logs_dir: PathBuf,
    /// The home's secrets (name, value). A job gets those it asks for as
    /// variables; every value is redacted from logs and recorded commands.
    pub secrets: Vec<(String, String)>,
}

/// A request, from any thread, to stop the run: the running step's process
/// group is terminated and the run ends as cancelled.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a run ended, from the executor's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunResult {
    /// Every job that had to pass passed.
    Complete,
    /// A job without `allow_failure` failed.
    Failed,
    /// Cancelled from outside; the run's state is the canceller's business.
    Cancelled,
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

/// Variables of the worker's own environment a step may see; everything
/// else (QUIRE_HOME, GIT_DIR and the rest of a hook's environment) stays out.
const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "SHELL",
];

/// Runs pipelines. The defaults suit a worker; tests shorten them.
#[derive(Debug, Clone)]
pub struct Executor {
    /// Between SIGTERM and SIGKILL of a step's process group.
    pub grace: Duration,
    /// Log lines longer than this are written as partial chunks.
    pub max_line: usize,
    /// How often a running step checks for cancellation and its deadline.
    pub tick: Duration,
}

impl Default for Executor {
    fn default() -> Executor {
        Executor {
            grace: Duration::from_secs(1),
            max_line: 16 * 1024,
            tick: Duration::from_millis(50),
        }
    }
}

/// What a running step tells the job that runs it.
enum StepNote {
    /// The step's process started, or could not be started.
    Started,
    /// Nothing happened for a tick: a good moment to flush batched events.
    Idle,
}

/// How one step ended.
enum StepEnd {
    Exited(i64),
    TimedOut(i64),
    Cancelled(i64),
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

fn now_ms() -> i64 {
    quire_model::clock::now_ms()
}

impl Executor {
    /// Run every job of `pipeline` for the ref in `ctx`, in dependency order.
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
            },
        )?;
        let target = RefKind::of(&ctx.ref_name);
        let base_env = self.base_env(pipeline, ctx, &target);
        let redactor = Redactor::new(ctx.secrets.iter().map(|(_, v)| v.as_str()));
        let mut ended: Vec<Option<JobState>> = vec![None; pipeline.jobs.len()];
        let mut failed = false;

        for &i in &order {
            let job = &pipeline.jobs[i];
            let skip = if cancel.is_cancelled() {
                Some("run cancelled".to_string())
            } else if !job.runs_on(&target) {
                Some(format!("when does not match {}", ctx.ref_name))
            } else {
                blocked_by(pipeline, job, &ended)
            };
            if let Some(reason) = skip {
                ended[i] = Some(JobState::Skipped);
                emit(
                    sink,
                    Event::JobSkipped {
                        at_ms: now_ms(),
                        job: job.id.clone(),
                        reason,
                    },
                )?;
                continue;
            }
            emit(
                sink,
                Event::JobStarted {
                    at_ms: now_ms(),
                    job: job.id.clone(),
                },
            )?;
            let outcome = self.run_job(job, &base_env, ctx, &redactor, sink, cancel);
            // Whatever a step started and left behind, even a daemon that
            // left the step's process group, ends with its job.
            crate::processes::kill(&ctx.run_id);
            let (state, exit_code) = outcome?;
            ended[i] = Some(state);
            if state == JobState::Failed && !job.allow_failure {
                failed = true;
            }
            emit(
                sink,
                Event::JobFinished {
                    at_ms: now_ms(),
                    job: job.id.clone(),
                    state,
                    exit_code,
                },
            )?;
        }

        if cancel.is_cancelled() {
            flush(sink)?;
            return Ok(RunResult::Cancelled);
        }
        let (state, kind, result) = if failed {
            (
                RunState::Failed,
                Some(quire_model::FailureKind::PipelineFailure),
                RunResult::Failed,
            )
        } else {
            (RunState::Complete, None, RunResult::Complete)
        };
        emit(
            sink,
            Event::RunFinished {
                at_ms: now_ms(),
                state,
                failure_kind: kind,
            },
        )?;
        flush(sink)?;
        Ok(result)
    }

    /// The environment every step starts from (docs/PIPELINE.md, "Environment").
    fn base_env(
        &self,
        pipeline: &Pipeline,
        ctx: &RunContext,
        target: &RefKind,
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = PASSED_THROUGH
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
            .collect();
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
        }
        env.extend(pipeline.env.iter().cloned());
        env.push(("CI".into(), "true".into()));
        env.push(("QUIRE_RUN_ID".into(), ctx.run_id.clone()));
        env.push(("QUIRE_REPO".into(), ctx.repo.clone()));
        env.push(("QUIRE_REF".into(), ctx.ref_name.clone()));
        env.push(("QUIRE_SHA".into(), ctx.sha.clone()));
        match target {
            RefKind::Branch(name) => env.push(("QUIRE_BRANCH".into(), name.clone())),
            RefKind::Tag(name) => env.push(("QUIRE_TAG".into(), name.clone())),
            RefKind::Other(_) => {}
        }
        if let Some(previous) = &ctx.previous_sha {
            env.push(("QUIRE_PREVIOUS_SHA".into(), previous.clone()));
        }
        env.push((
            "QUIRE_WORKSPACE".into(),
            ctx.workspace.display().to_string(),
        ));
        env.push(("TRACEPARENT".into(), ctx.traceparent.clone()));
        env
    }

    fn run_job(
        &self,
        job: &Job,
        base_env: &[(String, String)],
        ctx: &RunContext,
        redactor: &Redactor,
        sink: &mut dyn EventSink,
        cancel: &Cancel,
    ) -> Result<(JobState, Option<i64>), ExecError> {
        let log_dir = ctx.logs_dir.join(&job.id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&log_dir)
            .map_err(|source| ExecError::Write {
                what: log_dir.display().to_string(),
                source,
            })?;
        // Later entries win: the job's env over the pipeline's, quire's own
        // variables over both.
        let mut env: HashMap<String, String> = HashMap::new();
        let quire_owned = |k: &str| k == "CI" || k == "TRACEPARENT" || k.starts_with("QUIRE_");
        for (k, v) in base_env.iter().filter(|(k, _)| !quire_owned(k)) {
            env.insert(k.clone(), v.clone());
        }
        for (k, v) in &job.env {
            env.insert(k.clone(), v.clone());
        }
        for name in &job.secrets {
            let Some((_, value)) = ctx.secrets.iter().find(|(n, _)| n == name) else {
                return Err(ExecError::MissingSecret {
                    job: job.id.clone(),
                    name: name.clone(),
                });
            };
            env.insert(name.clone(), value.clone());
        }
        for (k, v) in base_env.iter().filter(|(k, _)| quire_owned(k)) {
            env.insert(k.clone(), v.clone());
        }
        env.insert("QUIRE_JOB".into(), job.id.clone());

        let deadline = job.timeout.map(|t| Instant::now() + t);
        // Programs found on this job's PATH, looked up once each.
        let mut programs: HashMap<String, PathBuf> = HashMap::new();
        for (n, step) in job.steps.iter().enumerate() {
            let seq = n as i64 + 1;
            let log_path = log_dir.join(format!("{seq}.log"));
            let mut notes = |note: StepNote| match note {
                StepNote::Started => {
                    let event = Event::StepStarted {
                        at_ms: now_ms(),
                        job: job.id.clone(),
                        seq,
                        cmd: redactor.apply_str(&step.display()),
                    };
                    emit(sink, event)
                }
                StepNote::Idle => flush(sink),
            };
            let name = match step {
                Step::Shell(_) => "sh",
                Step::Argv(argv) => argv[0].as_str(),
            };
            let program = programs
                .entry(name.to_string())
                .or_insert_with(|| {
                    resolve_program(name, env.get("PATH").map_or("", String::as_str))
                })
                .clone();
            let end = self.run_step(
                job, step, &program, redactor, &env, ctx, &log_path, deadline, cancel, &mut notes,
            )?;
            let code = match end {
                StepEnd::Exited(code) | StepEnd::TimedOut(code) | StepEnd::Cancelled(code) => code,
            };
            emit(
                sink,
                Event::StepFinished {
                    at_ms: now_ms(),
                    job: job.id.clone(),
                    seq,
                    exit_code: code,
                },
            )?;
            match end {
                StepEnd::Exited(0) => {}
                StepEnd::Exited(code) | StepEnd::TimedOut(code) => {
                    return Ok((JobState::Failed, Some(code)));
                }
                StepEnd::Cancelled(code) => return Ok((JobState::Aborted, Some(code))),
            }
        }
        Ok((JobState::Complete, Some(0)))
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        job: &Job,
        step: &Step,
        program: &Path,
        redactor: &Redactor,
        env: &HashMap<String, String>,
        ctx: &RunContext,
        log_path: &Path,
        deadline: Option<Instant>,
        cancel: &Cancel,
        notes: &mut dyn FnMut(StepNote) -> Result<(), ExecError>,
    ) -> Result<StepEnd, ExecError> {
        let log_error = |source| ExecError::Write {
            what: log_path.display().to_string(),
            source,
        };
        let mut log = CriLog::create(log_path).map_err(log_error)?;
        // `program` was resolved on the job's PATH by the caller, as a
        // shell's command hash would: handing the child a bare name makes it
        // try every PATH entry with execve, which costs more than the step.
        let mut command = Command::new(program);
        match step {
            Step::Shell(cmd) => {
                command.arg("-c").arg(cmd);
            }
            Step::Argv(argv) => {
                command.args(&argv[1..]);
            }
        }
        command
            .current_dir(&ctx.workspace)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut spawned = command.spawn();
        if let Err(e) = notes(StepNote::Started) {
            // Nobody would watch this step: end it before giving up.
            if let Ok(child) = &mut spawned {
                let _ = kill_process_group(Pid::from_child(child), Signal::KILL);
                let _ = child.wait();
            }
            return Err(e);
        }
        let mut child = match spawned {
            Ok(child) => child,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::PermissionDenied =>
            {
                let note = format!("quire: cannot start {}: {e}", step.display());
                log.line(Stream::Stderr, true, note.as_bytes())
                    .map_err(log_error)?;
                log.flush().map_err(log_error)?;
                return Ok(StepEnd::Exited(if e.kind() == io::ErrorKind::NotFound {
                    127
                } else {
                    126
                }));
            }
            Err(source) => {
                return Err(ExecError::Process {
                    job: job.id.clone(),
                    source,
                });
            }
        };
        let pid = Pid::from_child(&child);
        let mut idle = || notes(StepNote::Idle).map_err(|e| io::Error::other(e.to_string()));
        let result = self.pump(
            &mut child,
            pid,
            &ctx.run_id,
            &mut log,
            redactor,
            deadline,
            cancel,
            &mut idle,
        );
        // Whatever happened, nothing of the step outlives it: its group is
        // killed before the leader is reaped, so the group id cannot have
        // been recycled.
        let _ = kill_process_group(pid, Signal::KILL);
        let status = child.wait();
        let (stop, io_result) = result;
        io_result.map_err(log_error)?;
        let code = match status {
            Ok(status) => exit_code(status),
            Err(source) => {
                return Err(ExecError::Process {
                    job: job.id.clone(),
                    source,
                });
            }
        };
        let note = match stop {
            Stop::Exited => None,
            Stop::Deadline => Some("quire: the job's timeout ran out; the step was terminated"),
            Stop::Cancelled => Some("quire: the run was cancelled; the step was terminated"),
        };
        if let Some(note) = note {
            log.line(Stream::Stderr, true, note.as_bytes())
                .map_err(log_error)?;
        }
        log.flush().map_err(log_error)?;
        Ok(match stop {
            Stop::Exited => StepEnd::Exited(code),
            Stop::Deadline => StepEnd::TimedOut(code),
            Stop::Cancelled => StepEnd::Cancelled(code),
        })
    }

    #[allow(clippy::too_many_arguments)]
    /// Copy the child's output into the log until both pipes have closed and
    /// the step's process has exited (it is not reaped here, so its process
    /// group id stays reserved), terminating its group on cancel or deadline.
    fn pump(
        &self,
        child: &mut Child,
        pid: Pid,
        run_id: &str,
        log: &mut CriLog,
        redactor: &Redactor,
        deadline: Option<Instant>,
        cancel: &Cancel,
        idle: &mut dyn FnMut() -> io::Result<()>,
    ) -> (Stop, io::Result<()>) {
        let mut stop = Stop::Exited;
        let mut term_sent: Option<Instant> = None;
        let mut pipes: [(Option<Box<dyn ReadFd>>, Lines); 2] = [
            (
                child.stdout.take().map(|p| Box::new(p) as Box<dyn ReadFd>),
                Lines::new(Stream::Stdout, self.max_line, redactor),
            ),
            (
                child.stderr.take().map(|p| Box::new(p) as Box<dyn ReadFd>),
                Lines::new(Stream::Stderr, self.max_line, redactor),
            ),
        ];
        // Readable once the process exits; without pidfds (Linux < 5.3)
        // exit is noticed on each tick instead.
        let pidfd = pidfd_open(pid, PidfdFlags::empty()).ok();
        let mut exited = false;
        let mut leftovers_killed: Option<Instant> = None;
        let mut escapees_killed: Option<Instant> = None;
        let mut last_idle = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let open: Vec<usize> = (0..2).filter(|&i| pipes[i].0.is_some()).collect();
            if open.is_empty() && exited {
                break;
            }
            let mut ready = [false; 2];
            let mut exit_ready = false;
            {
                let mut fds: Vec<PollFd<'_>> = open
                    .iter()
                    .filter_map(|&i| pipes[i].0.as_ref())
                    .map(|p| PollFd::from_borrowed_fd(p.fd(), PollFlags::IN))
                    .collect();
                if let (Some(fd), false) = (&pidfd, exited) {
                    fds.push(PollFd::new(fd, PollFlags::IN));
                }
                let tick = self.tick.max(Duration::from_millis(1));
                let timeout = rustix::event::Timespec {
                    tv_sec: i64::try_from(tick.as_secs()).unwrap_or(1),
                    tv_nsec: i64::from(tick.subsec_nanos()),
                };
                if let Err(e) = poll(&mut fds, Some(&timeout))
                    && e != rustix::io::Errno::INTR
                {
                    return (stop, Err(e.into()));
                }
                // A quiet tick, or a tick's worth of chatter: either way the
                // sink gets its chance to write out what it batched.
                if last_idle.elapsed() >= tick {
                    last_idle = Instant::now();
                    if let Err(e) = idle() {
                        return (stop, Err(e));
                    }
                }
                for (k, fd) in fds.iter().enumerate() {
                    if fd.revents().is_empty() {
                        continue;
                    }
                    match open.get(k) {
                        Some(&i) => ready[i] = true,
                        None => exit_ready = true,
                    }
                }
            }
            for i in 0..2 {
                if !ready[i] {
                    continue;
                }
                let (pipe, lines) = &mut pipes[i];
                let Some(reader) = pipe.as_mut() else {
                    continue;
                };
                match reader.read(&mut buf) {
                    Ok(0) => {
                        *pipe = None;
                        if let Err(e) = lines.finish(log) {
                            return (stop, Err(e));
                        }
                    }
                    Ok(n) => {
                        if let Err(e) = lines.feed(&buf[..n], log) {
                            return (stop, Err(e));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return (stop, Err(e)),
                }
            }
            if let Err(e) = log.flush() {
                return (stop, Err(e));
            }
            if !exited && (exit_ready || (pidfd.is_none() && exited_unreaped(pid))) {
                exited = exited_unreaped(pid);
            }

            // Stop requests: terminate the whole group, then kill it.
            if term_sent.is_none() {
                if cancel.is_cancelled() {
                    stop = Stop::Cancelled;
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    stop = Stop::Deadline;
                }
                if stop != Stop::Exited {
                    let _ = kill_process_group(pid, Signal::TERM);
                    term_sent = Some(Instant::now());
                }
            } else if term_sent.is_some_and(|t| t.elapsed() >= self.grace) {
                let _ = kill_process_group(pid, Signal::KILL);
            }
            // The step's own process exited and its output is drained, but
            // something it started still holds the pipes open: that is left
            // over, end it so the pipes close. First its process group; then
            // anything carrying the run's id that left the group (setsid);
            // and if the pipes are still held after that, stop reading them.
            if exited && ready == [false, false] && !open.is_empty() {
                match (leftovers_killed, escapees_killed) {
                    (None, _) => {
                        let _ = kill_process_group(pid, Signal::KILL);
                        leftovers_killed = Some(Instant::now());
                    }
                    (Some(at), None) if at.elapsed() >= self.grace => {
                        crate::processes::kill(run_id);
                        escapees_killed = Some(Instant::now());
                    }
                    (Some(_), Some(at)) if at.elapsed() >= self.grace => break,
                    _ => {}
                }
            }
        }
        (stop, Ok(()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Exited,
    Deadline,
    Cancelled,
}

/// A pipe end we can both read and poll.
trait ReadFd: Read {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl ReadFd for std::process::ChildStdout {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

impl ReadFd for std::process::ChildStderr {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

/// Whether the child has exited, without reaping it (so its pid and process
/// group id stay reserved).
fn exited_unreaped(pid: Pid) -> bool {
    matches!(
        waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT
        ),
        Ok(Some(_))
    )
}

/// `program` found on `path_var` (the first executable regular file), or
/// the name as given: a name with a `/` is used as it is, and one found
/// nowhere fails at spawn with "not found", as it should.
fn resolve_program(program: &str, path_var: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0
        {
            return candidate;
        }
    }
    PathBuf::from(program)
}

/// The shell's convention: the exit code, or 128+N for a signal N.
fn exit_code(status: ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => -1,
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
