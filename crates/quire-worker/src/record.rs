//! Recording what a push did to one ref: the hook's and `trigger`'s shared
//! path from (old, new, ref) to a run, or to the reason there is none.

use quire_pipeline::{Limits, Pipeline, Problems};
use quire_store::lifecycle::NewRun;
use quire_store::{RunEvent, Store};

use crate::Error;
use crate::git::{Blob, Repo};

/// The pipeline file of a project.
pub const DEFAULT_FILE: &str = ".quire/ci.toml";

/// Upstream quire's pipeline file (Fennel), which quire does not read: a
/// commit that has it and no [`DEFAULT_FILE`] is told so by name.
pub const UPSTREAM_FILE: &str = ".quire/ci.fnl";

/// Problems as `FILE:LINE:COLUMN: message` lines (`FILE: message` for one
/// of the whole file), and a last line for those not listed.
pub fn describe(file: &str, found: &Problems) -> Vec<String> {
    found
        .iter()
        .map(|d| match d.line {
            Some(_) => format!("{file}:{d}"),
            None => format!("{file}: {d}"),
        })
        .chain(found.omitted_line().map(|line| format!("{file}: {line}")))
        .collect()
}

/// One ref's update, as git reports it to post-receive.
#[derive(Debug, Clone)]
pub struct RefUpdate {
    /// The previous tip; None for a new ref.
    pub old: Option<String>,
    /// The new tip; None when the ref was deleted.
    pub new: Option<String>,
    pub ref_name: String,
}

/// What became of one ref's update.
#[derive(Debug)]
pub enum Recorded {
    Queued {
        run: String,
        superseded: Option<String>,
    },
    /// Recorded and failed at once: the pipeline file is invalid.
    Invalid {
        run: String,
        errors: Vec<String>,
    },
    /// Recorded and failed at once: the home's config.toml is invalid.
    ConfigInvalid {
        run: String,
        error: String,
    },
    Deleted {
        superseded: Option<String>,
    },
    Skipped {
        why: &'static str,
        superseded: Option<String>,
    },
    NoPipeline {
        superseded: Option<String>,
        /// The commit has upstream quire's [`UPSTREAM_FILE`].
        upstream_file: bool,
    },
}

impl Recorded {
    /// The lines the pusher sees (as `remote: ...`).
    pub fn lines(&self, update: &RefUpdate) -> Vec<String> {
        let r = &update.ref_name;
        match self {
            Recorded::Queued { run, superseded } => {
                let mut lines = vec![format!(
                    "quire: queued run {run} for {r} (quire-runs show {run})"
                )];
                if let Some(old) = superseded {
                    lines.push(format!("quire:   it supersedes run {old}"));
                }
                lines
            }
            Recorded::Invalid { run, errors } => {
                let mut lines = vec![format!(
                    "quire: {DEFAULT_FILE} is invalid; run {run} for {r} failed (pipeline-invalid):"
                )];
                lines.extend(errors.iter().map(|e| format!("quire:   {e}")));
                lines
            }
            Recorded::ConfigInvalid { run, error } => vec![
                format!(
                    "quire: run {run} for {r} failed (config-invalid): quire's config.toml on the \
                     server is invalid: {error}"
                ),
                format!(
                    "quire:   ask the server's admin to fix it; `quire-runs retry {run}` then runs it"
                ),
            ],
            Recorded::Deleted {
                superseded: Some(old),
            } => {
                vec![format!("quire: {r} was deleted; superseded its run {old}")]
            }
            Recorded::Deleted { superseded: None } => vec![format!("quire: {r} was deleted")],
            Recorded::Skipped { why, superseded } => {
                with_superseded(format!("quire: no run for {r}: {why}"), superseded)
            }
            Recorded::NoPipeline {
                superseded,
                upstream_file,
            } => {
                let commit = update
                    .new
                    .as_deref()
                    .map_or("the commit", |s| &s[..s.len().min(12)]);
                if !upstream_file {
                    return with_superseded(
                        format!("quire: no run for {r}: {commit} has no {DEFAULT_FILE}"),
                        superseded,
                    );
                }
                let mut lines = with_superseded(
                    format!(
                        "quire: no run for {r}: {commit} has {UPSTREAM_FILE}, upstream quire's \
                         pipeline, which quire does not read, and no {DEFAULT_FILE}"
                    ),
                    superseded,
                );
                lines.insert(
                    1,
                    format!(
                        "quire:   write it as {DEFAULT_FILE}: the format is docs/PIPELINE.md, \
                         upstream's idioms in it docs/OPERATIONS.md (\"Coming from upstream quire\")"
                    ),
                );
                lines
            }
        }
    }

    pub fn queued(&self) -> bool {
        matches!(self, Recorded::Queued { .. })
    }
}

fn with_superseded(line: String, superseded: &Option<String>) -> Vec<String> {
    let mut lines = vec![line];
    if let Some(old) = superseded {
        lines.push(format!(
            "quire:   the ref moved on, so its run {old} was superseded"
        ));
    }
    lines
}

/// Does the commit message ask to skip CI?
pub fn skip_requested(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("[skip ci]") || lower.contains("[ci skip]")
}

/// Whether a ref update may go without a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The push said so (`git push -o ci.skip`).
    PushOption,
    /// When the commit's message says `[skip ci]` or `[ci skip]`.
    AsTheMessageSays,
    /// Never (`trigger --force`).
    Never,
}

/// How a ref update is recorded: what the pusher and the home's config say.
pub struct Recording<'a> {
    /// Whether it may go without a run.
    pub skip: Skip,
    pub limits: &'a Limits,
    pub event: RunEvent,
    /// The home's config.toml could not be read: why. A run is recorded
    /// failed (`config-invalid`) instead of queued.
    pub config_error: Option<&'a str>,
}

