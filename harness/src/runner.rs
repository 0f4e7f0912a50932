//! The runner walks a scenario through the pipeline — images, plan, nodes, stack, steps — and
//! emits events. It owns teardown: the lab is removed at the end unless kept, also on failure.
//! (Ctrl-C and panics are handled by the caller, which removes the run's objects by label.)

use crate::diagnose::{self, Snapshot};
use crate::expect::{judge, Outcome};
use crate::facts::HostFacts;
use crate::fault::{describe_counters, FaultHandle};
use crate::images::{self, BaseSource};
use crate::lab::Lab;
use crate::model::{CheckKind, InstallStage, Scenario, StackKind, Step};
use crate::plan::{self, LabPlan, LABEL_PLAN, LABEL_SCENARIO};
use crate::probe;
use crate::provider::{Engine, LabError, NestedMode};
use crate::report::{CheckReport, Event, PhaseMark, Reporters, StepRecord, Summary};
use crate::stack::kube;
use crate::stack::{placement, AnyStack, NodeBoot, Replica, Stack};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Exit codes are an API; the README lists them.
pub mod exit {
    pub const OK: i32 = 0;
    pub const CHECK_FAILED: i32 = 1;
    pub const INVALID: i32 = 2;
    pub const HOST: i32 = 3;
    pub const STACK: i32 = 4;
    pub const TEARDOWN: i32 = 5;
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Keep the lab after the run (for a look, or for fault verbs).
    pub keep: bool,
    /// Lab name; default the scenario's name.
    pub lab: Option<String>,
    pub base: BaseSource,
    /// Stop after the stack is installed (the `up` command).
    pub up_only: bool,
}

/// A failure that ends the run, with the exit code it maps to.
struct Abort(i32, LabError);

struct Runner<'a> {
    rep: &'a mut Reporters,
    /// Every event of the run, one JSON line each: the failure bundle's event log.
    log: Vec<String>,
}

impl Runner<'_> {
    fn emit(&mut self, e: Event) {
        self.log.push(serde_json::to_string(&e).unwrap_or_default());
        self.rep.emit(e);
    }

    /// Run one titled step: emit start and end (with detail lines) around it.
    async fn step<T, F>(&mut self, title: &str, code: i32, f: F) -> Result<T, Abort>
    where
        F: std::future::Future<Output = Result<(T, Vec<String>), LabError>>,
    {
        self.step_timed(title, code, &PhaseLog::new(), f).await
    }

    /// A step with detail lines whose sub-steps are also timed (`log`): the phases go to the
    /// report and follow the detail lines on the terminal.
    async fn step_timed<T, F>(&mut self, title: &str, code: i32, log: &PhaseLog, f: F) -> Result<T, Abort>
    where
        F: std::future::Future<Output = Result<(T, Vec<String>), LabError>>,
    {
        self.emit(Event::StepStart { title: title.to_string() });
        let r = f.await;
        let secs = log.start.elapsed().as_secs_f64();
        let phases = log.marks.lock().map(|m| m.clone()).unwrap_or_default();
        let timed = phases.iter().map(|p| format!("{} · {:.1} s", p.what, p.at_secs));
        match r {
            Ok((v, detail)) => {
                let detail = detail.into_iter().chain(timed).collect();
                self.emit(Event::StepEnd(StepRecord { title: title.to_string(), ok: true, secs, detail, phases }));
                Ok(v)
            }
            Err(e) => {
                self.emit(Event::StepEnd(StepRecord { title: title.to_string(), ok: false, secs, detail: timed.collect(), phases }));
                Err(Abort(code, e))
            }
        }
    }

    /// Run a long step whose progress lines are its phases: each line shown with when it came
    /// (`swarm formed · 2.1 s`), and the phases in the report — also when the step fails, up to
    /// where it got, so a slow or broken install says which phase it was in.
    async fn step_phased<F>(&mut self, title: &str, code: i32, log: &PhaseLog, f: F) -> Result<(), Abort>
    where
        F: std::future::Future<Output = Result<(), LabError>>,
    {
        self.step_timed(title, code, log, async { f.await.map(|()| ((), vec![])) }).await
    }
}

/// The phases of a long step as they end, timed from its start.
struct PhaseLog {
    start: Instant,
    marks: std::sync::Mutex<Vec<PhaseMark>>,
}

impl PhaseLog {
    fn new() -> PhaseLog {
        PhaseLog { start: Instant::now(), marks: std::sync::Mutex::new(Vec::new()) }
    }

    fn mark(&self, what: String) {
        let at_secs = self.start.elapsed().as_secs_f64();
        if let Ok(mut m) = self.marks.lock() {
            m.push(PhaseMark { what, at_secs });
        }
    }
}

/// The images a scenario needs on the host engine: the node image, the probe image, and every
/// workload image that names a clusterlab recipe.
pub fn needed_images(s: &Scenario) -> Vec<&'static str> {
    let mut v = vec!["node", "web"];
    // Swarm benches run their client in a tools container on the overlay.
    if s.steps.iter().any(|st| matches!(st, Step::Bench(_))) {
        v.push("tools");
    }
    v.extend(kube::extra_images(s));
    // A stray-proxy fault runs squid from the proxy image.
    if s.faults.iter().any(|f| matches!(f.spec, crate::model::FaultSpec::HttpProxy { .. })) {
        v.push("proxy");
    }
    for svc in &s.services {
        if let Some(r) = images::recipe(&svc.image) {
            if !v.contains(&r.name) {
                v.push(r.name);
            }
        }
    }
    v
}

/// Plan the lab and create its network. Two runs starting together may pick the same free
/// subnet; the engine refuses the second, which then plans again with the subnet taken.
async fn create_network(engine: &Engine, s: &Scenario, id: &LabId<'_>) -> Result<LabPlan, LabError> {
    let mut attempt = 0;
    loop {
        let plan = plan_lab(engine, s, id.lab, id.run_id, id.owner).await?;
        let mut extra = HashMap::new();
        extra.insert(LABEL_PLAN.to_string(), serde_json::to_string(&plan).unwrap_or_default());
        extra.insert(LABEL_SCENARIO.to_string(), abs_path(&s.source));
        match engine.create_network(&plan, extra).await {
            Err(LabError::CreateNetwork { source, .. }) if attempt < 8 && source.to_string().contains("overlap") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(150 * attempt)).await;
            }
            r => return r.map(|_| plan),
        }
    }
}

/// How this scenario's nodes boot: the stack decides the node command, the runtime's data
/// directory, and (Kubernetes) the bundle mounted read-only. (The node image's shared programs
/// are added to the binds once they are on the host, see `create_nodes`.)
fn node_boot(s: &Scenario) -> Result<NodeBoot, LabError> {
    Ok(match &s.kube {
        None => NodeBoot { cmd: vec!["/usr/local/bin/start-node".into(), "swarm".into()], data_dir: "/var/lib/docker", binds: vec![] },
        Some(k) => {
            let dir = kube::resolve_bundle(k, &s.source)?;
            NodeBoot {
                cmd: vec!["/usr/local/bin/start-node".into(), "kubernetes".into()],
                data_dir: "/var/lib/containerd",
                binds: vec![(dir.display().to_string(), kube::BUNDLE_MOUNT.to_string())],
            }
        }
    })
}

/// Whose a lab's objects are (their labels): the lab's name, this run, the owner process.
struct LabId<'a> {
    lab: &'a str,
    run_id: &'a str,
    owner: &'a str,
}

