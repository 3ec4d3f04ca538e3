//! A job's step logs as the pages read them (as `quire-runs logs` does:
//! the log file while it exists, else the copy packed into the store), and
//! a running job followed as server-sent events.
//!
//! Logs are CRI lines (`<time> <stream> <F|P> <text>`): a line a step
//! printed is one `F` record, or `P` records continued by an `F`. A reader
//! keeps its place as a byte offset just past an `F` record, so the page
//! and the event stream that follows it meet exactly: the page says where
//! it stopped, the stream starts there.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use quire_store::query::RunDetail;
use quire_store::{JobState, Store};
use serde::Serialize;

use super::ansi;
use super::words::{job_state_class, job_state_text};

/// The most of one step's log a page shows: its end, when it is longer.
pub const PAGE_BYTES: u64 = 1 << 20;
/// The most one poll of a followed log reads.
const POLL_BYTES: u64 = 256 << 10;
/// A follower further behind than this skips ahead to the last
/// [`CATCH_UP_BYTES`] (a step printing faster than a browser can show).
const BEHIND_BYTES: u64 = 1 << 20;
const CATCH_UP_BYTES: u64 = 64 << 10;

pub use quire_model::cri::Line;
use quire_model::cri::{Until, lines as parse};
use quire_store::logs::LogAt;

/// Bytes of a step's log from `offset`, at most `max`, and the log's
/// length; `None` when it has no log (yet).
fn read(
    store: &Store,
    run: &str,
    job: &str,
    seq: i64,
    offset: u64,
    max: u64,
) -> quire_store::Result<Option<(Vec<u8>, u64)>> {
    Ok(store
        .read_step_log(run, job, seq, LogAt::Offset(offset), max)?
        .map(|log| (log.bytes, log.len)))
}

/// A step's log as its page shows it.
#[derive(Debug, Default)]
pub struct StepLog {
    pub lines: Vec<Line>,
    /// Bytes at the start that are not shown (the log is longer than
    /// [`PAGE_BYTES`]).
    pub skipped: u64,
    /// The lines those bytes hold (so that the lines shown keep their
    /// numbers).
    pub skipped_lines: u64,
    /// Where a follower goes on: past the last line shown.
    pub offset: u64,
}

/// The log of a step for its page: all of it once the step has finished,
/// else its whole lines so far; at most its last [`PAGE_BYTES`], the
/// lines before them counted so that the lines shown keep their numbers.
/// `counted` gives the count of a finished step's skipped lines when it
/// has it (a page of a long log shown again), and keeps a new one.
pub fn step_log(
    store: &Store,
    run: &str,
    job: &str,
    seq: i64,
    finished: bool,
    counted: &LinesCounted,
) -> quire_store::Result<StepLog> {
    let mut log = last_of(store, run, job, seq, PAGE_BYTES, finished)?;
    if log.skipped == 0 {
        return Ok(log);
    }
    let key = (run.to_string(), job.to_string(), seq, log.skipped);
    let lock = || counted.0.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&n) = lock().get(&key) {
        log.skipped_lines = n;
        return Ok(log);
    }
    log.skipped_lines = count_lines(store, run, job, seq, log.skipped)?;
    // A running step's log still grows: only a finished one's count stays.
    if finished {
        let mut kept = lock();
        if kept.len() >= COUNTS_KEPT {
            kept.clear();
        }
        kept.insert(key, log.skipped_lines);
    }
    Ok(log)
}

/// The lines before the part of a finished step's log a page shows, by
/// (run, job, step, bytes skipped): counting reads all of those bytes,
/// once per `serve`.
#[derive(Debug, Default)]
pub struct LinesCounted(Mutex<HashMap<(String, String, i64, u64), u64>>);

/// The most counts [`LinesCounted`] keeps; then it starts again.
const COUNTS_KEPT: usize = 4096;

/// The last lines of a finished step's log, from at most its last
/// `max` bytes, not numbered (the run page's failing lines): nothing
/// before them is read.
pub fn step_tail(
    store: &Store,
    run: &str,
    job: &str,
    seq: i64,
    max: u64,
) -> quire_store::Result<Vec<Line>> {
    Ok(last_of(store, run, job, seq, max, true)?.lines)
}

