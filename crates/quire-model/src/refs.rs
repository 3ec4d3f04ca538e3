//! Ref names and the one glob rule over them.
//!
//! A ref is stored by its full name (`refs/heads/main`, `refs/tags/v1.0`);
//! [`RefName`] gives its branch, tag and short forms. Every ref glob quire
//! takes (a job's `when`, `[[notify]] refs`, `list --ref`) is a
//! [`RefGlob`]: `*` matches within one path segment (`release/*` matches
//! `release/1.0`, not `release/1.0/hotfix`), `**` across segments, `?` one
//! character other than `/`, `[abc]` a set.

use std::fmt;

/// The prefix of branches' full names.
pub const HEADS: &str = "refs/heads/";
/// The prefix of tags' full names.
pub const TAGS: &str = "refs/tags/";

/// A ref by its full name, as git and the store name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RefName(String);

impl RefName {
    /// The ref whose full name is `full` (`refs/heads/main`).
    pub fn new(full: impl Into<String>) -> RefName {
        RefName(full.into())
    }

    /// The branch `name` (`main`: `refs/heads/main`).
    pub fn of_branch(name: &str) -> RefName {
        RefName(format!("{HEADS}{name}"))
    }

    /// The tag `name` (`v1.0`: `refs/tags/v1.0`).
    pub fn of_tag(name: &str) -> RefName {
        RefName(format!("{TAGS}{name}"))
    }

    /// The full name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The branch's name, when it is a branch (`main` of `refs/heads/main`).
    pub fn branch(&self) -> Option<&str> {
        self.0.strip_prefix(HEADS)
    }

    /// The tag's name, when it is a tag (`v1.0` of `refs/tags/v1.0`).
    pub fn tag(&self) -> Option<&str> {
        self.0.strip_prefix(TAGS)
    }

    /// The name people use: a branch's or a tag's name, else the full name.
    pub fn short(&self) -> &str {
        self.branch().or_else(|| self.tag()).unwrap_or(&self.0)
    }

