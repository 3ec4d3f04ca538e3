//! quire-run trigger: a run recorded for a ref of a real bare repository.

use predicates::prelude::*;

use crate::util::{Env, git};

#[test]
fn trigger_records_a_pending_run_and_supersedes_the_previous_one() {
    let env = Env::new();
    let repo = env.bare_repo("app.git");
    let sha = git(&repo, &["rev-parse", "refs/heads/main"]);
    let git_dir = repo.to_str().unwrap();
    env.run(&["trigger", "--git-dir", git_dir, "main"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"^quire: queued run [0-9a-f-]{36} for refs/heads/main \(quire-runs show [0-9a-f-]{36}\)\n$").unwrap());
    let first = env.json(&["list"])[0].clone();
    assert_eq!(first["repo"], "app.git");
    assert_eq!(first["ref"], "refs/heads/main");
    assert_eq!(first["sha"], sha.as_str());
    assert_eq!(first["state"], "pending");
    assert_eq!(
        first["git_dir"],
        std::fs::canonicalize(&repo).unwrap().to_str().unwrap()
    );

    env.run(&["trigger", "--git-dir", git_dir, "refs/heads/main", &sha])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "quire: superseded run {}",
            first["id"].as_str().unwrap()
        )));
    let runs = env.json(&["list"]);
    assert_eq!(runs[0]["state"], "pending");
    assert_eq!(runs[1]["state"], "superseded");
}

#[test]
fn trigger_refuses_unknown_refs_and_shas_without_writing() {
    let env = Env::new();
    let repo = env.bare_repo("app.git");
    let git_dir = repo.to_str().unwrap();
    env.run(&["trigger", "--git-dir", git_dir, "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "\"nope\" is neither a branch nor a tag",
        ));
    env.run(&[
        "trigger",
        "--git-dir",
        git_dir,
        "main",
        "0000000000000000000000000000000000000000",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains("names no commit"));
    env.run(&["trigger", "--git-dir", "/nonexistent/x.git", "main"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot open repository"));
    assert_eq!(env.json(&["list"]), serde_json::json!([]));
}

#[test]
fn concurrent_triggers_of_one_ref_from_many_processes_leave_one_live_run() {
    let env = Env::new();
    let repo = env.bare_repo("app.git");
    let children: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("quire-run"))
                .arg("--home")
                .arg(env.home().dir())
                .args(["trigger", "--git-dir", repo.to_str().unwrap(), "main"])
                .output()
        })
        .collect();
    for child in children {
        let out = child.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs = env.json(&["list", "--limit", "100"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 8);
    assert_eq!(runs.iter().filter(|r| r["state"] == "pending").count(), 1);
    assert_eq!(
        runs.iter().filter(|r| r["state"] == "superseded").count(),
        7
    );
}

#[test]
fn the_demo_pushes_a_project_and_records_its_run() {
    let env = Env::new();
    let dir = env.path().join("demo");
    let out = env
        .run(&["demo", "--dir", dir.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("pushed main to"))
        .stdout(predicate::str::contains("state     pending"))
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let runs = env.json(&["list"]);
    let id = runs[0]["id"].as_str().unwrap();
    assert!(text.contains(&format!("run       {id}")), "{text}");
    assert_eq!(
        runs[0]["sha"],
        git(&dir.join("app.git"), &["rev-parse", "main"]).as_str()
    );
    // The pushed commit carries the pipeline.
    let pipeline = git(&dir.join("app.git"), &["show", "main:.quire/ci.toml"]);
    assert!(pipeline.contains("[jobs.test]"));
    // A second demo in the same place is refused rather than mixed in.
    env.run(&["demo", "--dir", dir.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already holds a demo"));
}
