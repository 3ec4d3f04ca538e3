//! `quire-run install REPO.git [--force]`: put quire's post-receive hook
//! into a bare repository.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::config::Config;
use quire_store::repos::Registration;
use quire_store::{Home, Store};

use crate::run::Failure;
use crate::run::hook::register;

/// hooks/post-receive, with this binary and the home filled in.
const TEMPLATE: &str = include_str!("../../../../hooks/post-receive");

use crate::runs::text::sh_quoted as quoted;

/// What to do with a post-receive hook that is not quire's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Refuse to install.
    Refuse,
    /// Replace it (`--force`).
    Replace,
    /// Move it aside to `post-receive.upstream` (`migrate-from`).
    KeepBeside,
}

pub(crate) fn run(home: &Home, repo: &Path, existing: Existing) -> Result<(), Failure> {
    let repo = std::fs::canonicalize(repo)
        .map_err(|e| Failure::Input(format!("cannot open repository {}: {e}", repo.display())))?;
    let bare =
        repo.join("objects").is_dir() && repo.join("HEAD").is_file() && !repo.join(".git").exists();
    if !bare {
        return Err(Failure::Input(format!(
            "{} is not a bare repository (no objects/ and HEAD); install into REPO.git, not a work tree",
            repo.display()
        )));
    }
    home.ensure()?;
    let home_dir = std::fs::canonicalize(home.dir()).map_err(|e| {
        Failure::Input(format!(
            "cannot use {} as the home: {e}",
            home.dir().display()
        ))
    })?;
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| Failure::Input(format!("cannot find this quire-run binary: {e}")))?;
    let script = TEMPLATE
        .replace("@QUIRE_RUN@", &quoted(&exe.to_string_lossy()))
        .replace("@QUIRE_HOME@", &quoted(&home_dir.to_string_lossy()));

    let hooks = repo.join("hooks");
    std::fs::create_dir_all(&hooks)
        .map_err(|e| Failure::Input(format!("cannot create {}: {e}", hooks.display())))?;
    let path = hooks.join("post-receive");
    let write = || {
        let staged = hooks.join(".post-receive.quire");
        std::fs::write(&staged, &script)
            .and_then(|()| {
                std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
            })
            .and_then(|()| std::fs::rename(&staged, &path))
            .map_err(|e| Failure::Input(format!("cannot write {}: {e}", path.display())))
    };
    match std::fs::read(&path) {
        Ok(existing) if existing == script.as_bytes() => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write()?,
        // Something else is there (or cannot even be read): only --force
        // replaces it; migrate-from keeps upstream's beside quire's.
        _ if existing == Existing::Replace => write()?,
        Ok(_) if existing == Existing::KeepBeside => {
            let aside = hooks.join("post-receive.upstream");
            if !aside.exists() {
                std::fs::rename(&path, &aside).map_err(|e| {
                    Failure::Input(format!("cannot move {} aside: {e}", path.display()))
                })?;
                println!("quire: kept the previous hook as {}", aside.display());
            }
            write()?;
        }
        Ok(_) => {
            return Err(Failure::Input(format!(
                "{} already has a different post-receive hook; pass --force to replace it",
                repo.display()
            )));
        }
        Err(e) => {
            return Err(Failure::Input(format!(
                "cannot read the existing post-receive hook of {} ({e}); pass --force to replace it",
                repo.display()
            )));
        }
    }
    let configured = Command::new("git")
        .arg("--git-dir")
        .arg(&repo)
        .args(["config", "receive.advertisePushOptions", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !configured {
        return Err(Failure::Input(format!(
            "the hook is installed, but `git config receive.advertisePushOptions true` failed in {}",
            repo.display()
        )));
    }
    let config = Config::load(home)?;
    let mut store = Store::open(home)?;
    if !home.ensure_reserve() {
        eprintln!(
            "quire-run: warning: cannot make {} (space kept back so runs can still be ended and pruned on a full disk)",
            home.reserve_path().display()
        );
    }
    let known = register(&mut store, &repo, &config, Registration::Installed)?;
    println!(
        "quire: installed {} (runs of {} go to {})",
        path.display(),
        known.name,
        home_dir.display()
    );
    if let Some(elsewhere) = crate::runs::hooks_elsewhere(&repo) {
        eprintln!(
            "quire: warning: core.hooksPath points git at {}, so git never runs \
             {}; unset it (git --git-dir {} config --unset core.hooksPath) or install there",
            elsewhere.display(),
            path.display(),
            repo.display()
        );
    }
    Ok(())
}
