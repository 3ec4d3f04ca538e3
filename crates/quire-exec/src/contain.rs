//! Containment: every process a run's steps start is tracked by the kernel,
//! whatever it does to its environment, its session or its parent.
//!
//! A process that executes runs (a worker, `trigger --wait`, `exec`) sets
//! containment up once ([`Setup::new`]): it becomes the child subreaper of
//! its descendants, and, where it can make cgroups (cgroup v2 mounted, its
//! own cgroup writable, `cgroup.kill` in the kernel), each run gets a cgroup
//! `quire-<run id>` beside it, and each job a cgroup below that, which every
//! step of the job is put into before it execs (`exec::contain`). Ending a
//! job kills its cgroup; ending the run kills the run's. Without cgroups
//! the worker kills by ancestry instead: everything below it, once no job
//! of the run is running (`processes::kill_descendants`).

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::cgroup::Cgroup;
use crate::processes;

pub use quire_model::Containment;

/// How long ending a cgroup waits for its processes to be gone, and how
/// long the ancestry sweep keeps killing.
const END_WITHIN: Duration = Duration::from_secs(5);
/// How long freezing a run's processes may take before the worker goes on
/// (they finish the system call they are in, then stop).
const FREEZE_WITHIN: Duration = Duration::from_secs(1);

/// What containment a process asks for: `QUIRE_CONTAINMENT` (docs/
/// OPERATIONS.md, "Environment"), for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A cgroup per job where quire can make one, else the subreaper.
    Auto,
    /// The subreaper, never a cgroup.
    Subreaper,
    /// Neither: only the environment sweep (quire before containment; for
    /// measuring what containment costs).
    Off,
}

impl Want {
    pub const VAR: &'static str = "QUIRE_CONTAINMENT";

    /// `QUIRE_CONTAINMENT`: unset, `auto` or `cgroup`; `subreaper`; `off`.
    /// Anything else is `Auto`, with a warning to print.
    pub fn from_env() -> (Want, Option<String>) {
        Want::parse(std::env::var_os(Want::VAR).as_deref())
    }

    fn parse(value: Option<&std::ffi::OsStr>) -> (Want, Option<String>) {
        let Some(value) = value else {
            return (Want::Auto, None);
        };
        match value.to_str() {
            Some("" | "auto" | "cgroup") => (Want::Auto, None),
            Some("subreaper") => (Want::Subreaper, None),
            Some("off") => (Want::Off, None),
            _ => (
                Want::Auto,
                Some(format!(
                    "{}={value:?} is not auto, cgroup, subreaper or off; using auto",
                    Want::VAR
                )),
            ),
        }
    }
}

/// What each job may use, from config.toml (`job_memory_mb`,
/// `job_pids_max`); enforced only with cgroups that have the controllers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobLimits {
    pub memory_mb: Option<u64>,
    pub pids_max: Option<u64>,
}

/// The machine's memory in MiB (`MemTotal` of /proc/meminfo), for the
/// default `job_memory_mb`; none when it cannot be read.
pub fn machine_memory_mb() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// How this process contains the runs it executes: decided once, when it
/// starts.
#[derive(Debug)]
pub struct Setup {
    containment: Option<Containment>,
    /// This process's own cgroup, in which runs' cgroups are made.
    parent: Option<Cgroup>,
    /// The limits that are enforced (the controller is there for them).
    limits: JobLimits,
    /// Why there is no cgroup, or a limit is not enforced: for worker.log.
    notes: Vec<String>,
    /// A run is contained now: this process contains one at a time.
    busy: Arc<AtomicBool>,
}

