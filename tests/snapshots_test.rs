//! What a person and a script see, for a fixed store at a frozen "now":
//! list, show and logs inline below, their JSON in tests/snapshots/. A
//! change in output is a reviewed diff: `cargo insta test --review`
//! (cargo-insta), or `INSTA_UPDATE=always` and `git diff` for the files.

use quire_testkit::Env;

/// 2026-11-28T12:00:00Z.
const BASE: i64 = 1_795_867_200_000;
/// "Now" for every snapshot: six minutes after BASE.
pub(crate) const NOW: &str = "2026-11-28T12:06:00Z";

pub(crate) const R1: &str = "01a20000-0000-7000-8000-000000000001";
pub(crate) const R2: &str = "01a20000-0000-7000-8000-000000000002";
const R3: &str = "01a20000-0000-7000-8000-000000000003";
pub(crate) const R4: &str = "01a20000-0000-7000-8000-000000000004";
const R5: &str = "01a20000-0000-7000-8000-000000000005";

/// A store with runs in every state, jobs, steps and step logs, at fixed
/// ids and times.
pub(crate) fn fixed_store(env: &Env) {
    let store = env.store();
    let sql = format!(
        "
        INSERT INTO repos (id, git_dir, name, hook_state, first_seen_at_ms) VALUES
          (1, '/srv/git/app.git', 'app.git', 'seen', {b}),
          (2, '/srv/git/lib.git', 'lib.git', 'seen', {b});
        INSERT INTO runs (id, repo_id, ref_name, sha, state, failure_kind, failure_detail, pushed_at_ms,
                          queued_at_ms, started_at_ms, finished_at_ms, traceparent,
                          worker_id, worker_pid, lease_expires_at_ms, previous_sha,
                          containment, cgroup) VALUES
          ('{R1}', 1, 'refs/heads/main', '{a}', 'complete', NULL, NULL, {b}, {b}, {b1}, {b65},
           '00-{t1}-{s}-01', 'w1', 4242, {b30}, NULL, 'cgroup', '/sys/fs/cgroup/ci/quire-{R1}'),
          ('{R2}', 1, 'refs/heads/dev', '{c}', 'failed', 'pipeline-failure', 'job test failed',
           {b120}, {b120}, {b121}, {b180}, '00-{t2}-{s}-01', 'w1', 4242, {b150}, '{a}',
           'subreaper', NULL),
          ('{R3}', 2, 'refs/tags/v1.0', '{d}', 'superseded', NULL, NULL, {b200}, {b200}, NULL, {b250},
           '00-{t3}-{s}-01', NULL, NULL, NULL, NULL, NULL, NULL),
          ('{R4}', 1, 'refs/heads/feature', '{e}', 'active', NULL, NULL, {b300}, {b300}, {b301}, NULL,
           '00-{t4}-{s}-01', 'w2', 4243, {b330}, NULL, 'cgroup', '/sys/fs/cgroup/ci/quire-{R4}'),
          ('{R5}', 1, 'refs/heads/main', '{f}', 'pending', NULL, NULL, {b350}, {b350}, NULL, NULL,
           '00-{t5}-{s}-01', NULL, NULL, NULL, '{a}', NULL, NULL);
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
        UPDATE runs SET subject = 'Parse the new header', author = 'Ada <ada@example.com>',
                        event = 'push' WHERE id = '{R1}';
        UPDATE runs SET subject = 'Test the parser again', author = 'Ada <ada@example.com>',
                        event = 'retry', retry_of = '{R1}' WHERE id = '{R2}';
        UPDATE runs SET event = 'trigger' WHERE id = '{R4}';
        UPDATE jobs SET allow_failure = 0 WHERE run_id IN ('{R1}', '{R2}', '{R4}');
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
        let dir = env.home().run_dir(run).unwrap().join("logs").join(job);
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

/// `quire-runs ARGS` at NOW, which must succeed; its stdout.
fn output(env: &Env, args: &[&str]) -> String {
    let out = env
        .runs(args)
        .env("QUIRE_NOW", NOW)
        .assert()
        .success()
        .get_output()
        .clone();
    String::from_utf8(out.stdout).unwrap()
}

/// Compare with tests/snapshots/NAME.snap.
pub(crate) fn file_snapshot(name: &str, actual: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, actual));
}

