//! `quire-run announce`: tell about the runs that ended
//! (docs/OPERATIONS.md, "When a run ends"). For each ended run no
//! announcer took yet, oldest first: write its result as a git note on its
//! commit (`refs/notes/ci`, unless `notes = false`), and run the
//! `[[notify]]` commands it matches, side by side, each with the run's
//! `show --json` document on stdin and a timeout; how each ended is kept
//! for `quire-runs show`. A broken notifier or note is recorded and logged
//! (worker.log), never the run's failure.
//!
//! Whoever ends runs starts one, detached: a worker after each run (or,
//! with no `[[notify]]` entry, it calls [`announce_all`] itself), the
//! hook when a push superseded or refused runs, `quire-runs cancel` and
//! `reconcile`. Announcers may run side by side: each run is taken by one.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use quire_store::query::RunDetail;
use quire_store::{Home, Job, NotificationState, Run, Store};

use crate::Error;
use crate::config::{Config, Notify};
use crate::git::{Blob, Repo};
use crate::workers;
use quire_view::json;
use quire_view::text;

/// How many times a note is tried when another writer holds or moved
/// `refs/notes/ci` meanwhile.
const NOTE_ATTEMPTS: u32 = 50;
/// The most of a commit's existing note the announcer reads: a larger note
/// is not read at all (its size is in the object's header), and quire's
/// note replaces it.
pub const NOTE_READ_MAX: u64 = 64 * 1024;
/// The largest tree of `refs/notes/ci` read to find a commit's note (git
/// spreads notes over folders long before a tree grows this large).
const NOTES_TREE_MAX: u64 = 16 * 1024 * 1024;
/// The most runs a note names, the newest kept: an existing note naming
/// more has only its first this many read.
const EARLIER_RUNS_MAX: usize = 100;
/// The most ended runs taken and announced together: their notes are
/// written in one commit a repository.
const BATCH_MAX: usize = 256;
/// The longest a notifier's stderr is read for its last line.
const STDERR_KEPT: usize = 64 * 1024;
/// The notes ref.
pub const NOTES_REF: &str = "refs/notes/ci";

/// Announce every ended run not yet announced, then exit.
pub fn run(home: &Home) -> Result<(), Error> {
    if let Err(e) = workers::detach_from_session() {
        eprintln!("quire-run announce: cannot start a session of its own: {e}");
    }
    let config = Config::load(home)?;
    let mut store = Store::open_existing(home)?;
    crate::say_converted(&store);
    announce_all(home, &config, &mut store)
}

/// When `config.toml` (read now, as an announcer reads it) has no
/// `[[notify]]` entry, announce the ended runs here, without a process of
/// their own: a note takes about a millisecond. Whether that was done;
/// false when a notifier is configured or it failed (said on stderr),
/// and an announcer is to be started.
pub fn notes_only_here(home: &Home, store: &mut Store) -> bool {
    let Ok(config) = Config::load(home) else {
        return false;
    };
    if !config.notify.is_empty() {
        return false;
    }
    match announce_all(home, &config, store) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("quire-run: cannot announce the runs that ended: {e}");
            false
        }
    }
}

