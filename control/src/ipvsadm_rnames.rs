//! Names in ipvsadm's listings without `-n`, as ipvsadm 1.31's
//! `addrport_to_anyname` prints them: `host:service` for IPv4,
//! `[host]:service` for IPv6, where the host is `gethostbyaddr`'s name (the
//! resolver: `/etc/hosts` first — the first name of the first line with
//! the address — then a DNS PTR query to the nameservers of
//! `/etc/resolv.conf`, 127.0.0.1 without one) or the address when there is
//! none, and the service is `getservbyport`'s name for the protocol (the
//! first `/etc/services` line with that port/protocol) or the number. As
//! ipvsadm's 60-byte buffer, the text is cut at 59 bytes. `-n` keeps
//! everything numeric and asks nobody.
//!
//! The DNS query waits `options timeout:` seconds (default 5, as glibc)
//! per nameserver, once; answers are kept for the listing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

/// The first name `hosts` (an `/etc/hosts` text) gives `ip`.
#[must_use]
pub fn host_from_hosts(hosts: &str, ip: IpAddr) -> Option<String> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let addr: IpAddr = words.next()?.parse().ok()?;
        (addr == ip)
            .then(|| words.next().map(String::from))
            .flatten()
    })
}

/// The name `services` (an `/etc/services` text) gives `port` of `proto`
/// ("tcp", "udp").
#[must_use]
pub fn service_name(services: &str, port: u16, proto: &str) -> Option<String> {
    services.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (name, port_proto) = (words.next()?, words.next()?);
        let (p, pr) = port_proto.split_once('/')?;
        (pr == proto && p.parse::<u16>().ok()? == port).then(|| name.to_string())
    })
}

/// Turns numeric `ADDR:PORT` / `[ADDR]:PORT` texts into ipvsadm's names.
pub struct Namer {
    hosts: String,
    services: String,
    dns: Box<dyn Fn(IpAddr) -> Option<String>>,
    cache: HashMap<IpAddr, Option<String>>,
}

impl Namer {
    /// A namer reading this host's `/etc/hosts`, `/etc/services` and
    /// `/etc/resolv.conf`.
    #[must_use]
    pub fn system() -> Self {
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (servers, timeout) = resolv_conf(&resolv);
        Self::with(
            std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            std::fs::read_to_string("/etc/services").unwrap_or_default(),
            Box::new(move |ip| ptr_lookup(&servers, timeout, ip)),
        )
    }

    /// A namer over the given texts and DNS lookup.
    #[must_use]
    pub fn with(
        hosts: String,
        services: String,
        dns: Box<dyn Fn(IpAddr) -> Option<String>>,
    ) -> Self {
        Self {
            hosts,
            services,
            dns,
            cache: HashMap::new(),
        }
    }

    /// The host name of `ip`, or the address.
    pub fn host(&mut self, ip: IpAddr) -> String {
        let name = match self.cache.get(&ip) {
            Some(n) => n.clone(),
            None => {
                let n = host_from_hosts(&self.hosts, ip).or_else(|| (self.dns)(ip));
                self.cache.insert(ip, n.clone());
                n
            }
        };
        name.unwrap_or_else(|| ip.to_string())
    }

    /// `text` (`ADDR:PORT` or `[ADDR]:PORT`) with names for `proto`
    /// ("tcp"/"udp"); unchanged if it is not an address and port.
    pub fn addrport(&mut self, text: &str, proto: &str) -> String {
        let Ok(sa) = text.parse::<SocketAddr>() else {
            return text.to_string();
        };
        let host = self.host(sa.ip());
        let port =
            service_name(&self.services, sa.port(), proto).unwrap_or_else(|| sa.port().to_string());
        let mut s = if sa.is_ipv4() {
            format!("{host}:{port}")
        } else {
            format!("[{host}]:{port}")
        };
        if s.len() > 59 {
            let mut cut = 59;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        s
    }
}

/// Nameservers and per-query timeout of a `resolv.conf` text (glibc's
/// defaults: 127.0.0.1, 5 s).
#[must_use]
pub fn resolv_conf(text: &str) -> (Vec<IpAddr>, Duration) {
    let mut servers = Vec::new();
    let mut timeout = 5;
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => servers.extend(w.next().and_then(|a| a.parse::<IpAddr>().ok())),
            Some("options") => {
                for o in w {
                    if let Some(t) = o.strip_prefix("timeout:").and_then(|t| t.parse().ok()) {
                        timeout = t;
                    }
                }
            }
            _ => {}
        }
    }
    if servers.is_empty() {
        servers.push(IpAddr::from([127, 0, 0, 1]));
    }
    (servers, Duration::from_secs(timeout.clamp(1, 30)))
}

/// The PTR query name of `ip` (`4.3.2.1.in-addr.arpa`, nibbles for IPv6).
#[must_use]
pub fn ptr_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s += &format!("{:x}.{:x}.", b & 0xf, b >> 4);
            }
            s + "ip6.arpa"
        }
    }
}

/// A DNS query for the PTR record of `ip` with message id `id`.
#[must_use]
pub fn ptr_query(ip: IpAddr, id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in ptr_name(ip).split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 12, 0, 1]); // PTR, IN
    q
}

