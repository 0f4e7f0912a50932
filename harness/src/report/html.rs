//! The HTML report: one self-contained file (no scripts, no external assets) — each run's steps,
//! each check's entry × target matrix as a coloured table with its cause lines, and each bench's
//! median per path as an inline SVG bar chart with min–max whiskers, and each stream as an inline
//! SVG timeline (answered share per bucket, latency band, a marker at every step).

use super::{esc, CheckReport, RunReport};
use crate::bench::{human, BenchReport};
use crate::expect::Outcome;
use crate::stream::StreamReport;

fn outcome_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Unsupported => "unsupported",
        Outcome::Error => "error",
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin-bottom:.3em}.badge{display:inline-block;padding:0 .5em;border-radius:3px;color:#fff;font-size:.85em}
.badge.pass{background:#2e7d32}.badge.fail,.badge.error{background:#c62828}.badge.unsupported{background:#ef6c00}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #bbb;padding:.25em .6em;font-size:.9em;text-align:left}
td.ok{background:#c8e6c9}td.silent{background:#eeeeee;color:#555}td.wrong{background:#ffcdd2;font-weight:bold}
td.wrong-answer{background:#ffe0b2;font-weight:bold}.cause{color:#00695c;margin:.2em 0}.note{color:#666;font-size:.9em;margin:.1em 0}
ul.steps{list-style:none;padding-left:0}ul.steps li{margin:.1em 0}.summary{font-size:1.1em}";

/// A check's or bench's opening: its anchor, outcome badge, title, subtitle and summary line.
fn section_head(class: &str, title: &str, name: &str, outcome: Outcome, sub: &str, summary: &str) -> String {
    format!(
        "<section class=\"{class}\" id=\"{class}-{n}\"><h3><span class=\"badge {cls}\">{cls}</span> {title} {n} <small>{}</small></h3><p>{}</p>",
        esc(sub),
        esc(summary),
        n = esc(name),
        cls = outcome_class(outcome)
    )
}

fn check_html(c: &CheckReport) -> String {
    let (word, what) = if c.kind == "install" { ("Install", String::new()) } else { ("Check", format!("{} {}", c.kind, c.service)) };
    let mut h = section_head("check", word, &c.name, c.outcome, &what, &c.summary);
    let o = &c.observation;
    if !o.cols.is_empty() {
        h.push_str("<table class=\"matrix\"><tr><th>from \\ to</th>");
        for t in &o.cols {
            h.push_str(&format!("<th>{}</th>", esc(&t.label)));
        }
        h.push_str("</tr>");
        for (r, row) in o.rows.iter().enumerate() {
            h.push_str(&format!("<tr><th>{}</th>", esc(row)));
            for ci in 0..o.cells.get(r).map(|x| x.len()).unwrap_or(0) {
                let v = c.cell_view(r, ci);
                // ok: as expected; silent: no answer, as expected; wrong: should have answered
                // (at the stated rate); wrong-answer: answered although it should not.
                let class = match (v.ok, v.expected, v.answered) {
                    (true, _, true) => "ok",
                    (true, _, false) => "silent",
                    (false, true, _) => "wrong",
                    (false, false, _) => "wrong-answer",
                };
                let text = match (v.answered, v.detail.is_empty()) {
                    (false, false) => format!("no answer: {}", v.detail),
                    (false, true) if c.kind != "vip" => "no answer".into(),
                    (_, false) => format!("{}: {}", v.text, v.detail),
                    _ => v.text,
                };
                h.push_str(&format!("<td class=\"{class}\">{}</td>", esc(&text)));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    for d in &c.diagnosis {
        h.push_str(&format!("<p class=\"cause\">{}</p>", esc(d)));
    }
    for n in c.observation.notes.iter().chain(&c.faults) {
        h.push_str(&format!("<p class=\"note\">{}</p>", esc(n)));
    }
    if let Some(r) = c.reason.as_ref().filter(|_| c.outcome == Outcome::Error) {
        h.push_str(&format!("<p class=\"cause\">error: {}</p>", esc(r)));
    }
    h.push_str("</section>");
    h
}

/// Horizontal bars: one per measured path, its median, a whisker from min to max.
pub fn bench_svg(b: &BenchReport) -> String {
    let rows: Vec<_> = b.paths.iter().collect();
    let max = rows.iter().filter_map(|p| p.max).fold(0.0_f64, f64::max).max(1.0);
    let (label_w, bar_w, row_h, value_w) = (110.0, 560.0, 30.0, 190.0);
    let width = label_w + bar_w + value_w;
    let height = row_h * rows.len() as f64 + 30.0;
    let x = |v: f64| label_w + v / max * bar_w;
    let mut s = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"median {} per path\">",
        esc(&b.unit)
    );
    for (i, p) in rows.iter().enumerate() {
        let y = 10.0 + i as f64 * row_h;
        s.push_str(&format!("<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text>", y + 17.0, esc(&p.path)));
        match (p.median, p.min, p.max) {
            (Some(med), Some(lo), Some(hi)) => {
                s.push_str(&format!(
                    "<rect class=\"bar\" x=\"{label_w}\" y=\"{y}\" width=\"{:.1}\" height=\"22\" fill=\"#1976d2\"><title>{}: median {}</title></rect>",
                    x(med) - label_w,
                    esc(&p.path),
                    esc(&human(med, &b.unit))
                ));
                let wy = y + 11.0;
                s.push_str(&format!(
                    "<line class=\"whisker\" x1=\"{:.1}\" y1=\"{wy}\" x2=\"{:.1}\" y2=\"{wy}\" stroke=\"#111\" stroke-width=\"2\"/><line x1=\"{:.1}\" y1=\"{}\" x2=\"{:.1}\" y2=\"{}\" stroke=\"#111\" stroke-width=\"2\"/><line x1=\"{:.1}\" y1=\"{}\" x2=\"{:.1}\" y2=\"{}\" stroke=\"#111\" stroke-width=\"2\"/>",
                    x(lo), x(hi), x(lo), wy - 6.0, x(lo), wy + 6.0, x(hi), wy - 6.0, x(hi), wy + 6.0
                ));
                s.push_str(&format!(
                    "<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
                    label_w + bar_w + 8.0,
                    y + 16.0,
                    esc(&human(med, &b.unit))
                ));
            }
            _ => {
                let why = if p.unsupported.is_some() { "unsupported" } else { "no sample" };
                s.push_str(&format!("<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#ef6c00\">{why}</text>", label_w + 4.0, y + 16.0));
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// Answered share as a colour: red (none) through amber to green (all); grey when nothing was sent.
fn share_colour(answered: u32, sent: u32) -> String {
    if sent == 0 {
        return "#e0e0e0".into();
    }
    let f = answered as f64 / sent as f64;
    let (r, g) = if f >= 1.0 { (46.0, 125.0) } else { (198.0 - 60.0 * f, 40.0 + 120.0 * f) };
    format!("rgb({r:.0},{g:.0},40)")
}

/// A stream's timeline: one cell per bucket coloured by answered share, a latency band (p50
/// line, up to p99 shaded) under it, and a marker at every step (faults in colour, labelled).
pub fn stream_svg(st: &StreamReport) -> String {
    let f = &st.figures;
    let (left, plot_w, top) = (70.0, 820.0, 28.0);
    let (share_h, lat_top, lat_h) = (36.0, top + 36.0 + 14.0, 90.0);
    let width = left + plot_w + 40.0;
    let height = lat_top + lat_h + 34.0;
    let dur = f.duration_ms.max(1.0);
    let x = |ms: f64| left + (ms.clamp(0.0, dur) / dur) * plot_w;
    let mut s = format!(
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"stream {} over time\">",
        esc(&st.name)
    );
    s.push_str(&format!("<text x=\"0\" y=\"{}\" font-size=\"12\">answered</text>", top + 22.0));
    for b in &f.buckets {
        let w = (x(b.start_ms + f.bucket_ms) - x(b.start_ms)).max(0.5);
        s.push_str(&format!(
            "<rect class=\"bucket\" x=\"{:.1}\" y=\"{top}\" width=\"{w:.1}\" height=\"{share_h}\" fill=\"{}\"><title>{:.2} s: {}/{} answered</title></rect>",
            x(b.start_ms),
            share_colour(b.answered, b.sent),
            b.start_ms / 1000.0,
            b.answered,
            b.sent
        ));
    }
    // Latency: the scale reaches the highest p99 seen (at least 5 ms).
    let max = f.buckets.iter().filter_map(|b| b.p99_ms).fold(5.0_f64, f64::max);
    let y = |ms: f64| lat_top + lat_h - (ms / max).min(1.0) * lat_h;
    s.push_str(&format!(
        "<rect x=\"{left}\" y=\"{lat_top}\" width=\"{plot_w}\" height=\"{lat_h}\" fill=\"none\" stroke=\"#ccc\"/><text x=\"0\" y=\"{}\" font-size=\"12\">latency</text><text x=\"0\" y=\"{}\" font-size=\"11\" fill=\"#666\">{max:.0} ms</text><text x=\"0\" y=\"{}\" font-size=\"11\" fill=\"#666\">0</text>",
        lat_top + 14.0,
        lat_top + 28.0,
        lat_top + lat_h
    ));
    let pts: Vec<(f64, f64, f64)> =
        f.buckets.iter().filter_map(|b| Some((x(b.start_ms + f.bucket_ms / 2.0), b.p50_ms?, b.p99_ms?))).collect();
    if !pts.is_empty() {
        let upper: Vec<String> = pts.iter().map(|(px, _, p99)| format!("{px:.1},{:.1}", y(*p99))).collect();
        let lower: Vec<String> = pts.iter().rev().map(|(px, p50, _)| format!("{px:.1},{:.1}", y(*p50))).collect();
        s.push_str(&format!(
            "<polygon class=\"band\" points=\"{} {}\" fill=\"#90caf9\" opacity=\"0.7\"><title>p50 to p99 latency per bucket</title></polygon>",
            upper.join(" "),
            lower.join(" ")
        ));
        let line: Vec<String> = pts.iter().map(|(px, p50, _)| format!("{px:.1},{:.1}", y(*p50))).collect();
        s.push_str(&format!(
            "<polyline class=\"p50\" points=\"{}\" fill=\"none\" stroke=\"#0d47a1\" stroke-width=\"1.5\"/>",
            line.join(" ")
        ));
    }
    for m in f.markers.iter().filter(|m| m.end_ms >= 0.0 && m.start_ms <= dur) {
        let mx = x(m.start_ms);
        let (colour, dash, label) = match (&m.fault, m.applies) {
            (Some(_), true) => ("#c62828", "5,3", true),
            (Some(_), false) => ("#2e7d32", "5,3", true),
            _ => ("#9e9e9e", "2,3", false),
        };
        s.push_str(&format!(
            "<line class=\"marker\" x1=\"{mx:.1}\" y1=\"{}\" x2=\"{mx:.1}\" y2=\"{}\" stroke=\"{colour}\" stroke-dasharray=\"{dash}\" stroke-width=\"1.5\"><title>{:.2} s: {}</title></line>",
            top - 4.0,
            lat_top + lat_h,
            m.start_ms / 1000.0,
            esc(&m.label)
        ));
        if label {
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" fill=\"{colour}\">{}</text>",
                mx + 2.0,
                top - 8.0,
                esc(&m.label)
            ));
        }
    }
    let ticks = 8;
    for i in 0..=ticks {
        let ms = dur * i as f64 / ticks as f64;
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" fill=\"#666\">{:.1} s</text>",
            x(ms) - 10.0,
            lat_top + lat_h + 16.0,
            ms / 1000.0
        ));
    }
    s.push_str("</svg>");
    s
}

fn stream_html(st: &StreamReport) -> String {
    let mut h = section_head(
        "stream",
        "Stream",
        &st.name,
        st.outcome,
        &format!("{} {} from {} at {} req/s each", st.to, st.service, st.from.join(", "), st.rate),
        &st.summary,
    );
    h.push_str(&stream_svg(st));
    let ms = |v: Option<f64>| v.map(|x| format!("{x:.1} ms")).unwrap_or_else(|| "-".into());
    h.push_str("<table class=\"phases\"><tr><th>phase</th><th>from–to (s)</th><th>requests</th><th>lost</th><th>p50</th><th>p99</th><th>answered by</th><th>lost on</th></tr>");
    for p in &st.figures.phases {
        let by: Vec<String> = p.replicas.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let lost: Vec<String> = p.lost_paths.iter().map(|(k, v)| format!("{k} {v}")).collect();
        h.push_str(&format!(
            "<tr><td>{}</td><td>{:.1}–{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.title()),
            p.start_ms / 1000.0,
            p.end_ms / 1000.0,
            p.sent,
            p.lost,
            ms(p.p50_ms),
            ms(p.p99_ms),
            esc(&by.join(" · ")),
            esc(&lost.join(" · "))
        ));
    }
    h.push_str("</table>");
    for line in super::terminal::stream_text(st).iter().filter(|l| !l.starts_with("phase") && !l.contains("  ")) {
        let cls = if line.starts_with('✗') { "cause" } else { "note" };
        h.push_str(&format!("<p class=\"{cls}\">{}</p>", esc(line)));
    }
    for d in &st.diagnosis {
        h.push_str(&format!("<p class=\"cause\">{}</p>", esc(d)));
    }
    if let Some(e) = &st.error {
        h.push_str(&format!("<p class=\"cause\">error: {}</p>", esc(e)));
    }
    h.push_str("</section>");
    h
}

fn bench_html(b: &BenchReport) -> String {
    let mut h = section_head(
        "bench",
        "Bench",
        &b.name,
        b.outcome,
        &format!("{} {} from {} to {}", b.kind, b.service, b.from, b.target),
        &format!("{} ({} samples × {} s per path, alternating)", b.summary, b.samples, b.seconds),
    );
    h.push_str(&bench_svg(b));
    h.push_str("<table class=\"bench-table\"><tr><th>path</th><th>median</th><th>min</th><th>max</th><th>cv</th><th>retransmits</th><th>/node</th><th>/direct</th><th>how</th></tr>");
    let f = |v: Option<f64>| v.map(|x| human(x, &b.unit)).unwrap_or_else(|| "-".into());
    let r = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    for p in &b.paths {
        match &p.unsupported {
            Some(why) => h.push_str(&format!("<tr><td>{}</td><td colspan=\"8\">unsupported: {}</td></tr>", esc(&p.path), esc(why))),
            None => h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.path),
                f(p.median),
                f(p.min),
                f(p.max),
                p.cv_percent.map(|c| format!("{c:.1}%")).unwrap_or_else(|| "-".into()),
                p.retransmits,
                r(p.vs_node),
                r(p.vs_direct),
                esc(&p.how)
            )),
        }
    }
    h.push_str("</table>");
    for g in &b.gates {
        h.push_str(&format!(
            "<p class=\"gate {}\">gate {}: {}</p>",
            outcome_class(g.outcome),
            esc(&g.gate),
            g.ratio.map(|x| format!("{x:.2}")).unwrap_or_else(|| "no ratio".into())
        ));
    }
    for n in &b.faults {
        h.push_str(&format!("<p class=\"note\">{}</p>", esc(n)));
    }
    h.push_str("</section>");
    h
}

pub fn html_report(reports: &[RunReport]) -> String {
    let mut h = format!("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>clusterlab report</title><style>{STYLE}</style></head><body><h1>clusterlab report</h1>");
    for r in reports {
        let s = &r.summary;
        let cls = if s.exit_code == 0 { "pass" } else { "fail" };
        h.push_str(&format!(
            "<h2 id=\"run-{}\">{} <small>lab {} · run {}</small></h2><p class=\"summary\"><span class=\"badge {cls}\">exit {}</span> {} passed, {} failed, {} unsupported, {} errors in {:.1} s — {}</p>",
            esc(&r.run_id),
            esc(&r.scenario),
            esc(&r.lab),
            esc(&r.run_id),
            s.exit_code,
            s.passed,
            s.failed,
            s.unsupported,
            s.errors,
            s.secs,
            esc(&r.file)
        ));
        if let Some(e) = &s.error {
            h.push_str(&format!("<p class=\"cause\">error: {}</p>", esc(e)));
        }
        h.push_str("<ul class=\"steps\">");
        for st in &r.steps {
            h.push_str(&format!(
                "<li>{} {} ({:.1} s){}</li>",
                if st.ok { "✓" } else { "✗" },
                esc(st.title.split('\t').next().unwrap_or("")),
                st.secs,
                st.detail.iter().map(|d| format!("<br><span class=\"note\">{}</span>", esc(d))).collect::<String>()
            ));
        }
        h.push_str("</ul>");
        for c in &r.checks {
            h.push_str(&check_html(c));
        }
        for b in &r.benches {
            h.push_str(&bench_html(b));
        }
        for st in &r.streams {
            h.push_str(&stream_html(st));
        }
        if let Some(ev) = &s.evidence {
            h.push_str(&format!("<p class=\"note\">failure bundle: {}</p>", esc(ev)));
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// The scale curve as one self-contained page: `up` and teardown seconds against nodes, a line
/// per stack (and, dashed, the line through each stack's two smallest labs: linear growth), then
/// the table of every lab.
pub fn scale_page(points: &[crate::bench::scale::ScalePoint]) -> String {
    let mut h =
        format!("<!doctype html><html><head><meta charset=\"utf-8\"><title>clusterlab scale</title><style>{STYLE}</style></head><body>");
    h.push_str("<h1>Labs by size: bring-up, teardown, idle memory</h1>");
    h.push_str(&scale_svg(points));
    h.push_str("<table><tr><th>stack</th><th>nodes</th><th>up (s)</th><th>hand-run script (s)</th><th>down (s)</th><th>down/up</th><th>memory per node (MiB)</th><th>every path after (s)</th><th>check</th></tr>");
    for p in points {
        let mem = p.memory_mib.iter().map(|(n, m)| format!("{}&nbsp;{m:.0}", esc(n))).collect::<Vec<_>>().join(", ");
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{mem}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(&p.stack),
            p.nodes,
            p.up_secs,
            p.script_secs.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
            p.down_secs,
            p.down_secs / p.up_secs.max(0.001),
            p.paths_after_secs.map(|x| format!("{x:.1}")).unwrap_or_else(|| "never".into()),
            if p.passed { "ok" } else { "wrong" },
            esc(&p.check)
        ));
    }
    h.push_str("</table></body></html>\n");
    h
}

/// Seconds against nodes: for each stack, `up` (solid), teardown (thin) and linear growth from
/// its two smallest labs (dashed).
pub fn scale_svg(points: &[crate::bench::scale::ScalePoint]) -> String {
    let (left, top, w, hgt) = (60.0, 20.0, 640.0, 300.0);
    let max_n = points.iter().map(|p| p.nodes).max().unwrap_or(1).max(2) as f64;
    let max_s = points.iter().map(|p| p.up_secs.max(p.script_secs.unwrap_or(0.0))).fold(1.0_f64, f64::max) * 1.1;
    let x = |n: f64| left + n / max_n * w;
    let y = |s: f64| top + hgt - (s / max_s).min(1.0) * hgt;
    let mut s = format!(
        "<svg class=\"scale\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"seconds against nodes\">",
        left + w + 20.0,
        // The legend, a line per stack, below the axis label.
        top + hgt + 84.0
    );
    s.push_str(&format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{w}\" height=\"{hgt}\" fill=\"none\" stroke=\"#ccc\"/><text x=\"0\" y=\"{}\" font-size=\"11\">{max_s:.0} s</text><text x=\"0\" y=\"{}\" font-size=\"11\">0</text><text x=\"{}\" y=\"{}\" font-size=\"11\">nodes</text>",
        top + 10.0,
        top + hgt,
        left + w / 2.0,
        top + hgt + 32.0
    ));
    let mut ticks: Vec<usize> = points.iter().map(|p| p.nodes).collect();
    ticks.sort();
    ticks.dedup();
    for n in ticks {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{n}</text>",
            x(n as f64),
            top + hgt + 16.0
        ));
    }
    for (i, (stack, colour)) in [("swarm", "#1976d2"), ("kubernetes", "#c62828")].into_iter().enumerate() {
        let mut ps: Vec<&crate::bench::scale::ScalePoint> = points.iter().filter(|p| p.stack == stack).collect();
        if ps.is_empty() {
            continue;
        }
        ps.sort_by_key(|p| p.nodes);
        let line = |f: &dyn Fn(&crate::bench::scale::ScalePoint) -> f64| {
            ps.iter().map(|p| format!("{:.1},{:.1}", x(p.nodes as f64), y(f(p)))).collect::<Vec<_>>().join(" ")
        };
        s.push_str(&format!(
            "<polyline class=\"up\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\"/>",
            line(&|p| p.up_secs)
        ));
        s.push_str(&format!(
            "<polyline class=\"down\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1\"/>",
            line(&|p| p.down_secs)
        ));
        let lin: Vec<String> = crate::bench::scale::growth(points, stack)
            .iter()
            .filter_map(|(n, _, l)| l.map(|l| format!("{:.1},{:.1}", x(*n as f64), y(l))))
            .collect();
        if lin.len() > 1 {
            s.push_str(&format!(
                "<polyline class=\"linear\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-dasharray=\"4 4\"/>",
                lin.join(" ")
            ));
        }
        // The hand-run script's bring-up of the same sizes, where the bench ran it.
        let script: Vec<String> =
            ps.iter().filter_map(|p| p.script_secs.map(|t| format!("{:.1},{:.1}", x(p.nodes as f64), y(t)))).collect();
        if script.len() > 1 {
            s.push_str(&format!(
                "<polyline class=\"script\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" stroke-dasharray=\"1 3\"/>",
                script.join(" ")
            ));
        }
        let script_legend = if script.len() > 1 { ", script (dotted)" } else { "" };
        for p in &ps {
            s.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\"><title>{stack} {} nodes: up {:.1} s, down {:.1} s</title></circle>",
                x(p.nodes as f64),
                y(p.up_secs),
                p.nodes,
                p.up_secs,
                p.down_secs
            ));
        }
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{colour}\">{stack}: up (thick), down (thin), linear (dashed){script_legend}</text>",
            left,
            top + hgt + 54.0 + i as f64 * 18.0
        ));
    }
    s.push_str("</svg>");
    s
}