/// Announce every ended run not yet announced, in this process: what
/// `quire-run announce` does, and what a worker does itself when no
/// `[[notify]]` entry is configured (a note is quick; a notifier may not
/// be, and runs in an announcer of its own). Without notifiers the runs
/// are taken in batches of up to [`BATCH_MAX`], the longest waiting
/// first, each batch's notes written in one commit a repository. With
/// them, one run at a time: a run's notifiers may take their whole
/// timeout, and the next run is left for the next announcer (a worker
/// starts one after each run) rather than made to wait behind them.
pub fn announce_all(home: &Home, config: &Config, store: &mut Store) -> Result<(), Error> {
    let notifiers = |run: &Run| -> Vec<(i64, Vec<String>)> {
        config
            .notify
            .iter()
            .enumerate()
            .filter(|(_, n)| n.matches(run))
            .map(|(i, n)| (i as i64 + 1, n.command.clone()))
            .collect()
    };
    let most = if config.notify.is_empty() {
        BATCH_MAX
    } else {
        1
    };
    loop {
        let batch = store.take_unannounced_batch(notifiers, most)?;
        if batch.is_empty() {
            return Ok(());
        }
        // A run that cannot be read is said and left out; the batch's
        // others are still announced.
        let details: Vec<RunDetail> = batch
            .iter()
            .filter_map(|run| {
                store
                    .run_detail(&run.id)
                    .inspect_err(|e| {
                        eprintln!("quire-run announce: run {}: cannot read it: {e}", run.id)
                    })
                    .ok()
            })
            .collect();
        if config.notes {
            write_notes(home, store, &details);
        }
        for detail in &details {
            notify(config, store, detail)?;
        }
    }
}

/// Run the `[[notify]]` commands `run` matches, side by side, and record
/// how each ended.
fn notify(config: &Config, store: &mut Store, detail: &RunDetail) -> Result<(), Error> {
    let run = &detail.run;
    let matching: Vec<(usize, &Notify)> = config
        .notify
        .iter()
        .enumerate()
        .filter(|(_, n)| n.matches(run))
        .collect();
    if matching.is_empty() {
        return Ok(());
    }
    let document = {
        let mut bytes =
            serde_json::to_vec_pretty(&json::detail(detail, quire_model::clock::now_ms()))
                .unwrap_or_default();
        bytes.push(b'\n');
        bytes
    };
    let (done, results) = mpsc::channel();
    for &(position, notify) in &matching {
        let position = position as i64 + 1;
        let done = done.clone();
        let notify = notify.clone();
        let document = document.clone();
        let vars = variables(run);
        thread::spawn(move || {
            let outcome = notify_one(&notify, &document, &vars);
            let _ = done.send((position, notify, outcome));
        });
    }
    drop(done);
    for (position, notify, outcome) in results {
        if outcome.state != NotificationState::Ok {
            eprintln!(
                "quire-run announce: run {}: notify entry {position} ({}): {}{}",
                run.id,
                notify.command.join(" "),
                outcome.state,
                outcome
                    .stderr_tail
                    .as_deref()
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            );
        }
        store.notification_finished(
            &run.id,
            position,
            outcome.state,
            outcome.exit_code,
            outcome.stderr_tail.as_deref(),
        )?;
    }
    Ok(())
}

/// The note: `quire: <state> <run id> <duration>`, then a line per job:
/// `<job> <state> <duration>`, with the exit code of a job that failed.
pub fn note_text(detail: &quire_store::query::RunDetail) -> String {
    let jobs: Vec<&Job> = detail.jobs.iter().map(|job| &job.job).collect();
    note_of(&detail.run, &jobs)
}

/// [`note_text`] of a run and its jobs.
fn note_of(run: &Run, jobs: &[&Job]) -> String {
    let took = |ms: Option<i64>| ms.map_or_else(|| "-".to_string(), text::duration);
    let mut note = format!(
        "quire: {} {} {}\n",
        run.state,
        run.id,
        took(run.duration_ms(run.finished_at_ms.unwrap_or_default()))
    );
    for j in jobs {
        let ms = j.started_at_ms.zip(j.finished_at_ms).map(|(s, f)| f - s);
        note.push_str(&format!("{} {} {}", j.id, j.state, took(ms)));
        if let Some(code) = j.exit_code.filter(|&c| c != 0) {
            note.push_str(&format!(" exit {code}"));
        }
        note.push('\n');
    }
    note
}

