//! `quire-run trigger --git-dir DIR REF [REV] [--wait] [--force]`: what a
//! push of one ref does, by hand; with `--wait`, the run executes in the
//! foreground.

use std::time::Duration;

use quire_store::lifecycle::{Applied, Worker};
use quire_store::repos::Registration;
use quire_store::{Home, RunState, Store};
use quire_worker::config::Config;

use crate::error::{CommandError, Kind};
use crate::run::TriggerArgs;
use crate::run::ci_wait::{self, Followed};
use crate::run::hook::{git_dir, register, start_workers};
use quire_worker::git::Repo;
use quire_worker::record::{Recorded, Recording, RefUpdate, Skip, record};
use quire_worker::work;

pub(crate) fn run(home: &Home, args: &TriggerArgs) -> Result<(), CommandError> {
    // The home first: a wrong --home is the likelier mistake.
    if home.is_gone() {
        Store::open_existing(home)?;
    }
    let config = Config::load(home)?;
    // With --wait, the run's network is started now: pasta sets it up
    // while the store is opened and the run recorded, claimed and
    // checked out. Declared before everything it outlives, so dropped
    // after it: the run's network, killed with its steps, is reaped last
    // (pasta's exit is slow).
    let kept = if args.wait {
        work::Kept::one_shot(&config)
    } else {
        work::Kept::default()
    };
    let mut store = Store::open_existing(home)?;
    crate::say_converted(&store);
    let git_dir = git_dir(Some(&args.git_dir))?;
    let repo = Repo::open(&git_dir)?;
    let ref_name = full_ref(&repo, &args.ref_name)?;
    let sha = repo.resolve_revision(args.rev.as_deref().unwrap_or(&ref_name))?;
    let known = register(&mut store, &git_dir, &config, Registration::Seen)?;
    let update = RefUpdate {
        old: None,
        new: Some(sha),
        ref_name,
    };
    let recorded = record(
        &mut store,
        &repo,
        known.id,
        &update,
        &Recording {
            skip: if args.force {
                Skip::Never
            } else {
                Skip::AsTheMessageSays
            },
            limits: &config.limits(),
            event: quire_store::RunEvent::Trigger,
            config_error: None,
        },
    )?;
    for line in recorded.lines(&update) {
        println!("{line}");
    }
    let run = match &recorded {
        Recorded::Queued { run, .. } => run.clone(),
        Recorded::Invalid { .. } => return Err(CommandError::reported()),
        _ if args.wait => return Err(CommandError::reported()),
        _ => return Ok(()),
    };
    if !args.wait {
        start_workers(&store, &config);
        return Ok(());
    }

    quire_worker::interrupt::catch();
    // Each job's start and end as `git push -o ci.wait` tells them, from a
    // thread of its own (with a store connection of its own) while this
    // one executes the run.
    // Once the run is over, the teller is woken for its last look (the
    // pipe's write end closed), not one poll interval later.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (wake, woken) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| CommandError::new(Kind::Io, format!("cannot make a pipe: {e}")))?;
    let teller = {
        let (home, run, stop) = (home.clone(), run.clone(), stop.clone());
        let ref_name = update.ref_name.clone();
        std::thread::spawn(move || {
            let Ok(store) = Store::open_existing(&home) else {
                return Followed::Stopped;
            };
            // It only reads.
            let _ = store.fold_nothing_on_close();
            let runs = [ci_wait::Recorded { run, ref_name }];
            let wake = std::os::fd::AsFd::as_fd(&wake);
            ci_wait::follow(&store, &runs, ci_wait::To::Stdout, Some(wake), &|| {
                stop.load(std::sync::atomic::Ordering::Relaxed)
            })
        })
    };
    // The run's end is synced below, once, rather than folded into
    // quire.db on the way out (docs/OPERATIONS.md, "Restoring"); every way
    // out before here folds as usual.
    let _ = store.fold_nothing_on_close();
    let told = execute_and_wait(home, &config, &kept, &mut store, &run);
    // Every commit of the run (its end, its steps, the lease's) outlives a
    // power cut from here, as the fold on close made sure of before.
    if let Err(e) = store.sync_wal() {
        eprintln!("quire: cannot sync the store's log: {e}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(woken);
    let told_the_end = teller.join().unwrap_or(Followed::Stopped) == Followed::Ended;
    let Some(finished) = told? else {
        // Another worker holds the run; stop waiting, leave it be.
        println!("quire: stopped waiting; run {run} goes on (quire-runs wait {run})");
        return Err(CommandError::reported());
    };
    if !told_the_end {
        println!("quire: run {run} {}", finished.state_text());
        if let Some(detail) = &finished.failure_detail {
            println!("quire:   {detail}");
        }
    }
    if finished.state == RunState::Complete {
        Ok(())
    } else {
        Err(CommandError::reported())
    }
}

/// Execute the run here (unless a worker claimed it first), then wait for
/// its end; None when the waiting was interrupted first.
fn execute_and_wait(
    home: &Home,
    config: &Config,
    kept: &work::Kept,
    store: &mut Store,
    run: &str,
) -> Result<Option<quire_store::Run>, CommandError> {
    let worker = Worker::this_process(work::LEASE);
    if let Applied::Changed { .. } = store.claim(run, &worker)? {
        let claimed = store.resolve_run(run)?;
        let containment = work::contain_runs(config);
        work::execute(home, config, &containment, kept, store, &worker, claimed)?;
        // Its git note and notifiers by a detached announcer
        // (docs/OPERATIONS.md, "When a run ends"), even with no notifier:
        // written here, the note would hold up the command's return, which
        // a worker's next run does not wait on.
        quire_worker::workers::announce_if_needed(home, store);
    }
    // Executed here, or by a worker that claimed it first: wait for its end.
    Ok(crate::select::wait_terminal(
        store,
        run,
        Duration::from_millis(200),
        quire_worker::interrupt::requested,
    )?)
}

/// `main` means `refs/heads/main` (or `refs/tags/main`) when it exists.
fn full_ref(repo: &Repo, given: &str) -> Result<String, CommandError> {
    if given.starts_with("refs/") {
        return Ok(given.to_string());
    }
    repo.full_ref_name(given)
        .filter(|name| {
            let name = quire_model::refs::RefName::new(name.as_str());
            name.branch().is_some() || name.tag().is_some()
        })
        .ok_or_else(|| {
            let why = if repo.resolve_revision(given).is_ok() {
                // A commit, not a ref: the run needs the ref it is for.
                format!(
                    "; it names a commit: give the ref the run is for, then the commit (trigger --git-dir DIR main {})",
                    quire_view::text::sh_word(given)
                )
            } else {
                "; give a full ref (refs/...)".to_string()
            };
            CommandError::git(format!(
                "{given:?} is neither a branch nor a tag of the repository{why}"
            ))
        })
}
