//! FROZEN: migration 0010's Rust step, as it was when 0010 shipped. Never
//! change this file.
//!
//! 0010 (`migrations/0010_repos.sql`) makes a row per repository with a
//! provisional name (a space, then its git directory or the name its runs
//! were recorded under); this step gives each its display name. It is a
//! copy of `repos::rename_all` and `repos::display_names` as they were
//! then, so that what upgrading an old store does never changes when
//! today's naming does. It is what that code did for 0010's input and no
//! more: 0010 has no `repos_root` (so no name is relative to a root), and
//! every row it makes is provisional (so no rename is recorded in
//! `repo_names`).

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path};

use rusqlite::{Transaction, params};

/// A repository as 0010's naming saw it.
struct Known<'a> {
    git_dir: Option<&'a Path>,
    current: &'a str,
}

/// Give every repository its display name, keeping the name its runs were
/// recorded under (`recorded`, by repository id) where that is still
/// unambiguous.
pub(super) fn name_repositories(
    tx: &Transaction<'_>,
    recorded: &HashMap<i64, String>,
) -> rusqlite::Result<()> {
    let rows: Vec<(i64, Option<String>, String)> = tx
        .prepare("SELECT id, git_dir, name FROM repos ORDER BY id")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let current: Vec<String> = rows
        .iter()
        .map(|(id, git_dir, name)| match name.strip_prefix(' ') {
            Some(rest) => recorded.get(id).cloned().unwrap_or_else(|| match git_dir {
                Some(_) => String::new(),
                None => rest.to_string(),
            }),
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
    let names = display_names(&known);
    let changed: Vec<(i64, &str)> = rows
        .iter()
        .zip(&names)
        .filter(|((_, _, old), new)| old != *new)
        .map(|((id, _, _), new)| (*id, new.as_str()))
        .collect();
    // Two steps, so that names may move between repositories without ever
    // being held by two at once.
    for (id, _) in &changed {
        tx.execute("UPDATE repos SET name = ' #' || id WHERE id = ?1", [id])?;
    }
    for (id, new) in &changed {
        tx.execute("UPDATE repos SET name = ?1 WHERE id = ?2", params![new, id])?;
    }
    Ok(())
}

/// The display name of each repository, in the order given: the shortest
/// trailing part of its path that no other known repository's path ends
/// with (`app.git`, and `team-b/app.git` once a second `app.git` is known).
/// A repository known only by name keeps its name; the names are unique.
fn display_names(known: &[Known<'_>]) -> Vec<String> {
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
    // What is left to collide (a path's full tail is another's): the full
    // path, else the id.
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

/// What 0010 named repositories when it shipped; frozen with it.
#[cfg(test)]
mod tests {
    use super::*;

    fn names(known: &[(Option<&str>, &str)]) -> Vec<String> {
        let known: Vec<Known<'_>> = known
            .iter()
            .map(|(git_dir, current)| Known {
                git_dir: git_dir.map(Path::new),
                current,
            })
            .collect();
        display_names(&known)
    }

    #[test]
    fn folders_are_names_and_parents_tell_same_named_folders_apart() {
        assert_eq!(names(&[(Some("/srv/git/team-a/app.git"), "")]), ["app.git"]);
        assert_eq!(
            names(&[
                (Some("/srv/git/team-a/app.git"), ""),
                (Some("/srv/git/team-b/app.git"), ""),
            ]),
            ["team-a/app.git", "team-b/app.git"]
        );
        assert_eq!(
            names(&[
                (Some("/a/x/app.git"), ""),
                (Some("/b/x/app.git"), ""),
                (Some("/c/api.git"), "")
            ]),
            ["a/x/app.git", "b/x/app.git", "api.git"]
        );
        assert_eq!(
            names(&[(Some("/a/b.git"), ""), (Some("/x/a/b.git"), "")]),
            ["/a/b.git", "x/a/b.git"]
        );
    }

    #[test]
    fn a_recorded_name_still_right_is_kept_and_name_only_repositories_keep_theirs() {
        assert_eq!(
            names(&[
                (Some("/srv/git/work/api.git"), "work/api.git"),
                (None, "app.git"),
                (Some("/home/me/app.git"), ""),
            ]),
            ["work/api.git", "app.git", "me/app.git"]
        );
    }

    #[test]
    fn provisional_names_become_display_names_and_no_rename_is_recorded() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE repos (id INTEGER PRIMARY KEY, git_dir TEXT UNIQUE,
                                 name TEXT NOT NULL UNIQUE);
             INSERT INTO repos (git_dir, name) VALUES
                 ('/srv/a/app.git', ' /srv/a/app.git'),
                 ('/srv/b/app.git', ' /srv/b/app.git'),
                 ('/srv/work/api.git', ' /srv/work/api.git'),
                 (NULL, ' old.git');",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        let recorded = HashMap::from([(3, "work/api.git".to_string())]);
        name_repositories(&tx, &recorded).unwrap();
        let got: Vec<String> = tx
            .prepare("SELECT name FROM repos ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(got, ["a/app.git", "b/app.git", "work/api.git", "old.git"]);
    }
}
