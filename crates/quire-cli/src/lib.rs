//! quire's commands: the two binaries' command trees, thin layers that parse
//! arguments, call the worker, the store and the web view, and render.
//!
//! * [`run`]: `quire-run`, the side that records and executes runs (git's
//!   hook, the worker, trigger, install, migrate-from, validate, exec, demo).
//! * [`runs`]: `quire-runs`, for people and scripts (list, show, logs,
//!   watch, wait, cancel, retry, prune, reconcile, repos, caches, serve).
//! * [`error`]: the one error type commands report, and its exit codes.
//! * [`manual`]: both binaries' completion scripts and manual pages.

// Every command's `println!`, `print!` and `eprintln!` (these shadow std's in the whole
// crate): a reader that went away (`quire-run install | head -1`, a push
// whose client hung up) or a stdout that cannot be written is no reason to
// panic half-way through a command's work, as std's do. What could not be
// written is dropped; the command goes on and its exit status is its
// work's.
macro_rules! println {
    () => {
        $crate::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

macro_rules! print {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!($($arg)*))
    };
}

// The same for stderr, which for the hook is the pusher's connection too.
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub mod error;
pub mod manual;
pub mod run;
pub mod runs;
pub mod select;

pub use quire_worker::say_converted;

/// What [`println!`] and [`print!`] write: to stdout, errors dropped.
#[doc(hidden)]
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// What [`eprintln!`] writes: to stderr, errors dropped.
#[doc(hidden)]
pub fn write_err(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_fmt(args);
}
