//! Firewall marks without a firewall: the classifier that gives a packet
//! the mark of a firewall-mark service (`ipvsadm -A -f MARK`).
//!
//! On an LVS director the mark comes from netfilter (`iptables -t mangle
//! -A PREROUTING -d VIP -p tcp -m multiport --dports 80,443 -j MARK
//! --set-mark 1`), and IPVS looks a packet's service up by `(af, mark)`
//! when `(proto, vip, port)` finds none. rvs has no netfilter: the same
//! rules are its own configuration (`[[mark]]` in the TOML, see
//! `docs/fwmark.md`), a [`MarkRule`] each: destination prefixes, an
//! optional protocol, optional destination port ranges, and the mark.
//!
//! **First match wins**, in file order (as rvs's ACLs; iptables' `MARK`
//! does not end the chain, so there the *last* match wins: a converted
//! rule set puts its more specific rules first).
//!
//! Where it runs: only on a packet that starts a flow and found no VIP
//! service at its destination (the slow path's miss, see
//! [`crate::pipeline`]); a packet of a VIP service and every packet of an
//! existing session never reach it. A short linear walk over an immutable
//! slice: no lock, no allocation.
//!
//! A firewall-mark service lives in [`crate::tables::Tables::services`] like
//! any other, under a key that no packet's destination has: protocol 0 (the
//! kernel's `IPPROTO_IP` of a fwmark template) and as its "VIP" the mark
//! itself as an address of the service's family, port 0
//! ([`service_vip`]; the kernel's `<IPPROTO_IP, caddr, 0, fwmark, 0>`
//! template key does the same). So its persistence templates are keyed by
//! `(client, mark, 0)`: one client meets the same real server over every
//! port and protocol the mark groups (the 80 + 443 sticky case).

use crate::acl::Prefix;
use crate::addr::Addr;
use crate::session::Endpoint;

/// The protocol number firewall-mark services are stored under (the
/// kernel's `IPPROTO_IP`, which its fwmark templates carry).
pub const FWMARK_PROTO: u8 = 0;

/// The key a firewall-mark service is stored under: the mark as an address
/// of the service's family (IPv4 `0.0.0.1` for mark 1, IPv6 `::1`), port 0.
#[must_use]
pub fn service_vip(mark: u32, v6: bool) -> Endpoint {
    let ip = if v6 {
        let mut a = [0; 16];
        a[12..].copy_from_slice(&mark.to_be_bytes());
        Addr::v6(a)
    } else {
        Addr::v4(mark.to_be_bytes())
    };
    Endpoint::at(ip, 0)
}

/// The mark and family (`true`: IPv6) of a firewall-mark service's key
/// ([`service_vip`]), or `None` for a key that is not one.
#[must_use]
pub fn mark_of(vip: Endpoint, proto: u8) -> Option<(u32, bool)> {
    if proto != FWMARK_PROTO || vip.port != 0 {
        return None;
    }
    let o = vip.ip.octets();
    let mark = u32::from_be_bytes([o[12], o[13], o[14], o[15]]);
    if mark == 0 {
        return None;
    }
    if vip.ip.is_v4() {
        Some((mark, false))
    } else if o[..12] == [0; 12] {
        Some((mark, true))
    } else {
        None
    }
}

/// One rule: packets to one of `prefixes`, of `proto` (0: TCP and UDP),
/// to a port in one of `ports` (none: every port) get `mark`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRule {
    /// The mark given (never 0).
    pub mark: u32,
    /// Destination prefixes (either family).
    pub prefixes: Vec<Prefix>,
    /// IP protocol (6, 17), or 0 for both.
    pub proto: u8,
    /// Inclusive destination port ranges; empty: every port.
    pub ports: Vec<(u16, u16)>,
}

impl MarkRule {
    /// True if a packet of `proto` to `dst` matches.
    #[inline]
    #[must_use]
    pub fn matches(&self, dst: Endpoint, proto: u8) -> bool {
        (self.proto == 0 || self.proto == proto)
            && (self.ports.is_empty()
                || self
                    .ports
                    .iter()
                    .any(|&(lo, hi)| (lo..=hi).contains(&dst.port)))
            && self.prefixes.iter().any(|p| p.contains(dst.ip))
    }
}

/// Every rule, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MarkRules {
    /// The rules; the first that matches gives the mark.
    pub rules: Vec<MarkRule>,
}

