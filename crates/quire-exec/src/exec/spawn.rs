//! Starting a step's process: its program found on the job's PATH, a
//! cleared environment, the workspace as its directory, its output piped,
//! and a process group of its own so that everything it starts can be
//! signalled at once; confined by the run's sandbox, if any.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::contain;
use super::sandbox::Sandbox;
use super::vspawn;
use crate::contain::JobCgroup;
use crate::netns::RunNetwork;
use quire_pipeline::pipeline::Step;
use rustix::process::Pid;

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

/// A started step: its pid, its output pipes until the pump takes them,
/// and how it is waited for.
pub(super) struct StepChild {
    pid: Pid,
    stdout: Option<File>,
    stderr: Option<File>,
    /// Started by std (posix_spawn); else by [`vspawn`].
    std: Option<Child>,
}

impl StepChild {
    pub(super) fn id(&self) -> u32 {
        self.pid.as_raw_nonzero().get().unsigned_abs()
    }

    pub(super) fn pid(&self) -> Pid {
        self.pid
    }

    /// The parent's ends of the step's stdout and stderr.
    pub(super) fn take_output(&mut self) -> (Option<File>, Option<File>) {
        (self.stdout.take(), self.stderr.take())
    }

    /// Wait for the step's process to end (reaping it).
    pub(super) fn wait(&mut self) -> io::Result<ExitStatus> {
        match &mut self.std {
            Some(child) => child.wait(),
            None => vspawn::wait(self.pid),
        }
    }
}

/// How a step's stdout and stderr reach quire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pipes {
    /// One pipe for both (the default), as other CI systems give a step:
    /// the log keeps the order the step wrote in (`echo x > /f; echo
    /// rc=$?` logs the shell's error before `rc=2`), all of it as stdout.
    Combined,
    /// A pipe each (`separate_stderr = true`): each line logged with its
    /// stream, lines of the two ordered only as quire read them.
    Separate,
}

/// Start `step` as `program` with exactly `env`, in `workspace`, in its
/// job's `cgroup` when there is one, in the run's `network` namespace when
/// there is one, inside `sandbox`, its output through `pipes`. When the
/// child has nothing to do before exec, std starts it (posix_spawn); else
/// [`vspawn`] does, as cheaply (std's `pre_exec` would fork the worker).
#[allow(clippy::too_many_arguments)]
pub(super) fn start(
    step: &Step,
    program: &Path,
    env: &HashMap<String, String>,
    workspace: &Path,
    sandbox: Option<&Sandbox>,
    cgroup: Option<&JobCgroup>,
    network: Option<&RunNetwork>,
    pipes: Pipes,
) -> io::Result<StepChild> {
    let confine = sandbox.and_then(Sandbox::child_parts);
    let netns = network.map(RunNetwork::child_parts);
    if cgroup.is_none() && confine.is_none() && netns.is_none() {
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
            .process_group(0);
        // The parent's end of a combined pipe; the child's two ends are
        // the command's, closed here when it is dropped.
        let combined = match pipes {
            Pipes::Combined => {
                let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
                command
                    .stdout(Stdio::from(write.try_clone()?))
                    .stderr(Stdio::from(write));
                Some(File::from(read))
            }
            Pipes::Separate => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
                None
            }
        };
        let mut child = contain::spawn(&mut command)?;
        drop(command);
        let stdout = combined.or_else(|| child.stdout.take().map(|p| File::from(OwnedFd::from(p))));
        let stderr = child.stderr.take().map(|p| File::from(OwnedFd::from(p)));
        return Ok(StepChild {
            pid: Pid::from_child(&child),
            stdout,
            stderr,
            std: Some(child),
        });
    }
    // A name the job's PATH does not have is not found (127), as std's
    // spawn says: execve would take it relative to the workspace.
    if program.components().count() == 1 && !program.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} not found on the job's PATH", program.display()),
        ));
    }
    let mut argv = vec![vspawn::c_path(program)?];
    match step {
        Step::Shell(cmd) => {
            argv.push(vspawn::c_bytes("-c".as_ref())?);
            argv.push(vspawn::c_bytes(cmd.as_ref())?);
        }
        Step::Argv(args) => {
            for arg in &args[1..] {
                argv.push(vspawn::c_bytes(arg.as_ref())?);
            }
        }
    }
    let mut envp = Vec::with_capacity(env.len());
    for (name, value) in env {
        envp.push(vspawn::c_bytes(format!("{name}={value}").as_ref())?);
    }
    let (ruleset, ids) = confine.unwrap_or((None, None));
    let plan = vspawn::Plan {
        program: vspawn::c_path(program)?,
        argv,
        envp,
        cwd: vspawn::c_path(workspace)?,
        cgroup_procs: cgroup.map(|c| c.procs().as_raw_fd()),
        cgroup_dir: cgroup.map(|c| c.dir().as_raw_fd()),
        ruleset,
        ids,
        netns,
        combined: pipes == Pipes::Combined,
    };
    let spawned = crate::processes::note_step(
        || vspawn::spawn(&plan),
        |s| s.pid.as_raw_nonzero().get().unsigned_abs(),
    )
    .map_err(contain::said)?;
    Ok(StepChild {
        pid: spawned.pid,
        stdout: Some(spawned.stdout),
        stderr: spawned.stderr,
        std: None,
    })
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
