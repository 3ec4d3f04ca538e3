//! A tiny harness: a temporary home, the two binaries pointed at it, bare
//! repositories with real commits, and a store filled with runs in every
//! state.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use quire_model::events::Event;
use quire_store::lifecycle::{NewRun, Outcome, Worker};
use quire_store::repos::Registration;
use quire_store::{FailureKind, Home, JobState, Store};
use serde_json::Value;

pub struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> Home {
        Home::at(self.dir.path().join("home"))
    }

    pub fn store(&self) -> Store {
        Store::open(&self.home()).unwrap()
    }

    fn command(&self, bin: &str, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin(bin).unwrap();
        cmd.env_remove("QUIRE_HOME")
            .env_remove("NO_COLOR")
            .arg("--home")
            .arg(self.home().dir())
            .args(args)
            .timeout(Duration::from_secs(60));
        cmd
    }

    /// A step's raw CRI log, wherever it is (its file while the run
    /// executes, the store once the run's logs were packed); empty when
    /// there is none yet.
    pub fn step_log(&self, run: &str, job: &str, seq: i64) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut log) = self.store().step_log(run, job, seq).unwrap() {
            log.read_to_string(&mut text).unwrap();
        }
        text
    }

    /// `quire-runs --home HOME ARGS`.
    pub fn runs(&self, args: &[&str]) -> Command {
        self.command("quire-runs", args)
    }

    /// `quire-run --home HOME ARGS`.
    pub fn run(&self, args: &[&str]) -> Command {
        self.command("quire-run", args)
    }

    /// `quire-runs ARGS --json`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.runs(args).arg("--json").assert().success();
        serde_json::from_slice(&out.get_output().stdout).unwrap()
    }
}