/// Record one ref update of `repo` (the repository `repo_id` of the store),
/// its pipeline file held to `limits` (a file over `max_pipeline_kb` is
/// refused from its size, unread).
pub fn record(
    store: &mut Store,
    repo: &Repo,
    repo_id: i64,
    update: &RefUpdate,
    how: &Recording<'_>,
) -> Result<Recorded, Error> {
    let Recording {
        skip,
        limits,
        event,
        config_error,
    } = *how;
    // Notes (quire's own results in `refs/notes/ci` among them) are not
    // code: a push of them never runs anything.
    if update.ref_name.starts_with("refs/notes/") {
        return Ok(Recorded::Skipped {
            why: "a notes ref never runs a pipeline",
            superseded: None,
        });
    }
    let Some(pushed) = update.new.as_deref() else {
        let superseded = store.supersede_ref(repo_id, &update.ref_name)?;
        return Ok(Recorded::Deleted { superseded });
    };
    // The commit the ref now names (an annotated tag's, peeled): what runs.
    let commit = repo.resolve_commit(pushed)?;
    let new = commit.as_str();
    // The ref has moved on: whatever decides below, a run of its old tip no
    // longer speaks for it.
    let (message, author) = repo.message_and_author(new)?;
    let skip = match skip {
        Skip::PushOption => Some("the push option ci.skip"),
        Skip::AsTheMessageSays if skip_requested(&message) => {
            Some("[skip ci] in the commit message")
        }
        Skip::AsTheMessageSays | Skip::Never => None,
    };
    let file = match skip {
        Some(_) => None,
        None => repo.read_file(new, DEFAULT_FILE, limits.max_file_bytes())?,
    };
    let Some(file) = file else {
        let superseded = store.supersede_ref(repo_id, &update.ref_name)?;
        return Ok(match skip {
            Some(why) => Recorded::Skipped { why, superseded },
            None => Recorded::NoPipeline {
                superseded,
                // Only a hint: a tree that cannot say leaves it out.
                upstream_file: matches!(repo.read_file(new, UPSTREAM_FILE, 0), Ok(Some(_))),
            },
        });
    };
    let refused = match config_error {
        Some(_) => None,
        None => validate(&file, limits).err(),
    };
    let detail = refused.as_ref().map(|r| r.detail.clone());
    // Recorded and, if invalid, failed in one transaction: a hook killed
    // half-way leaves no run that a worker would pick up.
    let created = store.create_run(&NewRun {
        repo_id,
        ref_name: &update.ref_name,
        sha: new,
        pushed_at_ms: None,
        previous_sha: update.old.as_deref(),
        invalid: detail.as_deref(),
        config_invalid: config_error,
        subject: Some(subject(&message)),
        author: author.as_deref(),
        event: Some(event),
        retry_of: None,
    })?;
    let run = created.run.id;
    if let Some(error) = config_error {
        return Ok(Recorded::ConfigInvalid {
            run,
            error: error.to_string(),
        });
    }
    match refused {
        None => Ok(Recorded::Queued {
            run,
            superseded: created.superseded,
        }),
        Some(refused) => Ok(Recorded::Invalid {
            run,
            errors: refused.lines,
        }),
    }
}

/// A commit message's subject: its first line, at most 200 characters.
pub fn subject(message: &str) -> &str {
    let line = message.lines().next().unwrap_or("").trim_end();
    match line.char_indices().nth(200) {
        Some((end, _)) => &line[..end],
        None => line,
    }
}

/// Why a run's pipeline is refused, as the pusher and the run are told.
#[derive(Debug)]
pub struct Refusal {
    /// A line per problem listed, then one for those left out.
    pub lines: Vec<String>,
    /// The run's failure detail: the first problem, and how many more.
    pub detail: String,
}

impl Refusal {
    /// Problems that are all listed, one a line.
    pub fn listed(lines: Vec<String>) -> Refusal {
        let detail = invalid_detail(&lines, lines.len().saturating_sub(1));
        Refusal { lines, detail }
    }
}

/// Validate the pipeline file (refused unread when it was too large); the
/// problems as `FILE:LINE:COLUMN: ...`.
pub fn validate(file: &Blob, limits: &Limits) -> Result<Pipeline, Refusal> {
    let found = match file {
        Blob::TooLarge { size } => limits.too_large(*size),
        Blob::Read(bytes) => {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Err(Refusal::listed(vec![format!(
                    "{DEFAULT_FILE}: the file is not UTF-8 text"
                )]));
            };
            match Pipeline::parse_with(text, limits) {
                Ok(pipeline) => return Ok(pipeline),
                Err(found) => found,
            }
        }
    };
    let lines = describe(DEFAULT_FILE, &found);
    let detail = invalid_detail(&lines, found.total().saturating_sub(1));
    Err(Refusal { lines, detail })
}

/// One line for the run's failure_detail: the first problem, and how many
/// more there are.
fn invalid_detail(lines: &[String], more: usize) -> String {
    match (lines.first(), more) {
        (Some(first), 0) => first.clone(),
        (Some(first), more) => format!("{first} (and {more} more)"),
        (None, _) => format!("{DEFAULT_FILE} is invalid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_markers_are_found_in_any_case() {
        assert!(skip_requested("fix typo [skip ci]"));
        assert!(skip_requested("WIP\n\n[CI SKIP]"));
        assert!(skip_requested("[Skip CI] docs"));
        assert!(!skip_requested("skip ci"));
        assert!(!skip_requested("[skip-ci]"));
    }
}
