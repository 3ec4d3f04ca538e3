//! What both binaries tell about themselves outside their own runs: shell
//! completion scripts (`completions SHELL`) and manual pages (`man`), made
//! from their clap definitions. The files committed in `completions/` and
//! `docs/man/` are these, byte for byte (a test regenerates and compares
//! them).

use std::process::ExitCode;

use clap_complete::Shell;

/// The completion script of `cmd` (either binary's [`clap::Command`]) for
/// `shell`, named by the command's name.
pub fn completion(shell: Shell, mut cmd: clap::Command) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, &name, &mut script);
    match shell {
        Shell::Bash => fix_bash(&String::from_utf8_lossy(&script), &name).into_bytes(),
        Shell::Fish => fix_fish(String::from_utf8_lossy(&script).into_owned(), &cmd).into_bytes(),
        _ => script,
    }
}

/// clap_complete's bash script names a subcommand's completion in two ways
/// when the binary's name holds a hyphen (clap issue 6421, not fixed as of
/// clap_complete 4.6.12): the loop that finds the subcommand on the line sets
/// `cmd="quire__runs__subcmd__list"` (the hyphen as `__`), while the case
/// that completes it is labelled `quire__subcmd__runs__subcmd__list)` (the
/// hyphen as `__subcmd__`, as a subcommand's own hyphens are). No label
/// matched, so nothing below the top level completed: `quire-runs list
/// --st<TAB>` offered nothing. The labels are renamed to what the loop sets.
fn fix_bash(script: &str, name: &str) -> String {
    let wrong = format!("{}__subcmd__", name.replace('-', "__subcmd__"));
    let right = format!("{}__subcmd__", name.replace('-', "__"));
    if wrong == right {
        return script.to_string();
    }
    let mut fixed = String::with_capacity(script.len());
    for line in script.split_inclusive('\n') {
        let label = line.trim_start();
        match label.strip_prefix(&wrong) {
            Some(rest) if rest.trim_end().ends_with(')') => {
                fixed.push_str(&line[..line.len() - label.len()]);
                fixed.push_str(&right);
                fixed.push_str(rest);
            }
            _ => fixed.push_str(line),
        }
    }
    fixed
}

/// clap_complete's fish script completes the values an option takes, but
/// not those of a subcommand's positional argument (`quire-run completions
/// <TAB>` offered file names): a line per such argument offers them.
fn fix_fish(mut script: String, cmd: &clap::Command) -> String {
    let using = format!(
        "__fish_{}_using_subcommand",
        cmd.get_name().replace('-', "_")
    );
    if !script.contains(&using) {
        return script;
    }
    for sub in cmd.get_subcommands() {
        for arg in sub.get_positionals() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            if !values.is_empty() {
                script.push_str(&format!(
                    "complete -c {} -n \"{using} {}\" -f -a \"{}\"\n",
                    cmd.get_name(),
                    sub.get_name(),
                    values.join(" ")
                ));
            }
        }
    }
    script
}

/// `completions SHELL`: print the script; it needs no home.
pub(crate) fn print_completion(shell: Shell, cmd: clap::Command) -> ExitCode {
    quire_view::text::emit(&String::from_utf8_lossy(&completion(shell, cmd)))
}

/// What a binary's pages and long help say beyond what clap knows: for
/// the binary and each of its commands, what it does, its exit statuses
/// and examples; the environment it reads; pages to see also.
pub(crate) struct Manual {
    /// The binary's own page first (`command` ""), then a page per command.
    pub pages: &'static [Page],
    /// The variables the binary reads: name, what for.
    pub environment: &'static [(&'static str, &'static str)],
    /// Pages of other programs to see also, as `name(section)`.
    pub see_also: &'static [&'static str],
}

/// One command's page.
pub(crate) struct Page {
    /// The command it is for; "" for the binary itself.
    pub command: &'static str,
    /// What it does: paragraphs, each one line (wrapped when printed).
    pub description: &'static [&'static str],
    /// Its exit statuses and what each means (2, a usage error, is added).
    pub exit: &'static [(&'static str, &'static str)],
    /// Command lines, and what each does.
    pub examples: &'static [(&'static str, &'static str)],
}