/// The step's lines in at most its last `max` bytes (from the first
/// record that begins in them), the lines before them not counted.
fn last_of(
    store: &Store,
    run: &str,
    job: &str,
    seq: i64,
    max: u64,
    finished: bool,
) -> quire_store::Result<StepLog> {
    let Some((_, len)) = read(store, run, job, seq, 0, 0)? else {
        return Ok(StepLog::default());
    };
    let mut start = len.saturating_sub(max);
    let Some((mut bytes, _)) = read(store, run, job, seq, start, max)? else {
        return Ok(StepLog::default());
    };
    if start > 0 {
        // Start at the next record.
        let cut = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |n| n + 1);
        bytes.drain(..cut);
        start += cut as u64;
    }
    let until = if finished {
        Until::End
    } else {
        Until::LastFull
    };
    let (lines, used) = parse(&bytes, until);
    Ok(StepLog {
        lines,
        skipped: start,
        skipped_lines: 0,
        offset: start + used as u64,
    })
}

/// The lines the first `upto` bytes of a step's log hold (`upto` is at a
/// record's start): its `F` records, as a page counts them. Read a chunk
/// at a time; costs a read of those bytes.
fn count_lines(
    store: &Store,
    run: &str,
    job: &str,
    seq: i64,
    upto: u64,
) -> quire_store::Result<u64> {
    let (mut at, mut count) = (0, 0);
    let mut pending: Vec<u8> = Vec::new();
    while at < upto {
        let Some((bytes, _)) = read(store, run, job, seq, at, POLL_BYTES.min(upto - at))? else {
            break;
        };
        if bytes.is_empty() {
            break;
        }
        at += bytes.len() as u64;
        pending.extend_from_slice(&bytes);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            let record = quire_model::cri::Record::parse(&pending[start..start + end]);
            count += u64::from(!record.partial);
            start += end + 1;
        }
        pending.drain(..start);
    }
    Ok(count)
}

/// Where a follower of a job is.
#[derive(Debug, Clone)]
pub struct Follow {
    pub run: String,
    pub job: String,
    /// The step it reads (which may not have started yet).
    pub seq: i64,
    /// Past the last line it sent of that step.
    pub offset: u64,
    /// Whether it told the page about that step.
    pub announced: bool,
    /// The job's state it told the page last.
    pub state: Option<JobState>,
}

impl Follow {
    /// The position `seq:offset` (a `line` event's id, and so the
    /// `Last-Event-ID` a reconnecting browser sends back) parses to.
    pub fn parse_position(text: &str) -> Option<(i64, u64)> {
        let (seq, offset) = text.trim().split_once(':')?;
        Some((seq.parse().ok().filter(|s| *s >= 1)?, offset.parse().ok()?))
    }
}

/// What the follower does after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Poll again at once: there is more to read.
    More,
    /// Poll again after a while.
    Wait,
    /// The job has ended and everything was sent: end the stream.
    Done,
}

#[derive(Serialize)]
struct StepEvent<'a> {
    seq: i64,
    cmd: &'a str,
}

#[derive(Serialize)]
struct LineEvent<'a> {
    seq: i64,
    err: bool,
    /// `[class, text]` pairs.
    spans: Vec<(&'a str, &'a str)>,
}

#[derive(Serialize)]
struct StepEndEvent {
    seq: i64,
    exit: Option<i64>,
}

#[derive(Serialize)]
struct EndEvent {
    state: &'static str,
    exit: Option<i64>,
    /// The state as the page says it (`failed (allowed)`), its classes,
    /// and the job's duration.
    text: String,
    class: String,
    duration: Option<String>,
}

/// The job's state as its page's header shows it.
#[derive(Serialize)]
struct StateEvent {
    state: &'static str,
    text: String,
    class: String,
}

/// Append one event to `out`.
fn event(out: &mut String, name: &str, id: Option<&str>, data: &impl Serialize) {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    let _ = writeln!(out, "event: {name}");
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = write!(out, "data: {data}\n\n");
}

/// A `line` event; its id is the position past it, where a reconnecting
/// browser goes on.
fn line_event(out: &mut String, follow: &Follow, line: &Line, past: u64) {
    let spans = ansi::spans(&line.text);
    let data = LineEvent {
        seq: follow.seq,
        err: line.err,
        spans: spans
            .iter()
            .map(|s| (s.class.as_str(), s.text.as_str()))
            .collect(),
    };
    let id = format!("{}:{past}", follow.seq);
    event(out, "line", Some(&id), &data);
}

