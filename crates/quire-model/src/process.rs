//! The pid by which the rest of the machine knows this process. A worker
//! that runs in a pid namespace of its own is pid 1 there; what it records
//! for others (its liveness in the store, the names of its scratch files
//! and cgroups) must be the pid of the process that stands for it outside:
//! the one that started it and waits for it.

use std::sync::OnceLock;

static HOST_PID: OnceLock<u32> = OnceLock::new();

/// This process's pid as seen from outside any namespace it made.
pub fn host_pid() -> u32 {
    HOST_PID.get().copied().unwrap_or_else(std::process::id)
}

/// Say, once, which pid stands for this process outside its namespace.
pub fn set_host_pid(pid: u32) {
    let _ = HOST_PID.set(pid);
}