/// Create the lab's network and node containers, shield and seal them; with `wait_runtime`,
/// wait meanwhile until their runtimes answer.
async fn create_nodes(
    engine: &Engine,
    s: &Scenario,
    id: LabId<'_>,
    r: &mut Runner<'_>,
    base: &BaseSource,
    wait_runtime: bool,
) -> Result<Lab, Abort> {
    let node_image = images::tag("node", base);
    let n = s.nodes.len();
    let mut boot = node_boot(s).map_err(|e| Abort(exit::HOST, e))?;
    let title = format!("Preparing nodes\t{}", "📦".repeat(n));
    let log = PhaseLog::new();
    r.step_timed(&title, exit::HOST, &log, async {
        // The network, then the reaper: first, before any node; from here on, a SIGKILL of this
        // process leaves nothing behind. Whether the engine grants --privileged is asked
        // meanwhile (a throwaway container, labelled as the run's: the reaper or `clean`
        // removes it should this process die first).
        // The node image's shared programs are copied to the host meanwhile too (once per
        // image; a throwaway container as well). Where that fails (an engine on another host),
        // each node runs its image's own copies: the same programs, more memory, and a line says so.
        let labels = || crate::plan::run_labels(id.lab, id.run_id, id.owner);
        let ((plan, reaper), mode, programs) = futures_util::try_join!(
            async {
                let plan = create_network(engine, s, &id).await?;
                let reaper = crate::reaper::watch(engine, &plan, &node_image).await?;
                Ok::<_, LabError>((plan, reaper))
            },
            engine.detect_nested_mode(&node_image, labels()),
            async {
                // Off only to compare (or to rule the sharing out while debugging a node).
                if std::env::var("CLUSTERLAB_SHARED_PROGRAMS").as_deref() == Ok("off") {
                    return Ok(Err("CLUSTERLAB_SHARED_PROGRAMS=off".to_string()));
                }
                Ok(images::shared_programs(engine, &node_image, labels()).await.map_err(|e| e.to_string()))
            }
        )?;
        let shared = match programs {
            Ok(binds) => {
                boot.binds.extend(binds);
                None
            }
            Err(e) => Some(format!("each node reads its own copy of its programs: {e}")),
        };
        log.mark("network, reaper".into());
        let boot = &boot;
        futures_util::future::try_join_all(plan.nodes.iter().map(|node| engine.create_node(&plan, node, &node_image, mode, boot))).await?;
        log.mark("nodes started".into());
        let why = match mode {
            NestedMode::Privileged => "privileged",
            NestedMode::CapSet => "cap set: --privileged is refused on this host",
        };
        let lab = Lab { engine: engine.clone(), plan, scenario: s.clone(), base: base.clone() };
        // The runtimes start with the nodes and need nothing from the seal: they are waited
        // for meanwhile (the stack's first packet is sent after both, by `install`).
        let sealed = async {
            // Every node shows the host-global sysctl trees (kernel, vm, fs) read-only before
            // its stack starts: what runs in a node may then change only the node's own
            // (network) settings. The edge waits for that in the same exec.
            crate::edge::seal(&lab, HOST_SHIELDED, |n| LabError::HostShield { node: n.name.clone(), container: n.container.clone() })
                .await?;
            log.mark("nodes shielded and sealed".into());
            Ok::<_, LabError>(())
        };
        let stack = AnyStack::new(&lab);
        let runtime = async {
            if wait_runtime {
                log.mark(stack.runtime().await?);
            }
            Ok::<_, LabError>(())
        };
        futures_util::try_join!(sealed, runtime)?;
        drop(stack);
        let mut lines = vec![
            format!("{n} nodes on {} ({why})", lab.plan.subnet),
            "host kernel settings read-only inside every node".into(),
            format!("a closed world: nothing leaves through the lab interface except to {}", crate::edge::allowed(&lab).join(", ")),
        ];
        lines.extend(shared);
        lines.extend(reaper);
        Ok((lab, lines))
    })
    .await
}

/// Holds in a node whose host-global sysctl trees are mounted read-only (the node's start does it).
const HOST_SHIELDED: &str =
    "for d in kernel vm fs; do awk -v m=/proc/sys/$d '$2==m && $4 ~ /^ro(,|$)/ {f=1} END {exit !f}' /proc/mounts || exit 1; done";

/// The images an install loads into the nodes: the probe's (swarm), the tools' (swarm, for
/// benches), and every service's.
fn workload_images(lab: &Lab) -> Vec<String> {
    let mut workload: Vec<String> = Vec::new();
    if lab.scenario.stack == StackKind::Swarm {
        workload.push(lab.probe_image());
        if lab.scenario.steps.iter().any(|st| matches!(st, Step::Bench(_))) {
            workload.push(lab.image("tools"));
        }
    }
    for s in &lab.scenario.services {
        let t = lab.workload(&s.image);
        if !workload.contains(&t) {
            workload.push(t);
        }
    }
    workload
}

/// Wait for the nodes' runtimes (unless `runtime_ready`: the bring-up waited for them while
/// sealing the nodes), load the images, install the stack.
async fn install(lab: &Lab, stack: &AnyStack<'_>, r: &mut Runner<'_>, runtime_ready: bool) -> Result<(), Abort> {
    let workload = workload_images(lab);
    let log = PhaseLog::new();
    let title = match lab.scenario.stack {
        StackKind::Swarm => "Loading images, forming the swarm\t🚚",
        StackKind::Kubernetes => "Loading images into nodes\t🚚",
    };
    let prepare = async {
        if !runtime_ready {
            log.mark(stack.runtime().await?);
        }
        stack.prepare(&workload, &mut |l| log.mark(l)).await
    };
    r.step_phased(title, exit::STACK, &log, prepare).await?;
    let title = match lab.scenario.stack {
        StackKind::Swarm => "Starting swarm\t🐳",
        StackKind::Kubernetes => "Starting Kubernetes\t☸",
    };
    let log = PhaseLog::new();
    r.step_phased(title, exit::STACK, &log, stack.install(&mut |l| log.mark(l))).await
}

fn abs_path(p: &str) -> String {
    std::fs::canonicalize(p).map(|x| x.display().to_string()).unwrap_or_else(|_| p.to_string())
}

/// Run the scenario's steps on a lab that is up; returns the check tallies.
async fn run_steps(lab: &Lab, stack: &AnyStack<'_>, r: &mut Runner<'_>, st: &mut StepState) -> Result<(), Abort> {
    // Streams no step starts run from before the first step to after the last.
    for s in &lab.scenario.streams {
        if !lab.scenario.steps.iter().any(|step| matches!(step, Step::StartStream(n) if n == &s.name)) {
            st.streams.start(lab, stack, s, r).await?;
        }
    }
    for step in &lab.scenario.steps {
        if let Err(abort) = st.run(lab, stack, r, step).await {
            // A run that ends on a step still reports the traffic that ran up to it.
            st.stop_streams(lab, stack, r).await;
            return Err(abort);
        }
    }
    st.stop_streams(lab, stack, r).await;
    Ok(())
}

/// What running steps keeps from one step to the next: the host's measured facts, the faults
/// applied, those this host cannot apply (with why: checks and benches run while one of them
/// "is applied" are unsupported — never a pass, never a fail of the lab), the streams and their
/// markers, and the tallies. `run`, `check` on a kept lab and the library's `Lab` all step
/// through this one path.
pub struct StepState {
    facts: HostFacts,
    applied: BTreeMap<String, FaultHandle>,
    cannot: BTreeMap<String, String>,
    streams: Streams,
    pub summary: Summary,
    /// Replicas each scaled service was last scaled to (the scenario's count until then).
    scaled: BTreeMap<String, u32>,
    /// Whether the stack is installed: from the start, unless the scenario installs in its
    /// steps; then after an install that succeeded. (Files are checked for this when they are
    /// read; the library's `Lab` runs steps by name, in any order, and is checked here.)
    installed: bool,
}

