//! The `clusterlab` command line.

use clap::{Parser, Subcommand};
use clusterlab::images::{self, BaseSource};
use clusterlab::model;
use clusterlab::provider::Engine;
use clusterlab::report::{junit_xml, Reporters, RunReport, Terminal};
use clusterlab::runner::{self, exit, RunOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Parser)]
#[command(
    name = "clusterlab",
    version,
    about = "Simulated multi-node clusters on one Docker engine: faults injected, every service path asserted."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenario files (or every *.yaml in a directory): bring up, check, tear down.
    Run {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Keep the lab after the run; prints how to remove it.
        #[arg(long)]
        keep: bool,
        /// Write a report: json=PATH or junit=PATH (repeatable).
        #[arg(long = "report", value_name = "KIND=PATH")]
        reports: Vec<String>,
        /// Use this pulled image as the base instead of debootstrap (where a registry is reachable).
        #[arg(long, value_name = "IMAGE")]
        base_image: Option<String>,
    },
    /// Bring a scenario's lab up and keep it (no steps run).
    Up {
        file: PathBuf,
        #[arg(long, value_name = "IMAGE")]
        base_image: Option<String>,
    },
    /// Remove a lab (everything labelled with its name).
    Down { lab: String },
    /// List labs on this engine.
    Ls,
    /// Remove everything any clusterlab run left behind (found by label).
    Clean,
    /// Validate scenario files; every problem with file:line:col.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// What this host can do, and which checks can pass here.
    Doctor,
    /// Print the JSON Schema of scenario files.
    Schema,
    /// Build or list the images (base, node, web, tools).
    Images {
        #[command(subcommand)]
        cmd: ImagesCmd,
    },
    /// Build the Kubernetes bundle (server binaries from Debian's source package) into the cache,
    /// unless it is there; prints the bundle directory.
    Bundle {
        #[arg(default_value = clusterlab::model::DEFAULT_KUBE_VERSION)]
        version: String,
    },
    /// Apply, revert or read a fault of a kept lab's scenario.
    Fault {
        #[command(subcommand)]
        cmd: FaultCmd,
    },
}

#[derive(Subcommand)]
enum ImagesCmd {
    /// Build missing images (all, or the named ones with their parents).
    Build {
        names: Vec<String>,
        #[arg(long, value_name = "IMAGE")]
        base_image: Option<String>,
    },
    /// List the images, their tags and whether they are built.
    Ls,
}

#[derive(Subcommand)]
enum FaultCmd {
    Apply { lab: String, fault: String },
    Revert { lab: String, fault: String },
    Counters { lab: String, fault: String },
}

fn scenario_files(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map(|d| {
                    d.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|x| x.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    out
}

async fn engine_or_exit() -> Engine {
    match Engine::connect().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(exit::HOST);
        }
    }
}

/// Load every file; print all problems and exit 2 if any is invalid.
fn load_all(files: &[PathBuf]) -> Vec<model::Scenario> {
    let mut ok = Vec::new();
    let mut bad = false;
    for f in files {
        match model::load(f) {
            Ok(s) => ok.push(s),
            Err(p) => {
                bad = true;
                eprintln!("{p}");
            }
        }
    }
    if bad {
        eprintln!("error: invalid scenario (see above); nothing was started");
        std::process::exit(exit::INVALID);
    }
    ok
}

/// Remove what a run created, found by its run label; twice, so an object whose create call
/// was in flight when the run was stopped is caught on the second pass.
async fn teardown_run(engine: &Engine, run_id: &str) -> bool {
    let first = engine.remove_labelled(None, Some(run_id)).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let second = engine.remove_labelled(None, Some(run_id)).await;
    first.is_ok() && second.is_ok()
}

