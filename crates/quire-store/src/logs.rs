//! Step logs once their run has ended: packing the small ones into the
//! store, and reading a step's log from wherever it is.
//!
//! While a run executes, each job's steps write their output to one CRI
//! log file, `runs/<id>/logs/<job>.log` (quire-exec), each step from where
//! it began (`sh_events.log_at`, from its `step_started` event) to where
//! the next one begins. Steps from before 0019 wrote a file each,
//! `runs/<id>/logs/<job>/<seq>.log`, as `migrate-from` writes upstream's;
//! both are read. Once the run has ended, [`Store::pack_logs`] copies each
//! step's log of at most [`PACK_MAX_BYTES`] into `step_logs` (migration
//! 0012), and only after that commit deletes the files, the run's `events.jsonl` (reconcile reads it
//! only for active runs) and the directories left empty: a run whose logs
//! are all small leaves no `runs/<id>/` behind. Larger logs stay files,
//! as do kept artifacts and a kept workspace.
//!
//! Crash safety: the copy is committed before any file is deleted, and
//! [`Store::step_log`] opens the file first and reads the copy only when the
//! file is gone. A reader therefore always finds the log, whenever the pack
//! happens; a crash between the commit and the deletes leaves two copies of
//! the same bytes, which the next pack of the run (reconcile's, for a run
//! whose worker is gone) tidies up.

use std::fs::{self, File};
use std::io::{self, Cursor, ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use crate::lifecycle::run_state;
use crate::query::run_by_id;
use crate::reconcile::Liveness;
use crate::{Error, Result, Store};

/// Logs up to this size are packed into the store; larger ones stay files.
pub const PACK_MAX_BYTES: u64 = 64 * 1024;

/// Bytes packed per transaction at most (one log may exceed it alone), so
/// a run with many logs never holds the write lock for long.
const BATCH_BYTES: u64 = 4 << 20;

/// A step's log, read from its file, from its part of its job's log, or
/// from the copy packed into the store.
#[derive(Debug)]
pub enum StepLog {
    File(File),
    /// `len` bytes of a job's log from `start` (its length when opened,
    /// for a step still writing), read at `pos` from there.
    Part {
        file: File,
        start: u64,
        len: u64,
        pos: u64,
    },
    Packed(Cursor<Vec<u8>>),
}

impl Read for StepLog {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            StepLog::File(file) => file.read(buf),
            StepLog::Part {
                file,
                start,
                len,
                pos,
            } => {
                let left = len.saturating_sub(*pos);
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = file.read_at(&mut buf[..want], *start + *pos)?;
                *pos += n as u64;
                Ok(n)
            }
            StepLog::Packed(bytes) => bytes.read(buf),
        }
    }
}

impl Seek for StepLog {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            StepLog::File(file) => file.seek(to),
            StepLog::Part { len, pos, .. } => {
                let new = match to {
                    SeekFrom::Start(at) => Some(at),
                    SeekFrom::End(delta) => len.checked_add_signed(delta),
                    SeekFrom::Current(delta) => pos.checked_add_signed(delta),
                };
                *pos = new.ok_or_else(|| {
                    io::Error::new(ErrorKind::InvalidInput, "a seek before the start of a log")
                })?;
                Ok(*pos)
            }
            StepLog::Packed(bytes) => bytes.seek(to),
        }
    }
}

/// Remove what a packed run leaves empty: the directories under
/// `runs/<id>/logs/`, `logs/` itself, then `runs/<id>/`, each only if
/// empty (a log left as a file, a kept artifact or workspace stays, and
/// its directory with it). Whether `runs/<id>/` is gone.
pub fn remove_emptied_run_dir(run_dir: &Path) -> bool {
    let logs_dir = run_dir.join("logs");
    for entry in fs::read_dir(&logs_dir).into_iter().flatten().flatten() {
        let _ = fs::remove_dir(entry.path());
    }
    let _ = fs::remove_dir(&logs_dir);
    gone(fs::remove_dir(run_dir))
}

/// What [`Store::pack_logs`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Logs copied into the store.
    pub logs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Logs left as files: larger than [`PACK_MAX_BYTES`], or not regular files.
    pub left_as_files: usize,
    /// Whether `runs/<id>/` is gone (nothing else was left in it).
    pub dir_removed: bool,
}

/// A log file of a run: its job, its step, its path and size.
struct LogFile {
    job: String,
    path: PathBuf,
    len: u64,
    /// The steps' logs in it: (seq, where it begins, where it ends). One
    /// step's, the whole file, for a file of its own.
    parts: Vec<(i64, u64, u64)>,
}

