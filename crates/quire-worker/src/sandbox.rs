//! The worker's side of the step sandbox (docs/SECURITY.md, "Filesystem
//! sandbox"): what a run's steps may touch, from the home, config.toml and
//! the store, and the user they run as. The executor's
//! `quire_exec::exec::Sandbox` turns this into a Landlock ruleset.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use quire_exec::exec::{SandboxPolicy, StepUser};
use quire_store::{Home, Store};

use crate::config::Config;

/// The directories of a run its steps own: the workspace, and the HOME and
/// TMPDIR they get instead of the worker's. All three go when the
/// workspace goes.
#[derive(Debug, Clone)]
pub struct RunDirs {
    pub workspace: PathBuf,
    pub home: PathBuf,
    pub tmp: PathBuf,
}

impl RunDirs {
    pub fn of(run_dir: &Path) -> RunDirs {
        RunDirs {
            workspace: run_dir.join("workspace"),
            home: run_dir.join("home"),
            tmp: run_dir.join("tmp"),
        }
    }

    /// Where every run's steps see their workspace, HOME and TMPDIR, in a
    /// worker with a mount namespace of its own: `<home>/ci/workspace`,
    /// `<home>/ci/home`, `<home>/ci/tmp` (docs/PIPELINE.md, "Workspace").
    pub fn stable(home: &Home) -> RunDirs {
        RunDirs::of(&home.dir().join("ci"))
    }

    pub fn all(&self) -> [&Path; 3] {
        [&self.workspace, &self.home, &self.tmp]
    }

    /// Make the run's HOME and TMPDIR anew, empty and private.
    pub fn create_home_and_tmp(&self) -> io::Result<()> {
        for dir in [&self.home, &self.tmp] {
            if dir.exists() {
                std::fs::remove_dir_all(dir)?;
            }
            std::fs::DirBuilder::new().mode(0o700).create(dir)?;
        }
        Ok(())
    }

    /// Remove all three (whichever exist), side by side, each with its
    /// directories two levels down removed side by side too
    /// ([`quire_exec::beneath::Dir::remove_side_by_side`]): on a disk
    /// mounted with `discard` each directory's removal waits for the disk,
    /// and a run's ten took 25 ms one after another. By descriptors from
    /// the run's directory, never following a symlink.
    pub fn remove(&self) {
        let Some(run_dir) = self.workspace.parent() else {
            return;
        };
        let Ok(run) = quire_exec::beneath::Dir::open(run_dir) else {
            return;
        };
        std::thread::scope(|scope| {
            for dir in self.all() {
                let Some(name) = dir.file_name() else {
                    continue;
                };
                let run = &run;
                let removal = move || {
                    let _ = run.remove_side_by_side(name, 2);
                };
                if std::thread::Builder::new()
                    .name("remove".into())
                    .spawn_scoped(scope, removal)
                    .is_err()
                {
                    removal();
                }
            }
        });
    }
}

/// Hand the run's directories to the step's user (`run_as`): its
/// workspace, HOME and TMPDIR become its own, and the home, `runs/` and the
/// run's directory let it pass (0711) without letting it list them;
/// everything else in the home stays the worker's, 0700 and 0600.
pub fn hand_over(home: &Home, run_dir: &Path, dirs: &RunDirs, user: &StepUser) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for dir in [home.dir(), &home.dir().join("runs"), run_dir] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
    }
    // By descriptors, never following a symlink (a link is itself given,
    // not what it names): docs/SECURITY.md, "The worker's own hands".
    for dir in dirs.all() {
        quire_exec::beneath::Dir::open(dir)?.chown_all(user.uid, user.gid)?;
    }
    Ok(())
}

/// The user `run_as` names, when quire may switch to it: only root can
/// start a process as another user.
pub fn step_user(run_as: Option<&str>, euid: u32) -> Result<Option<StepUser>, String> {
    let Some(name) = run_as else {
        return Ok(None);
    };
    if euid != 0 {
        return Err(format!(
            "run_as = \"{name}\" in config.toml, but quire runs as uid {euid}, not root, and \
             only root can start steps as another user; run quire as root, or remove run_as"
        ));
    }
    StepUser::lookup(name).map(Some)
}