/// Run git with a fixed identity; panic with its stderr if it fails.
pub fn git(cwd: &Path, args: &[&str]) -> String {
    let out = Process::new("git")
        .current_dir(cwd)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Quire Test")
        .env("GIT_AUTHOR_EMAIL", "test@quire.invalid")
        .env("GIT_COMMITTER_NAME", "Quire Test")
        .env("GIT_COMMITTER_EMAIL", "test@quire.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A pid that belonged to a process which has exited.
pub fn dead_pid() -> u32 {
    let mut child = Process::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

pub const SHA: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";

/// The ids of a store holding a run in every state.
pub struct Fixture {
    pub superseded: String,
    pub complete: String,
    pub failed: String,
    pub pending: String,
    pub live: String,
    pub orphan: String,
}

/// Now, as event times are stamped.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The events of `job` running `steps` (command, exit code) to its end,
/// stamped now, as an executor reports them.
pub fn job_ran(job: &str, steps: &[(&str, i64)]) -> Vec<Event> {
    let at_ms = now_ms();
    let job = job.to_string();
    let mut events = vec![Event::JobStarted {
        at_ms,
        job: job.clone(),
    }];
    for (seq, (cmd, exit_code)) in (1..).zip(steps) {
        events.push(Event::StepStarted {
            at_ms,
            job: job.clone(),
            seq,
            cmd: cmd.to_string(),
            log_at: None,
        });
        events.push(Event::StepFinished {
            at_ms,
            job: job.clone(),
            seq,
            exit_code: *exit_code,
        });
    }
    let exit_code = steps.last().map_or(0, |(_, code)| *code);
    events.push(Event::JobFinished {
        at_ms,
        job,
        state: if exit_code == 0 {
            JobState::Complete
        } else {
            JobState::Failed
        },
        exit_code: Some(exit_code),
    });
    events
}

/// The `run_started` event planning `jobs`, stamped now.
pub fn run_started(jobs: &[&str]) -> Event {
    Event::RunStarted {
        at_ms: now_ms(),
        jobs: jobs.iter().map(|j| j.to_string()).collect(),
        allow_failure: Vec::new(),
    }
}

/// Fill the store: runs in every state, jobs and steps under them, written
/// as a worker writes them (claim, ingested events, finish).
pub fn populate(store: &mut Store) -> Fixture {
    let repo_id = store
        .register_repo(Path::new("/srv/git/app.git"), None, Registration::Seen)
        .unwrap()
        .id;
    let new = |ref_name| NewRun {
        repo_id,
        ref_name,
        sha: SHA,
        pushed_at_ms: None,
        previous_sha: None,
        invalid: None,
        ..Default::default()
    };
    let gone = Worker {
        id: "worker-gone".into(),
        pid: dead_pid(),
        lease: Duration::from_secs(3600),
    };
    let alive = Worker {
        id: "worker-alive".into(),
        pid: std::process::id(),
        lease: Duration::from_secs(3600),
    };
    let steps = [("cargo build", 0), ("cargo test --all", 0)];

    let superseded = store.create_run(&new("refs/heads/main")).unwrap().run.id;
    let complete = store.create_run(&new("refs/heads/main")).unwrap().run.id;
    store.claim(&complete, &gone).unwrap();
    let mut events = vec![run_started(&["build", "test"])];
    events.extend(job_ran("build", &steps));
    events.extend(job_ran("test", &steps));
    store.ingest(&complete, &events).unwrap();
    // The worker, not the event stream, ends a run.
    store.finish(&complete, &Outcome::Complete).unwrap();

    let failed = store.create_run(&new("refs/heads/dev")).unwrap().run.id;
    store.claim(&failed, &gone).unwrap();
    let mut events = vec![run_started(&["build", "deploy"])];
    events.extend(job_ran("build", &[("make", 2)]));
    events.push(Event::JobSkipped {
        at_ms: now_ms(),
        job: "deploy".into(),
        reason: "needs build, which failed".into(),
    });
    store.ingest(&failed, &events).unwrap();
    let failure = Outcome::Failed {
        kind: FailureKind::PipelineFailure,
        detail: Some("job build failed".into()),
    };
    store.finish(&failed, &failure).unwrap();

    let pending = store.create_run(&new("refs/tags/v1.0")).unwrap().run.id;

    let live = store.create_run(&new("refs/heads/live")).unwrap().run.id;
    store.claim(&live, &alive).unwrap();
    let events = [
        run_started(&["build"]),
        Event::JobStarted {
            at_ms: now_ms(),
            job: "build".into(),
        },
        Event::StepStarted {
            at_ms: now_ms(),
            job: "build".into(),
            seq: 1,
            cmd: "sleep 600".into(),
            log_at: None,
        },
    ];
    store.ingest(&live, &events).unwrap();

    let orphan = store.create_run(&new("refs/heads/orphan")).unwrap().run.id;
    store.claim(&orphan, &gone).unwrap();
    let events = [
        run_started(&["build", "test"]),
        Event::JobStarted {
            at_ms: now_ms(),
            job: "build".into(),
        },
    ];
    store.ingest(&orphan, &events).unwrap();

    Fixture {
        superseded,
        complete,
        failed,
        pending,
        live,
        orphan,
    }
}

/// The run object with this id in a `list --json` array.
pub fn find<'a>(runs: &'a Value, id: &str) -> &'a Value {
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("run {id} not listed"))
}

/// An RFC 3339 string field and its `_ms` twin agree.
pub fn assert_time(object: &Value, name: &str) {
    let text = object[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is not a string: {object}"));
    let ms = object[format!("{name}_ms")]
        .as_i64()
        .unwrap_or_else(|| panic!("{name}_ms is not an integer"));
    let parsed: jiff::Timestamp = text.parse().unwrap();
    assert_eq!(parsed.as_millisecond(), ms, "{name}");
    assert!(text.ends_with('Z'), "{name} is UTC: {text}");
}

/// A time field pair that is unset.
pub fn assert_no_time(object: &Value, name: &str) {
    assert!(object[name].is_null(), "{name} should be null: {object}");
    assert!(
        object[format!("{name}_ms")].is_null(),
        "{name}_ms should be null"
    );
}

/// A bare repository with quire's hook installed, and a work tree that
/// pushes to it as `origin`.
pub struct Repo {
    pub bare: PathBuf,
    pub work: PathBuf,
    /// The home its hook records runs in.
    pub home: Home,
    /// Variables `git push` hands to the hook, and so to the workers it
    /// starts (`QUIRE_CONTAINMENT`).
    pub vars: Vec<(String, String)>,
}

impl Env {
    /// `name.git` with the hook installed for this home, and its work tree.
    pub fn repo_with_hook(&self, name: &str) -> Repo {
        let bare = self.path().join(format!("{name}.git"));
        git(
            self.path(),
            &["init", "--quiet", "--bare", bare.to_str().unwrap()],
        );
        self.run(&["install", bare.to_str().unwrap()])
            .assert()
            .success();
        let work = self.path().join(name);
        git(
            self.path(),
            &["init", "--quiet", "-b", "main", work.to_str().unwrap()],
        );
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Repo {
            bare,
            work,
            home: self.home(),
            vars: Vec::new(),
        }
    }

    /// Write the home's config.toml.
    pub fn config(&self, toml: &str) {
        self.home().ensure().unwrap();
        std::fs::write(self.home().dir().join("config.toml"), toml).unwrap();
    }

    /// Wait (up to a minute) until the run satisfies `done`; returns it.
    pub fn wait_for(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&quire_store::Run) -> bool,
    ) -> quire_store::Run {
        wait_for_run(&self.home(), id, what, done)
    }

    pub fn wait_terminal(&self, id: &str) -> quire_store::Run {
        self.wait_for(id, "terminal", |r| r.state.is_terminal())
    }

    /// Every run, newest first.
    pub fn all_runs(&self) -> Vec<quire_store::Run> {
        let filter = quire_store::query::ListFilter {
            limit: 10_000,
            ..Default::default()
        };
        self.store().list_runs(&filter).unwrap()
    }
}

