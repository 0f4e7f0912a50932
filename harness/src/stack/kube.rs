//! Kubernetes from a local binary bundle, installed seed-style: etcd (Debian), kube-apiserver on
//! TLS, controller-manager and scheduler on the master; kubelet (containerd CRI) and kube-proxy
//! (iptables mode: no IPVS needed) on every node, each under a supervisor that restarts it and
//! logs to /var/log/clusterlab. Pod network without flannel: CNI bridge + host-local on each node's
//! pod CIDR, and cross-node routes over a kernel VXLAN device (static FDB/neighbours per peer,
//! flannel's vxlan backend) or plain routes (host-gw). Readiness is measured, never slept.

use super::{placement, AtStage, PathEnd, PathOffer, Replica, Stack};
use crate::lab::{shq, Lab};
use crate::model::{
    Backend, Bench, BundleRef, Check, ClientKind, EndpointMode, InstallStage, KubeSpec, PathKind, Scenario, Service, ServiceType,
    CLUSTER_DNS,
};
use crate::provider::{tail, LabError};
use crate::vocab::{Cell, Client, DnsExpect, DnsLookup, Observation, ServicePaths, Target};
use futures_util::future::try_join_all;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// (service, from a client pod)
type SeenKey = (String, bool);

/// Where the bundle is mounted (read-only) in every node: binaries run from there, so a second
/// `up` never overwrites a running binary ("Text file busy").
pub const BUNDLE_MOUNT: &str = "/opt/clusterlab/kubernetes";
pub const BINARIES: [&str; 5] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"];
pub const KUBECONFIG: &str = "/etc/k8s/kubeconfig";

/// kubectl with the lab's kubeconfig (a macro, so the two spellings below share one literal).
macro_rules! kubectl {
    () => {
        // --request-timeout: no kubectl call waits on a wedged API server longer than this.
        "kubectl --kubeconfig /etc/k8s/kubeconfig --request-timeout=15s"
    };
}
/// kubectl as a user on the node runs it: with the proxy environment an http-proxy fault set
/// (`/etc/clusterlab/client.env`, as a shell profile would), so a stray proxy breaks it as it
/// breaks the user's. Probes never use this: they must see the network, not the proxy.
const KCTL: &str = concat!("env $(cat /etc/clusterlab/client.env 2>/dev/null) ", kubectl!());

/// kubectl as the harness needs it when it wants the truth (evidence, diagnosis): without the
/// proxy environment a fault may have set.
pub const KUBECTL_DIRECT: &str = kubectl!();
/// The kube-dns Service and its Endpoints, as applied on the master.
const KUBE_DNS: &str = "/etc/k8s/kube-dns.yaml";
/// The cluster DNS server (`../dns`, built by the build script), copied onto the master.
pub const DNS_SERVER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/clusterlab-dns"));
pub const DNS_PATH: &str = "/usr/local/bin/clusterlab-dns";
/// The cluster's DNS zone: the conventional one, which pods' search paths and users expect.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The static token of the lab's admin user (a lab, not a production cluster).
const TOKEN: &str = "clusterlab-admin-token";
/// A 2-replica service converges in ~5 s after the nodes are Ready; the margin is for a loaded
/// 2-core machine, and a timeout still fails with the pods' states.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);

/// The bundle directory on the host for a scenario: a directory, an extracted release tarball,
/// or a version built into the cache.
pub fn resolve_bundle(spec: &KubeSpec, scenario_file: &str) -> Result<PathBuf, LabError> {
    let base = Path::new(scenario_file).parent().unwrap_or(Path::new("."));
    let fail = |message: String| LabError::Bundle { message };
    let dir = match &spec.bundle {
        BundleRef::Dir(d) => base.join(d),
        BundleRef::Version(v) => cache_dir().join(format!("kubernetes-{v}")),
        BundleRef::Tarball(t) => {
            let tarball = base.join(t);
            let name = tarball.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let out = cache_dir().join(format!("tarball-{}", name.trim_end_matches(".tar.gz").trim_end_matches(".tgz")));
            if !out.join("kubelet").exists() {
                std::fs::create_dir_all(&out).map_err(|e| fail(format!("cannot create {}: {e}", out.display())))?;
                // An official server tarball keeps the binaries in kubernetes/server/bin/.
                let st = std::process::Command::new("tar")
                    .args(["-xzf"])
                    .arg(&tarball)
                    .args(["-C"])
                    .arg(&out)
                    .args(["--strip-components=3", "--wildcards"])
                    .args(BINARIES.iter().map(|b| format!("kubernetes/server/bin/{b}")))
                    .status()
                    .map_err(|e| fail(format!("cannot run tar: {e}")))?;
                if !st.success() {
                    return Err(fail(format!("{} is not a kubernetes-server tarball (tar exited {st})", tarball.display())));
                }
            }
            out
        }
    };
    let missing: Vec<&str> = BINARIES.iter().copied().filter(|b| !dir.join(b).is_file()).collect();
    if !missing.is_empty() {
        let hint = match &spec.bundle {
            BundleRef::Version(v) => format!(
                "build it with `VERSION={v} images/kubernetes/build-bundle.sh` (make bundle; ~20 min on 2 cores, cached afterwards)"
            ),
            _ => "a bundle holds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy".into(),
        };
        return Err(fail(format!("{} lacks {}\n    hint: {hint}", dir.display(), missing.join(", "))));
    }
    std::fs::canonicalize(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))
}

/// `$XDG_CACHE_HOME/clusterlab/bundles` (default `~/.cache/...`), as the build script uses.
pub fn cache_dir() -> PathBuf {
    crate::images::cache_root().join("bundles")
}

/// containerd's configuration: CRI with the locally built pause image as sandbox.
pub fn containerd_config(pause_image: &str) -> String {
    format!(
        r#"version = 2
[plugins."io.containerd.grpc.v1.cri"]
  # the locally built pod sandbox; nothing is pulled
  sandbox_image = "docker.io/{pause_image}"
  # without CAP_SYS_RESOURCE, runc cannot raise oom_score_adj and dies with
  # "can't get final child's PID from pipe"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
"#
    )
}

/// A node's CNI configuration: a bridge with host-local addresses from the node's pod CIDR.
pub fn cni_config(pod_cidr: &str) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "clusterlab",
        "plugins": [
            { "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
              "ipam": { "type": "host-local", "subnet": pod_cidr, "routes": [ { "dst": "0.0.0.0/0" } ] } },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    }))
    .expect("json")
}

