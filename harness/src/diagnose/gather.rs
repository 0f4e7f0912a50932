//! Recording the evidence a diagnosis needs, from a live lab: a snapshot before a check (fault
//! counters, VXLAN counters), and after it the rest (components, proxy answers).

use super::{Effect, Evidence, FaultFact, Lost, OverlayView, Pair, ProxyAnswer, Vxlan, PROBE};
use crate::fault::{Action, Counters, FaultHandle, CLIENT_ENV, CLIENT_ENV_FAULT};
use crate::lab::Lab;
use crate::model::{Direction, FaultSpec, Protocol};
use crate::report::CheckReport;
use futures_util::future::join_all;
use std::collections::BTreeMap;

/// Counters taken just before a check, to tell what moved during it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub faults: BTreeMap<String, Counters>,
    pub vxlan: BTreeMap<String, Vxlan>,
}

/// Every VXLAN device of a node: its own namespace and the ones its runtime made (swarm keeps
/// overlay VXLAN devices in namespaces under /var/run/docker/netns). One JSON array per line.
const VXLAN_SCRIPT: &str = "ip -s -j link show type vxlan 2>/dev/null; echo; \
    for f in /var/run/docker/netns/*; do [ -e \"$f\" ] && nsenter --net=\"$f\" ip -s -j link show type vxlan 2>/dev/null && echo; done; true";

/// Sum of the VXLAN device counters in `ip -s -j link` output lines.
pub fn parse_vxlan(out: &str) -> Vxlan {
    let mut v = Vxlan::default();
    for line in out.lines().filter(|l| l.trim_start().starts_with('[')) {
        let Ok(serde_json::Value::Array(devs)) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        for d in devs {
            let n = |dir: &str, k: &str| d["stats64"][dir][k].as_u64().unwrap_or(0);
            v.rx += n("rx", "packets");
            v.tx += n("tx", "packets");
            v.rx_dropped += n("rx", "dropped");
        }
    }
    v
}

async fn vxlan_all(lab: &Lab) -> BTreeMap<String, Vxlan> {
    let outs = join_all(lab.plan.nodes.iter().map(|n| async move { (n.name.clone(), lab.sh_raw(&n.name, VXLAN_SCRIPT).await) })).await;
    // A paused node cannot be asked; it simply has no entry.
    outs.into_iter().filter_map(|(n, o)| o.ok().map(|o| (n, parse_vxlan(&o.stdout)))).collect()
}

impl Snapshot {
    pub async fn take(lab: &Lab, applied: &BTreeMap<String, FaultHandle>) -> Snapshot {
        let mut faults = BTreeMap::new();
        for (name, h) in applied {
            if let Ok(c) = h.counters(lab).await {
                faults.insert(name.clone(), c);
            }
        }
        Snapshot { faults, vxlan: vxlan_all(lab).await }
    }
}

fn proto_word(m: &crate::model::Match) -> String {
    let p = match m.protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Icmp => "ICMP",
        Protocol::All => "all traffic",
    };
    match m.port {
        Some(port) => format!("{p} {port}"),
        None => p.to_string(),
    }
}

fn direction_word(d: Direction) -> String {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
        Direction::Both => "both",
    }
    .into()
}

/// The `KEY=value` proxy environment a fault wrote into a node, if any: (env, fault name).
async fn client_env(lab: &Lab, node: &str) -> Option<(BTreeMap<String, String>, String)> {
    let out = lab.sh_raw(node, &format!("cat {CLIENT_ENV} 2>/dev/null && echo '#fault' && cat {CLIENT_ENV_FAULT}")).await.ok()?;
    if !out.ok() {
        return None;
    }
    let (env, fault) = out.stdout.split_once("#fault")?;
    let map = env.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Some((map, fault.trim().to_string()))
}

/// Does a `no_proxy` list exempt this address (exact, `*`, a suffix, or an IPv4 CIDR), as Go's
/// proxy rules (kubectl's) read it?
pub fn exempt(no_proxy: &str, ip: &str) -> bool {
    let addr: Option<std::net::Ipv4Addr> = ip.parse().ok();
    no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|e| {
        if e == "*" || e == ip {
            return true;
        }
        if let (Some((net, len)), Some(a)) = (e.split_once('/'), addr) {
            if let (Ok(net), Ok(len)) = (net.parse::<std::net::Ipv4Addr>(), len.parse::<u32>()) {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len.min(32)) };
                return u32::from(net) & mask == u32::from(a) & mask;
            }
        }
        false
    })
}

