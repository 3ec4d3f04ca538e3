//! `quire-runs serve`: the built binary against stores made by real pushes,
//! fetched over real sockets (a small HTTP/1.1 client below), and a running
//! job followed in a real headless Chromium (tests/cdp.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cdp::Browser;
use quire_testkit::{Env, Gate, git, gone_within, populate, wait_until};

/// A running `quire-runs serve --listen 127.0.0.1:0`, killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub(crate) fn start(env: &Env) -> Server {
        Server::start_with(env, &[])
    }

    pub(crate) fn start_with(env: &Env, vars: &[(&str, &str)]) -> Server {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("quire-runs"))
            .env_remove("QUIRE_HOME")
            .envs(vars.iter().copied())
            .arg("--home")
            .arg(env.home().dir())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .trim()
            .strip_prefix("quire-runs serve: listening on http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("the first line names the address: {first:?}"))
            .to_string();
        Server { child, addr, log }
    }

    /// What it logged on stderr so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn get(&self, path: &str) -> Reply {
        request(&self.addr, "GET", path, &[])
    }

    /// GET that must answer 200; the body.
    pub(crate) fn page(&self, path: &str) -> String {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        reply.body
    }

    fn json(&self, path: &str) -> Value {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        serde_json::from_str(&reply.body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on its own connection, read to the end.
pub(crate) fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body: String::from_utf8(body).expect("a UTF-8 body"),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

/// The pipeline of the tests: two jobs, the second after the first.
const PIPELINE: &str = r#"
[jobs.build]
inputs = ["quire/push"]
separate_stderr = true
sh = ["echo compiling", "echo built >&2"]

[jobs.test]
inputs = ["build"]
sh = "echo all tests passed"
"#;

fn assert_security_headers(reply: &Reply) {
    let csp = reply.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
}

#[test]
fn the_pages_show_a_pushed_run_its_jobs_their_logs_and_the_repositories() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(PIPELINE);
    assert_eq!(run.state, quire_store::RunState::Complete);
    let server = Server::start(&env);

    let list = server.get("/");
    assert_eq!(list.status, 200);
    assert_eq!(
        list.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_security_headers(&list);
    assert!(list.body.contains("name=\"viewport\""));
    assert!(list.body.contains(&format!("href=\"/runs/{}\"", run.id)));
    assert!(list.body.contains(">app.git</a>") && list.body.contains(">main</a>"));
    assert!(list.body.contains("<time datetime=\""), "relative times");
    assert!(list.body.contains(" ago</time>") || list.body.contains("just now</time>"));

    let page = server.page(&format!("/runs/{}", run.id));
    for text in [
        run.id.as_str(),
        run.sha.as_str(),
        "refs/heads/main",
        ">complete<",
        "href=\"/runs/",
        "/jobs/build\"",
        "/jobs/test\"",
        "echo compiling",
        "echo all tests passed",
    ] {
        assert!(page.contains(text), "the run page shows {text:?}:\n{page}");
    }
    // A short id finds the run too.
    assert!(
        server
            .page(&format!("/runs/{}", &run.id[..13]))
            .contains(&run.id)
    );

    let job = server.page(&format!("/runs/{}/jobs/build", run.id));
    assert!(
        job.contains(
            "<span class=\"ln\" id=\"L1\"><a class=\"n\" href=\"#L1\" data-n=\"1\"></a><span>compiling</span></span>"
        ),
        "{job}"
    );
    assert!(
        job.contains(
            "<span class=\"ln e\" id=\"L2\"><a class=\"n\" href=\"#L2\" data-n=\"2\"></a><span>built</span></span>"
        ),
        "stderr marked, numbered across the steps: {job}"
    );
    assert!(job.contains("exit 0"), "{job}");
    assert!(
        !job.contains("<script>"),
        "no script on a finished job's page"
    );
    assert!(!job.contains("http-equiv=\"refresh\""), "{job}");

    let repos = server.page("/repos");
    assert!(repos.contains(">app.git</a>"), "{repos}");
    assert!(
        repos.contains(&format!("href=\"/runs/{}\"", run.id)),
        "{repos}"
    );
    assert!(
        repos.contains("href=\"/badge/app.git/main.svg\""),
        "{repos}"
    );

    // The server writes a request's line once it answered it, on its own
    // time: wait for the last one.
    quire_testkit::wait_until("the request log's lines", || {
        server.log().contains("GET /repos 200 ")
    });
    let log = server.log();
    assert!(log.contains("GET / 200 "), "{log}");
    assert!(
        log.contains(&format!("GET /runs/{}/jobs/build 200 ", run.id)),
        "{log}"
    );
    assert!(log.lines().all(|l| l.ends_with("ms")), "{log}");
}

#[test]
fn a_jobs_raw_log_is_plain_text_with_no_control_byte_raw() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        r#"
[jobs.build]
inputs = ["quire/push"]
sh = [
  '''printf 'a\033[1;31mred\033[0m \033]0;title\007 del\177 cr\rX c1\302\233 bidi\342\200\256z\ttab\n'''',
  "echo second >&2; printf 'no newline'",
]
"#,
    );
    assert_eq!(run.state, quire_store::RunState::Complete, "{run:?}");
    let server = Server::start(&env);
    let path = format!("/runs/{}/jobs/build/log", run.id);
    let reply = server.get(&path);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_security_headers(&reply);
    let body = &reply.body;
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 5, "{body}");
    assert!(lines[0].starts_with("==> build step 1: printf "), "{body}");
    assert_eq!(
        lines[1], "ared \\x1b]0;title\\x07 del\\x7f cr\\x0dX c1\\u{9b} bidi\\u{202e}z\ttab",
        "colours left out, every other control escaped: {body}"
    );
    assert_eq!(
        lines[2],
        "==> build step 2: echo second >&2; printf 'no newline' <=="
    );
    assert_eq!(lines[3], "second");
    assert_eq!(lines[4], "no newline");
    assert!(body.ends_with("no newline\n"), "{body:?}");
    let raw_control = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || ('\u{202a}'..='\u{202e}').contains(&c)
    };
    assert!(!body.chars().any(raw_control), "{body:?}");
    // The job page links to it.
    let page = server.page(&format!("/runs/{}/jobs/build", run.id));
    assert!(page.contains(&format!("href=\"{path}\"")), "{page}");

    for missing in [
        format!("/runs/{}/jobs/nope/log", run.id),
        "/runs/00000000000000000000000000/jobs/build/log".to_string(),
    ] {
        let reply = server.get(&missing);
        assert_eq!(reply.status, 404, "{missing}: {}", reply.body);
    }
}

