//! Faults and hostile input (docs/RELIABILITY.md): workers and hooks killed
//! at random points, a store held locked, a file size limit, missing
//! repositories, reconcile from cron during a storm of pushes, thousands of
//! refs, hostile trees, and what the store and home look like afterwards.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use predicates::prelude::*;
use quire_store::{FailureKind, RunState};
use quire_worker::workers;

use quire_testkit::{Env, Gate, alive, git, gone_within, queued_runs, wait_until};

/// Pids of processes whose environment or command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || !alive(pid) {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let hit = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        if hit(&environ) || hit(&cmdline) {
            found.push(pid);
        }
    }
    found
}

/// `quire-run --home HOME work` processes of this home.
fn workers_of(env: &Env) -> Vec<u32> {
    let home = env.home().dir().to_string_lossy().into_owned();
    processes_with(&home)
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.split(|&b| b == 0).any(|a| a == b"work")
        })
        .collect()
}

fn kill9(pid: u32) {
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    );
}

/// The store is sound: integrity, foreign keys, and the shape CHECKs hold.
fn assert_store_sound(env: &Env) {
    let store = env.store();
    let conn = store.connection();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let fk: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk, 0);
}

/// A tiny deterministic generator, so a failing seed can be replayed.
fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    }
}

#[test]
fn sigkill_of_the_worker_at_random_points_never_leaves_a_run_stuck_or_a_step_running() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let pipeline = r#"[jobs.a]
inputs = ["quire/push"]
sh = ["sleep 0.05; echo a1", "sleep 0.05; echo a2", "sleep 0.05"]
[jobs.b]
inputs = ["a"]
sh = ["sleep 0.05; echo b1", "sleep 0.1"]
[jobs.c]
inputs = ["quire/push"]
sh = "sleep 0.2"
"#;
    repo.commit(&[(".quire/ci.toml", pipeline)], "pipeline");
    let rounds = 10;
    let mut killed_mid_run = 0;
    for seed in 0..rounds {
        let mut random = lcg(seed);
        let branch = format!("b{seed}");
        git(&repo.work, &["branch", &branch]);
        let (ok, stderr) = repo.push(&["origin", &branch]);
        assert!(ok, "{stderr}");
        let run = queued_runs(&stderr).remove(0);
        // Anywhere from before the claim to the last step: once the run's
        // events.jsonl holds a random number of events (0: at once), or the
        // run has ended.
        let events = env.home().run_dir(&run).unwrap().join("events.jsonl");
        let at = random() % 24;
        wait_until(&format!("seed {seed}: {at} events of run {run}"), || {
            let written = std::fs::read(&events)
                .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
                .unwrap_or(0);
            written as u64 >= at || env.store().resolve_run(&run).unwrap().state.is_terminal()
        });
        for pid in workers_of(&env) {
            kill9(pid);
            assert!(gone_within(pid, 5));
        }
        if env.store().resolve_run(&run).unwrap().state == RunState::Active {
            killed_mid_run += 1;
        }
        env.runs(&["reconcile"]).assert().success();
        let end = env.wait_terminal(&run);
        assert!(
            matches!(
                (end.state, end.failure_kind),
                (RunState::Complete, None) | (RunState::Failed, Some(FailureKind::Orphaned))
            ),
            "seed {seed}: {end:?}"
        );
        let detail = env.store().run_detail(&run).unwrap();
        assert!(
            detail.jobs.iter().all(|j| j.job.state.is_terminal()),
            "seed {seed}: {detail:?}"
        );
        assert!(
            detail
                .jobs
                .iter()
                .flat_map(|j| &j.steps)
                .all(|s| s.exit_code.is_some()),
            "seed {seed}"
        );
        wait_until(
            &format!("seed {seed}: the steps of run {run} to end"),
            || processes_with(&format!("QUIRE_RUN_ID={run}")).is_empty(),
        );
        assert_store_sound(&env);
    }
    assert!(env.all_runs().iter().all(|r| r.state.is_terminal()));
    eprintln!("{killed_mid_run} of {rounds} kills landed while a run was active");
    // Otherwise the test only ever killed idle workers and proved little.
    assert!(
        killed_mid_run >= rounds / 2,
        "only {killed_mid_run} of {rounds} kills landed mid-run"
    );
}

