//! The schema itself rejects every malformed shape of a run, job or step,
//! and a second live run of a (repo, ref).

use std::path::Path;

use quire_store::repos::Registration;
use quire_store::schema;
use quire_store::{FailureKind, Home, Store};
use rusqlite::Connection;

/// A store that knows two repositories of one folder name: ids 1 and 2.
fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&Home::at(dir.path())).unwrap();
    for team in ["team-a", "team-b"] {
        let path = format!("/srv/git/{team}/app.git");
        store
            .register_repo(Path::new(&path), None, Registration::Seen)
            .unwrap();
    }
    (dir, store)
}

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn insert_run(
    conn: &Connection,
    id: &str,
    ref_name: &str,
    columns: &str,
    values: &str,
) -> rusqlite::Result<usize> {
    insert_run_of(conn, 1, id, ref_name, columns, values)
}

fn insert_run_of(
    conn: &Connection,
    repo_id: i64,
    id: &str,
    ref_name: &str,
    columns: &str,
    values: &str,
) -> rusqlite::Result<usize> {
    conn.execute(
        &format!(
            "INSERT INTO runs (id, repo_id, ref_name, sha, pushed_at_ms, queued_at_ms, {columns})
             VALUES ('{id}', {repo_id}, '{ref_name}', '{SHA}', 1, 2, {values})"
        ),
        [],
    )
}

fn assert_check_fails(result: rusqlite::Result<usize>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation),
        "{what}: {err}"
    );
}

#[test]
fn malformed_run_shapes_are_rejected() {
    let (_dir, store) = store();
    let conn = store.connection();
    let bad = [
        (
            "state, started_at_ms",
            "'pending', 3",
            "pending with started_at_ms",
        ),
        (
            "state, finished_at_ms",
            "'pending', 3",
            "pending with finished_at_ms",
        ),
        (
            "state, worker_id, worker_pid, lease_expires_at_ms",
            "'pending', 'w', 1, 9",
            "pending with a worker",
        ),
        ("state", "'active'", "active without started_at_ms"),
        (
            "state, started_at_ms, finished_at_ms",
            "'active', 3, 4",
            "active with finished_at_ms",
        ),
        (
            "state, started_at_ms",
            "'complete', 3",
            "complete without finished_at_ms",
        ),
        (
            "state, finished_at_ms",
            "'complete', 4",
            "complete without started_at_ms",
        ),
        (
            "state, failure_kind",
            "'failed', 'cancelled'",
            "failed without finished_at_ms",
        ),
        (
            "state, finished_at_ms",
            "'failed', 4",
            "failed without failure_kind",
        ),
        (
            "state, started_at_ms, finished_at_ms, failure_kind",
            "'complete', 3, 4, 'orphaned'",
            "complete with a failure_kind",
        ),
        (
            "state, finished_at_ms, failure_kind",
            "'failed', 4, 'exploded'",
            "an unknown failure_kind",
        ),
        ("state", "'superseded'", "superseded without finished_at_ms"),
        (
            "state, finished_at_ms, failure_detail",
            "'superseded', 4, 'why'",
            "failure_detail on a superseded run",
        ),
        ("state", "'running'", "an unknown state"),
        (
            "state, started_at_ms, worker_id",
            "'active', 3, 'w'",
            "a worker without pid and lease",
        ),
    ];
    for (n, (columns, values, what)) in bad.iter().enumerate() {
        assert_check_fails(
            insert_run(
                conn,
                &format!("r{n}"),
                &format!("refs/heads/b{n}"),
                columns,
                values,
            ),
            what,
        );
    }
    // The same table takes each well-formed shape.
    let good = [
        ("state", "'pending'"),
        (
            "state, started_at_ms, worker_id, worker_pid, lease_expires_at_ms",
            "'active', 3, 'w', 1, 9",
        ),
        ("state, started_at_ms, finished_at_ms", "'complete', 3, 4"),
        (
            "state, finished_at_ms, failure_kind, failure_detail",
            "'failed', 4, 'orphaned', 'gone'",
        ),
        ("state, finished_at_ms", "'superseded', 4"),
    ];
    for (n, (columns, values)) in good.iter().enumerate() {
        insert_run(
            conn,
            &format!("g{n}"),
            &format!("refs/heads/g{n}"),
            columns,
            values,
        )
        .unwrap_or_else(|e| panic!("{columns}: {e}"));
    }
}

