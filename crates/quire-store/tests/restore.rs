//! The store's files between processes: once the last connection closes,
//! `quire.db` alone holds the whole store, and the WAL and `-shm` files
//! it keeps beside it are empty and stale, so a backup copied over
//! `quire.db` (docs/OPERATIONS.md, "Restoring") is what the next open
//! reads, not the newer writes a WAL could still hold.

use std::path::Path;

use quire_store::lifecycle::NewRun;
use quire_store::repos::Registration;
use quire_store::{Home, Store};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn record_run(store: &mut Store, ref_name: &str) -> String {
    let repo = store
        .register_repo(Path::new("/srv/git/app.git"), None, Registration::Seen)
        .unwrap();
    store
        .create_run(&NewRun {
            repo_id: repo.id,
            ref_name,
            sha: SHA,
            ..Default::default()
        })
        .unwrap()
        .run
        .id
}

fn len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

#[test]
fn the_last_close_leaves_an_empty_wal_beside_the_whole_store() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let db = home.db_path();
    let wal = db.with_extension("db-wal");
    let shm = db.with_extension("db-shm");

    let mut first = Store::open(&home).unwrap();
    let kept = record_run(&mut first, "refs/heads/main");
    let mut second = Store::open(&home).unwrap();
    record_run(&mut second, "refs/heads/other");
    // Not the last: its close leaves the WAL to the other connection.
    drop(first);
    assert!(
        len(&wal).unwrap() > 0,
        "the WAL was emptied under an open store"
    );
    drop(second);
    // The last: the WAL is in quire.db, and both files are kept, empty
    // (the -shm is rebuilt by the next open), not made anew by each process.
    assert_eq!(len(&wal), Some(0), "the WAL is kept, empty");
    assert!(shm.exists(), "the -shm file is kept");

    // A backup taken now, by copying quire.db alone, is the whole store.
    let backup = dir.path().join("backup.db");
    std::fs::copy(&db, &backup).unwrap();

    // Newer writes, closed cleanly: then the backup is restored over them.
    let mut later = Store::open(&home).unwrap();
    let newer = record_run(&mut later, "refs/heads/newer");
    drop(later);
    assert_eq!(len(&wal), Some(0));
    std::fs::copy(&backup, &db).unwrap();

    let restored = Store::open_existing(&home).unwrap();
    let ids = restored.run_ids().unwrap();
    assert!(ids.contains(&kept), "{ids:?}");
    assert!(!ids.contains(&newer), "the restore was overlaid: {ids:?}");
    assert_eq!(ids.len(), 2, "{ids:?}");
    let check: String = restored
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_close_that_leaves_the_wal_loses_nothing_and_the_next_last_close_folds_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let db = home.db_path();
    let wal = db.with_extension("db-wal");
    Store::open(&home).unwrap();
    assert_eq!(len(&wal), Some(0));

    // As the hook closes the store: its writes stay in the WAL, even
    // though it is the last connection.
    let mut hook = Store::open_existing(&home).unwrap();
    hook.leave_wal_on_close().unwrap();
    // Each of its commits syncs the WAL instead (FULL), so what it
    // recorded outlives a power cut.
    let synchronous: i64 = hook
        .connection()
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(synchronous, 2);
    let recorded = record_run(&mut hook, "refs/heads/main");
    drop(hook);
    assert!(len(&wal).unwrap() > 0, "the hook's close folded the WAL");

    // The next process reads them, and its last close folds them.
    let next = Store::open_existing(&home).unwrap();
    assert_eq!(next.run_ids().unwrap(), std::slice::from_ref(&recorded));
    drop(next);
    assert_eq!(len(&wal), Some(0), "the next last close folds the WAL");
    let alone = Store::open_existing(&home).unwrap();
    assert_eq!(alone.run_ids().unwrap(), [recorded]);
}

#[test]
fn a_store_that_folds_nothing_on_close_keeps_its_synced_commits_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let wal = home.db_path().with_extension("db-wal");
    Store::open(&home).unwrap();

    // As `trigger --wait` closes its connections: nothing folded, the
    // log synced once after the run's last commit.
    let mut waiting = Store::open_existing(&home).unwrap();
    let reader = Store::open_existing(&home).unwrap();
    waiting.fold_nothing_on_close().unwrap();
    reader.fold_nothing_on_close().unwrap();
    let recorded = record_run(&mut waiting, "refs/heads/main");
    waiting.sync_wal().unwrap();
    drop(waiting);
    drop(reader);
    assert!(len(&wal).unwrap() > 0, "the last close folded the WAL");

    let next = Store::open_existing(&home).unwrap();
    assert_eq!(next.run_ids().unwrap(), std::slice::from_ref(&recorded));
    drop(next);
    assert_eq!(len(&wal), Some(0), "the next last close folds the WAL");
}
