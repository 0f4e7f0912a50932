//! The zone's data, from the API: `kubectl get --watch --output-watch-events -o json` on Services
//! and on Endpoints, one JSON event per object change. kubectl brings the API's TLS, token and
//! reconnection. (A jsonpath template would spare the JSON, but kubectl 1.20's jsonpath printer
//! fails on a `range` from the second object of a watch on: "not in range, nothing to end".)
//!
//! A watch starts with the whole list (one ADDED event per object). When kubectl exits (the API
//! went away, the watch timed out) it is started again a second later, and the names it no longer
//! lists once its first burst is over are dropped; until then the last known records are served,
//! as a cluster DNS does while its API is away.

use crate::zone::{Address, Key, Kind, Port, Service, Subset, Zone};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufReader, Read};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a (re)started watch may pause within its first listing before it is taken as whole.
const BURST_END: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resource {
    Services,
    Endpoints,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Services => "services",
            Resource::Endpoints => "endpoints",
        }
    }
}

/// One watch event, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Service { deleted: bool, key: Key, service: Option<Service> },
    Endpoints { deleted: bool, key: Key, subsets: Vec<Subset> },
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

fn ports(v: &Value) -> Vec<Port> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(Port {
                name: text(p, &["name"]).to_string(),
                proto: p["protocol"].as_str().unwrap_or("TCP").to_ascii_lowercase(),
                port: u16::try_from(p["port"].as_u64()?).ok()?,
            })
        })
        .collect()
}

/// Parse one watch event (`{"type": ..., "object": {...}}`).
pub fn parse(resource: Resource, ev: &Value) -> Result<Event, String> {
    let o = &ev["object"];
    let (ns, name) = (text(o, &["metadata", "namespace"]), text(o, &["metadata", "name"]));
    if ns.is_empty() || name.is_empty() {
        return Err(format!("{} event without an object's namespace and name: {}", resource.name(), trunc(ev)));
    }
    let deleted = match ev["type"].as_str().unwrap_or("") {
        "ADDED" | "MODIFIED" => false,
        "DELETED" => true,
        other => return Err(format!("{} watch sent a {other:?} event: {}", resource.name(), trunc(ev))),
    };
    let key = (ns.to_string(), name.to_string());
    match resource {
        Resource::Services => {
            let spec = &o["spec"];
            let kind = if text(spec, &["type"]) == "ExternalName" {
                Some(Kind::ExternalName(text(spec, &["externalName"]).to_string()))
            } else if text(spec, &["clusterIP"]) == "None" {
                Some(Kind::Headless)
            } else {
                // A ClusterIP this server cannot serve (IPv6, or none yet) leaves the name out.
                text(spec, &["clusterIP"]).parse::<Ipv4Addr>().ok().map(Kind::ClusterIp)
            };
            let service = kind.map(|kind| Service { kind, ports: ports(&spec["ports"]) });
            Ok(Event::Service { deleted, key, service })
        }
        Resource::Endpoints => {
            let subsets = o["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Subset {
                    // Ready addresses only: `notReadyAddresses` are not served.
                    addresses: s["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| Some(Address { ip: text(a, &["ip"]).parse().ok()?, hostname: text(a, &["hostname"]).to_string() }))
                        .collect(),
                    ports: ports(&s["ports"]),
                })
                .collect();
            Ok(Event::Endpoints { deleted, key, subsets })
        }
    }
}

fn trunc(v: &Value) -> String {
    v.to_string().chars().take(160).collect()
}

/// Apply an event to the zone; returns the key it touched.
pub fn apply(zone: &mut Zone, e: Event) -> Key {
    match e {
        Event::Service { deleted, key, service } => {
            match service {
                Some(s) if !deleted => {
                    zone.services.insert(key.clone(), s);
                }
                _ => {
                    zone.services.remove(&key);
                }
            }
            key
        }
        Event::Endpoints { deleted, key, subsets } => {
            if deleted {
                zone.endpoints.remove(&key);
            } else {
                zone.endpoints.insert(key.clone(), subsets);
            }
            key
        }
    }
}

