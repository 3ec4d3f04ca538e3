use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quire_store::RunState;

/// List, show, follow and repair quire's CI runs.
#[derive(Debug, Parser)]
#[command(
    name = "quire-runs",
    version,
    about = "quire-runs: list, show and repair quire's runs",
    propagate_version = true
)]
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
    /// Show a run with its jobs and steps (without RUN: the newest run)
    Show(ShowArgs),
    /// Print a run's step output (without RUN: the newest run's)
    Logs(LogsArgs),
    /// Follow a run's jobs until it ends (without RUN: the newest run)
    Watch(WatchArgs),
    /// Write the files a run's jobs kept (artifacts) to a directory
    Download(DownloadArgs),
    /// Block until a run ends (without RUN: the newest run); exit 0 iff it
    /// completed
    Wait(WaitArgs),
    /// Cancel a pending or active run (it fails as `cancelled`)
    Cancel(RunArg),
    /// Queue a new run of the same repository, ref and commit
    Retry(RunArg),
    /// Delete old finished runs and their files; trim caches to cache_max_mb
    Prune(PruneArgs),
    /// Fail runs whose worker is gone, end their leftover steps, start a
    /// worker for pending runs (safe to run from cron at any moment)
    Reconcile(ReconcileArgs),
    /// List the repositories quire knows, and whether git runs quire's hook
    Repos(ReposArgs),
    /// List the jobs' caches kept between runs
    Caches(CachesArgs),
    /// Serve the runs read-only as web pages, live logs, status badges and
    /// a JSON API
    Serve(ServeArgs),
    /// Print a completion script for a shell
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of quire-runs or of one of its
    /// commands, or write them all into a folder
    Man(crate::manual::ManArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen on this address (IP:PORT; port 0 takes a free one). Any but
    /// a loopback address shows every run to whoever reaches it: put a
    /// reverse proxy with authentication in front
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

/// `--json [FIELDS]` and `-q/--jq EXPR`: JSON for scripts, whole or some
/// fields, or filtered through a jq program.
#[derive(Debug, Clone, Args)]
pub struct JsonArgs {
    /// Print JSON; with FIELDS (`id,state,ref`), only those fields of each
    /// object (an unknown field is refused, naming the fields there are)
    #[arg(long, value_name = "FIELDS", num_args = 0..=1, default_missing_value = "")]
    pub json: Option<String>,
    /// Filter the JSON through this jq program and print each result, strings
    /// raw (as `jq -r`); implies --json
    #[arg(short = 'q', long, value_name = "EXPR")]
    pub jq: Option<String>,
}

impl JsonArgs {
    /// Whether JSON was asked for.
    pub fn wanted(&self) -> bool {
        self.json.is_some() || self.jq.is_some()
    }
}

#[derive(Debug, Args)]
pub struct ReposArgs {
    #[command(flatten)]
    pub json: JsonArgs,
}

#[derive(Debug, Args)]
pub struct CachesArgs {
    #[command(flatten)]
    pub json: JsonArgs,
}

/// Which runs: `-R/--repo`, `--ref`, `-b/--branch` (for `list`, and for
/// `show`, `logs`, `watch` and `wait` without RUN: the newest of them).
#[derive(Debug, Clone, Args)]
pub struct ScopeArgs {
    /// Runs of this repository: its name (as `quire-runs repos` lists it),
    /// with or without `.git`, or the path to its git directory
    #[arg(short = 'R', long, value_name = "REPO")]
    pub repo: Option<String>,
    /// Runs of this ref: `refs/heads/main`, a branch or tag name (`main`,
    /// `v1.0`), or a glob of either (`release/*`, `refs/tags/v1.*`)
    #[arg(long = "ref", value_name = "REF", conflicts_with = "branch")]
    pub ref_name: Option<String>,
    /// Runs of this branch (`main`, or a glob: `release/*`); tags never match
    #[arg(short = 'b', long, value_name = "BRANCH")]
    pub branch: Option<String>,
}

impl ScopeArgs {
    pub fn scope(&self) -> crate::select::Scope {
        crate::select::Scope {
            repo: self.repo.clone(),
            ref_name: self.ref_name.clone(),
            branch: self.branch.clone(),
        }
    }
}

/// The `--repo`, `--ref` and `--branch` a RUN cannot be given with.
const SCOPE: [&str; 3] = ["repo", "ref_name", "branch"];

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Only runs in this state (repeatable)
    #[arg(short = 's', long, value_name = "S", value_parser = parse_state)]
    pub state: Vec<RunState>,
    /// Only runs of commits whose id starts with this (`--sha` is the same)
    #[arg(short = 'c', long = "commit", alias = "sha", value_name = "SHA", value_parser = parse_hex)]
    pub commit: Option<String>,
    /// Only runs queued within this span ("2h", "3d")
    #[arg(long, value_name = "SPAN", value_parser = parse_span)]
    pub since: Option<Duration>,
    /// At most this many runs (at least 1)
    #[arg(short = 'L', long, value_name = "N", default_value_t = 20, value_parser = parse_limit)]
    pub limit: usize,
    #[command(flatten)]
    pub json: JsonArgs,
}

