//! `quire-run work`: a worker. It holds a slot, claims pending runs
//! (round-robin over repositories, oldest first within one: docs/STATE.md,
//! "Claim order") and executes each: materialize the commit's tree, run the pipeline
//! with events ingested live and its processes contained (a cgroup per job,
//! or the worker as their subreaper), finish the run. It exits when the
//! queue is empty.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::caches::RunCache;
use crate::config::Config;
use crate::mtimes::Checkout;
use crate::workers;
use quire_exec::contain::{self, Want};
use quire_exec::events::{EventSink, JsonlFile};
use quire_exec::exec::{
    Cancel, HostFailure, MAX_TIMEOUT_NOTE, RunContext, RunResult, Sandbox, SandboxMode,
    TIMEOUT_NOTE,
};
use quire_exec::netns::{self, Decided, RunNetwork};
use quire_exec::{pidns, processes};
use quire_model::events::Event;
use quire_store::lifecycle::{Outcome, Worker};
use quire_store::logs::LogAt;
use quire_store::{FailureKind, Home, Run, Store};

use crate::Error;
use crate::git::Repo;
use crate::record::DEFAULT_FILE;
use crate::record::{Refusal, validate};
use crate::sandbox::{self, RunDirs};

/// How long a claim holds without renewal (the heartbeat renews it twice a
/// second); reconcile treats a run whose lease ran out as orphaned.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often the lease is renewed, which is also how soon a worker notices
/// that its run was superseded or cancelled, or that it was told to stop.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// How the steps of this worker's runs see other processes, for
/// `runs.sandbox`: set once, before the first run.
static PROCESSES: OnceLock<String> = OnceLock::new();

/// Why this worker's steps see each run at its own paths, not the stable
/// ones: set once, before the first run, when it has no mount namespace of
/// its own to show them there. Set to the empty string by a worker that
/// has one; unset (`quire-run trigger --wait`, executing in the caller's
/// namespace), and runs keep their own paths too.
static PER_RUN_PATHS: OnceLock<String> = OnceLock::new();

/// Set by a worker in the environment of the worker it starts in a pid
/// namespace of its own ([`pidns`]): its own pid, which stands for the
/// new one outside. Steps never see it (their environment is built).
const STAND_IN: &str = "QUIRE_WORKER_STAND_IN";

/// Drain the queue, then exit.
pub fn run(home: &Home) -> Result<(), Error> {
    let stand_in = std::env::var(STAND_IN)
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok());
    if let Err(e) = workers::detach_from_session() {
        eprintln!("quire-run work: cannot start a session of its own: {e}");
    }
    crate::interrupt::survive_file_size_limit();
    let config = Config::load(home)?;
    let processes = match stand_in {
        Some(pid) => {
            quire_model::process::set_host_pid(pid);
            if let Err(e) = pidns::keep_capabilities_to_self() {
                eprintln!("quire-run work: cannot keep its capabilities to itself: {e}");
                std::process::exit(1);
            }
            let _ = PER_RUN_PATHS.set(String::new());
            "steps see only this run's processes (a pid namespace of its own)".to_string()
        }
        None if config.sandbox == SandboxMode::Off => {
            let _ = PER_RUN_PATHS.set("sandbox = \"off\"".into());
            "steps see every process of the worker's user (sandbox = \"off\")".to_string()
        }
        None if std::env::var_os("QUIRE_PIDNS").is_some_and(|v| v == "off") => {
            let _ = PER_RUN_PATHS.set("QUIRE_PIDNS=off".into());
            "steps see every process of the worker's user (QUIRE_PIDNS=off)".to_string()
        }
        None => match isolate(home) {
            Ok(isolated) => return stand_in_for(isolated),
            Err(why) => {
                eprintln!(
                    "quire-run work: pid {}: no pid namespace of its own: {why}",
                    std::process::id()
                );
                let _ = PER_RUN_PATHS.set(format!("no mount namespace: {why}"));
                format!("steps see every process of the worker's user (no pid namespace: {why})")
            }
        },
    };
    let _ = PROCESSES.set(processes);
    crate::interrupt::catch();
    let containment = contain_runs(&config);
    eprintln!(
        "quire-run work: pid {}: {}",
        quire_model::process::host_pid(),
        containment.describe()
    );
    // A home made before `runs/` was spread gets it now.
    home.spread_runs();
    let mut announcers = Announcers::default();
    let kept = Kept::default();
    let drained = drain(home, &config, &containment, &kept, &mut announcers);
    // Its namespace ends before the wait for the notifiers.
    drop(kept);
    // A timer's note half written when the process ends would leave
    // refs/notes/ci locked: it finishes (or is stopped) first, also when
    // the worker was told to stop.
    announcers.stop_timer();
    // In a pid namespace of its own, what this worker started ends with
    // it: the notifiers of its last runs finish first.
    if !crate::interrupt::requested() {
        announcers.wait_all(home);
    }
    drained
}

