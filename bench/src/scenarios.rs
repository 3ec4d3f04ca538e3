//! The benchmark scenarios of issue 6, each printing one or more rows.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quire_model::events::Event;
use quire_store::lifecycle::{NewRun, Worker};
use quire_store::{Home, JobState, Store};
use rusqlite::params;

use crate::harness::{
    Bins, Repo, Stats, git, peak_rss_kib, row, run, time, trigger_main, wait_idle,
};

const QUICK_PIPELINE: &str = "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"true\"\n";

/// The time the hook adds to `git push` of one ref.
pub fn hook(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let plain = Repo::new(dir.path(), "plain");
    let hooked = Repo::new(dir.path(), "hooked");
    hooked.install(bins, &home);
    for repo in [&plain, &hooked] {
        repo.commit(&[(".quire/ci.toml", QUICK_PIPELINE)], "pipeline");
        repo.push(&["--quiet", "origin", "main"]);
    }
    wait_idle(&home);
    let n = if quick { 10 } else { 40 };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for i in 0..n {
        for repo in [&plain, &hooked] {
            repo.commit(&[("n.txt", &i.to_string())], &format!("change {i}"));
        }
        without.push(time(|| plain.push(&["--quiet", "origin", "main"])).0);
        with.push(time(|| hooked.push(&["--quiet", "origin", "main"])).0);
        wait_idle(&home);
    }
    // The hook process alone, fed one line, as git would.
    let sha = String::from_utf8(run(git(&hooked.bare).args(["rev-parse", "main"])).stdout).unwrap();
    let mut alone = Vec::new();
    for _ in 0..n {
        let mut child = Command::new(&bins.quire_run)
            .arg("--home")
            .arg(&home)
            .args(["hook", "--git-dir"])
            .arg(&hooked.bare)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let line = format!("{} {} refs/heads/main\n", "0".repeat(40), sha.trim());
        let started = Instant::now();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        child.wait().unwrap();
        alone.push(started.elapsed());
        wait_idle(&home);
    }
    let (a, b) = (Stats::of(&without), Stats::of(&with));
    row(
        "time the hook adds to `git push` of one ref (run recorded, worker started)",
        &format!("push without the hook: {a}"),
        &format!(
            "push with it: {b}; **+{:.2} ms** median; `quire-run hook` alone: {}",
            b.median - a.median,
            Stats::of(&alone)
        ),
        "<= 4 ms median (issue 24)",
    );
}

/// What keeping pushers off `refs/notes/ci` costs a push of one ref:
/// three repositories with quire's post-receive hook, pushed in turn with
/// `-o ci.skip` (the hook then records nothing, the same in all three):
/// one with nothing guarding the notes ref, one as `install` sets it up
/// now (`receive.hideRefs`), and one with the pre-receive hook earlier
/// installs wrote (the same shell loop, comparing ref names).
pub fn pre_receive(bins: &Bins, quick: bool) {
    const EARLIER_HOOK: &str = "#!/bin/sh\n\
        while read -r old new ref || [ -n \"$ref\" ]; do\n\
        \x20   if [ \"$ref\" = refs/notes/ci ]; then echo refused; exit 1; fi\n\
        done\nexit 0\n";
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let unguarded = Repo::new(dir.path(), "unguarded");
    let hidden = Repo::new(dir.path(), "hidden");
    let hooked = Repo::new(dir.path(), "hooked");
    for repo in [&unguarded, &hidden, &hooked] {
        repo.install(bins, &home);
        repo.commit(&[(".quire/ci.toml", QUICK_PIPELINE)], "pipeline");
        repo.push(&["--quiet", "-o", "ci.skip", "origin", "main"]);
    }
    for repo in [&unguarded, &hooked] {
        run(git(&repo.bare).args(["config", "--unset-all", "receive.hideRefs"]));
    }
    let hook = hooked.bare.join("hooks/pre-receive");
    std::fs::write(&hook, EARLIER_HOOK).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let n = if quick { 10 } else { 40 };
    let (mut none, mut hide, mut earlier) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        for repo in [&unguarded, &hidden, &hooked] {
            repo.commit(&[("n.txt", &i.to_string())], &format!("change {i}"));
        }
        let push =
            |repo: &Repo| time(|| repo.push(&["--quiet", "-o", "ci.skip", "origin", "main"])).0;
        none.push(push(&unguarded));
        hide.push(push(&hidden));
        earlier.push(push(&hooked));
    }
    let (a, b, c) = (Stats::of(&none), Stats::of(&hide), Stats::of(&earlier));
    row(
        "time keeping `refs/notes/ci` from pushers adds to `git push` of one ref (all pushes `-o ci.skip`)",
        &format!("push with quire's post-receive hook only, the notes ref open: {a}"),
        &format!(
            "`receive.hideRefs` (as `install` sets it): {b}; **{:+.2} ms** median; \
             the pre-receive hook of earlier installs: {c}; {:+.2} ms",
            b.median - a.median,
            c.median - a.median,
        ),
        "nothing measurable: no process",
    );
}

/// A repository whose main holds a one-job pipeline of 200 one-command
/// steps, its hook installed for `home` (which that makes), pushed, and
/// the run that push started ended.
fn two_hundred_steps(bins: &Bins, dir: &std::path::Path, home: &std::path::Path) -> Repo {
    steps_repo(bins, dir, home, "app", 200)
}

