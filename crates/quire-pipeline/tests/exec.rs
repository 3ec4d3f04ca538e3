//! The executor with real processes: environment, workspace, failure and
//! skip propagation, when-filters, timeouts, cancellation, logs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quire_model::JobState;
use quire_model::events::Event;
use quire_pipeline::Pipeline;
use quire_pipeline::events::Recorded;
use quire_pipeline::exec::{Cancel, Executor, RunContext, RunResult};

struct Run {
    dir: tempfile::TempDir,
    ctx: RunContext,
}

impl Run {
    fn new(ref_name: &str) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("workspace");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::write(workspace.join("hello.txt"), "hi\n").unwrap();
        let ctx = RunContext {
            // Unique: a job's end kills what carries its run id, and tests
            // run side by side.
            run_id: format!("run-{}", dir.path().file_name().unwrap().to_string_lossy()),
            repo: "app.git".into(),
            ref_name: ref_name.into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            previous_sha: Some("1111111111111111111111111111111111111111".into()),
            traceparent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01".into(),
            workspace,
            logs_dir: dir.path().join("logs"),
            secrets: vec![],
        };
        Run { dir, ctx }
    }

    fn exec(&self, toml: &str) -> (RunResult, Vec<Event>) {
        self.exec_with(toml, &Executor::default(), &Cancel::default())
    }

    fn exec_with(
        &self,
        toml: &str,
        executor: &Executor,
        cancel: &Cancel,
    ) -> (RunResult, Vec<Event>) {
        let pipeline = Pipeline::parse(toml).unwrap_or_else(|e| panic!("{e:?}"));
        let mut sink = Recorded::default();
        let result = executor
            .run(&pipeline, &self.ctx, &mut sink, cancel)
            .unwrap();
        (result, sink.0)
    }

    fn log(&self, job: &str, seq: i64) -> Vec<(String, String, String)> {
        let path: PathBuf = self.ctx.logs_dir.join(job).join(format!("{seq}.log"));
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let l = String::from_utf8_lossy(l);
                let mut parts = l.splitn(4, ' ');
                let stamp = parts.next().unwrap();
                stamp
                    .parse::<jiff::Timestamp>()
                    .unwrap_or_else(|e| panic!("{stamp}: {e}"));
                let stream = parts.next().unwrap().to_string();
                let tag = parts.next().unwrap().to_string();
                (stream, tag, parts.next().unwrap_or("").to_string())
            })
            .collect()
    }

    fn stdout(&self, job: &str, seq: i64) -> Vec<String> {
        self.log(job, seq)
            .into_iter()
            .filter(|(s, _, _)| s == "stdout")
            .map(|(_, _, t)| t)
            .collect()
    }
}

