//! Docker swarm on the nodes' inner engines: init on the first manager, joins in parallel,
//! overlay networks, services, scale, and a convergence wait that polls, never sleeps blindly.

use super::{placement, AtStage, PathEnd, PathOffer, Replica, Stack};
use crate::lab::{shq, Lab};
use crate::model::{Bench, BenchKind, Check, CheckKind, ClientKind, EndpointMode, InstallStage, PathKind, Role};
use crate::provider::{tail, LabError};
pub use crate::vocab::probe_container;
use crate::vocab::{Client, DnsExpect, DnsLookup, Observation, ServicePaths};
use futures_util::future::try_join_all;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Why swarm's VIP and routing mesh cannot work on a host.
const NO_IPVS: &str = "kernel lacks IP_VS (swarm's VIP and routing mesh are IPVS)";

/// Holds when the nodes' kernel has IPVS: /proc/net/ip_vs exists only then (built in or loaded).
const HAS_IPVS: &str = "test -e /proc/net/ip_vs";

/// The node's swarm state (`inactive`, `pending`, `active`, `error`, `locked`).
const SWARM_STATE: &str = "docker info -f '{{.Swarm.LocalNodeState}}'";

/// The node engine's API by curl, for the questions asked often while tasks start: the docker
/// CLI costs ~55 ms of CPU per call in a node (measured), curl of the API ~20 ms. `-f`: an
/// HTTP error is a failure, with no body.
const ENGINE_API: &str = "curl -sf --unix-socket /var/run/docker.sock http://engine";

/// How long a service may take to converge. A 3-replica service converges in ~5 s here; the
/// margin is for a loaded 2-core machine, and a timeout still fails with the tasks' states.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Swarm<'a> {
    pub lab: &'a Lab,
    /// Does the nodes' kernel have IPVS (swarm's VIP and routing mesh)? Measured at install.
    ipvs: std::sync::OnceLock<bool>,
    /// The last listing of each (service, node): a paused node (stop-node fault) cannot be asked,
    /// and its replicas are still there, frozen.
    seen: std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
}

impl<'a> Swarm<'a> {
    pub fn new(lab: &'a Lab) -> Swarm<'a> {
        Swarm { lab, ipvs: std::sync::OnceLock::new(), seen: Default::default() }
    }
}

impl Swarm<'_> {
    fn leader(&self) -> String {
        self.lab.plan.leader().name.clone()
    }

    /// Does a service publish a port (swarm's routing mesh, the `ingress` network)?
    fn routing_mesh(&self) -> bool {
        self.lab.scenario.services.iter().any(|s| !s.publish.is_empty())
    }

    /// Wait until every node's inner engine answers; one exec per node loops inside the node.
    pub async fn wait_engines(&self) -> Result<(), LabError> {
        let secs = 60;
        try_join_all(self.lab.plan.nodes.iter().map(|n| async move {
            // The API's ping: polled every 0.1 s on three starting engines, the CLI's CPU
            // would be taken from the engines' own start.
            if self.lab.poll(&n.name, &format!("{ENGINE_API}/_ping >/dev/null"), secs, "0.1").await? {
                return Ok(());
            }
            let log = self.lab.sh_raw(&n.name, "tail -n 15 /var/log/clusterlab/dockerd.log").await.map(|o| o.stdout).unwrap_or_default();
            Err(LabError::EngineNotReady { node: n.name.clone(), secs, tail: tail(&log, 15) })
        }))
        .await
        .map(|_| ())
    }

    /// Load images from the host engine into every node (`docker save | docker load`); a node
    /// that already holds the same image id (a second `up`) reads the stream and keeps its own.
    pub async fn load_images(&self, images: &[String]) -> Result<(), LabError> {
        for image in images {
            let host_id = self.lab.engine.image_id(image).await.ok_or_else(|| LabError::ImageMissing { image: image.clone() })?;
            let data = self.lab.engine.save_image(image).await?;
            // One exec per node (each costs the host's engine ~75 ms of CPU, measured; the
            // bring-up is CPU-bound), the held image's id asked in it. (The load first, as a
            // function: a failure names the script's first line.)
            let script = format!(
                "load() {{ docker load -q; }}\n\
                 if [ \"$(docker image inspect -f '{{{{.Id}}}}' {} 2>/dev/null)\" = {} ]; then cat >/dev/null; else load; fi",
                shq(image),
                shq(&host_id)
            );
            let (script, what) = (&script, format!("loading image {image}"));
            try_join_all(self.lab.plan.nodes.iter().map(|n| {
                let data = data.clone();
                let what = &what;
                async move { self.lab.sh_in(&n.name, what, script, Some(data)).await }
            }))
            .await?;
        }
        Ok(())
    }

