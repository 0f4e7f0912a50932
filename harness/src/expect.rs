//! Expectations judge observations: each cell should answer or not, per the check's expectation.

use crate::model::{Check, CheckKind};
use crate::probe::Observation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The host lacks what the check needs; observed, shown, never counted as a pass.
    Unsupported,
    /// The check could not run.
    Error,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// expected[row][col]: should this pair answer?
    pub expected: Vec<Vec<bool>>,
    /// Pairs whose observation differs from the expectation.
    pub mismatches: usize,
    pub pairs: usize,
    pub outcome: Outcome,
    pub summary: String,
}

pub fn judge(check: &Check, obs: &Observation, unsupported: Option<&str>) -> Verdict {
    let mut expected = Vec::new();
    let mut mismatches = 0;
    let mut pairs = 0;
    for (r, row) in obs.rows.iter().enumerate() {
        let mut exp_row = Vec::new();
        for (c, col) in obs.cols.iter().enumerate() {
            let should = check.expect.should_answer(row, &col.node);
            let did = obs.cells[r][c].hits > 0;
            pairs += 1;
            if should != did {
                mismatches += 1;
            }
            exp_row.push(should);
        }
        expected.push(exp_row);
    }
    // DNS answers listing addresses of no replica are wrong whatever the expectation.
    let stray = if check.kind == CheckKind::Dns { obs.unanswered.iter().sum::<u32>() as usize } else { 0 };
    let answered = obs.cells.iter().flatten().filter(|c| c.hits > 0).count();
    let empty = obs.cols.is_empty();
    let outcome = if unsupported.is_some() {
        Outcome::Unsupported
    } else if empty && !obs.rows.is_empty() && check.kind != CheckKind::NodePort {
        // Nothing to probe: a service with no running replica cannot be judged as reachable.
        Outcome::Fail
    } else if mismatches == 0 && stray == 0 {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    let mut summary = format!("{answered}/{pairs} pairs answered, {} as expected", pairs - mismatches);
    if stray > 0 {
        summary.push_str(&format!(", {stray} stray DNS answers"));
    }
    if empty {
        summary = "no running replica to probe".into();
    }
    if let Some(why) = unsupported {
        summary = format!("unsupported: {why}; observed {answered}/{pairs} pairs answering");
    }
    Verdict { expected, mismatches, pairs, outcome, summary }
}
