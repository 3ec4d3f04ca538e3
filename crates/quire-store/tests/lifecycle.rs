//! The run and job state machines through the store's API: behaviours,
//! property tests over random operation sequences, and concurrent writers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use quire_model::events::Event;
use quire_store::lifecycle::{Applied, Created, NewRun, Outcome, Worker};
use quire_store::query::ListFilter;
use quire_store::reconcile::Liveness;
use quire_store::repos::Registration;
use quire_store::{Containment, Error, FailureKind, Home, JobState, Run, RunState, Store};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn new_run(repo_id: i64, ref_name: &str) -> NewRun<'_> {
    NewRun {
        repo_id,
        ref_name,
        sha: SHA,
        pushed_at_ms: None,
        previous_sha: None,
        invalid: None,
        ..Default::default()
    }
}

/// The id of the repository `/srv/git/<name>`, registered on first use.
fn repo(store: &mut Store, name: &str) -> i64 {
    store
        .register_repo(
            &std::path::Path::new("/srv/git").join(name),
            None,
            Registration::Seen,
        )
        .unwrap()
        .id
}

/// Record a run of `name`'s `ref_name`.
fn create(store: &mut Store, name: &str, ref_name: &str) -> quire_store::Result<Created> {
    let repo_id = repo(store, name);
    store.create_run(&new_run(repo_id, ref_name))
}

/// The plan of a run, as its executor reports it first.
fn run_started(at_ms: i64, jobs: &[&str]) -> Event {
    Event::RunStarted {
        at_ms,
        jobs: jobs.iter().map(|j| j.to_string()).collect(),
        allow_failure: Vec::new(),
    }
}

fn job_started(at_ms: i64, job: &str) -> Event {
    Event::JobStarted {
        at_ms,
        job: job.into(),
    }
}

fn step_started(at_ms: i64, job: &str, seq: i64, cmd: &str) -> Event {
    Event::StepStarted {
        at_ms,
        job: job.into(),
        seq,
        cmd: cmd.into(),
        log_at: None,
    }
}

fn step_finished(at_ms: i64, job: &str, seq: i64, exit_code: i64) -> Event {
    Event::StepFinished {
        at_ms,
        job: job.into(),
        seq,
        exit_code,
    }
}

fn job_finished(at_ms: i64, job: &str, state: JobState, exit_code: i64) -> Event {
    Event::JobFinished {
        at_ms,
        job: job.into(),
        state,
        exit_code: Some(exit_code),
    }
}

/// Now, for event times in tests that keep the store's own clock.
fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Every row of a run: the run, its jobs and their steps.
fn rows(store: &Store, run_id: &str) -> (Run, Vec<(quire_store::Job, Vec<quire_store::Step>)>) {
    let detail = store.run_detail(run_id).unwrap();
    let jobs = detail.jobs.into_iter().map(|j| (j.job, j.steps)).collect();
    (detail.run, jobs)
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&Home::at(dir.path())).unwrap()
}

fn worker(pid: u32) -> Worker {
    Worker {
        id: format!("worker-{pid}"),
        pid,
        lease: Duration::from_secs(30),
    }
}

/// A process table the test decides.
#[derive(Default)]
struct Pids(Mutex<HashSet<u32>>);

impl Liveness for Pids {
    fn is_alive(&self, pid: u32) -> bool {
        self.0.lock().unwrap().contains(&pid)
    }
}

fn all_runs(store: &Store) -> Vec<Run> {
    store
        .list_runs(&ListFilter {
            limit: usize::MAX >> 2,
            ..ListFilter::default()
        })
        .unwrap()
}

#[test]
fn a_new_run_supersedes_the_live_run_of_its_ref_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let first = create(&mut store, "app.git", "refs/heads/main").unwrap();
    let other = create(&mut store, "app.git", "refs/heads/dev").unwrap();
    let second = create(&mut store, "app.git", "refs/heads/main").unwrap();
    assert_eq!(second.superseded.as_deref(), Some(first.run.id.as_str()));
    assert_eq!(
        store.resolve_run(&first.run.id).unwrap().state,
        RunState::Superseded
    );
    assert_eq!(
        store.resolve_run(&other.run.id).unwrap().state,
        RunState::Pending
    );
    assert_eq!(second.run.state, RunState::Pending);
    assert!(
        second
            .run
            .traceparent
            .as_deref()
            .is_some_and(|t| t.starts_with("00-"))
    );
}

