//! Ending what a step leaves running: its process group when it ends, then
//! whatever still holds its output after it exited (in its group, or
//! escaped from it with setsid but carrying the run's id), at the end of
//! each job everything that carries the run's id and the job's, and
//! whenever no job of the run is running, everything that carries the
//! run's id.

use std::io;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// Kill `child`'s process group, then reap `child`. In that order: until
/// the leader is reaped its pid, and so the group id, cannot be recycled,
/// so the kill cannot hit a stranger.
pub(super) fn end_step(child: &mut Child) -> io::Result<ExitStatus> {
    let _ = kill_process_group(Pid::from_child(child), Signal::KILL);
    child.wait()
}

/// Whatever a job's steps started and left behind, even a daemon that left
/// the step's process group, ends with its job; the jobs running beside it
/// keep theirs.
pub(super) fn after_job(run_id: &str, job: &str) {
    crate::processes::kill_job(run_id, job);
}

/// Once no job of the run is running, nothing of the run may be left.
pub(super) fn while_idle(run_id: &str) {
    crate::processes::kill(run_id);
}

/// What is still holding a step's pipes open after its own process exited
/// and its output was drained: ended in stages, a grace apart.
pub(super) struct Leftovers<'a> {
    run_id: &'a str,
    job: &'a str,
    grace: Duration,
    stage: Stage,
}

enum Stage {
    Untouched,
    GroupKilled(Instant),
    EscapeesKilled(Instant),
}

/// Whether to keep reading a step's pipes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pipes {
    KeepReading,
    /// Still held a grace after everything carrying the run's id was
    /// killed: something quire cannot find holds them.
    Abandon,
}

impl<'a> Leftovers<'a> {
    pub(super) fn new(run_id: &'a str, job: &'a str, grace: Duration) -> Self {
        Leftovers {
            run_id,
            job,
            grace,
            stage: Stage::Untouched,
        }
    }

    /// Called on each quiet tick while the exited step's pipes stay open:
    /// first its process group (led by `pid`, not yet reaped) is killed;
    /// a grace later, everything carrying the run's id and the job's; a
    /// grace after that, the pipes are given up.
    pub(super) fn sweep(&mut self, pid: Pid) -> Pipes {
        match self.stage {
            Stage::Untouched => {
                let _ = kill_process_group(pid, Signal::KILL);
                self.stage = Stage::GroupKilled(Instant::now());
            }
            Stage::GroupKilled(at) if at.elapsed() >= self.grace => {
                crate::processes::kill_job(self.run_id, self.job);
                self.stage = Stage::EscapeesKilled(Instant::now());
            }
            Stage::EscapeesKilled(at) if at.elapsed() >= self.grace => return Pipes::Abandon,
            _ => {}
        }
        Pipes::KeepReading
    }
}
