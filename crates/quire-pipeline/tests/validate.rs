//! Every validation rule, with its exact message and location; and no input
//! at all can panic the parser or the validator.

use proptest::prelude::*;
use quire_pipeline::{Limits, Pipeline};

fn errors(text: &str) -> Vec<String> {
    match Pipeline::parse(text) {
        Ok(_) => vec![],
        Err(found) => found.iter().map(ToString::to_string).collect(),
    }
}

const OK_JOB: &str = r#"[jobs.ok]
inputs = ["quire/push"]
sh = "true"
"#;

#[test]
fn each_rule_reports_its_exact_message() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "syntax error",
            r#"[jobs.a
inputs = []
"#,
            &["1:8: unclosed table, expected `]`"],
        ),
        (
            "duplicate job",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
[jobs.a]
"#,
            &["4:7: duplicate key"],
        ),
        (
            "unknown key in a job",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
needs = ["b"]
"#,
            &[
                "4:1: unknown field `needs`, expected one of `inputs`, `sh`, `env`, `when`, `timeout`, `allow_failure`, `separate_stderr`, `secrets`, `artifacts`, `cache`, `resources`",
            ],
        ),
        (
            "unknown top-level key",
            "[job.a]\n",
            &["1:2: unknown field `job`, expected one of `env`, `workspace`, `jobs`"],
        ),
        (
            "unknown key in when",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
when = { branch = ["main"] }
"#,
            &["4:10: unknown field `branch`, expected `branches` or `tags`"],
        ),
        (
            "missing inputs",
            r#"[jobs.a]
sh = "x"
"#,
            &["1:1: missing field `inputs`"],
        ),
        (
            "missing sh",
            r#"[jobs.a]
inputs = ["quire/push"]
"#,
            &["1:1: missing field `sh`"],
        ),
        (
            "wrong type for sh",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = 3
"#,
            &["3:6: sh must be a command string, or a list of command strings and argv arrays"],
        ),
        (
            "wrong type for an env value",
            r#"[env]
RUST_BACKTRACE = 1
[jobs.a]
inputs = ["quire/push"]
sh = "x"
"#,
            &["2:18: invalid type: integer `1`, expected a string"],
        ),
        (
            "no jobs",
            "",
            &["the pipeline defines no jobs; add a [jobs.<id>] table with inputs and sh"],
        ),
        (
            "empty inputs",
            r#"[jobs.a]
inputs = []
sh = "x"
"#,
            &[
                "1:7: job \"a\": inputs is empty; list the jobs it needs, or \"quire/push\" to run on every push",
            ],
        ),
        (
            "unknown input",
            r#"[jobs.a]
inputs = ["quire/push", "biuld"]
sh = "x"
"#,
            &[
                "1:7: job \"a\": input \"biuld\" names no job and no source; define [jobs.biuld] or use \"quire/push\"",
            ],
        ),
        (
            "unknown source",
            r#"[jobs.a]
inputs = ["quire/pull"]
sh = "x"
"#,
            &[
                "1:7: job \"a\": input \"quire/pull\" names no source; the only source is \"quire/push\"",
            ],
        ),
        (
            "cycle",
            r#"[jobs.a]
inputs = ["quire/push", "c"]
sh = "x"
[jobs.b]
inputs = ["a"]
sh = "x"
[jobs.c]
inputs = ["b"]
sh = "x"
"#,
            &["1:7: jobs a -> b -> c -> a form a cycle; remove one of these inputs"],
        ),
        (
            "self cycle",
            r#"[jobs.a]
inputs = ["a"]
sh = "x"
"#,
            &["1:7: jobs a -> a form a cycle; remove one of these inputs"],
        ),
        (
            "unreachable: hanging off a cycle",
            r#"[jobs.a]
inputs = ["b"]
sh = "x"
[jobs.b]
inputs = ["a"]
sh = "x"
[jobs.c]
inputs = ["a"]
sh = "x"
"#,
            &[
                "1:7: jobs a -> b -> a form a cycle; remove one of these inputs",
                "7:7: job \"c\" can never run: none of its inputs leads back to \"quire/push\"; add \"quire/push\" or a job that runs to its inputs",
            ],
        ),
        (
            "downstream of a job with a wrong input: only that input is reported",
            r#"[jobs.a]
inputs = ["nope"]
sh = "x"
[jobs.b]
inputs = ["a"]
sh = "x"
"#,
            &[
                "1:7: job \"a\": input \"nope\" names no job and no source; define [jobs.nope] or use \"quire/push\"",
            ],
        ),
        (
            "bad job id",
            r#"[jobs."../etc"]
inputs = ["quire/push"]
sh = "x"
"#,
            &[
                "1:7: job id \"../etc\" may only use letters, digits, '_' and '-'; rename the table [jobs.---etc]",
            ],
        ),
        (
            "job id with a slash",
            r#"[jobs."a/b"]
inputs = ["quire/push"]
sh = "x"
"#,
            &[
                "1:7: job id \"a/b\" may only use letters, digits, '_' and '-'; rename the table [jobs.a-b]",
            ],
        ),
        (
            "unicode look-alike id",
            r#"[jobs."tеst"]
inputs = ["quire/push"]
sh = "x"
"#,
            &[
                "1:7: job id \"tеst\" may only use letters, digits, '_' and '-'; rename the table [jobs.t-st]",
            ],
        ),
        (
            "empty sh",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = []
"#,
            &["1:7: job \"a\": sh is empty; give at least one command"],
        ),
        (
            "blank command",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = ["  "]
"#,
            &["1:7: job \"a\": step 1 is an empty command; write the command to run"],
        ),
        (
            "empty argv",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = ["true", []]
"#,
            &[
                "1:7: job \"a\": step 2 is an argv without a program; its first element names the program to run",
            ],
        ),
        (
            "NUL in a command",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "a\u0000b"
"#,
            &["1:7: job \"a\": step 1 contains a NUL byte, which no command line can hold"],
        ),
        (
            "bad timeout",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
timeout = "5 parsecs"
"#,
            &[
                "1:7: job \"a\": timeout \"5 parsecs\" is not a span; write e.g. \"90s\", \"20m\" or \"1h30m\"",
            ],
        ),
        (
            "zero timeout",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
timeout = "0s"
"#,
            &[
                "1:7: job \"a\": timeout \"0s\" is not a span; write e.g. \"90s\", \"20m\" or \"1h30m\"",
            ],
        ),
        (
            "bad glob",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
when = { tags = ["v["] }
"#,
            &[
                "1:7: job \"a\": when.tags pattern \"v[\" is invalid (invalid range pattern); fix the glob",
            ],
        ),
        (
            "empty when",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
when = {}
"#,
            &[
                "1:7: job \"a\": when has no branches and no tags, so the job could never run; list patterns or remove when",
            ],
        ),
        (
            "bad env name",
            r#"[env]
"MY-VAR" = "1"
[jobs.a]
inputs = ["quire/push"]
sh = "x"
"#,
            &[
                "2:1: env name \"MY-VAR\" is not a variable name; use letters, digits and '_', not starting with a digit",
            ],
        ),
        (
            "bad secret name",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
secrets = ["MY-TOKEN"]
"#,
            &[
                "1:7: job \"a\": secret name \"MY-TOKEN\" is not a variable name; use letters, digits and '_', not starting with a digit",
            ],
        ),
        (
            "empty artifact",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
artifacts = ["dist/", ""]
"#,
            &[
                "1:7: job \"a\": artifacts entry 2 is empty; write a path or glob relative to the workspace, e.g. \"dist/*.tar.gz\"",
            ],
        ),
        (
            "absolute artifact",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
artifacts = ["/etc/passwd"]
"#,
            &[
                "1:7: job \"a\": artifact \"/etc/passwd\" is an absolute path; write it relative to the workspace, e.g. \"dist/*.tar.gz\"",
            ],
        ),
        (
            "artifact climbing out",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
artifacts = ["dist/../../out/"]
"#,
            &[
                "1:7: job \"a\": artifact \"dist/../../out/\" climbs out of the workspace with '..'; write a path inside the workspace",
            ],
        ),
        (
            "bad artifact glob",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
artifacts = ["dist/["]
"#,
            &[
                "1:7: job \"a\": artifact \"dist/[\" is not a valid glob (invalid range pattern); fix the glob",
            ],
        ),
        (
            "empty cache path",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
cache = ["target", ""]
"#,
            &[
                "1:7: job \"a\": cache entry 2 is empty; write a path relative to the workspace, e.g. \"target\"",
            ],
        ),
        (
            "absolute cache path",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
cache = ["/root/.cargo"]
"#,
            &[
                "1:7: job \"a\": cache path \"/root/.cargo\" is an absolute path; write it relative to the workspace, e.g. \"target\"",
            ],
        ),
        (
            "cache path climbing out",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
cache = ["target/../../x"]
"#,
            &[
                "1:7: job \"a\": cache path \"target/../../x\" climbs out of the workspace with '..'; write a path inside the workspace",
            ],
        ),
        (
            "cache path in .git",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
cache = ["./.GIT/objects"]
"#,
            &[
                "1:7: job \"a\": cache path \"./.GIT/objects\" is in .git, which quire writes for every run; cache a directory of the checkout instead",
            ],
        ),
        (
            "cache path of the whole workspace",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
cache = ["./"]
"#,
            &[
                "1:7: job \"a\": cache path \"./\" is the whole workspace; name a directory in it, e.g. \"target\"",
            ],
        ),
        (
            "duplicate cache path",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
cache = ["target", "./target/"]
"#,
            &["1:7: job \"a\": cache path \"./target/\" is listed twice; remove one"],
        ),
        (
            "nested cache paths",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
cache = ["target/debug", "target"]
"#,
            &[
                "1:7: job \"a\": cache paths \"target/debug\" and \"target\" overlap; keep the outer one",
            ],
        ),
        (
            "NUL in a cache path",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
cache = ["a\u0000b"]
"#,
            &["1:7: job \"a\": cache path \"a\\0b\" contains a NUL byte, which no path can hold"],
        ),
        (
            "cache not a list of strings",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
cache = "target"
"#,
            &["4:9: invalid type: string \"target\", expected a sequence"],
        ),
        (
            "artifacts not a list of strings",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
artifacts = "dist/"
"#,
            &["4:13: invalid type: string \"dist/\", expected a sequence"],
        ),
        (
            "resources not a table",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
resources = "big"
"#,
            &[
                "1:7: job \"a\": resources is \"big\"; write a table, e.g. resources = { cpus = 2, memory = \"4G\" }",
            ],
        ),
        (
            "cpus out of range",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
resources = { cpus = 0 }
"#,
            &["1:7: job \"a\": resources.cpus is 0; write a whole number of CPUs from 1 to 1024"],
        ),
        (
            "memory without a known unit",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
resources = { memory = "4GB" }
"#,
            &[
                "1:7: job \"a\": resources.memory is \"4GB\"; write a size with a unit K, M, G or T (powers of 1024, as Slurm's --mem reads them), e.g. \"512M\" or \"4G\", or a whole number of MiB",
            ],
        ),
        (
            "gpus out of range",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
resources = { gpus = 65 }
"#,
            &["1:7: job \"a\": resources.gpus is 65; write a whole number of GPUs from 0 to 64"],
        ),
        (
            "constraint with a character Slurm's features do not use",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
resources = { constraint = "avx2 ib" }
"#,
            &[
                "1:7: job \"a\": resources.constraint \"avx2 ib\" holds ' '; a constraint may hold only letters, digits and _ . , & | ! ( ) * : [ ] -",
            ],
        ),
        (
            "unknown key in resources",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
resources = { mem = "4G" }
"#,
            &[
                "1:7: job \"a\": resources has no key \"mem\"; the keys are cpus, memory, gpus and constraint",
            ],
        ),
        (
            "bad job env name",
            r#"[jobs.a]
inputs = ["quire/push"]
sh = "x"
env = { "1X" = "1" }
"#,
            &[
                "4:9: job \"a\": env name \"1X\" is not a variable name; use letters, digits and '_', not starting with a digit",
            ],
        ),
    ];
    for (what, text, expected) in cases {
        let got = errors(text);
        assert_eq!(&got, expected, "{what}:\n{text}");
    }
    // And each case beside a valid job still fails the same way (errors are
    // not swallowed by a good neighbour).
    assert_eq!(
        errors(&format!(
            r#"{OK_JOB}[jobs.b]
inputs = []
sh = "x"
"#
        )),
        [
            "4:7: job \"b\": inputs is empty; list the jobs it needs, or \"quire/push\" to run on every push"
        ]
    );
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let text = r#"[jobs.b]
inputs = []
sh = []
timeout = "soon"
resources = { cpus = "2", memory = -1 }
[jobs."x y"]
inputs = ["nope"]
sh = "x"
"#;
    assert_eq!(
        errors(text),
        [
            "1:7: job \"b\": inputs is empty; list the jobs it needs, or \"quire/push\" to run on every push",
            "1:7: job \"b\": sh is empty; give at least one command",
            "1:7: job \"b\": timeout \"soon\" is not a span; write e.g. \"90s\", \"20m\" or \"1h30m\"",
            "1:7: job \"b\": resources.cpus is \"2\"; write a whole number of CPUs from 1 to 1024",
            "1:7: job \"b\": resources.memory is -1; write a size with a unit K, M, G or T (powers of 1024, as Slurm's --mem reads them), e.g. \"512M\" or \"4G\", or a whole number of MiB",
            "6:7: job id \"x y\" may only use letters, digits, '_' and '-'; rename the table [jobs.x-y]",
            "6:7: job \"x y\": input \"nope\" names no job and no source; define [jobs.nope] or use \"quire/push\"",
        ]
    );
}

