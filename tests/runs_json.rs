//! `--json FIELD,...` (as gh's): only the fields asked for, an unknown one
//! a usage error naming them all.

use predicates::prelude::*;
use serde_json::{Value, json};

use crate::util::{Env, json_fields, keys, populate};

/// `quire-runs ARGS` at a fixed "now", which must succeed; its stdout
/// parsed as JSON, and the text.
fn json_of(env: &Env, args: &[&str]) -> (Value, String) {
    let out = env
        .runs(args)
        .env("QUIRE_NOW", "2030-01-01T00:00:00Z")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

#[test]
fn json_fields_keep_only_those_fields_in_the_objects_order() {
    let env = Env::new();
    let f = populate(&mut env.store());
    let (runs, text) = json_of(&env, &["list", "--json", "state,id,ref", "-L", "2"]);
    assert_eq!(
        runs,
        json!([
            {"id": f.orphan, "ref": "refs/heads/orphan", "state": "active"},
            {"id": f.live, "ref": "refs/heads/live", "state": "active"},
        ])
    );
    // In the order of the full object, as pretty as the full one.
    assert!(
        text.starts_with(&format!(
            "[\n  {{\n    \"id\": \"{}\",\n    \"ref\": \"refs/heads/orphan\",\n    \"state\": \"active\"\n  }},",
            f.orphan
        )),
        "{text}"
    );
    // Blanks and repeats are forgiven; `--json=` is every field.
    let (same, _) = json_of(&env, &["list", "--json", "state, id,ref,id", "-L", "2"]);
    assert_eq!(same, runs);
    let (all, _) = json_of(&env, &["list", "--json="]);
    assert_eq!(all, json_of(&env, &["list", "--json"]).0);

    // show: a run's fields and jobs, artifacts, notifications.
    let (shown, text) = json_of(&env, &["show", &f.failed, "--json", "jobs,state"]);
    assert_eq!(keys(&shown), ["jobs", "state"]);
    assert!(text.find("\"state\"") < text.find("\"jobs\""), "{text}");
    assert_eq!(shown["jobs"][0]["steps"][0]["cmd"], "make");
    // Without RUN, the newest run; `--json RUN` is RUN (no field is hex).
    let (newest, _) = json_of(&env, &["show", "--json", "id", "-b", "dev"]);
    assert_eq!(newest, json!({"id": f.failed}));
    let (whole, _) = json_of(&env, &["show", "--json", &f.complete]);
    assert_eq!(whole, json_of(&env, &["show", &f.complete, "--json"]).0);

    // repos.
    let (repos, _) = json_of(&env, &["repos", "--json", "runs,name"]);
    assert_eq!(repos, json!([{"name": "app.git", "runs": 6}]));
}

#[test]
fn an_unknown_json_field_is_a_usage_error_naming_the_fields() {
    let env = Env::new();
    let f = populate(&mut env.store());
    let sorted = |mut names: Vec<String>| {
        names.sort();
        names
    };
    // Named in the objects' order (the run object's, as docs/CLI.md has it).
    let run_fields = json_fields(&env, &["list"]);
    assert_eq!(run_fields[..5], ["id", "repo", "ref", "sha", "state"]);
    let full = env.json(&["list"]);
    assert_eq!(sorted(run_fields.clone()), keys(&full[0]));
    let shown = env.json(&["show", &f.complete]);
    let show_fields = json_fields(&env, &["show", &f.complete]);
    assert_eq!(
        show_fields[run_fields.len()..],
        ["jobs", "artifacts", "notifications"]
    );
    assert_eq!(sorted(show_fields), keys(&shown));
    let repos = env.json(&["repos"]);
    assert_eq!(sorted(json_fields(&env, &["repos"])), keys(&repos[0]));
    env.runs(&["list", "--json", "id,colour"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::starts_with(
            "quire-runs: error: --json: unknown field \"colour\"; the fields are: id, repo, ref, sha, state, ",
        ));
    // No runs: still an error, not an empty list.
    let empty = Env::new();
    empty.store();
    assert_eq!(json_fields(&empty, &["list"]), run_fields);
}