impl Setup {
    /// Contain the runs this process executes as `want` says, with
    /// `limits` for each job where they can be enforced. Also marks every
    /// descriptor this process inherited close-on-exec, so none reaches a
    /// step.
    pub fn new(want: Want, limits: JobLimits) -> Setup {
        let mut setup = Setup {
            containment: None,
            parent: None,
            limits: JobLimits::default(),
            notes: Vec::new(),
            busy: Arc::new(AtomicBool::new(false)),
        };
        let leaked = processes::close_inherited_on_exec();
        if !leaked.is_empty() {
            setup.notes.push(format!(
                "descriptors {leaked:?} were inherited without close-on-exec; now marked, no step gets them"
            ));
        }
        if want == Want::Off {
            setup.notes.push(format!(
                "{}=off: leftovers are found only by their QUIRE_RUN_ID",
                Want::VAR
            ));
            setup.unenforced(limits, "containment is off");
            return setup;
        }
        if let Err(e) = processes::become_subreaper() {
            setup.notes.push(format!(
                "cannot become the child subreaper ({e}): leftovers are found only by their QUIRE_RUN_ID"
            ));
            setup.unenforced(limits, "there is no containment");
            return setup;
        }
        setup.containment = Some(Containment::Subreaper);
        let dir = match want {
            Want::Subreaper => Err(format!("{}=subreaper", Want::VAR)),
            _ => crate::cgroup::usable_own_dir(),
        };
        match dir {
            Ok(dir) => {
                setup.containment = Some(Containment::Cgroup);
                setup.enable_limits(Cgroup::at(dir), limits);
            }
            Err(why) => {
                setup.notes.push(format!("no cgroup: {why}"));
                setup.unenforced(limits, "there is no cgroup");
            }
        }
        setup
    }

    /// Hand the controllers `limits` need to the runs' cgroups, where
    /// `parent` has them.
    fn enable_limits(&mut self, parent: Cgroup, limits: JobLimits) {
        let wanted = [
            ("memory", "job_memory_mb", limits.memory_mb),
            ("pids", "job_pids_max", limits.pids_max),
        ];
        for (controller, key, value) in wanted {
            let Some(value) = value else { continue };
            let outcome = if !parent.controllers().iter().any(|c| c == controller) {
                Err(format!(
                    "the {controller} controller is not available in {} (cgroup.controllers: {:?})",
                    parent.dir().display(),
                    parent.controllers().join(" ")
                ))
            } else {
                parent.enable(controller).map_err(|e| {
                    format!(
                        "cannot enable the {controller} controller in {}: {e}",
                        parent.dir().join("cgroup.subtree_control").display()
                    )
                })
            };
            match (outcome, controller) {
                (Ok(()), "memory") => self.limits.memory_mb = Some(value),
                (Ok(()), _) => self.limits.pids_max = Some(value),
                (Err(why), _) => self
                    .notes
                    .push(format!("{key} = {value} is not enforced: {why}")),
            }
        }
        self.parent = Some(parent);
    }

    fn unenforced(&mut self, limits: JobLimits, why: &str) {
        if let Some(mb) = limits.memory_mb {
            self.notes
                .push(format!("job_memory_mb = {mb} is not enforced: {why}"));
        }
        if let Some(n) = limits.pids_max {
            self.notes
                .push(format!("job_pids_max = {n} is not enforced: {why}"));
        }
    }

    /// The mechanism in force; none when containment is off.
    pub fn containment(&self) -> Option<Containment> {
        self.containment
    }

