//! How many workers run, and starting one.
//!
//! A worker holds one of `max_workers` slots: an exclusive `flock` on
//! `workers/slot-N.lock` in the home, which the kernel releases when the
//! process dies however it dies, so the count is never stale. A worker that
//! finds the queue empty releases its slot and looks once more before it
//! exits; a hook looks for a free slot only after its run is committed. So
//! a queued run always finds a worker: either the draining worker sees it,
//! or the hook sees the slot free and starts one.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{FlockOperation, flock};

use quire_store::Home;

use crate::Error;

type Result<T, E = Error> = std::result::Result<T, E>;

/// A held worker slot; dropping it releases the slot.
#[derive(Debug)]
pub struct Slot {
    _lock: File,
    pub index: usize,
}

fn slot_path(home: &Home, index: usize) -> PathBuf {
    home.dir()
        .join("workers")
        .join(format!("slot-{index}.lock"))
}

fn open_slot(home: &Home, index: usize) -> Result<File> {
    let fail = |path: PathBuf| move |source| Error::Slot { path, source };
    let path = slot_path(home, index);
    let open = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
    };
    match open() {
        // workers/ is made once, by the first command that needs a slot.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Only inside the home: a deleted one is not made again.
            let dir = home.dir().join("workers");
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                // Another command made it since the open: the two hooks
                // of a new home's first push count its slots at once.
                // Taken for a failure, it left that hook starting no
                // worker, and its run pending until reconcile.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fail(dir)(e)),
            }
            open().map_err(fail(path.clone()))
        }
        result => result.map_err(fail(path.clone())),
    }
}

/// Take a free slot of `max`, if there is one.
pub fn try_acquire(home: &Home, max: usize) -> Result<Option<Slot>> {
    for index in 0..max {
        let file = open_slot(home, index)?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return Ok(Some(Slot { _lock: file, index }));
        }
    }
    Ok(None)
}

/// [`try_acquire`], tried again for about a second when every slot looks
/// taken: [`free_slots`] (a hook counting them) holds each slot's lock for
/// an instant, which on a loaded machine (the hook preempted while it
/// holds one) can last many milliseconds, and a worker starting then must
/// not take it for a busy worker and exit, leaving its run pending. A
/// worker that is one too many waits that second, then exits.
pub fn acquire_soon(home: &Home, max: usize) -> Result<Option<Slot>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        if let Some(slot) = try_acquire(home, max)? {
            return Ok(Some(slot));
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
    }
}

/// How many of the `max` slots no worker holds now.
///
/// Each slot is probed with a shared lock: a worker's exclusive lock
/// refuses it, another command probing at the same instant does not. (Two
/// hooks of one push probing with exclusive locks each took the other's
/// probe for a worker, and started none for the second run.)
pub fn free_slots(home: &Home, max: usize) -> Result<usize> {
    let mut free = 0;
    for index in 0..max {
        let file = open_slot(home, index)?;
        // Taken and, as the file closes, released at once.
        if flock(&file, FlockOperation::NonBlockingLockShared).is_ok() {
            free += 1;
        }
    }
    Ok(free)
}

/// Start `quire-run work` fully detached: stdin from /dev/null, stdout and
/// stderr appended to `worker.log` in the home (a child that kept the
/// hook's stdout or stderr would keep `git push` waiting until it exits),
/// and its own session, which the worker makes for itself first thing
/// (`detach_from_session`): no code runs between fork and exec here, so
/// the spawn takes the fast posix_spawn path. Returns the worker's pid.
pub fn spawn_worker(quire_run: &Path, home: &Home) -> io::Result<u32> {
    Ok(spawn_detached(quire_run, home, "work")?.id())
}

/// Start `quire-run announce` as [`spawn_worker`] starts a worker, to
/// announce the runs that ended (docs/OPERATIONS.md, "When a run ends").
/// The child, for a caller that waits for it; others drop it.
pub fn spawn_announcer(home: &Home) -> io::Result<std::process::Child> {
    spawn_detached(&quire_run(), home, "announce")
}

