//! `quire-run`: the side of quire that records runs. This release records a
//! run for a ref by hand (`trigger`); the post-receive hook, the worker that
//! executes runs and `validate` build on it.

use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

use clap::{Args, Parser, Subcommand};
use quire_core::lifecycle::NewRun;
use quire_core::{Home, Store};

/// Record CI runs for pushed refs.
#[derive(Debug, Parser)]
#[command(name = "quire-run", version, about, propagate_version = true)]
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
    /// Record a pending run for one ref of a bare repository, as a push would
    Trigger(TriggerArgs),
    /// Try quire end to end in a scratch directory: a bare repository, a
    /// real `git push` of a project with a pipeline, the run it records
    Demo(DemoArgs),
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
    /// given) [default: a new directory under $TMPDIR]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct TriggerArgs {
    /// The bare repository
    #[arg(long, value_name = "DIR")]
    git_dir: PathBuf,
    /// The ref: `refs/heads/main`, or `main` for a branch
    #[arg(value_name = "REF")]
    ref_name: String,
    /// The commit to run [default: the ref's tip]
    #[arg(value_name = "SHA")]
    sha: Option<String>,
}

mod demo;
mod local;

/// Why `quire-run` could not do what it was asked.
#[derive(Debug)]
enum Failure {
    Store(quire_core::Error),
    Git(String),
    /// A file or directory given on the command line cannot be used.
    Input(String),
    /// An invalid pipeline: one `FILE:LINE:COLUMN: message` per problem.
    Invalid(Vec<String>),
    /// The command already said what went wrong; just exit 1.
    Quiet,
}

impl From<quire_core::Error> for Failure {
    fn from(e: quire_core::Error) -> Failure {
        Failure::Store(e)
    }
}

/// Run `quire-run` with this process's arguments; returns its exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Trigger(args) => trigger(cli.home.as_deref(), args).map(drop),
        Command::Demo(args) => demo::run(cli.home.as_deref(), args),
        Command::Validate { file } => local::validate(file.as_deref()),
        Command::Exec(args) => local::exec(&local::ExecArgs {
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Store(e)) => {
            eprintln!("quire-run: error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(1)
        }
        Err(Failure::Git(message) | Failure::Input(message)) => {
            eprintln!("quire-run: error: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Invalid(lines)) => {
            for line in lines {
                eprintln!("{line}");
            }
            ExitCode::from(1)
        }
        Err(Failure::Quiet) => ExitCode::from(1),
    }
}

/// Record a run for the ref; returns its id and the home it went to.
fn trigger(home: Option<&Path>, args: &TriggerArgs) -> Result<(String, Home), Failure> {
    let git_dir = std::fs::canonicalize(&args.git_dir).map_err(|e| {
        Failure::Git(format!(
            "cannot open repository {}: {e}",
            args.git_dir.display()
        ))
    })?;
    let ref_name = full_ref(&git_dir, &args.ref_name)?;
    let rev = args.sha.as_deref().unwrap_or(&ref_name);
    let sha = rev_parse(&git_dir, &format!("{rev}^{{commit}}"))
        .ok_or_else(|| Failure::Git(format!("{rev} names no commit in {}", git_dir.display())))?;
    let repo = git_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| git_dir.display().to_string());

    let home = Home::resolve(home)?;
    let mut store = Store::open(&home)?;
    let created = store.create_run(&NewRun {
        repo: &repo,
        ref_name: &ref_name,
        sha: &sha,
        git_dir: &git_dir.to_string_lossy(),
        pushed_at_ms: None,
        previous_sha: None,
    })?;
    if let Some(old) = created.superseded {
        println!("quire: superseded run {old}");
    }
    let id = &created.run.id;
    println!("quire: queued run {id} for {ref_name} (quire-runs show {id})");
    Ok((created.run.id, home))
}

/// `main` means `refs/heads/main` when that branch exists.
fn full_ref(git_dir: &Path, given: &str) -> Result<String, Failure> {
    if given.starts_with("refs/") {
        return Ok(given.to_string());
    }
    for candidate in [format!("refs/heads/{given}"), format!("refs/tags/{given}")] {
        if rev_parse(git_dir, &candidate).is_some() {
            return Ok(candidate);
        }
    }
    Err(Failure::Git(format!(
        "{given:?} is neither a branch nor a tag of {}; give a full ref (refs/...)",
        git_dir.display()
    )))
}

fn rev_parse(git_dir: &Path, rev: &str) -> Option<String> {
    let output = Process::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options", rev])
        .output()
        .ok()?;
    let sha = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !sha.is_empty()).then_some(sha)
}
