//! Stable paths (docs/PIPELINE.md, "The workspace"): every run's steps see
//! their workspace, HOME and TMPDIR at the same absolute paths, whatever
//! the run's id, so tools that key their caches on absolute paths (cargo)
//! find them again; two runs at once each see their own there.

use std::path::PathBuf;
use std::process::Command;

use quire_store::RunState;

use quire_testkit::{Env, Gate, Repo, git};

/// A pipeline that says where its step stands, waits at the gate as
/// `name`, and reads its tree again once both runs are there.
fn where_am_i(gate: &Gate, name: &str) -> String {
    let say = "echo \"pwd=$(pwd) ws=$QUIRE_WORKSPACE home=$HOME tmp=$TMPDIR marker=$(cat marker)\"";
    format!(
        r#"[jobs.look]
inputs = ["quire/push"]
sh = [{say:?}, {:?}, "echo after=$(cat marker)"]
"#,
        gate.step(name)
    )
}

#[test]
fn every_run_sees_the_same_paths_and_two_at_once_each_its_own_tree() {
    let env = Env::new();
    env.config("max_workers = 2\nmax_workers_per_repo = 1\n");
    let gate = Gate::new(&env);
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let repo = env.repo_with_hook(name);
        repo.commit(&[("marker", name)], "marker");
        ids.push(repo.push_pipeline(&where_am_i(&gate, name)));
    }
    // Both runs are inside their steps at once, each in its worker's own
    // mount namespace.
    gate.wait_ready("one");
    gate.wait_ready("two");
    gate.open();
    let ci = env.home().dir().join("ci");
    let (ws, home, tmp) = (ci.join("workspace"), ci.join("home"), ci.join("tmp"));
    for (id, name) in ids.iter().zip(["one", "two"]) {
        let run = env.wait_terminal(id);
        assert_eq!(run.state, RunState::Complete, "{run:?}");
        let text = env.logs(id, "look");
        let want = format!(
            "pwd={} ws={} home={} tmp={} marker={name}",
            ws.display(),
            ws.display(),
            home.display(),
            tmp.display()
        );
        assert!(text.contains(&want), "{want:?} not in:\n{text}");
        assert!(text.contains(&format!("after={name}")), "{text}");
        let shown = env.json(&["show", id]);
        let line = shown["sandbox"].as_str().unwrap();
        assert!(
            line.contains(&format!(
                "steps see the workspace at {} every run, HOME and TMPDIR beside it",
                ws.display()
            )),
            "{line}"
        );
    }
    // The mounts were the workers' own: the machine's mount points stay
    // empty.
    for dir in [&ws, &home, &tmp] {
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn without_a_namespace_of_its_own_a_run_keeps_its_own_paths_and_says_so() {
    let env = Env::new();
    let mut repo = env.repo_with_hook("app");
    repo.vars.push(("QUIRE_PIDNS".into(), "off".into()));
    let run = repo.push_and_wait(
        r#"[jobs.look]
inputs = ["quire/push"]
sh = "echo ws=$QUIRE_WORKSPACE"
"#,
    );
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let text = env.logs(&run.id, "look");
    let own = env
        .home()
        .dir()
        .join("runs")
        .join(&run.id)
        .join("workspace");
    assert!(text.contains(&format!("ws={}", own.display())), "{text}");
    let shown = env.json(&["show", &run.id]);
    let line = shown["sandbox"].as_str().unwrap();
    assert!(
        line.contains("steps see each run's workspace at a path of its own (QUIRE_PIDNS=off)"),
        "{line}"
    );
}

/// The sysroot of the Rust toolchain this test runs with (`bin/cargo`,
/// `bin/rustc`); None when there is none. rustup keeps it in the CI
/// user's home, which the sandbox hides: the test opens it to steps with
/// config.toml's `[steps] read`, as an admin would.
fn toolchain() -> Option<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let sysroot = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    sysroot.join("bin/cargo").exists().then_some(sysroot)
}

