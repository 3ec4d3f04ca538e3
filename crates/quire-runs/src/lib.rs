//! `quire-runs`: list, show and repair quire's runs, for people at a terminal
//! and for scripts (`--json`). A thin layer: parse, call quire-core, render.

mod cli;
mod json;
mod list;
mod reconcile;
mod show;
mod text;

use std::process::ExitCode;

use clap::Parser;
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
    let home = Home::resolve(cli.home.as_deref())?;
    let mut store = Store::open(&home)?;
    let out = text::Output::detect();
    match cli.command {
        Command::List(args) => list::run(&store, &args, &out),
        Command::Show(args) => show::run(&store, &args, &out),
        Command::Reconcile(args) => reconcile::run(&mut store, &args),
    }
}