/// What the proxy answers to the request kubectl makes from `node` (CONNECT to the API), asked
/// again the same way, so the answer kubectl threw away can be shown.
async fn proxy_answer(lab: &Lab, node: &str) -> Option<ProxyAnswer> {
    let (env, fault) = client_env(lab, node).await?;
    let url = env.get("https_proxy").or_else(|| env.get("HTTPS_PROXY"))?.clone();
    let master = lab.node_ip(&lab.plan.leader().name);
    if exempt(env.get("no_proxy").map(String::as_str).unwrap_or(""), &master) {
        return None;
    }
    let hostport = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let (host, port) = hostport.split_once(':')?;
    let target = format!("{master}:6443");
    // bash's /dev/tcp: the raw answer, headers and body, as the proxy sent it.
    let script = format!(
        "exec bash -c 'exec 3<>/dev/tcp/{host}/{port} || exit 1; printf \"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\nProxy-Connection: close\\r\\n\\r\\n\" >&3; timeout 8 cat <&3 | head -c 8000'"
    );
    let out = lab.sh_raw(node, &script).await.ok()?;
    (!out.stdout.is_empty()).then(|| ProxyAnswer { url, fault, request: format!("CONNECT {target}"), raw: out.stdout })
}

/// Record the evidence for one check that just ran.
pub async fn gather(
    lab: &Lab,
    check: &CheckReport,
    applied: &BTreeMap<String, FaultHandle>,
    before: &Snapshot,
    after: &BTreeMap<String, Counters>,
    unsupported: Option<String>,
) -> Evidence {
    let o = &check.observation;
    let mut pairs = Vec::new();
    for (r, entry) in o.rows.iter().enumerate() {
        for (c, t) in o.cols.iter().enumerate() {
            let cell = o.cells.get(r).and_then(|row| row.get(c)).cloned().unwrap_or_default();
            pairs.push(Pair {
                entry: entry.clone(),
                target: t.label.clone(),
                node: t.node.clone(),
                answered: cell.hits > 0,
                expected: check.expected.get(r).and_then(|e| e.get(c)).copied().unwrap_or(true),
                detail: cell.detail.clone(),
                answers: cell.hits,
                requests: cell.tries,
            });
        }
    }
    let lost = o
        .rows
        .iter()
        .enumerate()
        .filter(|_| check.kind == "vip")
        .map(|(r, entry)| Lost {
            entry: entry.clone(),
            lost: o.unanswered.get(r).copied().unwrap_or(0),
            sent: o.sent.get(r).copied().unwrap_or(0),
            detail: o.cells.get(r).and_then(|row| row.first()).map(|c| c.detail.clone()).unwrap_or_default(),
        })
        .filter(|l| l.lost > 0)
        .collect();
    let mut faults = Vec::new();
    for (name, h) in applied {
        let Some(spec) = lab.scenario.fault(name).map(|f| &f.spec) else { continue };
        let effect = match spec {
            FaultSpec::Drop { nodes, matches } => Effect::Drop {
                nodes: nodes.clone(),
                what: proto_word(matches),
                direction: direction_word(matches.direction),
                peers: matches.peers.clone(),
                percent: None,
            },
            FaultSpec::Loss { nodes, matches, percent } => Effect::Drop {
                nodes: nodes.clone(),
                what: proto_word(matches),
                direction: direction_word(matches.direction),
                peers: matches.peers.clone(),
                percent: Some(*percent),
            },
            FaultSpec::Rate { nodes, matches, bits, .. } => Effect::Rate {
                nodes: nodes.clone(),
                what: proto_word(matches),
                direction: direction_word(matches.direction),
                peers: matches.peers.clone(),
                bits: *bits,
            },
            FaultSpec::Delay { nodes, matches, delay_us, jitter_us, distribution, .. } => Effect::Delay {
                nodes: nodes.clone(),
                what: proto_word(matches),
                direction: direction_word(matches.direction),
                peers: matches.peers.clone(),
                delay: crate::fault::delay_words(*delay_us, *jitter_us, *distribution),
            },
            FaultSpec::Corrupt { nodes, matches, percent } => Effect::Corrupt {
                nodes: nodes.clone(),
                what: proto_word(matches),
                direction: direction_word(matches.direction),
                peers: matches.peers.clone(),
                percent: *percent,
            },
            FaultSpec::Duplicate { nodes, matches, percent } => Effect::Duplicate {
                nodes: nodes.clone(),
                what: proto_word(matches),
                direction: direction_word(matches.direction),
                peers: matches.peers.clone(),
                percent: *percent,
            },
            FaultSpec::Partition { side_a, side_b } => Effect::Partition { side_a: side_a.clone(), side_b: side_b.clone() },
            FaultSpec::Kill { nodes, component } => Effect::Kill { nodes: nodes.clone(), component: component.clone() },
            FaultSpec::StopNode { nodes } => Effect::Pause { nodes: nodes.clone() },
            FaultSpec::Mtu { nodes, mtu } => Effect::Mtu { nodes: nodes.clone(), mtu: *mtu },
            FaultSpec::HttpProxy { nodes, .. } => {
                // The URL is known only in the nodes (the engine picked the port); the no_proxy
                // list as set is in the handle, node names already turned into addresses.
                let url = match nodes.first() {
                    Some(n) => client_env(lab, n).await.and_then(|(e, _)| e.get("http_proxy").cloned()).unwrap_or_default(),
                    None => String::new(),
                };
                let no_proxy = match &h.action {
                    Action::Proxy { no_proxy, .. } => no_proxy.clone(),
                    _ => vec![],
                };
                Effect::Proxy { nodes: nodes.clone(), url, no_proxy }
            }
        };
        let mut packets = BTreeMap::new();
        if spec.counts_packets() {
            for (n, p) in after.get(name).into_iter().flatten() {
                let was = before.faults.get(name).and_then(|c| c.get(n)).copied().unwrap_or(0);
                packets.insert(n.clone(), p.saturating_sub(was));
            }
        }
        faults.push(FaultFact { name: name.clone(), effect, packets });
    }
    let after = vxlan_all(lab).await;
    let vxlan = after
        .into_iter()
        .map(|(n, a)| {
            let b = before.vxlan.get(&n).copied().unwrap_or_default();
            let d = Vxlan {
                rx: a.rx.saturating_sub(b.rx),
                tx: a.tx.saturating_sub(b.tx),
                rx_dropped: a.rx_dropped.saturating_sub(b.rx_dropped),
            };
            (n, d)
        })
        .collect();
    let liveness = "for f in /run/clusterlab/*.pid; do [ -e \"$f\" ] || continue; c=$(basename \"$f\" .pid); kill -0 \"$(cat \"$f\")\" 2>/dev/null || echo \"$c\"; done";
    let outs = join_all(lab.plan.nodes.iter().map(|n| async move { (n.name.clone(), lab.sh_raw(&n.name, liveness).await) })).await;
    let stopped = outs
        .into_iter()
        .filter_map(|(n, o)| {
            let v: Vec<String> = o.ok()?.stdout.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
            (!v.is_empty()).then_some((n, v))
        })
        .collect();
    let mut proxy_answers = BTreeMap::new();
    // kubectl's requests: an `api` check's, and an install's (its stages reach the API with it).
    if check.kind == "api" || check.kind == "install" {
        let failing: Vec<&Pair> =
            pairs.iter().filter(|p| (check.kind == "install" || p.target.starts_with("api")) && !p.answered).collect();
        for p in failing {
            if let Some(a) = proxy_answer(lab, &p.entry).await {
                proxy_answers.insert(p.entry.clone(), a);
            }
        }
    }
    let addresses = lab.plan.nodes.iter().map(|n| (n.name.clone(), n.ip.to_string())).collect();
    let listen_overflows = if matches!(check.kind.as_str(), "replicas" | "vip" | "node-port") {
        crate::probe::listen_overflows(lab).await
    } else {
        BTreeMap::new()
    };
    let (service_rules, endpoints) = service_plumbing(lab, check).await;
    let overlay = overlay_views(lab, check).await;
    Evidence {
        kind: check.kind.clone(),
        unsupported,
        pairs,
        faults,
        vxlan,
        stopped,
        proxy_answers,
        addresses,
        service_rules,
        endpoints,
        lost,
        overlay,
        listen_overflows,
    }
}

