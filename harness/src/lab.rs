//! A lab that exists on the engine: its plan, its scenario, and commands run inside its nodes.

use crate::model::Scenario;
use crate::plan::LabPlan;
use crate::provider::{tail, Engine, ExecOutput, LabError};
use bytes::Bytes;
use std::time::Duration;

/// How long one command inside a node may run unless its caller says otherwise. Every install
/// step polls with its own, shorter bound; this catches what hangs. `CLUSTERLAB_EXEC_DEADLINE`
/// (seconds) overrides it, e.g. to see a wedged command named quickly.
pub fn default_deadline() -> Duration {
    let secs = std::env::var("CLUSTERLAB_EXEC_DEADLINE").ok().and_then(|v| v.parse::<u64>().ok()).filter(|s| *s > 0).unwrap_or(180);
    Duration::from_secs(secs)
}

/// Where a node keeps the pid of each running exec's wrapper (see `sh_within`).
const EXEC_DIR: &str = "/run/clusterlab-exec";

/// A name for one exec, unique in this process and across processes.
fn exec_id() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{}-{}-{n}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
    )
}

/// From `ps -eo pid=,ppid=,args=` and a `#root PID` line: the commands at the leaves of the
/// tree under the root (what the script was waiting on), `; `-joined.
pub fn hung_commands(ps: &str) -> String {
    let Some(root) = ps.lines().find_map(|l| l.strip_prefix("#root ")).and_then(|p| p.trim().parse::<u32>().ok()) else {
        return String::new();
    };
    let procs: Vec<(u32, u32, String)> = ps
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let pid = it.next()?.parse().ok()?;
            let ppid = it.next()?.parse().ok()?;
            Some((pid, ppid, it.collect::<Vec<_>>().join(" ")))
        })
        .collect();
    let mut under = vec![root];
    let mut i = 0;
    while i < under.len() {
        let p = under[i];
        under.extend(procs.iter().filter(|x| x.1 == p).map(|x| x.0));
        i += 1;
    }
    let leaves: Vec<String> = procs
        .iter()
        .filter(|x| x.0 != root && under.contains(&x.0) && !procs.iter().any(|c| c.1 == x.0))
        .map(|x| x.2.chars().take(120).collect())
        .collect();
    leaves.join("; ")
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

    /// `DOCKER_HOST` for the host's docker CLI to talk to a swarm node's engine: its socket
    /// through the node's root as the host sees it (`/proc/<pid>/root`), so nothing listens on
    /// the lab network. Valid while the node's container runs; root only, like the socket.
    pub async fn docker_host(&self, node: &str) -> Result<String, LabError> {
        let pid = self.engine.container_pid(&self.container(node)).await?;
        // /run, not /var/run: /var/run is a symlink to the absolute /run, which the host would
        // resolve against its own root — and that socket is the host's engine.
        Ok(format!("unix:///proc/{pid}/root/run/docker.sock"))
    }

    /// The container of a node.
    pub fn container(&self, node: &str) -> String {
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

    /// Put a program of ours (the traffic agent, the cluster DNS) at `path` in a node: written
    /// beside it and moved over it, so a copy while the old one runs never meets "Text file busy".
    pub async fn install_program(&self, node: &str, what: &str, path: &str, program: &'static [u8]) -> Result<(), LabError> {
        let script = format!("mkdir -p \"$(dirname {path})\" && cat > {path}.new && chmod 755 {path}.new && mv {path}.new {path}");
        self.sh_in(node, what, &script, Some(Bytes::from_static(program))).await.map(|_| ())
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

    /// Run a shell script in a node, bounded by `deadline`. When the deadline passes, the
    /// harness lists what of the script is still running (the hung command itself, by name),
    /// then stops the script's whole process group; the error names the node, the script and
    /// the hung commands. Inside the node, `timeout` is the backstop should the harness be gone.
    pub async fn sh_within(&self, node: &str, script: &str, stdin: Option<Bytes>, deadline: Duration) -> Result<ExecOutput, LabError> {
        let backstop = (deadline + Duration::from_secs(10)).as_secs().to_string();
        let pidfile = format!("{EXEC_DIR}/{}", exec_id());
        // The wrapper records its pid (so the hung part can be found) and runs the script as its
        // child, which inherits stdin; -k 5: KILL five seconds after timeout's TERM.
        let wrapper = format!("mkdir -p {EXEC_DIR}; echo $$ > {pidfile}; sh -c \"$1\"; rc=$?; rm -f {pidfile}; exit $rc");
        let argv = ["timeout", "-k", "5", backstop.as_str(), "sh", "-c", wrapper.as_str(), "clusterlab-exec", script];
        let container = self.container(node);
        let started = std::time::Instant::now();
        let run = self.engine.exec_within(&container, &argv, stdin, deadline + Duration::from_secs(20));
        tokio::pin!(run);
        let tripped = |hung: String, tail_text: String| LabError::Deadline {
            node: node.to_string(),
            cmd: first_line(script),
            secs: deadline.as_secs().max(1),
            hung,
            tail: tail_text,
        };
        tokio::select! {
            out = &mut run => match out {
                // Killed before its deadline: not the backstop, which fires only after it. When
                // the node itself is gone (removed, stopped), that is the error; where it still
                // runs, the exit code is the script's own.
                Ok(o) if matches!(o.code, 124 | 137) && started.elapsed() < deadline => {
                    // The engine marks a killed container stopped a moment after its processes
                    // die (seen: still "running" right after `docker rm -f` ended the exec).
                    for _ in 0..5 {
                        if let Some(state) = self.engine.gone(&container).await {
                            return Err(LabError::NodeGone { node: node.to_string(), cmd: first_line(script), state });
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(o)
                }
                // 124/137: the backstop's TERM or KILL ended it (the harness was too slow to).
                Ok(o) if matches!(o.code, 124 | 137) => Err(tripped(String::new(), tail(&format!("{}\n{}", o.stdout, o.stderr), 6))),
                Err(LabError::ExecDeadline { .. }) => Err(tripped(String::new(), String::new())),
                r => r,
            },
            _ = tokio::time::sleep(deadline) => {
                // Name what still runs, then stop the script's process group (timeout made
                // itself its leader, so the group is exactly this exec).
                let look = format!(
                    "p=$(cat {pidfile} 2>/dev/null) || exit 0; ps -eo pid=,ppid=,args=; \
                     g=$(ps -o pgid= -p $p | tr -d ' '); [ -n \"$g\" ] && kill -KILL -- -$g; rm -f {pidfile}; echo \"#root $p\""
                );
                let seen = self.engine.exec_within(&container, &["sh", "-c", &look], None, Duration::from_secs(15)).await;
                let hung = seen.map(|o| hung_commands(&o.stdout)).unwrap_or_default();
                // The exec ends now that its processes are gone.
                let _ = tokio::time::timeout(Duration::from_secs(10), &mut run).await;
                Err(tripped(hung, String::new()))
            }
        }
    }

    pub fn node_names(&self) -> Vec<String> {
        self.plan.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub fn node_ip(&self, node: &str) -> String {
        self.plan.node(node).map(|n| n.ip.to_string()).unwrap_or_default()
    }
}

/// Script lines that set `$lab_if` to the interface holding the node's lab address (found, not
/// assumed to be eth0), or fail saying so.
pub fn find_lab_if(ip: &str) -> String {
    format!(
        "lab_if=$(ip -o -4 addr show | awk -v a={ip}/ 'index($4, a) == 1 {{print $2; exit}}')\n\
         [ -n \"$lab_if\" ] || {{ echo 'no interface holds {ip}' >&2; exit 3; }}\n"
    )
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

    #[test]
    fn the_hung_commands_are_the_leaves_under_the_exec() {
        let ps = "  1     0 /usr/local/bin/start-node swarm\n 40     0 timeout -k 5 30 sh -c wrapper\n 41    40 sh -c wrapper clusterlab-exec script\n 42    41 sh -c script\n 43    42 iptables-save -t filter\n 50     1 sleep 3600\n#root 41\n";
        assert_eq!(hung_commands(ps), "iptables-save -t filter");
        assert_eq!(hung_commands("no root line"), "");
    }

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
