//! The steps' network (`step_network`, docs/SECURITY.md, "The network"):
//! a service listening on the test's loopback stands for the server's own
//! services (a web view, a database); steps pushed through the installed
//! hook try to reach it, directly and by joining the host's network
//! namespace. Its accept count says whether anything arrived.
//!
//! No test sends traffic anywhere but the test's own loopback and the
//! steps' own namespaces: that "isolated" still reaches the outside is
//! shown by the namespace's default route (through pasta), not by a
//! connection out.

use std::io::ErrorKind;
use std::net::TcpListener;

use quire_store::{JobState, RunState};

use quire_testkit::{Env, Gate, Repo, git};

/// pasta, which "isolated" needs (`quire_testkit::require`: under CI it must be
/// there, .ci/run installs passt).
fn have_pasta() -> bool {
    let found = ["/usr/bin/pasta", "/usr/sbin/pasta", "/bin/pasta"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    quire_testkit::require("pasta", "apt-get install passt", found)
}

/// Listeners on the test's 127.0.0.1 and ::1, the services steps must not
/// reach.
struct Services {
    v4: TcpListener,
    v6: Option<TcpListener>,
}

impl Services {
    fn start() -> Services {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        v4.set_nonblocking(true).unwrap();
        // A machine without IPv6 on its loopback has no ::1 to protect.
        let v6 = TcpListener::bind("[::1]:0").ok();
        if let Some(v6) = &v6 {
            v6.set_nonblocking(true).unwrap();
        }
        Services { v4, v6 }
    }

    /// A job per way of reaching the services, each printing BREACHED if
    /// it connected.
    fn attacks(&self) -> String {
        let p4 = self.v4.local_addr().unwrap().port();
        let mut attacks = vec![
            (
                "loopback4",
                format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{p4}'"),
            ),
            (
                "host_ns",
                format!("nsenter --net=/proc/1/ns/net bash -c 'exec 3<>/dev/tcp/127.0.0.1/{p4}'"),
            ),
            ("open_ns", "exec 3</proc/1/ns/net".to_string()),
            // The worker is the step's parent, pid 1 or not.
            (
                "worker_ns",
                format!(
                    "nsenter --net=/proc/$PPID/ns/net bash -c 'exec 3<>/dev/tcp/127.0.0.1/{p4}'"
                ),
            ),
        ];
        if let Some(v6) = &self.v6 {
            let p6 = v6.local_addr().unwrap().port();
            attacks.push(("loopback6", format!("bash -c 'exec 3<>/dev/tcp/::1/{p6}'")));
        }
        let mut text = String::new();
        for (name, attack) in attacks {
            text.push_str(&format!(
                r#"[jobs.{name}]
inputs = ["quire/push"]
allow_failure = true
sh = {:?}

"#,
                format!("{attack} && echo BREACHED")
            ));
        }
        text.push_str(
            r#"[jobs.route]
inputs = ["quire/push"]
sh = "cat /proc/net/route; echo netns=$(readlink /proc/self/ns/net)"
"#,
        );
        text
    }

    /// Connections that arrived (each accepted now, from the backlog).
    fn arrived(&self) -> usize {
        let mut count = 0;
        for listener in std::iter::once(&self.v4).chain(self.v6.as_ref()) {
            loop {
                match listener.accept() {
                    Ok(_) => count += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("accept: {e}"),
                }
            }
        }
        count
    }
}

fn log(env: &Env, run: &str, job: &str) -> String {
    env.step_log(run, job, 1)
}

fn show(env: &Env, run: &str) -> String {
    let out = env.runs(&["show", run]).assert().success();
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

/// A default route out of an interface other than `lo`, in
/// /proc/net/route's text as the step's log has it (each line after the
/// log's time, stream and flag).
fn has_default_route(route: &str) -> bool {
    route.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().skip(3).collect();
        fields.len() > 2 && fields[0] != "lo" && fields[1] == "00000000"
    })
}

