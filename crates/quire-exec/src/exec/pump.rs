//! Watching a running step until it is done: its stdout and stderr copied
//! into its CRI log as they arrive, its exit noticed without reaping it, and
//! on each tick the [`Stopper`] and the [`Leftovers`] given their turn.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions, pidfd_open, waitid};

use super::Executor;
use super::running::RunningJob;
use super::spawn::StepChild;
use super::stop::{Stop, Stopper};
use super::sweep::{self, Leftovers};
use crate::log::{CriLog, Lines, Redactor, Stream};

/// Copy `child`'s output into `log` until both pipes have closed and the
/// process has exited (it is not reaped here, so its process group id stays
/// reserved for the signals sent to it); says why it ended. An error is
/// reading the step's output or writing its log.
pub(super) fn pump(
    exec: &Executor,
    running: &RunningJob<'_>,
    child: &mut StepChild,
    log: &mut CriLog,
) -> io::Result<Stop> {
    let pid = child.pid();
    let mut output = Output::take(child, exec.max_line, &running.scope.redactor);
    let mut exit = ExitWatch::new(pid);
    let mut stopper = Stopper::new(
        &running.scope.halt,
        running.deadline,
        running.at_deadline,
        exec.grace,
    );
    let mut leftovers = Leftovers::new(running, output.pipe_inodes(), exec.grace);
    let tick = exec.tick.max(Duration::from_millis(1));
    while output.is_open() || !exit.exited {
        let ready = wait(&output, &exit, tick)?;
        output.copy(ready.pipes, log)?;
        exit.check(ready.exit);
        stopper.tick(pid);
        // Exited and drained, yet something it started holds the pipes.
        let held = exit.exited && ready.pipes == [false, false] && output.is_open();
        if held && leftovers.sweep(pid) == sweep::Pipes::Abandon {
            break;
        }
    }
    Ok(stopper.reason())
}

/// What became readable in one wait.
struct Ready {
    /// stdout, stderr.
    pipes: [bool; 2],
    exit: bool,
}

/// Wait up to `tick` for output, or for the process to exit.
fn wait(output: &Output, exit: &ExitWatch, tick: Duration) -> io::Result<Ready> {
    let open: Vec<(usize, &File)> = output.open().collect();
    let mut fds: Vec<PollFd<'_>> = open
        .iter()
        .map(|(_, file)| PollFd::new(*file, PollFlags::IN))
        .collect();
    if let (Some(pidfd), false) = (&exit.pidfd, exit.exited) {
        fds.push(PollFd::new(pidfd, PollFlags::IN));
    }
    let timeout = Timespec {
        tv_sec: i64::try_from(tick.as_secs()).unwrap_or(1),
        tv_nsec: i64::from(tick.subsec_nanos()),
    };
    if let Err(e) = poll(&mut fds, Some(&timeout))
        && e != rustix::io::Errno::INTR
    {
        return Err(e.into());
    }
    let mut ready = Ready {
        pipes: [false; 2],
        exit: false,
    };
    for (k, fd) in fds.iter().enumerate() {
        if fd.revents().is_empty() {
            continue;
        }
        match open.get(k) {
            Some(&(i, _)) => ready.pipes[i] = true,
            None => ready.exit = true,
        }
    }
    Ok(ready)
}

/// A step's stdout and stderr while open, each cut into log lines.
struct Output {
    pipes: [(Option<File>, Lines); 2],
    buf: Vec<u8>,
}

impl Output {
    fn take(child: &mut StepChild, max_line: usize, redactor: &Redactor) -> Output {
        let (stdout, stderr) = child.take_output();
        Output {
            pipes: [
                (stdout, Lines::new(Stream::Stdout, max_line, redactor)),
                (stderr, Lines::new(Stream::Stderr, max_line, redactor)),
            ],
            buf: vec![0u8; 64 * 1024],
        }
    }

    /// The inode numbers of the pipes, which name them in /proc/*/fd.
    fn pipe_inodes(&self) -> Vec<u64> {
        self.open()
            .filter_map(|(_, file)| rustix::fs::fstat(file).ok())
            .map(|stat| stat.st_ino)
            .collect()
    }

    fn is_open(&self) -> bool {
        self.open().next().is_some()
    }

    /// The open pipes, with their index (0 stdout, 1 stderr).
    fn open(&self) -> impl Iterator<Item = (usize, &File)> {
        self.pipes
            .iter()
            .enumerate()
            .filter_map(|(i, (file, _))| Some((i, file.as_ref()?)))
    }

    /// Copy one read of each `ready` pipe into `log`, in stdout-then-stderr
    /// order; a pipe at its end is closed and its unterminated last line
    /// written. The log is flushed, so it is current on disk every tick.
    fn copy(&mut self, ready: [bool; 2], log: &mut CriLog) -> io::Result<()> {
        for (i, (pipe, lines)) in self.pipes.iter_mut().enumerate() {
            let Some(reader) = pipe.as_mut().filter(|_| ready[i]) else {
                continue;
            };
            match reader.read(&mut self.buf) {
                Ok(0) => {
                    *pipe = None;
                    lines.finish(log)?;
                }
                Ok(n) => lines.feed(&self.buf[..n], log)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        log.flush()
    }
}

/// Whether the step's own process has exited, noticed without reaping it.
struct ExitWatch {
    pid: Pid,
    /// Readable once the process exits; without pidfds (Linux < 5.3) exit
    /// is looked for on each tick instead.
    pidfd: Option<OwnedFd>,
    exited: bool,
}

impl ExitWatch {
    fn new(pid: Pid) -> ExitWatch {
        ExitWatch {
            pid,
            pidfd: pidfd_open(pid, PidfdFlags::empty()).ok(),
            exited: false,
        }
    }

    /// Look again, when the pidfd said so or there is no pidfd.
    fn check(&mut self, pidfd_ready: bool) {
        if !self.exited && (pidfd_ready || self.pidfd.is_none()) {
            self.exited = exited_unreaped(self.pid);
        }
    }
}

/// Whether the process has exited, without reaping it (so its pid and
/// process group id stay reserved).
fn exited_unreaped(pid: Pid) -> bool {
    matches!(
        waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT
        ),
        Ok(Some(_))
    )
}
