//! Step logs once their run has ended: packing the small ones into the
//! store, and reading a step's log from wherever it is.
//!
//! While a run executes, each step writes its output to a CRI log file,
//! `runs/<id>/logs/<job>/<seq>.log` (quire-exec). Once the
//! run has ended, [`Store::pack_logs`] copies every such file of at most
//! [`PACK_MAX_BYTES`] into `step_logs` (migration 0012), and only after that
//! commit deletes the files, the run's `events.jsonl` (reconcile reads it
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

/// A step's log, read from its file or from the copy packed into the store.
#[derive(Debug)]
pub enum StepLog {
    File(File),
    Packed(Cursor<Vec<u8>>),
}

impl Read for StepLog {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            StepLog::File(file) => file.read(buf),
            StepLog::Packed(bytes) => bytes.read(buf),
        }
    }
}

impl Seek for StepLog {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            StepLog::File(file) => file.seek(pos),
            StepLog::Packed(bytes) => bytes.seek(pos),
        }
    }
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
    seq: i64,
    path: PathBuf,
    len: u64,
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
        if let Ok(path) = self.home().step_log_path(run_id, job, seq) {
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
        match run_by_id(&self.conn, run_id)? {
            Some(run) if run.state.is_terminal() => {}
            _ => return Ok(None),
        }
        let run_dir = self.home().run_dir(run_id)?;
        let logs_dir = run_dir.join("logs");
        let (small, left) = log_files(&logs_dir);
        let mut packed = Packed {
            left_as_files: left,
            ..Packed::default()
        };
        let mut all_deleted = true;
        for batch in batches(small) {
            let mut logs = Vec::with_capacity(batch.len());
            for file in batch {
                match read_small(&file.path) {
                    Ok(Some(bytes)) => logs.push((file, bytes)),
                    Ok(None) => packed.left_as_files += 1,
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
                    insert.execute(params![run_id, file.job, file.seq, bytes])?;
                }
                Ok(true)
            })?;
            if !stored {
                return Ok(None);
            }
            // Committed: the files are redundant now.
            for (file, bytes) in &logs {
                packed.logs += 1;
                packed.bytes += bytes.len() as u64;
                all_deleted &= gone(fs::remove_file(&file.path));
            }
        }
        // events.jsonl goes last: while it is there, a pack did not finish
        // (reconcile looks for it).
        if all_deleted {
            let _ = fs::remove_file(run_dir.join("events.jsonl"));
        }
        for entry in fs::read_dir(&logs_dir).into_iter().flatten().flatten() {
            let _ = fs::remove_dir(entry.path());
        }
        let _ = fs::remove_dir(&logs_dir);
        packed.dir_removed = gone(fs::remove_dir(&run_dir));
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

/// The run's log files `<job>/<seq>.log` small enough to pack, by job and
/// step, and how many others there are (too large, or not regular files).
fn log_files(logs_dir: &Path) -> (Vec<LogFile>, usize) {
    let mut small = Vec::new();
    let mut left = 0;
    for job in fs::read_dir(logs_dir).into_iter().flatten().flatten() {
        let Ok(job_id) = job.file_name().into_string() else {
            continue;
        };
        if !job.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for file in fs::read_dir(job.path()).into_iter().flatten().flatten() {
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
                        job: job_id.clone(),
                        seq,
                        path: file.path(),
                        len: meta.len(),
                    });
                }
                _ => left += 1,
            }
        }
    }
    small.sort_by(|a, b| (&a.job, a.seq).cmp(&(&b.job, b.seq)));
    (small, left)
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

/// The bytes of a regular file of at most [`PACK_MAX_BYTES`]; `None` when it
/// is not one (it is never followed if it is a symbolic link, and one that
/// grew past the limit is left as it is).
fn read_small(path: &Path) -> io::Result<Option<Vec<u8>>> {
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
    file.take(PACK_MAX_BYTES + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= PACK_MAX_BYTES).then_some(bytes))
}
