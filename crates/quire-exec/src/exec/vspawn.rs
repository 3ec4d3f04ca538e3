//! Starting a step whose child has work to do before exec (enter its job's
//! cgroup, enter the sandbox) the way `posix_spawn` starts one that has
//! none: `clone(CLONE_VM | CLONE_VFORK)`, the child running on a stack of
//! its own in the worker's memory until it execs, the worker's thread
//! waiting meanwhile. std's `pre_exec` forks instead: a copy of the
//! worker's page tables and a copy-on-write fault for every page either
//! side touches, which made a one-command step a third slower.
//!
//! The child shares the worker's memory, so it does only what
//! `posix_spawn`'s child does, with raw system calls on values the parent
//! prepared: no allocation, no lock, no Rust that could unwind. Signals are
//! blocked around the clone, and the child puts every handler back to the
//! default before it unblocks them, so no handler of the worker's runs on
//! the child's stack.

use std::ffi::{CString, OsStr, c_char, c_int, c_void};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

/// What the child does before exec, and what it execs.
pub(super) struct Plan {
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    /// `cgroup.procs` of the job's cgroup, to write `0` to, and its
    /// directory, to be started in (clone3's CLONE_INTO_CGROUP) where the
    /// kernel can: then the child writes nothing.
    pub cgroup_procs: Option<RawFd>,
    pub cgroup_dir: Option<RawFd>,
    /// The sandbox's ruleset and the user to become, if any.
    pub ruleset: Option<RawFd>,
    pub ids: Option<(u32, u32, Vec<u32>)>,
    /// The run's network namespace to join (and its user namespace first,
    /// when quire is not root), if any.
    pub netns: Option<(Option<RawFd>, RawFd)>,
    /// One pipe for stdout and stderr, so that what the step writes stays
    /// in the order it wrote it; else a pipe each.
    pub combined: bool,
}

/// A started step: its pid and the parent's ends of its output pipes
/// (stdout's alone when it is combined with stderr).
pub(super) struct Spawned {
    pub pid: rustix::process::Pid,
    pub stdout: File,
    pub stderr: Option<File>,
}

/// Everything the child reads, by raw pointer: built and kept alive by
/// the parent, which waits (CLONE_VFORK) until the child has exec'd or
/// exited.
#[derive(Clone, Copy)]
struct ChildArgs<'a> {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    errors: RawFd,
    cgroup_procs: RawFd,
    ruleset: Option<RawFd>,
    ids: Option<&'a (u32, u32, Vec<u32>)>,
    netns: Option<(Option<RawFd>, RawFd)>,
}

const STACK_BYTES: usize = 64 * 1024;

