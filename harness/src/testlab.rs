//! `Lab`: a lab held by your own code — bring it up from a scenario, run its checks, apply and
//! revert its faults, run commands on its nodes, all as typed results — for engineers' own
//! `cargo test`. Dropping a `Lab` removes it (also when the test panics); a `kill -9` of the
//! test process is covered by the run's reaper; keeping it is explicit.
//!
//! ```no_run
//! # async fn t() -> Result<(), clusterlab::provider::LabError> {
//! let scenario = clusterlab::model::load(std::path::Path::new("scenarios/swarm-vxlan-blocked.yaml")).unwrap();
//! let mut lab = clusterlab::Lab::up(&scenario).await?;
//! assert!(lab.check("all-replicas-up").await?.passed());
//! lab.apply("vxlan-blocked").await?;
//! let during = lab.check("only-worker-1-lost").await?;
//! assert_eq!(during.observation.totals(), (18, 12));
//! lab.revert("vxlan-blocked").await?;
//! lab.down().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use crate::bench::BenchReport;
use crate::model::{Scenario, StackKind, Step};
use crate::provider::{Engine, ExecOutput, LabError};
use crate::report::{CheckReport, Reporters, RunReport};
use crate::runner::Session;
use crate::stream::StreamReport;
use crate::vocab::Outcome;
use std::sync::{Arc, Mutex};

/// A lab up and held; removed on drop unless kept.
pub struct Lab {
    engine: Engine,
    session: Option<Session>,
    report: Arc<Mutex<RunReport>>,
    kept: bool,
}

impl CheckReport {
    /// The check held (not failed, not unsupported, not an error).
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

impl Lab {
    /// Bring the scenario's lab up (images built when missing, nodes, the stack, its services),
    /// named after the scenario. No step runs. A scenario with install steps comes up bare:
    /// `install` installs it.
    pub async fn up(scenario: &Scenario) -> Result<Lab, LabError> {
        Lab::start(scenario, false).await
    }

    /// Like `up`, but the lab stays after this `Lab` is dropped (and after the process ends):
    /// `clusterlab down NAME` removes it, and the CLI's verbs (`check`, `exec`, `fault`) work on it.
    pub async fn up_kept(scenario: &Scenario) -> Result<Lab, LabError> {
        Lab::start(scenario, true).await
    }

    async fn start(scenario: &Scenario, kept: bool) -> Result<Lab, LabError> {
        let engine = Engine::connect().await?;
        let report = Arc::new(Mutex::new(RunReport::default()));
        let mut rep = Reporters(vec![Box::new(report.clone())]);
        let run_id = crate::plan::new_run_id();
        // Boxed, here and in `run`: the bring-up's and a step's state machines are large (debug
        // builds keep every await's temporaries apart), and an engineer's `#[tokio::test]` polls
        // them on a 2 MiB test thread; on the heap, the futures this API returns are a few
        // hundred bytes, and a test that awaits many of them stays far from the stack's end.
        let session = Box::pin(crate::runner::bring_up(&engine, scenario, &run_id, kept, &mut rep)).await.map_err(|(_, e)| e)?;
        Ok(Lab { engine, session: Some(session), report, kept })
    }

    fn session(&mut self) -> &mut Session {
        self.session.as_mut().expect("a Lab holds its session until down")
    }

    /// The scenario the lab runs.
    pub fn scenario(&self) -> &Scenario {
        &self.session.as_ref().expect("a Lab holds its session until down").lab.scenario
    }

    /// The lab's name (its containers are `<name>-<node>`).
    pub fn name(&self) -> &str {
        &self.session.as_ref().expect("a Lab holds its session until down").lab.plan.lab
    }

    async fn run(&mut self, step: &Step) -> Result<(), LabError> {
        let mut rep = Reporters(vec![Box::new(self.report.clone())]);
        Box::pin(self.session().step(step, &mut rep)).await.map_err(|(_, e)| e)
    }

    /// Run the scenario's check `name` now, with the faults applied now, and return what it
    /// saw and judged: the matrix, request counts, latencies, the diagnosis — the JSON report's
    /// check, typed.
    pub async fn check(&mut self, name: &str) -> Result<CheckReport, LabError> {
        let step = self.find(|s| matches!(s, Step::Check(c) if c.name == name), "check", name)?;
        self.run(&step).await?;
        let report = self.report.lock().map(|r| r.checks.last().cloned()).ok().flatten();
        report.ok_or_else(|| self.plan_error(format!("check {name} reported nothing")))
    }

