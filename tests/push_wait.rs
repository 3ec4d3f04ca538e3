//! `git push -o ci.wait`: the hook keeps the push open until the runs it
//! recorded have ended, and the pusher sees each job's start and end, a
//! failed step's last lines and each run's outcome as `remote:` lines.
//! Waiting never touches a run: a pusher who goes away (the pipe's reader
//! closed, SIGINT, SIGHUP) ends only the waiting. A plain push returning
//! while a long pipeline runs is `push.rs:
//! git_push_returns_while_a_long_pipeline_runs_and_a_force_push_stops_it`.

use std::io::{BufRead, Write};
use std::process::{ChildStderr, Command, Stdio};
use std::time::Duration;

use quire_store::RunState;

use quire_testkit::{Env, Gate, LineReader, Repo, git, masked, signal, wait_exit};

/// The hook's lines in a push's stderr: `remote: ` and the padding git
/// adds after each line taken off.
fn remote_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("remote: "))
        .map(|l| l.trim_end().to_string())
        .collect()
}

const TWO_JOBS: &str = r#"[jobs.build]
inputs = ["quire/push"]
sh = "echo built"

[jobs.test]
inputs = ["build"]
sh = ["true", "echo tested"]
"#;

#[test]
fn push_with_ci_wait_shows_each_job_and_returns_once_the_run_completed() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(&[(".quire/ci.toml", TWO_JOBS)], "pipeline");
    let (ok, stderr) = repo.push(&["-o", "ci.wait", "origin", "main"]);
    assert!(ok, "{stderr}");
    let id = quire_testkit::queued_runs(&stderr).remove(0);
    // The push returned once the run had ended.
    assert_eq!(
        env.store().resolve_run(&id).unwrap().state,
        RunState::Complete
    );
    let lines: Vec<String> = remote_lines(&stderr).iter().map(|l| masked(l)).collect();
    assert_eq!(
        lines,
        [
            format!("quire: queued run {id} for refs/heads/main (quire-runs show {id})"),
            format!("quire: waiting for run {id} (ci.wait); Ctrl-C stops the waiting, not the run"),
            "quire: job build started".to_string(),
            "quire: job build complete in D (exit 0)".to_string(),
            "quire: job test started".to_string(),
            "quire: job test complete in D (exit 0)".to_string(),
            format!("quire: run {id} complete in D (quire-runs show {id})"),
        ],
        "{stderr}"
    );
}

/// `-o ci.logs`: `ci.wait`, and each line the steps print, after its
/// job's start and before its end, escaped, the last one even without its
/// newline.
#[test]
fn push_with_ci_logs_shows_each_line_the_steps_print_between_the_jobs_start_and_end() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let pipeline = r#"[jobs.build]
inputs = ["quire/push"]
sh = ["echo one; echo two", "head -c 20000 /dev/zero | tr '\\0' x; echo", "printf 'bell \\007\\nlast'"]
"#;
    repo.commit(&[(".quire/ci.toml", pipeline)], "pipeline");
    let (ok, stderr) = repo.push(&["-o", "ci.logs", "origin", "main"]);
    assert!(ok, "{stderr}");
    let lines: Vec<String> = remote_lines(&stderr).iter().map(|l| masked(l)).collect();
    let at = |line: &str| {
        lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("{line}: {stderr}"))
    };
    let started = at("quire: job build started");
    let ended = at("quire: job build complete in D (exit 0)");
    let printed: Vec<&str> = lines[started + 1..ended]
        .iter()
        .map(String::as_str)
        .collect();
    let long = format!("quire: build | {}", "x".repeat(20_000));
    assert_eq!(
        printed,
        [
            "quire: build | one",
            "quire: build | two",
            // Longer than a record holds (16 KiB): written in two, told
            // as the one line it is.
            &long,
            "quire: build | bell \\x07",
            "quire: build | last"
        ],
        "{stderr}"
    );
}