    /// Whether it is in `refs/`, as every ref git updates is.
    pub fn is_full(&self) -> bool {
        self.0.starts_with("refs/") && self.0.len() > "refs/".len()
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RefName {
    fn from(full: &str) -> RefName {
        RefName::new(full)
    }
}

impl From<String> for RefName {
    fn from(full: String) -> RefName {
        RefName(full)
    }
}

impl AsRef<str> for RefName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A pattern that is not a glob, and why.
pub use glob::PatternError;

/// The one glob rule over ref names (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefGlob(glob::Pattern);

/// `*` and `?` do not cross `/`; `**` as a whole segment does.
const RULE: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl RefGlob {
    /// The glob `text`, or why it is not one (`v[`: an invalid range).
    pub fn new(text: &str) -> Result<RefGlob, PatternError> {
        glob::Pattern::new(text).map(RefGlob)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether `name` (a ref's full or short name) matches.
    pub fn matches(&self, name: &str) -> bool {
        self.0.matches_with(name, RULE)
    }

    /// What every name it matches starts with: the pattern up to its first
    /// special character (`refs/heads/release/` of `refs/heads/release/*`).
    /// A cheap test to try first, and free of SQL GLOB's special characters.
    pub fn literal_prefix(&self) -> &str {
        let text = self.0.as_str();
        &text[..text.find(['*', '?', '[']).unwrap_or(text.len())]
    }
}

impl fmt::Display for RefGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `text` holds glob characters. git refuses `*`, `?` and `[` in
/// ref names, so a ref name with one is always a pattern.
pub fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn glob(text: &str) -> RefGlob {
        RefGlob::new(text).unwrap()
    }

    #[test]
    fn names_have_branch_tag_and_short_forms() {
        let main = RefName::new("refs/heads/main");
        assert_eq!(main, RefName::of_branch("main"));
        assert_eq!(
            (main.branch(), main.tag(), main.short()),
            (Some("main"), None, "main")
        );
        let tag = RefName::of_tag("v1.0");
        assert_eq!(tag.as_str(), "refs/tags/v1.0");
        assert_eq!(
            (tag.branch(), tag.tag(), tag.short()),
            (None, Some("v1.0"), "v1.0")
        );
        let note = RefName::new("refs/notes/ci");
        assert_eq!(
            (note.branch(), note.tag(), note.short()),
            (None, None, "refs/notes/ci")
        );
        assert_eq!(
            RefName::new("refs/heads/release/1.0").short(),
            "release/1.0"
        );
        assert!(
            note.is_full() && !RefName::new("main").is_full() && !RefName::new("refs/").is_full()
        );
    }

    #[test]
    fn star_stays_in_a_segment_and_double_star_crosses() {
        for (pattern, name, matches) in [
            ("release/*", "release/1.0", true),
            ("release/*", "release/1.0/hotfix", false),
            ("release/*", "release", false),
            ("release/**", "release/1.0", true),
            ("release/**", "release/1.0/hotfix", true),
            ("refs/heads/release/*", "refs/heads/release/1.0", true),
            (
                "refs/heads/release/*",
                "refs/heads/release/1.0/hotfix",
                false,
            ),
            ("refs/heads/**", "refs/heads/a/b/c", true),
            ("**/hotfix", "release/1.0/hotfix", true),
            ("*", "main", true),
            ("*", "feature/x", false),
            ("v*", "v1.2", true),
            ("v*", "1.2", false),
            ("v1.?", "v1.2", true),
            ("a?b", "a/b", false),
            ("v[12].0", "v2.0", true),
            ("v[12].0", "v3.0", false),
            ("v[!12].0", "v3.0", true),
            ("Main", "main", false),
            (".hidden*", ".hidden-x", true),
        ] {
            assert_eq!(glob(pattern).matches(name), matches, "{pattern} on {name}");
        }
    }

    #[test]
    fn bad_patterns_say_why() {
        let e = RefGlob::new("v[").unwrap_err();
        assert_eq!(e.msg, "invalid range pattern");
    }

    #[test]
    fn literal_prefix_is_what_every_match_starts_with() {
        assert_eq!(
            glob("refs/heads/release/*").literal_prefix(),
            "refs/heads/release/"
        );
        assert_eq!(glob("v[12]*").literal_prefix(), "v");
        assert_eq!(glob("main").literal_prefix(), "main");
        assert_eq!(glob("**").literal_prefix(), "");
        assert!(is_glob("release/1.?") && is_glob("v[12]") && !is_glob("v1.0"));
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-z0-9.]{1,6}"
    }

    proptest! {
        /// `PREFIX/*` matches exactly the names one segment below PREFIX,
        /// `PREFIX/**` every name below it, and both only names starting
        /// with their literal prefix.
        #[test]
        fn star_is_one_segment_double_star_any(
            prefix in prop::collection::vec(segment(), 1..3),
            rest in prop::collection::vec(segment(), 0..4),
        ) {
            let prefix = prefix.join("/");
            let name = if rest.is_empty() { prefix.clone() } else { format!("{prefix}/{}", rest.join("/")) };
            let one = glob(&format!("{prefix}/*"));
            let any = glob(&format!("{prefix}/**"));
            prop_assert_eq!(one.matches(&name), rest.len() == 1);
            prop_assert_eq!(any.matches(&name), !rest.is_empty());
            for g in [&one, &any] {
                if g.matches(&name) {
                    prop_assert!(name.starts_with(g.literal_prefix()));
                }
            }
        }

        /// A name without special characters matches itself alone.
        #[test]
        fn a_plain_name_matches_itself(a in "[a-z0-9./]{1,12}", b in "[a-z0-9./]{1,12}") {
            prop_assert!(glob(&a).matches(&a));
            prop_assert_eq!(glob(&a).matches(&b), a == b);
        }
    }
}
