//! Problems found in a scenario file, each located by file, line and column, with a hint.

use super::spanned::Pos;
use std::fmt;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in one file; a scenario is invalid when this is not empty.
#[derive(Debug, Clone, Default)]
pub struct Problems {
    pub file: String,
    pub list: Vec<Problem>,
}

impl Problems {
    pub fn new(file: &str) -> Self {
        Problems { file: file.to_string(), list: Vec::new() }
    }
    pub fn at(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.list.push(Problem { file: self.file.clone(), line: pos.line.max(1), col: pos.col.max(1), message: message.into(), hint });
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}
