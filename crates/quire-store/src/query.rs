//! Reading runs back: lists, what a person's RUN means (an id, a prefix or
//! a part of one), the short ids `list` shows, and a run with its jobs and
//! steps.

use crate::sql::{QueryCached, RowExt};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::{Error, Result, Store};
use quire_model::refs::RefGlob;
use quire_model::{Artifact, Job, Run, RunState, Step, WorkerLease};

/// How many of the newest runs a part of an id that is not a prefix is
/// looked for among (`resolve_run`), and whose short ids are suffixes
/// (`short_ids`): the scan of their ids stays a few milliseconds in a store
/// of any size, where a scan of every id would not.
pub const RECENT_RUNS: usize = 10_000;

/// The fewest characters of a short id.
pub const SHORT_ID_MIN: usize = 8;

/// The range of ids starting with `prefix`: ids are lowercase hex and `-`,
/// all of which sort before `~`.
fn prefix_range(prefix: &str) -> (String, String) {
    (prefix.to_string(), format!("{prefix}~"))
}

/// Where the line that is exactly `id` lies in `lines` (ids, one a line).
fn line_of(lines: &str, id: &str) -> Option<std::ops::Range<usize>> {
    if id.is_empty() {
        return None;
    }
    let bytes = lines.as_bytes();
    memchr::memmem::find_iter(bytes, id.as_bytes())
        .map(|at| at..at + id.len())
        .find(|line| {
            (line.start == 0 || bytes[line.start - 1] == b'\n')
                && (line.end == bytes.len() || bytes[line.end] == b'\n')
        })
}

/// The ids among `lines` (ids, one a line, newest first) that contain
/// `part`, in their order.
fn ids_containing(lines: &str, part: &str) -> Vec<String> {
    let bytes = lines.as_bytes();
    let mut found: Vec<String> = Vec::new();
    let mut past = 0;
    for at in memchr::memmem::find_iter(bytes, part.as_bytes()) {
        if at < past {
            // Another match in a line already taken.
            continue;
        }
        let start = memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |n| n + 1);
        let end = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |n| at + n);
        found.push(lines[start..end].to_string());
        past = end;
    }
    found
}

/// The columns [`run_from_row`] reads, in its order.
pub(crate) const RUN_COLUMNS: &str = "runs.id, repos.name, ref_name, sha, state, \
    failure_kind, failure_detail, pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms, \
    repos.git_dir, traceparent, worker_id, worker_pid, lease_expires_at_ms, previous_sha, \
    runs.repo_id, runs.containment, runs.cgroup, runs.sandbox, runs.subject, runs.author, \
    runs.event, runs.superseded_by, runs.upstream_unfinished";

/// How many columns [`RUN_COLUMNS`] names.
pub(crate) const RUN_COLUMN_COUNT: usize = 26;

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
        upstream_unfinished: row.get(25)?,
    })
}

/// The run with exactly this id, if any.
pub(crate) fn run_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<Run>> {
    conn.query_row_cached(
        &format!("SELECT {RUN_COLUMNS} FROM {RUN_TABLES} WHERE runs.id = ?1"),
        [id],
        run_from_row,
    )
    .optional()
}

/// Where a pending run stands ([`Store::queue_before`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePlace {
    /// Pending runs of its repository queued before it.
    pub ahead_in_repo: i64,
    /// Every active run, oldest first.
    pub active: Vec<String>,
    /// The active runs of its repository, oldest first.
    pub active_of_repo: Vec<String>,
}

/// The SQL function `quire_ref_glob(PATTERN, NAME)`: whether NAME matches
/// PATTERN by [`RefGlob`]'s rule (0 for a pattern that is not a glob).
const REF_GLOB_FN: &str = "quire_ref_glob";

/// Give `conn` the functions quire's queries call ([`REF_GLOB_FN`]).
pub(crate) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        REF_GLOB_FN,
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            // Compiled once per statement, not once per row.
            let glob = ctx.get_or_create_aux(0, |pattern| {
                Ok::<_, rusqlite::Error>(RefGlob::new(pattern.as_str()?).ok())
            })?;
            let name = ctx.get_raw(1);
            Ok(match (glob.as_ref(), name.as_str()) {
                (Some(glob), Ok(name)) => glob.matches(name),
                _ => false,
            })
        },
    )
}

