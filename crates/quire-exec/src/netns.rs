//! The network a run's steps get (`step_network` in config.toml,
//! docs/SECURITY.md, "The network"): the host's, or a network namespace of
//! the run's own, with only its own loopback (`none`) or with outbound
//! access through `pasta` and no way to the host's loopback (`isolated`).
//!
//! Per run, the worker clones a **holder**: a child in a new user and
//! network namespace (its user namespace maps only the worker's own user
//! and group, as `pidns` does), which brings its loopback up, says so
//! through a pipe and then waits for its end (killed by the worker when
//! the run ends, or by the kernel when the worker dies: `PR_SET_PDEATHSIG`).
//! For `isolated`, `pasta` then attaches to the holder's namespaces
//! (`pasta PID`) with no port forwarded either way (`-t none -u none -T none
//! -U none`) and the gateway not mapped to the host (`--no-map-gw`): what
//! leaves the namespace goes out through ordinary sockets of the host to
//! the address it was sent to, and 127.0.0.1 inside is the namespace's
//! own. The worker keeps a descriptor of the namespace (and, when it is not
//! root, of its user namespace), and each step's child joins it with
//! `setns` before its exec (`vspawn.rs`): raw system calls on descriptors
//! made here, nothing allocated. The worker itself, and its notifiers,
//! keep the host's network.
//!
//! Why the holder's own user namespace: `setns` into a network namespace
//! needs `CAP_SYS_ADMIN` over the user namespace that owns it and over the
//! caller's own. A worker that is not root has no capability in its own
//! user namespace, but has them all in one it created (its owner): its
//! step's child joins that user namespace first, then the network
//! namespace, and loses those capabilities at exec (its user id there is
//! not 0). Root has them everywhere and joins only the network namespace,
//! staying in the host's user namespace; `pasta`, which refuses to stay
//! root unless told (`--runas 0:0`), then reaches the holder's namespaces,
//! which are root's.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::pipe::{PipeFlags, pipe_with};
use serde::{Deserialize, Serialize};

/// `step_network` in config.toml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepNetwork {
    /// A namespace of the run's own with outbound access through pasta:
    /// the outside network, not the host's loopback.
    #[default]
    Isolated,
    /// The host's network, as the worker has it.
    Host,
    /// A namespace of the run's own with only its loopback.
    None,
}

/// How long pasta may take to set the namespace up.
const PASTA_START: Duration = Duration::from_secs(10);

/// A run's network namespace, held until [`RunNetwork::end`] (or drop).
pub struct RunNetwork {
    holder: i32,
    pasta: Option<Child>,
    /// The namespace; and its user namespace, joined first when quire is
    /// not root.
    net: OwnedFd,
    user: Option<OwnedFd>,
    summary: String,
    /// pasta's standard output, which its pid file was: kept open so that
    /// pasta never writes into a closed pipe.
    _pasta_out: Option<File>,
}

impl std::fmt::Debug for RunNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunNetwork")
            .field("summary", &self.summary)
            .finish()
    }
}

/// What came of `step_network` for a run.
#[derive(Debug)]
pub enum Decided {
    /// Steps join this namespace.
    Namespace(RunNetwork),
    /// Steps keep the host's network: as configured (`reason` None) or
    /// because the namespace could not be made (`reason`, said to people).
    Host { reason: Option<String> },
}

impl Decided {
    /// One line for people (`quire-runs show`'s sandbox line, worker.log).
    pub fn summary(&self) -> String {
        match self {
            Decided::Namespace(net) => net.summary.clone(),
            Decided::Host { reason: None } => {
                "network: the host's (step_network = \"host\" in config.toml)".to_string()
            }
            Decided::Host { reason: Some(why) } => {
                format!("network: the host's, loopback services included (no namespace: {why})")
            }
        }
    }

    /// The line for the top of each job's first step log, when steps get
    /// more network than configured.
    pub fn note(&self) -> Option<String> {
        match self {
            Decided::Host { reason: Some(why) } => Some(format!(
                "quire: sandbox: network not isolated: {why}; this job's steps reach the \
                 host's network, services on its loopback included"
            )),
            _ => None,
        }
    }
}

