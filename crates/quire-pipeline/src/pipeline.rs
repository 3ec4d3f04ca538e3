//! The pipeline file: `.quire/ci.toml` parsed into typed structs and
//! validated fail-closed, in two passes: reading the TOML stops at its first
//! error; a file that reads is then checked against every other rule, and
//! all of those problems are reported, each with the line and column it
//! concerns, the job, and the fix.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Bound;
use std::time::Duration;

use quire_model::refs::RefGlob;
use serde::Deserialize;
use toml::Spanned;

pub use crate::resources::Resources;

/// The source every pipeline starts from: a push of the ref.
pub const PUSH_SOURCE: &str = "quire/push";

/// A validated pipeline: jobs in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Environment for every step of every job.
    pub env: Vec<(String, String)>,
    pub jobs: Vec<Job>,
    /// Which of the repository's refs the workspace names.
    pub refs: WorkspaceRefs,
}

/// Which refs a run's workspace names (`[workspace] refs`, docs/PIPELINE.md,
/// "The workspace").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkspaceRefs {
    /// The pushed ref alone (the default): a run's set-up reads no other
    /// ref, so it costs the same in a repository of ten refs or ten
    /// thousand.
    #[default]
    Pushed,
    /// Every branch (as `origin/<b>`) and tag of the repository, read when
    /// the run starts: for `git describe` and the like, at a cost that
    /// grows with the repository's refs.
    All,
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
    /// Whether the job's steps write stderr through a pipe of its own
    /// (`separate_stderr = true`): by default a step's stdout and stderr
    /// share one pipe, so that its log keeps the order it wrote in.
    pub separate_stderr: bool,
    /// Names of the home's secrets this job's steps get as variables.
    pub secrets: Vec<String>,
    /// Globs, relative to the workspace, of the files kept when the job
    /// ends (docs/PIPELINE.md, "Artifacts").
    pub artifacts: Vec<Artifact>,
    /// Paths, relative to the workspace and normalized (no `.`, no empty or
    /// trailing component), carried over between runs of this job
    /// (docs/PIPELINE.md, "Caches").
    pub cache: Vec<String>,
    /// What the job asks of the machine that runs it (docs/PIPELINE.md,
    /// "Resources"); all none when it sets no `resources`.
    pub resources: Resources,
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
                .map(|a| quire_model::shell::sh_word(a))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Glob filters on the pushed ref: a job with `when` runs only on a branch
/// matching one of `branches` or a tag matching one of `tags`.
#[derive(Debug, Clone, PartialEq)]
pub struct When {
    pub branches: Vec<RefGlob>,
    pub tags: Vec<RefGlob>,
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
    workspace: RawWorkspace,
    #[serde(default)]
    jobs: BTreeMap<Spanned<String>, Spanned<RawJob>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    refs: Option<Spanned<String>>,
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
    separate_stderr: bool,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    artifacts: Vec<String>,
    #[serde(default)]
    cache: Vec<String>,
    /// Read as plain TOML and checked in the second pass, so that a value
    /// of any type is a problem named with the job.
    resources: Option<toml::Value>,
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

/// The most problems a refused file lists; the rest are counted
/// ([`Problems::omitted`]). Finding them all stays linear in the file's
/// size; only the listed ones are located.
pub const MAX_LISTED: usize = 50;

/// How much of a pipeline quire accepts. The home's `config.toml` sets
/// them (`max_pipeline_kb`, `max_jobs`, `max_steps`, docs/OPERATIONS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest file read, in KiB; a larger one is refused from its
    /// size alone, before it is read.
    pub max_file_kb: u64,
    /// The most jobs a pipeline may define.
    pub max_jobs: usize,
    /// The most steps one job may have.
    pub max_steps: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_file_kb: 512,
            max_jobs: 500,
            max_steps: 1000,
        }
    }
}

impl Limits {
    /// The largest file read, in bytes.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_kb.saturating_mul(1024)
    }

    /// The refusal of a file of `size` bytes, when that is over the limit:
    /// for callers that know the size before reading the file (a git blob's
    /// header, a file's metadata), so they never read it.
    pub fn refuse_size(&self, size: u64) -> Option<Problems> {
        (size > self.max_file_bytes()).then(|| self.too_large(size))
    }

    /// The refusal of a file of `size` bytes, which a reader found over
    /// the limit.
    pub fn too_large(&self, size: u64) -> Problems {
        Problems::one(Diagnostic {
            line: None,
            column: None,
            message: format!(
                "the file is {size} bytes, over the {} bytes (max_pipeline_kb = {}) quire reads; it was not read",
                self.max_file_bytes(),
                self.max_file_kb
            ),
        })
    }
}