#[test]
fn an_allowed_failure_stays_allowed_when_its_worker_is_killed_and_reconcile_ends_the_run() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    // `flaky` may fail and does; `after` runs once it has, and waits.
    let run = repo.push_pipeline(&format!(
        r#"
[jobs.flaky]
inputs = ["quire/push"]
allow_failure = true
sh = "exit 3"

[jobs.after]
inputs = ["flaky"]
sh = {:?}
"#,
        gate.step("after")
    ));
    gate.wait_ready("after");
    wait_until("flaky to be recorded failed", || {
        let detail = env.store().run_detail(&run).unwrap();
        detail.jobs[0].job.state == quire_store::JobState::Failed
    });
    for pid in workers_of(&env) {
        kill9(pid);
        assert!(gone_within(pid, 5));
    }
    env.runs(&["reconcile"]).assert().success();
    gate.open();
    let end = env.wait_terminal(&run);
    assert_eq!(
        (end.state, end.failure_kind),
        (RunState::Failed, Some(FailureKind::Orphaned))
    );
    let out = env.runs(&["show", &run]).assert().success();
    let shown = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let flaky = shown.lines().find(|l| l.starts_with("flaky")).unwrap();
    assert!(flaky.contains("failed (allowed)"), "{shown}");
    let json = env.json(&["show", &run]);
    assert_eq!(json["jobs"][0]["id"], "flaky", "{json}");
    assert_eq!(json["jobs"][0]["allow_failure"], true, "{json}");
    assert_eq!(json["jobs"][1]["allow_failure"], false, "{json}");
}

#[test]
fn sigkill_of_the_hook_leaves_only_whole_runs() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    // An invalid pipeline: every run is recorded failed at once, no worker.
    let sha = repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.a]
inputs = []
sh = "x"
"#,
        )],
        "broken",
    );
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    let refs = 400;
    let lines: String = (0..refs)
        .map(|i| format!("{} {sha} refs/heads/b{i}\n", "0".repeat(40)))
        .collect();
    let store = env.store();
    let recorded = || -> i64 {
        store
            .connection()
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap()
    };
    let rounds = 6;
    let mut killed_mid_push = 0;
    for seed in 0..rounds {
        let before = recorded();
        let mut child = env
            .process("quire-run")
            .args(["hook", "--git-dir"])
            .arg(&repo.bare)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        // Kill once the hook has recorded a random number of this push's
        // runs, so the kill lands while it writes.
        let target = before + 1 + (lcg(seed)() % 300) as i64;
        wait_until("the hook to record runs", || {
            recorded() >= target || child.try_wait().unwrap().is_some()
        });
        let _ = child.kill();
        child.wait().unwrap();
        let added = recorded() - before;
        if 0 < added && added < refs {
            killed_mid_push += 1;
        }
    }
    assert_store_sound(&env);
    for run in env.all_runs() {
        assert_eq!(
            (run.state, run.failure_kind),
            (RunState::Failed, Some(FailureKind::PipelineInvalid)),
            "{run:?}"
        );
        assert!(
            run.failure_detail.is_some() && run.git_dir.is_some() && run.traceparent.is_some(),
            "{run:?}"
        );
    }
    eprintln!("{killed_mid_push} of {rounds} kills landed while the hook was recording");
    // Otherwise the test only ever killed a hook that had not started
    // writing, or had finished, and proved little.
    assert!(
        killed_mid_push >= rounds / 2,
        "only {killed_mid_push} kills landed mid-push"
    );
}

