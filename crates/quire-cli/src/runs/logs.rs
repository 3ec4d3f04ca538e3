//! logs: a run's step output from its CRI logs (the files while the run
//! executes, the copies packed into the store once it has ended; see
//! `quire_store::logs`), optionally followed as the run writes it.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use quire_model::cri::Record;
use quire_store::logs::LogAt;
use quire_store::query::RunDetail;
use quire_store::{Run, RunState, Store};

use crate::error::CommandError;

use crate::runs::cli::{LogsArgs, StreamArg};

/// How often `--follow` looks for new output.
const POLL: Duration = Duration::from_millis(100);

pub fn run(store: &Store, args: &LogsArgs) -> crate::error::Result<ExitCode> {
    let run = crate::select::run_or_newest(
        store,
        args.run.as_deref(),
        &args.scope.scope(),
        "print the logs of",
    )?;
    if args.run.is_none() {
        quire_view::text::note_newest(&run);
    }
    let mut args = args.clone();
    if args.job.is_none() {
        args.job = args.job_flag.take();
    }
    logs(store, &run, &args)
}

/// The logs of `run`, as `args` (whose JOB is `args.job`) ask.
fn logs(store: &Store, run: &Run, args: &LogsArgs) -> crate::error::Result<ExitCode> {
    // An id not of quire's shape names no directory: no log files, only
    // what is packed in the store (an empty path lists nothing).
    let logs_dir = store
        .home()
        .run_dir(&run.id)
        .map(|dir| dir.join("logs"))
        .unwrap_or_default();
    let first = store.run_detail(&run.id)?;
    if let Some(job) = &args.job {
        let Some(found) = first.jobs.iter().find(|j| j.job.id == *job) else {
            let on_disk = !args.follow
                && !unrecorded_logs(store, &run.id, &logs_dir, args, &HashSet::new())?.is_empty();
            if on_disk {
                return print_unrecorded(store, &run.id, &logs_dir, args, &HashSet::new());
            }
            if !(args.follow && first.jobs.is_empty()) {
                return Err(CommandError::unknown_job(&run.id, job));
            }
            return follow_unplanned(store, args, run);
        };
        if let Some(step) = args.step
            && !args.follow
            && !found.steps.iter().any(|s| s.seq == step)
        {
            return Err(no_step(&run.id, job, step, &found.steps));
        }
    }

    let mut out = Printer::new(args);
    let mut done: HashSet<(String, i64)> = HashSet::new();
    let mut reading: Option<Tail> = None;
    let mut detail = first;
    loop {
        let terminal = detail.run.state.is_terminal();
        let mut waiting = false;
        'jobs: for job in detail
            .jobs
            .iter()
            .filter(|j| args.job.as_ref().is_none_or(|id| *id == j.job.id))
        {
            let failing = failing_step(job);
            for step in job
                .steps
                .iter()
                .filter(|s| args.step.is_none_or(|n| n == s.seq))
                .filter(|s| !args.failed || failing == Some(s.seq))
            {
                let key = (job.job.id.clone(), step.seq);
                if done.contains(&key) {
                    continue;
                }
                let tail = match &mut reading {
                    Some(tail) if tail.key == key => tail,
                    _ => {
                        if args.step.is_none() {
                            out.header(&job.job.id, step.seq, &step.cmd)?;
                        }
                        reading.insert(Tail {
                            key: key.clone(),
                            offset: 0,
                            pending: Vec::new(),
                        })
                    }
                };
                let finished = step.exit_code.is_some();
                let found = tail.pump(store, &run.id, &mut out, finished)?;
                if !found && finished && args.step.is_none() {
                    out.no_log()?;
                }
                if finished || !args.follow {
                    done.insert(key);
                    reading = None;
                } else {
                    waiting = true;
                    break 'jobs;
                }
            }
            if args.follow && !terminal && !job.job.state.is_terminal() && !waiting {
                // The job runs but its next step has not started yet.
                waiting = true;
                break 'jobs;
            }
        }
        out.flush()?;
        if !args.follow || (terminal && !waiting) {
            break;
        }
        std::thread::sleep(POLL);
        detail = store.run_detail(&run.id)?;
    }
    out.finish()?;
    let wrote = out.wrote_any;
    drop(out);
    let mut unrecorded = false;
    if detail.run.state.is_terminal() && !args.failed {
        unrecorded = !unrecorded_logs(store, &run.id, &logs_dir, args, &done)?.is_empty();
        print_unrecorded(store, &run.id, &logs_dir, args, &done)?;
    }
    if !wrote && !unrecorded && detail.run.state.is_terminal() && !args.failed {
        // Say why nothing came, rather than nothing at all.
        let why = if detail.run.upstream_unfinished.is_some() {
            "it came unfinished from upstream quire and never ran here"
        } else {
            "none of its steps started"
        };
        eprintln!(
            "quire-runs: run {} has no step logs: {why}",
            quire_view::text::printable(&run.id)
        );
    }
    Ok(if args.follow && detail.run.state != RunState::Complete {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The step that ended a failed job: its last step that exited non-zero
/// (else its last step); none for a job that did not fail.
fn failing_step(job: &quire_store::query::JobDetail) -> Option<i64> {
    if job.job.state != quire_store::JobState::Failed {
        return None;
    }
    job.ending_step().map(|s| s.seq)
}

/// Logs of a run that the store has no step for, in job and step order:
/// what an upstream store lost (its upgrades dropped job rows) while
/// `migrate-from` copied the logs, as files or, once packed, in the store.
fn unrecorded_logs(
    store: &Store,
    run_id: &str,
    logs_dir: &Path,
    args: &LogsArgs,
    done: &HashSet<(String, i64)>,
) -> crate::error::Result<Vec<(String, i64)>> {
    let mut found = store.packed_logs(run_id)?;
    for job in std::fs::read_dir(logs_dir).into_iter().flatten().flatten() {
        let job_id = job.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(job.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().to_string_lossy().into_owned();
            if let Some(seq) = name
                .strip_suffix(".log")
                .and_then(|n| n.parse::<i64>().ok())
            {
                found.push((job_id.clone(), seq));
            }
        }
    }
    found.retain(|(job, seq)| {
        args.job.as_ref().is_none_or(|want| want == job)
            && args.step.is_none_or(|n| n == *seq)
            && !done.contains(&(job.clone(), *seq))
    });
    found.sort();
    found.dedup();
    Ok(found)
}

fn print_unrecorded(
    store: &Store,
    run_id: &str,
    logs_dir: &Path,
    args: &LogsArgs,
    done: &HashSet<(String, i64)>,
) -> crate::error::Result<ExitCode> {
    let mut out = Printer::new(args);
    for (job, seq) in unrecorded_logs(store, run_id, logs_dir, args, done)? {
        if args.step.is_none() {
            out.header(&job, seq, "(not recorded in the store)")?;
        }
        let mut tail = Tail {
            key: (job, seq),
            offset: 0,
            pending: Vec::new(),
        };
        tail.pump(store, run_id, &mut out, true)?;
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// `--follow` of a JOB on a run whose jobs are not planned yet: wait for the
/// plan, then follow as usual (or say the job does not exist).
fn follow_unplanned(store: &Store, args: &LogsArgs, run: &Run) -> crate::error::Result<ExitCode> {
    let run_id = run.id.as_str();
    loop {
        let detail: RunDetail = store.run_detail(run_id)?;
        if !detail.jobs.is_empty() || detail.run.state.is_terminal() {
            if detail
                .jobs
                .iter()
                .any(|j| Some(&j.job.id) == args.job.as_ref())
            {
                return logs(store, run, args);
            }
            return Err(CommandError::unknown_job(
                run_id,
                args.job.as_deref().unwrap_or_default(),
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// `--step N` of a job that has no step N: what there is instead.
fn no_step(run: &str, job: &str, step: i64, steps: &[quire_store::Step]) -> CommandError {
    let seqs: Vec<String> = steps.iter().map(|s| s.seq.to_string()).collect();
    let there = match seqs.as_slice() {
        [] => "it has no steps yet".to_string(),
        [one] => format!("its only step is {one}"),
        [rest @ .., last] => format!("its steps are {} and {last}", rest.join(", ")),
    };
    let message = format!(
        "job {} of run {run} has no step {step}; {there}",
        quire_view::text::printable(job)
    );
    CommandError::not_found(message).hint(format!(
        "`quire-runs logs {run} {}` prints all of them",
        quire_view::text::sh_word(job)
    ))
}

/// Reading one step's log from where we left off. The log is opened again
/// on each pump: its file while the run executes, the copy in the store
/// once the run has ended and its logs were packed.
struct Tail {
    key: (String, i64),
    offset: u64,
    /// Bytes after the last newline: a CRI line still being written.
    pending: Vec<u8>,
}

impl Tail {
    fn pump(
        &mut self,
        store: &Store,
        run_id: &str,
        out: &mut Printer,
        finished: bool,
    ) -> crate::error::Result<bool> {
        let (job, seq) = (&self.key.0, self.key.1);
        // A read at a time, so a long log is never held whole.
        let mut any = false;
        while let Some(log) =
            store.read_step_log(run_id, job, seq, LogAt::Offset(self.offset), 64 * 1024)?
        {
            any = true;
            if log.bytes.is_empty() {
                break;
            }
            self.offset += log.bytes.len() as u64;
            self.pending.extend_from_slice(&log.bytes);
            while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                out.cri_line(&line[..line.len() - 1])?;
            }
        }
        if !any {
            return Ok(false);
        }
        if finished && !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            out.cri_line(&line)?;
        }
        Ok(true)
    }
}

/// Writes step output for a person: the text of each CRI line, partial
/// lines joined, optionally with timestamps or one stream only.
struct Printer {
    stdout: io::StdoutLock<'static>,
    timestamps: bool,
    raw: bool,
    stream: Option<StreamArg>,
    at_line_start: bool,
    closed: bool,
    /// Whether a header or a log line was written.
    wrote_any: bool,
}

impl Printer {
    fn new(args: &LogsArgs) -> Printer {
        Printer {
            stdout: io::stdout().lock(),
            timestamps: args.timestamps,
            raw: args.raw,
            stream: args.stream,
            at_line_start: true,
            closed: false,
            wrote_any: false,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> crate::error::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.stdout.write_all(bytes) {
            Ok(()) => Ok(()),
            // The reader went away (`| head`): stop quietly.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(CommandError::stdout(e)),
        }
    }

    /// End the output on a line of its own.
    fn finish(&mut self) -> crate::error::Result<()> {
        if !self.at_line_start {
            self.write(b"\n")?;
            self.at_line_start = true;
        }
        self.flush()
    }

    fn flush(&mut self) -> crate::error::Result<()> {
        if !self.closed {
            let _ = self.stdout.flush();
        }
        Ok(())
    }

    fn header(&mut self, job: &str, seq: i64, cmd: &str) -> crate::error::Result<()> {
        if !self.at_line_start {
            self.write(b"\n")?;
            self.at_line_start = true;
        }
        self.wrote_any = true;
        let cmd = quire_view::text::flat(cmd);
        let cmd = quire_view::text::printable(&cmd);
        let job = quire_view::text::printable(job);
        self.write(format!("==> {job} step {seq}: {cmd} <==\n").as_bytes())
    }

    /// Under a step's header, when the step has no log: one line saying
    /// why, so that no header stands empty.
    fn no_log(&mut self) -> crate::error::Result<()> {
        self.wrote_any = true;
        self.write(
            b"(no log: none was kept for this step; of a run from upstream quire, \
              `quire-run migrate-from` keeps only the logs it found in its runs/ folder)\n",
        )
    }

    /// A step's text: as it is with `--raw`, else made safe for a
    /// terminal (colours kept, every other control escaped).
    fn text(&mut self, text: &[u8]) -> crate::error::Result<()> {
        if self.raw {
            self.write(text)
        } else {
            self.write(&quire_view::text::terminal_safe(
                text,
                quire_view::text::Colours::Keep,
            ))
        }
    }

    /// `<timestamp> <stream> <F|P> <text>`; anything else is shown whole,
    /// as hostile as a record's text and made safe the same way (a
    /// damaged log, one brought over from upstream).
    fn cri_line(&mut self, line: &[u8]) -> crate::error::Result<()> {
        let record = Record::parse(line);
        if record.stamp.is_empty() {
            self.text(line)?;
            return self.write(b"\n");
        }
        let (stamp, text) = (record.stamp, record.text);
        self.wrote_any = true;
        let wanted = record.is_of(match self.stream {
            None => None,
            Some(StreamArg::Stdout) => Some(false),
            Some(StreamArg::Stderr) => Some(true),
        });
        if !wanted {
            return Ok(());
        }
        if self.timestamps && self.at_line_start {
            self.write(stamp)?;
            self.write(b" ")?;
        }
        self.text(text)?;
        let full = !record.partial;
        if full {
            self.write(b"\n")?;
        }
        self.at_line_start = full;
        Ok(())
    }
}
