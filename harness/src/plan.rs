//! Plan: every name, address and label of a lab, computed from the scenario alone (pure, no
//! Docker), so it can be unit-tested and printed before anything is created.

use crate::model::{Role, Scenario};
use std::net::Ipv4Addr;

/// Label on every container, network and volume a lab creates; `clean` finds leftovers by it.
pub const LABEL_LAB: &str = "io.clusterlab.lab";
/// Label naming the run that created the object, so concurrent runs never remove each other's.
pub const LABEL_RUN: &str = "io.clusterlab.run";
/// Label on a lab's network: the plan as JSON, so later commands (fault verbs, down) can attach.
pub const LABEL_PLAN: &str = "io.clusterlab.plan";
/// Label on a lab's network: the absolute path of the scenario file it was made from.
pub const LABEL_SCENARIO: &str = "io.clusterlab.scenario";
/// Label naming who owns the run (see `owner`): `clean` removes only runs whose owner is gone.
pub const LABEL_OWNER: &str = "io.clusterlab.owner";
/// Label naming the node a container or volume belongs to.
pub const LABEL_NODE: &str = "io.clusterlab.node";

/// Labs take /24 subnets out of this /16; it sits apart from Docker's default bridge pools
/// (172.17-31.x, 192.168.x) and from swarm's overlay pool (10.0.x).
/// (The scenario model checks pod and service ranges against the same range: `syntax::LAB_POOL`.)
pub const LAB_POOL: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 213, 0, 0), 16);

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Option<Subnet> {
        let (a, p) = s.split_once('/')?;
        Some(Subnet { base: a.parse().ok()?, prefix: p.parse().ok().filter(|p| *p <= 32)? })
    }
    fn range(&self) -> (u32, u32) {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
        let lo = u32::from(self.base) & mask;
        (lo, lo | !mask)
    }
    pub fn overlaps(&self, o: &Subnet) -> bool {
        let (a0, a1) = self.range();
        let (b0, b1) = o.range();
        a0 <= b1 && b0 <= a1
    }
    /// The n-th host address (n=1 is the gateway).
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.range().0 + n)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// The first /24 of the lab pool that overlaps none of `used` (the engine's existing networks).
pub fn free_subnet(used: &[Subnet]) -> Option<Subnet> {
    let pool = Subnet { base: LAB_POOL.0, prefix: LAB_POOL.1 };
    let (lo, _) = pool.range();
    (0..256u32).map(|i| Subnet { base: Ipv4Addr::from(lo + (i << 8)), prefix: 24 }).find(|c| !used.iter().any(|u| u.overlaps(c)))
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodePlan {
    /// The node's name in the scenario and its hostname.
    pub name: String,
    /// The container's name on the host engine: `<lab>-<node>`.
    pub container: String,
    /// The named volume holding the inner engine's /var/lib/docker.
    pub volume: String,
    pub ip: Ipv4Addr,
    pub role: Role,
}

impl NodePlan {
    /// The node's MAC address on the lab network, derived from its address (locally
    /// administered 02:42 + the four address bytes, as Docker itself derives them) and set when
    /// the node is created, so faults can name the node a forwarded packet came from.
    pub fn mac(&self) -> String {
        mac_of(self.ip)
    }
}

pub fn mac_of(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabPlan {
    pub lab: String,
    pub run_id: String,
    /// Who owns the run (`owner::current`); empty in plans made before owners existed.
    #[serde(default)]
    pub owner: String,
    pub network: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub nodes: Vec<NodePlan>,
}

impl LabPlan {
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }
    /// The node that initialises the swarm and answers cluster-wide queries.
    pub fn leader(&self) -> &NodePlan {
        self.nodes.iter().find(|n| n.role == Role::Manager).unwrap_or(&self.nodes[0])
    }
    pub fn labels(&self, node: Option<&str>) -> std::collections::HashMap<String, String> {
        let mut m = run_labels(&self.lab, &self.run_id, &self.owner);
        if let Some(n) = node {
            m.insert(LABEL_NODE.to_string(), n.to_string());
        }
        m
    }
}

/// Lay out a lab: `lab` is the scenario name, or that name with a suffix when runs go in parallel.
pub fn plan(s: &Scenario, lab: &str, run_id: &str, used: &[Subnet]) -> Result<LabPlan, String> {
    let subnet = free_subnet(used).ok_or_else(|| {
        format!("no free /24 left in {}/{} for a lab network; remove old labs with `clusterlab clean`", LAB_POOL.0, LAB_POOL.1)
    })?;
    let nodes = s
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodePlan {
            name: n.name.clone(),
            container: format!("{lab}-{}", n.name),
            volume: format!("{lab}-{}-engine", n.name),
            // .1 is the bridge gateway; nodes from .11 so addresses read like the node's index.
            ip: subnet.host(11 + i as u32),
            role: n.role,
        })
        .collect();
    Ok(LabPlan {
        lab: lab.to_string(),
        run_id: run_id.to_string(),
        owner: String::new(),
        network: format!("{lab}-net"),
        gateway: subnet.host(1),
        subnet,
        nodes,
    })
}

/// A short random id for a run, from the clock and the process id (no extra crate needed).
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// How a stack's node containers start.
pub struct NodeBoot {
    /// The node container's command.
    pub cmd: Vec<String>,
    /// Where the node's container runtime keeps its layers (a labelled volume is mounted there).
    pub data_dir: &'static str,
    /// Host paths bind-mounted read-only into every node (host path, node path).
    pub binds: Vec<(String, String)>,
}

/// The labels of a run's objects (lab, run, owner process), for what a run creates before its
/// plan is known.
pub fn run_labels(lab: &str, run_id: &str, owner: &str) -> std::collections::HashMap<String, String> {
    let mut m = std::collections::HashMap::new();
    m.insert(LABEL_LAB.to_string(), lab.to_string());
    m.insert(LABEL_RUN.to_string(), run_id.to_string());
    if !owner.is_empty() {
        m.insert(LABEL_OWNER.to_string(), owner.to_string());
    }
    m
}

#[cfg(test)]
mod pool_test {
    #[test]
    fn one_lab_pool() {
        assert_eq!(format!("{}/{}", super::LAB_POOL.0, super::LAB_POOL.1), crate::model::syntax::LAB_POOL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(s: &str) -> Subnet {
        Subnet::parse(s).unwrap()
    }

    #[test]
    fn free_subnet_skips_every_overlap() {
        assert_eq!(free_subnet(&[]), Some(sub("10.213.0.0/24")));
        let used = [sub("10.213.0.0/24"), sub("10.213.1.128/25"), sub("172.17.0.0/16")];
        assert_eq!(free_subnet(&used), Some(sub("10.213.2.0/24")));
        // A wide network covering the pool leaves nothing.
        assert_eq!(free_subnet(&[sub("10.0.0.0/8")]), None);
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        assert!(sub("10.213.0.0/16").overlaps(&sub("10.213.5.0/24")));
        assert!(sub("10.213.5.0/24").overlaps(&sub("10.213.0.0/16")));
        assert!(!sub("10.213.5.0/24").overlaps(&sub("10.213.6.0/24")));
    }

    #[test]
    fn plan_names_and_addresses() {
        let s = crate::model::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/swarm-vxlan-blocked.yaml")))
            .unwrap();
        let p = plan(&s, "lab1", "abcd1234", &[sub("10.213.0.0/24")]).unwrap();
        insta::assert_yaml_snapshot!(p);
        assert_eq!(p.leader().name, "manager");
        assert_eq!(p.labels(Some("worker-1")).get(LABEL_NODE).map(String::as_str), Some("worker-1"));
    }
}