#[test]
fn a_second_live_run_of_a_ref_is_rejected_but_terminal_ones_are_not() {
    let (_dir, store) = store();
    let conn = store.connection();
    insert_run(conn, "a", "refs/heads/main", "state", "'pending'").unwrap();
    assert_check_fails(
        insert_run(conn, "b", "refs/heads/main", "state", "'pending'"),
        "two pending runs of one ref",
    );
    assert_check_fails(
        insert_run(
            conn,
            "c",
            "refs/heads/main",
            "state, started_at_ms, worker_id, worker_pid, lease_expires_at_ms",
            "'active', 3, 'w', 1, 9",
        ),
        "a pending and an active run of one ref",
    );
    insert_run(
        conn,
        "d",
        "refs/heads/main",
        "state, finished_at_ms",
        "'superseded', 4",
    )
    .unwrap();
    insert_run(
        conn,
        "e",
        "refs/heads/main",
        "state, started_at_ms, finished_at_ms",
        "'complete', 3, 4",
    )
    .unwrap();
    insert_run(conn, "f", "refs/heads/other", "state", "'pending'").unwrap();
    // The same ref of another repository with the same folder name is
    // another (repository, ref).
    insert_run_of(conn, 2, "g", "refs/heads/main", "state", "'pending'").unwrap();
    assert_check_fails(
        insert_run_of(conn, 3, "h", "refs/heads/main", "state", "'pending'"),
        "a run of a repository that does not exist",
    );
}

#[test]
fn repositories_are_one_per_path_and_one_per_name() {
    let (_dir, store) = store();
    let conn = store.connection();
    let repo = |values: &str| {
        conn.execute(
            &format!(
                "INSERT INTO repos (git_dir, name, hook_state, first_seen_at_ms, installed_at_ms)
                 VALUES ({values})"
            ),
            [],
        )
    };
    assert_check_fails(
        repo("'/srv/git/team-a/app.git', 'x.git', 'seen', 1, NULL"),
        "a second row for one path",
    );
    assert_check_fails(
        repo("'/srv/git/x.git', 'team-a/app.git', 'seen', 1, NULL"),
        "a second repository of one name",
    );
    assert_check_fails(
        repo("NULL, 'x.git', 'seen', 1, NULL"),
        "a name-only repository that claims to have been seen",
    );
    assert_check_fails(
        repo("'/srv/git/x.git', 'x.git', 'installed', 1, NULL"),
        "installed without a time",
    );
    assert_check_fails(
        repo("'/srv/git/x.git', 'x.git', 'pushed', 1, NULL"),
        "an unknown hook state",
    );
    repo("'/srv/git/x.git', 'x.git', 'installed', 1, 1").unwrap();
    repo("NULL, 'old.git', 'unknown', 1, NULL").unwrap();
}

#[test]
fn malformed_job_and_step_shapes_are_rejected() {
    let (_dir, store) = store();
    let conn = store.connection();
    insert_run(
        conn,
        "r",
        "refs/heads/main",
        "state, started_at_ms, worker_id, worker_pid, lease_expires_at_ms",
        "'active', 3, 'w', 1, 9",
    )
    .unwrap();
    let job = |values: &str| {
        conn.execute(
            &format!("INSERT INTO jobs (run_id, job_id, position, state, started_at_ms, finished_at_ms, skip_reason) VALUES ('r', {values})"),
            [],
        )
    };
    let bad = [
        (
            "'a', 0, 'pending', 5, NULL, NULL",
            "pending job with started_at_ms",
        ),
        (
            "'a', 0, 'active', NULL, NULL, NULL",
            "active job without started_at_ms",
        ),
        (
            "'a', 0, 'complete', 5, NULL, NULL",
            "complete job without finished_at_ms",
        ),
        (
            "'a', 0, 'aborted', 5, NULL, NULL",
            "aborted job without finished_at_ms",
        ),
        ("'a', 0, 'skipped', 5, 6, NULL", "skipped job that started"),
        (
            "'a', 0, 'failed', 5, 6, 'why'",
            "skip_reason on a failed job",
        ),
        ("'a', 0, 'done', NULL, NULL, NULL", "an unknown job state"),
        (
            "'a', -1, 'pending', NULL, NULL, NULL",
            "a negative position",
        ),
        ("'a', 0, 'pending', NULL, NULL, NULL", "ok"),
    ];
    for (values, what) in &bad[..bad.len() - 1] {
        assert_check_fails(job(values), what);
    }
    job(bad[bad.len() - 1].0).unwrap();
    assert_check_fails(
        job("'b', 0, 'pending', NULL, NULL, NULL"),
        "two jobs at one position",
    );
    assert_check_fails(
        job("'a', 1, 'pending', NULL, NULL, NULL"),
        "a job id twice in a run",
    );
    assert_check_fails(
        conn.execute(
            "INSERT INTO jobs (run_id, job_id, position, state) VALUES ('nope', 'a', 0, 'pending')",
            [],
        ),
        "a job of no run",
    );

    let step = |values: &str| {
        conn.execute(
            &format!("INSERT INTO sh_events (run_id, job_id, seq, cmd, exit_code, started_at_ms, finished_at_ms) VALUES ('r', 'a', {values})"),
            [],
        )
    };
    assert_check_fails(
        step("1, 'make', 0, 5, NULL"),
        "an exit code without a finish",
    );
    assert_check_fails(
        step("1, 'make', NULL, 5, 6"),
        "a finish without an exit code",
    );
    assert_check_fails(step("0, 'make', NULL, 5, NULL"), "seq 0");
    step("1, 'make', NULL, 5, NULL").unwrap();
    step("2, 'make', NULL, 5, NULL").unwrap();
    assert_check_fails(step("2, 'make again', NULL, 5, NULL"), "a seq twice");
}

