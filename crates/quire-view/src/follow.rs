//! Following a run's jobs as they happen, for `git push -o ci.wait` (the
//! hook, `run/ci_wait.rs`) and `quire-runs watch`: a [`Follower`] looks at the run in the
//! store ([`Store::run_detail`], one read snapshot) and yields what changed
//! since its last look: a job started, a job ended (its state, how long it
//! took, the exit code and the step that ended it), the run ended. The
//! caller looks again after [`pause`] (every [`POLL`], never busier), which
//! also notices when whoever reads the output has gone away.
//!
//! Everything here is data: the lines are written by the callers, through
//! [`crate::text::printable`], because job ids, commands and log
//! lines are the pipeline's, hostile bytes.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::time::Duration;

use quire_store::logs::LogAt;
use quire_store::query::{JobDetail, RunDetail};
use quire_store::{JobState, Run, Step, Store};

use crate::text::{duration, job_state_text, printable};

/// How often a follower looks at the store.
pub const POLL: Duration = Duration::from_millis(200);

/// How much of the end of a step's log [`last_lines`] reads at most.
const TAIL_BYTES: u64 = 256 * 1024;

/// What happened to a run since the last look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    JobStarted {
        job: String,
    },
    JobEnded(JobEnd),
    /// What holds an active job that has not begun (a cluster's queue)
    /// changed: the new reason, none once nothing holds it.
    JobWaiting {
        job: String,
        reason: Option<String>,
    },
    /// The run reached a terminal state (after its jobs' ends).
    RunEnded(Box<Run>),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnd {
    pub job: String,
    pub state: JobState,
    /// Start to finish; none for a job that never started (skipped).
    pub duration_ms: Option<i64>,
    /// The job's exit code, else that of the step that ended it.
    pub exit_code: Option<i64>,
    pub skip_reason: Option<String>,
    /// The step that ended it: for a failed job the last step that did not
    /// exit 0 (the failing one), else its last step.
    pub step: Option<Step>,
    /// Whether the pipeline allows the job to fail (`allow_failure`): a
    /// failure is then `failed (allowed)`.
    pub allowed: bool,
}

/// One run's jobs as last seen, to tell what changed.
#[derive(Debug)]
pub struct Follower {
    run_id: String,
    started: HashSet<String>,
    ended: HashSet<String>,
    /// What each job was last seen waiting for.
    waiting: std::collections::HashMap<String, String>,
    run_ended: bool,
}

