//! Ending what a step leaves running: its process group when it ends, then
//! whatever still holds its output after it exited (in its group, or
//! escaped from it: in the job's cgroup, below the worker holding the
//! output, or carrying the run's id), at the end of each job everything in
//! its cgroup and everything that carries the run's id and the job's, and
//! whenever no job of the run is running, everything of the run: its
//! cgroup, everything below the worker, everything carrying its id.

use std::io;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use super::RunScope;
use super::running::RunningJob;
use super::spawn::StepChild;
use crate::processes;

/// Kill `child`'s process group, then reap `child`. In that order: until
/// the leader is reaped its pid, and so the group id, cannot be recycled,
/// so the kill cannot hit a stranger.
pub(super) fn end_step(child: &mut StepChild) -> io::Result<ExitStatus> {
    let _ = kill_process_group(child.pid(), Signal::KILL);
    let status = child.wait();
    processes::step_reaped(child.id());
    status
}

/// Whatever a job's steps started and left behind, even a daemon that left
/// the step's process group, ends with its job (its cgroup was killed when
/// the job's steps were done); the jobs running beside it keep theirs.
pub(super) fn after_job(scope: &RunScope<'_>, job: &str) {
    processes::kill_job(&scope.ctx.run_id, job);
    if scope.ctx.containment.is_some() {
        processes::reap_orphans();
    }
}

/// Once no job of the run is running, nothing of the run may be left.
pub(super) fn while_idle(scope: &RunScope<'_>) {
    processes::kill(&scope.ctx.run_id);
    if let Some(containment) = &scope.ctx.containment {
        containment.sweep_idle();
    }
}

/// What is still holding a step's pipes open after its own process exited
/// and its output was drained: ended in stages, a grace apart.
pub(super) struct Leftovers<'a> {
    running: &'a RunningJob<'a>,
    /// The step's stdout and stderr pipes (inode numbers).
    pipes: Vec<u64>,
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
    pub(super) fn new(running: &'a RunningJob<'a>, pipes: Vec<u64>, grace: Duration) -> Self {
        Leftovers {
            running,
            pipes,
            grace,
            stage: Stage::Untouched,
        }
    }

    /// Called on each quiet tick while the exited step's pipes stay open:
    /// first its process group (led by `pid`, not yet reaped) is killed;
    /// a grace later, everything in the job's cgroup, everything below the
    /// worker that holds the pipes, and everything carrying the run's id
    /// and the job's; a grace after that, the pipes are given up.
    pub(super) fn sweep(&mut self, pid: Pid) -> Pipes {
        match self.stage {
            Stage::Untouched => {
                let _ = kill_process_group(pid, Signal::KILL);
                self.stage = Stage::GroupKilled(Instant::now());
            }
            Stage::GroupKilled(at) if at.elapsed() >= self.grace => {
                if let Some(cgroup) = &self.running.cgroup {
                    cgroup.kill();
                }
                if self.running.scope.ctx.containment.is_some() {
                    processes::kill_descendants_holding(&self.pipes);
                }
                processes::kill_job(&self.running.scope.ctx.run_id, &self.running.job.id);
                self.stage = Stage::EscapeesKilled(Instant::now());
            }
            Stage::EscapeesKilled(at) if at.elapsed() >= self.grace => return Pipes::Abandon,
            _ => {}
        }
        Pipes::KeepReading
    }
}
