//! How runs are shown to people and scripts, alike by every command, the
//! web view and the notifiers: text forms of times, sizes, refs and
//! commands ([`text`]), the JSON objects and their fields ([`json`]),
//! words for failure kinds and containment ([`describe`]), following a
//! run's jobs as they start and end ([`follow`]), and the runs a `--repo`,
//! `--ref` or `--branch` picks ([`select`]). Reads the store, never writes
//! it.

pub mod describe;
pub mod follow;
pub mod json;
pub mod select;
pub mod text;
