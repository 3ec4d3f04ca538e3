//! The generated files in completions/ and docs/man/ are what the binaries'
//! clap definitions generate today. After changing the CLI:
//! `QUIRE_BLESS=1 cargo test --test integration generated`.

use std::path::Path;

use clap_complete::Shell;

fn check(path: &Path, generated: &[u8]) {
    if std::env::var_os("QUIRE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, generated).unwrap();
        return;
    }
    let committed = std::fs::read(path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run `QUIRE_BLESS=1 cargo test --test integration generated`",
        path.display()
    );
}

#[test]
fn generated_completions_and_man_pages_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, command) in [
        ("quire-run", quire_cli::run::command()),
        ("quire-runs", quire_cli::runs::command()),
    ] {
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command.clone(), name, &mut script);
            check(&root.join("completions").join(file), &script);
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .render(&mut page)
            .unwrap();
        check(&root.join("docs/man").join(format!("{name}.1")), &page);
    }
}

#[test]
fn quire_runs_prints_the_committed_completions_and_man_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shell, file) in [
        ("bash", "quire-runs.bash"),
        ("zsh", "_quire-runs"),
        ("fish", "quire-runs.fish"),
    ] {
        let out = assert_cmd::Command::cargo_bin("quire-runs")
            .unwrap()
            .args(["completions", shell])
            .assert()
            .success();
        let printed = out.get_output().stdout.clone();
        assert!(String::from_utf8_lossy(&printed).contains("reconcile"));
        if std::env::var_os("QUIRE_BLESS").is_none() {
            assert_eq!(
                printed,
                std::fs::read(root.join("completions").join(file)).unwrap(),
                "{shell}"
            );
        }
    }
    let out = assert_cmd::Command::cargo_bin("quire-runs")
        .unwrap()
        .arg("man")
        .assert()
        .success();
    let page = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH quire-runs"),
        "{page}"
    );
}
