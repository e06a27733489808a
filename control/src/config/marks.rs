//! Firewall-mark services in the config: `[[mark]]` rules, which give
//! packets the mark that `iptables -t mangle ... -j MARK --set-mark` gives
//! them on an LVS director, and `[[service]] fwmark = N` (ipvsadm's `-f N`)
//! in place of `vip`. What they mean in the data plane: [`dataplane::marks`];
//! the operator's view: `docs/fwmark.md`.
//!
//! ```toml
//! [[mark]]
//! mark = 1
//! addresses = ["10.0.0.100", "10.0.0.101/32"]  # destination prefixes
//! protocol = "tcp"          # "tcp", "udp"; none: both
//! ports = [80, 443, "8000-8080"]               # none: every port
//!
//! [[service]]
//! fwmark = 1                # ipvsadm -A -f 1
//! ipv6 = false              # ipvsadm -6: the IPv6 service of the mark
//! scheduler = "rr"
//! persistent = 300
//! ```
//!
//! Inside rvsd a firewall-mark service is keyed like any other service, by
//! `(address, protocol)`: protocol 0 and the mark as an address of its
//! family, port 0 ([`service_key`]; `0.0.0.1:0` for mark 1), which no
//! packet has as its destination. So every table keyed by service (options,
//! health checks, counters) holds fwmark services unchanged.
//!
//! Addresses: a host address of a rule (`/32`, `/128`) is answered for in
//! ARP/ND as a VIP is, and claimed as one ([`super::claims`]: never a real
//! server's, a local address or an interface's). A wider prefix is only
//! matched (traffic a router sends here); it may not contain a real
//! server, a local address or an interface address, whose traffic it
//! would take.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dataplane::acl::Prefix;
use dataplane::marks::{MarkRule, MarkRules, FWMARK_PROTO};
use serde::Deserialize;
use toml::Spanned;

use super::access::parse_any_prefix;
use super::claims::{Claims, Use};
use super::validate::Ctx;
use super::{ConfigError, InterfaceConfig, ServiceConfig};

/// Most `[[mark]]` rules a config may have (each a short walk on a miss).
pub const RULES_MAX: usize = 256;

/// `[[mark]]` as serde sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMark {
    pub mark: Spanned<i64>,
    pub addresses: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub protocol: Option<Spanned<String>>,
    #[serde(default)]
    pub ports: Vec<Spanned<toml::Value>>,
}

/// One `[[mark]]` rule, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkConfig {
    /// The mark given (1..=4294967295, as ipvsadm's `-f`).
    pub mark: u32,
    /// Destination prefixes.
    pub addresses: Vec<Prefix>,
    /// 6, 17, or 0 for both.
    pub proto: u8,
    /// Inclusive destination port ranges; empty: every port.
    pub ports: Vec<(u16, u16)>,
}

impl MarkConfig {
    /// The data plane's rule.
    #[must_use]
    pub fn rule(&self) -> MarkRule {
        MarkRule {
            mark: self.mark,
            prefixes: self.addresses.clone(),
            proto: self.proto,
            ports: self.ports.clone(),
        }
    }

    /// The host addresses (`/32`, `/128`) among its prefixes.
    pub fn hosts(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addresses
            .iter()
            .filter(|p| p.len() == if p.addr().is_v4() { 32 } else { 128 })
            .map(|p| p.addr().ip())
    }
}

/// The data plane's rules, in file order.
#[must_use]
pub fn rules(marks: &[MarkConfig]) -> MarkRules {
    MarkRules {
        rules: marks.iter().map(MarkConfig::rule).collect(),
    }
}

/// The key firewall-mark service `mark` is stored under (see the module doc).
#[must_use]
pub fn service_key(mark: u32, v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::new(Ipv6Addr::from(u128::from(mark)).into(), 0)
    } else {
        SocketAddr::new(Ipv4Addr::from(mark).into(), 0)
    }
}

