//! quire's data home: `--home`, else `$QUIRE_HOME`, else
//! `$XDG_DATA_HOME/quire`, else `~/.local/share/quire` (docs/OPERATIONS.md, "The home").

use std::ffi::OsString;
use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The directory that holds `quire.db` and `runs/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// A home at exactly `dir` (not created until [`Home::ensure`]).
    pub fn at(dir: impl Into<PathBuf>) -> Home {
        Home { dir: dir.into() }
    }

    /// Resolve the home from the flag and this process's environment, as
    /// an absolute path: a relative one would mean another directory to the
    /// worker and hook this process starts elsewhere.
    pub fn resolve(flag: Option<&Path>) -> Result<Home> {
        let home = Home::resolve_with(flag, |name| std::env::var_os(name))?;
        let dir = std::path::absolute(&home.dir).map_err(|source| Error::Home {
            path: home.dir.clone(),
            source,
        })?;
        Ok(Home { dir })
    }

    /// Resolve the home from the flag and the given environment lookup.
    pub fn resolve_with(
        flag: Option<&Path>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Home> {
        let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let dir = if let Some(dir) = flag {
            dir.to_path_buf()
        } else if let Some(dir) = set("QUIRE_HOME") {
            dir
        } else if let Some(data) = set("XDG_DATA_HOME") {
            data.join("quire")
        } else if let Some(home) = set("HOME") {
            home.join(".local/share/quire")
        } else {
            return Err(Error::NoHome);
        };
        Ok(Home { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("quire.db")
    }

    /// True when the home's `quire.db` is not there (the home deleted, or
    /// only its store): a worker, an announcer or a spawner then creates
    /// nothing in it, so a deleted home does not come back half-made.
    pub fn is_gone(&self) -> bool {
        std::fs::symlink_metadata(self.db_path()).is_err()
    }

    /// `runs/<id>/` made for a run that starts: `runs/` and the run's
    /// directory, each only below a home whose store is there, never the
    /// home itself (no recursive create: a home deleted meanwhile stays
    /// deleted, the call fails with `NotFound`).
    pub fn create_run_dir(&self, run_id: &str) -> Result<PathBuf> {
        let run_dir = self.run_dir(run_id)?;
        let fail = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Home { path, source }
        };
        if self.is_gone() {
            return Err(Error::NotAHome(self.dir.clone()));
        }
        let runs = self.dir.join("runs");
        for dir in [&runs, &run_dir] {
            match DirBuilder::new().mode(0o700).create(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fail(dir)(e)),
                Ok(()) if dir == &runs => self.spread_runs(),
                Ok(()) => {}
            }
        }
        Ok(run_dir)
    }

    /// Ask the file system to place each run's directory apart from the
    /// others (ext2/3/4's "top of a directory hierarchy" flag, `chattr +T`
    /// on `runs/`): its workspace and files then take their inodes in a
    /// block group of their own, rather than all in `runs/`'s. On ext4
    /// without a journal a new inode skips every free one of its group
    /// deleted in the last minutes, so a burst of runs that each make and
    /// remove a score of files and directories in one group slows every
    /// later file creation of the home (docs/PERFORMANCE.md, issue 24).
    /// Only a hint: a file system without the flag (tmpfs, XFS, btrfs)
    /// refuses it, and nothing changes. Called when `runs/` is made and
    /// by each worker as it starts, for homes made before.
    pub fn spread_runs(&self) {
        use rustix::fs::{IFlags, Mode, OFlags, ioctl_getflags, ioctl_setflags, open};
        let Ok(runs) = open(
            self.dir.join("runs"),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        if let Ok(flags) = ioctl_getflags(&runs)
            && !flags.contains(IFlags::TOPDIR)
        {
            let _ = ioctl_setflags(&runs, flags | IFlags::TOPDIR);
        }
    }

    /// `runs/<id>/`: a run's events, logs and workspace while it executes;
    /// after, only what was not packed into the store (large logs, kept
    /// artifacts, a kept workspace). An id not of quire's shape
    /// ([`quire_model::is_run_id`]: one with `/`, `..`, a control character)
    /// is refused: it could name a path outside `runs/`.
    pub fn run_dir(&self, run_id: &str) -> Result<PathBuf> {
        if !quire_model::is_run_id(run_id) {
            return Err(Error::BadRunId(run_id.to_string()));
        }
        Ok(self.dir.join("runs").join(run_id))
    }

    /// The file of a kept artifact, opened for reading below the run's
    /// `artifacts/` by descriptors: `runs/<id>/artifacts` opened without
    /// following a link, then the artifact's path below it with openat2's
    /// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (one component at a time
    /// with `O_NOFOLLOW` where the kernel has no openat2). No symbolic link
    /// is followed and nothing outside is reached, whatever was planted or
    /// swapped in meanwhile; the path is never looked up again. Refused
    /// (`InvalidInput`) when the recorded name leaves its job's directory,
    /// and when the file is not a regular file (a FIFO is opened without
    /// waiting for a writer, then refused).
    pub fn open_artifact(
        &self,
        run_id: &str,
        artifact: &quire_model::Artifact,
    ) -> std::io::Result<std::fs::File> {
        use rustix::fs::{Mode, OFlags, ResolveFlags, open, openat, openat2};
        let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        let run = self.run_dir(run_id).map_err(|e| invalid(&e.to_string()))?;
        let rel = artifact
            .relative_path()
            .ok_or_else(|| invalid("not a path inside its job's directory"))?;
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // Non-blocking: a FIFO planted at the path would block the open
        // until a writer came; opened so, it is refused below as no
        // regular file (reads of a regular file never block anyway).
        let file_flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let area = open(run.join("artifacts"), dir_flags, Mode::empty())?;
        let fd = match openat2(
            &area,
            &rel,
            file_flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::AGAIN | rustix::io::Errno::PERM) => {
                let parts: Vec<_> = rel.components().collect();
                let mut at = area;
                let Some((last, dirs)) = parts.split_last() else {
                    return Err(invalid("an empty path"));
                };
                for part in dirs {
                    at = openat(&at, part.as_os_str(), dir_flags, Mode::empty())?;
                }
                openat(&at, last.as_os_str(), file_flags, Mode::empty())?
            }
            Err(e) => return Err(e.into()),
        };
        let file = std::fs::File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(invalid("not a regular file"));
        }
        Ok(file)
    }

    /// `runs/<id>/logs/<job>/<seq>.log`: a step's own log file, as steps
    /// wrote them before a job had one log (0019), and as `migrate-from`
    /// writes upstream's.
    pub fn step_log_path(&self, run_id: &str, job: &str, seq: i64) -> Result<PathBuf> {
        Ok(self
            .run_dir(run_id)?
            .join("logs")
            .join(job)
            .join(format!("{seq}.log")))
    }

    /// `runs/<id>/logs/<job>.log`: the log a job's steps write, one after
    /// the other, while its run executes (and after, when one of them is
    /// too large to pack into the store).
    pub fn job_log_path(&self, run_id: &str, job: &str) -> Result<PathBuf> {
        Ok(self
            .run_dir(run_id)?
            .join("logs")
            .join(format!("{job}.log")))
    }

    /// Create the home (mode 0700: logs and the store may hold secrets) if it
    /// does not exist yet, and check that it is a directory.
    pub fn ensure(&self) -> Result<()> {
        let fail = |source| Error::Home {
            path: self.dir.clone(),
            source,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(fail)?;
        let meta = std::fs::metadata(&self.dir).map_err(fail)?;
        if !meta.is_dir() {
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        Ok(())
    }

    /// `reserve`: space kept back for a full disk. A disk that fills (a
    /// step's output, another program) would leave quire unable to record
    /// even that a run failed, or to prune; deleting this file gives the
    /// store room for those writes ([`Home::release_reserve`]).
    pub fn reserve_path(&self) -> PathBuf {
        self.dir.join("reserve")
    }

    /// Make the reserve if it is missing and the disk has room; true when
    /// it is in place afterwards. A reserve that cannot be made whole is
    /// not left half-made.
    pub fn ensure_reserve(&self) -> bool {
        let path = self.reserve_path();
        if self.is_gone() {
            return false;
        }
        if std::fs::metadata(&path).is_ok_and(|m| m.len() >= RESERVE_BYTES) {
            return true;
        }
        let made = (|| {
            let tmp = self.dir.join("reserve.tmp");
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // Written, not a sparse set_len: the blocks must be taken.
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..RESERVE_BYTES / chunk.len() as u64 {
                std::io::Write::write_all(&mut file, &chunk)?;
            }
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if made.is_err() {
            let _ = std::fs::remove_file(self.dir.join("reserve.tmp"));
        }
        made.is_ok()
    }

    /// Give the reserve's space back to the disk; true if there was one.
    pub fn release_reserve(&self) -> bool {
        std::fs::remove_file(self.reserve_path()).is_ok()
    }
}

/// The reserve's size: room for the store to finish runs and prune.
pub const RESERVE_BYTES: u64 = 8 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn precedence_is_flag_then_quire_home_then_xdg_then_home() {
        let all = [
            ("QUIRE_HOME", "/q"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ];
        let flag = Path::new("/f");
        assert_eq!(
            Home::resolve_with(Some(flag), env(&all)).unwrap().dir(),
            flag
        );
        assert_eq!(
            Home::resolve_with(None, env(&all)).unwrap().dir(),
            Path::new("/q")
        );
        assert_eq!(
            Home::resolve_with(None, env(&all[1..])).unwrap().dir(),
            Path::new("/x/quire")
        );
        assert_eq!(
            Home::resolve_with(None, env(&all[2..])).unwrap().dir(),
            Path::new("/h/.local/share/quire")
        );
        assert!(matches!(
            Home::resolve_with(None, env(&[])),
            Err(Error::NoHome)
        ));
    }

    #[test]
    fn only_ids_of_quires_shape_become_paths() {
        let home = Home::at("/h");
        let id = "0190abcd-0000-7000-8000-00000000000a";
        assert_eq!(home.run_dir(id).unwrap(), Path::new("/h/runs").join(id));
        for bad in [
            "",
            "..",
            "../../../../tmp/x",
            "0190abcd-0000-7000-8000-00000000000/",
            "0190abcd/0000-7000-8000-000000000000",
            "0190abcd-0000-7000-8000-00000000000\u{1b}",
            "0190abcd-0000-7000-8000-00000000000a0",
        ] {
            assert!(
                matches!(home.run_dir(bad), Err(Error::BadRunId(_))),
                "{bad:?}"
            );
            assert!(home.step_log_path(bad, "j", 1).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let vars = [("QUIRE_HOME", ""), ("HOME", "/h")];
        assert_eq!(
            Home::resolve_with(None, env(&vars)).unwrap().dir(),
            Path::new("/h/.local/share/quire")
        );
    }
}