/// [`two_hundred_steps`] with `count` steps, as repository `name`.
fn steps_repo(
    bins: &Bins,
    dir: &std::path::Path,
    home: &std::path::Path,
    name: &str,
    count: usize,
) -> Repo {
    let repo = Repo::new(dir, name);
    repo.install(bins, home);
    let steps: Vec<String> = (1..=count).map(|i| format!("\"echo {i}\"")).collect();
    repo.commit(
        &[(
            ".quire/ci.toml",
            &format!(
                "[jobs.many]\ninputs = [\"quire/push\"]\nsh = [{}]\n",
                steps.join(", ")
            ),
        )],
        "many",
    );
    repo.push(&["--quiet", "origin", "main"]);
    wait_idle(home);
    repo
}

/// `quire-run trigger --wait` of `repo`'s main, with `QUIRE_CONTAINMENT`
/// set to `containment`.
fn trigger_wait(bins: &Bins, home: &std::path::Path, repo: &Repo, containment: &str) -> Duration {
    time(|| {
        run(trigger_main(bins, home, repo).env("QUIRE_CONTAINMENT", containment));
    })
    .0
}

/// 200 one-command steps through `trigger --wait` against bash forking them.
pub fn steps(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = two_hundred_steps(bins, dir.path(), &home);
    let script = dir.path().join("baseline.sh");
    let log = dir.path().join("baseline.log");
    let body: String = (1..=200)
        .map(|i| format!("sh -c 'echo {i}' >> {} 2>&1\n", log.display()))
        .collect();
    std::fs::write(&script, body).unwrap();
    let reps = if quick { 3 } else { 9 };
    let one = steps_repo(bins, dir.path(), &home, "one", 1);
    let one_script = dir.path().join("one.sh");
    std::fs::write(
        &one_script,
        format!("sh -c 'echo 1' >> {} 2>&1\n", log.display()),
    )
    .unwrap();
    let trigger_of = |repo: &Repo| {
        run(&mut trigger_main(bins, &home, repo));
    };
    let trigger = || trigger_of(&repo);
    let measure = || {
        let (mut bash, mut quire) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            bash.push(time(|| run(Command::new("bash").arg(&script))).0);
            quire.push(time(trigger).0);
        }
        (Stats::of(&bash), Stats::of(&quire))
    };
    let (b, q) = measure();
    // A step's own cost, without the run's: the 200-step run less a
    // 1-step run, a 199th each, against the same for bash.
    let (mut bash_one, mut quire_one) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        bash_one.push(time(|| run(Command::new("bash").arg(&one_script))).0);
        quire_one.push(time(|| trigger_of(&one)).0);
    }
    let (b1, q1) = (Stats::of(&bash_one), Stats::of(&quire_one));
    let per = |many: &Stats, one: &Stats| (many.median - one.median) / 199.0;
    row(
        "a step's own cost: the 200-step run less a 1-step run, per step",
        &format!(
            "bash: {:.3} ms a command (200 commands {:.2} ms, 1 command {:.2} ms)",
            per(&b, &b1),
            b.median,
            b1.median
        ),
        &format!(
            "{:.3} ms a step (200 steps {:.2} ms, 1 step {:.2} ms: the run's own cost); **{:.2}x**",
            per(&q, &q1),
            q.median,
            q1.median,
            per(&q, &q1) / per(&b, &b1)
        ),
        "report",
    );
    row(
        "200 one-command steps through `quire-run trigger --wait` (materialize, plan, execute, log, ingest), sandboxed and contained as by default",
        &format!("bash forking the same 200 commands: {b}"),
        &format!("{q}; **{:.2}x**", q.median / b.median),
        "<= 1.0x",
    );
    // On a disk without a journal each new inode scans the recently
    // deleted ones: the same after 50 more runs of these 200 steps in this
    // home, each of which made and deleted its files.
    for _ in 0..50 {
        trigger();
    }
    let (b, q) = measure();
    row(
        "the same after 50 more runs in the same home (the inodes they freed are recently deleted)",
        &format!("bash forking the same 200 commands: {b}"),
        &format!("{q}; **{:.2}x**", q.median / b.median),
        "<= 1.0x",
    );
}

/// The 200-step pipeline of `steps` with its processes contained (a cgroup
/// per job where this machine allows it, and the subreaper) against the
/// same without containment (`QUIRE_CONTAINMENT=off`: only the environment
/// sweep), interleaved.
pub fn contain(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = two_hundred_steps(bins, dir.path(), &home);
    let reps = if quick { 3 } else { 9 };
    let (mut off, mut auto, mut subreaper) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        off.push(trigger_wait(bins, &home, &repo, "off"));
        auto.push(trigger_wait(bins, &home, &repo, "auto"));
        subreaper.push(trigger_wait(bins, &home, &repo, "subreaper"));
    }
    // What `auto` gave on this machine: the last run it executed says.
    let store = Store::open(&Home::at(&home)).unwrap();
    let auto_is: Option<String> = store
        .connection()
        .query_row(
            "SELECT containment FROM runs ORDER BY id DESC LIMIT 1 OFFSET 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let (o, a, s) = (Stats::of(&off), Stats::of(&auto), Stats::of(&subreaper));
    row(
        "the 200 steps of `steps` with every process contained (issue 13)",
        &format!("without containment (`QUIRE_CONTAINMENT=off`): {o}"),
        &format!(
            "default (here `{}`): {a}, **{:.2}x**; subreaper only: {s}, **{:.2}x**",
            auto_is.as_deref().unwrap_or("none"),
            a.median / o.median,
            s.median / o.median
        ),
        "report",
    );
}

