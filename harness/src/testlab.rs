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

use crate::model::{Scenario, Step};
use crate::provider::{Engine, ExecOutput, LabError};
use crate::report::{CheckReport, Reporters, RunReport};
use crate::runner::Session;
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
    /// named after the scenario. No step runs.
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
        let session = crate::runner::bring_up(&engine, scenario, &run_id, kept, &mut rep).await.map_err(|(_, e)| e)?;
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
        self.session().step(step, &mut rep).await.map_err(|(_, e)| e)
    }

    /// Run the scenario's check `name` now, with the faults applied now, and return what it
    /// saw and judged: the matrix, request counts, latencies, the diagnosis — the JSON report's
    /// check, typed.
    pub async fn check(&mut self, name: &str) -> Result<CheckReport, LabError> {
        let step =
            self.scenario().steps.iter().find(|s| matches!(s, Step::Check(c) if c.name == name)).cloned().ok_or_else(|| {
                LabError::Plan { lab: self.name().to_string(), message: format!("the scenario has no check named {name:?}") }
            })?;
        self.run(&step).await?;
        let report = self.report.lock().map(|r| r.checks.last().cloned()).ok().flatten();
        report.ok_or_else(|| LabError::Plan { lab: self.name().to_string(), message: format!("check {name} reported nothing") })
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
