use super::*;
use crate::expect::Outcome;
use crate::probe::{Cell, Observation, Target};

fn cell(hits: u32, tries: u32, detail: &str) -> Cell {
    Cell { hits, tries, detail: detail.into(), ..Default::default() }
}

/// Events of a VXLAN-blocked run, as recorded from a real one.
fn recorded() -> Vec<Event> {
    let cols = vec![
        Target { label: "web.1@worker-1".into(), node: "worker-1".into() },
        Target { label: "web.2@manager".into(), node: "manager".into() },
        Target { label: "web.3@worker-2".into(), node: "worker-2".into() },
    ];
    let during = CheckReport {
        name: "only-worker-1-lost".into(),
        kind: "replicas".into(),
        service: "web".into(),
        outcome: Outcome::Pass,
        summary: "12/18 requests answered, 6/6 pairs as expected".into(),
        reason: None,
        observation: Observation {
            rows: vec!["manager".into(), "worker-2".into()],
            cols: cols.clone(),
            cells: vec![
                vec![cell(0, 3, "timeout"), cell(3, 3, ""), cell(3, 3, "")],
                vec![cell(0, 3, "timeout"), cell(3, 3, ""), cell(3, 3, "")],
            ],
            unanswered: vec![0, 0],
            sent: vec![3, 3],
            notes: vec![],
        },
        expected: vec![vec![false, true, true], vec![false, true, true]],
        pair_ok: vec![],
        faults: vec!["fault vxlan-blocked matched 4 packets on worker-1".into()],
        diagnosis: vec!["2 of 6 pairs did not answer, as the file expects: all targets on worker-1, from manager, worker-2; UDP 4789 dropped into worker-1 by fault vxlan-blocked (4 packets)".into()],
        evidence: None,
        secs: 2.5,
        attempts: 1,
        held_after_secs: None,
    };
    let wrong = CheckReport {
        name: "wrong-node".into(),
        expected: vec![vec![true, true, false], vec![true, true, false]],
        outcome: Outcome::Fail,
        summary: "12/18 requests answered, 2/6 pairs as expected".into(),
        ..during.clone()
    };
    // Every other request hangs: a pair that answered 1 of 3 did not answer.
    let mut partial = CheckReport {
        name: "partial".into(),
        outcome: Outcome::Fail,
        summary: "16/18 requests answered, 4/6 pairs as expected".into(),
        expected: vec![vec![true; 3]; 2],
        pair_ok: vec![vec![false, true, true]; 2],
        faults: vec![],
        diagnosis: vec![],
        ..during.clone()
    };
    partial.observation.cells = vec![vec![cell(2, 3, "timeout"), cell(3, 3, ""), cell(3, 3, "")]; 2];
    partial.observation.cells[0][1].latency = Some(crate::probe::Latency { min_ms: 0.8, median_ms: 1.1, max_ms: 3.0 });
    let vip = CheckReport {
        name: "vip".into(),
        kind: "vip".into(),
        service: "web".into(),
        outcome: Outcome::Unsupported,
        summary: "unsupported: kernel lacks IP_VS; observed 0/12 requests answered".into(),
        reason: Some("kernel lacks IP_VS".into()),
        observation: Observation {
            rows: vec!["manager".into(), "worker-2".into()],
            cols,
            cells: vec![vec![cell(0, 6, "timeout"); 3], vec![cell(0, 6, "timeout"); 3]],
            unanswered: vec![6, 6],
            sent: vec![6, 6],
            notes: vec!["web resolves to VIP 10.0.1.2 from manager".into()],
        },
        expected: vec![vec![true; 3]; 2],
        pair_ok: vec![],
        faults: vec![],
        diagnosis: vec!["unsupported here: kernel lacks IP_VS (6 of 6 pairs did not answer)".into()],
        evidence: None,
        secs: 5.6,
        attempts: 1,
        held_after_secs: None,
    };
    vec![
        Event::RunStart {
            scenario: "swarm-vxlan-blocked".into(),
            file: "scenarios/swarm-vxlan-blocked.yaml".into(),
            lab: "swarm-vxlan-blocked".into(),
            run_id: "0123abcd".into(),
        },
        Event::StepStart { title: "Preparing nodes\t📦📦📦".into() },
        Event::StepEnd(StepRecord {
            title: "Preparing nodes\t📦📦📦".into(),
            ok: true,
            secs: 1.5,
            detail: vec!["3 nodes on 10.213.0.0/24 (cap set)".into()],
            phases: vec![],
        }),
        Event::StepEnd(StepRecord {
            title: "Apply fault vxlan-blocked\t💥".into(),
            ok: true,
            secs: 0.1,
            detail: vec!["worker-1: INPUT -p udp --dport 4789 -j DROP".into()],
            phases: vec![],
        }),
        Event::Check(Box::new(during)),
        Event::Check(Box::new(wrong)),
        Event::Check(Box::new(partial)),
        Event::Check(Box::new(vip)),
        Event::RunEnd(Summary {
            passed: 1,
            failed: 1,
            unsupported: 1,
            errors: 0,
            secs: 18.6,
            exit_code: 1,
            error: None,
            kept: None,
            evidence: None,
        }),
    ]
}

#[test]
fn terminal_plain_output() {
    let mut t = Terminal::new(Vec::new(), false);
    for e in recorded() {
        t.event(&e);
    }
    insta::assert_snapshot!(String::from_utf8(t.into_inner()).unwrap());
}

