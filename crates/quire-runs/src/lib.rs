//! `quire-runs`: list, show and repair quire's runs, for people at a terminal
//! and for scripts (`--json`). A thin layer: parse, call quire-core, render.

mod cli;
mod json;
mod list;
mod reconcile;
mod show;
mod text;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use quire_core::{Home, Store};

use cli::{Cli, Command};

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
    let cli = Cli::parse_from(args);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("quire-runs: error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> quire_core::Result<ExitCode> {
    let out = text::Output::detect();
    let open = || Store::open(&Home::resolve(cli.home.as_deref())?);
    match cli.command {
        Command::List(args) => list::run(&open()?, &args, &out),
        Command::Show(args) => show::run(&open()?, &args, &out),
        Command::Reconcile(args) => reconcile::run(&mut open()?, &args),
        Command::Completions { shell } => Ok(completions(shell)),
    }
}

/// The completion script for `shell`; it needs no store.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "quire-runs", &mut script);
    text::emit(&String::from_utf8_lossy(&script))
}
