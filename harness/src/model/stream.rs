//! Streams as resolved from the file: background traffic with gates over time.

use super::file::{ClientKind, StreamTo};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Stream {
    pub name: String,
    pub service: String,
    pub to: StreamTo,
    /// Entry nodes; each sends `rate` requests per second.
    pub from: Vec<String>,
    /// node-port: the nodes dialled, in turn.
    pub via: Vec<String>,
    /// node-port: the port (None: the service's, looked up at run time on Kubernetes).
    pub port: Option<u16>,
    pub client: ClientKind,
    /// The HTTP path requested.
    pub path: String,
    /// Requests per second from each entry node.
    pub rate: f64,
    #[serde(with = "super::resolve::millis")]
    pub timeout: Duration,
    #[serde(with = "super::resolve::millis")]
    pub bucket: Duration,
    /// Answers in a row that count as recovered.
    pub recovered_after: u32,
    pub gates: Vec<StreamGate>,
}

impl StreamTo {
    pub fn word(self) -> &'static str {
        match self {
            StreamTo::Replicas => "replicas",
            StreamTo::Vip => "vip",
            StreamTo::NodePort => "node-port",
        }
    }
}

/// Which requests a bound is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Every request of the stream.
    Whole,
    /// From the stream's start to the first fault applied.
    Before,
    /// From an apply to its revert (each fault applied while the stream ran).
    During,
    /// From a revert to the path's recovery.
    Recovering,
    /// From the recovery to the next apply or the stream's end.
    After,
}

impl Phase {
    pub fn word(self) -> &'static str {
        match self {
            Phase::Whole => "whole",
            Phase::Before => "before",
            Phase::During => "during",
            Phase::Recovering => "recovering",
            Phase::After => "after",
        }
    }
}

/// What a bound measures over a phase's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// Requests not answered (a count).
    Lost,
    /// Requests not answered over requests sent (0..1).
    LostShare,
    /// Latency percentiles of answered requests (ms).
    P50,
    P99,
}

impl Measure {
    pub fn word(self) -> &'static str {
        match self {
            Measure::Lost => "lost",
            Measure::LostShare => "lost-share",
            Measure::P50 => "p50",
            Measure::P99 => "p99",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamGate {
    Bound {
        phase: Phase,
        measure: Measure,
        bound: Bound,
    },
    /// From each apply to the first lost request.
    BreakWithin(#[serde(with = "super::resolve::millis")] Duration),
    /// From each revert to the first of `recovered_after` answers in a row.
    RecoverWithin(#[serde(with = "super::resolve::millis")] Duration),
}

impl StreamGate {
    /// As a reader would write it: `lost == 0`, `during: lost-share 0.3..0.7`, `recover-within 10s`.
    pub fn text(&self) -> String {
        match self {
            StreamGate::Bound { phase: Phase::Whole, measure, bound } => format!("{} {}", measure.word(), bound.text(*measure)),
            StreamGate::Bound { phase, measure, bound } => format!("{}: {} {}", phase.word(), measure.word(), bound.text(*measure)),
            StreamGate::BreakWithin(d) => format!("break-within {}", secs_text(*d)),
            StreamGate::RecoverWithin(d) => format!("recover-within {}", secs_text(*d)),
        }
    }
}

pub fn secs_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A closed interval `min..=max` a measured number must fall in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bound {
    pub min: f64,
    pub max: f64,
}

impl Bound {
    /// `== 0`, `>= 1`, `<= 5`, `< 5`, `> 0`, `a..b`; for latencies each number takes a unit
    /// (`50ms`, `0.2s`) and the bound is in milliseconds; for counts, whole numbers.
    pub fn parse(s: &str, m: Measure) -> Result<Bound, String> {
        let t = s.trim();
        let num = |x: &str| -> Result<f64, String> {
            let x = x.trim();
            let v = match m {
                Measure::P50 | Measure::P99 => super::resolve::parse_duration(x)
                    .map(|d| d.as_secs_f64() * 1000.0)
                    .ok_or_else(|| format!("{x:?} is not a duration (write e.g. 50ms or 0.2s)"))?,
                _ => x.parse::<f64>().map_err(|_| format!("{x:?} is not a number"))?,
            };
            match m {
                Measure::Lost if v.fract() != 0.0 || v < 0.0 => Err(format!("{v} is not a count of requests")),
                Measure::LostShare if !(0.0..=1.0).contains(&v) => Err(format!("{v} is not a share between 0 and 1")),
                _ => Ok(v),
            }
        };
        // Strict bounds on counts move to the next whole number; on other numbers by a hair.
        let step = if m == Measure::Lost { 1.0 } else { 1e-9 };
        let b = if let Some(x) = t.strip_prefix(">=") {
            Bound { min: num(x)?, max: f64::INFINITY }
        } else if let Some(x) = t.strip_prefix("<=") {
            Bound { min: 0.0, max: num(x)? }
        } else if let Some(x) = t.strip_prefix("==") {
            let v = num(x)?;
            Bound { min: v, max: v }
        } else if let Some(x) = t.strip_prefix('>') {
            Bound { min: num(x)? + step, max: f64::INFINITY }
        } else if let Some(x) = t.strip_prefix('<') {
            Bound { min: 0.0, max: num(x)? - step }
        } else if let Some((a, b)) = t.split_once("..") {
            Bound { min: num(a)?, max: num(b)? }
        } else {
            return Err(format!("{s:?} needs a comparison or a range, e.g. \"== 0\", \"<= 50ms\" or \"0.3..0.7\""));
        };
        if b.min > b.max {
            return Err(format!("{s:?} is empty: nothing is both >= {} and <= {}", b.min, b.max));
        }
        Ok(b)
    }

    pub fn holds(&self, v: f64) -> bool {
        v >= self.min - 1e-9 && v <= self.max + 1e-9
    }

    pub fn text(&self, m: Measure) -> String {
        let unit = if matches!(m, Measure::P50 | Measure::P99) { "ms" } else { "" };
        match (self.min, self.max) {
            (a, b) if a == b => format!("== {a}{unit}"),
            (a, b) if b.is_infinite() => format!(">= {a}{unit}"),
            (a, b) if a <= 0.0 => format!("<= {b}{unit}"),
            (a, b) => format!("{a}{unit}..{b}{unit}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse_with_their_units_and_hold_where_they_say() {
        let b = Bound::parse("== 0", Measure::Lost).unwrap();
        assert!(b.holds(0.0) && !b.holds(1.0));
        let b = Bound::parse("> 0", Measure::Lost).unwrap();
        assert!(!b.holds(0.0) && b.holds(1.0));
        let b = Bound::parse("<= 50ms", Measure::P99).unwrap();
        assert!(b.holds(50.0) && !b.holds(50.1));
        assert_eq!(b.text(Measure::P99), "<= 50ms");
        let b = Bound::parse("0.3..0.7", Measure::LostShare).unwrap();
        assert!(b.holds(0.5) && !b.holds(0.71) && !b.holds(0.29));
        assert!(Bound::parse("< 0.2s", Measure::P50).unwrap().holds(199.0));
    }

    #[test]
    fn bad_bounds_say_why() {
        assert!(Bound::parse("0.5", Measure::Lost).unwrap_err().contains("comparison"));
        assert!(Bound::parse("== 1.5", Measure::Lost).unwrap_err().contains("count"));
        assert!(Bound::parse("<= 50", Measure::P99).unwrap_err().contains("duration"));
        assert!(Bound::parse("<= 2", Measure::LostShare).unwrap_err().contains("share"));
        assert!(Bound::parse("0.7..0.3", Measure::LostShare).unwrap_err().contains("empty"));
    }
}
