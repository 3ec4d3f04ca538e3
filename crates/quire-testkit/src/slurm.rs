//! The Slurm cluster the Slurm executor's tests run jobs on:
//! `.ci/slurm-cluster start` (as root; `.ci/run` starts it) runs slurmctld
//! on the host and a slurmd for each of [`NODES`], each in a network
//! namespace of its own (`/run/netns/NAME`, 10.201.0.11-13) and a mount
//! namespace with a private `/tmp`. `srun`, `squeue` and `scancel` on the
//! host reach it with no environment (/etc/slurm/slurm.conf).
//!
//! Tests share it: each holds a [`Cluster`] while it runs jobs, from
//! [`cluster`]; a test that kills a node holds it alone, from
//! [`cluster_exclusive`], so that no other test's job is on the node it
//! kills. The hold is a lock on a file (`flock`), so it holds across test
//! threads and test binaries.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{FlockOperation, flock};

use crate::process::alive;
use crate::require::require;

/// The cluster's nodes, each the name of its network namespace.
pub const NODES: [&str; 3] = ["qnode1", "qnode2", "qnode3"];

/// A test's hold on the cluster (see the module's documentation); the
/// nodes it killed and did not restart come back when it is dropped.
pub struct Cluster {
    _lock: File,
    exclusive: bool,
    killed: RefCell<Vec<String>>,
}

/// The cluster, shared with other tests, if it is up; otherwise
/// [`require`]: under CI the test fails, elsewhere it says why it skips
/// and gets `None`.
pub fn cluster() -> Option<Cluster> {
    hold(false)
}

/// The cluster, held by this test alone (other tests' holds wait), for a
/// test that kills nodes ([`Cluster::kill_node`]).
pub fn cluster_exclusive() -> Option<Cluster> {
    hold(true)
}

fn hold(exclusive: bool) -> Option<Cluster> {
    let path = std::env::temp_dir().join("quire-slurm-tests.lock");
    // Made by whoever comes first; a lock needs only reading.
    let _ = OpenOptions::new().create(true).append(true).open(&path);
    let lock = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let how = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    flock(&lock, how).unwrap();
    require("a Slurm cluster", "sudo .ci/slurm-cluster start", up()).then(|| Cluster {
        _lock: lock,
        exclusive,
        killed: RefCell::new(Vec::new()),
    })
}

/// Whether the cluster answers with every node up (idle, or running jobs).
/// Asked only while its bridge is there: else sinfo would look for the
/// controller's address off the machine.
pub fn up() -> bool {
    if !Path::new("/sys/class/net/qslurm0").exists() {
        return false;
    }
    let Some(out) = output("sinfo", &["-h", "-N", "-o", "%N %t"]) else {
        return false;
    };
    NODES.iter().all(|node| {
        out.lines().any(|line| {
            line.split_once(' ').is_some_and(|(name, state)| {
                name == *node && matches!(state, "idle" | "alloc" | "mix" | "comp")
            })
        })
    })
}

impl Cluster {
    /// Kill `node` as a machine dies: SIGKILL its slurmd and every process
    /// in its network namespace. Slurm sees it DOWN some 12-16 s later
    /// (SlurmdTimeout, MessageTimeout), and only then fails its jobs: an
    /// `srun` whose every task was there exits then, with status 0 and
    /// `srun: error: Node failure on NODE` on stderr.
    pub fn kill_node(&self, node: &str) {
        assert!(self.exclusive, "kill a node only from cluster_exclusive()");
        script(&["kill-node", node]).unwrap();
        self.killed.borrow_mut().push(node.to_string());
    }

    /// Start `node`'s slurmd again and wait until Slurm counts it up
    /// (idle). A node killed moments ago is first waited for to be seen
    /// DOWN, its jobs failed: up to ~16 s.
    pub fn restart_node(&self, node: &str) {
        script(&["restart-node", node]).unwrap();
        self.killed.borrow_mut().retain(|n| n != node);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Also when the test failed: no panic here, a second one aborts.
        for node in self.killed.take() {
            if let Err(e) = script(&["restart-node", &node]) {
                eprintln!("{e}");
            }
        }
    }
}

/// The names of the jobs in Slurm's queue (pending, running, completing).
pub fn squeue_names() -> Vec<String> {
    output("squeue", &["-h", "-a", "-o", "%j"])
        .unwrap_or_else(|| panic!("squeue failed"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// The live processes on `node` (in its network namespace), with their
/// command lines (arguments joined by spaces; srun gives a task the path
/// it found, `/usr/bin/sleep 100`): jobs' tasks and the
/// slurmstepd that runs them, not the node's slurmd. Reading other
/// users' namespaces needs root.
pub fn processes_on(node: &str) -> Vec<(u32, String)> {
    let ns = std::fs::metadata(Path::new("/run/netns").join(node))
        .unwrap_or_else(|e| panic!("/run/netns/{node}: {e}"));
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let dir = entry.path();
        let same = std::fs::metadata(dir.join("ns/net"))
            .is_ok_and(|m| (m.dev(), m.ino()) == (ns.dev(), ns.ino()));
        if !same || !alive(pid) {
            continue;
        }
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() == "slurmd" {
            continue;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline)
            .split('\0')
            .filter(|a| !a.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .trim_end()
            .to_string();
        found.push((pid, cmdline));
    }
    found
}

/// `.ci/slurm-cluster` of this workspace.
fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/slurm-cluster")
}

fn script(args: &[&str]) -> Result<(), String> {
    match Command::new(script_path())
        .args(args)
        .stdin(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(".ci/slurm-cluster {}: {status}", args.join(" "))),
        Err(e) => Err(format!(".ci/slurm-cluster {}: {e}", args.join(" "))),
    }
}

/// What `program args` printed, if it ran and exited 0.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
