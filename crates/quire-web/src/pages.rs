//! The HTML pages. maud escapes every value it interpolates; every text a
//! pipeline or a pusher controls (repository and ref names, job ids,
//! commands, details, log lines, notifiers' stderr) goes through
//! [`ansi::shown`] or [`ansi::spans`] first, so that no control character
//! reaches a page raw either.

use std::collections::HashMap;
use std::sync::LazyLock;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use quire_model::refs::RefName;
use quire_store::query::{JobDetail, RunDetail};
use quire_store::{JobState, NotificationState, Repository, Run, RunState, Store};

use super::ansi::{self, shown};
use super::fresh::{self, Stamp};
use super::live::{Line, StepLog};
use super::timeline;
use super::words::segment;
use super::words::{ago, artifact_url, job_state_class, job_state_text, job_url, run_url};
use quire_view::text::{cut, duration, flat, human_bytes, rfc3339, sh_word, short_ref};

/// The page style, in a `<style>` element whose hash the
/// Content-Security-Policy names.
pub static CSS: LazyLock<String> = LazyLock::new(|| {
    let mut css = String::from(
        ":root{color-scheme:light dark;--fg:#1f2328;--bg:#fff;--mut:#656d76;--line:#d0d7de;--head:#24292f}\
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--mut:#8d96a0;--line:#30363d;--head:#161b22}}\
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg)}\
header{background:var(--head);padding:.55em 1em}header a{color:#fff;font-weight:600;margin-right:1.2em;text-decoration:none}\
main{padding:.8em 1em 2em;max-width:72em}h1{font-size:1.35em;margin:.3em 0 .6em}h2{font-size:1.1em;margin:1.4em 0 .5em}\
h3{font-size:1em;margin:1em 0 .3em;font-weight:600}h3 .mut{font-weight:400}a{color:#0969da}@media (prefers-color-scheme:dark){a{color:#4493f8}}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .55em;border-bottom:1px solid var(--line);vertical-align:top}\
th{font-weight:600;color:var(--mut);font-size:.9em}tr.step td{border-bottom:none;padding-top:.1em;padding-bottom:.1em;color:var(--mut)}\
tr.step td:first-child{padding-left:1.6em}code,pre{font:.88em/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;margin:0}dt{color:var(--mut)}dd{margin:0;overflow-wrap:anywhere}\
.complete,.passing{color:#1a7f37}.failed,.aborted{color:#cf222e}.active{color:#9a6700}.pending,.skipped,.superseded,.running-no{color:var(--mut)}\
@media (prefers-color-scheme:dark){.complete{color:#3fb950}.failed,.aborted{color:#f85149}.active{color:#d29922}}\
.st{font-weight:600}.mut,.empty{color:var(--mut)}.note{color:var(--mut);font-size:.9em}\
form.filters{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:end;margin:0 0 1em}form.filters label{display:flex;flex-direction:column;font-size:.85em;color:var(--mut)}\
input,select,button{font:inherit;padding:.2em .4em}nav.pages{margin-top:1em;display:flex;gap:1.5em}\
pre.log{background:#0d1117;color:#e6edf3;margin:0;padding:.6em .8em;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere;border-radius:4px;min-height:1.2em}\
.ln.e{color:#ffa198}a.n{display:inline-block;min-width:3em;margin-right:1em;text-align:right;color:#6e7681;text-decoration:none;user-select:none}\
a.n::before{content:attr(data-n)}.ln:target{background:#3b2f00;outline:1px solid #d29922}.b{font-weight:700}.d{opacity:.7}.i{font-style:italic}.u{text-decoration:underline}\
@media (max-width:44em){.wide{display:none}main{padding:.6em}th,td{padding:.3em .3em}}\
.allowed{color:#bc4c00}@media (prefers-color-scheme:dark){.allowed{color:#db6d28}}.subject{margin:-.3em 0 .8em;font-size:1.05em}\
figure{margin:.3em 0 1em}.tl{display:grid;grid-template-columns:minmax(0,9em) minmax(0,1fr);gap:0 .6em}\
.tl-name{height:22px;line-height:22px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-size:.85em}\
svg.tl-bars{display:block;border-left:1px solid var(--line);border-right:1px dashed var(--line)}\
svg line.tick{stroke:var(--line);vector-effect:non-scaling-stroke}svg.tl-axis{display:block;overflow:visible}svg.tl-axis text{fill:var(--mut);font-size:11px}\
svg rect{fill:currentColor}svg rect.crit{stroke:var(--fg);stroke-width:2.5px;vector-effect:non-scaling-stroke}\
svg.trend{display:block;max-width:100%;height:40px;border-bottom:1px solid var(--line)}\
pre.tail{margin:.2em 0 .6em}tr.tail td{border-bottom:1px solid var(--line)}code.sha{overflow-wrap:anywhere}\
h1,h3,td,code{overflow-wrap:anywhere}td.subj{color:var(--mut);font-size:.92em}\
@media (max-width:44em){table,tbody{display:block}thead{display:none}tr{display:block;border-bottom:1px solid var(--line);padding:.25em 0}\
td{display:inline-block;border:none;padding:.05em .6em .05em 0;max-width:100%}td[colspan]{display:block;padding-right:0}\
tr.step td:first-child{padding-left:1em;display:block}tr.step{border-bottom:none;padding:0}td.subj{display:block}}",
    );
    const COLOURS: [&str; 16] = [
        "#484f58", "#ff7b72", "#3fb950", "#d29922", "#58a6ff", "#bc8cff", "#39c5cf", "#b1bac4",
        "#6e7681", "#ffa198", "#56d364", "#e3b341", "#79c0ff", "#d2a8ff", "#56d4dd", "#ffffff",
    ];
    for (n, colour) in COLOURS.iter().enumerate() {
        css.push_str(&format!(
            ".f{n}{{color:{colour}}}.g{n}{{background:{colour}}}"
        ));
    }
    css
});

