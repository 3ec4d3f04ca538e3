//! Rendering for people: times, durations, states, tables.

use jiff::SignedDuration;
use jiff::fmt::friendly::{Designator, FractionalUnit, Spacing, SpanPrinter};
use std::io::IsTerminal;

use comfy_table::{Cell, Color, ColumnConstraint, ContentArrangement, Row, Table, Width, presets};
use quire_store::{JobState, RunState};

/// How output goes to stdout: colored only on a terminal without NO_COLOR.
pub struct Output {
    pub color: bool,
    pub now_ms: i64,
    /// Whether `now_ms` was pinned by `QUIRE_NOW`.
    pub frozen: bool,
    /// The columns every line must fit in: `$COLUMNS` when set, else the
    /// terminal's width when stdout is one. None otherwise (a pipe, a
    /// file): lines are as long as what they say, so that scripts and
    /// snapshots see the same text whatever terminal ran them.
    pub width: Option<usize>,
}

/// The width lines must fit in: `$COLUMNS` (a number above 0) when set,
/// else the width of the terminal stdout is (TIOCGWINSZ), else none.
pub fn terminal_width() -> Option<usize> {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    columns.or_else(|| {
        let stdout = std::io::stdout();
        if !stdout.is_terminal() {
            return None;
        }
        rustix::termios::tcgetwinsize(stdout)
            .ok()
            .map(|size| usize::from(size.ws_col))
            .filter(|&cols| cols > 0)
    })
}

/// `text` in at most `width` characters: cut, ending in `…`, when longer.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl Output {
    /// `QUIRE_NOW` (an RFC 3339 instant) freezes "now" for ages and
    /// durations, so snapshot tests and reproducible reports can pin it.
    pub fn detect() -> Output {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let frozen = quire_model::clock::frozen_now_ms();
        Output {
            color: std::io::stdout().is_terminal() && !no_color,
            now_ms: frozen.unwrap_or_else(quire_model::clock::now_ms),
            frozen: frozen.is_some(),
            width: terminal_width(),
        }
    }

    /// A line of text as it fits the width: cut with `…` when there is a
    /// width and it is longer.
    pub fn fit(&self, line: &str) -> String {
        match self.width {
            Some(width) => cut(line, width),
            None => line.to_string(),
        }
    }

    /// Hide these columns of `table`: on a narrow terminal, the least
    /// useful ones go, so that the rest need not be cut as much.
    pub fn hide(&self, table: &mut Table, columns: &[usize]) {
        for &at in columns {
            if let Some(column) = table.column_mut(at) {
                column.set_constraint(ColumnConstraint::Hidden);
            }
        }
    }

    /// Whether lines must fit in fewer than `columns` columns.
    pub fn narrower_than(&self, columns: usize) -> bool {
        self.width.is_some_and(|w| w < columns)
    }

    /// A table's text: with a width, comfy-table arranges its columns to
    /// fit it (the widest shrink first) and cuts each cell to one line,
    /// ending in `…`, instead of wrapping it; a column in `keep` is as
    /// wide as its content, one in `at_least` never narrower than given.
    /// Without a width, every cell as it is.
    pub fn render(&self, table: &mut Table, keep: &[usize], at_least: &[(usize, u16)]) -> String {
        if let Some(width) = self.width {
            table
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(u16::try_from(width).unwrap_or(u16::MAX))
                .set_truncation_indicator("…")
                // No character of printed text: a cell is cut where the
                // column ends, not at its last space, and keeps its
                // indentation.
                .set_delimiter('\0');
            for (at, column) in table.column_iter_mut().enumerate() {
                if column.is_hidden() {
                    continue;
                }
                if keep.contains(&at) {
                    column.set_constraint(ColumnConstraint::ContentWidth);
                } else if let Some((_, min)) = at_least.iter().find(|(a, _)| *a == at) {
                    // comfy-table's bound counts the column's padding.
                    let min = min.saturating_add(column.padding_width());
                    column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(min)));
                }
            }
            if let Some(header) = table.header() {
                let mut header = header.clone();
                one_line(&mut header);
                table.set_header(header);
            }
            for row in table.row_iter_mut() {
                one_line(row);
            }
        }
        table.trim_fmt()
    }

    /// Now, for a command that keeps running (`watch`): the clock as it
    /// moves on, unless `QUIRE_NOW` pinned it.
    pub fn live_now_ms(&self) -> i64 {
        if self.frozen {
            self.now_ms
        } else {
            quire_model::clock::now_ms()
        }
    }

    /// A borderless table with a header row.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        table
            .load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(header.iter().map(Cell::new));
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        if !self.color {
            table.force_no_tty();
        }
        table
    }

    pub fn run_state(&self, state: RunState, detail: String) -> Cell {
        let color = match state {
            RunState::Pending => Color::Grey,
            RunState::Active => Color::Yellow,
            RunState::Complete => Color::Green,
            RunState::Failed => Color::Red,
            RunState::Superseded => Color::DarkGrey,
        };
        self.colored(detail, color)
    }

    pub fn job_state(&self, state: JobState) -> Cell {
        let color = match state {
            JobState::Pending => Color::Grey,
            JobState::Active => Color::Yellow,
            JobState::Complete => Color::Green,
            JobState::Failed | JobState::Aborted => Color::Red,
            JobState::Skipped => Color::DarkGrey,
        };
        self.colored(state.to_string(), color)
    }

    /// A failed job whose failure the pipeline allowed (`allow_failure`):
    /// `failed (allowed)`, in its own color (magenta), neither the red of a
    /// failure that counts nor the green of a pass.
    pub fn allowed_failure(&self) -> Cell {
        self.colored(ALLOWED_FAILURE.to_string(), Color::Magenta)
    }

    fn colored(&self, text: String, color: Color) -> Cell {
        let cell = Cell::new(text);
        if self.color { cell.fg(color) } else { cell }
    }

    /// "3m ago", relative to now.
    pub fn age(&self, at_ms: i64) -> String {
        let secs = (self.now_ms - at_ms).max(0) / 1000;
        match secs {
            0..=59 => format!("{secs}s ago"),
            60..=3599 => format!("{}m ago", secs / 60),
            3600..=86_399 => format!("{}h ago", secs / 3600),
            _ => format!("{}d ago", secs / 86_400),
        }
    }
}

