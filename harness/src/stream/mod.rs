//! Streams: steady background traffic through a lab while its steps run, every request
//! recorded by the traffic agent (`agent/`, embedded here) inside the nodes.
//!
//! A stream starts one agent per entry node, in the network namespace its requests come from
//! (the node's own; swarm: the node's probe container on the service's overlay; Kubernetes: a
//! client pod), entered with `nsenter` so the agent binary comes from the node's filesystem. The
//! agent and the harness read one kernel's clock, so requests and steps share a timeline.

pub mod timeline;

use crate::lab::{shq, Lab};
use crate::model::{Identity, Stream, StreamTo};
use crate::probe::Client;
use crate::provider::LabError;
use crate::stack::{AnyStack, Replica, Stack};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use timeline::{Figures, Marker, Request};

/// The traffic agent, built from `agent/` by the build script (static, standard library only).
pub const AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/clusterlab-agent"));
/// Where the agent lives inside every node.
pub const AGENT_PATH: &str = "/usr/local/bin/clusterlab-agent";
/// Where agents write their records and look for their stop file.
const DIR: &str = "/run/clusterlab/streams";
/// An agent stops by itself after this long (the harness stops it long before; this bounds an
/// agent whose harness is gone on a kept lab).
const MAX_SECS: u64 = 3 * 3600;

/// Wall clock in ms since the epoch: the timeline's common ground with the agents.
pub fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// Copy the agent into every node (the same bytes, a few MB, before the first stream).
pub async fn install_agent(lab: &Lab) -> Result<(), LabError> {
    futures_util::future::try_join_all(
        lab.node_names()
            .into_iter()
            .map(|n| async move { lab.install_program(&n, "installing the traffic agent", AGENT_PATH, AGENT).await }),
    )
    .await
    .map(|_| ())
}

/// What the agent said about itself when it stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentCost {
    pub entry: String,
    pub sent: u64,
    /// CPU time (user + system) over the agent's run, and its length.
    pub cpu_ms: u64,
    pub ran_ms: u64,
    pub maxrss_kb: u64,
    /// How late requests left against their schedule (the agent's timing error).
    pub late_p50_us: u64,
    pub late_p99_us: u64,
    pub late_max_us: u64,
    /// The agent's t=0 against the harness's clock: it must fall between the launch and the
    /// moment its start line was read; this is that window's width (the bound on clock error).
    pub anchor_window_ms: f64,
    pub anchor_inside: bool,
}

/// A stream as the run reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StreamReport {
    pub name: String,
    pub service: String,
    pub to: String,
    pub from: Vec<String>,
    /// Requests per second from each entry node.
    pub rate: f64,
    pub timeout_ms: u64,
    pub outcome: crate::expect::Outcome,
    pub summary: String,
    /// What was dialled, by target key.
    pub targets: Vec<String>,
    /// Wall clock (ms since the epoch) at the stream's t=0.
    pub started_unix_ms: f64,
    pub figures: Figures,
    pub agents: Vec<AgentCost>,
    pub notes: Vec<String>,
    /// Cause lines for lost requests the stream could attribute (a server's full listen queue).
    #[serde(default)]
    pub diagnosis: Vec<String>,
    /// Why the stream could not run or be read, if so.
    pub error: Option<String>,
    /// Every request, for tools that draw their own pictures (`requests` in the JSON report).
    #[serde(default)]
    pub requests: Vec<Request>,
}

impl StreamReport {
    /// A stream's report before anything is known: an error until its records are read.
    pub fn of(stream: &Stream) -> StreamReport {
        StreamReport {
            name: stream.name.clone(),
            service: stream.service.clone(),
            to: stream.to.word().into(),
            from: stream.from.clone(),
            rate: stream.rate,
            timeout_ms: stream.timeout.as_millis() as u64,
            outcome: crate::expect::Outcome::Error,
            summary: String::new(),
            targets: vec![],
            started_unix_ms: 0.0,
            figures: Figures::default(),
            agents: vec![],
            notes: vec![],
            diagnosis: vec![],
            error: None,
            requests: vec![],
        }
    }
}

struct Lane {
    entry: String,
    out: String,
    stop: String,
    /// The harness's clock just before the launch and when the start line was read.
    launched_ms: f64,
    seen_ms: f64,
    anchor_ms: f64,
}

