//! Step logs in the container runtime (CRI) line format:
//! `<RFC 3339 timestamp> <stdout|stderr> <F|P> <text>`, where `P` marks a
//! partial line (a chunk of a line longer than the limit, or an unterminated
//! last line). Output is streamed to disk; at most one line limit per
//! stream is held in memory.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aho_corasick::{AhoCorasick, MatchKind};

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
    /// The step's output stops being written once the log holds this many
    /// bytes (`max_log_mb`); quire's own notes are always written.
    cap: u64,
    /// Bytes of the current step written so far (what the cap counts).
    written: u64,
    /// Bytes in the log: where the next line begins.
    at: u64,
    /// Output that came after the cap: counted, not written.
    dropped: Option<Dropped>,
}

/// What a step printed after its log reached its cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// Bytes of output, newlines included.
    pub(crate) bytes: u64,
    /// Newlines among them: whole lines, or the ends of lines begun before.
    pub(crate) lines: u64,
}

impl CriLog {
    /// A new log, without a cap.
    pub(crate) fn create(path: &Path) -> io::Result<CriLog> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        Ok(CriLog::over(file))
    }

    fn over(file: File) -> CriLog {
        CriLog {
            out: BufWriter::with_capacity(64 * 1024, file),
            cap: u64::MAX,
            written: 0,
            at: 0,
            dropped: None,
        }
    }

    /// The same log, writing the step's output only until it holds `cap`
    /// bytes; the rest is counted ([`CriLog::dropped`]).
    pub(crate) fn capped(mut self, cap: u64) -> CriLog {
        self.cap = cap;
        self
    }

    /// The next step's lines begin here: the cap counts from here, and
    /// the offset in the log where they begin (a job's steps write one
    /// log, each from where it began to where the next one begins).
    pub(crate) fn begin_step(&mut self) -> u64 {
        self.written = 0;
        self.dropped = None;
        self.at
    }

    /// More lines at the end of an existing log (quire's notes after a
    /// job's last step).
    pub(crate) fn append(path: &Path) -> io::Result<CriLog> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(CriLog::over(file))
    }

    /// One line of the step's output, stamped now; dropped (and counted)
    /// once the log has reached its cap.
    pub(crate) fn line(&mut self, stream: Stream, full: bool, text: &[u8]) -> io::Result<()> {
        if self.dropped.is_none() {
            let stamp = format!("{:.9} ", jiff::Timestamp::now());
            let size = (stamp.len() + stream.name().len() + 3 + text.len() + 1) as u64;
            if self.written.saturating_add(size) <= self.cap {
                return self.write(&stamp, stream, full, text);
            }
        }
        let dropped = self.dropped.get_or_insert_with(Dropped::default);
        dropped.bytes += text.len() as u64 + u64::from(full);
        dropped.lines += u64::from(full);
        Ok(())
    }

    /// A line of quire's own (stderr, full), written whatever the cap.
    pub(crate) fn note(&mut self, text: &[u8]) -> io::Result<()> {
        let stamp = format!("{:.9} ", jiff::Timestamp::now());
        self.write(&stamp, Stream::Stderr, true, text)
    }

    fn write(&mut self, stamp: &str, stream: Stream, full: bool, text: &[u8]) -> io::Result<()> {
        self.out.write_all(stamp.as_bytes())?;
        self.out.write_all(stream.name())?;
        self.out.write_all(if full { b" F " } else { b" P " })?;
        self.out.write_all(text)?;
        self.out.write_all(b"\n")?;
        let size = (stamp.len() + stream.name().len() + 3 + text.len() + 1) as u64;
        self.written += size;
        self.at += size;
        Ok(())
    }

    /// Whether the step's output is past the cap, so is only counted.
    pub(crate) fn is_full(&self) -> bool {
        self.dropped.is_some()
    }

    /// Count raw output that comes after the cap, without cutting it into
    /// lines or redacting it.
    fn drop_output(&mut self, data: &[u8]) {
        let dropped = self.dropped.get_or_insert_with(Dropped::default);
        dropped.bytes += data.len() as u64;
        dropped.lines += data.iter().filter(|&&b| b == b'\n').count() as u64;
    }

    /// The line that ends a capped log: how much was not logged.
    pub(crate) fn dropped_note(&self) -> Option<String> {
        let dropped = self.dropped?;
        const MIB: u64 = 1024 * 1024;
        let cap = if self.cap.is_multiple_of(MIB) {
            format!("{} MiB", self.cap / MIB)
        } else {
            format!("{} bytes", self.cap)
        };
        Some(format!(
            "quire: log: capped at {cap} (max_log_mb); the {} bytes ({} lines) of output after that were not logged",
            dropped.bytes, dropped.lines
        ))
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The shortest secret quire accepts, and the shortest line of a
/// multi-line secret redacted on its own: anything shorter would be found
/// by chance in ordinary output.
pub const MIN_SECRET_LEN: usize = 8;

/// Replaces every occurrence of a secret's value with `***`: each value
/// whole, and each line of a multi-line value (an SSH key read from a file)
/// that is at least [`MIN_SECRET_LEN`] bytes long on its own, since a log
/// holds output a line at a time. Occurrences that overlap are replaced as
/// one.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// What is looked for.
    patterns: Vec<Vec<u8>>,
    /// All of them at once; None when there are none (or, for lack of
    /// memory, the automaton could not be built: each is then searched
    /// for in turn).
    matcher: Option<AhoCorasick>,
    /// The longest pattern without a newline: the most of a secret one log
    /// line can hold.
    longest_in_line: usize,
}

