//! `--json [FIELDS]` and `--jq EXPR` as the commands take them; the JSON
//! objects themselves are quire-view's.

use std::process::ExitCode;

pub use quire_view::json::*;
use serde::Serialize;

use crate::error::{CommandError, Kind, Result, output};
use crate::runs::cli::JsonArgs;

/// What `--json [FIELDS]` and `--jq EXPR` ask of a command, printed:
/// `value` (an object, or an array of objects, whose fields are `valid`)
/// whole or with only the fields named, as JSON or through the jq program.
/// An unknown field, or a program that does not compile, is a usage error
/// (exit 2).
pub fn output(value: &impl Serialize, args: &JsonArgs, valid: &[&'static str]) -> Result<ExitCode> {
    let fields =
        Fields::parse(args.json.as_deref().unwrap_or(""), valid).map_err(CommandError::usage)?;
    let Some(program) = &args.jq else {
        return print_fields(value, &fields);
    };
    let json = text(value, &fields, false).map_err(encode_error)?;
    crate::runs::jq::print(program, &json)
}

/// Print `value` as `--json` asks (every field, or those named), pretty.
pub fn print_fields(value: &impl Serialize, fields: &Fields) -> Result<ExitCode> {
    let json = text(value, fields, true).map_err(encode_error)?;
    output::emit(&format!("{json}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Print `value` as pretty JSON on stdout.
pub fn print(value: &impl Serialize) -> Result<ExitCode> {
    output::emit(&whole_text(value).map_err(encode_error)?)?;
    Ok(ExitCode::SUCCESS)
}

fn encode_error(e: serde_json::Error) -> CommandError {
    CommandError::new(Kind::Output, format!("cannot encode JSON: {e}"))
}
