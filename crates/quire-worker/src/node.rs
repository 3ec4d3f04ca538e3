//! `quire-run node`: one job of a run, on a node of a cluster, at the
//! other end of the worker's connection ([`quire_exec::remote`]).
//!
//! It reads the job's header and every object of its commit from its
//! standard input, checks the commit out into node-local scratch as the
//! worker would (the same checkout, from a repository of its own holding
//! only those objects, marked shallow), puts the job's restored cache in
//! place, and runs the job's steps with the same executor, sandbox,
//! network namespace and containment the worker uses. What the store
//! ingests goes back on its standard output: the job's log bytes as they
//! are written, its steps' events, the artifacts it kept and the cache it
//! saved, then how it ended. The scratch directory is removed at the end.
//! A SIGTERM (Slurm's cancel, or its time limit) ends the steps as a
//! cancel would.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quire_exec::beneath::{self, Dir};
use quire_exec::contain;
use quire_exec::events::EventSink;
use quire_exec::exec::{Cancel, Executor, JobCache, RunContext, Sandbox, SandboxPolicy};
use quire_exec::netns::{self, Decided};
use quire_exec::remote::{self, FileHead, FileRole, Hello, NodeJob, Outcome};
use quire_model::JobState;
use quire_model::events::Event;
use quire_pipeline::Limits;
use quire_pipeline::pipeline::{Input, Pipeline, WorkspaceRefs};

use crate::git::{Repo, TreeFile};
use crate::mtimes::Checkout;
use crate::record::{DEFAULT_FILE, validate};

/// The node's standard output, shared by the sink and the cache.
type Out = Arc<Mutex<BufWriter<io::Stdout>>>;

/// Set in `quire-run node` started again in a pid namespace of its own.
const INNER: &str = "QUIRE_NODE_INNER";

/// `quire-run node`: started again as pid 1 of a pid namespace of its own
/// (with a `/proc` of it), as a worker is, so that its sweeps and its
/// steps see only this job's processes, not those of another job of the
/// same run on the same node; this process stands in for it. Where the
/// kernel refuses, the job is served here, and its first log line says
/// that its steps see the node's processes.
pub fn serve_isolated(scratch: Option<&Path>, cancel: &Cancel) -> Result<(), String> {
    if std::env::var_os(INNER).is_some() {
        // Started in a user namespace of its own (a node's quire-run that
        // is not root): the CAP_SYS_ADMIN it was given for its own mounts
        // stays its own, and no step inherits it, as in a worker.
        quire_exec::pidns::keep_capabilities_to_self()
            .map_err(|e| format!("cannot keep its capabilities to itself: {e}"))?;
        return serve(scratch, cancel, None);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut args: Vec<std::ffi::OsString> = vec!["node".into()];
    if let Some(dir) = scratch {
        args.push("--scratch".into());
        args.push(dir.as_os_str().to_owned());
    }
    match quire_exec::pidns::spawn(&exe, &args, (INNER, "1")) {
        Ok(isolated) => match isolated.wait() {
            Ok(0) => Ok(()),
            Ok(code) => Err(format!("the job's process ended with {code}")),
            Err(e) => Err(format!("cannot wait for the job's process: {e}")),
        },
        Err(why) => serve(
            scratch,
            cancel,
            Some(format!(
                "quire: steps see every process of this node: no pid namespace ({why})"
            )),
        ),
    }
}

/// Serve one job: read it from stdin, run it, report on stdout. `scratch`:
/// where workspaces go (else `$TMPDIR`, else `/tmp`); `note`, a line for
/// the top of its log.
fn serve(scratch: Option<&Path>, cancel: &Cancel, note: Option<String>) -> Result<(), String> {
    let out: Out = Arc::new(Mutex::new(BufWriter::with_capacity(1 << 16, io::stdout())));
    let mut input = io::BufReader::with_capacity(1 << 16, io::stdin().lock());
    let (tag, payload) = remote::read_frame(&mut input, remote::MAX_FRAME)
        .map_err(|e| format!("cannot read the job: {e}"))?
        .ok_or("no job was sent")?;
    if tag != remote::HEADER {
        return Err("the job's header did not come first".into());
    }
    let job: NodeJob =
        serde_json::from_slice(&payload).map_err(|e| format!("the job's header: {e}"))?;
    let root = scratch_root(scratch)?;
    let name = format!(
        "{}-{}-{}",
        quire_exec::exec::job_name(&job.run_id, &job.job),
        std::process::id(),
        quire_model::clock::now_ms()
    );
    rustix::fs::mkdirat(&root, name.as_str(), rustix::fs::Mode::from_raw_mode(0o700))
        .map_err(|e| format!("cannot make the job's scratch directory: {e}"))?;
    let dir_path = root_path(scratch).join(&name);
    // The job's directory as made: held open, never looked up again by
    // its name.
    let result = root
        .subdir(OsStr::new(&name))
        .map_err(|e| format!("cannot open the job's scratch directory: {e}"))
        .and_then(|dir| {
            let where_ = Where {
                root: &root,
                root_path: root_path(scratch),
                dir: &dir,
                dir_path: &dir_path,
            };
            run_job(&job, &where_, &mut input, &out, cancel, note)
        });
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            let note = quire_exec::note_line(&format!("quire: on this node: {e}"));
            let mut o = lock(&out);
            let _ = remote::write_frame(&mut *o, remote::LOG, note.as_bytes());
            Outcome {
                state: "failed".into(),
                exit_code: None,
            }
        }
    };
    let told = {
        let mut o = lock(&out);
        let json = serde_json::to_vec(&outcome).map_err(|e| e.to_string())?;
        remote::write_frame(&mut *o, remote::OUTCOME, &json)
            .and_then(|()| o.flush())
            .map_err(|e| format!("cannot report the outcome: {e}"))
    };
    // Whatever happened, nothing is left on the node: removed after the
    // outcome is told (the worker need not wait for it), before this
    // process ends (Slurm ends the job with it).
    let _ = root.remove_side_by_side(OsStr::new(&name), 2);
    told
}

