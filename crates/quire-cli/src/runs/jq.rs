//! `--jq EXPR`: the JSON a command prints, filtered through a jq program
//! (jaq: jaq-core, jaq-std, jaq-json), each result on a line of its own,
//! strings raw (as `jq -r` and gh's `--jq` print them).

use std::io::{self, Write};
use std::process::ExitCode;

use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;

/// jq's `@tsv` and `@csv`, which jaq's standard library leaves to jaq's
/// command line: an array's values on one line, separated by tabs (strings
/// with `\\`, tab, newline and return escaped) or commas (strings quoted,
/// `"` doubled); `null` is empty, other values as `tostring` writes them.
const FORMATS: &str = r#"
def @tsv: map(if type == "string"
    then split("\\") | join("\\\\") | split("\t") | join("\\t")
       | split("\n") | join("\\n") | split("\r") | join("\\r")
    elif . == null then "" else tostring end) | join("\t");
def @csv: map(if type == "string" then "\"" + (split("\"") | join("\"\"")) + "\""
    elif . == null then "" else tostring end) | join(",");
"#;

/// A jq program compiled, ready to run on inputs.
pub struct Program {
    filter: jaq_core::Filter<data::JustLut<Val>>,
}

impl Program {
    /// Compile `code`; on failure, a message saying what and where.
    pub fn compile(code: &str) -> Result<Program, String> {
        let formats = load::parse(FORMATS, |p| p.defs()).unwrap_or_default();
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .chain(formats);
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errors| load_errors(code, &errors))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| compile_errors(code, &errors))?;
        Ok(Program { filter })
    }

    /// Run on `input` (JSON text), writing each result to `out`: strings
    /// raw, other values as compact JSON, one per line. Returns the exit
    /// status: 0; 1 after an error the program raised (reported on
    /// stderr); N for `halt_error`/`halt` with status N (0..=255).
    pub fn run(&self, input: &str, out: &mut impl Write) -> io::Result<ExitCode> {
        let input = match jaq_json::read::parse_single(input.as_bytes()) {
            Ok(input) => input,
            Err(e) => {
                eprintln!("quire-runs: error: --jq: cannot read the JSON: {e}");
                return Ok(ExitCode::from(1));
            }
        };
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        for result in self.filter.id.run((ctx, input)) {
            match result {
                Ok(Val::TStr(text) | Val::BStr(text)) => {
                    out.write_all(&text)?;
                    out.write_all(b"\n")?;
                }
                Ok(value) => writeln!(out, "{value}")?,
                Err(exception) => {
                    out.flush()?;
                    return Ok(match exception.get_err() {
                        Ok(error) => {
                            // As jq says it: a string raw, another value as JSON.
                            match error.into_val() {
                                Val::TStr(text) | Val::BStr(text) => eprintln!(
                                    "quire-runs: error: --jq: {}",
                                    String::from_utf8_lossy(&text)
                                ),
                                other => eprintln!("quire-runs: error: --jq: {other}"),
                            }
                            ExitCode::from(1)
                        }
                        Err(exception) => match exception.get_halt() {
                            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
                            Err(_) => {
                                eprintln!(
                                    "quire-runs: error: --jq: the program broke out of no label"
                                );
                                ExitCode::from(1)
                            }
                        },
                    });
                }
            }
        }
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Where `part` (a slice of `code`) begins, as `line L, column C` (1-based,
/// in characters); None when it is not a slice of `code`.
fn position(code: &str, part: &str) -> Option<String> {
    let start = (part.as_ptr() as usize).checked_sub(code.as_ptr() as usize)?;
    if start + part.len() > code.len() {
        return None;
    }
    let before = code.get(..start)?;
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Some(if line == 1 {
        format!("column {column}")
    } else {
        format!("line {line}, column {column}")
    })
}

/// What `found` is, for a message: the token, or the end.
fn found(found: &str) -> String {
    if found.is_empty() {
        "the end of the program".to_string()
    } else {
        let token: String = found.chars().take(20).collect();
        format!("{token:?}")
    }
}

fn load_errors(code: &str, errors: &load::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_, error) in errors {
        match error {
            load::Error::Io(problems) => {
                for (path, why) in problems {
                    messages.push(format!("cannot load module {path:?}: {why}"));
                }
            }
            load::Error::Lex(problems) => {
                for (expected, rest) in problems {
                    let what = match expected {
                        load::lex::Expect::Delim(open) => format!("the closing of {open:?}"),
                        other => other.as_str().to_string(),
                    };
                    let at = position(code, rest).map_or(String::new(), |p| format!(" at {p}"));
                    messages.push(format!("syntax error{at}: expected {what}"));
                }
            }
            load::Error::Parse(problems) => {
                for (expected, token) in problems {
                    let at = position(code, token).map_or(String::new(), |p| format!(" at {p}"));
                    messages.push(format!(
                        "syntax error{at}: expected {}, found {}",
                        expected.as_str(),
                        found(token)
                    ));
                }
            }
        }
    }
    format!("--jq: {}", messages.join("; "))
}

fn compile_errors(code: &str, errors: &jaq_core::compile::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_, problems) in errors {
        for (name, undefined) in problems {
            let at = position(code, name).map_or(String::new(), |p| format!(" at {p}"));
            let shown = match undefined {
                jaq_core::compile::Undefined::Filter(arity) => format!("{name}/{arity}"),
                _ => name.to_string(),
            };
            messages.push(format!("undefined {} {shown}{at}", undefined.as_str()));
        }
    }
    format!("--jq: {}", messages.join("; "))
}

