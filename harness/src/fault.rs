//! Faults: iptables rules inside a node's own network namespace. Each fault gets its own chain
//! (so its counters are its own and its revert is exact), jumped to from INPUT/OUTPUT. An
//! applied fault remembers the node's `iptables-save` from before, and revert proves it equal.

use crate::lab::Lab;
use crate::lab::{find_lab_if, poll_script, shq};
use crate::model::{Direction, Distribution, Fault, FaultSpec, Match, NoProxy, Protocol};
use crate::provider::LabError;
use futures_util::future::try_join_all;
use std::collections::BTreeMap;

/// One iptables rule of a fault: the built-in chain it hangs off and its match.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub parent: &'static str,
    pub args: String,
    /// The rule's own target, where it is not the fault's (a duplicate's TEE names the node the
    /// copy goes to).
    pub target: Option<String>,
}

/// The chain name of a fault: iptables allows 28 characters, and each parent chain gets a
/// sub-chain of its own (`.in`, `.out`, `.fwd`: a rule valid in one, e.g. `-m mac` or `-o`, may
/// be invalid in another).
pub fn chain_name(fault: &str) -> String {
    let mut c = format!("CL-{fault}");
    c.truncate(24);
    c
}

/// The fault's sub-chain for one parent chain.
pub fn sub_chain(chain: &str, parent: &str) -> String {
    let suffix = match parent {
        "INPUT" => "in",
        "OUTPUT" => "out",
        "POSTROUTING" => "post",
        _ => "fwd",
    };
    format!("{chain}.{suffix}")
}

/// The table a parent chain's rules go in: a rate fault's CLASSIFY is a mangle target (valid in
/// POSTROUTING); drops are filter rules.
pub fn table_of(parent: &str) -> &'static str {
    if parent == "POSTROUTING" {
        "mangle"
    } else {
        "filter"
    }
}

/// The HTB class a rate fault's packets go to (CLASSIFY sets it as the packet's priority, which
/// HTB reads directly: this kernel has no `fw` classifier to match a mark).
pub const RATE_CLASS: &str = "1:10";

fn match_args(m: &Match, peer_flag: &str, peer: Option<&str>) -> String {
    let mut a = String::new();
    match m.protocol {
        Protocol::Tcp => a.push_str("-p tcp"),
        Protocol::Udp => a.push_str("-p udp"),
        Protocol::Icmp => a.push_str("-p icmp"),
        Protocol::All => {}
    }
    if let Some(port) = m.port {
        a.push_str(&format!(" --dport {port}"));
    }
    if let (Some(p), false) = (peer, peer_flag.is_empty()) {
        a.push_str(&format!(" {peer_flag} {p}"));
    }
    a.trim().to_string()
}

/// Where a rule's lab interface goes: the apply script sets `$lab_if` to the interface that
/// holds the node's lab address.
pub const LAB_IF: &str = "$lab_if";

/// A node as a rule needs it: its address (what it sends and receives as itself) and its MAC on
/// the lab network (what every packet it forwards carries when it arrives at another node).
pub struct Peer {
    pub ip: String,
    pub mac: String,
    /// Kubernetes: the node's pod CIDR (what other nodes route to its pods through the lab
    /// interface on host-gw).
    pub pods: Option<String>,
}

/// A rule with its arguments' spacing normalised.
fn rule(parent: &'static str, args: &str, target: Option<String>) -> Rule {
    Rule { parent, args: args.split_whitespace().collect::<Vec<_>>().join(" "), target }
}

/// Does a match act on what the node sends, on what it receives?
fn ways(m: &Match) -> (bool, bool) {
    (matches!(m.direction, Direction::Out | Direction::Both), matches!(m.direction, Direction::In | Direction::Both))
}

/// (sender, receiver) pairs of a fault acted out on the senders' egress (rate, duplicate):
/// `outward`, each node to its peers (every other node without peers); `inward`, theirs to it.
fn egress_pairs(nodes: &[String], m: &Match, all: &[String], outward: bool, inward: bool) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for n in nodes {
        let others: Vec<&String> = if m.peers.is_empty() { all.iter().filter(|x| *x != n).collect() } else { m.peers.iter().collect() };
        for p in others {
            if outward {
                pairs.push((n.clone(), p.clone()));
            }
            if inward {
                pairs.push((p.clone(), n.clone()));
            }
        }
    }
    pairs
}

/// Where a node is reached through the lab interface: its address and, on Kubernetes, its pods.
fn addresses(p: &Peer) -> Vec<String> {
    std::iter::once(p.ip.clone()).chain(p.pods.clone()).collect()
}

/// On Kubernetes (a node routes its pods' packets), the INPUT rule for what `from` routed to
/// this node's own address — a pod on `from` reaching this node (its API server, a NodePort): it
/// arrives with the pod's address and `from`'s MAC, and no `-s` rule sees it. `! -s` leaves
/// `from`'s own packets to the `-s` rule, so none is matched twice (a delay would hold it twice).
fn routed_input(from: &Peer, m: &Match, extra: &str) -> Option<String> {
    from.pods.as_ref()?;
    Some(format!("-i {LAB_IF} -m mac --mac-source {} ! -s {} {} {extra}", from.mac, from.ip, match_args(m, "", None)))
}

/// The rules a fault puts on each node (pure: nodes come from `node_of`).
///
/// Packets a node sends or receives as itself go through OUTPUT and INPUT, matched by the other
/// node's address. Packets a node *routes* (pods' traffic on Kubernetes host-gw, a NodePort's
/// DNAT to another node) go through FORWARD with pod addresses, so those are matched where they
/// arrive: on the lab interface, by the MAC of the node that sent them. A cut from X to Y is
/// therefore also a FORWARD rule on Y for packets from X's MAC; a port-only drop also acts on
/// what the node forwards through its lab interface.
///
/// A rate limit shapes what a node *sends* (HTB is an egress discipline): `out` on the node's
/// own lab interface, `in` on every sender's (the peers, or every other node), for packets to
/// the node's address and, on Kubernetes, its pod CIDR. A closed lab has no other senders.
pub fn rules(spec: &FaultSpec, all: &[String], node_of: &dyn Fn(&str) -> Peer) -> BTreeMap<String, Vec<Rule>> {
    let mut out: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
    let mut push = |node: &str, parent: &'static str, args: String| {
        out.entry(node.to_string()).or_default().push(rule(parent, &args, None));
    };
    let directional = |nodes: &[String], m: &Match, extra: &str, push: &mut dyn FnMut(&str, &'static str, String)| {
        let (outward, inward) = ways(m);
        for n in nodes {
            if m.peers.is_empty() {
                // in: packets arriving at the node; out: packets it sends; and the same for what
                // it routes through its lab interface.
                if inward {
                    push(n, "INPUT", format!("{} {extra}", match_args(m, "-s", None)));
                    push(n, "FORWARD", format!("-i {LAB_IF} {} {extra}", match_args(m, "-s", None)));
                }
                if outward {
                    push(n, "OUTPUT", format!("{} {extra}", match_args(m, "-d", None)));
                    push(n, "FORWARD", format!("-o {LAB_IF} {} {extra}", match_args(m, "-d", None)));
                }
                continue;
            }
            let me = node_of(n);
            for p in &m.peers {
                let peer = node_of(p);
                if inward {
                    push(n, "INPUT", format!("{} {extra}", match_args(m, "-s", Some(&peer.ip))));
                    // What the peer routed to this node: on to this node's pods, and (pods
                    // reaching the node itself) to this node's own address.
                    push(n, "FORWARD", format!("-i {LAB_IF} -m mac --mac-source {} {} {extra}", peer.mac, match_args(m, "", None)));
                    if let Some(input) = routed_input(&peer, m, extra) {
                        push(n, "INPUT", input);
                    }
                }
                if outward {
                    push(n, "OUTPUT", format!("{} {extra}", match_args(m, "-d", Some(&peer.ip))));
                    // What this node routes to the peer, matched where it arrives.
                    push(p, "FORWARD", format!("-i {LAB_IF} -m mac --mac-source {} {} {extra}", me.mac, match_args(m, "", None)));
                    if let Some(input) = routed_input(&me, m, extra) {
                        push(p, "INPUT", input);
                    }
                }
            }
        }
    };
    match spec {
        FaultSpec::Drop { nodes, matches } | FaultSpec::Delay { nodes, matches, .. } | FaultSpec::Corrupt { nodes, matches, .. } => {
            directional(nodes, matches, "", &mut push)
        }
        FaultSpec::Loss { nodes, matches, percent } => {
            // -m statistic: the kernel here has no netem, so loss is a random drop in iptables.
            let extra = format!("-m statistic --mode random --probability {:.4}", percent / 100.0);
            directional(nodes, matches, &extra, &mut push)
        }
        FaultSpec::Rate { nodes, matches: m, .. } => {
            let (outward, inward) = ways(m);
            // Out without peers: everything the node sends through its lab interface, one rule.
            let out_all = outward && m.peers.is_empty();
            for n in nodes.iter().filter(|_| out_all) {
                push(n, "POSTROUTING", format!("-o {LAB_IF} {}", match_args(m, "", None)));
            }
            for (sender, receiver) in egress_pairs(nodes, m, all, outward && !out_all, inward) {
                for dst in addresses(&node_of(&receiver)) {
                    push(&sender, "POSTROUTING", format!("-o {LAB_IF} {}", match_args(m, "-d", Some(&dst))));
                }
            }
        }
        FaultSpec::Duplicate { nodes, matches: m, percent } => {
            // A copy of each chosen packet, sent by the sender to the same node (TEE clones it
            // to a gateway: the receiver itself, one hop away on the lab network).
            let stat = format!("-m statistic --mode random --probability {:.4}", percent / 100.0);
            let (outward, inward) = ways(m);
            for (sender, receiver) in egress_pairs(nodes, m, all, outward, inward) {
                let to = node_of(&receiver);
                for dst in addresses(&to) {
                    let args = format!("-o {LAB_IF} {} {stat}", match_args(m, "-d", Some(&dst)));
                    out.entry(sender.clone()).or_default().push(rule("POSTROUTING", &args, Some(format!("TEE --gateway {}", to.ip))));
                }
            }
        }
        // Not packet rules: see Action.
        FaultSpec::Kill { .. } | FaultSpec::StopNode { .. } | FaultSpec::HttpProxy { .. } | FaultSpec::Mtu { .. } => {}
        FaultSpec::Partition { side_a, side_b } => {
            for (mine, theirs) in [(side_a, side_b), (side_b, side_a)] {
                for n in mine {
                    for t in theirs {
                        let peer = node_of(t);
                        push(n, "INPUT", format!("-s {}", peer.ip));
                        push(n, "OUTPUT", format!("-d {}", peer.ip));
                        // Everything the other side routed here (pods' traffic, DNATed requests),
                        // to this node's pods and to the node itself.
                        push(n, "FORWARD", format!("-i {LAB_IF} -m mac --mac-source {}", peer.mac));
                        let all = Match { protocol: Protocol::All, port: None, direction: Direction::Both, peers: vec![] };
                        if let Some(input) = routed_input(&peer, &all, "") {
                            push(n, "INPUT", input);
                        }
                    }
                }
            }
        }
    }
    out
}