fn lock(out: &Out) -> std::sync::MutexGuard<'_, BufWriter<io::Stdout>> {
    out.lock().unwrap_or_else(|e| e.into_inner())
}

fn root_path(scratch: Option<&Path>) -> PathBuf {
    let base = scratch
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join(format!(
        "quire-node-{}",
        rustix::process::geteuid().as_raw()
    ))
}

/// `quire-node-<uid>` in the scratch directory: made if missing, and used
/// only if it is a directory of this user's own that nobody else may
/// enter (a shared `/tmp` is anybody's to plant a name in).
fn scratch_root(scratch: Option<&Path>) -> Result<Dir, String> {
    use std::os::unix::fs::DirBuilderExt;
    let path = root_path(scratch);
    match std::fs::DirBuilder::new().mode(0o700).create(&path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(format!("cannot make {}: {e}", path.display()));
        }
        _ => {}
    }
    let dir = Dir::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let stat = dir.stat_self().map_err(|e| e.to_string())?;
    if stat.st_uid != rustix::process::geteuid().as_raw() || stat.st_mode & 0o077 != 0 {
        return Err(format!(
            "{} is not this user's own private directory",
            path.display()
        ));
    }
    Ok(dir)
}

/// Where a job runs on the node: the scratch root and the job's own
/// directory in it, each held open, and their paths (for the steps).
struct Where<'a> {
    root: &'a Dir,
    root_path: PathBuf,
    dir: &'a Dir,
    dir_path: &'a Path,
}

