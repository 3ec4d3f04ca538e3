//! Setting up repositories: `quire-run install` into real bare repositories,
//! pushed to with real `git push` through the hook it writes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use predicates::prelude::*;
use quire_store::RunState;

use quire_testkit::{Env, Repo, git};

const QUICK: &str = r#"[jobs.w]
inputs = ["quire/push"]
sh = "echo ran"
"#;

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
    quire_testkit::wait_until("the run's note", || {
        std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&repo.bare)
            .args(["notes", "--ref=ci", "show", &sha])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&run.id))
    });
}

/// A bare repository `name.git` without quire's hook, and a work tree
/// pushing to it.
fn bare_repo(env: &Env, name: &str) -> Repo {
    let bare = env.path().join(format!("{name}.git"));
    git(
        env.path(),
        &["init", "--quiet", "--bare", bare.to_str().unwrap()],
    );
    let work = env.path().join(name);
    git(
        env.path(),
        &["init", "--quiet", "-b", "main", work.to_str().unwrap()],
    );
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    Repo {
        bare,
        work,
        home: env.home(),
        vars: Vec::new(),
    }
}

/// Write an executable hook.
fn write_hook(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A post-receive hook of the server's own: says it ran, and copies what
/// git gave it on stdin to `out`.
fn their_hook(out: &Path) -> String {
    format!(
        "#!/bin/sh\necho \"their hook ran in $(pwd)\"\ncat >> '{}'\n",
        out.display()
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn an_existing_post_receive_hook_still_runs_after_install_and_quires_run_is_recorded() {
    let env = Env::new();
    let repo = bare_repo(&env, "app");
    let hooks = repo.bare.join("hooks");
    let got = env.path().join("their-input");
    let theirs = their_hook(&got);
    write_hook(&hooks.join("post-receive"), &theirs);

    let bare = repo.bare.to_str().unwrap();
    env.run(&["install", bare])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "quire: kept the post-receive hook that was there as {}; quire's hook runs it first, with the same input",
            hooks.join("post-receive.before-quire").display()
        )));
    assert_eq!(read(&hooks.join("post-receive.before-quire")), theirs);
    let installed = read(&hooks.join("post-receive"));
    assert!(
        installed.contains("--previous-hook") && installed.contains("post-receive.before-quire"),
        "{installed}"
    );

    let sha = repo.commit(&[(".quire/ci.toml", QUICK)], "first");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    // Their hook ran first, in the repository, with git's line for the ref.
    let theirs_at = stderr.find("remote: their hook ran in ").expect(&stderr);
    let quires_at = stderr.find("remote: quire: queued run ").expect(&stderr);
    assert!(theirs_at < quires_at, "{stderr}");
    let canonical = std::fs::canonicalize(&repo.bare).unwrap();
    assert!(
        stderr.contains(&format!("their hook ran in {}", canonical.display())),
        "{stderr}"
    );
    assert_eq!(
        read(&got),
        format!("{} {sha} refs/heads/main\n", "0".repeat(40))
    );
    let run = env.wait_terminal(&quire_testkit::queued_runs(&stderr)[0]);
    assert_eq!(
        (run.state, run.sha.as_str()),
        (RunState::Complete, sha.as_str())
    );
}

