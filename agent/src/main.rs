//! clusterlab-agent: a steady stream of HTTP requests from inside a lab node, every request
//! recorded.
//!
//! The harness copies this binary into a node and starts it in the network namespace a stream's
//! requests come from (the node's own, an overlay container's, a pod's). It sends requests on a
//! fixed schedule (open loop: a slow answer never delays the next request), one new TCP
//! connection each, each with its own deadline, and writes one line per request to a file:
//!
//! ```text
//! #start unix_ns=<wall clock at t=0> rate=<req/s> timeout_ms=<ms> targets=<n>
//! <seq> <target key> <scheduled µs> <sent µs> <latency µs> <result> <replica or ->
//! #end sent=<n> cpu_ms=<user+system> maxrss_kb=<peak RSS> late_p50_us=.. late_p99_us=.. late_max_us=..
//! ```
//!
//! Times are microseconds since t=0 on the monotonic clock; `unix_ns` anchors t=0 on the wall
//! clock, which nodes share with the harness (one kernel), so steps and requests line up.
//! Results: `ok` (HTTP 200), `http-<code>`, `timeout`, `refused`, `reset`, `unreachable`,
//! `empty` (closed before a status line), `error-<errno>`.
//!
//! The agent stops when the stop file appears, or after `--max-secs`, whichever is first, then
//! waits for the requests in flight (at most one timeout) and writes `#end`.
//!
//! Standard library only: it must build offline in seconds from the harness's build script.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One place requests go: `key=ip:port/path`.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    key: String,
    addr: SocketAddr,
    host: String,
    path: String,
}

fn parse_target(s: &str) -> Result<Target, String> {
    let (key, rest) = s.split_once('=').ok_or_else(|| format!("target {s:?}: expected key=ip:port/path"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = hostport.parse().map_err(|e| format!("target {s:?}: {hostport:?} is not ip:port ({e})"))?;
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("target {s:?}: the key must be one word"));
    }
    Ok(Target { key: key.to_string(), addr, host: hostport.to_string(), path: path.to_string() })
}

#[derive(Debug)]
struct Options {
    rate: f64,
    timeout: Duration,
    max: Duration,
    out: String,
    stop: String,
    targets: Vec<Target>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("stream") => {}
        other => return Err(format!("expected the `stream` command, got {other:?}")),
    }
    let (mut rate, mut timeout_ms, mut max_secs, mut out, mut stop) = (20.0, 1000u64, 3600u64, None, None);
    let mut targets = Vec::new();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--rate" => rate = val("--rate")?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--timeout-ms" => timeout_ms = val("--timeout-ms")?.parse().map_err(|e| format!("--timeout-ms: {e}"))?,
            "--max-secs" => max_secs = val("--max-secs")?.parse().map_err(|e| format!("--max-secs: {e}"))?,
            "--out" => out = Some(val("--out")?),
            "--stop" => stop = Some(val("--stop")?),
            t if !t.starts_with("--") => targets.push(parse_target(t)?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !(rate > 0.0 && rate <= 10_000.0) {
        return Err(format!("--rate {rate}: must be in (0, 10000] requests/s"));
    }
    if targets.is_empty() {
        return Err("no target given".into());
    }
    Ok(Options {
        rate,
        timeout: Duration::from_millis(timeout_ms.max(1)),
        max: Duration::from_secs(max_secs),
        out: out.ok_or("--out is required")?,
        stop: stop.ok_or("--stop is required")?,
        targets,
    })
}

/// The outcome of one request, as written in the record.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Answered { status: u16, replica: Option<String> },
    Failed(String),
}

fn classify(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match (e.kind(), e.raw_os_error()) {
        (TimedOut | WouldBlock, _) => "timeout".into(),
        (ConnectionRefused, _) => "refused".into(),
        (ConnectionReset | ConnectionAborted | BrokenPipe, _) => "reset".into(),
        // EHOSTUNREACH, ENETUNREACH: an ICMP error or no route.
        (_, Some(113 | 101)) => "unreachable".into(),
        (_, Some(n)) => format!("error-{n}"),
        (k, None) => format!("error-{k:?}").to_lowercase(),
    }
}

/// `HTTP/1.0 200 OK` → 200.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// The replica named in a clusterlab `web` answer: `replica=<name> ips=...`.
fn replica_of(resp: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(resp);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or(&text);
    body.split_whitespace().find_map(|w| w.strip_prefix("replica=")).filter(|r| !r.is_empty()).map(str::to_string)
}

