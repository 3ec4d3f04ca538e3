use std::fmt::Write as _;
use std::process::ExitCode;

use comfy_table::Cell;
use quire_store::query::RunDetail;
use quire_store::{JobState, RunState, Store};
use quire_view::describe::{contained, meaning, notification_outcome};

use crate::error::{CommandError, Kind};
use crate::runs::cli::{JsonArgs, ShowArgs};
use crate::runs::json;
use crate::select;
use quire_view::follow::one_line;
use quire_view::text::{Output, duration, human_bytes, printable, rfc3339};

pub fn run(store: &Store, args: &ShowArgs, out: &Output) -> crate::error::Result<ExitCode> {
    // `show --json RUN`: --json takes an optional value, so clap gives it
    // RUN; no field name is made of hex digits and `-` only, as ids are.
    let (given, json) = match (&args.run, &args.json.json) {
        (None, Some(value)) if is_id_like(value) && !args.scope.scope().is_given() => (
            Some(value.as_str()),
            JsonArgs {
                json: Some(String::new()),
                jq: args.json.jq.clone(),
            },
        ),
        _ => (args.run.as_deref(), args.json.clone()),
    };
    let run = match select::run_or_newest(store, given, &args.scope.scope(), "show") {
        Ok(run) => run,
        // `--exit-status` tells "no such run" (2) from "it failed" (1).
        Err(e) if args.exit_status => {
            return Err(CommandError {
                kind: Kind::Absent,
                ..e
            });
        }
        Err(e) => return Err(e),
    };
    let detail = store.run_detail(&run.id)?;
    let printed = if json.wanted() {
        let fields: Vec<&'static str> = json::RUN_FIELDS
            .iter()
            .chain(json::DETAIL_FIELDS)
            .copied()
            .collect();
        json::output(&json::detail(&detail, out.now_ms), &json, &fields)?
    } else {
        let waiting = if detail.run.state == RunState::Pending {
            Some(waiting_for(store, &detail.run.id)?)
        } else {
            None
        };
        crate::error::output::print(&render(&detail, waiting.as_deref(), out))?
    };
    if printed != ExitCode::SUCCESS {
        return Ok(printed);
    }
    if args.exit_status && detail.run.state != RunState::Complete {
        return Ok(ExitCode::from(1));
    }
    Ok(printed)
}

