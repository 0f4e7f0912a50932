//! From a stream's recorded requests and the steps it ran across to the figures engineers ask
//! for: answered share per bucket, time to break, requests lost, time to recover, latency and
//! the replicas that answered per phase — and the stream's gates judged on them. Pure: no lab.

use crate::model::{Bound, Measure, Phase, Stream, StreamGate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One request as the agent recorded it, placed on the stream's timeline (ms since its start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Request {
    pub entry: String,
    /// What was dialled: the replica's label, `vip`, or the node dialled.
    pub target: String,
    pub at_ms: f64,
    pub latency_ms: f64,
    /// `ok`, `timeout`, `refused`, `reset`, `unreachable`, `http-<code>`, `wrong-replica`, ...
    pub result: String,
    /// The replica that answered, as labelled in matrices (`web.2@worker-1`).
    pub replica: Option<String>,
}

impl Request {
    pub fn answered(&self) -> bool {
        self.result == "ok"
    }
}

/// A step that ran while the stream did, on its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Marker {
    pub start_ms: f64,
    pub end_ms: f64,
    /// `apply vxlan-blocked`, `check all-replicas-back`, `scale web to 6`, ...
    pub label: String,
    /// The fault this step applies or reverts.
    #[serde(default)]
    pub fault: Option<String>,
    /// true: applies `fault`; false: reverts it.
    #[serde(default)]
    pub applies: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Bucket {
    pub start_ms: f64,
    pub sent: u32,
    pub answered: u32,
    /// Latency percentiles of the bucket's answered requests.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One stretch of the stream between two events (apply, revert, recovery).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PhaseFigures {
    pub phase: Phase,
    /// The fault this phase belongs to (none before the first).
    pub fault: Option<String>,
    pub start_ms: f64,
    pub end_ms: f64,
    pub sent: u32,
    pub lost: u32,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Answers per replica: the split over time.
    pub replicas: BTreeMap<String, u32>,
    /// Lost requests by how they failed.
    pub failures: BTreeMap<String, u32>,
    /// Lost requests by path, `entry → target`.
    #[serde(default)]
    pub lost_paths: BTreeMap<String, u32>,
}

impl PhaseFigures {
    pub fn lost_share(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.lost as f64 / self.sent as f64)
    }
    /// `during vxlan-blocked`, `before`.
    pub fn title(&self) -> String {
        match &self.fault {
            Some(f) => format!("{} {f}", self.phase.word()),
            None => self.phase.word().to_string(),
        }
    }
}

/// One fault applied while the stream ran: what it did to the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Episode {
    pub fault: String,
    /// When its apply step started.
    pub applied_ms: f64,
    /// When its revert step ended (the fault gone), if it did while the stream ran.
    pub reverted_ms: Option<f64>,
    /// From the apply to the first lost request (none lost: None).
    pub break_after_ms: Option<f64>,
    /// Requests lost from the apply to the recovery (or the stream's end).
    pub lost: u32,
    /// From the revert to the first of `recovered_after` answers in a row.
    pub recover_after_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateResult {
    /// The gate as written: `during: lost-share 0.3..0.7`.
    pub gate: String,
    pub ok: bool,
    /// What was measured: `0.48 (66 of 137) during vxlan-blocked`.
    pub measured: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Figures {
    pub sent: u32,
    pub answered: u32,
    pub duration_ms: f64,
    pub bucket_ms: f64,
    pub buckets: Vec<Bucket>,
    pub markers: Vec<Marker>,
    pub episodes: Vec<Episode>,
    pub phases: Vec<PhaseFigures>,
    pub gates: Vec<GateResult>,
}

impl Figures {
    pub fn lost(&self) -> u32 {
        self.sent - self.answered
    }
    pub fn passed(&self) -> bool {
        self.gates.iter().all(|g| g.ok)
    }
}

/// The q-quantile (nearest rank) of unsorted values.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i])
}

