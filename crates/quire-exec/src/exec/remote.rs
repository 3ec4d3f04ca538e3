//! A job run on a [`JobHost`] (the executor seam, [`crate::remote`]): the
//! worker's end of the connection to its node.
//!
//! The worker sends the job, every object of the commit and the job's
//! restored cache; it writes the log bytes the node streams to the job's
//! log, passes the node's step events on (checked: its own job, its own
//! steps), writes the artifacts it sends under the run's `artifacts/` (by
//! directory descriptors, each hashed and compared with the event that
//! names it), and hands the cache the node saved to the run's cache. A
//! connection that ends without the node's outcome fails the job with a
//! line naming the node and what the host said.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quire_model::JobState;
use quire_model::events::Event;
use sha2::{Digest, Sha256};

use super::report::{Finished, Reporter};
use super::{ExecError, Executor, HostFailure, RunScope};
use crate::beneath::{self, Dir};
use crate::log::CriLog;
use crate::remote::{self, Connection, FileHead, FileRole, Hello, JobHost, NodeJob, Ticket};
use quire_pipeline::pipeline::Job;

/// How a run's jobs reach their host: the host, the commit's objects, and
/// the settings of the home the node applies.
#[derive(Debug, Clone)]
pub struct Remote {
    pub host: Arc<dyn JobHost>,
    pub objects: Arc<dyn remote::CommitObjects>,
    pub max_pipeline_bytes: u64,
    /// The home's pipeline limits and job limits, for the node
    /// ([`NodeJob`]).
    pub max_jobs: usize,
    pub max_steps: usize,
    pub job_memory_mb: Option<u64>,
    pub job_pids_max: Option<u64>,
    pub sandbox: super::SandboxMode,
    pub step_network: crate::netns::StepNetwork,
}

/// The start of the line a job's log ends with when its node was lost
/// (the node's name follows).
pub const NODE_LOST_NOTE: &str = "quire: node lost: ";

/// The start of the line a job's log ends with when its host did not
/// start it (the host's kind, then what it said, follow).
pub const NOT_STARTED_NOTE: &str = "quire: not started by ";

/// The exit code of a step whose node was lost before it ended (as a
/// shell reports a step it could not run).
pub const LOST_EXIT: i64 = 255;

/// Connections whose job told its outcome and whose host has not ended
/// yet (the node removing its scratch, `srun` telling Slurm the job is
/// done): waited for before the run ends ([`wait_for_hosts`]). A host
/// left behind would keep the job's place on the cluster (Slurm holds an
/// allocation whose `srun` died for `InactiveLimit`), and a worker is pid
/// 1 of its namespace: what it started dies with it.
static ENDING: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());

/// Sets its flag and wakes whoever waits on it, when dropped.
struct Done<'a>(&'a (Mutex<bool>, std::sync::Condvar));

impl Drop for Done<'_> {
    fn drop(&mut self) {
        *self.0.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.1.notify_all();
    }
}

/// Wait for every job host still ending.
pub(super) fn wait_for_hosts() {
    let ending = std::mem::take(&mut *ENDING.lock().unwrap_or_else(|e| e.into_inner()));
    for waiting in ending {
        let _ = waiting.join();
    }
}

/// The name a job goes by on its host: `quire-<last 12 of the run id>-<job>`.
pub fn job_name(run_id: &str, job: &str) -> String {
    let hex: String = run_id.chars().filter(char::is_ascii_hexdigit).collect();
    let tail = &hex[hex.len().saturating_sub(12)..];
    format!("quire-{tail}-{job}")
}

