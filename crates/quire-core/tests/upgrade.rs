//! Every schema version the seed's history produced, filled with rows in
//! every state that version allows, upgrades to the latest schema with every
//! row of every table kept.

use quire_core::schema::{self, LATEST};
use quire_core::{Home, Store};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

/// (job, state, exit code, started, finished) as the seed wrote a job.
type SeedJob = (
    &'static str,
    &'static str,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);
/// The kept columns of a run, read back.
type RunRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);
type JobRow = (String, i64, String, Option<i64>, Option<i64>, Option<i64>);
type StepRow = (String, i64, String, Option<i64>, i64, Option<i64>);

/// A run row as the seed wrote it at some schema version.
struct SeedRun {
    id: String,
    ref_name: String,
    state: &'static str,
    kind: Option<&'static str>,
    started: Option<i64>,
    finished: Option<i64>,
}

/// Columns that only some versions have, and a value for each.
fn extra_columns(version: i64, n: i64) -> Vec<(&'static str, Value)> {
    let mut extra = Vec::new();
    if (1..7).contains(&version) {
        extra.push(("container_id", Value::Text(format!("c{n:04}"))));
        extra.push(("container_image", Value::Text("rust:1".into())));
        extra.push(("docker_host", Value::Text("unix:///run/docker.sock".into())));
        extra.push(("docker_network", Value::Text("ci".into())));
        extra.push(("cache_volume", Value::Text("cargo-cache".into())));
        extra.push(("cpu_quota", Value::Real(1.5)));
        extra.push(("memory_limit_mb", Value::Integer(2048)));
    }
    if (4..7).contains(&version) {
        extra.push(("sentry_trace_id", Value::Text(format!("sentry-{n}"))));
    }
    if (3..5).contains(&version) {
        extra.push(("auth_token", Value::Text(format!("secret-{n}"))));
    }
    if version >= 5 {
        extra.push(("run_token", Value::Text(format!("secret-{n}"))));
    }
    if version >= 4 {
        extra.push(("git_dir", Value::Text(format!("/srv/git/app{n}.git"))));
    }
    if version >= 6 {
        extra.push((
            "traceparent",
            Value::Text(format!("00-{:032x}-{:016x}-01", n + 1, n + 1)),
        ));
    }
    extra
}

/// Runs in every state and failure kind, each on its own ref.
fn seed_runs() -> Vec<SeedRun> {
    let mut runs = Vec::new();
    let mut push = |state, kind, started, finished| {
        let n = runs.len();
        runs.push(SeedRun {
            id: format!("0190{n:04}-0000-7000-8000-000000000000"),
            ref_name: format!("refs/heads/b{n}"),
            state,
            kind,
            started,
            finished,
        });
    };
    push("pending", None, None, None);
    push("active", None, Some(1_100), None);
    push("complete", None, Some(1_100), Some(1_900));
    for kind in [
        "pipeline-failure",
        "pipeline-invalid",
        "process-crashed",
        "orphaned",
        "cancelled",
    ] {
        push("failed", Some(kind), Some(1_100), Some(1_500));
    }
    push("failed", Some("cancelled"), None, Some(1_050));
    push("superseded", None, None, Some(1_050));
    push("superseded", None, Some(1_100), Some(1_200));
    runs
}

fn insert_run(conn: &Connection, version: i64, n: usize, run: &SeedRun) {
    let mut columns = vec![
        "id",
        "repo",
        "ref_name",
        "sha",
        "state",
        "failure_kind",
        "pushed_at_ms",
        "queued_at_ms",
        "started_at_ms",
        "finished_at_ms",
    ];
    let mut values = vec![
        Value::Text(run.id.clone()),
        Value::Text("app.git".into()),
        Value::Text(run.ref_name.clone()),
        Value::Text(format!("{n:040x}")),
        Value::Text(run.state.into()),
        run.kind.map_or(Value::Null, |k| Value::Text(k.into())),
        Value::Integer(900),
        Value::Integer(1_000),
        run.started.map_or(Value::Null, Value::Integer),
        run.finished.map_or(Value::Null, Value::Integer),
    ];
    for (column, value) in extra_columns(version, n as i64) {
        columns.push(column);
        values.push(value);
    }
    let marks: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
    conn.execute(
        &format!(
            "INSERT INTO runs ({}) VALUES ({})",
            columns.join(", "),
            marks.join(", ")
        ),
        params_from_iter(values),
    )
    .unwrap();
}

/// Jobs of a run in states fitting it: (job, state, exit, started, finished).
fn seed_jobs(run: &SeedRun) -> Vec<SeedJob> {
    match (run.state, run.started) {
        ("active", _) => vec![
            ("build", "complete", Some(0), Some(1_100), Some(1_200)),
            ("test", "active", None, Some(1_200), None),
            ("deploy", "pending", None, None, None),
        ],
        ("complete", _) => vec![
            ("build", "complete", Some(0), Some(1_100), Some(1_500)),
            ("release", "skipped", None, None, Some(1_500)),
        ],
        ("failed", Some(_)) => vec![
            ("build", "failed", Some(2), Some(1_100), Some(1_400)),
            ("deploy", "skipped", None, None, Some(1_400)),
        ],
        _ => vec![],
    }
}

