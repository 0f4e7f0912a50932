//! The scenario file as written: strict (unknown fields are errors), kebab-case, every
//! name-like value located so that later checks can point at it.
//!
//! Kinds (`kind: drop`, `kind: replicas`) are plain enums next to optional fields rather than
//! `#[serde(tag = "kind")]`: an internally tagged enum loses the position of the error, while a
//! plain field keeps it, and `resolve` reports fields that do not belong to a kind.

use super::spanned::Sp;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
/// A clusterlab scenario: a cluster, its workloads, faults and the checks that judge each path.
pub struct ScenarioFile {
    /// Always `clusterlab/v1`.
    pub api_version: Sp<String>,
    /// The lab's name: lowercase letters, digits and dashes; names containers and networks.
    pub name: Sp<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub nodes: Vec<NodeDecl>,
    pub stack: StackDecl,
    #[serde(default)]
    pub networks: Vec<NetworkDecl>,
    #[serde(default)]
    pub services: Vec<ServiceDecl>,
    #[serde(default)]
    pub faults: Vec<FaultDecl>,
    /// Background traffic: requests at a steady rate across the steps, each recorded, so the
    /// run can say when a fault broke a path, how many requests it lost and when it came back.
    #[serde(default)]
    pub streams: Vec<StreamDecl>,
    #[serde(default)]
    pub steps: Vec<StepDecl>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
/// A stream of requests from entry nodes to a service path, running in the background from
/// before the first step (or its `start-stream` step) to after the last (or its `stop-stream`).
pub struct StreamDecl {
    pub name: Sp<String>,
    pub service: Sp<String>,
    /// The path: `replicas` (each replica's own address, in turn), `vip` (the service VIP or
    /// ClusterIP), or `node-port` (the published port via the `via` nodes, in turn).
    pub to: Sp<StreamTo>,
    /// Entry nodes; each sends `rate` requests per second. Default: the first node.
    pub from: Option<Sp<NodeSel>>,
    /// node-port: the nodes whose address is dialled. Default: all-nodes.
    pub via: Option<Sp<NodeSel>>,
    /// The port dialled: node-port, the published port (default: the service's first published
    /// or node port); replicas, the replicas' own port (default: the service's `port`); vip, the
    /// VIP's port (default: the service's).
    pub port: Option<Sp<u32>>,
    /// kubernetes: `node` (default) or `pod` (a client pod on each entry node).
    pub client: Option<Sp<ClientKind>>,
    /// The HTTP path requested. Default `/`.
    pub path: Option<Sp<String>>,
    /// Requests per second from each entry node, one new connection each. Default 20, at most 500.
    pub rate: Option<Sp<f64>>,
    /// Each request's own deadline, e.g. `1s` or `300ms`. Default 1s.
    pub timeout: Option<Sp<String>>,
    /// The timeline's bucket, e.g. `250ms` (default) or `1s`.
    pub bucket: Option<Sp<String>>,
    /// A path counts as recovered at the first of this many answers in a row. Default 10.
    pub recovered_after: Option<Sp<u32>>,
    pub expect: Option<StreamExpectDecl>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamTo {
    Replicas,
    Vip,
    NodePort,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
/// Gates on a stream. At the top: over the whole stream, plus the timings of each fault
/// applied while it ran; under `before`, `during`, `after`: over that phase of every fault
/// (`after` begins once the path has recovered).
pub struct StreamExpectDecl {
    /// Requests not answered, e.g. `"== 0"` (a fault that must not be felt) or `">= 1"`.
    pub lost: Option<Sp<String>>,
    /// The share of requests not answered, e.g. `"0.3..0.7"`.
    pub lost_share: Option<Sp<String>>,
    /// Latency of answered requests, e.g. `"<= 50ms"`.
    pub p50: Option<Sp<String>>,
    pub p99: Option<Sp<String>>,
    /// From each `apply` to the stream's first lost request, at most this long, e.g. `2s`.
    pub break_within: Option<Sp<String>>,
    /// From each `revert` to the first of `recovered-after` answers in a row, at most this long.
    pub recover_within: Option<Sp<String>>,
    pub before: Option<PhaseExpectDecl>,
    pub during: Option<PhaseExpectDecl>,
    pub after: Option<PhaseExpectDecl>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
/// Gates over one phase of every fault.
pub struct PhaseExpectDecl {
    pub lost: Option<Sp<String>>,
    pub lost_share: Option<Sp<String>>,
    pub p50: Option<Sp<String>>,
    pub p99: Option<Sp<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
/// One node, or `count` nodes named `<name>-1` … `<name>-<count>`.
pub struct NodeDecl {
    pub name: Sp<String>,
    #[serde(default)]
    pub role: Role,
    pub count: Option<Sp<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Manager,
    #[default]
    Worker,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StackDecl {
    pub kind: Sp<StackKind>,
    /// kubernetes: the server binaries — a directory, an official release tarball
    /// (kubernetes-server-linux-amd64.tar.gz), or a version built by `images/kubernetes/build-bundle.sh`
    /// into the cache. Default: 1.20.2 from the cache.
    pub bundle: Option<Sp<String>>,
    /// kubernetes: how pods on different nodes reach each other.
    pub pod_network: Option<PodNetworkDecl>,
    /// kubernetes: default 10.244.0.0/16 (one /24 per node).
    pub pod_cidr: Option<Sp<String>>,
    /// kubernetes: default 10.32.0.0/16.
    pub service_cidr: Option<Sp<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PodNetworkDecl {
    pub backend: Sp<Backend>,
    /// vxlan: the UDP port of the VXLAN devices (flannel's 8472 by default; 4789 is IANA's).
    pub port: Option<Sp<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// A kernel VXLAN device per node with static FDB/neighbour entries per peer (flannel's vxlan).
    Vxlan,
    /// Plain routes to each peer's pod CIDR via the peer's address (flannel's host-gw).
    HostGw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StackKind {
    Swarm,
    Kubernetes,
}

impl StackKind {
    /// As a reader says it.
    pub fn word(self) -> &'static str {
        match self {
            StackKind::Swarm => "swarm",
            StackKind::Kubernetes => "Kubernetes",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NetworkDecl {
    pub name: Sp<String>,
    #[serde(default)]
    pub driver: NetDriver,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetDriver {
    #[default]
    Overlay,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServiceDecl {
    pub name: Sp<String>,
    /// A clusterlab workload image (`web`, `tools`) or any image present on the host engine.
    pub image: Sp<String>,
    /// Default 1.
    pub replicas: Option<Sp<u32>>,
    /// Default: the first network of the file.
    pub network: Option<Sp<String>>,
    #[serde(default)]
    pub publish: Vec<PublishDecl>,
    #[serde(default)]
    pub endpoint_mode: EndpointMode,
    /// kubernetes: the Service type. Default cluster-ip.
    #[serde(rename = "type")]
    pub service_type: Option<Sp<ServiceType>>,
    /// kubernetes, type node-port: a fixed node port (30000-32767).
    pub node_port: Option<Sp<u32>>,
    /// The port the image serves on inside its container. Default 80 (`tools`: 5201).
    pub port: Option<Sp<u32>>,
    /// How an answer says which replica sent it: `web` (clusterlab's web image: `replica=<name>`
    /// in the body), `body` (the body contains the replica's hostname), `header <Name>` (a header
    /// whose value is the replica's hostname), or `none` (it does not: checks count answers by
    /// address, and a VIP's split is unknown). Default: `web` for the web image, else `none`.
    pub identity: Option<Sp<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceType {
    #[default]
    ClusterIp,
    NodePort,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PublishDecl {
    /// The port published on every node.
    pub port: Sp<u32>,
    /// The container's port. Default: the service's `port` (80).
    pub target: Option<Sp<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointMode {
    /// A virtual IP in front of the replicas (needs IPVS in the kernel).
    #[default]
    Vip,
    /// DNS round-robin over the replicas' addresses (on Kubernetes: a headless Service).
    Dnsrr,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
/// A fault, declared once and applied or reverted by steps.
pub struct FaultDecl {
    pub name: Sp<String>,
    pub kind: Sp<FaultKind>,
    /// drop, loss, rate, delay: the node(s) whose network namespace gets the rule; kill, stop-node, mtu: the
    /// node(s) acted on; http-proxy: the nodes whose clients get the proxy (default all-nodes).
    pub node: Option<Sp<NodeSel>>,
    /// drop, loss, rate, delay: tcp, udp, icmp or all (default all).
    pub protocol: Option<Sp<Protocol>>,
    /// drop, loss, rate, delay: destination port (needs protocol tcp or udp).
    pub port: Option<Sp<u32>>,
    /// drop, loss, rate, delay: `in` (packets arriving at the node, the default), `out`, or `both`.
    pub direction: Option<Sp<Direction>>,
    /// drop, loss, rate, delay: only packets from/to these nodes.
    pub peers: Option<Sp<NodeSel>>,
    /// partition: the two sides that can no longer talk.
    pub side_a: Option<Sp<NodeSel>>,
    pub side_b: Option<Sp<NodeSel>>,
    /// loss: percent of matching packets dropped; duplicate: percent sent twice (0 < percent <= 100).
    pub percent: Option<Sp<f64>>,
    /// kill: the supervised component or daemon stopped on `node` (dockerd; containerd, etcd,
    /// kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy).
    pub component: Option<Sp<String>>,
    /// http-proxy: the `no_proxy` list set with the proxy. Node names, groups and `all-nodes`
    /// stand for the nodes' addresses; anything else (`localhost`, `.svc`, a CIDR) is kept as written.
    pub no_proxy: Option<Sp<NodeSel>>,
    /// http-proxy: supervised components restarted with the proxy in their environment
    /// (kubelet, kube-proxy, ...). Default none: only the clients (kubectl) get it.
    pub components: Option<Sp<NodeSel>>,
    /// mtu: the MTU set on the node's lab interface (eth0), 576-1500.
    pub mtu: Option<Sp<u32>>,
    /// rate: the bandwidth the matched packets get, e.g. `10mbit` (units bit, kbit, mbit, gbit:
    /// powers of 1000, as tc writes them).
    pub rate: Option<Sp<String>>,
    /// delay: the time each matched packet is held, e.g. `50ms`.
    pub delay: Option<Sp<String>>,
    /// delay: the spread around it, e.g. `10ms` (default none).
    pub jitter: Option<Sp<String>>,
    /// delay: how the jitter is drawn: `uniform` over ±jitter (the default), or `normal` with
    /// jitter as its standard deviation.
    pub distribution: Option<Sp<Distribution>>,
    /// delay: percent of packets sent at once instead of held (they overtake the held ones), as
    /// netem's `reorder`.
    pub reorder: Option<Sp<f64>>,
    /// delay: only every `gap`th packet may be sent at once (default 1: any packet).
    pub gap: Option<Sp<u32>>,
    /// rate: how many bytes may go at once above the rate, e.g. `32kb` (units b, kb, mb: powers
    /// of 1024). Default: what the rate sends in 10 ms, at least two full frames.
    pub burst: Option<Sp<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Drop,
    Partition,
    Loss,
    /// Stop a component on a node (and keep it down); revert starts it again.
    Kill,
    /// Freeze node containers (pause); revert resumes them.
    StopNode,
    /// A stray HTTP proxy (squid that cannot reach the lab) in the clients' environment.
    HttpProxy,
    /// Lower a node's interface MTU: encapsulated (VXLAN) packets larger than it are lost.
    Mtu,
    /// Hold the matched packets for a time (plus jitter) before they go on: a userspace stage
    /// in the node behind an NFQUEUE rule (this kernel has no netem).
    Delay,
    /// Send a share of the matched packets twice: the sending node's iptables TEE clones them to
    /// the receiving node (netem's duplicate, without netem).
    Duplicate,
    /// Flip one random bit in a share of the matched packets (past the IP header): the delay
    /// stage rewrites them, and the receiver's checksum drops them (netem's corrupt, without it).
    Corrupt,
    /// Limit the bandwidth of the matched packets (a slow link): HTB on the sending node's lab
    /// interface, the packets chosen by iptables.
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    #[default]
    Uniform,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    In,
    Out,
    Both,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
/// One step of the story, run in order.
pub enum StepDecl {
    Check(Box<CheckDecl>),
    /// Apply the named fault.
    Apply(Sp<String>),
    /// Revert the named fault exactly.
    Revert(Sp<String>),
    Scale(ScaleDecl),
    /// Let time pass, e.g. `15s`: a fault held while streams run, or a repair given time.
    Wait(Sp<String>),
    /// Measure the service's paths (throughput, or request rate) and compare them.
    Bench(Box<BenchDecl>),
    /// Start the named stream here (default: before the first step).
    StartStream(Sp<String>),
    /// Stop the named stream here and judge it (default: after the last step).
    StopStream(Sp<String>),
    /// Install the stack here. Without an install step the stack is installed before the first
    /// step; with one, the nodes start bare, and faults applied before it act on the install.
    Install(InstallDecl),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InstallDecl {
    /// The verdict's name in reports. Default: `install`, then `install-2`, ...
    pub name: Option<Sp<String>>,
    /// Default: the install succeeds. `{ fails-at: STAGE }`: it must fail, at that stage.
    pub expect: Option<InstallExpectDecl>,
    /// The whole install's bound, e.g. `300s` (the default; at most 600s).
    pub timeout: Option<Sp<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InstallExpectDecl {
    pub fails_at: Sp<InstallStage>,
}

/// The stages of an install, in the order they finish. Both stacks: `runtime` (the node's
/// engine or containerd answers), `images` (loaded into the nodes). Swarm: `swarm-init`,
/// `swarm-join`, `services` (networks, services, converged), `probes`. Kubernetes:
/// `pod-network`, `control-plane` (up, and answering kubectl on the master), `node-agents`
/// (kubelet, kube-proxy), `nodes-ready`, `cluster-dns`, `workloads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstallStage {
    Runtime,
    Images,
    SwarmInit,
    SwarmJoin,
    Services,
    Probes,
    PodNetwork,
    ControlPlane,
    NodeAgents,
    NodesReady,
    ClusterDns,
    Workloads,
}

impl InstallStage {
    /// As written in the file.
    pub fn word(self) -> &'static str {
        match self {
            InstallStage::Runtime => "runtime",
            InstallStage::Images => "images",
            InstallStage::SwarmInit => "swarm-init",
            InstallStage::SwarmJoin => "swarm-join",
            InstallStage::Services => "services",
            InstallStage::Probes => "probes",
            InstallStage::PodNetwork => "pod-network",
            InstallStage::ControlPlane => "control-plane",
            InstallStage::NodeAgents => "node-agents",
            InstallStage::NodesReady => "nodes-ready",
            InstallStage::ClusterDns => "cluster-dns",
            InstallStage::Workloads => "workloads",
        }
    }

    /// The stages a stack's install goes through.
    pub fn of(stack: StackKind) -> &'static [InstallStage] {
        use InstallStage::*;
        match stack {
            StackKind::Swarm => &[Runtime, Images, SwarmInit, SwarmJoin, Services, Probes],
            StackKind::Kubernetes => &[Runtime, Images, PodNetwork, ControlPlane, NodeAgents, NodesReady, ClusterDns, Workloads],
        }
    }
}

impl std::fmt::Display for InstallStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
/// A measurement of each path to one replica, in one run, alternating paths sample by sample.
pub struct BenchDecl {
    pub name: Sp<String>,
    /// `throughput` (iperf3 TCP, bits/s; the service runs the `tools` image) or `request-rate`
    /// (many short HTTP connections per second, like netperf TCP_CRR; the `web` image).
    pub kind: Sp<BenchKind>,
    pub service: Sp<String>,
    /// The client's node. Default: the first node.
    pub from: Option<Sp<String>>,
    /// Paths measured, in this order: `node` (node to node, the underlay), `direct` (to the
    /// replica's overlay/pod address), `vip` (the service VIP / ClusterIP, pinned to that
    /// replica), `node-port` (the replica's node address and published port). Default: all four.
    pub paths: Option<Sp<Vec<PathKind>>>,
    /// Samples per path (default 3), each `seconds` long (default 2).
    pub samples: Option<Sp<u32>>,
    pub seconds: Option<Sp<u32>>,
    /// Gates on ratios of medians of this run, e.g. `vip/direct: ">= 0.9"`; the run fails when
    /// one does not hold.
    #[serde(default)]
    pub expect: std::collections::BTreeMap<String, Sp<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchKind {
    Throughput,
    RequestRate,
}

impl BenchKind {
    /// As written in the file.
    pub fn word(self) -> &'static str {
        match self {
            BenchKind::Throughput => "throughput",
            BenchKind::RequestRate => "request-rate",
        }
    }
    /// The port its server listens on in the replicas (iperf3's; the `web` image's).
    pub fn server_port(self) -> u16 {
        match self {
            BenchKind::Throughput => 5201,
            BenchKind::RequestRate => 80,
        }
    }
    /// What a sample counts.
    pub fn unit(self) -> &'static str {
        match self {
            BenchKind::Throughput => "bit/s",
            BenchKind::RequestRate => "req/s",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    Node,
    Direct,
    Vip,
    NodePort,
}

impl PathKind {
    pub const ALL: [PathKind; 4] = [PathKind::Node, PathKind::Direct, PathKind::Vip, PathKind::NodePort];
    pub fn word(self) -> &'static str {
        match self {
            PathKind::Node => "node",
            PathKind::Direct => "direct",
            PathKind::Vip => "vip",
            PathKind::NodePort => "node-port",
        }
    }
    pub fn parse(s: &str) -> Option<PathKind> {
        PathKind::ALL.into_iter().find(|p| p.word() == s)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ScaleDecl {
    pub service: Sp<String>,
    pub replicas: Sp<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CheckDecl {
    pub name: Sp<String>,
    pub kind: Sp<CheckKind>,
    /// The service probed; every kind but `api` needs one.
    pub service: Option<Sp<String>>,
    /// Entry nodes the requests start from. Default: all-nodes.
    pub from: Option<Sp<NodeSel>>,
    /// node-port: the nodes whose address is dialled. Default: all-nodes.
    pub via: Option<Sp<NodeSel>>,
    /// node-port: the published port. Default: the service's first published port.
    pub port: Option<Sp<u32>>,
    /// Requests per pair (replicas, node-port: per entry and target; vip: per entry node).
    /// Default 3 for replicas, 6 for vip and node-port.
    pub requests: Option<Sp<u32>>,
    /// replicas, vip, node-port: the HTTP path requested. Default `/` (a one-line answer);
    /// `/big` is a 256 KiB answer, for paths that lose large packets.
    pub path: Option<Sp<String>>,
    /// Per-request timeout, e.g. `2s` or `500ms`. Default 2s.
    pub timeout: Option<Sp<String>>,
    /// How long the check may wait for its expectation to hold, e.g. `30s`: it is observed again
    /// (every second or so) until it holds or this much time has passed, and reports how long it
    /// took. Default: once, now.
    pub within: Option<Sp<String>>,
    /// kubernetes: where requests start — `node` (the node's own namespace, default) or `pod`
    /// (a client pod on each entry node, inside the pod network).
    pub client: Option<Sp<ClientKind>>,
    /// replicas, vip, node-port: `http` (default: a request, its answer judged) or `tcp` (a
    /// connection opened is an answer; for services that do not speak HTTP).
    pub protocol: Option<Sp<CheckProtocol>>,
    /// http: the status an answer must have. Default: any 2xx.
    pub status: Option<Sp<u32>>,
    /// http: text the answer's body must contain.
    pub body: Option<Sp<String>>,
    pub expect: Option<ExpectDecl>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckProtocol {
    #[default]
    Http,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    #[default]
    Node,
    Pod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// Each replica directly by its overlay address, from each entry node.
    Replicas,
    /// The service name (its VIP) from each entry node; which replicas answered.
    Vip,
    /// The published port via every node's address, from outside the overlay.
    NodePort,
    /// `tasks.<service>` resolves to every replica.
    Dns,
    /// kubernetes: the API server answers from each entry node, and every node is Ready.
    Api,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
/// What the check should observe. Default: every pair answers.
pub struct ExpectDecl {
    /// One rule, or a list of rules; a pair matching any rule must not answer.
    pub unreachable: Option<OneOrMany<UnreachableDecl>>,
    /// The share of requests a pair that must answer has to answer: `">= 0.9"`, `"<= 0.5"`, or a
    /// range `"0.2..0.8"`. Default `">= 1"`: every request of every expected pair answers. (Pairs
    /// that must not answer must answer no request, whatever this says.)
    pub answer_rate: Option<Sp<String>>,
    /// Faults whose rules must match packets while the check runs: proof the fault was hit,
    /// not only installed.
    #[serde(default)]
    pub faults_hit: Vec<Sp<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
/// Pairs that must NOT answer; every other pair must.
pub struct UnreachableDecl {
    /// Replicas running on these nodes (replicas, vip) or these node addresses (node-port).
    pub replicas_on: Option<Sp<NodeSel>>,
    /// Only from these entry nodes. Default: from every entry node.
    pub from: Option<Sp<NodeSel>>,
}

/// Node names: one name, a list of names, a group name (`worker` = every `worker-N`), or `all-nodes`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(untagged)]
pub enum NodeSel {
    One(String),
    Many(Vec<String>),
}

impl NodeSel {
    pub fn names(&self) -> Vec<String> {
        match self {
            NodeSel::One(s) => vec![s.clone()],
            NodeSel::Many(v) => v.clone(),
        }
    }
}

// Hand-written rather than `#[serde(untagged)]`: untagged enums replace the parser's message
// with "data did not match any variant", which tells the user nothing.
impl<'de> Deserialize<'de> for NodeSel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NodeSel;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a node name, a list of node names, or all-nodes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NodeSel, E> {
                Ok(NodeSel::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<NodeSel, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = a.next_element::<String>()? {
                    out.push(s);
                }
                Ok(NodeSel::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A single map or a list of them.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn items(&self) -> Vec<&T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v.iter().collect(),
        }
    }
}

// By hand, as for NodeSel: an untagged derive would hide the inner error and its position.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map or a list of maps")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(a)).map(OneOrMany::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element::<T>()? {
                    v.push(x);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}
