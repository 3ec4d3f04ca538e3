//! Jobs on a real Slurm cluster (`[executor] kind = "slurm"`): one
//! slurmctld and three slurmd, each node in a network namespace of its own
//! with a private /tmp (`.ci/slurm-cluster`). Every test pushes through the
//! real hook; the worker starts each job with `srun`, and `quire-run node`
//! runs it on a node.
//!
//! The tests share the cluster (`slurm::cluster`); the one that kills a
//! node holds it alone (`slurm::cluster_exclusive`).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use quire_store::{FailureKind, RunState};
use quire_testkit::slurm::{self, Cluster};
use quire_testkit::{Env, Repo};

/// The quire-run binary where the nodes see it: the build may be under
/// /tmp, which each node has a private one of.
fn node_binary() -> &'static str {
    static COPY: OnceLock<String> = OnceLock::new();
    COPY.get_or_init(|| {
        let dir = std::path::Path::new("/var/tmp/quire-slurm-tests");
        std::fs::create_dir_all(dir).unwrap();
        let to = dir.join(format!("quire-run-{}", std::process::id()));
        std::fs::copy(assert_cmd::cargo::cargo_bin("quire-run"), &to).unwrap();
        to.to_string_lossy().into_owned()
    })
}

/// A home whose jobs run on the cluster (held as `hold` says), and a
/// repository with the hook.
fn on_cluster(hold: fn() -> Option<Cluster>, extra: &str) -> Option<(Env, Repo, Cluster)> {
    let cluster = hold()?;
    let env = Env::new();
    env.config(&format!(
        "[executor]\nkind = \"slurm\"\nnode_quire_run = \"{}\"\n{extra}",
        node_binary()
    ));
    let repo = env.repo_with_hook("app");
    Some((env, repo, cluster))
}

/// Wait (at most `secs`) until `done` holds.
fn until(secs: u64, what: &str, done: impl FnMut() -> bool) {
    assert!(
        quire_testkit::within(secs, done),
        "waited {secs} s for {what}"
    );
}