/// `iptables-save` of the filter table without counters and comments, for before/after equality.
pub fn normalize_save(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| if l.starts_with(':') { l.rsplit_once(' ').map(|(a, _)| a).unwrap_or(l) } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a revert left wrong when the tables grew meanwhile (an install ran): each rule from
/// before the fault that is gone, and each rule still naming the fault's chains. Empty: the
/// fault's rules are all gone and nothing else was removed. Rules are compared as a multiset
/// without counters.
pub fn left_behind(before: &str, after: &str, chain: &str) -> Vec<String> {
    let mut have: BTreeMap<&str, usize> = BTreeMap::new();
    let after = normalize_save(after);
    for l in after.lines() {
        *have.entry(l).or_default() += 1;
    }
    let mut out = Vec::new();
    for l in normalize_save(before).lines() {
        match have.get_mut(l) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(format!("gone since before the fault: {l}")),
        }
    }
    let own = format!("{chain}.");
    out.extend(after.lines().filter(|l| l.contains(&own)).map(|l| format!("still there: {l}")));
    out
}

/// Sum of the packet counters of every rule in one or more chain listings
/// (`iptables -L CHAIN -v -x -n`; headers start with words, rules with their packet count).
pub fn parse_packets(listing: &str) -> u64 {
    listing.lines().filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok()).sum()
}

/// Where a node keeps the `iptables-save` taken before a fault, so a revert in a later process
/// (`clusterlab fault revert` on a kept lab) can still prove the rules are back as they were.
const STATE_DIR: &str = "/run/clusterlab-faults";

/// A fault bound to a lab: its rules per node and its chain. Stateless on our side: what was
/// applied is in the node (the chain and the saved rules), so any process can revert it.
#[derive(Debug, Clone)]
pub struct FaultHandle {
    pub name: String,
    pub chain: String,
    pub rules: BTreeMap<String, Vec<Rule>>,
    pub action: Action,
    /// The stack was installed while the fault was applied: dockerd and kube-proxy added their
    /// rules meanwhile, so revert proves what is the fault's own (see `left_behind`), not that
    /// the tables equal what they were.
    pub across_install: bool,
}

/// What applying a fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// iptables rules in the nodes' own namespaces (drop, partition, loss).
    Rules,
    /// Stop a supervised component on each node and keep it down; revert starts it again.
    Kill { nodes: Vec<String>, component: String },
    /// Freeze node containers (the engine's pause); revert resumes them.
    Pause { nodes: Vec<String> },
    /// Start a stray proxy and put it in the clients' environment (and the named components').
    /// `no_proxy` holds the entries as set: node names already replaced by their addresses.
    Proxy { nodes: Vec<String>, no_proxy: Vec<String>, components: Vec<String> },
    /// Set the MTU of each node's lab interface; revert restores the one it had.
    Mtu { nodes: Vec<String>, mtu: u32 },
    /// iptables rules that choose packets (CLASSIFY) for an HTB class of `bits` per second and
    /// `burst` bytes on the lab interface of each node with rules; revert removes both.
    Shape { bits: u64, burst: u64 },
    /// iptables rules that hand packets to NFQUEUE `queue`, where the delay stage (started on each
    /// node with rules before them, stopped after them) holds each one `delay_us` plus jitter.
    /// `corrupt`: percent of the packets sent on with one bit flipped (a corrupt fault's stage
    /// holds nothing: its delay is zero).
    Stage { queue: u16, delay_us: u64, jitter_us: u64, distribution: Distribution, reorder: f64, gap: u32, corrupt: f64 },
}

impl Action {
    /// Faults made of iptables rules in the nodes (counted, proven equal on revert).
    fn has_rules(&self) -> bool {
        matches!(self, Action::Rules | Action::Shape { .. } | Action::Stage { .. })
    }
}

/// The delay stage, built beside the harness (`../impair`) and copied into a node when a delay
/// fault is applied there.
pub const IMPAIR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/clusterlab-impair"));
const IMPAIR_PATH: &str = "/usr/local/bin/clusterlab-impair";

/// The NFQUEUE queue of a delay fault: from its name, so a revert in another process finds the
/// same one (1000-60999; two faults that hash alike on one node are refused when the second
/// stage cannot bind).
pub fn queue_of(fault: &str) -> u16 {
    let h = fault.bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
    1000 + (h % 60000) as u16
}

/// What a revert found: the rules' counters, and lines for the report (the delay stage's own
/// measurements).
#[derive(Debug, Clone, Default)]
pub struct Reverted {
    pub counters: Counters,
    pub notes: Vec<String>,
}

/// The proxy environment of a node's clients: `KEY=value` lines, read by the harness's kubectl
/// (`env $(cat …) kubectl`) as a user's shell profile would set it.
pub const CLIENT_ENV: &str = "/etc/clusterlab/client.env";
/// Which fault wrote CLIENT_ENV (for the diagnosis).
pub const CLIENT_ENV_FAULT: &str = "/etc/clusterlab/client.fault";

/// The container of a fault's stray proxy.
pub fn proxy_container(lab: &str, fault: &str) -> String {
    format!("{lab}-proxy-{fault}")
}

/// The environment lines for a proxy URL and a no_proxy list (both spellings: tools differ).
pub fn proxy_env(url: &str, no_proxy: &[String]) -> String {
    let mut s = String::new();
    for k in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        s.push_str(&format!("{k}={url}\n"));
    }
    if !no_proxy.is_empty() {
        let list = no_proxy.join(",");
        s.push_str(&format!("no_proxy={list}\nNO_PROXY={list}\n"));
    }
    s
}

const SUPERVISOR_DIR: &str = "/run/clusterlab";

/// Packets matched by a fault's rules, per node.
pub type Counters = BTreeMap<String, u64>;

fn parents(rs: &[Rule]) -> Vec<&'static str> {
    let mut p: Vec<&'static str> = rs.iter().map(|r| r.parent).collect();
    p.sort();
    p.dedup();
    p
}

