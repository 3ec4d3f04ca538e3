//! A step's process, contained from its first instruction: spawned as a
//! noted step (so that reaping the worker's orphans never takes it), and,
//! with cgroups, moved into its job's cgroup in the child between fork and
//! exec, so that nothing it forks is ever outside it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use crate::contain::JobCgroup;
use crate::processes;

/// Tags an errno from [`enter_cgroup`] as it travels from the child to the
/// parent (std hands the child's error code over as it is), so it is not
/// taken for the program's own "not found" or "not executable".
const CGROUP_ERROR: i32 = 1 << 24;

/// Have `command`'s child enter `cgroup` between fork and exec, when there
/// is one. Before any other `pre_exec` that may take the right away (the
/// sandbox drops the user and hides paths: `spawn.rs` registers it last).
pub(super) fn enter(command: &mut Command, cgroup: Option<&JobCgroup>) {
    let Some(cgroup) = cgroup else {
        return;
    };
    let procs = cgroup.procs().as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: `enter_cgroup` makes one
    // write(2) to a descriptor that the parent keeps open (in the
    // `JobCgroup`, which outlives the spawn), and builds an `io::Error`
    // from an errno, which does not allocate.
    unsafe {
        command.pre_exec(move || enter_cgroup(procs));
    }
}

/// Spawn `command` as a step: noted as one (so that reaping the worker's
/// orphans never takes it), and an error of [`enter_cgroup`]'s said as one.
pub(super) fn spawn(command: &mut Command) -> io::Result<Child> {
    processes::spawn_step(command).map_err(|e| match e.raw_os_error() {
        Some(code) if code & CGROUP_ERROR != 0 => io::Error::other(format!(
            "cannot put the step into its job's cgroup: {}",
            io::Error::from_raw_os_error(code & !CGROUP_ERROR)
        )),
        _ => e,
    })
}

/// In the child, before exec: move this process into the cgroup whose
/// `cgroup.procs` is open as `procs` (writing `0` moves the writer). Only
/// async-signal-safe work: one write(2), no allocation. The descriptor is
/// close-on-exec, so the step never sees it.
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
