//! `quire-run trigger`: the commit named by a short id or a revision
//! (resolved with gix), an ambiguous prefix refused with its candidates,
//! and `--force` over `[skip ci]`.

use predicates::prelude::*;
use quire_store::RunState;

use quire_testkit::{Env, Repo, git};

const QUICK: &str = r#"[jobs.w]
inputs = ["quire/push"]
sh = "true"
"#;

/// A repository with two commits on main (the first holds the pipeline),
/// pushed without runs; their ids, oldest first.
fn two_commits(env: &Env) -> (Repo, String, String) {
    let repo = env.repo_with_hook("app");
    let first = repo.commit(&[(".quire/ci.toml", QUICK)], "first");
    let second = repo.commit(&[("README.md", "hi\n")], "second");
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    (repo, first, second)
}

/// `trigger --git-dir BARE ARGS --wait`, which must complete; the run's sha.
fn triggered_sha(env: &Env, repo: &Repo, args: &[&str]) -> String {
    let bare = repo.bare.to_str().unwrap();
    env.run(&[&["trigger", "--git-dir", bare], args, &["--wait"]].concat())
        .assert()
        .success()
        .stdout(predicate::str::contains("complete"));
    let newest = &env.all_runs()[0];
    assert_eq!(newest.state, RunState::Complete);
    assert_eq!(newest.ref_name, "refs/heads/main");
    newest.sha.clone()
}

#[test]
fn trigger_takes_a_short_id_a_revision_expression_or_a_tag() {
    let env = Env::new();
    let (repo, first, second) = two_commits(&env);
    assert_eq!(triggered_sha(&env, &repo, &["main", &first[..7]]), first);
    assert_eq!(triggered_sha(&env, &repo, &["main", "main~1"]), first);
    assert_eq!(triggered_sha(&env, &repo, &["main", "main^"]), first);
    git(&repo.work, &["tag", "-a", "-m", "one", "v1", &first]);
    git(&repo.work, &["push", "--quiet", "origin", "v1"]);
    // An annotated tag names its commit.
    assert_eq!(triggered_sha(&env, &repo, &["main", "v1"]), first);
    assert_eq!(triggered_sha(&env, &repo, &["main"]), second);

    let bare = repo.bare.to_str().unwrap();
    env.run(&["trigger", "--git-dir", bare, "main~1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "\"main~1\" is neither a branch nor a tag of the repository; it names a commit: give the ref the run is for, then the commit",
        ));
    env.run(&["trigger", "--git-dir", bare, "main", "main~5"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("main~5 names no commit"));
}

#[test]
fn an_ambiguous_short_id_is_refused_with_its_candidates() {
    let env = Env::new();
    let (repo, _, _) = two_commits(&env);
    // 1500 commits with fixed dates (so fixed ids), on a branch of their
    // own: some two of them share their first four hex digits.
    let stream: String = (0..1500)
        .map(|i| {
            let message = format!("c{i}");
            format!(
                "commit refs/heads/many\ncommitter T <t@quire.invalid> 0 +0000\ndata {}\n{message}\n",
                message.len()
            )
        })
        .collect();
    let mut import = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&repo.bare)
        .args(["fast-import", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    import
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(import.wait().unwrap().success());
    let ids = git(&repo.bare, &["rev-list", "many"]);
    let mut ids: Vec<&str> = ids.lines().collect();
    ids.sort();
    let pair = ids
        .windows(2)
        .find(|w| w[0][..4] == w[1][..4])
        .expect("two of 1500 ids share four digits");
    let prefix = &pair[0][..4];

    let bare = repo.bare.to_str().unwrap();
    let before = env.all_runs().len();
    env.run(&["trigger", "--git-dir", bare, "main", prefix])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "quire-run: error: {prefix} is ambiguous in "
        )))
        .stderr(predicate::str::contains(&pair[0][..7]))
        .stderr(predicate::str::contains(&pair[1][..7]));
    assert_eq!(env.all_runs().len(), before, "no run was recorded");
    // One more digit than they share names one commit.
    let longer = &pair[0][..pair[0]
        .bytes()
        .zip(pair[1].bytes())
        .take_while(|(a, b)| a == b)
        .count()
        + 1];
    env.run(&["trigger", "--git-dir", bare, "main", longer])
        .assert()
        .success()
        .stdout(predicate::str::contains("has no .quire/ci.toml"));
}

