//! quire-run validate and exec: a pipeline checked and run with the real
//! binary; the executor's memory stays flat however much a step prints.

use std::path::Path;
use std::process::{Command, Stdio};

use predicates::prelude::*;

use quire_testkit::{Env, wait_until};

fn write_pipeline(dir: &Path, text: &str) -> std::path::PathBuf {
    let file = dir.join(".quire/ci.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, text).unwrap();
    file
}

const TWO_JOBS: &str = r#"
[jobs.build]
inputs = ["quire/push"]
sh = ["echo building", "test -f .quire/ci.toml"]
timeout = "20m"

[jobs.release]
inputs = ["build"]
when = { tags = ["v*"] }
sh = [["echo", "released"]]
"#;

#[test]
fn validate_prints_ok_and_the_planned_jobs() {
    let env = Env::new();
    let file = write_pipeline(env.path(), TWO_JOBS);
    env.run(&["validate", file.to_str().unwrap()])
        .assert()
        .success()
        .stdout(format!(
            "ok: {} is valid; jobs in the order they run:\n  1. build (2 steps; after quire/push; timeout 20m)\n  2. release (1 step; after build; tags v*)\n",
            file.display()
        ));
    // The default file is .quire/ci.toml of the current directory.
    env.run(&["validate"])
        .current_dir(env.path())
        .assert()
        .success();
}

#[test]
fn validate_lists_every_error_with_file_line_and_column() {
    let env = Env::new();
    let file = write_pipeline(
        env.path(),
        r#"[jobs.a]
inputs = []
sh = []
[jobs.b]
inputs = ["a", "zz"]
sh = "x"
"#,
    );
    let name = file.display().to_string();
    env.run(&["validate", &name])
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            r#"{name}:1:7: job "a": inputs is empty; list the jobs it needs, or "quire/push" to run on every push
{name}:1:7: job "a": sh is empty; give at least one command
{name}:4:7: job "b": input "zz" names no job and no source; define [jobs.zz] or use "quire/push"
"#
        ));
    env.run(&["validate", "/nonexistent/ci.toml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read /nonexistent/ci.toml"));
}

#[test]
fn exec_runs_a_pipeline_in_a_directory_and_exits_with_its_outcome() {
    let env = Env::new();
    let work = env.path().join("work");
    write_pipeline(&work, TWO_JOBS);
    let logs = env.path().join("out");
    env.run(&[
        "exec",
        "--workspace",
        work.to_str().unwrap(),
        "--ref",
        "refs/tags/v1",
        "--logs",
        logs.to_str().unwrap(),
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains("build: complete (exit 0)"))
    .stdout(predicate::str::contains("release: complete (exit 0)"))
    .stdout(predicate::str::contains("run complete"));
    let log = std::fs::read_to_string(logs.join("logs/release.log")).unwrap();
    assert!(log.contains(" stdout F released"), "{log}");
    assert!(
        std::fs::read_to_string(logs.join("events.jsonl"))
            .unwrap()
            .contains("\"run_finished\"")
    );

    write_pipeline(
        &work,
        r#"[jobs.a]
inputs = ["quire/push"]
sh = "exit 5"
"#,
    );
    env.run(&["exec", "--workspace", work.to_str().unwrap()])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("a: failed (exit 5)"))
        .stdout(predicate::str::contains("run failed"));
}

/// Peak resident memory (VmHWM, KiB) of a child, sampled until it exits.
fn peak_rss_kib(mut command: Command) -> (bool, u64) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let mut exit = None;
    // The high-water mark only grows: sampling it until the child exits
    // sees the peak of all but its last moments.
    wait_until("the executor to exit", || {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            peak = peak.max(kib);
        }
        exit = child.try_wait().unwrap();
        exit.is_some()
    });
    (exit.is_some_and(|status| status.success()), peak)
}

#[test]
fn a_step_printing_200_mb_costs_the_executor_no_more_memory_than_one_line() {
    let env = Env::new();
    // Above the 200 MB it prints: all of it is logged.
    env.config("max_log_mb = 1024\n");
    let measure = |name: &str, step: &str| {
        let work = env.path().join(name);
        write_pipeline(
            &work,
            &format!(
                r#"[jobs.out]
inputs = ["quire/push"]
sh = [{step:?}]
"#
            ),
        );
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("quire-run"));
        command.arg("--home").arg(env.home().dir()).args([
            "exec",
            "--workspace",
            work.to_str().unwrap(),
            "--logs",
            env.path().join(format!("{name}.out")).to_str().unwrap(),
        ]);
        let (ok, peak) = peak_rss_kib(command);
        assert!(ok, "{name} failed");
        peak
    };
    // Both steps last long enough for the sampler to see the executor settled.
    let small = measure("small", "echo one line; sleep 1");
    // 200 MB: long lines (cut into 16 KiB chunks) and short ones.
    let big = measure(
        "big",
        "head -c 150000000 /dev/zero | tr '\\0' x; yes 'a line of fifty bytes, give or take, to log here' | head -c 50000000",
    );
    let log_bytes: u64 = std::fs::metadata(env.path().join("big.out/logs/out.log"))
        .unwrap()
        .len();
    assert!(
        log_bytes > 200_000_000,
        "the output was logged: {log_bytes} bytes"
    );
    eprintln!("executor peak RSS: one line {small} KiB, 200 MB of output {big} KiB");
    // Generous: the point is flat, not a number (docs/PERFORMANCE.md has it).
    assert!(
        big < small + 8 * 1024,
        "peak RSS grew from {small} KiB to {big} KiB"
    );
}

/// quire runs its own CI: this checkout's HEAD, pushed through the hook
/// to a fresh home, is recorded as a pending run (the hook found its
/// `.quire/ci.toml` valid), and `validate` of the pushed file plans fmt,
/// clippy and the tests as parallel jobs. No worker takes the run (the
/// home's one worker slot is held), so the suite does not run inside
/// itself.
#[test]
fn quires_own_repository_pushed_to_quire_validates_and_plans_its_pipeline() {
    let env = Env::new();
    let repo = env.repo_with_hook("quire");
    env.config("max_workers = 1\n");
    let _slot = quire_worker::workers::try_acquire(&env.home(), 1)
        .unwrap()
        .expect("the home's only worker slot");
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("git")
        .current_dir(source)
        // The checkout may belong to another user than the one testing
        // (root's clone, tests run as an unprivileged user): git refuses
        // such a repository unless it is named safe.
        .arg("-c")
        .arg(format!("safe.directory={}", source.display()))
        .args(["push", "--no-verify"])
        .arg(&repo.bare)
        .arg("HEAD:refs/heads/main")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let queued = quire_testkit::queued_runs(&stderr);
    assert_eq!(queued.len(), 1, "{stderr}");
    let run = env.store().resolve_run(&queued[0]).unwrap();
    assert_eq!(run.state, quire_store::RunState::Pending, "{run:?}");

    let pushed = quire_testkit::git(&repo.bare, &["show", "main:.quire/ci.toml"]);
    let file = env.path().join("ci.toml");
    std::fs::write(&file, pushed).unwrap();
    let out = env
        .run(&["validate", file.to_str().unwrap()])
        .assert()
        .success();
    let plan = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for job in ["fmt (", "clippy (", "test ("] {
        let line = plan
            .lines()
            .find(|l| l.contains(job))
            .unwrap_or_else(|| panic!("no job {job}: {plan}"));
        assert!(
            line.contains("after quire/push"),
            "{job} is not parallel: {plan}"
        );
    }
}
