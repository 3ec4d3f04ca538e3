//! When each job starts: once every job it needs has ended, in plan order,
//! up to `max_parallel_jobs` at once, each on a scoped thread of its own.
//! The thread that called [`Executor::run`] keeps the sink: job threads send
//! their events to it through one channel, so each event is written whole,
//! and each job's events arrive in the order the job sent them.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, Scope};
use std::time::{Duration, Instant};

use quire_model::JobState;
use quire_model::clock::now_ms;
use quire_model::events::Event;

use super::report::{Finished, Report, Reporter};
use super::{
    ExecError, Executor, HostFailure, RunScope, artifacts, cache, emit, events_error, job, remote,
    sweep,
};
use crate::events::EventSink;
use quire_pipeline::pipeline::Pipeline;

/// Why the executor gave up on the run; it returns (or resumes) it once
/// every running job has stopped.
enum Failure {
    Error(ExecError),
    Panic(Box<dyn Any + Send>),
}

/// The run's jobs while they run.
struct Schedule<'a> {
    exec: &'a Executor,
    pipeline: &'a Pipeline,
    scope: &'a RunScope<'a>,
    order: Vec<usize>,
    /// Started or skipped.
    handled: Vec<bool>,
    ended: Vec<Option<JobState>>,
    /// The jobs their host failed, as they ended.
    hosts: Vec<HostFailure>,
    running: usize,
    failure: Option<Failure>,
}

/// Run the jobs of `pipeline` in `order`; how each ended (`None` for a job
/// the run never reached because the executor gave up), and which of them
/// their host failed.
pub(super) fn run<'a>(
    exec: &'a Executor,
    pipeline: &'a Pipeline,
    scope: &'a RunScope<'a>,
    order: Vec<usize>,
    sink: &mut dyn EventSink,
) -> Result<(Vec<Option<JobState>>, Vec<HostFailure>), ExecError> {
    let mut schedule = Schedule {
        exec,
        pipeline,
        scope,
        order,
        handled: vec![false; pipeline.jobs.len()],
        ended: vec![None; pipeline.jobs.len()],
        hosts: Vec::new(),
        running: 0,
        failure: None,
    };
    let tick = exec.tick.max(Duration::from_millis(1));
    let (tx, rx) = mpsc::channel();
    thread::scope(|threads| {
        let mut last_flush = Instant::now();
        loop {
            if schedule.failure.is_none()
                && let Err(e) = schedule.start_ready(threads, &tx, sink)
            {
                schedule.give_up(Failure::Error(e));
            }
            if schedule.running == 0 {
                break;
            }
            match rx.recv_timeout(tick.saturating_sub(last_flush.elapsed())) {
                Ok(report) => schedule.take(report, sink),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => unreachable!("the schedule holds a sender"),
            }
            // A quiet tick, or a tick's worth of chatter: either way the
            // sink gets its chance to write out what it batched.
            if last_flush.elapsed() >= tick {
                last_flush = Instant::now();
                if schedule.failure.is_none()
                    && let Err(e) = sink.flush()
                {
                    schedule.give_up(Failure::Error(events_error(e)));
                }
            }
        }
    });
    match schedule.failure {
        None => Ok((schedule.ended, schedule.hosts)),
        Some(Failure::Error(e)) => Err(e),
        Some(Failure::Panic(payload)) => panic::resume_unwind(payload),
    }
}

