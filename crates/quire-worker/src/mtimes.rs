//! Source files' modification times, carried over with a job's cache.
//!
//! A checkout writes every file anew, so each has the time of the
//! checkout; a build tool that decides by modification time (cargo, make,
//! ninja) then sees every source newer than the build output the cache
//! restored and rebuilds it all. So a cache also keeps, for each file of
//! the commit that no step changed, its blob and its time (`mtimes` beside
//! the entry's `meta`); a later restore gives a file of the new checkout
//! the recorded time when it holds the same blob at the same path. A file
//! that changed between the two commits keeps the time of the checkout,
//! newer than anything the cache holds, so it is rebuilt.
//!
//! No git runs here: what the checkout wrote is known from the commit's
//! tree ([`crate::git::TreeFile`]) and each file's `lstat` right
//! after it was written. A file whose inode, size or time differ from
//! that (a step wrote it) is neither given a time nor recorded. When a
//! `.gitattributes` file differs between the record and the checkout (the
//! same blob may then be written differently), no time is given at all.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use quire_exec::beneath::Dir;
use rustix::fs::FileType;

use crate::git::TreeFile;

/// The first line of an `mtimes` file.
const HEADER: &[u8] = b"quire-mtimes 1\n";

/// What identifies a file's state, as git's index does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ino: u64,
    size: u64,
    sec: i64,
    nsec: i64,
}

impl Stat {
    /// `lstat` of the file `path` of the workspace, reached by descriptors
    /// from `ws` (a symlink on the way, or swapped in by a step, is not
    /// followed); `at` keeps the last directory opened, as the files come
    /// in path order.
    fn of(at: &mut Parent, ws: &Dir, path: &[u8]) -> Option<Stat> {
        let (dir, name) = at.of(ws, path)?;
        let stat = dir.stat(name).ok()?;
        (FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile).then_some(Stat {
            ino: stat.st_ino,
            size: stat.st_size as u64,
            sec: stat.st_mtime,
            nsec: stat.st_mtime_nsec as i64,
        })
    }
}

/// The directory of the last file looked at, held open.
#[derive(Default)]
struct Parent {
    path: Option<Vec<u8>>,
    dir: Option<Dir>,
}

impl Parent {
    /// The directory holding `path` in `ws`, and the file's name in it.
    fn of<'p>(&mut self, ws: &Dir, path: &'p [u8]) -> Option<(&Dir, &'p OsStr)> {
        let (parent, name) = match path.iter().rposition(|b| *b == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&path[..0], path),
        };
        if self.path.as_deref() != Some(parent) {
            self.dir = match std::str::from_utf8(parent) {
                Ok(parent) => ws.open_dir(parent).ok(),
                // A name that is not UTF-8: one component at a time.
                Err(_) => {
                    let parts: Vec<&OsStr> = parent
                        .split(|b| *b == b'/')
                        .filter(|p| !p.is_empty())
                        .map(OsStr::from_bytes)
                        .collect();
                    ws.walk(&parts).ok()
                }
            };
            self.path = Some(parent.to_vec());
        }
        Some((self.dir.as_ref()?, OsStr::from_bytes(name)))
    }
}

#[derive(Debug)]
struct Tracked {
    blob: String,
    /// As the checkout (or a restore since) left it; none when it was not
    /// a plain file then.
    stat: Option<Stat>,
}

/// A run's checkout: its files, their blobs, and their state as written.
#[derive(Debug)]
pub struct Checkout {
    workspace: PathBuf,
    files: Mutex<BTreeMap<Vec<u8>, Tracked>>,
}

impl Checkout {
    /// Note the state of `files` in `workspace`, right after the checkout
    /// wrote them (before any step ran).
    pub fn new(workspace: &Path, files: Vec<TreeFile>) -> Checkout {
        let ws = Dir::open(workspace).ok();
        let mut at = Parent::default();
        let files = files
            .into_iter()
            .map(|file| {
                let stat = ws.as_ref().and_then(|ws| Stat::of(&mut at, ws, &file.path));
                let tracked = Tracked {
                    blob: file.blob.to_string(),
                    stat,
                };
                (file.path, tracked)
            })
            .collect();
        Checkout {
            workspace: workspace.to_path_buf(),
            files: Mutex::new(files),
        }
    }

    /// The `mtimes` record of the workspace now: every file of the commit
    /// that is as the checkout left it, with its blob and time.
    pub fn record(&self) -> Vec<u8> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = HEADER.to_vec();
        let Ok(ws) = Dir::open(&self.workspace) else {
            return out;
        };
        let mut at = Parent::default();
        for (path, tracked) in files.iter() {
            let Some(then) = tracked.stat else { continue };
            if Stat::of(&mut at, &ws, path) != Some(then) {
                continue;
            }
            out.extend_from_slice(
                format!("{} {} {} ", tracked.blob, then.sec, then.nsec).as_bytes(),
            );
            out.extend_from_slice(path);
            out.push(0);
        }
        out
    }

    /// Give the files of the checkout that hold the blob `record` holds
    /// for their path, and that no step changed, the recorded time. A
    /// line for the job's log, or none when the record gives no time.
    pub fn apply(&self, record: &[u8]) -> Option<String> {
        let recorded = parse(record)?;
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let attributes_differ = files
            .iter()
            .filter(|(path, _)| is_attributes(path))
            .any(|(path, t)| recorded.get(path.as_slice()).map(|r| r.0) != Some(&t.blob))
            || recorded
                .keys()
                .any(|path| is_attributes(path) && !files.contains_key(*path));
        if attributes_differ {
            return Some(
                "a .gitattributes file changed since the cache was saved: every file keeps the checkout's time".into(),
            );
        }
        let ws = Dir::open(&self.workspace).ok()?;
        let mut at = Parent::default();
        let mut given = 0usize;
        let mut fresh = 0usize;
        for (path, tracked) in files.iter_mut() {
            let Some(then) = tracked.stat else { continue };
            let Some(&(blob, sec, nsec)) = recorded.get(path.as_slice()) else {
                fresh += 1;
                continue;
            };
            if blob != tracked.blob {
                fresh += 1;
                continue;
            }
            // Checked and set through the directory held open: a step
            // that swaps a directory on the way for a symlink meanwhile
            // changes which file of the workspace is met, never leads out.
            if Stat::of(&mut at, &ws, path) != Some(then) {
                continue;
            }
            let Some((dir, name)) = at.of(&ws, path) else {
                continue;
            };
            if dir.set_mtime(name, sec, nsec).is_ok() {
                tracked.stat = Stat::of(&mut at, &ws, path);
                given += 1;
            }
        }
        Some(format!(
            "{given} files of the checkout given their time from the cache's run, {fresh} changed since (they keep the checkout's time)"
        ))
    }
}

