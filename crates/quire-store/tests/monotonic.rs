//! Times never go backwards in the database itself (migration 0018): after
//! every upgrade path (the seed's version 7, upstream's 1..11, quire's own
//! 8..17, and a new store) the store refuses a run or a job whose times go
//! backwards, inserted or updated; and a store written before 0018 that
//! holds such rows upgrades keeping every row, repaired and saying so.

#[path = "support/upstream.rs"]
mod upstream;

use std::path::Path;

use quire_store::repos::Registration;
use quire_store::schema::{self, LATEST};

/// The version whose migration (0018) put the checks back: the stores
/// before it may hold rows that break them.
const ENFORCED: i64 = 18;
use quire_store::{Home, Store};
use rusqlite::{Connection, params};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn assert_refused(result: rusqlite::Result<usize>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation),
        "{what}: {err}"
    );
}

/// The store refuses every write whose times go backwards, and takes the
/// same rows with their times in order.
fn refuses_backward_times(store: &mut Store, path: &str) {
    let repo = store
        .register_repo(Path::new("/srv/git/probe.git"), None, Registration::Seen)
        .unwrap()
        .id;
    let conn = store.connection();
    let run = |id: &str, state: &str, kind: Option<&str>, times: [Option<i64>; 3]| {
        conn.execute(
            "INSERT INTO runs (id, repo_id, ref_name, sha, state, failure_kind,
                               pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms)
             VALUES (?1, ?2, 'refs/heads/' || ?1, ?3, ?4, ?5, ?6, ?6, ?7, ?8)",
            params![id, repo, SHA, state, kind, times[0], times[1], times[2]],
        )
    };
    let at = |what: &str| format!("{path}: {what}");
    assert_refused(
        run("a", "active", None, [Some(2_000), Some(1_999), None]),
        &at("a run started before it was queued"),
    );
    assert_refused(
        run(
            "b",
            "failed",
            Some("orphaned"),
            [Some(2_000), None, Some(1_999)],
        ),
        &at("a run finished before it was queued"),
    );
    assert_refused(
        run(
            "c",
            "complete",
            None,
            [Some(1_000), Some(2_000), Some(1_999)],
        ),
        &at("a run finished before it started"),
    );
    run(
        "ok",
        "complete",
        None,
        [Some(1_000), Some(2_000), Some(3_000)],
    )
    .unwrap();
    assert_refused(
        conn.execute(
            "UPDATE runs SET started_at_ms = queued_at_ms - 1 WHERE id = 'ok'",
            [],
        ),
        &at("an update moving a start before the queueing"),
    );
    assert_refused(
        conn.execute(
            "UPDATE runs SET finished_at_ms = started_at_ms - 1 WHERE id = 'ok'",
            [],
        ),
        &at("an update moving a finish before the start"),
    );
    assert_refused(
        conn.execute("UPDATE runs SET queued_at_ms = 2500 WHERE id = 'ok'", []),
        &at("an update moving the queueing after the start"),
    );

    let job = |id: &str, position: i64, state: &str, times: [Option<i64>; 2]| {
        conn.execute(
            "INSERT INTO jobs (run_id, job_id, position, state, started_at_ms, finished_at_ms)
             VALUES ('ok', ?1, ?2, ?3, ?4, ?5)",
            params![id, position, state, times[0], times[1]],
        )
    };
    for state in ["complete", "failed"] {
        assert_refused(
            job(state, 0, state, [None, Some(2_500)]),
            &at(&format!("a {state} job that never started")),
        );
        assert_refused(
            job(state, 0, state, [Some(2_500), None]),
            &at(&format!("a {state} job that never finished")),
        );
    }
    assert_refused(
        job("s", 0, "skipped", [None, None]),
        &at("a skipped job with no finish"),
    );
    assert_refused(
        job("s", 0, "skipped", [Some(2_100), Some(2_200)]),
        &at("a skipped job that started"),
    );
    assert_refused(
        job("x", 0, "aborted", [Some(2_100), None]),
        &at("an aborted job with no finish"),
    );
    for state in ["complete", "failed", "aborted"] {
        assert_refused(
            job(state, 0, state, [Some(2_500), Some(2_499)]),
            &at(&format!("a {state} job that finished before it started")),
        );
    }
    job("build", 0, "complete", [Some(2_100), Some(2_200)]).unwrap();
    job("lint", 1, "skipped", [None, Some(3_000)]).unwrap();
    assert_refused(
        conn.execute(
            "UPDATE jobs SET finished_at_ms = started_at_ms - 1 WHERE job_id = 'build'",
            [],
        ),
        &at("an update moving a job's finish before its start"),
    );
    assert_refused(
        conn.execute(
            "UPDATE jobs SET started_at_ms = NULL WHERE job_id = 'build'",
            [],
        ),
        &at("an update taking a complete job's start away"),
    );
    assert_refused(
        conn.execute(
            "UPDATE jobs SET finished_at_ms = NULL WHERE job_id = 'lint'",
            [],
        ),
        &at("an update taking a skipped job's finish away"),
    );
}