/// Where [`Store::read_step_log`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAt {
    /// At this byte (the log's length, if it is shorter).
    Offset(u64),
    /// As far from the end as the bytes asked for reach.
    Tail,
}

/// Bytes of a step's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBytes {
    pub bytes: Vec<u8>,
    /// Where they start in the log.
    pub start: u64,
    /// The log's length when it was read.
    pub len: u64,
}

impl Store {
    /// The log of step `seq` of `job` in run `run_id`: its file when it
    /// exists, else the copy packed into the store; `None` when there is
    /// neither (the step has not started, or never wrote a log).
    pub fn step_log(&self, run_id: &str, job: &str, seq: i64) -> Result<Option<StepLog>> {
        // The file first: a pack commits its copy before it deletes the
        // file, so a file found missing here is in the store already.
        // An id not of quire's shape has no file (it names no path); its
        // packed copy may still be read.
        if let Some((start, end)) = self.step_bounds(run_id, job, seq)?
            && let Ok(path) = self.home().job_log_path(run_id, job)
        {
            match File::open(&path) {
                Ok(file) => {
                    let file_len = file
                        .metadata()
                        .map_err(|source| Error::Home {
                            path: path.clone(),
                            source,
                        })?
                        .len();
                    let end = end.unwrap_or(file_len).min(file_len);
                    return Ok(Some(StepLog::Part {
                        file,
                        start,
                        len: end.saturating_sub(start),
                        pos: 0,
                    }));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Home { path, source }),
            }
        } else if let Ok(path) = self.home().step_log_path(run_id, job, seq) {
            match File::open(&path) {
                Ok(file) => return Ok(Some(StepLog::File(file))),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Home { path, source }),
            }
        }
        let packed: Option<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT log FROM step_logs WHERE run_id = ?1 AND job_id = ?2 AND seq = ?3",
            )?
            .query_row(params![run_id, job, seq], |row| row.get(0))
            .optional()?;
        Ok(packed.map(|bytes| StepLog::Packed(Cursor::new(bytes))))
    }

    /// Where step `seq` of `job` begins in its job's log and where the next
    /// step begins (None: it is the job's last so far, whose lines run to
    /// the end of the log); None for a step of its own file (before 0019)
    /// or one not recorded.
    fn step_bounds(&self, run_id: &str, job: &str, seq: i64) -> Result<Option<(u64, Option<u64>)>> {
        let start: Option<Option<i64>> = self
            .conn
            .prepare_cached(
                "SELECT log_at FROM sh_events WHERE run_id = ?1 AND job_id = ?2 AND seq = ?3",
            )?
            .query_row(params![run_id, job, seq], |row| row.get(0))
            .optional()?;
        let Some(Some(start)) = start else {
            return Ok(None);
        };
        let next: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT log_at FROM sh_events WHERE run_id = ?1 AND job_id = ?2 AND seq > ?3
                 AND log_at IS NOT NULL ORDER BY seq LIMIT 1",
            )?
            .query_row(params![run_id, job, seq], |row| row.get(0))
            .optional()?;
        let as_offset = |at: i64| u64::try_from(at).unwrap_or(0);
        Ok(Some((as_offset(start), next.map(as_offset))))
    }

    /// The steps of the run's jobs with their place in their job's log:
    /// by job, (seq, where it begins), in order.
    fn steps_in_job_logs(&self, run_id: &str) -> Result<Vec<(String, i64, u64)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT job_id, seq, log_at FROM sh_events
                 WHERE run_id = ?1 AND log_at IS NOT NULL ORDER BY job_id, seq",
            )?
            .query_map([run_id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                ))
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// At most `max` bytes of a step's log (as [`Store::step_log`] finds
    /// it), from `at`; `None` when it has no log. The one reader of logs'
    /// bytes: `quire-runs logs`, the last lines `ci.wait` and `watch` show,
    /// and the web's pages and live logs read through it, and parse what
    /// it gives with `quire_model::cri`.
    pub fn read_step_log(
        &self,
        run_id: &str,
        job: &str,
        seq: i64,
        at: LogAt,
        max: u64,
    ) -> Result<Option<LogBytes>> {
        let Some(mut log) = self.step_log(run_id, job, seq)? else {
            return Ok(None);
        };
        // Only named in an error; an id that names no path has a packed log.
        let path = self
            .home()
            .step_log_path(run_id, job, seq)
            .unwrap_or_default();
        let fail = |source| Error::Home {
            path: path.clone(),
            source,
        };
        let len = log.seek(SeekFrom::End(0)).map_err(fail)?;
        let start = match at {
            LogAt::Offset(offset) => offset.min(len),
            LogAt::Tail => len.saturating_sub(max),
        };
        log.seek(SeekFrom::Start(start)).map_err(fail)?;
        let mut bytes = Vec::new();
        log.take(max).read_to_end(&mut bytes).map_err(fail)?;
        Ok(Some(LogBytes { bytes, start, len }))
    }

    /// The (job, seq) of every log of the run packed into the store, by job
    /// and step.
    pub fn packed_logs(&self, run_id: &str) -> Result<Vec<(String, i64)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT job_id, seq FROM step_logs WHERE run_id = ?1 ORDER BY job_id, seq",
            )?
            .query_map([run_id], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Pack the logs of a run that has ended: every log file of at most
    /// [`PACK_MAX_BYTES`] is copied into the store, then deleted; then
    /// `events.jsonl` and the directories left empty go. `None` (and
    /// nothing done) when the run is unknown or has not ended: an active
    /// run's files are still written, and reconcile may need its events.
    /// Packing a run again packs what is left (after a crash between the
    /// commit and the deletes, the files again, the same bytes).
    pub fn pack_logs(&mut self, run_id: &str) -> Result<Option<Packed>> {
        let Some(packed) = self.pack_log_files(run_id)? else {
            return Ok(None);
        };
        let dir_removed = remove_emptied_run_dir(&self.home().run_dir(run_id)?);
        Ok(Some(Packed {
            dir_removed,
            ..packed
        }))
    }

    /// [`pack_logs`](Store::pack_logs) but for its last part: the run's
    /// directories are left for [`remove_emptied_run_dir`] (a worker does
    /// that beside its next run: removing a directory can wait on the
    /// disk for milliseconds). `dir_removed` is false.
    pub fn pack_log_files(&mut self, run_id: &str) -> Result<Option<Packed>> {
        match run_by_id(&self.conn, run_id)? {
            Some(run) if run.state.is_terminal() => {}
            _ => return Ok(None),
        }
        let run_dir = self.home().run_dir(run_id)?;
        let logs_dir = run_dir.join("logs");
        let steps = self.steps_in_job_logs(run_id)?;
        let (small, left) = log_files(&logs_dir, &steps);
        let mut packed = Packed {
            left_as_files: left,
            ..Packed::default()
        };
        let mut all_deleted = true;
        for batch in batches(small) {
            let mut logs = Vec::with_capacity(batch.len());
            for file in batch {
                match read_small(&file.path, file.len) {
                    Ok(Some(bytes)) if bytes.len() as u64 == file.len => logs.push((file, bytes)),
                    // Changed since it was looked at: left as it is.
                    Ok(_) => packed.left_as_files += file.parts.len(),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(Error::Home {
                            path: file.path,
                            source,
                        });
                    }
                }
            }
            let stored = self.write(|tx, _| {
                // Pruned meanwhile: nothing to pack into.
                if run_state(tx, run_id).is_err() {
                    return Ok(false);
                }
                let mut insert = tx.prepare_cached(
                    "INSERT INTO step_logs (run_id, job_id, seq, log) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (run_id, job_id, seq) DO UPDATE SET log = excluded.log",
                )?;
                for (file, bytes) in &logs {
                    for &(seq, start, end) in &file.parts {
                        let part = &bytes[start as usize..end as usize];
                        insert.execute(params![run_id, file.job, seq, part])?;
                    }
                }
                Ok(true)
            })?;
            if !stored {
                return Ok(None);
            }
            // Committed: the files are redundant now.
            for (file, bytes) in &logs {
                packed.logs += file.parts.len();
                packed.bytes += bytes.len() as u64;
                all_deleted &= gone(fs::remove_file(&file.path));
            }
        }
        // events.jsonl goes last: while it is there, a pack did not finish
        // (reconcile looks for it).
        if all_deleted {
            let _ = fs::remove_file(run_dir.join("events.jsonl"));
        }
        Ok(Some(packed))
    }

    /// Runs with an unfinished pack: ended, their `runs/<id>/events.jsonl`
    /// still there, and the worker that held them gone (a live worker packs
    /// its own run when it is done with it). Reconcile packs them: runs it
    /// orphaned, and runs whose worker died between a pack's commit and
    /// its deletes. Ids in order.
    pub fn unpacked_runs(&self, liveness: &dyn Liveness) -> Result<Vec<String>> {
        let runs_dir = self.home().dir().join("runs");
        let mut ids: Vec<String> = fs::read_dir(&runs_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|id| quire_model::is_run_id(id))
            .filter(|id| {
                fs::symlink_metadata(runs_dir.join(id).join("events.jsonl"))
                    .is_ok_and(|m| m.is_file())
            })
            .collect();
        ids.sort();
        let mut unpacked = Vec::new();
        for id in ids {
            let Some(run) = run_by_id(&self.conn, &id)? else {
                continue;
            };
            let worker_gone = run
                .worker
                .as_ref()
                .is_none_or(|worker| !liveness.is_alive(worker.pid));
            if run.state.is_terminal() && worker_gone {
                unpacked.push(id);
            }
        }
        Ok(unpacked)
    }
}

