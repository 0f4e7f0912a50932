//! clusterlab-dns: the cluster DNS of a clusterlab Kubernetes lab.
//!
//! It runs on the master under the node's supervisor (component `cluster-dns`, which the `kill`
//! fault can stop), listens on the master's lab address (UDP and TCP 53), and is reached by pods
//! at the conventional `.10` of the service CIDR through a selector-less `kube-dns` Service whose
//! endpoint is that address — through kube-proxy, as any Service is. It answers the cluster zone
//! from kubectl watches on Services and Endpoints (`feed`, `zone`) and forwards every other name
//! to the node's own resolver.
//!
//! ```text
//! clusterlab-dns --listen 10.213.0.11:53 --domain cluster.local --kubeconfig /etc/k8s/kubeconfig
//! ```
//!
//! The harness builds it from its build script, like the traffic agent.

mod feed;
mod wire;
mod zone;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zone::Zone;

/// How long a forwarded query may wait for the upstream resolver.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// An idle TCP client is let go after this.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// A line on stdout (the supervisor's log), with the wall clock in seconds.
pub fn log(msg: &str) {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    println!("{}.{:03} {msg}", t.as_secs(), t.subsec_millis());
}

#[derive(Debug, PartialEq)]
struct Options {
    listen: SocketAddr,
    domain: String,
    kubectl: Vec<String>,
    upstream: Option<SocketAddr>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let (mut listen, mut domain, mut kubeconfig, mut kubectl, mut upstream) =
        (None, "cluster.local".to_string(), None, "kubectl".to_string(), None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--listen" => listen = Some(val("--listen")?.parse::<SocketAddr>().map_err(|e| format!("--listen: {e} (ip:port)"))?),
            "--domain" => domain = val("--domain")?,
            "--kubeconfig" => kubeconfig = Some(val("--kubeconfig")?),
            "--kubectl" => kubectl = val("--kubectl")?,
            "--upstream" => upstream = Some(val("--upstream")?.parse::<SocketAddr>().map_err(|e| format!("--upstream: {e} (ip:port)"))?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let listen = listen.ok_or("--listen ip:port is required")?;
    let mut argv = Vec::new();
    // A kill fault stops this process with TERM: its kubectl watches must end with it, not
    // linger until their next event. util-linux's setpriv gives them that (a parent-death
    // signal, kept across its exec of kubectl); std cannot set one itself.
    if std::path::Path::new(SETPRIV).exists() {
        argv.extend([SETPRIV, "--pdeathsig", "TERM", "--"].map(String::from));
    }
    argv.push(kubectl);
    if let Some(k) = kubeconfig {
        argv.push(format!("--kubeconfig={k}"));
    }
    Ok(Options { listen, domain, kubectl: argv, upstream })
}

const SETPRIV: &str = "/usr/bin/setpriv";

/// The first nameserver of a resolv.conf, on port 53.
fn upstream_of(resolv: &str) -> Option<SocketAddr> {
    resolv.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some("nameserver")).then(|| f.next()?.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))?
    })
}

/// What to do with a message: a reply of ours, or the name is not ours.
enum Action {
    Reply(Vec<u8>),
    Forward,
    Ignore,
}

fn handle(zone: &RwLock<Zone>, msg: &[u8], tcp: bool) -> Action {
    let q = match wire::parse_query(msg) {
        Ok(q) => q,
        Err(_) => return wire::status_only(msg, wire::FORMERR).map(Action::Reply).unwrap_or(Action::Ignore),
    };
    if q.opcode != 0 {
        return wire::status_only(msg, wire::NOTIMP).map(Action::Reply).unwrap_or(Action::Ignore);
    }
    let reply = zone.read().expect("zone lock").answer(&q.key(), q.qtype);
    match reply {
        Some(r) => Action::Reply(wire::build(&q, &r, true, if tcp { 65535 } else { wire::udp_limit(&q) })),
        None => Action::Forward,
    }
}

/// Ask the upstream resolver; SERVFAIL when it does not answer in time.
fn forward(upstream: Option<SocketAddr>, msg: &[u8]) -> Option<Vec<u8>> {
    let ask = || -> std::io::Result<Vec<u8>> {
        let up = upstream.ok_or_else(|| std::io::Error::other("no upstream resolver"))?;
        let s = UdpSocket::bind(if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        s.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
        s.send_to(msg, up)?;
        let mut buf = vec![0u8; 4096];
        let (n, _) = s.recv_from(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    };
    ask().ok().or_else(|| wire::status_only(msg, wire::SERVFAIL))
}

fn serve_udp(sock: UdpSocket, zone: Arc<RwLock<Zone>>, upstream: Option<SocketAddr>) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
        let msg = buf[..n].to_vec();
        match handle(&zone, &msg, false) {
            Action::Reply(r) => {
                let _ = sock.send_to(&r, peer);
            }
            Action::Forward => {
                // Its own thread: a slow upstream never holds up the cluster's names.
                let sock = Arc::clone(&sock);
                std::thread::spawn(move || {
                    if let Some(r) = forward(upstream, &msg) {
                        let _ = sock.send_to(&r, peer);
                    }
                });
            }
            Action::Ignore => {}
        }
    }
}

fn serve_tcp_client(mut s: TcpStream, zone: Arc<RwLock<Zone>>, upstream: Option<SocketAddr>) -> std::io::Result<()> {
    s.set_read_timeout(Some(TCP_IDLE))?;
    loop {
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut msg)?;
        let reply = match handle(&zone, &msg, true) {
            Action::Reply(r) => Some(r),
            Action::Forward => forward(upstream, &msg),
            Action::Ignore => None,
        };
        let Some(r) = reply else { return Ok(()) };
        let mut out = (r.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&r);
        s.write_all(&out)?;
    }
}

