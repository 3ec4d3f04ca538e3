//! Jobs' caches between runs (docs/PIPELINE.md, "Caches"), kept in the
//! home beside the runs, so restoring and saving is a `rename`:
//!
//! ```text
//! caches/<repo_id>/<job>/<branch>/entry/files/<path>   what the job saved
//! caches/<repo_id>/<job>/<branch>/entry/meta           its size and run; its mtime is when it was last used
//! caches/<repo_id>/<job>/<branch>/entry/mtimes         the commit's unchanged files' times (crate::mtimes)
//! ```
//!
//! `<branch>` is the branch name with `/`, `%` and anything unusual
//! escaped as `%XX`. An entry is only ever built under a temporary name
//! (`tmp-<run>`) and swapped into place whole, and only ever taken away
//! whole (renamed to `taking-<run>` or `evicting-<run>`), so a run sees a
//! complete entry or none.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use quire_exec::beneath::{self, Dir};
use quire_exec::exec::JobCache;
use quire_model::refs::RefName;
use quire_store::Home;
use rustix::fs::{CWD, RenameFlags, renameat_with};
use rustix::io::Errno;

use crate::mtimes::Checkout;
use quire_view::text::human_bytes;

/// The name of the published entry in a key's directory.
const ENTRY: &str = "entry";

/// Every cache of a home: `<home>/caches`.
#[derive(Debug, Clone)]
pub struct Caches {
    root: PathBuf,
}

/// One saved cache.
#[derive(Debug, Clone)]
pub struct Entry {
    pub repo_id: i64,
    pub job: String,
    pub branch: String,
    /// Bytes of its files, as counted when it was saved.
    pub size: u64,
    /// When it was last saved or restored (milliseconds since the epoch).
    pub last_used_ms: i64,
    /// The run that saved it.
    pub run: Option<String>,
    /// `caches/<repo_id>/<job>/<branch>/entry`.
    pub dir: PathBuf,
}

impl Caches {
    pub fn of(home: &Home) -> Caches {
        Caches {
            root: home.dir().join("caches"),
        }
    }

    /// The home that holds `caches/`.
    fn home(&self) -> &Path {
        self.root.parent().unwrap_or(&self.root)
    }

    /// Where the cache of (repository, job, branch) lives.
    fn key(&self, repo_id: i64, job: &str, branch: &str) -> PathBuf {
        self.root
            .join(repo_id.to_string())
            .join(job)
            .join(escape(branch))
    }

    /// Every saved cache, by repository, job and branch.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for (repo_id, repo_dir) in subdirs(&self.root) {
            let Ok(repo_id) = repo_id.parse::<i64>() else {
                continue;
            };
            for (job, job_dir) in subdirs(&repo_dir) {
                for (branch, key) in subdirs(&job_dir) {
                    let dir = key.join(ENTRY);
                    let Some((size, last_used_ms, run)) = read_meta(&dir) else {
                        continue;
                    };
                    out.push(Entry {
                        repo_id,
                        job: job.clone(),
                        branch: unescape(&branch),
                        size,
                        last_used_ms,
                        run,
                        dir,
                    });
                }
            }
        }
        out.sort_by(|a, b| (a.repo_id, &a.job, &a.branch).cmp(&(b.repo_id, &b.job, &b.branch)));
        out
    }

    /// The ids of the repositories that have caches.
    pub fn repo_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = subdirs(&self.root)
            .filter_map(|(name, _)| name.parse().ok())
            .collect();
        ids.sort();
        ids
    }

    /// Evict `repo_id`'s least recently used caches until the rest fit in
    /// `cap` bytes; what was evicted (or would be, with `dry_run`).
    pub fn trim(&self, repo_id: i64, cap: u64, dry_run: bool) -> Vec<Entry> {
        let mut entries: Vec<Entry> = self
            .entries()
            .into_iter()
            .filter(|e| e.repo_id == repo_id)
            .collect();
        entries.sort_by_key(|e| e.last_used_ms);
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        let mut evicted = Vec::new();
        for entry in entries {
            if total <= cap {
                break;
            }
            total -= entry.size;
            if !dry_run {
                evict(&entry.dir);
            }
            evicted.push(entry);
        }
        evicted
    }
}