fn marked_current(store: &Store, path: &str) {
    assert_eq!(
        schema::version(store.connection()).unwrap(),
        LATEST,
        "{path}"
    );
}

#[test]
fn a_new_store_refuses_times_that_go_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&Home::at(dir.path())).unwrap();
    refuses_backward_times(&mut store, "new store");
}

#[test]
fn every_upstream_store_refuses_backward_times_once_upgraded() {
    // 7 is the seed; 1..6 its history; 8..11 upstream after it.
    for version in 1..=upstream::LATEST_UPSTREAM {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home"));
        std::fs::create_dir_all(home.dir()).unwrap();
        let expected = upstream::build(&home.db_path(), &dir.path().join("repos"), version);
        let mut store = Store::open(&home).unwrap_or_else(|e| panic!("v{version}: {e}"));
        let path = format!("upstream v{version}");
        marked_current(&store, &path);
        let runs: i64 = store
            .connection()
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runs, expected.runs.len() as i64, "{path}: every run kept");
        let repaired: i64 = store
            .connection()
            .query_row(
                "SELECT (SELECT count(*) FROM runs WHERE repaired IS NOT NULL)
                      + (SELECT count(*) FROM jobs WHERE repaired IS NOT NULL)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(repaired, 0, "{path}: upstream's rows already held");
        refuses_backward_times(&mut store, &path);
    }
}

/// A store as quire `version` (8..=17) wrote it, holding runs and jobs
/// whose times go backwards (nothing refused them from 0008 to 0017), and
/// one run and job whose times are in order.
fn quire_store_with_backward_times(home: &Home, version: i64) {
    std::fs::create_dir_all(home.dir()).unwrap();
    let mut conn = Connection::open(home.db_path()).unwrap();
    schema::migrate_to(&mut conn, version).unwrap();
    if version >= 10 {
        conn.execute(
            "INSERT INTO repos (id, git_dir, name, hook_state, first_seen_at_ms)
             VALUES (1, '/srv/git/app.git', 'app.git', 'seen', 1)",
            [],
        )
        .unwrap();
    }
    let run = |id: &str, state: &str, kind: Option<&str>, times: [Option<i64>; 3]| {
        let (repo_columns, repo_values) = if version >= 10 {
            ("repo_id", "1")
        } else {
            ("repo, git_dir", "'app.git', '/srv/git/app.git'")
        };
        conn.execute(
            &format!(
                "INSERT INTO runs (id, {repo_columns}, ref_name, sha, state, failure_kind,
                                   pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms)
                 VALUES (?1, {repo_values}, 'refs/heads/' || ?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)"
            ),
            params![id, SHA, state, kind, times[0], times[1], times[2]],
        )
        .unwrap_or_else(|e| panic!("v{version} run {id}: {e}"));
    };
    run(
        "start-early",
        "complete",
        None,
        [Some(2_000), Some(1_000), Some(1_500)],
    );
    run(
        "finish-early",
        "failed",
        Some("pipeline-failure"),
        [Some(2_000), None, Some(1_000)],
    );
    run(
        "finish-before-start",
        "complete",
        None,
        [Some(1_000), Some(3_000), Some(2_000)],
    );
    run("live", "active", None, [Some(2_000), Some(1_000), None]);
    run(
        "fine",
        "complete",
        None,
        [Some(1_000), Some(1_100), Some(1_200)],
    );
    let job = |run: &str, id: &str, position: i64, state: &str, times: [Option<i64>; 2]| {
        conn.execute(
            "INSERT INTO jobs (run_id, job_id, position, state, started_at_ms, finished_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run, id, position, state, times[0], times[1]],
        )
        .unwrap_or_else(|e| panic!("v{version} job {id}: {e}"));
    };
    job("fine", "never-started", 0, "complete", [None, Some(1_200)]);
    job(
        "fine",
        "finish-early",
        1,
        "failed",
        [Some(1_150), Some(1_120)],
    );
    job("fine", "no-finish", 2, "skipped", [None, None]);
    job(
        "fine",
        "aborted-early",
        3,
        "aborted",
        [Some(1_150), Some(1_110)],
    );
    job("fine", "ok", 4, "complete", [Some(1_100), Some(1_200)]);
    job("live", "no-finish", 0, "skipped", [None, None]);
}

