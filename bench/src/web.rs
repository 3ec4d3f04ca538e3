//! `quire-runs serve` (docs/WEB.md): its pages and API on a million runs
//! against the same reads through `quire-runs`, a run of 1,000 steps, and
//! how soon a followed log delivers a line against `quire-runs logs
//! --follow` reading the same run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quire_store::Home;
use rusqlite::params;

use crate::harness::{Bins, Repo, Stats, row, run, time};
use crate::scenarios::big_store;

/// A release `quire-runs serve --listen 127.0.0.1:0`, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(bins: &Bins, home: &std::path::Path) -> Server {
        let mut child = Command::new(&bins.quire_runs)
            .arg("--home")
            .arg(home)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .trim_start_matches("quire-runs serve: listening on http://")
            .trim_end_matches('/')
            .to_string();
        Server { child, addr }
    }

    /// GET `path` on a new connection, to the last byte; its status and
    /// body length.
    fn get(&self, path: &str) -> (u16, usize) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap_or(0);
        (status, raw.len())
    }

    /// The time of `reps` GETs of `path`, each to its last byte.
    fn sample(&self, path: &str, reps: usize) -> Stats {
        let (status, _) = self.get(path);
        assert_eq!(status, 200, "GET {path}");
        let samples: Vec<Duration> = (0..reps).map(|_| time(|| self.get(path)).0).collect();
        Stats::of(&samples)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The time of `reps` runs of `quire-runs ARGS` (to exit, stdout read).
fn sample_cli(bins: &Bins, home: &std::path::Path, args: &[&str], reps: usize) -> Stats {
    let samples: Vec<Duration> = (0..reps)
        .map(|_| {
            let mut c = Command::new(&bins.quire_runs);
            c.arg("--home").arg(home).args(args).env("NO_COLOR", "1");
            time(|| run(&mut c)).0
        })
        .collect();
    Stats::of(&samples)
}

/// One more run, newest, of 10 jobs of 100 steps each; its id.
fn thousand_steps(home: &Home) -> String {
    let conn = rusqlite::Connection::open(home.db_path()).unwrap();
    let id = "ffffffff-0000-7000-8000-000000000001";
    let at = 1_800_000_000_000i64;
    conn.execute(
        "INSERT INTO runs (id, repo_id, ref_name, sha, state, pushed_at_ms, queued_at_ms,
                           started_at_ms, finished_at_ms, traceparent)
         VALUES (?1, (SELECT min(id) FROM repos), 'refs/heads/big', ?2, 'complete', ?3, ?3, ?4, ?5, '00-x-y-01')",
        params![id, "f".repeat(40), at, at + 10, at + 100_000],
    )
    .unwrap();
    for j in 0..10i64 {
        let job = format!("job{j}");
        conn.execute(
            "INSERT INTO jobs (run_id, job_id, position, state, exit_code, started_at_ms, finished_at_ms)
             VALUES (?1, ?2, ?3, 'complete', 0, ?4, ?5)",
            params![id, job, j, at + 10, at + 90_000],
        )
        .unwrap();
        for s in 1..=100i64 {
            conn.execute(
                "INSERT INTO sh_events (run_id, job_id, seq, cmd, exit_code, started_at_ms, finished_at_ms)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)",
                params![id, job, s, format!("make --directory=part{s} check-{j}"), at + 10 * s, at + 10 * s + 7],
            )
            .unwrap();
        }
    }
    id.to_string()
}

pub fn web(bins: &Bins, quick: bool) {
    pages(bins, quick);
    follow(bins, quick);
}

