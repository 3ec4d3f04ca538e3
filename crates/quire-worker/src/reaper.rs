//! Removing an ended run's directories beside the worker's next run.
//!
//! On a file system mounted with `discard` (common on VMs and SSDs) the
//! kernel trims a directory's block as it is removed, and `rmdir` waits for
//! the disk: 2-4 ms each on the machines quire is measured on, and a run
//! makes about ten directories (its own, the workspace's `.git` and
//! `objects`, `HOME`, `TMPDIR`, `logs/`). Removed one after another by the
//! worker, they took longer than the rest of a trivial run. Each run's are
//! removed by a thread of its own instead, side by side with the worker's
//! next run and with each other (the disk trims several at once), and the
//! worker waits for every one of them before it exits.
//!
//! What is removed is what the worker removed before, the same way
//! ([`RunDirs::remove`], then `runs/<id>/` and `logs/` only if empty), once
//! the run's containment has ended its processes and its end is recorded.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::sandbox::RunDirs;

/// Removals under way at once: past that, the worker waits for the oldest
/// (a disk slower to remove than runs end holds the worker back rather
/// than let removals pile up).
const AT_ONCE: usize = 8;

/// The removals a worker started, each a thread.
#[derive(Default)]
pub struct Reaper {
    under_way: std::cell::RefCell<Vec<JoinHandle<()>>>,
}

/// One run's removal, under way: its workspace, `HOME` and `TMPDIR` go at
/// once; `runs/<id>/` once this is dropped (its logs packed by then).
pub struct Removal {
    packed: Option<mpsc::Sender<()>>,
    dirs_gone: mpsc::Receiver<()>,
}

impl Removal {
    /// Wait until the workspace, `HOME` and `TMPDIR` are gone: on a full
    /// disk, the room they free is what the run's end is recorded in.
    pub fn wait_for_dirs(&self) {
        let _ = self.dirs_gone.recv();
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        // The thread goes on to runs/<id>/ when the sender is gone.
        self.packed.take();
    }
}

impl Reaper {
    /// Start removing `dirs` (the workspace, `HOME` and `TMPDIR`; none
    /// when they are kept), then, once the [`Removal`] is dropped, whatever
    /// of `run_dir` is left empty; on a thread of its own, or here, in
    /// line, when no thread can be started.
    pub fn remove(&self, dirs: Option<RunDirs>, run_dir: PathBuf) -> Removal {
        let mut under_way = self.under_way.borrow_mut();
        let (done, running): (Vec<_>, Vec<_>) =
            under_way.drain(..).partition(JoinHandle::is_finished);
        *under_way = running;
        for handle in done {
            let _ = handle.join();
        }
        if under_way.len() >= AT_ONCE {
            let _ = under_way.remove(0).join();
        }
        let (packed_tx, packed) = mpsc::channel::<()>();
        let (gone, dirs_gone) = mpsc::channel::<()>();
        // Kept for removing them in line, should no thread start.
        let in_line = dirs.clone();
        let job = Job {
            dirs,
            run_dir,
            gone,
            packed,
        };
        match std::thread::Builder::new()
            .name("remove".into())
            .spawn(move || job.run())
        {
            Ok(handle) => {
                under_way.push(handle);
                Removal {
                    packed: Some(packed_tx),
                    dirs_gone,
                }
            }
            Err(e) => {
                eprintln!("quire-run work: cannot start a thread to remove a run's files: {e}");
                // Its directories now; runs/<id>/, whose logs are not
                // packed yet, stays for reconcile or prune.
                if let Some(dirs) = in_line {
                    dirs.remove();
                }
                Removal {
                    packed: None,
                    dirs_gone,
                }
            }
        }
    }

    /// Wait for every removal under way.
    pub fn wait(&self) {
        for handle in self.under_way.borrow_mut().drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.wait();
    }
}

/// What one removal's thread does.
struct Job {
    dirs: Option<RunDirs>,
    run_dir: PathBuf,
    gone: mpsc::Sender<()>,
    packed: mpsc::Receiver<()>,
}

impl Job {
    fn run(self) {
        if let Some(dirs) = &self.dirs {
            dirs.remove();
        }
        let _ = self.gone.send(());
        // Until the worker packed the run's logs: an error once it dropped
        // its end of the channel.
        let _ = self.packed.recv();
        quire_store::logs::remove_emptied_run_dir(&self.run_dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory as a run leaves it: a workspace with a nested tree,
    /// HOME, TMPDIR, and `logs/` holding a log not yet packed.
    fn ended_run(root: &std::path::Path, name: &str) -> (PathBuf, RunDirs) {
        let run_dir = root.join(name);
        let dirs = RunDirs::of(&run_dir);
        std::fs::create_dir_all(dirs.workspace.join(".git/objects/info")).unwrap();
        std::fs::write(dirs.workspace.join("file"), "x").unwrap();
        std::fs::create_dir_all(&dirs.home).unwrap();
        std::fs::create_dir_all(&dirs.tmp).unwrap();
        std::fs::create_dir_all(run_dir.join("logs")).unwrap();
        std::fs::write(run_dir.join("logs/t.log"), "log").unwrap();
        (run_dir, dirs)
    }

    #[test]
    fn the_run_directory_goes_only_once_its_logs_are_packed() {
        let root = tempfile::tempdir().unwrap();
        let (run_dir, dirs) = ended_run(root.path(), "run");
        let reaper = Reaper::default();
        let removal = reaper.remove(Some(dirs.clone()), run_dir.clone());
        removal.wait_for_dirs();
        for dir in [&dirs.workspace, &dirs.home, &dirs.tmp] {
            assert!(!dir.exists(), "{}", dir.display());
        }
        // The log is packed (its file deleted) only now; the directory
        // waited for it.
        assert!(run_dir.join("logs").is_dir());
        std::fs::remove_file(run_dir.join("logs/t.log")).unwrap();
        drop(removal);
        reaper.wait();
        assert!(!run_dir.exists());
    }

    #[test]
    fn a_kept_workspace_or_a_log_left_as_a_file_keeps_the_run_directory() {
        let root = tempfile::tempdir().unwrap();
        let (run_dir, dirs) = ended_run(root.path(), "run");
        let reaper = Reaper::default();
        drop(reaper.remove(None, run_dir.clone()));
        reaper.wait();
        assert!(dirs.workspace.join("file").is_file(), "kept");
        assert!(run_dir.join("logs/t.log").is_file(), "left as a file");
    }

    #[test]
    fn a_worker_that_waits_finds_every_removal_done() {
        let root = tempfile::tempdir().unwrap();
        let reaper = Reaper::default();
        let runs: Vec<PathBuf> = (0..2 * AT_ONCE)
            .map(|i| {
                let (run_dir, dirs) = ended_run(root.path(), &format!("run{i}"));
                std::fs::remove_file(run_dir.join("logs/t.log")).unwrap();
                drop(reaper.remove(Some(dirs), run_dir.clone()));
                run_dir
            })
            .collect();
        drop(reaper);
        for run_dir in runs {
            assert!(!run_dir.exists(), "{}", run_dir.display());
        }
    }
}