/// The job page's script: follows the job's event stream, appending each
/// line as elements whose text is set as text (never parsed as HTML).
pub const SCRIPT: &str = r##"(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  var status = document.getElementById("status");
  var next = parseInt(live.getAttribute("data-next"), 10) || 1;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }
  function log(seq, cmd) {
    var pre = document.getElementById("log-" + seq);
    if (pre) return pre;
    var section = el("section", "step");
    section.id = "step-" + seq;
    var h = el("h3", "", seq + ". ");
    h.appendChild(el("code", "", cmd || ""));
    var exit = el("span", "mut");
    exit.id = "exit-" + seq;
    h.appendChild(document.createTextNode(" "));
    h.appendChild(exit);
    section.appendChild(h);
    pre = el("pre", "log");
    pre.id = "log-" + seq;
    section.appendChild(pre);
    live.appendChild(section);
    return pre;
  }
  var es = new EventSource(live.getAttribute("data-events"));
  es.onopen = function () { status.textContent = "running: following its output live"; };
  es.onerror = function () {
    if (es.readyState === 2) status.textContent = "the live view stopped: reload the page";
  };
  es.addEventListener("step", function (m) {
    var d = JSON.parse(m.data);
    log(d.seq, d.cmd);
  });
  es.addEventListener("line", function (m) {
    var d = JSON.parse(m.data);
    var pre = log(d.seq, "");
    var doc = document.documentElement;
    var atEnd = window.innerHeight + window.scrollY >= doc.scrollHeight - 48;
    var line = el("span", d.err ? "ln e" : "ln");
    line.id = "L" + next;
    var n = el("a", "n");
    n.href = "#L" + next;
    n.setAttribute("data-n", String(next));
    line.appendChild(n);
    next += 1;
    for (var i = 0; i < d.spans.length; i++) line.appendChild(el("span", d.spans[i][0], d.spans[i][1]));
    pre.appendChild(line);
    pre.appendChild(document.createTextNode("\n"));
    if (atEnd) window.scrollTo(0, doc.scrollHeight);
  });
  es.addEventListener("stepend", function (m) {
    var d = JSON.parse(m.data);
    var exit = document.getElementById("exit-" + d.seq);
    if (exit && d.exit !== null) exit.textContent = "exit " + d.exit;
  });
  var state = document.getElementById("state");
  function header(d) {
    if (!state || !d.text) return;
    state.textContent = d.text;
    state.className = "st " + d.class;
  }
  es.addEventListener("state", function (m) { header(JSON.parse(m.data)); });
  es.addEventListener("end", function (m) {
    var d = JSON.parse(m.data);
    es.close();
    header(d);
    var took = document.getElementById("duration");
    if (took && d.duration) took.textContent = d.duration;
    status.textContent = "the job ended: " + (d.text || d.state) + (d.exit !== null ? ", exit " + d.exit : "");
    status.className = "st " + (d.class || "");
  });
})();
"##;