fn run_job(
    job: &NodeJob,
    at: &Where<'_>,
    input: &mut dyn Read,
    out: &Out,
    cancel: &Cancel,
    note: Option<String>,
) -> Result<Outcome, String> {
    let (dir, dir_path) = (at.dir, at.dir_path);
    let node = std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    // The commit, into a repository of the job's own.
    // The steps' network is set up (pasta, on another CPU) while the
    // commit arrives and is checked out.
    let sandbox_mode: quire_exec::exec::SandboxMode = setting(&job.sandbox)?;
    let step_network: netns::StepNetwork = setting(&job.step_network)?;
    let required = sandbox_mode == quire_exec::exec::SandboxMode::Required;
    let network = netns::start(step_network, required);
    let src = dir_path.join("src.git");
    let repo =
        object_store(dir, &src, &job.sha).map_err(|e| format!("cannot make a repository: {e}"))?;
    let workspace = dir_path.join("workspace");
    // The workspace once the commit is checked out, held open (by the
    // job's directory, never its path again): the cache's files go in it.
    let mut ws: Option<Dir> = None;
    // The commit's files as checked out, for the cache's file times.
    let mut checkout: Option<Checkout> = None;
    let mut file: Option<File> = None;
    // The file times that came with the cache, while they arrive.
    let mut times: Option<Vec<u8>> = None;
    let mut receiving_times = false;
    loop {
        let (tag, payload) = remote::read_frame(input, remote::MAX_FRAME)
            .map_err(|e| format!("cannot read the job: {e}"))?
            .ok_or("the job's input ended early")?;
        let object = tag == remote::OBJECT || tag == remote::OBJECT_START;
        if !object && ws.is_none() {
            checkout = Some(Checkout::new(&workspace, check_out(&src, job, &workspace)?));
            ws = Some(
                dir.subdir(OsStr::new("workspace"))
                    .map_err(|e| format!("cannot open the workspace: {e}"))?,
            );
        }
        match tag {
            remote::OBJECT => {
                if ws.is_some() {
                    return Err("an object came after the checkout".into());
                }
                let (&kind, data) = payload.split_first().ok_or("an empty object")?;
                use gix::objs::Write as _;
                repo.objects
                    .write_buf(object_kind(kind)?, data)
                    .map_err(|e| format!("cannot write an object: {e}"))?;
            }
            remote::OBJECT_START => {
                if ws.is_some() {
                    return Err("an object came after the checkout".into());
                }
                let (kind, size) = remote::object_start(&payload).map_err(|e| e.to_string())?;
                let mut data = remote::ObjectData::new(input, size);
                use gix::objs::Write as _;
                repo.objects
                    .write_stream(object_kind(kind)?, size, &mut data)
                    .map_err(|e| format!("cannot write an object: {e}"))?;
                if !data.is_done() {
                    return Err("an object was written short of its size".into());
                }
            }
            remote::FILE_START => {
                let head: FileHead = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
                if head.role == FileRole::Times {
                    times = Some(Vec::new());
                    receiving_times = true;
                    continue;
                }
                if head.role != FileRole::Cache {
                    return Err("only cache files come to a node".into());
                }
                let (parent, name) = beneath::split_last(&head.path)
                    .map_err(|e| e.to_string())?
                    .ok_or("a cache file without a name")?;
                let at = ws
                    .as_ref()
                    .ok_or("a file came before the commit")?
                    .create_dirs_mode(&parent, 0o755, None)
                    .map_err(|e| format!("cache {}: {e}", head.path))?;
                // What the checkout put there gives way to the cache's.
                let _ = at.remove(OsStr::new(name));
                file = match &head.link {
                    Some(target) => {
                        rustix::fs::symlinkat(target.as_str(), &at, name)
                            .map_err(|e| format!("cache {}: {e}", head.path))?;
                        None
                    }
                    None => {
                        let mode = if head.mode & 0o111 != 0 { 0o755 } else { 0o644 };
                        Some(
                            at.create_file(OsStr::new(name), mode)
                                .map_err(|e| format!("cache {}: {e}", head.path))?,
                        )
                    }
                };
            }
            remote::FILE_DATA if receiving_times => {
                let record = times.get_or_insert_with(Vec::new);
                if (record.len() + payload.len()) as u64 > remote::MAX_TIMES {
                    return Err("a record of file times too large".into());
                }
                record.extend_from_slice(&payload);
            }
            remote::FILE_DATA => {
                let f = file.as_mut().ok_or("file data outside a file")?;
                f.write_all(&payload).map_err(|e| e.to_string())?;
            }
            remote::FILE_END => {
                file = None;
                receiving_times = false;
            }
            remote::END => break,
            _ => return Err("an unknown frame".into()),
        }
    }
    let limits = Limits {
        max_file_kb: job.max_pipeline_bytes.div_ceil(1024),
        max_jobs: job.max_jobs,
        max_steps: job.max_steps,
    };
    let blob = Repo::open(&src)
        .and_then(|r| r.read_file(&job.sha, DEFAULT_FILE, limits.max_file_bytes()))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} has no {DEFAULT_FILE}", job.sha))?;
    let mut pipeline = validate(&blob, &limits).map_err(|e| e.lines.join("; "))?;
    let index = pipeline
        .jobs
        .iter()
        .position(|j| j.id == job.job)
        .ok_or_else(|| format!("the pipeline has no job {}", job.job))?;
    let mut one = pipeline.jobs.swap_remove(index);
    one.inputs = vec![Input::Push];
    // Slurm gave the job its CPUs, GPUs and node features; its memory
    // is also its cgroup's here, where the node has the controller.
    one.resources.gpus = None;
    one.resources.constraint = None;
    one.resources.cpus = None;
    let pipeline = Pipeline {
        env: std::mem::take(&mut pipeline.env),
        jobs: vec![one],
        refs: WorkspaceRefs::Pushed,
    };
    let home = dir_path.join("home");
    let tmp = dir_path.join("tmp");
    let logs = dir_path.join("logs");
    for d in ["home", "tmp", "logs", "artifacts"] {
        dir.create_dirs_mode(d, 0o700, None)
            .map_err(|e| format!("cannot make {d}: {e}"))?;
    }
    let policy = SandboxPolicy {
        writable: vec![workspace.clone(), home.clone(), tmp.clone()],
        readable: vec![src.join("objects")],
        hidden: vec![root_path_of(dir_path)],
        homes: Vec::new(),
    };
    let mut sandbox = Sandbox::prepare(sandbox_mode, &policy, None)?;
    // Where steps see their workspace, HOME and TMPDIR: the same paths on
    // every node and every run, where this process has a mount namespace
    // of its own (started again in one: no `note`).
    let stable = match note {
        None => show_stable(at),
        Some(_) => Err("no mount namespace of its own".into()),
    };
    if let Some(note) = note {
        sandbox.add_note(note);
    }
    let network = network.ready()?;
    if let Some(note) = network.note() {
        sandbox.add_note(note);
    }
    let paths = match &stable {
        Ok(ci) => format!(
            "steps see the workspace at {} on every node, HOME and TMPDIR beside it",
            ci.join("workspace").display()
        ),
        Err(why) => format!("steps see this job's own paths ({why})"),
    };
    let summary = format!("{}; {}; {paths}", sandbox.summary(), network.summary());
    let network = match network {
        Decided::Namespace(n) => Some(Arc::new(n)),
        Decided::Host { .. } => None,
    };
    {
        let hello = Hello {
            node,
            sandbox: summary,
        };
        let mut o = lock(out);
        let json = serde_json::to_vec(&hello).map_err(|e| e.to_string())?;
        remote::write_frame(&mut *o, remote::HELLO, &json)
            .and_then(|()| o.flush())
            .map_err(|e| e.to_string())?;
    }
    let setup = contain::Setup::new(
        contain::Want::Auto,
        crate::config::job_limits_of(job.job_memory_mb, job.job_pids_max),
    );
    // The cgroup is the job's: another job of the run may run on this
    // node (or share its cgroup tree) at the same time.
    let containment = setup
        .enter_run(&format!("{}-{}", job.run_id, job.job))
        .map_err(|e| format!("cannot contain the job: {e}"))?;
    // The restored cache's times, given to the checkout's files that hold
    // the blob they had: a build tool then rebuilds only what changed.
    let mut notes = job.cache_notes.clone();
    if let (Some(checkout), Some(record)) = (&checkout, &times)
        && let Some(line) = checkout.apply(record)
    {
        notes.push(format!("quire: cache: {line}"));
    }
    let cache = Arc::new(NodeCache {
        notes,
        checkout,
        out: Arc::clone(out),
    });
    let ctx = RunContext {
        run_id: job.run_id.clone(),
        repo: job.repo.clone(),
        ref_name: job.ref_name.clone(),
        sha: job.sha.clone(),
        previous_sha: job.previous_sha.clone(),
        traceparent: job.traceparent.clone(),
        workspace: workspace.clone(),
        step_workspace: stable.as_ref().ok().map(|ci| ci.join("workspace")),
        logs_dir: logs.clone(),
        secrets: job.secrets.clone(),
        cache: Some(cache as Arc<dyn JobCache>),
        containment,
        step_home: Some(stable.as_ref().map_or(home, |ci| ci.join("home"))),
        step_tmpdir: Some(stable.as_ref().map_or(tmp, |ci| ci.join("tmp"))),
        step_env: Some(step_env(&job.step_env)),
        sandbox: Some(Arc::new(sandbox)),
        network,
        remote: None,
    };
    let exec = Executor {
        grace: Duration::from_millis(job.grace_ms),
        max_line: job.max_line,
        max_log_bytes: job.max_log_bytes,
        tick: Duration::from_millis(job.tick_ms.max(10)),
        max_parallel_jobs: 1,
        cpus: Executor::default().cpus,
        max_job_timeout: job.max_job_timeout_ms.map(Duration::from_millis),
    };
    let mut sink = NodeSink {
        out: Arc::clone(out),
        log: logs.join(format!("{}.log", job.job)),
        reader: None,
        held: Vec::new(),
        outcome: None,
    };
    let result = exec.run(&pipeline, &ctx, &mut sink, cancel);
    // The steps' network ends with them; this process exits soon, and
    // pasta's exit (tens of milliseconds in the kernel) is not waited for.
    // Released only once the containment has ended (with `ctx`): until
    // then pasta and the holder stay spared, or its sweep of this
    // process's descendants would find pasta still exiting and wait for it.
    let mut ctx = ctx;
    let ending = ctx
        .network
        .take()
        .and_then(Arc::into_inner)
        .map(|network| network.kill());
    drop(ctx);
    if let Some(ending) = ending {
        ending.release();
    }
    sink.tail().map_err(|e| e.to_string())?;
    if let Err(e) = result {
        return Err(e.to_string());
    }
    // The artifacts it kept, each before the event that names it.
    let artifacts = dir.open_dir(&format!("artifacts/{}", job.job)).ok();
    for event in std::mem::take(&mut sink.held) {
        let Event::ArtifactKept { path, .. } = &event else {
            continue;
        };
        let Some(artifacts) = &artifacts else { break };
        let Ok(mut f) = artifacts.open_beneath(path) else {
            continue;
        };
        let head = FileHead {
            role: FileRole::Artifact,
            path: path.clone(),
            mode: 0o644,
            link: None,
        };
        let mut o = lock(out);
        quire_exec::exec::send_file(&mut *o, &head, &mut f).map_err(|e| e.to_string())?;
        remote::write_frame(
            &mut *o,
            remote::EVENT,
            event.to_line().trim_end().as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(sink.outcome.take().unwrap_or(Outcome {
        state: if cancel.is_cancelled() {
            "aborted".into()
        } else {
            "failed".into()
        },
        exit_code: None,
    }))
}

/// Show the job's workspace, HOME and TMPDIR to its steps at
/// `<root>/ci/{workspace,home,tmp}`: the same paths for every job on every
/// node with the same scratch, so that what a cache keeps with its paths
/// in it (a virtualenv, a build tree) still works when the next run
/// restores it on another node, as the worker's stable paths do locally.
/// Bind mounts in this process's own mount namespace (private: another
/// job on this node sees its own there), made by descriptors: each of the
/// job's directories cloned with `open_tree` and moved with `move_mount`
/// onto its mount point in `ci`, held open; never a path looked up again,
/// never through a symbolic link (a link planted at a mount point is
/// refused, not followed). The paths, for the steps.
fn show_stable(at: &Where<'_>) -> Result<PathBuf, String> {
    use rustix::mount::{MoveMountFlags, OpenTreeFlags, move_mount, open_tree};
    let private = rustix::fs::Mode::from_raw_mode(0o700);
    let made = |e: &dyn std::fmt::Display| format!("cannot make the steps' paths: {e}");
    match rustix::fs::mkdirat(at.root, "ci", private) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(made(&e)),
    }
    let ci = at.root.subdir(OsStr::new("ci")).map_err(|e| made(&e))?;
    for name in ["workspace", "home", "tmp"] {
        match rustix::fs::mkdirat(&ci, name, private) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(made(&e)),
        }
        let own = at.dir.subdir(OsStr::new(name)).map_err(|e| made(&e))?;
        let tree = open_tree(
            &own,
            "",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_EMPTY_PATH,
        )
        .map_err(|e| format!("cannot show the steps their {name} at a stable path: {e}"))?;
        move_mount(
            &tree,
            "",
            &ci,
            name,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| format!("cannot show the steps their {name} at a stable path: {e}"))?;
    }
    Ok(at.root_path.join("ci"))
}

