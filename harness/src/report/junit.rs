//! JUnit XML: one test case per check, per bench and per stream gate. Unsupported ones are `skipped` with their
//! reason — a CI dashboard shows them, and never as passed.

use super::terminal::matrix_text;
use super::{esc, RunReport};
use crate::expect::Outcome;

/// One test case: (name, outcome, summary, body, seconds, error reason).
type Case = (String, Outcome, String, String, f64, Option<String>);

fn cases(r: &RunReport) -> Vec<Case> {
    let mut v: Vec<Case> = r
        .checks
        .iter()
        .map(|c| {
            let body = [matrix_text(c), c.faults.clone(), c.diagnosis.clone(), c.observation.notes.clone()].concat().join("\n");
            (c.name.clone(), c.outcome, c.summary.clone(), body, c.secs, c.reason.clone())
        })
        .collect();
    v.extend(r.benches.iter().map(|b| {
        let body = [crate::bench::table_text(b), b.faults.clone()].concat().join("\n");
        (format!("bench {}", b.name), b.outcome, b.summary.clone(), body, b.secs, Some(b.summary.clone()))
    }));
    // A stream: one case per gate (each phase it covers is a line of the same case), or one
    // case when it has no gate. A stream that is unsupported or could not be read is so in
    // every case: a gate is never passed on figures that are not there.
    for s in &r.streams {
        let body = super::terminal::stream_text(s).join("\n");
        let secs = s.figures.duration_ms / 1000.0;
        let mut gates: Vec<(String, bool, Vec<String>)> = Vec::new();
        for g in &s.figures.gates {
            match gates.iter_mut().find(|x| x.0 == g.gate) {
                Some(x) => {
                    x.1 &= g.ok;
                    x.2.push(g.measured.clone());
                }
                None => gates.push((g.gate.clone(), g.ok, vec![g.measured.clone()])),
            }
        }
        if gates.is_empty() || s.outcome != Outcome::Pass && s.outcome != Outcome::Fail {
            v.push((format!("stream {}", s.name), s.outcome, s.summary.clone(), body, secs, s.error.clone()));
            continue;
        }
        for (gate, ok, measured) in gates {
            let o = if ok { Outcome::Pass } else { Outcome::Fail };
            v.push((format!("stream {}: {gate}", s.name), o, measured.join("; "), body.clone(), secs, None));
        }
    }
    v
}

pub fn junit_xml(reports: &[RunReport]) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for r in reports {
        let cases = cases(r);
        let count = |o: Outcome| cases.iter().filter(|c| c.1 == o).count();
        let mut errors = count(Outcome::Error);
        if r.summary.error.is_some() {
            errors += 1;
        }
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
            esc(&r.scenario),
            cases.len() + usize::from(r.summary.error.is_some()),
            count(Outcome::Fail),
            errors,
            count(Outcome::Unsupported),
            r.summary.secs
        ));
        for (name, outcome, summary, body, secs, reason) in &cases {
            x.push_str(&format!("    <testcase classname=\"{}\" name=\"{}\" time=\"{secs:.3}\">", esc(&r.scenario), esc(name)));
            let body = esc(body);
            match outcome {
                Outcome::Pass => {}
                Outcome::Fail => x.push_str(&format!("\n      <failure message=\"{}\">{body}</failure>\n    ", esc(summary))),
                Outcome::Unsupported => x.push_str(&format!("\n      <skipped message=\"{}\"/>\n    ", esc(summary))),
                Outcome::Error => x.push_str(&format!("\n      <error message=\"{}\"/>\n    ", esc(reason.as_deref().unwrap_or("error")))),
            }
            x.push_str("</testcase>\n");
        }
        if let Some(e) = &r.summary.error {
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"lab\"><error message=\"{}\"/></testcase>\n",
                esc(&r.scenario),
                esc(e)
            ));
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}