/// Read what the job wrote since the follower's place, as events appended
/// to `out` (JSON data: `step` {seq, cmd}, `line` {seq, err, spans},
/// `stepend` {seq, exit}, and last `end` {state, exit}).
pub fn poll(store: &Store, follow: &mut Follow, out: &mut String) -> quire_store::Result<Next> {
    let detail: RunDetail = store.run_detail(&follow.run)?;
    let Some(job) = detail.jobs.iter().find(|j| j.job.id == follow.job) else {
        // Not planned yet (the run is pending), or never will be.
        if detail.run.state.is_terminal() {
            let end = EndEvent {
                state: detail.run.state.as_str(),
                exit: None,
                text: detail.run.state.to_string(),
                class: detail.run.state.to_string(),
                duration: None,
            };
            event(out, "end", None, &end);
            return Ok(Next::Done);
        }
        return Ok(Next::Wait);
    };
    if follow.state != Some(job.job.state) && !job.job.state.is_terminal() {
        let data = StateEvent {
            state: job_state(job.job.state),
            text: job_state_text(&job.job),
            class: job_state_class(&job.job),
        };
        event(out, "state", None, &data);
        follow.state = Some(job.job.state);
    }
    loop {
        let Some(step) = job.steps.iter().find(|s| s.seq == follow.seq) else {
            if job.job.state.is_terminal() || detail.run.state.is_terminal() {
                let j = &job.job;
                let end = EndEvent {
                    state: job_state(j.state),
                    exit: j.exit_code,
                    text: job_state_text(j),
                    class: job_state_class(j),
                    duration: j
                        .started_at_ms
                        .zip(j.finished_at_ms)
                        .filter(|_| detail.run.upstream_unfinished.is_none())
                        .map(|(start, end)| quire_view::text::duration(end - start)),
                };
                event(out, "end", None, &end);
                return Ok(Next::Done);
            }
            return Ok(Next::Wait);
        };
        if !follow.announced {
            let cmd = ansi::shown(&step.cmd);
            let data = StepEvent {
                seq: step.seq,
                cmd: &cmd,
            };
            event(out, "step", None, &data);
            follow.announced = true;
        }
        let finished = step.exit_code.is_some();
        let got = read(
            store,
            &follow.run,
            &follow.job,
            follow.seq,
            follow.offset,
            POLL_BYTES,
        )?;
        if let Some((bytes, len)) = got {
            let bytes = if len.saturating_sub(follow.offset) > BEHIND_BYTES {
                match catch_up(store, follow, len, out)? {
                    Some(bytes) => bytes,
                    None => return Ok(Next::Wait),
                }
            } else {
                bytes
            };
            let full_read = bytes.len() as u64 == POLL_BYTES;
            let until = if finished && !full_read {
                Until::End
            } else {
                Until::LastFull
            };
            let (mut lines, mut used) = parse(&bytes, until);
            if used == 0 && full_read {
                // One line longer than a read: send what there is of it.
                (lines, used) = parse(&bytes, Until::LastRecord);
            }
            for line in &lines {
                line_event(out, follow, line, follow.offset + line.end as u64);
            }
            follow.offset += used as u64;
            if full_read {
                return Ok(Next::More);
            }
        }
        if !finished {
            return Ok(Next::Wait);
        }
        let end = StepEndEvent {
            seq: step.seq,
            exit: step.exit_code,
        };
        event(out, "stepend", None, &end);
        follow.seq += 1;
        follow.offset = 0;
        follow.announced = false;
    }
}

/// Skip a follower far behind to the last [`CATCH_UP_BYTES`] of the log
/// (at a record), saying so in a line; the bytes from there.
fn catch_up(
    store: &Store,
    follow: &mut Follow,
    len: u64,
    out: &mut String,
) -> quire_store::Result<Option<Vec<u8>>> {
    let from = len - CATCH_UP_BYTES;
    let Some((mut bytes, _)) = read(
        store,
        &follow.run,
        &follow.job,
        follow.seq,
        from,
        POLL_BYTES,
    )?
    else {
        return Ok(None);
    };
    let cut = bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |n| n + 1);
    bytes.drain(..cut);
    let skipped = from + cut as u64 - follow.offset;
    follow.offset = from + cut as u64;
    let note = Line {
        err: false,
        text: format!(
            "[quire: {skipped} bytes printed here are not shown; `quire-runs logs {} {} --step {}` prints them]",
            follow.run, follow.job, follow.seq
        )
        .into_bytes(),
        end: 0,
    };
    line_event(out, follow, &note, follow.offset);
    Ok(Some(bytes))
}

fn job_state(state: JobState) -> &'static str {
    state.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse() {
        assert_eq!(Follow::parse_position("3:120"), Some((3, 120)));
        assert_eq!(Follow::parse_position("0:1"), None);
        assert_eq!(Follow::parse_position("x"), None);
    }
}
