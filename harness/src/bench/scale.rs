//! The scale curve: labs of growing size brought up, checked, measured idle and torn down, one
//! after the other in one run (`cargo bench --bench scale`). This is the data and its tables;
//! the bench drives the labs.

use serde::{Deserialize, Serialize};

/// One lab size of one stack, as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalePoint {
    /// `swarm` or `kubernetes`.
    pub stack: String,
    pub nodes: usize,
    /// From nothing to every service converged (images present on the host).
    pub up_secs: f64,
    /// Removing everything the lab created.
    pub down_secs: f64,
    /// `up`'s steps and how long each took (preparing nodes, loading images, the stack).
    pub steps: Vec<(String, f64)>,
    /// Each node's memory in use (MiB), measured after the lab sat idle; the first is the
    /// manager or master.
    pub memory_mib: Vec<(String, f64)>,
    /// The check every lab runs (each node to each replica), as its one-line summary.
    pub check: String,
    /// Seconds from the check's start until it held (its own 1-2 s when every path answered at
    /// once); None when it never did.
    #[serde(default)]
    pub paths_after_secs: Option<f64>,
    pub passed: bool,
    /// The hand-run script's bring-up of the same size in the same run (swarm:
    /// `scripts/swarm-baseline-nodes.sh`), None where none ran: how much of the growth is the
    /// stack's own.
    #[serde(default)]
    pub script_secs: Option<f64>,
}

impl ScalePoint {
    /// The master's (or first manager's) memory, and the median and largest of the others.
    pub fn memory_split(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let first = self.memory_mib.first().map(|m| m.1);
        let mut rest: Vec<f64> = self.memory_mib.iter().skip(1).map(|m| m.1).collect();
        rest.sort_by(|a, b| a.total_cmp(b));
        let median = (!rest.is_empty()).then(|| {
            let n = rest.len();
            if n % 2 == 1 {
                rest[n / 2]
            } else {
                (rest[n / 2 - 1] + rest[n / 2]) / 2.0
            }
        });
        (first, median, rest.last().copied())
    }
}

/// The scenario of a lab of `nodes` nodes: a manager (master) and `nodes - 1` workers, a
/// service with a replica per node, and one check: every node reaches every replica, within
/// 60 s (a swarm of 8 left a pair of workers without each other's overlay addresses for a while
/// after its tasks ran: how long the paths take is part of how long a lab takes).
pub fn scenario_text(stack: &str, nodes: usize) -> String {
    let workers = if nodes > 1 { format!("\n  - {{ name: worker, role: worker, count: {} }}", nodes - 1) } else { String::new() };
    let (first, stack_line, net) = match stack {
        "kubernetes" => ("master", "stack: { kind: kubernetes, pod-network: { backend: vxlan } }", ""),
        _ => ("manager", "stack: { kind: swarm }\nnetworks: [ { name: net1, driver: overlay } ]", ", network: net1"),
    };
    format!(
        "api-version: clusterlab/v1\nname: scale-{stack}-{nodes}\n\
         description: {nodes} {stack} nodes, a replica on each; every node reaches every replica.\n\
         nodes:\n  - {{ name: {first}, role: manager }}{workers}\n{stack_line}\n\
         services: [ {{ name: web, image: web, replicas: {nodes}{net} }} ]\n\
         steps:\n  - check: {{ name: every-node-every-replica, kind: replicas, service: web, within: 60s }}\n"
    )
}

/// How each stack's bring-up grows: seconds per node added, from the smallest lab to each
/// size, next to what linear growth from the smallest two would predict.
pub fn growth(points: &[ScalePoint], stack: &str) -> Vec<(usize, f64, Option<f64>)> {
    let mut p: Vec<&ScalePoint> = points.iter().filter(|p| p.stack == stack).collect();
    p.sort_by_key(|p| p.nodes);
    let linear = match (p.first(), p.get(1)) {
        (Some(a), Some(b)) if b.nodes > a.nodes => {
            let slope = (b.up_secs - a.up_secs) / (b.nodes - a.nodes) as f64;
            Some((a.nodes, a.up_secs, slope))
        }
        _ => None,
    };
    p.iter().map(|x| (x.nodes, x.up_secs, linear.map(|(n0, u0, slope)| u0 + slope * (x.nodes - n0) as f64))).collect()
}

/// Seconds each node added since the next smaller lab cost, per size (None for the smallest).
/// Linear growth keeps this flat; the line through the smallest two is a stricter reference,
/// since one to three nodes do not yet keep two cores busy and so cost less per node than the
/// sizes that do.
pub fn per_node_added(points: &[ScalePoint], stack: &str) -> Vec<(usize, Option<f64>)> {
    let mut p: Vec<&ScalePoint> = points.iter().filter(|p| p.stack == stack).collect();
    p.sort_by_key(|p| p.nodes);
    let mut out = Vec::new();
    for (i, x) in p.iter().enumerate() {
        let step = i.checked_sub(1).map(|j| p[j]).filter(|prev| x.nodes > prev.nodes);
        out.push((x.nodes, step.map(|prev| (x.up_secs - prev.up_secs) / (x.nodes - prev.nodes) as f64)));
    }
    out
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into())
}

