//! Which store is this? quire's own (marked with [`APPLICATION_ID`]), one
//! that upstream wrote at one of its versions 1..=11, or neither; and the
//! conversion that brings upstream's later versions (8..=11, which left
//! quire's lineage) back to the shape of version 7, where quire's own
//! migrations take over.
//!
//! `PRAGMA user_version` alone cannot tell upstream's 8 and 9 from quire's:
//! the tables can (upstream renamed `sh_events` to `sh`, renamed states, and
//! replaced `state` by `outcome`), so a store is identified by its shape, and
//! its version must agree with that shape.

use std::collections::BTreeSet;

use rusqlite::{Connection, Transaction};

/// `quir` in ASCII, in the header of every store quire's schema wrote.
pub const APPLICATION_ID: i64 = 0x7175_6972;

/// The newest upstream version quire converts.
pub const LATEST_UPSTREAM: i64 = 11;

/// What a database file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lineage {
    /// No tables yet: a new store.
    Empty,
    /// quire's own store at this schema version.
    Quire(i64),
    /// A store upstream wrote, at this version (1..=7 are also quire's
    /// 0001..0007).
    Upstream(i64),
}

/// Identify the store by its header and tables, reading only. `Err` says,
/// for a person, what the file is instead.
pub fn identify(conn: &Connection) -> rusqlite::Result<Result<Lineage, String>> {
    let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if app_id == APPLICATION_ID {
        return Ok(Ok(Lineage::Quire(version)));
    }
    if app_id != 0 {
        return Ok(Err(format!(
            "its header names another program (application_id {app_id:#x})"
        )));
    }
    let tables = tables(conn)?;
    if tables.is_empty() && version == 0 {
        return Ok(Ok(Lineage::Empty));
    }
    let Some(shape) = shape(conn, &tables)? else {
        let listed = tables.iter().cloned().collect::<Vec<_>>().join(", ");
        let what = if version > LATEST_UPSTREAM && tables.contains("runs") {
            format!(
                "it looks like an upstream quire store at version {version}, newer than \
                 any this quire converts (1-{LATEST_UPSTREAM})"
            )
        } else if listed.is_empty() {
            format!("it has no tables but user_version {version}")
        } else {
            format!("its tables ({listed}) are neither quire's nor upstream quire's")
        };
        return Ok(Err(what));
    };
    let (n, name) = match shape {
        Lineage::Quire(n) => (n, "quire's"),
        Lineage::Upstream(n) => (n, "upstream quire's"),
        Lineage::Empty => (0, "an empty store's"),
    };
    if n != version && version > LATEST_UPSTREAM && matches!(shape, Lineage::Upstream(_)) {
        return Ok(Err(format!(
            "it looks like an upstream quire store at version {version}, newer than any this \
             quire converts (1-{LATEST_UPSTREAM})"
        )));
    }
    if n != version {
        return Ok(Err(format!(
            "its tables have the shape of {name} version {n}, but it says it is version {version}"
        )));
    }
    Ok(Ok(shape))
}

fn tables(conn: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?
    .query_map([], |r| r.get(0))?
    .collect()
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<BTreeSet<String>> {
    conn.prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([table], |r| r.get(0))?
        .collect()
}

/// The version whose tables these are, by the marks each version left.
fn shape(conn: &Connection, tables: &BTreeSet<String>) -> rusqlite::Result<Option<Lineage>> {
    if !tables.contains("runs") || !tables.contains("jobs") || tables.contains("repos") {
        return Ok(None);
    }
    let runs = columns(conn, "runs")?;
    let has = |c: &str| runs.contains(c);
    if tables.contains("sh_events") && columns(conn, "sh_events")?.contains("seq") {
        // quire's 0008 and 0009, written before stores were marked.
        return Ok(
            has("worker_id").then(|| Lineage::Quire(if has("previous_sha") { 9 } else { 8 }))
        );
    }
    let upstream = if tables.contains("sh") {
        if has("outcome") {
            if has("git_dir") { 10 } else { 11 }
        } else {
            let sql: String = conn.query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'",
                [],
                |r| r.get(0),
            )?;
            if sql.contains("'queued'") { 9 } else { 8 }
        }
    } else if tables.contains("sh_events") {
        match (has("traceparent"), has("container_id")) {
            (true, false) => 7,
            (true, true) => 6,
            _ if has("run_token") => 5,
            _ if has("auth_token") && has("git_dir") => 4,
            _ if has("auth_token") => 3,
            _ => 2,
        }
    } else if has("container_id") && has("workspace_path") {
        1
    } else {
        return Ok(None);
    };
    Ok(Some(Lineage::Upstream(upstream)))
}

