//! What a run's steps left running, wherever it went, found two ways.
//!
//! By environment: every step carries `QUIRE_RUN_ID=<run>` and
//! `QUIRE_JOB=<job>`, and so does everything it starts unless it clears
//! its environment (`env -i`), so `/proc/<pid>/environ` finds them, also
//! after their worker died; nothing else carries a run's id, so a recycled
//! pid is never hit.
//!
//! By ancestry: a worker is the child subreaper of everything its steps
//! start ([`become_subreaper`]), so a daemon that leaves its parent
//! (`setsid`, a double fork) is re-parented to the worker instead of pid 1
//! and stays its descendant, whatever its environment; [`kill_descendants`]
//! ends them all, and [`reap_orphans`] reaps those the worker inherited.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{
    Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, kill_process, pidfd_open, pidfd_send_signal,
    waitid,
};

/// Live (not zombie) processes carrying `run_id`; never this process.
pub fn of_run(run_id: &str) -> Vec<u32> {
    Mark::run(run_id).find()
}

/// SIGKILL what is left of the run, now.
pub fn kill(run_id: &str) {
    let mark = Mark::run(run_id);
    mark.signal(&mark.find(), Signal::KILL);
}

/// SIGKILL what is left of one job of the run, now: processes carrying the
/// run's id and the job's `QUIRE_JOB`, or no `QUIRE_JOB` at all (which job
/// of the run they came from cannot be told); never another job's, which
/// may still be running beside it.
pub fn kill_job(run_id: &str, job: &str) {
    let mark = Mark::job(run_id, job);
    mark.signal(&mark.find(), Signal::KILL);
}

/// End what is left of the run: SIGTERM, then SIGKILL for whatever is still
/// there after `grace`. Returns the pids that were asked to stop.
pub fn end(run_id: &str, grace: Duration) -> Vec<u32> {
    let mark = Mark::run(run_id);
    let found = mark.find();
    if found.is_empty() {
        return found;
    }
    mark.signal(&found, Signal::TERM);
    let deadline = Instant::now() + grace;
    for &pid in &found {
        exited_within(pid, deadline.saturating_duration_since(Instant::now()));
    }
    mark.signal(&mark.find(), Signal::KILL);
    found
}

/// Wait up to `timeout` for process `pid` to exit (a zombie has exited);
/// true once it has, or if there is no such process. Waits on a pidfd,
/// which becomes readable when the process exits: no polling.
pub fn exited_within(pid: u32, timeout: Duration) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    let Ok(pidfd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return true;
    };
    wait_readable(&pidfd, timeout)
}

/// What a run's processes (or one job's) carry in their environment.
struct Mark {
    /// `QUIRE_RUN_ID=<run>`.
    run: Vec<u8>,
    /// The job's id, when only that job's processes are wanted.
    job: Option<Vec<u8>>,
}

impl Mark {
    fn run(run_id: &str) -> Mark {
        Mark {
            run: format!("QUIRE_RUN_ID={run_id}").into_bytes(),
            job: None,
        }
    }

    fn job(run_id: &str, job: &str) -> Mark {
        Mark {
            job: Some(job.as_bytes().to_vec()),
            ..Mark::run(run_id)
        }
    }

    /// Live (not zombie) processes bearing the mark; never this process.
    fn find(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let me = std::process::id();
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            // A zombie's environment reads empty, so it bears no mark:
            // whether it is one is asked only of the few that do.
            .filter(|&pid| pid != me && self.on(pid) && !is_zombie(pid))
            .collect()
    }

    fn on(&self, pid: u32) -> bool {
        let mut environ = Vec::new();
        if read_proc(pid, "environ", &mut environ).is_err() {
            return false;
        }
        let mut run = false;
        let mut job = None;
        for var in environ.split(|&b| b == 0) {
            if var == self.run.as_slice() {
                run = true;
            } else if let Some(value) = var.strip_prefix(b"QUIRE_JOB=") {
                job = Some(value);
            }
        }
        run && match (&self.job, job) {
            (Some(wanted), Some(job)) => wanted.as_slice() == job,
            _ => true,
        }
    }

    /// Signal each pid that (still) bears the mark.
    fn signal(&self, pids: &[u32], signal: Signal) {
        for &pid in pids {
            if self.on(pid)
                && let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw)
            {
                let _ = kill_process(pid, signal);
            }
        }
    }
}