/// The home's `[steps] env`, and what tells a step where it runs: the
/// cluster's names for the node and the job (`SLURMD_NODENAME`,
/// `SLURM_JOB_ID`, `SLURM_JOB_NAME`), as the node's scheduler set them.
fn step_env(home: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = home.to_vec();
    for name in ["SLURMD_NODENAME", "SLURM_JOB_ID", "SLURM_JOB_NAME"] {
        if let Ok(value) = std::env::var(name) {
            env.push((name.to_string(), value));
        }
    }
    env
}

/// A setting of the worker's home, as config.toml spells it.
fn setting<T: serde::de::DeserializeOwned>(spelled: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(spelled.to_string()))
        .map_err(|e| format!("the job's settings: {spelled:?}: {e}"))
}

/// The scratch root above a job's directory.
fn root_path_of(dir_path: &Path) -> PathBuf {
    dir_path.parent().unwrap_or(dir_path).to_path_buf()
}

/// The kind of a sent object, from its frame's kind byte.
fn object_kind(kind: u8) -> Result<gix::object::Kind, String> {
    match kind {
        remote::COMMIT => Ok(gix::object::Kind::Commit),
        remote::TREE => Ok(gix::object::Kind::Tree),
        remote::BLOB => Ok(gix::object::Kind::Blob),
        _ => Err("an object of no known kind".into()),
    }
}

