//! Repositories: identified by the canonical path of their bare git
//! directory, so two repositories are never one whatever their folder names;
//! named for people by [`display_names`].

use crate::sql::{QueryCached, RowExt};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::query::{RUN_COLUMNS, RUN_TABLES, run_from_row};
use crate::{Error, Result, Store};
use quire_model::{Repository, Run, RunState};

/// A repository as naming sees it: its path, if known, and the name it has
/// now (kept when it is still right, so names do not flap).
#[derive(Debug, Clone)]
pub struct Known<'a> {
    pub git_dir: Option<&'a Path>,
    pub current: &'a str,
}

/// The display name of each repository, in the order given: the path
/// relative to `root` when the repository lies under it; else the shortest
/// trailing part of its path that no other known repository's path ends with
/// (`app.git`, and `team-b/app.git` once a second `app.git` is known). A
/// repository known only by name keeps its name; the names are unique.
pub fn display_names(known: &[Known<'_>], root: Option<&Path>) -> Vec<String> {
    let tails: Vec<Option<Vec<String>>> = known.iter().map(|k| k.git_dir.map(components)).collect();
    let by_name_only: HashSet<&str> = known
        .iter()
        .filter(|k| k.git_dir.is_none())
        .map(|k| k.current)
        .collect();
    // Is the trailing part of length `len` of repository `i`'s path also
    // the end of another known path?
    let shared = |i: usize, len: usize| {
        let mine = tails[i].as_deref().unwrap_or_default();
        let tail = &mine[mine.len() - len..];
        tails
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && other.as_deref().is_some_and(|o| o.ends_with(tail)))
    };
    let mut names: Vec<String> = Vec::with_capacity(known.len());
    for (i, k) in known.iter().enumerate() {
        let (Some(path), Some(parts)) = (k.git_dir, tails[i].as_deref()) else {
            names.push(k.current.to_string());
            continue;
        };
        if let Some(relative) = root
            .and_then(|root| path.strip_prefix(root).ok())
            .filter(|r| !r.as_os_str().is_empty())
        {
            names.push(components(relative).join("/"));
            continue;
        }
        let usable = |len: usize| {
            let name = parts[parts.len() - len..].join("/");
            (!shared(i, len) && !by_name_only.contains(name.as_str())).then_some(name)
        };
        let current: Vec<&str> = k.current.split('/').collect();
        let keep = current.len() <= parts.len()
            && parts.ends_with(&current.iter().map(|c| c.to_string()).collect::<Vec<_>>())
            && usable(current.len()).is_some();
        let name = if keep {
            Some(k.current.to_string())
        } else {
            (1..=parts.len()).find_map(usable)
        };
        names.push(name.unwrap_or_else(|| path.display().to_string()));
    }
    // What is left to collide (a path's full tail is another's, a name-only
    // repository shares a root-relative name): the full path, else the id.
    let mut used = HashSet::new();
    for (i, name) in names.iter_mut().enumerate() {
        if used.contains(name.as_str()) {
            *name = match known[i].git_dir {
                Some(path) if !used.contains(&path.display().to_string()) => {
                    path.display().to_string()
                }
                _ => format!("{name}~{}", i + 1),
            };
        }
        used.insert(name.clone());
    }
    names
}

fn components(path: &Path) -> Vec<String> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// Why a repository is being registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// A push or a trigger came through.
    Seen,
    /// `quire-run install` put quire's hook in.
    Installed,
}

/// A known repository with a summary of its runs, for `quire-runs repos`.
#[derive(Debug, Clone)]
pub struct RepoSummary {
    pub repo: Repository,
    pub runs: i64,
    /// The newest run: its id, state and when it was queued.
    pub last_run: Option<(String, RunState, i64)>,
}

const REPO_COLUMNS: &str = "id, name, git_dir, hook_state, first_seen_at_ms, installed_at_ms";

fn repo_from_row(row: &Row<'_>) -> rusqlite::Result<Repository> {
    Ok(Repository {
        id: row.get(0)?,
        name: row.get(1)?,
        git_dir: row.get(2)?,
        hook_state: row.text(3)?,
        first_seen_at_ms: row.get(4)?,
        installed_at_ms: row.get(5)?,
        former_names: Vec::new(),
    })
}