impl StepState {
    fn new(facts: HostFacts, installed: bool) -> StepState {
        StepState {
            installed,
            facts,
            applied: BTreeMap::new(),
            cannot: BTreeMap::new(),
            streams: Streams::default(),
            summary: Summary::default(),
            scaled: BTreeMap::new(),
        }
    }

    /// Run one step, and leave its marker on the streams' timelines.
    async fn run(&mut self, lab: &Lab, stack: &AnyStack<'_>, r: &mut Runner<'_>, step: &Step) -> Result<(), Abort> {
        let began = crate::stream::now_ms();
        if let Step::Apply(name) = step {
            if let Some(why) = self.facts.cannot(&lab.scenario.fault(name).expect("validated fault").spec) {
                self.streams.unsupported.push(format!("fault {name} cannot be applied here: {why}"));
            }
        }
        let res = run_step(lab, stack, r, self, step).await;
        self.streams.markers.push(marker(step, began, crate::stream::now_ms()));
        res
    }

    /// Stop every stream still running and report it.
    async fn stop_streams(&mut self, lab: &Lab, stack: &AnyStack<'_>, r: &mut Runner<'_>) {
        let names: Vec<String> = self.streams.running.keys().cloned().collect();
        for n in names {
            self.streams.stop(lab, stack, &n, r, &mut self.summary).await;
        }
    }
}

/// Streams started and the markers of the steps they run across.
#[derive(Default)]
struct Streams {
    running: BTreeMap<String, (crate::stream::Running, usize)>,
    markers: Vec<crate::stream::timeline::Marker>,
    agent_installed: bool,
    /// Faults that could not be applied here: a stream across one is unsupported.
    unsupported: Vec<String>,
}

impl Streams {
    async fn start(&mut self, lab: &Lab, stack: &AnyStack<'_>, s: &crate::model::Stream, r: &mut Runner<'_>) -> Result<(), Abort> {
        // Swarm's VIP and routing mesh need IPVS: a check of the same path says whether this host has it.
        let probe_kind = match s.to {
            crate::model::StreamTo::Replicas => None,
            crate::model::StreamTo::Vip => Some(CheckKind::Vip),
            crate::model::StreamTo::NodePort => Some(CheckKind::NodePort),
        };
        if let Some(kind) = probe_kind {
            let mut c = crate::model::Check::plain(&s.service, kind);
            c.name = s.name.clone();
            if let Some(why) = stack.unsupported(&c) {
                r.emit(Event::Info(format!("stream {}: unsupported here: {why}", s.name)));
                self.unsupported.push(format!("stream {}: {why}", s.name));
                return Ok(());
            }
        }
        let install = !self.agent_installed;
        let running = r
            .step(&format!("Start stream {}\t🚦", s.name), exit::STACK, async {
                if install {
                    crate::stream::install_agent(lab).await?;
                }
                let run = crate::stream::start(lab, stack, s).await?;
                let lines = run.notes().to_vec();
                Ok((run, lines))
            })
            .await?;
        self.agent_installed = true;
        self.running.insert(s.name.clone(), (running, self.unsupported.len()));
        Ok(())
    }

    async fn stop(&mut self, lab: &Lab, stack: &AnyStack<'_>, name: &str, r: &mut Runner<'_>, sum: &mut Summary) {
        let Some((run, since)) = self.running.remove(name) else { return };
        r.emit(Event::StepStart { title: format!("Stream {name}") });
        let mut report = run.stop(lab, stack, &self.markers).await;
        // A fault this host could not apply while the stream ran: its figures say nothing of it.
        if let Some(why) = self.unsupported.get(since) {
            report.outcome = Outcome::Unsupported;
            report.summary = format!("unsupported: {why}; measured without it: {}", report.summary);
        }
        sum.tally(report.outcome);
        r.emit(Event::Stream(Box::new(report)));
    }
}

/// A step as a marker on stream timelines.
fn marker(step: &Step, start_ms: f64, end_ms: f64) -> crate::stream::timeline::Marker {
    let (label, fault, applies) = match step {
        Step::Apply(f) => (format!("apply {f}"), Some(f.clone()), true),
        Step::Revert(f) => (format!("revert {f}"), Some(f.clone()), false),
        Step::Scale { service, replicas } => (format!("scale {service} to {replicas}"), None, false),
        Step::Check(c) => (format!("check {}", c.name), None, false),
        Step::Bench(b) => (format!("bench {}", b.name), None, false),
        Step::StartStream(n) => (format!("start stream {n}"), None, false),
        Step::Wait(d) => (format!("wait {}", crate::model::stream::secs_text(*d)), None, false),
        Step::StopStream(n) => (format!("stop stream {n}"), None, false),
        Step::Install(i) => (format!("install {}", i.name), None, false),
    };
    crate::stream::timeline::Marker { start_ms, end_ms, label, fault, applies }
}

