//! Diagnosis: when pairs of a check do not answer (or answer when they must not), name a cause.
//! `gather` records what the lab showed at that moment — the faults and their packet counters
//! during the check, VXLAN device counters on every node, components that are not running, what
//! a stray proxy answered — into plain data (`Evidence`); `explain` turns that into one line per
//! group of pairs, and is pure, so it is snapshot-tested on recorded evidence.

mod gather;

pub use gather::{gather, Snapshot};

use crate::model::CLUSTER_DNS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything the diagnosis of one check knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The check's kind (`replicas`, `vip`, `node-port`, `dns`, `api`).
    pub kind: String,
    /// Why the host cannot support the check, if it cannot.
    pub unsupported: Option<String>,
    pub pairs: Vec<Pair>,
    /// The faults applied while the check ran.
    pub faults: Vec<FaultFact>,
    /// Per node: VXLAN packets received and sent during the check (all VXLAN devices).
    pub vxlan: BTreeMap<String, Vxlan>,
    /// Supervised components that were not running, per node.
    pub stopped: BTreeMap<String, Vec<String>>,
    /// What a proxy answered to the request kubectl made from an entry node, per entry node.
    pub proxy_answers: BTreeMap<String, ProxyAnswer>,
    /// Each node's lab address (for hints that name them).
    #[serde(default)]
    pub addresses: BTreeMap<String, String>,
    /// Kubernetes vip/node-port checks: whether each entry node has kube-proxy's rules for the
    /// service's ClusterIP.
    #[serde(default)]
    pub service_rules: BTreeMap<String, bool>,
    /// Kubernetes: the service's ready endpoint addresses, as the API lists them (None: unknown).
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
    /// vip: per entry node, requests no replica answered.
    #[serde(default)]
    pub lost: Vec<Lost>,
    /// Swarm: per node, what its overlay holds (see `OverlayView`).
    #[serde(default)]
    pub overlay: BTreeMap<String, OverlayView>,
    /// Per node: the network namespaces (named by their addresses) whose TCP accept queue has
    /// overflowed since they were made (`TcpExt ListenOverflows`), and how often. A server that
    /// cannot accept fast enough drops the connection attempt; the client retries it after 1 s.
    #[serde(default)]
    pub listen_overflows: BTreeMap<String, Vec<(String, u64)>>,
}

/// `OverlayView::local`'s key for the node's probe container.
pub const PROBE: &str = "probe";

/// One swarm node's overlay (the checked service's network), as its engine made it: its own
/// endpoints there (the probe's, keyed `PROBE`, and the tasks' containers: name → address),
/// and the remote addresses its overlay namespace holds a permanent neighbour entry for — what
/// swarm's network database told it. A remote endpoint without an entry is one this node cannot
/// send to (no ARP crosses the overlay).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverlayView {
    pub local: BTreeMap<String, String>,
    pub known: std::collections::BTreeSet<String>,
}

impl OverlayView {
    /// The address of the local container whose name is `task` or starts with `task.` (swarm
    /// names a task's container `web.2.<task id>`).
    fn address_of(&self, task: &str) -> Option<&String> {
        self.local.iter().find(|(name, _)| *name == task || name.strip_prefix(task).is_some_and(|r| r.starts_with('.'))).map(|(_, ip)| ip)
    }
}

/// Swarm: the overlay entries a failing pair of a replicas check lacks, either way: the entry
/// node without the replica's address (requests have nowhere to go), the replica's node without
/// the entry's probe address (answers cannot go back). (A VIP's or a name's pairs go through
/// IPVS or the engine's DNS first: not a pair of addresses this can judge.)
fn overlay_gaps(e: &Evidence, node: &str, entries: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(there) = e.overlay.get(node).filter(|_| e.kind == "replicas") else { return out };
    for p in e.pairs.iter().filter(|p| p.node == node && p.entry != node && entries.contains(&p.entry) && p.expected && !p.answered) {
        let Some(here) = e.overlay.get(&p.entry) else { continue };
        let task = p.target.split('@').next().unwrap_or(&p.target);
        if let Some(ip) = there.address_of(task).filter(|ip| !here.known.contains(*ip)) {
            out.push(format!("{}'s overlay has no entry for {} ({ip}): its requests have nowhere to go", p.entry, p.target));
        }
        if let Some(ip) = here.local.get(PROBE).filter(|ip| !there.known.contains(*ip)) {
            out.push(format!("{node}'s overlay has no entry for {}'s probe ({ip}): {}'s answers cannot go back", p.entry, p.target));
        }
    }
    if !out.is_empty() {
        out.push("swarm's network database gives these entries; once it has marked a node failed, they come back only with a bulk sync (every 30 s)".into());
    }
    out
}

