//! Running one step: its log, its process from spawn to reaping, the events
//! that bracket it, and how it ended.

use std::path::Path;

use quire_model::clock::now_ms;
use quire_model::events::Event;

use super::pump::pump;
use super::report::Reporter;
use super::running::RunningJob;
use super::stop::Stop;
use super::{ExecError, Executor, spawn, sweep};
use crate::log::CriLog;
use quire_pipeline::pipeline::Step;

/// How one step ended.
pub(super) struct StepEnd {
    pub(super) stop: Stop,
    /// The shell's convention: the exit code, or 128+N for a signal N.
    pub(super) code: i64,
}

/// Run `step`, the `seq`th of the running job, as `program`, logging to
/// the job's `log` (after quire's `notes`, if any); reports `StepStarted`
/// (with where its lines begin in the log) once it is spawned (or could
/// not be) and `StepFinished` once it is reaped.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    exec: &Executor,
    running: &RunningJob<'_>,
    log: &mut CriLog,
    seq: i64,
    step: &Step,
    program: &Path,
    notes: &[String],
    reporter: &Reporter<'_>,
) -> Result<StepEnd, ExecError> {
    let log_path = &running.log_path;
    let log_error = |source| ExecError::Write {
        what: log_path.display().to_string(),
        source,
    };
    let log_at = log.begin_step();
    for note in notes {
        log.note(note.as_bytes()).map_err(log_error)?;
    }
    let ctx = running.scope.ctx;
    let spawned = spawn::start(
        step,
        program,
        &running.env,
        ctx.steps_workspace(),
        ctx.sandbox.as_deref(),
        running.cgroup.as_ref(),
        ctx.network.as_deref(),
        if running.job.separate_stderr {
            spawn::Pipes::Separate
        } else {
            spawn::Pipes::Combined
        },
    );
    let started = Event::StepStarted {
        at_ms: now_ms(),
        job: running.job.id.clone(),
        seq,
        cmd: running.scope.redactor.apply_str(&step.display()),
        log_at: Some(log_at),
    };
    if let Err(e) = reporter.emit(started) {
        // Nobody would watch this step: end it before giving up.
        if let Ok(mut child) = spawned {
            let _ = sweep::end_step(&mut child);
        }
        return Err(e);
    }
    let end = match spawned {
        Ok(mut child) => {
            let pumped = pump(exec, running, &mut child, log);
            // Whatever happened, nothing of the step outlives it.
            let status = sweep::end_step(&mut child);
            let stop = pumped.map_err(log_error)?;
            let status = status.map_err(|source| ExecError::Process {
                job: running.job.id.clone(),
                source,
            })?;
            // Past the cap, the output was drained and counted: say so
            // once, at the end.
            if let Some(note) = log.dropped_note() {
                log.note(note.as_bytes()).map_err(log_error)?;
            }
            if let Some(note) = stop.note() {
                log.note(note.as_bytes()).map_err(log_error)?;
            }
            let code = spawn::exit_code(status);
            // A shell that could not run or find what it was told to (126,
            // 127) may have met the sandbox: say what it hides, and how
            // the admin opens it.
            let denied = ctx.sandbox.as_ref().and_then(|s| s.denied_note(code));
            if let (Stop::Exited, Some(note)) = (&stop, denied) {
                let note = running.scope.redactor.apply_str(&note);
                log.note(note.as_bytes()).map_err(log_error)?;
            }
            StepEnd { stop, code }
        }
        Err(e) => {
            let Some(code) = spawn::unstartable_code(&e) else {
                return Err(ExecError::Process {
                    job: running.job.id.clone(),
                    source: e,
                });
            };
            // A program the sandbox hides (one in the CI user's home)
            // cannot be executed: say where to look.
            let hidden = ctx.sandbox.as_ref().is_some_and(|s| s.is_confined())
                && e.kind() == std::io::ErrorKind::PermissionDenied;
            let note = running.scope.redactor.apply_str(&format!(
                "quire: cannot start {}: {e}{}",
                step.display(),
                if hidden {
                    " (the sandbox hides quire's home, the repositories and the CI user's \
                     home from steps: docs/SECURITY.md; [steps] read in config.toml opens a \
                     directory to them)"
                } else {
                    ""
                }
            ));
            log.note(note.as_bytes()).map_err(log_error)?;
            StepEnd {
                stop: Stop::Exited,
                code,
            }
        }
    };
    log.flush().map_err(log_error)?;
    reporter.emit(Event::StepFinished {
        at_ms: now_ms(),
        job: running.job.id.clone(),
        seq,
        exit_code: end.code,
    })?;
    Ok(end)
}
