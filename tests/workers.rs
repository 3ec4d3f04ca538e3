//! Workers as config.toml sets them and signals stop them: how many run at
//! once, that none strands a queued run, what they leave behind, and SIGTERM.

use quire_store::{FailureKind, JobState, RunState};

use quire_testkit::{Env, Gate, RECORD_PID, git, gone_within, queued_runs, signal, step_pid};

#[test]
fn with_max_workers_2_two_refs_pushed_at_once_run_at_the_same_time() {
    let env = Env::new();
    // One repository may use both workers (max_workers_per_repo).
    env.config("max_workers = 2\nmax_workers_per_repo = 2\n");
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    repo.commit(
        &[(".quire/ci.toml", &gate.job("hold", "$QUIRE_BRANCH"))],
        "held",
    );
    git(&repo.work, &["branch", "dev"]);
    let repo = &repo;
    let [main, dev] = std::thread::scope(|s| {
        ["main", "dev"]
            .map(|branch| {
                s.spawn(move || {
                    let (ok, stderr) = repo.push(&["origin", branch]);
                    // Shown if the test fails: a hook that could not start
                    // a worker says so to the push, not in worker.log.
                    eprintln!("push of {branch}:\n{stderr}");
                    assert!(ok, "{stderr}");
                    queued_runs(&stderr).remove(0)
                })
            })
            .map(|push| push.join().unwrap())
    });
    // Both wait at the gate, which opens only once both are there: one
    // worker alone would never bring the second.
    gate.wait_ready("main");
    gate.wait_ready("dev");
    let pids: Vec<u32> = [&main, &dev]
        .map(|id| env.store().resolve_run(id).unwrap().worker.unwrap().pid)
        .into();
    assert_ne!(pids[0], pids[1], "one worker each");
    gate.open();
    for id in [&main, &dev] {
        assert_eq!(env.wait_terminal(id).state, RunState::Complete);
    }
}

#[test]
fn with_max_workers_2_two_refs_of_one_push_run_at_the_same_time() {
    let env = Env::new();
    // One repository may use both workers (max_workers_per_repo).
    env.config("max_workers = 2\nmax_workers_per_repo = 2\n");
    let repo = env.repo_with_hook("app");
    let gate = Gate::new(&env);
    repo.commit(
        &[(".quire/ci.toml", &gate.job("hold", "$QUIRE_BRANCH"))],
        "held",
    );
    git(&repo.work, &["branch", "dev"]);
    let runs = repo.push_refs(&["main", "dev"]);
    assert_eq!(runs.len(), 2);
    gate.wait_ready("main");
    gate.wait_ready("dev");
    gate.open();
    for id in &runs {
        assert_eq!(env.wait_terminal(id).state, RunState::Complete);
    }
}

#[test]
fn quick_pushes_racing_the_only_worker_as_it_drains_the_queue_all_complete() {
    // A hook that finds the slot taken starts no worker: the worker holding
    // it must see the run, even when it found the queue empty a moment
    // before the run was queued. Waves of pushes at once, through one slot,
    // hit that moment again and again.
    let env = Env::new();
    env.config("max_workers = 1\n");
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.quick]
inputs = ["quire/push"]
sh = "true"
"#,
        )],
        "quick",
    );
    let repo = &repo;
    let mut runs = Vec::new();
    for wave in 0..5 {
        let branches: Vec<String> = (0..8).map(|n| format!("w{wave}-{n}")).collect();
        for branch in &branches {
            git(&repo.work, &["branch", branch]);
        }
        std::thread::scope(|s| {
            let pushes: Vec<_> = branches
                .iter()
                .map(|branch| s.spawn(move || repo.push_refs(&[branch])))
                .collect();
            for push in pushes {
                runs.extend(push.join().unwrap());
            }
        });
    }
    assert_eq!(runs.len(), 40);
    for id in &runs {
        let run = env.wait_terminal(id);
        assert_eq!(run.state, RunState::Complete, "{run:?}");
    }
}

/// The inode flags of `dir`, if its file system has them.
fn inode_flags(dir: &std::path::Path) -> Option<rustix::fs::IFlags> {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    rustix::fs::ioctl_getflags(&fd).ok()
}

