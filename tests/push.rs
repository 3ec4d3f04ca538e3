//! The push path end to end: a real `git push` through the installed hook,
//! a detached worker, the executor, the store.

use std::time::{Duration, Instant};

use predicates::prelude::*;
use quire_store::{FailureKind, JobState, RunState};

use quire_testkit::{
    Env, Gate, RECORD_PID, alive, git, gone_within, outside_pid, queued_runs, read_pid_file,
    step_pid, wait_until,
};

const TWO_JOBS: &str = r#"
[jobs.build]
inputs = ["quire/push"]
sh = ["echo ref=$QUIRE_REF branch=$QUIRE_BRANCH tag=$QUIRE_TAG prev=$QUIRE_PREVIOUS_SHA", "test -f README.md"]

[jobs.test]
inputs = ["build"]
sh = [["sh", "-c", "grep -q hello README.md && echo tested"]]
"#;

fn log(env: &Env, run: &str, job: &str, seq: i64) -> String {
    env.step_log(run, job, seq)
}

#[test]
fn a_push_runs_its_two_job_pipeline_to_completion() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let sha = repo.commit(
        &[("README.md", "hello\n"), (".quire/ci.toml", TWO_JOBS)],
        "first",
    );
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    let runs = queued_runs(&stderr);
    assert_eq!(runs.len(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "remote: quire: queued run {} for refs/heads/main (quire-runs show {})",
            runs[0], runs[0]
        )),
        "{stderr}"
    );

    let run = env.wait_terminal(&runs[0]);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    assert_eq!(
        (run.sha.as_str(), run.repo.as_str()),
        (sha.as_str(), "app.git")
    );
    let detail = env.store().run_detail(&run.id).unwrap();
    let jobs: Vec<(&str, JobState, usize)> = detail
        .jobs
        .iter()
        .map(|j| (j.job.id.as_str(), j.job.state, j.steps.len()))
        .collect();
    assert_eq!(
        jobs,
        [
            ("build", JobState::Complete, 2),
            ("test", JobState::Complete, 1)
        ]
    );
    assert!(
        log(&env, &run.id, "build", 1)
            .contains(" stdout F ref=refs/heads/main branch=main tag= prev=")
    );
    assert!(log(&env, &run.id, "test", 1).contains(" stdout F tested"));
    // After the run ended, the worker deletes the workspace, packs the
    // logs into the store and deletes events.jsonl, then exits: nothing of
    // the run is left outside the store.
    assert!(gone_within(run.worker.as_ref().unwrap().pid, 10));
    let run_dir = env.home().run_dir(&run.id).unwrap();
    assert!(
        !run_dir.exists(),
        "the run's directory is gone: {:?}",
        std::fs::read_dir(&run_dir).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
}

#[test]
fn branches_pushed_together_get_a_run_each_and_tags_and_previous_tips_reach_the_steps() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let first = repo.commit(
        &[("README.md", "hello\n"), (".quire/ci.toml", TWO_JOBS)],
        "first",
    );
    git(&repo.work, &["branch", "dev"]);
    git(&repo.work, &["tag", "v1.0"]);
    let (ok, stderr) = repo.push(&["origin", "main", "dev", "v1.0"]);
    assert!(ok, "{stderr}");
    let runs = queued_runs(&stderr);
    assert_eq!(runs.len(), 3, "{stderr}");
    let mut refs = Vec::new();
    for id in &runs {
        let run = env.wait_terminal(id);
        assert_eq!(run.state, RunState::Complete, "{run:?}");
        refs.push(run.ref_name.clone());
        if run.ref_name == "refs/tags/v1.0" {
            assert!(
                log(&env, id, "build", 1).contains("branch= tag=v1.0 prev="),
                "{}",
                log(&env, id, "build", 1)
            );
        }
    }
    refs.sort();
    assert_eq!(
        refs,
        ["refs/heads/dev", "refs/heads/main", "refs/tags/v1.0"]
    );

    let second = repo.commit(&[("README.md", "hello again\n")], "second");
    let id = &repo.push_refs(&["main"])[0];
    assert_eq!(env.wait_terminal(id).state, RunState::Complete);
    assert!(
        log(&env, id, "build", 1).contains(&format!("prev={first}")),
        "{}",
        log(&env, id, "build", 1)
    );
    assert_eq!(env.store().resolve_run(id).unwrap().sha, second);
}