/// The job's whole log as plain text.
pub fn log_url(run: &str, job: &str) -> String {
    format!("{}/log", job_url(run, job))
}

/// The stream that tells the runs list and the repositories page that runs
/// changed since the page's stamp.
pub fn runs_events_url(stamp: &Stamp) -> String {
    format!("/events/runs?since={}", stamp.text)
}

/// The stream that tells a run's page that the run changed.
pub fn run_events_url(run: &str, stamp: &Stamp) -> String {
    format!("{}/events?since={}", run_url(run), stamp.text)
}

/// The script of a page that follows changes.
fn fresh_script() -> Markup {
    html! { script { (PreEscaped(fresh::SCRIPT)) } }
}

pub fn events_url(run: &str, job: &str, seq: i64, offset: u64) -> String {
    format!("{}/events?step={seq}&offset={offset}", job_url(run, job))
}

/// `/badge/REPO/BRANCH.svg`, each segment of both encoded.
pub fn badge_url(repo: &str, branch: &str) -> String {
    let path: Vec<String> = repo
        .split('/')
        .chain(branch.split('/'))
        .map(segment)
        .collect();
    format!("/badge/{}.svg", path.join("/"))
}

/// What the run list shows: the filters as given (names, not ids).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub repo: Option<String>,
    pub ref_name: Option<String>,
    pub states: Vec<RunState>,
    pub before: Option<String>,
    pub limit: Option<usize>,
}

impl Filters {
    pub fn any(&self) -> bool {
        self.repo.is_some() || self.ref_name.is_some() || !self.states.is_empty()
    }

    /// The query string of these filters (`?repo=...`), or nothing.
    pub fn query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(repo) = &self.repo {
            query.append_pair("repo", repo);
        }
        if let Some(ref_name) = &self.ref_name {
            query.append_pair("ref", ref_name);
        }
        for state in &self.states {
            query.append_pair("state", state.as_str());
        }
        if let Some(limit) = self.limit {
            query.append_pair("limit", &limit.to_string());
        }
        if let Some(before) = &self.before {
            query.append_pair("before", before);
        }
        let query = query.finish();
        if query.is_empty() {
            query
        } else {
            format!("?{query}")
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{path}{}", self.query())
    }

    fn of_repo(repo: &str) -> Filters {
        Filters {
            repo: Some(repo.to_string()),
            ..Filters::default()
        }
    }

    fn of_ref(repo: &str, ref_name: &str) -> Filters {
        Filters {
            repo: Some(repo.to_string()),
            ref_name: Some(ref_name.to_string()),
            ..Filters::default()
        }
    }
}

fn time(now_ms: i64, at_ms: i64) -> Markup {
    let exact = rfc3339(at_ms);
    html! { time datetime=(exact) title=(exact) { (ago(now_ms, at_ms)) } }
}

/// A page: the layout every page shares. `refresh` reloads it every so
/// many seconds (a live run, or a running job's page without script).
fn page(title: &str, refresh: Option<u32>, no_script_refresh: bool, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                @if let Some(secs) = refresh {
                    @if no_script_refresh {
                        noscript { meta http-equiv="refresh" content=(secs); }
                    } @else {
                        meta http-equiv="refresh" content=(secs);
                    }
                }
                title { (title) " · quire" }
                style { (PreEscaped(CSS.as_str())) }
            }
            body {
                header { nav { a href="/" { "runs" } a href="/repos" { "repositories" } } }
                main { (body) }
            }
        }
    }
    .into_string()
}

fn state(run: &Run) -> Markup {
    html! { span class={ "st " (run.state) } { (run.state_text()) } }
}

/// A job's state, `failed (allowed)` for a failure its pipeline allows.
fn job_state(job: &quire_store::Job) -> Markup {
    html! { span class={ "st " (job_state_class(job)) } { (job_state_text(job)) } }
}