/// The mark and family (`true`: IPv6) of a firewall-mark service's key,
/// or `None` for any other service.
#[must_use]
pub fn mark_of(vip: SocketAddr, proto: u8) -> Option<(u32, bool)> {
    dataplane::marks::mark_of(
        dataplane::session::Endpoint::at(vip.ip().into(), vip.port()),
        proto,
    )
}

/// True for the key of a firewall-mark service.
#[must_use]
pub fn is_fwmark(proto: u8) -> bool {
    proto == FWMARK_PROTO
}

/// The `[[mark]]` rules, checked.
pub(super) fn validate(cx: &Ctx<'_>, raw: &[RawMark]) -> Result<Vec<MarkConfig>, ConfigError> {
    let mut out = Vec::new();
    for (k, m) in raw.iter().enumerate() {
        if k == RULES_MAX {
            return Err(cx.at(
                &m.mark,
                format!("at most {RULES_MAX} [[mark]] rules (each is tried in turn on a miss)"),
            ));
        }
        let mark = u32::try_from(*m.mark.get_ref())
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                cx.at(
                    &m.mark,
                    format!("mark must be 1..=4294967295, not {}", m.mark.get_ref()),
                )
            })?;
        if m.addresses.get_ref().is_empty() {
            return Err(cx.at(
                &m.addresses,
                "a [[mark]] rule needs addresses (destination prefixes; 0.0.0.0/0 for all)",
            ));
        }
        let mut addresses = Vec::new();
        for a in m.addresses.get_ref() {
            let p = parse_any_prefix(a.get_ref()).map_err(|e| cx.at(a, e))?;
            if !addresses.contains(&p) {
                addresses.push(p);
            }
        }
        let proto = match &m.protocol {
            None => 0,
            Some(p) => match p.get_ref().as_str() {
                "tcp" => 6,
                "udp" => 17,
                other => {
                    return Err(cx.at(
                        p,
                        format!("protocol must be \"tcp\" or \"udp\" (none: both), not {other:?}"),
                    ))
                }
            },
        };
        let mut ports = Vec::new();
        for p in &m.ports {
            ports.push(port_range(p.get_ref()).map_err(|e| cx.at(p, e))?);
        }
        out.push(MarkConfig {
            mark,
            addresses,
            proto,
            ports,
        });
    }
    Ok(out)
}

/// `80` or `"8000-8080"`.
fn port_range(v: &toml::Value) -> Result<(u16, u16), String> {
    let port = |n: i64| {
        u16::try_from(n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("a port must be 1..=65535, not {n}"))
    };
    match v {
        toml::Value::Integer(n) => port(*n).map(|p| (p, p)),
        toml::Value::String(s) => {
            let (lo, hi) = s.split_once('-').unwrap_or((s, s));
            let parse = |t: &str| {
                t.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("ports are 80 or \"8000-8080\", not {s:?}"))
                    .and_then(port)
            };
            let (lo, hi) = (parse(lo)?, parse(hi)?);
            if lo > hi {
                return Err(format!("port range {s:?} runs backwards"));
            }
            Ok((lo, hi))
        }
        other => Err(format!("ports are 80 or \"8000-8080\", not {other}")),
    }
}

/// The rules' host addresses claimed as VIPs (see [`super::claims`]),
/// and no wider prefix over a real server, a local address or an
/// interface address.
pub(super) fn check_claims(
    cx: &Ctx<'_>,
    raw: &[RawMark],
    marks: &[MarkConfig],
    claims: &mut Claims,
    interfaces: &[InterfaceConfig],
    services: &[ServiceConfig],
) -> Result<(), ConfigError> {
    for (r, m) in raw.iter().zip(marks) {
        for (span, p) in r.addresses.get_ref().iter().zip(&m.addresses) {
            let host = p.len() == if p.addr().is_v4() { 32 } else { 128 };
            if host {
                claims
                    .claim(p.addr().ip(), Use::Vip, format!("of mark {}", m.mark))
                    .map_err(|e| cx.at(span, e))?;
            } else if let Some(e) = covered(p, interfaces, services) {
                return Err(cx.at(span, format!("mark {} prefix {p} {e}", m.mark)));
            }
        }
    }
    Ok(())
}