fn run(o: Options) -> Result<(), String> {
    let zone = Arc::new(RwLock::new(Zone::new(&o.domain)));
    let upstream = o.upstream.or_else(|| upstream_of(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()));
    let udp = UdpSocket::bind(o.listen).map_err(|e| format!("binding UDP {}: {e}", o.listen))?;
    let tcp = TcpListener::bind(o.listen).map_err(|e| format!("binding TCP {}: {e}", o.listen))?;
    log(&format!(
        "serving {} on {} (UDP and TCP); other names go to {}",
        o.domain,
        o.listen,
        upstream.map(|u| u.to_string()).unwrap_or_else(|| "nowhere (no nameserver in /etc/resolv.conf)".into())
    ));
    for r in [feed::Resource::Services, feed::Resource::Endpoints] {
        let (k, z) = (o.kubectl.clone(), Arc::clone(&zone));
        std::thread::spawn(move || feed::watch(r, k, z));
    }
    {
        let z = Arc::clone(&zone);
        std::thread::spawn(move || serve_udp(udp, z, upstream));
    }
    for conn in tcp.incoming() {
        let Ok(s) = conn else { continue };
        let z = Arc::clone(&zone);
        std::thread::spawn(move || serve_tcp_client(s, z, upstream));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = parse_args(&args).and_then(run) {
        eprintln!("clusterlab-dns: {e}");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::{decode, query};

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_need_an_address_and_say_what_is_wrong() {
        let o = parse_args(&args("--listen 10.0.0.1:53 --kubeconfig /etc/k8s/kubeconfig")).unwrap();
        assert_eq!(o.kubectl[o.kubectl.len() - 2..], ["kubectl", "--kubeconfig=/etc/k8s/kubeconfig"]);
        assert_eq!(o.domain, "cluster.local");
        assert!(parse_args(&args("--domain x")).unwrap_err().contains("--listen"));
        assert!(parse_args(&args("--listen nope")).unwrap_err().contains("ip:port"));
        assert!(parse_args(&args("--listen 1.2.3.4:53 --bogus")).unwrap_err().contains("--bogus"));
    }

    #[test]
    fn the_upstream_is_the_first_nameserver() {
        assert_eq!(upstream_of("search lab\nnameserver 127.0.0.11\nnameserver 1.1.1.1\n"), Some("127.0.0.11:53".parse().unwrap()));
        assert_eq!(upstream_of("options ndots:0\n"), None);
    }

    /// The whole server on loopback: UDP and TCP answers, truncation, forwarding to a resolver
    /// that does not answer (SERVFAIL, in bounded time).
    #[test]
    fn a_server_on_loopback_answers_over_udp_and_tcp() {
        let zone = Arc::new(RwLock::new(Zone::new("cluster.local")));
        {
            let mut z = zone.write().unwrap();
            let ev = |name: &str, spec: serde_json::Value| serde_json::json!({ "type": "ADDED", "object": { "metadata": { "namespace": "default", "name": name }, "spec": spec } });
            feed::apply(
                &mut z,
                feed::parse(feed::Resource::Services, &ev("web", serde_json::json!({ "clusterIP": "10.96.0.20" }))).unwrap(),
            );
            feed::apply(&mut z, feed::parse(feed::Resource::Services, &ev("many", serde_json::json!({ "clusterIP": "None" }))).unwrap());
            let addrs: Vec<serde_json::Value> = (1..=60).map(|i| serde_json::json!({ "ip": format!("10.244.0.{i}") })).collect();
            let eps = serde_json::json!({ "type": "ADDED", "object": { "metadata": { "namespace": "default", "name": "many" }, "subsets": [{ "addresses": addrs }] } });
            feed::apply(&mut z, feed::parse(feed::Resource::Endpoints, &eps).unwrap());
        }
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).unwrap();
        // An upstream that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let upstream = Some(silent.local_addr().unwrap());
        let z = Arc::clone(&zone);
        std::thread::spawn(move || serve_udp(udp, z, upstream));
        let z = Arc::clone(&zone);
        std::thread::spawn(move || {
            for c in tcp.incoming().flatten() {
                let z = Arc::clone(&z);
                std::thread::spawn(move || serve_tcp_client(c, z, upstream));
            }
        });
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let ask = |m: &[u8]| {
            client.send_to(m, addr).unwrap();
            let mut buf = [0u8; 4096];
            let (n, _) = client.recv_from(&mut buf).unwrap();
            decode(&buf[..n])
        };
        assert_eq!(ask(&query(1, "web.default.svc.cluster.local", wire::A, None)).2, ["web.default.svc.cluster.local A 10.96.0.20"]);
        let (_, tc, _) = ask(&query(2, "many.default.svc.cluster.local", wire::A, None));
        assert!(tc, "60 addresses do not fit 512 bytes");
        let t0 = std::time::Instant::now();
        let (rcode, _, _) = ask(&query(3, "example.com", wire::A, None));
        assert_eq!(rcode, wire::SERVFAIL);
        assert!(t0.elapsed() < Duration::from_secs(4));
        // Over TCP the big answer comes whole.
        let mut s = TcpStream::connect(addr).unwrap();
        let m = query(4, "many.default.svc.cluster.local", wire::A, None);
        let mut out = (m.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&m);
        s.write_all(&out).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut r).unwrap();
        let (rcode, tc, answers) = decode(&r);
        assert_eq!((rcode, tc, answers.len()), (wire::NOERROR, false, 60));
    }
}