/// A job's state in its page's header, which the page's script updates.
fn job_header_state(job: &quire_store::Job) -> Markup {
    html! { span #state class={ "st " (job_state_class(job)) } { (job_state_text(job)) } }
}

/// Run ids as the CLI shows them (`Store::short_ids`, what `quire-runs
/// list` prints): short, telling apart runs queued in the same minute, and
/// each finding its run again.
#[derive(Debug, Default)]
pub struct Ids(HashMap<String, String>);

impl Ids {
    pub fn read(store: &Store, ids: &[&str]) -> quire_store::Result<Ids> {
        let short = store.short_ids(ids)?;
        Ok(Ids(ids
            .iter()
            .map(|id| id.to_string())
            .zip(short)
            .collect()))
    }

    /// What the CLI shows of `id`; all of it when it was not read.
    pub fn short<'a>(&'a self, id: &'a str) -> &'a str {
        self.0.get(id).map_or(id, String::as_str)
    }
}

/// A command on one line, cut for a table; the whole command is its title.
fn command(cmd: &str) -> Markup {
    html! { code title=(shown(cmd)) { (cut(&flat(&shown(cmd)), 120)) } }
}

/// The run list: newest first, filtered, a page at a time.
pub fn list(
    now_ms: i64,
    ids: &Ids,
    filters: &Filters,
    runs: &[Run],
    older: Option<String>,
    stamp: &Stamp,
) -> String {
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/" {
            label { "repository" input name="repo" value=[filters.repo.as_deref()] size="16"; }
            label { "ref" input name="ref" value=[filters.ref_name.as_deref()] size="16"; }
            label { "state"
                select name="state" {
                    option value="" { "any" }
                    @for s in RunState::ALL {
                        option value=(s) selected[filters.states == [*s]] { (s) }
                    }
                }
            }
            button type="submit" { "filter" }
            @if filters.any() { a href="/" { "all runs" } }
        }
        div #fresh data-changes=(runs_events_url(stamp)) {
        @if runs.is_empty() {
            p.empty { @if filters.any() || filters.before.is_some() { "No runs match." } @else { "No runs yet." } }
        } @else {
            table.runs {
                thead { tr {
                    th { "run" } th { "repository" } th { "ref" } th.wide { "commit" }
                    th { "state" } th.wide { "duration" } th { "queued" } th { "subject" }
                } }
                tbody {
                    @for run in runs {
                        tr {
                            td { a href=(run_url(&run.id)) title=(run.id) { code { (ids.short(&run.id)) } } }
                            td { a href=(Filters::of_repo(&run.repo).url("/")) { (shown(&run.repo)) } }
                            td { a href=(Filters::of_ref(&run.repo, &run.ref_name).url("/")) { (shown(&short_ref(&run.ref_name))) } }
                            td.wide { code { (&run.sha[..run.sha.len().min(12)]) } }
                            td { (state(run)) }
                            td.wide { (run.duration_ms(now_ms).map(duration).unwrap_or_default()) }
                            td { (time(now_ms, run.queued_at_ms)) }
                            td.subj { @if let Some(subject) = &run.subject { (cut(&flat(&shown(subject)), 90)) } }
                        }
                    }
                }
            }
        }
        nav.pages {
            @if filters.before.is_some() {
                a href=(Filters { before: None, ..filters.clone() }.url("/")) { "« newest" }
            }
            @if let Some(older) = older { a href=(older) rel="next" { "older »" } }
        }
        }
        (fresh_script())
    };
    page("Runs", None, false, body)
}

/// What the run page shows beside the run's detail.
#[derive(Debug, Default)]
pub struct RunExtras {
    /// The jobs each job needs, when the pipeline file could be read.
    pub needs: Option<std::sync::Arc<timeline::Needs>>,
    /// Of each failed job, its failing step and that step's last lines.
    pub tails: HashMap<String, (i64, Vec<Line>)>,
}

/// The most lines of a failing step shown under its job.
pub const TAIL_LINES: usize = 50;

