//! What the pages of `quire-runs serve` show of a run beyond its table: its
//! timeline, a failed job's last lines, downloads of its artifacts, a job
//! page that follows its job to the end, and pages that fit a phone; in a
//! real headless Chromium where the browser's view matters (tests/cdp.rs).

use serde_json::Value;

use crate::cdp::Browser;
use crate::web::{Server, request};
use quire_testkit::{Env, Gate, wait_until};

use crate::artifacts::sha256;
use crate::cdp::required_chromium as chromium;

/// Three jobs at once, and one that needs all three.
const FAN_IN: &str = r#"
[jobs.one]
inputs = ["quire/push"]
sh = "sleep 0.3"

[jobs.two]
inputs = ["quire/push"]
sh = "sleep 2.5"

[jobs.three]
inputs = ["quire/push"]
sh = "sleep 0.3"

[jobs.join]
inputs = ["one", "two", "three"]
sh = "echo joined"
"#;

#[test]
fn a_runs_timeline_draws_parallel_jobs_overlapping_and_the_joining_one_after() {
    let Some(chromium) = chromium() else { return };
    let env = Env::new();
    env.config("max_parallel_jobs = 4\n");
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(FAN_IN);
    assert_eq!(run.state, quire_store::RunState::Complete, "{run:?}");
    let server = Server::start(&env);
    let mut browser = Browser::launch(&chromium);
    browser.open(&server.url(&format!("/runs/{}", run.id)));
    let bars = browser.eval(
        "[...document.querySelectorAll('svg.tl-bars rect')].map(r => ({
            job: r.getAttribute('data-job'),
            x: +r.getAttribute('data-x'),
            w: +r.getAttribute('data-w'),
            crit: r.classList.contains('crit'),
            title: r.querySelector('title').textContent,
        }))",
    );
    let bars = bars.as_array().expect("an array of bars");
    assert_eq!(bars.len(), 4, "{bars:?}");
    let bar = |job: &str| -> &Value { bars.iter().find(|b| b["job"] == job).unwrap() };
    // In tenths of a unit, as drawn: whole numbers, no float's error.
    let span = |job: &str| {
        let b = bar(job);
        let x = (b["x"].as_f64().unwrap() * 10.0).round();
        (x, x + (b["w"].as_f64().unwrap() * 10.0).round())
    };
    let parallel = [span("one"), span("two"), span("three")];
    let latest_start = parallel.iter().map(|s| s.0).fold(f64::MIN, f64::max);
    let earliest_end = parallel.iter().map(|s| s.1).fold(f64::MAX, f64::min);
    assert!(
        latest_start < earliest_end,
        "the three run at once: {bars:?}"
    );
    let last_end = parallel.iter().map(|s| s.1).fold(f64::MIN, f64::max);
    let join = span("join");
    assert!(join.0 >= last_end, "join starts after all three: {bars:?}");
    assert!(join.1 <= 10000.0 && parallel.iter().all(|s| s.0 >= 0.0));
    // The critical path: join, and the one of the three it waited for
    // longest (two sleeps longest).
    assert_eq!(bar("join")["crit"], true, "{bars:?}");
    assert_eq!(bar("two")["crit"], true, "{bars:?}");
    assert_eq!(bar("one")["crit"], false, "{bars:?}");
    assert!(
        bar("join")["title"]
            .as_str()
            .unwrap()
            .starts_with("join: complete, "),
        "{bars:?}"
    );
    let text = browser.text();
    assert!(text.contains("Outlined, the critical path"), "{text}");
    // The axis's marks: 0 s, then whole seconds (the run takes a little
    // over 2.5 s), evenly spaced on the bars' scale.
    let marks = browser.eval(
        "[...document.querySelectorAll('svg.tl-axis text')].map(t => ({
            text: t.textContent, ms: +t.getAttribute('data-ms'), x: +t.getAttribute('data-x'),
        }))",
    );
    let marks = marks.as_array().expect("an array of marks");
    assert!(marks.len() >= 3, "{marks:?}");
    let step = marks[1]["x"].as_f64().unwrap();
    for (n, mark) in marks.iter().enumerate() {
        assert_eq!(mark["text"], format!("{n} s"), "{marks:?}");
        assert_eq!(mark["ms"], n as u64 * 1000, "{marks:?}");
        let x = mark["x"].as_f64().unwrap();
        assert!(
            (x - n as f64 * step).abs() <= 0.2,
            "evenly spaced: {marks:?}"
        );
    }
    // Two slept 2.5 s from about the start: the 2 s mark falls inside its bar.
    let two = span("two");
    let at_two = marks[2]["x"].as_f64().unwrap() * 10.0;
    assert!(two.0 < at_two && at_two < two.1, "{marks:?} {bars:?}");
    let lines = browser.eval("document.querySelectorAll('svg.tl-bars line.tick').length");
    assert_eq!(lines, marks.len(), "a line at each mark");
}