/// Requests of one entry node that no replica answered (a VIP's: not addressed to one replica).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lost {
    pub entry: String,
    pub lost: u32,
    pub sent: u32,
    /// How they failed (timeout, refused...).
    pub detail: String,
}

/// One (entry node, target) pair of the check's matrix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub entry: String,
    pub target: String,
    /// The node the target lives on (a replica's node, a node-port's node, the API's node).
    pub node: String,
    pub answered: bool,
    pub expected: bool,
    /// What went wrong, as the probe saw it (timeout, refused, an error line).
    pub detail: String,
    /// Requests this pair answered, of `requests` sent (vip: the entry node's requests).
    #[serde(default)]
    pub answers: u32,
    #[serde(default)]
    pub requests: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultFact {
    pub name: String,
    pub effect: Effect,
    /// Packets its rules matched during the check, per node (packet faults only).
    pub packets: BTreeMap<String, u64>,
}

/// What a fault does, in the terms a cause line needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Effect {
    /// Drop (or lose `percent` of) `what` (e.g. "UDP 4789") going `direction` at `nodes`.
    Drop {
        nodes: Vec<String>,
        what: String,
        direction: String,
        peers: Vec<String>,
        percent: Option<f64>,
    },
    Partition {
        side_a: Vec<String>,
        side_b: Vec<String>,
    },
    Kill {
        nodes: Vec<String>,
        component: String,
    },
    Pause {
        nodes: Vec<String>,
    },
    Mtu {
        nodes: Vec<String>,
        mtu: u32,
    },
    /// Send `percent` of `what` going `direction` at `nodes` twice.
    Duplicate {
        nodes: Vec<String>,
        what: String,
        direction: String,
        peers: Vec<String>,
        percent: f64,
    },
    /// One bit flipped in `percent` of `what` going `direction` at `nodes`.
    Corrupt {
        nodes: Vec<String>,
        what: String,
        direction: String,
        peers: Vec<String>,
        percent: f64,
    },
    /// Hold `what` going `direction` at `nodes` for `delay` (as words: `50 ms ± 10 ms (uniform)`).
    Delay {
        nodes: Vec<String>,
        what: String,
        direction: String,
        peers: Vec<String>,
        delay: String,
    },
    /// Limit `what` going `direction` at `nodes` to `bits` per second.
    Rate {
        nodes: Vec<String>,
        what: String,
        direction: String,
        peers: Vec<String>,
        bits: u64,
    },
    Proxy {
        nodes: Vec<String>,
        url: String,
        no_proxy: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Vxlan {
    pub rx: u64,
    pub tx: u64,
    pub rx_dropped: u64,
}

/// A proxy's answer, split into what identifies it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyAnswer {
    /// The proxy the request went to, and the fault that set it.
    pub url: String,
    pub fault: String,
    /// What was asked: `CONNECT 10.213.0.11:6443`.
    pub request: String,
    /// The raw answer (status line, headers, the start of the body).
    pub raw: String,
}