    /// The swarm on the leader (unless it has one), and its join tokens (worker, manager).
    async fn init(&self) -> Result<(String, String), LabError> {
        let leader = self.lab.plan.leader().clone();
        // One exec (each costs ~0.1-0.2 s here, on the bring-up's critical path): re-running
        // `up` on a lab whose swarm exists skips the init rather than failing, then both tokens.
        // (The init's line first: a failure names the first line of the script.)
        // What `learn` asks (IPVS) is asked here too, on its own last line: one exec less.
        let script = init_script(&leader.ip.to_string(), self.routing_mesh());
        let out = self.lab.sh(&leader.name, "swarm init", &script).await?;
        let mut lines: Vec<&str> = out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if let Some(ipvs) = lines.last().and_then(|l| l.strip_prefix("ipvs=")) {
            let _ = self.ipvs.set(ipvs == "yes");
            lines.pop();
        }
        let mut tokens = lines.into_iter();
        match (tokens.next(), tokens.next()) {
            (Some(w), Some(m)) => Ok((w.to_string(), m.to_string())),
            _ => Err(LabError::Command {
                node: leader.name.clone(),
                what: "reading the swarm join tokens".into(),
                cmd: "docker swarm join-token -q worker && docker swarm join-token -q manager".into(),
                code: out.code,
                tail: format!("expected two tokens, got: {}", out.stdout.trim()),
            }),
        }
    }

    /// Every other node joins the leader's swarm, at once.
    async fn join(&self, (worker_token, manager_token): &(String, String)) -> Result<(), LabError> {
        let leader = self.lab.plan.leader().clone();
        try_join_all(self.lab.plan.nodes.iter().filter(|n| n.name != leader.name).map(|n| {
            let tok = if n.role == Role::Manager { manager_token } else { worker_token };
            let addr = format!("{}:2377", leader.ip);
            async move {
                let join = format!("docker swarm join --advertise-addr {} --token {tok} {addr} >/dev/null", n.ip);
                // One exec in the common case: a node that is in no swarm joins at once; one
                // that is (a second `up`) is left alone; one whose earlier join is unfinished
                // says so with exit code 10 and its state.
                let first = format!(
                    "s=$({SWARM_STATE})\n\
                     case \"$s\" in active) exit 0 ;; pending|error) echo \"$s\"; exit 10 ;; esac\n\
                     {join}\n"
                );
                let out = self.lab.sh_raw(&n.name, &first).await?;
                if out.code != 10 {
                    return if out.ok() {
                        Ok(())
                    } else {
                        Err(LabError::Command {
                            node: n.name.clone(),
                            what: "swarm join".into(),
                            cmd: join.trim_end_matches(" >/dev/null").to_string(),
                            code: out.code,
                            tail: tail(&format!("{}\n{}", out.stdout, out.stderr), 12),
                        })
                    };
                }
                // An earlier join that timed out goes on in the background ("pending"), or gave
                // up ("error"). Given a few seconds it may finish; if not, it is abandoned and
                // the join starts over (a pending node refuses a new join).
                let active = format!("[ \"$({SWARM_STATE})\" = active ]");
                if self.lab.poll(&n.name, &active, 10, "0.5").await? {
                    return Ok(());
                }
                self.lab.sh(&n.name, "abandoning an earlier swarm join", "docker swarm leave --force").await?;
                self.lab.sh(&n.name, "swarm join", &join).await.map(|_| ())
            }
        }))
        .await
        .map(|_| ())
    }

    async fn create_networks(&self) -> Result<(), LabError> {
        let leader = self.leader();
        // --internal where nothing publishes a port: the overlay is all a task or probe may
        // reach, so none needs a way off it. Without the flag every node builds the gateway
        // bridge (docker_gwbridge, its NAT and isolation rules) at its first task, and every
        // container gets a second interface on it — measured, a 3-node lab was up 0.65 s sooner
        // without (medians of 8). The overlay itself, and every path a check takes over it, is
        // the same. A routing mesh keeps the bridge: its ingress sandbox sits on it.
        let mesh = self.routing_mesh();
        try_join_all(self.lab.scenario.networks.iter().map(|net| {
            let script = network_script(&net.name, mesh);
            let leader = &leader;
            async move { self.lab.sh(leader, &format!("creating overlay network {}", net.name), &script).await }
        }))
        .await
        .map(|_| ())
    }

