//! What steps see, as the admin decides it (config.toml's `[steps]`,
//! docs/OPERATIONS.md): a tool in a directory the sandbox hides runs once
//! `[steps] read` opens it; PATH comes from `[steps] env` or a fixed
//! default, never from whoever pushed; a step a shell could not run gets
//! one line saying the sandbox may be why, and which keys open it.

use quire_store::RunState;

use quire_testkit::{Env, Repo};

/// A PATH no step may see: the pusher's, with a directory of its own first.
const PUSHERS_DIR: &str = "/quire-pushers-own-bin-5e21";

/// The line a confined step that exits 126 gets.
const HINT_126: &str = "quire: exit 126 (cannot execute) may be the sandbox: steps can neither \
                        read nor run anything in quire's home, the repositories or the CI user's \
                        home";

/// `bin/tool` in the work tree: the pushes', and so the worker's, HOME,
/// which the sandbox hides from steps.
fn plant_tool(app: &Repo) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tool = app.work.join("bin/tool");
    std::fs::create_dir_all(tool.parent().unwrap()).unwrap();
    std::fs::write(&tool, "#!/bin/sh\necho TOOL RAN\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    tool
}

#[test]
fn a_tool_in_a_hidden_directory_runs_once_steps_read_lists_it() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    let tool = plant_tool(&app);
    let pipeline = format!(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = {:?}
"#,
        format!("{} --version", tool.display())
    );
    env.config("sandbox = \"required\"\n");
    let hidden = app.push_and_wait(&pipeline);
    assert_eq!(hidden.state, RunState::Failed, "{hidden:?}");
    let text = env.step_log(&hidden.id, "t", 1);
    assert!(!text.contains("TOOL RAN"), "{text}");
    assert!(text.contains(HINT_126), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(HINT_126) && l.contains(&app.work.display().to_string()))
            && text.contains(
                "an admin can open a directory to steps with [steps] read and set their PATH \
                 with [steps] env.PATH in config.toml (docs/OPERATIONS.md)"
            ),
        "the hint names the hidden home and the keys: {text}"
    );
    assert_eq!(text.matches("quire: exit").count(), 1, "one line: {text}");

    env.config(&format!(
        r#"sandbox = "required"
[steps]
read = [{:?}]
"#,
        tool.parent().unwrap().display().to_string()
    ));
    let opened = app.push_and_wait(&pipeline);
    let text = env.step_log(&opened.id, "t", 1);
    assert_eq!(opened.state, RunState::Complete, "{text}");
    assert!(text.contains("TOOL RAN"), "{text}");
    assert!(!text.contains("quire: exit"), "{text}");
}

#[test]
fn a_steps_read_directory_that_does_not_exist_is_named_in_the_log() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    env.config(
        r#"sandbox = "required"
[steps]
read = ["/opt/quire-no-such-toolchain"]
"#,
    );
    let run = app.push_and_wait(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    let text = env.step_log(&run.id, "t", 1);
    assert_eq!(run.state, RunState::Complete, "{text}");
    assert!(
        text.contains(
            "quire: sandbox: [steps] read names /opt/quire-no-such-toolchain, which does not \
             exist on this machine; steps are not given it (config.toml)"
        ),
        "{text}"
    );
}

#[test]
fn steps_read_may_not_open_a_repository_quire_knows_or_a_whole_home() {
    let env = Env::new();
    let other = env.repo_with_hook("other");
    let app = env.repo_with_hook("app");
    // The other repository is known once it has a run.
    other.push_and_wait(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    let hooks = std::fs::canonicalize(other.bare.join("hooks")).unwrap();
    env.config(&format!(
        "[steps]\nread = [{:?}]\n",
        hooks.display().to_string()
    ));
    let run = app.push_and_wait(&format!(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = {:?}
"#,
        format!("cat {}/post-receive && echo BREACHED", hooks.display())
    ));
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    let detail = run.failure_detail.unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "[steps] read: {} would open a repository ({}) to steps; name a directory that \
             neither holds nor lies in it (config.toml)",
            hooks.display(),
            hooks.parent().unwrap().display()
        )),
        "{detail}"
    );
    assert!(!env.step_log(&run.id, "t", 1).contains("BREACHED"));

    // A directory in the CI user's home, yes; the whole of it (its
    // ~/.ssh), no. The pushes', and so the worker's, HOME is the work tree.
    env.config(&format!(
        "[steps]\nread = [{:?}]\n",
        app.work.display().to_string()
    ));
    let run = app.push_and_wait(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    let detail = run.failure_detail.unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "[steps] read: {0} would open the whole home of a user ({0}) to steps, its keys \
             included; name the toolchains' directories in it, such as {0}/.rustup \
             (config.toml)",
            app.work.display()
        )),
        "{detail}"
    );
}

