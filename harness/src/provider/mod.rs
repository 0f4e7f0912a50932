//! Provider: the host's Docker engine through its API (bollard). Lab networks, node containers,
//! exec with exit code and output, copy, logs, and removal by label. Every object is labelled.

mod error;
pub use error::{tail, LabError};

use crate::plan::{LabPlan, NodePlan, Subnet, LABEL_LAB, LABEL_RUN};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig, Mount, MountType, NetworkCreateRequest,
    NetworkingConfig, VolumeCreateRequest,
};
use bollard::query_parameters as qp;
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use tokio::io::AsyncWriteExt;

/// How node containers get the rights a nested engine needs on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NestedMode {
    /// `--privileged` works here.
    Privileged,
    /// `--privileged` fails (a capability is missing from the bounding set): every capability
    /// but CAP_SYS_RESOURCE, with seccomp, AppArmor and the masked /proc and /sys paths lifted.
    CapSet,
}

/// Give a container the rights a nested engine needs on this host (see NestedMode).
fn grant_nested_rights(host: &mut HostConfig, mode: NestedMode) {
    // A cgroup namespace of its own: the node's cgroup is the root of the tree it sees, so its
    // runtime's containers (tasks, pods) get cgroups under the node's, which the engine removes
    // with the node. With the host's tree mounted instead, they went beside it at the host's
    // root, and every one a removed node still ran stayed there, empty, in every controller (a
    // CI run and a few labs beside it left 468); each kubelet's container monitor also watched
    // every container on the host.
    host.cgroupns_mode = Some(bollard::models::HostConfigCgroupnsModeEnum::PRIVATE);
    match mode {
        NestedMode::Privileged => host.privileged = Some(true),
        NestedMode::CapSet => {
            // All capabilities but SYS_RESOURCE, which this host's bounding set lacks (asking
            // for it is what makes --privileged fail with "unable to apply caps").
            host.cap_add = Some(vec!["ALL".into()]);
            host.cap_drop = Some(vec!["SYS_RESOURCE".into()]);
            host.security_opt = Some(vec![
                // dockerd inside calls mount, unshare, keyctl... which the default profile blocks.
                "seccomp=unconfined".into(),
                // AppArmor would deny mounts inside the node.
                "apparmor=unconfined".into(),
            ]);
            // The API form of the CLI's `systempaths=unconfined`: nothing masked or read-only
            // under /proc and /sys, so the inner engine can set sysctls (ip_forward, ...).
            host.masked_paths = Some(vec![]);
            host.readonly_paths = Some(vec![]);
            // The engine mounts the node's cgroup tree read-only; start-node makes it writable
            // for the inner runtime.
        }
    }
}

/// Freeze or thaw the containers a node runs itself, through its own runtime: dockerd for
/// swarm, containerd's k8s.io namespace for Kubernetes, so the runtime knows them paused and
/// resumes them. Their cgroups are under the node's (its own cgroup namespace), so pausing the
/// node freezes them too; but a node removed while they are frozen never ends (a frozen process
/// takes no SIGKILL under cgroup v1, so the node's first process waits for them forever and so
/// does the engine's kill): every removal thaws them first.
pub fn nested_freeze_script(freeze: bool) -> &'static str {
    if freeze {
        "if docker info >/dev/null 2>&1; then ids=$(docker ps -q); [ -z \"$ids\" ] || docker pause $ids >/dev/null; fi; \
         if [ -S /run/containerd/containerd.sock ]; then for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks pause $t 2>/dev/null; done; fi; true"
    } else {
        "if docker info >/dev/null 2>&1; then ids=$(docker ps -q --filter status=paused); [ -z \"$ids\" ] || docker unpause $ids >/dev/null; fi; \
         if [ -S /run/containerd/containerd.sock ]; then for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks resume $t 2>/dev/null; done; fi; true"
    }
}

