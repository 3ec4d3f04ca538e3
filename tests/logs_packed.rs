//! Once a run has ended, its worker packs the small step logs into the
//! store and deletes the run's files: a trivial run leaves no `runs/<id>/`,
//! `quire-runs logs` prints every line as it did from the files, a large
//! log stays a file, reconcile packs what a dead worker left, and prune
//! deletes the packed logs with their run.

use std::path::{Path, PathBuf};

use quire_store::RunState;

use quire_testkit::{Env, Gate, gone_within, is_root, outside_pid, signal, wait_until};

/// Files under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Equal texts; on a difference, the first line that differs.
fn assert_same(got: &str, want: &str, what: &str) {
    if got != want {
        let at = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "{what}: line {at} differs: {:?} != {:?} ({} and {} lines)",
            got.lines().nth(at),
            want.lines().nth(at),
            got.lines().count(),
            want.lines().count()
        );
    }
}

fn packed_rows(env: &Env) -> i64 {
    env.store()
        .connection()
        .query_row("SELECT count(*) FROM step_logs", [], |r| r.get(0))
        .unwrap()
}

/// One line, two streams and a partial line, a thousand lines (about 45
/// KiB), five thousand (over the 64 KiB limit), and a last job that waits at
/// a gate so the test can read everything from the files first.
fn pipeline(gate: &Gate) -> String {
    format!(
        r#"
[jobs.one]
inputs = ["quire/push"]
sh = ["echo hello", "echo to stderr >&2; printf 'no newline'"]
[jobs.many]
inputs = ["quire/push"]
sh = "seq 1 1000"
[jobs.big]
inputs = ["quire/push"]
sh = "seq 1 5000"
[jobs.last]
inputs = ["one", "many", "big"]
sh = {:?}
"#,
        gate.step("last")
    )
}

const STEPS: [(&str, i64); 5] = [("one", 1), ("one", 2), ("many", 1), ("big", 1), ("last", 1)];

#[test]
fn an_ended_runs_logs_read_as_before_from_the_store_and_only_a_large_one_stays_a_file() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    let id = repo.push_pipeline(&pipeline(&gate));
    gate.wait_ready("last");
    wait_until("the gate step to be recorded", || {
        let detail = env.store().run_detail(&id).unwrap();
        detail
            .jobs
            .iter()
            .any(|j| j.job.id == "last" && !j.steps.is_empty())
    });

    // While the run executes: the files, and what `logs` prints from them.
    let raw: Vec<Vec<u8>> = STEPS
        .iter()
        .map(|(job, seq)| {
            // Each step's part of its job's log, while it is a file.
            let mut bytes = Vec::new();
            let mut log = env.store().step_log(&id, job, *seq).unwrap().unwrap();
            std::io::Read::read_to_end(&mut log, &mut bytes).unwrap();
            bytes
        })
        .collect();
    assert!(raw[2].len() < 64 * 1024 && raw[3].len() > 64 * 1024);
    let before = env.stdout(&["logs", &id]);
    let before_stamped = env.stdout(&["logs", &id, "--timestamps"]);
    let before_stderr = env.stdout(&["logs", &id, "one", "--stream", "stderr"]);
    assert_eq!(packed_rows(&env), 0);

    gate.open();
    let run = env.wait_terminal(&id);
    assert_eq!(run.state, RunState::Complete);
    assert!(gone_within(run.worker.unwrap().pid, 10));

    // Only the large log is left of the run's files.
    let run_dir = env.home().run_dir(&id).unwrap();
    assert_eq!(files_under(&run_dir), ["logs/big.log"]);
    assert_eq!(packed_rows(&env), 4);
    assert_eq!(
        env.store().packed_logs(&id).unwrap(),
        [
            ("last".to_string(), 1),
            ("many".to_string(), 1),
            ("one".to_string(), 1),
            ("one".to_string(), 2)
        ]
    );
    for ((job, seq), bytes) in STEPS.iter().zip(&raw) {
        assert_eq!(
            env.step_log(&id, job, *seq).as_bytes(),
            bytes.as_slice(),
            "{job} step {seq}"
        );
    }

    // Every line, exactly as before.
    assert_same(&env.stdout(&["logs", &id]), &before, "logs");
    assert_same(
        &env.stdout(&["logs", &id, "--timestamps"]),
        &before_stamped,
        "logs --timestamps",
    );
    assert_same(
        &env.stdout(&["logs", &id, "one", "--stream", "stderr"]),
        &before_stderr,
        "logs --stream stderr",
    );
    let numbers = |n: usize| -> String { (1..=n).map(|i| format!("{i}\n")).collect() };
    assert_eq!(
        env.stdout(&["logs", &id, "many"]),
        format!("==> many step 1: seq 1 1000 <==\n{}", numbers(1000))
    );
    assert_eq!(
        env.stdout(&["logs", &id, "big", "--step", "1"]),
        numbers(5000)
    );
    assert_eq!(
        env.stdout(&["logs", &id, "one", "--step", "2"]),
        "to stderr\nno newline\n"
    );
    assert!(before.contains("==> one step 1: echo hello <==\nhello\n"));
    env.runs(&["logs", &id, "--follow"])
        .assert()
        .success()
        .stdout(before);

    // Prune: the run's rows, its packed logs and its large log go.
    let freed = env
        .runs(&["prune", "--older-than", "1h", "--json"])
        .env("QUIRE_NOW", "2100-01-01T00:00:00Z")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let freed: serde_json::Value = serde_json::from_slice(&freed).unwrap();
    assert_eq!(freed["runs"], serde_json::json!([id]));
    let total: usize = raw.iter().map(Vec::len).sum();
    assert_eq!(freed["bytes_freed"], serde_json::json!(total));
    assert_eq!(packed_rows(&env), 0);
    assert!(!run_dir.exists());
}

