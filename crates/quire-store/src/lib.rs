//! quire's store: where runs, jobs and steps live, how the schema got here,
//! and the only code allowed to change a run's or a job's state.
//!
//! * [`home`] finds the data home and [`Store::open`] opens `quire.db` in it,
//!   applying the schema history in [`schema`].
//! * [`lifecycle`] holds the run and job state machines (docs/STATE.md): every
//!   state change goes through it.
//! * [`reconcile`] repairs runs whose worker is provably gone.
//! * [`query`] reads runs back for `quire-runs`.
//! * [`logs`] packs an ended run's small step logs into the store and reads
//!   a step's log from its file or that copy.

pub mod announce;
mod error;
pub mod events;
pub mod home;
pub mod lifecycle;
pub mod logs;
mod prune;
pub mod query;
pub mod reconcile;
pub mod repos;
pub mod schema;
pub mod snapshot;
mod store;
pub mod upstream;

pub use error::{Error, Result};
pub use home::Home;
mod sql;

pub use prune::Pruned;
pub use quire_model::{
    Containment, FailureKind, HookState, Job, JobState, Notification, NotificationState,
    Repository, Run, RunEvent, RunState, Step, WorkerLease,
};
pub use store::Store;
