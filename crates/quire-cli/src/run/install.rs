//! `quire-run install REPO.git... [--all ROOT]... [--force]`: put quire's
//! post-receive hook (record the runs) into bare repositories, and hide
//! `refs/notes/ci`, which only quire writes, from pushes
//! (`receive.hideRefs`: git refuses a push of it before any hook runs). A
//! hook that was there already is never deleted: it is kept as
//! `post-receive.before-quire` and quire's hook runs it first, with the
//! same input.
//!
//! Installs before that also wrote a pre-receive hook that refused the
//! notes ref; `install` removes it, and puts back the pre-receive hook it
//! ran first, if there was one.

use quire_worker::git::{HOOK_MARK, PRE_RECEIVE_MARK};
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use quire_store::repos::Registration;
use quire_store::{Home, Store};
use quire_worker::config::Config;

use crate::error::CommandError;
use crate::run::hook::register;
use quire_worker::git::Repo;

/// Where `migrate-from` keeps upstream quire's hook (not run: it would
/// record every push in upstream's store too).
const UPSTREAM_HOOK: &str = "post-receive.upstream";

use quire_view::text::sh_quoted as quoted;

/// The hook quire installs: its name in `hooks/`, and its template
/// (from hooks/ in this repository).
const HOOK: &str = "post-receive";
const TEMPLATE: &str = include_str!("../../../../hooks/post-receive");

/// Where another program's post-receive hook is kept, run first by quire's.
pub(crate) const POST_RECEIVE_KEPT: &str = "post-receive.before-quire";

/// What follows `hook` on the hook's `exec` line when it runs the hook
/// kept as `kept` first.
pub(crate) fn previous_arg(kept: &str) -> String {
    format!(" \\\n    --previous-hook \"$(dirname \"$0\")/{kept}\"")
}

/// The hook's first line: git then has the kernel run `quire-run
/// hook-file HOOK` with no shell between (which costs a push as much as a
/// third of quire-run's own start), and quire-run reads the `exec` line
/// below it. `#!/bin/sh` when this quire-run's path cannot be written
/// there: a blank in it, or too long for every kernel (127 bytes).
fn shebang(exe: &Path) -> String {
    let direct = exe.to_str().and_then(|path| {
        let line = format!("#!{path} {}", crate::run::hook::HOOK_FILE);
        let plain = path.bytes().all(|b| b.is_ascii_graphic());
        (plain && line.len() <= 127).then_some(line)
    });
    direct.unwrap_or_else(|| "#!/bin/sh".to_string())
}

/// Where quire's pre-receive hook of earlier installs kept the
/// pre-receive hook it ran first.
const PRE_RECEIVE_KEPT: &str = "pre-receive.before-quire";

/// What to do with a post-receive hook that is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Another program's hook is kept as `post-receive.before-quire` and
    /// run first; quire's hook for another home is refused.
    Chain,
    /// As `Chain`, but quire's hook for another home is replaced (`--force`).
    ChainOrRepoint,
    /// Another program's post-receive hook is kept as
    /// `post-receive.upstream`, and not run (`migrate-from`: it is upstream
    /// quire's).
    KeepBeside,
}

/// The hook quire writes: this binary, this home, and the previous hook
/// when there is one.
pub(crate) fn script(exe: &Path, home: &Path, previous: bool) -> String {
    let (comment, arg) = if previous {
        (
            format!(
                "\n# The {name} hook that was here before, kept as {kept},\n\
                 # runs first, with the same input; this hook exits with its status\n\
                 # when it fails.",
                name = HOOK,
                kept = POST_RECEIVE_KEPT,
            ),
            previous_arg(POST_RECEIVE_KEPT),
        )
    } else {
        (String::new(), String::new())
    };
    TEMPLATE
        .replace("@SHEBANG@", &shebang(exe))
        .replace("@QUIRE_RUN@", &quoted(&exe.to_string_lossy()))
        .replace("@QUIRE_HOME@", &quoted(&home.to_string_lossy()))
        .replace("@PREVIOUS_COMMENT@", &comment)
        .replace("@PREVIOUS_ARG@", &arg)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The home a quire hook records runs in, as written in it (shell-quoted).
fn hook_home(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    text.split_once("--home ")
        .and_then(|(_, rest)| rest.split_once(" hook"))
        .map_or_else(|| "unknown".to_string(), |(home, _)| home.to_string())
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// What `install` does with the hook of one repository, decided before
/// anything is written, so that a repository it refuses is left as it was.
struct Plan {
    hooks: PathBuf,
    /// `hooks/<name>`.
    path: PathBuf,
    /// Where the hook there now goes: nowhere (none, or quire's own,
    /// rewritten), or aside (another program's, never deleted).
    aside: Option<PathBuf>,
    /// Whether quire's hook runs a kept one first.
    chained: bool,
    script: String,
}

fn plan(
    repo: &Path,
    home_dir: &Path,
    exe: &Path,
    existing: Existing,
) -> Result<Plan, CommandError> {
    let hooks = repo.join("hooks");
    let path = hooks.join(HOOK);
    let previous = hooks.join(POST_RECEIVE_KEPT);
    let mut aside = None;
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CommandError::input(format!(
                "cannot look at {}: {e}",
                path.display()
            )));
        }
        Ok(_) => match std::fs::read(&path) {
            Ok(text) if contains(&text, HOOK_MARK) => {
                let ours = contains(
                    &text,
                    &format!("--home {} hook", quoted(&home_dir.to_string_lossy())),
                );
                if !ours && existing != Existing::ChainOrRepoint {
                    return Err(CommandError::input(format!(
                        "{} has quire's {} hook for another home ({}); pass --force to point it at {}",
                        repo.display(),
                        HOOK,
                        hook_home(&text),
                        home_dir.display()
                    )));
                }
            }
            // Another program's hook, or one that cannot be read (moving it
            // needs only the folder).
            _ => {
                let name = if existing == Existing::KeepBeside {
                    UPSTREAM_HOOK
                } else {
                    POST_RECEIVE_KEPT
                };
                let target = hooks.join(name);
                if exists(&target) {
                    return Err(CommandError::input(format!(
                        "cannot keep the {} hook of {}: {} is there already; quire deletes neither, \
                         so merge them into one of the two by hand and install again",
                        HOOK,
                        repo.display(),
                        target.display()
                    )));
                }
                aside = Some(target);
            }
        },
    }
    let chained = aside.as_deref() == Some(previous.as_path()) || exists(&previous);
    let script = script(exe, home_dir, chained);
    Ok(Plan {
        hooks,
        path,
        aside,
        chained,
        script,
    })
}

