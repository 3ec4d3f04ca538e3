//! The completion scripts in completions/ are what the binary generates.
//! After changing the CLI: `QUIRE_BLESS=1 cargo test --test integration completions`.

use std::path::Path;

const SCRIPTS: &[(&str, &str)] = &[
    ("bash", "quire-runs.bash"),
    ("zsh", "_quire-runs"),
    ("fish", "quire-runs.fish"),
];

#[test]
fn completion_scripts_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    let bless = std::env::var_os("QUIRE_BLESS").is_some();
    for (shell, file) in SCRIPTS {
        let out = assert_cmd::Command::cargo_bin("quire-runs")
            .unwrap()
            .args(["completions", shell])
            .assert()
            .success();
        let generated = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        assert!(generated.contains("reconcile"), "{shell}: {generated}");
        let path = dir.join(file);
        if bless {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "completions/{file} is stale: run `QUIRE_BLESS=1 cargo test --test integration completions`"
        );
    }
}