/// Take runs until none is left.
fn drain(
    home: &Home,
    config: &Config,
    containment: &contain::Setup,
    kept: &Kept,
    announcers: &mut Announcers,
) -> Result<(), Error> {
    loop {
        let Some(slot) = workers::acquire_soon(home, config.max_workers)? else {
            return Ok(());
        };
        let mut store = Store::open_existing(home)?;
        crate::say_converted(&store);
        let worker = Worker::this_process(LEASE);
        if home.is_gone() {
            return Err(home_gone(home, None));
        }
        home.ensure_reserve();
        while !crate::interrupt::requested()
            && let Some(run) = store.on_full_disk_use_reserve(|s| {
                s.claim_next(&worker, config.max_workers_per_repo())
            })?
        {
            execute(home, config, containment, kept, &mut store, &worker, run)?;
            match announcing_due(home, &store, config) {
                Due::Now => announcers.start(home, &mut store),
                // A second later than due: after a short run, this loop
                // announces first (and stops the timer), in one batch.
                Due::At(when) => announcers.later(home, when.saturating_add(ANNOUNCE_EVERY_MS)),
                Due::Nothing => {}
            }
            // Made again once a full disk has room: the next full disk
            // finds it.
            home.ensure_reserve();
        }
        // What ended since the last announcement is announced now, with
        // nothing left to take (or when stopped).
        announcers.start(home, &mut store);
        if crate::interrupt::requested() {
            return Ok(());
        }
        drop(slot);
        // A hook may have queued a run after our last claim but while our
        // slot still looked taken: look once more now that it is free. A
        // pending run of a repository at max_workers_per_repo waits for
        // one of its runs to end, whose worker then claims it.
        if !store.has_claimable(config.max_workers_per_repo())? {
            return Ok(());
        }
    }
}

/// How long the runs a worker ended may wait for their announcement while
/// it still has runs to take: a burst of queued runs is announced in a
/// few batches (their notes in one commit each), not one at a time.
const ANNOUNCE_EVERY_MS: i64 = 1000;

/// When the runs ended so far are to be announced.
enum Due {
    /// Now.
    Now,
    /// At this time (ms since the epoch), by a timer: the worker takes
    /// its next run meanwhile, which may take hours.
    At(i64),
    /// None waits.
    Nothing,
}

/// When to announce the ended runs, after a run: now when no run is left
/// for this worker to take, when one has waited [`ANNOUNCE_EVERY_MS`],
/// when a `[[notify]]` entry is configured (an announcer of its own is
/// started, the worker does not wait for it), or when the store cannot
/// say; else once the longest waiting has waited that long.
fn announcing_due(home: &Home, store: &Store, config: &Config) -> Due {
    if !store
        .has_claimable(config.max_workers_per_repo())
        .unwrap_or(false)
    {
        return Due::Now;
    }
    // config.toml read again, as an announcer reads it.
    if !Config::load(home).is_ok_and(|now| now.notify.is_empty()) {
        return Due::Now;
    }
    match store.oldest_unannounced_ms() {
        Ok(Some(ended)) => {
            let when = ended.saturating_add(ANNOUNCE_EVERY_MS);
            if quire_model::clock::now_ms() >= when {
                Due::Now
            } else {
                Due::At(when)
            }
        }
        Ok(None) => Due::Nothing,
        Err(_) => Due::Now,
    }
}

/// The announcers this worker started (`quire-run announce`, for the runs
/// it ended): spared from the sweeps of its descendants, so their
/// notifiers outlive the run, and reaped here.
///
/// One is started after a run while an ended run waits for one (while
/// runs are still queued, only once one has waited [`ANNOUNCE_EVERY_MS`]),
/// and once more when no run is left to take: an announcer still running
/// may have looked for runs for the last time just before this one ended,
/// and a run must not wait for the worker's next run (hours away, maybe)
/// to be announced. When config.toml (read
/// again for each run, as an announcer reads it) has no `[[notify]]`
/// entry, the worker writes the notes itself instead: a note takes a
/// millisecond, a new process more.
#[derive(Default)]
struct Announcers {
    children: Vec<std::process::Child>,
    /// The timer that announces the runs left waiting while the worker
    /// executes its next run ([`Announcers::later`]); dropping its sender
    /// stops it.
    timer: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Announcers {
    /// Announce what waits at `when` (ms since the epoch), on a thread of
    /// its own with a connection of its own, unless a timer is already
    /// set: the runs a worker ended while more were queued are announced
    /// within twice [`ANNOUNCE_EVERY_MS`] even when its next run takes
    /// hours.
    /// Only with no `[[notify]]` entry: the notes are written here, in
    /// process, and nothing is started that a sweep would have to spare.
    fn later(&mut self, home: &Home, when: i64) {
        if self
            .timer
            .as_ref()
            .is_some_and(|(_, thread)| !thread.is_finished())
        {
            return;
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let home = home.clone();
        let wait = Duration::from_millis(
            u64::try_from(when.saturating_sub(quire_model::clock::now_ms())).unwrap_or(0),
        );
        let timer = std::thread::Builder::new()
            .name("announce".into())
            .spawn(move || {
                // Stopped (the sender dropped) or its time come.
                if stopped.recv_timeout(wait) != Err(mpsc::RecvTimeoutError::Timeout) {
                    return;
                }
                match Store::open_existing(&home) {
                    Ok(mut store) => {
                        crate::announce::notes_only_here(&home, &mut store);
                    }
                    Err(e) => eprintln!("quire-run work: cannot announce the ended runs: {e}"),
                }
            });
        match timer {
            Ok(thread) => self.timer = Some((stop, thread)),
            // No thread to spare: announced after the next run instead.
            Err(e) => eprintln!("quire-run work: cannot start a timer to announce runs: {e}"),
        }
    }

    /// Stop the timer, if one is set, and wait for it (an announcement it
    /// began is finished first).
    fn stop_timer(&mut self) {
        if let Some((stop, thread)) = self.timer.take() {
            drop(stop);
            let _ = thread.join();
        }
    }

    /// Announce the ended runs here if only notes are to be written, else
    /// start an announcer if an ended run waits for one.
    fn start(&mut self, home: &Home, store: &mut Store) {
        self.stop_timer();
        self.reap();
        if !store.has_unannounced().unwrap_or(false) {
            return;
        }
        if crate::announce::notes_only_here(home, store) {
            return;
        }
        match workers::spawn_announcer(home) {
            Ok(child) => {
                processes::spare(child.id());
                self.children.push(child);
            }
            Err(e) => eprintln!("quire-run work: cannot start quire-run announce: {e}"),
        }
    }

    fn reap(&mut self) {
        self.children.retain_mut(|child| match child.try_wait() {
            Ok(None) => true,
            Ok(Some(_)) | Err(_) => {
                processes::unspare(child.id());
                false
            }
        });
    }

    /// Wait for every announcer of ours; then, while a run is left
    /// unannounced (one that ended as the last announcer finished), start
    /// one more and wait for it too.
    /// Never more than a few rounds, and none after an announcer that
    /// failed (it said why in worker.log; `reconcile` starts one later).
    fn wait_all(&mut self, home: &Home) {
        self.stop_timer();
        for round in 0.. {
            let mut failed = false;
            for mut child in self.children.drain(..) {
                failed |= !child.wait().is_ok_and(|status| status.success());
                processes::unspare(child.id());
            }
            if round == 4 || failed || crate::interrupt::requested() {
                return;
            }
            let left = Store::open_existing(home)
                .and_then(|store| store.has_unannounced())
                .unwrap_or(false);
            if !left {
                return;
            }
            match workers::spawn_announcer(home) {
                Ok(child) => {
                    processes::spare(child.id());
                    self.children.push(child);
                }
                Err(e) => {
                    eprintln!("quire-run work: cannot start quire-run announce: {e}");
                    return;
                }
            }
        }
    }
}

/// Start this worker again as pid 1 of a pid namespace of its own, with a
/// `/proc` of that namespace, so that its steps cannot see (nor read the
/// environment of) another run's steps. Why not, when it cannot.
fn isolate(home: &Home) -> Result<pidns::Isolated, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let args = [
        "--home".into(),
        home.dir().as_os_str().to_owned(),
        "work".into(),
    ];
    pidns::spawn(&exe, &args, (STAND_IN, &std::process::id().to_string()))
}

/// Stand outside for the worker in its namespace until it ends: its pid is
/// the one the store records, signals reach it through this process, and
/// this process ends with its status.
fn stand_in_for(isolated: pidns::Isolated) -> Result<(), Error> {
    match isolated.wait() {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::Quiet),
        Err(e) => {
            eprintln!("quire-run work: cannot wait for the worker in its namespace: {e}");
            Err(Error::Quiet)
        }
    }
}

