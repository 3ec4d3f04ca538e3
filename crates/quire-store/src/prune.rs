//! Removing old runs: terminal runs finished before a cutoff, except the
//! newest few of each (repo, ref). Live runs are never touched. Rows go
//! in one transaction (jobs, steps, artifacts and packed step logs by
//! cascade); the caller removes the run directories.

use rusqlite::params;

use crate::query::{RUN_COLUMN_COUNT, RUN_COLUMNS, RUN_TABLES, run_from_row};
use crate::{Result, Run, Store};

/// A run [`Store::prune`] removed.
#[derive(Debug, Clone)]
pub struct Pruned {
    pub run: Run,
    /// Bytes of its step logs that were packed into the store.
    pub packed_log_bytes: u64,
}

impl Store {
    /// Delete (or with `dry_run`, only list) terminal runs that finished
    /// before `finished_before_ms`, keeping the `keep` newest terminal runs
    /// of every (repo, ref). Returns the runs removed, oldest first.
    pub fn prune(
        &mut self,
        finished_before_ms: i64,
        keep: usize,
        dry_run: bool,
    ) -> Result<Vec<Pruned>> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.write(|tx, _| {
            let mut stmt = tx.prepare(&format!(
                "WITH ranked AS (
                     SELECT id, ROW_NUMBER() OVER (
                         PARTITION BY repo_id, ref_name ORDER BY queued_at_ms DESC, id DESC) AS newest
                     FROM runs WHERE state IN ('complete', 'failed', 'superseded'))
                 SELECT {RUN_COLUMNS},
                        (SELECT COALESCE(SUM(length(log)), 0) FROM step_logs
                         WHERE step_logs.run_id = runs.id)
                 FROM {RUN_TABLES} JOIN ranked ON ranked.id = runs.id
                 WHERE ranked.newest > ?1 AND runs.finished_at_ms < ?2
                   AND runs.state IN ('complete', 'failed', 'superseded')
                 ORDER BY runs.queued_at_ms, runs.id"
            ))?;
            let doomed = stmt
                .query_map(params![keep, finished_before_ms], |row| {
                    Ok(Pruned {
                        run: run_from_row(row)?,
                        packed_log_bytes: row.get::<_, i64>(RUN_COLUMN_COUNT)?.max(0) as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if !dry_run {
                let mut delete = tx.prepare(
                    "DELETE FROM runs WHERE id = ?1 AND state IN ('complete', 'failed', 'superseded')",
                )?;
                for pruned in &doomed {
                    delete.execute([&pruned.run.id])?;
                }
            }
            Ok(doomed)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::query::{RUN_COLUMN_COUNT, RUN_COLUMNS};

    #[test]
    fn the_run_column_count_is_that_of_the_run_columns() {
        assert_eq!(RUN_COLUMNS.split(',').count(), RUN_COLUMN_COUNT);
    }
}