#[test]
fn a_superseded_run_is_never_overwritten_by_its_late_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let run = create(&mut store, "app.git", "refs/heads/main")
        .unwrap()
        .run;
    let claimed = store.claim_next(&worker(1), usize::MAX).unwrap().unwrap();
    assert_eq!(claimed.id, run.id);
    let at = now_ms();
    store
        .ingest(
            &run.id,
            &[
                run_started(at, &["build", "test"]),
                job_started(at, "build"),
                step_started(at, "build", 1, "make"),
            ],
        )
        .unwrap();

    create(&mut store, "app.git", "refs/heads/main").unwrap();
    let detail = store.run_detail(&run.id).unwrap();
    assert_eq!(detail.run.state, RunState::Superseded);
    assert_eq!(detail.jobs[0].job.state, JobState::Aborted);
    assert_eq!(detail.jobs[1].job.state, JobState::Skipped);
    assert_eq!(
        detail.jobs[1].job.skip_reason.as_deref(),
        Some("run superseded")
    );
    assert_eq!(detail.jobs[0].steps[0].exit_code, Some(-1));
    assert!(detail.jobs[0].steps[0].finished_at_ms.is_some());
    let superseded = rows(&store, &run.id);

    // The worker did not notice: its late events and its outcome change
    // nothing.
    let at = now_ms() + 1_000;
    store
        .ingest(
            &run.id,
            &[
                step_finished(at, "build", 1, 0),
                job_finished(at, "build", JobState::Complete, 0),
                job_started(at, "test"),
                step_started(at, "test", 1, "make test"),
                Event::RunFinished {
                    at_ms: at,
                    state: RunState::Complete,
                    failure_kind: None,
                },
            ],
        )
        .unwrap();
    assert_eq!(
        store.finish(&run.id, &Outcome::Complete).unwrap(),
        Applied::Unchanged {
            state: RunState::Superseded
        }
    );
    assert!(
        !store.renew_lease(&run.id, &worker(1)).unwrap(),
        "the worker must learn to stop"
    );
    assert_eq!(rows(&store, &run.id), superseded);
}

#[test]
fn an_event_that_would_take_an_edge_outside_the_machine_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let run = create(&mut store, "app.git", "refs/heads/main")
        .unwrap()
        .run;
    let at = now_ms();
    // A pending run cannot complete, nor fail with pipeline-failure, and
    // gets no jobs: only a run a worker holds is planned.
    assert!(matches!(
        store.finish(&run.id, &Outcome::Complete),
        Err(Error::IllegalRunEdge {
            from: RunState::Pending,
            to: RunState::Complete,
            ..
        })
    ));
    let failure = Outcome::Failed {
        kind: FailureKind::PipelineFailure,
        detail: None,
    };
    assert!(matches!(
        store.finish(&run.id, &failure),
        Err(Error::IllegalRunEdge { .. })
    ));
    // The executor's run_finished is its account only: it ends no run.
    let finished = Event::RunFinished {
        at_ms: at,
        state: RunState::Complete,
        failure_kind: None,
    };
    store
        .ingest(&run.id, std::slice::from_ref(&finished))
        .unwrap();
    assert_eq!(store.resolve_run(&run.id).unwrap().state, RunState::Pending);
    store.ingest(&run.id, &[run_started(at, &["a"])]).unwrap();
    assert!(store.run_detail(&run.id).unwrap().jobs.is_empty());
    assert_eq!(store.resolve_run(&run.id).unwrap().state, RunState::Pending);

    store.claim(&run.id, &worker(1)).unwrap();
    store
        .ingest(&run.id, &[run_started(at, &["a", "b"])])
        .unwrap();
    let planned = rows(&store, &run.id);
    assert_eq!(
        planned
            .1
            .iter()
            .map(|(j, _)| (j.id.as_str(), j.state))
            .collect::<Vec<_>>(),
        [("a", JobState::Pending), ("b", JobState::Pending)]
    );
    // A job that never started cannot finish; one that is not planned
    // cannot start; and a batch holding a refused event is refused whole:
    // the legal events before it are not kept either.
    assert!(matches!(
        store.ingest(&run.id, &[job_finished(at, "a", JobState::Complete, 0)]),
        Err(Error::IllegalJobEdge {
            from: JobState::Pending,
            to: JobState::Complete,
            ..
        })
    ));
    assert!(matches!(
        store.ingest(&run.id, &[job_started(at, "nope")]),
        Err(Error::UnknownJob { .. })
    ));
    let skipped = Event::JobSkipped {
        at_ms: at,
        job: "a".into(),
        reason: "changed its mind".into(),
    };
    assert!(matches!(
        store.ingest(
            &run.id,
            &[
                job_started(at, "a"),
                step_started(at, "a", 1, "make"),
                job_started(at, "b"),
                skipped,
            ]
        ),
        Err(Error::IllegalJobEdge {
            from: JobState::Active,
            to: JobState::Skipped,
            ..
        })
    ));
    assert_eq!(rows(&store, &run.id), planned);

    assert!(matches!(
        store.cancel("no-such-run"),
        Err(Error::UnknownRun(_))
    ));
    // A pending run can be cancelled; then nothing moves it.
    let other = create(&mut store, "app.git", "refs/heads/dev").unwrap().run;
    assert!(store.cancel(&other.id).unwrap().changed());
    let cancelled = store.resolve_run(&other.id).unwrap();
    assert_eq!(
        (cancelled.state, cancelled.failure_kind),
        (RunState::Failed, Some(FailureKind::Cancelled))
    );
    assert!(!store.claim(&other.id, &worker(2)).unwrap().changed());
    store.ingest(&other.id, &[finished]).unwrap();
    assert_eq!(store.resolve_run(&other.id).unwrap(), cancelled);
}