fn wait_for_run(
    home: &Home,
    id: &str,
    what: &str,
    done: impl Fn(&quire_store::Run) -> bool,
) -> quire_store::Run {
    let store = Store::open(home).unwrap();
    let mut last = None;
    wait_until(&format!("run {id} to become {what}"), || {
        let run = store.resolve_run(id).unwrap();
        let ok = done(&run);
        last = Some(run);
        ok
    });
    last.unwrap()
}

/// Look at `ready` every 20 ms until it holds; panic after a minute,
/// naming what never happened.
pub fn wait_until(what: &str, ready: impl FnMut() -> bool) {
    assert!(within(60, ready), "waited a minute for {what}");
}

/// Whether `ready` came to hold within `secs` seconds, looked at every 20
/// ms. The one place the end-to-end tests wait: on a state (a store row, a
/// process, a file a step wrote) that has no event of its own to wait on,
/// never for a time.
pub fn within(secs: u64, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

impl Repo {
    /// Write files (path, contents) and commit them with `message`; returns
    /// the new commit's id.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, contents) in files {
            let file = self.work.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, contents).unwrap();
            git(&self.work, &["add", path]);
        }
        git(
            &self.work,
            &["commit", "--quiet", "--allow-empty", "-m", message],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// `git push ARGS` from the work tree; returns (success, stderr), where
    /// the hook's lines arrive as `remote: ...`.
    pub fn push(&self, args: &[&str]) -> (bool, String) {
        let out = Process::new("git")
            .current_dir(&self.work)
            .arg("push")
            .args(args)
            .env("HOME", &self.work)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `git push origin REFS`, which must succeed; the runs it queued.
    pub fn push_refs(&self, refs: &[&str]) -> Vec<String> {
        let (ok, stderr) = self.push(&[&["origin"], refs].concat());
        assert!(ok, "{stderr}");
        queued_runs(&stderr)
    }

    /// Commit `pipeline` as .quire/ci.toml and push main; the one run it
    /// queued.
    pub fn push_pipeline(&self, pipeline: &str) -> String {
        self.commit(&[(".quire/ci.toml", pipeline)], "pipeline");
        let runs = self.push_refs(&["main"]);
        assert_eq!(runs.len(), 1, "one run queued: {runs:?}");
        runs[0].clone()
    }

    /// Push `pipeline` (as [`Repo::push_pipeline`]) and wait for its run to
    /// end; the run as it ended.
    pub fn push_and_wait(&self, pipeline: &str) -> quire_store::Run {
        let id = self.push_pipeline(pipeline);
        wait_for_run(&self.home, &id, "terminal", |r| r.state.is_terminal())
    }
}

/// Where a step tells the test it got somewhere, and waits until the test
/// lets it go on: readiness files, never a sleep, to order a step and a
/// test.
///
/// A step may write only its own directories (the sandbox,
/// docs/SECURITY.md), so it says it is ready in its run's TMPDIR; it reads
/// whether the gate is open beside the test's home, which it may read.
pub struct Gate {
    dir: PathBuf,
    runs: PathBuf,
}

impl Gate {
    pub fn new(env: &Env) -> Gate {
        let dir = env.path().join("gate");
        std::fs::create_dir_all(&dir).unwrap();
        Gate {
            dir,
            runs: env.home().dir().join("runs"),
        }
    }

    /// Shell for a step: create `<name>.ready` in its TMPDIR (`name` may
    /// use the step's variables, `$QUIRE_BRANCH`), then wait until the gate
    /// opens; a minute at most, so a failed test leaves nothing behind.
    pub fn step(&self, name: &str) -> String {
        let dir = self.dir.display();
        format!(
            "touch \"$TMPDIR/{name}.ready\"; i=0; while [ ! -e {dir}/open ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"
        )
    }

    /// Whether a step of any run is at the gate as `name`.
    pub fn is_ready(&self, name: &str) -> bool {
        std::fs::read_dir(&self.runs)
            .map(|runs| {
                runs.flatten()
                    .any(|run| run.path().join(format!("tmp/{name}.ready")).exists())
            })
            .unwrap_or(false)
    }

    /// Wait (a minute at most) until the step `name` is at the gate.
    pub fn wait_ready(&self, name: &str) {
        if !within(60, || self.is_ready(name)) {
            // What the workers said is what tells why a step never came.
            let home = self.runs.parent().unwrap();
            let log = std::fs::read_to_string(home.join("worker.log")).unwrap_or_default();
            let runs: Vec<_> = std::fs::read_dir(&self.runs)
                .map(|runs| runs.flatten().map(|run| run.file_name()).collect())
                .unwrap_or_default();
            panic!("waited a minute for {name} at the gate; runs/: {runs:?}\nworker.log:\n{log}");
        }
    }

    /// Let every step at the gate go on.
    pub fn open(&self) {
        std::fs::write(self.dir.join("open"), "").unwrap();
    }
}

impl Repo {
    /// Write a blob into the bare repository; its id.
    pub fn hash_object(&self, text: &str) -> String {
        self.plumbing(
            "printf '%s' \"$0\" | git --git-dir \"$1\" hash-object -w --stdin",
            text,
        )
    }

    /// Write a tree from `git mktree` lines (`\\t` and `\\n` as printf
    /// escapes, so names git itself would never write can be made); its id.
    pub fn mktree(&self, entries: &str) -> String {
        self.plumbing("printf \"$0\" | git --git-dir \"$1\" mktree", entries)
    }

    fn plumbing(&self, script: &str, arg: &str) -> String {
        let out = Process::new("sh")
            .args(["-c", script, arg])
            .arg(&self.bare)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// The run ids named in a push's `remote: quire: queued run ID ...` lines.
pub fn queued_runs(push_stderr: &str) -> Vec<String> {
    push_stderr
        .lines()
        .filter_map(|l| l.split("quire: queued run ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Whether a process is running (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Wait up to `secs` for a process to be gone.
pub fn gone_within(pid: u32, secs: u64) -> bool {
    quire_exec::processes::exited_within(pid, Duration::from_secs(secs))
}

/// Send `signal` to `pid`.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), signal)
        .unwrap();
}

/// Shell for a step: record its pid in its run's TMPDIR, for [`step_pid`].
pub const RECORD_PID: &str = "echo $$ > \"$TMPDIR/sleep.pid\"";

/// Wait for the pid a step of `run` recorded with [`RECORD_PID`], as this
/// process sees it: a step of a worker in a pid namespace of its own
/// records its pid there.
pub fn step_pid(env: &Env, run: &str) -> u32 {
    let recorded = read_pid_file(&env.home().run_dir(run).unwrap().join("tmp/sleep.pid"));
    let worker = env
        .wait_for(run, "claimed", |r| r.worker.is_some())
        .worker
        .unwrap()
        .pid;
    outside_pid(worker, recorded)
}

/// The pids of a process, outermost namespace first (`NSpid` of
/// /proc/PID/status).
fn ns_pids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .map(|pids| {
            pids.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The pid here of the process that is `inside` in the pid namespace of
/// the worker whose stand-in is `stand_in` (docs/SECURITY.md,
/// "Processes"); `inside` itself when that worker has no namespace of its
/// own, a dead pid when no such process is left.
pub fn outside_pid(stand_in: u32, inside: u32) -> u32 {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let worker = all_pids()
        .into_iter()
        .find(|&pid| parent_of(pid) == Some(stand_in) && ns_pids(pid).last() == Some(&1));
    let Some(worker) = worker else {
        return inside;
    };
    let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let wanted = ns(worker);
    all_pids()
        .into_iter()
        .find(|&pid| ns(pid) == wanted && ns_pids(pid).last() == Some(&inside))
        .unwrap_or_else(dead_pid)
}

/// Wait for a file holding a pid, written by a step.
pub fn read_pid_file(path: &Path) -> u32 {
    let mut pid = None;
    wait_until(&format!("a pid in {}", path.display()), || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap()
}

/// A child's output read as it comes, a line at a time, on a thread of its
/// own, so that a test can wait for a line without ever blocking past a
/// minute.
pub struct LineReader {
    lines: std::sync::mpsc::Receiver<String>,
}

impl LineReader {
    pub fn new(source: impl std::io::Read + Send + 'static) -> LineReader {
        use std::io::BufRead;
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut source = std::io::BufReader::new(source);
            loop {
                let mut line = Vec::new();
                match source.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        let text = text.trim_end_matches(['\n', '\r']).to_string();
                        if send.send(text).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        LineReader { lines }
    }

    /// The next line (without its line ending); None at the end of the
    /// output. Panics after a minute without one, naming `what`.
    pub fn next(&self, what: &str) -> Option<String> {
        use std::sync::mpsc::RecvTimeoutError;
        match self.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("waited a minute for {what}"),
        }
    }

    /// The lines up to and including the first that contains `text`.
    pub fn until(&self, text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.next(&format!("a line with {text:?} after {seen:#?}")) {
                Some(line) => {
                    let found = line.contains(text);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                None => panic!("the output ended without {text:?}: {seen:#?}"),
            }
        }
    }

    /// Every line left, to the end of the output.
    pub fn rest(&self) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(line) = self.next("the end of the output") {
            seen.push(line);
        }
        seen
    }
}

/// Wait (a minute at most) for a child to exit; its status.
pub fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let mut status = None;
    wait_until("the process to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

/// The fields `quire-runs ARGS --json NOT-A-FIELD` says there are (it must
/// refuse the field, exit 2).
pub fn json_fields(env: &Env, args: &[&str]) -> Vec<String> {
    let out = env
        .runs(args)
        .args(["--json", "not_a_field"])
        .assert()
        .code(2)
        .stdout("")
        .get_output()
        .stderr
        .clone();
    let stderr = String::from_utf8(out).unwrap();
    let fields = stderr
        .strip_prefix("quire-runs: error: --json: unknown field \"not_a_field\"; the fields are: ")
        .unwrap_or_else(|| panic!("{stderr}"));
    fields.trim_end().split(", ").map(str::to_string).collect()
}

/// The keys of a JSON object, sorted.
pub fn keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// A line with its duration (` in 1.2s`, ` in 1m 4s`) written as `D`, so
/// that lines of real runs can be compared whole.
pub fn masked(line: &str) -> String {
    match line.find(" in ") {
        Some(at) => {
            let rest = &line[at + 4..];
            let end = rest.find(" (").unwrap_or(rest.len());
            format!("{} in D{}", &line[..at], &rest[end..])
        }
        None => line.to_string(),
    }
}

/// Whether a test's prerequisite beyond Rust and git (`what`: a program,
/// root, cgroups) is here. When it is not, outside CI, the test prints one
/// line, `TEST: skipped: needs WHAT (install: HOW)`, appends it to the file
/// `$QUIRE_SKIPS` names (scripts/test counts them at the end of the run),
/// and returns; under `CI=true` (.ci/run, which installs every one) the
/// test fails instead, saying what is missing: there, no test skips.
pub fn require(what: &str, install: &str, available: bool) -> bool {
    if available {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let line = format!("{test}: skipped: needs {what} (install: {install})");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{line}; under CI=true every test must run"
    );
    eprintln!("{line}");
    if let Some(file) = std::env::var_os("QUIRE_SKIPS") {
        use std::io::Write;
        // One write of one line, appended: lines of tests running at once
        // do not mix.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            eprintln!("cannot append to {}: {e}", Path::new(&file).display());
        }
    }
    false
}

/// Whether a program runs here (`PROGRAM ARGS` exits 0).
pub fn program_runs(program: &str, args: &[&str]) -> bool {
    Process::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the tests run as root (run_as, other namespaces' /proc).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
