//! `quire-run demo`: quire end to end on its embedded defaults, in a scratch
//! directory, with real git.

use std::path::Path;

use std::time::{Duration, Instant};

use quire_store::query::ListFilter;
use quire_store::{Home, RunState, Store};

use crate::error::CommandError;
use crate::run::DemoArgs;

const PIPELINE: &str = r#"# quire's pipeline for this demo project
[env]
GREETING = "hello from quire"

[jobs.build]
inputs = ["quire/push"]
sh = ["echo \"$GREETING\"", "test -f README.md"]

[jobs.test]
inputs = ["build"]
sh = [["sh", "-c", "grep -q quire README.md"]]
timeout = "1m"
"#;

pub(crate) fn run(home: Option<&Path>, args: &DemoArgs) -> Result<(), CommandError> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!(
            "quire-demo-{}-{}",
            std::process::id(),
            quire_model::clock::now_ms()
        )),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| CommandError::io(format!("cannot create {}", dir.display()), e))?;
    let dir = std::fs::canonicalize(&dir)
        .map_err(|e| CommandError::io(format!("cannot open {}", dir.display()), e))?;
    if dir.join("app.git").exists() || dir.join("app").exists() {
        return Err(CommandError::git(format!(
            "{} already holds a demo; pass --dir with a new directory",
            dir.display()
        )));
    }
    // Only a scratch folder the demo made, holding the demo's own home, is
    // removed at the end.
    let scratch = !args.keep && args.dir.is_none() && home.is_none();
    match demo(&dir, home, scratch) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!(
                "quire: the demo stopped; what it made is in {} (remove it when done)",
                dir.display()
            );
            Err(e)
        }
    }
}

/// The demo in `dir`; Ok with its outcome once its run ended (the folder
/// removed when `scratch`), Err when it stopped before.
fn demo(
    dir: &Path,
    home: Option<&Path>,
    scratch: bool,
) -> Result<Result<(), CommandError>, CommandError> {
    let home = home.map_or_else(|| dir.join("home"), Path::to_path_buf);
    let bare = dir.join("app.git");
    let work = dir.join("app");

    println!("quire demo in {}", dir.display());
    let home = Home::at(home);
    git(dir, &["init", "--quiet", "--bare", path(&bare)?])?;
    crate::run::install::run(&home, &bare, crate::run::install::Existing::Chain)?;
    git(dir, &["init", "--quiet", "-b", "main", path(&work)?])?;
    write(&work.join("README.md"), "# app\n\nBuilt by quire.\n")?;
    write(&work.join(".quire/ci.toml"), PIPELINE)?;
    git(&work, &["add", "README.md", ".quire/ci.toml"])?;
    git(
        &work,
        &["commit", "--quiet", "-m", "app with a two-job pipeline"],
    )?;
    println!("$ git push {} main", bare.display());
    // The hook's lines come back as `remote: quire: ...` on stderr.
    let pushed = quire_worker::git::command_in(&work)
        .args(["push", path(&bare)?, "main"])
        .envs(identity())
        .status()
        .map_err(|e| CommandError::git(format!("cannot run git: {e}")))?;
    if !pushed.success() {
        return Err(CommandError::git("git push failed"));
    }

    let store = Store::open(&home)?;
    // The hook recorded the run before the push returned: it is the newest.
    let newest = store.list_runs(&ListFilter {
        limit: 1,
        ..ListFilter::default()
    })?;
    let id = newest.first().map(|run| run.id.clone()).ok_or_else(|| {
        CommandError::input("the push recorded no run; see the remote: lines above")
    })?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let run = crate::select::wait_terminal(&store, &id, Duration::from_millis(100), || {
        Instant::now() > deadline
    })?
    .ok_or_else(|| {
        CommandError::input(format!(
            "run {id} did not finish within two minutes; see `quire-runs show {id}`"
        ))
    })?;
    let home_arg = home.dir().display().to_string();
    // What to type to look again, by the binary's full path (it need not
    // be on PATH), only where the folder stays to be looked at.
    let runs = quire_runs_command();
    let kept = !(scratch && run.state == RunState::Complete);
    println!();
    if kept {
        println!("$ {runs} --home {home_arg} show {}", run.id);
    } else {
        println!("The run, as `show` prints it:");
    }
    crate::runs::main_with(["quire-runs", "--home", &home_arg, "show", &run.id]);
    println!();
    let outcome = if run.state == RunState::Complete {
        Ok(())
    } else {
        Err(CommandError::reported())
    };
    // A failed run is kept to be looked at.
    if scratch && outcome.is_ok() {
        drop(store);
        // The worker writes the run's note and packs its logs after the
        // run ended: the folder goes once it has exited.
        let worker_done = run.worker.as_ref().is_none_or(|worker| {
            quire_exec::processes::exited_within(worker.pid, Duration::from_secs(60))
        });
        let removed = if worker_done {
            std::fs::remove_dir_all(dir).map_err(|e| e.to_string())
        } else {
            Err("its worker is still running".to_string())
        };
        match removed {
            Ok(()) => {
                println!(
                    "quire: removed the demo's folder {}; `{} demo --keep` keeps it (the home, the repository and a work tree) to look further",
                    dir.display(),
                    quire_run_command()
                );
                return Ok(outcome);
            }
            Err(why) => println!("quire: could not remove {} ({why})", dir.display()),
        }
    }
    println!(
        "Kept in {}: home/ (the home, its store), app.git (the repository, with quire's hook), app/ (a work tree); remove it when done.",
        dir.display()
    );
    println!("Look further:");
    println!("  {runs} --home {home_arg} logs {}", run.id);
    println!("  {runs} --home {home_arg} show {} --json", run.id);
    println!("  {runs} --home {home_arg} list");
    println!("Push again from {} to run it again.", work.display());
    Ok(outcome)
}

fn identity() -> [(&'static str, &'static str); 4] {
    [
        ("GIT_AUTHOR_NAME", "quire demo"),
        ("GIT_AUTHOR_EMAIL", "demo@quire.invalid"),
        ("GIT_COMMITTER_NAME", "quire demo"),
        ("GIT_COMMITTER_EMAIL", "demo@quire.invalid"),
    ]
}

/// How to run quire-runs from here: the binary beside this one, or (in a
/// checkout where only quire-run was built) through cargo.
fn quire_runs_command() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("quire-runs")))
        .filter(|candidate| candidate.is_file())
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| "cargo run --release --bin quire-runs --".to_string())
}

/// This binary, by its full path (`cargo run` puts it under target/).
fn quire_run_command() -> String {
    std::env::current_exe()
        .map(|exe| exe.display().to_string())
        .unwrap_or_else(|_| "quire-run".to_string())
}

fn path(p: &Path) -> Result<&str, CommandError> {
    p.to_str()
        .ok_or_else(|| CommandError::input(format!("{} is not valid UTF-8", p.display())))
}

fn write(file: &Path, text: &str) -> Result<(), CommandError> {
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| CommandError::io(format!("cannot create {}", parent.display()), e))?;
    }
    std::fs::write(file, text)
        .map_err(|e| CommandError::io(format!("cannot write {}", file.display()), e))
}

/// Run git with an identity of its own, so the demo works on a machine
/// where git has none configured, hardened as all of quire's git is (the
/// machine's git configuration plays no part).
fn git(cwd: &Path, args: &[&str]) -> Result<(), CommandError> {
    let out = quire_worker::git::command_in(cwd)
        .args(args)
        .envs(identity())
        .output()
        .map_err(|e| CommandError::git(format!("cannot run git: {e}; is git installed?")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CommandError::git(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
