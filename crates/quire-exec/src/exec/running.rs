//! A job while its steps run: what each of them shares. Below the job,
//! its steps and the sweeps, which all hold it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use super::RunScope;
use super::stop::Stop;
use crate::contain::JobCgroup;
use quire_pipeline::pipeline::Job;

/// A job while it runs: what each of its steps shares.
pub(super) struct RunningJob<'a> {
    pub(super) scope: &'a RunScope<'a>,
    pub(super) job: &'a Job,
    pub(super) env: HashMap<String, String>,
    /// `logs/<job>.log`: the job's log, its steps' lines one after the
    /// other.
    pub(super) log_path: PathBuf,
    /// When the job's timeout (or `max_job_timeout`) runs out, for every
    /// step alike.
    pub(super) deadline: Option<Instant>,
    /// Which of the two the deadline is: `Stop::Deadline` for the job's
    /// own timeout, `Stop::MaxTimeout` for the executor's cap.
    pub(super) at_deadline: Stop,
    /// The job's cgroup, with cgroup containment: its steps go into it, and
    /// everything in it is killed when the job ends (it is dropped).
    pub(super) cgroup: Option<JobCgroup>,
}
