//! `quire-run`: the side of quire that records and executes runs. git's
//! post-receive hook calls `quire-run hook`, which records a run per pushed
//! ref and starts a detached `quire-run work`; `trigger` does the same for
//! one ref by hand; `validate` and `exec` check and run a pipeline file
//! locally; `install` puts the hook into a bare repository.

mod ci_wait;
mod demo;
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

/// Record and execute CI runs for pushed refs
///
/// quire-run is the side of quire that records and executes CI runs of bare git
/// repositories. git's post-receive hook (written by `quire-run install`) calls
/// `quire-run hook` on every push: it records a run per pushed ref in the
/// home's SQLite store (superseding the ref's previous run), reads the pushed
/// commit's .quire/ci.toml, and starts a detached worker (`quire-run work`)
/// that checks the commit out and runs the pipeline's jobs. `quire-runs` lists,
/// shows and repairs the runs.
///
/// `trigger` records a run by hand, `validate` and `exec` check and run a
/// pipeline file locally without a store, `migrate-from` takes an upstream
/// quire home over, and `demo` shows all of it end to end in a scratch folder.
#[derive(Debug, Parser)]
#[command(name = "quire-run", version, propagate_version = true)]
#[command(after_long_help = "\
Examples:
  quire-run --home /srv/quire install --all /srv/git
      Install the hook into every bare repository under /srv/git; every push
      then records runs in /srv/quire.
  quire-run --home /srv/quire trigger --git-dir /srv/git/app.git main --wait
      Run the tip of main by hand, in the foreground, and exit 0 iff it
      completed.
  quire-run validate .quire/ci.toml
      Check a pipeline file before pushing it.
  quire-run demo
      Try quire end to end in a scratch folder, removed afterwards.