/// Thaws every frozen cgroup (v1 freezer, or v2 `cgroup.freeze`) whose first process descends
/// from one of the host pids given as arguments; prints a line per cgroup thawed.
pub const THAW_FROM_HOST: &str = r#"nodes="$*"
descends() {
  p=$1
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    for n in $nodes; do [ "$p" = "$n" ] && return 0; done
    p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)
  done
  return 1
}
# The frozen ones only, listed by a few greps (a host has thousands of cgroups: a process per
# file took seconds).
{ find /host-cgroup/freezer -name freezer.state -exec grep -l FROZEN {} + 2>/dev/null
  find /host-cgroup -name cgroup.freeze -exec grep -lx 1 {} + 2>/dev/null; } | while read -r f; do
  case "$f" in
    */freezer.state) dir=${f%/freezer.state}; thaw=THAWED; tasks=$dir/tasks ;;
    *) dir=${f%/cgroup.freeze}; thaw=0; tasks=$dir/cgroup.procs ;;
  esac
  t=$(head -n 1 "$tasks" 2>/dev/null)
  [ -n "$t" ] && descends "$t" && echo "$thaw" > "$f" && echo "thawed ${dir#/host-cgroup}"
done
exit 0"#;

/// Output of one command run inside a container.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// The host engine.
#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
}

impl Engine {
    /// Connect as the docker CLI would (DOCKER_HOST, else the local socket) and agree on an
    /// API version the engine speaks: bollard's own default may be newer than a 20.10 engine.
    pub async fn connect() -> Result<Engine, LabError> {
        let docker = Docker::connect_with_defaults().map_err(LabError::Engine)?;
        let docker = docker.negotiate_version().await.map_err(LabError::Engine)?;
        docker.ping().await.map_err(LabError::Engine)?;
        Ok(Engine { docker })
    }

    /// Subnets of every network on the engine, so a new lab overlaps none.
    pub async fn used_subnets(&self) -> Result<Vec<Subnet>, LabError> {
        let nets = self.docker.list_networks(None::<qp::ListNetworksOptions>).await.map_err(LabError::ListNetworks)?;
        Ok(nets
            .iter()
            .flat_map(|n| n.ipam.as_ref().and_then(|i| i.config.clone()).unwrap_or_default())
            .filter_map(|c| c.subnet.as_deref().and_then(Subnet::parse))
            .collect())
    }

    /// Does a lab of this name exist already (any container or network labelled with it)?
    pub async fn lab_exists(&self, lab: &str) -> Result<bool, LabError> {
        Ok(!self.lab_containers(Some(lab), None).await?.is_empty() || !self.lab_networks(Some(lab), None).await?.is_empty())
    }

    fn label_filter(lab: Option<&str>, run: Option<&str>) -> HashMap<String, Vec<String>> {
        let mut labels = vec![match lab {
            Some(l) => format!("{LABEL_LAB}={l}"),
            None => LABEL_LAB.to_string(),
        }];
        if let Some(r) = run {
            labels.push(format!("{LABEL_RUN}={r}"));
        }
        HashMap::from([("label".to_string(), labels)])
    }

    /// Containers of a lab (or of every lab), with names and labels.
    pub async fn lab_containers(&self, lab: Option<&str>, run: Option<&str>) -> Result<Vec<bollard::models::ContainerSummary>, LabError> {
        let opts = qp::ListContainersOptionsBuilder::default().all(true).filters(&Self::label_filter(lab, run)).build();
        self.docker.list_containers(Some(opts)).await.map_err(LabError::ListContainers)
    }

    pub async fn lab_networks(&self, lab: Option<&str>, run: Option<&str>) -> Result<Vec<bollard::models::Network>, LabError> {
        let opts = qp::ListNetworksOptionsBuilder::default().filters(&Self::label_filter(lab, run)).build();
        self.docker.list_networks(Some(opts)).await.map_err(LabError::ListNetworks)
    }

    pub async fn lab_volumes(&self, lab: Option<&str>, run: Option<&str>) -> Result<Vec<bollard::models::Volume>, LabError> {
        let opts = qp::ListVolumesOptionsBuilder::default().filters(&Self::label_filter(lab, run)).build();
        Ok(self.docker.list_volumes(Some(opts)).await.map_err(LabError::ListVolumes)?.volumes.unwrap_or_default())
    }

