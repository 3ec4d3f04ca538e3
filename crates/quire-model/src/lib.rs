//! quire's domain, shared by every layer and depending on none: the states
//! of runs, jobs and repositories, why a run failed, the events an executor
//! reports and their JSON-lines form, time as quire stores it, and ref
//! names with the one glob rule over them.

pub mod clock;
pub mod cri;
pub mod events;
pub mod model;
pub mod process;
pub mod refs;
pub mod shell;

pub use model::{
    Artifact, Containment, FailureKind, HookState, Job, JobState, Notification, NotificationState,
    Repository, Run, RunEvent, RunState, Step, UnknownValue, WorkerLease, is_job_id, is_object_id,
    is_run_id,
};