#[test]
fn a_failed_runs_page_shows_the_failing_lines_without_a_click() {
    let Some(chromium) = chromium() else { return };
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    // The printed line is not in the command: printf makes it.
    let run = repo.push_and_wait(
        r#"
[jobs.build]
inputs = ["quire/push"]
sh = ["echo fine", "printf 'the %s it broke: \\033[31m<b>red</b>\\033[0m\\n' reason; exit 3"]

[jobs.lint]
inputs = ["quire/push"]
allow_failure = true
sh = "printf 'the lint %s\\n' objected; exit 1"
"#,
    );
    assert_eq!(run.state, quire_store::RunState::Failed, "{run:?}");
    let server = Server::start(&env);
    let page = server.page(&format!("/runs/{}", run.id));
    assert_eq!(page.matches("<pre class=\"log tail\"").count(), 1, "{page}");
    assert!(
        !page.contains("the lint objected"),
        "no lines of a failure that is allowed: {page}"
    );
    assert!(
        page.contains("<span class=\"f1\">&lt;b&gt;red&lt;/b&gt;</span>"),
        "escaped, coloured: {page}"
    );
    assert!(page.contains(">failed (allowed)<"), "{page}");
    let mut browser = Browser::launch(&chromium);
    browser.open(&server.url(&format!("/runs/{}", run.id)));
    let tail = browser
        .eval("[...document.querySelectorAll('pre.tail')].map(p => p.innerText).join('\\n---\\n')");
    let tail = tail.as_str().unwrap();
    assert!(tail.contains("the reason it broke: <b>red</b>"), "{tail}");
    assert!(!tail.contains("fine"), "only the failing step: {tail}");
    let text = browser.text();
    assert!(text.contains("failed (allowed)"), "{text}");
}

