//! A job's `artifacts`: kept under the run when the job ends (also when it
//! failed), listed by `show`, written back by `download` byte for byte,
//! refused when they lead out of the workspace, and pruned with their run.

use std::path::Path;

use quire_store::RunState;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use quire_testkit::{Env, Repo};

/// Builds a tarball and a report tree, plants a symlink out of the
/// workspace where a glob matches it, then fails.
const PIPELINE: &str = r#"[jobs.build]
inputs = ["quire/push"]
artifacts = ["dist/*.tar.gz", "report/", "coverage/*.xml", "dist/evil"]
sh = [
  "mkdir -p dist report/b",
  "printf 'tarball bytes\\n' > dist/app.tar.gz",
  "printf 'first\\n' > report/a.txt && printf 'nested report\\n' > report/b/c.txt",
  "ln -s /etc/passwd dist/evil && ln -s /etc/passwd dist/passwd.tar.gz",
  "exit 3",
]
"#;

pub(crate) fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn artifact(job: &str, path: &str, bytes: &[u8]) -> Value {
    json!({"job": job, "path": path, "size": bytes.len(), "sha256": sha256(bytes)})
}

/// The run of [`PIPELINE`], ended.
fn failed_build(env: &Env) -> (Repo, String) {
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(PIPELINE);
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    (repo, run.id)
}

#[test]
fn a_failed_job_keeps_its_artifacts_and_show_lists_them() {
    let env = Env::new();
    let (_repo, id) = failed_build(&env);
    let shown = env.json(&["show", &id]);
    assert_eq!(
        shown["artifacts"],
        json!([
            artifact("build", "dist/app.tar.gz", b"tarball bytes\n"),
            artifact("build", "report/a.txt", b"first\n"),
            artifact("build", "report/b/c.txt", b"nested report\n"),
        ])
    );
    assert_eq!(shown["jobs"][0]["state"], "failed");
    let kept = env.home().run_dir(&id).unwrap().join("artifacts/build");
    assert_eq!(
        std::fs::read(kept.join("report/b/c.txt")).unwrap(),
        b"nested report\n"
    );
    assert!(!kept.join("dist/evil").exists() && !kept.join("dist/passwd.tar.gz").exists());

    let text = env.stdout(&["show", &id]);
    assert!(text.contains("ARTIFACT"), "{text}");
    assert!(
        text.contains("report/b/c.txt") && text.contains("14 B"),
        "{text}"
    );

    let log = env.stdout(&["logs", &id, "build"]);
    for line in [
        "quire: artifacts: kept dist/app.tar.gz (14 bytes)",
        "quire: artifacts: kept report/b/c.txt (14 bytes)",
        "quire: artifacts: \"coverage/*.xml\" matched nothing",
        "quire: artifacts: dist/evil leads outside the workspace; refused, not kept",
        "quire: artifacts: dist/passwd.tar.gz leads outside the workspace; refused, not kept",
    ] {
        assert!(log.contains(line), "{line:?} not in:\n{log}");
    }
}

#[test]
fn ingesting_the_kept_events_again_gives_the_same_rows() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    // The step below reaches past its workspace, which the sandbox forbids.
    env.config("sandbox = \"off\"\n");
    // events.jsonl goes once the run has ended: the first step keeps a hard
    // link to it, which sees every event written after.
    let copy = env.path().join("events.jsonl");
    let first = "mkdir -p dist report/b";
    let keep = format!(
        "ln \"$QUIRE_WORKSPACE/../events.jsonl\" {} && {first}",
        copy.display()
    );
    let pipeline = PIPELINE.replacen(&format!("{first:?}"), &format!("{keep:?}"), 1);
    let id = repo.push_and_wait(&pipeline).id;
    let mut store = env.store();
    let once = store.artifacts(&id).unwrap();
    assert_eq!(once.len(), 3);
    let events = std::fs::read(&copy).unwrap();
    let events = quire_model::events::parse_stream(&events).unwrap();
    store.ingest(&id, &events).unwrap();
    assert_eq!(store.artifacts(&id).unwrap(), once);
}

