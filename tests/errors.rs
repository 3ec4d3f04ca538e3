//! What a command says when it cannot do what was asked: the message names
//! what went wrong, the hint the right fix, and no command passes another
//! layer's error off as its own (issue 23: "one error model").

use std::process::{Command, Stdio};

use predicates::prelude::*;

use quire_testkit::{Env, populate};

/// A step a job does not have is not found (exit 1), named with its run,
/// its job and the steps there are; no "refusing to record a run".
#[test]
fn logs_of_a_step_that_does_not_exist_names_the_steps_there_are() {
    let env = Env::new();
    let fixture = populate(&mut env.store());
    let run = &fixture.complete;
    env.runs(&["logs", run, "build", "--step", "99"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "quire-runs: error: job build of run {run} has no step 99; its steps are 1 and 2"
        )))
        .stderr(predicate::str::contains(format!(
            "hint: `quire-runs logs {run} build` prints all of them"
        )))
        .stderr(predicate::str::contains("refusing").not());
}

/// `quire-runs ARGS` with /dev/full as its stdout: every write fails with
/// ENOSPC. Returns the exit code and stderr.
fn into_dev_full(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("quire-runs"))
        .env_remove("QUIRE_HOME")
        .arg("--home")
        .arg(env.home().dir())
        .args(args)
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A full disk behind stdout is said as such, exit 1, with no hint to
/// pass another --home: the home is fine, the output is not.
#[test]
fn a_failed_write_to_stdout_says_so_and_blames_no_home() {
    let env = Env::new();
    let fixture = populate(&mut env.store());
    let run = fixture.complete.as_str();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["show", run],
        &["show", run, "--json"],
        &["logs", run],
        &["repos"],
    ] {
        let (code, stderr) = into_dev_full(&env, args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(
                "quire-runs: error: cannot write to standard output: No space left on device"
            ),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("--home"), "{args:?}: {stderr}");
        assert!(!stderr.contains("quire's home"), "{args:?}: {stderr}");
    }
}

/// A config.toml that cannot be read, and a worker that cannot be
/// started, are two failures and read as two: neither is "cannot use ... as
/// quire's home", neither hints at --home.
#[test]
fn an_unreadable_config_and_a_failed_worker_start_say_different_things() {
    let env = Env::new();
    let fixture = populate(&mut env.store());
    let home = env.home().dir().to_path_buf();

    // config.toml a directory: reading it fails (EISDIR), even for root.
    std::fs::create_dir(home.join("config.toml")).unwrap();
    env.runs(&["retry", &fixture.complete])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "quire-runs: error: cannot read {}: Is a directory",
            home.join("config.toml").display()
        )))
        .stderr(predicate::str::contains(
            "hint: make config.toml a readable file",
        ))
        .stderr(predicate::str::contains("--home").not())
        .stderr(predicate::str::contains("quire's home").not());
    std::fs::remove_dir(home.join("config.toml")).unwrap();

    // worker.log a directory: a worker cannot be started. The run stays
    // queued, for reconcile (exit 0, as before).
    std::fs::create_dir(home.join("worker.log")).unwrap();
    env.runs(&["retry", &fixture.complete])
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "quire-runs: warning: cannot start a worker (quire-run work) in {}: Is a directory",
            home.display()
        )))
        .stderr(predicate::str::contains(
            "`quire-runs reconcile` will try again",
        ))
        .stderr(predicate::str::contains("quire's home").not());
}