#[test]
fn a_valid_file_parses_into_typed_jobs() {
    let pipeline = Pipeline::parse(
        r#"
        [env]
        RUST_BACKTRACE = "1"

        [jobs.test]
        inputs = ["quire/push"]
        sh = ["cargo test --all-features"]
        timeout = "20m"
        resources = { cpus = 2, memory = "4G", gpus = 1, constraint = "avx2" }

        [jobs.release]
        inputs = ["test"]
        when = { tags = ["v*"] }
        sh = [["cargo", "build", "--release"]]
        env = { PROFILE = "release" }
        allow_failure = false
        "#,
    )
    .unwrap();
    assert_eq!(
        pipeline.env,
        [("RUST_BACKTRACE".to_string(), "1".to_string())]
    );
    let test = pipeline.job("test").unwrap();
    assert_eq!(test.timeout, Some(std::time::Duration::from_secs(1200)));
    assert_eq!(
        test.resources,
        quire_pipeline::Resources {
            cpus: Some(2),
            memory_mb: Some(4096),
            gpus: Some(1),
            constraint: Some("avx2".into()),
        }
    );
    let release = pipeline.job("release").unwrap();
    assert_eq!(release.steps[0].display(), "cargo build --release");
    assert_eq!(release.resources, quire_pipeline::Resources::default());
    assert_eq!(
        release.env,
        [("PROFILE".to_string(), "release".to_string())]
    );
    assert_eq!(pipeline.order(), [0, 1]);
}

