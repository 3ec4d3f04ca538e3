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
pub mod record;
pub mod sandbox;
pub mod work;
pub mod workers;

/// Why `quire-run` could not do what it was asked.
#[derive(Debug)]
pub enum Failure {
    Store(quire_store::Error),
    Git(String),
    /// A file or directory given on the command line cannot be used.
    Input(String),
    /// An invalid pipeline: one `FILE:LINE:COLUMN: message` per problem.
    Invalid(Vec<String>),
    /// The command already said what went wrong; just exit 1.
    Quiet,
    /// Exit with this status, having said why (the previous hook's).
    Status(u8),
}

impl From<quire_store::Error> for Failure {
    fn from(e: quire_store::Error) -> Failure {
        Failure::Store(e)
    }
}

impl From<crate::git::GitError> for Failure {
    fn from(e: crate::git::GitError) -> Failure {
        Failure::Git(e.to_string())
    }
}

/// Say once, on stderr, what opening `store` converted from an upstream
/// quire store in place (the one open that converted it; later opens find
/// nothing to convert and say nothing).
pub fn say_converted(store: &quire_store::Store) {
    if let Some(converted) = store.converted() {
        eprintln!("quire: {}: {converted}", store.home().db_path().display());
    }
}
