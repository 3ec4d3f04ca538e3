//! The pipeline file: `.quire/ci.toml` parsed into typed structs and
//! validated fail-closed, in two passes: reading the TOML stops at its first
//! error; a file that reads is then checked against every other rule, and
//! all of those problems are reported, each with the line and column it
//! concerns, the job, and the fix.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The source every pipeline starts from: a push of the ref.
pub const PUSH_SOURCE: &str = "quire/push";

/// A validated pipeline: jobs in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Environment for every step of every job.
    pub env: Vec<(String, String)>,
    pub jobs: Vec<Job>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub inputs: Vec<Input>,
    pub steps: Vec<Step>,
    pub env: Vec<(String, String)>,
    pub when: Option<When>,
    pub timeout: Option<Duration>,
    pub allow_failure: bool,
    /// Names of the home's secrets this job's steps get as variables.
    pub secrets: Vec<String>,
    /// Globs, relative to the workspace, of the files kept when the job
    /// ends (docs/PIPELINE.md, "Artifacts").
    pub artifacts: Vec<Artifact>,
    /// Paths, relative to the workspace and normalized (no `.`, no empty or
    /// trailing component), carried over between runs of this job
    /// (docs/PIPELINE.md, "Caches").
    pub cache: Vec<String>,
}

/// One entry of a job's `artifacts`: a glob relative to the workspace. A
/// trailing `/`, or a match that is a directory, keeps the directory's
/// files recursively.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// As written in the file, for the job's log.
    pub text: String,
    /// The glob, without its trailing `/`.
    pub pattern: glob::Pattern,
}

impl Job {
    /// Indexes of the jobs this one needs.
    pub fn needs(&self) -> impl Iterator<Item = usize> + '_ {
        self.inputs.iter().filter_map(|input| match input {
            Input::Job(j) => Some(*j),
            Input::Push => None,
        })
    }
}

/// What a job needs before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The push itself (`quire/push`).
    Push,
    /// Another job, by its index in [`Pipeline::jobs`].
    Job(usize),
}

/// One step: a string run by `sh -c`, or an argv run directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Shell(String),
    Argv(Vec<String>),
}

impl Step {
    /// The command as recorded and shown: the shell string, or the argv
    /// quoted as a shell would need it.
    pub fn display(&self) -> String {
        match self {
            Step::Shell(cmd) => cmd.clone(),
            Step::Argv(argv) => argv
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Glob filters on the pushed ref: a job with `when` runs only on a branch
/// matching one of `branches` or a tag matching one of `tags`.
#[derive(Debug, Clone, PartialEq)]
pub struct When {
    pub branches: Vec<glob::Pattern>,
    pub tags: Vec<glob::Pattern>,
}

/// One problem with a pipeline file, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line and column, where known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "{line}:{column}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    jobs: BTreeMap<Spanned<String>, Spanned<RawJob>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    inputs: Vec<String>,
    sh: RawSteps,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    when: Option<RawWhen>,
    timeout: Option<String>,
    #[serde(default)]
    allow_failure: bool,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    artifacts: Vec<String>,
    #[serde(default)]
    cache: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "sh must be a command string, or a list of command strings and argv arrays"
)]
enum RawSteps {
    One(String),
    Many(Vec<RawStep>),
}

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "each step of sh must be a command string or an argv array of strings"
)]
enum RawStep {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    #[serde(default)]
    branches: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Where in the text a byte offset falls, 1-based.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

struct Collector<'t> {
    text: &'t str,
    found: Vec<(usize, Diagnostic)>,
}