#[test]
fn terminal_tty_output_has_colour_and_emoji() {
    let mut t = Terminal::new(Vec::new(), true);
    for e in recorded() {
        t.event(&e);
    }
    let s = String::from_utf8(t.into_inner()).unwrap();
    assert!(s.contains("📦📦📦") && s.contains("\x1b[32m✓"), "{s}");
}

#[test]
fn junit_has_one_case_per_check_and_skips_unsupported() {
    let mut r = RunReport::default();
    for e in recorded() {
        r.event(&e);
    }
    let x = junit_xml(&[r.clone()]);
    insta::assert_snapshot!(x);
    assert_eq!(x.matches("<testcase").count(), 4);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["schema"], REPORT_SCHEMA);
    assert_eq!(json["checks"][3]["outcome"], "unsupported");
}

#[test]
fn report_schema_names_the_fields_and_a_recorded_report_reads_back() {
    let schema = serde_json::to_string(&report_schema()).unwrap();
    for field in [
        "runs",
        "checks",
        "benches",
        "diagnosis",
        "evidence",
        "vs_direct",
        "cv_percent",
        "gates",
        "observation",
        "streams",
        "buckets",
        "episodes",
        "recover_after_ms",
        "lost_paths",
    ] {
        assert!(schema.contains(field), "report schema lacks {field}");
    }
    let runs: Vec<RunReport> = serde_json::from_str(include_str!("../../benches/recorded-runs.json")).unwrap();
    let file = ReportFile { schema: REPORT_SCHEMA.into(), runs };
    let again: ReportFile = serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
    assert_eq!(again.runs.len(), 2);
    assert_eq!(again.runs[1].benches[0].paths.len(), 4);
    assert!(html_report(&again.runs).contains("<svg class=\"chart\""));
}

/// A run that panicked part-way keeps what it recorded, and every report says it failed and why:
/// never exit 0 with no error.
#[test]
fn a_panicked_run_reports_its_exit_code_and_why() {
    let mut r = RunReport::default();
    for e in recorded().into_iter().take(4) {
        r.event(&e);
    }
    assert_eq!(r.summary.exit_code, 0, "no RunEnd was recorded");
    r.ended_abnormally("swarm-vxlan-blocked", 3, "the run panicked (boom); its lab was removed".into());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["summary"]["exit_code"], 3);
    assert!(json["summary"]["error"].as_str().unwrap().contains("panicked"));
    let x = junit_xml(&[r.clone()]);
    assert!(x.contains("<error message=\"the run panicked (boom)"), "{x}");
    assert!(html_report(&[r]).contains("the run panicked (boom)"));
}

/// The README's sample run is what the terminal reporter prints for a recorded real run
/// (`run scenarios/swarm-vxlan-blocked.yaml --report events=…`): the README cannot drift
/// from the code. To refresh both, record a run again and paste its output.
#[test]
fn readme_sample_run_is_the_terminal_output_of_a_recorded_run() {
    let events = read_events(include_str!("recorded/readme-run.jsonl")).expect("recorded events parse");
    let mut t = Terminal::new(Vec::new(), false);
    for e in &events {
        t.event(e);
    }
    let rendered = String::from_utf8(t.into_inner()).unwrap();
    let readme = include_str!("../../../README.md");
    let start = readme.find("```\nRunning scenario").expect("README has a sample run") + 4;
    let end = start + readme[start..].find("```").unwrap();
    assert_eq!(&readme[start..end], rendered, "README's sample run differs from the recorded run's rendering");
    // And it tells the story it is there for.
    assert!(rendered.contains("12/18 requests answered, 6/6 pairs as expected"));
    assert!(rendered.contains("Stream manager-to-replicas") && rendered.contains("5/5 gates hold"));
    assert!(rendered.contains("Result: 5 passed, 0 failed"));
}

/// The scale page: a curve per stack (up thick, down thin, linear dashed once a stack has two
/// sizes), a point per lab, and a table row per lab with its check coloured by its result.
#[test]
fn scale_page_draws_a_curve_per_stack_and_a_row_per_lab() {
    use crate::bench::scale::ScalePoint;
    let p = |stack: &str, nodes: usize, up: f64, passed: bool| ScalePoint {
        stack: stack.into(),
        nodes,
        up_secs: up,
        down_secs: up / 5.0,
        steps: vec![],
        memory_mib: vec![("manager".into(), 120.0)],
        check: if passed { "9/9 requests answered".into() } else { "4/9 requests answered".into() },
        paths_after_secs: passed.then_some(0.0),
        passed,
        script_secs: (stack == "swarm").then_some(up * 0.9),
    };
    let points = vec![p("swarm", 1, 5.0, true), p("swarm", 3, 8.0, true), p("kubernetes", 1, 10.0, false)];
    let svg = scale_svg(&points);
    assert_eq!(svg.matches("class=\"up\"").count(), 2);
    assert_eq!(svg.matches("class=\"down\"").count(), 2);
    assert_eq!(svg.matches("class=\"linear\"").count(), 1, "only swarm has two sizes");
    assert_eq!(svg.matches("class=\"script\"").count(), 1, "only swarm has the script's times");
    assert!(svg.contains("linear (dashed), script (dotted)"));
    assert_eq!(svg.matches("<circle").count(), 3);
    let page = scale_page(&points);
    assert_eq!(page.matches("<tr><td>").count(), 3);
    assert!(page.contains("<td class=\"wrong\">4/9 requests answered</td>"), "{page}");
    assert!(page.contains("manager&nbsp;120"));
}