fn run_row(conn: &Connection, id: &str) -> (i64, Option<i64>, Option<i64>, Option<String>) {
    conn.query_row(
        "SELECT queued_at_ms, started_at_ms, finished_at_ms, repaired FROM runs WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .unwrap_or_else(|e| panic!("run {id}: {e}"))
}

fn job_row(conn: &Connection, run: &str, id: &str) -> (Option<i64>, Option<i64>, Option<String>) {
    conn.query_row(
        "SELECT started_at_ms, finished_at_ms, repaired FROM jobs
         WHERE run_id = ?1 AND job_id = ?2",
        [run, id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap_or_else(|e| panic!("job {run}/{id}: {e}"))
}

#[test]
fn quire_stores_with_backward_times_upgrade_keeping_every_row_and_saying_so() {
    for version in 8..ENFORCED {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home"));
        quire_store_with_backward_times(&home, version);
        let mut store = Store::open(&home).unwrap_or_else(|e| panic!("v{version}: {e}"));
        let path = format!("quire v{version}");
        marked_current(&store, &path);
        let conn = store.connection();
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((count("runs"), count("jobs")), (5, 6), "{path}: every row");
        let said = |text: &str| Some(text.to_string());
        assert_eq!(
            run_row(conn, "start-early"),
            (
                2_000,
                Some(2_000),
                Some(2_000),
                said(
                    "started_at_ms was 1000, before queued_at_ms 2000; set to queued_at_ms \
                     by migration 0018; finished_at_ms was 1500, before started_at_ms 2000; \
                     set to started_at_ms by migration 0018"
                )
            ),
            "{path}"
        );
        assert_eq!(
            run_row(conn, "finish-early"),
            (
                2_000,
                None,
                Some(2_000),
                said(
                    "finished_at_ms was 1000, before queued_at_ms 2000; set to queued_at_ms \
                     by migration 0018"
                )
            ),
            "{path}"
        );
        assert_eq!(
            run_row(conn, "finish-before-start"),
            (
                1_000,
                Some(3_000),
                Some(3_000),
                said(
                    "finished_at_ms was 2000, before started_at_ms 3000; set to started_at_ms \
                     by migration 0018"
                )
            ),
            "{path}"
        );
        assert_eq!(
            run_row(conn, "live"),
            (
                2_000,
                Some(2_000),
                None,
                said(
                    "started_at_ms was 1000, before queued_at_ms 2000; set to queued_at_ms \
                     by migration 0018"
                )
            ),
            "{path}"
        );
        assert_eq!(
            run_row(conn, "fine"),
            (1_000, Some(1_100), Some(1_200), None),
            "{path}"
        );
        assert_eq!(
            job_row(conn, "fine", "never-started"),
            (
                Some(1_200),
                Some(1_200),
                said(
                    "started_at_ms was null on a complete job; set to finished_at_ms by migration 0018"
                )
            ),
            "{path}"
        );
        assert_eq!(
            job_row(conn, "fine", "finish-early"),
            (
                Some(1_150),
                Some(1_150),
                said(
                    "finished_at_ms was 1120, before started_at_ms 1150; set to started_at_ms \
                     by migration 0018"
                )
            ),
            "{path}"
        );
        assert_eq!(
            job_row(conn, "fine", "no-finish"),
            (
                None,
                Some(1_200),
                said(
                    "finished_at_ms was null on a skipped job; set to its run's finished_at_ms \
                     by migration 0018"
                )
            ),
            "{path}"
        );
        assert_eq!(
            job_row(conn, "fine", "aborted-early"),
            (
                Some(1_150),
                Some(1_150),
                said(
                    "finished_at_ms was 1110, before started_at_ms 1150; set to started_at_ms \
                     by migration 0018"
                )
            ),
            "{path}"
        );
        assert_eq!(
            job_row(conn, "fine", "ok"),
            (Some(1_100), Some(1_200), None),
            "{path}"
        );
        assert_eq!(
            job_row(conn, "live", "no-finish"),
            (
                None,
                Some(2_000),
                said(
                    "finished_at_ms was null on a skipped job; set to its run's started_at_ms \
                     by migration 0018"
                )
            ),
            "{path}"
        );
        let broken: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(broken, 0, "{path}");
        refuses_backward_times(&mut store, &path);
    }
}

#[test]
fn quire_stores_without_backward_times_upgrade_unrepaired_and_refuse_them() {
    for version in 8..ENFORCED {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home"));
        std::fs::create_dir_all(home.dir()).unwrap();
        let mut conn = Connection::open(home.db_path()).unwrap();
        schema::migrate_to(&mut conn, version).unwrap();
        drop(conn);
        let mut store = Store::open(&home).unwrap_or_else(|e| panic!("v{version}: {e}"));
        let path = format!("quire v{version}, empty");
        marked_current(&store, &path);
        refuses_backward_times(&mut store, &path);
    }
}