/// The admin kubeconfig every node and the harness use (token auth over TLS).
pub fn kubeconfig(master_ip: &str, ca_b64: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: lab, cluster: {{server: \"https://{master_ip}:6443\", certificate-authority-data: {ca_b64}}}}}]\n\
         contexts: [{{name: lab, context: {{cluster: lab, user: admin}}}}]\ncurrent-context: lab\nusers: [{{name: admin, user: {{token: {TOKEN}}}}}]\n"
    )
}

/// Command lines of the control-plane components (on the master).
pub fn control_plane_flags(spec: &KubeSpec, ip: &str) -> Vec<(&'static str, String)> {
    let b = BUNDLE_MOUNT;
    vec![
        // One member: its first election is all the wait before it serves, and with the default
        // timing (heartbeat 100 ms, election 1 s) that was ~1 s of every start; with no peer to
        // lose, a 100 ms election timeout changes nothing else.
        (
            "etcd",
            "etcd --data-dir /var/lib/etcd --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
             --heartbeat-interval=20 --election-timeout=100"
                .to_string(),
        ),
        (
            "kube-apiserver",
            format!(
                "{b}/kube-apiserver --etcd-servers=http://127.0.0.1:2379 --secure-port=6443 --advertise-address={ip} \
                 --tls-cert-file=/etc/k8s/apiserver.crt --tls-private-key-file=/etc/k8s/apiserver.key --client-ca-file=/etc/k8s/ca.crt \
                 --token-auth-file=/etc/k8s/tokens.csv --authorization-mode=Node,RBAC --service-cluster-ip-range={} \
                 --service-account-key-file=/etc/k8s/sa.pub --service-account-signing-key-file=/etc/k8s/sa.key \
                 --service-account-issuer=https://kubernetes.default.svc",
                spec.service_cidr
            ),
        ),
        (
            "kube-controller-manager",
            // No --allocate-node-cidrs: the plan allocates pod CIDRs (set on each node as it
            // registers). With it, the node IPAM controller's start blocks 10 s (its allocator
            // lists nodes after one poll interval), and every controller after it in the start
            // order waits: service accounts, deployments, replica sets came 10 s late.
            format!(
                "{b}/kube-controller-manager --kubeconfig={KUBECONFIG} --service-account-private-key-file=/etc/k8s/sa.key \
                 --root-ca-file=/etc/k8s/ca.crt --cluster-cidr={} --service-cluster-ip-range={}",
                spec.pod_cidr, spec.service_cidr
            ),
        ),
        ("kube-scheduler", format!("{b}/kube-scheduler --kubeconfig={KUBECONFIG}")),
    ]
}

/// Command lines of the node components (on every node).
pub fn node_flags(spec: &KubeSpec, node: &str, ip: &str) -> Vec<(&'static str, String)> {
    let b = BUNDLE_MOUNT;
    vec![
        (
            "kubelet",
            // cgroupfs/no QoS cgroups/no allocatable enforcement: the node is a container on cgroup v1;
            // swap may be on on the host. --node-status-update-frequency=1s: a lab's cadence, not
            // a fleet's (10 s). A kubelet registers its node NotReady when its first pod-lifecycle
            // relist has not run yet (seen on the master, busy starting the control plane), and
            // says Ready at its next status update: 1 s later, not 2 or 10. The status is computed
            // each second but sent only when it changed (etcd: ~1.3 writes/s in an idle 2-node
            // lab, all of them leases).
            format!(
                "{b}/kubelet --kubeconfig={KUBECONFIG} --container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock \
                 --fail-swap-on=false --cgroup-driver=cgroupfs --cgroups-per-qos=false --enforce-node-allocatable= \
                 --network-plugin=cni --cni-bin-dir=/usr/lib/cni --cni-conf-dir=/etc/cni/net.d --hostname-override={node} --node-ip={ip} \
                 --cluster-dns={dns} --cluster-domain={CLUSTER_DOMAIN} --node-status-update-frequency=1s",
                dns = dns_ip(&spec.service_cidr)
            ),
        ),
        (
            "kube-proxy",
            // --conntrack-max-per-core=0: a container may not set the host's nf_conntrack_max.
            format!("{b}/kube-proxy --kubeconfig={KUBECONFIG} --hostname-override={node} --proxy-mode=iptables --conntrack-max-per-core=0 --cluster-cidr={}", spec.pod_cidr),
        ),
    ]
}

/// Objects for `kubectl apply -f -`, built as data: a List, serialized as JSON (which kubectl
/// reads as it reads YAML). No value is pasted into manifest text.
fn list(items: Vec<serde_json::Value>) -> String {
    serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items }).to_string()
}

/// The Deployment and Service of a scenario service.
pub fn manifests(s: &Service, image: &str) -> String {
    let svc_type = match s.service_type {
        ServiceType::ClusterIp => "ClusterIP",
        ServiceType::NodePort => "NodePort",
    };
    let port = s.port;
    let app = serde_json::json!({ "app": s.name });
    // Named, so the cluster DNS serves its SRV record (`_http._tcp.<service>`).
    let mut svc_port = serde_json::json!({ "name": "http", "port": port, "targetPort": port });
    if let Some(np) = s.node_port {
        svc_port["nodePort"] = np.into();
    }
    let mut svc_spec = serde_json::json!({ "type": svc_type, "selector": app, "ports": [svc_port] });
    if s.endpoint_mode == EndpointMode::Dnsrr {
        // Headless: no ClusterIP; the cluster DNS answers the name with every ready pod.
        svc_spec["clusterIP"] = "None".into();
    }
    list(vec![
        serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": s.name, "labels": { "app": s.name, "io.clusterlab/service": s.name } },
            "spec": {
                "replicas": s.replicas,
                "selector": { "matchLabels": app },
                "template": {
                    "metadata": { "labels": app },
                    "spec": {
                        "automountServiceAccountToken": false,
                        // One replica per node while nodes last, so cross-node paths exist.
                        "topologySpreadConstraints": [{
                            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": { "matchLabels": app }
                        }],
                        "terminationGracePeriodSeconds": 2,
                        "containers": [{
                            "name": s.name, "image": image, "imagePullPolicy": "Never",
                            "ports": [{ "containerPort": port }]
                        }]
                    }
                }
            }
        }),
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": s.name },
            "spec": svc_spec
        }),
    ])
}

/// The pod CIDR of the `i`th node: the `i`th /24 of the cluster's pod CIDR (the controller
/// manager's `--node-cidr-mask-size=24`).
pub fn node_pod_cidr(pod_cidr: &str, i: usize) -> String {
    format!("{}/24", nth_host(pod_cidr, (i as u32) << 8))
}

/// The patch that gives a node its planned pod CIDR `c`.
pub fn pod_cidr_patch(c: &str) -> String {
    serde_json::json!({ "spec": { "podCIDR": c, "podCIDRs": [c] } }).to_string()
}

/// The selector-less `kube-dns` Service at the cluster DNS's address (the `.10` of the service
/// CIDR), whose one endpoint is the DNS server on the master: pods reach it through kube-proxy,
/// as they reach any Service, and a stopped server is a Service without an answer.
pub fn dns_service(service_cidr: &str, master_ip: &str) -> String {
    let labels = serde_json::json!({ "k8s-app": "kube-dns", "io.clusterlab/component": CLUSTER_DNS });
    let ports = [("dns", "UDP"), ("dns-tcp", "TCP")];
    list(vec![
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": "kube-dns", "namespace": "kube-system", "labels": labels },
            "spec": {
                "clusterIP": dns_ip(service_cidr),
                "ports": ports.iter().map(|(n, p)| serde_json::json!({ "name": n, "protocol": p, "port": 53, "targetPort": 53 })).collect::<Vec<_>>()
            }
        }),
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": { "name": "kube-dns", "namespace": "kube-system", "labels": labels },
            "subsets": [{
                "addresses": [{ "ip": master_ip }],
                "ports": ports.iter().map(|(n, p)| serde_json::json!({ "name": n, "protocol": p, "port": 53 })).collect::<Vec<_>>()
            }]
        }),
    ])
}

