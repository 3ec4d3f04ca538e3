//! Readiness files, never a sleep, to order a step and a test.

use std::path::PathBuf;

use crate::env::Env;
use crate::wait::{DEADLINE, within};

/// Where a step tells the test it got somewhere, and waits until the test
/// lets it go on.
///
/// A step may write only its own directories (the sandbox,
/// docs/SECURITY.md), so it says it is ready in its run's TMPDIR; it reads
/// whether the gate is open beside the test's home, which it may read.
pub struct Gate {
    dir: PathBuf,
    runs: PathBuf,
}

impl Gate {
    pub fn new(env: &Env) -> Gate {
        let dir = env.path().join("gate");
        std::fs::create_dir_all(&dir).unwrap();
        Gate {
            dir,
            runs: env.home().dir().join("runs"),
        }
    }

    /// Shell for a step: create `<name>.ready` in its TMPDIR (`name` may
    /// use the step's variables, `$QUIRE_BRANCH`), then wait until the gate
    /// opens; a minute at most, so a failed test leaves nothing behind.
    pub fn step(&self, name: &str) -> String {
        let dir = self.dir.display();
        format!(
            "touch \"$TMPDIR/{name}.ready\"; i=0; while [ ! -e {dir}/open ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"
        )
    }

    /// A pipeline of one job, `job`, on every push, whose step waits at the
    /// gate as `name` (see [`Gate::step`]).
    pub fn job(&self, job: &str, name: &str) -> String {
        format!(
            r#"[jobs.{job}]
inputs = ["quire/push"]
sh = {:?}
"#,
            self.step(name)
        )
    }

    /// Whether a step of any run is at the gate as `name`.
    pub fn is_ready(&self, name: &str) -> bool {
        std::fs::read_dir(&self.runs)
            .map(|runs| {
                runs.flatten()
                    .any(|run| run.path().join(format!("tmp/{name}.ready")).exists())
            })
            .unwrap_or(false)
    }

    /// Wait (up to [`DEADLINE`]) until the step `name` is at the gate.
    pub fn wait_ready(&self, name: &str) {
        if !within(DEADLINE.as_secs(), || self.is_ready(name)) {
            // What the workers said is what tells why a step never came.
            let home = self.runs.parent().unwrap();
            let log = std::fs::read_to_string(home.join("worker.log")).unwrap_or_default();
            let runs: Vec<_> = std::fs::read_dir(&self.runs)
                .map(|runs| runs.flatten().map(|run| run.file_name()).collect())
                .unwrap_or_default();
            panic!("waited a minute for {name} at the gate; runs/: {runs:?}\nworker.log:\n{log}");
        }
    }

    /// Let every step at the gate go on.
    pub fn open(&self) {
        std::fs::write(self.dir.join("open"), "").unwrap();
    }
}