#[test]
fn snapshot_list_for_people() {
    let env = Env::new();
    fixed_store(&env);
    insta::assert_snapshot!(output(&env, &["list"]), @r#"
        RUN       REPO     REF       SHA           STATE                      DURATION  AGE      SUBJECT
        00000005  app.git  main      ffffffffffff  pending                              10s ago
        00000004  app.git  feature   eeeeeeeeeeee  active                     59.0s     1m ago
        00000003  lib.git  tag v1.0  dddddddddddd  superseded                           2m ago
        00000002  app.git  dev       cccccccccccc  failed (pipeline-failure)  59.0s     4m ago   Test the parser again
        00000001  app.git  main      aaaaaaaaaaaa  complete                   1m 4s     6m ago   Parse the new header
    "#);
    insta::assert_snapshot!(
        output(
            &env,
            &["list", "--repo", "app.git", "--state", "complete", "--state", "failed"],
        ),
        @r#"
        RUN       REPO     REF   SHA           STATE                      DURATION  AGE     SUBJECT
        00000002  app.git  dev   cccccccccccc  failed (pipeline-failure)  59.0s     4m ago  Test the parser again
        00000001  app.git  main  aaaaaaaaaaaa  complete                   1m 4s     6m ago  Parse the new header
    "#
    );
    // gh's short flags, a branch, a glob; the short ids select their runs.
    insta::assert_snapshot!(output(&env, &["list", "-R", "app", "-b", "*a*", "-L", "5"]), @r#"
        RUN       REPO     REF      SHA           STATE     DURATION  AGE      SUBJECT
        00000005  app.git  main     ffffffffffff  pending             10s ago
        00000004  app.git  feature  eeeeeeeeeeee  active    59.0s     1m ago
        00000001  app.git  main     aaaaaaaaaaaa  complete  1m 4s     6m ago   Parse the new header
    "#);
    insta::assert_snapshot!(output(&env, &["list", "--ref", "v1.*", "-s", "superseded"]), @r#"
        RUN       REPO     REF       SHA           STATE       DURATION  AGE     SUBJECT
        00000003  lib.git  tag v1.0  dddddddddddd  superseded            2m ago
    "#);
    let shown = output(&env, &["show", "00000004"]);
    assert!(shown.starts_with(&format!("run       {R4}\n")), "{shown}");
}

#[test]
fn snapshot_show_for_people() {
    let env = Env::new();
    fixed_store(&env);
    // The default worker count is the machine's CPUs: fixed here, so the
    // pending run's `waiting` line is the same everywhere.
    env.config("max_workers = 1\n");
    insta::assert_snapshot!(output(&env, &["show", R1]), @r#"
        run       01a20000-0000-7000-8000-000000000001
        repo      app.git (/srv/git/app.git)
        ref       refs/heads/main
        sha       aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
        subject   Parse the new header
        author    Ada <ada@example.com>
        event     push
        state     complete
        pushed    2026-11-28T12:00:00.000Z (6m ago)
        queued    2026-11-28T12:00:00.000Z (6m ago)
        started   2026-11-28T12:00:01.000Z (5m ago)
        finished  2026-11-28T12:01:05.000Z (4m ago)
        duration  1m 4s
        contained by cgroup /sys/fs/cgroup/ci/quire-01a20000-0000-7000-8000-000000000001

        JOB                    STATE                                         DURATION  EXIT
        build                  complete                                      59.0s     0
          1. cargo build                                                     29.0s     0
          2. cargo test --all                                                30.0s     0
        deploy                 skipped: when does not match refs/heads/main
    "#);
    insta::assert_snapshot!(output(&env, &["show", R2]), @r#"
        run       01a20000-0000-7000-8000-000000000002
        repo      app.git (/srv/git/app.git)
        ref       refs/heads/dev
        sha       cccccccccccccccccccccccccccccccccccccccc
        subject   Test the parser again
        author    Ada <ada@example.com>
        event     retry of run 01a20000-0000-7000-8000-000000000001
        state     failed (pipeline-failure)
        meaning   a job of the pipeline failed
        detail    job test failed
        pushed    2026-11-28T12:02:00.000Z (4m ago)
        queued    2026-11-28T12:02:00.000Z (4m ago)
        started   2026-11-28T12:02:01.000Z (3m ago)
        finished  2026-11-28T12:03:00.000Z (3m ago)
        duration  59.0s
        contained by subreaper (no cgroup: the worker ended its steps' processes by ancestry)

        JOB              STATE                              DURATION  EXIT
        test             failed                             59.0s     101
          1. cargo test                                     59.0s     101
        release          skipped: needs test, which failed
    "#);
    insta::assert_snapshot!(output(&env, &["show", R4]), @r#"
        run       01a20000-0000-7000-8000-000000000004
        repo      app.git (/srv/git/app.git)
        ref       refs/heads/feature
        sha       eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee
        event     trigger
        state     active
        pushed    2026-11-28T12:05:00.000Z (1m ago)
        queued    2026-11-28T12:05:00.000Z (1m ago)
        started   2026-11-28T12:05:01.000Z (59s ago)
        duration  59.0s
        contained by cgroup /sys/fs/cgroup/ci/quire-01a20000-0000-7000-8000-000000000004
        worker    pid 4243 (lease until 2026-11-28T12:05:30.000Z)
        running   test step 1: sleep 600

        JOB             STATE     DURATION  EXIT
        build           complete  9.0s      0
          1. make                 9.0s      0
        test            active    50.0s
          1. sleep 600  running   50.0s
    "#);
    insta::assert_snapshot!(output(&env, &["show", R5]), @r#"
        run       01a20000-0000-7000-8000-000000000005
        repo      app.git (/srv/git/app.git)
        ref       refs/heads/main
        sha       ffffffffffffffffffffffffffffffffffffffff
        state     pending
        waiting   for a worker slot: all 1 are busy (executing 01a20000-0000-7000-8000-000000000004); first in the queue
        pushed    2026-11-28T12:05:50.000Z (10s ago)
        queued    2026-11-28T12:05:50.000Z (10s ago)

        no jobs recorded
    "#);
}

#[test]
fn snapshot_logs_for_people() {
    let env = Env::new();
    fixed_store(&env);
    insta::assert_snapshot!(output(&env, &["logs", R1]), @r#"
        ==> build step 1: cargo build <==
           Compiling app v0.1.0
        warning: unused variable: `x`
            Finished dev profile
        ==> build step 2: cargo test --all <==
        running 3 tests
        test result: ok. 3 passed
        no newline at the end
    "#);
    insta::assert_snapshot!(
        output(&env, &["logs", R1, "build", "--step", "2", "--timestamps"]),
        @r#"
        2026-11-28T12:00:31.000000000Z running 3 tests
        2026-11-28T12:00:31.500000000Z test result: ok. 3 passed
        2026-11-28T12:00:31.600000000Z no newline at the end
    "#
    );
    insta::assert_snapshot!(output(&env, &["logs", R1, "--stream", "stderr"]), @r#"
        ==> build step 1: cargo build <==
        warning: unused variable: `x`
        ==> build step 2: cargo test --all <==
        no newline at the end
    "#);
}

#[test]
fn snapshot_watch_of_ended_runs_in_a_pipe() {
    let env = Env::new();
    fixed_store(&env);
    // A run that had already ended: its final state once, then exit.
    insta::assert_snapshot!(output(&env, &["watch", R1]), @r#"
        run 01a20000-0000-7000-8000-000000000001 of app.git refs/heads/main at aaaaaaaaaaaa
        job build complete in 59.0s (exit 0)
        job deploy skipped: when does not match refs/heads/main
        run 01a20000-0000-7000-8000-000000000001 complete in 1m 4s
    "#);
    insta::assert_snapshot!(output(&env, &["watch", R2]), @r#"
        run 01a20000-0000-7000-8000-000000000002 of app.git refs/heads/dev at cccccccccccc
        job test failed in 59.0s (exit 101; step 1: cargo test)
        job release skipped: needs test, which failed
        run 01a20000-0000-7000-8000-000000000002 failed (pipeline-failure) in 59.0s: job test failed
    "#);
    // No RUN: the newest run, of --repo and --ref when given.
    insta::assert_snapshot!(output(&env, &["watch", "--repo", "lib.git"]), @r#"
        run 01a20000-0000-7000-8000-000000000003 of lib.git refs/tags/v1.0 at dddddddddddd
        run 01a20000-0000-7000-8000-000000000003 superseded
    "#);
    let newest_of_dev = output(&env, &["watch", "--repo", "app", "--ref", "dev"]);
    assert_eq!(newest_of_dev, output(&env, &["watch", R2]));
    env.runs(&["watch", "--exit-status", R2])
        .env("QUIRE_NOW", NOW)
        .assert()
        .code(1);
    env.runs(&["watch", "--exit-status", R3])
        .env("QUIRE_NOW", NOW)
        .assert()
        .code(1);
    env.runs(&["watch", "--exit-status", R1])
        .env("QUIRE_NOW", NOW)
        .assert()
        .success();
}

#[test]
fn snapshot_json_is_stable_for_a_fixed_store() {
    let env = Env::new();
    fixed_store(&env);
    let list = output(&env, &["list", "--json"]);
    file_snapshot("list.json", &list);
    file_snapshot("show-complete.json", &output(&env, &["show", R1, "--json"]));
    file_snapshot("show-active.json", &output(&env, &["show", R4, "--json"]));
    // Twice gives the same bytes.
    assert_eq!(output(&env, &["list", "--json"]), list);
    // The superseded run is listed, and its own show has no jobs.
    let superseded: serde_json::Value =
        serde_json::from_str(&output(&env, &["show", R3, "--json"])).unwrap();
    assert_eq!(
        (&superseded["state"], &superseded["jobs"]),
        (&serde_json::json!("superseded"), &serde_json::json!([]))
    );
}

#[test]
fn snapshot_repos_caches_and_prune_for_people() {
    let env = Env::new();
    fixed_store(&env);
    // The fixed store's repositories are paths that do not exist here:
    // repos says so, per repository.
    insta::assert_snapshot!(output(&env, &["repos"]), @r#"
        REPO     PATH              HOOK             RUNS  LAST RUN
        app.git  /srv/git/app.git  repository gone  4     pending, 10s ago
        lib.git  /srv/git/lib.git  repository gone  1     superseded, 2m ago
    "#);
    // No cache kept: nothing on stdout (stderr says so).
    insta::assert_snapshot!(output(&env, &["caches"]), @r#"
    "#);
    insta::assert_snapshot!(output(&env, &["prune", "--dry-run", "--older-than", "3m", "--keep", "1"]), @r#"
        would delete 0 runs, 0 B of logs and events; kept the newest 1 of each ref
    "#);
}