#[test]
fn bad_runs_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let repo = repo(&mut store, "app.git");
    for (ref_name, sha) in [
        ("main", SHA),
        ("refs/", SHA),
        ("refs/heads/main", "abc"),
        (
            "refs/heads/main",
            "0123456789ABCDEF0123456789ABCDEF01234567",
        ),
    ] {
        let result = store.create_run(&NewRun {
            repo_id: repo,
            ref_name,
            sha,
            pushed_at_ms: None,
            previous_sha: None,
            invalid: None,
            ..Default::default()
        });
        assert!(
            matches!(result, Err(Error::InvalidRun(_))),
            "{ref_name} {sha}"
        );
    }
    assert!(all_runs(&store).is_empty());
}

#[test]
fn steps_recorded_twice_keep_their_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let run = create(&mut store, "app.git", "refs/heads/main")
        .unwrap()
        .run;
    store.claim(&run.id, &worker(1)).unwrap();
    let first = now_ms();
    store
        .ingest(
            &run.id,
            &[run_started(first, &["build"]), job_started(first, "build")],
        )
        .unwrap();
    // Once event by event, as a worker ingests live; then again in one
    // batch, later, with other commands and exit codes, as a re-ingest of
    // a garbled stream would.
    for seq in 1..=300 {
        store
            .ingest(
                &run.id,
                &[
                    step_started(first, "build", seq, &format!("echo {seq}")),
                    step_finished(first + seq, "build", seq, i64::from(seq == 300)),
                ],
            )
            .unwrap();
    }
    let once = rows(&store, &run.id);
    let later = first + 60_000;
    let again: Vec<Event> = (1..=300)
        .flat_map(|seq| {
            [
                step_started(later, "build", seq, "echo again"),
                step_finished(later, "build", seq, 7),
            ]
        })
        .collect();
    store.ingest(&run.id, &again).unwrap();
    assert_eq!(rows(&store, &run.id), once);

    let steps = &once.1[0].1;
    assert_eq!(steps.len(), 300);
    assert!(steps.iter().enumerate().all(|(i, s)| {
        let seq = i as i64 + 1;
        s.seq == seq
            && s.cmd == format!("echo {seq}")
            && s.started_at_ms == first
            && s.finished_at_ms == Some(first + seq)
    }));
    assert_eq!(steps[299].exit_code, Some(1));
}

#[test]
fn only_the_worker_holding_a_run_records_how_it_contains_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let run = create(&mut store, "app.git", "refs/heads/main")
        .unwrap()
        .run;
    assert_eq!((run.containment, run.cgroup), (None, None));
    let (holder, other) = (worker(100), worker(101));
    // Not before it is claimed, nor by another worker.
    assert!(
        !store
            .record_containment(&run.id, &holder, Containment::Subreaper, None)
            .unwrap()
    );
    store.claim(&run.id, &holder).unwrap();
    assert!(
        !store
            .record_containment(&run.id, &other, Containment::Subreaper, None)
            .unwrap()
    );
    let dir_of_run = format!("/sys/fs/cgroup/quire-{}", run.id);
    assert!(
        store
            .record_containment(&run.id, &holder, Containment::Cgroup, Some(&dir_of_run))
            .unwrap()
    );
    let recorded = store.resolve_run(&run.id).unwrap();
    assert_eq!(
        (recorded.containment, recorded.cgroup.as_deref()),
        (Some(Containment::Cgroup), Some(dir_of_run.as_str()))
    );
    // A cgroup belongs only with cgroup containment (a CHECK).
    assert!(
        store
            .record_containment(&run.id, &holder, Containment::Subreaper, Some("/x"))
            .is_err()
    );
    assert_eq!(store.resolve_run(&run.id).unwrap(), recorded);
}