#[test]
fn a_store_locked_past_the_busy_timeout_is_a_clear_error_the_pusher_sees() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#,
        )],
        "first",
    );
    let blocker = rusqlite::Connection::open(env.home().db_path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = Command::new("git")
        .current_dir(&repo.work)
        .args(["push", "origin", "main"])
        .env("QUIRE_BUSY_TIMEOUT_MS", "300")
        .env("HOME", &repo.work)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the push itself lands: {stderr}");
    assert!(
        stderr.contains("remote: quire: could not record a run for refs/heads/main"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stayed locked by another process for too long"),
        "{stderr}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    assert!(env.all_runs().is_empty(), "nothing half-recorded");
    // The next push is recorded as usual.
    repo.commit(&[("a", "1")], "again");
    let (_, stderr) = repo.push(&["origin", "main"]);
    assert_eq!(
        env.wait_terminal(&queued_runs(&stderr)[0]).state,
        RunState::Complete
    );
}

#[test]
fn a_file_size_limit_while_logging_fails_the_run_with_its_reason() {
    let env = Env::new();
    env.config("max_workers = 1\n");
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.big]
inputs = ["quire/push"]
sh = "head -c 8000000 /dev/zero | tr '\\0' x"
"#,
        )],
        "big",
    );
    // Hold the only worker slot so the hook starts no worker; run one by
    // hand under a 2 MiB file size limit.
    let slot = workers::try_acquire(&env.home(), 1).unwrap().unwrap();
    let run = repo.push_refs(&["main"]).remove(0);
    drop(slot);
    let worker = format!(
        "ulimit -f 4096; exec {} --home {} work",
        assert_cmd::cargo::cargo_bin("quire-run").display(),
        env.home().dir().display()
    );
    let status = Command::new("sh").args(["-c", &worker]).status().unwrap();
    assert!(status.success(), "the worker survives the limit");
    let end = env.store().resolve_run(&run).unwrap();
    assert_eq!(
        (end.state, end.failure_kind),
        (RunState::Failed, Some(FailureKind::ProcessCrashed)),
        "{end:?}"
    );
    assert!(
        end.failure_detail
            .as_deref()
            .unwrap()
            .contains("File too large"),
        "{end:?}"
    );
    assert_store_sound(&env);
}

#[test]
fn a_repository_gone_before_its_run_is_claimed_fails_the_run() {
    let env = Env::new();
    env.config("max_workers = 1\n");
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#,
        )],
        "first",
    );
    let slot = workers::try_acquire(&env.home(), 1).unwrap().unwrap();
    let run = repo.push_refs(&["main"]).remove(0);
    std::fs::remove_dir_all(&repo.bare).unwrap();
    drop(slot);
    env.process("quire-run").arg("work").status().unwrap();
    let end = env.store().resolve_run(&run).unwrap();
    assert_eq!(
        (end.state, end.failure_kind),
        (RunState::Failed, Some(FailureKind::ProcessCrashed))
    );
    assert!(
        end.failure_detail
            .as_deref()
            .unwrap()
            .contains("cannot open repository"),
        "{end:?}"
    );
}

#[test]
fn homes_that_cannot_be_used_are_clear_errors_for_both_binaries() {
    for home in ["/proc/quire-home", "/proc/self/status/home"] {
        for bin in ["quire-run", "quire-runs"] {
            let args: &[&str] = if bin == "quire-run" {
                &["work"]
            } else {
                &["list"]
            };
            assert_cmd::Command::cargo_bin(bin)
                .unwrap()
                .args(["--home", home])
                .args(args)
                .assert()
                .code(1)
                .stderr(predicate::str::contains("error:"))
                .stderr(predicate::str::contains("panicked").not());
        }
    }
}