/// One request on a new connection, within `deadline`.
fn request(t: &Target, deadline: Instant) -> Outcome {
    let left = |now: Instant| deadline.checked_duration_since(now).filter(|d| !d.is_zero());
    let Some(d) = left(Instant::now()) else { return Outcome::Failed("timeout".into()) };
    let mut s = match TcpStream::connect_timeout(&t.addr, d) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(classify(&e)),
    };
    let req = format!("GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: clusterlab-agent\r\nConnection: close\r\n\r\n", t.path, t.host);
    let Some(d) = left(Instant::now()) else { return Outcome::Failed("timeout".into()) };
    let _ = s.set_write_timeout(Some(d));
    if let Err(e) = s.write_all(req.as_bytes()) {
        return Outcome::Failed(classify(&e));
    }
    // Read the whole answer (a path may lose only large packets), up to 1 MiB.
    let mut resp = Vec::with_capacity(512);
    let mut buf = [0u8; 16384];
    loop {
        let Some(d) = left(Instant::now()) else { return Outcome::Failed("timeout".into()) };
        let _ = s.set_read_timeout(Some(d));
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if resp.len() < 1 << 20 {
                    resp.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Outcome::Failed(classify(&e)),
        }
    }
    match status_of(&resp) {
        Some(status) => Outcome::Answered { status, replica: replica_of(&resp) },
        None => Outcome::Failed("empty".into()),
    }
}

fn record_line(seq: u64, key: &str, sched: Duration, sent: Duration, lat: Duration, o: &Outcome) -> String {
    let (result, replica) = match o {
        Outcome::Answered { status: 200, replica } => ("ok".to_string(), replica.clone()),
        Outcome::Answered { status, replica } => (format!("http-{status}"), replica.clone()),
        Outcome::Failed(why) => (why.clone(), None),
    };
    format!("{seq} {key} {} {} {} {result} {}\n", sched.as_micros(), sent.as_micros(), lat.as_micros(), replica.as_deref().unwrap_or("-"))
}

/// The q-quantile of sorted values (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// CPU time (user + system, ms) and peak RSS (KiB) of this process, from /proc.
fn own_cost() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command; in clock
    // ticks, 100 per second on Linux.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cpu_ms = (ticks(11) + ticks(12)) * 10;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    (cpu_ms, rss)
}

