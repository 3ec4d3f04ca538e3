//! The generated files in completions/, docs/man/ and
//! docs/cli-reference.md are what the binaries' clap definitions generate
//! today (quire_testkit::generated). After changing the CLI:
//! `QUIRE_BLESS=1 cargo test --test integration generated`.

use std::path::Path;

use clap_complete::Shell;
use quire_testkit::generated::{assert_committed, assert_generated, assert_no_longer_generated};

#[test]
fn generated_completions_and_man_pages_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, command) in [
        ("quire-run", quire_cli::run::command()),
        ("quire-runs", quire_cli::runs::command()),
    ] {
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let script = quire_cli::manual::completion(shell, command.clone());
            assert_generated(&root.join("completions").join(file), &script);
        }
        let pages = quire_cli::manual::man_pages(command.clone());
        assert!(pages.len() > 10, "{name}: a page per command");
        for (file, page) in &pages {
            assert_generated(&root.join("docs/man").join(file), page);
        }
        // No page is left of a command that is gone.
        for entry in std::fs::read_dir(root.join("docs/man")).unwrap() {
            let file = entry.unwrap().file_name().into_string().unwrap();
            let of_this = file == format!("{name}.1") || file.starts_with(&format!("{name}-"));
            if of_this && !pages.iter().any(|(f, _)| *f == file) {
                assert_no_longer_generated(&root.join("docs/man").join(&file));
            }
        }
    }
}

#[test]
fn generated_cli_reference_is_current_and_every_link_to_it_lands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference =
        quire_cli::manual::reference(&[quire_cli::run::command(), quire_cli::runs::command()]);
    for (bin, command) in [
        ("quire-run", quire_cli::run::command()),
        ("quire-runs", quire_cli::runs::command()),
    ] {
        assert!(reference.contains(&format!("\n## `{bin}`\n")), "{bin}");
        // A hidden command (`quire-run node`, run by a cluster for the
        // worker) is not for people: the reference leaves it out.
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let heading = format!("\n### `{bin} {}`\n", sub.get_name());
            assert!(reference.contains(&heading), "{heading}");
            for arg in sub.get_arguments().filter_map(|a| a.get_long()) {
                assert!(
                    reference.contains(&format!("`--{arg}")),
                    "{bin} {heading} --{arg}"
                );
            }
        }
    }
    quire_testkit::assert_generated(&root.join("docs/cli-reference.md"), reference.as_bytes());
    // Each heading's anchor, as GitHub makes it: lower case, spaces as
    // hyphens, other punctuation dropped.
    let anchors: Vec<String> = reference
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| {
            h.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect();
    // Every link into it, from the docs and from itself, names a heading.
    let name = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    };
    let mut links: Vec<(&str, String)> = Vec::new();
    for doc in ["docs/CLI.md", "README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for (at, link) in text.match_indices("cli-reference.md#") {
            links.push((doc, name(&text[at + link.len()..])));
        }
    }
    for (at, link) in reference.match_indices("](#") {
        links.push(("docs/cli-reference.md", name(&reference[at + link.len()..])));
    }
    for (doc, anchor) in links {
        assert!(
            anchors.contains(&anchor),
            "{doc} links to cli-reference.md#{anchor}"
        );
    }
}

#[test]
fn both_binaries_print_the_committed_completions_and_man_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (bin, subcommand) in [("quire-run", "install"), ("quire-runs", "reconcile")] {
        for (shell, file) in [
            ("bash", format!("{bin}.bash")),
            ("zsh", format!("_{bin}")),
            ("fish", format!("{bin}.fish")),
        ] {
            let out = assert_cmd::Command::cargo_bin(bin)
                .unwrap()
                .args(["completions", shell])
                .assert()
                .success();
            let printed = out.get_output().stdout.clone();
            assert!(String::from_utf8_lossy(&printed).contains(subcommand));
            let what = format!("{bin} completions {shell}");
            assert_committed(&root.join("completions").join(file), &printed, &what);
        }
        for (args, file) in [
            (vec!["man"], format!("{bin}.1")),
            (vec!["man", subcommand], format!("{bin}-{subcommand}.1")),
        ] {
            let out = assert_cmd::Command::cargo_bin(bin)
                .unwrap()
                .args(&args)
                .assert()
                .success();
            let page = out.get_output().stdout.clone();
            let what = format!("{bin} {args:?}");
            assert_committed(&root.join("docs/man").join(&file), &page, &what);
        }
    }
}

