//! `quire-runs repos [--json]`: the repositories quire knows, whether git
//! would run quire's hook in each, and their runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use comfy_table::Cell;
use quire_store::repos::RepoSummary;
use quire_store::{HookState, RunState, Store};
use serde::Serialize;

use crate::runs::cli::ReposArgs;
use crate::runs::json;
use quire_view::text::{Output, printable, rfc3339};

use quire_worker::announce::NOTES_REF;
use quire_worker::git::{HOOK_MARK, PRE_RECEIVE_MARK, hidden_from_pushes, hooks_elsewhere};

/// What git would run on a push to the repository, as found on disk now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    /// quire's hook, for this home.
    Quire,
    /// quire's hook, for another home: runs are recorded there.
    OtherHome,
    /// A post-receive hook that is not quire's.
    Foreign,
    /// No post-receive hook (or it is not executable).
    Missing,
    /// The git directory is gone.
    NoRepository,
    /// Only a name is known, no path.
    Unknown,
}

impl Hook {
    fn text(self) -> &'static str {
        match self {
            Hook::Quire => "quire",
            Hook::OtherHome => "quire (another home)",
            Hook::Foreign => "not quire's",
            Hook::Missing => "missing",
            Hook::NoRepository => "repository gone",
            Hook::Unknown => "unknown",
        }
    }
}

/// What git runs on a push to one repository.
#[derive(Debug, Clone)]
struct Inspected {
    /// Its post-receive hook.
    hook: Hook,
    /// Where `core.hooksPath` sends git instead of `hooks/`, if it does.
    hooks_path: Option<PathBuf>,
    /// Whether git refuses a push of `refs/notes/ci`: hidden from pushes
    /// (`receive.hideRefs`, as `install` sets it), or refused by the
    /// pre-receive hook of an earlier install (true when there is no
    /// repository to look at).
    guarded: bool,
}

/// The hooks git runs for `git_dir`, and where `core.hooksPath` sends git
/// instead of `hooks/`, if it does.
fn inspect(git_dir: &Path, home: &Path) -> Inspected {
    let (hook, hooks_path) = post_receive(git_dir, home);
    let guarded = hook == Hook::NoRepository || hidden_from_pushes(git_dir, NOTES_REF) || {
        let dir = hooks_path.clone().unwrap_or_else(|| git_dir.join("hooks"));
        quire_pre_receive(&dir.join("pre-receive"))
    };
    Inspected {
        hook,
        hooks_path,
        guarded,
    }
}

/// Whether `path` is the pre-receive hook of an earlier install, executable.
fn quire_pre_receive(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::read_to_string(path).is_ok_and(|text| text.contains(PRE_RECEIVE_MARK))
        && std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// The post-receive hook git runs for `git_dir`, and where
/// `core.hooksPath` sends git instead of `hooks/`, if it does.
fn post_receive(git_dir: &Path, home: &Path) -> (Hook, Option<PathBuf>) {
    if !git_dir.join("HEAD").is_file() {
        return (Hook::NoRepository, None);
    }
    let hooks_path = hooks_elsewhere(git_dir);
    let dir = hooks_path.clone().unwrap_or_else(|| git_dir.join("hooks"));
    let hook = match std::fs::read_to_string(dir.join("post-receive")) {
        Err(_) => Hook::Missing,
        Ok(text) if !text.contains(HOOK_MARK) => Hook::Foreign,
        Ok(text) => {
            let home = home.to_string_lossy();
            if text.contains(&format!("--home {}", quire_view::text::sh_quoted(&home))) {
                Hook::Quire
            } else {
                Hook::OtherHome
            }
        }
    };
    let executable = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.join("post-receive"))
            .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
    };
    let hook = if hook != Hook::Missing && !executable {
        Hook::Missing
    } else {
        hook
    };
    (hook, hooks_path)
}

/// The fields of [`RepoJson`], in its order.
const REPO_FIELDS: &[&str] = &[
    "name",
    "path",
    "hook",
    "hooks_path",
    "warning",
    "hook_state",
    "installed_at",
    "installed_at_ms",
    "first_seen_at",
    "first_seen_at_ms",
    "former_names",
    "runs",
    "last_run",
    "last_state",
    "last_queued_at",
    "last_queued_at_ms",
];

#[derive(Debug, Serialize)]
struct RepoJson<'a> {
    name: &'a str,
    path: Option<&'a str>,
    hook: Hook,
    hooks_path: Option<String>,
    warning: Option<String>,
    hook_state: HookState,
    installed_at: Option<String>,
    installed_at_ms: Option<i64>,
    first_seen_at: String,
    first_seen_at_ms: i64,
    former_names: &'a [String],
    runs: i64,
    last_run: Option<&'a str>,
    last_state: Option<RunState>,
    last_queued_at: Option<String>,
    last_queued_at_ms: Option<i64>,
}

