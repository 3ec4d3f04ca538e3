//! quire-runs list / show / reconcile against a real store.

use predicates::prelude::*;
use serde_json::Value;

use quire_testkit::{Env, SHA, assert_no_time, assert_time, find, populate};

const RUN_FIELDS: &[&str] = &[
    "id",
    "repo",
    "ref",
    "sha",
    "state",
    "failure_kind",
    "failure_detail",
    "pushed_at",
    "pushed_at_ms",
    "queued_at",
    "queued_at_ms",
    "started_at",
    "started_at_ms",
    "finished_at",
    "finished_at_ms",
    "duration_ms",
    "git_dir",
    "traceparent",
    "worker",
    "containment",
    "cgroup",
    "sandbox",
    "subject",
    "author",
    "event",
    "superseded_by",
    "retry_of",
];

#[test]
fn an_empty_home_lists_nothing_and_says_so() {
    let env = Env::new();
    env.store();
    env.runs(&["list"])
        .assert()
        .success()
        .stdout("")
        .stderr("no runs yet\n");
    assert_eq!(env.json(&["list"]), Value::Array(vec![]));
    env.runs(&["reconcile"])
        .assert()
        .success()
        .stdout("0 runs orphaned, 0 live left alone, 0 pending\n");
    let report = env.json(&["reconcile"]);
    assert_eq!(report["orphaned"], Value::Array(vec![]));
    assert_eq!(report["dry_run"], false);
    // The store was created on first use.
    assert!(env.home().db_path().is_file());
}

#[test]
fn a_missing_home_is_a_clear_error_and_is_not_created() {
    let env = Env::new();
    for args in [
        &["list"][..],
        &["show", "01"],
        &["reconcile"],
        &["logs", "01"],
        &["wait", "01"],
    ] {
        env.runs(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("no quire home at"))
            .stderr(predicate::str::contains("hint: pass the --home"));
    }
    assert!(!env.home().dir().exists());
}

#[test]
fn list_json_carries_every_field_with_its_type() {
    let env = Env::new();
    let ids = populate(&mut env.store());
    let runs = env.json(&["list"]);
    let runs_array = runs.as_array().unwrap();
    assert_eq!(runs_array.len(), 6);
    for run in runs_array {
        let keys: Vec<&str> = run
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), RUN_FIELDS.len(), "{run}");
        for field in RUN_FIELDS {
            assert!(run.get(*field).is_some(), "{field} missing from {run}");
        }
        assert_eq!(run["repo"], "app.git");
        assert_eq!(run["sha"], SHA);
        assert_eq!(run["git_dir"], "/srv/git/app.git");
        assert_eq!(run["id"].as_str().unwrap().len(), 36);
        assert_time(run, "pushed_at");
        assert_time(run, "queued_at");
        let traceparent = run["traceparent"].as_str().unwrap();
        assert_eq!(traceparent.len(), 55, "{traceparent}");
    }
    // Newest first.
    let order: Vec<&str> = runs_array
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            &ids.orphan,
            &ids.live,
            &ids.pending,
            &ids.failed,
            &ids.complete,
            &ids.superseded
        ]
    );

    let complete = find(&runs, &ids.complete);
    assert_eq!(complete["state"], "complete");
    assert_eq!(complete["ref"], "refs/heads/main");
    assert!(complete["failure_kind"].is_null());
    assert_time(complete, "started_at");
    assert_time(complete, "finished_at");
    assert_eq!(
        complete["duration_ms"].as_i64().unwrap(),
        complete["finished_at_ms"].as_i64().unwrap() - complete["started_at_ms"].as_i64().unwrap()
    );
    assert_eq!(complete["worker"]["id"], "worker-gone");
    assert!(complete["worker"]["pid"].is_u64());
    assert_time(&complete["worker"], "lease_expires_at");

    let failed = find(&runs, &ids.failed);
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["failure_kind"], "pipeline-failure");
    assert_eq!(failed["failure_detail"], "job build failed");

    let pending = find(&runs, &ids.pending);
    assert_eq!(pending["state"], "pending");
    assert_eq!(pending["ref"], "refs/tags/v1.0");
    assert_no_time(pending, "started_at");
    assert_no_time(pending, "finished_at");
    assert!(pending["duration_ms"].is_null());
    assert!(pending["worker"].is_null());

    let superseded = find(&runs, &ids.superseded);
    assert_eq!(superseded["state"], "superseded");
    assert_time(superseded, "finished_at");
    assert_no_time(superseded, "started_at");

    let live = find(&runs, &ids.live);
    assert_eq!(live["state"], "active");
    assert_no_time(live, "finished_at");
    assert!(live["duration_ms"].as_i64().unwrap() >= 0);
}