#[test]
fn reconcile_orphans_runs_whose_worker_is_gone_and_leaves_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(1_000_000));
    let clock_now = now.clone();
    let mut store = Store::open_with_clock(
        &Home::at(dir.path()),
        Arc::new(move || clock_now.load(Ordering::SeqCst)),
    )
    .unwrap();
    let pids = Pids::default();
    pids.0.lock().unwrap().extend([1, 2]);
    let mut ids = Vec::new();
    for (n, w) in [1, 2, 3].into_iter().enumerate() {
        let run = create(&mut store, "app.git", &format!("refs/heads/b{n}"))
            .unwrap()
            .run;
        store.claim(&run.id, &worker(w)).unwrap();
        let at = now.load(Ordering::SeqCst);
        store
            .ingest(
                &run.id,
                &[
                    run_started(at, &["build", "test"]),
                    job_started(at, "build"),
                ],
            )
            .unwrap();
        ids.push(run.id);
    }
    let pending = create(&mut store, "app.git", "refs/heads/p").unwrap().run;

    // Worker 3's process is gone.
    let report = store.reconcile(&pids, false).unwrap();
    assert_eq!(report.orphaned.len(), 1);
    assert_eq!(report.orphaned[0].run, ids[2]);
    assert!(report.orphaned[0].reason.contains("process 3 is gone"));
    assert_eq!(report.live, vec![ids[0].clone(), ids[1].clone()]);
    assert_eq!(report.awaiting_worker, vec![pending.id.clone()]);
    let orphan = store.run_detail(&ids[2]).unwrap();
    assert_eq!(
        (orphan.run.state, orphan.run.failure_kind),
        (RunState::Failed, Some(FailureKind::Orphaned))
    );
    assert_eq!(orphan.jobs[0].job.state, JobState::Aborted);
    assert_eq!(orphan.jobs[1].job.state, JobState::Skipped);

    // Worker 1 renews its lease; worker 2 is alive but stuck past its lease.
    now.fetch_add(20_000, Ordering::SeqCst);
    assert!(store.renew_lease(&ids[0], &worker(1)).unwrap());
    now.fetch_add(20_000, Ordering::SeqCst);
    let dry = store.reconcile(&pids, true).unwrap();
    assert_eq!(
        dry.orphaned.iter().map(|o| &o.run).collect::<Vec<_>>(),
        vec![&ids[1]]
    );
    assert_eq!(
        store.resolve_run(&ids[1]).unwrap().state,
        RunState::Active,
        "a dry run changes nothing"
    );
    let report = store.reconcile(&pids, false).unwrap();
    assert_eq!(report.orphaned.len(), 1);
    assert!(
        report.orphaned[0]
            .reason
            .contains("stopped renewing its lease"),
        "{}",
        report.orphaned[0].reason
    );
    assert_eq!(store.resolve_run(&ids[0]).unwrap().state, RunState::Active);
    assert_eq!(store.resolve_run(&ids[1]).unwrap().state, RunState::Failed);
}

#[test]
fn concurrent_writers_with_their_own_connections_leave_one_live_run_and_lose_none() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("fresh"));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let home = home.clone();
            std::thread::spawn(move || {
                // Every thread opens (and so may migrate) the fresh store.
                let mut store = Store::open(&home).expect("open");
                for _ in 0..25 {
                    create(&mut store, "app.git", "refs/heads/main").expect("create");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no writer may fail");
    }
    let store = Store::open(&home).unwrap();
    let runs = all_runs(&store);
    assert_eq!(runs.len(), 200);
    assert_eq!(runs.iter().filter(|r| r.state.is_live()).count(), 1);
    assert_eq!(
        runs.iter()
            .filter(|r| r.state == RunState::Superseded)
            .count(),
        199
    );
    // The live one is the newest.
    assert_eq!(runs[0].state, RunState::Pending);
}

/// Claim and complete the next run with no cap; the repository it is of.
fn claim_and_finish(store: &mut Store, max_per_repo: usize) -> Option<String> {
    let run = store.claim_next(&worker(7), max_per_repo).unwrap()?;
    store.finish(&run.id, &Outcome::Complete).unwrap();
    Some(run.repo)
}

#[test]
fn claims_go_round_robin_over_repositories_oldest_first_within_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    // A floods the queue first; B and C push afterwards.
    let flood: Vec<String> = (0..50)
        .map(|n| {
            create(&mut store, "a.git", &format!("refs/heads/f{n}"))
                .unwrap()
                .run
                .id
        })
        .collect();
    create(&mut store, "b.git", "refs/heads/main").unwrap();
    create(&mut store, "c.git", "refs/heads/one").unwrap();
    create(&mut store, "c.git", "refs/heads/two").unwrap();
    let first = store.claim_next(&worker(7), usize::MAX).unwrap().unwrap();
    assert_eq!(first.id, flood[0], "oldest first within a repository");
    store.finish(&first.id, &Outcome::Complete).unwrap();
    let order: Vec<String> = (0..5)
        .map_while(|_| claim_and_finish(&mut store, usize::MAX))
        .collect();
    assert_eq!(
        order,
        ["b.git", "c.git", "a.git", "c.git", "a.git"],
        "each repository with pending runs takes its turn; the flood waits"
    );
    // Within A, its runs still go oldest first.
    let next = store.claim_next(&worker(7), usize::MAX).unwrap().unwrap();
    assert_eq!(next.id, flood[3]);
}

