//! `git push -o ci.wait`: once the hook has recorded the push's runs and
//! started workers, it keeps the push open until those runs have ended,
//! telling the pusher on stderr (git shows it as `remote:` lines) each
//! job's start and end, the last lines a failed job's failing step printed,
//! and each run's outcome. It follows the runs through [`quire_view::follow`].
//!
//! Waiting is all it does: it never changes a run. When the pusher stops
//! waiting (Ctrl-C ends `git push`, and with it the pipe git reads the
//! hook's output from; or SIGINT, SIGTERM or SIGHUP reach the hook), the
//! hook says so if it still can and exits 0; the run goes on in its worker,
//! which is in a session of its own. A write to a pipe without a reader
//! fails with EPIPE (Rust ignores SIGPIPE), and [`follow::pause`] notices
//! such a pipe between two looks, so the hook stops within one poll.

use std::collections::HashMap;
use std::io::Write;

use quire_model::clock;
use quire_model::cri::Record;
use quire_store::logs::LogAt;
use quire_store::query::RunDetail;
use quire_store::{JobState, Store};

use quire_view::follow::{self, Change, Follower, Pause, describe, run_outcome};
use quire_view::text::{printable, short_ref};
use quire_worker::interrupt;

/// The push option that asks the hook to wait.
pub(crate) const OPTION: &str = "ci.wait";

/// `git push -o ci.logs`: `ci.wait`, and every line the jobs' steps print,
/// as they print it.
pub(crate) const LOGS_OPTION: &str = "ci.logs";

/// How many of a failed step's last lines the pusher is shown.
pub(crate) const LOG_LINES: usize = 20;

/// A run this push recorded, and the ref it was recorded for.
pub(crate) struct Recorded {
    pub run: String,
    pub ref_name: String,
}

/// Where the lines go: the hook's stderr (git shows it to the pusher), or
/// stdout (`quire-run trigger --wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum To {
    Stderr,
    Stdout,
}

/// Whoever reads the lines; once a write fails (the reader is gone),
/// nothing more is written.
struct Pusher<'w> {
    to: To,
    gone: bool,
    /// Wakes the pause early ([`follow::pause_or_woken`]).
    wake: Option<std::os::fd::BorrowedFd<'w>>,
}

impl Pusher<'_> {
    /// Write one line; false when the reader is gone.
    fn say(&mut self, line: &str) -> bool {
        if !self.gone {
            let line = format!("{line}\n");
            self.gone = match self.to {
                To::Stderr => {
                    let mut err = std::io::stderr().lock();
                    err.write_all(line.as_bytes()).and_then(|()| err.flush())
                }
                To::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes()).and_then(|()| out.flush())
                }
            }
            .is_err();
        }
        !self.gone
    }

    /// Wait before the next look (follow::pause on where the lines go).
    fn pause(&self) -> Pause {
        match self.to {
            To::Stderr => follow::pause_or_woken(std::io::stderr(), self.wake),
            To::Stdout => follow::pause_or_woken(std::io::stdout(), self.wake),
        }
    }
}

/// How following runs ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Followed {
    /// Every run ended, and the reader was told.
    Ended,
    /// `give_up` said to stop first.
    GaveUp,
    /// The reader went away, or the store could not be read (said).
    Stopped,
}

/// Wait for `runs` to end, telling the pusher as they go. Never fails:
/// whatever stops the waiting (the runs ended, the pusher went away, a
/// signal, a store error) is said if it can be, and the hook goes on to
/// exit as it would have.
pub(crate) fn wait(store: &Store, runs: &[Recorded], logs: bool) {
    let mut pusher = Pusher {
        to: To::Stderr,
        gone: false,
        wake: None,
    };
    if runs.is_empty() {
        pusher.say("quire: ci.wait: this push recorded no run; there is nothing to wait for");
        return;
    }
    let which = match runs {
        [one] => format!("run {}", one.run),
        _ => format!("{} runs", runs.len()),
    };
    if !pusher.say(&format!(
        "quire: waiting for {which} (ci.wait); Ctrl-C stops the waiting, not the run"
    )) {
        return;
    }
    if follow_runs(store, runs, logs, &mut pusher, &interrupt::requested) == Followed::GaveUp {
        pusher.say(&match runs {
            [one] => format!(
                "quire: stopped waiting; run {} goes on (quire-runs watch {})",
                one.run, one.run
            ),
            _ => "quire: stopped waiting; the runs go on (quire-runs list)".to_string(),
        });
    }
}

