//! What a run's steps left running, wherever it went. Every step carries
//! `QUIRE_RUN_ID=<run>` and `QUIRE_JOB=<job>` in its environment, and so
//! does everything it starts, in its process group or out of it (a daemon
//! that called setsid), so `/proc/<pid>/environ` finds them all; nothing
//! else carries a run's id, so a recycled pid is never hit.

use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, Signal, kill_process, pidfd_open};

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
    let deadline = Instant::now() + timeout;
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
            .filter(|&pid| pid != me && !is_zombie(pid) && self.on(pid))
            .collect()
    }

    fn on(&self, pid: u32) -> bool {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
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

/// An exited process not yet reaped by its parent.
pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
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