/// How a failed job whose failure the pipeline allowed is shown.
pub const ALLOWED_FAILURE: &str = "failed (allowed)";

/// A job's state in words: `failed (allowed)` for a failure its pipeline
/// allowed (`allow_failure = true`), else the state.
pub fn job_state_text(state: JobState, allow_failure: Option<bool>) -> String {
    match (state, allow_failure) {
        (JobState::Failed, Some(true)) => ALLOWED_FAILURE.to_string(),
        _ => state.to_string(),
    }
}

/// A row kept to one line: what does not fit is cut, not wrapped.
fn one_line(row: &mut Row) {
    row.max_height(1);
}

/// An RFC 3339 UTC timestamp with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => format!("(invalid time {ms} ms)"),
    }
}

/// How long something took, to the precision a person wants at a glance:
/// "1h 2m", "3m 4s", "5.2s", "830ms".
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let secs = ms / 1000;
    let printer = SpanPrinter::new();
    if ms == 0 {
        // jiff writes zero in seconds; a step that took no time took 0ms.
        "0ms".to_string()
    } else if ms < 1000 {
        printer.duration_to_string(&SignedDuration::from_millis(ms))
    } else if secs < 60 {
        let tenths = SignedDuration::from_millis(ms - ms % 100);
        printer
            .fractional(Some(FractionalUnit::Second))
            .precision(Some(1))
            .duration_to_string(&tenths)
    } else if secs < 3600 {
        printer.duration_to_string(&SignedDuration::from_secs(secs))
    } else {
        printer.duration_to_string(&SignedDuration::from_secs(secs - secs % 60))
    }
}

/// A span as a timeout is written in a pipeline: "20m", "1h30m", "90s".
pub fn span(span: std::time::Duration) -> String {
    let printer = SpanPrinter::new()
        .designator(Designator::Compact)
        .spacing(Spacing::None);
    match SignedDuration::try_from(span) {
        Ok(d) if d.as_secs() > 0 => {
            printer.duration_to_string(&SignedDuration::from_secs(d.as_secs()))
        }
        Ok(d) => printer.duration_to_string(&d),
        Err(_) => format!("{}s", span.as_secs()),
    }
}

/// Shell words, quoted by quire-model's one rule.
pub use quire_model::shell::{sh_quoted, sh_word};

/// A size for people: `812 B`, `1.5 KiB`, `3.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Text on one line: runs of white space (newlines too) become one space.
pub fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text a pipeline controls (job ids, commands, log lines, ref names), safe
/// to print on a terminal: every control character (newlines, tabs, escape
/// sequences, C1 controls, DEL) is written as an escape (`\n`, `\t`,
/// `\x1b`, `\u{9b}`), as are the Unicode marks that reorder what follows
/// them (bidirectional overrides and isolates), so that nothing printed
/// can move the cursor, recolour, retitle or hide text. Backslashes stay as
/// they are: commands and logs are full of them.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || reorders(c);
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || reorders(c) => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// What [`terminal_safe`] does with colours and text attributes
/// (`ESC [ ... m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colours {
    /// Pass them: the bytes go to a terminal (`quire-runs logs`).
    Keep,
    /// Leave them out: the bytes are read as plain text (the web view's
    /// raw log), where they would only be noise.
    Drop,
}