/// Run state and failure kind in version 7's words, for 9 (renamed states)
/// and 10..11 (`outcome`). An outcome quire does not know stays as the
/// failure kind, for quire's 0008 to keep in the failure detail.
fn state_and_kind(version: i64) -> (&'static str, &'static str, [&'static str; 3]) {
    match version {
        9 => (
            "CASE state WHEN 'queued' THEN 'pending' WHEN 'succeeded' THEN 'complete'
                        WHEN 'canceled' THEN 'superseded' ELSE state END",
            "failure_kind",
            ["queued_at_ms", "started_at_ms", "finished_at_ms"],
        ),
        _ => (
            "CASE WHEN outcome IS NULL AND dispatched_at IS NULL THEN 'pending'
                  WHEN outcome IS NULL THEN 'active'
                  WHEN outcome = 'succeeded' THEN 'complete'
                  WHEN outcome = 'superseded' THEN 'superseded'
                  ELSE 'failed' END",
            "CASE outcome WHEN 'failed-pipeline' THEN 'pipeline-failure'
                          WHEN 'failed-orphaned' THEN 'orphaned'
                          WHEN 'failed-internal' THEN 'process-crashed'
                          WHEN 'succeeded' THEN NULL WHEN 'superseded' THEN NULL
                          ELSE outcome END",
            ["created_at", "dispatched_at", "resolved_at"],
        ),
    }
}

/// Bring an upstream store at `version` (8..=11) to version 7's shape and
/// stamp it 7, in the caller's transaction (foreign keys off; the caller
/// checks them before commit). Every row is kept.
///
/// Version 7's shape is written once, in the seed's migrations 0001..0007
/// (upstream's 1..7, [`crate::schema::SEED`]): upstream's tables are set
/// aside, those migrations make version 7's tables, empty, and the rows
/// are copied into them.
pub(crate) fn convert_to_seven(tx: &Transaction<'_>, version: i64) -> rusqlite::Result<()> {
    if version == 8 {
        tx.execute_batch("ALTER TABLE sh RENAME TO sh_events; PRAGMA user_version = 7;")?;
        return Ok(());
    }
    let runs = columns(tx, "runs")?;
    let (state, kind, [queued, started, finished]) = state_and_kind(version);
    let optional = |c: &str| {
        if runs.contains(c) {
            c.to_string()
        } else {
            "NULL".into()
        }
    };
    // The seed makes indexes of these names again.
    tx.execute_batch(
        "DROP INDEX IF EXISTS runs_repo_pushed_at;
         DROP INDEX IF EXISTS runs_state;
         ALTER TABLE runs RENAME TO upstream_runs;
         ALTER TABLE jobs RENAME TO upstream_jobs;
         ALTER TABLE sh RENAME TO upstream_sh;",
    )?;
    for migration in crate::schema::SEED {
        tx.execute_batch(migration)?;
    }
    tx.execute_batch(&format!(
        "INSERT INTO runs (id, repo, ref_name, sha, pushed_at_ms, state, failure_kind,
                           queued_at_ms, started_at_ms, finished_at_ms, run_token, git_dir,
                           traceparent)
         SELECT id, repo, ref_name, sha, pushed_at_ms, {state}, {kind},
                {queued}, {started}, {finished}, {}, {}, {}
         FROM upstream_runs;
         INSERT INTO jobs (run_id, job_id, state, exit_code, started_at_ms, finished_at_ms)
         SELECT run_id, job_id, CASE state WHEN 'succeeded' THEN 'complete' ELSE state END,
                exit_code, started_at_ms, finished_at_ms
         FROM upstream_jobs;
         INSERT INTO sh_events (run_id, job_id, started_at_ms, finished_at_ms, exit_code, cmd)
         SELECT run_id, job_id, started_at_ms, finished_at_ms, exit_code, cmd FROM upstream_sh;
         DROP TABLE upstream_sh;
         DROP TABLE upstream_jobs;
         DROP TABLE upstream_runs;
         PRAGMA user_version = 7;",
        optional("run_token"),
        optional("git_dir"),
        optional("traceparent"),
    ))
}

