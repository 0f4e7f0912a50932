//! A lab that exists on the engine: its plan, its scenario, and commands run inside its nodes.

use crate::model::Scenario;
use crate::plan::LabPlan;
use crate::provider::{tail, Engine, ExecOutput, LabError};
use bytes::Bytes;

pub struct Lab {
    pub engine: Engine,
    pub plan: LabPlan,
    pub scenario: Scenario,
    /// Where the lab's images come from: every tag derives from it.
    pub base: crate::images::BaseSource,
}

impl Lab {
    /// The tag of a clusterlab image recipe (node, web, pause, tools) for this lab's base.
    pub fn image(&self, recipe: &str) -> String {
        crate::images::tag(recipe, &self.base)
    }

    /// The tag a service's `image:` names (a recipe name, or any image verbatim).
    pub fn workload(&self, image: &str) -> String {
        crate::images::resolve_workload(image, &self.base)
    }

    /// The workload image doubles as the probe client (busybox wget and nslookup inside).
    pub fn probe_image(&self) -> String {
        self.image("web")
    }

    fn container(&self, node: &str) -> String {
        self.plan.node(node).map(|n| n.container.clone()).unwrap_or_else(|| format!("{}-{node}", self.plan.lab))
    }

    /// Run a shell script in a node's own namespaces; returns the output whatever the exit code.
    pub async fn sh_raw(&self, node: &str, script: &str) -> Result<ExecOutput, LabError> {
        self.engine.exec(&self.container(node), &["sh", "-c", script], None).await
    }

    /// Run a shell script in a node; a non-zero exit is an error naming `what`.
    pub async fn sh(&self, node: &str, what: &str, script: &str) -> Result<ExecOutput, LabError> {
        self.sh_in(node, what, script, None).await
    }

    /// Like `sh`, with bytes on the script's standard input.
    pub async fn sh_in(&self, node: &str, what: &str, script: &str, stdin: Option<Bytes>) -> Result<ExecOutput, LabError> {
        let out = self.engine.exec(&self.container(node), &["sh", "-c", script], stdin).await?;
        if out.ok() {
            Ok(out)
        } else {
            Err(LabError::Command {
                what: what.to_string(),
                node: node.to_string(),
                cmd: script.lines().next().unwrap_or("").chars().take(160).collect(),
                code: out.code,
                tail: tail(&format!("{}\n{}", out.stdout, out.stderr), 12),
            })
        }
    }

    pub fn node_names(&self) -> Vec<String> {
        self.plan.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub fn node_ip(&self, node: &str) -> String {
        self.plan.node(node).map(|n| n.ip.to_string()).unwrap_or_default()
    }
}

/// Quote a string for `sh -c`.
pub fn shq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