    /// One line for worker.log: the mechanism in force, and why not more.
    pub fn describe(&self) -> String {
        let mut line = match (self.containment, &self.parent) {
            (Some(Containment::Cgroup), Some(parent)) => format!(
                "containment: cgroup: each job's processes in a cgroup of their own under {}/quire-<run>, ended with cgroup.kill; the worker is also their subreaper",
                parent.dir().display()
            ),
            (Some(_), _) => "containment: subreaper: the worker is the child subreaper of every process its steps start and ends them by ancestry".to_string(),
            (None, _) => "containment: none".to_string(),
        };
        let limits: Vec<String> = [
            self.limits
                .memory_mb
                .map(|mb| format!("memory.max {mb} MiB")),
            self.limits.pids_max.map(|n| format!("pids.max {n}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !limits.is_empty() {
            let _ = write!(line, "; each job: {}", limits.join(", "));
        }
        for note in &self.notes {
            let _ = write!(line, "; {note}");
        }
        line
    }

    /// Contain run `run_id`: with cgroups, make its cgroup. One that cannot
    /// be made leaves the run to the subreaper ([`RunContainment::note`]
    /// says why). None when containment is off. One run at a time: the
    /// ancestry sweep kills everything below this process.
    pub fn enter_run(&self, run_id: &str) -> io::Result<Option<Arc<RunContainment>>> {
        let Some(containment) = self.containment else {
            return Ok(None);
        };
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(io::Error::other(
                "this process already contains a run; it executes one at a time",
            ));
        }
        let mut run = RunContainment {
            containment: Containment::Subreaper,
            cgroup: None,
            limits: JobLimits::default(),
            note: None,
            ended: AtomicBool::new(false),
            busy: Arc::clone(&self.busy),
            holds: Mutex::new(0),
        };
        if let (Containment::Cgroup, Some(parent)) = (containment, &self.parent) {
            match self.run_cgroup(parent, run_id) {
                Ok(cgroup) => {
                    run.containment = Containment::Cgroup;
                    run.cgroup = Some(cgroup);
                    run.limits = self.limits;
                }
                Err(e) => {
                    run.note = Some(format!(
                        "run {run_id}: cannot make its cgroup in {} ({e}); the subreaper contains it",
                        parent.dir().display()
                    ));
                }
            }
        }
        Ok(Some(Arc::new(run)))
    }

    fn run_cgroup(&self, parent: &Cgroup, run_id: &str) -> io::Result<Cgroup> {
        let cgroup = Cgroup::create(run_cgroup_dir(parent.dir(), run_id))?;
        // A left-over cgroup of the same name (a crashed probe) is emptied.
        cgroup.kill()?;
        let controllers = [
            ("memory", self.limits.memory_mb.is_some()),
            ("pids", self.limits.pids_max.is_some()),
        ];
        for (controller, _) in controllers.iter().filter(|(_, wanted)| *wanted) {
            if let Err(e) = cgroup.enable(controller) {
                let _ = cgroup.remove();
                return Err(e);
            }
        }
        Ok(cgroup)
    }
}

/// Where run `run_id`'s cgroup is made in `parent`.
pub fn run_cgroup_dir(parent: &Path, run_id: &str) -> PathBuf {
    parent.join(format!("quire-{run_id}"))
}

/// One run's containment, from [`Setup::enter_run`] until [`Self::end`]
/// (or its drop).
#[derive(Debug)]
pub struct RunContainment {
    containment: Containment,
    /// The run's cgroup, with `Containment::Cgroup`; each job's is a child.
    cgroup: Option<Cgroup>,
    /// What each job's cgroup is limited to.
    limits: JobLimits,
    /// Why a run that should have had a cgroup has none.
    note: Option<String>,
    ended: AtomicBool,
    busy: Arc<AtomicBool>,
    /// How many of the run's job threads hold the run frozen
    /// ([`RunContainment::hold`]).
    holds: Mutex<usize>,
}

/// The run's cgroup frozen while the worker works in its workspace; thawed
/// when the last hold is dropped.
#[derive(Debug)]
pub(crate) struct Hold<'a> {
    run: &'a RunContainment,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut holds = self
            .run
            .holds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *holds -= 1;
        if *holds == 0
            && let Some(cgroup) = &self.run.cgroup
            && let Err(e) = cgroup.thaw()
        {
            eprintln!("quire: cannot thaw the run's cgroup: {e}");
        }
    }
}