fn with_former_names(conn: &Connection, mut repo: Repository) -> Result<Repository> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM repo_names WHERE repo_id = ?1 ORDER BY until_ms DESC, name",
    )?;
    repo.former_names = stmt
        .query_map([repo.id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(repo)
}

fn repo_where(
    conn: &Connection,
    clause: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<Repository>> {
    let found = conn
        .query_row_cached(
            &format!("SELECT {REPO_COLUMNS} FROM repos WHERE {clause}"),
            [value],
            repo_from_row,
        )
        .optional()?;
    found.map(|repo| with_former_names(conn, repo)).transpose()
}

fn git_dir_text(git_dir: &Path) -> Result<&str> {
    git_dir.to_str().ok_or_else(|| {
        Error::InvalidRun(format!(
            "the repository path {} is not UTF-8",
            git_dir.display()
        ))
    })
}

impl Store {
    /// Make sure the repository at `git_dir` (a canonical path) is known,
    /// and return it. A repository known only by name whose name is a
    /// trailing part of the path is adopted (its old runs follow). Names
    /// are recomputed when the set of repositories or `root` changes them;
    /// a rename is recorded.
    pub fn register_repo(
        &mut self,
        git_dir: &Path,
        root: Option<&Path>,
        why: Registration,
    ) -> Result<Repository> {
        let text = git_dir_text(git_dir)?;
        // The hook's path: a known repository whose name is right needs no
        // write at all.
        if why == Registration::Seen
            && let Some(repo) = repo_where(&self.conn, "git_dir = ?1", &text)?
        {
            let expected = display_names(
                &[Known {
                    git_dir: Some(git_dir),
                    current: &repo.name,
                }],
                root,
            );
            if root.is_none_or(|r| !git_dir.starts_with(r)) || expected[0] == repo.name {
                return Ok(repo);
            }
        }
        self.write(|tx, now| {
            let id = match tx
                .query_row("SELECT id FROM repos WHERE git_dir = ?1", [text], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
            {
                Some(id) => id,
                None => match adoptable(tx, git_dir)? {
                    Some(id) => {
                        tx.execute(
                            "UPDATE repos SET git_dir = ?1, hook_state = 'seen' WHERE id = ?2",
                            params![text, id],
                        )?;
                        id
                    }
                    None => {
                        tx.execute(
                            "INSERT INTO repos (git_dir, name, hook_state, first_seen_at_ms)
                             VALUES (?1, ' ' || ?1, 'seen', ?2)",
                            params![text, now],
                        )?;
                        tx.last_insert_rowid()
                    }
                },
            };
            if why == Registration::Installed {
                tx.execute(
                    "UPDATE repos SET hook_state = 'installed', installed_at_ms = ?1
                     WHERE id = ?2",
                    params![now, id],
                )?;
            }
            rename_all(tx, root, now)?;
            repo_where(tx, "id = ?1", &id)?.ok_or_else(|| Error::UnknownRepo(text.to_string()))
        })
    }

    /// Record that repository `id` now lives at `git_dir` (a canonical
    /// path): an upstream home that moved, a path recorded by an old store
    /// that is gone. Names are recomputed.
    pub fn move_repo(
        &mut self,
        id: i64,
        git_dir: &Path,
        root: Option<&Path>,
    ) -> Result<Repository> {
        let text = git_dir_text(git_dir)?;
        self.write(|tx, now| {
            let taken: Option<i64> = tx
                .query_row("SELECT id FROM repos WHERE git_dir = ?1", [text], |r| {
                    r.get(0)
                })
                .optional()?;
            if taken.is_some_and(|other| other != id) {
                return Err(Error::InvalidRun(format!(
                    "another repository is already known at {text}"
                )));
            }
            tx.execute(
                "UPDATE repos SET git_dir = ?1,
                     hook_state = CASE hook_state WHEN 'unknown' THEN 'seen' ELSE hook_state END
                 WHERE id = ?2",
                params![text, id],
            )?;
            rename_all(tx, root, now)?;
            repo_where(tx, "id = ?1", &id)?.ok_or_else(|| Error::UnknownRepo(id.to_string()))
        })
    }

    /// The repository `given` names: its display name, that name without
    /// `.git`, a name it had before, or a path to its git directory.
    pub fn resolve_repo(&self, given: &str) -> Result<Repository> {
        let path = Path::new(given);
        if (given.contains('/') || given.starts_with('.'))
            && let Ok(canonical) = std::fs::canonicalize(path)
            && let Some(text) = canonical.to_str()
            && let Some(repo) = repo_where(&self.conn, "git_dir = ?1", &text)?
        {
            return Ok(repo);
        }
        self.resolve_repo_name(given)
    }

    /// The repository `given` names, by name only (never a path, so no
    /// file is looked at): its display name, that name without `.git`, or
    /// a name it had before. What a web visitor's words may resolve.
    pub fn resolve_repo_name(&self, given: &str) -> Result<Repository> {
        let with_git = format!("{given}.git");
        for name in [given, with_git.as_str()] {
            if let Some(repo) = repo_where(&self.conn, "name = ?1", &name)? {
                return Ok(repo);
            }
        }
        for name in [given, with_git.as_str()] {
            let former: Option<i64> = self
                .conn
                .query_row(
                    "SELECT repo_id FROM repo_names WHERE name = ?1
                     ORDER BY until_ms DESC LIMIT 1",
                    [name],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = former
                && let Some(repo) = repo_where(&self.conn, "id = ?1", &id)?
            {
                return Ok(repo);
            }
        }
        Err(Error::UnknownRepo(given.to_string()))
    }

    /// The repository with this id.
    pub fn repo_by_id(&self, id: i64) -> Result<Repository> {
        repo_where(&self.conn, "id = ?1", &id)?.ok_or_else(|| Error::UnknownRepo(id.to_string()))
    }

    /// The git directory of every repository known by its path (what a
    /// run's steps must not reach: docs/SECURITY.md).
    pub fn repo_dirs(&self) -> Result<Vec<PathBuf>> {
        let mut stmt = self
            .conn
            .prepare("SELECT git_dir FROM repos WHERE git_dir IS NOT NULL ORDER BY id")?;
        let dirs = stmt
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(dirs.into_iter().map(PathBuf::from).collect())
    }

    /// The newest run of each ref of a repository whose name starts with
    /// `prefix` (`refs/heads/` for its branches), by ref name, at most
    /// `limit`. The `runs_repo_ref` index is walked one ref at a time, so
    /// the cost grows with the refs, not with the runs.
    pub fn newest_per_ref(&self, repo_id: i64, prefix: &str, limit: usize) -> Result<Vec<Run>> {
        let mut next_ref = self.conn.prepare_cached(
            "SELECT ref_name FROM runs WHERE repo_id = ?1 AND ref_name > ?2
             ORDER BY ref_name LIMIT 1",
        )?;
        let mut newest = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM {RUN_TABLES} WHERE runs.repo_id = ?1 AND ref_name = ?2
             ORDER BY queued_at_ms DESC, runs.id DESC LIMIT 1"
        ))?;
        let mut runs = Vec::new();
        // Start just before the prefix: every name that starts with it sorts
        // after it.
        let mut after = prefix.to_string();
        while runs.len() < limit {
            let Some(ref_name) = next_ref
                .query_row(params![repo_id, after], |row| row.get::<_, String>(0))
                .optional()?
            else {
                break;
            };
            if !ref_name.starts_with(prefix) {
                break;
            }
            if let Some(run) = newest
                .query_row(params![repo_id, ref_name], run_from_row)
                .optional()?
            {
                runs.push(run);
            }
            after = ref_name;
        }
        Ok(runs)
    }

    /// Every known repository, by name, without counting its runs (what
    /// [`Store::repos`] adds, at the cost of reading every run's index
    /// entry: seconds at a million runs).
    pub fn repo_list(&self) -> Result<Vec<Repository>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {REPO_COLUMNS} FROM repos ORDER BY name"))?;
        let repos = stmt
            .query_map([], repo_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        repos
            .into_iter()
            .map(|repo| with_former_names(&self.conn, repo))
            .collect()
    }

    /// Every known repository, by name, with its run count and newest run.
    pub fn repos(&self) -> Result<Vec<RepoSummary>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {REPO_COLUMNS},
                    (SELECT count(*) FROM runs WHERE runs.repo_id = repos.id),
                    (SELECT id FROM runs WHERE runs.repo_id = repos.id
                     ORDER BY queued_at_ms DESC, id DESC LIMIT 1)
             FROM repos ORDER BY name"
        ))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    repo_from_row(row)?,
                    row.get(6)?,
                    row.get::<_, Option<String>>(7)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (repo, runs, last) in rows {
            let last_run = match last {
                Some(id) => self.conn.query_row_cached(
                    "SELECT id, state, queued_at_ms FROM runs WHERE id = ?1",
                    [id],
                    |row| Ok(Some((row.get(0)?, row.text(1)?, row.get(2)?))),
                )?,
                None => None,
            };
            out.push(RepoSummary {
                repo: with_former_names(&self.conn, repo)?,
                runs,
                last_run,
            });
        }
        Ok(out)
    }
}

