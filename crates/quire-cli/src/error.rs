//! What a command tells a person when it cannot do what was asked: one
//! line naming what was wrong, and a hint saying what to do next. Hints name
//! commands, so they live here, at the edge, not in the store.

use std::process::ExitCode;

use quire_store::Error;

/// A command's failure, as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub message: String,
    pub hint: Option<String>,
}

impl CommandError {
    pub fn new(message: impl Into<String>) -> CommandError {
        CommandError {
            message: message.into(),
            hint: None,
        }
    }

    /// Print `PROGRAM: error: MESSAGE` and the hint on stderr; exit 1.
    pub fn report(&self, program: &str) -> ExitCode {
        eprintln!("{program}: error: {}", self.message);
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
        ExitCode::from(1)
    }
}

impl From<Error> for CommandError {
    fn from(e: Error) -> CommandError {
        CommandError {
            hint: hint(&e),
            message: e.to_string(),
        }
    }
}

/// What the person should do next, where there is something to say.
fn hint(e: &Error) -> Option<String> {
    Some(match e {
        Error::Home { .. } => "pass a writable directory with --home or $QUIRE_HOME".to_string(),
        Error::NoHome => "pass --home DIR or set $QUIRE_HOME".to_string(),
        Error::HomeMissing(_) | Error::NotAHome(_) => {
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
        Error::NotCurrent { .. } => {
            "run `quire-runs list` once (it brings the store up to date), then try again"
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
