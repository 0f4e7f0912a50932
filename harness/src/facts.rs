//! Host facts, measured: what a node on this host can do, found by trying it (a rule with each
//! iptables match in a scratch chain of the node's own namespace, a link change to the value it
//! already has, the IPVS table's presence). `doctor` runs the same script in a throwaway node and
//! a run in its first node, so they never disagree. A check or fault is *unsupported* only when
//! one of these facts says so, decided before it runs; a failure while it runs is an error,
//! whatever its message says.

use crate::model::FaultSpec;

/// The probe: one line per fact, `<name> ok` or `<name> no <what the attempt printed>`. Every
/// change it makes is undone before it ends (the scratch chain is removed; the MTU is set to the
/// value it has).
pub const SCRIPT: &str = r#"c=CL-PROBE-$$
say() { if [ "$2" = ok ]; then echo "$1 ok"; else echo "$1 no $(printf '%s' "$3" | tr '\n' ' ' | cut -c1-200)"; fi; }
if out=$(iptables -w 10 -N $c 2>&1); then
  say iptables ok
  if out=$(iptables -w 10 -A $c -m comment --comment probe -j RETURN 2>&1); then say comment ok; else say comment no "$out"; fi
  if out=$(iptables -w 10 -A $c -m statistic --mode random --probability 0.5 -j RETURN 2>&1); then say statistic ok; else say statistic no "$out"; fi
  if out=$(iptables -w 10 -A $c -m mac --mac-source 02:42:00:00:00:01 -j RETURN 2>&1); then say mac ok; else say mac no "$out"; fi
  if out=$(iptables -w 10 -A $c -j NFQUEUE --queue-num 1 2>&1); then say nfqueue ok; else say nfqueue no "$out"; fi
  iptables -w 10 -F $c; iptables -w 10 -X $c
else
  say iptables no "$out"; for m in comment statistic mac nfqueue; do say $m no "iptables does not work here"; done
fi
if out=$(iptables -w 10 -t mangle -N $c 2>&1); then
  if out=$(iptables -w 10 -t mangle -A $c -j CLASSIFY --set-class 1:1 2>&1); then say classify ok; else say classify no "$out"; fi
  if out=$(iptables -w 10 -t mangle -A $c -j TEE --gateway 127.0.0.1 2>&1); then say tee ok; else say tee no "$out"; fi
  iptables -w 10 -t mangle -F $c; iptables -w 10 -t mangle -X $c
else
  say classify no "$out"; say tee no "$out"
fi
if out=$(ip link set dev lo mtu "$(cat /sys/class/net/lo/mtu)" 2>&1); then say link ok; else say link no "$out"; fi
# Queueing disciplines, tried on the loopback's root and removed at once (lo has none: noqueue).
if out=$(tc qdisc add dev lo root handle 1: htb 2>&1); then say htb ok; tc qdisc del dev lo root; else say htb no "$out"; fi
if out=$(tc qdisc add dev lo root netem delay 1ms 2>&1); then say netem ok; tc qdisc del dev lo root; else say netem no "$out"; fi
if [ -e /proc/net/ip_vs ]; then say ipvs ok; else say ipvs no "/proc/net/ip_vs is absent: the kernel has no IP_VS"; fi
"#;

/// One measured fact: Ok, or what the attempt showed.
pub type Fact = Result<(), String>;

/// What a node on this host can do.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HostFacts {
    /// iptables rules in a node's own namespace (drop, partition).
    pub iptables: Fact,
    /// `-m comment` (every fault rule is labelled).
    pub comment: Fact,
    /// `-m statistic` (loss).
    pub statistic: Fact,
    /// `-m mac` (routed packets of a partition or a peer-scoped fault, matched by the node
    /// that sent them).
    pub mac: Fact,
    /// Changing a link (mtu faults need CAP_NET_ADMIN on the node's links).
    pub link: Fact,
    /// `-j NFQUEUE` (delay: packets handed to the userspace stage).
    pub nfqueue: Fact,
    /// `-j TEE` in the mangle table (duplicate: the copy sent to the receiving node).
    pub tee: Fact,
    /// `-j CLASSIFY` in the mangle table (rate: which packets go to the slow class).
    pub classify: Fact,
    /// The HTB queueing discipline (rate).
    pub htb: Fact,
    /// The netem queueing discipline (not needed by any fault: shown, so a run can say what it
    /// used instead).
    pub netem: Fact,
    /// IPVS (swarm's VIP and routing mesh).
    pub ipvs: Fact,
}