#[test]
fn an_annotated_tag_runs_its_commit() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let sha = repo.commit(
        &[("README.md", "hello\n"), (".quire/ci.toml", TWO_JOBS)],
        "first",
    );
    git(&repo.work, &["tag", "-a", "v2.0", "-m", "release 2.0"]);
    let (ok, stderr) = repo.push(&["origin", "v2.0"]);
    assert!(ok, "{stderr}");
    let id = queued_runs(&stderr).remove(0);
    let run = env.wait_terminal(&id);
    assert_eq!(
        (run.state, run.sha.as_str(), run.ref_name.as_str()),
        (RunState::Complete, sha.as_str(), "refs/tags/v2.0")
    );
    assert!(log(&env, &id, "build", 1).contains("tag=v2.0"));
}

#[test]
fn a_push_that_creates_no_run_still_supersedes_the_refs_old_run() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.w]
inputs = ["quire/push"]
sh = "sleep 300"
"#,
        )],
        "slow",
    );
    let old = repo.push_refs(&["main"]).remove(0);
    env.wait_for(&old, "active", |r| r.state == RunState::Active);
    repo.commit(&[("a.txt", "1")], "docs [skip ci]");
    let (_, stderr) = repo.push(&["origin", "main"]);
    assert!(
        stderr.contains(&format!(
            "the ref moved on, so its run {old} was superseded"
        )),
        "{stderr}"
    );
    assert_eq!(env.wait_terminal(&old).state, RunState::Superseded);
}

#[test]
fn deletion_ci_skip_skip_ci_and_commits_without_a_pipeline_create_no_run() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let slow = r#"[jobs.wait]
inputs = ["quire/push"]
sh = "sleep 300"
"#;
    repo.commit(
        &[("README.md", "hello\n"), (".quire/ci.toml", slow)],
        "slow",
    );
    git(&repo.work, &["branch", "feature"]);
    let live = repo.push_refs(&["feature"]).remove(0);
    env.wait_for(&live, "active", |r| r.state == RunState::Active);

    let (ok, stderr) = repo.push(&["origin", "--delete", "feature"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "remote: quire: refs/heads/feature was deleted; superseded its run {live}"
        )),
        "{stderr}"
    );
    assert_eq!(env.wait_terminal(&live).state, RunState::Superseded);

    let before = env.all_runs().len();
    repo.commit(&[("a.txt", "1\n")], "skipped by option");
    let (ok, stderr) = repo.push(&["-o", "ci.skip", "origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("remote: quire: no run for refs/heads/main: the push option ci.skip"),
        "{stderr}"
    );

    repo.commit(&[("a.txt", "2\n")], "docs only [Skip CI]");
    let (_, stderr) = repo.push(&["origin", "main"]);
    assert!(
        stderr
            .contains("remote: quire: no run for refs/heads/main: [skip ci] in the commit message"),
        "{stderr}"
    );

    git(&repo.work, &["rm", "--quiet", ".quire/ci.toml"]);
    let sha = repo.commit(&[], "no more CI");
    let (_, stderr) = repo.push(&["origin", "main"]);
    assert!(
        stderr.contains(&format!(
            "remote: quire: no run for refs/heads/main: {} has no .quire/ci.toml",
            &sha[..12]
        )),
        "{stderr}"
    );
    assert_eq!(env.all_runs().len(), before, "none of these recorded a run");
}

