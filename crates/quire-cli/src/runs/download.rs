//! download: a run's kept artifacts, written as `DIR/<job>/<path>`, each
//! checked against the size and SHA-256 the store recorded when it was
//! kept. An existing file is never overwritten: every target is checked
//! before anything is written, and each file is put in place with a link
//! that fails if the name was taken meanwhile.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use quire_exec::exec::{CopyError, copy_hashed};
use quire_model::Artifact;
use quire_store::Store;

use crate::error::{CommandError, Kind};
use crate::runs::cli::DownloadArgs;
use quire_view::text::{human_bytes, printable};

pub fn run(store: &Store, args: &DownloadArgs) -> crate::error::Result<ExitCode> {
    let run = store.resolve_run(&args.run)?;
    let mut artifacts = store.artifacts(&run.id)?;
    if let Some(job) = &args.job {
        let detail = store.run_detail(&run.id)?;
        if !detail.jobs.iter().any(|j| j.job.id == *job) {
            return Err(CommandError::unknown_job(&run.id, job));
        }
        artifacts.retain(|a| a.job == *job);
    }
    if artifacts.is_empty() {
        match &args.job {
            Some(job) => eprintln!(
                "job {} of run {} kept no artifacts",
                printable(job),
                printable(&run.id)
            ),
            None => eprintln!("run {} kept no artifacts", printable(&run.id)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let source_dir = store.home().run_dir(&run.id)?.join("artifacts");
    let mut plan = Vec::with_capacity(artifacts.len());
    for artifact in &artifacts {
        let Some(rel) = relative(artifact) else {
            return Err(CommandError::refused(format!(
                "the store records artifact {} of job {}, which is not a path inside a directory; nothing was written",
                printable(&artifact.path),
                printable(&artifact.job)
            )));
        };
        let target = args.dir.join(&rel);
        if fs::symlink_metadata(&target).is_ok() {
            return Err(CommandError::refused(format!(
                "{} already exists; refusing to overwrite it, nothing was written",
                shown(&target)
            ))
            .hint("remove it, or download into another directory with --dir"));
        }
        plan.push((artifact, source_dir.join(&rel), target));
    }
    let mut total = 0;
    for (artifact, source, target) in &plan {
        let opened = store.home().open_artifact(&run.id, artifact);
        if let Err(message) = put(artifact, opened, source, target) {
            return Err(CommandError::new(Kind::Io, message));
        }
        total += artifact.size;
        println!("{}  ({})", shown(target), human_bytes(artifact.size));
    }
    println!(
        "downloaded {} {} ({}) of run {} into {}",
        plan.len(),
        if plan.len() == 1 { "file" } else { "files" },
        human_bytes(total),
        printable(&run.id),
        shown(&args.dir)
    );
    Ok(ExitCode::SUCCESS)
}

/// A path as a terminal may show it: artifact names are the pipeline's.
fn shown(path: &Path) -> String {
    printable(&path.to_string_lossy()).into_owned()
}

/// `<job>/<path>`, if the recorded path stays inside the job's directory.
fn relative(artifact: &Artifact) -> Option<PathBuf> {
    artifact.relative_path()
}

/// Copy the artifact's file (`opened` below the run's artifacts by
/// descriptors, no link followed: `Home::open_artifact`; `source` is its
/// path, for messages) to a temporary name beside `target`, check its size
/// and hash, and only then link it in under `target`.
fn put(
    artifact: &Artifact,
    opened: io::Result<File>,
    source: &Path,
    target: &Path,
) -> Result<(), String> {
    let name = format!("{}/{}", artifact.job, artifact.path);
    let name = printable(&name);
    let parent = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", shown(parent)))?;
    let partial = parent.join(format!(
        ".{}.quire-download",
        target.file_name().unwrap_or_default().to_string_lossy()
    ));
    let written = opened.and_then(|mut from| copy(&mut from, &partial));
    let (size, sha256) = match written {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(format!(
                "cannot copy artifact {name} from {}: {e}",
                shown(source)
            ));
        }
    };
    if size != artifact.size || sha256 != artifact.sha256 {
        let _ = fs::remove_file(&partial);
        return Err(format!(
            "artifact {name} does not match what was kept ({size} bytes, sha256 {sha256}; the store recorded {} bytes, sha256 {}); it was not written",
            artifact.size, artifact.sha256
        ));
    }
    let linked = fs::hard_link(&partial, target);
    let _ = fs::remove_file(&partial);
    linked.map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => {
            format!("{} already exists; refusing to overwrite it", shown(target))
        }
        _ => format!("cannot write {}: {e}", shown(target)),
    })
}

/// Stream `from` into a new file `to`; its size and SHA-256.
fn copy(from: &mut File, to: &Path) -> io::Result<(u64, String)> {
    let mut out = OpenOptions::new().write(true).create_new(true).open(to)?;
    copy_hashed(from, &mut out).map_err(|(CopyError::Read(e) | CopyError::Write(e))| e)
}
