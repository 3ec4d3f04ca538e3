//! What `quire-runs list` costs in a large store: statements prepared once
//! however their values change.

use quire_store::{Home, Store};
use rusqlite::StatementStatus;
use rusqlite::config::DbConfig;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A store holding `ids` as runs of one repository, queued a second apart
/// in this order.
fn store_with_runs(home: &Home, ids: &[String]) -> Store {
    let store = Store::open(home).unwrap();
    let conn = store.connection();
    conn.execute(
        "INSERT INTO repos (id, git_dir, name, hook_state, first_seen_at_ms)
         VALUES (1, '/srv/git/app.git', 'app.git', 'seen', 0)",
        [],
    )
    .unwrap();
    let mut insert = conn
        .prepare(
            "INSERT INTO runs (id, repo_id, ref_name, sha, state, pushed_at_ms, queued_at_ms,
                               finished_at_ms)
             VALUES (?1, 1, 'refs/heads/main', ?2, 'superseded', ?3, ?3, ?3)",
        )
        .unwrap();
    for (n, id) in ids.iter().enumerate() {
        insert
            .execute(rusqlite::params![
                id,
                SHA,
                1_800_000_000_000i64 + n as i64 * 1000
            ])
            .unwrap();
    }
    drop(insert);
    store
}

/// An id of quire's shape, the `n`th of a push at `ms`.
fn id(ms: u64, n: u64) -> String {
    format!("{:08x}-{:04x}-7000-8000-{n:012x}", ms >> 16, ms & 0xffff)
}

#[test]
fn statistics_do_not_make_a_cached_statement_prepared_again() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..500).map(|n| id(0x0190_0000_0000, n)).collect();
    let store = store_with_runs(&Home::at(dir.path()), &ids);
    // Statistics as ANALYZE leaves them (quire never runs it; an operator,
    // or the benchmark, may): with them, SQLite plans a range by the values
    // bound to it, so binding new ones would make it prepare the statement
    // again at its next step.
    store.connection().execute_batch("ANALYZE").unwrap();
    let prepared_again = |store: &Store| {
        let mut stmt = store
            .connection()
            .prepare_cached("SELECT count(*) FROM runs WHERE id >= ?1 AND id < ?2")
            .unwrap();
        for prefix in ["0190", "01900000-0000-7000-8000-0000000001", "f"] {
            let _: i64 = stmt
                .query_row([prefix.to_string(), format!("{prefix}~")], |r| r.get(0))
                .unwrap();
        }
        stmt.get_status(StatementStatus::RePrepare)
    };
    assert_eq!(prepared_again(&store), 0);
    // What the store's connection is opened with to that end.
    store
        .connection()
        .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, false)
        .unwrap();
    store.connection().flush_prepared_statement_cache();
    assert!(prepared_again(&store) > 0);
}
