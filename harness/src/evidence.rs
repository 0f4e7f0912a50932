//! Evidence: when a run fails, what the nodes looked like, written to a directory before the lab
//! is torn down — per-node component logs, iptables rules, links with counters, routes, the
//! stack's own view, and the resolved scenario. The directory is printed and listed in reports.

use crate::lab::Lab;
use crate::model::StackKind;
use futures_util::future::join_all;
use std::path::PathBuf;

/// `$CLUSTERLAB_EVIDENCE_DIR/<lab>-<run>` (default: the system temp dir's `clusterlab/`).
pub fn dir_for(lab: &str, run_id: &str) -> PathBuf {
    std::env::var_os("CLUSTERLAB_EVIDENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("clusterlab"))
        .join(format!("{lab}-{run_id}"))
}

/// Per node: (file name, command) run in the node's own namespaces.
const NODE_FILES: &[(&str, &str)] = &[
    ("logs.txt", "for f in /var/log/clusterlab/*.log; do echo \"==> $f <==\"; tail -n 400 \"$f\"; done"),
    ("iptables-save.txt", "iptables-save; echo; iptables -w 10 -L -v -x -n"),
    ("links.txt", "ip -s -d link"),
    (
        "addresses-routes.txt",
        "ip addr; echo; ip route; echo; ip neigh; echo; bridge fdb show 2>/dev/null | grep -v permanent | head -n 200",
    ),
];

/// Write the evidence of one moment (`at`: `check-<name>` while a failed check's faults are
/// still applied, `end` when the run stopped) under the run's directory; returns that
/// directory. Best effort: a command that fails leaves its error in the file instead of
/// stopping the rest.
pub async fn collect(lab: &Lab, at: &str) -> std::io::Result<PathBuf> {
    let root = dir_for(&lab.plan.lab, &lab.plan.run_id);
    let dir = root.join(at);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(root.join("scenario.json"), serde_json::to_string_pretty(&lab.scenario).unwrap_or_default())?;
    std::fs::write(root.join("plan.json"), serde_json::to_string_pretty(&lab.plan).unwrap_or_default())?;
    let jobs = lab.plan.nodes.iter().flat_map(|n| NODE_FILES.iter().map(move |(file, cmd)| (n.name.clone(), *file, *cmd)));
    let outs = join_all(jobs.map(|(node, file, cmd)| async move {
        let text = match lab.sh_raw(&node, cmd).await {
            Ok(o) => format!("{}{}", o.stdout, o.stderr),
            Err(e) => format!("could not collect: {e}"),
        };
        (node, file, text)
    }))
    .await;
    for (node, file, text) in outs {
        let d = dir.join(&node);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(file), text)?;
    }
    let leader = lab.plan.leader().name.clone();
    let state = match lab.scenario.stack {
        StackKind::Swarm => {
            "docker node ls; echo; for s in $(docker service ls -q); do docker service ps --no-trunc $s; echo; done; docker network ls"
                .to_string()
        }
        StackKind::Kubernetes => {
            let k = crate::stack::kube::KUBECTL_DIRECT;
            format!("{k} get nodes,pods,services,endpoints -A -o wide; echo; {k} get events -A --sort-by=.lastTimestamp | tail -n 60")
        }
    };
    let text = match lab.sh_raw(&leader, &state).await {
        Ok(o) => format!("{}{}", o.stdout, o.stderr),
        Err(e) => format!("could not collect: {e}"),
    };
    std::fs::write(dir.join("stack-state.txt"), text)?;
    Ok(dir)
}
