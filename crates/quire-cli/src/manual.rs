//! What both binaries tell about themselves: long `--help`, shell
//! completion scripts (`completions SHELL`), manual pages (`man`) and
//! docs/cli-reference.md, all made from their clap definitions, which are
//! the one place the text is written: each command's doc comment (its
//! summary, then what it does) and its `after_long_help` (exit statuses,
//! examples; for the binary, its environment). The files committed in
//! `completions/`, `docs/man/` and docs/cli-reference.md are these, byte
//! for byte (a test regenerates and compares them).

use std::process::ExitCode;

use crate::error::{CommandError, Result, output};
use clap_complete::Shell;

/// The completion script of `cmd` (either binary's [`clap::Command`]) for
/// `shell`, named by the command's name.
pub fn completion(shell: Shell, mut cmd: clap::Command) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, &name, &mut script);
    match shell {
        Shell::Bash => {
            let fixed = fix_bash(&String::from_utf8_lossy(&script), &name);
            home_words_bash(&fixed, &cmd).into_bytes()
        }
        Shell::Fish => fix_fish(String::from_utf8_lossy(&script).into_owned(), &cmd).into_bytes(),
        Shell::Zsh => {
            home_words_zsh(String::from_utf8_lossy(&script).into_owned(), &cmd).into_bytes()
        }
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

/// The hidden command that prints the words only a home knows.
const WORDS_COMMAND: &str = "complete-words";

/// Bash completes what only the home knows by asking the binary
/// (`complete-words`, hidden), for the `--home` on the line: run ids,
/// newest first, where a command takes RUN, and repository names after
/// `-R`/`--repo`, where clap_complete's script offered file names. The
/// words are read line by line into COMPREPLY, never through `compgen -W`,
/// which would expand a `$(...)` in a repository's name.
fn home_words_bash(script: &str, cmd: &clap::Command) -> String {
    if cmd.find_subcommand(WORDS_COMMAND).is_none() {
        return script.to_string();
    }
    let name = cmd.get_name();
    let function = format!("_{}", name.replace('-', "__"));
    let label = |sub: &str| format!("{}__subcmd__{sub})", name.replace('-', "__"));
    let taking_run: Vec<String> = cmd
        .get_subcommands()
        .filter(|sub| {
            sub.get_positionals().any(|a| {
                a.get_value_names()
                    .is_some_and(|v| v.iter().any(|n| n == "RUN"))
            })
        })
        .map(|sub| label(sub.get_name()))
        .collect();
    let offer = |kind: &str| format!("{function}__offer {kind}");
    let mut out = String::with_capacity(script.len() + 1024);
    let mut lines = script.split_inclusive('\n').peekable();
    let mut in_run_block = false;
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        let indent = &line[..line.len() - line.trim_start().len()];
        if trimmed.ends_with(')') && trimmed.contains("__subcmd__") {
            in_run_block = taking_run.iter().any(|l| l == trimmed);
        }
        if in_run_block && trimmed.starts_with("if [[ ${cur} == -* || ${COMP_CWORD} -eq ") {
            out.push_str(&format!("{indent}if [[ ${{cur}} == -* ]] ; then\n"));
            continue;
        }
        if in_run_block
            && indent.len() == 12
            && trimmed == r#"COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )"#
        {
            out.push_str(&format!("{indent}{}\n", offer("runs")));
            continue;
        }
        if trimmed.starts_with("opts=\"") {
            // Hidden: not a command to offer people.
            out.push_str(&line.replace(&format!(" {WORDS_COMMAND}"), ""));
            continue;
        }
        out.push_str(line);
        if (trimmed == "--repo)" || trimmed == "-R)")
            && let Some(next) = lines.peek()
            && next.trim() == r#"COMPREPLY=($(compgen -f "${cur}"))"#
        {
            let indent = &next[..next.len() - next.trim_start().len()];
            out.push_str(&format!("{indent}{}\n", offer("repos")));
            lines.next();
        }
    }
    out.push_str(&format!(
        r#"
# The words only the home knows, from {name} itself ({WORDS_COMMAND} KIND),
# for the --home on the line (else its default home).
{function}__words() {{
    local i home=()
    for ((i = 1; i < ${{#COMP_WORDS[@]}}; i++)); do
        case "${{COMP_WORDS[i]}}" in
            --home) home=(--home "${{COMP_WORDS[i+1]}}") ;;
            --home=*) home=(--home "${{COMP_WORDS[i]#--home=}}") ;;
        esac
    done
    "${{COMP_WORDS[0]}}" "${{home[@]}}" {WORDS_COMMAND} "$1" 2>/dev/null
}}

# Those of them that start with the word being completed, in their order.
{function}__offer() {{
    local word
    COMPREPLY=()
    while IFS= read -r word; do
        [[ ${{word}} == "${{cur}}"* ]] && COMPREPLY+=("${{word}}")
    done < <({function}__words "$1")
}}
"#
    ));
    out
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
    home_words_fish(script, cmd, &using)
}

/// fish completes what only the home knows as bash does
/// ([`home_words_bash`]): run ids, newest first (`-k` keeps the order),
/// where a command takes RUN, and repository names after `-R`/`--repo`
/// (not file names), each from the binary for the `--home` on the line.
fn home_words_fish(script: String, cmd: &clap::Command, using: &str) -> String {
    if cmd.find_subcommand(WORDS_COMMAND).is_none() {
        return script;
    }
    let name = cmd.get_name();
    let words = format!("__fish_{}_words", name.replace('-', "_"));
    let repo_option = " -s R -l repo ";
    let mut out = String::with_capacity(script.len() + 2048);
    for line in script.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        if body.contains(repo_option) && body.ends_with(" -r") {
            out.push_str(&format!("{body} -f -k -a \"({words} repos)\"\n"));
        } else {
            out.push_str(line);
        }
    }
    out.push_str(&format!(
        r#"
# The words only the home knows, from {name} itself ({WORDS_COMMAND} KIND),
# for the --home on the line (else its default home).
function {words}
    set -l tokens (commandline -opc)
    set -l home
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case --home
                set -l next (math $i + 1)
                set -q tokens[$next]; and set home --home $tokens[$next]
            case '--home=*'
                set home --home (string replace -- --home= '' $tokens[$i])
        end
    end
    command $tokens[1] $home {WORDS_COMMAND} $argv 2>/dev/null
end
"#
    ));
    for sub in cmd.get_subcommands() {
        let takes_run = sub.get_positionals().any(|a| {
            a.get_value_names()
                .is_some_and(|v| v.iter().any(|n| n == "RUN"))
        });
        if takes_run {
            out.push_str(&format!(
                "complete -c {name} -n \"{using} {}\" -f -k -a \"({words} runs)\"\n",
                sub.get_name()
            ));
        }
    }
    out
}

/// zsh completes what only the home knows as bash does
/// ([`home_words_bash`]): where clap_complete's script completes a RUN
/// positional or `--repo`'s REPO with `_default` (file names), it calls a
/// function that asks the binary (`complete-words`) for the `--home` on
/// the line, and offers its lines in their order (an unsorted group): run
/// ids newest first, repository names.
fn home_words_zsh(script: String, cmd: &clap::Command) -> String {
    if cmd.find_subcommand(WORDS_COMMAND).is_none() {
        return script;
    }
    let name = cmd.get_name();
    let words = format!("_{}_words", name.replace('-', "_"));
    let mut out = String::with_capacity(script.len() + 2048);
    let call = "\nif [ \"$funcstack[1]\" = ";
    for line in script.split_inclusive('\n') {
        let spec = line.trim_start();
        let run = spec.starts_with("'::run -- ") || spec.starts_with("':run -- ");
        let job = spec.starts_with("'::job -- ") || spec.starts_with("':job -- ");
        if run && line.contains(":_default' ") {
            out.push_str(&line.replacen(":_default' ", &format!(":{words} runs' "), 1));
        } else if job && line.contains(":_default' ") {
            // A job's name, not a file's: nothing to offer.
            out.push_str(&line.replacen(":_default' ", ": ' ", 1));
        } else if (spec.starts_with("'--repo=[") || spec.starts_with("'-R+["))
            && line.contains("]:REPO:_default' ")
        {
            out.push_str(&line.replacen(":REPO:_default' ", &format!(":REPO:{words} repos' "), 1));
        } else {
            out.push_str(line);
        }
    }
    let function = format!(
        r#"
# The words only the home knows, from {name} itself ({WORDS_COMMAND} KIND),
# for the --home on the line (else its default home), in their order.
(( $+functions[{words}] )) ||
{words}() {{
    local -a line home found
    local i
    # The whole line: inside a subcommand, $words starts at it.
    line=(${{(Q)${{(z)BUFFER}}}})
    for (( i = 2; i <= $#line; i++ )); do
        case ${{line[i]}} in
            --home) home=(--home ${{line[i+1]}}) ;;
            --home=*) home=(--home ${{line[i]#--home=}}) ;;
        esac
    done
    # _arguments puts its own options first: the kind is the last word.
    found=("${{(@f)$(${{line[1]}} $home {WORDS_COMMAND} ${{@[-1]}} 2>/dev/null)}}")
    found=(${{found:#}})
    compadd -V {name}-${{@[-1]}} -a found
}}
"#
    );
    match out.rfind(call) {
        Some(at) => out.insert_str(at, &function),
        None => out.push_str(&function),
    }
    out
}

/// `completions SHELL`: print the script; it needs no home.
pub(crate) fn print_completion(shell: Shell, cmd: clap::Command) -> Result<ExitCode> {
    output::emit(&String::from_utf8_lossy(&completion(shell, cmd)))?;
    Ok(ExitCode::SUCCESS)
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

/// The exit statuses of a command whose text names none: it either does
/// what it was asked or says why not.
fn done_or_error(name: &str) -> Vec<(String, String)> {
    vec![
        ("0".to_string(), "it did what was asked".to_string()),
        (
            "1".to_string(),
            format!(
                "it could not: one line `{name}: error: ...` on stderr, often followed by a `hint: ...` line"
            ),
        ),
    ]
}

/// One titled block of what a command's `--help` says after its options
/// (its `after_long_help`): `Exit status:`, `Examples:`, `Environment:`,
/// `See also:`. Each entry is a term (an exit status, a command line, a
/// variable) and what it means.
#[derive(Debug, Clone, PartialEq)]
struct Section {
    title: String,
    entries: Vec<(String, String)>,
}

/// The sections of `text`, as the clap definitions write them and `--help`
/// prints them: a title is a line of its own at the margin, ending in `:`;
/// an entry starts two spaces in, either as `TERM  TEXT` (two spaces after
/// the term: an exit status) or as a term alone (a command line, a
/// variable) whose text follows on lines indented further; lines indented
/// further continue the entry's text. Other lines at the margin belong to
/// no section.
fn sections(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let body = line.trim();
        let indent = line.len() - line.trim_start().len();
        if body.is_empty() {
            continue;
        }
        if indent == 0 {
            open = body.ends_with(':');
            if open {
                out.push(Section {
                    title: body.trim_end_matches(':').to_string(),
                    entries: Vec::new(),
                });
            }
            continue;
        }
        let Some(section) = out.last_mut().filter(|_| open) else {
            continue;
        };
        if indent == 2 {
            let (term, what) = body.split_once("  ").unwrap_or((body, ""));
            section
                .entries
                .push((term.to_string(), what.trim().to_string()));
        } else if let Some((_, what)) = section.entries.last_mut() {
            if !what.is_empty() {
                what.push(' ');
            }
            what.push_str(body);
        }
    }
    out
}

/// `sections` as `--help` prints them, wrapped at 78 columns: a short term
/// (an exit status) with its text beside it, a longer one on a line of its
/// own with its text below.
fn render_sections(sections: &[Section]) -> String {
    let mut text = String::new();
    for (n, section) in sections.iter().enumerate() {
        if n > 0 {
            text.push('\n');
        }
        text.push_str(&format!("{}:\n", section.title));
        for (term, what) in &section.entries {
            if what.is_empty() {
                text.push_str(&format!("  {term}\n"));
            } else if term.len() < 4 {
                text.push_str(&format!("  {term}  "));
                text.push_str(wrap(what, 76, &" ".repeat(term.len() + 4)).trim_start());
            } else {
                text.push_str(&format!("  {term}\n"));
                text.push_str(&wrap(what, 76, "      "));
            }
        }
    }
    text
}

/// The entries of the section titled `title`, if there is one.
fn entries<'a>(sections: &'a [Section], title: &str) -> &'a [(String, String)] {
    sections
        .iter()
        .find(|s| s.title == title)
        .map_or(&[], |s| &s.entries)
}

/// The paragraphs of `text` (separated by blank lines), each on one line.
fn paragraphs(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect()
}

fn long_about(cmd: &clap::Command) -> Vec<String> {
    cmd.get_long_about()
        .or(cmd.get_about())
        .map(|t| paragraphs(&t.to_string()))
        .unwrap_or_default()
}

fn after_long_help(cmd: &clap::Command) -> Vec<Section> {
    sections(
        &cmd.get_after_long_help()
            .map(|t| t.to_string())
            .unwrap_or_default(),
    )
}

/// Parse `args` with the derived definition alone (`plain`); only when
/// clap has something to print (help, the version, a usage error) is the
/// definition made ready to print ([`finish`], from `finished`) and the
/// arguments parsed again by it, which prints and exits. Wrapping every
/// command's help cost each start of the hook more than its parse.
pub(crate) fn matches(
    plain: clap::Command,
    finished: impl FnOnce() -> clap::Command,
    args: Vec<std::ffi::OsString>,
) -> clap::ArgMatches {
    match plain.try_get_matches_from(args.iter()) {
        Ok(matches) => matches,
        Err(_) => finished().get_matches_from(args),
    }
}

/// A binary's clap definition, as derived, made ready to print: each
/// command's long description (its doc comment) wrapped at 78 columns, and
/// what `--help` says after the options completed: the exit statuses (a
/// command whose definition names none does what it was asked or says why
/// not; 2 is always a usage error), and for the binary itself the home's
/// files. Completions, man pages and docs/cli-reference.md are made from
/// what this returns.
pub(crate) fn finish(mut cmd: clap::Command) -> clap::Command {
    let name = cmd.get_name().to_string();
    let commands: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for command in commands {
        cmd = cmd.mut_subcommand(command, |sub| explain(sub, &name, false));
    }
    explain(cmd, &name, true)
}

fn explain(cmd: clap::Command, name: &str, top: bool) -> clap::Command {
    let description = long_about(&cmd)
        .iter()
        .map(|p| wrap(p, 78, ""))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string();
    let mut sections = after_long_help(&cmd);
    let usage = (USAGE.0.to_string(), USAGE.1.to_string());
    match sections.iter_mut().find(|s| s.title == "Exit status") {
        Some(exit) => exit.entries.push(usage),
        None => {
            let mut entries = done_or_error(name);
            entries.push(usage);
            sections.insert(
                0,
                Section {
                    title: "Exit status".to_string(),
                    entries,
                },
            );
        }
    }
    if top {
        let at = sections
            .iter()
            .position(|s| s.title == "See also")
            .unwrap_or(sections.len());
        let entries = FILES
            .iter()
            .map(|(path, what)| (path.to_string(), what.to_string()))
            .collect();
        sections.insert(
            at,
            Section {
                title: "Files".to_string(),
                entries,
            },
        );
    }
    let mut after = render_sections(&sections);
    if top {
        after.push_str(&format!(
            "\nEach command has its own --help, and its own manual page ({name}-COMMAND(1),\nwhich `{name} man COMMAND` prints).\n"
        ));
    }
    cmd.long_about(description).after_long_help(after)
}

/// Every manual page of `cmd` (either binary's clap definition, as
/// `command()` gives it): the binary's own (`quire-runs.1`) and one per
/// command (`quire-runs-list.1`), as (file name, roff).
pub fn man_pages(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
    use clap_mangen::roff::{Roff, bold, roman};

    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let name = cmd.get_name().to_string();
    let binary = after_long_help(&cmd);
    let environment = entries(&binary, "Environment");
    let see_also: Vec<String> = entries(&binary, "See also")
        .iter()
        .flat_map(|(term, _)| term.split(", ").map(str::to_string))
        .collect();
    let mut commands = vec![cmd.clone()];
    commands.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let mut pages = Vec::new();
    for command in commands {
        let top = command.get_name() == name;
        let own = after_long_help(&command);
        // NAME says the summary (the description's first paragraph);
        // DESCRIPTION the rest.
        let text = command
            .get_long_about()
            .map(|t| t.to_string())
            .unwrap_or_default();
        let described = match text.split_once("\n\n") {
            Some((_, rest)) => rest.to_string(),
            None => text,
        };
        let man = clap_mangen::Man::new(command.clone().long_about(described))
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
        let mut list = |title: &str, entries: &[(String, String)]| {
            if entries.is_empty() {
                return;
            }
            roff.control("SH", [title]);
            for (term, what) in entries {
                roff.control("TP", [])
                    .text([bold(term.as_str())])
                    .text([roman(what.as_str())]);
            }
        };
        list("EXIT STATUS", entries(&own, "Exit status"));
        list("ENVIRONMENT", environment);
        let files: Vec<(String, String)> = FILES
            .iter()
            .map(|(path, what)| (path.to_string(), what.to_string()))
            .collect();
        list("FILES", &files);
        list("EXAMPLES", entries(&own, "Examples"));
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
        see.extend(see_also.iter().cloned());
        roff.text([roman(see.join(", "))]);
        roff.to_writer(&mut out).expect(fine);
        man.render_version_section(&mut out).expect(fine);
        pages.push((file, out));
    }
    pages
}

/// docs/cli-reference.md: for each of `binaries` (each binary's clap
/// definition, as `command()` gives it) and each of its commands, a
/// section saying what `--help` says: what it does, its usage, arguments
/// and options with their defaults and values, exit statuses, examples,
/// and for the binary its commands, environment and files. Markdown.
pub fn reference(binaries: &[clap::Command]) -> String {
    let mut md = String::from(
        "# Command-line reference\n\n\
         <!-- Generated from the clap definitions (crates/quire-cli/src/run/mod.rs,\n\
         runs/cli.rs) by quire_cli::manual::reference: edit those, then run\n\
         `QUIRE_BLESS=1 cargo test --test integration generated`. -->\n\n\
         Every command of both binaries, with every argument and option, as\n\
         `--help` and the manual pages say it. What the commands share (selecting\n\
         runs, JSON, exit codes) and what each does in detail is in\n\
         [CLI.md](CLI.md).\n\n",
    );
    let built: Vec<clap::Command> = binaries
        .iter()
        .map(|b| {
            let mut b = b.clone().disable_help_subcommand(true);
            b.build();
            b
        })
        .collect();
    for cmd in &built {
        let name = cmd.get_name();
        let links: Vec<String> = visible_commands(cmd)
            .map(|s| format!("[`{}`](#{name}-{})", s.get_name(), s.get_name()))
            .collect();
        md.push_str(&format!("- [`{name}`](#{name}): {}\n", links.join(", ")));
    }
    for cmd in &built {
        reference_of(&mut md, cmd, cmd.get_name(), "##");
        for sub in visible_commands(cmd) {
            let full = format!("{} {}", cmd.get_name(), sub.get_name());
            reference_of(&mut md, sub, &full, "###");
        }
    }
    md
}

fn visible_commands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set())
}

/// One command's section of docs/cli-reference.md.
fn reference_of(md: &mut String, cmd: &clap::Command, full: &str, heading: &str) {
    md.push_str(&format!("\n{heading} `{full}`\n\n"));
    for paragraph in long_about(cmd) {
        md.push_str(&markdown_text(&paragraph));
        md.push_str("\n\n");
    }
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage);
    md.push_str(&format!("```\n{usage}\n```\n"));
    if cmd.has_subcommands() {
        md.push_str("\n**Commands:**\n\n");
        for sub in visible_commands(cmd) {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            md.push_str(&format!(
                "- [`{}`](#{}-{}): {}\n",
                sub.get_name(),
                cmd.get_name(),
                sub.get_name(),
                markdown_text(&about)
            ));
        }
    }
    for (label, positional) in [("Arguments", true), ("Options", false)] {
        let args: Vec<&clap::Arg> = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.is_positional() == positional)
            .collect();
        if args.is_empty() {
            continue;
        }
        md.push_str(&format!("\n**{label}:**\n\n"));
        for arg in args {
            // As `--help` says it: the help, then clap's default and values.
            let mut said = Vec::new();
            if let Some(help) = arg.get_long_help().or(arg.get_help()) {
                said.push(markdown_text(&paragraphs(&help.to_string()).join(" ")));
            }
            if arg.get_action().takes_values() {
                let defaults: Vec<String> = arg
                    .get_default_values()
                    .iter()
                    .map(|v| code(&v.to_string_lossy()))
                    .collect();
                if !defaults.is_empty() && !arg.is_hide_default_value_set() {
                    said.push(format!("[default: {}]", defaults.join(", ")));
                }
                let values: Vec<String> = arg
                    .get_possible_values()
                    .iter()
                    .filter(|v| !v.is_hide_set())
                    .map(|v| code(v.get_name()))
                    .collect();
                if !values.is_empty() && !arg.is_hide_possible_values_set() {
                    said.push(format!("[possible values: {}]", values.join(", ")));
                }
            }
            md.push_str(&format!("- {}: {}\n", argument(arg), said.join(" ")));
        }
    }
    for section in after_long_help(cmd) {
        md.push_str(&format!("\n**{}:**\n\n", section.title));
        for (term, what) in &section.entries {
            if what.is_empty() {
                md.push_str(&format!("- {}\n", markdown_text(term)));
            } else {
                md.push_str(&format!("- {}: {}\n", code(term), markdown_text(what)));
            }
        }
    }
}

/// An argument as `--help` names it: `-R`, `--repo <REPO>`; `<REF>`.
fn argument(arg: &clap::Arg) -> String {
    let mut names = Vec::new();
    if let Some(short) = arg.get_short()
        && arg.get_long().is_some()
    {
        names.push(code(&format!("-{short}")));
    }
    names.push(code(&arg.to_string()));
    names.join(", ")
}

/// `text` as Markdown code: between backticks (more of them when it holds
/// some).
fn code(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    if longest > 0 {
        format!("{fence} {text} {fence}")
    } else {
        format!("{fence}{text}{fence}")
    }
}

/// Help text as Markdown: its `code` spans kept, and outside them the
/// characters Markdown would take for emphasis or HTML escaped.
fn markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (n, part) in text.split('`').enumerate() {
        if n > 0 {
            out.push('`');
        }
        if n % 2 == 1 {
            out.push_str(part);
            continue;
        }
        for c in part.chars() {
            if matches!(c, '\\' | '*' | '<' | '>') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
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
pub(crate) fn print_man(cmd: clap::Command, args: &ManArgs) -> Result<ExitCode> {
    let name = cmd.get_name().to_string();
    let pages = man_pages(cmd);
    if let Some(dir) = &args.dir {
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            for (file, page) in &pages {
                std::fs::write(dir.join(file), page)?;
            }
            Ok(())
        });
        written.map_err(|e| {
            CommandError::io(
                format!("cannot write the manual pages into {}", dir.display()),
                e,
            )
        })?;
        output::emit(&format!(
            "wrote {} manual pages of {name} into {}\n",
            pages.len(),
            dir.display()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let wanted = match &args.command {
        Some(command) => format!("{name}-{command}.1"),
        None => format!("{name}.1"),
    };
    match pages.iter().find(|(file, _)| *file == wanted) {
        Some((_, page)) => {
            output::emit(&String::from_utf8_lossy(page))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let commands: Vec<&str> = pages
                .iter()
                .filter_map(|(file, _)| file.strip_prefix(&format!("{name}-"))?.strip_suffix(".1"))
                .collect();
            Err(CommandError::not_found(format!(
                "{name} has no command {:?}; its pages are {name} and {name} COMMAND for: {}",
                args.command.as_deref().unwrap_or(""),
                commands.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_says_what_it_does_its_exit_statuses_and_examples() {
        for cmd in [crate::run::command(), crate::runs::command()] {
            let name = cmd.get_name().to_string();
            let mut commands = vec![cmd.clone()];
            commands.extend(cmd.get_subcommands().cloned());
            for command in &commands {
                let which = format!("{name} {}", command.get_name());
                assert!(
                    long_about(command).len() >= 2,
                    "{which}: a summary, then more"
                );
                let sections = after_long_help(command);
                let exit = entries(&sections, "Exit status");
                assert_eq!(exit[0].0, "0", "{which}");
                assert_eq!(exit.last().unwrap().0, "2", "{which}: the usage error");
                assert!(!entries(&sections, "Examples").is_empty(), "{which}");
            }
            let top = after_long_help(&cmd);
            for title in ["Environment", "Files", "See also"] {
                assert!(!entries(&top, title).is_empty(), "{name}: {title}");
            }
        }
    }

    #[test]
    fn sections_read_back_what_they_print() {
        let text = "Exit status:\n  0  it did what was asked, whatever that was, and a good deal more than that\n  1  no\n\nExamples:\n  quire-runs list --json | jq -r '.[].id'\n      The ids,\n      for a script.\n\nA closing line, no section's.\n";
        let read = sections(text);
        assert_eq!(read.len(), 2);
        assert_eq!(
            read[0].entries[0].1,
            "it did what was asked, whatever that was, and a good deal more than that"
        );
        assert_eq!(
            read[1].entries,
            [(
                "quire-runs list --json | jq -r '.[].id'".to_string(),
                "The ids, for a script.".to_string()
            )]
        );
        assert_eq!(sections(&render_sections(&read)), read);
    }

    #[test]
    fn markdown_keeps_code_and_escapes_the_rest() {
        assert_eq!(
            markdown_text("`<old> *` and release/* <here>"),
            "`<old> *` and release/\\* \\<here\\>"
        );
        assert_eq!(code("a`b"), "`` a`b ``");
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
