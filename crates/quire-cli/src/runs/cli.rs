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
    /// Show a run with its jobs and steps
    Show(ShowArgs),
    /// Print a run's step output
    Logs(LogsArgs),
    /// Follow a run's jobs until it ends (without RUN: the newest run)
    Watch(WatchArgs),
    /// Write the files a run's jobs kept (artifacts) to a directory
    Download(DownloadArgs),
    /// Block until a run ends; exit 0 iff it completed
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

#[derive(Debug, Args)]
pub struct ReposArgs {
    /// Print a JSON array of repository objects (name, path, hook, warning,
    /// runs, last_run, ...)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CachesArgs {
    /// Print a JSON array of cache objects (repo, job, branch, size, run,
    /// last_used_at, path)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs of this repository: its name (as `quire-runs repos` lists
    /// it), the name without `.git`, or the path to its git directory
    #[arg(long, value_name = "R")]
    pub repo: Option<String>,
    /// Only runs of this ref: `refs/heads/main`, or `main` for a branch or tag
    #[arg(long = "ref", value_name = "REF")]
    pub ref_name: Option<String>,
    /// Only runs in this state (repeatable)
    #[arg(long, value_name = "S", value_parser = parse_state)]
    pub state: Vec<RunState>,
    /// Only runs of commits whose id starts with this
    #[arg(long, value_name = "PREFIX", value_parser = parse_hex)]
    pub sha: Option<String>,
    /// Only runs queued within this span ("2h", "3d")
    #[arg(long, value_name = "SPAN", value_parser = parse_span)]
    pub since: Option<Duration>,
    /// At most this many runs
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Print a JSON array of run objects (id, repo, ref, sha, state,
    /// failure_kind, failure_detail, times, ...)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArg {
    /// A run id, or a prefix of one that matches a single run
    #[arg(value_name = "RUN")]
    pub run: String,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run id, or a prefix of one that matches a single run
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Print the run as a JSON object with its jobs and steps, artifacts
    /// and notifications
    #[arg(long)]
    pub json: bool,
    /// Exit 0 iff the run completed, 1 otherwise (as `wait`, without waiting)
    #[arg(long)]
    pub exit_status: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamArg {
    Stdout,
    Stderr,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A run id, or a prefix of one that matches a single run
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Only this job
    #[arg(value_name = "JOB")]
    pub job: Option<String>,
    /// Only this step of the job (1, 2, ...)
    #[arg(long, value_name = "N", requires = "job")]
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
    /// A run id, or a prefix of one that matches a single run
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
    /// A run id, or a prefix of one that matches a single run
    #[arg(value_name = "RUN")]
    pub run: String,
    /// How often to look
    #[arg(long, value_name = "SPAN", default_value = "1s", value_parser = parse_span)]
    pub interval: Duration,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// A run id, or a prefix of one that matches a single run [default:
    /// the newest run, of --repo and --ref when given]
    #[arg(value_name = "RUN")]
    pub run: Option<String>,
    /// Without RUN: the newest run of this repository (as `list --repo`)
    #[arg(long, value_name = "R", conflicts_with = "run")]
    pub repo: Option<String>,
    /// Without RUN: the newest run of this ref (as `list --ref`)
    #[arg(long = "ref", value_name = "REF", conflicts_with = "run")]
    pub ref_name: Option<String>,
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

fn parse_hex(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("{text:?} is not a commit id prefix (hex digits)"))
    }
}
