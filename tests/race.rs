//! The worker's own hands in a workspace that steps change while it works
//! (docs/SECURITY.md, "The worker's own hands"): a job of the pushed
//! pipeline swaps a directory of the shared workspace for a symlink and
//! back, as fast as it can (`renameat2(RENAME_EXCHANGE)` in a loop), while
//! another job of the same run restores and saves its caches and keeps its
//! artifacts through that directory. The symlinks lead to the home (its
//! `config.toml`, `quire.db`, `runs/`, `worker.log`), to another bare
//! repository's `hooks/`, and a run of another repository is running
//! beside it all. Nothing outside the attacking job's own workspace may be
//! read, moved, written or deleted, over every attempt.

use std::path::Path;

use quire_store::RunState;

use quire_testkit::{Env, Gate, git};

/// Swaps two names until the file `argv[3]` exists (a minute at most);
/// says how often, and touches `flipping.<argv[4]>` after the first swap.
const FLIPPER: &str = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 5) return 2;
    time_t end = time(NULL) + 60;
    long swaps = 0;
    char marker[256];
    snprintf(marker, sizeof marker, "flipping.%s", argv[4]);
    while (time(NULL) < end && access(argv[3], F_OK) != 0) {
        for (int i = 0; i < 1000; i++)
            if (renameat2(AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) == 0)
                swaps++;
        if (swaps && marker[0]) { FILE *f = fopen(marker, "w"); if (f) fclose(f); marker[0] = 0; }
    }
    printf("swaps %s %ld\n", argv[4], swaps);
    return 0;
}
"#;

/// Names in the home a path through `shared/dir` reaches when `dir` is the
/// symlink: what a save would carry off into the cache, or an artifact
/// copy out.
const HOME_NAMES: [&str; 4] = ["config.toml", "quire.db", "runs", "worker.log"];
/// Names a restore through `shared/rdir` would put into the other
/// repository's `hooks/` when `rdir` is the symlink.
const HOOK_NAMES: usize = 12;
/// Runs of the attack, one after the other on one branch (the first has no
/// cache to restore).
const RUNS: usize = 6;
const SECRET: &str = "s3cret-of-the-config-7f3a";