fn node_of(lab: &Lab, n: &str) -> Peer {
    let ip = lab.plan.node(n).map(|x| x.ip);
    let index = lab.plan.nodes.iter().position(|x| x.name == n);
    let pods = lab.scenario.kube.as_ref().zip(index).map(|(k, i)| crate::stack::kube::node_pod_cidr(&k.pod_cidr, i));
    Peer { ip: ip.map(|i| i.to_string()).unwrap_or_default(), mac: ip.map(crate::plan::mac_of).unwrap_or_default(), pods }
}

/// The lines of an apply script (after `$lab_if` is set) that put the rate's HTB on the lab
/// interface, first keeping what was there for the revert's proof. The interface must have no
/// discipline of its own (a veth's `noqueue`): another fault's would be replaced.
fn shape_script(fault: &str, chain: &str, bits: u64, burst: u64) -> String {
    format!(
        "tc qdisc show dev \"$lab_if\" > {STATE_DIR}/{chain}.tc\n\
         grep -q '^qdisc noqueue' {STATE_DIR}/{chain}.tc || {{ echo \"fault {fault}: the lab interface $lab_if already has a queueing discipline: $(head -n 1 {STATE_DIR}/{chain}.tc) (one rate fault per node at a time)\" >&2; exit 3; }}\n\
         # default 0: packets no rule chose skip the classes (HTB's direct queue), unshaped.\n\
         tc qdisc add dev \"$lab_if\" root handle 1: htb default 0\n\
         # ceil = rate: the class never borrows above it; burst: what may leave at once.\n\
         tc class add dev \"$lab_if\" parent 1: classid {RATE_CLASS} htb rate {bits}bit ceil {bits}bit burst {burst}b cburst {burst}b\n"
    )
}

/// The lines of a revert script that remove the rate's HTB and prove the interface's queueing
/// discipline is what it was (`noqueue` again).
fn unshape_script(ip: &str, chain: &str) -> String {
    format!(
        "{}tc qdisc del dev \"$lab_if\" root\n\
         tc qdisc show dev \"$lab_if\" | cmp -s - {STATE_DIR}/{chain}.tc || {{ echo \"the queueing discipline of $lab_if differs from before the fault: $(tc qdisc show dev \"$lab_if\" | head -n 1)\" >&2; exit 5; }}\n\
         rm -f {STATE_DIR}/{chain}.tc\n",
        find_lab_if(ip)
    )
}

/// Script lines that stop the delay stage (TERM: it releases what it holds and writes its
/// measurements), wait until it has exited, and print those measurements.
fn stage_stop_script(chain: &str) -> String {
    let d = format!("{STATE_DIR}/{chain}");
    format!(
        "pid=$(cat {d}.ready 2>/dev/null) || {{ echo 'no delay stage was started by this fault here' >&2; exit 3; }}\n\
         kill -TERM \"$pid\" 2>/dev/null || {{ echo \"the delay stage had died: $(cat {d}.log)\" >&2; exit 4; }}\n\
         {} || {{ kill -KILL \"$pid\"; echo 'the delay stage did not stop within 5 s' >&2; exit 4; }}\n\
         cat {d}.stats 2>/dev/null; rm -f {d}.ready {d}.stats {d}.log\n",
        poll_script("! kill -0 \"$pid\" 2>/dev/null", 5, "0.05")
    )
}

/// `, 25 % of every 5th packet sent at once (reordered)`, or nothing.
pub fn reorder_words(reorder: f64, gap: u32) -> String {
    match (reorder > 0.0, gap) {
        (false, _) => String::new(),
        (true, 1) => format!(", {reorder} % sent at once (reordered)"),
        (true, g) => format!(", {reorder} % of every {g}th packet sent at once (reordered)"),
    }
}

/// `50 ms`, `50 ms ± 10 ms (uniform)`, `50 ms, σ 10 ms (normal)`.
pub fn delay_words(delay_us: u64, jitter_us: u64, distribution: Distribution) -> String {
    let ms = |us: u64| format!("{} ms", (us as f64 / 1000.0 * 100.0).round() / 100.0);
    if jitter_us == 0 {
        return ms(delay_us);
    }
    match distribution {
        Distribution::Uniform => format!("{} ± {} (uniform)", ms(delay_us), ms(jitter_us)),
        Distribution::Normal => format!("{}, σ {} (normal)", ms(delay_us), ms(jitter_us)),
    }
}

/// The delay stage's measurements as one line: `1234 packets, mean 50.1 ms added, released
/// late by 0.2 ms (p50) / 1.1 ms (p99), at most 40 held`.
pub fn stage_words(stats: &str) -> String {
    let get = |k: &str| stats.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.trim().parse::<u64>().ok());
    match (get("packets"), get("mean_added_us"), get("late_p50_us"), get("late_p99_us"), get("held_max")) {
        (Some(n), Some(mean), Some(p50), Some(p99), Some(held)) => format!(
            "delay stage: {n} packets{}{}{}, mean {:.1} ms added, released late by {:.2} ms (p50) / {:.2} ms (p99), at most {held} held at once",
            match get("at_once") {
                Some(k) if k > 0 => format!(" ({k} sent at once)"),
                _ => String::new(),
            },
            match get("corrupted") {
                Some(k) if k > 0 => format!(" ({k} corrupted)"),
                _ => String::new(),
            },
            // Matched but never seen by the stage: dropped by the kernel, the fault's doing
            // only in that the stage fell behind — said, so nobody counts them as the fault's.
            match (get("lost"), stats.lines().any(|l| l.trim() == "lost unknown")) {
                (Some(k), _) if k > 0 => format!(" and {k} lost before it (the kernel's queue to the stage overflowed: the stage fell behind)"),
                (None, true) => " (how many the kernel dropped before it is unknown: its queue counters were unreadable)".to_string(),
                _ => String::new(),
            },
            mean as f64 / 1000.0,
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0
        ),
        _ => format!("delay stage: no measurements ({})", stats.trim().lines().next().unwrap_or("nothing written")),
    }
}

impl FaultHandle {
    pub fn new(lab: &Lab, fault: &Fault) -> FaultHandle {
        let action = match &fault.spec {
            FaultSpec::Kill { nodes, component } => Action::Kill { nodes: nodes.clone(), component: component.clone() },
            FaultSpec::StopNode { nodes } => Action::Pause { nodes: nodes.clone() },
            FaultSpec::HttpProxy { nodes, no_proxy, components } => Action::Proxy {
                nodes: nodes.clone(),
                no_proxy: no_proxy
                    .iter()
                    .map(|e| match e {
                        NoProxy::Node(n) => lab.node_ip(n),
                        NoProxy::Literal(l) => l.clone(),
                    })
                    .collect(),
                components: components.clone(),
            },
            FaultSpec::Mtu { nodes, mtu } => Action::Mtu { nodes: nodes.clone(), mtu: *mtu },
            FaultSpec::Rate { bits, burst, .. } => Action::Shape { bits: *bits, burst: *burst },
            FaultSpec::Delay { delay_us, jitter_us, distribution, reorder, gap, .. } => Action::Stage {
                queue: queue_of(&fault.name),
                delay_us: *delay_us,
                jitter_us: *jitter_us,
                distribution: *distribution,
                reorder: *reorder,
                gap: *gap,
                corrupt: 0.0,
            },
            FaultSpec::Corrupt { percent, .. } => Action::Stage {
                queue: queue_of(&fault.name),
                delay_us: 0,
                jitter_us: 0,
                distribution: Distribution::Uniform,
                reorder: 0.0,
                gap: 1,
                corrupt: *percent,
            },
            _ => Action::Rules,
        };
        let all: Vec<String> = lab.plan.nodes.iter().map(|n| n.name.clone()).collect();
        FaultHandle {
            name: fault.name.clone(),
            chain: chain_name(&fault.name),
            rules: rules(&fault.spec, &all, &|n| node_of(lab, n)),
            action,
            across_install: false,
        }
    }

