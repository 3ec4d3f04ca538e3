//! What is told about a run once it ended (docs/OPERATIONS.md, "When a run
//! ends"): an announcer takes each ended run once (`runs.announced_at_ms`),
//! writes its git note and runs the config's `[[notify]]` commands, whose
//! outcome is kept in `notifications` for `quire-runs show`.

use rusqlite::params;

use crate::query::{notifications_of, run_by_id};
use crate::sql::QueryCached;
use crate::{Result, Store};
use quire_model::{Notification, NotificationState, Run};

/// Ended runs an announcer may take: never one upstream quire left
/// unfinished (history is not announced; `finish_import` also marks them
/// announced).
const ENDED: &str = "state IN ('complete', 'failed', 'superseded') AND upstream_unfinished IS NULL";

impl Store {
    /// Whether an ended run waits for an announcer. Cheap (a partial
    /// index): the hook asks after every push.
    pub fn has_unannounced(&self) -> Result<bool> {
        Ok(self.connection().query_row_cached(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE announced_at_ms IS NULL AND {ENDED})"
            ),
            [],
            |r| r.get(0),
        )?)
    }

    /// When the ended run that has waited longest for an announcer ended
    /// (ms since the epoch); None when none waits.
    pub fn oldest_unannounced_ms(&self) -> Result<Option<i64>> {
        Ok(self.connection().query_row_cached(
            &format!(
                "SELECT min(finished_at_ms) FROM runs WHERE announced_at_ms IS NULL AND {ENDED}"
            ),
            [],
            |r| r.get(0),
        )?)
    }

    /// Take up to `most` ended runs that wait for an announcer, the longest
    /// waiting first, in one transaction: they are this caller's to
    /// announce, and no other announcer's (a burst of ended runs is
    /// announced together, their notes in one commit). `notifiers` names
    /// the notifiers it will run for each (position and argv), recorded as
    /// running in the same transaction: whoever sees a run announced sees
    /// its notifiers too.
    pub fn take_unannounced_batch(
        &mut self,
        notifiers: impl Fn(&Run) -> Vec<(i64, Vec<String>)>,
        most: usize,
    ) -> Result<Vec<Run>> {
        let most = i64::try_from(most).unwrap_or(i64::MAX);
        self.write(|tx, now| {
            let ids: Vec<String> = tx
                .prepare_cached(&format!(
                    "SELECT id FROM runs WHERE announced_at_ms IS NULL AND {ENDED}
                     ORDER BY finished_at_ms, id LIMIT ?1"
                ))?
                .query_map([most], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut runs = Vec::with_capacity(ids.len());
            for id in ids {
                tx.prepare_cached("UPDATE runs SET announced_at_ms = ?1 WHERE id = ?2")?
                    .execute(params![now, id])?;
                let Some(run) = run_by_id(tx, &id)? else {
                    continue;
                };
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO notifications
                         (run_id, position, command, state, started_at_ms)
                     VALUES (?1, ?2, ?3, 'running', ?4)",
                )?;
                for (position, command) in notifiers(&run) {
                    let argv = serde_json::to_string(&command).unwrap_or_else(|_| "[]".into());
                    insert.execute(params![id, position, argv, now])?;
                }
                runs.push(run);
            }
            Ok(runs)
        })
    }

    /// Record how notifier `position` of a run ended.
    pub fn notification_finished(
        &mut self,
        run_id: &str,
        position: i64,
        state: NotificationState,
        exit_code: Option<i64>,
        stderr_tail: Option<&str>,
    ) -> Result<()> {
        self.write(|tx, now| {
            tx.prepare_cached(
                "UPDATE notifications
                 SET state = ?1, exit_code = ?2, stderr_tail = ?3, finished_at_ms = ?4
                 WHERE run_id = ?5 AND position = ?6",
            )?
            .execute(params![
                state.as_str(),
                exit_code,
                stderr_tail,
                now,
                run_id,
                position
            ])?;
            Ok(())
        })
    }

    /// The notifiers run for a run, in config order.
    pub fn notifications(&self, run_id: &str) -> Result<Vec<Notification>> {
        Ok(notifications_of(self.connection(), run_id)?)
    }
}
