//! A step's log as quire writes it: CRI records,
//! `<RFC 3339 time> <stdout|stderr> <F|P> <text>\n`, one per line a step
//! printed, or `P` records continued by an `F` for a line longer than one
//! record. Read here once, for every reader (`quire-runs logs`, the last
//! lines `ci.wait` and `watch` show, the web's pages and live logs).

/// One record of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its time as written (RFC 3339); empty for a line that is not CRI.
    pub stamp: &'a [u8],
    /// It went to stderr.
    pub err: bool,
    /// A `P` record: the line goes on in the next record.
    pub partial: bool,
    pub text: &'a [u8],
}

impl<'a> Record<'a> {
    /// `line` (without its newline) as a record. A line that is not CRI is
    /// read as a whole stdout line with no time, shown as it is.
    pub fn parse(line: &'a [u8]) -> Record<'a> {
        let mut parts = line.splitn(4, |&b| b == b' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(stamp), Some(stream), Some(tag)) => Record {
                stamp,
                err: stream == b"stderr",
                partial: tag == b"P",
                text: parts.next().unwrap_or(b""),
            },
            _ => Record {
                stamp: b"",
                err: false,
                partial: false,
                text: line,
            },
        }
    }

    /// Whether it came from the stream a reader asked for (`None`: both).
    pub fn is_of(&self, stderr: Option<bool>) -> bool {
        stderr.is_none_or(|err| err == self.err)
    }
}

/// One line a step printed: its records joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// It went to stderr (as its first record says).
    pub err: bool,
    pub text: Vec<u8>,
    /// Where its last record ends, counted from the start of the bytes
    /// parsed (just past the newline, if there is one).
    pub end: usize,
}

/// How far [`lines`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Up to the last whole line (its `F` record): the step is still
    /// writing, and what follows may be continued.
    LastFull,
    /// Up to the last whole record, a line still open ended there (a line
    /// longer than one read).
    LastRecord,
    /// To the end: a line still open (its `P` records) and a last record
    /// without its newline are included.
    End,
}

/// The lines in `bytes` (which start at a record boundary), and how many
/// bytes they took.
pub fn lines(bytes: &[u8], until: Until) -> (Vec<Line>, usize) {
    let mut lines = Vec::new();
    let mut open: Option<Line> = None;
    let mut used = 0;
    let mut at = 0;
    while at < bytes.len() {
        let (record, next) = match bytes[at..].iter().position(|&b| b == b'\n') {
            Some(end) => (&bytes[at..at + end], at + end + 1),
            None if until == Until::End => (&bytes[at..], bytes.len()),
            None => break,
        };
        at = next;
        let record = Record::parse(record);
        let line = open.get_or_insert_with(|| Line {
            err: record.err,
            text: Vec::new(),
            end: 0,
        });
        line.text.extend_from_slice(record.text);
        line.end = at;
        if !record.partial {
            lines.extend(open.take());
            used = at;
        }
    }
    if until != Until::LastFull {
        lines.extend(open.take());
        used = at;
    }
    (lines, used)
}

/// The last `n` lines of `bytes`, the end of a log; `cut` when they start
/// in the middle of it (their first record is then incomplete and
/// dropped).
pub fn last_lines(bytes: &[u8], cut: bool, n: usize) -> Vec<Line> {
    let start = if cut {
        bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| i + 1)
    } else {
        0
    };
    let (mut all, _) = lines(&bytes[start..], Until::End);
    let skip = all.len().saturating_sub(n);
    all.split_off(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<(bool, String)> {
        lines
            .iter()
            .map(|l| (l.err, String::from_utf8_lossy(&l.text).into_owned()))
            .collect()
    }

    const LOG: &[u8] = b"t stdout F one\nt stderr P tw\nt stderr F o\nt stdout P thr";

    #[test]
    fn records_are_read_and_other_lines_kept_whole() {
        let r = Record::parse(b"2026-01-01T00:00:00Z stderr P a b c");
        assert_eq!(
            (r.stamp, r.err, r.partial, r.text),
            (&b"2026-01-01T00:00:00Z"[..], true, true, &b"a b c"[..])
        );
        let r = Record::parse(b"not-cri");
        assert_eq!(
            (r.stamp, r.err, r.partial, r.text),
            (&b""[..], false, false, &b"not-cri"[..])
        );
        assert!(r.is_of(None) && r.is_of(Some(false)) && !r.is_of(Some(true)));
    }

    #[test]
    fn whole_lines_only_while_the_step_writes_and_everything_after() {
        let (lines, used) = super::lines(LOG, Until::LastFull);
        assert_eq!(texts(&lines), [(false, "one".into()), (true, "two".into())]);
        assert_eq!(used, 42);
        assert_eq!(lines[1].end, 42);
        let (lines, used) = super::lines(LOG, Until::End);
        assert_eq!(texts(&lines).last(), Some(&(false, "thr".into())));
        assert_eq!(used, LOG.len());
        // A line longer than one read ends at the last whole record.
        let (lines, used) = super::lines(b"t stdout P a\nt stdout P b\n", Until::LastRecord);
        assert_eq!(texts(&lines), [(false, "ab".into())]);
        assert_eq!(used, 26);
        let (lines, _) = super::lines(b"no-spaces\n", Until::LastFull);
        assert_eq!(texts(&lines), [(false, "no-spaces".into())]);
    }

    #[test]
    fn the_last_lines_drop_a_cut_first_record() {
        assert_eq!(
            texts(&last_lines(LOG, false, 2)),
            [(true, "two".into()), (false, "thr".into())]
        );
        // Cut in the middle of the first record: it is dropped, not shown
        // as a line of its own.
        let cut = &LOG[5..];
        assert_eq!(
            texts(&last_lines(cut, true, 10)),
            [(true, "two".into()), (false, "thr".into())]
        );
    }
}