/// Tell `to` of `runs`' jobs' starts and ends and each run's outcome, as
/// `ci.wait` does, until they have ended or `give_up` says to stop
/// (`quire-run trigger --wait`, beside the run it executes).
pub(crate) fn follow(
    store: &Store,
    runs: &[Recorded],
    to: To,
    wake: Option<std::os::fd::BorrowedFd<'_>>,
    give_up: &dyn Fn() -> bool,
) -> Followed {
    let mut pusher = Pusher {
        to,
        gone: false,
        wake,
    };
    follow_runs(store, runs, false, &mut pusher, give_up)
}

/// Follow `runs` through [`Follower`]s, telling `pusher` as they go.
fn follow_runs(
    store: &Store,
    runs: &[Recorded],
    logs: bool,
    pusher: &mut Pusher,
    give_up: &dyn Fn() -> bool,
) -> Followed {
    // With several runs, each line says whose it is.
    let mut tails: Vec<Tails> = runs.iter().map(|_| Tails::default()).collect();
    let mut followed: Vec<(Follower, String)> = runs
        .iter()
        .map(|r| {
            let tag = if runs.len() > 1 {
                format!("[{}] ", printable(&short_ref(&r.ref_name)))
            } else {
                String::new()
            };
            (Follower::new(&r.run), tag)
        })
        .collect();
    loop {
        for ((follower, tag), tails) in followed
            .iter_mut()
            .zip(tails.iter_mut())
            .filter(|((f, _), _)| !f.is_done())
        {
            let (detail, changes) = match follower.poll(store) {
                Ok(polled) => polled,
                Err(e) => {
                    pusher.say(&format!(
                        "quire: stopped waiting for run {}: {e}",
                        follower.run_id()
                    ));
                    return Followed::Stopped;
                }
            };
            // In the order they happened; what a job's steps printed
            // comes before its end, and what running jobs printed since
            // the last look after the rest.
            for change in &changes {
                if logs
                    && let Change::JobEnded(end) = change
                    && !tails.print(pusher, store, &detail, tag, Some(&end.job))
                {
                    return Followed::Stopped;
                }
                if !tell(pusher, store, follower.run_id(), tag, change) {
                    return Followed::Stopped;
                }
            }
            if logs && !tails.print(pusher, store, &detail, tag, None) {
                return Followed::Stopped;
            }
        }
        if followed.iter().all(|(f, _)| f.is_done()) {
            return Followed::Ended;
        }
        // After a look, so that what happened before it is told.
        if give_up() {
            return Followed::GaveUp;
        }
        if pusher.pause() == Pause::ReaderGone {
            return Followed::Stopped;
        }
    }
}

