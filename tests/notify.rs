//! When a run ends (docs/OPERATIONS.md, "When a run ends"): `[[notify]]`
//! commands get the runs their filters match, with the run's `show --json`
//! on stdin, and a broken one is recorded and never holds the worker up;
//! results are written as git notes under `refs/notes/ci`, which a clone
//! can fetch, concurrent writers never lose each other's notes, a push of
//! the notes ref is refused (pre-receive), and a forged or huge note is
//! replaced by quire's.

use std::path::Path;
use std::process::Command as Process;

use quire_store::RunState;
use serde_json::Value;

use quire_testkit::{Env, Gate, git, wait_until};

const PASS: &str = r#"[jobs.t]
inputs = ["quire/push"]
sh = "echo fine"
"#;
const FAIL: &str = r#"[jobs.t]
inputs = ["quire/push"]
sh = "echo broken; exit 3"
"#;

/// Whether an announcer took the run (its note and notifiers are done or
/// under way).
fn announced(env: &Env, run: &str) -> bool {
    env.store()
        .connection()
        .query_row(
            "SELECT announced_at_ms IS NOT NULL FROM runs WHERE id = ?1",
            [run],
            |r| r.get(0),
        )
        .unwrap()
}

/// The run's notifications once none is running any more.
fn settled_notifications(env: &Env, run: &str) -> Value {
    let mut json = Value::Null;
    wait_until(&format!("the notifiers of {run}"), || {
        if !announced(env, run) {
            return false;
        }
        json = env.json(&["show", run])["notifications"].clone();
        json.as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] != "running")
    });
    json
}

/// A notifier that writes its stdin to `<dir>/<name>.<run>.<state>.json`.
fn recorder(dir: &Path, name: &str) -> String {
    format!(
        "[\"sh\", \"-c\", 'cat > \"$0/{name}.$QUIRE_RUN_ID.$QUIRE_STATE.json\"', \"{}\"]",
        dir.display()
    )
}

