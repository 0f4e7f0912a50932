//! Reports: the runner emits events; reporters turn them into terminal lines, a JSON document
//! and JUnit XML. The terminal reporter writes into any `Write`, so its output is snapshot-tested.

mod html;
mod junit;
mod terminal;

pub use html::{bench_svg, html_report, scale_page, scale_svg, stream_svg};
pub use junit::junit_xml;
pub use terminal::{stream_text, Terminal};

use crate::expect::Outcome;
use crate::probe::Observation;
use serde::{Deserialize, Serialize};

/// Version of the JSON report's shape; bumped on any incompatible change (fields are only
/// ever added within a version). `clusterlab schema report` prints its JSON Schema.
pub const REPORT_SCHEMA: &str = "clusterlab.report/v1";

/// The JSON report file: `{ "schema": "clusterlab.report/v1", "runs": [...] }`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportFile {
    /// Always `clusterlab.report/v1` for this shape.
    pub schema: String,
    pub runs: Vec<RunReport>,
}

/// The JSON Schema of the report file, generated from the types that write it.
pub fn report_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ReportFile)).expect("schema serializes")
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CheckReport {
    pub name: String,
    pub kind: String,
    pub service: String,
    pub outcome: Outcome,
    pub summary: String,
    /// Why the check is unsupported or could not run.
    pub reason: Option<String>,
    pub observation: Observation,
    /// `expected[row][col]`: should the pair answer?
    pub expected: Vec<Vec<bool>>,
    /// `pair_ok[row][col]`: did the pair do what the file expects (at the stated answer rate)?
    #[serde(default)]
    pub pair_ok: Vec<Vec<bool>>,
    /// Counters of the faults applied while the check ran.
    pub faults: Vec<String>,
    /// One cause line per group of pairs that did not answer or answered against the file.
    #[serde(default)]
    pub diagnosis: Vec<String>,
    /// Where this check's evidence was written (failed checks), while its faults were applied.
    #[serde(default)]
    pub evidence: Option<String>,
    pub secs: f64,
    /// How many times it was observed (more than once only with `within`).
    #[serde(default)]
    pub attempts: u32,
    /// With `within`: seconds until the expectation held.
    #[serde(default)]
    pub held_after_secs: Option<f64>,
}

impl CheckReport {
    /// A check's report before anything is known: an error until an observation is judged.
    pub fn new(name: &str, kind: &str, service: &str) -> CheckReport {
        CheckReport {
            name: name.to_string(),
            kind: kind.to_string(),
            service: service.to_string(),
            outcome: crate::expect::Outcome::Error,
            summary: String::new(),
            reason: None,
            observation: Default::default(),
            expected: vec![],
            pair_ok: vec![],
            faults: vec![],
            diagnosis: vec![],
            evidence: None,
            secs: 0.0,
            attempts: 0,
            held_after_secs: None,
        }
    }
}

/// One matrix cell as every renderer shows it.
pub struct CellView {
    /// `ok` (every request answered), `--` (none), `7/10` (some; vip: always counted).
    pub text: String,
    /// What went wrong with the requests that failed.
    pub detail: String,
    pub expected: bool,
    /// The pair did what the file expects.
    pub ok: bool,
    pub answered: bool,
}

impl CheckReport {
    /// The cell at (row, col), judged as the check was.
    pub fn cell_view(&self, r: usize, c: usize) -> CellView {
        let cell = &self.observation.cells[r][c];
        let expected = self.expected.get(r).and_then(|e| e.get(c)).copied().unwrap_or(true);
        let answered = cell.hits > 0;
        let ok = self.pair_ok.get(r).and_then(|e| e.get(c)).copied().unwrap_or(answered == expected);
        let text = if self.kind == "vip" || (cell.hits > 0 && cell.hits < cell.tries) {
            format!("{}/{}", cell.hits, cell.tries)
        } else if answered {
            "ok".into()
        } else {
            "--".into()
        };
        let detail = if cell.hits < cell.tries && self.kind != "vip" { cell.detail.clone() } else { String::new() };
        CellView { text, detail, expected, ok, answered }
    }

    /// The pairs that did not do what the file expects: (entry node, target, its cell).
    pub fn misses(&self) -> Vec<(&str, &crate::vocab::Target, &crate::vocab::Cell)> {
        let o = &self.observation;
        let mut out = Vec::new();
        for (r, row) in self.pair_ok.iter().enumerate() {
            for (c, ok) in row.iter().enumerate() {
                if let (false, Some(from), Some(to), Some(cell)) =
                    (*ok, o.rows.get(r), o.cols.get(c), o.cells.get(r).and_then(|x| x.get(c)))
                {
                    out.push((from.as_str(), to, cell));
                }
            }
        }
        out
    }

