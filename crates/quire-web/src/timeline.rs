//! Pictures drawn by the server as inline SVG, without script: a run's
//! timeline (a bar per job on one time axis, the critical path outlined)
//! and a branch's trend (a bar per recent run, as tall as it took).
//!
//! Geometry is in user units: the timeline is [`WIDTH`] wide whatever the
//! run's length, stretched to the page's width (`preserveAspectRatio="none"`,
//! so nothing in it is text, which would stretch too). Each bar carries
//! its place as data attributes (`data-x`, `data-w`), unrounded by the
//! minimum width a bar is drawn with, for tests and tools.

use std::collections::HashMap;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use maud::{Markup, html};
use quire_store::query::JobDetail;
use quire_store::{Job, JobState, Run};
use quire_view::text::duration;

use super::ansi::shown;
use super::words::{ago, job_state_class, job_state_text, run_url};

/// The timeline's width in user units.
pub const WIDTH: f64 = 1000.0;
/// A job's row, in CSS pixels (and user units: the height is not
/// stretched).
const ROW: u32 = 22;
const BAR: u32 = 14;

/// Where a pipeline file is read from in the run's commit: where the
/// worker reads it (quire-worker's `DEFAULT_FILE`).
const PIPELINE_FILE: &str = ".quire/ci.toml";

/// What each job of a pipeline needs, by job id.
pub type Needs = HashMap<String, Vec<String>>;

/// The `needs` of the commits whose pages were shown, each read from its
/// repository once: a commit's pipeline file never changes.
#[derive(Debug, Default)]
pub struct NeedsRead(Mutex<HashMap<Commit, Option<Arc<Needs>>>>);

/// A commit of a repository: its git directory and id.
type Commit = (String, String);

/// The most commits [`NeedsRead`] keeps; then it starts again.
const NEEDS_KEPT: usize = 512;

impl NeedsRead {
    /// `run`'s commit's `needs`, read once ([`needs`]); one that could
    /// not be read (a repository git will not read for `serve`) is not
    /// tried again at every view either.
    pub fn of(&self, run: &Run) -> Option<Arc<Needs>> {
        let key = (run.git_dir.clone().unwrap_or_default(), run.sha.clone());
        let lock = || self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = lock().get(&key) {
            return found.clone();
        }
        let read = needs(run).map(Arc::new);
        let mut kept = lock();
        if kept.len() >= NEEDS_KEPT {
            kept.clear();
        }
        kept.insert(key, read.clone());
        read
    }
}

/// The jobs each job of the run's pipeline needs, read from the pipeline
/// file in its commit (the store keeps the plan's order, not its
/// `needs`); `None` when it cannot be read (a repository gone, or not
/// ours to read, a file no longer valid).
fn needs(run: &Run) -> Option<Needs> {
    let git_dir = run.git_dir.as_deref()?;
    // An object name, never an option or a revision expression.
    if run.sha.is_empty() || !run.sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let limit = quire_pipeline::Limits::default().max_file_bytes();
    // The repository's own configuration only, and none of this
    // process's GIT_* variables, as the worker runs git.
    let mut command = Command::new("git");
    command
        .env_clear()
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LC_ALL", "C");
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    let mut child = command
        .arg("--git-dir")
        .arg(git_dir)
        .args(["cat-file", "blob"])
        .arg(format!("{}:{PIPELINE_FILE}", run.sha))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut text = Vec::new();
    let read = child
        .stdout
        .take()
        .map(|out| out.take(limit + 1).read_to_end(&mut text));
    let _ = child.kill();
    let status = child.wait().ok()?;
    if !matches!(read, Some(Ok(_))) || text.len() as u64 > limit || !status.success() {
        return None;
    }
    let pipeline = quire_pipeline::Pipeline::parse(std::str::from_utf8(&text).ok()?).ok()?;
    Some(
        pipeline
            .jobs
            .iter()
            .map(|job| {
                let needs = job
                    .needs()
                    .filter_map(|i| pipeline.jobs.get(i))
                    .map(|j| j.id.clone())
                    .collect();
                (job.id.clone(), needs)
            })
            .collect(),
    )
}

/// When a job's bar ends: its finish, or now while it runs.
fn end_of(job: &Job, now_ms: i64) -> Option<i64> {
    job.started_at_ms?;
    match job.finished_at_ms {
        Some(end) => Some(end),
        None if job.state == JobState::Active => Some(now_ms),
        None => None,
    }
}

