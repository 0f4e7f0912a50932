//! From the file as written to a resolved scenario: defaults filled in, `count` expanded,
//! node groups expanded, every reference checked. All problems are collected, none stops the rest.

use super::diag::Problems;
use super::file::*;
use super::spanned::{Pos, Sp};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const API_VERSION: &str = "clusterlab/v1";
const ALL_NODES: &str = "all-nodes";

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub source: String,
    pub stack: StackKind,
    pub nodes: Vec<Node>,
    pub networks: Vec<Network>,
    pub services: Vec<Service>,
    pub faults: Vec<Fault>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub name: String,
    pub driver: NetDriver,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    pub image: String,
    pub replicas: u32,
    pub network: String,
    pub publish: Vec<Publish>,
    pub endpoint_mode: EndpointMode,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Publish {
    pub port: u16,
    pub target: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub name: String,
    pub spec: FaultSpec,
}

/// Which packets a rule matches.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Match {
    pub protocol: Protocol,
    pub port: Option<u16>,
    pub direction: Direction,
    pub peers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FaultSpec {
    Drop {
        nodes: Vec<String>,
        matches: Match,
    },
    Partition {
        side_a: Vec<String>,
        side_b: Vec<String>,
    },
    Loss {
        nodes: Vec<String>,
        matches: Match,
        percent: f64,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Check(Check),
    Apply(String),
    Revert(String),
    Scale { service: String, replicas: u32 },
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    pub service: String,
    pub from: Vec<String>,
    pub via: Vec<String>,
    pub port: Option<u16>,
    pub requests: u32,
    #[serde(with = "millis")]
    pub timeout: Duration,
    pub expect: Expectation,
    /// Faults that must match packets during the check.
    pub faults_hit: Vec<String>,
}

/// Pairs that must not answer; every other pair must.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Expectation {
    /// Targets on these nodes are expected unreachable (empty: everything answers).
    pub unreachable_on: Vec<String>,
    /// ...from these entry nodes only (None: from every entry node).
    pub unreachable_from: Option<Vec<String>>,
}

impl Expectation {
    /// Should a request from `entry` to a target placed on `target_node` be answered?
    pub fn should_answer(&self, entry: &str, target_node: &str) -> bool {
        let blocked_target = self.unreachable_on.iter().any(|n| n == target_node);
        let blocked_entry = match &self.unreachable_from {
            None => true,
            Some(from) => from.iter().any(|n| n == entry),
        };
        !(blocked_target && blocked_entry)
    }
}

mod millis {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

impl Scenario {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
    pub fn fault(&self, name: &str) -> Option<&Fault> {
        self.faults.iter().find(|f| f.name == name)
    }
    pub fn managers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Manager)
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_label(p: &mut Problems, what: &str, s: &Sp<String>) {
    if !is_label(&s.value) {
        p.at(
            s.pos,
            format!("{what} name {:?} is not a valid name", s.value),
            Some(
                "use 1-40 lowercase letters, digits and dashes, not starting or ending with a dash"
                    .into(),
            ),
        );
    }
}

fn check_port(p: &mut Problems, what: &str, v: &Sp<u32>) -> Option<u16> {
    if v.value == 0 || v.value > 65535 {
        p.at(
            v.pos,
            format!("{what} {} is not a valid port", v.value),
            Some("ports are 1-65535".into()),
        );
        None
    } else {
        Some(v.value as u16)
    }
}

/// Parses `2s`, `500ms`, `1.5s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v > 0.0 && v <= 600.0).then(|| Duration::from_secs_f64(v * mult))
}

/// Node names known to the scenario: each node, each `count` group, and `all-nodes`.
struct NodeIndex {
    nodes: Vec<Node>,
    groups: BTreeMap<String, Vec<String>>,
}