/// Run `job` on `remote`'s host; how it ended.
pub(super) fn run(
    exec: &Executor,
    scope: &RunScope<'_>,
    job: &Job,
    reporter: &Reporter<'_>,
    remote: &Remote,
) -> Result<Finished, ExecError> {
    let ctx = scope.ctx;
    let write_error = |what: &Path| {
        let what = what.display().to_string();
        move |source| ExecError::Write {
            what: what.clone(),
            source,
        }
    };
    let log_path = ctx.logs_dir.join(format!("{}.log", job.id));
    make_dir(&ctx.logs_dir).map_err(write_error(&ctx.logs_dir))?;
    // The job's staging directories, under the run's own (the worker's:
    // no step runs on this machine).
    let run_dir = ctx.logs_dir.parent().unwrap_or(&ctx.logs_dir).to_path_buf();
    let staging = run_dir.join("remote").join(&job.id);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&staging)
            .map_err(write_error(&staging))?;
    }
    let result = run_in(exec, scope, job, reporter, remote, &log_path, &staging);
    if let Ok(dir) = Dir::open(&run_dir.join("remote")) {
        let _ = dir.remove(OsStr::new(&job.id));
    }
    result
}

fn make_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        done => done,
    }
}

#[allow(clippy::too_many_lines)]
fn run_in(
    exec: &Executor,
    scope: &RunScope<'_>,
    job: &Job,
    reporter: &Reporter<'_>,
    remote: &Remote,
    log_path: &Path,
    staging: &Path,
) -> Result<Finished, ExecError> {
    let ctx = scope.ctx;
    let log_error = |source| ExecError::Write {
        what: log_path.display().to_string(),
        source,
    };
    let process_error = |source: io::Error| ExecError::Process {
        job: job.id.clone(),
        source,
    };
    // The cache, restored where the worker can pack it.
    let cache_in = staging.join("in");
    let cache_out = staging.join("out");
    let mut cache_notes = Vec::new();
    let mut times = None;
    if let Some(cache) = &ctx.cache
        && !job.cache.is_empty()
    {
        make_dir(&cache_in).map_err(process_error)?;
        cache_notes = cache
            .restore(&job.id, &job.cache, &cache_in)
            .into_iter()
            .map(|line| scope.redactor.apply_str(&format!("quire: cache: {line}")))
            .collect();
        // The node gives the checkout's files their times: its checkout.
        times = cache.restored_times(&job.id);
    }
    let secrets: Vec<(String, String)> = ctx
        .secrets
        .iter()
        .filter(|(name, _)| job.secrets.contains(name))
        .cloned()
        .collect();
    let header = NodeJob {
        run_id: ctx.run_id.clone(),
        repo: ctx.repo.clone(),
        ref_name: ctx.ref_name.clone(),
        sha: ctx.sha.clone(),
        previous_sha: ctx.previous_sha.clone(),
        traceparent: ctx.traceparent.clone(),
        job: job.id.clone(),
        max_pipeline_bytes: remote.max_pipeline_bytes,
        max_jobs: remote.max_jobs,
        max_steps: remote.max_steps,
        job_memory_mb: remote.job_memory_mb,
        job_pids_max: remote.job_pids_max,
        secrets,
        step_env: ctx.step_env.clone().unwrap_or_default(),
        cache_notes,
        grace_ms: exec.grace.as_millis() as u64,
        max_line: exec.max_line,
        max_log_bytes: exec.max_log_bytes,
        tick_ms: exec.tick.as_millis() as u64,
        max_job_timeout_ms: exec.max_job_timeout.map(|t| t.as_millis() as u64),
        sandbox: spelled(&remote.sandbox),
        step_network: spelled(&remote.step_network),
    };
    let timeout = match (job.timeout, exec.max_job_timeout) {
        (Some(own), Some(cap)) => Some(own.min(cap)),
        (own, cap) => own.or(cap),
    };
    let ticket = Ticket {
        name: job_name(&ctx.run_id, &job.id),
        cpus: job.resources.cpus,
        memory_mb: job.resources.memory_mb,
        gpus: job.resources.gpus,
        constraint: job.resources.constraint.clone(),
        timeout,
    };
    let mut log = File::options()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(log_error)?;
    let mut conn = remote.host.start(&ticket).map_err(process_error)?;
    let input = conn.input();
    let output = conn.output();
    let conn: Arc<Mutex<Box<dyn Connection>>> = Arc::new(Mutex::new(conn));
    let (Some(input), Some(output)) = (input, output) else {
        lock(&conn).cancel();
        return Err(process_error(io::Error::other(
            "the host gave no connection to the job",
        )));
    };
    let started = Instant::now();
    // Set (and the watcher woken) once the node's output is read: the
    // scope below ends only when the watcher does, and the job's end
    // must not wait out its tick.
    let done = (Mutex::new(false), std::sync::Condvar::new());
    let cancelled = std::sync::atomic::AtomicBool::new(false);
    let waits = Mutex::new(Waits::default());
    let mut watch_log = log.try_clone().map_err(log_error)?;
    std::thread::scope(|threads| -> Result<Finished, ExecError> {
        // The job and its commit, written while the node reads them.
        let sender = threads.spawn(|| send(input, &header, remote, &cache_in, times.as_deref()));
        // Cancel, supersede and the host's pending reason, watched while
        // the job runs.
        threads.spawn(|| {
            let mut last_ask = Instant::now();
            while !*done.0.lock().unwrap_or_else(|e| e.into_inner()) {
                if scope.halt.is_set() && !cancelled.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    lock(&conn).cancel();
                }
                let before_hello = !waits.lock().unwrap_or_else(|e| e.into_inner()).hello;
                if before_hello && last_ask.elapsed() >= Duration::from_secs(1) {
                    last_ask = Instant::now();
                    let why = lock(&conn).pending();
                    let _ = tell_waiting(&waits, &mut watch_log, reporter, job, why);
                }
                let stopped = done.0.lock().unwrap_or_else(|e| e.into_inner());
                let (stopped, _) = done
                    .1
                    .wait_timeout_while(stopped, exec.tick.max(Duration::from_millis(10)), |d| !*d)
                    .unwrap_or_else(|e| e.into_inner());
                if *stopped {
                    break;
                }
            }
        });
        // Set once the node's output is read, and also if reading it
        // panics: the scope would otherwise wait for the watcher for ever.
        let finished = Done(&done);
        let mut reader = Reader {
            scope,
            job,
            reporter,
            log: &mut log,
            log_limit: exec.max_log_bytes.saturating_mul(2).saturating_add(1 << 20),
            logged: 0,
            artifacts: None,
            artifacts_dir: ctx.artifacts_dir(),
            cache_out: &cache_out,
            times: None,
            file: None,
            kept: Vec::new(),
            seqs: HashSet::new(),
            started: HashSet::new(),
            node: None,
            outcome: None,
            waits: &waits,
        };
        let mut output = BufReader::new(output);
        let read = reader.read_all(&mut output);
        drop(finished);
        let ended = if read.is_ok() && reader.outcome.is_some() {
            // The job is over: its host's end (the node removing its
            // scratch, srun exiting) is reaped beside what comes next.
            // What the node writes after its outcome is read (and
            // dropped), so that srun never writes to a closed pipe.
            let conn = Arc::clone(&conn);
            let waiting = std::thread::spawn(move || {
                let _ = io::copy(&mut output, &mut io::sink());
                let _ = lock(&conn).wait();
            });
            ENDING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(waiting);
            Ok(())
        } else {
            // Nobody reads the node's output any more: a node still
            // writing would block, and srun with it, until Slurm's
            // --time. A broken stream ends the job now.
            if read.is_err() {
                lock(&conn).cancel();
            }
            lock(&conn).wait()
        };
        let _ = sender.join();
        let node = reader
            .node
            .clone()
            .unwrap_or_else(|| "(not started)".into());
        let outcome = reader.outcome.take();
        let mut notes = Vec::new();
        if let Err(e) = &read {
            notes.push(format!("quire: the stream from node {node} broke: {e}"));
        }
        let result = match outcome {
            Some(outcome) if read.is_ok() => {
                let state = match outcome.state.as_str() {
                    "complete" => JobState::Complete,
                    "aborted" => JobState::Aborted,
                    _ => JobState::Failed,
                };
                (state, outcome.exit_code, None)
            }
            _ if cancelled.load(std::sync::atomic::Ordering::SeqCst) || scope.halt.is_set() => {
                notes.push(format!(
                    "quire: the job was ended on node {node} ({})",
                    remote.host.kind()
                ));
                (JobState::Aborted, None, None)
            }
            _ => {
                let end = ended
                    .err()
                    .unwrap_or_else(|| remote::HostEnd::said("it ended without a word"));
                let after = started.elapsed().as_secs_f64();
                let why = &end.said;
                // Lost with its node only when the host says so; a node
                // process that ended otherwise (a step killed it, its
                // stream broke) failed as a job fails.
                let (line, host) = match &reader.node {
                    Some(node) if end.node_lost => (
                        format!(
                            "{NODE_LOST_NOTE}{node}: the job ended without an outcome after \
                             {after:.1} s: {why}"
                        ),
                        Some(HostFailure {
                            job: job.id.clone(),
                            node: Some(node.clone()),
                            why: scope.redactor.apply_str(why),
                        }),
                    ),
                    Some(node) => (
                        format!(
                            "quire: the job ended on node {node} without an outcome after \
                             {after:.1} s: {why}"
                        ),
                        None,
                    ),
                    None => (
                        format!("{NOT_STARTED_NOTE}{}: {why}", remote.host.kind()),
                        Some(HostFailure {
                            job: job.id.clone(),
                            node: None,
                            why: scope
                                .redactor
                                .apply_str(&format!("{}: {why}", remote.host.kind())),
                        }),
                    ),
                };
                notes.push(scope.redactor.apply_str(&line));
                (JobState::Failed, None, host)
            }
        };
        // A step the node never finished ends here; a job that failed
        // before any step began gets its first step, never started, so
        // that its log (and why) is shown where people look.
        if result.0 != JobState::Complete {
            if reader.started.is_empty()
                && result.0 == JobState::Failed
                && let Some(step) = job.steps.first()
            {
                reporter.emit(Event::StepStarted {
                    at_ms: quire_model::clock::now_ms(),
                    job: job.id.clone(),
                    seq: 1,
                    cmd: scope.redactor.apply_str(&step.display()),
                    log_at: Some(0),
                })?;
                reader.seqs.insert(1);
            }
            let mut open: Vec<i64> = reader.seqs.iter().copied().collect();
            open.sort_unstable();
            for seq in open {
                reporter.emit(Event::StepFinished {
                    at_ms: quire_model::clock::now_ms(),
                    job: job.id.clone(),
                    seq,
                    exit_code: LOST_EXIT,
                })?;
            }
        }
        let mut cri = CriLog::append(log_path).map_err(log_error)?;
        for note in notes {
            cri.note(note.as_bytes()).map_err(log_error)?;
        }
        if result.0 == JobState::Complete
            && let Some(cache) = &ctx.cache
            && !job.cache.is_empty()
            && cache_out.is_dir()
        {
            for line in
                cache.save_with_times(&job.id, &job.cache, &cache_out, reader.times.as_deref())
            {
                let line = scope.redactor.apply_str(&format!("quire: cache: {line}"));
                cri.note(line.as_bytes()).map_err(log_error)?;
            }
        }
        cri.flush().map_err(log_error)?;
        let (state, exit_code, host) = result;
        Ok(Finished {
            state,
            exit_code,
            host,
        })
    })
}

