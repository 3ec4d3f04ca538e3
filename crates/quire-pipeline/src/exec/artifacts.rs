//! Keeping a job's artifacts once it has ended (complete or failed): every
//! regular file its `artifacts` globs match in the workspace is copied to
//! `artifacts/<job>/<path>` beside the run's `logs/`, hashed as it streams,
//! and reported as [`Event::ArtifactKept`]. What was kept, and every match
//! that was not (nothing matched, a symlink out of the workspace, not a
//! regular file), is a `quire: artifacts: ...` line at the end of the job's
//! last step log; none of it fails the job.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use quire_model::clock::now_ms;
use quire_model::events::Event;
use sha2::{Digest, Sha256};

use super::schedule::Reporter;
use super::{ExecError, RunScope};
use crate::log::CriLog;
use crate::pipeline::{Artifact, Job};

/// Characters that make a path component a glob rather than a name.
const GLOB_META: &[char] = &['*', '?', '['];

/// Keep `job`'s artifacts; notes go to the end of `log` (its last step's).
pub(super) fn keep(
    scope: &RunScope<'_>,
    job: &Job,
    log: &Path,
    reporter: &Reporter<'_>,
) -> Result<(), ExecError> {
    if job.artifacts.is_empty() {
        return Ok(());
    }
    let log_error = |source| ExecError::Write {
        what: log.display().to_string(),
        source,
    };
    let mut keeper = Keeper {
        scope,
        job,
        reporter,
        workspace: fs::canonicalize(&scope.ctx.workspace).map_err(|source| ExecError::Write {
            what: scope.ctx.workspace.display().to_string(),
            source,
        })?,
        dest: scope.ctx.artifacts_dir().join(&job.id),
        log: CriLog::append(log).map_err(log_error)?,
        kept: BTreeSet::new(),
    };
    for artifact in &job.artifacts {
        let matched = keeper.glob(artifact)?;
        if !matched {
            keeper.note(&format!("{:?} matched nothing", artifact.text))?;
        }
    }
    keeper.log.flush().map_err(log_error)
}

struct Keeper<'a> {
    scope: &'a RunScope<'a>,
    job: &'a Job,
    reporter: &'a Reporter<'a>,
    /// The workspace's real path: nothing outside it is kept.
    workspace: PathBuf,
    /// `artifacts/<job>/`.
    dest: PathBuf,
    log: CriLog,
    /// Paths kept so far, so two globs matching one file keep it once.
    kept: BTreeSet<String>,
}

