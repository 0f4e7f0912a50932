//! clusterlab-web: the server of clusterlab's `web` image, the workload every check talks to.
//!
//! It serves the files of one directory (the image's start script writes `index.html`, the
//! replica's identity, and `big`) over HTTP/1.0: one request per connection, closed after the
//! answer — a request-rate bench counts new connections, like netperf's TCP_CRR. Each connection
//! gets a thread of its own, so a slow client never holds up the next.
//!
//! Why not busybox httpd, which the image carried before: it listens with a queue of 9
//! connections. On a busy machine the server is not scheduled for a moment, a check's burst
//! fills the queue, the kernel drops the next SYN, and the client sends it again only after 1 s —
//! a lost request that a lab's network did not lose. This server listens 4096 deep (the kernel's
//! `net.core.somaxconn` caps it); a lab's own checks never fill that.
//!
//! Every request is one line on stderr, written when its answer is (ending in the bytes sent, or
//! in `not sent: <why>`): the server's own count, which a stream's figures can be held against.
//!
//! ```text
//! clusterlab-web [--port 80] [--root /www] [--backlog 4096]
//! 10.0.1.5:40412 GET /index.html 200 51
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// A client that sends no whole request within this is let go.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a request read: a request line and a few headers.
const MAX_REQUEST: usize = 16 * 1024;

#[derive(Debug, PartialEq)]
struct Options {
    port: u16,
    root: String,
    backlog: i32,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options { port: 80, root: "/www".into(), backlog: 4096 };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--port" => o.port = value("--port")?.parse().map_err(|e| format!("--port: {e}"))?,
            "--root" => o.root = value("--root")?,
            "--backlog" => o.backlog = value("--backlog")?.parse().map_err(|e| format!("--backlog: {e}"))?,
            other => return Err(format!("unknown argument {other:?} (usage: clusterlab-web [--port N] [--root DIR] [--backlog N])")),
        }
    }
    Ok(o)
}

/// A file served: its bytes and their content type.
struct File {
    body: Vec<u8>,
    content_type: &'static str,
}

/// The files of `root`, read once: they are written before the server starts and never change,
/// and a request then costs no file system call.
fn load(root: &str) -> Result<HashMap<String, File>, String> {
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(root).map_err(|e| format!("read {root}: {e}"))? {
        let entry = entry.map_err(|e| format!("read {root}: {e}"))?;
        if !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let body = std::fs::read(entry.path()).map_err(|e| format!("read {}: {e}", entry.path().display()))?;
        let content_type = if name.ends_with(".html") { "text/html" } else { "application/octet-stream" };
        files.insert(format!("/{name}"), File { body, content_type });
    }
    Ok(files)
}

/// The method and path of a request's first line; None when it is not `METHOD /path HTTP/x`.
fn request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/") || !target.starts_with('/') {
        return None;
    }
    Some((method, target))
}

/// Status, content type and body for a request: `/` is `/index.html`; a query string is ignored.
fn answer<'a>(files: &'a HashMap<String, File>, method: &str, target: &str) -> (u16, &'static str, &'a [u8]) {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let path = if path == "/" { "/index.html" } else { path };
    match (method, files.get(path)) {
        ("GET" | "HEAD", Some(f)) => (200, f.content_type, &f.body),
        ("GET" | "HEAD", None) => (404, "text/plain", b"404 Not Found\n"),
        _ => (405, "text/plain", b"405 Method Not Allowed\n"),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "",
    }
}

/// Read a request head (up to its blank line), answer it, close.
fn serve(mut conn: TcpStream, peer: SocketAddr, files: &HashMap<String, File>) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_REQUEST {
            break;
        }
    }
    if head.is_empty() {
        return; // a connection opened and closed (a TCP check): nothing to answer
    }
    let text = String::from_utf8_lossy(&head);
    let (method, target, (status, content_type, body)) = match request_line(&text) {
        Some((m, t)) => (m, t, answer(files, m, t)),
        None => ("-", "-", (400, "text/plain", &b"400 Bad Request\n"[..])),
    };
    let mut out = format!(
        "HTTP/1.0 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(body);
    }
    let sent = conn.write_all(&out).and_then(|_| conn.flush());
    let _ = conn.shutdown(std::net::Shutdown::Write);
    // The line ends in the bytes sent only when the answer went out whole: a count of answers
    // (`... 200 <bytes>` at the end of a line) never counts one its client did not get.
    match sent {
        Ok(()) => eprintln!("{peer} {method} {target} {status} {}", if method == "HEAD" { 0 } else { body.len() }),
        Err(e) => eprintln!("{peer} {method} {target} {status} not sent: {e}"),
    }
}

