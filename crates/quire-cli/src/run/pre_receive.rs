//! `quire-run pre-receive`: the pre-receive hook of earlier installs.
//! Refuses a push that would update, create or delete `refs/notes/ci`,
//! which only quire writes (`announce.rs`: each ended run's result as a
//! git note); accepts every other push. It reads git's lines and compares
//! each ref's name, nothing more: no home, no store, no object.
//!
//! `install` now hides the notes ref from pushes (`receive.hideRefs`: git
//! refuses it before any hook runs, and costs a push no process) and
//! removes the pre-receive hook it wrote before; the hook of a repository
//! not installed again since still runs this, when it runs a kept hook
//! first.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::CommandError;
use crate::run::hook::run_previous;
use quire_worker::announce::NOTES_REF;

/// What the pusher is told (as `remote: ...`) when the push is refused.
pub(crate) fn refusal() -> String {
    format!(
        "quire: {NOTES_REF} is written by quire (each run's result as a git note) and cannot be pushed; \
         push other refs (git refuses the whole push)"
    )
}

/// Whether one of git's `<old> <new> <ref>` lines is for the notes ref.
fn writes_notes(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.rsplit(|&b| b == b' ').next() == Some(NOTES_REF.as_bytes())
}

/// Read the push, run the pre-receive hook that was there before quire's
/// (`previous`, if any) with it, and refuse it if it writes the notes ref.
/// The previous hook's refusal is the push's (its status); quire's is 1.
pub(crate) fn main(previous: Option<&Path>) -> Result<(), CommandError> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|e| CommandError::input(format!("cannot read the pushed refs: {e}")))?;
    if let Some(hook) = previous {
        let status = run_previous(hook, &input);
        if status != 0 {
            return Err(CommandError::status(status));
        }
    }
    if input.split_inclusive(|&b| b == b'\n').any(writes_notes) {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{}", refusal());
        let _ = out.flush();
        return Err(CommandError::reported());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_notes_ref_itself_is_refused() {
        let zero = "0".repeat(40);
        let one = "1".repeat(40);
        assert!(writes_notes(
            format!("{zero} {one} refs/notes/ci\n").as_bytes()
        ));
        assert!(writes_notes(
            format!("{one} {zero} refs/notes/ci").as_bytes()
        ));
        for other in [
            "refs/notes/ci2",
            "refs/notes/commits",
            "refs/heads/refs/notes/ci",
            "refs/heads/main",
        ] {
            assert!(
                !writes_notes(format!("{zero} {one} {other}\n").as_bytes()),
                "{other}"
            );
        }
    }
}