fn received(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_notifier_receives_exactly_the_runs_its_filter_matches() {
    let env = Env::new();
    let inbox = env.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    env.config(&format!(
        r#"[[notify]]
repos = ["app"]
refs = ["main"]
command = {}

[[notify]]
on = ["complete", "failed"]
refs = ["release/*"]
command = {}
"#,
        recorder(&inbox, "main-failures"),
        recorder(&inbox, "releases")
    ));
    let app = env.repo_with_hook("app");
    let other = env.repo_with_hook("other");

    let failed_main = app.push_and_wait(FAIL);
    assert_eq!(failed_main.state, RunState::Failed);
    let passed_main = app.push_and_wait(PASS);
    assert_eq!(passed_main.state, RunState::Complete);
    git(&app.work, &["branch", "release/1"]);
    let release = app.push_refs(&["release/1"]).remove(0);
    assert_eq!(env.wait_terminal(&release).state, RunState::Complete);
    let failed_other = other.push_and_wait(FAIL);

    for run in [&failed_main.id, &passed_main.id, &release, &failed_other.id] {
        settled_notifications(&env, run);
    }
    assert_eq!(
        received(&inbox),
        [
            format!("main-failures.{}.failed.json", failed_main.id),
            format!("releases.{release}.complete.json"),
        ]
    );
    // What it got is the run's `show --json` document.
    let doc: Value = serde_json::from_slice(
        &std::fs::read(inbox.join(format!("main-failures.{}.failed.json", failed_main.id)))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["id"], failed_main.id.as_str());
    assert_eq!(doc["state"], "failed");
    assert_eq!(doc["jobs"][0]["id"], "t");
    assert_eq!(doc["jobs"][0]["exit_code"], 3);
    // show says who was told.
    let notes = settled_notifications(&env, &failed_main.id);
    assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
    assert_eq!(notes[0]["position"], 1);
    assert_eq!(notes[0]["state"], "ok");
    assert_eq!(notes[0]["exit_code"], 0);
    assert_eq!(
        env.json(&["show", &failed_other.id])["notifications"],
        serde_json::json!([])
    );
}

#[test]
fn a_notifier_that_hangs_or_fails_is_recorded_and_the_worker_moves_on() {
    let env = Env::new();
    let gate = env.path().join("notifier-gate");
    env.config(&format!(
        r#"[[notify]]
command = ["sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.05; done', "{}"]
timeout = "5m"

[[notify]]
command = ["sleep", "600"]
timeout = "1s"

[[notify]]
command = ["sh", "-c", "echo first >&2; echo 'it broke' >&2; exit 7"]

[[notify]]
command = ["/nonexistent/notifier"]
"#,
        gate.display()
    ));
    let app = env.repo_with_hook("app");
    let failed = app.push_and_wait(FAIL);
    assert_eq!(failed.state, RunState::Failed);
    // Its first notifier is still waiting; the worker takes the next run.
    let next = app.push_and_wait(PASS);
    assert_eq!(next.state, RunState::Complete);
    let waiting = env.json(&["show", &failed.id])["notifications"][0].clone();
    assert_eq!(waiting["state"], "running", "{waiting}");
    std::fs::write(&gate, "").unwrap();

    let notes = settled_notifications(&env, &failed.id);
    let states: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["ok", "timed-out", "failed", "failed"], "{notes}");
    assert_eq!(notes[1]["stderr"], "killed after 1s");
    assert_eq!(notes[2]["exit_code"], 7);
    assert_eq!(notes[2]["stderr"], "it broke");
    assert!(
        notes[3]["stderr"]
            .as_str()
            .unwrap()
            .starts_with("cannot start /nonexistent/notifier"),
        "{notes}"
    );
    let shown = env.runs(&["show", &failed.id]).assert().success();
    let shown = String::from_utf8_lossy(&shown.get_output().stdout).into_owned();
    for line in [
        "notify 1: sh ok",
        "notify 2: sleep timed-out: killed after 1s",
        "notify 3: sh failed, exit 7: it broke",
        "notify 4: /nonexistent/notifier failed: cannot start /nonexistent/notifier",
    ] {
        assert!(shown.contains(line), "{line:?} not in:\n{shown}");
    }
    // The run stays as it ended.
    assert_eq!(env.wait_terminal(&failed.id).state, RunState::Failed);
    // The next run, which passed, matched none (the default is failed).
    assert_eq!(settled_notifications(&env, &next.id), serde_json::json!([]));
}

#[test]
fn a_notify_entry_with_a_mistake_is_refused_with_the_entry_named() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    for (entry, says) in [
        ("command = []", "notify entry 1: command is empty"),
        (
            r#"on = ["pending"]
command = ["true"]"#,
            "notify entry 1: \"pending\" is not a state a run ends in",
        ),
        (
            r#"refs = ["["]
command = ["true"]"#,
            "notify entry 1: \"[\" is not a glob",
        ),
        (
            r#"timeout = "soon"
command = ["true"]"#,
            "notify entry 1: timeout \"soon\" is not a span",
        ),
    ] {
        env.config(&format!(
            r#"[[notify]]
{entry}
"#
        ));
        env.run(&["announce"])
            .assert()
            .failure()
            .stderr(predicates::str::contains(says));
    }
    drop(app);
}

/// The note of `sha` in `repo`, once there is one.
fn note_of(repo: &Path, sha: &str) -> String {
    let mut note = String::new();
    wait_until(&format!("a note on {sha}"), || {
        let out = Process::new("git")
            .arg("--git-dir")
            .arg(repo)
            .args(["notes", "--ref=ci", "show", sha])
            .output()
            .unwrap();
        note = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    });
    note
}

