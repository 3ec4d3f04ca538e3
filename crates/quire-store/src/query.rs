//! Reading runs back: lists, what a person's RUN means (an id, a prefix or
//! a part of one), the short ids `list` shows, and a run with its jobs and
//! steps.

use crate::sql::{QueryCached, RowExt};
use std::collections::{HashMap, HashSet};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::{Error, Result, Store};
use quire_model::refs::RefGlob;
use quire_model::{Artifact, Job, Notification, Run, RunState, Step, WorkerLease};

/// How many of the newest runs a part of an id that is not a prefix is
/// looked for among (`resolve_run`), and whose short ids are suffixes
/// (`short_ids`): the scan of their ids stays a few milliseconds in a store
/// of any size, where a scan of every id would not (and `short_ids` does
/// without it, from indexes, in a store of quire's ids).
pub const RECENT_RUNS: usize = 10_000;

/// The fewest characters of a short id.
pub const SHORT_ID_MIN: usize = 8;

/// How many other runs' ids containing the last [`SHORT_ID_MIN`]
/// characters of the ids `list` shows are looked up one by one; with more
/// (a store of ids made to clash), the newest ids are read.
const MAX_CLASHES: usize = 256;

/// The ids of the newest runs, newest first, at most ?1.
pub const RECENT_IDS_SQL: &str = "SELECT id FROM runs ORDER BY queued_at_ms DESC, id DESC LIMIT ?1";

/// Whether the store holds a run whose id is not of quire's shape
/// ([`quire_model::is_run_id`]), from migration 0020's (empty) partial index
/// `runs_odd_id`, whose condition this repeats word for word.
pub const ODD_ID_SQL: &str = "SELECT EXISTS (SELECT 1 FROM runs WHERE id NOT GLOB
    '[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]')";

/// The runs whose id's last group holds 8 given hex digits somewhere
/// (`runs_id_middle`, `runs_id_tail`, migration 0020): five ranges, as
/// [`Store::ids_containing_tail`] gives them, and a limit.
pub const TAIL_SQL: &str = "
    SELECT id, queued_at_ms FROM runs WHERE substr(id, 27, 8) >= ?1 AND substr(id, 27, 8) < ?2
    UNION ALL
    SELECT id, queued_at_ms FROM runs WHERE substr(id, 27, 8) >= ?3 AND substr(id, 27, 8) < ?4
    UNION ALL
    SELECT id, queued_at_ms FROM runs WHERE substr(id, 27, 8) >= ?5 AND substr(id, 27, 8) < ?6
    UNION ALL
    SELECT id, queued_at_ms FROM runs WHERE substr(id, 29, 8) >= ?7 AND substr(id, 29, 8) < ?8
    UNION ALL
    SELECT id, queued_at_ms FROM runs WHERE substr(id, 29, 8) >= ?9 AND substr(id, 29, 8) < ?10
    LIMIT ?11";

/// A run's place in list order (newest first): its queue time and id.
type ListKey<'a> = (i64, &'a str);

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
    runs.event, runs.superseded_by, runs.upstream_unfinished, runs.retry_of";

