//! Doctor: what this host can do, measured, and what it means for each check kind. The run
//! uses the same facts (inside a node), so `doctor` and a run never disagree.

use crate::facts::HostFacts;
use crate::images::{self, BaseSource};
use crate::provider::{Engine, NestedMode};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Feature {
    pub name: &'static str,
    pub config: &'static str,
    /// y (built in), m (module), n (absent), ? (unknown)
    pub state: String,
    pub needed_for: &'static str,
}

const FEATURES: &[(&str, &str, &str)] = &[
    ("VXLAN", "CONFIG_VXLAN", "swarm overlay networks (replicas, dns checks)"),
    ("IP_VS", "CONFIG_IP_VS", "swarm VIP and routing mesh (vip, node-port checks on swarm)"),
    ("bridge netfilter", "CONFIG_BRIDGE_NETFILTER", "iptables on bridged container traffic"),
    ("xt_statistic", "CONFIG_NETFILTER_XT_MATCH_STATISTIC", "loss faults (random drop)"),
    ("xt_comment", "CONFIG_NETFILTER_XT_MATCH_COMMENT", "labelled fault rules"),
    ("nf_tables", "CONFIG_NF_TABLES", "iptables-nft inside nodes"),
    ("netem", "CONFIG_NET_SCH_NETEM", "not needed: loss iptables, rate HTB, delay and corrupt NFQUEUE, duplicate TEE"),
    ("xt_NFQUEUE", "CONFIG_NETFILTER_XT_TARGET_NFQUEUE", "delay and corrupt faults (a userspace stage)"),
    ("xt_TEE", "CONFIG_NETFILTER_XT_TARGET_TEE", "duplicate faults (a copy sent to the receiver)"),
    ("HTB", "CONFIG_NET_SCH_HTB", "rate faults (a slow link)"),
    ("xt_CLASSIFY", "CONFIG_NETFILTER_XT_TARGET_CLASSIFY", "rate faults (which packets take the slow class)"),
];

/// Kernel features from /proc/config.gz; a loaded module in /sys/module counts as present.
pub fn kernel_features() -> Vec<Feature> {
    let config = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string());
    FEATURES
        .iter()
        .map(|(name, key, needed_for)| {
            let state = match &config {
                Some(c) => {
                    let prefix = format!("{key}=");
                    c.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.to_string()).unwrap_or_else(|| "n".into())
                }
                None => "?".into(),
            };
            Feature { name, config: key, state, needed_for }
        })
        .collect()
}

pub fn has(features: &[Feature], name: &str) -> Option<bool> {
    features.iter().find(|f| f.name == name).map(|f| match f.state.as_str() {
        "y" | "m" => Some(true),
        "n" => Some(false),
        _ => None,
    })?
}

/// What checks and faults can pass here, from the measured facts (VXLAN from the kernel's
/// configuration: the overlay itself shows whether it works when a lab runs).
fn verdicts(f: &HostFacts, vxlan: Option<bool>) -> String {
    use crate::model::{Direction, FaultSpec, Match, Protocol};
    let yes_no = |b: bool| if b { "yes" } else { "no " };
    let mut out = String::from("What checks and faults can pass here:\n");
    let vx = match vxlan {
        Some(true) => "yes",
        Some(false) => "no ",
        None => "?  ",
    };
    out.push_str(&format!("  {vx} swarm replicas, dns (overlay = VXLAN, from the kernel configuration)\n"));
    out.push_str(&format!(
        "  {} swarm vip, node-port (IPVS){}\n",
        yes_no(f.ipvs.is_ok()),
        if f.ipvs.is_err() { ": reported unsupported, never passed" } else { "" }
    ));
    out.push_str("  yes Kubernetes ClusterIP and NodePort (kube-proxy's iptables mode needs no IPVS)\n");
    let m = Match { protocol: Protocol::All, port: None, direction: Direction::In, peers: vec![] };
    let drop = FaultSpec::Drop { nodes: vec![], matches: m.clone() };
    let m_rate = m.clone();
    let loss = FaultSpec::Loss { nodes: vec![], matches: m, percent: 1.0 };
    let mtu = FaultSpec::Mtu { nodes: vec![], mtu: 1200 };
    let rate = FaultSpec::Rate { nodes: vec![], matches: m_rate.clone(), bits: 1_000_000, burst: 3028 };
    let dup = FaultSpec::Duplicate { nodes: vec![], matches: m_rate.clone(), percent: 1.0 };
    let m_corrupt = m_rate.clone();
    let delay = FaultSpec::Delay {
        nodes: vec![],
        matches: m_rate,
        delay_us: 1_000,
        jitter_us: 0,
        distribution: crate::model::Distribution::Uniform,
        reorder: 0.0,
        gap: 1,
    };
    let corrupt = FaultSpec::Corrupt { nodes: vec![], matches: m_corrupt, percent: 1.0 };
    for (what, spec) in [
        ("faults drop, partition", &drop),
        ("fault loss", &loss),
        ("fault mtu", &mtu),
        ("fault rate (htb)", &rate),
        ("fault delay (nfqueue and a userspace stage)", &delay),
        ("fault duplicate (tee)", &dup),
        ("fault corrupt (nfqueue and a userspace stage)", &corrupt),
    ] {
        match f.cannot(spec) {
            None => out.push_str(&format!("  yes {what}\n")),
            Some(why) => out.push_str(&format!("  no  {what}: {why}\n")),
        }
    }
    out
}