#[test]
fn artifacts_download_as_kept_and_no_path_leads_out_of_their_place() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        r#"
[jobs.build]
inputs = ["quire/push"]
artifacts = ["out/"]
sh = [
  "mkdir -p out/deep && printf 'tarball bytes\\n' > out/deep/app.tar.gz",
  "f=$(printf 'out/we\"ird\\\\name\\nx.txt'); printf 'odd\\n' > \"$f\"",
]
"#,
    );
    assert_eq!(run.state, quire_store::RunState::Complete, "{run:?}");
    let server = Server::start(&env);
    let page = server.page(&format!("/runs/{}", run.id));
    let link = format!("/runs/{}/artifacts/build/out/deep/app.tar.gz", run.id);
    assert!(page.contains(&format!("href=\"{link}\"")), "{page}");
    let reply = server.get(&link);
    assert_eq!(reply.status, 200);
    assert_eq!(sha256(reply.body.as_bytes()), sha256(b"tarball bytes\n"));
    assert_eq!(
        reply.header("content-disposition"),
        Some("attachment; filename=\"app.tar.gz\"; filename*=UTF-8''app%2Etar%2Egz")
    );
    assert_eq!(reply.header("content-length"), Some("14"));
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );

    // A name with a quote, a backslash and a newline: its link is
    // encoded, its header one line with them replaced.
    let odd = format!(
        "/runs/{}/artifacts/build/out/we%22ird%5Cname%0Ax.txt",
        run.id
    );
    assert!(page.contains(&format!("href=\"{odd}\"")), "{page}");
    let reply = server.get(&odd);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "odd\n");
    assert_eq!(
        reply.header("content-disposition"),
        Some(
            "attachment; filename=\"we_ird_name_x.txt\"; filename*=UTF-8''we%22ird%5Cname%0Ax%2Etxt"
        )
    );

    // Paths that climb out: whatever the URL says, only recorded names
    // are looked up.
    let store = env.store();
    for path in [
        "build/../../../quire.db",
        "build/%2E%2E/%2E%2E/%2E%2E/quire.db",
        "build/out/%2E%2E/%2E%2E/%2E%2E/%2E%2E/quire.db",
        "..%2F..%2F..%2Fquire.db",
        "build",
        "build/",
    ] {
        let reply = request(
            &server.addr,
            "GET",
            &format!("/runs/{}/artifacts/{path}", run.id),
            &[],
        );
        assert!(
            reply.status == 404 || reply.status == 400,
            "{path}: {} {}",
            reply.status,
            reply.body
        );
    }
    // A record that itself leads out, and a link planted in the
    // artifacts' place that leads out: neither is followed.
    let kept = env.home().run_dir(&run.id).unwrap().join("artifacts/build");
    std::os::unix::fs::symlink(env.home().dir().join("quire.db"), kept.join("planted")).unwrap();
    store
        .connection()
        .execute_batch(&format!(
            "INSERT INTO artifacts (run_id, job_id, path, size, sha256) VALUES
               ('{id}', 'build', '../../../quire.db', 1, '{zero}'),
               ('{id}', 'build', 'planted', 1, '{zero}');",
            id = run.id,
            zero = "0".repeat(64)
        ))
        .unwrap();
    for path in ["build/..%2F..%2F..%2Fquire.db", "build/planted"] {
        let reply = server.get(&format!("/runs/{}/artifacts/{path}", run.id));
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
    }
}

/// A job page open in Chromium while its job `live` (steps `steps`, the
/// gate's step where `GATE` stands) waits at the gate, once the page shows
/// `shown`; none without Chromium.
struct Live {
    _env: Env,
    _server: Server,
    gate: Gate,
    browser: Browser,
}

fn live_job_page(steps: &str, shown: &str) -> Option<Live> {
    let chromium = chromium()?;
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    let steps = steps.replace("GATE", &format!("{:?}", gate.step("g")));
    let id = repo.push_pipeline(&format!(
        "[jobs.live]\ninputs = [\"quire/push\"]\nsh = [{steps}]\n"
    ));
    gate.wait_ready("g");
    let server = Server::start(&env);
    let mut browser = Browser::launch(&chromium);
    browser.open(&server.url(&format!("/runs/{id}/jobs/live")));
    browser.wait_for_text(shown);
    Some(Live {
        _env: env,
        _server: server,
        gate,
        browser,
    })
}

#[test]
fn a_job_page_opened_while_its_job_runs_reaches_complete_without_a_reload() {
    let Some(mut live) = live_job_page("\"echo started\", GATE", "started") else {
        return;
    };
    let Live { gate, browser, .. } = &mut live;
    let state = "document.querySelector('h1 .st').textContent";
    assert_eq!(browser.eval(state), "active");
    browser.eval("window.quireMarker = 7");
    gate.open();
    wait_until("the header to say complete", || {
        browser.eval(state) == "complete"
    });
    let duration = browser.eval("document.getElementById('duration').textContent");
    assert!(
        duration.as_str().is_some_and(|d| !d.is_empty()),
        "{duration}"
    );
    assert_eq!(browser.eval("window.quireMarker"), 7, "not reloaded");
}