/// How this process contains the runs it executes: as `QUIRE_CONTAINMENT`
/// asks (a cgroup per job where it can, by default), with the config's
/// limits. Once per process, before its first run.
pub fn contain_runs(config: &Config) -> contain::Setup {
    let (want, warning) = Want::from_env();
    if let Some(warning) = warning {
        eprintln!("quire-run: warning: {warning}");
    }
    contain::Setup::new(want, config.job_limits())
}

/// Execute one claimed run to a terminal state. Only a store that cannot be
/// written is an error here; anything else fails the run with a reason.
pub fn execute(
    home: &Home,
    config: &Config,
    containment: &contain::Setup,
    kept: &Kept,
    store: &mut Store,
    worker: &Worker,
    run: Run,
) -> Result<(), Error> {
    let run_dir = home.run_dir(&run.id)?;
    let dirs = RunDirs::of(&run_dir);
    if home.is_gone() {
        return Err(home_gone(home, Some(&run.id)));
    }
    // The lease is renewed from the moment of the claim, so a long checkout
    // is never mistaken for a dead worker; and a supersede during it is
    // noticed.
    let cancel = Cancel::default();
    let beat_store = match kept.beat.take() {
        Some(store) => Ok(store),
        // `trigger --wait` syncs the store's log after the run instead of
        // folding it as its last connection closes.
        None if !kept.keeps() => Store::open_existing(home).inspect(|store| {
            let _ = store.fold_nothing_on_close();
        }),
        None => Store::open_existing(home),
    };
    let outcome = match beat_store {
        Ok(beat_store) => {
            let heartbeat = Heartbeat::start(beat_store, &run.id, worker, &cancel);
            let outcome = prepare_and_run(
                Prepare {
                    home,
                    config,
                    containment,
                    kept,
                    worker,
                },
                store,
                &cancel,
                &run,
                &run_dir,
                &dirs,
            );
            if let Some(store) = heartbeat.stop() {
                kept.beat.replace(Some(store));
            }
            // Stopped by SIGINT or SIGTERM: the run did not fail, it was
            // cancelled (a no-op if it ended first).
            if crate::interrupt::requested() {
                store.on_full_disk_use_reserve(|s| s.cancel(&run.id))?;
            }
            outcome
        }
        Err(e) => Err(RunFailure::Crashed(format!(
            "cannot open the store a second time for the lease: {e}"
        ))),
    };
    // The run's directories go beside the end's record and the next run
    // (crate::reaper); a kept workspace stays. runs/<id>/ goes once the
    // logs are packed (the removal dropped).
    let removal = kept
        .reaper
        .remove((!config.keep_workspaces).then_some(dirs), run_dir);
    record_the_end(home, store, &run, outcome, &removal)
}

