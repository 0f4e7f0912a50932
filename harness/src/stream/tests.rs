use super::timeline::*;
use super::*;
use crate::model::{Bound, Measure, Phase, StreamGate};

fn stream(gates: Vec<StreamGate>) -> Stream {
    Stream {
        name: "s".into(),
        service: "web".into(),
        to: StreamTo::Vip,
        from: vec!["master".into()],
        via: vec![],
        port: None,
        client: crate::model::ClientKind::Node,
        path: "/".into(),
        rate: 20.0,
        timeout: Duration::from_secs(1),
        bucket: Duration::from_millis(250),
        recovered_after: 10,
        gates,
    }
}

/// 20 requests/s for `secs` seconds; `lost(t_ms)` says which are lost; answers alternate a/b.
fn requests(secs: f64, lost: impl Fn(f64) -> bool) -> Vec<Request> {
    (0..(secs * 20.0) as usize)
        .map(|i| {
            let at = i as f64 * 50.0;
            let l = lost(at);
            Request {
                entry: "master".into(),
                target: "vip".into(),
                at_ms: at,
                latency_ms: if l { 1000.0 } else { 2.0 + (i % 5) as f64 },
                result: if l { "timeout".into() } else { "ok".into() },
                replica: (!l).then(|| if i % 2 == 0 { "web-a@master".into() } else { "web-b@worker".into() }),
            }
        })
        .collect()
}

fn marker(at: f64, fault: &str, applies: bool) -> Marker {
    let verb = if applies { "apply" } else { "revert" };
    Marker { start_ms: at, end_ms: at + 100.0, label: format!("{verb} {fault}"), fault: Some(fault.into()), applies }
}

fn bound(phase: Phase, m: Measure, s: &str) -> StreamGate {
    StreamGate::Bound { phase, measure: m, bound: Bound::parse(s, m).unwrap() }
}

/// Every other request lost from 2 s to 4.1 s (the revert's end), then whole again.
fn half_lost() -> (Vec<Request>, Vec<Marker>) {
    let reqs = requests(8.0, |t| (2000.0..4100.0).contains(&t) && (t / 50.0) as u64 % 2 == 1);
    (reqs, vec![marker(2000.0, "vxlan", true), marker(4000.0, "vxlan", false)])
}

#[test]
fn a_fault_that_loses_every_other_request_breaks_loses_and_recovers() {
    let (reqs, markers) = half_lost();
    let s = stream(vec![
        bound(Phase::Before, Measure::Lost, "== 0"),
        bound(Phase::During, Measure::LostShare, "0.3..0.7"),
        bound(Phase::After, Measure::Lost, "== 0"),
        StreamGate::BreakWithin(Duration::from_secs(1)),
        StreamGate::RecoverWithin(Duration::from_secs(2)),
    ]);
    let f = figures(&s, &reqs, &markers, 8000.0);
    assert_eq!((f.sent, f.lost()), (160, 21));
    let e = &f.episodes[0];
    assert_eq!(e.break_after_ms, Some(50.0));
    assert_eq!(e.lost, 21);
    assert_eq!(e.recover_after_ms, Some(0.0), "the first request after the revert begins 10 answers in a row");
    let titles: Vec<String> = f.phases.iter().map(|p| p.title()).collect();
    // Recovered with the first request after the revert: no recovering phase to show.
    assert_eq!(titles, ["before", "during vxlan", "after vxlan"]);
    let during = &f.phases[1];
    assert_eq!((during.sent, during.lost), (42, 21));
    assert_eq!(during.replicas.get("web-a@master"), Some(&21), "the split over time: only web-a answered while it was on");
    assert!(f.passed(), "{:#?}", f.gates);
    // 16 buckets of 250 ms; those inside the fault answer half.
    assert_eq!(f.buckets.len(), 32);
    assert_eq!((f.buckets[10].sent, f.buckets[10].answered), (5, 3));
}

#[test]
fn gates_fail_where_the_stream_says_otherwise() {
    let (reqs, markers) = half_lost();
    // A fault that must not be felt, and a recovery that must come sooner than it did.
    let slow = requests(8.0, |t| (2000.0..5000.0).contains(&t));
    let s = stream(vec![bound(Phase::Whole, Measure::Lost, "== 0"), StreamGate::RecoverWithin(Duration::from_millis(500))]);
    let f = figures(&s, &slow, &markers, 8000.0);
    assert_eq!(f.gates.iter().map(|g| g.ok).collect::<Vec<_>>(), [false, false], "{:#?}", f.gates);
    assert!(f.gates[1].measured.contains("0.90 s after the revert"), "{}", f.gates[1].measured);
    // The same gates hold on a stream that lost nothing and recovered at once.
    let fine = requests(8.0, |_| false);
    assert!(figures(&s, &fine, &markers, 8000.0).passed());
    // A stream that lost requests where it must not, and one that never broke.
    let s = stream(vec![StreamGate::BreakWithin(Duration::from_secs(1))]);
    let f = figures(&s, &fine, &markers, 8000.0);
    assert!(!f.passed() && f.gates[0].measured.contains("no request was lost"));
    assert!(figures(&s, &reqs, &markers, 8000.0).passed());
}

