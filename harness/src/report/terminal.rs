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
                let what = if c.service.is_empty() { c.kind.clone() } else { format!("{} {}", c.kind, c.service) };
                let _ = writeln!(self.out, " {mark} Check {}  {what}: {} ({:.1} s)", c.name, c.summary, c.secs);
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