/// A run whose worker was killed at the gate: the files it left.
fn orphan(env: &Env, gate: &Gate) -> (String, PathBuf) {
    let repo = env.repo_with_hook("app");
    let id = repo.push_pipeline(&format!(
        r#"[jobs.a]
inputs = ["quire/push"]
sh = ["echo before", {:?}]
"#,
        gate.step("a")
    ));
    gate.wait_ready("a");
    let worker = env.store().resolve_run(&id).unwrap().worker.unwrap().pid;
    // The recorded pid is the worker's stand-in; the worker itself is pid
    // 1 of a pid namespace under it, and dies with it a moment later:
    // until then it may still write the run's files the test reads.
    let inner = outside_pid(worker, 1);
    // As root, a worker always has its pid namespace: a lookup that found
    // none would let the race back in unseen.
    assert!(
        inner != 1 || !is_root(),
        "no worker found in the stand-in's pid namespace"
    );
    signal(worker, rustix::process::Signal::KILL);
    assert!(gone_within(worker, 10));
    // (1 itself when the worker has no pid namespace: nothing more to wait for.)
    assert!(inner == 1 || gone_within(inner, 10));
    (id.clone(), env.home().run_dir(&id).unwrap())
}

#[test]
fn reconcile_packs_the_logs_of_a_run_whose_worker_died() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let (id, run_dir) = orphan(&env, &gate);
    assert!(run_dir.join("events.jsonl").is_file());

    let dry = env.json(&["reconcile", "--dry-run"]);
    assert_eq!(dry["logs_packed"], serde_json::json!([id]));
    assert!(run_dir.join("events.jsonl").is_file() && packed_rows(&env) == 0);

    let text = env.stdout(&["reconcile"]);
    assert!(text.contains(&format!("orphaned {id}")), "{text}");
    assert!(
        text.contains(&format!("packed the logs of run {id} into the store")),
        "{text}"
    );
    assert_eq!(
        env.store().resolve_run(&id).unwrap().state,
        RunState::Failed
    );
    // The dead worker's workspace stays, as it did; logs and events are gone.
    assert!(!run_dir.join("logs").exists() && !run_dir.join("events.jsonl").exists());
    assert_eq!(packed_rows(&env), 2);
    let logs = env.stdout(&["logs", &id, "a", "--step", "1"]);
    assert_eq!(logs, "before\n");
    // Nothing left to pack.
    assert_eq!(
        env.json(&["reconcile"])["logs_packed"],
        serde_json::json!([])
    );
}

#[test]
fn a_pack_cut_short_after_its_commit_is_finished_by_reconcile() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "echo hello"
"#,
    );
    assert!(gone_within(run.worker.unwrap().pid, 10));
    let run_dir = env.home().run_dir(&run.id).unwrap();
    assert!(!run_dir.exists());
    let log = env.step_log(&run.id, "t", 1);
    let before = env.stdout(&["logs", &run.id]);
    assert_eq!(before, "==> t step 1: echo hello <==\nhello\n");

    // As if the worker had died between the pack's commit and its deletes:
    // the files are there again, beside their copies in the store.
    let path = env.home().step_log_path(&run.id, "t", 1).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &log).unwrap();
    std::fs::write(run_dir.join("events.jsonl"), "").unwrap();
    assert_eq!(env.stdout(&["logs", &run.id]), before);

    let report = env.json(&["reconcile"]);
    assert_eq!(report["logs_packed"], serde_json::json!([run.id]));
    assert!(!run_dir.exists());
    assert_eq!(packed_rows(&env), 1);
    assert_eq!(env.stdout(&["logs", &run.id]), before);
}