/// The sections every page has, beyond what clap_mangen writes.
const SECTIONS: &[&str] = &[
    ".SH NAME",
    ".SH SYNOPSIS",
    ".SH DESCRIPTION",
    ".SH OPTIONS",
    ".SH \"EXIT STATUS\"",
    ".SH ENVIRONMENT",
    ".SH FILES",
    ".SH EXAMPLES",
    ".SH \"SEE ALSO\"",
];

#[test]
fn every_command_has_a_full_man_page_and_the_pages_named_exist() {
    let dir = tempfile::tempdir().unwrap();
    for bin in ["quire-run", "quire-runs"] {
        assert_cmd::Command::cargo_bin(bin)
            .unwrap()
            .args(["man", "--dir"])
            .arg(dir.path())
            .assert()
            .success()
            .stdout(predicates::str::contains(format!(
                "manual pages of {bin} into"
            )));
    }
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    for must in [
        "quire-run.1",
        "quire-run-install.1",
        "quire-run-trigger.1",
        "quire-run-migrate-from.1",
        "quire-runs.1",
        "quire-runs-list.1",
        "quire-runs-reconcile.1",
        "quire-runs-man.1",
    ] {
        assert!(files.contains(&must.to_string()), "{must}: {files:?}");
    }
    // Without groff the pages are still checked, but not typeset.
    let groff = quire_testkit::require(
        "groff",
        "apt-get install groff-base",
        quire_testkit::program_runs("groff", &["-v"]),
    );
    for file in &files {
        let page = std::fs::read_to_string(dir.path().join(file)).unwrap();
        for section in SECTIONS {
            assert!(page.contains(section), "{file} lacks {section}");
        }
        for var in [
            "QUIRE_HOME",
            "XDG_DATA_HOME",
            "QUIRE_BUSY_TIMEOUT_MS",
            "QUIRE_CONTAINMENT",
        ] {
            assert!(page.contains(var), "{file} lacks {var}");
        }
        // Every page it names, of quire's, exists (roff writes a hyphen
        // as `\-`).
        let plain = page.replace("\\-", "-");
        let mut named = 0;
        for word in plain.split(|c: char| c.is_whitespace() || c == ',') {
            if let Some(name) = word.strip_suffix("(1)")
                && name.starts_with("quire-run")
            {
                named += 1;
                assert!(
                    files.contains(&format!("{name}.1")),
                    "{file} names {name}(1)"
                );
            }
        }
        assert!(named >= 2, "{file} names its fellow pages");
        assert!(
            !plain.contains("docs/"),
            "{file} points at docs/, which an installed quire lacks"
        );
        if groff {
            // Typeset as man would, with every warning on: none.
            let out = std::process::Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(dir.path().join(file))
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{file}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert_cmd::Command::cargo_bin("quire-runs")
        .unwrap()
        .args(["man", "nope"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "quire-runs has no command \"nope\"",
        ));
}

#[test]
fn long_help_stands_alone_with_exit_statuses_and_an_example() {
    for (bin, command) in quire_cli::run::command()
        .get_subcommands()
        .map(|c| ("quire-run", c.get_name().to_string()))
        .chain(
            quire_cli::runs::command()
                .get_subcommands()
                .map(|c| ("quire-runs", c.get_name().to_string())),
        )
        .filter(|(_, c)| c != "help")
        .chain([("quire-run", String::new()), ("quire-runs", String::new())])
    {
        let mut args = vec![];
        if !command.is_empty() {
            args.push(command.as_str());
        }
        args.push("--help");
        let out = assert_cmd::Command::cargo_bin(bin)
            .unwrap()
            .args(&args)
            .assert()
            .success();
        let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(
            help.contains("Exit status:\n  0  "),
            "{bin} {command}: {help}"
        );
        assert!(
            help.contains("\n  2  a usage error"),
            "{bin} {command}: {help}"
        );
        assert!(help.contains("Examples:\n  "), "{bin} {command}: {help}");
        assert!(!help.contains("docs/"), "{bin} {command}: {help}");
        // The long description comes before the usage line.
        let usage = help.find("Usage:").unwrap();
        assert!(usage > 80, "{bin} {command} says what it does: {help}");
    }
}

/// What each binary's completion must offer, in every shell: a command line
/// (completed at its end) and candidates among those offered.
const CASES: &[(&str, &[&str])] = &[
    (
        "quire-runs ",
        &["list", "show", "watch", "reconcile", "completions", "man"],
    ),
    ("quire-runs list --st", &["--state"]),
    ("quire-runs show --", &["--json", "--exit-status", "--home"]),
    ("quire-runs --home /srv/quire list --li", &["--limit"]),
    ("quire-runs logs --stream ", &["stdout", "stderr"]),
    ("quire-runs reconcile --", &["--dry-run", "--json"]),
    (
        "quire-run ",
        &["install", "trigger", "demo", "completions", "man"],
    ),
    ("quire-run install --", &["--all", "--force", "--home"]),
    ("quire-run trigger --", &["--git-dir", "--wait", "--force"]),
    ("quire-run demo --", &["--keep", "--dir"]),
    ("quire-runs man --", &["--dir"]),
    ("quire-run migrate-from --", &["--install-hooks"]),
    ("quire-run completions ", &["bash", "zsh", "fish"]),
];

/// Both binaries' scripts for `shell`, as `completions SHELL` prints them,
/// in `dir` under the names the shell looks them up by.
fn print_scripts(dir: &Path, shell: &str) {
    for bin in ["quire-run", "quire-runs"] {
        let out = assert_cmd::Command::cargo_bin(bin)
            .unwrap()
            .args(["completions", shell])
            .assert()
            .success();
        let file = match shell {
            "bash" => format!("{bin}.bash"),
            "zsh" => format!("_{bin}"),
            _ => format!("{bin}.fish"),
        };
        std::fs::write(dir.join(file), &out.get_output().stdout).unwrap();
    }
}

/// Whether `shell` can be run here.
fn installed(shell: &str) -> bool {
    std::process::Command::new(shell)
        .args(["-c", "exit 0"])
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

fn check_cases(shell: &str, argv: &[&str]) {
    for (line, wanted) in CASES {
        let got = shell_offers(argv, line);
        for want in *wanted {
            assert!(
                got.iter().any(|g| g == want),
                "{shell}: `{line}<TAB>` should offer {want}; it offered {got:?}"
            );
        }
    }
}

/// Source the script, set what bash sets for a completion (COMP_LINE,
/// COMP_POINT, COMP_WORDS, COMP_CWORD), call the function `complete -p`
/// registered for the binary, print COMPREPLY.
const BASH_DRIVER: &str = r#"
dir=$1 line=$2
words=($line)
source "$dir/${words[0]}.bash" || exit 3
COMP_LINE=$line
COMP_POINT=${#line}
COMP_WORDS=("${words[@]}")
[[ $line == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
spec=$(complete -p "${COMP_WORDS[0]}") || exit 4
fn=${spec#*-F }
fn=${fn%% *}
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;

#[test]
fn bash_completes_subcommands_and_their_flags_for_both_binaries() {
    assert!(installed("bash"), "bash is required for this test");
    let dir = tempfile::tempdir().unwrap();
    print_scripts(dir.path(), "bash");
    let dir = dir.path().to_str().unwrap();
    check_cases(
        "bash",
        &[
            "bash",
            "--norc",
            "--noprofile",
            "-c",
            BASH_DRIVER,
            "bash",
            dir,
        ],
    );
}

/// zsh completes only inside its line editor: an interactive `zsh -f` on a
/// pseudo-terminal (zpty) with compinit and the scripts on fpath gets the
/// line and a TAB; `compadd` is wrapped to print each candidate it is
/// handed, between two marks the completion system's pre- and post-hooks
/// print.
const ZSH_DRIVER: &str = r#"
zmodload zsh/zpty || exit 3
dir=$1 line=$2
init=$dir/init.zsh
cat > $init <<INIT
PROMPT=
fpath=($dir \$fpath)
autoload -U compinit && compinit -u -D
bindkey '^I' complete-word
quire_mark() { print -r -- QUIRE-MARK }
compprefuncs=(quire_mark)
comppostfuncs=(quire_mark exit)
zstyle ':completion:*' list-grouped false
zstyle ':completion:*' insert-tab false
compadd() {
  if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "\$@"; return; fi
  local -a hits
  builtin compadd -A hits "\$@"
  (( \$#hits )) && print -rl -- "CAND:"\${^hits}
  builtin compadd "\$@"
}
print -r -- READY
INIT
zpty z zsh -f -i
zpty -w z "source $init"
while zpty -r z out; do [[ $out == READY* ]] && break; done
zpty -w z "$line"$'\t'
marks=0
while zpty -r z out; do
  if [[ $out == *QUIRE-MARK* ]]; then (( marks++ )) && break; continue; fi
  [[ $out == CAND:* ]] && print -r -- ${${out#CAND:}%%$'\r'*}
done
"#;

#[test]
fn zsh_completes_subcommands_and_their_flags_where_zsh_is_installed() {
    if !quire_testkit::require("zsh", "apt-get install zsh", installed("zsh")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    print_scripts(dir.path(), "zsh");
    let dir = dir.path().to_str().unwrap();
    check_cases("zsh", &["zsh", "-f", "-c", ZSH_DRIVER, "zsh", dir]);
}

#[test]
fn fish_completes_subcommands_and_their_flags_where_fish_is_installed() {
    if !quire_testkit::require("fish", "apt-get install fish", installed("fish")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    print_scripts(dir.path(), "fish");
    let driver = format!(
        "for f in {}/*.fish; source $f; end; complete -C $argv[1]",
        dir.path().display()
    );
    check_cases("fish", &["fish", "--no-config", "-c", &driver]);
}

/// The binaries parse with their derived definitions alone and make the
/// wrapped help only when they print it (manual::matches): what `--help`
/// prints is still the help the generated files are made from, for each
/// binary and each of its commands.
#[test]
fn help_printed_by_the_binaries_is_the_finished_help() {
    let env = quire_testkit::Env::new();
    for (name, mut command) in [
        ("quire-run", quire_cli::run::command()),
        ("quire-runs", quire_cli::runs::command()),
    ] {
        let run = |args: &[&str]| -> String {
            let out = if name == "quire-run" {
                env.run(args)
            } else {
                env.runs(args)
            }
            .output()
            .unwrap();
            assert!(out.status.success(), "{name} {args:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(
            run(&["--help"]),
            command.render_long_help().to_string(),
            "{name} --help"
        );
        let subcommands: Vec<String> = command
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|s| s != "help")
            .collect();
        for sub in subcommands {
            let finished = command.find_subcommand_mut(&sub).unwrap().clone();
            let expected = finished
                .bin_name(format!("{name} {sub}"))
                .render_long_help()
                .to_string();
            assert_eq!(run(&[&sub, "--help"]), expected, "{name} {sub} --help");
        }
    }
}

/// A pipeline that completes at once.
const QUICK: &str = "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"true\"\n";

/// `line<TAB>` in a real shell (`argv`, running a driver that takes the
/// line as its last argument), quire-runs found on PATH as a person's
/// would be: what it offers, in its order (fish's descriptions dropped).
fn shell_offers(argv: &[&str], line: &str) -> Vec<String> {
    let bin = assert_cmd::cargo::cargo_bin("quire-runs");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = assert_cmd::Command::new(argv[0])
        .args(&argv[1..])
        .arg(line)
        .env("PATH", path)
        .env_remove("QUIRE_HOME")
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn bash_offers(scripts: &Path, line: &str) -> Vec<String> {
    let scripts = scripts.to_str().unwrap();
    shell_offers(
        &[
            "bash",
            "--noprofile",
            "--norc",
            "-c",
            BASH_DRIVER,
            "bash",
            scripts,
        ],
        line,
    )
}

/// A home that knows `team/app.git` and `infra/app.git`, each with one
/// run: the home, the older run's id and the newer one's.
fn two_runs() -> (quire_testkit::Env, String, String) {
    let env = quire_testkit::Env::new();
    let root = env.path().canonicalize().unwrap();
    env.config(&format!("repos_root = {:?}\n", root.display().to_string()));
    let team = env.repo_with_hook("team/app");
    let infra = env.repo_with_hook("infra/app");
    let older = team.push_and_wait(QUICK).id;
    let newer = infra.push_and_wait(QUICK).id;
    (env, older, newer)
}

/// What every shell offers from the home of [`two_runs`] (`offers` takes
/// the line after `quire-runs --home HOME `): run ids, newest first,
/// where each of `commands` takes RUN, a prefix narrowing them; the
/// repositories' names after `-R` and `--repo`.
fn offers_the_homes_words(
    offers: impl Fn(&str) -> Vec<String>,
    commands: &[&str],
    older: &str,
    newer: &str,
) {
    for command in commands {
        assert_eq!(offers(&format!("{command} ")), [newer, older], "{command}");
    }
    assert_eq!(offers(&format!("show {}", &older[..34])), [older]);
    assert_eq!(offers("list -R "), ["infra/app.git", "team/app.git"]);
    assert_eq!(offers("show --repo te"), ["team/app.git"]);
}

#[test]
fn bash_completes_run_states_run_ids_newest_first_and_repository_names() {
    assert!(installed("bash"), "bash is required for this test");
    let (env, older, newer) = two_runs();
    let dir = tempfile::tempdir().unwrap();
    print_scripts(dir.path(), "bash");
    let home = env.home().dir().display().to_string();
    let at = |rest: &str| format!("quire-runs --home {home} {rest}");

    assert_eq!(
        bash_offers(dir.path(), &at("list --state ")),
        ["pending", "active", "complete", "failed", "superseded"]
    );
    assert_eq!(bash_offers(dir.path(), &at("list -s fa")), ["failed"]);
    offers_the_homes_words(
        |rest| bash_offers(dir.path(), &at(rest)),
        &["show", "logs", "watch", "cancel", "retry", "download"],
        &older,
        &newer,
    );
    // Flags still complete there.
    assert!(bash_offers(dir.path(), &at("show --ex")).contains(&"--exit-status".to_string()));
    // No home there: nothing to offer, and no error on the line.
    let nowhere = format!("quire-runs --home {home}/nowhere show ");
    assert_eq!(bash_offers(dir.path(), &nowhere), Vec::<String>::new());
}

/// fish offers what bash offers from the home.
#[test]
fn fish_completes_run_ids_newest_first_and_repository_names() {
    if !quire_testkit::require("fish", "apt-get install fish", installed("fish")) {
        return;
    }
    let (env, older, newer) = two_runs();
    let dir = tempfile::tempdir().unwrap();
    print_scripts(dir.path(), "fish");
    let driver = format!(
        "for f in {}/*.fish; source $f; end; complete -C $argv[1]",
        dir.path().display()
    );
    let home = env.home().dir().display().to_string();
    offers_the_homes_words(
        |rest| {
            shell_offers(
                &["fish", "--no-config", "-c", &driver],
                &format!("quire-runs --home {home} {rest}"),
            )
        },
        &["show", "logs", "watch", "cancel", "retry", "download"],
        &older,
        &newer,
    );
}

/// zsh, too (its completion system on a pty).
#[test]
fn zsh_completes_run_ids_newest_first_and_repository_names() {
    if !quire_testkit::require("zsh", "apt-get install zsh", installed("zsh")) {
        return;
    }
    let (env, older, newer) = two_runs();
    let dir = tempfile::tempdir().unwrap();
    print_scripts(dir.path(), "zsh");
    let scripts = dir.path().to_str().unwrap();
    let home = env.home().dir().display().to_string();
    offers_the_homes_words(
        |rest| {
            shell_offers(
                &["zsh", "-f", "-c", ZSH_DRIVER, "zsh", scripts],
                &format!("quire-runs --home {home} {rest}"),
            )
        },
        &["show", "logs", "watch", "cancel", "retry", "download"],
        &older,
        &newer,
    );
}
