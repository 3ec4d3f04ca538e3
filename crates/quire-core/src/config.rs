//! The home's optional `config.toml`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::{Error, Home, Result};

/// Settings for workers and hooks; every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many workers may execute runs at once.
    #[serde(default = "one")]
    pub max_workers: usize,
    /// Keep `runs/<id>/workspace` after a run instead of deleting it.
    #[serde(default)]
    pub keep_workspaces: bool,
    /// Where the bare repositories live: a run's `repo` is its path
    /// relative to this when it lies under it.
    pub repos_root: Option<PathBuf>,
    /// Defaults for `quire-runs prune`.
    #[serde(default)]
    pub retention: Retention,
}

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

impl Default for Config {
    fn default() -> Config {
        Config {
            max_workers: 1,
            keep_workspaces: false,
            repos_root: None,
            retention: Retention::default(),
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
            && crate::clock::parse_span(span).is_none()
        {
            return Err(Error::Config {
                path,
                message: format!(
                    "retention.older_than {span:?} is not a span such as \"30d\" or \"12h\""
                ),
            });
        }
        if config.max_workers == 0 {
            return Err(Error::Config {
                path,
                message: "max_workers must be at least 1".into(),
            });
        }
        Ok(config)
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
}
