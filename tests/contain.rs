//! Containment (docs/PIPELINE.md, "What a job leaves running"): daemons a
//! step starts that leave its session and clear their environment
//! (`setsid env -i`), or double-fork with an empty one, are gone when their
//! job ends, times out, is cancelled or is superseded; no descriptor of the
//! worker reaches a step; reconcile ends a dead worker's leftovers with its
//! cgroup, and says what it cannot find without one. Each test runs with
//! the subreaper, and again with cgroups where this machine lets quire
//! make them (the test process asks the same question the worker will).

use std::cell::Cell;
use std::path::Path;

use quire_store::{Containment, FailureKind, JobState, RunState};
use serde_json::Value;

use quire_testkit::{Env, Repo, alive, git, gone_within, read_pid_file, signal, wait_until};

/// A repository whose workers contain runs with `mechanism`; none (and a
/// line saying why) when this machine cannot make cgroups. Runs keep their
/// directories (`keep_workspaces`), so the pids their steps write to their
/// TMPDIR (the one place beside the workspace and HOME the sandbox lets
/// them write) can be read after they end; `config` adds to config.toml.
fn contained_repo(env: &Env, mechanism: Containment, config: &str) -> Option<Repo> {
    if mechanism == Containment::Cgroup
        && let Err(why) = quire_exec::cgroup::usable_own_dir()
        && !quire_testkit::require(
            &format!("cgroup v2 quire can make cgroups in ({why})"),
            "a systemd service with Delegate=yes, or run the tests as root on cgroup v2",
            false,
        )
    {
        return None;
    }
    let mut repo = env.repo_with_hook("app");
    env.config(&format!("keep_workspaces = true\n{config}"));
    repo.vars
        .push(("QUIRE_CONTAINMENT".into(), mechanism.as_str().into()));
    // The mechanism alone, as where the kernel refuses the worker a pid
    // namespace: in one, the worker's end would kill what it missed.
    repo.vars.push(("QUIRE_PIDNS".into(), "off".into()));
    Some(repo)
}

/// Shell for a step: start a daemon that double-forks into a session of
/// its own with an empty environment and its output elsewhere, writing its
/// pid to `$TMPDIR/<name>.pid` (the directory is handed over as an
/// argument, the environment staying empty), and wait until it has. It is
/// re-parented at once, and neither its group, its environment nor its
/// pipes tie it to the step.
fn double_fork(name: &str) -> String {
    format!(
        "env -i sh -c '(setsid sh -c \"echo \\$\\$ > \\\"\\$0/{name}.pid\\\"; exec sleep 6002\" \"$0\" </dev/null >/dev/null 2>&1 &) &' \"$TMPDIR\"; \
         while [ ! -s \"$TMPDIR/{name}.pid\" ]; do sleep 0.05; done"
    )
}

/// Two daemons a step starts, each writing its pid to its run's TMPDIR.
struct Daemons {
    /// Their pids, once read.
    pids: Cell<Option<[u32; 2]>>,
}

impl Daemons {
    fn new() -> Daemons {
        Daemons {
            pids: Cell::new(None),
        }
    }

    /// Shell for a step: start both daemons and wait until both wrote their
    /// pid. One leaves the session with setsid and clears its environment,
    /// keeping the step's output; the other is [`double_fork`]ed.
    fn start(&self) -> String {
        format!(
            "setsid env -i sh -c 'echo $$ > \"$0/setsid.pid\"; exec sleep 6001' \"$TMPDIR\" & \
             {}; while [ ! -s \"$TMPDIR/setsid.pid\" ]; do sleep 0.05; done",
            double_fork("fork")
        )
    }

    /// Their pids, once both are written to `run`'s TMPDIR (read once).
    fn pids_of(&self, env: &Env, run: &str) -> [u32; 2] {
        if self.pids.get().is_none() {
            let tmp = env.home().run_dir(run).unwrap().join("tmp");
            self.pids.set(Some(pids_in(&tmp, ["setsid", "fork"])));
        }
        self.pids()
    }

    /// Their pids, read by [`Self::pids_of`] before.
    fn pids(&self) -> [u32; 2] {
        self.pids.get().expect("the daemons' pids were read")
    }

