//! A store holding a run in every state, written as a worker writes it
//! (claim, ingested events, finish), and the events an executor reports.

use std::path::Path;
use std::time::Duration;

use quire_model::events::Event;
use quire_store::lifecycle::{NewRun, Outcome, Worker};
use quire_store::repos::Registration;
use quire_store::{FailureKind, JobState, Store};

use crate::process::dead_pid;

pub const SHA: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";

/// The ids of a store holding a run in every state.
pub struct Fixture {
    pub superseded: String,
    pub complete: String,
    pub failed: String,
    pub pending: String,
    pub live: String,
    pub orphan: String,
}

/// Now, as event times are stamped.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The events of `job` running `steps` (command, exit code) to its end,
/// stamped now, as an executor reports them.
pub fn job_ran(job: &str, steps: &[(&str, i64)]) -> Vec<Event> {
    let at_ms = now_ms();
    let job = job.to_string();
    let mut events = vec![Event::JobStarted {
        at_ms,
        job: job.clone(),
    }];
    for (seq, (cmd, exit_code)) in (1..).zip(steps) {
        events.push(Event::StepStarted {
            at_ms,
            job: job.clone(),
            seq,
            cmd: cmd.to_string(),
            log_at: None,
        });
        events.push(Event::StepFinished {
            at_ms,
            job: job.clone(),
            seq,
            exit_code: *exit_code,
        });
    }
    let exit_code = steps.last().map_or(0, |(_, code)| *code);
    events.push(Event::JobFinished {
        at_ms,
        job,
        state: if exit_code == 0 {
            JobState::Complete
        } else {
            JobState::Failed
        },
        exit_code: Some(exit_code),
    });
    events
}

/// The `run_started` event planning `jobs`, stamped now.
pub fn run_started(jobs: &[&str]) -> Event {
    Event::RunStarted {
        at_ms: now_ms(),
        jobs: jobs.iter().map(|j| j.to_string()).collect(),
        allow_failure: Vec::new(),
    }
}

/// Fill the store: runs in every state, jobs and steps under them, written
/// as a worker writes them (claim, ingested events, finish).
pub fn populate(store: &mut Store) -> Fixture {
    let repo_id = store
        .register_repo(Path::new("/srv/git/app.git"), None, Registration::Seen)
        .unwrap()
        .id;
    let new = |ref_name| NewRun {
        repo_id,
        ref_name,
        sha: SHA,
        pushed_at_ms: None,
        previous_sha: None,
        invalid: None,
        ..Default::default()
    };
    let gone = Worker {
        id: "worker-gone".into(),
        pid: dead_pid(),
        lease: Duration::from_secs(3600),
    };
    let alive = Worker {
        id: "worker-alive".into(),
        pid: std::process::id(),
        lease: Duration::from_secs(3600),
    };
    let steps = [("cargo build", 0), ("cargo test --all", 0)];

    let superseded = store.create_run(&new("refs/heads/main")).unwrap().run.id;
    let complete = store.create_run(&new("refs/heads/main")).unwrap().run.id;
    store.claim(&complete, &gone).unwrap();
    let mut events = vec![run_started(&["build", "test"])];
    events.extend(job_ran("build", &steps));
    events.extend(job_ran("test", &steps));
    store.ingest(&complete, &events).unwrap();
    // The worker, not the event stream, ends a run.
    store.finish(&complete, &Outcome::Complete).unwrap();

    let failed = store.create_run(&new("refs/heads/dev")).unwrap().run.id;
    store.claim(&failed, &gone).unwrap();
    let mut events = vec![run_started(&["build", "deploy"])];
    events.extend(job_ran("build", &[("make", 2)]));
    events.push(Event::JobSkipped {
        at_ms: now_ms(),
        job: "deploy".into(),
        reason: "needs build, which failed".into(),
    });
    store.ingest(&failed, &events).unwrap();
    let failure = Outcome::Failed {
        kind: FailureKind::PipelineFailure,
        detail: Some("job build failed".into()),
    };
    store.finish(&failed, &failure).unwrap();

    let pending = store.create_run(&new("refs/tags/v1.0")).unwrap().run.id;

    let live = store.create_run(&new("refs/heads/live")).unwrap().run.id;
    store.claim(&live, &alive).unwrap();
    let events = [
        run_started(&["build"]),
        Event::JobStarted {
            at_ms: now_ms(),
            job: "build".into(),
        },
        Event::StepStarted {
            at_ms: now_ms(),
            job: "build".into(),
            seq: 1,
            cmd: "sleep 600".into(),
            log_at: None,
        },
    ];
    store.ingest(&live, &events).unwrap();

    let orphan = store.create_run(&new("refs/heads/orphan")).unwrap().run.id;
    store.claim(&orphan, &gone).unwrap();
    let events = [
        run_started(&["build", "test"]),
        Event::JobStarted {
            at_ms: now_ms(),
            job: "build".into(),
        },
    ];
    store.ingest(&orphan, &events).unwrap();

    Fixture {
        superseded,
        complete,
        failed,
        pending,
        live,
        orphan,
    }
}
