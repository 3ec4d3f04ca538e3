//! What `quire-runs serve` reads: a store opened without writing it
//! (`Store::open_read_only`), runs paged by keyset (`ListFilter::before`),
//! the newest run of each branch (`Store::newest_per_ref`), repositories by
//! name only (`Store::resolve_repo_name`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use quire_store::lifecycle::NewRun;
use quire_store::query::{ListCursor, ListFilter};
use quire_store::repos::Registration;
use quire_store::{Error, Home, RunState, Store};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A store whose clock moves only when told: runs created without a tick
/// share their queue time, as runs of one push do.
fn store_with_clock(home: &Home) -> (Store, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(1_800_000_000_000));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    (Store::open_with_clock(home, clock).unwrap(), now)
}

/// `runs` runs of refs b0..b9 of two repositories, every third queued in
/// the same millisecond as the one before; their ids newest first.
fn fill(store: &mut Store, clock: &AtomicI64, runs: usize) -> Vec<String> {
    let repos = [
        store
            .register_repo(
                std::path::Path::new("/srv/git/a.git"),
                None,
                Registration::Seen,
            )
            .unwrap()
            .id,
        store
            .register_repo(
                std::path::Path::new("/srv/git/b.git"),
                None,
                Registration::Seen,
            )
            .unwrap()
            .id,
    ];
    let mut ids = Vec::new();
    for n in 0..runs {
        if n % 3 != 2 {
            clock.fetch_add(1000, Ordering::SeqCst);
        }
        let ref_name = format!("refs/heads/b{}", n % 10);
        let created = store
            .create_run(&NewRun {
                repo_id: repos[n % 2],
                ref_name: &ref_name,
                sha: SHA,
                pushed_at_ms: None,
                previous_sha: None,
                invalid: None,
                ..Default::default()
            })
            .unwrap();
        ids.push(created.run.id);
    }
    // The order list_runs promises: newest queue time first, then id.
    let mut keyed: Vec<(i64, String)> = ids
        .iter()
        .map(|id| (store.resolve_run(id).unwrap().queued_at_ms, id.clone()))
        .collect();
    keyed.sort_by(|a, b| b.cmp(a));
    keyed.into_iter().map(|(_, id)| id).collect()
}

#[test]
fn keyset_pages_list_every_run_once_in_order_ties_included() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, clock) = store_with_clock(&Home::at(dir.path()));
    let expected = fill(&mut store, &clock, 47);
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_runs(&ListFilter {
                before: before.clone(),
                limit: 10,
                ..ListFilter::default()
            })
            .unwrap();
        seen.extend(page.iter().map(|r| r.id.clone()));
        match page.last() {
            Some(last) if page.len() == 10 => before = Some(ListCursor::after(last)),
            _ => break,
        }
    }
    assert_eq!(seen, expected);
}

#[test]
fn keyset_paging_keeps_the_other_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, clock) = store_with_clock(&Home::at(dir.path()));
    fill(&mut store, &clock, 60);
    let filter = |before| ListFilter {
        ref_names: vec!["refs/heads/b3".into()],
        states: vec![RunState::Superseded],
        before,
        limit: 2,
        ..ListFilter::default()
    };
    let all = store
        .list_runs(&ListFilter {
            limit: 100,
            ..filter(None)
        })
        .unwrap();
    assert_eq!(all.len(), 5, "six runs of b3, the newest live");
    let first = store.list_runs(&filter(None)).unwrap();
    let second = store
        .list_runs(&filter(Some(ListCursor::after(&first[1]))))
        .unwrap();
    assert_eq!(
        first
            .iter()
            .chain(&second)
            .map(|r| &r.id)
            .collect::<Vec<_>>(),
        all[..4].iter().map(|r| &r.id).collect::<Vec<_>>()
    );
}

/// A page deep in the runs (the web's `?before=`, `list` paging) enters
/// `runs_newest` at the cursor: the plan of the very statement
/// `list_runs` runs.
#[test]
fn a_page_deep_in_the_runs_enters_the_index_at_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, clock) = store_with_clock(&Home::at(dir.path()));
    let ids = fill(&mut store, &clock, 5);
    let middle = store.resolve_run(&ids[2]).unwrap();
    let plan = store
        .list_plan(&ListFilter {
            before: Some(ListCursor {
                queued_at_ms: middle.queued_at_ms,
                id: middle.id,
            }),
            limit: 20,
            ..ListFilter::default()
        })
        .unwrap();
    assert!(
        plan.contains("runs_newest") && plan.contains("queued_at_ms<?"),
        "a range of runs_newest: {plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
}

