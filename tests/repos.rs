//! Repositories: identity by path, names, `quire-runs repos`, `--repo`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use predicates::prelude::*;
use quire_store::RunState;
use serde_json::Value;

use quire_testkit::{Env, Repo, find, git, queued_runs};

const ONE_SECOND: &str = r#"[jobs.w]
inputs = ["quire/push"]
sh = "sleep 1"
"#;
const QUICK: &str = r#"[jobs.w]
inputs = ["quire/push"]
sh = "true"
"#;

/// Push `pipeline` to main; the id of the run it queued, which completed.
fn push_run(repo: &Repo, pipeline: &str) -> String {
    let run = repo.push_and_wait(pipeline);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    run.id
}

/// The ids in a `list --json` answer.
fn ids(runs: &Value) -> Vec<&str> {
    let runs = runs.as_array().unwrap();
    runs.iter().map(|r| r["id"].as_str().unwrap()).collect()
}

/// The object named `name` in a `repos --json` answer.
fn repo<'a>(repos: &'a Value, name: &str) -> &'a Value {
    repos
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no repository {name} in {repos:#}"))
}

fn names(repos: &Value) -> Vec<&str> {
    let repos = repos.as_array().unwrap();
    repos.iter().map(|r| r["name"].as_str().unwrap()).collect()
}

