//! Stacks installed on the nodes. Swarm today; the trait is what a Kubernetes stack will fill in.

pub mod swarm;

use crate::provider::LabError;

/// One running replica of a service, as a probe sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Replica {
    /// The task's name, e.g. `web.2`.
    pub task: String,
    /// The node it runs on.
    pub node: String,
    /// What it answers with: its hostname (the container id in swarm).
    pub identity: String,
    /// Its address on the service's network.
    pub ip: String,
}

impl Replica {
    /// `web.2@worker-1`: how the matrix labels a column.
    pub fn label(&self) -> String {
        format!("{}@{}", self.task, self.node)
    }
}

/// What every stack offers the runner.
#[allow(async_fn_in_trait)]
pub trait Stack {
    /// Install the stack on running nodes and deploy the scenario's networks and services.
    async fn install(&self, progress: &mut (dyn FnMut(String) + Send)) -> Result<(), LabError>;
    /// Set a service's replica count and wait until it converged; returns where replicas run.
    async fn scale(&self, service: &str, replicas: u32) -> Result<Vec<Replica>, LabError>;
    /// The running replicas of a service, with their node and address.
    async fn replicas(&self, service: &str) -> Result<Vec<Replica>, LabError>;
}
