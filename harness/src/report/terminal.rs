//! kind-style step lines (` ✓ Preparing nodes 📦`), check matrices as tables. Colours and
//! emoji only on a terminal; plain lines otherwise (CI logs, files, snapshots).

use super::{CheckReport, Event, Reporter};
use crate::expect::Outcome;
use std::io::Write;

pub struct Terminal<W: Write + Send> {
    out: W,
    tty: bool,
    open_step: bool,
}

impl<W: Write + Send> Terminal<W> {
    pub fn new(out: W, tty: bool) -> Self {
        Terminal { out, tty, open_step: false }
    }
    pub fn into_inner(self) -> W {
        self.out
    }
    fn paint(&self, code: &str, s: &str) -> String {
        if self.tty {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn mark(&self, o: Outcome) -> String {
        match o {
            Outcome::Pass => self.paint("32", "✓"),
            Outcome::Fail => self.paint("31", "✗"),
            Outcome::Unsupported => self.paint("33", "~"),
            Outcome::Error => self.paint("31", "!"),
        }
    }
    fn title(&self, t: &str) -> String {
        // Step titles may carry emoji after a tab; a plain log gets the words only.
        match t.split_once('\t') {
            Some((words, deco)) if self.tty => format!("{words} {deco}"),
            Some((words, _)) => words.to_string(),
            None => t.to_string(),
        }
    }
}

/// The matrix of a check as aligned text rows (no colour): used by the terminal and JUnit.
pub fn matrix_text(c: &CheckReport) -> Vec<String> {
    let o = &c.observation;
    if o.cols.is_empty() {
        return vec![];
    }
    let mut table: Vec<Vec<String>> =
        vec![std::iter::once("from \\ to".to_string()).chain(o.cols.iter().map(|t| t.label.clone())).collect()];
    for (r, row) in o.rows.iter().enumerate() {
        let mut line = vec![row.clone()];
        for ci in 0..o.cells[r].len() {
            let v = c.cell_view(r, ci);
            let mut s = v.text;
            if !v.detail.is_empty() {
                s.push_str(&format!(" {}", v.detail));
            }
            if !v.ok {
                s.push_str(if v.expected { " (!)" } else { " (! expected no answer)" });
            } else if !v.answered {
                s.push_str(" (expected)");
            }
            line.push(s);
        }
        if c.kind == "vip" && o.unanswered.get(r).copied().unwrap_or(0) > 0 {
            line[0] = format!("{row} [{}/{} unanswered]", o.unanswered[r], o.sent.get(r).copied().unwrap_or(0));
        }
        table.push(line);
    }
    let widths: Vec<usize> = (0..table[0].len()).map(|i| table.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    table
        .iter()
        .map(|r| r.iter().enumerate().map(|(i, s)| format!("{s:<w$}", w = widths[i])).collect::<Vec<_>>().join("  ").trim_end().to_string())
        .collect()
}

/// Answered share as a bar, from none (`_`) to all (`█`); a blank where nothing was sent.
fn bar(answered: u32, sent: u32) -> char {
    const BARS: [char; 9] = ['_', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if sent == 0 {
        return ' ';
    }
    if answered == sent {
        return '█';
    }
    // Anything lost never draws a full bar.
    BARS[((answered as f64 / sent as f64) * 8.0).floor().min(7.0) as usize]
}

/// A stream as text rows (no colour): its phases, episodes, timeline, gates and the agent's
/// cost. Used by the terminal and JUnit.
pub fn stream_text(s: &crate::stream::StreamReport) -> Vec<String> {
    let f = &s.figures;
    let mut out = Vec::new();
    let ms = |v: Option<f64>| v.map(|x| format!("{x:.1} ms")).unwrap_or_else(|| "-".into());
    let mut table: Vec<Vec<String>> =
        vec![["phase", "from-to (s)", "requests", "lost", "p50", "p99", "answered by / lost as"].iter().map(|x| x.to_string()).collect()];
    for p in &f.phases {
        let by: Vec<String> =
            p.replicas.iter().map(|(k, v)| format!("{k} {v}")).chain(p.failures.iter().map(|(k, v)| format!("{k} {v}"))).collect();
        table.push(vec![
            p.title(),
            format!("{:.1}-{:.1}", p.start_ms / 1000.0, p.end_ms / 1000.0),
            p.sent.to_string(),
            p.lost.to_string(),
            ms(p.p50_ms),
            ms(p.p99_ms),
            by.join(" · "),
        ]);
    }
    let widths: Vec<usize> = (0..table[0].len()).map(|i| table.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for r in &table {
        out.push(
            r.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect::<Vec<_>>().join("  ").trim_end().to_string(),
        );
    }
    for e in &f.episodes {
        let broke = match e.break_after_ms {
            Some(b) => format!("first request lost {:.2} s after the apply, {} lost", b / 1000.0, e.lost),
            None => "no request lost".into(),
        };
        let back = match (e.reverted_ms, e.recover_after_ms) {
            (None, _) => "still applied when the stream stopped".into(),
            (Some(_), Some(r)) => format!("recovered {:.2} s after the revert", r / 1000.0),
            (Some(_), None) => "not recovered when the stream stopped".into(),
        };
        out.push(format!("{}: {broke}; {back}", e.fault));
    }
    for p in f.phases.iter().filter(|p| !p.lost_paths.is_empty()) {
        let paths: Vec<String> = p.lost_paths.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push(format!("lost {}: {}", p.title(), paths.join(" · ")));
    }
    // The timeline, at most 60 columns: buckets merged as needed.
    if !f.buckets.is_empty() {
        let per = f.buckets.len().div_ceil(60);
        let cols: Vec<(u32, u32)> =
            f.buckets.chunks(per).map(|c| (c.iter().map(|b| b.answered).sum(), c.iter().map(|b| b.sent).sum())).collect();
        let line: String = cols.iter().map(|(a, n)| bar(*a, *n)).collect();
        let span = f.bucket_ms * per as f64 / 1000.0;
        out.push(format!("answered  |{line}|  1 column = {span:.2} s"));
        let mut marks = vec![' '; cols.len()];
        for m in f.markers.iter().filter(|m| m.fault.is_some() && m.end_ms >= 0.0) {
            let i = ((m.start_ms.max(0.0) / (f.bucket_ms * per as f64)) as usize).min(cols.len() - 1);
            marks[i] = if m.applies { 'a' } else { 'r' };
        }
        if marks.iter().any(|c| *c != ' ') {
            out.push(format!("faults     {}   a = apply, r = revert", marks.iter().collect::<String>()));
        }
    }
    for g in &f.gates {
        out.push(format!("{} {}: {}", if g.ok { "✓" } else { "✗" }, g.gate, g.measured));
    }
    for a in &s.agents {
        let share = if a.ran_ms > 0 { a.cpu_ms as f64 * 100.0 / a.ran_ms as f64 } else { 0.0 };
        out.push(format!(
            "agent on {}: {} requests, CPU {:.2} s over {:.1} s ({share:.1} %), peak {:.1} MiB; sent late p50 {:.2} ms, p99 {:.2} ms; clock: t=0 {} a {:.0} ms launch window",
            a.entry,
            a.sent,
            a.cpu_ms as f64 / 1000.0,
            a.ran_ms as f64 / 1000.0,
            a.maxrss_kb as f64 / 1024.0,
            a.late_p50_us as f64 / 1000.0,
            a.late_p99_us as f64 / 1000.0,
            if a.anchor_inside { "inside" } else { "OUTSIDE" },
            a.anchor_window_ms
        ));
    }
    out
}

impl<W: Write + Send> Reporter for Terminal<W> {
    fn event(&mut self, e: &Event) {
        let _ = match e {
            Event::RunStart { scenario, file, lab, .. } => writeln!(self.out, "Running scenario {scenario} ({file}) as lab {lab}"),
            Event::StepStart { title } => {
                if self.tty {
                    // On a terminal the pending step shows until its result overwrites it.
                    self.open_step = true;
                    let t = self.title(title);
                    write!(self.out, " • {t} ...").and_then(|_| self.out.flush())
                } else {
                    Ok(())
                }
            }
            Event::StepEnd(s) => {
                if self.open_step {
                    let _ = write!(self.out, "\r\x1b[2K");
                    self.open_step = false;
                }
                let mark = if s.ok { self.mark(Outcome::Pass) } else { self.mark(Outcome::Fail) };
                let t = self.title(&s.title);
                let _ = writeln!(self.out, " {mark} {t} ({:.1} s)", s.secs);
                for d in &s.detail {
                    let _ = writeln!(self.out, "     {d}");
                }
                Ok(())
            }
            Event::Check(c) => {
                let mark = self.mark(c.outcome);
                if c.kind == "install" {
                    let _ = writeln!(self.out, " {mark} Install {}: {} ({:.1} s)", c.name, c.summary, c.secs);
                } else {
                    let what = if c.service.is_empty() { c.kind.clone() } else { format!("{} {}", c.kind, c.service) };
                    let _ = writeln!(self.out, " {mark} Check {}  {what}: {} ({:.1} s)", c.name, c.summary, c.secs);
                }
                for line in matrix_text(c) {
                    let _ = writeln!(self.out, "       {line}");
                }
                if let Some(l) = c.latency_line() {
                    let _ = writeln!(self.out, "     {l}");
                }
                for n in c.observation.notes.iter().chain(c.faults.iter()) {
                    let _ = writeln!(self.out, "     {n}");
                }
                for d in &c.diagnosis {
                    // A hint is already phrased as one; everything else is a cause.
                    let line = if d.starts_with("hint:") { d.clone() } else { format!("cause: {d}") };
                    let _ = writeln!(self.out, "     {}", self.paint("36", &line));
                }
                if let Some(dir) = &c.evidence {
                    let _ = writeln!(self.out, "     evidence: {dir}");
                }
                if let Some(r) = &c.reason {
                    if c.outcome == Outcome::Error {
                        let _ = writeln!(self.out, "     error: {r}");
                    }
                }
                Ok(())
            }
            Event::Bench(b) => {
                let mark = self.mark(b.outcome);
                let _ = writeln!(
                    self.out,
                    " {mark} Bench {}  {} {} from {} to {}: {} ({} samples x {} s per path, alternating; {:.1} s)",
                    b.name, b.kind, b.service, b.from, b.target, b.summary, b.samples, b.seconds, b.secs
                );
                for line in crate::bench::table_text(b) {
                    let _ = writeln!(self.out, "       {line}");
                }
                for f in &b.faults {
                    let _ = writeln!(self.out, "     {f}");
                }
                Ok(())
            }
            Event::Stream(st) => {
                let mark = self.mark(st.outcome);
                let _ =
                    writeln!(self.out, " {mark} Stream {}  {} {} from {}: {}", st.name, st.to, st.service, st.from.join(", "), st.summary);
                for line in stream_text(st) {
                    let _ = writeln!(self.out, "       {line}");
                }
                for d in &st.diagnosis {
                    let _ = writeln!(self.out, "     {}", self.paint("36", &format!("cause: {d}")));
                }
                if let Some(e) = &st.error {
                    let _ = writeln!(self.out, "     error: {e}");
                }
                Ok(())
            }
            Event::Info(s) => writeln!(self.out, "     {s}"),
            Event::RunEnd(s) => {
                if let Some(err) = &s.error {
                    let _ = writeln!(self.out, "{} {err}", self.paint("31", "error:"));
                }
                let _ = writeln!(
                    self.out,
                    "Result: {} passed, {} failed, {} unsupported, {} errors in {:.1} s (exit {})",
                    s.passed, s.failed, s.unsupported, s.errors, s.secs, s.exit_code
                );
                if let Some(k) = &s.kept {
                    let _ = writeln!(self.out, "{k}");
                }
                Ok(())
            }
        };
    }
}