/// Run one step.
async fn run_step(lab: &Lab, stack: &AnyStack<'_>, r: &mut Runner<'_>, st: &mut StepState, step: &Step) -> Result<(), Abort> {
    let StepState { facts, applied, cannot, streams, summary: sum, scaled, installed } = st;
    let needs_stack = matches!(step, Step::Check(_) | Step::Bench(_) | Step::Scale { .. } | Step::StartStream(_));
    if needs_stack && !*installed {
        let what = match step {
            Step::Check(c) => format!("check {}", c.name),
            Step::Bench(b) => format!("bench {}", b.name),
            Step::Scale { service, .. } => format!("scale {service}"),
            Step::StartStream(n) => format!("stream {n}"),
            _ => String::new(),
        };
        return Err(Abort(exit::STACK, LabError::NotInstalled { step: what }));
    }
    match step {
        Step::Install(i) => *installed = install_step(lab, stack, r, applied, sum, i).await?,
        Step::StartStream(n) => {
            let s = lab.scenario.streams.iter().find(|s| &s.name == n).expect("validated stream");
            streams.start(lab, stack, s, r).await?;
        }
        Step::StopStream(n) => streams.stop(lab, stack, n, r, sum).await,
        Step::Wait(d) => {
            let title = format!("Wait {}\t⏳", crate::model::stream::secs_text(*d));
            r.step(&title, exit::STACK, async {
                tokio::time::sleep(*d).await;
                Ok(((), vec![]))
            })
            .await?;
        }
        Step::Apply(name) => {
            let f = lab.scenario.fault(name).expect("validated fault");
            let h = FaultHandle::new(lab, f);
            let title = format!("Apply fault {name}\t💥");
            r.emit(Event::StepStart { title: title.clone() });
            let t = Instant::now();
            // Decided before applying, from what the host was measured to do: a fault this
            // host cannot apply is unsupported (and so is every step while it "is applied");
            // any failure while applying is an error that ends the run.
            if let Some(why) = facts.cannot(&f.spec) {
                let detail = vec![format!("unsupported here: {why}; checks while it is applied are reported unsupported")];
                r.emit(Event::StepEnd(StepRecord::new(&title, true, 0.0, detail)));
                cannot.insert(name.clone(), why);
                return Ok(());
            }
            let applying = h.apply(lab).await;
            let secs = t.elapsed().as_secs_f64();
            match applying {
                Ok(()) => {
                    r.emit(Event::StepEnd(StepRecord::new(&title, true, secs, h.describe())));
                    applied.insert(name.clone(), h);
                }
                Err(e) => {
                    r.emit(Event::StepEnd(StepRecord::new(&title, false, secs, vec![])));
                    return Err(Abort(exit::STACK, e));
                }
            }
        }
        Step::Revert(name) if cannot.contains_key(name) => {
            cannot.remove(name);
            let detail = vec!["nothing to revert: it could not be applied here".into()];
            r.emit(Event::StepEnd(StepRecord::new(&format!("Revert fault {name}\t🩹"), true, 0.0, detail)));
        }
        Step::Revert(name) => {
            let h = applied.remove(name).expect("validated revert");
            r.step(&format!("Revert fault {name}\t🩹"), exit::STACK, async {
                let c = h.revert(lab).await?;
                Ok(((), h.reverted(&c)))
            })
            .await?;
        }
        Step::Scale { service, replicas } => {
            r.step(&format!("Scale {service} to {replicas}\t📐"), exit::STACK, async {
                stack.scale(service, *replicas).await.map(|rs| ((), vec![format!("placed: {}", placement(&rs))]))
            })
            .await?;
            scaled.insert(service.clone(), *replicas);
        }
        Step::Bench(b) => {
            r.emit(Event::StepStart { title: format!("Bench {}", b.name) });
            let mut report = match crate::bench::run_bench(lab, stack, b).await {
                Ok(rep) => rep,
                Err(e) => crate::bench::BenchReport::failed(b, e.to_string()),
            };
            if let Some(why) = cannot_reason(cannot) {
                report.outcome = Outcome::Unsupported;
                report.summary = format!("unsupported: {why}; measured without it: {}", report.summary);
            }
            // The faults applied while it ran, counted after it: their cost is in the table.
            for (name, h) in applied.iter() {
                if let Ok(c) = h.counters(lab).await {
                    report.faults.push(if c.is_empty() { format!("fault {name} applied") } else { describe_counters(name, &c) });
                }
            }
            sum.tally(report.outcome);
            r.emit(Event::Bench(Box::new(report)));
        }
        Step::Check(check) => {
            r.emit(Event::StepStart { title: format!("Check {}", check.name) });
            let t = Instant::now();
            let before = Snapshot::take(lab, applied).await;
            let unsupported = stack.unsupported(check).or_else(|| cannot_reason(cannot));
            let desired = scaled.get(&check.service).copied().or_else(|| lab.scenario.service(&check.service).map(|s| s.replicas));
            // Observed once, or — with `within` — again until the expectation holds or the
            // time is up (a path a fault breaks, or a repair heals, after a while).
            let mut attempts = 0;
            // The first observation that did not hold: a check that holds later says what was
            // wrong until then, not only how long it took.
            let mut first_miss: Option<CheckReport> = None;
            let mut report = loop {
                attempts += 1;
                let report = observe_and_judge(lab, stack, check, unsupported.as_deref(), desired).await;
                let waited = t.elapsed();
                match check.within {
                    Some(w) if report.outcome == Outcome::Fail && waited + WITHIN_PAUSE < w => {
                        first_miss.get_or_insert(report);
                        tokio::time::sleep(WITHIN_PAUSE).await;
                    }
                    _ => break report,
                }
            };
            report.attempts = attempts;
            if let Some(w) = check.within {
                let took = t.elapsed().as_secs_f64();
                if report.outcome == Outcome::Pass {
                    report.held_after_secs = Some(took);
                    report.summary.push_str(&format!("; held after {took:.1} s ({attempts} observations)"));
                    if let Some(line) = first_miss.as_ref().and_then(until_held) {
                        report.observation.notes.push(line);
                    }
                } else if report.outcome == Outcome::Fail {
                    report.summary.push_str(&format!("; did not hold within {} s ({attempts} observations)", w.as_secs_f64()));
                }
            }
            // Counters of every applied fault, and proof that the named ones were hit. A
            // named fault whose counters cannot be read (before or after) is an error: the
            // proof is missing, and a missing proof is never a pass.
            let mut after = BTreeMap::new();
            for (name, h) in applied.iter() {
                let named = check.faults_hit.contains(name);
                match h.counters(lab).await {
                    Ok(c) => {
                        if !c.is_empty() {
                            report.faults.push(describe_counters(name, &c));
                        }
                        if named {
                            match before.faults.get(name) {
                                Some(was) => {
                                    if let Some((outcome, why)) =
                                        crate::expect::fault_hit(report.outcome, name, was.values().sum(), c.values().sum())
                                    {
                                        report.outcome = outcome;
                                        report.summary.push_str(&format!("; {why}"));
                                    }
                                }
                                None => counters_missing(&mut report, name, "before the check".into()),
                            }
                        }
                        after.insert(name.clone(), c);
                    }
                    Err(e) if named => counters_missing(&mut report, name, format!("after the check: {e}")),
                    Err(e) => report.faults.push(format!("fault {name}: its counters could not be read: {e}")),
                }
            }
            // Why pairs did not answer (expected or not), while the faults are still applied.
            // Any request lost (expected or not) earns a cause line.
            let silent = report.observation.cells.iter().flatten().any(|c| c.hits == 0 || c.hits < c.tries)
                || report.observation.unanswered.iter().any(|u| *u > 0);
            if silent || report.outcome != Outcome::Pass {
                let ev = diagnose::gather(lab, &report, applied, &before, &after, unsupported).await;
                report.diagnosis = diagnose::explain(&ev);
                if matches!(report.outcome, Outcome::Fail | Outcome::Error) {
                    match crate::evidence::collect(lab, &format!("check-{}", check.name)).await {
                        Ok(d) => {
                            let _ = std::fs::write(
                                d.join("diagnosis.json"),
                                serde_json::to_string_pretty(&(&ev, &report.diagnosis)).unwrap_or_default(),
                            );
                            report.evidence = Some(d.display().to_string());
                            sum.evidence = d.parent().map(|p| p.display().to_string());
                        }
                        Err(e) => r.emit(Event::Info(format!("could not write evidence: {e}"))),
                    }
                }
            }
            report.secs = t.elapsed().as_secs_f64();
            sum.tally(report.outcome);
            r.emit(Event::Check(Box::new(report)));
        }
    }
    Ok(())
}