/// The same 200 one-command steps with the step sandbox (Landlock, each
/// step's child restricting itself before exec) against without it, both
/// contained as the machine allows; and with both the sandbox and
/// containment against neither (issue 13's measure), each through
/// `trigger --wait`, taking turns.
pub fn sandbox(bins: &Bins, quick: bool) {
    let steps: Vec<String> = (1..=200).map(|i| format!("\"echo {i}\"")).collect();
    let pipeline = format!(
        "[jobs.many]\ninputs = [\"quire/push\"]\nsh = [{}]\n",
        steps.join(", ")
    );
    let [on, off, neither] = confinement_costs(bins, quick, &pipeline);
    row(
        "200 one-command steps with the step sandbox on (`sandbox = \"required\"`: Landlock, each step's child restricts itself before exec)",
        &format!("the same with `sandbox = \"off\"`: {off}"),
        &format!("{on}; **{:.2}x**", on.median / off.median),
        "report",
    );
    row(
        "the same 200 steps sandboxed and contained (the defaults: here a cgroup per job, each step started in it)",
        &format!("neither (`sandbox = \"off\"`, `QUIRE_CONTAINMENT=off`): {neither}"),
        &format!("{on}; **{:.2}x**", on.median / neither.median),
        "<= 1.05x",
    );
    // Per job: 50 jobs of one `true` each (a cgroup made, entered, killed
    // and removed for each).
    let jobs: String = (1..=50)
        .map(|i| format!("[jobs.j{i}]\ninputs = [\"quire/push\"]\nsh = \"true\"\n"))
        .collect();
    let [on, _, neither] = confinement_costs(bins, quick, &jobs);
    row(
        "50 jobs of one `true` step each, sandboxed and contained (per job: its cgroup made, entered, killed and removed)",
        &format!("neither: {neither}"),
        &format!(
            "{on}; **{:.2}x**, {:+.2} ms a job",
            on.median / neither.median,
            (on.median - neither.median) / 50.0
        ),
        "report",
    );
}

/// `pipeline` through `trigger --wait` in three homes, taking turns:
/// sandboxed and contained (the defaults), contained only, neither.
fn confinement_costs(bins: &Bins, quick: bool, pipeline: &str) -> [Stats; 3] {
    let dir = tempfile::tempdir().unwrap();
    // (name, sandbox, containment)
    let modes = [
        ("on", "required", "auto"),
        ("off", "off", "auto"),
        ("neither", "off", "off"),
    ];
    let setups = modes.map(|(name, sandbox, containment)| {
        let home = dir.path().join(format!("home-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join("config.toml"),
            format!("sandbox = \"{sandbox}\"\n"),
        )
        .unwrap();
        let repo = Repo::new(dir.path(), &format!("app-{name}"));
        repo.install(bins, &home);
        repo.commit(&[(".quire/ci.toml", pipeline)], "many");
        repo.push(&["--quiet", "origin", "main"]);
        (home, repo, containment)
    });
    let reps = if quick { 3 } else { 9 };
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..reps {
        for (i, (home, repo, containment)) in setups.iter().enumerate() {
            let (took, out) = time(|| {
                run(Command::new(&bins.quire_run)
                    .env("QUIRE_CONTAINMENT", containment)
                    .arg("--home")
                    .arg(home)
                    .args(["trigger", "--git-dir"])
                    .arg(&repo.bare)
                    .args(["main", "--wait"]))
            });
            assert!(out.status.success());
            samples[i].push(took);
        }
    }
    samples.map(|s| Stats::of(&s))
}

fn claimed_run(store: &mut Store, ref_name: &str) -> String {
    let repo_id = store
        .register_repo(
            std::path::Path::new("/srv/git/bench.git"),
            None,
            quire_store::repos::Registration::Seen,
        )
        .unwrap()
        .id;
    let run = store
        .create_run(&NewRun {
            repo_id,
            ref_name,
            sha: "0123456789abcdef0123456789abcdef01234567",
            pushed_at_ms: None,
            previous_sha: None,
            invalid: None,
            ..Default::default()
        })
        .unwrap()
        .run;
    let worker = Worker {
        id: "bench".into(),
        pid: std::process::id(),
        lease: Duration::from_secs(3600),
    };
    store.claim(&run.id, &worker).unwrap();
    run.id
}

/// Events for `jobs` jobs of `steps` steps each (two events a step).
fn step_events(jobs: usize, steps: usize) -> (Vec<String>, Vec<Event>) {
    let ids: Vec<String> = (0..jobs).map(|j| format!("j{j}")).collect();
    let mut events = vec![Event::RunStarted {
        at_ms: 1,
        jobs: ids.clone(),
        allow_failure: Vec::new(),
    }];
    for job in &ids {
        events.push(Event::JobStarted {
            at_ms: 2,
            job: job.clone(),
        });
        for seq in 1..=steps as i64 {
            events.push(Event::StepStarted {
                at_ms: 3,
                job: job.clone(),
                seq,
                cmd: format!("echo {seq}"),
                log_at: None,
            });
            events.push(Event::StepFinished {
                at_ms: 4,
                job: job.clone(),
                seq,
                exit_code: 0,
            });
        }
        events.push(Event::JobFinished {
            at_ms: 5,
            job: job.clone(),
            state: JobState::Complete,
            exit_code: Some(0),
        });
    }
    (ids, events)
}

/// Ingest of 100,000 step events.
pub fn ingest(quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&Home::at(dir.path())).unwrap();
    let (_, events) = step_events(100, 500);
    let step_events = events
        .iter()
        .filter(|e| matches!(e, Event::StepStarted { .. } | Event::StepFinished { .. }))
        .count();
    let batch_run = claimed_run(&mut store, "refs/heads/batch");
    let (took, ()) = time(|| store.ingest(&batch_run, &events).unwrap());
    let batch_rate = step_events as f64 / took.as_secs_f64();
    // Event by event, each its own transaction (the worst case of live ingest).
    let n = if quick { 2_000 } else { 10_000 };
    let single_run = claimed_run(&mut store, "refs/heads/single");
    let (took_single, ()) = time(|| {
        for event in &events[..n] {
            store
                .ingest(&single_run, std::slice::from_ref(event))
                .unwrap();
        }
    });
    row(
        "ingest of an events stream of 100,000 step events",
        "--",
        &format!(
            "one batch: {step_events} step events in {:.0} ms = **{:.0} events/s**; one transaction per event: {:.0} events/s",
            took.as_secs_f64() * 1000.0,
            batch_rate,
            n as f64 / took_single.as_secs_f64()
        ),
        ">= 100,000 events/s",
    );
}

