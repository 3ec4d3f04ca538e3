//! Events from a real executor run, ingested into a real store: twice gives
//! the same rows, a torn last line is ignored, a stream cut off mid-job
//! leaves rows consistent with what happened, and what a real worker
//! ingested live is what its events.jsonl gives.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quire_exec::events::{JsonlFile, Recorded};
use quire_exec::exec::{Cancel, Executor, RunContext};
use quire_model::events::{Event, parse_stream};
use quire_pipeline::Pipeline;
use quire_store::lifecycle::{NewRun, Worker};
use quire_store::query::RunDetail;
use quire_store::repos::Registration;
use quire_store::{Home, JobState, RunState, Store};

use quire_testkit::{Env, git};

const PIPELINE: &str = r#"
[jobs.build]
inputs = ["quire/push"]
sh = ["echo build", "echo more"]
[jobs.test]
inputs = ["build"]
sh = ["echo test", "exit 4"]
[jobs.deploy]
inputs = ["test"]
sh = "echo deploy"
"#;

/// (job, state, exit code, [(seq, cmd, exit code)]).
type JobShape = (
    String,
    JobState,
    Option<i64>,
    Vec<(i64, String, Option<i64>)>,
);

/// Ingest a run's events.jsonl as reconcile's recovery reads it: parse, then
/// ingest.
fn ingest_file(store: &mut Store, run: &str, path: &std::path::Path) -> quire_store::Result<usize> {
    let bytes = std::fs::read(path).unwrap();
    let events = parse_stream(&bytes).map_err(|e| quire_store::Error::BadValue(e.to_string()))?;
    store.ingest(run, &events)?;
    Ok(events.len())
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    repo_id: i64,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&Home::at(dir.path().join("home"))).unwrap();
        let repo_id = store
            .register_repo(Path::new("/srv/git/app.git"), None, Registration::Seen)
            .unwrap()
            .id;
        Fixture {
            dir,
            store,
            repo_id,
        }
    }

    /// A claimed run of `ref_name`.
    fn claimed_run(&mut self, ref_name: &str) -> String {
        claimed_run(
            &mut self.store,
            self.repo_id,
            ref_name,
            "0123456789abcdef0123456789abcdef01234567",
        )
    }

    /// Execute PIPELINE, writing events.jsonl; returns its path and events.
    fn execute(&self, run_id: &str) -> (std::path::PathBuf, Vec<Event>) {
        let run_dir = self.dir.path().join(run_id);
        let workspace = run_dir.join("workspace");
        std::fs::create_dir_all(&workspace).unwrap();
        let ctx = RunContext {
            run_id: run_id.into(),
            repo: "app.git".into(),
            ref_name: "refs/heads/main".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            previous_sha: None,
            traceparent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01".into(),
            workspace,
            logs_dir: run_dir.join("logs"),
            secrets: vec![],
            cache: None,
            containment: None,
            step_workspace: None,
            step_home: None,
            step_tmpdir: None,
            step_env: None,
            sandbox: None,
            network: None,
            remote: None,
        };
        let path = run_dir.join("events.jsonl");
        let mut sink = (JsonlFile::create(&path).unwrap(), Recorded::default());
        Executor::default()
            .run(
                &Pipeline::parse(PIPELINE).unwrap(),
                &ctx,
                &mut sink,
                &Cancel::default(),
            )
            .unwrap();
        (path, sink.1.0)
    }

    fn detail(&self, run_id: &str) -> RunDetail {
        self.store.run_detail(run_id).unwrap()
    }
}

/// Record a run of (`repo_id`, `ref_name`) at `sha` and claim it.
fn claimed_run(store: &mut Store, repo_id: i64, ref_name: &str, sha: &str) -> String {
    let run = store
        .create_run(&NewRun {
            repo_id,
            ref_name,
            sha,
            pushed_at_ms: None,
            previous_sha: None,
            invalid: None,
            ..Default::default()
        })
        .unwrap()
        .run;
    let worker = Worker {
        id: "w".into(),
        pid: std::process::id(),
        lease: Duration::from_secs(60),
    };
    store.claim(&run.id, &worker).unwrap();
    run.id
}

fn shape(detail: &RunDetail) -> Vec<JobShape> {
    detail
        .jobs
        .iter()
        .map(|j| {
            let steps = j
                .steps
                .iter()
                .map(|s| (s.seq, s.cmd.clone(), s.exit_code))
                .collect();
            (j.job.id.clone(), j.job.state, j.job.exit_code, steps)
        })
        .collect()
}

