//! Tests that need more than Rust and git: skipped with a line saying what
//! they need, or failed under CI, where everything is installed.

use std::path::Path;
use std::process::Command as Process;

/// Whether a test's prerequisite beyond Rust and git (`what`: a program,
/// root, cgroups) is here. When it is not, outside CI, the test prints one
/// line, `TEST: skipped: needs WHAT (install: HOW)`, appends it to the file
/// `$QUIRE_SKIPS` names (scripts/test counts them at the end of the run),
/// and returns; under `CI=true` (.ci/run, which installs every one) the
/// test fails instead, saying what is missing: there, no test skips.
pub fn require(what: &str, install: &str, available: bool) -> bool {
    if available {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let line = format!("{test}: skipped: needs {what} (install: {install})");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{line}; under CI=true every test must run"
    );
    eprintln!("{line}");
    if let Some(file) = std::env::var_os("QUIRE_SKIPS") {
        use std::io::Write;
        // One write of one line, appended: lines of tests running at once
        // do not mix.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            eprintln!("cannot append to {}: {e}", Path::new(&file).display());
        }
    }
    false
}

/// Whether a program runs here (`PROGRAM ARGS` exits 0).
pub fn program_runs(program: &str, args: &[&str]) -> bool {
    Process::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the tests run as root (run_as, other namespaces' /proc).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