/// A stream whose agents are sending.
pub struct Running {
    pub stream: Stream,
    lanes: Vec<Lane>,
    /// Target key → label (`10.0.1.5` → `web.1@worker-1`).
    labels: BTreeMap<String, String>,
    /// Replica identity → label, for what answered.
    who: BTreeMap<String, String>,
    notes: Vec<String>,
    pub t0_ms: f64,
    /// Each node's container namespaces' listen-queue overflows when the stream started: a lost
    /// request is then told from a server that dropped connection attempts meanwhile.
    listen_before: BTreeMap<String, BTreeMap<String, u64>>,
}

fn failed(stream: &Stream, node: &str, message: String) -> LabError {
    LabError::Stream { stream: stream.name.clone(), node: node.to_string(), message }
}

/// The shell prefix that enters the client's network namespace on `node` (empty: the node's own).
async fn netns(lab: &Lab, stream: &Stream, client: &Client, node: &str) -> Result<String, LabError> {
    let pid_script = match client {
        Client::Node => return Ok(String::new()),
        Client::Overlay { network } => {
            format!("docker inspect -f '{{{{.State.Pid}}}}' {}", shq(&crate::stack::swarm::probe_container(network)))
        }
        Client::Container { name } => format!("docker inspect -f '{{{{.State.Pid}}}}' {}", shq(name)),
        Client::Pod { containers } => {
            let Some((_, id)) = containers.iter().find(|(n, _)| n == node) else {
                return Err(failed(stream, node, format!("no client pod runs on node {node}")));
            };
            crate::probe::pod_task_pid(id)
        }
    };
    let out = lab.sh_in(node, "finding the stream client's namespace", &pid_script, None).await?;
    let pid = out.stdout.trim();
    if pid.is_empty() || pid == "0" || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(failed(stream, node, format!("the client's process was not found (got {pid:?})")));
    }
    // -n: only the network namespace; the agent binary and /run stay the node's.
    Ok(format!("nsenter -t {pid} -n "))
}

/// Resolve the stream's targets and start its agents.
pub async fn start(lab: &Lab, stack: &AnyStack<'_>, stream: &Stream) -> Result<Running, LabError> {
    let listen_before = crate::probe::listen_counts(lab).await;
    let replicas: Vec<Replica> = stack.replicas(&stream.service).await?;
    let paths = stack.paths(&stream.service, stream.client).await?;
    let mut notes = Vec::new();
    let mut labels = BTreeMap::new();
    let svc = lab.scenario.service(&stream.service).expect("validated service");
    if svc.identity != Identity::Web {
        // The agent reads `replica=` (our web image) only: other answers count for the address
        // they came from, and a VIP's split is not known.
        notes.push(format!("{}'s answers are not read for a replica's name: an answer counts for the address it came from", svc.name));
    }
    let targets: Vec<(String, String)> = match stream.to {
        StreamTo::Replicas => replicas
            .iter()
            .map(|r| {
                labels.insert(r.ip.clone(), r.label());
                (r.ip.clone(), format!("{}:{}{}", r.ip, svc.port, stream.path))
            })
            .collect(),
        StreamTo::Vip => {
            let addr =
                paths.vip_addr.clone().ok_or_else(|| failed(stream, "-", format!("service {} has no VIP to stream to", stream.service)))?;
            labels.insert("vip".into(), format!("vip {addr}"));
            vec![("vip".into(), format!("{addr}{}", stream.path))]
        }
        StreamTo::NodePort => {
            let port = stream.port.or(paths.node_port).ok_or_else(|| failed(stream, "-", "the service has no node port".into()))?;
            stream
                .via
                .iter()
                .map(|v| {
                    let ip = lab.node_ip(v);
                    labels.insert(ip.clone(), format!("{v} ({ip}:{port})"));
                    (ip.clone(), format!("{ip}:{port}{}", stream.path))
                })
                .collect()
        }
    };
    let client = if stream.to == StreamTo::NodePort { Client::Node } else { paths.client.clone() };
    notes.push(format!(
        "{} request(s)/s from each of {} to {}, one connection each, {} ms timeout",
        stream.rate,
        stream.from.join(", "),
        labels.values().cloned().collect::<Vec<_>>().join(", "),
        stream.timeout.as_millis()
    ));
    let who = replicas.iter().map(|r| (r.identity.clone(), r.label())).collect();
    let lanes = futures_util::future::try_join_all(stream.from.iter().map(|entry| {
        let (targets, client) = (&targets, &client);
        async move {
            let ns = netns(lab, stream, client, entry).await?;
            let base = format!("{DIR}/{}-{entry}", stream.name);
            let (out, stop) = (format!("{base}.rec"), format!("{base}.stop"));
            let mut argv = vec![
                AGENT_PATH.to_string(),
                "stream".into(),
                "--rate".into(),
                stream.rate.to_string(),
                "--timeout-ms".into(),
                stream.timeout.as_millis().to_string(),
                "--max-secs".into(),
                MAX_SECS.to_string(),
                "--out".into(),
                out.clone(),
                "--stop".into(),
                stop.clone(),
            ];
            argv.extend(targets.iter().map(|(k, a)| format!("{k}={a}")));
            let cmd: Vec<String> = argv.iter().map(|a| shq(a)).collect();
            // setsid -f: the agent leaves the exec's session at once and outlives it; its
            // output goes to a log next to its records.
            let script = format!(
                "mkdir -p {DIR} && rm -f {out} {stop} && setsid -f {ns}{} > {base}.log 2>&1 < /dev/null",
                cmd.join(" "),
                out = shq(&out),
                stop = shq(&stop),
                base = shq(&base)
            );
            let launched_ms = now_ms();
            lab.sh_in(entry, &format!("starting stream {}", stream.name), &script, None).await?;
            // Its first line carries its t=0 on the wall clock.
            let wait = format!("for i in $(seq 1 100); do head -n1 {out} 2>/dev/null | grep -q '^#start' && break; sleep 0.05; done; head -n1 {out}; cat {base}.log", out = shq(&out), base = shq(&base));
            let head = lab.sh_in(entry, &format!("starting stream {}", stream.name), &wait, None).await?;
            let seen_ms = now_ms();
            let anchor_ms = head
                .stdout
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("unix_ns=")))
                .and_then(|v| v.parse::<f64>().ok())
                .map(|ns| ns / 1e6)
                .ok_or_else(|| failed(stream, entry, format!("the agent did not start:\n{}", crate::provider::tail(&head.stdout, 6))))?;
            Ok::<_, LabError>(Lane { entry: entry.clone(), out, stop, launched_ms, seen_ms, anchor_ms })
        }
    }))
    .await?;
    let t0_ms = lanes.iter().map(|l| l.anchor_ms).fold(f64::INFINITY, f64::min);
    Ok(Running { stream: stream.clone(), lanes, labels, who, notes, t0_ms, listen_before })
}

