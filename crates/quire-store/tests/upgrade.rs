//! Every store upstream ever wrote (versions 1-11, built from the facts of
//! each version by `support/upstream.rs`) and every store quire wrote before
//! stores were marked opens, converting to the newest schema with every run,
//! job and step row kept; a file of any other lineage is refused unchanged.

#[path = "support/upstream.rs"]
mod upstream;

use std::path::Path;

use quire_store::lifecycle::NewRun;
use quire_store::query::ListFilter;
use quire_store::schema::{self, LATEST};
use quire_store::upstream::APPLICATION_ID;
use quire_store::{Home, Store};
use rusqlite::Connection;

use upstream::{Expected, LATEST_UPSTREAM};

fn all_runs(store: &Store) -> Vec<quire_store::Run> {
    let mut runs = store
        .list_runs(&ListFilter {
            limit: usize::MAX >> 2,
            ..ListFilter::default()
        })
        .unwrap();
    runs.sort_by(|a, b| a.id.cmp(&b.id));
    runs
}

/// The store holds exactly what `expected` says, in quire's vocabulary.
fn check(store: &Store, expected: &Expected, version: i64) {
    let runs = all_runs(store);
    assert_eq!(
        runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        expected
            .runs
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        "v{version}: the same runs"
    );
    for (run, want) in runs.iter().zip(&expected.runs) {
        let at = format!("v{version} run {}", run.id);
        assert_eq!(run.repo, want.repo, "{at}: repo");
        // A run recorded without a path belongs to the repository of its
        // name, whose path other runs may have recorded.
        if want.git_dir.is_some() {
            assert_eq!(run.git_dir, want.git_dir, "{at}: git_dir");
        }
        assert_eq!(run.ref_name, want.ref_name, "{at}: ref");
        assert_eq!(run.sha, want.sha, "{at}: sha");
        assert_eq!(run.state.as_str(), want.state, "{at}: state");
        assert_eq!(
            run.failure_kind.map(|k| k.as_str()),
            want.failure_kind,
            "{at}: failure kind"
        );
        if let Some(text) = want.detail_contains {
            let detail = run.failure_detail.as_deref().unwrap_or_default();
            assert!(
                detail.contains(text),
                "{at}: detail {detail:?} lacks {text:?}"
            );
        }
        assert_eq!(run.pushed_at_ms, want.pushed_at_ms, "{at}: pushed");
        assert_eq!(run.queued_at_ms, want.queued_at_ms, "{at}: queued");
        assert_eq!(run.started_at_ms, want.started_at_ms, "{at}: started");
        assert_eq!(run.finished_at_ms, want.finished_at_ms, "{at}: finished");
        assert_eq!(run.traceparent, want.traceparent, "{at}: traceparent");
        // A run upstream left unfinished is marked, and has no duration.
        let unfinished = matches!(want.was, "pending" | "active") && want.state == "failed";
        assert_eq!(
            run.upstream_unfinished,
            unfinished.then_some(version),
            "{at}: upstream_unfinished"
        );
        if unfinished {
            assert_eq!(run.duration_ms(i64::MAX), None, "{at}: duration");
        }
    }
    // History never runs and is never announced.
    assert!(
        !store.has_claimable(usize::MAX).unwrap(),
        "v{version}: claimable"
    );
    assert!(!store.has_unannounced().unwrap(), "v{version}: unannounced");
    let mut jobs = Vec::new();
    let mut steps = Vec::new();
    for run in &runs {
        for job in store.run_detail(&run.id).unwrap().jobs {
            jobs.push((
                run.id.clone(),
                job.job.id.clone(),
                job.job.state.as_str(),
                job.job.started_at_ms,
                job.job.finished_at_ms,
            ));
            for step in job.steps {
                steps.push((
                    run.id.clone(),
                    job.job.id.clone(),
                    step.seq,
                    step.cmd,
                    step.exit_code,
                    step.started_at_ms,
                    step.finished_at_ms,
                ));
            }
        }
    }
    jobs.sort();
    steps.sort();
    let mut want_jobs: Vec<_> = expected
        .jobs
        .iter()
        .map(|j| {
            (
                j.run_id.clone(),
                j.job_id.clone(),
                j.state,
                j.started_at_ms,
                j.finished_at_ms,
            )
        })
        .collect();
    want_jobs.sort();
    let mut want_steps: Vec<_> = expected
        .steps
        .iter()
        .map(|s| {
            (
                s.run_id.clone(),
                s.job_id.clone(),
                s.seq,
                s.cmd.clone(),
                s.exit_code,
                s.started_at_ms,
                s.finished_at_ms,
            )
        })
        .collect();
    want_steps.sort();
    assert_eq!(jobs, want_jobs, "v{version}: jobs");
    assert_eq!(steps, want_steps, "v{version}: steps");
}

