//! What a person and a script see, for a fixed store at a frozen "now":
//! list, show, logs and their JSON, compared with tests/snapshots/. A change
//! in output is a reviewed diff: `QUIRE_BLESS=1 cargo test --test integration snapshot`.

use std::path::Path;

use crate::util::Env;

/// 2026-11-28T12:00:00Z.
const BASE: i64 = 1_795_867_200_000;
/// "Now" for every snapshot: six minutes after BASE.
const NOW: &str = "2026-11-28T12:06:00Z";

const R1: &str = "01a20000-0000-7000-8000-000000000001";
const R2: &str = "01a20000-0000-7000-8000-000000000002";
const R3: &str = "01a20000-0000-7000-8000-000000000003";
const R4: &str = "01a20000-0000-7000-8000-000000000004";
const R5: &str = "01a20000-0000-7000-8000-000000000005";

/// A store with runs in every state, jobs, steps and step logs, at fixed
/// ids and times.
fn fixed_store(env: &Env) {
    let store = env.store();
    let sql = format!(
        "
        INSERT INTO repos (id, git_dir, name, hook_state, first_seen_at_ms) VALUES
          (1, '/srv/git/app.git', 'app.git', 'seen', {b}),
          (2, '/srv/git/lib.git', 'lib.git', 'seen', {b});
        INSERT INTO runs (id, repo_id, ref_name, sha, state, failure_kind, failure_detail, pushed_at_ms,
                          queued_at_ms, started_at_ms, finished_at_ms, traceparent,
                          worker_id, worker_pid, lease_expires_at_ms, previous_sha) VALUES
          ('{R1}', 1, 'refs/heads/main', '{a}', 'complete', NULL, NULL, {b}, {b}, {b1}, {b65},
           '00-{t1}-{s}-01', 'w1', 4242, {b30}, NULL),
          ('{R2}', 1, 'refs/heads/dev', '{c}', 'failed', 'pipeline-failure', 'job test failed',
           {b120}, {b120}, {b121}, {b180}, '00-{t2}-{s}-01', 'w1', 4242, {b150}, '{a}'),
          ('{R3}', 2, 'refs/tags/v1.0', '{d}', 'superseded', NULL, NULL, {b200}, {b200}, NULL, {b250},
           '00-{t3}-{s}-01', NULL, NULL, NULL, NULL),
          ('{R4}', 1, 'refs/heads/feature', '{e}', 'active', NULL, NULL, {b300}, {b300}, {b301}, NULL,
           '00-{t4}-{s}-01', 'w2', 4243, {b330}, NULL),
          ('{R5}', 1, 'refs/heads/main', '{f}', 'pending', NULL, NULL, {b350}, {b350}, NULL, NULL,
           '00-{t5}-{s}-01', NULL, NULL, NULL, '{a}');
        INSERT INTO jobs (run_id, job_id, position, state, exit_code, skip_reason, started_at_ms, finished_at_ms) VALUES
          ('{R1}', 'build', 0, 'complete', 0, NULL, {b1}, {b60}),
          ('{R1}', 'deploy', 1, 'skipped', NULL, 'when does not match refs/heads/main', NULL, {b60}),
          ('{R2}', 'test', 0, 'failed', 101, NULL, {b121}, {b180}),
          ('{R2}', 'release', 1, 'skipped', NULL, 'needs test, which failed', NULL, {b180}),
          ('{R4}', 'build', 0, 'complete', 0, NULL, {b301}, {b310}),
          ('{R4}', 'test', 1, 'active', NULL, NULL, {b310}, NULL);
        INSERT INTO sh_events (run_id, job_id, seq, cmd, exit_code, started_at_ms, finished_at_ms) VALUES
          ('{R1}', 'build', 1, 'cargo build', 0, {b1}, {b30}),
          ('{R1}', 'build', 2, 'cargo test --all', 0, {b30}, {b60}),
          ('{R2}', 'test', 1, 'cargo test', 101, {b121}, {b180}),
          ('{R4}', 'build', 1, 'make', 0, {b301}, {b310}),
          ('{R4}', 'test', 1, 'sleep 600', NULL, {b310}, NULL);
        ",
        a = "a".repeat(40),
        c = "c".repeat(40),
        d = "d".repeat(40),
        e = "e".repeat(40),
        f = "f".repeat(40),
        s = "0123456789abcdef",
        t1 = "1".repeat(32),
        t2 = "2".repeat(32),
        t3 = "3".repeat(32),
        t4 = "4".repeat(32),
        t5 = "5".repeat(32),
        b = BASE,
        b1 = BASE + 1_000,
        b30 = BASE + 30_000,
        b60 = BASE + 60_000,
        b65 = BASE + 65_000,
        b120 = BASE + 120_000,
        b121 = BASE + 121_000,
        b150 = BASE + 150_000,
        b180 = BASE + 180_000,
        b200 = BASE + 200_000,
        b250 = BASE + 250_000,
        b300 = BASE + 300_000,
        b301 = BASE + 301_000,
        b310 = BASE + 310_000,
        b330 = BASE + 330_000,
        b350 = BASE + 350_000,
    );
    store.connection().execute_batch(&sql).unwrap();
    let log = |run: &str, job: &str, seq: i64, lines: &[&str]| {
        let dir = env.home().run_dir(run).join("logs").join(job);
        std::fs::create_dir_all(&dir).unwrap();
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join(format!("{seq}.log")), text).unwrap();
    };
    log(
        R1,
        "build",
        1,
        &[
            "2026-11-28T12:00:01.100000000Z stdout F    Compiling app v0.1.0",
            "2026-11-28T12:00:29.900000000Z stderr F warning: unused variable: `x`",
            "2026-11-28T12:00:29.950000000Z stdout F     Finished dev profile",
        ],
    );
    log(
        R1,
        "build",
        2,
        &[
            "2026-11-28T12:00:31.000000000Z stdout F running 3 tests",
            "2026-11-28T12:00:31.500000000Z stdout P test result: ",
            "2026-11-28T12:00:31.500000001Z stdout F ok. 3 passed",
            "2026-11-28T12:00:31.600000000Z stderr P no newline at the end",
        ],
    );
    log(
        R2,
        "test",
        1,
        &["2026-11-28T12:02:05.000000000Z stderr F thread 'main' panicked"],
    );
    log(
        R4,
        "test",
        1,
        &["2026-11-28T12:05:11.000000000Z stdout F sleeping"],
    );
}

fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("QUIRE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{name} differs from tests/snapshots/{name} \
         (bless with `QUIRE_BLESS=1 cargo test --test integration snapshot`):\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn output(env: &Env, args: &[&str]) -> String {
    let out = env
        .runs(args)
        .env("QUIRE_NOW", NOW)
        .assert()
        .get_output()
        .clone();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn snapshot_list_show_and_logs_for_people() {
    let env = Env::new();
    fixed_store(&env);
    snapshot("list.txt", &output(&env, &["list"]));
    snapshot(
        "list-filtered.txt",
        &output(
            &env,
            &[
                "list", "--repo", "app.git", "--state", "complete", "--state", "failed",
            ],
        ),
    );
    snapshot("show-complete.txt", &output(&env, &["show", R1]));
    snapshot("show-failed.txt", &output(&env, &["show", R2]));
    snapshot("show-active.txt", &output(&env, &["show", R4]));
    snapshot("show-pending.txt", &output(&env, &["show", R5]));
    snapshot("logs.txt", &output(&env, &["logs", R1]));
    snapshot(
        "logs-step-timestamps.txt",
        &output(&env, &["logs", R1, "build", "--step", "2", "--timestamps"]),
    );
    snapshot(
        "logs-stderr.txt",
        &output(&env, &["logs", R1, "--stream", "stderr"]),
    );
}

#[test]
fn snapshot_json_is_stable_for_a_fixed_store() {
    let env = Env::new();
    fixed_store(&env);
    let list = output(&env, &["list", "--json"]);
    snapshot("list.json", &list);
    snapshot("show-complete.json", &output(&env, &["show", R1, "--json"]));
    snapshot("show-active.json", &output(&env, &["show", R4, "--json"]));
    // Twice gives the same bytes.
    assert_eq!(output(&env, &["list", "--json"]), list);
    let _ = R3;
}