#[test]
fn installing_again_keeps_one_chain_and_never_chains_quire_to_itself() {
    let env = Env::new();
    let repo = bare_repo(&env, "app");
    let hooks = repo.bare.join("hooks");
    let got = env.path().join("their-input");
    write_hook(&hooks.join("post-receive"), &their_hook(&got));
    let bare = repo.bare.to_str().unwrap();
    env.run(&["install", bare]).assert().success();
    let chained = read(&hooks.join("post-receive"));
    let kept = read(&hooks.join("post-receive.before-quire"));
    for args in [&["install", bare][..], &["install", "--force", bare][..]] {
        env.run(args)
            .assert()
            .success()
            .stdout(predicate::str::contains("kept").not());
        assert_eq!(read(&hooks.join("post-receive")), chained, "{args:?}");
        assert_eq!(
            read(&hooks.join("post-receive.before-quire")),
            kept,
            "{args:?}"
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(&hooks)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("post-receive"))
        .collect();
    names.sort();
    assert_eq!(names, ["post-receive", "post-receive.before-quire"]);

    // One push: their hook once, quire once.
    repo.commit(&[(".quire/ci.toml", QUICK)], "first");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    assert_eq!(stderr.matches("their hook ran").count(), 1, "{stderr}");
    assert_eq!(quire_testkit::queued_runs(&stderr).len(), 1, "{stderr}");
    assert_eq!(read(&got).lines().count(), 1);

    // Another program's hook put in quire's place later is not deleted
    // either: with the kept name taken, install refuses and changes nothing.
    write_hook(&hooks.join("post-receive"), "#!/bin/sh\necho newer\n");
    env.run(&["install", "--force", bare])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "cannot keep the post-receive hook of {}: {} is there already",
            std::fs::canonicalize(&repo.bare).unwrap().display(),
            std::fs::canonicalize(&hooks)
                .unwrap()
                .join("post-receive.before-quire")
                .display()
        )));
    assert_eq!(read(&hooks.join("post-receive")), "#!/bin/sh\necho newer\n");
    assert_eq!(read(&hooks.join("post-receive.before-quire")), kept);
}

