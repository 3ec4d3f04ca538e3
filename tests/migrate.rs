//! `quire-run migrate-from`: an upstream home taken into a quire home, every
//! row kept, every log readable, the source only read.

#[path = "../crates/quire-store/tests/support/upstream.rs"]
mod upstream;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use predicates::prelude::*;
use serde_json::Value;

use quire_testkit::{Env, Repo, git};

/// Every file under `dir` with its bytes, for "nothing changed" checks.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(&path, root, out);
            } else {
                let key = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(key, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn source_files(source: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = snapshot(source);
    files.retain(|name, _| !name.starts_with("repos/"));
    files
}

#[test]
fn every_upstream_version_migrates_with_every_row_and_log_and_the_source_untouched() {
    for version in [1, 4, 7, 8, 9, 10, 11] {
        let env = Env::new();
        let source = env.path().join("upstream");
        let expected = upstream::build_home(&source, version);
        let before = source_files(&source);

        env.run(&["migrate-from", source.to_str().unwrap(), "--install-hooks"])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "migrated {} runs",
                expected.runs.len()
            )));
        assert_eq!(
            source_files(&source),
            before,
            "v{version}: the source changed"
        );

        let runs = env.json(&["list", "--limit", "1000"]);
        let runs = runs.as_array().unwrap();
        assert_eq!(runs.len(), expected.runs.len(), "v{version}");
        for want in &expected.runs {
            let run = runs.iter().find(|r| r["id"] == want.id.as_str()).unwrap();
            assert_eq!(run["repo"], want.repo.as_str(), "v{version} {}", want.id);
            assert_eq!(run["state"], want.state, "v{version} {}", want.id);
            // Every repository is known by its path under upstream's repos/.
            let path = source
                .join("repos")
                .join(&want.repo)
                .canonicalize()
                .unwrap();
            assert_eq!(run["git_dir"], path.to_str().unwrap(), "v{version}");
        }
        // Shown: each run with exactly the jobs upstream left of it.
        for want in &expected.runs {
            let shown = env.json(&["show", &want.id]);
            let mut jobs: Vec<&str> = shown["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap())
                .collect();
            jobs.sort();
            let mut wanted: Vec<&str> = expected
                .jobs
                .iter()
                .filter(|j| j.run_id == want.id)
                .map(|j| j.job_id.as_str())
                .collect();
            wanted.sort();
            assert_eq!(jobs, wanted, "v{version} {}", want.id);
            assert_eq!(shown["state"], want.state, "v{version} {}", want.id);
        }
        for step in &expected.steps {
            env.runs(&["logs", &step.run_id, &step.job_id])
                .assert()
                .success()
                .stdout(predicate::str::contains(format!(
                    "{} {} step {}",
                    step.run_id, step.job_id, step.seq
                )));
        }

        let repos = env.json(&["repos"]);
        for name in upstream::REPOS {
            let repo = repos
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .unwrap_or_else(|| panic!("v{version}: no repository {name}: {repos}"));
            assert_eq!(repo["hook"], "quire", "v{version}");
            assert_eq!(repo["hook_state"], "installed", "v{version}");
            let kept = source
                .join("repos")
                .join(name)
                .join("hooks/post-receive.upstream");
            assert!(std::fs::read_to_string(kept).unwrap().contains("upstream"));
        }
        let config = std::fs::read_to_string(env.home().dir().join("config.toml")).unwrap();
        assert!(config.contains("repos_root"), "{config}");
    }
}

#[test]
fn logs_of_steps_an_upgrade_dropped_from_the_store_are_still_shown() {
    // Upstream's version 7 dropped every job row (its rebuild of runs
    // cascaded); the files stayed.
    let env = Env::new();
    let source = env.path().join("upstream");
    let expected = upstream::build_home(&source, 6);
    let step = &expected.steps[0];
    let store = rusqlite::Connection::open(source.join("quire.db")).unwrap();
    store
        .execute("DELETE FROM sh_events WHERE run_id = ?1", [&step.run_id])
        .unwrap();
    drop(store);
    env.run(&["migrate-from", source.to_str().unwrap()])
        .assert()
        .success();
    env.runs(&["logs", &step.run_id])
        .assert()
        .success()
        .stdout(predicate::str::contains("(not recorded in the store)"))
        .stdout(predicate::str::contains(format!(
            "{} {} step {}",
            step.run_id, step.job_id, step.seq
        )));
}

