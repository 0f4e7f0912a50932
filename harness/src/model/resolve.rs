//! From the file as written to a resolved scenario: defaults filled in, `count` expanded,
//! node groups expanded, every reference checked. All problems are collected, none stops the rest.

use super::diag::Problems;
use super::file::*;
use super::spanned::{Pos, Sp};
use super::stream::*;
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
    /// Kubernetes settings, when the stack is kubernetes.
    pub kube: Option<KubeSpec>,
    pub nodes: Vec<Node>,
    pub networks: Vec<Network>,
    pub services: Vec<Service>,
    pub faults: Vec<Fault>,
    /// Background traffic across the steps.
    pub streams: Vec<Stream>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KubeSpec {
    pub bundle: BundleRef,
    pub backend: Backend,
    pub vxlan_port: u16,
    pub pod_cidr: String,
    pub service_cidr: String,
}

/// Where the Kubernetes server binaries come from.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum BundleRef {
    /// A directory holding kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy.
    Dir(String),
    /// An official kubernetes-server-linux-amd64.tar.gz.
    Tarball(String),
    /// A version built into the cache by images/kubernetes/build-bundle.sh.
    Version(String),
}

pub const DEFAULT_KUBE_VERSION: &str = "1.20.2";

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
    /// kubernetes: the Service type and, for node-port, a fixed node port.
    pub service_type: ServiceType,
    pub node_port: Option<u16>,
    /// The port the image serves on inside its container.
    pub port: u16,
    /// How an answer names the replica that sent it.
    pub identity: Identity,
}

/// How a service's answers say which replica sent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Identity {
    /// clusterlab's web image: `replica=<hostname>` in the body.
    Web,
    /// The body contains the replica's hostname.
    Body,
    /// This header's value is the replica's hostname.
    Header(String),
    /// Answers do not say: targets are replicas by address; a VIP's split is unknown.
    None,
}

impl Identity {
    /// `web`, `body`, `header X-Served-By`, `none`.
    pub fn parse(s: &str) -> Result<Identity, String> {
        let mut w = s.split_whitespace();
        let id = match (w.next(), w.next(), w.next()) {
            (Some("web"), None, _) => Identity::Web,
            (Some("body"), None, _) => Identity::Body,
            (Some("none"), None, _) => Identity::None,
            (Some("header"), Some(h), None) if h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
                Identity::Header(h.to_string())
            }
            (Some("header"), Some(h), None) => return Err(format!("{h:?} is not a header name")),
            (Some("header"), None, _) => return Err("header needs the header's name, e.g. `header X-Served-By`".into()),
            _ => return Err(format!("identity {s:?} is none of web, body, header <Name>, none")),
        };
        Ok(id)
    }

    /// Whether answers name their replica at all.
    pub fn named(&self) -> bool {
        *self != Identity::None
    }
}

/// The port clusterlab's own workload images serve on.
pub fn workload_port(image: &str) -> u16 {
    if image == "tools" {
        5201
    } else {
        80
    }
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
    Kill {
        nodes: Vec<String>,
        component: String,
    },
    StopNode {
        nodes: Vec<String>,
    },
    HttpProxy {
        nodes: Vec<String>,
        no_proxy: Vec<NoProxy>,
        components: Vec<String>,
    },
    Mtu {
        nodes: Vec<String>,
        mtu: u32,
    },
    /// `bits`: bits per second; `burst`: bytes.
    Rate {
        nodes: Vec<String>,
        matches: Match,
        bits: u64,
        burst: u64,
    },
    /// Each matched packet held `delay_us` plus jitter drawn from `distribution`.
    Delay {
        nodes: Vec<String>,
        matches: Match,
        delay_us: u64,
        jitter_us: u64,
        distribution: Distribution,
        /// Percent of packets (of every `gap`th) sent at once, overtaking the held ones.
        reorder: f64,
        gap: u32,
    },
    /// One random bit flipped in `percent` of the matched packets (past the IP header).
    Corrupt {
        nodes: Vec<String>,
        matches: Match,
        percent: f64,
    },
    /// `percent` of the matched packets arrive twice.
    Duplicate {
        nodes: Vec<String>,
        matches: Match,
        percent: f64,
    },
}

impl FaultSpec {
    /// Why this fault cannot be applied before the stack is installed, if it cannot: it acts on
    /// a component the install starts.
    pub fn needs_stack(&self) -> Option<String> {
        match self {
            FaultSpec::Kill { component, .. } => Some(format!("it stops {component}, and a kill acts on a stack that runs")),
            FaultSpec::StopNode { .. } => Some("it pauses the node's containers, and the install execs into the node".into()),
            FaultSpec::HttpProxy { components, .. } if !components.is_empty() => {
                Some(format!("it restarts {}, which runs only once the stack is installed", components.join(", ")))
            }
            _ => None,
        }
    }

    /// Faults that act without iptables rules have no packet counter (for faults-hit).
    pub fn counts_packets(&self) -> bool {
        matches!(
            self,
            FaultSpec::Drop { .. }
                | FaultSpec::Partition { .. }
                | FaultSpec::Loss { .. }
                | FaultSpec::Rate { .. }
                | FaultSpec::Delay { .. }
                | FaultSpec::Corrupt { .. }
        )
    }
}

/// A bandwidth as tc writes it: `10mbit`, `512kbit`, `1gbit`, `9600bit` (powers of 1000).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: u64 = match unit {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        _ => return Err(format!("rate {text:?} needs a unit: bit, kbit, mbit or gbit (e.g. 10mbit)")),
    };
    match num.parse::<f64>() {
        Ok(n) if n > 0.0 => Ok((n * scale as f64).round() as u64),
        _ => Err(format!("rate {text:?} needs a number above 0 before its unit (e.g. 10mbit)")),
    }
}

/// A bandwidth for a reader: `10 Mbit/s`, `512 kbit/s`.
pub fn rate_words(bits: u64) -> String {
    let (v, unit) = match bits {
        b if b >= 1_000_000_000 => (b as f64 / 1e9, "Gbit/s"),
        b if b >= 1_000_000 => (b as f64 / 1e6, "Mbit/s"),
        b if b >= 1_000 => (b as f64 / 1e3, "kbit/s"),
        b => (b as f64, "bit/s"),
    };
    let v = format!("{v:.2}");
    format!("{} {unit}", v.trim_end_matches('0').trim_end_matches('.'))
}

/// A size as tc writes it: `32kb`, `1mb`, `1500b` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: u64 = match unit {
        "b" => 1,
        "kb" => 1024,
        "mb" => 1024 * 1024,
        _ => return Err(format!("size {text:?} needs a unit: b, kb or mb (e.g. 32kb)")),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n * scale),
        _ => Err(format!("size {text:?} needs a whole number above 0 before its unit (e.g. 32kb)")),
    }
}

/// The burst a rate gets when the file names none: what it sends in 10 ms (the kernel's timer
/// granularity HTB needs at the least), and never less than two full frames.
pub fn default_burst(bits: u64) -> u64 {
    (bits / 8 / 100).max(2 * 1514)
}

/// One `no_proxy` entry: a node (its address, known when the lab is planned) or text as written.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum NoProxy {
    Node(String),
    Literal(String),
}

/// The cluster DNS of a Kubernetes lab, as a component (on the master).
pub const CLUSTER_DNS: &str = "cluster-dns";

/// Components a kill fault can stop, per stack (each runs under the node's supervisor).
pub fn killable(stack: StackKind) -> &'static [&'static str] {
    match stack {
        StackKind::Swarm => &["dockerd"],
        StackKind::Kubernetes => {
            &["containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", CLUSTER_DNS]
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Check(Check),
    Apply(String),
    Revert(String),
    Scale {
        service: String,
        replicas: u32,
    },
    Bench(Bench),
    StartStream(String),
    StopStream(String),
    #[serde(with = "millis")]
    Wait(Duration),
    Install(Install),
}

/// An install of the stack as a step of the story (see `InstallDecl`).
#[derive(Debug, Clone, Serialize)]
pub struct Install {
    pub name: String,
    /// None: the install must succeed; Some: it must fail, at this stage.
    pub fails_at: Option<InstallStage>,
    #[serde(with = "millis")]
    pub timeout: Duration,
}

/// An install step's bound when the file gives none: a cold Kubernetes install on two busy cores
/// takes ~60 s; five times that is a hang.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    pub name: String,
    pub kind: BenchKind,
    pub service: String,
    /// The client's node.
    pub from: String,
    pub paths: Vec<PathKind>,
    pub samples: u32,
    pub seconds: u32,
    pub gates: Vec<Gate>,
}

/// `vip/direct >= 0.9`: the ratio of two paths' medians, compared with a bound; or
/// `node/slow-link: 0.9..1.05`: a path's median against what a rate fault asked for.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gate {
    pub num: PathKind,
    pub den: GateDen,
    pub op: GateOp,
    pub bound: f64,
}

