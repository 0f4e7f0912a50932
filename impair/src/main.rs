//! The delay stage of a lab node whose kernel has no netem. An iptables rule of a `delay` fault
//! hands the packets it matches to one NFQUEUE queue; this program, bound to that queue in the
//! node's own network namespace, gives each packet its release time (the delay, plus jitter drawn
//! from the asked distribution) and lets it go on (ACCEPT) once that time has come. Packets whose
//! release times cross leave in release order, as netem's jitter reorders them.
//!
//! Started by the harness when the fault is applied, stopped (SIGTERM) when it is reverted: it
//! then releases everything it still holds at once and writes what it measured — packets, the
//! most it held, how late its releases were — so a run can say where the stage stops being
//! faithful (a packet released later than asked is the stage's cost, not the fault's).
//!
//! Reordering as netem does it: of every `gap`th packet (every packet by default), a share
//! `reorder` percent goes at once instead of waiting, and so overtakes the ones held before it.
//!
//! Corruption as netem does it: a share `corrupt` percent of the packets gets one random bit
//! flipped — here past the IP header, in the transport header or payload — and goes on with its
//! new bytes. The kernel takes a payload a queue rewrote as unchecksummed, so the receiver checks
//! it and drops what fails (TCP's and UDP's `InCsumErrors` count them), as a real bit error would.
//!
//! Usage: clusterlab-impair --queue N --delay-us D [--jitter-us J] [--distribution uniform|normal]
//!        [--reorder-pct P] [--reorder-gap G] [--corrupt-pct P] [--ready PATH] [--stats PATH]

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

#[derive(Debug, Clone, PartialEq)]
struct Args {
    queue: u16,
    delay_us: u64,
    jitter_us: u64,
    normal: bool,
    reorder_pct: f64,
    reorder_gap: u64,
    corrupt_pct: f64,
    ready: Option<String>,
    stats: Option<String>,
}

impl Default for Args {
    /// Nothing asked: no delay, no jitter, nothing reordered or corrupted (every packet may be
    /// reordered once one is asked: a gap of 1).
    fn default() -> Args {
        Args {
            queue: 0,
            delay_us: 0,
            jitter_us: 0,
            normal: false,
            reorder_pct: 0.0,
            reorder_gap: 1,
            corrupt_pct: 0.0,
            ready: None,
            stats: None,
        }
    }
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut queue = None;
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("{flag} {v:?} is not a whole number"));
        match flag.as_str() {
            "--queue" => queue = Some(u16::try_from(number(value()?)?).map_err(|_| "--queue is at most 65535".to_string())?),
            "--delay-us" => a.delay_us = number(value()?)?,
            "--jitter-us" => a.jitter_us = number(value()?)?,
            "--distribution" => {
                a.normal = match value()?.as_str() {
                    "uniform" => false,
                    "normal" => true,
                    other => return Err(format!("--distribution {other:?}: uniform or normal")),
                }
            }
            "--reorder-pct" => {
                let v = value()?;
                a.reorder_pct =
                    v.parse::<f64>().ok().filter(|p| (0.0..=100.0).contains(p)).ok_or(format!("--reorder-pct {v:?}: 0 to 100"))?;
            }
            "--reorder-gap" => a.reorder_gap = number(value()?)?.max(1),
            "--corrupt-pct" => {
                let v = value()?;
                a.corrupt_pct =
                    v.parse::<f64>().ok().filter(|p| (0.0..=100.0).contains(p)).ok_or(format!("--corrupt-pct {v:?}: 0 to 100"))?;
            }
            "--ready" => a.ready = Some(value()?),
            "--stats" => a.stats = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    a.queue = queue.ok_or("--queue is required")?;
    Ok(a)
}

/// xorshift64*: jitter needs spread, not cryptography, and the stage stays dependency-light.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The delay one packet gets: `delay` plus jitter — uniform over ±jitter, or normal with jitter
/// as its standard deviation — never below zero.
fn sample_us(a: &Args, rng: &mut Rng) -> u64 {
    let j = a.jitter_us as f64;
    let offset = if j == 0.0 {
        0.0
    } else if a.normal {
        // Box-Muller: one standard normal from two uniforms.
        let (u1, u2) = (rng.next_f64().max(f64::MIN_POSITIVE), rng.next_f64());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * j
    } else {
        (rng.next_f64() * 2.0 - 1.0) * j
    };
    (a.delay_us as f64 + offset).max(0.0).round() as u64
}

/// Does packet `n` (1, 2, ...) go at once? Only every `gap`th packet may, and then with
/// probability `reorder_pct`.
fn goes_at_once(a: &Args, n: u64, rng: &mut Rng) -> bool {
    a.reorder_pct > 0.0 && n.is_multiple_of(a.reorder_gap) && rng.next_f64() * 100.0 < a.reorder_pct
}

