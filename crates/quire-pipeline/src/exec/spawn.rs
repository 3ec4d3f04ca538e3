//! Starting a step's process: its program found on the job's PATH, a
//! cleared environment, the workspace as its directory, its output piped,
//! and a process group of its own so that everything it starts can be
//! signalled at once; confined by the run's sandbox, if any.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::contain;
use super::sandbox::Sandbox;
use crate::contain::JobCgroup;
use crate::pipeline::Step;

/// Programs found on a job's PATH, looked up once each, as a shell's
/// command hash would: handing the child a bare name makes it try every
/// PATH entry with execve, which costs more than a short step.
pub(super) struct Programs<'a> {
    path: &'a str,
    found: HashMap<String, PathBuf>,
}

impl<'a> Programs<'a> {
    pub(super) fn on(path: &'a str) -> Programs<'a> {
        Programs {
            path,
            found: HashMap::new(),
        }
    }

    /// The program `step` runs: `sh` for a shell string, else argv's first.
    pub(super) fn of(&mut self, step: &Step) -> &Path {
        let name = match step {
            Step::Shell(_) => "sh",
            Step::Argv(argv) => argv[0].as_str(),
        };
        self.found
            .entry(name.to_string())
            .or_insert_with(|| resolve(name, self.path))
    }
}

/// `program` found on `path_var` (the first executable regular file), or
/// the name as given: a name with a `/` is used as it is, and one found
/// nowhere fails at spawn with "not found", as it should.
fn resolve(program: &str, path_var: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0
        {
            return candidate;
        }
    }
    PathBuf::from(program)
}

/// Start `step` as `program` with exactly `env`, in `workspace`, in its
/// job's `cgroup` when there is one, inside `sandbox`.
pub(super) fn start(
    step: &Step,
    program: &Path,
    env: &HashMap<String, String>,
    workspace: &Path,
    sandbox: Option<&Sandbox>,
    cgroup: Option<&JobCgroup>,
) -> io::Result<Child> {
    let mut command = Command::new(program);
    match step {
        Step::Shell(cmd) => {
            command.arg("-c").arg(cmd);
        }
        Step::Argv(argv) => {
            command.args(&argv[1..]);
        }
    }
    command
        .current_dir(workspace)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // Into the job's cgroup first, while the child still may.
    contain::enter(&mut command, cgroup);
    // Last before the spawn: the sandbox's pre_exec must run after any
    // other (it drops the user and every path outside its rules).
    if let Some(sandbox) = sandbox {
        sandbox.confine(&mut command);
    }
    contain::spawn(&mut command)
}

/// The shell's exit code for a step whose program could not be started
/// (127 not found, 126 not executable); `None` for a failure of quire's own.
pub(super) fn unstartable_code(error: &io::Error) -> Option<i64> {
    match error.kind() {
        io::ErrorKind::NotFound => Some(127),
        io::ErrorKind::PermissionDenied => Some(126),
        _ => None,
    }
}

/// The shell's convention: the exit code, or 128+N for a signal N.
pub(super) fn exit_code(status: ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => -1,
    }
}
