//! Signals for the commands that run steps (`work`, `trigger --wait`,
//! `exec`). Steps live in process groups of their own, out of the
//! terminal's reach, so quire must end them itself: SIGINT and SIGTERM only
//! set a flag, and whoever watches a run turns it into a cancellation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGXFSZ};

fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// From now on, SIGINT and SIGTERM set the flag instead of killing us.
/// Handlers, unlike an ignored disposition, are reset by exec, so steps
/// start with the default actions.
pub fn catch() {
    for signal in [SIGINT, SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(flag())) {
            eprintln!("quire-run: warning: cannot catch signal {signal}: {e}");
        }
    }
}

/// For the hook waiting for its runs (`git push -o ci.wait`): SIGINT,
/// SIGTERM and SIGHUP (the pusher's Ctrl-C reaches a local push's hook; a
/// hang-up) set the flag instead of killing the hook, so the push's runs
/// are recorded and their workers started whatever arrives, and only the
/// waiting ends. The runs' workers are in sessions of their own, started
/// with the default actions (handlers do not survive exec).
pub fn catch_for_waiting() {
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(flag())) {
            // Not eprintln: the pusher may be gone already, and a failed
            // write must not become a panic.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "quire: warning: cannot catch signal {signal}: {e}"
            );
        }
    }
}

/// [`catch`], and SIGINT and SIGTERM also set `flag` (an executor's cancel)
/// directly.
pub fn catch_into(flag: Arc<AtomicBool>) {
    catch();
    for signal in [SIGINT, SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&flag)) {
            eprintln!("quire-run: warning: cannot catch signal {signal}: {e}");
        }
    }
}

/// Past a file size limit (RLIMIT_FSIZE) a write raises SIGXFSZ, which would
/// kill the worker with its run still active. Caught, the write fails with
/// EFBIG instead and the run fails with that reason.
pub fn survive_file_size_limit() {
    let noticed = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(SIGXFSZ, noticed) {
        eprintln!("quire-run: warning: cannot catch SIGXFSZ: {e}");
    }
}

/// Whether SIGINT or SIGTERM (or, after `catch_for_waiting`, SIGHUP)
/// arrived since the flag was set up.
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst)
}
