//! A worker in a pid namespace of its own, with a `/proc` of that
//! namespace: its steps see only the processes of the run the worker
//! executes, never another run's steps (whose `/proc/PID/environ` holds the
//! secrets their jobs asked for, and which Landlock lets a process of the
//! same user read). See docs/SECURITY.md.
//!
//! The process that was started as the worker clones a child into a new pid
//! and mount namespace (and a user namespace mapping only its own ids when
//! it is not root: that is what lets an unprivileged user make the other
//! two). The child, pid 1 there, makes its mounts private, mounts a `/proc`
//! of the new namespace over the old one, asks to be killed when its parent
//! dies, and execs the worker again; the parent stays outside as the
//! worker's stand-in: its pid is the one the store and `reconcile` see, it
//! passes SIGINT and SIGTERM on, and it exits with the worker's status.
//! Whatever stops the child before its exec is reported through a pipe and
//! the parent goes on as an ordinary worker: nothing about the parent's
//! own namespaces has changed.
//!
//! Between the clone and the exec the child calls only plain system calls
//! on memory prepared before the clone, as after a vfork.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::pipe::{PipeFlags, pipe_with};

/// The worker, started in a namespace of its own: the stand-in's side.
#[derive(Debug)]
pub struct Isolated {
    pid: i32,
}

/// The pid of the isolated worker, for the signal handlers that pass
/// SIGINT and SIGTERM on.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Why the child could not start, sent before it exits: which step (one
/// byte) and errno (four bytes).
const STEPS: [&str; 7] = [
    "cannot deny setgroups in the new user namespace",
    "cannot map the user id into the new user namespace",
    "cannot map the group id into the new user namespace",
    "cannot make the mounts private",
    "cannot mount /proc of the new pid namespace",
    "cannot ask for SIGKILL when the worker's stand-in dies",
    "cannot exec the worker",
];

/// Start `exe` with `args` as pid 1 of a new pid namespace with its own
/// `/proc`, with this process's environment and `var` set. The error says
/// why not; this process is then unchanged.
pub fn spawn(exe: &Path, args: &[OsString], var: (&str, &str)) -> Result<Isolated, String> {
    let me = rustix::process::getpid();
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let own_user = euid != 0;

    let c = |s: &[u8]| CString::new(s).map_err(|_| "a NUL byte in an argument".to_string());
    let path = c(exe.as_os_str().as_bytes())?;
    let mut argv_owned = vec![path.clone()];
    for arg in args {
        argv_owned.push(c(arg.as_bytes())?);
    }
    let mut argv: Vec<*const libc::c_char> = argv_owned.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let env_owned: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k.as_bytes() != var.0.as_bytes())
        .chain(std::iter::once((var.0.into(), var.1.into())))
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut envp: Vec<*const libc::c_char> = env_owned.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());

    let uid_map = format!("{euid} {euid} 1\n");
    let gid_map = format!("{egid} {egid} 1\n");
    let setgroups = c(b"/proc/self/setgroups")?;
    let uid_map_path = c(b"/proc/self/uid_map")?;
    let gid_map_path = c(b"/proc/self/gid_map")?;
    let root = c(b"/")?;
    let proc_ = c(b"/proc")?;
    let proc_type = c(b"proc")?;

    // Pinned before the clone, so the child can tell whether its parent
    // died before it asked for SIGKILL on that.
    let parent = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty())
        .map_err(|e| format!("cannot open a pidfd of this process: {e}"))?;
    let (report_r, report_w) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("cannot make a pipe: {e}"))?;

    let mut flags = libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::SIGCHLD;
    if own_user {
        flags |= libc::CLONE_NEWUSER;
    }
    // A fork-like clone: no new stack, no shared memory.
    // SAFETY: the child runs only async-signal-safe calls on memory made
    // before the clone, then execs or exits.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    if pid == 0 {
        // SAFETY: as above; every pointer was made before the clone.
        unsafe {
            child(&ChildParts {
                own_user,
                uid_map: uid_map.as_bytes(),
                gid_map: gid_map.as_bytes(),
                setgroups: &setgroups,
                uid_map_path: &uid_map_path,
                gid_map_path: &gid_map_path,
                root: &root,
                proc_: &proc_,
                proc_type: &proc_type,
                parent: parent.as_raw_fd(),
                report: report_w.as_raw_fd(),
                path: &path,
                argv: argv.as_ptr(),
                envp: envp.as_ptr(),
            })
        }
    }
    if pid < 0 {
        return Err(format!(
            "cannot make a pid namespace: {}",
            io::Error::last_os_error()
        ));
    }
    let pid = i32::try_from(pid).map_err(|_| "clone returned no pid".to_string())?;
    drop(report_w);
    drop(parent);
    let mut report = [0u8; 5];
    let got = read_full(&report_r, &mut report);
    if got == 0 {
        CHILD.store(pid, Ordering::SeqCst);
        return Ok(Isolated { pid });
    }
    // It failed before its exec: reap it and say why.
    let _ = reap(pid);
    let step = STEPS
        .get(usize::from(report[0]))
        .copied()
        .unwrap_or("the child failed");
    let errno = if got == 5 {
        i32::from_ne_bytes([report[1], report[2], report[3], report[4]])
    } else {
        0
    };
    Err(format!("{step}: {}", io::Error::from_raw_os_error(errno)))
}

