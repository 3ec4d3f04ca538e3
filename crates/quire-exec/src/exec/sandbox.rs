//! The sandbox a run's steps are confined by (docs/SECURITY.md,
//! "Filesystem sandbox"): with Landlock, a step writes only its workspace,
//! its run's TMPDIR and HOME and a few character devices, reads and
//! executes the rest of the system, and neither reads nor writes the paths
//! the worker hides from it (quire's home, the repositories, secret files,
//! the CI user's home); and, under `run_as`, it runs as another user.
//!
//! Two halves, in two processes:
//!
//! - **The parent** (the worker, once per run): [`Sandbox::prepare`]
//!   decides from the configured [`SandboxMode`] and the kernel's Landlock
//!   ABI whether steps are confined ([`decide`]), and builds the ruleset:
//!   read and execute on every top-level entry of `/` holding no hidden
//!   path, descending into those that hold one (granting their other
//!   children), everything on the writable paths. Building it opens a
//!   descriptor per granted path, so it is done once, not per step.
//! - **The child** (each step, between fork and exec, [`Sandbox::confine`]):
//!   raw system calls on what the parent prepared, nothing allocated, no
//!   lock taken: `setgroups`, `setresgid`, `setresuid` for `run_as`, then
//!   `prctl(PR_SET_NO_NEW_PRIVS)` and `landlock_restrict_self` on the
//!   ruleset's descriptor (inherited across fork, closed by exec).
//!
//! Why in the child, not in a restricted spawner thread of the worker: a
//! Landlock domain stops a confined process from ptracing, reading
//! `/proc/PID/mem` or `environ` of, and (scoped, ABI 6) signalling any
//! process outside its domain. A thread of the worker inside the domain
//! would be such a process, sharing the worker's memory: a step could
//! write into the worker through that thread's `/proc/PID/task/TID/mem`.
//! Confining only the child keeps the worker entirely outside. The child
//! is started as posix_spawn starts one, without copying the worker
//! (`vspawn.rs`), and calls [`enter`] before exec.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, path_beneath_rules,
};
use serde::{Deserialize, Serialize};

/// `sandbox` in config.toml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Refuse to run steps that cannot be confined fully.
    Required,
    /// Confine steps as far as the kernel can; say so when it cannot.
    #[default]
    BestEffort,
    /// Never confine steps.
    Off,
}

/// What a run's steps may touch, as paths.
#[derive(Debug, Clone, Default)]
pub struct SandboxPolicy {
    /// Read, write, create, remove: the workspace, the run's TMPDIR and HOME.
    pub writable: Vec<PathBuf>,
    /// Read only, although under a hidden path: the run's own repository's
    /// `objects`, which the workspace's `alternates` names.
    pub readable: Vec<PathBuf>,
    /// Neither read nor written (their names may be looked up): quire's
    /// home, the repositories, secret files, the CI user's home.
    pub hidden: Vec<PathBuf>,
    /// Among `hidden`, the users' homes (where toolchains usually are),
    /// named in the line a step that exits 126 or 127 gets.
    pub homes: Vec<PathBuf>,
}

/// The user a step runs as (`run_as`): ids, and every group it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Its home in the user database, hidden from steps like the worker's.
    pub home: PathBuf,
}

/// Whether steps are confined, decided from the mode and the kernel before
/// anything is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Confine them; `partial` says what this kernel's Landlock cannot stop.
    Confine { partial: Option<String> },
    /// Run them unconfined, and say why in each job's log.
    Unconfined { reason: String },
    /// `sandbox = "off"`: unconfined, as the operator chose.
    Off,
}

/// The Landlock ABI quire asks for, and the one `required` demands: every
/// file-system right of ABI 5 (ABI 6 and 7 add none) and the scopes of
/// ABI 6 (signals, abstract unix sockets).
pub const REQUIRED_ABI: i32 = 6;
const TARGET: ABI = ABI::V6;

