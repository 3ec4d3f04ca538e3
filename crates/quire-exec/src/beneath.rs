//! The worker's hands in a tree that steps may change while it works on it
//! (docs/SECURITY.md, "The worker's own hands").
//!
//! A workspace is written by steps, and a step of another job of the same
//! run may still be running while the worker saves a cache out of it,
//! restores one into it, keeps an artifact from it, gives it the times the
//! cache recorded or gives it to the `run_as` user. Anything the worker
//! resolved by path there could lead, a microsecond after it was checked,
//! through a symlink a step swapped in, to the home's `config.toml`,
//! `quire.db` or another repository's `hooks/`. So every such operation
//! starts from a [`Dir`], a descriptor of a directory known to lie inside
//! the tree, and goes down one name at a time, never following a symlink:
//! `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS` where the kernel has it (Linux 5.6), else a walk
//! of `openat(O_NOFOLLOW | O_DIRECTORY)`, one component at a time, over
//! names that hold no `/` and are not `..`. Whatever a step swaps in after
//! a check, the worker meets it as a name inside a directory it holds open:
//! a symlink there is moved, copied, removed or given away as a symlink,
//! never followed.
//!
//! A directory the worker holds may itself be moved by a step, but only to
//! where that step can write (its workspace, `TMPDIR` or `HOME`): what the
//! worker then does in it, it does among the pusher's own files.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    AtFlags, CWD, FileType, Gid, Mode, OFlags, RenameFlags, ResolveFlags, Stat, Timespec,
    Timestamps, UTIME_OMIT, Uid,
};
use rustix::io::Errno;

/// How a directory is opened: for reading its entries and as the base of
/// `*at` calls, never through a symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// No symlink on the way, no `..` above the start, no `/proc` magic link.
const NO_LINKS: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// How deep a tree the worker goes down (git's own limit on a tree's
/// depth); deeper is refused rather than exhausting descriptors or stack.
const MAX_DEPTH: usize = 2048;

/// How many directories [`Dir::remove_side_by_side`] removes at once in
/// each directory.
const SIDE_BY_SIDE: usize = 4;

/// A directory the worker holds open.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// One entry of a directory, as listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub name: OsString,
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The components of `rel`, a path relative to a directory: empty and `.`
/// components dropped; `..`, a NUL byte or an absolute path refused.
pub fn components(rel: &str) -> io::Result<Vec<&str>> {
    if rel.starts_with('/') || rel.contains('\0') {
        return Err(invalid(rel));
    }
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(invalid(rel));
    }
    Ok(parts)
}

/// `rel` split into the path of its parent and its last name; `None` for
/// the directory itself.
pub fn split_last(rel: &str) -> io::Result<Option<(String, &str)>> {
    let parts = components(rel)?;
    Ok(parts
        .split_last()
        .map(|(last, parent)| (parent.join("/"), *last)))
}

fn invalid(rel: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{rel:?} is not a path inside the directory"),
    )
}

/// Whether `e` says a symlink or a file stood where a directory was asked
/// for, or the path would have left the directory.
pub fn is_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP | libc::ENOTDIR | libc::EXDEV)
    )
}

fn is_dir(stat: &Stat) -> bool {
    FileType::from_raw_mode(stat.st_mode) == FileType::Directory
}

fn one_name(name: &OsStr) -> io::Result<&OsStr> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not one name"),
        ));
    }
    Ok(name)
}

