use std::process::ExitCode;

use comfy_table::Cell;
use quire_store::Store;
use quire_store::query::ListFilter;

use crate::runs::cli::ListArgs;
use crate::runs::json;
use quire_view::text::{Output, duration, printable, short_ref};

pub fn run(store: &Store, args: &ListArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let filter = ListFilter {
        states: args.state.clone(),
        sha_prefix: args.commit.clone(),
        since_ms: args
            .since
            .map(|span| out.now_ms - i64::try_from(span.as_millis()).unwrap_or(i64::MAX / 2)),
        before: None,
        limit: args.limit,
        ..crate::select::filter(store, &args.scope.scope())?
    };
    let runs = store.list_runs(&filter)?;
    if args.json.wanted() {
        let objects: Vec<_> = runs.iter().map(|r| json::run(r, out.now_ms)).collect();
        return json::output(&objects, &args.json, json::RUN_FIELDS);
    }
    if runs.is_empty() {
        eprintln!(
            "no runs{}",
            if filter_given(args) { " match" } else { " yet" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let short_ids = store.short_ids(&ids)?;
    let mut table = out.table(&[
        "RUN", "REPO", "REF", "SHA", "STATE", "DURATION", "AGE", "SUBJECT",
    ]);
    for (run, short_id) in runs.iter().zip(short_ids) {
        table.add_row(vec![
            Cell::new(short_id),
            Cell::new(printable(&run.repo)),
            Cell::new(printable(&short_ref(&run.ref_name))),
            Cell::new(&run.sha[..run.sha.len().min(12)]),
            out.run_state(run.state, run.state_text()),
            Cell::new(
                run.duration_ms(out.now_ms)
                    .map(duration)
                    .unwrap_or_default(),
            ),
            Cell::new(out.age(run.queued_at_ms)),
            Cell::new(subject(run.subject.as_deref())),
        ]);
    }
    // On a terminal narrower than the whole table: the commit goes first
    // (the run id names the run), then the duration and the subject
    // (`show` has them), so that what is left need not be cut as much.
    if out.narrower_than(110) {
        out.hide(&mut table, &[3]);
    }
    if out.narrower_than(70) {
        out.hide(&mut table, &[5, 7]);
    }
    let text = out.render(&mut table, &[0, 4, 6], &[(2, 12)]);
    crate::error::output::print(&format!("{text}\n"))
}

/// A commit's subject for a table: escaped, cut at 40 characters.
fn subject(subject: Option<&str>) -> String {
    let text = printable(subject.unwrap_or("")).into_owned();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(39).collect::<String>())
    } else {
        text
    }
}

fn filter_given(args: &ListArgs) -> bool {
    args.scope.scope().is_given()
        || !args.state.is_empty()
        || args.commit.is_some()
        || args.since.is_some()
}