/// Make the run's network for `mode`. `Err` is a refusal (`required`, and
/// the namespace cannot be made), for the run's failure; else a namespace
/// could not be made falls back to the host's network, saying why.
pub fn decide(mode: StepNetwork, required: bool) -> Result<Decided, String> {
    start(mode, required).ready()
}

/// Begin making the run's network for `mode`: the holder is cloned and
/// `pasta` started, but not waited for, so that it sets the namespace up
/// while the worker checks the run's commit out; [`Starting::ready`]
/// waits for it and decides as [`decide`] does.
pub fn start(mode: StepNetwork, required: bool) -> Starting {
    start_with(mode, required, find_pasta())
}

#[cfg(test)]
fn decide_with(
    mode: StepNetwork,
    required: bool,
    pasta: Option<PathBuf>,
) -> Result<Decided, String> {
    start_with(mode, required, pasta).ready()
}

fn start_with(mode: StepNetwork, required: bool, pasta: Option<PathBuf>) -> Starting {
    let begun = match mode {
        StepNetwork::Host => None,
        StepNetwork::None => Some(RunNetwork::begin(None)),
        StepNetwork::Isolated => Some(match pasta {
            Some(pasta) => RunNetwork::begin(Some(&pasta)),
            None => Err("pasta is not installed (Debian's package passt has it)".to_string()),
        }),
    };
    Starting {
        mode,
        required,
        begun,
    }
}

/// A run's network on its way ([`start`]).
pub struct Starting {
    mode: StepNetwork,
    required: bool,
    /// None for the host's network.
    begun: Option<Result<(RunNetwork, Option<PastaStarting>), String>>,
}

impl Starting {
    /// A namespace kept from an earlier run, ready.
    pub fn kept(network: RunNetwork) -> Starting {
        Starting {
            mode: StepNetwork::Isolated,
            required: false,
            begun: Some(Ok((network, None))),
        }
    }

    /// Wait until the namespace is set up; what came of it.
    pub fn ready(self) -> Result<Decided, String> {
        let Some(begun) = self.begun else {
            return Ok(Decided::Host { reason: None });
        };
        let made = begun.and_then(|(net, pasta)| match pasta {
            Some(pasta) => net.attach(pasta),
            None => Ok(net),
        });
        match made {
            Ok(net) => Ok(Decided::Namespace(net)),
            Err(why) if self.required => Err(format!(
                "sandbox = \"required\" in config.toml, but the steps' network namespace \
                 (step_network = \"{}\") cannot be made: {why}; refusing to run steps on the \
                 host's network (install passt, set step_network = \"host\", or sandbox = \
                 \"best-effort\")",
                match self.mode {
                    StepNetwork::None => "none",
                    _ => "isolated",
                }
            )),
            Err(why) => Ok(Decided::Host { reason: Some(why) }),
        }
    }
}

/// `pasta`: `$QUIRE_PASTA` when set (an operator's build elsewhere; a
/// path that is no executable file is as if none were installed), else on
/// the worker's PATH, or in /usr/bin, /usr/sbin.
fn find_pasta() -> Option<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        })
    };
    if let Some(given) = std::env::var_os("QUIRE_PASTA") {
        let given = PathBuf::from(given);
        return executable(&given).then_some(given);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"])
        .map(|d| Path::new(d).join("pasta"))
        .find(|p| executable(p))
}

/// Why the holder could not start: which step (one byte), errno (four).
const STEPS: [&str; 6] = [
    "cannot ask for SIGKILL when the worker dies",
    "cannot deny setgroups in the new user namespace",
    "cannot map the user id into the new user namespace",
    "cannot map the group id into the new user namespace",
    "cannot bring the namespace's loopback up",
    "cannot tell the worker it is ready",
];

struct HolderParts<'a> {
    uid_map: &'a [u8],
    gid_map: &'a [u8],
    setgroups: &'a CString,
    uid_map_path: &'a CString,
    gid_map_path: &'a CString,
    parent: RawFd,
    report: RawFd,
}

impl RunNetwork {
    /// A new namespace, with pasta attached when given.
    #[cfg(test)]
    fn create(pasta: Option<&Path>) -> Result<RunNetwork, String> {
        let (net, starting) = RunNetwork::begin(pasta)?;
        match starting {
            Some(starting) => net.attach(starting),
            None => Ok(net),
        }
    }

