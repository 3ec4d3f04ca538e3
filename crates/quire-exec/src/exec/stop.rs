//! Stopping a running step when its run is cancelled (or the executor gives
//! up on it) or its job's timeout runs out: SIGTERM to its process group,
//! then SIGKILL once the grace has passed.

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use super::Halt;

/// Why a step's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// On its own.
    Exited,
    /// Terminated: its job's timeout ran out.
    Deadline,
    /// Terminated: config.toml's `max_job_timeout` ran out.
    MaxTimeout,
    /// Terminated: the run was cancelled, or the executor gave up on it.
    Cancelled,
}

/// The line a step's log ends with when its job's timeout ended it.
pub const TIMEOUT_NOTE: &str = "quire: the job's timeout ran out; the step was terminated";

/// The line a step's log ends with when config.toml's `max_job_timeout`,
/// shorter than the job's own timeout or standing for the one it did not
/// set, ended it.
pub const MAX_TIMEOUT_NOTE: &str = "quire: the job ran for config.toml's max_job_timeout, the longest any job may run; the step was terminated";

impl Stop {
    /// The line quire adds to the step's log when it ended the step.
    pub(super) fn note(self) -> Option<&'static str> {
        match self {
            Stop::Exited => None,
            Stop::Deadline => Some(TIMEOUT_NOTE),
            Stop::MaxTimeout => Some(MAX_TIMEOUT_NOTE),
            Stop::Cancelled => Some("quire: the run was cancelled; the step was terminated"),
        }
    }
}

/// Watches for the reasons to stop one running step, and escalates once
/// one has come.
pub(super) struct Stopper<'a> {
    halt: &'a Halt<'a>,
    deadline: Option<Instant>,
    /// Why the deadline ends the step: the job's timeout, or the cap.
    at_deadline: Stop,
    grace: Duration,
    reason: Stop,
    terminated_at: Option<Instant>,
}

impl<'a> Stopper<'a> {
    pub(super) fn new(
        halt: &'a Halt<'a>,
        deadline: Option<Instant>,
        at_deadline: Stop,
        grace: Duration,
    ) -> Self {
        Stopper {
            halt,
            deadline,
            at_deadline,
            grace,
            reason: Stop::Exited,
            terminated_at: None,
        }
    }

    /// Called on every tick while the step runs: terminate the group `pid`
    /// leads when asked to, kill it once the grace has run out.
    pub(super) fn tick(&mut self, pid: Pid) {
        match self.terminated_at {
            None => {
                if self.halt.is_set() {
                    self.reason = Stop::Cancelled;
                } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
                    self.reason = self.at_deadline;
                } else {
                    return;
                }
                let _ = kill_process_group(pid, Signal::TERM);
                self.terminated_at = Some(Instant::now());
            }
            Some(at) if at.elapsed() >= self.grace => {
                let _ = kill_process_group(pid, Signal::KILL);
            }
            Some(_) => {}
        }
    }

    pub(super) fn reason(&self) -> Stop {
        self.reason
    }
}