#[test]
fn every_failure_kind_the_code_knows_is_one_the_schema_takes() {
    let (_dir, store) = store();
    let conn = store.connection();
    for (n, kind) in FailureKind::ALL.iter().enumerate() {
        insert_run(
            conn,
            &format!("k{n}"),
            &format!("refs/heads/k{n}"),
            "state, finished_at_ms, failure_kind",
            &format!("'failed', 4, '{kind}'"),
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

/// 0022 rebuilds `runs` to take `node-lost`: every run of a store of
/// schema 21 stays, with its jobs and steps (which point at it), and the
/// CHECKs of the table it replaces still hold.
#[test]
fn a_store_of_schema_21_takes_node_lost_keeping_every_run_and_job() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    home.ensure().unwrap();
    {
        let mut conn = Connection::open(home.db_path()).unwrap();
        schema::migrate_to(&mut conn, 21).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO repos (id, git_dir, name, hook_state, first_seen_at_ms)
                 VALUES (1, '/srv/git/app.git', 'app.git', 'seen', 0);
             INSERT INTO runs (id, repo_id, ref_name, sha, state, failure_kind, failure_detail,
                               pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms)
                 VALUES ('r1', 1, 'refs/heads/main', '{SHA}', 'failed', 'pipeline-failure',
                         'job test failed: exit 3 at step 1 (make)', 1, 2, 3, 4);
             INSERT INTO runs (id, repo_id, ref_name, sha, state, pushed_at_ms, queued_at_ms)
                 VALUES ('r2', 1, 'refs/heads/next', '{SHA}', 'pending', 5, 6);
             INSERT INTO jobs (run_id, job_id, position, state, exit_code, started_at_ms,
                               finished_at_ms)
                 VALUES ('r1', 'test', 0, 'failed', 3, 3, 4);
             INSERT INTO sh_events (run_id, job_id, seq, cmd, started_at_ms, finished_at_ms,
                                    exit_code)
                 VALUES ('r1', 'test', 1, 'make', 3, 4, 3);"
        ))
        .unwrap();
    }
    let store = Store::open(&home).unwrap();
    let conn = store.connection();
    assert_eq!(schema::version(conn).unwrap(), schema::LATEST);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM runs"), 2);
    assert_eq!(
        count(
            "SELECT count(*) FROM runs WHERE id = 'r1' AND failure_detail LIKE 'job test%'
             AND finished_at_ms = 4"
        ),
        1
    );
    assert_eq!(count("SELECT count(*) FROM jobs WHERE run_id = 'r1'"), 1);
    assert_eq!(
        count("SELECT count(*) FROM sh_events WHERE run_id = 'r1'"),
        1
    );
    let dangling = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |_| Ok(()))
        .unwrap()
        .count();
    assert_eq!(dangling, 0, "no foreign key points nowhere");
    insert_run(
        conn,
        "lost",
        "refs/heads/lost",
        "state, finished_at_ms, failure_kind",
        "'failed', 4, 'node-lost'",
    )
    .unwrap();
    assert_check_fails(
        insert_run(
            conn,
            "bad",
            "refs/heads/bad",
            "state, finished_at_ms, failure_kind",
            "'failed', 4, 'exploded'",
        ),
        "an unknown failure_kind after 0022",
    );
    assert_check_fails(
        insert_run(conn, "r3", "refs/heads/next", "state", "'pending'"),
        "a second live run of a ref after 0022",
    );
    // The jobs and steps point at the new table: they go with their run.
    conn.execute("DELETE FROM runs WHERE id = 'r1'", [])
        .unwrap();
    assert_eq!(count("SELECT count(*) FROM jobs WHERE run_id = 'r1'"), 0);
    assert_eq!(
        count("SELECT count(*) FROM sh_events WHERE run_id = 'r1'"),
        0
    );
}

/// 0023: only a retry names the run it retried.
#[test]
fn only_a_retry_names_a_run_it_retried() {
    let (_dir, store) = store();
    let conn = store.connection();
    insert_run(
        conn,
        "r1",
        "refs/heads/a",
        "state, event, retry_of",
        "'pending', 'retry', 'r0'",
    )
    .unwrap();
    assert_check_fails(
        insert_run(
            conn,
            "r2",
            "refs/heads/b",
            "state, event, retry_of",
            "'pending', 'push', 'r0'",
        ),
        "retry_of on a pushed run",
    );
}
