//! The schema history: `migrations/NNNN_name.sql`, append-only, embedded at
//! compile time. 0001..0007 are the seed's history; 0008 on are quire's own.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use rusqlite_migration::{HookResult, M, Migrations};

mod names_0010;

/// The seed's history, 0001..0007: upstream quire's versions 1..7 as
/// they shipped. Also how an upstream store of a later version is brought
/// back to version 7's shape (`upstream::convert_to_seven`), so that shape
/// is written here once.
pub(crate) const SEED: [&str; 7] = [
    include_str!("../../../migrations/0001_initial.sql"),
    include_str!("../../../migrations/0002_sh_events.sql"),
    include_str!("../../../migrations/0003_auth_token.sql"),
    include_str!("../../../migrations/0004_git_dir_sentry.sql"),
    include_str!("../../../migrations/0005_run_token.sql"),
    include_str!("../../../migrations/0006_traceparent.sql"),
    include_str!("../../../migrations/0007_drop_dead_columns.sql"),
];

/// Each migration, in order. Those that rebuild a table check foreign keys
/// before their transaction commits.
fn steps() -> Vec<M<'static>> {
    let [m1, m2, m3, m4, m5, m6, m7] = SEED;
    vec![
        M::up(m1),
        M::up(m2),
        M::up(m3),
        M::up(m4),
        M::up(m5),
        M::up(m6),
        M::up(m7).foreign_key_check(),
        M::up(include_str!("../../../migrations/0008_quire_schema.sql")).foreign_key_check(),
        M::up(include_str!("../../../migrations/0009_previous_sha.sql")),
        M::up_with_hook(
            include_str!("../../../migrations/0010_repos.sql"),
            name_repositories,
        )
        .foreign_key_check(),
        M::up(include_str!("../../../migrations/0011_artifacts.sql")),
        M::up(include_str!("../../../migrations/0012_step_logs.sql")),
        M::up(include_str!("../../../migrations/0013_containment.sql")),
        M::up(include_str!("../../../migrations/0014_announce.sql")),
        M::up(include_str!("../../../migrations/0015_run_story.sql")).foreign_key_check(),
        M::up(include_str!("../../../migrations/0016_fair_claim.sql")),
        M::up(include_str!(
            "../../../migrations/0017_upstream_unfinished.sql"
        )),
        M::up(include_str!("../../../migrations/0018_monotonic_times.sql")).foreign_key_check(),
        M::up(include_str!("../../../migrations/0019_job_logs.sql")),
        M::up(include_str!("../../../migrations/0020_short_ids.sql")),
        M::up(include_str!("../../../migrations/0021_job_waiting.sql")),
        M::up(include_str!("../../../migrations/0022_node_lost.sql")).foreign_key_check(),
        M::up(include_str!(
            "../../../migrations/0023_retry_of_repo_order.sql"
        )),
    ]
}

/// 0010's Rust step: every repository gets its display name, keeping the
/// name its runs were recorded under where that is still unambiguous. The
/// naming is a frozen copy of the code 0010 shipped with
/// ([`names_0010`]), never today's: a migration runs no live code.
fn name_repositories(tx: &Transaction<'_>) -> HookResult {
    let recorded: HashMap<i64, String> = tx
        .prepare("SELECT repo_id, name FROM temp.recorded_name")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    tx.execute_batch("DROP TABLE temp.recorded_name")?;
    names_0010::name_repositories(tx, &recorded)?;
    Ok(())
}

/// The schema version this build writes and reads.
pub const LATEST: i64 = 23;

/// The schema version recorded in the database (`PRAGMA user_version`).
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Bring the schema up to `target` (at most [`LATEST`]) in one transaction.
///
/// Rebuilding a table with `foreign_keys=ON` would cascade `DROP TABLE runs`
/// into jobs and sh_events, and the pragma is a no-op inside a transaction, so
/// SQLite's table-change procedure is followed: foreign keys off before the
/// transaction, `foreign_key_check` before commit (see [`steps`]), on after.
/// The transaction is IMMEDIATE so that two processes upgrading the same store
/// take turns instead of failing to upgrade a read lock.
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), rusqlite_migration::Error> {
    let target = usize::try_from(target.clamp(0, LATEST)).unwrap_or_default();
    conn.pragma_update(None, "foreign_keys", false)?;
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    let result = Migrations::new(steps()).to_version(conn, target);
    conn.set_transaction_behavior(TransactionBehavior::Deferred);
    conn.pragma_update(None, "foreign_keys", true)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_matches_the_migration_files() {
        assert_eq!(steps().len() as i64, LATEST);
        Migrations::new(steps()).validate().unwrap();
    }
}
