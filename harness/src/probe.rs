//! Probes observe service paths; they judge nothing. Each check kind runs one script per entry
//! node (requests in parallel inside it), so a check costs about one timeout, not one per pair.

use crate::lab::{shq, Lab};
use crate::model::{Check, CheckKind};
use crate::provider::LabError;
use crate::vocab::{probe_container, Replica};
pub use crate::vocab::{Cell, Client, Latency, Observation, ServicePaths, Target};
use futures_util::future::try_join_all;

/// One request's result from a probe script.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Which target the request was for (an address, or `vip`).
    pub key: String,
    /// The client's exit code (0: an answer came).
    pub rc: i32,
    /// How long the request took, in milliseconds.
    pub ms: f64,
    /// The first line of the answer, or the client's error.
    pub body: String,
}

/// `<key> <exit code> <microseconds> <first line...>`
pub fn parse_record(line: &str) -> Option<Record> {
    let mut it = line.splitn(4, ' ');
    let key = it.next()?.to_string();
    let rc = it.next()?.parse().ok()?;
    let us: f64 = it.next()?.parse().ok()?;
    Some(Record { key, rc, ms: us / 1000.0, body: it.next().unwrap_or("").trim().to_string() })
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
/// each bounded by `t` seconds, printing one record a request (see `parse_record`). Keys and
/// URLs are data: quoted once here, never interpreted by the shell.
pub fn request_script(client: &Client, targets: &[(String, String)], per_target: u32, t: &str) -> String {
    let list: Vec<String> = targets.iter().map(|(k, u)| format!("{} {}", shq(k), shq(u))).collect();
    // Microseconds around each request: `date +%s%N` where the client has it (coreutils);
    // busybox's date has no %N, so there the clock is /proc/uptime (10 ms steps), and the
    // script says which clock it used in a `#clock` line.
    format!(
        "now() {{ t=$(date +%s%N); case $t in *N) read u _ < /proc/uptime; echo $(( ${{u%.*}}${{u#*.}} * 10000 ));; *) echo $((t / 1000));; esac; }}\n\
         case $(date +%N) in *N) echo '#clock uptime';; *) echo '#clock ns';; esac\n\
         n=0\nreq() {{ s=$(now); r=$({f} 2>&1); rc=$?; e=$(now); printf '%s %s %s %s\\n' \"$1\" $rc $((e - s)) \"$(printf '%s' \"$r\" | head -n1 | cut -c1-300)\"; }}\n\
         for i in $(seq {per_target}); do\n\
         set -- {list}\n\
         while [ $# -gt 0 ]; do req \"$1\" \"$2\" & shift 2; n=$((n+1)); [ $((n % {PARALLEL})) -eq 0 ] && wait; done\n\
         done; wait",
        f = client.fetch("\"$2\"", t),
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
    /// A shell snippet fetching `url` within `t` seconds; prints the body, exits non-zero on failure.
    fn fetch(&self, url: &str, t: &str) -> String {
        match self {
            // `timeout` bounds a hung connect; busybox 1.35's own `wget -T` crashes (SIGSEGV).
            Client::Overlay { .. } | Client::Pod { .. } | Client::Container { .. } => format!("timeout {t} wget -q -O - {url}"),
            // --noproxy '*': a proxy in the environment must never carry a probe.
            Client::Node => format!("curl -s --noproxy '*' -m {t} {url}"),
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
                // A unique exec id per call: containerd refuses two live execs with one id.
                format!("ctr -n k8s.io task exec --exec-id cl-$$-$(date +%N) {} sh -c {}", shq(id), shq(script))
            }
        };
        lab.sh_within(node, &cmd, None, deadline).await
    }
}

/// Tally the records of one target into a cell: `accept` names the answers that count (the
/// right replica), and says why an answer does not.
fn tally(records: &[&Record], accept: &dyn Fn(&str) -> Result<(), String>) -> Cell {
    let mut c = Cell { tries: records.len() as u32, ..Default::default() };
    let mut ms = Vec::new();
    let mut why: Vec<String> = Vec::new();
    for r in records {
        let verdict = if r.rc == 0 { accept(&r.body) } else { Err(failure_detail(r.rc, &r.body)) };
        match verdict {
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
    let script = request_script(client, targets, per_target, &secs(check));
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

pub async fn observe(lab: &Lab, check: &Check, replicas: &[Replica], paths: &ServicePaths) -> Result<Observation, LabError> {
    let mut obs = Observation { rows: check.from.clone(), notes: paths.notes.clone(), ..Default::default() };
    obs.cols = match check.kind {
        CheckKind::NodePort => check.via.iter().map(|n| Target { label: format!("{n} ({})", lab.node_ip(n)), node: n.clone() }).collect(),
        _ => replicas.iter().map(|r| Target { label: r.label(), node: r.node.clone() }).collect(),
    };
    let client = &paths.client;
    let is_replica = |id: &str| replicas.iter().any(|r| r.identity == id);
    let rows = try_join_all(check.from.iter().map(|entry| async move {
        let mut notes = Vec::new();
        let row = match check.kind {
            CheckKind::Replicas => {
                // Each replica by its own address, all at once; only that replica's answer counts.
                let targets: Vec<(String, String)> =
                    replicas.iter().map(|r| (r.ip.clone(), format!("http://{}{}", r.ip, check.path))).collect();
                let recs = requests(lab, client, entry, &targets, check.requests, check, &mut notes).await?;
                let cells: Vec<Cell> = replicas
                    .iter()
                    .map(|r| {
                        let mine: Vec<&Record> = recs.iter().filter(|x| x.key == r.ip).collect();
                        tally(&mine, &|body| match identity(body) {
                            Some(id) if id == r.identity => Ok(()),
                            Some(id) => Err(format!("answered by {id}")),
                            None => Err("answer names no replica".into()),
                        })
                    })
                    .collect();
                let sent = cells.iter().map(|c| c.tries).sum();
                Ok::<_, LabError>((cells, 0, sent))
            }
            CheckKind::Vip => {
                // Every request to the VIP; which replica answered each is the split.
                let targets = vec![("vip".to_string(), format!("http://{}{}", paths.vip, check.path))];
                let recs = requests(lab, client, entry, &targets, check.requests, check, &mut notes).await?;
                let mut cells: Vec<Cell> = Vec::new();
                for r in replicas {
                    let mine: Vec<&Record> = recs.iter().filter(|x| x.rc == 0 && identity(&x.body) == Some(r.identity.as_str())).collect();
                    let mut c = tally(&mine, &|_| Ok(()));
                    c.tries = check.requests;
                    cells.push(c);
                }
                let unanswered: Vec<&Record> = recs.iter().filter(|x| !(x.rc == 0 && identity(&x.body).is_some_and(is_replica))).collect();
                let mut lost: Vec<String> = Vec::new();
                for x in &unanswered {
                    let w = match identity(&x.body) {
                        Some(id) if x.rc == 0 => format!("answered by {id}, not a running replica"),
                        None if x.rc == 0 => "answer names no replica".into(),
                        _ => failure_detail(x.rc, &x.body),
                    };
                    if !lost.contains(&w) {
                        lost.push(w);
                    }
                }
                // How the VIP's unanswered requests failed (none: a silent replica was never chosen).
                for c in cells.iter_mut() {
                    c.detail = if lost.is_empty() && c.hits == 0 { "never chosen".into() } else { lost.join("; ") };
                }
                Ok((cells, unanswered.len() as u32, check.requests))
            }
            CheckKind::NodePort => {
                // From the entry node's own namespace, which is not on the overlay or pod
                // network: the path an outside client takes.
                let port = check.port.or(paths.node_port).unwrap_or(80);
                let targets: Vec<(String, String)> =
                    check.via.iter().map(|v| (lab.node_ip(v), format!("http://{}:{port}{}", lab.node_ip(v), check.path))).collect();
                let recs = requests(lab, &Client::Node, entry, &targets, check.requests, check, &mut notes).await?;
                let cells: Vec<Cell> = targets
                    .iter()
                    .map(|(ip, _)| {
                        let mine: Vec<&Record> = recs.iter().filter(|x| &x.key == ip).collect();
                        // Only running replicas count: an answer from anything else is wrong.
                        tally(&mine, &|body| match identity(body) {
                            Some(id) if is_replica(id) => Ok(()),
                            Some(id) => Err(format!("answered by {id}, not a running replica")),
                            None => Err("answer names no replica".into()),
                        })
                    })
                    .collect();
                let sent = cells.iter().map(|c| c.tries).sum();
                Ok((cells, 0, sent))
            }
            CheckKind::Dns => {
                let script = format!("nslookup tasks.{} 127.0.0.11 2>&1", shq(&check.service));
                let out = client.run(lab, entry, &script, script_deadline(1, check.timeout)).await?;
                let resolved = dns_addresses(&out);
                let cells = replicas
                    .iter()
                    .map(|r| {
                        let hit = resolved.contains(&r.ip);
                        let detail = if hit { String::new() } else { "not in the answer".into() };
                        Cell { hits: hit as u32, tries: 1, detail, latency: None }
                    })
                    .collect();
                let extra: Vec<&String> = resolved.iter().filter(|ip| !replicas.iter().any(|r| &r.ip == *ip)).collect();
                if !extra.is_empty() {
                    notes.push(format!("tasks.{} from {entry} also lists {:?}, which no running replica has", check.service, extra));
                }
                // One lookup, judged per replica it must list.
                Ok((cells, extra.len() as u32, replicas.len() as u32))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_busybox_nslookup() {
        let out = "Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53\n\nNon-authoritative answer:\nName:\ttasks.web\nAddress: 10.0.1.3\nName:\ttasks.web\nAddress: 10.0.1.5\n\nNon-authoritative answer:\n";
        assert_eq!(dns_addresses(out), ["10.0.1.3", "10.0.1.5"]);
        assert!(dns_addresses("** server can't find tasks.web: NXDOMAIN\n").is_empty());
    }

    #[test]
    fn parses_probe_lines() {
        let r = parse_record("10.0.1.3 0 1500 replica=abc ips=10.0.1.3 ").unwrap();
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
            parse_record("a 0 1000 replica=x").unwrap(),
            parse_record("a 0 3000 replica=y").unwrap(),
            parse_record("a 28 2000000 ").unwrap(),
            parse_record("a 0 2000 replica=x").unwrap(),
        ];
        let refs: Vec<&Record> = recs.iter().collect();
        let c = tally(&refs, &|b| if identity(b) == Some("x") { Ok(()) } else { Err("answered by y".into()) });
        assert_eq!((c.hits, c.tries), (2, 4));
        assert_eq!(c.detail, "answered by y; timeout");
        assert_eq!(c.latency, Some(Latency { min_ms: 1.0, median_ms: 1.5, max_ms: 2.0 }));
    }

    #[test]
    fn request_scripts_quote_every_value_once() {
        let t = vec![("k".to_string(), "http://10.0.0.1/$(touch /tmp/x)?a=1&b='2'".to_string())];
        let s = request_script(&Client::Node, &t, 3, "2");
        assert!(s.contains(r#"'http://10.0.0.1/$(touch /tmp/x)?a=1&b='\''2'\'''"#), "{s}");
        assert!(s.contains("seq 3"));
    }
}
