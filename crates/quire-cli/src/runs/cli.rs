use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quire_store::RunState;

/// List, show, follow and repair quire's CI runs
///
/// quire-runs reads and repairs the CI runs that quire-run recorded in quire's
/// home: for people at a terminal (tables, colors when stdout is a terminal and
/// NO_COLOR is unset), for scripts (--json, exit statuses) and for cron
/// (reconcile, prune). A run is one push of one ref: pending, then active while
/// a worker executes it, then complete, failed (with a failure kind) or
/// superseded (a newer push of its ref).
///
/// Human output goes to stdout; notes such as `no runs yet` go to stderr, so a
/// pipe sees only data. A reader that goes away (| head) is not an error. RUN
/// is a run id, a prefix of one or another part of one (`list` shows the
/// shortest) that matches a single run, in any case.
/// quire-runs never creates a home: a home that does not exist is an error.
#[derive(Debug, Parser)]
#[command(name = "quire-runs", version, propagate_version = true)]
#[command(after_long_help = "\
Exit status:
  0  it did what was asked
  1  it could not: one line `quire-runs: error: ...` on stderr, often
     followed by a `hint: ...` line (no home at the path, no run matches,
     the store is locked)

Examples:
  quire-runs list
      The newest runs, newest first.
  quire-runs list --state failed --ref main --json
      The failed runs of main, for a script.
  quire-runs watch --ref main --exit-status
      Follow the newest run of main to its end; exit 0 iff it completed.
  * * * * * quire-runs --home /srv/quire reconcile >/dev/null
      A crontab line: repair what a crash or a reboot left, every minute.

Environment:
  QUIRE_HOME
      The home, when --home is not given.
  XDG_DATA_HOME
      With neither --home nor QUIRE_HOME, the home is $XDG_DATA_HOME/quire.
  HOME
      With none of the above, the home is ~/.local/share/quire.
  NO_COLOR
      When set and not empty, no colors (colors appear only when stdout is a
      terminal anyway).
  COLUMNS
      The width list, show, watch, repos and caches fit their lines in (cut
      with an ellipsis, never wrapped); unset, the terminal's, when stdout is one. In a
      pipe without COLUMNS, lines are as long as what they say.
  TERM
      watch redraws its view in place on a terminal unless TERM is dumb.
  QUIRE_NOW
      An RFC 3339 instant used as now for ages, durations of active runs,
      list --since and prune (tests, reproducible reports).
  QUIRE_BUSY_TIMEOUT_MS
      How long to wait for another process's lock on the store (default
      10000).
  QUIRE_CONTAINMENT, QUIRE_PIDNS
      Passed on to the workers that reconcile and retry start (see
      quire-run(1)).

See also:
  git-push(1), crontab(5), sqlite3(1)
")]
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
    ///
    /// Lists runs, newest first: RUN (a short id: the shortest unique suffix of
    /// its id, at least 8 characters, which every command taking RUN accepts),
    /// REPO, REF (main for a branch, tag v1 for a tag), SHA (12 characters),
    /// STATE (failed (kind) for failures), DURATION, AGE and SUBJECT (the
    /// commit's subject). The filters combine; --state flags combine with OR.
    /// -R/--repo takes a repository's name (as quire-runs repos lists it), the
    /// name without .git, an earlier name or the path to its git directory;
    /// --ref takes a full ref, a branch or tag name (main matches
    /// refs/heads/main and refs/tags/main) or a glob (release/*); -b/--branch a
    /// branch or a glob; -c/--commit matches ids starting with the prefix;
    /// --since takes a span (90s, 20m, 1h30m, 3d, 2w). With no runs, prints `no
    /// runs yet` (or `no runs match`) on stderr.
    #[command(after_long_help = "\
Exit status:
  0  the runs were listed, even none
  1  an error, such as a --repo quire does not know (`no repository \"X\" is
     known`)

Examples:
  quire-runs list --repo app --since 2h
      The runs of app.git queued in the last two hours.
  quire-runs list --state failed --state superseded --limit 5
      The five newest runs that did not complete.
  quire-runs list --json | jq -r '.[].id'
      The ids, for a script.
