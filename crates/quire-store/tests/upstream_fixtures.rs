//! The upstream fixtures themselves: each store has the shape of its upstream version, holds
//! the rows its `Expected` claims, and its CHECK constraints refuse an illegal row.

#[path = "support/upstream.rs"]
mod upstream;

use rusqlite::Connection;
use std::collections::BTreeSet;
use upstream::{Expected, LATEST_UPSTREAM, build, build_home};

fn runs_columns(v: i64) -> Vec<&'static str> {
    let head = ["id", "repo", "ref_name", "sha", "pushed_at_ms"];
    let mut cols = head.to_vec();
    if v >= 10 {
        cols.extend([
            "created_at",
            "dispatched_at",
            "resolved_at",
            "outcome",
            "run_token",
        ]);
        if v == 10 {
            cols.push("git_dir");
        }
        cols.push("traceparent");
        return cols;
    }
    cols.extend([
        "state",
        "failure_kind",
        "queued_at_ms",
        "started_at_ms",
        "finished_at_ms",
    ]);
    if v >= 7 {
        cols.extend(["run_token", "git_dir", "traceparent"]);
        return cols;
    }
    cols.extend([
        "container_id",
        "image_tag",
        "build_started_at_ms",
        "build_finished_at_ms",
    ]);
    cols.extend([
        "container_started_at_ms",
        "container_stopped_at_ms",
        "workspace_path",
    ]);
    if v >= 3 {
        cols.push(if v < 5 { "auth_token" } else { "run_token" });
    }
    if v >= 4 {
        cols.extend(["git_dir", "sentry_trace_id"]);
    }
    if v >= 6 {
        cols.push("traceparent");
    }
    cols
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .unwrap();
    stmt.query_map([], |row| row.get(1))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn names(conn: &Connection, kind: &str) -> BTreeSet<String> {
    let sql = "SELECT name FROM sqlite_schema WHERE type = ?1 AND name NOT LIKE 'sqlite_%'";
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([kind], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn count(conn: &Connection, table: &str) -> usize {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
        row.get::<_, i64>(0)
    })
    .unwrap() as usize
}

fn open(v: i64) -> (tempfile::TempDir, Connection, Expected) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("quire.db");
    let expected = build(&db, &dir.path().join("repos"), v);
    assert!(
        !dir.path().join("quire.db-wal").exists(),
        "v{v}: closed cleanly"
    );
    let conn = Connection::open(&db).unwrap();
    (dir, conn, expected)
}

