//! What a command tells a person when it cannot do what was asked: one
//! line naming what was wrong, and a hint saying what to do next. Hints name
//! commands, so they live here, at the edge, not in the crates below.
//!
//! Every command of both binaries returns `Result<_, CommandError>`; the
//! binary reports it in one place ([`CommandError::report`]), and
//! [`Kind::exit_code`] is the one mapping of a kind to an exit status.

use std::fmt;
use std::process::ExitCode;

use quire_store::Error as StoreError;
use quire_worker::config::ConfigError;

/// What kind of failure a [`CommandError`] is: what decides its exit status
/// and how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command line asks for something the command cannot take (a
    /// flag's value, a combination): exit 2.
    Usage,
    /// What was named (a run, a job, a step, a repository) does not exist.
    NotFound,
    /// The store (the home, quire.db) cannot be used.
    Store,
    /// A repository cannot be read, or `git` failed.
    Git,
    /// A file operation failed; the message says on what.
    Io,
    /// Standard output cannot be written (not a reader that went away).
    Output,
    /// The home's config.toml cannot be read or used.
    Config,
    /// A pipeline file is invalid: its problems, one `FILE:LINE:COLUMN:
    /// message` per line, printed as they are.
    Pipeline,
    /// A run's steps could not be executed here.
    Executor,
    /// A worker could not be started, or a worker slot taken.
    Worker,
    /// `quire-runs serve` could not serve.
    Web,
    /// A file or directory given on the command line cannot be used.
    Input,
    /// What was asked cannot be done to the thing in the state it is in
    /// (a run already ended, a repository known by name only).
    Refused,
    /// `show --exit-status`: the run to show does not exist: exit 2, told
    /// from a run that did not complete (1).
    Absent,
    /// The command already said what went wrong; nothing more is printed.
    Reported,
    /// Exit with this status, having said why (the previous hook's).
    Status(u8),
}

impl Kind {
    /// The exit status of a command that failed so: the one place it is
    /// decided (docs/CLI.md, "Exit codes").
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Usage | Kind::Absent => 2,
            Kind::Status(code) => code,
            Kind::NotFound
            | Kind::Store
            | Kind::Git
            | Kind::Io
            | Kind::Output
            | Kind::Config
            | Kind::Pipeline
            | Kind::Executor
            | Kind::Worker
            | Kind::Web
            | Kind::Input
            | Kind::Refused
            | Kind::Reported => 1,
        }
    }
}

/// A command's failure, as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T, E = CommandError> = std::result::Result<T, E>;