impl HostFacts {
    /// Parse the probe's output; a fact the output does not state is missing, with that said.
    pub fn parse(out: &str) -> HostFacts {
        let fact = |name: &str| -> Fact {
            for l in out.lines() {
                if let Some(rest) = l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')) {
                    return match rest.strip_prefix("no") {
                        Some(why) => Err(why.trim().to_string()),
                        None if rest.trim() == "ok" => Ok(()),
                        None => Err(format!("unreadable probe line: {l}")),
                    };
                }
            }
            Err(format!("the probe did not report {name}"))
        };
        HostFacts {
            iptables: fact("iptables"),
            comment: fact("comment"),
            statistic: fact("statistic"),
            mac: fact("mac"),
            link: fact("link"),
            classify: fact("classify"),
            nfqueue: fact("nfqueue"),
            tee: fact("tee"),
            htb: fact("htb"),
            netem: fact("netem"),
            ipvs: fact("ipvs"),
        }
    }

    /// Why this host cannot apply a fault, if a measured fact says it cannot.
    pub fn cannot(&self, spec: &FaultSpec) -> Option<String> {
        let need = |f: &Fact, what: &str| f.as_ref().err().map(|e| format!("{what}: {e}"));
        let rules = || {
            need(&self.iptables, "iptables does not work inside the nodes").or_else(|| need(&self.comment, "the kernel lacks xt_comment"))
        };
        let mac = || need(&self.mac, "the kernel lacks xt_mac (routed packets are matched by the node that sent them)");
        let peers = |m: &crate::model::Match| if m.peers.is_empty() { None } else { mac() };
        match spec {
            FaultSpec::Partition { .. } => rules().or_else(mac),
            FaultSpec::Drop { matches, .. } => rules().or_else(|| peers(matches)),
            FaultSpec::Loss { matches, .. } => rules()
                .or_else(|| need(&self.statistic, "the kernel lacks xt_statistic (random drops for loss)"))
                .or_else(|| peers(matches)),
            FaultSpec::Mtu { .. } => need(&self.link, "the nodes cannot change their links (CAP_NET_ADMIN)"),
            FaultSpec::Duplicate { .. } => rules()
                .or_else(|| need(&self.statistic, "the kernel lacks xt_statistic (which packets are copied)"))
                .or_else(|| need(&self.tee, "the kernel lacks xt_TEE (the copy sent to the receiving node)")),
            FaultSpec::Delay { matches, .. } | FaultSpec::Corrupt { matches, .. } => rules()
                .or_else(|| need(&self.nfqueue, "the kernel lacks xt_NFQUEUE (packets handed to the delay stage)"))
                .or_else(|| peers(matches)),
            // Shaped on the senders' egress, chosen by destination: no -m mac.
            FaultSpec::Rate { .. } => rules()
                .or_else(|| need(&self.classify, "the kernel lacks xt_CLASSIFY (which packets go to the slow class)"))
                .or_else(|| need(&self.htb, "the nodes cannot add an HTB qdisc (sch_htb, CAP_NET_ADMIN)")),
            FaultSpec::Kill { .. } | FaultSpec::StopNode { .. } | FaultSpec::HttpProxy { .. } => None,
        }
    }

    /// The facts as lines for a reader: `✓ iptables in a node` / `✗ ipvs: why`.
    pub fn lines(&self) -> Vec<String> {
        [
            ("iptables rules in a node (a scratch chain)", &self.iptables, "drop, partition"),
            ("-m comment", &self.comment, "every fault rule"),
            ("-m statistic", &self.statistic, "loss"),
            ("-m mac", &self.mac, "partition, peer-scoped drop and loss"),
            ("link changes (CAP_NET_ADMIN)", &self.link, "mtu"),
            ("-j NFQUEUE", &self.nfqueue, "delay and corrupt (the userspace stage)"),
            ("-j CLASSIFY (mangle)", &self.classify, "rate"),
            ("-j TEE (mangle)", &self.tee, "duplicate"),
            ("HTB qdisc", &self.htb, "rate"),
            ("netem qdisc", &self.netem, "nothing: rate is built on HTB, delay and corrupt on NFQUEUE, duplicate on TEE"),
            ("IPVS (/proc/net/ip_vs)", &self.ipvs, "swarm vip, node-port"),
        ]
        .iter()
        .map(|(what, f, for_)| match f {
            Ok(()) => format!("✓ {what}: works (for {for_})"),
            Err(e) => format!("✗ {what}: {e} (for {for_})"),
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, Match, Protocol};

    fn m() -> Match {
        Match { protocol: Protocol::Udp, port: Some(4789), direction: Direction::In, peers: vec![] }
    }

    #[test]
    fn facts_decide_unsupported_and_nothing_else_does() {
        let all = HostFacts::parse("iptables ok\ncomment ok\nstatistic ok\nmac ok\nlink ok\nipvs no /proc/net/ip_vs is absent\n");
        let loss = FaultSpec::Loss { nodes: vec!["w".into()], matches: m(), percent: 10.0 };
        let drop = FaultSpec::Drop { nodes: vec!["w".into()], matches: m() };
        assert_eq!(all.cannot(&loss), None);
        assert_eq!(all.cannot(&drop), None);
        assert_eq!(all.ipvs, Err("/proc/net/ip_vs is absent".into()));
        let no_stat = HostFacts::parse(
            "iptables ok\ncomment ok\nstatistic no iptables v1.8.9: Couldn't load match `statistic'\nmac no x\nlink ok\nipvs ok\n",
        );
        assert!(no_stat.cannot(&loss).unwrap().contains("xt_statistic"));
        assert_eq!(no_stat.cannot(&drop), None, "a drop does not need statistic, nor mac without peers");
        let cut = FaultSpec::Partition { side_a: vec![], side_b: vec![] };
        assert!(no_stat.cannot(&cut).unwrap().contains("xt_mac"));
        assert_eq!(all.cannot(&cut), None);
        // A fact the probe did not report is missing, never assumed.
        let silent = HostFacts::parse("");
        assert!(silent.cannot(&drop).unwrap().contains("did not report iptables"));
        assert!(silent.cannot(&FaultSpec::Mtu { nodes: vec![], mtu: 1200 }).is_some());
        assert_eq!(silent.cannot(&FaultSpec::StopNode { nodes: vec![] }), None);
    }

    #[test]
    fn rate_needs_classify_and_htb_and_never_netem() {
        let rate = FaultSpec::Rate { nodes: vec!["w".into()], matches: m(), bits: 10_000_000, burst: 12_500 };
        let here = HostFacts::parse(
            "iptables ok\ncomment ok\nstatistic ok\nmac no x\nclassify ok\nlink ok\nhtb ok\nnetem no Error: Specified qdisc kind is unknown.\nipvs no x\n",
        );
        assert_eq!(here.cannot(&rate), None, "no netem, no mac: still a rate");
        let no_htb = HostFacts::parse("iptables ok\ncomment ok\nclassify ok\nhtb no Error: Specified qdisc kind is unknown.\n");
        assert!(no_htb.cannot(&rate).unwrap().contains("HTB"));
        let no_classify = HostFacts::parse("iptables ok\ncomment ok\nclassify no x\nhtb ok\n");
        assert!(no_classify.cannot(&rate).unwrap().contains("xt_CLASSIFY"));
    }
}