impl Follower {
    pub fn new(run_id: &str) -> Follower {
        Follower {
            run_id: run_id.to_string(),
            started: HashSet::new(),
            ended: HashSet::new(),
            waiting: std::collections::HashMap::new(),
            run_ended: false,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Whether the run's end was yielded: nothing more will change.
    pub fn is_done(&self) -> bool {
        self.run_ended
    }

    /// Look at the run now: what it is, and what changed since the last look.
    pub fn poll(&mut self, store: &Store) -> quire_store::Result<(RunDetail, Vec<Change>)> {
        let detail = store.run_detail(&self.run_id)?;
        let changes = self.changes(&detail);
        Ok((detail, changes))
    }

    /// What `detail` shows that this follower has not yielded yet: jobs'
    /// starts and ends in the order they happened (a job's start before its
    /// end, plan order among those at the same instant), then the run's end.
    pub fn changes(&mut self, detail: &RunDetail) -> Vec<Change> {
        if self.run_ended {
            return Vec::new();
        }
        let mut timed: Vec<(i64, i64, u8, Change)> = Vec::new();
        for job in &detail.jobs {
            let j = &job.job;
            if let Some(at) = j.started_at_ms
                && j.state != JobState::Skipped
                && self.started.insert(j.id.clone())
            {
                timed.push((at, j.position, 0, Change::JobStarted { job: j.id.clone() }));
            }
            let was = self.waiting.get(&j.id);
            let now_waits = j.waiting.as_ref().filter(|_| j.state == JobState::Active);
            if was != now_waits && !(j.state.is_terminal() && now_waits.is_none()) {
                let at = j.started_at_ms.unwrap_or(i64::MAX);
                timed.push((
                    at,
                    j.position,
                    1,
                    Change::JobWaiting {
                        job: j.id.clone(),
                        reason: now_waits.cloned(),
                    },
                ));
                match now_waits {
                    Some(reason) => self.waiting.insert(j.id.clone(), reason.clone()),
                    None => self.waiting.remove(&j.id),
                };
            }
            if j.state.is_terminal() && self.ended.insert(j.id.clone()) {
                let at = j.finished_at_ms.or(j.started_at_ms).unwrap_or(i64::MAX);
                timed.push((at, j.position, 2, Change::JobEnded(job_end(job))));
            }
        }
        timed.sort_by_key(|(at, position, kind, _)| (*at, *position, *kind));
        let mut changes: Vec<Change> = timed.into_iter().map(|(.., c)| c).collect();
        if detail.run.state.is_terminal() {
            self.run_ended = true;
            changes.push(Change::RunEnded(Box::new(detail.run.clone())));
        }
        changes
    }
}

fn job_end(job: &JobDetail) -> JobEnd {
    let j = &job.job;
    let step = if j.state == JobState::Failed {
        job.ending_step()
    } else {
        job.steps.last()
    };
    JobEnd {
        job: j.id.clone(),
        state: j.state,
        duration_ms: match (j.started_at_ms, j.finished_at_ms) {
            (Some(start), Some(end)) => Some((end - start).max(0)),
            _ => None,
        },
        exit_code: j.exit_code.or(step.and_then(|s| s.exit_code)),
        skip_reason: j.skip_reason.clone(),
        step: step.cloned(),
        allowed: j.allow_failure == Some(true),
    }
}

/// A change as one line for people and scripts, its hostile parts escaped:
/// `job build started`; `job build complete in 3.1s (exit 0)`; `job test
/// failed in 59.0s (exit 101; step 1: cargo test)`; `job deploy skipped:
/// REASON`; `run ID failed (pipeline-failure) in 1m 4s: DETAIL`.
pub fn describe(change: &Change, now_ms: i64) -> String {
    match change {
        Change::JobStarted { job } => format!("job {} started", printable(job)),
        Change::JobEnded(end) => describe_job_end(end),
        Change::JobWaiting { job, reason } => match reason {
            Some(reason) => format!("job {} {}", printable(job), printable(reason)),
            None => format!("job {} began", printable(job)),
        },
        Change::RunEnded(run) => {
            let mut line = run_outcome(run, now_ms);
            if let Some(detail) = &run.failure_detail {
                line.push_str(": ");
                line.push_str(&printable(detail));
            }
            line
        }
    }
}

fn describe_job_end(end: &JobEnd) -> String {
    let job = printable(&end.job);
    if end.state == JobState::Skipped {
        return match &end.skip_reason {
            Some(reason) => format!("job {job} skipped: {}", printable(reason)),
            None => format!("job {job} skipped"),
        };
    }
    let mut line = format!("job {job} {}", job_state_text(end.state, Some(end.allowed)));
    if let Some(ms) = end.duration_ms {
        line.push_str(&format!(" in {}", duration(ms)));
    }
    let failed_step = match (&end.step, end.state) {
        (Some(step), JobState::Failed | JobState::Aborted) => {
            Some(format!("step {}: {}", step.seq, one_line(&step.cmd)))
        }
        _ => None,
    };
    match (end.exit_code, failed_step) {
        (Some(code), Some(step)) => line.push_str(&format!(" (exit {code}; {step})")),
        (Some(code), None) => line.push_str(&format!(" (exit {code})")),
        (None, Some(step)) => line.push_str(&format!(" ({step})")),
        (None, None) => {}
    }
    line
}

/// `run ID complete in 1m 4s`, `run ID failed (cancelled)`: the state with
/// its failure kind, and how long the run took when it ran.
pub fn run_outcome(run: &Run, now_ms: i64) -> String {
    match run.duration_ms(now_ms) {
        Some(ms) => format!("run {} {} in {}", run.id, run.state_text(), duration(ms)),
        None => format!("run {} {}", run.id, run.state_text()),
    }
}

/// A command on one line, escaped, cut to a width a line can hold.
pub fn one_line(cmd: &str) -> String {
    let flat = crate::text::flat(cmd);
    let shown = printable(&flat);
    if shown.chars().count() > 60 {
        format!("{}…", shown.chars().take(59).collect::<String>())
    } else {
        shown.into_owned()
    }
}

/// The last `n` lines a step printed (the text of its CRI log lines,
/// partial lines joined; not escaped), read from the end of its log: the
/// file while there is one, else the copy packed into the store once the
/// run ended ([`Store::step_log`]). At most the last 256 KiB are read, so
/// a step that printed a long line may give fewer. Empty when the step
/// wrote no log.
pub fn last_lines(
    store: &Store,
    run_id: &str,
    job: &str,
    seq: i64,
    n: usize,
) -> quire_store::Result<Vec<String>> {
    let Some(log) = store.read_step_log(run_id, job, seq, LogAt::Tail, TAIL_BYTES)? else {
        return Ok(Vec::new());
    };
    Ok(tail_of_cri(&log.bytes, log.start > 0, n))
}

/// The last `n` lines of CRI log bytes, as text; `cut` when the bytes
/// start in the middle of the log.
fn tail_of_cri(bytes: &[u8], cut: bool, n: usize) -> Vec<String> {
    quire_model::cri::last_lines(bytes, cut, n)
        .into_iter()
        .map(|line| String::from_utf8_lossy(&line.text).into_owned())
        .collect()
}

/// Why [`pause`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// The interval passed (or a signal arrived: the caller checks its flag).
    Elapsed,
    /// The output's reader has gone away: a pipe whose reading end was
    /// closed, a terminal that hung up.
    ReaderGone,
    /// Woken before the interval passed ([`pause_or_woken`]).
    Woken,
}

/// Wait [`POLL`] before the next look, watching `output` (where the lines
/// go): returns at once when its reader is gone (poll's POLLERR/POLLHUP,
/// which a pipe reports as soon as its last reader closes), or when a
/// signal interrupts the wait. A regular file never reports either, so
/// output to a file just waits.
pub fn pause(output: impl AsFd) -> Pause {
    pause_or_woken(output, None)
}

/// [`pause`], returning early ([`Pause::Woken`]) once `wake` is
/// readable or its writers are gone: whoever knows the runs ended (the
/// process that executed them) wakes the follower for its last look, not
/// [`POLL`] later.
pub fn pause_or_woken(output: impl AsFd, wake: Option<std::os::fd::BorrowedFd<'_>>) -> Pause {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: i64::try_from(POLL.as_nanos()).unwrap_or(200_000_000),
    };
    let mut fds = vec![PollFd::new(&output, PollFlags::empty())];
    if let Some(wake) = &wake {
        fds.push(PollFd::new(wake, PollFlags::IN));
    }
    match poll(&mut fds, Some(&timeout)) {
        Ok(0) | Err(_) => Pause::Elapsed,
        Ok(_) => {
            let got = fds[0].revents();
            if got.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) {
                Pause::ReaderGone
            } else if fds.get(1).is_some_and(|w| !w.revents().is_empty()) {
                Pause::Woken
            } else {
                Pause::Elapsed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quire_store::query::JobDetail;
    use quire_store::{FailureKind, Job, RunState};

    fn run(state: RunState) -> Run {
        Run {
            id: "r1".into(),
            repo_id: 1,
            repo: "app.git".into(),
            ref_name: "refs/heads/main".into(),
            sha: "a".repeat(40),
            state,
            failure_kind: (state == RunState::Failed).then_some(FailureKind::PipelineFailure),
            failure_detail: None,
            pushed_at_ms: 0,
            queued_at_ms: 0,
            started_at_ms: Some(1_000),
            finished_at_ms: state.is_terminal().then_some(5_000),
            git_dir: None,
            traceparent: None,
            worker: None,
            previous_sha: None,
            containment: None,
            cgroup: None,
            sandbox: None,
            subject: None,
            author: None,
            event: None,
            superseded_by: None,
            retry_of: None,
            upstream_unfinished: None,
        }
    }

    fn job(id: &str, position: i64, state: JobState, times: (Option<i64>, Option<i64>)) -> Job {
        Job {
            id: id.into(),
            position,
            state,
            exit_code: None,
            skip_reason: None,
            waiting: None,
            started_at_ms: times.0,
            finished_at_ms: times.1,
            allow_failure: None,
        }
    }

    fn step(seq: i64, cmd: &str, exit_code: Option<i64>) -> Step {
        Step {
            seq,
            cmd: cmd.into(),
            exit_code,
            started_at_ms: 1_000,
            finished_at_ms: exit_code.map(|_| 2_000),
        }
    }

    fn detail(state: RunState, jobs: Vec<JobDetail>) -> RunDetail {
        RunDetail {
            run: run(state),
            jobs,
            artifacts: Vec::new(),
            notifications: Vec::new(),
        }
    }

    #[test]
    fn each_start_and_end_is_yielded_once_in_the_order_it_happened() {
        let mut follower = Follower::new("r1");
        let building = detail(
            RunState::Active,
            vec![
                JobDetail {
                    job: job("build", 0, JobState::Active, (Some(1_000), None)),
                    steps: vec![step(1, "make", None)],
                },
                JobDetail {
                    job: job("test", 1, JobState::Pending, (None, None)),
                    steps: vec![],
                },
            ],
        );
        assert_eq!(
            follower.changes(&building),
            [Change::JobStarted {
                job: "build".into()
            }]
        );
        assert_eq!(follower.changes(&building), []);

        // Between two looks: build failed, test was skipped, the run ended.
        let mut build = job("build", 0, JobState::Failed, (Some(1_000), Some(3_000)));
        build.exit_code = Some(2);
        let mut test = job("test", 1, JobState::Skipped, (None, Some(3_000)));
        test.skip_reason = Some("needs build, which failed".into());
        let ended = detail(
            RunState::Failed,
            vec![
                JobDetail {
                    job: build,
                    steps: vec![step(1, "make", Some(2)), step(2, "true", Some(0))],
                },
                JobDetail {
                    job: test,
                    steps: vec![],
                },
            ],
        );
        let changes = follower.changes(&ended);
        let lines: Vec<String> = changes.iter().map(|c| describe(c, 9_000)).collect();
        assert_eq!(
            lines,
            [
                "job build failed in 2.0s (exit 2; step 1: make)",
                "job test skipped: needs build, which failed",
                "run r1 failed (pipeline-failure) in 4.0s",
            ]
        );
        assert!(follower.is_done());
        assert_eq!(follower.changes(&ended), []);
    }

    #[test]
    fn a_job_seen_only_after_it_ended_is_started_then_ended() {
        let mut follower = Follower::new("r1");
        let mut a = job("a", 0, JobState::Complete, (Some(1_000), Some(1_500)));
        a.exit_code = Some(0);
        let mut b = job("b", 1, JobState::Complete, (Some(1_500), Some(1_900)));
        b.exit_code = Some(0);
        let seen = detail(
            RunState::Complete,
            vec![
                JobDetail {
                    job: b,
                    steps: vec![step(1, "echo b", Some(0))],
                },
                JobDetail {
                    job: a,
                    steps: vec![step(1, "echo a", Some(0))],
                },
            ],
        );
        let lines: Vec<String> = follower
            .changes(&seen)
            .iter()
            .map(|c| describe(c, 0))
            .collect();
        assert_eq!(
            lines,
            [
                "job a started",
                "job a complete in 500ms (exit 0)",
                "job b started",
                "job b complete in 400ms (exit 0)",
                "run r1 complete in 4.0s",
            ]
        );
    }

    #[test]
    fn a_failure_the_pipeline_allows_says_so() {
        let mut end = JobEnd {
            job: "lint".into(),
            state: JobState::Failed,
            duration_ms: Some(2_000),
            exit_code: Some(2),
            skip_reason: None,
            step: Some(step(1, "exit 2", Some(2))),
            allowed: true,
        };
        assert_eq!(
            describe(&Change::JobEnded(end.clone()), 0),
            "job lint failed (allowed) in 2.0s (exit 2; step 1: exit 2)"
        );
        end.allowed = false;
        assert_eq!(
            describe(&Change::JobEnded(end), 0),
            "job lint failed in 2.0s (exit 2; step 1: exit 2)"
        );
    }

    #[test]
    fn hostile_job_ids_commands_and_details_are_escaped() {
        let mut end = JobEnd {
            job: "x\x1b[2Jy".into(),
            state: JobState::Failed,
            duration_ms: Some(10),
            exit_code: Some(1),
            skip_reason: None,
            step: Some(step(3, "printf '\\033]0;pwned\\007'\x07", Some(1))),
            allowed: false,
        };
        let line = describe(&Change::JobEnded(end.clone()), 0);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert_eq!(
            line,
            "job x\\x1b[2Jy failed in 10ms (exit 1; step 3: printf '\\033]0;pwned\\007'\\x07)"
        );
        end.state = JobState::Skipped;
        end.skip_reason = Some("r\u{9b}2J".into());
        assert_eq!(
            describe(&Change::JobEnded(end), 0),
            "job x\\x1b[2Jy skipped: r\\u{9b}2J"
        );
        let mut ended = run(RunState::Failed);
        ended.failure_detail = Some("bad\nline".into());
        assert_eq!(
            describe(&Change::RunEnded(Box::new(ended)), 0),
            "run r1 failed (pipeline-failure) in 4.0s: bad\\nline"
        );
    }

    #[test]
    fn the_tail_of_a_cri_log_joins_partial_lines_and_keeps_the_last_n() {
        let log = b"2026-01-01T00:00:00Z stdout F one\n\
            2026-01-01T00:00:00Z stderr P two \n\
            2026-01-01T00:00:00Z stderr F halves\n\
            garbage line\n\
            2026-01-01T00:00:00Z stdout F four\n\
            2026-01-01T00:00:00Z stdout P unterminated";
        assert_eq!(
            tail_of_cri(log, false, 20),
            ["one", "two halves", "garbage line", "four", "unterminated"]
        );
        assert_eq!(tail_of_cri(log, false, 2), ["four", "unterminated"]);
        // Read from the middle: the first, cut line is dropped.
        assert_eq!(
            tail_of_cri(b"F cut\n2026-01-01T00:00:00Z stdout F whole\n", true, 20),
            ["whole"]
        );
        assert_eq!(tail_of_cri(b"", false, 20), Vec::<String>::new());
    }

    #[test]
    fn a_pause_is_woken_once_the_wake_pipe_is_closed() {
        let (_out_reader, out) = rustix::pipe::pipe().unwrap();
        let (wake, woken) = rustix::pipe::pipe().unwrap();
        let wake_fd = std::os::fd::AsFd::as_fd(&wake);
        assert_eq!(pause_or_woken(&out, Some(wake_fd)), Pause::Elapsed);
        drop(woken);
        assert_eq!(pause_or_woken(&out, Some(wake_fd)), Pause::Woken);
    }

    #[test]
    fn pause_notices_a_pipe_whose_reader_closed() {
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        assert_eq!(pause(&writer), Pause::Elapsed);
        drop(reader);
        assert_eq!(pause(&writer), Pause::ReaderGone);
    }
}