/// The critical path: the job that ended last, the job it needs that
/// ended last, and so on back; first job first.
pub fn critical_path(
    jobs: &[JobDetail],
    needs: &HashMap<String, Vec<String>>,
    now_ms: i64,
) -> Vec<String> {
    let ended = |id: &str| {
        jobs.iter()
            .find(|j| j.job.id == id)
            .and_then(|j| end_of(&j.job, now_ms))
    };
    let mut path = Vec::new();
    let mut at = jobs
        .iter()
        .filter_map(|j| Some((end_of(&j.job, now_ms)?, j.job.id.clone())))
        .max();
    while let Some((_, id)) = at {
        if path.contains(&id) {
            break;
        }
        at = needs
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|need| Some((ended(need)?, need.clone())))
            .max();
        path.push(id);
    }
    path.reverse();
    path
}

/// Where `at` falls on the axis, in tenths of a user unit (whole, so
/// that widths made from them are exact).
fn tenths(at: i64, origin: i64, total: i64) -> i64 {
    ((at - origin) as f64 * WIDTH * 10.0 / total as f64).round() as i64
}

/// The steps between an axis's marks, in milliseconds: whole seconds or
/// minutes (or hours), as a reader counts them.
const TICK_STEPS: [i64; 16] = [
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000,
];
/// The most marks an axis gets (and its first, at 0 s, always).
const MAX_TICKS: i64 = 6;

/// The marks of an axis `total` milliseconds long: from 0 s, evenly
/// spaced by the smallest step that gives at most [`MAX_TICKS`], none in
/// the last tenth of the axis (its label would run off the end).
pub fn ticks(total: i64) -> Vec<i64> {
    let step = TICK_STEPS
        .iter()
        .copied()
        .find(|step| total / step < MAX_TICKS)
        .unwrap_or(86_400_000);
    (0..)
        .map(|n| n * step)
        .take_while(|at| *at == 0 || *at * 10 <= total * 9)
        .collect()
}

/// A mark's label: `0 s`, `20 s`, `2 min`, `1 h`.
fn tick_label(at: i64) -> String {
    match at {
        _ if at % 3_600_000 == 0 && at > 0 => format!("{} h", at / 3_600_000),
        _ if at % 60_000 == 0 && at > 0 => format!("{} min", at / 60_000),
        _ => format!("{} s", at / 1000),
    }
}

/// The run's jobs on one time axis, from the run's start.
pub fn timeline(
    now_ms: i64,
    run: &Run,
    jobs: &[JobDetail],
    needs: Option<&HashMap<String, Vec<String>>>,
) -> Markup {
    let spans: Vec<Option<(i64, i64)>> = jobs
        .iter()
        .map(|j| Some((j.job.started_at_ms?, end_of(&j.job, now_ms)?)))
        .collect();
    let Some(first) = spans.iter().flatten().map(|s| s.0).min() else {
        return html! {};
    };
    let origin = run.started_at_ms.map_or(first, |at| at.min(first));
    let last = spans.iter().flatten().map(|s| s.1).max().unwrap_or(origin);
    let total = (last - origin).max(1);
    let path = needs.map(|n| critical_path(jobs, n, now_ms));
    let on_path = |id: &str| path.as_ref().is_some_and(|p| p.iter().any(|j| j == id));
    let rows = jobs.len() as u32;
    let height = rows * ROW;
    let marks: Vec<(i64, f64)> = ticks(total)
        .into_iter()
        .map(|at| (at, tenths(origin + at, origin, total) as f64 / 10.0))
        .collect();
    html! {
        figure.timeline {
            div.tl {
                div.tl-names {
                    @for j in jobs {
                        div.tl-name title=(shown(&j.job.id)) { code { (shown(&j.job.id)) } }
                    }
                }
                svg.tl-bars xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) }
                    preserveAspectRatio="none" width="100%" height=(height) role="img"
                    aria-label="the jobs on a time axis from the run's start" {
                    @for (_, x) in &marks {
                        line.tick x1=(x) x2=(x) y1="0" y2=(height) {}
                    }
                    @for (row, (j, span)) in jobs.iter().zip(&spans).enumerate() {
                        @if let Some((start, end)) = span {
                            @let from = tenths(*start, origin, total);
                            @let x = from as f64 / 10.0;
                            @let w = (tenths(*end, origin, total) - from) as f64 / 10.0;
                            @let crit = on_path(&j.job.id);
                            rect class={ (job_state_class(&j.job)) @if crit { " crit" } }
                                data-job=(shown(&j.job.id)) data-x=(x) data-w=(w)
                                x=(x) y=(row as u32 * ROW + (ROW - BAR) / 2)
                                width=(w.max(4.0)) height=(BAR) {
                                title {
                                    (shown(&j.job.id)) ": " (job_state_text(&j.job)) ", " (duration(end - start))
                                    @if crit { ", on the critical path" }
                                }
                            }
                        }
                    }
                }
                div {}
                // Not stretched: its text keeps its shape, placed in
                // percent of the axis.
                svg.tl-axis xmlns="http://www.w3.org/2000/svg" width="100%" height="16"
                    aria-label="seconds from the run's start" {
                    @for (at, x) in &marks {
                        text data-ms=(at) data-x=(x) x={ (x / 10.0) "%" } y="12"
                            text-anchor=(if *at == 0 { "start" } else { "middle" }) {
                            (tick_label(*at))
                        }
                    }
                }
            }
            figcaption.note {
                "From the run's start to " (duration(total)) "."
                @match &path {
                    Some(path) if !path.is_empty() => {
                        " Outlined, the critical path (the chain of jobs through "
                        code { "needs" } " that ended last): "
                        @for (n, id) in path.iter().enumerate() {
                            @if n > 0 { " → " }
                            code { (shown(id)) }
                        }
                        "."
                    }
                    Some(_) => {}
                    None => " Which jobs need which is unknown (the pipeline file could not be read), so no critical path is marked."
                }
            }
        }
    }
}

