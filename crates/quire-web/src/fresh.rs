//! Pages that follow the store while it changes: the runs list and the
//! repositories page (a run queued, started, ended), and a live run's page
//! (its jobs and steps, to the run's end).
//!
//! A page carries a stamp of what it showed; its event stream reads the
//! stamp again at the log stream's cadence and sends a `change` when it
//! differs, and the page's script then fetches the page again and swaps
//! its changing part in. A stamp is a hash of a few small reads, so a
//! stream costs a cheap query a poll, and nothing when no page is open.

use std::fmt::Write as _;

use quire_store::Store;
use quire_store::query::RunDetail;
use sha2::{Digest, Sha256};

/// What a stream follows.
#[derive(Debug, Clone)]
pub enum Watch {
    /// Every run: what the runs list and the repositories page show.
    Runs,
    /// One run, by its whole id.
    Run(String),
}

/// What a page showed, as a stamp; and whether it can change no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub text: String,
    pub done: bool,
}

/// The stamp of what `watch` follows now.
pub fn stamp(store: &Store, watch: &Watch) -> quire_store::Result<Stamp> {
    match watch {
        Watch::Runs => Ok(Stamp {
            text: hash(&store.runs_stamp()?),
            done: false,
        }),
        Watch::Run(id) => Ok(run_stamp(&store.run_detail(id)?)),
    }
}

/// The stamp of a run as `detail` shows it: a run page takes it from the
/// detail it shows, read once.
pub fn run_stamp(detail: &RunDetail) -> Stamp {
    let run = &detail.run;
    let mut seen = format!(
        "{} {:?} {:?} {:?}",
        run.state, run.started_at_ms, run.finished_at_ms, run.superseded_by
    );
    for job in &detail.jobs {
        let j = &job.job;
        let _ = write!(
            seen,
            "|{} {} {:?} {:?} {:?}",
            j.id, j.state, j.exit_code, j.waiting, j.skip_reason
        );
        for step in &job.steps {
            let _ = write!(seen, ",{}:{:?}", step.seq, step.exit_code);
        }
    }
    let _ = write!(
        seen,
        "|{} {}",
        detail.artifacts.len(),
        detail.notifications.len()
    );
    Stamp {
        text: hash(&seen),
        done: run.state.is_terminal(),
    }
}

/// The first 16 hex digits of the text's SHA-256: short, and only ever
/// compared.
fn hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..8]
        .iter()
        .fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Whether `text` is a stamp as [`stamp`] makes them (the `since` a page
/// gives, the `Last-Event-ID` a browser sends back).
pub fn is_stamp(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The script of a page that follows changes: opens the page's stream
/// (`data-changes` of its `#fresh` element) and, at each `change`, fetches
/// the page again as a document (parsed by the browser as data: no script
/// in it runs, and no HTML is built from text here) and puts its `#fresh`
/// in place of the page's; at `end` it stops.
pub const SCRIPT: &str = r##"(function () {
  var fresh = document.getElementById("fresh");
  var url = fresh && fresh.getAttribute("data-changes");
  if (!url || !window.EventSource) return;
  var busy = false, again = false;
  function swap() {
    if (busy) { again = true; return; }
    busy = true;
    var xhr = new XMLHttpRequest();
    xhr.open("GET", location.href.split("#")[0]);
    xhr.responseType = "document";
    xhr.onloadend = function () {
      var doc = xhr.status === 200 ? xhr.response : null;
      var next = doc && doc.getElementById("fresh");
      var now = document.getElementById("fresh");
      if (next && now) now.replaceWith(document.adoptNode(next));
      busy = false;
      if (again) { again = false; swap(); }
    };
    xhr.send();
  }
  var es = new EventSource(url);
  es.addEventListener("change", swap);
  es.addEventListener("end", function () { es.close(); });
})();
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_short_hex() {
        assert!(is_stamp(&hash("")));
        assert_ne!(hash("a"), hash("b"));
        assert!(!is_stamp("0123456789abcdeg"));
        assert!(!is_stamp("\n"));
    }
}