/// A setting as config.toml spells it (its serde name).
fn spelled(setting: &impl serde::Serialize) -> String {
    serde_json::to_value(setting)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn lock<'a>(
    conn: &'a Mutex<Box<dyn Connection>>,
) -> std::sync::MutexGuard<'a, Box<dyn Connection>> {
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

/// Write the job to the node: its header, the commit's objects, the
/// restored cache, and the end.
fn send(
    input: Box<dyn Write + Send>,
    header: &NodeJob,
    remote: &Remote,
    cache_in: &Path,
    times: Option<&[u8]>,
) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 16, input);
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    remote::write_frame(&mut out, remote::HEADER, &json)?;
    remote
        .objects
        .each(&mut |kind, size, data| remote::write_object(&mut out, kind, size, data))?;
    if let Ok(dir) = Dir::open(cache_in) {
        send_tree(&mut out, &dir, "")?;
    }
    if let Some(mut times) = times {
        send_file(&mut out, &times_head(), &mut times)?;
    }
    remote::write_frame(&mut out, remote::END, b"")?;
    out.flush()
}

/// Send every file, symlink and directory below `dir` as cache files.
fn send_tree(out: &mut dyn Write, dir: &Dir, prefix: &str) -> io::Result<()> {
    send_entries(out, dir, prefix, 0, &mut (0, 0))
}