pub async fn report(engine: Option<&Engine>) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    let k = kernel_features();
    out.push_str(&format!(
        "Kernel {} (configuration from /proc/config.gz)\n",
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim()
    ));
    for f in &k {
        let mark = match f.state.as_str() {
            "y" | "m" => "✓",
            "n" => "✗",
            _ => "?",
        };
        out.push_str(&format!("  {mark} {:<17} {:<40} {}\n", f.name, format!("{}={}", f.config, f.state), f.needed_for));
    }
    match engine {
        None => {
            ok = false;
            out.push_str("Engine: not reachable (is dockerd running? `docker info` should answer)\n");
        }
        Some(e) => {
            match e.docker.version().await {
                Ok(v) => {
                    out.push_str(&format!("Engine: Docker {} (API {})\n", v.version.unwrap_or_default(), v.api_version.unwrap_or_default()))
                }
                Err(err) => out.push_str(&format!("Engine: version unknown ({err})\n")),
            }
            if let Ok(i) = e.docker.info().await {
                out.push_str(&format!(
                    "  storage driver {}, cgroup driver {}, cgroup version {}, {} CPUs, {:.1} GiB\n",
                    i.driver.unwrap_or_default(),
                    i.cgroup_driver.map(|d| format!("{d:?}").to_lowercase()).unwrap_or_default(),
                    i.cgroup_version.map(|d| format!("{d:?}").trim_start_matches(['V', '_']).to_string()).unwrap_or_default(),
                    i.ncpu.unwrap_or(0),
                    i.mem_total.unwrap_or(0) as f64 / (1u64 << 30) as f64
                ));
                if let Some(root) = i.docker_root_dir {
                    if let Ok(o) = std::process::Command::new("df").args(["-Pk", &root]).output() {
                        let text = String::from_utf8_lossy(&o.stdout);
                        if let Some(avail) =
                            text.lines().nth(1).and_then(|l| l.split_whitespace().nth(3)).and_then(|v| v.parse::<u64>().ok())
                        {
                            let gib = avail as f64 / (1u64 << 20) as f64;
                            out.push_str(&format!(
                                "  free disk under {root}: {gib:.1} GiB{}\n",
                                if gib < 5.0 { " (low: images and node volumes need ~5 GiB)" } else { "" }
                            ));
                        }
                    }
                }
            }
            let base = BaseSource::default();
            let mut candidate = None;
            for n in ["node", "web", "base"] {
                let t = images::tag(n, &base);
                if e.image_id(&t).await.is_some() {
                    candidate = Some(t);
                    break;
                }
            }
            let mut facts = None;
            match candidate {
                None => out.push_str("  nested engines: unknown until images exist (`clusterlab images build`)\n"),
                Some(img) => {
                    let labels = std::collections::HashMap::from([(crate::plan::LABEL_LAB.to_string(), "doctor".to_string())]);
                    match e.detect_nested_mode(&img, labels.clone()).await {
                        Ok(mode) => {
                            out.push_str(match mode {
                                NestedMode::Privileged => "  nested engines: --privileged works\n",
                                NestedMode::CapSet => "  nested engines: --privileged is refused (missing capability); nodes use the cap set (all caps but SYS_RESOURCE, seccomp/apparmor unconfined)\n",
                            });
                            // The same probe a run makes in its first node, in a throwaway node.
                            match e.run_as_node(&img, mode, labels, crate::facts::SCRIPT).await {
                                Ok(text) => facts = Some(HostFacts::parse(&text)),
                                Err(err) => {
                                    ok = false;
                                    out.push_str(&format!("  measuring what a node can do failed: {err}\n"));
                                }
                            }
                        }
                        Err(err) => {
                            ok = false;
                            out.push_str(&format!("  nested engines: cannot start a container: {err}\n"))
                        }
                    }
                }
            }
            match &facts {
                Some(f) => {
                    out.push_str("Measured in a node (the same probe every run makes):\n");
                    for l in f.lines() {
                        out.push_str(&format!("  {l}\n"));
                    }
                    out.push_str(&verdicts(f, has(&k, "VXLAN")));
                }
                None => out.push_str("What checks can pass here: unknown until a node can be started and measured\n"),
            }
        }
    }
    (out, ok)
}