Environment:
  QUIRE_HOME
      The home, when --home is not given.
  XDG_DATA_HOME
      With neither --home nor QUIRE_HOME, the home is $XDG_DATA_HOME/quire.
  HOME
      With none of the above, the home is ~/.local/share/quire.
  GIT_DIR
      hook: the repository when --git-dir is not given (git sets it for its
      hooks).
  GIT_PUSH_OPTION_COUNT, GIT_PUSH_OPTION_N
      hook: the push options git hands over (git push -o ci.skip: no run;
      git push -o ci.wait: wait for the runs).
  QUIRE_BUSY_TIMEOUT_MS
      How long to wait for another process's lock on the store (default
      10000). A hook that gives up tells the pusher which refs got no run.
  QUIRE_CONTAINMENT
      How a worker (or trigger --wait, exec) contains the processes of its
      runs, for tests and benchmarks: unset, auto or cgroup (a cgroup per
      job where it can make one, else the worker as their subreaper),
      subreaper (never a cgroup), off (neither). Workers inherit it from the
      hook; steps never see it.
  QUIRE_PIDNS
      off keeps workers out of a pid namespace of their own (where steps see
      only their run's processes); for tests. Inherited like
      QUIRE_CONTAINMENT.
  TMPDIR
      Where demo and exec make their folders when not told where.
  PATH
      git must be on it: workers check out a tree of over 2,000 files, or
      with a blob over 4 MiB, with git read-tree.

See also:
  git-push(1), githooks(5), crontab(5)
")]
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
    ///
    /// The hook `quire-run install` writes runs it. It reads the whole push
    /// first and, for each ref, tells the pusher on stdout what happened (git shows it as `remote:
    /// quire: ...`): a deleted ref supersedes its live run; `git push -o
    /// ci.skip`, `[skip ci]` or `[ci skip]` in the tip's message, and a tip
    /// without .quire/ci.toml record nothing (the ref's live run is still
    /// superseded); an invalid pipeline is recorded failed at once
    /// (pipeline-invalid) with each error and its line and column; otherwise a
    /// pending run is recorded (`quire: queued run ID for REF`), superseding
    /// the ref's live run. An annotated tag runs the commit it points to.
    ///
    /// Then it starts a detached worker per queued run while worker slots
    /// (max_workers) are free, and returns without waiting for the pipeline.
    /// With `git push -o ci.wait` it keeps the push open until the runs it
    /// recorded have ended, telling the pusher each job's start and end, a
    /// failed step's last 20 lines and each run's outcome; Ctrl-C ends only the
    /// waiting, never the runs.
    ///
    /// If the home does not exist, nothing is created: the pusher is told, with
    /// the trigger command that records each ref's run once the home is back.
    /// With --previous-hook, that hook (the one `install` found in the
    /// repository and kept as post-receive.before-quire) runs first, with the
    /// same input.
    #[command(after_long_help = "\
Exit status:
  0  every line was read and recorded (whatever the runs' outcomes)
  1  a line was malformed (the others are still recorded), or the push could
     not be recorded (the error follows on stderr)
  N  the previous hook's status, when it failed. git ignores a post-receive
     hook's status: the push succeeds either way

Examples:
  git push -o ci.wait
      From a clone: push, and wait for the push's runs, seeing each job
      start and end.
  git push -o ci.skip
      Push without recording a run.
")]
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
    /// The pre-receive hook of earlier installs: refuse a push that writes
    /// refs/notes/ci (quire's notes), accept every other
    ///
    /// `quire-run install` no longer writes a pre-receive hook: it hides
    /// refs/notes/ci from pushes (receive.hideRefs), so that git refuses a
    /// push of it before any hook runs, and it removes the pre-receive hook
    /// an earlier install wrote. That hook ran this command when it ran a kept
    /// hook first, and still does until `install` runs again. It refuses the whole push
    /// (git's pre-receive is all or nothing: the other refs of the push are refused
    /// too) when one of them updates, creates or deletes refs/notes/ci, which
    /// only quire writes (each ended run's result as a git note): the pusher
    /// sees `remote: quire: refs/notes/ci is written by quire ... push other
    /// refs`. Every other push is accepted. It compares ref names and nothing
    /// more: it opens no home, no store and no object.
    ///
    /// With --previous-hook, that hook (the pre-receive hook `install` found in
    /// the repository and kept as pre-receive.before-quire) runs first, with
    /// the same input; when it refuses, the push is refused with its status.
    #[command(after_long_help = "\
Exit status:
  0  the push is accepted
  1  the push writes refs/notes/ci: refused
  N  the previous hook's status, when it refused the push

Examples:
  git push origin refs/notes/ci
      From a clone: refused, with the reason; quire's notes are fetched, not
      pushed.
")]
    PreReceive {
        /// The pre-receive hook that was there before quire's: run first,
        /// with the same input (`install` passes it); its refusal refuses
        /// the push; a missing one is skipped
        #[arg(long, value_name = "HOOK")]
        previous_hook: Option<PathBuf>,
    },
    /// Record a run for one ref of a bare repository, as a push would
    ///
    /// The same as a push of one ref, by hand: REF is the ref the run is for (a
    /// full ref, or a branch or tag name); REV is the commit to run, by default
    /// the ref's tip: a full or short id (at least 4 hex digits), a ref, or a
    /// revision such as main~1 or v1.0^, resolved as git rev-parse would. A
    /// short id that several objects start with is an error naming each. Prints
    /// the hook's lines; a commit whose message says [skip ci] gets no run
    /// unless --force.
    ///
    /// Without --wait it starts a worker like the hook. With --wait it executes
    /// the run in the foreground (or waits for the worker that claimed it
    /// first), prints each job's start and end and the run's outcome as git
    /// push -o ci.wait does (`quire: job build started`, `quire: run ID
    /// complete in 3.1s`), and exits with the outcome; Ctrl-C cancels the run
    /// it executes. trigger never creates a home: install does.
    #[command(after_long_help = "\
Exit status:
  0  the run was recorded (or there was nothing to record); with --wait, the
     run completed
  1  an error (no home, the repository cannot be opened, REF is neither a
     branch nor a tag, REV names no commit or is ambiguous); with --wait,
     also a run that failed or was superseded, and no run recorded

Examples:
  quire-run trigger --git-dir /srv/git/app.git main --wait
      Run the tip of main now, here, and exit 0 iff it completed.
  quire-run trigger --git-dir /srv/git/app.git main main~1
      Record a run of main's previous commit; a worker executes it.
  quire-run trigger --git-dir /srv/git/app.git refs/tags/v1.0 --force
      Run the tag's commit even though its message says [skip ci].
")]
    Trigger(TriggerArgs),
    /// Execute pending runs until none is left, then exit
    ///
    /// A worker, as the hook starts it: takes a worker slot (exits, after
    /// trying for about a second, if max_workers workers run), claims pending
    /// runs (round-robin over repositories, oldest first within one, none of a
    /// repository already holding max_workers_per_repo workers) and executes
    /// each: the commit is checked out into HOME/runs/ID/workspace, the jobs
    /// run with every event recorded as it happens, its step logs of at most
    /// 64 KiB are packed into the store once it ended, and the workspace is
    /// deleted (unless keep_workspaces) beside the next run. SIGINT or SIGTERM
    /// cancels the run it executes and makes it exit. It writes to
    /// HOME/worker.log when started by the hook, and exits when the queue is
    /// empty and its runs' workspaces are gone.
    #[command(after_long_help = "\
Examples:
  quire-run --home /srv/quire work
      Execute what is pending now, in the foreground (reconcile starts
      workers by itself).
")]
    Work,
    /// Write the git note and run the `[[notify]]` commands of every run
    /// that ended and was not announced yet, then exit (started by whoever
    /// ends runs; safe to run by hand or from cron)
    ///
    /// For every run that ended and no announcer took yet, oldest first: writes
    /// its result as a git note on its commit under refs/notes/ci (unless
    /// notes = false) and runs the [[notify]] commands of config.toml that match it,
    /// with the run's JSON on stdin, recording how each ended (quire-runs show
    /// lists them). Whoever ends runs starts it, detached; it is safe to run by
    /// hand or from cron, beside other announcers.
    #[command(after_long_help = "\
Exit status:
  0  nothing is left to announce, even when a note or a notifier failed
     (recorded, and said on stderr)
  1  config.toml is invalid, or the store cannot be written

Examples:
  git fetch origin refs/notes/ci:refs/notes/ci && git log --notes=ci
      In a clone: read the results quire wrote as notes.
")]
    Announce,
    /// Install quire's post-receive hook into bare repositories, keeping a
    /// hook that was there (it runs first), and keep pushes off refs/notes/ci
    ///
    /// Writes quire's hook into each bare repository named, and into every
    /// bare repository under each --all ROOT (a directory holding HEAD,
    /// objects/ and refs/ whose config says core.bare = true; the walk enters
    /// no repository or work tree, follows no link, and skips an unreadable
    /// folder with a warning). The hook is post-receive, which records the
    /// runs: it calls this quire-run, by absolute path, with the home install
    /// was given, which install creates if needed. It also sets
    /// receive.advertisePushOptions, so that git push -o ci.skip and -o
    /// ci.wait work; adds receive.hideRefs = refs/notes/ci to the
    /// repository's config (unless an entry there hides it already), so
    /// that git refuses, ref by ref, a push that creates,
    /// updates or deletes quire's notes ("deny updating a hidden ref"); and
    /// records the repository in the store. The pre-receive hook an earlier
    /// install wrote for that is removed, and the pre-receive hook it ran
    /// first, if any, put back as hooks/pre-receive.
    ///
    /// A hook that is already there is never deleted: another program's
    /// post-receive hook is moved to hooks/post-receive.before-quire and
    /// quire's hook runs it first on every push, with the same input, its
    /// output reaching the pusher. Installing again changes nothing (one
    /// chain).
    /// quire's hook for another home is refused unless --force, which points it
    /// at this home. A repository that fails is reported and the others are
    /// still installed.
    ///
    /// It warns when core.hooksPath makes git look for hooks elsewhere (and
    /// says where the hook would have to go), and when quire cannot read the
    /// repository. Repositories of SHA-1 and of SHA-256 ids are both read.
    ///
    /// Once a repository got the hook, it prints the crontab line that runs
    /// quire-runs reconcile every minute: quire-runs by the absolute path of
    /// the one beside this quire-run (cron's PATH does not find it by name),
    /// with --home, its output appended to HOME/reconcile.log. It warns when
    /// there is no quire-runs beside it.
    #[command(after_long_help = "\
Exit status:
  0  every repository got the hooks
  1  some could not (each said on stderr as `quire-run: error: ...`); the
     others got it

Examples:
  quire-run --home /srv/quire install /srv/git/app.git
      Every push to app.git now records a run in /srv/quire.
  quire-run --home /srv/quire install --all /srv/git
      The same for every bare repository under /srv/git.
")]
    Install(InstallArgs),
    /// Take an upstream quire home (its quire.db at any version, its run
    /// logs, its repos/) into this home, which must not have a store yet;
    /// the source is only read
    ///
    /// Takes an upstream quire home (DIR/quire.db at any upstream version 1-11,
    /// DIR/runs/, DIR/repos/) into this home, which must not have a store yet:
    /// every run, job and step is kept (counted before and after), step logs
    /// are copied where quire-runs logs finds them, repos_root is set to
    /// DIR/repos and its bare repositories are recorded by path. Runs upstream
    /// left pending or active are failed (orphaned) at once: they never run
    /// here and are never announced (no git note, no notify). With
    /// --install-hooks, quire's hook is installed into each, upstream's kept as
    /// hooks/post-receive.upstream (not run). The source is only read; it
    /// refuses while upstream has its store open, unless --force (a read-only
    /// snapshot).
    #[command(after_long_help = "\
Exit status:
  0  the home was taken over
  1  nothing was created: DIR is not an upstream home, upstream is running,
     this home already has a store, or the store is of another program

Examples:
  quire-run --home /srv/quire migrate-from /var/quire --install-hooks
      Move from upstream quire to quire, hooks included.
")]
    MigrateFrom(MigrateArgs),
    /// Check a pipeline file; print the jobs in the order they would run,
    /// or every error with its line and column (exit 1)
    ///
    /// Checks a pipeline file (default .quire/ci.toml) as the hook would.
    /// Valid: prints `ok: FILE is valid; jobs in the order they run:` and a
    /// line per job. Invalid: prints the problems as FILE:LINE:COLUMN: message
    /// on stderr (the first only for a TOML or type error, else every one, up
    /// to 50). The limits (max_pipeline_kb, max_jobs, max_steps) are the home's
    /// config.toml's when there is one, else the defaults.
    #[command(after_long_help = "\
Exit status:
  0  the pipeline is valid
  1  it is not, or the file cannot be read

Examples:
  quire-run validate .quire/ci.toml
      Check the pipeline before pushing it.
")]
    Validate {
        /// The pipeline file [default: .quire/ci.toml]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Run a pipeline in a local directory, without a repository or a store;
    /// exit 0 iff every job that had to pass passed
    ///
    /// Runs a pipeline in a local directory, without a repository or a store:
    /// the steps run in --workspace (default: the current directory, which they
    /// may change), FILE defaults to WORKSPACE/.quire/ci.toml, --ref (default:
    /// the workspace's checked-out branch, else main) decides `when` filters,
    /// and logs, events.jsonl and kept artifacts go to --logs (default: a new
    /// folder under TMPDIR). Prints each job's outcome as it happens and where
    /// the logs are. Secrets and limits come from the home's config.toml when
    /// there is one; jobs' caches are not kept. Ctrl-C ends the running step.
    #[command(after_long_help = "\
Exit status:
  0  the run completed: every job that had to pass passed
  1  it did not, it was interrupted, or the pipeline or a secret could not
     be used

Examples:
  quire-run exec --ref main
      Run this checkout's pipeline here as a push of main would.
")]
    Exec(ExecArgs),
    /// One job of a run on a cluster's node (started by the worker through
    /// the cluster's scheduler, e.g. Slurm's srun; not for people)
    ///
    /// Reads the job, its commit and its cache on stdin, runs the job's
    /// steps in node-local scratch with the worker's sandbox and
    /// containment, and streams the log, events, artifacts and saved cache
    /// back on stdout (the operations guide, "Running jobs on a Slurm
    /// cluster"). SIGTERM ends the steps as a cancel.
    #[command(
        hide = true,
        after_long_help = "\
Exit status:
  0  the job's outcome was reported on stdout (whatever it was)
  1  the job could not be read, or the outcome could not be written
  2  a usage error

Examples:
  srun --export=NONE -- quire-run node --scratch /scratch
      What the worker runs on a node for each job (its stdin the job).
"
    )]
    Node(NodeArgs),
    /// Try quire end to end in a scratch directory: a bare repository with
    /// the hook installed, a real `git push` of a project with a pipeline,
    /// the run it executes
    ///
    /// Tries quire end to end in a scratch folder (default: a new one under
    /// TMPDIR): a bare repository with the hook installed, a work tree holding
    /// a project with a two-job pipeline, a real git push, the run it executes,
    /// and quire-runs show of it. The folder is removed at the end unless
    /// --keep (or --dir or --home, or a run that did not complete): then its
    /// path and the commands to look further are printed, quire-runs by its
    /// full path.
    #[command(after_long_help = "\
Exit status:
  0  the run completed
  1  it did not, or the demo could not be set up (git missing, DIR already
     holds a demo)

Examples:
  quire-run demo
      Watch one push run, leaving nothing behind.
  quire-run demo --keep
      The same, keeping the home, the repository and the work tree to look
      further.
")]
    Demo(DemoArgs),
    /// Print a completion script for a shell
    ///
    /// Prints quire-run's completion script for bash, elvish, fish, powershell
    /// or zsh. It needs no home.
    #[command(after_long_help = "\
Examples:
  quire-run completions bash > /usr/share/bash-completion/completions/quire-run
      Complete quire-run's commands and flags in bash, for every user.
  quire-run completions zsh > ~/.zfunc/_quire-run
      The same in zsh (~/.zfunc on fpath).
")]
    Completions {
        /// The shell the script is for
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of quire-run or of one of its
    /// commands, or write them all into a folder
    ///
    /// Prints quire-run's manual page (roff), or that of one of its commands
    /// (`man install`: quire-run-install(1)); with --dir, writes them all into
    /// a folder of man pages instead. It needs no home.
    #[command(after_long_help = "\
Examples:
  quire-run man install | man -l -
      Read quire-run-install(1).
  quire-run man --dir /usr/local/share/man/man1
      Install every page of quire-run, for man quire-run and man
      quire-run-install.
")]
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
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".",
        hide_default_value = true
    )]
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
struct NodeArgs {
    /// Where workspaces go [default: $TMPDIR, else /tmp]
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
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

/// The clap definition of `quire-run`, each command's help in its doc
/// comment and `after_long_help` (`manual::finish`): what it parses, and
/// what --help, completions, man pages and docs/cli-reference.md are made
/// from.
pub fn command() -> clap::Command {
    crate::manual::finish(<Cli as clap::CommandFactory>::command())
}

/// Run `quire-run` with this process's arguments; returns its exit status.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The hook file's first line (`#!QUIRE_RUN hook-file`): git's every
    // push, so no command line is built for it.
    if let [_, first, path] = &args[..]
        && first == hook::HOOK_FILE
    {
        return match hook::from_file(std::path::Path::new(path)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => e.report("quire-run"),
        };
    }
    let matches = crate::manual::matches(<Cli as clap::CommandFactory>::command(), command, args);
    let cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let home = || Home::resolve(cli.home.as_deref()).map_err(CommandError::from);
    let result = match &cli.command {
        Command::Hook {
            git_dir,
            previous_hook,
        } => hook::main(home, git_dir.as_deref(), previous_hook.as_deref()),
        Command::PreReceive { previous_hook } => pre_receive::main(previous_hook.as_deref()),
        Command::Trigger(args) => home().and_then(|home| trigger::run(&home, args)),
        Command::MigrateFrom(args) => home().and_then(|home| migrate::run(&home, args)),
        Command::Work => home().and_then(|home| Ok(quire_worker::work::run(&home)?)),
        Command::Announce => home().and_then(|home| Ok(quire_worker::announce::run(&home)?)),
        Command::Install(args) => home().and_then(|home| install(&home, args)),
        Command::Validate { file } => local::validate(cli.home.as_deref(), file.as_deref()),
        Command::Node(args) => {
            let cancel = quire_exec::exec::Cancel::default();
            quire_worker::interrupt::catch_into(cancel.flag());
            quire_worker::node::serve_isolated(args.scratch.as_deref(), &cancel).map_err(|e| {
                eprintln!("quire-run node: {e}");
                CommandError::reported()
            })
        }
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
                Err(CommandError::reported())
            }
        }),
        Command::Demo(args) => demo::run(cli.home.as_deref(), args),
        Command::Completions { shell } => {
            crate::manual::print_completion(*shell, command()).map(drop)
        }
        Command::Man(args) => crate::manual::print_man(command(), args).map(drop),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report("quire-run"),
    }
}

/// `install`: each repository named, and each found under `--all` roots,
/// once; one that fails is reported and the others are still installed.
fn install(home: &Home, args: &InstallArgs) -> Result<(), CommandError> {
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
                e.report("quire-run");
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
                e.report("quire-run");
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
        Err(CommandError::reported())
    } else {
        Ok(())
    }
}
