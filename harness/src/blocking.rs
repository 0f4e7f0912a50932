//! [`Lab`] for plain `#[test]` functions: the same lab, each call run to completion on a
//! runtime the lab owns. Not for use inside an async runtime (use [`crate::Lab`] there).
//!
//! ```no_run
//! let scenario = clusterlab::model::load(std::path::Path::new("scenarios/swarm-basics.yaml")).unwrap();
//! let mut lab = clusterlab::blocking::Lab::up(&scenario).unwrap();
//! assert!(lab.check("replicas").unwrap().passed());
//! ```

#![warn(missing_docs)]

use crate::bench::BenchReport;
use crate::model::Scenario;
use crate::provider::{ExecOutput, LabError};
use crate::report::{CheckReport, RunReport};
use crate::stream::StreamReport;
use std::time::Duration;

/// A lab up and held by synchronous code; removed on drop unless kept (see [`crate::Lab`]).
pub struct Lab {
    // Dropped first: the lab's removal runs while the runtime still exists.
    lab: crate::Lab,
    rt: tokio::runtime::Runtime,
}

fn runtime() -> Result<tokio::runtime::Runtime, LabError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LabError::Plan { lab: "-".into(), message: format!("cannot start a runtime for the lab: {e}") })
}

impl Lab {
    /// [`crate::Lab::up`], blocking.
    pub fn up(scenario: &Scenario) -> Result<Lab, LabError> {
        let rt = runtime()?;
        let lab = rt.block_on(crate::Lab::up(scenario))?;
        Ok(Lab { lab, rt })
    }

    /// [`crate::Lab::up_kept`], blocking.
    pub fn up_kept(scenario: &Scenario) -> Result<Lab, LabError> {
        let rt = runtime()?;
        let lab = rt.block_on(crate::Lab::up_kept(scenario))?;
        Ok(Lab { lab, rt })
    }

    /// The lab's name.
    pub fn name(&self) -> &str {
        self.lab.name()
    }

    /// The scenario the lab runs.
    pub fn scenario(&self) -> &Scenario {
        self.lab.scenario()
    }

    /// [`crate::Lab::check`], blocking.
    pub fn check(&mut self, name: &str) -> Result<CheckReport, LabError> {
        self.rt.block_on(self.lab.check(name))
    }

    /// [`crate::Lab::install`], blocking.
    pub fn install(&mut self, name: &str) -> Result<CheckReport, LabError> {
        self.rt.block_on(self.lab.install(name))
    }

    /// [`crate::Lab::apply`], blocking.
    pub fn apply(&mut self, fault: &str) -> Result<(), LabError> {
        self.rt.block_on(self.lab.apply(fault))
    }

    /// [`crate::Lab::revert`], blocking.
    pub fn revert(&mut self, fault: &str) -> Result<(), LabError> {
        self.rt.block_on(self.lab.revert(fault))
    }

    /// [`crate::Lab::scale`], blocking.
    pub fn scale(&mut self, service: &str, replicas: u32) -> Result<(), LabError> {
        self.rt.block_on(self.lab.scale(service, replicas))
    }

    /// [`crate::Lab::bench`], blocking.
    pub fn bench(&mut self, name: &str) -> Result<BenchReport, LabError> {
        self.rt.block_on(self.lab.bench(name))
    }

    /// [`crate::Lab::start_stream`], blocking.
    pub fn start_stream(&mut self, name: &str) -> Result<(), LabError> {
        self.rt.block_on(self.lab.start_stream(name))
    }

    /// [`crate::Lab::stop_stream`], blocking.
    pub fn stop_stream(&mut self, name: &str) -> Result<StreamReport, LabError> {
        self.rt.block_on(self.lab.stop_stream(name))
    }

    /// [`crate::Lab::wait`], blocking.
    pub fn wait(&mut self, d: Duration) -> Result<(), LabError> {
        self.rt.block_on(self.lab.wait(d))
    }

    /// [`crate::Lab::exec`], blocking.
    pub fn exec(&self, node: &str, argv: &[&str]) -> Result<ExecOutput, LabError> {
        self.rt.block_on(self.lab.exec(node, argv))
    }

    /// [`crate::Lab::docker`], blocking.
    pub fn docker(&self, argv: &[&str]) -> Result<ExecOutput, LabError> {
        self.rt.block_on(self.lab.docker(argv))
    }

    /// [`crate::Lab::kubectl`], blocking.
    pub fn kubectl(&self, argv: &[&str]) -> Result<ExecOutput, LabError> {
        self.rt.block_on(self.lab.kubectl(argv))
    }

    /// [`crate::Lab::docker_host`], blocking.
    pub fn docker_host(&self) -> Result<String, LabError> {
        self.rt.block_on(self.lab.docker_host())
    }

    /// [`crate::Lab::report`].
    pub fn report(&self) -> RunReport {
        self.lab.report()
    }

    /// [`crate::Lab::keep`].
    pub fn keep(self) -> String {
        self.lab.keep()
    }

    /// [`crate::Lab::down`], blocking.
    pub fn down(self) -> Result<(), LabError> {
        let Lab { lab, rt } = self;
        rt.block_on(lab.down())
    }
}