/// What a gate's ratio divides by.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum GateDen {
    Path(PathKind),
    /// The bandwidth a rate fault asked for (bits/s; filled in once the faults are known).
    Asked {
        fault: String,
        bits: f64,
    },
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub enum GateOp {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<=")]
    AtMost,
    /// `low..bound`, both included.
    #[serde(rename = "..")]
    Between { low: f64 },
}

impl Gate {
    /// Parse `vip/direct` (or `node/<rate fault>`) and `>= 0.9`, `<= 1.1` or `0.9..1.05`.
    pub fn parse(key: &str, value: &str) -> Result<Gate, String> {
        let (a, b) = key.split_once('/').ok_or_else(|| format!("gate {key:?} is not a ratio of two paths like vip/direct"))?;
        let num = PathKind::parse(a.trim()).ok_or_else(|| format!("{a:?} is not a path (node, direct, vip, node-port)"))?;
        let den = match PathKind::parse(b.trim()) {
            Some(k) => GateDen::Path(k),
            None if is_label(b.trim()) => GateDen::Asked { fault: b.trim().to_string(), bits: 0.0 },
            None => return Err(format!("{b:?} is neither a path (node, direct, vip, node-port) nor a rate fault's name")),
        };
        let number = |t: &str| -> Result<f64, String> {
            let x: f64 = t.trim().parse().map_err(|_| format!("{:?} is not a number", t.trim()))?;
            if !x.is_finite() || x < 0.0 {
                return Err(format!("gate bound {x} must be a number >= 0"));
            }
            Ok(x)
        };
        let v = value.trim();
        let (op, bound) = if let Some(r) = v.strip_prefix(">=") {
            (GateOp::AtLeast, number(r)?)
        } else if let Some(r) = v.strip_prefix("<=") {
            (GateOp::AtMost, number(r)?)
        } else if let Some((lo, hi)) = v.split_once("..") {
            let (low, high) = (number(lo)?, number(hi)?);
            if low > high {
                return Err(format!("gate range {v:?} is empty: {low} is above {high}"));
            }
            (GateOp::Between { low }, high)
        } else {
            return Err(format!("gate value {value:?} needs >=, <= or a range, e.g. \">= 0.9\" or \"0.9..1.05\""));
        };
        Ok(Gate { num, den, op, bound })
    }
    pub fn holds(&self, ratio: f64) -> bool {
        match self.op {
            GateOp::AtLeast => ratio >= self.bound,
            GateOp::AtMost => ratio <= self.bound,
            GateOp::Between { low } => (low..=self.bound).contains(&ratio),
        }
    }
    pub fn text(&self) -> String {
        let den = match &self.den {
            GateDen::Path(k) => k.word().to_string(),
            GateDen::Asked { fault, .. } => fault.clone(),
        };
        match self.op {
            GateOp::AtLeast => format!("{}/{den} >= {}", self.num.word(), self.bound),
            GateOp::AtMost => format!("{}/{den} <= {}", self.num.word(), self.bound),
            GateOp::Between { low } => format!("{}/{den} {low}..{}", self.num.word(), self.bound),
        }
    }
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
    /// Kubernetes: requests from the node or from a client pod.
    pub client: ClientKind,
    /// Faults that must match packets during the check.
    pub faults_hit: Vec<String>,
    /// The HTTP path requested (replicas, vip, node-port).
    pub path: String,
    /// How long the expectation may take to hold (None: observed once).
    #[serde(with = "opt_millis")]
    pub within: Option<Duration>,
    /// http or tcp (replicas, vip, node-port).
    pub protocol: CheckProtocol,
    /// http: the status an answer must have (None: any 2xx).
    pub status: Option<u16>,
    /// http: text the answer's body must contain.
    pub body: Option<String>,
}

impl Check {
    /// A check of `kind` on `service` with every default (what a file with only those says).
    pub fn plain(service: &str, kind: CheckKind) -> Check {
        Check {
            name: kind_name(kind).to_string(),
            kind,
            service: service.to_string(),
            from: vec![],
            via: vec![],
            port: None,
            requests: if kind == CheckKind::Replicas { 3 } else { 6 },
            timeout: Duration::from_secs(2),
            expect: Expectation::default(),
            client: ClientKind::Node,
            faults_hit: vec![],
            path: "/".into(),
            within: None,
            protocol: CheckProtocol::Http,
            status: None,
            body: None,
        }
    }
}

/// Pairs that must not answer; every other pair must, at `answer_rate`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Expectation {
    /// A pair matching any rule must not answer (no rules: everything answers).
    pub unreachable: Vec<Unreachable>,
    /// The share of its requests a pair that must answer answers.
    pub answer_rate: AnswerRate,
}

/// A closed range of answered shares, `min..=max` (both in 0..=1).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct AnswerRate {
    pub min: f64,
    pub max: f64,
}

impl Default for AnswerRate {
    /// Every request answers.
    fn default() -> Self {
        AnswerRate { min: 1.0, max: 1.0 }
    }
}

impl AnswerRate {
    /// `>= 0.9`, `> 0.5`, `<= 0.5`, `< 0.5`, `== 1`, or `0.2..0.8`.
    pub fn parse(s: &str) -> Result<AnswerRate, String> {
        let t = s.trim();
        let num = |x: &str| -> Result<f64, String> {
            let v: f64 = x.trim().parse().map_err(|_| format!("{:?} is not a number", x.trim()))?;
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(format!("{v} is not a share between 0 and 1"))
            }
        };
        // A share is answered/requests; "> x" means the next representable share above x.
        let r = if let Some(x) = t.strip_prefix(">=") {
            AnswerRate { min: num(x)?, max: 1.0 }
        } else if let Some(x) = t.strip_prefix("<=") {
            AnswerRate { min: 0.0, max: num(x)? }
        } else if let Some(x) = t.strip_prefix("==") {
            let v = num(x)?;
            AnswerRate { min: v, max: v }
        } else if let Some(x) = t.strip_prefix('>') {
            AnswerRate { min: num(x)? + 1e-9, max: 1.0 }
        } else if let Some(x) = t.strip_prefix('<') {
            AnswerRate { min: 0.0, max: num(x)? - 1e-9 }
        } else if let Some((a, b)) = t.split_once("..") {
            AnswerRate { min: num(a)?, max: num(b)? }
        } else {
            return Err(format!("answer-rate {s:?} needs a comparison or a range, e.g. \">= 0.9\" or \"0.2..0.8\""));
        };
        if r.min > r.max {
            return Err(format!("answer-rate {s:?} is empty: no share is both >= {} and <= {}", r.min, r.max));
        }
        Ok(r)
    }

    /// Does `answered` of `sent` requests fall in the range? (No request sent: no.)
    pub fn holds(&self, answered: u32, sent: u32) -> bool {
        if sent == 0 {
            return false;
        }
        let share = answered as f64 / sent as f64;
        share >= self.min - 1e-12 && share <= self.max + 1e-12
    }

    /// Every request must answer (the default).
    pub fn is_all(&self) -> bool {
        self.min >= 1.0
    }

    pub fn text(&self) -> String {
        match (self.min, self.max) {
            (a, b) if a >= 1.0 && b >= 1.0 => "every request".into(),
            (a, b) if b >= 1.0 => format!(">= {a}"),
            (a, b) if a <= 0.0 => format!("<= {b}"),
            (a, b) if a == b => format!("== {a}"),
            (a, b) => format!("{a}..{b}"),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Unreachable {
    /// Targets on these nodes...
    pub on: Vec<String>,
    /// ...from these entry nodes (None: from every entry node).
    pub from: Option<Vec<String>>,
}

impl Expectation {
    /// One rule: targets on `on` unreachable from `from` (None: from everywhere).
    pub fn one(on: &[&str], from: Option<&[&str]>) -> Expectation {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Expectation { unreachable: vec![Unreachable { on: v(on), from: from.map(v) }], answer_rate: AnswerRate::default() }
    }

    /// Should a request from `entry` to a target placed on `target_node` be answered? An
    /// unknown target (`""`: a VIP whose answers name no replica) is covered by every rule that
    /// matches the entry; the model refuses rules naming `replicas-on` for such a check.
    pub fn should_answer(&self, entry: &str, target_node: &str) -> bool {
        !self.unreachable.iter().any(|u| {
            (target_node.is_empty() || u.on.iter().any(|n| n == target_node))
                && u.from.as_ref().is_none_or(|f| f.iter().any(|n| n == entry))
        })
    }
}

mod opt_millis {
    pub fn serialize<S: serde::Serializer>(d: &Option<std::time::Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
}

pub(crate) mod millis {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
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
    /// The stack is installed by the scenario's steps (nodes start bare), not before them.
    pub fn installs_in_steps(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Install(_)))
    }
    pub fn managers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Manager)
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A verdict's name (a check's, a bench's, an install's) used once. A second use is an error at
/// it, saying where the first was; an install without a name has no position of its own (`pos`
/// None, kept as the default position), so a clash with it says which name it was given.
fn name_once(names: &mut BTreeMap<String, Pos>, what: &str, name: &str, pos: Option<Pos>, p: &mut Problems) {
    let unnamed = format!("an install step without a name is called {name}: name it");
    match (names.insert(name.to_string(), pos.unwrap_or_default()), pos) {
        (None, _) => {}
        (Some(prev), Some(at)) if prev == Pos::default() => p.at(at, format!("duplicate {what} name {name:?}"), Some(unnamed)),
        (Some(prev), Some(at)) => p.at(at, format!("duplicate {what} name {name:?}"), Some(format!("first used at line {}", prev.line))),
        (Some(prev), None) => p.at(prev, format!("duplicate {what} name {name:?}"), Some(unnamed)),
    }
}