#[test]
fn hostile_output_refs_and_details_are_escaped() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        r#"
[jobs.build]
inputs = ["quire/push"]
sh = [
  'printf "\033[1;31m<script>alert(1)</script>\033[0m and \033[32mgreen\033[0m\n"',
  'echo "<img src=x onerror=alert(2)>" >&2; printf "bell\007 esc\033]0;title\007 done\n"',
  'printf "secret was leaked\rall is well\n"',
]
"#,
    );
    // A branch named with markup, whose pipeline is invalid: its detail
    // quotes the job id, markup too.
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs."<i>x</i>"]
inputs = ["quire/push"]
sh = "true"
"#,
        )],
        "hostile",
    );
    let hostile_ref = "x<y>&\"z\"";
    let (pushed, _) = repo.push(&["origin", &format!("HEAD:refs/heads/{hostile_ref}")]);
    assert!(pushed);
    let bad = env
        .all_runs()
        .into_iter()
        .find(|r| r.ref_name == format!("refs/heads/{hostile_ref}"))
        .expect("the push recorded a run");
    assert!(bad.failure_detail.as_deref().unwrap().contains("<i>x</i>"));
    let server = Server::start(&env);

    let job = server.page(&format!("/runs/{}/jobs/build", run.id));
    assert!(
        job.contains("<span class=\"b f1\">&lt;script&gt;alert(1)&lt;/script&gt;</span>"),
        "{job}"
    );
    assert!(job.contains("<span class=\"f2\">green</span>"), "{job}");
    assert!(job.contains("&lt;img src=x onerror=alert(2)&gt;"), "{job}");
    assert!(job.contains("bell␇ esc done"), "{job}");
    // A carriage return does not hide what came before it.
    assert!(job.contains("secret was leaked␍all is well"), "{job}");
    // The step's command, too, is text.
    assert!(
        job.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\033[0m"),
        "{job}"
    );

    let list = server.page("/");
    let run_page = server.page(&format!("/runs/{}", bad.id));
    for page in [&job, &list, &run_page] {
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<i>x"), "{page}");
        assert!(!page.contains("x<y>"), "{page}");
        assert!(
            !page.bytes().any(|b| b < 0x20 && b != b'\n' && b != b'\t'),
            "no control character reaches a page raw"
        );
    }
    assert!(list.contains("x&lt;y&gt;&amp;&quot;z&quot;"), "{list}");
    assert!(
        list.contains("ref=refs%2Fheads%2Fx%3Cy%3E%26%22z%22"),
        "a ref in a link is encoded: {list}"
    );
    assert!(run_page.contains("&lt;i&gt;x&lt;/i&gt;"), "{run_page}");
    assert!(
        run_page.contains("x&lt;y&gt;&amp;&quot;z&quot;"),
        "{run_page}"
    );

    // The branch's badge, by its name (encoded), and its runs by filter.
    let badge = server.get("/badge/app.git/x%3Cy%3E%26%22z%22.svg");
    assert_eq!(badge.status, 200);
    assert!(badge.body.contains(">failing</text>"), "{}", badge.body);
    let filtered = server.json("/api/runs?ref=x%3Cy%3E%26%22z%22");
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(filtered[0]["id"], bad.id);
}

