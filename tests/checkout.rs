//! A step's workspace is a git checkout of the pushed commit: `.git` with
//! HEAD detached at it, the pushed ref (or, with `[workspace] refs =
//! "all"`, the repository's branches and tags), a clean status, and the
//! repository's objects borrowed through alternates, never copied.

use quire_store::RunState;

use quire_testkit::{Env, git};

/// The CRI log lines' text, one per line.
#[test]
fn a_step_sees_a_git_checkout_with_tags_branches_and_shared_objects() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(&[("README.md", "hello\n")], "first");
    git(&repo.work, &["tag", "-a", "v1.0", "-m", "release 1.0"]);
    git(&repo.work, &["branch", "dev"]);
    git(
        &repo.work,
        &[
            "push", "--quiet", "-o", "ci.skip", "origin", "main", "dev", "v1.0",
        ],
    );
    let pipeline = r#"[workspace]
refs = "all"

[jobs.look]
inputs = ["quire/push"]
sh = [
  "echo describe=$(git describe --tags)",
  "echo head=$(git rev-parse HEAD)",
  "echo symbolic=$(git symbolic-ref -q HEAD || echo detached)",
  "echo status=[$(git status --porcelain)]",
  "echo log=$(git log --oneline -1)",
  "echo main=$(git rev-parse main) origin-main=$(git rev-parse origin/main) dev=$(git rev-parse origin/dev)",
  "echo alternates=$(cat .git/objects/info/alternates)",
  "echo objects=[$(find .git/objects -type f ! -name alternates)]",
]
"#;
    let run = repo.push_and_wait(pipeline);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let sha = run.sha.clone();
    let dev = git(&repo.work, &["rev-parse", "dev"]);
    let short = git(&repo.work, &["rev-parse", "--short", &sha]);
    let objects = repo.bare.join("objects").canonicalize().unwrap();
    let out = env.stdout(&["logs", &run.id]);
    for want in [
        format!("describe=v1.0-1-g{short}"),
        format!("head={sha}"),
        "symbolic=detached".to_string(),
        "status=[]".to_string(),
        format!("log={short} pipeline"),
        format!("main={sha} origin-main={sha} dev={dev}"),
        format!("alternates={}", objects.display()),
        "objects=[]".to_string(),
    ] {
        assert!(out.contains(&want), "{want:?} not in:\n{out}");
    }
}

#[test]
fn a_tree_of_two_thousand_files_checks_out_completely() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    for i in 0..2000 {
        let file = repo.work.join(format!("d{}/f{i}.txt", i % 40));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, format!("file {i}\n")).unwrap();
    }
    git(&repo.work, &["add", "."]);
    let pipeline = r#"[jobs.count]
inputs = ["quire/push"]
sh = ["echo files=$(find . -path ./.git -prune -o -type f -print | wc -l)", "echo f1999=$(cat d39/f1999.txt)", "echo status=[$(git status --porcelain)]"]
"#;
    let run = repo.push_and_wait(pipeline);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let out = env.stdout(&["logs", &run.id]);
    // The 2,000 files and .quire/ci.toml.
    for want in ["files=2001", "f1999=file 1999", "status=[]"] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
}

/// Push main without a run, then give the repository 5,000 more branches
/// and tags at its commit, loose, as pushes leave them.
fn push_with_5000_other_refs(repo: &quire_testkit::Repo) {
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    let head = git(&repo.work, &["rev-parse", "HEAD"]);
    let refs = repo.bare.join("refs");
    for i in 0..2500 {
        std::fs::write(refs.join(format!("heads/b{i}")), format!("{head}\n")).unwrap();
        std::fs::write(refs.join(format!("tags/t{i}")), format!("{head}\n")).unwrap();
    }
}