fn check_label(p: &mut Problems, what: &str, s: &Sp<String>) {
    if !is_label(&s.value) {
        p.at(
            s.pos,
            format!("{what} name {:?} is not a valid name", s.value),
            Some("use 1-40 lowercase letters, digits and dashes, not starting or ending with a dash".into()),
        );
    }
}

fn check_port(p: &mut Problems, what: &str, v: &Sp<u32>) -> Option<u16> {
    if v.value == 0 || v.value > 65535 {
        p.at(v.pos, format!("{what} {} is not a valid port", v.value), Some("ports are 1-65535".into()));
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
            p.at(sel.pos, format!("{what} names no node"), Some("name at least one node, or all-nodes".into()));
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
                p.at(sel.pos, format!("{what} names unknown node {n:?}"), Some(format!("known nodes: {}, or all-nodes", known.join(", "))));
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
                p.at(c.pos, format!("count {} is out of range", c.value), Some("a group has 1-16 nodes".into()));
                vec![]
            }
            Some(c) => {
                let v: Vec<String> = (1..=c.value).map(|i| format!("{}-{i}", n.name.value)).collect();
                groups.insert(n.name.value.clone(), v.clone());
                v
            }
        };
        for name in names {
            if let Some(prev) = seen.get(&name) {
                p.at(n.name.pos, format!("duplicate node name {name:?}"), Some(format!("first defined at line {}", prev.line)));
                continue;
            }
            seen.insert(name.clone(), n.name.pos);
            nodes.push(Node { name, role: n.role });
        }
    }
    if f.nodes.is_empty() {
        p.at(Pos { line: 1, col: 1 }, "the scenario has no nodes", Some("add `nodes: [ { name: manager, role: manager } ]`".into()));
    }
    let stack = f.stack.kind.value;
    if !nodes.is_empty() && !nodes.iter().any(|n| n.role == Role::Manager) {
        let what = if stack == StackKind::Swarm { "a swarm" } else { "kubernetes (the first manager is the master)" };
        p.at(f.stack.kind.pos, format!("{what} needs at least one node with role: manager"), None);
    }
    let kube = resolve_kube(&f.stack, p);
    let idx = NodeIndex { nodes: nodes.clone(), groups };

    // Networks; a default overlay when none is declared.
    let mut networks = Vec::new();
    for n in &f.networks {
        check_label(p, "network", &n.name);
        if networks.iter().any(|x: &Network| x.name == n.name.value) {
            p.at(n.name.pos, format!("duplicate network name {:?}", n.name.value), None);
        } else {
            networks.push(Network { name: n.name.value.clone(), driver: n.driver });
        }
    }
    if networks.is_empty() {
        networks.push(Network { name: "labnet".into(), driver: NetDriver::Overlay });
    }

    // Services.
    let mut services: Vec<Service> = Vec::new();
    for s in &f.services {
        check_label(p, "service", &s.name);
        if services.iter().any(|x| x.name == s.name.value) {
            p.at(s.name.pos, format!("duplicate service name {:?}", s.name.value), None);
            continue;
        }
        let network = match &s.network {
            None => networks[0].name.clone(),
            Some(n) => {
                if !networks.iter().any(|x| x.name == n.value) {
                    let known: Vec<&str> = networks.iter().map(|x| x.name.as_str()).collect();
                    p.at(
                        n.pos,
                        format!("service {} names unknown network {:?}", s.name.value, n.value),
                        Some(format!("declared networks: {}", known.join(", "))),
                    );
                }
                n.value.clone()
            }
        };
        if let Err(why) = super::syntax::image_ref(&s.image.value) {
            p.at(
                s.image.pos,
                format!("image {:?} is not an image reference: it {why}", s.image.value),
                Some("use a clusterlab workload image such as `web`, or a reference like registry.example:5000/team/app:1.0".into()),
            );
        }
        let replicas = match &s.replicas {
            Some(r) if r.value > 64 => {
                p.at(r.pos, format!("replicas {} is more than this harness runs (64)", r.value), None);
                r.value
            }
            Some(r) => r.value,
            None => 1,
        };
        let service_type = s.service_type.as_ref().map(|t| t.value).unwrap_or_default();
        let mut node_port = None;
        match stack {
            StackKind::Swarm => {
                for (field, pos) in [("type", s.service_type.as_ref().map(|x| x.pos)), ("node-port", s.node_port.as_ref().map(|x| x.pos))] {
                    if let Some(pos) = pos {
                        p.at(
                            pos,
                            format!("field {field} is for kubernetes services"),
                            Some("a swarm service publishes ports with publish: [ { port: 8080, target: 80 } ]".into()),
                        );
                    }
                }
            }
            StackKind::Kubernetes => {
                if let Some(pd) = s.publish.first() {
                    p.at(
                        pd.port.pos,
                        "publish is for swarm services",
                        Some("on kubernetes write type: node-port (and node-port: 30062 for a fixed port)".into()),
                    );
                }
                if let Some(np) = &s.node_port {
                    if service_type != ServiceType::NodePort {
                        p.at(np.pos, "node-port needs type: node-port", None);
                    } else if !(30000..=32767).contains(&np.value) {
                        p.at(
                            np.pos,
                            format!("node-port {} is outside 30000-32767", np.value),
                            Some("the API server's default node-port range".into()),
                        );
                    } else if services.iter().any(|x| x.node_port == Some(np.value as u16)) {
                        p.at(np.pos, format!("node-port {} is used twice", np.value), None);
                    } else {
                        node_port = Some(np.value as u16);
                    }
                }
                // dnsrr on Kubernetes: a headless Service (no ClusterIP), whose name resolves to
                // every ready pod; it cannot have a node port.
                if s.endpoint_mode == EndpointMode::Dnsrr && service_type == ServiceType::NodePort {
                    p.at(
                        s.name.pos,
                        "endpoint-mode: dnsrr (a headless service) cannot be type: node-port",
                        Some("a headless service has no ClusterIP for node ports to lead to".into()),
                    );
                }
            }
        }
        let serves = s.port.as_ref().and_then(|v| check_port(p, "port", v)).unwrap_or_else(|| workload_port(&s.image.value));
        let mut publish = Vec::new();
        for pd in &s.publish {
            let port = check_port(p, "published port", &pd.port);
            let target = match &pd.target {
                Some(t) => check_port(p, "target port", t),
                // The container's port: where the image serves.
                None => Some(serves),
            };
            if let (Some(port), Some(target)) = (port, target) {
                let dup = services.iter().flat_map(|x| x.publish.iter()).chain(publish.iter()).any(|x: &Publish| x.port == port);
                if dup {
                    p.at(pd.port.pos, format!("port {port} is published twice"), Some("each published port belongs to one service".into()));
                }
                publish.push(Publish { port, target });
            }
        }
        let identity = match &s.identity {
            None if s.image.value == "web" => Identity::Web,
            None => Identity::None,
            Some(i) => Identity::parse(&i.value).unwrap_or_else(|e| {
                p.at(i.pos, e, Some("write `web`, `body` (the body holds the replica's hostname), `header X-Served-By`, or `none`".into()));
                Identity::None
            }),
        };
        services.push(Service {
            name: s.name.value.clone(),
            image: s.image.value.clone(),
            replicas,
            network,
            publish,
            endpoint_mode: s.endpoint_mode,
            service_type,
            node_port,
            port: serves,
            identity,
        });
    }

    // Faults: each kind takes its own fields, and says so when given another's.
    let mut faults: Vec<Fault> = Vec::new();
    for fd in &f.faults {
        check_label(p, "fault", &fd.name);
        if faults.iter().any(|x| x.name == fd.name.value) {
            p.at(fd.name.pos, format!("duplicate fault name {:?}", fd.name.value), None);
            continue;
        }
        if let Some(spec) = resolve_fault(fd, &idx, stack, p) {
            faults.push(Fault { name: fd.name.value.clone(), spec });
        }
    }

    // Steps, in order, tracking which faults are applied and each service's replica count.
    let mut steps = Vec::new();
    // With install steps, the nodes start bare: until an install that must succeed, only
    // applies (of faults that need no stack), reverts and waits make sense. `bare` holds where
    // the stack stopped being installed (the start, or an install that must fail).
    let installs = f.steps.iter().any(|st| matches!(st, StepDecl::Install(_)));
    let mut bare: Option<String> = installs.then(|| "the nodes start bare: this scenario installs in its steps".to_string());
    let mut install_count = 0;
    let needs_install = |what: String, pos: Pos, bare: &Option<String>, p: &mut Problems| {
        if let Some(why) = bare {
            p.at(
                pos,
                format!("{what} comes before the stack is installed ({why})"),
                Some("move it after an install step that succeeds".into()),
            );
        }
    };
    let mut applied: BTreeSet<String> = BTreeSet::new();
    let mut check_names: BTreeMap<String, Pos> = BTreeMap::new();
    let fault_known = |name: &Sp<String>, p: &mut Problems| -> bool {
        if f.faults.iter().any(|x| x.name.value == name.value) {
            true
        } else {
            let known: Vec<&str> = f.faults.iter().map(|x| x.name.value.as_str()).collect();
            let hint =
                if known.is_empty() { "declare it under faults:".to_string() } else { format!("declared faults: {}", known.join(", ")) };
            p.at(name.pos, format!("unknown fault {:?}", name.value), Some(hint));
            false
        }
    };
    // Streams: each may be started and stopped once, in that order, by steps.
    let mut streams: Vec<Stream> = Vec::new();
    for sd in &f.streams {
        check_label(p, "stream", &sd.name);
        if streams.iter().any(|x| x.name == sd.name.value) {
            p.at(sd.name.pos, format!("duplicate stream name {:?}", sd.name.value), None);
            continue;
        }
        if let Some(st) = resolve_stream(sd, &idx, &services, stack, p) {
            streams.push(st);
        }
    }
    let mut stream_state: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut stream_step = |n: &Sp<String>, start: bool, p: &mut Problems| {
        if !streams.iter().any(|x| x.name == n.value) {
            let known: Vec<&str> = streams.iter().map(|x| x.name.as_str()).collect();
            let hint =
                if known.is_empty() { "declare it under streams:".into() } else { format!("declared streams: {}", known.join(", ")) };
            p.at(n.pos, format!("unknown stream {:?}", n.value), Some(hint));
            return;
        }
        let st = stream_state.entry(n.value.clone()).or_default();
        if start && (st.0 || st.1) {
            p.at(
                n.pos,
                format!("stream {:?} is started twice, or after its stop", n.value),
                Some("a stream runs once: one start-stream, then one stop-stream".into()),
            );
        }
        if !start && st.1 {
            p.at(n.pos, format!("stream {:?} is stopped twice", n.value), None);
        }
        if start {
            st.0 = true;
        } else {
            st.1 = true;
        }
    };
    for st in &f.steps {
        match st {
            StepDecl::Wait(w) => match parse_duration(&w.value) {
                Some(d) => steps.push(Step::Wait(d)),
                None => p.at(w.pos, format!("wait {:?} is not a duration", w.value), Some("write e.g. 15s (at most 600s)".into())),
            },
            StepDecl::StartStream(n) => {
                needs_install(format!("start-stream {}", n.value), n.pos, &bare, p);
                stream_step(n, true, p);
                steps.push(Step::StartStream(n.value.clone()));
            }
            StepDecl::StopStream(n) => {
                stream_step(n, false, p);
                steps.push(Step::StopStream(n.value.clone()));
            }
            StepDecl::Apply(n) => {
                if let (Some(_), Some(why)) = (&bare, faults.iter().find(|x| x.name == n.value).and_then(|x| x.spec.needs_stack())) {
                    p.at(
                        n.pos,
                        format!("fault {:?} cannot be applied before the stack is installed: {why}", n.value),
                        Some("apply it after an install step that succeeds".into()),
                    );
                }
                if fault_known(n, p) && !applied.insert(n.value.clone()) {
                    p.at(n.pos, format!("fault {:?} is already applied here", n.value), Some("revert it before applying it again".into()));
                }
                steps.push(Step::Apply(n.value.clone()));
            }
            StepDecl::Revert(n) => {
                if fault_known(n, p) && !applied.remove(&n.value) {
                    p.at(n.pos, format!("fault {:?} is not applied at this step", n.value), Some("a revert must follow its apply".into()));
                }
                steps.push(Step::Revert(n.value.clone()));
            }
            StepDecl::Scale(s) => {
                needs_install(format!("scale {}", s.service.value), s.service.pos, &bare, p);
                if !services.iter().any(|x| x.name == s.service.value) {
                    p.at(s.service.pos, format!("scale names unknown service {:?}", s.service.value), Some(service_hint(&services)));
                }
                if s.replicas.value > 64 {
                    p.at(s.replicas.pos, format!("replicas {} is more than this harness runs (64)", s.replicas.value), None);
                }
                steps.push(Step::Scale { service: s.service.value.clone(), replicas: s.replicas.value });
            }
            StepDecl::Bench(b) => {
                needs_install(format!("bench {}", b.name.value), b.name.pos, &bare, p);
                check_label(p, "bench", &b.name);
                name_once(&mut check_names, "check or bench", &b.name.value, Some(b.name.pos), p);
                if let Some(bench) = resolve_bench(b, &idx, &services, &faults, p) {
                    steps.push(Step::Bench(bench));
                }
            }
            StepDecl::Check(c) => {
                needs_install(format!("check {}", c.name.value), c.name.pos, &bare, p);
                check_label(p, "check", &c.name);
                name_once(&mut check_names, "check", &c.name.value, Some(c.name.pos), p);
                for h in c.expect.iter().flat_map(|e| e.faults_hit.iter()) {
                    let packetless = faults.iter().any(|x| x.name == h.value && !x.spec.counts_packets());
                    if packetless {
                        p.at(
                            h.pos,
                            format!("fault {:?} adds no iptables rule; it has no packet counter for faults-hit", h.value),
                            Some("faults-hit takes drop, loss and partition faults".into()),
                        );
                    } else if fault_known(h, p) && !applied.contains(&h.value) {
                        p.at(
                            h.pos,
                            format!("fault {:?} is not applied at this check", h.value),
                            Some("faults-hit names faults applied by an earlier step".into()),
                        );
                    }
                }
                if let Some(chk) = resolve_check(c, &idx, &services, stack, p) {
                    steps.push(Step::Check(chk));
                }
            }
            StepDecl::Install(i) => {
                install_count += 1;
                let name = match &i.name {
                    Some(n) => {
                        check_label(p, "install", n);
                        n.value.clone()
                    }
                    None if install_count == 1 => "install".to_string(),
                    None => format!("install-{install_count}"),
                };
                name_once(&mut check_names, "check or install", &name, i.name.as_ref().map(|n| n.pos), p);
                let fails_at = i.expect.as_ref().map(|e| e.fails_at.clone());
                if let Some(stage) = &fails_at {
                    let known = InstallStage::of(stack);
                    if !known.contains(&stage.value) {
                        let words: Vec<&str> = known.iter().map(|s| s.word()).collect();
                        p.at(
                            stage.pos,
                            format!("stage {} is not a stage of a {} install", stage.value, stack.word()),
                            Some(format!("its stages, in order: {}", words.join(", "))),
                        );
                    }
                }
                let timeout = match &i.timeout {
                    None => INSTALL_TIMEOUT,
                    Some(t) => parse_duration(&t.value).unwrap_or_else(|| {
                        p.at(t.pos, format!("timeout {:?} is not a duration", t.value), Some("write e.g. 300s (at most 600s)".into()));
                        INSTALL_TIMEOUT
                    }),
                };
                bare = fails_at.as_ref().map(|s| format!("the install {name} must fail at {}", s.value));
                steps.push(Step::Install(Install { name, fails_at: fails_at.map(|s| s.value), timeout }));
            }
        }
    }
    // Streams no step starts run from before the first step: with install steps, that is before
    // the stack exists.
    if installs {
        for sd in &f.streams {
            let started = f.steps.iter().any(|st| matches!(st, StepDecl::StartStream(n) if n.value == sd.name.value));
            if !started {
                p.at(
                    sd.name.pos,
                    format!("stream {:?} has no start-stream step, and this scenario installs in its steps", sd.name.value),
                    Some(format!("add `- start-stream: {}` after the install", sd.name.value)),
                );
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
        kube,
        nodes,
        networks,
        services,
        faults,
        streams,
        steps,
    })
}