#[test]
fn list_filters_by_state_ref_repo_and_limit() {
    let env = Env::new();
    let ids = populate(&mut env.store());
    let ids_of = |args: &[&str]| -> Vec<String> {
        let runs = env.json(args);
        runs.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids_of(&["list", "--state", "failed", "--state", "pending"]),
        [&ids.failed, &ids.pending]
            .map(|s| s.clone())
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        ids_of(&["list", "--ref", "main"]),
        vec![ids.complete.clone(), ids.superseded.clone()]
    );
    assert_eq!(
        ids_of(&["list", "--ref", "refs/heads/main", "--state", "superseded"]),
        vec![ids.superseded.clone()]
    );
    assert_eq!(
        ids_of(&["list", "--ref", "v1.0"]),
        vec![ids.pending.clone()]
    );
    assert_eq!(
        ids_of(&["list", "--limit", "2"]),
        vec![ids.orphan.clone(), ids.live.clone()]
    );
    assert_eq!(ids_of(&["list", "--repo", "app.git"]).len(), 6);
    assert_eq!(ids_of(&["list", "--repo", "app"]).len(), 6);
    assert_eq!(
        ids_of(&["list", "--repo", "app", "--state", "pending"]).len(),
        1
    );
    // A repository quire does not know is a mistake worth saying, not an
    // empty list.
    env.runs(&["list", "--repo", "other.git"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "no repository \"other.git\" is known",
        ))
        .stderr(predicate::str::contains("quire-runs repos"));
}