#[test]
fn reconcile_from_cron_during_a_storm_of_pushes_never_orphans_a_live_run() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.t]
inputs = ["quire/push"]
sh = ["sleep 0.2", "echo done"]
"#,
        )],
        "first",
    );
    for branch in ["b1", "b2", "b3"] {
        git(&repo.work, &["branch", branch]);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cron = {
        let stop = stop.clone();
        let runs = assert_cmd::cargo::cargo_bin("quire-runs");
        let home = env.home().dir().to_path_buf();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let status = Command::new(&runs)
                    .arg("--home")
                    .arg(&home)
                    .arg("reconcile")
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success());
                n += 1;
            }
            n
        })
    };
    for i in 0..15 {
        let branch = ["b1", "b2", "b3"][i % 3];
        git(&repo.work, &["checkout", "--quiet", branch]);
        repo.commit(&[("n.txt", &i.to_string())], &format!("push {i}"));
        let (ok, stderr) = repo.push(&["origin", branch]);
        assert!(ok, "{stderr}");
    }
    wait_until("every run to end", || {
        env.all_runs().iter().all(|r| r.state.is_terminal())
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let reconciles = cron.join().unwrap();
    let runs = env.all_runs();
    assert_eq!(runs.len(), 15);
    assert!(
        runs.iter()
            .all(|r| r.failure_kind != Some(FailureKind::Orphaned)),
        "{runs:?}"
    );
    assert!(
        runs.iter()
            .filter(|r| r.state == RunState::Complete)
            .count()
            >= 3
    );
    eprintln!("{reconciles} reconciles ran during the storm");
}

#[test]
fn thousands_of_refs_and_garbage_in_one_push_are_all_handled() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let sha = repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.a]
inputs = []
sh = "x"
"#,
        )],
        "broken",
    );
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    let zero = "0".repeat(40);
    let mut stdin: Vec<u8> = Vec::new();
    for i in 0..2000 {
        stdin.extend(format!("{zero} {sha} refs/heads/many/{i}\n").as_bytes());
    }
    stdin.extend(b"\xff\xfe not utf-8 at all\n");
    stdin.extend(format!("{zero} {sha} refs/heads/").as_bytes());
    stdin.extend(b"\xc3\x28bad\n");
    stdin.extend(format!("{zero} {} refs/heads/short\n", &sha[..20]).as_bytes());
    stdin.extend(format!("{zero} {}{} refs/heads/long\n", sha, "ab").as_bytes());
    stdin.extend(format!("{zero} {} refs/heads/upper\n", sha.to_uppercase()).as_bytes());
    stdin.extend(b"\n\n");
    stdin.extend(format!("{zero} {sha}\n").as_bytes());
    let started = Instant::now();
    env.run(&["hook", "--git-dir", repo.bare.to_str().unwrap()])
        .write_stdin(stdin)
        .timeout(Duration::from_secs(120))
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "quire: ignoring line 2001 of the pushed refs: it is not UTF-8",
        ))
        .stdout(predicate::str::contains(
            "is not a full lowercase object id",
        ))
        .stdout(predicate::str::contains("got 2 fields"));
    eprintln!("2000 refs recorded in {:?}", started.elapsed());
    let runs = env.all_runs();
    assert_eq!(runs.len(), 2000);
    assert!(
        runs.iter()
            .all(|r| r.failure_kind == Some(FailureKind::PipelineInvalid))
    );
}

#[test]
fn hostile_tree_entries_are_refused_and_nothing_is_written_outside() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let bare = repo.bare.to_str().unwrap().to_string();
    let ci = repo.pipeline_tree(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    let payload = repo.hash_object("pwned");
    let inner = repo.mktree(&format!("100644 blob {payload}\\tescaped\\n"));
    for (name, entry) in [
        ("..", format!("040000 tree {inner}\\t..\\n")),
        (".", format!("040000 tree {inner}\\t.\\n")),
        (".git", format!("040000 tree {inner}\\t.git\\n")),
        (".GIT", format!("100644 blob {payload}\\t.GIT\\n")),
    ] {
        let root = repo.mktree(&format!("040000 tree {ci}\\t.quire\\n{entry}"));
        let commit = git(&repo.bare, &["commit-tree", &root, "-m", "hostile"]);
        let branch = format!("refs/heads/hostile-{}", name.replace('.', "dot"));
        git(&repo.bare, &["update-ref", &branch, &commit]);
        env.run(&["trigger", "--git-dir", &bare, &branch, "--wait"])
            .assert()
            .code(1)
            .stdout(predicate::str::contains("process-crashed"));
        let run = &env.all_runs()[0];
        assert!(
            run.failure_detail
                .as_deref()
                .unwrap()
                .contains("refusing tree entry"),
            "{name}: {run:?}"
        );
    }
    // A `..` entry would have landed beside the workspace, in the run's
    // directory (or higher): nothing did, for any of the runs.
    let runs = env.all_runs();
    assert_eq!(runs.len(), 4);
    for run in runs {
        let run_dir = env.home().run_dir(&run.id).unwrap();
        for place in [
            run_dir.join("escaped"),
            run_dir.join("workspace/escaped"),
            env.home().dir().join("runs/escaped"),
        ] {
            assert!(!place.exists(), "{} was written", place.display());
        }
    }
}