async fn cmd_run(files: Vec<PathBuf>, keep: bool, reports: Vec<String>, base: BaseSource, up_only: bool) -> i32 {
    let mut outs: Vec<(String, PathBuf)> = Vec::new();
    for r in &reports {
        match r.split_once('=') {
            Some((k @ ("json" | "junit"), p)) => outs.push((k.to_string(), PathBuf::from(p))),
            _ => {
                eprintln!("error: --report takes json=PATH or junit=PATH, not {r:?}");
                return exit::INVALID;
            }
        }
    }
    let scenarios = load_all(&scenario_files(&files));
    if scenarios.is_empty() {
        eprintln!("error: no scenario files found in {files:?}");
        return exit::INVALID;
    }
    let engine = engine_or_exit().await;
    let mut worst = exit::OK;
    let mut all = Vec::new();
    let tty = std::io::stdout().is_terminal();
    for s in scenarios {
        let run_id = clusterlab::plan::new_run_id();
        let collected = Arc::new(Mutex::new(RunReport::default()));
        let mut reps = Reporters(vec![Box::new(Terminal::new(std::io::stdout(), tty)), Box::new(collected.clone())]);
        let opts = RunOptions { keep, lab: None, base: base.clone(), up_only };
        let e2 = engine.clone();
        let s2 = s.clone();
        let rid = run_id.clone();
        let mut task = tokio::spawn(async move { runner::run(&e2, &s2, &rid, &opts, &mut reps).await });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        let code = tokio::select! {
            r = &mut task => match r {
                Ok(sum) => sum.exit_code,
                Err(e) => {
                    eprintln!("error: the run of {} panicked ({e}); removing its lab", s.name);
                    teardown_run(&engine, &run_id).await;
                    exit::HOST
                }
            },
            _ = tokio::signal::ctrl_c() => interrupted(&engine, &mut task, &run_id, "SIGINT").await,
            _ = term.recv() => interrupted(&engine, &mut task, &run_id, "SIGTERM").await,
        };
        all.push(collected.lock().map(|r| r.clone()).unwrap_or_default());
        if code == exit::INTERRUPTED {
            write_reports(&outs, &all);
            return code;
        }
        worst = worst.max(code);
    }
    write_reports(&outs, &all);
    worst
}

async fn interrupted(engine: &Engine, task: &mut tokio::task::JoinHandle<clusterlab::report::Summary>, run_id: &str, sig: &str) -> i32 {
    task.abort();
    let _ = task.await;
    eprintln!("\n{sig} received: removing everything this run created (run {run_id}) ...");
    if teardown_run(engine, run_id).await {
        eprintln!("removed; nothing of this run is left");
    } else {
        eprintln!("teardown incomplete; run `clusterlab clean`");
    }
    exit::INTERRUPTED
}

fn write_reports(outs: &[(String, PathBuf)], all: &[RunReport]) {
    for (kind, path) in outs {
        let text = if kind == "json" {
            serde_json::to_string_pretty(&serde_json::json!({ "schema": clusterlab::report::REPORT_SCHEMA, "runs": all }))
                .unwrap_or_default()
        } else {
            junit_xml(all)
        };
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: cannot write the {kind} report to {}: {e}", path.display());
        }
    }
}

fn base_of(b: Option<String>) -> BaseSource {
    BaseSource { pull: b }
}

async fn cmd_fault(cmd: FaultCmd) -> i32 {
    let engine = engine_or_exit().await;
    let (lab, fault, action) = match &cmd {
        FaultCmd::Apply { lab, fault } => (lab, fault, "apply"),
        FaultCmd::Revert { lab, fault } => (lab, fault, "revert"),
        FaultCmd::Counters { lab, fault } => (lab, fault, "counters"),
    };
    let l = match runner::attach(&engine, lab, &BaseSource::default()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::HOST;
        }
    };
    let Some(f) = l.scenario.fault(fault) else {
        let known: Vec<&str> = l.scenario.faults.iter().map(|f| f.name.as_str()).collect();
        eprintln!("error: lab {lab}'s scenario declares no fault {fault:?} (declared: {})", known.join(", "));
        return exit::INVALID;
    };
    let h = clusterlab::fault::FaultHandle::new(&l, f);
    let r = match action {
        "apply" => h.apply(&l).await.map(|_| h.describe().join("\n")),
        "revert" => h.revert(&l).await.map(|c| h.reverted(&c).join("\n")),
        _ => h.counters(&l).await.map(|c| clusterlab::fault::describe_counters(fault, &c)),
    };
    match r {
        Ok(t) => {
            println!("{t}");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::STACK
        }
    }
}

async fn cmd_ls() -> i32 {
    let engine = engine_or_exit().await;
    let cs = match engine.lab_containers(None, None).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::HOST;
        }
    };
    let mut labs: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for c in cs {
        let l = c.labels.unwrap_or_default();
        let lab = l.get(clusterlab::plan::LABEL_LAB).cloned().unwrap_or_default();
        let run = l.get(clusterlab::plan::LABEL_RUN).cloned().unwrap_or_default();
        let node = l.get(clusterlab::plan::LABEL_NODE).cloned().unwrap_or_else(|| "?".into());
        labs.entry((lab, run))
            .or_default()
            .push(format!("{node}({})", c.state.map(|s| format!("{s:?}").to_lowercase()).unwrap_or_default()));
    }
    if labs.is_empty() {
        println!("no labs");
    } else {
        println!("{:<28} {:<10} NODES", "LAB", "RUN");
        for ((lab, run), nodes) in labs {
            println!("{lab:<28} {run:<10} {}", nodes.join(" "));
        }
    }
    exit::OK
}