#[derive(Debug, Args)]
pub struct RunArg {
    /// A run: its id, a prefix, or a part of one (`list` shows the shortest)
    #[arg(value_name = "RUN")]
    pub run: String,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run: its id, a prefix, or a part of one (`list` shows the shortest)
    /// [default: the newest run, of --repo, --ref or --branch when given]
    #[arg(value_name = "RUN", conflicts_with_all = SCOPE)]
    pub run: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub json: JsonArgs,
    /// Exit 0 iff the run completed, 1 otherwise (as `wait`, without waiting)
    #[arg(long)]
    pub exit_status: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamArg {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("one_job").args(["job", "job_flag"])))]
pub struct LogsArgs {
    /// A run: its id, a prefix, or a part of one (`list` shows the shortest)
    /// [default: the newest run, of --repo, --ref or --branch when given]
    #[arg(value_name = "RUN", conflicts_with_all = SCOPE)]
    pub run: Option<String>,
    /// Only this job
    #[arg(value_name = "JOB")]
    pub job: Option<String>,
    /// Only this job (as JOB; also without RUN)
    #[arg(short = 'j', long = "job", value_name = "JOB", conflicts_with = "job")]
    pub job_flag: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Only this step of the job (1, 2, ...)
    #[arg(long, value_name = "N", requires = "one_job")]
    pub step: Option<i64>,
    /// Keep printing as the run writes, until it ends; exit 0 iff it completed
    #[arg(long, short)]
    pub follow: bool,
    /// Start each line with the time it was read
    #[arg(long, short)]
    pub timestamps: bool,
    /// Only this stream
    #[arg(long, value_name = "STREAM")]
    pub stream: Option<StreamArg>,
    /// Only the logs of the steps that failed (the step that ended each
    /// failed job)
    #[arg(long, conflicts_with_all = ["follow", "step"])]
    pub failed: bool,
    /// Print the output as the steps wrote it, escape sequences and all
    /// (by default, control characters other than colours are escaped, so
    /// a log cannot clear the screen or retitle the terminal)
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// A run: its id, a prefix, or a part of one (`list` shows the shortest)
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Only this job's artifacts
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Write them here, as DIR/JOB/PATH (an existing file is never
    /// overwritten)
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// A run: its id, a prefix, or a part of one (`list` shows the shortest)
    /// [default: the newest run, of --repo, --ref or --branch when given]
    #[arg(value_name = "RUN", conflicts_with_all = SCOPE)]
    pub run: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// How often to look
    #[arg(short = 'i', long, value_name = "SPAN", default_value = "1s", value_parser = parse_span)]
    pub interval: Duration,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// A run: its id, a prefix, or a part of one (`list` shows the shortest)
    /// [default: the newest run, of --repo, --ref or --branch when given]
    #[arg(value_name = "RUN", conflicts_with_all = SCOPE)]
    pub run: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Exit 0 iff the run completed, 1 otherwise (as `show --exit-status`)
    #[arg(long)]
    pub exit_status: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete finished runs that ended longer ago than this ("30d", "12h")
    /// [default: retention.older_than in config.toml]
    #[arg(long, value_name = "SPAN", value_parser = parse_span)]
    pub older_than: Option<Duration>,
    /// Always keep this many newest finished runs of each (repo, ref)
    /// [default: retention.keep in config.toml, else 0]
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Say what would go, delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON (runs, bytes_freed, caches,
    /// cache_bytes_freed, cache_leftovers, dry_run)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Report what would change, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON (orphaned, live, awaiting_worker,
    /// leftovers, logs_packed, worker_started, dry_run)
    #[arg(long)]
    pub json: bool,
}

fn parse_state(text: &str) -> Result<RunState, String> {
    RunState::parse(text).ok_or_else(|| {
        let names: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
        format!("{text:?} is not a run state; one of: {}", names.join(", "))
    })
}

fn parse_span(text: &str) -> Result<Duration, String> {
    quire_model::clock::parse_span(text).ok_or_else(|| {
        format!("{text:?} is not a span; write e.g. \"90s\", \"20m\", \"2h\" or \"30d\"")
    })
}

fn parse_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("--limit must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a number of runs")),
    }
}

fn parse_hex(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("{text:?} is not a commit id prefix (hex digits)"))
    }
}
