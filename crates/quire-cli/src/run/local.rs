//! `quire-run validate` and `quire-run exec`: a pipeline file checked, or
//! run in a local directory, without a repository or a store.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use quire_exec::events::{EventSink, JsonlFile};
use quire_exec::exec::{Cancel, RunContext, RunResult};
use quire_model::events::Event;
use quire_pipeline::pipeline::Input;
use quire_pipeline::{Limits, Pipeline, Problems};
use quire_worker::record::{DEFAULT_FILE, describe};

use crate::error::CommandError;
use quire_worker::config::Config;

/// Read and validate a pipeline file under `limits` (one over
/// `max_pipeline_kb` is refused without being read); the errors, each
/// prefixed with the file's name, on failure.
fn load(file: &Path, limits: &Limits) -> Result<Pipeline, CommandError> {
    let cannot_read =
        |e: io::Error| CommandError::input(format!("cannot read {}: {e}", file.display()));
    let invalid =
        |found: Problems| CommandError::pipeline(describe(&file.display().to_string(), &found));
    let opened = std::fs::File::open(file).map_err(cannot_read)?;
    let size = opened.metadata().map_err(cannot_read)?.len();
    if let Some(refused) = limits.refuse_size(size) {
        return Err(invalid(refused));
    }
    // It may have grown since: read no more than the limit allows.
    let mut text = Vec::new();
    opened
        .take(limits.max_file_bytes().saturating_add(1))
        .read_to_end(&mut text)
        .map_err(cannot_read)?;
    if let Some(refused) = limits.refuse_size(text.len() as u64) {
        return Err(invalid(refused));
    }
    let text = String::from_utf8(text)
        .map_err(|_| CommandError::input(format!("{} is not UTF-8 text", file.display())))?;
    Pipeline::parse_with(&text, limits).map_err(invalid)
}

/// The home's config.toml when there is one (for its limits and secrets),
/// else the defaults: a local run needs no home.
fn local_config(home: Option<&Path>) -> Result<Config, CommandError> {
    match quire_store::Home::resolve(home) {
        Ok(home) if home.dir().join("config.toml").is_file() => Ok(Config::load(&home)?),
        _ => Ok(Config::default()),
    }
}

/// `quire-run validate [FILE]`: `ok` and the planned jobs, or the errors,
/// under the limits of the home's config.toml if there is one.
pub(crate) fn validate(home: Option<&Path>, file: Option<&Path>) -> Result<(), CommandError> {
    let file = file.unwrap_or(Path::new(DEFAULT_FILE));
    let config = local_config(home)?;
    let pipeline = load(file, &config.limits())?;
    let mut out = format!(
        "ok: {} is valid; jobs in the order they run:\n",
        file.display()
    );
    for (n, &i) in pipeline.order().iter().enumerate() {
        let job = &pipeline.jobs[i];
        let after: Vec<&str> = job
            .inputs
            .iter()
            .map(|input| match input {
                Input::Push => quire_pipeline::pipeline::PUSH_SOURCE,
                Input::Job(j) => pipeline.jobs[*j].id.as_str(),
            })
            .collect();
        let mut notes = vec![format!("after {}", after.join(", "))];
        if let Some(when) = &job.when {
            let globs = |ps: &[quire_pipeline::RefGlob]| {
                ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" ")
            };
            if !when.branches.is_empty() {
                notes.push(format!("branches {}", globs(&when.branches)));
            }
            if !when.tags.is_empty() {
                notes.push(format!("tags {}", globs(&when.tags)));
            }
        }
        if let Some(t) = job.timeout {
            notes.push(format!("timeout {}", quire_view::text::span(t)));
        }
        let resources = job.resources.describe();
        if !resources.is_empty() {
            notes.push(resources);
        }
        if job.allow_failure {
            notes.push("may fail".into());
        }
        let steps = job.steps.len();
        out.push_str(&format!(
            "  {}. {} ({} step{}; {})\n",
            n + 1,
            job.id,
            steps,
            if steps == 1 { "" } else { "s" },
            notes.join("; ")
        ));
    }
    print!("{out}");
    Ok(())
}

/// Where `quire-run exec` runs and what it pretends was pushed.
pub(crate) struct ExecArgs<'a> {
    /// The home whose config.toml defines secrets and max_parallel_jobs, if
    /// there is one.
    pub home: Option<&'a Path>,
    pub file: Option<&'a Path>,
    pub workspace: &'a Path,
    pub ref_name: Option<&'a str>,
    pub logs: Option<&'a Path>,
}

