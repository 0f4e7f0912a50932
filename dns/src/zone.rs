//! The cluster's names, as Kubernetes' DNS specification (cluster DNS, schema 1.1.0) gives them,
//! from the Services and Endpoints the API holds:
//!
//! - `<svc>.<ns>.svc.<zone>`: A → the ClusterIP; headless → every ready endpoint; ExternalName →
//!   a CNAME to its name.
//! - `<host>.<svc>.<ns>.svc.<zone>` of a headless service: A → that endpoint (its `hostname`, or
//!   its address with dashes).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>` for named ports: SRV → the service name (ClusterIP)
//!   or each endpoint's name (headless), with their A records as additional.
//! - `<a-b-c-d>.<ns>.pod.<zone>`: A → a.b.c.d.
//! - PTR for ClusterIPs and headless endpoints.
//!
//! Names outside the zone, and addresses it does not know, are not ours: `answer` says so
//! (`None`) and the server forwards them.

use crate::wire::{self, Data, Record, Reply};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Time to live of every answer: short, so a change reaches clients quickly (CoreDNS's default).
pub const TTL: u32 = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub name: String,
    /// `tcp`, `udp` or `sctp`, lower case as SRV names spell it.
    pub proto: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    ClusterIp(Ipv4Addr),
    Headless,
    ExternalName(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub kind: Kind,
    pub ports: Vec<Port>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    pub ip: Ipv4Addr,
    /// The pod's `hostname` when the endpoints controller set it (pods with a subdomain).
    pub hostname: String,
}

impl Address {
    /// The endpoint's name under its service: its hostname, or its address with dashes.
    pub fn label(&self) -> String {
        if self.hostname.is_empty() {
            self.ip.to_string().replace('.', "-")
        } else {
            self.hostname.to_ascii_lowercase()
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subset {
    /// Ready addresses only (not-ready ones are not served, unless the service publishes them,
    /// in which case the endpoints controller lists them here).
    pub addresses: Vec<Address>,
    pub ports: Vec<Port>,
}

/// (namespace, name)
pub type Key = (String, String);

#[derive(Debug, Clone, Default)]
pub struct Zone {
    /// `cluster.local`, lower case, no dots at either end.
    pub domain: String,
    pub services: BTreeMap<Key, Service>,
    pub endpoints: BTreeMap<Key, Vec<Subset>>,
}

impl Zone {
    pub fn new(domain: &str) -> Zone {
        Zone { domain: domain.trim_matches('.').to_ascii_lowercase(), ..Default::default() }
    }

    fn soa(&self) -> Record {
        let d = &self.domain;
        Record {
            name: d.clone(),
            ttl: TTL,
            data: Data::Soa {
                mname: format!("ns.dns.{d}"),
                rname: format!("hostmaster.{d}"),
                serial: 1,
                refresh: 7200,
                retry: 1800,
                expire: 86400,
                minimum: TTL,
            },
        }
    }

    fn empty(&self, rcode: u8) -> Reply {
        Reply { rcode, authority: vec![self.soa()], ..Default::default() }
    }

    /// Records of `data` for the name asked, NODATA (with the SOA) when the type asked has none.
    fn found(&self, name: &str, qtype: u16, data: Vec<Data>, additional: Vec<Record>) -> Reply {
        let matching: Vec<Data> = data.into_iter().filter(|d| qtype == wire::ANY || d.rtype() == qtype).collect();
        if matching.is_empty() {
            return self.empty(wire::NOERROR);
        }
        let answers = matching.into_iter().map(|data| Record { name: name.to_string(), ttl: TTL, data }).collect();
        Reply { rcode: wire::NOERROR, answers, additional, ..Default::default() }
    }

    fn service_name(&self, ns: &str, svc: &str) -> String {
        format!("{svc}.{ns}.svc.{}", self.domain)
    }

    /// Ready addresses of a service, each once.
    fn addresses(&self, key: &Key) -> Vec<&Address> {
        let mut out: Vec<&Address> = Vec::new();
        for s in self.endpoints.get(key).into_iter().flatten() {
            for a in &s.addresses {
                if !out.iter().any(|x| x.ip == a.ip) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// The reply for `name` (lower case, no final dot), or `None` when the name is not ours.
    pub fn answer(&self, name: &str, qtype: u16) -> Option<Reply> {
        if let Some(rev) = name.strip_suffix(".in-addr.arpa") {
            return self.reverse(rev, qtype);
        }
        let rel = if name == self.domain { "" } else { name.strip_suffix(&format!(".{}", self.domain))? };
        let labels: Vec<&str> = if rel.is_empty() { vec![] } else { rel.split('.').collect() };
        Some(match labels.as_slice() {
            [] => match qtype {
                wire::SOA | wire::ANY => Reply { answers: vec![self.soa()], ..Default::default() },
                _ => self.empty(wire::NOERROR),
            },
            ["svc"] | ["pod"] => self.empty(wire::NOERROR),
            [ns, "svc"] | [ns, "pod"] => {
                let known = self.services.keys().any(|(n, _)| n == ns);
                self.empty(if known { wire::NOERROR } else { wire::NXDOMAIN })
            }
            [svc, ns, "svc"] => self.service(name, ns, svc, qtype),
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                self.srv(name, ns, svc, &port[1..], &proto[1..], qtype)
            }
            [host, svc, ns, "svc"] => self.endpoint(name, ns, svc, host, qtype),
            [dashed, _ns, "pod"] => match dashed.replace('-', ".").parse::<Ipv4Addr>() {
                Ok(ip) => self.found(name, qtype, vec![Data::A(ip)], vec![]),
                Err(_) => self.empty(wire::NXDOMAIN),
            },
            _ => self.empty(wire::NXDOMAIN),
        })
    }

    fn service(&self, name: &str, ns: &str, svc: &str, qtype: u16) -> Reply {
        let key = (ns.to_string(), svc.to_string());
        let Some(s) = self.services.get(&key) else { return self.empty(wire::NXDOMAIN) };
        match &s.kind {
            Kind::ClusterIp(ip) => self.found(name, qtype, vec![Data::A(*ip)], vec![]),
            Kind::Headless => {
                let data = self.addresses(&key).iter().map(|a| Data::A(a.ip)).collect();
                self.found(name, qtype, data, vec![])
            }
            // A CNAME answers every type: the client follows it.
            Kind::ExternalName(target) => {
                let target = target.trim_end_matches('.').to_string();
                Reply { answers: vec![Record { name: name.into(), ttl: TTL, data: Data::Cname(target) }], ..Default::default() }
            }
        }
    }

    fn endpoint(&self, name: &str, ns: &str, svc: &str, host: &str, qtype: u16) -> Reply {
        let key = (ns.to_string(), svc.to_string());
        match self.services.get(&key) {
            Some(Service { kind: Kind::Headless, .. }) => {}
            _ => return self.empty(wire::NXDOMAIN),
        }
        let data: Vec<Data> = self.addresses(&key).iter().filter(|a| a.label() == host).map(|a| Data::A(a.ip)).collect();
        if data.is_empty() {
            return self.empty(wire::NXDOMAIN);
        }
        self.found(name, qtype, data, vec![])
    }

    fn srv(&self, name: &str, ns: &str, svc: &str, port: &str, proto: &str, qtype: u16) -> Reply {
        let key = (ns.to_string(), svc.to_string());
        let Some(s) = self.services.get(&key) else { return self.empty(wire::NXDOMAIN) };
        let named = |p: &Port| !p.name.is_empty() && p.name.eq_ignore_ascii_case(port) && p.proto == proto;
        let (mut data, mut additional) = (Vec::new(), Vec::new());
        match &s.kind {
            Kind::ClusterIp(ip) => {
                if let Some(p) = s.ports.iter().find(|p| named(p)) {
                    let target = self.service_name(ns, svc);
                    data.push(Data::Srv { priority: 0, weight: 100, port: p.port, target: target.clone() });
                    additional.push(Record { name: target, ttl: TTL, data: Data::A(*ip) });
                }
            }
            Kind::Headless => {
                let mut targets = Vec::new();
                for sub in self.endpoints.get(&key).into_iter().flatten() {
                    if let Some(p) = sub.ports.iter().find(|p| named(p)) {
                        for a in &sub.addresses {
                            targets.push((format!("{}.{}", a.label(), self.service_name(ns, svc)), p.port, a.ip));
                        }
                    }
                }
                let weight = (100 / targets.len().max(1)) as u16;
                for (target, port, ip) in targets {
                    data.push(Data::Srv { priority: 0, weight: weight.max(1), port, target: target.clone() });
                    additional.push(Record { name: target, ttl: TTL, data: Data::A(ip) });
                }
            }
            Kind::ExternalName(_) => {}
        }
        if data.is_empty() {
            return self.empty(wire::NXDOMAIN);
        }
        let additional = if qtype == wire::SRV || qtype == wire::ANY { additional } else { vec![] };
        self.found(name, qtype, data, additional)
    }

    /// PTR for `d.c.b.a` (the in-addr.arpa labels): ClusterIPs and headless endpoints.
    fn reverse(&self, rev: &str, qtype: u16) -> Option<Reply> {
        let mut octets: Vec<&str> = rev.split('.').collect();
        octets.reverse();
        let ip: Ipv4Addr = octets.join(".").parse().ok()?;
        let mut names = Vec::new();
        for ((ns, svc), s) in &self.services {
            match &s.kind {
                Kind::ClusterIp(c) if *c == ip => names.push(self.service_name(ns, svc)),
                Kind::Headless => {
                    for a in self.addresses(&(ns.clone(), svc.clone())) {
                        if a.ip == ip {
                            names.push(format!("{}.{}", a.label(), self.service_name(ns, svc)));
                        }
                    }
                }
                _ => {}
            }
        }
        if names.is_empty() {
            return None;
        }
        let name = format!("{rev}.in-addr.arpa");
        Some(self.found(&name, qtype, names.into_iter().map(Data::Ptr).collect(), vec![]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{A, ANY, CNAME, NOERROR, NXDOMAIN, PTR, SRV};
    /// An IPv6 address's type, which no cluster name here has.
    const AAAA: u16 = 28;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn port(name: &str, p: u16) -> Port {
        Port { name: name.into(), proto: "tcp".into(), port: p }
    }

    fn zone() -> Zone {
        let mut z = Zone::new("cluster.local.");
        let k = |ns: &str, n: &str| (ns.to_string(), n.to_string());
        z.services.insert(k("default", "kubernetes"), Service { kind: Kind::ClusterIp(ip("10.96.0.1")), ports: vec![port("https", 443)] });
        z.services.insert(k("default", "web"), Service { kind: Kind::ClusterIp(ip("10.96.0.20")), ports: vec![port("http", 80)] });
        z.services.insert(k("shop", "db"), Service { kind: Kind::Headless, ports: vec![port("sql", 5432)] });
        z.services.insert(k("shop", "ext"), Service { kind: Kind::ExternalName("foo.example.com.".into()), ports: vec![] });
        z.endpoints.insert(
            k("shop", "db"),
            vec![Subset {
                addresses: vec![
                    Address { ip: ip("10.244.1.5"), hostname: "db-0".into() },
                    Address { ip: ip("10.244.2.7"), hostname: String::new() },
                ],
                ports: vec![port("sql", 5432)],
            }],
        );
        z
    }

    fn texts(r: &Reply) -> Vec<String> {
        r.answers
            .iter()
            .map(|rec| match &rec.data {
                Data::A(i) => format!("A {i}"),
                Data::Cname(n) => format!("CNAME {n}"),
                Data::Ptr(n) => format!("PTR {n}"),
                Data::Srv { weight, port, target, .. } => format!("SRV {weight} {port} {target}"),
                Data::Soa { .. } => "SOA".into(),
            })
            .collect()
    }

    fn ask(name: &str, qtype: u16) -> Reply {
        zone().answer(name, qtype).unwrap_or_else(|| panic!("{name} should be ours"))
    }

    #[test]
    fn a_service_name_is_its_cluster_ip() {
        assert_eq!(texts(&ask("web.default.svc.cluster.local", A)), ["A 10.96.0.20"]);
        assert_eq!(texts(&ask("kubernetes.default.svc.cluster.local", ANY)), ["A 10.96.0.1"]);
        // AAAA of an IPv4 service: the name exists, with no record of that type.
        let r = ask("web.default.svc.cluster.local", AAAA);
        assert_eq!((r.rcode, r.answers.len(), r.authority.len()), (NOERROR, 0, 1));
        let r = ask("nope.default.svc.cluster.local", A);
        assert_eq!((r.rcode, r.authority.len()), (NXDOMAIN, 1));
    }

    #[test]
    fn a_headless_name_is_every_ready_endpoint_and_each_has_its_own() {
        assert_eq!(texts(&ask("db.shop.svc.cluster.local", A)), ["A 10.244.1.5", "A 10.244.2.7"]);
        assert_eq!(texts(&ask("db-0.db.shop.svc.cluster.local", A)), ["A 10.244.1.5"]);
        assert_eq!(texts(&ask("10-244-2-7.db.shop.svc.cluster.local", A)), ["A 10.244.2.7"]);
        assert_eq!(ask("db-9.db.shop.svc.cluster.local", A).rcode, NXDOMAIN);
        // Endpoint names exist under headless services only.
        assert_eq!(ask("10-96-0-20.web.default.svc.cluster.local", A).rcode, NXDOMAIN);
    }

    #[test]
    fn named_ports_have_srv_records_with_their_addresses() {
        let r = ask("_http._tcp.web.default.svc.cluster.local", SRV);
        assert_eq!(texts(&r), ["SRV 100 80 web.default.svc.cluster.local"]);
        assert_eq!(r.additional[0].data, Data::A(ip("10.96.0.20")));
        let r = ask("_sql._tcp.db.shop.svc.cluster.local", SRV);
        assert_eq!(texts(&r), ["SRV 50 5432 db-0.db.shop.svc.cluster.local", "SRV 50 5432 10-244-2-7.db.shop.svc.cluster.local"]);
        assert_eq!(r.additional.len(), 2);
        assert_eq!(ask("_sql._udp.db.shop.svc.cluster.local", SRV).rcode, NXDOMAIN);
        assert_eq!(ask("_nope._tcp.web.default.svc.cluster.local", SRV).rcode, NXDOMAIN);
    }

    #[test]
    fn external_names_are_cnames_for_any_type() {
        assert_eq!(texts(&ask("ext.shop.svc.cluster.local", A)), ["CNAME foo.example.com"]);
        assert_eq!(texts(&ask("ext.shop.svc.cluster.local", CNAME)), ["CNAME foo.example.com"]);
    }

    #[test]
    fn pod_names_are_their_dashed_address() {
        assert_eq!(texts(&ask("10-244-1-9.default.pod.cluster.local", A)), ["A 10.244.1.9"]);
        assert_eq!(ask("not-an-ip.default.pod.cluster.local", A).rcode, NXDOMAIN);
    }

    #[test]
    fn reverse_names_for_cluster_ips_and_headless_endpoints() {
        assert_eq!(texts(&ask("20.0.96.10.in-addr.arpa", PTR)), ["PTR web.default.svc.cluster.local"]);
        assert_eq!(texts(&ask("5.1.244.10.in-addr.arpa", PTR)), ["PTR db-0.db.shop.svc.cluster.local"]);
        // An address the cluster does not know is forwarded.
        assert!(zone().answer("9.9.9.9.in-addr.arpa", PTR).is_none());
    }

    #[test]
    fn names_outside_the_zone_are_not_ours_and_case_does_not_matter_inside() {
        assert!(zone().answer("example.com", A).is_none());
        assert!(zone().answer("cluster.localx", A).is_none());
        assert_eq!(ask("cluster.local", ANY).answers.len(), 1);
        assert_eq!(ask("shop.svc.cluster.local", A).rcode, NOERROR);
        assert_eq!(ask("ghost.svc.cluster.local", A).rcode, NXDOMAIN);
        assert_eq!(ask("a.b.c.d.e.f.cluster.local", A).rcode, NXDOMAIN);
    }
}