/// A Service in front of exactly one replica of `s` (the pod labelled `pinned=<s>`): a bench's
/// `vip` and `node-port` paths through kube-proxy without iperf3's trap (through a ClusterIP
/// with several endpoints, its control and data connections may reach different pods).
pub fn pinned_service(service: &str, port: u16) -> String {
    list(vec![serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": format!("{service}-pinned") },
        "spec": {
            "type": "NodePort",
            "selector": { "app": service, "io.clusterlab/pinned": service },
            "ports": [{ "port": port, "targetPort": port }]
        }
    })])
}

/// A client pod on every node (a DaemonSet of the web image, idle), for checks with `client: pod`.
pub fn probe_daemonset(image: &str) -> String {
    list(vec![serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": { "name": PROBE },
        "spec": {
            "selector": { "matchLabels": { "app": PROBE } },
            "template": {
                "metadata": { "labels": { "app": PROBE } },
                "spec": {
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "probe", "image": image, "imagePullPolicy": "Never",
                        "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
                    }]
                }
            }
        }
    })])
}

const PROBE: &str = "clusterlab-probe";

/// (service, pod, bench node).
type PinKey = (String, String, String);

pub struct Kube<'a> {
    pub lab: &'a Lab,
    spec: KubeSpec,
    /// The last replicas and paths seen per (service, from a client pod): with the API down (a
    /// kill fault, a stray proxy), probes still know where the pods are and the ClusterIP.
    seen: std::sync::Mutex<std::collections::HashMap<SeenKey, (Vec<Replica>, ServicePaths)>>,
    /// Pinned services ready on a node: (service, pod, node) -> (ClusterIP, node port). A bench's
    /// vip and node-port paths share one; the next bench to the same pod reuses it.
    pinned: std::sync::Mutex<std::collections::HashMap<PinKey, (String, u16)>>,
}

