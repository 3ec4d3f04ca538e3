//! quire-runs logs --follow, wait, cancel, retry, prune and list filters,
//! against real pushes and real workers.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use predicates::prelude::*;
use quire_store::{FailureKind, JobState, RunState};

use quire_worker::workers;

use quire_testkit::{
    Env, Gate, RECORD_PID, SHA, alive, git, gone_within, populate, queued_runs, step_pid,
    wait_until,
};

#[test]
fn logs_follow_prints_lines_as_they_are_written_and_exits_with_the_run() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    // line1, then nothing until the test has read it; then the rest.
    let step = format!(
        "echo line1; {}; for i in 2 3 4 5; do echo line$i; done",
        gate.step("line1")
    );
    let run = repo.push_pipeline(&format!(
        r#"[jobs.count]
inputs = ["quire/push"]
sh = {step:?}
"#
    ));

    let mut follow = env
        .process("quire-runs")
        .args(["logs", &run, "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        format!("==> count step 1: {step} <==")
    );
    assert_eq!(lines.next().unwrap().unwrap(), "line1");
    // line1 arrived while the step was still running.
    assert_eq!(
        env.store().resolve_run(&run).unwrap().state,
        RunState::Active
    );
    gate.open();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(rest, ["line2", "line3", "line4", "line5"]);
    let status = follow.wait().unwrap();
    assert!(
        status.success(),
        "logs --follow exits 0 when the run completed"
    );
    assert_eq!(
        env.store().resolve_run(&run).unwrap().state,
        RunState::Complete
    );
    // And once it is over, plain logs print the same.
    env.runs(&["logs", &run])
        .assert()
        .success()
        .stdout(predicate::str::contains("line3\nline4\nline5\n"));
    env.runs(&["logs", &run, "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("has no job \"nope\""))
        .stderr(predicate::str::contains(format!(
            "hint: `quire-runs show {run}` lists its jobs"
        )));
}

/// Whether `pid` sleeps in `nanosleep`: a poller between two looks.
fn polling(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("nanosleep"))
}

#[test]
fn logs_follow_of_a_job_not_planned_yet_waits_for_it_and_prints_its_output() {
    let env = Env::new();
    env.config("max_workers = 1\n");
    let repo = env.repo_with_hook("app");
    // Holding the only worker slot keeps the run pending: no jobs yet.
    let slot = workers::try_acquire(&env.home(), 1).unwrap().unwrap();
    let run = repo.push_pipeline(
        r#"[jobs.build]
inputs = ["quire/push"]
sh = ["echo built", "echo twice"]
[jobs.other]
inputs = ["quire/push"]
sh = "echo not this"
"#,
    );
    let follow = env
        .process("quire-runs")
        .args(["logs", &run, "build", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It looked once, found no plan, and waits (or it failed at once).
    wait_until("logs --follow to wait for the plan", || {
        polling(follow.id()) || !alive(follow.id())
    });
    assert!(alive(follow.id()), "logs --follow did not wait");
    assert!(env.store().run_detail(&run).unwrap().jobs.is_empty());

    drop(slot);
    env.run(&["work"]).assert().success();
    let out = follow.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "==> build step 1: echo built <==\nbuilt\n==> build step 2: echo twice <==\ntwice\n"
    );
}

#[test]
fn wait_exits_0_for_complete_and_1_for_failed_or_superseded() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.ok]
inputs = ["quire/push"]
sh = "sleep 0.5"
"#,
        )],
        "ok",
    );
    let ok = repo.push_refs(&["main"]).remove(0);
    env.runs(&["wait", &ok, "--interval", "100ms"])
        .assert()
        .success()
        .stdout(format!("run {ok} complete\n"));
    env.runs(&["show", &ok, "--exit-status", "--json"])
        .assert()
        .success();

    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.bad]
inputs = ["quire/push"]
sh = "exit 2"
"#,
        )],
        "bad",
    );
    let bad = repo.push_refs(&["main"]).remove(0);
    env.runs(&["wait", &bad])
        .assert()
        .code(1)
        .stdout(format!("run {bad} failed (pipeline-failure)\n"));
    env.runs(&["show", &bad, "--exit-status"]).assert().code(1);

    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.slow]
inputs = ["quire/push"]
sh = "sleep 300"
"#,
        )],
        "slow",
    );
    git(&repo.work, &["branch", "topic"]);
    let slow = repo.push_refs(&["topic"]).remove(0);
    let waiter = env
        .process("quire-runs")
        .args(["wait", &slow, "--interval", "100ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    env.wait_for(&slow, "active", |r| r.state == RunState::Active);
    repo.push(&["origin", "--delete", "topic"]);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("run {slow} superseded\n")
    );
}

