//! Committed files that quire generates (the completion scripts in
//! completions/, the manual pages in docs/man/): they must be exactly what
//! the binaries generate today. They are product files, read by shells and
//! man, not snapshots, so they are compared whole here rather than with
//! `insta`, which keeps its own header in each `.snap` file; what quire
//! prints is snapshotted with `insta`.
//!
//! After changing the CLI: `QUIRE_BLESS=1 cargo test --test integration
//! generated` writes them again.

use std::path::Path;

const BLESS: &str = "run `QUIRE_BLESS=1 cargo test --test integration generated`";

/// Whether this run writes the generated files instead of checking them.
pub fn blessing() -> bool {
    std::env::var_os("QUIRE_BLESS").is_some()
}

/// The committed file at `path` holds exactly `generated`; under
/// `QUIRE_BLESS`, it is written so.
pub fn assert_generated(path: &Path, generated: &[u8]) {
    if blessing() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, generated).unwrap();
        return;
    }
    assert_committed(path, generated, "");
}

/// What a binary printed is the committed file at `path` (`what` says who
/// printed it); not looked at under `QUIRE_BLESS`, where the file is being
/// written again.
pub fn assert_committed(path: &Path, printed: &[u8], what: &str) {
    if blessing() {
        return;
    }
    let committed = std::fs::read(path).unwrap_or_default();
    assert!(
        committed == printed,
        "{} is stale{}: {BLESS}",
        path.display(),
        if what.is_empty() {
            String::new()
        } else {
            format!(" ({what} prints otherwise)")
        }
    );
}

/// A committed generated file that nothing generates any more; under
/// `QUIRE_BLESS`, it is removed.
pub fn assert_no_longer_generated(path: &Path) {
    if blessing() {
        std::fs::remove_file(path).unwrap();
    } else {
        panic!("{} is stale: {BLESS}", path.display());
    }
}
