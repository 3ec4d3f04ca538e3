//! Disk per trivial run (issue 12): what the home grows by for each run of
//! one job, one step and a one-line log, once the run has ended.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::harness::{Bins, Repo, row, run, trigger_main};

/// Bytes allocated to `path` and everything under it, as `du` counts them
/// (512-byte blocks; a directory's own blocks included).
fn allocated(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut bytes = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            bytes += allocated(&entry.path());
        }
    }
    bytes
}

/// The store's files: quire.db and, while a connection is open, its WAL
/// and shared memory (none here: every process has exited).
fn store_bytes(home: &Path) -> u64 {
    ["quire.db", "quire.db-wal", "quire.db-shm"]
        .iter()
        .map(|f| allocated(&home.join(f)))
        .sum()
}

/// N trivial runs through `quire-run trigger --wait` (the worker's code
/// path, in the foreground), measured after the first, which creates the
/// store and the home's directories; against the files each run wrote
/// before they were packed.
pub fn disk(bins: &Bins, quick: bool) {
    let n: u64 = if quick { 200 } else { 1000 };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = Repo::new(dir.path(), "app");
    repo.install(bins, &home);
    repo.commit(
        &[(
            ".quire/ci.toml",
            "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"echo hello\"\n",
        )],
        "pipeline",
    );
    repo.push(&["--quiet", "origin", "main"]);
    let trigger = || {
        run(&mut trigger_main(bins, &home, &repo));
    };
    trigger();
    let (home_before, store_before) = (allocated(&home), store_bytes(&home));
    for _ in 0..n {
        trigger();
    }
    let home_grew = allocated(&home).saturating_sub(home_before);
    // The baseline: the files each of these runs left before its logs were
    // packed into the store, which `quire-run exec` still writes (the
    // run's directory, events.jsonl, logs/<job>/<seq>.log), for the same
    // pipeline, as many times.
    let old = dir.path().join("files");
    std::fs::create_dir(&old).unwrap();
    let old_before = allocated(&old);
    for i in 0..n {
        run(Command::new(&bins.quire_run)
            .arg("exec")
            .arg("--workspace")
            .arg(&repo.work)
            .arg("--logs")
            .arg(old.join(i.to_string())));
    }
    let files_grew = allocated(&old).saturating_sub(old_before);
    let store_grew = store_bytes(&home).saturating_sub(store_before);
    let left = std::fs::read_dir(home.join("runs")).map_or(0, |d| d.count());
    let per_run = |bytes: u64| bytes as f64 / n as f64;
    row(
        &format!(
            "disk per trivial run (one job, one step, a one-line log), {n} runs through `quire-run trigger --wait`"
        ),
        &format!(
            "the files a run left before its logs were packed (its directory, events.jsonl, logs/t/1.log, as `quire-run exec` writes them): {:.0} bytes per run, quire.db's growth not counted",
            per_run(files_grew)
        ),
        &format!(
            "the home grew **{:.0} bytes per run** (allocated blocks, as `du`); quire.db alone {:.0} bytes per run, the files beside it {:.0}; run directories left: {left}",
            per_run(home_grew),
            per_run(store_grew),
            per_run(home_grew.saturating_sub(store_grew)),
        ),
        "<= 4 KB per run",
    );
}
