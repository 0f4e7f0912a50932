//! Expectations judge observations: each cell should answer or not, per the check's expectation.

use crate::model::{Check, CheckKind};
use crate::vocab::Observation;
pub use crate::vocab::Outcome;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// `expected[row][col]`: should this pair answer?
    pub expected: Vec<Vec<bool>>,
    /// `pair_ok[row][col]`: did the pair do what the file expects?
    pub pair_ok: Vec<Vec<bool>>,
    /// Pairs whose observation differs from the expectation.
    pub mismatches: usize,
    pub pairs: usize,
    pub outcome: Outcome,
    pub summary: String,
}

/// How unlikely a VIP must make "this replica never answered" before that counts against it:
/// a VIP picks replicas at random, so with few requests a healthy replica may go unpicked.
const NEVER_CHOSEN_CHANCE: f64 = 0.001;

/// The chance that a VIP spreading `sent` requests uniformly over `k` replicas never picks one
/// given replica.
pub fn chance_never_chosen(k: usize, sent: u32) -> f64 {
    if k == 0 {
        return 1.0;
    }
    (1.0 - 1.0 / k as f64).powi(sent as i32)
}

/// Judge a check's observation. Requests count, not pairs: a pair that must answer answers the
/// share of its requests the expectation states (default: every one), a pair that must not
/// answer answers none. For a VIP, whose requests are not addressed to one replica: every
/// request of an entry node whose replicas all must answer is answered (at the stated share), no
/// answer comes from a replica that must not answer, and — when every request must answer —
/// each replica that must answer is picked at least once unless the requests were too few for
/// that to be likely.
pub fn judge(check: &Check, obs: &Observation, unsupported: Option<&str>) -> Verdict {
    let rate = check.expect.answer_rate;
    let vip = check.kind == CheckKind::Vip;
    let mut expected = Vec::new();
    let mut pair_ok = Vec::new();
    let mut mismatches = 0;
    let mut pairs = 0;
    let mut row_short = 0;
    for (r, row) in obs.rows.iter().enumerate() {
        let exp_row: Vec<bool> = obs.cols.iter().map(|col| check.expect.should_answer(row, &col.node)).collect();
        let sent = obs.sent.get(r).copied().unwrap_or(check.requests);
        let mut ok_row = Vec::new();
        for (c, should) in exp_row.iter().enumerate() {
            let cell = &obs.cells[r][c];
            pairs += 1;
            let ok = match (should, vip) {
                (false, _) => cell.hits == 0,
                (true, false) => rate.holds(cell.hits, cell.tries),
                // Unpicked is only wrong when it was unlikely by chance, and only when every
                // request must answer: with a stated rate, lost requests are allowed, and a
                // replica whose requests were all lost is one way to lose them.
                (true, true) => !rate.is_all() || cell.hits > 0 || chance_never_chosen(obs.cols.len(), sent) >= NEVER_CHOSEN_CHANCE,
            };
            if !ok {
                mismatches += 1;
            }
            ok_row.push(ok);
        }
        pair_ok.push(ok_row);
        if vip && exp_row.iter().all(|x| *x) && !exp_row.is_empty() {
            let answered: u32 = obs.cells[r].iter().map(|c| c.hits).sum();
            if !rate.holds(answered, sent) {
                row_short += 1;
            }
        } else if vip && exp_row.iter().any(|x| *x) {
            // Some replicas must answer, some must not: the lost requests are allowed, but not
            // that the answering replicas together got none, unless the VIP sending every
            // request elsewhere was likely (whatever the stated rate: everything lost is not a
            // partial loss).
            let ok_hits: u32 = exp_row.iter().zip(&obs.cells[r]).filter(|(e, _)| **e).map(|(_, c)| c.hits).sum();
            let silent_share = exp_row.iter().filter(|e| !**e).count() as f64 / exp_row.len() as f64;
            if ok_hits == 0 && silent_share.powi(sent as i32) < NEVER_CHOSEN_CHANCE {
                row_short += 1;
            }
        }
        expected.push(exp_row);
    }
    // DNS answers listing addresses of no replica are wrong whatever the expectation.
    let stray = if check.kind == CheckKind::Dns { obs.unanswered.iter().sum::<u32>() as usize } else { 0 };
    let (sent, answered) = obs.totals();
    let empty = obs.cols.is_empty();
    let outcome = if unsupported.is_some() {
        Outcome::Unsupported
    } else if empty && !obs.rows.is_empty() && check.kind != CheckKind::NodePort {
        // Nothing to probe: a service with no running replica cannot be judged as reachable.
        Outcome::Fail
    } else if mismatches == 0 && stray == 0 && row_short == 0 {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    let mut summary = format!("{answered}/{sent} requests answered, {}/{pairs} pairs as expected", pairs - mismatches);
    if !rate.is_all() {
        summary.push_str(&format!(" (answer rate {})", rate.text()));
    }
    if row_short > 0 {
        summary.push_str(&format!(", {row_short} entry nodes lost VIP requests"));
    }
    if stray > 0 {
        summary.push_str(&format!(", {stray} stray DNS answers"));
    }
    if empty {
        summary = "no running replica to probe".into();
    }
    if let Some(why) = unsupported {
        summary = format!("unsupported: {why}; observed {answered}/{sent} requests answered");
    }
    Verdict { expected, pair_ok, mismatches, pairs, outcome, summary }
}

/// `faults-hit`: a fault the check names must have matched packets while it ran (its counters
/// grew from `before` to `after`), or the check proved nothing about it. A pass without that
/// proof fails, and says why; a failed or unsupported check stays as it is.
pub fn fault_hit(outcome: Outcome, fault: &str, before: u64, after: u64) -> Option<(Outcome, String)> {
    (after <= before && outcome == Outcome::Pass).then(|| (Outcome::Fail, format!("fault {fault} matched no packet during the check")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AnswerRate, CheckKind, Expectation};
    use crate::probe::{Cell, Observation, Target};

    fn check(kind: CheckKind, unreachable_on: &[&str]) -> Check {
        Check {
            name: "c".into(),
            kind,
            service: "web".into(),
            from: vec!["m".into(), "w2".into()],
            via: vec![],
            port: None,
            requests: 10,
            timeout: std::time::Duration::from_secs(1),
            expect: if unreachable_on.is_empty() { Expectation::default() } else { Expectation::one(unreachable_on, None) },
            client: Default::default(),
            faults_hit: vec![],
            path: "/".into(),
            within: None,
            protocol: Default::default(),
            status: None,
            body: None,
        }
    }

    /// Rows m, w2; replicas on m, w1, w2, each pair sent 10 requests; `dead` lists the target
    /// nodes that answered none.
    fn obs(dead: &[&str]) -> Observation {
        rated(&[("w1", 10), ("m", 10), ("w2", 10)].iter().map(|(n, h)| (*n, if dead.contains(n) { 0 } else { *h })).collect::<Vec<_>>())
    }

    /// Like `obs`, with the answered count (of 10) per target node: (node, answered).
    fn rated(answers: &[(&str, u32)]) -> Observation {
        let cols: Vec<Target> = ["m", "w1", "w2"].iter().map(|n| Target { label: format!("web@{n}"), node: n.to_string() }).collect();
        let row: Vec<Cell> = cols
            .iter()
            .map(|c| {
                let hits = answers.iter().find(|(n, _)| *n == c.node).map(|x| x.1).unwrap_or(10);
                Cell { hits, tries: 10, ..Default::default() }
            })
            .collect();
        Observation {
            rows: vec!["m".into(), "w2".into()],
            cells: vec![row.clone(), row],
            cols,
            unanswered: vec![0, 0],
            sent: vec![30, 30],
            notes: vec![],
        }
    }

    /// A VIP observation: one row, `sent` requests, answers per replica node (m, w1), the rest lost.
    fn vip(sent: u32, m: u32, w1: u32) -> Observation {
        let cols: Vec<Target> = ["m", "w1"].iter().map(|n| Target { label: format!("web@{n}"), node: n.to_string() }).collect();
        let cells = vec![vec![Cell { hits: m, tries: sent, ..Default::default() }, Cell { hits: w1, tries: sent, ..Default::default() }]];
        Observation { rows: vec!["m".into()], cols, cells, unanswered: vec![sent - m - w1], sent: vec![sent], notes: vec![] }
    }

    fn with_rate(mut c: Check, rate: &str) -> Check {
        c.expect.answer_rate = AnswerRate::parse(rate).unwrap();
        c
    }

    #[test]
    fn a_pair_that_answered_some_requests_did_not_answer() {
        // 7 of 10: the seed's "every other request hangs" must not pass by default.
        let v = judge(&check(CheckKind::Replicas, &[]), &rated(&[("w1", 7)]), None);
        assert_eq!((v.outcome, v.mismatches), (Outcome::Fail, 2));
        assert!(v.summary.starts_with("54/60 requests answered"), "{}", v.summary);
        // ...and passes when the file states that tolerance, but not below it.
        assert_eq!(judge(&with_rate(check(CheckKind::Replicas, &[]), ">= 0.7"), &rated(&[("w1", 7)]), None).outcome, Outcome::Pass);
        assert_eq!(judge(&with_rate(check(CheckKind::Replicas, &[]), ">= 0.8"), &rated(&[("w1", 7)]), None).outcome, Outcome::Fail);
        // A pair that must not answer may not answer even one request.
        let c = with_rate(check(CheckKind::Replicas, &["w1"]), ">= 0.5");
        assert_eq!(judge(&c, &rated(&[("w1", 1)]), None).outcome, Outcome::Fail);
        assert_eq!(judge(&c, &rated(&[("w1", 0)]), None).outcome, Outcome::Pass);
    }

    #[test]
    fn a_range_of_rates_fails_above_it_too() {
        let c = with_rate(check(CheckKind::NodePort, &[]), "0.2..0.8");
        assert_eq!(judge(&c, &rated(&[("m", 5), ("w1", 5), ("w2", 5)]), None).outcome, Outcome::Pass);
        // The fault did nothing: everything answered, which is not the partial loss stated.
        assert_eq!(judge(&c, &rated(&[]), None).outcome, Outcome::Fail);
        assert_eq!(judge(&c, &rated(&[("m", 1), ("w1", 5), ("w2", 5)]), None).outcome, Outcome::Fail);
    }

    #[test]
    fn vip_counts_every_request_of_the_entry_node() {
        let c = check(CheckKind::Vip, &[]);
        assert_eq!(judge(&c, &vip(10, 5, 5), None).outcome, Outcome::Pass);
        // 60 % VXLAN loss: 3 of 10 hung although both replicas answered some.
        let v = judge(&c, &vip(10, 5, 2), None);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.summary.contains("7/10 requests answered"), "{}", v.summary);
        assert_eq!(judge(&with_rate(c.clone(), ">= 0.5"), &vip(10, 5, 2), None).outcome, Outcome::Pass);
        // With a stated rate, a replica whose every request was lost is one way to lose them...
        assert_eq!(judge(&with_rate(c.clone(), ">= 0.5"), &vip(10, 6, 0), None).outcome, Outcome::Pass);
        // ...but the row's share still holds.
        assert_eq!(judge(&with_rate(c.clone(), ">= 0.5"), &vip(10, 4, 0), None).outcome, Outcome::Fail);
        // Never picked in 10 requests over 2 replicas (chance 1/1024): the replica is not reachable.
        assert_eq!(judge(&c, &vip(10, 10, 0), None).outcome, Outcome::Fail);
        // In 4 requests that happens by chance (1/16): not held against it.
        assert_eq!(judge(&c, &vip(4, 4, 0), None).outcome, Outcome::Pass);
    }

    /// Three replicas, one must not answer, 10 requests: every request lost must fail even though
    /// each answering replica alone could have gone unpicked by chance (1.7 %), and even with a
    /// stated rate; all 10 going to the silent one has a chance of 1 in 59,000.
    #[test]
    fn vip_losing_everything_is_not_the_partial_loss_expected() {
        let cols: Vec<Target> = ["m", "w1", "w2"].iter().map(|n| Target { label: format!("web@{n}"), node: n.to_string() }).collect();
        let o = |m: u32, w2: u32| Observation {
            rows: vec!["m".into()],
            cells: vec![vec![
                Cell { hits: m, tries: 10, ..Default::default() },
                Cell { hits: 0, tries: 10, ..Default::default() },
                Cell { hits: w2, tries: 10, ..Default::default() },
            ]],
            cols: cols.clone(),
            unanswered: vec![10 - m - w2],
            sent: vec![10],
            notes: vec![],
        };
        let c = check(CheckKind::Vip, &["w1"]);
        let c = Check { requests: 10, ..c };
        assert_eq!(judge(&c, &o(0, 0), None).outcome, Outcome::Fail);
        assert_eq!(judge(&with_rate(c.clone(), ">= 0.1"), &o(0, 0), None).outcome, Outcome::Fail);
        assert_eq!(judge(&c, &o(2, 2), None).outcome, Outcome::Pass);
        assert_eq!(judge(&c, &o(0, 3), None).outcome, Outcome::Pass, "one of two unpicked in 10 is plausible (1.7 %)");
    }

    #[test]
    fn vip_with_an_unreachable_replica_allows_lost_requests_but_no_answer_from_it() {
        let c = check(CheckKind::Vip, &["w1"]);
        assert_eq!(judge(&c, &vip(10, 5, 0), None).outcome, Outcome::Pass);
        assert_eq!(judge(&c, &vip(10, 5, 1), None).outcome, Outcome::Fail);
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
        o.sent = vec![0, 0];
        o.cells = vec![vec![], vec![]];
        assert_eq!(judge(&check(CheckKind::Replicas, &[]), &o, None).outcome, Outcome::Fail);
    }

    #[test]
    fn stray_dns_answers_fail() {
        let mut o = obs(&[]);
        o.unanswered = vec![1, 0];
        assert_eq!(judge(&check(CheckKind::Dns, &[]), &o, None).outcome, Outcome::Fail);
    }

    #[test]
    fn a_named_fault_that_matched_nothing_turns_a_pass_into_a_fail() {
        assert_eq!(fault_hit(Outcome::Pass, "f", 10, 15), None);
        let (o, why) = fault_hit(Outcome::Pass, "f", 10, 10).unwrap();
        assert_eq!((o, why.as_str()), (Outcome::Fail, "fault f matched no packet during the check"));
        assert_eq!(fault_hit(Outcome::Unsupported, "f", 10, 10), None);
        assert_eq!(fault_hit(Outcome::Fail, "f", 0, 0), None);
    }
}