/// Reads a (possibly compressed) name at `at` in `msg`.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..64 {
        let len = usize::from(*msg.get(at)?);
        if len & 0xc0 == 0xc0 {
            let ptr = (len & 0x3f) << 8 | usize::from(*msg.get(at + 1)?);
            end.get_or_insert(at + 2);
            at = ptr;
            continue;
        }
        if len == 0 {
            return Some((name, end.unwrap_or(at + 1)));
        }
        let label = msg.get(at + 1..at + 1 + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(std::str::from_utf8(label).ok()?);
        at += 1 + len;
    }
    None
}

/// The first PTR name in a DNS answer to query `id`.
#[must_use]
pub fn ptr_answer(msg: &[u8], id: u16) -> Option<String> {
    if msg.len() < 12 || msg[0..2] != id.to_be_bytes() || msg[3] & 0x0f != 0 {
        return None;
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let mut at = 12;
    for _ in 0..qd {
        at = read_name(msg, at)?.1 + 4;
    }
    for _ in 0..an {
        let next = read_name(msg, at)?.1;
        let rtype = u16::from_be_bytes([*msg.get(next)?, *msg.get(next + 1)?]);
        let rdlen = usize::from(u16::from_be_bytes([
            *msg.get(next + 8)?,
            *msg.get(next + 9)?,
        ]));
        if rtype == 12 {
            return read_name(msg, next + 10).map(|(n, _)| n);
        }
        at = next + 10 + rdlen;
    }
    None
}

/// Asks each nameserver in turn for the PTR record of `ip`.
fn ptr_lookup(servers: &[IpAddr], timeout: Duration, ip: IpAddr) -> Option<String> {
    for server in servers {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(sock) = UdpSocket::bind(bind) else {
            continue;
        };
        let id = (std::process::id() as u16) ^ 0x5a5a;
        if sock.set_read_timeout(Some(timeout)).is_err()
            || sock.connect((*server, 53)).is_err()
            || sock.send(&ptr_query(ip, id)).is_err()
        {
            continue;
        }
        let mut buf = [0u8; 1500];
        match sock.recv(&mut buf) {
            Ok(n) => {
                if let Some(name) = ptr_answer(&buf[..n], id) {
                    return Some(name);
                }
            }
            Err(_) => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "domain\t\t53/tcp\ndomain\t\t53/udp\nhttp\t\t80/tcp\t\twww\n";
    const HOSTS: &str =
        "127.0.0.1\tlocalhost\n# x\n10.77.0.11 rs1 rs1.lab\n10.77.0.11 other\nfd77::11 rs1-v6\n";

    fn namer() -> Namer {
        Namer::with(
            HOSTS.into(),
            SERVICES.into(),
            Box::new(|ip| (ip == IpAddr::from([10, 77, 0, 12])).then(|| "rs2.dns.example".into())),
        )
    }

    #[test]
    fn addresses_and_ports_get_ipvsadm_names() {
        let mut n = namer();
        assert_eq!(n.addrport("10.77.0.11:80", "tcp"), "rs1:http");
        assert_eq!(n.addrport("10.77.0.12:53", "udp"), "rs2.dns.example:domain");
        assert_eq!(n.addrport("10.77.0.13:80", "udp"), "10.77.0.13:80");
        assert_eq!(n.addrport("[fd77::11]:8080", "tcp"), "[rs1-v6]:8080");
        assert_eq!(n.addrport("[fd77::12]:80", "tcp"), "[fd77::12]:http");
        assert_eq!(n.addrport("not an address", "tcp"), "not an address");
    }

    #[test]
    fn long_names_are_cut_as_ipvsadm_cuts_them() {
        let long = "a".repeat(70);
        let mut n = Namer::with(
            format!("10.0.0.1 {long}\n"),
            String::new(),
            Box::new(|_| None),
        );
        assert_eq!(n.addrport("10.0.0.1:80", "tcp").len(), 59);
    }

    #[test]
    fn ptr_queries_and_answers() {
        assert_eq!(
            ptr_name(IpAddr::from([10, 77, 0, 11])),
            "11.0.77.10.in-addr.arpa"
        );
        assert!(ptr_name("fd77::11".parse().unwrap()).starts_with("1.1.0.0."));
        let q = ptr_query(IpAddr::from([10, 77, 0, 11]), 7);
        // An answer: the question echoed, one PTR answer with a pointer to it.
        let mut a = q.clone();
        a[2] = 0x81;
        a[3] = 0x80;
        a[7] = 1;
        a.extend_from_slice(&[0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 60]);
        let rdata = b"\x03rs1\x03lab\x00";
        a.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        a.extend_from_slice(rdata);
        assert_eq!(ptr_answer(&a, 7).as_deref(), Some("rs1.lab"));
        assert_eq!(ptr_answer(&a, 8), None, "another query's answer");
        a[3] = 0x83; // NXDOMAIN
        assert_eq!(ptr_answer(&a, 7), None);
    }

    #[test]
    fn resolv_conf_defaults_as_glibc() {
        assert_eq!(
            resolv_conf("# none\n"),
            (vec![IpAddr::from([127, 0, 0, 1])], Duration::from_secs(5))
        );
        assert_eq!(
            resolv_conf("nameserver 10.0.0.53\noptions timeout:2 attempts:1\n"),
            (vec![IpAddr::from([10, 0, 0, 53])], Duration::from_secs(2))
        );
    }
}