/// The height of the trend's tallest bar, in user units (and pixels).
const TREND_HEIGHT: u32 = 40;
const TREND_BAR: u32 = 10;

/// Recent runs, oldest on the left: each a bar as tall as it took (its
/// outcome's colour), a link to the run.
pub fn trend(now_ms: i64, runs: &[Run]) -> Markup {
    if runs.is_empty() {
        return html! {};
    }
    let longest = runs
        .iter()
        .filter_map(|r| r.duration_ms(now_ms))
        .max()
        .unwrap_or(0)
        .max(1);
    let width = runs.len() as u32 * TREND_BAR;
    html! {
        svg.trend xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (width) " " (TREND_HEIGHT) }
            width=(width) height=(TREND_HEIGHT) role="img"
            aria-label="recent runs, oldest first: height is duration, colour the outcome" {
            @for (n, run) in runs.iter().rev().enumerate() {
                @let took = run.duration_ms(now_ms);
                @let h = took.map_or(2, |ms| ((ms as f64 / longest as f64 * f64::from(TREND_HEIGHT)).round() as u32).clamp(2, TREND_HEIGHT));
                a href=(run_url(&run.id)) {
                    rect class=(run.state) data-run=(run.id) x=(n as u32 * TREND_BAR + 1)
                        y=(TREND_HEIGHT - h) width=(TREND_BAR - 2) height=(h) {
                        title {
                            (run.state_text())
                            @if let Some(ms) = took { ", " (duration(ms)) }
                            ", queued " (ago(now_ms, run.queued_at_ms))
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, start: i64, end: i64) -> JobDetail {
        JobDetail {
            job: Job {
                id: id.into(),
                position: 0,
                state: JobState::Complete,
                exit_code: Some(0),
                skip_reason: None,
                waiting: None,
                started_at_ms: Some(start),
                finished_at_ms: Some(end),
                allow_failure: Some(false),
            },
            steps: Vec::new(),
        }
    }

    #[test]
    fn marks_fall_on_whole_seconds_or_minutes() {
        assert_eq!(ticks(900), [0]);
        assert_eq!(ticks(2_500), [0, 1_000, 2_000]);
        assert_eq!(ticks(2_050), [0, 1_000]);
        assert_eq!(ticks(47_000), [0, 10_000, 20_000, 30_000, 40_000]);
        let labels = |total| ticks(total).into_iter().map(tick_label).collect::<Vec<_>>();
        assert_eq!(labels(400_000), ["0 s", "2 min", "4 min", "6 min"]);
        assert_eq!(labels(3 * 3_600_000), ["0 s", "1 h", "2 h"]);
    }

    #[test]
    fn the_critical_path_follows_the_needs_that_ended_last() {
        let jobs = [
            job("a", 0, 30),
            job("b", 0, 50),
            job("c", 0, 40),
            job("d", 50, 90),
            job("lint", 0, 60),
        ];
        let needs: HashMap<String, Vec<String>> = [
            (
                "d".to_string(),
                vec!["a".to_string(), "b".into(), "c".into()],
            ),
            ("a".into(), vec![]),
        ]
        .into_iter()
        .collect();
        assert_eq!(critical_path(&jobs, &needs, 100), ["b", "d"]);
        assert_eq!(critical_path(&jobs[..3], &needs, 100), ["b"]);
        assert!(critical_path(&[], &needs, 100).is_empty());
    }
}