    async fn create_services(&self) -> Result<(), LabError> {
        let leader = self.leader();
        for s in &self.lab.scenario.services {
            let mut cmd = format!(
                // -d: return at once, convergence is polled below with states shown on timeout.
                // --no-resolve-image: the image is loaded on every node; asking a registry for its digest would hang offline.
                "docker service create -d --no-resolve-image --name {} --replicas {} --network {} --label io.clusterlab.lab={}",
                shq(&s.name),
                s.replicas,
                shq(&s.network),
                shq(&self.lab.plan.lab)
            );
            for p in &s.publish {
                cmd.push_str(&format!(" --publish published={},target={}", p.port, p.target));
            }
            if s.endpoint_mode == EndpointMode::Dnsrr {
                cmd.push_str(" --endpoint-mode dnsrr");
            }
            cmd.push(' ');
            cmd.push_str(&shq(&self.lab.workload(&s.image)));
            // One exec: a service that exists (a second `up`) is kept as it is.
            let script = format!("docker service inspect {} >/dev/null 2>&1 || {cmd} >/dev/null", shq(&s.name));
            self.lab.sh(&leader, &format!("creating service {}", s.name), &script).await?;
        }
        Ok(())
    }

    /// A container of the node's engine on an overlay network, started unless it runs already
    /// (`run`: the image and command for `docker run`).
    async fn ensure_container(&self, node: &str, name: &str, network: &str, run: &str, what: &str) -> Result<(), LabError> {
        // Asked of the API (the tasks start beside it): a running one is kept, a stopped one
        // replaced. (The run first, as a function: a failure names the script's first line.)
        // Tried up to three times, a second apart: a node's first attachment to an overlay
        // waits for the manager to allocate it, and a loaded manager let that time out once in
        // ~40 runs (20 s, "context deadline exceeded"; the same swarm's tasks were placed a few
        // seconds later). A try at once after it failed too, once: the failed attachment's
        // cleanup was still removing the node's copy of the network ("network … not found").
        // The last try's failure is the one reported.
        let script = format!(
            "start() {{ docker run -d --name {name} --network {} {run} >/dev/null; }}\n\
             state=$({ENGINE_API}/containers/{name}/json)\n\
             case \"$state\" in *'\"Running\":true'*) exit 0 ;; esac\n\
             [ -z \"$state\" ] || docker rm -f {name} >/dev/null\n\
             for try in 1 2; do start 2>/dev/null && exit 0; docker rm -f {name} >/dev/null 2>&1; sleep 1; done\n\
             start",
            shq(network)
        );
        self.lab.sh(node, what, &script).await.map(|_| ())
    }

    /// One probe container per node and overlay network, from the workload image (busybox wget
    /// and nslookup inside), so probes see the overlay exactly as a task does.
    async fn start_probes(&self) -> Result<(), LabError> {
        let nets: Vec<String> = self.lab.scenario.networks.iter().map(|n| n.name.clone()).collect();
        try_join_all(self.lab.plan.nodes.iter().flat_map(|n| {
            nets.iter().map(move |net| async move {
                let run = format!("--entrypoint sleep {} 2147483647", shq(&self.lab.probe_image()));
                self.ensure_container(&n.name, &probe_container(net), net, &run, &format!("starting the probe on {net}")).await
            })
        }))
        .await
        .map(|_| ())
    }

