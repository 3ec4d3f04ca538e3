//! Status badges: `/badge/<repo>/<branch>.svg`, the state of the branch's
//! newest run as a small SVG.

use quire_store::{Run, RunState, Store};

/// What a badge says and its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passing,
    Failing,
    Running,
    Queued,
    Superseded,
    NoRuns,
    Unknown,
}

impl Status {
    pub fn of(run: Option<&Run>) -> Status {
        match run.map(|r| r.state) {
            None => Status::NoRuns,
            Some(RunState::Complete) => Status::Passing,
            Some(RunState::Failed) => Status::Failing,
            Some(RunState::Active) => Status::Running,
            Some(RunState::Pending) => Status::Queued,
            Some(RunState::Superseded) => Status::Superseded,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Failing => "failing",
            Status::Running => "running",
            Status::Queued => "queued",
            Status::Superseded => "superseded",
            Status::NoRuns => "no runs",
            Status::Unknown => "unknown",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Status::Passing => "#2da44e",
            Status::Failing => "#cf222e",
            Status::Running => "#bf8700",
            Status::Queued => "#0969da",
            Status::Superseded | Status::NoRuns | Status::Unknown => "#6e7781",
        }
    }
}

/// The badge: `quire | passing`, flat, about 6.5 px a character.
pub fn svg(status: Status) -> String {
    let label = "quire";
    let message = status.text();
    let width = |text: &str| 10 + text.chars().count() as u32 * 13 / 2;
    let (left, right) = (width(label), width(message));
    let total = left + right;
    let colour = status.colour();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/><g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{rx}" y="14">{message}</text></g></svg>
"##,
        lx = left / 2,
        rx = left + right / 2,
    )
}

/// The repository and branch a badge path names (`team/app.git/feature/x`,
/// its `.svg` taken off), and the branch's newest run. Repository names and
/// branch names both may hold `/`: every split is tried against the known
/// repositories' names, the longest repository name first, and a split
/// whose branch has runs wins over one whose branch has none. `None` when
/// no known repository starts the path.
pub fn resolve(store: &Store, path: &str) -> quire_store::Result<Option<Option<Run>>> {
    let parts: Vec<&str> = path.split('/').collect();
    let mut found_repo = false;
    for split in (1..parts.len()).rev() {
        let (repo, branch) = (parts[..split].join("/"), parts[split..].join("/"));
        if branch.is_empty() {
            continue;
        }
        let repo = match store.resolve_repo_name(&repo) {
            Ok(repo) => repo,
            Err(quire_store::Error::UnknownRepo(_)) => continue,
            Err(e) => return Err(e),
        };
        found_repo = true;
        let newest = store.list_runs(&quire_store::query::ListFilter {
            repo_id: Some(repo.id),
            ref_names: vec![quire_model::refs::RefName::of_branch(&branch).to_string()],
            limit: 1,
            ..Default::default()
        })?;
        if let Some(run) = newest.into_iter().next() {
            return Ok(Some(Some(run)));
        }
    }
    Ok(found_repo.then_some(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_badge_is_an_svg_with_its_words() {
        let svg = svg(Status::Passing);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains(">passing</text>") && svg.contains("#2da44e"));
        assert!(!svg.contains("<script"));
    }
}
