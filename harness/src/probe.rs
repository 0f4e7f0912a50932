//! Probes observe service paths; they judge nothing. Each check kind runs one script per entry
//! node (requests in parallel inside it), so a check costs about one timeout, not one per pair.

use crate::lab::{shq, Lab};
use crate::model::{Check, CheckKind, CheckProtocol, Identity};
use crate::provider::LabError;
use crate::vocab::{probe_container, DnsExpect, Replica};
pub use crate::vocab::{Cell, Client, Latency, Observation, ServicePaths, Target};
use futures_util::future::try_join_all;
use std::collections::BTreeMap;

/// One request's result from a probe script.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Which target the request was for (an address, or `vip`).
    pub key: String,
    /// The client's exit code (0: an answer came).
    pub rc: i32,
    /// How long the request took, in milliseconds.
    pub ms: f64,
    /// The answer as the client printed it (status line and headers first, when it printed
    /// them), or the client's error.
    pub body: String,
}

/// The line separator inside a record: the probe flattens a multi-line answer onto one line.
const SEP: char = '\u{1e}';

/// An HTTP answer as a probe's client printed it: curl's `-i` (status line, headers, a blank
/// line, the body) or busybox wget's `-S` (status line and headers indented by two spaces on
/// stderr, then the body; `wget: ...` lines are its own messages).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The status of the last status line (after redirects), None when none was printed.
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn parse(raw: &str) -> Answer {
        let mut a = Answer::default();
        let mut body: Vec<&str> = Vec::new();
        // None: before any status line; Some(indented): inside the headers of that style.
        let mut in_headers: Option<bool> = None;
        for line in raw.split([SEP, '\n']).map(|l| l.trim_end_matches('\r')) {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix("HTTP/") {
                if in_headers.is_some() || body.is_empty() {
                    a.status = rest.split_whitespace().nth(1).and_then(|c| c.parse().ok());
                    in_headers = Some(line.starts_with("  "));
                    continue;
                }
            }
            match in_headers {
                Some(true) if line.starts_with("  ") => {
                    if let Some((k, v)) = t.split_once(':') {
                        a.headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                    continue;
                }
                Some(false) if t.is_empty() => in_headers = None,
                Some(false) => {
                    if let Some((k, v)) = line.split_once(':') {
                        a.headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                    continue;
                }
                Some(true) => in_headers = None,
                None => {}
            }
            if line.starts_with("wget: ") || (line.is_empty() && body.is_empty()) {
                continue;
            }
            body.push(line);
        }
        while body.last().is_some_and(|l| l.is_empty()) {
            body.pop();
        }
        a.body = body.join("\n");
        a
    }

    /// A header's value (names compare case-insensitively, as HTTP says).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What one request came to, judged against the check's protocol, status and body rules:
/// `Ok(identity)` (the replica the answer names, if the service's answers name one) or why it
/// is not an answer.
pub fn verdict(rec: &Record, check: &Check, identity: &Identity, replicas: &[Replica]) -> Result<Option<String>, String> {
    if check.protocol == CheckProtocol::Tcp {
        return if rec.rc == 0 { Ok(None) } else { Err(failure_detail(rec.rc, &rec.body.replace(SEP, " "))) };
    }
    let a = Answer::parse(&rec.body);
    // A client that failed did not get a whole answer, even when a status line came first (a
    // large answer that hangs after its headers, killed at the timeout) — except busybox wget's
    // refusal of a non-2xx status, which is a whole answer with that status.
    let refused_status = rec.rc == 1 && rec.body.contains("wget: server returned error");
    let status = match a.status {
        Some(s) if rec.rc == 0 || refused_status => s,
        Some(_) => return Err(failure_detail(rec.rc, "")),
        None if rec.rc == 0 => return Err("not an HTTP answer".into()),
        None => return Err(failure_detail(rec.rc, &rec.body.replace(SEP, " "))),
    };
    let status_ok = match check.status {
        Some(want) => status == want,
        None => (200..300).contains(&status),
    };
    if !status_ok {
        return Err(format!("HTTP {status}"));
    }
    if let Some(text) = &check.body {
        if !a.body.contains(text.as_str()) {
            return Err(format!("body lacks {text:?}"));
        }
    }
    Ok(match identity {
        Identity::Web => crate::probe::identity(&a.body).map(str::to_string),
        Identity::Header(h) => a.header(h).map(str::to_string),
        // The longest identity found wins, so `web-1` is not mistaken for `web-12`.
        Identity::Body => {
            replicas.iter().filter(|r| a.body.contains(r.identity.as_str())).max_by_key(|r| r.identity.len()).map(|r| r.identity.clone())
        }
        Identity::None => None,
    })
}

/// `<key> <exit code> <microseconds> <first line...>`
pub fn parse_record(line: &str) -> Option<Record> {
    let mut it = line.splitn(4, ' ');
    let key = it.next()?.to_string();
    let rc = it.next()?.parse().ok()?;
    let us: f64 = it.next()?.parse().ok()?;
    // Only the end is trimmed: busybox wget indents its header lines, and that says which they are.
    Some(Record { key, rc, ms: us / 1000.0, body: it.next().unwrap_or("").trim_end().to_string() })
}

/// The replica identity in a web response: `replica=<hostname> ips=...`.
pub fn identity(body: &str) -> Option<&str> {
    body.split_whitespace().find_map(|w| w.strip_prefix("replica="))
}

fn failure_detail(rc: i32, body: &str) -> String {
    match rc {
        // curl: 28 operation timed out, 7 could not connect.
        28 => "timeout".into(),
        7 => "connection refused".into(),
        // busybox timeout kills with TERM (143); coreutils timeout reports 124.
        124 | 143 => "timeout".into(),
        _ if body.contains("timed out") => "timeout".into(),
        _ if body.contains("refused") => "connection refused".into(),
        _ if body.contains("bad address") => "name does not resolve".into(),
        _ if body.is_empty() => format!("exit {rc}"),
        _ => body.chars().take(80).collect(),
    }
}

/// Requests a probe script has in flight at once on one entry node: enough that a failing
/// check costs about one timeout per batch, few enough for a 2-core machine and busybox.
pub const PARALLEL: u32 = 16;

/// How long a probe script may run before the harness gives up on it: every batch may take the
/// per-request timeout, plus room for the exec itself.
pub fn script_deadline(requests: u32, timeout: std::time::Duration) -> std::time::Duration {
    let batches = requests.div_ceil(PARALLEL).max(1);
    timeout * batches + std::time::Duration::from_secs(20)
}

/// A shell script sending `per_target` requests to each (key, url), at most PARALLEL at once,
/// each bounded by `t` seconds, printing one record a request (see `parse_record`): the answer's
/// first KiB (status line, headers, the body's start) on one line. Keys and URLs are data:
/// quoted once here, never interpreted by the shell. For `tcp`, a URL is `ip:port`.
pub fn request_script(client: &Client, protocol: CheckProtocol, targets: &[(String, String)], per_target: u32, t: &str) -> String {
    let list: Vec<String> = targets.iter().map(|(k, u)| format!("{} {}", shq(k), shq(u))).collect();
    // Microseconds around each request: `date +%s%N` where the client has it (coreutils);
    // busybox's date has no %N, so there the clock is /proc/uptime (10 ms steps), and the
    // script says which clock it used in a `#clock` line.
    format!(
        "now() {{ t=$(date +%s%N); case $t in *N) read u _ < /proc/uptime; echo $(( ${{u%.*}}${{u#*.}} * 10000 ));; *) echo $((t / 1000));; esac; }}\n\
         case $(date +%N) in *N) echo '#clock uptime';; *) echo '#clock ns';; esac\n\
         n=0\nreq() {{ s=$(now); r=$({f} 2>&1); rc=$?; e=$(now); printf '%s %s %s %s\\n' \"$1\" $rc $((e - s)) \"$(printf '%s' \"$r\" | head -c 1024 | tr '\\n' '\\036')\"; }}\n\
         for i in $(seq {per_target}); do\n\
         set -- {list}\n\
         while [ $# -gt 0 ]; do req \"$1\" \"$2\" & shift 2; n=$((n+1)); [ $((n % {PARALLEL})) -eq 0 ] && wait; done\n\
         done; wait",
        f = client.fetch(protocol, t),
        list = list.join(" "),
    )
}

/// The note a probe's output earns when its clock was coarse.
pub fn clock_note(out: &str) -> Option<String> {
    out.lines()
        .any(|l| l.trim() == "#clock uptime")
        .then(|| "latency measured in 10 ms steps (the client's busybox has no finer clock)".to_string())
}

fn secs(check: &Check) -> String {
    format!("{}", check.timeout.as_secs().max(1))
}

impl Client {
    /// A shell snippet sending one request to `$2` within `t` seconds; prints the answer (status
    /// line and headers, then the body), exits non-zero when no answer came.
    fn fetch(&self, protocol: CheckProtocol, t: &str) -> String {
        let busybox = !matches!(self, Client::Node);
        match (protocol, busybox) {
            // `timeout` bounds a hung connect; busybox 1.35's own `wget -T` crashes (SIGSEGV).
            // -S: the status line and headers (on stderr, which the script keeps).
            (CheckProtocol::Http, true) => format!("timeout {t} wget -S -q -O - \"$2\""),
            // --noproxy '*': a proxy in the environment must never carry a probe. -i: the
            // status line and headers before the body.
            (CheckProtocol::Http, false) => format!("curl -s -i --noproxy '*' -m {t} \"$2\""),
            // A connection opened, then closed: nothing is sent (busybox nc has no -z; with its
            // input at end it connects, exits 0, and 1 when the connection is refused).
            (CheckProtocol::Tcp, true) => format!("timeout {t} nc \"${{2%:*}}\" \"${{2##*:}}\" </dev/null"),
            // The node image's bash opens it (the node has no nc); host and port are its arguments.
            (CheckProtocol::Tcp, false) => format!("timeout {t} bash -c ': > \"/dev/tcp/$1/$2\"' tcp \"${{2%:*}}\" \"${{2##*:}}\""),
        }
    }

    /// Run a script where this client's requests start, on `node`, within `deadline`; returns
    /// its output.
    pub async fn run(&self, lab: &Lab, node: &str, script: &str, deadline: std::time::Duration) -> Result<String, LabError> {
        Ok(self.run_full(lab, node, script, deadline).await?.stdout)
    }

    /// Like `run`, with the exit code and stderr (to say why a probe printed nothing).
    pub async fn run_full(
        &self,
        lab: &Lab,
        node: &str,
        script: &str,
        deadline: std::time::Duration,
    ) -> Result<crate::provider::ExecOutput, LabError> {
        let cmd = match self {
            Client::Container { name } => format!("docker exec {} sh -c {}", shq(name), shq(script)),
            Client::Overlay { network } => format!("docker exec {} sh -c {}", shq(&probe_container(network)), shq(script)),
            Client::Node => script.to_string(),
            Client::Pod { containers } => {
                let Some((_, id)) = containers.iter().find(|(n, _)| n == node) else {
                    return Err(LabError::Probe {
                        check: "-".into(),
                        node: node.into(),
                        message: format!("no client pod runs on node {node}"),
                    });
                };
                // Into the pod's namespaces with nsenter, not `ctr task exec`: ctr returned exit 0
                // with none of the script's output in about 1 of 100 execs here (its output
                // fifos closed before they were drained), and the script's processes were the
                // shim's children, out of reach of the deadline's kill. -n the pod's network,
                // -m its files (its busybox and the resolv.conf kubelet wrote), -u its hostname;
                // env -i: none of the node's environment (a proxy) follows the probe in.
                format!(
                    "pid=$({})\n\
                     [ -n \"$pid\" ] && [ \"$pid\" != 0 ] || {{ echo \"the client pod's container {id} runs no task on this node\" >&2; exit 125; }}\n\
                     exec nsenter -t \"$pid\" -n -m -u /usr/bin/env -i PATH=/bin:/usr/bin:/sbin:/usr/sbin /bin/sh -c {script}",
                    pod_task_pid(id),
                    id = shq(id),
                    script = shq(script)
                )
            }
        };
        lab.sh_within(node, &cmd, None, deadline).await
    }
}

/// A shell command printing the pid of a client pod container's running task (nothing when it
/// runs none): containerd's task list, TASK PID STATUS. Its namespaces are the pod's.
pub fn pod_task_pid(container: &str) -> String {
    format!("ctr -n k8s.io task ls | awk -v id={} '$1 == id && $3 == \"RUNNING\" {{print $2}}'", shq(container))
}

/// Tally the records of one target into a cell: `accept` names the requests that count (an
/// answer as the check asks, from the right replica), and says why the others do not.
fn tally(records: &[&Record], accept: &dyn Fn(&Record) -> Result<(), String>) -> Cell {
    let mut c = Cell { tries: records.len() as u32, ..Default::default() };
    let mut ms = Vec::new();
    let mut why: Vec<String> = Vec::new();
    for r in records {
        match accept(r) {
            Ok(()) => {
                c.hits += 1;
                ms.push(r.ms);
            }
            Err(w) if !why.contains(&w) => why.push(w),
            Err(_) => {}
        }
    }
    c.detail = why.join("; ");
    c.latency = Latency::of(ms);
    c
}

/// Run a request script from `entry` and parse its records; a script that prints fewer records
/// than it was asked for is an error, never a quiet shortfall.
async fn requests(
    lab: &Lab,
    client: &Client,
    entry: &str,
    targets: &[(String, String)],
    per_target: u32,
    check: &Check,
    notes: &mut Vec<String>,
) -> Result<Vec<Record>, LabError> {
    let script = request_script(client, check.protocol, targets, per_target, &secs(check));
    let deadline = script_deadline(per_target * targets.len() as u32, check.timeout);
    let full = client.run_full(lab, entry, &script, deadline).await?;
    let out = full.stdout;
    let recs: Vec<Record> = out.lines().filter_map(parse_record).collect();
    if let Some(n) = clock_note(&out) {
        notes.push(n);
    }
    let want = per_target as usize * targets.len();
    if recs.len() != want {
        return Err(LabError::Probe {
            check: check.name.clone(),
            node: entry.to_string(),
            message: format!(
                "the probe printed {} results for {want} requests (exit {}):\n{}",
                recs.len(),
                full.code,
                crate::provider::tail(&format!("{out}\n{}", full.stderr), 6)
            ),
        });
    }
    Ok(recs)
}

/// `http://host:port/path`, or `host:port` for a tcp check.
fn url(check: &Check, host: &str, port: u16) -> String {
    match check.protocol {
        CheckProtocol::Http => format!("http://{host}:{port}{}", check.path),
        CheckProtocol::Tcp => format!("{host}:{port}"),
    }
}

pub async fn observe(lab: &Lab, check: &Check, replicas: &[Replica], paths: &ServicePaths) -> Result<Observation, LabError> {
    let mut obs = Observation { rows: check.from.clone(), notes: paths.notes.clone(), ..Default::default() };
    let identity = lab.scenario.service(&check.service).map(|s| s.identity.clone()).unwrap_or(Identity::None);
    let svc_port = lab.scenario.service(&check.service).map(|s| s.port).unwrap_or(80);
    // Whether answers name their replica: the service says so, and the check reads answers (a
    // tcp check only connects).
    let names = identity.named() && check.protocol == CheckProtocol::Http;
    // A VIP whose answers name no replica: one column, its split unknown — never guessed.
    let vip_unnamed = check.kind == CheckKind::Vip && !names;
    obs.cols = match check.kind {
        CheckKind::NodePort => check.via.iter().map(|n| Target { label: format!("{n} ({})", lab.node_ip(n)), node: n.clone() }).collect(),
        _ if vip_unnamed => vec![Target { label: "a replica (unknown: answers name none)".into(), node: String::new() }],
        CheckKind::Dns => match &paths.dns.expect {
            DnsExpect::Address { label, node, .. } => vec![Target { label: label.clone(), node: node.clone() }],
            DnsExpect::Replicas => replicas.iter().map(|r| Target { label: r.label(), node: r.node.clone() }).collect(),
        },
        _ => replicas.iter().map(|r| Target { label: r.label(), node: r.node.clone() }).collect(),
    };
    if !names && check.kind != CheckKind::Dns {
        let why = if identity.named() { "a tcp check reads no answer" } else { "its answers name no replica" };
        obs.notes.push(format!("{}: {why}; an answer counts for the address it came from", check.service));
    }
    let client = &paths.client;
    let is_replica = |id: &str| replicas.iter().any(|r| r.identity == id);
    let identity = &identity;
    let judge = |x: &Record| verdict(x, check, identity, replicas);
    let rows = try_join_all(check.from.iter().map(|entry| async move {
        let mut notes = Vec::new();
        let row = match check.kind {
            CheckKind::Replicas => {
                // Each replica by its own address, all at once; only that replica's answer counts.
                let port = check.port.unwrap_or(svc_port);
                let targets: Vec<(String, String)> = replicas.iter().map(|r| (r.ip.clone(), url(check, &r.ip, port))).collect();
                let recs = requests(lab, client, entry, &targets, check.requests, check, &mut notes).await?;
                let cells: Vec<Cell> = replicas
                    .iter()
                    .map(|r| {
                        let mine: Vec<&Record> = recs.iter().filter(|x| x.key == r.ip).collect();
                        tally(&mine, &|x| match judge(x)? {
                            Some(id) if id == r.identity => Ok(()),
                            Some(id) => Err(format!("answered by {id}")),
                            None if names => Err("answer names no replica".into()),
                            // The service does not say: the address is the replica's.
                            None => Ok(()),
                        })
                    })
                    .collect();
                let sent = cells.iter().map(|c| c.tries).sum();
                Ok::<_, LabError>((cells, 0, sent))
            }
            CheckKind::Vip => {
                // Every request to the VIP; which replica answered each is the split.
                // `paths.vip` is host:port; the check may name another port.
                let (host, port) =
                    paths.vip.rsplit_once(':').map(|(h, p)| (h, p.parse().unwrap_or(svc_port))).unwrap_or((&paths.vip, svc_port));
                let targets = vec![("vip".to_string(), url(check, host, check.port.unwrap_or(port)))];
                let recs = requests(lab, client, entry, &targets, check.requests, check, &mut notes).await?;
                if vip_unnamed {
                    let all: Vec<&Record> = recs.iter().collect();
                    let c = tally(&all, &|x| judge(x).map(|_| ()));
                    let lost = c.tries - c.hits;
                    Ok((vec![c], lost, check.requests))
                } else {
                    // Each request judged once: the replica it names, or why it is not an answer.
                    let judged: Vec<(&Record, Result<Option<String>, String>)> = recs.iter().map(|x| (x, judge(x))).collect();
                    let mut cells: Vec<Cell> = Vec::new();
                    for r in replicas {
                        let mine: Vec<&Record> = judged
                            .iter()
                            .filter(|(_, v)| v.as_ref().is_ok_and(|id| id.as_deref() == Some(r.identity.as_str())))
                            .map(|(x, _)| *x)
                            .collect();
                        let mut c = tally(&mine, &|_| Ok(()));
                        c.tries = check.requests;
                        cells.push(c);
                    }
                    let mut lost: Vec<String> = Vec::new();
                    let mut unanswered = 0;
                    for (_, v) in &judged {
                        let w = match v {
                            Ok(Some(id)) if is_replica(id) => continue,
                            Ok(Some(id)) => format!("answered by {id}, not a running replica"),
                            Ok(None) => "answer names no replica".into(),
                            Err(e) => e.clone(),
                        };
                        unanswered += 1;
                        if !lost.contains(&w) {
                            lost.push(w);
                        }
                    }
                    // How the VIP's unanswered requests failed (none: a silent replica was never chosen).
                    for c in cells.iter_mut() {
                        c.detail = if lost.is_empty() && c.hits == 0 { "never chosen".into() } else { lost.join("; ") };
                    }
                    Ok((cells, unanswered, check.requests))
                }
            }
            CheckKind::NodePort => {
                // From the entry node's own namespace, which is not on the overlay or pod
                // network: the path an outside client takes.
                let port = check.port.or(paths.node_port).unwrap_or(80);
                let targets: Vec<(String, String)> =
                    check.via.iter().map(|v| (lab.node_ip(v), url(check, &lab.node_ip(v), port))).collect();
                let recs = requests(lab, &Client::Node, entry, &targets, check.requests, check, &mut notes).await?;
                let cells: Vec<Cell> = targets
                    .iter()
                    .map(|(ip, _)| {
                        let mine: Vec<&Record> = recs.iter().filter(|x| &x.key == ip).collect();
                        // Only running replicas count: an answer from anything else is wrong.
                        tally(&mine, &|x| match judge(x)? {
                            Some(id) if is_replica(&id) => Ok(()),
                            Some(id) => Err(format!("answered by {id}, not a running replica")),
                            None if names => Err("answer names no replica".into()),
                            None => Ok(()),
                        })
                    })
                    .collect();
                let sent = cells.iter().map(|c| c.tries).sum();
                Ok((cells, 0, sent))
            }
            CheckKind::Dns => {
                let d = &paths.dns;
                let server = d.server.as_deref().map(|s| format!(" {}", shq(s))).unwrap_or_default();
                // The end line says the lookup ran and how it ended: without it, what failed is
                // the way into the client (an exec refused, a container gone), not the cluster's
                // DNS, and the check says so instead of judging an answer it never got.
                let script = format!("nslookup {}{server} 2>&1; echo \"{DNS_END} $?\"", shq(&d.name));
                let full = client.run_full(lab, entry, &script, script_deadline(1, check.timeout)).await?;
                let Some(out) = lookup_output(&full.stdout) else {
                    return Err(LabError::Probe {
                        check: check.name.clone(),
                        node: entry.to_string(),
                        message: format!(
                            "the lookup did not run to its end (exit {}):\n{}",
                            full.code,
                            crate::provider::tail(&format!("{}\n{}", full.stdout, full.stderr), 6)
                        ),
                    });
                };
                let resolved = dns_addresses(out);
                let expected: Vec<&str> = match &d.expect {
                    DnsExpect::Address { ip, .. } => vec![ip.as_str()],
                    DnsExpect::Replicas => replicas.iter().map(|r| r.ip.as_str()).collect(),
                };
                let cells = expected
                    .iter()
                    .map(|ip| {
                        let hit = resolved.iter().any(|r| r == ip);
                        let detail = match (hit, resolved.is_empty()) {
                            (true, _) => String::new(),
                            (false, true) => dns_failure(out),
                            (false, false) => "not in the answer".into(),
                        };
                        Cell { hits: hit as u32, tries: 1, detail, latency: None }
                    })
                    .collect();
                let extra: Vec<&String> = resolved.iter().filter(|ip| !expected.contains(&ip.as_str())).collect();
                if !extra.is_empty() {
                    notes.push(format!("{} from {entry} also lists {:?}, which it must not", d.name, extra));
                }
                // One lookup, judged per address it must list.
                Ok((cells, extra.len() as u32, expected.len() as u32))
            }
            CheckKind::Api => Err(LabError::Probe {
                check: check.name.clone(),
                node: entry.clone(),
                message: "api checks are observed by the stack".into(),
            }),
        };
        row.map(|(cells, unanswered, sent)| (cells, unanswered, sent, notes))
    }))
    .await?;
    for (cells, unanswered, sent, notes) in rows {
        obs.cells.push(cells);
        obs.unanswered.push(unanswered);
        obs.sent.push(sent);
        for n in notes {
            if !obs.notes.contains(&n) {
                obs.notes.push(n);
            }
        }
    }
    Ok(obs)
}

/// The line a DNS probe prints after its lookup, with the lookup's exit code.
const DNS_END: &str = "#lookup-exit";

/// What the lookup printed, when the probe ran to its end line (`None`: it never did).
pub fn lookup_output(stdout: &str) -> Option<&str> {
    let body = stdout.trim_end();
    let (out, last) = body.rsplit_once('\n').unwrap_or(("", body));
    last.starts_with(DNS_END).then_some(out)
}

/// Why a lookup listed no address, in the resolver's words (NXDOMAIN, no server reached, a
/// query left without an answer...); what it printed otherwise, never a guess.
pub fn dns_failure(out: &str) -> String {
    // busybox writes "** server can't find" for an error code and "*** Can't find ...: No answer"
    // for a query no reply came to in time (the others answered).
    let signs = ["can't find", "timed out", "no servers", "nxdomain", "servfail", "refused", "no answer"];
    let lines: Vec<&str> = out.lines().map(|l| l.trim().trim_start_matches(";; ").trim_start_matches('*').trim()).collect();
    let short = |l: &str| l.chars().take(100).collect::<String>();
    match lines.iter().find(|l| signs.iter().any(|s| l.to_lowercase().contains(s))) {
        Some(l) => short(l),
        None => {
            let said: Vec<&str> = lines.iter().copied().filter(|l| !l.is_empty()).collect();
            match said.last() {
                Some(l) => format!("no address in the answer (it ended: {})", short(l)),
                None => "no address in the answer (the resolver printed nothing)".into(),
            }
        }
    }
}

/// Addresses in a busybox nslookup answer (after the `Name:` line; the server's own is before it).
pub fn dns_addresses(out: &str) -> Vec<String> {
    let mut seen_name = false;
    let mut v = Vec::new();
    for l in out.lines() {
        if l.starts_with("Name:") {
            seen_name = true;
        } else if seen_name {
            if let Some(a) = l.strip_prefix("Address:") {
                let a = a.trim();
                if !v.contains(&a.to_string()) {
                    v.push(a.to_string());
                }
            }
        }
    }
    v
}

/// Every container network namespace of a node — the engine's (/var/run/docker/netns) and the
/// CNI's (/var/run/netns) — as one line: its IPv4 addresses (comma-joined) and its
/// `TcpExt ListenOverflows`. /proc/net is the reading process's namespace, so `cat` run by
/// nsenter reads that namespace's counters.
const LISTEN_SCRIPT: &str = r#"for ns in /var/run/docker/netns/* /var/run/netns/*; do
  [ -e "$ns" ] || continue
  a=$(nsenter --net="$ns" ip -4 -o addr show scope global | awk '{split($4, x, "/"); printf "%s%s", s, x[1]; s=","}')
  o=$(nsenter --net="$ns" cat /proc/net/netstat | awk '/^TcpExt:/ {if (!h) {for (i = 1; i <= NF; i++) if ($i == "ListenOverflows") c = i; h = 1} else print $c}')
  echo "${a:--} ${o:-0}"
done 2>/dev/null; true"#;

/// Per node: each container namespace (named by its addresses) and how often its TCP listen
/// queue overflowed since it was made. A server that cannot accept fast enough drops the
/// connection attempt, and the client sends it again only after 1 s. Nodes that cannot be read
/// are left out (this is evidence, never a verdict).
pub async fn listen_counts(lab: &Lab) -> BTreeMap<String, BTreeMap<String, u64>> {
    let outs = futures_util::future::join_all(
        lab.plan.nodes.iter().map(|n| async move { (n.name.clone(), lab.sh_raw(&n.name, LISTEN_SCRIPT).await) }),
    )
    .await;
    outs.into_iter().filter_map(|(n, o)| Some((n, parse_listen(&o.ok()?.stdout)))).collect()
}

/// Per node, the namespaces whose listen queue has overflowed since they were made.
pub async fn listen_overflows(lab: &Lab) -> BTreeMap<String, Vec<(String, u64)>> {
    overflowed(&BTreeMap::new(), &listen_counts(lab).await)
}

/// Overflows between two readings, per node and namespace (a namespace new since `before`
/// counts from zero); only those that overflowed.
pub fn overflowed(
    before: &BTreeMap<String, BTreeMap<String, u64>>,
    after: &BTreeMap<String, BTreeMap<String, u64>>,
) -> BTreeMap<String, Vec<(String, u64)>> {
    after
        .iter()
        .filter_map(|(node, now)| {
            let v: Vec<(String, u64)> = now
                .iter()
                .filter_map(|(a, n)| {
                    let was = before.get(node).and_then(|b| b.get(a)).copied().unwrap_or(0);
                    (*n > was).then(|| (a.clone(), n - was))
                })
                .collect();
            (!v.is_empty()).then(|| (node.clone(), v))
        })
        .collect()
}

/// `ADDRESSES COUNT` lines into counts by namespace.
pub fn parse_listen(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .filter_map(|l| {
            let (a, n) = l.trim().rsplit_once(' ')?;
            Some((a.trim().to_string(), n.parse().ok()?))
        })
        .collect()
}

/// A cause line for the namespaces of `node` whose listen queue overflowed (`when`: "since it
/// started", "while the stream ran").
pub fn overflow_words(node: &str, full: &[(String, u64)], when: &str) -> String {
    let at: Vec<String> = full.iter().map(|(a, n)| format!("{n} times at {a}")).collect();
    format!(
        "a server on {node} could not accept fast enough: its listen queue overflowed {} {when} (TcpExt ListenOverflows); \
         each overflow drops a connection attempt, which the client sends again only after 1 s",
        at.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_busybox_nslookup() {
        let out = "Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53\n\nNon-authoritative answer:\nName:\ttasks.web\nAddress: 10.0.1.3\nName:\ttasks.web\nAddress: 10.0.1.5\n\nNon-authoritative answer:\n";
        assert_eq!(dns_addresses(out), ["10.0.1.3", "10.0.1.5"]);
        assert!(dns_addresses("** server can't find tasks.web: NXDOMAIN\n").is_empty());
        // bind9's nslookup (Kubernetes nodes), with its server's port after a '#'.
        let out = "Server:\t\t10.32.0.10\nAddress:\t10.32.0.10#53\n\nName:\tweb.default.svc.cluster.local\nAddress: 10.32.0.77\n";
        assert_eq!(dns_addresses(out), ["10.32.0.77"]);
        assert_eq!(
            dns_failure(";; connection timed out; no servers could be reached\n"),
            "connection timed out; no servers could be reached"
        );
        assert_eq!(dns_failure("Server:\t\t10.32.0.10\n** server can't find nope: NXDOMAIN\n"), "server can't find nope: NXDOMAIN");
        assert_eq!(dns_failure("odd\n"), "no address in the answer (it ended: odd)");
        assert_eq!(dns_failure("\n"), "no address in the answer (the resolver printed nothing)");
        // A query busybox got no reply to while the others were answered.
        assert_eq!(
            dns_failure("Server:\t\t10.32.0.10\n\n*** Can't find web.default.svc.cluster.local: No answer\n"),
            "Can't find web.default.svc.cluster.local: No answer"
        );
        assert_eq!(lookup_output("Name:\tweb\nAddress: 10.0.0.1\n#lookup-exit 0\n"), Some("Name:\tweb\nAddress: 10.0.0.1"));
        assert_eq!(lookup_output("#lookup-exit 1\n"), Some(""));
        // The exec into the client failed before the lookup's end: no answer to judge.
        assert_eq!(lookup_output("ctr: container not found\n"), None);
        assert_eq!(lookup_output(""), None);
    }

    #[test]
    fn parses_probe_lines() {
        let r = parse_record("10.0.1.3 0 1500 replica=abc ips=10.0.1.3 ").unwrap();
        let wget = parse_record("10.0.1.3 0 1500   HTTP/1.1 200 OK\u{1e}  \u{1e}replica=abc").unwrap();
        assert_eq!(Answer::parse(&wget.body).body, "replica=abc");
        assert_eq!((r.key.as_str(), r.rc, r.ms, r.body.as_str()), ("10.0.1.3", 0, 1.5, "replica=abc ips=10.0.1.3"));
        let r = parse_record("vip 143 2001000 ").unwrap();
        assert_eq!((r.rc, r.ms, r.body.as_str()), (143, 2001.0, ""));
        assert_eq!(parse_record("garbage"), None);
        assert_eq!(parse_record("10.0.1.3 0 notanumber x"), None);
        assert_eq!(identity("replica=abc ips=1.2.3.4"), Some("abc"));
        assert_eq!(failure_detail(143, ""), "timeout");
        assert_eq!(failure_detail(1, "wget: can't connect to remote host (10.0.1.3): Connection refused"), "connection refused");
    }

    #[test]
    fn tally_counts_requests_and_only_the_right_answers() {
        let recs = [
            parse_record("a 0 1000 HTTP/1.1 200 OK\u{1e}\u{1e}replica=x").unwrap(),
            parse_record("a 0 3000 HTTP/1.1 200 OK\u{1e}\u{1e}replica=y").unwrap(),
            parse_record("a 28 2000000 ").unwrap(),
            parse_record("a 0 2000 HTTP/1.1 200 OK\u{1e}\u{1e}replica=x").unwrap(),
        ];
        let refs: Vec<&Record> = recs.iter().collect();
        let mut check = Check::plain("web", CheckKind::Replicas);
        check.status = Some(200);
        let judge = |x: &Record| match verdict(x, &check, &Identity::Web, &[])? {
            Some(id) if id == "x" => Ok(()),
            Some(id) => Err(format!("answered by {id}")),
            None => Err("answer names no replica".into()),
        };
        let c = tally(&refs, &judge);
        assert_eq!((c.hits, c.tries), (2, 4));
        assert_eq!(c.detail, "answered by y; timeout");
        assert_eq!(c.latency, Some(Latency { min_ms: 1.0, median_ms: 1.5, max_ms: 2.0 }));
    }

    #[test]
    fn request_scripts_quote_every_value_once() {
        let t = vec![("k".to_string(), "http://10.0.0.1/$(touch /tmp/x)?a=1&b='2'".to_string())];
        let s = request_script(&Client::Node, CheckProtocol::Http, &t, 3, "2");
        assert!(s.contains(r#"'http://10.0.0.1/$(touch /tmp/x)?a=1&b='\''2'\'''"#), "{s}");
        assert!(s.contains("seq 3"));
    }

    fn rec(body: &str, rc: i32) -> Record {
        Record { key: "k".into(), rc, ms: 1.0, body: body.replace('\n', "\u{1e}") }
    }

    #[test]
    fn answers_parse_from_curl_and_from_busybox_wget() {
        // curl -i
        let a = Answer::parse("HTTP/1.1 200 OK\r\u{1e}X-Served-By: web-1\r\u{1e}Content-Length: 5\r\u{1e}\r\u{1e}hello\u{1e}world");
        assert_eq!((a.status, a.header("x-served-by"), a.body.as_str()), (Some(200), Some("web-1"), "hello\nworld"));
        // busybox wget -S: headers indented on stderr, then the body, no blank line between.
        let a = Answer::parse("  HTTP/1.1 200 OK\u{1e}  X-Served-By: web-2\u{1e}  Connection: close\u{1e}  \u{1e}replica=abc ips=1.2.3.4");
        assert_eq!((a.status, a.header("X-SERVED-BY"), a.body.as_str()), (Some(200), Some("web-2"), "replica=abc ips=1.2.3.4"));
        // busybox wget on a 404: its own message is not the body.
        let a = Answer::parse(
            "  HTTP/1.1 404 Not Found\u{1e}  Content-type: text/html\u{1e}wget: server returned error: HTTP/1.1 404 Not Found",
        );
        assert_eq!((a.status, a.body.as_str()), (Some(404), ""));
        // A redirect followed: the last status counts.
        let a = Answer::parse("  HTTP/1.1 302 Found\u{1e}  Location: /x\u{1e}  HTTP/1.1 200 OK\u{1e}done");
        assert_eq!((a.status, a.body.as_str()), (Some(200), "done"));
        assert_eq!(Answer::parse("wget: can't connect to remote host: Connection refused").status, None);
    }

    #[test]
    fn verdicts_follow_status_body_and_identity_rules() {
        let replicas = [
            Replica { task: "a.1".into(), node: "m".into(), identity: "web-1".into(), ip: "10.0.0.1".into() },
            Replica { task: "a.2".into(), node: "w".into(), identity: "web-12".into(), ip: "10.0.0.2".into() },
        ];
        let mut c = Check::plain("a", CheckKind::Replicas);
        let ok = rec("HTTP/1.1 200 OK\nX-Served-By: web-1\n\nhello from web-12", 0);
        assert_eq!(verdict(&ok, &c, &Identity::None, &replicas), Ok(None));
        assert_eq!(verdict(&ok, &c, &Identity::Header("x-served-by".into()), &replicas), Ok(Some("web-1".into())));
        // The longest identity in the body wins: web-12, not web-1.
        assert_eq!(verdict(&ok, &c, &Identity::Body, &replicas), Ok(Some("web-12".into())));
        assert_eq!(verdict(&ok, &c, &Identity::Web, &replicas), Ok(None));
        c.body = Some("hello".into());
        assert!(verdict(&ok, &c, &Identity::None, &replicas).is_ok());
        c.body = Some("goodbye".into());
        assert_eq!(verdict(&ok, &c, &Identity::None, &replicas), Err("body lacks \"goodbye\"".into()));
        c.body = None;
        let teapot = rec("HTTP/1.1 418 I'm a teapot\n\nno", 0);
        assert_eq!(verdict(&teapot, &c, &Identity::None, &replicas), Err("HTTP 418".into()));
        c.status = Some(418);
        assert_eq!(verdict(&teapot, &c, &Identity::None, &replicas), Ok(None));
        assert_eq!(verdict(&ok, &c, &Identity::None, &replicas), Err("HTTP 200".into()));
        assert_eq!(verdict(&rec("", 28), &c, &Identity::None, &replicas), Err("timeout".into()));
        assert_eq!(verdict(&rec("SSH-2.0-OpenSSH", 0), &c, &Identity::None, &replicas), Err("not an HTTP answer".into()));
        // Headers came, then the body hung until the client was killed: not an answer.
        c.status = None;
        assert_eq!(verdict(&rec("  HTTP/1.1 200 OK\n  \nreplica=web-1 xxxx", 143), &c, &Identity::None, &replicas), Err("timeout".into()));
        assert_eq!(verdict(&rec("HTTP/1.1 200 OK\n\nreplica=web-1 xxxx", 28), &c, &Identity::None, &replicas), Err("timeout".into()));
        // busybox wget's exit 1 on a 404 still carries a whole answer: HTTP 404.
        let wget_404 = rec("  HTTP/1.1 404 Not Found\n  \nwget: server returned error: HTTP/1.1 404 Not Found", 1);
        assert_eq!(verdict(&wget_404, &c, &Identity::None, &replicas), Err("HTTP 404".into()));
        c.status = Some(404);
        assert_eq!(verdict(&wget_404, &c, &Identity::None, &replicas), Ok(None));
        // tcp: a connection opened is the answer; nothing else is read.
        c.protocol = CheckProtocol::Tcp;
        assert_eq!(verdict(&rec("", 0), &c, &Identity::None, &replicas), Ok(None));
        assert_eq!(
            verdict(&rec("nc: can't connect to remote host (10.0.0.1): Connection refused", 1), &c, &Identity::None, &replicas),
            Err("connection refused".into())
        );
        assert_eq!(verdict(&rec("", 124), &c, &Identity::None, &replicas), Err("timeout".into()));
    }
}