impl Redactor {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            patterns.push(value.as_bytes().to_vec());
            if value.contains('\n') {
                patterns.extend(
                    value
                        .split('\n')
                        .map(|line| line.strip_suffix('\r').unwrap_or(line))
                        .filter(|line| line.len() >= MIN_SECRET_LEN)
                        .map(|line| line.as_bytes().to_vec()),
                );
            }
        }
        patterns.sort();
        patterns.dedup();
        let longest_in_line = patterns
            .iter()
            .filter(|p| !p.contains(&b'\n'))
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        let matcher = if patterns.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(&patterns)
                .ok()
        };
        Redactor {
            patterns,
            matcher,
            longest_in_line,
        }
    }

    /// How many trailing bytes of an unfinished line must wait for more
    /// output: the start of a secret that the next read may complete.
    fn holdback(&self) -> usize {
        self.longest_in_line.saturating_sub(1)
    }

    /// Where secrets occur in `text`, overlapping ones merged, in order.
    fn spans(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        if self.patterns.is_empty() {
            return spans;
        }
        match self
            .matcher
            .as_ref()
            .and_then(|m| m.try_find_overlapping_iter(text).ok())
        {
            Some(found) => spans.extend(found.map(|m| (m.start(), m.end()))),
            None => {
                for pattern in &self.patterns {
                    spans.extend(
                        text.windows(pattern.len())
                            .enumerate()
                            .filter(|(_, w)| *w == pattern.as_slice())
                            .map(|(at, _)| (at, at + pattern.len())),
                    );
                }
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    pub fn apply<'t>(&self, text: &'t [u8]) -> Cow<'t, [u8]> {
        let spans = self.spans(text);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = Vec::with_capacity(text.len());
        let mut from = 0;
        for (start, end) in spans {
            out.extend_from_slice(&text[from..start]);
            out.extend_from_slice(b"***");
            from = end;
        }
        out.extend_from_slice(&text[from..]);
        Cow::Owned(out)
    }

    pub fn apply_str(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.apply(text.as_bytes())).into_owned()
    }
}

