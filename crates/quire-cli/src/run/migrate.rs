//! `quire-run migrate-from DIR [--install-hooks] [--force]`: take an upstream
//! quire home (its `quire.db` at any version, its `runs/<repo>/<id>/` files,
//! its `repos/`) into a new quire home. The source is only read: the store is
//! snapshotted, logs are copied; with `--install-hooks`, quire's hook goes
//! into each repository and upstream's hook is kept beside it.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use quire_store::repos::Registration;
use quire_store::{Home, Store, snapshot};
use quire_worker::config::Config;

use crate::error::CommandError;
use crate::run::MigrateArgs;
use crate::run::install::{self, Existing};
use quire_view::text::printable;

/// How deep under `repos/` and `runs/` repositories and run folders are
/// looked for (`runs/<repo>/<id>`, where a repo name may hold a few `/`).
const MAX_DEPTH: usize = 6;

pub(crate) fn run(home: &Home, args: &MigrateArgs) -> Result<(), CommandError> {
    let source = fs::canonicalize(&args.dir)
        .map_err(|e| CommandError::input(format!("cannot open {}: {e}", args.dir.display())))?;
    let source_db = source.join("quire.db");
    if !source_db.is_file() {
        return Err(CommandError::input(format!(
            "{} is not an upstream quire home: it has no quire.db",
            source.display()
        )));
    }
    let holders = holders_of(&source_db);
    if !holders.is_empty() && !args.force {
        return Err(CommandError::input(format!(
            "upstream quire is running: {} {} {} open; stop it first, or pass --force to \
             take a snapshot while it runs",
            holders.join(", "),
            if holders.len() == 1 { "has" } else { "have" },
            source_db.display()
        )));
    }
    home.ensure()?;
    let db = home.db_path();
    if db.exists() {
        return Err(CommandError::input(format!(
            "{} already has a store; migrate-from fills a new home (pass another --home)",
            home.dir().display()
        )));
    }

    let counted = snapshot::copy(&source_db, &db, !holders.is_empty())
        .and_then(|()| {
            snapshot::row_counts(&db).map_err(|e| format!("cannot read the snapshot: {e}"))
        })
        .map_err(|why| {
            remove_store(&db);
            CommandError::input(format!("cannot copy {}: {why}", source_db.display()))
        })?;
    let mut store = match Store::open(home) {
        Ok(store) => store,
        Err(e) => {
            remove_store(&db);
            return Err(e.into());
        }
    };
    let kept = store.row_counts()?;
    if kept != counted {
        return Err(CommandError::input(format!(
            "rows were lost converting {} (runs, jobs, steps before {counted:?}, after {kept:?}); \
             the new store is kept for inspection at {}",
            source_db.display(),
            db.display()
        )));
    }

    let repos_dir = source.join("repos");
    let root = fs::canonicalize(&repos_dir).ok();
    if let Some(root) = &root {
        set_repos_root(home, root)?;
    }
    let found = root.as_deref().map(bare_repos_under).unwrap_or_default();
    let how = if args.install_hooks {
        Registration::Installed
    } else {
        Registration::Seen
    };
    place_repositories(&mut store, root.as_deref(), &found, how)?;

    // A run folder is found by the id upstream gave it: a rewritten id's
    // folder is copied under its new id.
    let mut ids: HashMap<String, String> = store
        .run_ids()?
        .into_iter()
        .map(|id| (id.clone(), id))
        .collect();
    ids.extend(store.rewritten_run_ids().iter().cloned());
    let rewritten = store.rewritten_run_ids().to_vec();
    let converted = store.converted().cloned();
    let mut copied = Copied::default();
    copy_runs(&source.join("runs"), home, &ids, 0, &mut copied);
    drop(store);

    if args.install_hooks {
        for repo in &found {
            install::run(home, repo, Existing::KeepBeside)?;
        }
    }
    println!(
        "quire: migrated {} runs, {} jobs and {} steps from {} into {}",
        kept.0,
        kept.1,
        kept.2,
        source.display(),
        home.dir().display()
    );
    println!(
        "quire: copied {} step logs of {} runs; {} repositories under {}",
        copied.logs,
        copied.runs,
        found.len(),
        root.as_deref().unwrap_or(&repos_dir).display()
    );
    if let Some(converted) = &converted {
        println!("quire: {converted}");
    }
    for skipped in &copied.skipped {
        eprintln!("quire: warning: skipped {}", printable(skipped));
    }
    for (old, new) in &rewritten {
        println!(
            "quire: run id {} is not of quire's shape; the run is now {new}",
            printable(old)
        );
    }
    if !args.install_hooks && !found.is_empty() {
        println!(
            "quire: pushes still go to upstream's hooks; `quire-run migrate-from --install-hooks` \
             or `quire-run install REPO.git` hands them to quire"
        );
    }
    Ok(())
}

/// The processes that have `db` (or its WAL) open, as `pid N (name)`.
fn holders_of(db: &Path) -> Vec<String> {
    let wal = db.with_extension("db-wal");
    let me = std::process::id().to_string();
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in procs.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .any(|target| target == db || target == wal);
        if holds {
            let name = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            found.push(format!("pid {pid} ({})", name.trim()));
        }
    }
    found
}