#[test]
fn cancel_stops_the_running_step_and_retry_runs_the_commit_again() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let pipeline = format!(
        r#"[jobs.slow]
inputs = ["quire/push"]
sh = {:?}
"#,
        format!("{RECORD_PID}; exec sleep 300")
    );
    let sha = repo.commit(&[(".quire/ci.toml", &pipeline)], "slow");
    let (_, stderr) = repo.push(&["origin", "main"]);
    let run = queued_runs(&stderr).remove(0);
    let sleep = step_pid(&env, &run);
    env.runs(&["cancel", &run[..13]])
        .assert()
        .success()
        .stdout(format!("cancelled run {run} (it was active)\n"));
    assert!(
        gone_within(sleep, 5),
        "the cancelled run's step is still running"
    );
    let cancelled = env.store().run_detail(&run).unwrap();
    assert_eq!(
        (cancelled.run.state, cancelled.run.failure_kind),
        (RunState::Failed, Some(FailureKind::Cancelled))
    );
    assert_eq!(cancelled.jobs[0].job.state, JobState::Aborted);
    env.runs(&["cancel", &run])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is already failed; there is nothing to cancel",
        ));

    // The retry runs the same commit again (and is cancelled in turn).
    let out = env
        .runs(&["retry", &run])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let retry = text
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(',')
        .to_string();
    assert!(
        text.starts_with(&format!("queued run {retry}, a retry of {run}")),
        "{text}"
    );
    // The retry names what it retried.
    let json = env.json(&["show", &retry]);
    assert_eq!(json["retry_of"], run.as_str(), "{json}");
    assert_eq!(json["event"], "retry", "{json}");
    let shown = env.stdout(&["show", &retry]);
    assert!(shown.contains(&format!("retry of run {run}")), "{shown}");
    let retried = env.wait_for(&retry, "active", |r| r.state != RunState::Pending);
    assert_eq!(
        (retried.sha.as_str(), retried.ref_name.as_str()),
        (sha.as_str(), "refs/heads/main")
    );
    let second_sleep = step_pid(&env, &retry);
    assert_ne!(second_sleep, sleep);
    env.runs(&["cancel", &retry]).assert().success();
    assert!(gone_within(second_sleep, 5));
    assert_eq!(
        env.store().resolve_run(&run).unwrap().state,
        RunState::Failed,
        "the original run is left as it was"
    );
}

#[test]
fn prune_removes_old_finished_runs_but_never_live_ones_or_the_newest_n() {
    let env = Env::new();
    let ids = populate(&mut env.store());
    let dir = env.home().run_dir(&ids.superseded).unwrap();
    std::fs::create_dir_all(dir.join("logs/build")).unwrap();
    std::fs::write(dir.join("logs/build/1.log"), vec![b'x'; 2048]).unwrap();
    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(48))
        .unwrap()
        .to_string();

    // Nothing is a day old yet.
    env.runs(&["prune", "--older-than", "1d"])
        .assert()
        .success()
        .stdout("deleted 0 runs, 0 B of logs and events\n");

    let dry = env
        .runs(&[
            "prune",
            "--older-than",
            "1d",
            "--keep",
            "1",
            "--dry-run",
            "--json",
        ])
        .env("QUIRE_NOW", &later)
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&dry.get_output().stdout).unwrap();
    assert_eq!(report["runs"], serde_json::json!([ids.superseded]));
    assert_eq!(report["bytes_freed"], 2048);
    assert_eq!(report["dry_run"], true);
    assert!(
        dir.exists() && env.store().resolve_run(&ids.superseded).is_ok(),
        "a dry run deletes nothing"
    );

    env.runs(&["prune", "--older-than", "1d", "--keep", "1"])
        .env("QUIRE_NOW", &later)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "deleted {} (app.git refs/heads/main, superseded)",
            ids.superseded
        )))
        .stdout(predicate::str::contains(
            "deleted 1 run, 2.0 KiB of logs and events; kept the newest 1 of each ref",
        ));
    assert!(!dir.exists());
    assert!(env.store().resolve_run(&ids.superseded).is_err());

    // With no keep, every finished run goes; pending and active ones stay.
    env.runs(&["prune", "--older-than", "1d"])
        .env("QUIRE_NOW", &later)
        .assert()
        .success();
    let left: Vec<String> = env.all_runs().into_iter().map(|r| r.id).collect();
    let mut expected = vec![ids.pending.clone(), ids.live.clone(), ids.orphan.clone()];
    expected.sort();
    let mut left_sorted = left.clone();
    left_sorted.sort();
    assert_eq!(left_sorted, expected);
    // Their jobs and steps went with them (by cascade), the others' stayed.
    let jobs: i64 = env
        .store()
        .connection()
        .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jobs, 3);

    env.runs(&["prune"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("prune needs --older-than"));
    std::fs::write(
        env.home().dir().join("config.toml"),
        r#"[retention]
older_than = "1d"
keep = 0
"#,
    )
    .unwrap();
    env.runs(&["prune", "--dry-run"])
        .assert()
        .success()
        .stdout("would delete 0 runs, 0 B of logs and events\n");
}

#[test]
fn list_filters_by_sha_prefix_and_age() {
    let env = Env::new();
    populate(&mut env.store());
    let count = |args: &[&str], now: Option<&str>| {
        let mut cmd = env.runs(args);
        cmd.arg("--json");
        if let Some(now) = now {
            cmd.env("QUIRE_NOW", now);
        }
        let out = cmd.assert().success().get_output().stdout.clone();
        serde_json::from_slice::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&["list", "--sha", &SHA[..6]], None), 6);
    assert_eq!(count(&["list", "--sha", &SHA[..6].to_uppercase()], None), 6);
    assert_eq!(count(&["list", "--sha", "ffff"], None), 0);
    let hour_later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap()
        .to_string();
    assert_eq!(count(&["list", "--since", "30m"], Some(&hour_later)), 0);
    assert_eq!(count(&["list", "--since", "2h"], Some(&hour_later)), 6);
    env.runs(&["list", "--sha", "xyz"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a commit id prefix"));
    env.runs(&["list", "--since", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a span"));
}
