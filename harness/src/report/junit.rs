//! JUnit XML: one test case per check. Unsupported checks are `skipped` with their reason —
//! a CI dashboard shows them, and never as passed.

use super::terminal::matrix_text;
use super::RunReport;
use crate::expect::Outcome;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn junit_xml(reports: &[RunReport]) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for r in reports {
        let count = |o: Outcome| r.checks.iter().filter(|c| c.outcome == o).count();
        let mut errors = count(Outcome::Error);
        if r.summary.error.is_some() {
            errors += 1;
        }
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
            esc(&r.scenario),
            r.checks.len() + usize::from(r.summary.error.is_some()),
            count(Outcome::Fail),
            errors,
            count(Outcome::Unsupported),
            r.summary.secs
        ));
        for c in &r.checks {
            x.push_str(&format!("    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">", esc(&r.scenario), esc(&c.name), c.secs));
            let body = esc(&[matrix_text(c), c.faults.clone(), c.observation.notes.clone()].concat().join("\n"));
            match c.outcome {
                Outcome::Pass => {}
                Outcome::Fail => x.push_str(&format!("\n      <failure message=\"{}\">{body}</failure>\n    ", esc(&c.summary))),
                Outcome::Unsupported => x.push_str(&format!("\n      <skipped message=\"{}\"/>\n    ", esc(&c.summary))),
                Outcome::Error => {
                    x.push_str(&format!("\n      <error message=\"{}\"/>\n    ", esc(c.reason.as_deref().unwrap_or("error"))))
                }
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
