//! End-to-end tests: the real binaries against real SQLite files and real
//! bare git repositories.

mod cdp;

mod artifacts;
mod caches;
mod checkout;
mod completions;
mod contain;
mod errors;
mod fair;
mod git_env;
mod ingest;
mod install;
mod limits;
mod logs_packed;
mod migrate;
mod network;
mod notify;
mod people;
mod pipeline_cli;
mod push;
mod push_wait;
mod race;
mod refglobs;
mod reliability;
mod repos;
mod resources;
mod runs_cli;
mod runs_control;
mod runs_json;
mod sandbox;
mod select;
mod slurm;
mod slurm_cluster;
mod snapshots_test;
mod stable;
mod steps;
mod store_errors;
mod terminal;
mod trigger;
mod upstream_pipeline;
mod watch;
mod web;
mod web_pages;
mod workers;