impl ProxyAnswer {
    pub fn status(&self) -> &str {
        self.raw.lines().next().unwrap_or("").trim()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or(&self.raw);
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
    /// The first line of the body: `<!DOCTYPE html PUBLIC …`.
    pub fn body_start(&self) -> &str {
        let body = self.raw.split_once("\r\n\r\n").or_else(|| self.raw.split_once("\n\n")).map(|x| x.1).unwrap_or("");
        body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
    }
    /// The proxy's own signature on its error page: `stray-proxy (squid/5.7)`.
    pub fn signature(&self) -> Option<String> {
        let i = self.raw.find("Generated ")?;
        let rest = &self.raw[i..];
        let by = rest.find(" by ")?;
        let sig: String = rest[by + 4..].chars().take_while(|c| *c != '<' && *c != '\n').collect();
        Some(sig.trim().to_string())
    }
}

const NOTHING_EXPLAINS: &str = "no applied fault, stopped component or VXLAN loss explains it";

/// How a packet fault's direction reads before a node: "into worker-1".
fn dir_words(direction: &str) -> &'static str {
    match direction {
        "out" => "out of",
        "both" => "to and from",
        _ => "into",
    }
}

fn list(v: &[String]) -> String {
    v.join(", ")
}

impl Effect {
    fn nodes(&self) -> Vec<String> {
        match self {
            Effect::Drop { nodes, .. }
            | Effect::Rate { nodes, .. }
            | Effect::Delay { nodes, .. }
            | Effect::Corrupt { nodes, .. }
            | Effect::Duplicate { nodes, .. }
            | Effect::Kill { nodes, .. }
            | Effect::Pause { nodes }
            | Effect::Mtu { nodes, .. }
            | Effect::Proxy { nodes, .. } => nodes.clone(),
            Effect::Partition { side_a, side_b } => side_a.iter().chain(side_b).cloned().collect(),
        }
    }
}