impl NodeIndex {
    fn expand(&self, p: &mut Problems, what: &str, sel: &Sp<NodeSel>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let names = sel.value.names();
        if names.is_empty() {
            p.at(
                sel.pos,
                format!("{what} names no node"),
                Some("name at least one node, or all-nodes".into()),
            );
        }
        for n in names {
            let add: Vec<String> = if n == ALL_NODES {
                self.nodes.iter().map(|x| x.name.clone()).collect()
            } else if let Some(g) = self.groups.get(&n) {
                g.clone()
            } else if self.nodes.iter().any(|x| x.name == n) {
                vec![n.clone()]
            } else {
                let known: Vec<&str> = self.nodes.iter().map(|x| x.name.as_str()).collect();
                p.at(
                    sel.pos,
                    format!("{what} names unknown node {n:?}"),
                    Some(format!("known nodes: {}, or all-nodes", known.join(", "))),
                );
                continue;
            };
            for a in add {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
    fn all(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}

pub(super) fn resolve(f: ScenarioFile, p: &mut Problems) -> Option<Scenario> {
    if f.api_version.value != API_VERSION {
        p.at(
            f.api_version.pos,
            format!("unsupported api-version {:?}", f.api_version.value),
            Some(format!("this clusterlab reads api-version: {API_VERSION}")),
        );
    }
    check_label(p, "scenario", &f.name);

    // Nodes, with `count` expanded.
    let mut nodes = Vec::new();
    let mut groups = BTreeMap::new();
    let mut seen: BTreeMap<String, Pos> = BTreeMap::new();
    for n in &f.nodes {
        check_label(p, "node", &n.name);
        let names: Vec<String> = match &n.count {
            None => vec![n.name.value.clone()],
            Some(c) if c.value == 0 || c.value > 16 => {
                p.at(
                    c.pos,
                    format!("count {} is out of range", c.value),
                    Some("a group has 1-16 nodes".into()),
                );
                vec![]
            }
            Some(c) => {
                let v: Vec<String> = (1..=c.value)
                    .map(|i| format!("{}-{i}", n.name.value))
                    .collect();
                groups.insert(n.name.value.clone(), v.clone());
                v
            }
        };
        for name in names {
            if let Some(prev) = seen.get(&name) {
                p.at(
                    n.name.pos,
                    format!("duplicate node name {name:?}"),
                    Some(format!("first defined at line {}", prev.line)),
                );
                continue;
            }
            seen.insert(name.clone(), n.name.pos);
            nodes.push(Node { name, role: n.role });
        }
    }
    if f.nodes.is_empty() {
        p.at(
            Pos { line: 1, col: 1 },
            "the scenario has no nodes",
            Some("add `nodes: [ { name: manager, role: manager } ]`".into()),
        );
    }
    let stack = f.stack.kind.value;
    match stack {
        StackKind::Swarm if !nodes.is_empty() && !nodes.iter().any(|n| n.role == Role::Manager) => {
            p.at(
                f.stack.kind.pos,
                "a swarm needs at least one node with role: manager",
                None,
            )
        }
        StackKind::Kubernetes => p.at(
            f.stack.kind.pos,
            "stack kind kubernetes is not available in this release",
            Some("use kind: swarm; the Kubernetes stack is planned next".into()),
        ),
        _ => {}
    }
    let idx = NodeIndex {
        nodes: nodes.clone(),
        groups,
    };

    // Networks; a default overlay when none is declared.
    let mut networks = Vec::new();
    for n in &f.networks {
        check_label(p, "network", &n.name);
        if networks.iter().any(|x: &Network| x.name == n.name.value) {
            p.at(
                n.name.pos,
                format!("duplicate network name {:?}", n.name.value),
                None,
            );
        } else {
            networks.push(Network {
                name: n.name.value.clone(),
                driver: n.driver,
            });
        }
    }
    if networks.is_empty() {
        networks.push(Network {
            name: "labnet".into(),
            driver: NetDriver::Overlay,
        });
    }

    // Services.
    let mut services: Vec<Service> = Vec::new();
    for s in &f.services {
        check_label(p, "service", &s.name);
        if services.iter().any(|x| x.name == s.name.value) {
            p.at(
                s.name.pos,
                format!("duplicate service name {:?}", s.name.value),
                None,
            );
            continue;
        }
        let network = match &s.network {
            None => networks[0].name.clone(),
            Some(n) => {
                if !networks.iter().any(|x| x.name == n.value) {
                    let known: Vec<&str> = networks.iter().map(|x| x.name.as_str()).collect();
                    p.at(
                        n.pos,
                        format!(
                            "service {} names unknown network {:?}",
                            s.name.value, n.value
                        ),
                        Some(format!("declared networks: {}", known.join(", "))),
                    );
                }
                n.value.clone()
            }
        };
        if s.image.value.trim().is_empty() {
            p.at(
                s.image.pos,
                "image is empty",
                Some("use a clusterlab workload image such as `web`".into()),
            );
        }
        let replicas = match &s.replicas {
            Some(r) if r.value > 64 => {
                p.at(
                    r.pos,
                    format!("replicas {} is more than this harness runs (64)", r.value),
                    None,
                );
                r.value
            }
            Some(r) => r.value,
            None => 1,
        };
        let mut publish = Vec::new();
        for pd in &s.publish {
            let port = check_port(p, "published port", &pd.port);
            let target = match &pd.target {
                Some(t) => check_port(p, "target port", t),
                None => Some(80),
            };
            if let (Some(port), Some(target)) = (port, target) {
                let dup = services
                    .iter()
                    .flat_map(|x| x.publish.iter())
                    .chain(publish.iter())
                    .any(|x: &Publish| x.port == port);
                if dup {
                    p.at(
                        pd.port.pos,
                        format!("port {port} is published twice"),
                        Some("each published port belongs to one service".into()),
                    );
                }
                publish.push(Publish { port, target });
            }
        }
        services.push(Service {
            name: s.name.value.clone(),
            image: s.image.value.clone(),
            replicas,
            network,
            publish,
            endpoint_mode: s.endpoint_mode,
        });
    }

    // Faults: each kind takes its own fields, and says so when given another's.
    let mut faults: Vec<Fault> = Vec::new();
    for fd in &f.faults {
        check_label(p, "fault", &fd.name);
        if faults.iter().any(|x| x.name == fd.name.value) {
            p.at(
                fd.name.pos,
                format!("duplicate fault name {:?}", fd.name.value),
                None,
            );
            continue;
        }
        if let Some(spec) = resolve_fault(fd, &idx, p) {
            faults.push(Fault {
                name: fd.name.value.clone(),
                spec,
            });
        }
    }

    // Steps, in order, tracking which faults are applied and each service's replica count.
    let mut steps = Vec::new();
    let mut applied: BTreeSet<String> = BTreeSet::new();
    let mut check_names: BTreeMap<String, Pos> = BTreeMap::new();
    let fault_known = |name: &Sp<String>, p: &mut Problems| -> bool {
        if f.faults.iter().any(|x| x.name.value == name.value) {
            true
        } else {
            let known: Vec<&str> = f.faults.iter().map(|x| x.name.value.as_str()).collect();
            let hint = if known.is_empty() {
                "declare it under faults:".to_string()
            } else {
                format!("declared faults: {}", known.join(", "))
            };
            p.at(
                name.pos,
                format!("unknown fault {:?}", name.value),
                Some(hint),
            );
            false
        }
    };
    for st in &f.steps {
        match st {
            StepDecl::Apply(n) => {
                if fault_known(n, p) && !applied.insert(n.value.clone()) {
                    p.at(
                        n.pos,
                        format!("fault {:?} is already applied here", n.value),
                        Some("revert it before applying it again".into()),
                    );
                }
                steps.push(Step::Apply(n.value.clone()));
            }
            StepDecl::Revert(n) => {
                if fault_known(n, p) && !applied.remove(&n.value) {
                    p.at(
                        n.pos,
                        format!("fault {:?} is not applied at this step", n.value),
                        Some("a revert must follow its apply".into()),
                    );
                }
                steps.push(Step::Revert(n.value.clone()));
            }
            StepDecl::Scale(s) => {
                if !services.iter().any(|x| x.name == s.service.value) {
                    p.at(
                        s.service.pos,
                        format!("scale names unknown service {:?}", s.service.value),
                        Some(service_hint(&services)),
                    );
                }
                if s.replicas.value > 64 {
                    p.at(
                        s.replicas.pos,
                        format!(
                            "replicas {} is more than this harness runs (64)",
                            s.replicas.value
                        ),
                        None,
                    );
                }
                steps.push(Step::Scale {
                    service: s.service.value.clone(),
                    replicas: s.replicas.value,
                });
            }
            StepDecl::Check(c) => {
                check_label(p, "check", &c.name);
                if let Some(prev) = check_names.insert(c.name.value.clone(), c.name.pos) {
                    p.at(
                        c.name.pos,
                        format!("duplicate check name {:?}", c.name.value),
                        Some(format!("first used at line {}", prev.line)),
                    );
                }
                for h in c.expect.iter().flat_map(|e| e.faults_hit.iter()) {
                    if fault_known(h, p) && !applied.contains(&h.value) {
                        p.at(
                            h.pos,
                            format!("fault {:?} is not applied at this check", h.value),
                            Some("faults-hit names faults applied by an earlier step".into()),
                        );
                    }
                }
                if let Some(chk) = resolve_check(c, &idx, &services, p) {
                    steps.push(Step::Check(chk));
                }
            }
        }
    }

    if !p.is_empty() {
        return None;
    }
    Some(Scenario {
        name: f.name.value,
        description: f.description,
        source: p.file.clone(),
        stack,
        nodes,
        networks,
        services,
        faults,
        steps,
    })
}

fn service_hint(services: &[Service]) -> String {
    if services.is_empty() {
        "declare it under services:".into()
    } else {
        format!(
            "declared services: {}",
            services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn not_for(p: &mut Problems, kind: &str, field: &str, pos: Pos) {
    p.at(
        pos,
        format!("field {field} does not apply to a {kind} fault"),
        Some("remove it, or change the fault's kind".into()),
    );
}

fn resolve_match(fd: &FaultDecl, idx: &NodeIndex, p: &mut Problems) -> Match {
    let protocol = fd
        .protocol
        .as_ref()
        .map(|x| x.value)
        .unwrap_or(Protocol::All);
    let port = fd.port.as_ref().and_then(|v| check_port(p, "port", v));
    if let (Some(pv), false) = (&fd.port, matches!(protocol, Protocol::Tcp | Protocol::Udp)) {
        p.at(
            pv.pos,
            "a port needs protocol: tcp or udp",
            Some("add `protocol: udp` (VXLAN is UDP 4789)".into()),
        );
    }
    Match {
        protocol,
        port,
        direction: fd
            .direction
            .as_ref()
            .map(|d| d.value)
            .unwrap_or(Direction::In),
        peers: fd
            .peers
            .as_ref()
            .map(|x| idx.expand(p, "peers", x))
            .unwrap_or_default(),
    }
}

fn resolve_fault(fd: &FaultDecl, idx: &NodeIndex, p: &mut Problems) -> Option<FaultSpec> {
    match fd.kind.value {
        FaultKind::Drop | FaultKind::Loss => {
            let kind = if fd.kind.value == FaultKind::Drop {
                "drop"
            } else {
                "loss"
            };
            for (field, pos) in [
                ("side-a", fd.side_a.as_ref().map(|x| x.pos)),
                ("side-b", fd.side_b.as_ref().map(|x| x.pos)),
            ] {
                if let Some(pos) = pos {
                    not_for(p, kind, field, pos);
                }
            }
            let nodes = match &fd.node {
                Some(n) => idx.expand(p, "node", n),
                None => {
                    p.at(
                        fd.kind.pos,
                        format!("a {kind} fault needs node:"),
                        Some("name the node whose traffic is dropped".into()),
                    );
                    vec![]
                }
            };
            let matches = resolve_match(fd, idx, p);
            if fd.kind.value == FaultKind::Drop {
                if let Some(pc) = &fd.percent {
                    not_for(p, kind, "percent", pc.pos);
                }
                Some(FaultSpec::Drop { nodes, matches })
            } else {
                let percent = match &fd.percent {
                    Some(pc) if pc.value > 0.0 && pc.value <= 100.0 => pc.value,
                    Some(pc) => {
                        p.at(
                            pc.pos,
                            format!("percent {} is out of range", pc.value),
                            Some("0 < percent <= 100".into()),
                        );
                        0.0
                    }
                    None => {
                        p.at(fd.kind.pos, "a loss fault needs percent:", None);
                        0.0
                    }
                };
                Some(FaultSpec::Loss {
                    nodes,
                    matches,
                    percent,
                })
            }
        }
        FaultKind::Partition => {
            for (field, pos) in [
                ("node", fd.node.as_ref().map(|x| x.pos)),
                ("protocol", fd.protocol.as_ref().map(|x| x.pos)),
                ("port", fd.port.as_ref().map(|x| x.pos)),
                ("direction", fd.direction.as_ref().map(|x| x.pos)),
                ("peers", fd.peers.as_ref().map(|x| x.pos)),
                ("percent", fd.percent.as_ref().map(|x| x.pos)),
            ] {
                if let Some(pos) = pos {
                    not_for(p, "partition", field, pos);
                }
            }
            let side = |s: &Option<Sp<NodeSel>>, name: &str, p: &mut Problems| match s {
                Some(x) => idx.expand(p, name, x),
                None => {
                    p.at(
                        fd.kind.pos,
                        format!("a partition fault needs {name}:"),
                        Some("side-a: [manager], side-b: [worker]".into()),
                    );
                    vec![]
                }
            };
            let side_a = side(&fd.side_a, "side-a", p);
            let side_b = side(&fd.side_b, "side-b", p);
            if let Some(common) = side_a.iter().find(|n| side_b.contains(n)) {
                p.at(
                    fd.side_b.as_ref().map(|x| x.pos).unwrap_or(fd.kind.pos),
                    format!("node {common} is on both sides of the partition"),
                    None,
                );
            }
            Some(FaultSpec::Partition { side_a, side_b })
        }
    }
}

fn resolve_check(
    c: &CheckDecl,
    idx: &NodeIndex,
    services: &[Service],
    p: &mut Problems,
) -> Option<Check> {
    let svc = services.iter().find(|s| s.name == c.service.value);
    if svc.is_none() {
        p.at(
            c.service.pos,
            format!(
                "check {} names unknown service {:?}",
                c.name.value, c.service.value
            ),
            Some(service_hint(services)),
        );
    }
    let from = c
        .from
        .as_ref()
        .map(|x| idx.expand(p, "from", x))
        .unwrap_or_else(|| idx.all());
    let kind = c.kind.value;
    let only_for = |field: &str, pos: Option<Pos>, allowed: &[CheckKind], p: &mut Problems| {
        if let Some(pos) = pos {
            if !allowed.contains(&kind) {
                p.at(
                    pos,
                    format!(
                        "field {field} does not apply to a {} check",
                        kind_name(kind)
                    ),
                    Some("remove it, or change the check's kind".into()),
                );
            }
        }
    };
    only_for(
        "via",
        c.via.as_ref().map(|x| x.pos),
        &[CheckKind::NodePort],
        p,
    );
    only_for(
        "port",
        c.port.as_ref().map(|x| x.pos),
        &[CheckKind::NodePort],
        p,
    );
    only_for(
        "requests",
        c.requests.as_ref().map(|x| x.pos),
        &[CheckKind::Vip, CheckKind::NodePort],
        p,
    );
    let via = c
        .via
        .as_ref()
        .map(|x| idx.expand(p, "via", x))
        .unwrap_or_else(|| idx.all());
    let mut port = c.port.as_ref().and_then(|v| check_port(p, "port", v));
    if kind == CheckKind::NodePort && port.is_none() && c.port.is_none() {
        match svc.and_then(|s| s.publish.first()) {
            Some(pb) => port = Some(pb.port),
            None if svc.is_some() => p.at(c.kind.pos, format!("service {} publishes no port for a node-port check", c.service.value), Some("add publish: [ { port: 8080, target: 80 } ] to the service, or port: to the check".into())),
            None => {}
        }
    }
    let requests = match &c.requests {
        Some(r) if r.value == 0 || r.value > 1000 => {
            p.at(
                r.pos,
                format!("requests {} is out of range", r.value),
                Some("1-1000".into()),
            );
            1
        }
        Some(r) => r.value,
        None => 6,
    };
    let timeout = match &c.timeout {
        None => Duration::from_secs(2),
        Some(t) => parse_duration(&t.value).unwrap_or_else(|| {
            p.at(
                t.pos,
                format!("timeout {:?} is not a duration", t.value),
                Some("write e.g. 2s or 500ms (at most 600s)".into()),
            );
            Duration::from_secs(2)
        }),
    };
    let mut expect = Expectation::default();
    if let Some(un) = c.expect.as_ref().and_then(|e| e.unreachable.as_ref()) {
        if kind == CheckKind::Dns {
            p.at(
                c.kind.pos,
                "a dns check takes no unreachable expectation",
                None,
            );
        }
        expect.unreachable_on = match &un.replicas_on {
            Some(s) => idx.expand(p, "replicas-on", s),
            None => idx.all(),
        };
        expect.unreachable_from = un.from.as_ref().map(|s| idx.expand(p, "from", s));
    }
    let faults_hit = c
        .expect
        .iter()
        .flat_map(|e| e.faults_hit.iter().map(|f| f.value.clone()))
        .collect();
    Some(Check {
        name: c.name.value.clone(),
        kind,
        service: c.service.value.clone(),
        from,
        via,
        port,
        requests,
        timeout,
        expect,
        faults_hit,
    })
}

pub fn kind_name(k: CheckKind) -> &'static str {
    match k {
        CheckKind::Replicas => "replicas",
        CheckKind::Vip => "vip",
        CheckKind::NodePort => "node-port",
        CheckKind::Dns => "dns",
    }
}