/// How many columns [`RUN_COLUMNS`] names.
pub(crate) const RUN_COLUMN_COUNT: usize = 27;

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
        retry_of: row.get(26)?,
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
        let (sql, values) = list_statement(filter);
        let mut stmt = self.conn.prepare(&sql)?;
        let runs = stmt
            .query_map(params_from_iter(values), run_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(runs)
    }

    /// SQLite's query plan of the statement [`Store::list_runs`] runs for
    /// `filter`, a step a line: for tests that the indexes serve each kind
    /// of listing (no sort of all runs).
    #[doc(hidden)]
    pub fn list_plan(&self, filter: &ListFilter) -> Result<String> {
        let (sql, values) = list_statement(filter);
        let mut stmt = self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let steps = stmt
            .query_map(params_from_iter(values), |row| row.get::<_, String>(3))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(steps.join("\n"))
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
        let mut stmt = self.conn.prepare_cached(RECENT_IDS_SQL)?;
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
        // One snapshot for its dozens of statements, which also spares
        // each the locking and checks of a transaction of its own.
        let tx = self.conn.unchecked_transaction()?;
        let short = match self.short_ids_by_index(ids)? {
            Some(short) => short,
            None => self.short_ids_by_scan(ids)?,
        };
        tx.commit()?;
        Ok(short)
    }

    /// [`short_ids`](Store::short_ids) from the ids of the newest
    /// [`RECENT_RUNS`] runs, read in full: for a store holding an id not of
    /// quire's shape, which the indexes of [`short_ids_by_index`] do not
    /// cover.
    fn short_ids_by_scan(&self, ids: &[&str]) -> Result<Vec<String>> {
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
            short.push(self.shortest_suffix(id, |suffix| {
                memchr::memmem::find_iter(recent.as_bytes(), suffix.as_bytes())
                    .any(|at| !own.contains(&at))
            })?);
        }
        Ok(short)
    }

    /// [`short_ids`](Store::short_ids) without reading the newest
    /// [`RECENT_RUNS`] ids: every id that could clash with a suffix
    /// contains its last [`SHORT_ID_MIN`] characters, and the indexes of
    /// migration 0020 find the few runs whose id does. `None` when the
    /// store holds an id not of quire's shape (those indexes cover quire's
    /// shape only) or when too many ids share the characters to be worth
    /// looking up one by one.
    fn short_ids_by_index(&self, ids: &[&str]) -> Result<Option<Vec<String>>> {
        let odd: bool = self
            .conn
            .prepare_cached(ODD_ID_SQL)?
            .query_row([], |row| row.get(0))?;
        if odd {
            return Ok(None);
        }
        let (recent, known_recent) = self.which_are_recent(ids)?;
        // The oldest of the newest runs, once a run older than every
        // shown one needs it (`None` inside: the store holds fewer).
        let mut oldest_recent: Option<Option<(i64, String)>> = None;
        let mut found_ids = 0;
        let mut done: HashMap<&str, String> = HashMap::with_capacity(ids.len());
        for &id in ids {
            if done.contains_key(id) {
                continue;
            }
            if !recent.contains(id) {
                // Not among the newest (or not a run's id).
                let len = self.unique_prefix_len(id, SHORT_ID_MIN)?;
                done.insert(id, id[..len].to_string());
                continue;
            }
            let tail = &id[id.len() - SHORT_ID_MIN..];
            let Some(found) = self.ids_containing_tail(tail)? else {
                return Ok(None);
            };
            let mut others = String::new();
            for (other, queued_at_ms) in found {
                if other == id || memchr::memmem::find(other.as_bytes(), tail.as_bytes()).is_none()
                {
                    continue;
                }
                found_ids += 1;
                if found_ids > MAX_CLASHES {
                    return Ok(None);
                }
                let key = (queued_at_ms, other.as_str());
                let is_recent = if known_recent.is_some_and(|known| key >= known) {
                    true
                } else {
                    if oldest_recent.is_none() {
                        oldest_recent = Some(self.oldest_recent()?);
                    }
                    match oldest_recent.as_ref().and_then(Option::as_ref) {
                        Some((at, oldest)) => key >= (*at, oldest.as_str()),
                        None => true,
                    }
                };
                if is_recent {
                    if !others.is_empty() {
                        others.push('\n');
                    }
                    others.push_str(&other);
                }
            }
            let short = self.shortest_suffix(id, |suffix| {
                memchr::memmem::find(others.as_bytes(), suffix.as_bytes()).is_some()
            })?;
            done.insert(id, short);
        }
        Ok(Some(ids.iter().map(|id| done[id].clone()).collect()))
    }

    /// The oldest of the newest [`RECENT_RUNS`] runs (queue time, id); `None`
    /// when the store holds fewer.
    fn oldest_recent(&self) -> Result<Option<(i64, String)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT queued_at_ms, id FROM runs ORDER BY queued_at_ms DESC, id DESC
                 LIMIT 1 OFFSET ?1",
            )?
            .query_row([RECENT_RUNS as i64 - 1], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?)
    }

    /// The shortest suffix of `id` of at least [`SHORT_ID_MIN`] characters
    /// that no other recent id contains (`in_others`), that does not begin
    /// with `-` and that no run's id other than `id` starts with; all of
    /// `id` if none is.
    fn shortest_suffix(&self, id: &str, in_others: impl Fn(&str) -> bool) -> Result<String> {
        let mut len = SHORT_ID_MIN.min(id.len());
        while len < id.len() {
            let suffix = &id[id.len() - len..];
            let clashes = suffix.starts_with('-')
                || in_others(suffix)
                || self
                    .ids_starting_with(suffix, 2)?
                    .iter()
                    .any(|other| other != id);
            if !clashes {
                break;
            }
            len += 1;
        }
        Ok(id[id.len() - len..].to_string())
    }

    /// Which of `ids` are runs among the newest [`RECENT_RUNS`], counted
    /// from the newest down (in one count for a page of newest runs), and
    /// the oldest of those (queue time, id), if any.
    fn which_are_recent<'a>(
        &self,
        ids: &[&'a str],
    ) -> Result<(HashSet<&'a str>, Option<ListKey<'a>>)> {
        let mut keys: Vec<ListKey<'a>> = Vec::with_capacity(ids.len());
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT queued_at_ms FROM runs WHERE id = ?1")?;
            for &id in ids {
                if let Some(queued_at_ms) = stmt.query_row([id], |row| row.get(0)).optional()? {
                    keys.push((queued_at_ms, id));
                }
            }
        }
        // Newest first, as runs are listed.
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.dedup();
        let mut recent = HashSet::with_capacity(keys.len());
        let Some(&(queued_at_ms, id)) = keys.last() else {
            return Ok((recent, None));
        };
        if self.newer_than(queued_at_ms, id)? < RECENT_RUNS {
            recent.extend(keys.iter().map(|&(_, id)| id));
            return Ok((recent, Some((queued_at_ms, id))));
        }
        // Some are older: count each one's newer runs from the last's.
        let mut between = self.conn.prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM runs
             WHERE (queued_at_ms, id) > (?1, ?2) AND (queued_at_ms, id) < (?3, ?4) LIMIT ?5)",
        )?;
        let mut newer = 0;
        let mut previous: Option<ListKey<'a>> = None;
        for &(queued_at_ms, id) in &keys {
            let rank = match previous {
                None => self.newer_than(queued_at_ms, id)?,
                Some((above_at, above)) => {
                    let room = i64::try_from(RECENT_RUNS - newer).unwrap_or(i64::MAX);
                    let gap: i64 = between
                        .query_row(params![queued_at_ms, id, above_at, above, room], |row| {
                            row.get(0)
                        })?;
                    newer + usize::try_from(gap).unwrap_or(0)
                }
            };
            if rank >= RECENT_RUNS {
                break;
            }
            recent.insert(id);
            newer = rank + 1;
            previous = Some((queued_at_ms, id));
        }
        Ok((recent, previous))
    }

    /// How many runs come before the run (`queued_at_ms`, `id`) in list
    /// order (newest first), counted up to [`RECENT_RUNS`].
    fn newer_than(&self, queued_at_ms: i64, id: &str) -> Result<usize> {
        let count: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM runs
                 WHERE (queued_at_ms, id) > (?1, ?2) LIMIT ?3)",
            )?
            .query_row(params![queued_at_ms, id, RECENT_RUNS as i64], |row| {
                row.get(0)
            })?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// The runs (id, queue time) whose id may contain `tail`, 8 hex digits,
    /// where it can stand in an id of quire's shape other than its start
    /// (8 of the last group's 12, starting at one of its first 5 digits),
    /// with some that do not (and any run's twice); `None` when there are
    /// more than [`MAX_CLASHES`].
    fn ids_containing_tail(&self, tail: &str) -> Result<Option<Vec<(String, i64)>>> {
        if tail.len() != SHORT_ID_MIN || !tail.is_ascii() {
            return Ok(None);
        }
        // Where `tail` stands in the last group (`g`, 12 digits) of an id
        // holding it, and the range of one index's key (`runs_id_middle`:
        // g[2..10]; `runs_id_tail`: g[4..12]) that id's key lies in.
        let ranges = [
            // g[0..8]: the middle key begins with tail[2..8].
            &tail[2..],
            // g[1..9]: with tail[1..8].
            &tail[1..],
            // g[2..10]: it is the whole tail.
            tail,
            // g[3..11]: the tail key begins with tail[1..8].
            &tail[1..],
            // g[4..12]: it is the whole tail.
            tail,
        ];
        let values = ranges
            .iter()
            .flat_map(|part| {
                [
                    Value::Text(part.to_string()),
                    Value::Text(format!("{part}~")),
                ]
            })
            .chain([Value::Integer((MAX_CLASHES + 1) as i64)]);
        let found = self
            .conn
            .prepare_cached(TAIL_SQL)?
            .query_map(params_from_iter(values), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<rusqlite::Result<Vec<(String, i64)>>>()?;
        Ok((found.len() <= MAX_CLASHES).then_some(found))
    }

    /// A run with its jobs and steps, read in one snapshot.
    pub fn run_detail(&self, run_id: &str) -> Result<RunDetail> {
        let tx = self.conn.unchecked_transaction()?;
        let run = run_by_id(&tx, run_id)?.ok_or_else(|| Error::UnknownRun(run_id.to_string()))?;
        let mut jobs_stmt = tx.prepare_cached(
            "SELECT job_id, position, state, exit_code, skip_reason, started_at_ms,
                    finished_at_ms, allow_failure, waiting
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
                    waiting: row.get(8)?,
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
        let notifications = notifications_of(&tx, run_id)?;
        Ok(RunDetail {
            run,
            jobs: detail,
            artifacts,
            notifications,
        })
    }

    /// The runs of `ids` the store holds, each with its jobs in order (not
    /// their steps), in the order of `ids`: what a commit's note says of
    /// each of its runs, read in two statements however many there are.
    pub fn runs_with_jobs(&self, ids: &[&str]) -> Result<Vec<(Run, Vec<Job>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.conn.unchecked_transaction()?;
        let marks = vec!["?"; ids.len()].join(", ");
        let mut runs: HashMap<String, Run> = tx
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM {RUN_TABLES} WHERE runs.id IN ({marks})"
            ))?
            .query_map(params_from_iter(ids), run_from_row)?
            .map(|run| run.map(|run| (run.id.clone(), run)))
            .collect::<rusqlite::Result<_>>()?;
        let mut jobs: HashMap<String, Vec<Job>> = HashMap::new();
        let mut stmt = tx.prepare(&format!(
            "SELECT run_id, job_id, position, state, exit_code, skip_reason, started_at_ms,
                    finished_at_ms, allow_failure, waiting
             FROM jobs WHERE run_id IN ({marks}) ORDER BY run_id, position"
        ))?;
        let mut rows = stmt.query(params_from_iter(ids))?;
        while let Some(row) = rows.next()? {
            jobs.entry(row.get(0)?).or_default().push(Job {
                id: row.get(1)?,
                position: row.get(2)?,
                state: row.text(3)?,
                exit_code: row.get(4)?,
                skip_reason: row.get(5)?,
                started_at_ms: row.get(6)?,
                finished_at_ms: row.get(7)?,
                allow_failure: row.get(8)?,
                waiting: row.get(9)?,
            });
        }
        Ok(ids
            .iter()
            .filter_map(|id| {
                let run = runs.remove(*id)?;
                let jobs = jobs.remove(*id).unwrap_or_default();
                Some((run, jobs))
            })
            .collect())
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

    /// What changes whenever the runs a list shows change: the newest
    /// run's id, and each pending or active run with its state (a run
    /// queued, started, ended or superseded changes it). Cheap at any
    /// number of runs: it reads the newest run through its index and the
    /// live runs through their partial indexes, never the finished ones.
    pub fn runs_stamp(&self) -> Result<String> {
        let mut stamp: String = self
            .conn
            .prepare_cached("SELECT id FROM runs ORDER BY queued_at_ms DESC, id DESC LIMIT 1")?
            .query_row([], |row| row.get(0))
            .optional()?
            .unwrap_or_default();
        let live = self
            .conn
            .prepare_cached(
                "SELECT id FROM runs WHERE state = 'pending'
             UNION ALL SELECT '!' || id FROM runs WHERE state = 'active'",
            )?
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for id in live {
            stamp.push(' ');
            stamp.push_str(&id);
        }
        Ok(stamp)
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

/// The notifiers run for a run, in config order.
pub(crate) fn notifications_of(
    conn: &Connection,
    run_id: &str,
) -> rusqlite::Result<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(
        "SELECT position, command, state, exit_code, stderr_tail, started_at_ms, finished_at_ms
         FROM notifications WHERE run_id = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([run_id], |row| {
        let command: String = row.get(1)?;
        Ok(Notification {
            position: row.get(0)?,
            command: serde_json::from_str(&command).unwrap_or_default(),
            state: row.text(2)?,
            exit_code: row.get(3)?,
            stderr_tail: row.get(4)?,
            started_at_ms: row.get(5)?,
            finished_at_ms: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// The statement [`Store::list_runs`] runs for `filter`, and its values.
fn list_statement(filter: &ListFilter) -> (String, Vec<Value>) {
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
    (sql, values)
}
