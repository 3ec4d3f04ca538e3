//! watch: follow a run's jobs until it ends, as `gh run watch` does. On a
//! terminal, a view of the run's jobs redrawn in place (state marks,
//! durations, the step running now); elsewhere one line per change (a job
//! started, a job ended, the run ended), for scripts and logs. Both follow
//! the run through [`quire_view::follow`].

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use quire_store::query::RunDetail;
use quire_store::{JobState, Run, RunState, Store};

use crate::runs::cli::WatchArgs;
use quire_view::follow::{Change, Follower, Pause, describe, one_line, pause};
use quire_view::text::{Output, duration, job_state_text, printable, short_ref};

pub fn run(store: &Store, args: &WatchArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let run =
        crate::select::run_or_newest(store, args.run.as_deref(), &args.scope.scope(), "watch")?;
    let redraw =
        io::stdout().is_terminal() && std::env::var_os("TERM").is_none_or(|term| term != "dumb");
    let last = if redraw {
        in_place(store, &run, out)?
    } else {
        line_per_change(store, &run, out)?
    };
    Ok(if args.exit_status && last.state != RunState::Complete {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Stdout, written a piece at a time; a reader that went away (`| head`)
/// ends the watch quietly.
struct Stdout {
    out: io::Stdout,
}

impl Stdout {
    /// False when the reader is gone.
    fn write(&mut self, text: &str) -> crate::error::Result<bool> {
        let mut lock = self.out.lock();
        match lock.write_all(text.as_bytes()).and_then(|()| lock.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(crate::error::CommandError::stdout(e)),
        }
    }
}

/// `run ID of REPO REF at SHA12`, then a line per change; for a run that
/// had already ended, its jobs' ends and its own, once. Returns the run as
/// last seen.
fn line_per_change(store: &Store, run: &Run, out: &Output) -> crate::error::Result<Run> {
    let mut stdout = Stdout { out: io::stdout() };
    let header = format!(
        "{}\n",
        out.fit(&format!(
            "run {} of {} {} at {}",
            run.id,
            printable(&run.repo),
            printable(&run.ref_name),
            short_sha(&run.sha)
        ))
    );
    if !stdout.write(&header)? {
        return Ok(run.clone());
    }
    let mut follower = Follower::new(&run.id);
    let mut first = true;
    loop {
        let (detail, changes) = follower.poll(store)?;
        // A run that ended before the watch began: its final state, not
        // its history.
        let history = first && detail.run.state.is_terminal();
        first = false;
        let mut text = String::new();
        for change in &changes {
            if history && matches!(change, Change::JobStarted { .. }) {
                continue;
            }
            text.push_str(&out.fit(&describe(change, out.live_now_ms())));
            text.push('\n');
        }
        if !text.is_empty() && !stdout.write(&text)? {
            return Ok(detail.run);
        }
        if follower.is_done() || pause(io::stdout()) == Pause::ReaderGone {
            return Ok(detail.run);
        }
    }
}

/// The view redrawn in place until the run ends, then its outcome on a
/// line of its own. Returns the run as last seen.
fn in_place(store: &Store, run: &Run, out: &Output) -> crate::error::Result<Run> {
    let mut stdout = Stdout { out: io::stdout() };
    let mut drawn = 0;
    let mut shown: Vec<String> = Vec::new();
    // The short id `list` shows, for a line too narrow for the whole one.
    let short_id = store.short_ids(&[run.id.as_str()])?.pop();
    loop {
        let detail = store.run_detail(&run.id)?;
        let now = out.live_now_ms();
        let view = frame(
            &detail,
            short_id.as_deref(),
            now,
            out.color,
            out.width.unwrap_or(80),
        );
        if view != shown {
            if !stdout.write(&redraw(drawn, &view))? {
                return Ok(detail.run);
            }
            drawn = view.len();
            shown = view;
        }
        if detail.run.state.is_terminal() {
            let outcome = describe(&Change::RunEnded(Box::new(detail.run.clone())), now);
            stdout.write(&format!("{}\n", out.fit(&outcome)))?;
            return Ok(detail.run);
        }
        if pause(io::stdout()) == Pause::ReaderGone {
            return Ok(detail.run);
        }
    }
}

/// A commit id's first 12 characters, printable (an upgraded store's
/// commit ids are not checked to be hex).
fn short_sha(sha: &str) -> String {
    printable(&sha.chars().take(12).collect::<String>()).into_owned()
}

/// The bytes that replace the `drawn` lines above the cursor with `view`:
/// up to the first, then each line cleared and written, then whatever was
/// below cleared.
fn redraw(drawn: usize, view: &[String]) -> String {
    let mut text = String::new();
    if drawn > 0 {
        text.push_str(&format!("\x1b[{drawn}A"));
    }
    for line in view {
        text.push_str("\r\x1b[2K");
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("\x1b[J");
    text
}

/// ANSI colors, as comfy-table's (and so `list` and `show`'s) are.
const GREEN: &str = "32";
const RED: &str = "31";
const YELLOW: &str = "33";
const GREY: &str = "90";
const MAGENTA: &str = "35";

/// A piece of a line, colored when color is on.
struct Piece {
    text: String,
    color: Option<&'static str>,
}

fn plain(text: impl Into<String>) -> Piece {
    Piece {
        text: text.into(),
        color: None,
    }
}

/// The lines of the view: the run (state, duration, id, repository, ref,
/// commit), a blank line, then a line per job in plan order (a mark, its
/// id, state, duration, and the step it runs, how it failed or why it was
/// skipped). Every line fits in `width - 1` columns, cut with `…`, so that
/// none wraps and the redraw moves up by exactly the lines it drew.
pub(crate) fn frame(
    detail: &RunDetail,
    short_id: Option<&str>,
    now_ms: i64,
    color: bool,
    width: usize,
) -> Vec<String> {
    let run = &detail.run;
    let mut lines = Vec::new();
    let run_color = match run.state {
        RunState::Pending => GREY,
        RunState::Active => YELLOW,
        RunState::Complete => GREEN,
        RunState::Failed => RED,
        RunState::Superseded => GREY,
    };
    // The state first: on a narrow terminal the line is cut at its end.
    let mut head = vec![Piece {
        text: run.state_text(),
        color: Some(run_color),
    }];
    if let Some(ms) = run.duration_ms(now_ms) {
        head.push(plain(format!("  {}", duration(ms))));
    }
    let rest = |id: &str| {
        format!(
            "  run {id}  {}  {}  {}",
            printable(&run.repo),
            printable(&short_ref(&run.ref_name)),
            short_sha(&run.sha)
        )
    };
    let whole = rest(&run.id);
    let used: usize = head.iter().map(|p| p.text.chars().count()).sum();
    // Too wide with the whole id: the short one, so the ref has the room.
    head.push(plain(match short_id {
        Some(id) if used + whole.chars().count() >= width => rest(id),
        _ => whole,
    }));
    lines.push(fit(&head, color, width));
    lines.push(String::new());
    if detail.jobs.is_empty() {
        let note = match run.state {
            RunState::Pending => "  waiting for a worker",
            RunState::Active => "  planning the jobs",
            _ => "  no jobs ran",
        };
        lines.push(fit(&[plain(note)], color, width));
        return lines;
    }
    // A long id is cut to a third of the line, so that every job's state
    // stays in view.
    let id_room = (width / 3).max(8);
    let ids: Vec<String> = detail
        .jobs
        .iter()
        .map(|j| quire_view::text::cut(&printable(&j.job.id), id_room))
        .collect();
    let id_width = ids.iter().map(|id| id.chars().count()).max().unwrap_or(0);
    let mut rows = Vec::new();
    for (job, id) in detail.jobs.iter().zip(&ids) {
        let j = &job.job;
        let took = match (j.started_at_ms, j.finished_at_ms) {
            (Some(start), Some(end)) => duration(end - start),
            (Some(start), None) if j.state == JobState::Active => duration(now_ms - start),
            _ => String::new(),
        };
        let what = match j.state {
            JobState::Active => job
                .steps
                .iter()
                .rev()
                .find(|s| s.exit_code.is_none())
                .map(|s| format!("step {}: {}", s.seq, one_line(&s.cmd)))
                .unwrap_or_default(),
            JobState::Failed | JobState::Aborted => {
                let step = job.ending_step();
                match (j.exit_code.or(step.and_then(|s| s.exit_code)), step) {
                    (Some(code), Some(s)) => {
                        format!("exit {code}; step {}: {}", s.seq, one_line(&s.cmd))
                    }
                    (Some(code), None) => format!("exit {code}"),
                    (None, Some(s)) => format!("step {}: {}", s.seq, one_line(&s.cmd)),
                    (None, None) => String::new(),
                }
            }
            JobState::Skipped => j
                .skip_reason
                .as_deref()
                .map(|r| printable(r).into_owned())
                .unwrap_or_default(),
            JobState::Complete | JobState::Pending => String::new(),
        };
        rows.push((j.state, j.allow_failure == Some(true), id, took, what));
    }
    let took_width = rows.iter().map(|r| r.3.chars().count()).max().unwrap_or(0);
    let state_width = rows
        .iter()
        .map(|r| job_state_text(r.0, Some(r.1)).chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    for (state, allowed, id, took, what) in rows {
        let (mark, state_color) = match state {
            JobState::Pending => ("·", GREY),
            JobState::Active => ("*", YELLOW),
            JobState::Complete => ("✓", GREEN),
            // Its own color, as `show` gives it: not a failure that counts.
            JobState::Failed if allowed => ("X", MAGENTA),
            JobState::Failed => ("X", RED),
            JobState::Aborted => ("!", RED),
            JobState::Skipped => ("-", GREY),
        };
        let state_text = job_state_text(state, Some(allowed));
        let pieces = [
            plain("  "),
            Piece {
                text: mark.to_string(),
                color: Some(state_color),
            },
            plain(format!(" {id:<id_width$}  ")),
            Piece {
                text: state_text.clone(),
                color: Some(state_color),
            },
            plain(
                format!(
                    "{:pad$}  {took:<took_width$}  {what}",
                    "",
                    pad = state_width - state_text.chars().count().min(state_width)
                )
                .trim_end(),
            ),
        ];
        lines.push(fit(&pieces, color, width));
    }
    lines
}

/// The pieces as one line of at most `width - 1` characters (the rest cut,
/// ending in `…`), colored when `color`.
fn fit(pieces: &[Piece], color: bool, width: usize) -> String {
    let room = width.saturating_sub(1).max(10);
    let total: usize = pieces.iter().map(|p| p.text.chars().count()).sum();
    let mut left = if total > room { room - 1 } else { room };
    let mut line = String::new();
    for piece in pieces {
        if left == 0 {
            break;
        }
        let text: String = piece.text.chars().take(left).collect();
        left -= text.chars().count();
        match (color, piece.color) {
            (true, Some(code)) => line.push_str(&format!("\x1b[{code}m{text}\x1b[0m")),
            _ => line.push_str(&text),
        }
    }
    if total > room {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use quire_store::query::JobDetail;
    use quire_store::{Job, Step};

    fn detail() -> RunDetail {
        let job = |id: &str, position, state, exit_code, times: (Option<i64>, Option<i64>)| Job {
            id: String::from(id),
            position,
            state,
            exit_code,
            skip_reason: (state == JobState::Skipped).then(|| "needs test, which failed".into()),
            waiting: None,
            started_at_ms: times.0,
            finished_at_ms: times.1,
            allow_failure: None,
        };
        let step = |seq, cmd: &str, exit_code| Step {
            seq,
            cmd: cmd.into(),
            exit_code,
            started_at_ms: 1_000,
            finished_at_ms: exit_code.map(|_| 9_000),
        };
        RunDetail {
            run: Run {
                id: "01a20000-0000-7000-8000-000000000004".into(),
                repo_id: 1,
                repo: "app.git".into(),
                ref_name: "refs/heads/feature".into(),
                sha: "e".repeat(40),
                state: RunState::Active,
                failure_kind: None,
                failure_detail: None,
                pushed_at_ms: 0,
                queued_at_ms: 0,
                started_at_ms: Some(1_000),
                finished_at_ms: None,
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
            },
            jobs: vec![
                JobDetail {
                    job: job(
                        "build",
                        0,
                        JobState::Complete,
                        Some(0),
                        (Some(1_000), Some(10_000)),
                    ),
                    steps: vec![step(1, "make", Some(0))],
                },
                JobDetail {
                    job: job(
                        "lint",
                        1,
                        JobState::Failed,
                        Some(2),
                        (Some(10_000), Some(12_500)),
                    ),
                    steps: vec![
                        step(1, "cargo fmt --check", Some(0)),
                        step(2, "cargo clippy\x1b[2J", Some(2)),
                    ],
                },
                JobDetail {
                    job: job("test", 2, JobState::Active, None, (Some(10_000), None)),
                    steps: vec![
                        step(1, "cargo build", Some(0)),
                        step(2, "cargo test --all", None),
                    ],
                },
                JobDetail {
                    job: job("deploy", 3, JobState::Pending, None, (None, None)),
                    steps: vec![],
                },
                JobDetail {
                    job: job("release", 4, JobState::Skipped, None, (None, Some(12_500))),
                    steps: vec![],
                },
            ],
            artifacts: Vec::new(),
            notifications: Vec::new(),
        }
    }

    #[test]
    fn the_view_marks_each_job_with_its_state_duration_and_step() {
        let view = frame(&detail(), None, 60_000, false, 120);
        assert_eq!(
            view.join("\n"),
            "active  59.0s  run 01a20000-0000-7000-8000-000000000004  app.git  feature  eeeeeeeeeeee\n\
             \n  \
               ✓ build    complete  9.0s\n  \
               X lint     failed    2.5s   exit 2; step 2: cargo clippy\\x1b[2J\n  \
               * test     active    50.0s  step 2: cargo test --all\n  \
               · deploy   pending\n  \
               - release  skipped          needs test, which failed"
        );
    }

    #[test]
    fn the_view_fits_the_terminal_and_colors_only_marks_and_states() {
        let view = frame(&detail(), None, 60_000, false, 40);
        for line in &view {
            assert!(line.chars().count() < 40, "{line:?}");
        }
        assert_eq!(view[3], "  X lint     failed    2.5s   exit 2; …");
        let colored = frame(&detail(), None, 60_000, true, 120);
        assert_eq!(
            colored[2],
            "  \x1b[32m✓\x1b[0m build    \x1b[32mcomplete\x1b[0m  9.0s"
        );
        assert!(colored[0].starts_with("\x1b[33mactive\x1b[0m  59.0s  run "));
    }

    #[test]
    fn a_failure_the_pipeline_allows_is_shown_as_such_in_its_own_color() {
        let mut detail = detail();
        detail.jobs[1].job.allow_failure = Some(true);
        let view = frame(&detail, None, 60_000, false, 120);
        assert_eq!(
            view[3],
            "  X lint     failed (allowed)  2.5s   exit 2; step 2: cargo clippy\\x1b[2J"
        );
        assert_eq!(view[2], "  ✓ build    complete          9.0s");
        let colored = frame(&detail, None, 60_000, true, 120);
        assert!(
            colored[3].starts_with("  \x1b[35mX\x1b[0m lint     \x1b[35mfailed (allowed)\x1b[0m"),
            "{:?}",
            colored[3]
        );
    }

    #[test]
    fn a_redraw_moves_up_over_what_it_drew_and_clears_below() {
        let view = vec!["a".to_string(), "b".to_string()];
        assert_eq!(redraw(0, &view), "\r\x1b[2Ka\n\r\x1b[2Kb\n\x1b[J");
        assert_eq!(redraw(2, &view), "\x1b[2A\r\x1b[2Ka\n\r\x1b[2Kb\n\x1b[J");
    }
}