/// Print `json` (the command's JSON text) through the program `code`, as
/// `--jq` asks: exit 2 when the program does not compile, 1 when it
/// raises an error, else what [`Program::run`] says. A panic inside jaq is
/// reported as an error, never shown as one.
pub fn print(code: &str, json: &str) -> crate::error::Result<ExitCode> {
    use crate::error::{CommandError, Kind};
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| match Program::compile(code) {
        Err(message) => Err(message),
        Ok(program) => Ok(program.run(json, &mut io::stdout().lock())),
    });
    std::panic::set_hook(previous);
    match outcome {
        Ok(Err(message)) => Err(CommandError::usage(message)),
        Ok(Ok(Ok(code))) => Ok(code),
        // The reader went away (`| head`).
        Ok(Ok(Err(e))) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Ok(Ok(Err(e))) => Err(CommandError::stdout(e)),
        Err(_) => Err(CommandError::new(
            Kind::Output,
            "--jq: jaq failed on this program (an internal error)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: &str, input: &str) -> (String, ExitCode) {
        let program = Program::compile(code).unwrap();
        let mut out = Vec::new();
        let status = program.run(input, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), status)
    }

    #[test]
    fn results_are_lines_with_strings_raw() {
        let input = r#"[{"id":"a","n":1,"w":{"pid":2}},{"id":"b\tc","n":2,"w":null}]"#;
        assert_eq!(
            run(".[].id", input),
            ("a\nb\tc\n".into(), ExitCode::SUCCESS)
        );
        assert_eq!(
            run(".[] | {id, w}", input).0,
            "{\"id\":\"a\",\"w\":{\"pid\":2}}\n{\"id\":\"b\\tc\",\"w\":null}\n"
        );
        assert_eq!(run("map(.n) | add", input).0, "3\n");
        assert_eq!(
            run(r#"[.[] | select(.n > 1) | .id] | join(",")"#, input).0,
            "b\tc\n"
        );
        assert_eq!(run(".[] | .id | test(\"^a\")", input).0, "true\nfalse\n");
        assert_eq!(
            run(r#"["a\tb", "back\\slash", 1, null, true] | @tsv"#, "null").0,
            "a\\tb\tback\\\\slash\t1\t\ttrue\n"
        );
        assert_eq!(
            run(r#"["say \"hi\"", 2.5, null] | @csv"#, "null").0,
            "\"say \"\"hi\"\"\",2.5,\n"
        );
    }

    #[test]
    fn errors_are_messages() {
        let message = Program::compile(".[] |").err().unwrap();
        assert_eq!(
            message,
            "--jq: syntax error at column 6: expected term, found the end of the program"
        );
        let message = Program::compile("[.id").err().unwrap();
        assert!(
            message.starts_with("--jq: syntax error at column"),
            "{message}"
        );
        let message = Program::compile(".x | nosuch(1)").err().unwrap();
        assert_eq!(message, "--jq: undefined filter nosuch/1 at column 6");
        let message = Program::compile("\"\\q\"").err().unwrap();
        assert!(message.contains("string escape"), "{message}");
        let (out, status) = run(".[] | .id", r#"[{"id":"a"},1]"#);
        assert_eq!((out.as_str(), status), ("a\n", ExitCode::from(1)));
        assert_eq!(run("halt_error(3)", "{}").1, ExitCode::from(3));
        assert_eq!(run("\"x\", halt", "{}"), ("x\n".into(), ExitCode::SUCCESS));
    }
}
