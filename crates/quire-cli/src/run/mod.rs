//! `quire-run`: the side of quire that records and executes runs. git's
//! post-receive hook calls `quire-run hook`, which records a run per pushed
//! ref and starts a detached `quire-run work`; `trigger` does the same for
//! one ref by hand; `validate` and `exec` check and run a pipeline file
//! locally; `install` puts the hook into a bare repository.

mod ci_wait;
mod demo;
pub(crate) mod help;
mod hook;
mod install;
mod local;
mod migrate;
mod pre_receive;
mod trigger;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use quire_store::Home;

use crate::error::CommandError;
use quire_worker::Failure;

/// Record and execute CI runs for pushed refs.
#[derive(Debug, Parser)]
#[command(
    name = "quire-run",
    version,
    about = "quire-run: the hook side of quire",
    propagate_version = true
)]
struct Cli {
    /// quire's data home [default: $QUIRE_HOME, $XDG_DATA_HOME/quire or
    /// ~/.local/share/quire]
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// git's post-receive hook: read `<old> <new> <ref>` lines on stdin,
    /// record a run per ref, start a worker, return at once (with the push
    /// option ci.wait: once the runs have ended, telling the pusher each
    /// job's start and end)
    Hook {
        /// The bare repository [default: $GIT_DIR]
        #[arg(long, value_name = "DIR")]
        git_dir: Option<PathBuf>,
        /// The post-receive hook that was there before quire's: run first,
        /// with the same input (`install` passes it); a missing one is
        /// skipped
        #[arg(long, value_name = "HOOK")]
        previous_hook: Option<PathBuf>,
    },
    /// git's pre-receive hook: refuse a push that writes refs/notes/ci
    /// (quire's notes), accept every other; reads only the ref names
    PreReceive {
        /// The pre-receive hook that was there before quire's: run first,
        /// with the same input (`install` passes it); its refusal refuses
        /// the push; a missing one is skipped
        #[arg(long, value_name = "HOOK")]
        previous_hook: Option<PathBuf>,
    },
    /// Record a run for one ref of a bare repository, as a push would
    Trigger(TriggerArgs),
    /// Execute pending runs until none is left, then exit
    Work,
    /// Write the git note and run the `[[notify]]` commands of every run
    /// that ended and was not announced yet, then exit (started by whoever
    /// ends runs; safe to run by hand or from cron)
    Announce,
    /// Install quire's hooks (post-receive, pre-receive) into bare
    /// repositories, keeping a hook that was there (it runs first)
    Install(InstallArgs),
    /// Take an upstream quire home (its quire.db at any version, its run
    /// logs, its repos/) into this home, which must not have a store yet;
    /// the source is only read
    MigrateFrom(MigrateArgs),
    /// Check a pipeline file; print the jobs in the order they would run,
    /// or every error with its line and column (exit 1)
    Validate {
        /// The pipeline file [default: .quire/ci.toml]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Run a pipeline in a local directory, without a repository or a store;
    /// exit 0 iff every job that had to pass passed
    Exec(ExecArgs),
    /// Try quire end to end in a scratch directory: a bare repository with
    /// the hook installed, a real `git push` of a project with a pipeline,
    /// the run it executes
    Demo(DemoArgs),
    /// Print a completion script for a shell
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of quire-run or of one of its
    /// commands, or write them all into a folder
    Man(crate::manual::ManArgs),
}

#[derive(Debug, Args)]
struct TriggerArgs {
    /// The bare repository
    #[arg(long, value_name = "DIR")]
    git_dir: PathBuf,
    /// The ref the run is for: `refs/heads/main`, or `main` for a branch or
    /// tag
    #[arg(value_name = "REF")]
    ref_name: String,
    /// The commit to run: a full or short id, or a revision such as
    /// `main~1` or a tag [default: the ref's tip]
    #[arg(value_name = "REV")]
    rev: Option<String>,
    /// Run the pipeline here and now, print the outcome, and exit 0 iff
    /// the run completed
    #[arg(long)]
    wait: bool,
    /// Record a run even when the commit's message says `[skip ci]`
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct InstallArgs {
    /// The bare repositories
    #[arg(value_name = "REPO.git", required_unless_present = "all")]
    repos: Vec<PathBuf>,
    /// Also every bare repository under ROOT, found by walking it
    /// (repeatable)
    #[arg(long, value_name = "ROOT")]
    all: Vec<PathBuf>,
    /// Point quire's hook for another home at this one (another program's
    /// hook is never replaced: it is kept and run first)
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct MigrateArgs {
    /// The upstream home: the folder holding quire.db, runs/ and repos/
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Install quire's post-receive hook into every repository under
    /// DIR/repos (upstream's hook is kept as hooks/post-receive.upstream)
    #[arg(long)]
    install_hooks: bool,
    /// Take a snapshot even while an upstream process has quire.db open
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// The pipeline file [default: WORKSPACE/.quire/ci.toml]
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// The directory steps run in [default: the current directory]
    #[arg(long, value_name = "DIR", default_value = ".")]
    workspace: PathBuf,
    /// The ref the run pretends was pushed (for `when`) [default: the
    /// workspace's current branch, else main]
    #[arg(long = "ref", value_name = "REF")]
    ref_name: Option<String>,
    /// Where logs and events.jsonl go [default: a new directory under $TMPDIR]
    #[arg(long, value_name = "DIR")]
    logs: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Where to create the repositories (and the home, unless --home is
    /// given); kept at the end [default: a new directory under $TMPDIR,
    /// removed at the end]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the scratch directory at the end, to look further
    #[arg(long)]
    keep: bool,
}

/// The clap definition of `quire-run`, with each command's long help
/// (`help.rs`): what it parses, and what completions and man pages are
/// made from.
pub fn command() -> clap::Command {
    crate::manual::annotate(<Cli as clap::CommandFactory>::command())
}

/// Run `quire-run` with this process's arguments; returns its exit status.
pub fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let home = || Home::resolve(cli.home.as_deref()).map_err(Failure::from);
    let result = match &cli.command {
        Command::Hook {
            git_dir,
            previous_hook,
        } => hook::main(home, git_dir.as_deref(), previous_hook.as_deref()),
        Command::PreReceive { previous_hook } => pre_receive::main(previous_hook.as_deref()),
        Command::Trigger(args) => home().and_then(|home| trigger::run(&home, args)),
        Command::MigrateFrom(args) => home().and_then(|home| migrate::run(&home, args)),
        Command::Work => home().and_then(|home| quire_worker::work::run(&home)),
        Command::Announce => home().and_then(|home| quire_worker::announce::run(&home)),
        Command::Install(args) => home().and_then(|home| install(&home, args)),
        Command::Validate { file } => local::validate(cli.home.as_deref(), file.as_deref()),
        Command::Exec(args) => local::exec(&local::ExecArgs {
            home: cli.home.as_deref(),
            file: args.file.as_deref(),
            workspace: &args.workspace,
            ref_name: args.ref_name.as_deref(),
            logs: args.logs.as_deref(),
        })
        .and_then(|complete| {
            if complete {
                Ok(())
            } else {
                Err(Failure::Quiet)
            }
        }),
        Command::Demo(args) => demo::run(cli.home.as_deref(), args),
        Command::Completions { shell } => {
            return crate::manual::print_completion(*shell, command());
        }
        Command::Man(args) => return crate::manual::print_man(command(), args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure),
    }
}

/// Say what went wrong on stderr; the exit status for it.
fn report(failure: Failure) -> ExitCode {
    match failure {
        Failure::Store(e) => CommandError::from(e).report("quire-run"),
        Failure::Git(message) | Failure::Input(message) => {
            CommandError::new(message).report("quire-run")
        }
        Failure::Invalid(lines) => {
            for line in lines {
                eprintln!("{line}");
            }
            ExitCode::from(1)
        }
        Failure::Quiet => ExitCode::from(1),
        Failure::Status(code) => ExitCode::from(code),
    }
}

/// `install`: each repository named, and each found under `--all` roots,
/// once; one that fails is reported and the others are still installed.
fn install(home: &Home, args: &InstallArgs) -> Result<(), Failure> {
    let mut targets: Vec<PathBuf> = Vec::new();
    let mut failed = 0;
    for repo in &args.repos {
        targets.push(std::fs::canonicalize(repo).unwrap_or_else(|_| repo.clone()));
    }
    for root in &args.all {
        match install::bare_repositories(root) {
            Ok(found) => {
                println!(
                    "quire: found {} bare {} under {}",
                    found.len(),
                    if found.len() == 1 {
                        "repository"
                    } else {
                        "repositories"
                    },
                    root.display()
                );
                targets.extend(found);
            }
            Err(e) => {
                report(e);
                failed += 1;
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.clone()));
    let existing = if args.force {
        install::Existing::ChainOrRepoint
    } else {
        install::Existing::Chain
    };
    let mut installed = 0;
    for repo in &targets {
        match install::run(home, repo, existing) {
            Ok(()) => installed += 1,
            Err(e) => {
                report(e);
                failed += 1;
            }
        }
    }
    if targets.len() > 1 || failed > 0 {
        println!(
            "quire: installed the hook into {installed} of {} repositories",
            targets.len()
        );
    }
    if installed > 0 {
        let (line, runs, found) = install::cron_line(home);
        println!(
            "quire: add this line to the crontab of this user (crontab -e), so that reconcile \
             repairs what a crash or a reboot leaves:"
        );
        println!("{line}");
        if !found {
            eprintln!(
                "quire-run: warning: {} does not exist: install quire-runs beside quire-run \
                 (cargo install puts both in one bin folder), or write its path in that line",
                runs.display()
            );
        }
    }
    if failed > 0 {
        Err(Failure::Quiet)
    } else {
        Ok(())
    }
}