impl RunContainment {
    /// Freeze every process of the run (its cgroup, every job's below
    /// it) until the hold is dropped, so no step runs while the worker
    /// saves or restores a job's caches or keeps its artifacts
    /// (docs/SECURITY.md, "The worker's own hands"). None without
    /// cgroups, or when the kernel has no freezer: the worker's
    /// descriptors alone then keep it in the workspace.
    pub(crate) fn hold(&self) -> Option<Hold<'_>> {
        let cgroup = self.cgroup.as_ref()?;
        let mut holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        if *holds == 0 {
            match cgroup.freeze(FREEZE_WITHIN) {
                Ok(true) => {}
                // Still freezing (a process in the kernel): it is frozen
                // before it returns to anything of the pusher's.
                Ok(false) => {}
                Err(_) => return None,
            }
        }
        *holds += 1;
        Some(Hold { run: self })
    }

    /// The mechanism that contains this run.
    pub fn containment(&self) -> Containment {
        self.containment
    }

    /// The run's cgroup directory, with `Containment::Cgroup`.
    pub fn cgroup_dir(&self) -> Option<&Path> {
        self.cgroup.as_ref().map(Cgroup::dir)
    }

    /// What each job's cgroup is limited to (none without a cgroup, or
    /// where the controller is missing).
    pub fn limits(&self) -> JobLimits {
        self.limits
    }

    /// Why the run has no cgroup although this process contains runs with
    /// cgroups: for worker.log.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The `memory.max` of a job's cgroup, in MiB, for a job asking for
    /// `own` (its `resources.memory`): `job_memory_mb` caps it, and is what
    /// a job asking for none gets. None where the run's jobs get no cgroup
    /// with the memory controller.
    pub(crate) fn job_memory_mb(&self, own: Option<u64>) -> Option<u64> {
        let cap = self.limits.memory_mb?;
        Some(own.map_or(cap, |own| own.min(cap)))
    }

    /// Why a job's memory is not enforced: no cgroup, or one without the
    /// memory controller; none when it is ([`Self::job_memory_mb`]).
    pub(crate) fn memory_unenforced(&self) -> Option<&'static str> {
        match (&self.cgroup, self.limits.memory_mb) {
            (None, _) => Some("there is no cgroup"),
            (Some(_), None) => Some("the job's cgroup has no memory controller"),
            (Some(_), Some(_)) => None,
        }
    }

    /// Make job `job`'s cgroup, limited (its memory to
    /// [`Self::job_memory_mb`] of `memory_mb`, the job's own ask), and open
    /// its `cgroup.procs` for the job's steps to enter; none without
    /// cgroups.
    pub(crate) fn job(&self, job: &str, memory_mb: Option<u64>) -> io::Result<Option<JobCgroup>> {
        let Some(run) = &self.cgroup else {
            return Ok(None);
        };
        let cgroup = Cgroup::create(run.dir().join(job))?;
        let limited = (|| {
            if let Some(mb) = self.job_memory_mb(memory_mb) {
                cgroup.write("memory.max", &(mb.saturating_mul(1024 * 1024)).to_string())?;
                // No swapping past the limit, where swap is accounted.
                let _ = cgroup.write("memory.swap.max", "0");
            }
            if let Some(n) = self.limits.pids_max {
                cgroup.write("pids.max", &n.to_string())?;
            }
            cgroup.procs()
        })();
        // The directory itself, for clone3's CLONE_INTO_CGROUP: a step
        // started in the cgroup is never moved into it.
        let dir =
            limited.and_then(|procs| std::fs::File::open(cgroup.dir()).map(|dir| (procs, dir)));
        match dir {
            Ok((procs, dir)) => Ok(Some(JobCgroup { cgroup, procs, dir })),
            Err(e) => {
                let _ = cgroup.remove();
                Err(e)
            }
        }
    }

    /// Once no job of the run is running, nothing of the run may be left:
    /// with cgroups, the run's is killed (every job's below it); and
    /// everything below this process is killed by ancestry, which finds
    /// also what left a cgroup. The pids killed.
    pub(crate) fn sweep_idle(&self) -> Vec<u32> {
        let mut killed = Vec::new();
        if let Some(cgroup) = &self.cgroup {
            killed.extend(cgroup.pids());
            let _ = cgroup.kill();
            cgroup.wait_empty(END_WITHIN);
        }
        for pid in processes::kill_descendants(END_WITHIN) {
            if !killed.contains(&pid) {
                killed.push(pid);
            }
        }
        processes::reap_orphans();
        killed
    }

    /// End the run's containment: everything left is killed, and the run's
    /// cgroup removed; an error when something of it is still alive after.
    /// Idempotent; also done on drop.
    pub fn end(&self) -> io::Result<()> {
        if self.ended.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.sweep_idle();
        let result = match &self.cgroup {
            Some(cgroup) => cgroup.end(END_WITHIN).map(drop),
            None => Ok(()),
        };
        // The sweep gives up after END_WITHIN on a process that keeps
        // forking: say so rather than have the caller think nothing of the
        // run is left (a worker hands the run's network namespace on only
        // when nothing is).
        let left = processes::descendants_of(std::process::id());
        self.busy.store(false, Ordering::SeqCst);
        result.and_then(|()| match left.len() {
            0 => Ok(()),
            n => Err(io::Error::other(format!(
                "{n} of the run's processes outlived {}s of killing (pids {left:?})",
                END_WITHIN.as_secs()
            ))),
        })
    }
}