/// Every attack job failed without connecting; nothing arrived.
fn assert_unreached(env: &Env, run: &str, services: &Services) {
    let detail = env.store().run_detail(run).unwrap();
    for job in &detail.jobs {
        let text = log(env, run, &job.job.id);
        assert!(
            !text.contains("BREACHED"),
            "{} got through:\n{text}",
            job.job.id
        );
        if job.job.id != "route" {
            assert_eq!(job.job.state, JobState::Failed, "{}:\n{text}", job.job.id);
        }
    }
    assert_eq!(
        services.arrived(),
        0,
        "a connection reached the host's loopback"
    );
}

/// Processes in the network namespace `id` (`net:[N]`), or holding it
/// open, anywhere on the machine.
fn holders_of(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid.parse::<u32>().is_err() {
            continue;
        }
        let proc_dir = entry.path();
        let in_it =
            std::fs::read_link(proc_dir.join("ns/net")).is_ok_and(|l| l.to_string_lossy() == id);
        let holds = std::fs::read_dir(proc_dir.join("fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == id))
        });
        if in_it || holds {
            let cmd = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
            found.push(format!("{pid}: {}", String::from_utf8_lossy(&cmd)));
        }
    }
    found
}

fn netns_of(route_log: &str) -> String {
    route_log
        .lines()
        .find_map(|l| l.split("netns=").nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no netns line: {route_log}"))
}

#[test]
fn isolated_steps_reach_out_but_not_the_hosts_loopback_and_leave_nothing() {
    if !have_pasta() {
        return;
    }
    let env = Env::new();
    let services = Services::start();
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(&services.attacks());
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    assert_unreached(&env, &run.id, &services);
    let route = log(&env, &run.id, "route");
    assert!(has_default_route(&route), "no way out:\n{route}");
    assert!(!route.contains("quire: sandbox:"), "{route}");
    let shown = show(&env, &run.id);
    assert!(shown.contains("network: isolated"), "{shown}");
    // The namespace ends with its worker, which exits once no run is
    // left: then no process is in it or holds it.
    let netns = netns_of(&route);
    assert_ne!(
        netns,
        std::fs::read_link("/proc/self/ns/net")
            .unwrap()
            .to_string_lossy()
    );
    quire_testkit::wait_until("the run's namespace to end with its worker", || {
        holders_of(&netns).is_empty()
    });
}

/// A repository `app` whose `main` holds `pipeline` (committed with
/// `message`), pushed with `-o ci.skip`: no run yet.
fn pushed_unrun(env: &Env, pipeline: &str, message: &str) -> quire_testkit::Repo {
    let app = env.repo_with_hook("app");
    app.commit(&[(".quire/ci.toml", pipeline)], message);
    git(
        &app.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    app
}

/// `quire-run trigger --git-dir APP main --wait`, to be run.
fn trigger_wait(env: &Env, app: &quire_testkit::Repo) -> assert_cmd::Command {
    env.run(&[
        "trigger",
        "--git-dir",
        app.bare.to_str().unwrap(),
        "main",
        "--wait",
    ])
}

/// `trigger --wait` starts its run's namespace before the run is even
/// recorded, and ends it (pasta is killed) as soon as the steps are done;
/// it does not wait for pasta's exit, which waits on the kernel. Yet it
/// returns only once the namespace is gone: nothing in it, nothing
/// holding it, at once.
#[test]
fn trigger_wait_returns_only_once_its_runs_namespace_is_gone() {
    if !have_pasta() {
        return;
    }
    let env = Env::new();
    let app = pushed_unrun(
        &env,
        "[jobs.net]\ninputs = [\"quire/push\"]\nsh = \"echo netns=$(readlink /proc/self/ns/net)\"\n",
        "pipeline",
    );
    for _ in 0..3 {
        trigger_wait(&env, &app).assert().success();
        let run = &env.all_runs()[0];
        assert_eq!(run.state, RunState::Complete, "{run:?}");
        let netns = netns_of(&log(&env, &run.id, "net"));
        assert_ne!(
            netns,
            std::fs::read_link("/proc/self/ns/net")
                .unwrap()
                .to_string_lossy()
        );
        let left = holders_of(&netns);
        assert!(
            left.is_empty(),
            "the run's namespace outlived trigger: {left:?}"
        );
    }
}

/// `trigger --wait` starts pasta before the store is even opened, let
/// alone the run recorded (it sets the namespace up meanwhile), so even
/// for a commit that records no run; and that pasta does not outlive it
/// either. Shown with the store held locked: trigger waits where it opens
/// it, and pasta has started by then.
#[test]
fn trigger_wait_starts_pasta_before_the_run_is_recorded() {
    if !have_pasta() {
        return;
    }
    let env = Env::new();
    let app = pushed_unrun(
        &env,
        "[jobs.t]\ninputs = [\"quire/push\"]\nsh = \"true\"\n",
        "[skip ci] pipeline",
    );
    let started = env.path().join("pasta-started");
    let wrapper = env.path().join("pasta");
    let real = ["/usr/bin/pasta", "/usr/sbin/pasta", "/bin/pasta"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho $$ >> {}\nexec {real} \"$@\"\n",
            started.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Nobody may read the store until this connection lets go of it.
    let lock = rusqlite::Connection::open(env.home().db_path()).unwrap();
    lock.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let trigger = env
        .process("quire-run")
        .args([
            "trigger",
            "--git-dir",
            app.bare.to_str().unwrap(),
            "main",
            "--wait",
        ])
        .env("QUIRE_PASTA", &wrapper)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Longer than the store's busy timeout (10 s) holds trigger: a pasta
    // not started by then is not started before the store is opened.
    quire_testkit::within(20, || {
        std::fs::read_to_string(&started).is_ok_and(|p| !p.is_empty())
    });
    let pids = std::fs::read_to_string(&started).unwrap_or_default();
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let out = trigger.wait_with_output().unwrap();
    assert!(
        !pids.is_empty(),
        "pasta was not started while the store was locked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no run"), "{stdout}");
    assert!(env.all_runs().is_empty());
    assert_eq!(pids.lines().count(), 1, "one pasta: {pids}");
    // Nothing started through the wrapper is left: no process whose
    // command line names it (the wrapper) or is pasta's own with its pid.
    let wrapper_text = wrapper.to_string_lossy().into_owned();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&wrapper_text))
        .collect();
    assert!(left.is_empty(), "pasta outlived trigger: {left:?}");
    if let Some(pid) = pids.lines().next() {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains("pasta"),
            "pasta outlived trigger"
        );
    }
}

