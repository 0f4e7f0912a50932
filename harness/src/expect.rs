//! Expectations judge observations: each cell should answer or not, per the check's expectation.

use crate::model::{Check, CheckKind};
use crate::probe::Observation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CheckKind, Expectation};
    use crate::probe::{Cell, Observation, Target};

    fn check(kind: CheckKind, unreachable_on: &[&str]) -> Check {
        Check {
            name: "c".into(),
            kind,
            service: "web".into(),
            from: vec!["m".into(), "w2".into()],
            via: vec![],
            port: None,
            requests: 1,
            timeout: std::time::Duration::from_secs(1),
            expect: if unreachable_on.is_empty() { Expectation::default() } else { Expectation::one(unreachable_on, None) },
            client: Default::default(),
            faults_hit: vec![],
            path: "/".into(),
        }
    }

    /// Rows m, w2; replicas on m, w1, w2; `dead` lists the target nodes that did not answer.
    fn obs(dead: &[&str]) -> Observation {
        let cols: Vec<Target> = ["m", "w1", "w2"].iter().map(|n| Target { label: format!("web@{n}"), node: n.to_string() }).collect();
        let row: Vec<Cell> =
            cols.iter().map(|c| Cell { hits: u32::from(!dead.contains(&c.node.as_str())), tries: 1, detail: String::new() }).collect();
        Observation { rows: vec!["m".into(), "w2".into()], cells: vec![row.clone(), row], cols, unanswered: vec![0, 0], notes: vec![] }
    }

    #[test]
    fn all_answer_passes_by_default_and_fails_when_one_is_lost() {
        assert_eq!(judge(&check(CheckKind::Replicas, &[]), &obs(&[]), None).outcome, Outcome::Pass);
        let v = judge(&check(CheckKind::Replicas, &[]), &obs(&["w1"]), None);
        assert_eq!((v.outcome, v.mismatches), (Outcome::Fail, 2));
    }

    #[test]
    fn expected_loss_passes_only_when_exactly_that_node_is_lost() {
        let c = check(CheckKind::Replicas, &["w1"]);
        assert_eq!(judge(&c, &obs(&["w1"]), None).outcome, Outcome::Pass);
        // The fault did nothing: everything answers, which is not what the file expects.
        assert_eq!(judge(&c, &obs(&[]), None).outcome, Outcome::Fail);
        // Wrong node lost.
        assert_eq!(judge(&c, &obs(&["w2"]), None).outcome, Outcome::Fail);
        // More lost than expected.
        assert_eq!(judge(&c, &obs(&["w1", "m"]), None).outcome, Outcome::Fail);
    }

    #[test]
    fn unsupported_is_never_a_pass() {
        let v = judge(&check(CheckKind::Vip, &[]), &obs(&[]), Some("kernel lacks IP_VS"));
        assert_eq!(v.outcome, Outcome::Unsupported);
        assert!(v.summary.contains("kernel lacks IP_VS"));
    }

    #[test]
    fn nothing_to_probe_fails() {
        let mut o = obs(&[]);
        o.cols.clear();
        o.cells = vec![vec![], vec![]];
        assert_eq!(judge(&check(CheckKind::Replicas, &[]), &o, None).outcome, Outcome::Fail);
    }

    #[test]
    fn stray_dns_answers_fail() {
        let mut o = obs(&[]);
        o.unanswered = vec![1, 0];
        assert_eq!(judge(&check(CheckKind::Dns, &[]), &o, None).outcome, Outcome::Fail);
    }
}