/// Give every run whose id is not of quire's shape
/// ([`quire_model::is_run_id`]) a new one, in every table that has a
/// `run_id` column too, in the caller's transaction (foreign keys off; the
/// caller checks them before commit). Every row is kept. Returns `(old,
/// new)` for each, the old id as text (a NULL or a number included).
pub(crate) fn rewrite_run_ids(tx: &Transaction<'_>) -> rusqlite::Result<Vec<(String, String)>> {
    use rusqlite::types::Value;
    let runs: Vec<(i64, Value)> = tx
        .prepare("SELECT rowid, id FROM runs ORDER BY rowid")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let bad: Vec<(i64, Value)> = runs
        .into_iter()
        .filter(|(_, id)| !matches!(id, Value::Text(id) if quire_model::is_run_id(id)))
        .collect();
    if bad.is_empty() {
        return Ok(Vec::new());
    }
    let children: Vec<String> = tables(tx)?
        .into_iter()
        .filter(|t| t != "runs")
        .map(|t| columns(tx, &t).map(|c| (t, c.contains("run_id"))))
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter_map(|(t, has)| has.then_some(t))
        .collect();
    let mut rewritten = Vec::with_capacity(bad.len());
    for (rowid, old) in bad {
        let new = uuid::Uuid::now_v7().to_string();
        tx.execute(
            "UPDATE runs SET id = ?1 WHERE rowid = ?2",
            rusqlite::params![new, rowid],
        )?;
        for table in &children {
            let quoted = table.replace('"', "\"\"");
            tx.execute(
                &format!("UPDATE \"{quoted}\" SET run_id = ?1 WHERE run_id IS ?2"),
                rusqlite::params![new, old],
            )?;
        }
        let old = match old {
            Value::Text(text) => text,
            Value::Null => "NULL".to_string(),
            Value::Integer(n) => n.to_string(),
            Value::Real(x) => x.to_string(),
            Value::Blob(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        rewritten.push((old, new));
    }
    Ok(rewritten)
}

/// What opening an upstream store converted: said once, by whoever opened
/// it (`Store::converted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The upstream version the store was at.
    pub version: i64,
    /// Every run it held (all kept).
    pub runs: i64,
    /// Runs upstream left pending, now failed (`orphaned`).
    pub pending: i64,
    /// Runs upstream left active, now failed (`orphaned`).
    pub active: i64,
    /// Older live runs of a (repository, ref) that had a newer one (upstream's
    /// racy supersede), now superseded by it.
    pub superseded: i64,
}

impl std::fmt::Display for Converted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "converted an upstream quire store (version {}): {} runs kept; ",
            self.version, self.runs
        )?;
        if self.pending + self.active == 0 {
            return write!(f, "none was pending or active there");
        }
        write!(
            f,
            "{} pending and {} active there are now failed (orphaned) and never run here",
            self.pending, self.active
        )?;
        if self.superseded > 0 {
            write!(
                f,
                ", {} more superseded by a newer run of their ref",
                self.superseded
            )?;
        }
        Ok(())
    }
}

/// Remember, in the conversion's transaction, every run the upstream store
/// held, its upstream `version` and the state it had there (in version 7's
/// words), in `upstream_import`, until [`finish_import`] has marked the
/// store's runs from it. Twice is once: an open interrupted before
/// `finish_import` keeps what the first one recorded.
pub(crate) fn record_import(tx: &Transaction<'_>, version: i64) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS upstream_import (
             run_id  TEXT PRIMARY KEY NOT NULL,
             version INTEGER NOT NULL,
             was     TEXT NOT NULL
         )",
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO upstream_import (run_id, version, was)
         SELECT id, ?1, state FROM runs",
        [version],
    )?;
    Ok(())
}

/// Upstream's runs that are still pending or active never run here: in the
/// conversion's transaction, at any upstream shape 1..=7, an older live run
/// of a (repository, ref) that has a newer live one becomes superseded (as
/// quire's 0008 would have made it), and every other becomes failed,
/// `orphaned`, finished when it started, or when it was queued if it never
/// started: no time that upstream did not have. This is not an edge of
/// quire's state machine (`lifecycle::RUN_EDGES`, where only reconcile
/// orphans a run, and only an active one): the runs enter quire already
/// failed. Their open jobs are closed by 0008 as quire closes an ended
/// run's jobs (active -> aborted, pending -> skipped). Versions 1..6 held a
/// `container_id`, which a finished run may not have (and which 0007
/// drops): it goes with the run's end.
pub(crate) fn fail_unfinished(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let container = if columns(tx, "runs")?.contains("container_id") {
        ", container_id = NULL"
    } else {
        ""
    };
    tx.execute_batch(&format!(
        "UPDATE runs AS r
         SET state = 'superseded',
             finished_at_ms = MAX(
                 COALESCE(r.started_at_ms, r.queued_at_ms),
                 (SELECT MIN(n.queued_at_ms) FROM runs AS n
                  WHERE n.repo = r.repo AND n.ref_name = r.ref_name
                    AND n.state IN ('pending', 'active')
                    AND (n.queued_at_ms, n.id) > (r.queued_at_ms, r.id))){container}
         WHERE r.state IN ('pending', 'active')
           AND EXISTS (SELECT 1 FROM runs AS n
                       WHERE n.repo = r.repo AND n.ref_name = r.ref_name
                         AND n.state IN ('pending', 'active')
                         AND (n.queued_at_ms, n.id) > (r.queued_at_ms, r.id));
         UPDATE runs
         SET state = 'failed', failure_kind = 'orphaned',
             finished_at_ms = COALESCE(started_at_ms, queued_at_ms){container}
         WHERE state IN ('pending', 'active');"
    ))
}

