//! Issue 13's limits: validation linear in a file's size however many
//! problems it holds, and the hook refusing a 50 MB `.quire/ci.toml` from
//! its size without reading it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quire_pipeline::{Limits, Pipeline};

use crate::harness::{Bins, Repo, Stats, git, row, run, time};

/// A pipeline of about `bytes` bytes whose every job has five problems: an
/// input naming no job, a blank step, an env name that is not one, and
/// overlapping and duplicate cache paths.
fn problem_file(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 256);
    let mut i = 0;
    while text.len() < bytes {
        text.push_str(&format!(
            "[jobs.j{i}]\ninputs = [\"nope{i}\"]\nsh = [\"echo {i}\", \" \"]\n\
             env = {{ \"1X\" = \"1\" }}\ncache = [\"target/{i}\", \"target\", \"target/{i}\"]\n"
        ));
        i += 1;
    }
    text
}

/// Validation of 1 MB and 8 MB files full of problems, limits raised so
/// that every rule runs: the time should grow with the bytes, 8x. Reading
/// the same texts as TOML alone (the parser quire's validation starts
/// with) is the baseline for what 8x the bytes costs on this machine.
pub fn validation(quick: bool) {
    let roomy = Limits {
        max_file_kb: 64 * 1024,
        max_jobs: usize::MAX,
        max_steps: usize::MAX,
    };
    let reps = if quick { 3 } else { 7 };
    let measure = |mb: usize| {
        let text = problem_file(mb << 20);
        let mut problems = 0;
        let mut validate = Vec::new();
        let mut toml_alone = Vec::new();
        for _ in 0..reps {
            let (took, result) = time(|| Pipeline::parse_with(&text, &roomy));
            problems = result.expect_err("every job has problems").total();
            validate.push(took);
            let (took, table) = time(|| text.parse::<toml::Table>());
            assert!(table.is_ok());
            toml_alone.push(took);
        }
        (Stats::of(&validate), Stats::of(&toml_alone), problems)
    };
    let (one, one_toml, one_problems) = measure(1);
    let (eight, eight_toml, eight_problems) = measure(8);
    row(
        "validation of a `.quire/ci.toml` full of problems (five a job, limits raised), 1 MB against 8 MB",
        &format!(
            "1 MB, {one_problems} problems: {one}; reading it as TOML alone: {:.2} ms",
            one_toml.median
        ),
        &format!(
            "8 MB, {eight_problems} problems: {eight}; **{:.2}x** for 8x the bytes (TOML alone: {:.2} ms, {:.2}x)",
            eight.median / one.median,
            eight_toml.median,
            eight_toml.median / one_toml.median
        ),
        "linear: ~8x, as reading the TOML (before: 10 s for 2 MB, 163 s for 8 MB)",
    );
}

/// Run `quire-run hook` for one ref as git would (a line on stdin); its
/// wall time and peak resident set (VmHWM, KiB, sampled until it exits).
fn hook_once(
    bins: &Bins,
    home: &std::path::Path,
    bare: &std::path::Path,
    sha: &str,
) -> (Duration, u64) {
    let mut child = Command::new(&bins.quire_run)
        .arg("--home")
        .arg(home)
        .args(["hook", "--git-dir"])
        .arg(bare)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let line = format!("{} {sha} refs/heads/main\n", "0".repeat(40));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak = peak.max(line.split_whitespace().nth(1).unwrap().parse().unwrap());
        }
        if child.try_wait().unwrap().is_some() {
            return (started.elapsed(), peak);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The hook given a commit whose `.quire/ci.toml` is 50 MB, against one
/// whose file is a line: both refused (a syntax error on the first line),
/// the large one from its size alone.
pub fn hook_large_file(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = Repo::new(dir.path(), "app");
    let head = || {
        String::from_utf8(run(git(&repo.work).args(["rev-parse", "HEAD"])).stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    repo.commit(&[(".quire/ci.toml", "[jobs.a\n")], "small");
    let small = head();
    let mut huge = String::from("[jobs.a\n");
    while huge.len() < 50 << 20 {
        huge.push_str("# padding, padding, padding, padding, padding, padding\n");
    }
    huge.truncate(50 << 20);
    repo.commit(&[(".quire/ci.toml", &huge)], "50 MB");
    let large = head();
    // No hook is installed: the push only stores the objects.
    repo.push(&["--quiet", "origin", "main"]);
    let n = if quick { 5 } else { 20 };
    let (mut small_t, mut large_t) = (Vec::new(), Vec::new());
    let (mut small_kib, mut large_kib) = (0, 0);
    for _ in 0..n {
        let (t, kib) = hook_once(bins, &home, &repo.bare, &small);
        small_t.push(t);
        small_kib = small_kib.max(kib);
        let (t, kib) = hook_once(bins, &home, &repo.bare, &large);
        large_t.push(t);
        large_kib = large_kib.max(kib);
    }
    let (s, l) = (Stats::of(&small_t), Stats::of(&large_t));
    row(
        "`quire-run hook` for a commit whose `.quire/ci.toml` is 50 MB (refused from its size: `max_pipeline_kb` = 512)",
        &format!("a one-line file (refused as invalid): {s}, peak RSS {small_kib} KiB"),
        &format!(
            "{l}, peak RSS {large_kib} KiB: **{:+.2} ms**, **{:+} KiB**",
            l.median - s.median,
            large_kib as i64 - small_kib as i64
        ),
        "flat: the blob is never read",
    );
}

/// The peak resident set (VmHWM, KiB) of `pid` and of each child it has
/// while sampled, the largest.
fn tree_hwm(pid: u32) -> u64 {
    let hwm = |pid: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    };
    let mut peak = hwm(&pid.to_string());
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace() {
                peak = peak.max(hwm(child));
            }
        }
    }
    peak
}