    /// A new namespace, and pasta started on it when given (not waited
    /// for: [`RunNetwork::attach`]).
    fn begin(pasta: Option<&Path>) -> Result<(RunNetwork, Option<PastaStarting>), String> {
        let root = rustix::process::geteuid().is_root();
        let holder = spawn_holder()?;
        let opened = open_ns(holder, "net").and_then(|net| {
            let user = if root {
                None
            } else {
                Some(open_ns(holder, "user")?)
            };
            Ok((net, user))
        });
        let (net_fd, user) = match opened {
            Ok(fds) => fds,
            Err(e) => {
                end_holder(holder);
                return Err(e);
            }
        };
        let mut net = RunNetwork {
            holder,
            pasta: None,
            net: net_fd,
            user,
            summary: String::new(),
            _pasta_out: None,
        };
        let Some(pasta) = pasta else {
            net.summary = "network: none (a namespace of the worker's own for this repository's \
                           runs, with only its loopback)"
                .to_string();
            return Ok((net, None));
        };
        let starting = start_pasta(pasta, holder, root)?;
        Ok((net, Some(starting)))
    }

    /// Wait for pasta to set the namespace up, and keep it.
    fn attach(mut self, mut starting: PastaStarting) -> Result<RunNetwork, String> {
        let (child, out) = starting.ready()?;
        self.pasta = Some(child);
        self._pasta_out = Some(out);
        self.summary = "network: isolated (a namespace of the worker's own for this repository's \
                        runs, outbound through pasta; the host's loopback and its services are \
                        out of reach)"
            .to_string();
        Ok(self)
    }

    /// The descriptors a step's child joins: the user namespace (when
    /// quire is not root), then the network namespace.
    pub(crate) fn child_parts(&self) -> (Option<RawFd>, RawFd) {
        (
            self.user.as_ref().map(AsRawFd::as_raw_fd),
            self.net.as_raw_fd(),
        )
    }

    /// Whether the holder, and pasta when attached, still run: a
    /// namespace kept from one run is given to the next only then.
    pub fn is_alive(&mut self) -> bool {
        let pasta = match &mut self.pasta {
            Some(pasta) => matches!(pasta.try_wait(), Ok(None)),
            None => true,
        };
        pasta && self.holder > 0 && still_running(self.holder)
    }

    /// End pasta and the holder, and reap them.
    pub fn end(mut self) {
        self.stop();
    }

    /// Kill pasta and the holder now, and leave their reaping to the
    /// [`Ending`]: pasta's exit waits for the kernel to release its
    /// device and its watches (RCU barriers, tens of milliseconds), which
    /// the caller need not wait for until it must.
    pub fn kill(mut self) -> Ending {
        let mut pasta = self.pasta.take();
        if let Some(pasta) = &mut pasta {
            let _ = pasta.kill();
        }
        let holder = std::mem::replace(&mut self.holder, 0);
        if holder > 0 {
            // SAFETY: kill on our own child, by its pid (not reaped yet, so
            // the number is still its own).
            unsafe {
                libc::kill(holder, libc::SIGKILL);
            }
        }
        Ending { pasta, holder }
    }

    fn stop(&mut self) {
        if let Some(mut pasta) = self.pasta.take() {
            let _ = pasta.kill();
            let _ = pasta.wait();
            crate::processes::unspare(pasta.id());
        }
        if self.holder > 0 {
            end_holder(self.holder);
            self.holder = 0;
        }
    }
}

/// A run's network killed ([`RunNetwork::kill`]), not yet reaped: reaped
/// by [`Ending::reaped`] once it is gone, or by its drop, which waits.
/// pasta and the holder stay spared from the sweeps of this process's
/// descendants until then (they are dying already).
#[must_use = "dropping it waits for pasta's exit"]
pub struct Ending {
    pasta: Option<Child>,
    holder: i32,
}

impl Ending {
    /// Reap whatever of it has exited, without waiting: true once both
    /// are reaped.
    pub fn reaped(&mut self) -> bool {
        if let Some(pasta) = &mut self.pasta
            && !matches!(pasta.try_wait(), Ok(None))
        {
            crate::processes::unspare(pasta.id());
            self.pasta = None;
        }
        if self.holder > 0 {
            // SAFETY: waitpid on our own child, without blocking.
            let r = unsafe { libc::waitpid(self.holder, std::ptr::null_mut(), libc::WNOHANG) };
            if r != 0 {
                crate::processes::unspare(self.holder.unsigned_abs());
                self.holder = 0;
            }
        }
        self.pasta.is_none() && self.holder == 0
    }
}