#[test]
fn a_step_that_closes_stdout_early_does_not_stall_the_worker() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = ["exec 1>&-; sleep 0.3; echo still here >&2", "echo next"]
"#,
    );
    assert_eq!(run.state, RunState::Complete);
    env.runs(&["logs", &run.id])
        .assert()
        .success()
        .stdout(predicate::str::contains("still here\n"));
}

#[test]
fn the_home_and_everything_in_it_is_private_and_steps_inherit_none_of_quires_environment() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    // The run's files are looked at while it executes: once it has ended,
    // its logs are packed into the store and the files are gone.
    let gate = Gate::new(&env);
    let run = repo.push_pipeline(&format!(
        r#"[jobs.env]
inputs = ["quire/push"]
sh = ["env", {:?}]
"#,
        gate.step("env")
    ));
    gate.wait_ready("env");
    let home = env.home();
    let mode = |p: std::path::PathBuf| {
        std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let run_dir = home.run_dir(&run).unwrap();
    for (path, want) in [
        (home.dir().to_path_buf(), 0o700),
        (home.db_path(), 0o600),
        (home.dir().join("runs"), 0o700),
        (run_dir.clone(), 0o700),
        (run_dir.join("logs"), 0o700),
        (run_dir.join("logs/env.log"), 0o600),
        (run_dir.join("events.jsonl"), 0o600),
        (home.dir().join("worker.log"), 0o600),
        (home.dir().join("workers"), 0o700),
    ] {
        assert_eq!(mode(path.clone()), want, "{}", path.display());
    }
    gate.open();
    assert_eq!(env.wait_terminal(&run).state, RunState::Complete);
    let log = env.step_log(&run, "env", 1);
    for internal in [
        "GIT_DIR=",
        "QUIRE_HOME=",
        "GIT_PUSH_OPTION",
        "GIT_QUARANTINE",
    ] {
        assert!(
            !log.contains(internal),
            "{internal} leaked into a step:\n{log}"
        );
    }
    assert!(log.contains(&format!("QUIRE_RUN_ID={run}")));
    // Its HOME and TMPDIR are the run's own, not the worker's user's, seen
    // at the paths every run sees them (docs/PIPELINE.md, "The workspace").
    for (name, dir) in [("HOME", "home"), ("TMPDIR", "tmp")] {
        let want = format!("{name}={}\n", home.dir().join("ci").join(dir).display());
        assert!(log.contains(&want), "{want} in:\n{log}");
    }
    // Values reach SQL only as parameters: a hostile filter is just a string.
    env.runs(&["list", "--repo", "x' OR '1'='1", "--json"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "no repository \"x' OR '1'='1\" is known",
        ));
}

#[test]
fn secrets_reach_the_jobs_that_ask_and_never_the_logs_or_the_store() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let key_file = env.path().join("deploy.key");
    std::fs::write(&key_file, "key-from-a-file-9\n").unwrap();
    env.config(&format!(
        // The sandbox off: a step below keeps a link to events.jsonl,
        // outside its workspace.
        r#"sandbox = "off"
[secrets]
TOKEN = "tok-3f9a-literal"
KEY = {{ file = "{}" }}
"#,
        key_file.display()
    ));
    let pipeline = r#"
