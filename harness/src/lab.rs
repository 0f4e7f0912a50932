//! A lab that exists on the engine: its plan, its scenario, and commands run inside its nodes.

use crate::model::Scenario;
use crate::plan::LabPlan;
use crate::provider::{tail, Engine, ExecOutput, LabError};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// How long one command inside a node may run unless its caller says otherwise. Every install
/// step polls with its own, shorter bound; this catches what hangs. `CLUSTERLAB_EXEC_DEADLINE`
/// (seconds) overrides it, e.g. to see a wedged command named quickly.
pub fn default_deadline() -> Duration {
    let secs = std::env::var("CLUSTERLAB_EXEC_DEADLINE").ok().and_then(|v| v.parse::<u64>().ok()).filter(|s| *s > 0).unwrap_or(180);
    Duration::from_secs(secs)
}

/// The first line of a script, shortened: how an error names the command.
fn first_line(script: &str) -> String {
    let l = script.lines().map(str::trim).find(|l| !l.is_empty() && *l != "set -e").unwrap_or("");
    l.chars().take(160).collect()
}

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

    /// Run a shell script in a node's own namespaces within the default deadline; returns the
    /// output whatever the exit code.
    pub async fn sh_raw(&self, node: &str, script: &str) -> Result<ExecOutput, LabError> {
        self.sh_within(node, script, None, default_deadline()).await
    }

    /// Run a shell script in a node; a non-zero exit is an error naming `what`.
    pub async fn sh(&self, node: &str, what: &str, script: &str) -> Result<ExecOutput, LabError> {
        self.sh_in(node, what, script, None).await
    }

    /// Like `sh`, with bytes on the script's standard input.
    pub async fn sh_in(&self, node: &str, what: &str, script: &str, stdin: Option<Bytes>) -> Result<ExecOutput, LabError> {
        let out = self.sh_within(node, script, stdin, default_deadline()).await?;
        if out.ok() {
            Ok(out)
        } else {
            Err(LabError::Command {
                what: what.to_string(),
                node: node.to_string(),
                cmd: first_line(script),
                code: out.code,
                tail: tail(&format!("{}\n{}", out.stdout, out.stderr), 12),
            })
        }
    }

    /// Run a shell script in a node, bounded by `deadline`: inside the node, `timeout` stops the
    /// script's whole process group when the deadline passes (a wedged command does not outlive
    /// the check that ran it); outside, the engine call itself is bounded too. A deadline that
    /// trips is an error naming the node and the command.
    pub async fn sh_within(&self, node: &str, script: &str, stdin: Option<Bytes>, deadline: Duration) -> Result<ExecOutput, LabError> {
        let secs = deadline.as_secs().max(1).to_string();
        // -k 5: KILL five seconds after TERM, for what ignores TERM.
        let argv = ["timeout", "-k", "5", secs.as_str(), "sh", "-c", script];
        let started = Instant::now();
        let out = self.engine.exec_within(&self.container(node), &argv, stdin, deadline + Duration::from_secs(15)).await;
        let tripped = |tail_text: String| LabError::Deadline {
            node: node.to_string(),
            cmd: first_line(script),
            secs: deadline.as_secs().max(1),
            tail: tail_text,
        };
        match out {
            // 124: timeout's TERM ended it; 137: the KILL that followed.
            Ok(o) if matches!(o.code, 124 | 137) && started.elapsed() >= deadline => {
                Err(tripped(tail(&format!("{}\n{}", o.stdout, o.stderr), 6)))
            }
            Err(LabError::ExecDeadline { .. }) => Err(tripped(String::new())),
            r => r,
        }
    }

    pub fn node_names(&self) -> Vec<String> {
        self.plan.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub fn node_ip(&self, node: &str) -> String {
        self.plan.node(node).map(|n| n.ip.to_string()).unwrap_or_default()
    }
}

/// A script that polls `cond` (a shell condition) until it holds, for at most `secs` seconds of
/// wall-clock time (not a count of polls: a slow condition cannot stretch the bound), sleeping
/// `pause` between polls; its status is 1 when time runs out. It runs in a subshell, so it can
/// stand alone (`Lab::poll`) or inside a larger script. The condition sees the script's
/// variables but cannot set them.
pub fn poll_script(cond: &str, secs: u64, pause: &str) -> String {
    // The condition runs in a subshell: an `exit` inside it ends one poll, not the loop.
    // The whole loop is a subshell too, so it can stand inside a larger script (`poll || …`).
    format!("(end=$(( $(date +%s) + {secs} )); until ( {cond} ); do [ $(date +%s) -ge $end ] && exit 1; sleep {pause}; done)")
}

impl Lab {
    /// Poll `cond` on `node` for at most `secs` seconds; Ok(true) when it held. The exec's own
    /// deadline leaves room for one last slow poll.
    pub async fn poll(&self, node: &str, cond: &str, secs: u64, pause: &str) -> Result<bool, LabError> {
        let out = self.sh_within(node, &poll_script(cond, secs, pause), None, Duration::from_secs(secs + 30)).await?;
        Ok(out.ok())
    }
}

/// Quote a string for `sh -c`.
pub fn shq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A poll inside a larger script ends with a status, never the script itself.
    #[test]
    fn a_poll_that_times_out_leaves_its_script_running() {
        let script = format!("{} || echo timed-out; echo after", poll_script("false", 1, "0.1"));
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "timed-out\nafter\n");
        let ok = format!("{} && echo held", poll_script("[ 1 = 1 ]", 1, "0.1"));
        let out = std::process::Command::new("sh").arg("-c").arg(&ok).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "held\n");
    }
}
