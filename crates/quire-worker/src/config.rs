//! The home's optional `config.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use quire_exec::contain::JobLimits;
use quire_exec::exec::{DEFAULT_MAX_LOG_MB, Executor, SandboxMode};
use quire_exec::netns::StepNetwork;
use quire_model::refs::{RefGlob, RefName};
use quire_pipeline::Limits;

use quire_store::{Home, Result};

/// Settings for workers and hooks; every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many workers may execute runs at once: the number of CPUs, at
    /// least 2, when not set.
    #[serde(default = "default_max_workers")]
    pub max_workers: usize,
    /// How many workers one repository's runs may hold at once
    /// ([`Config::max_workers_per_repo`]): `max_workers - 1` (at least 1)
    /// when not set, so one slot is always left for other repositories.
    pub max_workers_per_repo: Option<usize>,
    /// The longest any job may run, a span such as "6h": it caps every
    /// job's `timeout`, and is the timeout of a job that sets none.
    #[serde(default = "default_max_job_timeout")]
    pub max_job_timeout: String,
    /// How many jobs of one run may run at once; the number of CPUs when
    /// not set.
    pub max_parallel_jobs: Option<usize>,
    /// Keep `runs/<id>/workspace` after a run instead of deleting it.
    #[serde(default)]
    pub keep_workspaces: bool,
    /// Where the bare repositories live: a run's `repo` is its path
    /// relative to this when it lies under it.
    pub repos_root: Option<PathBuf>,
    /// Defaults for `quire-runs prune`.
    #[serde(default)]
    pub retention: Retention,
    /// Named secrets a pipeline's jobs may ask for (`secrets = ["NAME"]`):
    /// a literal value, or `{ file = "/path" }` to read it from a file.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// How many MiB of jobs' caches each repository may keep; 0 turns
    /// caches off (docs/PIPELINE.md, "Caches").
    #[serde(default = "default_cache_max_mb")]
    pub cache_max_mb: u64,
    /// Whether steps run in the filesystem sandbox: "required",
    /// "best-effort" (the default) or "off" (docs/SECURITY.md).
    #[serde(default)]
    pub sandbox: SandboxMode,
    /// The user steps run as, when quire runs as root.
    pub run_as: Option<String>,
    /// The network steps get: "isolated" (the default: outbound only,
    /// not the host's loopback), "host" or "none" (docs/SECURITY.md).
    #[serde(default)]
    pub step_network: StepNetwork,
    /// The largest `.quire/ci.toml` read, in KiB: a larger one is refused
    /// from its size, unread.
    #[serde(default = "default_max_pipeline_kb")]
    pub max_pipeline_kb: u64,
    /// The most jobs a pipeline may define.
    #[serde(default = "default_max_jobs")]
    pub max_jobs: usize,
    /// The most steps one job may have.
    #[serde(default = "default_max_steps")]
    pub max_steps: usize,
    /// How much of a step's output its log keeps, in MiB.
    #[serde(default = "default_max_log_mb")]
    pub max_log_mb: u64,
    /// The memory (MiB) each job's processes may use together: its cgroup's
    /// `memory.max`; three quarters of the machine's memory when not set.
    /// Enforced only where jobs get cgroups with the memory controller
    /// (docs/OPERATIONS.md, "Containment").
    pub job_memory_mb: Option<u64>,
    /// How many processes (and threads) each job may have at once: its
    /// cgroup's `pids.max`; [`DEFAULT_JOB_PIDS_MAX`] when not set; enforced
    /// likewise.
    pub job_pids_max: Option<u64>,
    /// Whether an ended run's result is written as a git note on its
    /// commit, under `refs/notes/ci` of its repository.
    #[serde(default = "yes")]
    pub notes: bool,
    /// Commands run when a matching run ends (`[[notify]]`).
    #[serde(default)]
    pub notify: Vec<Notify>,
    /// What steps see (`[steps]`): variables set before the pipeline's,
    /// and directories the sandbox would hide that they may read and run.
    #[serde(default)]
    pub steps: Steps,
    /// Where jobs run (`[executor]`): this machine, or a Slurm cluster.
    #[serde(default)]
    pub executor: ExecutorConfig,
}

/// How many jobs of a run go to a Slurm cluster at once when
/// `max_parallel_jobs` is not set: each is an `srun` on the server.
pub const SLURM_PARALLEL_JOBS: usize = 64;

/// `[executor]` (docs/OPERATIONS.md, "Running jobs on a Slurm cluster").
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// "local" (the default) or "slurm".
    #[serde(default)]
    pub kind: ExecutorKind,
    /// sbatch/srun `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// Where Slurm's `srun` is (`scancel` and `squeue` beside it).
    pub srun: Option<PathBuf>,
    /// The quire-run binary on the nodes; the server's own path when not
    /// set.
    pub node_quire_run: Option<PathBuf>,
    /// Node-local directory for workspaces; the node's `$TMPDIR` or `/tmp`
    /// when not set.
    pub node_scratch: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    #[default]
    Local,
    Slurm,
}

