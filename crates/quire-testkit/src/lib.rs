//! quire's test kit, as jj's testutils: what every end-to-end test builds
//! on, written once, so that a test reads as a short story.
//!
//! - [`Env`]: a temporary home, the two binaries pointed at it
//!   ([`Env::runs`], [`Env::run`]) and its store;
//! - [`Repo`]: a bare repository with quire's hook installed and a work
//!   tree that pushes to it, with push-and-wait helpers returning typed
//!   runs ([`Repo::push_and_wait`]);
//! - [`wait_until`]: the one wait, with the one [`DEADLINE`];
//! - [`Gate`]: where a step says it got somewhere and waits for the test;
//! - [`fixture`]: a store holding a run in every state;
//! - [`slurm`]: the Slurm cluster of `.ci/slurm-cluster`, held by a
//!   test, its queue, its nodes' processes, a node killed and restarted;
//! - [`generated`]: the check of a committed generated file (completions,
//!   manual pages); snapshots of what quire prints are `insta`'s.
//!
//! Tests use real parts: real git, real SQLite files, real processes.

mod env;
mod gate;
pub mod generated;
mod json;
mod process;
mod require;
mod wait;

pub mod fixture;
pub mod slurm;

pub use env::{Env, Repo, git, queued_runs, stdout};
pub use fixture::{Fixture, SHA, job_ran, now_ms, populate, run_started};
pub use gate::Gate;
pub use generated::assert_generated;
pub use json::{assert_no_time, assert_time, find, json_fields, keys, masked};
pub use process::{
    RECORD_PID, alive, dead_pid, gone_within, outside_pid, read_pid_file, signal, step_pid,
};
pub use require::{is_root, program_runs, require};
pub use wait::{DEADLINE, LineReader, wait_exit, wait_until, within};