/// One record line of the agent: `<seq> <key> <sched µs> <sent µs> <latency µs> <result> <replica>`.
fn parse_record(line: &str) -> Option<(String, f64, f64, String, Option<String>)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 7 || line.starts_with('#') {
        return None;
    }
    let us = |s: &str| s.parse::<f64>().ok().map(|v| v / 1000.0);
    let replica = (f[6] != "-").then(|| f[6].to_string());
    Some((f[1].to_string(), us(f[3])?, us(f[4])?, f[5].to_string(), replica))
}

/// `#end sent=.. cpu_ms=..`: the agent's own account.
fn parse_end(line: &str, entry: &str) -> Option<AgentCost> {
    let rest = line.strip_prefix("#end")?;
    let kv: BTreeMap<&str, u64> =
        rest.split_whitespace().filter_map(|w| w.split_once('=')).filter_map(|(k, v)| Some((k, v.parse().ok()?))).collect();
    let g = |k: &str| kv.get(k).copied().unwrap_or(0);
    Some(AgentCost {
        entry: entry.to_string(),
        sent: g("sent"),
        cpu_ms: g("cpu_ms"),
        ran_ms: g("ran_ms"),
        maxrss_kb: g("maxrss_kb"),
        late_p50_us: g("late_p50_us"),
        late_p99_us: g("late_p99_us"),
        late_max_us: g("late_max_us"),
        ..Default::default()
    })
}

