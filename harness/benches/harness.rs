//! Criterion benches of the harness's own hot paths: reading every shipped scenario (parse and
//! resolve) and rendering a recorded run's reports (terminal, JSON, JUnit, HTML).

use clusterlab::report::{html_report, junit_xml, Event, Reporter, RunReport, Terminal};
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::PathBuf;

fn scenarios() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut v: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read scenario");
            (p, text)
        })
        .collect();
    v.sort();
    v
}

fn parse_and_resolve(c: &mut Criterion) {
    let files = scenarios();
    c.bench_function("parse+resolve every shipped scenario", |b| {
        b.iter(|| {
            for (p, text) in &files {
                let s = clusterlab::model::parse_str(text, &p.display().to_string()).expect("shipped scenarios are valid");
                std::hint::black_box(s);
            }
        })
    });
}

fn render(c: &mut Criterion) {
    let runs: Vec<RunReport> = serde_json::from_str(include_str!("recorded-runs.json")).expect("recorded report");
    c.bench_function("render terminal (recorded run)", |b| {
        b.iter(|| {
            let mut t = Terminal::new(Vec::new(), false);
            for r in &runs {
                for s in &r.steps {
                    t.event(&Event::StepEnd(s.clone()));
                }
                for ch in &r.checks {
                    t.event(&Event::Check(Box::new(ch.clone())));
                }
                for be in &r.benches {
                    t.event(&Event::Bench(Box::new(be.clone())));
                }
            }
            std::hint::black_box(t.into_inner())
        })
    });
    c.bench_function("render JSON (recorded run)", |b| b.iter(|| std::hint::black_box(serde_json::to_string(&runs).unwrap())));
    c.bench_function("render JUnit (recorded run)", |b| b.iter(|| std::hint::black_box(junit_xml(&runs))));
    c.bench_function("render HTML (recorded run)", |b| b.iter(|| std::hint::black_box(html_report(&runs))));
}

criterion_group!(benches, parse_and_resolve, render);
criterion_main!(benches);