fn run(o: Options) -> Result<(), String> {
    let file = std::fs::File::create(&o.out).map_err(|e| format!("cannot create {}: {e}", o.out))?;
    let mut w = std::io::BufWriter::new(file);
    let t0 = Instant::now();
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?;
    writeln!(w, "#start unix_ns={} rate={} timeout_ms={} targets={}", wall.as_nanos(), o.rate, o.timeout.as_millis(), o.targets.len())
        .and_then(|_| w.flush())
        .map_err(|e| format!("cannot write {}: {e}", o.out))?;

    // Finished requests go to one writer (this thread), which flushes at least every 100 ms so
    // that a record is on disk soon after its answer.
    let (tx, rx) = mpsc::channel::<String>();
    let period = Duration::from_secs_f64(1.0 / o.rate);
    let mut late_us: Vec<u64> = Vec::new();
    let mut seq: u64 = 0;
    let mut last_flush = Instant::now();
    let stop_path = std::path::Path::new(&o.stop);
    loop {
        let sched = period.mul_f64(seq as f64);
        let now = t0.elapsed();
        if now >= o.max || (seq.is_multiple_of(4) && stop_path.exists()) {
            break;
        }
        if sched > now {
            // Drain finished records while waiting for the next slot.
            let wait = sched - now;
            match rx.recv_timeout(wait) {
                Ok(line) => {
                    let _ = w.write_all(line.as_bytes());
                    continue;
                }
                Err(_) => {
                    let now = t0.elapsed();
                    if now < sched {
                        std::thread::sleep(sched - now);
                    }
                }
            }
        }
        let sent = t0.elapsed();
        late_us.push(sent.saturating_sub(sched).as_micros() as u64);
        let target = o.targets[(seq % o.targets.len() as u64) as usize].clone();
        let (tx, timeout, n) = (tx.clone(), o.timeout, seq);
        // A thread per request: the schedule never waits for an answer. Small stacks keep
        // hundreds in flight cheap.
        let spawned = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || {
            let start = Instant::now();
            let outcome = request(&target, start + timeout);
            let lat = start.elapsed();
            let _ = tx.send(record_line(n, &target.key, sched, sent, lat, &outcome));
        });
        if let Err(e) = spawned {
            let _ = w.write_all(record_line(n, "-", sched, sent, Duration::ZERO, &Outcome::Failed(format!("error-spawn:{e}"))).as_bytes());
        }
        seq += 1;
        while let Ok(line) = rx.try_recv() {
            let _ = w.write_all(line.as_bytes());
        }
        if last_flush.elapsed() >= Duration::from_millis(100) {
            let _ = w.flush();
            last_flush = Instant::now();
        }
    }
    // Every request in flight ends within its timeout: collect them all.
    drop(tx);
    while let Ok(line) = rx.recv() {
        let _ = w.write_all(line.as_bytes());
    }
    late_us.sort_unstable();
    let (cpu_ms, rss_kb) = own_cost();
    writeln!(
        w,
        "#end sent={seq} cpu_ms={cpu_ms} maxrss_kb={rss_kb} late_p50_us={} late_p99_us={} late_max_us={} ran_ms={}",
        quantile(&late_us, 0.5),
        quantile(&late_us, 0.99),
        late_us.last().copied().unwrap_or(0),
        t0.elapsed().as_millis()
    )
    .and_then(|_| w.flush())
    .map_err(|e| format!("cannot write {}: {e}", o.out))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse_args(&args).and_then(run);
    if let Err(e) = result {
        eprintln!("clusterlab-agent: {e}");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_why() {
        let t = parse_target("10.0.1.5=10.0.1.5:80/big").unwrap();
        assert_eq!((t.key.as_str(), t.addr.port(), t.path.as_str()), ("10.0.1.5", 80, "/big"));
        assert_eq!(parse_target("vip=10.32.0.10:8080").unwrap().path, "/");
        assert!(parse_target("10.0.1.5:80").unwrap_err().contains("key=ip:port"));
        assert!(parse_target("k=web:80/").unwrap_err().contains("not ip:port"));
    }

    #[test]
    fn answers_name_their_status_and_replica() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\nreplica=web-7d9c-x2bqp ips=10.244.1.3 \n";
        assert_eq!(status_of(r), Some(200));
        assert_eq!(replica_of(r).as_deref(), Some("web-7d9c-x2bqp"));
        assert_eq!(status_of(b"HTTP/1.1 503 Service Unavailable\r\n\r\n<html>proxy</html>"), Some(503));
        assert_eq!(replica_of(b"HTTP/1.1 503 x\r\n\r\n<html>proxy</html>"), None);
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[test]
    fn records_are_one_line_each() {
        let o = Outcome::Answered { status: 200, replica: Some("web.1".into()) };
        let l = record_line(7, "vip", Duration::from_millis(350), Duration::from_micros(350_120), Duration::from_micros(900), &o);
        assert_eq!(l, "7 vip 350000 350120 900 ok web.1\n");
        let l = record_line(8, "vip", Duration::ZERO, Duration::ZERO, Duration::from_secs(1), &Outcome::Failed("timeout".into()));
        assert_eq!(l, "8 vip 0 0 1000000 timeout -\n");
        let o = Outcome::Answered { status: 502, replica: None };
        assert!(record_line(1, "k", Duration::ZERO, Duration::ZERO, Duration::ZERO, &o).contains(" http-502 -"));
    }

    #[test]
    fn options_need_targets_and_a_sane_rate() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert!(parse_args(&a("stream --out o --stop s")).unwrap_err().contains("no target"));
        assert!(parse_args(&a("stream --rate 0 --out o --stop s k=1.2.3.4:80/")).unwrap_err().contains("--rate"));
        let o = parse_args(&a("stream --rate 200 --timeout-ms 500 --out o --stop s k=1.2.3.4:80/")).unwrap();
        assert_eq!((o.rate, o.timeout, o.targets.len()), (200.0, Duration::from_millis(500), 1));
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!((quantile(&v, 0.5), quantile(&v, 0.99), quantile(&v, 1.0)), (50, 99, 100));
        assert_eq!(quantile(&[], 0.5), 0);
    }

    /// A real request against a real listener on loopback: answered, then refused once closed.
    #[test]
    fn a_request_to_a_live_server_is_answered_and_to_a_closed_port_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b);
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\nreplica=one ips=127.0.0.1\n").unwrap();
        });
        let t = parse_target(&format!("k={addr}/")).unwrap();
        let o = request(&t, Instant::now() + Duration::from_secs(2));
        assert_eq!(o, Outcome::Answered { status: 200, replica: Some("one".into()) });
        server.join().unwrap();
        let o = request(&t, Instant::now() + Duration::from_secs(2));
        assert_eq!(o, Outcome::Failed("refused".into()));
    }
}
