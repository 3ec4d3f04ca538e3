//! `quire-runs`: list, show, follow (`logs --follow`, `watch`) and repair quire's runs, for people at a
//! terminal and for scripts (`--json`). A thin layer: parse, call
//! quire-store, render.

mod caches;
mod cli;
mod control;
mod download;
mod jq;
pub(crate) mod json;
mod list;
mod logs;
mod prune;
mod reconcile;
mod repos;

mod show;
mod watch;

use std::process::ExitCode;

use clap::CommandFactory;
use quire_store::{Home, Store};

use cli::{Cli, Command};

/// The clap definition of `quire-runs`, each command's help in its doc
/// comment and `after_long_help` (`manual::finish`): what it parses, and
/// what --help, completions, man pages and docs/cli-reference.md are made
/// from.
pub fn command() -> clap::Command {
    crate::manual::finish(Cli::command())
}

/// Run `quire-runs` with this process's arguments; returns its exit status.
pub fn main() -> ExitCode {
    main_with(std::env::args_os())
}

/// Run `quire-runs` with these arguments (the first is the program name),
/// as if from the command line; returns its exit status.
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let matches = crate::manual::matches(Cli::command(), command, args);
    let cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli) {
        Ok(code) => code,
        Err(e) => e.report("quire-runs"),
    }
}

/// Open the store of an existing home: quire-runs reads what quire-run
/// recorded, so a home that does not exist is a mistake worth saying.
fn open(home: Option<&std::path::Path>) -> quire_store::Result<Store> {
    let store = Store::open_existing(&Home::resolve(home)?)?;
    crate::say_converted(&store);
    Ok(store)
}

fn run(cli: Cli) -> crate::error::Result<ExitCode> {
    let out = quire_view::text::Output::detect();
    let home = cli.home.as_deref();
    match cli.command {
        Command::List(args) => list::run(&open(home)?, &args, &out),
        Command::Show(args) => show::run(&open(home)?, &args, &out),
        Command::Logs(args) => logs::run(&open(home)?, &args),
        Command::Watch(args) => watch::run(&open(home)?, &args, &out),
        Command::Download(args) => download::run(&open(home)?, &args),
        Command::Wait(args) => control::wait(&open(home)?, &args),
        Command::Cancel(args) => control::cancel(&mut open(home)?, &args),
        Command::Retry(args) => control::retry(&mut open(home)?, &args),
        Command::Prune(args) => prune::run(&mut open(home)?, &args, &out),
        Command::Reconcile(args) => reconcile::run(&mut open(home)?, &args),
        Command::Repos(args) => repos::run(&open(home)?, &args, &out),
        Command::Caches(args) => caches::run(&open(home)?, &args, &out),
        Command::Serve(args) => Ok(quire_web::run(home, args.listen)?),
        Command::Completions { shell } => crate::manual::print_completion(shell, command()),
        Command::CompleteWords { kind } => Ok(complete_words(home, kind)),
        Command::Man(args) => crate::manual::print_man(command(), &args),
    }
}

/// `complete-words KIND`: run ids (the newest 200, newest first) or
/// repository names, one a line, for the completion scripts. Quiet and
/// successful whatever goes wrong: a completion has nothing to offer then.
fn complete_words(home: Option<&std::path::Path>, kind: cli::WordKind) -> ExitCode {
    let Ok(store) = Home::resolve(home).and_then(|home| Store::open_existing(&home)) else {
        return ExitCode::SUCCESS;
    };
    let words: Vec<String> = match kind {
        cli::WordKind::Runs => {
            let filter = quire_store::query::ListFilter {
                limit: 200,
                ..Default::default()
            };
            store
                .list_runs(&filter)
                .map(|runs| runs.into_iter().map(|r| r.id).collect())
                .unwrap_or_default()
        }
        // The names alone: `repos()` counts each one's runs.
        cli::WordKind::Repos => store
            .repo_list()
            .map(|repos| repos.into_iter().map(|r| r.name).collect())
            .unwrap_or_default(),
    };
    let mut text = String::new();
    // A word is one line, and one word to bash: none other is offered.
    for word in words
        .iter()
        .filter(|w| !w.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        text.push_str(word);
        text.push('\n');
    }
    let _ = crate::error::output::emit(&text);
    ExitCode::SUCCESS
}
