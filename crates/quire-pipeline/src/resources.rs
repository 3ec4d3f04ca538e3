//! A job's `resources`: what it asks of the machine that runs it
//! (docs/PIPELINE.md, "Resources"). The table is read as plain TOML values
//! and checked here, so that every problem in it is reported with the job,
//! whatever type a value has.

use toml::Value;

/// The most CPUs a job may ask for.
pub const MAX_CPUS: u32 = 1024;
/// The most GPUs a job may ask for.
pub const MAX_GPUS: u32 = 64;
/// The longest `constraint`, in characters.
pub const MAX_CONSTRAINT_LEN: usize = 256;
/// The most memory a job may ask for, in MiB: what a byte count in a u64
/// (a cgroup's `memory.max`) can hold, as for config.toml's `job_memory_mb`.
pub const MAX_MEMORY_MB: u64 = u64::MAX >> 20;

/// The keys of `resources`, in the order they are checked and named.
const KEYS: [&str; 4] = ["cpus", "memory", "gpus", "constraint"];

/// What a job asks of the machine that runs it; each `None` when the job
/// does not say. The local executor starts a job only when its CPUs are
/// free and puts its memory on its cgroup; a cluster's executor turns the
/// whole into its own request (Slurm's `--cpus-per-task`, `--mem`,
/// `--gres=gpu:N`, `--constraint`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPUs, 1 to [`MAX_CPUS`].
    pub cpus: Option<u32>,
    /// Memory for all of the job's processes together, in MiB (1024 x 1024
    /// bytes), at least 1.
    pub memory_mb: Option<u64>,
    /// GPUs, 0 to [`MAX_GPUS`].
    pub gpus: Option<u32>,
    /// Node features, as Slurm's `--constraint` reads them: one argument,
    /// never through a shell, of letters, digits and `_.,&|!()*:[]-`.
    pub constraint: Option<String>,
}

impl Resources {
    /// Read a job's `resources` value, `name` being the job as messages
    /// name it (`job "a"`). What was valid, and a message for each
    /// problem, in the order of [`KEYS`], unknown keys last.
    pub(crate) fn check(name: &str, value: &Value) -> (Resources, Vec<String>) {
        let mut out = Resources::default();
        let mut problems = Vec::new();
        let Some(table) = value.as_table() else {
            problems.push(format!(
                "{name}: resources is {}; write a table, e.g. resources = {{ cpus = 2, memory = \"4G\" }}",
                shown(value)
            ));
            return (out, problems);
        };
        if let Some(v) = table.get("cpus") {
            match whole(v, 1, MAX_CPUS) {
                Some(n) => out.cpus = Some(n),
                None => problems.push(format!(
                    "{name}: resources.cpus is {}; write a whole number of CPUs from 1 to {MAX_CPUS}",
                    shown(v)
                )),
            }
        }
        if let Some(v) = table.get("memory") {
            match memory_mb(v) {
                Ok(mb) => out.memory_mb = Some(mb),
                Err(why) => problems.push(format!("{name}: resources.memory {why}")),
            }
        }
        if let Some(v) = table.get("gpus") {
            match whole(v, 0, MAX_GPUS) {
                Some(n) => out.gpus = Some(n),
                None => problems.push(format!(
                    "{name}: resources.gpus is {}; write a whole number of GPUs from 0 to {MAX_GPUS}",
                    shown(v)
                )),
            }
        }
        if let Some(v) = table.get("constraint") {
            match constraint(v) {
                Ok(text) => out.constraint = Some(text),
                Err(why) => problems.push(format!("{name}: resources.constraint {why}")),
            }
        }
        for key in table.keys().filter(|k| !KEYS.contains(&k.as_str())) {
            problems.push(format!(
                "{name}: resources has no key {key:?}; the keys are cpus, memory, gpus and constraint"
            ));
        }
        (out, problems)
    }

    /// Whether the job asks for anything only a cluster's executor can
    /// give it: GPUs (more than none) or node features.
    pub fn needs_a_cluster(&self) -> bool {
        self.gpus.is_some_and(|n| n > 0) || self.constraint.is_some()
    }