    fn assert_gone(&self, when: &str) {
        for (pid, name) in self
            .pids()
            .into_iter()
            .zip(["setsid env -i", "double fork"])
        {
            assert!(
                gone_within(pid, 10),
                "the {name} daemon {pid} outlived {when}"
            );
        }
    }

    /// SIGKILL whichever is still running (cleanup of a test that shows
    /// they survive).
    fn kill(&self) {
        for pid in self.pids() {
            if alive(pid) {
                signal(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// The pids the steps wrote to `dir` as `<name>.pid`, once they are there.
fn pids_in<const N: usize>(dir: &Path, names: [&str; N]) -> [u32; N] {
    names.map(|name| read_pid_file(&dir.join(format!("{name}.pid"))))
}

/// A one-job pipeline running `sh` (and `extra` TOML lines for the job).
fn pipeline(sh: &str, extra: &str) -> String {
    format!(
        r#"[jobs.daemons]
inputs = ["quire/push"]
sh = {sh:?}
{extra}"#
    )
}

/// What the worker that executed the run said of containment in
/// worker.log, and that show (text and JSON) says `mechanism`.
fn assert_recorded(env: &Env, run: &str, mechanism: Containment) {
    let shown = env.json(&["show", run]);
    assert_eq!(shown["containment"], mechanism.as_str(), "{shown}");
    let text = String::from_utf8(
        env.runs(&["show", run])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    assert!(
        text.contains(&format!("contained by {mechanism}")),
        "{text}"
    );
    match mechanism {
        Containment::Cgroup => {
            let dir = shown["cgroup"].as_str().unwrap();
            assert!(dir.ends_with(&format!("/quire-{run}")), "{shown}");
            // A cancelled or superseded run ends before its worker notices.
            wait_until(&format!("the run's cgroup {dir} to be removed"), || {
                !std::path::Path::new(dir).exists()
            });
        }
        Containment::Subreaper => assert_eq!(shown["cgroup"], Value::Null, "{shown}"),
    }
    let log = std::fs::read_to_string(env.home().dir().join("worker.log")).unwrap();
    assert!(
        log.contains(&format!("containment: {mechanism}")),
        "worker.log: {log}"
    );
}

fn daemons_are_gone_when_their_job_ends(mechanism: Containment) {
    let env = Env::new();
    let Some(repo) = contained_repo(&env, mechanism, "") else {
        return;
    };
    let daemons = Daemons::new();
    let run = repo.push_and_wait(&pipeline(&daemons.start(), ""));
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    assert_eq!(run.containment, Some(mechanism));
    daemons.pids_of(&env, &run.id);
    daemons.assert_gone("the job's normal end");
    assert_recorded(&env, &run.id, mechanism);
}

#[test]
fn daemons_are_gone_when_their_job_ends_with_the_subreaper() {
    daemons_are_gone_when_their_job_ends(Containment::Subreaper);
}

#[test]
fn daemons_are_gone_when_their_job_ends_with_cgroups() {
    daemons_are_gone_when_their_job_ends(Containment::Cgroup);
}

fn daemons_are_gone_when_their_job_times_out(mechanism: Containment) {
    let env = Env::new();
    let Some(repo) = contained_repo(&env, mechanism, "") else {
        return;
    };
    let daemons = Daemons::new();
    let sh = format!("{}; exec sleep 600", daemons.start());
    let run = repo.push_and_wait(&pipeline(&sh, "timeout = \"3s\"\n"));
    daemons.pids_of(&env, &run.id);
    assert_eq!(
        (run.state, run.failure_kind),
        (RunState::Failed, Some(FailureKind::PipelineFailure))
    );
    let detail = env.store().run_detail(&run.id).unwrap();
    assert_eq!(detail.jobs[0].job.state, JobState::Failed);
    daemons.assert_gone("the job's timeout");
    assert_recorded(&env, &run.id, mechanism);
}

#[test]
fn daemons_are_gone_when_their_job_times_out_with_the_subreaper() {
    daemons_are_gone_when_their_job_times_out(Containment::Subreaper);
}

#[test]
fn daemons_are_gone_when_their_job_times_out_with_cgroups() {
    daemons_are_gone_when_their_job_times_out(Containment::Cgroup);
}

fn daemons_are_gone_when_their_run_is_cancelled(mechanism: Containment) {
    let env = Env::new();
    let Some(repo) = contained_repo(&env, mechanism, "") else {
        return;
    };
    let daemons = Daemons::new();
    let run = repo.push_pipeline(&pipeline(
        &format!("{}; exec sleep 600", daemons.start()),
        "",
    ));
    daemons.pids_of(&env, &run);
    env.runs(&["cancel", &run]).assert().success();
    daemons.assert_gone("`quire-runs cancel`");
    let ended = env.wait_terminal(&run);
    assert_eq!(ended.failure_kind, Some(FailureKind::Cancelled));
    assert_recorded(&env, &run, mechanism);
}

#[test]
fn daemons_are_gone_when_their_run_is_cancelled_with_the_subreaper() {
    daemons_are_gone_when_their_run_is_cancelled(Containment::Subreaper);
}

#[test]
fn daemons_are_gone_when_their_run_is_cancelled_with_cgroups() {
    daemons_are_gone_when_their_run_is_cancelled(Containment::Cgroup);
}

fn daemons_are_gone_when_their_run_is_superseded(mechanism: Containment) {
    let env = Env::new();
    let Some(repo) = contained_repo(&env, mechanism, "") else {
        return;
    };
    let daemons = Daemons::new();
    let old = repo.push_pipeline(&pipeline(
        &format!("{}; exec sleep 600", daemons.start()),
        "",
    ));
    daemons.pids_of(&env, &old);
    let new = repo.push_pipeline(&pipeline("echo quick", ""));
    daemons.assert_gone("a superseding push");
    assert_eq!(env.wait_terminal(&old).state, RunState::Superseded);
    assert_eq!(env.wait_terminal(&new).state, RunState::Complete);
    assert_recorded(&env, &old, mechanism);
}

#[test]
fn daemons_are_gone_when_their_run_is_superseded_with_the_subreaper() {
    daemons_are_gone_when_their_run_is_superseded(Containment::Subreaper);
}

#[test]
fn daemons_are_gone_when_their_run_is_superseded_with_cgroups() {
    daemons_are_gone_when_their_run_is_superseded(Containment::Cgroup);
}

/// The worker is SIGKILLed mid-step, leaving the step (which still carries
/// `QUIRE_RUN_ID`) and its two daemons (which do not); reconcile's report.
fn reconcile_after_a_sigkilled_worker(
    mechanism: Containment,
) -> Option<(Env, Value, u32, Daemons)> {
    let env = Env::new();
    let repo = contained_repo(&env, mechanism, "")?;
    let daemons = Daemons::new();
    let run = repo.push_pipeline(&pipeline(
        &format!(
            "{}; echo $$ > \"$TMPDIR/step.pid\"; exec sleep 600",
            daemons.start()
        ),
        "",
    ));
    let [step] = pids_in(&env.home().run_dir(&run).unwrap().join("tmp"), ["step"]);
    daemons.pids_of(&env, &run);
    let worker = env
        .wait_for(&run, "active", |r| r.state == RunState::Active)
        .worker
        .unwrap()
        .pid;
    signal(worker, rustix::process::Signal::KILL);
    assert!(gone_within(worker, 10));
    assert!(alive(step), "a crash leaves the step running");
    let report = env.json(&["reconcile"]);
    assert_eq!(report["orphaned"][0]["run"], run.as_str(), "{report}");
    let leftovers = &report["leftovers"][0];
    assert_eq!(leftovers["run"], run.as_str(), "{report}");
    assert_eq!(leftovers["containment"], mechanism.as_str(), "{report}");
    assert!(gone_within(step, 10), "reconcile ended the step");
    Some((env, report, step, daemons))
}

#[test]
fn reconcile_kills_a_dead_workers_cgroup_and_everything_in_it() {
    let Some((_env, report, step, daemons)) =
        reconcile_after_a_sigkilled_worker(Containment::Cgroup)
    else {
        return;
    };
    daemons.assert_gone("reconcile");
    let leftovers = &report["leftovers"][0];
    let mut by_cgroup: Vec<u64> = leftovers["by_cgroup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    by_cgroup.sort_unstable();
    let mut expected: Vec<u64> = daemons
        .pids()
        .into_iter()
        .chain([step])
        .map(u64::from)
        .collect();
    expected.sort_unstable();
    assert_eq!(by_cgroup, expected, "{report}");
    assert_eq!(leftovers["unreachable"], Value::Null, "{report}");
    let dir = leftovers["cgroup"].as_str().unwrap();
    assert!(!std::path::Path::new(dir).exists(), "{dir} was removed");
}

#[test]
fn reconcile_without_a_cgroup_ends_what_carries_the_run_id_and_says_what_it_cannot_find() {
    let Some((_env, report, step, daemons)) =
        reconcile_after_a_sigkilled_worker(Containment::Subreaper)
    else {
        return;
    };
    let leftovers = &report["leftovers"][0];
    assert_eq!(
        leftovers["by_environment"],
        serde_json::json!([step]),
        "{report}"
    );
    assert!(
        leftovers["unreachable"]
            .as_str()
            .unwrap()
            .contains("cleared its environment"),
        "{report}"
    );
    // What reconcile says it cannot find, it did not find: both daemons
    // were re-parented to pid 1 when their worker died.
    let survivors: Vec<u32> = daemons.pids().into_iter().filter(|&p| alive(p)).collect();
    daemons.kill();
    assert_eq!(survivors, daemons.pids(), "{report}");
}

#[test]
fn no_descriptor_of_the_worker_reaches_a_step_and_a_daemon_holding_its_own_cannot_stall_the_next_run()
 {
    let env = Env::new();
    env.config("keep_workspaces = true\n");
    let mut repo = env.repo_with_hook("app");
    // The daemon must end with its job, not only with its worker's pid
    // namespace (the worker exits once the queue is empty).
    repo.vars.push(("QUIRE_PIDNS".into(), "off".into()));
    // What the step's shell has open is what a daemon it starts inherits;
    // `ls` lists it into the step's log.
    let sh = "ls -l /proc/$$/fd/; \
              setsid env -i sh -c 'echo $$ > \"$0/daemon.pid\"; exec sleep 6001' \"$TMPDIR\" & \
              while [ ! -s \"$TMPDIR/daemon.pid\" ]; do sleep 0.05; done";
    let first = repo.push_and_wait(&pipeline(sh, ""));
    assert_eq!(first.state, RunState::Complete);
    let [daemon] = pids_in(
        &env.home().run_dir(&first.id).unwrap().join("tmp"),
        ["daemon"],
    );
    // stdin, stdout and stderr, and nothing else: not the slot lock, the
    // store, worker.log, nor whatever the worker itself inherited.
    let listed = env.step_log(&first.id, "daemons", 1);
    let open: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.split_once(" -> ")?.0.rsplit(' ').next())
        .collect();
    assert_eq!(open, ["0", "1", "2"], "a step has more open:\n{listed}");
    assert!(gone_within(daemon, 10));
    // The only worker slot is free for the next run (max_workers = 1).
    git(&repo.work, &["branch", "next"]);
    let next = repo.push_refs(&["next"]).remove(0);
    assert_eq!(env.wait_terminal(&next).state, RunState::Complete);
}

#[test]
fn quire_run_exec_leaves_no_daemon_behind() {
    let env = Env::new();
    let daemons = Daemons::new();
    let workspace = env.path().join("ws");
    // `exec` gives its steps its own TMPDIR.
    let tmp = env.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::create_dir_all(workspace.join(".quire")).unwrap();
    std::fs::write(
        workspace.join(".quire/ci.toml"),
        pipeline(&daemons.start(), ""),
    )
    .unwrap();
    let logs = env.path().join("exec-logs");
    env.run(&[
        "exec",
        "--workspace",
        workspace.to_str().unwrap(),
        "--logs",
        logs.to_str().unwrap(),
    ])
    .env("TMPDIR", &tmp)
    .assert()
    .success();
    daemons.pids.set(Some(pids_in(&tmp, ["setsid", "fork"])));
    daemons.assert_gone("`quire-run exec`");
}

/// Jobs a and b run side by side; each starts a daemon that double-forks
/// into a session of its own with an empty environment and its output
/// elsewhere, then a ends while b waits at a gate. With cgroups, a's daemon
/// is gone with a, and b's lives on until b ends. With the subreaper,
/// nothing ties a's daemon to a rather than b: both live until no job of
/// the run is running, and are gone then.
fn a_jobs_daemon_ends_with_its_job_while_the_job_beside_it_runs(mechanism: Containment) {
    let env = Env::new();
    let Some(repo) = contained_repo(&env, mechanism, "max_parallel_jobs = 2\n") else {
        return;
    };
    let gate = quire_testkit::Gate::new(&env);
    let pipeline = format!(
        r#"[jobs.a]
inputs = ["quire/push"]
sh = {:?}
[jobs.b]
inputs = ["quire/push"]
sh = {:?}
"#,
        double_fork("a"),
        format!("{}; {}", double_fork("b"), gate.step("b")),
    );
    let run = repo.push_pipeline(&pipeline);
    let [a, b] = pids_in(&env.home().run_dir(&run).unwrap().join("tmp"), ["a", "b"]);
    gate.wait_ready("b");
    env.wait_for(&run, "job a ended", |_| {
        env.store()
            .run_detail(&run)
            .unwrap()
            .jobs
            .first()
            .is_some_and(|a| a.job.state == JobState::Complete)
    });
    match mechanism {
        Containment::Cgroup => {
            assert!(gone_within(a, 10), "a's daemon outlived a");
            assert!(alive(b), "b's daemon was killed with a");
        }
        Containment::Subreaper => assert!(alive(a) && alive(b)),
    }
    gate.open();
    assert_eq!(env.wait_terminal(&run).state, RunState::Complete);
    for pid in [a, b] {
        assert!(gone_within(pid, 10), "daemon {pid} outlived the run");
    }
}

#[test]
fn a_jobs_daemon_ends_with_its_job_while_the_job_beside_it_runs_with_cgroups() {
    a_jobs_daemon_ends_with_its_job_while_the_job_beside_it_runs(Containment::Cgroup);
}

#[test]
fn without_cgroups_a_jobs_anonymous_daemon_ends_when_no_job_of_the_run_runs() {
    a_jobs_daemon_ends_with_its_job_while_the_job_beside_it_runs(Containment::Subreaper);
}

/// With the sandbox off, a step running as the worker's user may write
/// cgroup files: it moves itself out of its job's cgroup (into the
/// worker's), then leaves a daemon there. The job's cgroup.kill misses it;
/// the worker, its subreaper all along, ends it by ancestry once no job of
/// the run runs.
#[test]
fn a_step_that_moves_itself_out_of_its_cgroup_is_still_ended_by_ancestry() {
    let env = Env::new();
    let Some(repo) = contained_repo(&env, Containment::Cgroup, "sandbox = \"off\"\n") else {
        return;
    };
    let worker_cgroup = quire_exec::cgroup::usable_own_dir().unwrap();
    let sh = format!(
        "echo $$ > {}/cgroup.procs; {}; grep ^0:: /proc/$(cat \"$TMPDIR/out.pid\")/cgroup > \"$TMPDIR/out.cgroup\"",
        worker_cgroup.display(),
        double_fork("out")
    );
    let run = repo.push_and_wait(&pipeline(&sh, ""));
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let tmp = env.home().run_dir(&run.id).unwrap().join("tmp");
    let [daemon] = pids_in(&tmp, ["out"]);
    let left_in = std::fs::read_to_string(tmp.join("out.cgroup")).unwrap();
    assert!(
        !left_in.contains(&format!("quire-{}", run.id)),
        "the daemon was outside the run's cgroup: {left_in}"
    );
    assert!(
        gone_within(daemon, 10),
        "the escaped daemon outlived its run"
    );
}