#[test]
fn a_repository_at_its_cap_is_passed_over_and_never_exceeds_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    for n in 0..5 {
        create(&mut store, "a.git", &format!("refs/heads/f{n}")).unwrap();
    }
    // A alone: it holds at most 2 active runs, however many workers ask.
    let a1 = store.claim_next(&worker(1), 2).unwrap().unwrap();
    let a2 = store.claim_next(&worker(2), 2).unwrap().unwrap();
    assert_eq!((a1.repo.as_str(), a2.repo.as_str()), ("a.git", "a.git"));
    assert!(store.claim_next(&worker(3), 2).unwrap().is_none());
    assert!(!store.has_claimable(2).unwrap());
    assert!(store.has_claimable(3).unwrap());
    // B's run is claimable at once, though A's are older.
    create(&mut store, "b.git", "refs/heads/main").unwrap();
    assert!(store.has_claimable(2).unwrap());
    let b = store.claim_next(&worker(3), 2).unwrap().unwrap();
    assert_eq!(b.repo, "b.git");
    // Once one of A's runs ends, A may take another.
    store.finish(&a1.id, &Outcome::Complete).unwrap();
    let a3 = store.claim_next(&worker(1), 2).unwrap().unwrap();
    assert_eq!(a3.repo, "a.git");
}

#[test]
fn the_claim_searches_indexes_and_scans_no_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let plan: Vec<String> = store
        .connection()
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            quire_store::lifecycle::CLAIM_ORDER_SQL
        ))
        .unwrap()
        .query_map([2], |row| row.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("runs_pending_repo") && plan.contains("runs_active_repo"),
        "{plan}"
    );
    for line in plan.lines() {
        assert!(
            !(line.contains("SCAN r") || line.contains("SCAN a")),
            "a full scan of runs: {plan}"
        );
    }
}

#[test]
fn concurrent_workers_claim_each_run_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let mut store = Store::open(&home).unwrap();
    for n in 0..60 {
        create(&mut store, "app.git", &format!("refs/heads/b{n}")).unwrap();
    }
    let threads: Vec<_> = (0..4u32)
        .map(|w| {
            let home = home.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&home).unwrap();
                let mut mine = Vec::new();
                while let Some(run) = store.claim_next(&worker(w + 10), usize::MAX).unwrap() {
                    assert_eq!(run.worker.as_ref().unwrap().pid, w + 10);
                    mine.push(run.id);
                }
                mine
            })
        })
        .collect();
    let mut claimed: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(claimed.len(), 60);
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), 60, "a run was claimed twice");
}

/// A run of a fresh ref of `app.git` in `from` (pending, or active held by
/// worker 100).
fn run_in(store: &mut Store, from: RunState, n: &mut usize) -> String {
    *n += 1;
    let id = create(store, "app.git", &format!("refs/heads/edge-{n}"))
        .unwrap()
        .run
        .id;
    if from == RunState::Active {
        store.claim(&id, &worker(100)).unwrap();
    }
    assert_eq!(store.resolve_run(&id).unwrap().state, from);
    id
}

