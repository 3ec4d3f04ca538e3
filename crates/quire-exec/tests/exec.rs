//! The executor with real processes: environment, workspace, failure and
//! skip propagation, when-filters, timeouts, cancellation, logs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quire_exec::events::Recorded;
use quire_exec::exec::{Cancel, Executor, RunContext, RunResult};
use quire_model::JobState;
use quire_model::events::Event;
use quire_pipeline::Pipeline;
use quire_testkit::wait_until;

struct Run {
    dir: tempfile::TempDir,
    ctx: RunContext,
    /// The events of the last `exec`: where each step's lines begin in its
    /// job's log.
    events: std::cell::RefCell<Vec<Event>>,
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
            cache: None,
            containment: None,
            step_workspace: None,
            step_home: None,
            step_tmpdir: None,
            step_env: None,
            sandbox: None,
            network: None,
            remote: None,
        };
        Run {
            dir,
            ctx,
            events: Default::default(),
        }
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
        *self.events.borrow_mut() = sink.0.clone();
        (result, sink.0)
    }

    /// The bytes of step `seq` of `job`: its part of the job's log, from
    /// where it began to where the next step began (or the end).
    fn log_bytes(&self, job: &str, seq: i64) -> Vec<u8> {
        let path: PathBuf = self.ctx.logs_dir.join(format!("{job}.log"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let starts: Vec<(i64, u64)> = self
            .events
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Event::StepStarted {
                    job: j,
                    seq,
                    log_at,
                    ..
                } if j == job => Some((*seq, log_at.expect("a step's place in its job's log"))),
                _ => None,
            })
            .collect();
        let i = starts
            .iter()
            .position(|(s, _)| *s == seq)
            .unwrap_or_else(|| panic!("no step {seq} of {job}"));
        let end = starts
            .get(i + 1)
            .map_or(bytes.len(), |(_, at)| *at as usize);
        bytes[starts[i].1 as usize..end].to_vec()
    }

    fn log(&self, job: &str, seq: i64) -> Vec<(String, String, String)> {
        self.log_bytes(job, seq)
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

/// How each job ended, in plan order: jobs that run side by side end in
/// either order, so the order events arrive in is not what this checks.
fn job_states(events: &[Event]) -> Vec<(String, String)> {
    let Some(Event::RunStarted { jobs: plan, .. }) = events.first() else {
        panic!("the first event is not run_started: {events:#?}");
    };
    let mut states: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::JobFinished { job, state, .. } => Some((job.clone(), state.to_string())),
            Event::JobSkipped { job, reason, .. } => {
                Some((job.clone(), format!("skipped: {reason}")))
            }
            _ => None,
        })
        .collect();
    states.sort_by_key(|(job, _)| plan.iter().position(|p| p == job));
    states
}

/// An executor that runs one job at a time, as quire did before jobs ran
/// side by side.
fn serial() -> Executor {
    Executor {
        max_parallel_jobs: 1,
        ..Executor::default()
    }
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
                |i| std::fs::read_to_string(run.ctx.logs_dir.join("env.log"))
                    .map(|all| format!("{i}: {all}"))
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
    assert!(matches!(result, RunResult::Failed { .. }), "{result:?}");
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
    assert!(
        !run.events
            .borrow()
            .iter()
            .any(|e| matches!(e, Event::StepStarted { seq: 3, .. })),
        "the third step never started"
    );
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
    // The plan says which jobs may fail: the store learns it from there.
    let Some(Event::RunStarted { allow_failure, .. }) = events.first() else {
        panic!("{events:#?}")
    };
    assert_eq!(allow_failure, &["flaky"]);
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
    !quire_exec::processes::exited_within(pid as u32, Duration::from_secs(5))
}

/// Block until the step has created `path`: the step's word that it has
/// reached the point the test waits for.
fn wait_for_file(path: &Path) {
    wait_until(&format!("{}", path.display()), || path.exists());
}

/// Cancel the run once the steps have created every file in `ready`;
/// returns when it did.
fn cancel_when_ready(cancel: &Cancel, ready: Vec<PathBuf>) -> std::thread::JoinHandle<Instant> {
    let canceller = cancel.clone();
    std::thread::spawn(move || {
        ready.iter().for_each(|path| wait_for_file(path));
        canceller.cancel();
        Instant::now()
    })
}