impl Drop for RunContainment {
    fn drop(&mut self) {
        if let Err(e) = self.end() {
            eprintln!("quire: {e}");
        }
    }
}

/// A job's cgroup while the job runs: its steps are put in it before they
/// exec. Dropped when the job ends, which kills and removes it.
#[derive(Debug)]
pub(crate) struct JobCgroup {
    cgroup: Cgroup,
    /// `cgroup.procs`, open for writing: a step writes `0` to it.
    procs: std::fs::File,
    /// The cgroup's directory, open: a step is started in it.
    dir: std::fs::File,
}

impl JobCgroup {
    pub(crate) fn procs(&self) -> &std::fs::File {
        &self.procs
    }

    pub(crate) fn dir(&self) -> &std::fs::File {
        &self.dir
    }

    /// Kill everything of the job now (a step's leftovers holding its
    /// output); its later steps still go into the cgroup.
    pub(crate) fn kill(&self) {
        let _ = self.cgroup.kill();
    }
}

impl Drop for JobCgroup {
    fn drop(&mut self) {
        let ended = self.cgroup.end(END_WITHIN);
        processes::reap_orphans();
        if let Err(e) = ended {
            eprintln!("quire: cannot end the job's cgroup: {e}");
        }
    }
}

/// What reconcile found of a dead worker's run (`end_orphaned`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Killed with its cgroup (`cgroup.kill`).
    pub by_cgroup: Vec<u32>,
    /// Killed because they carry the run's `QUIRE_RUN_ID`.
    pub by_environment: Vec<u32>,
    /// The run's cgroup could not be ended.
    pub error: Option<String>,
}