/// quire's notes writer (`quire-run announce`) over a commit whose existing
/// note is 50 MB, against one whose note is a line: its time, and the
/// peak resident set of the announcer and the git it runs. The notes are
/// planted in the repository directly (a push of `refs/notes/ci` is
/// refused by git: `install` hides it from pushes), and the run is made to wait for
/// an announcer again before each sample.
pub fn notes_over_a_huge_note(bins: &Bins, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = Repo::new(dir.path(), "app");
    repo.install(bins, &home);
    // An invalid pipeline: the hook ends the run at once, and its
    // announcer writes the first note.
    repo.commit(&[(".quire/ci.toml", "[jobs.a\n")], "invalid");
    repo.push(&["--quiet", "origin", "main"]);
    let sha = String::from_utf8(run(git(&repo.work).args(["rev-parse", "HEAD"])).stdout)
        .unwrap()
        .trim()
        .to_string();
    let store = quire_store::Store::open(&quire_store::Home::at(&home)).unwrap();
    let unannounced = || -> i64 {
        store
            .connection()
            .query_row(
                "SELECT count(*) FROM runs WHERE announced_at_ms IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while unannounced() > 0 {
        assert!(Instant::now() < deadline, "the run was never announced");
        std::thread::sleep(Duration::from_millis(20));
    }
    let blob = |text: &[u8]| {
        let file = dir.path().join("note");
        std::fs::write(&file, text).unwrap();
        let out = run(git(&repo.bare).args(["hash-object", "-w"]).arg(&file));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let small = blob(b"a line of someone else's\n");
    let mut huge = Vec::with_capacity(50 << 20);
    while huge.len() < 50 << 20 {
        huge.extend_from_slice(b"quire: complete 0123 1s, padding, padding, padding, padding\n");
    }
    let huge = blob(&huge);
    let once = |planted: &str| -> (Duration, u64) {
        run(git(&repo.bare).args(["notes", "--ref=ci", "add", "-f", "-C", planted, &sha]));
        store
            .connection()
            .execute("UPDATE runs SET announced_at_ms = NULL", [])
            .unwrap();
        let mut child = Command::new(&bins.quire_run)
            .arg("--home")
            .arg(&home)
            .arg("announce")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut peak = 0;
        loop {
            peak = peak.max(tree_hwm(child.id()));
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success());
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let took = started.elapsed();
        let note = run(git(&repo.bare).args(["notes", "--ref=ci", "show", &sha])).stdout;
        assert!(
            note.starts_with(b"quire: failed ") && note.len() < 4096,
            "the note is quire's own"
        );
        (took, peak)
    };
    let n = if quick { 3 } else { 10 };
    let (mut small_t, mut huge_t) = (Vec::new(), Vec::new());
    let (mut small_kib, mut huge_kib) = (0, 0);
    for _ in 0..n {
        let (t, kib) = once(&small);
        small_t.push(t);
        small_kib = small_kib.max(kib);
        let (t, kib) = once(&huge);
        huge_t.push(t);
        huge_kib = huge_kib.max(kib);
    }
    let (s, h) = (Stats::of(&small_t), Stats::of(&huge_t));
    row(
        "`quire-run announce` writing a run's note over the commit's existing 50 MB note (planted in the repository; a push of `refs/notes/ci` is refused)",
        &format!(
            "over a one-line note: {s}, peak RSS {small_kib} KiB (announcer or its git, the larger)"
        ),
        &format!(
            "{h}, peak RSS {huge_kib} KiB: **{:+.2} ms**, **{:+} KiB**",
            h.median - s.median,
            huge_kib as i64 - small_kib as i64
        ),
        "flat: the note is never read (before: `git notes append` read it whole, 2.9 GB for a 1 GB note)",
    );
}