    async fn apply_other(&self, lab: &Lab, apply: bool) -> Result<(), LabError> {
        let fail = |message: String| LabError::Fault { fault: self.name.clone(), message };
        match &self.action {
            Action::Rules | Action::Shape { .. } | Action::Stage { .. } => Ok(()),
            Action::Proxy { nodes, no_proxy, components } => self.proxy(lab, apply, nodes, no_proxy, components).await,
            Action::Mtu { nodes, mtu } => {
                let (f, state) = (&self.name, format!("{STATE_DIR}/mtu-{}", self.name));
                // The lab's wire is a veth pair, and a veth lets a GSO packet (many segments the
                // sender's stack has not cut yet) past the receiver's MTU unchecked: a server that
                // writes 256 KiB at once reached the lowered node whole, where a real link drops
                // every full-size frame. So while an MTU fault holds, every node cuts its packets
                // into wire-sized frames before they leave (gso_max_segs 1), as a NIC does before
                // the cable; the first fault records each node's value, the last revert restores
                // it (`holders` lists the MTU faults applied, so two revert in either order).
                let (wire, holders) = (format!("{STATE_DIR}/wire-segs"), format!("{STATE_DIR}/wire-holders"));
                for n in lab.plan.nodes.iter().map(|x| x.name.as_str()) {
                    let lowered = nodes.iter().any(|x| x == n);
                    let (script, what) = if apply {
                        let lower = if lowered {
                            format!(
                                "[ ! -f {state} ] || {{ echo 'fault {f} is already applied on this node' >&2; exit 3; }}\n\
                                 echo \"$lab_if $(cat /sys/class/net/$lab_if/mtu)\" > {state}; ip link set dev $lab_if mtu {mtu}\n"
                            )
                        } else {
                            String::new()
                        };
                        // `ip -d link` shows gso_max_segs; sysfs has no file for it on this kernel.
                        let script = format!(
                            "set -e; mkdir -p {STATE_DIR}\n{}{lower}\
                             if [ ! -f {wire} ]; then\n\
                               segs=$(ip -d link show dev $lab_if | sed -n 's/.* gso_max_segs \\([0-9]*\\).*/\\1/p')\n\
                               [ -n \"$segs\" ] || {{ echo \"ip does not show $lab_if's gso_max_segs\" >&2; exit 3; }}\n\
                               echo \"$lab_if $segs\" > {wire}\n\
                             fi\n\
                             echo {f} >> {holders}; ip link set dev $lab_if gso_max_segs 1",
                            find_lab_if(&lab.node_ip(n))
                        );
                        (script, if lowered { format!("setting the MTU to {mtu}") } else { "cutting packets to wire size".into() })
                    } else {
                        let restore = if lowered {
                            format!(
                                "[ -f {state} ] || {{ echo 'fault {f} is not applied on this node' >&2; exit 3; }}\n\
                                 read dev was < {state}; ip link set dev $dev mtu $was; rm -f {state}\n"
                            )
                        } else {
                            String::new()
                        };
                        let script = format!(
                            "set -e\n{restore}\
                             if [ -f {holders} ]; then\n\
                               grep -vx {f} {holders} > {holders}.new || true; mv {holders}.new {holders}\n\
                               if [ ! -s {holders} ]; then read dev was < {wire}; ip link set dev $dev gso_max_segs $was; rm -f {wire} {holders}; fi\n\
                             fi"
                        );
                        (script, if lowered { "restoring the MTU".into() } else { "restoring segmentation offload".into() })
                    };
                    lab.sh(n, &what, &script).await.map_err(|e| fail(e.to_string()))?;
                }
                Ok(())
            }
            Action::Pause { nodes } => {
                // The node's own containers are frozen first and thawed last (see
                // nested_freeze_script: pausing the node container alone leaves them running).
                let nested = crate::provider::nested_freeze_script;
                for n in nodes {
                    let c = lab.plan.node(n).map(|x| x.container.clone()).unwrap_or_default();
                    if apply {
                        lab.sh(n, "freezing the node's containers", nested(true)).await.map_err(|e| fail(e.to_string()))?;
                        if let Err(e) = pause_node(lab, &c).await {
                            // Thaw what was frozen: a node whose containers stay frozen cannot
                            // be removed (a frozen process takes no SIGKILL under cgroup v1, so
                            // the node's processes never all end and the engine's kill hangs).
                            let _ = lab.sh(n, "thawing the node's containers", nested(false)).await;
                            return Err(e);
                        }
                    } else {
                        lab.engine.set_paused(&c, false).await?;
                        lab.sh(n, "thawing the node's containers", nested(false)).await.map_err(|e| fail(e.to_string()))?;
                    }
                }
                Ok(())
            }
            Action::Kill { nodes, component: c } => {
                let d = SUPERVISOR_DIR;
                // Apply: mark it stopped, TERM it (KILL after 10 s), wait until its supervisor left.
                // Revert: start the supervisor again with the command it recorded.
                let script = if apply {
                    format!(
                        "if ! {{ [ -f {d}/{c}.pid ] && kill -0 $(cat {d}/{c}.pid) 2>/dev/null; }}; then \
                         echo \"no running {c} on this node (supervised here: $(ls {d} 2>/dev/null | sed -n 's/[.]pid$//p' | tr '\\n' ' '))\" >&2; exit 3; fi\n\
                         touch {d}/{c}.stop; kill -TERM $(cat {d}/{c}.pid)\n\
                         {gone} || {{ kill -KILL $(cat {d}/{c}.pid) 2>/dev/null; {gone_after_kill} || exit 4; }}",
                        // TERM, then KILL after 3 s; its supervisor leaves when it is gone.
                        gone = poll_script(&format!("[ ! -f {d}/{c}.supervisor ]"), 3, "0.1"),
                        gone_after_kill = poll_script(&format!("[ ! -f {d}/{c}.supervisor ]"), 12, "0.1"),
                    )
                } else {
                    format!(
                        "[ -f {d}/{c}.cmd ] || {{ echo 'no recorded command for {c}' >&2; exit 3; }}\n\
                         set --; while IFS= read -r a; do set -- \"$@\" \"$a\"; done < {d}/{c}.cmd\n\
                         setsid -f /usr/local/bin/supervise {c} \"$@\" </dev/null >/dev/null 2>&1\n\
                         {wait} || exit 4",
                        wait = poll_script(
                            &format!(
                                "[ -f {d}/{c}.supervisor ] && kill -0 $(cat {d}/{c}.pid) 2>/dev/null && {}",
                                ready_or_fail(&self.name, c)?
                            ),
                            60,
                            "0.1"
                        )
                    )
                };
                for n in nodes {
                    let what = if apply { format!("stopping {c}") } else { format!("restarting {c}") };
                    lab.sh(n, &what, &script).await.map_err(|e| fail(e.to_string()))?;
                }
                Ok(())
            }
        }
    }

    /// Start the stray proxy and write the clients' environment; revert removes both. Components
    /// named by the fault restart under their supervisor with the proxy in their environment.
    async fn proxy(&self, lab: &Lab, apply: bool, nodes: &[String], no_proxy: &[String], components: &[String]) -> Result<(), LabError> {
        let fail = |message: String| LabError::Fault { fault: self.name.clone(), message };
        let container = proxy_container(&lab.plan.lab, &self.name);
        if apply {
            // squid serves only the lab's subnet (the acl), so it never carries traffic elsewhere.
            let cmd = vec![lab.plan.subnet.to_string(), self.name.clone()];
            let port = lab.engine.create_side_container(&lab.plan, &container, &lab.image("proxy"), cmd, 3128).await?;
            let url = format!("http://{}:{port}", lab.plan.gateway);
            // Ready when squid answers a request of its own (a malformed one: 400 at once).
            let wait = poll_script(&format!("curl -s --noproxy '*' -o /dev/null -m 1 {url}/"), 20, "0.3");
            let first = nodes.first().cloned().unwrap_or_else(|| lab.plan.leader().name.clone());
            if !lab.sh_raw(&first, &wait).await?.ok() {
                let logs = lab.engine.logs(&container, 15).await;
                return Err(fail(format!(
                    "the proxy {container} did not answer at {url} within 20 s:\n{}",
                    crate::provider::tail(&logs, 15)
                )));
            }
            let env = proxy_env(&url, no_proxy);
            for n in nodes {
                let script = format!(
                    "set -e; mkdir -p /etc/clusterlab\n\
                     if [ -f {CLIENT_ENV} ]; then echo \"the proxy of fault $(cat {CLIENT_ENV_FAULT}) is already set on this node\" >&2; exit 3; fi\n\
                     printf %s {env} > {CLIENT_ENV}; echo {f} > {CLIENT_ENV_FAULT}",
                    env = shq(&env),
                    f = self.name
                );
                lab.sh(n, "setting the proxy environment", &script).await.map_err(|e| fail(e.to_string()))?;
            }
            self.restart_components(lab, nodes, components, Some(&env)).await
        } else {
            self.restart_components(lab, nodes, components, None).await?;
            for n in nodes {
                lab.sh(n, "removing the proxy environment", &format!("rm -f {CLIENT_ENV} {CLIENT_ENV_FAULT}")).await?;
            }
            lab.engine.remove_side_container(&lab.plan.lab, &container).await
        }
    }