fn job_states(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::JobFinished { job, state, .. } => Some((job.clone(), state.to_string())),
            Event::JobSkipped { job, reason, .. } => {
                Some((job.clone(), format!("skipped: {reason}")))
            }
            _ => None,
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn steps_see_the_documented_environment_and_run_in_the_workspace() {
    let run = Run::new("refs/heads/main");
    // The test process's own environment (CARGO_*, RUST_TEST_*) must not
    // reach the step.
    let (result, _events) = run.exec(
        r#"
        [env]
        SHARED = "pipeline"
        OVERRIDE = "pipeline"
        [jobs.env]
        inputs = ["quire/push"]
        env = { OVERRIDE = "job", QUIRE_REPO = "spoofed" }
        sh = ["env | sort", "pwd", "cat hello.txt", ["printf", "%s|", "a b", "it's"]]
        "#,
    );
    assert_eq!(
        result,
        RunResult::Complete,
        "{:#?}\n{:?}",
        _events,
        (1..=4)
            .map(
                |i| std::fs::read_to_string(run.ctx.logs_dir.join(format!("env/{i}.log")))
                    .unwrap_or_default()
            )
            .collect::<Vec<_>>()
    );
    let env = run.stdout("env", 1);
    for expected in [
        "CI=true",
        "QUIRE_REPO=app.git",
        "QUIRE_REF=refs/heads/main",
        "QUIRE_SHA=0123456789abcdef0123456789abcdef01234567",
        "QUIRE_BRANCH=main",
        "QUIRE_PREVIOUS_SHA=1111111111111111111111111111111111111111",
        "QUIRE_JOB=env",
        "TRACEPARENT=00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
        "SHARED=pipeline",
        "OVERRIDE=job",
    ] {
        assert!(
            env.iter().any(|l| l == expected),
            "{expected} missing from {env:?}"
        );
    }
    assert!(
        env.iter()
            .any(|l| l == &format!("QUIRE_WORKSPACE={}", run.ctx.workspace.display()))
    );
    assert!(
        env.iter()
            .any(|l| l == &format!("QUIRE_RUN_ID={}", run.ctx.run_id))
    );
    assert!(!env.iter().any(|l| l.starts_with("QUIRE_TAG=")));
    assert!(
        !env.iter()
            .any(|l| l.starts_with("CARGO") || l.starts_with("RUST_TEST")),
        "{env:?}"
    );
    assert_eq!(
        run.stdout("env", 2),
        [run.ctx.workspace.display().to_string()]
    );
    assert_eq!(run.stdout("env", 3), ["hi"]);
    assert_eq!(
        run.log("env", 4),
        [("stdout".into(), "P".into(), "a b|it's|".into())]
    );
}

#[test]
fn a_failing_step_ends_its_job_and_skips_dependents_while_independent_jobs_go_on() {
    let run = Run::new("refs/heads/main");
    let (result, events) = run.exec(
        r#"
        [jobs.build]
        inputs = ["quire/push"]
        sh = ["echo one", "exit 3", "echo never"]
        [jobs.test]
        inputs = ["build"]
        sh = "echo test"
        [jobs.deploy]
        inputs = ["test"]
        sh = "echo deploy"
        [jobs.lint]
        inputs = ["quire/push"]
        sh = "echo lint"
        "#,
    );
    assert_eq!(result, RunResult::Failed);
    assert_eq!(
        job_states(&events),
        pairs(&[
            ("build", "failed"),
            ("test", "skipped: needs build, which failed"),
            ("deploy", "skipped: needs test, which was skipped"),
            ("lint", "complete"),
        ])
    );
    let finished: Vec<(i64, i64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepFinished {
                job,
                seq,
                exit_code,
                ..
            } if job == "build" => Some((*seq, *exit_code)),
            _ => None,
        })
        .collect();
    assert_eq!(finished, [(1, 0), (2, 3)], "the third step never ran");
    assert!(!run.ctx.logs_dir.join("build/3.log").exists());
    assert!(matches!(
        events.last(),
        Some(Event::RunFinished {
            state: quire_model::RunState::Failed,
            failure_kind: Some(quire_model::FailureKind::PipelineFailure),
            ..
        })
    ));
}

#[test]
fn allow_failure_lets_dependents_run_and_the_run_complete() {
    let run = Run::new("refs/heads/main");
    let (result, events) = run.exec(
        r#"
        [jobs.flaky]
        inputs = ["quire/push"]
        sh = "exit 1"
        allow_failure = true
        [jobs.after]
        inputs = ["flaky"]
        sh = "true"
        "#,
    );
    assert_eq!(result, RunResult::Complete);
    assert_eq!(
        job_states(&events),
        pairs(&[("flaky", "failed"), ("after", "complete")])
    );
}

#[test]
fn when_filters_select_jobs_for_branches_and_tags() {
    let pipeline = r#"
        [jobs.test]
        inputs = ["quire/push"]
        sh = "echo $QUIRE_TAG"
        [jobs.release]
        inputs = ["test"]
        when = { tags = ["v*"] }
        sh = "true"
        [jobs.nightly]
        inputs = ["quire/push"]
        when = { branches = ["main"] }
        sh = "true"
        [jobs.publish]
        inputs = ["release"]
        sh = "true"
    "#;
    let tag = Run::new("refs/tags/v1.2");
    let (result, events) = tag.exec(pipeline);
    assert_eq!(result, RunResult::Complete);
    assert_eq!(
        job_states(&events),
        pairs(&[
            ("test", "complete"),
            ("release", "complete"),
            ("nightly", "skipped: when does not match refs/tags/v1.2"),
            ("publish", "complete"),
        ])
    );
    assert_eq!(tag.stdout("test", 1), ["v1.2"]);

    let branch = Run::new("refs/heads/main");
    let (result, events) = branch.exec(pipeline);
    assert_eq!(
        result,
        RunResult::Complete,
        "skipped jobs do not fail a run"
    );
    assert_eq!(
        job_states(&events),
        pairs(&[
            ("test", "complete"),
            ("release", "skipped: when does not match refs/heads/main"),
            ("nightly", "complete"),
            ("publish", "skipped: needs release, which was skipped"),
        ])
    );
}