pub fn run(
    now_ms: i64,
    ids: &Ids,
    detail: &RunDetail,
    extras: &RunExtras,
    stamp: &Stamp,
) -> String {
    let run = &detail.run;
    let live = !run.state.is_terminal();
    let body = html! {
        div #fresh data-changes=[live.then(|| run_events_url(&run.id, stamp))] {
        h1 { "Run " code { (ids.short(&run.id)) } " " (state(run)) }
        @if let Some(subject) = &run.subject { p.subject { (shown(subject)) } }
        dl {
            dt { "run" } dd { code { (run.id) } }
            dt { "repository" } dd {
                a href=(Filters::of_repo(&run.repo).url("/")) { (shown(&run.repo)) }
                @if let Some(dir) = &run.git_dir { " " span.mut { "(" (shown(dir)) ")" } }
            }
            dt { "ref" } dd { a href=(Filters::of_ref(&run.repo, &run.ref_name).url("/")) { (shown(&run.ref_name)) } }
            dt { "commit" } dd { code { (run.sha) } }
            @if let Some(author) = &run.author { dt { "author" } dd { (shown(author)) } }
            @if let Some(event) = run.event { dt { "event" } dd { (event.to_string()) } }
            @if let Some(old) = &run.retry_of {
                dt { "retry of" } dd { a href=(run_url(old)) title=(old) { code { (ids.short(old)) } } }
            }
            dt { "state" } dd { (state(run)) }
            @if let Some(next) = &run.superseded_by {
                dt { "superseded by" } dd { a href=(run_url(next)) title=(next) { code { (ids.short(next)) } } }
            }
            @if let Some(kind) = run.failure_kind {
                dt { "meaning" } dd { (quire_view::describe::meaning(kind)) }
            }
            @if let Some(detail) = &run.failure_detail {
                dt { "detail" } dd { code { (shown(detail)) } }
            }
            dt { "pushed" } dd { (time(now_ms, run.pushed_at_ms)) }
            dt { "queued" } dd { (time(now_ms, run.queued_at_ms)) }
            @if let Some(at) = run.started_at_ms { dt { "started" } dd { (time(now_ms, at)) } }
            @if let Some(at) = run.finished_at_ms { dt { "finished" } dd { (time(now_ms, at)) } }
            @if let Some(ms) = run.duration_ms(now_ms) { dt { "duration" } dd { (duration(ms)) } }
            @if let Some(sandbox) = &run.sandbox { dt { "sandbox" } dd { (shown(sandbox)) } }
            @if let Some(containment) = run.containment {
                dt { "contained" } dd { (shown(&quire_view::describe::contained(containment, run.cgroup.as_deref()))) }
            }
            @if run.state == RunState::Active {
                @if let Some(worker) = &run.worker {
                    dt { "worker" } dd { "pid " (worker.pid) }
                }
            }
        }
        h2 { "Jobs" }
        @if detail.jobs.is_empty() {
            p.empty { "No jobs recorded" @if live { " yet" } "." }
        } @else {
            (timeline::timeline(now_ms, run, &detail.jobs, extras.needs.as_deref()))
            table.jobs {
                thead { tr { th { "job / step" } th { "state" } th { "duration" } th { "exit" } } }
                tbody {
                    @for job in &detail.jobs { (job_rows(now_ms, run, job, extras.tails.get(&job.job.id))) }
                }
            }
        }
        @if !detail.artifacts.is_empty() {
            h2 { "Artifacts" }
            table {
                thead { tr { th { "job" } th { "path" } th { "size" } th { "sha256" } } }
                tbody {
                    @for a in &detail.artifacts {
                        tr {
                            td { (shown(&a.job)) }
                            td { a href=(artifact_url(&run.id, a)) download { code { (shown(&a.path)) } } }
                            td { (human_bytes(a.size)) }
                            td { code.sha title=(a.sha256) { (&a.sha256[..a.sha256.len().min(16)]) "…" } }
                        }
                    }
                }
            }
            p.note { "Each path downloads its file, exactly as it was kept; " code { "quire-runs download " (run.id) } " fetches them all." }
        }
        @if !detail.notifications.is_empty() {
            h2 { "Notifications" }
            table {
                thead { tr { th { "#" } th { "command" } th { "state" } th.wide { "started" } } }
                tbody {
                    @for n in &detail.notifications {
                        tr {
                            td { (n.position) }
                            td {
                                code { (shown(&n.command.iter().map(|a| sh_word(a)).collect::<Vec<_>>().join(" "))) }
                                @if let Some(tail) = &n.stderr_tail { br; span.mut { (shown(tail)) } }
                            }
                            td {
                                span class={ "st " (notification_class(n.state)) } {
                                    (quire_view::describe::notification_outcome(n))
                                }
                            }
                            td.wide { (time(now_ms, n.started_at_ms)) }
                        }
                    }
                }
            }
        }
        @if live { p.note { "This page follows the run while it is live (without JavaScript, it reloads every 5 seconds)." } }
        }
        @if live { (fresh_script()) }
    };
    page(
        &format!("Run {}", ids.short(&run.id)),
        live.then_some(5),
        true,
        body,
    )
}