/// Drop what a fresh listing of `resource` no longer holds.
pub fn sweep(zone: &mut Zone, resource: Resource, listed: &BTreeSet<Key>) -> usize {
    let before = zone.services.len() + zone.endpoints.len();
    match resource {
        Resource::Services => zone.services.retain(|k, _| listed.contains(k)),
        Resource::Endpoints => zone.endpoints.retain(|k, _| listed.contains(k)),
    }
    before - (zone.services.len() + zone.endpoints.len())
}

/// Keep `resource` of the zone in step with the API, for ever (a thread's body).
pub fn watch(resource: Resource, kubectl: Vec<String>, zone: Arc<RwLock<Zone>>) {
    loop {
        let started = Instant::now();
        let mut cmd = Command::new(&kubectl[0]);
        cmd.args(&kubectl[1..])
            .args(["get", resource.name(), "--all-namespaces", "--watch", "--output-watch-events", "-o", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match cmd.spawn() {
            Err(e) => crate::log(&format!("{}: cannot start {}: {e}", resource.name(), kubectl[0])),
            Ok(mut child) => {
                let stdout = child.stdout.take().expect("piped stdout");
                let (tx, rx) = mpsc::channel::<Value>();
                std::thread::spawn(move || {
                    let events = serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<Value>();
                    for ev in events.map_while(Result::ok) {
                        if tx.send(ev).is_err() {
                            break;
                        }
                    }
                });
                let (mut listed, mut burst, mut events) = (BTreeSet::new(), true, 0usize);
                loop {
                    let next = if burst { rx.recv_timeout(BURST_END) } else { rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected) };
                    match next {
                        Ok(ev) => match parse(resource, &ev) {
                            Ok(e) => {
                                events += 1;
                                let text = if burst { None } else { Some(describe(&e)) };
                                let key = apply(&mut zone.write().expect("zone lock"), e);
                                listed.insert(key);
                                if let Some(t) = text {
                                    crate::log(&t);
                                }
                            }
                            Err(why) => crate::log(&why),
                        },
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            burst = false;
                            let gone = sweep(&mut zone.write().expect("zone lock"), resource, &listed);
                            crate::log(&format!(
                                "{}: {} listed, {gone} gone since the last listing; watching",
                                resource.name(),
                                listed.len()
                            ));
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let said: Vec<&str> = err.lines().map(str::trim).filter(|l| !l.is_empty()).take(4).collect();
                crate::log(&format!("{}: the watch ended ({status}) after {events} events: {}", resource.name(), said.join(" | ")));
            }
        }
        // Never spin against an API that is down.
        if started.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn describe(e: &Event) -> String {
    match e {
        Event::Service { deleted, key, service } => {
            let what = match (deleted, service.as_ref().map(|s| &s.kind)) {
                (true, _) => "deleted".to_string(),
                (_, Some(Kind::ClusterIp(ip))) => format!("ClusterIP {ip}"),
                (_, Some(Kind::Headless)) => "headless".into(),
                (_, Some(Kind::ExternalName(n))) => format!("ExternalName {n}"),
                (_, None) => "no IPv4 ClusterIP: not served".into(),
            };
            format!("service {}/{}: {what}", key.0, key.1)
        }
        Event::Endpoints { deleted, key, subsets } => {
            let n: usize = subsets.iter().map(|s| s.addresses.len()).sum();
            format!("endpoints {}/{}: {}", key.0, key.1, if *deleted { "deleted".into() } else { format!("{n} ready") })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(t: &str, ns: &str, name: &str, spec: Value) -> Value {
        json!({ "type": t, "object": { "kind": "Service", "metadata": { "namespace": ns, "name": name }, "spec": spec } })
    }

    #[test]
    fn service_events_become_services() {
        let ports = json!([{ "name": "http", "protocol": "TCP", "port": 80 }, { "name": "metrics", "protocol": "TCP", "port": 9000 }]);
        let e = parse(
            Resource::Services,
            &svc("ADDED", "default", "web", json!({ "type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": ports })),
        );
        let Ok(Event::Service { deleted: false, key, service: Some(s) }) = e else { panic!("{e:?}") };
        assert_eq!(key, ("default".to_string(), "web".to_string()));
        assert_eq!(s.kind, Kind::ClusterIp("10.96.0.20".parse().unwrap()));
        assert_eq!(s.ports[1], Port { name: "metrics".into(), proto: "tcp".into(), port: 9000 });
        let e = parse(
            Resource::Services,
            &svc("MODIFIED", "shop", "ext", json!({ "type": "ExternalName", "externalName": "foo.example.com" })),
        );
        assert!(
            matches!(e, Ok(Event::Service { service: Some(Service { kind: Kind::ExternalName(ref n), .. }), .. }) if n == "foo.example.com")
        );
        let e = parse(Resource::Services, &svc("ADDED", "shop", "db", json!({ "type": "ClusterIP", "clusterIP": "None" })));
        assert!(matches!(e, Ok(Event::Service { service: Some(Service { kind: Kind::Headless, .. }), .. })));
    }

    #[test]
    fn endpoint_events_keep_ready_addresses_hostnames_and_ports() {
        let ev = json!({ "type": "ADDED", "object": { "metadata": { "namespace": "shop", "name": "db" }, "subsets": [
            { "addresses": [{ "ip": "10.244.1.5", "hostname": "db-0" }, { "ip": "10.244.2.7" }],
              "notReadyAddresses": [{ "ip": "10.244.9.9" }],
              "ports": [{ "name": "sql", "protocol": "TCP", "port": 5432 }] },
            { "addresses": [{ "ip": "10.244.3.2" }], "ports": [{ "name": "sql", "port": 5433 }] } ] } });
        let Ok(Event::Endpoints { subsets, .. }) = parse(Resource::Endpoints, &ev) else { panic!() };
        assert_eq!(subsets.len(), 2);
        assert_eq!(
            subsets[0].addresses,
            [
                Address { ip: "10.244.1.5".parse().unwrap(), hostname: "db-0".into() },
                Address { ip: "10.244.2.7".parse().unwrap(), hostname: String::new() }
            ]
        );
        assert_eq!(subsets[1].ports[0], Port { name: "sql".into(), proto: "tcp".into(), port: 5433 });
        // Endpoints with no ready address yet (a leader-election object): no subset.
        let ev = json!({ "type": "ADDED", "object": { "metadata": { "namespace": "kube-system", "name": "kube-scheduler" } } });
        assert!(matches!(parse(Resource::Endpoints, &ev), Ok(Event::Endpoints { ref subsets, .. }) if subsets.is_empty()));
    }

    #[test]
    fn odd_events_say_what_they_are() {
        assert!(parse(Resource::Services, &json!({ "type": "ADDED" })).unwrap_err().contains("namespace and name"));
        assert!(parse(Resource::Services, &svc("ERROR", "a", "b", json!({}))).unwrap_err().contains("ERROR"));
    }

    #[test]
    fn events_change_the_zone_and_a_relisting_sweeps_what_is_gone() {
        let mut z = Zone::new("cluster.local");
        let ev = |t: &str, name: &str, ip: &str| parse(Resource::Services, &svc(t, "default", name, json!({ "clusterIP": ip }))).unwrap();
        apply(&mut z, ev("ADDED", "web", "10.96.0.20"));
        apply(&mut z, ev("ADDED", "old", "10.96.0.21"));
        assert_eq!(z.answer("old.default.svc.cluster.local", crate::wire::A).unwrap().rcode, crate::wire::NOERROR);
        apply(&mut z, ev("DELETED", "old", "10.96.0.21"));
        assert_eq!(z.answer("old.default.svc.cluster.local", crate::wire::A).unwrap().rcode, crate::wire::NXDOMAIN);
        // A new watch listed only web: anything else was deleted while the API was away.
        apply(&mut z, ev("ADDED", "gone", "10.96.0.22"));
        let listed: BTreeSet<Key> = [("default".to_string(), "web".to_string())].into();
        assert_eq!(sweep(&mut z, Resource::Services, &listed), 1);
        assert_eq!(z.services.len(), 1);
    }
}