impl Dir {
    /// Open the directory at `path`, which the worker controls the way to
    /// (the workspace under the home): the last component must be a
    /// directory itself, not a symlink to one.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::openat(CWD, path, DIR_FLAGS, Mode::empty())?;
        Ok(Dir { fd })
    }

    /// Another descriptor of the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
        })
    }

    /// The directory `rel` below this one, every component a directory
    /// itself: a symlink or a file on the way is refused ([`is_refused`]).
    pub fn open_dir(&self, rel: &str) -> io::Result<Dir> {
        let parts = components(rel)?;
        if parts.is_empty() {
            return self.try_clone();
        }
        match rustix::fs::openat2(
            &self.fd,
            parts.join("/"),
            DIR_FLAGS,
            Mode::empty(),
            NO_LINKS,
        ) {
            Ok(fd) => Ok(Dir { fd }),
            // No openat2 (before Linux 5.6, or a seccomp filter), or a
            // rename elsewhere made the kernel give up: one name at a time.
            Err(Errno::NOSYS | Errno::AGAIN | Errno::PERM) => self.walk(&parts),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Dir::open_dir`] without `openat2`: `openat(O_NOFOLLOW |
    /// O_DIRECTORY)` one component at a time.
    pub fn walk<S: AsRef<OsStr>>(&self, parts: &[S]) -> io::Result<Dir> {
        let mut at = self.try_clone()?;
        for part in parts {
            at = at.subdir(part.as_ref())?;
        }
        Ok(at)
    }

    /// The directory `name` in this one, itself (not a symlink to one).
    pub fn subdir(&self, name: &OsStr) -> io::Result<Dir> {
        let fd = rustix::fs::openat(&self.fd, one_name(name)?, DIR_FLAGS, Mode::empty())?;
        Ok(Dir { fd })
    }

    /// The directory `rel` below this one, making each missing component
    /// (mode 0777 less the umask, then given to `owner`); a symlink or a
    /// file on the way is refused.
    pub fn create_dirs(&self, rel: &str, owner: Option<(u32, u32)>) -> io::Result<Dir> {
        self.create_dirs_mode(rel, 0o777, owner)
    }

    /// [`Dir::create_dirs`], the directories it makes of `mode` (less the
    /// umask). Nothing above this directory is made: one that is gone
    /// stays gone.
    pub fn create_dirs_mode(
        &self,
        rel: &str,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Dir> {
        let mut at = self.try_clone()?;
        for part in components(rel)? {
            let name = OsStr::new(part);
            let made = match rustix::fs::mkdirat(&at.fd, name, Mode::from_raw_mode(mode)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(e.into()),
            };
            at = at.subdir(name)?;
            if made && let Some((uid, gid)) = owner {
                // The directory just opened, whatever a step did to the
                // name since it was made.
                rustix::fs::fchown(&at.fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
            }
        }
        Ok(at)
    }

    /// Create (or truncate) the regular file `name` of this directory for
    /// writing, `mode` less the umask; a symlink there is refused.
    pub fn create_file(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, one_name(name)?, flags, Mode::from_raw_mode(mode))?;
        Ok(File::from(fd))
    }

    /// The entries of this directory by name, without `.` and `..`.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(Entry {
                    name: OsStr::from_bytes(name).to_os_string(),
                });
            }
        }
        out.sort();
        Ok(out)
    }

    /// `lstat` of `name` in this directory: a symlink is described, not
    /// followed.
    pub fn stat(&self, name: &OsStr) -> io::Result<Stat> {
        Ok(rustix::fs::statat(
            &self.fd,
            one_name(name)?,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// `lstat` of this directory itself.
    pub fn stat_self(&self) -> io::Result<Stat> {
        Ok(rustix::fs::fstat(&self.fd)?)
    }

    /// Whether `name` is a directory itself; false when it is missing or
    /// anything else.
    pub fn is_dir(&self, name: &OsStr) -> bool {
        self.stat(name).is_ok_and(|s| is_dir(&s))
    }

    /// Open the regular file `name` of this directory for reading: a
    /// symlink is refused (`ELOOP`), a FIFO does not block, and anything
    /// but a regular file is refused (`None`).
    pub fn open_file(&self, name: &OsStr) -> io::Result<Option<File>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, one_name(name)?, flags, Mode::empty())?;
        regular(fd)
    }

    /// Open `rel` below this directory for reading, whatever it is,
    /// following symlinks only while they stay below it (the kernel checks
    /// every step, `RESOLVE_BENEATH`; a link to an absolute path or out
    /// through `..` is refused with `EXDEV`). A FIFO does not block.
    /// Without `openat2` no symlink is followed at all (`ELOOP`).
    pub fn open_beneath(&self, rel: &str) -> io::Result<File> {
        let parts = components(rel)?;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&self.fd, parts.join("/"), flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::NOSYS | Errno::AGAIN | Errno::PERM) => {
                let Some((last, parent)) = parts.split_last() else {
                    return Err(invalid(rel));
                };
                let fd = rustix::fs::openat(
                    &self.walk(parent)?.fd,
                    OsStr::new(last),
                    flags | OFlags::NOFOLLOW,
                    Mode::empty(),
                )?;
                Ok(File::from(fd))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Move `name` of this directory to `to_name` in `to`, whatever it is
    /// (a symlink moves as a symlink); with `no_replace`, never over an
    /// existing entry (`EEXIST`).
    pub fn rename(
        &self,
        name: &OsStr,
        to: &Dir,
        to_name: &OsStr,
        no_replace: bool,
    ) -> io::Result<()> {
        let (name, to_name) = (one_name(name)?, one_name(to_name)?);
        if no_replace {
            match rustix::fs::renameat_with(&self.fd, name, &to.fd, to_name, RenameFlags::NOREPLACE)
            {
                // A file system without renameat2's flags: look, then move.
                Err(Errno::INVAL | Errno::NOSYS) => {
                    if to.stat(to_name).is_ok() {
                        return Err(io::Error::from_raw_os_error(libc::EEXIST));
                    }
                }
                done => return done.map_err(Into::into),
            }
        }
        Ok(rustix::fs::renameat(&self.fd, name, &to.fd, to_name)?)
    }

    /// Remove `name` of this directory and, when it is a directory,
    /// everything below it; a symlink is removed, never followed.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        self.remove_at(one_name(name)?, 0, 0)
    }

    /// [`Dir::remove`], with the directories of `name` down to `levels`
    /// below it removed side by side (at most [`SIDE_BY_SIDE`] at once in
    /// each): where removing a directory waits for the disk (a file system
    /// mounted with `discard` trims its block, milliseconds each), a
    /// tree's removal then takes about its depth, not its number of
    /// directories. Files are unlinked in line; deeper, one at a time.
    pub fn remove_side_by_side(&self, name: &OsStr, levels: usize) -> io::Result<()> {
        self.remove_at(one_name(name)?, 0, levels)
    }

    fn remove_at(&self, name: &OsStr, depth: usize, levels: usize) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(Errno::ISDIR | Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let dir = match self.subdir(name) {
            Ok(dir) => dir,
            // Swapped for something else since: unlink that instead.
            Err(e) if is_refused(&e) => return self.remove_at(name, depth + 1, levels),
            Err(e) => return Err(e),
        };
        if levels == 0 {
            for entry in dir.entries()? {
                dir.remove_at(&entry.name, depth + 1, 0)?;
            }
        } else {
            dir.remove_entries_side_by_side(depth + 1, levels - 1)?;
        }
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?)
    }

    /// Every entry of this directory: files (and symlinks) unlinked in
    /// line, what unlink refuses (a directory) on threads of its own, at
    /// most [`SIDE_BY_SIDE`] at once.
    fn remove_entries_side_by_side(&self, depth: usize, levels: usize) -> io::Result<()> {
        let mut dirs = Vec::new();
        for entry in self.entries()? {
            match rustix::fs::unlinkat(&self.fd, entry.name.as_os_str(), AtFlags::empty()) {
                Ok(()) => {}
                Err(Errno::ISDIR | Errno::PERM) => dirs.push(entry.name),
                Err(e) => return Err(e.into()),
            }
        }
        for batch in dirs.chunks(SIDE_BY_SIDE) {
            std::thread::scope(|scope| {
                let threads: Vec<_> = batch
                    .iter()
                    .map(|sub| {
                        let thread = std::thread::Builder::new()
                            .name("remove".into())
                            .spawn_scoped(scope, move || self.remove_at(sub, depth, levels));
                        (sub, thread)
                    })
                    .collect();
                // The first error stops the joins; the scope joins the rest.
                threads
                    .into_iter()
                    .try_for_each(|(sub, thread)| match thread {
                        Ok(thread) => thread
                            .join()
                            .unwrap_or_else(|_| Err(io::Error::other("a removal panicked"))),
                        // No thread: in line.
                        Err(_) => self.remove_at(sub, depth, levels),
                    })
            })?;
        }
        Ok(())
    }

    /// Copy `name` of this directory to `to_name` in `to` (which must not
    /// exist): directories and regular files with their permission bits
    /// and modification times, symlinks as symlinks (never followed);
    /// anything else is left out.
    pub fn copy(&self, name: &OsStr, to: &Dir, to_name: &OsStr) -> io::Result<()> {
        self.copy_at(one_name(name)?, to, one_name(to_name)?, 0)
    }

    fn copy_at(&self, name: &OsStr, to: &Dir, to_name: &OsStr, depth: usize) -> io::Result<()> {
        let stat = self.stat(name)?;
        let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
        let times = Timestamps {
            last_access: omit(),
            last_modification: Timespec {
                tv_sec: stat.st_mtime as _,
                tv_nsec: stat.st_mtime_nsec as _,
            },
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                if depth >= MAX_DEPTH {
                    return Err(too_deep());
                }
                let from = self.subdir(name)?;
                rustix::fs::mkdirat(&to.fd, to_name, Mode::from_raw_mode(0o700))?;
                let dest = to.subdir(to_name)?;
                for entry in from.entries()? {
                    from.copy_at(&entry.name, &dest, &entry.name, depth + 1)?;
                }
                rustix::fs::fchmod(&dest.fd, mode)?;
                rustix::fs::futimens(&dest.fd, &times)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&self.fd, name, Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), &to.fd, to_name)?;
            }
            FileType::RegularFile => {
                let Some(mut from) = self.open_file(name)? else {
                    return Ok(());
                };
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(&to.fd, to_name, flags, Mode::from_raw_mode(0o600))?;
                let mut out = File::from(fd);
                io::copy(&mut from, &mut out)?;
                rustix::fs::fchmod(&out, mode)?;
                rustix::fs::futimens(&out, &times)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Give `name` of this directory and everything below it to
    /// `uid`:`gid`; a symlink itself, never what it names.
    pub fn chown_tree(&self, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        self.chown_at(one_name(name)?, uid, gid, 0)
    }

    /// Give this directory and everything below it to `uid`:`gid`.
    pub fn chown_all(&self, uid: u32, gid: u32) -> io::Result<()> {
        rustix::fs::fchown(&self.fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        for entry in self.entries()? {
            self.chown_at(&entry.name, uid, gid, 1)?;
        }
        Ok(())
    }

    fn chown_at(&self, name: &OsStr, uid: u32, gid: u32, depth: usize) -> io::Result<()> {
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        rustix::fs::chownat(
            &self.fd,
            name,
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        match self.subdir(name) {
            Ok(dir) => {
                for entry in dir.entries()? {
                    dir.chown_at(&entry.name, uid.as_raw(), gid.as_raw(), depth + 1)?;
                }
                Ok(())
            }
            Err(e) if is_refused(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Bytes of the regular files under `name` (0 when it is missing);
    /// symlinks are not followed.
    pub fn size_of(&self, name: &OsStr) -> u64 {
        self.size_at(name, 0)
    }

    fn size_at(&self, name: &OsStr, depth: usize) -> u64 {
        let Ok(stat) = self.stat(name) else {
            return 0;
        };
        if !is_dir(&stat) {
            return if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile {
                stat.st_size as u64
            } else {
                0
            };
        }
        if depth >= MAX_DEPTH {
            return 0;
        }
        let Ok(dir) = self.subdir(name) else {
            return 0;
        };
        dir.entries()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| dir.size_at(&e.name, depth + 1))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Set the modification time of `name` of this directory (of a symlink
    /// itself, never of what it names).
    pub fn set_mtime(&self, name: &OsStr, sec: i64, nsec: i64) -> io::Result<()> {
        let times = Timestamps {
            last_access: omit(),
            last_modification: Timespec {
                tv_sec: sec as _,
                tv_nsec: nsec as _,
            },
        };
        Ok(rustix::fs::utimensat(
            &self.fd,
            one_name(name)?,
            &times,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }
}

fn omit() -> Timespec {
    Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_OMIT,
    }
}

fn too_deep() -> io::Error {
    io::Error::other(format!("deeper than {MAX_DEPTH} directories"))
}

/// The file `fd` opened, if it is a regular file.
fn regular(fd: OwnedFd) -> io::Result<Option<File>> {
    let stat = rustix::fs::fstat(&fd)?;
    Ok((FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile).then(|| File::from(fd)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, symlink};
    use std::sync::atomic::{AtomicBool, Ordering};

    fn errno(e: &io::Error) -> i32 {
        e.raw_os_error().unwrap_or(0)
    }

    #[test]
    fn paths_with_dot_dot_or_absolute_are_refused() {
        assert_eq!(components("./a//b/").unwrap(), ["a", "b"]);
        for bad in ["../x", "a/../../x", "/etc", "a\0b"] {
            assert!(components(bad).is_err(), "{bad}");
        }
        assert_eq!(split_last("a/b/c").unwrap(), Some(("a/b".to_string(), "c")));
        assert_eq!(split_last("c").unwrap(), Some((String::new(), "c")));
        assert_eq!(split_last(".").unwrap(), None);
    }

    #[test]
    fn a_symlink_on_the_way_is_refused_by_both_resolvers() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let outside = dir.path().join("outside");
        fs::create_dir_all(ws.join("real/deeper")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        symlink(&outside, ws.join("link")).unwrap();
        symlink("real", ws.join("relative")).unwrap();
        fs::write(ws.join("file"), "x").unwrap();
        let root = Dir::open(&ws).unwrap();
        assert!(root.open_dir("real/deeper").is_ok());
        for bad in ["link", "relative/deeper", "file/x"] {
            let e = root.open_dir(bad).unwrap_err();
            assert!(is_refused(&e), "{bad}: {e}");
            let parts = components(bad).unwrap();
            let e = root.walk(&parts).unwrap_err();
            assert!(is_refused(&e), "walk {bad}: {e}");
        }
        assert!(Dir::open(&ws.join("link")).is_err(), "the root itself");
        assert!(root.create_dirs("link/new", None).is_err());
        assert!(!outside.join("new").exists());
    }

    #[test]
    fn files_beneath_follow_links_only_inside() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir_all(ws.join("d")).unwrap();
        fs::write(dir.path().join("secret"), "s").unwrap();
        fs::write(ws.join("d/f"), "inside").unwrap();
        symlink("f", ws.join("d/to-f")).unwrap();
        symlink("../../secret", ws.join("d/up")).unwrap();
        symlink(dir.path().join("secret"), ws.join("d/abs")).unwrap();
        let root = Dir::open(&ws).unwrap();
        let mut text = String::new();
        use std::io::Read;
        root.open_beneath("d/to-f")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "inside");
        for out in ["d/up", "d/abs"] {
            let e = root.open_beneath(out).unwrap_err();
            assert!(is_refused(&e), "{out}: {e}");
        }
        let d = root.open_dir("d").unwrap();
        assert_eq!(
            errno(&d.open_file(OsStr::new("to-f")).unwrap_err()),
            libc::ELOOP
        );
    }

    #[test]
    fn copy_remove_and_chown_never_follow_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let victim = dir.path().join("victim");
        fs::create_dir_all(ws.join("t/sub")).unwrap();
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("keep"), "mine").unwrap();
        fs::write(ws.join("t/sub/a"), "a").unwrap();
        symlink(&victim, ws.join("t/link")).unwrap();
        let root = Dir::open(&ws).unwrap();
        root.copy(OsStr::new("t"), &root, OsStr::new("copy"))
            .unwrap();
        assert_eq!(fs::read_to_string(ws.join("copy/sub/a")).unwrap(), "a");
        assert_eq!(fs::read_link(ws.join("copy/link")).unwrap(), victim);
        assert_eq!(root.size_of(OsStr::new("copy")), 1);
        let me = rustix::process::geteuid().as_raw();
        let my_gid = rustix::process::getegid().as_raw();
        root.chown_tree(OsStr::new("copy"), me, my_gid).unwrap();
        root.remove(OsStr::new("copy")).unwrap();
        root.remove(OsStr::new("t")).unwrap();
        assert!(!ws.join("t").exists() && !ws.join("copy").exists());
        assert_eq!(fs::read_to_string(victim.join("keep")).unwrap(), "mine");
    }

    /// A thread swapping a directory and a symlink to a victim directory,
    /// as fast as it can, while the worker's hands work through that name:
    /// nothing lands in, or leaves, the victim.
    #[test]
    fn a_directory_swapped_for_a_symlink_in_a_loop_never_leads_out() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let victim = dir.path().join("victim");
        fs::create_dir_all(ws.join("flip")).unwrap();
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("secret"), "s").unwrap();
        symlink(&victim, ws.join("flip-link")).unwrap();
        let stop = AtomicBool::new(false);
        let swaps = std::sync::atomic::AtomicU64::new(0);
        let root = Dir::open(&ws).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let base = Dir::open(&ws).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let _ = rustix::fs::renameat_with(
                        &base,
                        "flip",
                        &base,
                        "flip-link",
                        RenameFlags::EXCHANGE,
                    );
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            });
            for i in 0..3000 {
                let name = format!("n{i}");
                if let Ok(d) = root.create_dirs(&format!("flip/{name}"), None) {
                    let _ = d.stat_self();
                }
                let _ = root.open_dir("flip").map(|d| d.remove(OsStr::new(&name)));
                let _ = root.open_beneath("flip/secret");
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert!(swaps.load(Ordering::Relaxed) > 1000, "the flipper ran");
        let names: Vec<_> = fs::read_dir(&victim)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret"], "nothing made in the victim");
        assert_eq!(fs::metadata(victim.join("secret")).unwrap().size(), 1);
    }

    /// A tree removed side by side goes whole, its symlinks removed and
    /// never followed, at any depth and breadth (more directories than
    /// are removed at once).
    #[test]
    fn a_tree_removed_side_by_side_goes_whole_and_never_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let victim = dir.path().join("victim");
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("keep"), "mine").unwrap();
        for i in 0..3 * SIDE_BY_SIDE {
            let deep = ws.join(format!("t/d{i}/a/b/c"));
            fs::create_dir_all(&deep).unwrap();
            fs::write(deep.join("f"), "x").unwrap();
            fs::write(ws.join(format!("t/d{i}/g")), "y").unwrap();
            symlink(&victim, ws.join(format!("t/d{i}/a/to-victim"))).unwrap();
        }
        symlink(&victim, ws.join("t/top-link")).unwrap();
        fs::write(ws.join("t/file"), "z").unwrap();
        symlink(&victim, ws.join("link-itself")).unwrap();
        let root = Dir::open(&ws).unwrap();
        for levels in [0, 1, 2, 5] {
            let copy = format!("copy{levels}");
            root.copy(OsStr::new("t"), &root, OsStr::new(&copy))
                .unwrap();
            root.remove_side_by_side(OsStr::new(&copy), levels).unwrap();
            assert!(!ws.join(&copy).exists(), "{levels}");
        }
        root.remove_side_by_side(OsStr::new("t"), 2).unwrap();
        root.remove_side_by_side(OsStr::new("link-itself"), 2)
            .unwrap();
        assert_eq!(fs::read_dir(&ws).unwrap().count(), 0);
        assert_eq!(fs::read_to_string(victim.join("keep")).unwrap(), "mine");
        assert!(
            root.remove_side_by_side(OsStr::new("../victim"), 2)
                .is_err()
        );
        assert!(victim.join("keep").exists());
    }
}
