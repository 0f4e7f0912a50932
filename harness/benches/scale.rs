//! `cargo bench --bench scale`: labs of growing size, one after the other in one run — swarm
//! with 1, 3, 5, 8 and 12 nodes, Kubernetes with 1, 3, 5 and 8 — each brought up (timed, with
//! its steps), left idle, its nodes' memory read, its check run (every node to every replica),
//! and torn down (timed). Prints the scale table and `up`'s steps per lab, and writes
//! `target/scale/scale.json` and `target/scale/scale.html` (the curve as a plot).
//!
//! Sizes: `CLUSTERLAB_SCALE_SWARM=1,3,5` and `CLUSTERLAB_SCALE_KUBE=1,3` (empty: skip the stack);
//! idle time before memory is read: `CLUSTERLAB_SCALE_IDLE=10` (seconds). After each swarm lab,
//! the hand-run script brings up the same size (`scripts/swarm-baseline-nodes.sh`; its seconds are
//! the table's `script s`); `CLUSTERLAB_SCALE_SCRIPT=off` skips it. Kubernetes needs the
//! bundle (`clusterlab bundle`). Exits 1 when a lab failed to come up or its check failed.

use clusterlab::bench::scale::{scenario_text, step_table, table, ScalePoint};
use clusterlab::plan::LABEL_NODE;
use clusterlab::provider::Engine;
use clusterlab::Lab;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn sizes(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var).unwrap_or_else(|_| default.into()).split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

/// Each node's memory in use (MiB), in the scenario's node order.
async fn memory(engine: &Engine, lab: &Lab) -> Vec<(String, f64)> {
    let containers = engine.lab_containers(Some(lab.name()), None).await.unwrap_or_default();
    let mut out = Vec::new();
    for node in &lab.scenario().nodes {
        let c = containers.iter().find(|c| c.labels.as_ref().and_then(|l| l.get(LABEL_NODE)) == Some(&node.name));
        if let Some(id) = c.and_then(|c| c.id.clone()) {
            match engine.memory_in_use(&id).await {
                Ok(b) => out.push((node.name.clone(), b as f64 / 1048576.0)),
                Err(e) => eprintln!("   memory of {}: {e}", node.name),
            }
        }
    }
    out
}

async fn one(engine: &Engine, stack: &str, n: usize, idle: Duration) -> ScalePoint {
    let file = format!("scale-{stack}-{n}.yaml");
    let scenario = clusterlab::model::parse_str(&scenario_text(stack, n), &file).expect("generated scenarios are valid (unit-tested)");
    let failed = |up_secs: f64, why: String| ScalePoint {
        stack: stack.into(),
        nodes: n,
        up_secs,
        down_secs: 0.0,
        steps: vec![],
        memory_mib: vec![],
        check: why,
        paths_after_secs: None,
        passed: false,
        script_secs: None,
    };
    println!("• {stack}, {n} node(s): up …");
    let t0 = Instant::now();
    let mut lab = match Lab::up(&scenario).await {
        Ok(l) => l,
        Err(e) => {
            println!("   up failed after {:.1} s: {e}", t0.elapsed().as_secs_f64());
            return failed(t0.elapsed().as_secs_f64(), format!("up failed: {e}"));
        }
    };
    let up_secs = t0.elapsed().as_secs_f64();
    let steps: Vec<(String, f64)> =
        lab.report().steps.iter().map(|s| (s.title.split('\t').next().unwrap_or(&s.title).to_string(), s.secs)).collect();
    println!("   up in {up_secs:.1} s; idle {} s, then memory and the check", idle.as_secs());
    tokio::time::sleep(idle).await;
    let memory_mib = memory(engine, &lab).await;
    let (check, passed, paths_after_secs) = match lab.check("every-node-every-replica").await {
        Ok(c) => {
            // Which pairs did not answer, and what their requests saw: a failed size says where.
            let wrong: Vec<String> = c.misses().iter().map(|(from, to, cell)| format!("{from} → {}: {}", to.label, cell.detail)).collect();
            let summary = if wrong.is_empty() { c.summary.clone() } else { format!("{} ({})", c.summary, wrong.join("; ")) };
            (summary, c.passed(), c.held_after_secs.filter(|_| c.passed()))
        }
        Err(e) => (format!("check failed to run: {e}"), false, None),
    };
    let after = paths_after_secs.map(|s| format!(" (every path after {s:.1} s)")).unwrap_or_default();
    println!("   {} {check}{after}", if passed { "✓" } else { "✗" });
    let t1 = Instant::now();
    let down = lab.down().await;
    let down_secs = t1.elapsed().as_secs_f64();
    if let Err(e) = down {
        return ScalePoint { check: format!("{check}; teardown failed: {e}"), ..failed(up_secs, String::new()) };
    }
    println!("   down in {down_secs:.1} s");
    ScalePoint { stack: stack.into(), nodes: n, up_secs, down_secs, steps, memory_mib, check, paths_after_secs, passed, script_secs: None }
}

/// How long the hand-run script may take before it is killed (its own waits give up at 300 s).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(360);

