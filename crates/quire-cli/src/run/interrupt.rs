//! Ctrl-C and SIGTERM for the commands that run steps (`work`, `trigger
//! --wait`, `exec`): steps live in process groups of their own, out of the
//! terminal's reach, so quire must end them itself. The signal only sets a
//! flag; whoever watches a run turns it into a cancellation.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// From now on, SIGINT and SIGTERM set the flag instead of killing us.
pub(crate) fn catch() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-
    // safe; steps are spawned with exec, which resets caught signals.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether SIGINT or SIGTERM arrived since `catch`.
pub(crate) fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