/// What the steps of the run of `git_dir` may touch: their own
/// directories, written; the repository's objects, read; the system, read
/// and executed, except quire's home, every repository it knows (and
/// `repos_root`), the secrets' files and the homes of the worker's user
/// and of the step's; and what config.toml's `[steps] read` opens, read
/// and executed (refused when it would open quire's home, config.toml, a
/// secret file, a repository, or the whole of a user's home). The notes are for each job's log: a
/// `[steps] read` directory that does not exist.
pub fn policy(
    home: &Home,
    config: &Config,
    store: &Store,
    git_dir: &Path,
    dirs: &RunDirs,
    user: Option<&StepUser>,
) -> Result<(SandboxPolicy, Vec<String>), String> {
    let mut hidden = vec![home.dir().to_path_buf(), git_dir.to_path_buf()];
    hidden.extend(config.repos_root.clone());
    let repos = store
        .repo_dirs()
        .map_err(|e| format!("cannot list the repositories to hide from steps: {e}"))?;
    if let Some(why) =
        config.step_read_conflict(home, &[&repos[..], &[git_dir.to_path_buf()]].concat())
    {
        return Err(format!("{why} (config.toml)"));
    }
    hidden.extend(repos);
    hidden.extend(config.secret_files());
    let mut homes = Vec::new();
    if let Some(worker_home) = std::env::var_os("HOME").map(PathBuf::from)
        && worker_home.is_absolute()
    {
        homes.push(worker_home);
    }
    homes.extend(StepUser::home_of(rustix::process::geteuid().as_raw()));
    homes.extend(user.map(|u| u.home.clone()));
    hidden.extend(homes.iter().cloned());
    // A toolchain in a home, yes; the whole home (its ~/.ssh), no.
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    for dir in &config.steps.read {
        if let Some(home) = homes.iter().find(|h| real(h).starts_with(real(dir))) {
            return Err(format!(
                "[steps] read: {} would open the whole home of a user ({}) to steps, its keys \
                 included; name the toolchains' directories in it, such as {}/.rustup \
                 (config.toml)",
                dir.display(),
                home.display(),
                home.display()
            ));
        }
    }
    let mut readable = objects_dirs(git_dir);
    let mut notes = Vec::new();
    for dir in &config.steps.read {
        if dir.exists() {
            readable.push(dir.clone());
        } else {
            notes.push(format!(
                "quire: sandbox: [steps] read names {}, which does not exist on this machine; \
                 steps are not given it (config.toml)",
                dir.display()
            ));
        }
    }
    Ok((
        SandboxPolicy {
            writable: dirs.all().iter().map(|d| d.to_path_buf()).collect(),
            readable,
            hidden,
            homes,
        },
        notes,
    ))
}

/// The repository's `objects` and the object directories its own
/// `objects/info/alternates` borrows from (a fork sharing its parent's):
/// the workspace's git reads them all.
fn objects_dirs(git_dir: &Path) -> Vec<PathBuf> {
    let objects = git_dir.join("objects");
    let mut dirs = vec![objects.clone()];
    if let Ok(text) = std::fs::read_to_string(objects.join("info/alternates")) {
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            dirs.push(objects.join(line));
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_as_is_refused_unless_root_and_the_user_is_known() {
        assert_eq!(step_user(None, 1000), Ok(None));
        let err = step_user(Some("ci"), 1000).unwrap_err();
        assert_eq!(
            err,
            "run_as = \"ci\" in config.toml, but quire runs as uid 1000, not root, and only \
             root can start steps as another user; run quire as root, or remove run_as"
        );
        let err = step_user(Some("no-such-user-quire"), 0).unwrap_err();
        assert_eq!(
            err,
            "run_as names user \"no-such-user-quire\", which this machine does not know"
        );
        assert_eq!(step_user(Some("root"), 0).unwrap().unwrap().uid, 0);
    }

    #[test]
    fn a_repository_borrowing_objects_lets_steps_read_those_too() {
        let dir = tempfile::tempdir().unwrap();
        let git_dir = dir.path().join("fork.git");
        std::fs::create_dir_all(git_dir.join("objects/info")).unwrap();
        std::fs::write(
            git_dir.join("objects/info/alternates"),
            "/srv/git/parent.git/objects\n\n../../other.git/objects\n",
        )
        .unwrap();
        assert_eq!(
            objects_dirs(&git_dir),
            [
                git_dir.join("objects"),
                PathBuf::from("/srv/git/parent.git/objects"),
                git_dir.join("objects/../../other.git/objects"),
            ]
        );
    }
}
