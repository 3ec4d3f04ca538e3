//! The short ids `quire-runs list` shows (docs/CLI.md, "Selecting runs"):
//! the ones promised, found without reading the newest runs' ids, from the
//! indexes of migration 0020; and statements prepared once however their
//! values change.

use quire_store::query::{ODD_ID_SQL, RECENT_IDS_SQL, RECENT_RUNS, SHORT_ID_MIN, TAIL_SQL};
use quire_store::schema;
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

/// The short ids docs/CLI.md promises, worked out from every run of the
/// store (`runs`: queue time and id): for one of the newest
/// [`RECENT_RUNS`], its shortest suffix of at least [`SHORT_ID_MIN`]
/// characters that no other of them contains, not beginning with `-`, that
/// no other run's id begins with; for an older one (or an id the store does
/// not hold), its shortest prefix of at least [`SHORT_ID_MIN`] characters
/// that no other run's id shares.
fn promised(runs: &[(i64, String)], shown: &[&str]) -> Vec<String> {
    let mut newest: Vec<&(i64, String)> = runs.iter().collect();
    newest.sort_by(|a, b| b.cmp(a));
    let recent: Vec<&str> = newest
        .iter()
        .take(RECENT_RUNS)
        .map(|(_, id)| id.as_str())
        .collect();
    shown
        .iter()
        .map(|&id| {
            if recent.contains(&id) {
                let mut len = SHORT_ID_MIN;
                while len < id.len() {
                    let suffix = &id[id.len() - len..];
                    let clashes = suffix.starts_with('-')
                        || recent.iter().any(|&o| o != id && o.contains(suffix))
                        || runs.iter().any(|(_, o)| o != id && o.starts_with(suffix));
                    if !clashes {
                        break;
                    }
                    len += 1;
                }
                id[id.len() - len..].to_string()
            } else {
                let shared = runs
                    .iter()
                    .filter(|(_, o)| o != id)
                    .map(|(_, o)| {
                        o.bytes()
                            .zip(id.bytes())
                            .take_while(|(a, b)| a == b)
                            .count()
                    })
                    .max()
                    .unwrap_or(0);
                id[..(shared + 1).max(SHORT_ID_MIN).min(id.len())].to_string()
            }
        })
        .collect()
}

/// Runs whose ids share their last 8 characters, `deadbeef`, or most of
/// them, wherever an id of quire's shape can hold them, some among the
/// newest runs and some older: (queue time, id), oldest first; between
/// the old and the newest, `fillers` runs whose ids share nothing much.
/// Some runs share their queue time.
fn tricky_runs(fillers: usize) -> Vec<(i64, String)> {
    let old = [
        // Older than the newest 10,000: their parts no longer clash, but
        // a run's id that begins with a suffix always does.
        "0190aaaa-0000-7000-8000-00000000cafe",
        "0190aaaa-0000-7000-8000-0000deadbeef",
        "0190aaaa-0000-7000-8000-deadbeef0000",
        "deadbee0-0000-7000-8000-000000000001",
        "beef0001-0000-7000-8000-000000000002",
        "0190aaaa-0000-7000-8000-0000feedf00d",
    ];
    let recent = [
        // The last group holds `deadbeef` from each of its first 5 digits,
        // and the first group is it.
        "01a20000-0000-7000-8000-deadbeef0001",
        "01a20000-0000-7000-8000-1deadbeef002",
        "01a20000-0000-7000-8000-12deadbeef03",
        "01a20000-0000-7000-8000-123deadbeef4",
        "01a20000-0000-7000-8000-1234deadbeef",
        "deadbeef-0000-7000-8000-000000000005",
        // The same 12 last digits, then the same 11.
        "01a20000-0000-7000-8001-0000deadbeef",
        "01a20000-0000-7000-8002-0000deadbeef",
        "01a20000-0000-7000-8003-1000deadbeef",
        // Almost: what the indexes' ranges find but does not hold it.
        "01a20000-0000-7000-8000-00adbeef0000",
        "01a20000-0000-7000-8000-0deadbee0000",
        "01a20000-0000-7000-8000-0000eadbeef0",
        "01a20000-0000-7000-8000-00000eadbeef",
        "01a20000-0000-7000-8000-0000000000f0",
        // Ends as an old run's id begins.
        "01a20000-0000-7000-8000-0000beef0001",
        // Ends as an old run's id does.
        "01a20000-0000-7000-8000-1111feedf00d",
        // Upper-case digits are of quire's shape too.
        "01A20000-0000-7000-8000-0000DEADBEEF",
    ];
    let mut runs = Vec::new();
    let mut at = 1_800_000_000_000i64;
    for id in old {
        at += 1000;
        runs.push((at, id.to_string()));
    }
    // Filler ids: the time's digits first, then 12 digits from a simple
    // generator (none with `deadbeef`, `beef0001` or `f00d` in it, nor
    // another's last 8).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut fill = 0;
    while fill < fillers {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let tail = format!("{:012x}", state >> 16);
        if tail.contains("dead") || tail.contains("beef") || tail.contains("f00d") {
            continue;
        }
        if fill % 3 != 2 {
            at += 1;
        }
        runs.push((at, id_at(at as u64, &tail)));
        fill += 1;
    }
    for (n, id) in recent.iter().enumerate() {
        // Every other one shares its predecessor's queue time.
        if n % 2 == 0 {
            at += 1000;
        }
        runs.push((at, id.to_string()));
    }
    runs
}