#[test]
fn every_edge_of_the_tables_is_taken_by_its_code() {
    use quire_store::lifecycle::{JOB_EDGES, RUN_EDGES, job_edge, run_edge};
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let mut n = 0;
    let nobody = Pids::default();
    for edge in RUN_EDGES {
        for &from in edge.from {
            let (id, by) = match (edge.to, edge.kind) {
                (RunState::Active, None) => {
                    let id = run_in(&mut store, from, &mut n);
                    store.claim(&id, &worker(101)).unwrap();
                    (id, "claim")
                }
                (RunState::Failed, Some(FailureKind::PipelineInvalid))
                    if from == RunState::Pending =>
                {
                    // The hook records an invalid pipeline's run failed.
                    n += 1;
                    let repo_id = repo(&mut store, "app.git");
                    let ref_name = format!("refs/heads/edge-{n}");
                    let created = store
                        .create_run(&NewRun {
                            invalid: Some("1:1: bad"),
                            ..new_run(repo_id, &ref_name)
                        })
                        .unwrap();
                    (created.run.id, "create_run (invalid)")
                }
                (RunState::Failed, Some(FailureKind::ConfigInvalid)) => {
                    n += 1;
                    let repo_id = repo(&mut store, "app.git");
                    let ref_name = format!("refs/heads/edge-{n}");
                    let created = store
                        .create_run(&NewRun {
                            config_invalid: Some("config.toml: bad"),
                            ..new_run(repo_id, &ref_name)
                        })
                        .unwrap();
                    (created.run.id, "create_run (config_invalid)")
                }
                (RunState::Failed, Some(FailureKind::Orphaned)) => {
                    let id = run_in(&mut store, from, &mut n);
                    store.reconcile(&nobody, false).unwrap();
                    (id, "reconcile")
                }
                (RunState::Failed, Some(FailureKind::Cancelled)) => {
                    let id = run_in(&mut store, from, &mut n);
                    store.cancel(&id).unwrap();
                    (id, "cancel")
                }
                (RunState::Superseded, None) => {
                    let id = run_in(&mut store, from, &mut n);
                    let run = store.resolve_run(&id).unwrap();
                    let repo_id = repo(&mut store, "app.git");
                    store.supersede_ref(repo_id, &run.ref_name).unwrap();
                    assert_eq!(store.resolve_run(&id).unwrap().state, edge.to);
                    // And by a newer run of the ref.
                    let id = run_in(&mut store, from, &mut n);
                    let run = store.resolve_run(&id).unwrap();
                    let newer = store.create_run(&new_run(repo_id, &run.ref_name)).unwrap();
                    assert_eq!(newer.superseded.as_deref(), Some(id.as_str()));
                    (id, "create_run (newer) and supersede_ref")
                }
                (RunState::Complete, None) => {
                    let id = run_in(&mut store, from, &mut n);
                    store.finish(&id, &Outcome::Complete).unwrap();
                    (id, "finish")
                }
                (RunState::Failed, Some(kind)) => {
                    let id = run_in(&mut store, from, &mut n);
                    store
                        .finish(&id, &Outcome::Failed { kind, detail: None })
                        .unwrap();
                    (id, "finish")
                }
                other => panic!("no test takes the edge {edge:?} ({other:?})"),
            };
            let run = store.resolve_run(&id).unwrap();
            assert_eq!(
                (run.state, run.failure_kind),
                (edge.to, edge.kind),
                "{from} -> {edge:?} by {by}"
            );
        }
    }

    // Every edge the tables lack is refused; a pending run, in particular,
    // is never failed as orphaned: reconcile leaves it waiting.
    for from in [RunState::Pending, RunState::Active] {
        for kind in FailureKind::ALL {
            if run_edge(from, RunState::Failed, Some(*kind)).is_some() {
                continue;
            }
            let id = run_in(&mut store, from, &mut n);
            let refused = store.finish(
                &id,
                &Outcome::Failed {
                    kind: *kind,
                    detail: None,
                },
            );
            assert!(
                matches!(refused, Err(Error::IllegalRunEdge { .. })),
                "{from} -> failed ({kind}): {refused:?}"
            );
            assert_eq!(store.resolve_run(&id).unwrap().state, from);
        }
    }
    let pending = run_in(&mut store, RunState::Pending, &mut n);
    store.reconcile(&nobody, false).unwrap();
    assert_eq!(
        store.resolve_run(&pending).unwrap().state,
        RunState::Pending,
        "reconcile fails no pending run"
    );
    let pending = run_in(&mut store, RunState::Pending, &mut n);
    let refused = store.finish(&pending, &Outcome::Complete);
    assert!(
        matches!(refused, Err(Error::IllegalRunEdge { .. })),
        "pending -> complete: {refused:?}"
    );

    // Jobs: each edge by the event that takes it, and the run's end
    // closing what is open (close_open_jobs).
    let at = now_ms();
    for edge in JOB_EDGES {
        let id = run_in(&mut store, RunState::Active, &mut n);
        store.ingest(&id, &[run_started(at, &["j"])]).unwrap();
        if edge.from == JobState::Active {
            store.ingest(&id, &[job_started(at, "j")]).unwrap();
        }
        let event = match edge.to {
            JobState::Active => job_started(at, "j"),
            JobState::Skipped => Event::JobSkipped {
                at_ms: at,
                job: "j".into(),
                reason: "needs x".into(),
            },
            state => job_finished(at, "j", state, 1),
        };
        store.ingest(&id, &[event]).unwrap();
        let jobs = store.run_detail(&id).unwrap().jobs;
        assert_eq!(jobs[0].job.state, edge.to, "{edge:?}");
    }
    let id = run_in(&mut store, RunState::Active, &mut n);
    store
        .ingest(
            &id,
            &[
                run_started(at, &["running", "waiting"]),
                job_started(at, "running"),
            ],
        )
        .unwrap();
    store.cancel(&id).unwrap();
    let states: Vec<JobState> = store
        .run_detail(&id)
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.job.state)
        .collect();
    assert_eq!(states, [JobState::Aborted, JobState::Skipped]);
    assert!(job_edge(JobState::Active, JobState::Aborted).is_some());
    assert!(job_edge(JobState::Pending, JobState::Skipped).is_some());
    // A job edge the table lacks is refused.
    let id = run_in(&mut store, RunState::Active, &mut n);
    store.ingest(&id, &[run_started(at, &["j"])]).unwrap();
    let refused = store.ingest(&id, &[job_finished(at, "j", JobState::Complete, 0)]);
    assert!(
        matches!(refused, Err(Error::IllegalJobEdge { .. })),
        "pending -> complete: {refused:?}"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        repo: u8,
        branch: u8,
    },
    ClaimNext {
        worker: u8,
    },
    Complete {
        pick: u8,
    },
    Fail {
        pick: u8,
        kind: u8,
    },
    /// A newer push of the picked run's ref.
    Supersede {
        pick: u8,
    },
    SupersedeRef {
        repo: u8,
        branch: u8,
    },
    Cancel {
        pick: u8,
    },
    Renew {
        pick: u8,
        worker: u8,
    },
    /// `len` consecutive events of [`executor_events`] from `first`, for
    /// the picked run, stamped `skew_ms` from now.
    Ingest {
        pick: u8,
        first: u8,
        len: u8,
        skew_ms: i64,
    },
    Reconcile {
        dry_run: bool,
    },
    KillWorker {
        worker: u8,
    },
    Clock {
        delta_ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2u8, 0..3u8).prop_map(|(repo, branch)| Op::Create { repo, branch }),
        3 => (0..3u8).prop_map(|worker| Op::ClaimNext { worker }),
        2 => any::<u8>().prop_map(|pick| Op::Complete { pick }),
        2 => (any::<u8>(), 0..5u8).prop_map(|(pick, kind)| Op::Fail { pick, kind }),
        1 => any::<u8>().prop_map(|pick| Op::Supersede { pick }),
        1 => (0..2u8, 0..3u8).prop_map(|(repo, branch)| Op::SupersedeRef { repo, branch }),
        1 => any::<u8>().prop_map(|pick| Op::Cancel { pick }),
        2 => (any::<u8>(), 0..3u8).prop_map(|(pick, worker)| Op::Renew { pick, worker }),
        4 => (any::<u8>(), 0..EVENTS, 1..4u8, -5_000..5_000i64)
            .prop_map(|(pick, first, len, skew_ms)| Op::Ingest { pick, first, len, skew_ms }),
        2 => any::<bool>().prop_map(|dry_run| Op::Reconcile { dry_run }),
        1 => (0..3u8).prop_map(|worker| Op::KillWorker { worker }),
        2 => (-5_000..60_000i64).prop_map(|delta_ms| Op::Clock { delta_ms }),
    ]
}

