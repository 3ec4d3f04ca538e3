//! Processes as the tests see them: alive or gone, signalled, and a step's
//! pid from outside its pid namespace.

use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::env::Env;
use crate::wait::wait_until;

/// A pid that belonged to a process which has exited.
pub fn dead_pid() -> u32 {
    let mut child = Process::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Whether a process is running (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Wait up to `secs` for a process to be gone (a zombie has gone); true
/// once it has, or if there is no such process. Waits on a pidfd, which
/// becomes readable when the process exits.
pub fn gone_within(pid: u32, secs: u64) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    let Ok(pidfd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return true;
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&wait)) {
            Ok(n) if n > 0 => return true,
            Err(rustix::io::Errno::INTR) => continue,
            _ => return false,
        }
    }
}

/// Send `signal` to `pid`.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    rustix::process::kill_process(Pid::from_raw(pid as i32).unwrap(), signal).unwrap();
}

/// Shell for a step: record its pid in its run's TMPDIR, for [`step_pid`].
pub const RECORD_PID: &str = "echo $$ > \"$TMPDIR/sleep.pid\"";

/// Wait for the pid a step of `run` recorded with [`RECORD_PID`], as this
/// process sees it: a step of a worker in a pid namespace of its own
/// records its pid there.
pub fn step_pid(env: &Env, run: &str) -> u32 {
    let recorded = read_pid_file(&env.home().run_dir(run).unwrap().join("tmp/sleep.pid"));
    let worker = env
        .wait_for(run, "claimed", |r| r.worker.is_some())
        .worker
        .unwrap()
        .pid;
    outside_pid(worker, recorded)
}

/// The pids of a process, outermost namespace first (`NSpid` of
/// /proc/PID/status).
fn ns_pids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .map(|pids| {
            pids.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The pid here of the process that is `inside` in the pid namespace of
/// the worker whose stand-in is `stand_in` (docs/SECURITY.md,
/// "Processes"); `inside` itself when that worker has no namespace of its
/// own, a dead pid when no such process is left.
pub fn outside_pid(stand_in: u32, inside: u32) -> u32 {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let worker = all_pids()
        .into_iter()
        .find(|&pid| parent_of(pid) == Some(stand_in) && ns_pids(pid).last() == Some(&1));
    let Some(worker) = worker else {
        return inside;
    };
    let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let wanted = ns(worker);
    all_pids()
        .into_iter()
        .find(|&pid| ns(pid) == wanted && ns_pids(pid).last() == Some(&inside))
        .unwrap_or_else(dead_pid)
}

/// Wait for a file holding a pid, written by a step.
pub fn read_pid_file(path: &Path) -> u32 {
    let mut pid = None;
    wait_until(&format!("a pid in {}", path.display()), || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap()
}
