//! Removing old runs: terminal runs finished before a cutoff, except the
//! newest few of each (repo, ref). Live runs are never touched. Rows go
//! in one transaction (jobs and steps by cascade); the caller removes the
//! run directories.

use rusqlite::params;

use crate::query::{RUN_COLUMNS, RUN_TABLES, run_from_row};
use crate::{Result, Run, Store};

impl Store {
    /// Delete (or with `dry_run`, only list) terminal runs that finished
    /// before `finished_before_ms`, keeping the `keep` newest terminal runs
    /// of every (repo, ref). Returns the runs removed, oldest first.
    pub fn prune(
        &mut self,
        finished_before_ms: i64,
        keep: usize,
        dry_run: bool,
    ) -> Result<Vec<Run>> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.write(|tx, _| {
            let mut stmt = tx.prepare(&format!(
                "WITH ranked AS (
                     SELECT id, ROW_NUMBER() OVER (
                         PARTITION BY repo_id, ref_name ORDER BY queued_at_ms DESC, id DESC) AS newest
                     FROM runs WHERE state IN ('complete', 'failed', 'superseded'))
                 SELECT {RUN_COLUMNS} FROM {RUN_TABLES} JOIN ranked ON ranked.id = runs.id
                 WHERE ranked.newest > ?1 AND runs.finished_at_ms < ?2
                   AND runs.state IN ('complete', 'failed', 'superseded')
                 ORDER BY runs.queued_at_ms, runs.id"
            ))?;
            let doomed = stmt
                .query_map(params![keep, finished_before_ms], run_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if !dry_run {
                let mut delete = tx.prepare(
                    "DELETE FROM runs WHERE id = ?1 AND state IN ('complete', 'failed', 'superseded')",
                )?;
                for run in &doomed {
                    delete.execute([&run.id])?;
                }
            }
            Ok(doomed)
        })
    }
}
