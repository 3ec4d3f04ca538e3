//! Selecting runs as a person does: refs by short name, tag or glob,
//! `--branch`, repositories by name or path, the newest run when RUN is
//! left out, the short ids `list` shows and the parts of ids RUN takes.

use std::path::PathBuf;

use predicates::prelude::*;
use quire_store::Store;
use quire_store::lifecycle::NewRun;
use quire_store::repos::Registration;
use serde_json::Value;

use quire_testkit::{Env, SHA, populate};

/// The ids of `quire-runs ARGS --json` (a list), in order.
fn ids(env: &Env, args: &[&str]) -> Vec<String> {
    env.json(args)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// A repository at a real (canonical) path under the test's directory,
/// with a run for each ref, oldest first; returns its path and the ids.
fn repo_with_runs(env: &Env, name: &str, refs: &[&str]) -> (PathBuf, Vec<String>) {
    let dir = env.path().join("srv").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let mut store = Store::open(&env.home()).unwrap();
    let repo_id = store
        .register_repo(&dir, None, Registration::Seen)
        .unwrap()
        .id;
    let ids = refs
        .iter()
        .map(|ref_name| {
            store
                .create_run(&NewRun {
                    repo_id,
                    ref_name,
                    sha: SHA,
                    pushed_at_ms: None,
                    previous_sha: None,
                    invalid: None,
                    ..Default::default()
                })
                .unwrap()
                .run
                .id
        })
        .collect();
    (dir, ids)
}

#[test]
fn refs_are_taken_by_full_name_short_name_tag_glob_or_branch() {
    let env = Env::new();
    let refs = [
        "refs/heads/main",
        "refs/heads/release/1.0",
        "refs/tags/v1.0",
        "refs/heads/release/2.0",
        "refs/tags/release/3.0",
        "refs/heads/v1.0",
    ];
    let (_, run) = repo_with_runs(&env, "app.git", &refs);
    let of = |indexes: &[usize]| -> Vec<String> {
        indexes.iter().rev().map(|&i| run[i].clone()).collect()
    };
    assert_eq!(ids(&env, &["list", "--ref", "refs/heads/main"]), of(&[0]));
    assert_eq!(ids(&env, &["list", "--ref", "main"]), of(&[0]));
    // A short name is the branch and the tag of that name.
    assert_eq!(ids(&env, &["list", "--ref", "v1.0"]), of(&[2, 5]));
    assert_eq!(ids(&env, &["list", "--ref", "refs/tags/v1.0"]), of(&[2]));
    // Globs, short or full; `*` stays within a segment, `**` goes across.
    assert_eq!(ids(&env, &["list", "--ref", "release/*"]), of(&[1, 3, 4]));
    assert_eq!(
        ids(&env, &["list", "--ref", "refs/heads/release/*"]),
        of(&[1, 3])
    );
    assert_eq!(ids(&env, &["list", "--ref", "v1.?"]), of(&[2, 5]));
    assert_eq!(ids(&env, &["list", "--ref", "*"]), of(&[0, 2, 5]));
    assert_eq!(ids(&env, &["list", "--ref", "**"]).len(), refs.len());
    // --branch never matches a tag.
    assert_eq!(ids(&env, &["list", "-b", "v1.0"]), of(&[5]));
    assert_eq!(ids(&env, &["list", "--branch", "release/*"]), of(&[1, 3]));
    assert_eq!(ids(&env, &["list", "-b", "refs/heads/main"]), of(&[0]));
    assert!(ids(&env, &["list", "-b", "nothing"]).is_empty());
    env.runs(&["list", "-b", "nothing"])
        .assert()
        .success()
        .stdout("")
        .stderr("no runs match\n");
    // One or the other.
    env.runs(&["list", "--ref", "main", "-b", "main"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn a_repository_is_taken_by_name_with_or_without_git_or_by_path() {
    let env = Env::new();
    let (dir, app) = repo_with_runs(&env, "app.git", &["refs/heads/main"]);
    let (_, lib) = repo_with_runs(&env, "lib.git", &["refs/heads/main"]);
    for given in [
        "app.git",
        "app",
        dir.to_str().unwrap(),
        &format!("{}/", dir.display()),
    ] {
        assert_eq!(ids(&env, &["list", "-R", given]), app, "{given}");
        assert_eq!(ids(&env, &["list", "--repo", given]), app, "{given}");
    }
    // A relative path, from where the command runs.
    let out = env
        .runs(&["list", "-R", "./lib.git", "--json"])
        .current_dir(dir.parent().unwrap())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let listed: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(listed[0]["id"], lib[0].as_str());
    env.runs(&["list", "-R", "other"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no repository \"other\" is known"));
}

#[test]
fn list_takes_gh_short_flags() {
    let env = Env::new();
    let f = populate(&mut env.store());
    assert_eq!(
        ids(&env, &["list", "-s", "failed", "-s", "pending"]),
        [f.pending.clone(), f.failed.clone()]
    );
    assert_eq!(
        ids(&env, &["list", "-L", "2"]),
        [f.orphan.clone(), f.live.clone()]
    );
    assert_eq!(
        ids(&env, &["list", "-R", "app", "-b", "dev"]),
        [f.failed.as_str()]
    );
    // -c/--commit, and --sha as before.
    for flag in ["-c", "--commit", "--sha"] {
        assert_eq!(ids(&env, &["list", flag, &SHA[..7]]).len(), 6, "{flag}");
        assert!(ids(&env, &["list", flag, "ffff"]).is_empty(), "{flag}");
    }
}

#[test]
fn limit_zero_is_a_usage_error() {
    let env = Env::new();
    populate(&mut env.store());
    for flag in ["--limit", "-L"] {
        env.runs(&["list", flag, "0"])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("--limit must be at least 1"))
            .stderr(predicate::str::contains("no runs").not());
    }
}

#[test]
fn show_logs_and_wait_without_run_take_the_newest() {
    let env = Env::new();
    let f = populate(&mut env.store());
    // The newest run of all, then of a branch, a ref or a repository.
    assert_eq!(env.json(&["show"])["id"], f.orphan.as_str());
    assert_eq!(env.json(&["show", "-b", "main"])["id"], f.complete.as_str());
    assert_eq!(
        env.json(&["show", "--ref", "v1.0"])["id"],
        f.pending.as_str()
    );
    assert_eq!(
        env.json(&["show", "-R", "app.git", "--ref", "dev"])["id"],
        f.failed.as_str()
    );
    env.runs(&["show", "-b", "main"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "run       {}\n",
            f.complete
        )));

    // logs: the newest run's, and which run it took on stderr.
    env.runs(&["logs", "-b", "main"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "==> build step 1: cargo build <==",
        ))
        .stdout(predicate::str::contains(
            "==> test step 2: cargo test --all <==",
        ))
        .stderr(format!("run {} (app.git main)\n", f.complete));
    env.runs(&["logs", "-b", "dev", "--job", "build"])
        .assert()
        .success()
        // The fixture's step wrote no log: its header says so.
        .stdout(predicate::str::starts_with(
            "==> build step 1: make <==\n(no log: none was kept for this step",
        ))
        .stderr(format!("run {} (app.git dev)\n", f.failed));
    env.runs(&["logs", "-b", "dev", "-j", "build", "--step", "1"])
        .assert()
        .success()
        .stdout("");
    env.runs(&["logs", &f.failed, "-j", "nothing"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("has no job \"nothing\""));

    // wait: the newest run of the branch, which has ended.
    env.runs(&["wait", "-b", "main"])
        .assert()
        .success()
        .stdout(format!("run {} complete\n", f.complete))
        .stderr(format!("run {} (app.git main)\n", f.complete));
    env.runs(&["wait", "--ref", "dev", "-i", "10ms"])
        .assert()
        .code(1)
        .stdout(format!("run {} failed (pipeline-failure)\n", f.failed));

    // Nothing to take.
    for (args, what) in [
        (
            &["show", "-b", "nothing"][..],
            "there is no run to show: no runs match",
        ),
        (
            &["logs", "--ref", "nothing"],
            "there is no run to print the logs of: no runs match",
        ),
        (
            &["wait", "-b", "nothing"],
            "there is no run to wait for: no runs match",
        ),
    ] {
        env.runs(args)
            .assert()
            .code(1)
            .stdout("")
            .stderr(predicate::str::contains(what))
            .stderr(predicate::str::contains("hint: `quire-runs list`"));
    }
    // RUN or the selectors, not both; cancel and retry still need RUN.
    env.runs(&["show", &f.complete, "-b", "main"])
        .assert()
        .code(2);
    env.runs(&["logs", &f.complete, "-R", "app"])
        .assert()
        .code(2);
    env.runs(&["logs", &f.complete, "build", "--job", "test"])
        .assert()
        .code(2);
    env.runs(&["cancel"]).assert().code(2);
    env.runs(&["retry"]).assert().code(2);
}

#[test]
fn without_run_an_empty_store_has_nothing_to_show() {
    let env = Env::new();
    env.store();
    env.runs(&["show"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "there is no run to show: no runs yet",
        ));
}

/// Insert runs with these ids (queued in this order, a second apart) into
/// a store with one repository.
fn runs_with_ids(env: &Env, ids: &[&str]) {
    let store = env.store();
    let conn = store.connection();
    conn.execute(
        "INSERT OR IGNORE INTO repos (id, git_dir, name, hook_state, first_seen_at_ms)
         VALUES (1, '/srv/git/app.git', 'app.git', 'seen', 0)",
        [],
    )
    .unwrap();
    for (n, id) in ids.iter().enumerate() {
        conn.execute(
            "INSERT INTO runs (id, repo_id, ref_name, sha, state, pushed_at_ms, queued_at_ms,
                               traceparent)
             VALUES (?1, 1, 'refs/heads/r' || ?2, ?3, 'pending', ?4, ?4, '00-x-y-01')",
            rusqlite::params![id, n as i64, SHA, 1_800_000_000_000i64 + n as i64 * 1000],
        )
        .unwrap();
    }
}

/// The RUN column of `quire-runs list`, newest first.
fn listed_ids(env: &Env, args: &[&str]) -> Vec<String> {
    let out = env
        .runs(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().unwrap().to_string())
        .collect()
}

const X: &str = "01a20000-0000-7000-8000-1111deadbeef";
const Y: &str = "01a20000-0000-7000-8000-2222deadbeef";
/// Its last 8 characters are where Z begins.
const W: &str = "01a20000-0000-7000-8000-0000c0ffee00";
const Z: &str = "c0ffee00-0000-7000-8000-000000000099";
const V: &str = "01a20000-0000-7000-8000-0000000abc12";

#[test]
fn list_shows_short_suffixes_that_select_their_run() {
    let env = Env::new();
    runs_with_ids(&env, &[X, Y, W, Z, V]);
    // Newest first: V, Z, W, Y, X.
    assert_eq!(
        listed_ids(&env, &["list"]),
        // "c0ffee00" begins Z, "deadbeef" ends X and Y: one character
        // more.
        [
            "000abc12",
            "00000099",
            "0c0ffee00",
            "2deadbeef",
            "1deadbeef"
        ]
    );
    // Each selects its run, as do its full id, a prefix, a suffix or any
    // part of it that no other run has.
    for (short, id) in [
        ("000abc12", V),
        ("00000099", Z),
        ("0c0ffee00", W),
        ("2deadbeef", Y),
        ("1deadbeef", X),
        ("1111d", X),
        ("0-2222", Y),
        ("C0FFEE00-", Z),
        (V, V),
    ] {
        assert_eq!(env.json(&["show", short])["id"], id, "{short}");
    }
    // A prefix is looked for first: "c0ffee00" begins Z, though W ends so.
    assert_eq!(env.json(&["show", "c0ffee00"])["id"], Z);
    // Parts several ids have are ambiguous: a part other than a prefix
    // names the runs newest first, a prefix in id order, newest first for
    // quire's time-ordered ids (these ids are not).
    env.runs(&["show", "deadbeef"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "run id \"deadbeef\" is ambiguous: it matches {Y}, {X}\n"
        )))
        .stderr(predicate::str::contains("hint: give more characters"));
    env.runs(&["show", "01a2"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "run id \"01a2\" is ambiguous: it matches {Y}, {X}, {W}, {V}\n"
        )));
    env.runs(&["show", "beefbeef"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no run matches \"beefbeef\""));
    // JSON keeps full ids.
    assert_eq!(ids(&env, &["list"]), [V, Z, W, Y, X]);
}

