//! Copies of a store file taken without touching it: how `migrate-from`
//! reads an upstream home, whose files must stay as they were.

use std::fs;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::{Result, Store};

/// Copy the store to `target`, reading the source only. A store with no
/// write-ahead log is read as immutable (SQLite touches nothing beside it);
/// one with a log is copied file by file (a stopped upstream that did not
/// close cleanly) or, while upstream runs (`--force`), snapshotted through a
/// read-only connection.
pub fn copy(source: &Path, target: &Path, running: bool) -> std::result::Result<(), String> {
    let wal = source.with_extension("db-wal");
    let has_log = fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    let result = if has_log && !running {
        fs::copy(source, target)
            .and_then(|_| fs::copy(&wal, target.with_extension("db-wal")))
            .map(drop)
            .map_err(|e| e.to_string())
    } else {
        let uri = format!(
            "file:{}{}",
            uri_path(source),
            if running { "?mode=ro" } else { "?immutable=1" }
        );
        Connection::open_with_flags(
            uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )
        .and_then(|conn| conn.execute("VACUUM INTO ?1", [target.to_string_lossy()]))
        .map(drop)
        .map_err(|e| e.to_string())
    };
    result?;
    use std::os::unix::fs::PermissionsExt;
    for file in [target.to_path_buf(), target.with_extension("db-wal")] {
        if file.exists() {
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// A path as a `file:` URI path: the characters URIs reserve, escaped.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{byte:02x}")),
            _ if byte.is_ascii() && !byte.is_ascii_control() => out.push(char::from(*byte)),
            _ => out.push_str(&format!("%{byte:02x}")),
        }
    }
    out
}

/// (runs, jobs, steps) in a store of either lineage.
pub fn row_counts(db: &Path) -> rusqlite::Result<(i64, i64, i64)> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    row_counts_in(&conn)
}

fn row_counts_in(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    let count = |table: &str| -> rusqlite::Result<i64> {
        let exists: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if exists == 0 {
            return Ok(0);
        }
        conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
    };
    Ok((
        count("runs")?,
        count("jobs")?,
        count("sh_events")? + count("sh")?,
    ))
}

impl Store {
    /// (runs, jobs, steps) in this store.
    pub fn row_counts(&self) -> Result<(i64, i64, i64)> {
        Ok(row_counts_in(&self.conn)?)
    }

    /// The id of every run.
    pub fn run_ids(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT id FROM runs ORDER BY id")?;
        let ids = stmt
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_escape_what_uris_reserve() {
        assert_eq!(
            uri_path(Path::new("/a b/q?x#1%.db")),
            "/a b/q%3fx%231%25.db"
        );
    }
}