[jobs.deploy]
inputs = ["quire/push"]
secrets = ["TOKEN", "KEY"]
# stderr through a pipe of its own: redacted there too.
separate_stderr = true
sh = [
  "echo token=$TOKEN key=$KEY",
  "echo $TOKEN$TOKEN >&2",
  "head -c 16380 /dev/zero | tr '\\0' x; echo $TOKEN",
  "echo tok-3f9a-literal typed into the command",
]
[jobs.other]
inputs = ["quire/push"]
sh = "echo other sees [$TOKEN]"
"#;
    // events.jsonl goes once the run has ended: a hard link keeps its
    // bytes (and every event written after the link).
    let events = env.path().join("events.jsonl");
    let pipeline = pipeline.replacen(
        "\"echo token=",
        &format!(
            "\"ln \\\"$QUIRE_WORKSPACE/../events.jsonl\\\" {}; echo token=",
            events.display()
        ),
        1,
    );
    let run = repo.push_and_wait(&pipeline);
    assert_eq!(run.state, RunState::Complete);
    let worker = run.worker.as_ref().unwrap().pid;
    let run = run.id;
    let mut everything = String::new();
    for (job, steps) in [("deploy", 4), ("other", 1)] {
        for seq in 1..=steps {
            let log = env.step_log(&run, job, seq);
            assert!(!log.is_empty(), "{job} step {seq} has a log");
            everything.push_str(&log);
        }
    }
    everything.push_str(&std::fs::read_to_string(&events).unwrap());
    // Nor does the store hold them, now that it holds the logs.
    assert!(gone_within(worker, 10));
    for file in ["quire.db", "quire.db-wal"] {
        let bytes = std::fs::read(env.home().dir().join(file)).unwrap_or_default();
        for secret in ["tok-3f9a-literal", "key-from-a-file-9"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} is in {file}"
            );
        }
    }
    let shown = env
        .runs(&["show", &run, "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    everything.push_str(&String::from_utf8(shown).unwrap());
    for secret in ["tok-3f9a-literal", "key-from-a-file-9"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    assert!(everything.contains("token=*** key=***"), "{everything}");
    assert!(everything.contains("stderr F ******"));
    assert!(everything.contains("*** typed into the command"));
    assert!(
        everything.contains("other sees []"),
        "only jobs that ask get a secret"
    );

    // A job asking for a secret the home does not define fails the run.
    let missing = repo.push_and_wait(
        r#"[jobs.x]
inputs = ["quire/push"]
secrets = ["NOPE"]
sh = "true"
"#,
    );
    assert_eq!(missing.failure_kind, Some(FailureKind::PipelineInvalid));
    assert!(
        missing
            .failure_detail
            .as_deref()
            .unwrap()
            .contains("asks for secret NOPE"),
        "{missing:?}"
    );

    // A value too short to redact reliably is refused, and the pusher is
    // told; the push's run is recorded failed (config-invalid), not lost.
    env.config(
        r#"[secrets]
PIN = "1234"
"#,
    );
    repo.commit(&[("a", "1")], "short secret");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok);
    assert!(
        stderr.contains("secret PIN is 4 bytes; values shorter than 8 bytes are refused"),
        "{stderr}"
    );
    assert!(stderr.contains("failed (config-invalid)"), "{stderr}");
    let refused = quire_testkit::queued_runs(&stderr);
    assert!(refused.is_empty(), "nothing queued: {stderr}");
    let run = env
        .all_runs()
        .into_iter()
        .find(|r| r.failure_kind == Some(quire_store::FailureKind::ConfigInvalid))
        .unwrap();
    assert!(
        run.failure_detail
            .as_deref()
            .unwrap()
            .contains("secret PIN is 4 bytes"),
        "{run:?}"
    );
    // Fixed, a retry runs it.
    env.config("");
    let out = env.runs(&["retry", &run.id]).assert().success();
    let out = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let retry = out
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(",")
        .to_string();
    let retried = env.wait_terminal(&retry);
    assert_eq!(retried.sha, run.sha);
    assert_eq!(retried.event, Some(quire_store::RunEvent::Retry));
}

#[test]
fn a_secret_file_shorter_than_8_bytes_fails_the_run_as_process_crashed_with_the_reason() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let pin = env.path().join("pin");
    std::fs::write(&pin, "1234\n").unwrap();
    env.config(&format!(
        r#"[secrets]
PIN = {{ file = "{}" }}
"#,
        pin.display()
    ));
    let run = repo.push_and_wait(
        r#"[jobs.deploy]
inputs = ["quire/push"]
secrets = ["PIN"]
sh = "echo pin=$PIN"
"#,
    );
    assert_eq!(
        (run.state, run.failure_kind),
        (RunState::Failed, Some(FailureKind::ProcessCrashed)),
        "{run:?}"
    );
    let detail = run.failure_detail.unwrap();
    assert!(
        detail.contains("secret PIN is 4 bytes; values shorter than 8 bytes are refused"),
        "{detail}"
    );
    assert!(!detail.contains("1234"), "the value is not shown: {detail}");
    assert!(
        env.store().run_detail(&run.id).unwrap().jobs.is_empty(),
        "no step ran"
    );
}