    /// The request as `quire-run validate` and the logs show it: `cpus 2,
    /// memory 4096 MiB, gpus 1, constraint "avx2"`; empty when none.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            self.cpus.map(|n| format!("cpus {n}")),
            self.memory_mb.map(|mb| format!("memory {mb} MiB")),
            self.gpus.map(|n| format!("gpus {n}")),
            self.constraint
                .as_ref()
                .map(|c| format!("constraint {c:?}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.join(", ")
    }
}

/// A value as a message shows it: a string quoted, a float with its point,
/// an array or a table by its kind.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(n) => n.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Table(_) => "a table".to_string(),
    }
}

/// An integer from `least` to `most`; anything else (another type, a
/// float, a number out of range) is none.
fn whole(value: &Value, least: u32, most: u32) -> Option<u32> {
    let n = value.as_integer()?;
    u32::try_from(n).ok().filter(|n| (least..=most).contains(n))
}

/// `memory` in MiB: an integer (MiB), or a string of digits with an
/// optional unit K, M, G or T in either case, each 1024 of the one before,
/// as Slurm's `--mem` reads it (no unit is M; K is rounded up to whole
/// MiB). More than zero, at most [`MAX_MEMORY_MB`]. The error is the rest
/// of the message after `resources.memory`.
fn memory_mb(value: &Value) -> Result<u64, String> {
    let not_a_size = || {
        format!(
            "is {}; write a size with a unit K, M, G or T (powers of 1024, as Slurm's --mem reads them), e.g. \"512M\" or \"4G\", or a whole number of MiB",
            shown(value)
        )
    };
    let mb = match value {
        Value::Integer(n) => u64::try_from(*n).map_err(|_| not_a_size())?,
        Value::String(text) => {
            let (digits, unit) = match text.char_indices().last() {
                Some((at, c)) if c.is_ascii_alphabetic() => (&text[..at], Some(c)),
                _ => (text.as_str(), None),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(not_a_size());
            }
            let too_large = || {
                format!(
                    "is {}; that is more than the {MAX_MEMORY_MB} MiB (16 EiB) quire can count",
                    shown(value)
                )
            };
            // Only digits: the one error is overflow.
            let n: u64 = digits.parse().map_err(|_| too_large())?;
            let mb = match unit.map(|c| c.to_ascii_uppercase()) {
                Some('K') => Some(n.div_ceil(1024)),
                None | Some('M') => Some(n),
                Some('G') => n.checked_mul(1024),
                Some('T') => n.checked_mul(1024 * 1024),
                Some(_) => return Err(not_a_size()),
            };
            mb.ok_or_else(too_large)?
        }
        _ => return Err(not_a_size()),
    };
    if mb == 0 {
        return Err(format!(
            "is {}, no memory at all; ask for what the job needs, e.g. \"512M\"",
            shown(value)
        ));
    }
    if mb > MAX_MEMORY_MB {
        return Err(format!(
            "is {}; that is more than the {MAX_MEMORY_MB} MiB (16 EiB) quire can count",
            shown(value)
        ));
    }
    Ok(mb)
}

/// Whether `c` may be in a `constraint`: Slurm's feature names and the
/// operators between them, nothing a shell or an argument parser reads
/// otherwise (no space, quote, `$`, `;`, `=`, ...).
fn constraint_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.,&|!()*:[]-".contains(c)
}