/// A worker keeps a run's namespace for its next run of the same
/// repository (making one and attaching pasta costs more than a trivial
/// run), never for another repository's. With one worker, `a`'s first run
/// holds it at the gate while two more runs of `a` and one of `b` queue;
/// taken one after another by that worker (in the order it chooses,
/// docs/OPERATIONS.md), each run that follows one of its own repository
/// gets that run's namespace, and each that follows another's a new one.
#[test]
fn a_kept_namespace_serves_only_the_next_runs_of_its_own_repository() {
    if !have_pasta() {
        return;
    }
    let env = Env::new();
    env.config("max_workers = 1\n");
    let gate = Gate::new(&env);
    let pipeline = format!(
        r#"[jobs.net]
inputs = ["quire/push"]
sh = {:?}
"#,
        format!(
            "echo netns=$(readlink /proc/self/ns/net); {}",
            gate.step("held")
        )
    );
    let a = env.repo_with_hook("a");
    let b = env.repo_with_hook("b");
    let mut runs = vec![a.push_pipeline(&pipeline)];
    gate.wait_ready("held");
    git(&a.work, &["branch", "second"]);
    git(&a.work, &["branch", "third"]);
    runs.extend(a.push_refs(&["second", "third"]));
    runs.push(b.push_pipeline(&pipeline));
    gate.open();
    let mut taken: Vec<(i64, i64, String)> = runs
        .iter()
        .map(|id| {
            let ended = env.wait_terminal(id);
            assert_eq!(ended.state, RunState::Complete, "{ended:?}");
            let started = ended.started_at_ms.expect("a started run");
            (started, ended.repo_id, netns_of(&log(&env, id, "net")))
        })
        .collect();
    taken.sort();
    let (mut same, mut other) = (0, 0);
    for pair in taken.windows(2) {
        let ((_, repo1, net1), (_, repo2, net2)) = (&pair[0], &pair[1]);
        if repo1 == repo2 {
            same += 1;
            assert_eq!(net1, net2, "a run made a namespace anew: {taken:?}");
        } else {
            other += 1;
            assert_ne!(
                net1, net2,
                "another repository's run got a kept one: {taken:?}"
            );
        }
    }
    assert!(same > 0 && other > 0, "both cases were seen: {taken:?}");
}