    /// Run the scenario's install step `name` now (on bare nodes, or over an install), with the
    /// faults applied now, and return its verdict: the stage it failed at and why, judged as the
    /// file expects. An install that must succeed and fails is an error.
    pub async fn install(&mut self, name: &str) -> Result<CheckReport, LabError> {
        let step = self.find(|s| matches!(s, Step::Install(i) if i.name == name), "install", name)?;
        self.run(&step).await?;
        let report = self.report.lock().map(|r| r.checks.last().filter(|c| c.kind == "install" && c.name == name).cloned()).ok().flatten();
        report.ok_or_else(|| self.plan_error(format!("install {name} reported nothing")))
    }

    /// Apply the scenario's fault `name` (unsupported on this host: an error saying why).
    pub async fn apply(&mut self, fault: &str) -> Result<(), LabError> {
        self.fault_step(fault, true).await
    }

    /// Revert the fault `name` exactly.
    pub async fn revert(&mut self, fault: &str) -> Result<(), LabError> {
        self.fault_step(fault, false).await
    }

    async fn fault_step(&mut self, fault: &str, apply: bool) -> Result<(), LabError> {
        if self.scenario().fault(fault).is_none() {
            return Err(LabError::Fault { fault: fault.to_string(), message: "the scenario declares no such fault".into() });
        }
        let applied = self.session().applied().contains(&fault.to_string());
        if apply == applied {
            let state = if applied { "already applied" } else { "not applied" };
            return Err(LabError::Fault { fault: fault.to_string(), message: state.into() });
        }
        let step = if apply { Step::Apply(fault.to_string()) } else { Step::Revert(fault.to_string()) };
        self.run(&step).await?;
        if apply && !self.session().applied().contains(&fault.to_string()) {
            let why = self.report.lock().ok().and_then(|r| r.steps.last().map(|s| s.detail.join("; "))).unwrap_or_default();
            return Err(LabError::Fault { fault: fault.to_string(), message: why });
        }
        Ok(())
    }

    /// Scale a service and wait until it converged.
    pub async fn scale(&mut self, service: &str, replicas: u32) -> Result<(), LabError> {
        self.run(&Step::Scale { service: service.to_string(), replicas }).await
    }

    /// Run a command on a node (arguments as given, no shell between), within the default
    /// deadline; its exit code, stdout and stderr.
    pub async fn exec(&self, node: &str, argv: &[&str]) -> Result<ExecOutput, LabError> {
        let s = self.session.as_ref().expect("a Lab holds its session until down");
        let script = argv.iter().map(|a| crate::lab::shq(a)).collect::<Vec<_>>().join(" ");
        s.lab.sh_within(node, &script, None, crate::lab::default_deadline()).await
    }

    /// Run the scenario's bench `name` now and return its figures (every path's samples, the
    /// ratios, the gates' results).
    pub async fn bench(&mut self, name: &str) -> Result<BenchReport, LabError> {
        let step = self.find(|s| matches!(s, Step::Bench(b) if b.name == name), "bench", name)?;
        self.run(&step).await?;
        let report = self.report.lock().ok().and_then(|r| r.benches.iter().rev().find(|b| b.name == name).cloned());
        report.ok_or_else(|| self.plan_error(format!("bench {name} reported nothing (see lab.report().steps)")))
    }

    /// Start the scenario's stream `name`: steady requests from its entry nodes, every one
    /// recorded, until `stop_stream`.
    pub async fn start_stream(&mut self, name: &str) -> Result<(), LabError> {
        self.stream_known(name)?;
        self.run(&Step::StartStream(name.to_string())).await
    }

    /// Stop the stream `name` and return its timeline, figures (time to break, lost, time to
    /// recover per fault) and gates.
    pub async fn stop_stream(&mut self, name: &str) -> Result<StreamReport, LabError> {
        self.stream_known(name)?;
        self.run(&Step::StopStream(name.to_string())).await?;
        let report = self.report.lock().ok().and_then(|r| r.streams.iter().rev().find(|x| x.name == name).cloned());
        report.ok_or_else(|| self.plan_error(format!("stream {name} reported nothing: was it started?")))
    }