/// The cause phrases for pairs from `entries` to targets on `node` that did not answer.
fn causes(e: &Evidence, node: &str, entries: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut silent_faults = Vec::new();
    let involved = |n: &String| n == node || entries.contains(n);
    let during = if e.kind == "install" { "during the install" } else { "during the check" };
    // The nodes of a packet fault that bear on these pairs: the target's or an entry's, and only
    // when its peers (if it names any) are among them too.
    let scoped = |nodes: &'_ [String], peers: &[String]| -> Vec<String> {
        if !peers.is_empty() && !peers.iter().any(involved) {
            return vec![];
        }
        nodes.iter().filter(|n| involved(n)).cloned().collect()
    };
    for f in &e.faults {
        let pk = |n: &str| f.packets.get(n).copied().unwrap_or(0);
        match &f.effect {
            Effect::Drop { nodes, what, direction, peers, percent } => {
                // A drop on the target's side or on an entry's side; peers narrow it further.
                for n in &scoped(nodes, peers) {
                    let dir = dir_words(direction);
                    let amount = percent.map(|p| format!("{p}% of ")).unwrap_or_default();
                    let c = format!("{amount}{what} dropped {dir} {n} by fault {} ({} packets)", f.name, pk(n));
                    if pk(n) > 0 {
                        out.push(c);
                    } else {
                        silent_faults.push(format!("fault {} (on {n}) matched no packet {during}", f.name));
                    }
                }
            }
            Effect::Partition { side_a, side_b } => {
                // Whole sides and the fault's whole count: the same words for every target
                // node it cuts, so their groups merge into one line.
                let cuts =
                    |mine: &[String], theirs: &[String]| mine.iter().any(|n| n == node) && entries.iter().any(|x| theirs.contains(x));
                if cuts(side_a, side_b) || cuts(side_b, side_a) {
                    let p: u64 = f.packets.values().sum();
                    out.push(format!("partition {} separates {} from {} ({p} packets)", f.name, list(side_a), list(side_b)));
                }
            }
            Effect::Kill { nodes, component } => {
                // The cluster DNS answers every lookup, wherever the name leads.
                if e.kind == "dns" && component == CLUSTER_DNS {
                    for n in nodes {
                        out.push(format!("the cluster DNS ({component} on {n}) is stopped by fault {}: no name resolves", f.name));
                    }
                    continue;
                }
                for n in nodes.iter().filter(|n| involved(n)) {
                    out.push(format!("{component} is stopped on {n} by fault {}", f.name));
                }
            }
            Effect::Pause { nodes } => {
                for n in nodes.iter().filter(|n| involved(n)) {
                    let role = if n == node { "" } else { "entry node " };
                    out.push(format!("{role}{n} is paused by fault {}", f.name));
                }
            }
            Effect::Mtu { nodes, mtu } => {
                for n in nodes.iter().filter(|n| involved(n)) {
                    let drops = e.vxlan.get(n).map(|v| v.rx_dropped).unwrap_or(0);
                    let seen = if drops > 0 { format!(", {drops} dropped on arrival") } else { String::new() };
                    out.push(format!(
                        "the lab interface of {n} has MTU {mtu} (fault {}): encapsulated packets larger than that never reach {n}{seen}",
                        f.name
                    ));
                }
            }
            Effect::Rate { nodes, what, direction, peers, bits } => {
                for n in &scoped(nodes, peers) {
                    let dir = dir_words(direction);
                    // A slow link delays; it drops only what its queue cannot hold.
                    out.push(format!(
                        "{what} {dir} {n} limited to {} by fault {} ({} packets queued through it)",
                        crate::model::rate_words(*bits),
                        f.name,
                        pk(n)
                    ));
                }
            }
            Effect::Delay { nodes, what, direction, peers, delay } => {
                for n in &scoped(nodes, peers) {
                    let dir = dir_words(direction);
                    // A request slower than its timeout is lost to the client, not to the network.
                    out.push(format!("{what} {dir} {n} delayed {delay} by fault {} ({} packets)", f.name, pk(n)));
                }
            }
            Effect::Corrupt { nodes, what, direction, peers, percent } => {
                for n in &scoped(nodes, peers) {
                    let dir = dir_words(direction);
                    // The stage counts what passed it; the receiver's checksum drops the corrupted.
                    out.push(format!(
                        "{percent}% of {what} {dir} {n} corrupted by fault {} ({} packets through its stage; a corrupted one fails its checksum and is dropped)",
                        f.name,
                        pk(n)
                    ));
                }
            }
            Effect::Duplicate { nodes, what, direction, peers, percent } => {
                for n in &scoped(nodes, peers) {
                    let dir = dir_words(direction);
                    // The senders' TEE rules count each copy too: a count of matches, not of copies.
                    let matched: u64 = f.packets.values().sum();
                    out.push(format!("{percent}% of {what} {dir} {n} sent twice by fault {} ({matched} packets matched)", f.name));
                }
            }
            Effect::Proxy { .. } => {}
        }
    }
    let explained: Vec<(String, String)> = e
        .faults
        .iter()
        .filter_map(|f| match &f.effect {
            Effect::Kill { nodes, component } => Some(nodes.iter().map(|n| (n.clone(), component.clone())).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    for (n, comps) in &e.stopped {
        for c in comps.iter().filter(|c| !explained.contains(&(n.clone(), (*c).clone()))) {
            if e.kind == "dns" && c == CLUSTER_DNS {
                out.push(format!("the cluster DNS ({c} on {n}) is not running: no name resolves"));
            } else if involved(n) {
                out.push(format!("{c} is not running on {n}"));
            }
        }
    }
    // The service's plumbing: endpoints in the API, kube-proxy's rules on each entry node.
    if e.endpoints.as_ref().is_some_and(|v| v.is_empty()) {
        out.push("the service has no ready endpoint in the API".into());
    }
    let ruleless: Vec<String> = entries.iter().filter(|n| e.service_rules.get(*n) == Some(&false)).cloned().collect();
    if !ruleless.is_empty() {
        out.push(format!("kube-proxy has no rules for the service's ClusterIP on {}", list(&ruleless)));
    }
    // Swarm's overlay entries, when nothing above explains the silence.
    if out.is_empty() {
        out.extend(overlay_gaps(e, node, entries));
    }
    // A server on the target's node that dropped connection attempts, when nothing above
    // explains the silence (its count is since it started: beside a fault that matched, it
    // would be a guess). Before the VXLAN line below: packets that arrived and got no answer
    // are what a full listen queue looks like from the wire.
    if let Some(full) = e.listen_overflows.get(node).filter(|v| !v.is_empty() && out.is_empty()) {
        out.push(crate::probe::overflow_words(node, full, "since it started"));
    }
    // VXLAN counters: sent by the entries, received by the target's node.
    if let Some(rx) = e.vxlan.get(node).map(|v| v.rx) {
        let tx: u64 = entries.iter().filter(|n| n.as_str() != node).filter_map(|n| e.vxlan.get(n)).map(|v| v.tx).sum();
        if tx > 0 && rx == 0 {
            out.push(format!("VXLAN {during}: {} sent {tx} packets, {node} received none (lost before its VXLAN device)", list(entries)));
        } else if tx > 0 && out.is_empty() {
            out.push(format!("VXLAN {during}: {} sent {tx} packets, {node} received {rx}, yet no answer came back", list(entries)));
        }
    }
    if out.is_empty() {
        out.extend(silent_faults);
    }
    if out.is_empty() {
        out.push(format!("{NOTHING_EXPLAINS}; see the evidence directory"));
    }
    out
}

/// Lines for an `api` check: which entries could not reach the API, and through what.
fn explain_api(e: &Evidence) -> Vec<String> {
    let api_pairs: Vec<&Pair> = e.pairs.iter().filter(|p| p.target.starts_with("api")).collect();
    let failed: Vec<String> = api_pairs.iter().filter(|p| !p.answered).map(|p| p.entry.clone()).collect();
    if failed.is_empty() {
        return vec![];
    }
    let expected = api_pairs.iter().filter(|p| !p.answered).all(|p| !p.expected);
    let head = format!("the API did not answer from {}{}", list(&failed), if expected { ", as the file expects" } else { "" });
    if let Some(lines) = proxy_cause(e, &head, &failed) {
        return lines;
    }
    let master = api_pairs.first().map(|p| p.node.clone()).unwrap_or_default();
    let detail = api_pairs.iter().find(|p| !p.answered).map(|p| p.detail.clone()).unwrap_or_default();
    let c = causes(e, &master, &failed);
    vec![format!("{head} ({detail}); {}", c.join("; "))]
}

/// Lines for an install that failed: the stage, the node, and the cause — a stray proxy's
/// answer to the install's kubectl, or the faults that matched packets while it ran.
fn explain_install(e: &Evidence) -> Vec<String> {
    let Some(p) = e.pairs.iter().find(|p| !p.answered) else { return vec![] };
    let stage = p.target.trim_start_matches("install ").to_string();
    let expected = if p.expected { "" } else { ", as the file expects" };
    let head = format!("the install failed at stage {stage} on {}{expected}", p.entry);
    if let Some(lines) = proxy_cause(e, &head, std::slice::from_ref(&p.entry)) {
        return lines;
    }
    // Every node takes part in an install: any fault that matched packets bears on it.
    let all: Vec<String> = e.addresses.keys().cloned().collect();
    vec![format!("{head}: {}", causes(e, &p.node, &all).join("; "))]
}

/// When kubectl's requests from the `failed` nodes went to a stray proxy: what it answered and
/// how to exempt the lab (None: no proxy answered them).
fn proxy_cause(e: &Evidence, head: &str, failed: &[String]) -> Option<Vec<String>> {
    let via_proxy: Vec<String> = failed.iter().filter(|n| e.proxy_answers.contains_key(*n)).cloned().collect();
    {
        let a = via_proxy.first().and_then(|n| e.proxy_answers.get(n))?;
        let no_proxy = e
            .faults
            .iter()
            .find_map(|f| match &f.effect {
                Effect::Proxy { no_proxy, .. } if f.name == a.fault => Some(no_proxy.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let np = if no_proxy.is_empty() { "no_proxy unset".to_string() } else { format!("no_proxy={}", no_proxy.join(",")) };
        let mut ident = vec![format!("answered `{}`", a.status())];
        for h in ["Server", "Via", "X-Squid-Error"] {
            if let Some(v) = a.header(h) {
                ident.push(format!("{h}: {v}"));
            }
        }
        if let Some(sig) = a.signature() {
            ident.push(format!("page signed by {sig}"));
        }
        let body: String = a.body_start().chars().take(70).collect();
        Some(vec![
            format!(
                "{head}: kubectl's request ({}) went to the proxy {} set by fault {} ({np}), which {}",
                a.request,
                a.url,
                a.fault,
                ident.join(", ")
            ),
            format!("what kubectl got instead of the API is the proxy's HTML error page: {body}"),
            if e.addresses.is_empty() {
                format!(
                    "hint: add the node addresses to no_proxy (on {}: the API is a lab address the proxy cannot reach)",
                    list(&via_proxy)
                )
            } else {
                let mut np: Vec<String> = e.addresses.values().cloned().collect();
                let extra: Vec<String> = no_proxy.iter().filter(|x| !np.contains(x)).cloned().collect();
                np.extend(extra);
                format!("hint: add the node addresses to no_proxy, e.g. no_proxy={} (on {})", np.join(","), list(&via_proxy))
            },
        ])
    }
}

/// One line per group of pairs that did not answer (grouped by the target's node), and one per
/// group that answered although the file expects no answer.
pub fn explain(e: &Evidence) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(why) = &e.unsupported {
        let silent = e.pairs.iter().filter(|p| !p.answered).count();
        lines.push(format!("unsupported here: {why} ({silent} of {} pairs did not answer)", e.pairs.len()));
        return lines;
    }
    if e.kind == "install" {
        return explain_install(e);
    }
    if e.kind == "api" {
        let mut v = explain_api(e);
        // Node readiness columns: each not-Ready node, once.
        let mut not_ready: Vec<String> =
            e.pairs.iter().filter(|p| !p.target.starts_with("api") && !p.answered && p.expected).map(|p| p.node.clone()).collect();
        not_ready.sort();
        not_ready.dedup();
        if !not_ready.is_empty() && v.is_empty() {
            for n in not_ready {
                let c = causes(e, &n, &[]);
                v.push(format!("node {n} is not Ready; {}", c.join("; ")));
            }
        }
        return v;
    }
    let total = e.pairs.len();
    let mut nodes: Vec<&String> = e.pairs.iter().map(|p| &p.node).collect();
    nodes.sort();
    nodes.dedup();
    // Silent groups per target node, merged when their entries, expectation and cause agree.
    struct Group {
        nodes: Vec<String>,
        silent: usize,
        /// Every target on these nodes was silent.
        all: bool,
        entries: Vec<String>,
        expectation: &'static str,
        cause: String,
    }
    let mut silent_groups: Vec<Group> = Vec::new();
    let mut loud_lines = Vec::new();
    for node in nodes {
        let on_node: Vec<&Pair> = e.pairs.iter().filter(|p| &p.node == node).collect();
        let silent: Vec<&Pair> = on_node.iter().copied().filter(|p| !p.answered).collect();
        if !silent.is_empty() {
            let mut entries: Vec<String> = silent.iter().map(|p| p.entry.clone()).collect();
            entries.dedup();
            let expectation = if silent.iter().all(|p| !p.expected) {
                ", as the file expects"
            } else if silent.iter().any(|p| !p.expected) {
                " (some as the file expects)"
            } else {
                ""
            };
            let cause = causes(e, node, &entries).join("; ");
            let all = silent.len() == on_node.len();
            match silent_groups.iter_mut().find(|g| g.entries == entries && g.expectation == expectation && g.cause == cause) {
                Some(g) => {
                    g.nodes.push(node.clone());
                    g.silent += silent.len();
                    g.all &= all;
                }
                None => silent_groups.push(Group { nodes: vec![node.clone()], silent: silent.len(), all, entries, expectation, cause }),
            }
        }
        let loud: Vec<&Pair> = on_node.iter().copied().filter(|p| p.answered && !p.expected).collect();
        if !loud.is_empty() {
            let mut entries: Vec<String> = loud.iter().map(|p| p.entry.clone()).collect();
            entries.dedup();
            let acting: Vec<String> = e.faults.iter().filter(|f| f.effect.nodes().contains(node)).map(|f| f.name.clone()).collect();
            let why = if acting.is_empty() {
                let elsewhere: Vec<String> = e.faults.iter().map(|f| format!("{} acts on {}", f.name, list(&f.effect.nodes()))).collect();
                if elsewhere.is_empty() {
                    format!("no fault is applied, so nothing stops traffic to {node}")
                } else {
                    format!("no applied fault acts on {node} ({})", elsewhere.join("; "))
                }
            } else {
                format!("fault {} acts on {node} but did not stop these", acting.join(", "))
            };
            loud_lines.push(format!(
                "{} of {total} pairs answered though the file expects no answer: targets on {node}, from {}; {why}",
                loud.len(),
                list(&entries)
            ));
        }
    }
    lines.extend(share_lines(e));
    for g in silent_groups {
        let scope = if g.all { "all targets" } else { "targets" };
        lines.push(format!(
            "{} of {total} pairs did not answer{}: {scope} on {}, from {}; {}",
            g.silent,
            g.expectation,
            list(&g.nodes),
            list(&g.entries),
            g.cause
        ));
    }
    lines.extend(loud_lines);
    lines
}

/// The share of requests lost where a pair answered only some (replicas, node-port), and the
/// requests of each entry node a VIP lost: named with where they went, when the answers show it.
fn share_lines(e: &Evidence) -> Vec<String> {
    let mut out = Vec::new();
    for l in &e.lost {
        let mine: Vec<&Pair> = e.pairs.iter().filter(|p| p.entry == l.entry).collect();
        let silent: Vec<&Pair> = mine.iter().copied().filter(|p| p.answers == 0).collect();
        let loud: Vec<&Pair> = mine.iter().copied().filter(|p| p.answers > 0).collect();
        let how = if l.detail.is_empty() { "no answer".to_string() } else { l.detail.clone() };
        let head = format!("{} of {} requests from {} to the VIP went unanswered ({how})", l.lost, l.sent, l.entry);
        if !silent.is_empty() && !loud.is_empty() {
            let mut nodes: Vec<String> = silent.iter().map(|p| p.node.clone()).collect();
            nodes.sort();
            nodes.dedup();
            let answered: Vec<String> = loud.iter().map(|p| p.target.clone()).collect();
            let causes: Vec<String> = nodes.iter().flat_map(|n| causes(e, n, std::slice::from_ref(&l.entry))).collect();
            out.push(format!(
                "{head}: every answer came from {}, none from {}: the lost ones are those the VIP sent to {}; {}",
                list(&answered),
                list(&silent.iter().map(|p| p.target.clone()).collect::<Vec<_>>()),
                list(&nodes),
                informative(dedup(causes)).join("; ")
            ));
        } else {
            let mut nodes: Vec<String> = mine.iter().map(|p| p.node.clone()).collect();
            nodes.sort();
            nodes.dedup();
            let causes: Vec<String> = nodes.iter().flat_map(|n| causes(e, n, std::slice::from_ref(&l.entry))).collect();
            out.push(format!("{head}; {}", informative(dedup(causes)).join("; ")));
        }
    }
    for p in e.pairs.iter().filter(|p| p.answers > 0 && p.answers < p.requests && e.kind != "vip") {
        let c = causes(e, &p.node, std::slice::from_ref(&p.entry));
        out.push(format!(
            "{} of {} requests from {} to {} went unanswered ({}); {}",
            p.requests - p.answers,
            p.requests,
            p.entry,
            p.target,
            if p.detail.is_empty() { "no answer" } else { &p.detail },
            c.join("; ")
        ));
    }
    out
}

/// Drop the "nothing explains it" phrase when another phrase does explain it.
fn informative(v: Vec<String>) -> Vec<String> {
    let known: Vec<String> = v.iter().filter(|c| !c.starts_with(NOTHING_EXPLAINS)).cloned().collect();
    if known.is_empty() {
        v
    } else {
        known
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests;
