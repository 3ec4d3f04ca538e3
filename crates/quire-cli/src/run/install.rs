//! `quire-run install REPO.git... [--all ROOT]... [--force]`: put quire's
//! hooks into bare repositories: post-receive (record the runs) and
//! pre-receive (refuse a push of `refs/notes/ci`, which only quire
//! writes). A hook that was there already is never deleted: it is kept as
//! `<hook>.before-quire` and quire's hook runs it first, with the same
//! input.

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

/// One of the hooks quire installs.
struct Kind {
    /// Its name in `hooks/`.
    name: &'static str,
    /// The template, from hooks/.
    template: &'static str,
    /// The template when quire's hook runs a kept one first.
    chained_template: &'static str,
    /// What tells quire's hook of this kind from another program's.
    mark: &'static str,
    /// Where another program's hook of this name is kept, run first.
    previous: &'static str,
    /// Whether the hook names a home (post-receive records runs there;
    /// pre-receive only compares ref names, for any home).
    homed: bool,
}

const POST_RECEIVE: Kind = Kind {
    name: "post-receive",
    template: include_str!("../../../../hooks/post-receive"),
    chained_template: include_str!("../../../../hooks/post-receive"),
    mark: HOOK_MARK,
    previous: "post-receive.before-quire",
    homed: true,
};

const PRE_RECEIVE: Kind = Kind {
    name: "pre-receive",
    // Alone, it compares the ref names in the shell (a shell's start
    // costs the push a third of quire-run's); chained, quire-run runs the
    // kept hook and then compares them.
    template: include_str!("../../../../hooks/pre-receive"),
    chained_template: include_str!("../../../../hooks/pre-receive-chained"),
    mark: PRE_RECEIVE_MARK,
    previous: "pre-receive.before-quire",
    homed: false,
};

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
    /// quire's). A pre-receive hook is chained as with `Chain`.
    KeepBeside,
}