impl<'a> Schedule<'a> {
    /// Walk the plan while a slot is free: skip each job whose inputs have
    /// ended and that must not run, start each that may, and stop at the
    /// first that may run but whose CPUs are not free. The plan puts every
    /// job after those it needs, so one walk sees the effect of its skips.
    fn start_ready<'scope>(
        &mut self,
        threads: &'scope Scope<'scope, '_>,
        tx: &Sender<Report>,
        sink: &mut dyn EventSink,
    ) -> Result<(), ExecError>
    where
        'a: 'scope,
    {
        for k in 0..self.order.len() {
            if self.running >= self.exec.max_parallel_jobs.max(1) {
                break;
            }
            let index = self.order[k];
            let job = &self.pipeline.jobs[index];
            if self.handled[index] || job.needs().any(|need| self.ended[need].is_none()) {
                continue;
            }
            let skip = self.scope.skip_reason(self.pipeline, job, &self.ended);
            // A job whose CPUs are not free waits, and so does every job
            // after it in the plan: were a later, smaller job started in
            // its place, such jobs could keep it waiting for ever.
            if skip.is_none() && !self.cpus_free_for(index) {
                break;
            }
            self.handled[index] = true;
            match skip {
                Some(reason) => {
                    emit(
                        sink,
                        Event::JobSkipped {
                            at_ms: now_ms(),
                            job: job.id.clone(),
                            reason,
                        },
                    )?;
                    self.ended[index] = Some(JobState::Skipped);
                }
                None => self.start(index, threads, tx, sink)?,
            }
        }
        Ok(())
    }

    /// Report the job started and run it on a thread of its own.
    fn start<'scope>(
        &mut self,
        index: usize,
        threads: &'scope Scope<'scope, '_>,
        tx: &Sender<Report>,
        sink: &mut dyn EventSink,
    ) -> Result<(), ExecError>
    where
        'a: 'scope,
    {
        let (exec, scope, job) = (self.exec, self.scope, &self.pipeline.jobs[index]);
        emit(
            sink,
            Event::JobStarted {
                at_ms: now_ms(),
                job: job.id.clone(),
            },
        )?;
        let reporter = Reporter::new(tx.clone(), &scope.halt);
        thread::Builder::new()
            .name(format!("job {}", job.id))
            .spawn_scoped(threads, move || {
                let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                    // The executor seam: a job of a run with a remote host
                    // runs there, its node keeping artifacts and caches.
                    if let Some(remote) = &scope.ctx.remote {
                        return remote::run(exec, scope, job, &reporter, remote);
                    }
                    let outcome = job::run(exec, scope, job, &reporter);
                    sweep::after_job(scope, &job.id);
                    let end = outcome?;
                    // Nothing of the job runs any more: keep what it made,
                    // also when it failed (its reports), not when it was
                    // cut short by a cancel.
                    if end.state != JobState::Aborted {
                        artifacts::keep(scope, job, &end.last_log, &reporter)?;
                    }
                    // Only what a job that passed left is worth reusing.
                    if end.state == JobState::Complete {
                        cache::save(scope, job, &end.last_log)?;
                    }
                    Ok(Finished {
                        state: end.state,
                        exit_code: end.exit_code,
                        host: None,
                    })
                }));
                reporter.ended(index, outcome);
            })
            .map_err(|source| ExecError::Process {
                job: job.id.clone(),
                source,
            })?;
        self.running += 1;
        Ok(())
    }

    /// Write a job's event, or record how the job ended.
    fn take(&mut self, report: Report, sink: &mut dyn EventSink) {
        let (index, outcome) = match report {
            Report::Event(event) => {
                if self.failure.is_none()
                    && let Err(e) = emit(sink, event)
                {
                    self.give_up(Failure::Error(e));
                }
                return;
            }
            Report::Ended { index, outcome } => (index, outcome),
        };
        self.running -= 1;
        if self.running == 0 {
            sweep::while_idle(self.scope);
        }
        let Finished {
            state,
            exit_code,
            host,
        } = match outcome {
            Ok(Ok(ended)) => ended,
            Ok(Err(e)) => return self.give_up(Failure::Error(e)),
            Err(payload) => return self.give_up(Failure::Panic(payload)),
        };
        self.ended[index] = Some(state);
        self.hosts.extend(host);
        if self.failure.is_none() {
            let finished = Event::JobFinished {
                at_ms: now_ms(),
                job: self.pipeline.jobs[index].id.clone(),
                state,
                exit_code,
            };
            if let Err(e) = emit(sink, finished) {
                self.give_up(Failure::Error(e));
            }
        }
    }

    /// Stop every running job; the first error (a panic over any) is what
    /// the run ends with.
    fn give_up(&mut self, failure: Failure) {
        self.scope.halt.give_up();
        if self.failure.is_none() || matches!(failure, Failure::Panic(_)) {
            self.failure = Some(failure);
        }
    }

    /// Whether job `index` may start beside the jobs running now: the CPUs
    /// the jobs that ask for some (`resources.cpus`) hold, and its own, add
    /// up to at most the executor's. A job that asks for none holds none
    /// (`max_parallel_jobs` alone counts it, as before `resources`: a job
    /// that sleeps or waits on the network needs no CPU of its own). With
    /// nothing running any job may, so one asking for more than the
    /// executor has runs alone, and the run never waits for ever. On a
    /// cluster ([`crate::remote`]) the cluster counts them.
    fn cpus_free_for(&self, index: usize) -> bool {
        if self.running == 0 || self.scope.ctx.remote.is_some() {
            return true;
        }
        let asks = |i: usize| u64::from(self.pipeline.jobs[i].resources.cpus.unwrap_or(0));
        // Started and not ended: a skipped job ends as it is handled.
        let busy: u64 = (0..self.pipeline.jobs.len())
            .filter(|&i| self.handled[i] && self.ended[i].is_none())
            .map(asks)
            .sum();
        busy + asks(index) <= self.exec.cpus.max(1) as u64
    }
}
