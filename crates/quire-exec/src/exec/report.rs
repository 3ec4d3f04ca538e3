//! What a job's thread tells the thread that owns the run's sink: its
//! events as they happen ([`Reporter::emit`]), then how it ended
//! ([`Finished`]). Below the schedule and every kind of job, which all
//! speak through it.

use std::io;
use std::sync::mpsc::Sender;
use std::thread;

use quire_model::JobState;
use quire_model::events::Event;

use super::{ExecError, Halt, HostFailure, events_error};

/// How a job's thread ended it: the job's state and last exit code, an
/// error of quire's own, or a panic.
pub(super) type Outcome = thread::Result<Result<Finished, ExecError>>;

/// How a job ended: its state, its last step's exit code, and, for a job
/// sent to a host, whether the host failed it ([`HostFailure`]).
pub(super) struct Finished {
    pub state: JobState,
    pub exit_code: Option<i64>,
    pub host: Option<HostFailure>,
}

/// What a job's thread tells the thread that owns the sink.
pub(super) enum Report {
    Event(Event),
    /// The job's thread is done, and what it left running is ended.
    Ended {
        index: usize,
        outcome: Outcome,
    },
}

/// A job thread's end of the channel to the sink.
pub(super) struct Reporter<'a> {
    tx: Sender<Report>,
    halt: &'a Halt<'a>,
}

impl<'a> Reporter<'a> {
    pub(super) fn new(tx: Sender<Report>, halt: &'a Halt<'a>) -> Reporter<'a> {
        Reporter { tx, halt }
    }

    /// Say the job's thread is done, and how (its last word).
    pub(super) fn ended(&self, index: usize, outcome: Outcome) {
        let _ = self.tx.send(Report::Ended { index, outcome });
    }

    /// Hand `event` to the sink's thread. Fails once the executor has given
    /// up on the run, so the job stops where it is; the run's error is the
    /// one that made the executor give up.
    pub(super) fn emit(&self, event: Event) -> Result<(), ExecError> {
        if self.halt.given_up() || self.tx.send(Report::Event(event)).is_err() {
            return Err(events_error(io::Error::other(
                "the executor gave up on the run",
            )));
        }
        Ok(())
    }
}