/// Whether `pid` is still running after a moment to die in: a signalled
/// process is not gone the instant kill() returns.
fn survives(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Block until the step has created `path`: the step's word that it has
/// reached the point the test waits for.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "no {} after 10 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Cancel the run once the step has created `ready`; returns when it did.
fn cancel_when_ready(cancel: &Cancel, ready: PathBuf) -> std::thread::JoinHandle<Instant> {
    let canceller = cancel.clone();
    std::thread::spawn(move || {
        wait_for_file(&ready);
        canceller.cancel();
        Instant::now()
    })
}

fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_timeout_kills_the_step_and_everything_it_started() {
    let run = Run::new("refs/heads/main");
    let pidfile = run.dir.path().join("bg.pid");
    let toml = format!(
        r#"
        [jobs.slow]
        inputs = ["quire/push"]
        timeout = "1s"
        sh = ["sleep 300 & echo $! > {}; sleep 300"]
        [jobs.after]
        inputs = ["slow"]
        sh = "true"
        "#,
        pidfile.display()
    );
    let (result, events) = run.exec(&toml);
    assert_eq!(result, RunResult::Failed);
    assert_eq!(
        job_states(&events),
        pairs(&[
            ("slow", "failed"),
            ("after", "skipped: needs slow, which failed")
        ])
    );
    let code = events.iter().find_map(|e| match e {
        Event::JobFinished { exit_code, .. } => *exit_code,
        _ => None,
    });
    assert_eq!(code, Some(128 + 15), "killed by SIGTERM");
    let background = read_pid(&pidfile);
    assert!(
        !survives(background),
        "the background sleep {background} survived"
    );
    assert!(
        run.log("slow", 1)
            .iter()
            .any(|(s, _, t)| s == "stderr" && t.contains("timeout ran out"))
    );
}

#[test]
fn a_step_that_leaves_a_background_child_leaves_nothing_behind() {
    let run = Run::new("refs/heads/main");
    let pidfile = run.dir.path().join("bg.pid");
    let (result, _) = run.exec(&format!(
        r#"
        [jobs.bg]
        inputs = ["quire/push"]
        sh = ["sleep 300 & echo $! > {}", "echo next"]
        "#,
        pidfile.display()
    ));
    assert_eq!(result, RunResult::Complete);
    let background = read_pid(&pidfile);
    assert!(
        !survives(background),
        "the background sleep {background} survived its step"
    );
    assert_eq!(run.stdout("bg", 2), ["next"]);
}

#[test]
fn cancellation_from_another_thread_aborts_the_running_step_promptly() {
    let run = Run::new("refs/heads/main");
    let ready = run.dir.path().join("ready");
    let cancel = Cancel::default();
    let cancelled = cancel_when_ready(&cancel, ready.clone());
    let (result, events) = run.exec_with(
        &format!(
            r#"
        [jobs.long]
        inputs = ["quire/push"]
        sh = ["touch {}; sleep 60", "echo never"]
        [jobs.next]
        inputs = ["quire/push"]
        sh = "echo never"
        "#,
            ready.display()
        ),
        &Executor::default(),
        &cancel,
    );
    let took = cancelled.join().unwrap().elapsed();
    assert_eq!(result, RunResult::Cancelled);
    assert!(
        took < Duration::from_secs(5),
        "the run went on {took:?} after it was cancelled"
    );
    assert_eq!(
        job_states(&events),
        pairs(&[("long", "aborted"), ("next", "skipped: run cancelled")])
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::RunFinished { .. }))
    );
    let aborted = events.iter().find_map(|e| match e {
        Event::JobFinished {
            state: JobState::Aborted,
            exit_code,
            ..
        } => *exit_code,
        _ => None,
    });
    assert_eq!(aborted, Some(143));
}

#[test]
fn a_step_ignoring_sigterm_is_killed_after_the_grace_period() {
    let run = Run::new("refs/heads/main");
    let ready = run.dir.path().join("ready");
    let cancel = Cancel::default();
    // The step says it is ready only once SIGTERM is ignored, so the
    // cancel's SIGTERM cannot arrive before the trap.
    let cancelled = cancel_when_ready(&cancel, ready.clone());
    let executor = Executor {
        grace: Duration::from_millis(200),
        ..Executor::default()
    };
    let (result, events) = run.exec_with(
        &format!(
            r#"
        [jobs.stubborn]
        inputs = ["quire/push"]
        sh = "trap '' TERM; touch {}; sleep 60"
        "#,
            ready.display()
        ),
        &executor,
        &cancel,
    );
    let took = cancelled.join().unwrap().elapsed();
    assert_eq!(result, RunResult::Cancelled);
    assert!(
        took < Duration::from_secs(5),
        "the run went on {took:?} after it was cancelled"
    );
    let code = events.iter().find_map(|e| match e {
        Event::JobFinished { exit_code, .. } => *exit_code,
        _ => None,
    });
    assert_eq!(code, Some(128 + 9), "killed by SIGKILL");
}

