//! Limits on what a push may hand quire (docs/PIPELINE.md, "Limits"): a
//! pipeline file too large to read, too many jobs, a step printing more
//! than its log keeps, and a multi-line secret a step prints. Each through
//! a real push, the installed hook and a real worker.

use quire_store::{FailureKind, RunState};
use quire_worker::workers;

use quire_testkit::{Env, queued_runs};

/// The hook's lines about the refused file, and the run it recorded.
fn refused_push(
    env: &Env,
    repo: &quire_testkit::Repo,
    pipeline: &str,
) -> (String, quire_store::Run) {
    repo.commit(&[(".quire/ci.toml", pipeline)], "pipeline");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "a refused pipeline does not refuse the push: {stderr}");
    assert!(
        stderr.contains("remote: quire: .quire/ci.toml is invalid; run "),
        "{stderr}"
    );
    let runs = env.all_runs();
    let run = runs.first().unwrap().clone();
    assert_eq!(
        (run.state, run.failure_kind),
        (RunState::Failed, Some(FailureKind::PipelineInvalid)),
        "{run:?}"
    );
    (stderr, run)
}

#[test]
fn a_50_mb_pipeline_file_is_refused_from_its_size_unread_by_the_hook_and_the_worker() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    // A syntax error on its first line: had the hook parsed the file, that
    // would be the error, not its size.
    let mut huge = String::from(
        r#"[jobs.a
"#,
    );
    while huge.len() < 50 * 1024 * 1024 {
        huge.push_str("# padding, padding, padding, padding, padding, padding\n");
    }
    huge.truncate(50 * 1024 * 1024);
    let message = ".quire/ci.toml: the file is 52428800 bytes, over the 524288 bytes (max_pipeline_kb = 512) quire reads; it was not read";
    let (stderr, run) = refused_push(&env, &repo, &huge);
    assert!(
        stderr.contains(&format!("remote: quire:   {message}")),
        "{stderr}"
    );
    assert!(!stderr.contains("unclosed table"), "{stderr}");
    assert_eq!(run.failure_detail.as_deref(), Some(message));
    assert!(env.store().run_detail(&run.id).unwrap().jobs.is_empty());

    // The worker holds the file to the home's limits as they are when it
    // runs: recorded under a larger cap, refused under a smaller one.
    env.config("max_workers = 1\nmax_pipeline_kb = 1024\n");
    // Holding the only worker slot keeps the run pending.
    let slot = workers::try_acquire(&env.home(), 1).unwrap().unwrap();
    let mut big = String::from(
        r#"[jobs.a]
inputs = ["quire/push"]
sh = "echo ran"
"#,
    );
    while big.len() < 600 * 1024 {
        big.push_str("# padding, padding, padding, padding, padding, padding\n");
    }
    repo.commit(&[(".quire/ci.toml", &big)], "big");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    let queued = queued_runs(&stderr);
    assert_eq!(queued.len(), 1, "{stderr}");
    env.config("max_workers = 1\nmax_pipeline_kb = 512\n");
    drop(slot);
    env.run(&["work"]).assert().success();
    let run = env.wait_terminal(&queued[0]);
    assert_eq!(
        (run.state, run.failure_kind),
        (RunState::Failed, Some(FailureKind::PipelineInvalid))
    );
    assert_eq!(
        run.failure_detail.as_deref(),
        Some(
            format!(
                ".quire/ci.toml: the file is {} bytes, over the 524288 bytes (max_pipeline_kb = 512) quire reads; it was not read",
                big.len()
            )
            .as_str()
        )
    );
    assert!(env.store().run_detail(&run.id).unwrap().jobs.is_empty());
}