/// A bare repository at `src.git` in the job's directory `dir` (which
/// `src` names), for the objects the worker sends: made by descriptor,
/// with only what opening it needs (`HEAD`, `config`, `objects`, `refs`).
/// Not `git init`'s skeleton (hook samples, templates, a probe of the file
/// system's abilities): each file made here is one more for the node's
/// disk to make and remove, for every job. Of SHA-256 ids when the commit
/// `sha` is one (64 hex digits), so that the objects sent hash to the ids
/// they have in the pushed repository.
fn object_store(dir: &Dir, src: &Path, sha: &str) -> Result<gix::Repository, String> {
    let hash = gix::hash::Kind::from_hex_len(sha.len())
        .ok_or_else(|| format!("a commit id of {} characters", sha.len()))?;
    let config = crate::git::repository_config(hash, "\tbare = true\n");
    let git = dir
        .create_dirs_mode("src.git", 0o755, None)
        .map_err(|e| e.to_string())?;
    for sub in ["objects", "refs"] {
        git.create_dirs_mode(sub, 0o755, None)
            .map_err(|e| e.to_string())?;
    }
    for (name, text) in [("HEAD", "ref: refs/heads/main\n"), ("config", &config)] {
        git.create_file(OsStr::new(name), 0o644)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| format!("{name}: {e}"))?;
    }
    gix::open_opts(src, gix::open::Options::isolated()).map_err(|e| e.to_string())
}