impl Collector<'_> {
    fn at(&mut self, offset: usize, message: String) {
        let (line, column) = line_column(self.text, offset);
        self.found.push((
            offset,
            Diagnostic {
                line: Some(line),
                column: Some(column),
                message,
            },
        ));
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `name` can be an environment variable's name: letters, digits and
/// '_', not starting with a digit. Pipeline `env` keys, job `secrets` and the
/// home's secret names all follow it, since each ends up in a step's
/// environment.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub use quire_model::clock::parse_span;

impl Pipeline {
    /// Parse and validate a pipeline file's text. On failure, every problem
    /// found, in file order.
    pub fn parse(text: &str) -> Result<Pipeline, Vec<Diagnostic>> {
        let raw: RawPipeline = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let (line, column) = match e.span() {
                    Some(span) => {
                        let (l, c) = line_column(text, span.start);
                        (Some(l), Some(c))
                    }
                    None => (None, None),
                };
                return Err(vec![Diagnostic {
                    line,
                    column,
                    message: e.message().trim().to_string(),
                }]);
            }
        };
        let mut errors = Collector {
            text,
            found: Vec::new(),
        };
        let env = check_env(&mut errors, None, raw.env);

        // Jobs in file order.
        let mut raw_jobs: Vec<(Spanned<String>, Spanned<RawJob>)> = raw.jobs.into_iter().collect();
        raw_jobs.sort_by_key(|(id, _)| id.span().start);
        if raw_jobs.is_empty() {
            errors.found.push((
                0,
                Diagnostic {
                    line: None,
                    column: None,
                    message:
                        "the pipeline defines no jobs; add a [jobs.<id>] table with inputs and sh"
                            .into(),
                },
            ));
        }
        let index: HashMap<&str, usize> = raw_jobs
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.get_ref().as_str(), i))
            .collect();

        let mut jobs = Vec::with_capacity(raw_jobs.len());
        // Jobs whose inputs are already reported as wrong.
        let mut broken = Vec::with_capacity(raw_jobs.len());
        for (id_spanned, job) in &raw_jobs {
            let at = id_spanned.span().start;
            let id = id_spanned.get_ref().clone();
            let name = format!("job {id:?}");
            if !valid_id(&id) {
                errors.at(
                    at,
                    format!(
                        "job id {id:?} may only use letters, digits, '_' and '-'; rename the table [jobs.{}]",
                        suggest_id(&id)
                    ),
                );
            }
            let raw = job.get_ref();
            if raw.inputs.is_empty() {
                errors.at(
                    at,
                    format!("{name}: inputs is empty; list the jobs it needs, or \"{PUSH_SOURCE}\" to run on every push"),
                );
            }
            let mut inputs = Vec::new();
            for input in &raw.inputs {
                if input == PUSH_SOURCE {
                    inputs.push(Input::Push);
                } else if let Some(&i) = index.get(input.as_str()) {
                    inputs.push(Input::Job(i));
                } else if input.contains('/') {
                    errors.at(
                        at,
                        format!("{name}: input {input:?} names no source; the only source is \"{PUSH_SOURCE}\""),
                    );
                } else {
                    errors.at(
                        at,
                        format!("{name}: input {input:?} names no job and no source; define [jobs.{input}] or use \"{PUSH_SOURCE}\""),
                    );
                }
            }
            broken.push(raw.inputs.is_empty() || inputs.len() < raw.inputs.len());
            let steps = check_steps(&mut errors, at, &name, &raw.sh);
            let env = check_env(&mut errors, Some(&name), raw.env.clone());
            let timeout = match &raw.timeout {
                None => None,
                Some(text) => {
                    let span = parse_span(text);
                    if span.is_none() {
                        errors.at(
                            at,
                            format!("{name}: timeout {text:?} is not a span; write e.g. \"90s\", \"20m\" or \"1h30m\""),
                        );
                    }
                    span
                }
            };
            let when = raw.when.as_ref().map(|w| When {
                branches: check_globs(&mut errors, at, &name, "branches", &w.branches),
                tags: check_globs(&mut errors, at, &name, "tags", &w.tags),
            });
            if raw
                .when
                .as_ref()
                .is_some_and(|w| w.branches.is_empty() && w.tags.is_empty())
            {
                errors.at(
                    at,
                    format!("{name}: when has no branches and no tags, so the job could never run; list patterns or remove when"),
                );
            }
            for secret in &raw.secrets {
                if !is_env_name(secret) {
                    errors.at(
                        at,
                        format!("{name}: secret name {secret:?} is not a variable name; use letters, digits and '_', not starting with a digit"),
                    );
                }
            }
            let artifacts = check_artifacts(&mut errors, at, &name, &raw.artifacts);
            let cache = check_cache(&mut errors, at, &name, &raw.cache);
            jobs.push(Job {
                id,
                inputs,
                steps,
                env,
                when,
                timeout,
                allow_failure: raw.allow_failure,
                secrets: raw.secrets.clone(),
                artifacts,
                cache,
            });
        }

        let starts: Vec<usize> = raw_jobs.iter().map(|(id, _)| id.span().start).collect();
        check_graph(&mut errors, &jobs, &starts, &broken);

        if errors.found.is_empty() {
            Ok(Pipeline { env, jobs })
        } else {
            errors.found.sort_by_key(|(offset, _)| *offset);
            Err(errors.found.into_iter().map(|(_, d)| d).collect())
        }
    }

    /// The job with this id.
    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }
}

/// A job id with every character outside [A-Za-z0-9_-] replaced.
fn suggest_id(id: &str) -> String {
    let fixed: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if fixed.is_empty() {
        "job".into()
    } else {
        fixed
    }
}