#[test]
fn the_runs_list_shows_a_new_run_and_its_end_without_a_reload() {
    let Some(chromium) = chromium() else { return };
    let env = Env::new();
    let app = env.repo_with_hook("app");
    let other = env.repo_with_hook("other");
    let server = Server::start(&env);
    let mut browser = Browser::launch(&chromium);
    // Filtered: what it swaps in keeps the filter.
    browser.open(&server.url("/?repo=app"));
    browser.wait_for_text("No runs match.");
    browser.eval("window.quireMarker = 7");
    let elsewhere = other.push_and_wait("[jobs.x]\ninputs = [\"quire/push\"]\nsh = \"true\"\n");
    let gate = Gate::new(&env);
    let id = app.push_pipeline(&format!(
        "[jobs.live]\ninputs = [\"quire/push\"]\nsh = {:?}\n",
        gate.step("g")
    ));
    let state = format!(
        "(() => {{ const a = document.querySelector('a[title=\"{id}\"]');
            return a && a.closest('tr').querySelector('.st').textContent; }})()"
    );
    gate.wait_ready("g");
    wait_until("the new run's row, active", || {
        browser.eval(&state) == "active"
    });
    gate.open();
    wait_until("its state to say complete", || {
        browser.eval(&state) == "complete"
    });
    let shown = browser.eval(&format!(
        "document.querySelector('a[title=\"{}\"]') === null",
        elsewhere.id
    ));
    assert_eq!(shown, true, "another repository's run is filtered out");
    assert_eq!(browser.eval("window.quireMarker"), 7, "not reloaded");
    assert_eq!(
        browser.eval("new URLSearchParams(location.search).get('repo')"),
        "app"
    );
}

#[test]
fn a_run_page_opened_while_its_run_is_active_follows_it_to_the_end() {
    let Some(chromium) = chromium() else { return };
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    let id = repo.push_pipeline(&format!(
        "[jobs.wait]\ninputs = [\"quire/push\"]\nsh = {:?}\n\n\
         [jobs.after]\ninputs = [\"wait\"]\nsh = \"echo after\"\n",
        gate.step("g")
    ));
    gate.wait_ready("g");
    let server = Server::start(&env);
    let mut browser = Browser::launch(&chromium);
    browser.open(&server.url(&format!("/runs/{id}")));
    let seen = "(() => ({
        run: document.querySelector('h1 .st').textContent,
        jobs: [...document.querySelectorAll('tr.job')].map(r =>
            r.querySelector('code').textContent + ' ' + r.querySelector('.st').textContent),
        bars: [...document.querySelectorAll('svg.tl-bars rect')].map(r => r.getAttribute('data-job')),
        duration: [...document.querySelectorAll('dt')].some(d => d.textContent === 'duration'),
    }))()";
    let before = browser.eval(seen);
    assert_eq!(before["run"], "active", "{before}");
    assert_eq!(
        before["jobs"],
        serde_json::json!(["wait active", "after pending"]),
        "{before}"
    );
    assert_eq!(before["bars"], serde_json::json!(["wait"]), "{before}");
    browser.eval("window.quireMarker = 7");
    gate.open();
    wait_until("the run's header to say complete", || {
        browser.eval("document.querySelector('h1 .st').textContent") == "complete"
    });
    let after = browser.eval(seen);
    assert_eq!(
        after["jobs"],
        serde_json::json!(["wait complete", "after complete"]),
        "{after}"
    );
    assert_eq!(
        after["bars"],
        serde_json::json!(["wait", "after"]),
        "{after}"
    );
    assert_eq!(after["duration"], true, "{after}");
    assert_eq!(browser.eval("window.quireMarker"), 7, "not reloaded");
}

