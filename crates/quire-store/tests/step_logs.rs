//! Packing an ended run's step logs into the store (`quire_store::logs`):
//! only once the run has ended, the copy committed before any file goes,
//! readers finding every byte before, during and after, a pack interrupted
//! between its commit and its deletes finished by the next, large logs
//! left as files, and the copies pruned with their run.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quire_store::lifecycle::{NewRun, Outcome, Worker};
use quire_store::logs::PACK_MAX_BYTES;
use quire_store::repos::Registration;
use quire_store::schema;
use quire_store::{Home, Store};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Home::at(dir.path().join("home"))).unwrap();
        Fixture { dir, store }
    }

    /// A run of `ref_name` claimed by a worker of `pid`.
    fn claimed(&mut self, ref_name: &str, pid: u32) -> String {
        let repo = self
            .store
            .register_repo(Path::new("/srv/git/app.git"), None, Registration::Seen)
            .unwrap();
        let run = self
            .store
            .create_run(&NewRun {
                repo_id: repo.id,
                ref_name,
                sha: SHA,
                pushed_at_ms: None,
                previous_sha: None,
                invalid: None,
                ..Default::default()
            })
            .unwrap()
            .run;
        let worker = Worker {
            id: format!("w{pid}"),
            pid,
            lease: Duration::from_secs(600),
        };
        self.store.claim(&run.id, &worker).unwrap();
        run.id
    }

    /// Write `runs/<run>/logs/<job>/<seq>.log` and return its path.
    fn log(&self, run: &str, job: &str, seq: i64, bytes: &[u8]) -> PathBuf {
        let path = self.store.home().step_log_path(run, job, seq).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn events(&self, run: &str) -> PathBuf {
        let path = self.store.home().run_dir(run).unwrap().join("events.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            "{\"type\":\"run_started\",\"at_ms\":1,\"jobs\":[]}\n",
        )
        .unwrap();
        path
    }

    fn read(&self, run: &str, job: &str, seq: i64) -> Option<Vec<u8>> {
        let mut log = self.store.step_log(run, job, seq).unwrap()?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes).unwrap();
        Some(bytes)
    }

    fn rows(&self) -> i64 {
        self.store
            .connection()
            .query_row("SELECT count(*) FROM step_logs", [], |r| r.get(0))
            .unwrap()
    }
}

