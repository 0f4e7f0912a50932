//! DNS messages (RFC 1035, EDNS0 of RFC 6891), as much as a cluster's DNS server needs: one
//! question read, a reply written. Names are written whole (no compression): replies stay small,
//! and a reply too big for the client's UDP size is truncated (TC) so it asks again over TCP.

use std::net::Ipv4Addr;

pub const A: u16 = 1;
pub const CNAME: u16 = 5;
pub const SOA: u16 = 6;
pub const PTR: u16 = 12;
pub const SRV: u16 = 33;
pub const OPT: u16 = 41;
pub const ANY: u16 = 255;

pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const NOTIMP: u8 = 4;

/// The classic UDP limit, for clients that announce no EDNS buffer size.
pub const UDP_CLASSIC: usize = 512;

/// The question of a query, and what the reply must echo.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub id: u16,
    pub opcode: u8,
    pub rd: bool,
    /// The name as asked (case kept, for the echo), without the final dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The client's EDNS UDP buffer size, when it sent an OPT record.
    pub edns: Option<u16>,
}

impl Query {
    /// The name for lookups: DNS names compare without regard to case.
    pub fn key(&self) -> String {
        self.name.to_ascii_lowercase()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    A(Ipv4Addr),
    Cname(String),
    Ptr(String),
    Srv { priority: u16, weight: u16, port: u16, target: String },
    Soa { mname: String, rname: String, serial: u32, refresh: u32, retry: u32, expire: u32, minimum: u32 },
}

impl Data {
    pub fn rtype(&self) -> u16 {
        match self {
            Data::A(_) => A,
            Data::Cname(_) => CNAME,
            Data::Ptr(_) => PTR,
            Data::Srv { .. } => SRV,
            Data::Soa { .. } => SOA,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: Data,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    pub rcode: u8,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

fn be16(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2).map(|x| u16::from_be_bytes([x[0], x[1]])).ok_or_else(|| format!("message ends at byte {at}"))
}

/// Read a name at `at`, following compression pointers; returns the name and where it ended.
fn read_name(msg: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(at).ok_or("a name runs past the message")? as usize;
        match len {
            0 => {
                at += 1;
                break;
            }
            l if l & 0xC0 == 0xC0 => {
                let ptr = (be16(msg, at)? & 0x3FFF) as usize;
                end.get_or_insert(at + 2);
                jumps += 1;
                if jumps > 16 {
                    return Err("a name's compression pointers loop".into());
                }
                at = ptr;
            }
            l if l < 64 => {
                let label = msg.get(at + 1..at + 1 + l).ok_or("a label runs past the message")?;
                labels.push(String::from_utf8_lossy(label).into_owned());
                at += 1 + l;
            }
            _ => return Err("a label length uses reserved bits".into()),
        }
    }
    Ok((labels.join("."), end.unwrap_or(at)))
}

/// The query in `msg`: exactly one question, an OPT record read when present.
pub fn parse_query(msg: &[u8]) -> Result<Query, String> {
    let id = be16(msg, 0)?;
    let flags = be16(msg, 2)?;
    if flags & 0x8000 != 0 {
        return Err("a reply, not a query".into());
    }
    let (qd, an, ns, ar) = (be16(msg, 4)?, be16(msg, 6)?, be16(msg, 8)?, be16(msg, 10)?);
    if qd != 1 {
        return Err(format!("{qd} questions; one is expected"));
    }
    let (name, at) = read_name(msg, 12)?;
    let (qtype, qclass) = (be16(msg, at)?, be16(msg, at + 2)?);
    let mut q = Query { id, opcode: ((flags >> 11) & 0xF) as u8, rd: flags & 0x0100 != 0, name, qtype, qclass, edns: None };
    // Skip answer and authority records (none in a query), then look for OPT among the additional.
    let mut at = at + 4;
    for i in 0..(an as usize + ns as usize + ar as usize) {
        let (_, after) = read_name(msg, at)?;
        let (rtype, class) = (be16(msg, after)?, be16(msg, after + 2)?);
        let rdlen = be16(msg, after + 8)? as usize;
        if i >= an as usize + ns as usize && rtype == OPT {
            q.edns = Some(class);
        }
        at = after + 10 + rdlen;
    }
    Ok(q)
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        let b = label.as_bytes();
        let b = &b[..b.len().min(63)];
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    out.push(0);
}

fn put_record(out: &mut Vec<u8>, r: &Record) {
    put_name(out, &r.name);
    out.extend_from_slice(&r.data.rtype().to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // class IN
    out.extend_from_slice(&r.ttl.to_be_bytes());
    let mut rd = Vec::new();
    match &r.data {
        Data::A(ip) => rd.extend_from_slice(&ip.octets()),
        Data::Cname(n) | Data::Ptr(n) => put_name(&mut rd, n),
        Data::Srv { priority, weight, port, target } => {
            for v in [priority, weight, port] {
                rd.extend_from_slice(&v.to_be_bytes());
            }
            put_name(&mut rd, target);
        }
        Data::Soa { mname, rname, serial, refresh, retry, expire, minimum } => {
            put_name(&mut rd, mname);
            put_name(&mut rd, rname);
            for v in [serial, refresh, retry, expire, minimum] {
                rd.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    out.extend_from_slice(&(rd.len() as u16).to_be_bytes());
    out.extend_from_slice(&rd);
}

/// The reply to `q`, at most `limit` bytes: when the records do not fit, the reply carries the
/// question alone with TC set, and the client asks again over TCP.
pub fn build(q: &Query, r: &Reply, authoritative: bool, limit: usize) -> Vec<u8> {
    let head = |tc: bool, counts: [usize; 3]| {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&q.id.to_be_bytes());
        let mut flags: u16 = 0x8000 | ((q.opcode as u16) << 11) | 0x0080 /* RA */ | r.rcode as u16;
        if authoritative {
            flags |= 0x0400;
        }
        if tc {
            flags |= 0x0200;
        }
        if q.rd {
            flags |= 0x0100;
        }
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        let opt = q.edns.is_some() as usize;
        for c in [counts[0], counts[1], counts[2] + opt] {
            out.extend_from_slice(&(c as u16).to_be_bytes());
        }
        put_name(&mut out, &q.name);
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&q.qclass.to_be_bytes());
        out
    };
    // EDNS: an OPT record back (root name, our buffer size, no flags), as RFC 6891 asks.
    let opt = |out: &mut Vec<u8>| {
        if q.edns.is_some() {
            out.push(0);
            out.extend_from_slice(&OPT.to_be_bytes());
            out.extend_from_slice(&4096u16.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
    };
    let mut out = head(false, [r.answers.len(), r.authority.len(), r.additional.len()]);
    for rec in r.answers.iter().chain(&r.authority).chain(&r.additional) {
        put_record(&mut out, rec);
    }
    opt(&mut out);
    if out.len() <= limit {
        return out;
    }
    let mut out = head(true, [0, 0, 0]);
    opt(&mut out);
    out
}

/// The UDP size a reply to `q` may take.
pub fn udp_limit(q: &Query) -> usize {
    q.edns.map(|s| (s as usize).clamp(UDP_CLASSIC, 4096)).unwrap_or(UDP_CLASSIC)
}

/// A reply with only a status (FORMERR, NOTIMP, SERVFAIL) to a message whose header could be
/// read: id and opcode echoed, no question.
pub fn status_only(msg: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let id = be16(msg, 0).ok()?;
    let flags = be16(msg, 2).ok()?;
    let flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode as u16;
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A query as dig sends it (with an OPT record when `edns`).
    pub fn query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&0x0100u16.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, edns.is_some() as u8]);
        put_name(&mut m, name);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        if let Some(size) = edns {
            m.push(0);
            m.extend_from_slice(&OPT.to_be_bytes());
            m.extend_from_slice(&size.to_be_bytes());
            m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        m
    }

    /// (rcode, tc, answer count, the answers' data as text) of a reply.
    pub fn decode(reply: &[u8]) -> (u8, bool, Vec<String>) {
        let flags = be16(reply, 2).unwrap();
        let an = be16(reply, 6).unwrap() as usize;
        let mut at = 12;
        if be16(reply, 4).unwrap() == 1 {
            at = read_name(reply, 12).unwrap().1 + 4;
        }
        let mut out = Vec::new();
        for _ in 0..an {
            let (name, after) = read_name(reply, at).unwrap();
            let rtype = be16(reply, after).unwrap();
            let rdlen = be16(reply, after + 8).unwrap() as usize;
            let rd = after + 10;
            let text = match rtype {
                A => format!("{name} A {}", Ipv4Addr::new(reply[rd], reply[rd + 1], reply[rd + 2], reply[rd + 3])),
                CNAME | PTR => format!("{name} {} {}", if rtype == CNAME { "CNAME" } else { "PTR" }, read_name(reply, rd).unwrap().0),
                SRV => format!(
                    "{name} SRV {} {} {} {}",
                    be16(reply, rd).unwrap(),
                    be16(reply, rd + 2).unwrap(),
                    be16(reply, rd + 4).unwrap(),
                    read_name(reply, rd + 6).unwrap().0
                ),
                t => format!("{name} type {t}"),
            };
            out.push(text);
            at = rd + rdlen;
        }
        ((flags & 0xF) as u8, flags & 0x0200 != 0, out)
    }

    #[test]
    fn a_query_reads_back_with_its_edns_size() {
        let q = parse_query(&query(7, "Web.Default.svc.cluster.local", A, Some(1232))).unwrap();
        assert_eq!((q.id, q.qtype, q.qclass, q.edns, q.rd), (7, A, 1, Some(1232), true));
        assert_eq!(q.name, "Web.Default.svc.cluster.local");
        assert_eq!(q.key(), "web.default.svc.cluster.local");
        assert_eq!(parse_query(&query(8, "x", SRV, None)).unwrap().edns, None);
    }

    #[test]
    fn broken_messages_are_refused_with_a_reason() {
        assert!(parse_query(&[0, 1]).unwrap_err().contains("ends"));
        let mut m = query(1, "a.b", A, None);
        m.truncate(16);
        assert!(parse_query(&m).is_err());
        // A pointer to itself.
        let mut m = query(1, "a", A, None);
        m.truncate(12);
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert!(parse_query(&m).unwrap_err().contains("loop"));
        let mut m = query(1, "a", A, None);
        m[2] |= 0x80;
        assert!(parse_query(&m).unwrap_err().contains("reply"));
    }

    #[test]
    fn a_reply_carries_every_kind_of_record() {
        let q = parse_query(&query(9, "x.cluster.local", ANY, None)).unwrap();
        let rec = |data| Record { name: "x.cluster.local".into(), ttl: 5, data };
        let r = Reply {
            rcode: NOERROR,
            answers: vec![
                rec(Data::A(Ipv4Addr::new(10, 96, 0, 10))),
                rec(Data::Cname("foo.example.com".into())),
                rec(Data::Ptr("web.default.svc.cluster.local".into())),
                rec(Data::Srv { priority: 0, weight: 100, port: 80, target: "web.default.svc.cluster.local".into() }),
            ],
            ..Default::default()
        };
        let (rcode, tc, answers) = decode(&build(&q, &r, true, 512));
        assert_eq!((rcode, tc), (NOERROR, false));
        assert_eq!(
            answers,
            [
                "x.cluster.local A 10.96.0.10",
                "x.cluster.local CNAME foo.example.com",
                "x.cluster.local PTR web.default.svc.cluster.local",
                "x.cluster.local SRV 0 100 80 web.default.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn too_big_for_udp_is_truncated_and_whole_over_tcp() {
        let q = parse_query(&query(3, "many.default.svc.cluster.local", A, None)).unwrap();
        let answers = (0..40).map(|i| Record { name: q.name.clone(), ttl: 5, data: Data::A(Ipv4Addr::new(10, 244, 0, i)) }).collect();
        let r = Reply { answers, ..Default::default() };
        let (_, tc, a) = decode(&build(&q, &r, true, udp_limit(&q)));
        assert!(tc && a.is_empty());
        let (_, tc, a) = decode(&build(&q, &r, true, 65535));
        assert!(!tc && a.len() == 40);
        // A client announcing a bigger buffer gets it all over UDP.
        let q = parse_query(&query(3, "many.default.svc.cluster.local", A, Some(4096))).unwrap();
        assert_eq!(decode(&build(&q, &r, true, udp_limit(&q))).2.len(), 40);
    }

    #[test]
    fn a_status_reply_echoes_the_id() {
        let r = status_only(&query(0xBEEF, "a", A, None), FORMERR).unwrap();
        assert_eq!(&r[..2], &[0xBE, 0xEF]);
        assert_eq!(r[3] & 0xF, FORMERR);
        assert!(r[2] & 0x80 != 0);
        assert!(status_only(&[1], FORMERR).is_none());
    }
}
