//! Repositories: identity by path, names, `quire-runs repos`, `--repo`.