impl Keeper<'_> {
    /// Keep what `artifact` matches; whether it matched anything. The walk
    /// starts at the glob's literal leading components and never follows
    /// a symlink into a directory.
    fn glob(&mut self, artifact: &Artifact) -> Result<bool, ExecError> {
        let parts: Vec<&str> = artifact
            .pattern
            .as_str()
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let literal = parts.iter().take_while(|p| !p.contains(GLOB_META)).count();
        let start_rel = parts[..literal].join("/");
        let start = self.scope.ctx.workspace.join(&start_rel);
        if fs::symlink_metadata(&start).is_err() {
            return Ok(false);
        }
        let rest = &parts[literal..];
        if rest.is_empty() {
            self.consider(&start_rel, &start)?;
            return Ok(true);
        }
        if !self.inside(&start_rel, &start)? {
            // Refused, and said so.
            return Ok(true);
        }
        if !fs::metadata(&start).is_ok_and(|m| m.is_dir()) {
            return Ok(false);
        }
        let max_depth = if rest.contains(&"**") {
            usize::MAX
        } else {
            rest.len()
        };
        let pattern = glob::Pattern::new(&parts.join("/")).unwrap_or(artifact.pattern.clone());
        let mut matched = false;
        self.walk(&start_rel, &start, max_depth, &pattern, &mut matched)?;
        Ok(matched)
    }

    /// Consider every entry under `dir` down to `depth` levels that
    /// `pattern` matches; a matched directory is kept whole and not walked
    /// further.
    fn walk(
        &mut self,
        rel: &str,
        dir: &Path,
        depth: usize,
        pattern: &glob::Pattern,
        matched: &mut bool,
    ) -> Result<(), ExecError> {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        for (name, path) in sorted_entries(dir) {
            let Some(child) = self.child_rel(rel, &name)? else {
                continue;
            };
            if pattern.matches_with(&child, options) {
                *matched = true;
                self.consider(&child, &path)?;
            } else if depth > 1 && is_real_dir(&path) {
                self.walk(&child, &path, depth - 1, pattern, matched)?;
            }
        }
        Ok(())
    }

    /// Keep a match: a regular file, or a directory's regular files. A
    /// symlink is resolved: one leading out of the workspace is refused, one
    /// to a file inside it keeps that file's bytes under the link's path,
    /// one to a directory is not followed.
    fn consider(&mut self, rel: &str, path: &Path) -> Result<(), ExecError> {
        let shown = if rel.is_empty() { "." } else { rel };
        let Ok(meta) = fs::symlink_metadata(path) else {
            return Ok(());
        };
        if !self.inside(shown, path)? {
            return Ok(());
        }
        if meta.is_dir() {
            for (name, child) in sorted_entries(path) {
                if let Some(child_rel) = self.child_rel(rel, &name)? {
                    self.consider(&child_rel, &child)?;
                }
            }
            return Ok(());
        }
        if meta.file_type().is_symlink() && fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return self.note(&format!(
                "{shown} is a symlink to a directory; not followed"
            ));
        }
        self.copy(shown, path)
    }

    /// Whether `path` really lies inside the workspace; if not, says so.
    fn inside(&mut self, rel: &str, path: &Path) -> Result<bool, ExecError> {
        match fs::canonicalize(path) {
            Ok(real) if real.starts_with(&self.workspace) => Ok(true),
            Ok(_) => {
                self.note(&format!(
                    "{rel} leads outside the workspace; refused, not kept"
                ))?;
                Ok(false)
            }
            Err(e) => {
                self.note(&format!("cannot resolve {rel} ({e}); not kept"))?;
                Ok(false)
            }
        }
    }

    /// `rel/name`, or `None` (with a note) when the name is not UTF-8 and
    /// so cannot be recorded.
    fn child_rel(
        &mut self,
        rel: &str,
        name: &std::ffi::OsStr,
    ) -> Result<Option<String>, ExecError> {
        let Some(name) = name.to_str() else {
            self.note(&format!(
                "{rel}/{} has a name that is not UTF-8; not kept",
                name.to_string_lossy()
            ))?;
            return Ok(None);
        };
        Ok(Some(if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        }))
    }

    /// Stream `path` (already known to resolve inside the workspace) to
    /// `artifacts/<job>/<rel>`, hashing it on the way; a copy, never a
    /// link, so what the job leaves behind cannot change it later.
    fn copy(&mut self, rel: &str, path: &Path) -> Result<(), ExecError> {
        if self.kept.contains(rel) {
            return Ok(());
        }
        // The link itself was resolved and checked; open what it names,
        // refusing a symlink swapped in since, and without blocking on a
        // FIFO.
        let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let source = OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(&real)
            .and_then(|file| Ok((file.metadata()?.is_file(), file)));
        let mut source = match source {
            Ok((true, file)) => file,
            Ok((false, _)) => return self.note(&format!("{rel} is not a regular file; not kept")),
            Err(e) => return self.note(&format!("cannot read {rel} ({e}); not kept")),
        };
        let target = self.dest.join(rel);
        let write_error = |source| ExecError::Write {
            what: target.display().to_string(),
            source,
        };
        if let Some(parent) = target.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(write_error)?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&target)
            .map_err(write_error)?;
        let (size, sha256) = match copy_hashed(&mut source, &mut out) {
            Ok(done) => done,
            Err(CopyError::Read(e)) => {
                drop(out);
                let _ = fs::remove_file(&target);
                return self.note(&format!("cannot read {rel} ({e}); not kept"));
            }
            Err(CopyError::Write(e)) => return Err(write_error(e)),
        };
        self.kept.insert(rel.to_string());
        self.reporter.emit(Event::ArtifactKept {
            at_ms: now_ms(),
            job: self.job.id.clone(),
            path: rel.to_string(),
            size,
            sha256,
        })?;
        self.note(&format!("kept {rel} ({size} bytes)"))
    }

    fn note(&mut self, text: &str) -> Result<(), ExecError> {
        let line = self
            .scope
            .redactor
            .apply_str(&format!("quire: artifacts: {text}"));
        self.log
            .note(line.as_bytes())
            .map_err(|source| ExecError::Write {
                what: format!("the log of job {}", self.job.id),
                source,
            })
    }
}

/// Which side of a copy failed: the reader's, or the writer's.
#[derive(Debug)]
pub enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copy `from` to `to` in 64 KiB chunks, never holding more; the bytes
/// copied and their SHA-256 in lowercase hex. The executor keeps artifacts
/// with it and `quire-runs download` checks them with it.
pub fn copy_hashed(from: &mut impl Read, to: &mut impl Write) -> Result<(u64, String), CopyError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        size += n as u64;
    }
    to.flush().map_err(CopyError::Write)?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((size, sha256))
}

/// A directory itself, not a symlink to one.
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// A directory's entries by name; an unreadable directory has none.
fn sorted_entries(dir: &Path) -> Vec<(std::ffi::OsString, PathBuf)> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| (e.file_name(), e.path()))
        .collect();
    entries.sort();
    entries
}
