//! Step logs in the container runtime (CRI) line format:
//! `<RFC 3339 timestamp> <stdout|stderr> <F|P> <text>`, where `P` marks a
//! partial line (a chunk of a line longer than the limit, or an unterminated
//! last line). Output is streamed to disk; at most one line limit per
//! stream is held in memory.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static [u8] {
        match self {
            Stream::Stdout => b"stdout",
            Stream::Stderr => b"stderr",
        }
    }
}

pub(crate) struct CriLog {
    out: BufWriter<File>,
}

impl CriLog {
    pub(crate) fn create(path: &Path) -> io::Result<CriLog> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        Ok(CriLog {
            out: BufWriter::with_capacity(64 * 1024, file),
        })
    }

    /// More lines at the end of an existing log (quire's notes after a
    /// job's last step).
    pub(crate) fn append(path: &Path) -> io::Result<CriLog> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(CriLog {
            out: BufWriter::new(file),
        })
    }

    /// One log line, stamped now.
    pub(crate) fn line(&mut self, stream: Stream, full: bool, text: &[u8]) -> io::Result<()> {
        let stamp = format!("{:.9} ", jiff::Timestamp::now());
        self.out.write_all(stamp.as_bytes())?;
        self.out.write_all(stream.name())?;
        self.out.write_all(if full { b" F " } else { b" P " })?;
        self.out.write_all(text)?;
        self.out.write_all(b"\n")
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Replaces every occurrence of a secret's value with `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is replaced whole.
    secrets: Vec<Vec<u8>>,
}

impl Redactor {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut secrets: Vec<Vec<u8>> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(|v| v.as_bytes().to_vec())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// How many trailing bytes of an unfinished line must wait for more
    /// output: the start of a secret that the next read may complete.
    fn holdback(&self) -> usize {
        self.secrets.first().map_or(0, |s| s.len() - 1)
    }

    pub fn apply<'t>(&self, text: &'t [u8]) -> std::borrow::Cow<'t, [u8]> {
        let mut out = std::borrow::Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.windows(secret.len()).any(|w| w == secret.as_slice()) {
                let mut replaced = Vec::with_capacity(out.len());
                let mut rest: &[u8] = &out;
                while let Some(at) = rest
                    .windows(secret.len())
                    .position(|w| w == secret.as_slice())
                {
                    replaced.extend_from_slice(&rest[..at]);
                    replaced.extend_from_slice(b"***");
                    rest = &rest[at + secret.len()..];
                }
                replaced.extend_from_slice(rest);
                out = std::borrow::Cow::Owned(replaced);
            }
        }
        out
    }

    pub fn apply_str(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.apply(text.as_bytes())).into_owned()
    }
}

/// Cuts one stream's bytes into log lines of at most `max` bytes, with
/// secrets redacted, also where a secret straddles two reads or two chunks
/// of a long line.
pub(crate) struct Lines {
    stream: Stream,
    pending: Vec<u8>,
    max: usize,
    redactor: Redactor,
}

impl Lines {
    pub(crate) fn new(stream: Stream, max: usize, redactor: &Redactor) -> Lines {
        Lines {
            stream,
            pending: Vec::new(),
            max: max.max(1),
            redactor: redactor.clone(),
        }
    }

    pub(crate) fn feed(&mut self, mut data: &[u8], log: &mut CriLog) -> io::Result<()> {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let line = &data[..end];
                    if self.pending.is_empty() && line.len() <= self.max {
                        log.line(self.stream, true, &self.redactor.apply(line))?;
                    } else {
                        self.pending.extend_from_slice(line);
                        self.cut(log, 0)?;
                        log.line(self.stream, true, &self.pending)?;
                        self.pending.clear();
                    }
                    data = &data[end + 1..];
                }
                None => {
                    self.pending.extend_from_slice(data);
                    // Keep back the tail a secret may still be arriving in.
                    self.cut(log, self.redactor.holdback())?;
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// Redact the pending bytes, then write `max`-sized partial chunks of
    /// them while more than `max + keep` bytes remain.
    fn cut(&mut self, log: &mut CriLog, keep: usize) -> io::Result<()> {
        if let std::borrow::Cow::Owned(redacted) = self.redactor.apply(&self.pending) {
            self.pending = redacted;
        }
        let mut start = 0;
        while self.pending.len() - start > self.max + keep {
            log.line(self.stream, false, &self.pending[start..start + self.max])?;
            start += self.max;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// The stream ended: an unterminated last line is written as partial.
    pub(crate) fn finish(&mut self, log: &mut CriLog) -> io::Result<()> {
        self.cut(log, 0)?;
        if !self.pending.is_empty() {
            log.line(self.stream, false, &self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        render_redacted(max, &[], chunks)
    }

    fn render_redacted(max: usize, secrets: &[&str], chunks: &[&[u8]]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.log");
        let mut log = CriLog::create(&path).unwrap();
        let mut lines = Lines::new(Stream::Stdout, max, &Redactor::new(secrets.iter().copied()));
        for chunk in chunks {
            lines.feed(chunk, &mut log).unwrap();
        }
        lines.finish(&mut log).unwrap();
        log.flush().unwrap();
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut parts = l.splitn(2, ' ');
                let stamp = parts.next().unwrap();
                assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{stamp}");
                parts.next().unwrap().to_string()
            })
            .collect()
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        assert_eq!(
            render(100, &[b"hel", b"lo\nwor", b"ld\n"]),
            ["stdout F hello", "stdout F world"]
        );
    }

    #[test]
    fn long_and_unterminated_lines_become_partial_chunks() {
        assert_eq!(
            render(4, &[b"abcdefghij\nxy", b"z"]),
            [
                "stdout P abcd",
                "stdout P efgh",
                "stdout F ij",
                "stdout P xyz"
            ]
        );
        // A line of exactly the limit is one full line, however it arrives.
        assert_eq!(render(4, &[b"abcd", b"\n"]), ["stdout F abcd"]);
        assert_eq!(render(4, &[b"abcd\n"]), ["stdout F abcd"]);
        assert_eq!(render(4, &[b"\n\n"]), ["stdout F ", "stdout F "]);
    }

    #[test]
    fn secrets_are_redacted_across_reads_and_chunks() {
        let s = &["SECRET-VALUE"];
        assert_eq!(
            render_redacted(100, s, &[b"a SECRET-VALUE b\n"]),
            ["stdout F a *** b"]
        );
        assert_eq!(
            render_redacted(100, s, &[b"a SECR", b"ET-VALUE b\n"]),
            ["stdout F a *** b"]
        );
        // A long line cut into 8-byte chunks, the secret across a cut.
        let text =
            |lines: Vec<String>| lines.iter().map(|l| l[9..].to_string()).collect::<String>();
        let got = text(render_redacted(
            8,
            s,
            &[b"xxxxxxSECRET", b"-VALUEyyyyyyyyyy\n"],
        ));
        assert_eq!(got, "xxxxxx***yyyyyyyyyy");
        let got = text(render_redacted(8, s, &[b"xxxxxxSECRET", b"-VALUE"]));
        assert_eq!(got, "xxxxxx***");
        assert_eq!(
            Redactor::new(["SECRET-VALUE", "VALUE-LONGER-SECRET"]).apply_str("VALUE-LONGER-SECRET"),
            "***"
        );
    }
}