/// Swarm: every node's view of the checked service's overlay (`OverlayView`): the permanent
/// neighbour entries in the network's namespace (`1-` and the network id's first 10
/// characters, under /var/run/docker/netns), and the node's own containers on the network.
async fn overlay_views(lab: &Lab, check: &CheckReport) -> BTreeMap<String, OverlayView> {
    let Some(svc) = lab.scenario.service(&check.service) else { return BTreeMap::new() };
    if lab.scenario.stack != crate::model::StackKind::Swarm {
        return BTreeMap::new();
    }
    // Network names are validated labels: quoted once for the shell, plain inside the template.
    let net = crate::lab::shq(&svc.network);
    let script = format!(
        "id=$(docker network inspect -f '{{{{.Id}}}}' {net} 2>/dev/null) || exit 0\n\
         ns=/var/run/docker/netns/1-$(printf %.10s \"$id\")\n\
         [ -e \"$ns\" ] && nsenter --net=\"$ns\" ip -4 neigh show nud permanent | awk '{{print \"known\", $1}}'\n\
         for c in $(docker ps -q --filter network={net}); do \
           docker inspect -f '{{{{.Name}}}} {{{{with index .NetworkSettings.Networks \"{raw}\"}}}}{{{{.IPAddress}}}}{{{{end}}}}' \"$c\"; \
         done | awk '{{print \"local\", $1, $2}}'; true",
        raw = svc.network,
    );
    let probe = format!("/{}", crate::vocab::probe_container(&svc.network));
    let outs = join_all(lab.plan.nodes.iter().map(|n| {
        let script = script.clone();
        async move { (n.name.clone(), lab.sh_raw(&n.name, &script).await) }
    }))
    .await;
    outs.into_iter()
        .filter_map(|(n, o)| {
            let o = o.ok()?;
            Some((n, parse_overlay(&o.stdout, &probe)))
        })
        .collect()
}