/// A log line's bytes, safe for a terminal or as plain text: colours and
/// text attributes (`ESC [ ... m`) pass or are left out, as `colours`
/// says, and tabs pass; every other control character (other escape
/// sequences, carriage returns, C1 controls) and the marks that reorder
/// text (bidirectional overrides and isolates) are written as escapes
/// (`\x1b`, `\u{202e}`). Bytes that are not UTF-8 pass as they are.
pub fn terminal_safe(bytes: &[u8], colours: Colours) -> std::borrow::Cow<'_, [u8]> {
    let risky = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f || b == 0xc2 || b == 0xe2;
    if !bytes.iter().any(|&b| risky(b)) {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == 0x1b {
            // ESC [ digits and ';' m: a colour or attribute.
            let params = bytes[i + 1..].strip_prefix(b"[").map(|rest| {
                rest.iter()
                    .take_while(|c| c.is_ascii_digit() || **c == b';')
                    .count()
            });
            if let Some(n) = params
                && bytes.get(i + 2 + n) == Some(&b'm')
            {
                if colours == Colours::Keep {
                    out.extend_from_slice(&bytes[i..i + 3 + n]);
                }
                i += 3 + n;
                continue;
            }
        }
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            i += 1;
            continue;
        }
        // C1 controls (U+0080..U+009F) and the reordering marks
        // (U+202A..U+202E, U+2066..U+2069), as UTF-8.
        let c1 = b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n));
        let bidi = b == 0xe2
            && match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(0x80), Some(n)) => (0xaa..=0xae).contains(n),
                (Some(0x81), Some(n)) => (0xa6..=0xa9).contains(n),
                _ => false,
            };
        if c1 || bidi {
            let len = if c1 { 2 } else { 3 };
            let c = std::str::from_utf8(&bytes[i..i + len])
                .ok()
                .and_then(|s| s.chars().next())
                .map_or(0, |c| c as u32);
            out.extend_from_slice(format!("\\u{{{c:x}}}").as_bytes());
            i += len;
            continue;
        }
        out.push(b);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// Unicode's explicit bidirectional formatting characters (embeddings,
/// overrides, isolates and marks): they reorder the text around them.
fn reorders(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}')
}

/// `main` for refs/heads/main, `tag v1.0` for refs/tags/v1.0.
pub fn short_ref(ref_name: &str) -> String {
    let name = quire_model::refs::RefName::new(ref_name);
    match name.tag() {
        Some(tag) => format!("tag {tag}"),
        None => name.short().to_string(),
    }
}

/// On stderr, which run a command without RUN took: `run ID (REPO REF)`.
/// A stderr that is gone stops nothing (the command's output may still be
/// read).
pub fn note_newest(run: &quire_store::Run) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "run {} ({} {})",
        run.id,
        printable(&run.repo),
        printable(&short_ref(&run.ref_name))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_pass_or_go_and_every_other_control_is_escaped() {
        let line = b"\x1b[1;31mred\x1b[0m\tok\x1b]0;pwned\x07\x1b[2J\rX\xc2\x9bY\xe2\x80\xaeZ\xff";
        assert_eq!(
            String::from_utf8_lossy(&terminal_safe(line, Colours::Keep)),
            "\x1b[1;31mred\x1b[0m\tok\\x1b]0;pwned\\x07\\x1b[2J\\x0dX\\u{9b}Y\\u{202e}Z\u{fffd}"
        );
        assert_eq!(
            String::from_utf8_lossy(&terminal_safe(line, Colours::Drop)),
            "red\tok\\x1b]0;pwned\\x07\\x1b[2J\\x0dX\\u{9b}Y\\u{202e}Z\u{fffd}"
        );
        assert!(matches!(
            terminal_safe(b"plain text", Colours::Drop),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(830), "830ms");
        assert_eq!(duration(5_249), "5.2s");
        assert_eq!(duration(184_000), "3m 4s");
        assert_eq!(duration(3_720_000), "1h 2m");
        assert_eq!(duration(3_725_999), "1h 2m");
        assert_eq!(duration(60_000), "1m");
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(1_000), "1.0s");
        assert_eq!(span(std::time::Duration::from_secs(5400)), "1h30m");
        assert_eq!(span(std::time::Duration::from_secs(90)), "1m30s");
        assert_eq!(span(std::time::Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_764_373_440_123), "2025-11-28T23:44:00.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn hostile_text_is_printed_escaped() {
        assert_eq!(printable("cargo test --all"), "cargo test --all");
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            printable("a\x1b[2J\x1b]0;owned\x07b"),
            "a\\x1b[2J\\x1b]0;owned\\x07b"
        );
        assert_eq!(printable("one\ntwo\r\tthree"), "one\\ntwo\\r\\tthree");
        assert_eq!(printable("\u{9b}31m \u{7f}"), "\\u{9b}31m \\x7f");
        assert_eq!(printable("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(printable(r"sed 's/\./x/'"), r"sed 's/\./x/'");
        assert_eq!(printable("日本語 ✓"), "日本語 ✓");
    }

    #[test]
    fn refs_are_shortened() {
        assert_eq!(short_ref("refs/heads/feature/x"), "feature/x");
        assert_eq!(short_ref("refs/tags/v1"), "tag v1");
        assert_eq!(short_ref("refs/notes/y"), "refs/notes/y");
    }
}