#[test]
fn the_api_answers_exactly_what_list_json_and_show_json_print() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let first = repo.push_and_wait(PIPELINE);
    repo.commit(&[("README.md", "x")], "second");
    let dev = repo.push_refs(&["HEAD:refs/heads/dev"]);
    env.wait_terminal(&dev[0]);
    let failing = repo.push_and_wait(
        r#"[jobs.build]
inputs = ["quire/push"]
sh = ["echo no", "exit 3"]
"#,
    );
    let server = Server::start(&env);

    assert_eq!(server.json("/api/runs"), env.json(&["list"]));
    for (query, args) in [
        ("?state=failed", vec!["list", "--state", "failed"]),
        ("?ref=dev", vec!["list", "--ref", "dev"]),
        (
            "?repo=app&state=complete&state=superseded",
            vec![
                "list",
                "--repo",
                "app",
                "--state",
                "complete",
                "--state",
                "superseded",
            ],
        ),
        ("?limit=1", vec!["list", "--limit", "1"]),
    ] {
        assert_eq!(
            server.json(&format!("/api/runs{query}")),
            env.json(&args),
            "{query}"
        );
    }
    for id in [&first.id, &failing.id, &dev[0]] {
        assert_eq!(
            server.json(&format!("/api/runs/{id}")),
            env.json(&["show", id]),
            "{id}"
        );
    }
    let unknown = server.get("/api/runs/ffffffff");
    assert_eq!(unknown.status, 404);
    let error: Value = serde_json::from_str(&unknown.body).unwrap();
    assert!(error["error"].as_str().unwrap().contains("ffffffff"));
    let bad = server.get("/api/runs?state=finished");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("is not a run state"));
}