/// An install as a step of the story: the stack's prepare and install on the nodes as they are
/// (bare, or installed before: every install step is idempotent), bounded by the step's timeout,
/// and judged as the file expects — success, or failure at a stage. The faults applied meanwhile
/// are counted across it and, after it, see packets first again; a failure gets its cause. An
/// install that must succeed and fails ends the run: later steps would act on no stack.
async fn install_step(
    lab: &Lab,
    stack: &AnyStack<'_>,
    r: &mut Runner<'_>,
    applied: &mut BTreeMap<String, FaultHandle>,
    sum: &mut Summary,
    i: &crate::model::Install,
) -> Result<bool, Abort> {
    r.emit(Event::StepStart { title: format!("Install {}", i.name) });
    let before = Snapshot::take(lab, applied).await;
    for h in applied.values_mut() {
        h.across_install = true;
    }
    let log = PhaseLog::new();
    let workload = workload_images(lab);
    let ran = tokio::time::timeout(i.timeout, async {
        log.mark(stack.runtime().await?);
        stack.prepare(&workload, &mut |l| log.mark(l)).await?;
        stack.install(&mut |l| log.mark(l)).await
    })
    .await;
    let secs = log.start.elapsed().as_secs_f64();
    let phases: Vec<String> =
        log.marks.lock().map(|m| m.iter().map(|p| format!("{} · {:.1} s", p.what, p.at_secs)).collect()).unwrap_or_default();
    let res = ran.unwrap_or_else(|_| {
        Err(LabError::InstallTimeout { secs: i.timeout.as_secs(), done: phases.last().cloned().unwrap_or_else(|| "nothing".into()) })
    });
    if res.is_ok() {
        for h in applied.values() {
            h.reassert(lab).await.map_err(|e| Abort(exit::STACK, e))?;
        }
    }
    let mut report = CheckReport::new(&i.name, "install", "");
    report.observation.notes = phases;
    // The failure in its own words: an install's error is its stage around the command's.
    let inner = |e: &LabError| match e {
        LabError::Install { source, .. } => source.to_string(),
        e => e.to_string(),
    };
    let first = |e: &LabError| inner(e).lines().next().unwrap_or("").to_string();
    (report.outcome, report.summary) = judge_install(res.as_ref().map_err(|e| (e.stage(), first(e))), i.fails_at);
    if let Err(e) = &res {
        // The failing command's own words (its output's tail), under the summary's first line.
        report.observation.notes.extend(inner(e).lines().skip(1).map(|l| l.trim_end().to_string()));
    }
    let mut after = BTreeMap::new();
    for (name, h) in applied.iter() {
        match h.counters(lab).await {
            Ok(c) => {
                let was = before.faults.get(name);
                let during: crate::fault::Counters =
                    c.iter().map(|(n, p)| (n.clone(), p.saturating_sub(was.and_then(|w| w.get(n)).copied().unwrap_or(0)))).collect();
                if !during.is_empty() {
                    report.faults.push(format!("{} while the install ran", describe_counters(name, &during)));
                }
                after.insert(name.clone(), c);
            }
            Err(e) => report.faults.push(format!("fault {name}: its counters could not be read: {e}")),
        }
    }
    if let Err(e) = &res {
        // One pair for the diagnosis: the node whose command failed, and the stage.
        let node = e.node().map(str::to_string).unwrap_or_else(|| lab.plan.leader().name.clone());
        report.observation.rows = vec![node.clone()];
        report.observation.cols = vec![crate::vocab::Target { label: format!("install {}", stage_word(e.stage())), node }];
        report.observation.cells = vec![vec![crate::vocab::Cell { hits: 0, tries: 1, detail: first(e), ..Default::default() }]];
        report.expected = vec![vec![i.fails_at.is_none()]];
        let ev = diagnose::gather(lab, &report, applied, &before, &after, None).await;
        report.diagnosis = diagnose::explain(&ev);
        // The pair was for the diagnosis: an install's report has no matrix.
        report.observation.rows.clear();
        report.observation.cols.clear();
        report.observation.cells.clear();
        report.expected.clear();
        if report.outcome == Outcome::Fail {
            match crate::evidence::collect(lab, &format!("install-{}", i.name)).await {
                Ok(d) => {
                    report.evidence = Some(d.display().to_string());
                    sum.evidence = d.parent().map(|p| p.display().to_string());
                }
                Err(e) => r.emit(Event::Info(format!("could not write evidence: {e}"))),
            }
        }
    }
    report.secs = secs;
    sum.tally(report.outcome);
    r.emit(Event::Check(Box::new(report)));
    match res {
        Err(e) if i.fails_at.is_none() => Err(Abort(exit::STACK, e)),
        r => Ok(r.is_ok()),
    }
}

/// A failure's install stage as the file names it; a failure outside every stage (the install's
/// own timeout) says so.
fn stage_word(s: Option<InstallStage>) -> &'static str {
    s.map(|s| s.word()).unwrap_or("no stage (the install itself)")
}

/// An install's verdict: `ran` is Ok, or the stage it failed at (None: outside every stage,
/// e.g. its timeout) and the failure's first line; `fails_at` is what the file expects (None:
/// success). Failing at another stage than the one expected is a fail: the file names the
/// failure it reproduces, and any other is not it.
pub fn judge_install(ran: Result<&(), (Option<InstallStage>, String)>, fails_at: Option<InstallStage>) -> (Outcome, String) {
    match (ran, fails_at) {
        (Ok(_), None) => (Outcome::Pass, "installed".into()),
        (Ok(_), Some(want)) => (Outcome::Fail, format!("installed, and the file expects it to fail at {want}")),
        (Err((got, why)), Some(want)) if got == Some(want) => (Outcome::Pass, format!("failed at {want}, as the file expects: {why}")),
        (Err((got, why)), Some(want)) => {
            (Outcome::Fail, format!("failed at {}, and the file expects it to fail at {want}: {why}", stage_word(got)))
        }
        (Err((got, why)), None) => (Outcome::Fail, format!("failed at {}: {why}", stage_word(got))),
    }
}

/// A lab brought up for use step by step (the library's `Lab`): the lab, and the state
/// `run_steps` keeps across steps, kept between calls.
pub struct Session {
    pub lab: Lab,
    state: StepState,
}

/// Images, nodes (with the run's reaper first) and the stack, as `run` does, and nothing more.
/// On failure, whatever was created is removed before the error returns.
pub async fn bring_up(engine: &Engine, s: &Scenario, run_id: &str, keep: bool, rep: &mut Reporters) -> Result<Session, (i32, LabError)> {
    let mut r = Runner { rep, log: Vec::new() };
    r.emit(Event::RunStart { scenario: s.name.clone(), file: s.source.clone(), lab: s.name.clone(), run_id: run_id.to_string() });
    let base = BaseSource::default();
    let needed = needed_images(s);
    r.step("Ensuring images\t🖼", exit::HOST, async {
        let built = images::ensure(engine, &needed, &base, &mut |_| {}).await?;
        Ok(((), built))
    })
    .await
    .map_err(|Abort(c, e)| (c, e))?;
    if engine.lab_exists(&s.name).await.map_err(|e| (exit::HOST, e))? {
        return Err((exit::HOST, LabError::LabExists { lab: s.name.clone() }));
    }
    let owner = crate::owner::current(keep);
    let up = async {
        let now = !s.installs_in_steps();
        let lab = create_nodes(engine, s, LabId { lab: &s.name, run_id, owner: &owner }, &mut r, &base, now).await?;
        let stack = AnyStack::new(&lab);
        if now {
            install(&lab, &stack, &mut r, true).await?;
        }
        if keep {
            record_scenario(&lab).await.map_err(|e| Abort(exit::STACK, e))?;
        }
        let facts = measure_facts(&lab).await.map_err(|e| Abort(exit::HOST, e))?;
        Ok::<_, Abort>((lab, facts))
    }
    .await;
    match up {
        Ok((lab, facts)) => Ok(Session { lab, state: StepState::new(facts, !s.installs_in_steps()) }),
        Err(Abort(code, e)) => {
            let _ = engine.remove_labelled(Some(&s.name), Some(run_id)).await;
            Err((code, e))
        }
    }
}

impl Session {
    /// Run one step of the story (a check, a bench, an apply, a revert, a scale, a wait), its
    /// events to `rep`; an error is one that ends a run (exit code and cause).
    pub async fn step(&mut self, step: &Step, rep: &mut Reporters) -> Result<(), (i32, LabError)> {
        let mut r = Runner { rep, log: Vec::new() };
        let stack = AnyStack::new(&self.lab);
        stack.learn().await.map_err(|e| (exit::STACK, e))?;
        self.state.run(&self.lab, &stack, &mut r, step).await.map_err(|Abort(c, e)| (c, e))
    }

    /// Faults applied now.
    pub fn applied(&self) -> Vec<String> {
        self.state.applied.keys().cloned().collect()
    }

    /// The tallies of every step so far.
    pub fn summary(&self) -> &Summary {
        &self.state.summary
    }
}