/// How deep a cache's directories may nest to be sent: deeper, the send
/// fails (said in the job's log) rather than the walk's stack.
const MAX_CACHE_DEPTH: usize = 1024;

fn send_entries(
    out: &mut dyn Write,
    dir: &Dir,
    prefix: &str,
    depth: usize,
    sent: &mut (u64, u64),
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if depth >= MAX_CACHE_DEPTH {
        return Err(io::Error::other(format!(
            "{prefix}: deeper than {MAX_CACHE_DEPTH} directories"
        )));
    }
    for entry in dir.entries()? {
        let Ok(name) = std::str::from_utf8(entry.name.as_bytes()) else {
            continue;
        };
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        send_entry(out, dir, &entry.name, &path, depth, sent)?;
    }
    Ok(())
}

/// Send `name` in `dir` (a file, a symlink, or a directory and what is
/// below it) as cache files named from `path`, by descriptors: a symlink
/// is sent as one, never followed; `sent` counts the files and bytes.
/// The worker sends a restored cache so, a node a saved one.
pub fn send_entry(
    out: &mut dyn Write,
    dir: &Dir,
    name: &OsStr,
    path: &str,
    depth: usize,
    sent: &mut (u64, u64),
) -> io::Result<()> {
    let Ok(stat) = dir.stat(name) else {
        return Ok(());
    };
    let mode = if stat.st_mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    };
    match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
        rustix::fs::FileType::Directory => {
            send_entries(out, &dir.subdir(name)?, path, depth + 1, sent)?;
        }
        rustix::fs::FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
            let head = FileHead {
                role: FileRole::Cache,
                path: path.to_string(),
                mode: 0o777,
                link: Some(target.to_string_lossy().into_owned()),
            };
            remote::write_frame(out, remote::FILE_START, &json(&head)?)?;
            remote::write_frame(out, remote::FILE_END, b"")?;
            sent.0 += 1;
        }
        rustix::fs::FileType::RegularFile => {
            let Some(mut file) = dir.open_file(name)? else {
                return Ok(());
            };
            let head = FileHead {
                role: FileRole::Cache,
                path: path.to_string(),
                mode,
                link: None,
            };
            send_file(out, &head, &mut file)?;
            sent.0 += 1;
            sent.1 += stat.st_size as u64;
        }
        _ => {}
    }
    Ok(())
}