/// The home's layout, for every page's FILES.
const FILES: &[(&str, &str)] = &[
    (
        "HOME",
        "quire's home: --home, else $QUIRE_HOME, else $XDG_DATA_HOME/quire, else ~/.local/share/quire. Only install, migrate-from and demo make one (mode 0700).",
    ),
    (
        "HOME/quire.db",
        "the store (SQLite, WAL): repositories, runs, jobs, steps, and the step logs of ended runs up to 64 KiB each. Back it up with sqlite3 HOME/quire.db \".backup FILE\" while quire runs.",
    ),
    (
        "HOME/config.toml",
        "optional settings: max_workers, max_workers_per_repo, max_job_timeout, max_parallel_jobs, repos_root, keep_workspaces, cache_max_mb, sandbox, run_as, step_network, limits (max_pipeline_kb, max_jobs, max_steps, max_log_mb, job_memory_mb, job_pids_max), notes, [retention], [secrets], [[notify]], [steps] (env, read: what steps see). Unknown keys are refused. Keep it mode 0600: it may hold secrets.",
    ),
    (
        "HOME/worker.log",
        "what workers and announcers say: how runs are contained and sandboxed, runs they could not execute, notes and notifiers that failed.",
    ),
    (
        "HOME/runs/ID/",
        "a run's files while it executes: events.jsonl, logs/JOB/N.log, workspace/ (the checkout), home/ and tmp/ (its steps' HOME and TMPDIR). Once it ended: only logs over 64 KiB, artifacts/JOB/PATH (files its jobs kept) and a kept workspace.",
    ),
    (
        "HOME/caches/REPO_ID/JOB/BRANCH/",
        "jobs' caches, restored and saved by rename; trimmed to cache_max_mb.",
    ),
    (
        "HOME/workers/slot-N.lock",
        "worker slots (N < max_workers), each held with flock by a running worker.",
    ),
    (
        "HOME/reserve",
        "8 MiB kept back, given up when the disk is full so runs can still be ended and pruned.",
    ),
    (
        "HOME/notes.lock",
        "one announcer writes git notes at a time.",
    ),
    (
        "REPO.git/hooks/post-receive",
        "quire's hook, written by quire-run install: execs quire-run --home HOME hook.",
    ),
    (
        "REPO.git/hooks/post-receive.before-quire",
        "the post-receive hook the repository had before quire's; quire's hook runs it first, with the same input.",
    ),
    (
        "REPO.git/refs/notes/ci",
        "each ended run's result as a git note on its commit (git log --notes=ci).",
    ),
];

/// The lines of `text` wrapped at `width` columns, each after `indent`.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The usage error every command shares.
const USAGE: (&str, &str) = (
    "2",
    "a usage error: an unknown command or flag, a missing argument, a bad value (clap's message on stderr)",
);

fn manual_of(cmd: &clap::Command) -> &'static Manual {
    if cmd.get_name() == "quire-run" {
        &crate::run::help::MANUAL
    } else {
        &crate::runs::help::MANUAL
    }
}

/// What `--help` (long help) says after the options: exit statuses,
/// examples, and for the binary itself its environment and files.
fn after_long_help(name: &str, manual: &Manual, page: &Page) -> String {
    let mut text = String::from("Exit status:\n");
    for (code, meaning) in page.exit.iter().chain([&USAGE]) {
        text.push_str(&format!("  {code}  "));
        text.push_str(wrap(meaning, 76, "     ").trim_start());
    }
    if !page.examples.is_empty() {
        text.push_str("\nExamples:\n");
        for (line, what) in page.examples {
            text.push_str(&format!("  {line}\n"));
            text.push_str(&wrap(what, 76, "      "));
        }
    }
    if page.command.is_empty() {
        text.push_str("\nEnvironment:\n");
        for (name, what) in manual.environment {
            text.push_str(&format!("  {name}\n"));
            text.push_str(&wrap(what, 76, "      "));
        }
        text.push_str("\nFiles:\n");
        for (name, what) in FILES {
            text.push_str(&format!("  {name}\n"));
            text.push_str(&wrap(what, 76, "      "));
        }
        text.push_str(&format!(
            "\nEach command has its own --help, and its own manual page ({name}-COMMAND(1),\nwhich `{name} man COMMAND` prints).\n"
        ));
    }
    text
}