/// Write each ended run's note on its commit, under `refs/notes/ci`, in
/// one commit for each repository (`details`: a batch of runs taken
/// together, the longest waiting first). A trouble with one repository's
/// notes is said on stderr (worker.log) for each of its runs, and the
/// others are still written.
fn write_notes(home: &Home, store: &Store, details: &[RunDetail]) {
    let mut repos: Vec<(&str, Vec<&RunDetail>)> = Vec::new();
    for detail in details {
        let Some(git_dir) = detail.run.git_dir.as_deref() else {
            continue;
        };
        match repos.iter_mut().find(|(dir, _)| *dir == git_dir) {
            Some((_, runs)) => runs.push(detail),
            None => repos.push((git_dir, vec![detail])),
        }
    }
    for (git_dir, runs) in repos {
        if let Err(e) = write_repo_notes(home, store, &runs, Path::new(git_dir)) {
            for detail in runs {
                eprintln!(
                    "quire-run announce: run {}: no git note on {}: {e}",
                    detail.run.id, detail.run.sha
                );
            }
        }
    }
}

/// Write the notes of `runs` (ended runs of the repository at `git_dir`):
/// each commit's note is quire's own text of each of its runs, after the
/// notes of the other ended runs of the same commit that the existing note
/// names (a retry, a tag, a branch pushed earlier), each written anew from
/// the store. Nothing of the existing note is copied: a note over
/// [`NOTE_READ_MAX`] is not even read, and lines that are not quire's, or
/// that name a run the store does not hold on this commit, are dropped; so
/// a forged or huge note is replaced by quire's.
///
/// The existing notes are read outside `notes.lock`; under it, only
/// whether each commit's note is still the one read is checked (else,
/// another announcer wrote one meanwhile: read again), and quire's small
/// notes are written, in one commit.
fn write_repo_notes(
    home: &Home,
    store: &Store,
    runs: &[&RunDetail],
    git_dir: &Path,
) -> Result<(), String> {
    let mut commits: Vec<&str> = Vec::new();
    for detail in runs {
        if !commits.contains(&detail.run.sha.as_str()) {
            commits.push(&detail.run.sha);
        }
    }
    // Opened once: refs are read from the disk at each look, and objects
    // another writer added meanwhile are found (gix looks again on a miss).
    let repo = Repo::open(git_dir).map_err(|e| e.to_string())?;
    for _ in 0..NOTE_ATTEMPTS {
        let mut notes = Vec::with_capacity(commits.len());
        for &sha in &commits {
            let ours: Vec<&RunDetail> = runs
                .iter()
                .copied()
                .filter(|detail| detail.run.sha == sha)
                .collect();
            let existing = repo
                .note_id(NOTES_REF, sha, NOTES_TREE_MAX)
                .map_err(|e| e.to_string())?;
            let mut texts = match existing {
                Some(id) => match repo.blob(id, NOTE_READ_MAX) {
                    Ok(Blob::Read(bytes)) => earlier_notes(store, &ours, &bytes),
                    // Too large, or not a blob: not quire's.
                    Ok(Blob::TooLarge { .. }) | Err(_) => Vec::new(),
                },
                None => Vec::new(),
            };
            texts.extend(ours.iter().map(|detail| note_text(detail)));
            // The newest last; the oldest dropped first when they would
            // be more than the next announcer reads, in runs or in bytes
            // (the newest is kept whatever its size).
            let size =
                |texts: &[String]| texts.iter().map(String::len).sum::<usize>() + texts.len();
            let over = texts.len().saturating_sub(EARLIER_RUNS_MAX);
            texts.drain(..over);
            while texts.len() > 1 && size(&texts) > NOTE_READ_MAX as usize {
                texts.remove(0);
            }
            notes.push((sha.to_string(), texts.join("\n").into_bytes(), existing));
        }
        if add_notes(home, &repo, git_dir, &notes)? {
            return Ok(());
        }
    }
    Err("another writer kept changing the commit's note".into())
}