/// `constraint`: a non-empty string of at most [`MAX_CONSTRAINT_LEN`]
/// characters, each one [`constraint_char`] allows. The error is the rest
/// of the message after `resources.constraint`.
fn constraint(value: &Value) -> Result<String, String> {
    let Value::String(text) = value else {
        return Err(format!(
            "is {}; write node features as a string, e.g. \"avx2\" or \"avx2&ib\"",
            shown(value)
        ));
    };
    let len = text.chars().count();
    if len == 0 {
        return Err("is empty; name node features, e.g. \"avx2\", or leave it out".to_string());
    }
    if len > MAX_CONSTRAINT_LEN {
        return Err(format!(
            "is {len} characters long, over the {MAX_CONSTRAINT_LEN} it may have"
        ));
    }
    if let Some(c) = text.chars().find(|&c| !constraint_char(c)) {
        return Err(format!(
            "{text:?} holds {c:?}; a constraint may hold only letters, digits and _ . , & | ! ( ) * : [ ] -"
        ));
    }
    Ok(text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `resources = TEXT` of job "a", read as the pipeline reads it.
    fn read(text: &str) -> (Resources, Vec<String>) {
        let doc: toml::Table = toml::from_str(&format!("resources = {text}")).unwrap();
        Resources::check("job \"a\"", &doc["resources"])
    }

    fn accepted(text: &str) -> Resources {
        let (resources, problems) = read(text);
        assert_eq!(problems, Vec::<String>::new(), "{text}");
        resources
    }

    fn refused(text: &str) -> Vec<String> {
        let (_, problems) = read(text);
        assert!(!problems.is_empty(), "{text} was accepted");
        problems
    }

    #[test]
    fn every_key_is_optional_and_each_is_read() {
        assert_eq!(accepted("{}"), Resources::default());
        assert_eq!(
            accepted(r#"{ cpus = 2, memory = "4G", gpus = 1, constraint = "avx2" }"#),
            Resources {
                cpus: Some(2),
                memory_mb: Some(4096),
                gpus: Some(1),
                constraint: Some("avx2".into()),
            }
        );
        assert_eq!(accepted("{ cpus = 1 }").cpus, Some(1));
        assert_eq!(accepted("{ cpus = 1024 }").cpus, Some(1024));
        assert_eq!(accepted("{ gpus = 0 }").gpus, Some(0));
        assert_eq!(accepted("{ gpus = 64 }").gpus, Some(64));
    }

    #[test]
    fn memory_is_read_in_mib_as_slurm_reads_mem() {
        let cases = [
            ("512", 512),
            ("\"512\"", 512),
            ("\"512M\"", 512),
            ("\"512m\"", 512),
            ("\"4G\"", 4096),
            ("\"4g\"", 4096),
            ("\"2T\"", 2 * 1024 * 1024),
            ("\"1024K\"", 1),
            // K is rounded up to whole MiB.
            ("\"1K\"", 1),
            ("\"1025k\"", 2),
            ("\"007M\"", 7),
            ("\"17592186044415M\"", MAX_MEMORY_MB),
            ("\"16777215T\"", 16_777_215 * 1024 * 1024),
        ];
        for (text, mb) in cases {
            assert_eq!(
                accepted(&format!("{{ memory = {text} }}")).memory_mb,
                Some(mb),
                "{text}"
            );
        }
    }

    #[test]
    fn each_refused_form_is_named_with_the_job() {
        let not_a_size = |shown: &str| {
            format!(
                "job \"a\": resources.memory is {shown}; write a size with a unit K, M, G or T (powers of 1024, as Slurm's --mem reads them), e.g. \"512M\" or \"4G\", or a whole number of MiB"
            )
        };
        let cases: Vec<(&str, String)> = vec![
            (
                "3",
                "job \"a\": resources is 3; write a table, e.g. resources = { cpus = 2, memory = \"4G\" }".into(),
            ),
            (
                "{ cpus = 0 }",
                "job \"a\": resources.cpus is 0; write a whole number of CPUs from 1 to 1024".into(),
            ),
            (
                "{ cpus = 1025 }",
                "job \"a\": resources.cpus is 1025; write a whole number of CPUs from 1 to 1024".into(),
            ),
            (
                "{ cpus = -2 }",
                "job \"a\": resources.cpus is -2; write a whole number of CPUs from 1 to 1024".into(),
            ),
            (
                "{ cpus = \"2\" }",
                "job \"a\": resources.cpus is \"2\"; write a whole number of CPUs from 1 to 1024".into(),
            ),
            (
                "{ cpus = 2.0 }",
                "job \"a\": resources.cpus is 2.0; write a whole number of CPUs from 1 to 1024".into(),
            ),
            (
                "{ cpus = 9223372036854775807 }",
                "job \"a\": resources.cpus is 9223372036854775807; write a whole number of CPUs from 1 to 1024".into(),
            ),
            (
                "{ gpus = 65 }",
                "job \"a\": resources.gpus is 65; write a whole number of GPUs from 0 to 64".into(),
            ),
            (
                "{ gpus = -1 }",
                "job \"a\": resources.gpus is -1; write a whole number of GPUs from 0 to 64".into(),
            ),
            (
                "{ gpus = true }",
                "job \"a\": resources.gpus is true; write a whole number of GPUs from 0 to 64".into(),
            ),
            ("{ memory = \"4GB\" }", not_a_size("\"4GB\"")),
            ("{ memory = \"4X\" }", not_a_size("\"4X\"")),
            ("{ memory = \"1.5G\" }", not_a_size("\"1.5G\"")),
            ("{ memory = \"G\" }", not_a_size("\"G\"")),
            ("{ memory = \"\" }", not_a_size("\"\"")),
            ("{ memory = \" 4G\" }", not_a_size("\" 4G\"")),
            ("{ memory = \"-4G\" }", not_a_size("\"-4G\"")),
            ("{ memory = \"+4G\" }", not_a_size("\"+4G\"")),
            ("{ memory = -512 }", not_a_size("-512")),
            ("{ memory = 4.5 }", not_a_size("4.5")),
            ("{ memory = nan }", not_a_size("NaN")),
            ("{ memory = [\"4G\"] }", not_a_size("an array")),
            ("{ memory = { G = 4 } }", not_a_size("a table")),
            ("{ memory = 1979-05-27 }", not_a_size("1979-05-27")),
            (
                "{ memory = \"0G\" }",
                "job \"a\": resources.memory is \"0G\", no memory at all; ask for what the job needs, e.g. \"512M\"".into(),
            ),
            (
                "{ memory = 0 }",
                "job \"a\": resources.memory is 0, no memory at all; ask for what the job needs, e.g. \"512M\"".into(),
            ),
            (
                "{ memory = \"17592186044416M\" }",
                "job \"a\": resources.memory is \"17592186044416M\"; that is more than the 17592186044415 MiB (16 EiB) quire can count".into(),
            ),
            (
                "{ memory = \"16777216T\" }",
                "job \"a\": resources.memory is \"16777216T\"; that is more than the 17592186044415 MiB (16 EiB) quire can count".into(),
            ),
            (
                "{ memory = \"99999999999999999999999G\" }",
                "job \"a\": resources.memory is \"99999999999999999999999G\"; that is more than the 17592186044415 MiB (16 EiB) quire can count".into(),
            ),
            (
                "{ constraint = \"\" }",
                "job \"a\": resources.constraint is empty; name node features, e.g. \"avx2\", or leave it out".into(),
            ),
            (
                "{ constraint = 2 }",
                "job \"a\": resources.constraint is 2; write node features as a string, e.g. \"avx2\" or \"avx2&ib\"".into(),
            ),
            (
                "{ constraint = \"avx2; rm -rf /\" }",
                "job \"a\": resources.constraint \"avx2; rm -rf /\" holds ';'; a constraint may hold only letters, digits and _ . , & | ! ( ) * : [ ] -".into(),
            ),
            (
                "{ constraint = \"$(id)\" }",
                "job \"a\": resources.constraint \"$(id)\" holds '$'; a constraint may hold only letters, digits and _ . , & | ! ( ) * : [ ] -".into(),
            ),
            (
                "{ constraint = \"--mem=1\" }",
                "job \"a\": resources.constraint \"--mem=1\" holds '='; a constraint may hold only letters, digits and _ . , & | ! ( ) * : [ ] -".into(),
            ),
            (
                "{ constraint = \"avx2\\nib\" }",
                "job \"a\": resources.constraint \"avx2\\nib\" holds '\\n'; a constraint may hold only letters, digits and _ . , & | ! ( ) * : [ ] -".into(),
            ),
            (
                "{ constraint = \"é\" }",
                "job \"a\": resources.constraint \"é\" holds 'é'; a constraint may hold only letters, digits and _ . , & | ! ( ) * : [ ] -".into(),
            ),
            (
                "{ cpu = 2 }",
                "job \"a\": resources has no key \"cpu\"; the keys are cpus, memory, gpus and constraint".into(),
            ),
        ];
        for (text, message) in cases {
            assert_eq!(refused(text), [message], "{text}");
        }
        let long = format!("{{ constraint = {:?} }}", "a".repeat(257));
        assert_eq!(
            refused(&long),
            ["job \"a\": resources.constraint is 257 characters long, over the 256 it may have"]
        );
        let longest = "a&b|".repeat(64);
        assert_eq!(
            accepted(&format!("{{ constraint = {longest:?} }}")).constraint,
            Some(longest)
        );
        assert_eq!(
            accepted(r#"{ constraint = "[rack1*2|rack2*4]&(avx2,sse4.2)&!gpu_a-100:x_y" }"#)
                .constraint
                .as_deref(),
            Some("[rack1*2|rack2*4]&(avx2,sse4.2)&!gpu_a-100:x_y")
        );
    }

    #[test]
    fn every_problem_of_the_table_is_reported_and_the_valid_keys_kept() {
        let (resources, problems) =
            read(r#"{ zz = 1, gpus = 99, cpus = 4, memory = "4Q", constraint = "a b", aa = 2 }"#);
        assert_eq!(
            resources,
            Resources {
                cpus: Some(4),
                ..Resources::default()
            }
        );
        let keys: Vec<&str> = problems
            .iter()
            .map(|p| p.split_whitespace().nth(2).unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "resources.memory",
                "resources.gpus",
                "resources.constraint",
                "resources",
                "resources"
            ]
        );
        assert!(problems[3].contains("\"aa\"") && problems[4].contains("\"zz\""));
    }

    #[test]
    fn only_gpus_or_a_constraint_need_a_cluster_and_the_request_is_described() {
        assert!(!accepted("{ cpus = 2, memory = 512, gpus = 0 }").needs_a_cluster());
        assert!(accepted("{ gpus = 1 }").needs_a_cluster());
        assert!(accepted("{ constraint = \"avx2\" }").needs_a_cluster());
        assert_eq!(Resources::default().describe(), "");
        assert_eq!(
            accepted(r#"{ cpus = 2, memory = "4G", gpus = 1, constraint = "avx2" }"#).describe(),
            "cpus 2, memory 4096 MiB, gpus 1, constraint \"avx2\""
        );
    }

    /// Any TOML value, nested a little: every type a hostile file can put
    /// under a key.
    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Integer),
            (-3i64..1100).prop_map(Value::Integer),
            any::<f64>().prop_map(Value::Float),
            any::<bool>().prop_map(Value::Boolean),
            any::<String>().prop_map(Value::String),
            "[0-9]{0,25}[KMGTkmgtXB]?".prop_map(Value::String),
            "[A-Za-z0-9_.,&|!()*:\\[\\]; $-]{0,300}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,10}", inner, 0..3)
                    .prop_map(|m| Value::Table(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the table holds, reading it neither panics nor keeps a
        /// value out of range, and every problem names the job.
        #[test]
        fn any_value_under_any_key_is_kept_in_range_or_refused(
            entries in proptest::collection::btree_map(
                prop_oneof![
                    Just("cpus".to_string()),
                    Just("memory".to_string()),
                    Just("gpus".to_string()),
                    Just("constraint".to_string()),
                    "[a-z]{1,8}",
                ],
                any_value(),
                0..6,
            ),
            whole_value in any_value(),
        ) {
            let table = Value::Table(entries.into_iter().collect());
            for value in [&table, &whole_value] {
                let (resources, problems) = Resources::check("job \"a\"", value);
                prop_assert!(resources.cpus.is_none_or(|n| (1..=MAX_CPUS).contains(&n)));
                prop_assert!(resources.gpus.is_none_or(|n| n <= MAX_GPUS));
                prop_assert!(resources.memory_mb.is_none_or(|mb| (1..=MAX_MEMORY_MB).contains(&mb)));
                let kept = |c: &String| {
                    !c.is_empty() && c.len() <= MAX_CONSTRAINT_LEN && c.chars().all(constraint_char)
                };
                prop_assert!(resources.constraint.as_ref().is_none_or(kept));
                for p in &problems {
                    prop_assert!(p.starts_with("job \"a\": resources"), "{p}");
                }
            }
        }
    }
}