/// The hand-run swarm script for `n` nodes (`scripts/swarm-baseline-nodes.sh`, the 3-node
/// baseline's docker commands for any size) on the images the labs use: its seconds to a
/// converged service, None (and why, printed) when it did not get there.
async fn hand_run(n: usize) -> Option<f64> {
    let base = clusterlab::images::BaseSource::default();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/swarm-baseline-nodes.sh");
    println!("• swarm, {n} node(s), the hand-run script …");
    let child = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(n.to_string())
        .env("NODE_IMAGE", clusterlab::images::tag("node", &base))
        .env("WEB_IMAGE", clusterlab::images::tag("web", &base))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // The script removes its nodes on every exit (Ctrl-C reaches it too, in the same
        // process group) and gives up waiting after 300 s; a docker command that hangs is not
        // bounded by it, so past SCRIPT_DEADLINE it is killed and what it made removed here.
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            println!("   cannot run {}: {e}", script.display());
            return None;
        }
    };
    // The script names its network and nodes after its pid (`bl$$`, `bl$$-n1` …).
    let net = child.id().map(|pid| format!("bl{pid}"));
    let out = match tokio::time::timeout(SCRIPT_DEADLINE, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            println!("   the script's output could not be read: {e}");
            return None;
        }
        Err(_) => {
            let left = net.map(|net| remove_script_objects(&net, n)).unwrap_or_default();
            println!("   the script did not end within {} s: killed{left}", SCRIPT_DEADLINE.as_secs());
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let secs = text.lines().find_map(|l| l.strip_prefix("service-converged ")).and_then(|v| v.trim().parse().ok());
    match secs {
        Some(s) if out.status.success() => {
            println!("   converged in {s:.1} s ({})", text.lines().collect::<Vec<_>>().join(", "));
            Some(s)
        }
        _ => {
            println!("   the script failed ({}):\n{text}{}", out.status, String::from_utf8_lossy(&out.stderr));
            None
        }
    }
}

/// Remove the network `net` and its nodes `net-n1` … `net-nN`, which a killed hand-run script
/// left (they carry no lab's labels, so `clusterlab clean` would not find them); says what
/// could not be removed.
fn remove_script_objects(net: &str, n: usize) -> String {
    let nodes: Vec<String> = (1..=n).map(|i| format!("{net}-n{i}")).collect();
    let rm = std::process::Command::new("docker").args(["rm", "-f", "-v"]).args(&nodes).output();
    let rm_net = std::process::Command::new("docker").args(["network", "rm", net]).output();
    let ok = |o: &std::io::Result<std::process::Output>| o.as_ref().is_ok_and(|o| o.status.success());
    if ok(&rm) && ok(&rm_net) {
        format!(", its network {net} and {n} node(s) removed")
    } else {
        format!(", removing its network {net} and nodes {net}-n1…{n} failed: remove them with docker rm -f / docker network rm")
    }
}

/// The node image's programs every node binds from one host copy: their page cache is charged
/// to whichever node (or copy) read them first, not to each node; the table's memory leaves
/// them out, so their size is said once, here (an upper bound of what they hold resident).
fn shared_programs_line() -> String {
    let root = clusterlab::images::programs_root();
    let bytes: u64 = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|d| !d.file_name().to_string_lossy().starts_with('.'))
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter_map(|f| f.metadata().ok().map(|m| m.len()))
        .sum();
    format!(
        "Shared by every node of every lab, counted once for the host (not in the memory columns): the node image's programs, at most {:.0} MiB of page cache ({})",
        bytes as f64 / 1048576.0,
        root.display()
    )
}

fn main() {
    let swarm = sizes("CLUSTERLAB_SCALE_SWARM", "1,3,5,8,12");
    let kube = sizes("CLUSTERLAB_SCALE_KUBE", "1,3,5,8");
    // The hand-run script beside each swarm size (after its lab, on the images it used).
    let script = std::env::var("CLUSTERLAB_SCALE_SCRIPT").as_deref() != Ok("off");
    let idle = Duration::from_secs(std::env::var("CLUSTERLAB_SCALE_IDLE").ok().and_then(|v| v.parse().ok()).unwrap_or(10));
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/scale");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let points = rt.block_on(async {
        let engine = match Engine::connect().await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(3);
            }
        };
        let all = async {
            let mut points = Vec::new();
            for (stack, ns) in [("swarm", &swarm), ("kubernetes", &kube)] {
                for &n in ns.iter() {
                    let mut p = one(&engine, stack, n, idle).await;
                    if stack == "swarm" && script {
                        p.script_secs = hand_run(n).await;
                    }
                    points.push(p);
                }
            }
            points
        };
        tokio::select! {
            p = all => Some(p),
            // The lab in flight is dropped with `all` as `select!` ends, which removes it
            // (`Lab`'s drop), before the process exits below.
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(points) = points else { std::process::exit(130) };
    println!("\n{}\n\n`up`'s steps (s):\n{}", table(&points), step_table(&points));
    println!("{}", shared_programs_line());
    let _ = std::fs::create_dir_all(&out);
    let json = serde_json::to_string_pretty(&points).unwrap_or_default();
    for (name, body) in [("scale.json", json), ("scale.html", clusterlab::report::scale_page(&points))] {
        match std::fs::write(out.join(name), body) {
            Ok(()) => println!("wrote {}", out.join(name).display()),
            Err(e) => eprintln!("cannot write {}: {e}", out.join(name).display()),
        }
    }
    std::process::exit(if points.iter().all(|p| p.passed) { 0 } else { 1 });
}