/// The port a node-port check or stream dials when it names none: a Kubernetes service's fixed
/// node-port (None: the one the API server assigned, looked up at run time), a swarm service's
/// first published port; the problem located at `pos` when the service offers none.
fn default_node_port(svc: Option<&Service>, stack: StackKind, pos: Pos, what: &str, p: &mut Problems) -> Option<u16> {
    let s = svc?;
    match stack {
        StackKind::Kubernetes => {
            if s.service_type != ServiceType::NodePort {
                p.at(pos, format!("service {} is not of type node-port", s.name), Some("add type: node-port to the service".into()));
            }
            s.node_port
        }
        StackKind::Swarm => {
            let port = s.publish.first().map(|pb| pb.port);
            if port.is_none() {
                p.at(
                    pos,
                    format!("service {} publishes no port for a node-port {what}", s.name),
                    Some(format!("add publish: [ {{ port: 8080, target: 80 }} ] to the service, or port: to the {what}")),
                );
            }
            port
        }
    }
}

/// The HTTP path requested: `/` unless given; a path that is not one is located.
fn url_path(v: &Option<Sp<String>>, p: &mut Problems) -> String {
    match v {
        None => "/".to_string(),
        Some(pa) => match super::syntax::url_path(&pa.value) {
            Ok(()) => pa.value.clone(),
            Err(why) => {
                p.at(
                    pa.pos,
                    format!("path {:?} is not a URL path: it {why}", pa.value),
                    Some("start with / and percent-encode anything else, e.g. /big or /search?q=a%20b".into()),
                );
                "/".into()
            }
        },
    }
}