#[test]
fn ambiguity_names_ten_runs_and_counts_the_rest() {
    let env = Env::new();
    let ids: Vec<String> = (0..13)
        .map(|n| format!("01a20000-0000-7000-8000-{n:012x}"))
        .collect();
    runs_with_ids(&env, &ids.iter().map(String::as_str).collect::<Vec<_>>());
    env.runs(&["show", "7000"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "it matches {}, ",
            ids[12]
        )))
        .stderr(predicate::str::contains(format!("{} and 3 more\n", ids[3])));
}

#[test]
fn parts_of_ids_are_looked_for_among_the_newest_10000_runs() {
    let env = Env::new();
    const OLD: &str = "01900000-0000-7000-8000-0000feedf00d";
    runs_with_ids(&env, &[OLD]);
    // 10,000 newer runs.
    env.store()
        .connection()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
             INSERT INTO runs (id, repo_id, ref_name, sha, state, pushed_at_ms, queued_at_ms,
                               finished_at_ms, traceparent)
             SELECT printf('01a30000-0000-7000-8000-%012x', i), 1, 'refs/heads/n',
                    'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678', 'superseded',
                    1900000000000 + i, 1900000000000 + i, 1900000000000 + i, '00-x-y-01'
             FROM n;",
        )
        .unwrap();
    // The old run is found by its id or a prefix, not by another part.
    assert_eq!(env.json(&["show", OLD])["id"], OLD);
    assert_eq!(env.json(&["show", "0190"])["id"], OLD);
    env.runs(&["show", "feedf00d"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no run matches \"feedf00d\""));
    // So list shows it by its shortest unique prefix; newer runs by suffix.
    let shown = listed_ids(&env, &["list", "--ref", "r0"]);
    assert_eq!(shown, ["01900000"]);
    let shown = listed_ids(&env, &["list", "-L", "1"]);
    assert_eq!(shown, ["00002710"]);
    assert_eq!(
        env.json(&["show", "00002710"])["id"],
        "01a30000-0000-7000-8000-000000002710"
    );
}

#[test]
fn every_short_id_of_a_real_push_selects_its_run() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#,
        )],
        "pipeline",
    );
    let refs: Vec<String> = (0..8).map(|n| format!("b{n}")).collect();
    for name in &refs {
        quire_testkit::git(&repo.work, &["branch", name]);
    }
    let pushed = repo.push_refs(&refs.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(pushed.len(), refs.len());
    // One push: every id begins with the same time; the short ids do not.
    let shown = listed_ids(&env, &["list"]);
    assert_eq!(shown.len(), refs.len());
    for short in &shown {
        assert!(short.len() < 12, "{short} is short");
        let id = env.json(&["show", short])["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(id.ends_with(short.as_str()), "{short} selects {id}");
        assert!(pushed.contains(&id));
    }
    for id in &pushed {
        env.wait_terminal(id);
    }
}
