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
    crate::runs::text::emit(&String::from_utf8_lossy(&completion(shell, cmd)))
}

/// The manual page of `cmd` (roff).
pub fn man_page(cmd: clap::Command) -> Vec<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .expect("writing to memory cannot fail");
    page
}

/// `man`: print the page; it needs no home.
pub(crate) fn print_man(cmd: clap::Command) -> ExitCode {
    crate::runs::text::emit(&String::from_utf8_lossy(&man_page(cmd)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