/// Whether a removal left the path gone (also when it never was there).
fn gone(removed: io::Result<()>) -> bool {
    match removed {
        Ok(()) => true,
        Err(e) => e.kind() == ErrorKind::NotFound,
    }
}

/// The run's log files small enough to pack, by job, and how many steps'
/// logs stay files (too large, or not regular files): each job's log
/// `<job>.log`, cut at where each of its steps (`steps`: job, seq, where
/// it begins) begins, when every step's part is at most
/// [`PACK_MAX_BYTES`] and the whole at most [`BATCH_BYTES`]; and each
/// step's own file `<job>/<seq>.log` (before 0019, and `migrate-from`'s)
/// of at most [`PACK_MAX_BYTES`].
fn log_files(logs_dir: &Path, steps: &[(String, i64, u64)]) -> (Vec<LogFile>, usize) {
    let mut small = Vec::new();
    let mut left = 0;
    for entry in fs::read_dir(logs_dir).into_iter().flatten().flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            step_files(&entry.path(), &name, &mut small, &mut left);
            continue;
        }
        let Some(job) = name.strip_suffix(".log") else {
            continue;
        };
        let starts: Vec<(i64, u64)> = steps
            .iter()
            .filter(|(j, ..)| j == job)
            .map(|&(_, seq, at)| (seq, at))
            .collect();
        let len = match entry.metadata() {
            Ok(meta) if meta.is_file() => meta.len(),
            _ => {
                left += starts.len().max(1);
                continue;
            }
        };
        // Each step from where it begins to where the next one does; the
        // last to the end.
        let parts: Vec<(i64, u64, u64)> = starts
            .iter()
            .enumerate()
            .map(|(i, &(seq, at))| {
                let end = starts.get(i + 1).map_or(len, |&(_, next)| next);
                (seq, at.min(len), end.clamp(at.min(len), len))
            })
            .collect();
        let packable = !parts.is_empty()
            && len <= BATCH_BYTES
            && parts
                .iter()
                .all(|&(_, start, end)| end - start <= PACK_MAX_BYTES);
        if packable {
            small.push(LogFile {
                job: job.to_string(),
                path: entry.path(),
                len,
                parts,
            });
        } else {
            left += parts.len().max(1);
        }
    }
    small.sort_by(|a, b| (&a.job, a.parts.first()).cmp(&(&b.job, b.parts.first())));
    (small, left)
}