#[test]
fn pages_of_runs_go_back_by_keyset_and_follow_the_filters() {
    let env = Env::new();
    let mut store = env.store();
    populate(&mut store);
    populate(&mut store);
    drop(store);
    let all = env.json(&["list", "--limit", "100"]);
    let all: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(all.len(), 12);
    let server = Server::start(&env);

    // The pages, following each page's "older" link.
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/?limit=5".to_string();
    loop {
        let page = server.page(&path);
        for id in &all {
            if page.contains(&format!("href=\"/runs/{id}\"")) {
                seen.push(id.to_string());
            }
        }
        let Some(at) = page.find("rel=\"next\"") else {
            break;
        };
        let link = &page[..at];
        let href = &link[link.rfind("href=\"").unwrap() + 6..];
        path = href[..href.find('"').unwrap()].replace("&amp;", "&");
        assert!(path.contains("before="), "{path}");
    }
    // Each page lists its runs in list order, so the pages together are
    // the list.
    let mut in_order = seen.clone();
    in_order.sort_by_key(|id| all.iter().position(|a| a == id));
    assert_eq!(seen, in_order);
    assert_eq!(seen.len(), all.len());

    // The API pages the same way, its next page in a Link header.
    let first = server.get("/api/runs?limit=7&state=superseded&state=complete&state=failed");
    let next = first.header("link").expect("a next page").to_string();
    assert!(next.ends_with(">; rel=\"next\""), "{next}");
    let next = &next[1..next.find('>').unwrap()];
    assert!(
        next.starts_with("/api/runs?state=superseded&state=complete&state=failed&limit=7&before=")
    );
    let second: Value = serde_json::from_str(&server.get(next).body).unwrap();
    let first: Value = serde_json::from_str(&first.body).unwrap();
    let ended = env.json(&[
        "list",
        "--limit",
        "100",
        "--state",
        "superseded",
        "--state",
        "complete",
        "--state",
        "failed",
    ]);
    let both: Vec<Value> = first
        .as_array()
        .unwrap()
        .iter()
        .chain(second.as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(Value::Array(both), ended);
    assert!(server.get(next).header("link").is_none(), "the last page");
    // A cursor naming no run.
    assert_eq!(server.get("/?before=ffffffff").status, 404);
}

#[test]
fn only_get_and_head_and_unknown_things_are_not_found() {
    let env = Env::new();
    let mut store = env.store();
    let fixture = populate(&mut store);
    drop(store);
    let server = Server::start(&env);

    for (method, path) in [
        ("POST", "/"),
        ("PUT", "/runs/x"),
        ("DELETE", &format!("/runs/{}", fixture.complete) as &str),
        ("PATCH", "/api/runs"),
        ("POST", "/nowhere"),
        ("OPTIONS", "/"),
    ] {
        let reply = request(&server.addr, method, path, &[("Content-Length", "0")]);
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method} {path}");
        assert_security_headers(&reply);
    }
    let head = request(&server.addr, "HEAD", "/", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    for path in [
        "/nowhere",
        "/runs",
        "/runs/ffffffff",
        "/runs/not-an-id",
        &format!("/runs/{}/jobs/nope", fixture.complete),
        &format!("/runs/{}/jobs/nope/events", fixture.complete),
        "/badge/nope.git/main.svg",
        "/badge/app.git/main",
        "/api/nowhere",
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert_security_headers(&reply);
    }
    let unknown_run = server.get("/runs/ffffffff");
    assert!(unknown_run.body.contains("<h1>Not found</h1>"));
    assert!(unknown_run.body.contains("no run matches"));
    assert_eq!(server.get("/?state=done").status, 400);
    assert_eq!(server.get("/?limit=100000").status, 400);
    assert_eq!(server.get("/?repo=nope").status, 404);

    // Ended runs' jobs are pages; an active run's page reloads itself.
    assert!(
        !server
            .page(&format!("/runs/{}", fixture.complete))
            .contains("http-equiv")
    );
    assert!(
        server
            .page(&format!("/runs/{}", fixture.live))
            .contains("<meta http-equiv=\"refresh\" content=\"5\">")
    );
}

#[test]
fn badges_resolve_repository_and_branch_names_that_hold_slashes() {
    let env = Env::new();
    let a = env.repo_with_hook("team-a/app");
    let b = env.repo_with_hook("team-b/app");
    a.push_and_wait(PIPELINE);
    a.commit(&[("x", "1")], "feature");
    let feature = a.push_refs(&["HEAD:refs/heads/feature/x"]);
    env.wait_terminal(&feature[0]);
    b.push_and_wait(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "exit 1"
"#,
    );
    let names: Vec<String> = env
        .json(&["repos"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["team-a/app.git", "team-b/app.git"]);
    let server = Server::start(&env);

    for (path, status, says) in [
        ("/badge/team-a/app.git/main.svg", 200, "passing"),
        ("/badge/team-a/app/main.svg", 200, "passing"),
        ("/badge/team-a/app.git/feature/x.svg", 200, "passing"),
        ("/badge/team-b/app.git/main.svg", 200, "failing"),
        ("/badge/team-b/app.git/feature/x.svg", 200, "no runs"),
        ("/badge/team-c/app.git/main.svg", 404, "unknown"),
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("image/svg+xml"),
            "{path}"
        );
        assert!(reply.body.starts_with("<svg "), "{path}");
        assert!(
            reply.body.contains(&format!(">{says}</text>")),
            "{path}: {}",
            reply.body
        );
    }
    let repos = server.page("/repos");
    assert!(
        repos.contains("href=\"/badge/team-a/app.git/feature/x.svg\""),
        "{repos}"
    );
}

#[test]
fn a_followed_job_streams_its_lines_as_events_until_it_ends() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    let id = repo.push_pipeline(&format!(
        r#"[jobs.live]
inputs = ["quire/push"]
sh = ["echo before the gate", {:?}, "echo after the gate; printf 'no newline'"]
"#,
        gate.step("g")
    ));
    gate.wait_ready("g");
    let server = Server::start(&env);

    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        stream,
        "GET /runs/{id}/jobs/live/events?step=1&offset=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut read_until = |needle: &str, got: &mut Vec<u8>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(got).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "waited for {needle:?}: {}",
                String::from_utf8_lossy(got)
            );
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    };
    read_until("before the gate", &mut got);
    let head = String::from_utf8_lossy(&got).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    assert!(
        head.contains("event: step\ndata: {\"seq\":1,\"cmd\":\"echo before the gate\"}"),
        "{head}"
    );
    assert!(!head.contains("after the gate"));
    gate.open();
    read_until("event: end", &mut got);
    read_until("\r\n0\r\n\r\n", &mut got);
    let events = String::from_utf8_lossy(&got).into_owned();
    let before = events.find("before the gate").unwrap();
    let after = events.find("after the gate").unwrap();
    assert!(before < after);
    assert!(
        events.contains("[\"\",\"no newline\"]"),
        "the last line without its newline: {events}"
    );
    assert!(
        events.contains("event: stepend\ndata: {\"seq\":3,\"exit\":0}"),
        "{events}"
    );
    assert!(
        events.contains(
            "event: end\ndata: {\"state\":\"complete\",\"exit\":0,\"text\":\"complete\",\
             \"class\":\"complete\",\"duration\":\""
        ),
        "{events}"
    );
    assert!(
        events.contains(
            "event: state\ndata: {\"state\":\"active\",\"text\":\"active\",\"class\":\"active\"}"
        ),
        "the header's state: {events}"
    );
    // The ids say where a reconnecting browser goes on.
    assert!(events.contains("id: 1:"), "{events}");

    // A browser that reconnects after the first line gets the rest only.
    let first_id = events
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_string();
    env.wait_terminal(&id);
    let again = request(
        &server.addr,
        "GET",
        &format!("/runs/{id}/jobs/live/events"),
        &[("Last-Event-ID", &first_id)],
    );
    assert!(
        !again.body.contains("[\"\",\"before the gate\"]"),
        "{}",
        again.body
    );
    assert!(
        again.body.contains("[\"\",\"after the gate\"]"),
        "{}",
        again.body
    );
    assert!(again.body.contains("event: end"), "{}", again.body);
}