    /// The containers of the tasks of `service` the swarm wants running, as the leader's API
    /// lists them. `None` when the leader cannot say: paused (a stop-node fault on it), or its
    /// API answers with an error (managers without a quorum have no leader). Then every task
    /// container a node runs counts, as the nodes list them — and a swarm without a leader
    /// replaces no task either.
    async fn wanted_containers(&self, service: &str) -> Result<Option<BTreeSet<String>>, LabError> {
        const NO_ANSWER: i64 = 3;
        let leader = self.lab.plan.leader();
        let filters = wanted_running(service);
        // A task not yet started has no container id: it is no replica yet either.
        let script = format!(
            "tasks=$({ENGINE_API}/tasks -G --data-urlencode {}) || exit {NO_ANSWER}\n\
             printf '%s' \"$tasks\" | grep -o '\"ContainerID\":\"[0-9a-f]*\"' || :",
            shq(&filters)
        );
        match self.lab.sh(&leader.name, &format!("listing the tasks of {service} the swarm wants running"), &script).await {
            Ok(o) => {
                Ok(Some(o.stdout.lines().filter_map(|l| l.rsplit('"').nth(1)).filter(|id| !id.is_empty()).map(str::to_string).collect()))
            }
            Err(LabError::Command { code: NO_ANSWER, .. }) => Ok(None),
            Err(e) => match self.lab.engine.is_paused(&leader.container).await {
                Ok(true) => Ok(None),
                _ => Err(e),
            },
        }
    }