/// Upgrade of a seed-era (schema 0006) store of 100,000 runs.
pub fn upgrade(quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    home.ensure().unwrap();
    let runs = if quick { 20_000 } else { 100_000 };
    {
        let mut conn = rusqlite::Connection::open(home.db_path()).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        quire_store::schema::migrate_to(&mut conn, 6).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut run = tx
                .prepare(
                    "INSERT INTO runs (id, repo, ref_name, sha, state, failure_kind, pushed_at_ms, queued_at_ms,
                                       started_at_ms, finished_at_ms, workspace_path, run_token, git_dir, traceparent)
                     VALUES (?1, 'app.git', ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, '/var/quire/ws', 't', '/srv/git/app.git', NULL)",
                )
                .unwrap();
            let mut job = tx
                .prepare("INSERT INTO jobs (run_id, job_id, state, exit_code, started_at_ms, finished_at_ms) VALUES (?1, ?2, 'complete', 0, ?3, ?4)")
                .unwrap();
            let mut step = tx
                .prepare("INSERT INTO sh_events (run_id, job_id, cmd, exit_code, started_at_ms, finished_at_ms) VALUES (?1, ?2, ?3, 0, ?4, ?5)")
                .unwrap();
            for n in 0..runs {
                let id = format!("{n:08x}-0000-7000-8000-000000000000");
                let at = 1_700_000_000_000i64 + n as i64 * 1000;
                let (state, kind) = match n % 10 {
                    0 => ("failed", Some("pipeline-failure")),
                    1 => ("superseded", None),
                    _ => ("complete", None),
                };
                run.execute(params![
                    id,
                    format!("refs/heads/b{}", n % 50),
                    format!("{n:040x}"),
                    state,
                    kind,
                    at,
                    at + 10,
                    at + 500
                ])
                .unwrap();
                for j in ["build", "test"] {
                    job.execute(params![id, j, at + 10, at + 400]).unwrap();
                    for s in 0..3 {
                        step.execute(params![
                            id,
                            j,
                            format!("make {s}"),
                            at + 10 + s,
                            at + 20 + s
                        ])
                        .unwrap();
                    }
                }
            }
        }
        tx.commit().unwrap();
    }
    let (took, store) = time(|| Store::open(&home).unwrap());
    let count = |t: &str| -> i64 {
        store
            .connection()
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        (count("runs"), count("jobs"), count("sh_events")),
        (runs as i64, runs as i64 * 2, runs as i64 * 6)
    );
    row(
        &format!(
            "upgrade of a seed-era (schema 0006) store of {runs} runs ({} jobs, {} steps) to the latest schema",
            runs * 2,
            runs * 6
        ),
        "--",
        &format!("**{:.2} s**, every row kept", took.as_secs_f64()),
        "report; a few seconds",
    );
}

/// Worker peak RSS while a step prints 1 GiB.
pub fn memory(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let bytes: u64 = if quick { 256 << 20 } else { 1 << 30 };
    // A home whose log cap (max_log_mb) is above what the step prints, so
    // all of it is written.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("config.toml"), "max_log_mb = 2048\n").unwrap();
    let measure = |name: &str, step: &str| {
        let work = dir.path().join(name);
        std::fs::create_dir_all(work.join(".quire")).unwrap();
        std::fs::write(
            work.join(".quire/ci.toml"),
            format!("[jobs.out]\ninputs = [\"quire/push\"]\nsh = [{step:?}]\n"),
        )
        .unwrap();
        let logs = dir.path().join(format!("{name}.out"));
        let kib = peak_rss_kib(
            Command::new(&bins.quire_run)
                .arg("--home")
                .arg(&home)
                .arg("exec")
                .arg("--workspace")
                .arg(&work)
                .arg("--logs")
                .arg(&logs),
        );
        let _ = std::fs::remove_dir_all(&logs);
        kib
    };
    let one = measure("one", "echo one line; sleep 1");
    let big = measure("big", &format!("head -c {bytes} /dev/zero | tr '\\0' x"));
    row(
        &format!("worker peak RSS while a step prints {} MiB", bytes >> 20),
        &format!("the same for a step that prints one line: {one} KiB"),
        &format!("{big} KiB: **{:+} KiB**", big as i64 - one as i64),
        "within 2 MiB",
    );
}