/// The list page, a page deep in the list, the API and a run of 1,000
/// steps, against `quire-runs` doing the same read.
fn pages(bins: &Bins, quick: bool) {
    let size = if quick { 100_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let (built, middle) = time(|| big_store(&home, size));
    let big = thousand_steps(&home);
    let server = Server::start(bins, home.dir());
    let reps = 21;
    let h = home.dir();

    let list = server.sample("/", reps);
    let list_cli = sample_cli(bins, h, &["list", "--limit", "50"], reps);
    row(
        &format!(
            "`quire-runs serve`: the run list `/` (50 runs) on {size} runs (built in {:.0} s); a GET on a new connection, to its last byte",
            built.as_secs_f64()
        ),
        &format!("`quire-runs list --limit 50`: {list_cli}"),
        &format!("**{list}**, {:.2}x", list.median / list_cli.median),
        "<= 50 ms at 1M runs",
    );
    let deep = server.sample(&format!("/?before={middle}"), reps);
    let failed = server.sample("/?state=failed", reps);
    let repo = server.sample("/?repo=repo7.git&ref=b7", reps);
    row(
        &format!("`/` further down, on {size} runs"),
        &format!("the first page: {list}"),
        &format!(
            "the page after the middle run (`?before=`): **{deep}**; `?state=failed`: {failed}; `?repo=repo7.git&ref=b7`: {repo}"
        ),
        "<= 50 ms: keyset, flat",
    );
    let api = server.sample("/api/runs", reps);
    let api_cli = sample_cli(bins, h, &["list", "--json"], reps);
    row(
        &format!("`/api/runs` (20 runs) on {size} runs"),
        &format!("`quire-runs list --json`: {api_cli}"),
        &format!("**{api}**, {:.2}x", api.median / api_cli.median),
        "report",
    );
    let page = server.sample(&format!("/runs/{big}"), reps);
    let (_, bytes) = server.get(&format!("/runs/{big}"));
    let show_cli = sample_cli(bins, h, &["show", &big], reps);
    row(
        "a run page of 10 jobs of 100 steps (1,000 steps), `/runs/ID`",
        &format!("`quire-runs show ID`: {show_cli}"),
        &format!(
            "**{page}**, {:.2}x; {} KiB",
            page.median / show_cli.median,
            bytes / 1024
        ),
        "<= 50 ms",
    );
    let detail = server.sample(&format!("/api/runs/{big}"), reps);
    let detail_cli = sample_cli(bins, h, &["show", &big, "--json"], reps);
    let job = server.sample(&format!("/runs/{big}/jobs/job3"), reps);
    let repos = server.sample("/repos", if quick { 5 } else { 9 });
    row(
        &format!("`/api/runs/ID` of that run; its job page (100 steps); `/repos` on {size} runs"),
        &format!("`quire-runs show ID --json`: {detail_cli}"),
        &format!(
            "`/api/runs/ID`: {detail}, {:.2}x; `/runs/ID/jobs/job3`: {job}; `/repos` (20 repositories, 10 branches each): {repos}",
            detail.median / detail_cli.median
        ),
        "report",
    );
}

/// How long a line a step prints takes to reach a follower: the server's
/// event stream against `quire-runs logs --follow`, both reading the same
/// run. The step prints the time (ns since the epoch) every 200 ms.
fn follow(bins: &Bins, quick: bool) {
    let lines = if quick { 15 } else { 40 };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = Repo::new(dir.path(), "app");
    repo.install(bins, &home);
    let pipeline = format!(
        "[jobs.t]\ninputs = [\"quire/push\"]\nsh = [\"sleep 1\", \"for i in $(seq {lines}); do date +%s%N; sleep 0.2; done\"]\n"
    );
    repo.commit(&[(".quire/ci.toml", &pipeline)], "pipeline");
    repo.push(&["--quiet", "origin", "main"]);
    let store = quire_store::Store::open(&Home::at(&home)).unwrap();
    let id = store
        .list_runs(&quire_store::query::ListFilter {
            limit: 1,
            ..Default::default()
        })
        .unwrap()[0]
        .id
        .clone();
    drop(store);
    let server = Server::start(bins, &home);

    // The CLI follower, its lines timed as they arrive.
    let mut cli = Command::new(&bins.quire_runs)
        .arg("--home")
        .arg(&home)
        .args(["logs", "--follow", &id, "t", "--step", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let cli_out = cli.stdout.take().unwrap();
    let cli_thread = std::thread::spawn(move || {
        let mut delays = Vec::new();
        for line in BufReader::new(cli_out).lines().map_while(Result::ok) {
            if let Some(delay) = delay_of(line.trim()) {
                delays.push(delay);
            }
        }
        delays
    });

    // The event stream, from the job's start.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "GET /runs/{id}/jobs/t/events HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut web_delays = Vec::new();
    let mut pending = String::new();
    let mut buf = [0u8; 8192];
    // The event's name (`line`, `state`, `end`): its data follows.
    let mut event_name = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    'read: while Instant::now() < deadline {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(name) = line.trim().strip_prefix("event: ") {
                event_name = name.to_string();
            }
            if let Some(data) = line.trim().strip_prefix("data: ")
                && let Ok(event) = serde_json::from_str::<serde_json::Value>(data)
            {
                if let Some(text) = event["spans"][0][1].as_str()
                    && let Some(delay) = delay_of(text)
                {
                    web_delays.push(delay);
                }
                // The job's end (a `state` event only says how it goes).
                if event_name == "end" {
                    break 'read;
                }
            }
        }
    }
    let cli_delays = cli_thread.join().unwrap();
    let _ = cli.wait();
    assert!(!web_delays.is_empty() && !cli_delays.is_empty());
    let (web, cli) = (Stats::of(&web_delays), Stats::of(&cli_delays));
    row(
        &format!(
            "a followed log: from a step printing a line (`date +%s%N`, {lines} lines 200 ms apart) to a follower reading it"
        ),
        &format!("`quire-runs logs --follow` of the same run: {cli}"),
        &format!(
            "the job's event stream (`/runs/ID/jobs/JOB/events`): **{web}**, max {:.1} ms",
            web_delays.iter().max().unwrap().as_secs_f64() * 1000.0
        ),
        "<= 250 ms",
    );
}

/// Now less the time (ns since the epoch) a line holds.
fn delay_of(text: &str) -> Option<Duration> {
    let printed: u128 = text.parse().ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(Duration::from_nanos(now.saturating_sub(printed) as u64))
}
