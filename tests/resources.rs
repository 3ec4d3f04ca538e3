//! A job's `resources` through a real hook and worker (docs/PIPELINE.md,
//! "Resources"): jobs that together ask for more CPUs than the machine has
//! run one after the other, jobs that fit run side by side, as the times
//! `quire-runs show --json` records say; a GPU the local executor cannot
//! give is a line in the job's log; and a malformed request is refused by
//! `quire-run validate` with the job named.

use quire_store::RunState;
use serde_json::Value;

use quire_testkit::{Env, require};

fn machine_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Two independent jobs `a` and `b`, each a `sleep 1` asking for `cpus`;
/// `a` also asks for a GPU.
fn two_jobs(cpus: usize) -> String {
    format!(
        r#"[jobs.a]
inputs = ["quire/push"]
resources = {{ cpus = {cpus}, gpus = 1 }}
sh = "sleep 1"

[jobs.b]
inputs = ["quire/push"]
resources = {{ cpus = {cpus} }}
sh = "sleep 1"
"#
    )
}

/// A job of `show --json`'s document.
fn job_of<'a>(shown: &'a Value, job: &str) -> &'a Value {
    shown["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == job)
        .unwrap_or_else(|| panic!("no job {job}: {shown}"))
}

/// A job's step's recorded start and end (ms), from `show --json`.
fn step_span(shown: &Value, job: &str) -> (i64, i64) {
    let step = &job_of(shown, job)["steps"][0];
    (
        step["started_at_ms"].as_i64().unwrap(),
        step["finished_at_ms"].as_i64().unwrap(),
    )
}

/// A job's recorded start and end (ms), from `show --json`.
fn job_span(shown: &Value, job: &str) -> (i64, i64) {
    let job = job_of(shown, job);
    (
        job["started_at_ms"].as_i64().unwrap(),
        job["finished_at_ms"].as_i64().unwrap(),
    )
}

#[test]
fn jobs_asking_for_every_cpu_run_one_after_the_other_and_one_cpu_jobs_side_by_side() {
    let cpus = machine_cpus();
    let env = Env::new();
    // Room for more jobs at once than the machine has CPUs: what holds
    // the jobs back below is what they ask for, not this.
    env.config(&format!("max_parallel_jobs = {}\n", cpus * 2 + 2));
    let app = env.repo_with_hook("app");

    let whole = app.push_and_wait(&two_jobs(cpus));
    assert_eq!(whole.state, RunState::Complete, "{whole:?}");
    let shown = env.json(&["show", &whole.id]);
    let (a, b) = (job_span(&shown, "a"), job_span(&shown, "b"));
    // a is first in the plan; b starts once a has ended.
    assert!(a.1 <= b.0, "a {a:?} and b {b:?} overlap: {shown}");
    let (a, b) = (step_span(&shown, "a"), step_span(&shown, "b"));
    assert!(a.1 <= b.0, "the steps of a {a:?} and b {b:?} overlap");
    // The GPU is asked for, not given: said at the top of a's log.
    let logs = env.logs(&whole.id, "a");
    assert!(
        logs.contains(
            "quire: resources: gpus = 1 applies only on a Slurm cluster (docs/PIPELINE.md, \
             \"Resources\"); this job runs on this machine without it"
        ),
        "{logs}"
    );

    if !require("two CPUs", "a machine with two or more", cpus >= 2) {
        return;
    }
    let halves = app.push_and_wait(&two_jobs(1));
    assert_eq!(halves.state, RunState::Complete, "{halves:?}");
    let shown = env.json(&["show", &halves.id]);
    let (a, b) = (step_span(&shown, "a"), step_span(&shown, "b"));
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "one CPU each on a machine of {cpus}: the steps of a {a:?} and b {b:?} should overlap"
    );
}

#[test]
fn validate_names_a_job_whose_memory_has_no_known_unit_and_shows_a_valid_request() {
    let env = Env::new();
    let file = env.path().join("ci.toml");
    std::fs::write(
        &file,
        r#"[jobs.test]
inputs = ["quire/push"]
resources = { cpus = 2, memory = "4GB" }
sh = "make test"
"#,
    )
    .unwrap();
    let name = file.display().to_string();
    env.run(&["validate", &name]).assert().code(1).stdout("").stderr(format!(
        "{name}:1:7: job \"test\": resources.memory is \"4GB\"; write a size with a unit K, M, G \
         or T (powers of 1024, as Slurm's --mem reads them), e.g. \"512M\" or \"4G\", or a whole \
         number of MiB\n"
    ));

    std::fs::write(
        &file,
        r#"[jobs.test]
inputs = ["quire/push"]
resources = { cpus = 2, memory = "4G", gpus = 1, constraint = "avx2" }
sh = "make test"
"#,
    )
    .unwrap();
    env.run(&["validate", &name]).assert().success().stdout(format!(
        "ok: {name} is valid; jobs in the order they run:\n  1. test (1 step; after quire/push; \
         cpus 2, memory 4096 MiB, gpus 1, constraint \"avx2\")\n"
    ));
}