fn canonical(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn two_repositories_with_one_folder_name_pushed_at_once_both_run_to_completion() {
    let env = Env::new();
    let a = env.repo_with_hook("team-a/app");
    let b = env.repo_with_hook("team-b/app");
    for repo in [&a, &b] {
        repo.commit(&[(".quire/ci.toml", ONE_SECOND)], "a second's work");
    }
    let [(ok_a, err_a), (ok_b, err_b)] = std::thread::scope(|s| {
        [&a, &b]
            .map(|repo| s.spawn(move || repo.push(&["origin", "main"])))
            .map(|push| push.join().unwrap())
    });
    assert!(ok_a && ok_b, "{err_a}\n{err_b}");
    let (run_a, run_b) = (queued_runs(&err_a).remove(0), queued_runs(&err_b).remove(0));
    // Both are refs/heads/main, but of two repositories: neither supersedes
    // the other.
    assert!(!err_a.contains("superseded") && !err_b.contains("superseded"));
    for id in [&run_a, &run_b] {
        assert_eq!(env.wait_terminal(id).state, RunState::Complete);
    }

    let all = env.json(&["list"]);
    assert_eq!(find(&all, &run_a)["repo"], "team-a/app.git");
    assert_eq!(find(&all, &run_b)["repo"], "team-b/app.git");
    assert_eq!(
        ids(&env.json(&["list", "--repo", "team-a/app.git"])),
        [&run_a]
    );
    let b_dir = b.bare.to_str().unwrap();
    assert_eq!(ids(&env.json(&["list", "--repo", b_dir])), [&run_b]);
}

#[test]
fn names_are_the_shortest_unshared_tail_or_the_path_under_repos_root_and_old_names_resolve() {
    let env = Env::new();
    let first = env.repo_with_hook("srv/git/app");
    let repos = env.json(&["repos"]);
    assert_eq!(names(&repos), ["app.git"]);
    assert_eq!(repo(&repos, "app.git")["path"], canonical(&first.bare));
    assert_eq!(
        repo(&repos, "app.git")["former_names"],
        Value::Array(vec![])
    );
    let run = push_run(&first, QUICK);

    // A second app.git elsewhere: both are named by their parents now.
    let second = env.repo_with_hook("mirror/app");
    let repos = env.json(&["repos"]);
    assert_eq!(names(&repos), ["git/app.git", "mirror/app.git"]);
    assert_eq!(repo(&repos, "git/app.git")["path"], canonical(&first.bare));
    assert_eq!(
        repo(&repos, "git/app.git")["former_names"],
        serde_json::json!(["app.git"])
    );
    assert_eq!(
        repo(&repos, "mirror/app.git")["path"],
        canonical(&second.bare)
    );
    // The old name still finds the repository that had it.
    let runs = env.json(&["list", "--repo", "app"]);
    assert_eq!(ids(&runs), [&run]);
    assert_eq!(runs[0]["repo"], "git/app.git");

    // Under repos_root, the path relative to it is the name, from the next
    // push on.
    std::fs::write(
        env.home().dir().join("config.toml"),
        format!("repos_root = {:?}\n", canonical(env.path())),
    )
    .unwrap();
    let again = push_run(&first, QUICK);
    let repos = env.json(&["repos"]);
    assert_eq!(names(&repos), ["mirror/app.git", "srv/git/app.git"]);
    let former = &repo(&repos, "srv/git/app.git")["former_names"];
    for name in ["git/app.git", "app.git"] {
        assert!(
            former.as_array().unwrap().contains(&name.into()),
            "{former}"
        );
    }
    assert_eq!(repo(&repos, "srv/git/app.git")["runs"], 2);
    for given in ["srv/git/app.git", "srv/git/app", "git/app.git", "app"] {
        let runs = env.json(&["list", "--repo", given]);
        assert_eq!(ids(&runs), [&again, &run], "--repo {given}");
    }
}

#[test]
fn repos_says_whether_git_would_run_quires_hook() {
    let env = Env::new();
    let good = env.repo_with_hook("good");
    let redirected = env.repo_with_hook("redirected");
    let replaced = env.repo_with_hook("replaced");
    git(
        env.path(),
        &[
            "--git-dir",
            redirected.bare.to_str().unwrap(),
            "config",
            "core.hooksPath",
            "/elsewhere",
        ],
    );
    // quire's post-receive with refs/notes/ci not hidden (as the oldest
    // installs left it): pushes run, but the notes ref is open to pushers.
    let unguarded = env.repo_with_hook("unguarded");
    git(
        &unguarded.bare,
        &["config", "--unset-all", "receive.hideRefs"],
    );
    // quire's post-receive with the pre-receive hook of an earlier install,
    // which refuses the notes ref itself: guarded, no warning.
    let hooked_guard = env.repo_with_hook("hooked-guard");
    git(
        &hooked_guard.bare,
        &["config", "--unset-all", "receive.hideRefs"],
    );
    let guard = hooked_guard.bare.join("hooks/pre-receive");
    std::fs::write(
        &guard,
        "#!/bin/sh\n# quire's pre-receive hook, written by `quire-run install`\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&guard, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hook = replaced.bare.join("hooks/post-receive");
    std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Installed for another home, then pushed by hand into this one.
    let other = Env::new();
    let theirs = other.repo_with_hook("theirs");
    theirs.commit(&[("README.md", "hi\n")], "first");
    assert!(theirs.push(&["origin", "main"]).0);
    env.run(&[
        "trigger",
        "--git-dir",
        theirs.bare.to_str().unwrap(),
        "main",
    ])
    .assert()
    .success();

    let repos = env.json(&["repos"]);
    assert_eq!(
        names(&repos),
        [
            "good.git",
            "hooked-guard.git",
            "redirected.git",
            "replaced.git",
            "theirs.git",
            "unguarded.git"
        ]
    );
    let good_json = repo(&repos, "good.git");
    assert_eq!(
        (
            &good_json["hook"],
            &good_json["warning"],
            &good_json["hook_state"]
        ),
        (&"quire".into(), &Value::Null, &"installed".into())
    );
    assert_eq!(
        repo(&repos, "hooked-guard.git")["warning"],
        Value::Null,
        "an earlier install's pre-receive hook still refuses the notes ref"
    );
    let redirected_json = repo(&repos, "redirected.git");
    assert_ne!(redirected_json["hook"], "quire");
    assert_eq!(redirected_json["hooks_path"], "/elsewhere");
    let warning = redirected_json["warning"].as_str().unwrap();
    assert!(
        warning.contains("core.hooksPath") && warning.contains("/elsewhere"),
        "{warning}"
    );
    assert_eq!(repo(&repos, "replaced.git")["hook"], "foreign");
    let theirs_json = repo(&repos, "theirs.git");
    assert_eq!(
        (&theirs_json["hook"], &theirs_json["hook_state"]),
        (&"other-home".into(), &"seen".into())
    );
    assert!(theirs_json["installed_at"].is_null());
    let unguarded_json = repo(&repos, "unguarded.git");
    assert_eq!(unguarded_json["hook"], "quire");
    assert_eq!(
        unguarded_json["warning"],
        "git lets a pusher write refs/notes/ci (quire's notes); `quire-run install` \
         hides it from pushes (receive.hideRefs)"
    );

    let out = env.runs(&["repos"]).assert().success();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.get_output().stdout),
        String::from_utf8_lossy(&out.get_output().stderr),
    );
    let line = |name: &str| {
        let found = stdout.lines().find(|l| l.starts_with(name));
        found
            .unwrap_or_else(|| panic!("no {name} row: {stdout}"))
            .to_string()
    };
    assert!(
        stdout.lines().next().unwrap().starts_with("REPO"),
        "{stdout}"
    );
    assert!(line("good.git").contains(&canonical(&good.bare)));
    assert!(line("good.git").contains(" quire "), "{stdout}");
    assert!(line("replaced.git").contains("not quire's"), "{stdout}");
    assert!(line("theirs.git").contains("another home"), "{stdout}");
    assert!(!stderr.contains("good.git"), "{stderr}");
    assert!(
        stderr.contains("warning: redirected.git: ") && stderr.contains("core.hooksPath"),
        "{stderr}"
    );
    assert!(stderr.contains("warning: replaced.git: "), "{stderr}");
    assert!(stderr.contains("warning: theirs.git: "), "{stderr}");

    assert!(
        stderr.contains("warning: unguarded.git: git lets a pusher write refs/notes/ci"),
        "{stderr}"
    );
    // Installing again hides it.
    env.run(&["install", unguarded.bare.to_str().unwrap()])
        .assert()
        .success();
    let repos = env.json(&["repos"]);
    assert_eq!(repo(&repos, "unguarded.git")["warning"], Value::Null);

    // install says so too, since its hook would never run.
    env.run(&["install", redirected.bare.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: core.hooksPath points git at /elsewhere",
        ));
}