/// 100 hook invocations at once, one ref each.
pub fn concurrent(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = Repo::new(dir.path(), "app");
    repo.install(bins, &home);
    repo.commit(&[(".quire/ci.toml", QUICK_PIPELINE)], "pipeline");
    repo.push(&["--quiet", "origin", "main"]);
    let sha = String::from_utf8(run(git(&repo.bare).args(["rev-parse", "main"])).stdout).unwrap();
    let sha = sha.trim();
    let n = if quick { 30 } else { 100 };
    let started = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|i| {
            let mut child = Command::new(&bins.quire_run)
                .arg("--home")
                .arg(&home)
                .args(["hook", "--git-dir"])
                .arg(&repo.bare)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let line = format!("{} {sha} refs/heads/b{i}\n", "0".repeat(40));
            child
                .stdin
                .take()
                .unwrap()
                .write_all(line.as_bytes())
                .unwrap();
            child
        })
        .collect();
    let mut failures = 0;
    let mut lock_errors = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        failures += usize::from(!out.status.success());
        lock_errors += text.matches("locked").count();
    }
    let took = started.elapsed();
    let store = Store::open(&Home::at(&home)).unwrap();
    let recorded: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    row(
        &format!("{n} hook invocations at once on {n} refs (separate processes)"),
        "--",
        &format!(
            "{recorded} runs recorded, {failures} failed hooks, {lock_errors} lock errors; all done in **{:.0} ms**",
            took.as_secs_f64() * 1000.0
        ),
        "all recorded, zero lock errors",
    );
    wait_idle(&home);
}

/// A burst of 20 pushes to one ref.
pub fn burst(bins: &Bins, _quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = Repo::new(dir.path(), "app");
    repo.install(bins, &home);
    repo.commit(
        &[(
            ".quire/ci.toml",
            "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"sleep 1\"\n",
        )],
        "pipeline",
    );
    let started = Instant::now();
    for i in 0..20 {
        repo.commit(&[("n.txt", &i.to_string())], &format!("push {i}"));
        repo.push(&["--quiet", "origin", "main"]);
    }
    let pushed = Instant::now();
    wait_idle(&home);
    let done = pushed.elapsed();
    let store = Store::open(&Home::at(&home)).unwrap();
    let count = |state: &str| -> i64 {
        store
            .connection()
            .query_row("SELECT count(*) FROM runs WHERE state = ?1", [state], |r| {
                r.get(0)
            })
            .unwrap()
    };
    row(
        "burst of 20 pushes to one ref",
        "--",
        &format!(
            "{} complete, {} superseded; pushes took {:.0} ms; last push to its run's end: **{:.0} ms** (the pipeline itself sleeps 1000 ms)",
            count("complete"),
            count("superseded"),
            (pushed - started).as_secs_f64() * 1000.0,
            done.as_secs_f64() * 1000.0
        ),
        "exactly one run executes",
    );
}

/// A store of `runs` runs (2 jobs, 6 steps each), built directly.
pub(crate) fn big_store(home: &Home, runs: usize) -> String {
    let mut store = Store::open(home).unwrap();
    for n in 0..20 {
        let path = format!("/srv/git/repo{n}.git");
        store
            .register_repo(
                std::path::Path::new(&path),
                None,
                quire_store::repos::Registration::Seen,
            )
            .unwrap();
    }
    drop(store);
    let mut conn = rusqlite::Connection::open(home.db_path()).unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = conn.transaction().unwrap();
    let mut middle = String::new();
    {
        let mut run = tx
            .prepare(
                "INSERT INTO runs (id, repo_id, ref_name, sha, state, failure_kind, pushed_at_ms, queued_at_ms,
                                   started_at_ms, finished_at_ms, traceparent)
                 VALUES (?1, (SELECT id FROM repos WHERE name = ?2), ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, '00-x-y-01')",
            )
            .unwrap();
        let mut job = tx
            .prepare("INSERT INTO jobs (run_id, job_id, position, state, exit_code, started_at_ms, finished_at_ms) VALUES (?1, ?2, ?3, 'complete', 0, ?4, ?5)")
            .unwrap();
        let mut step = tx
            .prepare("INSERT INTO sh_events (run_id, job_id, seq, cmd, exit_code, started_at_ms, finished_at_ms) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)")
            .unwrap();
        for n in 0..runs {
            // A UUID v7 as quire writes one (8-4-4-4-12 hex digits, the
            // time in the first 12): its time, then `n`.
            let ms = 0x0190_0000_0000u64 + n as u64;
            let id = format!("{:08x}-{:04x}-7000-8000-{n:012x}", ms >> 16, ms & 0xffff);
            let at = 1_700_000_000_000i64 + n as i64 * 1000;
            let (state, kind) = if n % 10 == 0 {
                ("failed", Some("pipeline-failure"))
            } else {
                ("complete", None)
            };
            run.execute(params![
                id,
                format!("repo{}.git", n % 20),
                format!("refs/heads/b{}", n % 200),
                format!("{n:040x}"),
                state,
                kind,
                at,
                at + 10,
                at + 900
            ])
            .unwrap();
            for (p, j) in ["build", "test"].iter().enumerate() {
                job.execute(params![id, j, p as i64, at + 10, at + 800])
                    .unwrap();
                for s in 1..=3i64 {
                    step.execute(params![
                        id,
                        j,
                        s,
                        format!("make step{s}"),
                        at + 10 * s,
                        at + 10 * s + 5
                    ])
                    .unwrap();
                }
            }
            if n == runs / 2 {
                middle = id;
            }
        }
    }
    tx.commit().unwrap();
    store = Store::open(home).unwrap();
    store
        .connection()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")
        .unwrap();
    middle
}

