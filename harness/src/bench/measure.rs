//! Taking the samples: iperf3 (TCP, `-J`) for throughput, curl with a URL range for the request
//! rate (one new connection per request: clusterlab-web closes each one, like netperf TCP_CRR).

use super::{summarise, BenchReport, PathResult};
use crate::lab::Lab;
use crate::model::{Bench, BenchKind, PathKind};
use crate::probe::Client;
use crate::provider::LabError;
use crate::stack::{AnyStack, PathEnd, Stack};
use std::time::Instant;

/// The iperf3 server the `node` path talks to, in the target node's own namespace (5202: the
/// replicas' iperf3 listens on 5201 in their own namespaces, this one must not look like them).
const NODE_IPERF_PORT: u16 = 5202;

async fn node_end(lab: &Lab, b: &Bench, target_node: &str) -> Result<Result<PathEnd, String>, LabError> {
    if b.kind == BenchKind::RequestRate {
        return Ok(Err("no HTTP server runs in a node's own namespace; compare direct with vip and node-port".into()));
    }
    let p = NODE_IPERF_PORT;
    // A pid file, not pgrep -f: the shell running this script would match its own pattern.
    let pid = "/run/clusterlab/iperf3-node.pid";
    let script = format!(
        "mkdir -p /run/clusterlab; {{ [ -f {pid} ] && kill -0 $(cat {pid}) 2>/dev/null; }} || iperf3 -s -p {p} -D -I {pid}\n\
         i=0; until ss -ltn | grep -q ':{p} '; do i=$((i+1)); [ $i -gt 50 ] && exit 1; sleep 0.1; done"
    );
    lab.sh(target_node, "starting iperf3 on the node", &script).await?;
    let ip = lab.node_ip(target_node);
    Ok(Ok(PathEnd {
        client: Client::Node,
        host: ip.clone(),
        port: p,
        how: format!("iperf3 between the nodes' own addresses, {} -> {target_node} ({ip}:{p})", b.from),
    }))
}

/// iperf3's JSON: (bits per second received, retransmits), or its error.
pub fn parse_iperf(json: &str) -> Result<(f64, u64), String> {
    let start = json.find('{').ok_or_else(|| first_line(json))?;
    let v: serde_json::Value = serde_json::from_str(&json[start..]).map_err(|_| first_line(json))?;
    if let Some(e) = v["error"].as_str() {
        return Err(e.to_string());
    }
    let bps = v["end"]["sum_received"]["bits_per_second"].as_f64().ok_or("iperf3 reported no received rate")?;
    Ok((bps, v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0)))
}

fn first_line(s: &str) -> String {
    let l = s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no output (timeout)");
    l.chars().take(120).collect()
}

/// One sample of one path: (value, retransmits).
async fn sample(lab: &Lab, b: &Bench, end: &PathEnd) -> Result<(f64, u64), String> {
    let s = b.seconds;
    let script = match b.kind {
        // --connect-timeout: a blocked path fails in 3 s instead of the kernel's SYN retries.
        BenchKind::Throughput => format!("timeout {} iperf3 -c {} -p {} -t {s} -J --connect-timeout 3000 2>&1", s + 15, end.host, end.port),
        // One transfer per URL of the range, a new connection each (the server closes it);
        // the status codes go to stderr, which is not buffered, so a timeout loses none.
        BenchKind::RequestRate => format!(
            "timeout {s} curl -s --noproxy '*' -m 2 -o /dev/null -w '%{{stderr}}%{{http_code}}\\n' 'http://{}:{}/?n=[1-100000000]' 2>&1 | grep -c '^200$'",
            end.host, end.port
        ),
    };
    let deadline = std::time::Duration::from_secs(u64::from(s) + 30);
    let out = end.client.run(lab, &b.from, &script, deadline).await.map_err(|e| e.to_string())?;
    match b.kind {
        BenchKind::Throughput => parse_iperf(&out),
        BenchKind::RequestRate => {
            let n: f64 = out.trim().parse().map_err(|_| first_line(&out))?;
            if n == 0.0 {
                Err("no request answered".into())
            } else {
                Ok((n / s as f64, 0))
            }
        }
    }
}

/// Measure every path of a bench, alternating, and summarise.
pub async fn run_bench(lab: &Lab, stack: &AnyStack<'_>, b: &Bench) -> Result<BenchReport, LabError> {
    let t = Instant::now();
    let replicas = stack.replicas(&b.service).await?;
    // The replica on another node than the client, so every path crosses the network.
    let target = replicas.iter().find(|r| r.node != b.from).or(replicas.first()).cloned().ok_or_else(|| LabError::Converge {
        service: b.service.clone(),
        secs: 0,
        detail: "no running replica to measure".into(),
    })?;
    let mut ends = Vec::new();
    for p in &b.paths {
        let end = match p {
            PathKind::Node => node_end(lab, b, &target.node).await?,
            _ => stack.bench_path(b, *p, &target).await?,
        };
        ends.push(end);
    }
    let mut results: Vec<PathResult> = b
        .paths
        .iter()
        .zip(&ends)
        .map(|(p, e)| PathResult {
            path: p.word().to_string(),
            unsupported: e.as_ref().err().cloned(),
            how: e.as_ref().map(|e| e.how.clone()).unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    // A B C A B C …: drift over the run touches every path alike.
    for _ in 0..b.samples {
        for (i, end) in ends.iter().enumerate() {
            let Ok(end) = end else { continue };
            // Two failures in a row: the path is down (a fault), stop spending timeouts on it.
            if results[i].errors.len() >= 2 && results[i].samples.is_empty() {
                continue;
            }
            match sample(lab, b, end).await {
                Ok((v, retr)) => {
                    results[i].samples.push(v);
                    results[i].retransmits += retr;
                }
                Err(e) => results[i].errors.push(e),
            }
        }
    }
    let (gates, outcome, summary) = summarise(b, &mut results);
    Ok(BenchReport {
        name: b.name.clone(),
        kind: b.kind.word().into(),
        unit: b.kind.unit().into(),
        service: b.service.clone(),
        from: b.from.clone(),
        target: target.label(),
        samples: b.samples,
        seconds: b.seconds,
        paths: results,
        gates,
        outcome,
        summary,
        faults: vec![],
        secs: t.elapsed().as_secs_f64(),
    })
}