fn notification_class(state: NotificationState) -> &'static str {
    match state {
        NotificationState::Ok => "complete",
        NotificationState::Running => "active",
        NotificationState::Failed | NotificationState::TimedOut => "failed",
    }
}

fn span_of(start: Option<i64>, end: Option<i64>, running: bool, now_ms: i64) -> String {
    match (start, end) {
        (Some(start), Some(end)) => duration(end - start),
        (Some(start), None) if running => duration(now_ms - start),
        _ => String::new(),
    }
}

/// A job's duration; none for a job upstream quire left running, which
/// ended when quire took the store over, at no time upstream recorded.
fn job_span(run: &Run, j: &quire_store::Job, now_ms: i64) -> String {
    if run.upstream_unfinished.is_some() && j.state == JobState::Aborted {
        return String::new();
    }
    span_of(
        j.started_at_ms,
        j.finished_at_ms,
        j.state == JobState::Active,
        now_ms,
    )
}

fn job_rows(now_ms: i64, run: &Run, job: &JobDetail, tail: Option<&(i64, Vec<Line>)>) -> Markup {
    let j = &job.job;
    html! {
        tr.job {
            td { a href=(job_url(&run.id, &j.id)) { code { (shown(&j.id)) } } }
            td {
                (job_state(j))
                @if let Some(reason) = &j.skip_reason { " " span.mut { (shown(reason)) } }
                @if let (Some(why), JobState::Active) = (&j.waiting, j.state) { " " span.mut { (shown(why)) } }
            }
            td { (job_span(run, j, now_ms)) }
            td { (j.exit_code.map(|c| c.to_string()).unwrap_or_default()) }
        }
        @for step in &job.steps {
            tr.step {
                td { (step.seq) ". " (command(&step.cmd)) }
                td { @if step.exit_code.is_none() { span.st.active { "running" } } }
                td { (span_of(Some(step.started_at_ms), step.finished_at_ms, step.exit_code.is_none(), now_ms)) }
                td { (step.exit_code.map(|c| c.to_string()).unwrap_or_default()) }
            }
        }
        @if let Some((seq, lines)) = tail {
            tr.tail {
                td colspan="4" {
                    p.note { "The last " @if lines.len() >= TAIL_LINES { (TAIL_LINES) " " } "lines of step " (seq) " ("
                        a href={ (job_url(&run.id, &j.id)) "#step-" (seq) } { "its whole log" } "):" }
                    @if lines.is_empty() { p.note { "(no output)" } }
                    @else { pre.log.tail { @for l in lines { (line(l)) } } }
                }
            }
        }
    }
}

/// One log line: its spans, stderr marked.
pub fn line(line: &Line) -> Markup {
    let spans = ansi::spans(&line.text);
    html! {
        span class=(if line.err { "ln e" } else { "ln" }) {
            @for s in &spans {
                @if s.class.is_empty() { span { (s.text) } } @else { span class=(s.class) { (s.text) } }
            }
        }
        "\n"
    }
}

/// One line of a job's log, numbered `n` (its place in the job's log): its
/// element is `L<n>`, and a link to it carries the number, drawn by the
/// stylesheet (`content: attr(data-n)`) so that a selection of the log
/// copies none.
fn numbered_line(line: &Line, n: u64) -> Markup {
    let spans = ansi::spans(&line.text);
    html! {
        span class=(if line.err { "ln e" } else { "ln" }) id={ "L" (n) } {
            a.n href={ "#L" (n) } data-n=(n) {}
            @for s in &spans {
                @if s.class.is_empty() { span { (s.text) } } @else { span class=(s.class) { (s.text) } }
            }
        }
        "\n"
    }
}