#[test]
fn push_with_ci_wait_of_two_refs_names_each_lines_ref_and_waits_for_both() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(&[(".quire/ci.toml", TWO_JOBS)], "pipeline");
    let (ok, stderr) = repo.push(&["-o", "ci.wait", "origin", "main", "main:feature"]);
    assert!(ok, "{stderr}");
    let runs = quire_testkit::queued_runs(&stderr);
    assert_eq!(runs.len(), 2, "{stderr}");
    let lines: Vec<String> = remote_lines(&stderr).iter().map(|l| masked(l)).collect();
    assert!(
        lines.contains(
            &"quire: waiting for 2 runs (ci.wait); Ctrl-C stops the waiting, not the run".into()
        ),
        "{stderr}"
    );
    for (branch, id) in ["main", "feature"].iter().zip(&runs) {
        for line in [
            format!("quire: [{branch}] job build started"),
            format!("quire: [{branch}] job test complete in D (exit 0)"),
            format!("quire: [{branch}] run {id} complete in D (quire-runs show {id})"),
        ] {
            assert!(lines.contains(&line), "{line}: {stderr}");
        }
        assert_eq!(
            env.store().resolve_run(id).unwrap().state,
            RunState::Complete
        );
    }
}

#[test]
fn push_with_ci_wait_of_an_invalid_pipeline_tells_its_outcome_at_once() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.x]
sh = 5
"#,
        )],
        "invalid",
    );
    let (ok, stderr) = repo.push(&["-o", "ci.wait", "origin", "main"]);
    assert!(ok, "{stderr}");
    let lines = remote_lines(&stderr);
    let id = env.all_runs()[0].id.clone();
    let at = lines
        .iter()
        .position(|l| {
            *l == format!("quire: run {id} failed (pipeline-invalid) (quire-runs show {id})")
        })
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        lines[at + 1].starts_with("quire:   .quire/ci.toml:"),
        "{stderr}"
    );
}

#[test]
fn push_with_ci_wait_of_a_failing_run_shows_the_last_20_lines_of_the_failing_step() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    // 30 lines, then one holding a control character (BEL), then exit 3.
    let failing = r#"[jobs.check]
inputs = ["quire/push"]
sh = ["echo ok", "for i in $(seq 1 30); do echo line $i; done; printf 'bell \\007\\n'; exit 3"]