impl CommandError {
    pub fn new(kind: Kind, message: impl Into<String>) -> CommandError {
        CommandError {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// The same, with what to do next.
    pub fn hint(mut self, hint: impl Into<String>) -> CommandError {
        self.hint = Some(hint.into());
        self
    }

    pub fn usage(message: impl Into<String>) -> CommandError {
        CommandError::new(Kind::Usage, message)
    }

    pub fn not_found(message: impl Into<String>) -> CommandError {
        CommandError::new(Kind::NotFound, message)
    }

    pub fn input(message: impl Into<String>) -> CommandError {
        CommandError::new(Kind::Input, message)
    }

    pub fn refused(message: impl Into<String>) -> CommandError {
        CommandError::new(Kind::Refused, message)
    }

    pub fn git(message: impl Into<String>) -> CommandError {
        CommandError::new(Kind::Git, message)
    }

    /// An invalid pipeline, one problem a line.
    pub fn pipeline(problems: Vec<String>) -> CommandError {
        CommandError::new(Kind::Pipeline, problems.join("\n"))
    }

    /// A file operation failed: `what` says what was being done (`cannot
    /// write /a/b`), `e` why.
    pub fn io(what: impl fmt::Display, e: std::io::Error) -> CommandError {
        CommandError::new(Kind::Io, format!("{what}: {e}"))
    }

    /// A write to standard output failed (a reader that went away is not
    /// an error: [`output`]).
    pub fn stdout(e: std::io::Error) -> CommandError {
        CommandError::new(
            Kind::Output,
            format!("cannot write to standard output: {e}"),
        )
    }

    /// `run` has no job `job`.
    pub fn unknown_job(run: &str, job: &str) -> CommandError {
        CommandError::not_found(format!("run {run} has no job {job:?}"))
            .hint(format!("`quire-runs show {run}` lists its jobs"))
    }

    /// Already said; exit 1.
    pub fn reported() -> CommandError {
        CommandError::new(Kind::Reported, "")
    }

    /// Already said; exit with `code`.
    pub fn status(code: u8) -> CommandError {
        CommandError::new(Kind::Status(code), "")
    }

    /// Print it on stderr, as `program` (`PROGRAM: error: MESSAGE`, then
    /// the hint); the exit status for it. The one place a command's
    /// failure is reported.
    pub fn report(&self, program: &str) -> ExitCode {
        match self.kind {
            Kind::Reported | Kind::Status(_) => {}
            Kind::Pipeline => eprintln!("{}", self.message),
            _ => {
                eprintln!("{program}: error: {}", self.message);
                if let Some(hint) = &self.hint {
                    eprintln!("hint: {hint}");
                }
            }
        }
        ExitCode::from(self.kind.exit_code())
    }

    /// Print it as a warning: the command goes on.
    pub fn warn(&self, program: &str) {
        eprintln!("{program}: warning: {}", self.message);
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Standard output: what a command prints goes through here, so that a
/// failed write is said as one (and a reader that went away is not).
pub mod output {
    use std::io::Write;

    use super::{CommandError, Result};

    /// Write `text` to stdout. A reader that went away (`| head`) is not an
    /// error worth a report; any other write failure is.
    pub fn emit(text: &str) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        check(
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush()),
        )
    }

    /// [`emit`], then exit 0.
    pub fn print(text: &str) -> Result<std::process::ExitCode> {
        emit(text)?;
        Ok(std::process::ExitCode::SUCCESS)
    }

    /// A write's result: a reader that went away is not an error.
    pub fn check(result: std::io::Result<()>) -> Result<()> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(CommandError::stdout(e)),
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> CommandError {
        let kind = match &e {
            StoreError::UnknownRepo(_)
            | StoreError::UnknownRun(_)
            | StoreError::AmbiguousRun { .. }
            | StoreError::UnknownJob { .. } => Kind::NotFound,
            _ => Kind::Store,
        };
        CommandError {
            kind,
            hint: store_hint(&e),
            message: e.to_string(),
        }
    }
}

/// What the person should do next, where there is something to say.
fn store_hint(e: &StoreError) -> Option<String> {
    Some(match e {
        StoreError::Home { .. } => {
            "pass a writable directory with --home or $QUIRE_HOME".to_string()
        }
        StoreError::NoHome => "pass --home DIR or set $QUIRE_HOME".to_string(),
        StoreError::HomeMissing(_) | StoreError::NotAHome(_) => {
            "pass the --home (or $QUIRE_HOME) that `quire-run install` was given".to_string()
        }
        StoreError::NotADatabase { .. } => {
            "restore the file from a backup, or point --home at another directory".to_string()
        }
        StoreError::TooNew { .. } => {
            "run a quire at least as new as the one that wrote this store".to_string()
        }
        StoreError::Locked { .. } => {
            "another quire process holds the store; try again, or find it with `fuser quire.db`"
                .to_string()
        }
        StoreError::NotCurrent { .. } => {
            "run `quire-runs list` once (it brings the store up to date), then try again"
                .to_string()
        }
        StoreError::NotQuire { .. } => {
            "point --home at a quire home, or at a new directory for a new one".to_string()
        }
        StoreError::Conversion { .. } => {
            "keep the file as it is and report this, with the message above".to_string()
        }
        StoreError::UnknownRepo(_) => {
            "`quire-runs repos` lists the repositories quire knows".to_string()
        }
        StoreError::UnknownRun(_) => "`quire-runs list` shows the runs there are".to_string(),
        StoreError::AmbiguousRun { .. } => "give more characters of the id".to_string(),
        StoreError::UnknownJob { run, .. } => format!("`quire-runs show {run}` lists its jobs"),
        _ => return None,
    })
}

impl From<ConfigError> for CommandError {
    fn from(e: ConfigError) -> CommandError {
        let hint = match &e {
            ConfigError::Read { .. } => {
                "make config.toml a readable file, or remove it for the defaults"
            }
            ConfigError::Invalid { .. } => "fix config.toml (docs/OPERATIONS.md lists its keys)",
        };
        CommandError::new(Kind::Config, e.to_string()).hint(hint)
    }
}

impl From<quire_worker::git::GitError> for CommandError {
    fn from(e: quire_worker::git::GitError) -> CommandError {
        CommandError::git(e.to_string())
    }
}

impl From<quire_worker::Error> for CommandError {
    fn from(e: quire_worker::Error) -> CommandError {
        use quire_worker::Error;
        match e {
            Error::Store(e) => e.into(),
            Error::Git(e) => e.into(),
            Error::Config(e) => e.into(),
            Error::Quiet => CommandError::reported(),
            e @ Error::Spawn { .. } => CommandError::new(Kind::Worker, e.to_string())
                .hint("the runs stay queued; `quire-runs reconcile` starts a worker for them"),
            e @ Error::Slot { .. } => CommandError::new(Kind::Worker, e.to_string()),
        }
    }
}

impl From<quire_web::ServeError> for CommandError {
    fn from(e: quire_web::ServeError) -> CommandError {
        use quire_web::ServeError;
        match e {
            ServeError::Store(e) => e.into(),
            e @ ServeError::Listen(..) => CommandError::new(Kind::Web, e.to_string())
                .hint("pass another --listen address (port 0 takes a free one)"),
            e => CommandError::new(Kind::Web, e.to_string()),
        }
    }
}

impl From<quire_exec::exec::ExecError> for CommandError {
    fn from(e: quire_exec::exec::ExecError) -> CommandError {
        CommandError::new(Kind::Executor, e.to_string())
    }
}