/// The steps' own files `<seq>.log` in `logs/<job>/`.
fn step_files(dir: &Path, job: &str, small: &mut Vec<LogFile>, left: &mut usize) {
    for file in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = file.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|seq| *seq >= 1 && name.to_str() == Some(&format!("{seq}.log")))
        else {
            continue;
        };
        match file.metadata() {
            Ok(meta) if meta.is_file() && meta.len() <= PACK_MAX_BYTES => {
                small.push(LogFile {
                    job: job.to_string(),
                    path: file.path(),
                    len: meta.len(),
                    parts: vec![(seq, 0, meta.len())],
                });
            }
            _ => *left += 1,
        }
    }
}

/// Consecutive groups of files of at most [`BATCH_BYTES`] together (or one
/// file alone).
fn batches(files: Vec<LogFile>) -> Vec<Vec<LogFile>> {
    let mut out: Vec<Vec<LogFile>> = Vec::new();
    let mut size = 0;
    for file in files {
        match out.last_mut() {
            Some(batch) if size + file.len <= BATCH_BYTES => {
                size += file.len;
                batch.push(file);
            }
            _ => {
                size = file.len;
                out.push(vec![file]);
            }
        }
    }
    out
}

/// The bytes of a regular file of at most `max` bytes; `None` when it is
/// not one (it is never followed if it is a symbolic link, and one that
/// grew past the limit is left as it is).
fn read_small(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let file = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        // A symbolic link.
        Err(rustix::io::Errno::LOOP) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}
