//! One glob rule over refs (docs/PIPELINE.md, "Globs"): a job's `when`,
//! `[[notify]] refs` and `quire-runs list --ref` agree that `release/*`
//! matches `release/1.0` and not `release/1.0/hotfix`, and that
//! `release/**` matches both.

use std::path::Path;

use quire_store::RunState;

use quire_testkit::{Env, git, wait_until};

const PIPELINE: &str = r#"
[jobs.one]
inputs = ["quire/push"]
sh = "true"
when = { branches = ["release/*"] }

[jobs.any]
inputs = ["quire/push"]
sh = "true"
when = { branches = ["release/**"] }
"#;

/// A notifier that leaves `<dir>/<name>.<run>` behind.
fn recorder(dir: &Path, name: &str) -> String {
    format!(
        "[\"sh\", \"-c\", 'touch \"$0/{name}.$QUIRE_RUN_ID\"', \"{}\"]",
        dir.display()
    )
}

/// The run of `branch`, pushed to the repository `name` (a repository of
/// its own: git cannot hold `release/1.0` and `release/1.0/hotfix` at
/// once), once its notifiers have run.
fn pushed(env: &Env, name: &str, branch: &str) -> String {
    let repo = env.repo_with_hook(name);
    repo.commit(&[(".quire/ci.toml", PIPELINE)], "pipeline");
    git(&repo.work, &["branch", branch]);
    let run = repo.push_refs(&[branch]).remove(0);
    assert_eq!(env.wait_terminal(&run).state, RunState::Complete);
    run
}

/// Which of the run's jobs ran (not skipped).
fn jobs_run(env: &Env, run: &str) -> Vec<String> {
    let doc = env.json(&["show", run]);
    doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["state"] != "skipped")
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

/// The runs `list --ref GLOB --limit N` shows, sorted.
fn listed(env: &Env, glob: &str, limit: usize) -> Vec<String> {
    let out = env.json(&["list", "--ref", glob, "--limit", &limit.to_string()]);
    let mut ids: Vec<String> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn notified(inbox: &Path, name: &str) -> Vec<String> {
    let mut runs: Vec<String> = std::fs::read_dir(inbox)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix(&format!("{name}."))
                .map(str::to_string)
        })
        .collect();
    runs.sort();
    runs
}

#[test]
fn when_notify_refs_and_list_ref_agree_on_one_and_any_segments() {
    let env = Env::new();
    let inbox = env.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    env.config(&format!(
        "[[notify]]\non = [\"complete\"]\nrefs = [\"release/*\"]\ncommand = {}\n\n\
         [[notify]]\non = [\"complete\"]\nrefs = [\"release/**\"]\ncommand = {}\n",
        recorder(&inbox, "one"),
        recorder(&inbox, "any")
    ));
    let release = pushed(&env, "a", "release/1.0");
    let hotfix = pushed(&env, "b", "release/1.0/hotfix");
    let both = {
        let mut both = vec![release.clone(), hotfix.clone()];
        both.sort();
        both
    };

    // release/*: release/1.0 only, in all three.
    assert_eq!(jobs_run(&env, &release), ["one", "any"]);
    assert_eq!(jobs_run(&env, &hotfix), ["any"]);
    wait_until("both runs' notifiers", || {
        notified(&inbox, "any").len() == 2 && notified(&inbox, "one").len() == 1
    });
    assert_eq!(notified(&inbox, "one"), [release.as_str()]);
    assert_eq!(listed(&env, "release/*", 20), [release.as_str()]);
    assert_eq!(listed(&env, "refs/heads/release/*", 20), [release.as_str()]);
    // The filter is applied before the limit: the newest run (hotfix's)
    // does not match, and one run is still shown.
    assert_eq!(listed(&env, "release/*", 1), [release.as_str()]);
    // release/**: both, in all three.
    assert_eq!(notified(&inbox, "any"), both);
    assert_eq!(listed(&env, "release/**", 20), both);
    assert_eq!(listed(&env, "refs/heads/release/**", 20), both);
}