#[test]
fn a_running_jobs_page_shows_new_lines_in_the_browser_without_a_reload() {
    let Some(chromium) = crate::cdp::required_chromium() else {
        return;
    };
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    let id = repo.push_pipeline(&format!(
        r#"[jobs.live]
inputs = ["quire/push"]
sh = ["echo before the gate", {:?}, "echo after the gate"]
"#,
        gate.step("g")
    ));
    gate.wait_ready("g");
    wait_until("the gate step to be recorded", || {
        env.store()
            .run_detail(&id)
            .unwrap()
            .jobs
            .iter()
            .any(|j| j.steps.len() == 2)
    });
    let server = Server::start(&env);
    let page_path = format!("/runs/{id}/jobs/live");
    let page = server.page(&page_path);
    assert!(page.contains("data-events=\""), "{page}");
    assert!(
        page.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"),
        "without script, the page reloads itself: {page}"
    );

    let mut browser = Browser::launch(&chromium);
    browser.open(&server.url(&page_path));
    browser.wait_for_text("before the gate");
    wait_until("the page to open its event stream", || {
        server
            .log()
            .contains(&format!("GET {page_path}/events?step=2&offset=0 200"))
    });
    browser.eval("window.quireMarker = 42");
    assert!(!browser.text().contains("after the gate"));
    gate.open();
    let text = browser.wait_for_text("after the gate");
    assert!(text.contains("before the gate"), "{text}");
    browser.wait_for_text("the job ended: complete");
    assert_eq!(
        browser.eval("window.quireMarker"),
        serde_json::json!(42),
        "the page was not reloaded"
    );
}