/// The run ended as cancelled, within 5 s of the cancel.
fn assert_cancelled_promptly(result: RunResult, cancelled: std::thread::JoinHandle<Instant>) {
    let took = cancelled.join().unwrap().elapsed();
    assert_eq!(result, RunResult::Cancelled);
    assert!(
        took < Duration::from_secs(5),
        "the run went on {took:?} after it was cancelled"
    );
}

fn read_pid(path: &Path) -> i32 {
    let mut pid = None;
    wait_until(&format!("pid in {}", path.display()), || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap_or_default()
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
    assert!(matches!(result, RunResult::Failed { .. }), "{result:?}");
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
    let cancelled = cancel_when_ready(&cancel, vec![ready.clone()]);
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
        // One job at a time, so `next` is still waiting when the cancel comes.
        &serial(),
        &cancel,
    );
    assert_cancelled_promptly(result, cancelled);
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
    let cancelled = cancel_when_ready(&cancel, vec![ready.clone()]);
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
    assert_cancelled_promptly(result, cancelled);
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
        r#"[jobs.many]
inputs = ["quire/push"]
sh = [{}]
"#,
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

/// With `separate_stderr`, each stream through a pipe of its own, each
/// line logged with its stream (without it, one pipe: all of it stdout,
/// tests/steps.rs).
#[test]
fn separate_stdout_and_stderr_interleave_in_the_order_written() {
    let run = Run::new("refs/heads/main");
    // Each line is written only once the one before it is in the log, so
    // the order the log shows is the order of the writes, not a race
    // between the two pipes. The timeout only ends a test that would hang.
    let log = run.ctx.logs_dir.join("mixed.log");
    let (result, _) = run.exec(&format!(
        r#"
        [jobs.mixed]
        inputs = ["quire/push"]
        separate_stderr = true
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
fn a_log_past_its_cap_is_drained_and_counted_and_the_job_goes_on() {
    let run = Run::new("refs/heads/main");
    let executor = Executor {
        max_log_bytes: 64 * 1024,
        ..Executor::default()
    };
    // 4 MiB in 2-byte lines, far more than a pipe holds: were the pipe no
    // longer read after the cap, the step would block and the job hang.
    let (result, events) = run.exec_with(
        r#"
        [jobs.noisy]
        inputs = ["quire/push"]
        sh = ["yes | head -c 4194304; echo done >&2", "exit 3", "echo never"]
        "#,
        &executor,
        &Cancel::default(),
    );
    assert!(
        matches!(result, RunResult::Failed { .. }),
        "the steps' exit codes decide: {result:?}"
    );
    let codes: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepFinished { exit_code, .. } => Some(*exit_code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, [0, 3], "the step after the capped one ran");
    let size = run.log_bytes("noisy", 1).len() as u64;
    let log = run.log("noisy", 1);
    let (stream, tag, note) = log.last().unwrap();
    assert_eq!((stream.as_str(), tag.as_str()), ("stderr", "F"));
    let logged = log.iter().filter(|(s, _, _)| s == "stdout").count() as u64;
    // Every line of output is either in the log or counted in the note
    // (`done` on stderr came after the cap too).
    let dropped_lines = 2 * 1024 * 1024 + 1 - logged;
    let dropped_bytes = 4 * 1024 * 1024 + 5 - 2 * logged;
    assert_eq!(
        note,
        &format!(
            "quire: log: capped at {} bytes (max_log_mb); the {dropped_bytes} bytes ({dropped_lines} lines) of output after that were not logged",
            64 * 1024
        )
    );
    assert_eq!(
        log.iter()
            .filter(|(_, _, t)| t.starts_with("quire: log:"))
            .count(),
        1,
        "one note"
    );
    assert!(size <= 64 * 1024 + 200, "the log is {size} bytes");
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
    assert!(matches!(result, RunResult::Failed { .. }), "{result:?}");
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

// Jobs side by side.

/// A step that says its job has started (`<dir>/<job>.started`), then waits
/// until every job in `gate` has: it passes only if they all run at once.
fn gate(dir: &Path, gate: &[&str]) -> String {
    let all: Vec<String> = gate
        .iter()
        .map(|job| format!("[ -e {}/{job}.started ]", dir.display()))
        .collect();
    format!(
        "touch {}/$QUIRE_JOB.started; until {}; do sleep 0.01; done",
        dir.display(),
        all.join(" && ")
    )
}

/// Three independent jobs that pass only if they all run at once, each
/// within `timeout`, and a fourth that needs all three.
fn three_gated_and_one_after(dir: &Path, timeout: &str) -> String {
    let step = gate(dir, &["a", "b", "c"]);
    let mut toml = String::new();
    for job in ["a", "b", "c"] {
        toml += &format!(
            r#"[jobs.{job}]
inputs = ["quire/push"]
timeout = "{timeout}"
sh = '{step}'
"#
        );
    }
    toml + r#"[jobs.after]
inputs = ["a", "b", "c"]
sh = "echo after"
"#
}

/// The most jobs that were running at once, from their started and
/// finished events.
fn most_at_once(events: &[Event]) -> usize {
    let (mut running, mut most) = (0usize, 0usize);
    for event in events {
        match event {
            Event::JobStarted { .. } => running += 1,
            Event::JobFinished { .. } => running -= 1,
            _ => {}
        }
        most = most.max(running);
    }
    most
}

/// Up to `jobs` jobs at once, and as many CPUs, whatever the machine has:
/// jobs that ask for none (each counting as 1) are held back by
/// `max_parallel_jobs` alone.
fn parallel(jobs: usize) -> Executor {
    Executor {
        max_parallel_jobs: jobs,
        cpus: jobs,
        ..Executor::default()
    }
}

#[test]
fn jobs_whose_inputs_are_done_run_at_the_same_time() {
    let run = Run::new("refs/heads/main");
    let (result, events) = run.exec_with(
        &three_gated_and_one_after(run.dir.path(), "60s"),
        &parallel(4),
        &Cancel::default(),
    );
    assert_eq!(result, RunResult::Complete, "{events:#?}");
    assert_eq!(
        job_states(&events),
        pairs(&[
            ("a", "complete"),
            ("b", "complete"),
            ("c", "complete"),
            ("after", "complete")
        ])
    );
    assert_eq!(most_at_once(&events), 3);
    let at = |wanted: &dyn Fn(&Event) -> bool| events.iter().position(wanted).unwrap();
    let after_started = at(&|e| matches!(e, Event::JobStarted { job, .. } if job == "after"));
    for job in ["a", "b", "c"] {
        let finished = at(&|e| matches!(e, Event::JobFinished { job: j, .. } if j == job));
        assert!(
            finished < after_started,
            "after started before {job} finished"
        );
    }
    assert_eq!(run.stdout("after", 1), ["after"]);
}

#[test]
fn max_parallel_jobs_one_runs_jobs_one_at_a_time() {
    let run = Run::new("refs/heads/main");
    let executor = Executor {
        grace: Duration::from_millis(200),
        ..serial()
    };
    let (result, events) = run.exec_with(
        &three_gated_and_one_after(run.dir.path(), "1s"),
        &executor,
        &Cancel::default(),
    );
    // Alone, a waits for b and c in vain; b finds a's mark but waits for
    // c in vain; c, last, finds both.
    assert!(matches!(result, RunResult::Failed { .. }), "{result:?}");
    assert_eq!(
        job_states(&events),
        pairs(&[
            ("a", "failed"),
            ("b", "failed"),
            ("c", "complete"),
            ("after", "skipped: needs a, which failed")
        ])
    );
    assert_eq!(most_at_once(&events), 1);
}

/// Each job's start (`+job`) and end (`-job`), in the order the events
/// came.
fn starts_and_ends(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::JobStarted { job, .. } => Some(format!("+{job}")),
            Event::JobFinished { job, .. } => Some(format!("-{job}")),
            _ => None,
        })
        .collect()
}

/// An executor with `cpus` CPUs, whatever the machine has, and room for
/// more jobs at once than any test here runs.
fn with_cpus(cpus: usize) -> Executor {
    Executor {
        cpus,
        ..parallel(8)
    }
}

#[test]
fn the_executor_has_the_machines_cpus_by_default() {
    let machine = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(Executor::default().cpus, machine);
}

#[test]
fn running_jobs_ask_for_at_most_the_executors_cpus_together() {
    let run = Run::new("refs/heads/main");
    let (result, events) = run.exec_with(
        r#"
        [jobs.a]
        inputs = ["quire/push"]
        resources = { cpus = 2 }
        sh = "sleep 0.2"
        [jobs.b]
        inputs = ["quire/push"]
        resources = { cpus = 2 }
        sh = "sleep 0.2"
        [jobs.c]
        inputs = ["quire/push"]
        resources = { cpus = 1 }
        sh = "true"
        [jobs.d]
        inputs = ["quire/push"]
        sh = "true"
        "#,
        &with_cpus(4),
        &Cancel::default(),
    );
    assert_eq!(result, RunResult::Complete, "{events:#?}");
    let seen = starts_and_ends(&events);
    // a and b fill the 4 CPUs from the start; c waits for one of them,
    // and d, after c in the plan, for c.
    assert_eq!(seen[..2], ["+a", "+b"], "{seen:?}");
    assert!(seen[2].starts_with('-'), "{seen:?}");
    let starts: Vec<&String> = seen.iter().filter(|s| s.starts_with('+')).collect();
    assert_eq!(starts, ["+a", "+b", "+c", "+d"], "plan order");
    // At no moment do the running jobs ask for more than 4 CPUs, d
    // counting as 1.
    let asks = |job: &str| match job {
        "a" | "b" => 2,
        _ => 1,
    };
    let mut busy = 0;
    for s in &seen {
        let (sign, job) = s.split_at(1);
        busy = if sign == "+" {
            busy + asks(job)
        } else {
            busy - asks(job)
        };
        assert!(busy <= 4, "{seen:?}");
    }
}

/// A job that asks for no CPU holds none: `max_parallel_jobs` alone counts
/// it (three sleeping jobs side by side on two CPUs); one that asks for a
/// CPU holds it; and `max_parallel_jobs` still caps the count.
#[test]
fn a_job_without_cpus_holds_none_and_max_parallel_jobs_still_caps_the_count() {
    let three = |cpus: &str| {
        let mut toml = String::new();
        for job in ["a", "b", "c"] {
            toml += &format!("[jobs.{job}]\ninputs = [\"quire/push\"]\n{cpus}sh = \"sleep 0.1\"\n");
        }
        toml
    };
    let run = Run::new("refs/heads/main");
    let (result, events) = run.exec_with(&three(""), &with_cpus(2), &Cancel::default());
    assert_eq!(result, RunResult::Complete, "{events:#?}");
    assert_eq!(most_at_once(&events), 3, "{:?}", starts_and_ends(&events));
    let run = Run::new("refs/heads/main");
    let (result, events) = run.exec_with(
        &three("resources = { cpus = 1 }\n"),
        &with_cpus(2),
        &Cancel::default(),
    );
    assert_eq!(result, RunResult::Complete, "{events:#?}");
    assert_eq!(most_at_once(&events), 2, "{:?}", starts_and_ends(&events));
    let run = Run::new("refs/heads/main");
    let executor = Executor {
        cpus: 64,
        ..parallel(2)
    };
    let (result, events) = run.exec_with(
        &three("resources = { cpus = 1 }\n"),
        &executor,
        &Cancel::default(),
    );
    assert_eq!(result, RunResult::Complete, "{events:#?}");
    assert_eq!(most_at_once(&events), 2, "{:?}", starts_and_ends(&events));
}

#[test]
fn a_job_that_does_not_fit_waits_no_later_job_passes_it_and_one_over_the_machine_runs_alone() {
    let run = Run::new("refs/heads/main");
    let (result, events) = run.exec_with(
        r#"
        [jobs.x]
        inputs = ["quire/push"]
        resources = { cpus = 3 }
        sh = "sleep 0.2"
        [jobs.big]
        inputs = ["quire/push"]
        resources = { cpus = 64 }
        sh = "echo big"
        [jobs.small]
        inputs = ["quire/push"]
        resources = { cpus = 1 }
        sh = "echo small"
        "#,
        &with_cpus(4),
        &Cancel::default(),
    );
    assert_eq!(result, RunResult::Complete, "{events:#?}");
    // small would fit beside x, but big is before it in the plan and
    // waits for x; big, more than the 4 CPUs, then runs alone.
    assert_eq!(
        starts_and_ends(&events),
        ["+x", "-x", "+big", "-big", "+small", "-small"]
    );
    assert_eq!(
        run.log("big", 1)[0].2,
        "quire: resources: cpus = 64 is more than this machine's 4 CPUs; the job runs with no other job of the run beside it"
    );
    assert_eq!(run.stdout("big", 1), ["big"]);
}

#[test]
fn what_the_local_executor_cannot_give_a_job_is_a_note_at_the_top_of_its_log() {
    let run = Run::new("refs/heads/main");
    let (result, events) = run.exec(
        r#"
        [jobs.asks]
        inputs = ["quire/push"]
        resources = { cpus = 1, memory = "4G", gpus = 1, constraint = "avx2&ib" }
        sh = "echo ran"
        [jobs.gpu]
        inputs = ["quire/push"]
        resources = { gpus = 2 }
        sh = "echo ran"
        [jobs.plain]
        inputs = ["quire/push"]
        resources = { cpus = 1, gpus = 0 }
        sh = "echo ran"
        "#,
    );
    assert_eq!(result, RunResult::Complete, "{events:#?}");
    let text =
        |job: &str| -> Vec<String> { run.log(job, 1).into_iter().map(|(_, _, t)| t).collect() };
    // No containment here: nothing holds the job to its memory.
    assert_eq!(
        text("asks"),
        [
            "quire: resources: memory = 4096 MiB is not enforced: there is no cgroup",
            "quire: resources: gpus = 1 and constraint = \"avx2&ib\" apply only on a Slurm cluster (docs/PIPELINE.md, \"Resources\"); this job runs on this machine without them",
            "ran",
        ]
    );
    assert_eq!(
        text("gpu"),
        [
            "quire: resources: gpus = 2 applies only on a Slurm cluster (docs/PIPELINE.md, \"Resources\"); this job runs on this machine without it",
            "ran",
        ]
    );
    // One CPU and no GPU are what it gets: nothing to say.
    assert_eq!(text("plain"), ["ran"]);
}

#[test]
fn one_at_a_time_reports_events_in_plan_order() {
    let run = Run::new("refs/heads/main");
    let (_, events) = run.exec_with(
        r#"
        [jobs.build]
        inputs = ["quire/push"]
        sh = ["echo one", "exit 3"]
        [jobs.test]
        inputs = ["build"]
        sh = "echo test"
        [jobs.lint]
        inputs = ["quire/push"]
        when = { tags = ["v*"] }
        sh = "echo lint"
        [jobs.docs]
        inputs = ["quire/push"]
        sh = "echo docs"
        "#,
        &serial(),
        &Cancel::default(),
    );
    let seen: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::RunStarted { jobs, .. } => format!("run_started {}", jobs.join(",")),
            Event::JobStarted { job, .. } => format!("job_started {job}"),
            Event::StepStarted { job, seq, .. } => format!("step_started {job} {seq}"),
            Event::StepFinished { job, seq, .. } => format!("step_finished {job} {seq}"),
            Event::JobFinished { job, state, .. } => format!("job_finished {job} {state}"),
            Event::JobSkipped { job, .. } => format!("job_skipped {job}"),
            Event::JobWaiting { job, .. } => format!("job_waiting {job}"),
            Event::ArtifactKept { job, path, .. } => format!("artifact_kept {job} {path}"),
            Event::RunFinished { state, .. } => format!("run_finished {state}"),
        })
        .collect();
    assert_eq!(
        seen,
        [
            "run_started build,test,lint,docs",
            "job_started build",
            "step_started build 1",
            "step_finished build 1",
            "step_started build 2",
            "step_finished build 2",
            "job_finished build failed",
            "job_skipped test",
            "job_skipped lint",
            "job_started docs",
            "step_started docs 1",
            "step_finished docs 1",
            "job_finished docs complete",
            "run_finished failed",
        ]
    );
}

#[test]
fn a_failing_job_skips_its_dependents_while_a_job_beside_it_completes() {
    let run = Run::new("refs/heads/main");
    let dir = run.dir.path();
    // build fails only once lint is running beside it.
    let (result, events) = run.exec_with(
        &format!(
            r#"
        [jobs.build]
        inputs = ["quire/push"]
        timeout = "60s"
        sh = ['{gate}; exit 3']
        [jobs.test]
        inputs = ["build"]
        sh = "echo test"
        [jobs.deploy]
        inputs = ["test"]
        sh = "echo deploy"
        [jobs.lint]
        inputs = ["quire/push"]
        timeout = "60s"
        sh = ['{gate}', "echo lint"]
        "#,
            gate = gate(dir, &["build", "lint"])
        ),
        &parallel(4),
        &Cancel::default(),
    );
    assert!(matches!(result, RunResult::Failed { .. }), "{result:?}");
    assert_eq!(
        job_states(&events),
        pairs(&[
            ("build", "failed"),
            ("test", "skipped: needs build, which failed"),
            ("deploy", "skipped: needs test, which was skipped"),
            ("lint", "complete"),
        ])
    );
    assert_eq!(most_at_once(&events), 2);
    assert_eq!(run.stdout("lint", 2), ["lint"]);
}

#[test]
fn cancel_while_two_jobs_run_ends_both() {
    let run = Run::new("refs/heads/main");
    let dir = run.dir.path();
    let cancel = Cancel::default();
    let ready: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|job| dir.join(format!("{job}.ready")))
        .collect();
    let cancelled = cancel_when_ready(&cancel, ready);
    // Each step records its shell and a background child, then says it is
    // ready.
    let step = format!(
        "echo $$ > {d}/$QUIRE_JOB.pid; sleep 300 & echo $! > {d}/$QUIRE_JOB.bg; touch {d}/$QUIRE_JOB.ready; wait",
        d = dir.display()
    );
    let (result, events) = run.exec_with(
        &format!(
            r#"
        [jobs.a]
        inputs = ["quire/push"]
        sh = ['{step}', "echo never"]
        [jobs.b]
        inputs = ["quire/push"]
        sh = ['{step}', "echo never"]
        [jobs.after]
        inputs = ["a"]
        sh = "echo never"
        "#
        ),
        &parallel(4),
        &cancel,
    );
    assert_cancelled_promptly(result, cancelled);
    assert_eq!(
        job_states(&events),
        pairs(&[
            ("a", "aborted"),
            ("b", "aborted"),
            ("after", "skipped: run cancelled")
        ])
    );
    for job in ["a", "b"] {
        for what in ["pid", "bg"] {
            let pid = read_pid(&dir.join(format!("{job}.{what}")));
            assert!(!survives(pid), "{job}'s {what} {pid} survived the cancel");
        }
        assert!(
            !run.events
                .borrow()
                .iter()
                .any(|e| matches!(e, Event::StepStarted { job: j, seq: 2, .. } if j == job)),
            "{job}'s second step started"
        );
    }
}