impl ExecutorConfig {
    /// The Slurm host this names, for `kind = "slurm"`.
    pub fn slurm(&self) -> Option<quire_exec::slurm::Slurm> {
        if self.kind != ExecutorKind::Slurm {
            return None;
        }
        let node_quire_run = self.node_quire_run.clone().unwrap_or_else(|| {
            std::env::current_exe().unwrap_or_else(|_| PathBuf::from("quire-run"))
        });
        Some(quire_exec::slurm::Slurm {
            partition: self.partition.clone(),
            account: self.account.clone(),
            srun: self
                .srun
                .clone()
                .unwrap_or_else(|| PathBuf::from("/usr/bin/srun")),
            node_quire_run,
            node_scratch: self.node_scratch.clone(),
        })
    }

    fn check(&self) -> Result<(), String> {
        let named = [("partition", &self.partition), ("account", &self.account)];
        for (key, value) in named {
            if let Some(v) = value
                && (v.is_empty()
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.,".contains(c)))
            {
                return Err(format!(
                    "[executor] {key} {v:?}: use letters, digits and - _ . , only"
                ));
            }
        }
        for (key, value) in [
            ("srun", &self.srun),
            ("node_quire_run", &self.node_quire_run),
            ("node_scratch", &self.node_scratch),
        ] {
            if let Some(p) = value
                && !p.is_absolute()
            {
                return Err(format!(
                    "[executor] {key} {}: give an absolute path",
                    p.display()
                ));
            }
        }
        Ok(())
    }
}

/// `[steps]` (docs/OPERATIONS.md): the admin's say in what steps see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Steps {
    /// Variables every step gets before the pipeline's `env` (which may
    /// override them); `PATH` here replaces the fixed default.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Absolute directories steps may read and execute although the
    /// sandbox would hide them (a toolchain in the CI user's home).
    #[serde(default)]
    pub read: Vec<PathBuf>,
}

/// A `[[notify]]` entry: a command run, with the run's `show --json`
/// document on stdin, when a run it matches ends (docs/OPERATIONS.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// The end states it is for: "complete", "failed", "superseded".
    #[serde(default = "failed_only")]
    pub on: Vec<String>,
    /// Globs over the repository's name (with or without `.git`), by the
    /// one rule ([`RefGlob`]); any repository when not given.
    pub repos: Option<Vec<String>>,
    /// Globs over the ref, full (`refs/heads/main`) or short (`main`), by
    /// the one rule ([`RefGlob`]: `*` within a segment, `**` across); any
    /// ref when not given.
    pub refs: Option<Vec<String>>,
    /// The program and its arguments; no shell.
    pub command: Vec<String>,
    /// How long it may run before it is killed: a span such as "30s".
    pub timeout: Option<String>,
}

/// How long a notifier may run when its entry says nothing.
pub const DEFAULT_NOTIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn failed_only() -> Vec<String> {
    vec!["failed".into()]
}

fn yes() -> bool {
    true
}

impl Notify {
    /// Whether this entry is for `run`, which ended.
    pub fn matches(&self, run: &quire_store::Run) -> bool {
        let repo = run.repo.as_str();
        let bare = repo.strip_suffix(".git").unwrap_or(repo);
        // By the one rule of `when` and `list --ref`: `*` within a
        // segment, `**` across.
        let repo_matches = match &self.repos {
            None => true,
            Some(globs) => globs
                .iter()
                .any(|g| RefGlob::new(g).is_ok_and(|p| p.matches(repo) || p.matches(bare))),
        };
        let ref_name = RefName::new(run.ref_name.as_str());
        let ref_matches = match &self.refs {
            None => true,
            Some(globs) => globs.iter().any(|g| {
                RefGlob::new(g)
                    .is_ok_and(|p| p.matches(ref_name.as_str()) || p.matches(ref_name.short()))
            }),
        };
        self.on.iter().any(|s| s == run.state.as_str()) && repo_matches && ref_matches
    }

    /// Its timeout.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .as_deref()
            .and_then(quire_model::clock::parse_span)
            .unwrap_or(DEFAULT_NOTIFY_TIMEOUT)
    }

    fn check(&self, n: usize) -> Result<(), String> {
        let at = format!("notify entry {n}");
        if self.command.first().is_none_or(String::is_empty) {
            return Err(format!(
                "{at}: command is empty; give the program and its arguments as an array"
            ));
        }
        if self.on.is_empty() {
            return Err(format!(
                "{at}: on is empty; name run end states: \"complete\", \"failed\", \"superseded\""
            ));
        }
        for state in &self.on {
            if !["complete", "failed", "superseded"].contains(&state.as_str()) {
                return Err(format!(
                    "{at}: {state:?} is not a state a run ends in; use \"complete\", \"failed\" or \"superseded\""
                ));
            }
        }
        for glob in self.repos.iter().chain(&self.refs).flatten() {
            if let Err(e) = RefGlob::new(glob) {
                return Err(format!("{at}: {glob:?} is not a glob: {e}"));
            }
        }
        if let Some(span) = &self.timeout
            && quire_model::clock::parse_span(span).is_none_or(|d| d.is_zero())
        {
            return Err(format!(
                "{at}: timeout {span:?} is not a span such as \"30s\" or \"2m\""
            ));
        }
        Ok(())
    }
}

