//! Words for sh: the one quoting quire writes commands with (hooks, the
//! commands it prints, a pipeline's argv steps shown as text).

/// Single-quoted for sh, as quire's hook quotes its paths.
pub fn sh_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A word for sh as a person would type it: as it is when nothing in it
/// is special to the shell, else single-quoted.
pub fn sh_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:@%+=,-".contains(&b));
    if plain {
        text.to_string()
    } else {
        sh_quoted(text)
    }
}

/// The word [`sh_quoted`] made, read back from the start of `text`
/// (`'...'` runs joined by `\'`), and what follows it; `None` when `text`
/// does not start with one.
pub fn sh_unquoted(text: &str) -> Option<(String, &str)> {
    let mut word = String::new();
    let mut rest = text.strip_prefix('\'')?;
    loop {
        let end = rest.find('\'')?;
        word.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix("\\''") {
            Some(more) => {
                word.push('\'');
                rest = more;
            }
            None => return Some((word, rest)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_word_reads_back_as_it_was() {
        for text in [
            "plain",
            "",
            "a b",
            "it's",
            "''",
            "$HOME `x` \\",
            "/srv/q's/h'",
        ] {
            let quoted = sh_quoted(text);
            let line = format!("{quoted} hook");
            assert_eq!(
                sh_unquoted(&line),
                Some((text.to_string(), " hook")),
                "{line}"
            );
        }
        assert_eq!(sh_unquoted("plain"), None);
        assert_eq!(sh_unquoted("'open"), None);
    }

    #[test]
    fn words_are_plain_when_they_can_be_and_single_quoted_else() {
        assert_eq!(sh_word("cargo"), "cargo");
        assert_eq!(
            sh_word("--home=/srv/q_1,2+3@x%y:z"),
            "--home=/srv/q_1,2+3@x%y:z"
        );
        assert_eq!(sh_word(""), "''");
        assert_eq!(sh_word("a b"), "'a b'");
        assert_eq!(sh_word("it's"), r"'it'\''s'");
        assert_eq!(sh_word("$HOME"), "'$HOME'");
        assert_eq!(sh_quoted("plain"), "'plain'");
    }
}