#[test]
fn jobs_side_by_side_keep_their_own_logs_and_events_in_order() {
    let run = Run::new("refs/heads/main");
    let jobs = ["a", "b", "c"];
    let step = gate(run.dir.path(), &jobs);
    let mut toml = String::new();
    for job in jobs {
        toml += &format!(
            r#"[jobs.{job}]
inputs = ["quire/push"]
timeout = "60s"
sh = ['{step}; seq -f "$QUIRE_JOB %g" 2000', "echo $QUIRE_JOB done"]
"#
        );
    }
    let (result, events) = run.exec_with(&toml, &parallel(3), &Cancel::default());
    assert_eq!(result, RunResult::Complete, "{events:#?}");
    assert!(matches!(events.first(), Some(Event::RunStarted { .. })));
    for job in jobs {
        let lines: Vec<String> = (1..=2000).map(|i| format!("{job} {i}")).collect();
        assert_eq!(run.stdout(job, 1), lines, "{job}'s first log");
        assert_eq!(run.stdout(job, 2), [format!("{job} done")]);
        let own: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                Event::JobStarted { job: j, .. } if j == job => Some("started".into()),
                Event::StepStarted { job: j, seq, .. } if j == job => Some(format!("step {seq}")),
                Event::StepFinished { job: j, seq, .. } if j == job => Some(format!("end {seq}")),
                Event::JobFinished { job: j, .. } if j == job => Some("finished".into()),
                _ => None,
            })
            .collect();
        assert_eq!(
            own,
            ["started", "step 1", "end 1", "step 2", "end 2", "finished"],
            "{job}'s events"
        );
    }
    assert_eq!(most_at_once(&events), 3);
}