fn description(page: &Page) -> String {
    page.description
        .iter()
        .map(|p| wrap(p, 78, ""))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}

/// `cmd` (a binary's clap definition) with what its [`Manual`] says: the
/// long description (`--help`, not `-h`) and, after the options, exit
/// statuses and examples.
pub(crate) fn annotate(mut cmd: clap::Command) -> clap::Command {
    let manual = manual_of(&cmd);
    let name = cmd.get_name().to_string();
    for page in manual.pages {
        let long_about = description(page);
        let after = after_long_help(&name, manual, page);
        if page.command.is_empty() {
            cmd = cmd.long_about(long_about).after_long_help(after);
        } else {
            cmd = cmd.mut_subcommand(page.command, |sub| {
                sub.long_about(long_about).after_long_help(after)
            });
        }
    }
    cmd
}

/// Every manual page of `cmd` (either binary's annotated clap
/// definition): the binary's own (`quire-runs.1`) and one per command
/// (`quire-runs-list.1`), as (file name, roff).
pub fn man_pages(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
    use clap_mangen::roff::{Roff, bold, roman};

    let manual = manual_of(&cmd);
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let name = cmd.get_name().to_string();
    let mut commands = vec![cmd.clone()];
    commands.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let mut pages = Vec::new();
    for command in commands {
        let top = command.get_name() == name;
        let page = manual.pages.iter().find(|p| {
            if top {
                p.command.is_empty()
            } else {
                p.command == command.get_name()
            }
        });
        let man = clap_mangen::Man::new(command.clone())
            .source(format!("quire {}", cmd.get_version().unwrap_or_default()))
            .manual("quire");
        let file = man.get_filename();
        let mut out = Vec::new();
        let fine = "writing to memory cannot fail";
        man.render_title(&mut out).expect(fine);
        man.render_name_section(&mut out).expect(fine);
        man.render_synopsis_section(&mut out).expect(fine);
        man.render_description_section(&mut out).expect(fine);
        if command.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut out).expect(fine);
        }
        if command.has_subcommands() {
            man.render_subcommands_section(&mut out).expect(fine);
        }
        let mut roff = Roff::new();
        if let Some(page) = page {
            roff.control("SH", ["EXIT STATUS"]);
            for (code, meaning) in page.exit.iter().chain([&USAGE]) {
                roff.control("TP", [])
                    .text([bold(*code)])
                    .text([roman(*meaning)]);
            }
        }
        roff.control("SH", ["ENVIRONMENT"]);
        for (var, what) in manual.environment {
            roff.control("TP", [])
                .text([bold(*var)])
                .text([roman(*what)]);
        }
        roff.control("SH", ["FILES"]);
        for (path, what) in FILES {
            roff.control("TP", [])
                .text([bold(*path)])
                .text([roman(*what)]);
        }
        if let Some(page) = page.filter(|p| !p.examples.is_empty()) {
            roff.control("SH", ["EXAMPLES"]);
            for (line, what) in page.examples {
                roff.control("TP", [])
                    .text([bold(*line)])
                    .text([roman(*what)]);
            }
        }
        roff.control("SH", ["SEE ALSO"]);
        let mut see: Vec<String> = Vec::new();
        if top {
            see.extend(
                cmd.get_subcommands()
                    .filter(|s| !s.is_hide_set())
                    .map(|s| format!("{name}-{}(1)", s.get_name())),
            );
        } else {
            see.push(format!("{name}(1)"));
        }
        let other = if name == "quire-run" {
            "quire-runs(1)"
        } else {
            "quire-run(1)"
        };
        see.push(other.to_string());
        see.extend(manual.see_also.iter().map(|s| s.to_string()));
        roff.text([roman(see.join(", "))]);
        roff.to_writer(&mut out).expect(fine);
        man.render_version_section(&mut out).expect(fine);
        pages.push((file, out));
    }
    pages
}