/// Record the end of a run that did not complete on its own, then pack
/// its logs into the store.
fn record_the_end(
    home: &Home,
    store: &mut Store,
    run: &Run,
    outcome: Result<(), RunFailure>,
    removal: &crate::reaper::Removal,
) -> Result<(), Error> {
    // On a full disk (the reserve spent already), the room the run's own
    // directories free as they go is where its end is written.
    let finish = |store: &mut Store, outcome: &Outcome| -> Result<(), Error> {
        match store.on_full_disk_use_reserve(|s| s.finish(&run.id, outcome)) {
            Err(e) if e.is_disk_full() => {
                removal.wait_for_dirs();
                store.on_full_disk_use_reserve(|s| s.finish(&run.id, outcome))?;
                Ok(())
            }
            done => done.map(drop).map_err(Error::from),
        }
    };
    // The home was deleted while the run executed: its end cannot be
    // recorded (the connection still writes the deleted file), and nothing
    // is made in its place.
    if home.is_gone() {
        return Err(home_gone(home, Some(&run.id)));
    }
    match outcome {
        Ok(()) => {}
        Err(RunFailure::Invalid(refused)) => {
            let outcome = Outcome::Failed {
                kind: FailureKind::PipelineInvalid,
                detail: Some(refused.detail),
            };
            finish(store, &outcome)?;
        }
        Err(RunFailure::Crashed(message)) => {
            eprintln!("quire-run work: run {}: {message}", run.id);
            let outcome = Outcome::Failed {
                kind: FailureKind::ProcessCrashed,
                detail: Some(message),
            };
            finish(store, &outcome)?;
        }
    }
    // The run has ended: its small logs go into the store, their files
    // away.
    if let Err(e) = store.pack_log_files(&run.id) {
        eprintln!("quire-run work: run {}: cannot pack its logs: {e}", run.id);
    }
    Ok(())
}

/// Said on stderr (worker.log, or the stand-in's) when the home's store
/// went away under this worker, which then exits non-zero.
fn home_gone(home: &Home, run: Option<&str>) -> Error {
    let what = match run {
        Some(id) => format!("the end of run {id} is not recorded"),
        None => "no run is taken".to_string(),
    };
    eprintln!(
        "quire-run work: {} is gone (the home was deleted): {what}, and nothing is made in \
         its place; `quire-run install` makes a new home",
        home.db_path().display()
    );
    Error::Quiet
}

enum RunFailure {
    Invalid(Refusal),
    Crashed(String),
}

impl From<crate::git::GitError> for RunFailure {
    fn from(e: crate::git::GitError) -> RunFailure {
        RunFailure::Crashed(e.to_string())
    }
}

/// What a run is executed with, beside the run itself.
struct Prepare<'a> {
    home: &'a Home,
    config: &'a Config,
    containment: &'a contain::Setup,
    kept: &'a Kept,
    worker: &'a Worker,
}