/// `mode` against the kernel's Landlock ABI (`Err`: why there is none).
/// `Err` is a refusal: `required`, and steps cannot be confined fully.
pub fn decide(mode: SandboxMode, kernel: Result<i32, String>) -> Result<Decision, String> {
    let refuse = |why: String| {
        Err(format!(
            "sandbox = \"required\" in config.toml, but {why}; refusing to run steps \
             unsandboxed (set sandbox = \"best-effort\" to run them anyway)"
        ))
    };
    if mode == SandboxMode::Off {
        return Ok(Decision::Off);
    }
    let abi = match kernel {
        Ok(abi) => abi,
        Err(why) if mode == SandboxMode::Required => return refuse(why),
        Err(reason) => return Ok(Decision::Unconfined { reason }),
    };
    if abi < 2 {
        let why = format!(
            "this kernel's Landlock is ABI {abi}, which refuses every rename across \
             directories; quire needs ABI 2 (Linux 5.19) or later"
        );
        return match mode {
            SandboxMode::Required => refuse(why),
            _ => Ok(Decision::Unconfined { reason: why }),
        };
    }
    if abi >= REQUIRED_ABI {
        return Ok(Decision::Confine { partial: None });
    }
    let mut missing = Vec::new();
    if abi < 3 {
        missing.push("truncating files it may not write (truncate(2))");
    }
    if abi < 5 {
        missing.push("ioctl on devices");
    }
    missing.push("signalling other processes, abstract unix sockets");
    let why = format!(
        "this kernel's Landlock is ABI {abi}, which cannot stop a step {}; \
         ABI {REQUIRED_ABI} (Linux 6.12) can",
        missing.join(", ")
    );
    match mode {
        SandboxMode::Required => refuse(why),
        _ => Ok(Decision::Confine { partial: Some(why) }),
    }
}

/// The kernel's Landlock ABI version, or why it has none.
pub fn kernel_abi() -> Result<i32, String> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute, size 0 and the VERSION flag, the call
    // reads and writes no memory; it returns the ABI or -1 and errno.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v >= 0 {
        return Ok(v as i32);
    }
    let error = io::Error::last_os_error();
    Err(match error.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no Landlock (Linux 5.13 or later, built with \
                               CONFIG_SECURITY_LANDLOCK, has it)"
            .to_string(),
        Some(libc::EOPNOTSUPP) => "Landlock is built into this kernel but not enabled (add \
                                   landlock to the lsm= boot parameter)"
            .to_string(),
        _ => format!("the kernel does not answer whether it has Landlock: {error}"),
    })
}

/// A run's prepared sandbox, shared by all its steps.
pub struct Sandbox {
    /// The Landlock ruleset's descriptor, when steps are confined.
    ruleset: Option<OwnedFd>,
    user: Option<StepUser>,
    summary: String,
    notes: Vec<String>,
    /// What a confined step that exits 126 or 127 may have been denied.
    hidden_hint: Option<String>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("summary", &self.summary)
            .field("user", &self.user.as_ref().map(|u| &u.name))
            .finish()
    }
}

impl Sandbox {
    /// Decide and build the sandbox of a run's steps. `Err` is a refusal
    /// (`required`, and steps cannot be confined), for the run's failure.
    pub fn prepare(
        mode: SandboxMode,
        policy: &SandboxPolicy,
        user: Option<StepUser>,
    ) -> Result<Sandbox, String> {
        Sandbox::prepare_with(mode, kernel_abi(), policy, user)
    }

    fn prepare_with(
        mode: SandboxMode,
        kernel: Result<i32, String>,
        policy: &SandboxPolicy,
        user: Option<StepUser>,
    ) -> Result<Sandbox, String> {
        let unconfined = |reason: String, user| Sandbox {
            ruleset: None,
            user,
            summary: format!("not applied: {reason}"),
            notes: vec![format!(
                "quire: sandbox: not applied: {reason}; this job's steps can read and write \
                 whatever the worker's user can"
            )],
            hidden_hint: None,
        };
        let partial = match decide(mode, kernel)? {
            Decision::Off => {
                return Ok(Sandbox {
                    ruleset: None,
                    user,
                    summary: "off (sandbox = \"off\" in config.toml)".into(),
                    notes: Vec::new(),
                    hidden_hint: None,
                });
            }
            Decision::Unconfined { reason } => return Ok(unconfined(reason, user)),
            Decision::Confine { partial } => partial,
        };
        let ruleset = match build(policy) {
            Ok(ruleset) => ruleset,
            Err(e) if mode == SandboxMode::Required => {
                return Err(format!(
                    "sandbox = \"required\" in config.toml, but the Landlock ruleset could not \
                     be built: {e}; refusing to run steps unsandboxed"
                ));
            }
            Err(e) => {
                return Ok(unconfined(
                    format!("the Landlock ruleset could not be built: {e}"),
                    user,
                ));
            }
        };
        let (summary, notes) = match partial {
            None => (
                "Landlock: steps write only their workspace, TMPDIR and HOME; quire's home, \
                 the repositories and the CI user's home are hidden"
                    .to_string(),
                Vec::new(),
            ),
            Some(why) => (
                format!("Landlock, partial: {why}"),
                vec![format!("quire: sandbox: partial: {why}")],
            ),
        };
        Ok(Sandbox {
            ruleset: Some(ruleset),
            user,
            summary,
            notes,
            hidden_hint: Some(hidden_hint(&policy.homes)),
        })
    }