/// Make this process the child subreaper of its descendants: an orphan
/// below it is re-parented to it rather than to pid 1, so nothing a step
/// starts leaves the worker's tree while the worker lives.
pub fn become_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    Ok(())
}

/// Mark every open descriptor above stderr close-on-exec, so none that this
/// process inherited from whoever started it (quire's own are all opened
/// close-on-exec) reaches a step. Returns those that were not.
pub fn close_inherited_on_exec() -> Vec<i32> {
    let mut fixed = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return fixed;
    };
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: only used for the two fcntl calls below; a descriptor
        // that was the directory listing's own is closed by now, and the
        // calls then fail with EBADF, which is ignored.
        let fd_ref = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if let Ok(flags) = rustix::io::fcntl_getfd(fd_ref)
            && !flags.contains(rustix::io::FdFlags::CLOEXEC)
            && rustix::io::fcntl_setfd(fd_ref, flags | rustix::io::FdFlags::CLOEXEC).is_ok()
        {
            fixed.push(fd);
        }
    }
    fixed
}

/// The steps this process started and has not reaped yet: the children
/// [`reap_orphans`] must leave to their `Child::wait`.
static STEPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn steps() -> MutexGuard<'static, BTreeSet<u32>> {
    STEPS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spawn a step's process and note it as one, in one go: a reaper never
/// sees it unnoted, even if it exits at once.
pub(crate) fn spawn_step(command: &mut Command) -> io::Result<Child> {
    note_step(|| command.spawn(), Child::id)
}

/// [`spawn_step`] for a step started by other means than a `Command`:
/// `spawn` returns its pid, noted before a reaper can see it.
pub(crate) fn note_step<T>(
    spawn: impl FnOnce() -> io::Result<T>,
    pid: impl Fn(&T) -> u32,
) -> io::Result<T> {
    let mut steps = steps();
    let child = spawn()?;
    steps.insert(pid(&child));
    Ok(child)
}

/// The step `pid` was reaped by its `Child::wait`.
pub(crate) fn step_reaped(pid: u32) {
    steps().remove(&pid);
}

/// Reap every exited child of this process that is not a step: orphans a
/// subreaper inherited. Only for a process whose other children wait for
/// themselves elsewhere (a worker, while it executes a run: its only
/// children are steps and what it inherited from them).
pub fn reap_orphans() {
    let steps = steps();
    let spared = spared().lock().unwrap_or_else(|e| e.into_inner()).clone();
    for pid in children() {
        if !steps.contains(&pid)
            && !spared.contains(&pid)
            && let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw)
        {
            let _ = waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            );
        }
    }
}

/// This process's children, from each of its threads' `children` list;
/// None when that cannot be told for sure: a list that cannot be read (a
/// kernel without `CONFIG_PROC_CHILDREN`) or does not fit one read (the
/// kernel builds a list anew for each read, and one of its entries reaped
/// between two reads can hide the next), or a thread that started or ended
/// while they were read (its children may have moved to a thread already
/// read).
fn listed_children() -> Option<BTreeSet<u32>> {
    use std::io::Read;
    let tasks = || -> Option<BTreeSet<std::ffi::OsString>> {
        std::fs::read_dir("/proc/self/task")
            .ok()?
            .map(|task| task.ok().map(|t| t.file_name()))
            .collect()
    };
    let before = tasks()?;
    let mut children = BTreeSet::new();
    let mut list = vec![0u8; 16 * 1024];
    for task in &before {
        let path = Path::new("/proc/self/task").join(task).join("children");
        let n = std::fs::File::open(path).ok()?.read(&mut list).ok()?;
        if n == list.len() {
            return None;
        }
        let text = std::str::from_utf8(&list[..n]).ok()?;
        children.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    (tasks()? == before).then_some(children)
}

/// This process's children, from each of its threads' `children` list (an
/// orphan is re-parented to one of the subreaper's threads).
fn children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut children = BTreeSet::new();
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    children.into_iter().collect()
}

/// A process's parent and whether it is a zombie, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<(u32, bool)> {
    let stat = proc_stat(pid)?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state == "Z"))
}

/// Processes this one started for itself (an announcer: its notifiers must
/// outlive the run that ended), spared with their descendants by
/// [`descendants_of`] and so by every sweep of the descendants.
fn spared() -> &'static std::sync::Mutex<BTreeSet<u32>> {
    static SPARED: std::sync::OnceLock<std::sync::Mutex<BTreeSet<u32>>> =
        std::sync::OnceLock::new();
    SPARED.get_or_init(Default::default)
}

