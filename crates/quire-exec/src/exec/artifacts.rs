//! Keeping a job's artifacts once it has ended (complete or failed): every
//! regular file its `artifacts` globs match in the workspace is copied to
//! `artifacts/<job>/<path>` beside the run's `logs/`, hashed as it streams,
//! and reported as [`Event::ArtifactKept`]. What was kept, and every match
//! that was not (nothing matched, a symlink out of the workspace, not a
//! regular file), is a `quire: artifacts: ...` line at the end of the job's
//! last step log; none of it fails the job.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rustix::fs::FileType;
use rustix::io::Errno;

use quire_model::clock::now_ms;
use quire_model::events::Event;
use sha2::{Digest, Sha256};

use super::report::Reporter;
use super::{ExecError, RunScope};
use crate::beneath::{self, Dir};
use crate::log::CriLog;
use quire_pipeline::pipeline::{Artifact, Job};

/// Characters that make a path component a glob rather than a name.
const GLOB_META: &[char] = &['*', '?', '['];

/// Keep `job`'s artifacts; notes go to the end of `log` (its last step's).
///
/// The workspace is walked by directory descriptors (`crate::beneath`):
/// a step of another job may still be running in it and may swap any
/// directory for a symlink at any moment, so no path is resolved twice and
/// none through a symlink the worker did not let the kernel check.
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
        workspace: Dir::open(&scope.ctx.workspace).map_err(|source| ExecError::Write {
            what: scope.ctx.workspace.display().to_string(),
            source,
        })?,
        dest: scope.ctx.artifacts_dir().join(&job.id),
        run_dir: scope
            .ctx
            .artifacts_dir()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        log: CriLog::append(log).map_err(log_error)?,
        kept: BTreeSet::new(),
    };
    let _frozen = super::cache::hold(scope);
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
    /// The workspace, held open: every match is reached from it.
    workspace: Dir,
    /// `artifacts/<job>/`, as the notes name it.
    dest: PathBuf,
    /// The run's directory, which holds `artifacts/`.
    run_dir: PathBuf,
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
        let rest = &parts[literal..];
        if rest.is_empty() {
            return self.literal(&start_rel);
        }
        let start = match self.workspace.open_dir(&start_rel) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) if beneath::is_refused(&e) => {
                // A symlink (or a file) on the way: say where it leads.
                self.follow(&start_rel)?;
                return Ok(true);
            }
            Err(e) => {
                self.note(&format!("cannot open {start_rel} ({e}); not kept"))?;
                return Ok(true);
            }
        };
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

    /// Keep the literal path `rel` (no glob in it); whether it exists.
    fn literal(&mut self, rel: &str) -> Result<bool, ExecError> {
        let Ok(Some((parent, name))) = beneath::split_last(rel) else {
            // The workspace itself.
            let ws = self
                .workspace
                .try_clone()
                .map_err(|e| self.write_error(e))?;
            for entry in ws.entries().unwrap_or_default() {
                if let Some(child) = self.child_rel("", &entry.name)? {
                    self.consider(&ws, &entry.name, &child)?;
                }
            }
            return Ok(true);
        };
        match self.workspace.open_dir(&parent) {
            Ok(dir) if dir.stat(OsStr::new(name)).is_ok() => {
                self.consider(&dir, OsStr::new(name), rel)?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            // A symlink on the way: the kernel resolves it, below the
            // workspace or not at all.
            Err(_) => {
                self.follow(rel)?;
                Ok(true)
            }
        }
    }

    /// Consider every entry under `dir` down to `depth` levels that
    /// `pattern` matches; a matched directory is kept whole and not walked
    /// further.
    fn walk(
        &mut self,
        rel: &str,
        dir: &Dir,
        depth: usize,
        pattern: &glob::Pattern,
        matched: &mut bool,
    ) -> Result<(), ExecError> {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        for entry in dir.entries().unwrap_or_default() {
            let Some(child) = self.child_rel(rel, &entry.name)? else {
                continue;
            };
            if pattern.matches_with(&child, options) {
                *matched = true;
                self.consider(dir, &entry.name, &child)?;
            } else if depth > 1
                && dir.is_dir(&entry.name)
                && let Ok(sub) = dir.subdir(&entry.name)
            {
                self.walk(&child, &sub, depth - 1, pattern, matched)?;
            }
        }
        Ok(())
    }

    /// Keep a match, `name` in `dir`: a regular file, or a directory's
    /// regular files. A symlink is resolved by the kernel below the
    /// workspace ([`Keeper::follow`]).
    fn consider(&mut self, dir: &Dir, name: &OsStr, rel: &str) -> Result<(), ExecError> {
        let shown = if rel.is_empty() { "." } else { rel };
        let Ok(stat) = dir.stat(name) else {
            return Ok(());
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let sub = match dir.subdir(name) {
                    Ok(sub) => sub,
                    // Swapped for a symlink since it was looked at.
                    Err(e) if beneath::is_refused(&e) => return self.follow(shown),
                    Err(e) => return self.note(&format!("cannot read {shown} ({e}); not kept")),
                };
                for entry in sub.entries().unwrap_or_default() {
                    if let Some(child) = self.child_rel(rel, &entry.name)? {
                        self.consider(&sub, &entry.name, &child)?;
                    }
                }
                Ok(())
            }
            FileType::Symlink => self.follow(shown),
            FileType::RegularFile => match dir.open_file(name) {
                Ok(Some(file)) => self.copy(shown, file),
                Ok(None) => self.note(&format!("{shown} is not a regular file; not kept")),
                Err(e) if beneath::is_refused(&e) => self.follow(shown),
                Err(e) => self.note(&format!("cannot read {shown} ({e}); not kept")),
            },
            _ => self.note(&format!("{shown} is not a regular file; not kept")),
        }
    }

    /// Keep the file a symlink at `rel` names, when the kernel resolves it
    /// below the workspace (`RESOLVE_BENEATH`: a link to an absolute path
    /// or out through `..` is refused in the same call that opens it, so
    /// nothing swapped in after a check can lead out); a link to a
    /// directory is not followed.
    fn follow(&mut self, rel: &str) -> Result<(), ExecError> {
        let opened = self.workspace.open_beneath(rel);
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(Errno::XDEV.raw_os_error()) => {
                return self.note(&format!(
                    "{rel} leads outside the workspace; refused, not kept"
                ));
            }
            Err(e) => return self.note(&format!("cannot resolve {rel} ({e}); not kept")),
        };
        match file.metadata() {
            Ok(meta) if meta.is_file() => self.copy(rel, file),
            Ok(meta) if meta.is_dir() => {
                self.note(&format!("{rel} is a symlink to a directory; not followed"))
            }
            Ok(_) => self.note(&format!("{rel} is not a regular file; not kept")),
            Err(e) => self.note(&format!("cannot read {rel} ({e}); not kept")),
        }
    }

    /// `rel/name`, or `None` (with a note) when the name is not UTF-8 and
    /// so cannot be recorded.
    fn child_rel(&mut self, rel: &str, name: &OsStr) -> Result<Option<String>, ExecError> {
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

    /// Stream `source` (a regular file opened inside the workspace) to
    /// `artifacts/<job>/<rel>`, hashing it on the way; a copy, never a
    /// link, so what the job leaves behind cannot change it later.
    fn copy(&mut self, rel: &str, mut source: File) -> Result<(), ExecError> {
        if self.kept.contains(rel) {
            return Ok(());
        }
        let target = self.dest.join(rel);
        let write_error = |source| ExecError::Write {
            what: target.display().to_string(),
            source,
        };
        // Made from the run's directory down, never above it: a run whose
        // home was deleted meanwhile does not get it back.
        let Ok(Some((parent, name))) = beneath::split_last(rel) else {
            return self.note(&format!("{rel} is not a path in the workspace; not kept"));
        };
        let below = format!("artifacts/{}/{parent}", self.job.id);
        let mut out = Dir::open(&self.run_dir)
            .and_then(|run| run.create_dirs_mode(&below, 0o700, None))
            .and_then(|dir| dir.create_file(OsStr::new(name), 0o600))
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

    fn write_error(&self, source: io::Error) -> ExecError {
        ExecError::Write {
            what: self.scope.ctx.workspace.display().to_string(),
            source,
        }
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