/// The hook quire writes: this binary, this home, and the previous hook
/// when there is one.
fn script(kind: &Kind, exe: &Path, home: &Path, previous: bool) -> String {
    let (comment, arg) = if previous {
        (
            format!(
                "\n# The {name} hook that was here before, kept as {kept},\n\
                 # runs first, with the same input; this hook exits with its status\n\
                 # when it fails.",
                name = kind.name,
                kept = kind.previous,
            ),
            format!(
                " \\\n    --previous-hook \"$(dirname \"$0\")/{}\"",
                kind.previous
            ),
        )
    } else {
        (String::new(), String::new())
    };
    let template = if previous {
        kind.chained_template
    } else {
        kind.template
    };
    template
        .replace("@REFUSAL@", &crate::run::pre_receive::refusal())
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

/// What `install` does with one hook of one repository, decided before
/// anything is written, so that a repository it refuses is left as it was.
struct Plan {
    kind: &'static Kind,
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
    kind: &'static Kind,
    repo: &Path,
    home_dir: &Path,
    exe: &Path,
    existing: Existing,
) -> Result<Plan, CommandError> {
    let hooks = repo.join("hooks");
    let path = hooks.join(kind.name);
    let previous = hooks.join(kind.previous);
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
            Ok(text) if contains(&text, kind.mark) => {
                let ours = !kind.homed
                    || contains(
                        &text,
                        &format!("--home {} hook", quoted(&home_dir.to_string_lossy())),
                    );
                if !ours && existing != Existing::ChainOrRepoint {
                    return Err(CommandError::input(format!(
                        "{} has quire's {} hook for another home ({}); pass --force to point it at {}",
                        repo.display(),
                        kind.name,
                        hook_home(&text),
                        home_dir.display()
                    )));
                }
            }
            // Another program's hook, or one that cannot be read (moving it
            // needs only the folder).
            _ => {
                let name = if existing == Existing::KeepBeside && kind.homed {
                    UPSTREAM_HOOK
                } else {
                    kind.previous
                };
                let target = hooks.join(name);
                if exists(&target) {
                    return Err(CommandError::input(format!(
                        "cannot keep the {} hook of {}: {} is there already; quire deletes neither, \
                         so merge them into one of the two by hand and install again",
                        kind.name,
                        repo.display(),
                        target.display()
                    )));
                }
                aside = Some(target);
            }
        },
    }
    let chained = aside.as_deref() == Some(previous.as_path()) || exists(&previous);
    let script = script(kind, exe, home_dir, chained);
    Ok(Plan {
        kind,
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
    let staged = plan.hooks.join(format!(".{}.quire", plan.kind.name));
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
                plan.kind.name,
                target.display()
            );
        } else {
            println!("quire: kept the previous hook as {}", target.display());
        }
    }
    std::fs::rename(&staged, &plan.path)
        .map_err(|e| CommandError::input(format!("cannot write {}: {e}", plan.path.display())))
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
    // Both decided before either is written: a repository refused for one
    // is left as it was.
    let post_receive = plan(&POST_RECEIVE, &repo, &home_dir, &exe, existing)?;
    let pre_receive = plan(&PRE_RECEIVE, &repo, &home_dir, &exe, existing)?;
    apply(&post_receive)?;
    apply(&pre_receive)?;
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
        "quire: installed {} (runs of {} go to {}) and {} (a push of {} is refused)",
        path.display(),
        known.name,
        home_dir.display(),
        pre_receive.path.display(),
        quire_worker::announce::NOTES_REF,
    );
    if let Some(elsewhere) = quire_worker::git::hooks_elsewhere(&repo) {
        // What git would have to find there: quire's hooks and the hooks
        // they run first.
        let mut files = Vec::new();
        for (plan, kind) in [(&post_receive, &POST_RECEIVE), (&pre_receive, &PRE_RECEIVE)] {
            files.push(plan.path.display().to_string());
            if plan.chained {
                files.push(hooks.join(kind.previous).display().to_string());
            }
        }
        eprintln!(
            "quire: warning: core.hooksPath points git at {}, so git never runs {} nor {}: \
             unset it (git --git-dir {} config --unset core.hooksPath), \
             or copy {} into {}, where git looks for hooks",
            elsewhere.display(),
            post_receive.path.display(),
            pre_receive.path.display(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Run the pre-receive hook `install` writes into a repository without
    /// a pre-receive hook of its own, fed `input` as git feeds it: its exit
    /// status and what it printed.
    fn pre_receive(input: &str) -> (i32, String) {
        let dir = tempfile::tempdir().unwrap();
        let hook = dir.path().join("pre-receive");
        let text = script(
            &PRE_RECEIVE,
            Path::new("/nonexistent/quire-run"),
            dir.path(),
            false,
        );
        std::fs::write(&hook, text).unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = Command::new(&hook)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // A hook that stops reading once it refuses is no failure here.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
        )
    }

    #[test]
    fn the_pre_receive_hook_refuses_the_notes_ref_alone_in_the_shell() {
        let zero = "0".repeat(40);
        let one = "1".repeat(40);
        let refused = format!("{}\n", crate::run::pre_receive::refusal());
        for input in [
            format!("{zero} {one} refs/notes/ci\n"),
            format!("{one} {zero} refs/notes/ci\n"),
            format!("{zero} {one} refs/heads/main\n{one} {one} refs/notes/ci\n"),
            // git ends every line; a last one without its end still counts.
            format!("{zero} {one} refs/heads/main\n{one} {zero} refs/notes/ci"),
        ] {
            assert_eq!(pre_receive(&input), (1, refused.clone()), "{input}");
        }
        for input in [
            String::new(),
            format!("{zero} {one} refs/heads/main\n"),
            format!(
                "{zero} {one} refs/notes/ci2\n{zero} {one} refs/notes/commits\n\
                 {zero} {one} refs/heads/refs/notes/ci\n{zero} {one} refs/tags/ci"
            ),
        ] {
            assert_eq!(pre_receive(&input), (0, String::new()), "{input}");
        }
    }

    #[test]
    fn the_refusal_is_written_into_the_shell_hook_as_is() {
        // Between double quotes only these would be read as more than text.
        let refusal = crate::run::pre_receive::refusal();
        assert!(!refusal.contains(['$', '`', '\\', '"', '\n']), "{refusal}");
        let alone = script(
            &PRE_RECEIVE,
            Path::new("/q/quire-run"),
            Path::new("/h"),
            false,
        );
        assert!(alone.contains(&format!("\"{refusal}\"")));
        assert!(!alone.contains("quire-run pre-receive\n") && !alone.contains('@'));
        let chained = script(
            &PRE_RECEIVE,
            Path::new("/q/quire-run"),
            Path::new("/h"),
            true,
        );
        assert!(chained.contains("exec '/q/quire-run' pre-receive \\\n    --previous-hook"));
        assert!(chained.starts_with("#!/bin/sh\n") && alone.starts_with("#!/bin/sh\n"));
        assert!(contains(alone.as_bytes(), PRE_RECEIVE_MARK));
        assert!(contains(chained.as_bytes(), PRE_RECEIVE_MARK));
    }
}
