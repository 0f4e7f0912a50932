//! Benches: each path to one replica measured in the same run — `node` (the underlay), `direct`
//! (the replica's overlay or pod address), `vip` (the service's virtual IP, pinned to that
//! replica), `node-port` — sample by sample in turn (A B C A B C …) so drift hits every path
//! alike, then summarised (median, min, max, coefficient of variation) and compared as ratios of
//! medians. Gates on those ratios fail the run. Measuring lives in `measure`; this is the math.

mod measure;
pub mod scale;

pub use measure::{parse_iperf, run_bench};

use crate::model::{Bench, Gate, GateDen, PathKind};
use serde::{Deserialize, Serialize};

/// One path's samples and their summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PathResult {
    pub path: String,
    /// Why this host cannot measure the path (never a number then).
    pub unsupported: Option<String>,
    /// A sample that failed (timeout, refused...), with why.
    pub errors: Vec<String>,
    /// Bits per second (throughput) or requests per second (request-rate).
    pub samples: Vec<f64>,
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Standard deviation over mean, in percent.
    pub cv_percent: Option<f64>,
    /// TCP retransmissions over all samples (throughput).
    pub retransmits: u64,
    /// This path's median over `node`'s and over `direct`'s, from the same run.
    pub vs_node: Option<f64>,
    pub vs_direct: Option<f64>,
    /// What was dialled and how (e.g. "ClusterIP 10.32.0.9:5201 of perf-pinned").
    pub how: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateResult {
    pub gate: String,
    pub ratio: Option<f64>,
    /// pass, fail, or unsupported (a path of the ratio could not be measured here).
    pub outcome: crate::expect::Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BenchReport {
    pub name: String,
    pub kind: String,
    /// `bit/s` or `req/s`.
    pub unit: String,
    pub service: String,
    pub from: String,
    /// The replica every path leads to (`perf-x@worker`).
    pub target: String,
    pub samples: u32,
    pub seconds: u32,
    pub paths: Vec<PathResult>,
    pub gates: Vec<GateResult>,
    pub outcome: crate::expect::Outcome,
    pub summary: String,
    /// Faults applied while the bench ran: their cost shows in the same table.
    pub faults: Vec<String>,
    pub secs: f64,
}

impl BenchReport {
    /// A bench that could not run at all (its service has no replica, the engine failed...).
    pub fn failed(b: &Bench, why: String) -> BenchReport {
        BenchReport {
            name: b.name.clone(),
            kind: b.kind.word().into(),
            unit: b.kind.unit().into(),
            service: b.service.clone(),
            from: b.from.clone(),
            target: String::new(),
            samples: b.samples,
            seconds: b.seconds,
            paths: vec![],
            gates: vec![],
            outcome: crate::expect::Outcome::Error,
            summary: format!("could not run: {why}"),
            faults: vec![],
            secs: 0.0,
        }
    }
}

/// Median, min, max and coefficient of variation (percent) of the samples.
pub fn stats(v: &[f64]) -> Option<(f64, f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    let mean = s.iter().sum::<f64>() / n as f64;
    let var = s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    let cv = if mean > 0.0 { var.sqrt() / mean * 100.0 } else { 0.0 };
    Some((median, s[0], s[n - 1], cv))
}

/// Fill each path's summary and ratios, judge the gates, and the bench's outcome.
pub fn summarise(bench: &Bench, paths: &mut [PathResult]) -> (Vec<GateResult>, crate::expect::Outcome, String) {
    use crate::expect::Outcome;
    for p in paths.iter_mut() {
        if let Some((med, min, max, cv)) = stats(&p.samples) {
            p.median = Some(med);
            p.min = Some(min);
            p.max = Some(max);
            p.cv_percent = Some(cv);
        }
    }
    let median_of = |paths: &[PathResult], k: PathKind| paths.iter().find(|p| p.path == k.word()).and_then(|p| p.median);
    let node = median_of(paths, PathKind::Node);
    let direct = median_of(paths, PathKind::Direct);
    for p in paths.iter_mut() {
        p.vs_node = p.median.zip(node).filter(|(_, d)| *d > 0.0).map(|(m, d)| m / d);
        p.vs_direct = p.median.zip(direct).filter(|(_, d)| *d > 0.0).map(|(m, d)| m / d);
    }
    let gates: Vec<GateResult> = bench.gates.iter().map(|g| judge_gate(g, paths)).collect();
    let failed_paths: Vec<&str> =
        paths.iter().filter(|p| p.unsupported.is_none() && p.samples.is_empty()).map(|p| p.path.as_str()).collect();
    let gates_failed = gates.iter().filter(|g| g.outcome == Outcome::Fail).count();
    let gates_unsupported = gates.iter().filter(|g| g.outcome == Outcome::Unsupported).count();
    let measured = paths.iter().filter(|p| p.median.is_some()).count();
    let outcome = if !failed_paths.is_empty() || gates_failed > 0 {
        Outcome::Fail
    } else if measured == 0 || gates_unsupported > 0 {
        Outcome::Unsupported
    } else {
        Outcome::Pass
    };
    let mut summary = format!("{measured}/{} paths measured", paths.len());
    if !gates.is_empty() {
        summary.push_str(&format!(", {}/{} gates hold", gates.iter().filter(|g| g.outcome == Outcome::Pass).count(), gates.len()));
    }
    if !failed_paths.is_empty() {
        summary.push_str(&format!(", no sample from {}", failed_paths.join(", ")));
    }
    (gates, outcome, summary)
}

fn judge_gate(g: &Gate, paths: &[PathResult]) -> GateResult {
    use crate::expect::Outcome;
    let find = |k: PathKind| paths.iter().find(|p| p.path == k.word());
    let a = find(g.num);
    // The denominator: another path's median, or the bandwidth a rate fault asked for.
    let (b, den) = match &g.den {
        GateDen::Path(k) => (find(*k), find(*k).and_then(|p| p.median)),
        GateDen::Asked { bits, .. } => (None, Some(*bits)),
    };
    let unsupported = [a, b].iter().any(|p| p.is_some_and(|p| p.unsupported.is_some()));
    let ratio = a.and_then(|p| p.median).zip(den).filter(|(_, d)| *d > 0.0).map(|(n, d)| n / d);
    let outcome = match ratio {
        _ if unsupported => Outcome::Unsupported,
        Some(r) if g.holds(r) => Outcome::Pass,
        _ => Outcome::Fail,
    };
    GateResult { gate: g.text(), ratio, outcome }
}

/// `14.2 Gbit/s`, `830 req/s`.
pub fn human(v: f64, unit: &str) -> String {
    if unit == "req/s" {
        return format!("{v:.0} req/s");
    }
    match v {
        x if x >= 1e9 => format!("{:.2} Gbit/s", x / 1e9),
        x if x >= 1e6 => format!("{:.1} Mbit/s", x / 1e6),
        x => format!("{:.0} kbit/s", x / 1e3),
    }
}

/// The bench as aligned text rows: one per path, then one per gate.
pub fn table_text(b: &BenchReport) -> Vec<String> {
    let ratio = |r: Option<f64>| r.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    let mut table: Vec<Vec<String>> = vec![["path", "median", "min", "max", "cv", "retr", "/node", "/direct"].map(String::from).to_vec()];
    let mut notes = Vec::new();
    for p in &b.paths {
        if let Some(why) = &p.unsupported {
            notes.push(format!("{}: unsupported: {why}", p.path));
            table.push(vec![p.path.clone(), "unsupported".into()]);
            continue;
        }
        let h = |v: Option<f64>| v.map(|x| human(x, &b.unit)).unwrap_or_else(|| "-".into());
        table.push(vec![
            p.path.clone(),
            h(p.median),
            h(p.min),
            h(p.max),
            p.cv_percent.map(|c| format!("{c:.1}%")).unwrap_or_else(|| "-".into()),
            if b.unit == "bit/s" { p.retransmits.to_string() } else { "-".into() },
            ratio(p.vs_node),
            ratio(p.vs_direct),
        ]);
        if !p.how.is_empty() {
            notes.push(format!("{}: {}", p.path, p.how));
        }
        for e in &p.errors {
            notes.push(format!("{}: sample failed: {e}", p.path));
        }
    }
    let cols = table.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|i| table.iter().filter_map(|r| r.get(i)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out: Vec<String> = table
        .iter()
        .map(|r| r.iter().enumerate().map(|(i, s)| format!("{s:<w$}", w = widths[i])).collect::<Vec<_>>().join("  ").trim_end().to_string())
        .collect();
    for g in &b.gates {
        let mark = match g.outcome {
            crate::expect::Outcome::Pass => "holds",
            crate::expect::Outcome::Fail => "FAILS",
            _ => "unsupported",
        };
        out.push(format!("gate {}: {} ({mark})", g.gate, g.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "no ratio".into())));
    }
    out.extend(notes);
    out
}

#[cfg(test)]
mod tests;