/// Where a secret's value comes from.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "a secret is a string, or a table { file = \"/path\" }"
)]
pub enum SecretSource {
    Literal(String),
    File { file: PathBuf },
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Literal(_) => f.write_str("Literal(***)"),
            SecretSource::File { file } => write!(f, "File({})", file.display()),
        }
    }
}

/// The shortest secret quire accepts: a shorter value would be found by
/// chance in ordinary output, and could not be redacted reliably.
pub const MIN_SECRET_LEN: usize = quire_exec::MIN_SECRET_LEN;

/// `[retention]`: what `quire-runs prune` removes when not told otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// A span such as "30d": terminal runs that finished longer ago go.
    pub older_than: Option<String>,
    /// The newest terminal runs of each (repo, ref) that always stay.
    pub keep: Option<usize>,
}

/// The number of CPUs, at least 2: one pusher's run never holds the only
/// worker.
fn default_max_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

fn default_max_job_timeout() -> String {
    "6h".into()
}

/// How many processes a job may have when config.toml says nothing: room
/// for any build, not for a fork bomb.
pub const DEFAULT_JOB_PIDS_MAX: u64 = 4096;

fn default_cache_max_mb() -> u64 {
    2048
}

fn default_max_pipeline_kb() -> u64 {
    Limits::default().max_file_kb
}

fn default_max_jobs() -> usize {
    Limits::default().max_jobs
}

fn default_max_steps() -> usize {
    Limits::default().max_steps
}

fn default_max_log_mb() -> u64 {
    DEFAULT_MAX_LOG_MB
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_workers: default_max_workers(),
            max_workers_per_repo: None,
            max_job_timeout: default_max_job_timeout(),
            max_parallel_jobs: None,
            keep_workspaces: false,
            repos_root: None,
            retention: Retention::default(),
            secrets: BTreeMap::new(),
            cache_max_mb: default_cache_max_mb(),
            sandbox: SandboxMode::default(),
            run_as: None,
            step_network: StepNetwork::default(),
            max_pipeline_kb: default_max_pipeline_kb(),
            max_jobs: default_max_jobs(),
            max_steps: default_max_steps(),
            max_log_mb: default_max_log_mb(),
            job_memory_mb: None,
            job_pids_max: None,
            notes: true,
            notify: Vec::new(),
            steps: Steps::default(),
            executor: ExecutorConfig::default(),
        }
    }
}