/// When the stream is whole again after `from_ms`: for every entry node, the first of `n`
/// answers in a row of its own requests (at least one per target it sends to, so a path that
/// is still lost cannot hide between answers of the others); the latest of those. None if an
/// entry never got there.
fn recovery(reqs: &[Request], from_ms: f64, n: u32) -> Option<f64> {
    let mut entries: Vec<&str> = reqs.iter().map(|r| r.entry.as_str()).collect();
    entries.sort_unstable();
    entries.dedup();
    let mut latest: Option<f64> = None;
    for e in entries {
        let mine: Vec<&Request> = reqs.iter().filter(|r| r.entry == e).collect();
        let mut targets: Vec<&str> = mine.iter().map(|r| r.target.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        let need = n.max(targets.len() as u32);
        let (mut run, mut first) = (0u32, 0.0);
        let mut at = None;
        for r in mine.iter().filter(|r| r.at_ms >= from_ms) {
            if r.answered() {
                if run == 0 {
                    first = r.at_ms;
                }
                run += 1;
                if run >= need {
                    at = Some(first);
                    break;
                }
            } else {
                run = 0;
            }
        }
        latest = Some(latest.unwrap_or(f64::MIN).max(at?));
    }
    latest
}

/// Everything the run says about a stream. `reqs` need not be sorted; `end_ms` is when the
/// stream stopped sending.
pub fn figures(stream: &Stream, reqs: &[Request], markers: &[Marker], end_ms: f64) -> Figures {
    let mut reqs = reqs.to_vec();
    reqs.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let bucket_ms = stream.bucket.as_secs_f64() * 1000.0;
    let end_ms = end_ms.max(reqs.last().map(|r| r.at_ms).unwrap_or(0.0));

    // Buckets of answered share and latency.
    let n = ((end_ms / bucket_ms).ceil() as usize).max(1);
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut buckets: Vec<Bucket> =
        (0..n).map(|i| Bucket { start_ms: i as f64 * bucket_ms, sent: 0, answered: 0, p50_ms: None, p99_ms: None }).collect();
    for r in &reqs {
        let i = ((r.at_ms / bucket_ms) as usize).min(n - 1);
        buckets[i].sent += 1;
        if r.answered() {
            buckets[i].answered += 1;
            lat[i].push(r.latency_ms);
        }
    }
    for (b, l) in buckets.iter_mut().zip(&lat) {
        b.p50_ms = quantile(l, 0.5);
        b.p99_ms = quantile(l, 0.99);
    }

    // Episodes: each apply, its revert (if any), the first loss and the recovery.
    let mut episodes: Vec<Episode> = Vec::new();
    for m in markers.iter().filter(|m| m.applies) {
        let Some(fault) = &m.fault else { continue };
        let reverted_ms =
            markers.iter().filter(|x| !x.applies && x.fault.as_ref() == Some(fault) && x.start_ms >= m.start_ms).map(|x| x.end_ms).next();
        // A fault reverted before the stream started is none of its business.
        if reverted_ms.is_some_and(|rv| rv < 0.0) {
            continue;
        }
        let recovered_at = reverted_ms.and_then(|rv| recovery(&reqs, rv, stream.recovered_after));
        let until = recovered_at.unwrap_or(end_ms + 1.0);
        let window = reqs.iter().filter(|r| r.at_ms >= m.start_ms && r.at_ms < until);
        let lost: Vec<&Request> = window.filter(|r| !r.answered()).collect();
        episodes.push(Episode {
            fault: fault.clone(),
            applied_ms: m.start_ms,
            reverted_ms,
            break_after_ms: lost.first().map(|r| r.at_ms - m.start_ms),
            lost: lost.len() as u32,
            recover_after_ms: match (reverted_ms, recovered_at) {
                (Some(rv), Some(at)) => Some((at - rv).max(0.0)),
                _ => None,
            },
        });
    }

    // Phases: cut the timeline at every apply, revert and recovery. Each cut carries the time
    // of the event that caused it: of several cuts at one moment, the latest event's holds.
    let mut cuts: Vec<(f64, f64, Phase, Option<String>)> = vec![(0.0, f64::MIN, Phase::Before, None)];
    for e in &episodes {
        cuts.push((e.applied_ms, e.applied_ms, Phase::During, Some(e.fault.clone())));
        if let Some(rv) = e.reverted_ms {
            cuts.push((rv, rv, Phase::Recovering, Some(e.fault.clone())));
            if let Some(rec) = e.recover_after_ms {
                cuts.push((rv + rec, rv, Phase::After, Some(e.fault.clone())));
            }
        }
    }
    // A fault applied before the stream started is in force from its t=0.
    for c in cuts.iter_mut() {
        c.0 = c.0.max(0.0);
    }
    cuts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let cuts: Vec<(f64, Phase, Option<String>)> =
        cuts.iter().enumerate().filter(|(i, c)| cuts.get(i + 1).is_none_or(|n| n.0 > c.0)).map(|(_, c)| (c.0, c.2, c.3.clone())).collect();
    let mut phases = Vec::new();
    for (i, (start, phase, fault)) in cuts.iter().enumerate() {
        let stop = cuts.get(i + 1).map(|c| c.0).unwrap_or(end_ms + 1.0);
        if stop <= *start && i + 1 < cuts.len() {
            continue;
        }
        let mine: Vec<&Request> = reqs.iter().filter(|r| r.at_ms >= *start && r.at_ms < stop).collect();
        let answered: Vec<f64> = mine.iter().filter(|r| r.answered()).map(|r| r.latency_ms).collect();
        let mut replicas = BTreeMap::new();
        let mut failures = BTreeMap::new();
        let mut lost_paths = BTreeMap::new();
        for r in &mine {
            if r.answered() {
                *replicas.entry(r.replica.clone().unwrap_or_else(|| "?".into())).or_insert(0) += 1;
            } else {
                *failures.entry(r.result.clone()).or_insert(0) += 1;
                *lost_paths.entry(format!("{} → {}", r.entry, r.target)).or_insert(0) += 1;
            }
        }
        phases.push(PhaseFigures {
            phase: *phase,
            fault: fault.clone(),
            start_ms: *start,
            end_ms: stop.min(end_ms),
            sent: mine.len() as u32,
            lost: (mine.len() - answered.len()) as u32,
            p50_ms: quantile(&answered, 0.5),
            p99_ms: quantile(&answered, 0.99),
            replicas,
            failures,
            lost_paths,
        });
    }

    let answered = reqs.iter().filter(|r| r.answered()).count() as u32;
    let mut f = Figures {
        sent: reqs.len() as u32,
        answered,
        duration_ms: end_ms,
        bucket_ms,
        buckets,
        markers: markers.to_vec(),
        episodes,
        phases,
        gates: vec![],
    };
    let whole = whole_phase(&f, &reqs);
    f.gates = stream.gates.iter().flat_map(|g| judge(g, &f, &whole, stream.recovered_after)).collect();
    f
}

/// The whole stream as one phase, for the top-level gates.
fn whole_phase(f: &Figures, reqs: &[Request]) -> PhaseFigures {
    let answered: Vec<f64> = reqs.iter().filter(|r| r.answered()).map(|r| r.latency_ms).collect();
    PhaseFigures {
        phase: Phase::Whole,
        fault: None,
        start_ms: 0.0,
        end_ms: f.duration_ms,
        sent: f.sent,
        lost: f.lost(),
        p50_ms: quantile(&answered, 0.5),
        p99_ms: quantile(&answered, 0.99),
        replicas: BTreeMap::new(),
        failures: BTreeMap::new(),
        lost_paths: BTreeMap::new(),
    }
}

fn secs(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

/// One result per phase the gate covers (every `during`, every `after`, ...).
fn judge(g: &StreamGate, f: &Figures, whole: &PhaseFigures, n: u32) -> Vec<GateResult> {
    let gate = g.text();
    let res = |ok: bool, measured: String| GateResult { gate: gate.clone(), ok, measured };
    match g {
        StreamGate::Bound { phase, measure, bound } => {
            let phases: Vec<&PhaseFigures> =
                if *phase == Phase::Whole { vec![whole] } else { f.phases.iter().filter(|p| p.phase == *phase).collect() };
            if phases.is_empty() {
                let why = match phase {
                    Phase::During => "no fault was applied while the stream ran".to_string(),
                    Phase::After => "the path never recovered while the stream ran".to_string(),
                    p => format!("the stream had no {} phase", p.word()),
                };
                return vec![res(false, why)];
            }
            phases.iter().map(|p| bound_result(&gate, p, *measure, bound)).collect()
        }
        StreamGate::BreakWithin(d) => {
            if f.episodes.is_empty() {
                return vec![res(false, "no fault was applied while the stream ran".into())];
            }
            let limit = d.as_secs_f64() * 1000.0;
            f.episodes
                .iter()
                .map(|e| match e.break_after_ms {
                    Some(ms) => res(ms <= limit, format!("{}: first request lost {} after the apply", e.fault, secs(ms))),
                    None => res(false, format!("{}: no request was lost", e.fault)),
                })
                .collect()
        }
        StreamGate::RecoverWithin(d) => {
            if f.episodes.is_empty() {
                return vec![res(false, "no fault was applied while the stream ran".into())];
            }
            let limit = d.as_secs_f64() * 1000.0;
            f.episodes
                .iter()
                .map(|e| match (e.reverted_ms, e.recover_after_ms) {
                    (None, _) => res(false, format!("{}: not reverted while the stream ran", e.fault)),
                    (Some(_), None) => res(false, format!("{}: never {n} answers in a row after the revert", e.fault)),
                    (Some(_), Some(ms)) => res(ms <= limit, format!("{}: {n} answers in a row {} after the revert", e.fault, secs(ms))),
                })
                .collect()
        }
    }
}

fn bound_result(gate: &str, p: &PhaseFigures, m: Measure, b: &Bound) -> GateResult {
    let place = if p.phase == Phase::Whole { String::new() } else { format!(" {}", p.title()) };
    // Nothing sent proves nothing: "lost == 0" over no request is not a pass.
    if p.sent == 0 {
        return GateResult { gate: gate.to_string(), ok: false, measured: format!("no request was sent{place}") };
    }
    let (value, measured) = match m {
        Measure::Lost => (Some(p.lost as f64), format!("{} of {} lost{place}", p.lost, p.sent)),
        Measure::LostShare => {
            (p.lost_share(), p.lost_share().map(|s| format!("{s:.2} ({} of {}){place}", p.lost, p.sent)).unwrap_or_default())
        }
        Measure::P50 => (p.p50_ms, p.p50_ms.map(|v| format!("{v:.1} ms{place}")).unwrap_or_default()),
        Measure::P99 => (p.p99_ms, p.p99_ms.map(|v| format!("{v:.1} ms{place}")).unwrap_or_default()),
    };
    match value {
        Some(v) => GateResult { gate: gate.to_string(), ok: b.holds(v), measured },
        None => GateResult { gate: gate.to_string(), ok: false, measured: format!("no answered request{place} to measure") },
    }
}
