//! The home's optional `config.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use quire_pipeline::contain::Limits;
use quire_pipeline::exec::{Executor, SandboxMode};

use quire_store::{Error, Home, Result};

/// Settings for workers and hooks; every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many workers may execute runs at once.
    #[serde(default = "one")]
    pub max_workers: usize,
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
    /// The memory (MiB) each job's processes may use together: its cgroup's
    /// `memory.max`. Enforced only where jobs get cgroups with the memory
    /// controller (docs/OPERATIONS.md, "Containment").
    pub job_memory_mb: Option<u64>,
    /// How many processes (and threads) each job may have at once: its
    /// cgroup's `pids.max`; enforced likewise.
    pub job_pids_max: Option<u64>,
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
pub const MIN_SECRET_LEN: usize = 8;

/// `[retention]`: what `quire-runs prune` removes when not told otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// A span such as "30d": terminal runs that finished longer ago go.
    pub older_than: Option<String>,
    /// The newest terminal runs of each (repo, ref) that always stay.
    pub keep: Option<usize>,
}

fn one() -> usize {
    1
}

fn default_cache_max_mb() -> u64 {
    2048
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_workers: 1,
            max_parallel_jobs: None,
            keep_workspaces: false,
            repos_root: None,
            retention: Retention::default(),
            secrets: BTreeMap::new(),
            cache_max_mb: default_cache_max_mb(),
            sandbox: SandboxMode::default(),
            run_as: None,
            job_memory_mb: None,
            job_pids_max: None,
        }
    }
}

impl Config {
    /// `config.toml` in the home, or the defaults when there is none.
    pub fn load(home: &Home) -> Result<Config> {
        let path = home.dir().join("config.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => return Err(Error::Home { path, source }),
        };
        let config: Config = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            message: e.message().trim().to_string(),
        })?;
        if let Some(span) = &config.retention.older_than
            && quire_model::clock::parse_span(span).is_none()
        {
            return Err(Error::Config {
                path,
                message: format!(
                    "retention.older_than {span:?} is not a span such as \"30d\" or \"12h\""
                ),
            });
        }
        // Checked without reading secret files: the hook loads this too,
        // and has no business with secret values.
        config.check_secrets().map_err(|message| Error::Config {
            path: path.clone(),
            message,
        })?;
        if config.max_workers == 0 {
            return Err(Error::Config {
                path,
                message: "max_workers must be at least 1".into(),
            });
        }
        if config.run_as.as_deref() == Some("") {
            return Err(Error::Config {
                path,
                message: "run_as is empty; name a user, or remove the key".into(),
            });
        }
        if config.max_parallel_jobs == Some(0) {
            return Err(Error::Config {
                path,
                message: "max_parallel_jobs must be at least 1".into(),
            });
        }
        for (key, value) in [
            ("job_memory_mb", config.job_memory_mb),
            ("job_pids_max", config.job_pids_max),
        ] {
            if value == Some(0) {
                return Err(Error::Config {
                    path,
                    message: format!("{key} must be at least 1 (leave it out for no limit)"),
                });
            }
        }
        Ok(config)
    }

    /// The limits each job's cgroup gets.
    pub fn limits(&self) -> Limits {
        Limits {
            memory_mb: self.job_memory_mb,
            pids_max: self.job_pids_max,
        }
    }

    /// The executor for a run under this config.
    pub fn executor(&self) -> Executor {
        let defaults = Executor::default();
        Executor {
            max_parallel_jobs: self.max_parallel_jobs.unwrap_or(defaults.max_parallel_jobs),
            ..defaults
        }
    }
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
        assert_eq!(Config::default().limits(), Limits::default());
        std::fs::write(
            dir.path().join("config.toml"),
            "job_memory_mb = 512\njob_pids_max = 64\n",
        )
        .unwrap();
        assert_eq!(
            Config::load(&home).unwrap().limits(),
            Limits {
                memory_mb: Some(512),
                pids_max: Some(64)
            }
        );
        std::fs::write(dir.path().join("config.toml"), "job_pids_max = 0\n").unwrap();
        let err = Config::load(&home).unwrap_err().to_string();
        assert!(err.contains("job_pids_max must be at least 1"), "{err}");
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
}