#[test]
fn by_default_a_run_names_only_the_pushed_ref_whatever_the_repository_holds() {
    let env = Env::new();
    env.config("keep_workspaces = true\n");
    let repo = env.repo_with_hook("app");
    repo.commit(&[("README.md", "hello\n")], "first");
    push_with_5000_other_refs(&repo);
    let pipeline = r#"[jobs.look]
inputs = ["quire/push"]
sh = [
  "echo refs=$(git for-each-ref --format='%(refname)' | tr '\\n' ' ')",
  "echo main=$(git rev-parse main) origin-main=$(git rev-parse origin/main)",
]
"#;
    let run = repo.push_and_wait(pipeline);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let out = env.stdout(&["logs", &run.id]);
    let sha = &run.sha;
    assert!(
        out.contains("refs=refs/heads/main refs/remotes/origin/main\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("main={sha} origin-main={sha}")),
        "{out}"
    );
    // What the checkout wrote: the pushed ref, twice over, and nothing of
    // the other 5,000.
    let packed = std::fs::read_to_string(
        env.home()
            .run_dir(&run.id)
            .unwrap()
            .join("workspace/.git/packed-refs"),
    )
    .unwrap();
    assert_eq!(packed.lines().count(), 3, "{packed}");

    // Asked for, every branch and tag is named.
    let all = format!("[workspace]\nrefs = \"all\"\n\n{pipeline}");
    repo.commit(&[("README.md", "again\n")], "second");
    let run = repo.push_and_wait(&all);
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    let packed = std::fs::read_to_string(
        env.home()
            .run_dir(&run.id)
            .unwrap()
            .join("workspace/.git/packed-refs"),
    )
    .unwrap();
    assert!(packed.lines().count() > 5000, "{}", packed.lines().count());
}

/// A small tree is written in process (gix), a tree with a blob over
/// 4 MiB by `git read-tree`, which streams it: both give the same
/// workspace, file modes, symlinks and `.gitattributes` conversions
/// included, and a clean status.
#[test]
fn a_small_tree_and_one_with_a_large_blob_check_out_alike() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    repo.commit(
        &[
            (".gitattributes", "*.bat text eol=crlf\n"),
            ("run.bat", "echo one\necho two\n"),
            ("src/deep/lib.rs", "pub fn f() {}\n"),
            ("tool.sh", "#!/bin/sh\necho tool\n"),
        ],
        "files",
    );
    git(&repo.work, &["update-index", "--chmod=+x", "tool.sh"]);
    std::os::unix::fs::symlink("src/deep/lib.rs", repo.work.join("link")).unwrap();
    git(&repo.work, &["add", "link"]);
    git(&repo.work, &["commit", "--quiet", "-m", "mode and link"]);
    let pipeline = r#"[jobs.look]
inputs = ["quire/push"]
sh = [
  "find . -path ./.git -prune -o ! -name big.bin -printf 'entry=%p %y %m %s %l\\n' | sort",
  "echo crlf=$(tr -cd '\\r' < run.bat | wc -c)",
  "echo status=[$(git status --porcelain)]",
]
"#;
    let small = repo.push_and_wait(pipeline);
    assert_eq!(small.state, RunState::Complete, "{small:?}");
    let big = vec![b'x'; 5 << 20];
    std::fs::write(repo.work.join("big.bin"), &big).unwrap();
    git(&repo.work, &["add", "big.bin"]);
    git(&repo.work, &["commit", "--quiet", "-m", "big"]);
    let runs = repo.push_refs(&["main"]);
    let large = env.wait_terminal(&runs[0]);
    assert_eq!(large.state, RunState::Complete, "{large:?}");
    let lines = |run: &str| -> Vec<String> {
        env.stdout(&["logs", run])
            .lines()
            .filter_map(|l| {
                ["entry=", "crlf=", "status="]
                    .iter()
                    .find_map(|k| l.find(k).map(|at| l[at..].to_string()))
            })
            .collect()
    };
    let (small, large) = (lines(&small.id), lines(&large.id));
    for want in [
        "entry=./tool.sh f 755 20 ",
        "entry=./link l 777 15 src/deep/lib.rs",
        "entry=./src/deep/lib.rs f 644 14 ",
        "crlf=2",
        "status=[]",
    ] {
        assert!(
            small.iter().any(|l| l == want),
            "{want:?} not in {small:#?}"
        );
    }
    assert_eq!(small, large, "in process against git read-tree");
}

/// Files opened directly in `dirs` while `f` ran, by any process (inotify
/// `IN_OPEN` on each directory; a directory's own listing not counted).
fn opens_in(dirs: &[std::path::PathBuf], f: impl FnOnce()) -> usize {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .expect("inotify");
    for dir in dirs {
        inotify::add_watch(&fd, dir, inotify::WatchFlags::OPEN).expect("a watch");
    }
    f();
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 1 << 16];
    let mut reader = inotify::Reader::new(&fd, &mut buf);
    let mut opened = 0;
    loop {
        match reader.next() {
            Ok(event) => {
                assert!(
                    !event.events().contains(inotify::ReadFlags::QUEUE_OVERFLOW),
                    "inotify's queue overflowed"
                );
                if event.file_name().is_some()
                    && !event.events().contains(inotify::ReadFlags::ISDIR)
                {
                    opened += 1;
                }
            }
            Err(rustix::io::Errno::AGAIN) => return opened,
            Err(e) => panic!("reading inotify: {e}"),
        }
    }
}