#[test]
fn three_hundred_steps_are_each_recorded_once() {
    let run = Run::new("refs/heads/main");
    let steps: Vec<String> = (1..=300).map(|i| format!("\"echo {i}\"")).collect();
    let (result, events) = run.exec(&format!(
        "[jobs.many]\ninputs = [\"quire/push\"]\nsh = [{}]\n",
        steps.join(", ")
    ));
    assert_eq!(result, RunResult::Complete);
    let started: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepStarted { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(started, (1..=300).collect::<Vec<_>>());
    for seq in [1, 150, 300] {
        assert_eq!(run.stdout("many", seq), [seq.to_string()]);
    }
}

#[test]
fn stdout_and_stderr_interleave_in_the_order_written() {
    let run = Run::new("refs/heads/main");
    // Each line is written only once the one before it is in the log, so
    // the order the log shows is the order of the writes, not a race
    // between the two pipes. The timeout only ends a test that would hang.
    let log = run.ctx.logs_dir.join("mixed/1.log");
    let (result, _) = run.exec(&format!(
        r#"
        [jobs.mixed]
        inputs = ["quire/push"]
        timeout = "60s"
        sh = """
        logged() {{ until grep -q "$1" '{}'; do sleep 0.01; done; }}
        for i in 1 2 3; do
          echo out$i; logged "stdout F out$i"
          echo err$i >&2; logged "stderr F err$i"
        done
        printf tail
        """
        "#,
        log.display()
    ));
    assert_eq!(result, RunResult::Complete);
    let log: Vec<String> = run
        .log("mixed", 1)
        .into_iter()
        .map(|(s, tag, t)| format!("{s} {tag} {t}"))
        .collect();
    assert_eq!(
        log,
        [
            "stdout F out1",
            "stderr F err1",
            "stdout F out2",
            "stderr F err2",
            "stdout F out3",
            "stderr F err3",
            "stdout P tail",
        ]
    );
}

#[test]
fn binary_output_and_long_lines_are_logged_in_bounded_chunks() {
    let run = Run::new("refs/heads/main");
    let executor = Executor {
        max_line: 1000,
        ..Executor::default()
    };
    let (result, _) = run.exec_with(
        r#"
        [jobs.noisy]
        inputs = ["quire/push"]
        sh = "head -c 5500 /dev/zero | tr '\\0' x; echo; printf '\\377\\376 bytes\\n'"
        "#,
        &executor,
        &Cancel::default(),
    );
    assert_eq!(result, RunResult::Complete);
    let log = run.log("noisy", 1);
    let tags: Vec<&str> = log.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(tags, ["P", "P", "P", "P", "P", "F", "F"]);
    assert!(log[..5].iter().all(|(_, _, t)| t.len() == 1000));
    assert_eq!(log[5].2.len(), 500);
    assert!(log[6].2.ends_with(" bytes"));
}

#[test]
fn a_program_that_does_not_exist_fails_its_step_with_127() {
    let run = Run::new("refs/heads/main");
    let (result, events) = run.exec(
        r#"
        [jobs.missing]
        inputs = ["quire/push"]
        sh = [["/nonexistent/program", "x"]]
        "#,
    );
    assert_eq!(result, RunResult::Failed);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::StepFinished { exit_code: 127, .. }))
    );
    assert!(run.log("missing", 1)[0].2.contains("cannot start"));
}

#[test]
fn a_daemon_that_leaves_the_process_group_is_ended_and_does_not_hang_the_job() {
    let run = Run::new("refs/heads/main");
    let pidfile = run.dir.path().join("daemon.pid");
    let started = Instant::now();
    let (result, _) = run.exec(&format!(
        r#"
        [jobs.d]
        inputs = ["quire/push"]
        timeout = "10s"
        sh = ["setsid sh -c 'echo $$ > {pid}; exec sleep 300' & until [ -s {pid} ]; do sleep 0.01; done; echo started", "echo next"]
        "#,
        pid = pidfile.display()
    ));
    assert_eq!(result, RunResult::Complete);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let daemon = read_pid(&pidfile);
    assert!(
        !survives(daemon),
        "the setsid daemon {daemon} outlived its job"
    );
    assert_eq!(run.stdout("d", 2), ["next"]);
}