/// The number of each step's first line in the job's log (its lines
/// counted from 1 across the steps, those a page does not show too), and
/// the next line's.
fn first_numbers(logs: &[StepLog]) -> (Vec<u64>, u64) {
    let mut next = 1;
    let mut firsts = Vec::with_capacity(logs.len());
    for log in logs {
        next += log.skipped_lines;
        firsts.push(next);
        next += log.lines.len() as u64;
    }
    (firsts, next)
}

/// Where a running job's page hands over to its event stream.
pub struct Handover {
    pub seq: i64,
    pub offset: u64,
}

/// A job's steps and their logs; followed live while the job runs.
pub fn job(
    now_ms: i64,
    ids: &Ids,
    detail: &RunDetail,
    job: &JobDetail,
    logs: &[StepLog],
    handover: Option<Handover>,
) -> String {
    let run = &detail.run;
    let j = &job.job;
    let (firsts, next) = first_numbers(logs);
    let body = html! {
        p.mut { a href=(run_url(&run.id)) { "← run " code { (ids.short(&run.id)) } } " · " (shown(&run.repo)) " · " (shown(&short_ref(&run.ref_name))) }
        h1 { "Job " code { (shown(&j.id)) } " " (job_header_state(j)) }
        dl {
            @if let Some(at) = j.started_at_ms { dt { "started" } dd { (time(now_ms, at)) } }
            @if let Some(at) = j.finished_at_ms { dt { "finished" } dd { (time(now_ms, at)) } }
            @let took = job_span(run, j, now_ms);
            @if !took.is_empty() || handover.is_some() { dt { "duration" } dd #duration { (took) } }
            @if let Some(code) = j.exit_code { dt { "exit" } dd { (code) } }
            @if let Some(reason) = &j.skip_reason { dt { "skipped" } dd { (shown(reason)) } }
            @if let (Some(why), JobState::Active) = (&j.waiting, j.state) { dt { "waiting" } dd { (shown(why)) } }
        }
        @if handover.is_some() {
            p #status .st.active { "running: " a href=(job_url(&run.id, &j.id)) { "reload" } " for new output" }
        }
        @if !job.steps.is_empty() {
            p.note { "Each line's number links to it; " a href=(log_url(&run.id, &j.id)) { "the whole log as text" } "." }
        }
        div #live data-events=[handover.as_ref().map(|h| events_url(&run.id, &j.id, h.seq, h.offset))] data-next=(next) {
            @if job.steps.is_empty() && handover.is_none() { p.empty { "No steps ran." } }
            @for ((step, log), first) in job.steps.iter().zip(logs).zip(firsts) {
                section.step id={ "step-" (step.seq) } {
                    h3 {
                        (step.seq) ". " code { (shown(&step.cmd)) } " "
                        span.mut id={ "exit-" (step.seq) } {
                            @if let Some(code) = step.exit_code { "exit " (code) }
                            @let took = span_of(Some(step.started_at_ms), step.finished_at_ms, step.exit_code.is_none(), now_ms);
                            @if !took.is_empty() { " · " (took) }
                        }
                    }
                    @if log.skipped > 0 {
                        p.note { "The first " (human_bytes(log.skipped)) " are not shown: "
                            code { "quire-runs logs " (run.id) " " (shown(&j.id)) " --step " (step.seq) } " prints them." }
                    }
                    @if log.lines.is_empty() && step.exit_code.is_some() {
                        p.note { "(no output)" }
                    } @else {
                        pre.log id={ "log-" (step.seq) } {
                            @for (n, l) in (first..).zip(&log.lines) { (numbered_line(l, n)) }
                        }
                    }
                }
            }
        }
        @if handover.is_some() { script { (PreEscaped(SCRIPT)) } }
    };
    page(
        &format!("{} · run {}", shown(&j.id), ids.short(&run.id)),
        handover.as_ref().map(|_| 5),
        true,
        body,
    )
}

/// The repositories, with the newest run of each branch.
/// A repository as its page shows it.
pub struct RepoView {
    pub repo: Repository,
    /// The newest run of each branch, by branch name.
    pub branches: Vec<Run>,
    /// Its newest runs, newest first.
    pub recent: Vec<Run>,
    /// Of each branch, its newest runs, newest first.
    pub trends: Vec<Vec<Run>>,
}

