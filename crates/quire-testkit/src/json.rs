//! What the tests look for in quire-runs' JSON and text.

use serde_json::Value;

use crate::env::Env;

/// The run object with this id in a `list --json` array.
pub fn find<'a>(runs: &'a Value, id: &str) -> &'a Value {
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("run {id} not listed"))
}

/// An RFC 3339 string field and its `_ms` twin agree.
pub fn assert_time(object: &Value, name: &str) {
    let text = object[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is not a string: {object}"));
    let ms = object[format!("{name}_ms")]
        .as_i64()
        .unwrap_or_else(|| panic!("{name}_ms is not an integer"));
    let parsed: jiff::Timestamp = text.parse().unwrap();
    assert_eq!(parsed.as_millisecond(), ms, "{name}");
    assert!(text.ends_with('Z'), "{name} is UTC: {text}");
}

/// A time field pair that is unset.
pub fn assert_no_time(object: &Value, name: &str) {
    assert!(object[name].is_null(), "{name} should be null: {object}");
    assert!(
        object[format!("{name}_ms")].is_null(),
        "{name}_ms should be null"
    );
}

/// The fields `quire-runs ARGS --json NOT-A-FIELD` says there are (it must
/// refuse the field, exit 2).
pub fn json_fields(env: &Env, args: &[&str]) -> Vec<String> {
    let out = env
        .runs(args)
        .args(["--json", "not_a_field"])
        .assert()
        .code(2)
        .stdout("")
        .get_output()
        .stderr
        .clone();
    let stderr = String::from_utf8(out).unwrap();
    let fields = stderr
        .strip_prefix("quire-runs: error: --json: unknown field \"not_a_field\"; the fields are: ")
        .unwrap_or_else(|| panic!("{stderr}"));
    fields.trim_end().split(", ").map(str::to_string).collect()
}

/// The keys of a JSON object, sorted.
pub fn keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// A line with its duration (` in 1.2s`, ` in 1m 4s`) written as `D`, so
/// that lines of real runs can be compared whole.
pub fn masked(line: &str) -> String {
    match line.find(" in ") {
        Some(at) => {
            let rest = &line[at + 4..];
            let end = rest.find(" (").unwrap_or(rest.len());
            format!("{} in D{}", &line[..at], &rest[end..])
        }
        None => line.to_string(),
    }
}
