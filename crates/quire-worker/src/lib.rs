//! quire's worker and what it shares with the hook: recording a pushed
//! commit ([`record`]), claiming runs and executing them ([`work`]: lease,
//! checkout, the executor, packing logs), the run's directories and
//! sandbox settings ([`sandbox`]), caches between runs ([`caches`]) and
//! their file times ([`mtimes`]), announcing ended runs ([`announce`]: git
//! notes, `[[notify]]`), the home's config.toml ([`config`]), worker slots
//! ([`workers`]), signals ([`interrupt`]), and git ([`git`]: the only code
//! that reads repositories, through gix, or runs `git`).

pub mod announce;
pub mod caches;
pub mod config;
pub mod git;
pub mod interrupt;
pub mod mtimes;
pub mod node;
pub mod reaper;
pub mod record;
pub mod sandbox;
pub mod work;
pub mod workers;

/// Why the worker, the hook's recording or an announcer could not do what
/// it was asked. quire-cli turns each into a message, a hint and an exit
/// code (`quire_cli::error`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] quire_store::Error),
    #[error(transparent)]
    Git(#[from] git::GitError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A worker (`quire-run work`) could not be started; the runs stay
    /// queued.
    #[error("cannot start a worker (quire-run work) in {}: {source}", home.display())]
    Spawn {
        home: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A worker slot (`workers/slot-N.lock` in the home) cannot be opened.
    #[error("cannot open the worker slot {}: {source}", path.display())]
    Slot {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// What went wrong was already said (on stderr, or in worker.log);
    /// only the exit status (1) is left to give.
    #[error("the failure was already reported")]
    Quiet,
}

/// Say once, on stderr, what opening `store` converted from an upstream
/// quire store in place (the one open that converted it; later opens find
/// nothing to convert and say nothing). A stderr that is gone (the
/// hook's pusher hung up) is no reason to stop.
pub fn say_converted(store: &quire_store::Store) {
    use std::io::Write;
    if let Some(converted) = store.converted() {
        let path = store.home().db_path();
        let _ = writeln!(std::io::stderr(), "quire: {}: {converted}", path.display());
    }
}