#[test]
fn an_invalid_pipeline_is_told_to_the_pusher_and_recorded_as_pipeline_invalid() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.a]
inputs = []
sh = []
"#,
        )],
        "broken",
    );
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "a bad pipeline does not refuse the push: {stderr}");
    assert!(
        stderr.contains("remote: quire: .quire/ci.toml is invalid; run "),
        "{stderr}"
    );
    assert!(
        stderr.contains("remote: quire:   .quire/ci.toml:1:7: job \"a\": inputs is empty"),
        "{stderr}"
    );
    assert!(
        stderr.contains("remote: quire:   .quire/ci.toml:1:7: job \"a\": sh is empty"),
        "{stderr}"
    );
    let runs = env.all_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].state, runs[0].failure_kind),
        (RunState::Failed, Some(FailureKind::PipelineInvalid))
    );
    assert!(
        runs[0]
            .failure_detail
            .as_deref()
            .unwrap()
            .contains("(and 1 more)")
    );
}

#[test]
fn git_push_returns_while_a_long_pipeline_runs_and_a_force_push_stops_it() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let slow = format!(
        r#"[jobs.wait]
inputs = ["quire/push"]
sh = {:?}
"#,
        format!("{RECORD_PID}; exec sleep 30")
    );
    repo.commit(
        &[("README.md", "hello\n"), (".quire/ci.toml", &slow)],
        "slow",
    );
    let started = Instant::now();
    let (ok, stderr) = repo.push(&["origin", "main"]);
    let took = started.elapsed();
    assert!(ok, "{stderr}");
    // A behaviour bound, not a benchmark: the push must not wait for the 30 s step.
    assert!(took < Duration::from_secs(10), "git push took {took:?}");
    let old = queued_runs(&stderr).remove(0);
    let sleep = step_pid(&env, &old);
    assert_eq!(
        env.store().resolve_run(&old).unwrap().state,
        RunState::Active
    );
    assert!(alive(sleep));

    // Rewrite history and force-push: the old run is superseded and its
    // step is gone within a few seconds.
    git(&repo.work, &["reset", "--quiet", "--hard", "HEAD"]);
    let fast = r#"[jobs.quick]
inputs = ["quire/push"]
sh = "echo quick"
"#;
    std::fs::write(repo.work.join(".quire/ci.toml"), fast).unwrap();
    git(
        &repo.work,
        &["commit", "--quiet", "--amend", "-a", "-m", "fast"],
    );
    let superseded_at = Instant::now();
    let (ok, stderr) = repo.push(&["--force", "origin", "main"]);
    assert!(ok, "{stderr}");
    let new = queued_runs(&stderr).remove(0);
    assert!(
        stderr.contains(&format!("it supersedes run {old}")),
        "{stderr}"
    );
    assert!(
        gone_within(sleep, 5),
        "the superseded run's sleep is still running"
    );
    eprintln!(
        "superseded step ended {:?} after the push",
        superseded_at.elapsed()
    );
    let old_run = env.wait_terminal(&old);
    assert_eq!(old_run.state, RunState::Superseded);
    let old_detail = env.store().run_detail(&old).unwrap();
    assert_eq!(old_detail.jobs[0].job.state, JobState::Aborted);
    assert_eq!(env.wait_terminal(&new).state, RunState::Complete);
}

