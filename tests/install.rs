//! Setting up repositories: `quire-run install` into real bare repositories,
//! pushed to with real `git push` through the hook it writes.

use quire_store::RunState;

use crate::util::{Env, Repo, git};

const QUICK: &str = "[jobs.w]\ninputs = [\"quire/push\"]\nsh = \"echo ran\"\n";

/// A bare repository of SHA-256 object ids with the hook installed, and a
/// work tree of the same format pushing to it.
fn sha256_repo(env: &Env) -> Repo {
    let bare = env.path().join("app.git");
    let work = env.path().join("app");
    let (b, w) = (bare.to_str().unwrap(), work.to_str().unwrap());
    git(
        env.path(),
        &["init", "--quiet", "--bare", "--object-format=sha256", b],
    );
    env.run(&["install", b]).assert().success();
    git(
        env.path(),
        &["init", "--quiet", "--object-format=sha256", "-b", "main", w],
    );
    git(&work, &["remote", "add", "origin", b]);
    Repo {
        bare,
        work,
        home: env.home(),
        vars: Vec::new(),
    }
}

#[test]
fn a_repository_of_sha256_ids_runs_its_pipeline_and_gets_its_note() {
    let env = Env::new();
    let repo = sha256_repo(&env);
    let run = repo.push_and_wait(QUICK);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let sha = git(&repo.bare, &["rev-parse", "main"]);
    assert_eq!((run.sha.len(), run.sha.as_str()), (64, sha.as_str()));
    assert!(
        env.step_log(&run.id, "w", 1).contains("ran"),
        "the step ran in a checkout of the SHA-256 commit"
    );
    // Its note, written with git into the same repository.
    crate::util::wait_until("the run's note", || {
        std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&repo.bare)
            .args(["notes", "--ref=ci", "show", &sha])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&run.id))
    });
}