/// Prints each job's outcome as it happens, for a person.
struct Progress;

impl EventSink for Progress {
    fn emit(&mut self, event: &Event) -> io::Result<()> {
        let line = match event {
            Event::JobStarted { job, .. } => format!("{job}: started"),
            Event::JobFinished {
                job,
                state,
                exit_code,
                ..
            } => match exit_code {
                Some(code) => format!("{job}: {state} (exit {code})"),
                None => format!("{job}: {state}"),
            },
            Event::JobSkipped { job, reason, .. } => format!("{job}: skipped ({reason})"),
            _ => return Ok(()),
        };
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()
    }
}

/// `quire-run exec`: run a pipeline in a local directory. Exit 0 iff the
/// run completed.
pub(crate) fn exec(args: &ExecArgs<'_>) -> Result<bool, CommandError> {
    let workspace = std::fs::canonicalize(args.workspace).map_err(|e| {
        CommandError::input(format!(
            "cannot use {} as the workspace: {e}",
            args.workspace.display()
        ))
    })?;
    let file = args
        .file
        .map_or_else(|| workspace.join(DEFAULT_FILE), Path::to_path_buf);
    let config = local_config(args.home)?;
    let pipeline = load(&file, &config.limits())?;
    let ref_name = args
        .ref_name
        .map(|r| {
            if r.starts_with("refs/") {
                r.to_string()
            } else {
                quire_model::refs::RefName::of_branch(r).to_string()
            }
        })
        .unwrap_or_else(|| current_branch(&workspace));
    let out_dir: PathBuf = match args.logs {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "quire-exec-{}-{}",
            std::process::id(),
            quire_model::clock::now_ms()
        )),
    };
    let io_error =
        |e: io::Error| CommandError::input(format!("cannot write to {}: {e}", out_dir.display()));
    std::fs::create_dir_all(&out_dir).map_err(io_error)?;
    let run_id = uuid_like();
    let secrets = config.secret_values().map_err(CommandError::input)?;
    let containment = quire_worker::work::contain_runs(&config);
    let contained = containment
        .enter_run(&run_id)
        .map_err(|e| CommandError::input(format!("cannot contain the run's processes: {e}")))?;
    let ctx = RunContext {
        run_id,
        repo: workspace
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ref_name: ref_name.clone(),
        sha: "0".repeat(40),
        previous_sha: None,
        traceparent: format!("00-{}-{}-01", "1".repeat(32), "1".repeat(16)),
        workspace,
        logs_dir: out_dir.join("logs"),
        secrets,
        // Caches belong to a home's repositories; a local run has neither.
        cache: None,
        step_workspace: None,
        step_home: None,
        step_tmpdir: None,
        step_env: None,
        sandbox: None,
        network: None,
        remote: None,
        containment: contained.clone(),
    };
    println!(
        "running {} in {} as {ref_name}",
        file.display(),
        ctx.workspace.display()
    );
    let mut sink = (
        JsonlFile::create(&out_dir.join("events.jsonl")).map_err(io_error)?,
        Progress,
    );
    let cancel = Cancel::default();
    quire_worker::interrupt::catch_into(cancel.flag());
    let result = config
        .executor()
        .run(&pipeline, &ctx, &mut sink, &cancel)
        .map_err(|e| CommandError::input(e.to_string()))?;
    if let Some(contained) = &contained
        && let Err(e) = contained.end()
    {
        eprintln!("quire-run: {e}");
    }
    let verdict = match result {
        RunResult::Complete => "complete",
        RunResult::Failed { .. } => "failed",
        RunResult::Cancelled => "cancelled",
    };
    println!("run {verdict}; logs and events in {}", out_dir.display());
    Ok(result == RunResult::Complete)
}

/// The branch checked out in `dir`, or main.
fn current_branch(dir: &Path) -> String {
    quire_worker::git::command_in(dir)
        .args(["symbolic-ref", "--quiet", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| quire_model::refs::RefName::of_branch("main").to_string())
}

/// A local run's id: not stored anywhere, only handed to steps.
fn uuid_like() -> String {
    format!(
        "local-{}-{}",
        std::process::id(),
        quire_model::clock::now_ms()
    )
}