/// list and show against sqlite3 running the equivalent query, at 10k,
/// 100k and 1M runs.
pub fn queries(bins: &Bins, quick: bool) {
    let sizes: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    for &size in sizes {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let (built, id) = time(|| big_store(&home, size));
        let db = home.db_path();
        let reps = 21;
        let sample = |command: &mut dyn FnMut() -> Command| -> Stats {
            let mut samples = Vec::new();
            for _ in 0..reps {
                let mut c = command();
                c.stdout(Stdio::null()).env("NO_COLOR", "1");
                samples.push(time(|| run(&mut c)).0);
            }
            Stats::of(&samples)
        };
        let list = sample(&mut || {
            let mut c = Command::new(&bins.quire_runs);
            c.arg("--home")
                .arg(home.dir())
                .args(["list", "--limit", "20"]);
            c
        });
        let list_sql = sample(&mut || {
            let mut c = Command::new("sqlite3");
            c.arg(&db).arg(
                "SELECT runs.id, repos.name, ref_name, sha, state, failure_kind, queued_at_ms, started_at_ms, finished_at_ms \
                 FROM runs JOIN repos ON repos.id = runs.repo_id ORDER BY queued_at_ms DESC, runs.id DESC LIMIT 20;",
            );
            c
        });
        let show = sample(&mut || {
            let mut c = Command::new(&bins.quire_runs);
            c.arg("--home").arg(home.dir()).args(["show", &id]);
            c
        });
        let show_sql = sample(&mut || {
            let mut c = Command::new("sqlite3");
            c.arg(&db).arg(format!(
                "SELECT * FROM runs WHERE id = '{id}'; SELECT * FROM jobs WHERE run_id = '{id}' ORDER BY position; \
                 SELECT * FROM sh_events WHERE run_id = '{id}' ORDER BY job_id, seq;"
            ));
            c
        });
        row(
            &format!(
                "`quire-runs list --limit 20` on {size} runs ({} jobs, {} steps; built in {:.0} s)",
                size * 2,
                size * 6,
                built.as_secs_f64()
            ),
            &format!("sqlite3: {list_sql}"),
            &format!("**{list}**"),
            "<= 50 ms, flat from 10k to 1M",
        );
        row(
            &format!("`quire-runs show` on {size} runs"),
            &format!("sqlite3: {show_sql}"),
            &format!("**{show}**"),
            "<= 50 ms, flat from 10k to 1M",
        );
        // A short id as `list` prints it (a suffix: not a prefix, so it is
        // looked for among the newest runs), pasted back.
        let listed = run(Command::new(&bins.quire_runs)
            .arg("--home")
            .arg(home.dir())
            .args(["list", "--limit", "6"]));
        let listed = String::from_utf8(listed.stdout).unwrap();
        let short = listed
            .lines()
            .last()
            .and_then(|line| line.split_whitespace().next())
            .unwrap()
            .to_string();
        let show_short = sample(&mut || {
            let mut c = Command::new(&bins.quire_runs);
            c.arg("--home").arg(home.dir()).args(["show", &short]);
            c
        });
        row(
            &format!("`quire-runs show SHORT` (`{short}`, as `list` prints it) on {size} runs"),
            &format!("`quire-runs show` by full id: {show}"),
            &format!("**{show_short}**"),
            "<= 50 ms, flat from 10k to 1M",
        );
    }
}

