//! What a run's steps left running, wherever it went. Every step carries
//! `QUIRE_RUN_ID=<run>` in its environment, and so does everything it
//! starts, in its process group or out of it (a daemon that called setsid),
//! so `/proc/<pid>/environ` finds them all; nothing else carries a run's
//! id, so a recycled pid is never hit.

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// Live (not zombie) processes carrying `run_id`; never this process.
pub fn of_run(run_id: &str) -> Vec<u32> {
    let needle = needle(run_id);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && !is_zombie(pid) && carries(pid, &needle))
        .collect()
}

/// SIGKILL what is left of the run, now.
pub fn kill(run_id: &str) {
    signal(run_id, &of_run(run_id), Signal::KILL);
}

/// End what is left of the run: SIGTERM, then SIGKILL for whatever is still
/// there after `grace`. Returns the pids that were asked to stop.
pub fn end(run_id: &str, grace: Duration) -> Vec<u32> {
    let found = of_run(run_id);
    if found.is_empty() {
        return found;
    }
    signal(run_id, &found, Signal::TERM);
    let deadline = Instant::now() + grace;
    while !of_run(run_id).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(run_id, &of_run(run_id), Signal::KILL);
    found
}

/// An exited process not yet reaped by its parent.
pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

fn needle(run_id: &str) -> String {
    format!("QUIRE_RUN_ID={run_id}")
}

fn carries(pid: u32, needle: &str) -> bool {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    environ
        .split(|&b| b == 0)
        .any(|var| var == needle.as_bytes())
}

/// Signal each pid that (still) carries the run's id.
fn signal(run_id: &str, pids: &[u32], signal: Signal) {
    let needle = needle(run_id);
    for &pid in pids {
        if carries(pid, &needle)
            && let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw)
        {
            let _ = kill_process(pid, signal);
        }
    }
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

    /// `of_run(run_id)` once it finds something, within 10 s: a process
    /// just spawned may still be inside execve, where its environ reads
    /// empty for a moment.
    fn once_found(run_id: &str) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = of_run(run_id);
            if !found.is_empty() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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
        assert_eq!(once_found(&run), [mine.id()]);
        assert_eq!(end(&run, Duration::from_secs(2)), [mine.id()]);
        mine.wait().unwrap();
        assert!(of_run(&run).is_empty());
        assert_eq!(
            once_found(&format!("{run}-other")),
            [other.id()],
            "the other run is untouched"
        );
        kill(&format!("{run}-other"));
        other.wait().unwrap();
    }
}