/// A filler's id of quire's shape: the time, then `tail`.
fn id_at(ms: u64, tail: &str) -> String {
    format!("{:08x}-{:04x}-7000-8000-{tail}", ms >> 16, ms & 0xffff)
}

/// A store holding `runs` (queue time, id).
fn store_of(home: &Home, runs: &[(i64, String)]) -> Store {
    let mut store = Store::open(home).unwrap();
    store
        .connection()
        .execute(
            "INSERT INTO repos (id, git_dir, name, hook_state, first_seen_at_ms)
             VALUES (1, '/srv/git/app.git', 'app.git', 'seen', 0)",
            [],
        )
        .unwrap();
    insert_runs(&mut store, runs);
    store
}

fn insert_runs(store: &mut Store, runs: &[(i64, String)]) {
    let conn = store.connection();
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut insert = conn
            .prepare(
                "INSERT INTO runs (id, repo_id, ref_name, sha, state, pushed_at_ms,
                                   queued_at_ms, finished_at_ms)
                 VALUES (?1, 1, 'refs/heads/main', ?2, 'superseded', ?3, ?3, ?3)",
            )
            .unwrap();
        for (at, id) in runs {
            insert.execute(rusqlite::params![id, SHA, at]).unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// Whether `short_ids` read the newest runs' ids (its statement, from the
/// connection's cache, has run), since `reset`.
fn read_the_newest(store: &Store) -> bool {
    let stmt = store.connection().prepare_cached(RECENT_IDS_SQL).unwrap();
    stmt.reset_status(StatementStatus::VmStep) > 0
}

/// Pages as `list` shows them, and runs by themselves: the newest, those
/// about the 10,000th newest, the tricky ones wherever they stand.
fn pages(runs: &[(i64, String)]) -> Vec<Vec<String>> {
    let mut newest: Vec<&(i64, String)> = runs.iter().collect();
    newest.sort_by(|a, b| b.cmp(a));
    let ids: Vec<String> = newest.iter().map(|(_, id)| id.clone()).collect();
    let around = (RECENT_RUNS - 3).min(ids.len())..(RECENT_RUNS + 3).min(ids.len());
    let tricky: Vec<String> = ids
        .iter()
        .filter(|id| {
            let tail = id.get(24..).unwrap_or(id);
            tail.contains("dead")
                || tail.contains("beef")
                || tail.contains("f00d")
                || tail.contains("cafe")
                || tail.ends_with("f0")
                || !id.as_bytes()[0].is_ascii_digit()
                || id.bytes().any(|b| b.is_ascii_uppercase())
        })
        .cloned()
        .collect();
    let mut pages = vec![
        ids[..20.min(ids.len())].to_vec(),
        ids[around.clone()].to_vec(),
        tricky.clone(),
        // Not in list order, and twice.
        tricky.iter().rev().chain(&tricky).cloned().collect(),
        // Not a run's id.
        vec!["01a20000-0000-7000-8000-0000deadbee0".to_string()],
    ];
    pages.extend(ids[around].iter().map(|id| vec![id.clone()]));
    pages.extend(tricky.iter().map(|id| vec![id.clone()]));
    pages
}

fn check_pages(store: &Store, runs: &[(i64, String)]) {
    for page in pages(runs) {
        let shown: Vec<&str> = page.iter().map(String::as_str).collect();
        assert_eq!(
            store.short_ids(&shown).unwrap(),
            promised(runs, &shown),
            "{shown:?}"
        );
    }
}

#[test]
fn short_ids_are_the_promised_ones_without_reading_the_newest_ids() {
    let dir = tempfile::tempdir().unwrap();
    let runs = tricky_runs(RECENT_RUNS + 2);
    let store = store_of(&Home::at(dir.path()), &runs);
    read_the_newest(&store);
    check_pages(&store, &runs);
    assert!(!read_the_newest(&store));
    // A few by hand: the last 8 digits where they are the only ones, one
    // digit more where another recent id holds them, a prefix for an old
    // run, more where the same 12 digits end another, the last 8 where
    // only an old run's id ends with them.
    let shown = [
        "01a20000-0000-7000-8000-0000000000f0",
        "01a20000-0000-7000-8000-1234deadbeef",
        "0190aaaa-0000-7000-8000-00000000cafe",
        "01a20000-0000-7000-8001-0000deadbeef",
        "01a20000-0000-7000-8000-1111feedf00d",
    ];
    assert_eq!(
        store.short_ids(&shown).unwrap(),
        [
            "000000f0",
            "4deadbeef",
            "0190aaaa-0000-7000-8000-00000",
            "1-0000deadbeef",
            "feedf00d",
        ]
    );
}

#[test]
fn a_store_with_fewer_runs_than_the_newest_counted_has_them_all_recent() {
    let dir = tempfile::tempdir().unwrap();
    let runs = tricky_runs(30);
    let store = store_of(&Home::at(dir.path()), &runs);
    check_pages(&store, &runs);
    assert!(!read_the_newest(&store));
}

#[test]
fn an_id_not_of_quires_shape_makes_short_ids_read_the_newest_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = tricky_runs(200);
    let store = store_of(&Home::at(dir.path()), &runs);
    let mut store = store;
    // Written by hand: the indexes over ids' last group do not see what
    // it holds.
    let at = runs.last().unwrap().0;
    let newest = [
        (at + 1, "01a20000-0000-7000-8000-777777777777".to_string()),
        (at + 2, "odd-777777777777-odd".to_string()),
    ];
    insert_runs(&mut store, &newest);
    runs.extend(newest);
    read_the_newest(&store);
    check_pages(&store, &runs);
    assert!(read_the_newest(&store));
    // Every suffix of up to 12 characters is in the odd id.
    assert_eq!(
        store
            .short_ids(&["01a20000-0000-7000-8000-777777777777"])
            .unwrap(),
        ["0-777777777777"]
    );
}