/// The notes of the ended runs of `ours`' commit that an existing note
/// (`text`, at most [`NOTE_READ_MAX`] bytes) names in its `quire: <state>
/// <run id>` lines, each written anew from the store, in the order named;
/// a run the store does not hold, of another commit or repository, not
/// ended, or one of `ours` (the runs whose notes are being written), is
/// left out.
fn earlier_notes(store: &Store, ours: &[&RunDetail], text: &[u8]) -> Vec<String> {
    let Some(first) = ours.first() else {
        return Vec::new();
    };
    let run = &first.run;
    let text = String::from_utf8_lossy(text);
    let mut seen = std::collections::HashSet::new();
    let mut named = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("quire: ") else {
            continue;
        };
        let Some(id) = rest.split(' ').nth(1) else {
            continue;
        };
        if ours.iter().any(|detail| detail.run.id == id) || !seen.insert(id.to_string()) {
            continue;
        }
        if seen.len() > EARLIER_RUNS_MAX {
            break;
        }
        named.push(id);
    }
    // One read for all of them: a commit pushed to many branches has a
    // note naming up to EARLIER_RUNS_MAX runs, written anew each time.
    let Ok(earlier) = store.runs_with_jobs(&named) else {
        return Vec::new();
    };
    earlier
        .iter()
        .filter(|(earlier, _)| {
            earlier.sha == run.sha && earlier.repo_id == run.repo_id && earlier.state.is_terminal()
        })
        .map(|(earlier, jobs)| note_of(earlier, &jobs.iter().collect::<Vec<_>>()))
        .collect()
}

/// Write `notes` (commit, text, the note blob read before) under
/// `refs/notes/ci`, in one commit, replacing the notes there, if each is
/// still the one read (its blob; none); false if another writer changed
/// one meanwhile. quire's announcers take turns (`notes.lock` in the
/// home, held while the notes are checked and written, never while one is
/// read); a writer outside quire that moves the ref or holds its lock
/// meanwhile makes the write fail (it moves the ref only from the commit
/// it read, [`Repo::replace_notes`]), and the notes are read and written
/// again.
fn add_notes(
    home: &Home,
    repo: &Repo,
    git_dir: &Path,
    notes: &[(String, Vec<u8>, Option<gix::ObjectId>)],
) -> Result<bool, String> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(home.dir().join("notes.lock"))
        .map_err(|e| format!("cannot open notes.lock: {e}"))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("cannot lock notes.lock: {e}"))?;
    let tip = repo.ref_tip(NOTES_REF);
    for (sha, _, expected) in notes {
        let now = repo
            .note_id(NOTES_REF, sha, NOTES_TREE_MAX)
            .map_err(|e| e.to_string())?;
        if now != *expected {
            return Ok(false);
        }
    }
    let texts: Vec<(String, Vec<u8>)> = notes
        .iter()
        .map(|(sha, text, _)| (sha.clone(), text.clone()))
        .collect();
    // On the tip the notes were checked at: moved since, the write fails.
    match repo.replace_notes(NOTES_REF, &texts, tip) {
        Ok(()) => Ok(true),
        // A writer outside quire moved the ref meanwhile, or holds its
        // lock: read again, after a pause.
        Err(_) if repo.ref_tip(NOTES_REF) != tip || ref_locked(git_dir) => {
            let jitter = u64::from(std::process::id() % 7);
            thread::sleep(Duration::from_millis(5 + jitter));
            Ok(false)
        }
        Err(e) => Err(format!("cannot write the notes: {e}")),
    }
}

/// Whether a writer holds the lock of `refs/notes/ci`.
fn ref_locked(git_dir: &Path) -> bool {
    git_dir.join(format!("{NOTES_REF}.lock")).exists()
}

/// The `QUIRE_*` variables a notifier gets (docs/OPERATIONS.md).
fn variables(run: &Run) -> Vec<(String, String)> {
    let mut vars = vec![
        ("QUIRE_RUN_ID".to_string(), run.id.clone()),
        ("QUIRE_REPO".to_string(), run.repo.clone()),
        ("QUIRE_REF".to_string(), run.ref_name.clone()),
        ("QUIRE_SHA".to_string(), run.sha.clone()),
        ("QUIRE_STATE".to_string(), run.state.to_string()),
    ];
    let ref_name = quire_model::refs::RefName::new(run.ref_name.as_str());
    if let Some(branch) = ref_name.branch() {
        vars.push(("QUIRE_BRANCH".into(), branch.into()));
    } else if let Some(tag) = ref_name.tag() {
        vars.push(("QUIRE_TAG".into(), tag.into()));
    }
    if let Some(kind) = run.failure_kind {
        vars.push(("QUIRE_FAILURE_KIND".into(), kind.to_string()));
    }
    vars
}

