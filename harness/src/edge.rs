//! The lab's edge: a lab is a closed world. Inside every node's own network namespace, packets
//! leaving through the lab interface to an address outside the lab's own ranges are dropped —
//! a ClusterIP that no rule translated (a deleted service, kube-proxy not yet synced), a typo, a
//! task reaching for the internet. Without it they would follow Docker's default route out of
//! the host, and whatever answers there could pass for a replica.
//!
//! The rule sits in `mangle POSTROUTING`: after routing and after the nat table's DNAT (so a
//! translated ClusterIP is judged by the pod it now goes to), and in a table neither dockerd
//! nor kube-proxy fill with ACCEPTs that would jump over it. Nothing is changed on the host.

use crate::lab::{find_lab_if, poll_script, Lab};
use crate::plan::NodePlan;
use crate::provider::{tail, LabError};
use futures_util::future::try_join_all;

/// The chain in each node's mangle table.
pub const CHAIN: &str = "CL-EDGE";

/// The cloud metadata address. Cloud SDKs ask it first — kubelet's in-tree credential providers
/// at every start — and wait out their timeouts when it is silently dropped (6.3 s of each
/// kubelet start here). A lab node is in no cloud and says so at once: an `unreachable` route
/// in the node's own table (EHOSTUNREACH for the node, ICMP host-unreachable for its pods), as a
/// machine outside any cloud whose router has no such route would.
pub const METADATA: &str = "169.254.169.254";

/// The ranges a node may send to through its lab interface: the lab network (nodes, the
/// gateway where a stray proxy fault publishes squid) and, on Kubernetes, the pod network
/// (host-gw routes pods' packets to peers through the lab interface).
pub fn allowed(lab: &Lab) -> Vec<String> {
    // 224.0.0.0/24: link-local multicast (IGMP reports when a bridge or VXLAN device comes up),
    // which never leaves the lab's segment.
    let mut v = vec![lab.plan.subnet.to_string(), "224.0.0.0/24".to_string()];
    if let Some(k) = &lab.scenario.kube {
        v.push(k.pod_cidr.clone());
    }
    v
}

/// The script that installs the edge in one node (idempotent: a second `up` finds it there).
pub fn script(ip: &str, allowed: &[String]) -> String {
    let mut s = format!(
        "set -e\n{}\
         ip route replace unreachable {METADATA}/32\n\
         if iptables -w 10 -t mangle -n -L {CHAIN} >/dev/null 2>&1; then exit 0; fi\n\
         iptables -w 10 -t mangle -N {CHAIN}\n",
        find_lab_if(ip)
    );
    for a in allowed {
        s.push_str(&format!("iptables -w 10 -t mangle -A {CHAIN} -d {a} -j RETURN\n"));
    }
    // Everything else that would leave the lab: dropped here, and counted.
    s.push_str(&format!(
        "iptables -w 10 -t mangle -A {CHAIN} -m comment --comment 'clusterlab: leaves the lab' -j DROP\n\
         iptables -w 10 -t mangle -I POSTROUTING 1 -o \"$lab_if\" -j {CHAIN}\n"
    ));
    s
}

/// Exit code of the seal's exec when the condition it waits for first never held.
const NOT_READY: i64 = 97;

/// Install the edge in every node once `ready` holds there (a shell condition, polled for up
/// to 15 s in the same exec: one exec per node, not two — each costs the host's engine ~75 ms
/// of CPU on a CPU-bound bring-up); `not_ready` is the error for a node where it never held.
pub async fn seal(lab: &Lab, ready: &str, not_ready: impl Fn(&NodePlan) -> LabError) -> Result<(), LabError> {
    let allowed = allowed(lab);
    let (allowed, not_ready) = (&allowed, &not_ready);
    try_join_all(lab.plan.nodes.iter().map(|n| async move {
        let edge = script(&n.ip.to_string(), allowed);
        let out = lab.sh_raw(&n.name, &format!("{} || exit {NOT_READY}\n{edge}", poll_script(ready, 15, "0.1"))).await?;
        match out.code {
            0 => Ok(()),
            NOT_READY => Err(not_ready(n)),
            code => Err(LabError::Command {
                node: n.name.clone(),
                what: "closing the lab's edge".into(),
                cmd: edge.lines().nth(1).unwrap_or_default().to_string(),
                code,
                tail: tail(&format!("{}\n{}", out.stdout, out.stderr), 12),
            }),
        }
    }))
    .await?;
    Ok(())
}

/// Packets the edge dropped on a node so far.
pub async fn dropped(lab: &Lab, node: &str) -> Result<u64, LabError> {
    let out = lab.sh(node, "reading the edge's counter", &format!("iptables -w 10 -t mangle -L {CHAIN} -v -x -n")).await?;
    Ok(out.stdout.lines().filter(|l| l.contains("leaves the lab")).filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_returns_lab_ranges_and_drops_the_rest_on_the_lab_interface() {
        let s = script("10.213.0.11", &["10.213.0.0/24".into(), "10.244.0.0/16".into()]);
        let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("iptables -w 10 -t mangle -A") || l.contains("-I POSTROUTING")).collect();
        assert!(s.contains("ip route replace unreachable 169.254.169.254/32\n"));
        assert_eq!(
            lines,
            [
                "iptables -w 10 -t mangle -A CL-EDGE -d 10.213.0.0/24 -j RETURN",
                "iptables -w 10 -t mangle -A CL-EDGE -d 10.244.0.0/16 -j RETURN",
                "iptables -w 10 -t mangle -A CL-EDGE -m comment --comment 'clusterlab: leaves the lab' -j DROP",
                "iptables -w 10 -t mangle -I POSTROUTING 1 -o \"$lab_if\" -j CL-EDGE",
            ]
        );
    }
}
