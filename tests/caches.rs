//! A job's `cache`: saved when the job completes, restored before its first
//! step on the next run of the same branch (else from the default branch),
//! listed by `quire-runs caches`, and kept under `cache_max_mb` by evicting
//! the least recently used.

use quire_store::RunState;
use serde_json::Value;

use quire_testkit::{Env, Gate, Repo, git};

/// Prints the stamp a previous run left in `target`, then leaves its own.
const STAMP: &str = r#"[jobs.build]
inputs = ["quire/push"]
cache = ["target"]
sh = [
  "if [ -f target/stamp ]; then echo \"found stamp $(cat target/stamp)\"; else echo 'no stamp'; fi",
  "mkdir -p target && echo \"$QUIRE_RUN_ID\" > target/stamp",
]
"#;

fn caches(env: &Env) -> Vec<Value> {
    env.json(&["caches"]).as_array().unwrap().clone()
}

/// A repository whose default branch (its HEAD) is `main`.
fn repo(env: &Env) -> Repo {
    let repo = env.repo_with_hook("app");
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    repo
}

#[test]
fn the_next_run_of_a_branch_finds_what_the_last_one_saved() {
    let env = Env::new();
    let repo = repo(&env);
    let first = repo.push_and_wait(STAMP);
    assert_eq!(first.state, RunState::Complete, "{first:?}");
    let text = env.logs(&first.id, "build");
    assert!(text.contains("no stamp"), "{text}");
    assert!(
        text.contains("quire: cache: no cache of job build on branch main; starting without one"),
        "{text}"
    );
    assert!(
        text.contains("quire: cache: saved target for branch main (37 B) in "),
        "{text}"
    );

    let second = repo.push_and_wait(STAMP);
    assert_eq!(second.state, RunState::Complete, "{second:?}");
    let text = env.logs(&second.id, "build");
    assert!(
        text.contains("quire: cache: restored target from branch main (37 B) in "),
        "{text}"
    );
    assert!(
        text.contains(&format!("found stamp {}", first.id)),
        "{text}"
    );

    let listed = caches(&env);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let entry = &listed[0];
    assert_eq!(entry["repo"], "app.git");
    assert_eq!(entry["job"], "build");
    assert_eq!(entry["branch"], "main");
    assert_eq!(entry["size"], 37);
    assert_eq!(entry["run"], second.id.as_str());
    quire_testkit::assert_time(entry, "last_used_at");
    // --json FIELDS: the fields there are, and only those asked for.
    let mut all = quire_testkit::json_fields(&env, &["caches"]);
    all.sort();
    assert_eq!(all, quire_testkit::keys(entry));
    let some = env
        .runs(&["caches", "--json", "size,branch"])
        .assert()
        .success();
    let some: Value = serde_json::from_slice(&some.get_output().stdout).unwrap();
    assert_eq!(some, serde_json::json!([{"branch": "main", "size": 37}]));

    let out = env.runs(&["caches"]).assert().success();
    let table = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(table.starts_with("REPO"), "{table}");
    assert!(
        table.contains("app.git") && table.contains("37 B"),
        "{table}"
    );
}

#[test]
fn a_failed_job_saves_nothing() {
    let env = Env::new();
    let repo = repo(&env);
    let run =
        repo.push_and_wait(&STAMP.replace("> target/stamp\",", "> target/stamp\", \"exit 1\","));
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    let text = env.logs(&run.id, "build");
    assert!(!text.contains("quire: cache: saved"), "{text}");
    assert!(caches(&env).is_empty());
    env.runs(&["caches"])
        .assert()
        .success()
        .stdout("")
        .stderr(predicates::str::contains("no caches yet"));
}

