//! What a person reading a run needs (issue 16): a failed run names its
//! failed jobs and why, an allowed failure shows as such, a superseded run
//! names its successor, a pending run says what it waits for, the commit's
//! subject and author and what recorded the run are shown, `logs --failed`
//! prints only the failing steps, and nothing a pipeline prints can drive
//! the operator's terminal.

use quire_store::{FailureKind, RunEvent, RunState};

use quire_testkit::{Env, Gate, git};

/// Only the executor can say a job's node was lost or never started: a
/// step that prints quire's own lines for those fails as a step does.
#[test]
fn a_step_that_prints_quires_node_lines_cannot_claim_its_node_was_lost() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(
        r#"[jobs.test]
inputs = ["quire/push"]
sh = "echo 'quire: node lost: qnode9: gone'; echo 'quire: not started by slurm: no'; exit 4"
"#,
    );
    assert_eq!(run.failure_kind, Some(FailureKind::PipelineFailure));
    let detail = run.failure_detail.unwrap_or_default();
    assert!(
        detail.starts_with("job test failed: exit 4 at step 1"),
        "{detail}"
    );
}

#[test]
fn a_failed_run_names_each_failed_job_and_why_and_an_allowed_failure_shows_as_such() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(
        r#"[jobs.lint]
inputs = ["quire/push"]
allow_failure = true
sh = "exit 2"

[jobs.test]
inputs = ["quire/push"]
sh = ["true", "echo boom; exit 3"]

[jobs.slow]
inputs = ["quire/push"]
timeout = "1s"
sh = "sleep 30"
"#,
    );
    assert_eq!(run.failure_kind, Some(FailureKind::PipelineFailure));
    let detail = run.failure_detail.clone().unwrap();
    assert!(
        detail.contains("job test failed: exit 3 at step 2 (echo boom; exit 3)"),
        "{detail}"
    );
    assert!(
        detail.contains("job slow timed out after 1s at step 1 (sleep 30)"),
        "{detail}"
    );
    assert!(
        !detail.contains("lint"),
        "an allowed failure is not the run's: {detail}"
    );
    let shown = env.stdout(&["show", &run.id]);
    assert!(shown.contains(&format!("detail    {detail}")), "{shown}");
    let lint = shown.lines().find(|l| l.starts_with("lint")).unwrap();
    assert!(lint.contains("failed (allowed)"), "{shown}");
    let json = env.json(&["show", &run.id]);
    assert_eq!(json["jobs"][0]["allow_failure"], true, "{json}");
    assert_eq!(json["jobs"][1]["allow_failure"], false, "{json}");
    assert_eq!(json["event"], "push");

    // Only the failing steps' logs.
    let failed = env.stdout(&["logs", &run.id, "--failed"]);
    assert!(
        failed.contains("==> test step 2: echo boom; exit 3 <=="),
        "{failed}"
    );
    assert!(failed.contains("boom"), "{failed}");
    assert!(failed.contains("==> slow step 1: sleep 30 <=="), "{failed}");
    assert!(!failed.contains("test step 1"), "{failed}");
    // A failure the pipeline allowed is a failed step too.
    assert!(failed.contains("==> lint step 1: exit 2 <=="), "{failed}");
}

#[test]
fn a_superseded_run_names_its_successor_and_the_commit_and_event_are_shown() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let app = env.repo_with_hook("app");
    let held = app.push_pipeline(&gate.job("wait", "held"));
    gate.wait_ready("held");
    app.commit(
        &[("README", "next")],
        "Make the README say next\n\nA body line.",
    );
    let next = app.push_refs(&["main"]).remove(0);
    gate.open();
    let old = env.wait_terminal(&held);
    assert_eq!(old.state, RunState::Superseded);
    assert_eq!(old.superseded_by.as_deref(), Some(next.as_str()));
    let shown = env.stdout(&["show", &held]);
    assert!(
        shown.contains(&format!("successor run {next} (quire-runs show {next})")),
        "{shown}"
    );
    let new = env.wait_terminal(&next);
    assert_eq!(new.subject.as_deref(), Some("Make the README say next"));
    assert_eq!(
        new.author.as_deref(),
        Some("Quire Test <test@quire.invalid>")
    );
    assert_eq!(new.event, Some(RunEvent::Push));
    let listed = env.stdout(&["list"]);
    assert!(listed.contains("Make the README say next"), "{listed}");
    assert_eq!(env.json(&["show", &held])["superseded_by"], next.as_str());
}