#[test]
fn results_are_written_as_git_notes_that_a_clone_fetches_and_a_pushed_note_is_refused() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    let failed = app.push_and_wait(
        r#"[jobs.build]
inputs = ["quire/push"]
sh = "true"

[jobs.test]
inputs = ["build"]
sh = "exit 3"
"#,
    );
    assert_eq!(failed.state, RunState::Failed);
    let note = note_of(&app.bare, &failed.sha);
    let lines: Vec<&str> = note.lines().collect();
    assert!(
        lines[0].starts_with(&format!("quire: failed {} ", failed.id)),
        "{note}"
    );
    assert!(lines[1].starts_with("build complete "), "{note}");
    assert!(
        lines[2].starts_with("test failed ") && lines[2].ends_with(" exit 3"),
        "{note}"
    );
    let passed = app.push_and_wait(PASS);
    note_of(&app.bare, &passed.sha);

    // A clone sees them as the docs say.
    let clone = env.path().join("clone");
    git(
        env.path(),
        &[
            "clone",
            "--quiet",
            app.bare.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    git(
        &clone,
        &["fetch", "--quiet", "origin", "refs/notes/ci:refs/notes/ci"],
    );
    let log = git(
        &clone,
        &["log", "--notes=ci", "--format=%H%n%N", "origin/main"],
    );
    assert!(
        log.contains(&format!("quire: complete {}", passed.id)),
        "{log}"
    );
    assert!(
        log.contains(&format!("quire: failed {}", failed.id)),
        "{log}"
    );

    // Pushing notes back is refused: refs/notes/ci is quire's.
    git(
        &clone,
        &[
            "notes",
            "--ref=ci",
            "append",
            "-m",
            "looked at it",
            "origin/main",
        ],
    );
    let runs_before = env.all_runs().len();
    let out = Process::new("git")
        .current_dir(&clone)
        .args(["push", "origin", "refs/notes/ci:refs/notes/ci"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(REFUSED), "{stderr}");
    assert_eq!(env.all_runs().len(), runs_before);
}

/// What git tells a pusher of refs/notes/ci, which `install` hid from
/// pushes (receive.hideRefs).
const REFUSED: &str = "refs/notes/ci (deny updating a hidden ref)";
/// The same for a deletion.
const REFUSED_DELETE: &str = "refs/notes/ci (deny deleting a hidden ref)";

/// The id refs/notes/ci of `bare` points at, if any.
fn notes_tip(bare: &Path) -> String {
    git(
        bare,
        &["for-each-ref", "--format=%(objectname)", "refs/notes/ci"],
    )
}

#[test]
fn a_push_of_refs_notes_ci_is_refused_the_branches_pushed_with_it_land_and_quires_notes_go_on() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    let first = app.push_and_wait(PASS);
    note_of(&app.bare, &first.sha);
    let tip = notes_tip(&app.bare);
    let main = git(&app.bare, &["rev-parse", "refs/heads/main"]);

    // A pusher's forged result, on the commit quire noted.
    git(
        &app.work,
        &["fetch", "--quiet", "origin", "refs/notes/ci:refs/notes/ci"],
    );
    git(
        &app.work,
        &[
            "notes",
            "--ref=ci",
            "add",
            "-f",
            "-m",
            &format!("quire: failed {} 1s", first.id),
            &first.sha,
        ],
    );
    let next = app.commit(&[], "next");
    let runs_before = env.all_runs().len();
    // Alone, forced, and as a deletion: each refused by git, with its
    // reason, before any hook runs.
    for (refs, refused) in [
        (&["refs/notes/ci"][..], REFUSED),
        (&["+refs/notes/ci"][..], REFUSED),
        (&[":refs/notes/ci"][..], REFUSED_DELETE),
    ] {
        let (ok, stderr) = app.push(&[&["origin"], refs].concat());
        assert!(!ok, "{refs:?}: {stderr}");
        assert_eq!(stderr.matches(refused).count(), 1, "{refs:?}: {stderr}");
        assert!(quire_testkit::queued_runs(&stderr).is_empty(), "{stderr}");
        assert_eq!(notes_tip(&app.bare), tip, "{refs:?}");
        assert_eq!(git(&app.bare, &["rev-parse", "refs/heads/main"]), main);
    }
    assert!(
        note_of(&app.bare, &first.sha).starts_with(&format!("quire: complete {}", first.id)),
        "the pushed note never reached the repository"
    );
    assert_eq!(
        env.all_runs().len(),
        runs_before,
        "a refused push records no run"
    );

    // Together with a branch: the notes ref alone is refused, ref by ref;
    // the branch lands and runs, and quire's notes still appear.
    let (ok, stderr) = app.push(&["origin", "main", "refs/notes/ci"]);
    assert!(!ok, "{stderr}");
    assert_eq!(stderr.matches(REFUSED).count(), 1, "{stderr}");
    assert_eq!(git(&app.bare, &["rev-parse", "refs/heads/main"]), next);
    let runs = quire_testkit::queued_runs(&stderr);
    assert_eq!(runs.len(), 1, "{stderr}");
    let run = env.wait_terminal(&runs[0]);
    assert_eq!(
        (run.state, run.sha.as_str()),
        (RunState::Complete, next.as_str())
    );
    let note = note_of(&app.bare, &next);
    assert!(
        note.starts_with(&format!("quire: complete {} ", run.id)),
        "{note}"
    );
}

/// The id of the note on `sha` under refs/notes/ci, if there is one.
fn note_id(bare: &Path, sha: &str) -> Option<String> {
    let out = Process::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["notes", "--ref=ci", "list", sha])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Write `note` as the note of `sha` in `bare` directly, as an admin (or
/// an older quire that let pushers write it) could have; the note's id.
fn plant_note(env: &Env, bare: &Path, sha: &str, note: &[u8]) -> String {
    let file = env.path().join("planted-note");
    std::fs::write(&file, note).unwrap();
    let blob = git(bare, &["hash-object", "-w", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    git(bare, &["notes", "--ref=ci", "add", "-f", "-C", &blob, sha]);
    assert_eq!(note_id(bare, sha).as_deref(), Some(blob.as_str()));
    blob
}

#[test]
fn a_forged_note_is_replaced_by_quires_and_a_huge_one_is_replaced_unread() {
    let env = Env::new();
    let app = env.repo_with_hook("app");

    // A failed run, then a forged "complete" over quire's "failed", and a
    // line that is not quire's.
    let failed = app.push_and_wait(FAIL);
    assert_eq!(failed.state, RunState::Failed);
    note_of(&app.bare, &failed.sha);
    let forged = format!(
        "quire: complete {} 1s\nt complete 1s\n\nquire: complete 0123456789abcdef 1s\nshipped it\n",
        failed.id
    );
    let planted = plant_note(&env, &app.bare, &failed.sha, forged.as_bytes());
    // The same commit again, under another branch: its note is written
    // over the forged one.
    let again = app.push_refs(&["main:refs/heads/again"]);
    let again = env.wait_terminal(&again[0]);
    assert_eq!(
        (again.state, again.sha.as_str()),
        (RunState::Failed, failed.sha.as_str())
    );
    wait_until("the note of the second run", || {
        note_id(&app.bare, &failed.sha).is_some_and(|id| id != planted)
    });
    let note = note_of(&app.bare, &failed.sha);
    // The first run's note, as the store has it (not as forged), then the
    // second's; nothing of the forgery.
    let blocks: Vec<&str> = note.split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{note}");
    assert!(
        blocks[0].starts_with(&format!("quire: failed {} ", failed.id))
            && blocks[0].contains("\nt failed ")
            && blocks[0].ends_with(" exit 3"),
        "{note}"
    );
    assert!(
        blocks[1].starts_with(&format!("quire: failed {} ", again.id)),
        "{note}"
    );
    assert!(
        !note.contains("complete") && !note.contains("shipped"),
        "{note}"
    );

    // A 50 MB note on a commit that ran, naming its run line after line
    // (were it read, that run's note would be kept): replaced unread by
    // the next run's own note, the announcer done.
    let first = app.push_and_wait(PASS);
    let sha = first.sha.clone();
    note_of(&app.bare, &sha);
    let line = format!("quire: complete {} 1s\n", first.id);
    let huge = line.repeat(50 * 1024 * 1024 / line.len());
    let planted = plant_note(&env, &app.bare, &sha, huge.as_bytes());
    drop(huge);
    let runs = app.push_refs(&["main:refs/heads/huge"]);
    let run = env.wait_terminal(&runs[0]);
    assert_eq!(run.state, RunState::Complete);
    wait_until("quire's note over the huge one", || {
        note_id(&app.bare, &sha).is_some_and(|id| id != planted)
    });
    let note = note_of(&app.bare, &sha);
    assert!(
        note.starts_with(&format!("quire: complete {} ", run.id)),
        "{note}"
    );
    assert_eq!(note.matches("quire: ").count(), 1, "{note}");
    assert!(note.len() < 200, "{note}");
}

#[test]
fn notes_false_writes_no_note() {
    let env = Env::new();
    // A notifier as a witness: the announcer writes the note before it
    // runs the notifiers, so once this one is recorded the note would be
    // there if notes were on.
    env.config(
        r#"notes = false
[[notify]]
on = ["complete"]
command = ["true"]
"#,
    );
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(PASS);
    let notes = settled_notifications(&env, &run.id);
    assert_eq!(notes[0]["state"], "ok", "{notes}");
    let refs = git(&app.bare, &["for-each-ref", "refs/notes/"]);
    assert_eq!(refs, "");
}

#[test]
fn announcers_side_by_side_never_lose_each_others_notes() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    // 40 refs, each at a commit of its own whose pipeline is refused: the
    // hook ends every run as it records it, so all wait for an announcer.
    let mut shas = Vec::new();
    let mut refs = Vec::new();
    for n in 0..40 {
        let sha = app.commit(
            &[(
                ".quire/ci.toml",
                &format!(
                    r#"[jobs.x{n}]
sh = 1
"#
                ),
            )],
            &format!("c{n}"),
        );
        git(&app.work, &["branch", &format!("b{n}"), &sha]);
        shas.push(sha);
        refs.push(format!("b{n}"));
    }
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let (ok, stderr) = app.push(&[&["origin"], &refs[..]].concat());
    assert!(ok, "{stderr}");
    // Eight more announcers beside the one the hook started.
    let home = env.home().dir().to_path_buf();
    let announcers: Vec<_> = (0..8)
        .map(|_| {
            Process::new(assert_cmd::cargo::cargo_bin("quire-run"))
                .arg("--home")
                .arg(&home)
                .arg("announce")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut announcer in announcers {
        assert!(announcer.wait().unwrap().success());
    }
    wait_until("every run announced", || {
        env.all_runs().iter().all(|r| announced(&env, &r.id))
    });
    for sha in &shas {
        let note = note_of(&app.bare, sha);
        assert!(note.starts_with("quire: failed "), "{note}");
        assert_eq!(
            note.matches("quire: ").count(),
            1,
            "one run, one note: {note}"
        );
    }
}

#[test]
fn a_held_run_superseded_by_a_push_is_announced_as_superseded() {
    let env = Env::new();
    let inbox = env.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    env.config(&format!(
        r#"[[notify]]
on = ["superseded"]
command = {}
"#,
        recorder(&inbox, "gone")
    ));
    let gate = Gate::new(&env);
    let app = env.repo_with_hook("app");
    let held = app.push_pipeline(&gate.job("wait", "held"));
    gate.wait_ready("held");
    let next = app.push_pipeline(PASS);
    gate.open();
    assert_eq!(env.wait_terminal(&held).state, RunState::Superseded);
    assert_eq!(env.wait_terminal(&next).state, RunState::Complete);
    settled_notifications(&env, &held);
    assert_eq!(received(&inbox), [format!("gone.{held}.superseded.json")]);
}

/// The text of docs/OPERATIONS.md from the line starting with `first` to
/// the end of its code block.
fn documented(first: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/OPERATIONS.md"))
        .unwrap();
    let start = doc
        .find(first)
        .unwrap_or_else(|| panic!("{first:?} not in OPERATIONS.md"));
    let end = start + doc[start..].find("\n```").unwrap();
    doc[start..=end].to_string()
}

#[test]
fn the_documented_mail_and_webhook_notifiers_work_as_written() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    // The mail script as documented, and a sendmail that keeps what it is
    // given, first on the PATH the hook (and so the announcer) runs with.
    let bin = env.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("ci-mail");
    std::fs::write(&script, documented("#!/bin/sh\n# /usr/local/bin/ci-mail")).unwrap();
    let mailbox = env.path().join("mailbox");
    let sendmail = bin.join("sendmail");
    std::fs::write(
        &sendmail,
        format!(
            "#!/bin/sh\necho \"$@\" > {0}.args\ncat > {0}\n",
            mailbox.display()
        ),
    )
    .unwrap();
    for file in [&script, &sendmail] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The webhook entry as documented, posting to a listener here.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/ci", listener.local_addr().unwrap());
    let webhook = documented(
        r#"[[notify]]
on = ["failed", "complete"]"#,
    )
    .replace("https://chat.example.com/hooks/ci", &url);
    env.config(&format!(
        r#"[[notify]]
command = ["{}", "ops@example.com"]

{webhook}"#,
        script.display()
    ));
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = n.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        (head, body)
    });
    let mut app = env.repo_with_hook("app");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    app.vars.push(("PATH".into(), path));
    let run = app.push_and_wait(FAIL);
    let notes = settled_notifications(&env, &run.id);
    assert_eq!(notes[0]["state"], "ok", "{notes}");
    assert_eq!(notes[1]["state"], "ok", "{notes}");

    let mail = std::fs::read_to_string(&mailbox).unwrap();
    assert_eq!(
        std::fs::read_to_string(mailbox.with_extension("args"))
            .unwrap()
            .trim(),
        "-t"
    );
    assert!(mail.starts_with("To: ops@example.com\n"), "{mail}");
    assert!(
        mail.contains("Subject: quire: failed app.git refs/heads/main\n"),
        "{mail}"
    );
    let json_start = mail.find('{').unwrap();
    let doc: Value = serde_json::from_str(&mail[json_start..]).unwrap();
    assert_eq!(doc["id"], run.id.as_str());

    let (head, body) = server.join().unwrap();
    assert!(head[0].starts_with("POST /hooks/ci "), "{head:?}");
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["id"], run.id.as_str());
    assert_eq!(doc["state"], "failed");
}

/// A burst of short runs on one worker, whose announcers take them side
/// by side: every run is announced exactly once, the last ones too.
/// `count` branches of one commit pushed at once to a repository `app`,
/// each run complete: their runs, in the order pushed.
fn push_burst(env: &Env, count: usize) -> Vec<String> {
    let app = env.repo_with_hook("app");
    app.commit(&[(".quire/ci.toml", PASS)], "pipeline");
    let branches: Vec<String> = (0..count).map(|i| format!("b{i}")).collect();
    for branch in &branches {
        git(&app.work, &["branch", branch]);
    }
    let refs: Vec<&str> = branches.iter().map(String::as_str).collect();
    let runs = app.push_refs(&refs);
    assert_eq!(runs.len(), count);
    for run in &runs {
        assert_eq!(env.wait_terminal(run).state, RunState::Complete);
    }
    runs
}

#[test]
fn every_run_of_a_burst_on_one_worker_is_announced_once() {
    let env = Env::new();
    let inbox = env.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    env.config(&format!(
        "max_workers = 1\n\n[[notify]]\non = [\"complete\"]\ncommand = {}\n",
        recorder(&inbox, "all")
    ));
    let runs = push_burst(&env, 24);
    for run in &runs {
        settled_notifications(&env, run);
    }
    let mut expected: Vec<String> = runs
        .iter()
        .map(|run| format!("all.{run}.complete.json"))
        .collect();
    expected.sort();
    assert_eq!(received(&inbox), expected);
}

/// With a `[[notify]]` entry, an announcer takes one run at a time: a
/// notifier that hangs holds up only its own run, and the runs waiting
/// behind it go to the next announcer. Here one push supersedes two
/// queued runs at once and the hook starts one announcer; the first run's
/// notifier hangs, and the announcer `reconcile` starts notifies the
/// second meanwhile. (Taken together, the second waited behind the
/// first's notifier, and reconcile's announcer found nothing.)
#[test]
fn a_hanging_notifier_holds_up_no_other_runs_notifiers() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let inbox = env.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let release = env.path().join("release");
    // b0's notifier waits for the test (at most a minute); b1's returns.
    env.config(&format!(
        "max_workers = 1\n\n[[notify]]\non = [\"superseded\"]\ncommand = [\"sh\", \"-c\", 'cat > \"$0/$QUIRE_BRANCH\"; if [ \"$QUIRE_BRANCH\" = b0 ]; then i=0; while [ ! -e \"$1\" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; fi', \"{}\", \"{}\"]\ntimeout = \"2m\"\n",
        inbox.display(),
        release.display()
    ));
    let app = env.repo_with_hook("app");
    // The one worker waits at the gate with main's run: b0's and b1's
    // stay queued.
    app.push_pipeline(&gate.job("t", "busy"));
    gate.wait_ready("busy");
    git(&app.work, &["branch", "b0"]);
    git(&app.work, &["branch", "b1"]);
    let first = app.push_refs(&["b0", "b1"]);
    assert_eq!(first.len(), 2);
    // One push moves both: their queued runs are superseded together.
    git(&app.work, &["checkout", "-q", "b0"]);
    app.commit(&[("f", "b0")], "b0 again");
    git(&app.work, &["checkout", "-q", "b1"]);
    app.commit(&[("f", "b1")], "b1 again");
    app.push_refs(&["b0", "b1"]);
    let of = |branch: &str| -> String {
        first
            .iter()
            .find(|id| {
                env.store().resolve_run(id).unwrap().ref_name == format!("refs/heads/{branch}")
            })
            .unwrap()
            .clone()
    };
    let (held, other) = (of("b0"), of("b1"));
    // Taken in this order, longest waiting first: were b1 taken first, its
    // notifier would end before b0's hung whether or not the two were
    // taken together, and this test would show nothing.
    let taken_at = |id: &str| {
        let run = env.json(&["show", id]);
        (run["finished_at_ms"].as_i64().unwrap(), id.to_string())
    };
    assert!(
        taken_at(&held) < taken_at(&other),
        "b1's run is taken first"
    );
    wait_until("b0's notifier to start", || inbox.join("b0").exists());
    env.stdout(&["reconcile"]);
    // b1's notifier ran to its end while b0's still waits.
    let notified = settled_notifications(&env, &other);
    assert_eq!(notified[0]["state"], "ok", "{notified}");
    assert_eq!(
        env.json(&["show", &held])["notifications"][0]["state"],
        "running"
    );
    std::fs::write(&release, "").unwrap();
    assert_eq!(settled_notifications(&env, &held)[0]["state"], "ok");
    gate.open();
}

