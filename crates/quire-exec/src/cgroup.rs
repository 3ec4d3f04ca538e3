//! cgroup v2 as quire uses it: where this process's cgroup is (a `cgroup2`
//! mount in /proc/self/mountinfo, and our path on it from /proc/self/cgroup),
//! whether quire may make cgroups there, and making, limiting, killing and
//! removing them.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// A mounted cgroup2 file system: where it is mounted, and which cgroup of
/// the hierarchy its root directory is (`/` unless it is a bind mount of a
/// sub-tree, or seen from a cgroup namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub point: PathBuf,
    pub root: String,
}

/// Every cgroup2 mount in the text of /proc/self/mountinfo, in order.
pub fn cgroup2_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
            let (mount, fs) = line.split_once(" - ")?;
            if fs.split(' ').next()? != "cgroup2" {
                return None;
            }
            let fields: Vec<&str> = mount.split(' ').collect();
            let root = unescape(fields.get(3)?);
            let point = unescape(fields.get(4)?);
            Some(Mount {
                point: PathBuf::from(OsStr::from_bytes(&point)),
                root: String::from_utf8(root).ok()?,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` (octal).
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// This process's cgroup in the v2 hierarchy: the `0::PATH` line of
/// /proc/self/cgroup (the v1 hierarchies have lines of their own).
pub fn own_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .filter(|path| path.starts_with('/') && !path.ends_with(" (deleted)"))
}

/// The directory of cgroup `path` on the first of `mounts` that shows it.
pub fn locate(mounts: &[Mount], path: &str) -> Option<PathBuf> {
    mounts.iter().find_map(|mount| {
        let below = if mount.root == "/" {
            path
        } else {
            path.strip_prefix(mount.root.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))?
        };
        let below = below.trim_start_matches('/');
        Some(if below.is_empty() {
            mount.point.clone()
        } else {
            mount.point.join(below)
        })
    })
}

/// The directory of this process's own cgroup v2, from the texts of
/// /proc/self/mountinfo and /proc/self/cgroup; or why there is none.
pub fn own_dir(mountinfo: &str, proc_cgroup: &str) -> Result<PathBuf, String> {
    let mounts = cgroup2_mounts(mountinfo);
    if mounts.is_empty() {
        return Err("no cgroup2 file system is mounted".into());
    }
    let Some(path) = own_path(proc_cgroup) else {
        return Err("/proc/self/cgroup names no cgroup v2 (no `0::` line)".into());
    };
    locate(&mounts, path).ok_or_else(|| {
        let points: Vec<String> = mounts
            .iter()
            .map(|m| format!("{} (root {})", m.point.display(), m.root))
            .collect();
        format!(
            "this process's cgroup {path} is on none of the cgroup2 mounts: {}",
            points.join(", ")
        )
    })
}

/// The directory of this process's cgroup v2, if quire may make cgroups
/// in it and end them with `cgroup.kill`; otherwise why not.
pub fn usable_own_dir() -> Result<PathBuf, String> {
    let read =
        |path: &str| fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    let dir = own_dir(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?)?;
    probe(&dir)?;
    Ok(dir)
}

/// Whether quire can use `dir` as the parent of its cgroups: a child can be
/// made in it (a delegated, writable sub-tree), the kernel has `cgroup.kill`
/// (Linux 5.14), and `dir`'s `cgroup.procs` may be written (moving a process
/// from `dir` into a child needs that).
fn probe(dir: &Path) -> Result<(), String> {
    let child = dir.join(format!("quire-probe-{}", quire_model::process::host_pid()));
    match fs::create_dir(&child) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot make a cgroup in {}: {e}", dir.display())),
    }
    let kill = child.join("cgroup.kill").exists();
    let _ = fs::remove_dir(&child);
    if !kill {
        return Err(format!(
            "cgroups in {} have no cgroup.kill (Linux 5.14 or later has it)",
            dir.display()
        ));
    }
    let procs = dir.join("cgroup.procs");
    rustix::fs::access(&procs, rustix::fs::Access::WRITE_OK)
        .map_err(|e| format!("{} is not writable: {e}", procs.display()))
}

/// One cgroup: a directory of the cgroup2 file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    /// The cgroup at `dir`, which may or may not exist.
    pub fn at(dir: impl Into<PathBuf>) -> Cgroup {
        Cgroup { dir: dir.into() }
    }

    /// Make the cgroup at `dir` (one that exists already is taken as it is).
    pub fn create(dir: impl Into<PathBuf>) -> io::Result<Cgroup> {
        let cgroup = Cgroup::at(dir);
        match fs::create_dir(&cgroup.dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(cgroup),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write `value` to the interface file `name` (never creating a file).
    pub fn write(&self, name: &str, value: &str) -> io::Result<()> {
        OpenOptions::new()
            .write(true)
            .open(self.dir.join(name))?
            .write_all(value.as_bytes())
    }

    /// The controllers this cgroup may hand to its children.
    pub fn controllers(&self) -> Vec<String> {
        self.words("cgroup.controllers")
    }

    /// The controllers this cgroup hands to its children.
    pub fn subtree_control(&self) -> Vec<String> {
        self.words("cgroup.subtree_control")
    }

    fn words(&self, name: &str) -> Vec<String> {
        fs::read_to_string(self.dir.join(name))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Hand `controller` to this cgroup's children, unless it already does.
    pub fn enable(&self, controller: &str) -> io::Result<()> {
        if self.subtree_control().iter().any(|c| c == controller) {
            return Ok(());
        }
        self.write("cgroup.subtree_control", &format!("+{controller}"))
    }

    /// `cgroup.procs`, open for writing: writing `0` to it moves the writer
    /// into this cgroup. Close-on-exec, like every file std opens.
    pub fn procs(&self) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))
    }

    /// The processes in this cgroup and every cgroup below it.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .collect();
        for child in self.children() {
            pids.extend(child.pids());
        }
        pids
    }

    fn children(&self) -> Vec<Cgroup> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| Cgroup::at(e.path()))
            .collect()
    }

    /// SIGKILL every process in this cgroup and below, at once: a process
    /// cannot fork its way out of `cgroup.kill` (Linux 5.14; quire uses
    /// cgroups only where it is there, and the root cgroup, which has none,
    /// is never one of quire's). A cgroup that is gone has nothing to kill.
    pub fn kill(&self) -> io::Result<()> {
        match self.write("cgroup.kill", "1") {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.dir.exists() => Ok(()),
            result => result,
        }
    }

    /// Wait up to `timeout` until no process is left in this cgroup or
    /// below (`populated 0` in `cgroup.events`; a zombie is not counted);
    /// true once it is empty, or gone.
    pub fn wait_empty(&self, timeout: Duration) -> bool {
        self.wait_events(timeout, |text| {
            text.is_none_or(|text| !text.lines().any(|line| line == "populated 1"))
        })
    }

    /// Freeze (`cgroup.freeze`) every process in this cgroup and below,
    /// also those that enter it later, and wait up to `timeout` until all
    /// are (`frozen 1`); whether they are. A frozen process still dies of
    /// `SIGKILL` and `cgroup.kill`.
    pub fn freeze(&self, timeout: Duration) -> io::Result<bool> {
        self.write("cgroup.freeze", "1")?;
        Ok(self.wait_events(timeout, |text| {
            text.is_some_and(|text| text.lines().any(|line| line == "frozen 1"))
        }))
    }

    /// Let what [`Cgroup::freeze`] froze run again.
    pub fn thaw(&self) -> io::Result<()> {
        self.write("cgroup.freeze", "0")
    }

    /// Wait up to `timeout` until `done` holds for the text of
    /// `cgroup.events` (`None` once it cannot be read: the cgroup is
    /// gone); whether it did. Woken by the file's change notification,
    /// and looking again every 100 ms in case one is missed.
    fn wait_events(&self, timeout: Duration, done: impl Fn(Option<&str>) -> bool) -> bool {
        let Ok(mut events) = File::open(self.dir.join("cgroup.events")) else {
            return done(None);
        };
        let deadline = Instant::now() + timeout;
        loop {
            let mut text = String::new();
            if events.seek(SeekFrom::Start(0)).is_err() || events.read_to_string(&mut text).is_err()
            {
                return done(None);
            }
            if done(Some(&text)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let wait = left.min(Duration::from_millis(100));
            let wait = Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(wait.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&events, PollFlags::PRI)];
            let _ = poll(&mut fds, Some(&wait));
        }
    }

    /// Remove this cgroup and every cgroup below it, deepest first. One
    /// that is gone already is fine; one that still holds a process is not
    /// (`EBUSY`).
    pub fn remove(&self) -> io::Result<()> {
        for child in self.children() {
            child.remove()?;
        }
        match fs::remove_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            result => result,
        }
    }

    /// Kill everything in this cgroup and below, wait up to `timeout` for
    /// it to be empty, and remove it; the pids it held. An error is a
    /// cgroup that could not be killed or removed.
    pub fn end(&self, timeout: Duration) -> io::Result<Vec<u32>> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let pids = self.pids();
        self.kill()?;
        if !self.wait_empty(timeout) {
            return Err(io::Error::other(format!(
                "{} still holds processes {:?} {} ms after cgroup.kill",
                self.dir.display(),
                self.pids(),
                timeout.as_millis()
            )));
        }
        self.remove()?;
        Ok(pids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's kind: a hybrid layout, v1 controllers under
    /// /sys/fs/cgroup and the v2 hierarchy at /sys/fs/cgroup/unified.
    const HYBRID: &str = "\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd machine: only cgroup v2, at /sys/fs/cgroup.
    const UNIFIED: &str = "\
22 1 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
26 23 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    /// No cgroup2 at all: only v1 hierarchies.
    const V1_ONLY: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
";

    /// A container that sees a bind mount of its own sub-tree, at a path
    /// with a space in it.
    const BIND: &str = "\
700 650 0:30 /ci.slice/runner\\040one.service /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw
";

    #[test]
    fn the_v2_directory_is_found_on_every_layout() {
        assert_eq!(
            own_dir(HYBRID, "8:pids:/\n4:memory:/x\n0::/\n").unwrap(),
            Path::new("/sys/fs/cgroup/unified")
        );
        assert_eq!(
            own_dir(UNIFIED, "0::/system.slice/git-daemon.service\n").unwrap(),
            Path::new("/sys/fs/cgroup/system.slice/git-daemon.service")
        );
        assert_eq!(
            own_dir(BIND, "0::/ci.slice/runner one.service/worker\n").unwrap(),
            Path::new("/sys/fs/cgroup/worker")
        );
        assert_eq!(
            own_dir(BIND, "0::/ci.slice/runner one.service\n")
                .unwrap()
                .as_os_str(),
            "/sys/fs/cgroup",
            "the mount's root itself, without a trailing slash"
        );
    }

    #[test]
    fn without_a_usable_v2_hierarchy_detection_says_why() {
        let no_mount = own_dir(V1_ONLY, "4:memory:/\n0::/\n").unwrap_err();
        assert_eq!(no_mount, "no cgroup2 file system is mounted");
        let no_line = own_dir(UNIFIED, "4:memory:/\n").unwrap_err();
        assert!(no_line.contains("no `0::` line"), "{no_line}");
        let deleted = own_dir(UNIFIED, "0::/gone (deleted)\n").unwrap_err();
        assert!(deleted.contains("no `0::` line"), "{deleted}");
        let elsewhere = own_dir(BIND, "0::/user.slice/session-1.scope\n").unwrap_err();
        assert!(
            elsewhere.contains("/user.slice/session-1.scope is on none of the cgroup2 mounts"),
            "{elsewhere}"
        );
        // A prefix of a name is not its parent.
        assert!(own_dir(BIND, "0::/ci.slice/runner one.servicex\n").is_err());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("a\\040b\\011c\\134d"), b"a b\tc\\d");
        assert_eq!(unescape("trailing\\04"), b"trailing\\04");
        assert_eq!(
            cgroup2_mounts(BIND),
            [Mount {
                point: PathBuf::from("/sys/fs/cgroup"),
                root: "/ci.slice/runner one.service".into(),
            }]
        );
    }

    /// Real cgroups, where this machine lets quire make them: a process put
    /// in one (and what it forks) is killed and the cgroup removed.
    #[test]
    fn a_cgroup_is_made_killed_and_removed() {
        let dir = match usable_own_dir() {
            Ok(dir) => dir,
            Err(why) => {
                // As the end-to-end tests' `util::require` does: counted by
                // scripts/test, a failure under CI=true.
                let line = format!(
                    "cgroup::tests::a_cgroup_is_made_killed_and_removed: skipped: needs cgroup v2 \
                     quire can make cgroups in ({why}) (install: run the tests as root on cgroup v2)"
                );
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{line}; under CI=true every test must run"
                );
                eprintln!("{line}");
                if let Some(file) = std::env::var_os("QUIRE_SKIPS") {
                    use std::io::Write;
                    let _ = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(file)
                        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
                }
                return;
            }
        };
        let cgroup =
            Cgroup::create(dir.join(format!("quire-test-{}", quire_model::process::host_pid())))
                .unwrap();
        let job = Cgroup::create(cgroup.dir().join("job")).unwrap();
        let procs = job.procs().unwrap();
        let mut command = std::process::Command::new("sh");
        command.args(["-c", "sleep 300 & exec sleep 301"]);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&procs);
        // SAFETY: the child only writes to an fd it inherited
        // (crate::exec::contain::enter_cgroup's argument).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                crate::exec::enter_cgroup(fd)
            });
        }
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while cgroup.pids().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(cgroup.pids().len(), 2, "sh's fork is in the cgroup too");
        assert!(cgroup.pids().contains(&child.id()));
        let handle = std::thread::spawn(move || child.wait().unwrap());
        let events = || std::fs::read_to_string(cgroup.dir().join("cgroup.events")).unwrap();
        assert!(
            cgroup.freeze(Duration::from_secs(5)).unwrap(),
            "{}",
            events()
        );
        assert!(events().contains("frozen 1"));
        cgroup.thaw().unwrap();
        assert!(cgroup.wait_events(Duration::from_secs(5), |t| {
            t.is_some_and(|t| t.contains("frozen 0"))
        }));
        // Frozen, it still dies.
        assert!(cgroup.freeze(Duration::from_secs(5)).unwrap());
        let pids = cgroup.end(Duration::from_secs(5)).unwrap();
        assert_eq!(pids.len(), 2);
        assert!(!handle.join().unwrap().success());
        assert!(!cgroup.dir().exists());
    }
}