    /// Restart each named component on the nodes that run it, with `env` in its environment
    /// (None: without), and wait until it serves again.
    async fn restart_components(&self, lab: &Lab, nodes: &[String], components: &[String], env: Option<&str>) -> Result<(), LabError> {
        let fail = |message: String| LabError::Fault { fault: self.name.clone(), message };
        let d = SUPERVISOR_DIR;
        for c in components {
            let mut ran = 0;
            for n in nodes {
                let set = match env {
                    Some(e) => format!("printf %s {} > {d}/{c}.env", shq(e)),
                    None => format!("rm -f {d}/{c}.env"),
                };
                // The supervisor reads {c}.env at each start; killing the process restarts it.
                // Without the proxy (revert) it must serve again: its own health check. Behind
                // the proxy (apply) it cannot — reaching what it serves through is what the
                // proxy breaks — so a new process that stays up for two seconds is what counts.
                let up = match env {
                    None => ready_or_fail(&self.name, c)?.to_string(),
                    Some(_) => "sleep 2 && kill -0 $new 2>/dev/null".to_string(),
                };
                let cond = format!("new=$(cat {d}/{c}.pid) && [ \"$new\" != \"$old\" ] && kill -0 $new 2>/dev/null && {up}");
                let script = format!(
                    "[ -f {d}/{c}.pid ] && kill -0 $(cat {d}/{c}.pid) 2>/dev/null || exit 9\n{set}\nold=$(cat {d}/{c}.pid); kill -TERM $old\n\
                     {} || exit 4",
                    poll_script(&cond, 60, "0.1")
                );
                let out = lab.sh_raw(n, &script).await?;
                match out.code {
                    0 => ran += 1,
                    9 => {}
                    code => {
                        return Err(fail(format!("{c} on {n} did not come back after its restart (exit {code}): {}", out.stderr.trim())))
                    }
                }
            }
            if ran == 0 {
                return Err(fail(format!("no node of {} runs {c}", nodes.join(", "))));
            }
        }
        Ok(())
    }

    /// The rules as a reader would write them: `worker-1: INPUT -p udp --dport 4789 -j DROP`.
    pub fn describe(&self) -> Vec<String> {
        match &self.action {
            Action::Proxy { nodes, no_proxy, components } => {
                let np = if no_proxy.is_empty() { "no no_proxy".to_string() } else { format!("no_proxy={}", no_proxy.join(",")) };
                let mut v = vec!["squid in a container on a network of its own: it cannot reach the nodes".to_string()];
                v.push(format!("{}: http_proxy/https_proxy set for kubectl, {np}", nodes.join(", ")));
                if !components.is_empty() {
                    v.push(format!("restarted with the proxy: {}", components.join(", ")));
                }
                return v;
            }
            Action::Mtu { nodes, mtu } => {
                let mut v: Vec<String> = nodes.iter().map(|n| format!("{n}: lab interface MTU {mtu}")).collect();
                v.push("every node: packets cut to wire size before they leave (a veth passes a GSO packet over any MTU)".into());
                return v;
            }
            Action::Kill { nodes, component } => return nodes.iter().map(|n| format!("{n}: {component} stopped and kept down")).collect(),
            Action::Pause { nodes } => return nodes.iter().map(|n| format!("{n}: node container and its containers paused")).collect(),
            Action::Rules | Action::Shape { .. } | Action::Stage { .. } => {}
        }
        let target = self.target();
        let mut v: Vec<String> = self
            .rules
            .iter()
            .flat_map(|(n, rs)| {
                let target = target.clone();
                rs.iter().map(move |r| {
                    format!("{n}: {} {} -j {}", r.parent, r.args.replace(LAB_IF, "<lab-if>"), r.target.as_deref().unwrap_or(&target))
                })
            })
            .collect();
        if let Action::Shape { bits, burst } = self.action {
            let nodes: Vec<&str> = self.rules.keys().map(|k| k.as_str()).collect();
            v.push(format!(
                "{}: HTB on <lab-if>, class {RATE_CLASS} at {} (burst {burst} bytes); other packets bypass it",
                nodes.join(", "),
                crate::model::rate_words(bits)
            ));
            v.push("rate via htb (not netem)".into());
        }
        if let Action::Stage { queue, delay_us, jitter_us, distribution, reorder, gap, corrupt } = self.action {
            let nodes: Vec<&str> = self.rules.keys().map(|k| k.as_str()).collect();
            if corrupt > 0.0 {
                v.push(format!(
                    "{}: clusterlab-impair on queue {queue} flips one random bit past the IP header in {corrupt}% of the packets; the receiver's checksum drops them",
                    nodes.join(", ")
                ));
                v.push("corrupt via nfqueue and a userspace stage (not netem)".into());
                return v;
            }
            v.push(format!(
                "{}: clusterlab-impair on queue {queue} holds each packet {}{}",
                nodes.join(", "),
                delay_words(delay_us, jitter_us, distribution),
                reorder_words(reorder, gap)
            ));
            // Said as what it is: the stage is used on every host (a netem path is not built), and
            // whether this host has netem is doctor's measured fact, not this line's.
            v.push("delay via nfqueue and a userspace stage (not netem)".into());
        }
        v
    }

    /// What the fault's rules do with a packet they match.
    fn target(&self) -> String {
        match self.action {
            Action::Shape { .. } => format!("CLASSIFY --set-class {RATE_CLASS}"),
            // No --queue-bypass: with the stage gone, packets are dropped, not silently passed
            // undelayed (a fault that stops acting must show).
            Action::Stage { queue, .. } => format!("NFQUEUE --queue-num {queue}"),
            _ => "DROP".into(),
        }
    }