/// Check the commit out into `workspace`; its files, for their times.
fn check_out(src: &Path, job: &NodeJob, workspace: &Path) -> Result<Vec<TreeFile>, String> {
    std::fs::write(src.join("shallow"), format!("{}\n", job.sha)).map_err(|e| e.to_string())?;
    let repo = Repo::open(src).map_err(|e| e.to_string())?.in_process();
    let files = repo
        .materialize(
            &job.sha,
            &job.ref_name,
            workspace,
            true,
            WorkspaceRefs::Pushed,
        )
        .map_err(|e| e.to_string())?;
    std::fs::write(workspace.join(".git/shallow"), format!("{}\n", job.sha))
        .map_err(|e| e.to_string())?;
    Ok(files)
}

/// The job's events, and its log's bytes, to the worker: the log up to
/// now before each event, so an event never runs ahead of its lines.
struct NodeSink {
    out: Out,
    log: PathBuf,
    reader: Option<File>,
    /// Artifacts' events, sent after the run with their files.
    held: Vec<Event>,
    outcome: Option<Outcome>,
}

impl NodeSink {
    /// Send what the log gained since the last time.
    fn tail(&mut self) -> io::Result<()> {
        if self.reader.is_none() {
            match File::open(&self.log) {
                Ok(f) => self.reader = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let Some(reader) = &mut self.reader else {
            return Ok(());
        };
        let mut buf = vec![0u8; remote::CHUNK];
        let mut o = lock(&self.out);
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            remote::write_frame(&mut *o, remote::LOG, &buf[..n])?;
        }
        o.flush()
    }
}

impl EventSink for NodeSink {
    fn emit(&mut self, event: &Event) -> io::Result<()> {
        self.tail()?;
        match event {
            Event::StepStarted { .. } | Event::StepFinished { .. } => {
                let mut o = lock(&self.out);
                remote::write_frame(
                    &mut *o,
                    remote::EVENT,
                    event.to_line().trim_end().as_bytes(),
                )?;
                o.flush()
            }
            Event::ArtifactKept { .. } => {
                self.held.push(event.clone());
                Ok(())
            }
            Event::JobFinished {
                state, exit_code, ..
            } => {
                self.outcome = Some(Outcome {
                    state: match state {
                        JobState::Complete => "complete",
                        JobState::Aborted => "aborted",
                        _ => "failed",
                    }
                    .into(),
                    exit_code: *exit_code,
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tail()
    }
}

/// The job's cache on the node: restored by the worker before the steps
/// (its files came with the commit), saved by sending its files back.
#[derive(Debug)]
struct NodeCache {
    notes: Vec<String>,
    /// The checkout, whose files' times go back with the saved cache.
    checkout: Option<Checkout>,
    out: Out,
}

impl JobCache for NodeCache {
    fn restore(&self, _job: &str, _paths: &[String], _workspace: &Path) -> Vec<String> {
        // The worker's lines, already prefixed; the executor prefixes
        // again, so take the prefix off.
        self.notes
            .iter()
            .map(|n| n.strip_prefix("quire: cache: ").unwrap_or(n).to_string())
            .collect()
    }

    fn save(&self, _job: &str, paths: &[String], workspace: &Path) -> Vec<String> {
        let Ok(ws) = Dir::open(workspace) else {
            return vec!["the workspace is gone: nothing saved".into()];
        };
        let mut sent = (0u64, 0u64);
        let record = self.checkout.as_ref().map(Checkout::record);
        let mut o = lock(&self.out);
        for path in paths {
            if let Err(e) = send_path(&mut *o, &ws, path, &mut sent) {
                return vec![format!("{path}: not sent to the server: {e}")];
            }
        }
        if let Some(record) = record
            && let Err(e) = quire_exec::exec::send_file(
                &mut *o,
                &quire_exec::exec::times_head(),
                &mut &record[..],
            )
        {
            return vec![format!("the files' times: not sent to the server: {e}")];
        }
        vec![format!(
            "{} files ({} bytes) sent to the server",
            sent.0, sent.1
        )]
    }
}

/// Send `rel` (a file, a symlink, or a directory and what is below it) as
/// cache files: its directory reached from the workspace by descriptors
/// (a symlink on the way refused), then sent as the worker sends a cache
/// ([`quire_exec::exec::send_entry`]): nothing of the job runs any more,
/// but a symlink it left is sent as one, never followed.
fn send_path(out: &mut dyn Write, ws: &Dir, rel: &str, sent: &mut (u64, u64)) -> io::Result<()> {
    let Some((parent, name)) = beneath::split_last(rel)? else {
        return Ok(());
    };
    let Ok(at) = ws.open_dir(&parent) else {
        return Ok(());
    };
    quire_exec::exec::send_entry(out, &at, OsStr::new(name), rel, 0, sent)
}
