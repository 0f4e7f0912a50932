//! The vocabulary the pipeline's stages share — where a probe's requests start, what a check
//! saw, a running replica, how a bench reaches a path, what a verdict came to — as plain data,
//! below every stage that speaks it: stacks describe services in these words, probes fill
//! them in, expectations, benches, streams and reports read them. Nothing here does I/O.

/// A column of the matrix: a replica (replicas, vip, dns) or a node address (node-port).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Target {
    pub label: String,
    /// The node the target lives on: what expectations name.
    pub node: String,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Cell {
    /// Requests answered by this target (and only by it: an answer from anything else is not one).
    pub hits: u32,
    /// Requests sent for this pair (vip: the entry node's requests, which the VIP spreads).
    pub tries: u32,
    /// What went wrong, when something did (timeout, refused, wrong replica...).
    pub detail: String,
    /// Latency of the answered requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
}

/// Latency of answered requests, in milliseconds, as the client measured each request.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Latency {
    pub min_ms: f64,
    pub median_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// None when nothing was answered.
    pub fn of(mut ms: Vec<f64>) -> Option<Latency> {
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 { ms[n / 2] } else { (ms[n / 2 - 1] + ms[n / 2]) / 2.0 };
        Some(Latency { min_ms: ms[0], median_ms: median, max_ms: ms[n - 1] })
    }
}

/// What a check saw: rows are entry nodes, columns targets.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Observation {
    pub rows: Vec<String>,
    pub cols: Vec<Target>,
    pub cells: Vec<Vec<Cell>>,
    /// Per row: requests that no column answered (a VIP request nobody answered; dns: stray
    /// addresses in the answer).
    pub unanswered: Vec<u32>,
    /// Per row: requests sent from that entry node (vip: the VIP's requests; others: the sum of
    /// the row's cells).
    #[serde(default)]
    pub sent: Vec<u32>,
    pub notes: Vec<String>,
}

impl Observation {
    /// Requests sent and answered over the whole check.
    pub fn totals(&self) -> (u32, u32) {
        let answered = self.cells.iter().flatten().map(|c| c.hits).sum();
        let sent = if self.sent.len() == self.rows.len() && !self.sent.is_empty() {
            self.sent.iter().sum()
        } else {
            self.cells.iter().flatten().map(|c| c.tries).sum()
        };
        (sent, answered)
    }
}

/// Where a probe's requests start from on an entry node.
#[derive(Debug, Clone, PartialEq)]
pub enum Client {
    /// A probe container on this overlay network, one per node (swarm): it sees the overlay as a
    /// task does. Requests with busybox wget.
    Overlay { network: String },
    /// The node's own network namespace (Kubernetes: nodes route every pod CIDR, and kube-proxy
    /// rules apply to traffic the node sends). Requests with curl.
    Node,
    /// A client pod on each node (Kubernetes), entered through containerd: (node, container id).
    /// Requests with busybox wget, inside the pod network.
    Pod { containers: Vec<(String, String)> },
    /// A container of the node's own engine (swarm: the bench client on an overlay).
    Container { name: String },
}

/// What the stack tells probes about one service.
#[derive(Debug, Clone)]
pub struct ServicePaths {
    pub client: Client,
    /// What a vip check dials, `host:port`: the service's name (swarm resolves it to its VIP) or
    /// the ClusterIP.
    pub vip: String,
    /// The VIP as `ip:port`, for clients that resolve no names (a stream's agent); None when
    /// the service has no VIP (swarm dnsrr).
    pub vip_addr: Option<String>,
    /// The port a node-port check dials when the check names none.
    pub node_port: Option<u16>,
    /// Facts worth showing with the matrix (the VIP's address, ...).
    pub notes: Vec<String>,
    /// How a `dns` check looks the service up.
    pub dns: DnsLookup,
}

/// How a `dns` check asks for a service's name, and what the answer must list.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsLookup {
    /// The name asked: `tasks.web` (swarm), `web` from a pod (its resolv.conf searches the
    /// namespace, as a user's program would), the whole name from a Kubernetes node.
    pub name: String,
    /// The server asked, or None: the client's own resolver configuration.
    pub server: Option<String>,
    pub expect: DnsExpect,
}

/// The addresses a service's name must resolve to.
#[derive(Debug, Clone, PartialEq)]
pub enum DnsExpect {
    /// Every running replica's (swarm's `tasks.<service>`, a headless Service).
    Replicas,
    /// One address (a ClusterIP), answered by the DNS server on `node`.
    Address { label: String, ip: String, node: String },
}

/// One running replica of a service, as a probe sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Replica {
    /// The task or pod name, e.g. `web.2` or `web-7d9c-x2bqp`.
    pub task: String,
    /// The node it runs on.
    pub node: String,
    /// What it answers with: its hostname (container id in swarm, pod name in Kubernetes).
    pub identity: String,
    /// Its address on the service's network (overlay or pod IP).
    pub ip: String,
}

impl Replica {
    /// `web.2@worker-1`: how the matrix labels a column.
    pub fn label(&self) -> String {
        format!("{}@{}", self.task, self.node)
    }
}

/// Where a bench's client runs, and what it dials, for one path to one replica.
#[derive(Debug, Clone)]
pub struct PathEnd {
    pub client: Client,
    pub host: String,
    pub port: u16,
    /// What was dialled and how, for the report.
    pub how: String,
}

/// A path end, or why this host and stack cannot offer the path.
pub type PathOffer = Result<PathEnd, String>;

/// `web.1@manager web.2@worker-1 …`
pub fn placement(rs: &[Replica]) -> String {
    rs.iter().map(|r| r.label()).collect::<Vec<_>>().join(" ")
}

/// Name of the probe container each node runs on each overlay network.
pub fn probe_container(network: &str) -> String {
    format!("clusterlab-probe-{network}")
}

/// What a check, bench or stream came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The host lacks what the check needs; observed, shown, never counted as a pass.
    Unsupported,
    /// The check could not run.
    Error,
}