impl Running {
    /// What the stream does, for the step's detail lines.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Stop the agents, read every record, and judge the stream over the markers of the steps
    /// it ran across (wall-clock ms).
    pub async fn stop(self, lab: &Lab, stack: &AnyStack<'_>, markers: &[Marker]) -> StreamReport {
        let stream = &self.stream;
        let mut report = StreamReport::of(stream);
        report.targets = self.labels.values().cloned().collect();
        report.started_unix_ms = self.t0_ms;
        report.notes = self.notes.clone();
        let end_ms = now_ms() - self.t0_ms;
        // Replicas that answered may have come and gone (scale): label every one seen.
        let mut who = self.who.clone();
        if let Ok(rs) = stack.replicas(&stream.service).await {
            who.extend(rs.iter().map(|r| (r.identity.clone(), r.label())));
        }
        let read = futures_util::future::try_join_all(self.lanes.iter().map(|lane| async move {
            // Stop, then wait for the requests in flight (one timeout) and the end line.
            let secs = stream.timeout.as_secs() + 10;
            let script = format!(
                "touch {stop}; for i in $(seq 1 {n}); do tail -n1 {out} | grep -q '^#end' && break; sleep 0.1; done; cat {out}",
                stop = shq(&lane.stop),
                out = shq(&lane.out),
                n = secs * 10
            );
            let out = lab.sh_within(&lane.entry, &script, None, Duration::from_secs(secs + 20)).await?;
            Ok::<_, LabError>((lane, out.stdout))
        }))
        .await;
        let lanes = match read {
            Ok(l) => l,
            Err(e) => {
                report.error = Some(e.to_string());
                report.summary = "could not read the stream's records".into();
                return report;
            }
        };
        let names = lab.scenario.service(&stream.service).is_some_and(|s| s.identity == Identity::Web);
        let mut reqs = Vec::new();
        for (lane, text) in lanes {
            let offset = lane.anchor_ms - self.t0_ms;
            let mut end = None;
            for line in text.lines() {
                if let Some((key, sent_ms, lat_ms, mut result, replica)) = parse_record(line) {
                    let replica = replica.map(|id| who.get(&id).cloned().unwrap_or(id));
                    // To a replica's own address, only that replica's answer counts (where
                    // answers name their replica).
                    if stream.to == StreamTo::Replicas && result == "ok" && names {
                        let want = self.labels.get(&key);
                        if replica.as_ref() != want {
                            result = "wrong-replica".into();
                        }
                    }
                    reqs.push(Request {
                        entry: lane.entry.clone(),
                        target: self.labels.get(&key).cloned().unwrap_or(key),
                        at_ms: offset + sent_ms,
                        latency_ms: lat_ms,
                        result,
                        replica,
                    });
                } else if let Some(mut c) = parse_end(line, &lane.entry) {
                    c.anchor_window_ms = lane.seen_ms - lane.launched_ms;
                    c.anchor_inside = lane.anchor_ms >= lane.launched_ms - 1.0 && lane.anchor_ms <= lane.seen_ms + 1.0;
                    end = Some(c);
                }
            }
            match end {
                Some(c) => {
                    if c.sent as usize != reqs.iter().filter(|r| r.entry == lane.entry).count() {
                        report.error = Some(format!(
                            "the agent on {} sent {} requests but recorded {}",
                            lane.entry,
                            c.sent,
                            reqs.iter().filter(|r| r.entry == lane.entry).count()
                        ));
                    }
                    report.agents.push(c);
                }
                None => {
                    report.error = Some(format!("the agent on {} did not finish its records (no #end line)", lane.entry));
                }
            }
        }
        // Every step so far: a fault applied before the stream started still shapes it.
        let markers: Vec<Marker> =
            markers.iter().map(|m| Marker { start_ms: m.start_ms - self.t0_ms, end_ms: m.end_ms - self.t0_ms, ..m.clone() }).collect();
        report.figures = timeline::figures(stream, &reqs, &markers, end_ms);
        // Lost requests and a server that dropped connection attempts meanwhile: say so, with
        // where (a dropped attempt is sent again after 1 s, often past the stream's timeout).
        if reqs.iter().any(|r| r.result != "ok") {
            let after = crate::probe::listen_counts(lab).await;
            for (node, full) in crate::probe::overflowed(&self.listen_before, &after) {
                report.diagnosis.push(crate::probe::overflow_words(&node, &full, "while the stream ran"));
            }
        }
        report.requests = reqs;
        let f = &report.figures;
        let gates_failed = f.gates.iter().filter(|g| !g.ok).count();
        report.outcome = match (&report.error, gates_failed) {
            (Some(_), _) => crate::expect::Outcome::Error,
            (None, 0) => crate::expect::Outcome::Pass,
            (None, _) => crate::expect::Outcome::Fail,
        };
        report.summary = format!(
            "{}/{} requests answered over {:.1} s{}",
            f.answered,
            f.sent,
            f.duration_ms / 1000.0,
            if f.gates.is_empty() { String::new() } else { format!(", {}/{} gates hold", f.gates.len() - gates_failed, f.gates.len()) }
        );
        report
    }
}

#[cfg(test)]
mod tests;