/// Why the home's config.toml cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It exists but cannot be read (a directory, no permission, EIO).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// It was read, and says something quire cannot use.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// `config.toml` in the home, or the defaults when there is none.
    pub fn load(home: &Home) -> Result<Config, ConfigError> {
        let path = home.dir().join("config.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.message().trim().to_string(),
        })?;
        if let Some(span) = &config.retention.older_than
            && quire_model::clock::parse_span(span).is_none()
        {
            return Err(ConfigError::Invalid {
                path,
                message: format!(
                    "retention.older_than {span:?} is not a span such as \"30d\" or \"12h\""
                ),
            });
        }
        // Checked without reading secret files: the hook loads this too,
        // and has no business with secret values.
        config
            .check_secrets()
            .map_err(|message| ConfigError::Invalid {
                path: path.clone(),
                message,
            })?;
        if config.max_workers == 0 {
            return Err(ConfigError::Invalid {
                path,
                message: "max_workers must be at least 1".into(),
            });
        }
        if config.max_workers_per_repo == Some(0) {
            return Err(ConfigError::Invalid {
                path,
                message:
                    "max_workers_per_repo must be at least 1 (leave it out for max_workers - 1)"
                        .into(),
            });
        }
        if quire_model::clock::parse_span(&config.max_job_timeout).is_none() {
            return Err(ConfigError::Invalid {
                path,
                message: format!(
                    "max_job_timeout {:?} is not a span longer than 0s such as \"6h\" or \"90m\"",
                    config.max_job_timeout
                ),
            });
        }
        if config.run_as.as_deref() == Some("") {
            return Err(ConfigError::Invalid {
                path,
                message: "run_as is empty; name a user, or remove the key".into(),
            });
        }
        if config.max_parallel_jobs == Some(0) {
            return Err(ConfigError::Invalid {
                path,
                message: "max_parallel_jobs must be at least 1".into(),
            });
        }
        for (n, notify) in config.notify.iter().enumerate() {
            notify
                .check(n + 1)
                .map_err(|message| ConfigError::Invalid {
                    path: path.clone(),
                    message,
                })?;
        }
        config
            .executor
            .check()
            .map_err(|message| ConfigError::Invalid {
                path: path.clone(),
                message,
            })?;
        config
            .check_steps(home)
            .map_err(|message| ConfigError::Invalid {
                path: path.clone(),
                message,
            })?;
        config
            .check_limits()
            .map_err(|message| ConfigError::Invalid { path, message })?;
        Ok(config)
    }

    /// The limits are at least 1, and small enough to count in bytes.
    fn check_limits(&self) -> Result<(), String> {
        let limits: [(&str, u64, u64); 4] = [
            ("max_pipeline_kb", self.max_pipeline_kb, u64::MAX >> 10),
            ("max_jobs", self.max_jobs as u64, u64::MAX),
            ("max_steps", self.max_steps as u64, u64::MAX),
            ("max_log_mb", self.max_log_mb, u64::MAX >> 20),
        ];
        for (name, value, most) in limits {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
            if value > most {
                return Err(format!("{name} = {value} is too large; at most {most}"));
            }
        }
        // Each job's: a safe default when left out.
        let job_limits = [
            ("job_memory_mb", self.job_memory_mb, u64::MAX >> 20),
            ("job_pids_max", self.job_pids_max, u64::MAX),
        ];
        for (name, value, most) in job_limits {
            match value {
                Some(0) => {
                    return Err(format!(
                        "{name} must be at least 1 (leave it out for the default)"
                    ));
                }
                Some(value) if value > most => {
                    return Err(format!("{name} = {value} is too large; at most {most}"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// How much of a pipeline this home accepts.
    pub fn limits(&self) -> Limits {
        Limits {
            max_file_kb: self.max_pipeline_kb,
            max_jobs: self.max_jobs,
            max_steps: self.max_steps,
        }
    }

    /// The limits each job's cgroup gets: config.toml's, else
    /// [`DEFAULT_JOB_PIDS_MAX`] processes and three quarters of the
    /// machine's memory (no memory limit if /proc/meminfo cannot say).
    pub fn job_limits(&self) -> JobLimits {
        job_limits_of(self.job_memory_mb, self.job_pids_max)
    }

    /// How many workers one repository's runs may hold at once: config's,
    /// else `max_workers - 1` (at least 1). Held even when no other
    /// repository waits (docs/OPERATIONS.md, "config.toml"): a slot kept free
    /// is what lets another repository's run start at once when one
    /// pusher's runs never end.
    pub fn max_workers_per_repo(&self) -> usize {
        self.max_workers_per_repo
            .unwrap_or(self.max_workers.saturating_sub(1))
            .max(1)
    }

    /// The longest any job may run (`max_job_timeout`, checked when
    /// loaded).
    pub fn max_job_timeout(&self) -> std::time::Duration {
        quire_model::clock::parse_span(&self.max_job_timeout)
            .unwrap_or(std::time::Duration::from_secs(6 * 3600))
    }

    /// The network this machine's steps get: `step_network`, or, when
    /// jobs run on a cluster (whose nodes make their own), the worker's,
    /// no namespace made for steps that never run here.
    pub fn local_step_network(&self) -> StepNetwork {
        match self.executor.kind {
            ExecutorKind::Local => self.step_network,
            ExecutorKind::Slurm => StepNetwork::Host,
        }
    }

    /// The executor for a run under this config.
    pub fn executor(&self) -> Executor {
        let defaults = Executor::default();
        Executor {
            // A cluster queues what it cannot start yet: a run's jobs all
            // go to it at once unless config.toml says otherwise.
            max_parallel_jobs: self.max_parallel_jobs.unwrap_or(
                if self.executor.kind == ExecutorKind::Slurm {
                    SLURM_PARALLEL_JOBS
                } else {
                    defaults.max_parallel_jobs
                },
            ),
            max_log_bytes: self.max_log_mb.saturating_mul(1024 * 1024),
            max_job_timeout: Some(self.max_job_timeout()),
            ..defaults
        }
    }
}

/// Variables quire sets itself, or gives each run its own of: `[steps]
/// env` may not name them.
fn reserved_for_quire(name: &str) -> bool {
    ["CI", "TRACEPARENT", "HOME", "TMPDIR"].contains(&name) || name.starts_with("QUIRE_")
}

impl Config {
    /// `[steps]`: env names are variable names quire does not set itself,
    /// values hold no NUL; `read` paths are absolute and open nothing of
    /// quire's (its home, config.toml, secret files, `repos_root`). The
    /// repositories quire knows are checked by the worker, which has the
    /// store ([`Config::step_read_conflict`]).
    fn check_steps(&self, home: &Home) -> Result<(), String> {
        for (name, value) in &self.steps.env {
            if !quire_pipeline::pipeline::is_env_name(name) {
                return Err(format!(
                    "[steps] env: {name:?} is not a variable name; use letters, digits and '_', \
                     not starting with a digit"
                ));
            }
            if reserved_for_quire(name) {
                return Err(format!(
                    "[steps] env: {name} is set by quire for each run; remove it from [steps] env"
                ));
            }
            if value.contains('\0') {
                return Err(format!(
                    "[steps] env: {name} contains a NUL byte, which no environment can hold"
                ));
            }
        }
        let protected = self.protected_paths(home);
        for dir in &self.steps.read {
            if !dir.is_absolute() {
                return Err(format!(
                    "[steps] read: {:?} is not an absolute path; write it from /",
                    dir.display().to_string()
                ));
            }
            if let Some(what) = step_read_conflict(dir, &protected) {
                return Err(what);
            }
        }
        Ok(())
    }

    /// What `[steps] read` may never open, each with what it is.
    fn protected_paths(&self, home: &Home) -> Vec<(PathBuf, &'static str)> {
        let mut protected = vec![
            (home.dir().to_path_buf(), "quire's home"),
            (home.dir().join("config.toml"), "config.toml"),
        ];
        protected.extend(self.repos_root.iter().map(|d| (d.clone(), "repos_root")));
        protected.extend(
            self.secret_files()
                .into_iter()
                .map(|f| (f, "a secret file")),
        );
        protected
    }

    /// Why a `[steps] read` entry may not be given to steps, if it may not:
    /// it is, holds or lies in quire's home, config.toml, a secret file,
    /// `repos_root` or one of `repos` (the repositories quire knows).
    pub fn step_read_conflict(&self, home: &Home, repos: &[PathBuf]) -> Option<String> {
        let mut protected = self.protected_paths(home);
        protected.extend(repos.iter().map(|d| (d.clone(), "a repository")));
        self.steps
            .read
            .iter()
            .find_map(|dir| step_read_conflict(dir, &protected))
    }
}

/// Whether `dir` is, holds or lies in one of `protected` (compared where
/// they really are when they exist, so a symlink does not get around it).
fn step_read_conflict(dir: &Path, protected: &[(PathBuf, &str)]) -> Option<String> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let dir_real = real(dir);
    protected.iter().find_map(|(path, what)| {
        let path_real = real(path);
        let clash = [(&dir_real, &path_real), (&dir.to_path_buf(), path)]
            .iter()
            .any(|(d, p)| d.starts_with(p) || p.starts_with(d));
        clash.then(|| {
            format!(
                "[steps] read: {} would open {what} ({}) to steps; name a directory that \
                 neither holds nor lies in it",
                dir.display(),
                path.display()
            )
        })
    })
}

impl Config {
    /// What can be checked without reading files: names are variable
    /// names, literal values are long enough.
    fn check_secrets(&self) -> Result<(), String> {
        for (name, source) in &self.secrets {
            // A secret reaches steps as a variable, named as `env` keys are.
            if !quire_pipeline::pipeline::is_env_name(name) {
                return Err(format!(
                    "secret name {name:?} is not a variable name (letters, digits, '_')"
                ));
            }
            if let SecretSource::Literal(value) = source {
                check_secret_value(name, value)?;
            }
        }
        Ok(())
    }

    /// The files secrets are read from (hidden from steps).
    pub fn secret_files(&self) -> Vec<PathBuf> {
        self.secrets
            .values()
            .filter_map(|source| match source {
                SecretSource::File { file } => Some(file.clone()),
                SecretSource::Literal(_) => None,
            })
            .collect()
    }

    /// Every secret's name and value, files read, each checked: at least
    /// `MIN_SECRET_LEN` bytes, no NUL. The error says which secret and why.
    /// For the worker, when a run starts.
    pub fn secret_values(&self) -> Result<Vec<(String, String)>, String> {
        let mut values = Vec::new();
        for (name, source) in &self.secrets {
            let value = match source {
                SecretSource::Literal(value) => value.clone(),
                SecretSource::File { file } => std::fs::read_to_string(file)
                    .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
                    .map_err(|e| format!("secret {name}: cannot read {}: {e}", file.display()))?,
            };
            check_secret_value(name, &value)?;
            values.push((name.clone(), value));
        }
        Ok(values)
    }
}

fn check_secret_value(name: &str, value: &str) -> Result<(), String> {
    if value.len() < MIN_SECRET_LEN {
        return Err(format!(
            "secret {name} is {} bytes; values shorter than {MIN_SECRET_LEN} bytes are refused, \
             because they would match ordinary output and could not be redacted reliably",
            value.len()
        ));
    }
    if value.contains('\0') {
        return Err(format!(
            "secret {name} contains a NUL byte, which no environment can hold"
        ));
    }
    Ok(())
}

/// The limits a job's cgroup gets from `job_memory_mb` and `job_pids_max`
/// as set (unset: three quarters of this machine's memory, no memory
/// limit if /proc/meminfo cannot say, and [`DEFAULT_JOB_PIDS_MAX`]): the
/// worker's, and a cluster node's for the worker's home.
pub fn job_limits_of(memory_mb: Option<u64>, pids_max: Option<u64>) -> JobLimits {
    JobLimits {
        memory_mb: memory_mb
            .or_else(|| quire_exec::contain::machine_memory_mb().map(|mb| (mb / 4 * 3).max(1))),
        pids_max: Some(pids_max.unwrap_or(DEFAULT_JOB_PIDS_MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_means_defaults_and_bad_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        assert_eq!(Config::load(&home).unwrap(), Config::default());
        std::fs::write(
            dir.path().join("config.toml"),
            "max_workers = 3\nrepos_root = \"/srv/git\"\n",
        )
        .unwrap();
        let config = Config::load(&home).unwrap();
        assert_eq!(
            (config.max_workers, config.repos_root),
            (3, Some(PathBuf::from("/srv/git")))
        );
        std::fs::write(dir.path().join("config.toml"), "max_worker = 3\n").unwrap();
        let err = Config::load(&home).unwrap_err().to_string();
        assert!(err.contains("unknown field `max_worker`"), "{err}");
        std::fs::write(dir.path().join("config.toml"), "max_workers = 0\n").unwrap();
        assert!(Config::load(&home).is_err());
    }

    #[test]
    fn job_limits_are_read_and_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        // Left out: 4096 processes, three quarters of the machine's memory.
        let defaults = Config::default().job_limits();
        assert_eq!(defaults.pids_max, Some(4096));
        let machine = quire_exec::contain::machine_memory_mb().unwrap();
        assert_eq!(defaults.memory_mb, Some(machine / 4 * 3));
        std::fs::write(
            dir.path().join("config.toml"),
            "job_memory_mb = 512\njob_pids_max = 64\n",
        )
        .unwrap();
        assert_eq!(
            Config::load(&home).unwrap().job_limits(),
            JobLimits {
                memory_mb: Some(512),
                pids_max: Some(64)
            }
        );
        std::fs::write(dir.path().join("config.toml"), "job_pids_max = 0\n").unwrap();
        let err = Config::load(&home).unwrap_err().to_string();
        assert!(err.contains("job_pids_max must be at least 1"), "{err}");
    }

    #[test]
    fn workers_default_to_the_cpus_and_leave_one_for_other_repositories() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let defaults = Config::default();
        assert_eq!(defaults.max_workers, cpus.max(2), "the CPUs, at least 2");
        assert_eq!(defaults.max_workers_per_repo(), cpus.max(2) - 1);
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        for (text, workers, per_repo) in [
            ("max_workers = 1\n", 1, 1),
            ("max_workers = 2\n", 2, 1),
            ("max_workers = 8\n", 8, 7),
            ("max_workers = 8\nmax_workers_per_repo = 3\n", 8, 3),
            ("max_workers = 2\nmax_workers_per_repo = 2\n", 2, 2),
        ] {
            std::fs::write(dir.path().join("config.toml"), text).unwrap();
            let config = Config::load(&home).unwrap();
            assert_eq!(
                (config.max_workers, config.max_workers_per_repo()),
                (workers, per_repo),
                "{text}"
            );
        }
        for (text, message) in [
            (
                "max_workers_per_repo = 0",
                "max_workers_per_repo must be at least 1 (leave it out for max_workers - 1)",
            ),
            ("max_workers_per_repo = -2", "invalid value: integer `-2`"),
            ("max_workers = 0", "max_workers must be at least 1"),
        ] {
            std::fs::write(dir.path().join("config.toml"), format!("{text}\n")).unwrap();
            let err = Config::load(&home).unwrap_err().to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn max_job_timeout_caps_every_job_and_bad_spans_are_refused() {
        use std::time::Duration;
        let defaults = Config::default();
        assert_eq!(defaults.max_job_timeout(), Duration::from_secs(6 * 3600));
        assert_eq!(
            defaults.executor().max_job_timeout,
            Some(Duration::from_secs(6 * 3600))
        );
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        std::fs::write(
            dir.path().join("config.toml"),
            "max_job_timeout = \"90m\"\n",
        )
        .unwrap();
        let config = Config::load(&home).unwrap();
        assert_eq!(
            config.executor().max_job_timeout,
            Some(Duration::from_secs(5400))
        );
        for (text, message) in [
            (
                "max_job_timeout = \"forever\"",
                "max_job_timeout \"forever\" is not a span longer than 0s such as \"6h\" or \"90m\"",
            ),
            (
                "max_job_timeout = \"0s\"",
                "max_job_timeout \"0s\" is not a span longer than 0s such as \"6h\" or \"90m\"",
            ),
            (
                "max_job_timeout = 60",
                "invalid type: integer `60`, expected a string",
            ),
        ] {
            std::fs::write(dir.path().join("config.toml"), format!("{text}\n")).unwrap();
            let err = Config::load(&home).unwrap_err().to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn max_parallel_jobs_sets_the_executor_and_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        assert_eq!(
            Config::default().executor().max_parallel_jobs,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            "the number of CPUs when not set"
        );
        std::fs::write(dir.path().join("config.toml"), "max_parallel_jobs = 3\n").unwrap();
        let config = Config::load(&home).unwrap();
        assert_eq!(config.executor().max_parallel_jobs, 3);
        std::fs::write(dir.path().join("config.toml"), "max_parallel_jobs = 0\n").unwrap();
        let err = Config::load(&home).unwrap_err().to_string();
        assert!(
            err.contains("max_parallel_jobs must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn sandbox_and_run_as_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        assert_eq!(Config::default().sandbox, SandboxMode::BestEffort);
        for (text, mode) in [
            ("required", SandboxMode::Required),
            ("best-effort", SandboxMode::BestEffort),
            ("off", SandboxMode::Off),
        ] {
            std::fs::write(
                dir.path().join("config.toml"),
                format!("sandbox = \"{text}\"\nrun_as = \"ci\"\n"),
            )
            .unwrap();
            let config = Config::load(&home).unwrap();
            assert_eq!(
                (config.sandbox, config.run_as.as_deref()),
                (mode, Some("ci"))
            );
        }
        std::fs::write(dir.path().join("config.toml"), "sandbox = \"on\"\n").unwrap();
        let err = Config::load(&home).unwrap_err().to_string();
        assert!(
            err.contains("unknown variant `on`, expected one of `required`, `best-effort`, `off`"),
            "{err}"
        );
        std::fs::write(dir.path().join("config.toml"), "run_as = \"\"\n").unwrap();
        let err = Config::load(&home).unwrap_err().to_string();
        assert!(err.contains("run_as is empty"), "{err}");
    }

    #[test]
    fn step_network_is_read_isolated_by_default_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        assert_eq!(Config::default().step_network, StepNetwork::Isolated);
        for (text, mode) in [
            ("isolated", StepNetwork::Isolated),
            ("host", StepNetwork::Host),
            ("none", StepNetwork::None),
        ] {
            std::fs::write(
                dir.path().join("config.toml"),
                format!("step_network = \"{text}\"\n"),
            )
            .unwrap();
            assert_eq!(Config::load(&home).unwrap().step_network, mode);
        }
        std::fs::write(dir.path().join("config.toml"), "step_network = \"off\"\n").unwrap();
        let err = Config::load(&home).unwrap_err().to_string();
        assert!(
            err.contains("unknown variant `off`, expected one of `isolated`, `host`, `none`"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn limits_set_validation_and_the_executor_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let defaults = Config::default();
        assert_eq!(defaults.limits(), Limits::default());
        assert_eq!(
            (
                defaults.max_pipeline_kb,
                defaults.max_jobs,
                defaults.max_steps,
                defaults.max_log_mb
            ),
            (512, 500, 1000, 100)
        );
        assert_eq!(defaults.executor().max_log_bytes, 100 << 20);
        std::fs::write(
            dir.path().join("config.toml"),
            "max_pipeline_kb = 64\nmax_jobs = 3\nmax_steps = 4\nmax_log_mb = 1\n",
        )
        .unwrap();
        let config = Config::load(&home).unwrap();
        assert_eq!(
            config.limits(),
            Limits {
                max_file_kb: 64,
                max_jobs: 3,
                max_steps: 4
            }
        );
        assert_eq!(config.executor().max_log_bytes, 1 << 20);
        for (text, message) in [
            ("max_pipeline_kb = 0", "max_pipeline_kb must be at least 1"),
            ("max_jobs = 0", "max_jobs must be at least 1"),
            ("max_steps = 0", "max_steps must be at least 1"),
            ("max_log_mb = 0", "max_log_mb must be at least 1"),
            (
                "max_log_mb = 18446744073709551615",
                "max_log_mb = 18446744073709551615 is too large; at most 17592186044415",
            ),
            (
                "max_pipeline_kb = 18446744073709551615",
                "max_pipeline_kb = 18446744073709551615 is too large; at most 18014398509481983",
            ),
            ("max_jobs = -1", "invalid value: integer `-1`"),
            ("max_log_mb = \"1\"", "invalid type: string \"1\""),
        ] {
            std::fs::write(dir.path().join("config.toml"), format!("{text}\n")).unwrap();
            let err = Config::load(&home).unwrap_err().to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn secrets_come_from_literals_and_files_and_short_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        std::fs::write(dir.path().join("key"), "from-a-file-123\n").unwrap();
        let config = format!(
            "[secrets]\nTOKEN = \"literal-value-1\"\nKEY = {{ file = \"{}\" }}\n",
            dir.path().join("key").display()
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let loaded = Config::load(&home).unwrap();
        assert_eq!(
            loaded.secret_values().unwrap(),
            [
                ("KEY".to_string(), "from-a-file-123".to_string()),
                ("TOKEN".to_string(), "literal-value-1".to_string())
            ]
        );
        assert!(
            !format!("{loaded:?}").contains("literal-value-1"),
            "Debug must not show values"
        );
        std::fs::write(
            dir.path().join("config.toml"),
            "[secrets]\nPIN = \"1234\"\n",
        )
        .unwrap();
        let err = Config::load(&home).unwrap_err().to_string();
        assert!(
            err.contains("secret PIN is 4 bytes; values shorter than 8 bytes are refused"),
            "{err}"
        );
        // A file's value is read (and checked) only when a run needs it.
        std::fs::write(dir.path().join("pin"), "1234\n").unwrap();
        let config = format!(
            "[secrets]\nPIN = {{ file = \"{}\" }}\n",
            dir.path().join("pin").display()
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let loaded = Config::load(&home).unwrap();
        let err = loaded.secret_values().unwrap_err();
        assert!(err.contains("secret PIN is 4 bytes"), "{err}");
    }

    #[test]
    fn steps_env_and_read_are_read_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("quire"));
        home.ensure().unwrap();
        let config_file = home.dir().join("config.toml");
        assert_eq!(Config::default().steps, Steps::default());
        let tools = dir.path().join("tools");
        std::fs::create_dir(&tools).unwrap();
        std::fs::write(
            &config_file,
            format!(
                "[steps]\nenv = {{ PATH = \"/opt/rust/bin:/usr/bin\", RUSTUP_HOME = \"/opt/rust\" }}\n\
                 read = [\"/opt/rust\", {:?}]\n",
                tools.display().to_string()
            ),
        )
        .unwrap();
        let config = Config::load(&home).unwrap();
        assert_eq!(
            config.steps.env.into_iter().collect::<Vec<_>>(),
            [
                ("PATH".to_string(), "/opt/rust/bin:/usr/bin".to_string()),
                ("RUSTUP_HOME".to_string(), "/opt/rust".to_string())
            ]
        );
        assert_eq!(config.steps.read, [PathBuf::from("/opt/rust"), tools]);
        let quire = home.dir().display().to_string();
        let secret = dir.path().join("secrets/token").display().to_string();
        for (text, message) in [
            (
                "[steps]\nenv = { \"1X\" = \"a\" }".to_string(),
                "[steps] env: \"1X\" is not a variable name; use letters, digits and '_', not \
                 starting with a digit"
                    .to_string(),
            ),
            (
                "[steps]\nenv = { QUIRE_RUN_ID = \"x\" }".into(),
                "[steps] env: QUIRE_RUN_ID is set by quire for each run; remove it from [steps] env"
                    .into(),
            ),
            (
                "[steps]\nenv = { HOME = \"/root\" }".into(),
                "[steps] env: HOME is set by quire for each run".into(),
            ),
            (
                "[steps]\nenv = { X = \"a\\u0000b\" }".into(),
                "[steps] env: X contains a NUL byte".into(),
            ),
            (
                "[steps]\nenv = { X = 1 }".into(),
                "invalid type: integer `1`, expected a string".into(),
            ),
            (
                "[steps]\nread = [\"opt/rust\"]".into(),
                "[steps] read: \"opt/rust\" is not an absolute path; write it from /".into(),
            ),
            (
                "[steps]\nread = \"/opt/rust\"".into(),
                "invalid type: string \"/opt/rust\", expected a sequence".into(),
            ),
            (
                "[steps]\nwrite = [\"/opt\"]".into(),
                "unknown field `write`, expected `env` or `read`".into(),
            ),
            (
                format!("[steps]\nread = [{quire:?}]"),
                format!("[steps] read: {quire} would open quire's home ({quire}) to steps"),
            ),
            (
                // Above it: would open it too.
                "[steps]\nread = [\"/\"]".into(),
                format!("[steps] read: / would open quire's home ({quire}) to steps"),
            ),
            (
                format!("[steps]\nread = [\"{quire}/runs\"]"),
                "would open quire's home".into(),
            ),
            (
                "repos_root = \"/srv/git\"\n[steps]\nread = [\"/srv/git/app.git\"]".into(),
                "[steps] read: /srv/git/app.git would open repos_root (/srv/git) to steps; name \
                 a directory that neither holds nor lies in it"
                    .into(),
            ),
            (
                format!(
                    "[secrets]\nT = {{ file = {secret:?} }}\n[steps]\nread = [{:?}]",
                    dir.path().join("secrets").display().to_string()
                ),
                "would open a secret file".into(),
            ),
        ] {
            std::fs::write(&config_file, format!("{text}\n")).unwrap();
            let err = Config::load(&home).unwrap_err().to_string();
            assert!(err.contains(&message), "{text}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        // The repositories quire knows are checked by the worker.
        std::fs::write(
            &config_file,
            "[steps]\nread = [\"/srv/other/app.git/hooks\"]\n",
        )
        .unwrap();
        let config = Config::load(&home).unwrap();
        assert_eq!(
            config
                .step_read_conflict(&home, &[PathBuf::from("/srv/other/app.git")])
                .as_deref(),
            Some(
                "[steps] read: /srv/other/app.git/hooks would open a repository \
                 (/srv/other/app.git) to steps; name a directory that neither holds nor lies in it"
            )
        );
        assert_eq!(
            config.step_read_conflict(&home, &[PathBuf::from("/srv/other/web.git")]),
            None
        );
    }
}