#[test]
fn a_burst_of_ten_pushes_to_one_ref_executes_only_the_last() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    let pipeline = gate.job("work", "$QUIRE_BRANCH");
    repo.commit(&[(".quire/ci.toml", &pipeline)], "0");
    // The only worker (max_workers = 1) is busy with another branch while
    // the burst arrives.
    git(&repo.work, &["branch", "busy"]);
    let busy = repo.push_refs(&["busy"]).remove(0);
    gate.wait_ready("busy");
    let mut last = String::new();
    let mut ids = Vec::new();
    for n in 0..10 {
        last = repo.commit(&[("n.txt", &n.to_string())], &format!("push {n}"));
        ids.extend(repo.push_refs(&["main"]));
    }
    assert_eq!(ids.len(), 10);
    gate.open();

    assert_eq!(env.wait_terminal(&busy).state, RunState::Complete);
    let final_run = env.wait_terminal(ids.last().unwrap());
    assert_eq!(
        (final_run.state, final_run.sha.as_str()),
        (RunState::Complete, last.as_str())
    );
    for id in &ids[..9] {
        let detail = env.store().run_detail(id).unwrap();
        assert_eq!(detail.run.state, RunState::Superseded, "{id}");
        assert!(
            detail.run.started_at_ms.is_none() && detail.run.worker.is_none(),
            "superseded run {id} was claimed: {:?}",
            detail.run
        );
        assert!(detail.jobs.is_empty(), "{id}: {:?}", detail.jobs);
        let run_dir = env.home().run_dir(id).unwrap();
        assert!(
            !run_dir.join("logs").exists() && !run_dir.join("events.jsonl").exists(),
            "superseded run {id} executed something"
        );
    }
    assert_eq!(env.all_runs().len(), 11);
}

#[test]
fn after_the_worker_is_killed_reconcile_orphans_its_run_ends_its_step_and_starts_a_worker() {
    let env = Env::new();
    env.home().ensure().unwrap();
    std::fs::write(env.home().dir().join("config.toml"), "max_workers = 1\n").unwrap();
    let mut a = env.repo_with_hook("a");
    // Without a pid namespace, where a crashed worker's step lives on (in
    // one, it dies with the worker: the next test).
    a.vars.push(("QUIRE_PIDNS".into(), "off".into()));
    let slow = format!(
        r#"[jobs.hang]
inputs = ["quire/push"]
sh = [{:?}, "echo never"]
"#,
        format!("{RECORD_PID}; exec sleep 300")
    );
    a.commit(&[(".quire/ci.toml", &slow)], "hang");
    let stuck = a.push_refs(&["main"]).remove(0);
    let sleep = step_pid(&env, &stuck);
    let worker = env
        .wait_for(&stuck, "active", |r| r.state == RunState::Active)
        .worker
        .unwrap()
        .pid;

    // Another repository's run queues behind the busy worker (limit 1).
    let b = env.repo_with_hook("b");
    b.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.ok]