fn pipeline(home: &Path, hooks: &Path) -> String {
    let hooks_made: Vec<String> = (0..HOOK_NAMES)
        .map(|i| format!("until printf '#!/bin/sh\\necho pwned\\n' > shared/rdir/h{i} 2>/dev/null; do :; done"))
        .collect();
    let mut cache: Vec<String> = HOME_NAMES
        .iter()
        .map(|n| format!("\"shared/dir/{n}\""))
        .collect();
    cache.extend((0..HOOK_NAMES).map(|i| format!("\"shared/rdir/h{i}\"")));
    let artifacts: Vec<String> = ["config.toml", "worker.log", "runs/*", "*.db"]
        .iter()
        .map(|n| format!("\"shared/dir/{n}\""))
        .collect();
    format!(
        r#"[jobs.flip]
inputs = ["quire/push"]
sh = [
  "cc -O2 -o $TMPDIR/flipper flipper.c",
  "mkdir -p shared/dir shared/rdir && for n in {names}; do echo pusher > shared/dir/$n; done",
  "ln -sfn {home} shared/link && ln -sfn {hooks} shared/rlink",
  "$TMPDIR/flipper shared/dir shared/link stop home & $TMPDIR/flipper shared/rdir shared/rlink stop hooks & wait",
]

# Once build's caches are saved and its artifacts kept: the flipping stops.
[jobs.stop]
inputs = ["build"]
sh = "touch stop"

[jobs.ready]
inputs = ["quire/push"]
sh = "i=0; until [ -e flipping.home ] && [ -e flipping.hooks ]; do sleep 0.01; i=$((i+1)); [ $i -lt 3000 ] || exit 1; done"

[jobs.build]
inputs = ["ready"]
cache = [{cache}]
artifacts = [{artifacts}]
sh = [{made}]
"#,
        names = HOME_NAMES.join(" "),
        home = home.display(),
        hooks = hooks.display(),
        cache = cache.join(", "),
        artifacts = artifacts.join(", "),
        made = hooks_made
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// What a directory holds, names and bytes, recursively.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        // A run beside it may remove its directories meanwhile.
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
                out.push((name, Vec::new()));
            } else {
                out.push((name, std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir` whose bytes hold `needle`.
fn holding(dir: &Path, needle: &str) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    snapshot(dir)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(name, _)| name)
        .collect()
}

/// The attack; with `run_as`, steps run as `nobody` (quire as root); with
/// `cgroups` off, the worker contains the run without cgroups, so the run
/// is never frozen and the descriptors alone must hold.
fn attack(run_as: bool, cgroups: bool) {
    let env = Env::new();
    let mut config = format!(
        r#"max_workers = 2
max_parallel_jobs = 4
sandbox = "required"
[secrets]
TOKEN = "{SECRET}"
"#
    );
    if run_as {
        use std::os::unix::fs::PermissionsExt;
        config = format!(
            r#"run_as = "nobody"
{config}"#
        );
        std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    env.config(&config);
    let home = env.home().dir().to_path_buf();
    let config_before = std::fs::read(home.join("config.toml")).unwrap();

    // Another repository, whose hooks a restore must never reach, and a
    // run of it that runs beside the attack from start to end.
    let other = env.repo_with_hook("other");
    let hooks = other.bare.join("hooks");
    let hooks_before = snapshot(&hooks);
    let gate = Gate::new(&env);
    other.commit(&[("marker", "mine\n")], "marker");
    let beside = other.push_pipeline(&format!(
        r#"[jobs.wait]
inputs = ["quire/push"]
sh = [{:?}, "test -f marker && echo workspace-intact"]
"#,
        gate.step("beside")
    ));
    gate.wait_ready("beside");

    let mut app = env.repo_with_hook("app");
    if !cgroups {
        app.vars
            .push(("QUIRE_CONTAINMENT".into(), "subreaper".into()));
    }
    app.commit(&[("flipper.c", FLIPPER)], "the flipper");
    let pipeline = pipeline(&home, &hooks);
    let mut swaps = 0u64;
    let mut restores = 0usize;
    for round in 0..RUNS {
        app.commit(&[("round", &round.to_string())], "again");
        let run = app.push_and_wait(&pipeline);
        if round == 0 {
            let shown = env.json(&["show", &run.id]);
            let want = if cgroups { "cgroup" } else { "subreaper" };
            assert_eq!(shown["containment"], want, "{shown}");
        }
        let flip_log = env.step_log(&run.id, "flip", 4);
        let build_log = env.step_log(&run.id, "build", 1);
        assert_eq!(run.state, RunState::Complete, "{flip_log}\n{build_log}");
        for line in flip_log.lines() {
            if let Some(n) = line.rsplit(' ').next().filter(|_| line.contains("swaps ")) {
                swaps += n.parse::<u64>().unwrap_or(0);
            }
        }
        restores += build_log.matches("restored ").count();
        // After every run: the home as it was, the other repository's
        // hooks as they were, nothing of the home in the pusher's reach.
        let mut broken = Vec::new();
        if std::fs::read(home.join("config.toml")).ok().as_ref() != Some(&config_before) {
            broken.push("config.toml changed or gone".to_string());
        }
        for name in HOME_NAMES {
            if !home.join(name).exists() {
                broken.push(format!("{name} gone from the home"));
            }
        }
        let hooks_now = snapshot(&hooks);
        for (name, _) in hooks_now.iter().filter(|h| !hooks_before.contains(h)) {
            broken.push(format!("the other repository's hooks/{name} written"));
        }
        for (name, _) in hooks_before.iter().filter(|h| !hooks_now.contains(h)) {
            broken.push(format!(
                "the other repository's hooks/{name} gone or changed"
            ));
        }
        for dir in ["caches", "runs"] {
            for file in holding(&home.join(dir), SECRET) {
                broken.push(format!("the config's secret in {dir}/{file}"));
            }
        }
        for kept in env.json(&["show", &run.id])["artifacts"]
            .as_array()
            .unwrap()
        {
            if kept["size"] != 7 {
                broken.push(format!("an artifact not of the pusher's: {kept}"));
            }
        }
        assert!(broken.is_empty(), "round {round}: {broken:#?}\n{build_log}");
    }
    // The run beside it all still has its workspace, and ends well.
    gate.open();
    let beside = env.wait_terminal(&beside);
    assert_eq!(beside.state, RunState::Complete, "{beside:?}");
    assert!(
        env.step_log(&beside.id, "wait", 2)
            .contains("workspace-intact")
    );
    let attempts = RUNS * (HOME_NAMES.len() + 4) + restores * HOOK_NAMES;
    eprintln!(
        "race: {RUNS} runs, {swaps} swaps, {attempts} saves, keeps and restores through a flipping directory"
    );
    assert!(swaps > 10_000, "the flipper flipped: {swaps}");
    assert!(restores >= 1, "a run restored what an earlier one saved");
    git(&app.bare, &["fsck", "--no-progress"]);
}

/// Without cgroups, so without the freeze: the descriptors alone.
#[test]
fn caches_and_artifacts_through_a_flipping_directory_never_leave_the_workspace() {
    attack(false, false);
}

#[test]
fn as_run_as_with_the_sandbox_required_the_flipping_directory_reaches_nothing_of_roots() {
    if !quire_testkit::require(
        "root (run_as)",
        "run the tests as root",
        quire_testkit::is_root(),
    ) {
        return;
    }
    attack(true, true);
}