#[test]
fn ingesting_the_same_stream_twice_gives_the_same_rows() {
    let mut f = Fixture::new();
    let run = f.claimed_run("refs/heads/main");
    let (path, events) = f.execute(&run);
    assert_eq!(
        parse_stream(&std::fs::read(&path).unwrap()).unwrap(),
        events
    );

    assert_eq!(
        ingest_file(&mut f.store, &run, &path).unwrap(),
        events.len()
    );
    let once = f.detail(&run);
    ingest_file(&mut f.store, &run, &path).unwrap();
    let twice = f.detail(&run);
    assert_eq!(once.run, twice.run);
    assert_eq!(
        once.jobs.iter().map(|j| &j.job).collect::<Vec<_>>(),
        twice.jobs.iter().map(|j| &j.job).collect::<Vec<_>>()
    );
    assert_eq!(
        once.jobs.iter().map(|j| &j.steps).collect::<Vec<_>>(),
        twice.jobs.iter().map(|j| &j.steps).collect::<Vec<_>>()
    );

    // The stream's run_finished is the executor's account; only the worker
    // ends the run, so ingesting leaves it active.
    assert_eq!(once.run.state, RunState::Active);
    assert_eq!(once.run.failure_kind, None);
    assert_eq!(
        shape(&once),
        [
            (
                "build".into(),
                JobState::Complete,
                Some(0),
                vec![
                    (1, "echo build".into(), Some(0)),
                    (2, "echo more".into(), Some(0))
                ]
            ),
            (
                "test".into(),
                JobState::Failed,
                Some(4),
                vec![
                    (1, "echo test".into(), Some(0)),
                    (2, "exit 4".into(), Some(4))
                ]
            ),
            ("deploy".into(), JobState::Skipped, None, vec![]),
        ]
    );
    assert_eq!(
        once.jobs[2].job.skip_reason.as_deref(),
        Some("needs test, which failed")
    );
    // Rows carry the events' own times.
    let Event::StepStarted { at_ms, .. } = &events[2] else {
        panic!("{:?}", events[2])
    };
    assert_eq!(once.jobs[0].steps[0].started_at_ms, *at_ms);
}

/// Many quick steps (the worker batches their events), a failure, a job
/// skipped because of it, one skipped by `when`, and one allowed to fail.
const BUSY: &str = r#"
[jobs.many]
inputs = ["quire/push"]
sh = ["true", "echo 2", "true", "echo 4", "true", "echo 6", "true", "echo 8", "true", "echo 10"]
[jobs.flaky]
inputs = ["quire/push"]
allow_failure = true
sh = ["echo trying", "exit 3"]
[jobs.test]
inputs = ["many"]
sh = ["echo test", "exit 4"]
[jobs.deploy]
inputs = ["test"]
sh = "echo deploy"
[jobs.release]
inputs = ["quire/push"]
when = { tags = ["v*"] }
sh = "echo release"
"#;

