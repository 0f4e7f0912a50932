use super::*;
use crate::expect::Outcome;
use crate::model::{BenchKind, Gate, GateDen, GateOp};

fn bench(gates: &[(&str, &str)]) -> Bench {
    Bench {
        name: "b".into(),
        kind: BenchKind::Throughput,
        service: "perf".into(),
        from: "master".into(),
        paths: PathKind::ALL.to_vec(),
        samples: 3,
        seconds: 2,
        gates: gates.iter().map(|(k, v)| Gate::parse(k, v).unwrap()).collect(),
    }
}

fn path(name: &str, samples: &[f64]) -> PathResult {
    PathResult { path: name.into(), samples: samples.to_vec(), ..Default::default() }
}

#[test]
fn stats_are_median_min_max_and_cv() {
    let (med, min, max, cv) = stats(&[3.0, 1.0, 2.0]).unwrap();
    assert_eq!((med, min, max), (2.0, 1.0, 3.0));
    assert!((cv - 40.82).abs() < 0.01, "{cv}");
    assert_eq!(stats(&[1.0, 3.0]).unwrap().0, 2.0, "even count: mean of the middle two");
    assert!(stats(&[]).is_none());
}

#[test]
fn ratios_come_from_medians_of_the_same_run_and_gates_judge_them() {
    let b = bench(&[("vip/direct", ">= 0.9"), ("direct/node", ">= 0.8")]);
    let mut ps =
        vec![path("node", &[10.0, 12.0, 11.0]), path("direct", &[6.0, 7.0, 8.0]), path("vip", &[6.9, 6.8, 7.0]), path("node-port", &[9.0])];
    let (gates, outcome, summary) = summarise(&b, &mut ps);
    assert_eq!(ps[1].vs_node, Some(7.0 / 11.0));
    assert_eq!(ps[2].vs_direct, Some(6.9 / 7.0));
    assert_eq!(gates[0].outcome, Outcome::Pass);
    assert_eq!(gates[1].outcome, Outcome::Fail, "7/11 = 0.64 < 0.8");
    assert_eq!(outcome, Outcome::Fail);
    assert_eq!(summary, "4/4 paths measured, 1/2 gates hold");
}

#[test]
fn a_gate_on_an_unsupported_path_is_unsupported_never_a_pass() {
    let b = bench(&[("vip/direct", ">= 0.9")]);
    let mut ps = vec![
        path("direct", &[5.0]),
        PathResult { path: "vip".into(), unsupported: Some("kernel lacks IP_VS".into()), ..Default::default() },
    ];
    let (gates, outcome, _) = summarise(&b, &mut ps);
    assert_eq!(gates[0].outcome, Outcome::Unsupported);
    assert_eq!(outcome, Outcome::Unsupported);
}

#[test]
fn a_supported_path_without_samples_fails_the_bench() {
    let b = bench(&[]);
    let mut ps = vec![path("node", &[5.0]), PathResult { path: "direct".into(), errors: vec!["timeout".into()], ..Default::default() }];
    let (_, outcome, summary) = summarise(&b, &mut ps);
    assert_eq!(outcome, Outcome::Fail);
    assert!(summary.ends_with("no sample from direct"), "{summary}");
    let mut ok = vec![path("node", &[5.0]), path("direct", &[4.0])];
    assert_eq!(summarise(&b, &mut ok).1, Outcome::Pass);
}

#[test]
fn gates_parse_and_hold() {
    let g = Gate::parse("vip/direct", ">= 0.9").unwrap();
    assert_eq!((g.num, g.den.clone(), g.op, g.bound), (PathKind::Vip, GateDen::Path(PathKind::Direct), GateOp::AtLeast, 0.9));
    assert!(g.holds(0.9) && !g.holds(0.89));
    assert!(Gate::parse("direct/node", "<=1.2").unwrap().holds(1.0));
    assert!(Gate::parse("vip", ">= 1").is_err());
    // Not a path: the name of a rate fault (the file's faults decide whether it is one).
    assert_eq!(Gate::parse("vip/slow-link", ">= 1").unwrap().den, GateDen::Asked { fault: "slow-link".into(), bits: 0.0 });
    assert!(Gate::parse("vip/Tun nel", ">= 1").unwrap_err().contains("Tun nel"));
    assert!(Gate::parse("vip/direct", "0.9").unwrap_err().contains(">="));
    assert!(Gate::parse("vip/direct", ">= fast").is_err());
    let range = Gate::parse("node/slow-link", "0.9..1.05").unwrap();
    assert!(range.holds(0.9) && range.holds(1.05) && !range.holds(0.89) && !range.holds(1.06));
    assert_eq!(range.text(), "node/slow-link 0.9..1.05");
    assert!(Gate::parse("node/slow-link", "1.1..0.9").unwrap_err().contains("empty"));
}

#[test]
fn a_gate_against_a_rate_fault_divides_by_what_it_asked() {
    let mut b = bench(&[]);
    b.gates = vec![Gate { den: GateDen::Asked { fault: "slow".into(), bits: 10e6 }, ..Gate::parse("node/slow", "0.9..1.05").unwrap() }];
    let mut near = vec![path("node", &[9.6e6, 9.5e6, 9.7e6])];
    let (gates, outcome, _) = summarise(&b, &mut near);
    assert_eq!((gates[0].ratio.map(|r| (r * 100.0).round()), outcome), (Some(96.0), Outcome::Pass));
    let mut unshaped = vec![path("node", &[900e6])];
    assert_eq!(summarise(&b, &mut unshaped).1, Outcome::Fail, "a rate that did not hold fails");
}

#[test]
fn iperf_json_and_errors() {
    let ok = r#"{"start":{},"end":{"sum_sent":{"retransmits":12,"bits_per_second":9.1e9},"sum_received":{"bits_per_second":9.0e9}}}"#;
    assert_eq!(parse_iperf(ok), Ok((9.0e9, 12)));
    assert_eq!(
        parse_iperf(r#"{"error":"unable to connect to server: Connection refused"}"#),
        Err("unable to connect to server: Connection refused".into())
    );
    assert_eq!(parse_iperf(""), Err("no output (timeout)".into()));
}

#[test]
fn human_units() {
    assert_eq!(human(13.16e9, "bit/s"), "13.16 Gbit/s");
    assert_eq!(human(850e6, "bit/s"), "850.0 Mbit/s");
    assert_eq!(human(1275.4, "req/s"), "1275 req/s");
}

#[test]
fn a_bench_that_could_not_run_names_its_kind_as_the_file_does() {
    let mut b = bench(&[]);
    b.kind = BenchKind::RequestRate;
    let r = BenchReport::failed(&b, "no running replica".into());
    assert_eq!((r.kind.as_str(), r.unit.as_str(), r.outcome), ("request-rate", "req/s", Outcome::Error));
}
