//! Stacks installed on the nodes: Docker swarm and Kubernetes, behind one small trait so the
//! runner, probes and expectations speak one vocabulary.

pub mod kube;
pub mod swarm;

use crate::lab::Lab;
use crate::model::{Bench, Check, ClientKind, InstallStage, PathKind, StackKind};
pub use crate::plan::NodeBoot;
use crate::provider::LabError;
pub use crate::vocab::{placement, PathEnd, PathOffer, Replica};
use crate::vocab::{Observation, ServicePaths};

/// An install's failure, tagged with the stage it failed at (the first tag holds: a stage's
/// failure inside another's is reported as the inner one).
pub trait AtStage<T> {
    fn at(self, stage: InstallStage) -> Result<T, LabError>;
}

impl<T> AtStage<T> for Result<T, LabError> {
    fn at(self, stage: InstallStage) -> Result<T, LabError> {
        self.map_err(|e| match e {
            e @ LabError::Install { .. } => e,
            e => LabError::Install { stage, source: Box::new(e) },
        })
    }
}

/// What every stack offers the runner.
#[allow(async_fn_in_trait)]
pub trait Stack {
    /// Wait until every node's runtime answers (swarm: the inner engine; Kubernetes: containerd,
    /// configured first); returns the line that says so. Needs nothing from the stack, so a
    /// bring-up waits for it while the nodes are being sealed.
    async fn runtime(&self) -> Result<String, LabError>;
    /// Load the workload images into running runtimes, and start what needs only the runtimes
    /// meanwhile (swarm forms here). `runtime` comes before it; `install` always follows it.
    async fn prepare(&self, images: &[String], progress: &mut (dyn FnMut(String) + Send)) -> Result<(), LabError>;
    /// Learn what this stack needs to know of a lab that is already up (swarm: whether the
    /// kernel has IPVS), for a lab attached to rather than installed by this process.
    async fn learn(&self) -> Result<(), LabError>;
    /// Install the stack on running nodes and deploy the scenario's networks and services.
    async fn install(&self, progress: &mut (dyn FnMut(String) + Send)) -> Result<(), LabError>;
    /// Set a service's replica count and wait until it converged; returns where replicas run.
    async fn scale(&self, service: &str, replicas: u32) -> Result<Vec<Replica>, LabError>;
    /// The running replicas of a service, with their node and address.
    async fn replicas(&self, service: &str) -> Result<Vec<Replica>, LabError>;
    /// How probes reach a service.
    async fn paths(&self, service: &str, client: ClientKind) -> Result<ServicePaths, LabError>;
    /// Why a check cannot pass on this host with this stack, if it cannot.
    fn unsupported(&self, check: &Check) -> Option<String>;
    /// Observe a check the generic probes do not cover (Kubernetes' `api`).
    async fn observe_special(&self, check: &Check) -> Result<Observation, LabError>;
    /// How a bench reaches `target` over `path` (direct, vip, node-port) from `bench.from`.
    async fn bench_path(&self, bench: &Bench, path: PathKind, target: &Replica) -> Result<PathOffer, LabError>;
}

/// The stack of a lab, dispatched statically.
pub enum AnyStack<'a> {
    Swarm(swarm::Swarm<'a>),
    Kube(kube::Kube<'a>),
}

impl<'a> AnyStack<'a> {
    pub fn new(lab: &'a Lab) -> AnyStack<'a> {
        match lab.scenario.stack {
            StackKind::Swarm => AnyStack::Swarm(swarm::Swarm::new(lab)),
            StackKind::Kubernetes => AnyStack::Kube(kube::Kube::new(lab)),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStack::Swarm($s) => $e,
            AnyStack::Kube($s) => $e,
        }
    };
}

impl Stack for AnyStack<'_> {
    async fn runtime(&self) -> Result<String, LabError> {
        dispatch!(self, s => s.runtime().await)
    }
    async fn prepare(&self, images: &[String], progress: &mut (dyn FnMut(String) + Send)) -> Result<(), LabError> {
        dispatch!(self, s => s.prepare(images, progress).await)
    }
    async fn learn(&self) -> Result<(), LabError> {
        dispatch!(self, s => s.learn().await)
    }
    async fn install(&self, progress: &mut (dyn FnMut(String) + Send)) -> Result<(), LabError> {
        dispatch!(self, s => s.install(progress).await)
    }
    async fn scale(&self, service: &str, replicas: u32) -> Result<Vec<Replica>, LabError> {
        dispatch!(self, s => s.scale(service, replicas).await)
    }
    async fn replicas(&self, service: &str) -> Result<Vec<Replica>, LabError> {
        dispatch!(self, s => s.replicas(service).await)
    }
    async fn paths(&self, service: &str, client: ClientKind) -> Result<ServicePaths, LabError> {
        dispatch!(self, s => s.paths(service, client).await)
    }
    fn unsupported(&self, check: &Check) -> Option<String> {
        dispatch!(self, s => s.unsupported(check))
    }
    async fn observe_special(&self, check: &Check) -> Result<Observation, LabError> {
        dispatch!(self, s => s.observe_special(check).await)
    }
    async fn bench_path(&self, bench: &Bench, path: PathKind, target: &Replica) -> Result<PathOffer, LabError> {
        dispatch!(self, s => s.bench_path(bench, path, target).await)
    }
}