    /// The line for the log of a confined step that exited `code`, when
    /// that code is a shell's "cannot execute" (126) or "not found" (127),
    /// which a hidden program or directory gives: what is hidden and which
    /// config.toml keys open it. None for any other code, or unconfined.
    pub fn denied_note(&self, code: i64) -> Option<String> {
        let meaning = match code {
            126 => "126 (cannot execute)",
            127 => "127 (not found)",
            _ => return None,
        };
        let hint = self.hidden_hint.as_ref()?;
        Some(format!("quire: exit {meaning} may be the sandbox: {hint}"))
    }

    /// One line for people (`quire-runs show`, worker.log): how steps are
    /// confined, or why they are not.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Lines for the top of each job's first step log: only when steps
    /// run less confined than configured.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Add a line for the top of each job's first step log (the network
    /// namespace's fallback, `netns.rs`).
    pub fn add_note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Whether steps are confined by Landlock.
    pub fn is_confined(&self) -> bool {
        self.ruleset.is_some()
    }

    /// What a step's child must do to enter the sandbox: the ruleset to
    /// restrict itself with and the user to become; None when nothing.
    #[allow(clippy::type_complexity)]
    pub(super) fn child_parts(&self) -> Option<(Option<RawFd>, Option<(u32, u32, Vec<u32>)>)> {
        if self.ruleset.is_none() && self.user.is_none() {
            return None;
        }
        Some((
            self.ruleset.as_ref().map(AsRawFd::as_raw_fd),
            self.user.as_ref().map(|u| (u.uid, u.gid, u.groups.clone())),
        ))
    }
}

/// What the sandbox hides, for [`Sandbox::denied_note`], and the keys
/// that open it.
fn hidden_hint(homes: &[PathBuf]) -> String {
    let mut homes: Vec<String> = homes
        .iter()
        .filter(|h| h.as_path() != Path::new("/"))
        .map(|h| h.display().to_string())
        .collect();
    homes.sort();
    homes.dedup();
    let homes = if homes.is_empty() {
        String::new()
    } else {
        format!(" ({})", homes.join(", "))
    };
    format!(
        "steps can neither read nor run anything in quire's home, the repositories or the \
         CI user's home{homes}; an admin can open a directory to steps with [steps] read and \
         set their PATH with [steps] env.PATH in config.toml (docs/OPERATIONS.md)"
    )
}

/// The child's half: let no descriptor it inherited reach the step, become
/// the step's user, then restrict itself.
pub(super) fn enter(ruleset: Option<RawFd>, ids: Option<&(u32, u32, Vec<u32>)>) -> io::Result<()> {
    // Landlock checks a file when it is opened: a descriptor the worker
    // inherited without close-on-exec (from whoever started it) would pass
    // every rule. Mark them all close-on-exec (the standard streams are
    // 0-2; std's error pipe and the ruleset are close-on-exec already). A
    // kernel before 5.11 lacks the call; nothing else fails it.
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: integer arguments only.
    let _ = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if let Some((uid, gid, groups)) = ids {
        // Raw system calls, not libc's wrappers: those would try to bring
        // every thread of the process along, and the child has one.
        // SAFETY: the pointer and length describe `groups`, alive here.
        check(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })?;
        // SAFETY: integer arguments only.
        check(unsafe { libc::syscall(libc::SYS_setresgid, *gid, *gid, *gid) })?;
        // SAFETY: integer arguments only.
        check(unsafe { libc::syscall(libc::SYS_setresuid, *uid, *uid, *uid) })?;
    }
    if let Some(fd) = ruleset {
        // SAFETY: integer arguments only.
        check(unsafe { libc::syscall(libc::SYS_prctl, libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
        // SAFETY: integer arguments only; `fd` is the ruleset, inherited.
        check(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0) })?;
    }
    Ok(())
}

fn check(ret: libc::c_long) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The Landlock ruleset for `policy`, as a descriptor ready for
/// `landlock_restrict_self`.
fn build(policy: &SandboxPolicy) -> Result<OwnedFd, String> {
    let hidden = hidden_paths(&policy.hidden);
    let read = AccessFs::from_read(TARGET);
    let all = AccessFs::from_all(TARGET);
    let device = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev;
    let ruleset = Ruleset::default()
        .handle_access(all)
        .and_then(|r| r.scope(Scope::from_all(TARGET)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(system(&hidden), read)))
        .and_then(|r| r.add_rules(path_beneath_rules(&policy.readable, read)))
        .and_then(|r| r.add_rules(path_beneath_rules(&policy.writable, all)))
        .and_then(|r| r.add_rules(path_beneath_rules(DEVICES, device)))
        .map_err(|e| e.to_string())?;
    let fd: Option<OwnedFd> = ruleset.into();
    fd.ok_or_else(|| "the kernel refused to create it".to_string())
}