/// Issue 24: a run's set-up reads the ref it runs by its name, never the
/// repository's others. With 5,000 loose branches and tags, the files
/// opened in `refs/heads` and `refs/tags` while `trigger --wait` records
/// and executes a run are counted (inotify): a handful by default, every
/// one of them with `[workspace] refs = "all"`, which names them all.
#[test]
fn a_runs_set_up_opens_a_bounded_number_of_refs_whatever_the_repository_holds() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let bare = repo.bare.to_str().unwrap();
    let pipeline = r#"[jobs.t]
inputs = ["quire/push"]
sh = "true"
"#;
    repo.commit(&[(".quire/ci.toml", pipeline)], "pipeline");
    push_with_5000_other_refs(&repo);
    let refs = repo.bare.join("refs");
    let watched = [refs.join("heads"), refs.join("tags")];
    let trigger = || {
        env.run(&["trigger", "--git-dir", bare, "main", "--wait"])
            .assert()
            .success();
    };
    let by_default = opens_in(&watched, trigger);
    assert!(
        by_default <= 8,
        "{by_default} ref files opened for one run of a repository of 5,001 refs"
    );

    let all = format!("[workspace]\nrefs = \"all\"\n\n{pipeline}");
    repo.commit(&[(".quire/ci.toml", all.as_str())], "all refs");
    git(
        &repo.work,
        &["push", "--quiet", "-o", "ci.skip", "origin", "main"],
    );
    let every = opens_in(&watched, trigger);
    assert!(every >= 5_000, "refs = \"all\" opened only {every}");
}

/// The bare repository's own configuration never reaches the checkout: a
/// filter driver an admin configured there (`git lfs install --local`
/// does) and `core.autocrlf` are not applied to a pushed tree, whose
/// `.gitattributes` names the driver. Only the workspace's config, which
/// quire writes, counts (as for git read-tree, run in the workspace).
#[test]
fn the_bare_repositorys_filters_and_line_endings_never_apply_to_the_checkout() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let marker = env.path().join("SMUDGED");
    let smudge = format!("sh -c 'id > {}; cat'", marker.display());
    git(&repo.bare, &["config", "filter.x.smudge", &smudge]);
    git(&repo.bare, &["config", "core.autocrlf", "true"]);
    repo.commit(
        &[
            (".gitattributes", "f.txt filter=x\n"),
            ("f.txt", "one\ntwo\n"),
        ],
        "filtered",
    );
    let run = repo.push_and_wait(
        r#"[jobs.look]
inputs = ["quire/push"]
sh = [
  "echo crs=$(tr -cd '\\r' < f.txt | wc -c)",
  "echo status=[$(git status --porcelain)]",
]
"#,
    );
    assert_eq!(run.state, RunState::Complete, "{run:?}");
    assert!(!marker.exists(), "the bare repository's filter ran");
    let out = env.stdout(&["logs", &run.id]);
    for want in ["crs=0", "status=[]"] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
}

/// A tree whose entries are out of order (a hand-made object; git itself
/// never writes one) still gives a sorted index, as git read-tree does:
/// `git status` works in the workspace.
#[test]
fn a_tree_listed_out_of_order_gives_a_sorted_index() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    let bare = repo.bare.to_str().unwrap();
    let ci = repo.pipeline_tree(
        r#"[jobs.t]
inputs = ["quire/push"]
sh = "echo status=[$(git status --porcelain)] files=$(git ls-files | tr '\\n' ' ')"
"#,
    );
    let blob = repo.hash_object("x\n");
    let raw = |hex: &str| -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    };
    let mut tree = Vec::new();
    for (mode, name, id) in [
        ("100644", "b", &blob),
        ("100644", "a", &blob),
        ("40000", ".quire", &ci),
    ] {
        tree.extend_from_slice(format!("{mode} {name}\0").as_bytes());
        tree.extend_from_slice(&raw(id));
    }
    let out = std::process::Command::new("git")
        .args([
            "--git-dir",
            bare,
            "hash-object",
            "-t",
            "tree",
            "--literally",
            "-w",
            "--stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&tree)?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let root = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let commit = git(&repo.bare, &["commit-tree", &root, "-m", "unsorted"]);
    git(&repo.bare, &["update-ref", "refs/heads/unsorted", &commit]);
    env.run(&["trigger", "--git-dir", bare, "unsorted", "--wait"])
        .assert()
        .success();
    let run = &env.all_runs()[0];
    let log = env.stdout(&["logs", &run.id]);
    assert!(
        log.contains("status=[] files=.quire/ci.toml a b\n"),
        "{log}"
    );
}