/// Write the planned hook (when it is not already as planned), moving the
/// one that was there aside first.
fn apply(plan: &Plan) -> Result<(), CommandError> {
    if std::fs::read(&plan.path).ok().as_deref() == Some(plan.script.as_bytes()) {
        return Ok(());
    }
    // Written beside it first, so the hook that was there is only ever
    // moved once quire's is ready to take its place.
    let staged = plan.hooks.join(format!(".{HOOK}.quire"));
    std::fs::write(&staged, &plan.script)
        .and_then(|()| std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| CommandError::input(format!("cannot write {}: {e}", staged.display())))?;
    if let Some(target) = &plan.aside {
        std::fs::rename(&plan.path, target).map_err(|e| {
            CommandError::input(format!("cannot move {} aside: {e}", plan.path.display()))
        })?;
        if plan.chained {
            println!(
                "quire: kept the {} hook that was there as {}; quire's hook runs it first, with the same input",
                HOOK,
                target.display()
            );
        } else {
            println!("quire: kept the previous hook as {}", target.display());
        }
    }
    std::fs::rename(&staged, &plan.path)
        .map_err(|e| CommandError::input(format!("cannot write {}: {e}", plan.path.display())))
}

/// Remove the pre-receive hook an earlier install wrote (it refused a push
/// of the notes ref, which git now refuses itself), or, where it ran
/// another program's pre-receive hook first, put that hook back in its
/// place. Anything else named pre-receive is left alone.
fn retire_pre_receive(hooks: &Path) -> Result<(), CommandError> {
    let path = hooks.join("pre-receive");
    let ours = std::fs::read(&path).is_ok_and(|text| contains(&text, PRE_RECEIVE_MARK));
    if !ours {
        return Ok(());
    }
    let kept = hooks.join(PRE_RECEIVE_KEPT);
    if exists(&kept) {
        // One rename: git finds either hook there, never none.
        std::fs::rename(&kept, &path)
            .map_err(|e| CommandError::input(format!("cannot put {} back: {e}", kept.display())))?;
        println!(
            "quire: put the pre-receive hook kept as {} back as {} (quire needs a pre-receive hook no more)",
            kept.display(),
            path.display()
        );
    } else {
        std::fs::remove_file(&path)
            .map_err(|e| CommandError::input(format!("cannot remove {}: {e}", path.display())))?;
        println!(
            "quire: removed quire's {} (quire needs a pre-receive hook no more)",
            path.display()
        );
    }
    Ok(())
}