")]
    List(ListArgs),
    /// Show a run with its jobs and steps (without RUN: the newest run)
    ///
    /// Shows a run: its id, repository and path, ref, commit, state, what a
    /// failure kind means and the failure detail, its times and duration, how
    /// its steps were sandboxed and its processes contained, for an active run
    /// its worker and what it runs now; then a table of its jobs in plan order,
    /// each followed by its steps, the files its jobs kept (artifacts, with the
    /// download command), and the notifiers that ran when it ended. --json
    /// prints the run as one object with its jobs, artifacts and notifications.
    #[command(after_long_help = "\
Exit status:
  0  the run was shown; with --exit-status, only if it completed
  1  no run matches RUN, or the prefix is ambiguous (the candidates are
     named); with --exit-status, also a run that failed, was superseded or
     has not ended

Examples:
  quire-runs show 01a2249c
      A run, by a prefix of its id.
  quire-runs show 01a2249c --exit-status >/dev/null && echo passed
      Its outcome, for a script.
")]
    Show(ShowArgs),
    /// Print a run's step output (without RUN: the newest run's)
    ///
    /// Prints the output of a run's steps in plan order, each step headed by
    /// `==> JOB step N: CMD <==` (no header with --step). A log is read from
    /// its file while there is one, else from the copy packed into the store
    /// once the run ended: the output is the same. --timestamps starts each
    /// line with the time quire read it; --stream keeps one stream. --follow
    /// keeps printing as the run writes, waiting for steps that have not
    /// started, until the run ends.
    #[command(after_long_help = "\
Exit status:
  0  the logs were printed; with --follow, the run completed
  1  no such run, job or step; with --follow, a run that failed or was
     superseded

Examples:
  quire-runs logs 01a2249c test --step 2
      The output of job test's second step.
  quire-runs logs 01a2249c --follow
      Everything the run prints, as it prints it.
")]
    Logs(LogsArgs),
    /// Follow a run's jobs until it ends (without RUN: the newest run)
    ///
    /// Follows a run's jobs until the run ends, then exits. Without RUN, the
    /// newest run (of --repo and --ref when given). On a terminal, a view
    /// redrawn in place: a line for the run and one per job with its state, how
    /// long it took and the step it runs now or how it failed; else a line per
    /// change (`job build started`, `job test failed in 59.0s (exit 101; step
    /// 1: cargo test)`), ending with the run's outcome. What the pipeline
    /// controls (job ids, commands, details) is printed with control characters
    /// escaped.
    #[command(after_long_help = "\