/// [`push_burst`] of `count` runs of one commit on one worker, until every
/// run is announced: the runs, and their commit's note.
fn burst_on_one_worker(env: &Env, count: usize) -> (Vec<String>, String) {
    env.config("max_workers = 1\n");
    let runs = push_burst(env, count);
    for run in &runs {
        wait_until(&format!("{run} announced"), || announced(env, run));
    }
    let sha = env.store().resolve_run(&runs[0]).unwrap().sha;
    let note = note_of(&env.path().join("app.git"), &sha);
    (runs, note)
}

/// With no `[[notify]]` entry, a worker writes its runs' notes itself (no
/// announcer process per run). While runs are still queued it lets the
/// ended ones wait (at most a second), so a burst is announced in a few
/// batches, each batch's notes in one commit, not a commit a run; once
/// nothing is left to take, every run of the burst is in its commit's
/// note. (Before the batches, 16 runs made 16 commits.)
#[test]
fn without_notifiers_a_worker_notes_a_burst_in_a_few_commits() {
    let env = Env::new();
    let (runs, note) = burst_on_one_worker(&env, 16);
    let bare = env.path().join("app.git");
    for run in &runs {
        assert!(
            note.contains(&format!("quire: complete {run} ")),
            "{run} is not in the note:\n{note}"
        );
    }
    let commits: usize = git(&bare, &["rev-list", "--count", "refs/notes/ci"])
        .trim()
        .parse()
        .unwrap();
    // Two in the bench's 200 runs; here a batch at most every second the
    // burst lasts, and never one commit for two runs or fewer.
    assert!(
        commits * 2 <= runs.len(),
        "{commits} notes commits for {} runs",
        runs.len()
    );
}