#[test]
fn a_path_that_never_recovers_fails_recover_and_after_gates() {
    let markers = vec![marker(2000.0, "gossip", true), marker(4000.0, "gossip", false)];
    let reqs = requests(8.0, |t| t >= 2000.0 && ((t / 50.0) as u64).is_multiple_of(3));
    let s = stream(vec![StreamGate::RecoverWithin(Duration::from_secs(5)), bound(Phase::After, Measure::Lost, "== 0")]);
    let f = figures(&s, &reqs, &markers, 8000.0);
    assert_eq!(f.episodes[0].recover_after_ms, None);
    assert!(f.gates.iter().all(|g| !g.ok), "{:#?}", f.gates);
    assert!(f.gates[1].measured.contains("never recovered"));
}

#[test]
fn gates_on_phases_that_did_not_happen_fail_rather_than_pass() {
    let reqs = requests(4.0, |_| false);
    let s = stream(vec![
        bound(Phase::During, Measure::Lost, "== 0"),
        StreamGate::RecoverWithin(Duration::from_secs(5)),
        bound(Phase::Whole, Measure::P99, "<= 50ms"),
    ]);
    let f = figures(&s, &reqs, &[], 4000.0);
    assert_eq!(f.gates.iter().map(|g| g.ok).collect::<Vec<_>>(), [false, false, true]);
    // A fault still applied when the stream stopped has no recovery to measure.
    let f = figures(&s, &reqs, &[marker(1000.0, "x", true)], 4000.0);
    assert!(f.gates[1].measured.contains("not reverted"), "{:#?}", f.gates);
}

/// A stream that sent nothing (or a phase without requests) passes no gate: `lost == 0` over no
/// request proves nothing. The same gate holds once requests were sent and answered.
#[test]
fn gates_over_no_request_fail() {
    let s = stream(vec![bound(Phase::Whole, Measure::Lost, "== 0"), bound(Phase::Before, Measure::LostShare, "<= 0.1")]);
    let f = figures(&s, &[], &[], 4000.0);
    assert!(f.gates.iter().all(|g| !g.ok && g.measured.contains("no request was sent")), "{:#?}", f.gates);
    assert!(figures(&s, &requests(4.0, |_| false), &[], 4000.0).passed());
}

#[test]
fn agent_lines_parse_and_broken_ones_are_skipped() {
    assert_eq!(
        parse_record("7 10.0.1.5 350000 350120 900 ok 3f2a9c1b7d0e"),
        Some(("10.0.1.5".into(), 350.12, 0.9, "ok".into(), Some("3f2a9c1b7d0e".into())))
    );
    assert_eq!(parse_record("8 vip 0 0 1000000 timeout -").map(|r| r.4), Some(None));
    assert_eq!(parse_record("#start unix_ns=1 rate=20 timeout_ms=1000 targets=1"), None);
    assert_eq!(parse_record("8 vip 0 0"), None);
    let c = parse_end("#end sent=400 cpu_ms=30 maxrss_kb=2100 late_p50_us=60 late_p99_us=400 late_max_us=900 ran_ms=20000", "m").unwrap();
    assert_eq!((c.sent, c.cpu_ms, c.late_p99_us, c.ran_ms), (400, 30, 400, 20000));
}