impl Ending {
    /// Leave the killed pasta and holder to finish exiting without this
    /// process, for a process about to exit itself (`trigger --wait`),
    /// whose children then go to init (or the
    /// nearest subreaper). Returns once neither is in
    /// the namespace or holds it: both were sent SIGKILL, so no code of
    /// theirs runs again, and a killed process leaves its namespaces (and
    /// closes its descriptors) before the kernel's slow release of pasta's
    /// device, which is all that is left to wait for. One that has not
    /// left within two seconds is waited for as [`Drop`] would.
    pub fn release(mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let pids = [
            self.pasta.as_ref().map(|p| p.id() as i32),
            Some(self.holder),
        ];
        for pid in pids.into_iter().flatten().filter(|&p| p > 0) {
            while !left_its_namespace(pid) {
                if std::time::Instant::now() > deadline {
                    return; // dropped: waits for both
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
        if let Some(pasta) = self.pasta.take() {
            crate::processes::unspare(pasta.id());
        }
        if self.holder > 0 {
            crate::processes::unspare(self.holder.unsigned_abs());
            self.holder = 0;
        }
    }
}

/// Whether our killed child `pid` (not reaped, so the number is still its
/// own) has left its network namespace: the kernel then has no namespace
/// to show for it, which it drops only after closing its descriptors.
fn left_its_namespace(pid: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).is_err()
}

impl Drop for Ending {
    fn drop(&mut self) {
        if let Some(mut pasta) = self.pasta.take() {
            let _ = pasta.wait();
            crate::processes::unspare(pasta.id());
        }
        if self.holder > 0 {
            let _ = crate::pidns::reap(self.holder);
            crate::processes::unspare(self.holder.unsigned_abs());
            self.holder = 0;
        }
    }
}

/// Whether our child `pid` has not exited (it is not reaped here).
fn still_running(pid: i32) -> bool {
    // SAFETY: siginfo_t is plain data, zeroed as waitid expects; waitid
    // with WNOWAIT only looks at our own child's state.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let looked = libc::waitid(
            libc::P_PID,
            pid.unsigned_abs(),
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        looked == 0 && info.si_pid() == 0
    }
}

/// Kill the holder `pid`, reap it, and stop sparing its number.
fn end_holder(pid: i32) {
    // SAFETY: kill on our own child, by its pid (not reaped yet, so the
    // number is still its own).
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let _ = crate::pidns::reap(pid);
    crate::processes::unspare(pid.unsigned_abs());
}

impl Drop for RunNetwork {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `/proc/<pid>/ns/<kind>`, opened.
fn open_ns(pid: i32, kind: &str) -> Result<OwnedFd, String> {
    let path = format!("/proc/{pid}/ns/{kind}");
    File::open(&path)
        .map(OwnedFd::from)
        .map_err(|e| format!("cannot open {path}: {e}"))
}

/// Clone the holder: in a new user and network namespace, its loopback up,
/// waiting to be killed. Its pid once it is ready.
fn spawn_holder() -> Result<i32, String> {
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let c = |s: &[u8]| CString::new(s).map_err(|_| "a NUL byte in a path".to_string());
    let uid_map = format!("{euid} {euid} 1\n");
    let gid_map = format!("{egid} {egid} 1\n");
    let setgroups = c(b"/proc/self/setgroups")?;
    let uid_map_path = c(b"/proc/self/uid_map")?;
    let gid_map_path = c(b"/proc/self/gid_map")?;
    let me = rustix::process::getpid();
    let parent = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty())
        .map_err(|e| format!("cannot open a pidfd of the worker: {e}"))?;
    let (report_r, report_w) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("cannot make a pipe: {e}"))?;
    let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::SIGCHLD;
    // Signals blocked around the clone: no handler of the worker's runs in
    // the child, which unblocks nothing (it only waits to be killed).
    // SAFETY: sigset_t is plain data; the calls write only the sets given.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above: both sets are this stack's, initialised.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // A fork-like clone: no new stack, no shared memory.
    // SAFETY: the child runs only async-signal-safe calls on memory made
    // before the clone, and never returns.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    if pid == 0 {
        // SAFETY: as above; every pointer was made before the clone.
        unsafe {
            holder(&HolderParts {
                uid_map: uid_map.as_bytes(),
                gid_map: gid_map.as_bytes(),
                setgroups: &setgroups,
                uid_map_path: &uid_map_path,
                gid_map_path: &gid_map_path,
                parent: parent.as_raw_fd(),
                report: report_w.as_raw_fd(),
            })
        }
    }
    let cloned = io::Error::last_os_error();
    // SAFETY: as above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    if pid < 0 {
        return Err(format!("the kernel refuses a network namespace: {cloned}"));
    }
    let pid = i32::try_from(pid).map_err(|_| "clone returned no pid".to_string())?;
    crate::processes::spare(pid.unsigned_abs());
    drop(report_w);
    drop(parent);
    // One byte 255 when ready; else the step that failed and errno.
    let mut report = [0u8; 5];
    let got = read_full(&report_r, &mut report);
    if got >= 1 && report[0] == 255 {
        return Ok(pid);
    }
    end_holder(pid);
    if got == 0 {
        return Err("the namespace's holder died before it was ready".to_string());
    }
    let step = STEPS
        .get(usize::from(report[0]))
        .copied()
        .unwrap_or("the namespace's holder failed");
    let errno = if got == 5 {
        i32::from_ne_bytes([report[1], report[2], report[3], report[4]])
    } else {
        0
    };
    Err(format!("{step}: {}", io::Error::from_raw_os_error(errno)))
}

