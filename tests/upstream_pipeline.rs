//! People coming from upstream quire (docs/OPERATIONS.md, "Coming from
//! upstream quire"): a push of a commit with upstream's `.quire/ci.fnl` and
//! no `.quire/ci.toml` is told so by name, through a real `git push` and
//! the installed hook; and the section's `.quire/ci.toml` examples are
//! valid pipelines, as written there.

use quire_store::RunState;

use quire_testkit::{Env, git, queued_runs};

const FENNEL: &str = r#"(job :test [:quire/push] (fn [{: sh}] (sh ["cargo" "test"])))
"#;

const SLOW: &str = "[jobs.wait]\ninputs = [\"quire/push\"]\nsh = \"sleep 300\"\n";

#[test]
fn a_push_with_only_upstreams_ci_fnl_is_told_so_by_name() {
    let env = Env::new();
    let repo = env.repo_with_hook("app");
    // A live run of main, which the ci.fnl push supersedes as any push
    // recording no run does.
    repo.commit(&[(".quire/ci.toml", SLOW)], "slow");
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    let live = queued_runs(&stderr).remove(0);

    git(&repo.work, &["rm", "--quiet", ".quire/ci.toml"]);
    let sha = repo.commit(&[(".quire/ci.fnl", FENNEL)], "upstream's pipeline");
    let before = env.all_runs().len();
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "the push is not refused: {stderr}");
    // git pads the hook's lines with spaces.
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("remote: quire:"))
        .collect();
    assert_eq!(
        lines,
        [
            format!(
                "remote: quire: no run for refs/heads/main: {} has .quire/ci.fnl, upstream \
                 quire's pipeline, which quire does not read, and no .quire/ci.toml",
                &sha[..12]
            )
            .as_str(),
            "remote: quire:   write it as .quire/ci.toml: the format is docs/PIPELINE.md, \
             upstream's idioms in it docs/OPERATIONS.md (\"Coming from upstream quire\")",
            format!("remote: quire:   the ref moved on, so its run {live} was superseded").as_str(),
        ],
        "{stderr}"
    );
    assert_eq!(env.all_runs().len(), before, "no run was recorded");
    assert_eq!(env.wait_terminal(&live).state, RunState::Superseded);

    // With neither file the message stays the plain one.
    git(&repo.work, &["rm", "--quiet", ".quire/ci.fnl"]);
    let sha = repo.commit(&[], "no CI at all");
    let (_, stderr) = repo.push(&["origin", "main"]);
    assert!(
        stderr.lines().map(str::trim_end).any(|l| l
            == format!(
                "remote: quire: no run for refs/heads/main: {} has no .quire/ci.toml",
                &sha[..12]
            )),
        "{stderr}"
    );
    assert!(!stderr.contains("ci.fnl"), "{stderr}");

    // Both files: the TOML runs, and ci.fnl is not mentioned.
    repo.commit(
        &[
            (".quire/ci.fnl", FENNEL),
            (
                ".quire/ci.toml",
                "[jobs.test]\ninputs = [\"quire/push\"]\nsh = \"true\"\n",
            ),
        ],
        "both",
    );
    let (ok, stderr) = repo.push(&["origin", "main"]);
    assert!(ok, "{stderr}");
    assert_eq!(queued_runs(&stderr).len(), 1, "{stderr}");
    assert!(!stderr.contains("ci.fnl"), "{stderr}");
}

/// The ```toml blocks of docs/OPERATIONS.md's "Coming from upstream
/// quire" section.
fn section_examples() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/OPERATIONS.md"))
        .unwrap();
    let start = doc
        .find("\n## Coming from upstream quire\n")
        .expect("the section is in OPERATIONS.md");
    let section = &doc[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    section
        .split("```toml\n")
        .skip(1)
        .map(|block| block[..block.find("```").unwrap()].to_string())
        .collect()
}

#[test]
fn the_upstream_idioms_in_toml_are_valid_pipelines_as_written() {
    let env = Env::new();
    let examples = section_examples();
    assert!(examples.len() >= 3, "{examples:?}");
    for (n, toml) in examples.iter().enumerate() {
        let file = env.path().join(format!("example-{n}.toml"));
        std::fs::write(&file, toml).unwrap();
        env.run(&["validate", file.to_str().unwrap()])
            .assert()
            .success();
    }
}