struct ChildParts<'a> {
    own_user: bool,
    uid_map: &'a [u8],
    gid_map: &'a [u8],
    setgroups: &'a CString,
    uid_map_path: &'a CString,
    gid_map_path: &'a CString,
    root: &'a CString,
    proc_: &'a CString,
    proc_type: &'a CString,
    parent: i32,
    report: i32,
    path: &'a CString,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
}

/// The child's half, from the clone to the exec. Never returns.
unsafe fn child(p: &ChildParts<'_>) -> ! {
    // SAFETY: the caller is the child of a fork-like clone (one thread,
    // its own copy of memory); only async-signal-safe calls follow, on
    // memory made before the clone, and it execs or exits, never
    // returning into the worker's code.
    unsafe {
        let fail = |step: u8| -> ! {
            let errno = *libc::__errno_location();
            let mut msg = [step, 0, 0, 0, 0];
            msg[1..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(p.report, msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        };
        let write_file = |path: &CString, data: &[u8]| -> bool {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return false;
            }
            let n = libc::write(fd, data.as_ptr().cast(), data.len());
            libc::close(fd);
            usize::try_from(n).is_ok_and(|n| n == data.len())
        };
        if p.own_user {
            if !write_file(p.setgroups, b"deny") {
                fail(0);
            }
            if !write_file(p.uid_map_path, p.uid_map) {
                fail(1);
            }
            if !write_file(p.gid_map_path, p.gid_map) {
                fail(2);
            }
            // Keep CAP_SYS_ADMIN (over this namespace only) across the
            // exec, as quire's uid is no root here: the worker mounts each
            // run's directories at stable paths with it. The worker drops
            // it from what any child of its inherits first thing
            // ([`keep_capabilities_to_self`]). Without it the worker still
            // runs, its runs at paths of their own.
            let mut header = CapHeader {
                version: CAP_VERSION_3,
                pid: 0,
            };
            let mut data = [CapData::default(); 2];
            if libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) == 0 {
                data[0].inheritable |= 1 << CAP_SYS_ADMIN;
                if libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) == 0 {
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE,
                        CAP_SYS_ADMIN,
                        0,
                        0,
                    );
                }
            }
        }
        // Private first: the new /proc must not show up in the machine's
        // mount namespace.
        if libc::mount(
            std::ptr::null(),
            p.root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            fail(3);
        }
        if libc::mount(
            p.proc_type.as_ptr(),
            p.proc_.as_ptr(),
            p.proc_type.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) != 0
        {
            fail(4);
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            fail(5);
        }
        // The parent died before the line above: it will never be told.
        let mut pfd = libc::pollfd {
            fd: p.parent,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&raw mut pfd, 1, 0) != 0 {
            libc::_exit(1);
        }
        libc::execve(p.path.as_ptr(), p.argv, p.envp);
        fail(6);
    }
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    got
}