fn is_attributes(path: &[u8]) -> bool {
    path.rsplit(|b| *b == b'/').next() == Some(b".gitattributes")
}

/// A recorded file's blob and time (seconds, nanoseconds).
type Recorded<'a> = (&'a str, i64, i64);

/// An `mtimes` file, by path. None when it is not one (a record is all or
/// nothing).
fn parse(record: &[u8]) -> Option<BTreeMap<&[u8], Recorded<'_>>> {
    let body = record.strip_prefix(HEADER)?;
    let mut out = BTreeMap::new();
    for entry in body.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let mut parts = entry.splitn(4, |b| *b == b' ');
        let blob = std::str::from_utf8(parts.next()?).ok()?;
        let sec = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let nsec: i64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let path = parts.next()?;
        if !(0..1_000_000_000).contains(&nsec) || path.is_empty() {
            return None;
        }
        out.insert(path, (blob, sec, nsec));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gix::ObjectId;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    fn blob(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    /// Write `files` (path, blob number) as a checkout would, with the
    /// time `at` when given, and note them.
    fn checkout(dir: &Path, files: &[(&str, u8)], at: Option<i64>) -> Checkout {
        let files = files
            .iter()
            .map(|(path, n)| {
                let full = dir.join(path);
                fs::create_dir_all(full.parent().unwrap()).unwrap();
                fs::write(&full, [*n]).unwrap();
                if let Some(sec) = at {
                    let file = fs::File::options().write(true).open(&full).unwrap();
                    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(sec as u64);
                    file.set_modified(when).unwrap();
                }
                TreeFile {
                    path: path.as_bytes().to_vec(),
                    blob: blob(*n),
                }
            })
            .collect();
        Checkout::new(dir, files)
    }

    fn mtime(path: &Path) -> (i64, i64) {
        let meta = fs::metadata(path).unwrap();
        (meta.mtime(), meta.mtime_nsec())
    }

    #[test]
    fn unchanged_files_get_the_recorded_time_changed_ones_keep_theirs() {
        let one = tempfile::tempdir().unwrap();
        // The first run's checkout, long ago.
        let first = checkout(
            one.path(),
            &[("src/lib.rs", 1), ("a.rs", 2), ("touched.rs", 3)],
            Some(1_000_000),
        );
        // A step rewrites one file: it is not recorded.
        fs::write(one.path().join("touched.rs"), b"x").unwrap();
        let record = first.record();

        let two = tempfile::tempdir().unwrap();
        let second = checkout(
            two.path(),
            &[
                ("src/lib.rs", 1),
                ("a.rs", 9),
                ("touched.rs", 3),
                ("new.rs", 4),
            ],
            None,
        );
        let line = second.apply(&record).unwrap();
        assert_eq!(mtime(&two.path().join("src/lib.rs")), (1_000_000, 0));
        assert_ne!(mtime(&two.path().join("a.rs")).0, 1_000_000, "another blob");
        assert_ne!(mtime(&two.path().join("touched.rs")).0, 1_000_000);
        assert!(line.starts_with("1 files"), "{line}");
        // The time a restore gave counts as the checkout's: recorded again.
        let again = second.record();
        let expected = b"1000000 0 src/lib.rs";
        assert!(again.windows(expected.len()).any(|w| w == expected));
        // A step of this run changes it after all: no longer recorded.
        fs::write(two.path().join("src/lib.rs"), b"changed").unwrap();
        let third = second.record();
        assert!(!third.windows(expected.len()).any(|w| w == expected));
    }

    #[test]
    fn a_changed_gitattributes_gives_no_time() {
        let one = tempfile::tempdir().unwrap();
        let first = checkout(one.path(), &[(".gitattributes", 1), ("a.txt", 2)], None);
        let record = first.record();
        let two = tempfile::tempdir().unwrap();
        let second = checkout(two.path(), &[(".gitattributes", 5), ("a.txt", 2)], None);
        let before = mtime(&two.path().join("a.txt"));
        let line = second.apply(&record).unwrap();
        assert!(line.contains(".gitattributes"), "{line}");
        assert_eq!(mtime(&two.path().join("a.txt")), before);
    }

    #[test]
    fn a_garbled_record_gives_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = checkout(dir.path(), &[("a", 1)], None);
        for bad in [&b""[..], b"nope", b"quire-mtimes 1\nxx 1 5000000000 a\0"] {
            assert!(c.apply(bad).is_none());
        }
    }
}