/// Flip one random bit of an IPv4 packet past its header (the transport header or payload,
/// which the transport's checksum covers). False when there is nothing past the header.
fn flip_bit(packet: &mut [u8], rng: &mut Rng) -> bool {
    let Some(first) = packet.first() else { return false };
    let header = usize::from(first & 0x0f) * 4;
    if packet.len() <= header {
        return false;
    }
    let byte = header + ((rng.next_f64() * (packet.len() - header) as f64) as usize).min(packet.len() - header - 1);
    packet[byte] ^= 1 << ((rng.next_f64() * 8.0) as u32).min(7);
    true
}

/// A packet waiting for its release time (`seq` keeps arrival order among equal times).
struct Held {
    due: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    // Reversed: BinaryHeap is a max-heap, the earliest release must come out first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

/// What the stage measured: how many packets, the most held at once, and how late releases were
/// (microseconds after their release time; a sample of at most 100 000).
#[derive(Default)]
struct Stats {
    packets: u64,
    /// Released at once (reordering), never held.
    at_once: u64,
    /// Sent on with a bit flipped.
    corrupted: u64,
    /// Matched by the rule but never reached the stage: the kernel dropped them, its queue full
    /// or the socket's buffer (the stage fell behind). Read off the kernel's counters at the end;
    /// None when they could not be read (written `lost unknown`, never as none lost).
    lost: Option<u64>,
    held_max: usize,
    late_us: Vec<u64>,
    added_us_sum: u64,
}

impl Stats {
    fn text(&self) -> String {
        let mut late = self.late_us.clone();
        late.sort_unstable();
        let pct = |p: f64| late.get(((late.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);
        let mean_added = self.added_us_sum.checked_div(self.packets - self.at_once).unwrap_or(0);
        format!(
            "packets {}\nat_once {}\ncorrupted {}\nlost {}\nheld_max {}\nlate_p50_us {}\nlate_p99_us {}\nlate_max_us {}\nmean_added_us {mean_added}\n",
            self.packets,
            self.at_once,
            self.corrupted,
            self.lost.map_or_else(|| "unknown".to_string(), |n| n.to_string()),
            self.held_max,
            pct(0.5),
            pct(0.99),
            late.last().copied().unwrap_or(0)
        )
    }
}

/// The longest the loop waits without looking at the stop flag (a signal also wakes it).
const IDLE: Duration = Duration::from_secs(1);

/// The queue's netlink socket. nfq keeps its descriptor to itself; it is the one socket this
/// process opens, so /proc/self/fd names it.
fn netlink_fd() -> Option<libc::c_int> {
    std::fs::read_dir("/proc/self/fd").ok()?.flatten().find_map(|e| {
        let link = std::fs::read_link(e.path()).ok()?;
        link.to_string_lossy().starts_with("socket:").then(|| e.file_name().to_str()?.parse().ok()).flatten()
    })
}

/// What the kernel dropped of queue `queue`'s packets (`queue_dropped`: the queue was full;
/// `user_dropped`: the socket's buffer was), from /proc/net/netfilter/nfnetlink_queue — one
/// line per bound queue: number, portid, waiting, copy mode, copy range, queue_dropped,
/// user_dropped, last id, 1.
fn kernel_drops(table: &str, queue: u16) -> Option<u64> {
    table.lines().find_map(|l| {
        let f: Vec<u64> = l.split_whitespace().map(|x| x.parse().ok()).collect::<Option<_>>()?;
        (f.len() >= 7 && f[0] == u64::from(queue)).then(|| f[5] + f[6])
    })
}

/// A receive buffer for the queue's socket that holds a burst: with whole packets copied (to
/// corrupt them), the default ~200 KiB holds ~100 of them, and a stage descheduled for a few
/// milliseconds on a busy machine lost the rest of a burst (the kernel drops what does not fit).
/// FORCE passes the host's rmem_max (root in the node may); plain SO_RCVBUF is capped by it.
fn grow_receive_buffer(fd: libc::c_int) {
    let bytes: libc::c_int = 32 << 20;
    let set = |opt| {
        // SAFETY: a valid socket descriptor and an int option value that outlives the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &bytes as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 {
        set(libc::SO_RCVBUF);
    }
}

/// Wait until the socket has a packet or `d` has passed (or a signal came): the loop sleeps in
/// the kernel instead of spinning, and wakes for the next release on time (ppoll's
/// nanosecond timeout, not poll's milliseconds).
fn wait_readable(fd: libc::c_int, d: Duration) {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ts = libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long };
    // SAFETY: one valid pollfd and a valid timespec, both outliving the call.
    unsafe { libc::ppoll(&mut p, 1, &ts, std::ptr::null()) };
}

fn run(a: &Args) -> std::io::Result<Stats> {
    let mut q = nfq::Queue::open()?;
    q.bind(a.queue)?;
    let corrupting = a.corrupt_pct > 0.0;
    // Metadata only, unless packets are corrupted: the verdict needs the packet's id, not its
    // bytes, and held packets then cost a few hundred bytes each instead of a copy.
    q.set_copy_range(a.queue, if corrupting { 0xffff } else { 0 })?;
    // GSO packets as they are (one entry per super-packet), unless bits are flipped: the kernel
    // then segments them first, and each wire packet is corrupted or not on its own.
    q.set_recv_gso(a.queue, !corrupting)?;
    // Room for ~a second of a fast link at 50 ms: packets beyond it are dropped by the kernel
    // (counted in /proc/net/netfilter/nfnetlink_queue), as netem's limit drops them.
    q.set_queue_max_len(a.queue, 50_000)?;
    q.set_nonblocking(true);
    let fd = netlink_fd().ok_or_else(|| std::io::Error::other("cannot find the queue's netlink socket in /proc/self/fd"))?;
    grow_receive_buffer(fd);
    if let Some(p) = &a.ready {
        std::fs::write(p, format!("{}\n", std::process::id()))?;
    }
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let seed = clock ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    let mut rng = Rng(seed | 1);
    let mut held: BinaryHeap<Held> = BinaryHeap::new();
    let mut stats = Stats::default();
    let mut seq = 0u64;
    loop {
        let stopping = STOP.load(Ordering::SeqCst);
        loop {
            match q.recv() {
                Ok(mut msg) => {
                    seq += 1;
                    if corrupting && rng.next_f64() * 100.0 < a.corrupt_pct && flip_bit(msg.get_payload_mut(), &mut rng) {
                        stats.corrupted += 1;
                    }
                    if goes_at_once(a, seq, &mut rng) {
                        stats.packets += 1;
                        stats.at_once += 1;
                        msg.set_verdict(nfq::Verdict::Accept);
                        q.verdict(msg)?;
                        continue;
                    }
                    let add = sample_us(a, &mut rng);
                    stats.packets += 1;
                    stats.added_us_sum += add;
                    held.push(Held { due: Instant::now() + Duration::from_micros(add), seq, msg });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // The socket's buffer overflowed: the kernel dropped packets (counted, see
                // `lost`) and says so once; the queue goes on.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => return Err(e),
            }
        }
        stats.held_max = stats.held_max.max(held.len());
        let now = Instant::now();
        while held.peek().is_some_and(|h| stopping || h.due <= now) {
            let mut h = held.pop().expect("peeked");
            if stats.late_us.len() < 100_000 && !stopping {
                stats.late_us.push(now.saturating_duration_since(h.due).as_micros() as u64);
            }
            h.msg.set_verdict(nfq::Verdict::Accept);
            q.verdict(h.msg)?;
        }
        if stopping {
            stats.lost = std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue").ok().and_then(|t| kernel_drops(&t, a.queue));
            return Ok(stats);
        }
        let wait = held.peek().map(|h| h.due.saturating_duration_since(Instant::now())).unwrap_or(IDLE).min(IDLE);
        wait_readable(fd, wait);
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let a = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("clusterlab-impair: {e}");
            std::process::exit(2);
        }
    };
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    match run(&a) {
        Ok(stats) => {
            if let Some(p) = &a.stats {
                if let Err(e) = std::fs::write(p, stats.text()) {
                    eprintln!("clusterlab-impair: writing {p}: {e}");
                }
            }
        }
        Err(e) => {
            eprintln!("clusterlab-impair: queue {}: {e}", a.queue);
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse_args(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn arguments_parse_and_bad_ones_say_which() {
        let a = args("--queue 7 --delay-us 50000 --jitter-us 10000 --distribution normal --stats /s").unwrap();
        assert_eq!((a.queue, a.delay_us, a.jitter_us, a.normal, a.stats.as_deref()), (7, 50_000, 10_000, true, Some("/s")));
        assert!(args("--delay-us 5").unwrap_err().contains("--queue"));
        assert!(args("--queue 70000").unwrap_err().contains("65535"));
        assert!(args("--queue 1 --distribution pareto").unwrap_err().contains("pareto"));
        assert!(args("--queue 1 --delay-us").unwrap_err().contains("needs a value"));
        assert!(args("--queue 1 --fast").unwrap_err().contains("--fast"));
    }

    #[test]
    fn delays_keep_their_mean_and_spread_and_never_go_below_zero() {
        for normal in [false, true] {
            let a = Args { normal, ..base() };
            let mut rng = Rng(12345);
            let v: Vec<f64> = (0..20_000).map(|_| sample_us(&a, &mut rng) as f64).collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            assert!((mean - 50_000.0).abs() < 300.0, "mean {mean}");
            // Uniform over ±j has a standard deviation of j/√3; normal, j.
            let want = if normal { 10_000.0 } else { 10_000.0 / 3f64.sqrt() };
            assert!((sd - want).abs() < want * 0.05, "normal={normal}: sd {sd}, want {want}");
            if !normal {
                assert!(v.iter().all(|x| (40_000.0..=60_000.0).contains(x)));
            }
        }
        let wide = Args { delay_us: 1_000, jitter_us: 50_000, normal: true, ..base() };
        let mut rng = Rng(7);
        assert!((0..1000).map(|_| sample_us(&wide, &mut rng)).any(|x| x == 0), "clamped at zero, not negative");
        let fixed = Args { jitter_us: 0, ..wide };
        assert_eq!(sample_us(&fixed, &mut rng), 1_000);
    }

    fn base() -> Args {
        Args { delay_us: 50_000, jitter_us: 10_000, ..Args::default() }
    }

    #[test]
    fn reordering_sends_its_share_of_every_gapth_packet_at_once() {
        let mut rng = Rng(99);
        assert!(!(1..1000).any(|n| goes_at_once(&base(), n, &mut rng)), "no reorder asked, none at once");
        let quarter = Args { reorder_pct: 25.0, ..base() };
        let n = (1..=20_000).filter(|n| goes_at_once(&quarter, *n, &mut rng)).count();
        assert!((4_700..=5_300).contains(&n), "{n} of 20000 at 25 %");
        let every_fifth = Args { reorder_pct: 100.0, reorder_gap: 5, ..base() };
        let at_once: Vec<u64> = (1..=20).filter(|n| goes_at_once(&every_fifth, *n, &mut rng)).collect();
        assert_eq!(at_once, [5, 10, 15, 20]);
        let a = args("--queue 1 --reorder-pct 25 --reorder-gap 5").unwrap();
        assert_eq!((a.reorder_pct, a.reorder_gap), (25.0, 5));
        assert!(args("--queue 1 --reorder-pct 120").unwrap_err().contains("0 to 100"));
    }

    #[test]
    fn stats_report_lateness_percentiles() {
        let s = Stats {
            packets: 4,
            at_once: 0,
            corrupted: 1,
            lost: Some(2),
            held_max: 3,
            late_us: vec![40, 10, 20, 30],
            added_us_sum: 200_000,
        };
        let t = s.text();
        assert!(t.contains("packets 4\n") && t.contains("corrupted 1\n") && t.contains("lost 2\n") && t.contains("held_max 3\n"), "{t}");
        assert!(t.contains("late_max_us 40\n") && t.contains("mean_added_us 50000\n"), "{t}");
        assert!(Stats::default().text().contains("late_p99_us 0\n"));
        assert!(Stats::default().text().contains("lost unknown\n"), "unread counters are not zero");
    }

    #[test]
    fn corruption_flips_one_bit_past_the_ip_header() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        // A 20-byte IPv4 header (IHL 5) and 40 bytes after it.
        let clean: Vec<u8> = std::iter::once(0x45).chain(1..60u8).collect();
        for _ in 0..500 {
            let mut p = clean.clone();
            assert!(flip_bit(&mut p, &mut rng));
            let diff: Vec<usize> = (0..p.len()).filter(|i| p[*i] != clean[*i]).collect();
            assert_eq!(diff.len(), 1, "one byte changes");
            assert!(diff[0] >= 20, "the IP header is left alone: byte {}", diff[0]);
            assert_eq!((p[diff[0]] ^ clean[diff[0]]).count_ones(), 1, "one bit");
        }
        // Nothing past the header (or nothing at all): nothing to corrupt.
        assert!(!flip_bit(&mut clean[..20].to_vec(), &mut rng));
        assert!(!flip_bit(&mut [], &mut rng));
        let a = args("--queue 1 --corrupt-pct 5").unwrap();
        assert_eq!(a.corrupt_pct, 5.0);
        assert!(args("--queue 1 --corrupt-pct -1").unwrap_err().contains("0 to 100"));
    }

    #[test]
    fn kernel_drops_are_read_off_the_queue_s_own_line() {
        let table = "    7  12345     0 2 65535     0     0     2001  1\n 1302  23456     3 2 65535    11    29     4010  1\n";
        assert_eq!(kernel_drops(table, 1302), Some(40), "queue full and socket full both count");
        assert_eq!(kernel_drops(table, 7), Some(0));
        assert_eq!(kernel_drops(table, 8), None, "no line for an unbound queue");
        assert_eq!(kernel_drops("garbage\n", 7), None);
    }
}