#[test]
fn the_hook_exits_with_the_previous_hooks_failure_and_still_records_the_push() {
    let env = Env::new();
    let repo = bare_repo(&env, "app");
    let hooks = repo.bare.join("hooks");
    write_hook(
        &hooks.join("post-receive"),
        "#!/bin/sh\nread old new ref\necho \"previous saw $ref\"\nexit 3\n",
    );
    env.run(&["install", repo.bare.to_str().unwrap()])
        .assert()
        .success();
    let sha = repo.commit(&[(".quire/ci.toml", QUICK)], "first");
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    // git ignores post-receive's status; run the hook as git does to see it.
    let hook = assert_cmd::Command::new(hooks.join("post-receive"))
        .current_dir(&repo.bare)
        .env("GIT_DIR", ".")
        .env_remove("GIT_PUSH_OPTION_COUNT")
        .write_stdin(format!("{} {sha} refs/heads/side\n", "0".repeat(40)))
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(3)
        .stdout(predicate::str::contains("previous saw refs/heads/side"))
        .stdout(predicate::str::contains("quire: queued run "));
    let stdout = String::from_utf8_lossy(&hook.get_output().stdout).into_owned();
    let run = env.wait_terminal(&quire_testkit::queued_runs(&stdout)[0]);
    assert_eq!(run.ref_name, "refs/heads/side");

    // A kept hook that is not executable is skipped, as git skips it, and
    // said.
    std::fs::set_permissions(
        hooks.join("post-receive.before-quire"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    repo.commit(&[], "second");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("post-receive.before-quire is not executable, so it was not run")
            && !stderr.contains("previous saw")
            && stderr.contains("quire: queued run "),
        "{stderr}"
    );
}

/// The pre-receive hook an earlier install wrote over another program's
/// (kept as pre-receive.before-quire and run first), as that install
/// wrote it.
fn earlier_installs_pre_receive(quire_run: &str) -> String {
    format!(
        "#!/bin/sh\n# quire's pre-receive hook, written by `quire-run install`: refuse a push\n\
         # that would update, create or delete refs/notes/ci.\n\
         exec '{quire_run}' pre-receive \\\n    --previous-hook \"$(dirname \"$0\")/pre-receive.before-quire\"\n"
    )
}

#[test]
fn install_hides_the_notes_ref_and_puts_back_the_pre_receive_hook_an_earlier_install_chained() {
    let env = Env::new();
    let repo = bare_repo(&env, "app");
    let hooks = repo.bare.join("hooks");
    let got = env.path().join("their-input");
    // The server's own policy: says it ran, keeps its input, and refuses
    // any push of a branch named `blocked`.
    let theirs = format!(
        "#!/bin/sh\ntee -a '{}' | while read old new ref; do\n  echo \"their pre-receive saw $ref\"\n  \
         if [ \"$ref\" = refs/heads/blocked ]; then echo \"their policy refuses $ref\"; exit 5; fi\n\
         done || exit 5\n",
        got.display()
    );
    // As an earlier install left it: theirs kept aside, quire's running it.
    write_hook(&hooks.join("pre-receive.before-quire"), &theirs);
    write_hook(
        &hooks.join("pre-receive"),
        &earlier_installs_pre_receive(assert_cmd::cargo::cargo_bin("quire-run").to_str().unwrap()),
    );

    let bare = repo.bare.to_str().unwrap();
    env.run(&["install", bare])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "quire: put the pre-receive hook kept as {} back as {}",
            hooks.join("pre-receive.before-quire").display(),
            hooks.join("pre-receive").display()
        )));
    assert_eq!(read(&hooks.join("pre-receive")), theirs);
    assert_eq!(
        git(&repo.bare, &["config", "--get-all", "receive.hideRefs"]),
        "refs/notes/ci"
    );
    // Installing again: nothing moved, the entry not added twice.
    env.run(&["install", bare])
        .assert()
        .success()
        .stdout(predicate::str::contains("pre-receive").not());
    assert_eq!(read(&hooks.join("pre-receive")), theirs);
    assert_eq!(
        git(&repo.bare, &["config", "--get-all", "receive.hideRefs"]),
        "refs/notes/ci"
    );
    let mut names: Vec<String> = std::fs::read_dir(&hooks)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            (n.starts_with("pre-receive") || n.starts_with(".pre-receive"))
                && !n.ends_with(".sample")
        })
        .collect();
    names.sort();
    assert_eq!(names, ["pre-receive"]);

    // A push their policy accepts: their hook ran, with git's line, and
    // quire recorded the run.
    let sha = repo.commit(&[(".quire/ci.toml", QUICK)], "first");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("remote: their pre-receive saw refs/heads/main"),
        "{stderr}"
    );
    assert_eq!(
        read(&got),
        format!("{} {sha} refs/heads/main\n", "0".repeat(40))
    );
    let runs = quire_testkit::queued_runs(&stderr);
    assert_eq!(runs.len(), 1, "{stderr}");
    env.wait_terminal(&runs[0]);

    // Their refusal still refuses the push, with their reason.
    let (ok, stderr) = repo.push(&["origin", "main:refs/heads/blocked"]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("remote: their policy refuses refs/heads/blocked")
            && stderr.contains("blocked (pre-receive hook declined)")
            && quire_testkit::queued_runs(&stderr).is_empty(),
        "{stderr}"
    );
    let branches = git(
        &repo.bare,
        &["for-each-ref", "--format=%(refname)", "refs/heads/"],
    );
    assert_eq!(branches, "refs/heads/main");

    // A push of quire's notes ref: git refuses it, hidden, with its reason.
    git(
        &repo.work,
        &[
            "notes",
            "--ref=ci",
            "add",
            "-m",
            "quire: complete forged 1s",
            "HEAD",
        ],
    );
    // Forced, as a pusher overwriting quire's notes would.
    let (ok, stderr) = repo.push(&["origin", "+refs/notes/ci:refs/notes/ci"]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("refs/notes/ci (deny updating a hidden ref)"),
        "{stderr}"
    );
    // Nothing of it reached the repository: not the ref, not the note
    // (git drops a refused push's objects).
    let forged = git(&repo.work, &["notes", "--ref=ci", "list", "HEAD"]);
    let tip = git(&repo.work, &["rev-parse", "refs/notes/ci"]);
    for object in [&forged, &tip] {
        let there = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&repo.bare)
            .args(["cat-file", "-e", object])
            .status()
            .unwrap();
        assert!(!there.success(), "{object} reached the repository");
    }
}