/// The scale table, one row per lab: sizes, times, the teardown's share of the bring-up,
/// idle memory and the check.
pub fn table(points: &[ScalePoint]) -> String {
    let mut rows = vec![[
        "stack".to_string(),
        "nodes".into(),
        "up s".into(),
        "linear s".into(),
        "s/node added".into(),
        "script s".into(),
        "up/script".into(),
        "down s".into(),
        "down/up".into(),
        "first MiB".into(),
        "others MiB (median/max)".into(),
        "paths s".into(),
        "check".into(),
    ]];
    for stack in ["swarm", "kubernetes"] {
        let linear = growth(points, stack);
        let added = per_node_added(points, stack);
        let mut ps: Vec<&ScalePoint> = points.iter().filter(|p| p.stack == stack).collect();
        ps.sort_by_key(|p| p.nodes);
        for p in ps {
            let lin = linear.iter().find(|l| l.0 == p.nodes).and_then(|l| l.2);
            let (first, median, max) = p.memory_split();
            rows.push([
                p.stack.clone(),
                p.nodes.to_string(),
                format!("{:.1}", p.up_secs),
                lin.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
                added.iter().find(|a| a.0 == p.nodes).and_then(|a| a.1).map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into()),
                p.script_secs.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
                p.script_secs.map(|x| format!("{:.2}", p.up_secs / x.max(0.001))).unwrap_or_else(|| "-".into()),
                format!("{:.1}", p.down_secs),
                format!("{:.2}", p.down_secs / p.up_secs.max(0.001)),
                opt(first),
                if median.is_some() { format!("{}/{}", opt(median), opt(max)) } else { "-".into() },
                p.paths_after_secs.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
                p.check.clone(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| r.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `up`'s steps per lab, one row each: where the time goes as labs grow.
pub fn step_table(points: &[ScalePoint]) -> String {
    let mut titles: Vec<String> = Vec::new();
    for p in points {
        for (t, _) in &p.steps {
            if !titles.contains(t) {
                titles.push(t.clone());
            }
        }
    }
    let mut out = format!("{:<11} {:>5}", "stack", "nodes");
    for t in &titles {
        out.push_str(&format!("  {t:>w$}", w = t.chars().count().max(6)));
    }
    for p in points {
        out.push_str(&format!("\n{:<11} {:>5}", p.stack, p.nodes));
        for t in &titles {
            let v = p.steps.iter().find(|(x, _)| x == t).map(|(_, s)| format!("{s:.1}")).unwrap_or_else(|| "-".into());
            out.push_str(&format!("  {v:>w$}", w = t.chars().count().max(6)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(stack: &str, nodes: usize, up: f64, mem: &[f64]) -> ScalePoint {
        ScalePoint {
            stack: stack.into(),
            nodes,
            up_secs: up,
            down_secs: up / 10.0,
            steps: vec![("Preparing nodes".into(), 1.0), ("Starting swarm".into(), up - 1.0)],
            memory_mib: mem.iter().enumerate().map(|(i, m)| (format!("n{i}"), *m)).collect(),
            check: format!("{0}/{0} requests answered", nodes * nodes * 3),
            paths_after_secs: Some(0.0),
            passed: true,
            script_secs: None,
        }
    }

    #[test]
    fn every_generated_scenario_is_valid_and_has_the_size_asked() {
        for stack in ["swarm", "kubernetes"] {
            for n in [1, 2, 3, 8, 12] {
                let s = crate::model::parse_str(&scenario_text(stack, n), "scale.yaml").unwrap_or_else(|e| panic!("{stack} {n}: {e}"));
                assert_eq!(s.nodes.len(), n);
                assert_eq!(s.services[0].replicas as usize, n);
                assert_eq!(s.nodes[0].role, crate::model::Role::Manager);
            }
        }
    }

    #[test]
    fn growth_compares_each_size_with_the_line_through_the_smallest_two() {
        let ps = vec![point("swarm", 1, 5.0, &[90.0]), point("swarm", 3, 7.0, &[95.0, 60.0, 70.0]), point("swarm", 5, 12.0, &[1.0; 5])];
        let g = growth(&ps, "swarm");
        assert_eq!(g[0], (1, 5.0, Some(5.0)));
        assert_eq!(g[2], (5, 12.0, Some(9.0)), "a slope of 1 s per node from (1, 5 s)");
        assert!(growth(&ps[..1], "swarm")[0].2.is_none(), "one size: no line to compare with");
        assert_eq!(per_node_added(&ps, "swarm"), vec![(1, None), (3, Some(1.0)), (5, Some(2.5))]);
        assert!(per_node_added(&ps, "kubernetes").is_empty());
    }

    #[test]
    fn memory_splits_into_the_first_node_and_the_others() {
        let p = point("kubernetes", 4, 10.0, &[400.0, 100.0, 140.0, 120.0]);
        assert_eq!(p.memory_split(), (Some(400.0), Some(120.0), Some(140.0)));
        assert_eq!(point("swarm", 1, 5.0, &[90.0]).memory_split(), (Some(90.0), None, None));
    }

    #[test]
    fn tables_have_a_row_per_lab_and_aligned_columns() {
        let ps =
            vec![point("swarm", 1, 5.0, &[90.0]), ScalePoint { script_secs: Some(8.0), ..point("swarm", 3, 7.0, &[95.0, 60.0, 70.0]) }];
        let t = table(&ps);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("swarm  1      5.0   5.0       -             -         -"), "{t}");
        assert!(lines[2].starts_with("swarm  3      7.0   7.0       1.00          8.0       0.88"), "{t}");
        assert!(lines[2].contains("95         65/70"), "{t}");
        let s = step_table(&ps);
        assert!(s.lines().nth(1).unwrap().ends_with("1.0             4.0"), "{s}");
    }
}