/// A warning worth a person's attention, if git would not run quire's
/// hooks.
fn warning(inspected: &Inspected) -> Option<String> {
    let hooks_path = inspected.hooks_path.as_deref();
    let via = hooks_path.map_or(String::new(), |p| {
        format!(" (core.hooksPath points git at {})", p.display())
    });
    let records = post_receive_warning(inspected.hook, hooks_path, &via);
    let unguarded = (!inspected.guarded).then(|| {
        "git lets a pusher write refs/notes/ci (quire's notes); `quire-run install` \
         hides it from pushes (receive.hideRefs)"
            .to_string()
    });
    match (records, unguarded) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

/// The warning about the post-receive hook, if git would not run quire's.
fn post_receive_warning(hook: Hook, hooks_path: Option<&Path>, via: &str) -> Option<String> {
    match hook {
        Hook::Quire => hooks_path.map(|p| {
            format!(
                "core.hooksPath points git at {}, which runs quire's hook",
                p.display()
            )
        }),
        Hook::OtherHome => Some(format!(
            "the hook records runs in another home{via}; `quire-run install --force` points it here"
        )),
        Hook::Foreign => Some(format!(
            "git runs a post-receive hook that is not quire's{via}, so pushes start no runs; \
             `quire-run install` keeps that hook and runs it before quire's"
        )),
        Hook::Missing => Some(format!(
            "git finds no executable post-receive hook{via}, so pushes start no runs"
        )),
        Hook::NoRepository => Some("the repository is gone".into()),
        Hook::Unknown => Some("known by name only, from old runs; a push adopts it".into()),
    }
}

pub fn run(store: &Store, args: &ReposArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let home = std::fs::canonicalize(store.home().dir())
        .unwrap_or_else(|_| store.home().dir().to_path_buf());
    let repos = store.repos()?;
    let inspected: Vec<Inspected> = repos
        .iter()
        .map(|s| match &s.repo.git_dir {
            Some(dir) => inspect(Path::new(dir), &home),
            None => Inspected {
                hook: Hook::Unknown,
                hooks_path: None,
                guarded: true,
            },
        })
        .collect();
    if args.json.wanted() {
        let objects: Vec<RepoJson<'_>> = repos
            .iter()
            .zip(&inspected)
            .map(|(s, i)| repo_json(s, i))
            .collect();
        return json::output(&objects, &args.json, REPO_FIELDS);
    }
    if repos.is_empty() {
        eprintln!("no repositories yet: `quire-run install REPO.git` adds one");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = out.table(&["REPO", "PATH", "HOOK", "RUNS", "LAST RUN"]);
    let mut warnings = Vec::new();
    for (s, i) in repos.iter().zip(&inspected) {
        let last = s.last_run.as_ref().map_or(String::new(), |(_, state, at)| {
            format!("{state}, {}", out.age(*at))
        });
        table.add_row(vec![
            Cell::new(printable(&s.repo.name)),
            Cell::new(printable(s.repo.git_dir.as_deref().unwrap_or("-"))),
            Cell::new(i.hook.text()),
            Cell::new(s.runs),
            Cell::new(last),
        ]);
        if let Some(w) = warning(i) {
            warnings.push(format!("warning: {}: {w}", printable(&s.repo.name)));
        }
    }
    let printed =
        crate::error::output::emit(&format!("{}\n", out.render(&mut table, &[3], &[(2, 5)])));
    for w in warnings {
        eprintln!("{w}");
    }
    printed?;
    Ok(ExitCode::SUCCESS)
}

fn repo_json<'a>(s: &'a RepoSummary, inspected: &Inspected) -> RepoJson<'a> {
    let last = s.last_run.as_ref();
    RepoJson {
        name: &s.repo.name,
        path: s.repo.git_dir.as_deref(),
        hook: inspected.hook,
        hooks_path: inspected
            .hooks_path
            .as_deref()
            .map(|p| p.display().to_string()),
        warning: warning(inspected),
        hook_state: s.repo.hook_state,
        installed_at: s.repo.installed_at_ms.map(rfc3339),
        installed_at_ms: s.repo.installed_at_ms,
        first_seen_at: rfc3339(s.repo.first_seen_at_ms),
        first_seen_at_ms: s.repo.first_seen_at_ms,
        former_names: &s.repo.former_names,
        runs: s.runs,
        last_run: last.map(|(id, _, _)| id.as_str()),
        last_state: last.map(|(_, state, _)| *state),
        last_queued_at: last.map(|(_, _, at)| rfc3339(*at)),
        last_queued_at_ms: last.map(|(_, _, at)| *at),
    }
}