fn fill(conn: &Connection, version: i64) -> Counts {
    let mut counts = Counts::default();
    if version == 0 {
        return counts;
    }
    for (n, run) in seed_runs().iter().enumerate() {
        insert_run(conn, version, n, run);
        counts.runs += 1;
        for (job, state, exit, started, finished) in seed_jobs(run) {
            conn.execute(
                "INSERT INTO jobs (run_id, job_id, state, exit_code, started_at_ms, finished_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![run.id, job, state, exit, started, finished],
            )
            .unwrap();
            counts.jobs += 1;
            if let (true, Some(started), Some(_)) = (version >= 2, started, finished) {
                // Three steps; the seed keyed them by start time.
                for step in 0..3i64 {
                    let start = started + step * 10;
                    conn.execute(
                        "INSERT INTO sh_events (run_id, job_id, cmd, exit_code, started_at_ms,
                                                finished_at_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        rusqlite::params![
                            run.id,
                            job,
                            format!("make step{step}"),
                            if step == 2 { exit.unwrap() } else { 0 },
                            start,
                            start + 5
                        ],
                    )
                    .unwrap();
                    counts.steps += 1;
                }
            }
        }
    }
    counts
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    runs: i64,
    jobs: i64,
    steps: i64,
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// A store at `version` with the seed's rows in it, and what it holds.
fn seed_store(version: i64) -> (tempfile::TempDir, Home, Counts) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("home"));
    home.ensure().unwrap();
    let mut conn = Connection::open(home.db_path()).unwrap();
    schema::migrate_to(&mut conn, version).unwrap();
    assert_eq!(schema::version(&conn).unwrap(), version);
    let counts = fill(&conn, version);
    (dir, home, counts)
}

#[test]
fn every_seed_version_upgrades_keeping_every_row() {
    for version in 0..=7 {
        let (_dir, home, before) = seed_store(version);
        let store = Store::open(&home).unwrap_or_else(|e| panic!("v{version}: {e}"));
        let conn = store.connection();
        assert_eq!(schema::version(conn).unwrap(), LATEST);
        let after = Counts {
            runs: count(conn, "runs"),
            jobs: count(conn, "jobs"),
            steps: count(conn, "sh_events"),
        };
        assert_eq!(after, before, "v{version}: row counts changed");
        if version >= 1 {
            assert!(before.runs > 0 && before.jobs > 0);
        }
        if version >= 2 {
            assert!(before.steps > 0);
        }
        check_contents(conn, version);
        let fk_violations: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(fk_violations, 0, "v{version}");
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "v{version}");
        let fk_on: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk_on, 1, "v{version}: foreign keys must be back on");
    }
}

