//! `quire-run hook`: git's post-receive. Records a run per pushed ref,
//! tells the pusher, starts a detached worker, and returns at once; with
//! the push option `ci.wait`, only once the runs it recorded have ended
//! (`ci_wait.rs`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use quire_model::model::is_object_id;
use quire_store::repos::Registration;
use quire_store::{Home, Repository, RunEvent, Store};
use quire_worker::config::{Config, ConfigError};
use quire_worker::workers;

use crate::error::CommandError;
use crate::run::ci_wait;
use quire_view::text::sh_word;
use quire_worker::git::Repo;
use quire_worker::record::{Recorded, Recording, RefUpdate, Skip, record};

/// The repository the hook runs for: `--git-dir`, else `$GIT_DIR` (which git
/// sets, relative: `.`), made absolute.
pub(crate) fn git_dir(flag: Option<&Path>) -> Result<PathBuf, CommandError> {
    let given = flag
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("GIT_DIR").map(PathBuf::from))
        .ok_or_else(|| {
            CommandError::input("no repository: pass --git-dir or run as git's post-receive hook")
        })?;
    std::fs::canonicalize(&given).map_err(|e| {
        CommandError::input(format!("cannot open repository {}: {e}", given.display()))
    })
}

/// The repository's row in the store: registered on first sight, named
/// relative to `repos_root` when it lies there.
pub(crate) fn register(
    store: &mut Store,
    git_dir: &Path,
    config: &Config,
    why: Registration,
) -> Result<Repository, CommandError> {
    let root = config
        .repos_root
        .as_deref()
        .and_then(|root| std::fs::canonicalize(root).ok());
    Ok(store.register_repo(git_dir, root.as_deref(), why)?)
}

/// The argument quire's hook file gives quire-run on its first line
/// (`#!QUIRE_RUN hook-file`): the kernel runs `quire-run hook-file PATH`.
pub(crate) const HOOK_FILE: &str = "hook-file";

/// `quire-run hook-file PATH`: what the kernel runs for the hook file
/// `install` writes, no shell between. The file's `exec` line is the
/// command `sh PATH` would run, `exec QUIRE_RUN --home HOME hook`, with
/// `--previous-hook` when it runs a kept hook first: it is read for the
/// home and for that, and `hook` runs as it says. A file of another shape
/// is refused, never guessed at.
pub(crate) fn from_file(path: &Path) -> Result<(), CommandError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(64 * 1024).read_to_string(&mut text))
        .map_err(|e| CommandError::input(format!("cannot read {}: {e}", path.display())))?;
    let (home, chained) = exec_line(&text).ok_or_else(|| {
        CommandError::input(format!(
            "{} has no `exec QUIRE_RUN --home HOME hook` line as `quire-run install` writes it; \
             install the hook again",
            path.display()
        ))
    })?;
    let kept = crate::run::install::POST_RECEIVE_KEPT;
    let previous = chained.then(|| path.parent().unwrap_or(Path::new(".")).join(kept));
    main(
        || Home::resolve(Some(&home)).map_err(CommandError::from),
        None,
        previous.as_deref(),
    )
}

/// The home a hook file's `exec` line names, and whether it runs the
/// kept hook first.
fn exec_line(text: &str) -> Option<(PathBuf, bool)> {
    use quire_model::shell::sh_unquoted;
    let at = text.find("\nexec ")?;
    let (_, rest) = sh_unquoted(&text[at + "\nexec ".len()..])?;
    let (home, rest) = sh_unquoted(rest.strip_prefix(" --home ")?)?;
    let rest = rest.strip_prefix(" hook")?;
    let chain = crate::run::install::previous_arg(crate::run::install::POST_RECEIVE_KEPT);
    let chained = rest.starts_with(&chain);
    let rest = if chained { &rest[chain.len()..] } else { rest };
    (rest.is_empty() || rest.starts_with('\n')).then_some((PathBuf::from(home), chained))
}