fn json(value: &impl serde::Serialize) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io::Error::other)
}

/// Send `file` in frames under `head`.
pub fn send_file(out: &mut dyn Write, head: &FileHead, file: &mut dyn io::Read) -> io::Result<()> {
    remote::write_frame(out, remote::FILE_START, &json(head)?)?;
    let mut buf = vec![0u8; remote::CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        remote::write_frame(out, remote::FILE_DATA, &buf[..n])?;
    }
    remote::write_frame(out, remote::FILE_END, b"")
}

/// The head of a record of file times ([`FileRole::Times`]).
pub fn times_head() -> FileHead {
    FileHead {
        role: FileRole::Times,
        path: "mtimes".into(),
        mode: 0o644,
        link: None,
    }
}

/// A file arriving from the node.
struct Incoming {
    head: FileHead,
    file: Option<File>,
    size: u64,
    hash: Sha256,
}

/// The worker reading its node's stream.
struct Reader<'a, 's> {
    scope: &'a RunScope<'s>,
    job: &'a Job,
    reporter: &'a Reporter<'a>,
    log: &'a mut File,
    /// The most log bytes taken from the node.
    log_limit: u64,
    logged: u64,
    /// `artifacts/<job>/`, once the first artifact arrives.
    artifacts: Option<Dir>,
    artifacts_dir: PathBuf,
    cache_out: &'a Path,
    /// The file times the node recorded of its checkout, for the cache.
    times: Option<Vec<u8>>,
    file: Option<Incoming>,
    /// Artifacts received: (path, size, sha256), until their event.
    kept: Vec<(String, u64, String)>,
    /// Steps started and not finished.
    seqs: HashSet<i64>,
    /// Steps started.
    started: HashSet<i64>,
    node: Option<String>,
    outcome: Option<remote::Outcome>,
    waits: &'a Mutex<Waits>,
}

