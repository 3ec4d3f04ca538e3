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

/// Cuts one stream's bytes into log lines of at most `max` bytes.
pub(crate) struct Lines {
    stream: Stream,
    pending: Vec<u8>,
    max: usize,
}

impl Lines {
    pub(crate) fn new(stream: Stream, max: usize) -> Lines {
        Lines {
            stream,
            pending: Vec::new(),
            max: max.max(1),
        }
    }

    pub(crate) fn feed(&mut self, mut data: &[u8], log: &mut CriLog) -> io::Result<()> {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let line = &data[..end];
                    if self.pending.is_empty() && line.len() <= self.max {
                        log.line(self.stream, true, line)?;
                    } else {
                        self.pending.extend_from_slice(line);
                        self.spill(log)?;
                        log.line(self.stream, true, &self.pending)?;
                        self.pending.clear();
                    }
                    data = &data[end + 1..];
                }
                None => {
                    self.pending.extend_from_slice(data);
                    self.spill(log)?;
                    if self.pending.len() == self.max {
                        log.line(self.stream, false, &self.pending)?;
                        self.pending.clear();
                    }
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// Write full `max`-sized chunks of the pending bytes as partial lines,
    /// keeping the rest (at most `max`).
    fn spill(&mut self, log: &mut CriLog) -> io::Result<()> {
        if self.pending.len() <= self.max {
            return Ok(());
        }
        let mut start = 0;
        while self.pending.len() - start > self.max {
            log.line(self.stream, false, &self.pending[start..start + self.max])?;
            start += self.max;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// The stream ended: an unterminated last line is written as partial.
    pub(crate) fn finish(&mut self, log: &mut CriLog) -> io::Result<()> {
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.log");
        let mut log = CriLog::create(&path).unwrap();
        let mut lines = Lines::new(Stream::Stdout, max);
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
        assert_eq!(render(4, &[b"abcd", b"\n"]), ["stdout P abcd", "stdout F "]);
        assert_eq!(render(4, &[b"\n\n"]), ["stdout F ", "stdout F "]);
    }
}