pub(super) fn spawn(plan: &Plan) -> io::Result<Spawned> {
    let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = if plan.combined {
        (None, None)
    } else {
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    };
    let (fail_r, fail_w) = pipe()?;
    let stdin = File::open("/dev/null")?;
    let argv: Vec<*const c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const c_char> = plan
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let args = ChildArgs {
        program: plan.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: plan.cwd.as_ptr(),
        stdin: stdin.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_ref().map_or(out_w.as_raw_fd(), |w| w.as_raw_fd()),
        errors: fail_w.as_raw_fd(),
        cgroup_procs: plan.cgroup_procs.unwrap_or(-1),
        ruleset: plan.ruleset,
        ids: plan.ids.as_ref(),
        netns: plan.netns,
    };
    let mut stack = vec![0u8; STACK_BYTES];
    // SAFETY: integer arguments only.
    let dumpable = plan
        .ids
        .is_some()
        .then(|| unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) });

    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask only
    // write the sets given.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above: both sets are this stack's, initialised.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // Started in its cgroup where the kernel can (clone3 with
    // CLONE_INTO_CGROUP, Linux 5.7): moving a process between cgroups
    // afterwards waits for an RCU grace period, most of what containing a
    // step costs. Else (an older kernel, another architecture) started as
    // before, the child writing itself into the cgroup.
    let mut started = None;
    if let Some(dir) = plan.cgroup_dir {
        let into = ChildArgs {
            cgroup_procs: -1,
            ..args
        };
        // SAFETY: as for clone below; `into` outlives the call likewise.
        match unsafe { clone3_into(dir, &mut stack, &into) } {
            // Not this kernel's (or architecture's), or not this cgroup's:
            // started the other way, which says what is wrong, if anything.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(
                        libc::ENOSYS
                            | libc::EINVAL
                            | libc::E2BIG
                            | libc::EOPNOTSUPP
                            | libc::EBUSY
                            | libc::EPERM
                    )
                ) => {}
            done => started = Some(done),
        }
    }
    let started = started.unwrap_or_else(|| {
        // The stack grows down from its 16-byte aligned top.
        let top = stack.as_mut_ptr().wrapping_add(STACK_BYTES);
        let top = top.wrapping_sub(top as usize % 16);
        // SAFETY: `child` runs on `stack` (alive until clone returns: with
        // CLONE_VFORK this thread waits until the child has exec'd or
        // exited) and reads `args`, which outlives it likewise; it
        // allocates nothing and never returns into Rust code of this
        // thread.
        let pid = unsafe {
            libc::clone(
                child,
                top.cast::<c_void>(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::from_ref(&args).cast_mut().cast::<c_void>(),
            )
        };
        if pid < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(pid)
        }
    });
    // SAFETY: as above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    // A child sharing the worker's memory that changed its user made the
    // kernel mark that memory not dumpable: the worker's, as it was.
    if let Some(before) = dumpable
        && before > 0
    {
        // SAFETY: integer arguments only.
        unsafe {
            libc::prctl(libc::PR_SET_DUMPABLE, before as libc::c_ulong, 0, 0, 0);
        }
    }
    drop((out_w, err_w, fail_w, stack));
    // The worker's own failure to start a process (no memory, pids.max of
    // the job's cgroup, a refusal of clone3): said as such, never taken
    // for the step's program being missing (127) or not executable (126),
    // which only the child's errno means.
    let pid = started
        .map_err(|e| io::Error::other(format!("cannot start a process for the step: {e}")))?;
    // The child has exec'd (the pipe closed on exec, empty) or failed
    // (four bytes of errno, then exited).
    let mut report = Vec::new();
    File::from(fail_r).read_to_end(&mut report)?;
    if let Ok(errno) = <[u8; 4]>::try_from(report.as_slice()) {
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(pid),
            rustix::process::WaitOptions::empty(),
        );
        return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)));
    }
    let pid =
        rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::other("clone gave no pid"))?;
    Ok(Spawned {
        pid,
        stdout: File::from(out_r),
        stderr: err_r.map(File::from),
    })
}