/// The repository known only by a name that is the longest trailing part
/// of `git_dir`, if exactly one such exists.
fn adoptable(tx: &Transaction<'_>, git_dir: &Path) -> Result<Option<i64>> {
    let parts = components(git_dir);
    for len in (1..=parts.len()).rev() {
        let name = parts[parts.len() - len..].join("/");
        let found: Option<i64> = tx
            .query_row(
                "SELECT id FROM repos WHERE git_dir IS NULL AND name = ?1",
                [&name],
                |row| row.get(0),
            )
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Give every repository its display name (see [`display_names`]). A name
/// that starts with a space is provisional (a new registration's): no
/// rename is recorded for it. (Migration 0010 names repositories with its
/// own frozen copy of this, `schema/names_0010.rs`.)
fn rename_all(tx: &Transaction<'_>, root: Option<&Path>, now: i64) -> Result<()> {
    let rows: Vec<(i64, Option<String>, String)> = tx
        .prepare("SELECT id, git_dir, name FROM repos ORDER BY id")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let current: Vec<String> = rows
        .iter()
        .map(|(_, git_dir, name)| match name.strip_prefix(' ') {
            Some(rest) => match git_dir {
                Some(_) => String::new(),
                None => rest.to_string(),
            },
            None => name.clone(),
        })
        .collect();
    let known: Vec<Known<'_>> = rows
        .iter()
        .zip(&current)
        .map(|((_, git_dir, _), current)| Known {
            git_dir: git_dir.as_deref().map(Path::new),
            current,
        })
        .collect();
    let names = display_names(&known, root);
    let changed: Vec<(i64, &str, &str)> = rows
        .iter()
        .zip(&names)
        .filter(|((_, _, old), new)| old != *new)
        .map(|((id, _, old), new)| (*id, old.as_str(), new.as_str()))
        .collect();
    // Two steps, so that names may move between repositories without ever
    // being held by two at once.
    for (id, _, _) in &changed {
        tx.execute("UPDATE repos SET name = ' #' || id WHERE id = ?1", [id])?;
    }
    for (id, old, new) in &changed {
        tx.execute("UPDATE repos SET name = ?1 WHERE id = ?2", params![new, id])?;
        tx.execute(
            "DELETE FROM repo_names WHERE repo_id = ?1 AND name = ?2",
            params![id, new],
        )?;
        if !old.starts_with(' ') {
            tx.execute(
                "INSERT INTO repo_names (repo_id, name, until_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (repo_id, name) DO UPDATE SET until_ms = excluded.until_ms",
                params![id, old, now],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(paths: &[&str], root: Option<&str>) -> Vec<String> {
        let known: Vec<Known<'_>> = paths
            .iter()
            .map(|p| Known {
                git_dir: Some(Path::new(p)),
                current: "",
            })
            .collect();
        display_names(&known, root.map(Path::new))
    }

    #[test]
    fn a_lone_repository_is_named_by_its_folder() {
        assert_eq!(names(&["/srv/git/team-a/app.git"], None), ["app.git"]);
    }

    #[test]
    fn two_folders_of_one_name_are_told_apart_by_their_parents() {
        assert_eq!(
            names(
                &["/srv/git/team-a/app.git", "/srv/git/team-b/app.git"],
                None
            ),
            ["team-a/app.git", "team-b/app.git"]
        );
        assert_eq!(
            names(&["/a/x/app.git", "/b/x/app.git", "/c/api.git"], None),
            ["a/x/app.git", "b/x/app.git", "api.git"]
        );
    }

    #[test]
    fn under_the_root_the_relative_path_is_the_name() {
        assert_eq!(
            names(
                &["/srv/git/work/app.git", "/home/x/app.git"],
                Some("/srv/git")
            ),
            ["work/app.git", "x/app.git"]
        );
    }

    #[test]
    fn a_path_that_is_the_tail_of_another_gets_its_full_path() {
        assert_eq!(
            names(&["/a/b.git", "/x/a/b.git"], None),
            ["/a/b.git", "x/a/b.git"]
        );
    }

    #[test]
    fn a_name_that_is_still_right_is_kept_and_name_only_repositories_keep_theirs() {
        let known = [
            Known {
                git_dir: Some(Path::new("/srv/git/work/api.git")),
                current: "work/api.git",
            },
            Known {
                git_dir: None,
                current: "app.git",
            },
            Known {
                git_dir: Some(Path::new("/home/me/app.git")),
                current: "",
            },
        ];
        assert_eq!(
            display_names(&known, None),
            ["work/api.git", "app.git", "me/app.git"]
        );
    }
}
