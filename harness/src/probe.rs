//! Probes observe service paths; they judge nothing. Each check kind runs one script per entry
//! node (requests in parallel inside it), so a check costs about one timeout, not one per pair.

use crate::lab::{shq, Lab};
use crate::model::{Check, CheckKind};
use crate::provider::LabError;
use crate::stack::swarm::probe_container;
use crate::stack::Replica;
use futures_util::future::try_join_all;

/// A column of the matrix: a replica (replicas, vip, dns) or a node address (node-port).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Target {
    pub label: String,
    /// The node the target lives on: what expectations name.
    pub node: String,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Cell {
    /// Requests answered by this target.
    pub hits: u32,
    pub tries: u32,
    /// What went wrong, when something did (timeout, refused, wrong replica...).
    pub detail: String,
}

/// What a check saw: rows are entry nodes, columns targets.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Observation {
    pub rows: Vec<String>,
    pub cols: Vec<Target>,
    pub cells: Vec<Vec<Cell>>,
    /// Per-row failures that belong to no column (a VIP request nobody answered).
    pub unanswered: Vec<u32>,
    pub notes: Vec<String>,
}

/// One request's result line from a probe script: `<target> <exit code> <body...>`.
fn parse_result(line: &str) -> Option<(String, i32, String)> {
    let mut it = line.splitn(3, ' ');
    let t = it.next()?.to_string();
    let rc = it.next()?.parse().ok()?;
    Some((t, rc, it.next().unwrap_or("").trim().to_string()))
}

/// The replica identity in a web response: `replica=<hostname> ips=...`.
pub fn identity(body: &str) -> Option<&str> {
    body.split_whitespace().find_map(|w| w.strip_prefix("replica="))
}

fn failure_detail(rc: i32, body: &str) -> String {
    match rc {
        // curl: 28 operation timed out, 7 could not connect.
        28 => "timeout".into(),
        7 => "connection refused".into(),
        // busybox timeout kills with TERM (143); coreutils timeout reports 124.
        124 | 143 => "timeout".into(),
        _ if body.contains("timed out") => "timeout".into(),
        _ if body.contains("refused") => "connection refused".into(),
        _ if body.contains("bad address") => "name does not resolve".into(),
        _ if body.is_empty() => format!("exit {rc}"),
        _ => body.chars().take(80).collect(),
    }
}

fn secs(check: &Check) -> String {
    format!("{}", check.timeout.as_secs().max(1))
}

/// Where a probe's requests start from on an entry node.
#[derive(Debug, Clone, PartialEq)]
pub enum Client {
    /// A probe container on this overlay network, one per node (swarm): it sees the overlay as a
    /// task does. Requests with busybox wget.
    Overlay { network: String },
    /// The node's own network namespace (Kubernetes: nodes route every pod CIDR, and kube-proxy
    /// rules apply to traffic the node sends). Requests with curl.
    Node,
    /// A client pod on each node (Kubernetes), entered through containerd: (node, container id).
    /// Requests with busybox wget, inside the pod network.
    Pod { containers: Vec<(String, String)> },
    /// A container of the node's own engine (swarm: the bench client on an overlay).
    Container { name: String },
}

impl Client {
    /// A shell snippet fetching `url` within `t` seconds; prints the body, exits non-zero on failure.
    fn fetch(&self, url: &str, t: &str) -> String {
        match self {
            // `timeout` bounds a hung connect; busybox 1.35's own `wget -T` crashes (SIGSEGV).
            Client::Overlay { .. } | Client::Pod { .. } | Client::Container { .. } => format!("timeout {t} wget -q -O - {url}"),
            // --noproxy '*': a proxy in the environment must never carry a probe.
            Client::Node => format!("curl -s --noproxy '*' -m {t} {url}"),
        }
    }

    /// Run a script where this client's requests start, on `node`; returns its output.
    pub async fn run(&self, lab: &Lab, node: &str, script: &str) -> Result<String, LabError> {
        match self {
            Client::Container { name } => Ok(lab.sh_raw(node, &format!("docker exec {name} sh -c {}", shq(script))).await?.stdout),
            Client::Overlay { network } => {
                let cmd = format!("docker exec {} sh -c {}", probe_container(network), shq(script));
                Ok(lab.sh_raw(node, &cmd).await?.stdout)
            }
            Client::Node => Ok(lab.sh_raw(node, script).await?.stdout),
            Client::Pod { containers } => {
                let Some((_, id)) = containers.iter().find(|(n, _)| n == node) else {
                    return Err(LabError::Fault { fault: "client pod".into(), message: format!("no client pod runs on node {node}") });
                };
                // A unique exec id per call: containerd refuses two live execs with one id.
                let cmd = format!("ctr -n k8s.io task exec --exec-id cl-$$-$(date +%N) {id} sh -c {}", shq(script));
                Ok(lab.sh_raw(node, &cmd).await?.stdout)
            }
        }
    }
}