/// Which runs `list` shows.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// A repository's id ([`Store::resolve_repo`]).
    pub repo_id: Option<i64>,
    /// Any of these full ref names, or of the refs matching any of
    /// `ref_globs`; all refs when both are empty.
    pub ref_names: Vec<String>,
    /// Globs over full ref names, by the one rule of
    /// [`quire_model::refs::RefGlob`] (`refs/heads/release/*`: `*` within a
    /// segment, `**` across); a pattern that is not a glob matches nothing.
    pub ref_globs: Vec<String>,
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
            ref_globs: Vec::new(),
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

impl JobDetail {
    /// The step that ended the job as it ended: its last step that did not
    /// exit 0 (for a failed or aborted job, the failing one), else its last.
    pub fn ending_step(&self) -> Option<&Step> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.exit_code != Some(0))
            .or(self.steps.last())
    }
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
        if !filter.ref_names.is_empty() || !filter.ref_globs.is_empty() {
            let mut alternatives = Vec::new();
            if !filter.ref_names.is_empty() {
                let mut names = Vec::new();
                for candidate in &filter.ref_names {
                    values.push(Value::Text(candidate.clone()));
                    names.push(format!("?{}", values.len()));
                }
                alternatives.push(format!("ref_name IN ({})", names.join(", ")));
            }
            for pattern in &filter.ref_globs {
                // The model's matcher decides, in SQL, so LIMIT and paging
                // count only matching runs; a GLOB on the pattern's literal
                // prefix first spares it most rows.
                let prefix = RefGlob::new(pattern)
                    .map(|g| g.literal_prefix().to_string())
                    .unwrap_or_default();
                values.push(Value::Text(format!("{prefix}*")));
                let at = values.len();
                values.push(Value::Text(pattern.clone()));
                alternatives.push(format!(
                    "(ref_name GLOB ?{at} AND {REF_GLOB_FN}(?{}, ref_name))",
                    values.len()
                ));
            }
            clauses.push(format!("({})", alternatives.join(" OR ")));
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

    /// The run a person means by `given` (any case, surrounding blanks
    /// ignored): the run with that id; else the run whose id starts with
    /// it; else, when no id starts with it, the one of the newest
    /// [`RECENT_RUNS`] runs whose id contains it. Several matches (at either
    /// step) are [`Error::AmbiguousRun`], none [`Error::UnknownRun`].
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
        let starting = self.ids_starting_with(&given, 11)?;
        let found = if starting.is_empty() {
            ids_containing(&self.recent_ids()?, &given)
        } else if starting.len() == 1 {
            starting
        } else {
            let (lo, hi) = prefix_range(&given);
            let count: i64 = self
                .conn
                .prepare_cached("SELECT count(*) FROM runs WHERE id >= ?1 AND id < ?2")?
                .query_row(params![lo, hi], |row| row.get(0))?;
            let more = usize::try_from(count).unwrap_or(0).saturating_sub(10);
            return Err(Error::AmbiguousRun {
                given,
                candidates: starting.into_iter().take(10).collect(),
                more,
            });
        };
        match found.len() {
            0 => Err(Error::UnknownRun(given)),
            1 => run_by_id(&self.conn, &found[0])?.ok_or(Error::UnknownRun(given)),
            n => Err(Error::AmbiguousRun {
                given,
                candidates: found.into_iter().take(10).collect(),
                more: n.saturating_sub(10),
            }),
        }
    }

    /// Ids starting with `prefix`, newest first (ids are time-ordered), at
    /// most `limit`.
    fn ids_starting_with(&self, prefix: &str, limit: i64) -> Result<Vec<String>> {
        let (lo, hi) = prefix_range(prefix);
        let ids = self
            .conn
            .prepare_cached(
                "SELECT id FROM runs WHERE id >= ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
            )?
            .query_map(params![lo, hi, limit], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(ids)
    }

    /// The ids of the newest [`RECENT_RUNS`] runs, newest first, a line
    /// each, read from the index into one string made once (no
    /// allocation per id; SQLite's `group_concat` grew and copied its
    /// string over and over, most of `list`'s time).
    fn recent_ids(&self) -> Result<String> {
        let mut lines = String::with_capacity(RECENT_RUNS * 37);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM runs ORDER BY queued_at_ms DESC, id DESC LIMIT ?1")?;
        let mut rows = stmt.query([RECENT_RUNS as i64])?;
        while let Some(row) = rows.next()? {
            if !lines.is_empty() {
                lines.push('\n');
            }
            // Ids are text; a row whose is not has none to show.
            if let Ok(id) = row.get_ref(0)?.as_str() {
                lines.push_str(id);
            }
        }
        Ok(lines)
    }

    /// What `list` shows of each of these ids, short and such that
    /// [`resolve_run`](Store::resolve_run) finds the run again by it: for
    /// a run among the newest [`RECENT_RUNS`], its shortest suffix of at
    /// least [`SHORT_ID_MIN`] characters that no other of them contains,
    /// that does not begin with `-` and that no other run's id starts with;
    /// for an older run, its shortest unique prefix (at least
    /// [`SHORT_ID_MIN`] characters).
    pub fn short_ids(&self, ids: &[&str]) -> Result<Vec<String>> {
        // A suffix holds no newline, so a match in `recent` never spans two
        // ids: one SIMD search of it finds every recent id containing one.
        let recent = self.recent_ids()?;
        let mut short = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(own) = line_of(&recent, id) else {
                let len = self.unique_prefix_len(id, SHORT_ID_MIN)?;
                short.push(id[..len].to_string());
                continue;
            };
            let mut len = SHORT_ID_MIN.min(id.len());
            while len < id.len() {
                let suffix = &id[id.len() - len..];
                let clashes = suffix.starts_with('-')
                    || memchr::memmem::find_iter(recent.as_bytes(), suffix.as_bytes())
                        .any(|at| !own.contains(&at))
                    || self
                        .ids_starting_with(suffix, 2)?
                        .iter()
                        .any(|other| other != id);
                if !clashes {
                    break;
                }
                len += 1;
            }
            short.push(id[id.len() - len..].to_string());
        }
        Ok(short)
    }

    /// A run with its jobs and steps, read in one snapshot.
    pub fn run_detail(&self, run_id: &str) -> Result<RunDetail> {
        let tx = self.conn.unchecked_transaction()?;
        let run = run_by_id(&tx, run_id)?.ok_or_else(|| Error::UnknownRun(run_id.to_string()))?;
        let mut jobs_stmt = tx.prepare_cached(
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
        let mut steps_stmt = tx.prepare_cached(
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

    /// What a pending run waits for: how many pending runs of its
    /// repository are ahead of it (runs are claimed oldest first within a
    /// repository, round-robin across them: docs/STATE.md, "Claim
    /// order"), and the runs workers are executing now (their ids), of
    /// every repository and of its own.
    pub fn queue_before(&self, run_id: &str) -> Result<QueuePlace> {
        let ahead: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM runs AS p, runs AS me
             WHERE me.id = ?1 AND p.state = 'pending' AND p.repo_id = me.repo_id
               AND (p.queued_at_ms, p.id) < (me.queued_at_ms, me.id)",
            )?
            .query_row([run_id], |r| r.get(0))?;
        let active: Vec<(String, bool)> = self
            .conn
            .prepare_cached(
                "SELECT id, repo_id = (SELECT repo_id FROM runs WHERE id = ?1)
                 FROM runs WHERE state = 'active' ORDER BY queued_at_ms, id",
            )?
            .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(QueuePlace {
            ahead_in_repo: ahead,
            active_of_repo: active
                .iter()
                .filter(|(_, own)| *own)
                .map(|(id, _)| id.clone())
                .collect(),
            active: active.into_iter().map(|(id, _)| id).collect(),
        })
    }

    /// The files a run's jobs kept, by job then path.
    pub fn artifacts(&self, run_id: &str) -> Result<Vec<Artifact>> {
        Ok(artifacts_of(&self.conn, run_id)?)
    }
}

fn artifacts_of(conn: &Connection, run_id: &str) -> rusqlite::Result<Vec<Artifact>> {
    conn.prepare_cached(
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
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM runs WHERE state = 'pending'")?
            .query_row([], |row| row.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// How many leading characters of `id` tell it apart from every other
    /// run in the store (at least `min`).
    pub fn unique_prefix_len(&self, id: &str, min: usize) -> Result<usize> {
        let neighbours: Vec<String> = self
            .conn
            .prepare_cached(
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