/// Spare `pid`, a child of this process, and its descendants from the
/// sweeps of this process's descendants, until [`unspare`].
pub fn spare(pid: u32) {
    spared()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid);
}

/// `pid` was reaped: its number may be reused.
pub fn unspare(pid: u32) {
    spared()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pid);
}

/// The live (not zombie) descendants of process `root`, by one walk of the
/// process table: every process whose chain of parents reaches `root`,
/// except those [`spare`]d and theirs.
pub fn descendants_of(root: u32) -> Vec<u32> {
    let spared = spared().lock().unwrap_or_else(|e| e.into_inner()).clone();
    // This process with no child but those spared has no descendant to
    // find: each one's chain of parents runs through a child of this
    // process (an orphan is re-parented to it, the subreaper, and one
    // that exits stays its child, a zombie, until reaped here). Its own
    // threads' lists say so without reading every process's `stat`. (A
    // child reaped by another thread during the one read of its list
    // could still hide the entry after it; the sweeps that ask run while
    // no other thread of this process reaps.)
    if root == std::process::id()
        && listed_children().is_some_and(|children| children.is_subset(&spared))
    {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut zombies = BTreeSet::new();
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        if let Some((ppid, zombie)) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
            if zombie {
                zombies.insert(pid);
            }
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if spared.contains(&child) {
                continue;
            }
            if !zombies.contains(&child) {
                found.push(child);
            }
            queue.push(child);
        }
    }
    found
}

/// Whether `pid`'s chain of parents reaches `root` (now).
fn descends_from(pid: u32, root: u32) -> bool {
    let mut at = pid;
    for _ in 0..4096 {
        match parent_of(at) {
            Some((ppid, _)) if ppid == root => return true,
            Some((ppid, _)) if ppid > 1 => at = ppid,
            _ => return false,
        }
    }
    false
}

/// SIGKILL `pid` if it is (still) a descendant of `root`: the process is
/// pinned by a pidfd before it is checked, so a recycled pid is never hit.
/// The pidfd, to wait on.
fn kill_descendant(pid: u32, root: u32) -> Option<OwnedFd> {
    let pidfd = pidfd_open(
        Pid::from_raw(i32::try_from(pid).ok()?)?,
        PidfdFlags::empty(),
    )
    .ok()?;
    if !descends_from(pid, root) {
        return None;
    }
    pidfd_send_signal(&pidfd, Signal::KILL).ok()?;
    Some(pidfd)
}

/// SIGKILL every descendant of this process, round after round until none
/// is left (a process killed while it forks leaves a child, which is
/// re-parented to this subreaper and found in the next round), reaping
/// those it inherited; at most `limit` in all. The pids killed.
pub fn kill_descendants(limit: Duration) -> Vec<u32> {
    let me = std::process::id();
    let deadline = Instant::now() + limit;
    let mut killed = Vec::new();
    loop {
        let found = descendants_of(me);
        if found.is_empty() || Instant::now() >= deadline {
            break;
        }
        let pidfds: Vec<OwnedFd> = found
            .iter()
            .filter_map(|&pid| {
                let pidfd = kill_descendant(pid, me)?;
                if !killed.contains(&pid) {
                    killed.push(pid);
                }
                Some(pidfd)
            })
            .collect();
        for pidfd in &pidfds {
            wait_readable(pidfd, deadline.saturating_duration_since(Instant::now()));
        }
        reap_orphans();
    }
    reap_orphans();
    killed
}

/// SIGKILL the descendants of this process that hold any of `pipes` (by
/// inode) open: whatever still holds a step's output after it exited is
/// the step's, whatever its environment. The pids killed.
pub fn kill_descendants_holding(pipes: &[u64]) -> Vec<u32> {
    let me = std::process::id();
    let wanted: Vec<String> = pipes.iter().map(|ino| format!("pipe:[{ino}]")).collect();
    let holds = |pid: u32| {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        })
    };
    descendants_of(me)
        .into_iter()
        .filter(|&pid| holds(pid) && kill_descendant(pid, me).is_some())
        .collect()
}