fn marked_and_current(conn: &Connection) {
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, APPLICATION_ID);
    assert_eq!(schema::version(conn).unwrap(), LATEST);
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0);
}

#[test]
fn every_upstream_version_converts_keeping_every_row() {
    for version in 1..=LATEST_UPSTREAM {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home"));
        std::fs::create_dir_all(home.dir()).unwrap();
        let expected = upstream::build(&home.db_path(), &dir.path().join("repos"), version);
        assert!(!expected.runs.is_empty());
        let store = Store::open(&home).unwrap_or_else(|e| panic!("v{version}: {e}"));
        marked_and_current(store.connection());
        check(&store, &expected, version);
        // The open that converted says what it converted.
        let was = |state: &str| {
            expected
                .runs
                .iter()
                .filter(|r| r.was == state && r.state == "failed")
                .count() as i64
        };
        let converted = store.converted().expect("the conversion is reported");
        assert_eq!(converted.version, version);
        assert_eq!(converted.runs, expected.runs.len() as i64, "v{version}");
        assert_eq!(
            (converted.pending, converted.active),
            (was("pending"), was("active")),
            "v{version}"
        );
        assert!(converted.pending > 0 && converted.active > 0, "v{version}");
        assert!(converted.superseded > 0, "v{version}: the racing runs");
        drop(store);
        // Opening again changes nothing, and says nothing.
        let store = Store::open(&home).unwrap();
        check(&store, &expected, version);
        assert_eq!(store.converted(), None, "v{version}");
    }
}

#[test]
fn many_processes_opening_one_upstream_store_at_once_convert_it_once() {
    for version in [7, 10] {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home"));
        std::fs::create_dir_all(home.dir()).unwrap();
        let expected = upstream::build(&home.db_path(), &dir.path().join("repos"), version);
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let home = home.clone();
                std::thread::spawn(move || Store::open(&home).map(drop))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let store = Store::open(&home).unwrap();
        check(&store, &expected, version);
    }
}

/// A store as quire wrote it before stores were marked: schema 8 or 9,
/// runs naming their repository by folder name, two of them `app.git`.
fn unmarked_quire_store(home: &Home, version: i64) {
    std::fs::create_dir_all(home.dir()).unwrap();
    let mut conn = Connection::open(home.db_path()).unwrap();
    schema::migrate_to(&mut conn, version).unwrap();
    let previous = if version >= 9 { ", previous_sha" } else { "" };
    let previous_value = if version >= 9 { ", NULL" } else { "" };
    for (n, (git_dir, state, finished)) in [
        ("/srv/git/team-a/app.git", "complete", Some(2_000)),
        ("/srv/git/team-b/app.git", "pending", None),
        ("/srv/git/team-a/app.git", "pending", None),
    ]
    .into_iter()
    .enumerate()
    {
        let started = finished.map(|_| 1_500);
        conn.execute(
            &format!(
                "INSERT INTO runs (id, repo, ref_name, sha, state, pushed_at_ms, queued_at_ms,
                                   started_at_ms, finished_at_ms, git_dir{previous})
                 VALUES (?1, 'app.git', ?2, ?3, ?4, 1000, 1000 + ?5, ?6, ?7, ?8{previous_value})"
            ),
            rusqlite::params![
                format!("018f0000-0000-7000-8000-00000000000{n}"),
                if n == 1 {
                    "refs/heads/dev"
                } else {
                    "refs/heads/main"
                },
                "a".repeat(40),
                state,
                n as i64,
                started,
                finished,
                git_dir,
            ],
        )
        .unwrap();
    }
}