/// Parse one post-receive line: `<old> <new> <ref>`.
pub(crate) fn parse_line(line: &[u8]) -> Result<RefUpdate, String> {
    let text = std::str::from_utf8(line).map_err(|_| "it is not UTF-8".to_string())?;
    let fields: Vec<&str> = text.split(' ').collect();
    let [old, new, ref_name] = fields[..] else {
        return Err(format!(
            "expected `<old> <new> <ref>`, got {} fields",
            fields.len()
        ));
    };
    for (what, id) in [("old", old), ("new", new)] {
        if !is_object_id(id) {
            return Err(format!(
                "the {what} value {id:?} is not a full lowercase object id"
            ));
        }
    }
    if old.len() != new.len() {
        return Err("the old and new ids differ in length".into());
    }
    if !quire_model::refs::RefName::new(ref_name).is_full()
        || ref_name.chars().any(char::is_control)
    {
        return Err(format!("{ref_name:?} is not a full ref name"));
    }
    let zero = |id: &str| id.bytes().all(|b| b == b'0');
    Ok(RefUpdate {
        old: (!zero(old)).then(|| old.to_string()),
        new: (!zero(new)).then(|| new.to_string()),
        ref_name: ref_name.to_string(),
    })
}

/// The push options (`git push -o OPTION`), as git hands them to the hook.
fn push_options() -> Vec<String> {
    let count: usize = std::env::var("GIT_PUSH_OPTION_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (0..count)
        .filter_map(|i| std::env::var(format!("GIT_PUSH_OPTION_{i}")).ok())
        .map(|opt| opt.trim().to_string())
        .collect()
}

/// The home is gone (or never was): nothing can be recorded. Say so, and
/// how each pushed ref's run is recorded once the home is back.
fn lost(out: &mut dyn Write, home: &Home, git_dir: &Path, updates: &[RefUpdate]) {
    let _ = writeln!(
        out,
        "quire: no quire home at {}: no run recorded for this push (restore the home from a backup, or make a new one with `quire-run --home {} install {}`), then record each ref's run with:",
        home.dir().display(),
        sh_word(&home.dir().display().to_string()),
        sh_word(&git_dir.display().to_string()),
    );
    for update in updates {
        let Some(sha) = &update.new else { continue };
        let _ = writeln!(
            out,
            "quire:   quire-run --home {} trigger --git-dir {} {} {sha}",
            sh_word(&home.dir().display().to_string()),
            sh_word(&git_dir.display().to_string()),
            sh_word(&update.ref_name),
        );
    }
    let _ = out.flush();
}

/// `quire-run hook`: read the push, run the hook that was there before
/// quire's (`previous`, if any) with it, then record the runs. The exit
/// status is the previous hook's when it failed, else 0 unless a line was
/// malformed (or quire could not record the push).
pub(crate) fn main(
    home: impl FnOnce() -> Result<Home, CommandError>,
    git_dir_flag: Option<&Path>,
    previous: Option<&Path>,
) -> Result<(), CommandError> {
    let options = push_options();
    let wait = options
        .iter()
        .any(|o| o == ci_wait::OPTION || o == ci_wait::LOGS_OPTION);
    if wait {
        // From here on the pusher's Ctrl-C (or a hang-up) ends only the
        // waiting: the push's runs are recorded and their workers started.
        quire_worker::interrupt::catch_for_waiting();
    }
    // Read the whole push first (a line per ref): whatever goes wrong
    // later, the pusher is told which refs got no run.
    let mut lines = Vec::new();
    let mut input = std::io::stdin().lock();
    loop {
        let mut line = Vec::new();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| CommandError::input(format!("cannot read the pushed refs: {e}")))?;
        if read == 0 {
            break;
        }
        lines.push(line);
    }
    // The previous hook first, whatever becomes of quire's part: the push
    // does what it did before quire was installed.
    let previous_status = previous.map_or(0, |hook| run_previous(hook, &lines.concat()));
    let recorded = home().and_then(|home| run(&home, git_dir_flag, &lines, &options, wait));
    match (previous_status, recorded) {
        (0, Ok(true)) => Ok(()),
        (0, Ok(false)) => Err(CommandError::reported()),
        (0, Err(e)) => Err(e),
        (status, Ok(_)) => Err(CommandError::status(status)),
        (status, Err(e)) => {
            e.report("quire-run");
            Err(CommandError::status(status))
        }
    }
}