/// Every kept column of every row reads back as the seed wrote it.
fn check_contents(conn: &Connection, version: i64) {
    if version == 0 {
        return;
    }
    for (n, seed) in seed_runs().iter().enumerate() {
        let row: RunRow = conn
            .query_row(
                "SELECT repo, ref_name, sha, state, failure_kind, pushed_at_ms, queued_at_ms,
                        started_at_ms, finished_at_ms, git_dir, traceparent
                 FROM runs WHERE id = ?1",
                [&seed.id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                },
            )
            .unwrap_or_else(|e| panic!("v{version}: run {} lost: {e}", seed.id));
        let extras = extra_columns(version, n as i64);
        let text = |name: &str| {
            extras
                .iter()
                .find(|(c, _)| *c == name)
                .map(|(_, v)| match v {
                    Value::Text(t) => t.clone(),
                    _ => unreachable!(),
                })
        };
        assert_eq!(
            row,
            (
                "app.git".to_string(),
                seed.ref_name.clone(),
                format!("{n:040x}"),
                seed.state.to_string(),
                seed.kind.map(str::to_string),
                900,
                1_000,
                seed.started,
                seed.finished,
                text("git_dir"),
                text("traceparent"),
            ),
            "v{version}: run {n}"
        );
        let jobs: Vec<JobRow> = conn
            .prepare(
                "SELECT job_id, position, state, exit_code, started_at_ms, finished_at_ms
                 FROM jobs WHERE run_id = ?1 ORDER BY position",
            )
            .unwrap()
            .query_map([&seed.id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<_> = seed_jobs(seed)
            .into_iter()
            .enumerate()
            .map(|(i, (job, state, exit, started, finished))| {
                (
                    job.to_string(),
                    i as i64,
                    state.to_string(),
                    exit,
                    started,
                    finished,
                )
            })
            .collect();
        assert_eq!(jobs, expected, "v{version}: jobs of run {n}");
        if version >= 2 {
            let steps: Vec<StepRow> = conn
                .prepare(
                    "SELECT job_id, seq, cmd, exit_code, started_at_ms, finished_at_ms
                     FROM sh_events WHERE run_id = ?1 ORDER BY job_id, seq",
                )
                .unwrap()
                .query_map([&seed.id], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut expected = Vec::new();
            for (job, _, exit, started, finished) in seed_jobs(seed) {
                let (Some(started), Some(_)) = (started, finished) else {
                    continue;
                };
                for step in 0..3i64 {
                    let start = started + step * 10;
                    let code = if step == 2 { exit.unwrap() } else { 0 };
                    expected.push((
                        job.to_string(),
                        step + 1,
                        format!("make step{step}"),
                        Some(code),
                        start,
                        Some(start + 5),
                    ));
                }
            }
            expected.sort();
            assert_eq!(steps, expected, "v{version}: steps of run {n}");
        }
    }
}

#[test]
fn a_seed_store_with_two_live_runs_of_a_ref_keeps_both_and_the_newest_stays_live() {
    for version in [1, 7] {
        let (_dir, home, _) = seed_store(version);
        let conn = Connection::open(home.db_path()).unwrap();
        // The seed's racy supersede left an older active run beside a newer
        // pending one on refs/heads/b0 (run 0 is pending there already).
        let older = SeedRun {
            id: "018f0000-0000-7000-8000-000000000000".into(),
            ref_name: "refs/heads/b0".into(),
            state: "active",
            kind: None,
            started: Some(500),
            finished: None,
        };
        insert_run(&conn, version, 99, &older);
        conn.execute(
            "UPDATE runs SET queued_at_ms = 400, pushed_at_ms = 400 WHERE id = ?1",
            [&older.id],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO jobs (run_id, job_id, state, started_at_ms) VALUES (?1, 'test', 'active', 500)",
            [&older.id],
        )
        .unwrap();
        let runs_before = count(&conn, "runs");
        drop(conn);

        let store = Store::open(&home).unwrap();
        let conn = store.connection();
        assert_eq!(count(conn, "runs"), runs_before);
        let state = |id: &str| -> (String, Option<i64>) {
            conn.query_row(
                "SELECT state, finished_at_ms FROM runs WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(
            state(&older.id),
            ("superseded".into(), Some(1_000)),
            "v{version}"
        );
        assert_eq!(state(&seed_runs()[0].id).0, "pending", "v{version}");
        let job: (String, Option<i64>) = conn
            .query_row(
                "SELECT state, finished_at_ms FROM jobs WHERE run_id = ?1",
                [&older.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(job, ("aborted".into(), Some(1_000)), "v{version}");
    }
}

#[test]
fn a_store_newer_than_this_build_is_refused_byte_for_byte_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    drop(Store::open(&home).unwrap());
    let conn = Connection::open(home.db_path()).unwrap();
    conn.pragma_update(None, "user_version", LATEST + 1)
        .unwrap();
    drop(conn);
    let before = std::fs::read(home.db_path()).unwrap();
    let err = Store::open(&home)
        .err()
        .expect("a newer store must be refused");
    assert!(
        matches!(err, quire_core::Error::TooNew { found, known, .. } if found == LATEST + 1 && known == LATEST)
    );
    assert!(
        err.to_string().contains("newer than this quire knows"),
        "{err}"
    );
    assert_eq!(std::fs::read(home.db_path()).unwrap(), before);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let garbage = b"this is not sqlite, it is a shopping list\n".repeat(200);
    std::fs::write(home.db_path(), &garbage).unwrap();
    let err = Store::open(&home).err().expect("garbage must be refused");
    assert!(
        matches!(err, quire_core::Error::NotADatabase { .. }),
        "{err:?}"
    );
    assert_eq!(std::fs::read(home.db_path()).unwrap(), garbage);
}

#[test]
fn the_store_file_and_home_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("new/home"));
    let store = Store::open(&home).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(home.dir()), 0o700);
    assert_eq!(mode(&home.db_path()), 0o600);
    let journal: String = store
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let wal = home.db_path().with_extension("db-wal");
    assert!(!wal.exists() || mode(&wal) == 0o600);
}

#[test]
fn a_seed_run_that_ended_with_open_jobs_has_them_closed_by_the_upgrade() {
    let (_dir, home, _) = seed_store(7);
    let conn = Connection::open(home.db_path()).unwrap();
    // Run 2 is complete; the seed left one of its jobs active, one pending.
    let run = &seed_runs()[2];
    assert_eq!(run.state, "complete");
    conn.execute(
        "INSERT INTO jobs (run_id, job_id, state, started_at_ms) VALUES (?1, 'stuck', 'active', 1200)",
        [&run.id],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO jobs (run_id, job_id, state) VALUES (?1, 'never', 'pending')",
        [&run.id],
    )
    .unwrap();
    drop(conn);
    let store = Store::open(&home).unwrap();
    let job = |id: &str| -> (String, Option<i64>, Option<String>) {
        store
            .connection()
            .query_row(
                "SELECT state, finished_at_ms, skip_reason FROM jobs WHERE run_id = ?1 AND job_id = ?2",
                [&run.id, id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    assert_eq!(job("stuck"), ("aborted".into(), Some(1_900), None));
    assert_eq!(
        job("never"),
        ("skipped".into(), Some(1_900), Some("run complete".into()))
    );
}