fn listen(o: &Options) -> Result<TcpListener, String> {
    use socket2::{Domain, Socket, Type};
    let addr: SocketAddr = ([0, 0, 0, 0], o.port).into();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| format!("socket: {e}"))?;
    // A replica restarted in place binds again while the old connections sit in TIME_WAIT.
    socket.set_reuse_address(true).map_err(|e| format!("SO_REUSEADDR: {e}"))?;
    socket.bind(&addr.into()).map_err(|e| format!("bind {addr}: {e}"))?;
    socket.listen(o.backlog).map_err(|e| format!("listen on {addr}: {e}"))?;
    Ok(socket.into())
}

/// The value, or the error on stderr and an exit with `code`.
fn or_exit<T>(r: Result<T, String>, code: i32) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("clusterlab-web: {e}");
        std::process::exit(code)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = or_exit(parse_args(&args), 2);
    let files = Arc::new(or_exit(load(&o.root), 1));
    let listener = or_exit(listen(&o), 1);
    eprintln!("clusterlab-web: serving {} files of {} on port {}, listen queue {}", files.len(), o.root, o.port, o.backlog);
    loop {
        match listener.accept() {
            Ok((conn, peer)) => {
                let files = Arc::clone(&files);
                // A small stack: the thread reads a request head and writes one answer.
                let spawned = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || serve(conn, peer, &files));
                if let Err(e) = spawned {
                    eprintln!("clusterlab-web: no thread for {peer}: {e}");
                }
            }
            // Out of descriptors or memory for a moment: the queue holds the rest meanwhile.
            Err(e) => {
                eprintln!("clusterlab-web: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> HashMap<String, File> {
        let mut f = HashMap::new();
        f.insert("/index.html".into(), File { body: b"replica=a ips=10.0.1.5 \n".to_vec(), content_type: "text/html" });
        f.insert("/big".into(), File { body: vec![b'x'; 10], content_type: "application/octet-stream" });
        f
    }

    #[test]
    fn options_default_and_parse() {
        assert_eq!(parse_args(&[]).unwrap(), Options { port: 80, root: "/www".into(), backlog: 4096 });
        let a: Vec<String> = ["--port", "8080", "--backlog", "9", "--root", "/x"].iter().map(|s| s.to_string()).collect();
        assert_eq!(parse_args(&a).unwrap(), Options { port: 8080, root: "/x".into(), backlog: 9 });
        assert!(parse_args(&["--port".to_string()]).unwrap_err().contains("needs a value"));
        assert!(parse_args(&["-x".to_string()]).unwrap_err().contains("unknown argument"));
    }

    #[test]
    fn requests_map_to_files_statuses_and_methods() {
        let f = files();
        assert_eq!(request_line("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"), Some(("GET", "/big")));
        assert_eq!(request_line("garbage\r\n\r\n"), None);
        assert_eq!(request_line("GET big HTTP/1.1\r\n\r\n"), None);
        assert_eq!(answer(&f, "GET", "/").0, 200);
        assert_eq!(answer(&f, "GET", "/?x=1").2, b"replica=a ips=10.0.1.5 \n");
        assert_eq!(answer(&f, "GET", "/big").1, "application/octet-stream");
        assert_eq!(answer(&f, "HEAD", "/index.html").0, 200);
        assert_eq!(answer(&f, "GET", "/nope").0, 404);
        assert_eq!(answer(&f, "GET", "/../etc/passwd").0, 404, "only the files loaded, never a path");
        assert_eq!(answer(&f, "POST", "/").0, 405);
    }

    /// On loopback: a whole request answered and the connection closed after it; a queue as deep
    /// as asked (more connections than busybox's 9 wait, unaccepted, and none is refused).
    #[test]
    fn answers_over_a_real_socket_and_queues_deep() {
        let o = Options { port: 0, root: String::new(), backlog: 64 };
        let l = listen(&o).unwrap();
        let addr = l.local_addr().unwrap();
        let to: SocketAddr = ([127, 0, 0, 1], addr.port()).into();
        // Past a queue of 9, a connection attempt would go unanswered (its SYN dropped): 2 s says so.
        let connect = || TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("a queued connection");
        let waiting: Vec<TcpStream> = (0..40).map(|_| connect()).collect();
        let f = files();
        let mut c = connect();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        // Opened and closed without a request (a TCP check): served without waiting on them.
        drop(waiting);
        for _ in 0..41 {
            let (conn, peer) = l.accept().unwrap();
            serve(conn, peer, &f);
        }
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.0 200 OK\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\nreplica=a ips=10.0.1.5 \n"), "{got}");
        assert!(got.contains("Content-Length: 24\r\n"), "{got}");
    }
}