/// The holder, from the clone on. Never returns.
unsafe fn holder(p: &HolderParts<'_>) -> ! {
    // SAFETY: the caller is the child of a fork-like clone (one thread,
    // its own copy of memory); only async-signal-safe calls follow, on
    // memory made before the clone, and the child exits or waits to be
    // killed, never returning into the worker's code.
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
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            fail(0);
        }
        // The worker died before the line above: nobody will kill us.
        let mut pfd = libc::pollfd {
            fd: p.parent,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&raw mut pfd, 1, 0) != 0 {
            libc::_exit(1);
        }
        // Nothing of the worker's kept open (its slot's lock, the store):
        // only the report pipe.
        let report = p.report as libc::c_uint;
        if report > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, report - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, report + 1, u32::MAX, 0u32);
        if !write_file(p.setgroups, b"deny") {
            fail(1);
        }
        if !write_file(p.uid_map_path, p.uid_map) {
            fail(2);
        }
        if !write_file(p.gid_map_path, p.gid_map) {
            fail(3);
        }
        // The loopback up: `lo` is down in a new namespace, and builds
        // that serve and test on 127.0.0.1 need it.
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            fail(4);
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &raw mut req) != 0 {
            fail(4);
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock, libc::SIOCSIFFLAGS, &raw mut req) != 0 {
            fail(4);
        }
        libc::close(sock);
        let ready = [255u8];
        if libc::write(p.report, ready.as_ptr().cast(), 1) != 1 {
            fail(5);
        }
        libc::close(p.report);
        loop {
            libc::pause();
        }
    }
}

