//! A step's process, contained from its first instruction: spawned as a
//! noted step (so that reaping the worker's orphans never takes it), and,
//! with cgroups, moved into its job's cgroup by its child before exec
//! (`vspawn.rs` writes `0` to the cgroup's `cgroup.procs`), so that
//! nothing it forks is ever outside it.

use std::io;
#[cfg(test)]
use std::os::fd::{BorrowedFd, RawFd};
use std::process::{Child, Command};

use crate::processes;

/// Tags an errno from [`enter_cgroup`] as it travels from the child to the
/// parent (std hands the child's error code over as it is), so it is not
/// taken for the program's own "not found" or "not executable".
pub(super) const CGROUP_ERROR: i32 = 1 << 24;
/// Likewise for an errno of joining the run's network namespace.
pub(super) const NETNS_ERROR: i32 = 1 << 25;

/// Spawn `command` as a step: noted as one (so that reaping the worker's
/// orphans never takes it), and an error of [`enter_cgroup`]'s said as one.
pub(super) fn spawn(command: &mut Command) -> io::Result<Child> {
    processes::spawn_step(command).map_err(said)
}

/// An error of [`enter_cgroup`]'s said as one; any other as it is.
pub(super) fn said(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) if code & CGROUP_ERROR != 0 => io::Error::other(format!(
            "cannot put the step into its job's cgroup: {}",
            io::Error::from_raw_os_error(code & !CGROUP_ERROR)
        )),
        Some(code) if code & NETNS_ERROR != 0 => io::Error::other(format!(
            "cannot put the step into its run's network namespace: {}",
            io::Error::from_raw_os_error(code & !NETNS_ERROR)
        )),
        _ => e,
    }
}

/// Move the calling process into the cgroup whose
/// `cgroup.procs` is open as `procs` (writing `0` moves the writer). Only
/// async-signal-safe work: one write(2), no allocation. The descriptor is
/// close-on-exec, so the step never sees it.
#[cfg(test)]
pub(crate) fn enter_cgroup(procs: RawFd) -> io::Result<()> {
    // SAFETY: `procs` is open in the parent for as long as the spawn
    // lasts, and so in this child, which is a copy of it.
    let fd = unsafe { BorrowedFd::borrow_raw(procs) };
    match rustix::io::write(fd, b"0") {
        Ok(_) => Ok(()),
        Err(e) => Err(io::Error::from_raw_os_error(
            e.raw_os_error() | CGROUP_ERROR,
        )),
    }
}