#[test]
fn an_empty_home_has_no_repositories_and_an_unknown_one_is_an_error() {
    let env = Env::new();
    env.store();
    env.runs(&["repos"])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("no repositories yet"));
    assert_eq!(env.json(&["repos"]), Value::Array(vec![]));
    env.runs(&["list", "--repo", "unknown"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "no repository \"unknown\" is known",
        ))
        .stderr(predicate::str::contains("hint: `quire-runs repos`"));
}

#[test]
fn a_hooks_path_under_the_home_folder_is_followed_as_git_follows_it() {
    let env = Env::new();
    let repo = env.repo_with_hook("tilde");
    let user_home = env.path().join("user");
    let hooks = user_home.join("myhooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::copy(
        repo.bare.join("hooks/post-receive"),
        hooks.join("post-receive"),
    )
    .unwrap();
    git(
        env.path(),
        &[
            "--git-dir",
            repo.bare.to_str().unwrap(),
            "config",
            "core.hooksPath",
            "~/myhooks",
        ],
    );
    let out = env
        .runs(&["repos", "--json"])
        .env("HOME", &user_home)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let repos: Value = serde_json::from_slice(&out).unwrap();
    let found = self::repo(&repos, "tilde.git");
    assert_eq!(found["hook"], "quire", "{repos}");
    assert_eq!(found["hooks_path"], hooks.to_str().unwrap(), "{repos}");
}

#[test]
fn a_repo_name_that_ends_several_names_names_each_of_them() {
    let env = Env::new();
    env.config(&format!("repos_root = {:?}\n", canonical(env.path())));
    let team = env.repo_with_hook("team/app");
    let infra = env.repo_with_hook("infra/app");
    let run = push_run(&team, QUICK);
    push_run(&infra, QUICK);
    assert_eq!(
        names(&env.json(&["repos"])),
        ["infra/app.git", "team/app.git"]
    );
    for args in [
        vec!["list", "-R", "app"],
        vec!["show", "-R", "app.git"],
        vec!["watch", "--repo", "app"],
        vec!["logs", "-R", "app"],
    ] {
        let said = format!(
            "quire-runs: error: {:?} is ambiguous: it ends the names of 2 repositories: \
             infra/app.git, team/app.git",
            args[2]
        );
        env.runs(&args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(said))
            .stderr(predicate::str::contains(
                "hint: give the whole name: -R infra/app.git",
            ));
    }
    // The whole name picks one.
    assert_eq!(ids(&env.json(&["list", "-R", "team/app"])), [&run]);
    // A name that ends one name: the error as before, and which it may be.
    let other = env.repo_with_hook("tools/web");
    push_run(&other, QUICK);
    env.runs(&["list", "-R", "web"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no repository \"web\" is known"))
        .stderr(predicate::str::contains("did you mean tools/web.git?"));
    env.runs(&["list", "-R", "nothing"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "no repository \"nothing\" is known",
        ));
}