/// pasta, attached to the holder's namespaces, configured, its pid file
/// written (to its standard output, a pipe: that is how the worker learns
/// it is ready). Its stderr is drained by a thread and said when it fails.
fn start_pasta(pasta: &Path, holder: i32, root: bool) -> Result<PastaStarting, String> {
    let mut command = Command::new(pasta);
    command.args([
        "--config-net",
        "--foreground",
        "--quiet",
        "--no-map-gw",
        "-t",
        "none",
        "-u",
        "none",
        "-T",
        "none",
        "-U",
        "none",
        "--pid",
        "/proc/self/fd/1",
    ]);
    if root {
        // pasta would become nobody, who may not enter root's namespaces.
        command.args(["--runas", "0:0"]);
    }
    command
        .arg(holder.to_string())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe: pasta dies with the worker even
    // outside a pid namespace.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", pasta.display()))?;
    let stdout = File::from(OwnedFd::from(
        child.stdout.take().ok_or("pasta has no stdout")?,
    ));
    let said = Arc::new(Mutex::new(String::new()));
    if let Some(mut stderr) = child.stderr.take() {
        let said = Arc::clone(&said);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut text = said.lock().unwrap_or_else(|e| e.into_inner());
                if text.len() < 4096 {
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
    }
    crate::processes::spare(child.id());
    Ok(PastaStarting {
        child: Some(child),
        stdout,
        said,
    })
}

/// pasta started ([`start_pasta`]), not yet known to be ready; killed
/// and reaped if dropped before.
struct PastaStarting {
    child: Option<Child>,
    stdout: File,
    said: Arc<Mutex<String>>,
}

impl PastaStarting {
    /// Wait (up to [`PASTA_START`]) for its pid file's line: the namespace
    /// is set up. Else why not, with its last words.
    fn ready(&mut self) -> Result<(Child, File), String> {
        let waited = wait_line(&self.stdout, PASTA_START);
        let waited = waited.and_then(|ready| match ready {
            // The descriptor first: on failure pasta is still ours to end.
            true => self.stdout.try_clone().map(Some).map_err(|e| e.to_string()),
            false => Ok(None),
        });
        if let Ok(Some(out)) = waited {
            let child = self.child.take().ok_or("pasta was already taken")?;
            return Ok((child, out));
        }
        let what = match waited {
            Ok(_) => "pasta exited without setting the namespace up".to_string(),
            Err(e) => e,
        };
        self.stop();
        // Its last words, without the noise of a missing syslog.
        let text = self.said.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let words: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains("syslog"))
            .collect();
        if words.is_empty() {
            Err(what)
        } else {
            Err(format!("{what}: {}", words.join("; ")))
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            crate::processes::unspare(child.id());
        }
    }
}

impl Drop for PastaStarting {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Wait up to `limit` for a line on `out`: true once one came, false at
/// its end.
fn wait_line(out: &File, limit: Duration) -> Result<bool, String> {
    let deadline = std::time::Instant::now() + limit;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(format!(
                "pasta did not set the namespace up within {}s",
                limit.as_secs()
            ));
        }
        let fd = out.as_fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec::try_from(left).ok();
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("cannot wait for pasta: {e}")),
        }
        let mut buf = [0u8; 64];
        match rustix::io::read(out, &mut buf) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.contains(&b'\n') {
                    return Ok(true);
                }
            }
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
            Err(e) => return Err(format!("cannot read from pasta: {e}")),
        }
    }
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                // Ready is one byte.
                if buf[0] == 255 {
                    break;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    got
}

/// The child's half (`vspawn.rs`, before the sandbox): join the user
/// namespace, if any, then the network namespace.
pub(crate) fn enter(user: Option<RawFd>, net: RawFd) -> io::Result<()> {
    if let Some(user) = user {
        // SAFETY: integer arguments only.
        if unsafe { libc::setns(user, libc::CLONE_NEWUSER) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::setns(net, libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_chosen_and_a_missing_pasta_falls_back_or_refuses() {
        let host = decide_with(StepNetwork::Host, true, None).unwrap();
        assert!(matches!(host, Decided::Host { reason: None }));
        assert!(host.note().is_none());
        let fallback = decide_with(StepNetwork::Isolated, false, None).unwrap();
        let note = fallback.note().unwrap();
        assert!(
            note.starts_with("quire: sandbox: network not isolated: pasta is not installed"),
            "{note}"
        );
        assert!(
            fallback
                .summary()
                .contains("no namespace: pasta is not installed")
        );
        let refusal = decide_with(StepNetwork::Isolated, true, None).unwrap_err();
        assert!(
            refusal.starts_with("sandbox = \"required\" in config.toml, but the steps' network"),
            "{refusal}"
        );
        assert!(refusal.contains("install passt"), "{refusal}");
    }

    #[test]
    fn a_namespace_is_alive_until_its_holder_dies() {
        let mut net = RunNetwork::create(None).expect("a namespace with only its loopback");
        assert!(net.is_alive());
        // SAFETY: kill on our own child, not reaped yet.
        unsafe {
            libc::kill(net.holder, libc::SIGKILL);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while net.is_alive() {
            assert!(
                std::time::Instant::now() < deadline,
                "the holder never died"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Reaped once, by its end.
        net.end();
    }
}
