//! A home and the repositories that push to it, and the binaries pointed
//! at that home.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use assert_cmd::Command;
use quire_store::query::RunDetail;
use quire_store::{Home, Run, Store};
use serde_json::Value;

use crate::wait::wait_until;

/// A temporary folder holding a home (`home/`) and whatever a test puts
/// beside it (repositories, work trees, gates); removed when dropped.
pub struct Env {
    dir: tempfile::TempDir,
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
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
            // Lines as long as they are: none is cut to a terminal's width.
            .env_remove("COLUMNS")
            .arg("--home")
            .arg(self.home().dir())
            .args(args)
            .timeout(Duration::from_secs(60));
        cmd
    }

    /// `BIN --home HOME`, as a plain process a test may spawn, signal and
    /// read as it goes (no timeout, the environment as the test's).
    pub fn process(&self, bin: &str) -> Process {
        let mut command = Process::new(assert_cmd::cargo::cargo_bin(bin));
        command.arg("--home").arg(self.home().dir());
        command
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

    /// `quire-runs ARGS`, which must succeed; its stdout, which must be
    /// UTF-8.
    pub fn stdout(&self, args: &[&str]) -> String {
        stdout(&mut self.runs(args))
    }

    /// `quire-runs logs RUN JOB`, as a person reads it.
    pub fn logs(&self, run: &str, job: &str) -> String {
        self.stdout(&["logs", run, job])
    }

    /// The run with its jobs and their steps, as the store holds it now.
    pub fn detail(&self, run: &str) -> RunDetail {
        self.store().run_detail(run).unwrap()
    }
}

/// What a command printed on stdout; it must succeed, and print UTF-8.
pub fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
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

    /// Wait (up to [`DEADLINE`](crate::DEADLINE)) until the run satisfies
    /// `done`; returns it.
    pub fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Run) -> bool) -> Run {
        wait_for_run(&self.home(), id, what, done)
    }

    /// Wait until the run has ended; the run as it ended.
    pub fn wait_terminal(&self, id: &str) -> Run {
        self.wait_for(id, "terminal", |r| r.state.is_terminal())
    }

    /// Every run, newest first.
    pub fn all_runs(&self) -> Vec<Run> {
        let filter = quire_store::query::ListFilter {
            limit: 10_000,
            ..Default::default()
        };
        self.store().list_runs(&filter).unwrap()
    }
}

fn wait_for_run(home: &Home, id: &str, what: &str, done: impl Fn(&Run) -> bool) -> Run {
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
    pub fn push_and_wait(&self, pipeline: &str) -> Run {
        let id = self.push_pipeline(pipeline);
        wait_for_run(&self.home, &id, "terminal", |r| r.state.is_terminal())
    }

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

    /// The tree of a `.quire` folder holding `pipeline` as `ci.toml`, for
    /// hand-made commits; its id.
    pub fn pipeline_tree(&self, pipeline: &str) -> String {
        self.mktree(&format!(
            "100644 blob {}\\tci.toml\\n",
            self.hash_object(pipeline)
        ))
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