/// Run the hook that was there before quire's (post-receive or
/// pre-receive) with the push's
/// input, its output going where quire's goes (the pusher's `remote:`
/// lines); its exit status (128 + N for a signal N). A hook that is not
/// there is skipped (0); one that is not executable is skipped as git
/// skips it, and said.
pub(crate) fn run_previous(hook: &Path, input: &[u8]) -> u8 {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    let mut out = std::io::stdout();
    let _ = out.flush();
    match std::fs::metadata(hook) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => {
            let _ = writeln!(out, "quire: cannot run {}: {e}", hook.display());
            return 1;
        }
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => {
            let _ = writeln!(
                out,
                "quire: {} is not executable, so it was not run (chmod +x it, or remove it)",
                hook.display()
            );
            return 0;
        }
        Ok(_) => {}
    }
    let spawn = |program: &Path, args: &[&Path]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .spawn()
    };
    // As git does, a script without `#!` is given to sh.
    let child = match spawn(hook, &[]) {
        Err(e) if e.raw_os_error() == Some(8) => spawn(Path::new("/bin/sh"), &[hook]),
        other => other,
    };
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let _ = writeln!(out, "quire: cannot run {}: {e}", hook.display());
            return 1;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its input is no error of quire's.
        let _ = stdin.write_all(input);
    }
    match child.wait() {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => u8::try_from(code).unwrap_or(1),
            (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
            (None, None) => 1,
        },
        Err(e) => {
            let _ = writeln!(out, "quire: cannot wait for {}: {e}", hook.display());
            1
        }
    }
}

/// Record a run per pushed ref (`lines`, as git wrote them); returns
/// whether every line was well-formed.
fn run(
    home: &Home,
    git_dir_flag: Option<&Path>,
    lines: &[Vec<u8>],
    options: &[String],
    wait: bool,
) -> Result<bool, CommandError> {
    let logs = options.iter().any(|o| o == ci_wait::LOGS_OPTION);
    let mut out = std::io::stdout().lock();
    let mut all_good = true;
    let mut updates = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.is_empty() {
            continue;
        }
        match parse_line(trimmed) {
            Ok(update) => updates.push(update),
            Err(why) => {
                all_good = false;
                let _ = writeln!(
                    out,
                    "quire: ignoring line {} of the pushed refs: {why}",
                    n + 1
                );
            }
        }
    }
    let no_runs = |out: &mut std::io::StdoutLock<'_>, from: usize| {
        if let Some(first) = updates.get(from) {
            let _ = writeln!(
                out,
                "quire: could not record a run for {} or any ref after it in this push",
                first.ref_name
            );
            let _ = out.flush();
        }
    };
    let setup = (|| {
        let git_dir = git_dir(git_dir_flag)?;
        // Before anything else reads the home: a home deleted (or never
        // installed) is said, never silently made anew and empty.
        let mut store = Store::open_existing(home).inspect_err(|e| {
            if matches!(
                e,
                quire_store::Error::HomeMissing(_) | quire_store::Error::NotAHome(_)
            ) {
                lost(&mut std::io::stdout().lock(), home, &git_dir, &updates);
            }
        })?;
        crate::say_converted(&store);
        if !wait {
            // The push waits for this process's end: its close folds no
            // WAL (fsyncs). The worker it starts closes the store after
            // it, or reconcile does within a minute, and folds it then.
            // Only a saving: a connection that refuses it records as well.
            let _ = store.leave_wal_on_close();
        }
        // A config.toml that cannot be read does not lose the push: its
        // runs are recorded failed (`config-invalid`), to be retried once
        // it is fixed; the defaults stand in meanwhile.
        let (config, config_error) = match Config::load(home) {
            Ok(config) => (config, None),
            Err(ConfigError::Invalid { message, .. }) => (Config::default(), Some(message)),
            Err(e) => return Err(e.into()),
        };
        let repo = Repo::open(&git_dir)?;
        let known = register(&mut store, &git_dir, &config, Registration::Seen)?;
        Ok::<_, CommandError>((config, config_error, repo, known, store))
    })();
    let (config, config_error, repo, known, mut store) = match setup {
        Ok(parts) => parts,
        Err(e) => {
            no_runs(&mut out, 0);
            return Err(e);
        }
    };
    let skip = if options.iter().any(|o| o == "ci.skip") {
        Skip::PushOption
    } else {
        Skip::AsTheMessageSays
    };
    let limits = config.limits();
    let how = Recording {
        skip,
        limits: &limits,
        event: RunEvent::Push,
        config_error: config_error.as_deref(),
    };
    let mut queued = false;
    let mut recorded_runs = Vec::new();
    for (i, update) in updates.iter().enumerate() {
        // One ref's trouble (a missing object, say) is reported and the
        // others are still recorded; a store that cannot be written stops
        // everything (the error itself follows on stderr).
        match record(&mut store, &repo, known.id, update, &how) {
            Ok(recorded) => {
                queued |= recorded.queued();
                if let Recorded::Queued { run, .. }
                | Recorded::Invalid { run, .. }
                | Recorded::ConfigInvalid { run, .. } = &recorded
                {
                    recorded_runs.push(ci_wait::Recorded {
                        run: run.clone(),
                        ref_name: update.ref_name.clone(),
                    });
                }
                for text in recorded.lines(update) {
                    let _ = writeln!(out, "{text}");
                }
            }
            Err(quire_worker::Error::Git(e)) => {
                all_good = false;
                let _ = writeln!(out, "quire: no run for {}: {e}", update.ref_name);
            }
            Err(e) => {
                no_runs(&mut out, i);
                return Err(e.into());
            }
        }
    }
    let _ = out.flush();
    drop(out);
    if queued {
        start_workers(&store, &config);
    }
    // Runs this push superseded or refused have ended: their notes and
    // notifiers (docs/OPERATIONS.md, "When a run ends").
    workers::announce_if_needed(store.home(), &store);
    if wait {
        ci_wait::wait(&store, &recorded_runs, logs);
    }
    Ok(all_good)
}