/// A run a worker ended while another was queued is announced about a
/// second later even when the worker's next run takes far longer (here,
/// until the test opens a gate): a timer announces it, not the end of
/// the next run.
#[test]
fn a_run_that_ended_before_a_long_one_is_noted_while_the_long_one_runs() {
    let env = Env::new();
    env.config("max_workers = 1\n");
    let gate = Gate::new(&env);
    let app = env.repo_with_hook("app");
    let step = format!(
        "if [ \"$QUIRE_BRANCH\" = b-slow ]; then {}; fi",
        gate.step("slow")
    );
    app.commit(
        &[(
            ".quire/ci.toml",
            &format!("[jobs.t]\ninputs = [\"quire/push\"]\nsh = {step:?}\n"),
        )],
        "pipeline",
    );
    git(&app.work, &["branch", "a-quick"]);
    git(&app.work, &["branch", "b-slow"]);
    let runs = app.push_refs(&["a-quick", "b-slow"]);
    let of = |branch: &str| {
        runs.iter()
            .find(|id| {
                env.store().resolve_run(id).unwrap().ref_name == format!("refs/heads/{branch}")
            })
            .unwrap()
            .clone()
    };
    let (quick, slow) = (of("a-quick"), of("b-slow"));
    // The one worker took the quick run first (queued first), then the
    // slow one, which waits at the gate.
    gate.wait_ready("slow");
    assert_eq!(
        env.store().resolve_run(&quick).unwrap().state,
        RunState::Complete,
        "the quick run ran first"
    );
    wait_until(&format!("{quick} announced"), || announced(&env, &quick));
    assert_eq!(
        env.store().resolve_run(&slow).unwrap().state,
        RunState::Active
    );
    let sha = env.store().resolve_run(&quick).unwrap().sha;
    assert!(note_of(&app.bare, &sha).contains(&format!("quire: complete {quick} ")));
    gate.open();
    assert_eq!(env.wait_terminal(&slow).state, RunState::Complete);
}