[jobs.after]
inputs = ["check"]
sh = "true"
"#;
    repo.commit(&[(".quire/ci.toml", failing)], "failing");
    let (ok, stderr) = repo.push(&["-o", "ci.wait", "origin", "main"]);
    // git ignores a post-receive hook's status: the push itself succeeded.
    assert!(ok, "{stderr}");
    assert!(!stderr.contains('\x07'), "{stderr:?}");
    let id = quire_testkit::queued_runs(&stderr).remove(0);
    let lines: Vec<String> = remote_lines(&stderr).iter().map(|l| masked(l)).collect();
    let failed = lines
        .iter()
        .position(|l| l.starts_with("quire: job check failed"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let mut expected = vec![
        // The command is cut to 60 characters.
        r"quire: job check failed in D (exit 3; step 2: for i in $(seq 1 30); do echo line $i; done; printf 'bell \…)"
            .to_string(),
        "quire:   the last 20 lines of step 2:".to_string(),
    ];
    expected.extend((12..=30).map(|i| format!("quire:   | line {i}")));
    expected.push(r"quire:   | bell \x07".to_string());
    expected.push("quire: job after skipped: needs check, which failed".to_string());
    expected.push(format!(
        "quire: run {id} failed (pipeline-failure) in D (quire-runs show {id})"
    ));
    assert_eq!(
        lines[failed..failed + expected.len()],
        expected[..],
        "{stderr}"
    );
    // Then the run's detail, naming the failed job.
    let detail = &lines[failed + expected.len()];
    assert!(
        detail.starts_with("quire:   job check failed: exit 3 at step 2 (for i in"),
        "{stderr}"
    );
    assert_eq!(lines.len(), failed + expected.len() + 1, "{stderr}");
    assert_eq!(lines[failed - 1], "quire: job check started");
    assert!(
        !stderr.contains("| line 11"),
        "no more than 20 lines: {stderr}"
    );
}

#[test]
fn push_with_ci_wait_that_records_no_run_says_so_and_returns() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(&[(".quire/ci.toml", TWO_JOBS)], "docs [skip ci]");
    let (ok, stderr) = repo.push(&["-o", "ci.wait", "origin", "main", "main:feature"]);
    assert!(ok, "{stderr}");
    let lines = remote_lines(&stderr);
    assert!(
        lines
            .contains(&"quire: no run for refs/heads/main: [skip ci] in the commit message".into()),
        "{stderr}"
    );
    let nothing =
        "quire: ci.wait: this push recorded no run; there is nothing to wait for".to_string();
    assert_eq!(lines.last(), Some(&nothing), "{stderr}");
    // A deletion records no run either.
    let (ok, stderr) = repo.push(&["-o", "ci.wait", "origin", ":feature"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        remote_lines(&stderr),
        ["quire: refs/heads/feature was deleted".to_string(), nothing],
        "{stderr}"
    );
    assert!(env.all_runs().is_empty());
}

/// The repository's main pushed without a run (`-o ci.skip`), its pipeline
/// a job held at the gate; and `quire-run hook`, as git runs it for a push
/// of main with `-o ci.wait`, its stderr a pipe: the hook, and the run id
/// from the first line it wrote there.
fn waiting_hook(env: &Env, repo: &Repo, gate: &Gate) -> (std::process::Child, ChildStderr, String) {
    let pipeline = gate.job("hold", "hold");
    repo.commit(&[(".quire/ci.toml", &pipeline)], "held");
    let (ok, stderr) = repo.push(&["-o", "ci.skip", "origin", "main"]);
    assert!(ok, "{stderr}");
    let sha = git(&repo.work, &["rev-parse", "HEAD"]);
    let mut hook = Command::new(assert_cmd::cargo::cargo_bin("quire-run"))
        .env_remove("QUIRE_HOME")
        .env_remove("GIT_DIR")
        .env("GIT_PUSH_OPTION_COUNT", "1")
        .env("GIT_PUSH_OPTION_0", "ci.wait")
        .arg("--home")
        .arg(env.home().dir())
        .args(["hook", "--git-dir"])
        .arg(&repo.bare)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = hook.stdin.take().unwrap();
    writeln!(stdin, "{} {sha} refs/heads/main", "0".repeat(40)).unwrap();
    drop(stdin);
    // The first line, read on a thread so that a hook that never writes
    // fails the test after a minute instead of hanging it.
    let stderr = hook.stderr.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stderr);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = send.send((line, reader.into_inner()));
    });
    let (line, stderr) = receive
        .recv_timeout(Duration::from_secs(60))
        .expect("the hook's first line on stderr within a minute");
    let id = line
        .strip_prefix("quire: waiting for run ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    gate.wait_ready("hold");
    (hook, stderr, id)
}

#[test]
fn a_waiting_hook_whose_reader_goes_away_stops_waiting_and_the_run_goes_on() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    let (mut hook, stderr, id) = waiting_hook(&env, &repo, &gate);
    // The pusher is gone (Ctrl-C ended git push, and with it the pipe).
    drop(stderr);
    let status = wait_exit(&mut hook);
    // Exited on its own, not killed by SIGPIPE, and without a panic.
    assert_eq!(status.code(), Some(0), "{status:?}");
    let run = env.store().resolve_run(&id).unwrap();
    assert_eq!(run.state, RunState::Active, "{run:?}");
    gate.open();
    assert_eq!(env.wait_terminal(&id).state, RunState::Complete);
}

#[test]
fn sigint_or_sighup_to_a_waiting_hook_ends_only_the_waiting() {
    for sig in [rustix::process::Signal::INT, rustix::process::Signal::HUP] {
        let env = Env::new();
        let repo = env.repo_with_hook("app");
        let gate = Gate::new(&env);
        let (mut hook, stderr, id) = waiting_hook(&env, &repo, &gate);
        let rest = LineReader::new(stderr);
        signal(hook.id(), sig);
        let status = wait_exit(&mut hook);
        assert_eq!(status.code(), Some(0), "{sig:?}: {status:?}");
        let said = rest.rest();
        assert_eq!(
            said.last(),
            Some(&format!(
                "quire: stopped waiting; run {id} goes on (quire-runs watch {id})"
            )),
            "{sig:?}: {said:#?}"
        );
        let run = env.store().resolve_run(&id).unwrap();
        assert_eq!(run.state, RunState::Active, "{sig:?}: {run:?}");
        gate.open();
        assert_eq!(env.wait_terminal(&id).state, RunState::Complete, "{sig:?}");
    }
}
