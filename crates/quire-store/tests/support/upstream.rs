#![allow(dead_code)]
//! Stores exactly as the *upstream* project's migrations left them at each of its schema
//! versions 1..=11 (1..=7 are quire's own `migrations/0001..0007`, the seed), filled with rows
//! written at several versions along the way, and the rows quire must show after converting
//! them.
//!
//! A store is built the way rusqlite_migration built it: foreign keys ON, each version in a
//! transaction ending in `PRAGMA user_version = k`. So upstream's 7 and 9, which `DROP TABLE
//! runs` after copying it, cascade away every job and step that existed at that moment. A
//! model of the rows follows each migration, and `Expected` is derived from it by quire's
//! conversion rules.

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use std::collections::BTreeMap;
use std::path::Path;

pub const LATEST_UPSTREAM: i64 = 11;

/// The repositories, as upstream names them: the path relative to its `repos/` folder.
pub const REPOS: [&str; 2] = ["app.git", "work/api.git"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub runs: Vec<ExpectedRun>,
    pub jobs: Vec<ExpectedJob>,
    pub steps: Vec<ExpectedStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedRun {
    pub id: String,
    pub repo: String,
    pub git_dir: Option<String>,
    pub ref_name: String,
    pub sha: String,
    pub state: &'static str,
    /// The state upstream recorded (in version 7's words): a run it left
    /// `pending` or `active` is failed (`orphaned`) by the conversion and
    /// never runs here.
    pub was: &'static str,
    pub failure_kind: Option<&'static str>,
    pub detail_contains: Option<&'static str>,
    pub pushed_at_ms: i64,
    pub queued_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedJob {
    pub run_id: String,
    pub job_id: String,
    pub state: &'static str,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedStep {
    pub run_id: String,
    pub job_id: String,
    pub seq: i64,
    pub cmd: String,
    pub exit_code: Option<i64>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// Runs first (its DROP cascades every job and step away), then jobs.
const RENAME_STATES_V9: &str = "
CREATE TABLE runs_new (
  id TEXT PRIMARY KEY, repo TEXT NOT NULL, ref_name TEXT NOT NULL, sha TEXT NOT NULL,
  pushed_at_ms INTEGER NOT NULL, state TEXT NOT NULL, failure_kind TEXT,
  queued_at_ms INTEGER NOT NULL, started_at_ms INTEGER, finished_at_ms INTEGER,
  run_token TEXT, git_dir TEXT, traceparent TEXT,
  CHECK (state IN ('queued', 'active', 'succeeded', 'failed', 'canceled')),
  CHECK (started_at_ms  IS NULL OR started_at_ms  >= queued_at_ms),
  CHECK (finished_at_ms IS NULL OR finished_at_ms >= queued_at_ms),
  CHECK (finished_at_ms IS NULL OR started_at_ms IS NULL OR finished_at_ms >= started_at_ms),
  CHECK (CASE state
    WHEN 'queued'    THEN started_at_ms IS NULL     AND finished_at_ms IS NULL
    WHEN 'active'    THEN started_at_ms IS NOT NULL AND finished_at_ms IS NULL
    WHEN 'succeeded' THEN started_at_ms IS NOT NULL AND finished_at_ms IS NOT NULL
    WHEN 'failed'    THEN finished_at_ms IS NOT NULL
    WHEN 'canceled'  THEN finished_at_ms IS NOT NULL
  END)
);
INSERT INTO runs_new
  SELECT id, repo, ref_name, sha, pushed_at_ms,
         CASE state WHEN 'pending' THEN 'queued' WHEN 'complete' THEN 'succeeded'
                    WHEN 'superseded' THEN 'canceled' ELSE state END,
         failure_kind, queued_at_ms, started_at_ms, finished_at_ms, run_token, git_dir, traceparent
  FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_repo_pushed_at ON runs(repo, pushed_at_ms DESC);
CREATE INDEX runs_state          ON runs(state);
CREATE TABLE jobs_new (
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, job_id TEXT NOT NULL,
  state TEXT NOT NULL, exit_code INTEGER, started_at_ms INTEGER, finished_at_ms INTEGER,
  PRIMARY KEY (run_id, job_id),
  CHECK (state IN ('active', 'succeeded', 'failed')),
  CHECK (finished_at_ms IS NULL OR finished_at_ms >= started_at_ms),
  CHECK (CASE state
    WHEN 'active' THEN started_at_ms IS NOT NULL AND finished_at_ms IS NULL
    ELSE started_at_ms IS NOT NULL AND finished_at_ms IS NOT NULL
  END)
);
INSERT INTO jobs_new
  SELECT run_id, job_id, CASE state WHEN 'complete' THEN 'succeeded' ELSE state END,
         exit_code, started_at_ms, finished_at_ms
  FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;";

/// Jobs and steps are set aside while `runs` is rebuilt and put back after, so this rebuild
/// (unlike 7 and 9) keeps them.
const OUTCOME_V10: &str = "
CREATE TEMP TABLE jobs_kept AS SELECT * FROM jobs;
CREATE TEMP TABLE sh_kept AS SELECT * FROM sh;
CREATE TABLE runs_new (
  id TEXT PRIMARY KEY, repo TEXT NOT NULL, ref_name TEXT NOT NULL, sha TEXT NOT NULL,
  pushed_at_ms INTEGER NOT NULL, created_at INTEGER NOT NULL, dispatched_at INTEGER,
  resolved_at INTEGER, outcome TEXT, run_token TEXT, git_dir TEXT, traceparent TEXT,
  CHECK (outcome IN ('succeeded', 'failed-pipeline', 'failed-orphaned', 'failed-internal',
                     'superseded')),
  CHECK ((resolved_at IS NULL) = (outcome IS NULL)),
  CHECK (outcome IS NOT 'succeeded' OR dispatched_at IS NOT NULL),
  CHECK (dispatched_at IS NULL OR dispatched_at >= created_at),
  CHECK (resolved_at IS NULL OR resolved_at >= created_at),
  CHECK (resolved_at IS NULL OR dispatched_at IS NULL OR resolved_at >= dispatched_at)
);
INSERT INTO runs_new
  SELECT id, repo, ref_name, sha, pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms,
         CASE state
           WHEN 'succeeded' THEN 'succeeded'
           WHEN 'canceled' THEN 'superseded'
           WHEN 'failed' THEN CASE failure_kind WHEN 'orphaned' THEN 'failed-orphaned'
                                WHEN 'process-crashed' THEN 'failed-internal'
                                ELSE 'failed-pipeline' END
         END,
         run_token, git_dir, traceparent
  FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_repo_pushed_at ON runs(repo, pushed_at_ms DESC);
CREATE INDEX runs_pending ON runs(created_at) WHERE outcome IS NULL;
INSERT INTO jobs SELECT * FROM jobs_kept;
INSERT INTO sh SELECT * FROM sh_kept;
DROP TABLE temp.jobs_kept;
DROP TABLE temp.sh_kept;";

/// Upstream's DDL, version k at index k - 1. Its versions 1..7 are the
/// seed's history, quire's own migrations 0001..0007, as they shipped: read
/// from there, so upstream's shapes are written once. 8..11 left quire's
/// lineage; quire only converts them (`upstream::convert_to_seven`).
const MIGRATIONS: [&str; 11] = [
    include_str!("../../../../migrations/0001_initial.sql"),
    include_str!("../../../../migrations/0002_sh_events.sql"),
    include_str!("../../../../migrations/0003_auth_token.sql"),
    include_str!("../../../../migrations/0004_git_dir_sentry.sql"),
    include_str!("../../../../migrations/0005_run_token.sql"),
    include_str!("../../../../migrations/0006_traceparent.sql"),
    include_str!("../../../../migrations/0007_drop_dead_columns.sql"),
    "ALTER TABLE sh_events RENAME TO sh;",
    RENAME_STATES_V9,
    OUTCOME_V10,
    "ALTER TABLE runs DROP COLUMN git_dir;",
];

/// A run as the model keeps it: state in v1..8 words, failure kind as stored.
#[derive(Clone)]
struct Run {
    id: String,
    repo: &'static str,
    ref_name: String,
    sha: String,
    state: &'static str,
    kind: Option<&'static str>,
    pushed: i64,
    queued: i64,
    started: Option<i64>,
    finished: Option<i64>,
    token: Option<String>,
    git_dir: Option<String>,
    traceparent: Option<String>,
}

struct Job {
    run_id: String,
    job_id: &'static str,
    state: &'static str,
    started: Option<i64>,
    finished: Option<i64>,
}

struct Step {
    run_id: String,
    job_id: &'static str,
    cmd: &'static str,
    exit_code: i64,
    started: i64,
    finished: i64,
}

/// One batch: (repo index, ref, state, failure kind, queued, started, finished), times as
/// offsets from the batch's base. Refs other than `refs/heads/main` get a per-batch suffix,
/// so only `work/api.git`'s pending `main` runs race across batches. `LEGACY` is replaced by
/// `NULL` / `quire-ci-exit` before v10 and by kinds that have an outcome after.
type RunSpec = (
    usize,
    &'static str,
    &'static str,
    Option<&'static str>,
    i64,
    Option<i64>,
    Option<i64>,
);
const LEGACY: Option<&str> = Some("legacy");
#[rustfmt::skip]
const RUN_SPECS: [RunSpec; 14] = [
    (0, "refs/heads/main", "complete", None, 0, Some(100), Some(5_000)),
    (1, "refs/heads/main", "failed", Some("pipeline-failure"), 10_000, Some(10_100), Some(12_000)),
    (0, "refs/heads/feature", "failed", Some("process-crashed"), 20_000, Some(20_050), Some(21_000)),
    (1, "refs/heads/fix", "failed", Some("orphaned"), 30_000, None, Some(31_000)),
    (0, "refs/tags/v1", "failed", LEGACY, 40_000, Some(40_010), Some(40_500)),
    (0, "refs/heads/release", "failed", LEGACY, 50_000, Some(50_010), Some(50_900)),
    (0, "refs/heads/old", "superseded", None, 60_000, None, Some(60_500)),
    (1, "refs/heads/old", "superseded", None, 70_000, Some(70_100), Some(70_800)),
    // Racing live runs: the older active one is superseded at its own start (80_300), which is
    // after the newer one was queued (80_200).
    (0, "refs/heads/race", "active", None, 80_000, Some(80_300), None),
    (0, "refs/heads/race", "pending", None, 80_200, None, None),
    (1, "refs/heads/main", "pending", None, 90_000, None, None),
    // Queued in the same millisecond: the greater id stays.
    (1, "refs/heads/tie", "pending", None, 95_000, None, None),
    (1, "refs/heads/tie", "pending", None, 95_000, None, None),
    (1, "refs/heads/deploy", "active", None, 97_000, Some(97_100), None),
];

/// (run index, job, state, started, finished). Pending, skipped and aborted jobs are only
/// written to stores that never go through v9, whose jobs CHECK has no such states.
type JobSpec = (usize, &'static str, &'static str, Option<i64>, Option<i64>);
const JOB_SPECS: [JobSpec; 13] = [
    (0, "build", "complete", Some(110), Some(2_000)),
    (0, "test", "complete", Some(2_000), Some(4_900)),
    (1, "build", "complete", Some(10_110), Some(11_000)),
    (1, "test", "failed", Some(11_000), Some(11_900)),
    (1, "lint", "skipped", None, Some(11_950)),
    (2, "build", "active", Some(20_060), None),
    (2, "deploy", "pending", None, None),
    (4, "build", "aborted", Some(40_020), Some(40_400)),
    (7, "build", "complete", Some(70_110), Some(70_700)),
    (8, "build", "complete", Some(80_310), Some(80_350)),
    (8, "test", "active", Some(80_360), None),
    (8, "deploy", "pending", None, None),
    (13, "deploy", "active", Some(97_110), None),
];

/// (run index, job, cmd, exit code, started, finished); listed out of order on purpose.
type StepSpec = (usize, &'static str, &'static str, i64, i64, i64);
const STEP_SPECS: [StepSpec; 9] = [
    (0, "build", "cargo test", 0, 1_000, 1_990),
    (0, "build", "cargo build", 0, 120, 990),
    (0, "test", "cargo nextest run", 0, 2_010, 4_800),
    (1, "build", "cargo build", 0, 10_120, 10_900),
    (1, "test", "cargo test", 0, 11_010, 11_400),
    (1, "test", "cargo test -- --ignored", 1, 11_400, 11_850),
    (2, "build", "make", 0, 20_070, 20_500),
    (8, "build", "true", 0, 80_320, 80_340),
    (13, "deploy", "./deploy.sh", 0, 97_120, 97_300),
];

#[derive(Default)]
struct Model {
    runs: Vec<Run>,
    jobs: Vec<Job>,
    steps: Vec<Step>,
}

fn migrate(conn: &mut Connection, k: i64) {
    let tx = conn.transaction().expect("begin");
    tx.execute_batch(MIGRATIONS[k as usize - 1])
        .unwrap_or_else(|e| panic!("upstream migration {k}: {e}"));
    tx.pragma_update(None, "user_version", k)
        .expect("user_version");
    tx.commit().expect("commit");
}

impl Model {
    /// What upstream migration `k` did to the rows already there.
    fn migrated(&mut self, k: i64) {
        match k {
            7 | 9 => {
                self.jobs.clear();
                self.steps.clear();
            }
            10 => {
                for run in self.runs.iter_mut().filter(|r| r.state == "failed") {
                    if !matches!(run.kind, Some("orphaned" | "process-crashed")) {
                        run.kind = Some("pipeline-failure");
                    }
                }
            }
            11 => self.runs.iter_mut().for_each(|r| r.git_dir = None),
            _ => {}
        }
    }

    /// Writes batch `b` at version `v` into a store that will end at `target`.
    fn insert_batch(&mut self, conn: &Connection, b: i64, v: i64, target: i64, repos_dir: &Path) {
        let base = 1_700_000_000_000 + b * 1_000_000;
        let ids: Vec<String> = (0..RUN_SPECS.len())
            .map(|i| format!("0190{b:04x}-0000-7000-8000-{i:012x}"))
            .collect();
        for (i, &(repo, ref_name, state, kind, q, s, f)) in RUN_SPECS.iter().enumerate() {
            let kind = match (kind, v < 10, i) {
                (LEGACY, true, 4) => None,
                (LEGACY, true, _) => Some("quire-ci-exit"),
                (LEGACY, false, 4) => Some("pipeline-failure"),
                (LEGACY, false, _) => Some("process-crashed"),
                (k, ..) => k,
            };
            let repo = REPOS[repo];
            let run = Run {
                id: ids[i].clone(),
                repo,
                ref_name: match ref_name {
                    "refs/heads/main" => ref_name.to_string(),
                    _ => format!("{ref_name}-{b}"),
                },
                sha: format!("{:040x}", 0xabc000 + b * 100 + i as i64),
                state,
                kind,
                pushed: base + q - 5,
                queued: base + q,
                started: s.map(|s| base + s),
                finished: f.map(|f| base + f),
                token: (v >= 3 && i % 2 == 1).then(|| format!("token-{b}-{i}")),
                git_dir: ((4..11).contains(&v) && i % 2 == 0)
                    .then(|| repos_dir.join(repo).to_string_lossy().into_owned()),
                traceparent: (v >= 6 && i % 3 == 0)
                    .then(|| format!("00-{:032x}-{:016x}-01", b * 100 + i as i64 + 1, i + 1)),
            };
            insert_run(conn, v, &run);
            self.runs.push(run);
        }
        for &(i, job_id, state, s, f) in &JOB_SPECS {
            if target >= 9 && !matches!(state, "active" | "complete" | "failed") {
                continue;
            }
            let state_stored = if v >= 9 && state == "complete" {
                "succeeded"
            } else {
                state
            };
            conn.execute(
                "INSERT INTO jobs (run_id, job_id, state, exit_code, started_at_ms, finished_at_ms)
                 VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
                rusqlite::params![
                    ids[i],
                    job_id,
                    state_stored,
                    s.map(|s| base + s),
                    f.map(|f| base + f)
                ],
            )
            .expect("insert upstream job");
            let (run_id, started, finished) =
                (ids[i].clone(), s.map(|s| base + s), f.map(|f| base + f));
            self.jobs.push(Job {
                run_id,
                job_id,
                state,
                started,
                finished,
            });
        }
        if v < 2 {
            return;
        }
        let table = if v >= 8 { "sh" } else { "sh_events" };
        for &(i, job_id, cmd, exit_code, s, f) in &STEP_SPECS {
            if !self
                .jobs
                .iter()
                .any(|j| j.run_id == ids[i] && j.job_id == job_id)
            {
                continue;
            }
            conn.execute(
                &format!(
                    "INSERT INTO {table} (run_id, job_id, started_at_ms, finished_at_ms, exit_code, cmd)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                rusqlite::params![ids[i], job_id, base + s, base + f, exit_code, cmd],
            )
            .expect("insert upstream step");
            let (run_id, started, finished) = (ids[i].clone(), base + s, base + f);
            self.steps.push(Step {
                run_id,
                job_id,
                cmd,
                exit_code,
                started,
                finished,
            });
        }
    }

    /// The rows quire must show after converting this store.
    fn expected(&self) -> Expected {
        let mut runs: BTreeMap<String, ExpectedRun> = BTreeMap::new();
        for r in &self.runs {
            let (failure_kind, detail_contains) = match (r.state, r.kind) {
                ("failed", None) => (Some("pipeline-failure"), Some("no failure kind")),
                ("failed", Some("quire-ci-exit")) => {
                    (Some("process-crashed"), Some("quire-ci-exit"))
                }
                ("failed", kind) => (kind, None),
                _ => (None, None),
            };
            let run = ExpectedRun {
                id: r.id.clone(),
                repo: r.repo.to_string(),
                git_dir: r.git_dir.clone(),
                ref_name: r.ref_name.clone(),
                sha: r.sha.clone(),
                state: r.state,
                was: r.state,
                failure_kind,
                detail_contains,
                pushed_at_ms: r.pushed,
                queued_at_ms: r.queued,
                started_at_ms: r.started,
                finished_at_ms: r.finished,
                traceparent: r.traceparent.clone(),
            };
            runs.insert(r.id.clone(), run);
        }
        // Racing live runs: every live run but the newest of its (repo, ref) is superseded.
        let mut live: BTreeMap<(String, String), Vec<(i64, String)>> = BTreeMap::new();
        for r in self
            .runs
            .iter()
            .filter(|r| matches!(r.state, "pending" | "active"))
        {
            let key = (r.repo.to_string(), r.ref_name.clone());
            live.entry(key).or_default().push((r.queued, r.id.clone()));
        }
        for mut racing in live.into_values() {
            racing.sort();
            for pair in racing.windows(2) {
                let run = runs.get_mut(&pair[0].1).expect("live run");
                run.state = "superseded";
                let since = run.started_at_ms.unwrap_or(run.queued_at_ms);
                run.finished_at_ms = Some(since.max(pair[1].0));
            }
        }
        // Every other live run never runs here: failed at conversion,
        // finished when it started (or was queued), no time upstream lacked.
        for run in runs
            .values_mut()
            .filter(|r| matches!(r.state, "pending" | "active"))
        {
            run.state = "failed";
            run.failure_kind = Some("orphaned");
            run.detail_contains = Some("it never ran here");
            run.finished_at_ms = Some(run.started_at_ms.unwrap_or(run.queued_at_ms));
        }
        let mut jobs: Vec<ExpectedJob> = self
            .jobs
            .iter()
            .map(|j| {
                let run = &runs[&j.run_id];
                let ended = matches!(run.state, "complete" | "failed" | "superseded");
                let (state, started, finished) = match (j.state, ended) {
                    ("active", true) => ("aborted", j.started, j.started.max(run.finished_at_ms)),
                    ("pending", true) => ("skipped", None, run.finished_at_ms),
                    (state, _) => (state, j.started, j.finished),
                };
                ExpectedJob {
                    run_id: j.run_id.clone(),
                    job_id: j.job_id.to_string(),
                    state,
                    started_at_ms: started,
                    finished_at_ms: finished,
                }
            })
            .collect();
        jobs.sort_by(|a, b| (&a.run_id, &a.job_id).cmp(&(&b.run_id, &b.job_id)));
        let mut steps: Vec<&Step> = self.steps.iter().collect();
        steps.sort_by_key(|s| (s.run_id.clone(), s.job_id, s.started));
        let mut seqs: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        let steps = steps
            .into_iter()
            .map(|s| {
                let seq = seqs.entry((&s.run_id, s.job_id)).or_default();
                *seq += 1;
                ExpectedStep {
                    run_id: s.run_id.clone(),
                    job_id: s.job_id.to_string(),
                    seq: *seq,
                    cmd: s.cmd.to_string(),
                    exit_code: Some(s.exit_code),
                    started_at_ms: s.started,
                    finished_at_ms: Some(s.finished),
                }
            })
            .collect();
        Expected {
            runs: runs.into_values().collect(),
            jobs,
            steps,
        }
    }
}

/// Inserts `run` with the columns and vocabulary of upstream version `v`.
fn insert_run(conn: &Connection, v: i64, run: &Run) {
    let text = |s: &str| Value::Text(s.to_string());
    let mut cols: Vec<(&str, Value)> = vec![
        ("id", text(&run.id)),
        ("repo", text(run.repo)),
        ("ref_name", text(&run.ref_name)),
        ("sha", text(&run.sha)),
        ("pushed_at_ms", Value::Integer(run.pushed)),
    ];
    if v >= 10 {
        let outcome = match (run.state, run.kind) {
            ("complete", _) => Some("succeeded"),
            ("superseded", _) => Some("superseded"),
            ("failed", Some("orphaned")) => Some("failed-orphaned"),
            ("failed", Some("process-crashed")) => Some("failed-internal"),
            ("failed", _) => Some("failed-pipeline"),
            _ => None,
        };
        cols.push(("created_at", Value::Integer(run.queued)));
        cols.push(("dispatched_at", run.started.into()));
        cols.push(("resolved_at", run.finished.into()));
        cols.push(("outcome", outcome.map(str::to_string).into()));
    } else {
        let state = match (v >= 9, run.state) {
            (true, "pending") => "queued",
            (true, "complete") => "succeeded",
            (true, "superseded") => "canceled",
            (_, state) => state,
        };
        cols.push(("state", text(state)));
        cols.push(("failure_kind", run.kind.map(str::to_string).into()));
        cols.push(("queued_at_ms", Value::Integer(run.queued)));
        cols.push(("started_at_ms", run.started.into()));
        cols.push(("finished_at_ms", run.finished.into()));
    }
    if v < 7 {
        let workspace = format!("/var/quire/runs/{}/{}/workspace", run.repo, run.id);
        cols.push(("workspace_path", Value::Text(workspace)));
        let container = (run.state == "active").then(|| format!("ctr-{}", run.id));
        cols.push(("container_id", container.into()));
    }
    if v >= 3 {
        cols.push((
            if v < 5 { "auth_token" } else { "run_token" },
            run.token.clone().into(),
        ));
    }
    if (4..11).contains(&v) {
        cols.push(("git_dir", run.git_dir.clone().into()));
    }
    if v >= 6 {
        cols.push(("traceparent", run.traceparent.clone().into()));
    }
    let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT INTO runs ({}) VALUES ({})",
        names.join(", "),
        marks.join(", ")
    );
    conn.execute(&sql, params_from_iter(cols.into_iter().map(|(_, v)| v)))
        .unwrap_or_else(|e| panic!("insert upstream run {} at v{v}: {e}", run.id));
}

/// Build an upstream store at `version` (1..=11) in the file `db` (created), git_dir values
/// under `repos_dir`. Batches of rows are written right after versions 2 (1 for a v1 store),
/// 7, 9, 10 and `version`, each in the vocabulary of the version current at that moment.
pub fn build(db: &Path, repos_dir: &Path, version: i64) -> Expected {
    assert!(
        (1..=LATEST_UPSTREAM).contains(&version),
        "no upstream version {version}"
    );
    let mut conn = Connection::open(db).expect("open upstream store");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .expect("wal");
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "foreign_keys", true)
        .expect("foreign keys");
    let mut points = vec![version.min(2), 7, 9, 10, version];
    points.retain(|&p| p <= version);
    points.sort();
    points.dedup();
    let mut model = Model::default();
    for k in 1..=version {
        migrate(&mut conn, k);
        model.migrated(k);
        if let Some(b) = points.iter().position(|&p| p == k) {
            model.insert_batch(&conn, b as i64, k, version, repos_dir);
        }
    }
    conn.close()
        .map_err(|(_, e)| e)
        .expect("close upstream store");
    model.expected()
}

/// Build an upstream *home* at `version` in `dir`: `quire.db`, the bare repositories under
/// `repos/` with upstream's post-receive hook, and each run's files under `runs/`.
pub fn build_home(dir: &Path, version: i64) -> Expected {
    use std::os::unix::fs::PermissionsExt;
    let repos = dir.join("repos");
    for name in REPOS {
        let path = repos.join(name);
        std::fs::create_dir_all(&path).expect("repo dir");
        let status = std::process::Command::new("git")
            .args(["init", "--bare", "-q"])
            .arg(&path)
            .status()
            .expect("run git");
        assert!(status.success(), "git init --bare {}", path.display());
        let hook = path.join("hooks").join("post-receive");
        std::fs::create_dir_all(hook.parent().unwrap()).expect("hooks dir");
        let script = "#!/bin/sh\n# Installed by upstream quire: hand each push to `quire serve`.\n\
                      exec quire hook post-receive \"$@\"\n";
        std::fs::write(&hook, script).expect("hook");
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let expected = build(&dir.join("quire.db"), &repos, version);
    let run_dir = |repo: &str, id: &str| dir.join("runs").join(repo).join(id);
    for run in &expected.runs {
        let rd = run_dir(&run.repo, &run.id);
        std::fs::create_dir_all(&rd).expect("run dir");
        let event =
            serde_json::json!({"type": "run-started", "run_id": run.id, "at_ms": run.queued_at_ms});
        std::fs::write(rd.join("events.jsonl"), format!("{event}\n")).expect("events");
        std::fs::write(
            rd.join("quire-ci.log"),
            format!("quire-ci {} starting\n", run.id),
        )
        .expect("log");
    }
    for step in &expected.steps {
        let repo = &expected
            .runs
            .iter()
            .find(|r| r.id == step.run_id)
            .expect("run")
            .repo;
        let jd = run_dir(repo, &step.run_id).join("jobs").join(&step.job_id);
        std::fs::create_dir_all(&jd).expect("job dir");
        let text = format!("{} {} step {}", step.run_id, step.job_id, step.seq);
        let line = |ms: i64| {
            let ts = jiff::Timestamp::from_millisecond(ms).expect("timestamp");
            format!("{ts} stdout F {text}\n")
        };
        let body = line(step.started_at_ms) + &line(step.started_at_ms + 1);
        std::fs::write(jd.join(format!("sh-{}.log", step.seq)), body).expect("step log");
    }
    expected
}