/// How long a check with `within` waits between two observations.
const WITHIN_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Observe a check once and judge what was seen. `desired`: the replicas the service should have (the
/// scenario's count, or the last scale step's).
async fn observe_and_judge(
    lab: &Lab,
    stack: &AnyStack<'_>,
    check: &crate::model::Check,
    unsupported: Option<&str>,
    desired: Option<u32>,
) -> CheckReport {
    let mut report = CheckReport::new(&check.name, crate::model::kind_name(check.kind), &check.service);
    match observe(lab, stack, check).await {
        Err(e) => {
            report.summary = "could not run".into();
            report.reason = Some(e.to_string());
        }
        Ok((obs, running)) => {
            let v = judge(check, &obs, unsupported);
            report.outcome = v.outcome;
            report.summary = v.summary;
            report.reason = unsupported.map(str::to_string);
            report.expected = v.expected;
            report.pair_ok = v.pair_ok;
            report.observation = obs;
            if let (Some(running), Some(desired)) = (running, desired) {
                short_of_replicas(&mut report, &check.service, &running, desired);
            }
        }
    }
    report
}

/// A check sees the replicas that run when it looks. Fewer than the service should have (a
/// stack moving tasks: swarm reschedules those of a node it lost, and for a while runs fewer)
/// means the pairs it did not see were never asked: a fail, never a pass on what was left.
fn short_of_replicas(report: &mut CheckReport, service: &str, running: &[Replica], desired: u32) {
    let n = running.len() as u32;
    if n >= desired || !matches!(report.outcome, Outcome::Pass | Outcome::Fail) {
        return;
    }
    report.outcome = Outcome::Fail;
    report.summary.push_str(&format!("; {n} of {desired} replicas of {service} running"));
    let seen = if running.is_empty() { "none".to_string() } else { placement(running) };
    report.diagnosis.push(format!(
        "{service} runs {n} of the {desired} replicas it should ({seen}): the pairs to the others were never asked; the stack is moving tasks or lost them"
    ));
}

/// What the first observation of a check that held later saw against the file: the pairs that
/// did not do as expected, with their answered/sent requests (`worker-2 → web.2@manager 0/3`).
fn until_held(first: &CheckReport) -> Option<String> {
    let pairs: Vec<String> =
        first.misses().iter().map(|(from, to, cell)| format!("{from} → {} {}/{}", to.label, cell.hits, cell.tries)).collect();
    (!pairs.is_empty()).then(|| format!("before it held, the first observation: {} against the file", pairs.join(", ")))
}

/// A check that names a fault under faults-hit whose counters could not be read cannot prove
/// the fault was hit: an error (unless it already failed or is unsupported).
fn counters_missing(report: &mut CheckReport, fault: &str, when: String) {
    if matches!(report.outcome, Outcome::Pass) {
        report.outcome = Outcome::Error;
    }
    let why = format!("faults-hit: the counters of fault {fault} could not be read {when}");
    report.summary.push_str(&format!("; {why}"));
    report.reason = Some(report.reason.take().map(|r| format!("{r}; {why}")).unwrap_or(why));
}

/// Run the host facts probe in the lab's first node.
pub async fn measure_facts(lab: &Lab) -> Result<HostFacts, LabError> {
    let node = lab.plan.leader().name.clone();
    let out = lab.sh_raw(&node, crate::facts::SCRIPT).await?;
    Ok(HostFacts::parse(&out.stdout))
}

/// Why steps run while a fault this host could not apply "is applied" are unsupported.
fn cannot_reason(cannot: &BTreeMap<String, String>) -> Option<String> {
    cannot.iter().next().map(|(f, why)| format!("fault {f} cannot be applied on this host ({why})"))
}

/// Observe one check: the generic probes for service paths, the stack for its own kinds.
/// A check runs even when unsupported, to show what it sees.
/// Observe a check; with the replicas it found running (none for an API check, which asks no
/// replica).
async fn observe(
    lab: &Lab,
    stack: &AnyStack<'_>,
    check: &crate::model::Check,
) -> Result<(crate::probe::Observation, Option<Vec<Replica>>), LabError> {
    if check.kind == CheckKind::Api {
        return Ok((stack.observe_special(check).await?, None));
    }
    let replicas = stack.replicas(&check.service).await?;
    let paths = stack.paths(&check.service, check.client).await?;
    Ok((probe::observe(lab, check, &replicas, &paths).await?, Some(replicas)))
}

/// Plan a lab for this scenario on this engine: a subnet no network uses. (Whether the name is
/// taken is decided once, by the caller, before anything is created.)
pub async fn plan_lab(engine: &Engine, s: &Scenario, lab: &str, run_id: &str, owner: &str) -> Result<LabPlan, LabError> {
    let used = engine.used_subnets().await?;
    let mut p = plan::plan(s, lab, run_id, &used).map_err(|message| LabError::Plan { lab: lab.to_string(), message })?;
    p.owner = owner.to_string();
    Ok(p)
}

/// Run one scenario end to end. Never panics on lab errors; the summary carries the exit code.
pub async fn run(engine: &Engine, s: &Scenario, run_id: &str, opts: &RunOptions, rep: &mut Reporters) -> Summary {
    let start = Instant::now();
    let lab_name = opts.lab.clone().unwrap_or_else(|| s.name.clone());
    let mut sum = Summary::default();
    let mut r = Runner { rep, log: Vec::new() };
    r.emit(Event::RunStart { scenario: s.name.clone(), file: s.source.clone(), lab: lab_name.clone(), run_id: run_id.to_string() });
    let mut created = false;

    let result: Result<(), Abort> = async {
        let needed = needed_images(s);
        r.step("Ensuring images\t🖼", exit::HOST, async {
            let mut lines = Vec::new();
            let built = images::ensure(engine, &needed, &opts.base, &mut |l| lines.push(l)).await?;
            if built.is_empty() {
                lines = vec![format!("all present: {}", needed.iter().map(|n| images::tag(n, &opts.base)).collect::<Vec<_>>().join(", "))];
            }
            Ok(((), lines))
        })
        .await?;
        if engine.lab_exists(&lab_name).await.map_err(|e| Abort(exit::HOST, e))? {
            if !opts.up_only {
                return Err(Abort(exit::HOST, LabError::LabExists { lab: lab_name.clone() }));
            }
            // `up` on a lab that exists converges it to the scenario given (this FILE, not the
            // one it was made from): every install step is idempotent, so this is safe. Its
            // nodes and stack must be the lab's: those cannot change under a running lab.
            let mut lab = attach(engine, &lab_name, &opts.base)
                .await
                .map_err(|m| Abort(exit::HOST, LabError::Plan { lab: lab_name.clone(), message: m }))?;
            same_shape(&lab, s).map_err(|m| Abort(exit::INVALID, LabError::Plan { lab: lab_name.clone(), message: m }))?;
            lab.scenario = s.clone();
            r.emit(Event::Info(format!("lab {lab_name} exists (run {}); installing again over it", lab.plan.run_id)));
            let stack = AnyStack::new(&lab);
            install(&lab, &stack, &mut r, false).await?;
            return record_scenario(&lab).await.map_err(|e| Abort(exit::STACK, e));
        }
        // From here on, teardown removes whatever this run created (found by its run label).
        created = true;
        // A kept lab is owned by no process: only `down` or `clean --all` remove it.
        let owner = crate::owner::current(opts.keep || opts.up_only);
        // A scenario with install steps installs there (`up` installs at once: it runs no step).
        let now = !s.installs_in_steps() || opts.up_only;
        let lab = create_nodes(engine, s, LabId { lab: &lab_name, run_id, owner: &owner }, &mut r, &opts.base, now).await?;
        let stack = AnyStack::new(&lab);
        let mut result = if now { install(&lab, &stack, &mut r, true).await } else { Ok(()) };
        if result.is_ok() && (opts.keep || opts.up_only) {
            result = record_scenario(&lab).await.map_err(|e| Abort(exit::STACK, e));
        }
        if result.is_ok() && !opts.up_only {
            result = match measure_facts(&lab).await {
                Ok(facts) => {
                    let mut st = StepState::new(facts, !s.installs_in_steps());
                    let res = run_steps(&lab, &stack, &mut r, &mut st).await;
                    sum = st.summary;
                    res
                }
                Err(e) => Err(Abort(exit::HOST, e)),
            };
        }
        // Before teardown: what the nodes looked like at the end of a failed run (each failed
        // check already wrote its own, while its faults were applied).
        if result.is_err() || sum.failed > 0 || sum.errors > 0 {
            match crate::evidence::collect(&lab, "end").await {
                Ok(d) => {
                    let root = d.parent().map(|p| p.display().to_string()).unwrap_or_default();
                    r.emit(Event::Info(format!("failure bundle (per failed check and at the end: logs, iptables, links, routes, stack state; events.jsonl) in {root}")));
                    sum.evidence = Some(root);
                }
                Err(e) => r.emit(Event::Info(format!("could not write evidence: {e}"))),
            }
        }
        result
    }
    .await;

    if let Err(Abort(code, e)) = &result {
        sum.exit_code = *code;
        sum.error = Some(e.to_string());
    }
    if created && (opts.keep || opts.up_only) {
        sum.kept = Some(format!("Lab {lab_name} kept. Remove it with: clusterlab down {lab_name}"));
    } else if created {
        let t = Instant::now();
        let title = "Deleting lab\t🧹";
        r.emit(Event::StepStart { title: title.into() });
        let removed = engine.remove_labelled(Some(&lab_name), Some(run_id)).await;
        let ok = removed.is_ok();
        let detail = match &removed {
            Ok(rm) => {
                vec![format!("{} containers, {} networks, {} volumes removed", rm.containers.len(), rm.networks.len(), rm.volumes.len())]
            }
            Err(e) => vec![e.to_string()],
        };
        r.emit(Event::StepEnd(StepRecord::new(title, ok, t.elapsed().as_secs_f64(), detail)));
        if let Err(e) = removed {
            if sum.exit_code == 0 {
                sum.exit_code = exit::TEARDOWN;
                sum.error = Some(e.to_string());
            }
        }
    }
    if sum.exit_code == 0 && (sum.failed > 0 || sum.errors > 0) {
        sum.exit_code = exit::CHECK_FAILED;
    }
    sum.secs = start.elapsed().as_secs_f64();
    let end = Event::RunEnd(sum.clone());
    if let Some(dir) = &sum.evidence {
        // The run's end goes into the bundle too: it holds the error that ended the run (a
        // failed step's own record names only the step).
        let mut log = r.log.join("\n");
        log.push('\n');
        log.push_str(&serde_json::to_string(&end).unwrap_or_default());
        log.push('\n');
        if let Err(e) = std::fs::write(std::path::Path::new(dir).join("events.jsonl"), log) {
            r.emit(Event::Info(format!("could not write the event log: {e}")));
        }
    }
    r.emit(end);
    sum
}

/// Run a scenario's steps — or only the check or bench named `only` — against a kept lab,
/// whose nodes and stack must be the scenario's (`clusterlab check LAB FILE [--step NAME]`).
/// The lab stays as it is: nothing is created, nothing torn down.
pub async fn run_on_kept(engine: &Engine, s: &Scenario, lab_name: &str, only: Option<&str>, rep: &mut Reporters) -> Summary {
    let start = Instant::now();
    let mut sum = Summary::default();
    let mut r = Runner { rep, log: Vec::new() };
    r.emit(Event::RunStart { scenario: s.name.clone(), file: s.source.clone(), lab: lab_name.to_string(), run_id: String::new() });
    let result: Result<(), Abort> = async {
        let mut lab = attach(engine, lab_name, &BaseSource::default())
            .await
            .map_err(|m| Abort(exit::HOST, LabError::Plan { lab: lab_name.into(), message: m }))?;
        same_shape(&lab, s).map_err(|m| Abort(exit::INVALID, LabError::Plan { lab: lab_name.into(), message: m }))?;
        lab.scenario = s.clone();
        if let Some(name) = only {
            let named = |st: &Step| matches!(st, Step::Check(c) if c.name == name) || matches!(st, Step::Bench(b) if b.name == name);
            lab.scenario.steps.retain(named);
            // One step alone: streams (which span steps) stay out of it.
            lab.scenario.streams.clear();
            if lab.scenario.steps.is_empty() {
                let names: Vec<String> = s
                    .steps
                    .iter()
                    .filter_map(|st| match st {
                        Step::Check(c) => Some(c.name.clone()),
                        Step::Bench(b) => Some(b.name.clone()),
                        _ => None,
                    })
                    .collect();
                let message = format!("{} has no check or bench named {name:?} (it has: {})", s.source, names.join(", "));
                return Err(Abort(exit::INVALID, LabError::Plan { lab: lab_name.into(), message }));
            }
        }
        let stack = AnyStack::new(&lab);
        stack.learn().await.map_err(|e| Abort(exit::STACK, e))?;
        let mut st = StepState::new(measure_facts(&lab).await.map_err(|e| Abort(exit::HOST, e))?, true);
        let res = run_steps(&lab, &stack, &mut r, &mut st).await;
        sum = st.summary;
        res
    }
    .await;
    if let Err(Abort(code, e)) = &result {
        sum.exit_code = *code;
        sum.error = Some(e.to_string());
    }
    if sum.exit_code == 0 && (sum.failed > 0 || sum.errors > 0) {
        sum.exit_code = exit::CHECK_FAILED;
    }
    sum.secs = start.elapsed().as_secs_f64();
    r.emit(Event::RunEnd(sum.clone()));
    sum
}

/// Can `s` be installed over this lab: the same nodes (names and roles) and the same stack?
fn same_shape(lab: &Lab, s: &Scenario) -> Result<(), String> {
    let have: Vec<(String, crate::model::Role)> = lab.plan.nodes.iter().map(|n| (n.name.clone(), n.role)).collect();
    let want: Vec<(String, crate::model::Role)> = s.nodes.iter().map(|n| (n.name.clone(), n.role)).collect();
    let names = |v: &[(String, crate::model::Role)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>().join(", ");
    if have != want {
        return Err(format!(
            "it has nodes {}, but {} declares {}; remove it first (`clusterlab down {}`) to make it anew",
            names(&have),
            s.source,
            names(&want),
            lab.plan.lab
        ));
    }
    if lab.scenario.stack != s.stack {
        return Err(format!(
            "it runs {:?}, but {} declares {:?}; remove it first (`clusterlab down {}`)",
            lab.scenario.stack, s.source, s.stack, lab.plan.lab
        ));
    }
    Ok(())
}

/// Where a kept lab's leader keeps the text of the scenario it was last installed from, so
/// fault verbs read that one (an `up FILE` over the lab changes it; a label cannot change).
const SCENARIO_COPY: &str = "/etc/clusterlab/scenario.yaml";
const KEPT_FROM: &str = "# clusterlab: installed from ";

/// Keep the scenario's text in the lab (read again from its file now: what was installed).
async fn record_scenario(lab: &Lab) -> Result<(), LabError> {
    let text = std::fs::read_to_string(&lab.scenario.source).unwrap_or_default();
    if text.is_empty() {
        return Ok(());
    }
    // A comment line first, naming the file (a YAML comment: the text still parses as it is).
    let text = format!("{KEPT_FROM}{}\n{text}", abs_path(&lab.scenario.source));
    let leader = lab.plan.leader().name.clone();
    let script = format!("mkdir -p /etc/clusterlab && cat > {SCENARIO_COPY}");
    lab.sh_in(&leader, "keeping the scenario in the lab", &script, Some(text.into())).await.map(|_| ())
}

/// Re-attach to a kept lab from its network's labels (for fault verbs).
pub async fn attach(engine: &Engine, lab: &str, base: &BaseSource) -> Result<Lab, String> {
    let nets = engine.lab_networks(Some(lab), None).await.map_err(|e| e.to_string())?;
    // The lab's own network carries the plan; a fault's side network (a stray proxy's) does not.
    let net = nets
        .iter()
        .find(|n| n.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_PLAN)))
        .or(nets.first())
        .ok_or_else(|| format!("no lab named {lab} on this engine (see `clusterlab ls`)"))?;
    let labels = net.labels.clone().unwrap_or_default();
    let plan: LabPlan = labels
        .get(LABEL_PLAN)
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or_else(|| format!("lab {lab} carries no readable plan label; was it made by another clusterlab version?"))?;
    let file = labels.get(LABEL_SCENARIO).cloned().unwrap_or_default();
    // The scenario the lab was last installed from, kept in it; else the file it was made from.
    let kept = engine
        .exec_within(&plan.leader().container, &["cat", SCENARIO_COPY], None, std::time::Duration::from_secs(15))
        .await
        .ok()
        .filter(|o| o.ok())
        .map(|o| o.stdout);
    let kept_from = kept.as_deref().and_then(|t| t.lines().next()?.strip_prefix(KEPT_FROM).map(str::to_string));
    let mut scenario = match kept {
        Some(text) => crate::model::parse_str(&text, &format!("{SCENARIO_COPY} in lab {lab}"))
            .map_err(|p| format!("cannot read the scenario kept in lab {lab}:\n{p}"))?,
        None => crate::model::load(std::path::Path::new(&file)).map_err(|p| format!("cannot re-read the scenario of lab {lab}:\n{p}"))?,
    };
    if scenario.source.is_empty() {
        scenario.source = kept_from.unwrap_or(file);
    }
    Ok(Lab { engine: engine.clone(), plan, scenario, base: base.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An install passes when it does what the file expects: succeed, or fail at the stage named —
    /// at another stage, or not at all, it fails, saying what happened and what was expected.
    #[test]
    fn an_install_is_judged_by_the_stage_it_failed_at() {
        use InstallStage::*;
        let failed = |s: Option<InstallStage>| Err::<&(), _>((s, "swarm join failed on node worker-1".to_string()));
        assert_eq!(judge_install(Ok(&()), None), (Outcome::Pass, "installed".into()));
        assert_eq!(
            judge_install(Ok(&()), Some(SwarmJoin)),
            (Outcome::Fail, "installed, and the file expects it to fail at swarm-join".into())
        );
        assert_eq!(
            judge_install(failed(Some(SwarmJoin)), Some(SwarmJoin)),
            (Outcome::Pass, "failed at swarm-join, as the file expects: swarm join failed on node worker-1".into())
        );
        let (o, why) = judge_install(failed(Some(Images)), Some(SwarmJoin));
        assert_eq!(
            (o, why.as_str()),
            (Outcome::Fail, "failed at images, and the file expects it to fail at swarm-join: swarm join failed on node worker-1")
        );
        let (o, why) = judge_install(failed(None), Some(SwarmJoin));
        assert!(o == Outcome::Fail && why.starts_with("failed at no stage (the install itself), and"), "{why}");
        assert_eq!(judge_install(failed(Some(SwarmJoin)), None).0, Outcome::Fail);
    }

    /// Fewer replicas running than the service should have turn a pass (or a fail) into a fail
    /// that names the ones seen; as many as it should, or more (old and new tasks during a move),
    /// leave the verdict alone, as do unsupported and errors.
    #[test]
    fn short_of_replicas_fails_what_it_could_not_ask() {
        let r = |task: &str, node: &str| Replica { task: task.into(), node: node.into(), identity: task.into(), ip: "10.0.1.5".into() };
        let one = vec![r("web.1", "manager")];
        let mut pass = CheckReport::new("after-split", "replicas", "web");
        pass.outcome = Outcome::Pass;
        pass.summary = "9/9 requests answered".into();
        short_of_replicas(&mut pass, "web", &one, 3);
        assert_eq!(pass.outcome, Outcome::Fail);
        assert_eq!(pass.summary, "9/9 requests answered; 1 of 3 replicas of web running");
        assert!(pass.diagnosis[0].starts_with("web runs 1 of the 3 replicas it should (web.1@manager)"), "{:?}", pass.diagnosis);
        for (running, outcome) in [(3, Outcome::Pass), (4, Outcome::Pass), (1, Outcome::Unsupported), (1, Outcome::Error)] {
            let mut c = CheckReport::new("c", "replicas", "web");
            c.outcome = outcome;
            let rs: Vec<Replica> = (0..running).map(|i| r(&format!("web.{i}"), "worker")).collect();
            short_of_replicas(&mut c, "web", &rs, 3);
            assert_eq!((c.outcome, c.diagnosis.len()), (outcome, 0), "{running} running, {outcome:?}");
        }
    }

    /// A check that held on a later observation names what its first one saw against the file,
    /// and only that; one that held at once has nothing to say.
    #[test]
    fn until_held_names_the_pairs_the_first_observation_missed() {
        use crate::vocab::{Cell, Target};
        let mut first = CheckReport::new("after-split", "replicas", "web");
        first.observation.rows = vec!["manager".into(), "worker-2".into()];
        first.observation.cols = vec![
            Target { label: "web.1@manager".into(), node: "manager".into() },
            Target { label: "web.2@worker-2".into(), node: "worker-2".into() },
        ];
        let cell = |hits| Cell { hits, tries: 3, ..Cell::default() };
        first.observation.cells = vec![vec![cell(3), cell(3)], vec![cell(0), cell(3)]];
        first.pair_ok = vec![vec![true, true], vec![false, true]];
        assert_eq!(
            until_held(&first).as_deref(),
            Some("before it held, the first observation: worker-2 → web.1@manager 0/3 against the file")
        );
        first.pair_ok = vec![vec![true, true], vec![true, true]];
        assert_eq!(until_held(&first), None);
    }

    /// Every image a shipped scenario's steps use is built on first use: the stray-proxy story
    /// needs squid's image, benches the tools image.
    #[test]
    fn needed_images_cover_what_faults_and_benches_use() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let proxy = crate::model::load(&root.join("k8s-stray-proxy.yaml")).unwrap();
        assert!(needed_images(&proxy).contains(&"proxy"));
        assert!(needed_images(&proxy).contains(&"pause"));
        let bench = crate::model::load(&root.join("swarm-paths-throughput.yaml")).unwrap();
        assert!(needed_images(&bench).contains(&"tools"));
        let plain = crate::model::load(&root.join("swarm-vxlan-blocked.yaml")).unwrap();
        assert_eq!(needed_images(&plain), ["node", "web"]);
    }

    /// faults-hit whose proof cannot be read is an error, never the pass the check had so far.
    #[test]
    fn unreadable_fault_counters_turn_a_pass_into_an_error() {
        let mut r =
            CheckReport { outcome: Outcome::Pass, summary: "9/9 requests answered".into(), ..CheckReport::new("c", "replicas", "web") };
        counters_missing(&mut r, "vxlan-blocked", "after the check: boom".into());
        assert_eq!(r.outcome, Outcome::Error);
        assert!(r.reason.as_deref().unwrap().contains("counters of fault vxlan-blocked could not be read after the check: boom"));
        // A failed check stays failed (its own reason is the stronger one).
        let mut f = CheckReport { outcome: Outcome::Fail, ..r.clone() };
        counters_missing(&mut f, "x", "before the check".into());
        assert_eq!(f.outcome, Outcome::Fail);
    }
}