/// A timeline recorded from a real run of a shipped story (requests and step markers from its
/// JSON report), judged again with the story's stream as the file states it today.
fn recorded(story: &str) -> StreamReport {
    #[derive(serde::Deserialize)]
    struct Rec {
        stream: String,
        duration_ms: f64,
        markers: Vec<Marker>,
        requests: Vec<Request>,
    }
    let text = std::fs::read_to_string(format!("{}/src/stream/recorded/{story}.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let rec: Rec = serde_json::from_str(&text).unwrap();
    let scenario = crate::model::load(std::path::Path::new(&format!("{}/../scenarios/{story}.yaml", env!("CARGO_MANIFEST_DIR")))).unwrap();
    let stream = scenario.streams.iter().find(|s| s.name == rec.stream).unwrap().clone();
    let figures = figures(&stream, &rec.requests, &rec.markers, rec.duration_ms);
    let mut r = StreamReport::of(&stream);
    r.outcome = if figures.passed() { crate::expect::Outcome::Pass } else { crate::expect::Outcome::Fail };
    r.figures = figures;
    r
}

/// Swarm, VXLAN dropped into worker-1: one request in three lost (those to its replica), none
/// before or after, back within a bucket of the revert.
#[test]
fn recorded_swarm_vxlan_timeline() {
    let r = recorded("swarm-vxlan-blocked");
    assert!(r.figures.passed(), "{:#?}", r.figures.gates);
    insta::assert_snapshot!(crate::report::stream_text(&r).join("\n"));
}

/// Kubernetes, VXLAN dropped into the worker: about every other ClusterIP request lost (the
/// pod kube-proxy picked on the worker), none before or after.
#[test]
fn recorded_k8s_clusterip_timeline() {
    let r = recorded("k8s-vxlan-blocked");
    assert!(r.figures.passed(), "{:#?}", r.figures.gates);
    let during = r.figures.phases.iter().find(|p| p.phase == Phase::During).unwrap();
    let share = during.lost_share().unwrap();
    assert!((0.4..0.6).contains(&share), "{share}");
    insta::assert_snapshot!(crate::report::stream_text(&r).join("\n"));
}

/// The same recorded timelines fail the gates they must fail: a fault that must not be felt,
/// and a recovery faster than the recorded one.
#[test]
fn recorded_timelines_fail_gates_they_do_not_meet() {
    let mut r = recorded("k8s-vxlan-blocked");
    let stream = stream(vec![bound(Phase::During, Measure::Lost, "== 0"), bound(Phase::During, Measure::LostShare, "<= 0.1")]);
    let text = std::fs::read_to_string(format!("{}/src/stream/recorded/k8s-vxlan-blocked.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let reqs: Vec<Request> = serde_json::from_value(v["requests"].clone()).unwrap();
    r.figures = figures(&stream, &reqs, &r.figures.markers, r.figures.duration_ms);
    assert_eq!(r.figures.gates.iter().filter(|g| !g.ok).count(), 2, "{:#?}", r.figures.gates);
}

/// A stream started after its fault was applied is `during` from its t=0 (no `before`), and its
/// recovery still counts from the revert.
#[test]
fn a_fault_applied_before_the_stream_started_is_in_force_from_its_start() {
    let reqs = requests(6.0, |t| t < 3100.0 && (t / 50.0) as u64 % 2 == 1);
    let markers = vec![marker(-2000.0, "gossip", true), marker(3000.0, "gossip", false)];
    let f = figures(&stream(vec![StreamGate::RecoverWithin(Duration::from_secs(1))]), &reqs, &markers, 6000.0);
    let titles: Vec<String> = f.phases.iter().map(|p| p.title()).collect();
    assert_eq!(titles, ["during gossip", "after gossip"]);
    assert_eq!(f.episodes[0].break_after_ms, Some(2050.0), "measured from the apply, before the stream");
    assert!(f.passed(), "{:#?}", f.gates);
}

/// Two entry nodes: one whole at once, the other still losing one target of three. The stream
/// is recovered only when both have answered `recovered_after` in a row, each target once at least.
#[test]
fn recovery_waits_for_every_entry_and_every_target() {
    let mut reqs = Vec::new();
    for i in 0..120 {
        let at = i as f64 * 50.0;
        for (entry, target) in [("a", format!("t{}", i % 3)), ("b", format!("t{}", i % 3))] {
            // From b, t2 answers only from 4 s on.
            let lost = entry == "b" && target == "t2" && at < 4000.0;
            reqs.push(Request {
                entry: entry.into(),
                target: target.clone(),
                at_ms: at + if entry == "b" { 10.0 } else { 0.0 },
                latency_ms: 1.0,
                result: if lost { "timeout".into() } else { "ok".into() },
                replica: (!lost).then(|| target.clone()),
            });
        }
    }
    let markers = vec![marker(500.0, "f", true), marker(1000.0, "f", false)];
    let f = figures(&stream(vec![]), &reqs, &markers, 6000.0);
    let rec = f.episodes[0].recover_after_ms.unwrap();
    // b's first answer after its last loss of t2 (3.85 s) is at 3.91 s; the revert ended at 1.1 s.
    assert_eq!(rec, 2810.0, "recovered {rec} ms after the revert: b's t2 came back at 3.9 s");
    let lost = &f.phases.iter().find(|p| p.phase == Phase::Recovering).unwrap().lost_paths;
    assert_eq!(lost.keys().collect::<Vec<_>>(), ["b → t2"]);
}

/// Reports: JUnit has a case per gate, the HTML page a timeline with its buckets and markers.
#[test]
fn a_stream_renders_in_junit_and_html() {
    let r = recorded("swarm-vxlan-blocked");
    let run = crate::report::RunReport { scenario: "s".into(), streams: vec![r], ..Default::default() };
    let x = crate::report::junit_xml(std::slice::from_ref(&run));
    assert_eq!(x.matches("<testcase").count(), 5, "{x}");
    assert!(x.contains("name=\"stream manager-to-replicas: recover-within 5s\""));
    let h = crate::report::html_report(&[run]);
    assert_eq!(h.matches("<svg class=\"timeline\"").count(), 1);
    assert!(h.matches("<rect class=\"bucket\"").count() > 25 && h.contains("apply vxlan-blocked"));
}