#[test]
fn install_removes_an_earlier_installs_own_pre_receive_hook_and_leaves_anothers_alone() {
    let env = Env::new();
    // Quire's hook alone (no kept hook): removed.
    let alone = bare_repo(&env, "alone");
    let guard = alone.bare.join("hooks/pre-receive");
    write_hook(
        &guard,
        "#!/bin/sh\n# quire's pre-receive hook, written by `quire-run install`: refuse a push\n\
         while read -r old new ref; do [ \"$ref\" = refs/notes/ci ] && exit 1; done\nexit 0\n",
    );
    env.run(&["install", alone.bare.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "quire: removed quire's {}",
            std::fs::canonicalize(&alone.bare)
                .unwrap()
                .join("hooks/pre-receive")
                .display()
        )));
    assert!(!guard.exists());
    // Another program's pre-receive hook: never touched, not chained.
    let other = bare_repo(&env, "other");
    let theirs = "#!/bin/sh\nexit 0\n";
    write_hook(&other.bare.join("hooks/pre-receive"), theirs);
    env.run(&["install", other.bare.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("pre-receive").not());
    assert_eq!(read(&other.bare.join("hooks/pre-receive")), theirs);
    assert!(!other.bare.join("hooks/pre-receive.before-quire").exists());
    // A repository that hides the notes ref already (here with all of
    // refs/notes, for fetches too): nothing added, and pushes of it are
    // refused all the same.
    let hidden = bare_repo(&env, "hidden");
    git(
        &hidden.bare,
        &["config", "--add", "transfer.hideRefs", "refs/notes"],
    );
    env.run(&["install", hidden.bare.to_str().unwrap()])
        .assert()
        .success();
    let config = read(&hidden.bare.join("config"));
    assert!(!config.contains("refs/notes/ci"), "{config}");
    // Hidden only by the installing user's own config: that does not
    // count (whoever runs git for a push may have another home), so the
    // repository gets its entry.
    let user_hidden = bare_repo(&env, "user-hidden");
    let user = env.path().join("installer");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(
        user.join(".gitconfig"),
        "[transfer]\n\thideRefs = refs/notes\n",
    )
    .unwrap();
    env.run(&["install", user_hidden.bare.to_str().unwrap()])
        .env("HOME", &user)
        .assert()
        .success();
    assert_eq!(
        git(
            &user_hidden.bare,
            &["config", "--get-all", "receive.hideRefs"]
        ),
        "refs/notes/ci"
    );
    hidden.commit(&[], "first");
    git(
        &hidden.work,
        &["notes", "--ref=ci", "add", "-m", "forged", "HEAD"],
    );
    let (ok, stderr) = hidden.push(&["origin", "refs/notes/ci"]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("(deny updating a hidden ref)"), "{stderr}");
}