#[test]
fn a_new_branch_starts_from_the_default_branchs_cache_and_leaves_it() {
    let env = Env::new();
    let repo = repo(&env);
    let main = repo.push_and_wait(STAMP);
    assert_eq!(main.state, RunState::Complete, "{main:?}");

    git(&repo.work, &["checkout", "--quiet", "-b", "feature/x"]);
    repo.commit(&[("README", "feature")], "feature");
    let ids = repo.push_refs(&["feature/x"]);
    let run = env.wait_terminal(&ids[0]);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let text = env.logs(&run.id, "build");
    assert!(
        text.contains("quire: cache: restored target from the default branch main (37 B)"),
        "{text}"
    );
    assert!(text.contains(&format!("found stamp {}", main.id)), "{text}");

    let branches: Vec<(String, String)> = caches(&env)
        .iter()
        .map(|e| {
            (
                e["branch"].as_str().unwrap().into(),
                e["run"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        branches,
        [
            ("feature/x".into(), run.id.clone()),
            ("main".into(), main.id.clone())
        ],
        "main's cache stays main's"
    );
}

#[test]
fn caches_beyond_cache_max_mb_lose_the_least_recently_used() {
    let env = Env::new();
    env.config("cache_max_mb = 1\n");
    let repo = repo(&env);
    // 700 KB each: two do not fit in 1 MiB.
    let pipeline = r#"[jobs.a]
inputs = ["quire/push"]
cache = ["target"]
sh = "mkdir -p target && head -c 700000 /dev/zero > target/blob"

[jobs.b]
inputs = ["a"]
cache = ["target/"]
sh = "mkdir -p target && head -c 700000 /dev/zero > target/blob"
"#;
    let run = repo.push_and_wait(pipeline);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let text = env.logs(&run.id, "b");
    assert!(
        text.contains("quire: cache: evicted the cache of job a on branch main (683.6 KiB), the least recently used, to fit cache_max_mb = 1"),
        "{text}"
    );
    let listed = caches(&env);
    let jobs: Vec<&str> = listed.iter().map(|e| e["job"].as_str().unwrap()).collect();
    assert_eq!(jobs, ["b"]);

    // Caches off: prune trims what is left, and says so first with --dry-run.
    env.config("cache_max_mb = 0\n");
    let report = env.json(&["prune", "--older-than", "30d", "--dry-run"]);
    assert_eq!(report["caches"][0]["job"], "b");
    assert_eq!(report["cache_bytes_freed"], 700_000);
    assert_eq!(caches(&env).len(), 1, "a dry run removes nothing");
    env.runs(&["prune", "--older-than", "30d"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "evicted the cache of job b on branch main of app.git (683.6 KiB)",
        ));
    assert!(caches(&env).is_empty());
}

#[test]
fn a_cache_path_behind_a_symlink_takes_nothing_from_outside_the_workspace() {
    let env = Env::new();
    let repo = repo(&env);
    let outside = env.path().join("outside");
    std::fs::create_dir_all(outside.join("cache")).unwrap();
    std::fs::write(outside.join("cache/keep"), "not quire's").unwrap();
    let pipeline = format!(
        r#"[jobs.build]
inputs = ["quire/push"]
cache = ["vendor/cache"]
sh = "ln -s {} vendor"
"#,
        outside.display()
    );
    let run = repo.push_and_wait(&pipeline);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let text = env.logs(&run.id, "build");
    assert!(
        text.contains(
            "quire: cache: vendor/cache lies behind a symlink in the workspace; not saved"
        ),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("cache/keep")).unwrap(),
        "not quire's"
    );
    assert!(caches(&env).is_empty());
}

/// A make-like step: `out/obj` is rebuilt when a source is newer than it.
const MAKE: &str = r#"[jobs.build]
inputs = ["quire/push"]
cache = ["out"]
sh = """
mkdir -p out
for src in a.c b.c; do
  if [ out/obj -nt "$src" ]; then echo "$src: up to date"; else echo "$src: newer than the build"; fi
done
for src in a.c b.c; do [ out/obj -nt "$src" ] || { sleep 0.01; touch out/obj; break; }; done
git status --porcelain | sed 's/^/status: /'
"""
"#;

#[test]
fn files_unchanged_since_the_cached_build_keep_their_time_changed_ones_do_not() {
    let env = Env::new();
    let repo = repo(&env);
    repo.commit(
        &[("a.c", "a\n"), ("b.c", "b\n"), (".gitignore", "out/\n")],
        "sources",
    );
    let first = repo.push_and_wait(MAKE);
    assert_eq!(first.state, RunState::Complete, "{first:?}");
    let text = env.logs(&first.id, "build");
    assert!(text.contains("a.c: newer than the build"), "{text}");

    // Nothing changed: the restored build is up to date for every source,
    // and the checkout is still clean for git.
    let second = repo.push_and_wait(MAKE);
    let text = env.logs(&second.id, "build");
    assert!(
        text.contains("a.c: up to date") && text.contains("b.c: up to date"),
        "{text}"
    );
    assert!(
        text.contains(
            "quire: cache: 4 files of the checkout given their time from the cache's run"
        ),
        "{text}"
    );
    assert!(!text.contains("\nstatus: "), "git status is clean: {text}");

    // b.c changes: only it is newer than the build.
    repo.commit(&[("b.c", "b changed\n")], "change b");
    let third = repo.push_and_wait(MAKE);
    let text = env.logs(&third.id, "build");
    assert!(
        text.contains("a.c: up to date") && text.contains("b.c: newer than the build"),
        "{text}"
    );
    assert!(text.contains("1 changed since"), "{text}");
}

/// A worker killed in the middle of a save, restore or eviction leaves a
/// directory beside the entry (as `caches.rs` names them). prune removes
/// those whose run has ended or whose process is gone, and only those.
#[test]
fn prune_sweeps_what_interrupted_saves_left_and_nothing_live() {
    let env = Env::new();
    let repo = repo(&env);
    let done = repo.push_and_wait(STAMP);
    let key = env
        .path()
        .join("home/caches")
        .join(done.repo_id.to_string())
        .join("build/main");
    assert!(key.join("entry").is_dir());

    // A run still going: what it is building stays.
    let gate = Gate::new(&env);
    repo.commit(&[("other", "x")], "other");
    let live = repo.push_pipeline(&gate.job("build", "live"));
    gate.wait_ready("live");

    let dead = quire_testkit::dead_pid();
    let leftovers = [
        (format!("tmp-{}", done.id), true),
        (format!("taking-{}", live), false),
        (format!("evicting-{dead}-1"), true),
        (format!("old-{}-1", std::process::id()), false),
        ("stray".to_string(), false),
    ];
    for (name, _) in &leftovers {
        std::fs::create_dir_all(key.join(name).join("files")).unwrap();
        std::fs::write(key.join(name).join("files/blob"), "12345").unwrap();
    }
    let report = env.json(&["prune", "--older-than", "30d", "--dry-run"]);
    let listed: Vec<&str> = report["cache_leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{report}");
    for (name, _) in &leftovers {
        assert!(key.join(name).exists(), "a dry run removes nothing");
    }
    env.runs(&["prune", "--older-than", "30d"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "removed 2 leftovers of interrupted cache saves and restores, 10 B",
        ));
    for (name, swept) in &leftovers {
        assert_eq!(!key.join(name).exists(), *swept, "{name}");
    }
    assert!(key.join("entry").is_dir(), "the entry itself stays");
    gate.open();
    env.wait_terminal(&live);
}