/// Wait up to `timeout` for a pidfd to become readable (its process exited).
fn wait_readable(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&wait)) {
            Ok(n) if n > 0 => return true,
            Err(rustix::io::Errno::INTR) => continue,
            _ => return false,
        }
    }
}

/// An exited process not yet reaped by its parent.
pub fn is_zombie(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// `/proc/PID/FILE` whole: opened, read, closed, and no more (`fs::read`
/// also asks the file's size, which procfs does not know). The sweeps read
/// one or two of these for every process of the machine, every run.
fn read_proc(pid: u32, file: &str, into: &mut Vec<u8>) -> io::Result<()> {
    use std::io::Read;
    into.clear();
    let mut proc_file = std::fs::File::open(format!("/proc/{pid}/{file}"))?;
    let mut chunk = [0u8; 4096];
    loop {
        match proc_file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => into.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `/proc/PID/stat`, if the process is there.
fn proc_stat(pid: u32) -> Option<String> {
    let mut stat = Vec::with_capacity(512);
    read_proc(pid, "stat", &mut stat).ok()?;
    String::from_utf8(stat).ok()
}

/// The real process table: `kill(pid, 0)`, and a zombie (exited, not yet
/// reaped by its parent) counts as gone.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessTable;

impl ProcessTable {
    pub fn is_alive(&self, pid: u32) -> bool {
        let Ok(raw) = i32::try_from(pid) else {
            return false;
        };
        let Some(target) = rustix::process::Pid::from_raw(raw) else {
            return false;
        };
        let exists = match rustix::process::test_kill_process(target) {
            Ok(()) => true,
            // It exists but belongs to someone else.
            Err(e) => e == rustix::io::Errno::PERM,
        };
        exists && !is_zombie(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `of_run(run_id)` once it finds `n` processes, within 10 s: a process
    /// just spawned may still be inside execve, where its environ reads
    /// empty for a moment.
    fn once_found(run_id: &str, n: usize) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = of_run(run_id);
            if found.len() >= n || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_job_sweep_spares_the_jobs_running_beside_it() {
        let run = format!("test-job-run-{}", std::process::id());
        let spawn = |job: Option<&str>| {
            let mut command = std::process::Command::new("sleep");
            command.arg("30").env("QUIRE_RUN_ID", &run);
            if let Some(job) = job {
                command.env("QUIRE_JOB", job);
            }
            command.spawn().unwrap()
        };
        let (mut mine, mut unmarked, mut beside) =
            (spawn(Some("build")), spawn(None), spawn(Some("lint")));
        assert_eq!(once_found(&run, 3).len(), 3);
        kill_job(&run, "build");
        mine.wait().unwrap();
        unmarked.wait().unwrap();
        assert_eq!(of_run(&run), [beside.id()], "lint's process is untouched");
        kill(&run);
        beside.wait().unwrap();
    }

    #[test]
    fn descendants_are_found_through_a_child_and_not_through_a_spared_one() {
        use std::io::BufRead;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        let me = std::process::id();
        assert!(
            listed_children().is_some_and(|c| c.contains(&child.id())),
            "this kernel lists a process's children"
        );
        let found = descendants_of(me);
        assert!(found.contains(&child.id()), "{found:?}");
        assert!(found.contains(&grandchild), "below it: {found:?}");
        spare(child.id());
        let found = descendants_of(me);
        assert!(!found.contains(&child.id()), "spared: {found:?}");
        assert!(!found.contains(&grandchild), "below the spared: {found:?}");
        unspare(child.id());
        let _ = kill_process(Pid::from_raw(grandchild as i32).unwrap(), Signal::KILL);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn finds_and_ends_only_the_processes_carrying_the_run() {
        let spawn = |id: &str| {
            std::process::Command::new("sleep")
                .arg("30")
                .env("QUIRE_RUN_ID", id)
                .spawn()
                .unwrap()
        };
        let run = format!("test-run-{}", std::process::id());
        let mut mine = spawn(&run);
        let mut other = spawn(&format!("{run}-other"));
        assert_eq!(once_found(&run, 1), [mine.id()]);
        assert_eq!(end(&run, Duration::from_secs(2)), [mine.id()]);
        mine.wait().unwrap();
        assert!(of_run(&run).is_empty());
        assert_eq!(
            once_found(&format!("{run}-other"), 1),
            [other.id()],
            "the other run is untouched"
        );
        kill(&format!("{run}-other"));
        other.wait().unwrap();
    }
}