#[test]
fn isolated_steps_running_as_another_user_do_not_reach_it_either() {
    if !have_pasta() {
        return;
    }
    if !quire_testkit::require(
        "root (run_as)",
        "run the tests as root",
        quire_testkit::is_root(),
    ) {
        return;
    }
    let env = Env::new();
    env.config(
        r#"run_as = "nobody"
sandbox = "required"
"#,
    );
    let services = Services::start();
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(&services.attacks());
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    assert_unreached(&env, &run.id, &services);
    assert!(has_default_route(&log(&env, &run.id, "route")));
}

#[test]
fn none_leaves_steps_only_their_own_loopback() {
    let env = Env::new();
    env.config("step_network = \"none\"\n");
    let services = Services::start();
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(&services.attacks());
    assert_unreached(&env, &run.id, &services);
    let route = log(&env, &run.id, "route");
    assert!(!has_default_route(&route), "a way out:\n{route}");
    let shown = show(&env, &run.id);
    assert!(shown.contains("network: none"), "{shown}");
    let netns = netns_of(&route);
    quire_testkit::wait_until("the run's namespace to end with its worker", || {
        holders_of(&netns).is_empty()
    });
}

#[test]
fn host_keeps_the_hosts_network_loopback_included() {
    let env = Env::new();
    env.config("step_network = \"host\"\n");
    let services = Services::start();
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(&services.attacks());
    assert!(
        log(&env, &run.id, "loopback4").contains("BREACHED"),
        "{}",
        log(&env, &run.id, "loopback4")
    );
    assert!(services.arrived() >= 1);
    let shown = show(&env, &run.id);
    assert!(
        shown.contains("network: the host's (step_network = \"host\" in config.toml)"),
        "{shown}"
    );
}

/// A repository whose workers find no pasta.
fn without_pasta(env: &Env) -> Repo {
    let mut app = env.repo_with_hook("app");
    app.vars
        .push(("QUIRE_PASTA".into(), "/nonexistent/pasta".into()));
    app
}

#[test]
fn without_pasta_isolated_falls_back_to_the_host_and_says_why() {
    let env = Env::new();
    let services = Services::start();
    let app = without_pasta(&env);
    let run = app.push_and_wait(&services.attacks());
    let text = log(&env, &run.id, "loopback4");
    assert!(
        text.contains(
            "quire: sandbox: network not isolated: pasta is not installed (Debian's package \
             passt has it); this job's steps reach the host's network"
        ),
        "{text}"
    );
    assert!(text.contains("BREACHED"), "{text}");
    let shown = show(&env, &run.id);
    assert!(
        shown.contains(
            "network: the host's, loopback services included (no namespace: pasta is not installed"
        ),
        "{shown}"
    );
    let worker_log = std::fs::read_to_string(env.home().dir().join("worker.log")).unwrap();
    assert!(
        worker_log.contains("network not isolated") || worker_log.contains("no namespace: pasta"),
        "{worker_log}"
    );
}

