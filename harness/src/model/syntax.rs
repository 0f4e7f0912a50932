//! The shapes of values a scenario passes on to other programs — an HTTP path, an image
//! reference, an address range — checked here, so what reaches a node or a manifest is data of a
//! known form. (Quoting still happens where a value meets a shell: `lab::shq`.)

use ipnet::Ipv4Net;

/// Labs take /24 subnets out of this range; nothing else of a lab may overlap it.
pub const LAB_POOL: &str = "10.213.0.0/16";

/// An HTTP path with an optional query, as RFC 3986 allows it: `/` then path characters
/// (unreserved, sub-delims, `:`, `@`, `/`), `?` and more of them for the query, `%XX` escapes.
/// No spaces, quotes, backslashes, fragments or control characters. Err says what is wrong.
pub fn url_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err("does not start with /".into());
    }
    if s.len() > 200 {
        return Err("is longer than 200 characters".into());
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'%' => {
                if !(i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                    return Err(format!("has a % at {} that is not followed by two hex digits", i + 1));
                }
                i += 2;
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => {}
            // RFC 3986's unreserved and sub-delims, but for the single quote: a path crosses into
            // nodes inside shell words, and %27 says the same to a server.
            b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@' | b'/' | b'?' => {
            }
            _ => return Err(format!("has {:?}, which a URL path must percent-encode", c as char)),
        }
        i += 1;
    }
    Ok(())
}

/// A Docker image reference: `[host[:port]/]path[:tag][@algorithm:hex]`, lowercase path
/// components joined by `.`, `_`, `__` or dashes, a tag of word characters, dots and dashes.
pub fn image_ref(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 255 {
        return Err("is empty or longer than 255 characters".into());
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let (alg, hex) = d.split_once(':').ok_or("has a digest without algorithm:hex")?;
        if alg.is_empty() || !alg.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+._-".contains(&c)) {
            return Err(format!("has a digest algorithm {alg:?} of the wrong form"));
        }
        if hex.len() < 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err("has a digest that is not 32 or more hex digits".into());
        }
    }
    // A tag follows the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
            && t.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
        if !ok {
            return Err(format!("has a tag {t:?} of the wrong form (letters, digits, _ . -; at most 128)"));
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first part with a dot or a port, or `localhost`, is a registry host.
    if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (h, port) = match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        let label_ok = |l: &str| {
            !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') && !l.starts_with('-') && !l.ends_with('-')
        };
        if !h.split('.').all(label_ok) || port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return Err(format!("has a registry {host:?} of the wrong form"));
        }
    }
    for part in &parts {
        if !path_component(part) {
            return Err(format!("has a name part {part:?} of the wrong form (lowercase letters and digits, joined by . _ __ or -)"));
        }
    }
    Ok(())
}

fn path_component(p: &str) -> bool {
    let b = p.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_lowercase() || c.is_ascii_digit() => i += 1,
            b'.' | b'_' => {
                // `.`, `_` or `__`, between alphanumerics.
                let n = if b[i] == b'_' && b.get(i + 1) == Some(&b'_') { 2 } else { 1 };
                if !b.get(i + n).is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
                    return false;
                }
                i += n;
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
                if !b.get(i).is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// An IPv4 network in CIDR form whose address is the network's own (no host bits).
pub fn cidr(s: &str, min_prefix: u8, max_prefix: u8) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s.trim().parse().map_err(|_| "is not an IPv4 CIDR such as 10.244.0.0/16".to_string())?;
    if !(min_prefix..=max_prefix).contains(&net.prefix_len()) {
        return Err(format!("has a /{} prefix; use /{min_prefix} to /{max_prefix}", net.prefix_len()));
    }
    if net.trunc() != net {
        return Err(format!("has host bits set; the network is {}", net.trunc()));
    }
    Ok(net)
}

/// Do two networks share any address?
pub fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths() {
        for ok in ["/", "/big", "/?a=1&b=2", "/a/b.c~d_e-f", "/%20x", "/p;q=$(x)"] {
            assert_eq!(url_path(ok), Ok(()), "{ok}");
        }
        for bad in ["big", "/a b", "/a\"b", "/a`b", "/a\\b", "/a#f", "/%2", "/a|b", "/a<b", "/a\nb", "/a{b}"] {
            assert!(url_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_references() {
        for ok in [
            "web",
            "nginx:1.25",
            "library/nginx",
            "my.registry:5000/team/app:v1.2-rc_3",
            "localhost/app",
            "a__b/c-d--e.f",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(image_ref(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Web", "web:", "web:-x", "a b", "x\"; rm -rf /", "$(id)", "-web", "web-", "a//b", "a:b/c:d:e", "app@sha256:12"] {
            assert!(image_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidrs_and_overlaps() {
        let a = cidr("10.244.0.0/16", 8, 24).unwrap();
        assert!(cidr("10.244.1.0/16", 8, 24).unwrap_err().contains("host bits"));
        assert!(cidr("10.244.0.0/28", 8, 24).is_err());
        assert!(cidr("nope", 8, 24).is_err());
        let b = cidr("10.244.128.0/24", 8, 24).unwrap();
        assert!(overlap(&a, &b) && overlap(&b, &a));
        assert!(!overlap(&a, &cidr("10.32.0.0/16", 8, 24).unwrap()));
    }
}