async fn cmd_remove(lab: Option<&str>) -> i32 {
    let engine = engine_or_exit().await;
    match engine.remove_labelled(lab, None).await {
        Ok(r) if r.is_empty() => {
            println!("nothing to remove{}", lab.map(|l| format!(" for lab {l}")).unwrap_or_default());
            exit::OK
        }
        Ok(r) => {
            println!("removed {} containers, {} networks, {} volumes", r.containers.len(), r.networks.len(), r.volumes.len());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::TEARDOWN
        }
    }
}

async fn cmd_images(cmd: ImagesCmd) -> i32 {
    let engine = engine_or_exit().await;
    match cmd {
        ImagesCmd::Ls => {
            println!("{:<6} {:<28} {:<8} ABOUT", "NAME", "TAG", "BUILT");
            for r in images::RECIPES {
                let t = images::tag(r.name, &BaseSource::default());
                let built = engine.image_id(&t).await.is_some();
                println!("{:<6} {:<28} {:<8} {}", r.name, t, if built { "yes" } else { "no" }, r.about);
            }
            exit::OK
        }
        ImagesCmd::Build { names, base_image } => {
            let all: Vec<&str> = images::RECIPES.iter().map(|r| r.name).collect();
            for n in &names {
                if images::recipe(n).is_none() {
                    eprintln!("error: no image recipe {n:?}; known: {}", all.join(", "));
                    return exit::INVALID;
                }
            }
            let want: Vec<&str> = if names.is_empty() { all } else { names.iter().map(|s| s.as_str()).collect() };
            let t = std::time::Instant::now();
            match images::ensure(&engine, &want, &base_of(base_image), &mut |l| println!(" • {l}")).await {
                Ok(built) => {
                    println!(" ✓ images ready ({} built) in {:.1} s", built.len(), t.elapsed().as_secs_f64());
                    exit::OK
                }
                Err(e) => {
                    eprintln!(" ✗ {e}");
                    exit::HOST
                }
            }
        }
    }
}

/// Runs the embedded images/kubernetes/build-bundle.sh; its progress lines go to stderr as they come.
async fn cmd_bundle(version: &str) -> i32 {
    const SCRIPT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../images/kubernetes/build-bundle.sh"));
    let t = std::time::Instant::now();
    let st = tokio::process::Command::new("bash")
        .args(["-c", SCRIPT, "build-bundle"])
        .env("VERSION", version)
        .env("CACHE", clusterlab::stack::kube::cache_dir())
        .stdin(std::process::Stdio::null())
        .status()
        .await;
    match st {
        Ok(s) if s.success() => {
            eprintln!(" ✓ bundle kubernetes-{version} ready in {:.1} s", t.elapsed().as_secs_f64());
            exit::OK
        }
        Ok(s) => {
            eprintln!(" ✗ the bundle build failed ({s}); see the lines above");
            exit::HOST
        }
        Err(e) => {
            eprintln!(" ✗ cannot run bash: {e}");
            exit::HOST
        }
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run { files, keep, reports, base_image } => cmd_run(files, keep, reports, base_of(base_image), false).await,
        Cmd::Up { file, base_image } => cmd_run(vec![file], true, vec![], base_of(base_image), true).await,
        Cmd::Down { lab } => cmd_remove(Some(&lab)).await,
        Cmd::Clean => cmd_remove(None).await,
        Cmd::Ls => cmd_ls().await,
        Cmd::Validate { files } => {
            let files = scenario_files(&files);
            let n = load_all(&files).len();
            println!("{n} scenario file(s) valid");
            exit::OK
        }
        Cmd::Doctor => {
            let engine = Engine::connect().await.ok();
            let (text, ok) = clusterlab::doctor::report(engine.as_ref()).await;
            print!("{text}");
            if ok {
                exit::OK
            } else {
                exit::HOST
            }
        }
        Cmd::Schema => {
            println!("{}", serde_json::to_string_pretty(&model::json_schema()).unwrap_or_default());
            exit::OK
        }
        Cmd::Images { cmd } => cmd_images(cmd).await,
        Cmd::Fault { cmd } => cmd_fault(cmd).await,
        Cmd::Bundle { version } => cmd_bundle(&version).await,
    };
    std::process::exit(code);
}