/// Once quire's migrations have brought a converted store up to date (any
/// open may do it: one interrupted before this finds `upstream_import`
/// still there): the runs upstream left unfinished get
/// `upstream_unfinished` (their upstream version), a failure detail saying
/// so, and count as announced (no note, no notifier for history); then
/// `upstream_import` goes. Answers what was converted, once: `None` when
/// there was nothing to finish.
pub(crate) fn finish_import(tx: &Transaction<'_>) -> rusqlite::Result<Option<Converted>> {
    if !tables(tx)?.contains("upstream_import") {
        return Ok(None);
    }
    let converted = tx.query_row(
        "SELECT COALESCE(MAX(i.version), 0), count(*),
                count(*) FILTER (WHERE i.was = 'pending' AND r.state = 'failed'),
                count(*) FILTER (WHERE i.was = 'active' AND r.state = 'failed'),
                count(*) FILTER (WHERE i.was IN ('pending', 'active')
                                   AND r.state = 'superseded')
         FROM upstream_import AS i LEFT JOIN runs AS r ON r.id = i.run_id",
        [],
        |r| {
            Ok(Converted {
                version: r.get(0)?,
                runs: r.get(1)?,
                pending: r.get(2)?,
                active: r.get(3)?,
                superseded: r.get(4)?,
            })
        },
    )?;
    tx.execute_batch(
        "UPDATE runs
         SET upstream_unfinished = (SELECT i.version FROM upstream_import AS i
                                    WHERE i.run_id = runs.id),
             failure_detail = (SELECT 'migrated from upstream quire (version ' || i.version
                                      || ') where it was ' || i.was
                                      || '; it never ran here'
                               FROM upstream_import AS i WHERE i.run_id = runs.id),
             announced_at_ms = COALESCE(announced_at_ms, finished_at_ms)
         WHERE state = 'failed' AND failure_kind = 'orphaned'
           AND id IN (SELECT run_id FROM upstream_import
                      WHERE was IN ('pending', 'active'));
         DROP TABLE upstream_import;",
    )?;
    Ok(Some(converted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_empty_and_another_programs_file_is_named() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(identify(&conn).unwrap(), Ok(Lineage::Empty));
        conn.execute_batch("CREATE TABLE notes (body TEXT); PRAGMA user_version = 3;")
            .unwrap();
        let what = identify(&conn).unwrap().unwrap_err();
        assert!(what.contains("notes"), "{what}");
        conn.execute_batch("PRAGMA application_id = 42;").unwrap();
        let what = identify(&conn).unwrap().unwrap_err();
        assert!(what.contains("0x2a"), "{what}");
    }

    #[test]
    fn ids_not_of_quires_shape_are_rewritten_with_their_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, ref_name TEXT);
             CREATE TABLE jobs (run_id TEXT, job_id TEXT);
             INSERT INTO runs VALUES ('0190abcd-0000-7000-8000-000000000001', 'good'),
                                     ('../../../x', 'bad'), (NULL, 'null');
             INSERT INTO jobs VALUES ('0190abcd-0000-7000-8000-000000000001', 'a'),
                                     ('../../../x', 'b'), ('../../../x', 'c');",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        let rewritten = rewrite_run_ids(&tx).unwrap();
        tx.commit().unwrap();
        assert_eq!(rewritten.len(), 2, "{rewritten:?}");
        let (old, new) = &rewritten[0];
        assert_eq!(old, "../../../x");
        assert!(quire_model::is_run_id(new), "{new}");
        let jobs: i64 = conn
            .query_row("SELECT count(*) FROM jobs WHERE run_id = ?1", [new], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(jobs, 2);
        let ids: Vec<String> = conn
            .prepare("SELECT id FROM runs ORDER BY ref_name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|id| quire_model::is_run_id(id)), "{ids:?}");
    }
}