/// What the worker wrote before the node's first line, shared with the
/// thread that asks the host why the job waits.
#[derive(Default)]
struct Waits {
    /// The node said hello: nothing holds the job any more.
    hello: bool,
    /// The reason last told.
    told: Option<String>,
    /// Bytes of the worker's own lines in the log before the node's:
    /// where the node says a step's lines begin, they begin this much
    /// later here.
    inserted: u64,
}

/// Before the node's hello: a new reason the host holds the job, told in
/// the job's log (once each time it changes) and to the store (`show`,
/// `watch`, `ci.wait` and the web view say it).
fn tell_waiting(
    waits: &Mutex<Waits>,
    log: &mut File,
    reporter: &Reporter<'_>,
    job: &Job,
    why: Option<String>,
) -> io::Result<()> {
    let mut w = waits.lock().unwrap_or_else(|e| e.into_inner());
    let Some(why) = why else { return Ok(()) };
    if w.hello || w.told.as_ref() == Some(&why) {
        return Ok(());
    }
    let line = crate::log::note_line(&format!("quire: {why}"));
    log.write_all(line.as_bytes())?;
    w.inserted += line.len() as u64;
    w.told = Some(why.clone());
    reporter
        .emit(Event::JobWaiting {
            at_ms: quire_model::clock::now_ms(),
            job: job.id.clone(),
            reason: Some(why),
        })
        .map_err(|e| io::Error::other(e.to_string()))
}

impl Reader<'_, '_> {
    fn read_all(&mut self, input: &mut impl io::Read) -> io::Result<()> {
        loop {
            let Some((tag, payload)) = remote::read_frame(input, remote::MAX_FRAME)? else {
                return Ok(());
            };
            self.take(tag, payload)?;
            // The outcome is the node's last word: what it does after
            // (removing its scratch) is not waited for here.
            if self.outcome.is_some() {
                return Ok(());
            }
        }
    }