    /// The iptables table of the fault's rules (one per fault).
    fn table(&self) -> &'static str {
        self.rules.values().flatten().next().map(|r| table_of(r.parent)).unwrap_or("filter")
    }

    pub async fn apply(&self, lab: &Lab) -> Result<(), LabError> {
        if !self.action.has_rules() {
            return self.apply_other(lab, true).await;
        }
        let comment = format!("clusterlab fault {}", self.name);
        let (table, target) = (self.table(), self.target());
        try_join_all(self.rules.iter().map(|(node, rs)| {
            let (comment, target) = (comment.clone(), target.clone());
            async move {
                let chain = &self.chain;
                let first = sub_chain(chain, rs.first().map(|r| r.parent).unwrap_or("INPUT"));
                // The interface holding this node's lab address: what FORWARD rules match on.
                let ip = lab.node_ip(node);
                let mut script = format!(
                    "set -e\nif iptables -w 10 -t {table} -n -L {first} >/dev/null 2>&1; then echo 'fault {name} is already applied on this node' >&2; exit 3; fi\n\
                     {}mkdir -p {STATE_DIR}\niptables-save -t {table} > {STATE_DIR}/{chain}.before\n",
                    find_lab_if(&ip),
                    name = self.name
                );
                if let Action::Shape { bits, burst } = self.action {
                    script.push_str(&shape_script(&self.name, chain, bits, burst));
                }
                if let Action::Stage { .. } = self.action {
                    lab.install_program(node, "installing the delay stage", IMPAIR_PATH, IMPAIR).await?;
                    script.push_str(&self.stage_start_script(chain));
                }
                for p in parents(rs) {
                    let sub = sub_chain(chain, p);
                    script.push_str(&format!("iptables -w 10 -t {table} -N {sub}\n"));
                    for r in rs.iter().filter(|r| r.parent == p) {
                        // -w 10: wait at most 10 s for the xtables lock (dockerd and kube-proxy
                        // edit rules concurrently); the comment names the fault in any listing.
                        script.push_str(&format!(
                            "iptables -w 10 -t {table} -A {sub} {} -m comment --comment '{comment}' -j {}\n",
                            r.args,
                            r.target.as_deref().unwrap_or(&target)
                        ));
                    }
                    // -I ... 1: ahead of anything dockerd or kube-proxy installs, so the fault
                    // sees the packet first.
                    script.push_str(&format!("iptables -w 10 -t {table} -I {p} 1 -j {sub}\n"));
                }
                lab.sh(node, &format!("applying fault {}", self.name), &script).await
            }
        }))
        .await?;
        Ok(())
    }

    pub async fn counters(&self, lab: &Lab) -> Result<Counters, LabError> {
        let got = try_join_all(self.rules.iter().map(|(node, rs)| async move {
            let table = self.table();
            let script: String =
                parents(rs).iter().map(|p| format!("iptables -w 10 -t {table} -L {} -v -x -n\n", sub_chain(&self.chain, p))).collect();
            let out = lab.sh(node, &format!("reading counters of fault {}", self.name), &script).await?;
            Ok::<_, LabError>((node.clone(), parse_packets(&out.stdout)))
        }))
        .await?;
        Ok(got.into_iter().collect())
    }

    /// Remove exactly what apply added, then prove each node's rules equal what they were.
    /// Returns the counters read just before removal.
    pub async fn revert(&self, lab: &Lab) -> Result<Reverted, LabError> {
        if !self.action.has_rules() {
            return self.apply_other(lab, false).await.map(|_| Reverted::default());
        }
        let counters = self.counters(lab).await?;
        let table = self.table();
        let notes = try_join_all(self.rules.iter().map(|(node, rs)| async move {
            let chain = &self.chain;
            let mut script = String::from("set -e\n");
            for p in parents(rs) {
                let sub = sub_chain(chain, p);
                script.push_str(&format!(
                    "iptables -w 10 -t {table} -D {p} -j {sub}\niptables -w 10 -t {table} -F {sub}\niptables -w 10 -t {table} -X {sub}\n"
                ));
            }
            if let Action::Shape { .. } = self.action {
                script.push_str(&unshape_script(&lab.node_ip(node), chain));
            }
            // The stage stops after its rules are gone: nothing new reaches it, and what it
            // holds is released at once.
            if let Action::Stage { .. } = self.action {
                script.push_str(&stage_stop_script(chain));
            }
            let out = lab.sh(node, &format!("reverting fault {}", self.name), &script).await?;
            let note = match self.action {
                Action::Stage { .. } => Some(format!("{node}: {}", stage_words(&out.stdout))),
                _ => None,
            };
            let both = lab
                .sh(
                    node,
                    "comparing iptables with before the fault",
                    &format!(
                        "cat {STATE_DIR}/{chain}.before; echo '#--after--'; iptables-save -t {table}; rm -f {STATE_DIR}/{chain}.before"
                    ),
                )
                .await?
                .stdout;
            let (before, after) = both.split_once("#--after--").unwrap_or((&both, ""));
            if self.across_install {
                let wrong = left_behind(before, after, chain);
                if !wrong.is_empty() {
                    return Err(LabError::Fault {
                        fault: self.name.clone(),
                        message: format!(
                            "after revert, node {node}'s {table} table is not as the fault found it:\n  {}",
                            wrong.join("\n  ")
                        ),
                    });
                }
            } else if normalize_save(before) != normalize_save(after) {
                return Err(LabError::Fault {
                    fault: self.name.clone(),
                    message: format!(
                        "after revert, the iptables rules of node {node} differ from before the fault (did something else change them?)"
                    ),
                });
            }
            Ok(note)
        }))
        .await?;
        Ok(Reverted { counters, notes: notes.into_iter().flatten().collect() })
    }

    /// Put the fault's jumps first again in their parent chains, where an install that ran while
    /// it was applied put its own ahead of them (kube-proxy and dockerd insert at the top too):
    /// the fault sees each packet first. One iptables-restore per table moves a jump in one
    /// commit, so no packet slips past it meanwhile.
    pub async fn reassert(&self, lab: &Lab) -> Result<(), LabError> {
        if !self.action.has_rules() {
            return Ok(());
        }
        let table = self.table();
        try_join_all(self.rules.iter().map(|(node, rs)| async move {
            let script: String = parents(rs)
                .iter()
                .map(|p| {
                    let sub = sub_chain(&self.chain, p);
                    // `-S P`: the policy line, then the rules; the second line is the first rule.
                    // --noflush: only these two lines change; -w: wait for the xtables lock.
                    format!(
                        "[ \"$(iptables -w 10 -t {table} -S {p} | sed -n 2p)\" = '-A {p} -j {sub}' ] || \
                         printf '*{table}\\n-D {p} -j {sub}\\n-I {p} 1 -j {sub}\\nCOMMIT\\n' | iptables-restore -w 10 --noflush\n"
                    )
                })
                .collect();
            lab.sh(node, &format!("putting fault {}'s rules first again", self.name), &format!("set -e\n{script}")).await
        }))
        .await?;
        Ok(())
    }

    /// Script lines (after `$lab_if` is set) that start the delay stage on its queue and wait
    /// until it is bound; a stage that cannot bind (the queue taken, no netlink) fails the apply
    /// with its own words.
    fn stage_start_script(&self, chain: &str) -> String {
        let Action::Stage { queue, delay_us, jitter_us, distribution, reorder, gap, corrupt } = self.action else { return String::new() };
        let dist = match distribution {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
        };
        let d = format!("{STATE_DIR}/{chain}");
        format!(
            "rm -f {d}.ready {d}.stats {d}.log\n\
             setsid -f {IMPAIR_PATH} --queue {queue} --delay-us {delay_us} --jitter-us {jitter_us} --distribution {dist} \
             --reorder-pct {reorder} --reorder-gap {gap} --corrupt-pct {corrupt} --ready {d}.ready --stats {d}.stats </dev/null >{d}.log 2>&1\n\
             {} || {{ echo \"the delay stage did not start: $(cat {d}.log)\" >&2; exit 4; }}\n",
            poll_script(&format!("[ -s {d}.ready ] || {{ [ -s {d}.log ] && exit 1; false; }}"), 10, "0.05")
        )
    }
}

/// How to tell a restarted component serves again: each one's own health endpoint or client,
/// every request bounded. A running process is not enough (an API server that runs may not
/// serve yet), and no component goes without a real probe.
pub fn ready_probe(component: &str) -> Option<&'static str> {
    Some(match component {
        "kube-apiserver" => "curl -sk --noproxy '*' -m 2 https://127.0.0.1:6443/readyz 2>/dev/null | grep -qx ok",
        // etcd's own health: a quorum read through its client port.
        "etcd" => "curl -s --noproxy '*' -m 2 http://127.0.0.1:2379/health 2>/dev/null | grep -q '\"health\":\"true\"'",
        // kubelet's and kube-proxy's healthz ports (defaults 10248, 10256, on the node).
        "kubelet" => "curl -s --noproxy '*' -m 2 http://127.0.0.1:10248/healthz 2>/dev/null | grep -qx ok",
        "kube-proxy" => {
            "curl -s --noproxy '*' -m 2 -o /dev/null -w '%{http_code}' http://127.0.0.1:10256/healthz 2>/dev/null | grep -qx 200"
        }
        // 1.20 still serves healthz without TLS on 10252/10251 (and with it on 10257/10259).
        "kube-controller-manager" => "curl -s --noproxy '*' -m 2 http://127.0.0.1:10252/healthz 2>/dev/null | grep -qx ok",
        "kube-scheduler" => "curl -s --noproxy '*' -m 2 http://127.0.0.1:10251/healthz 2>/dev/null | grep -qx ok",
        "dockerd" => "timeout 5 docker info >/dev/null 2>&1",
        "containerd" => "timeout 5 ctr version >/dev/null 2>&1",
        // The cluster DNS answers the `kubernetes` service's name on the master's lab address
        // (the one address it listens on; the node has one, which `hostname -i` gives).
        "cluster-dns" => {
            "dig +short +time=1 +tries=1 @\"$(hostname -i | cut -d' ' -f1)\" kubernetes.default.svc.cluster.local 2>/dev/null | grep -q ."
        }
        _ => return None,
    })
}

/// The readiness probe of a component, or a failure naming it (never a probe that always holds).
fn ready_or_fail(fault: &str, component: &str) -> Result<&'static str, LabError> {
    ready_probe(component).ok_or_else(|| LabError::Fault {
        fault: fault.to_string(),
        message: format!("no readiness probe is known for {component}, so its restart could not be confirmed"),
    })
}

impl FaultHandle {
    /// What the revert proved of the iptables tables.
    fn tables_line(&self) -> &'static str {
        if self.across_install {
            "iptables: none of the fault's rules remain and every rule from before it is still there (the install added its own meanwhile)"
        } else {
            "iptables rules equal what they were before the fault"
        }
    }

    /// What a revert restored, for the report.
    pub fn reverted(&self, r: &Reverted) -> Vec<String> {
        let c = &r.counters;
        match &self.action {
            Action::Rules => vec![describe_counters(&self.name, c), self.tables_line().into()],
            Action::Shape { .. } => vec![
                describe_counters(&self.name, c),
                format!("{}; the lab interfaces' queueing disciplines equal what they were before the fault", self.tables_line()),
            ],
            Action::Stage { .. } => {
                let mut v = vec![describe_counters(&self.name, c)];
                v.extend(r.notes.iter().cloned());
                v.push(format!("{}; the stage has exited", self.tables_line()));
                v
            }
            Action::Kill { nodes, component } => vec![format!("{component} running again on {}", nodes.join(", "))],
            Action::Pause { nodes } => vec![format!("resumed {}", nodes.join(", "))],
            Action::Proxy { nodes, .. } => vec![format!("proxy removed, and its environment from {}", nodes.join(", "))],
            Action::Mtu { nodes, .. } => vec![format!("MTU restored on {}; segmentation offload back on every node", nodes.join(", "))],
        }
    }
}

/// `vxlan-blocked: 37 packets dropped on worker-1`
pub fn describe_counters(fault: &str, c: &Counters) -> String {
    let parts: Vec<String> = c.iter().map(|(n, p)| format!("{p} packets on {n}")).collect();
    format!("fault {fault} matched {}", parts.join(", "))
}