#[test]
fn another_homes_hook_is_repointed_only_with_force_and_a_work_tree_is_refused() {
    let env = Env::new();
    let other = Env::new();
    let repo = bare_repo(&env, "app");
    let bare = repo.bare.to_str().unwrap();
    other.run(&["install", bare]).assert().success();
    let hook = repo.bare.join("hooks/post-receive");
    let theirs = read(&hook);
    env.run(&["install", bare])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "has quire's post-receive hook for another home",
        ))
        .stderr(predicate::str::contains("pass --force to point it at"));
    assert_eq!(read(&hook), theirs);
    env.run(&["install", "--force", bare]).assert().success();
    let ours = read(&hook);
    assert_ne!(ours, theirs);
    let home = std::fs::canonicalize(env.home().dir()).unwrap();
    assert!(
        ours.contains(&format!("--home '{}' hook", home.display())),
        "{ours}"
    );
    // Quire's hook for the other home was replaced, not kept or chained.
    assert!(!repo.bare.join("hooks/post-receive.before-quire").exists());
    assert!(!ours.contains("--previous-hook"), "{ours}");
    assert_eq!(
        git(&repo.bare, &["config", "receive.advertisePushOptions"]),
        "true"
    );
    env.run(&["install", repo.work.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not a bare repository"));
}

#[test]
fn install_takes_several_repositories_and_goes_on_past_one_that_fails() {
    let env = Env::new();
    let a = bare_repo(&env, "a");
    let b = bare_repo(&env, "b");
    let missing = env.path().join("missing.git");
    env.run(&[
        "install",
        a.bare.to_str().unwrap(),
        missing.to_str().unwrap(),
        b.bare.to_str().unwrap(),
        a.bare.to_str().unwrap(),
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains(format!(
        "quire-run: error: cannot open repository {}",
        missing.display()
    )))
    .stdout(predicate::str::contains(
        "quire: installed the hook into 2 of 3 repositories",
    ));
    for repo in [&a, &b] {
        assert!(read(&repo.bare.join("hooks/post-receive")).contains(" hook"));
    }
    env.run(&["install"]).assert().code(2);
}

/// The names of the repositories `quire-runs repos` lists.
fn known(env: &Env) -> Vec<String> {
    let repos = env.json(&["repos"]);
    repos
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn install_all_finds_nested_bare_repositories_and_skips_what_is_not_one() {
    let env = Env::new();
    let root = env.path().join("srv");
    let init_bare = |rel: &str| {
        let dir = root.join(rel);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        git(
            env.path(),
            &["init", "--quiet", "--bare", dir.to_str().unwrap()],
        );
        std::fs::canonicalize(dir).unwrap()
    };
    let top = init_bare("app.git");
    let nested = init_bare("team/api.git");
    let deep = init_bare("team/old/deep/tool.git");
    // Inside a repository: not entered.
    init_bare("app.git/inside.git");
    // A work tree, and a bare repository inside it: not entered.
    let work = root.join("checkout");
    git(env.path(), &["init", "--quiet", work.to_str().unwrap()]);
    init_bare("checkout/in-work-tree.git");
    // A work tree's .git moved out: HEAD, objects/ and refs/, but not bare.
    let moved = env.path().join("moved");
    git(env.path(), &["init", "--quiet", moved.to_str().unwrap()]);
    std::fs::rename(moved.join(".git"), root.join("not-bare.git")).unwrap();
    // Looks a little like one: HEAD and objects/, no refs/.
    std::fs::create_dir_all(root.join("half.git/objects")).unwrap();
    std::fs::write(root.join("half.git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(root.join("README"), "not a folder\n").unwrap();
    std::os::unix::fs::symlink(&top, root.join("link.git")).unwrap();

    let out = env
        .run(&["install", "--all", root.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "quire: found 3 bare repositories under {}",
            root.display()
        )))
        .stdout(predicate::str::contains(
            "quire: installed the hook into 3 of 3 repositories",
        ));
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let mut paths = known(&env);
    paths.sort();
    let mut wanted: Vec<String> = [&top, &nested, &deep]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    wanted.sort();
    assert_eq!(paths, wanted, "{stdout}");
    for skipped in [
        "app.git/inside.git",
        "checkout/in-work-tree.git",
        "not-bare.git",
    ] {
        assert!(
            !root.join(skipped).join("hooks/post-receive").exists(),
            "{skipped}"
        );
    }
    // A push to the deepest one records its run.
    let push_to = env.path().join("push-tool");
    git(
        env.path(),
        &["init", "--quiet", "-b", "main", push_to.to_str().unwrap()],
    );
    git(
        &push_to,
        &["remote", "add", "origin", deep.to_str().unwrap()],
    );
    let tool = Repo {
        bare: deep.clone(),
        work: push_to,
        home: env.home(),
        vars: Vec::new(),
    };
    assert_eq!(tool.push_and_wait(QUICK).state, RunState::Complete);

    env.run(&[
        "install",
        "--all",
        env.path().join("nothing").to_str().unwrap(),
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains("cannot open"));
}

#[test]
fn install_all_skips_a_folder_it_cannot_read_with_a_warning() {
    let root_user = quire_testkit::is_root();
    // Root reads a folder of mode 000 all the same: as root (CI), install
    // runs as nobody, through setpriv.
    if root_user
        && !quire_testkit::require(
            "setpriv (to run install as nobody)",
            "apt-get install util-linux",
            quire_testkit::program_runs("setpriv", &["--version"]),
        )
    {
        return;
    }
    let env = Env::new();
    let root = env.path().join("srv");
    let repo = root.join("app.git");
    std::fs::create_dir_all(&root).unwrap();
    git(
        env.path(),
        &["init", "--quiet", "--bare", repo.to_str().unwrap()],
    );
    let locked = root.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let assert = if root_user {
        // Everything install writes (the home, the hooks) is nobody's.
        let chown = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(env.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let mut as_nobody = std::process::Command::new("setpriv");
        as_nobody
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin("quire-run"))
            .arg("--home")
            .arg(env.home().dir())
            .args(["install", "--all", root.to_str().unwrap()])
            .env_remove("QUIRE_HOME")
            .env("HOME", env.path());
        assert_cmd::Command::from_std(as_nobody).assert()
    } else {
        env.run(&["install", "--all", root.to_str().unwrap()])
            .assert()
    };
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert
        .success()
        .stderr(predicate::str::contains(format!(
            "quire-run: warning: cannot read {}",
            std::fs::canonicalize(&locked).unwrap().display()
        )))
        .stdout(predicate::str::contains("found 1 bare repository under"));
}

#[test]
fn core_hooks_path_is_warned_with_where_the_hook_would_have_to_go() {
    let env = Env::new();
    let repo = bare_repo(&env, "app");
    let elsewhere = env.path().join("shared-hooks");
    std::fs::create_dir_all(&elsewhere).unwrap();
    git(
        &repo.bare,
        &["config", "core.hooksPath", elsewhere.to_str().unwrap()],
    );
    let bare = std::fs::canonicalize(&repo.bare).unwrap();
    let hook = bare.join("hooks/post-receive");
    env.run(&["install", repo.bare.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "quire: warning: core.hooksPath points git at {}, so git never runs {}: unset it (git --git-dir {} config --unset core.hooksPath), or copy {} into {}, where git looks for hooks",
            elsewhere.display(),
            hook.display(),
            bare.display(),
            hook.display(),
            elsewhere.display()
        )));
    // As it says: git runs the hook from there.
    std::fs::copy(&hook, elsewhere.join("post-receive")).unwrap();
    let run = repo.push_and_wait(QUICK);
    assert_eq!(run.state, RunState::Complete);
}

#[test]
fn core_hooks_path_in_the_users_git_config_is_warned_too() {
    // git honours ~/.gitconfig's core.hooksPath when it runs a push's
    // hooks, as it does the repository's own.
    let env = Env::new();
    let repo = bare_repo(&env, "app");
    let home = env.path().join("git-user");
    let elsewhere = env.path().join("global-hooks");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(
        home.join(".gitconfig"),
        format!("[core]\n\thooksPath = {}\n", elsewhere.display()),
    )
    .unwrap();
    env.run(&["install", repo.bare.to_str().unwrap()])
        .env("HOME", &home)
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "quire: warning: core.hooksPath points git at {}",
            elsewhere.display()
        )));
}

#[test]
fn a_server_set_up_as_the_readme_says_runs_pushes_under_their_names() {
    let env = Env::new();
    let root = env.path().join("srv-git");
    let app = root.join("team/app.git");
    std::fs::create_dir_all(app.parent().unwrap()).unwrap();
    git(
        env.path(),
        &["init", "--quiet", "--bare", app.to_str().unwrap()],
    );
    // The README's commands: a home made by hand holding config.toml, then
    // install --all.
    let home = env.home();
    std::fs::create_dir_all(home.dir()).unwrap();
    std::fs::set_permissions(home.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        home.dir().join("config.toml"),
        format!(
            "max_workers = 2\nrepos_root = {:?}\n",
            std::fs::canonicalize(&root).unwrap().to_str().unwrap()
        ),
    )
    .unwrap();
    env.run(&["install", "--all", root.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("(runs of team/app.git go to "));
    let work = env.path().join("app");
    git(
        env.path(),
        &["init", "--quiet", "-b", "main", work.to_str().unwrap()],
    );
    git(&work, &["remote", "add", "origin", app.to_str().unwrap()]);
    let repo = Repo {
        bare: app,
        work,
        home: env.home(),
        vars: Vec::new(),
    };
    let run = repo.push_and_wait(QUICK);
    assert_eq!(run.state, RunState::Complete);
    let runs = env.json(&["list", "--repo", "team/app"]);
    assert_eq!(runs[0]["id"], run.id.as_str());
    env.runs(&["reconcile"]).assert().success();
}

/// The crontab line `install` prints runs as cron runs it: under cron's
/// bare environment (`env -i PATH=/usr/bin:/bin`, where `quire-runs` by
/// name is not found), it reaches `quire-runs` by its absolute path and the
/// home by `--home`, and reconcile's output lands in the home's
/// `reconcile.log`. A run whose worker is dead is orphaned by it.
#[test]
fn the_cron_line_install_prints_runs_reconcile_under_crons_path() {
    use quire_store::lifecycle::{NewRun, Worker};
    use quire_store::repos::Registration;

    let env = Env::new();
    let bare = env.path().join("app.git");
    git(
        env.path(),
        &["init", "--quiet", "--bare", bare.to_str().unwrap()],
    );
    let out = env
        .run(&["install", bare.to_str().unwrap()])
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("* * * * * "))
        .unwrap_or_else(|| panic!("no crontab line in install's output: {stdout}"))
        .to_string();
    // As cron hands the command to sh: `\%` back to `%`.
    let command = line.replace("\\%", "%");

    let mut store = env.store();
    let bare = std::fs::canonicalize(&bare).unwrap();
    let repo_id = store
        .register_repo(&bare, None, Registration::Seen)
        .unwrap()
        .id;
    let sha = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
    let run = store
        .create_run(&NewRun {
            repo_id,
            ref_name: "refs/heads/main",
            sha,
            ..Default::default()
        })
        .unwrap()
        .run
        .id;
    let gone = Worker {
        id: "worker-gone".into(),
        pid: quire_testkit::dead_pid(),
        lease: std::time::Duration::from_secs(3600),
    };
    store.claim(&run, &gone).unwrap();
    drop(store);

    let status = std::process::Command::new("env")
        .args(["-i", "PATH=/usr/bin:/bin", "sh", "-c", &command])
        .status()
        .unwrap();
    assert!(status.success(), "{command}: {status}");

    let recorded = env.store().resolve_run(&run).unwrap();
    assert_eq!(recorded.state, RunState::Failed, "{recorded:?}");
    assert_eq!(
        recorded.failure_kind,
        Some(quire_store::FailureKind::Orphaned),
        "{recorded:?}"
    );
    let log = std::fs::read_to_string(env.home().dir().join("reconcile.log")).unwrap();
    assert!(
        log.contains(&format!("orphaned {run}")),
        "reconcile.log: {log}"
    );
}

/// The README's server setup, the lines run as `git`, as written: in a
/// scratch folder standing for `/srv` (and `/usr/local/bin` for where the
/// binaries are), with a `crontab` that keeps the table in a file. The
/// config is 0600, the repositories there get the hooks, and the line
/// added to the crontab is the one `install` printed.
#[test]
fn the_readmes_server_lines_work_as_written() {
    let readme = include_str!("../README.md");
    let marker = "<!-- tests/install.rs runs the block below as written";
    let block = readme
        .split_once(marker)
        .and_then(|(_, rest)| rest.split_once("```sh\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("the README's marked block");

    let env = Env::new();
    let srv = std::fs::canonicalize(env.path()).unwrap();
    let app = srv.join("git/team/app.git");
    std::fs::create_dir_all(app.parent().unwrap()).unwrap();
    git(&srv, &["init", "--quiet", "--bare", app.to_str().unwrap()]);
    // The root step: the home, mode 700.
    std::fs::create_dir(srv.join("quire")).unwrap();
    std::fs::set_permissions(srv.join("quire"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let bin = std::fs::canonicalize(assert_cmd::cargo::cargo_bin("quire-run")).unwrap();
    let bin_dir = bin.parent().unwrap().to_str().unwrap().to_string();
    let fake = srv.join("fakebin");
    std::fs::create_dir(&fake).unwrap();
    let table = srv.join("crontab.txt");
    std::fs::write(
        fake.join("crontab"),
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  -l) cat {t} 2>/dev/null ;;\n  -) cat > {t} ;;\n  *) exit 2 ;;\nesac\n",
            t = table.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(fake.join("crontab"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = block
        .replace("/srv/", &format!("{}/", srv.display()))
        .replace("/usr/local/bin/", &format!("{bin_dir}/"));
    let out = std::process::Command::new("sh")
        .args(["-e", "-c", &script])
        .env(
            "PATH",
            format!("{}:{bin_dir}:/usr/bin:/bin", fake.display()),
        )
        .env_remove("QUIRE_HOME")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let config = srv.join("quire/config.toml");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "config.toml");
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("max_workers = 2"),
    );
    assert!(app.join("hooks/post-receive").is_file());
    assert!(stdout.contains("(runs of team/app.git go to "), "{stdout}");
    let printed = stdout
        .lines()
        .find(|l| l.starts_with("* * * * * "))
        .unwrap_or_else(|| panic!("no cron line: {stdout}"));
    assert_eq!(
        std::fs::read_to_string(&table).unwrap().trim_end(),
        printed,
        "the README's crontab line is the one install printed"
    );
}

#[test]
fn install_into_a_closed_pipe_does_all_its_work_without_a_panic() {
    // `quire-run install REPO | head -1`: the reader is gone before
    // install writes its first line.
    let env = Env::new();
    let repo = bare_repo(&env, "app");
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("quire-run"))
        .arg("--home")
        .arg(env.home().dir())
        .args(["install", repo.bare.to_str().unwrap()])
        .stdout(std::process::Stdio::from(writer))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // All of its work was done: the hook, the hidden notes ref, and the
    // repository known to the store.
    assert!(read(&repo.bare.join("hooks/post-receive")).contains("hook"));
    assert_eq!(
        git(&repo.bare, &["config", "--get-all", "receive.hideRefs"]),
        "refs/notes/ci"
    );
    assert!(
        known(&env).iter().any(|path| path.ends_with("/app.git")),
        "{:?}",
        known(&env)
    );
}

#[test]
fn git_runs_quire_run_for_the_hook_with_no_shell_between() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let hook = repo.bare.join("hooks/post-receive");
    let text = read(&hook);
    let quire_run = std::fs::canonicalize(assert_cmd::cargo::cargo_bin("quire-run")).unwrap();
    assert!(
        text.starts_with(&format!("#!{} hook-file\n", quire_run.display())),
        "{text}"
    );
    // A line only a shell would run: a push never runs it.
    let (first, rest) = text.split_once('\n').unwrap();
    std::fs::write(&hook, format!("{first}\necho ran-by-a-shell\n{rest}")).unwrap();
    let sha = repo.commit(&[(".quire/ci.toml", QUICK)], "first");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("ran-by-a-shell"), "{stderr}");
    let runs = quire_testkit::queued_runs(&stderr);
    assert_eq!(runs.len(), 1, "{stderr}");
    assert_eq!(env.wait_terminal(&runs[0]).state, RunState::Complete);
    // `sh` on the file runs the same exec line (and the shell's line).
    repo.commit(&[], "second");
    let zero = "0".repeat(40);
    let mut sh = std::process::Command::new("sh")
        .arg(&hook)
        .env("GIT_DIR", &repo.bare)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    sh.stdin
        .take()
        .unwrap()
        .write_all(format!("{zero} {sha} refs/heads/by-hand\n").as_bytes())
        .unwrap();
    let out = sh.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("ran-by-a-shell"), "{stdout}");
    let runs = quire_testkit::queued_runs(&stdout);
    assert_eq!(runs.len(), 1, "{stdout}");
    env.wait_terminal(&runs[0]);
}