#[test]
fn what_a_worker_ingests_live_is_what_its_events_file_gives() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    // The step below reaches past its workspace, which the sandbox forbids.
    env.config("sandbox = \"off\"\n");
    // The worker deletes events.jsonl once the run has ended (its logs are
    // packed into the store): the first step keeps a hard link to it, which
    // sees every event the worker writes after.
    let copy = env.path().join("events.jsonl");
    let keep = format!("ln \"$QUIRE_WORKSPACE/../events.jsonl\" {}", copy.display());
    let pipeline = BUSY.replacen("\"true\"", &format!("{keep:?}"), 1);
    let sha = repo.commit(&[(".quire/ci.toml", &pipeline)], "busy");
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    env.run(&[
        "trigger",
        "--git-dir",
        repo.bare.to_str().unwrap(),
        "main",
        "--wait",
    ])
    .assert()
    .code(1);
    let runs = env.all_runs();
    assert_eq!(runs.len(), 1);
    let live = env.store().run_detail(&runs[0].id).unwrap();
    assert_eq!(
        (live.run.state, live.run.failure_kind),
        (
            RunState::Failed,
            Some(quire_store::FailureKind::PipelineFailure)
        )
    );
    assert_eq!(live.jobs[0].steps.len(), 10, "{:?}", live.jobs[0]);

    // The same run in a fresh store, claimed at the moment the worker
    // claimed it, then given the worker's events.jsonl.
    let claimed_at = live.run.started_at_ms.unwrap();
    let mut fresh = Store::open_with_clock(
        &Home::at(env.path().join("fresh")),
        Arc::new(move || claimed_at),
    )
    .unwrap();
    let repo_id = fresh
        .register_repo(&repo.bare, None, Registration::Seen)
        .unwrap()
        .id;
    let run = claimed_run(&mut fresh, repo_id, "refs/heads/main", &sha);
    assert!(!env.home().run_dir(&live.run.id).unwrap().exists());
    ingest_file(&mut fresh, &run, &copy).unwrap();
    let from_file = fresh.run_detail(&run).unwrap();

    // The worker ended the live run from the executor's result; the file
    // alone ends nothing.
    assert_eq!(live.run.state, RunState::Failed);
    assert_eq!(
        live.run.failure_kind,
        Some(quire_store::FailureKind::PipelineFailure)
    );
    assert_eq!(from_file.run.state, RunState::Active);
    let rows = |d: &RunDetail| {
        (
            d.run.started_at_ms,
            d.jobs
                .iter()
                .map(|j| (j.job.clone(), j.steps.clone()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(rows(&live), rows(&from_file));
    // The plan says which job may fail: the file alone tells it too.
    assert_eq!(from_file.jobs[1].job.allow_failure, Some(true));
    assert_eq!(from_file.jobs[2].job.allow_failure, Some(false));
    assert_eq!(
        live.jobs
            .iter()
            .map(|j| (j.job.id.as_str(), j.job.state))
            .collect::<Vec<_>>(),
        [
            ("many", JobState::Complete),
            ("flaky", JobState::Failed),
            ("test", JobState::Failed),
            ("deploy", JobState::Skipped),
            ("release", JobState::Skipped),
        ]
    );
}

#[test]
fn a_torn_last_line_is_ignored_and_a_garbled_middle_line_is_an_error() {
    let mut f = Fixture::new();
    let run = f.claimed_run("refs/heads/main");
    let (path, events) = f.execute(&run);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(br#"{"type":"job_started","at_ms":17,"jo"#)
        .unwrap();
    drop(file);
    assert_eq!(
        ingest_file(&mut f.store, &run, &path).unwrap(),
        events.len()
    );
    assert_eq!(f.detail(&run).run.state, RunState::Active);

    let garbled = b"{\"type\":\"run_started\",\"at_ms\":1,\"jobs\":[]}\nnot json\n{\"type\":\"job_started\",\"at_ms\":2,\"job\":\"a\"}\n";
    let err = parse_stream(garbled).unwrap_err();
    assert!(err.to_string().contains("events line 2"), "{err}");
    assert_eq!(parse_stream(b"").unwrap(), vec![]);
    assert_eq!(parse_stream(b"{\"type\":\"run_sta").unwrap(), vec![]);
}

#[test]
fn a_stream_cut_off_mid_job_leaves_rows_consistent_with_what_happened() {
    let mut f = Fixture::new();
    let full_run = f.claimed_run("refs/heads/main");
    let (_, events) = f.execute(&full_run);
    // Cut right after the second job's first step started.
    let cut = events
        .iter()
        .position(|e| matches!(e, Event::StepStarted { job, seq: 1, .. } if job == "test"))
        .unwrap()
        + 1;
    let run = f.claimed_run("refs/heads/other");
    f.store.ingest(&run, &events[..cut]).unwrap();
    let partial = f.detail(&run);
    assert_eq!(partial.run.state, RunState::Active);
    assert_eq!(
        shape(&partial),
        [
            (
                "build".into(),
                JobState::Complete,
                Some(0),
                vec![
                    (1, "echo build".into(), Some(0)),
                    (2, "echo more".into(), Some(0))
                ]
            ),
            (
                "test".into(),
                JobState::Active,
                None,
                vec![(1, "echo test".into(), None)]
            ),
            ("deploy".into(), JobState::Pending, None, vec![]),
        ]
    );
    // The rest arrives (a worker re-ingesting after restart): same as whole.
    f.store.ingest(&run, &events).unwrap();
    ingest_file(
        &mut f.store,
        &full_run,
        &f.dir.path().join(&full_run).join("events.jsonl"),
    )
    .unwrap();
    assert_eq!(shape(&f.detail(&run)), shape(&f.detail(&full_run)));
}

#[test]
fn events_for_a_run_that_was_superseded_change_nothing() {
    let mut f = Fixture::new();
    let run = f.claimed_run("refs/heads/main");
    let (_, events) = f.execute(&run);
    let cut = events
        .iter()
        .position(|e| matches!(e, Event::JobStarted { .. }))
        .unwrap()
        + 1;
    f.store.ingest(&run, &events[..cut]).unwrap();
    assert_eq!(
        f.store.supersede_ref(f.repo_id, "refs/heads/main").unwrap(),
        Some(run.clone())
    );
    let before = f.detail(&run);
    f.store.ingest(&run, &events).unwrap();
    let after = f.detail(&run);
    assert_eq!(before.run, after.run);
    assert_eq!(after.run.state, RunState::Superseded);
    assert_eq!(shape(&before), shape(&after));
}