fn check_env(
    errors: &mut Collector<'_>,
    job: Option<&str>,
    env: BTreeMap<Spanned<String>, String>,
) -> Vec<(String, String)> {
    let mut vars: Vec<(Spanned<String>, String)> = env.into_iter().collect();
    vars.sort_by_key(|(name, _)| name.span().start);
    let owner = job.map_or_else(|| "env".to_string(), |name| format!("{name}: env"));
    let mut out = Vec::new();
    for (name, value) in vars {
        let at = name.span().start;
        let name = name.into_inner();
        if !is_env_name(&name) {
            errors.at(
                at,
                format!("{owner} name {name:?} is not a variable name; use letters, digits and '_', not starting with a digit"),
            );
        } else if value.contains('\0') {
            errors.at(
                at,
                format!("{owner} {name} contains a NUL byte, which no environment can hold"),
            );
        }
        out.push((name, value));
    }
    out
}

fn check_steps(errors: &mut Collector<'_>, at: usize, name: &str, raw: &RawSteps) -> Vec<Step> {
    let raw_steps: Vec<&RawStep>;
    let single;
    match raw {
        RawSteps::One(cmd) => {
            single = RawStep::Shell(cmd.clone());
            raw_steps = vec![&single];
        }
        RawSteps::Many(list) => raw_steps = list.iter().collect(),
    }
    if raw_steps.is_empty() {
        errors.at(
            at,
            format!("{name}: sh is empty; give at least one command"),
        );
    }
    let mut steps = Vec::new();
    for (i, step) in raw_steps.into_iter().enumerate() {
        let n = i + 1;
        let step = match step {
            RawStep::Shell(cmd) => {
                if cmd.trim().is_empty() {
                    errors.at(
                        at,
                        format!("{name}: step {n} is an empty command; write the command to run"),
                    );
                }
                Step::Shell(cmd.clone())
            }
            RawStep::Argv(argv) => {
                if argv.first().is_none_or(|program| program.is_empty()) {
                    errors.at(at, format!("{name}: step {n} is an argv without a program; its first element names the program to run"));
                }
                Step::Argv(argv.clone())
            }
        };
        let has_nul = match &step {
            Step::Shell(cmd) => cmd.contains('\0'),
            Step::Argv(argv) => argv.iter().any(|a| a.contains('\0')),
        };
        if has_nul {
            errors.at(
                at,
                format!("{name}: step {n} contains a NUL byte, which no command line can hold"),
            );
        }
        steps.push(step);
    }
    steps
}

fn check_globs(
    errors: &mut Collector<'_>,
    at: usize,
    name: &str,
    field: &str,
    patterns: &[String],
) -> Vec<glob::Pattern> {
    let mut out = Vec::new();
    for text in patterns {
        match glob::Pattern::new(text) {
            Ok(pattern) => out.push(pattern),
            Err(e) => errors.at(
                at,
                format!(
                    "{name}: when.{field} pattern {text:?} is invalid ({}); fix the glob",
                    e.msg
                ),
            ),
        }
    }
    out
}

/// A job's `artifacts`: each a glob inside the workspace, so neither
/// absolute nor climbing out with `..` (the executor also refuses, at run
/// time, any match whose real path is outside).
fn check_artifacts(
    errors: &mut Collector<'_>,
    at: usize,
    name: &str,
    entries: &[String],
) -> Vec<Artifact> {
    let mut out = Vec::new();
    for (i, text) in entries.iter().enumerate() {
        let n = i + 1;
        let glob = text.trim_end_matches('/');
        if text.trim().is_empty() {
            errors.at(
                at,
                format!("{name}: artifacts entry {n} is empty; write a path or glob relative to the workspace, e.g. \"dist/*.tar.gz\""),
            );
        } else if text.contains('\0') {
            errors.at(
                at,
                format!("{name}: artifact {text:?} contains a NUL byte, which no path can hold"),
            );
        } else if text.starts_with('/') {
            errors.at(
                at,
                format!("{name}: artifact {text:?} is an absolute path; write it relative to the workspace, e.g. \"dist/*.tar.gz\""),
            );
        } else if glob.split('/').any(|part| part == "..") {
            errors.at(
                at,
                format!("{name}: artifact {text:?} climbs out of the workspace with '..'; write a path inside the workspace"),
            );
        } else {
            match glob::Pattern::new(glob) {
                Ok(pattern) => out.push(Artifact {
                    text: text.clone(),
                    pattern,
                }),
                Err(e) => errors.at(
                    at,
                    format!(
                        "{name}: artifact {text:?} is not a valid glob ({}); fix the glob",
                        e.msg
                    ),
                ),
            }
        }
    }
    out
}