pub(crate) fn run(home: &Home, repo: &Path, existing: Existing) -> Result<(), CommandError> {
    let repo = std::fs::canonicalize(repo).map_err(|e| {
        CommandError::input(format!("cannot open repository {}: {e}", repo.display()))
    })?;
    let bare =
        repo.join("objects").is_dir() && repo.join("HEAD").is_file() && !repo.join(".git").exists();
    if !bare {
        return Err(CommandError::input(format!(
            "{} is not a bare repository (no objects/ and HEAD); install into REPO.git, not a work tree",
            repo.display()
        )));
    }
    home.ensure()?;
    let home_dir = std::fs::canonicalize(home.dir()).map_err(|e| {
        CommandError::input(format!(
            "cannot use {} as the home: {e}",
            home.dir().display()
        ))
    })?;
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| CommandError::input(format!("cannot find this quire-run binary: {e}")))?;

    let hooks = repo.join("hooks");
    std::fs::create_dir_all(&hooks)
        .map_err(|e| CommandError::input(format!("cannot create {}: {e}", hooks.display())))?;
    // Decided before anything is written: a repository refused is left as
    // it was.
    let post_receive = plan(&repo, &home_dir, &exe, existing)?;
    apply(&post_receive)?;
    // Hidden before an earlier install's pre-receive hook, which refused
    // it, goes: the notes ref is never open to a push in between.
    let notes = quire_worker::announce::NOTES_REF;
    quire_worker::git::hide_from_pushes(&repo, notes).map_err(|e| {
        CommandError::input(format!(
            "the hook is installed, but {notes} could not be hidden from pushes: {e}"
        ))
    })?;
    retire_pre_receive(&hooks)?;
    let path = &post_receive.path;
    let configured = quire_worker::git::command(&repo)
        .args(["config", "receive.advertisePushOptions", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !configured {
        return Err(CommandError::input(format!(
            "the hook is installed, but `git config receive.advertisePushOptions true` failed in {}",
            repo.display()
        )));
    }
    let config = Config::load(home)?;
    let mut store = Store::open(home)?;
    crate::say_converted(&store);
    if !home.ensure_reserve() {
        eprintln!(
            "quire-run: warning: cannot make {} (space kept back so runs can still be ended and pruned on a full disk)",
            home.reserve_path().display()
        );
    }
    let known = register(&mut store, &repo, &config, Registration::Installed)?;
    println!(
        "quire: installed {} (runs of {} go to {}); git refuses a push of {notes} (receive.hideRefs)",
        path.display(),
        known.name,
        home_dir.display(),
    );
    if let Some(elsewhere) = quire_worker::git::hooks_elsewhere(&repo) {
        // What git would have to find there: quire's hook and the hook it
        // runs first.
        let mut files = vec![post_receive.path.display().to_string()];
        if post_receive.chained {
            files.push(hooks.join(POST_RECEIVE_KEPT).display().to_string());
        }
        eprintln!(
            "quire: warning: core.hooksPath points git at {}, so git never runs {}: \
             unset it (git --git-dir {} config --unset core.hooksPath), \
             or copy {} into {}, where git looks for hooks",
            elsewhere.display(),
            post_receive.path.display(),
            repo.display(),
            files.join(", "),
            elsewhere.display(),
        );
    }
    if let Err(e) = Repo::open(&repo) {
        eprintln!(
            "quire: warning: quire cannot read this repository, so its pushes will record no run: {e}"
        );
    }
    Ok(())
}

/// The crontab line that repairs what a crash or a reboot leaves
/// (`quire-runs reconcile`, every minute): `quire-runs` by the absolute
/// path of the one beside this `quire-run` (cron's PATH is `/usr/bin:/bin`,
/// which does not find a binary `cargo install` put elsewhere), this home,
/// and its output appended to `reconcile.log` in the home (cron would
/// otherwise mail it, or throw it away). Paths are shell-quoted when they
/// need it, and `%`,
/// which cron reads as a newline, is escaped. Also whether that
/// `quire-runs` exists.
pub(crate) fn cron_line(home: &Home) -> (String, PathBuf, bool) {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_else(|_| PathBuf::from("quire-run"));
    let runs = exe.with_file_name("quire-runs");
    let found = runs.is_file();
    let home_dir = std::fs::canonicalize(home.dir()).unwrap_or_else(|_| home.dir().to_path_buf());
    let log = home_dir.join("reconcile.log");
    let line = format!(
        "* * * * * {} --home {} reconcile >> {} 2>&1",
        quire_view::text::sh_word(&runs.to_string_lossy()),
        quire_view::text::sh_word(&home_dir.to_string_lossy()),
        quire_view::text::sh_word(&log.to_string_lossy()),
    )
    .replace('%', "\\%");
    (line, runs, found)
}

/// The bare repositories under `root` (`root` itself, when it is one),
/// sorted: each a directory holding `HEAD`, `objects/` and `refs/` whose
/// `config` says `core.bare = true`. The walk enters no repository (bare,
/// or a work tree's `.git`), nor a work tree (a directory holding `.git`),
/// and follows no symbolic link; a directory it cannot read is skipped
/// with a warning.
pub(crate) fn bare_repositories(root: &Path) -> Result<Vec<PathBuf>, CommandError> {
    let root = std::fs::canonicalize(root)
        .map_err(|e| CommandError::input(format!("cannot open {}: {e}", root.display())))?;
    if !root.is_dir() {
        return Err(CommandError::input(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    let mut found = Vec::new();
    let mut to_walk = vec![root];
    while let Some(dir) = to_walk.pop() {
        let looks_like_one =
            dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir();
        if looks_like_one {
            match quire_worker::git::core_bare(&dir) {
                Ok(true) => found.push(dir),
                Ok(false) => {}
                Err(why) => eprintln!(
                    "quire-run: warning: {} looks like a repository, but {why}; skipped",
                    dir.display()
                ),
            }
            continue;
        }
        if exists(&dir.join(".git")) {
            continue;
        }
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        to_walk.push(entry.path());
                    }
                }
            }
            Err(e) => eprintln!(
                "quire-run: warning: cannot read {}: {e}; skipped",
                dir.display()
            ),
        }
    }
    found.sort();
    Ok(found)
}
