//! One pusher cannot starve the others (docs/SECURITY.md): runs are taken
//! round-robin over repositories, a repository holds at most
//! `max_workers_per_repo` workers, and `max_job_timeout` ends a job that
//! would run forever.

use quire_store::{FailureKind, RunState};

use quire_testkit::{Env, Gate, RECORD_PID, Repo, gone_within, step_pid};

/// A job that never ends on its own (a minute-long test cancels it).
const ENDLESS: &str = r#"[jobs.forever]
inputs = ["quire/push"]
sh = "echo $$ > \"$TMPDIR/sleep.pid\"; exec sleep 100000"
"#;

/// Make `n` branches `f0000`.. at HEAD of `repo`'s work tree, and push them
/// in one push; the runs it queued.
fn push_many_refs(repo: &Repo, n: usize) -> Vec<String> {
    let lines: String = (0..n)
        .map(|i| format!("create refs/heads/f{i:04} HEAD\n"))
        .collect();
    let mut child = std::process::Command::new("git")
        .current_dir(&repo.work)
        .args(["update-ref", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    repo.push_refs(&["refs/heads/f*:refs/heads/f*"])
}

/// Cancel every run that has not ended, pending ones first (so that no
/// worker claims one of them as it lets its active run go), and wait for
/// the workers that held the active ones to be gone: nothing is left
/// running.
fn cancel_everything(env: &Env) {
    let mut store = env.store();
    let runs = env.all_runs();
    let workers: Vec<u32> = runs
        .iter()
        .filter_map(|r| r.worker.as_ref().map(|w| w.pid))
        .collect();
    for state in [RunState::Pending, RunState::Active] {
        for run in runs.iter().filter(|r| r.state == state) {
            store.cancel(&run.id).unwrap();
        }
    }
    for pid in workers {
        assert!(
            gone_within(pid, 60),
            "worker {pid} outlived its cancelled run"
        );
    }
}

#[test]
fn an_endless_job_and_a_thousand_refs_in_one_repository_do_not_hold_back_another() {
    let env = Env::new();
    // No git notes: the thousand runs cancelled at the end would each get
    // one from the worker's announcer, which the worker waits for before
    // it exits (a minute and more on a loaded machine).
    env.config("max_workers = 2\nnotes = false\n");
    let a = env.repo_with_hook("flood");
    let b = env.repo_with_hook("other");
    // A's first run never ends, and holds a worker.
    let endless = a.push_pipeline(ENDLESS);
    let endless_step = step_pid(&env, &endless);
    // Then a thousand refs in one push, each a run of the same endless
    // pipeline.
    let flood = push_many_refs(&a, 1000);
    assert_eq!(flood.len(), 1000, "one run per ref");
    // A pending run of A says why it waits, though a worker slot is free.
    let waiting = env.runs(&["show", &flood[999]]).output().unwrap().stdout;
    let waiting = String::from_utf8_lossy(&waiting).into_owned();
    // A run pushed afterwards to B starts at once: A holds one worker of
    // two (max_workers_per_repo defaults to max_workers - 1), and the claim
    // takes B's turn before A's next.
    let other = b.push_pipeline(
        r#"[jobs.quick]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    let started = quire_testkit::within(20, || {
        env.store()
            .resolve_run(&other)
            .unwrap()
            .started_at_ms
            .is_some()
    });
    let active_of_a = env
        .all_runs()
        .iter()
        .filter(|r| r.repo == "flood.git" && r.state == RunState::Active)
        .count();
    cancel_everything(&env);
    assert!(
        gone_within(endless_step, 30),
        "the endless step was left running"
    );
    assert!(
        started,
        "B's run was not started within 20 s while A flooded the queue"
    );
    assert_eq!(
        active_of_a, 1,
        "A held more than max_workers_per_repo workers"
    );
    assert!(
        waiting.contains(
            "waiting   for one of its repository's runs to end: it holds max_workers_per_repo = 1"
        ),
        "{waiting}"
    );
}

#[test]
fn a_flood_of_quick_runs_delays_another_repository_by_at_most_one_run_per_worker() {
    // No cap in the way (each repository may use both workers): the claim
    // order alone lets B in.
    let env = Env::new();
    env.config("max_workers = 2\nmax_workers_per_repo = 2\nnotes = false\n");
    let a = env.repo_with_hook("flood");
    let b = env.repo_with_hook("other");
    let gate = Gate::new(&env);
    a.commit(
        &[(".quire/ci.toml", &gate.job("hold", "$QUIRE_BRANCH"))],
        "held",
    );
    let flood = push_many_refs(&a, 200);
    assert_eq!(flood.len(), 200);
    // Both workers hold one of A's runs at the gate; B's run is queued
    // behind 198 of A's.
    gate.wait_ready("f0000");
    gate.wait_ready("f0001");
    let other = b.push_pipeline(
        r#"[jobs.quick]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    gate.open();
    let b_run = env.wait_for(&other, "started", |r| r.started_at_ms.is_some());
    let b_started = b_run.started_at_ms.unwrap();
    cancel_everything(&env);
    let a_before_b = env
        .all_runs()
        .iter()
        .filter(|r| r.repo == "flood.git")
        .filter(|r| r.started_at_ms.is_some_and(|at| at <= b_started))
        .count();
    // The two at the gate, and at most one more per worker before B's turn
    // (each claim of A after the gate opened is followed by B's).
    assert!(
        a_before_b <= 4,
        "{a_before_b} of A's runs started before B's: the queue was first come, first served"
    );
}

#[test]
fn max_job_timeout_ends_a_job_that_sets_no_timeout_or_a_longer_one_and_says_so() {
    let env = Env::new();
    env.config("max_job_timeout = \"2s\"\n");
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(&format!(
        r#"[jobs.none]
inputs = ["quire/push"]
sh = {:?}

[jobs.long]
inputs = ["quire/push"]
timeout = "1h"
sh = "exec sleep 100000"
"#,
        format!("{RECORD_PID}; exec sleep 100000")
    ));
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.failure_kind, Some(FailureKind::PipelineFailure));
    let detail = run.failure_detail.unwrap_or_default();
    for job in ["none", "long"] {
        assert!(
            detail.contains(&format!(
                "job {job} timed out after 2s (config.toml's max_job_timeout, the longest any job may run)"
            )),
            "{detail}"
        );
        let log = env.step_log(&run.id, job, 1);
        assert!(
            log.contains("quire: the job ran for config.toml's max_job_timeout"),
            "{job}: {log}"
        );
    }
}

#[test]
fn a_job_whose_own_timeout_is_shorter_than_the_cap_keeps_it() {
    let env = Env::new();
    env.config("max_job_timeout = \"1h\"\n");
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        r#"[jobs.short]
inputs = ["quire/push"]
timeout = "1s"
sh = "exec sleep 100000"
"#,
    );
    let detail = run.failure_detail.unwrap_or_default();
    assert!(
        detail.contains("job short timed out after 1s at step 1"),
        "{detail}"
    );
    assert!(!detail.contains("max_job_timeout"), "{detail}");
}

#[test]
fn show_says_the_limits_each_job_ran_under() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        r#"[jobs.quick]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    let show = env.json(&["show", &run.id]);
    let sandbox = show["sandbox"].as_str().unwrap_or_default().to_string();
    // Where the worker's cgroup can hand its jobs the pids controller, the
    // default 4096 processes is in force and said; elsewhere show says
    // there is no limit.
    let pids_controller = quire_exec::cgroup::usable_own_dir().is_ok_and(|dir| {
        quire_exec::cgroup::Cgroup::at(dir)
            .controllers()
            .iter()
            .any(|c| c == "pids")
    });
    if pids_controller {
        assert!(
            sandbox.contains("each job at most 4096 processes"),
            "{sandbox}"
        );
    } else {
        eprintln!("no pids controller here: only the line saying so is checked");
        assert!(
            sandbox.contains("no limit on each job's processes or memory"),
            "{sandbox}"
        );
    }
}
