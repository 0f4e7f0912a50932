//! Faults: iptables rules inside a node's own network namespace. Each fault gets its own chain
//! (so its counters are its own and its revert is exact), jumped to from INPUT/OUTPUT. An
//! applied fault remembers the node's `iptables-save` from before, and revert proves it equal.

use crate::lab::Lab;
use crate::model::{Direction, Fault, FaultSpec, Match, Protocol};
use crate::provider::LabError;
use futures_util::future::try_join_all;
use std::collections::BTreeMap;

/// One iptables rule of a fault: the built-in chain it hangs off and its match.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub parent: &'static str,
    pub args: String,
}

/// The chain name of a fault: iptables allows 28 characters.
pub fn chain_name(fault: &str) -> String {
    let mut c = format!("CL-{fault}");
    c.truncate(28);
    c
}

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
    if let Some(p) = peer {
        a.push_str(&format!(" {peer_flag} {p}"));
    }
    a.trim().to_string()
}

/// The rules a fault puts on each node (pure: node addresses come from `ip_of`).
pub fn rules(spec: &FaultSpec, ip_of: &dyn Fn(&str) -> String) -> BTreeMap<String, Vec<Rule>> {
    let mut out: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
    let directional = |nodes: &[String], m: &Match, extra: &str, out: &mut BTreeMap<String, Vec<Rule>>| {
        for n in nodes {
            let peers: Vec<Option<String>> = if m.peers.is_empty() { vec![None] } else { m.peers.iter().map(|p| Some(ip_of(p))).collect() };
            for peer in &peers {
                // in: packets arriving at the node (from the peer); out: packets the node sends (to the peer).
                if matches!(m.direction, Direction::In | Direction::Both) {
                    let args = format!("{} {extra}", match_args(m, "-s", peer.as_deref()));
                    out.entry(n.clone()).or_default().push(Rule { parent: "INPUT", args: args.trim().to_string() });
                }
                if matches!(m.direction, Direction::Out | Direction::Both) {
                    let args = format!("{} {extra}", match_args(m, "-d", peer.as_deref()));
                    out.entry(n.clone()).or_default().push(Rule { parent: "OUTPUT", args: args.trim().to_string() });
                }
            }
        }
    };
    match spec {
        FaultSpec::Drop { nodes, matches } => directional(nodes, matches, "", &mut out),
        FaultSpec::Loss { nodes, matches, percent } => {
            // -m statistic: the kernel here has no netem, so loss is a random drop in iptables.
            let extra = format!("-m statistic --mode random --probability {:.4}", percent / 100.0);
            directional(nodes, matches, &extra, &mut out)
        }
        FaultSpec::Partition { side_a, side_b } => {
            for (mine, theirs) in [(side_a, side_b), (side_b, side_a)] {
                for n in mine {
                    for t in theirs {
                        let ip = ip_of(t);
                        out.entry(n.clone()).or_default().push(Rule { parent: "INPUT", args: format!("-s {ip}") });
                        out.entry(n.clone()).or_default().push(Rule { parent: "OUTPUT", args: format!("-d {ip}") });
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

/// Sum of the packet counters of every rule in a chain (`iptables -L CHAIN -v -x -n`).
pub fn parse_packets(listing: &str) -> u64 {
    listing.lines().skip(2).filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok()).sum()
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
}

/// Packets matched by a fault's rules, per node.
pub type Counters = BTreeMap<String, u64>;

fn parents(rs: &[Rule]) -> Vec<&'static str> {
    let mut p: Vec<&'static str> = rs.iter().map(|r| r.parent).collect();
    p.sort();
    p.dedup();
    p
}

impl FaultHandle {
    pub fn new(lab: &Lab, fault: &Fault) -> FaultHandle {
        FaultHandle { name: fault.name.clone(), chain: chain_name(&fault.name), rules: rules(&fault.spec, &|n| lab.node_ip(n)) }
    }

    /// The rules as a reader would write them: `worker-1: INPUT -p udp --dport 4789 -j DROP`.
    pub fn describe(&self) -> Vec<String> {
        self.rules.iter().flat_map(|(n, rs)| rs.iter().map(move |r| format!("{n}: {} {} -j DROP", r.parent, r.args))).collect()
    }

    pub async fn apply(&self, lab: &Lab) -> Result<(), LabError> {
        let comment = format!("clusterlab fault {}", self.name);
        try_join_all(self.rules.iter().map(|(node, rs)| {
            let comment = comment.clone();
            async move {
                let chain = &self.chain;
                let mut script = format!(
                    "set -e\nif iptables -w -n -L {chain} >/dev/null 2>&1; then echo 'fault {name} is already applied on this node' >&2; exit 3; fi\n\
                     mkdir -p {STATE_DIR}\niptables-save -t filter > {STATE_DIR}/{chain}.before\n\
                     iptables -w -N {chain}\n",
                    name = self.name
                );
                for r in rs {
                    // -w: wait for the xtables lock; dockerd edits rules concurrently.
                    script.push_str(&format!("iptables -w -A {chain} {} -m comment --comment '{comment}' -j DROP\n", r.args));
                }
                for p in parents(rs) {
                    // -I ... 1: ahead of anything dockerd installs, so the fault sees the packet first.
                    script.push_str(&format!("iptables -w -I {p} 1 -j {chain}\n"));
                }
                lab.sh(node, &format!("applying fault {}", self.name), &script).await
            }
        }))
        .await?;
        Ok(())
    }

    pub async fn counters(&self, lab: &Lab) -> Result<Counters, LabError> {
        let got = try_join_all(self.rules.keys().map(|node| async move {
            let out = lab
                .sh(node, &format!("reading counters of fault {}", self.name), &format!("iptables -w -L {} -v -x -n", self.chain))
                .await?;
            Ok::<_, LabError>((node.clone(), parse_packets(&out.stdout)))
        }))
        .await?;
        Ok(got.into_iter().collect())
    }

    /// Remove exactly what apply added, then prove each node's rules equal what they were.
    /// Returns the counters read just before removal.
    pub async fn revert(&self, lab: &Lab) -> Result<Counters, LabError> {
        let counters = self.counters(lab).await?;
        try_join_all(self.rules.iter().map(|(node, rs)| async move {
            let chain = &self.chain;
            let mut script = String::from("set -e\n");
            for p in parents(rs) {
                script.push_str(&format!("iptables -w -D {p} -j {chain}\n"));
            }
            script.push_str(&format!("iptables -w -F {chain}\niptables -w -X {chain}\n"));
            lab.sh(node, &format!("reverting fault {}", self.name), &script).await?;
            let both = lab
                .sh(
                    node,
                    "comparing iptables with before the fault",
                    &format!(
                        "cat {STATE_DIR}/{chain}.before; echo '#--after--'; iptables-save -t filter; rm -f {STATE_DIR}/{chain}.before"
                    ),
                )
                .await?
                .stdout;
            let (before, after) = both.split_once("#--after--").unwrap_or((&both, ""));
            if normalize_save(before) != normalize_save(after) {
                return Err(LabError::Fault {
                    fault: self.name.clone(),
                    message: format!(
                        "after revert, the iptables rules of node {node} differ from before the fault (did something else change them?)"
                    ),
                });
            }
            Ok(())
        }))
        .await?;
        Ok(counters)
    }
}

/// `vxlan-blocked: 37 packets dropped on worker-1`
pub fn describe_counters(fault: &str, c: &Counters) -> String {
    let parts: Vec<String> = c.iter().map(|(n, p)| format!("{p} packets on {n}")).collect();
    format!("fault {fault} matched {}", parts.join(", "))
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

    fn m(protocol: Protocol, port: Option<u16>, direction: Direction, peers: &[&str]) -> Match {
        Match { protocol, port, direction, peers: peers.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn drop_rules() {
        let spec = FaultSpec::Drop { nodes: vec!["worker-1".into()], matches: m(Protocol::Udp, Some(4789), Direction::In, &[]) };
        assert_eq!(rules(&spec, &ip)["worker-1"], vec![Rule { parent: "INPUT", args: "-p udp --dport 4789".into() }]);
        let spec = FaultSpec::Drop { nodes: vec!["worker-1".into()], matches: m(Protocol::Tcp, Some(80), Direction::Both, &["manager"]) };
        assert_eq!(
            rules(&spec, &ip)["worker-1"],
            vec![
                Rule { parent: "INPUT", args: "-p tcp --dport 80 -s 10.213.0.11".into() },
                Rule { parent: "OUTPUT", args: "-p tcp --dport 80 -d 10.213.0.11".into() }
            ]
        );
    }

    #[test]
    fn partition_cuts_both_sides_both_ways() {
        let spec = FaultSpec::Partition { side_a: vec!["manager".into()], side_b: vec!["worker-1".into(), "worker-2".into()] };
        let r = rules(&spec, &ip);
        assert_eq!(r["manager"].len(), 4);
        assert_eq!(
            r["worker-1"],
            vec![Rule { parent: "INPUT", args: "-s 10.213.0.11".into() }, Rule { parent: "OUTPUT", args: "-d 10.213.0.11".into() }]
        );
        assert_eq!(r["worker-2"].len(), 2);
    }

    #[test]
    fn loss_uses_statistic() {
        let spec = FaultSpec::Loss { nodes: vec!["worker-2".into()], matches: m(Protocol::All, None, Direction::In, &[]), percent: 12.5 };
        assert_eq!(rules(&spec, &ip)["worker-2"][0].args, "-m statistic --mode random --probability 0.1250");
    }

    #[test]
    fn chain_names_fit_iptables() {
        assert_eq!(chain_name("vxlan-blocked"), "CL-vxlan-blocked");
        assert_eq!(chain_name(&"x".repeat(40)).len(), 28);
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
    }
}