/// Pause a node container. The runtime's freeze can fail on a busy node (runc: "unable to
/// freeze", the cgroup still freezing when it gave up, then thawed again): tried up to three
/// times, a second apart, while the engine says the node is not paused.
async fn pause_node(lab: &Lab, container: &str) -> Result<(), LabError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match lab.engine.set_paused(container, true).await {
            Ok(()) => return Ok(()),
            Err(e) if tries >= 3 => return Err(e),
            Err(_) => {
                if lab.engine.is_paused(container).await.unwrap_or(false) {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: &str) -> String {
        match n {
            "manager" => "10.213.0.11",
            "worker-1" => "10.213.0.12",
            _ => "10.213.0.13",
        }
        .to_string()
    }

    fn peer(n: &str) -> Peer {
        let ip = ip(n);
        Peer { mac: crate::plan::mac_of(ip.parse().unwrap()), ip, pods: None }
    }

    const ALL: [&str; 3] = ["manager", "worker-1", "worker-2"];

    fn all() -> Vec<String> {
        ALL.iter().map(|s| s.to_string()).collect()
    }

    fn r(parent: &'static str, args: &str) -> Rule {
        Rule { parent, args: args.into(), target: None }
    }

    fn m(protocol: Protocol, port: Option<u16>, direction: Direction, peers: &[&str]) -> Match {
        Match { protocol, port, direction, peers: peers.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn drop_rules() {
        let spec = FaultSpec::Drop { nodes: vec!["worker-1".into()], matches: m(Protocol::Udp, Some(4789), Direction::In, &[]) };
        assert_eq!(
            rules(&spec, &all(), &peer)["worker-1"],
            vec![r("INPUT", "-p udp --dport 4789"), r("FORWARD", "-i $lab_if -p udp --dport 4789")]
        );
        let spec = FaultSpec::Drop { nodes: vec!["worker-1".into()], matches: m(Protocol::Tcp, Some(80), Direction::Both, &["manager"]) };
        let got = rules(&spec, &all(), &peer);
        assert_eq!(
            got["worker-1"],
            vec![
                r("INPUT", "-p tcp --dport 80 -s 10.213.0.11"),
                r("FORWARD", "-i $lab_if -m mac --mac-source 02:42:0a:d5:00:0b -p tcp --dport 80"),
                r("OUTPUT", "-p tcp --dport 80 -d 10.213.0.11"),
            ]
        );
        // What worker-1 routes to the manager is dropped where it arrives.
        assert_eq!(got["manager"], vec![r("FORWARD", "-i $lab_if -m mac --mac-source 02:42:0a:d5:00:0c -p tcp --dport 80")]);
    }

    #[test]
    fn on_kubernetes_what_a_peer_routes_to_the_node_itself_is_matched_once() {
        let kube = |n: &str| Peer { pods: Some(format!("10.244.{}.0/24", if n == "manager" { 0 } else { 1 })), ..peer(n) };
        let spec = FaultSpec::Drop { nodes: vec!["worker-1".into()], matches: m(Protocol::Tcp, Some(443), Direction::Out, &["manager"]) };
        let got = rules(&spec, &all(), &kube);
        // worker-1's pods reaching the manager's own address (its API server): the manager's INPUT,
        // by worker-1's MAC, and not worker-1's own packets (its OUTPUT rule has those).
        assert_eq!(
            got["manager"],
            vec![
                r("FORWARD", "-i $lab_if -m mac --mac-source 02:42:0a:d5:00:0c -p tcp --dport 443"),
                r("INPUT", "-i $lab_if -m mac --mac-source 02:42:0a:d5:00:0c ! -s 10.213.0.12 -p tcp --dport 443"),
            ]
        );
        let cut = FaultSpec::Partition { side_a: vec!["manager".into()], side_b: vec!["worker-1".into()] };
        let got = rules(&cut, &all(), &kube);
        assert_eq!(got["manager"].len(), 4);
        assert_eq!(got["manager"][3], r("INPUT", "-i $lab_if -m mac --mac-source 02:42:0a:d5:00:0c ! -s 10.213.0.12"));
        // Swarm routes nothing between nodes: no such rule there.
        assert_eq!(rules(&cut, &all(), &peer)["manager"].len(), 3);
    }

    #[test]
    fn partition_cuts_both_sides_both_ways_routed_traffic_too() {
        let spec = FaultSpec::Partition { side_a: vec!["manager".into()], side_b: vec!["worker-1".into(), "worker-2".into()] };
        let got = rules(&spec, &all(), &peer);
        assert_eq!(got["manager"].len(), 6);
        assert_eq!(
            got["worker-1"],
            vec![
                r("INPUT", "-s 10.213.0.11"),
                r("OUTPUT", "-d 10.213.0.11"),
                r("FORWARD", "-i $lab_if -m mac --mac-source 02:42:0a:d5:00:0b")
            ]
        );
        assert_eq!(got["worker-2"].len(), 3);
    }

    #[test]
    fn loss_uses_statistic() {
        let spec = FaultSpec::Loss { nodes: vec!["worker-2".into()], matches: m(Protocol::All, None, Direction::In, &[]), percent: 12.5 };
        assert_eq!(rules(&spec, &all(), &peer)["worker-2"][0].args, "-m statistic --mode random --probability 0.1250");
    }

    #[test]
    fn rate_shapes_what_the_senders_send_to_the_node_or_what_it_sends() {
        let rate = |direction, peers: &[&str]| FaultSpec::Rate {
            nodes: vec!["worker-1".into()],
            matches: m(Protocol::Tcp, Some(5201), direction, peers),
            bits: 10_000_000,
            burst: 12_500,
        };
        // in: every other node's egress to worker-1; nothing on worker-1 itself.
        let got = rules(&rate(Direction::In, &[]), &all(), &peer);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["manager", "worker-2"]);
        assert_eq!(got["manager"], vec![r("POSTROUTING", "-o $lab_if -p tcp --dport 5201 -d 10.213.0.12")]);
        // out: worker-1's own egress, to everyone or to the peers only.
        let got = rules(&rate(Direction::Out, &[]), &all(), &peer);
        assert_eq!(got["worker-1"], vec![r("POSTROUTING", "-o $lab_if -p tcp --dport 5201")]);
        assert_eq!(got.len(), 1);
        let got = rules(&rate(Direction::Both, &["manager"]), &all(), &peer);
        assert_eq!(got["worker-1"], vec![r("POSTROUTING", "-o $lab_if -p tcp --dport 5201 -d 10.213.0.11")]);
        assert_eq!(got["manager"], vec![r("POSTROUTING", "-o $lab_if -p tcp --dport 5201 -d 10.213.0.12")]);
        assert!(!got.contains_key("worker-2"), "a peer-scoped rate leaves the other nodes alone");
        // Kubernetes: what is routed to the node's pods is shaped too.
        let with_pods = |n: &str| Peer { pods: Some("10.244.1.0/24".into()), ..peer(n) };
        let got = rules(&rate(Direction::In, &["manager"]), &all(), &with_pods);
        assert_eq!(
            got["manager"],
            vec![
                r("POSTROUTING", "-o $lab_if -p tcp --dport 5201 -d 10.213.0.12"),
                r("POSTROUTING", "-o $lab_if -p tcp --dport 5201 -d 10.244.1.0/24")
            ]
        );
        assert_eq!(table_of("POSTROUTING"), "mangle");
        assert_eq!(table_of("INPUT"), "filter");
        assert_eq!(sub_chain("CL-slow", "POSTROUTING"), "CL-slow.post");
    }

    #[test]
    fn the_shape_script_refuses_an_interface_that_has_a_discipline_and_revert_proves_noqueue() {
        let apply = shape_script("slow", "CL-slow", 10_000_000, 12_500);
        assert!(apply.contains("grep -q '^qdisc noqueue'"), "{apply}");
        assert!(apply.contains("htb rate 10000000bit ceil 10000000bit burst 12500b"), "{apply}");
        assert!(apply.contains("root handle 1: htb default 0"), "{apply}");
        let revert = unshape_script("10.213.0.12", "CL-slow");
        assert!(revert.contains("tc qdisc del dev \"$lab_if\" root"), "{revert}");
        assert!(revert.contains("cmp -s - /run/clusterlab-faults/CL-slow.tc"), "{revert}");
    }

    #[test]
    fn delay_hands_packets_to_its_own_queue_and_says_what_the_stage_measured() {
        let spec = FaultSpec::Delay {
            nodes: vec!["worker-2".into()],
            matches: m(Protocol::All, None, Direction::In, &[]),
            delay_us: 25_000,
            jitter_us: 5_000,
            distribution: Distribution::Uniform,
            reorder: 0.0,
            gap: 1,
        };
        // Scoped like a drop: what arrives at the node, and what it forwards from the lab.
        assert_eq!(rules(&spec, &all(), &peer)["worker-2"], vec![r("INPUT", ""), r("FORWARD", "-i $lab_if")]);
        assert_eq!(queue_of("zone-b-far"), queue_of("zone-b-far"));
        assert_ne!(queue_of("zone-b-far"), queue_of("zone-a-far"));
        assert!((1000..61000).contains(&queue_of("x")));
        assert_eq!(delay_words(25_000, 5_000, Distribution::Uniform), "25 ms ± 5 ms (uniform)");
        assert_eq!(delay_words(50_000, 10_000, Distribution::Normal), "50 ms, σ 10 ms (normal)");
        assert_eq!(delay_words(1_500, 0, Distribution::Uniform), "1.5 ms");
        let stats = "packets 377\nheld_max 30\nlate_p50_us 120\nlate_p99_us 11100\nlate_max_us 20000\nmean_added_us 25100\n";
        assert_eq!(
            stage_words(stats),
            "delay stage: 377 packets, mean 25.1 ms added, released late by 0.12 ms (p50) / 11.10 ms (p99), at most 30 held at once"
        );
        assert_eq!(stage_words(""), "delay stage: no measurements (nothing written)");
        assert!(stage_words(&format!("{stats}at_once 12\n")).starts_with("delay stage: 377 packets (12 sent at once), mean"));
        assert_eq!(reorder_words(0.0, 1), "");
        assert_eq!(reorder_words(25.0, 1), ", 25 % sent at once (reordered)");
        assert_eq!(reorder_words(50.0, 5), ", 50 % of every 5th packet sent at once (reordered)");
        let stop = stage_stop_script("CL-far");
        assert!(stop.contains("kill -TERM \"$pid\"") && stop.contains("cat /run/clusterlab-faults/CL-far.stats"), "{stop}");
    }

    #[test]
    fn corrupt_hands_packets_to_a_stage_that_holds_nothing_and_counts_what_it_flipped() {
        let spec =
            FaultSpec::Corrupt { nodes: vec!["worker-2".into()], matches: m(Protocol::Udp, Some(5302), Direction::In, &[]), percent: 10.0 };
        // Scoped like a drop (and a delay).
        assert_eq!(
            rules(&spec, &all(), &peer)["worker-2"],
            vec![r("INPUT", "-p udp --dport 5302"), r("FORWARD", "-i $lab_if -p udp --dport 5302")]
        );
        assert!(spec.counts_packets());
        let stats = "packets 2000\nat_once 0\ncorrupted 203\nheld_max 1\nlate_p50_us 3\nlate_p99_us 40\nlate_max_us 90\nmean_added_us 0\n";
        assert!(stage_words(stats).starts_with("delay stage: 2000 packets (203 corrupted), mean 0.0 ms added"), "{}", stage_words(stats));
        assert!(
            stage_words(&format!("{stats}lost 29\n"))
                .starts_with("delay stage: 2000 packets (203 corrupted) and 29 lost before it (the kernel's queue to the stage overflowed"),
            "{}",
            stage_words(&format!("{stats}lost 29\n"))
        );
        assert!(!stage_words(&format!("{stats}lost 0\n")).contains("lost"));
        assert!(stage_words(&format!("{stats}lost unknown\n")).contains("is unknown: its queue counters were unreadable"));
    }

    #[test]
    fn duplicate_copies_on_the_senders_to_the_receiving_node() {
        let spec = FaultSpec::Duplicate {
            nodes: vec!["worker-1".into()],
            matches: m(Protocol::Udp, Some(5301), Direction::In, &[]),
            percent: 5.0,
        };
        let got = rules(&spec, &all(), &peer);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["manager", "worker-2"]);
        assert_eq!(
            got["manager"],
            vec![Rule {
                parent: "POSTROUTING",
                args: "-o $lab_if -p udp --dport 5301 -d 10.213.0.12 -m statistic --mode random --probability 0.0500".into(),
                target: Some("TEE --gateway 10.213.0.12".into()),
            }]
        );
        // out, to one peer: worker-1 copies what it sends to the manager, to the manager.
        let spec = FaultSpec::Duplicate {
            nodes: vec!["worker-1".into()],
            matches: m(Protocol::All, None, Direction::Out, &["manager"]),
            percent: 5.0,
        };
        let got = rules(&spec, &all(), &peer);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["worker-1"]);
        assert_eq!(got["worker-1"][0].target.as_deref(), Some("TEE --gateway 10.213.0.11"));
    }

    #[test]
    fn every_killable_component_has_a_real_readiness_probe() {
        for stack in [crate::model::StackKind::Swarm, crate::model::StackKind::Kubernetes] {
            for c in crate::model::killable(stack) {
                let p = ready_probe(c).unwrap_or_else(|| panic!("{c} has no readiness probe"));
                assert!(p.trim() != "true" && p.len() > 20, "{c}: {p}");
                // Every network probe is bounded.
                assert!(!p.contains("curl") || p.contains("-m 2"), "{c}: {p}");
            }
        }
        assert!(ready_probe("sshd").is_none());
        assert!(ready_or_fail("f", "sshd").unwrap_err().to_string().contains("no readiness probe is known for sshd"));
    }

    #[test]
    fn chain_names_fit_iptables() {
        assert_eq!(chain_name("vxlan-blocked"), "CL-vxlan-blocked");
        assert_eq!(sub_chain(&chain_name(&"x".repeat(40)), "FORWARD").len(), 28);
        assert_eq!(sub_chain("CL-a", "INPUT"), "CL-a.in");
    }

    #[test]
    fn a_revert_across_an_install_proves_its_own_rules_gone_and_nothing_else_removed() {
        let before = "*filter\n:INPUT ACCEPT [1:2]\n:DOCKER - [0:0]\n-A INPUT -j DOCKER\nCOMMIT\n";
        // The install added a chain and a jump ahead of everything; the fault's are gone.
        let after = "*filter\n:INPUT ACCEPT [9:9]\n:DOCKER - [0:0]\n:KUBE-FIREWALL - [0:0]\n-A INPUT -j KUBE-FIREWALL\n-A INPUT -j DOCKER\nCOMMIT\n";
        assert_eq!(left_behind(before, after, "CL-x"), Vec::<String>::new());
        // A rule from before that is gone, and a fault rule that stayed, are both named.
        let after = "*filter\n:INPUT ACCEPT [9:9]\n:DOCKER - [0:0]\n:CL-x.in - [0:0]\n-A INPUT -j CL-x.in\nCOMMIT\n";
        let wrong = left_behind(before, after, "CL-x");
        assert_eq!(
            wrong,
            ["gone since before the fault: -A INPUT -j DOCKER", "still there: :CL-x.in -", "still there: -A INPUT -j CL-x.in"]
        );
        // Another fault's chain whose name starts alike is not this one's.
        assert!(left_behind(before, &format!("{before}:CL-xy.in - [0:0]\n"), "CL-x").is_empty());
        // Duplicates count: two equal rules before, one after, is one gone.
        let twice = "*filter\n-A INPUT -j DOCKER\n-A INPUT -j DOCKER\nCOMMIT\n";
        assert_eq!(left_behind(twice, "*filter\n-A INPUT -j DOCKER\nCOMMIT\n", "CL-x").len(), 1);
    }

    #[test]
    fn save_normalisation_ignores_counters_comments_and_blank_lines() {
        let a = "# Generated by iptables-save on Mon\n*filter\n:INPUT ACCEPT [12:345]\n-A INPUT -j X\nCOMMIT\n# Completed on Mon\n";
        let b = "\n# Generated by iptables-save on Tue\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j X\nCOMMIT\n";
        assert_eq!(normalize_save(a), normalize_save(b));
        let c = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j Y\nCOMMIT\n";
        assert_ne!(normalize_save(a), normalize_save(c));
    }

    #[test]
    fn packet_counters_sum_every_rule() {
        let listing = "Chain CL-x (1 references)\n    pkts      bytes target     prot opt in     out     source               destination\n      37     4810 DROP       udp  --  *      *       0.0.0.0/0            0.0.0.0/0            udp dpt:4789\n       5      300 DROP       all  --  *      *       10.0.0.1             0.0.0.0/0\n";
        assert_eq!(parse_packets(listing), 42);
        assert_eq!(parse_packets("Chain CL-x (1 references)\n pkts bytes target\n"), 0);
        // Two sub-chains listed one after the other.
        assert_eq!(parse_packets(&format!("{listing}{listing}")), 84);
    }
}
