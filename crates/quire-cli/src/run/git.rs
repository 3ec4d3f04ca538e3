//! What quire reads from a bare repository, with gix: refs, commits, the
//! pipeline file in a commit's tree, and the tree itself written out as a
//! run's workspace. Nothing here runs git or writes to the repository.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::object::tree::EntryKind;

/// Why a repository, commit or tree could not be read or written out.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open repository {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{rev} names no commit in {path}")]
    NoCommit { rev: String, path: PathBuf },
    #[error("cannot read {what} from {path}: {message}")]
    Read {
        what: String,
        path: PathBuf,
        message: String,
    },
    #[error("refusing tree entry {entry:?}: {why}")]
    Refused { entry: String, why: &'static str },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A bare repository, opened for reading.
pub struct Repo {
    repo: gix::Repository,
    path: PathBuf,
}

impl Repo {
    pub fn open(git_dir: &Path) -> Result<Repo, GitError> {
        // Isolated: the repository's own configuration only, not the
        // user's or the system's, which quire has no use for.
        let repo = gix::open_opts(git_dir, gix::open::Options::isolated()).map_err(|e| {
            GitError::Open {
                path: git_dir.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        Ok(Repo {
            repo,
            path: git_dir.to_path_buf(),
        })
    }

    fn read_error(&self, what: impl Into<String>) -> impl FnOnce(String) -> GitError + '_ {
        let what = what.into();
        move |message| GitError::Read {
            what,
            path: self.path.clone(),
            message,
        }
    }

    /// The commit `rev` names: a full object id, or a full ref name (peeled
    /// through annotated tags).
    pub fn resolve_commit(&self, rev: &str) -> Result<String, GitError> {
        let no_commit = || GitError::NoCommit {
            rev: rev.to_string(),
            path: self.path.clone(),
        };
        let id = match ObjectId::from_hex(rev.as_bytes()) {
            Ok(id) => id,
            Err(_) => {
                let mut reference = self.repo.find_reference(rev).map_err(|_| no_commit())?;
                reference.peel_to_id().map_err(|_| no_commit())?.detach()
            }
        };
        let object = self.repo.find_object(id).map_err(|_| no_commit())?;
        let commit = object
            .peel_to_kind(gix::object::Kind::Commit)
            .map_err(|_| no_commit())?;
        Ok(commit.id.to_string())
    }

    /// The full name of the ref `given` names, looked up in git's own order
    /// (`refs/<given>`, `refs/tags/<given>`, `refs/heads/<given>`, ...).
    pub fn full_ref_name(&self, given: &str) -> Option<String> {
        let found = self.repo.find_reference(given).ok()?;
        Some(found.name().as_bstr().to_string())
    }

    fn commit(&self, sha: &str) -> Result<gix::Commit<'_>, GitError> {
        let no_commit = || GitError::NoCommit {
            rev: sha.to_string(),
            path: self.path.clone(),
        };
        let id = ObjectId::from_hex(sha.as_bytes()).map_err(|_| no_commit())?;
        // An annotated tag names its commit through a tag object.
        self.repo
            .find_object(id)
            .map_err(|_| no_commit())?
            .peel_to_commit()
            .map_err(|_| no_commit())
    }

    /// The commit's full message.
    pub fn message(&self, sha: &str) -> Result<String, GitError> {
        let commit = self.commit(sha)?;
        let raw = commit
            .message_raw()
            .map_err(|e| self.read_error(format!("the message of {sha}"))(e.to_string()))?;
        Ok(String::from_utf8_lossy(raw.as_ref()).into_owned())
    }

    /// The blob at `path` in the commit's tree, if there is one.
    pub fn read_file(&self, sha: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let commit = self.commit(sha)?;
        let failed = |e: String| self.read_error(format!("{path} of {sha}"))(e);
        let tree = commit.tree().map_err(|e| failed(e.to_string()))?;
        let Some(entry) = tree
            .lookup_entry_by_path(path)
            .map_err(|e| failed(e.to_string()))?
        else {
            return Ok(None);
        };
        if !entry.mode().is_blob() {
            return Ok(None);
        }
        let object = entry.object().map_err(|e| failed(e.to_string()))?;
        Ok(Some(object.data.clone()))
    }

    /// Write the commit's tree into `dest`, which must not exist yet. Every
    /// path is created fresh under `dest` and never through a symlink, so no
    /// entry can land outside it: names `.`, `..`, `.git`, or with a `/` or
    /// NUL, and duplicate entries, are refused.
    pub fn materialize(&self, sha: &str, dest: &Path) -> Result<(), GitError> {
        let commit = self.commit(sha)?;
        let tree = commit
            .tree_id()
            .map_err(|e| self.read_error(format!("the tree of {sha}"))(e.to_string()))?
            .detach();
        make_dir(dest)?;
        self.write_tree(tree, dest, "")
    }

    fn write_tree(&self, tree: ObjectId, dir: &Path, prefix: &str) -> Result<(), GitError> {
        let object = self
            .repo
            .find_object(tree)
            .map_err(|e| self.read_error(format!("tree {tree}"))(e.to_string()))?;
        let tree = object
            .try_into_tree()
            .map_err(|e| self.read_error(format!("tree {tree}"))(e.to_string()))?;
        let mut entries = Vec::new();
        for entry in tree.iter() {
            let entry = entry.map_err(|e| self.read_error("a tree entry")(e.to_string()))?;
            entries.push((
                entry.mode().kind(),
                entry.filename().to_vec(),
                entry.oid().to_owned(),
            ));
        }
        for (kind, name, oid) in entries {
            let shown = format!("{prefix}{}", String::from_utf8_lossy(&name));
            check_name(&name, &shown)?;
            let path = dir.join(std::ffi::OsStr::from_bytes(&name));
            match kind {
                EntryKind::Tree => {
                    make_dir(&path)?;
                    self.write_tree(oid, &path, &format!("{shown}/"))?;
                }
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let data = self.blob(oid, &shown)?;
                    let mode = if kind == EntryKind::BlobExecutable {
                        0o755
                    } else {
                        0o644
                    };
                    write_new(&path, &data, mode)?;
                }
                EntryKind::Link => {
                    // The link itself lives in the workspace; quire never
                    // writes through it, wherever it points.
                    let target = self.blob(oid, &shown)?;
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &path)
                        .map_err(|source| GitError::Write {
                            path: path.clone(),
                            source,
                        })?;
                }
                // A submodule: an empty directory, as git leaves it.
                EntryKind::Commit => make_dir(&path)?,
            }
        }
        Ok(())
    }

    fn blob(&self, oid: ObjectId, shown: &str) -> Result<Vec<u8>, GitError> {
        let object = self
            .repo
            .find_object(oid)
            .map_err(|e| self.read_error(shown.to_string())(e.to_string()))?;
        Ok(object.detach().data)
    }
}

fn check_name(name: &[u8], shown: &str) -> Result<(), GitError> {
    let refuse = |why| {
        Err(GitError::Refused {
            entry: shown.to_string(),
            why,
        })
    };
    if name.is_empty() || name == b"." || name == b".." {
        return refuse("it names no file");
    }
    if name.contains(&b'/') || name.contains(&0) {
        return refuse("a name cannot hold '/' or NUL");
    }
    if name.eq_ignore_ascii_case(b".git") {
        return refuse("a tree may not carry a .git entry");
    }
    Ok(())
}

/// Create a directory that must not exist (a duplicate entry, or a path
/// where a symlink was already written, fails here).
fn make_dir(path: &Path) -> Result<(), GitError> {
    DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(|source| GitError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Create a file that must not exist, never following a symlink.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), GitError> {
    let fail = |source| GitError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(fail)?;
    file.write_all(data).map_err(fail)
}