/// What of the appliance's or its servers' addresses `p` contains, if any.
#[must_use]
pub fn covered(
    p: &Prefix,
    interfaces: &[InterfaceConfig],
    services: &[ServiceConfig],
) -> Option<String> {
    let inside = |ip: IpAddr| p.contains(ip.into());
    for i in interfaces {
        if inside(i.addr.into()) || i.addr6.is_some_and(|(a, _)| inside(a.into())) {
            return Some(format!(
                "contains the interface address of {} (its own traffic would be balanced)",
                i.name
            ));
        }
    }
    for s in services {
        if let Some(l) = s.local_addresses.iter().find(|l| inside(**l)) {
            return Some(format!(
                "contains the local address {l} (replies to it would be taken for new connections)"
            ));
        }
        if let Some(r) = s.real_servers.iter().find(|r| inside(r.addr.ip())) {
            return Some(format!(
                "contains the real server {} (its traffic would be taken)",
                r.addr
            ));
        }
    }
    None
}

/// The mark rule prefix wider than a host that contains `ip`, said in
/// words (an address rvsd may not use as a real server or local address:
/// the rule would take its traffic), if any.
#[must_use]
pub fn prefix_over(marks: &[MarkConfig], ip: IpAddr) -> Option<String> {
    marks.iter().find_map(|m| {
        m.addresses
            .iter()
            .find(|p| p.len() < if p.addr().is_v4() { 32 } else { 128 } && p.contains(ip.into()))
            .map(|p| {
                format!(
                    "it is inside prefix {p} of mark {} (its traffic would be taken)",
                    m.mark
                )
            })
    })
}

/// `[[mark]]` tables for `--export-config`.
pub fn export(out: &mut String, marks: &[MarkConfig]) {
    for m in marks {
        out.push_str("\n[[mark]]\n");
        let _ = writeln!(out, "mark = {}", m.mark);
        let addrs: Vec<String> = m.addresses.iter().map(|p| format!("\"{p}\"")).collect();
        let _ = writeln!(out, "addresses = [{}]", addrs.join(", "));
        match m.proto {
            6 => out.push_str("protocol = \"tcp\"\n"),
            17 => out.push_str("protocol = \"udp\"\n"),
            _ => {}
        }
        if !m.ports.is_empty() {
            let ports: Vec<String> = m
                .ports
                .iter()
                .map(|&(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("\"{lo}-{hi}\"")
                    }
                })
                .collect();
            let _ = writeln!(out, "ports = [{}]", ports.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_data_planes() {
        assert_eq!(service_key(1, false).to_string(), "0.0.0.1:0");
        assert_eq!(service_key(7, true).to_string(), "[::7]:0");
        assert_eq!(mark_of(service_key(7, true), 0), Some((7, true)));
        assert_eq!(
            mark_of(service_key(u32::MAX, false), 0),
            Some((u32::MAX, false))
        );
        assert_eq!(mark_of(service_key(1, false), 6), None);
        assert_eq!(mark_of("10.0.0.1:80".parse().unwrap(), 0), None);
    }

    #[test]
    fn port_ranges() {
        assert_eq!(port_range(&toml::Value::Integer(80)), Ok((80, 80)));
        assert_eq!(port_range(&"8000-8080".into()), Ok((8000, 8080)));
        assert_eq!(port_range(&"443".into()), Ok((443, 443)));
        assert!(port_range(&"8080-8000".into())
            .unwrap_err()
            .contains("backwards"));
        assert!(port_range(&toml::Value::Integer(0)).is_err());
        assert!(port_range(&toml::Value::Integer(65536)).is_err());
        assert!(port_range(&"http".into()).is_err());
    }
}
