//! Opening `quire.db`: pragmas, file mode, refusal of newer schemas, upgrade.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::schema::{self, LATEST};
use crate::upstream::{self, Lineage};
use crate::{Error, Home, Result};
use quire_model::clock::{self, Clock};

/// Prepared statements a connection keeps.
const STATEMENT_CACHE: usize = 64;

/// What every connection to `quire.db` gets before its first statement.
fn set_up(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout())?;
    // Room for every statement a worker runs per run, so none is
    // parsed again for the next (rusqlite keeps 16 by default).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans that do not depend on the values bound: in a store someone
    // ran ANALYZE on, SQLite would otherwise prepare a statement whose
    // plan could depend on them again each time it is bound, undoing
    // the cache above (quire's queries are planned without statistics).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    crate::query::register_functions(conn)
}

/// How long a statement waits for another process's lock before giving up:
/// 10 s, or `QUIRE_BUSY_TIMEOUT_MS` (for operators who prefer to fail fast,
/// and for tests of a store held locked).
fn busy_timeout() -> Duration {
    std::env::var("QUIRE_BUSY_TIMEOUT_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// An open store: one SQLite connection to `quire.db` in a home.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) clock: Clock,
    home: Home,
    /// Run ids an upstream store held that were not of quire's shape, and
    /// the ids this open gave those rows (`(old, new)`, the old one as text).
    rewritten_run_ids: Vec<(String, String)>,
    /// What this open converted from an upstream store, if it finished
    /// converting one (said once: a later open finds nothing to convert).
    converted: Option<upstream::Converted>,
}

impl Store {
    /// Open (creating if need be) the store in `home` and bring its schema up
    /// to date. A store newer than this build is refused, untouched.
    pub fn open(home: &Home) -> Result<Store> {
        Store::open_with_clock(home, clock::system())
    }

    /// Open the store of a home that exists already (made by `install`,
    /// `migrate-from` or `demo`), never creating one: the hook, the worker,
    /// `trigger` and `quire-runs` must not adopt a wrong `--home`, nor
    /// start an empty history in place of a deleted one.
    pub fn open_existing(home: &Home) -> Result<Store> {
        if !home.dir().is_dir() {
            return Err(Error::HomeMissing(home.dir().to_path_buf()));
        }
        if !home.db_path().exists() {
            return Err(Error::NotAHome(home.dir().to_path_buf()));
        }
        Store::open(home)
    }

    /// Open the store of an existing home for reading only, as
    /// `quire-runs serve` does: a read-only SQLite connection that also
    /// refuses writes itself (`query_only`), which never creates, upgrades
    /// or writes the store (SQLite may create the `-wal` and `-shm` files
    /// beside it, which every open of a WAL store shares). A store at
    /// another schema version than this quire's is refused: an older one is
    /// brought up to date by any other quire command, a newer one needs a
    /// newer quire.
    pub fn open_read_only(home: &Home) -> Result<Store> {
        if !home.dir().is_dir() {
            return Err(Error::HomeMissing(home.dir().to_path_buf()));
        }
        let path = home.db_path();
        if !path.is_file() {
            return Err(Error::NotAHome(home.dir().to_path_buf()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| open_error(&path, e))?;
        set_up(&conn).map_err(|e| open_error(&path, e))?;
        conn.pragma_update(None, "query_only", true)
            .map_err(|e| open_error(&path, e))?;
        let identified = conn.unchecked_transaction().and_then(|tx| {
            let found = upstream::identify(&tx)?;
            tx.commit()?;
            Ok(found)
        });
        match identified.map_err(|e| open_error(&path, e))? {
            Ok(Lineage::Quire(found)) if found == LATEST => {}
            Ok(Lineage::Quire(found)) if found > LATEST => {
                return Err(Error::TooNew {
                    path,
                    found,
                    known: LATEST,
                });
            }
            Ok(Lineage::Quire(found) | Lineage::Upstream(found)) => {
                return Err(Error::NotCurrent {
                    path,
                    found,
                    latest: LATEST,
                });
            }
            Ok(Lineage::Empty) => {
                return Err(Error::NotCurrent {
                    path,
                    found: 0,
                    latest: LATEST,
                });
            }
            Err(what) => return Err(Error::NotQuire { path, what }),
        }
        Ok(Store {
            conn,
            clock: clock::system(),
            home: home.clone(),
            rewritten_run_ids: Vec::new(),
            converted: None,
        })
    }

    /// Run a write; if it fails for want of disk space, give the home's
    /// reserve back to the disk and try once more. For what must get
    /// through on a full disk: ending a run, reconcile, prune.
    pub fn on_full_disk_use_reserve<T>(
        &mut self,
        mut write: impl FnMut(&mut Store) -> Result<T>,
    ) -> Result<T> {
        match write(self) {
            Err(e) if e.is_disk_full() && self.home.release_reserve() => write(self),
            done => done,
        }
    }

    /// [`Store::open`] with the given clock.
    pub fn open_with_clock(home: &Home, clock: Clock) -> Result<Store> {
        home.ensure()?;
        let path = home.db_path();
        create_private(&path).map_err(|source| Error::Home {
            path: path.clone(),
            source,
        })?;
        // Processes opening a brand-new store at once race to switch it to
        // WAL and to create the schema; SQLite answers the loser "busy" at
        // once rather than waiting, to avoid a deadlock. No attempt writes
        // anything half-way, so the loser simply opens again.
        let deadline = std::time::Instant::now() + busy_timeout();
        loop {
            match Store::open_once(home, &path, clock.clone()) {
                Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                result => return result,
            }
        }
    }

    fn open_once(home: &Home, path: &Path, clock: Clock) -> Result<Store> {
        let path = path.to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| open_error(&path, e))?;
        set_up(&conn).map_err(|e| open_error(&path, e))?;

        // Nothing may be written before the store is identified: a store
        // from a newer quire, or a file that is not quire's, must stay
        // byte-for-byte as it was.
        // One read transaction, so the header and the tables are read from
        // one snapshot (another process may be creating the store).
        let identified = conn.unchecked_transaction().and_then(|tx| {
            let found = upstream::identify(&tx)?;
            tx.commit()?;
            Ok(found)
        });
        let found = match identified.map_err(|e| open_error(&path, e))? {
            Ok(lineage) => lineage,
            Err(what) => return Err(Error::NotQuire { path, what }),
        };
        if let Lineage::Quire(found) = found
            && found > LATEST
        {
            return Err(Error::TooNew {
                path,
                found,
                known: LATEST,
            });
        }

        let mut store = Store {
            conn,
            clock,
            home: home.clone(),
            rewritten_run_ids: Vec::new(),
            converted: None,
        };
        store.configure()?;
        if let Lineage::Upstream(_) = found {
            store.convert_upstream()?;
        }
        if schema::version(&store.conn).map_err(|e| open_error(&path, e))? < LATEST {
            store.upgrade()?;
        }
        store.finish_import()?;
        Ok(store)
    }

    /// Bring an upstream store of a version after 7 back to version 7's
    /// shape, give every run whose id is not of quire's shape a new id
    /// (every row kept), remember what it held (`upstream::record_import`)
    /// and end the runs upstream left pending or active
    /// (`upstream::fail_unfinished`: history never runs here), in one
    /// transaction that first identifies it again (another process may have
    /// converted it meanwhile).
    fn convert_upstream(&mut self) -> Result<()> {
        let path = self.home.db_path();
        self.conn
            .pragma_update(None, "foreign_keys", false)
            .map_err(|e| open_error(&path, e))?;
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut rewritten = Vec::new();
            if let Ok(Lineage::Upstream(version)) = upstream::identify(&tx)? {
                let seven = if version > 7 {
                    upstream::convert_to_seven(&tx, version)
                } else {
                    Ok(())
                };
                seven
                    .and_then(|()| upstream::rewrite_run_ids(&tx))
                    .and_then(|ids| upstream::record_import(&tx, version).map(|()| ids))
                    .and_then(|ids| upstream::fail_unfinished(&tx).map(|()| ids))
                    .and_then(|ids| foreign_key_check(&tx).map(|()| ids))
                    .map(|ids| rewritten = ids)
                    .map_err(|source| Error::Conversion {
                        path: path.clone(),
                        version,
                        source,
                    })?;
            }
            tx.commit()?;
            Ok(rewritten)
        })();
        self.conn
            .pragma_update(None, "foreign_keys", true)
            .map_err(|e| open_error(&path, e))?;
        self.rewritten_run_ids = result.map_err(|e| match e {
            Error::Sqlite(e) => lock_error(&path, e),
            other => other,
        })?;
        Ok(())
    }

    /// Once quire's migrations have run: mark the runs an upstream store
    /// left unfinished and say what was converted (`upstream::finish_import`),
    /// in one transaction; a store with nothing to finish costs one read.
    fn finish_import(&mut self) -> Result<()> {
        let path = self.home.db_path();
        let pending = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master
                                WHERE type = 'table' AND name = 'upstream_import')",
                [],
                |r| r.get::<_, bool>(0),
            )
            .map_err(|e| open_error(&path, e))?;
        if !pending {
            return Ok(());
        }
        self.converted = self.write(|tx, _| Ok(upstream::finish_import(tx)?))?;
        Ok(())
    }

    /// What this open converted from an upstream store in place (or, for
    /// `migrate-from`, in its copy): `Some` on the one open that finished
    /// converting it, for the caller to say once.
    pub fn converted(&self) -> Option<&upstream::Converted> {
        self.converted.as_ref()
    }

    /// The run ids this open rewrote converting an upstream store: `(old,
    /// new)` for each row whose id was not of quire's shape (a `/`, `..`, a
    /// control character: an id that would name a path outside `runs/`).
    /// The old id is what the row held, as text; print it escaped.
    pub fn rewritten_run_ids(&self) -> &[(String, String)] {
        &self.rewritten_run_ids
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Leave this connection's writes in the write-ahead log when it
    /// closes, even as the last connection to the store: no checkpoint, so
    /// closing costs no fold (two fsyncs and the pages copied). For the
    /// hook, whose every millisecond a push waits for: the worker it
    /// starts, or the next quire process to close the store last
    /// (reconcile, from cron, within a minute), folds the log into
    /// quire.db. Each of its commits syncs the log instead (`synchronous =
    /// FULL`, one fdatasync), so that what the hook told the pusher it
    /// recorded outlives a power cut, which the fold used to ensure.
    pub fn leave_wal_on_close(&self) -> Result<()> {
        let fail = |e| open_error(&self.home.db_path(), e);
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        self.conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .map(|_| ())
            .map_err(fail)
    }

    /// Fold nothing when this connection closes, even as the last one to
    /// the store, and leave its commits unsynced until [`Store::sync_wal`]:
    /// for `trigger --wait`, which syncs the log once after the run's end
    /// is recorded rather than folding it on its way out (the announcer it
    /// starts, or the next process to close the store last, folds it).
    pub fn fold_nothing_on_close(&self) -> Result<()> {
        self.conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .map(|_| ())
            .map_err(|e| open_error(&self.home.db_path(), e))
    }

    /// Sync the write-ahead log to the disk: every commit in it, of any
    /// connection, outlives a power cut from now on (what the fold on
    /// close ensures otherwise), and so does the log's name in the home
    /// (made anew after a restore, SQLite syncs no directory for it). No
    /// log, nothing to sync.
    pub fn sync_wal(&self) -> std::io::Result<()> {
        let mut wal = self.home.db_path().into_os_string();
        wal.push("-wal");
        // As SQLite opens it: never through a link.
        let opened = std::os::unix::fs::OpenOptionsExt::custom_flags(
            std::fs::OpenOptions::new().read(true),
            rustix::fs::OFlags::NOFOLLOW.bits() as i32,
        )
        .open(&wal);
        match opened {
            Ok(file) => file.sync_data()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        std::fs::File::open(self.home.dir())?.sync_all()
    }

    /// The raw connection, for tests and benchmarks that inspect the schema.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    fn configure(&self) -> Result<()> {
        let path = self.home.db_path();
        let fail = |e| open_error(&path, e);
        // Switching to WAL takes a lock; a store that is already in WAL
        // mode (every store after its first open) needs no switch, so a
        // writer holding the store does not block readers at open.
        let current: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .map_err(fail)?;
        let mode: String = if current.eq_ignore_ascii_case("wal") {
            current
        } else {
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(fail)?
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::BadValue(format!(
                "{} refused WAL mode (it stays in {mode} mode)",
                path.display()
            )));
        }
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail)?;
        // The last connection to close still folds the WAL into quire.db
        // (so that quire.db alone is the whole store once no quire process
        // has it open: a backup copied over it is not overlaid by a stale
        // WAL), but then empties the WAL and keeps it, and the -shm file,
        // rather than deleting both: the next process would make them
        // anew, and two new files (and the fsync of the folder a new file
        // costs) were most of the time every hook spent writing its run.
        // An empty WAL needs the limit: without one, SQLite keeps the
        // checkpointed frames, which a later open would replay.
        persist_wal(&self.conn).map_err(fail)?;
        self.conn
            .pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(fail)?;
        self.conn
            .pragma_update(None, "foreign_keys", true)
            .map_err(fail)
    }

    /// Apply pending migrations. Another process may be upgrading the same
    /// store at the same moment: whoever loses the race finds the schema
    /// already current once its own (rolled back) attempt fails.
    fn upgrade(&mut self) -> Result<()> {
        let path = self.home.db_path();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = schema::migrate_to(&mut self.conn, LATEST);
            let now = schema::version(&self.conn).map_err(|e| open_error(&path, e))?;
            match result {
                _ if now == LATEST => return Ok(()),
                Err(source) if attempts >= 5 => return Err(Error::Migration { path, source }),
                Err(_) => continue,
                Ok(()) => {
                    return Err(Error::BadValue(format!(
                        "schema version is {now} after upgrading to {LATEST}"
                    )));
                }
            }
        }
    }

    /// Run `f` in a `BEGIN IMMEDIATE` transaction: the write lock is taken up
    /// front, so concurrent writers wait (up to the busy timeout) instead of
    /// failing mid-way. Commits iff `f` returns `Ok`.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>, i64) -> Result<T>,
    ) -> Result<T> {
        let path = self.home.db_path();
        let now = self.now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| lock_error(&path, e))?;
        let value = f(&tx, now)?;
        tx.commit().map_err(|e| lock_error(&path, e))?;
        Ok(value)
    }
}