/// Character devices a step may read and write (besides its inherited
/// standard streams, which are pipes and /dev/null anyway).
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

/// The hidden paths as the walk meets them: canonical (a home reached
/// through a symlink is hidden where it really is), existing, and never
/// `/` itself (a user whose home is `/` would otherwise hide everything).
fn hidden_paths(given: &[PathBuf]) -> Vec<PathBuf> {
    let mut hidden: Vec<PathBuf> = given
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .filter(|p| p != Path::new("/"))
        .collect();
    hidden.sort();
    hidden.dedup();
    hidden
}

/// What steps may read of the system: every entry of `/` holding no hidden
/// path, and inside those that hold one, their other entries, recursively.
/// Symbolic links are left out: Landlock checks the path a link resolves
/// to, which this walk grants (or not) where it really is.
fn system(hidden: &[PathBuf]) -> Vec<PathBuf> {
    let mut granted = Vec::new();
    walk(Path::new("/"), hidden, &mut granted);
    granted
}

fn walk(dir: &Path, hidden: &[PathBuf], granted: &mut Vec<PathBuf>) {
    // A directory that cannot be listed grants nothing below it.
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // A shared scratch directory (world-writable and sticky: /tmp,
    // /var/tmp) that holds a hidden path grants none of its other entries:
    // they are other users' and programs' scratch files, a step has its
    // own TMPDIR, and each would be a rule every step's domain is built
    // from (hundreds, on a busy /tmp).
    let shared = std::fs::metadata(dir).is_ok_and(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o1002 == 0o1002
    });
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() || hidden.contains(&path) {
            continue;
        }
        if hidden.iter().any(|h| h.starts_with(&path)) {
            if kind.is_dir() {
                walk(&path, hidden, granted);
            }
            continue;
        }
        if !shared {
            granted.push(path);
        }
    }
}

impl StepUser {
    /// `name` in the user database, with every group it is in.
    pub fn lookup(name: &str) -> Result<StepUser, String> {
        let unknown = || format!("run_as names user {name:?}, which this machine does not know");
        let c_name = CString::new(name).map_err(|_| unknown())?;
        // SAFETY: the pointers come from `passwd_entry`, valid for the call.
        let entry = passwd_entry(&|pwd, buf, len, found| unsafe {
            libc::getpwnam_r(c_name.as_ptr(), pwd, buf, len, found)
        })
        .map_err(|e| format!("cannot look user {name:?} up: {e}"))?
        .ok_or_else(unknown)?;
        let (uid, gid, home) = entry;
        let mut groups: Vec<libc::gid_t> = vec![0; 64];
        for _ in 0..8 {
            let mut count = groups.len() as libc::c_int;
            // SAFETY: `groups` holds `count` entries; the call writes at
            // most that many and sets `count` to how many there are.
            let rc = unsafe {
                libc::getgrouplist(c_name.as_ptr(), gid, groups.as_mut_ptr(), &mut count)
            };
            if rc >= 0 {
                groups.truncate(count.max(0) as usize);
                return Ok(StepUser {
                    name: name.to_string(),
                    uid,
                    gid,
                    groups,
                    home,
                });
            }
            let wanted = (count.max(0) as usize).max(groups.len() * 2);
            groups.resize(wanted, 0);
        }
        Err(format!("cannot list the groups of user {name:?}"))
    }

    /// The home of the user with `uid` in the user database, if any.
    pub fn home_of(uid: u32) -> Option<PathBuf> {
        // SAFETY: the pointers come from `passwd_entry`, valid for the call.
        passwd_entry(&|pwd, buf, len, found| unsafe { libc::getpwuid_r(uid, pwd, buf, len, found) })
            .ok()
            .flatten()
            .map(|(_, _, home)| home)
    }
}

type PasswdCall<'a> =
    dyn Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> libc::c_int + 'a;