/// End what a run whose worker is gone left running: with its cgroup (as
/// recorded), `cgroup.kill` of it, which finds everything; and every
/// process still carrying its `QUIRE_RUN_ID` (SIGTERM, SIGKILL after
/// `grace`), which is all that can be found of a run without one: a
/// process that also shed its environment was re-parented to pid 1 when
/// its worker died, and nothing tells it apart any more.
pub fn end_orphaned(run_id: &str, cgroup: Option<&Path>, grace: Duration) -> Leftovers {
    let mut leftovers = Leftovers::default();
    match cgroup {
        // Only ever the run's own cgroup, whatever the record says.
        Some(dir) if dir.file_name() != run_cgroup_dir(Path::new(""), run_id).file_name() => {
            leftovers.error = Some(format!(
                "{} is not run {run_id}'s cgroup; left alone",
                dir.display()
            ));
        }
        Some(dir) => match Cgroup::at(dir).end(END_WITHIN) {
            Ok(pids) => leftovers.by_cgroup = pids,
            Err(e) => leftovers.error = Some(e.to_string()),
        },
        None => {}
    }
    leftovers.by_environment = processes::end(run_id, grace)
        .into_iter()
        .filter(|pid| !leftovers.by_cgroup.contains(pid))
        .collect();
    leftovers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn quire_containment_is_read_strictly() {
        let parse = |v: Option<&str>| Want::parse(v.map(OsStr::new));
        assert_eq!(parse(None), (Want::Auto, None));
        assert_eq!(parse(Some("cgroup")), (Want::Auto, None));
        assert_eq!(parse(Some("subreaper")), (Want::Subreaper, None));
        assert_eq!(parse(Some("off")), (Want::Off, None));
        let (want, warning) = parse(Some("none"));
        assert_eq!(want, Want::Auto);
        assert!(warning.unwrap().contains("\"none\" is not auto"));
    }

    /// What a job's cgroup is given, against a stand-in for the cgroup file
    /// system (a directory whose interface files are plain files): this
    /// machine's cgroup v2 has no memory or pids controller to try it on.
    #[test]
    fn a_jobs_cgroup_gets_the_limits_in_bytes_and_processes() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("build");
        std::fs::create_dir(&job).unwrap();
        for file in ["memory.max", "memory.swap.max", "pids.max", "cgroup.procs"] {
            std::fs::write(job.join(file), "").unwrap();
        }
        let run = |limits| RunContainment {
            containment: Containment::Cgroup,
            cgroup: Some(Cgroup::at(dir.path())),
            limits,
            note: None,
            // Ended already: dropping it touches nothing.
            ended: AtomicBool::new(true),
            busy: Arc::new(AtomicBool::new(true)),
            holds: Mutex::new(0),
        };
        let limited = run(JobLimits {
            memory_mb: Some(512),
            pids_max: Some(64),
        });
        let cgroup = limited.job("build", None).unwrap().unwrap();
        let read = |file: &str| std::fs::read_to_string(job.join(file)).unwrap();
        assert_eq!(read("memory.max"), "536870912");
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("pids.max"), "64");
        // Not a real cgroup: nothing to kill or remove.
        std::mem::forget(cgroup);
        // A job's own memory under job_memory_mb is its memory.max; over
        // it, job_memory_mb stands.
        std::mem::forget(limited.job("build", Some(100)).unwrap().unwrap());
        assert_eq!(read("memory.max"), "104857600");
        std::mem::forget(limited.job("build", Some(4096)).unwrap().unwrap());
        assert_eq!(read("memory.max"), "536870912");
        assert_eq!(limited.memory_unenforced(), None);
        // Without limits, nothing is written, whatever the job asks.
        let plain = run(JobLimits::default());
        std::fs::write(job.join("pids.max"), "max").unwrap();
        std::fs::write(job.join("memory.max"), "max").unwrap();
        std::mem::forget(plain.job("build", Some(100)).unwrap().unwrap());
        assert_eq!(read("pids.max"), "max");
        assert_eq!(read("memory.max"), "max");
        assert_eq!(plain.job_memory_mb(Some(100)), None);
        assert_eq!(
            plain.memory_unenforced(),
            Some("the job's cgroup has no memory controller")
        );
        // The subreaper's run: no cgroup to put a job's memory on.
        let subreaper = RunContainment {
            containment: Containment::Subreaper,
            cgroup: None,
            limits: JobLimits::default(),
            note: None,
            ended: AtomicBool::new(true),
            busy: Arc::new(AtomicBool::new(true)),
            holds: Mutex::new(0),
        };
        assert!(subreaper.job("build", Some(100)).unwrap().is_none());
        assert_eq!(subreaper.job_memory_mb(Some(100)), None);
        assert_eq!(subreaper.memory_unenforced(), Some("there is no cgroup"));
    }

    #[test]
    fn reconcile_ends_only_the_runs_own_cgroup_whatever_the_record_says() {
        let run = format!("test-orphan-{}", std::process::id());
        for recorded in ["/sys/fs/cgroup", "/sys/fs/cgroup/quire-another-run", "/"] {
            let found = end_orphaned(&run, Some(Path::new(recorded)), Duration::ZERO);
            assert_eq!(found.by_cgroup, Vec::<u32>::new());
            assert!(
                found.error.as_deref().unwrap().contains("is not run"),
                "{recorded}: {found:?}"
            );
        }
        // The run's own, gone already: nothing to do, and no error.
        let gone = run_cgroup_dir(Path::new("/nonexistent"), &run);
        assert_eq!(
            end_orphaned(&run, Some(&gone), Duration::ZERO),
            Leftovers::default()
        );
    }
}