/// Start an announcer if an ended run waits for one; say so on stderr
/// (worker.log, or the command's) when it cannot start.
pub fn announce_if_needed(home: &Home, store: &quire_store::Store) {
    if store.has_unannounced().unwrap_or(false)
        && let Err(e) = spawn_announcer(home)
    {
        // The hook's stderr is the pusher's connection: gone, it is no
        // reason to panic.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "quire: cannot start quire-run announce: {e}"
        );
    }
}

fn spawn_detached(
    quire_run: &Path,
    home: &Home,
    command_name: &str,
) -> io::Result<std::process::Child> {
    // A home whose store is gone gets no worker.log (nor a process that
    // would find nothing to do).
    if home.is_gone() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is gone", home.db_path().display()),
        ));
    }
    let log_path = home.dir().join("worker.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)?;
    let mut command = Command::new(quire_run);
    command
        .arg("--home")
        .arg(home.dir())
        .arg(command_name)
        .current_dir(home.dir())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    command.spawn()
}

/// Leave the session (and process group) of whoever started this process:
/// a worker must outlive the hook and be out of reach of signals sent to
/// the push's process group or terminal.
pub fn detach_from_session() -> io::Result<()> {
    match rustix::process::setsid() {
        Ok(_) => Ok(()),
        // Already a group leader (started by hand with its own group, or a
        // session leader): it is detached enough.
        Err(rustix::io::Errno::PERM) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Start a worker for each of `queued` runs while a slot of `max_workers`
/// is free (the workers already running take the rest); each worker takes
/// queued runs until none is left. Returns how many were started. The one
/// way every command (the hook, trigger, retry, reconcile) starts workers.
/// Two commands starting workers at once may start one too many: it finds
/// no slot and exits.
pub fn start(home: &Home, max_workers: usize, queued: usize) -> Result<usize> {
    let wanted = free_slots(home, max_workers)?.min(queued);
    for _ in 0..wanted {
        spawn_worker(&quire_run(), home).map_err(|source| Error::Spawn {
            home: home.dir().to_path_buf(),
            source,
        })?;
    }
    Ok(wanted)
}

/// The `quire-run` binary: this one, or the one installed beside it, else
/// the name for `$PATH`.
fn quire_run() -> PathBuf {
    let exe = std::env::current_exe().ok();
    if let Some(exe) = &exe
        && exe.file_name().is_some_and(|name| name == "quire-run")
    {
        return exe.clone();
    }
    exe.and_then(|exe| exe.parent().map(|dir| dir.join("quire-run")))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("quire-run"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let first = try_acquire(&home, 2).unwrap().unwrap();
        let second = try_acquire(&home, 2).unwrap().unwrap();
        assert_ne!(first.index, second.index);
        assert!(try_acquire(&home, 2).unwrap().is_none());
        assert_eq!(free_slots(&home, 2).unwrap(), 0);
        drop(first);
        assert_eq!(free_slots(&home, 2).unwrap(), 1);
    }

    #[test]
    fn commands_counting_the_slots_of_a_new_home_at_once_all_count_them() {
        // The first to count makes workers/; another that found it missing
        // a moment earlier must not take it being there for a failure. The
        // window is microseconds: many new homes, counted by four at once.
        for _ in 0..300 {
            let dir = tempfile::tempdir().unwrap();
            let home = Home::at(dir.path());
            let together = std::sync::Barrier::new(4);
            std::thread::scope(|s| {
                let counting: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            together.wait();
                            free_slots(&home, 2)
                        })
                    })
                    .collect();
                for count in counting {
                    assert_eq!(count.join().unwrap().unwrap(), 2);
                }
            });
        }
    }

    #[test]
    fn a_probe_of_another_command_is_not_taken_for_a_worker() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        assert_eq!(free_slots(&home, 2).unwrap(), 2);
        // Another hook counting at this instant holds slot 0 as it probes.
        let probing = open_slot(&home, 0).unwrap();
        flock(&probing, FlockOperation::NonBlockingLockShared).unwrap();
        assert_eq!(free_slots(&home, 2).unwrap(), 2);
        // A worker's slot is still seen as taken.
        let worker = try_acquire(&home, 2).unwrap().unwrap();
        assert_eq!(worker.index, 1);
        assert_eq!(free_slots(&home, 2).unwrap(), 1);
    }
}