/// Hex digits and `-`: what a run id, or a part of one, is made of.
fn is_id_like(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// What a pending run waits for, in one line.
fn waiting_for(store: &Store, run_id: &str) -> crate::error::Result<String> {
    let place = store.queue_before(run_id)?;
    let config = quire_worker::config::Config::load(store.home()).unwrap_or_default();
    let (max_workers, per_repo) = (config.max_workers, config.max_workers_per_repo());
    let queue = match place.ahead_in_repo {
        0 => "first in the queue".to_string(),
        1 => "1 run of its repository ahead of it in the queue".to_string(),
        n => format!("{n} runs of its repository ahead of it in the queue"),
    };
    let active = place.active;
    Ok(if active.len() >= max_workers {
        let held: Vec<&str> = active.iter().map(String::as_str).collect();
        format!(
            "a worker slot: all {max_workers} are busy (executing {}); {queue}",
            held.join(", ")
        )
    } else if place.active_of_repo.len() >= per_repo {
        format!(
            "one of its repository's runs to end: it holds max_workers_per_repo = {per_repo} (executing {}); {queue}",
            place.active_of_repo.join(", ")
        )
    } else if active.is_empty() {
        format!("a worker to start ({queue}); if none does, `quire-runs reconcile` starts one")
    } else {
        format!("a worker to take it ({queue})")
    })
}

fn render(detail: &RunDetail, waiting: Option<&str>, out: &Output) -> String {
    let run = &detail.run;
    let mut text = String::new();
    let mut field = |name: &str, value: String| {
        let _ = writeln!(text, "{}", out.fit(&format!("{name:<10}{value}")));
    };
    field("run", printable(&run.id).into_owned());
    field(
        "repo",
        match &run.git_dir {
            Some(dir) => format!("{} ({})", printable(&run.repo), printable(dir)),
            None => printable(&run.repo).into_owned(),
        },
    );
    field("ref", printable(&run.ref_name).into_owned());
    field("sha", run.sha.clone());
    if let Some(subject) = &run.subject {
        field("subject", printable(subject).into_owned());
    }
    if let Some(author) = &run.author {
        field("author", printable(author).into_owned());
    }
    match (run.event, &run.retry_of) {
        (Some(event), Some(of)) => field("event", format!("{event} of run {of}")),
        (Some(event), None) => field("event", event.to_string()),
        (None, _) => {}
    }
    field("state", run.state_text());
    if run.upstream_unfinished.is_some() {
        field(
            "meaning",
            "upstream quire left it unfinished; quire failed it when it took the store over \
             and never ran it"
                .to_string(),
        );
    } else if let Some(kind) = run.failure_kind {
        field("meaning", meaning(kind).to_string());
    }
    if let Some(detail) = &run.failure_detail {
        field("detail", printable(detail).into_owned());
    }
    if run.state == RunState::Superseded {
        field(
            "successor",
            match &run.superseded_by {
                // The command only where it fits whole.
                Some(next) if out.narrower_than(96) => format!("run {next}"),
                Some(next) => format!("run {next} (quire-runs show {next})"),
                None => "none: the ref was deleted, or its new commit recorded no run".into(),
            },
        );
    }
    if let Some(waiting) = waiting {
        field("waiting", format!("for {waiting}"));
    }
    // On a terminal, to the second: the milliseconds are for scripts.
    let time = |ms: i64| match out.width {
        Some(_) => rfc3339(ms - ms.rem_euclid(1000)).replace(".000Z", "Z"),
        None => rfc3339(ms),
    };
    let at = |ms: i64| format!("{} ({})", time(ms), out.age(ms));
    field("pushed", at(run.pushed_at_ms));
    field("queued", at(run.queued_at_ms));
    if let Some(ms) = run.started_at_ms {
        field("started", at(ms));
    }
    if let Some(ms) = run.finished_at_ms {
        field("finished", at(ms));
    }
    if let Some(ms) = run.duration_ms(out.now_ms) {
        field("duration", duration(ms));
    }
    if let Some(sandbox) = &run.sandbox {
        field("sandbox", sandbox.to_string());
    }
    if let Some(containment) = run.containment {
        field("contained", contained(containment, run.cgroup.as_deref()));
    }
    if run.state == RunState::Active {
        if let Some(worker) = &run.worker {
            field(
                "worker",
                format!(
                    "pid {} (lease until {})",
                    worker.pid,
                    time(worker.lease_expires_at_ms)
                ),
            );
        }
        if let Some(now) = running_now(detail) {
            field("running", now);
        }
    }

    if detail.jobs.is_empty() {
        text.push_str("\nno jobs recorded\n");
        return text;
    }
    let mut table = out.table(&["JOB", "STATE", "DURATION", "EXIT"]);
    for job in &detail.jobs {
        let j = &job.job;
        // A job upstream left running ended when quire took the store
        // over, at no time upstream recorded: it has no duration.
        let took = if run.upstream_unfinished.is_some() && j.state == JobState::Aborted {
            String::new()
        } else {
            span(
                j.started_at_ms,
                j.finished_at_ms,
                j.state == JobState::Active,
                out.now_ms,
            )
        };
        let state = match (&j.skip_reason, j.state, j.allow_failure) {
            (Some(reason), JobState::Skipped, _) => {
                Cell::new(format!("skipped: {}", printable(reason)))
            }
            (_, JobState::Failed, Some(true)) => out.allowed_failure(),
            (_, JobState::Active, _) if j.waiting.is_some() => Cell::new(format!(
                "active: {}",
                printable(j.waiting.as_deref().unwrap_or_default())
            )),
            _ => out.job_state(j.state),
        };
        table.add_row(vec![
            Cell::new(printable(&j.id)),
            state,
            Cell::new(took),
            Cell::new(j.exit_code.map(|c| c.to_string()).unwrap_or_default()),
        ]);
        for step in &job.steps {
            let running = step.exit_code.is_none();
            table.add_row(vec![
                Cell::new(format!("  {}. {}", step.seq, one_line(&step.cmd))),
                Cell::new(if running { "running" } else { "" }),
                Cell::new(span(
                    Some(step.started_at_ms),
                    step.finished_at_ms,
                    running,
                    out.now_ms,
                )),
                Cell::new(step.exit_code.map(|c| c.to_string()).unwrap_or_default()),
            ]);
        }
    }
    // On a terminal, the state at most a quarter of the line (`failed
    // (allowed)` whole): what room there is goes to the commands.
    if let (Some(width), Some(column)) = (out.width, table.column_mut(1)) {
        let padding = column.padding_width();
        let most = u16::try_from(width / 4).unwrap_or(u16::MAX).max(16);
        column.set_constraint(comfy_table::ColumnConstraint::Boundaries {
            lower: comfy_table::Width::Fixed(16 + padding),
            upper: comfy_table::Width::Fixed(most + padding),
        });
    }
    let _ = write!(text, "\n{}\n", out.render(&mut table, &[2, 3], &[]));
    if !detail.artifacts.is_empty() {
        let mut table = out.table(&["JOB", "ARTIFACT", "SIZE"]);
        for artifact in &detail.artifacts {
            table.add_row(vec![
                Cell::new(printable(&artifact.job)),
                Cell::new(printable(&artifact.path)),
                Cell::new(human_bytes(artifact.size)),
            ]);
        }
        let _ = write!(
            text,
            "\n{}\n{}\n",
            out.render(&mut table, &[2], &[]),
            out.fit(&format!(
                "(download them with `quire-runs download {}`)",
                printable(&run.id)
            ))
        );
    }
    if !detail.notifications.is_empty() {
        text.push('\n');
        for n in &detail.notifications {
            let line = format!("notify {}: {}", n.position, notification(n));
            let _ = writeln!(text, "{}", out.fit(&line));
        }
    }
    text
}

/// How a notifier ended, on one line: its program, its outcome, the last
/// line of its stderr.
fn notification(n: &quire_store::Notification) -> String {
    let program = n.command.first().map_or("", String::as_str);
    let outcome = notification_outcome(n);
    let mut line = format!("{} {outcome}", one_line(program));
    if let Some(tail) = &n.stderr_tail {
        line.push_str(": ");
        line.push_str(&printable(&quire_view::text::flat(tail)));
    }
    line
}

/// A kept file's path on one line (a file name may hold a newline).
/// The job and step an active run is executing.
fn running_now(detail: &RunDetail) -> Option<String> {
    let job = detail
        .jobs
        .iter()
        .find(|j| j.job.state == JobState::Active)?;
    match job.steps.iter().rev().find(|s| s.exit_code.is_none()) {
        Some(step) => Some(format!(
            "{} step {}: {}",
            job.job.id,
            step.seq,
            one_line(&step.cmd)
        )),
        None => Some(job.job.id.clone()),
    }
}

fn span(start: Option<i64>, end: Option<i64>, running: bool, now_ms: i64) -> String {
    match (start, end) {
        (Some(start), Some(end)) => duration(end - start),
        (Some(start), None) if running => duration(now_ms - start),
        _ => String::new(),
    }
}