/// How large the WAL may stay once SQLite starts it over after a
/// checkpoint (it is emptied when the last connection closes, whatever
/// this is): above what a busy home's WAL grows to between checkpoints
/// (about 4 MiB, SQLite's 1,000 pages), so that only a WAL a large
/// transaction grew is cut back.
const WAL_SIZE_LIMIT: i64 = 16 << 20;

/// Keep `quire.db-wal` and `-shm` when the connection closes
/// (`SQLITE_FCNTL_PERSIST_WAL`), which rusqlite has no safe call for.
#[allow(unsafe_code)]
fn persist_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mut on: std::ffi::c_int = 1;
    // SAFETY: `handle` is this open connection's own pointer, used only
    // for this call, while `conn` is borrowed (nothing closes it
    // meanwhile); "main" is a NUL-terminated string naming its database,
    // whose file an open connection has open; SQLITE_FCNTL_PERSIST_WAL
    // reads and writes the one `int` its argument points at, which `on`
    // is, alive until the call returns.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut on).cast(),
        )
    };
    if rc == rusqlite::ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rc),
            Some("cannot keep the WAL file between connections".into()),
        ))
    }
}

/// Fail when a row points at a row that does not exist.
fn foreign_key_check(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let broken: Option<String> = tx
        .query_row(
            "SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match broken {
        None => Ok(()),
        Some(table) => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            Some(format!(
                "a row of {table} points at a row that does not exist"
            )),
        )),
    }
}

/// Create the database file with mode 0600 if it does not exist (SQLite
/// gives its -wal and -shm files the same mode).
fn create_private(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn lock_error(path: &Path, e: rusqlite::Error) -> Error {
    if crate::error::is_busy(&e) {
        Error::Locked {
            path: path.to_path_buf(),
        }
    } else {
        Error::Sqlite(e)
    }
}

fn open_error(path: &Path, e: rusqlite::Error) -> Error {
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            Error::NotADatabase { path, source: e }
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Locked { path },
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            Error::Home {
                path,
                source: std::io::Error::new(ErrorKind::PermissionDenied, e.to_string()),
            }
        }
        _ => Error::Sqlite(e),
    }
}
