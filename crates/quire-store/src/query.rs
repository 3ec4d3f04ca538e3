//! Reading runs back: lists, id prefixes, and a run with its jobs and steps.

use crate::sql::RowExt;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::{Error, Result, Store};
use quire_model::{Artifact, Job, Run, RunState, Step, WorkerLease};

/// The columns [`run_from_row`] reads, in its order.
pub(crate) const RUN_COLUMNS: &str = "runs.id, repos.name, ref_name, sha, state, \
    failure_kind, failure_detail, pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms, \
    repos.git_dir, traceparent, worker_id, worker_pid, lease_expires_at_ms, previous_sha, \
    runs.repo_id, runs.containment, runs.cgroup, runs.sandbox, runs.subject, runs.author, \
    runs.event, runs.superseded_by";

/// How many columns [`RUN_COLUMNS`] names.
pub(crate) const RUN_COLUMN_COUNT: usize = 25;

/// The tables [`RUN_COLUMNS`] come from.
pub(crate) const RUN_TABLES: &str = "runs JOIN repos ON repos.id = runs.repo_id";

pub(crate) fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    let worker_id: Option<String> = row.get(13)?;
    let worker = match worker_id {
        Some(id) => Some(WorkerLease {
            id,
            pid: row.get(14)?,
            lease_expires_at_ms: row.get(15)?,
        }),
        None => None,
    };
    Ok(Run {
        id: row.get(0)?,
        repo_id: row.get(17)?,
        repo: row.get(1)?,
        ref_name: row.get(2)?,
        sha: row.get(3)?,
        state: row.text(4)?,
        failure_kind: row.text_opt(5)?,
        failure_detail: row.get(6)?,
        pushed_at_ms: row.get(7)?,
        queued_at_ms: row.get(8)?,
        started_at_ms: row.get(9)?,
        finished_at_ms: row.get(10)?,
        git_dir: row.get(11)?,
        traceparent: row.get(12)?,
        worker,
        previous_sha: row.get(16)?,
        containment: row.text_opt(18)?,
        cgroup: row.get(19)?,
        sandbox: row.get(20)?,
        subject: row.get(21)?,
        author: row.get(22)?,
        event: row.text_opt(23)?,
        superseded_by: row.get(24)?,
    })
}

/// The run with exactly this id, if any.
pub(crate) fn run_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<Run>> {
    conn.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM {RUN_TABLES} WHERE runs.id = ?1"),
        [id],
        run_from_row,
    )
    .optional()
}

/// Which runs `list` shows.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// A repository's id ([`Store::resolve_repo`]).
    pub repo_id: Option<i64>,
    /// Any of these full ref names; all refs when empty.
    pub ref_names: Vec<String>,
    /// Any of these states; all states when empty.
    pub states: Vec<RunState>,
    /// Only runs whose commit id starts with this (lowercase hex).
    pub sha_prefix: Option<String>,
    /// Only runs queued at or after this time.
    pub since_ms: Option<i64>,
    /// Only runs older than this one in list order: the next page after a
    /// page that ended with it (keyset paging: the `runs_newest` index is
    /// entered at the cursor, so a page deep in a million runs costs what
    /// the first does).
    pub before: Option<ListCursor>,
    pub limit: usize,
}

/// Where a page of [`Store::list_runs`] ended: a run's queue time and id,
/// the key runs are listed by (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub queued_at_ms: i64,
    pub id: String,
}

impl ListCursor {
    /// The cursor just past `run`: the page after it starts with the next
    /// older run.
    pub fn after(run: &Run) -> ListCursor {
        ListCursor {
            queued_at_ms: run.queued_at_ms,
            id: run.id.clone(),
        }
    }
}

impl Default for ListFilter {
    fn default() -> ListFilter {
        ListFilter {
            repo_id: None,
            ref_names: Vec::new(),
            states: Vec::new(),
            sha_prefix: None,
            since_ms: None,
            before: None,
            limit: 20,
        }
    }
}