fn resolve_stream(sd: &StreamDecl, idx: &NodeIndex, services: &[Service], stack: StackKind, p: &mut Problems) -> Option<Stream> {
    let svc = services.iter().find(|x| x.name == sd.service.value);
    if svc.is_none() {
        p.at(
            sd.service.pos,
            format!("stream {} names unknown service {:?}", sd.name.value, sd.service.value),
            Some(service_hint(services)),
        );
    }
    let to = sd.to.value;
    let from = match &sd.from {
        Some(x) => idx.expand(p, "from", x),
        None => idx.all().into_iter().take(1).collect(),
    };
    for (field, pos) in [("via", sd.via.as_ref().map(|x| x.pos)), ("port", sd.port.as_ref().map(|x| x.pos))] {
        if let (Some(pos), false) = (pos, to == StreamTo::NodePort) {
            p.at(pos, format!("field {field} is for streams to: node-port"), None);
        }
    }
    let via = sd.via.as_ref().map(|x| idx.expand(p, "via", x)).unwrap_or_else(|| idx.all());
    let mut port = sd.port.as_ref().and_then(|v| check_port(p, "port", v));
    if to == StreamTo::NodePort && sd.port.is_none() {
        port = default_node_port(svc, stack, sd.to.pos, "stream", p);
    }
    let client = match &sd.client {
        None => ClientKind::Node,
        Some(cl) if stack != StackKind::Kubernetes => {
            p.at(cl.pos, "client is for kubernetes streams", Some("swarm streams start in a probe container on the overlay".into()));
            cl.value
        }
        Some(cl) if cl.value == ClientKind::Pod && to == StreamTo::NodePort => {
            p.at(cl.pos, "a node-port stream starts from the node, not from a pod", None);
            cl.value
        }
        Some(cl) => cl.value,
    };
    let path = url_path(&sd.path, p);
    let rate = match &sd.rate {
        Some(r) if !(r.value > 0.0 && r.value <= 500.0) => {
            p.at(r.pos, format!("rate {} is out of range", r.value), Some("0 < rate <= 500 requests per second per entry node".into()));
            20.0
        }
        Some(r) => r.value,
        None => 20.0,
    };
    let dur = |v: &Option<Sp<String>>, what: &str, default: Duration, p: &mut Problems| match v {
        None => default,
        Some(t) => parse_duration(&t.value).unwrap_or_else(|| {
            p.at(t.pos, format!("{what} {:?} is not a duration", t.value), Some("write e.g. 1s or 250ms (at most 600s)".into()));
            default
        }),
    };
    let timeout = dur(&sd.timeout, "timeout", Duration::from_secs(1), p);
    let bucket = dur(&sd.bucket, "bucket", Duration::from_millis(250), p);
    if bucket < Duration::from_millis(50) {
        p.at(sd.bucket.as_ref().map(|b| b.pos).unwrap_or_default(), "a bucket shorter than 50ms says nothing at these rates", None);
    }
    let recovered_after = match &sd.recovered_after {
        Some(n) if n.value == 0 || n.value > 1000 => {
            p.at(n.pos, format!("recovered-after {} is out of range", n.value), Some("1-1000 answers in a row".into()));
            10
        }
        Some(n) => n.value,
        None => 10,
    };
    let mut gates = Vec::new();
    if let Some(e) = &sd.expect {
        let mut bounds = |phase: Phase, fields: [(&Option<Sp<String>>, Measure); 4], p: &mut Problems| {
            for (v, m) in fields {
                if let Some(v) = v {
                    match Bound::parse(&v.value, m) {
                        Ok(bound) => gates.push(StreamGate::Bound { phase, measure: m, bound }),
                        Err(why) => p.at(v.pos, format!("{}: {why}", m.word()), None),
                    }
                }
            }
        };
        bounds(
            Phase::Whole,
            [(&e.lost, Measure::Lost), (&e.lost_share, Measure::LostShare), (&e.p50, Measure::P50), (&e.p99, Measure::P99)],
            p,
        );
        for (phase, d) in [(Phase::Before, &e.before), (Phase::During, &e.during), (Phase::After, &e.after)] {
            if let Some(d) = d {
                bounds(
                    phase,
                    [(&d.lost, Measure::Lost), (&d.lost_share, Measure::LostShare), (&d.p50, Measure::P50), (&d.p99, Measure::P99)],
                    p,
                );
            }
        }
        if let Some(b) = &e.break_within {
            gates.push(StreamGate::BreakWithin(dur(&Some(b.clone()), "break-within", Duration::from_secs(1), p)));
        }
        if let Some(r) = &e.recover_within {
            gates.push(StreamGate::RecoverWithin(dur(&Some(r.clone()), "recover-within", Duration::from_secs(1), p)));
        }
    }
    Some(Stream {
        name: sd.name.value.clone(),
        service: sd.service.value.clone(),
        to,
        from,
        via,
        port,
        client,
        path,
        rate,
        timeout,
        bucket,
        recovered_after,
        gates,
    })
}