#[test]
fn serve_reads_a_home_without_writing_it_and_refuses_a_missing_one() {
    let env = Env::new();
    let missing = env
        .runs(&["serve", "--listen", "127.0.0.1:0"])
        .assert()
        .failure()
        .code(1);
    let stderr = String::from_utf8_lossy(&missing.get_output().stderr).into_owned();
    assert!(stderr.contains("no quire home at"), "{stderr}");
    assert!(!env.home().dir().exists(), "nothing was created");

    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(PIPELINE);
    // The worker packs the run's logs and announces it after it ended;
    // once it is gone, nothing else writes the home.
    let worker = run.worker.as_ref().unwrap().pid;
    assert!(gone_within(worker, 60), "the worker exits");
    // Whatever the store holds is on disk now (a checkpoint folds the log
    // into the file), so any write would show.
    env.store()
        .connection()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let files = |dir: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_file() && !name.ends_with("-shm") {
                found.push((name, std::fs::read(entry.path()).unwrap()));
            }
        }
        found.sort();
        found
    };
    let before = files(env.home().dir());
    let server = Server::start(&env);
    for path in [
        "/".to_string(),
        "/repos".into(),
        format!("/runs/{}", run.id),
        format!("/runs/{}/jobs/build", run.id),
        format!("/runs/{}/jobs/build/events", run.id),
        "/badge/app.git/main.svg".into(),
        "/api/runs".into(),
        format!("/api/runs/{}", run.id),
    ] {
        assert_eq!(server.get(&path).status, 200, "{path}");
    }
    drop(server);
    // Every file is as it was. SQLite may have made an empty write-ahead
    // log beside the store (any reader of a WAL store may: it was deleted
    // when the last connection closed), and nothing else.
    let after = files(env.home().dir());
    let changed: Vec<&String> = after
        .iter()
        .filter(|file| !before.contains(file))
        .filter(|(name, bytes)| !(name == "quire.db-wal" && bytes.is_empty()))
        .map(|(name, _)| name)
        .collect();
    assert!(changed.is_empty(), "serving wrote {changed:?}");
    assert!(
        before.iter().all(|file| after.contains(file)),
        "a file went"
    );
    // And the worker's repository was left alone too.
    assert_eq!(git(&repo.bare, &["rev-parse", "main"]), run.sha);
}

/// A page with a line break before each tag, its stylesheet left out: for
/// reading a snapshot's diff.
pub(crate) fn readable(page: &str) -> String {
    let start = page.find("<style>").unwrap() + "<style>".len();
    let end = page.find("</style>").unwrap();
    let page = format!("{}(the stylesheet){}", &page[..start], &page[end..]);
    page.replace("><", ">\n<")
}

#[test]
fn the_pages_of_a_fixed_store_at_a_frozen_now() {
    use crate::snapshots_test::{NOW, R1, R2, R4, file_snapshot, fixed_store};
    let env = Env::new();
    fixed_store(&env);
    let server = Server::start_with(&env, &[("QUIRE_NOW", NOW)]);
    for (name, path) in [
        ("web-list.html", "/".to_string()),
        ("web-run-complete.html", format!("/runs/{R1}")),
        ("web-run-failed.html", format!("/runs/{R2}")),
        ("web-run-active.html", format!("/runs/{R4}")),
        ("web-job-complete.html", format!("/runs/{R1}/jobs/build")),
        ("web-job-active.html", format!("/runs/{R4}/jobs/test")),
        ("web-repos.html", "/repos".to_string()),
    ] {
        file_snapshot(name, &readable(&server.page(&path)));
    }
}