/// What the stack tells probes about one service.
#[derive(Debug, Clone)]
pub struct ServicePaths {
    pub client: Client,
    /// What a vip check dials: the service's name (swarm resolves it to its VIP) or ClusterIP:port.
    pub vip: String,
    /// The port a node-port check dials when the check names none.
    pub node_port: Option<u16>,
    /// Facts worth showing with the matrix (the VIP's address, ...).
    pub notes: Vec<String>,
}

pub async fn observe(lab: &Lab, check: &Check, replicas: &[Replica], paths: &ServicePaths) -> Result<Observation, LabError> {
    let mut obs = Observation { rows: check.from.clone(), notes: paths.notes.clone(), ..Default::default() };
    obs.cols = match check.kind {
        CheckKind::NodePort => check.via.iter().map(|n| Target { label: format!("{n} ({})", lab.node_ip(n)), node: n.clone() }).collect(),
        _ => replicas.iter().map(|r| Target { label: r.label(), node: r.node.clone() }).collect(),
    };
    let t = secs(check);
    let client = &paths.client;
    let rows = try_join_all(check.from.iter().map(|entry| {
        let t = t.clone();
        async move {
            match check.kind {
                CheckKind::Replicas => {
                    // Each replica by its own address, all at once.
                    let script = format!(
                        "for t in {}; do (r=$({} 2>&1); echo \"$t $? $r\" | head -n1) & done; wait",
                        replicas.iter().map(|r| r.ip.clone()).collect::<Vec<_>>().join(" "),
                        client.fetch(&format!("http://$t{}", check.path), &t)
                    );
                    let out = client.run(lab, entry, &script).await?;
                    let cells = replicas
                        .iter()
                        .map(|r| match out.lines().filter_map(parse_result).find(|(ip, _, _)| *ip == r.ip) {
                            Some((_, 0, body)) if identity(&body) == Some(r.identity.as_str()) => {
                                Cell { hits: 1, tries: 1, detail: String::new() }
                            }
                            Some((_, 0, body)) => {
                                Cell { hits: 0, tries: 1, detail: format!("answered by {}", identity(&body).unwrap_or("?")) }
                            }
                            Some((_, rc, body)) => Cell { hits: 0, tries: 1, detail: failure_detail(rc, &body) },
                            None => Cell { hits: 0, tries: 1, detail: "no result".into() },
                        })
                        .collect::<Vec<_>>();
                    Ok::<_, LabError>((cells, 0, None))
                }
                CheckKind::Vip => {
                    // In sequence: the split over replicas is what a VIP is about.
                    let script = format!(
                        "for i in $(seq {n}); do r=$({f} 2>&1); echo \"$i $? $r\" | head -n1; done",
                        n = check.requests,
                        f = client.fetch(&format!("http://{}{}", paths.vip, check.path), &t)
                    );
                    let out = client.run(lab, entry, &script).await?;
                    let mut cells = vec![Cell { hits: 0, tries: check.requests, detail: String::new() }; replicas.len()];
                    let mut unanswered = 0;
                    let mut why = Vec::new();
                    for (_, rc, body) in out.lines().filter_map(parse_result) {
                        let who = if rc == 0 { identity(&body) } else { None };
                        match who.and_then(|id| replicas.iter().position(|r| r.identity == id)) {
                            Some(i) => cells[i].hits += 1,
                            None => {
                                unanswered += 1;
                                why.push(failure_detail(rc, &body));
                            }
                        }
                    }
                    why.dedup();
                    for c in cells.iter_mut().filter(|c| c.hits == 0) {
                        c.detail = why.first().cloned().unwrap_or_else(|| "never chosen".into());
                    }
                    Ok((cells, unanswered, None))
                }
                CheckKind::NodePort => {
                    // From the entry node's own namespace, which is not on the overlay or pod
                    // network: the path an outside client takes.
                    let port = check.port.or(paths.node_port).unwrap_or(80);
                    let script = format!(
                        "for v in {}; do (for i in $(seq {n}); do r=$({f} 2>&1); echo \"$v $? $r\" | head -n1; done) & done; wait",
                        check.via.iter().map(|n| lab.node_ip(n)).collect::<Vec<_>>().join(" "),
                        n = check.requests,
                        f = Client::Node.fetch(&format!("http://$v:{port}{}", check.path), &t)
                    );
                    let out = Client::Node.run(lab, entry, &script).await?;
                    let cells = check
                        .via
                        .iter()
                        .map(|v| {
                            let ip = lab.node_ip(v);
                            let mut c = Cell { hits: 0, tries: check.requests, detail: String::new() };
                            for (_, rc, body) in out.lines().filter_map(parse_result).filter(|(t, _, _)| *t == ip) {
                                match identity(&body) {
                                    // Only running replicas count: an answer from anything else is wrong.
                                    Some(id) if rc == 0 && replicas.iter().any(|r| r.identity == id) => c.hits += 1,
                                    Some(id) if rc == 0 => c.detail = format!("answered by {id}, not a running replica"),
                                    _ if c.detail.is_empty() => c.detail = failure_detail(rc, &body),
                                    _ => {}
                                }
                            }
                            c
                        })
                        .collect();
                    Ok((cells, 0, None))
                }
                CheckKind::Dns => {
                    let script = format!("nslookup tasks.{} 127.0.0.11 2>&1", shq(&check.service));
                    let out = client.run(lab, entry, &script).await?;
                    let resolved = dns_addresses(&out);
                    let cells = replicas
                        .iter()
                        .map(|r| {
                            let hit = resolved.contains(&r.ip);
                            Cell { hits: hit as u32, tries: 1, detail: if hit { String::new() } else { "not in the answer".into() } }
                        })
                        .collect();
                    let extra: Vec<&String> = resolved.iter().filter(|ip| !replicas.iter().any(|r| &r.ip == *ip)).collect();
                    let note = (!extra.is_empty())
                        .then(|| format!("tasks.{} from {entry} also lists {:?}, which no running replica has", check.service, extra));
                    Ok((cells, extra.len() as u32, note))
                }
                CheckKind::Api => {
                    Err(LabError::Fault { fault: check.name.clone(), message: "api checks are observed by the stack".into() })
                }
            }
        }
    }))
    .await?;
    for (cells, unanswered, note) in rows {
        obs.cells.push(cells);
        obs.unanswered.push(unanswered);
        obs.notes.extend(note);
    }
    Ok(obs)
}

