//! Issue 22's cache figure: a crate with crates.io dependencies, built
//! by a sandboxed job whose workspace and cargo home are at the same paths
//! every run (docs/PIPELINE.md, "The workspace"), against the same
//! commands by hand in a warm clone, and against per-run paths.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Bins, Repo, git, row, run, time, wait_idle};

/// The toolchain a sandboxed step can run: the sysroot, or when it lies in
/// a home the sandbox hides (rustup's), a hard-linked copy of it kept in
/// the workspace's `target/`.
fn toolchain() -> PathBuf {
    let out = run(Command::new("rustc").args(["--print", "sysroot"]));
    let sysroot = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let homes: Vec<PathBuf> = [
        std::env::var_os("HOME").map(PathBuf::from),
        Some("/root".into()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !homes.iter().any(|h| sysroot.starts_with(h)) {
        return sysroot;
    }
    let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../target/bench-toolchain-{}",
        sysroot.file_name().unwrap().to_string_lossy()
    ));
    if !kept.join("bin/cargo").exists() {
        let partial = kept.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        let linked = Command::new("cp")
            .arg("-al")
            .arg(&sysroot)
            .arg(&partial)
            .status()
            .is_ok_and(|s| s.success());
        if !linked {
            let _ = std::fs::remove_dir_all(&partial);
            run(Command::new("cp").arg("-a").arg(&sysroot).arg(&partial));
        }
        std::fs::rename(&partial, &kept).unwrap();
    }
    kept
}

/// `cargo ARGS` in `dir`, offline first (this machine's registry cache),
/// else online.
fn cargo(dir: &Path, args: &[&str]) -> std::process::Output {
    let offline = Command::new("cargo")
        .args(args)
        .arg("--offline")
        .current_dir(dir)
        .output()
        .unwrap();
    if offline.status.success() {
        return offline;
    }
    run(Command::new("cargo").args(args).current_dir(dir))
}

/// The job's time (ms) of the newest run in `home`, once it ended.
fn job_ms(bins: &Bins, home: &Path) -> f64 {
    wait_idle(home);
    let runs_json = |args: &[&str]| -> serde_json::Value {
        let out = run(Command::new(&bins.quire_runs)
            .arg("--home")
            .arg(home)
            .args(args));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let newest = runs_json(&["list", "--limit", "1", "--json"]);
    let id = newest[0]["id"].as_str().unwrap().to_string();
    let shown = runs_json(&["show", &id, "--json"]);
    if shown["state"] != "complete" {
        let logs = run(Command::new(&bins.quire_runs)
            .arg("--home")
            .arg(home)
            .args(["logs", &id]));
        panic!("the run failed:\n{}", String::from_utf8_lossy(&logs.stdout));
    }
    let job = &shown["jobs"][0];
    (job["finished_at_ms"].as_i64().unwrap() - job["started_at_ms"].as_i64().unwrap()) as f64
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A crate using serde (derive) and serde_json, vendored (`cargo vendor`,
/// as a crate built without network keeps them), with docs/PIPELINE.md's
/// Rust cache example; the sandbox on (the default). Pushes that touch only
/// a README: with stable paths, with per-run paths (`QUIRE_PIDNS=off`), and
/// by hand in a warm clone.
pub fn cargo_stable(bins: &Bins, quick: bool) {
    let toolchain = toolchain();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = Repo::new(dir.path(), "crate");
    repo.install(bins, &home);
    let pipeline = format!(
        "[env]\nPATH = \"{}/bin:/usr/bin:/bin\"\n\n\
         [jobs.build]\ninputs = [\"quire/push\"]\ncache = [\"target\", \".cargo-home/registry\"]\n\
         env = {{ CARGO_HOME = \".cargo-home\" }}\nsh = \"cargo build && cargo test\"\ntimeout = \"20m\"\n",
        toolchain.display()
    );
    let files: [(&str, &str); 5] = [
        (
            "Cargo.toml",
            "[package]\nname = \"sample\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nserde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\n",
        ),
        (
            "src/lib.rs",
            "#[derive(serde::Serialize)]\npub struct N {\n    pub n: u64,\n}\n\npub fn show(n: u64) -> String {\n    serde_json::to_string(&N { n }).unwrap()\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn shows() {\n        assert_eq!(super::show(42), \"{\\\"n\\\":42}\");\n    }\n}\n",
        ),
        (".quire/ci.toml", &pipeline),
        (".gitignore", "target\n.cargo-home\n"),
        (
            ".cargo/config.toml",
            "[source.crates-io]\nreplace-with = \"vendored\"\n\n[source.vendored]\ndirectory = \"vendor\"\n",
        ),
    ];
    for (path, text) in &files[..2] {
        let file = repo.work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    cargo(&repo.work, &["generate-lockfile"]);
    cargo(&repo.work, &["vendor", "-q", "vendor"]);
    repo.commit(&files, "a crate");
    run(git(&repo.work).args(["add", "Cargo.lock", "vendor"]));
    run(git(&repo.work).args(["commit", "--quiet", "-m", "vendored"]));
    repo.push(&["--quiet", "origin", "main"]);
    let first = job_ms(bins, &home);
    // Seven of each: the figures are tens of milliseconds, where one
    // sample's noise is as large as the job's own part.
    let n = if quick { 1 } else { 7 };
    let mut pushes = 0;
    let mut later = |pidns_off: bool| -> f64 {
        median(
            (0..n)
                .map(|_| {
                    pushes += 1;
                    repo.commit(&[("README", &format!("push {pushes}\n"))], "readme");
                    let mut push = git(&repo.work);
                    if pidns_off {
                        push.env("QUIRE_PIDNS", "off");
                    }
                    run(push.args(["push", "--quiet", "origin", "main"]));
                    job_ms(bins, &home)
                })
                .collect(),
        )
    };
    let stable = later(false);
    let per_run = later(true);
    // By hand, in a clone that has built once already, with the same
    // toolchain (not through rustup's proxies).
    let path = format!(
        "{}/bin:{}",
        toolchain.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let clone = dir.path().join("by-hand");
    run(git(dir.path())
        .args(["clone", "--quiet", "--branch", "main"])
        .arg(&repo.bare)
        .arg(&clone));
    let by_hand = || {
        run(Command::new("sh")
            .arg("-c")
            .arg("cargo build -q && cargo test -q")
            .env("PATH", &path)
            .current_dir(&clone))
    };
    by_hand();
    let warm = median(
        (0..n)
            .map(|_| time(by_hand).0.as_secs_f64() * 1000.0)
            .collect(),
    );
    row(
        "a small crate (serde with derive, serde_json, vendored), sandboxed, docs/PIPELINE.md's Rust cache example, a push touching only a README",
        &format!(
            "the same commands by hand in a warm clone: {:.3} s (median of {n}); first push's job: {:.2} s; with per-run paths (`QUIRE_PIDNS=off`): {:.2} s (median of {n})",
            warm / 1000.0,
            first / 1000.0,
            per_run / 1000.0
        ),
        &format!(
            "with stable paths (median of {n}): {:.3} s: **{:.2}x** by hand, {:.2}x per-run paths",
            stable / 1000.0,
            stable / warm,
            stable / per_run
        ),
        "<= 1.2x by hand",
    );
}
