//! What a commit's note is written from: `Store::runs_with_jobs`, every
//! run it names with its jobs, read at once.

use std::path::Path;
use std::time::Duration;

use quire_model::events::Event;
use quire_store::lifecycle::{NewRun, Outcome, Worker};
use quire_store::repos::Registration;
use quire_store::{Home, JobState, RunState, Store};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A job as the test compares it: its name and exit code.
type JobShape = (String, Option<i64>);

/// A run of `jobs` (`(name, exit code)`) that ended.
fn ended_run(store: &mut Store, repo_id: i64, jobs: &[(&str, i64)]) -> String {
    let id = store
        .create_run(&NewRun {
            repo_id,
            ref_name: "refs/heads/main",
            sha: SHA,
            ..Default::default()
        })
        .unwrap()
        .run
        .id;
    let worker = Worker {
        id: "w".into(),
        pid: std::process::id(),
        lease: Duration::from_secs(60),
    };
    store.claim(&id, &worker).unwrap();
    let now = quire_model::clock::now_ms();
    let mut events = vec![Event::RunStarted {
        at_ms: now,
        jobs: jobs.iter().map(|(job, _)| job.to_string()).collect(),
        allow_failure: Vec::new(),
    }];
    for &(job, code) in jobs {
        events.push(Event::JobStarted {
            at_ms: now,
            job: job.into(),
        });
        events.push(Event::JobFinished {
            at_ms: now + 5,
            job: job.into(),
            state: if code == 0 {
                JobState::Complete
            } else {
                JobState::Failed
            },
            exit_code: Some(code),
        });
    }
    store.ingest(&id, &events).unwrap();
    store.finish(&id, &Outcome::Complete).unwrap();
    id
}

#[test]
fn runs_with_jobs_reads_every_named_run_in_the_order_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&Home::at(dir.path().join("home"))).unwrap();
    let repo = store
        .register_repo(Path::new("/srv/git/app.git"), None, Registration::Seen)
        .unwrap()
        .id;
    let a = ended_run(&mut store, repo, &[("build", 0), ("test", 3)]);
    let b = ended_run(&mut store, repo, &[("lint", 0)]);
    let c = ended_run(&mut store, repo, &[]);
    let unknown = "01900000-0000-7000-8000-000000000000";

    let read = store
        .runs_with_jobs(&[c.as_str(), unknown, a.as_str(), b.as_str()])
        .unwrap();
    let shape: Vec<(String, Vec<JobShape>)> = read
        .iter()
        .map(|(run, jobs)| {
            (
                run.id.clone(),
                jobs.iter()
                    .map(|job| (job.id.clone(), job.exit_code))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (c.clone(), vec![]),
            (
                a.clone(),
                vec![("build".into(), Some(0)), ("test".into(), Some(3))]
            ),
            (b.clone(), vec![("lint".into(), Some(0))]),
        ],
        "the unknown id is left out; each run's jobs are its own, in order"
    );
    assert!(read.iter().all(|(run, _)| run.state == RunState::Complete));
    assert!(store.runs_with_jobs(&[]).unwrap().is_empty());
}