/// A job's `cache`: each a path inside the workspace's checkout (not
/// absolute, no `..`, nothing of `.git`, which quire writes for every run),
/// listed once, and none inside another (saving the outer one would take
/// the inner one with it).
fn check_cache(
    errors: &mut Collector<'_>,
    at: usize,
    name: &str,
    entries: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, text) in entries.iter().enumerate() {
        let n = i + 1;
        let parts: Vec<&str> = text
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let path = parts.join("/");
        let problem = if text.trim().is_empty() {
            format!(
                "{name}: cache entry {n} is empty; write a path relative to the workspace, e.g. \"target\""
            )
        } else if text.contains('\0') {
            format!("{name}: cache path {text:?} contains a NUL byte, which no path can hold")
        } else if text.starts_with('/') {
            format!(
                "{name}: cache path {text:?} is an absolute path; write it relative to the workspace, e.g. \"target\""
            )
        } else if parts.contains(&"..") {
            format!(
                "{name}: cache path {text:?} climbs out of the workspace with '..'; write a path inside the workspace"
            )
        } else if path.is_empty() {
            format!(
                "{name}: cache path {text:?} is the whole workspace; name a directory in it, e.g. \"target\""
            )
        } else if parts.iter().any(|p| p.eq_ignore_ascii_case(".git")) {
            format!(
                "{name}: cache path {text:?} is in .git, which quire writes for every run; cache a directory of the checkout instead"
            )
        } else if out.contains(&path) {
            format!("{name}: cache path {text:?} is listed twice; remove one")
        } else if let Some(other) = out
            .iter()
            .find(|o| path.starts_with(&format!("{o}/")) || o.starts_with(&format!("{path}/")))
        {
            format!("{name}: cache paths {other:?} and {text:?} overlap; keep the outer one")
        } else {
            out.push(path);
            continue;
        };
        errors.at(at, problem);
    }
    out
}

/// Cycles (each named once) and jobs that no chain of inputs connects to the
/// push (those hanging off a cycle). A job downstream of one whose inputs
/// were already reported as wrong (`broken`) is not reported again: that
/// error is the one to fix.
fn check_graph(errors: &mut Collector<'_>, jobs: &[Job], starts: &[usize], broken: &[bool]) {
    const UNSEEN: u8 = 0;
    const ON_STACK: u8 = 1;
    const DONE: u8 = 2;
    let mut mark = vec![UNSEEN; jobs.len()];
    let mut in_cycle = vec![false; jobs.len()];
    for root in 0..jobs.len() {
        if mark[root] != UNSEEN {
            continue;
        }
        // Iterative DFS: (job, its needs not yet visited).
        let mut stack: Vec<(usize, Vec<usize>)> = vec![(root, jobs[root].needs().collect())];
        mark[root] = ON_STACK;
        while let Some((job, pending)) = stack.last_mut() {
            let job = *job;
            match pending.pop() {
                Some(next) if mark[next] == UNSEEN => {
                    mark[next] = ON_STACK;
                    stack.push((next, jobs[next].needs().collect()));
                }
                Some(next) if mark[next] == ON_STACK => {
                    let from = stack.iter().position(|(j, _)| *j == next).unwrap_or(0);
                    let members: Vec<usize> = stack[from..].iter().map(|(j, _)| *j).collect();
                    for &m in &members {
                        in_cycle[m] = true;
                    }
                    // Jobs list their needs, so the path runs against the
                    // data flow: name it in the order the jobs would run,
                    // starting from the one that comes first in the file.
                    let mut flow: Vec<usize> = members.iter().rev().copied().collect();
                    let first = (0..flow.len())
                        .min_by_key(|&k| starts[flow[k]])
                        .unwrap_or(0);
                    flow.rotate_left(first);
                    let mut names: Vec<&str> = flow.iter().map(|&m| jobs[m].id.as_str()).collect();
                    names.push(names[0]);
                    errors.at(
                        starts[flow[0]],
                        format!(
                            "jobs {} form a cycle; remove one of these inputs",
                            names.join(" -> ")
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    mark[job] = DONE;
                    stack.pop();
                }
            }
        }
    }

    // Reachability from the push, following data flow.
    let mut reached = vec![false; jobs.len()];
    let mut changed = true;
    while changed {
        changed = false;
        for (i, job) in jobs.iter().enumerate() {
            if reached[i] {
                continue;
            }
            let ok = job.inputs.iter().any(|input| match input {
                Input::Push => true,
                Input::Job(j) => reached[*j],
            });
            if ok {
                reached[i] = true;
                changed = true;
            }
        }
    }
    let mut tainted: Vec<bool> = broken.to_vec();
    let mut changed = true;
    while changed {
        changed = false;
        for (i, job) in jobs.iter().enumerate() {
            if !tainted[i] && job.needs().any(|j| tainted[j]) {
                tainted[i] = true;
                changed = true;
            }
        }
    }
    for (i, job) in jobs.iter().enumerate() {
        if !reached[i] && !tainted[i] && !in_cycle[i] {
            errors.at(
                starts[i],
                format!(
                    "job {:?} can never run: none of its inputs leads back to \"{PUSH_SOURCE}\"; add \"{PUSH_SOURCE}\" or a job that runs to its inputs",
                    job.id
                ),
            );
        }
    }
}