/// Start detached workers for the queued runs, as many as free slots allow;
/// a failure is told, not fatal: the runs are recorded and reconcile will
/// start a worker.
pub(crate) fn start_workers(store: &Store, config: &Config) {
    let started = store
        .pending_count()
        .map_err(quire_worker::Error::from)
        .and_then(|queued| workers::start(store.home(), config.max_workers, queued));
    match started {
        Ok(_) => {}
        Err(e @ quire_worker::Error::Spawn { .. }) => {
            println!("quire: {e}; `quire-runs reconcile` will start one");
        }
        Err(e) => {
            println!(
                "quire: could not start a worker ({e}); `quire-runs reconcile` will start one"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_files_exec_line_is_read_back_as_install_writes_it() {
        use crate::run::install::script as post_receive_script;
        let exe = Path::new("/usr/local/bin/quire-run");
        for home in ["/srv/quire", "/srv/my quire", "/srv/it's", "/srv/$HOME`x`"] {
            for chained in [false, true] {
                let text = post_receive_script(exe, Path::new(home), chained);
                assert!(
                    text.starts_with("#!/usr/local/bin/quire-run hook-file\n"),
                    "{text}"
                );
                assert_eq!(
                    exec_line(&text),
                    Some((PathBuf::from(home), chained)),
                    "{text}"
                );
            }
        }
        // A path the first line cannot hold: sh runs the same exec line.
        let blank =
            post_receive_script(Path::new("/opt/my tools/quire-run"), Path::new("/h"), false);
        assert!(blank.starts_with("#!/bin/sh\n"), "{blank}");
        let long = format!("/{}/quire-run", "d".repeat(120));
        let long = post_receive_script(Path::new(&long), Path::new("/h"), false);
        assert!(long.starts_with("#!/bin/sh\n"), "{long}");
        // Any other shape is refused, not guessed at.
        for other in [
            "#!/bin/sh\nexec quire-run --home /srv/quire hook\n",
            "#!/bin/sh\nexec '/q' --home '/h' hook --git-dir /x\n",
            "#!/bin/sh\nexec '/q' hook\n",
            "#!/bin/sh\necho hi\n",
            "",
        ] {
            assert_eq!(exec_line(other), None, "{other}");
        }
    }

    const A: &str = "1111111111111111111111111111111111111111";
    const Z: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn lines_are_parsed_strictly() {
        let ok = parse_line(format!("{Z} {A} refs/heads/main").as_bytes()).unwrap();
        assert_eq!(
            (ok.old, ok.new.as_deref(), ok.ref_name.as_str()),
            (None, Some(A), "refs/heads/main")
        );
        let deleted = parse_line(format!("{A} {Z} refs/tags/v1").as_bytes()).unwrap();
        assert_eq!(deleted.new, None);
        for bad in [
            "".to_string(),
            "garbage".into(),
            format!("{A} {A}"),
            format!("{A} {A} refs/heads/x extra"),
            format!("{A} abc refs/heads/x"),
            format!("{A} {} refs/heads/x", A.to_uppercase().replace('1', "G")),
            format!("{A} {A}{A} refs/heads/x"),
            format!("{A} {A} main"),
            format!("{A} {A} refs/"),
        ] {
            assert!(parse_line(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse_line(&[b'x', 0xff, b' ']).is_err());
    }
}
