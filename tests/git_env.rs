//! quire's own `git` calls are hardened (quire-worker `git::command`): a
//! hostile environment (`GIT_DIR`, `GIT_WORK_TREE`, `GIT_INDEX_FILE` and
//! `GIT_CONFIG` pointing elsewhere, a global configuration with an alias,
//! a hooksPath and a smudge filter) changes nothing they do.

use std::path::{Path, PathBuf};

use quire_store::RunState;

use quire_testkit::{Env, git};

/// A decoy repository, work tree and configuration the hostile variables
/// point at; each must stay as it was.
struct Decoy {
    dir: PathBuf,
    config: PathBuf,
    global: PathBuf,
}

impl Decoy {
    fn new(env: &Env) -> Decoy {
        let dir = env.path().join("decoy");
        std::fs::create_dir_all(dir.join("tree")).unwrap();
        git(&dir, &["init", "--quiet", "--bare", "decoy.git"]);
        git(
            &dir.join("decoy.git"),
            &["symbolic-ref", "HEAD", "refs/heads/decoy"],
        );
        let config = dir.join("config");
        std::fs::write(&config, "").unwrap();
        let global = dir.join("global");
        std::fs::write(
            &global,
            format!(
                "[alias]\n\tconfig = !touch {mark}\n\tnotes = !touch {mark}\n\
                 [core]\n\thooksPath = {dir}\n\tfsmonitor = touch {mark}\n\
                 [filter \"evil\"]\n\tsmudge = sed s/clean/EVIL/\n\trequired = true\n",
                mark = dir.join("ran").display(),
                dir = dir.display()
            ),
        )
        .unwrap();
        Decoy {
            dir,
            config,
            global,
        }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        let at = |p: &Path| p.display().to_string();
        vec![
            ("GIT_DIR", at(&self.dir.join("decoy.git"))),
            ("GIT_WORK_TREE", at(&self.dir.join("tree"))),
            ("GIT_INDEX_FILE", at(&self.dir.join("tree/index"))),
            ("GIT_CONFIG", at(&self.config)),
            ("GIT_CONFIG_GLOBAL", at(&self.global)),
            ("HOME", at(&self.dir)),
        ]
    }

    /// Nothing of the decoy was used.
    fn untouched(&self) {
        assert!(!self.dir.join("ran").exists(), "a configured command ran");
        assert_eq!(std::fs::read_to_string(&self.config).unwrap(), "");
        assert!(
            std::fs::read_dir(self.dir.join("tree"))
                .unwrap()
                .next()
                .is_none(),
            "something was written in the decoy work tree"
        );
        assert_eq!(
            git(&self.dir.join("decoy.git"), &["for-each-ref"]),
            "",
            "the decoy repository got a ref"
        );
    }
}

#[test]
fn a_hostile_git_environment_changes_nothing_quire_runs_git_for() {
    let env = Env::new();
    let decoy = Decoy::new(&env);
    let repo = env.repo_with_hook("app");
    // install (git config) under the hostile variables: the option lands
    // in the repository's own configuration.
    git(
        &repo.bare,
        &["config", "--unset", "receive.advertisePushOptions"],
    );
    env.run(&["install", repo.bare.to_str().unwrap()])
        .envs(decoy.vars())
        .assert()
        .success();
    assert_eq!(
        git(
            &repo.bare,
            &["config", "--get", "receive.advertisePushOptions"]
        ),
        "true"
    );

    // The worker (read-tree) and the announcer (git notes), started by
    // trigger under the same variables: the checkout is the commit's,
    // unfiltered, and the note goes to the repository.
    repo.commit(
        &[
            (".gitattributes", "data.txt filter=evil\n"),
            ("data.txt", "clean\n"),
            (
                ".quire/ci.toml",
                "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"grep -x clean data.txt\"\n",
            ),
        ],
        "filtered",
    );
    let (ok, stderr) = repo.push(&["origin", "main", "-o", "ci.skip"]);
    assert!(ok, "{stderr}");
    env.run(&["trigger", "--git-dir", repo.bare.to_str().unwrap(), "main"])
        .envs(decoy.vars())
        .assert()
        .success();
    let run = env.wait_terminal(&env.all_runs()[0].id);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    quire_testkit::wait_until("the run's note", || {
        std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&repo.bare)
            .args(["notes", "--ref=ci", "show", &run.sha])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap()
            .status
            .success()
    });

    // exec (git symbolic-ref) in a work tree on `feature`: the branch is
    // the work tree's, not the decoy's.
    git(&repo.work, &["checkout", "--quiet", "-b", "feature"]);
    std::fs::write(
        repo.work.join(".quire/ci.toml"),
        "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"echo branch=$QUIRE_BRANCH\"\n",
    )
    .unwrap();
    let logs = env.path().join("exec");
    env.run(&[
        "exec",
        "--workspace",
        repo.work.to_str().unwrap(),
        "--logs",
        logs.to_str().unwrap(),
    ])
    .envs(decoy.vars())
    .assert()
    .success();
    let log = std::fs::read_to_string(logs.join("logs/t.log")).unwrap();
    assert!(log.contains(" stdout F branch=feature"), "{log}");

    decoy.untouched();
}