/// `known <ip>` and `local /<container name> <ip>` lines into a view; the probe (`probe`: its
/// container name with docker's leading slash) is keyed `PROBE`.
pub fn parse_overlay(out: &str, probe: &str) -> OverlayView {
    let mut v = OverlayView::default();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["known", ip] => {
                v.known.insert(ip.to_string());
            }
            ["local", name, ip] => {
                let key = if *name == probe { PROBE.to_string() } else { name.trim_start_matches('/').to_string() };
                v.local.insert(key, ip.to_string());
            }
            _ => {}
        }
    }
    v
}

/// Kubernetes vip and node-port checks: the service's endpoints (plain kubectl on the master:
/// the truth, not what a proxied client sees) and whether each entry node has kube-proxy's
/// rules for its ClusterIP. Unknown (empty) when the API does not answer.
async fn service_plumbing(lab: &Lab, check: &CheckReport) -> (BTreeMap<String, bool>, Option<Vec<String>>) {
    let mut rules = BTreeMap::new();
    if lab.scenario.stack != crate::model::StackKind::Kubernetes || !matches!(check.kind.as_str(), "vip" | "node-port") {
        return (rules, None);
    }
    let master = lab.plan.leader().name.clone();
    let k = format!("{} --request-timeout=3s", crate::stack::kube::KUBECTL_DIRECT);
    let svc = crate::lab::shq(&check.service);
    let script = format!(
        "{k} get service {svc} -o jsonpath='{{.spec.clusterIP}}' && echo && {k} get endpoints {svc} -o jsonpath='{{.subsets[*].addresses[*].ip}}'"
    );
    let Ok(out) = lab.sh_raw(&master, &script).await else { return (rules, None) };
    if !out.ok() {
        return (rules, None);
    }
    let mut lines = out.stdout.lines();
    let cip = lines.next().unwrap_or("").trim().to_string();
    let endpoints = lines.next().unwrap_or("").split_whitespace().map(String::from).collect();
    if !cip.is_empty() {
        for entry in &check.observation.rows {
            let cond = format!("iptables -w 10 -t nat -S KUBE-SERVICES 2>/dev/null | grep -q -- '-d {cip}/32'");
            if let Ok(o) = lab.sh_raw(entry, &cond).await {
                rules.insert(entry.clone(), o.ok());
            }
        }
    }
    (rules, Some(endpoints))
}
