//! A tiny harness: a temporary home, the two binaries pointed at it, bare
//! repositories with real commits, and a store filled with runs in every
//! state.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use assert_cmd::Command;
use quire_store::lifecycle::{NewRun, Outcome, Worker};
use quire_store::repos::Registration;
use quire_store::{FailureKind, Home, Store};
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

/// Fill the store: runs in every state, jobs and steps under them.
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

    let superseded = store.create_run(&new("refs/heads/main")).unwrap().run.id;
    let complete = store.create_run(&new("refs/heads/main")).unwrap().run.id;
    store.claim(&complete, &gone).unwrap();
    store.plan_jobs(&complete, &["build", "test"]).unwrap();
    for job in ["build", "test"] {
        store.start_job(&complete, job).unwrap();
        store
            .step_started(&complete, job, 1, "cargo build")
            .unwrap();
        store.step_finished(&complete, job, 1, 0).unwrap();
        store
            .step_started(&complete, job, 2, "cargo test --all")
            .unwrap();
        store.step_finished(&complete, job, 2, 0).unwrap();
        store.finish_job(&complete, job, 0).unwrap();
    }
    store.finish(&complete, &Outcome::Complete).unwrap();

    let failed = store.create_run(&new("refs/heads/dev")).unwrap().run.id;
    store.claim(&failed, &gone).unwrap();
    store.plan_jobs(&failed, &["build", "deploy"]).unwrap();
    store.start_job(&failed, "build").unwrap();
    store.step_started(&failed, "build", 1, "make").unwrap();
    store.step_finished(&failed, "build", 1, 2).unwrap();
    store.finish_job(&failed, "build", 2).unwrap();
    store
        .skip_job(&failed, "deploy", "needs build, which failed")
        .unwrap();
    let failure = Outcome::Failed {
        kind: FailureKind::PipelineFailure,
        detail: Some("job build failed".into()),
    };
    store.finish(&failed, &failure).unwrap();

    let pending = store.create_run(&new("refs/tags/v1.0")).unwrap().run.id;

    let live = store.create_run(&new("refs/heads/live")).unwrap().run.id;
    store.claim(&live, &alive).unwrap();
    store.plan_jobs(&live, &["build"]).unwrap();
    store.start_job(&live, "build").unwrap();
    store.step_started(&live, "build", 1, "sleep 600").unwrap();

    let orphan = store.create_run(&new("refs/heads/orphan")).unwrap().run.id;
    store.claim(&orphan, &gone).unwrap();
    store.plan_jobs(&orphan, &["build", "test"]).unwrap();
    store.start_job(&orphan, "build").unwrap();

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
        Repo { bare, work }
    }

    /// Wait (up to a minute) until the run satisfies `done`; returns it.
    pub fn wait_for(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&quire_store::Run) -> bool,
    ) -> quire_store::Run {
        let store = self.store();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let run = store.resolve_run(id).unwrap();
            if done(&run) {
                return run;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {id} never became {what}: {run:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
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
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while alive(pid) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Wait for a file holding a pid, written by a step.
pub fn read_pid_file(path: &Path) -> u32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pid in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