#[test]
fn quire_stores_from_before_repositories_split_same_named_repositories() {
    for version in [8, 9] {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home"));
        unmarked_quire_store(&home, version);
        let mut store = Store::open(&home).unwrap();
        marked_and_current(store.connection());
        let runs = all_runs(&store);
        let names: Vec<(&str, Option<&str>)> = runs
            .iter()
            .map(|r| (r.repo.as_str(), r.git_dir.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("team-a/app.git", Some("/srv/git/team-a/app.git")),
                ("team-b/app.git", Some("/srv/git/team-b/app.git")),
                ("team-a/app.git", Some("/srv/git/team-a/app.git")),
            ],
            "v{version}"
        );
        // team-b's push of main does not touch team-a's pending run of main.
        let team_b = store.resolve_repo("team-b/app.git").unwrap();
        let created = store
            .create_run(&NewRun {
                repo_id: team_b.id,
                ref_name: "refs/heads/main",
                sha: &"b".repeat(40),
                pushed_at_ms: None,
                previous_sha: None,
                invalid: None,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(created.superseded, None, "v{version}");
        assert_eq!(
            store.resolve_run(&runs[2].id).unwrap().state.as_str(),
            "pending"
        );
    }
}

/// Open must refuse `db` with a message containing `says`, leaving every
/// byte as it was.
fn refused_unchanged(home: &Home, says: &str) {
    let before = std::fs::read(home.db_path()).unwrap();
    let err = Store::open(home).err().expect("must be refused");
    assert!(err.to_string().contains(says), "{err}");
    assert!(err.to_string().contains("left unchanged"), "{err}");
    assert_eq!(std::fs::read(home.db_path()).unwrap(), before);
    let wal = home.db_path().with_extension("db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}

fn file_with(home: &Home, sql: &str) {
    std::fs::create_dir_all(home.dir()).unwrap();
    let conn = Connection::open(home.db_path()).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn a_store_of_another_lineage_is_refused_byte_for_byte_unchanged() {
    let cases: [(&str, &str); 4] = [
        (
            "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi'); PRAGMA user_version = 3;",
            "neither quire's nor upstream",
        ),
        (
            "CREATE TABLE runs (id TEXT); CREATE TABLE jobs (id TEXT); PRAGMA application_id = 1234;",
            "another program",
        ),
        (
            "CREATE TABLE runs (id TEXT, outcome TEXT); CREATE TABLE jobs (id TEXT);
             CREATE TABLE sh (id TEXT); PRAGMA user_version = 12;",
            "newer than any this quire converts",
        ),
        ("PRAGMA user_version = 5;", "no tables but user_version 5"),
    ];
    for (sql, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home"));
        file_with(&home, sql);
        refused_unchanged(&home, says);
    }
}

#[test]
fn an_upstream_store_whose_version_disagrees_with_its_tables_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("home"));
    std::fs::create_dir_all(home.dir()).unwrap();
    upstream::build(&home.db_path(), Path::new("/srv/repos"), 10);
    let conn = Connection::open(home.db_path()).unwrap();
    conn.execute_batch("PRAGMA user_version = 9; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    refused_unchanged(&home, "shape of upstream quire's version 10");
}

#[test]
fn a_store_newer_than_this_build_is_refused_byte_for_byte_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    drop(Store::open(&home).unwrap());
    let conn = Connection::open(home.db_path()).unwrap();
    conn.pragma_update(None, "user_version", LATEST + 1)
        .unwrap();
    drop(conn);
    let before = std::fs::read(home.db_path()).unwrap();
    let err = Store::open(&home)
        .err()
        .expect("a newer store must be refused");
    assert!(
        matches!(err, quire_store::Error::TooNew { found, known, .. } if found == LATEST + 1 && known == LATEST)
    );
    assert!(
        err.to_string().contains("newer than this quire knows"),
        "{err}"
    );
    assert_eq!(std::fs::read(home.db_path()).unwrap(), before);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let garbage = b"this is not sqlite, it is a shopping list\n".repeat(200);
    std::fs::write(home.db_path(), &garbage).unwrap();
    let err = Store::open(&home).err().expect("garbage must be refused");
    assert!(
        matches!(err, quire_store::Error::NotADatabase { .. }),
        "{err:?}"
    );
    assert_eq!(std::fs::read(home.db_path()).unwrap(), garbage);
}

#[test]
fn the_store_file_and_home_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("new/home"));
    let store = Store::open(&home).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(home.dir()), 0o700);
    assert_eq!(mode(&home.db_path()), 0o600);
    let journal: String = store
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let wal = home.db_path().with_extension("db-wal");
    assert!(!wal.exists() || mode(&wal) == 0o600);
}