#[test]
fn many_ids_holding_the_same_8_digits_make_short_ids_read_the_newest_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = tricky_runs(100);
    let at = runs.last().unwrap().0;
    runs.extend((0..100u64).map(|n| (at + 1 + n as i64, id_at(n, &format!("{n:04x}cafe0000")))));
    let store = store_of(&Home::at(dir.path()), &runs);
    read_the_newest(&store);
    check_pages(&store, &runs);
    assert!(read_the_newest(&store));
}

#[test]
fn short_ids_search_indexes_and_scan_no_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Home::at(dir.path())).unwrap();
    let plan = |sql: &str| {
        let mut stmt = store
            .connection()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let count = stmt.parameter_count();
        let values: Vec<String> = (0..count).map(|_| "0".to_string()).collect();
        stmt.query_map(rusqlite::params_from_iter(values), |row| {
            row.get::<_, String>(3)
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .join("\n")
    };
    let tail = plan(TAIL_SQL);
    assert!(
        tail.contains("runs_id_middle") && tail.contains("runs_id_tail"),
        "{tail}"
    );
    let odd = plan(ODD_ID_SQL);
    assert!(odd.contains("runs_odd_id"), "{odd}");
    for line in tail.lines().chain(odd.lines()) {
        assert!(
            !line.contains("SCAN runs") || line.contains("runs_odd_id"),
            "a full scan of runs: {tail}\n{odd}"
        );
    }
}

#[test]
fn a_store_of_schema_19_gains_the_id_indexes_keeping_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    home.ensure().unwrap();
    let runs = tricky_runs(50);
    {
        let mut conn = rusqlite::Connection::open(home.db_path()).unwrap();
        schema::migrate_to(&mut conn, 19).unwrap();
        conn.execute(
            "INSERT INTO repos (id, git_dir, name, hook_state, first_seen_at_ms)
             VALUES (1, '/srv/git/app.git', 'app.git', 'seen', 0)",
            [],
        )
        .unwrap();
        for (at, id) in &runs {
            conn.execute(
                "INSERT INTO runs (id, repo_id, ref_name, sha, state, pushed_at_ms,
                                   queued_at_ms, finished_at_ms)
                 VALUES (?1, 1, 'refs/heads/main', ?2, 'superseded', ?3, ?3, ?3)",
                rusqlite::params![id, SHA, at],
            )
            .unwrap();
        }
    }
    let store = Store::open(&home).unwrap();
    let conn = store.connection();
    assert_eq!(schema::version(conn).unwrap(), schema::LATEST);
    let mut kept: Vec<(i64, String)> = conn
        .prepare("SELECT queued_at_ms, id FROM runs")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    kept.sort();
    let mut want = runs.clone();
    want.sort();
    assert_eq!(kept, want);
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for index in ["runs_id_middle", "runs_id_tail", "runs_odd_id"] {
        assert!(indexes.iter().any(|i| i == index), "{index}: {indexes:?}");
    }
    // Filled from the runs already there.
    let found: Vec<String> = conn
        .prepare(TAIL_SQL)
        .unwrap()
        .query_map(
            rusqlite::params![
                "adbeef",
                "adbeef~",
                "eadbeef",
                "eadbeef~",
                "deadbeef",
                "deadbeef~",
                "eadbeef",
                "eadbeef~",
                "deadbeef",
                "deadbeef~",
                100
            ],
            |r| r.get(0),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for id in [
        "01a20000-0000-7000-8000-deadbeef0001",
        "01a20000-0000-7000-8000-1deadbeef002",
        "01a20000-0000-7000-8000-12deadbeef03",
        "01a20000-0000-7000-8000-123deadbeef4",
        "01a20000-0000-7000-8000-1234deadbeef",
    ] {
        assert!(found.iter().any(|f| f == id), "{id}: {found:?}");
    }
    let odd: bool = conn.query_row(ODD_ID_SQL, [], |r| r.get(0)).unwrap();
    assert!(!odd);
    check_pages(&store, &runs);
}
