//! A log line as a page shows it: ANSI SGR colours and weights become
//! spans with classes, every other escape sequence is dropped, and no
//! control character is left raw (each becomes its visible symbol, `␇`).
//! The text is escaped where it is written out (maud, JSON), never here.

use std::borrow::Cow;

/// A run of a line's text in one style: its classes (empty for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub class: String,
    pub text: String,
}

/// What SGR sequences set: weights, and colours 0-15 (foreground `fN`,
/// background `gN`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
    fg: Option<u8>,
    bg: Option<u8>,
}

impl Style {
    fn class(&self) -> String {
        let mut classes: Vec<String> = Vec::new();
        for (on, name) in [
            (self.bold, "b"),
            (self.dim, "d"),
            (self.italic, "i"),
            (self.underline, "u"),
        ] {
            if on {
                classes.push(name.into());
            }
        }
        if let Some(n) = self.fg {
            classes.push(format!("f{n}"));
        }
        if let Some(n) = self.bg {
            classes.push(format!("g{n}"));
        }
        classes.join(" ")
    }

    /// Apply an SGR sequence's parameters (`1;31`, `38;5;9`, empty = reset).
    fn apply(&mut self, params: &str) {
        let mut values = params.split([';', ':']).map(|p| {
            if p.is_empty() {
                Some(0)
            } else {
                p.parse::<u16>().ok()
            }
        });
        while let Some(value) = values.next() {
            let Some(value) = value else { continue };
            match value {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => (self.bold, self.dim) = (false, false),
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some((value - 30) as u8),
                39 => self.fg = None,
                40..=47 => self.bg = Some((value - 40) as u8),
                49 => self.bg = None,
                90..=97 => self.fg = Some((value - 90 + 8) as u8),
                100..=107 => self.bg = Some((value - 100 + 8) as u8),
                38 | 48 => {
                    // 5;N (256 colours: the first 16 kept) or 2;R;G;B (dropped).
                    let colour = match values.next().flatten() {
                        Some(5) => values.next().flatten().filter(|n| *n < 16),
                        Some(2) => {
                            values.next();
                            values.next();
                            values.next();
                            None
                        }
                        _ => None,
                    };
                    if let Some(n) = colour {
                        if value == 38 {
                            self.fg = Some(n as u8);
                        } else {
                            self.bg = Some(n as u8);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// A control character's visible symbol: C0 controls as their control
/// pictures (`␛`), DEL as `␡`, C1 controls as `�`; others unchanged. Tab
/// and newline stay (white space to HTML, escaped by JSON).
pub fn visible(c: char) -> char {
    match c {
        '\t' | '\n' => c,
        '\0'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}',
        '\u{80}'..='\u{9f}' => '\u{fffd}',
        _ => c,
    }
}

/// `text` with every control character made visible ([`visible`]): for
/// what a pipeline wrote that is not a log (commands, job ids, details).
pub fn shown(text: &str) -> Cow<'_, str> {
    if text.chars().all(|c| visible(c) == c) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().map(visible).collect())
    }
}

/// The spans of one log line (its bytes, without the newline; invalid
/// UTF-8 becomes `�`). A carriage return is shown (`␍`) like every other
/// control character: a terminal would start the line over, which lets a
/// step hide what it printed before it (only one that ends the line, as
/// in CRLF, is dropped: nothing follows it). Colours do not carry over to
/// the next line.
pub fn spans(line: &[u8]) -> Vec<Span> {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let mut out: Vec<Span> = Vec::new();
    let mut style = Style::default();
    let mut chars = text.chars().peekable();
    let push = |out: &mut Vec<Span>, style: &Style, c: char| {
        let class = style.class();
        match out.last_mut() {
            Some(last) if last.class == class => last.text.push(c),
            _ => out.push(Span {
                class,
                text: c.to_string(),
            }),
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    // CSI: parameters, intermediates, one final byte.
                    let mut params = String::new();
                    let mut last = None;
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            last = Some(c);
                            break;
                        }
                        params.push(c);
                    }
                    if last == Some('m') {
                        style.apply(&params);
                    }
                }
                Some(']') => {
                    // OSC: up to BEL or ESC \.
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next_if_eq(&'\\');
                            break;
                        }
                    }
                }
                // nF escapes (`ESC ( B`): intermediates, then a final.
                Some(' '..='/') => {
                    while chars.next_if(|c| (' '..='/').contains(c)).is_some() {}
                    chars.next();
                }
                // Any other escape: it and the character after it go.
                _ => {}
            },
            c => push(&mut out, &style, visible(c)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(line: &str) -> Vec<(String, String)> {
        spans(line.as_bytes())
            .into_iter()
            .map(|s| (s.class, s.text))
            .collect()
    }

    fn p(class: &str, text: &str) -> (String, String) {
        (class.to_string(), text.to_string())
    }

    #[test]
    fn sgr_colours_and_weights_become_classes() {
        assert_eq!(
            pairs("\u{1b}[1;31merror\u{1b}[0m: x \u{1b}[32mok\u{1b}[39m."),
            [p("b f1", "error"), p("", ": x "), p("f2", "ok"), p("", ".")]
        );
        assert_eq!(
            pairs("\u{1b}[38;5;9mhi\u{1b}[38;2;1;2;3m!\u{1b}[48;5;200m?\u{1b}[m."),
            [p("f9", "hi!?"), p("", ".")]
        );
        assert_eq!(
            pairs("\u{1b}[94;102mx\u{1b}[22;4my"),
            [p("f12 g10", "x"), p("u f12 g10", "y")]
        );
    }

    #[test]
    fn other_sequences_go_and_controls_are_made_visible() {
        assert_eq!(
            pairs("a\u{1b}[2Kb\u{1b}]0;title\u{7}c\u{1b}]8;;x\u{1b}\\d\u{1b}(Be"),
            [p("", "abcde")]
        );
        assert_eq!(
            pairs("bell\u{7} nul\u{0} del\u{7f} c1\u{9b}x tab\t"),
            [p("", "bell␇ nul␀ del␡ c1\u{fffd}x tab\t")]
        );
        assert_eq!(pairs("50%\r100%\r"), [p("", "50%␍100%")]);
        assert_eq!(
            pairs("rm -rf /home\r\u{1b}[32mall good"),
            [p("", "rm -rf /home␍"), p("f2", "all good")]
        );
        assert_eq!(spans(b"bad \xff utf8")[0].text, "bad \u{fffd} utf8");
        // An unterminated sequence takes the rest of the line with it.
        assert_eq!(pairs("x\u{1b}[31"), [p("", "x")]);
    }

    #[test]
    fn markup_is_left_as_text_for_the_writer_to_escape() {
        assert_eq!(
            pairs("<script>alert(1)</script>"),
            [p("", "<script>alert(1)</script>")]
        );
        assert_eq!(shown("a\u{1b}[31mb\nc"), "a␛[31mb\nc");
        assert!(matches!(shown("plain"), Cow::Borrowed("plain")));
    }
}
