//! `cargo bench --bench forwarding`: bring one lab up and measure the forwarding of each path of a
//! service (iperf3, samples alternating between paths), printing each path's throughput and its
//! ratios to `node` and `direct`. A plain program rather than criterion: criterion times Rust
//! code, while this measures Gbit/s of the kernel's paths, which iperf3 samples honestly.
//!
//! Scenario: `scenarios/paths-throughput.yaml` (Kubernetes, all four paths; needs the bundle),
//! or the file in `CLUSTERLAB_FORWARDING_SCENARIO` (e.g. scenarios/swarm-paths-throughput.yaml).

use clusterlab::provider::Engine;
use clusterlab::report::{Reporters, Terminal};
use clusterlab::runner::{self, RunOptions};
use std::io::IsTerminal;
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = std::env::var_os("CLUSTERLAB_FORWARDING_SCENARIO")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("scenarios/paths-throughput.yaml"));
    let scenario = match clusterlab::model::load(&file) {
        Ok(s) => s,
        Err(p) => {
            eprintln!("{p}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let code = rt.block_on(async {
        let engine = match Engine::connect().await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                return 3;
            }
        };
        let run_id = clusterlab::plan::new_run_id();
        let lab = format!("bench-{}", scenario.name);
        let opts = RunOptions { lab: Some(lab), ..Default::default() };
        let mut reps = Reporters(vec![Box::new(Terminal::new(std::io::stdout(), std::io::stdout().is_terminal()))]);
        let run = runner::run(&engine, &scenario, &run_id, &opts, &mut reps);
        tokio::select! {
            sum = run => sum.exit_code,
            _ = tokio::signal::ctrl_c() => {
                // The run is dropped here; what it created goes by its run label.
                let _ = engine.remove_labelled(None, Some(&run_id)).await;
                130
            }
        }
    });
    std::process::exit(code);
}
