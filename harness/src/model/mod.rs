//! Scenario model: parse a YAML file strictly, resolve defaults and `count`, check every
//! cross-reference, and collect all problems with file:line:col. No Docker, no async here.

pub mod diag;
pub mod file;
mod resolve;
pub mod spanned;
pub mod stream;
pub mod syntax;

pub use diag::{Problem, Problems};
pub use file::{
    Backend, BenchKind, CheckKind, CheckProtocol, ClientKind, Direction, Distribution, EndpointMode, FaultKind, InstallStage, PathKind,
    Protocol, Role, ServiceType, StackKind, StreamTo,
};
pub use resolve::*;
pub use stream::{Bound, Measure, Phase, Stream, StreamGate};

use std::path::Path;

/// Parse and validate scenario text; `file` only names the source in messages.
pub fn parse_str(text: &str, file: &str) -> Result<Scenario, Problems> {
    let mut problems = Problems::new(file);
    let raw: file::ScenarioFile = match serde_saphyr::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let pos = e.location().map(|l| spanned::Pos { line: l.line() as u32, col: l.column() as u32 }).unwrap_or_default();
            problems.at(pos, parse_message(&e), parse_hint(&e.to_string()));
            return Err(problems);
        }
    };
    resolve::resolve(raw, &mut problems).ok_or(problems)
}

/// Read, parse and validate a scenario file.
pub fn load(path: &Path) -> Result<Scenario, Problems> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut s = parse_str(&text, &name)?;
            s.source = name;
            Ok(s)
        }
        Err(e) => {
            let mut p = Problems::new(&name);
            p.at(spanned::Pos::default(), format!("cannot read the scenario file: {e}"), None);
            Err(p)
        }
    }
}

/// The parser's message without its own rendering of the location and source snippet.
fn parse_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid YAML").trim();
    let first = first.trim_start_matches("error: ");
    // serde-saphyr prefixes "line L column C: "; the position is reported separately.
    let msg = match first.find(": ") {
        Some(i) if first[..i].starts_with("line ") => &first[i + 2..],
        _ => first,
    };
    // ...and may end with " at line L, column C." for the same reason.
    let msg = match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains("column") => &msg[..i],
        _ => msg,
    };
    msg.to_string()
}

fn parse_hint(msg: &str) -> Option<String> {
    if msg.contains("unknown field") {
        Some("see `clusterlab schema` for the fields each section accepts".into())
    } else if msg.contains("invalid u32") || msg.contains("invalid u16") {
        Some("write a whole number here".into())
    } else if msg.contains("unknown variant") {
        Some("the value must be one of the names listed above".into())
    } else {
        None
    }
}

/// The JSON Schema of the scenario format, generated from the same types the parser uses.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(file::ScenarioFile)).expect("schema serializes")
}

#[cfg(test)]
mod tests;