/// A repository's newest runs (`list -R`, the web's trend) come from
/// one index in order, not from all its runs sorted (0023).
#[test]
fn a_repositorys_newest_runs_are_read_in_index_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, clock) = store_with_clock(&Home::at(dir.path()));
    let ids = fill(&mut store, &clock, 5);
    let repo_id = store.resolve_run(&ids[0]).unwrap().repo_id;
    let plan = store
        .list_plan(&ListFilter {
            repo_id: Some(repo_id),
            limit: 40,
            ..ListFilter::default()
        })
        .unwrap();
    assert!(plan.contains("runs_repo_newest"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
}

#[test]
fn a_read_only_store_reads_what_a_writer_wrote_and_refuses_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let (mut writer, clock) = store_with_clock(&home);
    let ids = fill(&mut writer, &clock, 3);
    let reader = Store::open_read_only(&home).unwrap();
    let listed = reader.list_runs(&ListFilter::default()).unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(reader.run_detail(&ids[0]).unwrap().run.id, ids[0]);
    // A run recorded after the reader opened is seen by its next read.
    fill(&mut writer, &clock, 1);
    assert_eq!(reader.list_runs(&ListFilter::default()).unwrap().len(), 4);
    let refused = reader
        .connection()
        .execute("DELETE FROM runs", [])
        .unwrap_err();
    assert!(
        refused.to_string().contains("readonly") || refused.to_string().contains("read-only"),
        "{refused}"
    );
    assert_eq!(writer.list_runs(&ListFilter::default()).unwrap().len(), 4);
}

#[test]
fn a_read_only_open_creates_nothing_and_upgrades_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Home::at(dir.path().join("nowhere"));
    assert!(matches!(
        Store::open_read_only(&missing),
        Err(Error::HomeMissing(_))
    ));
    assert!(!dir.path().join("nowhere").exists());
    let empty = Home::at(dir.path());
    assert!(matches!(
        Store::open_read_only(&empty),
        Err(Error::NotAHome(_))
    ));
    assert!(!empty.db_path().exists());

    // A store at an older schema is left as it is.
    let old = Home::at(dir.path().join("old"));
    old.ensure().unwrap();
    {
        let mut conn = rusqlite::Connection::open(old.db_path()).unwrap();
        quire_store::schema::migrate_to(&mut conn, 9).unwrap();
    }
    let before = std::fs::read(old.db_path()).unwrap();
    match Store::open_read_only(&old) {
        Err(Error::NotCurrent { found: 9, .. }) => {}
        other => panic!("an old store is refused: {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(old.db_path()).unwrap(), before);
}

#[test]
fn the_newest_run_of_each_branch_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, clock) = store_with_clock(&Home::at(dir.path()));
    let newest_first = fill(&mut store, &clock, 40);
    let a = store.resolve_repo_name("a").unwrap();
    let branches = store.newest_per_ref(a.id, "refs/heads/", 100).unwrap();
    // Repository a gets the even runs: refs b0, b2, b4, b6, b8.
    assert_eq!(
        branches
            .iter()
            .map(|r| r.ref_name.as_str())
            .collect::<Vec<_>>(),
        [
            "refs/heads/b0",
            "refs/heads/b2",
            "refs/heads/b4",
            "refs/heads/b6",
            "refs/heads/b8"
        ]
    );
    for run in &branches {
        let newest = newest_first
            .iter()
            .map(|id| store.resolve_run(id).unwrap())
            .find(|r| r.repo_id == a.id && r.ref_name == run.ref_name)
            .unwrap();
        assert_eq!(run.id, newest.id, "{}", run.ref_name);
    }
    assert_eq!(
        store.newest_per_ref(a.id, "refs/heads/", 2).unwrap().len(),
        2
    );
    assert!(
        store
            .newest_per_ref(a.id, "refs/tags/", 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_repository_by_name_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, clock) = store_with_clock(&Home::at(dir.path()));
    fill(&mut store, &clock, 2);
    assert_eq!(store.resolve_repo_name("a.git").unwrap().name, "a.git");
    let listed: Vec<String> = store
        .repo_list()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(listed, ["a.git", "b.git"]);
    assert_eq!(store.resolve_repo_name("b").unwrap().name, "b.git");
    // A path names it for resolve_repo, never for resolve_repo_name.
    assert!(store.resolve_repo_name("/srv/git/a.git").is_err());
}

/// A kept artifact a step swapped for a FIFO is refused at once (not a
/// regular file), never waited on: the open does not block for a writer
/// that never comes (a web request, or `download`, would hang there).
#[test]
fn an_artifact_swapped_for_a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let run = "01a25286-f4fd-74bb-a177-5f3eddb34d1d";
    let job_dir = home.run_dir(run).unwrap().join("artifacts/build");
    std::fs::create_dir_all(&job_dir).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(job_dir.join("out.bin"))
        .status()
        .unwrap();
    assert!(made.success());
    let artifact = quire_model::Artifact {
        job: "build".into(),
        path: "out.bin".into(),
        size: 3,
        sha256: "0".repeat(64),
    };
    let (told, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = told.send(home.open_artifact(run, &artifact).map(drop));
    });
    let opened = heard
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the open of a FIFO blocked");
    let err = opened.expect_err("a FIFO is no artifact");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}