#[test]
fn path_comes_from_steps_env_or_a_fixed_default_never_from_the_pusher() {
    let env = Env::new();
    let mut app = env.repo_with_hook("app");
    let path = std::env::var("PATH").unwrap_or_default();
    app.vars
        .push(("PATH".into(), format!("{PUSHERS_DIR}:{path}")));
    let pipeline = r#"[env]
OVERRIDDEN = "by the pipeline"

[jobs.t]
inputs = ["quire/push"]
sh = "echo \"PATH=$PATH\"; echo \"TOOL_HOME=$TOOL_HOME\"; echo \"OVERRIDDEN=$OVERRIDDEN\""
"#;

    env.config("");
    let run = app.push_and_wait(pipeline);
    let text = env.step_log(&run.id, "t", 1);
    assert_eq!(run.state, RunState::Complete, "{text}");
    assert!(
        text.contains(
            "stdout F PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin\n"
        ),
        "the fixed default: {text}"
    );
    assert!(!text.contains(PUSHERS_DIR), "{text}");

    env.config(
        r#"[steps]
env = { PATH = "/opt/quire-rust/bin:/usr/bin:/bin", TOOL_HOME = "/opt/quire-rust", OVERRIDDEN = "by the admin" }
"#,
    );
    let run = app.push_and_wait(pipeline);
    let text = env.step_log(&run.id, "t", 1);
    assert_eq!(run.state, RunState::Complete, "{text}");
    assert!(
        text.contains("stdout F PATH=/opt/quire-rust/bin:/usr/bin:/bin\n"),
        "[steps] env.PATH: {text}"
    );
    assert!(
        text.contains("stdout F TOOL_HOME=/opt/quire-rust\n"),
        "{text}"
    );
    assert!(
        text.contains("stdout F OVERRIDDEN=by the pipeline\n"),
        "the pipeline's env comes after the admin's: {text}"
    );
    assert!(!text.contains(PUSHERS_DIR), "{text}");
}

#[test]
fn only_a_step_a_shell_could_not_run_gets_the_sandbox_line() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    env.config("sandbox = \"required\"\n");
    let quire_home = env.home().dir().display().to_string();
    let run = app.push_and_wait(&format!(
        r#"[jobs.hidden]
inputs = ["quire/push"]
allow_failure = true
sh = {:?}

[jobs.missing]
inputs = ["quire/push"]
allow_failure = true
sh = "quire-no-such-command-3b9"

[jobs.failing]
inputs = ["quire/push"]
allow_failure = true
sh = "echo ran; exit 3"

[jobs.tests]
inputs = ["quire/push"]
allow_failure = true
sh = "echo 'test foo ... FAILED: Permission denied'; exit 101"
"#,
        format!("{quire_home}/quire.db")
    ));
    assert!(run.state.is_terminal(), "{run:?}");
    let hidden = env.step_log(&run.id, "hidden", 1);
    assert!(hidden.contains(HINT_126), "{hidden}");
    let missing = env.step_log(&run.id, "missing", 1);
    assert!(
        missing.contains("quire: exit 127 (not found) may be the sandbox:"),
        "{missing}"
    );
    for job in ["failing", "tests"] {
        let text = env.step_log(&run.id, job, 1);
        assert!(text.contains(" F "), "{job} ran: {text}");
        assert!(!text.contains("quire: exit"), "{job}: {text}");
    }
    // Without the sandbox, nothing was hidden: no line.
    env.config("sandbox = \"off\"\n");
    let run = app.push_and_wait(
        r#"[jobs.missing]
inputs = ["quire/push"]
sh = "quire-no-such-command-3b9"
"#,
    );
    let text = env.step_log(&run.id, "missing", 1);
    assert_eq!(run.state, RunState::Failed, "{text}");
    assert!(!text.contains("quire: exit"), "{text}");
}

/// A step whose shell's error line (stderr) comes before what it prints
/// next (stdout).
const ERROR_THEN_RC: &str = "echo x > /nonexistent/dir/f; echo rc=$?";

#[test]
fn a_steps_stdout_and_stderr_share_one_pipe_so_its_log_keeps_their_order() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    // Confined steps start through quire's own spawn; without the sandbox
    // (and without cgroups or a network namespace, where there are none),
    // through std's: one pipe either way.
    for config in ["", "sandbox = \"off\"\n"] {
        env.config(config);
        one_pipe_keeps_the_order(&env, &app);
    }
}

fn one_pipe_keeps_the_order(env: &Env, app: &Repo) {
    let run = app.push_and_wait(&format!(
        r#"[jobs.one]
inputs = ["quire/push"]
sh = [{ERROR_THEN_RC:?}, {ERROR_THEN_RC:?}, {ERROR_THEN_RC:?}]

[jobs.two]
inputs = ["quire/push"]
separate_stderr = true
sh = [{ERROR_THEN_RC:?}]
"#
    ));
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    for seq in 1..=3 {
        let log = env.step_log(&run.id, "one", seq);
        let lines: Vec<&str> = log.lines().collect();
        let error = lines.iter().position(|l| l.contains("/nonexistent/dir/f"));
        let rc = lines.iter().position(|l| l.ends_with(" rc=2"));
        assert!(
            matches!((error, rc), (Some(e), Some(r)) if e < r),
            "the shell's error before rc=2, as written: {log}"
        );
        // One stream, logged as stdout (the CRI format names one per line).
        assert!(lines.iter().all(|l| l.contains(" stdout ")), "{log}");
    }
    // Asked for, a pipe each: the error line is stderr's.
    let log = env.step_log(&run.id, "two", 1);
    let error = log
        .lines()
        .find(|l| l.contains("/nonexistent/dir/f"))
        .unwrap();
    assert!(error.contains(" stderr "), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(" stdout ") && l.ends_with(" rc=2")),
        "{log}"
    );
    // What `logs` prints keeps the order too.
    let printed = env.logs(&run.id, "one");
    let error = printed.find("/nonexistent/dir/f").unwrap();
    assert!(error < printed.find("rc=2").unwrap(), "{printed}");
}
