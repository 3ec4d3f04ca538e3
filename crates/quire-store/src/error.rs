use std::path::PathBuf;

use quire_model::{JobState, RunState};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the store can refuse. Each message names what was wrong;
/// [`Error::hint`] says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot use {path} as quire's home: {source}")]
    Home {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("no quire home at {0}: nothing has been recorded there")]
    HomeMissing(PathBuf),
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
    #[error("run id prefix {prefix:?} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousRun {
        prefix: String,
        candidates: Vec<String>,
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
    #[error("the store holds a value this quire cannot read: {0}")]
    BadValue(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl Error {
    /// What the person should do next, where there is something to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Home { .. } => {
                "pass a writable directory with --home or $QUIRE_HOME".to_string()
            }
            Error::NoHome => "pass --home DIR or set $QUIRE_HOME".to_string(),
            Error::HomeMissing(_) => {
                "pass the --home (or $QUIRE_HOME) that `quire-run install` was given".to_string()
            }
            Error::Config { .. } => {
                "fix config.toml (keys: max_workers, keep_workspaces, repos_root)".to_string()
            }
            Error::NotADatabase { .. } => {
                "restore the file from a backup, or point --home at another directory".to_string()
            }
            Error::TooNew { .. } => {
                "run a quire at least as new as the one that wrote this store".to_string()
            }
            Error::Locked { .. } => {
                "another quire process holds the store; try again, or find it with `fuser quire.db`"
                    .to_string()
            }
            Error::NotQuire { .. } => {
                "point --home at a quire home, or at a new directory for a new one".to_string()
            }
            Error::Conversion { .. } => {
                "keep the file as it is and report this, with the message above".to_string()
            }
            Error::UnknownRepo(_) => {
                "`quire-runs repos` lists the repositories quire knows".to_string()
            }
            Error::UnknownRun(_) => "`quire-runs list` shows the runs there are".to_string(),
            Error::AmbiguousRun { .. } => "give more characters of the id".to_string(),
            Error::UnknownJob { run, .. } => format!("`quire-runs show {run}` lists its jobs"),
            _ => return None,
        })
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