    /// Hold the lab as it is for `d` (faults stay, streams keep sending): a `wait` step.
    pub async fn wait(&mut self, d: std::time::Duration) -> Result<(), LabError> {
        self.run(&Step::Wait(d)).await
    }

    /// Run the docker CLI on the lab's first manager (swarm): `lab.docker(&["service", "ls"])`.
    pub async fn docker(&self, argv: &[&str]) -> Result<ExecOutput, LabError> {
        self.on_manager(StackKind::Swarm, "docker", argv).await
    }

    /// Run kubectl, as the cluster's admin, on the master (Kubernetes): `lab.kubectl(&["get", "pods"])`.
    pub async fn kubectl(&self, argv: &[&str]) -> Result<ExecOutput, LabError> {
        self.on_manager(StackKind::Kubernetes, crate::stack::kube::KUBECTL_DIRECT, argv).await
    }

    async fn on_manager(&self, stack: StackKind, program: &str, argv: &[&str]) -> Result<ExecOutput, LabError> {
        let s = self.session.as_ref().expect("a Lab holds its session until down");
        if s.lab.scenario.stack != stack {
            return Err(self.plan_error(format!("{program} needs a {stack:?} lab; this one runs {:?}", s.lab.scenario.stack)));
        }
        let manager = s.lab.scenario.managers().next().map(|n| n.name.clone()).unwrap_or_default();
        // The program is ours (words, unquoted); every argument is the caller's, quoted once.
        let args = argv.iter().map(|a| crate::lab::shq(a)).collect::<Vec<_>>().join(" ");
        s.lab.sh_within(&manager, &format!("{program} {args}"), None, crate::lab::default_deadline()).await
    }

    /// `DOCKER_HOST` for a docker client on this host (the docker CLI, bollard) to talk to the
    /// swarm manager's engine: its socket under `/proc/<pid>/root`. Root only.
    pub async fn docker_host(&self) -> Result<String, LabError> {
        let s = self.session.as_ref().expect("a Lab holds its session until down");
        let manager = s.lab.scenario.managers().next().map(|n| n.name.clone()).unwrap_or_default();
        s.lab.docker_host(&manager).await
    }

    fn find(&self, pick: impl Fn(&Step) -> bool, what: &str, name: &str) -> Result<Step, LabError> {
        self.scenario()
            .steps
            .iter()
            .find(|s| pick(s))
            .cloned()
            .ok_or_else(|| self.plan_error(format!("the scenario has no {what} named {name:?}")))
    }

    fn stream_known(&self, name: &str) -> Result<(), LabError> {
        if self.scenario().streams.iter().any(|s| s.name == name) {
            Ok(())
        } else {
            Err(self.plan_error(format!("the scenario has no stream named {name:?}")))
        }
    }

    fn plan_error(&self, message: String) -> LabError {
        LabError::Plan { lab: self.name().to_string(), message }
    }

    /// Everything this lab reported so far, as the JSON report's run.
    pub fn report(&self) -> RunReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Keep the lab after this `Lab` is gone; returns how to remove it. (Only a lab brought up
    /// with `up_kept` survives the process: another one's reaper removes it when the process ends.)
    pub fn keep(mut self) -> String {
        self.kept = true;
        format!("clusterlab down {}", self.name())
    }

    /// Remove the lab now, and say what went wrong if anything did.
    pub async fn down(mut self) -> Result<(), LabError> {
        let s = self.session.take().expect("a Lab holds its session until down");
        self.engine.remove_labelled(Some(&s.lab.plan.lab), Some(&s.lab.plan.run_id)).await.map(|_| ())
    }
}

impl Drop for Lab {
    /// Removes the lab (a test that panicked, or forgot `down`), unless kept. Blocking: on a
    /// thread of its own with its own runtime, so it works inside and outside an async runtime.
    fn drop(&mut self) {
        let Some(s) = self.session.take() else { return };
        if self.kept {
            return;
        }
        let (engine, lab, run) = (self.engine.clone(), s.lab.plan.lab.clone(), s.lab.plan.run_id.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                let _ = rt.block_on(engine.remove_labelled(Some(&lab), Some(&run)));
            }
        })
        .join();
    }
}
