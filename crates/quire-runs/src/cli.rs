use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use quire_core::RunState;

/// List, show and repair quire's CI runs.
#[derive(Debug, Parser)]
#[command(name = "quire-runs", version, about, propagate_version = true)]
pub struct Cli {
    /// quire's data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or
    /// ~/.local/share/quire]
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List runs, newest first
    List(ListArgs),
    /// Show a run with its jobs and steps
    Show(ShowArgs),
    /// Fail runs whose worker is gone (safe to run from cron at any moment)
    Reconcile(ReconcileArgs),
    /// Print a completion script for a shell
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs of this repository (as listed in the REPO column)
    #[arg(long, value_name = "R")]
    pub repo: Option<String>,
    /// Only runs of this ref: `refs/heads/main`, or `main` for a branch or tag
    #[arg(long = "ref", value_name = "REF")]
    pub ref_name: Option<String>,
    /// Only runs in this state (repeatable)
    #[arg(long, value_name = "S", value_parser = parse_state)]
    pub state: Vec<RunState>,
    /// At most this many runs
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Print a JSON array of run objects (docs/CLI.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run id, or a prefix of one that matches a single run
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Print the run as a JSON object with its jobs and steps (docs/CLI.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Report what would change, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON (docs/CLI.md)
    #[arg(long)]
    pub json: bool,
}

fn parse_state(text: &str) -> Result<RunState, String> {
    RunState::parse(text).ok_or_else(|| {
        let names: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
        format!("{text:?} is not a run state; one of: {}", names.join(", "))
    })
}
