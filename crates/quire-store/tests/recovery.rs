//! Reconcile recovers what a dead worker's events.jsonl says happened before
//! it orphans the run: the run is not ended by the file (only a worker ends
//! runs), but its finished steps and jobs are recorded.

use std::path::Path;
use std::time::Duration;

use quire_model::events::Event;
use quire_store::lifecycle::{NewRun, Worker};
use quire_store::repos::Registration;
use quire_store::{FailureKind, Home, JobState, RunState, Store};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A run claimed by a worker that is gone, nothing of it ingested.
fn claimed_by_a_gone_worker(store: &mut Store) -> String {
    let repo = store
        .register_repo(Path::new("/srv/git/app.git"), None, Registration::Seen)
        .unwrap();
    let run = store
        .create_run(&NewRun {
            repo_id: repo.id,
            ref_name: "refs/heads/main",
            sha: SHA,
            pushed_at_ms: None,
            previous_sha: None,
            invalid: None,
            ..Default::default()
        })
        .unwrap()
        .run;
    let gone = Worker {
        id: "gone".into(),
        pid: 1_000_000,
        lease: Duration::from_secs(600),
    };
    store.claim(&run.id, &gone).unwrap();
    run.id
}

/// A run claimed by a worker that is gone, with its plan ingested live.
fn orphan_in_waiting(store: &mut Store) -> String {
    let run = claimed_by_a_gone_worker(store);
    let now = quire_model::clock::now_ms();
    store
        .ingest(
            &run,
            &[
                Event::RunStarted {
                    at_ms: now,
                    jobs: vec!["build".into(), "test".into()],
                    allow_failure: Vec::new(),
                },
                Event::JobStarted {
                    at_ms: now,
                    job: "build".into(),
                },
            ],
        )
        .unwrap();
    run
}

fn write_events(store: &Store, run: &str, text: &str) {
    let dir = store.home().run_dir(run).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("events.jsonl"), text).unwrap();
}

#[test]
fn steps_a_dead_worker_finished_are_recovered_and_the_run_is_orphaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&Home::at(dir.path())).unwrap();
    let run = orphan_in_waiting(&mut store);
    let now = quire_model::clock::now_ms();
    let stream: String = [
        Event::RunStarted {
            at_ms: now,
            jobs: vec!["build".into(), "test".into()],
            allow_failure: Vec::new(),
        },
        Event::JobStarted {
            at_ms: now,
            job: "build".into(),
        },
        Event::StepStarted {
            at_ms: now,
            job: "build".into(),
            seq: 1,
            cmd: "make".into(),
            log_at: None,
        },
        Event::StepFinished {
            at_ms: now + 5,
            job: "build".into(),
            seq: 1,
            exit_code: 0,
        },
        Event::JobFinished {
            at_ms: now + 5,
            job: "build".into(),
            state: JobState::Complete,
            exit_code: Some(0),
        },
        Event::RunFinished {
            at_ms: now + 6,
            state: RunState::Complete,
            failure_kind: None,
        },
    ]
    .iter()
    .map(Event::to_line)
    .collect();
    write_events(&store, &run, &stream);

    let report = store.reconcile(&|_pid| false, false).unwrap();
    assert_eq!(report.orphaned.len(), 1);
    let detail = store.run_detail(&run).unwrap();
    assert_eq!(detail.run.state, RunState::Failed);
    assert_eq!(detail.run.failure_kind, Some(FailureKind::Orphaned));
    let build = &detail.jobs[0];
    assert_eq!(build.job.state, JobState::Complete);
    assert_eq!(build.steps[0].exit_code, Some(0));
    assert_eq!(detail.jobs[1].job.state, JobState::Skipped);
}

#[test]
fn a_garbled_events_file_recovers_nothing_and_the_run_is_still_orphaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&Home::at(dir.path())).unwrap();
    let run = orphan_in_waiting(&mut store);
    write_events(&store, &run, "{\"type\":\"job_started\"\nnot json\n");

    store.reconcile(&|_pid| false, false).unwrap();
    let detail = store.run_detail(&run).unwrap();
    assert_eq!(detail.run.failure_kind, Some(FailureKind::Orphaned));
    assert_eq!(detail.jobs[0].job.state, JobState::Aborted);
    assert!(detail.jobs[0].steps.is_empty());
}

#[test]
fn a_plan_recovered_from_the_file_says_which_jobs_may_fail_and_an_old_file_allows_none() {
    let allowed = |line: &str| {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&Home::at(dir.path())).unwrap();
        let run = claimed_by_a_gone_worker(&mut store);
        write_events(&store, &run, line);
        store.reconcile(&|_pid| false, false).unwrap();
        let detail = store.run_detail(&run).unwrap();
        assert_eq!(detail.run.failure_kind, Some(FailureKind::Orphaned));
        detail
            .jobs
            .iter()
            .map(|j| (j.job.id.clone(), j.job.allow_failure))
            .collect::<Vec<_>>()
    };
    let now = quire_model::clock::now_ms();
    let plan = Event::RunStarted {
        at_ms: now,
        jobs: vec!["lint".into(), "test".into()],
        allow_failure: vec!["lint".into()],
    };
    assert_eq!(
        allowed(&plan.to_line()),
        [("lint".into(), Some(true)), ("test".into(), Some(false))]
    );
    // Written before run_started carried allow_failure: none may fail.
    let old = format!("{{\"type\":\"run_started\",\"at_ms\":{now},\"jobs\":[\"lint\"]}}\n");
    assert_eq!(allowed(&old), [("lint".into(), Some(false))]);
}