inputs = ["quire/push"]
sh = "echo ok"
"#,
        )],
        "ok",
    );
    let queued = b.push_refs(&["main"]).remove(0);

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(worker as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert!(gone_within(worker, 5));
    assert!(
        alive(sleep),
        "the step outlived its worker, as a real crash leaves it"
    );
    assert_eq!(
        env.store().resolve_run(&queued).unwrap().state,
        RunState::Pending
    );

    let out = env
        .runs(&["reconcile", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["orphaned"][0]["run"], stuck.as_str(), "{report}");
    assert_eq!(
        report["steps_terminated"],
        serde_json::json!([sleep]),
        "{report}"
    );
    assert_eq!(report["worker_started"], true, "{report}");
    assert!(gone_within(sleep, 5), "reconcile ended the leftover step");

    let orphan = env.store().run_detail(&stuck).unwrap();
    assert_eq!(
        (orphan.run.state, orphan.run.failure_kind),
        (RunState::Failed, Some(FailureKind::Orphaned))
    );
    assert_eq!(orphan.jobs[0].job.state, JobState::Aborted);
    assert_eq!(env.wait_terminal(&queued).state, RunState::Complete);
}

#[test]
fn in_its_pid_namespace_a_killed_workers_step_and_daemon_die_with_it() {
    let env = Env::new();
    env.home().ensure().unwrap();
    std::fs::write(env.home().dir().join("config.toml"), "max_workers = 1\n").unwrap();
    let a = env.repo_with_hook("a");
    // A daemon that leaves the step's session and clears its environment:
    // nothing but the namespace ties it to the run.
    let slow = format!(
        r#"[jobs.hang]
inputs = ["quire/push"]
sh = [{:?}, "echo never"]
"#,
        format!(
            "env -i setsid sh -c 'echo $$ > \"$0/daemon.pid\"; exec sleep 301' \"$TMPDIR\" </dev/null >/dev/null 2>&1 & \
             {RECORD_PID}; exec sleep 300"
        )
    );
    a.commit(&[(".quire/ci.toml", &slow)], "hang");
    let stuck = a.push_refs(&["main"]).remove(0);
    let sleep = step_pid(&env, &stuck);
    let worker = env
        .wait_for(&stuck, "active", |r| r.state == RunState::Active)
        .worker
        .unwrap()
        .pid;
    let daemon = outside_pid(
        worker,
        read_pid_file(&env.home().run_dir(&stuck).unwrap().join("tmp/daemon.pid")),
    );
    assert_ne!(sleep, daemon);
    assert!(alive(sleep) && alive(daemon));

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(worker as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert!(gone_within(worker, 5));
    assert!(gone_within(sleep, 5), "the step outlived its worker");
    assert!(gone_within(daemon, 5), "the daemon outlived its worker");

    let report = env.json(&["reconcile"]);
    assert_eq!(report["orphaned"][0]["run"], stuck.as_str(), "{report}");
    let orphan = env.store().run_detail(&stuck).unwrap();
    assert_eq!(
        (orphan.run.state, orphan.run.failure_kind),
        (RunState::Failed, Some(FailureKind::Orphaned))
    );
}

#[test]
fn a_tree_cannot_write_outside_the_workspace() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let outside = env.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let pipeline = r#"[jobs.look]
inputs = ["quire/push"]
sh = "ls -la"
"#;
    let bare = repo.bare.to_str().unwrap();
    let ci = repo.pipeline_tree(pipeline);
    let evil = repo.mktree(&format!(
        "100644 blob {}\\tevil\\n",
        repo.hash_object("written outside!")
    ));
    let link = repo.hash_object(outside.to_str().unwrap());
    // A symlink to the outside directory and, under the same name, a tree
    // whose file would land behind it; plus a plain symlink out.
    let root = repo.mktree(&format!(
        "040000 tree {ci}\\t.quire\\n120000 blob {link}\\tlink\\n040000 tree {evil}\\tlink\\n120000 blob {link}\\tup\\n"
    ));
    let commit = git(&repo.bare, &["commit-tree", &root, "-m", "hostile tree"]);
    git(&repo.bare, &["update-ref", "refs/heads/hostile", &commit]);
    env.run(&["trigger", "--git-dir", bare, "hostile", "--wait"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("process-crashed"));
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing was written outside"
    );
    let run = &env.all_runs()[0];
    assert_eq!(run.failure_kind, Some(FailureKind::ProcessCrashed));
    assert!(
        run.failure_detail.as_deref().unwrap().contains("link"),
        "{run:?}"
    );

    // The symlink alone is harmless: it is created as a link, never written through.
    let root = repo.mktree(&format!(
        "040000 tree {ci}\\t.quire\\n120000 blob {link}\\tup\\n"
    ));
    let commit = git(&repo.bare, &["commit-tree", &root, "-m", "a link out"]);
    git(&repo.bare, &["update-ref", "refs/heads/linked", &commit]);
    env.run(&["trigger", "--git-dir", bare, "linked", "--wait"])
        .assert()
        .success();
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn names_git_takes_for_dot_git_are_refused_by_the_checkout() {
    // quire refuses `.git` itself before writing anything
    // (reliability.rs); the checkout (gix, or git for a large tree), which
    // writes the files, also refuses the names other file systems read as
    // `.git`, and the run says so.
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let bare = repo.bare.to_str().unwrap();
    let ci = repo.pipeline_tree(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    let payload = repo.hash_object("[core]\n\thooksPath = /tmp\n");
    for (branch, name) in [("short", "git~1"), ("spaced", ".git ")] {
        let root = repo.mktree(&format!(
            "040000 tree {ci}\\t.quire\\n100644 blob {payload}\\t{name}\\n"
        ));
        let commit = git(&repo.bare, &["commit-tree", &root, "-m", "hostile"]);
        git(
            &repo.bare,
            &["update-ref", &format!("refs/heads/{branch}"), &commit],
        );
        env.run(&["trigger", "--git-dir", bare, branch, "--wait"])
            .assert()
            .code(1)
            .stdout(predicate::str::contains("process-crashed"));
        let run = &env.all_runs()[0];
        let detail = run.failure_detail.as_deref().unwrap();
        // Written in process (gix) for a small tree, by git read-tree for
        // a large one: either names the path it refused.
        let by_gix = detail.contains(&format!("The path \"{name}\" is invalid"));
        let by_git =
            detail.contains("git read-tree") && detail.contains(&format!("invalid path '{name}'"));
        assert!(by_gix || by_git, "{name}: {run:?}");
    }
}

#[test]
fn the_hook_reports_malformed_lines_and_still_records_the_good_ones() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let sha = repo.commit(
        &[(".quire/ci.toml", TWO_JOBS), ("README.md", "hello\n")],
        "first",
    );
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    let zero = "0".repeat(40);
    let stdin = format!("garbage\n{zero} {sha} refs/heads/main\n{zero} NOTHEX refs/heads/x\n");
    env.run(&["hook", "--git-dir", repo.bare.to_str().unwrap()])
        .write_stdin(stdin)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "quire: ignoring line 1 of the pushed refs: expected `<old> <new> <ref>`, got 1 fields",
        ))
        .stdout(predicate::str::contains(
            "quire: ignoring line 3 of the pushed refs: the new value \"NOTHEX\"",
        ))
        .stdout(predicate::str::contains("quire: queued run"));
    let runs = env.all_runs();
    assert_eq!(runs.len(), 1);
    env.wait_terminal(&runs[0].id);
}