    /// Latency over the answered requests of every pair: "min–max ms, median of pairs X ms".
    pub fn latency_line(&self) -> Option<String> {
        let l: Vec<&crate::probe::Latency> = self.observation.cells.iter().flatten().filter_map(|c| c.latency.as_ref()).collect();
        if l.is_empty() {
            return None;
        }
        let min = l.iter().map(|x| x.min_ms).fold(f64::INFINITY, f64::min);
        let max = l.iter().map(|x| x.max_ms).fold(0.0, f64::max);
        let med = crate::probe::Latency::of(l.iter().map(|x| x.median_ms).collect()).map(|x| x.median_ms).unwrap_or(0.0);
        Some(format!("latency of answered requests: {min:.1}–{max:.1} ms, median of pairs {med:.1} ms"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct StepRecord {
    pub title: String,
    pub ok: bool,
    pub secs: f64,
    pub detail: Vec<String>,
    /// Long steps (loading images, installing the stack): each phase as it ended, seconds
    /// after the step began — also when the step failed, up to where it got.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseMark>,
}

impl StepRecord {
    /// A step that has no phases of its own.
    pub fn new(title: &str, ok: bool, secs: f64, detail: Vec<String>) -> StepRecord {
        StepRecord { title: title.to_string(), ok, secs, detail, phases: vec![] }
    }
}

/// A phase of a step and when it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PhaseMark {
    pub what: String,
    pub at_secs: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Event {
    RunStart {
        scenario: String,
        file: String,
        lab: String,
        run_id: String,
    },
    StepStart {
        title: String,
    },
    StepEnd(StepRecord),
    Check(Box<CheckReport>),
    Bench(Box<crate::bench::BenchReport>),
    /// A stream stopped and judged.
    Stream(Box<crate::stream::StreamReport>),
    Info(String),
    RunEnd(Summary),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub unsupported: usize,
    pub errors: usize,
    pub secs: f64,
    pub exit_code: i32,
    /// A problem that stopped the run (install failure, engine error), if any.
    pub error: Option<String>,
    /// Set when the lab was kept: how to remove it.
    pub kept: Option<String>,
    /// Directory of the run's failure bundle: the resolved scenario, the event log, and per
    /// failed check (and at the end of a failed run) logs, iptables, links, routes, stack state.
    pub evidence: Option<String>,
}

/// Text for XML and HTML: the JUnit and HTML reports quote the same way.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Summary {
    /// Count one check's or bench's outcome.
    pub fn tally(&mut self, o: Outcome) {
        match o {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail => self.failed += 1,
            Outcome::Unsupported => self.unsupported += 1,
            Outcome::Error => self.errors += 1,
        }
    }
}

pub trait Reporter: Send {
    fn event(&mut self, e: &Event);
}

/// Every event as one JSON line (`--report events=PATH`): a run that can be rendered again by
/// any reporter, e.g. the README's sample output, which a test renders and compares.
pub struct EventLog<W: std::io::Write + Send>(pub W);

impl<W: std::io::Write + Send> Reporter for EventLog<W> {
    fn event(&mut self, e: &Event) {
        if let Ok(line) = serde_json::to_string(e) {
            let _ = writeln!(self.0, "{line}");
        }
    }
}

/// Events from JSON lines (an `events=` report or a failure bundle's `events.jsonl`).
pub fn read_events(text: &str) -> Result<Vec<Event>, serde_json::Error> {
    text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect()
}

/// Everything a run reported, for the JSON and JUnit files.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunReport {
    pub schema: String,
    pub scenario: String,
    pub file: String,
    pub lab: String,
    pub run_id: String,
    pub steps: Vec<StepRecord>,
    pub checks: Vec<CheckReport>,
    #[serde(default)]
    pub benches: Vec<crate::bench::BenchReport>,
    /// Background traffic: each stream's timeline, figures and gates.
    #[serde(default)]
    pub streams: Vec<crate::stream::StreamReport>,
    pub info: Vec<String>,
    pub summary: Summary,
}

impl RunReport {
    /// A run that never reached its end (it panicked, was interrupted): the report keeps what
    /// it recorded and says how it ended, with the process's exit code.
    pub fn ended_abnormally(&mut self, scenario: &str, code: i32, why: String) {
        if self.scenario.is_empty() {
            self.scenario = scenario.to_string();
        }
        self.schema = REPORT_SCHEMA.to_string();
        self.summary.exit_code = code;
        self.summary.error = Some(why);
    }
}

impl Reporter for RunReport {
    fn event(&mut self, e: &Event) {
        self.schema = REPORT_SCHEMA.to_string();
        match e {
            Event::RunStart { scenario, file, lab, run_id } => {
                self.scenario = scenario.clone();
                self.file = file.clone();
                self.lab = lab.clone();
                self.run_id = run_id.clone();
            }
            Event::StepStart { .. } => {}
            Event::StepEnd(s) => self.steps.push(s.clone()),
            Event::Check(c) => self.checks.push((**c).clone()),
            Event::Bench(b) => self.benches.push((**b).clone()),
            Event::Stream(s) => self.streams.push((**s).clone()),
            Event::Info(s) => self.info.push(s.clone()),
            Event::RunEnd(s) => self.summary = s.clone(),
        }
    }
}

/// Fan-out to several reporters.
#[derive(Default)]
pub struct Reporters(pub Vec<Box<dyn Reporter>>);

impl Reporters {
    pub fn emit(&mut self, e: Event) {
        for r in &mut self.0 {
            r.event(&e);
        }
    }
}

/// Lets a reporter be shared with the caller (to read the collected report after the run).
impl<R: Reporter> Reporter for std::sync::Arc<std::sync::Mutex<R>> {
    fn event(&mut self, e: &Event) {
        if let Ok(mut r) = self.lock() {
            r.event(e);
        }
    }
}

#[cfg(test)]
mod tests;