#[test]
fn runs_directory_asks_the_file_system_to_spread_runs_apart() {
    use rustix::fs::IFlags;
    // ext2/3/4 place a directory under one with the "top of a hierarchy"
    // flag (`chattr +T`) in a block group of its own: each run's files then
    // skip none of the inodes another run just deleted (docs/PERFORMANCE.md).
    // Whether this file system takes the flag at all, tried on a scratch
    // directory beside the home.
    let env = Env::new();
    let scratch = env.home().dir().with_file_name("flag-probe");
    std::fs::create_dir(&scratch).unwrap();
    let takes_it = inode_flags(&scratch).is_some_and(|flags| {
        let fd = rustix::fs::open(
            &scratch,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        rustix::fs::ioctl_setflags(&fd, flags | IFlags::TOPDIR).is_ok()
            && inode_flags(&scratch).is_some_and(|f| f.contains(IFlags::TOPDIR))
    });
    if !quire_testkit::require(
        "a file system with ext4's inode flags under the temporary directory",
        "run the tests with TMPDIR on ext2/3/4",
        takes_it,
    ) {
        return;
    }
    let runs = env.home().dir().join("runs");
    let spread = || inode_flags(&runs).unwrap().contains(IFlags::TOPDIR);

    // A new home: `runs/` is made with the flag.
    let repo = env.repo_with_hook("app");
    let pipeline = "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"true\"\n";
    let run = repo.push_and_wait(pipeline);
    assert_eq!(run.state, RunState::Complete);
    assert!(spread(), "a new runs/ is spread");

    // A home made before: its worker sets the flag as it starts.
    let fd = rustix::fs::open(
        &runs,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let flags = rustix::fs::ioctl_getflags(&fd).unwrap();
    rustix::fs::ioctl_setflags(&fd, flags - IFlags::TOPDIR).unwrap();
    assert!(!spread());
    let run = repo.push_and_wait(&format!("{pipeline}# again\n"));
    assert_eq!(run.state, RunState::Complete);
    assert!(spread(), "an older runs/ is spread by the next worker");
}

#[test]
fn keep_workspaces_keeps_the_checked_out_tree_after_the_run() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(&[("README.md", "hello\n")], "readme");
    let pipeline = r#"[jobs.t]
inputs = ["quire/push"]
sh = "echo made > built.txt"
"#;

    let run = repo.push_and_wait(pipeline);
    assert_eq!(run.state, RunState::Complete);
    // The worker deletes the workspace after the run ended, then exits.
    assert!(gone_within(run.worker.unwrap().pid, 10));
    let workspace = env.home().run_dir(&run.id).unwrap().join("workspace");
    assert!(!workspace.exists(), "deleted by default");

    env.config("keep_workspaces = true\n");
    let run = repo.push_and_wait(&format!("{pipeline}# again\n"));
    assert_eq!(run.state, RunState::Complete);
    assert!(gone_within(run.worker.unwrap().pid, 10));
    let workspace = env.home().run_dir(&run.id).unwrap().join("workspace");
    assert_eq!(
        std::fs::read_to_string(workspace.join("README.md")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("built.txt")).unwrap(),
        "made\n"
    );
}

#[test]
fn sigterm_to_a_worker_cancels_the_run_it_executes_ends_its_step_and_takes_no_other() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_pipeline(&format!(
        r#"[jobs.slow]
inputs = ["quire/push"]
sh = {:?}
"#,
        format!("{RECORD_PID}; exec sleep 300")
    ));
    let sleep = step_pid(&env, &run);
    // Another run queues behind the busy worker (max_workers = 1).
    git(&repo.work, &["branch", "next"]);
    let next = repo.push_refs(&["next"]).remove(0);
    let worker = env.json(&["show", &run])["worker"]["pid"].as_u64().unwrap() as u32;

    signal(worker, rustix::process::Signal::TERM);
    assert!(gone_within(sleep, 5), "the step outlived SIGTERM");
    assert!(gone_within(worker, 10), "the worker did not exit");
    let detail = env.store().run_detail(&run).unwrap();
    assert_eq!(
        (detail.run.state, detail.run.failure_kind),
        (RunState::Failed, Some(FailureKind::Cancelled)),
        "{:?}",
        detail.run
    );
    assert_eq!(detail.jobs[0].job.state, JobState::Aborted);
    assert_eq!(
        detail.jobs[0].steps[0].exit_code,
        Some(143),
        "the step reports the signal's 128+N"
    );
    // The stopped worker took nothing more; reconcile starts one for it.
    assert_eq!(
        env.store().resolve_run(&next).unwrap().state,
        RunState::Pending
    );
    let report = env.json(&["reconcile"]);
    assert_eq!(report["worker_started"], true, "{report}");
    let sleep = step_pid(&env, &next);
    env.runs(&["cancel", &next]).assert().success();
    assert!(gone_within(sleep, 5));
}