/// One entry of the user database, through getpwnam_r or getpwuid_r
/// (`call`, given the entry, a buffer, its length and the result pointer):
/// uid, gid and home, or `None` when there is no such user.
fn passwd_entry(call: &PasswdCall<'_>) -> io::Result<Option<(u32, u32, PathBuf)>> {
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    // SAFETY: passwd is plain data; all-zero is a valid value to be
    // overwritten.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    loop {
        let rc = call(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut found);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        break;
    }
    if found.is_null() {
        return Ok(None);
    }
    // SAFETY: on success pw_dir points into `buf`, NUL-terminated.
    let home = unsafe { CStr::from_ptr(pwd.pw_dir) };
    let home = PathBuf::from(OsStr::from_bytes(home.to_bytes()));
    Ok(Some((pwd.pw_uid, pwd.pw_gid, home)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_refuses_what_best_effort_runs_unconfined_or_partial() {
        let none = || Err::<i32, String>("this kernel has no Landlock".into());
        let refusal = decide(SandboxMode::Required, none()).unwrap_err();
        assert!(
            refusal.starts_with(
                "sandbox = \"required\" in config.toml, but this kernel has no Landlock; \
                 refusing to run steps unsandboxed"
            ),
            "{refusal}"
        );
        assert_eq!(
            decide(SandboxMode::BestEffort, none()),
            Ok(Decision::Unconfined {
                reason: "this kernel has no Landlock".into()
            })
        );
        assert_eq!(decide(SandboxMode::Off, none()), Ok(Decision::Off));
        assert_eq!(decide(SandboxMode::Off, Ok(7)), Ok(Decision::Off));
        // ABI 1 would break renames across directories: not applied.
        assert!(decide(SandboxMode::Required, Ok(1)).is_err());
        assert!(matches!(
            decide(SandboxMode::BestEffort, Ok(1)),
            Ok(Decision::Unconfined { .. })
        ));
        // ABI 2-5: partial, which `required` refuses, naming what is missing.
        for abi in 2..REQUIRED_ABI {
            let refusal = decide(SandboxMode::Required, Ok(abi)).unwrap_err();
            assert!(refusal.contains(&format!("ABI {abi}")), "{refusal}");
            let Ok(Decision::Confine { partial: Some(why) }) =
                decide(SandboxMode::BestEffort, Ok(abi))
            else {
                panic!("ABI {abi} is partial");
            };
            assert!(why.contains("signalling other processes"), "{why}");
            assert_eq!(why.contains("truncating"), abi < 3, "{why}");
        }
        for abi in [REQUIRED_ABI, 7, 9] {
            for mode in [SandboxMode::Required, SandboxMode::BestEffort] {
                assert_eq!(
                    decide(mode, Ok(abi)),
                    Ok(Decision::Confine { partial: None })
                );
            }
        }
    }

    #[test]
    fn a_kernel_without_landlock_fails_required_and_notes_best_effort() {
        let policy = SandboxPolicy::default();
        let none = || Err::<i32, String>("this kernel has no Landlock".into());
        let err = Sandbox::prepare_with(SandboxMode::Required, none(), &policy, None).unwrap_err();
        assert!(err.contains("refusing to run steps unsandboxed"), "{err}");
        let sandbox =
            Sandbox::prepare_with(SandboxMode::BestEffort, none(), &policy, None).unwrap();
        assert!(!sandbox.is_confined());
        assert_eq!(
            sandbox.summary(),
            "not applied: this kernel has no Landlock"
        );
        assert!(
            sandbox.notes()[0]
                .starts_with("quire: sandbox: not applied: this kernel has no Landlock"),
            "{:?}",
            sandbox.notes()
        );
        let off = Sandbox::prepare_with(SandboxMode::Off, Ok(7), &policy, None).unwrap();
        assert!(!off.is_confined() && off.notes().is_empty());
    }

    #[test]
    fn the_walk_grants_around_hidden_paths_and_skips_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["home/quire/runs", "home/other", "srv/git/a.git", "srv/www"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("home/file"), "").unwrap();
        std::os::unix::fs::symlink(root.join("home/quire"), root.join("home/link")).unwrap();
        let hidden = hidden_paths(&[
            root.join("home/quire"),
            root.join("home/link"),
            root.join("srv/git/a.git"),
            PathBuf::from("/"),
            root.join("does-not-exist"),
        ]);
        assert_eq!(
            hidden,
            [root.join("home/quire"), root.join("srv/git/a.git")]
        );
        let mut granted = Vec::new();
        walk(&root, &hidden, &mut granted);
        granted.sort();
        assert_eq!(
            granted,
            [
                root.join("home/file"),
                root.join("home/other"),
                root.join("srv/www"),
            ]
        );
    }

    #[test]
    fn users_are_looked_up_with_their_groups() {
        let root = StepUser::lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0));
        assert_eq!(StepUser::home_of(0), Some(root.home));
        let err = StepUser::lookup("no-such-user-quire").unwrap_err();
        assert_eq!(
            err,
            "run_as names user \"no-such-user-quire\", which this machine does not know"
        );
    }
}