#[test]
fn a_conversion_interrupted_before_its_runs_were_marked_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("home"));
    std::fs::create_dir_all(home.dir()).unwrap();
    let expected = upstream::build(&home.db_path(), &dir.path().join("repos"), 11);
    drop(Store::open(&home).unwrap());
    // What an open that died between quire's migrations and
    // `finish_import` leaves: the runs failed, the import table still
    // there, the marks not yet written.
    let want = expected
        .runs
        .iter()
        .find(|r| r.was == "active" && r.state == "failed")
        .unwrap();
    let conn = Connection::open(home.db_path()).unwrap();
    conn.execute_batch(
        "CREATE TABLE upstream_import (run_id TEXT PRIMARY KEY NOT NULL,
                                       version INTEGER NOT NULL, was TEXT NOT NULL)",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO upstream_import VALUES (?1, 11, 'active')",
        [&want.id],
    )
    .unwrap();
    conn.execute(
        "UPDATE runs SET upstream_unfinished = NULL, failure_detail = NULL WHERE id = ?1",
        [&want.id],
    )
    .unwrap();
    drop(conn);

    let store = Store::open(&home).unwrap();
    let converted = store.converted().expect("the next open finishes it");
    assert_eq!((converted.version, converted.active), (11, 1));
    let run = store.resolve_run(&want.id).unwrap();
    assert_eq!(run.upstream_unfinished, Some(11));
    assert!(
        run.failure_detail
            .as_deref()
            .is_some_and(|d| d.contains("never ran here")),
        "{run:?}"
    );
    let left: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'upstream_import'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    drop(store);
    assert_eq!(Store::open(&home).unwrap().converted(), None);
}

#[test]
fn a_run_upstream_left_unfinished_cannot_become_live_again() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("home"));
    std::fs::create_dir_all(home.dir()).unwrap();
    let expected = upstream::build(&home.db_path(), &dir.path().join("repos"), 7);
    drop(Store::open(&home).unwrap());
    let want = expected
        .runs
        .iter()
        .find(|r| r.was == "pending" && r.state == "failed")
        .unwrap();
    let conn = Connection::open(home.db_path()).unwrap();
    let revived = conn.execute(
        "UPDATE runs SET state = 'pending', failure_kind = NULL, failure_detail = NULL,
                         started_at_ms = NULL, finished_at_ms = NULL WHERE id = ?1",
        [&want.id],
    );
    assert!(revived.is_err(), "the CHECK let it become pending again");
}

#[test]
fn a_run_upstream_left_unfinished_is_never_announced() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("home"));
    std::fs::create_dir_all(home.dir()).unwrap();
    let expected = upstream::build(&home.db_path(), &dir.path().join("repos"), 11);
    drop(Store::open(&home).unwrap());
    // Even were it to wait for an announcer (it counts as announced from
    // the conversion on), none takes it.
    let conn = Connection::open(home.db_path()).unwrap();
    let waiting = conn
        .execute(
            "UPDATE runs SET announced_at_ms = NULL WHERE upstream_unfinished IS NOT NULL",
            [],
        )
        .unwrap();
    assert!(waiting > 0);
    drop(conn);
    let mut store = Store::open(&home).unwrap();
    assert!(!store.has_unannounced().unwrap());
    assert_eq!(
        store.take_unannounced_batch(|_| Vec::new(), 256).unwrap(),
        []
    );
    assert!(expected.runs.iter().any(|r| r.was == "pending"));
}