#[test]
fn a_job_pages_line_anchor_highlights_its_line_and_numbers_copy_not() {
    let Some(chromium) = chromium() else { return };
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        "[jobs.build]\ninputs = [\"quire/push\"]\nsh = [\"echo one; echo two\", \"echo three; echo four\"]\n",
    );
    assert_eq!(run.state, quire_store::RunState::Complete, "{run:?}");
    let server = Server::start(&env);
    let mut browser = Browser::launch(&chromium);
    browser.open(&server.url(&format!("/runs/{}/jobs/build#L3", run.id)));
    // Numbered across the steps: the third line is the second step's first.
    let line = browser.eval(
        "(() => { const l = document.getElementById('L3'); return {
            text: l.textContent,
            step: l.closest('pre').id,
            target: l.matches(':target'),
            other: document.getElementById('L2').matches(':target'),
            lit: getComputedStyle(l).backgroundColor,
            plain: getComputedStyle(document.getElementById('L4')).backgroundColor,
            href: l.querySelector('a.n').getAttribute('href'),
            drawn: getComputedStyle(l.querySelector('a.n'), '::before').content,
        }; })()",
    );
    assert_eq!(line["text"], "three", "{line}");
    assert_eq!(line["step"], "log-2", "{line}");
    assert_eq!(line["target"], true, "{line}");
    assert_eq!(line["other"], false, "{line}");
    assert_ne!(line["lit"], line["plain"], "highlighted: {line}");
    assert_eq!(line["href"], "#L3", "{line}");
    assert_eq!(line["drawn"], "\"3\"", "{line}");
    // What a reader selecting a step's log copies: its text, no number.
    let copied = browser.eval(
        "['log-1', 'log-2'].map(id => { const s = getSelection();
            s.selectAllChildren(document.getElementById(id)); return s.toString(); })",
    );
    assert_eq!(copied, serde_json::json!(["one\ntwo", "three\nfour"]));
}

#[test]
fn a_line_appended_live_gets_the_next_number() {
    let Some(mut live) = live_job_page("\"echo one; echo two\", GATE, \"echo three\"", "two")
    else {
        return;
    };
    let Live { gate, browser, .. } = &mut live;
    assert_eq!(browser.eval("document.getElementById('L3') === null"), true);
    gate.open();
    let third = "(() => { const l = document.getElementById('L3');
        return l && [l.textContent, l.querySelector('a.n').getAttribute('data-n'),
            l.querySelector('a.n').getAttribute('href')]; })()";
    wait_until("the live line numbered 3", || {
        browser.eval(third) != Value::Null
    });
    assert_eq!(
        browser.eval(third),
        serde_json::json!(["three", "3", "#L3"])
    );
}

/// A run with something of everything a page shows: parallel jobs, one
/// that needs them and fails, kept artifacts, long unbroken words; long
/// enough (over 2 s) for its timeline to have marks.
const EVERYTHING: &str = r#"
[jobs.compile]
inputs = ["quire/push"]
artifacts = ["dist/"]
sh = ["mkdir -p dist && printf 'bytes\\n' > dist/app-with-a-rather-long-name-0123456789abcdef.tar.gz", "sleep 2.4"]

[jobs.lint-everything-with-a-long-job-name]
inputs = ["quire/push"]
sh = "sleep 1.4; echo linted"

[jobs.docs]
inputs = ["quire/push"]
allow_failure = true
sh = "sleep 0.8; exit 1"

[jobs.test]
inputs = ["compile", "lint-everything-with-a-long-job-name"]
sh = [
  "echo running 212 tests",
  "printf 'test parser::%s ... \\033[31mFAILED\\033[0m\\n' header_with_a_very_long_name_that_does_not_break_0123456789abcdef0123456789; printf 'error: 1 test failed\\n' >&2; exit 3",
]
"#;