fn prepare_and_run(
    with: Prepare<'_>,
    store: &mut Store,
    cancel: &Cancel,
    run: &Run,
    run_dir: &Path,
    dirs: &RunDirs,
) -> Result<(), RunFailure> {
    let Prepare {
        home,
        config,
        containment,
        kept,
        worker,
    } = with;
    let workspace = dirs.workspace.as_path();
    let crashed = |what: &str, e: io::Error| RunFailure::Crashed(format!("cannot {what}: {e}"));
    home.create_run_dir(&run.id)
        .map_err(|e| RunFailure::Crashed(format!("cannot create {}: {e}", run_dir.display())))?;
    let git_dir = run
        .git_dir
        .as_deref()
        .ok_or_else(|| RunFailure::Crashed("the run records no repository path".into()))?;
    let repo = Repo::open(Path::new(git_dir))?;
    // Held to this home's limits now, which may have changed since the
    // push: a file over max_pipeline_kb is refused again, unread.
    let limits = config.limits();
    let file = repo
        .read_file(&run.sha, DEFAULT_FILE, limits.max_file_bytes())?
        .ok_or_else(|| RunFailure::Crashed(format!("{} has no {DEFAULT_FILE}", run.sha)))?;
    let pipeline = validate(&file, &limits).map_err(RunFailure::Invalid)?;
    let secrets = config.secret_values().map_err(RunFailure::Crashed)?;
    let missing: Vec<String> = pipeline
        .jobs
        .iter()
        .flat_map(|job| job.secrets.iter().map(move |name| (job, name)))
        .filter(|(_, name)| !secrets.iter().any(|(n, _)| n == *name))
        .map(|(job, name)| {
            format!(
                "job {} asks for secret {name}, which the home's config.toml does not define",
                job.id
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(RunFailure::Invalid(Refusal::listed(missing)));
    }
    if workspace.exists() {
        std::fs::remove_dir_all(workspace).map_err(|e| crashed("clear the old workspace", e))?;
    }
    // The steps' network namespace is set up (pasta, on the other CPU)
    // while the commit is checked out.
    let network = kept.take_for(run.repo_id).unwrap_or_else(|| {
        netns::start(
            config.local_step_network(),
            config.sandbox == SandboxMode::Required,
        )
    });
    let caching = config.cache_max_mb > 0 && pipeline.jobs.iter().any(|job| !job.cache.is_empty());
    // On a cluster each job's node checks the commit out itself (and
    // gives the files their times from the cache): nothing runs here.
    let slurm = config.executor.slurm();
    let remote = slurm.is_some();
    let files = if remote {
        std::fs::create_dir(workspace).map_err(|e| crashed("create the workspace", e))?;
        None
    } else {
        Some(repo.materialize(&run.sha, &run.ref_name, workspace, caching, pipeline.refs)?)
    };
    dirs.create_home_and_tmp()
        .map_err(|e| crashed("create the run's HOME and TMPDIR", e))?;
    let Confined {
        sandbox,
        network,
        owner,
        summary,
    } = confine(home, config, network, store, run, run_dir, dirs)?;

    // Shown to steps at the same paths every run, so tools that key their
    // caches on absolute paths (cargo, ccache, venvs) find them again.
    // Nothing to show where no step runs here.
    let stable = if remote {
        StablePaths::PerRun("its steps run on the cluster's nodes".into())
    } else {
        StablePaths::show(home, dirs)
    };
    let paths = stable.describe();

    // Contained from its first step; recorded first, so that reconcile
    // finds the run's cgroup if this worker dies.
    let contained = containment
        .enter_run(&run.id)
        .map_err(|e| crashed("contain the run's processes", e))?;
    if let Some(contained) = &contained {
        if let Some(note) = contained.note() {
            eprintln!("quire-run work: {note}");
        }
        let cgroup = contained.cgroup_dir().map(|d| d.to_string_lossy());
        store
            .record_containment(&run.id, worker, contained.containment(), cgroup.as_deref())
            .map_err(|e| RunFailure::Crashed(e.to_string()))?;
    }
    // The limits in force, for show: what each job's cgroup got.
    let limits = limits_line(contained.as_ref().map(|c| c.limits()).unwrap_or_default());
    // On a cluster, how each node confined the steps is its job's first
    // log line: the worker's own would describe steps that never ran here.
    let recorded = match &slurm {
        Some(slurm) => format!(
            "the steps run on {} nodes: each job's first log line says how its node confined them",
            quire_exec::remote::JobHost::kind(slurm)
        ),
        None => format!("{summary}; {paths}; {limits}"),
    };
    store
        .record_sandbox(&run.id, &recorded)
        .map_err(|e| RunFailure::Crashed(e.to_string()))?;
    let mut ctx = RunContext {
        run_id: run.id.clone(),
        repo: run.repo.clone(),
        ref_name: run.ref_name.clone(),
        sha: run.sha.clone(),
        previous_sha: run.previous_sha.clone(),
        traceparent: run.traceparent.clone().unwrap_or_default(),
        workspace: workspace.to_path_buf(),
        step_workspace: stable.shown().map(|d| d.workspace.clone()),
        step_home: Some(stable.shown().unwrap_or(dirs).home.clone()),
        step_tmpdir: Some(stable.shown().unwrap_or(dirs).tmp.clone()),
        step_env: Some(config.steps.env.clone().into_iter().collect()),
        sandbox: Some(Arc::new(sandbox)),
        network: network.map(Arc::new),
        remote: slurm.map(|slurm| quire_exec::exec::Remote {
            host: Arc::new(slurm),
            objects: Arc::new(crate::git::CommitTree {
                git_dir: std::path::PathBuf::from(git_dir),
                sha: run.sha.clone(),
            }),
            max_pipeline_bytes: config.max_pipeline_kb.saturating_mul(1024),
            max_jobs: config.max_jobs,
            max_steps: config.max_steps,
            job_memory_mb: config.job_memory_mb,
            job_pids_max: config.job_pids_max,
            sandbox: config.sandbox,
            step_network: config.step_network,
        }),
        logs_dir: run_dir.join("logs"),
        secrets,
        cache: caching.then(|| {
            let cache = RunCache::new(
                home,
                run.repo_id,
                &run.id,
                &run.ref_name,
                repo.default_branch(),
                config.cache_max_mb,
            )
            .owned_by(owner);
            let cache = match files {
                Some(files) => cache.with_checkout(Checkout::new(workspace, files)),
                None => cache,
            };
            Arc::new(cache) as Arc<dyn quire_exec::exec::JobCache>
        }),
        containment: contained.clone(),
    };
    let events = JsonlFile::create(&run_dir.join("events.jsonl"))
        .map_err(|e| crashed("create events.jsonl", e))?;
    let mut sink = (events, LiveIngest::new(store, &run.id));
    let result = config.executor().run(&pipeline, &ctx, &mut sink, cancel);
    drop(sink);
    // A network that is not kept ends with the steps, before the sweep:
    // pasta's exit overlaps it and the run's end.
    if !kept.keeps()
        && let Some(network) = ctx.network.take().and_then(Arc::into_inner)
    {
        kept.end(network);
    }
    // Nothing of the run outlives it: whatever is left is killed, and its
    // cgroup removed.
    // `end` fails when anything of the run outlived it.
    let swept = match &contained {
        Some(contained) => match contained.end() {
            Ok(()) => true,
            Err(e) => {
                eprintln!("quire-run work: run {}: {e}", run.id);
                false
            }
        },
        None => false,
    };
    // The run's network namespace is kept for this worker's next run of
    // the same repository when none of this run's processes is left in
    // it; else pasta and the holder are killed now (reaped once gone).
    if let Some(network) = ctx.network.take().and_then(Arc::into_inner) {
        if swept {
            kept.keep(run.repo_id, network);
        } else {
            kept.end(network);
        }
    }
    // The executor says how the pipeline went; the worker alone ends the
    // run. A cancelled run was ended by whoever cancelled it.
    let outcome = match result.map_err(|e| RunFailure::Crashed(e.to_string()))? {
        RunResult::Complete => Outcome::Complete,
        RunResult::Failed { kind, hosts } => Outcome::Failed {
            kind,
            detail: store
                .run_detail(&run.id)
                .ok()
                .map(|detail| {
                    failed_jobs(store, &detail, &pipeline, &hosts, config.max_job_timeout())
                })
                .filter(|d| !d.is_empty()),
        },
        RunResult::Cancelled => return Ok(()),
    };
    store
        .on_full_disk_use_reserve(|s| s.finish(&run.id, &outcome))
        .map_err(|e| RunFailure::Crashed(e.to_string()))?;
    Ok(())
}

/// A failed run's detail: each job that failed and was not allowed to,
/// and why: `job test failed: exit 3 at step 2 (cargo test)`, `job build
/// timed out after 5m at step 1 (make)`, `job test lost its node qnode2 at
/// step 1 (make)` (the executor's word, in `hosts`).
pub fn failed_jobs(
    store: &Store,
    detail: &quire_store::query::RunDetail,
    pipeline: &quire_pipeline::Pipeline,
    hosts: &[HostFailure],
    max_job_timeout: Duration,
) -> String {
    let mut reasons = Vec::new();
    for job in &detail.jobs {
        let j = &job.job;
        let Some(planned) = pipeline.jobs.iter().find(|p| p.id == j.id) else {
            continue;
        };
        if j.state != quire_store::JobState::Failed || planned.allow_failure {
            continue;
        }
        let Some(step) = job.ending_step() else {
            reasons.push(format!("job {} failed", j.id));
            continue;
        };
        // The executor's own line at the end of the step's log says a
        // timeout ended it, and which: the job's, or config.toml's cap.
        let bytes = store
            .read_step_log(&detail.run.id, &j.id, step.seq, LogAt::Tail, 64 * 1024)
            .ok()
            .flatten()
            .map(|log| log.bytes)
            .unwrap_or_default();
        let says = |note: &str| bytes.windows(note.len()).any(|w| w == note.as_bytes());
        let (timed_out, capped) = (says(TIMEOUT_NOTE), says(MAX_TIMEOUT_NOTE));
        let cmd = quire_view::follow::one_line(&step.cmd);
        // A job run on a cluster whose node was lost, or that the cluster
        // did not start: the executor says so, and why (a step's output
        // cannot).
        let host = hosts.iter().find(|h| h.job == j.id);
        let why = match (timed_out, planned.timeout, step.exit_code, host) {
            (
                ..,
                Some(HostFailure {
                    node: Some(node), ..
                }),
            ) => format!("lost its node {node}"),
            (.., Some(HostFailure { why, .. })) => {
                let why: String = quire_view::follow::one_line(why)
                    .chars()
                    .take(300)
                    .collect();
                format!("was not started by {why}")
            }
            _ if capped => format!(
                "timed out after {} (config.toml's max_job_timeout, the longest any job may run)",
                quire_view::text::span(max_job_timeout)
            ),
            (true, Some(limit), ..) => {
                format!("timed out after {}", quire_view::text::span(limit))
            }
            (_, _, Some(code), _) => format!("failed: exit {code}"),
            _ => "failed".to_string(),
        };
        reasons.push(format!("job {} {why} at step {} ({cmd})", j.id, step.seq));
    }
    reasons.join("; ")
}

/// The sandbox of the run's steps (docs/SECURITY.md), refused as the run's
/// failure when config.toml requires one this machine cannot give, or
/// names a `run_as` user quire cannot switch to. How the steps are confined
/// is recorded in the store (`runs.sandbox`) for `quire-runs show`; when they are not
/// (or only in part), worker.log says so too, as each job's log does.
/// Also the run's network namespace (`step_network`, refused likewise when
/// `required` and it cannot be made), and the uid and gid of `run_as`, who
/// owns the run's directories.
fn confine(
    home: &Home,
    config: &Config,
    network: netns::Starting,
    store: &mut Store,
    run: &Run,
    run_dir: &Path,
    dirs: &RunDirs,
) -> Result<Confined, RunFailure> {
    let git_dir = Path::new(run.git_dir.as_deref().unwrap_or_default());
    let euid = rustix::process::geteuid().as_raw();
    let user = sandbox::step_user(config.run_as.as_deref(), euid).map_err(RunFailure::Crashed)?;
    let owner = user.as_ref().map(|u| (u.uid, u.gid));
    if let Some(user) = &user {
        sandbox::hand_over(home, run_dir, dirs, user).map_err(|e| {
            RunFailure::Crashed(format!(
                "cannot hand the run's directories to user {}: {e}",
                user.name
            ))
        })?;
    }
    let (policy, read_notes) = sandbox::policy(home, config, store, git_dir, dirs, user.as_ref())
        .map_err(RunFailure::Crashed)?;
    let mut sandbox =
        Sandbox::prepare(config.sandbox, &policy, user).map_err(RunFailure::Crashed)?;
    // A missing `[steps] read` directory matters only to confined steps.
    if sandbox.is_confined() {
        for note in read_notes {
            sandbox.add_note(note);
        }
    }
    let network = network.ready().map_err(RunFailure::Crashed)?;
    if let Some(note) = network.note() {
        sandbox.add_note(note);
    }
    let mut summary = format!("{}; {}", sandbox.summary(), network.summary());
    if let Some(processes) = PROCESSES.get() {
        summary = format!("{summary}; {processes}");
    }
    store
        .record_sandbox(&run.id, &summary)
        .map_err(|e| RunFailure::Crashed(e.to_string()))?;
    if !sandbox.notes().is_empty() {
        eprintln!("quire-run work: run {}: sandbox: {}", run.id, summary);
    }
    let network = match network {
        Decided::Namespace(network) => Some(network),
        Decided::Host { .. } => None,
    };
    Ok(Confined {
        sandbox,
        network,
        owner,
        summary,
    })
}

/// What a worker keeps from one run for the next, made once rather than
/// per run.
///
/// `network`: the run's network namespace, for the worker's next run of
/// the same repository (docs/SECURITY.md, "The network"): making one, and
/// attaching pasta to it, costs more than the rest of a trivial run. Kept
/// only when none of the run's processes is left (its containment ended
/// them all, and says so), never given to a run of another repository, and
/// ended when the worker takes one, or exits.
///
/// `beat`: the store connection that renews runs' leases (opening one
/// reads and parses the schema).
///
/// `reaper`: the removals of the ended runs' directories, under way beside
/// the next run ([`crate::reaper`]); waited for when the worker exits.
///
/// `ending`: networks killed and not yet reaped ([`netns::Ending`]):
/// pasta's exit takes tens of milliseconds of the kernel's, which the run
/// need not wait for; reaped as they go, and waited for when this is
/// dropped.
///
/// `one_shot`: for `trigger --wait`, which executes one run and exits: its
/// network, started before the run is even recorded, and nothing kept
/// after it (the network ends with the run's steps).
#[derive(Default)]
pub struct Kept {
    network: std::cell::RefCell<Option<(i64, RunNetwork)>>,
    beat: std::cell::RefCell<Option<Store>>,
    reaper: crate::reaper::Reaper,
    ending: std::cell::RefCell<Vec<netns::Ending>>,
    one_shot: Option<std::cell::RefCell<Option<netns::Starting>>>,
}

impl Kept {
    /// For one run, with its network (as `config` says) started now: pasta
    /// sets it up while the run is recorded, claimed and checked out.
    pub fn one_shot(config: &Config) -> Kept {
        let network = netns::start(
            config.local_step_network(),
            config.sandbox == SandboxMode::Required,
        );
        let mut kept = Kept::default();
        kept.one_shot = Some(std::cell::RefCell::new(Some(network)));
        kept
    }

    /// The network for a run of `repo`: the one started for it, or the kept
    /// one if it is `repo`'s and its holder and pasta still run (any other
    /// is ended); none, and the run starts its own.
    fn take_for(&self, repo: i64) -> Option<netns::Starting> {
        if let Some(started) = &self.one_shot {
            return started.borrow_mut().take();
        }
        let (owner, mut network) = self.network.borrow_mut().take()?;
        if owner == repo && network.is_alive() {
            Some(netns::Starting::kept(network))
        } else {
            self.end(network);
            None
        }
    }

    /// Whether a run's network may be kept for the next run.
    fn keeps(&self) -> bool {
        self.one_shot.is_none()
    }

    fn keep(&self, repo: i64, network: RunNetwork) {
        if !self.keeps() {
            self.end(network);
            return;
        }
        if let Some((_, earlier)) = self.network.borrow_mut().replace((repo, network)) {
            self.end(earlier);
        }
    }

    /// Kill `network` now; reap it, and any ended before, when gone.
    fn end(&self, network: RunNetwork) {
        let mut ending = self.ending.borrow_mut();
        ending.retain_mut(|e| !e.reaped());
        ending.push(network.kill());
    }
}

impl Drop for Kept {
    /// A one-shot run's killed network is left to finish exiting on its
    /// own ([`netns::Ending::release`]): the process exits next, and
    /// init reaps them.
    fn drop(&mut self) {
        if self.one_shot.is_some() {
            for ending in self.ending.get_mut().drain(..) {
                ending.release();
            }
        }
    }
}

/// How a run's steps are confined ([`confine`]).
struct Confined {
    sandbox: Sandbox,
    /// The run's network namespace, when steps get one.
    network: Option<RunNetwork>,
    /// The uid and gid of `run_as`, who owns the run's directories.
    owner: Option<(u32, u32)>,
    /// The line recorded for `show`.
    summary: String,
}

/// A run's workspace, HOME and TMPDIR shown to its steps at the same
/// paths every run ([`RunDirs::stable`]), bind-mounted in this worker's own
/// mount namespace (private: no other worker sees them, each sees its own
/// run there) until the run's end. The worker's own hands keep the real
/// paths. Without a mount namespace of its own, steps see the run's own
/// paths, and why is said.
enum StablePaths {
    Shown(RunDirs),
    PerRun(String),
}

impl StablePaths {
    fn show(home: &Home, dirs: &RunDirs) -> StablePaths {
        match PER_RUN_PATHS.get().map(String::as_str) {
            Some("") => {}
            Some(why) => return StablePaths::PerRun(why.to_string()),
            None => {
                return StablePaths::PerRun("executed outside a worker's own namespace".into());
            }
        }
        let stable = RunDirs::stable(home);
        match Self::mount(home, dirs, &stable) {
            Ok(()) => StablePaths::Shown(stable),
            Err(e) => {
                Self::unmount(&stable);
                StablePaths::PerRun(e)
            }
        }
    }

    fn mount(home: &Home, dirs: &RunDirs, stable: &RunDirs) -> Result<(), String> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let ci = home.dir().join("ci");
        let made = |e: io::Error| format!("cannot make {}: {e}", ci.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&ci)
            .map_err(made)?;
        // Passable by a `run_as` user, not listable; what is mounted on
        // each point has its own owner and mode.
        std::fs::set_permissions(&ci, std::fs::Permissions::from_mode(0o711)).map_err(made)?;
        for (from, to) in dirs.all().into_iter().zip(stable.all()) {
            if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(to)
                && e.kind() != io::ErrorKind::AlreadyExists
            {
                return Err(format!("cannot make {}: {e}", to.display()));
            }
            pidns::bind(from, to)
                .map_err(|e| format!("cannot mount {} at {}: {e}", from.display(), to.display()))?;
        }
        Ok(())
    }

    fn unmount(stable: &RunDirs) {
        for dir in stable.all() {
            let _ = pidns::unbind(dir);
        }
    }

    /// The run's directories as its steps see them, when at stable paths.
    fn shown(&self) -> Option<&RunDirs> {
        match self {
            StablePaths::Shown(dirs) => Some(dirs),
            StablePaths::PerRun(_) => None,
        }
    }

    /// For the run's `sandbox` line.
    fn describe(&self) -> String {
        match self {
            StablePaths::Shown(dirs) => format!(
                "steps see the workspace at {} every run, HOME and TMPDIR beside it",
                dirs.workspace.display()
            ),
            StablePaths::PerRun(why) => {
                format!("steps see each run's workspace at a path of its own ({why})")
            }
        }
    }
}

impl Drop for StablePaths {
    fn drop(&mut self) {
        if let StablePaths::Shown(dirs) = self {
            Self::unmount(dirs);
        }
    }
}

/// What each job may use, as `show` says it: the limits its cgroup got.
fn limits_line(limits: contain::JobLimits) -> String {
    let each: Vec<String> = [
        limits.pids_max.map(|n| format!("{n} processes")),
        limits.memory_mb.map(|mb| format!("{mb} MiB of memory")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if each.is_empty() {
        "no limit on each job's processes or memory (no cgroup with the pids and memory controllers)"
            .to_string()
    } else {
        format!("each job at most {} (its cgroup)", each.join(" and "))
    }
}

/// Ingests events into the store as they happen, so `quire-runs show` of
/// an active run shows live progress. Job and run events go in at once;
/// step events are batched into one transaction per `BATCH_WINDOW` (the
/// executor flushes on every quiet tick too), which keeps a run of many
/// short steps from paying a transaction per event.
struct LiveIngest<'s> {
    store: &'s mut Store,
    run: &'s str,
    pending: Vec<Event>,
    oldest: Option<Instant>,
}

const BATCH_WINDOW: Duration = Duration::from_millis(50);

impl<'s> LiveIngest<'s> {
    fn new(store: &'s mut Store, run: &'s str) -> LiveIngest<'s> {
        LiveIngest {
            store,
            run,
            pending: Vec::new(),
            oldest: None,
        }
    }
}

impl EventSink for LiveIngest<'_> {
    fn emit(&mut self, event: &Event) -> io::Result<()> {
        self.pending.push(event.clone());
        let oldest = *self.oldest.get_or_insert_with(Instant::now);
        let step_event = matches!(
            event,
            Event::StepStarted { .. } | Event::StepFinished { .. }
        );
        if !step_event || oldest.elapsed() >= BATCH_WINDOW {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.store
                .ingest(self.run, &self.pending)
                .map_err(io::Error::other)?;
            self.pending.clear();
        }
        self.oldest = None;
        Ok(())
    }
}