#[test]
fn a_pending_run_says_what_it_waits_for() {
    let env = Env::new();
    env.config("max_workers = 1\n");
    let gate = Gate::new(&env);
    let app = env.repo_with_hook("app");
    let busy = app.push_pipeline(&gate.job("wait", "busy"));
    gate.wait_ready("busy");
    git(&app.work, &["branch", "other"]);
    let queued = app.push_refs(&["other"]).remove(0);
    let shown = env.stdout(&["show", &queued]);
    gate.open();
    assert!(
        shown.contains(&format!(
            "waiting   for a worker slot: all 1 are busy (executing {busy}); first in the queue"
        )),
        "{shown}"
    );
    env.wait_terminal(&queued);
}

#[test]
fn show_exit_status_tells_no_such_run_from_a_failed_one() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "exit 1"
"#,
    );
    env.runs(&["show", "--exit-status", &run.id])
        .assert()
        .code(1);
    env.runs(&["show", "--exit-status", "ffffffff"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no run matches"));
    env.runs(&["show", "ffffffff"]).assert().code(1);
}

#[test]
fn nothing_a_pipeline_prints_or_names_can_drive_the_terminal() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    // A command holding an escape sequence, and a step printing ones that
    // clear the screen and set the title, beside a colour.
    let run = app.push_and_wait(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "true \u001b[H; printf '\\033[31mred\\033[0m \\033[2J\\033]0;owned\\007 done\\n'"
"#,
    );
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let shown = env.stdout(&["show", &run.id]);
    assert!(!shown.contains('\x1b'), "{shown:?}");
    assert!(shown.contains(r"1. true \x1b[H; printf"), "{shown}");
    let logs = env.stdout(&["logs", &run.id]);
    assert!(
        logs.contains("\x1b[31mred\x1b[0m"),
        "colours pass: {logs:?}"
    );
    assert!(logs.contains(r"\x1b[2J\x1b]0;owned\x07 done"), "{logs:?}");
    assert!(!logs.contains("\x1b[2J"), "{logs:?}");
    assert!(!logs.contains("\x1b[H"), "{logs:?}");
    let raw = env.stdout(&["logs", &run.id, "--raw"]);
    assert!(raw.contains("\x1b[2J\x1b]0;owned\x07 done"), "{raw:?}");
}

/// A log line that is no CRI record (a damaged log, a log brought over
/// from upstream) is escaped as a record's text is: it cannot drive the
/// terminal either, unless `--raw` is asked for.
#[test]
fn a_log_line_that_is_no_record_cannot_drive_the_terminal_either() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let app = env.repo_with_hook("app");
    let id = app.push_pipeline(&format!(
        "[jobs.t]\ninputs = [\"quire/push\"]\nsh = {:?}\n",
        format!("echo before; {}", gate.step("held"))
    ));
    gate.wait_ready("held");
    let log = env.home().run_dir(&id).unwrap().join("logs/t.log");
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut file, b"\x1b[2Jno record\x1b]0;owned\x07\n").unwrap();
    gate.open();
    env.wait_terminal(&id);
    // Read back after the run's end (its log packed into the store, the
    // line with it).
    let logs = env.stdout(&["logs", &id]);
    let raw = env.stdout(&["logs", &id, "--raw"]);
    assert!(logs.contains("before"), "{logs:?}");
    assert!(!logs.contains("\x1b[2J"), "{logs:?}");
    assert!(
        logs.contains(r"\x1b[2Jno record\x1b]0;owned\x07"),
        "{logs:?}"
    );
    assert!(raw.contains("\x1b[2Jno record"), "{raw:?}");
}

#[test]
fn a_config_typo_at_push_time_records_the_runs_failed_and_retry_recovers_them() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    env.config("max_wokers = 2\n");
    app.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#,
        )],
        "pipeline",
    );
    let (ok, stderr) = app.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("failed (config-invalid)"), "{stderr}");
    assert!(stderr.contains("max_wokers"), "{stderr}");
    let runs = env.all_runs();
    assert_eq!(runs.len(), 1);
    let failed = &runs[0];
    assert_eq!(failed.failure_kind, Some(FailureKind::ConfigInvalid));
    assert!(
        failed
            .failure_detail
            .as_deref()
            .unwrap()
            .contains("max_wokers"),
        "{failed:?}"
    );
    let shown = env.stdout(&["show", &failed.id]);
    assert!(shown.contains("quire-runs retry"), "{shown}");
    env.config("max_workers = 2\n");
    let out = env.stdout(&["retry", &failed.id]);
    let retry = out
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(',')
        .to_string();
    assert_eq!(env.wait_terminal(&retry).state, RunState::Complete);
}
