//! quire's benchmarks (docs/PERFORMANCE.md). Each figure is measured against
//! a baseline taken in the same run, on the same machine, and reported as a
//! ratio or a difference with its median and spread.
//!
//! `cargo run --release -p quire-bench -- [all|hook|steps|slurm|contain|sandbox|queries|web|upgrade|ingest|memory|concurrent|burst|checkout|jobs|workers|disk|limits|notes|cargo|cargo-stable] [--quick]`

mod cluster;
mod disk;
mod harness;
mod limits;
mod parallel;
mod scenarios;
mod stable;
mod web;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let which: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = which.is_empty() || which.contains(&"all");
    let want = |name: &str| all || which.contains(&name);
    let bins = harness::Bins::build();
    println!("# quire benchmarks ({})", harness::machine());
    println!();
    println!("| figure | baseline | measured | budget |");
    println!("| --- | --- | --- | --- |");
    if want("hook") {
        scenarios::hook(&bins, quick);
        scenarios::pre_receive(&bins, quick);
    }
    if want("steps") {
        scenarios::steps(&bins, quick);
    }
    if want("contain") {
        scenarios::contain(&bins, quick);
    }
    if want("sandbox") {
        scenarios::sandbox(&bins, quick);
    }
    if want("pidns") {
        scenarios::pidns(&bins, quick);
    }
    if want("network") {
        scenarios::network(&bins, quick);
    }
    if want("ingest") {
        scenarios::ingest(quick);
    }
    if want("upgrade") {
        scenarios::upgrade(quick);
    }
    if want("memory") {
        scenarios::memory(&bins, quick);
    }
    if want("concurrent") {
        scenarios::concurrent(&bins, quick);
    }
    if want("jobs") {
        parallel::jobs(&bins, quick);
    }
    if want("workers") {
        parallel::workers(&bins, quick);
    }
    if want("runs") {
        parallel::runs(&bins, quick);
    }
    if want("slurm") {
        cluster::slurm(&bins, quick);
    }
    if want("limits") {
        limits::validation(quick);
        limits::hook_large_file(&bins, quick);
    }
    if want("notes") {
        limits::notes_over_a_huge_note(&bins, quick);
    }
    // Not in `all`: it downloads a crate and compiles it three times.
    if which.contains(&"cargo") {
        parallel::cargo_cache(&bins, quick);
    }
    // Not in `all` either: it vendors crates and compiles them often.
    if which.contains(&"cargo-stable") {
        stable::cargo_stable(&bins, quick);
    }
    if want("disk") {
        disk::disk(&bins, quick);
    }
    if want("burst") {
        scenarios::burst(&bins, quick);
    }
    if want("checkout") {
        scenarios::checkout(&bins, quick);
    }
    if want("queries") {
        scenarios::queries(&bins, quick);
    }
    if want("web") {
        web::web(&bins, quick);
    }
}