#[test]
fn trigger_wait_runs_in_the_foreground_and_exits_with_the_outcome() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(".quire/ci.toml", TWO_JOBS), ("README.md", "hello\n")],
        "first",
    );
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    let bare = repo.bare.to_str().unwrap();
    env.run(&["trigger", "--git-dir", bare, "main", "--wait"])
        .assert()
        .success()
        .stdout(
            predicate::str::is_match(
                r"quire: run ([0-9a-f-]{36}) complete in .* \(quire-runs show [0-9a-f-]{36}\)\n",
            )
            .unwrap(),
        );
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.bad]
inputs = ["quire/push"]
sh = "exit 3"
"#,
        )],
        "failing",
    );
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    env.run(&["trigger", "--git-dir", bare, "refs/heads/main", "--wait"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("failed (pipeline-failure)"));
    env.run(&["trigger", "--git-dir", bare, "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "\"nope\" is neither a branch nor a tag",
        ));
    env.run(&["trigger", "--git-dir", bare, "main", &"0".repeat(40)])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("names no commit"));
}

#[test]
fn the_demo_pushes_a_project_and_its_run_completes() {
    let env = Env::new();
    let dir = env.path().join("demo");
    env.run(&["demo", "--dir", dir.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("state     complete"))
        .stdout(predicate::str::contains("test "));
    let runs = env.all_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].sha,
        git(&dir.join("app.git"), &["rev-parse", "main"])
    );
    env.run(&["demo", "--dir", dir.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already holds a demo"));
}

/// `quire-run demo ARGS` as a newcomer runs it: no --home, its scratch
/// folder under `tmp`.
fn demo(tmp: &std::path::Path, args: &[&str]) -> assert_cmd::assert::Assert {
    assert_cmd::Command::cargo_bin("quire-run")
        .unwrap()
        .env_remove("QUIRE_HOME")
        .env("TMPDIR", tmp)
        .arg("demo")
        .args(args)
        .timeout(Duration::from_secs(120))
        .assert()
}

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    found.sort();
    found
}