/// docs/PIPELINE.md's Rust cache example (run with `-v --offline`, and the
/// toolchain on `PATH` through config.toml's `[steps]`) in a crate with a dependency from crates.io as
/// `cargo vendor` keeps it:
/// a directory source in the repository, so no network is needed. A path
/// dependency would not do: cargo keys a workspace member's build on its
/// path relative to the workspace, but any other package's (a registry's,
/// a vendored one's) on its absolute path, which changed with every run's
/// workspace ("the path to the source changed") before stable paths.
fn crate_files() -> Vec<(String, String)> {
    let pipeline = r#"[jobs.build]
inputs = ["quire/push"]
cache = ["target", ".cargo-home/registry"]
env = { CARGO_HOME = ".cargo-home" }
sh = "cargo build -v --offline && cargo test --offline"
"#
    .to_string();
    [
        (".quire/ci.toml", pipeline.as_str()),
        (
            "Cargo.toml",
            r#"[workspace]
members = ["app"]
exclude = ["vendor"]
resolver = "2"
"#,
        ),
        (
            ".cargo/config.toml",
            r#"[source.crates-io]
replace-with = "vendored"

[source.vendored]
directory = "vendor"
"#,
        ),
        (
            "app/Cargo.toml",
            r#"[package]
name = "app"
version = "0.1.0"
edition = "2021"

[dependencies]
dep = "0.1"
"#,
        ),
        (
            "app/src/main.rs",
            "fn main() {\n    println!(\"{}\", dep::answer());\n}\n\n\
             #[test]\nfn answers() {\n    assert_eq!(dep::answer(), 42);\n}\n",
        ),
        (
            "vendor/dep/Cargo.toml",
            r#"[package]
name = "dep"
version = "0.1.0"
edition = "2021"
"#,
        ),
        (
            "vendor/dep/src/lib.rs",
            "pub fn answer() -> u32 {\n    42\n}\n",
        ),
        ("vendor/dep/.cargo-checksum.json", "{\"files\":{}}\n"),
        ("README", "A crate.\n"),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect()
}

#[test]
fn a_crates_second_push_compiles_no_dependency_from_its_cache() {
    let toolchain = toolchain();
    if !quire_testkit::require("cargo and rustc", "https://rustup.rs", toolchain.is_some()) {
        return;
    }
    let toolchain = toolchain.unwrap();
    let env = Env::new();
    env.config(&format!(
        r#"[steps]
env = {{ PATH = "{0}/bin:/usr/bin:/bin" }}
read = ["{0}"]
"#,
        toolchain.display()
    ));
    let repo: Repo = env.repo_with_hook("crate");
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    let files = crate_files();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    repo.commit(&files, "a crate");
    let first = repo.push_refs(&["main"]);
    let first = env.wait_terminal(&first[0]);
    let text = env.logs(&first.id, "build");
    assert_eq!(first.state, RunState::Complete, "{text}");
    assert!(text.contains("Compiling dep v0.1.0"), "{text}");

    // Only the README changes.
    repo.commit(&[("README", "A crate, pushed again.\n")], "readme");
    let second = repo.push_refs(&["main"]);
    let second = env.wait_terminal(&second[0]);
    let text = env.logs(&second.id, "build");
    assert_eq!(second.state, RunState::Complete, "{text}");
    assert!(text.contains("quire: cache: restored target"), "{text}");
    assert!(text.contains("Fresh dep v0.1.0"), "{text}");
    assert!(!text.contains("Compiling dep"), "{text}");
    assert!(text.contains("test answers ... ok"), "{text}");
}

/// docs/PIPELINE.md's Python cache example: a virtual environment kept in
/// the workspace. A venv holds its own absolute path (its scripts' `#!`
/// lines, `pyvenv.cfg`), so a cached one works only where it was made:
/// the next run finds it at the same path and its `pip` runs.
const PYTHON_PIPELINE: &str = r#"[env]
PIP_DISABLE_PIP_VERSION_CHECK = "1"
PIP_NO_INDEX = "1"

[jobs.test]
inputs = ["quire/push"]
cache = [".venv"]
sh = [
  "if [ -x .venv/bin/python ]; then echo reusing .venv; else python3 -m venv .venv; fi",
  ".venv/bin/pip install -q -r requirements.txt",
  ".venv/bin/python -m unittest -v",
]
"#;

/// docs/PIPELINE.md's C cache example: ccache's directory in the
/// workspace. With `-g` ccache hashes the directory a file is compiled in,
/// so its hits need the same path every run.
const C_PIPELINE: &str = r#"[jobs.build]
inputs = ["quire/push"]
cache = [".ccache"]
env = { CCACHE_DIR = ".ccache", CFLAGS = "-g -O2" }
sh = [
  "ccache --zero-stats >/dev/null",
  "make CC='ccache cc'",
  "ccache --print-stats | grep -E '^(direct_cache_hit|preprocessed_cache_hit|cache_miss)'",
]
"#;

/// Push `files` twice (the second time only a README changes) and return
/// the second run's log of `job`, the run ended as it must.
fn pushed_twice(repo: &Repo, env: &Env, files: &[(&str, &str)], job: &str) -> (RunState, String) {
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    repo.commit(files, "a project");
    let first = env.wait_terminal(&repo.push_refs(&["main"])[0]);
    let text = env.logs(&first.id, job);
    assert_eq!(first.state, RunState::Complete, "{text}");
    repo.commit(&[("README", "Pushed again.\n")], "readme");
    let second = env.wait_terminal(&repo.push_refs(&["main"])[0]);
    (second.state, env.logs(&second.id, job))
}

fn python_files() -> Vec<(&'static str, &'static str)> {
    vec![
        (".quire/ci.toml", PYTHON_PIPELINE),
        ("requirements.txt", ""),
        (
            "test_answer.py",
            "import unittest\n\nclass Answer(unittest.TestCase):\n    def test_answer(self):\n        self.assertEqual(6 * 7, 42)\n",
        ),
    ]
}

fn have(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_python_venv_cached_at_its_stable_path_runs_on_the_next_push() {
    if !quire_testkit::require(
        "python3 with venv",
        "apt-get install python3-venv",
        have("/usr/bin/python3", &["-c", "import ensurepip, venv"]),
    ) {
        return;
    }
    let env = Env::new();
    let repo = env.repo_with_hook("py");
    let (state, text) = pushed_twice(&repo, &env, &python_files(), "test");
    assert_eq!(state, RunState::Complete, "{text}");
    assert!(text.contains("quire: cache: restored .venv"), "{text}");
    assert!(text.contains("reusing .venv"), "{text}");
    assert!(text.contains("test_answer"), "{text}");
}

/// The same venv without stable paths (a worker without a mount namespace
/// of its own): its scripts name the first run's path, gone, and the
/// second run fails. What stable paths are for.
#[test]
fn without_stable_paths_the_cached_venv_names_a_path_that_is_gone() {
    if !quire_testkit::require(
        "python3 with venv",
        "apt-get install python3-venv",
        have("/usr/bin/python3", &["-c", "import ensurepip, venv"]),
    ) {
        return;
    }
    let env = Env::new();
    let mut repo = env.repo_with_hook("py");
    repo.vars.push(("QUIRE_PIDNS".into(), "off".into()));
    let (state, text) = pushed_twice(&repo, &env, &python_files(), "test");
    assert_eq!(state, RunState::Failed, "{text}");
    assert!(text.contains("reusing .venv"), "{text}");
}

#[test]
fn a_c_projects_second_push_hits_ccache_for_every_file() {
    if !quire_testkit::require(
        "ccache",
        "apt-get install ccache",
        have("ccache", &["--version"]),
    ) {
        return;
    }
    let env = Env::new();
    let repo = env.repo_with_hook("c");
    let files = vec![
        (".quire/ci.toml", C_PIPELINE),
        (
            "Makefile",
            "app: main.o answer.o\n\t$(CC) -o app main.o answer.o\n\n%.o: %.c\n\t$(CC) $(CFLAGS) -c $< -o $@\n",
        ),
        (
            "main.c",
            "int answer(void);\nint main(void) { return answer() == 42 ? 0 : 1; }\n",
        ),
        ("answer.c", "int answer(void) { return 42; }\n"),
    ];
    let (state, text) = pushed_twice(&repo, &env, &files, "build");
    assert_eq!(state, RunState::Complete, "{text}");
    assert!(text.contains("quire: cache: restored .ccache"), "{text}");
    let stat = |name: &str| -> u64 {
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}\t")))
            .filter_map(|n| n.trim().parse().ok())
            .next()
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    let hits = stat("direct_cache_hit") + stat("preprocessed_cache_hit");
    assert_eq!((hits, stat("cache_miss")), (2, 0), "{text}");
}