/// How one notifier ended.
struct NotifyOutcome {
    state: NotificationState,
    exit_code: Option<i64>,
    stderr_tail: Option<String>,
}

/// Run one notifier: the document on its stdin, its stderr kept (the last
/// line of it), killed with its process group at its timeout.
fn notify_one(notify: &Notify, document: &[u8], vars: &[(String, String)]) -> NotifyOutcome {
    use std::os::unix::process::CommandExt;
    let failed = |why: String| NotifyOutcome {
        state: NotificationState::Failed,
        exit_code: None,
        stderr_tail: Some(why),
    };
    let Some((program, args)) = notify.command.split_first() else {
        return failed("the command is empty".into());
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // Not the hook's git variables nor quire's own: only the run's.
    for (name, _) in std::env::vars_os() {
        let name_bytes = name.as_encoded_bytes();
        if name_bytes.starts_with(b"GIT_") || name_bytes.starts_with(b"QUIRE_") {
            command.env_remove(&name);
        }
    }
    command.envs(vars.iter().map(|(k, v)| (k, v)));
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return failed(format!("cannot start {program}: {e}")),
    };
    // Fed and drained on threads of their own: a notifier that never reads
    // its stdin, or fills its stderr, must not stall this one.
    if let Some(mut stdin) = child.stdin.take() {
        let document = document.to_vec();
        thread::spawn(move || {
            let _ = stdin.write_all(&document);
        });
    }
    let (tail_tx, tail_rx) = mpsc::channel();
    if let Some(mut stderr) = child.stderr.take() {
        thread::spawn(move || {
            let mut kept: Vec<u8> = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        kept.extend_from_slice(&buf[..n]);
                        if kept.len() > STDERR_KEPT {
                            kept.drain(..kept.len() - STDERR_KEPT);
                        }
                    }
                }
            }
            let _ = tail_tx.send(last_line(&kept));
        });
    }
    let timeout = notify.timeout();
    let status = wait_until(&mut child, Instant::now() + timeout);
    let (state, exit_code) = match status {
        None => {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.wait();
            (NotificationState::TimedOut, None)
        }
        Some(status) => match status.code() {
            Some(0) => (NotificationState::Ok, Some(0)),
            Some(code) => (NotificationState::Failed, Some(i64::from(code))),
            None => (NotificationState::Failed, None),
        },
    };
    // Whatever it left holding its stderr does not hold this up for long.
    let mut tail = tail_rx.recv_timeout(Duration::from_secs(1)).ok().flatten();
    if state == NotificationState::TimedOut {
        tail = Some(match tail {
            Some(line) => format!("killed after {}: {line}", text::span(timeout)),
            None => format!("killed after {}", text::span(timeout)),
        });
    } else if tail.is_none()
        && let Some(status) = status
        && status.code().is_none()
    {
        tail = Some(format!("ended by {status}"));
    }
    NotifyOutcome {
        state,
        exit_code,
        stderr_tail: tail,
    }
}

/// Wait for `child` until `deadline`; None if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut pause = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The last non-empty line of `bytes`, as text (at most 500 characters).
fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(500).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_the_last_one_with_text() {
        assert_eq!(last_line(b"one\ntwo\n\n  \n"), Some("two".into()));
        assert_eq!(last_line(b""), None);
        assert_eq!(last_line(b"\n\n"), None);
        assert_eq!(last_line(&[b'x'; 900]).unwrap().len(), 500);
    }
}