Exit status:
  0  the run ended (or stdout's reader went away); with --exit-status, only
     if it completed
  1  no run to watch, or an error; with --exit-status, a run that failed,
     was superseded or had not ended when the reader went away

Examples:
  quire-runs watch
      Follow the newest run until it ends.
  quire-runs watch --repo app --ref main --exit-status && deploy
      Wait for main's newest run of app.git and go on only if it completed.
")]
    Watch(WatchArgs),
    /// Write the files a run's jobs kept (artifacts) to a directory
    ///
    /// Writes the files a run's jobs kept (their artifacts) to --dir (default:
    /// the current directory) as DIR/JOB/PATH, each checked against the size
    /// and SHA-256 recorded when it was kept before it takes its name. Existing
    /// files are never overwritten: if any target exists, nothing is written.
    /// --job keeps to one job. A run that kept nothing is said on stderr.
    #[command(after_long_help = "\
Exit status:
  0  every file was written (or there was none)
  1  a target exists, a kept file no longer matches its record or is
     missing, or no such run or job

Examples:
  quire-runs download 01a2249c --job build --dir out
      Copy build's kept files to out/build/.
")]
    Download(DownloadArgs),
    /// Block until a run ends (without RUN: the newest run); exit 0 iff it
    /// completed
    ///
    /// Blocks until the run has ended, looking every --interval (default 1s),
    /// then prints `run ID STATE` (with the failure kind).
    #[command(after_long_help = "\
Exit status:
  0  the run completed
  1  it failed or was superseded, or an error (`quire-runs: error: ...` on
     stderr)

Examples:
  quire-runs wait 01a2249c && echo passed
      Wait for a run; go on only if it completed.
")]
    Wait(WaitArgs),
    /// Cancel a pending or active run (it fails as `cancelled`)
    ///
    /// Cancels a pending or active run: it fails with the kind cancelled, its
    /// running job is aborted and the rest skipped. Its worker notices within
    /// half a second and ends the running step; if the worker is gone, cancel
    /// ends the leftover processes itself. Prints `cancelled run ID (it was
    /// STATE)`.
    #[command(after_long_help = "\
Exit status:
  0  the run was cancelled
  1  it had already ended (`run ID is already STATE; there is nothing to
     cancel`), or no such run

Examples:
  quire-runs cancel 01a2249c
      Stop a run that is not worth finishing.
")]
    Cancel(RunArg),
    /// Queue a new run of the same repository, ref and commit
    ///
    /// Queues a new run of the same repository, ref and commit (superseding the
    /// ref's live run, if any) and starts workers for the pending runs while
    /// slots are free. Prints `queued run NEW, a retry of OLD`.
    #[command(after_long_help = "\
Exit status:
  0  the new run was queued
  1  no such run, or its repository is known by name only (from an upgraded
     store) until a push records its path

Examples:
  quire-runs retry 01a2249c
      Run the same commit again, after fixing what broke outside the
      repository.
")]
    Retry(RunArg),
    /// Delete old finished runs and their files; trim caches to cache_max_mb
    ///
    /// Deletes runs that ended longer than --older-than ago, with their jobs,
    /// steps, packed logs and files, except the newest --keep ended runs of
    /// each repository and ref; pending and active runs are never touched. Both
    /// default to [retention] in config.toml. Then it trims every repository's
    /// jobs' caches to cache_max_mb, least recently used first, and removes
    /// what interrupted cache saves left. --dry-run says what would go and
    /// changes nothing. With neither --older-than nor [retention] older_than,
    /// it is a usage error (exit 2).
    #[command(after_long_help = "\
Exit status:
  0  pruned (or, with --dry-run, reported)
  1  the store cannot be used

Examples:
  quire-runs prune --older-than 30d --keep 5
      Delete runs ended over 30 days ago, keeping the 5 newest of each ref.
  0 3 * * * quire-runs --home /srv/quire prune >/dev/null
      A crontab line: prune every night by config.toml's [retention].
")]
    Prune(PruneArgs),
    /// Fail runs whose worker is gone, end their leftover steps, start a
    /// worker for pending runs (safe to run from cron at any moment)
    ///
    /// Repairs what a crash left, safely at any moment: fails every active run
    /// whose worker is provably gone (its process is gone, or its lease ran
    /// out) as orphaned, ends the run's leftover processes (its cgroup, and
    /// every process carrying its QUIRE_RUN_ID), packs the logs of ended runs
    /// whose worker died before packing them, and starts a worker for pending
    /// runs when a slot is free. Runs whose worker is alive are never touched.
    /// Prints a line per thing done and a summary; --dry-run changes nothing.
    #[command(after_long_help = "\
Exit status:
  0  done (whatever it found)
  1  the store cannot be used

Examples:
  * * * * * quire-runs --home /srv/quire reconcile >/dev/null
      A crontab line: repair every minute.
  quire-runs reconcile --dry-run
      What cron would repair now.
")]
    Reconcile(ReconcileArgs),
    /// List the repositories quire knows, and whether git runs quire's hook
    ///
    /// Lists the repositories quire knows: REPO (the name --repo takes), PATH,
    /// HOOK (what git would run on a push now: quire, quire (another home), not
    /// quire's, missing, repository gone), RUNS and LAST RUN. A repository
    /// whose pushes would start no run here gets a warning on stderr, also when
    /// core.hooksPath sends git to another folder.
    #[command(after_long_help = "\
Exit status:
  0  it did what was asked
  1  it could not: one line `quire-runs: error: ...` on stderr, often
     followed by a `hint: ...` line (no home at the path, the store is
     locked)

Examples:
  quire-runs repos
      Check that git runs quire's hook in every repository.
")]
    Repos(ReposArgs),
    /// List the jobs' caches kept between runs
    ///
    /// Lists the jobs' caches the home keeps between runs: REPO, JOB, BRANCH,
    /// SIZE and LAST USED. prune trims them to cache_max_mb.
    #[command(after_long_help = "\
Exit status:
  0  it did what was asked
  1  it could not: one line `quire-runs: error: ...` on stderr, often
     followed by a `hint: ...` line (no home at the path, the store is
     locked)

Examples:
  quire-runs caches --json
      The caches with their paths, for a script.
")]
    Caches(CachesArgs),
    /// Serve the runs read-only as web pages, live logs, status badges and
    /// a JSON API
    ///
    /// Serves the home's runs read-only over HTTP: the run list (`/`, filters
    /// repo, ref, state as query parameters, paged with ?before=RUN), a run
    /// (`/runs/ID`), a job's logs followed live while it runs
    /// (`/runs/ID/jobs/JOB`), the repositories with the newest run of each
    /// branch (`/repos`), status badges (`/badge/REPO/BRANCH.svg`) and a JSON
    /// API (`/api/runs`, `/api/runs/ID`) whose bodies are exactly list --json's
    /// and show --json's. Only GET and HEAD are answered (405 otherwise);
    /// nothing a visitor sends changes anything. --listen is IP:PORT,
    /// 127.0.0.1:8080 by default (loopback: put it behind a reverse proxy with
    /// authentication to expose it; a non-loopback address is warned about).
    /// Prints `quire-runs serve: listening on http://ADDR/` with the address it
    /// bound, then a line per request on stderr. Runs until stopped. A --listen
    /// that is not IP:PORT is a usage error.
    #[command(after_long_help = "\
Exit status:
  0  never: it serves until a signal (Ctrl-C, SIGTERM) ends it
  1  the store cannot be opened (no home, an older schema: run quire-runs
     list once) or the address cannot be bound

Examples:
  quire-runs serve
      The web view on http://127.0.0.1:8080/.
  quire-runs serve --listen 127.0.0.1:0
      On a free port, printed on its first line.
")]
    Serve(ServeArgs),
    /// Print a completion script for a shell
    ///
    /// Prints quire-runs' completion script for bash, elvish, fish, powershell
    /// or zsh. It needs no home.
    #[command(after_long_help = "\
Examples:
  quire-runs completions bash > /usr/share/bash-completion/completions/quire-runs
      Complete quire-runs' commands and flags in bash, for every user.
  quire-runs completions fish > ~/.config/fish/completions/quire-runs.fish
      The same in fish.
")]
    Completions {
        /// The shell the script is for
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Words only the home knows, for the completion scripts (not for
    /// people)
    ///
    /// Prints run ids (the newest 200, newest first) or repository names,
    /// one a line, for the completion scripts `quire-runs completions
    /// bash|zsh|fish` prints, which call it with the --home on the line. Prints nothing
    /// where there is no home or no store.
    #[command(
        name = "complete-words",
        hide = true,
        after_long_help = "\
Exit status:
  0  always: a completion with nothing to offer offers nothing
  2  a usage error

Examples:
  quire-runs --home /srv/quire complete-words runs
      The run ids bash offers for `quire-runs --home /srv/quire show <TAB>`.
"
    )]
    CompleteWords {
        #[arg(value_name = "KIND")]
        kind: WordKind,
    },
    /// Print the manual page (roff) of quire-runs or of one of its
    /// commands, or write them all into a folder
    ///
    /// Prints quire-runs' manual page (roff), or that of one of its commands
    /// (`man list`: quire-runs-list(1)); with --dir, writes them all into a
    /// folder of man pages instead. It needs no home.
    #[command(after_long_help = "\
Examples:
  quire-runs man list | man -l -
      Read quire-runs-list(1).
  quire-runs man --dir /usr/local/share/man/man1
      Install every page of quire-runs, for man quire-runs and man
      quire-runs-list.
")]
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
    #[arg(short = 's', long, value_name = "S", value_parser = StateParser)]
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

/// What `complete-words` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WordKind {
    /// Run ids, newest first.
    Runs,
    /// Repository names, as `repos` lists them.
    Repos,
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
    /// leftovers, logs_packed, worker_started, cluster_jobs_ended, dry_run)
    #[arg(long)]
    pub json: bool,
}

/// `--state`: [`parse_state`], which names the states in its error, and
/// the five states as the argument's possible values, which completion
/// scripts offer and `--help` lists.
#[derive(Debug, Clone, Copy)]
struct StateParser;

impl clap::builder::TypedValueParser for StateParser {
    type Value = RunState;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<RunState, clap::Error> {
        parse_state.parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            RunState::ALL
                .iter()
                .map(|s| clap::builder::PossibleValue::new(s.as_str())),
        ))
    }
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
