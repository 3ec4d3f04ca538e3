//! wait, cancel, retry: acting on one run.

use std::process::ExitCode;

use quire_exec::contain;
use quire_exec::processes::ProcessTable;
use quire_store::lifecycle::{Applied, NewRun};
use quire_worker::config::Config;

/// How long leftover step processes get between SIGTERM and SIGKILL.
pub const LEFTOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
use quire_store::{RunState, Store};

use crate::error::CommandError;
use quire_worker::workers;

use crate::runs::cli::{RunArg, WaitArgs};

/// Block until the run is terminal; exit 0 iff it completed.
pub fn wait(store: &Store, args: &WaitArgs) -> crate::error::Result<ExitCode> {
    let run =
        crate::select::run_or_newest(store, args.run.as_deref(), &args.scope.scope(), "wait for")?;
    if args.run.is_none() {
        quire_view::text::note_newest(&run);
    }
    let id = run.id;
    let Some(run) = crate::select::wait_terminal(store, &id, args.interval, || false)? else {
        return Ok(ExitCode::from(1));
    };
    println!("run {} {}", run.id, run.state_text());
    Ok(if run.state == RunState::Complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Cancel a live run. Its worker notices within a heartbeat and terminates
/// the running step; if the worker is gone, the step is ended here.
pub fn cancel(store: &mut Store, args: &RunArg) -> crate::error::Result<ExitCode> {
    let run = store.resolve_run(&args.run)?;
    match store.cancel(&run.id)? {
        Applied::Changed { from } => {
            let worker_alive = run
                .worker
                .as_ref()
                .is_some_and(|w| ProcessTable.is_alive(w.pid));
            if from == RunState::Active && !worker_alive {
                let cgroup = run.cgroup.as_deref().map(std::path::Path::new);
                let leftovers = contain::end_orphaned(&run.id, cgroup, LEFTOVER_GRACE);
                if let Some(e) = leftovers.error {
                    eprintln!("quire-runs: warning: {e}");
                }
            }
            println!("cancelled run {} (it was {from})", run.id);
            workers::announce_if_needed(store.home(), store);
            Ok(ExitCode::SUCCESS)
        }
        Applied::Unchanged { state } => Err(CommandError::refused(format!(
            "run {} is already {state}; there is nothing to cancel",
            run.id
        ))),
    }
}

/// Queue a new run for the same repository, ref and commit.
pub fn retry(store: &mut Store, args: &RunArg) -> crate::error::Result<ExitCode> {
    let run = store.resolve_run(&args.run)?;
    if run.git_dir.is_none() {
        return Err(CommandError::refused(format!(
            "the path of repository {} is unknown (it is known by name only, from an upstream \
             store); push to it again, which records the path, instead",
            run.repo
        )));
    }
    let created = store.create_run(&NewRun {
        repo_id: run.repo_id,
        ref_name: &run.ref_name,
        sha: &run.sha,
        pushed_at_ms: None,
        previous_sha: run.previous_sha.as_deref(),
        invalid: None,
        subject: run.subject.as_deref(),
        author: run.author.as_deref(),
        event: Some(quire_store::RunEvent::Retry),
        retry_of: Some(&run.id),
        ..Default::default()
    })?;
    let id = &created.run.id;
    println!(
        "queued run {id}, a retry of {} (quire-runs show {id})",
        run.id
    );
    if let Some(old) = created.superseded {
        println!("  it supersedes run {old}");
        workers::announce_if_needed(store.home(), store);
    }
    if !start_worker(store)? {
        println!("  a worker is already running; it will take the run");
    }
    Ok(ExitCode::SUCCESS)
}

/// Start workers for the queued runs unless the worker limit is reached
/// (one may be draining the queue already). True if any was started.
pub fn start_worker(store: &Store) -> crate::error::Result<bool> {
    let config = Config::load(store.home())?;
    match workers::start(store.home(), config.max_workers, store.pending_count()?) {
        Ok(started) => Ok(started > 0),
        // The run is queued: reconcile (cron) starts a worker for it.
        Err(e @ quire_worker::Error::Spawn { .. }) => {
            eprintln!("quire-runs: warning: {e}; `quire-runs reconcile` will try again");
            Ok(false)
        }
        Err(e) => {
            eprintln!(
                "quire-runs: warning: cannot start a worker ({e}); `quire-runs reconcile` will \
                 try again"
            );
            Ok(false)
        }
    }
}
