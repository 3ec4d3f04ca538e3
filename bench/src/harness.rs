//! Timing, statistics, and the real parts a benchmark drives: the release
//! binaries, bare repositories, git.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The release binaries, built once at the start.
pub struct Bins {
    pub quire_run: PathBuf,
    pub quire_runs: PathBuf,
}

impl Bins {
    pub fn build() -> Bins {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--release", "--quiet", "-p", "quire", "--bins"])
            .status()
            .expect("cargo");
        assert!(status.success(), "building the release binaries failed");
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        Bins {
            quire_run: target.join("release/quire-run"),
            quire_runs: target.join("release/quire-runs"),
        }
    }
}

/// One line about the machine for the report.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!("{cpus} cores, {model}, {}", jiff::Timestamp::now())
}

/// Median and spread of some samples, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub n: usize,
}

impl Stats {
    pub fn of(samples: &[Duration]) -> Stats {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        Stats {
            median: at(0.5),
            p10: at(0.1),
            p90: at(0.9),
            n: ms.len(),
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} ms (p10 {:.2}, p90 {:.2}, n={})",
            self.median, self.p10, self.p90, self.n
        )
    }
}

/// Time `f`.
pub fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = f();
    (start.elapsed(), value)
}

/// Run a command to completion; panic with its stderr on failure.
pub fn run(command: &mut Command) -> Output {
    let out = command.stdin(Stdio::null()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// git with a fixed identity and no user or system configuration.
pub fn git(cwd: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(cwd)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@quire.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@quire.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", cwd);
    command
}

/// `quire-run --home HOME trigger --git-dir REPO main --wait`, ready to run.
pub fn trigger_main(bins: &Bins, home: &Path, repo: &Repo) -> Command {
    let mut command = Command::new(&bins.quire_run);
    command
        .arg("--home")
        .arg(home)
        .args(["trigger", "--git-dir"])
        .arg(&repo.bare)
        .args(["main", "--wait"]);
    command
}

/// A bare repository and a work tree pushing to it.
pub struct Repo {
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Repo {
    pub fn new(dir: &Path, name: &str) -> Repo {
        let bare = dir.join(format!("{name}.git"));
        let work = dir.join(name);
        run(git(dir).args(["init", "--quiet", "--bare"]).arg(&bare));
        run(git(dir).args(["init", "--quiet", "-b", "main"]).arg(&work));
        run(git(&work).args(["remote", "add", "origin"]).arg(&bare));
        Repo { bare, work }
    }

    pub fn commit(&self, files: &[(&str, &str)], message: &str) {
        for (path, text) in files {
            let file = self.work.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
            run(git(&self.work).args(["add", path]));
        }
        run(git(&self.work).args(["commit", "--quiet", "--allow-empty", "-m", message]));
    }

    pub fn push(&self, args: &[&str]) -> Output {
        run(git(&self.work).arg("push").args(args))
    }

    pub fn install(&self, bins: &Bins, home: &Path) {
        run(Command::new(&bins.quire_run)
            .arg("--home")
            .arg(home)
            .arg("install")
            .arg(&self.bare));
    }
}

/// Wait until no run in `home` is pending or active.
pub fn wait_idle(home: &Path) {
    let store = quire_store::Store::open(&quire_store::Home::at(home)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let live: i64 = store
            .connection()
            .query_row(
                "SELECT count(*) FROM runs WHERE state IN ('pending', 'active')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if live == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "runs never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Peak resident set (VmHWM, KiB) of a child, sampled until it exits.
pub fn peak_rss_kib(command: &mut Command) -> u64 {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak = peak.max(line.split_whitespace().nth(1).unwrap().parse().unwrap());
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            return peak;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A table row of the report.
pub fn row(figure: &str, baseline: &str, measured: &str, budget: &str) {
    println!("| {figure} | {baseline} | {measured} | {budget} |");
}