/// Renews the worker's lease on its own connection; when the run is no
/// longer ours (superseded, cancelled, orphaned) it cancels the executor.
struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<Store>>,
}

impl Heartbeat {
    fn start(mut store: Store, run: &str, worker: &Worker, cancel: &Cancel) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let (run, worker, cancel, flag) = (
            run.to_string(),
            worker.clone(),
            cancel.clone(),
            stop.clone(),
        );
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                if crate::interrupt::requested() {
                    cancel.cancel();
                }
                match store.renew_lease(&run, &worker) {
                    Ok(false) => {
                        cancel.cancel();
                        return store;
                    }
                    Ok(true) => {}
                    // A busy store is retried on the next beat; the lease
                    // is long enough to survive a few.
                    Err(e) => eprintln!("quire-run work: cannot renew the lease of run {run}: {e}"),
                }
                thread::park_timeout(HEARTBEAT);
            }
            store
        });
        Heartbeat {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop beating; the store it beat with, for the next run.
    fn stop(mut self) -> Option<Store> {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take()?;
        thread.thread().unpark();
        thread.join().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the networks `kept` ended are all gone (killed, exited,
    /// reaped) within 10 s.
    fn all_gone(kept: &Kept) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if kept.ending.borrow_mut().iter_mut().all(|e| e.reaped()) {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_one_shot_gives_its_started_network_to_its_run_and_keeps_none() {
        let config = Config {
            step_network: netns::StepNetwork::None,
            ..Config::default()
        };
        let kept = Kept::one_shot(&config);
        let Ok(Decided::Namespace(network)) = kept.take_for(7).unwrap().ready() else {
            panic!("no namespace");
        };
        assert!(kept.take_for(7).is_none(), "given once");
        kept.keep(7, network);
        assert!(kept.network.borrow().is_none(), "nothing is kept");
        assert!(kept.take_for(7).is_none());
        assert_eq!(kept.ending.borrow().len(), 1);
        assert!(all_gone(&kept), "ended");
    }

    #[test]
    fn a_workers_kept_network_serves_its_own_repository_only() {
        let kept = Kept::default();
        let start = || match netns::start(netns::StepNetwork::None, false).ready() {
            Ok(Decided::Namespace(network)) => network,
            _ => panic!("no namespace"),
        };
        kept.keep(7, start());
        assert!(kept.take_for(7).is_some(), "its own repository's");
        kept.keep(7, start());
        assert!(kept.take_for(8).is_none(), "not another's");
        assert!(kept.network.borrow().is_none());
        assert_eq!(kept.ending.borrow().len(), 1);
        assert!(all_gone(&kept), "ended");
    }
}
