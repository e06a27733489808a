//! Host and service names on ipvsadm's command line (`-t localhost:http`,
//! `-r rs1:www`), resolved as ipvsadm 1.31's `parse_service` does: an IPv6
//! address in brackets, or an IPv4 address or a host name (IPv4, the
//! resolver's first answer: `/etc/hosts`, then DNS), then `:port` as a
//! number or a service name of the protocol (`/etc/services`). What cannot
//! be resolved is ipvsadm's "illegal ... address[:port] specified".
//!
//! Words without a letter are never sent to the resolver (a typo such as
//! `10.77.0.300` is refused at once instead of waiting on DNS).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// The port a service name has for `proto` ("tcp", "udp") in an
/// `/etc/services` text (names and aliases).
#[must_use]
pub fn service_port(services: &str, name: &str, proto: &str) -> Option<u16> {
    services.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (primary, port_proto) = (words.next()?, words.next()?);
        let (port, p) = port_proto.split_once('/')?;
        (p == proto && (primary == name || words.any(|alias| alias == name)))
            .then(|| port.parse().ok())
            .flatten()
    })
}

/// Resolves `text` (`host[:port]` or `[v6][:port]`) to a numeric address
/// and port. `port` is `None` when the text has none.
///
/// `None` when the address or the port cannot be resolved.
#[must_use]
pub fn resolve(text: &str, proto: &str) -> Option<(IpAddr, Option<u16>)> {
    let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
    resolve_with(text, proto, &services, &|host| {
        (host, 0).to_socket_addrs().ok()?.find_map(|a| match a {
            SocketAddr::V4(v4) => Some(*v4.ip()),
            SocketAddr::V6(_) => None,
        })
    })
}

/// [`resolve`] with the services text and the host lookup given.
///
/// `None` when the address or the port cannot be resolved.
#[must_use]
pub fn resolve_with(
    text: &str,
    proto: &str,
    services: &str,
    lookup: &dyn Fn(&str) -> Option<Ipv4Addr>,
) -> Option<(IpAddr, Option<u16>)> {
    if text.is_empty() || text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = |p: &str| -> Option<u16> {
        p.parse::<u16>()
            .ok()
            .or_else(|| service_port(services, p, proto))
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']')?;
        let ip: Ipv6Addr = addr.parse().ok()?;
        let p = tail.strip_prefix(':')?;
        return Some((IpAddr::V6(ip), Some(port(p)?)));
    }
    if let Ok(ip) = text.parse::<Ipv6Addr>() {
        return Some((IpAddr::V6(ip), None));
    }
    let (host, p) = match text.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (text, None),
    };
    let ip = match host.parse::<Ipv4Addr>() {
        Ok(ip) => ip,
        Err(_) if host.bytes().any(|b| b.is_ascii_alphabetic()) => lookup(host)?,
        Err(_) => return None,
    };
    let port = match p {
        Some(p) => Some(port(p)?),
        None => None,
    };
    Some((IpAddr::V4(ip), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "\
# comment
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
https\t\t443/tcp
";

    fn lookup(host: &str) -> Option<Ipv4Addr> {
        match host {
            "localhost" => Some(Ipv4Addr::LOCALHOST),
            "rs1" => Some(Ipv4Addr::new(10, 77, 0, 11)),
            _ => None,
        }
    }

    fn r(text: &str, proto: &str) -> Option<(IpAddr, Option<u16>)> {
        resolve_with(text, proto, SERVICES, &lookup)
    }

    #[test]
    fn names_resolve_as_ipvsadm_resolves_them() {
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        assert_eq!(
            r("localhost:http", "tcp"),
            Some((v4(127, 0, 0, 1), Some(80)))
        );
        assert_eq!(r("rs1:www", "tcp"), Some((v4(10, 77, 0, 11), Some(80))));
        assert_eq!(
            r("10.0.0.1:domain", "udp"),
            Some((v4(10, 0, 0, 1), Some(53)))
        );
        assert_eq!(r("10.0.0.1", "tcp"), Some((v4(10, 0, 0, 1), None)));
        assert_eq!(
            r("[fd77::1]:https", "tcp"),
            Some(("fd77::1".parse().unwrap(), Some(443)))
        );
        assert_eq!(
            r("fd77::1", "tcp"),
            Some(("fd77::1".parse().unwrap(), None))
        );
        // Refused: unknown names, numbers that are not addresses, ports out of range.
        for bad in [
            "nosuchhost:80",
            "10.77.0.300:80",
            "80",
            "10.0.0.1:https",
            "10.0.0.1:70000",
            "[fd77::1]",
            "[fd77::1]80",
        ] {
            assert_eq!(r(bad, "udp"), None, "{bad}");
        }
    }
}