/// Addresses in a busybox nslookup answer (after the `Name:` line; the server's own is before it).
pub fn dns_addresses(out: &str) -> Vec<String> {
    let mut seen_name = false;
    let mut v = Vec::new();
    for l in out.lines() {
        if l.starts_with("Name:") {
            seen_name = true;
        } else if seen_name {
            if let Some(a) = l.strip_prefix("Address:") {
                let a = a.trim();
                if !v.contains(&a.to_string()) {
                    v.push(a.to_string());
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_busybox_nslookup() {
        let out = "Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53\n\nNon-authoritative answer:\nName:\ttasks.web\nAddress: 10.0.1.3\nName:\ttasks.web\nAddress: 10.0.1.5\n\nNon-authoritative answer:\n";
        assert_eq!(dns_addresses(out), ["10.0.1.3", "10.0.1.5"]);
        assert!(dns_addresses("** server can't find tasks.web: NXDOMAIN\n").is_empty());
    }

    #[test]
    fn parses_probe_lines() {
        assert_eq!(parse_result("10.0.1.3 0 replica=abc ips=10.0.1.3 "), Some(("10.0.1.3".into(), 0, "replica=abc ips=10.0.1.3".into())));
        assert_eq!(parse_result("10.0.1.3 143 "), Some(("10.0.1.3".into(), 143, "".into())));
        assert_eq!(parse_result("garbage"), None);
        assert_eq!(identity("replica=abc ips=1.2.3.4"), Some("abc"));
        assert_eq!(failure_detail(143, ""), "timeout");
        assert_eq!(failure_detail(1, "wget: can't connect to remote host (10.0.1.3): Connection refused"), "connection refused");
    }
}