impl<'a> Kube<'a> {
    pub fn new(lab: &'a Lab) -> Kube<'a> {
        Kube {
            lab,
            spec: lab.scenario.kube.clone().expect("kubernetes scenario has kube settings"),
            seen: Default::default(),
            pinned: Default::default(),
        }
    }

    fn master(&self) -> String {
        self.lab.plan.leader().name.clone()
    }

    async fn kctl(&self, what: &str, args: &str) -> Result<String, LabError> {
        Ok(self.lab.sh(&self.master(), what, &format!("{KCTL} {args}")).await?.stdout)
    }

    /// Start `name` under the node's supervisor (a no-op if it already runs).
    async fn supervise(&self, node: &str, name: &str, cmd: &str) -> Result<(), LabError> {
        self.lab
            .sh(node, &format!("starting {name}"), &format!("setsid -f /usr/local/bin/supervise {name} {cmd} </dev/null >/dev/null 2>&1"))
            .await
            .map(|_| ())
    }

    /// Poll a shell condition inside a node until it holds; on timeout, fail with `what` and the
    /// tail of the given log.
    async fn until(&self, node: &str, what: &str, cond: &str, secs: u64, log: &str) -> Result<(), LabError> {
        if self.lab.poll(node, cond, secs, "0.2").await? {
            return Ok(());
        }
        let t = self.lab.sh_raw(node, &format!("tail -n 15 /var/log/clusterlab/{log}.log")).await.map(|o| o.stdout).unwrap_or_default();
        Err(LabError::Command {
            what: what.into(),
            node: node.into(),
            cmd: cond.chars().take(120).collect(),
            code: 1,
            tail: format!("waited {secs} s; {log}.log:\n{}", tail(&t, 15)),
        })
    }

    async fn control_plane(&self) -> Result<(), LabError> {
        let m = self.master();
        let ip = self.lab.node_ip(&m);
        let svc_ip = first_host(&self.spec.service_cidr);
        // The lab's CA, the API server's serving certificate (node IP, the `kubernetes` service IP,
        // loopback) and the service-account key pair; kept when they exist (up twice is safe).
        // P-256 keys, which Kubernetes takes everywhere RSA goes: the three take ~30 ms in a
        // node, three RSA-2048 keys 0.7-0.85 s.
        let certs = format!(
            "set -e; mkdir -p /etc/k8s; cd /etc/k8s; [ -f apiserver.crt ] && exit 0
openssl ecparam -name prime256v1 -genkey -noout -out sa.key; openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 7 -subj /CN=clusterlab-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
printf 'subjectAltName=IP:{ip},IP:{svc_ip},IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default' > san.ext
openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 7 -extfile san.ext 2>/dev/null
echo '{TOKEN},admin,admin,system:masters' > tokens.csv"
        );
        self.lab.sh(&m, "generating certificates", &certs).await?;
        let flags = control_plane_flags(&self.spec, &ip);
        for (name, cmd) in &flags[..2] {
            self.supervise(&m, name, cmd).await?;
        }
        let readyz = format!("curl -sk --noproxy '*' -H 'Authorization: Bearer {TOKEN}' https://127.0.0.1:6443/readyz | grep -qx ok");
        self.until(&m, "waiting for the API server", &readyz, 90, "kube-apiserver").await?;
        let ca = self.lab.sh(&m, "reading the CA", "base64 -w0 /etc/k8s/ca.crt").await?.stdout;
        let kc = kubeconfig(&ip, ca.trim());
        try_join_all(self.lab.plan.nodes.iter().map(|n| {
            let kc = kc.clone();
            async move {
                // Written beside and renamed: a component reading it meanwhile (a second install
                // over a running one) never sees half a file.
                self.lab
                    .sh_in(
                        &n.name,
                        "writing the kubeconfig",
                        &format!("mkdir -p /etc/k8s && cat > {KUBECONFIG}.new && mv {KUBECONFIG}.new {KUBECONFIG}"),
                        Some(kc.into()),
                    )
                    .await
            }
        }))
        .await?;
        // The first request a client makes through the API's address, as every later stage's
        // kubectl does (with the environment a fault may have set, e.g. a stray proxy): a
        // control plane kubectl cannot reach fails here, at its own stage, while the controller
        // manager and the scheduler start.
        let started = async {
            for (name, cmd) in &flags[2..] {
                self.supervise(&m, name, cmd).await?;
            }
            Ok::<_, LabError>(())
        };
        let (started, reached) = tokio::join!(started, self.kctl("reaching the API with kubectl", "get --raw /readyz"));
        started?;
        reached.map(|_| ())
    }

    /// The cluster DNS: its server on the master (supervised, so a kill fault can stop it) and
    /// the `kube-dns` Service leading to it.
    async fn cluster_dns(&self) -> Result<(), LabError> {
        let m = self.master();
        let ip = self.lab.node_ip(&m);
        self.lab.install_program(&m, "installing the cluster DNS", DNS_PATH, DNS_SERVER).await?;
        let cmd = format!("{DNS_PATH} --listen {ip}:53 --domain {CLUSTER_DOMAIN} --kubeconfig {KUBECONFIG}");
        self.supervise(&m, CLUSTER_DNS, &cmd).await?;
        // Kept in the node: `wait_dns` applies it again should its endpoints go (below).
        self.lab
            .sh_in(
                &m,
                "creating the kube-dns service",
                &format!("mkdir -p /etc/k8s && cat > {KUBE_DNS}.new && mv {KUBE_DNS}.new {KUBE_DNS} && {KCTL} apply -f {KUBE_DNS}"),
                Some(dns_service(&self.spec.service_cidr, &ip).into()),
            )
            .await?;
        Ok(())
    }

    /// Wait until the cluster DNS answers the `kubernetes` service's name through its Service
    /// address (the path pods take: kube-proxy's DNAT to the server) from every node: each
    /// node's own kube-proxy programs that DNAT, and a pod's first lookup must not race it.
    async fn wait_dns(&self) -> Result<(), LabError> {
        // The kube-dns Service has no selector: its Endpoints are ours. A controller manager whose
        // caches synced between the Service's creation and the Endpoints' takes them for leftovers
        // and deletes them once at its start (seen once: "endpoints kube-system/kube-dns:
        // deleted" 0.6 s after they were made, and no DNS for the 60 s after). Missing, they are
        // applied again while this waits.
        let answers = format!(
            "dig +short +time=1 +tries=1 @{} kubernetes.default.svc.{CLUSTER_DOMAIN} | grep -qx {}",
            dns_ip(&self.spec.service_cidr),
            first_host(&self.spec.service_cidr)
        );
        let master = self.master();
        let on_master = format!(
            "{answers} || {{ {KUBECTL_DIRECT} -n kube-system get endpoints kube-dns >/dev/null 2>&1 || {KUBECTL_DIRECT} apply -f {KUBE_DNS} >/dev/null 2>&1; false; }}"
        );
        self.until(&master, "waiting for the cluster DNS", &on_master, 60, CLUSTER_DNS).await?;
        try_join_all(
            self.lab
                .plan
                .nodes
                .iter()
                .filter(|n| n.name != master)
                .map(|n| self.until(&n.name, "waiting for kube-proxy to lead to the cluster DNS", &answers, 60, "kube-proxy")),
        )
        .await
        .map(|_| ())
    }

    async fn node_components(&self) -> Result<(), LabError> {
        try_join_all(self.lab.plan.nodes.iter().map(|n| async move {
            for (name, cmd) in node_flags(&self.spec, &n.name, &n.ip.to_string()) {
                self.supervise(&n.name, name, &cmd).await?;
            }
            Ok::<_, LabError>(())
        }))
        .await
        .map(|_| ())
    }

    /// node name -> pod CIDR as the plan gives it: the `i`th node the `i`th /24. The plan is
    /// known before a container starts, so the pod network needs no API to be set up.
    fn planned_pod_cidrs(&self) -> Vec<(String, String)> {
        self.lab.plan.nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), node_pod_cidr(&self.spec.pod_cidr, i))).collect()
    }

    /// Give each node its planned pod CIDR as it registers, until every node is registered with
    /// it: the field the controller manager's allocator would set (it is off, see
    /// `control_plane_flags`), set once, as Kubernetes allows. A node that holds another CIDR
    /// is an error: its pods would get addresses no route leads to.
    async fn register_pod_cidrs(&self, planned: &[(String, String)]) -> Result<(), LabError> {
        let n = planned.len();
        let start = Instant::now();
        // What kubectl said when it last failed: the cause, should the nodes never register.
        let mut last_error = String::new();
        loop {
            let out = self
                .lab
                .sh_raw(
                    &self.master(),
                    &format!("{KCTL} get nodes -o jsonpath='{{range .items[*]}}{{.metadata.name}} {{.spec.podCIDR}}{{\"\\n\"}}{{end}}'"),
                )
                .await?;
            if !out.ok() {
                last_error = format!("kubectl get nodes (exit {}): {}\n", out.code, out.stderr.trim());
            }
            let listed: Vec<(String, String)> =
                out.stdout.lines().filter_map(|l| l.split_once(' ')).map(|(a, b)| (a.to_string(), b.trim().to_string())).collect();
            let bare: Vec<String> = listed
                .iter()
                .filter(|(_, c)| !c.contains('/'))
                .filter_map(|(name, _)| {
                    let (_, want) = planned.iter().find(|(p, _)| p == name)?;
                    Some(format!("{KCTL} patch node {} -p {} >/dev/null", shq(name), shq(&pod_cidr_patch(want))))
                })
                .collect();
            if !bare.is_empty() {
                // Best effort: a node given another CIDR meanwhile refuses the patch (the field
                // is set once), and the check below names it.
                self.lab.sh_raw(&self.master(), &bare.join("; ")).await?;
            }
            let mut done = 0;
            for (name, c) in listed.iter().filter(|(_, c)| c.contains('/')) {
                match planned.iter().find(|(p, _)| p == name) {
                    Some((_, want)) if want == c => done += 1,
                    Some((_, want)) => {
                        return Err(LabError::Command {
                            what: "giving nodes their pod CIDRs".into(),
                            node: self.master(),
                            cmd: format!("kubectl patch node {name}"),
                            code: 1,
                            tail: format!("node {name} holds pod CIDR {c}, the plan (and its pod network) gives it {want}"),
                        })
                    }
                    None => {}
                }
            }
            if done == n {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(120) {
                let log = self
                    .lab
                    .sh_raw(&self.master(), "tail -n 12 /var/log/clusterlab/kubelet.log")
                    .await
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                return Err(LabError::Command {
                    what: "waiting for every node to register".into(),
                    node: self.master(),
                    cmd: "kubectl get nodes".into(),
                    code: 1,
                    tail: format!("{done} of {n} nodes registered with their pod CIDR\n{last_error}{}", tail(&log, 12)),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// CNI config and cross-node routes on every node (idempotent).
    async fn pod_network(&self, cidrs: &[(String, String)]) -> Result<(), LabError> {
        let cidr_of = |n: &str| cidrs.iter().find(|(x, _)| x == n).map(|(_, c)| c.clone()).unwrap_or_default();
        let all = &self.spec.pod_cidr;
        // Each node: its CNI config, forwarding on, and pods' traffic to the outside masqueraded.
        try_join_all(self.lab.plan.nodes.iter().map(|n| {
            let c = cidr_of(&n.name);
            let mut script = format!(
                "set -e; mkdir -p /etc/cni/net.d; cat > /etc/cni/net.d/10-clusterlab.conflist; sysctl -qw net.ipv4.ip_forward=1\n\
                 sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true\n\
                 iptables -w 10 -t nat -C POSTROUTING -s {all} ! -d {all} -j MASQUERADE 2>/dev/null || iptables -w 10 -t nat -A POSTROUTING -s {all} ! -d {all} -j MASQUERADE\n"
            );
            if self.spec.backend == Backend::Vxlan {
                // nolearning: forwarding entries are static, one per peer, as flannel's vxlan backend.
                script.push_str(&format!(
                    "ip link show vx0 >/dev/null 2>&1 || ip link add vx0 type vxlan id 1 dstport {p} local {ip} dev eth0 nolearning\n\
                     ip addr replace {gw}/32 dev vx0; ip link set vx0 up\n",
                    p = self.spec.vxlan_port,
                    ip = n.ip,
                    gw = net_zero(&c)
                ));
            }
            let conf = cni_config(&c);
            async move { self.lab.sh_in(&n.name, "setting up the pod network", &script, Some(conf.into())).await }
        }))
        .await?;
        let macs: Vec<String> = if self.spec.backend == Backend::Vxlan {
            try_join_all(self.lab.plan.nodes.iter().map(|n| async move {
                Ok::<_, LabError>(
                    self.lab.sh(&n.name, "reading the VXLAN address", "cat /sys/class/net/vx0/address").await?.stdout.trim().to_string(),
                )
            }))
            .await?
        } else {
            vec![]
        };
        try_join_all(self.lab.plan.nodes.iter().map(|n| {
            let mut script = String::from("set -e\n");
            for (i, p) in self.lab.plan.nodes.iter().enumerate() {
                if p.name == n.name {
                    continue;
                }
                let pc = cidr_of(&p.name);
                match self.spec.backend {
                    Backend::Vxlan => script.push_str(&format!(
                        "ip neigh replace {v} lladdr {mac} dev vx0 nud permanent\nbridge fdb replace {mac} dev vx0 dst {ip}\nip route replace {pc} via {v} dev vx0 onlink\n",
                        v = net_zero(&pc),
                        mac = macs[i],
                        ip = p.ip
                    )),
                    Backend::HostGw => script.push_str(&format!("ip route replace {pc} via {} dev eth0\n", p.ip)),
                }
            }
            async move { self.lab.sh(&n.name, "routing to peer pod networks", &script).await }
        }))
        .await?;
        Ok(())
    }

    async fn wait_ready(&self) -> Result<(), LabError> {
        let n = self.lab.plan.nodes.len();
        let cond = format!("[ \"$({KCTL} get nodes --no-headers 2>/dev/null | grep -c ' Ready')\" = {n} ]");
        self.until(&self.master(), "waiting for every node to be Ready", &cond, 120, "kubelet").await
    }

    /// Pods of a service that may still run: (name, node, ip, running and not terminating); a
    /// deleted pod none of whose containers runs is left out.
    async fn pods(&self, service: &str) -> Result<Vec<(String, String, String, bool)>, LabError> {
        let out = self
            .kctl(
                "listing pods",
                &format!("get pods -l app={} -o jsonpath='{{range .items[*]}}{{.metadata.name}} {{.spec.nodeName}} {{.status.podIP}} {{.status.phase}} {{.metadata.deletionTimestamp}} {{.status.containerStatuses[*].state.running.startedAt}}{{\"\\n\"}}{{end}}'", shq(service)),
            )
            .await?;
        Ok(out
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let get = |i: usize| f.get(i).copied().unwrap_or("").to_string();
                let running = get(3) == "Running" && get(4).is_empty() && !get(2).is_empty();
                // Deleted, and no container of it runs (as its kubelet reported): nothing of it
                // serves any more. Its object stays until the kubelet has reclaimed the pod's cgroup,
                // which here waits for the kubelet's container GC (every minute) to remove the
                // stopped sandbox: a scale-down took 6 to 59 s for that alone.
                let stopped = !get(4).is_empty() && f.get(5..).is_none_or(|rest| rest.iter().all(|x| x.is_empty()));
                (get(0), get(1), get(2), running, stopped)
            })
            .filter(|p| !p.0.is_empty() && !p.4)
            .map(|(name, node, ip, running, _)| (name, node, ip, running))
            .collect())
    }

    /// (node, container id) of the client pod on each node.
    async fn client_pods(&self) -> Result<Vec<(String, String)>, LabError> {
        let out = self
            .kctl("listing client pods", &format!("get pods -l app={PROBE} -o jsonpath='{{range .items[*]}}{{.spec.nodeName}} {{.status.containerStatuses[0].containerID}} {{.status.phase}}{{\"\\n\"}}{{end}}'"))
            .await?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[2] == "Running").then(|| (f[0].to_string(), f[1].trim_start_matches("containerd://").to_string()))
            })
            .collect())
    }

    async fn deploy_client_pods(&self) -> Result<(), LabError> {
        self.lab
            .sh_in(
                &self.master(),
                "deploying client pods",
                &format!("{KCTL} apply -f -"),
                Some(probe_daemonset(&self.lab.probe_image()).into()),
            )
            .await
            .map(|_| ())
    }

    async fn wait_client_pods(&self) -> Result<(), LabError> {
        let start = Instant::now();
        while self.client_pods().await?.len() < self.lab.plan.nodes.len() {
            if start.elapsed() > CONVERGE_TIMEOUT {
                return Err(LabError::Converge {
                    service: PROBE.into(),
                    secs: CONVERGE_TIMEOUT.as_secs(),
                    detail: "client pods not running on every node".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Workloads can be created once the namespace's `default` ServiceAccount exists: the
    /// admission plugin refuses pods without it, and the controller manager creates it at start.
    async fn wait_service_account(&self) -> Result<(), LabError> {
        let cond = format!("{KCTL} get serviceaccount default >/dev/null 2>&1");
        self.until(&self.master(), "waiting for the default service account", &cond, 60, "kube-controller-manager").await
    }

    /// Make `<service>-pinned` lead to `target` alone and wait until kube-proxy on the bench's
    /// node has its rules; returns (ClusterIP, node port). Done once per (service, pod, node).
    async fn pin(&self, bench: &Bench, target: &Replica, port: u16) -> Result<(String, u16), LabError> {
        let key = (bench.service.clone(), target.task.clone(), bench.from.clone());
        if let Some(v) = self.pinned.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(v);
        }
        let (svc, s) = (format!("{}-pinned", bench.service), shq(&bench.service));
        // The label moves: a pod pinned by an earlier bench (before a scale) must not stay an endpoint.
        self.kctl(
            "pinning a replica",
            &format!("label pods -l app={s} io.clusterlab/pinned- && {KCTL} label pod {} io.clusterlab/pinned={s}", shq(&target.task)),
        )
        .await?;
        self.lab
            .sh_in(
                &self.master(),
                "creating the pinned service",
                &format!("{KCTL} apply -f -"),
                Some(pinned_service(&bench.service, port).into()),
            )
            .await?;
        let fields = self
            .kctl("reading the pinned service", &format!("get service {svc} -o jsonpath='{{.spec.clusterIP}} {{.spec.ports[0].nodePort}}'"))
            .await?;
        let mut f = fields.split_whitespace();
        let (cip, np) = (f.next().unwrap_or("").to_string(), f.next().unwrap_or("").parse::<u16>().unwrap_or(0));
        // Ready when the bench node's kube-proxy has the service's DNAT rules.
        let cond = format!("iptables -w 10 -t nat -S KUBE-SERVICES | grep -q -- '-d {cip}/32' && iptables -w 10 -t nat -S KUBE-NODEPORTS | grep -q -- '--dport {np}'");
        self.until(&bench.from, "waiting for kube-proxy rules of the pinned service", &cond, 60, "kube-proxy").await?;
        if let Ok(mut m) = self.pinned.lock() {
            m.insert(key, (cip.clone(), np));
        }
        Ok((cip, np))
    }

    async fn converge(&self, service: &str, replicas: u32) -> Result<Vec<Replica>, LabError> {
        let start = Instant::now();
        loop {
            let pods = self.pods(service).await?;
            let running: Vec<&(String, String, String, bool)> = pods.iter().filter(|p| p.3).collect();
            let eps = self
                .kctl("listing endpoints", &format!("get endpoints {} -o jsonpath='{{.subsets[*].addresses[*].ip}}'", shq(service)))
                .await
                .unwrap_or_default();
            let eps: Vec<&str> = eps.split_whitespace().collect();
            let headless = self.lab.scenario.service(service).is_some_and(|s| s.endpoint_mode == EndpointMode::Dnsrr);
            if running.len() as u32 == replicas && pods.len() as u32 == replicas && eps.len() as u32 == replicas && headless {
                // Headless: no ClusterIP, so kube-proxy has nothing to program.
                return self.replicas(service).await;
            }
            if running.len() as u32 == replicas && pods.len() as u32 == replicas && eps.len() as u32 == replicas {
                // kube-proxy has programmed every endpoint on every node: a DNAT to each pod.
                let cond =
                    eps.iter().map(|ip| format!("echo \"$s\" | grep -q -- '--to-destination {ip}:'")).collect::<Vec<_>>().join(" && ");
                let script = format!("s=$(iptables-save -t nat 2>/dev/null); {}", if cond.is_empty() { "true".into() } else { cond });
                let ok = try_join_all(self.lab.plan.nodes.iter().map(|n| {
                    let script = script.clone();
                    async move { Ok::<_, LabError>(self.lab.sh_raw(&n.name, &script).await?.ok()) }
                }))
                .await?;
                if ok.iter().all(|x| *x) {
                    return self.replicas(service).await;
                }
            }
            if start.elapsed() > CONVERGE_TIMEOUT {
                let wide = self
                    .lab
                    .sh_raw(&self.master(), &format!("{KCTL} get pods -o wide; {KCTL} get events --sort-by=.lastTimestamp | tail -n 8"))
                    .await
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                return Err(LabError::Converge {
                    service: service.into(),
                    secs: CONVERGE_TIMEOUT.as_secs(),
                    detail: format!("{} of {replicas} pods running, {} endpoints\n{}", running.len(), eps.len(), tail(&wide, 16)),
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// `10.244.1.0/24` -> `10.244.1.0`: the address of a node's VXLAN device (flannel's convention).
fn net_zero(cidr: &str) -> String {
    cidr.split('/').next().unwrap_or("").to_string()
}

/// The `n`th address of a CIDR.
fn nth_host(cidr: &str, n: u32) -> String {
    let base: std::net::Ipv4Addr = net_zero(cidr).parse().unwrap_or(std::net::Ipv4Addr::new(10, 32, 0, 0));
    std::net::Ipv4Addr::from(u32::from(base) + n).to_string()
}

/// The first host of the service CIDR: the `kubernetes` service's ClusterIP.
fn first_host(cidr: &str) -> String {
    nth_host(cidr, 1)
}

/// The cluster DNS's ClusterIP: the tenth address of the service CIDR, by convention (kubeadm's).
pub fn dns_ip(service_cidr: &str) -> String {
    nth_host(service_cidr, 10)
}

impl Kube<'_> {
    async fn fetch_replicas(&self, service: &str) -> Result<Vec<Replica>, LabError> {
        let mut out: Vec<Replica> = self
            .pods(service)
            .await?
            .into_iter()
            .filter(|p| p.3)
            // A pod's hostname is its name: that is what the web image answers with.
            .map(|(name, node, ip, _)| Replica { task: name.clone(), node, identity: name, ip })
            .collect();
        out.sort_by(|a, b| a.node.cmp(&b.node).then(a.task.cmp(&b.task)));
        Ok(out)
    }

    async fn fetch_paths(&self, service: &str, client: ClientKind) -> Result<ServicePaths, LabError> {
        let out = self
            .kctl(
                "reading the service",
                &format!("get svc {} -o jsonpath='{{.spec.clusterIP}} {{.spec.ports[0].port}} {{.spec.ports[0].nodePort}}'", shq(service)),
            )
            .await?;
        let f: Vec<&str> = out.split_whitespace().collect();
        let (ip, port) = (f.first().copied().unwrap_or(""), f.get(1).copied().unwrap_or("80"));
        let node_port = f.get(2).and_then(|p| p.parse().ok());
        let mut notes = if ip == "None" { vec![] } else { vec![format!("{service}'s ClusterIP is {ip}:{port}")] };
        if let Some(np) = node_port {
            notes.push(format!("{service}'s node port is {np}"));
        }
        let fqdn = format!("{service}.default.svc.{CLUSTER_DOMAIN}");
        let (client, dns) = match client {
            // A node does not use the cluster DNS for itself: it asks the DNS's Service address.
            ClientKind::Node => {
                (Client::Node, DnsLookup { name: fqdn, server: Some(dns_ip(&self.spec.service_cidr)), expect: DnsExpect::Replicas })
            }
            ClientKind::Pod => {
                notes.push("requests start in the client pod on each entry node".into());
                let dns = DnsLookup { name: service.to_string(), server: None, expect: DnsExpect::Replicas };
                (Client::Pod { containers: self.client_pods().await? }, dns)
            }
        };
        let headless = ip == "None";
        let dns = if headless {
            notes.push(format!("{service} is headless: its name resolves to every ready pod"));
            dns
        } else {
            let expect = DnsExpect::Address { label: format!("ClusterIP {ip}"), ip: ip.to_string(), node: self.master() };
            DnsLookup { expect, ..dns }
        };
        let vip_addr = (!headless).then(|| format!("{ip}:{port}"));
        Ok(ServicePaths { client, vip: format!("{ip}:{port}"), vip_addr, node_port, notes, dns })
    }
}

impl Stack for Kube<'_> {
    async fn runtime(&self) -> Result<String, LabError> {
        let conf = containerd_config(&self.lab.image("pause"));
        // containerd waits for its configuration (start-node), then answers; kubelet needs a
        // machine id and /dev/kmsg (OOM events are then not reported).
        try_join_all(self.lab.plan.nodes.iter().map(|n| {
            let conf = conf.clone();
            async move {
                self.lab
                    .sh_in(&n.name, "configuring containerd", "set -e; mkdir -p /etc/containerd; cat > /etc/containerd/clusterlab.toml.new; mv /etc/containerd/clusterlab.toml.new /etc/containerd/clusterlab.toml; [ -s /etc/machine-id ] || tr -d - < /proc/sys/kernel/random/uuid > /etc/machine-id; [ -e /dev/kmsg ] || ln -s /dev/null /dev/kmsg", Some(conf.into()))
                    .await?;
                self.until(&n.name, "waiting for containerd", "ctr version >/dev/null 2>&1", 60, "containerd").await
            }
        }))
        .await
        .at(InstallStage::Runtime)?;
        Ok("containerd answers on every node".into())
    }

    async fn prepare(&self, images: &[String], progress: &mut (dyn FnMut(String) + Send)) -> Result<(), LabError> {
        let pause = self.lab.image("pause");
        let mut all = vec![pause];
        all.extend(images.iter().cloned());
        for image in &all {
            let data = self.lab.engine.save_image(image).await.at(InstallStage::Images)?;
            try_join_all(self.lab.plan.nodes.iter().map(|n| {
                let data = data.clone();
                async move {
                    let have = self
                        .lab
                        .sh_raw(&n.name, &format!("ctr -n k8s.io images ls -q | grep -qx {}", shq(&format!("docker.io/{image}"))))
                        .await?;
                    if have.ok() {
                        return Ok(());
                    }
                    self.lab
                        .sh_in(
                            &n.name,
                            &format!("importing {image} into containerd"),
                            "ctr -n k8s.io images import - >/dev/null",
                            Some(data),
                        )
                        .await
                        .map(|_| ())
                }
            }))
            .await
            .at(InstallStage::Images)?;
        }
        progress(format!("imported {}", all.join(", ")));
        Ok(())
    }

    async fn learn(&self) -> Result<(), LabError> {
        // Nothing: every Kubernetes check is decided from the scenario.
        Ok(())
    }

    async fn install(&self, progress: &mut (dyn FnMut(String) + Send)) -> Result<(), LabError> {
        // The plan gives every node its pod CIDR, so the pod network (CNI config, VXLAN device,
        // routes) is in place while the control plane starts: kubelet finds it at its start.
        let planned = self.planned_pod_cidrs();
        let (cp, net) = tokio::join!(self.control_plane(), self.pod_network(&planned));
        net.at(InstallStage::PodNetwork)?;
        let backend = match self.spec.backend {
            Backend::Vxlan => format!("vxlan, UDP {}", self.spec.vxlan_port),
            Backend::HostGw => "host-gw".into(),
        };
        progress(format!("pod network ({backend}): {}", planned.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", ")));
        cp.at(InstallStage::ControlPlane)?;
        progress(format!("control plane up on {}, kubectl reaches it", self.master()));
        self.node_components().await.at(InstallStage::NodeAgents)?;
        let sc = &self.lab.scenario;
        let pod_clients = sc.steps.iter().any(|st| matches!(st, crate::model::Step::Check(c) if c.client == ClientKind::Pod))
            || sc.streams.iter().any(|s| s.client == ClientKind::Pod);
        // While the nodes register (each given its pod CIDR) and become Ready, the cluster DNS
        // starts and the controller manager makes the namespace's service account.
        let nodes = async {
            self.register_pod_cidrs(&planned).await?;
            self.wait_ready().await
        };
        let dns = async {
            self.cluster_dns().await.at(InstallStage::ClusterDns)?;
            self.wait_service_account().await.at(InstallStage::Workloads)
        };
        let (ready, dns) = tokio::join!(nodes, dns);
        ready.at(InstallStage::NodesReady)?;
        progress(format!("{} nodes Ready with their pod CIDRs", planned.len()));
        dns?;
        // Workloads after the nodes are Ready, so the scheduler spreads them over every node
        // (a pod created earlier lands on the first Ready node); their pods start while the
        // cluster DNS's Service gets its rules.
        for s in &self.lab.scenario.services {
            let image = self.lab.workload(&s.image);
            self.lab
                .sh_in(&self.master(), &format!("deploying {}", s.name), &format!("{KCTL} apply -f -"), Some(manifests(s, &image).into()))
                .await
                .at(InstallStage::Workloads)?;
        }
        if pod_clients {
            self.deploy_client_pods().await.at(InstallStage::Workloads)?;
        }
        self.wait_dns().await.at(InstallStage::ClusterDns)?;
        progress(format!("cluster DNS answers at {} ({CLUSTER_DOMAIN})", dns_ip(&self.spec.service_cidr)));
        let workloads = async {
            if pod_clients {
                self.wait_client_pods().await?;
                progress("a client pod runs on every node".into());
            }
            for s in &self.lab.scenario.services {
                let rs = self.converge(&s.name, s.replicas).await?;
                // Remember where it runs and its ClusterIP, for checks while the API is down (or
                // behind a stray proxy), from nodes and, where steps use them, from client pods.
                self.paths(&s.name, ClientKind::Node).await?;
                if pod_clients {
                    self.paths(&s.name, ClientKind::Pod).await?;
                }
                progress(format!("service {} ready: {}", s.name, placement(&rs)));
            }
            Ok::<_, LabError>(())
        };
        workloads.await.at(InstallStage::Workloads)
    }

    async fn scale(&self, service: &str, replicas: u32) -> Result<Vec<Replica>, LabError> {
        self.kctl(&format!("scaling {service}"), &format!("scale deployment {} --replicas={replicas}", shq(service))).await?;
        self.converge(service, replicas).await
    }

    async fn replicas(&self, service: &str) -> Result<Vec<Replica>, LabError> {
        match self.fetch_replicas(service).await {
            Ok(r) => {
                if let Ok(mut seen) = self.seen.lock() {
                    for ((svc, _), v) in seen.iter_mut() {
                        if svc == service {
                            v.0 = r.clone();
                        }
                    }
                }
                Ok(r)
            }
            // The API is down (e.g. a kill fault): the pods are where they were.
            Err(e) => self.seen.lock().ok().and_then(|s| s.iter().find(|((svc, _), _)| svc == service).map(|(_, v)| v.0.clone())).ok_or(e),
        }
    }

    async fn paths(&self, service: &str, client: ClientKind) -> Result<ServicePaths, LabError> {
        // Per client kind: a pod client's paths name the client pods, a node's do not.
        let key = (service.to_string(), client == ClientKind::Pod);
        match self.fetch_paths(service, client).await {
            Ok(p) => {
                if let Ok(r) = self.fetch_replicas(service).await {
                    if let Ok(mut seen) = self.seen.lock() {
                        seen.insert(key, (r, p.clone()));
                    }
                }
                Ok(p)
            }
            Err(e) => match self.seen.lock().ok().and_then(|s| s.get(&key).map(|x| x.1.clone())) {
                Some(mut p) => {
                    p.notes.push("the API does not answer: using the pods and ClusterIP seen last".into());
                    Ok(p)
                }
                None => Err(e),
            },
        }
    }

    fn unsupported(&self, _check: &Check) -> Option<String> {
        // Every check kind works here (a vip check on a headless service is refused by the model).
        None
    }

    async fn bench_path(&self, bench: &Bench, path: PathKind, target: &Replica) -> Result<PathOffer, LabError> {
        let port = bench.kind.server_port();
        if path == PathKind::Direct {
            let net = match self.spec.backend {
                Backend::Vxlan => "the vxlan pod network",
                Backend::HostGw => "the host-gw pod network",
            };
            let how = format!("pod address {}:{port} of {}, across {net}", target.ip, target.label());
            return Ok(Ok(PathEnd { client: Client::Node, host: target.ip.clone(), port, how }));
        }
        // vip and node-port: a Service with the target pod as its only endpoint.
        let svc = format!("{}-pinned", bench.service);
        let (cip, np) = self.pin(bench, target, port).await?;
        Ok(Ok(match path {
            PathKind::Vip => PathEnd {
                client: Client::Node,
                host: cip.clone(),
                port,
                how: format!("ClusterIP {cip}:{port} of {svc} (one endpoint: {}), through kube-proxy's DNAT", target.label()),
            },
            _ => {
                let ip = self.lab.node_ip(&target.node);
                PathEnd {
                    client: Client::Node,
                    host: ip.clone(),
                    port: np,
                    how: format!("node port {ip}:{np} of {svc} on {}, to {}", target.node, target.label()),
                }
            }
        }))
    }

    /// `api`: from each entry node, the API answers (/readyz through kubectl, as a user's tools
    /// would reach it) and reports every node Ready.
    async fn observe_special(&self, check: &Check) -> Result<Observation, LabError> {
        let nodes: Vec<String> = self.lab.node_names();
        let mut cols = vec![Target { label: "api /readyz".into(), node: self.master() }];
        cols.extend(nodes.iter().map(|n| Target { label: format!("{n} Ready"), node: n.clone() }));
        let script = format!(
            "{KCTL} get --raw /readyz --request-timeout={t}s 2>&1 | head -c 300; echo; echo '#nodes'; \
             {KCTL} get nodes --request-timeout={t}s -o jsonpath='{{range .items[*]}}{{.metadata.name}} {{.status.conditions[?(@.type==\"Ready\")].status}}{{\"\\n\"}}{{end}}' 2>&1 | head -c 2000",
            t = check.timeout.as_secs().max(1)
        );
        let rows = try_join_all(check.from.iter().map(|entry| {
            let script = script.clone();
            async move { Ok::<_, LabError>(self.lab.sh_raw(entry, &script).await?.stdout) }
        }))
        .await?;
        let mut obs = Observation { rows: check.from.clone(), cols, ..Default::default() };
        for out in rows {
            let (readyz, listing) = out.split_once("#nodes").unwrap_or((&out, ""));
            let readyz = readyz.trim();
            let mut cells = vec![if readyz == "ok" {
                Cell { hits: 1, tries: 1, ..Default::default() }
            } else {
                Cell {
                    hits: 0,
                    tries: 1,
                    detail: readyz.lines().next().unwrap_or("no answer").chars().take(100).collect(),
                    ..Default::default()
                }
            }];
            for n in &nodes {
                let ready = listing.lines().any(|l| l.trim() == format!("{n} True"));
                cells.push(Cell {
                    hits: ready as u32,
                    tries: 1,
                    detail: if ready { String::new() } else { "not Ready (or API unreachable)".into() },
                    ..Default::default()
                });
            }
            obs.sent.push(cells.len() as u32);
            obs.cells.push(cells);
            obs.unanswered.push(0);
        }
        Ok(obs)
    }
}

/// The images a Kubernetes lab needs besides the workloads.
pub fn extra_images(s: &Scenario) -> Vec<&'static str> {
    if s.kube.is_some() {
        vec!["pause"]
    } else {
        vec![]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(backend: Backend) -> KubeSpec {
        KubeSpec {
            bundle: BundleRef::Version("1.20.2".into()),
            backend,
            vxlan_port: 8472,
            pod_cidr: "10.244.0.0/16".into(),
            service_cidr: "10.32.0.0/16".into(),
        }
    }

    #[test]
    fn generated_configs() {
        insta::assert_snapshot!("kubeconfig", kubeconfig("10.213.0.11", "Q0EK"));
        insta::assert_snapshot!("cni", cni_config("10.244.1.0/24"));
        insta::assert_snapshot!("containerd", containerd_config("clusterlab/pause:0123"));
    }

    #[test]
    fn component_flags() {
        let s = spec(Backend::Vxlan);
        let all: Vec<String> = control_plane_flags(&s, "10.213.0.11")
            .into_iter()
            .chain(node_flags(&s, "worker-1", "10.213.0.12"))
            .map(|(n, c)| format!("{n}: {c}"))
            .collect();
        insta::assert_snapshot!(all.join("\n"));
    }

    #[test]
    fn manifests_for_both_service_types() {
        let mut svc = Service {
            name: "web".into(),
            image: "web".into(),
            replicas: 2,
            network: "labnet".into(),
            publish: vec![],
            endpoint_mode: Default::default(),
            service_type: ServiceType::NodePort,
            node_port: Some(30062),
            port: 80,
            identity: crate::model::Identity::Web,
        };
        let pretty = |m: String| serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&m).unwrap()).unwrap();
        insta::assert_snapshot!("manifest-node-port", pretty(manifests(&svc, "clusterlab/web:abc")));
        svc.service_type = ServiceType::ClusterIp;
        svc.node_port = None;
        let m = manifests(&svc, "clusterlab/web:abc");
        assert!(m.contains(r#""type":"ClusterIP""#) && !m.contains("nodePort"));
        // A value with quotes stays one JSON string: data, never manifest text.
        let odd = manifests(&svc, "img\"\nkind: Secret");
        let v: serde_json::Value = serde_json::from_str(&odd).unwrap();
        assert_eq!(v["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"], "img\"\nkind: Secret");
        // dnsrr: a headless Service; a vip-mode one keeps its ClusterIP.
        assert!(!m.contains("clusterIP"));
        svc.endpoint_mode = EndpointMode::Dnsrr;
        let v: serde_json::Value = serde_json::from_str(&manifests(&svc, "clusterlab/web:abc")).unwrap();
        assert_eq!(v["items"][1]["spec"]["clusterIP"], "None");
    }

    #[test]
    fn nodes_get_the_planned_pod_cidrs_in_order() {
        assert_eq!(node_pod_cidr("10.244.0.0/16", 0), "10.244.0.0/24");
        assert_eq!(node_pod_cidr("10.244.0.0/16", 11), "10.244.11.0/24");
        let v: serde_json::Value = serde_json::from_str(&pod_cidr_patch(&node_pod_cidr("10.244.0.0/16", 1))).unwrap();
        assert_eq!(v["spec"]["podCIDR"], "10.244.1.0/24");
        assert_eq!(v["spec"]["podCIDRs"][0], "10.244.1.0/24");
    }

    #[test]
    fn the_cluster_dns_service_leads_to_the_master() {
        let pretty = |m: String| serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&m).unwrap()).unwrap();
        insta::assert_snapshot!("kube-dns", pretty(dns_service("10.32.0.0/16", "10.213.0.11")));
        assert_eq!(dns_ip("10.96.0.0/12"), "10.96.0.10");
    }

    #[test]
    fn addresses() {
        assert_eq!(first_host("10.32.0.0/16"), "10.32.0.1");
        assert_eq!(net_zero("10.244.3.0/24"), "10.244.3.0");
    }

    #[test]
    fn missing_bundle_names_what_to_run() {
        let mut s = spec(Backend::Vxlan);
        s.bundle = BundleRef::Dir("./no-such-bundle".into());
        let e = resolve_bundle(&s, "/tmp/x.yaml").unwrap_err().to_string();
        assert!(e.contains("lacks kube-apiserver"), "{e}");
        s.bundle = BundleRef::Version("0.0.1".into());
        let e = resolve_bundle(&s, "/tmp/x.yaml").unwrap_err().to_string();
        assert!(e.contains("VERSION=0.0.1 images/kubernetes/build-bundle.sh"), "{e}");
    }
}