#[test]
fn every_version_has_its_upstream_shape_and_the_expected_rows() {
    for v in 1..=LATEST_UPSTREAM {
        let (_dir, conn, expected) = open(v);
        let user_version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(user_version, v);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal", "v{v}");
        assert_eq!(columns(&conn, "runs"), runs_columns(v), "v{v} runs");
        let job_cols = ["run_id", "job_id", "state", "exit_code"];
        let job_cols = [&job_cols[..], &["started_at_ms", "finished_at_ms"]].concat();
        assert_eq!(columns(&conn, "jobs"), job_cols, "v{v} jobs");
        let steps = match v {
            1 => None,
            2..=7 => Some("sh_events"),
            _ => Some("sh"),
        };
        let mut tables: BTreeSet<String> = ["runs", "jobs"].map(String::from).into();
        tables.extend(steps.map(String::from));
        assert_eq!(names(&conn, "table"), tables, "v{v} tables");
        let pending_index = if v >= 10 {
            "runs_pending"
        } else {
            "runs_state"
        };
        let indexes: BTreeSet<String> = ["runs_repo_pushed_at", pending_index]
            .map(String::from)
            .into();
        assert_eq!(names(&conn, "index"), indexes, "v{v} indexes");
        if let Some(steps) = steps {
            let step_cols = ["run_id", "job_id", "started_at_ms", "finished_at_ms"];
            let step_cols = [&step_cols[..], &["exit_code", "cmd"]].concat();
            assert_eq!(columns(&conn, steps), step_cols, "v{v} {steps}");
            assert_eq!(count(&conn, steps), expected.steps.len(), "v{v} steps");
        }
        assert_eq!(count(&conn, "runs"), expected.runs.len(), "v{v} runs");
        assert_eq!(count(&conn, "jobs"), expected.jobs.len(), "v{v} jobs");
        let mut stmt = conn.prepare("SELECT id FROM runs ORDER BY id").unwrap();
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<&String> = expected.runs.iter().map(|r| &r.id).collect();
        assert_eq!(ids.iter().collect::<Vec<_>>(), want, "v{v} run ids");
        let queued = if v >= 10 {
            "created_at"
        } else {
            "queued_at_ms"
        };
        for run in &expected.runs {
            let sql = format!(
                "SELECT repo, ref_name, sha, pushed_at_ms, {queued} FROM runs WHERE id = ?1"
            );
            let row: (String, String, String, i64, i64) = conn
                .query_row(&sql, [&run.id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .unwrap();
            let want = (run.repo.clone(), run.ref_name.clone(), run.sha.clone());
            assert_eq!((row.0, row.1, row.2), want, "v{v} {}", run.id);
            assert_eq!((row.3, row.4), (run.pushed_at_ms, run.queued_at_ms));
        }
        let fks: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(fks, 0, "v{v} foreign keys");
    }
}

#[test]
fn expected_rows_cover_what_the_conversion_must_handle() {
    for v in 1..=LATEST_UPSTREAM {
        let (_dir, _conn, e) = open(v);
        let was: BTreeSet<&str> = e.runs.iter().map(|r| r.was).collect();
        let all = ["active", "complete", "failed", "pending", "superseded"];
        assert_eq!(was, all.into(), "v{v}");
        // Converted, none is left live: upstream's unfinished runs never run here.
        let states: BTreeSet<&str> = e.runs.iter().map(|r| r.state).collect();
        assert_eq!(states, ["complete", "failed", "superseded"].into(), "v{v}");
        let kinds: BTreeSet<_> = e.runs.iter().filter_map(|r| r.failure_kind).collect();
        let kinds_all = ["orphaned", "pipeline-failure", "process-crashed"];
        assert_eq!(kinds, kinds_all.into(), "v{v}");
        let details: BTreeSet<_> = e.runs.iter().filter_map(|r| r.detail_contains).collect();
        let legacy = if v < 10 { 2 } else { 0 };
        assert_eq!(
            details.len(),
            legacy + 1,
            "v{v}: a NULL kind and quire-ci-exit, until 10; the unfinished runs' detail"
        );
        assert!(
            e.runs
                .iter()
                .all(|r| r.repo == "app.git" || r.repo == "work/api.git")
        );
        assert_eq!(
            e.runs.iter().any(|r| r.git_dir.is_some()),
            (4..11).contains(&v)
        );
        assert_eq!(e.runs.iter().any(|r| r.traceparent.is_some()), v >= 6);
        assert!(!e.jobs.is_empty() && (v < 2 || !e.steps.is_empty()), "v{v}");
        for run in &e.runs {
            match run.state {
                "complete" => assert!(run.started_at_ms.is_some() && run.finished_at_ms.is_some()),
                "failed" | "superseded" => assert!(run.finished_at_ms.is_some()),
                _ => assert!(run.finished_at_ms.is_none()),
            }
        }
        let job_states: BTreeSet<_> = e.jobs.iter().map(|j| j.state).collect();
        assert!(
            job_states.contains("aborted"),
            "v{v}: a racing run's active job"
        );
        assert_eq!(job_states.contains("skipped"), v < 9, "v{v}");
    }
}

#[test]
fn checks_refuse_illegal_rows() {
    for v in 1..=LATEST_UPSTREAM {
        let (_dir, conn, _) = open(v);
        let mut illegal = vec![match v {
            ..=8 => "UPDATE runs SET started_at_ms = queued_at_ms WHERE state = 'pending'",
            9 => "UPDATE runs SET state = 'pending' WHERE state = 'queued'",
            _ => "UPDATE runs SET resolved_at = created_at WHERE outcome IS NULL",
        }];
        if v < 7 {
            illegal.push("UPDATE runs SET container_id = 'c' WHERE state = 'pending'");
        }
        illegal.push(if v >= 9 {
            "UPDATE jobs SET state = 'complete'"
        } else {
            "UPDATE jobs SET finished_at_ms = NULL WHERE state = 'complete'"
        });
        for sql in illegal {
            assert!(conn.execute(sql, []).is_err(), "v{v}: {sql} was accepted");
        }
    }
}

#[test]
fn homes_hold_bare_repositories_hooks_and_step_logs() {
    for v in [1, 6, LATEST_UPSTREAM] {
        let dir = tempfile::tempdir().unwrap();
        let e = build_home(dir.path(), v);
        for repo in ["app.git", "work/api.git"] {
            let path = dir.path().join("repos").join(repo);
            assert!(path.join("HEAD").is_file() && path.join("objects").is_dir());
            let hook = std::fs::read_to_string(path.join("hooks/post-receive")).unwrap();
            assert!(hook.contains("upstream"));
        }
        for step in &e.steps {
            let run = e.runs.iter().find(|r| r.id == step.run_id).unwrap();
            let log = dir
                .path()
                .join("runs")
                .join(&run.repo)
                .join(&run.id)
                .join(format!("jobs/{}/sh-{}.log", step.job_id, step.seq));
            let text = std::fs::read_to_string(&log).unwrap();
            let want = format!(
                " stdout F {} {} step {}",
                step.run_id, step.job_id, step.seq
            );
            assert_eq!(
                text.lines().filter(|l| l.ends_with(&want)).count(),
                2,
                "{}",
                log.display()
            );
        }
        for run in &e.runs {
            let rd = dir.path().join("runs").join(&run.repo).join(&run.id);
            assert!(rd.join("events.jsonl").is_file() && rd.join("quire-ci.log").is_file());
        }
    }
}