#[test]
fn list_for_people_is_a_plain_table_without_color_in_a_pipe() {
    let env = Env::new();
    let ids = populate(&mut env.store());
    let out = env
        .runs(&["list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "no escape codes in a pipe: {text:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(lines[0].starts_with("RUN"), "{text}");
    for header in ["REPO", "REF", "SHA", "STATE", "DURATION", "AGE"] {
        assert!(lines[0].contains(header), "{header}: {text}");
    }
    // Short ids are unique suffixes of at least 8 characters.
    let short = lines[4].split_whitespace().next().unwrap();
    assert!(
        short.len() >= 8 && ids.failed.ends_with(short),
        "{short} vs {}",
        ids.failed
    );
    assert!(
        lines[4].contains("failed (pipeline-failure)"),
        "{}",
        lines[4]
    );
    assert!(
        lines[3].contains("tag v1.0") && lines[3].contains("pending"),
        "{}",
        lines[3]
    );
    assert!(lines[5].contains(&SHA[..12]) && !lines[5].contains(&SHA[..13]));
    // Every listed short id resolves to its run.
    for line in &lines[1..] {
        let short = line.split_whitespace().next().unwrap();
        env.runs(&["show", short, "--json"]).assert().success();
    }
    // NO_COLOR is honoured too (and a pipe is not a terminal anyway).
    let plain = env
        .runs(&["list"])
        .env("NO_COLOR", "1")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let plain = String::from_utf8(plain).unwrap();
    assert!(!plain.contains('\u{1b}'));
    assert_eq!(plain.lines().count(), lines.len());
}

#[test]
fn show_json_has_jobs_in_plan_order_with_their_steps() {
    let env = Env::new();
    let ids = populate(&mut env.store());
    let run = env.json(&["show", &ids.complete]);
    assert_eq!(run["id"], ids.complete.as_str());
    assert_eq!(run["state"], "complete");
    for field in RUN_FIELDS {
        assert!(run.get(*field).is_some(), "{field}");
    }
    let jobs = run["jobs"].as_array().unwrap();
    assert_eq!(
        jobs.iter()
            .map(|j| j["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["build", "test"]
    );
    for job in jobs {
        assert_eq!(job["state"], "complete");
        assert_eq!(job["exit_code"], 0);
        assert!(job["skip_reason"].is_null());
        assert_time(job, "started_at");
        assert_time(job, "finished_at");
        let steps = job["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0]["seq"], 1);
        assert_eq!(steps[0]["cmd"], "cargo build");
        assert_eq!(steps[1]["seq"], 2);
        assert_eq!(steps[1]["cmd"], "cargo test --all");
        for step in steps {
            assert_eq!(step["exit_code"], 0);
            assert_time(step, "started_at");
            assert_time(step, "finished_at");
        }
    }

    let failed = env.json(&["show", &ids.failed]);
    let jobs = failed["jobs"].as_array().unwrap();
    assert_eq!(jobs[0]["state"], "failed");
    assert_eq!(jobs[0]["exit_code"], 2);
    assert_eq!(jobs[0]["steps"][0]["exit_code"], 2);
    assert_eq!(jobs[1]["state"], "skipped");
    assert_eq!(jobs[1]["skip_reason"], "needs build, which failed");
    assert_no_time(&jobs[1], "started_at");

    let live = env.json(&["show", &ids.live]);
    let step = &live["jobs"][0]["steps"][0];
    assert_eq!(live["jobs"][0]["state"], "active");
    assert!(step["exit_code"].is_null());
    assert_no_time(step, "finished_at");

    let pending = env.json(&["show", &ids.pending]);
    assert_eq!(pending["jobs"], Value::Array(vec![]));
}

#[test]
fn show_for_people_reads_as_a_report() {
    let env = Env::new();
    let ids = populate(&mut env.store());
    env.runs(&["show", &ids.failed])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "run       {}",
            ids.failed
        )))
        .stdout(predicate::str::contains(
            "state     failed (pipeline-failure)",
        ))
        .stdout(predicate::str::contains(
            "meaning   a job of the pipeline failed",
        ))
        .stdout(predicate::str::contains("detail    job build failed"))
        .stdout(predicate::str::contains(
            "repo      app.git (/srv/git/app.git)",
        ))
        .stdout(predicate::str::is_match(r"(?m)^build\s+failed\s+\S+\s+2$").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^  1\. make\s+\S+\s+2$").unwrap())
        .stdout(predicate::str::contains(
            "skipped: needs build, which failed",
        ))
        .stdout(predicate::str::contains("\u{1b}").not());
    env.runs(&["show", &ids.live])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "running   build step 1: sleep 600",
        ))
        .stdout(predicate::str::contains(format!(
            "worker    pid {}",
            std::process::id()
        )));
    env.runs(&["show", &ids.pending])
        .assert()
        .success()
        .stdout(predicate::str::contains("no jobs recorded"));
}

#[test]
fn unknown_and_ambiguous_ids_are_clear_errors() {
    let env = Env::new();
    let ids = populate(&mut env.store());
    env.runs(&["show", "ffffffff"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("no run matches \"ffffffff\""))
        .stderr(predicate::str::contains("hint: `quire-runs list`"));
    env.runs(&["show", "not an id!"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no run matches"));
    // Every id begins with the same time prefix.
    env.runs(&["show", &ids.complete[..4]])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is ambiguous"))
        .stderr(predicate::str::contains(&ids.complete))
        .stderr(predicate::str::contains("hint: give more characters"));
    // A unique prefix works, in either case.
    let unique = &ids.orphan[..ids.orphan.len() - 2];
    let run = env.json(&["show", &unique.to_uppercase()]);
    assert_eq!(run["id"], ids.orphan.as_str());
}

#[test]
fn reconcile_orphans_only_runs_whose_worker_is_gone() {
    let env = Env::new();
    let ids = populate(&mut env.store());

    let dry = env.json(&["reconcile", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    let orphaned = dry["orphaned"].as_array().unwrap();
    assert_eq!(orphaned.len(), 1, "{dry}");
    assert_eq!(orphaned[0]["run"], ids.orphan.as_str());
    assert_eq!(orphaned[0]["ref"], "refs/heads/orphan");
    assert!(orphaned[0]["reason"].as_str().unwrap().contains("is gone"));
    assert_eq!(dry["live"], serde_json::json!([ids.live]));
    assert_eq!(dry["awaiting_worker"], serde_json::json!([ids.pending]));
    assert_eq!(
        env.json(&["show", &ids.orphan])["state"],
        "active",
        "a dry run changes nothing"
    );

    env.runs(&["reconcile"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "orphaned {} (app.git refs/heads/orphan)",
            ids.orphan
        )))
        .stdout(predicate::str::contains(format!(
            "pending {}: waiting for a worker",
            ids.pending
        )))
        .stdout(predicate::str::contains(
            "1 run orphaned, 1 live left alone, 1 pending",
        ));
    let orphan = env.json(&["show", &ids.orphan]);
    assert_eq!(orphan["state"], "failed");
    assert_eq!(orphan["failure_kind"], "orphaned");
    assert_eq!(orphan["jobs"][0]["state"], "aborted");
    assert_eq!(orphan["jobs"][1]["state"], "skipped");
    assert_time(&orphan, "finished_at");
    assert_eq!(env.json(&["show", &ids.live])["state"], "active");

    // Again, from cron: nothing left to do.
    let again = env.json(&["reconcile"]);
    assert_eq!(again["orphaned"], Value::Array(vec![]));
    assert_eq!(env.json(&["show", &ids.live])["state"], "active");
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.runs(&["list", "--state", "bogus"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a run state"));
    env.runs(&["frobnicate"]).assert().code(2);
    env.runs(&["cancel"]).assert().code(2);
    env.runs(&["list", "--limit", "-1"]).assert().code(2);
    env.run(&["trigger"]).assert().code(2);
    env.runs(&["--version"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("quire-runs "));
    env.run(&["--version"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("quire-run "));
}