/// `man [COMMAND] [--dir DIR]`: what to print, or where to write every
/// page.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The command whose page to print (`list` for quire-runs-list(1))
    /// [default: the binary's own page]
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
    /// Write every page (the binary's and one per command, NAME.1) into
    /// DIR instead, e.g. /usr/local/share/man/man1
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub dir: Option<std::path::PathBuf>,
}

/// `man`: print a page, or write them all; it needs no home.
pub(crate) fn print_man(cmd: clap::Command, args: &ManArgs) -> ExitCode {
    let name = cmd.get_name().to_string();
    let pages = man_pages(cmd);
    if let Some(dir) = &args.dir {
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            for (file, page) in &pages {
                std::fs::write(dir.join(file), page)?;
            }
            Ok(())
        });
        return match written {
            Ok(()) => {
                println!(
                    "wrote {} manual pages of {name} into {}",
                    pages.len(),
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "{name}: error: cannot write the manual pages into {}: {e}",
                    dir.display()
                );
                ExitCode::from(1)
            }
        };
    }
    let wanted = match &args.command {
        Some(command) => format!("{name}-{command}.1"),
        None => format!("{name}.1"),
    };
    match pages.iter().find(|(file, _)| *file == wanted) {
        Some((_, page)) => quire_view::text::emit(&String::from_utf8_lossy(page)),
        None => {
            let commands: Vec<&str> = pages
                .iter()
                .filter_map(|(file, _)| file.strip_prefix(&format!("{name}-"))?.strip_suffix(".1"))
                .collect();
            eprintln!(
                "{name}: error: {name} has no command {:?}; its pages are {name} and {name} COMMAND for: {}",
                args.command.as_deref().unwrap_or(""),
                commands.join(", ")
            );
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_page_and_every_page_a_command() {
        for cmd in [crate::run::command(), crate::runs::command()] {
            let manual = manual_of(&cmd);
            let commands: Vec<&str> = cmd
                .get_subcommands()
                .map(|s| s.get_name())
                .filter(|n| *n != "help")
                .collect();
            let pages: Vec<&str> = manual.pages.iter().map(|p| p.command).collect();
            assert_eq!(pages[0], "", "{}: its own page first", cmd.get_name());
            assert_eq!(pages[1..], commands[..], "{}", cmd.get_name());
            for page in manual.pages {
                assert!(
                    !page.description.is_empty()
                        && !page.exit.is_empty()
                        && !page.examples.is_empty(),
                    "{} {}",
                    cmd.get_name(),
                    page.command
                );
            }
        }
    }

    #[test]
    fn every_case_label_of_the_bash_script_is_a_name_its_loop_sets() {
        for cmd in [crate::run::command(), crate::runs::command()] {
            let name = cmd.get_name().to_string();
            let script = String::from_utf8(completion(Shell::Bash, cmd)).unwrap();
            let set: Vec<&str> = script
                .lines()
                .filter_map(|l| l.trim().strip_prefix("cmd=\""))
                .map(|l| l.trim_end_matches('"'))
                .collect();
            let labels: Vec<&str> = script
                .lines()
                .map(str::trim)
                .filter(|l| l.ends_with(')') && l.contains("__subcmd__") && !l.contains(','))
                .map(|l| l.trim_end_matches(')'))
                .collect();
            assert!(labels.len() > 5, "{name}: {labels:?}");
            for label in labels {
                assert!(set.contains(&label), "{name}: {label} is never set");
            }
        }
    }
}