#[test]
fn artifacts_are_kept_once_before_the_job_finishes_and_never_from_outside() {
    let run = Run::new("refs/heads/main");
    let (result, events) = run.exec(
        r#"
        [jobs.build]
        inputs = ["quire/push"]
        artifacts = ["out/**/*.txt", "out/", "inner", "outdir/*", "fifo"]
        sh = [
          "mkdir -p out/a/b && echo one > out/a/b/one.txt && echo two > out/two.bin",
          "ln -s hello.txt inner && ln -s /etc outdir && mkfifo fifo",
        ]

        [jobs.later]
        inputs = ["build"]
        when = { tags = ["v*"] }
        artifacts = ["hello.txt"]
        sh = "true"
        "#,
    );
    assert_eq!(result, RunResult::Complete);
    let kept: Vec<(String, String, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ArtifactKept {
                job, path, size, ..
            } => Some((job.clone(), path.clone(), *size)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kept,
        [
            ("build".to_string(), "out/a/b/one.txt".to_string(), 4),
            ("build".into(), "out/two.bin".into(), 4),
            ("build".into(), "inner".into(), 3),
        ]
    );
    let finished = events
        .iter()
        .position(|e| matches!(e, Event::JobFinished { job, .. } if job == "build"))
        .unwrap();
    let last_kept = events
        .iter()
        .rposition(|e| matches!(e, Event::ArtifactKept { .. }))
        .unwrap();
    assert!(last_kept < finished, "{events:?}");
    let dir = run.dir.path().join("artifacts/build");
    assert_eq!(std::fs::read(dir.join("inner")).unwrap(), b"hi\n");
    assert!(!dir.join("fifo").exists());
    let notes: Vec<String> = run
        .log("build", 2)
        .into_iter()
        .map(|(_, _, text)| text)
        .collect();
    for note in [
        "quire: artifacts: kept out/a/b/one.txt (4 bytes)",
        "quire: artifacts: outdir leads outside the workspace; refused, not kept",
        "quire: artifacts: fifo is not a regular file; not kept",
    ] {
        assert!(notes.iter().any(|n| n == note), "{note:?} not in {notes:?}");
    }
    // A skipped job keeps nothing.
    assert!(!run.dir.path().join("artifacts/later").exists());
}

/// A [`JobCache`] that records what the executor asks of it.
#[derive(Debug, Default)]
struct Asked(std::sync::Mutex<Vec<String>>);

impl quire_exec::exec::JobCache for Asked {
    fn restore(&self, job: &str, paths: &[String], workspace: &Path) -> Vec<String> {
        assert!(
            workspace.join("hello.txt").exists(),
            "the checkout is there"
        );
        self.0
            .lock()
            .unwrap()
            .push(format!("restore {job} {}", paths.join(",")));
        vec![format!("restored {} (secret-value-1)", paths.join(", "))]
    }

    fn save(&self, job: &str, paths: &[String], workspace: &Path) -> Vec<String> {
        assert!(
            workspace.join("target/made").exists(),
            "the job's files are there"
        );
        self.0
            .lock()
            .unwrap()
            .push(format!("save {job} {}", paths.join(",")));
        vec![format!("saved {}", paths.join(", "))]
    }
}

#[test]
fn a_jobs_cache_is_restored_before_its_first_step_and_saved_only_when_it_completes() {
    let mut run = Run::new("refs/heads/main");
    let asked = std::sync::Arc::new(Asked::default());
    run.ctx.cache = Some(asked.clone());
    run.ctx.secrets = vec![("TOKEN".into(), "secret-value-1".into())];
    let (result, _) = run.exec(
        r#"[jobs.build]
inputs = ["quire/push"]
cache = ["./target/", "vendor/cache"]
sh = ["mkdir -p target && touch target/made", "true"]

[jobs.broken]
inputs = ["quire/push"]
cache = ["target"]
sh = ["mkdir -p target && touch target/made && exit 1"]

[jobs.plain]
inputs = ["quire/push"]
sh = "true"
"#,
    );
    assert!(matches!(result, RunResult::Failed { .. }), "{result:?}");
    let mut asked = asked.0.lock().unwrap().clone();
    asked.sort();
    assert_eq!(
        asked,
        [
            "restore broken target",
            "restore build target,vendor/cache",
            "save build target,vendor/cache",
        ],
        "a failed job saves nothing; a job without cache is not asked about"
    );
    let first: Vec<String> = run.log("build", 1).into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(
        first[0],
        "quire: cache: restored target, vendor/cache (***)"
    );
    let last: Vec<String> = run.log("build", 2).into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(
        last.last().unwrap(),
        "quire: cache: saved target, vendor/cache"
    );
}