/// A run with its jobs in plan order, each with its steps in order.
#[derive(Debug, Clone)]
pub struct RunDetail {
    pub run: Run,
    pub jobs: Vec<JobDetail>,
    /// The files its jobs kept, by job then path.
    pub artifacts: Vec<Artifact>,
    /// The `[[notify]]` commands run when it ended, in config order.
    pub notifications: Vec<quire_model::Notification>,
}

#[derive(Debug, Clone)]
pub struct JobDetail {
    pub job: Job,
    pub steps: Vec<Step>,
}

impl Store {
    /// Runs matching `filter`, newest first.
    pub fn list_runs(&self, filter: &ListFilter) -> Result<Vec<Run>> {
        let mut clauses = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(repo_id) = filter.repo_id {
            values.push(Value::Integer(repo_id));
            clauses.push(format!("runs.repo_id = ?{}", values.len()));
        }
        if !filter.ref_names.is_empty() {
            let mut alternatives = Vec::new();
            for candidate in &filter.ref_names {
                values.push(Value::Text(candidate.clone()));
                alternatives.push(format!("?{}", values.len()));
            }
            clauses.push(format!("ref_name IN ({})", alternatives.join(", ")));
        }
        if !filter.states.is_empty() {
            let mut alternatives = Vec::new();
            for state in &filter.states {
                values.push(Value::Text(state.as_str().to_string()));
                alternatives.push(format!("?{}", values.len()));
            }
            clauses.push(format!("state IN ({})", alternatives.join(", ")));
        }
        if let Some(prefix) = &filter.sha_prefix {
            // Hex digits sort before '~', so this is "starts with".
            values.push(Value::Text(prefix.to_ascii_lowercase()));
            let at = values.len();
            values.push(Value::Text(format!("{}~", prefix.to_ascii_lowercase())));
            clauses.push(format!("sha >= ?{at} AND sha < ?{}", values.len()));
        }
        if let Some(since) = filter.since_ms {
            values.push(Value::Integer(since));
            clauses.push(format!("queued_at_ms >= ?{}", values.len()));
        }
        if let Some(cursor) = &filter.before {
            // (queued_at_ms, id) < cursor, written so that the index's
            // leading column bounds the range.
            values.push(Value::Integer(cursor.queued_at_ms));
            let at = values.len();
            values.push(Value::Text(cursor.id.clone()));
            clauses.push(format!(
                "queued_at_ms <= ?{at} AND (queued_at_ms < ?{at} OR runs.id < ?{})",
                values.len()
            ));
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        values.push(Value::Integer(
            i64::try_from(filter.limit).unwrap_or(i64::MAX),
        ));
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM {RUN_TABLES} {filter_sql}
             ORDER BY queued_at_ms DESC, runs.id DESC LIMIT ?{}",
            values.len()
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let runs = stmt
            .query_map(params_from_iter(values), run_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(runs)
    }

    /// The run whose id is `given` or starts with it.
    pub fn resolve_run(&self, given: &str) -> Result<Run> {
        let given = given.trim().to_ascii_lowercase();
        let id_like =
            !given.is_empty() && given.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !id_like {
            return Err(Error::UnknownRun(given));
        }
        if let Some(run) = run_by_id(&self.conn, &given)? {
            return Ok(run);
        }
        // Ids are lowercase hex and '-', all of which sort before '~'.
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM {RUN_TABLES} WHERE runs.id >= ?1 AND runs.id < ?2
             ORDER BY runs.id LIMIT 11"
        ))?;
        let mut found = stmt
            .query_map(params![given, format!("{given}~")], run_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        match found.len() {
            0 => Err(Error::UnknownRun(given)),
            1 => Ok(found.remove(0)),
            _ => Err(Error::AmbiguousRun {
                prefix: given,
                candidates: found.into_iter().take(10).map(|r| r.id).collect(),
            }),
        }
    }

    /// A run with its jobs and steps, read in one snapshot.
    pub fn run_detail(&self, run_id: &str) -> Result<RunDetail> {
        let tx = self.conn.unchecked_transaction()?;
        let run = run_by_id(&tx, run_id)?.ok_or_else(|| Error::UnknownRun(run_id.to_string()))?;
        let mut jobs_stmt = tx.prepare(
            "SELECT job_id, position, state, exit_code, skip_reason, started_at_ms,
                    finished_at_ms, allow_failure
             FROM jobs WHERE run_id = ?1 ORDER BY position",
        )?;
        let jobs = jobs_stmt
            .query_map([run_id], |row| {
                Ok(Job {
                    id: row.get(0)?,
                    position: row.get(1)?,
                    state: row.text(2)?,
                    exit_code: row.get(3)?,
                    skip_reason: row.get(4)?,
                    started_at_ms: row.get(5)?,
                    finished_at_ms: row.get(6)?,
                    allow_failure: row.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut steps_stmt = tx.prepare(
            "SELECT seq, cmd, exit_code, started_at_ms, finished_at_ms
             FROM sh_events WHERE run_id = ?1 AND job_id = ?2 ORDER BY seq",
        )?;
        let mut detail = Vec::with_capacity(jobs.len());
        for job in jobs {
            let steps = steps_stmt
                .query_map([run_id, &job.id], |row| {
                    Ok(Step {
                        seq: row.get(0)?,
                        cmd: row.get(1)?,
                        exit_code: row.get(2)?,
                        started_at_ms: row.get(3)?,
                        finished_at_ms: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            detail.push(JobDetail { job, steps });
        }
        let artifacts = artifacts_of(&tx, run_id)?;
        let notifications = crate::announce::notifications_of(&tx, run_id)?;
        Ok(RunDetail {
            run,
            jobs: detail,
            artifacts,
            notifications,
        })
    }

    /// What a pending run waits for: how many pending runs are ahead of it
    /// in the queue, and the runs workers are executing now (their ids).
    pub fn queue_before(&self, run_id: &str) -> Result<(i64, Vec<String>)> {
        let ahead: i64 = self.conn.query_row(
            "SELECT count(*) FROM runs AS p, runs AS me
             WHERE me.id = ?1 AND p.state = 'pending'
               AND (p.queued_at_ms, p.id) < (me.queued_at_ms, me.id)",
            [run_id],
            |r| r.get(0),
        )?;
        let active = self
            .conn
            .prepare("SELECT id FROM runs WHERE state = 'active' ORDER BY queued_at_ms, id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok((ahead, active))
    }

    /// The files a run's jobs kept, by job then path.
    pub fn artifacts(&self, run_id: &str) -> Result<Vec<Artifact>> {
        Ok(artifacts_of(&self.conn, run_id)?)
    }
}

fn artifacts_of(conn: &Connection, run_id: &str) -> rusqlite::Result<Vec<Artifact>> {
    conn.prepare(
        "SELECT job_id, path, size, sha256 FROM artifacts WHERE run_id = ?1
         ORDER BY job_id, path",
    )?
    .query_map([run_id], |row| {
        Ok(Artifact {
            job: row.get(0)?,
            path: row.get(1)?,
            size: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
            sha256: row.get(3)?,
        })
    })?
    .collect()
}

impl Store {
    /// How many runs are pending (waiting for a worker).
    pub fn pending_count(&self) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM runs WHERE state = 'pending'",
            [],
            |row| row.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// How many leading characters of `id` tell it apart from every other
    /// run in the store (at least `min`).
    pub fn unique_prefix_len(&self, id: &str, min: usize) -> Result<usize> {
        let neighbours: Vec<String> = self
            .conn
            .prepare(
                "SELECT id FROM (SELECT id FROM runs WHERE id < ?1 ORDER BY id DESC LIMIT 1)
                 UNION ALL
                 SELECT id FROM (SELECT id FROM runs WHERE id > ?1 ORDER BY id LIMIT 1)",
            )?
            .query_map([id], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let shared = neighbours
            .iter()
            .map(|other| {
                id.bytes()
                    .zip(other.bytes())
                    .take_while(|(a, b)| a == b)
                    .count()
            })
            .max()
            .unwrap_or(0);
        Ok((shared + 1).max(min).min(id.len()))
    }
}