/// A run's workspace is a git checkout: quire's materialize against
/// `git worktree add --detach` of the same commit of 50,000 small files;
/// and the worker's peak RSS when the tree holds a large blob.
pub fn checkout(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = Repo::new(dir.path(), "app");
    repo.install(bins, &home);
    let files = 50_000;
    for i in 0..files {
        let file = repo.work.join(format!("src/m{}/f{i}.rs", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        }
        std::fs::write(file, format!("pub fn f{i}() -> u32 {{ {i} }}\n")).unwrap();
    }
    repo.commit(&[(".quire/ci.toml", QUICK_PIPELINE)], "pipeline");
    run(git(&repo.work).args(["add", "-A"]));
    run(git(&repo.work).args(["commit", "--quiet", "-m", "50,000 files"]));
    repo.push(&["--quiet", "origin", "main"]);
    let sha = String::from_utf8(run(git(&repo.bare).args(["rev-parse", "main"])).stdout).unwrap();
    let store_path = Home::at(&home).db_path();
    let trigger = || {
        Command::new(&bins.quire_run)
            .arg("--home")
            .arg(&home)
            .args(["trigger", "--git-dir"])
            .arg(&repo.bare)
            .args(["main", "--wait"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    // From the worker's claim to its first step: open the repository, read
    // and validate ci.toml, check the tree, check it out.
    let to_first_step = || -> Duration {
        let db = rusqlite::Connection::open(&store_path).unwrap();
        let ms: i64 = db
            .query_row(
                "SELECT jobs.started_at_ms - runs.started_at_ms FROM runs JOIN jobs ON jobs.run_id = runs.id \
                 ORDER BY runs.queued_at_ms DESC, jobs.position LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        Duration::from_millis(ms as u64)
    };
    let tree = dir.path().join("worktree");
    let worktree_add = || {
        let took = time(|| {
            run(git(&repo.bare)
                .args(["worktree", "add", "--detach"])
                .arg(&tree)
                .arg(sha.trim()))
        })
        .0;
        run(git(&repo.bare)
            .args(["worktree", "remove", "--force"])
            .arg(&tree));
        took
    };
    // A warm-up of each (the page cache holds the pack for both).
    worktree_add();
    assert!(trigger().success());
    let reps = if quick { 3 } else { 9 };
    let (mut baseline, mut materialize, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        baseline.push(worktree_add());
        let (took, status) = time(trigger);
        assert!(status.success());
        whole.push(took);
        materialize.push(to_first_step());
    }
    let (b, m) = (Stats::of(&baseline), Stats::of(&materialize));
    row(
        &format!("check out a commit of {files} small files as a run's workspace"),
        &format!("`git worktree add --detach` of the same commit: {b}"),
        &format!(
            "the worker's claim to its first step (open, read ci.toml, check the tree, check out): {m}; **{:.2}x**; the whole `trigger --wait` (also deleting the workspace): {}",
            m.median / b.median,
            Stats::of(&whole)
        ),
        "<= 1.2x",
    );

    // A repository of its own, so the tree is the pipeline and the blob.
    let blobs = Repo::new(dir.path(), "blobs");
    blobs.commit(&[(".quire/ci.toml", QUICK_PIPELINE)], "pipeline");
    let big_bytes: usize = if quick { 64 << 20 } else { 300 << 20 };
    let small = peak_rss_with_children(&blobs, bins, &home, "small", 1024);
    let big = peak_rss_with_children(&blobs, bins, &home, "big", big_bytes);
    let diff = |a: u64, b: u64| b as i64 - a as i64;
    row(
        &format!(
            "worker peak RSS when the tree holds a {} MiB blob (a loose object, as pushed)",
            big_bytes >> 20
        ),
        &format!(
            "the same with a 1 KiB blob: worker {} KiB; git read-tree {} KiB (anonymous {} KiB)",
            small.worker, small.git, small.git_anon
        ),
        &format!(
            "worker {} KiB: **{:+} KiB**; git read-tree {} KiB: {:+} KiB, of which anonymous memory {:+} KiB (the rest is the compressed object file, mapped)",
            big.worker,
            diff(small.worker, big.worker),
            big.git,
            diff(small.git, big.git),
            diff(small.git_anon, big.git_anon)
        ),
        "+20 MiB at most",
    );
}

/// Peak memory (KiB) of a worker and of the processes it started.
struct Peaks {
    /// The worker's VmHWM.
    worker: u64,
    /// The largest VmHWM among its descendants (git read-tree; the step is `true`).
    git: u64,
    /// The largest anonymous resident memory sampled among them: VmHWM also
    /// counts file pages git maps (a loose object is mapped whole).
    git_anon: u64,
}

/// Push a commit holding a blob of `bytes` on branch `name` and run it with
/// `trigger --wait`: its peaks, sampled every 2 ms.
fn peak_rss_with_children(
    repo: &Repo,
    bins: &Bins,
    home: &std::path::Path,
    name: &str,
    bytes: usize,
) -> Peaks {
    let path = repo.work.join("blob.bin");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut written = 0;
    let mut line = 0u64;
    while written < bytes {
        let text = format!(
            "{name} line {line} {}\n",
            line.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        let take = text.len().min(bytes - written);
        out.write_all(&text.as_bytes()[..take]).unwrap();
        written += take;
        line += 1;
    }
    out.into_inner().unwrap().sync_all().unwrap();
    run(git(&repo.work).args(["checkout", "--quiet", "-B", name]));
    run(git(&repo.work).args(["add", "blob.bin"]));
    run(git(&repo.work).args(["commit", "--quiet", "-m", name]));
    repo.push(&["--quiet", "origin", name]);
    let mut child = Command::new(&bins.quire_run)
        .arg("--home")
        .arg(home)
        .args(["trigger", "--git-dir"])
        .arg(&repo.bare)
        .args([name, "--wait"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let kib = |pid: u32, field: &str| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let children = |pid: u32| -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let mut peaks = Peaks {
        worker: 0,
        git: 0,
        git_anon: 0,
    };
    loop {
        peaks.worker = peaks.worker.max(kib(child.id(), "VmHWM:"));
        let mut stack = children(child.id());
        while let Some(pid) = stack.pop() {
            peaks.git = peaks.git.max(kib(pid, "VmHWM:"));
            peaks.git_anon = peaks.git_anon.max(kib(pid, "RssAnon:"));
            stack.extend(children(pid));
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            return peaks;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A worker's start in a pid namespace of its own (a clone, a `/proc`
/// mounted, the worker exec'd again, its stand-in waiting) against one
/// without: each sample is `quire-run work` from start to exit, executing
/// one queued run of one `true` step. The run is queued by the hook while
/// this process holds the only worker slot, so the hook starts no worker.
pub fn pidns(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let modes = ["on", "off"];
    let setups = modes.map(|mode| {
        let home = dir.path().join(format!("home-{mode}"));
        let repo = Repo::new(dir.path(), &format!("app-{mode}"));
        repo.install(bins, &home);
        std::fs::write(home.join("config.toml"), "max_workers = 1\n").unwrap();
        repo.commit(&[(".quire/ci.toml", QUICK_PIPELINE)], "pipeline");
        repo.push(&["--quiet", "origin", "main"]);
        wait_idle(&home);
        let sha = String::from_utf8(run(git(&repo.bare).args(["rev-parse", "main"])).stdout)
            .unwrap()
            .trim()
            .to_string();
        (home, repo, sha)
    });
    let rounds = if quick { 8 } else { 30 };
    let mut samples: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for i in 0..rounds {
        for (m, (home, repo, sha)) in setups.iter().enumerate() {
            let slot = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(home.join("workers/slot-0.lock"))
                .unwrap();
            rustix::fs::flock(&slot, rustix::fs::FlockOperation::LockExclusive).unwrap();
            let mut hook = Command::new(&bins.quire_run)
                .arg("--home")
                .arg(home)
                .args(["hook", "--git-dir"])
                .arg(&repo.bare)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let line = format!("{} {sha} refs/heads/b{i}\n", "0".repeat(40));
            hook.stdin
                .take()
                .unwrap()
                .write_all(line.as_bytes())
                .unwrap();
            assert!(hook.wait().unwrap().success());
            drop(slot);
            let mut work = Command::new(&bins.quire_run);
            work.arg("--home")
                .arg(home)
                .arg("work")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if modes[m] == "off" {
                work.env("QUIRE_PIDNS", "off");
            }
            let (took, status) = time(|| work.status().unwrap());
            assert!(status.success());
            samples[m].push(took);
        }
    }
    for (home, _, _) in &setups {
        let store = Store::open(&Home::at(home)).unwrap();
        let done: i64 = store
            .connection()
            .query_row(
                "SELECT count(*) FROM runs WHERE state = 'complete'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(done, i64::from(rounds) + 1, "every run completed");
    }
    let [on, off] = samples.map(|s| Stats::of(&s));
    row(
        "a worker from start to exit executing one run of one `true` step, in a pid namespace of its own (the default)",
        &format!("the same with `QUIRE_PIDNS=off`: {off}"),
        &format!(
            "{on}; **{:.2}x**, {:+.2} ms a worker",
            on.median / off.median,
            on.median - off.median
        ),
        "report",
    );
}

pub fn network(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let modes = ["isolated", "none", "host"];
    let setups = modes.map(|mode| {
        let home = dir.path().join(format!("home-{mode}"));
        let repo = Repo::new(dir.path(), &format!("app-{mode}"));
        repo.install(bins, &home);
        std::fs::write(
            home.join("config.toml"),
            format!("max_workers = 1\nstep_network = \"{mode}\"\n"),
        )
        .unwrap();
        repo.commit(&[(".quire/ci.toml", QUICK_PIPELINE)], "pipeline");
        repo.push(&["--quiet", "origin", "main"]);
        wait_idle(&home);
        let sha = String::from_utf8(run(git(&repo.bare).args(["rev-parse", "main"])).stdout)
            .unwrap()
            .trim()
            .to_string();
        (home, repo, sha)
    });
    let rounds = if quick { 8 } else { 30 };
    let mut samples: [Vec<Duration>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for i in 0..rounds {
        for (m, (home, repo, sha)) in setups.iter().enumerate() {
            let slot = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(home.join("workers/slot-0.lock"))
                .unwrap();
            rustix::fs::flock(&slot, rustix::fs::FlockOperation::LockExclusive).unwrap();
            let mut hook = Command::new(&bins.quire_run)
                .arg("--home")
                .arg(home)
                .args(["hook", "--git-dir"])
                .arg(&repo.bare)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let line = format!("{} {sha} refs/heads/b{i}\n", "0".repeat(40));
            hook.stdin
                .take()
                .unwrap()
                .write_all(line.as_bytes())
                .unwrap();
            assert!(hook.wait().unwrap().success());
            drop(slot);
            let mut work = Command::new(&bins.quire_run);
            work.arg("--home")
                .arg(home)
                .arg("work")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let (took, status) = time(|| work.status().unwrap());
            assert!(status.success());
            samples[m].push(took);
        }
    }
    for (home, _, _) in &setups {
        let store = Store::open(&Home::at(home)).unwrap();
        let done: i64 = store
            .connection()
            .query_row(
                "SELECT count(*) FROM runs WHERE state = 'complete'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(done, i64::from(rounds) + 1, "every run completed");
    }
    let [isolated, none, host] = samples.map(|s| Stats::of(&s));
    row(
        "a worker from start to exit executing one run of one `true` step with `step_network = \"isolated\"` (the default: a namespace holder cloned, pasta attached and waited for, both ended)",
        &format!("the same with `step_network = \"host\"`: {host}"),
        &format!(
            "{isolated}; **{:.2}x**, {:+.2} ms a run",
            isolated.median / host.median,
            isolated.median - host.median
        ),
        "report",
    );
    row(
        "the same with `step_network = \"none\"` (the holder only)",
        &format!("`step_network = \"host\"`: {host}"),
        &format!(
            "{none}; **{:.2}x**, {:+.2} ms a run",
            none.median / host.median,
            none.median - host.median
        ),
        "report",
    );
}