#[test]
fn a_run_without_artifacts_shows_an_empty_list_and_downloads_nothing() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        r#"[jobs.a]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    assert_eq!(env.json(&["show", &run.id])["artifacts"], json!([]));
    let into = env.path().join("out");
    env.runs(&["download", &run.id, "--dir", into.to_str().unwrap()])
        .assert()
        .success()
        .stdout("")
        .stderr(format!("run {} kept no artifacts\n", run.id));
    assert!(!into.exists());
}

#[test]
fn download_writes_identical_bytes_and_never_overwrites() {
    let env = Env::new();
    let (_repo, id) = failed_build(&env);
    let into = env.path().join("out");
    let dir = into.to_str().unwrap();
    let printed = env.stdout(&["download", &id, "--dir", dir]);
    assert!(
        printed.ends_with(&format!(
            "downloaded 3 files (34 B) of run {id} into {dir}\n"
        )),
        "{printed}"
    );
    let read = |p: &str| std::fs::read(into.join(p)).unwrap();
    assert_eq!(read("build/dist/app.tar.gz"), b"tarball bytes\n");
    assert_eq!(read("build/report/a.txt"), b"first\n");
    assert_eq!(read("build/report/b/c.txt"), b"nested report\n");

    // Again into the same place: refused, nothing touched.
    std::fs::write(into.join("build/report/a.txt"), "mine\n").unwrap();
    env.runs(&["download", &id, "--dir", dir])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "already exists; refusing to overwrite it",
        ));
    assert_eq!(read("build/report/a.txt"), b"mine\n");

    // A job that does not exist is an error.
    env.runs(&["download", &id, "--job", "nope", "--dir", dir])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("has no job \"nope\""));
}

#[test]
fn download_refuses_a_kept_file_that_changed() {
    let env = Env::new();
    let (_repo, id) = failed_build(&env);
    let kept = env
        .home()
        .run_dir(&id)
        .unwrap()
        .join("artifacts/build/report/a.txt");
    std::fs::write(&kept, "tampered\n").unwrap();
    let into = env.path().join("out");
    env.runs(&[
        "download",
        &id,
        "--job",
        "build",
        "--dir",
        into.to_str().unwrap(),
    ])
    .assert()
    .code(1)
    .stderr(predicates::str::contains(
        "artifact build/report/a.txt does not match what was kept",
    ));
    assert!(!into.join("build/report/a.txt").exists());
}

#[test]
fn prune_removes_a_runs_artifacts() {
    let env = Env::new();
    let (_repo, id) = failed_build(&env);
    let dir = env.home().run_dir(&id).unwrap().join("artifacts");
    assert!(dir.is_dir());
    env.runs(&["prune", "--older-than", "1d"])
        .env("QUIRE_NOW", "2100-01-01T00:00:00Z")
        .assert()
        .success();
    assert!(!Path::new(&dir).exists());
    let rows: i64 = rusqlite::Connection::open(env.home().dir().join("quire.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM artifacts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

/// An artifact whose file name holds escape sequences (a title change, a
/// bell): `show` and `download` print its name escaped, never raw.
#[test]
fn artifact_names_with_escape_sequences_are_printed_escaped() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let run = repo.push_and_wait(
        r#"[jobs.build]
inputs = ["quire/push"]
artifacts = ["out/"]
sh = ["mkdir out && printf 'x\\n' > \"out/a$(printf '\\033]0;owned\\007')b.txt\""]
"#,
    );
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let escaped = "out/a\\x1b]0;owned\\x07b.txt";
    let raw = |text: &str| text.contains(['\x1b', '\x07']);
    let shown = env.stdout(&["show", &run.id]);
    assert!(shown.contains(escaped) && !raw(&shown), "{shown:?}");
    let into = env.path().join("out");
    let printed = env.stdout(&["download", &run.id, "--dir", into.to_str().unwrap()]);
    assert!(printed.contains(escaped) && !raw(&printed), "{printed:?}");
    assert_eq!(
        std::fs::read(into.join("build/out/a\x1b]0;owned\x07b.txt")).unwrap(),
        b"x\n"
    );
}