/// Why a pipeline file was refused: its first [`MAX_LISTED`] problems in
/// file order (a problem of the whole file, which has no location, first),
/// and how many more were found. It dereferences to the listed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    pub listed: Vec<Diagnostic>,
    /// Problems found beyond the listed ones.
    pub omitted: usize,
}

impl Problems {
    fn one(diagnostic: Diagnostic) -> Problems {
        Problems {
            listed: vec![diagnostic],
            omitted: 0,
        }
    }

    /// Every problem found, listed or not.
    pub fn total(&self) -> usize {
        self.listed.len() + self.omitted
    }

    /// What to say after the listed problems, when some were left out.
    pub fn omitted_line(&self) -> Option<String> {
        (self.omitted > 0).then(|| {
            format!(
                "and {} more problem{}, not listed; fix the ones above and validate again",
                self.omitted,
                if self.omitted == 1 { "" } else { "s" }
            )
        })
    }
}

impl<'p> IntoIterator for &'p Problems {
    type Item = &'p Diagnostic;
    type IntoIter = std::slice::Iter<'p, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.listed.iter()
    }
}

impl std::ops::Deref for Problems {
    type Target = [Diagnostic];

    fn deref(&self) -> &[Diagnostic] {
        &self.listed
    }
}

/// Where the lines of a text start, found once, so that locating a byte
/// offset is a binary search and a count of the characters before it on
/// its line, however many offsets are located.
struct LineIndex<'t> {
    text: &'t [u8],
    /// The byte offset of each line's first byte; the first is 0.
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> LineIndex<'t> {
        let text = text.as_bytes();
        let starts = std::iter::once(0)
            .chain(
                text.iter()
                    .enumerate()
                    .filter(|&(_, &b)| b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        LineIndex { text, starts }
    }

    /// The 1-based line and column (in characters) of a byte offset; an
    /// offset past the end is the end.
    fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        // starts[0] = 0 <= offset, so at least one line starts at or before it.
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self.starts[line - 1];
        let column = String::from_utf8_lossy(&self.text[start..offset])
            .chars()
            .count()
            + 1;
        (line, column)
    }
}

/// The problems found so far, each at the byte offset it concerns (none for
/// the whole file); located only when the file is refused, and only those
/// listed.
#[derive(Default)]
struct Collector {
    found: Vec<(Option<usize>, String)>,
}

impl Collector {
    fn at(&mut self, offset: usize, message: String) {
        self.found.push((Some(offset), message));
    }

    fn whole_file(&mut self, message: String) {
        self.found.push((None, message));
    }

    fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The first [`MAX_LISTED`] problems in file order, located; those
    /// found at one offset stay in the order they were found. Linear in the
    /// number found: the first ones are selected, then only they sorted.
    fn into_problems(self, text: &str) -> Problems {
        // (where, the order found, message); None sorts first.
        let mut found: Vec<(Option<usize>, usize, String)> = self
            .found
            .into_iter()
            .enumerate()
            .map(|(seq, (at, message))| (at, seq, message))
            .collect();
        let omitted = found.len().saturating_sub(MAX_LISTED);
        if omitted > 0 {
            found.select_nth_unstable_by_key(MAX_LISTED - 1, |(at, seq, _)| (*at, *seq));
            found.truncate(MAX_LISTED);
        }
        found.sort_unstable_by_key(|(at, seq, _)| (*at, *seq));
        let index = LineIndex::new(text);
        let listed = found
            .into_iter()
            .map(|(at, _, message)| {
                let (line, column) = match at.map(|at| index.locate(at)) {
                    Some((line, column)) => (Some(line), Some(column)),
                    None => (None, None),
                };
                Diagnostic {
                    line,
                    column,
                    message,
                }
            })
            .collect();
        Problems { listed, omitted }
    }
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
    /// Parse and validate a pipeline file's text under the default
    /// [`Limits`]. On failure, the problems found, in file order.
    pub fn parse(text: &str) -> Result<Pipeline, Problems> {
        Pipeline::parse_with(text, &Limits::default())
    }

