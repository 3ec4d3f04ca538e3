//! A kept artifact, served as it was kept: found by its recorded job and
//! path (never by a path the URL makes up), at the place `quire-runs
//! download` reads it from, opened below the run's `artifacts/` by
//! descriptors with no symbolic link followed (`Home::open_artifact`), and
//! sent with its recorded size; its SHA-256 is checked as it goes, and a file that no
//! longer matches is cut off (the download fails rather than delivering
//! other bytes).

use std::fs::File;
use std::io::Read as _;

use quire_model::Artifact;
use quire_store::Store;
use sha2::{Digest, Sha256};

/// What one read of the file sends at most.
const CHUNK: usize = 64 << 10;

/// An artifact to send: its record and the file.
pub struct Found {
    pub artifact: Artifact,
    pub file: File,
}

/// The artifact of `run` kept by `job` at `path`, opened; `None` when the
/// run kept none of that name, or its file is not where it should be.
pub fn find(store: &Store, run: &str, job: &str, path: &str) -> quire_store::Result<Option<Found>> {
    let Some(artifact) = store
        .artifacts(run)?
        .into_iter()
        .find(|a| a.job == job && a.path == path)
    else {
        return Ok(None);
    };
    // By descriptors below the run's artifacts, no link followed: bytes
    // go out before the hash is checked, so the file must be the one the
    // worker kept, not whatever a path resolves to by then.
    Ok(store
        .home()
        .open_artifact(run, &artifact)
        .ok()
        .map(|file| Found { artifact, file }))
}

/// The file's next chunk; an error once it ends other than as recorded
/// (longer, shorter, another hash).
pub fn next_chunk(
    found: &mut Found,
    sent: &mut u64,
    hash: &mut Sha256,
) -> Result<Option<Vec<u8>>, std::io::Error> {
    let mut buf = vec![0; CHUNK];
    let n = found.file.read(&mut buf)?;
    buf.truncate(n);
    *sent += n as u64;
    hash.update(&buf);
    let mismatch = || std::io::Error::other("the artifact's file no longer matches its record");
    if *sent > found.artifact.size {
        return Err(mismatch());
    }
    if n == 0 {
        let hex: String = std::mem::take(hash)
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if *sent != found.artifact.size || hex != found.artifact.sha256 {
            return Err(mismatch());
        }
        return Ok(None);
    }
    Ok(Some(buf))
}

/// `attachment` with the file's name: quoted plainly (every byte not a
/// printable ASCII character, and `"` and `\`, as `_`) and in full as
/// RFC 5987's `filename*`.
pub fn disposition(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let plain: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string();
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_safely() {
        assert_eq!(
            disposition("dist/app.tar.gz"),
            "attachment; filename=\"app.tar.gz\"; filename*=UTF-8''app%2Etar%2Egz"
        );
        assert_eq!(
            disposition("a\"b\\c\nd é"),
            "attachment; filename=\"a_b_c_d _\"; filename*=UTF-8''a%22b%5Cc%0Ad%20%C3%A9"
        );
    }
}