    /// Wait until every desired task of `service` runs; on timeout, fail with each task's state.
    /// The wait loops inside the leader (one exec, not one per poll: an exec costs the host's
    /// engine and runc CPU too): the API's task list every 0.2 s there — CPU the tasks being
    /// started need on two cores.
    pub async fn converge(&self, service: &str, replicas: u32) -> Result<Vec<Replica>, LabError> {
        let start = Instant::now();
        let leader = self.leader();
        // Task states of the service's tasks that should run; `"State"` is the task's status
        // ("DesiredState" does not match: no quote before its `State`).
        let filters = wanted_running(service);
        let all_run = format!(
            "[ \"$({ENGINE_API}/tasks -G --data-urlencode {} | grep -o '\"State\":\"running\"' | wc -l)\" = {replicas} ]",
            shq(&filters)
        );
        loop {
            let left = CONVERGE_TIMEOUT.saturating_sub(start.elapsed()).as_secs().max(1);
            if self.lab.poll(&leader, &all_run, left, "0.2").await? {
                // The tasks run; each node lists its task containers (a task that runs may
                // still be missing from `docker ps` for a moment: then wait on).
                let found = self.replicas(service).await?;
                if found.len() as u32 == replicas {
                    return Ok(found);
                }
            }
            if start.elapsed() > CONVERGE_TIMEOUT {
                let ps = self
                    .lab
                    .sh(&leader, "listing tasks", &format!("docker service ps {} --filter desired-state=running --format '{{{{.Name}}}}|{{{{.Node}}}}|{{{{.CurrentState}}}}|{{{{.Error}}}}'", shq(service)))
                    .await?;
                let running = ps.stdout.lines().filter(|l| l.split('|').nth(2).is_some_and(|s| s.starts_with("Running"))).count();
                return Err(LabError::Converge {
                    service: service.to_string(),
                    secs: CONVERGE_TIMEOUT.as_secs(),
                    detail: format!("{running} of {replicas} tasks running\n{}", tail(&ps.stdout, 12)),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Stack for Swarm<'_> {
    async fn runtime(&self) -> Result<String, LabError> {
        self.wait_engines().await.at(InstallStage::Runtime)?;
        Ok("node engines answer".into())
    }

    async fn prepare(&self, images: &[String], progress: &mut (dyn FnMut(String) + Send)) -> Result<(), LabError> {
        // Each branch says when it is done (they end at different times).
        let progress = std::sync::Mutex::new(progress);
        let mark = |line: String| {
            if let Ok(mut p) = progress.lock() {
                p(line)
            }
        };
        // Forming the swarm needs no image: the leader's init and the joins run while the
        // images stream into the nodes (the engines do both at once), not after. The overlays
        // need only the leader: created while the others join.
        let (loaded, formed) = tokio::join!(
            async {
                self.load_images(images).await.at(InstallStage::Images)?;
                mark(format!("loaded {}", images.join(", ")));
                Ok::<_, LabError>(())
            },
            async {
                let tokens = self.init().await.at(InstallStage::SwarmInit)?;
                futures_util::try_join!(async { self.join(&tokens).await.at(InstallStage::SwarmJoin) }, async {
                    self.create_networks().await.at(InstallStage::Services)
                })?;
                mark(if self.routing_mesh() {
                    "swarm formed, overlays created".into()
                } else {
                    "swarm formed, internal overlays created (no service publishes a port: no routing mesh, no gateway bridge)".into()
                });
                Ok::<_, LabError>(())
            }
        );
        formed?;
        loaded
    }

    async fn learn(&self) -> Result<(), LabError> {
        let ipvs = self.lab.sh_raw(&self.leader(), HAS_IPVS).await?.ok();
        let _ = self.ipvs.set(ipvs);
        Ok(())
    }

    async fn install(&self, progress: &mut (dyn FnMut(String) + Send)) -> Result<(), LabError> {
        // The swarm and its overlays formed in `prepare`, while the images loaded.
        // The probes attach to the overlays while the services are created and their tasks
        // start. Both go through the managers' allocation and the nodes' overlay sandboxes:
        // measured, the probes add ~0.8 s to the tasks alone whether they start beside them or
        // after (3-node lab).
        let converged = async {
            self.create_services().await?;
            let mut out = Vec::new();
            for s in &self.lab.scenario.services {
                out.push((s.name.clone(), self.converge(&s.name, s.replicas).await?));
            }
            Ok::<_, LabError>(out)
        };
        let (probes, converged) = tokio::join!(self.start_probes(), converged);
        for (name, rs) in converged.at(InstallStage::Services)? {
            progress(format!("service {name} converged: {}", placement(&rs)));
        }
        probes.at(InstallStage::Probes)?;
        progress("probes started".into());
        Ok(())
    }

    async fn scale(&self, service: &str, replicas: u32) -> Result<Vec<Replica>, LabError> {
        self.lab.sh(&self.leader(), &format!("scaling {service}"), &format!("docker service scale -d {}={replicas}", shq(service))).await?;
        self.converge(service, replicas).await
    }

    async fn paths(&self, service: &str, _client: ClientKind) -> Result<ServicePaths, LabError> {
        let svc = self.lab.scenario.service(service).expect("validated service");
        // The service's name resolves (Docker's DNS) to its VIP, or to the tasks with dnsrr.
        let vip = self
            .lab
            .sh_raw(
                &self.leader(),
                &format!("docker service inspect -f '{{{{range .Endpoint.VirtualIPs}}}}{{{{.Addr}}}} {{{{end}}}}' {}", shq(service)),
            )
            .await?
            .stdout;
        let (notes, vip_addr) = match vip.split_whitespace().last() {
            Some(v) if svc.endpoint_mode == EndpointMode::Vip => {
                // `10.0.1.2/24`: the address, on the port the tasks listen on (a VIP keeps it).
                let ip = v.split('/').next().unwrap_or(v);
                (vec![format!("{service}'s VIP on {} is {v}", svc.network)], Some(format!("{ip}:{}", svc.port)))
            }
            _ => (vec![], None),
        };
        Ok(ServicePaths {
            client: Client::Overlay { network: svc.network.clone() },
            // Swarm's DNS resolves the name to the VIP, which keeps the tasks' port.
            vip: format!("{service}:{}", svc.port),
            vip_addr,
            node_port: svc.publish.first().map(|p| p.port),
            notes,
            // Docker's embedded DNS answers `tasks.<service>` with every task's address.
            dns: DnsLookup { name: format!("tasks.{service}"), server: Some("127.0.0.11".into()), expect: DnsExpect::Replicas },
        })
    }

    fn unsupported(&self, check: &Check) -> Option<String> {
        let svc = self.lab.scenario.service(&check.service)?;
        let needs_ipvs = match check.kind {
            CheckKind::Vip => svc.endpoint_mode == EndpointMode::Vip,
            // The routing mesh forwards published ports through IPVS in the ingress network.
            CheckKind::NodePort => true,
            _ => false,
        };
        (needs_ipvs && self.ipvs.get() == Some(&false)).then(|| NO_IPVS.to_string())
    }

    async fn observe_special(&self, check: &Check) -> Result<Observation, LabError> {
        Err(LabError::Fault { fault: check.name.clone(), message: "no such check on swarm".into() })
    }

    async fn bench_path(&self, bench: &Bench, path: PathKind, target: &Replica) -> Result<PathOffer, LabError> {
        let port = bench.kind.server_port();
        let svc = self.lab.scenario.service(&bench.service).cloned();
        let Some(svc) = svc else { return Ok(Err(format!("no service {}", bench.service))) };
        if path != PathKind::Direct {
            if self.ipvs.get() == Some(&false) {
                return Ok(Err(NO_IPVS.into()));
            }
            if svc.replicas > 1 && bench.kind == BenchKind::Throughput {
                return Ok(Err("swarm balances every connection over all replicas and cannot pin one: iperf3's control and data connections would split".into()));
            }
        }
        // The client: a tools container on the service's overlay, on the bench's node.
        let name = format!("clusterlab-perf-{}", svc.network);
        self.ensure_container(&bench.from, &name, &svc.network, &shq(&self.lab.image("tools")), "starting the bench client").await?;
        let client = Client::Container { name };
        Ok(Ok(match path {
            PathKind::Vip => {
                PathEnd { client, host: bench.service.clone(), port, how: format!("the VIP of {} on {}", bench.service, svc.network) }
            }
            PathKind::NodePort => {
                let ip = self.lab.node_ip(&target.node);
                let published = svc.publish.iter().find(|p| p.target == port).map(|p| p.port).unwrap_or(port);
                PathEnd {
                    client: Client::Node,
                    host: ip.clone(),
                    port: published,
                    how: format!("published port {ip}:{published} (routing mesh)"),
                }
            }
            _ => PathEnd {
                client,
                host: target.ip.clone(),
                port,
                how: format!("overlay address {}:{port} of {}, from a container on {}", target.ip, target.label(), svc.network),
            },
        }))
    }

    /// The service's replicas: the task containers each node runs (with hostname and overlay
    /// address) whose task the swarm wants running. A node's engine also runs, for a while, the
    /// container of a task the swarm has already replaced (after a partition long enough for the
    /// manager to give up on a node, the node's old task shuts down only once it is back): that
    /// container is no replica — the service's load balancer no longer sends to it, and it may
    /// stop in the middle of a check.
    async fn replicas(&self, service: &str) -> Result<Vec<Replica>, LabError> {
        // Network names are validated labels, so they go into the template as a plain Go string.
        let net = self.lab.scenario.service(service).map(|s| format!("\"{}\"", s.network)).unwrap_or_default();
        // Two docker calls per node, not one per task (each costs ~55 ms of the node's CPU):
        // `docker inspect` takes every task container at once and prints those still there. It
        // fails when one is gone: a task that ended since the listing (the listing differs now)
        // is no replica any more; any other failure is the listing's, and says why.
        let script = format!(
            "ids=$(docker ps -q --filter label=com.docker.swarm.service.name={svc}) || exit\n\
             [ -n \"$ids\" ] || exit 0\n\
             docker inspect -f '{{{{.Id}}}} {{{{index .Config.Labels \"com.docker.swarm.task.name\"}}}} {{{{.Config.Hostname}}}} {{{{with index .NetworkSettings.Networks {net}}}}}{{{{.IPAddress}}}}{{{{end}}}}' $ids && exit 0\n\
             [ \"$(docker ps -q --filter label=com.docker.swarm.service.name={svc})\" != \"$ids\" ]",
            svc = shq(service),
        );
        let per_node = try_join_all(self.lab.plan.nodes.iter().map(|n| {
            let script = script.clone();
            async move {
                let key = (service.to_string(), n.name.clone());
                match self.lab.sh(&n.name, &format!("listing replicas of {service}"), &script).await {
                    Ok(o) => {
                        if let Ok(mut seen) = self.seen.lock() {
                            seen.insert(key, o.stdout.clone());
                        }
                        Ok((n.name.clone(), o.stdout))
                    }
                    // A paused node cannot answer; its replicas are the ones it had. Paused is
                    // what the engine says of the node, not what the failed exec's message says.
                    Err(e) => match self.lab.engine.is_paused(&n.container).await {
                        Ok(true) => Ok((n.name.clone(), self.seen.lock().ok().and_then(|s| s.get(&key).cloned()).unwrap_or_default())),
                        _ => Err(e),
                    },
                }
            }
        }));
        let (per_node, wanted) = tokio::join!(per_node, self.wanted_containers(service));
        let (per_node, wanted) = (per_node?, wanted?);
        let mut out = Vec::new();
        for (node, text) in per_node {
            for line in text.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() == 4 && wanted.as_ref().is_none_or(|w| w.contains(f[0])) {
                    // Task names are `web.2.<task id>`; `web.2` is what a reader needs.
                    let task = f[1].rsplit_once('.').map_or(f[1], |x| x.0).to_string();
                    out.push(Replica { task, node: node.clone(), identity: f[2].to_string(), ip: f[3].to_string() });
                }
            }
        }
        out.sort_by(|a, b| task_order(&a.task).cmp(&task_order(&b.task)).then(a.node.cmp(&b.node)));
        Ok(out)
    }
}

/// The leader's one exec: the swarm (unless it has one), its `ingress` network kept only for a
/// routing mesh, both join tokens, and whether the kernel has IPVS.
fn init_script(leader_ip: &str, routing_mesh: bool) -> String {
    let ingress = if routing_mesh {
        // Brought back where a service publishes a port and the swarm has none (its lab was
        // made by a scenario that published nothing).
        format!("{ENGINE_API}/networks/ingress -o /dev/null || docker network create -d overlay --ingress ingress >/dev/null || exit")
    } else {
        // Removed before any node joins: a lab whose services publish no port has no use for
        // the routing mesh's network, and every node that joins a swarm holding it builds its
        // sandbox (a namespace, docker_gwbridge, a VXLAN device, load-balancer rules) while the
        // tasks start — measured, a 3-node lab converged 0.6-1.2 s sooner without it. The
        // overlays the tasks use are untouched. By the API (the CLI asks for a confirmation;
        // `-f` fails on an HTTP error, `-w` still prints its code); gone already (a second `up`)
        // is what was asked for.
        format!(
            "code=$({ENGINE_API}/networks/ingress -X DELETE -o /dev/null -w '%{{http_code}}')\n\
             case \"$code\" in 2??|404) ;; *) echo \"removing the ingress network (no service publishes a port): HTTP $code\" >&2; exit 1 ;; esac"
        )
    };
    format!(
        "[ \"$({SWARM_STATE})\" = active ] || docker swarm init --advertise-addr {leader_ip} >/dev/null || exit\n\
         {ingress}\n\
         docker swarm join-token -q worker && docker swarm join-token -q manager || exit\n\
         {HAS_IPVS} && echo ipvs=yes || echo ipvs=no\n"
    )
}

/// Creates the overlay `name` on the leader unless it exists (a second `up` keeps it);
/// `--internal` unless a routing mesh needs the gateway bridge (see `create_networks`).
fn network_script(name: &str, routing_mesh: bool) -> String {
    // --attachable: the probe containers join the overlay beside the service's tasks.
    let (name, internal) = (shq(name), if routing_mesh { "" } else { " --internal" });
    format!("docker network inspect {name} >/dev/null 2>&1 || docker network create -d overlay --attachable{internal} {name} >/dev/null")
}

/// The task API's filter for the tasks of `service` the swarm wants running.
fn wanted_running(service: &str) -> String {
    format!("filters={{\"service\":[\"{service}\"],\"desired-state\":[\"running\"]}}")
}

fn task_order(task: &str) -> (String, u32) {
    match task.rsplit_once('.') {
        Some((s, n)) => (s.to_string(), n.parse().unwrap_or(0)),
        None => (task.to_string(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingress_network_goes_before_the_joins_unless_a_port_is_published() {
        let lines = |mesh| init_script("10.213.0.11", mesh).lines().map(str::to_string).collect::<Vec<_>>();
        let (without, with) = (lines(false), lines(true));
        // Removed right after the init, before the tokens a joining node needs are read.
        assert!(without[0].contains("docker swarm init --advertise-addr 10.213.0.11"));
        assert!(without[1].contains("/networks/ingress -X DELETE"), "{}", without[1]);
        assert!(without[2].contains("2??|404) ;;"), "gone already is fine, any other answer fails: {}", without[2]);
        assert!(without[3].starts_with("docker swarm join-token"));
        // A published port keeps it, and brings it back to a swarm made without one.
        assert!(!with.iter().any(|l| l.contains("DELETE")));
        assert!(with[1].contains("docker network create -d overlay --ingress ingress"));
        assert_eq!(with.last(), without.last());
    }

    #[test]
    fn overlays_are_internal_unless_a_routing_mesh_needs_the_gateway_bridge() {
        let create = |mesh| network_script("net1", mesh).split(" || ").nth(1).unwrap().to_string();
        assert_eq!(create(false), "docker network create -d overlay --attachable --internal 'net1' >/dev/null");
        assert_eq!(create(true), "docker network create -d overlay --attachable 'net1' >/dev/null");
    }
}
