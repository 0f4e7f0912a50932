//! One error variant per operation, naming the action and the object; a command that ran and
//! failed keeps the command, its exit code and the tail of its output.

use bollard::errors::Error as DockerError;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot reach the Docker engine: {0}\n    hint: is dockerd running? `docker info` should answer (DOCKER_HOST is honoured)")]
    Engine(#[source] DockerError),
    #[error("failed to list networks on the engine: {0}")]
    ListNetworks(#[source] DockerError),
    #[error("failed to list containers on the engine: {0}")]
    ListContainers(#[source] DockerError),
    #[error("failed to list volumes on the engine: {0}")]
    ListVolumes(#[source] DockerError),
    #[error(
        "network {network} of lab {lab} already exists\n    hint: `clusterlab down {lab}` removes the old lab, or pick another lab name"
    )]
    NetworkExists { network: String, lab: String },
    #[error(
        "lab {lab} already exists on this engine\n    hint: `clusterlab down {lab}` removes it (or `clusterlab clean` removes every lab)"
    )]
    LabExists { lab: String },
    #[error("cannot plan lab {lab}: {message}")]
    Plan { lab: String, message: String },
    #[error("failed to create network {network} of lab {lab}: {source}")]
    CreateNetwork { network: String, lab: String, source: DockerError },
    #[error("failed to create volume {volume} of lab {lab}: {source}")]
    CreateVolume { volume: String, lab: String, source: DockerError },
    #[error("failed to create node {node} of lab {lab}: {source}")]
    CreateNode { node: String, lab: String, source: DockerError },
    #[error("failed to start {container} of lab {lab}: {source}")]
    CreateSide { container: String, lab: String, source: DockerError },
    #[error("failed to start node {node} of lab {lab}: {source}")]
    StartNode { node: String, lab: String, source: DockerError },
    #[error("could not run `{cmd}` in {container}: {source}")]
    Exec { container: String, cmd: String, source: DockerError },
    #[error("node {node} could not make the host's kernel settings (/proc/sys/kernel, vm, fs) read-only inside it, so its stack could change this host's\n    hint: the node needs CAP_SYS_ADMIN to bind-mount inside itself; see its log with `docker logs {container}`")]
    HostShield { node: String, container: String },
    #[error("the engine did not finish `{cmd}` in {container} within {secs} s")]
    ExecDeadline { container: String, cmd: String, secs: u64 },
    #[error("`{cmd}` on node {node} did not finish within its deadline of {secs} s and was stopped{}\n{tail}", if hung.is_empty() { String::new() } else { format!("; still running then: {hung}") })]
    Deadline { node: String, cmd: String, secs: u64, hung: String, tail: String },
    #[error("node {node} went away while `{cmd}` ran in it: its container {state}, and nothing of this run stops a node that way\n    hint: something else removed or stopped it (`clusterlab clean --all`, `docker rm -f`, the engine restarting); `docker events --since 10m` shows what")]
    NodeGone { node: String, cmd: String, state: String },
    #[error("check {check}: the probe from {node} failed: {message}")]
    Probe { check: String, node: String, message: String },
    #[error("stream {stream}: on node {node}: {message}")]
    Stream { stream: String, node: String, message: String },
    #[error("{what} failed on node {node}: `{cmd}` exited with {code}\n{tail}")]
    Command { what: String, node: String, cmd: String, code: i64, tail: String },
    #[error("the engine inside node {node} did not answer within {secs} s\n{tail}")]
    EngineNotReady { node: String, secs: u64, tail: String },
    #[error("failed to save image {image} from the host engine: {source}")]
    SaveImage { image: String, source: DockerError },
    #[error("image {image} is not on the host engine\n    hint: run `clusterlab images build` first")]
    ImageMissing { image: String },
    #[error("failed to build image {image}: {message}")]
    BuildImage { image: String, message: String },
    #[error("failed to {} node container {container}: {source}", if *paused { "pause" } else { "unpause" })]
    PauseNode { container: String, paused: bool, source: DockerError },
    #[error("service {service} did not converge within {secs} s: {detail}")]
    Converge { service: String, secs: u64, detail: String },
    #[error("fault {fault}: {message}")]
    Fault { fault: String, message: String },
    #[error("teardown of {what} incomplete:\n  {}", failures.join("\n  "))]
    Teardown { what: String, failures: Vec<String> },
    #[error("failed to share the programs of node image {image} between nodes: {message}")]
    SharePrograms { image: String, message: String },
    #[error("Kubernetes bundle: {message}")]
    Bundle { message: String },
    #[error("failed to inspect container {container}: {message}")]
    Inspect { container: String, message: String },
    #[error("the install failed at stage {stage}: {source}")]
    Install { stage: crate::model::InstallStage, source: Box<LabError> },
    #[error("{step} needs the stack, and it is not installed (this scenario installs in its steps)\n    hint: run an install step that succeeds first")]
    NotInstalled { step: String },
    #[error("the install did not finish within {secs} s (it had finished: {done})")]
    InstallTimeout { secs: u64, done: String },
    #[error("interrupted")]
    Interrupted,
}

impl LabError {
    /// The node the failing command ran on, where the error names one.
    pub fn node(&self) -> Option<&str> {
        match self {
            LabError::Command { node, .. }
            | LabError::Deadline { node, .. }
            | LabError::NodeGone { node, .. }
            | LabError::EngineNotReady { node, .. }
            | LabError::HostShield { node, .. } => Some(node),
            LabError::Install { source, .. } => source.node(),
            _ => None,
        }
    }

    /// The install stage a failure happened at, where it is an install's.
    pub fn stage(&self) -> Option<crate::model::InstallStage> {
        match self {
            LabError::Install { stage, .. } => Some(*stage),
            _ => None,
        }
    }
}

/// The last `n` lines of a command's output, indented, for error messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|l| format!("    | {l}")).collect::<Vec<_>>().join("\n")
}