fn remove_store(db: &Path) {
    for file in [
        db.to_path_buf(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
    ] {
        let _ = fs::remove_file(file);
    }
}

/// Point the home's `repos_root` at upstream's `repos/` unless config.toml
/// already names one.
fn set_repos_root(home: &Home, root: &Path) -> Result<(), CommandError> {
    let path = home.dir().join("config.toml");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(CommandError::input(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    if Config::load(home)?.repos_root.is_some() {
        println!(
            "quire: {} already sets repos_root; left as it is",
            path.display()
        );
        return Ok(());
    }
    let value = toml::Value::String(root.to_string_lossy().into_owned());
    let updated = format!("repos_root = {value}\n{text}");
    fs::write(&path, updated)
        .map_err(|e| CommandError::input(format!("cannot write {}: {e}", path.display())))?;
    Config::load(home)?;
    Ok(())
}

/// Bare repositories under `root`, not descending into them or through
/// symbolic links.
fn bare_repos_under(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if dir.join("HEAD").is_file() && dir.join("objects").is_dir() {
            if let Ok(path) = fs::canonicalize(dir) {
                out.push(path);
            }
            return;
        }
        if depth >= MAX_DEPTH {
            return;
        }
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&entry.path(), depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, 0, &mut out);
    out.sort();
    out
}

/// Give every repository its path under `root`: the store's repositories
/// known by name only, or by a path that no longer exists, are matched by
/// name; the rest of what lies under `root` is registered.
fn place_repositories(
    store: &mut Store,
    root: Option<&Path>,
    found: &[PathBuf],
    how: Registration,
) -> Result<(), CommandError> {
    if let Some(root) = root {
        for summary in store.repos()? {
            let repo = summary.repo;
            if repo
                .git_dir
                .as_deref()
                .is_some_and(|p| Path::new(p).exists())
            {
                continue;
            }
            // The name upstream recorded is the path under its repos/.
            let candidate = std::iter::once(&repo.name)
                .chain(&repo.former_names)
                .filter_map(|name| fs::canonicalize(root.join(name)).ok())
                .find(|path| found.contains(path));
            if let Some(path) = candidate {
                store.move_repo(repo.id, &path, Some(root))?;
            }
        }
    }
    for path in found {
        store.register_repo(path, root, how)?;
    }
    Ok(())
}

#[derive(Default)]
struct Copied {
    runs: usize,
    logs: usize,
    skipped: Vec<String>,
}

/// Find run folders (`runs/<repo>/<id>/`) of runs the store holds and copy
/// their files.
fn copy_runs(
    dir: &Path,
    home: &Home,
    ids: &HashMap<String, String>,
    depth: usize,
    copied: &mut Copied,
) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(Ok(to)) = ids.get(&name).map(|id| home.run_dir(id)) {
            copy_run(&entry.path(), &to, copied);
        } else if depth < MAX_DEPTH {
            copy_runs(&entry.path(), home, ids, depth + 1, copied);
        }
    }
}

/// Upstream's `jobs/<job>/sh-<n>.log` become `logs/<job>/<seq>.log`, seq
/// counting the job's steps from 1 in the order of n (as the store's steps
/// are numbered); `events.jsonl` and `quire-ci.log` are kept in `upstream/`.
/// Only regular files are copied.
fn copy_run(from: &Path, to: &Path, copied: &mut Copied) {
    copied.runs += 1;
    let regular = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());
    for name in ["events.jsonl", "quire-ci.log"] {
        let file = from.join(name);
        if regular(&file) {
            let dest = to.join("upstream");
            if let Err(e) =
                fs::create_dir_all(&dest).and_then(|()| fs::copy(&file, dest.join(name)))
            {
                copied.skipped.push(format!("{}: {e}", file.display()));
            }
        }
    }
    let Ok(jobs) = fs::read_dir(from.join("jobs")) else {
        return;
    };
    for job in jobs.flatten() {
        let job_name = job.file_name().to_string_lossy().into_owned();
        if !job.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if !quire_model::is_job_id(&job_name) {
            copied.skipped.push(format!(
                "{}: not a job name quire accepts",
                job.path().display()
            ));
            continue;
        }
        let mut steps: BTreeMap<u64, PathBuf> = BTreeMap::new();
        for file in fs::read_dir(job.path()).into_iter().flatten().flatten() {
            let file_name = file.file_name().to_string_lossy().into_owned();
            let n = file_name
                .strip_prefix("sh-")
                .and_then(|rest| rest.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok());
            match n {
                Some(n) if regular(&file.path()) => {
                    steps.insert(n, file.path());
                }
                _ => copied
                    .skipped
                    .push(format!("{}: not a step log", file.path().display())),
            }
        }
        let dest = to.join("logs").join(&job_name);
        for (seq, (_, file)) in steps.iter().enumerate() {
            let result = fs::create_dir_all(&dest)
                .and_then(|()| fs::copy(file, dest.join(format!("{}.log", seq + 1))));
            match result {
                Ok(_) => copied.logs += 1,
                Err(e) => copied.skipped.push(format!("{}: {e}", file.display())),
            }
        }
    }
}