#[test]
fn every_page_fits_a_phones_width() {
    let Some(chromium) = chromium() else { return };
    let env = Env::new();
    env.config("max_parallel_jobs = 4\n");
    let repo = env.repo_with_hook("app");
    // Earlier runs, for the trends.
    for step in ["sleep 0.2", "sleep 0.4", "exit 1", "sleep 0.3"] {
        repo.push_and_wait(&format!(
            "[jobs.quick]\ninputs = [\"quire/push\"]\nsh = {step:?}\n"
        ));
    }
    repo.commit(
        &[(".quire/ci.toml", EVERYTHING)],
        "Parse headers longer than a line, and say so in the changelog",
    );
    let id = repo.push_refs(&["main"]).remove(0);
    let run = env.wait_terminal(&id);
    assert_eq!(run.state, quire_store::RunState::Failed, "{run:?}");
    let server = Server::start(&env);
    let pages = [
        ("run", format!("/runs/{id}")),
        ("job", format!("/runs/{id}/jobs/test")),
        ("list", "/".to_string()),
        ("repos", "/repos".to_string()),
    ];
    let mut browser = Browser::launch(&chromium);
    browser.open("about:blank");
    browser.viewport(390, 800, true);
    for (_, path) in &pages {
        browser.goto(&server.url(path));
        let width = browser.eval("document.documentElement.scrollWidth");
        assert!(width.as_f64().unwrap() <= 390.0, "{path}: {width}");
        let wider = browser.eval(
            "[...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > 390.5)
                .map(e => e.tagName + '.' + e.getAttribute('class') + ' ' + Math.round(e.getBoundingClientRect().right))",
        );
        assert_eq!(wider, serde_json::json!([]), "{path}: wider than 390 px");
    }
    // `QUIRE_SCREENSHOTS=DIR` keeps pictures of the run and repositories
    // pages at both widths (docs/WEB.md's).
    if let Some(dir) = std::env::var_os("QUIRE_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        for (width, mobile) in [(1280, false), (390, true)] {
            browser.viewport(width, 800, mobile);
            for (name, path) in &pages[..] {
                if *name == "run" || *name == "repos" {
                    browser.goto(&server.url(path));
                    let png = browser.screenshot();
                    std::fs::write(dir.join(format!("web-{name}-{width}.png")), png).unwrap();
                }
            }
        }
    }
}

/// A step's log longer than a page shows: the job page shows its end,
/// each line numbered as its place in the whole log (the lines before
/// counted); the run page's failing lines are its last ones.
#[test]
fn a_long_logs_lines_keep_their_numbers_and_its_tail_is_its_end() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        "[jobs.long]\ninputs = [\"quire/push\"]\nsh = \"seq 1 200000; echo the-last-line; exit 3\"\n",
    );
    assert_eq!(run.state, quire_store::RunState::Failed, "{run:?}");
    let server = Server::start(&env);
    // Every line of the job's log, as `quire-runs logs` prints them under
    // the step's head line.
    let raw = server.get(&format!("/runs/{}/jobs/long/log", run.id)).body;
    let total = raw.lines().skip(1).count();
    assert!(total > 200_000, "{total}");
    let last = |page: &str| {
        let line = format!(
            "id=\"L{total}\"><a class=\"n\" href=\"#L{total}\" data-n=\"{total}\"></a><span>the-last-line</span>"
        );
        page.contains(&line)
    };
    let page = server.page(&format!("/runs/{}/jobs/long", run.id));
    assert!(last(&page), "no L{total} holding the last line");
    // Shown again: the count kept, the same numbers.
    assert!(last(&server.page(&format!("/runs/{}/jobs/long", run.id))));
    // Its first lines are not on the page.
    assert!(!page.contains("id=\"L1\""));
    // The run page's failing lines: the log's last, read from its end.
    let run_page = server.page(&format!("/runs/{}", run.id));
    assert!(run_page.contains("<span>199999</span>"), "{run_page}");
    assert!(
        run_page.contains("<span>the-last-line</span>"),
        "{run_page}"
    );
    // Exactly the last 50: 199952..=200000 (the step's own 49 lines
    // before the-last-line), and not one more.
    assert!(run_page.contains("<span>199952</span>"), "{run_page}");
    assert!(
        !run_page.contains("<span>199951</span>"),
        "at most 50 lines"
    );
}