#[test]
fn a_running_upstream_is_left_alone_unless_forced() {
    let env = Env::new();
    let source = env.path().join("upstream");
    let expected = upstream::build_home(&source, 11);
    let db = source.join("quire.db");
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 3<\"$0\"; echo ready; exec sleep 60")
        .arg(&db)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();

    env.run(&["migrate-from", source.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("upstream quire is running"))
        .stderr(predicate::str::contains(format!("pid {}", holder.id())))
        .stderr(predicate::str::contains("--force"));
    assert!(!env.home().db_path().exists());

    env.run(&["migrate-from", source.to_str().unwrap(), "--force"])
        .assert()
        .success();
    assert_eq!(
        env.json(&["list", "--limit", "1000"])
            .as_array()
            .unwrap()
            .len(),
        expected.runs.len()
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn a_home_that_has_a_store_or_a_folder_without_one_is_refused() {
    let env = Env::new();
    let source = env.path().join("upstream");
    upstream::build_home(&source, 10);
    env.run(&["migrate-from", env.path().to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not an upstream quire home"));
    drop(env.store());
    env.run(&["migrate-from", source.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already has a store"));
}

#[test]
fn a_push_after_migrating_lands_beside_the_repositorys_old_runs() {
    let env = Env::new();
    let source = env.path().join("upstream");
    let expected = upstream::build_home(&source, 11);
    env.run(&["migrate-from", source.to_str().unwrap(), "--install-hooks"])
        .assert()
        .success();
    let bare = source.join("repos/work/api.git");
    let work = env.path().join("api");
    git(
        env.path(),
        &[
            "clone",
            "--quiet",
            bare.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    git(&work, &["checkout", "--quiet", "-b", "main"]);
    let repo = Repo {
        bare,
        work,
        home: env.home(),
        vars: Vec::new(),
    };
    repo.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.t]
inputs = ["quire/push"]
sh = ["true"]
"#,
        )],
        "first quire push",
    );
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    let old = expected
        .runs
        .iter()
        .filter(|r| r.repo == "work/api.git")
        .count();
    let listed: Value = env.json(&["list", "--repo", "work/api", "--limit", "1000"]);
    assert_eq!(listed.as_array().unwrap().len(), old + 1, "{listed}");
}

#[test]
fn hostile_files_in_an_upstream_home_are_skipped_and_named() {
    let env = Env::new();
    let source = env.path().join("upstream");
    let expected = upstream::build_home(&source, 11);
    let run = &expected.runs[0];
    let jobs = source
        .join("runs")
        .join(&run.repo)
        .join(&run.id)
        .join("jobs");
    std::fs::create_dir_all(jobs.join("sneaky")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", jobs.join("sneaky/sh-1.log")).unwrap();
    std::fs::create_dir_all(jobs.join("bad name")).unwrap();
    std::fs::write(jobs.join("bad name/sh-1.log"), "x\n").unwrap();

    env.run(&["migrate-from", source.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("sneaky/sh-1.log: not a step log"))
        .stderr(predicate::str::contains(
            "bad name: not a job name quire accepts",
        ));
    let logs = env.home().run_dir(&run.id).unwrap().join("logs");
    assert!(!logs.join("sneaky/1.log").exists());
    assert!(!logs.join("bad name").exists());
}

/// A directory outside the home, where `runs/../../victim` would lead, with
/// a file in it: nothing may delete or change it.
fn victim(env: &Env) -> std::path::PathBuf {
    let dir = env.path().join("victim");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("precious"), "keep me\n").unwrap();
    // HOME/runs/../../victim
    assert_eq!(env.home().dir().parent().unwrap().join("victim"), dir);
    dir
}

/// Give run `old` the id `new` in every table that names it.
fn set_run_id(db: &Path, old: &str, new: &str, ref_name: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    let tables: Vec<String> = conn
        .prepare(
            "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c
             WHERE m.type = 'table' AND c.name = 'run_id'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for table in tables {
        conn.execute(
            &format!("UPDATE {table} SET run_id = ?1 WHERE run_id = ?2"),
            [new, old],
        )
        .unwrap();
    }
    let changed = conn
        .execute(
            "UPDATE runs SET id = ?1, ref_name = ?2 WHERE id = ?3",
            [new, ref_name, old],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

fn assert_printable(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !text.contains(['\x1b', '\x07']),
        "{what} printed a control character raw: {text:?}"
    );
}

/// Ids upstream wrote that would name a path (`../`) or hold escape
/// sequences are rewritten by migrate-from, every row kept and the old id
/// said; prune and reconcile then touch nothing outside the home, and print
/// the hostile ref escaped.
#[test]
fn hostile_upstream_run_ids_are_rewritten_and_nothing_outside_the_home_is_touched() {
    let env = Env::new();
    let victim = victim(&env);
    let source = env.path().join("upstream");
    let expected = upstream::build_home(&source, 11);
    // Ended runs (pruned below): one whose id climbs out of runs/, one whose
    // id is a folder name with an escape sequence (its logs must follow it).
    let climbing = &expected.runs[0];
    let escaping = expected
        .runs
        .iter()
        .find(|r| {
            r.id != climbing.id
                && r.finished_at_ms.is_some()
                && expected.steps.iter().any(|s| s.run_id == r.id)
        })
        .expect("an ended run with step logs");
    let evil_ref = "refs/heads/x\x1b]0;owned\x07\x1b[2J";
    set_run_id(
        &source.join("quire.db"),
        &climbing.id,
        "../../victim",
        evil_ref,
    );
    let escaping_id = "run\x1b[31m";
    set_run_id(
        &source.join("quire.db"),
        &escaping.id,
        escaping_id,
        evil_ref,
    );
    // A repository name with escape sequences, too (upstream named
    // repositories by what its runs recorded).
    rusqlite::Connection::open(source.join("quire.db"))
        .unwrap()
        .execute(
            "UPDATE runs SET repo = 'evil\x1b]0;owned\x07.git' WHERE id = ?1",
            [escaping_id],
        )
        .unwrap();
    let folder = source.join("runs").join(&escaping.repo);
    std::fs::rename(folder.join(&escaping.id), folder.join(escaping_id)).unwrap();
    let logged: Vec<_> = expected
        .steps
        .iter()
        .filter(|s| s.run_id == escaping.id)
        .collect();

    let out = env
        .run(&["migrate-from", source.to_str().unwrap()])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_printable("migrate-from", &out.get_output().stdout);
    assert_printable("migrate-from", &out.get_output().stderr);
    assert!(
        stdout.contains("run id ../../victim is not of quire's shape; the run is now "),
        "{stdout}"
    );
    assert!(
        stdout.contains("run id run\\x1b[31m is not of quire's shape"),
        "{stdout}"
    );

    let listed: Value = env.json(&["list", "--limit", "1000"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), expected.runs.len(), "every row is kept");
    for run in listed {
        let id = run["id"].as_str().unwrap();
        assert!(quire_model::is_run_id(id), "{id:?} was kept as it was");
    }
    let renamed: Vec<&Value> = listed.iter().filter(|r| r["ref"] == evil_ref).collect();
    assert_eq!(renamed.len(), 2, "{listed:?}");
    // The escaping run's logs were copied under its new id.
    let step = logged[0];
    let new_id = renamed
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .find(|id| {
            env.store()
                .step_log(id, &step.job_id, step.seq)
                .unwrap()
                .is_some()
        });
    assert!(
        new_id.is_some(),
        "the logs of the renamed run were not copied"
    );

    let shown = env
        .runs(&["show", renamed[0]["id"].as_str().unwrap()])
        .assert()
        .success();
    assert_printable("show", &shown.get_output().stdout);
    let reconciled = env.runs(&["reconcile"]).assert().success();
    assert_printable("reconcile", &reconciled.get_output().stdout);
    let repos = env.runs(&["repos"]).assert().success();
    let repos_text = String::from_utf8_lossy(&repos.get_output().stdout).into_owned();
    assert!(
        repos_text.contains("evil\\x1b]0;owned\\x07.git"),
        "{repos_text}"
    );
    assert_printable("repos", &repos.get_output().stdout);
    let pruned = env
        .runs(&["prune", "--older-than", "1s"])
        .assert()
        .success();
    assert_printable("prune", &pruned.get_output().stdout);
    assert_printable("prune", &pruned.get_output().stderr);
    let pruned = String::from_utf8_lossy(&pruned.get_output().stdout).into_owned();
    assert!(
        pruned.contains("refs/heads/x\\x1b]0;owned\\x07\\x1b[2J"),
        "{pruned}"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("precious")).unwrap(),
        "keep me\n"
    );
}

/// A store written by hand (not through quire) with a run id that climbs
/// out of `runs/`: no command makes a path of it. prune deletes its rows
/// only, says so on one escaped line, and leaves the directory that id
/// would name; reconcile does not fail on it.
#[test]
fn a_run_id_that_would_leave_the_home_names_no_path() {
    let env = Env::new();
    let victim = victim(&env);
    let source = env.path().join("upstream");
    let expected = upstream::build_home(&source, 11);
    env.run(&["migrate-from", source.to_str().unwrap()])
        .assert()
        .success();
    let run = &expected.runs[0];
    std::fs::create_dir_all(env.home().run_dir(&run.id).unwrap()).unwrap();
    let hostile = "../../victim";
    set_run_id(
        &env.home().db_path(),
        &run.id,
        hostile,
        "refs/heads/\x07bell",
    );

    let reconciled = env.runs(&["reconcile"]).assert().success();
    assert_printable("reconcile", &reconciled.get_output().stdout);
    let pruned = env
        .runs(&["prune", "--older-than", "1s"])
        .assert()
        .success();
    assert!(
        victim.join("precious").is_file(),
        "prune deleted a directory outside the home"
    );
    let stderr = String::from_utf8_lossy(&pruned.get_output().stderr).into_owned();
    assert!(
        stderr.contains("run id \"../../victim\" is not of quire's shape"),
        "{stderr}"
    );
    assert_printable("prune", &pruned.get_output().stdout);
    let left: Value = env.json(&["list", "--limit", "1000"]);
    assert!(
        left.as_array().unwrap().iter().all(|r| r["id"] != hostile),
        "the hostile row was pruned: {left}"
    );
}

/// Upstream's home at `version`, its two repositories holding a real
/// commit whose pipeline would leave `ran` if it ever executed, every run
/// pointing at its repository's commit; a step log of `deploy` removed.
/// Returns the expected rows and the runs upstream left unfinished
/// (pending or active).
fn upstream_home_with_commits(
    env: &Env,
    source: &Path,
    version: i64,
    ran: &Path,
) -> (upstream::Expected, Vec<upstream::ExpectedRun>) {
    let expected = upstream::build_home(source, version);
    let db = rusqlite::Connection::open(source.join("quire.db")).unwrap();
    for (i, name) in upstream::REPOS.iter().enumerate() {
        let bare = source.join("repos").join(name);
        let work = env.path().join(format!("work-{i}"));
        git(
            env.path(),
            &["init", "--quiet", "-b", "main", work.to_str().unwrap()],
        );
        let repo = Repo {
            bare: bare.clone(),
            work: work.clone(),
            home: env.home(),
            vars: Vec::new(),
        };
        let pipeline = format!(
            r#"[jobs.deploy]
inputs = ["quire/push"]
sh = ["touch {}"]
"#,
            ran.display()
        );
        let sha = repo.commit(&[(".quire/ci.toml", &pipeline)], "deploy");
        // Into the bare repository without its (upstream's) hook.
        git(
            &bare,
            &["fetch", "--quiet", work.to_str().unwrap(), "main:main"],
        );
        db.execute(
            "UPDATE runs SET sha = ?1 WHERE repo = ?2",
            rusqlite::params![sha, name],
        )
        .unwrap();
    }
    drop(db);
    let unfinished: Vec<upstream::ExpectedRun> = expected
        .runs
        .iter()
        .filter(|r| matches!(r.was, "pending" | "active") && r.state == "failed")
        .cloned()
        .collect();
    assert!(
        unfinished.iter().any(|r| r.was == "pending")
            && unfinished.iter().any(|r| r.was == "active"),
        "v{version}: the store holds pending and active runs"
    );
    (expected, unfinished)
}

/// Nothing of `unfinished` ran or was announced: each is failed
/// (orphaned) with a detail that says why, no worker ever held it, no
/// workspace, no note in either repository, no notifier ran.
fn assert_history_stayed_history(
    env: &Env,
    source: &Path,
    unfinished: &[upstream::ExpectedRun],
    marks: &[&Path],
    version: i64,
) {
    for want in unfinished {
        let at = format!("v{version} run {} (was {})", want.id, want.was);
        let shown = env.json(&["show", &want.id]);
        assert_eq!(shown["state"], "failed", "{at}: {shown}");
        assert_eq!(shown["failure_kind"], "orphaned", "{at}");
        let detail = shown["failure_detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("migrated from upstream quire") && detail.contains("never ran here"),
            "{at}: {detail}"
        );
        assert!(shown["worker"].is_null(), "{at}: a worker held it: {shown}");
        assert!(
            shown["notifications"].as_array().unwrap().is_empty(),
            "{at}"
        );
        assert!(
            !env.home()
                .dir()
                .join("runs")
                .join(&want.id)
                .join("workspace")
                .exists(),
            "{at}: a workspace was made"
        );
    }
    for mark in marks {
        assert!(!mark.exists(), "v{version}: {} exists", mark.display());
    }
    for name in upstream::REPOS {
        let notes = git(
            &source.join("repos").join(name),
            &["for-each-ref", "refs/notes/"],
        );
        assert!(notes.trim().is_empty(), "v{version} {name}: notes {notes}");
    }
}

#[test]
fn upstream_runs_left_pending_or_active_never_run_nor_are_announced() {
    for version in [7, 11] {
        let env = Env::new();
        let source = env.path().join("upstream");
        let ran = env.path().join("pipeline-ran");
        let notified = env.path().join("notified");
        let (expected, unfinished) = upstream_home_with_commits(&env, &source, version, &ran);
        env.config(&format!(
            r#"[[notify]]
on = ["complete", "failed", "superseded"]
command = ["touch", "{}"]
"#,
            notified.display()
        ));

        let pending = unfinished.iter().filter(|r| r.was == "pending").count();
        let active = unfinished.len() - pending;
        env.run(&["migrate-from", source.to_str().unwrap(), "--install-hooks"])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "(version {version}): {} runs kept; {pending} pending and {active} active there \
                 are now failed (orphaned) and never run here",
                expected.runs.len()
            )));

        // The README's cron line, then a worker and an announcer as the
        // hook would start them: none finds anything to do.
        let reconciled = env.json(&["reconcile"]);
        assert_eq!(
            reconciled["worker_started"], false,
            "v{version}: {reconciled}"
        );
        assert!(
            reconciled["awaiting_worker"].as_array().unwrap().is_empty(),
            "v{version}: {reconciled}"
        );
        env.run(&["work"]).assert().success();
        env.run(&["announce"]).assert().success();
        assert_history_stayed_history(&env, &source, &unfinished, &[&ran, &notified], version);

        // No duration where upstream recorded no finish: not `list`'s, not
        // `show`'s, nor their aborted jobs'.
        let listed = env.json(&["list", "--limit", "1000"]);
        for want in &unfinished {
            let run = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == want.id.as_str())
                .unwrap();
            assert!(run["duration_ms"].is_null(), "v{version}: {run}");
            let shown = env.runs(&["show", &want.id]).assert().success();
            let text = String::from_utf8_lossy(&shown.get_output().stdout).into_owned();
            assert!(!text.contains("\nduration"), "v{version}: {text}");
            assert!(text.contains("never ran here"), "v{version}: {text}");
            // Its jobs upstream left running have no duration either (they
            // ended at no time upstream recorded: 0ms is not one).
            for line in text.lines().filter(|l| l.contains("aborted")) {
                assert!(!line.contains("0ms"), "v{version}: {text}");
            }
        }
        let complete = expected
            .runs
            .iter()
            .find(|r| r.state == "complete")
            .unwrap();
        let run = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == complete.id.as_str())
            .unwrap();
        assert!(run["duration_ms"].is_i64(), "v{version}: {run}");

        // `logs` says why nothing comes: a run upstream never started has
        // no step at all.
        let never_started = unfinished.iter().find(|r| r.was == "pending").unwrap();
        env.runs(&["logs", &never_started.id])
            .assert()
            .success()
            .stderr(predicate::str::contains(
                "has no step logs: it came unfinished from upstream quire and never ran here",
            ));
    }
}

#[test]
fn a_migrated_step_without_a_log_file_says_so_under_its_header() {
    let env = Env::new();
    let source = env.path().join("upstream");
    let expected = upstream::build_home(&source, 6);
    // The last step of a job with two (migrate-from numbers a job's logs
    // in order, so the first one's absence would move the second).
    let step = expected
        .steps
        .iter()
        .find(|s| s.seq == 2)
        .expect("a job with two steps");
    let run = expected.runs.iter().find(|r| r.id == step.run_id).unwrap();
    let log = source
        .join("runs")
        .join(&run.repo)
        .join(&run.id)
        .join(format!("jobs/{}/sh-{}.log", step.job_id, step.seq));
    std::fs::remove_file(log).unwrap();
    env.run(&["migrate-from", source.to_str().unwrap()])
        .assert()
        .success();
    let out = env
        .runs(&["logs", &step.run_id, &step.job_id])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let header = format!("==> {} step {}:", step.job_id, step.seq);
    let at = text.find(&header).unwrap_or_else(|| panic!("{text}"));
    let next = text[at..].lines().nth(1).unwrap_or_default();
    assert!(
        next.starts_with("(no log: none was kept for this step"),
        "{text}"
    );
}

#[test]
fn an_upstream_store_opened_in_place_says_once_what_it_converted() {
    for version in [7, 11] {
        let env = Env::new();
        let source = env.path().join("upstream");
        let ran = env.path().join("pipeline-ran");
        let notified = env.path().join("notified");
        // The upstream home is the quire home: its store is opened in place.
        let (expected, unfinished) = upstream_home_with_commits(&env, &source, version, &ran);
        std::fs::rename(&source, env.home().dir()).unwrap();
        let home = env.home().dir().to_path_buf();
        env.config(&format!(
            r#"repos_root = "{}"
[[notify]]
on = ["complete", "failed", "superseded"]
command = ["touch", "{}"]
"#,
            home.join("repos").display(),
            notified.display()
        ));
        let said = format!(
            "converted an upstream quire store (version {version}): {} runs kept",
            expected.runs.len()
        );
        let first = env.runs(&["list", "--limit", "1000"]).assert().success();
        let stderr = String::from_utf8_lossy(&first.get_output().stderr).into_owned();
        assert_eq!(stderr.matches(&said).count(), 1, "v{version}: {stderr}");
        assert!(stderr.contains("never run here"), "v{version}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "v{version}: one line: {stderr}");
        env.runs(&["list"])
            .assert()
            .success()
            .stderr(predicate::str::contains("converted").not());

        let reconciled = env.json(&["reconcile"]);
        assert_eq!(
            reconciled["worker_started"], false,
            "v{version}: {reconciled}"
        );
        env.run(&["work"]).assert().success();
        env.run(&["announce"]).assert().success();
        assert_history_stayed_history(&env, &home, &unfinished, &[&ran, &notified], version);
    }
}

#[test]
fn the_web_view_gives_a_run_upstream_left_running_no_durations() {
    let env = Env::new();
    let source = env.path().join("upstream");
    let expected = upstream::build_home(&source, 11);
    env.run(&["migrate-from", source.to_str().unwrap()])
        .assert()
        .success();
    // The active run whose job was running upstream (now aborted).
    let job = expected
        .jobs
        .iter()
        .find(|j| {
            j.state == "aborted"
                && expected
                    .runs
                    .iter()
                    .any(|r| r.id == j.run_id && r.was == "active" && r.state == "failed")
        })
        .expect("an aborted job of a run upstream left active");
    let server = crate::web::Server::start(&env);
    let run = crate::web::request(&server.addr, "GET", &format!("/runs/{}", job.run_id), &[]);
    assert_eq!(run.status, 200);
    assert!(run.body.contains("never ran here"), "{}", run.body);
    assert!(!run.body.contains("<dt>duration</dt>"), "{}", run.body);
    let page = crate::web::request(
        &server.addr,
        "GET",
        &format!("/runs/{}/jobs/{}", job.run_id, job.job_id),
        &[],
    );
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<dt>started</dt>"), "{}", page.body);
    assert!(!page.body.contains("<dt>duration</dt>"), "{}", page.body);
}