/// Arbitrary TOML values, nested a few levels.
fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(toml::Value::String),
        any::<i64>().prop_map(toml::Value::Integer),
        any::<bool>().prop_map(toml::Value::Boolean),
        prop_oneof![
            Just("quire/push"),
            Just("a"),
            Just("b"),
            Just("c"),
            Just("x/y"),
            Just("..")
        ]
        .prop_map(|s| toml::Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(toml::Value::Array),
            proptest::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("jobs".to_string()),
        Just("env".to_string()),
        Just("inputs".to_string()),
        Just("sh".to_string()),
        Just("when".to_string()),
        Just("branches".to_string()),
        Just("tags".to_string()),
        Just("timeout".to_string()),
        Just("allow_failure".to_string()),
        Just("resources".to_string()),
        Just("cpus".to_string()),
        Just("memory".to_string()),
        Just("gpus".to_string()),
        Just("constraint".to_string()),
        Just("a".to_string()),
        Just("b".to_string()),
        "[a-z./ -]{0,6}",
    ]
}

/// Pipeline-shaped documents: a few jobs wired to each other at random.
fn pipeline_doc() -> impl Strategy<Value = String> {
    let job = (
        proptest::collection::vec(
            prop_oneof![
                Just("quire/push"),
                Just("a"),
                Just("b"),
                Just("c"),
                Just("d")
            ],
            0..4,
        ),
        proptest::collection::vec("[ -~]{0,12}", 0..3),
        proptest::option::of("[0-9]{1,3}[smh]|[a-z ]{0,5}"),
    );
    proptest::collection::btree_map(
        prop_oneof![Just("a"), Just("b"), Just("c"), Just("d"), Just("e/f")],
        job,
        0..5,
    )
    .prop_map(|jobs| {
        let mut doc = String::new();
        for (id, (inputs, sh, timeout)) in jobs {
            doc.push_str(&format!(
                r#"[jobs.{id:?}]
inputs = {inputs:?}
sh = {sh:?}
"#
            ));
            if let Some(t) = timeout {
                doc.push_str(&format!("timeout = {t:?}\n"));
            }
        }
        doc
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(found) = Pipeline::parse(&text) {
            prop_assert!(!found.is_empty());
        }
    }

    #[test]
    fn random_toml_documents_never_panic_and_errors_carry_a_location(value in toml_value()) {
        let Ok(text) = toml::to_string(&value) else { return Ok(()) };
        if let Err(found) = Pipeline::parse(&text) {
            prop_assert!(!found.is_empty());
            for d in &found {
                prop_assert!(d.line.is_some() || d.message.contains("defines no jobs"), "{d}");
            }
        }
    }

    #[test]
    fn random_pipelines_either_validate_with_a_complete_order_or_explain(doc in pipeline_doc()) {
        match Pipeline::parse(&doc) {
            Ok(pipeline) => {
                let order = pipeline.order();
                prop_assert_eq!(order.len(), pipeline.jobs.len(), "every valid job is scheduled");
                for (pos, &i) in order.iter().enumerate() {
                    for need in pipeline.jobs[i].needs() {
                        prop_assert!(order[..pos].contains(&need));
                    }
                }
            }
            Err(found) => prop_assert!(found.iter().all(|d| !d.message.is_empty())),
        }
    }
}

#[test]
fn deep_nesting_and_huge_files_are_errors_not_crashes() {
    let deep = format!("x = {}1{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Pipeline::parse(&deep).is_err());
    let mut huge = String::new();
    for i in 0..20_000 {
        huge.push_str(&format!(
            r#"[jobs.j{i}]
inputs = ["quire/push"]
sh = "true"
"#
        ));
    }
    // Over the default limits: refused for its size.
    assert_eq!(
        errors(&huge),
        [format!(
            "the file is {} bytes, over the 524288 bytes (max_pipeline_kb = 512) quire reads; it was not read",
            huge.len()
        )]
    );
    let roomy = Limits {
        max_file_kb: 1024,
        max_jobs: 20_000,
        ..Limits::default()
    };
    assert_eq!(
        Pipeline::parse_with(&huge, &roomy).unwrap().jobs.len(),
        20_000
    );
}

fn errors_with(text: &str, limits: &Limits) -> Vec<String> {
    match Pipeline::parse_with(text, limits) {
        Ok(_) => vec![],
        Err(found) => found.iter().map(ToString::to_string).collect(),
    }
}

fn jobs(n: usize, steps: usize) -> String {
    let sh = vec!["\"true\""; steps].join(", ");
    (0..n)
        .map(|i| {
            format!(
                r#"[jobs.j{i}]
inputs = ["quire/push"]
sh = [{sh}]
"#
            )
        })
        .collect()
}

#[test]
fn files_jobs_and_steps_over_the_limits_are_refused_with_exact_messages() {
    let small = Limits {
        max_file_kb: 1,
        max_jobs: 2,
        max_steps: 3,
    };
    let at_the_limit = format!("{OK_JOB}{}", "#".repeat(1024 - OK_JOB.len()));
    assert_eq!(errors_with(&at_the_limit, &small), Vec::<String>::new());
    assert_eq!(
        errors_with(&format!("{at_the_limit}#"), &small),
        [
            "the file is 1025 bytes, over the 1024 bytes (max_pipeline_kb = 1) quire reads; it was not read"
        ]
    );
    assert_eq!(small.refuse_size(1024), None);
    assert_eq!(
        small.refuse_size(50 << 20).unwrap()[0].message,
        "the file is 52428800 bytes, over the 1024 bytes (max_pipeline_kb = 1) quire reads; it was not read"
    );

    // Too many jobs is the one problem reported, at the first job too many.
    assert_eq!(errors_with(&jobs(2, 1), &small), Vec::<String>::new());
    let three = format!(
        r#"{}[jobs.bad]
inputs = []
sh = []
"#,
        jobs(2, 1)
    );
    assert_eq!(
        errors_with(&three, &small),
        [
            "7:7: the pipeline defines 3 jobs, more than the 2 allowed (max_jobs); remove jobs or merge their steps"
        ]
    );

    // Too many steps: reported for the job, beside its other problems.
    assert_eq!(errors_with(&jobs(1, 3), &small), Vec::<String>::new());
    assert_eq!(
        errors_with(
            r#"[jobs.a]
inputs = ["nope"]
sh = ["", "", "", ""]
"#,
            &small
        ),
        [
            "1:7: job \"a\": input \"nope\" names no job and no source; define [jobs.nope] or use \"quire/push\"",
            "1:7: job \"a\": sh has 4 steps, more than the 3 allowed (max_steps); join commands into one step or split the job",
        ]
    );

    // The defaults: 500 jobs, 1000 steps a job.
    assert_eq!(Limits::default().max_jobs, 500);
    assert_eq!(errors(&jobs(500, 1)), Vec::<String>::new());
    assert_eq!(
        errors(&jobs(501, 1)),
        [
            "1501:7: the pipeline defines 501 jobs, more than the 500 allowed (max_jobs); remove jobs or merge their steps"
        ]
    );
    assert_eq!(errors(&jobs(1, 1000)), Vec::<String>::new());
    assert_eq!(
        errors(&jobs(1, 1001)),
        [
            "1:7: job \"j0\": sh has 1001 steps, more than the 1000 allowed (max_steps); join commands into one step or split the job"
        ]
    );
}

#[test]
fn a_file_with_thousands_of_problems_lists_the_first_fifty_and_counts_the_rest() {
    let text: String = (0..3000)
        .map(|i| {
            format!(
                r#"[jobs.j{i}]
inputs = ["nope{i}"]
sh = "true"
"#
            )
        })
        .collect();
    let roomy = Limits {
        max_jobs: 3000,
        ..Limits::default()
    };
    let found = Pipeline::parse_with(&text, &roomy).unwrap_err();
    assert_eq!(
        (found.len(), found.omitted, found.total()),
        (50, 2950, 3000)
    );
    for (i, d) in found.iter().enumerate() {
        assert_eq!(
            d.to_string(),
            format!(
                "{}:7: job \"j{i}\": input \"nope{i}\" names no job and no source; define [jobs.nope{i}] or use \"quire/push\"",
                3 * i + 1
            )
        );
    }
    assert_eq!(
        found.omitted_line().as_deref(),
        Some("and 2950 more problems, not listed; fix the ones above and validate again")
    );
}

#[test]
fn a_job_id_over_128_bytes_is_refused_as_migration_refuses_it() {
    let ok = "a".repeat(128);
    let long = "a".repeat(129);
    let file = |id: &str| format!("[jobs.{id}]\ninputs = [\"quire/push\"]\nsh = \"x\"\n");
    assert!(errors(&file(&ok)).is_empty());
    assert_eq!(
        errors(&file(&long)),
        [
            "1:7: job id \"aaaaaaaaaaaaaaaaaaaa\"... is 129 bytes long, over the 128 a job id may have; shorten the table name"
        ]
    );
}

#[test]
fn workspace_refs_are_pushed_by_default_all_when_asked_and_nothing_else() {
    use quire_pipeline::WorkspaceRefs;
    let job = "[jobs.a]\ninputs = [\"quire/push\"]\nsh = \"true\"\n";
    assert_eq!(Pipeline::parse(job).unwrap().refs, WorkspaceRefs::Pushed);
    let all = format!("[workspace]\nrefs = \"all\"\n{job}");
    assert_eq!(Pipeline::parse(&all).unwrap().refs, WorkspaceRefs::All);
    let pushed = format!("[workspace]\nrefs = \"pushed\"\n{job}");
    assert_eq!(
        Pipeline::parse(&pushed).unwrap().refs,
        WorkspaceRefs::Pushed
    );
    let wrong = format!("[workspace]\nrefs = \"some\"\n{job}");
    let problems = Pipeline::parse(&wrong).unwrap_err();
    let text = problems
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        text,
        "2:8: workspace.refs is \"some\"; it must be \"pushed\" (the pushed ref alone, the default) or \"all\" (every branch and tag of the repository)"
    );
    let unknown = format!("[workspace]\ndepth = 1\n{job}");
    assert!(Pipeline::parse(&unknown).is_err());
}