#[test]
fn a_pipeline_with_one_job_more_than_max_jobs_is_refused() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let jobs = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!(
                    r#"[jobs.j{i}]
inputs = ["quire/push"]
sh = "true"
"#
                )
            })
            .collect()
    };
    let message = ".quire/ci.toml:1501:7: the pipeline defines 501 jobs, more than the 500 allowed (max_jobs); remove jobs or merge their steps";
    let (stderr, run) = refused_push(&env, &repo, &jobs(501));
    assert!(
        stderr.contains(&format!("remote: quire:   {message}")),
        "{stderr}"
    );
    assert_eq!(run.failure_detail.as_deref(), Some(message));

    // The home sets the limits; steps are counted per job.
    env.config("max_jobs = 2\nmax_steps = 2\n");
    let (stderr, run) = refused_push(
        &env,
        &repo,
        r#"[jobs.a]
inputs = ["quire/push"]
sh = ["true", "true", "true"]
"#,
    );
    let message = ".quire/ci.toml:1:7: job \"a\": sh has 3 steps, more than the 2 allowed (max_steps); join commands into one step or split the job";
    assert!(stderr.contains(message), "{stderr}");
    assert_eq!(run.failure_detail.as_deref(), Some(message));
    let (stderr, _) = refused_push(&env, &repo, &jobs(3));
    assert!(
        stderr.contains("the pipeline defines 3 jobs, more than the 2 allowed (max_jobs)"),
        "{stderr}"
    );
    // `quire-run validate` holds a file to the home's limits too.
    let file = env.path().join("three.toml");
    std::fs::write(&file, jobs(3)).unwrap();
    let out = env
        .run(&["validate", file.to_str().unwrap()])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_eq!(
        stderr,
        format!(
            "{}:7:7: the pipeline defines 3 jobs, more than the 2 allowed (max_jobs); remove jobs or merge their steps\n",
            file.display()
        )
    );
    env.config("max_pipeline_kb = 1\n");
    std::fs::write(&file, format!("{}{}", jobs(1), "#".repeat(2000))).unwrap();
    let out = env
        .run(&["validate", file.to_str().unwrap()])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.ends_with(": the file is 2046 bytes, over the 1024 bytes (max_pipeline_kb = 1) quire reads; it was not read\n"),
        "{stderr}"
    );
}

#[test]
fn a_file_with_many_problems_lists_fifty_and_counts_the_rest() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let pipeline: String = (0..300)
        .map(|i| {
            format!(
                r#"[jobs.j{i}]
inputs = ["nope"]
sh = "true"
"#
            )
        })
        .collect();
    let (stderr, run) = refused_push(&env, &repo, &pipeline);
    let listed = stderr
        .lines()
        .filter(|l| l.contains("names no job and no source"))
        .count();
    assert_eq!(listed, 50, "{stderr}");
    assert!(
        stderr.contains(
            "remote: quire:   .quire/ci.toml: and 250 more problems, not listed; fix the ones above and validate again"
        ),
        "{stderr}"
    );
    assert_eq!(
        run.failure_detail.as_deref(),
        Some(
            ".quire/ci.toml:1:7: job \"j0\": input \"nope\" names no job and no source; define [jobs.nope] or use \"quire/push\" (and 299 more)"
        )
    );
}