impl MarkRules {
    /// The mark of a packet of `proto` to `dst`: the first matching rule's.
    #[inline]
    #[must_use]
    pub fn classify(&self, dst: Endpoint, proto: u8) -> Option<u32> {
        self.rules
            .iter()
            .find(|r| r.matches(dst, proto))
            .map(|r| r.mark)
    }

    /// True when there is no rule.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True if some rule names the host address `ip` (a /32 or /128
    /// prefix): an address the appliance answers ARP/ND for, as for a VIP.
    /// Wider prefixes are reached by routing and never answered for.
    #[must_use]
    pub fn has_host(&self, ip: Addr) -> bool {
        let host = if ip.is_v4() { 32 } else { 128 };
        self.rules
            .iter()
            .any(|r| r.prefixes.iter().any(|p| p.len() == host && p.contains(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Prefix {
        let (a, l) = text.split_once('/').unwrap();
        Prefix::new(
            Addr::from(a.parse::<std::net::IpAddr>().unwrap()),
            l.parse().unwrap(),
        )
        .unwrap()
    }

    fn ep(text: &str) -> Endpoint {
        let s: std::net::SocketAddr = text.parse().unwrap();
        Endpoint::at(Addr::from(s.ip()), s.port())
    }

    #[test]
    fn first_match_wins_by_prefix_protocol_and_port() {
        let rules = MarkRules {
            rules: vec![
                MarkRule {
                    mark: 7,
                    prefixes: vec![p("10.0.0.100/32")],
                    proto: 17,
                    ports: vec![],
                },
                MarkRule {
                    mark: 1,
                    prefixes: vec![p("10.0.0.100/32"), p("10.0.1.0/24")],
                    proto: 6,
                    ports: vec![(80, 80), (443, 443), (8000, 8080)],
                },
                MarkRule {
                    mark: 2,
                    prefixes: vec![p("10.0.0.0/16"), p("fd00::/64")],
                    proto: 0,
                    ports: vec![],
                },
            ],
        };
        assert_eq!(rules.classify(ep("10.0.0.100:80"), 6), Some(1));
        assert_eq!(rules.classify(ep("10.0.0.100:443"), 6), Some(1));
        assert_eq!(rules.classify(ep("10.0.1.9:8080"), 6), Some(1));
        assert_eq!(
            rules.classify(ep("10.0.0.100:53"), 17),
            Some(7),
            "first rule"
        );
        assert_eq!(
            rules.classify(ep("10.0.0.100:22"), 6),
            Some(2),
            "port outside 1"
        );
        assert_eq!(rules.classify(ep("10.0.1.9:8081"), 6), Some(2));
        assert_eq!(rules.classify(ep("[fd00::5]:80"), 6), Some(2));
        assert_eq!(rules.classify(ep("10.1.0.1:80"), 6), None);
        assert_eq!(rules.classify(ep("[fd00:1::5]:80"), 6), None);
        // An IPv4 prefix never matches an IPv6 destination.
        assert_eq!(
            MarkRules {
                rules: vec![MarkRule {
                    mark: 3,
                    prefixes: vec![p("0.0.0.0/0")],
                    proto: 0,
                    ports: vec![]
                }]
            }
            .classify(ep("[::1]:80"), 6),
            None
        );
        assert!(rules.has_host(Addr::v4([10, 0, 0, 100])));
        assert!(
            !rules.has_host(Addr::v4([10, 0, 1, 9])),
            "inside a /24 only"
        );
    }

    #[test]
    fn service_keys_round_trip_and_never_match_a_packet() {
        for (mark, v6) in [(1, false), (0xffff_ffff, false), (1, true), (65_536, true)] {
            let vip = service_vip(mark, v6);
            assert_eq!(mark_of(vip, FWMARK_PROTO), Some((mark, v6)));
            assert_eq!(vip.ip.is_v4(), !v6);
            assert_eq!(mark_of(vip, 6), None, "a TCP service is no fwmark one");
        }
        assert_eq!(service_vip(1, false).ip.ip().to_string(), "0.0.0.1");
        assert_eq!(
            mark_of(ep("10.0.0.1:0"), FWMARK_PROTO),
            Some((0x0a00_0001, false))
        );
        assert_eq!(
            mark_of(ep("0.0.0.0:0"), FWMARK_PROTO),
            None,
            "mark 0 is none"
        );
        assert_eq!(mark_of(ep("[fd00::1]:0"), FWMARK_PROTO), None);
    }
}