/// What an interrupted save, restore or eviction left in a key's
/// directory (a worker killed midway): never an entry, so never restored,
/// listed or evicted, only swept.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub dir: PathBuf,
    pub owner: Owner,
    pub size: u64,
}

/// Who was working on a leftover: a run (`tmp-<run>`, `taking-<run>`) or a
/// process (`evicting-<pid>-...`, `old-<pid>-...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Run(String),
    Process(i32),
    /// A name quire does not make.
    Unknown,
}

impl Caches {
    /// Every leftover under the caches.
    pub fn leftovers(&self) -> Vec<Leftover> {
        let mut out = Vec::new();
        for (_, repo_dir) in subdirs(&self.root) {
            for (_, job_dir) in subdirs(&repo_dir) {
                for (_, key) in subdirs(&job_dir) {
                    for (name, dir) in subdirs(&key).filter(|(name, _)| name != ENTRY) {
                        out.push(Leftover {
                            owner: owner(&name),
                            size: size_of(&dir),
                            dir,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| a.dir.cmp(&b.dir));
        out
    }
}

fn owner(name: &str) -> Owner {
    if let Some(run) = name
        .strip_prefix("tmp-")
        .or_else(|| name.strip_prefix("taking-"))
    {
        return Owner::Run(run.to_string());
    }
    name.strip_prefix("evicting-")
        .or_else(|| name.strip_prefix("old-"))
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(pid, _)| pid.parse().ok())
        .map_or(Owner::Unknown, Owner::Process)
}

/// Take an entry away whole, then delete it: a restore running beside
/// this takes the whole entry or finds none.
fn evict(entry: &Path) {
    let gone = entry.with_file_name(format!(
        "evicting-{}-{}",
        quire_model::process::host_pid(),
        nanos()
    ));
    if fs::rename(entry, &gone).is_ok() {
        let _ = fs::remove_dir_all(&gone);
    }
}

/// The caches of one run's jobs: its repository and branch, with the
/// default branch's as the fallback, under the home's `cache_max_mb`.
#[derive(Debug)]
pub struct RunCache {
    caches: Caches,
    repo_id: i64,
    run_id: String,
    /// The run's branch; none for a tag, which restores the default
    /// branch's caches and saves none.
    branch: Option<String>,
    /// The branch the bare repository's HEAD names.
    default_branch: Option<String>,
    /// The repository's caches' cap, in bytes.
    cap: u64,
    cap_mb: u64,
    /// The run's checkout, to carry files' times over with the caches.
    /// Without one (the run's jobs check out on a cluster's nodes), the
    /// times a restore took are kept for the job's host
    /// ([`JobCache::restored_times`]), which gives them and records its own.
    checkout: Option<Checkout>,
    /// The times each job's restore took, for its host.
    for_host: Mutex<HashMap<String, Vec<u8>>>,
    /// Who owns what is restored (uid, gid): the steps' `run_as` user.
    owner: Option<(u32, u32)>,
}

impl RunCache {
    pub fn new(
        home: &Home,
        repo_id: i64,
        run_id: &str,
        ref_name: &str,
        default_branch: Option<String>,
        cap_mb: u64,
    ) -> RunCache {
        RunCache {
            caches: Caches::of(home),
            repo_id,
            run_id: run_id.to_string(),
            branch: RefName::new(ref_name).branch().map(str::to_string),
            default_branch,
            cap: cap_mb.saturating_mul(1024 * 1024),
            cap_mb,
            checkout: None,
            for_host: Mutex::new(HashMap::new()),
            owner: None,
        }
    }

    /// Carry the checkout's files' times over with the caches
    /// ([`crate::mtimes`]).
    pub fn with_checkout(mut self, checkout: Checkout) -> RunCache {
        self.checkout = Some(checkout);
        self
    }

    /// Restored paths (and the directories made to hold them) go to this
    /// uid and gid, so steps running as `run_as` can change them.
    pub fn owned_by(mut self, owner: Option<(u32, u32)>) -> RunCache {
        self.owner = owner;
        self
    }

    /// Restore from `branch`'s entry: taken away and moved in when it is
    /// the run's own branch, copied and put back when it is the default
    /// branch's (another branch must not take it). None when there is no
    /// entry to take.
    ///
    /// The workspace side is reached only through directory descriptors
    /// (`quire_exec::beneath`): a step of another job may swap any
    /// directory of the workspace for a symlink at any moment, and the
    /// restore must still put nothing outside the workspace.
    fn restore_from(
        &self,
        job: &str,
        paths: &[String],
        workspace: &Path,
        branch: &str,
        own: bool,
    ) -> Option<Vec<String>> {
        let started = Instant::now();
        let key = self.caches.key(self.repo_id, job, branch);
        let taken = key.join(format!("taking-{}", self.run_id));
        if let Err(e) = fs::rename(key.join(ENTRY), &taken) {
            return (e.kind() != io::ErrorKind::NotFound)
                .then(|| vec![format!("cannot take the cache of branch {branch}: {e}")]);
        }
        let (size, _, _) = read_meta(&taken).unwrap_or_default();
        let mut lines = Vec::new();
        let mut restored = Vec::new();
        match (Dir::open(&taken.join("files")), Dir::open(workspace)) {
            (Ok(files), Ok(ws)) => {
                for path in paths {
                    match self.restore_path(&files, &ws, path, !own) {
                        Ok(true) => restored.push(path.as_str()),
                        Ok(false) => {}
                        Err(line) => lines.push(line),
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => lines.push(format!("cannot restore: {e}")),
        }
        if !restored.is_empty()
            && let Ok(record) = read_times(&taken.join("mtimes"))
        {
            match &self.checkout {
                Some(checkout) => lines.extend(checkout.apply(&record)),
                None => {
                    self.for_host
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(job.to_string(), record);
                }
            }
        }
        if own || fs::rename(&taken, key.join(ENTRY)).is_err() {
            // Ours to drop; or a newer save took the name while we copied.
            let _ = fs::remove_dir_all(&taken);
        } else {
            touch(&key.join(ENTRY));
        }
        let whose = if own {
            format!("branch {branch}")
        } else {
            format!("the default branch {branch}")
        };
        lines.insert(
            0,
            format!(
                "restored {} from {whose} ({}) in {} ms",
                list(&restored),
                human_bytes(size),
                started.elapsed().as_millis()
            ),
        );
        Some(lines)
    }

    /// Put the entry's `path` (under `files`) into the workspace: whether
    /// there was one to restore, or the line that says why it was not.
    fn restore_path(&self, files: &Dir, ws: &Dir, path: &str, copy: bool) -> Result<bool, String> {
        let Ok(Some((parent, name))) = beneath::split_last(path) else {
            return Err(format!(
                "{path} is not a path in the workspace; not restored"
            ));
        };
        let name = OsStr::new(name);
        let Ok(from) = files.open_dir(&parent) else {
            return Ok(false);
        };
        if from.stat(name).is_err() {
            return Ok(false);
        }
        let to = ws.create_dirs(&parent, self.owner).map_err(|e| {
            if beneath::is_refused(&e) {
                format!("{path} lies behind a symlink or a file in the checkout; not restored")
            } else {
                format!("cannot restore {path}: {e}")
            }
        })?;
        merge(&from, &to, name, copy)
            .and_then(|()| match self.owner {
                Some((uid, gid)) => to.chown_tree(name, uid, gid),
                None => Ok(()),
            })
            .map_err(|e| format!("cannot restore {path}: {e}"))?;
        Ok(true)
    }

    fn save_to(
        &self,
        job: &str,
        paths: &[String],
        workspace: &Path,
        branch: &str,
        times: Option<&[u8]>,
    ) -> Vec<String> {
        let started = Instant::now();
        let key = self.caches.key(self.repo_id, job, branch);
        let tmp = key.join(format!("tmp-{}", self.run_id));
        let _ = fs::remove_dir_all(&tmp);
        // Made from the home down, never the home itself: a home deleted
        // meanwhile stays gone.
        let below = tmp
            .strip_prefix(self.caches.home())
            .map(|rel| format!("{}/files", rel.display()))
            .unwrap_or_default();
        let opened = Dir::open(self.caches.home())
            .and_then(|home| home.create_dirs_mode(&below, 0o700, None))
            .and_then(|files| Ok((files, Dir::open(workspace)?)));
        let (files, ws) = match opened {
            Ok(dirs) => dirs,
            Err(e) => return vec![format!("cannot save: {}: {e}", tmp.display())],
        };
        // Before the cached paths leave: the commit's own files in them
        // are recorded as they were.
        let mtimes = match times {
            Some(times) => Some(times.to_vec()),
            None => self.checkout.as_ref().map(Checkout::record),
        };
        let mut lines = Vec::new();
        let mut saved = Vec::new();
        for path in paths {
            match save_path(&ws, &files, path) {
                Ok(()) => saved.push(path.as_str()),
                Err(line) => lines.push(line),
            }
        }
        if saved.is_empty() {
            let _ = fs::remove_dir_all(&tmp);
            return lines;
        }
        let size = size_of(&tmp.join("files"));
        let meta = format!("size {size}\nrun {}\n", self.run_id);
        let written = match mtimes {
            Some(mtimes) => fs::write(tmp.join("mtimes"), mtimes),
            None => Ok(()),
        };
        if let Err(e) = written
            .and_then(|()| fs::write(tmp.join("meta"), meta))
            .and_then(|()| publish(&tmp, &key.join(ENTRY)))
        {
            let _ = fs::remove_dir_all(&tmp);
            lines.push(format!("cannot save: {e}"));
            return lines;
        }
        lines.insert(
            0,
            format!(
                "saved {} for branch {branch} ({}) in {} ms",
                list(&saved),
                human_bytes(size),
                started.elapsed().as_millis()
            ),
        );
        for gone in self.caches.trim(self.repo_id, self.cap, false) {
            lines.push(format!(
                "evicted the cache of job {} on branch {} ({}), the least recently used, to fit cache_max_mb = {}",
                gone.job,
                gone.branch,
                human_bytes(gone.size),
                self.cap_mb
            ));
        }
        lines
    }
}

/// Move the workspace's `path` into the entry being built (`files`), by
/// descriptors: the directory holding it is opened below the workspace
/// without following a symlink, and the name in it is moved as whatever it
/// is (a symlink stays a symlink). The line that says why not, if not.
fn save_path(ws: &Dir, files: &Dir, path: &str) -> Result<(), String> {
    let Ok(Some((parent, name))) = beneath::split_last(path) else {
        return Err(format!("{path} is not a path in the workspace; not saved"));
    };
    let name = OsStr::new(name);
    let from = match ws.open_dir(&parent) {
        Ok(dir) => dir,
        Err(e) if beneath::is_refused(&e) => {
            return Err(format!(
                "{path} lies behind a symlink in the workspace; not saved"
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("{path} does not exist; nothing to save"));
        }
        Err(e) => return Err(format!("cannot save {path}: {e}")),
    };
    if from.stat(name).is_err() {
        return Err(format!("{path} does not exist; nothing to save"));
    }
    let moved = files.create_dirs(&parent, None).and_then(|to| {
        match from.rename(name, &to, name, true) {
            // Another file system: copy, then remove what was copied.
            Err(e) if e.raw_os_error() == Some(Errno::XDEV.raw_os_error()) => {
                from.copy(name, &to, name).and_then(|()| from.remove(name))
            }
            done => done,
        }
    });
    moved.map_err(|e| format!("cannot save {path}: {e}"))
}

impl JobCache for RunCache {
    fn restore(&self, job: &str, paths: &[String], workspace: &Path) -> Vec<String> {
        let own = self.branch.iter().map(|b| (b, true));
        let fallback = self
            .default_branch
            .iter()
            .filter(|d| self.branch.as_ref() != Some(*d))
            .map(|d| (d, false));
        let mut looked = Vec::new();
        for (branch, is_own) in own.chain(fallback) {
            if let Some(lines) = self.restore_from(job, paths, workspace, branch, is_own) {
                return lines;
            }
            looked.push(format!("branch {branch}"));
        }
        if looked.is_empty() {
            looked.push("no branch".into());
        }
        vec![format!(
            "no cache of job {job} on {}; starting without one",
            looked.join(" or ")
        )]
    }

    fn save(&self, job: &str, paths: &[String], workspace: &Path) -> Vec<String> {
        self.save_with_times(job, paths, workspace, None)
    }

    fn restored_times(&self, job: &str) -> Option<Vec<u8>> {
        self.for_host
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(job)
    }

    fn save_with_times(
        &self,
        job: &str,
        paths: &[String],
        workspace: &Path,
        times: Option<&[u8]>,
    ) -> Vec<String> {
        match &self.branch {
            Some(branch) => self.save_to(job, paths, workspace, branch, times),
            None => vec!["not saved: only a branch's run saves caches".into()],
        }
    }
}

/// A cache entry's record of file times, if it has one of a sane size.
fn read_times(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut record = Vec::new();
    fs::File::open(path)?
        .take(quire_exec::remote::MAX_TIMES)
        .read_to_end(&mut record)?;
    Ok(record)
}

/// Put the complete entry `tmp` in place of `entry`, atomically: swapped
/// with the entry it replaces (then deleted), or renamed when there is
/// none. Of two saves of one key, the last to swap wins.
fn publish(tmp: &Path, entry: &Path) -> io::Result<()> {
    loop {
        match renameat_with(CWD, tmp, CWD, entry, RenameFlags::EXCHANGE) {
            // `tmp` now holds the entry it replaced.
            Ok(()) => return fs::remove_dir_all(tmp),
            Err(Errno::NOENT) => match fs::rename(tmp, entry) {
                Ok(()) => return Ok(()),
                // Another save published first: swap with it.
                Err(e) if is_not_empty(&e) => continue,
                Err(e) => return Err(e),
            },
            // No exchange on this file system: move the old entry aside
            // first (a restore meanwhile finds none).
            Err(Errno::INVAL | Errno::NOSYS) => {
                let old = tmp.with_file_name(format!(
                    "old-{}-{}",
                    quire_model::process::host_pid(),
                    nanos()
                ));
                if fs::rename(entry, &old).is_ok() {
                    let _ = fs::remove_dir_all(&old);
                }
                match fs::rename(tmp, entry) {
                    Ok(()) => return Ok(()),
                    Err(e) if is_not_empty(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_not_empty(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
    )
}

/// Put `name` of `from` (the entry) at `name` in `to` (the workspace),
/// moving it (or copying, with `copy`); where the checkout has it already,
/// directories merge and the checkout's own files win. Descriptors all the
/// way down: a directory of the workspace swapped for a symlink is met as
/// a symlink, and the checkout's side wins.
fn merge(from: &Dir, to: &Dir, name: &OsStr, copy: bool) -> io::Result<()> {
    match to.stat(name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let placed = if copy {
                from.copy(name, to, name)
            } else {
                from.rename(name, to, name, true)
            };
            match placed {
                // Something took the name meanwhile: it wins.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                done => done,
            }
        }
        Err(e) => Err(e),
        Ok(_) if to.is_dir(name) && from.is_dir(name) => {
            let (from, to) = match (from.subdir(name), to.subdir(name)) {
                (Ok(from), Ok(to)) => (from, to),
                (_, Err(e)) if beneath::is_refused(&e) => return Ok(()),
                (Err(e), _) | (_, Err(e)) => return Err(e),
            };
            for entry in from.entries()? {
                merge(&from, &to, &entry.name, copy)?;
            }
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

/// An entry's size and saving run from its `meta`, and when it was last
/// used (the file's mtime).
fn read_meta(entry: &Path) -> Option<(u64, i64, Option<String>)> {
    let path = entry.join("meta");
    let text = fs::read_to_string(&path).ok()?;
    let mtime = fs::metadata(&path).ok()?.modified().ok()?;
    let mut size = 0;
    let mut run = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("size", n)) => size = n.parse().unwrap_or(0),
            Some(("run", id)) => run = Some(id.to_string()),
            _ => {}
        }
    }
    Some((size, millis(mtime), run))
}

/// Mark an entry used now.
fn touch(entry: &Path) {
    if let Ok(file) = fs::File::options().append(true).open(entry.join("meta")) {
        let _ = file.set_modified(SystemTime::now());
    }
}

fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Bytes of the files under `path` (links not followed).
pub fn size_of(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

/// The directories in `dir`, by name (none when it does not exist).
fn subdirs(dir: &Path) -> impl Iterator<Item = (String, PathBuf)> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
}

fn list(paths: &[&str]) -> String {
    if paths.is_empty() {
        "nothing".into()
    } else {
        paths.join(", ")
    }
}

/// A branch name as one file name: `/`, `%`, a leading `.` and any byte
/// outside `A-Z a-z 0-9 . _ -` become `%XX`.
fn escape(branch: &str) -> String {
    let mut out = String::new();
    for (i, byte) in branch.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric() || b"_-".contains(&byte) || byte == b'.' && i > 0;
        if plain {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = name
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_escape_to_one_file_name_and_back() {
        for branch in ["main", "feature/x", ".hidden", "a%b", "release/1.0", "ünï"] {
            let escaped = escape(branch);
            assert!(
                !escaped.contains('/') && !escaped.starts_with('.'),
                "{escaped}"
            );
            assert_eq!(unescape(&escaped), branch);
        }
        assert_eq!(escape("feature/x"), "feature%2Fx");
    }

    #[test]
    fn leftovers_name_who_made_them() {
        assert_eq!(owner("tmp-0190abc"), Owner::Run("0190abc".into()));
        assert_eq!(owner("taking-r1"), Owner::Run("r1".into()));
        assert_eq!(owner("evicting-42-1700"), Owner::Process(42));
        assert_eq!(owner("old-7-1"), Owner::Process(7));
        assert_eq!(owner("stray"), Owner::Unknown);
    }

    /// Runs of one job and branch saving and restoring at once, on the
    /// real file system: every restore finds a whole entry (all its files
    /// from one save) or none, and the end leaves one entry and nothing
    /// else.
    #[test]
    fn saves_and_restores_of_one_key_at_once_never_see_half_an_entry() {
        const FILES: usize = 40;
        const ROUNDS: usize = 60;
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home"));
        // A save makes nothing above the home: it must exist.
        fs::create_dir_all(home.dir()).unwrap();
        let cache = |run: &str, branch: &str| {
            RunCache::new(
                &home,
                1,
                run,
                &format!("refs/heads/{branch}"),
                Some("main".into()),
                1024,
            )
        };
        let paths = vec!["target".to_string()];
        std::thread::scope(|scope| {
            for saver in 0..2 {
                let paths = &paths;
                let cache = &cache;
                let root = dir.path();
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        let run = format!("save{saver}-{round}");
                        let ws = root.join(&run);
                        fs::create_dir_all(ws.join("target")).unwrap();
                        for f in 0..FILES {
                            fs::write(ws.join("target").join(f.to_string()), &run).unwrap();
                        }
                        let lines = cache(&run, "main").save("build", paths, &ws);
                        assert!(lines[0].starts_with("saved target"), "{lines:?}");
                        fs::remove_dir_all(&ws).unwrap();
                    }
                });
            }
            for restorer in 0..2 {
                let paths = &paths;
                let cache = &cache;
                let root = dir.path();
                // One restores its own branch's entry (taking it), one a
                // feature branch's from main's (copying it).
                let branch = if restorer == 0 { "main" } else { "feature" };
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        let run = format!("restore{restorer}-{round}");
                        let ws = root.join(&run);
                        fs::create_dir_all(&ws).unwrap();
                        cache(&run, branch).restore("build", paths, &ws);
                        let target = ws.join("target");
                        if target.exists() {
                            let contents: std::collections::BTreeSet<String> =
                                fs::read_dir(&target)
                                    .unwrap()
                                    .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
                                    .collect();
                            let count = fs::read_dir(&target).unwrap().count();
                            assert_eq!(count, FILES, "a whole entry");
                            assert_eq!(contents.len(), 1, "from one save: {contents:?}");
                        }
                        fs::remove_dir_all(&ws).unwrap();
                    }
                });
            }
        });
        let caches = Caches::of(&home);
        assert!(caches.leftovers().is_empty(), "{:?}", caches.leftovers());
        let entries = caches.entries();
        assert!(entries.len() <= 1, "{entries:?}");
    }

    #[test]
    fn a_second_save_of_one_key_replaces_the_first_whole() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join(ENTRY);
        for (n, run) in ["one", "two"].iter().enumerate() {
            let tmp = dir.path().join(format!("tmp-{run}"));
            fs::create_dir_all(tmp.join("files")).unwrap();
            fs::write(tmp.join("files").join(format!("f{n}")), run).unwrap();
            publish(&tmp, &entry).unwrap();
            assert!(!tmp.exists(), "the loser's temp is removed");
        }
        let names: Vec<_> = fs::read_dir(entry.join("files"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f1"]);
    }
}