pub fn repos(now_ms: i64, ids: &Ids, repos: &[RepoView], per_repo: usize, stamp: &Stamp) -> String {
    let body = html! {
        h1 { "Repositories" }
        div #fresh data-changes=(runs_events_url(stamp)) {
        @if repos.is_empty() { p.empty { "No repositories yet." } }
        @for RepoView { repo, branches, recent, trends } in repos {
            section.repo {
                h2 { a href=(Filters::of_repo(&repo.name).url("/")) { (shown(&repo.name)) } }
                p.mut {
                    @match &repo.git_dir { Some(dir) => code { (shown(dir)) }, None => "known by name only" }
                    @if !repo.former_names.is_empty() {
                        " · formerly " (shown(&repo.former_names.join(", ")))
                    }
                }
                @if !recent.is_empty() {
                    figure.trend {
                        (timeline::trend(now_ms, recent))
                        figcaption.note { "Its last " (recent.len()) " runs, oldest first: each as tall as it took, coloured by how it ended; each a link to its run." }
                    }
                }
                @if branches.is_empty() {
                    p.empty { "No branch has run yet." }
                } @else {
                    table {
                        thead { tr { th { "branch" } th { "newest run" } th { "state" } th.wide { "queued" } th { "recent runs" } th { "badge" } } }
                        tbody {
                            @for (run, trend) in branches.iter().zip(trends) {
                                @let branch = RefName::new(run.ref_name.as_str());
                                @let branch = branch.short();
                                tr {
                                    td { a href=(Filters::of_ref(&repo.name, &run.ref_name).url("/")) { (shown(branch)) } }
                                    td { a href=(run_url(&run.id)) title=(run.id) { code { (ids.short(&run.id)) } } }
                                    td { (state(run)) }
                                    td.wide { (time(now_ms, run.queued_at_ms)) }
                                    td { (timeline::trend(now_ms, trend)) }
                                    td { a href=(badge_url(&repo.name, branch)) { "svg" } }
                                }
                            }
                        }
                    }
                    @if branches.len() >= per_repo {
                        p.note { "The first " (per_repo) " branches by name; " a href=(Filters::of_repo(&repo.name).url("/")) { "its runs" } " list them all." }
                    }
                }
            }
        }
        }
        (fresh_script())
    };
    page("Repositories", None, false, body)
}

/// A page that says what went wrong (not found, a bad filter).
pub fn message(title: &str, text: &str) -> String {
    let body = html! {
        h1 { (title) }
        p { (shown(text)) }
        p { a href="/" { "All runs" } }
    };
    page(title, None, false, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_words() {
        let now = 1_000_000_000_000;
        assert_eq!(ago(now, now - 2_000), "just now");
        assert_eq!(ago(now, now - 42_000), "42 seconds ago");
        assert_eq!(ago(now, now - 60_000), "1 minute ago");
        assert_eq!(ago(now, now - 3 * 3_600_000), "3 hours ago");
        assert_eq!(ago(now, now - 86_400_000), "1 day ago");
        assert_eq!(ago(now, now - 90 * 86_400_000), "3 months ago");
        assert_eq!(ago(now, now + 5_000), "just now");
    }

    #[test]
    fn urls_encode_every_segment_and_value() {
        assert_eq!(
            badge_url("team/app.git", "feat/<x>&\"y\""),
            "/badge/team/app.git/feat/%3Cx%3E%26%22y%22.svg"
        );
        assert_eq!(job_url("r1", "a b"), "/runs/r1/jobs/a%20b");
        let filters = Filters {
            repo: Some("a&b".into()),
            ref_name: Some("x y".into()),
            states: vec![RunState::Failed, RunState::Active],
            before: Some("r9".into()),
            limit: None,
        };
        assert_eq!(
            filters.url("/"),
            "/?repo=a%26b&ref=x+y&state=failed&state=active&before=r9"
        );
        assert_eq!(Filters::default().url("/api/runs"), "/api/runs");
    }

    #[test]
    fn a_hostile_line_is_text() {
        let html = line(&Line {
            err: true,
            text: b"\x1b[31m<script>alert(1)</script>\x1b[0m & \"x\"".to_vec(),
            end: 0,
        })
        .into_string();
        assert_eq!(
            html,
            "<span class=\"ln e\"><span class=\"f1\">&lt;script&gt;alert(1)&lt;/script&gt;</span><span> &amp; &quot;x&quot;</span></span>\n"
        );
    }
}
