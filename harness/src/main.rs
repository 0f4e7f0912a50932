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
        /// Write a report: json=PATH, junit=PATH or html=PATH (repeatable).
        #[arg(long = "report", value_name = "KIND=PATH")]
        reports: Vec<String>,
        /// Run only part K of N of the files (sorted by path, every N-th from the K-th): CI
        /// runners each take one partition; together they run every file exactly once.
        #[arg(long, value_name = "K/N")]
        partition: Option<String>,
        /// Labs running at once (each with its own name and subnet). Default 1.
        #[arg(long, default_value_t = 1, value_name = "N")]
        jobs: usize,
        /// Run each scenario N times and report its pass rate (flakes show as < 100 %).
        #[arg(long, default_value_t = 1, value_name = "N")]
        repeat: usize,
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
    /// Remove what runs that have ended left behind (killed, crashed): never a run whose process
    /// is still going, nor a kept lab.
    Clean {
        /// Remove every lab on this engine, live runs and kept labs included.
        #[arg(long)]
        all: bool,
    },
    /// Validate scenario files; every problem with file:line:col.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// What this host can do, and which checks can pass here.
    Doctor,
    /// Print the JSON Schema of scenario files (or, with `report`, of the JSON report).
    Schema {
        #[arg(value_parser = ["scenario", "report"], default_value = "scenario")]
        of: String,
    },
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
    /// Run a command on a node of a kept lab (its arguments passed as they are, no shell);
    /// prints its output and exits with its code. For a shell: `docker exec -it LAB-NODE bash`.
    Exec {
        lab: String,
        node: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Run a scenario's steps (or only the check or bench named with --step) against a kept lab
    /// whose nodes and stack are the scenario's; nothing is created or removed.
    Check {
        lab: String,
        file: PathBuf,
        #[arg(long, value_name = "NAME")]
        step: Option<String>,
        /// Write a report: json=PATH, junit=PATH or html=PATH (repeatable).
        #[arg(long, value_name = "KIND=PATH")]
        report: Vec<String>,
    },
    /// Print a kubeconfig for the host's kubectl against a kept Kubernetes lab's API server
    /// (`clusterlab kubeconfig LAB > lab.kubeconfig; kubectl --kubeconfig lab.kubeconfig get nodes`).
    Kubeconfig { lab: String },
    /// Print the environment for the host's docker CLI to talk to a kept swarm lab's manager
    /// (`eval "$(clusterlab docker-env LAB)"; docker service ls`).
    DockerEnv {
        lab: String,
        /// The node whose engine to talk to. Default: the first manager.
        #[arg(long)]
        node: Option<String>,
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

/// How a run command spreads its scenarios: a partition of the files, labs at once, repeats.
#[derive(Default)]
struct Matrix {
    partition: Option<String>,
    jobs: usize,
    repeat: usize,
}

/// One lab run of the matrix, and what it produced.
struct Done {
    scenario: String,
    code: i32,
    report: RunReport,
}

async fn cmd_run(files: Vec<PathBuf>, keep: bool, reports: Vec<String>, base: BaseSource, up_only: bool, m: Matrix) -> i32 {
    let mut outs: Vec<(String, PathBuf)> = Vec::new();
    for r in &reports {
        match r.split_once('=') {
            Some((k @ ("json" | "junit" | "html" | "events"), p)) => outs.push((k.to_string(), PathBuf::from(p))),
            _ => {
                eprintln!("error: --report takes json=PATH, junit=PATH, html=PATH or events=PATH, not {r:?}");
                return exit::INVALID;
            }
        }
    }
    let mut files = scenario_files(&files);
    if let Some(p) = &m.partition {
        match clusterlab::matrix::parse_partition(p) {
            Ok((k, n)) => {
                files = clusterlab::matrix::partition_files(files, k, n);
                println!("partition {k}/{n}: {}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" "));
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::INVALID;
            }
        }
    }
    let scenarios = load_all(&files);
    if scenarios.is_empty() && m.partition.is_some() {
        println!("nothing in this partition");
        return exit::OK;
    }
    if scenarios.is_empty() {
        eprintln!("error: no scenario files found in {files:?}");
        return exit::INVALID;
    }
    let (jobs, repeat) = (m.jobs.max(1), m.repeat.max(1));
    // Every run's events, as JSON lines, into one file (runs in parallel interleave by event).
    let events = match outs.iter().find(|(k, _)| k == "events") {
        None => None,
        Some((_, p)) => match std::fs::File::create(p) {
            Ok(f) => Some(Arc::new(Mutex::new(clusterlab::report::EventLog(f)))),
            Err(e) => {
                eprintln!("error: cannot write the events report to {}: {e}", p.display());
                return exit::INVALID;
            }
        },
    };
    let engine = engine_or_exit().await;
    // Every lab of the matrix, in order; repeats and parallel runs get their own lab names.
    let mut work = Vec::new();
    for s in &scenarios {
        for i in 1..=repeat {
            let lab = if repeat > 1 { Some(format!("{}-r{i}", s.name)) } else { None };
            work.push((s.clone(), lab));
        }
    }
    let tty = std::io::stdout().is_terminal() && jobs == 1;
    let started: Arc<Mutex<Vec<String>>> = Arc::default();
    // Every run's report as it is recorded, so an interrupt can still report the runs in flight.
    let live: LiveReports = Arc::default();
    let aborts: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut set = tokio::task::JoinSet::new();
    for (s, lab) in work {
        let (engine, base, sem, started, aborts, live, events) =
            (engine.clone(), base.clone(), sem.clone(), started.clone(), aborts.clone(), live.clone(), events.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let run_id = clusterlab::plan::new_run_id();
            if let Ok(mut v) = started.lock() {
                v.push(run_id.clone());
            }
            let collected = Arc::new(Mutex::new(RunReport::default()));
            if let Ok(mut v) = live.lock() {
                v.push((s.name.clone(), collected.clone()));
            }
            // One lab at a time streams to the terminal; parallel labs print whole blocks at
            // their end, so their lines never interleave.
            let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
            let term: Box<dyn clusterlab::report::Reporter> = if jobs == 1 {
                Box::new(Terminal::new(std::io::stdout(), tty))
            } else {
                println!("started {} (run {run_id})", lab.as_deref().unwrap_or(&s.name));
                Box::new(Terminal::new(SharedBuf(buffer.clone()), false))
            };
            let mut reps = Reporters(vec![term, Box::new(collected.clone())]);
            if let Some(log) = &events {
                reps.0.push(Box::new(log.clone()));
            }
            let opts = RunOptions { keep, lab, base, up_only };
            let inner = tokio::spawn({
                let (engine, s, run_id) = (engine.clone(), s.clone(), run_id.clone());
                async move { runner::run(&engine, &s, &run_id, &opts, &mut reps).await }
            });
            // Kept so an interrupt can stop the run itself, not only this wrapper.
            if let Ok(mut v) = aborts.lock() {
                v.push(inner.abort_handle());
            }
            let code = match inner.await {
                Ok(sum) => sum.exit_code,
                Err(e) => {
                    eprintln!("error: the run of {} panicked ({e}); removing its lab", s.name);
                    let removed = teardown_run(&engine, &run_id).await;
                    let why = format!(
                        "the run panicked ({e}); its lab was {}",
                        if removed { "removed" } else { "not fully removed: run `clusterlab clean`" }
                    );
                    if let Ok(mut r) = collected.lock() {
                        r.ended_abnormally(&s.name, exit::HOST, why);
                    }
                    exit::HOST
                }
            };
            if jobs > 1 {
                if let Ok(b) = buffer.lock() {
                    print!("{}", String::from_utf8_lossy(&b));
                }
            }
            let report = collected.lock().map(|r| r.clone()).unwrap_or_default();
            Done { scenario: s.name.clone(), code, report }
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    let mut done: Vec<Done> = Vec::new();
    loop {
        tokio::select! {
            r = set.join_next() => match r {
                Some(Ok(d)) => done.push(d),
                Some(Err(e)) => eprintln!("error: a lab task failed: {e}"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => return interrupted_all(&engine, &mut set, &aborts, &started, "SIGINT", &outs, &done, &live).await,
            _ = term.recv() => return interrupted_all(&engine, &mut set, &aborts, &started, "SIGTERM", &outs, &done, &live).await,
        }
    }
    let worst = done.iter().map(|d| d.code).max().unwrap_or(exit::OK);
    if repeat > 1 || jobs > 1 {
        print_matrix_summary(&done, repeat);
    }
    let all: Vec<RunReport> = done.into_iter().map(|d| d.report).collect();
    write_reports(&outs, &all);
    worst
}

/// Per scenario: runs, passes and the pass rate (a flaky scenario shows below 100 %).
fn print_matrix_summary(done: &[Done], repeat: usize) {
    let mut names: Vec<&str> = done.iter().map(|d| d.scenario.as_str()).collect();
    names.sort();
    names.dedup();
    println!("\n{:<32} {:>5} {:>7} {:>10}", "scenario", "runs", "passed", "pass rate");
    for n in names {
        let runs: Vec<&Done> = done.iter().filter(|d| d.scenario == n).collect();
        let ok = runs.iter().filter(|d| d.code == exit::OK).count();
        println!("{n:<32} {:>5} {ok:>7} {:>9.0}%", runs.len(), ok as f64 * 100.0 / runs.len().max(1) as f64);
    }
    if repeat > 1 {
        println!("(each scenario run {repeat} times)");
        print_stream_spread(done);
    }
}

/// Over repeated runs, per scenario, stream and fault: the spread of time to break and time to
/// recover (min / median / max), and how many runs recovered at all.
fn print_stream_spread(done: &[Done]) {
    use clusterlab::stream::timeline::quantile;
    // (scenario, stream, fault) -> (times to break, times to recover, episodes)
    type Spread = (Vec<f64>, Vec<f64>, usize);
    let mut rows: std::collections::BTreeMap<(String, String, String), Spread> = Default::default();
    for d in done {
        for s in &d.report.streams {
            for e in &s.figures.episodes {
                let row = rows.entry((d.scenario.clone(), s.name.clone(), e.fault.clone())).or_default();
                row.0.extend(e.break_after_ms);
                row.1.extend(e.recover_after_ms);
                row.2 += 1;
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let spread = |v: &[f64]| match (quantile(v, 0.0), quantile(v, 0.5), quantile(v, 1.0)) {
        (Some(a), Some(m), Some(b)) => format!("{:.2} / {:.2} / {:.2} s", a / 1000.0, m / 1000.0, b / 1000.0),
        _ => "-".to_string(),
    };
    println!("\nstreams over the runs (min / median / max)");
    println!("{:<28} {:<24} {:<16} {:<24} {:<24} recovered", "scenario", "stream", "fault", "time to break", "time to recover");
    for ((sc, st, f), (brk, rec, n)) in rows {
        println!("{sc:<28} {st:<24} {f:<16} {:<24} {:<24} {} of {n}", spread(&brk), spread(&rec), rec.len());
    }
}

/// A Write into a shared buffer (a parallel lab's terminal output, printed at its end).
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map(|mut v| v.extend_from_slice(b)).map_err(|_| std::io::Error::other("poisoned"))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each run's report as it is being recorded, by scenario name.
type LiveReports = Arc<Mutex<Vec<(String, Arc<Mutex<RunReport>>)>>>;

#[allow(clippy::too_many_arguments)] // one call site per signal; a struct would only rename them
async fn interrupted_all(
    engine: &Engine,
    set: &mut tokio::task::JoinSet<Done>,
    aborts: &Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    started: &Arc<Mutex<Vec<String>>>,
    sig: &str,
    outs: &[(String, PathBuf)],
    done: &[Done],
    live: &LiveReports,
) -> i32 {
    // The runs first (each is a task of its own), then their wrappers.
    for a in aborts.lock().map(|v| v.clone()).unwrap_or_default() {
        a.abort();
    }
    set.abort_all();
    while set.join_next().await.is_some() {}
    let runs: Vec<String> = started.lock().map(|v| v.clone()).unwrap_or_default();
    eprintln!("\n{sig} received: removing everything these runs created ({}) ...", runs.join(", "));
    let mut ok = true;
    for r in &runs {
        ok &= teardown_run(engine, r).await;
    }
    if ok {
        eprintln!("removed; nothing of these runs is left");
    } else {
        eprintln!("teardown incomplete; run `clusterlab clean`");
    }
    // Finished runs as they ended; runs in flight with what they recorded, and why they stopped.
    let mut all: Vec<RunReport> = done.iter().map(|d| d.report.clone()).collect();
    let finished: Vec<String> = all.iter().map(|r| r.run_id.clone()).collect();
    for (scenario, rep) in live.lock().map(|v| v.clone()).unwrap_or_default() {
        let Ok(mut r) = rep.lock().map(|r| r.clone()) else { continue };
        if !r.run_id.is_empty() && finished.contains(&r.run_id) {
            continue;
        }
        let why = format!("interrupted by {sig}; its lab was {}", if ok { "removed" } else { "not fully removed" });
        r.ended_abnormally(&scenario, exit::INTERRUPTED, why);
        all.push(r);
    }
    write_reports(outs, &all);
    exit::INTERRUPTED
}

fn write_reports(outs: &[(String, PathBuf)], all: &[RunReport]) {
    for (kind, path) in outs {
        let text = match kind.as_str() {
            "json" => serde_json::to_string_pretty(&clusterlab::report::ReportFile {
                schema: clusterlab::report::REPORT_SCHEMA.to_string(),
                runs: all.to_vec(),
            })
            .unwrap_or_default(),
            "html" => clusterlab::report::html_report(all),
            // Written as the runs go.
            "events" => continue,
            _ => junit_xml(all),
        };
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: cannot write the {kind} report to {}: {e}", path.display());
        }
    }
}

fn base_of(b: Option<String>) -> BaseSource {
    BaseSource { pull: b }
}

async fn attach_or_exit(lab: &str) -> Result<clusterlab::lab::Lab, i32> {
    let engine = engine_or_exit().await;
    runner::attach(&engine, lab, &BaseSource::default()).await.map_err(|e| {
        eprintln!("error: {e}");
        exit::HOST
    })
}

async fn cmd_exec(lab: &str, node: &str, cmd: &[String]) -> i32 {
    let l = match attach_or_exit(lab).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    if !l.node_names().iter().any(|n| n == node) {
        eprintln!("error: lab {lab} has no node {node:?} (nodes: {})", l.node_names().join(", "));
        return exit::INVALID;
    }
    // Each argument quoted once: what the user typed reaches the command as it is.
    let script = cmd.iter().map(|a| clusterlab::lab::shq(a)).collect::<Vec<_>>().join(" ");
    match l.sh_within(node, &script, None, clusterlab::lab::default_deadline()).await {
        Ok(o) => {
            print!("{}", o.stdout);
            eprint!("{}", o.stderr);
            o.code.clamp(0, 255) as i32
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::STACK
        }
    }
}

async fn cmd_check(lab: &str, file: &std::path::Path, step: Option<&str>, reports: &[String]) -> i32 {
    let mut outs: Vec<(String, PathBuf)> = Vec::new();
    for r in reports {
        match r.split_once('=') {
            Some((k @ ("json" | "junit" | "html"), p)) => outs.push((k.to_string(), PathBuf::from(p))),
            _ => {
                eprintln!("error: --report takes json=PATH, junit=PATH or html=PATH, not {r:?}");
                return exit::INVALID;
            }
        }
    }
    let s = match clusterlab::model::load(file) {
        Ok(s) => s,
        Err(p) => {
            eprint!("{p}");
            return exit::INVALID;
        }
    };
    let engine = engine_or_exit().await;
    let report = Arc::new(Mutex::new(RunReport::default()));
    let tty = std::io::stdout().is_terminal();
    let mut rep = Reporters(vec![Box::new(Terminal::new(std::io::stdout(), tty)), Box::new(report.clone())]);
    let sum = runner::run_on_kept(&engine, &s, lab, step, &mut rep).await;
    let all = vec![report.lock().map(|r| r.clone()).unwrap_or_default()];
    write_reports(&outs, &all);
    sum.exit_code
}

async fn cmd_kubeconfig(lab: &str) -> i32 {
    let l = match attach_or_exit(lab).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    if l.scenario.stack != clusterlab::model::StackKind::Kubernetes {
        eprintln!(
            "error: lab {lab} runs swarm, not Kubernetes\n    hint: `clusterlab exec {lab} {} -- docker service ls` runs the docker CLI on its manager",
            l.scenario.managers().next().map(|n| n.name.as_str()).unwrap_or("manager")
        );
        return exit::INVALID;
    }
    let master = l.scenario.managers().next().map(|n| n.name.clone()).unwrap_or_default();
    // The admin kubeconfig every node uses: the master's lab address (in the API server's
    // certificate), reachable from this host over the lab's bridge.
    match l.sh_in(&master, "reading the kubeconfig", &format!("cat {}", clusterlab::stack::kube::KUBECONFIG), None).await {
        Ok(o) => {
            print!("{}", o.stdout);
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::STACK
        }
    }
}

async fn cmd_docker_env(lab: &str, node: Option<&str>) -> i32 {
    let l = match attach_or_exit(lab).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    if l.scenario.stack != clusterlab::model::StackKind::Swarm {
        eprintln!("error: lab {lab} runs Kubernetes, not swarm\n    hint: `clusterlab kubeconfig {lab} > lab.kubeconfig` gives the host's kubectl its API");
        return exit::INVALID;
    }
    let manager = l.scenario.managers().next().map(|n| n.name.clone()).unwrap_or_default();
    let node = node.unwrap_or(&manager);
    if !l.node_names().iter().any(|n| n == node) {
        eprintln!("error: lab {lab} has no node {node:?} (nodes: {})", l.node_names().join(", "));
        return exit::INVALID;
    }
    match l.docker_host(node).await {
        Ok(host) => {
            println!("export DOCKER_HOST={host}");
            eprintln!("# the docker CLI now talks to node {node} of lab {lab}: eval \"$(clusterlab docker-env {lab})\"; unset DOCKER_HOST to go back");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::STACK
        }
    }
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
    if action == "apply" {
        // Unsupported only from a measured fact, decided before anything is changed.
        match runner::measure_facts(&l).await {
            Ok(facts) => {
                if let Some(why) = facts.cannot(&f.spec) {
                    eprintln!("unsupported here: fault {fault} cannot be applied on this host: {why}");
                    return exit::HOST;
                }
            }
            Err(e) => {
                eprintln!("error: could not measure what this host can do: {e}");
                return exit::HOST;
            }
        }
    }
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
    let mut labs: std::collections::BTreeMap<(String, String, String), Vec<String>> = Default::default();
    for c in cs {
        let l = c.labels.unwrap_or_default();
        let lab = l.get(clusterlab::plan::LABEL_LAB).cloned().unwrap_or_default();
        let run = l.get(clusterlab::plan::LABEL_RUN).cloned().unwrap_or_default();
        // What `clean` would make of it.
        let state = match clusterlab::owner::check(l.get(clusterlab::plan::LABEL_OWNER).map(String::as_str)) {
            clusterlab::owner::Liveness::Alive => "running",
            clusterlab::owner::Liveness::Kept => "kept",
            clusterlab::owner::Liveness::Gone(_) => "left-over",
        };
        // Nodes by their label; the lab's other containers (its reaper, a fault's proxy) by name.
        let name = c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default();
        let node = l
            .get(clusterlab::plan::LABEL_NODE)
            .cloned()
            .unwrap_or_else(|| name.strip_prefix(&format!("{lab}-")).unwrap_or(&name).to_string());
        labs.entry((lab, run, state.to_string()))
            .or_default()
            .push(format!("{node}({})", c.state.map(|s| format!("{s:?}").to_lowercase()).unwrap_or_default()));
    }
    if labs.is_empty() {
        println!("no labs");
    } else {
        println!("{:<28} {:<10} {:<10} NODES", "LAB", "RUN", "STATE");
        for ((lab, run, state), nodes) in labs {
            println!("{lab:<28} {run:<10} {state:<10} {}", nodes.join(" "));
        }
        println!(
            "(running: its run is going; kept: up or --keep, removed by down; left-over: its run ended, `clusterlab clean` removes it)"
        );
    }
    exit::OK
}

/// Remove the runs whose owner is gone (killed, crashed), never a live run or a kept lab.
async fn cmd_clean() -> i32 {
    let engine = engine_or_exit().await;
    let runs = match engine.runs().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::HOST;
        }
    };
    let (mut removed, mut kept, mut live, mut failed) = (0, Vec::new(), Vec::new(), false);
    for (run, (lab, owner)) in &runs {
        match clusterlab::owner::check(owner.as_deref()) {
            clusterlab::owner::Liveness::Alive => live.push(format!("{lab} (run {run})")),
            clusterlab::owner::Liveness::Kept => kept.push(lab.clone()),
            clusterlab::owner::Liveness::Gone(why) => {
                // Objects with no run label are matched by lab name alone.
                let r = if run.is_empty() {
                    engine.remove_labelled(Some(lab), None).await
                } else {
                    engine.remove_labelled(None, Some(run)).await
                };
                match r {
                    Ok(rm) => {
                        removed += 1;
                        println!(
                            "removed lab {lab} (run {run}: {why}): {} containers, {} networks, {} volumes",
                            rm.containers.len(),
                            rm.networks.len(),
                            rm.volumes.len()
                        );
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("error: {e}");
                    }
                }
            }
        }
    }
    if removed == 0 && !failed {
        println!("nothing left behind by a run that has ended");
    } else if failed {
        // What could not be removed is still there: say so after the errors, with a way on.
        eprintln!(
            "some objects of ended runs could not be removed (above); `docker ps -a --filter label=io.clusterlab.lab` lists what is left"
        );
    }
    if !live.is_empty() {
        println!("left alone, their runs are still going: {}", live.join(", "));
    }
    kept.sort();
    kept.dedup();
    if !kept.is_empty() {
        println!(
            "left alone, kept on purpose: {} (remove with `clusterlab down LAB`, or every lab with `clusterlab clean --all`)",
            kept.join(", ")
        );
    }
    if failed {
        exit::TEARDOWN
    } else {
        exit::OK
    }
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
        Cmd::Run { files, keep, reports, base_image, partition, jobs, repeat } => {
            let m = Matrix { partition, jobs, repeat };
            cmd_run(files, keep, reports, base_of(base_image), false, m).await
        }
        Cmd::Up { file, base_image } => cmd_run(vec![file], true, vec![], base_of(base_image), true, Matrix::default()).await,
        Cmd::Down { lab } => cmd_remove(Some(&lab)).await,
        Cmd::Clean { all: true } => cmd_remove(None).await,
        Cmd::Clean { all: false } => cmd_clean().await,
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
        Cmd::Schema { of } => {
            let schema = if of == "report" { clusterlab::report::report_schema() } else { model::json_schema() };
            println!("{}", serde_json::to_string_pretty(&schema).unwrap_or_default());
            exit::OK
        }
        Cmd::Images { cmd } => cmd_images(cmd).await,
        Cmd::Fault { cmd } => cmd_fault(cmd).await,
        Cmd::Exec { lab, node, cmd } => cmd_exec(&lab, &node, &cmd).await,
        Cmd::Kubeconfig { lab } => cmd_kubeconfig(&lab).await,
        Cmd::DockerEnv { lab, node } => cmd_docker_env(&lab, node.as_deref()).await,
        Cmd::Check { lab, file, step, report } => cmd_check(&lab, &file, step.as_deref(), &report).await,
        Cmd::Bundle { version } => cmd_bundle(&version).await,
    };
    std::process::exit(code);
}