fn service_hint(services: &[Service]) -> String {
    if services.is_empty() {
        "declare it under services:".into()
    } else {
        format!("declared services: {}", services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "))
    }
}

fn not_for(p: &mut Problems, kind: &str, field: &str, pos: Pos) {
    // Said aloud: "an MTU", "an HTTP proxy".
    let a = if matches!(kind, "mtu" | "http-proxy") { "an" } else { "a" };
    p.at(pos, format!("field {field} does not apply to {a} {kind} fault"), Some("remove it, or change the fault's kind".into()));
}

fn resolve_match(fd: &FaultDecl, idx: &NodeIndex, p: &mut Problems) -> Match {
    let protocol = fd.protocol.as_ref().map(|x| x.value).unwrap_or(Protocol::All);
    let port = fd.port.as_ref().and_then(|v| check_port(p, "port", v));
    if let (Some(pv), false) = (&fd.port, matches!(protocol, Protocol::Tcp | Protocol::Udp)) {
        p.at(pv.pos, "a port needs protocol: tcp or udp", Some("add `protocol: udp` (VXLAN is UDP 4789)".into()));
    }
    Match {
        protocol,
        port,
        direction: fd.direction.as_ref().map(|d| d.value).unwrap_or(Direction::In),
        peers: fd.peers.as_ref().map(|x| idx.expand(p, "peers", x)).unwrap_or_default(),
    }
}

/// The fault's `node:` expanded, or a problem saying this kind needs it.
fn needs_nodes(fd: &FaultDecl, idx: &NodeIndex, kind: &str, hint: Option<&str>, p: &mut Problems) -> Vec<String> {
    match &fd.node {
        Some(n) => idx.expand(p, "node", n),
        None => {
            p.at(fd.kind.pos, format!("a {kind} fault needs node:"), hint.map(String::from));
            vec![]
        }
    }
}

/// The fault's `percent:` (0 < percent <= 100), or a problem saying what is wrong with it.
fn needs_percent(fd: &FaultDecl, kind: &str, hint: Option<&str>, p: &mut Problems) -> f64 {
    match &fd.percent {
        Some(pc) if pc.value > 0.0 && pc.value <= 100.0 => pc.value,
        Some(pc) => {
            p.at(pc.pos, format!("percent {} is out of range", pc.value), Some("0 < percent <= 100".into()));
            0.0
        }
        None => {
            p.at(fd.kind.pos, format!("a {kind} fault needs percent:"), hint.map(String::from));
            0.0
        }
    }
}

fn resolve_fault(fd: &FaultDecl, idx: &NodeIndex, stack: StackKind, p: &mut Problems) -> Option<FaultSpec> {
    // Each kind takes its own fields; any other field given is reported where it stands.
    let given = [
        ("node", fd.node.as_ref().map(|x| x.pos)),
        ("protocol", fd.protocol.as_ref().map(|x| x.pos)),
        ("port", fd.port.as_ref().map(|x| x.pos)),
        ("direction", fd.direction.as_ref().map(|x| x.pos)),
        ("peers", fd.peers.as_ref().map(|x| x.pos)),
        ("side-a", fd.side_a.as_ref().map(|x| x.pos)),
        ("side-b", fd.side_b.as_ref().map(|x| x.pos)),
        ("percent", fd.percent.as_ref().map(|x| x.pos)),
        ("component", fd.component.as_ref().map(|x| x.pos)),
        ("no-proxy", fd.no_proxy.as_ref().map(|x| x.pos)),
        ("components", fd.components.as_ref().map(|x| x.pos)),
        ("mtu", fd.mtu.as_ref().map(|x| x.pos)),
        ("rate", fd.rate.as_ref().map(|x| x.pos)),
        ("burst", fd.burst.as_ref().map(|x| x.pos)),
        ("delay", fd.delay.as_ref().map(|x| x.pos)),
        ("jitter", fd.jitter.as_ref().map(|x| x.pos)),
        ("distribution", fd.distribution.as_ref().map(|x| x.pos)),
        ("reorder", fd.reorder.as_ref().map(|x| x.pos)),
        ("gap", fd.gap.as_ref().map(|x| x.pos)),
    ];
    let (kind_word, accepted): (&str, &[&str]) = match fd.kind.value {
        FaultKind::Drop => ("drop", &["node", "protocol", "port", "direction", "peers"]),
        FaultKind::Loss => ("loss", &["node", "protocol", "port", "direction", "peers", "percent"]),
        FaultKind::Partition => ("partition", &["side-a", "side-b"]),
        FaultKind::Kill => ("kill", &["node", "component"]),
        FaultKind::StopNode => ("stop-node", &["node"]),
        FaultKind::HttpProxy => ("http-proxy", &["node", "no-proxy", "components"]),
        FaultKind::Mtu => ("mtu", &["node", "mtu"]),
        FaultKind::Rate => ("rate", &["node", "protocol", "port", "direction", "peers", "rate", "burst"]),
        FaultKind::Duplicate => ("duplicate", &["node", "protocol", "port", "direction", "peers", "percent"]),
        FaultKind::Corrupt => ("corrupt", &["node", "protocol", "port", "direction", "peers", "percent"]),
        FaultKind::Delay => {
            ("delay", &["node", "protocol", "port", "direction", "peers", "delay", "jitter", "distribution", "reorder", "gap"])
        }
    };
    for (field, pos) in given {
        if let (Some(pos), false) = (pos, accepted.contains(&field)) {
            not_for(p, kind_word, field, pos);
        }
    }
    match fd.kind.value {
        FaultKind::HttpProxy => {
            let nodes = fd.node.as_ref().map(|n| idx.expand(p, "node", n)).unwrap_or_else(|| idx.all());
            let mut no_proxy = Vec::new();
            if let Some(np) = &fd.no_proxy {
                for e in np.value.names() {
                    if e == ALL_NODES || idx.groups.contains_key(&e) || idx.nodes.iter().any(|n| n.name == e) {
                        let one = Sp { value: NodeSel::One(e), pos: np.pos };
                        no_proxy.extend(idx.expand(p, "no-proxy", &one).into_iter().map(NoProxy::Node));
                    } else if e.is_empty() || e.contains(char::is_whitespace) || e.contains(',') {
                        p.at(
                            np.pos,
                            format!("no-proxy entry {e:?} is empty or holds a space or comma"),
                            Some("one entry per list item".into()),
                        );
                    } else if is_label(&e) && e != "localhost" {
                        // Looks like a node name, but no node has it: most likely a typo.
                        let known: Vec<&str> = idx.nodes.iter().map(|x| x.name.as_str()).collect();
                        p.at(
                            np.pos,
                            format!("no-proxy entry {e:?} is neither a node nor a domain or address"),
                            Some(format!("known nodes: {}, all-nodes; or a domain like .svc, an address, a CIDR", known.join(", "))),
                        );
                    } else {
                        no_proxy.push(NoProxy::Literal(e));
                    }
                }
            }
            let known = killable(stack);
            let mut components = Vec::new();
            if let Some(cs) = &fd.components {
                for c in cs.value.names() {
                    if !known.contains(&c.as_str()) {
                        p.at(cs.pos, format!("unknown component {c:?} for this stack"), Some(format!("one of {}", known.join(", "))));
                    }
                    components.push(c);
                }
            }
            Some(FaultSpec::HttpProxy { nodes, no_proxy, components })
        }
        FaultKind::Mtu => {
            let nodes = needs_nodes(fd, idx, kind_word, Some("name the node whose interface gets the lower MTU"), p);
            let mtu = match &fd.mtu {
                Some(m) if (576..=1500).contains(&m.value) => m.value,
                Some(m) => {
                    p.at(m.pos, format!("mtu {} is out of range", m.value), Some("576-1500 (the lab network's MTU is 1500)".into()));
                    1500
                }
                None => {
                    p.at(fd.kind.pos, "an mtu fault needs mtu:", Some("e.g. mtu: 1200 (VXLAN adds 50 bytes to every packet)".into()));
                    1500
                }
            };
            Some(FaultSpec::Mtu { nodes, mtu })
        }
        FaultKind::Kill | FaultKind::StopNode => {
            let nodes = needs_nodes(fd, idx, kind_word, None, p);
            if fd.kind.value == FaultKind::StopNode {
                return Some(FaultSpec::StopNode { nodes });
            }
            let known = killable(stack);
            let component = match &fd.component {
                Some(c) if known.contains(&c.value.as_str()) => c.value.clone(),
                Some(c) => {
                    p.at(c.pos, format!("unknown component {:?} for this stack", c.value), Some(format!("one of {}", known.join(", "))));
                    c.value.clone()
                }
                None => {
                    p.at(fd.kind.pos, "a kill fault needs component:", Some(format!("one of {}", known.join(", "))));
                    String::new()
                }
            };
            Some(FaultSpec::Kill { nodes, component })
        }
        FaultKind::Rate => {
            let nodes = needs_nodes(fd, idx, kind_word, Some("name the node whose link is slow"), p);
            let matches = resolve_match(fd, idx, p);
            let bits = match &fd.rate {
                Some(r) => parse_rate(&r.value).unwrap_or_else(|e| {
                    p.at(r.pos, e, None);
                    0
                }),
                None => {
                    p.at(fd.kind.pos, "a rate fault needs rate:", Some("e.g. rate: 10mbit".into()));
                    0
                }
            };
            let burst = match &fd.burst {
                Some(b) => parse_size(&b.value).unwrap_or_else(|e| {
                    p.at(b.pos, e, None);
                    0
                }),
                None => default_burst(bits),
            };
            Some(FaultSpec::Rate { nodes, matches, bits, burst })
        }
        FaultKind::Delay => {
            let nodes = needs_nodes(fd, idx, kind_word, Some("name the node whose packets wait"), p);
            let matches = resolve_match(fd, idx, p);
            // At most 10 s: a delay is a slow path, not a cut (drop is the cut).
            let micros = |v: &Sp<String>, what: &str, p: &mut Problems| match parse_duration(&v.value) {
                Some(d) if d <= Duration::from_secs(10) => d.as_micros() as u64,
                _ => {
                    p.at(v.pos, format!("{what} {:?} is not a duration up to 10s", v.value), Some("e.g. 50ms, 1.5s".into()));
                    0
                }
            };
            let delay_us = match &fd.delay {
                Some(d) => micros(d, "delay", p),
                None => {
                    p.at(fd.kind.pos, "a delay fault needs delay:", Some("e.g. delay: 50ms".into()));
                    0
                }
            };
            let jitter_us = fd.jitter.as_ref().map(|j| micros(j, "jitter", p)).unwrap_or(0);
            if let (Some(d), None) = (&fd.distribution, &fd.jitter) {
                p.at(d.pos, "distribution without jitter has nothing to draw", Some("add jitter: e.g. 10ms".into()));
            }
            let distribution = fd.distribution.as_ref().map(|d| d.value).unwrap_or_default();
            let reorder = match &fd.reorder {
                Some(r) if r.value > 0.0 && r.value <= 100.0 => r.value,
                Some(r) => {
                    p.at(r.pos, format!("reorder {} is out of range", r.value), Some("0 < reorder <= 100 (percent sent at once)".into()));
                    0.0
                }
                None => 0.0,
            };
            let gap = match &fd.gap {
                Some(g) if fd.reorder.is_none() => {
                    p.at(g.pos, "gap without reorder sends nothing at once", Some("add reorder: e.g. 25".into()));
                    1
                }
                Some(g) if g.value >= 1 => g.value,
                Some(g) => {
                    p.at(g.pos, "gap 0 is out of range", Some("1 or more: every gap-th packet may go at once".into()));
                    1
                }
                None => 1,
            };
            Some(FaultSpec::Delay { nodes, matches, delay_us, jitter_us, distribution, reorder, gap })
        }
        FaultKind::Duplicate => {
            let nodes = needs_nodes(fd, idx, kind_word, Some("name the node whose packets arrive twice"), p);
            let matches = resolve_match(fd, idx, p);
            let percent = needs_percent(fd, kind_word, Some("e.g. percent: 5"), p);
            Some(FaultSpec::Duplicate { nodes, matches, percent })
        }
        FaultKind::Corrupt => {
            let nodes = needs_nodes(fd, idx, kind_word, Some("name the node whose packets arrive corrupted"), p);
            let matches = resolve_match(fd, idx, p);
            let percent = needs_percent(fd, kind_word, Some("e.g. percent: 5"), p);
            Some(FaultSpec::Corrupt { nodes, matches, percent })
        }
        FaultKind::Drop | FaultKind::Loss => {
            let nodes = needs_nodes(fd, idx, kind_word, Some("name the node whose traffic is dropped"), p);
            let matches = resolve_match(fd, idx, p);
            if fd.kind.value == FaultKind::Drop {
                Some(FaultSpec::Drop { nodes, matches })
            } else {
                let percent = needs_percent(fd, kind_word, None, p);
                Some(FaultSpec::Loss { nodes, matches, percent })
            }
        }
        FaultKind::Partition => {
            let side = |s: &Option<Sp<NodeSel>>, name: &str, p: &mut Problems| match s {
                Some(x) => idx.expand(p, name, x),
                None => {
                    p.at(fd.kind.pos, format!("a partition fault needs {name}:"), Some("side-a: [manager], side-b: [worker]".into()));
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

fn resolve_bench(b: &BenchDecl, idx: &NodeIndex, services: &[Service], faults: &[Fault], p: &mut Problems) -> Option<Bench> {
    let kind = b.kind.value;
    // The server each kind talks to: iperf3 in the tools image, HTTP in the web image.
    let (image, what) = match kind {
        BenchKind::Throughput => ("tools", "iperf3"),
        BenchKind::RequestRate => ("web", "an HTTP server"),
    };
    match services.iter().find(|s| s.name == b.service.value) {
        None => {
            p.at(b.service.pos, format!("bench {} names unknown service {:?}", b.name.value, b.service.value), Some(service_hint(services)))
        }
        Some(s) if s.image != image => p.at(
            b.service.pos,
            format!("service {} runs image {:?}; a {} bench needs {what} in its replicas", s.name, s.image, kind.word()),
            Some(format!("use image: {image} for this service")),
        ),
        Some(_) => {}
    }
    let from = match &b.from {
        Some(f) if idx.nodes.iter().any(|n| n.name == f.value) => f.value.clone(),
        Some(f) => {
            let known: Vec<&str> = idx.nodes.iter().map(|x| x.name.as_str()).collect();
            p.at(f.pos, format!("from names unknown node {:?}", f.value), Some(format!("one node: {}", known.join(", "))));
            f.value.clone()
        }
        None => idx.nodes.first().map(|n| n.name.clone()).unwrap_or_default(),
    };
    let paths = match &b.paths {
        None => PathKind::ALL.to_vec(),
        Some(ps) => {
            let mut v: Vec<PathKind> = Vec::new();
            for x in &ps.value {
                if v.contains(x) {
                    p.at(ps.pos, format!("path {} is listed twice", x.word()), None);
                } else {
                    v.push(*x);
                }
            }
            if v.is_empty() {
                p.at(ps.pos, "paths is empty", Some("list at least one of node, direct, vip, node-port".into()));
            }
            v
        }
    };
    let bounded = |v: &Option<Sp<u32>>, what: &str, max: u32, default: u32, p: &mut Problems| match v {
        Some(x) if x.value == 0 || x.value > max => {
            p.at(x.pos, format!("{what} {} is out of range", x.value), Some(format!("1-{max}")));
            default
        }
        Some(x) => x.value,
        None => default,
    };
    let samples = bounded(&b.samples, "samples", 50, 3, p);
    let seconds = bounded(&b.seconds, "seconds", 60, 2, p);
    let mut gates = Vec::new();
    for (key, value) in &b.expect {
        match Gate::parse(key, &value.value) {
            Ok(mut g) => {
                let mut sides = vec![g.num];
                match &mut g.den {
                    GateDen::Path(k) => sides.push(*k),
                    GateDen::Asked { fault, bits } => match faults.iter().find(|f| &f.name == fault).map(|f| &f.spec) {
                        Some(FaultSpec::Rate { bits: asked, .. }) if kind == BenchKind::Throughput => *bits = *asked as f64,
                        Some(FaultSpec::Rate { .. }) => p.at(
                            value.pos,
                            format!("gate {key} compares a request rate with a bandwidth"),
                            Some("use kind: throughput".into()),
                        ),
                        Some(_) => p.at(value.pos, format!("gate {key}: fault {fault} is not a rate fault"), None),
                        None => p.at(
                            value.pos,
                            format!("gate {key}: {fault:?} is neither a path (node, direct, vip, node-port) nor a fault of this file"),
                            None,
                        ),
                    },
                }
                for side in sides {
                    if !paths.contains(&side) {
                        p.at(value.pos, format!("gate {key} uses path {}, which this bench does not measure", side.word()), None);
                    }
                }
                gates.push(g);
            }
            Err(e) => p.at(value.pos, e, Some("e.g. expect: { vip/direct: \">= 0.9\" }".into())),
        }
    }
    Some(Bench { name: b.name.value.clone(), kind, service: b.service.value.clone(), from, paths, samples, seconds, gates })
}

fn resolve_check(c: &CheckDecl, idx: &NodeIndex, services: &[Service], stack: StackKind, p: &mut Problems) -> Option<Check> {
    let svc = match (&c.service, c.kind.value) {
        (None, CheckKind::Api) => None,
        (Some(s), CheckKind::Api) => {
            p.at(s.pos, "an api check takes no service", None);
            None
        }
        (None, _) => {
            p.at(c.kind.pos, format!("a {} check needs service:", kind_name(c.kind.value)), Some(service_hint(services)));
            None
        }
        (Some(s), _) => {
            let found = services.iter().find(|x| x.name == s.value);
            if found.is_none() {
                p.at(s.pos, format!("check {} names unknown service {:?}", c.name.value, s.value), Some(service_hint(services)));
            }
            found
        }
    };
    if c.kind.value == CheckKind::Api && stack != StackKind::Kubernetes {
        p.at(c.kind.pos, "an api check is for kubernetes", None);
    }
    if let Some(s) = svc.filter(|s| stack == StackKind::Kubernetes && s.endpoint_mode == EndpointMode::Dnsrr) {
        if c.kind.value == CheckKind::Vip {
            p.at(
                c.kind.pos,
                format!("service {} is headless (endpoint-mode: dnsrr): it has no ClusterIP for a vip check", s.name),
                Some("check its pods with kind: replicas, or its name with kind: dns".into()),
            );
        }
    }
    let from = c.from.as_ref().map(|x| idx.expand(p, "from", x)).unwrap_or_else(|| idx.all());
    let kind = c.kind.value;
    let only_for = |field: &str, pos: Option<Pos>, allowed: &[CheckKind], p: &mut Problems| {
        if let Some(pos) = pos {
            if !allowed.contains(&kind) {
                p.at(
                    pos,
                    format!("field {field} does not apply to a {} check", kind_name(kind)),
                    Some("remove it, or change the check's kind".into()),
                );
            }
        }
    };
    only_for("via", c.via.as_ref().map(|x| x.pos), &[CheckKind::NodePort], p);
    let paths = &[CheckKind::Replicas, CheckKind::Vip, CheckKind::NodePort];
    only_for("port", c.port.as_ref().map(|x| x.pos), paths, p);
    only_for("protocol", c.protocol.as_ref().map(|x| x.pos), paths, p);
    only_for("status", c.status.as_ref().map(|x| x.pos), paths, p);
    only_for("body", c.body.as_ref().map(|x| x.pos), paths, p);
    let protocol = c.protocol.as_ref().map(|x| x.value).unwrap_or_default();
    if protocol == CheckProtocol::Tcp {
        for (field, pos) in [
            ("status", c.status.as_ref().map(|x| x.pos)),
            ("body", c.body.as_ref().map(|x| x.pos)),
            ("path", c.path.as_ref().map(|x| x.pos)),
        ] {
            if let Some(pos) = pos {
                p.at(pos, format!("field {field} is for http checks"), Some("a tcp check only opens a connection".into()));
            }
        }
    }
    let status = c.status.as_ref().and_then(|s| {
        if (100..=599).contains(&s.value) {
            Some(s.value as u16)
        } else {
            p.at(s.pos, format!("status {} is not an HTTP status", s.value), Some("100-599, e.g. 200 or 204".into()));
            None
        }
    });
    let body = c.body.as_ref().map(|b| b.value.clone());
    if let (Some(b), Some(pos)) = (&body, c.body.as_ref().map(|b| b.pos)) {
        if b.is_empty() || b.contains(['\n', '\r']) {
            p.at(pos, "body must be a non-empty text on one line", None);
        }
    }
    only_for("requests", c.requests.as_ref().map(|x| x.pos), &[CheckKind::Replicas, CheckKind::Vip, CheckKind::NodePort], p);
    only_for("path", c.path.as_ref().map(|x| x.pos), &[CheckKind::Replicas, CheckKind::Vip, CheckKind::NodePort], p);
    let path = url_path(&c.path, p);
    let via = c.via.as_ref().map(|x| idx.expand(p, "via", x)).unwrap_or_else(|| idx.all());
    let mut port = c.port.as_ref().and_then(|v| check_port(p, "port", v));
    if kind == CheckKind::NodePort && c.port.is_none() {
        port = default_node_port(svc, stack, c.kind.pos, "check", p);
    }
    if kind == CheckKind::Replicas && c.port.is_none() {
        port = svc.map(|s| s.port);
    }
    let requests = match &c.requests {
        Some(r) if r.value == 0 || r.value > 1000 => {
            p.at(r.pos, format!("requests {} is out of range", r.value), Some("1-1000".into()));
            1
        }
        Some(r) => r.value,
        None if kind == CheckKind::Replicas => 3,
        None => 6,
    };
    let timeout = match &c.timeout {
        None => Duration::from_secs(2),
        Some(t) => parse_duration(&t.value).unwrap_or_else(|| {
            p.at(t.pos, format!("timeout {:?} is not a duration", t.value), Some("write e.g. 2s or 500ms (at most 600s)".into()));
            Duration::from_secs(2)
        }),
    };
    let within = c.within.as_ref().and_then(|w| match parse_duration(&w.value) {
        Some(d) if kind == CheckKind::Api || d >= timeout => Some(d),
        Some(_) => {
            p.at(w.pos, format!("within {:?} is shorter than the check's timeout", w.value), Some("give it at least one timeout".into()));
            None
        }
        None => {
            p.at(w.pos, format!("within {:?} is not a duration", w.value), Some("write e.g. 30s (at most 600s)".into()));
            None
        }
    });
    let mut expect = Expectation::default();
    if let Some(rules) = c.expect.as_ref().and_then(|e| e.unreachable.as_ref()) {
        for un in rules.items() {
            let on = match &un.replicas_on {
                Some(s) => idx.expand(p, "replicas-on", s),
                None => idx.all(),
            };
            if let (Some(sel), Some(svc)) = (&un.replicas_on, svc) {
                if kind == CheckKind::Vip && (!svc.identity.named() || protocol == CheckProtocol::Tcp) {
                    let why = if protocol == CheckProtocol::Tcp {
                        "a tcp check reads no answer"
                    } else {
                        "its answers do not name their replica"
                    };
                    p.at(
                        sel.pos,
                        format!("service {}: {why}, so which replica took a VIP request is unknown", svc.name),
                        Some("give the service an identity (header <Name> or body), or check each replica with kind: replicas".into()),
                    );
                }
            }
            expect.unreachable.push(Unreachable { on, from: un.from.as_ref().map(|s| idx.expand(p, "from", s)) });
        }
    }
    if let Some(ar) = c.expect.as_ref().and_then(|e| e.answer_rate.as_ref()) {
        if matches!(kind, CheckKind::Dns) {
            p.at(ar.pos, "a dns check takes no answer-rate: one lookup per entry node", None);
        }
        match AnswerRate::parse(&ar.value) {
            Ok(r) => expect.answer_rate = r,
            Err(m) => p.at(ar.pos, m, Some("write e.g. \">= 0.9\" (at least 90 % of each pair's requests answer) or \"0.2..0.8\"".into())),
        }
    }
    let faults_hit = c.expect.iter().flat_map(|e| e.faults_hit.iter().map(|f| f.value.clone())).collect();
    let service = c.service.as_ref().map(|s| s.value.clone()).unwrap_or_default();
    let client = match &c.client {
        None => ClientKind::Node,
        Some(cl) if stack != StackKind::Kubernetes => {
            p.at(cl.pos, "client is for kubernetes checks", Some("swarm checks run in a probe container on the overlay".into()));
            cl.value
        }
        Some(cl) if cl.value == ClientKind::Pod && !matches!(kind, CheckKind::Replicas | CheckKind::Vip | CheckKind::Dns) => {
            let article = if kind_name(kind).starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
            p.at(cl.pos, format!("{article} {} check runs from the node, not from a pod", kind_name(kind)), None);
            cl.value
        }
        Some(cl) => cl.value,
    };
    Some(Check {
        name: c.name.value.clone(),
        kind,
        service,
        from,
        via,
        port,
        requests,
        timeout,
        expect,
        client,
        faults_hit,
        path,
        within,
        protocol,
        status,
        body,
    })
}

pub fn kind_name(k: CheckKind) -> &'static str {
    match k {
        CheckKind::Replicas => "replicas",
        CheckKind::Vip => "vip",
        CheckKind::NodePort => "node-port",
        CheckKind::Dns => "dns",
        CheckKind::Api => "api",
    }
}

fn check_cidr(p: &mut Problems, what: &str, v: &Sp<String>) -> Option<ipnet::Ipv4Net> {
    match super::syntax::cidr(&v.value, 8, 24) {
        Ok(n) => Some(n),
        Err(why) => {
            p.at(v.pos, format!("{what} {:?} {why}", v.value), Some("e.g. 10.244.0.0/16".into()));
            None
        }
    }
}

/// Pod, service and lab ranges must be apart: an address in two of them would be routed to the
/// wrong one (a ClusterIP inside the pod range, a node inside either).
fn check_ranges(p: &mut Problems, st: &StackDecl, pod: Option<ipnet::Ipv4Net>, svc: Option<ipnet::Ipv4Net>) {
    use super::syntax::{overlap, LAB_POOL};
    let lab: ipnet::Ipv4Net = LAB_POOL.parse().expect("lab pool is a CIDR");
    let pos = |f: &Option<Sp<String>>| f.as_ref().map(|x| x.pos).unwrap_or(st.kind.pos);
    if let (Some(a), Some(b)) = (pod, svc) {
        if overlap(&a, &b) {
            p.at(
                pos(&st.service_cidr),
                format!("service-cidr {b} overlaps pod-cidr {a}"),
                Some("give services and pods ranges of their own, e.g. pod-cidr 10.244.0.0/16 and service-cidr 10.32.0.0/16".into()),
            );
        }
    }
    for (field, net) in [("pod-cidr", (&st.pod_cidr, pod)), ("service-cidr", (&st.service_cidr, svc))] {
        if let Some(n) = net.1 {
            if overlap(&n, &lab) {
                p.at(
                    pos(net.0),
                    format!("{field} {n} overlaps the labs' own range {lab}"),
                    Some("pick a range outside 10.213.0.0/16".into()),
                );
            }
        }
    }
}

fn resolve_kube(st: &StackDecl, p: &mut Problems) -> Option<KubeSpec> {
    if st.kind.value == StackKind::Swarm {
        for (field, pos) in [
            ("bundle", st.bundle.as_ref().map(|x| x.pos)),
            ("pod-network", st.pod_network.as_ref().map(|x| x.backend.pos)),
            ("pod-cidr", st.pod_cidr.as_ref().map(|x| x.pos)),
            ("service-cidr", st.service_cidr.as_ref().map(|x| x.pos)),
        ] {
            if let Some(pos) = pos {
                p.at(pos, format!("field {field} is for the kubernetes stack"), None);
            }
        }
        return None;
    }
    let bundle = match &st.bundle {
        None => BundleRef::Version(DEFAULT_KUBE_VERSION.into()),
        Some(b) if b.value.ends_with(".tar.gz") || b.value.ends_with(".tgz") => BundleRef::Tarball(b.value.clone()),
        Some(b) if b.value.contains('/') => BundleRef::Dir(b.value.clone()),
        Some(b) if b.value.chars().all(|c| c.is_ascii_digit() || c == '.') && b.value.matches('.').count() == 2 => {
            BundleRef::Version(b.value.clone())
        }
        Some(b) => {
            p.at(
                b.pos,
                format!("bundle {:?} is neither a directory, a .tar.gz nor a version like 1.20.2", b.value),
                Some("a directory needs a slash: ./bundle".into()),
            );
            BundleRef::Version(DEFAULT_KUBE_VERSION.into())
        }
    };
    let (backend, vxlan_port) = match &st.pod_network {
        None => (Backend::Vxlan, 8472),
        Some(pn) => {
            let port = match &pn.port {
                Some(v) if pn.backend.value != Backend::Vxlan => {
                    p.at(v.pos, "port is for backend: vxlan", None);
                    8472
                }
                Some(v) => check_port(p, "vxlan port", v).unwrap_or(8472),
                None => 8472,
            };
            (pn.backend.value, port)
        }
    };
    let parse = |v: &Option<Sp<String>>, what: &str, default: &str, p: &mut Problems| match v {
        Some(x) => check_cidr(p, what, x),
        None => default.parse().ok(),
    };
    let pod = parse(&st.pod_cidr, "pod-cidr", "10.244.0.0/16", p);
    let svc = parse(&st.service_cidr, "service-cidr", "10.32.0.0/16", p);
    check_ranges(p, st, pod, svc);
    let pod_cidr = pod.map(|n| n.to_string()).unwrap_or_else(|| "10.244.0.0/16".into());
    let service_cidr = svc.map(|n| n.to_string()).unwrap_or_else(|| "10.32.0.0/16".into());
    Some(KubeSpec { bundle, backend, vxlan_port, pod_cidr, service_cidr })
}