/// Processes of this machine (the nodes' included: they are this
/// machine's processes in other namespaces) whose environment names
/// `run_id`: every step of the run gets `QUIRE_RUN_ID`.
fn processes_of(run_id: &str) -> Vec<String> {
    let needle = format!("QUIRE_RUN_ID={run_id}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ
            .split(|&b| b == 0)
            .any(|var| var == needle.as_bytes())
        {
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{}: {}",
                name.to_string_lossy(),
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

/// The command line and environment of each process of this machine that
/// is `srun` for the Slurm job `name`, or a `quire-run node` of it (which
/// carries the job's name in `SLURM_JOB_NAME`).
fn carriers_of(name: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let read = |f: &str| {
            String::from_utf8_lossy(&std::fs::read(entry.path().join(f)).unwrap_or_default())
                .replace('\0', " ")
        };
        let (cmd, environ) = (read("cmdline"), read("environ"));
        let srun = cmd.contains(&format!("--job-name={name}"));
        let node = cmd.contains(" node") && environ.contains(&format!("SLURM_JOB_NAME={name} "));
        if srun || node {
            found.push((cmd, environ));
        }
    }
    found
}

/// The Slurm jobs of `run_id` still in the queue (name, state, node).
fn queued_of(run_id: &str) -> Vec<String> {
    let tail: String = run_id.chars().filter(char::is_ascii_hexdigit).collect();
    let tail = &tail[tail.len() - 12..];
    slurm::squeue_names()
        .into_iter()
        .filter(|name| name.contains(tail))
        .collect()
}

#[test]
fn six_independent_jobs_land_on_two_nodes_or_more_and_all_complete() {
    let Some((env, repo, _cluster)) = on_cluster(slurm::cluster, "") else {
        return;
    };
    let mut pipeline = String::new();
    for n in 1..=6 {
        pipeline.push_str(&format!(
            "[jobs.j{n}]\ninputs = [\"quire/push\"]\nsh = \"echo node=$SLURMD_NODENAME; sleep 1\"\n"
        ));
    }
    let run = repo.push_and_wait(&pipeline);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let mut nodes = std::collections::BTreeSet::new();
    for n in 1..=6 {
        let log = env.logs(&run.id, &format!("j{n}"));
        let node = log
            .lines()
            .find_map(|l| l.strip_prefix("node="))
            .unwrap_or_else(|| panic!("no node in {log}"))
            .to_string();
        assert!(node.starts_with("qnode"), "{log}");
        assert!(
            log.contains(&format!("quire: on node {node} (slurm)")),
            "{log}"
        );
        nodes.insert(node);
    }
    assert!(nodes.len() >= 2, "all on {nodes:?}");
    // Each srun ended, and told Slurm: no allocation is left holding a
    // node's CPUs (an srun swept away with the run's ended steps would
    // leave one for InactiveLimit, 30 s here).
    until(10, "the run's Slurm jobs to leave the queue", || {
        queued_of(&run.id).is_empty()
    });
}

#[test]
fn a_secret_is_redacted_in_the_log_and_absent_from_what_slurm_records() {
    let secret = "hunter2-slurm-7f3c9a";
    let Some((env, repo, _cluster)) = on_cluster(
        slurm::cluster,
        &format!("[secrets]\nTOKEN = \"{secret}\"\n"),
    ) else {
        return;
    };
    let id = repo.push_pipeline(
        "[jobs.s]\ninputs = [\"quire/push\"]\nsecrets = [\"TOKEN\"]\nsh = [\"echo token=$TOKEN\", \"sleep 4\"]\n",
    );
    // While it runs: what Slurm says of it.
    until(60, "the job in Slurm's queue", || {
        !queued_of(&id).is_empty()
    });
    let name = queued_of(&id).remove(0);
    let mut seen = String::new();
    for args in [
        vec![
            "squeue".to_string(),
            "--name".into(),
            name.clone(),
            "-o".into(),
            "%all".into(),
        ],
        vec![
            "scontrol".to_string(),
            "show".into(),
            "job".into(),
            "--details".into(),
        ],
    ] {
        let out = Command::new(&args[0]).args(&args[1..]).output().unwrap();
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    assert!(seen.contains(&name), "{seen}");
    assert!(
        !seen.contains(secret),
        "the secret in Slurm's records: {seen}"
    );
    // Nor where Slurm could have taken it from: the command line and the
    // environment of srun (on the server) and of quire-run node (on the
    // node; its steps get the secret, it does not hold it there).
    let carriers = carriers_of(&name);
    assert!(
        carriers.iter().any(|(cmd, _)| cmd.contains("srun")),
        "no srun for {name}: {carriers:?}"
    );
    for (cmd, environ) in &carriers {
        assert!(!cmd.contains(secret), "{cmd}");
        assert!(!environ.contains(secret), "{cmd}: its environment");
    }
    let run = env.wait_terminal(&id);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let log = env.logs(&id, "s");
    assert!(log.contains("token=***"), "{log}");
    assert!(!log.contains(secret), "{log}");
}

/// A run of one long job, pushed; once its step has begun on a node.
fn long_job_running(env: &Env, repo: &Repo) -> String {
    let id = repo.push_pipeline(
        "[jobs.long]\ninputs = [\"quire/push\"]\nsh = \"echo begun on $SLURMD_NODENAME; sleep 300 & sleep 300\"\n",
    );
    until(90, "the step to begin on a node", || {
        let out = env.runs(&["logs", &id, "long"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("begun on qnode")
    });
    id
}

#[test]
fn cancel_and_supersede_leave_no_slurm_job_and_no_process_on_any_node() {
    let Some((env, repo, _cluster)) = on_cluster(slurm::cluster, "") else {
        return;
    };
    let cancelled = long_job_running(&env, &repo);
    assert!(!processes_of(&cancelled).is_empty(), "the step runs");
    env.runs(&["cancel", &cancelled]).assert().success();
    let run = env.wait_terminal(&cancelled);
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    until(60, "the cancelled job to leave Slurm's queue", || {
        queued_of(&cancelled).is_empty()
    });
    until(30, "the cancelled run's processes to end", || {
        processes_of(&cancelled).is_empty()
    });

    let superseded = long_job_running(&env, &repo);
    let newer = repo.push_pipeline("[jobs.quick]\ninputs = [\"quire/push\"]\nsh = \"true\"\n");
    let run = env.wait_terminal(&superseded);
    assert_eq!(run.state, RunState::Superseded, "{run:?}");
    until(60, "the superseded job to leave Slurm's queue", || {
        queued_of(&superseded).is_empty()
    });
    until(30, "the superseded run's processes to end", || {
        processes_of(&superseded).is_empty()
    });
    assert_eq!(env.wait_terminal(&newer).state, RunState::Complete);
}

#[test]
fn a_node_that_dies_under_a_job_fails_it_naming_the_node_and_retry_runs_again() {
    let Some((env, repo, cluster)) = on_cluster(slurm::cluster_exclusive, "") else {
        return;
    };
    let id = long_job_running(&env, &repo);
    let log = env.logs(&id, "long");
    let node = log
        .lines()
        .find_map(|l| l.strip_prefix("begun on "))
        .unwrap_or_else(|| panic!("{log}"))
        .trim()
        .to_string();
    cluster.kill_node(&node);
    let run = env.wait_terminal(&id);
    cluster.restart_node(&node);
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    assert_eq!(run.failure_kind, Some(FailureKind::NodeLost), "{run:?}");
    let detail = env.detail(&id);
    let said = detail.run.failure_detail.unwrap_or_default();
    assert!(
        said.contains(&format!("job long lost its node {node}")),
        "{said}"
    );
    let log = env.logs(&id, "long");
    assert!(log.contains(&format!("quire: node lost: {node}")), "{log}");
    until(30, "the dead node's processes to end", || {
        processes_of(&id).is_empty()
    });
    // The run can be run again.
    let out = env.runs(&["retry", &id]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn push_with_ci_logs_shows_a_nodes_output_as_it_is_printed() {
    let Some((_env, repo, _cluster)) = on_cluster(slurm::cluster, "") else {
        return;
    };
    // A gate the nodes see (/tmp is each node's own).
    let gate = tempfile::Builder::new()
        .prefix("quire-slurm-gate")
        .tempdir_in("/var/tmp")
        .unwrap();
    let open = gate.path().join("open");
    let pipeline = format!(
        "[jobs.live]\ninputs = [\"quire/push\"]\nsh = \"echo first-line-$SLURMD_NODENAME; i=0; while [ ! -e {} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; echo second-line\"\n",
        open.display()
    );
    repo.commit(&[(".quire/ci.toml", &pipeline)], "live");
    let mut push = Command::new("git")
        .current_dir(&repo.work)
        .args(["push", "-o", "ci.logs", "origin", "main"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(push.stderr.take().unwrap());
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let mut before = Vec::new();
    loop {
        let line = receive
            .recv_timeout(Duration::from_secs(120))
            .expect("the node's first line while the step runs");
        let first = line.contains("first-line-qnode");
        before.push(line);
        if first {
            break;
        }
    }
    assert!(
        !before.iter().any(|l| l.contains("second-line")),
        "{before:?}"
    );
    std::fs::write(&open, "").unwrap();
    let rest: Vec<String> = receive.iter().collect();
    assert!(push.wait().unwrap().success());
    assert!(rest.iter().any(|l| l.contains("second-line")), "{rest:?}");
}

#[test]
fn a_job_slurm_refuses_fails_at_once_with_slurms_reason() {
    let Some((env, repo, _cluster)) =
        on_cluster(slurm::cluster, "partition = \"no-such-partition\"\n")
    else {
        return;
    };
    let run = repo.push_and_wait("[jobs.r]\ninputs = [\"quire/push\"]\nsh = \"true\"\n");
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    let said = env.detail(&run.id).run.failure_detail.unwrap_or_default();
    assert!(said.contains("job r was not started by slurm"), "{said}");
    assert!(said.to_lowercase().contains("invalid partition"), "{said}");
}

#[test]
fn a_cache_saved_on_one_node_is_restored_on_another_at_the_same_paths() {
    let Some((env, repo, _cluster)) = on_cluster(slurm::cluster, "") else {
        return;
    };
    // What a virtualenv or a build tree does: keep the path it was made
    // at. The steps of both runs see their workspace, HOME and TMPDIR at
    // the same paths, on two nodes.
    let pipeline = |node: &str| {
        format!(
            "[jobs.build]\ninputs = [\"quire/push\"]\ncache = [\"target\"]\nresources = {{ constraint = \"{node}\" }}\nsh = [\n  \"echo on=$SLURMD_NODENAME; if [ -f target/stamp ]; then echo found $(cat target/stamp); fi\",\n  \"if [ -f target/made-at ] && [ \\\"$(cat target/made-at)\\\" = \\\"$PWD $HOME $TMPDIR\\\" ]; then echo same-paths; fi\",\n  \"mkdir -p target && echo $SLURMD_NODENAME > target/stamp && echo \\\"$PWD $HOME $TMPDIR\\\" > target/made-at && echo at=$PWD\",\n]\n"
        )
    };
    let first = repo.push_and_wait(&pipeline("qnode1"));
    assert_eq!(first.state, RunState::Complete, "{first:?}");
    let log = env.logs(&first.id, "build");
    assert!(log.contains("on=qnode1"), "{log}");
    assert!(log.contains("/ci/workspace"), "{log}");
    let second = repo.push_and_wait(&pipeline("qnode2"));
    assert_eq!(second.state, RunState::Complete, "{second:?}");
    let log = env.logs(&second.id, "build");
    assert!(log.contains("on=qnode2"), "{log}");
    assert!(log.contains("found qnode1"), "{log}");
    assert!(log.contains("same-paths"), "{log}");
    // The run's sandbox line says where to look, not the server's own.
    let shown = env.stdout(&["show", &second.id]);
    assert!(
        shown.contains("the steps run on slurm nodes: each job's first log line says"),
        "{shown}"
    );
    assert!(log.contains("on every node"), "{log}");
}

#[test]
fn a_job_slurm_holds_in_its_queue_says_why_while_it_waits() {
    let Some((env, repo, _cluster)) = on_cluster(slurm::cluster, "") else {
        return;
    };
    // Four jobs of two CPUs on three nodes of two: one waits at least.
    let mut pipeline = String::new();
    for n in 1..=4 {
        pipeline.push_str(&format!(
            "[jobs.w{n}]\ninputs = [\"quire/push\"]\nresources = {{ cpus = 2 }}\nsh = \"sleep 4\"\n"
        ));
    }
    let id = repo.push_pipeline(&pipeline);
    let mut said = None;
    until(120, "a job shown waiting in Slurm's queue", || {
        let shown = env.json(&["show", &id]);
        said = shown["jobs"].as_array().and_then(|jobs| {
            jobs.iter().find_map(|j| {
                let why = j["waiting"].as_str()?;
                Some((j["id"].as_str()?.to_string(), why.to_string()))
            })
        });
        said.is_some()
    });
    let (job, why) = said.unwrap();
    assert!(why.starts_with("queued in Slurm: "), "{why}");
    assert!(why.contains(", partition ci"), "{why}");
    let run = env.wait_terminal(&id);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let after = env.json(&["show", &id]);
    assert!(
        after["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["waiting"].is_null()),
        "{after}"
    );
    let log = env.logs(&id, &job);
    assert!(log.contains("quire: queued in Slurm: "), "{log}");
}

/// A worker that died leaves its Slurm jobs running: `reconcile` finds
/// quire's by name and ends those whose run is not active.
#[test]
fn reconcile_ends_the_cluster_jobs_of_runs_that_are_not_active() {
    let Some((env, repo, _cluster)) = on_cluster(slurm::cluster, "") else {
        return;
    };
    let run = repo.push_and_wait("[jobs.quick]\ninputs = [\"quire/push\"]\nsh = \"true\"\n");
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    // What a dead worker's job looks like to Slurm: its name, still there.
    let name = format!("{}left", quire_exec::exec::job_name(&run.id, ""));
    // And one of another home's run: no run of this store has its name.
    let other = "quire-0123456789ab-other".to_string();
    let start = |name: &str| {
        Command::new("srun")
            .args([
                "--quiet",
                "--export=NONE",
                "--chdir=/",
                &format!("--job-name={name}"),
                "/bin/sleep",
                "120",
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut left, mut others) = (start(&name), start(&other));
    until(60, "the leftover jobs to run", || {
        let queued = slurm::squeue_names();
        queued.contains(&name) && queued.contains(&other)
    });
    let report = env.json(&["reconcile"]);
    let ended: Vec<&str> = report["cluster_jobs_ended"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert!(ended.contains(&name.as_str()), "{report}");
    assert!(!ended.contains(&other.as_str()), "{report}");
    until(60, "the leftover job to leave the queue", || {
        !slurm::squeue_names().contains(&name)
    });
    assert!(slurm::squeue_names().contains(&other), "another home's job");
    let _ = Command::new("scancel")
        .arg(format!("--name={other}"))
        .status();
    let _ = left.wait();
    let _ = others.wait();
}

/// A node needs no `git` of its own, and an object larger than a frame
/// travels in pieces: a commit of 2,100 files and a 9 MiB blob (more
/// than a local checkout writes in process, more than one frame holds)
/// is checked out on a node whose `quire-run` finds no `git` on its PATH.
#[test]
fn a_large_tree_and_a_blob_larger_than_a_frame_check_out_on_a_node_without_git() {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    let Some(_cluster) = slurm::cluster() else {
        return;
    };
    // quire-run on the node with a PATH of pasta alone (the steps'
    // network still comes up; the steps get their own PATH).
    let dir = std::path::Path::new("/var/tmp/quire-slurm-tests");
    let bin = dir.join(format!("gitless-bin-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    if std::path::Path::new("/usr/bin/pasta").exists() && !bin.join("pasta").exists() {
        std::os::unix::fs::symlink("/usr/bin/pasta", bin.join("pasta")).unwrap();
    }
    let wrapper = dir.join(format!("gitless-quire-run-{}", std::process::id()));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nPATH={} exec {} \"$@\"\n",
            bin.display(),
            node_binary()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = Env::new();
    env.config(&format!(
        "[executor]\nkind = \"slurm\"\nnode_quire_run = \"{}\"\n",
        wrapper.display()
    ));
    let repo = env.repo_with_hook("app");
    std::fs::create_dir_all(repo.work.join("many")).unwrap();
    for i in 0..2100 {
        std::fs::write(
            repo.work.join(format!("many/f{i}.txt")),
            format!("file {i}\n"),
        )
        .unwrap();
    }
    let big: Vec<u8> = (0..(9 << 20) / 8)
        .flat_map(|i: u32| format!("{:07x}\n", i.wrapping_mul(2_654_435_761) >> 4).into_bytes())
        .collect();
    std::fs::write(repo.work.join("big.bin"), &big).unwrap();
    quire_testkit::git(&repo.work, &["add", "."]);
    let sum: String = Sha256::digest(&big)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let run = repo.push_and_wait(
        "[jobs.check]\ninputs = [\"quire/push\"]\nsh = \"ls many | wc -l; wc -c < big.bin; sha256sum big.bin\"\n",
    );
    let log = env.logs(&run.id, "check");
    assert_eq!(run.state, RunState::Complete, "{log}");
    assert!(log.contains("\n2100\n"), "{log}");
    assert!(log.contains(&format!("\n{}\n", big.len())), "{log}");
    assert!(log.contains(&format!("{sum}  big.bin")), "{log}");
}

/// A build tool on a node rebuilds only what changed: the files of the
/// checkout that hold the blob they held when the cache was saved (on
/// another node) get the time they had then; a changed file keeps its
/// checkout's time.
#[test]
fn a_nodes_checkout_gets_the_file_times_saved_with_the_cache() {
    let Some((env, repo, _cluster)) = on_cluster(slurm::cluster, "") else {
        return;
    };
    let pipeline = |node: &str| {
        format!(
            "[jobs.build]\ninputs = [\"quire/push\"]\ncache = [\"target\"]\nresources = {{ constraint = \"{node}\" }}\nsh = \"echo same=$(date -r same.txt +%s.%N) changed=$(date -r changed.txt +%s.%N); mkdir -p target; touch target/out\"\n"
        )
    };
    repo.commit(
        &[("same.txt", "unchanged\n"), ("changed.txt", "one\n")],
        "files",
    );
    let first = repo.push_and_wait(&pipeline("qnode1"));
    assert_eq!(first.state, RunState::Complete, "{first:?}");
    let times = |log: &str| -> (String, String) {
        let line = log
            .lines()
            .find(|l| l.starts_with("same="))
            .unwrap_or_else(|| panic!("{log}"));
        let mut parts = line.split(' ');
        let same = parts
            .next()
            .unwrap()
            .trim_start_matches("same=")
            .to_string();
        let changed = parts
            .next()
            .unwrap()
            .trim_start_matches("changed=")
            .to_string();
        (same, changed)
    };
    let (same_then, changed_then) = times(&env.logs(&first.id, "build"));
    repo.commit(&[("changed.txt", "two\n")], "change one file");
    let second = repo.push_and_wait(&pipeline("qnode2"));
    assert_eq!(second.state, RunState::Complete, "{second:?}");
    let log = env.logs(&second.id, "build");
    let (same_now, changed_now) = times(&log);
    assert_eq!(same_now, same_then, "{log}");
    assert_ne!(changed_now, changed_then, "{log}");
    assert!(
        log.contains("files of the checkout given their time from the cache's run"),
        "{log}"
    );
}

#[test]
fn a_nodes_step_writes_stdout_and_stderr_through_one_pipe_in_order() {
    let Some((env, repo, _cluster)) = on_cluster(slurm::cluster, "") else {
        return;
    };
    let run = repo.push_and_wait(
        "[jobs.o]\ninputs = [\"quire/push\"]\nsh = \"echo x > /nonexistent/dir/f; echo rc=$?\"\n",
    );
    assert_eq!(run.state, quire_store::RunState::Complete, "{run:?}");
    let log = env.step_log(&run.id, "o", 1);
    let lines: Vec<&str> = log.lines().collect();
    let error = lines.iter().position(|l| l.contains("/nonexistent/dir/f"));
    let rc = lines.iter().position(|l| l.ends_with(" rc=2"));
    assert!(
        matches!((error, rc), (Some(e), Some(r)) if e < r),
        "the shell's error before rc=2, as the node's step wrote them: {log}"
    );
    // One stream, logged as stdout (quire's own notes are stderr's).
    for at in [error, rc].into_iter().flatten() {
        assert!(lines[at].contains(" stdout "), "{log}");
    }
}

/// A node validates the pipeline with the home's limits: a job of more
/// steps than the default allows, which the home's `max_steps` permits,
/// runs there too. (The home's `job_memory_mb` and `job_pids_max` travel
/// the same way; the test nodes' cgroups have neither controller, so
/// their enforcement is not seen here.)
#[test]
fn a_node_validates_the_pipeline_with_the_homes_max_steps() {
    let Some((env, repo, _cluster)) = on_cluster(slurm::cluster, "") else {
        return;
    };
    // Keys of the home, before its [executor] table.
    env.config(&format!(
        "max_steps = 1005\njob_memory_mb = 300\n[executor]\nkind = \"slurm\"\nnode_quire_run = \"{}\"\n",
        node_binary()
    ));
    let mut steps = vec!["\"true\"".to_string(); 1001];
    steps.push("\"echo steps-done\"".into());
    let run = repo.push_and_wait(&format!(
        "[jobs.many]\ninputs = [\"quire/push\"]\nsh = [{}]\n",
        steps.join(", ")
    ));
    let log = env.logs(&run.id, "many");
    assert_eq!(run.state, RunState::Complete, "{log}");
    assert!(log.contains("steps-done"), "{log}");
}

/// A repository of SHA-256 ids runs on a node as it runs here: the node's
/// store for the commit's objects is of the same format, so what the
/// worker sends hashes to the ids the pushed repository has.
#[test]
fn a_repository_of_sha256_ids_checks_out_and_runs_on_a_node() {
    let Some(_cluster) = slurm::cluster() else {
        return;
    };
    let env = Env::new();
    env.config(&format!(
        "[executor]\nkind = \"slurm\"\nnode_quire_run = \"{}\"\n",
        node_binary()
    ));
    let bare = env.path().join("app.git");
    let work = env.path().join("app");
    let (b, w) = (bare.to_str().unwrap(), work.to_str().unwrap());
    quire_testkit::git(
        env.path(),
        &["init", "--quiet", "--bare", "--object-format=sha256", b],
    );
    env.run(&["install", b]).assert().success();
    quire_testkit::git(
        env.path(),
        &["init", "--quiet", "--object-format=sha256", "-b", "main", w],
    );
    quire_testkit::git(&work, &["remote", "add", "origin", b]);
    let repo = Repo {
        bare,
        work,
        home: env.home(),
        vars: Vec::new(),
    };
    let run = repo.push_and_wait(
        "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"git rev-parse HEAD; echo on $SLURMD_NODENAME\"\n",
    );
    let log = env.logs(&run.id, "t");
    assert_eq!(run.state, RunState::Complete, "{log}");
    assert_eq!(run.sha.len(), 64, "{run:?}");
    assert!(
        log.contains(&run.sha),
        "the checkout is of the commit: {log}"
    );
    assert!(log.contains("on qnode"), "it ran on a node: {log}");
}
