//! The environment a step sees (docs/PIPELINE.md, "Environment"): a short
//! allow-list of the worker's own variables (HOME and TMPDIR the run's own
//! when the worker gives it some), the admin's `[steps] env` over a fixed
//! PATH (the worker's; `quire-run exec` keeps its caller's), the pipeline's and the job's
//! `env`, the job's secrets, and quire's variables, which nothing overrides.

use std::collections::HashMap;

use super::{ExecError, RunContext};
use quire_model::refs::RefName;
use quire_pipeline::pipeline::{Job, Pipeline};

/// Variables of the worker's own environment a step may see; everything
/// else (QUIRE_HOME, GIT_DIR and the rest of a hook's environment) stays out.
const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "SHELL",
];

/// A PATH for a worker started without one.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The PATH of a run's steps when config.toml's `[steps] env` sets none:
/// fixed, never the PATH of whoever pushed (docs/PIPELINE.md).
pub const STEP_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// The variables every step of the run starts from, later entries winning.
pub(super) fn for_run(
    pipeline: &Pipeline,
    ctx: &RunContext,
    target: &RefName,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = PASSED_THROUGH
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    // The run's own, when it has them: the worker's user's home and
    // temporary directory are no step's business (docs/SECURITY.md).
    for (name, dir) in [("HOME", &ctx.step_home), ("TMPDIR", &ctx.step_tmpdir)] {
        if let Some(dir) = dir {
            env.retain(|(k, _)| k != name);
            env.push((name.into(), dir.display().to_string()));
        }
    }
    // The admin's, over a fixed PATH: the worker's (the pusher's, through
    // the hook) is no step's business either.
    if let Some(admin) = &ctx.step_env {
        env.retain(|(k, _)| k != "PATH");
        env.push(("PATH".into(), STEP_PATH.into()));
        env.extend(admin.iter().cloned());
    }
    env.extend(pipeline.env.iter().cloned());
    env.push(("CI".into(), "true".into()));
    env.push(("QUIRE_RUN_ID".into(), ctx.run_id.clone()));
    env.push(("QUIRE_REPO".into(), ctx.repo.clone()));
    env.push(("QUIRE_REF".into(), ctx.ref_name.clone()));
    env.push(("QUIRE_SHA".into(), ctx.sha.clone()));
    if let Some(branch) = target.branch() {
        env.push(("QUIRE_BRANCH".into(), branch.into()));
    } else if let Some(tag) = target.tag() {
        env.push(("QUIRE_TAG".into(), tag.into()));
    }
    if let Some(previous) = &ctx.previous_sha {
        env.push(("QUIRE_PREVIOUS_SHA".into(), previous.clone()));
    }
    env.push((
        "QUIRE_WORKSPACE".into(),
        ctx.steps_workspace().display().to_string(),
    ));
    env.push(("TRACEPARENT".into(), ctx.traceparent.clone()));
    env
}

/// The environment of `job`'s steps: the job's env over the run's, its
/// secrets over both, and quire's own variables over everything, so a
/// pipeline cannot spoof `QUIRE_RUN_ID` (which ends its leftovers) or the
/// rest.
pub(super) fn for_job(
    run_env: &[(String, String)],
    job: &Job,
    secrets: &[(String, String)],
) -> Result<HashMap<String, String>, ExecError> {
    let (quire, shared): (Vec<_>, Vec<_>) = run_env.iter().partition(|(k, _)| quire_owned(k));
    let mut env: HashMap<String, String> = shared.into_iter().cloned().collect();
    env.extend(job.env.iter().cloned());
    for name in &job.secrets {
        let Some((_, value)) = secrets.iter().find(|(n, _)| n == name) else {
            return Err(ExecError::MissingSecret {
                job: job.id.clone(),
                name: name.clone(),
            });
        };
        env.insert(name.clone(), value.clone());
    }
    env.extend(quire.into_iter().cloned());
    env.insert("QUIRE_JOB".into(), job.id.clone());
    Ok(env)
}

fn quire_owned(name: &str) -> bool {
    name == "CI" || name == "TRACEPARENT" || name.starts_with("QUIRE_")
}