/// A note names at most the newest 100 runs of its commit: the oldest
/// are dropped first, never the newest (a burst of 120 runs of one
/// commit leaves the last 100).
#[test]
fn a_note_keeps_the_newest_hundred_runs_of_its_commit() {
    let env = Env::new();
    let (runs, note) = burst_on_one_worker(&env, 120);
    let named: Vec<&str> = note
        .lines()
        .filter_map(|line| line.strip_prefix("quire: "))
        .filter_map(|rest| rest.split(' ').nth(1))
        .collect();
    // The newest 100, in the order they ended (the one worker ran them
    // in the order they were queued).
    let mut by_end = runs.clone();
    by_end.sort_by_key(|run| env.store().resolve_run(run).unwrap().finished_at_ms);
    assert_eq!(
        named,
        by_end[20..].iter().map(String::as_str).collect::<Vec<_>>()
    );
}

/// The repository's own `core.notesRef` never chooses where quire writes:
/// an invalid one (which made every note fail) leaves quire's notes
/// under refs/notes/ci, and a valid one elsewhere does not move them.
#[test]
fn the_repositorys_core_notes_ref_never_moves_quires_notes() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    git(&app.bare, &["config", "core.notesRef", "not a ref"]);
    let run = app.push_and_wait(PASS);
    assert!(note_of(&app.bare, &run.sha).contains(&run.id));
    git(
        &app.bare,
        &["config", "core.notesRef", "refs/notes/elsewhere"],
    );
    app.commit(&[("README", "again\n")], "again");
    let runs = app.push_refs(&["main"]);
    let again = env.wait_terminal(&runs[0]);
    assert!(note_of(&app.bare, &again.sha).contains(&again.id));
}