#[test]
fn ctrl_c_on_a_foreground_run_cancels_it_and_ends_its_step() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let pipeline = format!(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = {:?}
"#,
        format!("{}; exec sleep 300", quire_testkit::RECORD_PID)
    );
    repo.commit(&[(".quire/ci.toml", &pipeline)], "slow");
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    let interrupt = |child: &std::process::Child| {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::INT,
        )
        .unwrap();
    };

    let mut trigger = env
        .process("quire-run")
        .args(["trigger", "--git-dir"])
        .arg(&repo.bare)
        .args(["main", "--wait"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut run = String::new();
    quire_testkit::wait_until("the triggered run", || {
        run = env
            .all_runs()
            .first()
            .map(|r| r.id.clone())
            .unwrap_or_default();
        !run.is_empty()
    });
    let sleep = quire_testkit::step_pid(&env, &run);
    interrupt(&trigger);
    assert_eq!(trigger.wait().unwrap().code(), Some(1));
    assert!(gone_within(sleep, 5), "the step outlived Ctrl-C");
    let run = &env.all_runs()[0];
    assert_eq!(
        (run.state, run.failure_kind),
        (RunState::Failed, Some(FailureKind::Cancelled)),
        "{run:?}"
    );

    // `exec` gives its steps the caller's TMPDIR.
    let mut exec = env
        .process("quire-run")
        .env("TMPDIR", env.path())
        .arg("exec")
        .arg("--workspace")
        .arg(&repo.work)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let sleep = quire_testkit::read_pid_file(&env.path().join("sleep.pid"));
    interrupt(&exec);
    assert_eq!(exec.wait().unwrap().code(), Some(1));
    assert!(gone_within(sleep, 5), "the exec step outlived Ctrl-C");
}

#[test]
fn fifty_first_installs_into_a_new_home_at_once_all_open_its_store() {
    // Each process identifies the brand-new store while others create it:
    // the header and the tables must be read from one snapshot, or a
    // process sees a half-made store and calls it foreign. (Only `install`,
    // `migrate-from` and `demo` make a home; the hook never does.)
    for round in 0..5 {
        let env = Env::new();
        let installs: Vec<_> = (0..50)
            .map(|i| {
                let name = format!("app{i}.git");
                git(env.path(), &["init", "--quiet", "--bare", &name]);
                env.process("quire-run")
                    .arg("install")
                    .arg(env.path().join(name))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for install in installs {
            let out = install.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn a_push_into_a_deleted_home_says_so_creates_nothing_and_says_how_to_record_it() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    std::fs::remove_dir_all(env.home().dir()).unwrap();
    let pipeline = r#"[jobs.a]
inputs = ["quire/push"]
sh = "true"
"#;
    let sha = repo.commit(&[(".quire/ci.toml", pipeline)], "a pipeline");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "the push itself goes through: {stderr}");
    let home = env.home().dir().display().to_string();
    assert!(
        stderr.contains(&format!(
            "remote: quire: no quire home at {home}: no run recorded for this push"
        )),
        "{stderr}"
    );
    let recover = format!(
        "quire-run --home {home} trigger --git-dir {} refs/heads/main {sha}",
        repo.bare.display()
    );
    assert!(stderr.contains(&recover), "{stderr}");
    assert!(
        !env.home().dir().exists(),
        "no empty home made in its place"
    );

    // Recovered as it says: install again, then the trigger line.
    env.run(&["install", repo.bare.to_str().unwrap()])
        .assert()
        .success();
    let args: Vec<&str> = recover.split(' ').skip(3).collect();
    env.run(&args).assert().success();
    let runs = env.all_runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].sha, sha);
}

/// A tmpfs of `mib` MiB mounted at `dir` for the life of the value (root
/// only: `.ci/run` runs the tests as root).
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(dir: &std::path::Path, mib: u32) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs as the home, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[test]
fn a_full_disk_fails_the_run_with_its_reason_the_worker_goes_on_and_prune_makes_room() {
    // A small tmpfs is mounted as the home: root only.
    if !quire_testkit::require("root", "run the tests as root", quire_testkit::is_root()) {
        return;
    }
    let env = Env::new();
    let _disk = SmallDisk::mount(env.home().dir(), 24);
    let repo = env.repo_with_hook("app");
    assert!(
        env.home().reserve_path().is_file(),
        "install keeps space back"
    );
    env.config("max_workers = 1\n");
    // 40 MB of output into a 24 MiB home: the log fills the disk.
    let flood = r#"[jobs.flood]
inputs = ["quire/push"]
sh = "head -c 40000000 /dev/zero | tr '\\0' x | fold -w 1000"
"#;
    repo.commit(&[(".quire/ci.toml", flood)], "fills the disk");
    git(&repo.work, &["branch", "second"]);
    let queued = repo.push_refs(&["main", "second"]);
    assert_eq!(queued.len(), 2, "both recorded while there was room");
    let runs: Vec<_> = queued.iter().map(|id| env.wait_terminal(id)).collect();
    for run in &runs {
        // Each failed with its reason; the worker went on to the second.
        assert_eq!(run.state, RunState::Failed, "{run:?}");
        let detail = run.failure_detail.clone().unwrap_or_default();
        assert!(detail.contains("No space left on device"), "{run:?}");
    }

    // reconcile and prune work on the full disk, and prune makes room.
    env.runs(&["reconcile"]).assert().success();
    env.runs(&["prune", "--older-than", "1d"])
        .env("QUIRE_NOW", "2100-01-01T00:00:00Z")
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted 2 runs"));
    for id in &queued {
        assert!(!env.home().run_dir(id).unwrap().exists());
    }
    let ok = repo.push_and_wait(
        r#"[jobs.a]
inputs = ["quire/push"]
sh = "echo fine"
"#,
    );
    assert_eq!(ok.state, RunState::Complete, "{ok:?}");
    wait_until("the reserve made again", || {
        env.home().reserve_path().is_file()
    });
}

/// The home deleted from outside while a step runs (a step cannot reach
/// it under the sandbox), with a second run waiting for the same worker:
/// the worker records nothing, creates nothing (no `runs/`, `reserve`,
/// `worker.log`, `workers/`, no log directory of a later job), says why on
/// stderr and exits non-zero.
#[test]
fn a_worker_whose_home_is_deleted_mid_run_makes_nothing_in_it_and_fails() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    env.config("max_workers = 1\n");
    let gate = Gate::new(&env);
    repo.commit(
        &[(
            ".quire/ci.toml",
            &format!(
                r#"[jobs.held]
inputs = ["quire/push"]
sh = {:?}
cache = ["out"]
artifacts = ["out/*"]
[jobs.later]
inputs = ["held"]
sh = "echo later"
"#,
                format!("mkdir -p out && echo kept > out/x && {}", gate.step("held"))
            ),
        )],
        "held",
    );
    // Hold the only slot so the hook starts no worker: two runs wait, and
    // the test starts the worker itself to see its status and stderr.
    let slot = workers::try_acquire(&env.home(), 1).unwrap().unwrap();
    let queued = repo.push_refs(&["main", "main:other"]);
    assert_eq!(queued.len(), 2, "{queued:?}");
    drop(slot);
    let mut worker = env
        .process("quire-run")
        .arg("work")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    gate.wait_ready("held");
    std::fs::remove_dir_all(env.home().dir()).unwrap();
    gate.open();
    let status = quire_testkit::wait_exit(&mut worker);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut worker.stderr.take().unwrap(), &mut stderr).unwrap();

    assert!(
        !env.home().dir().exists(),
        "the worker made the deleted home again: {:?}",
        std::fs::read_dir(env.home().dir())
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert!(!status.success(), "the worker exited {status}: {stderr}");
    let said = format!(
        "{} is gone (the home was deleted)",
        env.home().db_path().display()
    );
    assert!(stderr.contains(&said), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.contains(&said)).count(),
        1,
        "said once, on one line: {stderr}"
    );
}
