//! Issue 25's figures: jobs on a Slurm cluster (`[executor] kind =
//! "slurm"`) against the local executor, on the same machine, in the same
//! run. Needs a running cluster (`.ci/slurm-cluster start`: three 2-CPU
//! nodes); without one the rows say so.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Bins, Repo, Stats, row, run, time, trigger_main};

/// A home with `config`, and a repository whose main is `pipeline`,
/// pushed without a run.
fn home_with(
    bins: &Bins,
    dir: &Path,
    name: &str,
    config: &str,
    pipeline: &str,
) -> (std::path::PathBuf, Repo) {
    let home = dir.join(format!("{name}-home"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("config.toml"), config).unwrap();
    let repo = Repo::new(dir, name);
    repo.install(bins, &home);
    repo.commit(&[(".quire/ci.toml", pipeline)], "pipeline");
    repo.push(&["--quiet", "-o", "ci.skip", "origin", "main"]);
    (home, repo)
}

fn cluster_up() -> bool {
    Command::new("sinfo")
        .args(["--noheader", "--format=%t"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == "idle" || l.trim() == "mix")
        })
}

/// `trigger --wait` of `repo`'s main, `n` times.
fn samples(bins: &Bins, home: &Path, repo: &Repo, n: usize) -> Stats {
    let taken: Vec<Duration> = (0..n)
        .map(|_| time(|| run(&mut trigger_main(bins, home, repo))).0)
        .collect();
    Stats::of(&taken)
}

pub fn slurm(bins: &Bins, quick: bool) {
    if !cluster_up() {
        row(
            "12 `sleep 1` jobs on a Slurm cluster; one job's dispatch through Slurm",
            "-",
            "not measured: no Slurm cluster answers `sinfo` here (`.ci/slurm-cluster start`)",
            "-",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The nodes see the binary only outside /tmp (each has its own).
    let node_bin = Path::new("/var/tmp/quire-bench-node-quire-run");
    std::fs::copy(&bins.quire_run, node_bin).unwrap();
    let slurm = format!(
        "[executor]\nkind = \"slurm\"\nnode_quire_run = \"{}\"\n",
        node_bin.display()
    );
    let mut twelve = String::new();
    for n in 1..=12 {
        twelve.push_str(&format!(
            "[jobs.j{n}]\ninputs = [\"quire/push\"]\nresources = {{ cpus = 1 }}\nsh = \"sleep 1\"\n"
        ));
    }
    let n = if quick { 2 } else { 3 };
    let (local_home, local_repo) = home_with(
        bins,
        dir.path(),
        "local12",
        "max_parallel_jobs = 2\n",
        &twelve,
    );
    let (cluster_home, cluster_repo) = home_with(bins, dir.path(), "cluster12", &slurm, &twelve);
    let local = samples(bins, &local_home, &local_repo, n);
    let cluster = samples(bins, &cluster_home, &cluster_repo, n);
    row(
        "12 `sleep 1` jobs, `cpus = 1` each, through `trigger --wait`: three 2-CPU Slurm nodes against the local executor",
        &format!("local, `max_parallel_jobs = 2`: {local}"),
        &format!(
            "Slurm: {cluster}; **{:.2}x** the local time",
            cluster.median / local.median
        ),
        "cluster within 2.5 s (local: 6 s)",
    );
    // One job's dispatch: a 1-job run of `true`, here and on the cluster.
    let one = "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"true\"\n";
    let (lh, lr) = home_with(bins, dir.path(), "local1", "", one);
    let (ch, cr) = home_with(bins, dir.path(), "cluster1", &slurm, one);
    let reps = if quick { 5 } else { 15 };
    let (mut l, mut c) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        l.push(time(|| run(&mut trigger_main(bins, &lh, &lr))).0);
        c.push(time(|| run(&mut trigger_main(bins, &ch, &cr))).0);
    }
    let (l, c) = (Stats::of(&l), Stats::of(&c));
    row(
        "one job (`true`) dispatched through Slurm, over the same job run locally (`trigger --wait`, interleaved)",
        &format!("local: {l}"),
        &format!("Slurm: {c}; **{:+.1} ms** a job", c.median - l.median),
        "under 150 ms",
    );
    let _ = std::fs::remove_file(node_bin);
}
