//! A job's caches: the paths it declares in `cache`, restored into the
//! workspace before its first step and saved after it completes. Where a
//! cache is kept is not the executor's business: it asks the run's
//! [`JobCache`], if any, and writes what that reports as `quire: cache: ...`
//! lines in the job's log (the first step's, the last step's).

use std::fmt;
use std::path::Path;

use super::{ExecError, RunScope};
use crate::contain::Hold;
use crate::log::CriLog;
use quire_pipeline::pipeline::Job;

/// Where a run's jobs keep their caches between runs (the worker's, keyed
/// by repository, job and branch). Each call reports what it did as lines
/// for the job's log (without the `quire: cache: ` prefix); nothing it
/// meets fails the job.
pub trait JobCache: Send + Sync + fmt::Debug {
    /// Put the job's cached `paths` into `workspace`, before its first step.
    fn restore(&self, job: &str, paths: &[String], workspace: &Path) -> Vec<String>;
    /// Keep the job's `paths` from `workspace`, after it completed.
    fn save(&self, job: &str, paths: &[String], workspace: &Path) -> Vec<String>;
    /// The checkout's file times kept with the cache the last `restore`
    /// of `job` took, for a host that checks the commit out itself and
    /// gives them there (a cluster's node); none when this cache gave
    /// them itself, or has none.
    fn restored_times(&self, _job: &str) -> Option<Vec<u8>> {
        None
    }
    /// [`JobCache::save`], with the file times the host that ran the job
    /// recorded of its own checkout, kept beside the files.
    fn save_with_times(
        &self,
        job: &str,
        paths: &[String],
        workspace: &Path,
        _times: Option<&[u8]>,
    ) -> Vec<String> {
        self.save(job, paths, workspace)
    }
}

/// Restore `job`'s caches; the lines for the top of its first step's log.
pub(super) fn restore(scope: &RunScope<'_>, job: &Job) -> Vec<String> {
    match &scope.ctx.cache {
        Some(cache) if !job.cache.is_empty() => {
            let _frozen = hold(scope);
            prefixed(
                scope,
                cache.restore(&job.id, &job.cache, &scope.ctx.workspace),
            )
        }
        _ => Vec::new(),
    }
}

/// Save `job`'s caches, once it completed; the lines go to the end of
/// `log` (its last step's).
pub(super) fn save(scope: &RunScope<'_>, job: &Job, log: &Path) -> Result<(), ExecError> {
    let Some(cache) = &scope.ctx.cache else {
        return Ok(());
    };
    if job.cache.is_empty() {
        return Ok(());
    }
    let lines = {
        let _frozen = hold(scope);
        prefixed(scope, cache.save(&job.id, &job.cache, &scope.ctx.workspace))
    };
    let log_error = |source| ExecError::Write {
        what: log.display().to_string(),
        source,
    };
    let mut out = CriLog::append(log).map_err(log_error)?;
    for line in lines {
        out.note(line.as_bytes()).map_err(log_error)?;
    }
    out.flush().map_err(log_error)
}

/// Every process of the run frozen while the worker works in its
/// workspace, where jobs have cgroups (docs/SECURITY.md, "The worker's own
/// hands").
pub(super) fn hold<'a>(scope: &'a RunScope<'_>) -> Option<Hold<'a>> {
    scope.ctx.containment.as_deref().and_then(|c| c.hold())
}

fn prefixed(scope: &RunScope<'_>, lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|line| scope.redactor.apply_str(&format!("quire: cache: {line}")))
        .collect()
}
