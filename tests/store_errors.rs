//! A store that cannot be used is refused with a clear error, and left alone.

use predicates::prelude::*;

use quire_testkit::{Env, populate};

#[test]
fn a_store_from_a_newer_quire_is_refused_byte_for_byte_unchanged() {
    let env = Env::new();
    populate(&mut env.store());
    let conn = rusqlite::Connection::open(env.home().db_path()).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    let before = std::fs::read(env.home().db_path()).unwrap();
    for args in [&["list"][..], &["show", "01"], &["reconcile"]] {
        env.runs(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "has schema version 99, newer than this quire knows ({})",
                quire_store::schema::LATEST
            )))
            .stderr(predicate::str::contains(
                "hint: run a quire at least as new",
            ));
    }
    assert_eq!(std::fs::read(env.home().db_path()).unwrap(), before);
}

#[test]
fn a_corrupt_store_is_refused() {
    let env = Env::new();
    env.home().ensure().unwrap();
    std::fs::write(env.home().db_path(), vec![0x5a; 8192]).unwrap();
    env.runs(&["list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is not a quire database, or it is corrupt",
        ));
    assert_eq!(
        std::fs::read(env.home().db_path()).unwrap(),
        vec![0x5a; 8192]
    );
}

#[test]
fn a_home_that_cannot_be_created_is_a_clear_error() {
    let env = Env::new();
    let file = env.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    quire_testkit::git(env.path(), &["init", "--quiet", "--bare", "app.git"]);
    let mut cmd = assert_cmd::Command::cargo_bin("quire-run").unwrap();
    cmd.arg("--home")
        .arg(&file)
        .arg("install")
        .arg(env.path().join("app.git"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot use"))
        .stderr(predicate::str::contains("as quire's home"));
}

#[test]
fn a_folder_that_is_not_a_quire_home_is_an_error_that_creates_nothing() {
    let env = Env::new();
    // A forge's repositories folder, passed by mistake.
    let srv = env.path().join("srv-git");
    std::fs::create_dir(&srv).unwrap();
    for (bin, args) in [
        ("quire-runs", &["list"][..]),
        ("quire-runs", &["reconcile"][..]),
        (
            "quire-run",
            &["trigger", "--git-dir", "/nonexistent", "main"][..],
        ),
    ] {
        let mut cmd = assert_cmd::Command::cargo_bin(bin).unwrap();
        cmd.arg("--home")
            .arg(&srv)
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "{} is not a quire home: it holds no quire.db",
                srv.display()
            )));
    }
    assert_eq!(
        std::fs::read_dir(&srv).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn the_home_comes_from_quire_home_when_no_flag_is_given() {
    let env = Env::new();
    env.store();
    let mut cmd = assert_cmd::Command::cargo_bin("quire-runs").unwrap();
    cmd.env("QUIRE_HOME", env.home().dir())
        .arg("list")
        .assert()
        .success();
    assert!(env.home().db_path().is_file());
}
