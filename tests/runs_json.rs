//! `--json FIELD,...` (as gh's): only the fields asked for, an unknown one
//! a usage error naming them all.

use predicates::prelude::*;
use serde_json::{Value, json};

use quire_testkit::{Env, json_fields, keys, populate};

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

#[test]
fn jq_filters_the_json_and_prints_strings_raw() {
    let env = Env::new();
    let f = populate(&mut env.store());
    env.runs(&["list", "--jq", ".[] | select(.state == \"failed\") | .id"])
        .assert()
        .success()
        .stdout(format!("{}\n", f.failed))
        .stderr("");
    // Strings raw, other values as compact JSON, a line each; -q is --jq.
    env.runs(&["list", "-L", "2", "-q", ".[] | .ref, .duration_ms == null"])
        .assert()
        .success()
        .stdout("refs/heads/orphan\nfalse\nrefs/heads/live\nfalse\n");
    // With --json FIELDS, the program sees only those.
    env.runs(&["list", "--json", "state,id", "-L", "1", "--jq", ".[0]"])
        .assert()
        .success()
        .stdout(format!(
            "{{\"id\":\"{}\",\"state\":\"active\"}}\n",
            f.orphan
        ));
    env.runs(&[
        "show",
        &f.failed,
        "--jq",
        "[.state, (.jobs | map(.id) | join(\",\"))] | @tsv",
    ])
    .assert()
    .success()
    .stdout("failed\tbuild,deploy\n");
    env.runs(&["show", "-b", "main", "-q", ".id"])
        .assert()
        .success()
        .stdout(format!("{}\n", f.complete));
    env.runs(&["repos", "--jq", ".[].name"])
        .assert()
        .success()
        .stdout("app.git\n");
    // Nothing to print is no note: a script sees what it asked for.
    let empty = Env::new();
    empty.store();
    empty
        .runs(&["list", "--jq", ".[]"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
    empty
        .runs(&["list", "--jq", "length"])
        .assert()
        .success()
        .stdout("0\n");
}

#[test]
fn jq_errors_are_messages_with_their_own_exit_codes() {
    let env = Env::new();
    populate(&mut env.store());
    // A program that does not compile: a usage error, nothing printed.
    env.runs(&["list", "--jq", ".[] |"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            "quire-runs: error: --jq: syntax error at column 6: expected term, found the end of \
             the program\n",
        );
    env.runs(&["list", "--jq", "map(.id"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "quire-runs: error: --jq: syntax error at column",
        ));
    env.runs(&["show", "--jq", "nosuch"])
        .assert()
        .code(2)
        .stderr("quire-runs: error: --jq: undefined filter nosuch/0 at column 1\n");
    // An error the program raises: what came before it is printed, exit 1.
    env.runs(&["list", "-L", "2", "--jq", ".[0].id, .[0].id.x"])
        .assert()
        .code(1)
        .stdout(predicate::str::is_match("^[0-9a-f-]{36}\n$").unwrap())
        .stderr(predicate::str::starts_with(
            "quire-runs: error: --jq: cannot index",
        ));
    env.runs(&["list", "--jq", "error(\"stop\")"])
        .assert()
        .code(1)
        .stderr("quire-runs: error: --jq: stop\n");
    // An unknown --json field is refused before any program runs.
    env.runs(&["list", "--json", "bogus", "--jq", "."])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown field \"bogus\""));
}