fn cri(lines: usize) -> Vec<u8> {
    (1..=lines)
        .map(|n| format!("2026-11-29T12:00:00.000000000Z stdout F line {n}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn an_ended_runs_small_logs_move_into_the_store_and_its_directory_goes() {
    let mut f = Fixture::new();
    let run = f.claimed("refs/heads/main", std::process::id());
    let one = cri(1);
    let many = cri(1000);
    assert!(many.len() as u64 <= PACK_MAX_BYTES);
    let partial = b"2026-11-29T12:00:00Z stdout P no newline at the end".to_vec();
    f.log(&run, "build", 1, &one);
    f.log(&run, "build", 2, &many);
    f.log(&run, "test", 1, &partial);
    f.log(&run, "test", 2, b"");
    f.events(&run);

    // Not while the run is active: its files are still written.
    assert_eq!(f.store.pack_logs(&run).unwrap(), None);
    assert_eq!(f.rows(), 0);
    assert!(
        f.store
            .home()
            .run_dir(&run)
            .unwrap()
            .join("events.jsonl")
            .is_file()
    );

    f.store.finish(&run, &Outcome::Complete).unwrap();
    let packed = f.store.pack_logs(&run).unwrap().unwrap();
    assert_eq!(
        (packed.logs, packed.left_as_files, packed.dir_removed),
        (4, 0, true)
    );
    assert_eq!(
        packed.bytes,
        (one.len() + many.len() + partial.len()) as u64
    );
    assert!(!f.store.home().run_dir(&run).unwrap().exists());
    assert!(
        !f.store
            .home()
            .dir()
            .join("runs")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
    assert_eq!(f.read(&run, "build", 1).unwrap(), one);
    assert_eq!(f.read(&run, "build", 2).unwrap(), many);
    assert_eq!(f.read(&run, "test", 1).unwrap(), partial);
    assert_eq!(f.read(&run, "test", 2).unwrap(), b"");
    assert_eq!(f.read(&run, "test", 3), None);
    assert_eq!(
        f.store.packed_logs(&run).unwrap(),
        [
            ("build".to_string(), 1),
            ("build".to_string(), 2),
            ("test".to_string(), 1),
            ("test".to_string(), 2)
        ]
    );
    // Packing again finds nothing left and changes nothing.
    let again = f.store.pack_logs(&run).unwrap().unwrap();
    assert_eq!((again.logs, again.dir_removed), (0, true));
    assert_eq!(f.read(&run, "build", 2).unwrap(), many);
}

#[test]
fn large_logs_and_artifacts_stay_files_and_symbolic_links_are_not_followed() {
    let mut f = Fixture::new();
    let run = f.claimed("refs/heads/main", std::process::id());
    let small = cri(3);
    let big = cri(2000);
    assert!(big.len() as u64 > PACK_MAX_BYTES);
    f.log(&run, "build", 1, &small);
    let big_path = f.log(&run, "build", 2, &big);
    let secret = f.dir.path().join("secret");
    std::fs::write(&secret, "not a log").unwrap();
    let link = f.store.home().step_log_path(&run, "build", 3).unwrap();
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let kept = f
        .store
        .home()
        .run_dir(&run)
        .unwrap()
        .join("artifacts/build/app.tar.gz");
    std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
    std::fs::write(&kept, "tarball").unwrap();
    f.events(&run);
    f.store.finish(&run, &Outcome::Complete).unwrap();

    let packed = f.store.pack_logs(&run).unwrap().unwrap();
    assert_eq!(
        (packed.logs, packed.left_as_files, packed.dir_removed),
        (1, 2, false)
    );
    assert_eq!(std::fs::read(&big_path).unwrap(), big);
    assert_eq!(std::fs::read(&kept).unwrap(), b"tarball");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert!(
        !f.store
            .home()
            .run_dir(&run)
            .unwrap()
            .join("events.jsonl")
            .exists()
    );
    assert!(
        !f.store
            .home()
            .step_log_path(&run, "build", 1)
            .unwrap()
            .exists()
    );
    assert_eq!(f.read(&run, "build", 1).unwrap(), small);
    assert_eq!(f.read(&run, "build", 2).unwrap(), big);
    assert_eq!(f.store.packed_logs(&run).unwrap().len(), 1);
}

#[test]
fn a_reader_part_way_through_a_file_goes_on_from_the_packed_copy() {
    let mut f = Fixture::new();
    let run = f.claimed("refs/heads/main", std::process::id());
    let bytes = cri(500);
    f.log(&run, "build", 1, &bytes);
    f.store.finish(&run, &Outcome::Complete).unwrap();

    // `logs --follow` reopens the log on each read, from its offset.
    let mut log = f.store.step_log(&run, "build", 1).unwrap().unwrap();
    let mut head = vec![0; 1000];
    log.read_exact(&mut head).unwrap();
    drop(log);
    f.store.pack_logs(&run).unwrap().unwrap();
    assert!(
        !f.store
            .home()
            .step_log_path(&run, "build", 1)
            .unwrap()
            .exists()
    );
    let mut log = f.store.step_log(&run, "build", 1).unwrap().unwrap();
    log.seek(SeekFrom::Start(1000)).unwrap();
    let mut rest = Vec::new();
    log.read_to_end(&mut rest).unwrap();
    head.extend(rest);
    assert_eq!(head, bytes);
}

#[test]
fn a_pack_interrupted_after_its_commit_is_finished_by_the_next() {
    let mut f = Fixture::new();
    // The worker that held the run is gone.
    let run = f.claimed("refs/heads/main", 1_000_000);
    let bytes = cri(10);
    f.log(&run, "build", 1, &bytes);
    f.events(&run);
    f.store.finish(&run, &Outcome::Complete).unwrap();
    f.store.pack_logs(&run).unwrap().unwrap();
    // As if the worker died after the commit, before the deletes: the files
    // are back, the copies are in the store.
    f.log(&run, "build", 1, &bytes);
    f.events(&run);
    assert_eq!(f.read(&run, "build", 1).unwrap(), bytes);

    // Reconcile finds it: ended, events.jsonl there, its worker gone. A run
    // whose worker lives (it packs its own) and an active run are not.
    let live = f.claimed("refs/heads/live", std::process::id());
    f.events(&live);
    f.store.finish(&live, &Outcome::Complete).unwrap();
    let active = f.claimed("refs/heads/active", 1_000_000);
    f.events(&active);
    let alive = |pid: u32| pid == std::process::id();
    assert_eq!(
        f.store.unpacked_runs(&alive).unwrap(),
        std::slice::from_ref(&run)
    );

    let packed = f.store.pack_logs(&run).unwrap().unwrap();
    assert_eq!((packed.logs, packed.dir_removed), (1, true));
    assert_eq!(f.rows(), 1);
    assert_eq!(f.read(&run, "build", 1).unwrap(), bytes);
    assert!(f.store.unpacked_runs(&alive).unwrap().is_empty());
}

#[test]
fn prune_deletes_the_packed_logs_with_their_run() {
    let mut f = Fixture::new();
    let many = cri(100);
    let mut runs = Vec::new();
    // Two runs of one ref, one after the other.
    for _ in 0..2 {
        let run = f.claimed("refs/heads/main", std::process::id());
        f.log(&run, "build", 1, &many);
        f.log(&run, "build", 2, b"x\n");
        f.store.finish(&run, &Outcome::Complete).unwrap();
        f.store.pack_logs(&run).unwrap().unwrap();
        runs.push(run);
    }
    let [old, newest] = [&runs[0], &runs[1]];
    assert_eq!(f.rows(), 4);

    let dry = f.store.prune(i64::MAX, 1, true).unwrap();
    assert_eq!(dry.len(), 1);
    assert_eq!(dry[0].run.id, *old);
    assert_eq!(dry[0].packed_log_bytes, (many.len() + 2) as u64);
    assert_eq!(f.rows(), 4, "a dry run deletes nothing");

    let pruned = f.store.prune(i64::MAX, 1, false).unwrap();
    assert_eq!(
        pruned.iter().map(|p| p.run.id.as_str()).collect::<Vec<_>>(),
        [old.as_str()]
    );
    assert!(f.store.packed_logs(old).unwrap().is_empty());
    assert_eq!(f.read(old, "build", 1), None);
    assert_eq!(f.store.packed_logs(newest).unwrap().len(), 2);
    assert_eq!(f.rows(), 2);
}

#[test]
fn a_store_of_schema_11_upgrades_with_an_empty_step_logs_table() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    home.ensure().unwrap();
    {
        let mut conn = rusqlite::Connection::open(home.db_path()).unwrap();
        schema::migrate_to(&mut conn, 11).unwrap();
        assert_eq!(schema::version(&conn).unwrap(), 11);
    }
    let store = Store::open(&home).unwrap();
    assert_eq!(schema::version(store.connection()).unwrap(), schema::LATEST);
    let rows: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM step_logs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}