/// Cuts one stream's bytes into log lines of at most `max` bytes, with
/// secrets redacted, also where a secret straddles two reads or two chunks
/// of a long line. Once the log is full, output is only counted.
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
            if log.is_full() {
                log.drop_output(&self.pending);
                self.pending.clear();
                log.drop_output(data);
                return Ok(());
            }
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
        if let Cow::Owned(redacted) = self.redactor.apply(&self.pending) {
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
        if log.is_full() {
            log.drop_output(&self.pending);
            self.pending.clear();
            return Ok(());
        }
        self.cut(log, 0)?;
        if !self.pending.is_empty() {
            log.line(self.stream, false, &self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// One line of quire's own in a job's log, as [`CriLog`] writes a note
/// (for a node that reports a failure before the job's log exists).
pub fn note_line(text: &str) -> String {
    format!("{:.9} stderr F {text}\n", jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        render_redacted(max, &[], chunks)
    }

    fn render_redacted(max: usize, secrets: &[&str], chunks: &[&[u8]]) -> Vec<String> {
        render_capped(max, u64::MAX, secrets, chunks)
    }

    /// The log's lines without their stamps, the step's output fed in
    /// `chunks` as reads of its pipe would bring it, the dropped-output
    /// note last if the log reached `cap`.
    fn render_capped(max: usize, cap: u64, secrets: &[&str], chunks: &[&[u8]]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.log");
        let mut log = CriLog::create(&path).unwrap().capped(cap);
        let mut lines = Lines::new(Stream::Stdout, max, &Redactor::new(secrets.iter().copied()));
        for chunk in chunks {
            lines.feed(chunk, &mut log).unwrap();
        }
        lines.finish(&mut log).unwrap();
        if let Some(note) = log.dropped_note() {
            log.note(note.as_bytes()).unwrap();
        }
        log.flush().unwrap();
        String::from_utf8_lossy(&std::fs::read(&path).unwrap())
            .lines()
            .map(|l| {
                let mut parts = l.splitn(2, ' ');
                let stamp = parts.next().unwrap();
                assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{stamp}");
                parts.next().unwrap().to_string()
            })
            .collect()
    }

    /// The output a log holds, lines joined again: `F` lines end with a
    /// newline, `P` chunks run on.
    fn joined(lines: &[String]) -> String {
        lines
            .iter()
            .map(|l| match l.strip_prefix("stdout F ") {
                Some(text) => format!("{text}\n"),
                None => l.strip_prefix("stdout P ").unwrap_or("").to_string(),
            })
            .collect()
    }

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\r\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9u\nshort\n\nQyNTUxOQAAACBdeadbeefdeadbeefdeadbeef==\n-----END OPENSSH PRIVATE KEY-----";

    /// The lines of `KEY` a log must never show: each of at least 8 bytes.
    fn key_lines() -> Vec<&'static str> {
        KEY.split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| l.len() >= MIN_SECRET_LEN)
            .collect()
    }

    #[test]
    fn a_multi_line_secret_is_redacted_line_by_line_however_the_reads_fall() {
        // As `cat key` prints it, between two lines of other output.
        let output = format!("before\n{KEY}\nafter\n");
        let bytes = output.as_bytes();
        let expect = [
            "stdout F before",
            // "***\r": the key's CRLF keeps its '\r' (which `lines` drops).
            "stdout F ***",
            "stdout F ***",
            "stdout F short",
            "stdout F ",
            "stdout F ***",
            "stdout F ***",
            "stdout F after",
        ];
        assert_eq!(render_redacted(100, &[KEY], &[bytes]), expect);
        // Cut into two reads at every byte, and into three around each line.
        for cut in 0..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(
                render_redacted(100, &[KEY], &[a, b]),
                expect,
                "cut at {cut}"
            );
            let (b, c) = b.split_at(b.len().min(7));
            assert_eq!(
                render_redacted(100, &[KEY], &[a, b, c]),
                expect,
                "cut at {cut}"
            );
        }
        // Printed as one line (its newlines removed), in 16-byte chunks.
        let flat: String = KEY.split('\n').collect();
        let text = joined(&render_redacted(16, &[KEY], &[flat.as_bytes()]));
        for line in key_lines() {
            assert!(!text.contains(line), "{line:?} in {text:?}");
        }
        // Whole, in a recorded command.
        let redactor = Redactor::new([KEY]);
        assert_eq!(redactor.apply_str(&format!("echo '{KEY}'")), "echo '***'");
        // A short line of it alone is left: it would match ordinary output.
        assert_eq!(redactor.apply_str("short"), "short");
    }

    #[test]
    fn overlapping_secrets_are_redacted_as_one() {
        let redactor = Redactor::new(["abcdefgh12", "12345678xy"]);
        assert_eq!(redactor.apply_str("<abcdefgh12345678xy>"), "<***>");
        assert_eq!(redactor.apply_str("abcdefgh12abcdefgh12"), "******");
        let repeated = Redactor::new(["abababab"]);
        assert_eq!(repeated.apply_str("ababababab!"), "***!");
    }

    proptest::proptest! {
        /// However the output is cut into reads, and however long its
        /// lines, no line of a secret of at least 8 bytes reaches the log;
        /// without secrets, the log holds the output exactly.
        #[test]
        fn no_secret_line_survives_any_split_of_the_output(
            secret_lines in proptest::collection::vec("[a-z0-9+/=]{8,20}", 1..4),
            filler in proptest::collection::vec("[a-z0-9 +/=\n]{0,30}", 1..5),
            cuts in proptest::collection::vec(0usize..400, 0..6),
            max in 4usize..40,
        ) {
            let secret = secret_lines.join("\n");
            let mut output = String::new();
            for (i, text) in filler.iter().enumerate() {
                output.push_str(text);
                if i % 2 == 0 {
                    output.push_str(&secret);
                }
            }
            let bytes = output.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                chunks.push(&bytes[from..cut]);
                from = cut;
            }
            let text = joined(&render_redacted(max, &[&secret], &chunks));
            for line in &secret_lines {
                proptest::prop_assert!(!text.contains(line.as_str()), "{:?} in {:?}", line, text);
            }
            let plain = joined(&render_redacted(max, &[], &chunks));
            proptest::prop_assert_eq!(plain, output);
        }
    }

    #[test]
    fn a_log_past_its_cap_counts_what_it_drops_and_says_so_once() {
        // 100 lines of 10 bytes (and a newline); each log line of them is
        // a stamp (31 bytes), "stdout F " (9) and the text: 51 bytes.
        let output: String = (0..100).map(|i| format!("line {i:05}\n")).collect();
        let lines = render_capped(100, 51 * 10, &[], &[output.as_bytes()]);
        assert_eq!(lines.len(), 11, "{lines:?}");
        assert_eq!(lines[9], "stdout F line 00009");
        assert_eq!(
            lines[10],
            "stderr F quire: log: capped at 510 bytes (max_log_mb); the 990 bytes (90 lines) of output after that were not logged"
        );
        // However the output arrives, what is logged and what is counted
        // add up to what was printed.
        let bytes = output.as_bytes();
        for cut in [1, 7, 511, 600, 1099] {
            let (a, b) = bytes.split_at(cut);
            let lines = render_capped(4, 51 * 10 + 20, &[], &[a, b, b"tail"]);
            let note = lines.last().unwrap();
            let logged = joined(&lines[..lines.len() - 1]);
            let dropped: usize = note
                .split("the ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                logged.len() + dropped,
                bytes.len() + 4,
                "cut at {cut}: {note}"
            );
            assert!(output.starts_with(&logged), "cut at {cut}");
        }
        // Under the cap, no note.
        let lines = render_capped(100, 51 * 100, &[], &[output.as_bytes()]);
        assert_eq!(lines.len(), 100);
        assert_eq!(
            CriLog::over(tempfile::tempfile().unwrap()).dropped_note(),
            None
        );
        let mib = CriLog::over(tempfile::tempfile().unwrap()).capped(3 << 20);
        assert_eq!(mib.cap, 3 << 20);
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