/// clone3's arguments (`struct clone_args`, Linux 5.7's size).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3(CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP)`: [`child`] runs
/// on `stack` with `args`, started in the cgroup whose directory is open
/// as `cgroup`; the pid, once the child has exec'd or exited. ENOSYS where
/// this is not built (an architecture other than x86_64).
///
/// # Safety
///
/// As for `clone` in [`spawn`]: `stack` and `args` outlive the call, which
/// returns only once the child no longer uses them (CLONE_VFORK).
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_into(cgroup: RawFd, stack: &mut [u8], args: &ChildArgs<'_>) -> io::Result<i32> {
    // The kernel starts the child at the instruction after `syscall`,
    // on the new stack, with this thread's registers: so it may touch
    // nothing of this frame. The assembly below calls `child(args)` on
    // it at once (rsp is 16-byte aligned, as the call needs), and
    // exits if that ever returns.
    // The kernel puts the child's rsp at stack + stack_size: 16-byte
    // aligned, as a call needs.
    let base = stack.as_mut_ptr() as u64;
    let size = ((base + stack.len() as u64) & !15) - base;
    let mut clone_args = CloneArgs {
        flags: libc::CLONE_VM as u64 | libc::CLONE_VFORK as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: base,
        stack_size: size,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: u64::try_from(cgroup).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?,
    };
    let ret: i64;
    // SAFETY: see the function's contract and the comment above; the
    // registers the kernel and the child's call may change are declared.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, 60",
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") std::ptr::from_mut(&mut clone_args),
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") std::ptr::from_ref(args),
            in("r13") child as extern "C" fn(*mut c_void) -> c_int,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(
            i32::try_from(-ret).unwrap_or(libc::EIO),
        ));
    }
    i32::try_from(ret).map_err(|_| io::Error::other("clone3 gave no pid"))
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3_into(_: RawFd, _: &mut [u8], _: &ChildArgs<'_>) -> io::Result<i32> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// Wait for the step `pid` to end; its status.
pub(super) fn wait(pid: rustix::process::Pid) -> io::Result<ExitStatus> {
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(ExitStatus::from_raw(status.as_raw())),
            Ok(None) => return Err(io::Error::other("the step was not reaped")),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A path as the child's C string.
pub(super) fn c_path(path: &Path) -> io::Result<CString> {
    c_bytes(path.as_os_str())
}

pub(super) fn c_bytes(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

/// The child, until exec: on its own stack, in the worker's memory.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's `ChildArgs`, alive while it waits.
    let args = unsafe { &*arg.cast::<ChildArgs<'_>>() };
    let errno = match prepare(args) {
        // SAFETY: the pointers are NUL-terminated strings and
        // null-terminated arrays of them, alive in the waiting parent.
        Ok(()) => unsafe {
            libc::execve(args.program, args.argv, args.envp);
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        },
        Err(code) => code,
    };
    let bytes = errno.to_ne_bytes();
    // SAFETY: a write of four bytes from the stack, then _exit, which
    // runs no handler and touches nothing of the parent's.
    unsafe {
        libc::write(args.errors, bytes.as_ptr().cast::<c_void>(), 4);
        libc::_exit(127)
    }
}

/// What `posix_spawn` and std do between fork and exec, then the step's
/// own: its cgroup, its network namespace, its sandbox. An errno on failure.
fn prepare(args: &ChildArgs<'_>) -> Result<(), i32> {
    let last = || {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // SAFETY: raw system calls on integers and on structures on this
    // stack; the signal table is the child's own copy (no CLONE_SIGHAND).
    unsafe {
        // Every handler back to the default (ignored signals stay
        // ignored, as across exec), SIGPIPE to the default as std does;
        // then no signal blocked.
        for signal in 1..65 {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut action) != 0 {
                continue;
            }
            let handler = action.sa_sigaction;
            let ignored = handler == libc::SIG_IGN && signal != libc::SIGPIPE;
            if handler != libc::SIG_DFL && !ignored {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return Err(last());
        }
        for (from, to) in [(args.stdin, 0), (args.stdout, 1), (args.stderr, 2)] {
            // dup2 onto itself leaves close-on-exec set: clear it instead.
            let done = if from == to {
                libc::fcntl(to, libc::F_SETFD, 0)
            } else {
                libc::dup2(from, to)
            };
            if done < 0 {
                return Err(last());
            }
        }
        if libc::chdir(args.cwd) != 0 {
            return Err(last());
        }
        if args.cgroup_procs >= 0
            && libc::write(args.cgroup_procs, b"0".as_ptr().cast::<c_void>(), 1) != 1
        {
            return Err(last() | super::contain::CGROUP_ERROR);
        }
    }
    // The run's network, before the sandbox (which may change the user,
    // and with it the right to join).
    if let Some((user, net)) = args.netns {
        crate::netns::enter(user, net)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO) | super::contain::NETNS_ERROR)?;
    }
    if args.ruleset.is_some() || args.ids.is_some() {
        super::sandbox::enter(args.ruleset, args.ids)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    }
    // Last, as posix_spawn does: until now no signal (a terminal's ^C to
    // the worker's group, a stop from the step's user) could end or stop
    // the child half-way while the worker's thread waits for it.
    // SAFETY: a set on this stack.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
            return Err(last());
        }
    }
    Ok(())
}