const EVENTS: u8 = 12;

/// What an executor may report of a run with jobs `build` and `later`, in
/// an order it could; random slices of it arrive in random order.
fn executor_events(at_ms: i64) -> [Event; EVENTS as usize] {
    [
        run_started(at_ms, &["build", "later"]),
        job_started(at_ms, "build"),
        step_started(at_ms, "build", 1, "make"),
        step_finished(at_ms, "build", 1, 0),
        job_finished(at_ms, "build", JobState::Complete, 0),
        Event::JobSkipped {
            at_ms,
            job: "later".into(),
            reason: "needs build".into(),
        },
        job_started(at_ms, "later"),
        step_started(at_ms, "later", 1, "make test"),
        job_finished(at_ms, "later", JobState::Failed, 2),
        job_finished(at_ms, "build", JobState::Aborted, 143),
        Event::RunFinished {
            at_ms,
            state: RunState::Complete,
            failure_kind: None,
        },
        Event::RunFinished {
            at_ms,
            state: RunState::Failed,
            failure_kind: Some(FailureKind::PipelineFailure),
        },
    ]
}

/// Errors a random sequence may legitimately provoke: edges the machine does
/// not have, jobs not planned yet. Anything else is a bug.
fn expected_refusal(result: Result<impl std::fmt::Debug, Error>) -> Result<(), TestCaseError> {
    match result {
        Ok(_)
        | Err(Error::IllegalRunEdge { .. })
        | Err(Error::IllegalJobEdge { .. })
        | Err(Error::RunNotActive { .. })
        | Err(Error::UnknownJob { .. }) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!("unexpected error: {e}"))),
    }
}

