//! `quire-runs watch`: following a real run, pushed through the hook and
//! executed by a worker, in a pipe (a line per change) and on a terminal
//! (`script` gives it one: the view redrawn in place). A run that had
//! already ended is in tests/snapshots_test.rs.

use std::process::{Command, Stdio};

use predicates::prelude::*;

use quire_testkit::{Env, Gate, LineReader, git, masked, wait_exit};

/// `quire-runs --home HOME watch ARGS`, to spawn.
fn watch(env: &Env, args: &[&str]) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("quire-runs"));
    command
        .env_remove("QUIRE_HOME")
        .env_remove("NO_COLOR")
        .env_remove("QUIRE_NOW")
        .arg("--home")
        .arg(env.home().dir())
        .arg("watch")
        .args(args);
    command
}

/// A job held at the gate, and one that runs after it.
fn held(gate: &Gate) -> String {
    format!(
        r#"[jobs.hold]
inputs = ["quire/push"]
sh = {:?}

[jobs.after]
inputs = ["hold"]
sh = "echo after"
"#,
        gate.step("hold")
    )
}

#[test]
fn watch_in_a_pipe_prints_a_line_per_change_and_exits_when_the_run_ends() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    let id = repo.push_pipeline(&held(&gate));
    let sha = git(&repo.work, &["rev-parse", "HEAD"]);
    gate.wait_ready("hold");

    // No RUN: the newest run.
    let mut child = watch(&env, &[]).stdout(Stdio::piped()).spawn().unwrap();
    let out = LineReader::new(child.stdout.take().unwrap());
    assert_eq!(
        out.next("the header"),
        Some(format!(
            "run {id} of app.git refs/heads/main at {}",
            &sha[..12]
        ))
    );
    assert_eq!(
        out.next("hold's start").as_deref(),
        Some("job hold started")
    );
    gate.open();
    let rest: Vec<String> = out.rest().iter().map(|l| masked(l)).collect();
    assert_eq!(
        rest,
        [
            "job hold complete in D (exit 0)".to_string(),
            "job after started".to_string(),
            "job after complete in D (exit 0)".to_string(),
            format!("run {id} complete in D"),
        ]
    );
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn watch_exit_status_is_1_when_the_run_fails_and_names_the_failing_step() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let id = repo.push_pipeline(
        // The failing command holds an escape sequence (TOML's \u001b): it
        // is printed escaped, never as the control character.
        r#"[jobs.broken]
inputs = ["quire/push"]
sh = ["echo fine", "exit 3 # \u001b[2J"]

[jobs.later]
inputs = ["broken"]
sh = "true"
"#,
    );
    let out = env
        .runs(&["watch", "--exit-status", &id])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains('\x1b'), "{text:?}");
    let lines: Vec<String> = text.lines().map(masked).collect();
    assert!(
        lines.contains(&r"job broken failed in D (exit 3; step 2: exit 3 # \x1b[2J)".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("job later skipped: ")),
        "{lines:#?}"
    );
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("run {id} failed (pipeline-failure) in "))
            && last.contains(": job broken failed: exit 3 at step 2 (exit 3 # \\x1b[2J)"),
        "{lines:#?}"
    );
    // Without --exit-status, watching is what succeeded.
    env.runs(&["watch", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("failed (pipeline-failure)"));
}

#[test]
fn watch_without_a_run_to_watch_says_so() {
    let env = Env::new();
    env.store();
    env.runs(&["watch"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "quire-runs: error: there is no run to watch: no runs yet",
        ));
    env.runs(&["watch", "--ref", "main"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no runs match"));
    env.runs(&["watch", "0123"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no run matches"));
    // A RUN and the filters that choose one are not given together.
    env.runs(&["watch", "0123", "--ref", "main"])
        .assert()
        .code(2);
}

/// `script` runs a command on a terminal of its own (util-linux); None
/// where there is none.
fn on_a_terminal(command: &Command) -> Option<Command> {
    // Without it, the terminal view is tested by watch.rs's unit tests only.
    let found = quire_testkit::program_runs("script", &["--version"]);
    if !quire_testkit::require("script (a terminal)", "apt-get install bsdutils", found) {
        return None;
    }
    let quoted = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let mut line = quoted(&command.get_program().to_string_lossy());
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&quoted(&arg.to_string_lossy()));
    }
    let mut script = Command::new("script");
    script
        .args(["-qfec", &line, "/dev/null"])
        .stdin(Stdio::null());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    Some(script)
}

#[test]
fn watch_on_a_terminal_redraws_the_jobs_in_place_until_the_run_ends() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    let id = repo.push_pipeline(&held(&gate));
    gate.wait_ready("hold");
    let Some(mut terminal) = on_a_terminal(&watch(&env, &[&id])) else {
        return;
    };
    let mut child = terminal.stdout(Stdio::piped()).spawn().unwrap();
    let out = LineReader::new(child.stdout.take().unwrap());
    let mut seen = out.until("step 1: touch");
    gate.open();
    seen.extend(out.rest());
    assert_eq!(wait_exit(&mut child).code(), Some(0));
    let text = seen.join("\n");
    // Redrawn in place: the cursor moves up over the lines drawn, each
    // line is cleared before it is written again.
    assert!(text.contains("\x1b[2K"), "{text:?}");
    assert!(text.contains("A\r\x1b[2K"), "{text:?}");
    // Colored marks and states, as list and show color theirs.
    assert!(text.contains("\x1b[33m*\x1b[0m hold"), "{text:?}");
    assert!(
        text.contains("\x1b[32m✓\x1b[0m hold   \x1b[32mcomplete\x1b[0m"),
        "{text:?}"
    );
    // Below the last view (and the erase of what was under it), the outcome.
    let last = seen.last().unwrap().trim_start_matches("\x1b[J");
    assert_eq!(masked(last), format!("run {id} complete in D"), "{seen:#?}");

    // NO_COLOR: the same view, redrawn, without colors.
    let mut plain = watch(&env, &[&id]);
    plain.env("NO_COLOR", "1");
    let out = on_a_terminal(&plain).unwrap().output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\x1b[2K  ✓ hold   complete"), "{text:?}");
    assert!(!text.contains("\x1b[32m"), "{text:?}");
}
