//! The Slurm cluster the Slurm executor's tests run on (`.ci/slurm-cluster`,
//! `quire_testkit::slurm`) is a cluster as a job sees one: three nodes,
//! each with its own `/tmp`, reached by `srun` from the host with stdin
//! forwarded; a node killed fails its job and comes back.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use quire_testkit::slurm::{self, NODES};
use quire_testkit::{wait_exit, wait_until};

/// `srun ARGS` with `stdin`, waited for.
fn srun(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new("srun")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("srun");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `srun ARGS`, which must succeed; its stdout.
fn srun_ok(args: &[&str]) -> String {
    let out = srun(args, b"");
    assert!(
        out.status.success(),
        "srun {args:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn srun_runs_a_task_on_each_of_the_three_nodes() {
    let Some(_cluster) = slurm::cluster() else {
        return;
    };
    let out = srun_ok(&["-N3", "-n3", "sh", "-c", "echo $SLURMD_NODENAME"]);
    let mut names: Vec<&str> = out.lines().collect();
    names.sort_unstable();
    assert_eq!(names, NODES, "{out}");
}

#[test]
fn each_node_has_a_tmp_of_its_own() {
    let Some(_cluster) = slurm::cluster() else {
        return;
    };
    let name = format!("quire-slurm-test-{}", std::process::id());
    let file = format!("/tmp/{name}");
    srun_ok(&["-w", "qnode1", "sh", "-c", &format!("echo here > {file}")]);
    // Still there for the node's next job: /tmp is the node's, not the job's.
    assert_eq!(srun_ok(&["-w", "qnode1", "cat", &file]), "here\n");
    let elsewhere = srun_ok(&[
        "-w",
        "qnode2",
        "sh",
        "-c",
        &format!("test -e {file} && echo present || echo absent"),
    ]);
    assert_eq!(elsewhere, "absent\n", "qnode2 sees qnode1's /tmp");
    assert!(
        !std::path::Path::new(&file).exists(),
        "the host sees qnode1's /tmp"
    );
    srun_ok(&["-w", "qnode1", "rm", &file]);
}

#[test]
fn srun_forwards_stdin_to_the_task() {
    let Some(_cluster) = slurm::cluster() else {
        return;
    };
    let out = srun(&["-n1", "cat"], b"x\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x\n");
}

/// An srun killed with the test, should it fail: its job ends with it.
struct Victim(std::process::Child);

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// About 15 s: Slurm sees a dead node only after SlurmdTimeout and two
/// pings that fail after MessageTimeout each (.ci/slurm-cluster).
#[test]
fn a_killed_node_fails_its_job_and_comes_back_when_restarted() {
    let Some(cluster) = slurm::cluster_exclusive() else {
        return;
    };
    let name = format!("quire-slurm-victim-{}", std::process::id());
    let mut victim = Victim(
        Command::new("srun")
            .args(["-w", "qnode3", "-J", &name, "sleep", "100"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("srun"),
    );
    wait_until("the job to run on qnode3", || {
        slurm::squeue_names().contains(&name)
            && slurm::processes_on("qnode3")
                .iter()
                .any(|(_, cmdline)| cmdline.ends_with("sleep 100"))
    });

    let killed = Instant::now();
    cluster.kill_node("qnode3");
    assert_eq!(slurm::processes_on("qnode3"), vec![]);
    let status = wait_exit(&mut victim.0);
    let took = killed.elapsed();
    eprintln!("srun ended {took:?} after the kill: {status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut victim.0.stderr.take().unwrap(), &mut stderr).unwrap();
    // Slurm 22.05's srun exits 0 when its only node failed: its stderr
    // says what happened.
    assert!(
        stderr.contains("srun: error: Node failure on qnode3"),
        "{status}: {stderr}"
    );
    assert!(took.as_secs() < 30, "the job failed only after {took:?}");
    assert!(!slurm::squeue_names().contains(&name));

    cluster.restart_node("qnode3");
    assert_eq!(srun_ok(&["-w", "qnode3", "hostname"]), "qnode3\n");
}