    /// Parse and validate a pipeline file's text under `limits`. Linear in
    /// the text's size, however many problems it has.
    pub fn parse_with(text: &str, limits: &Limits) -> Result<Pipeline, Problems> {
        // Callers refuse a file from its size before reading it; a text
        // handed in whole is held to the same limit.
        if let Some(refused) = limits.refuse_size(text.len() as u64) {
            return Err(refused);
        }
        let raw: RawPipeline = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let mut errors = Collector::default();
                let message = e.message().trim().to_string();
                match e.span() {
                    Some(span) => errors.at(span.start, message),
                    None => errors.whole_file(message),
                }
                return Err(errors.into_problems(text));
            }
        };
        let mut errors = Collector::default();
        let env = check_env(&mut errors, None, raw.env);
        let refs = match raw.workspace.refs {
            None => WorkspaceRefs::Pushed,
            Some(refs) => match refs.get_ref().as_str() {
                "pushed" => WorkspaceRefs::Pushed,
                "all" => WorkspaceRefs::All,
                other => {
                    errors.at(
                        refs.span().start,
                        format!(
                            "workspace.refs is {other:?}; it must be \"pushed\" (the pushed ref alone, the default) or \"all\" (every branch and tag of the repository)"
                        ),
                    );
                    WorkspaceRefs::Pushed
                }
            },
        };

        // Jobs in file order.
        let mut raw_jobs: Vec<(Spanned<String>, Spanned<RawJob>)> = raw.jobs.into_iter().collect();
        raw_jobs.sort_by_key(|(id, _)| id.span().start);
        if raw_jobs.is_empty() {
            errors.whole_file(
                "the pipeline defines no jobs; add a [jobs.<id>] table with inputs and sh".into(),
            );
        }
        // Too many jobs: that is the one problem reported, and nothing else
        // is checked.
        if let Some((first_over, _)) = raw_jobs.get(limits.max_jobs) {
            let mut errors = Collector::default();
            errors.at(
                first_over.span().start,
                format!(
                    "the pipeline defines {} jobs, more than the {} allowed (max_jobs); remove jobs or merge their steps",
                    raw_jobs.len(),
                    limits.max_jobs
                ),
            );
            return Err(errors.into_problems(text));
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
            if id.len() > quire_model::model::MAX_JOB_ID_LEN {
                errors.at(
                    at,
                    format!(
                        "job id {:?}... is {} bytes long, over the {} a job id may have; shorten the table name",
                        id.chars().take(20).collect::<String>(),
                        id.len(),
                        quire_model::model::MAX_JOB_ID_LEN
                    ),
                );
            } else if !quire_model::is_job_id(&id) {
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
            let steps = check_steps(&mut errors, at, &name, &raw.sh, limits.max_steps);
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
            let resources = match &raw.resources {
                None => Resources::default(),
                Some(value) => {
                    let (resources, problems) = Resources::check(&name, value);
                    for problem in problems {
                        errors.at(at, problem);
                    }
                    resources
                }
            };
            jobs.push(Job {
                id,
                inputs,
                steps,
                env,
                when,
                timeout,
                allow_failure: raw.allow_failure,
                separate_stderr: raw.separate_stderr,
                secrets: raw.secrets.clone(),
                artifacts,
                cache,
                resources,
            });
        }

        let starts: Vec<usize> = raw_jobs.iter().map(|(id, _)| id.span().start).collect();
        check_graph(&mut errors, &jobs, &starts, &broken);

        if errors.is_empty() {
            Ok(Pipeline { env, jobs, refs })
        } else {
            Err(errors.into_problems(text))
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
    errors: &mut Collector,
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

fn check_steps(
    errors: &mut Collector,
    at: usize,
    name: &str,
    raw: &RawSteps,
    max_steps: usize,
) -> Vec<Step> {
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
    if raw_steps.len() > max_steps {
        // Its steps are not checked one by one: this is the problem to fix.
        errors.at(
            at,
            format!(
                "{name}: sh has {} steps, more than the {max_steps} allowed (max_steps); join commands into one step or split the job",
                raw_steps.len()
            ),
        );
        return Vec::new();
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
    errors: &mut Collector,
    at: usize,
    name: &str,
    field: &str,
    patterns: &[String],
) -> Vec<RefGlob> {
    let mut out = Vec::new();
    for text in patterns {
        match RefGlob::new(text) {
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
    errors: &mut Collector,
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
/// the inner one with it). Each path is looked up among those kept in
/// O(its length x log of their number), so a hostile list stays linear.
fn check_cache(errors: &mut Collector, at: usize, name: &str, entries: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // The kept paths with '/' as NUL (which no entry holds by then): in this
    // byte order a path's nearest predecessor is its ancestor among the
    // kept ones, if it has one, and its nearest successor its descendant.
    let mut kept: BTreeSet<String> = BTreeSet::new();
    for (i, text) in entries.iter().enumerate() {
        let n = i + 1;
        let parts: Vec<&str> = text
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let path = parts.join("/");
        let key = parts.join("\0");
        let overlapping = || {
            let ancestor = kept
                .range::<str, _>((Bound::Unbounded, Bound::Excluded(key.as_str())))
                .next_back()
                .filter(|k| {
                    key.strip_prefix(k.as_str())
                        .is_some_and(|r| r.starts_with('\0'))
                });
            let descendant = kept
                .range::<str, _>((Bound::Excluded(key.as_str()), Bound::Unbounded))
                .next()
                .filter(|k| {
                    k.strip_prefix(key.as_str())
                        .is_some_and(|r| r.starts_with('\0'))
                });
            ancestor.or(descendant).map(|k| k.replace('\0', "/"))
        };
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
        } else if kept.contains(&key) {
            format!("{name}: cache path {text:?} is listed twice; remove one")
        } else if let Some(other) = overlapping() {
            format!("{name}: cache paths {other:?} and {text:?} overlap; keep the outer one")
        } else {
            kept.insert(key);
            out.push(path);
            continue;
        };
        errors.at(at, problem);
    }
    out
}

/// Cycles and jobs that no chain of inputs connects to the push (those
/// hanging off a cycle). A cycle is named when it takes in a job no cycle
/// named before did, so a job is named in one cycle or a few, however many
/// inputs close one. A job downstream of one whose inputs were already
/// reported as wrong (`broken`) is not reported again: that error is the
/// one to fix. Linear in the jobs and their inputs, but for naming the
/// cycles.
fn check_graph(errors: &mut Collector, jobs: &[Job], starts: &[usize], broken: &[bool]) {
    const UNSEEN: u8 = 0;
    const ON_STACK: u8 = 1;
    const DONE: u8 = 2;
    let needs = |job: usize| {
        let mut needs: Vec<usize> = jobs[job].needs().collect();
        needs.sort_unstable();
        needs.dedup();
        needs
    };
    let mut mark = vec![UNSEEN; jobs.len()];
    // Where each job on the stack is on it.
    let mut depth = vec![0; jobs.len()];
    let mut in_cycle = vec![false; jobs.len()];
    for root in 0..jobs.len() {
        if mark[root] != UNSEEN {
            continue;
        }
        // Iterative DFS: (job, its needs not yet visited).
        let mut stack: Vec<(usize, Vec<usize>)> = vec![(root, needs(root))];
        mark[root] = ON_STACK;
        while let Some((job, pending)) = stack.last_mut() {
            let job = *job;
            match pending.pop() {
                Some(next) if mark[next] == UNSEEN => {
                    mark[next] = ON_STACK;
                    depth[next] = stack.len();
                    stack.push((next, needs(next)));
                }
                Some(next) if mark[next] == ON_STACK => {
                    let members = &stack[depth[next]..];
                    if members.iter().all(|(m, _)| in_cycle[*m]) {
                        continue;
                    }
                    let members: Vec<usize> = members.iter().map(|(j, _)| *j).collect();
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

    // The jobs each job feeds, to follow the data flow.
    let mut feeds: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        for need in job.needs() {
            feeds[need].push(i);
        }
    }
    // Everything downstream of `from` (included) is marked in `marks`.
    let spread = |marks: &mut Vec<bool>, from: Vec<usize>| {
        let mut queue = from;
        while let Some(job) = queue.pop() {
            for &fed in &feeds[job] {
                if !marks[fed] {
                    marks[fed] = true;
                    queue.push(fed);
                }
            }
        }
    };
    // Reachability from the push.
    let mut reached: Vec<bool> = jobs
        .iter()
        .map(|job| job.inputs.contains(&Input::Push))
        .collect();
    let from = (0..jobs.len()).filter(|&i| reached[i]).collect();
    spread(&mut reached, from);
    let mut tainted: Vec<bool> = broken.to_vec();
    let from = (0..jobs.len()).filter(|&i| tainted[i]).collect();
    spread(&mut tainted, from);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Where a byte offset falls, counted the slow way: from byte 0.
    fn naive(text: &str, offset: usize) -> (usize, usize) {
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

    #[test]
    fn offsets_are_located_by_line_and_character() {
        let text = "ab\n\nçd\r\nx";
        let index = LineIndex::new(text);
        let cases = [
            (0, (1, 1)),
            (2, (1, 3)), // the newline ends line 1
            (3, (2, 1)), // an empty line
            (4, (3, 1)),
            (6, (3, 2)), // after 'ç', two bytes, one character
            (8, (3, 4)), // the newline after '\r'
            (9, (4, 1)),
            (10, (4, 2)), // the end
            (99, (4, 2)), // past the end is the end
        ];
        for (offset, expected) in cases {
            assert_eq!(index.locate(offset), expected, "offset {offset}");
        }
        assert_eq!(LineIndex::new("").locate(0), (1, 1));
    }

    proptest! {
        #[test]
        fn locating_agrees_with_counting_from_the_start(
            text in "[a\nç\r]{0,64}",
            offsets in proptest::collection::vec(0usize..80, 1..8),
        ) {
            let index = LineIndex::new(&text);
            for offset in offsets {
                prop_assert_eq!(index.locate(offset), naive(&text, offset));
            }
        }

        /// The ordered-set lookup of overlapping cache paths finds what
        /// comparing every pair finds.
        #[test]
        fn cache_overlaps_are_found_as_by_comparing_every_pair(
            entries in proptest::collection::vec("[ab./-]{1,6}", 0..12),
        ) {
            let mut errors = Collector::default();
            let kept = check_cache(&mut errors, 0, "job \"a\"", &entries);
            // The reference: each entry against those kept before it.
            let mut expected: Vec<String> = Vec::new();
            let mut refused = 0;
            for text in &entries {
                let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
                let path = parts.join("/");
                let bad = text.starts_with('/') || parts.contains(&"..") || path.is_empty()
                    || expected.contains(&path)
                    || expected.iter().any(|o| path.starts_with(&format!("{o}/")) || o.starts_with(&format!("{path}/")));
                if bad {
                    refused += 1;
                } else {
                    expected.push(path);
                }
            }
            prop_assert_eq!(&kept, &expected);
            prop_assert_eq!(errors.found.len(), refused);
        }
    }

    #[test]
    fn overlapping_cache_paths_are_named() {
        let mut errors = Collector::default();
        let entries = ["a-x", "a/b", "a", "a/b/c", "a.b", "c/d", "c"].map(String::from);
        let kept = check_cache(&mut errors, 0, "job \"j\"", &entries);
        assert_eq!(kept, ["a-x", "a/b", "a.b", "c/d"]);
        let messages: Vec<&str> = errors.found.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(
            messages,
            [
                "job \"j\": cache paths \"a/b\" and \"a\" overlap; keep the outer one",
                "job \"j\": cache paths \"a/b\" and \"a/b/c\" overlap; keep the outer one",
                "job \"j\": cache paths \"c/d\" and \"c\" overlap; keep the outer one",
            ]
        );
    }

    #[test]
    fn only_the_first_problems_are_listed_and_the_rest_counted() {
        let text = "x\n".repeat(200);
        let mut errors = Collector::default();
        // Found out of order, as the rules find them.
        for line in (0..200).rev() {
            errors.at(line * 2, format!("problem on line {}", line + 1));
        }
        errors.whole_file("the whole file".into());
        let problems = errors.into_problems(&text);
        assert_eq!(
            (problems.len(), problems.omitted, problems.total()),
            (MAX_LISTED, 151, 201)
        );
        assert_eq!(problems[0].to_string(), "the whole file");
        for (k, d) in problems[1..].iter().enumerate() {
            assert_eq!(
                d.to_string(),
                format!("{}:1: problem on line {}", k + 1, k + 1)
            );
        }
        assert_eq!(
            problems.omitted_line().unwrap(),
            "and 151 more problems, not listed; fix the ones above and validate again"
        );
    }
}