    /// Every run with objects on this engine: run id → (lab name, owner label). Objects with no
    /// run label are grouped under an empty run id.
    pub async fn runs(&self) -> Result<std::collections::BTreeMap<String, (String, Option<String>)>, LabError> {
        use crate::plan::LABEL_OWNER;
        let mut out: std::collections::BTreeMap<String, (String, Option<String>)> = Default::default();
        let mut add = |labels: Option<&HashMap<String, String>>| {
            let Some(l) = labels else { return };
            let run = l.get(LABEL_RUN).cloned().unwrap_or_default();
            let e = out.entry(run).or_insert_with(|| (l.get(LABEL_LAB).cloned().unwrap_or_default(), None));
            if e.1.is_none() {
                e.1 = l.get(LABEL_OWNER).cloned();
            }
        };
        for c in self.lab_containers(None, None).await? {
            add(c.labels.as_ref());
        }
        for n in self.lab_networks(None, None).await? {
            add(n.labels.as_ref());
        }
        for v in self.lab_volumes(None, None).await? {
            add(Some(&v.labels));
        }
        Ok(out)
    }

    /// The lab's bridge network on the host engine, with a fixed subnet so nodes get fixed IPs.
    pub async fn create_network(&self, plan: &LabPlan, extra_labels: HashMap<String, String>) -> Result<(), LabError> {
        // Engines of the 20.10 line create a second network of an existing name: look first.
        let existing = self.docker.list_networks(None::<qp::ListNetworksOptions>).await.map_err(LabError::ListNetworks)?;
        if existing.iter().any(|n| n.name.as_deref() == Some(plan.network.as_str())) {
            return Err(LabError::NetworkExists { network: plan.network.clone(), lab: plan.lab.clone() });
        }
        let req = NetworkCreateRequest {
            name: plan.network.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(plan.subnet.to_string()),
                    gateway: Some(plan.gateway.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(plan.labels(None).into_iter().chain(extra_labels).collect()),
            ..Default::default()
        };
        self.docker.create_network(req).await.map(|_| ()).map_err(|e| LabError::CreateNetwork {
            network: plan.network.clone(),
            lab: plan.lab.clone(),
            source: e,
        })
    }

    /// Find out whether `--privileged` works on this host, by starting a throwaway container.
    pub async fn detect_nested_mode(&self, image: &str, labels: HashMap<String, String>) -> Result<NestedMode, LabError> {
        let name = format!("clusterlab-probe-{}", crate::plan::new_run_id());
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec!["true".into()]),
            labels: Some(labels),
            host_config: Some(HostConfig { privileged: Some(true), ..Default::default() }),
            ..Default::default()
        };
        let opts = qp::CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker.create_container(Some(opts), body).await.map_err(|e| LabError::CreateNode {
            node: name.clone(),
            lab: "(privilege probe)".into(),
            source: e,
        })?;
        let started = self.docker.start_container(&name, None::<qp::StartContainerOptions>).await;
        let _ = self.remove_container(&name).await;
        Ok(if started.is_ok() { NestedMode::Privileged } else { NestedMode::CapSet })
    }

    /// Run `script` in a throwaway container of `image` with a node's rights, and return what it
    /// printed: how `doctor` measures what a node can do without a lab. Bounded; always removed.
    pub async fn run_as_node(
        &self,
        image: &str,
        mode: NestedMode,
        labels: HashMap<String, String>,
        script: &str,
    ) -> Result<String, LabError> {
        let mut host = HostConfig::default();
        grant_nested_rights(&mut host, mode);
        self.run_throwaway("clusterlab-doctor", image, host, labels, script, vec![]).await
    }

    /// Copy `files` (absolute paths in `image`, symlinks followed) into the host directory
    /// `dest`, flat, by a throwaway container of the image (`labels`: the run's, so that a
    /// killed run's is reaped). Returns what the container says it copied: each file's size
    /// and name, one per line, printed only after every copy succeeded — the caller compares
    /// them with what arrived on the host.
    pub async fn copy_from_image(
        &self,
        image: &str,
        files: &[&str],
        dest: &std::path::Path,
        labels: HashMap<String, String>,
    ) -> Result<String, LabError> {
        let host = HostConfig {
            binds: Some(vec![format!("{}:/out:rw", dest.display())]),
            // No network: it only copies files.
            network_mode: Some("none".into()),
            ..Default::default()
        };
        let mut args = vec!["clusterlab-copy".to_string()];
        args.extend(files.iter().map(|f| f.to_string()));
        let script = "cp -L \"$@\" /out/ || exit 1\nfor f; do echo \"$(stat -L -c %s \"$f\") ${f##*/}\"; done";
        self.run_throwaway("clusterlab-copy", image, host, labels, script, args).await
    }

    /// Run `script` (its arguments `args`, $0 first) in a throwaway container of `image`, and
    /// return what it printed. Bounded (60 s); always removed.
    async fn run_throwaway(
        &self,
        prefix: &str,
        image: &str,
        host: HostConfig,
        labels: HashMap<String, String>,
        script: &str,
        args: Vec<String>,
    ) -> Result<String, LabError> {
        let name = format!("{prefix}-{}", crate::plan::new_run_id());
        let mut cmd = vec![script.to_string()];
        cmd.extend(args);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            // The node image's start-node would start an engine; this only runs the script.
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            cmd: Some(cmd),
            labels: Some(labels),
            host_config: Some(host),
            ..Default::default()
        };
        let fail = |e| LabError::CreateNode { node: name.clone(), lab: format!("({prefix})"), source: e };
        let opts = qp::CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker.create_container(Some(opts), body).await.map_err(fail)?;
        let run = async {
            self.docker.start_container(&name, None::<qp::StartContainerOptions>).await.map_err(fail)?;
            let mut w = self.docker.wait_container(&name, None::<qp::WaitContainerOptions>);
            while let Some(r) = w.next().await {
                if r.is_err() {
                    break;
                }
            }
            Ok::<_, LabError>(self.logs(&name, 200).await)
        };
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), run).await;
        let _ = self.remove_container(&name).await;
        match out {
            Ok(r) => r,
            Err(_) => Err(LabError::ExecDeadline { container: name, cmd: format!("the {prefix} script"), secs: 60 }),
        }
    }

    /// Create and start one node container: its own hostname and fixed IP on the lab network,
    /// a labelled volume for the inner engine's data, and the rights a nested engine needs.
    pub async fn create_node(
        &self,
        plan: &LabPlan,
        node: &NodePlan,
        image: &str,
        mode: NestedMode,
        boot: &crate::plan::NodeBoot,
    ) -> Result<(), LabError> {
        let labels = plan.labels(Some(&node.name));
        self.docker
            .create_volume(VolumeCreateRequest { name: Some(node.volume.clone()), labels: Some(labels.clone()), ..Default::default() })
            .await
            .map_err(|e| LabError::CreateVolume { volume: node.volume.clone(), lab: plan.lab.clone(), source: e })?;
        let mut host = HostConfig {
            // The inner runtime's layers on a real volume: overlay cannot stack on the host's overlay.
            mounts: Some(
                std::iter::once(Mount {
                    target: Some(boot.data_dir.into()),
                    source: Some(node.volume.clone()),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                })
                .chain(boot.binds.iter().map(|(src, dst)| Mount {
                    target: Some(dst.clone()),
                    source: Some(src.clone()),
                    typ: Some(MountType::BIND),
                    read_only: Some(true),
                    ..Default::default()
                }))
                .collect(),
            ),
            // containerd and dockerd keep sockets and pid files in /run; a fresh tmpfs each start
            // avoids stale pid files after a node restart.
            tmpfs: Some(HashMap::from([("/run".to_string(), "rw,exec".to_string())])),
            ..Default::default()
        };
        grant_nested_rights(&mut host, mode);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(boot.cmd.clone()),
            hostname: Some(node.name.clone()),
            labels: Some(labels),
            host_config: Some(host),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    plan.network.clone(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig { ipv4_address: Some(node.ip.to_string()), ..Default::default() }),
                        // Fixed, from the plan: faults match forwarded packets by the node they
                        // came from. (Engines before API 1.44 ignore this and derive the same
                        // address from the IP; either way it is verified once the node runs.)
                        mac_address: Some(node.mac()),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let opts = qp::CreateContainerOptionsBuilder::default().name(&node.container).build();
        self.docker.create_container(Some(opts), body).await.map_err(|e| LabError::CreateNode {
            node: node.name.clone(),
            lab: plan.lab.clone(),
            source: e,
        })?;
        self.docker.start_container(&node.container, None::<qp::StartContainerOptions>).await.map_err(|e| LabError::StartNode {
            node: node.name.clone(),
            lab: plan.lab.clone(),
            source: e,
        })?;
        let info = self
            .docker
            .inspect_container(&node.container, None::<qp::InspectContainerOptions>)
            .await
            .map_err(|e| LabError::StartNode { node: node.name.clone(), lab: plan.lab.clone(), source: e })?;
        let mac = info.network_settings.and_then(|n| n.networks).and_then(|n| n.get(&plan.network).and_then(|e| e.mac_address.clone()));
        if mac.as_deref() != Some(node.mac().as_str()) {
            return Err(LabError::Plan {
                lab: plan.lab.clone(),
                message: format!(
                    "node {} got MAC address {:?} on the lab network, not the planned {} (faults need it to tell nodes apart)",
                    node.name,
                    mac.unwrap_or_default(),
                    node.mac()
                ),
            });
        }
        Ok(())
    }

    /// Run a command in a container, bounded by `deadline` (the engine call as a whole: create,
    /// stream, inspect). See `exec`.
    pub async fn exec_within(
        &self,
        container: &str,
        cmd: &[&str],
        stdin: Option<Bytes>,
        deadline: std::time::Duration,
    ) -> Result<ExecOutput, LabError> {
        match tokio::time::timeout(deadline, self.exec(container, cmd, stdin)).await {
            Ok(r) => r,
            Err(_) => Err(LabError::ExecDeadline { container: container.to_string(), cmd: cmd.join(" "), secs: deadline.as_secs() }),
        }
    }

    /// Run a command in a container; `stdin` is streamed in and closed. "Could not run" is an
    /// error; a command that ran and failed returns its exit code and output. Unbounded: callers
    /// go through `exec_within`.
    async fn exec(&self, container: &str, cmd: &[&str], stdin: Option<Bytes>) -> Result<ExecOutput, LabError> {
        let could_not = |e| LabError::Exec { container: container.to_string(), cmd: cmd.join(" "), source: e };
        let cfg = bollard::exec::CreateExecOptions {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(stdin.is_some()),
            ..Default::default()
        };
        let id = self.docker.create_exec(container, cfg).await.map_err(could_not)?.id;
        let mut out = ExecOutput::default();
        match self.docker.start_exec(&id, None).await.map_err(could_not)? {
            bollard::exec::StartExecResults::Attached { mut output, mut input } => {
                let writer = async {
                    if let Some(data) = stdin {
                        input.write_all(&data).await?;
                    }
                    input.shutdown().await
                };
                let reader = async {
                    while let Some(msg) = output.next().await {
                        match msg.map_err(could_not)? {
                            bollard::container::LogOutput::StdOut { message } => out.stdout.push_str(&String::from_utf8_lossy(&message)),
                            bollard::container::LogOutput::StdErr { message } => out.stderr.push_str(&String::from_utf8_lossy(&message)),
                            _ => {}
                        }
                    }
                    Ok::<(), LabError>(())
                };
                let (w, r) = tokio::join!(writer, reader);
                r?;
                // A command that exits without reading all its input closes the pipe early; its
                // exit code below says whether that mattered.
                let _ = w;
            }
            bollard::exec::StartExecResults::Detached => {}
        }
        let info = self.docker.inspect_exec(&id).await.map_err(could_not)?;
        out.code = info.exit_code.unwrap_or(-1);
        Ok(out)
    }

    /// What became of a container, in words, when it no longer runs: `None` while it runs.
    pub async fn gone(&self, container: &str) -> Option<String> {
        match self.docker.inspect_container(container, None).await {
            Ok(info) => {
                let st = info.state.unwrap_or_default();
                let status = st.status.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into());
                let code = st.exit_code.unwrap_or(-1);
                match (st.running.unwrap_or(false), status.as_str()) {
                    (_, "removing") => Some(format!("is being removed (its processes ended with exit code {code})")),
                    (true, _) => None,
                    (false, _) => Some(format!("is no longer running (status {status}, exit code {code})")),
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Some("was removed".into()),
            // The engine could not say: nothing is claimed.
            Err(_) => None,
        }
    }

    /// A container's state as the engine reports it (running, paused, its first process).
    async fn container_state(&self, container: &str) -> Result<bollard::models::ContainerState, LabError> {
        let info = self
            .docker
            .inspect_container(container, None)
            .await
            .map_err(|e| LabError::Inspect { container: container.into(), message: e.to_string() })?;
        Ok(info.state.unwrap_or_default())
    }

    /// The host process id of a running container's first process: its namespaces and, under
    /// `/proc/<pid>/root`, its filesystem as the host sees them.
    pub async fn container_pid(&self, container: &str) -> Result<u32, LabError> {
        match self.container_state(container).await?.pid {
            Some(pid) if pid > 0 => Ok(pid as u32),
            _ => Err(LabError::Inspect { container: container.into(), message: "it is not running".into() }),
        }
    }

    /// Whether the engine holds a container paused (a stop-node fault), as its state says.
    pub async fn is_paused(&self, container: &str) -> Result<bool, LabError> {
        Ok(self.container_state(container).await?.paused.unwrap_or(false))
    }

    /// A container's memory in use, in bytes, as `docker stats` counts it: the cgroup's usage
    /// less its inactive page cache (files read once, which the kernel drops first).
    pub async fn memory_in_use(&self, container: &str) -> Result<u64, LabError> {
        let opts = qp::StatsOptionsBuilder::default().stream(false).one_shot(true).build();
        let err = |message: String| LabError::Inspect { container: container.into(), message };
        let stats = self.docker.stats(container, Some(opts)).next().await.ok_or_else(|| err("no stats".into()))?;
        let mem = stats.map_err(|e| err(e.to_string()))?.memory_stats.ok_or_else(|| err("no memory stats".into()))?;
        let usage = mem.usage.ok_or_else(|| err("no memory usage (is it running?)".into()))?;
        // cgroup v1 names it total_inactive_file, v2 inactive_file.
        let inactive =
            mem.stats.as_ref().and_then(|m| m.get("total_inactive_file").or_else(|| m.get("inactive_file")).copied()).unwrap_or(0);
        Ok(usage.saturating_sub(inactive))
    }

    /// The image's content id on the host engine (None when absent).
    pub async fn image_id(&self, image: &str) -> Option<String> {
        self.docker.inspect_image(image).await.ok().and_then(|i| i.id)
    }

    /// `docker save` of one image, collected in memory (workload images are a few MB).
    pub async fn save_image(&self, image: &str) -> Result<Bytes, LabError> {
        let mut s = self.docker.export_image(image);
        let mut buf = Vec::new();
        while let Some(chunk) = s.next().await {
            buf.extend_from_slice(&chunk.map_err(|e| LabError::SaveImage { image: image.into(), source: e })?);
        }
        Ok(Bytes::from(buf))
    }

    /// A container's log (stdout+stderr), the last `lines` lines.
    pub async fn logs(&self, container: &str, lines: usize) -> String {
        let opts = qp::LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&lines.to_string()).build();
        let mut s = self.docker.logs(container, Some(opts));
        let mut out = String::new();
        while let Some(Ok(chunk)) = s.next().await {
            out.push_str(&chunk.to_string());
        }
        out
    }

    /// Thaw, from the host, every frozen cgroup whose processes descend from one of these
    /// containers (a throwaway container of their image that sees the host's processes and
    /// cgroups). Returns what it did or why it could not, for the teardown's error.
    async fn thaw_from_host(&self, containers: &[&bollard::models::ContainerSummary]) -> String {
        let mut pids = Vec::new();
        for c in containers {
            if let Ok(pid) = self.container_pid(c.id.as_deref().unwrap_or_default()).await {
                pids.push(pid.to_string());
            }
        }
        let Some(first) = containers.first() else { return "nothing to thaw".into() };
        if pids.is_empty() {
            return "none of them has a process left".into();
        }
        let labels: HashMap<String, String> = first
            .labels
            .iter()
            .flatten()
            .filter(|(k, _)| [LABEL_LAB, LABEL_RUN].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let host = HostConfig {
            // The host's process table: which frozen process descends from which node.
            pid_mode: Some("host".into()),
            // The host's cgroups, writable, outside /sys (read-only in a container).
            binds: Some(vec!["/sys/fs/cgroup:/host-cgroup:rw".into()]),
            // AppArmor's default profile denies writes under cgroupfs.
            security_opt: Some(vec!["apparmor=unconfined".into()]),
            // No network: it only reads /proc and writes cgroup files.
            network_mode: Some("none".into()),
            ..Default::default()
        };
        let image = first.image.clone().unwrap_or_default();
        let mut args = vec!["clusterlab-thaw".to_string()];
        args.extend(pids);
        match self.run_throwaway("clusterlab-thaw", &image, host, labels, THAW_FROM_HOST, args).await {
            Ok(out) if out.trim().is_empty() => "no frozen process found".into(),
            Ok(out) => out.trim().lines().collect::<Vec<_>>().join("; "),
            Err(e) => format!("the thaw failed: {e}"),
        }
    }

    /// Resume a paused node and, through its runtime, the containers it froze (best effort,
    /// bounded: removal follows either way and says what failed).
    async fn thaw(&self, container: &str) {
        if self.set_paused(container, false).await.is_ok() {
            let _ = self.exec_within(container, &["sh", "-c", nested_freeze_script(false)], None, std::time::Duration::from_secs(30)).await;
        }
    }

    async fn remove_container(&self, name: &str) -> Result<(), bollard::errors::Error> {
        // force: nodes are running; v: drop anonymous volumes with them.
        let opts = qp::RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(name, Some(opts)).await {
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            r => r,
        }
    }

    /// Remove everything labelled for this lab (and run, if given): containers, then networks
    /// and volumes. Keeps going after a failure and returns every failure at the end.
    pub async fn remove_labelled(&self, lab: Option<&str>, run: Option<&str>) -> Result<Removed, LabError> {
        let mut removed = Removed::default();
        let mut failures = Vec::new();
        let containers = self.lab_containers(lab, run).await?;
        let mut stuck = Vec::new();
        let jobs = containers.iter().map(|c| {
            let name = c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default();
            let id = c.id.clone().unwrap_or_default();
            let paused = c.state == Some(bollard::models::ContainerSummaryStateEnum::PAUSED);
            async move {
                if paused {
                    // A node left paused (a run that ended during a stop-node fault): its own
                    // containers are frozen too and would keep it from ever ending.
                    self.thaw(&id).await;
                }
                (name, c, self.remove_container(&id).await)
            }
        });
        for (name, c, r) in futures_util::future::join_all(jobs).await {
            match r {
                Ok(()) => removed.containers.push(name),
                Err(e) => stuck.push((name, c, e)),
            }
        }
        if !stuck.is_empty() {
            // A node whose kill went unanswered: processes of its own containers are frozen
            // (a freeze that was under way, or a node paused and killed before its containers were
            // thawed), take no SIGKILL, and keep the node from ending. Thawed from the host, they
            // end, and so does the node.
            let thawed = self.thaw_from_host(&stuck.iter().map(|(_, c, _)| *c).collect::<Vec<_>>()).await;
            for (name, c, first) in stuck {
                match self.remove_container(c.id.as_deref().unwrap_or_default()).await {
                    Ok(()) => removed.containers.push(name),
                    Err(e) => failures.push(format!("container {name}: {first}; after thawing from the host ({thawed}): {e}")),
                }
            }
        }
        for n in self.lab_networks(lab, run).await? {
            let name = n.name.unwrap_or_default();
            match self.docker.remove_network(&name).await {
                Ok(()) => removed.networks.push(name),
                Err(e) => failures.push(format!("network {name}: {e}")),
            }
        }
        for v in self.lab_volumes(lab, run).await? {
            let opts = qp::RemoveVolumeOptionsBuilder::default().force(true).build();
            match self.docker.remove_volume(&v.name, Some(opts)).await {
                Ok(()) => removed.volumes.push(v.name),
                Err(e) => failures.push(format!("volume {}: {e}", v.name)),
            }
        }
        if failures.is_empty() {
            Ok(removed)
        } else {
            Err(LabError::Teardown { what: lab.unwrap_or("all labs").to_string(), failures })
        }
    }

    /// A side container outside the lab (the stray proxy of an http-proxy fault): on a network of
    /// its own, so Docker's isolation between bridge networks keeps it from reaching the nodes,
    /// with `port` published on the lab's gateway address only, where the nodes reach it.
    /// Returns the host port the engine picked. Both objects carry the lab's labels.
    pub async fn create_side_container(
        &self,
        plan: &LabPlan,
        name: &str,
        image: &str,
        cmd: Vec<String>,
        port: u16,
    ) -> Result<u16, LabError> {
        let labels = plan.labels(None);
        let net = format!("{name}-net");
        let existing = self.docker.list_networks(None::<qp::ListNetworksOptions>).await.map_err(LabError::ListNetworks)?;
        if !existing.iter().any(|n| n.name.as_deref() == Some(net.as_str())) {
            // No subnet given: the engine's default pools (172.x), apart from clusterlab's 10.213/16.
            let req = NetworkCreateRequest {
                name: net.clone(),
                driver: Some("bridge".into()),
                labels: Some(labels.clone()),
                ..Default::default()
            };
            self.docker.create_network(req).await.map_err(|e| LabError::CreateNetwork {
                network: net.clone(),
                lab: plan.lab.clone(),
                source: e,
            })?;
        }
        let key = format!("{port}/tcp");
        let host = HostConfig {
            // Published on the lab's gateway address only (not on every host address), and on a
            // port the engine picks, so labs side by side never collide.
            port_bindings: Some(HashMap::from([(
                key.clone(),
                Some(vec![bollard::models::PortBinding { host_ip: Some(plan.gateway.to_string()), host_port: Some(String::new()) }]),
            )])),
            network_mode: Some(net.clone()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(cmd),
            hostname: Some(name.to_string()),
            labels: Some(labels),
            exposed_ports: Some(vec![key.clone()]),
            host_config: Some(host),
            ..Default::default()
        };
        let fail = |e| LabError::CreateSide { container: name.to_string(), lab: plan.lab.clone(), source: e };
        let opts = qp::CreateContainerOptionsBuilder::default().name(name).build();
        self.docker.create_container(Some(opts), body).await.map_err(fail)?;
        self.docker.start_container(name, None::<qp::StartContainerOptions>).await.map_err(fail)?;
        let info = self.docker.inspect_container(name, None::<qp::InspectContainerOptions>).await.map_err(fail)?;
        let port = info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|p| p.get(&key).cloned().flatten())
            .and_then(|b| b.first().and_then(|b| b.host_port.clone()))
            .and_then(|p| p.parse().ok());
        port.ok_or_else(|| LabError::Plan { lab: plan.lab.clone(), message: format!("the engine published no port for {name}") })
    }

    /// Remove a side container and its network (a fault's revert); absent ones are fine.
    pub async fn remove_side_container(&self, lab: &str, name: &str) -> Result<(), LabError> {
        let fail = |e| LabError::Teardown { what: format!("{name} of lab {lab}"), failures: vec![format!("{e}")] };
        self.remove_container(name).await.map_err(fail)?;
        match self.docker.remove_network(&format!("{name}-net")).await {
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) | Ok(()) => Ok(()),
            Err(e) => Err(fail(e)),
        }
    }

    /// Start a run's reaper: `image` runs `sh -c script args…` with the engine's socket and the
    /// host's process table, removed by the engine when it exits. Labelled like the lab.
    pub async fn start_reaper(&self, plan: &LabPlan, name: &str, image: &str, script: &str, args: &[String]) -> Result<(), LabError> {
        let host = HostConfig {
            // The engine's own socket: the reaper removes the run's objects through it.
            binds: Some(vec!["/var/run/docker.sock:/var/run/docker.sock".into(), "/sys/fs/cgroup:/host-cgroup:rw".into()]),
            // The host's process table: the reaper watches the owning process by pid and start time
            // (and finds which frozen processes are a node's, see THAW_FROM_HOST).
            pid_mode: Some("host".into()),
            // The host's cgroups, writable, outside /sys (read-only in a container): a node
            // whose own containers are frozen is thawed before it is removed.
            security_opt: Some(vec!["apparmor=unconfined".into()]),
            // No network: it only talks to the engine's socket.
            network_mode: Some("none".into()),
            // Gone by itself once its work is done (or when told nothing needs watching).
            auto_remove: Some(true),
            ..Default::default()
        };
        let mut cmd = vec!["-c".to_string(), script.to_string(), "clusterlab-reaper".to_string()];
        cmd.extend(args.iter().cloned());
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["/bin/sh".into()]),
            cmd: Some(cmd),
            labels: Some(plan.labels(None)),
            host_config: Some(host),
            ..Default::default()
        };
        let fail = |e| LabError::CreateSide { container: name.to_string(), lab: plan.lab.clone(), source: e };
        let opts = qp::CreateContainerOptionsBuilder::default().name(name).build();
        self.docker.create_container(Some(opts), body).await.map_err(fail)?;
        self.docker.start_container(name, None::<qp::StartContainerOptions>).await.map_err(fail)
    }

    /// Pause or unpause a container (used by node faults).
    pub async fn set_paused(&self, container: &str, paused: bool) -> Result<(), LabError> {
        let r = if paused { self.docker.pause_container(container).await } else { self.docker.unpause_container(container).await };
        r.map_err(|e| LabError::PauseNode { container: container.to_string(), paused, source: e })
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Removed {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}