#[test]
fn the_demo_removes_its_scratch_folder_unless_kept_and_says_where_a_kept_one_is() {
    let tmp = tempfile::tempdir().unwrap();
    demo(tmp.path(), &[])
        .success()
        .stdout(predicate::str::contains("state     complete"))
        .stdout(predicate::str::contains(
            "quire: removed the demo's folder ",
        ))
        .stdout(predicate::str::contains("Look further").not());
    // The folder is gone: no command names it; the one to keep it next
    // time names the binary by its full path, which need not be on PATH.
    let quire_run = assert_cmd::cargo::cargo_bin("quire-run");
    let quire_runs = assert_cmd::cargo::cargo_bin("quire-runs");
    let out = demo(tmp.path(), &[]).success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&format!("`{} demo --keep` keeps it", quire_run.display())),
        "{stdout}"
    );
    assert!(!stdout.contains("--home"), "{stdout}");
    assert!(!stdout.contains("quire-runs "), "{stdout}");
    assert_eq!(entries(tmp.path()), Vec::<std::path::PathBuf>::new());

    let out = demo(tmp.path(), &["--keep"])
        .success()
        .stdout(predicate::str::contains("removed").not());
    let kept = entries(tmp.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    let dir = &kept[0];
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&format!(
            "Kept in {}: home/ (the home, its store), app.git (the repository, with quire's hook), app/ (a work tree); remove it when done.",
            dir.display()
        )),
        "{stdout}"
    );
    let home = dir.join("home");
    for command in ["show", "logs"] {
        assert!(
            stdout.contains(&format!(
                "{} --home {} {command} ",
                quire_runs.display(),
                home.display()
            )),
            "{command}: {stdout}"
        );
    }
    // Every command it prints names quire-runs by its full path.
    for line in stdout.lines().filter(|l| l.contains("--home")) {
        assert!(line.contains(&*quire_runs.to_string_lossy()), "{line}");
    }
    for part in [
        "home/quire.db",
        "app.git/hooks/post-receive",
        "app/.quire/ci.toml",
    ] {
        assert!(dir.join(part).exists(), "{part}");
    }
}

#[test]
fn show_of_an_active_run_keeps_up_while_a_step_prints_steadily() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    // The second step prints every 20 ms until the test has seen enough.
    let chatty = format!(
        "i=0; while [ ! -e {open} ] && [ $i -lt 3000 ]; do i=$((i+1)); echo $i; sleep 0.02; done",
        open = env.path().join("gate/open").display()
    );
    let id = repo.push_pipeline(&format!(
        r#"[jobs.chatty]
inputs = ["quire/push"]
sh = ["echo first", {chatty:?}]
"#
    ));
    // The job's log: the first step's line, then the second's.
    let log = env.home().run_dir(&id).unwrap().join("logs/chatty.log");
    wait_until("the chatty step to print 30 lines", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
            > 30
    });
    // While it prints, the store shows the first step done and the second
    // running (batched events are flushed every tick).
    wait_until("show to catch up with the chatty step", || {
        let detail = env.store().run_detail(&id).unwrap();
        let steps = detail
            .jobs
            .first()
            .map(|j| j.steps.clone())
            .unwrap_or_default();
        assert_eq!(
            detail.run.state,
            RunState::Active,
            "the step prints until the gate opens"
        );
        steps.len() == 2 && steps[0].exit_code == Some(0) && steps[1].exit_code.is_none()
    });
    gate.open();
    assert_eq!(env.wait_terminal(&id).state, RunState::Complete);
}