    /// Tell the store why the job waits (`show`, `watch`, `ci.wait`, the
    /// web view say it), or that it waits no more.
    fn waiting(&self, reason: Option<String>) -> io::Result<()> {
        self.reporter
            .emit(Event::JobWaiting {
                at_ms: quire_model::clock::now_ms(),
                job: self.job.id.clone(),
                reason,
            })
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// A line of the worker's own, before the node's lines.
    fn note(&mut self, line: &str) -> io::Result<()> {
        let line = crate::log::note_line(line);
        self.log.write_all(line.as_bytes())?;
        self.waits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .inserted += line.len() as u64;
        Ok(())
    }

    fn take(&mut self, tag: u8, payload: Vec<u8>) -> io::Result<()> {
        match tag {
            remote::HELLO if self.node.is_none() => {
                let hello: Hello = serde_json::from_slice(&payload).map_err(io::Error::other)?;
                let node = clean(&hello.node, 200);
                let waited = {
                    let mut w = self.waits.lock().unwrap_or_else(|e| e.into_inner());
                    w.hello = true;
                    w.told.is_some()
                };
                let line = format!(
                    "quire: on node {node} ({}); sandbox: {}",
                    self.scope
                        .ctx
                        .remote
                        .as_ref()
                        .map_or("cluster", |r| r.host.kind()),
                    self.scope.redactor.apply_str(&clean(&hello.sandbox, 1000))
                );
                self.note(&line)?;
                if waited {
                    self.waiting(None)?;
                }
                self.node = Some(node);
            }
            _ if self.node.is_none() => {
                return Err(io::Error::other("the node did not say hello first"));
            }
            remote::LOG => {
                let room = self.log_limit.saturating_sub(self.logged);
                let take = payload.len().min(room as usize);
                self.log.write_all(&payload[..take])?;
                self.logged += take as u64;
            }
            remote::EVENT => self.event(&payload)?,
            remote::FILE_START => self.file_start(&payload)?,
            remote::FILE_DATA => self.file_data(&payload)?,
            remote::FILE_END => self.file_end()?,
            remote::OUTCOME => {
                if self.file.is_some() {
                    return Err(io::Error::other("the outcome came inside a file"));
                }
                self.outcome = Some(serde_json::from_slice(&payload).map_err(io::Error::other)?);
            }
            other => {
                return Err(io::Error::other(format!("an unknown frame {other:#04x}")));
            }
        }
        Ok(())
    }

    /// A step's event: its own job's, of one of its steps, each started
    /// once and finished after it started; an artifact's, only for the
    /// file just received, as received.
    fn event(&mut self, payload: &[u8]) -> io::Result<()> {
        let line = std::str::from_utf8(payload).map_err(io::Error::other)?;
        let mut event: Event = serde_json::from_str(line).map_err(io::Error::other)?;
        // The first step's lines begin where the log does: the worker's
        // lines (the node, a wait in the queue) are shown with them.
        if let Event::StepStarted {
            log_at: Some(at),
            seq,
            ..
        } = &mut event
            && *seq > 1
        {
            *at = at.saturating_add(
                self.waits
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .inserted,
            );
        }
        let steps = self.job.steps.len() as i64;
        let ok = match &event {
            Event::StepStarted { job, seq, .. } => {
                *job == self.job.id
                    && (1..=steps).contains(seq)
                    && self.started.insert(*seq)
                    && self.seqs.insert(*seq)
            }
            Event::StepFinished { job, seq, .. } => *job == self.job.id && self.seqs.remove(seq),
            Event::ArtifactKept {
                job,
                path,
                size,
                sha256,
                ..
            } => {
                *job == self.job.id
                    && self
                        .kept
                        .iter()
                        .position(|(p, s, h)| p == path && s == size && h == sha256)
                        .map(|i| self.kept.remove(i))
                        .is_some()
            }
            _ => false,
        };
        if !ok {
            return Err(io::Error::other(format!(
                "an event the job cannot have: {line}"
            )));
        }
        self.reporter
            .emit(event)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn file_start(&mut self, payload: &[u8]) -> io::Result<()> {
        if self.file.is_some() {
            return Err(io::Error::other("a file inside a file"));
        }
        let head: FileHead = serde_json::from_slice(payload).map_err(io::Error::other)?;
        beneath::components(&head.path)?;
        if head.link.is_some() && head.role == FileRole::Artifact {
            return Err(io::Error::other("an artifact that is a link"));
        }
        let (parent, name) = beneath::split_last(&head.path)?
            .ok_or_else(|| io::Error::other("a file without a name"))?;
        let mode = if head.mode & 0o111 != 0 { 0o755 } else { 0o644 };
        let file = match head.role {
            FileRole::Times => {
                self.times = Some(Vec::new());
                None
            }
            FileRole::Artifact => {
                if self.artifacts.is_none() {
                    let job_dir = self.artifacts_dir.join(&self.job.id);
                    std::fs::create_dir_all(&job_dir)?;
                    self.artifacts = Some(Dir::open(&job_dir)?);
                }
                let dir = self.artifacts.as_ref().expect("opened above");
                let at = dir.create_dirs_mode(&parent, 0o700, None)?;
                Some(at.create_file(OsStr::new(name), mode)?)
            }
            FileRole::Cache => {
                make_dir(self.cache_out)?;
                let dir = Dir::open(self.cache_out)?;
                let at = dir.create_dirs_mode(&parent, 0o755, None)?;
                match &head.link {
                    Some(target) => {
                        rustix::fs::symlinkat(target.as_str(), &at, name)?;
                        None
                    }
                    None => Some(at.create_file(OsStr::new(name), mode)?),
                }
            }
        };
        self.file = Some(Incoming {
            head,
            file,
            size: 0,
            hash: Sha256::new(),
        });
        Ok(())
    }

    fn file_data(&mut self, payload: &[u8]) -> io::Result<()> {
        let Some(incoming) = &mut self.file else {
            return Err(io::Error::other("file data outside a file"));
        };
        if incoming.head.role == FileRole::Times {
            let times = self.times.get_or_insert_with(Vec::new);
            if (times.len() + payload.len()) as u64 > remote::MAX_TIMES {
                return Err(io::Error::other("a record of file times too large"));
            }
            times.extend_from_slice(payload);
            return Ok(());
        }
        let Some(file) = &mut incoming.file else {
            return Err(io::Error::other("data for a link"));
        };
        file.write_all(payload)?;
        incoming.size += payload.len() as u64;
        incoming.hash.update(payload);
        Ok(())
    }

    fn file_end(&mut self) -> io::Result<()> {
        let Some(incoming) = self.file.take() else {
            return Err(io::Error::other("a file's end outside a file"));
        };
        if incoming.head.role == FileRole::Artifact {
            let sha: String = incoming
                .hash
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            self.kept.push((incoming.head.path, incoming.size, sha));
        }
        Ok(())
    }
}

/// A name from the node, shown in a log line: printable, short.
/// `text` from the node without control characters, at most `max` of
/// them.
fn clean(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_is_sent_by_its_entries_and_a_too_deep_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("target/debug")).unwrap();
        std::fs::write(dir.path().join("target/debug/app"), b"bin").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("target/link")).unwrap();
        let mut out = Vec::new();
        send_tree(&mut out, &Dir::open(dir.path()).unwrap(), "").unwrap();
        let mut input = &out[..];
        let mut heads = Vec::new();
        while let Some((tag, payload)) = remote::read_frame(&mut input, remote::MAX_FRAME).unwrap()
        {
            if tag == remote::FILE_START {
                let head: FileHead = serde_json::from_slice(&payload).unwrap();
                heads.push((head.path, head.link));
            }
        }
        heads.sort();
        assert_eq!(
            heads,
            [
                ("target/debug/app".to_string(), None),
                ("target/link".to_string(), Some("/etc/passwd".to_string())),
            ]
        );
        // Nested deeper than a walk should go: refused, not followed down.
        let deep = "d/".repeat(MAX_CACHE_DEPTH + 1);
        std::fs::create_dir_all(dir.path().join("deep").join(&deep)).unwrap();
        let err = send_tree(
            &mut Vec::new(),
            &Dir::open(&dir.path().join("deep")).unwrap(),
            "",
        );
        assert!(err.is_err_and(|e| e.to_string().contains("deeper than")));
    }

    #[test]
    fn a_job_is_named_by_its_runs_last_digits() {
        assert_eq!(
            job_name("01a2517d-79dd-717a-9f71-c40844bf15f2", "test"),
            "quire-c40844bf15f2-test"
        );
    }
}