/// The streams that tell pages that runs changed: a run's tells its
/// change since the page's stamp and ends with the run; the runs' tells a
/// new run; and they count among the streams the server caps.
#[test]
fn change_streams_tell_what_changed_end_with_the_run_and_are_capped() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait("[jobs.a]\ninputs = [\"quire/push\"]\nsh = \"true\"\n");
    let server = Server::start(&env);
    let ask = |path: &str, extra: &str| {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
        )
        .unwrap();
        stream
    };
    // An ended run: what changed since a stamp the page did not have, then
    // the end; with the stamp it has (as a reconnecting browser sends it),
    // only the end.
    let path = format!("/runs/{}/events?since=0000000000000000", run.id);
    let got = until_closed(&mut ask(&path, ""), "a run's changes");
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let change = got.find("event: change\nid: ").expect("a change") + 18;
    let stamp = &got[change..change + 16];
    assert!(got.contains("event: end\n"), "{got}");
    assert!(got.ends_with("\r\n0\r\n\r\n"), "the stream ends: {got}");
    let header = format!("Last-Event-ID: {stamp}\r\n");
    let got = until_closed(&mut ask(&path, &header), "a run's end");
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(!got.contains("event: change"), "{got}");
    assert!(got.contains("event: end\n"), "{got}");
    let unknown = server.get("/runs/nope/events");
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // The runs: quiet until a run is pushed.
    let page = server.page("/");
    let marker = "data-changes=\"/events/runs?since=";
    let at = page.find(marker).expect("a stream") + marker.len();
    let since = &page[at..at + 16];
    let mut stream = ask(&format!("/events/runs?since={since}"), "");
    // Ten of its looks (every 0.1 s) and more with nothing new: no change
    // is told (a stamp that moved by itself would be).
    stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut quiet = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        quiet.extend_from_slice(&buf[..n]);
    }
    let quiet = String::from_utf8_lossy(&quiet);
    assert!(!quiet.contains("event: change"), "{quiet}");
    let second = repo.push_and_wait("[jobs.b]\ninputs = [\"quire/push\"]\nsh = \"true\"\n");
    assert!(second.state.is_terminal());
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("event: change") {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            // A signal the test process caught, not the stream's end.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => panic!(
                "no change told: {other:?} {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    // It and 63 more fill the server's streams: one more is refused.
    let open: Vec<TcpStream> = (0..63).map(|_| ask("/events/runs", "")).collect();
    wait_until("the streams to open", || {
        server.log().matches("GET /events/runs 200").count() == 63
    });
    let status = |path: &str| {
        let mut stream = ask(path, "");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head).into_owned()
    };
    assert_eq!(status("/events/runs"), "HTTP/1.1 503");
    // Pages closed: their streams end and give their places back.
    drop(open);
    drop(stream);
    wait_until("a stream to be let in again", || {
        status("/events/runs") == "HTTP/1.1 200"
    });
}

/// Read from a connection the server should close: what it sent before it
/// closed. The read timeout is only the deadline; it failing is the test
/// failing.
fn until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // Closed with our unread bytes in its buffer: a reset.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            // A signal this test process caught: a socket with a read
            // timeout is not restarted after one, even with SA_RESTART
            // (signal(7)); read again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("{what}: the server did not close the connection: {e}"),
        }
    }
}

/// Clients that send half a request line and wait (slowloris) hold their
/// connection for a few seconds at most: the server closes each (the test
/// waits on EOF). As many as the cap fill the server: one more is answered
/// 503 and closed at once; once the slow ones are dropped a normal request
/// is served.
#[test]
fn slow_request_headers_are_dropped_and_connections_are_capped() {
    const MAX_CONNECTIONS: usize = 256;
    let env = Env::new();
    populate(&mut env.store());
    let server = Server::start(&env);
    assert_eq!(server.get("/").status, 200);
    let mut slow: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.addr).unwrap();
            stream.write_all(b"GET / HT").unwrap();
            stream
        })
        .collect();

    let mut extra = TcpStream::connect(&server.addr).unwrap();
    let refused =
        String::from_utf8_lossy(&until_closed(&mut extra, "one over the cap")).into_owned();
    assert!(
        refused.starts_with("HTTP/1.1 503 ") && refused.contains("too many connections"),
        "a connection over the cap got {refused:?}"
    );

    for (i, stream) in slow.iter_mut().enumerate() {
        let sent = until_closed(stream, &format!("slow client {i}"));
        assert!(
            !String::from_utf8_lossy(&sent).contains("200 OK"),
            "a half request was answered"
        );
    }
    println!("{MAX_CONNECTIONS} slow clients were closed by the server");
    assert_eq!(server.get("/").status, 200, "{}", server.log());
}