/// Wait for `pid`, through interruptions. Its wait status.
pub(crate) fn reap(pid: i32) -> io::Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

impl Isolated {
    /// The worker's pid, as seen from here.
    pub fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// Pass SIGINT and SIGTERM on to the worker, wait for it to end, and
    /// give its exit code (128 + the signal that killed it).
    pub fn wait(self) -> io::Result<u8> {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: the handler only loads an atomic and calls kill(2).
            unsafe {
                signal_forwarder(signal)?;
            }
        }
        let status = reap(self.pid)?;
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        Ok(u8::try_from(code).unwrap_or(1))
    }
}

extern "C" fn forward(signal: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

unsafe fn signal_forwarder(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: sigaction is plain data, zeroed then filled; `forward` is an
    // extern "C" handler that only loads an atomic and calls kill(2), both
    // async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = forward as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&raw mut action.sa_mask);
        if libc::sigaction(signal, &raw const action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `capget`/`capset`'s header (`_LINUX_CAPABILITY_VERSION_3`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// One half of `capget`/`capset`'s data: capabilities 0-31, then 32-63.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;
const CAP_SYS_ADMIN: u32 = 21;

/// In a worker started by [`spawn`] inside a user namespace of its own:
/// keep the capabilities it came with (CAP_SYS_ADMIN over its own
/// namespaces, for [`bind`]) to itself. Its ambient and inheritable sets
/// are emptied, so nothing it starts (steps, git, pasta, notifiers) gets
/// any: a program it execs as quire's uid starts with none. Nothing to do
/// elsewhere (quire as root keeps its own rights; steps drop them in
/// their sandbox).
pub fn keep_capabilities_to_self() -> io::Result<()> {
    // SAFETY: prctl and capget/capset with pointers to live locals.
    unsafe {
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut header = CapHeader {
            version: CAP_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        if libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        if data.iter().all(|d| d.inheritable == 0) {
            return Ok(());
        }
        for half in &mut data {
            half.inheritable = 0;
        }
        if libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Show `source` at `target` too, in this process's mount namespace only
/// (a worker in a namespace of its own: its mounts are private, so no other
/// worker and nothing on the machine sees this). `target` must be an
/// existing directory; what was there is covered until [`unbind`].
pub fn bind(source: &Path, target: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a path"))
    };
    let (source, target) = (c(source)?, c(target)?);
    // SAFETY: plain mount(2) on NUL-terminated strings that outlive it.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Undo [`bind`] at `target`, lazily: a process still inside lets go of it
/// when it ends.
pub fn unbind(target: &Path) -> io::Result<()> {
    let target = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a path"))?;
    // SAFETY: plain umount2(2) on a NUL-terminated string.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_is_pid_1_sees_only_its_namespace_and_gets_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "{{ echo $$; ls /proc | grep -c '^[0-9]'; echo \"$QUIRE_PIDNS_TEST\"; }} > {}",
            out.display()
        );
        let isolated = spawn(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            ("QUIRE_PIDNS_TEST", "handed over"),
        )
        .unwrap();
        assert!(isolated.pid() > 1);
        assert_eq!(isolated.wait().unwrap(), 0);
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "1", "{text}");
        // The shell, ls and grep: this test's own process is not there.
        let seen: u32 = lines[1].parse().unwrap();
        assert!((1..=3).contains(&seen), "{text}");
        assert_eq!(lines[2], "handed over");
    }

    #[test]
    fn a_program_that_cannot_be_started_is_an_error_that_changes_nothing() {
        let before = std::fs::read_link("/proc/self/ns/pid").unwrap();
        let err = spawn(Path::new("/nonexistent/quire-run"), &[], ("A", "b")).unwrap_err();
        assert!(err.starts_with("cannot exec the worker: "), "{err}");
        assert_eq!(std::fs::read_link("/proc/self/ns/pid").unwrap(), before);
        let children = std::fs::read_link("/proc/self/ns/pid_for_children").unwrap();
        assert_eq!(children, before);
    }
}
