use std::path::PathBuf;

use quire_model::{JobState, RunState};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the store can refuse. Each message names what was wrong; what
/// a person should do about it is the commands' business (quire-cli's
/// `CommandError`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot use {path} as quire's home: {source}")]
    Home {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no quire home at {0}: nothing has been recorded there")]
    HomeMissing(PathBuf),
    #[error("{0} is not a quire home: it holds no quire.db (`quire-run install` makes a home)")]
    NotAHome(PathBuf),
    #[error("no home for quire: none of --home, $QUIRE_HOME, $XDG_DATA_HOME or $HOME is set")]
    NoHome,
    #[error("{path} is not a quire database, or it is corrupt: {source}")]
    NotADatabase {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{path} has schema version {found}, newer than this quire knows ({known}); it was left unchanged"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{path} has schema version {found}; reading it without writing needs version {latest}")]
    NotCurrent {
        path: PathBuf,
        found: i64,
        latest: i64,
    },
    #[error("{path} is not a quire store: {what}; it was left unchanged")]
    NotQuire { path: PathBuf, what: String },
    #[error(
        "converting the upstream store {path} (version {version}) failed, nothing was changed: {source}"
    )]
    Conversion {
        path: PathBuf,
        version: i64,
        source: rusqlite::Error,
    },
    #[error("no repository {0:?} is known")]
    UnknownRepo(String),
    #[error("the database {path} stayed locked by another process for too long")]
    Locked { path: PathBuf },
    #[error("upgrading the schema of {path} failed, nothing was changed: {source}")]
    Migration {
        path: PathBuf,
        source: rusqlite_migration::Error,
    },
    #[error("refusing to record a run: {0}")]
    InvalidRun(String),
    #[error("no run matches {0:?}")]
    UnknownRun(String),
    #[error(
        "run id {given:?} is ambiguous: it matches {}{}",
        candidates.join(", "),
        if *more > 0 { format!(" and {more} more") } else { String::new() }
    )]
    AmbiguousRun {
        /// What was given (lowercased).
        given: String,
        /// Some of the runs it matches (at most 10), newest first.
        candidates: Vec<String>,
        /// How many others it matches.
        more: usize,
    },
    #[error("run {run} has no job {job:?}")]
    UnknownJob { run: String, job: String },
    #[error("run {run}: {from} -> {to} is not an edge of the run state machine")]
    IllegalRunEdge {
        run: String,
        from: RunState,
        to: RunState,
    },
    #[error("run {run}, job {job}: {from} -> {to} is not an edge of the job state machine")]
    IllegalJobEdge {
        run: String,
        job: String,
        from: JobState,
        to: JobState,
    },
    #[error("run {run} is {state}, not active: it takes no new jobs or steps")]
    RunNotActive { run: String, state: RunState },
    #[error(
        "run id {0:?} is not of quire's shape (8-4-4-4-12 hex digits), so quire makes no \
         path of it; an upstream store's ids are rewritten by `quire-run migrate-from`"
    )]
    BadRunId(String),
    #[error("the store holds a value this quire cannot read: {0}")]
    BadValue(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl Error {
    /// True when a write failed for want of disk space.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Sqlite(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
    }

    /// True when SQLite gave up waiting for a lock.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Locked { .. }) || matches!(self, Error::Sqlite(e) if is_busy(e))
    }
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