#[test]
fn without_pasta_required_fails_the_run_before_any_step() {
    let env = Env::new();
    env.config("sandbox = \"required\"\n");
    let services = Services::start();
    let app = without_pasta(&env);
    let run = app.push_and_wait(&services.attacks());
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    let detail = run.failure_detail.clone().unwrap_or_default();
    assert!(
        detail.contains(
            "sandbox = \"required\" in config.toml, but the steps' network namespace \
             (step_network = \"isolated\") cannot be made: pasta is not installed"
        ),
        "{detail}"
    );
    let jobs = env.store().run_detail(&run.id).unwrap().jobs;
    assert!(jobs.iter().all(|j| j.steps.is_empty()), "a step ran");
    assert_eq!(services.arrived(), 0);
}

/// The worker SIGKILLed mid-step: the namespace's holder and pasta do not
/// outlive it (with the worker in a pid namespace of its own, they die
/// with it; without one, they ask for SIGKILL when it dies), and once
/// reconcile has ended the step nothing is left in or holding the
/// namespace.
fn a_killed_worker_leaves_no_namespace(pidns: bool) {
    if !have_pasta() {
        return;
    }
    // Which processes hold the namespace is read from every process's
    // /proc/PID/ns/net, which only root may read of processes in a user
    // namespace of their own (pasta's, as a non-root worker's).
    if !quire_testkit::require(
        "root (to read other namespaces' /proc/PID/ns/net)",
        "run the tests as root",
        quire_testkit::is_root(),
    ) {
        return;
    }
    let env = Env::new();
    let mut app = env.repo_with_hook("app");
    if !pidns {
        app.vars.push(("QUIRE_PIDNS".into(), "off".into()));
    }
    let run = app.push_pipeline(
        r#"[jobs.hold]
inputs = ["quire/push"]
sh = "readlink /proc/self/ns/net > \"$TMPDIR/ns.tmp\"; mv \"$TMPDIR/ns.tmp\" \"$TMPDIR/ns\"; exec sleep 600"
"#,
    );
    let ns_file = env.home().run_dir(&run).unwrap().join("tmp/ns");
    quire_testkit::wait_until("the step's namespace", || ns_file.exists());
    let netns = std::fs::read_to_string(&ns_file)
        .unwrap()
        .trim()
        .to_string();
    let before = holders_of(&netns);
    assert!(
        before.iter().any(|p| p.contains("pasta")),
        "pasta holds the namespace while the run runs: {before:?}"
    );
    let worker = env
        .wait_for(&run, "active", |r| r.state == RunState::Active)
        .worker
        .unwrap()
        .pid;
    quire_testkit::signal(worker, rustix::process::Signal::KILL);
    assert!(quire_testkit::gone_within(worker, 10));
    env.json(&["reconcile"]);
    quire_testkit::wait_until("nothing left in the namespace", || {
        holders_of(&netns).is_empty()
    });
}

#[test]
fn a_killed_worker_leaves_no_namespace_behind() {
    a_killed_worker_leaves_no_namespace(true);
}

#[test]
fn a_killed_worker_without_a_pid_namespace_leaves_no_namespace_behind() {
    a_killed_worker_leaves_no_namespace(false);
}

/// What docs/SECURITY.md says isolation does not hold against: a root
/// step that Landlock does not confine joins the server's namespace
/// through its worker's `/proc/PID/ns/net` and reaches its loopback.
#[test]
fn a_root_step_without_the_sandbox_can_join_the_hosts_namespace() {
    if !have_pasta() {
        return;
    }
    if !quire_testkit::require(
        "root (a root step)",
        "run the tests as root",
        quire_testkit::is_root(),
    ) {
        return;
    }
    let env = Env::new();
    env.config("sandbox = \"off\"\n");
    let services = Services::start();
    let app = env.repo_with_hook("app");
    let run = app.push_and_wait(&services.attacks());
    let direct = log(&env, &run.id, "loopback4");
    assert!(!direct.contains("BREACHED"), "{direct}");
    let joined = log(&env, &run.id, "worker_ns");
    assert!(joined.contains("BREACHED"), "{joined}");
    // That one, and pid 1's if this machine's pid 1 lets root in.
    assert!(services.arrived() >= 1);
}
