//! What quire reads from a bare repository, with gix: refs, commits, the
//! pipeline file in a commit's tree; and a commit checked out as a run's
//! workspace, a work tree sharing the repository's objects, whose files
//! gix writes in process when the tree is small ([`Weight`]), else `git
//! read-tree` (it streams blobs; gix holds each in memory). Nothing here
//! writes to the repository.

use std::collections::{BTreeMap, HashSet};
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gix::ObjectId;
use gix::object::tree::EntryKind;
use quire_model::refs::{HEADS, RefName, TAGS};
use quire_pipeline::WorkspaceRefs;

/// Why a repository, commit or tree could not be read or written out.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open repository {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{rev} names no commit in {path}")]
    NoCommit { rev: String, path: PathBuf },
    #[error("{rev} is ambiguous in {path}: it could be {}; give more of its digits", .candidates.join(", "))]
    Ambiguous {
        rev: String,
        path: PathBuf,
        candidates: Vec<String>,
    },
    #[error("cannot read {what} from {path}: {message}")]
    Read {
        what: String,
        path: PathBuf,
        message: String,
    },
    #[error("refusing tree entry {entry:?}: {why}")]
    Refused { entry: String, why: &'static str },
    #[error("cannot check {sha} out into {dest}: {message}")]
    Checkout {
        sha: String,
        dest: PathBuf,
        message: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A file of a commit's tree: its path in the work tree (bytes, as git
/// keeps names) and its blob.
#[derive(Debug, Clone)]
pub struct TreeFile {
    pub path: Vec<u8>,
    pub blob: ObjectId,
}

/// A file of a commit's tree: its bytes, or, when it is larger than the
/// reader would take, only its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blob {
    Read(Vec<u8>),
    TooLarge { size: u64 },
}

/// A commit and every object its tree reaches, read from its bare
/// repository for a job that runs on another machine
/// ([`quire_exec::remote::CommitObjects`]): each object once, the commit
/// first. Submodules' commits are not in the repository and are not sent.
#[derive(Debug, Clone)]
pub struct CommitTree {
    pub git_dir: PathBuf,
    pub sha: String,
}

impl quire_exec::remote::CommitObjects for CommitTree {
    fn each(
        &self,
        f: &mut dyn FnMut(u8, u64, &mut dyn io::Read) -> io::Result<()>,
    ) -> io::Result<()> {
        use quire_exec::remote::{COMMIT, TREE};
        let repo = Repo::open(&self.git_dir).map_err(io::Error::other)?;
        let id = ObjectId::from_hex(self.sha.as_bytes()).map_err(io::Error::other)?;
        let commit = repo.repo.find_object(id).map_err(io::Error::other)?;
        f(COMMIT, commit.data.len() as u64, &mut &commit.data[..])?;
        let tree = commit
            .try_into_commit()
            .map_err(io::Error::other)?
            .tree_id()
            .map_err(io::Error::other)?
            .detach();
        let mut seen = HashSet::new();
        let mut todo = vec![tree];
        seen.insert(tree);
        while let Some(id) = todo.pop() {
            let object = repo.repo.find_object(id).map_err(io::Error::other)?;
            f(TREE, object.data.len() as u64, &mut &object.data[..])?;
            let tree = object.try_into_tree().map_err(io::Error::other)?;
            for entry in tree.iter() {
                let entry = entry.map_err(io::Error::other)?;
                let oid = entry.oid().to_owned();
                match entry.mode().kind() {
                    EntryKind::Tree => {
                        if seen.insert(oid) {
                            todo.push(oid);
                        }
                    }
                    EntryKind::Commit => {}
                    _ => {
                        if seen.insert(oid) {
                            self.blob(&repo, oid, &mut *f)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl CommitTree {
    /// Hand blob `oid` to `f`: read whole when it is small, else streamed
    /// from `git cat-file` (gix holds a blob in memory, and a pushed blob
    /// is the pusher's to make huge), as a local checkout streams one
    /// through `git read-tree` ([`IN_PROCESS_BLOB`]).
    fn blob(
        &self,
        repo: &Repo,
        oid: ObjectId,
        f: &mut dyn FnMut(u8, u64, &mut dyn io::Read) -> io::Result<()>,
    ) -> io::Result<()> {
        use quire_exec::remote::BLOB;
        let size = repo.repo.find_header(oid).map_err(io::Error::other)?.size();
        if size <= IN_PROCESS_BLOB {
            let blob = repo.repo.find_object(oid).map_err(io::Error::other)?;
            return f(BLOB, blob.data.len() as u64, &mut &blob.data[..]);
        }
        let mut git = command_in(&self.git_dir)
            .args(["cat-file", "blob", &oid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let sent = match git.stdout.take() {
            Some(mut out) => f(BLOB, size, &mut out),
            None => Err(io::Error::other("git cat-file gave no output")),
        };
        if sent.is_err() {
            let _ = git.kill();
        }
        let status = git.wait()?;
        sent?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "git cat-file blob {oid}: {status}"
            )));
        }
        Ok(())
    }
}

/// A bare repository, opened for reading.
pub struct Repo {
    repo: gix::Repository,
    path: PathBuf,
    /// Check out in process whatever a tree weighs ([`Repo::in_process`]).
    in_process: bool,
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
            in_process: false,
        })
    }

    /// Check every tree out in process, whatever it weighs (never `git
    /// read-tree`): for a cluster's node, which needs no `git` of its own
    /// and whose memory is the job's.
    pub fn in_process(mut self) -> Repo {
        self.in_process = true;
        self
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

    /// The commit a revision names, as `git rev-parse REV^{commit}` finds
    /// it: a full or short object id (at least 4 hex digits), a ref (`main`,
    /// `v1.0`, `refs/heads/main`) or an expression on them (`main~1`,
    /// `v1.0^2`), peeled through annotated tags. A short id that several
    /// objects start with is an error naming them.
    pub fn resolve_revision(&self, rev: &str) -> Result<String, GitError> {
        let no_commit = || GitError::NoCommit {
            rev: rev.to_string(),
            path: self.path.clone(),
        };
        let id = match self.repo.rev_parse_single(rev) {
            Ok(id) => id.detach(),
            Err(e) => {
                use gix::revision::spec::parse::Error as Parse;
                return Err(match e.downcast_any_ref::<Parse>() {
                    Some(
                        Parse::AmbiguousPrefix { candidates, .. }
                        | Parse::AmbiguousRefAndObject { candidates, .. },
                    ) => GitError::Ambiguous {
                        rev: rev.to_string(),
                        path: self.path.clone(),
                        candidates: candidates
                            .iter()
                            .map(|(id, what)| format!("{id} ({what})"))
                            .collect(),
                    },
                    _ => no_commit(),
                });
            }
        };
        self.resolve_commit(&id.to_string())
    }

    /// The full name of the ref `given` names, looked up in git's own order
    /// (`refs/<given>`, `refs/tags/<given>`, `refs/heads/<given>`, ...).
    pub fn full_ref_name(&self, given: &str) -> Option<String> {
        let found = self.repo.find_reference(given).ok()?;
        Some(found.name().as_bstr().to_string())
    }

    /// The repository's default branch: the branch its `HEAD` names.
    pub fn default_branch(&self) -> Option<String> {
        let name = self.repo.head_name().ok()??;
        let name = name.as_bstr().to_string();
        RefName::new(name).branch().map(str::to_string)
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

    /// The commit's full message, and its author as `Name <email>` (none
    /// when the author line cannot be read), from one read of the commit.
    pub fn message_and_author(&self, sha: &str) -> Result<(String, Option<String>), GitError> {
        let commit = self.commit(sha)?;
        let raw = commit
            .message_raw()
            .map_err(|e| self.read_error(format!("the message of {sha}"))(e.to_string()))?;
        let author = commit
            .author()
            .ok()
            .map(|a| format!("{} <{}>", a.name, a.email));
        Ok((String::from_utf8_lossy(raw.as_ref()).into_owned(), author))
    }

    /// The blob at `path` in the commit's tree, if there is one: read when
    /// it is at most `max_bytes` long, else only its size, taken from the
    /// object's header without inflating the object.
    pub fn read_file(
        &self,
        sha: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Blob>, GitError> {
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
        let size = self
            .repo
            .find_header(entry.object_id())
            .map_err(|e| failed(e.to_string()))?
            .size();
        if size > max_bytes {
            return Ok(Some(Blob::TooLarge { size }));
        }
        let object = entry.object().map_err(|e| failed(e.to_string()))?;
        Ok(Some(Blob::Read(object.detach().data)))
    }

    /// The commit `name` points at, if the ref exists and can be read.
    pub fn ref_tip(&self, name: &str) -> Option<ObjectId> {
        let reference = self.repo.try_find_reference(name).ok()??;
        reference.try_id().map(|id| id.detach())
    }

    /// Write each `(sha, text)` as that commit's note under `notes_ref` (a
    /// full ref name), replacing the one there, as `git notes add -f`
    /// would, in process and in one commit: the blobs, the notes tree
    /// (git's fanout kept) and a commit by `quire <quire@localhost>` on
    /// `tip`, the commit the caller read the notes at (`None`: the ref did
    /// not exist). The ref is moved only from `tip` (gix compares and
    /// swaps), so a writer that moved it since the caller read it makes
    /// this fail rather than lose its note.
    pub fn replace_notes(
        &self,
        notes_ref: &str,
        notes: &[(String, Vec<u8>)],
        tip: Option<ObjectId>,
    ) -> Result<(), String> {
        use gix::refs::transaction::PreviousValue;
        let options = gix::open::Options::isolated()
            .config_overrides(["user.name=quire", "user.email=quire@localhost"]);
        let repo = gix::open_opts(&self.path, options).map_err(|e| e.to_string())?;
        let name: &gix::refs::FullNameRef = notes_ref.try_into().map_err(|e| format!("{e}"))?;
        let root = match tip {
            Some(id) => repo
                .find_commit(id)
                .map_err(|e| format!("{notes_ref} must point to a commit: {e}"))?
                .tree_id()
                .map_err(|e| e.to_string())?
                .detach(),
            None => ObjectId::empty_tree(repo.object_hash()),
        };
        let parent = tip;
        let mut state =
            gix::note::plumbing::State::new(root, &repo).map_err(|e| format!("{e:#}"))?;
        for (sha, text) in notes {
            let object = ObjectId::from_hex(sha.as_bytes()).map_err(|e| e.to_string())?;
            let blob = repo.write_blob(text).map_err(|e| e.to_string())?.detach();
            state
                .edit(object, Some(blob), &repo)
                .map_err(|e| format!("{e:#}"))?;
        }
        let tree = state.write(&repo).map_err(|e| format!("{e:#}"))?;
        let message = "Notes added by 'git notes add'";
        let commit = repo
            .new_commit(message, tree, parent)
            .map_err(|e| e.to_string())?;
        let expected = parent.map_or(PreviousValue::MustNotExist, |id| {
            PreviousValue::MustExistAndMatch(gix::refs::Target::Object(id))
        });
        repo.reference(name, commit.id, expected, format!("notes: {message}"))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// The blob holding the note of `sha` under `notes_ref` (as `git notes`
    /// finds it: the commit's tree names the note by the object's id, whole
    /// or split into two-digit folders), if there is one. A tree of the
    /// notes larger than `max_tree_bytes` is refused unread: notes written
    /// by git are spread over folders long before that.
    pub fn note_id(
        &self,
        notes_ref: &str,
        sha: &str,
        max_tree_bytes: u64,
    ) -> Result<Option<ObjectId>, GitError> {
        let failed = |e: String| self.read_error(format!("the note of {sha} in {notes_ref}"))(e);
        let Some(mut reference) = self
            .repo
            .try_find_reference(notes_ref)
            .map_err(|e| failed(e.to_string()))?
        else {
            return Ok(None);
        };
        let commit = reference
            .peel_to_commit()
            .map_err(|e| failed(e.to_string()))?;
        let mut tree_id = commit
            .tree_id()
            .map_err(|e| failed(e.to_string()))?
            .detach();
        let mut rest = sha.to_ascii_lowercase();
        loop {
            let size = self
                .repo
                .find_header(tree_id)
                .map_err(|e| failed(e.to_string()))?
                .size();
            if size > max_tree_bytes {
                return Err(failed(format!(
                    "a tree of its notes is {size} bytes, over {max_tree_bytes}: not read"
                )));
            }
            let tree = self
                .repo
                .find_tree(tree_id)
                .map_err(|e| failed(e.to_string()))?;
            if let Some(entry) = tree.find_entry(rest.as_str()) {
                return Ok(entry.mode().is_blob().then(|| entry.object_id()));
            }
            let Some((folder, below)) = rest.split_at_checked(2) else {
                return Ok(None);
            };
            match tree.find_entry(folder) {
                Some(entry) if entry.mode().is_tree() && !below.is_empty() => {
                    tree_id = entry.object_id();
                    rest = below.to_string();
                }
                _ => return Ok(None),
            }
        }
    }

    /// The blob `id`: its bytes when it is at most `max_bytes` long, else
    /// only its size, from the object's header without inflating it.
    pub fn blob(&self, id: ObjectId, max_bytes: u64) -> Result<Blob, GitError> {
        let failed = |e: String| self.read_error(format!("object {id}"))(e);
        let size = self
            .repo
            .find_header(id)
            .map_err(|e| failed(e.to_string()))?
            .size();
        if size > max_bytes {
            return Ok(Blob::TooLarge { size });
        }
        let blob = self.repo.find_blob(id).map_err(|e| failed(e.to_string()))?;
        Ok(Blob::Read(blob.detach().data))
    }

    /// Check the commit out into `dest`, which must not exist yet, as a
    /// git work tree of its own (docs/PIPELINE.md, "The workspace"):
    ///
    /// - `.git/objects` borrows the bare repository's objects through
    ///   `objects/info/alternates`; nothing is copied;
    /// - HEAD is detached at `sha`;
    /// - the refs are a snapshot of the repository's: each branch `B` as
    ///   `refs/remotes/origin/B`, each tag as itself, and, when `ref_name`
    ///   is a branch, that branch at `sha`;
    /// - the index matches the tree, so `git status` is clean.
    ///
    /// The tree is checked first, without reading a blob: names `.`, `..`,
    /// `.git`, or with a `/` or NUL, and a name twice in one tree, are
    /// refused before anything is written. `git read-tree -u` then writes
    /// the files: it streams each blob to its file, never through a
    /// symlink, and refuses such names itself too.
    ///
    /// With `list_files`, the commit's files (not symlinks or submodules)
    /// come back with their blobs, as the tree walk that checks it finds
    /// them (for [`crate::mtimes`]); else nothing.
    pub fn materialize(
        &self,
        sha: &str,
        ref_name: &str,
        dest: &Path,
        list_files: bool,
        names: WorkspaceRefs,
    ) -> Result<Vec<TreeFile>, GitError> {
        let commit = self.commit(sha)?;
        let tree = commit
            .tree_id()
            .map_err(|e| self.read_error(format!("the tree of {sha}"))(e.to_string()))?
            .detach();
        let mut files = list_files.then(Vec::new);
        let mut weight = Weight::default();
        self.check_tree(tree, ("", b""), 0, &mut files, &mut weight)?;
        let refs = match names {
            WorkspaceRefs::Pushed => self.pushed_ref(sha, ref_name)?,
            WorkspaceRefs::All => self.packed_refs(sha, ref_name)?,
        };
        let objects = self
            .repo
            .common_dir()
            .join("objects")
            .canonicalize()
            .map_err(|e| self.read_error("the objects directory")(e.to_string()))?;
        let mut alternates = objects.into_os_string().into_vec();
        // One absolute path a line; git would read a newline as two.
        if alternates.contains(&b'\n') {
            return Err(self.read_error("the objects directory")(
                "its path cannot be written to an alternates file".into(),
            ));
        }
        alternates.push(b'\n');

        make_dir(dest)?;
        let dot_git = dest.join(".git");
        // What git needs to see a repository (HEAD, objects/, refs/); the
        // refs themselves are in packed-refs, and git makes `refs/heads/`
        // or `refs/tags/` when a step first writes a loose ref. Each
        // directory fewer is an inode fewer to make and remove per run.
        for dir in ["", "objects", "objects/info", "refs"] {
            make_dir(&dot_git.join(dir))?;
        }
        for (file, data) in [
            ("HEAD", format!("{sha}\n").into_bytes()),
            (
                "config",
                workspace_config(self.repo.object_hash()).into_bytes(),
            ),
            ("objects/info/alternates", alternates),
            ("packed-refs", refs),
        ] {
            write_new(&dot_git.join(file), &data, 0o644)?;
        }
        if self.in_process || weight.in_process() {
            self.check_out(tree, sha, dest)?;
        } else {
            read_tree(sha, dest)?;
        }
        Ok(files.unwrap_or_default())
    }

    /// Refuse a tree (recursively) that could not be written out as it is,
    /// or nests deeper than git itself would read (`core.maxTreeDepth`).
    /// Files go to `files` when it is some. `prefix` is the tree's path,
    /// as shown in messages and as bytes.
    fn check_tree(
        &self,
        tree: ObjectId,
        (prefix, raw_prefix): (&str, &[u8]),
        depth: usize,
        files: &mut Option<Vec<TreeFile>>,
        weight: &mut Weight,
    ) -> Result<(), GitError> {
        if depth > MAX_TREE_DEPTH {
            return Err(GitError::Refused {
                entry: prefix.chars().take(200).collect(),
                why: "trees nest deeper than 2048",
            });
        }
        let object = self
            .repo
            .find_object(tree)
            .map_err(|e| self.read_error(format!("tree {tree}"))(e.to_string()))?;
        let tree = object
            .try_into_tree()
            .map_err(|e| self.read_error(format!("tree {tree}"))(e.to_string()))?;
        let mut names = HashSet::new();
        for entry in tree.iter() {
            let entry = entry.map_err(|e| self.read_error("a tree entry")(e.to_string()))?;
            let name = entry.filename();
            let shown = format!("{prefix}{name}");
            check_name(name, &shown)?;
            if !names.insert(name.to_vec()) {
                return Err(GitError::Refused {
                    entry: shown,
                    why: "the tree holds this name twice",
                });
            }
            match entry.mode().kind() {
                EntryKind::Tree => {
                    let raw = [raw_prefix, name, b"/"].concat();
                    self.check_tree(
                        entry.oid().to_owned(),
                        (&format!("{shown}/"), &raw),
                        depth + 1,
                        files,
                        weight,
                    )?;
                }
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    weight.add(|| self.repo.find_header(entry.oid().to_owned()).ok());
                    if let Some(files) = files {
                        let path = [raw_prefix, name].concat();
                        files.push(TreeFile {
                            path,
                            blob: entry.oid().to_owned(),
                        });
                    }
                }
                // gix holds a link's target in memory too, whatever its
                // size: a link is weighed as a file.
                EntryKind::Link => {
                    weight.add(|| self.repo.find_header(entry.oid().to_owned()).ok());
                }
                EntryKind::Commit => {}
            }
        }
        Ok(())
    }

    /// The workspace's `packed-refs` by default: the pushed ref alone, read
    /// by its name (no other ref is read, however many the repository
    /// holds): a branch `<b>` as `refs/heads/<b>` at `sha` and as
    /// `origin/<b>` at the repository's tip, a tag as the repository has
    /// it (an annotated tag's object), else at `sha`.
    fn pushed_ref(&self, sha: &str, ref_name: &str) -> Result<Vec<u8>, GitError> {
        let name = RefName::new(ref_name);
        let tip = self
            .repo
            .try_find_reference(ref_name)
            .map_err(|e| self.read_error("the pushed ref")(e.to_string()))?
            .and_then(|r| r.try_id().map(|id| id.to_string()));
        let mut refs: BTreeMap<Vec<u8>, String> = BTreeMap::new();
        if let Some(branch) = name.branch() {
            refs.insert(ref_name.as_bytes().to_vec(), sha.to_string());
            refs.insert(
                format!("refs/remotes/origin/{branch}").into_bytes(),
                tip.unwrap_or_else(|| sha.to_string()),
            );
        } else if name.tag().is_some() {
            refs.insert(
                ref_name.as_bytes().to_vec(),
                tip.unwrap_or_else(|| sha.to_string()),
            );
        }
        Ok(sorted_packed_refs(refs))
    }

    /// The workspace's `packed-refs` with `[workspace] refs = "all"`:
    /// branches as `origin`'s, tags, and the run's own branch at `sha`;
    /// every ref of the repository is read.
    fn packed_refs(&self, sha: &str, ref_name: &str) -> Result<Vec<u8>, GitError> {
        let failed = |e: String| self.read_error("the refs")(e);
        let mut refs: BTreeMap<Vec<u8>, String> = BTreeMap::new();
        let platform = self.repo.references().map_err(|e| failed(e.to_string()))?;
        for reference in platform.all().map_err(|e| failed(e.to_string()))? {
            let reference = reference.map_err(|e| failed(e.to_string()))?;
            // Symbolic refs (none in a bare repository but HEAD) are left out.
            let Some(id) = reference.try_id() else {
                continue;
            };
            let name = reference.name().as_bstr();
            let name = if let Some(branch) = name.strip_prefix(HEADS.as_bytes()) {
                [b"refs/remotes/origin/", branch].concat()
            } else if name.starts_with(TAGS.as_bytes()) {
                name.to_vec()
            } else {
                continue;
            };
            refs.insert(name, id.to_string());
        }
        if RefName::new(ref_name).branch().is_some() {
            refs.insert(ref_name.as_bytes().to_vec(), sha.to_string());
        }
        Ok(sorted_packed_refs(refs))
    }
}

/// A `packed-refs` file of `refs`, sorted, as git reads them fastest.
fn sorted_packed_refs(refs: BTreeMap<Vec<u8>, String>) -> Vec<u8> {
    let mut out = b"# pack-refs with: sorted \n".to_vec();
    for (name, id) in refs {
        out.extend_from_slice(id.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&name);
        out.push(b'\n');
    }
    out
}

/// git's own default `core.maxTreeDepth`.
const MAX_TREE_DEPTH: usize = 2048;

/// What `git init` writes for a work tree (`--object-format=sha256` for a
/// repository of SHA-256 ids, whose objects git reads only when told so);
/// the rest of git's settings stay at their defaults.
fn workspace_config(hash: gix::hash::Kind) -> String {
    repository_config(
        hash,
        "\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n",
    )
}

/// A repository's `config`: its format version and the `core` settings
/// given (each a line), then its object format when that is not SHA-1.
pub(crate) fn repository_config(hash: gix::hash::Kind, core: &str) -> String {
    let (version, extensions) = match hash {
        gix::hash::Kind::Sha256 => (1, "[extensions]\n\tobjectformat = sha256\n"),
        _ => (0, ""),
    };
    format!("[core]\n\trepositoryformatversion = {version}\n{core}{extensions}")
}

/// `git --git-dir GIT_DIR`, hardened: every place quire runs the `git`
/// binary goes through here (or [`command_in`]). git starts from a cleared
/// environment, so no `GIT_DIR`, `GIT_WORK_TREE`, `GIT_INDEX_FILE`,
/// `GIT_CONFIG*` or other `GIT_*` variable of whoever started quire (a
/// hook, a pusher's shell) redirects it, and `HOME` is gone; it reads
/// neither the system's nor the user's configuration
/// (`GIT_CONFIG_NOSYSTEM=1`, `GIT_CONFIG_GLOBAL=/dev/null`), so no alias,
/// filter, fsmonitor or hooksPath of the machine runs or applies: only the
/// repository's own configuration does. `PATH` is kept, to find git;
/// messages are in English (`LC_ALL=C`).
pub fn command(git_dir: &Path) -> Command {
    let mut git = hardened();
    git.arg("--git-dir").arg(git_dir);
    git
}

/// `git` in the work tree `dir` (its `.git` found from there), hardened as
/// [`command`].
pub fn command_in(dir: &Path) -> Command {
    let mut git = hardened();
    git.current_dir(dir);
    git
}

fn hardened() -> Command {
    let mut git = Command::new("git");
    git.env_clear()
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LC_ALL", "C");
    if let Some(path) = std::env::var_os("PATH") {
        git.env("PATH", path);
    }
    git
}

/// The most files a tree written in process may hold, the largest blob and
/// the most bytes in all: gix holds each blob in memory while it writes
/// it, where `git read-tree` streams a large one, and a pushed tree is the
/// pusher's to make huge.
const IN_PROCESS_FILES: usize = 2_000;
const IN_PROCESS_BLOB: u64 = 4 << 20;
const IN_PROCESS_BYTES: u64 = 64 << 20;

/// What a tree's files weigh, while it may still be written in process:
/// its blobs' sizes are read from their headers until it is clear it may
/// not.
#[derive(Debug, Default)]
struct Weight {
    files: usize,
    largest: u64,
    total: u64,
    /// A blob whose size could not be read.
    unknown: bool,
}

impl Weight {
    fn add(&mut self, header: impl FnOnce() -> Option<gix::odb::find::Header>) {
        if !self.in_process() {
            return;
        }
        self.files += 1;
        match header() {
            Some(header) => {
                self.largest = self.largest.max(header.size());
                self.total = self.total.saturating_add(header.size());
            }
            None => self.unknown = true,
        }
    }

    fn in_process(&self) -> bool {
        !self.unknown
            && self.files <= IN_PROCESS_FILES
            && self.largest <= IN_PROCESS_BLOB
            && self.total <= IN_PROCESS_BYTES
    }
}

impl Repo {
    /// Write `tree`'s files into `dest` (empty but for its `.git`) and its
    /// index, in process (gix: `.gitattributes` conversions applied, no
    /// filter driver, the names checked as git checks them), as
    /// `git read-tree --reset -u` would, without a child process.
    fn check_out(&self, tree: ObjectId, sha: &str, dest: &Path) -> Result<(), GitError> {
        let failed = |message: String| GitError::Checkout {
            sha: sha.to_string(),
            dest: dest.to_path_buf(),
            message,
        };
        // The workspace's own repository, as quire wrote it (its config
        // has no filter, no line-ending setting): not the bare one, whose
        // config (filter drivers, core.autocrlf, info/attributes) would
        // otherwise apply here, run by the worker. git read-tree, run in
        // the workspace, reads the workspace's too.
        let workspace = gix::open_opts(dest.join(".git"), gix::open::Options::isolated())
            .map_err(|e| failed(causes(&e)))?;
        let mut index = workspace
            .index_from_tree(&tree)
            .map_err(|e| failed(causes(&e)))?;
        // A hostile tree may list its entries out of order; the index must
        // not (git read-tree sorts them too).
        index.sort_entries();
        let mut options = workspace
            .checkout_options(gix::worktree::stack::state::attributes::Source::IdMapping)
            .map_err(|e| failed(causes(&e)))?;
        options.destination_is_initially_empty = true;
        options.thread_limit = Some(1);
        let objects = workspace
            .objects
            .clone()
            .into_arc()
            .map_err(|e| failed(causes(&e)))?;
        let outcome = gix::worktree::state::checkout(
            &mut index,
            dest,
            objects,
            &gix::progress::Discard,
            &gix::progress::Discard,
            &std::sync::atomic::AtomicBool::new(false),
            options,
        )
        .map_err(|e| failed(causes(&e)))?;
        if let Some(first) = outcome.errors.first() {
            return Err(failed(format!(
                "{} of the tree's files not written, the first {}: {}",
                outcome.errors.len(),
                first.path,
                first.error
            )));
        }
        if let Some(first) = outcome.collisions.first() {
            return Err(failed(format!(
                "{} of the tree's paths collide with another, the first {}",
                outcome.collisions.len(),
                first.path
            )));
        }
        index
            .write(Default::default())
            .map_err(|e| failed(causes(&e)))?;
        Ok(())
    }
}

/// An error and each of its causes, as one line.
fn causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !line.contains(&said) {
            line.push_str(": ");
            line.push_str(&said);
        }
        cause = inner.source();
    }
    line
}

/// `git read-tree --reset -u SHA` in the new work tree: the index and the
/// files, through [`command_in`], so only the tree's own `.gitattributes`
/// applies, as in any checkout.
fn read_tree(sha: &str, dest: &Path) -> Result<(), GitError> {
    let failed = |message: String| GitError::Checkout {
        sha: sha.to_string(),
        dest: dest.to_path_buf(),
        message,
    };
    let mut git = command_in(dest);
    git.args(["read-tree", "--reset", "-u", sha])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let out = git
        .output()
        .map_err(|e| failed(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(failed(format!(
            "git read-tree {}: {}",
            out.status,
            stderr.trim()
        )));
    }
    Ok(())
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

/// Whether the repository's own config says `core.bare = true`.
pub fn core_bare(git_dir: &std::path::Path) -> Result<bool, String> {
    let config = gix::config::File::from_path_no_includes(
        git_dir.join("config"),
        gix::config::Source::Local,
    )
    .map_err(|e| format!("its config cannot be read ({e})"))?;
    match config.boolean("core.bare") {
        Ok(bare) => Ok(bare == Some(true)),
        Err(e) => Err(format!("its core.bare is not a boolean ({e})")),
    }
}

/// The first line of comment in quire's post-receive template: what tells
/// quire's hook from another program's.
pub const HOOK_MARK: &str = "# quire's post-receive hook, written by `quire-run install`";
/// The same for quire's pre-receive hook.
pub const PRE_RECEIVE_MARK: &str = "# quire's pre-receive hook, written by `quire-run install`";

/// `git` for `git_dir` reading every configuration git itself reads when
/// it receives a push: the system's and the user's too, not only the
/// repository's. Only for `git config --get*`.
fn config_as_pushed(git_dir: &Path) -> Command {
    let mut git = command(git_dir);
    git.env_remove("GIT_CONFIG_NOSYSTEM")
        .env_remove("GIT_CONFIG_GLOBAL");
    for var in ["HOME", "XDG_CONFIG_HOME"] {
        if let Some(value) = std::env::var_os(var) {
            git.env(var, value);
        }
    }
    git
}

/// Whether a `receive.hideRefs` (or `transfer.hideRefs`) pattern hides
/// `refname`, and how: `Some(true)` hides, `Some(false)` shows it again
/// (`!`), `None` says nothing of it. As git matches them: the pattern is a
/// whole ref name or a prefix ending where a `/` follows in `refname`;
/// `^` (a name before any namespace is stripped, the same name here) and
/// trailing slashes are dropped first.
fn hide_pattern_says(pattern: &str, refname: &str) -> Option<bool> {
    let (shown, pattern) = match pattern.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
    let pattern = pattern.trim_end_matches('/');
    let rest = refname.strip_prefix(pattern)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(!shown)
}

/// Whether git refuses a push that creates, updates or deletes `refname`
/// in `git_dir` ("deny updating a hidden ref"): the last of the
/// `transfer.hideRefs` and `receive.hideRefs` entries (in the order git
/// reads them) that speaks of it hides it. Quire's notes ref is kept from
/// pushers so (`install`, [`hide_from_pushes`]): git refuses it before
/// any hook runs, at no cost to the push.
pub fn hidden_from_pushes(git_dir: &Path, refname: &str) -> bool {
    hides(config_as_pushed(git_dir), refname)
}

/// Whether the hideRefs entries `git` (a `git config` reading some of the
/// configuration) reads hide `refname`.
fn hides(mut git: Command, refname: &str) -> bool {
    let out = git
        .args([
            "config",
            "--null",
            "--get-regexp",
            r"^(transfer|receive)\.hiderefs$",
        ])
        .output();
    // Exit 1: no such entry, nothing hidden.
    let Ok(out) = out else { return false };
    // The last entry that speaks of it decides.
    out.stdout
        .split(|&b| b == 0)
        .rev()
        .find_map(|entry| {
            let text = std::str::from_utf8(entry).ok()?;
            let (_, value) = text.split_once('\n')?;
            hide_pattern_says(value, refname)
        })
        .unwrap_or(false)
}

/// Make git refuse every push of `refname` to `git_dir`: a
/// `receive.hideRefs` entry for it, added to the repository's own
/// configuration unless that already hides it. `Ok(true)` when it was
/// added. An error when git would still let it be pushed after (a
/// configuration git reads after the repository's shows it again).
pub fn hide_from_pushes(git_dir: &Path, refname: &str) -> Result<bool, String> {
    // The repository's own configuration decides, not the system's or
    // this user's: git reads it last, and the user that runs git for a
    // push may have another home, or the system's entry may go.
    if hides(command(git_dir), refname) {
        return Ok(false);
    }
    let added = command(git_dir)
        .args(["config", "--add", "receive.hideRefs", refname])
        .status()
        .is_ok_and(|s| s.success());
    if !added {
        return Err(format!(
            "`git config --add receive.hideRefs {refname}` failed in {}",
            git_dir.display()
        ));
    }
    if !hidden_from_pushes(git_dir, refname) {
        return Err(format!(
            "git still lets {refname} be pushed to {} after `git config --add receive.hideRefs {refname}`: \
             a receive.hideRefs or transfer.hideRefs entry of `!{refname}` shows it again",
            git_dir.display()
        ));
    }
    Ok(true)
}

/// Where `core.hooksPath` sends git for the bare repository `git_dir`, when
/// that is not its `hooks/` (git expands `~`; a relative path is taken from
/// the git directory, where git runs a bare repository's hooks).
pub fn hooks_elsewhere(git_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    // What git itself reads when it runs a push's hooks: the system's and
    // the user's configuration too (`~/.gitconfig` sets core.hooksPath as
    // often as the repository does).
    let out = config_as_pushed(git_dir)
        .args(["config", "--type=path", "--get", "core.hooksPath"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if value.is_empty() {
        return None;
    }
    let path = git_dir.join(value);
    let default = git_dir.join("hooks");
    (std::fs::canonicalize(&path).ok() != std::fs::canonicalize(&default).ok()
        || !path.exists() && path != default)
        .then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(size: u64) -> Option<gix::odb::find::Header> {
        Some(gix::odb::find::Header::Loose {
            kind: gix::object::Kind::Blob,
            size,
        })
    }

    #[test]
    fn a_hide_pattern_speaks_of_a_ref_as_git_matches_it() {
        let notes = "refs/notes/ci";
        for (pattern, says) in [
            ("refs/notes/ci", Some(true)),
            ("refs/notes/ci/", Some(true)),
            ("^refs/notes/ci", Some(true)),
            ("refs/notes", Some(true)),
            ("refs", Some(true)),
            ("!refs/notes/ci", Some(false)),
            ("!refs/notes", Some(false)),
            // A prefix of the name, not of a component: says nothing.
            ("refs/notes/c", None),
            ("refs/notes/ci2", None),
            ("refs/heads", None),
        ] {
            assert_eq!(hide_pattern_says(pattern, notes), says, "{pattern}");
        }
    }

    #[test]
    fn a_tree_is_written_in_process_only_while_it_is_small() {
        let mut small = Weight::default();
        for _ in 0..IN_PROCESS_FILES {
            small.add(|| blob(1024));
        }
        assert!(small.in_process(), "{small:?}");
        small.add(|| blob(1));
        assert!(!small.in_process(), "one file too many: {small:?}");

        let mut large = Weight::default();
        large.add(|| blob(IN_PROCESS_BLOB + 1));
        assert!(!large.in_process(), "a blob over the limit: {large:?}");

        let mut heavy = Weight::default();
        for _ in 0..(IN_PROCESS_BYTES / IN_PROCESS_BLOB + 1) {
            heavy.add(|| blob(IN_PROCESS_BLOB));
        }
        assert!(!heavy.in_process(), "too many bytes in all: {heavy:?}");

        let mut unknown = Weight::default();
        unknown.add(|| None);
        assert!(!unknown.in_process(), "a size not read: {unknown:?}");

        // Once it may not, no more headers are read.
        let mut read = 0;
        large.add(|| {
            read += 1;
            blob(1)
        });
        assert_eq!(read, 0);
    }
}
