//! Issue 12's scheduling figures: jobs of one run side by side, and runs of
//! one push on every worker.

use std::time::Duration;

use crate::harness::{Bins, Repo, Stats, git, row, run, time, wait_idle};

/// Three independent `sleep 2` jobs and one that needs all three
/// (`sleep 0.5`): the wall time of `trigger --wait` against the critical
/// path (2.5 s). `max_parallel_jobs = 4`: the default is the number of
/// CPUs, two on the machines this runs on, and sleeping jobs need none.
pub fn jobs(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("config.toml"), "max_parallel_jobs = 4\n").unwrap();
    let repo = Repo::new(dir.path(), "app");
    repo.install(bins, &home);
    let pipeline = "\
[jobs.a]\ninputs = [\"quire/push\"]\nsh = \"sleep 2\"\n\
[jobs.b]\ninputs = [\"quire/push\"]\nsh = \"sleep 2\"\n\
[jobs.c]\ninputs = [\"quire/push\"]\nsh = \"sleep 2\"\n\
[jobs.last]\ninputs = [\"a\", \"b\", \"c\"]\nsh = \"sleep 0.5\"\n";
    repo.commit(&[(".quire/ci.toml", pipeline)], "three then one");
    repo.push(&["--quiet", "-o", "ci.skip", "origin", "main"]);
    let n = if quick { 2 } else { 5 };
    let samples: Vec<Duration> = (0..n)
        .map(|_| {
            time(|| {
                run(std::process::Command::new(&bins.quire_run)
                    .arg("--home")
                    .arg(&home)
                    .args(["trigger", "--git-dir"])
                    .arg(&repo.bare)
                    .args(["main", "--wait"]))
            })
            .0
        })
        .collect();
    let stats = Stats::of(&samples);
    let critical = 2.5;
    row(
        "3 independent `sleep 2` jobs and one needing all three (`sleep 0.5`), `trigger --wait`, max_parallel_jobs = 4",
        &format!("the critical path: {critical:.1} s"),
        &format!(
            "{stats}; **{:.2}x** the critical path (one job at a time would be 6.5 s, 2.6x)",
            stats.median / 1000.0 / critical
        ),
        "<= 1.1x",
    );
}

/// 60 refs in one push, each a short pipeline (`sleep 0.2`): from the push
/// to the last run's end with `max_workers = 2` against `max_workers = 1`.
pub fn workers(bins: &Bins, quick: bool) {
    let refs = if quick { 20 } else { 60 };
    let mut took = Vec::new();
    for workers in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join("config.toml"),
            format!("max_workers = {workers}\n"),
        )
        .unwrap();
        let repo = Repo::new(dir.path(), "app");
        repo.install(bins, &home);
        repo.commit(
            &[(
                ".quire/ci.toml",
                "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"sleep 0.2\"\n",
            )],
            "pipeline",
        );
        for i in 0..refs {
            run(git(&repo.work).args(["branch", &format!("b{i}")]));
        }
        let (elapsed, ()) = time(|| {
            repo.push(&["--quiet", "--all", "origin"]);
            wait_idle(&home);
        });
        took.push(elapsed);
    }
    let rate = |d: Duration| refs as f64 / d.as_secs_f64();
    row(
        &format!("{refs} refs in one push, each `sleep 0.2`, until the last run ends"),
        &format!(
            "max_workers = 1: {:.2} s, {:.1} runs/s",
            took[0].as_secs_f64(),
            rate(took[0])
        ),
        &format!(
            "max_workers = 2: {:.2} s, {:.1} runs/s; **{:.2}x**",
            took[1].as_secs_f64(),
            rate(took[1]),
            rate(took[1]) / rate(took[0])
        ),
        ">= 1.8x",
    );
}
