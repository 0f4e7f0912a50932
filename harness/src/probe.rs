//! Probes observe service paths; they judge nothing. Each check kind runs one script per entry
//! node (requests in parallel inside it), so a check costs about one timeout, not one per pair.

use crate::lab::{shq, Lab};
use crate::model::{Check, CheckKind, Scenario};
use crate::provider::LabError;
use crate::stack::swarm::probe_container;
use crate::stack::Replica;
use futures_util::future::try_join_all;

/// A column of the matrix: a replica (replicas, vip, dns) or a node address (node-port).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Target {
    pub label: String,
    /// The node the target lives on: what expectations name.
    pub node: String,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Cell {
    /// Requests answered by this target.
    pub hits: u32,
    pub tries: u32,
    /// What went wrong, when something did (timeout, refused, wrong replica...).
    pub detail: String,
}

/// What a check saw: rows are entry nodes, columns targets.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
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
    body.split_whitespace()
        .find_map(|w| w.strip_prefix("replica="))
}

fn failure_detail(rc: i32, body: &str) -> String {
    match rc {
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

pub async fn observe(
    lab: &Lab,
    check: &Check,
    replicas: &[Replica],
) -> Result<Observation, LabError> {
    let svc = lab
        .scenario
        .service(&check.service)
        .expect("validated service");
    let net = svc.network.clone();
    let mut obs = Observation {
        rows: check.from.clone(),
        ..Default::default()
    };
    match check.kind {
        CheckKind::Replicas | CheckKind::Dns | CheckKind::Vip => {
            obs.cols = replicas
                .iter()
                .map(|r| Target {
                    label: r.label(),
                    node: r.node.clone(),
                })
                .collect();
        }
        CheckKind::NodePort => {
            obs.cols = check
                .via
                .iter()
                .map(|n| Target {
                    label: format!("{n} ({})", lab.node_ip(n)),
                    node: n.clone(),
                })
                .collect();
        }
    }
    let t = secs(check);
    let rows = try_join_all(check.from.iter().map(|entry| {
        let (net, t) = (net.clone(), t.clone());
        async move {
            match check.kind {
                CheckKind::Replicas => {
                    // Each replica by its overlay address, all at once. `timeout` bounds a hung connect;
                    // busybox 1.35's own `wget -T` crashes (SIGSEGV), so it is not used.
                    let targets: Vec<String> = replicas.iter().map(|r| r.ip.clone()).collect();
                    let script = format!(
                        "for t in {}; do (r=$(timeout {t} wget -q -O - http://$t/ 2>&1); echo \"$t $? $r\" | head -n1) & done; wait",
                        targets.join(" ")
                    );
                    let out = in_probe(lab, entry, &net, &script).await?;
                    Ok::<_, LabError>(replicas
                        .iter()
                        .map(|r| {
                            let line = out.lines().filter_map(parse_result).find(|(ip, _, _)| *ip == r.ip);
                            match line {
                                Some((_, 0, body)) if identity(&body) == Some(r.identity.as_str()) => Cell { hits: 1, tries: 1, detail: String::new() },
                                Some((_, 0, body)) => Cell { hits: 0, tries: 1, detail: format!("answered by {}", identity(&body).unwrap_or("?")) },
                                Some((_, rc, body)) => Cell { hits: 0, tries: 1, detail: failure_detail(rc, &body) },
                                None => Cell { hits: 0, tries: 1, detail: "no result".into() },
                            }
                        })
                        .collect::<Vec<_>>())
                    .map(|cells| (cells, 0, None))
                }
                CheckKind::Vip => {
                    // In sequence: the split over replicas is what a VIP is about.
                    let script = format!(
                        "nslookup {svc} 127.0.0.11 2>/dev/null | awk '/^Name/{{n=1}} n&&/^Address/{{print \"VIP\", $2}}' | head -n1; \
                         for i in $(seq {n}); do r=$(timeout {t} wget -q -O - http://{svc}/ 2>&1); echo \"$i $? $r\" | head -n1; done",
                        svc = shq(&check.service),
                        n = check.requests
                    );
                    let out = in_probe(lab, entry, &net, &script).await?;
                    let vip = out.lines().find_map(|l| l.strip_prefix("VIP ")).map(|s| s.trim().to_string());
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
                    Ok((cells, unanswered, vip.map(|v| format!("{} resolves to VIP {v} from {entry}", check.service))))
                }
                CheckKind::NodePort => {
                    // From the node's own namespace, which is not on the overlay: the path an outside client takes.
                    // --noproxy '*': a proxy in the environment must never carry a probe.
                    let port = check.port.unwrap_or(80);
                    let script = format!(
                        "for v in {}; do (for i in $(seq {n}); do r=$(curl -s --noproxy '*' -m {t} http://$v:{port}/ 2>&1); echo \"$v $? $r\" | head -n1; done) & done; wait",
                        check.via.iter().map(|n| lab.node_ip(n)).collect::<Vec<_>>().join(" "),
                        n = check.requests
                    );
                    let out = lab.sh_raw(entry, &script).await?.stdout;
                    let cells = check
                        .via
                        .iter()
                        .map(|v| {
                            let ip = lab.node_ip(v);
                            let mut c = Cell { hits: 0, tries: check.requests, detail: String::new() };
                            for (_, rc, body) in out.lines().filter_map(parse_result).filter(|(t, _, _)| *t == ip) {
                                if rc == 0 && identity(&body).is_some() {
                                    c.hits += 1;
                                } else if c.detail.is_empty() {
                                    c.detail = match rc {
                                        28 => "timeout".into(),
                                        7 => "connection refused".into(),
                                        _ => failure_detail(rc, &body),
                                    };
                                }
                            }
                            c
                        })
                        .collect();
                    Ok((cells, 0, None))
                }
                CheckKind::Dns => {
                    let script = format!("nslookup tasks.{} 127.0.0.11 2>&1", shq(&check.service));
                    let out = in_probe(lab, entry, &net, &script).await?;
                    let resolved = dns_addresses(&out);
                    let cells = replicas
                        .iter()
                        .map(|r| {
                            let hit = resolved.contains(&r.ip);
                            Cell { hits: hit as u32, tries: 1, detail: if hit { String::new() } else { "not in the answer".into() } }
                        })
                        .collect();
                    let extra: Vec<&String> = resolved.iter().filter(|ip| !replicas.iter().any(|r| &r.ip == *ip)).collect();
                    let note = (!extra.is_empty()).then(|| format!("tasks.{} from {entry} also lists {:?}, which no running replica has", check.service, extra));
                    Ok((cells, extra.len() as u32, note))
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

/// Run a script in the probe container a node keeps on `network`.
async fn in_probe(lab: &Lab, node: &str, network: &str, script: &str) -> Result<String, LabError> {
    let cmd = format!(
        "docker exec {} sh -c {}",
        probe_container(network),
        shq(script)
    );
    Ok(lab.sh_raw(node, &cmd).await?.stdout)
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

/// Host facts a check depends on, measured inside a node (they are the node's kernel's).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeFacts {
    pub ip_vs: bool,
}

pub async fn node_facts(lab: &Lab, node: &str) -> Result<NodeFacts, LabError> {
    // /proc/net/ip_vs exists only when the kernel has IPVS (built in or loaded).
    let out = lab.sh_raw(node, "test -e /proc/net/ip_vs").await?;
    Ok(NodeFacts { ip_vs: out.ok() })
}

/// Why a check cannot pass on this host, if it cannot.
pub fn unsupported_reason(s: &Scenario, check: &Check, facts: &NodeFacts) -> Option<String> {
    let svc = s.service(&check.service)?;
    let needs_ipvs = match check.kind {
        CheckKind::Vip => svc.endpoint_mode == crate::model::EndpointMode::Vip,
        // The routing mesh forwards published ports through IPVS in the ingress network.
        CheckKind::NodePort => true,
        _ => false,
    };
    (needs_ipvs && !facts.ip_vs)
        .then(|| "kernel lacks IP_VS (swarm's VIP and routing mesh are IPVS)".to_string())
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
        assert_eq!(
            parse_result("10.0.1.3 0 replica=abc ips=10.0.1.3 "),
            Some(("10.0.1.3".into(), 0, "replica=abc ips=10.0.1.3".into()))
        );
        assert_eq!(
            parse_result("10.0.1.3 143 "),
            Some(("10.0.1.3".into(), 143, "".into()))
        );
        assert_eq!(parse_result("garbage"), None);
        assert_eq!(identity("replica=abc ips=1.2.3.4"), Some("abc"));
        assert_eq!(failure_detail(143, ""), "timeout");
        assert_eq!(
            failure_detail(
                1,
                "wget: can't connect to remote host (10.0.1.3): Connection refused"
            ),
            "connection refused"
        );
    }
}
