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
            // One repository: it may use every worker.
            format!("max_workers = {workers}\nmax_workers_per_repo = {workers}\n"),
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

/// A small Rust crate using serde (derive) and serde_json, `cargo build && cargo test` with
/// `cache = ["target"]`: the second push's job against the first's, and
/// against the same commands run by hand in a warm clone.
pub fn cargo_cache(bins: &Bins, _quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = Repo::new(dir.path(), "crate");
    repo.install(bins, &home);
    // The toolchain and cargo's registry are in the CI user's home, which
    // the sandbox hides from steps (docs/SECURITY.md): this figure is about
    // caches, so its steps run unconfined.
    std::fs::write(home.join("config.toml"), "sandbox = \"off\"\n").unwrap();
    let files: [(&str, &str); 4] = [
        (
            "Cargo.toml",
            "[package]\nname = \"sample\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nserde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\n",
        ),
        (
            "src/lib.rs",
            "#[derive(serde::Serialize)]\npub struct N {\n    pub n: u64,\n}\n\npub fn show(n: u64) -> String {\n    serde_json::to_string(&N { n }).unwrap()\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn shows() {\n        assert_eq!(super::show(42), \"{\\\"n\\\":42}\");\n    }\n}\n",
        ),
        (
            ".quire/ci.toml",
            "[jobs.build]\ninputs = [\"quire/push\"]\nsh = \"cargo build && cargo test\"\ncache = [\"target\"]\ntimeout = \"20m\"\n",
        ),
        (".gitignore", "target\n"),
    ];
    // The hook's (and so the steps') HOME is the bench's scratch folder:
    // point rustup and cargo at this machine's toolchain and registry.
    let user_home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let env = |name: &str, default: String| std::env::var(name).unwrap_or(default);
    let pipeline = format!(
        "[env]\nRUSTUP_HOME = \"{}\"\nCARGO_HOME = \"{}\"\n\n{}",
        env("RUSTUP_HOME", format!("{user_home}/.rustup")),
        env("CARGO_HOME", format!("{user_home}/.cargo")),
        files[2].1
    );
    let files = [
        files[0],
        files[1],
        (".quire/ci.toml", pipeline.as_str()),
        files[3],
    ];
    repo.commit(&files, "a crate");
    // As an application keeps it: the lock file committed, so neither the
    // job nor the clone resolves the dependencies again.
    run(std::process::Command::new("cargo")
        .arg("generate-lockfile")
        .current_dir(&repo.work));
    run(git(&repo.work).args(["add", "Cargo.lock"]));
    run(git(&repo.work).args(["commit", "--quiet", "-m", "Cargo.lock"]));
    let job_ms = |home: &std::path::Path| -> f64 {
        wait_idle(home);
        let runs_json = |args: &[&str]| -> serde_json::Value {
            let out = run(std::process::Command::new(&bins.quire_runs)
                .arg("--home")
                .arg(home)
                .args(args));
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let newest = runs_json(&["list", "--limit", "1", "--json"]);
        let id = newest[0]["id"].as_str().unwrap().to_string();
        let shown = runs_json(&["show", &id, "--json"]);
        if shown["state"] != "complete" {
            let logs = run(std::process::Command::new(&bins.quire_runs)
                .arg("--home")
                .arg(home)
                .args(["logs", &id]));
            panic!("the run failed:\n{}", String::from_utf8_lossy(&logs.stdout));
        }
        let job = &shown["jobs"][0];
        (job["finished_at_ms"].as_i64().unwrap() - job["started_at_ms"].as_i64().unwrap()) as f64
    };
    repo.push(&["--quiet", "origin", "main"]);
    let first = job_ms(&home);
    // Later pushes, each waited for (a push while one runs would
    // supersede it): the median of three.
    let mut later: Vec<f64> = (0..3)
        .map(|n| {
            repo.commit(&[("README", &format!("push {n}\n"))], "another push");
            repo.push(&["--quiet", "origin", "main"]);
            job_ms(&home)
        })
        .collect();
    later.sort_by(f64::total_cmp);
    let second = later[1];
    // By hand, in a clone that has built once already.
    let clone = dir.path().join("by-hand");
    run(git(dir.path())
        .args(["clone", "--quiet", "--branch", "main"])
        .arg(&repo.bare)
        .arg(&clone));
    let by_hand = || {
        run(std::process::Command::new("sh")
            .arg("-c")
            .arg("cargo build -q && cargo test -q")
            .current_dir(&clone))
    };
    by_hand();
    let mut warm: Vec<std::time::Duration> = (0..3).map(|_| time(by_hand).0).collect();
    warm.sort();
    let warm = warm[1];
    row(
        "a small crate (serde with derive, serde_json), `cargo build && cargo test` with `cache = [\"target\"]`",
        &format!(
            "first push's job: {:.2} s; the same commands by hand in a warm clone: {:.2} s",
            first / 1000.0,
            warm.as_secs_f64()
        ),
        &format!(
            "later pushes' job (median of 3): {:.2} s: **{:.2}x** the first, **{:.2}x** by hand (median of 3)",
            second / 1000.0,
            second / first,
            second / 1000.0 / warm.as_secs_f64()
        ),
        "<= 0.3x the first; <= 1.2x by hand",
    );
}

/// Issue 24's figure: 200 trivial runs (`sh = "true"`), one push of 200
/// refs, `max_workers = 2`, until the last run ends, in a repository that
/// holds 10 other refs and in one that holds 10,000 (loose, as pushes
/// leave them): a run's set-up reads only the ref it runs, so the two
/// should be within 10%. Beside them, the same 200 runs with the sandbox,
/// the pid namespace, containment and the steps' network namespace off:
/// what quire's own bookkeeping (record, claim, checkout, ingest, pack,
/// announce) costs without the isolation.
pub fn runs(bins: &Bins, quick: bool) {
    let count = if quick { 60 } else { 200 };
    let reps = if quick { 1 } else { 5 };
    struct Setup {
        _dir: tempfile::TempDir,
        home: std::path::PathBuf,
        repo: Repo,
        isolated: bool,
    }
    let setup = |others: usize, isolated: bool| -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let sandbox = if isolated {
            ""
        } else {
            "sandbox = \"off\"\nstep_network = \"host\"\n"
        };
        std::fs::write(
            home.join("config.toml"),
            format!("max_workers = 2\nmax_workers_per_repo = 2\n{sandbox}"),
        )
        .unwrap();
        let repo = Repo::new(dir.path(), "app");
        repo.install(bins, &home);
        repo.commit(
            &[(
                ".quire/ci.toml",
                "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"true\"\n",
            )],
            "pipeline",
        );
        repo.push(&["--quiet", "-o", "ci.skip", "origin", "main"]);
        // No `git maintenance` after a push: it would pack the refs this
        // bench keeps loose, and take the machine while runs are timed.
        run(git(&repo.bare).args(["config", "receive.autogc", "false"]));
        let head =
            String::from_utf8(run(git(&repo.work).args(["rev-parse", "HEAD"])).stdout).unwrap();
        for i in 0..others {
            std::fs::write(repo.bare.join(format!("refs/tags/other{i}")), &head).unwrap();
        }
        Setup {
            _dir: dir,
            home,
            repo,
            isolated,
        }
    };
    // One push of `count` new branches, until its last run ends; or
    // (`skip`) the same push with `-o ci.skip`: git's own cost of it,
    // which grows with the refs git advertises to the pusher.
    let once = |setup: &Setup, rep: usize, skip: bool| -> Duration {
        let tag = if skip { "s" } else { "b" };
        let names: Vec<String> = (0..count).map(|i| format!("r{rep}{tag}{i}")).collect();
        for name in &names {
            run(git(&setup.repo.work).args(["branch", name]));
        }
        let mut push = git(&setup.repo.work);
        push.args(["push", "--quiet"]);
        if skip {
            push.args(["-o", "ci.skip"]);
        }
        push.arg("origin");
        push.args(&names);
        if !setup.isolated {
            push.env("QUIRE_PIDNS", "off")
                .env("QUIRE_CONTAINMENT", "off");
        }
        let took = time(|| {
            run(&mut push);
            wait_idle(&setup.home);
        })
        .0;
        // The repository holds its 10 or 10,000 refs again for the next.
        run(git(&setup.repo.work)
            .args(["branch", "-q", "-D"])
            .args(&names));
        let remote: Vec<String> = names.iter().map(|n| format!("origin/{n}")).collect();
        run(git(&setup.repo.work)
            .args(["branch", "-q", "-D", "-r"])
            .args(&remote));
        for name in &names {
            std::fs::remove_file(setup.repo.bare.join("refs/heads").join(name)).unwrap();
        }
        took
    };
    let setups = [setup(10, true), setup(10_000, true), setup(10, false)];
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut pushes: [Vec<Duration>; 2] = Default::default();
    // Interleaved, so that a noisy moment falls on all alike.
    for rep in 0..reps {
        for (setup, times) in setups.iter().zip(times.iter_mut()) {
            times.push(once(setup, rep, false));
        }
        for (setup, pushes) in setups.iter().zip(pushes.iter_mut()) {
            pushes.push(once(setup, rep, true));
        }
    }
    let [few, many, bare] = times.map(|t| Stats::of(&t));
    let [push_few, push_many] = pushes.map(|t| Stats::of(&t));
    let rate = |s: &Stats| count as f64 / (s.median / 1000.0);
    // quire's share: the runs' time less git's for the same push.
    let net = |s: &Stats, push: &Stats| s.median - push.median;
    row(
        &format!(
            "{count} trivial runs (`sh = \"true\"`), one push, max_workers = 2, until the last ends (median of {reps} pushes, interleaved)"
        ),
        &format!(
            "sandbox, pid namespace, containment and network namespace off, 10 refs: {bare}, {:.0} runs/s",
            rate(&bare)
        ),
        &format!(
            "as by default: 10 refs {few}, **{:.0} runs/s**; 10,000 refs {many}, **{:.0} runs/s**; **{:.2}x** (10,000 against 10). The same push with `-o ci.skip` (git alone): 10 refs {push_few}, 10,000 refs {push_many}; less that, quire's share: {:.0} ms and {:.0} ms, **{:.2}x**",
            rate(&few),
            rate(&many),
            many.median / few.median,
            net(&few, &push_few),
            net(&many, &push_many),
            net(&many, &push_many) / net(&few, &push_few)
        ),
        ">= 250 runs/s in both; within 1.1x",
    );
}