fn check_invariants(
    store: &Store,
    before: &HashMap<String, Run>,
) -> Result<HashMap<String, Run>, TestCaseError> {
    let runs = all_runs(store);
    let mut live = HashSet::new();
    for run in &runs {
        if run.state.is_live() {
            prop_assert!(
                live.insert((run.repo.clone(), run.ref_name.clone())),
                "two live runs of {} {}",
                run.repo,
                run.ref_name
            );
        }
        prop_assert!(run.pushed_at_ms <= run.queued_at_ms);
        if let Some(started) = run.started_at_ms {
            prop_assert!(
                run.queued_at_ms <= started,
                "started before queued: {run:?}"
            );
        }
        if let Some(finished) = run.finished_at_ms {
            prop_assert!(
                run.started_at_ms.unwrap_or(run.queued_at_ms) <= finished,
                "finished before start: {run:?}"
            );
        }
        if let Some(old) = before.get(&run.id) {
            if old.state.is_terminal() {
                prop_assert_eq!(old, run, "a terminal run changed");
            }
            if old.started_at_ms.is_some() {
                prop_assert_eq!(
                    old.started_at_ms,
                    run.started_at_ms,
                    "started_at stamped twice"
                );
            }
        }
        for job in store.run_detail(&run.id).unwrap().jobs {
            if run.state.is_terminal() {
                prop_assert!(
                    job.job.state.is_terminal(),
                    "run {} is {} but job {} is {}",
                    run.id,
                    run.state,
                    job.job.id,
                    job.job.state
                );
                prop_assert!(
                    job.steps.iter().all(|s| s.exit_code.is_some()),
                    "run {} is {} but a step of job {} runs",
                    run.id,
                    run.state,
                    job.job.id
                );
            }
            if let Some(started) = job.job.started_at_ms {
                prop_assert!(
                    run.started_at_ms
                        .is_some_and(|run_started| run_started <= started),
                    "job started before its run: {run:?} {job:?}"
                );
            }
            if let (Some(started), Some(finished)) = (job.job.started_at_ms, job.job.finished_at_ms)
            {
                prop_assert!(
                    started <= finished,
                    "job finished before it started: {job:?}"
                );
            }
            for step in &job.steps {
                prop_assert!(
                    step.finished_at_ms
                        .is_none_or(|finished| step.started_at_ms <= finished),
                    "step finished before it started: {step:?}"
                );
            }
        }
    }
    prop_assert!(
        before.keys().all(|id| runs.iter().any(|r| &r.id == id)),
        "a run was lost"
    );
    Ok(runs.into_iter().map(|r| (r.id.clone(), r)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_keep_the_invariants(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(1_700_000_000_000));
        let clock_now = now.clone();
        let mut store = Store::open_with_clock(
            &Home::at(dir.path()),
            Arc::new(move || clock_now.load(Ordering::SeqCst)),
        ).unwrap();
        let pids = Pids::default();
        pids.0.lock().unwrap().extend([100, 101, 102]);
        // Each run's id, repository and ref.
        let mut ids: Vec<(String, String, String)> = Vec::new();
        let mut seen = HashMap::new();
        let pick = |ids: &Vec<(String, String, String)>, n: u8| {
            ids.get(usize::from(n) % ids.len().max(1)).map(|(id, _, _)| id.clone())
        };

        for op in ops {
            match op {
                Op::Create { repo, branch } => {
                    let repo = format!("r{repo}.git");
                    let ref_name = format!("refs/heads/b{branch}");
                    let id = create(&mut store, &repo, &ref_name).unwrap().run.id;
                    ids.push((id, repo, ref_name));
                }
                Op::ClaimNext { worker: w } => { store.claim_next(&worker(100 + u32::from(w)), 2).unwrap(); }
                Op::Complete { pick: n } => if let Some(id) = pick(&ids, n) {
                    expected_refusal(store.finish(&id, &Outcome::Complete))?;
                },
                Op::Fail { pick: n, kind } => if let Some(id) = pick(&ids, n) {
                    let kind = FailureKind::ALL[usize::from(kind)];
                    expected_refusal(store.finish(&id, &Outcome::Failed { kind, detail: Some("why".into()) }))?;
                },
                Op::Supersede { pick: n } => if !ids.is_empty() {
                    let (_, repo, ref_name) = &ids[usize::from(n) % ids.len()];
                    let repo_id = self::repo(&mut store, repo);
                    store.supersede_ref(repo_id, ref_name).unwrap();
                },
                Op::SupersedeRef { repo, branch } => {
                    let repo_id = self::repo(&mut store, &format!("r{repo}.git"));
                    store.supersede_ref(repo_id, &format!("refs/heads/b{branch}")).unwrap();
                }
                Op::Cancel { pick: n } => if let Some(id) = pick(&ids, n) {
                    store.cancel(&id).unwrap();
                },
                Op::Renew { pick: n, worker: w } => if let Some(id) = pick(&ids, n) {
                    store.renew_lease(&id, &worker(100 + u32::from(w))).unwrap();
                },
                Op::Ingest { pick: n, first, len, skew_ms } => if let Some(id) = pick(&ids, n) {
                    let at = now.load(Ordering::SeqCst) + skew_ms;
                    let first = usize::from(first);
                    let last = (first + usize::from(len)).min(usize::from(EVENTS));
                    let events = &executor_events(at)[first..last];
                    let before = rows(&store, &id);
                    let result = store.ingest(&id, events);
                    if result.is_err() {
                        prop_assert_eq!(&rows(&store, &id), &before, "a refused ingest changed rows: {:?}", events);
                    }
                    expected_refusal(result)?;
                },
                Op::Reconcile { dry_run } => {
                    let at = now.load(Ordering::SeqCst);
                    let protected: Vec<Run> = all_runs(&store).into_iter()
                        .filter(|r| r.state == RunState::Active)
                        .filter(|r| r.worker.as_ref().is_some_and(|w| pids.is_alive(w.pid) && w.lease_expires_at_ms >= at))
                        .collect();
                    store.reconcile(&pids, dry_run).unwrap();
                    for run in protected {
                        prop_assert_eq!(store.resolve_run(&run.id).unwrap(), run, "reconcile touched a live run");
                    }
                }
                Op::KillWorker { worker: w } => { pids.0.lock().unwrap().remove(&(100 + u32::from(w))); }
                Op::Clock { delta_ms } => { now.fetch_add(delta_ms, Ordering::SeqCst); }
            }
            seen = check_invariants(&store, &seen)?;
        }
    }
}

#[test]
fn many_connections_opening_a_fresh_store_at_once_all_succeed() {
    // The race to switch a new store to WAL and create its schema lost
    // about one round in ten before opening retried on "busy".
    for round in 0..60 {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("fresh"));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let home = home.clone();
                std::thread::spawn(move || Store::open(&home).map(drop))
            })
            .collect();
        for t in threads {
            if let Err(e) = t.join().unwrap() {
                panic!("round {round}: {e}");
            }
        }
    }
}
