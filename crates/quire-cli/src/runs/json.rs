//! `--json [FIELDS]` and `--jq EXPR` as the commands take them; the JSON
//! objects themselves are quire-view's.

use std::process::ExitCode;

pub use quire_view::json::*;
use serde::Serialize;

use crate::runs::cli::JsonArgs;

/// What `--json [FIELDS]` and `--jq EXPR` ask of a command, printed:
/// `value` (an object, or an array of objects, whose fields are `valid`)
/// whole or with only the fields named, as JSON or through the jq program.
/// An unknown field, or a program that does not compile, is a usage error
/// (exit 2).
pub fn output(value: &impl Serialize, args: &JsonArgs, valid: &[&'static str]) -> ExitCode {
    let fields = match Fields::parse(args.json.as_deref().unwrap_or(""), valid) {
        Ok(fields) => fields,
        Err(message) => return usage_error(&message),
    };
    let Some(program) = &args.jq else {
        return print_fields(value, &fields);
    };
    match text(value, &fields, false) {
        Ok(json) => crate::runs::jq::print(program, &json),
        Err(e) => {
            eprintln!("quire-runs: error: cannot encode JSON: {e}");
            ExitCode::from(1)
        }
    }
}

/// A flag's value the command cannot use: `quire-runs: error: MESSAGE`,
/// exit 2.
pub fn usage_error(message: &str) -> ExitCode {
    eprintln!("quire-runs: error: {message}");
    ExitCode::from(2)
}