#[test]
fn force_records_a_run_of_a_commit_that_says_skip_ci() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let sha = repo.commit(&[(".quire/ci.toml", QUICK)], "docs only [skip ci]");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("no run for refs/heads/main: [skip ci] in the commit message"),
        "{stderr}"
    );
    let bare = repo.bare.to_str().unwrap();
    env.run(&["trigger", "--git-dir", bare, "main"])
        .assert()
        .success()
        .stdout(predicate::str::contains("[skip ci] in the commit message"));
    assert!(env.all_runs().is_empty());
    env.run(&["trigger", "--git-dir", bare, "main", "--force", "--wait"])
        .assert()
        .success()
        .stdout(predicate::str::contains("quire: queued run "))
        .stdout(predicate::str::contains("complete"));
    let runs = env.all_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].sha.as_str(), runs[0].state),
        (sha.as_str(), RunState::Complete)
    );
}

#[test]
fn a_run_triggered_in_the_foreground_is_announced_as_a_workers_is() {
    // Its git note is written (and its notifiers run) as for a run a
    // worker took: by the announcer the command starts once it ended.
    let env = Env::new();
    let (repo, _, second) = two_commits(&env);
    assert_eq!(triggered_sha(&env, &repo, &["main"]), second);
    quire_testkit::wait_until("the triggered run's note", || {
        git_status(&repo, &["notes", "--ref=ci", "show", &second])
    });
    let note = git(&repo.bare, &["notes", "--ref=ci", "show", &second]);
    assert!(note.contains("complete"), "{note}");

    let inbox = env.path().join("inbox");
    env.config(&format!(
        "[[notify]]\non = [\"complete\"]\ncommand = [\"sh\", \"-c\", 'cat > \"$0/$QUIRE_RUN_ID.json\"', \"{}\"]\n",
        inbox.display()
    ));
    std::fs::create_dir(&inbox).unwrap();
    triggered_sha(&env, &repo, &["main"]);
    let run = env.all_runs()[0].id.clone();
    quire_testkit::wait_until("the triggered run's notifier", || {
        inbox.join(format!("{run}.json")).is_file()
    });
    quire_testkit::wait_until("the triggered run's note", || {
        git_status(&repo, &["notes", "--ref=ci", "show", &second])
            && git(&repo.bare, &["notes", "--ref=ci", "show", &second]).contains(&run)
    });
}

/// Whether `git --git-dir BARE ARGS` succeeds.
fn git_status(repo: &Repo, args: &[&str]) -> bool {
    std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&repo.bare)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn trigger_wait_tells_each_jobs_start_and_end_as_ci_wait_does() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.build]
inputs = ["quire/push"]
sh = "echo built"

[jobs.test]
inputs = ["build"]
sh = "echo testing; exit 3"
"#,
        )],
        "two jobs",
    );
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    let bare = repo.bare.to_str().unwrap();
    let out = env
        .run(&["trigger", "--git-dir", bare, "main", "--wait"])
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let lines: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with("quire: job ") || l.starts_with("quire: run "))
        .map(quire_testkit::masked)
        .collect();
    let run = &env.all_runs()[0].id;
    assert_eq!(
        lines,
        [
            "quire: job build started".to_string(),
            "quire: job build complete in D (exit 0)".to_string(),
            "quire: job test started".to_string(),
            "quire: job test failed in D (exit 3; step 1: echo testing; exit 3)".to_string(),
            format!("quire: run {run} failed (pipeline-failure) in D (quire-runs show {run})"),
        ],
        "{stdout}"
    );
    // The failing step's last lines, as ci.wait shows them.
    assert!(stdout.contains("quire:   | testing"), "{stdout}");
}