/// Tell the pusher of one change: a line, and for a failed job the last
/// lines its failing step printed. False when the pusher is gone.
fn tell(pusher: &mut Pusher, store: &Store, run_id: &str, tag: &str, change: &Change) -> bool {
    let now = clock::now_ms();
    match change {
        Change::RunEnded(run) => {
            let mut ok = pusher.say(&format!(
                "quire: {tag}{} (quire-runs show {})",
                run_outcome(run, now),
                run.id
            ));
            if let Some(detail) = &run.failure_detail {
                ok = pusher.say(&format!("quire:   {}", printable(detail)));
            }
            ok
        }
        Change::JobEnded(end) if end.state == JobState::Failed => {
            if !pusher.say(&format!("quire: {tag}{}", describe(change, now))) {
                return false;
            }
            let Some(step) = &end.step else {
                return true;
            };
            match follow::last_lines(store, run_id, &end.job, step.seq, LOG_LINES) {
                Ok(lines) if lines.is_empty() => {
                    pusher.say(&format!("quire:   step {} printed nothing", step.seq))
                }
                Ok(lines) => {
                    let heading = match lines.len() {
                        1 => format!("quire:   the last line of step {}:", step.seq),
                        n => format!("quire:   the last {n} lines of step {}:", step.seq),
                    };
                    pusher.say(&heading)
                        && lines
                            .iter()
                            .all(|line| pusher.say(&format!("quire:   | {}", printable(line))))
                }
                Err(e) => pusher.say(&format!(
                    "quire:   its log cannot be read: {e} (quire-runs logs {run_id})"
                )),
            }
        }
        _ => pusher.say(&format!("quire: {tag}{}", describe(change, now))),
    }
}

/// What `ci.logs` has told of each step's log, by (job, step).
#[derive(Default)]
struct Tails {
    told: HashMap<(String, i64), Told>,
}

/// Of one step's log: how far it was read, the bytes of a record not yet
/// whole, the text of a line written in several records (CRI `P`) so
/// far, and whether all of it was told (then it is not read again).
#[derive(Default)]
struct Told {
    offset: u64,
    pending: Vec<u8>,
    line: Vec<u8>,
    done: bool,
}

impl Tails {
    /// Tell every whole line the run's steps' logs (`only` one job's)
    /// gained since the last look, as `quire: JOB | TEXT` (its text, a
    /// line written in several records joined, control characters
    /// escaped), of the run as `detail` (the look just taken) shows it; a
    /// step's last line, once it ended, even when not whole. Read as
    /// `quire-runs logs` reads them: from the log's file, else from the
    /// copy packed into the store; a step told to its end is not read
    /// again. False once the pusher is gone.
    fn print(
        &mut self,
        pusher: &mut Pusher,
        store: &Store,
        detail: &RunDetail,
        tag: &str,
        only: Option<&str>,
    ) -> bool {
        let run_id = detail.run.id.as_str();
        for job in &detail.jobs {
            let id = &job.job.id;
            if only.is_some_and(|only| only != id) {
                continue;
            }
            for step in &job.steps {
                let told = self.told.entry((id.clone(), step.seq)).or_default();
                if told.done {
                    continue;
                }
                // At most 1 MiB a look: a step that prints fast is caught
                // up with over the next looks.
                let Ok(Some(read)) =
                    store.read_step_log(run_id, id, step.seq, LogAt::Offset(told.offset), 1 << 20)
                else {
                    continue;
                };
                told.offset = read.start + read.bytes.len() as u64;
                told.pending.extend_from_slice(&read.bytes);
                let ended = step.finished_at_ms.is_some() && told.offset >= read.len;
                while let Some(end) = told
                    .pending
                    .iter()
                    .position(|&b| b == b'\n')
                    .or((ended && !told.pending.is_empty()).then(|| told.pending.len() - 1))
                {
                    let record: Vec<u8> = told.pending.drain(..=end).collect();
                    let record = Record::parse(record.strip_suffix(b"\n").unwrap_or(&record));
                    told.line.extend_from_slice(record.text);
                    // A line goes on in the next record, unless the log
                    // ended here.
                    if record.partial && !(ended && told.pending.is_empty()) {
                        continue;
                    }
                    let line = std::mem::take(&mut told.line);
                    if !pusher.say(&format!(
                        "quire: {tag}{} | {}",
                        printable(id),
                        printable(&String::from_utf8_lossy(&line))
                    )) {
                        return false;
                    }
                }
                told.done = ended && told.pending.is_empty() && told.line.is_empty();
            }
        }
        true
    }
}
