//! What quire-runs prints on a real terminal (`script` gives it one, its
//! width set by `stty`): every line fits the terminal's width, cut with
//! `…` rather than wrapped; a job whose failure the pipeline allowed says
//! so wherever its state is shown.

use std::process::{Command, Stdio};

use quire_testkit::{Env, Repo};

/// A branch name longer than a narrow terminal.
const LONG_BRANCH: &str =
    "feature/a-rather-long-branch-name-that-goes-on-and-on-for-quite-a-while-longer";

/// Several jobs with long ids and long commands: one completes, one fails
/// (allowed), one is skipped.
const PIPELINE: &str = r#"[jobs.build]
inputs = ["quire/push"]
sh = ["echo this is a long command line that goes well beyond what eighty columns can hold on one line", "true"]

[jobs.integration-tests-against-the-staging-database]
inputs = ["build"]
sh = "echo another long command, with words enough to need cutting at the edge of a narrow terminal"

[jobs.lint]
inputs = ["quire/push"]
allow_failure = true
sh = "echo linting everything there is to lint in this repository; exit 2"

[jobs.release]
inputs = ["build"]
when = { tags = ["v*"] }
sh = "echo release"
"#;

/// Push [`PIPELINE`] to [`LONG_BRANCH`] and wait for its run; its id.
fn long_run(env: &Env) -> (Repo, String) {
    let app = env.repo_with_hook("app");
    app.commit(
        &[(".quire/ci.toml", PIPELINE)],
        "A commit subject long enough that the list must cut it somewhere",
    );
    let runs = app.push_refs(&[&format!("HEAD:refs/heads/{LONG_BRANCH}")]);
    assert_eq!(runs.len(), 1, "{runs:?}");
    env.wait_terminal(&runs[0]);
    (app, runs[0].clone())
}

/// Whether `script` (util-linux) can give a command a terminal here.
fn have_script() -> bool {
    let found = quire_testkit::program_runs("script", &["--version"]);
    quire_testkit::require("script (a terminal)", "apt-get install bsdutils", found)
}

/// `quire-runs --home HOME ARGS` on a terminal `cols` columns wide; what
/// it printed, as the terminal got it.
pub(crate) fn on_terminal(env: &Env, cols: u16, args: &[&str]) -> String {
    let quoted = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let bin = assert_cmd::cargo::cargo_bin("quire-runs");
    let mut line = format!(
        "stty cols {cols} rows 50 && exec {} --home {}",
        quoted(&bin.to_string_lossy()),
        quoted(&env.home().dir().to_string_lossy())
    );
    for arg in args {
        line.push(' ');
        line.push_str(&quoted(arg));
    }
    let out = Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        .env_remove("QUIRE_HOME")
        .env_remove("QUIRE_NOW")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

/// The lines a terminal shows of `text`: escape sequences (colors, cursor
/// moves, erases) and carriage returns taken out.
pub(crate) fn shown_lines(text: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next_if_eq(&'[').is_some() {
                    // Parameters, then the final byte (a letter, `@`..`~`).
                    for p in chars.by_ref() {
                        if ('@'..='~').contains(&p) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => plain.push(c),
        }
    }
    plain.lines().map(str::to_string).collect()
}

/// No line is wider than `cols` characters.
fn assert_fits(what: &str, text: &str, cols: usize) {
    let lines = shown_lines(text);
    assert!(lines.len() >= 2, "{what}: {text:?}");
    for line in &lines {
        assert!(
            line.chars().count() <= cols,
            "{what}: a line of {} columns:\n{line}\nin:\n{}",
            line.chars().count(),
            lines.join("\n")
        );
    }
}

#[test]
fn show_list_watch_and_repos_fit_an_80_column_terminal() {
    if !have_script() {
        return;
    }
    let env = Env::new();
    let (_app, id) = long_run(&env);
    // Without a terminal, lines are as long as what they say.
    let piped = env.stdout(&["show", &id]);
    assert!(
        piped.lines().any(|l| l.chars().count() > 100),
        "the run is one to cut: {piped}"
    );
    assert!(piped.contains(LONG_BRANCH), "{piped}");

    for args in [
        vec!["show", id.as_str()],
        vec!["list"],
        vec!["watch", id.as_str()],
        vec!["repos"],
    ] {
        let text = on_terminal(&env, 80, &args);
        assert_fits(&args.join(" "), &text, 80);
        if args[0] != "repos" {
            // Cut, not wrapped: the end of the branch name is gone, its
            // start is there, ending in `…`.
            let lines = shown_lines(&text);
            assert!(
                lines.iter().any(|l| l.contains("feature/a")),
                "{args:?}: {lines:#?}"
            );
            assert!(!text.contains("quite-a-while-longer"), "{args:?}: {text}");
        }
    }
    let show = shown_lines(&on_terminal(&env, 80, &["show", &id]));
    assert!(
        show.iter()
            .any(|l| l.starts_with("integration-tests") && l.contains('…')),
        "a long job id is cut, its row kept whole: {show:#?}"
    );
    assert!(
        show.iter()
            .any(|l| l.starts_with("lint") && l.contains("failed (allowed)")),
        "{show:#?}"
    );
    let watch = on_terminal(&env, 80, &["watch", &id]);
    assert!(
        watch.contains("\x1b[35mfailed (allowed)\x1b[0m"),
        "watch says an allowed failure is one, in magenta: {watch:?}"
    );
    // Narrower still: columns go, none wraps.
    for args in [vec!["show", id.as_str()], vec!["list"], vec!["repos"]] {
        assert_fits(&args.join(" "), &on_terminal(&env, 50, &args), 50);
    }
    // The columns docs/CLI.md says go: SHA below 110, DURATION and
    // SUBJECT below 70; RUN, REF and STATE stay.
    let head = |cols: u16| {
        shown_lines(&on_terminal(&env, cols, &["list"]))
            .into_iter()
            .find(|l| l.starts_with("RUN"))
            .unwrap_or_default()
    };
    let wide = head(120);
    for column in ["SHA", "DURATION", "SUBJECT"] {
        assert!(wide.contains(column), "{column} at 120: {wide}");
    }
    let eighty = head(80);
    assert!(
        !eighty.contains("SHA") && eighty.contains("SUBJECT"),
        "{eighty}"
    );
    let fifty = head(50);
    assert!(
        !fifty.contains("DURATION") && !fifty.contains("SUBJECT") && fifty.contains("STATE"),
        "{fifty}"
    );
    // COLUMNS, where there is no terminal to ask.
    let narrow = quire_testkit::stdout(env.runs(&["list"]).env("COLUMNS", "60"));
    assert_fits("COLUMNS=60 list", &narrow, 60);
}

#[test]
fn ci_wait_says_a_failure_the_pipeline_allows_is_allowed() {
    let env = Env::new();
    let app = env.repo_with_hook("app");
    app.commit(&[(".quire/ci.toml", PIPELINE)], "pipeline");
    let (ok, stderr) = app.push(&["-o", "ci.wait", "origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("remote: quire: job lint failed (allowed) in "),
        "{stderr}"
    );
    assert!(
        stderr.contains("remote: quire: job build complete in "),
        "{stderr}"
    );
}