/// A log's lines as (stream, tag, text), stamps checked and dropped.
fn log_lines(text: &str) -> Vec<(String, String, String)> {
    text.as_bytes()
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = String::from_utf8_lossy(l);
            let mut parts = l.splitn(4, ' ');
            let stamp = parts.next().unwrap();
            assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{stamp}");
            let stream = parts.next().unwrap().to_string();
            let tag = parts.next().unwrap().to_string();
            (stream, tag, parts.next().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn a_step_printing_past_max_log_mb_has_its_log_capped_with_a_note_and_the_run_goes_on() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    env.config("max_log_mb = 1\n");
    // 3,000,000 bytes of "y\n" (far more than a pipe holds: a step whose
    // pipe were no longer read would block), then a line on stderr.
    let run = repo.push_and_wait(
        r#"[jobs.noisy]
inputs = ["quire/push"]
sh = ["yes | head -c 3000000; echo done >&2", "echo after"]
"#,
    );
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let capped = env.step_log(&run.id, "noisy", 1);
    let size = capped.len();
    let lines = log_lines(&capped);
    let logged = lines.iter().filter(|(s, _, _)| s == "stdout").count() as u64;
    assert!(logged > 10_000, "{logged} lines logged");
    assert!(
        lines
            .iter()
            .filter(|(s, _, _)| s == "stdout")
            .all(|(_, tag, text)| tag == "F" && text == "y")
    );
    // What was not logged is counted: 1,500,000 lines of 2 bytes and
    // "done\n" on stderr.
    let (stream, tag, note) = lines.last().unwrap();
    assert_eq!((stream.as_str(), tag.as_str()), ("stderr", "F"));
    assert_eq!(
        note,
        &format!(
            "quire: log: capped at 1 MiB (max_log_mb); the {} bytes ({} lines) of output after that were not logged",
            3_000_000 - 2 * logged + 5,
            1_500_000 - logged + 1
        )
    );
    assert!(size <= (1 << 20) + 200, "the log is {size} bytes");
    // The run went on to the next step, whose log is its own.
    let after = log_lines(&env.step_log(&run.id, "noisy", 2));
    assert_eq!(
        after,
        [("stdout".to_string(), "F".to_string(), "after".to_string())]
    );
}

/// An SSH private key as a file holds it: long lines, a short one.
const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDqQuIRQbnqs8dGpYVlMXFd7V4MWjJ5NxbWf2uIb7nzdQAAAJjd2Zvz3dmb
8wAAAAtzc2gtZWQyNTUxOQAAACDqQuIRQbnqs8dGpYVlMXFd7V4MWjJ5NxbWf2uIb7nzdQ
AAAEBmFh0bLT0VYOdvh6nbNXuAp3WsQ6KrXo6sDw0aAcQ3TOpC4hFBueqzx0alhWUxcV3t
Ag==
-----END OPENSSH PRIVATE KEY-----
";

#[test]
fn a_multi_line_file_secret_printed_by_a_step_reaches_no_log_line_by_line() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let key_file = env.path().join("deploy_key");
    std::fs::write(&key_file, KEY).unwrap();
    env.config(&format!(
        r#"[secrets]
SSH_KEY = {{ file = "{}" }}
"#,
        key_file.display()
    ));
    let pipeline = r#"
[jobs.deploy]
inputs = ["quire/push"]
secrets = ["SSH_KEY"]
# stderr through a pipe of its own: redacted there too.
separate_stderr = true
sh = [
  "printf '%s\n' \"$SSH_KEY\" | cat",
  "printf '%s\n' \"$SSH_KEY\" >&2",
  "printf '%s\n' \"$SSH_KEY\"",
  "printf '%s\n' \"$SSH_KEY\" | tr -d '\n'; echo",
  "printf '%s\n' \"$SSH_KEY\" | dd bs=5 status=none",
  "head -c 16381 /dev/zero | tr '\\0' x; printf '%s\n' \"$SSH_KEY\"",
]
"#;
    let run = repo.push_and_wait(pipeline);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    // The steps read the secret from the environment: its file is hidden
    // from them by the sandbox (docs/SECURITY.md).
    let mut everything = String::new();
    for seq in 1..=6 {
        everything.push_str(&env.step_log(&run.id, "deploy", seq));
    }
    // The store, where the packed logs went, holds none of it either.
    for file in ["quire.db", "quire.db-wal"] {
        if let Ok(bytes) = std::fs::read(env.home().dir().join(file)) {
            everything.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    let shown = env.runs(&["show", &run.id, "--json"]).assert().success();
    everything.push_str(&String::from_utf8_lossy(&shown.get_output().stdout));
    let logs = env.runs(&["logs", &run.id]).assert().success();
    everything.push_str(&String::from_utf8_lossy(&logs.get_output().stdout));
    let long_lines: Vec<&str> = KEY.lines().filter(|l| l.len() >= 8).collect();
    assert_eq!(long_lines.len(), 6);
    for line in long_lines {
        assert!(!everything.contains(line), "{line} leaked:\n{everything}");
    }
    // Each step printed it, redacted line by line.
    assert!(
        everything.matches("stdout F ***").count() >= 3 * 6,
        "{everything}"
    );
    assert!(
        everything.matches("stderr F ***").count() >= 6,
        "{everything}"
    );
}

#[test]
fn the_documented_secrets_example_hands_the_token_to_curl_on_stdin_not_in_its_arguments() {
    let env = Env::new();
    // The example of docs/PIPELINE.md, "Secrets", as written there.
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PIPELINE.md")).unwrap();
    let start = doc
        .find(
            r#"[jobs.deploy]
inputs = ["test"]
secrets = ["DEPLOY_TOKEN"]"#,
        )
        .expect("the secrets example");
    let example = &doc[start..][..doc[start..].find("```").unwrap()];
    let work = env.path().join("work");
    std::fs::create_dir_all(work.join(".quire")).unwrap();
    std::fs::write(
        work.join(".quire/ci.toml"),
        example.replace("inputs = [\"test\"]", "inputs = [\"quire/push\"]"),
    )
    .unwrap();
    // A curl that records what it was given.
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let (args, stdin) = (env.path().join("args"), env.path().join("stdin"));
    std::fs::write(
        bin.join("curl"),
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\ncat > {}\n",
            args.display(),
            stdin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("curl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.config(
        r#"[secrets]
DEPLOY_TOKEN = "tok-2b7e-from-config"
"#,
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    env.run(&["exec", "--workspace", work.to_str().unwrap()])
        .env("PATH", path)
        .assert()
        .success();
    let args = std::fs::read_to_string(&args).unwrap();
    assert!(args.contains("https://deploy.example/release"), "{args}");
    assert!(!args.contains("tok-2b7e-from-config"), "{args}");
    assert_eq!(
        std::fs::read_to_string(&stdin).unwrap(),
        "Authorization: Bearer tok-2b7e-from-config\n"
    );
}
