//! The appliance's layer-3 model, as `ip` shows it: addresses added at run
//! time ([`AddressConfig`]), static routes ([`RouteConfig`], from
//! `[[route]]` or `rvsadm route add`), and [`route_list`], the one place
//! that turns interfaces, addresses and static routes into routes:
//! connected subnets (`proto kernel scope link`), each interface's gateway
//! (`default via`), static routes, and a local /32 per own address.
//! [`routes`] builds the data plane's longest-prefix-match table
//! ([`dataplane::route`]) from that list. The checks here ([`check_route`],
//! [`check_vlan`], the parsers) serve the config file and
//! `rvsadm addr|route|link` alike; errors read like iproute2's
//! ([`IpError`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::addr::Addr;
use dataplane::route::{NextHop, Route, RouteTable, Routes};
use serde::{Deserialize, Serialize};

use super::{Config, InterfaceConfig};

/// An address added to an interface at run time (`rvsadm addr add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressConfig {
    /// Interface name.
    pub dev: String,
    /// The address.
    pub addr: IpAddr,
    /// Prefix length of its subnet.
    pub len: u8,
}

/// A static route (`[[route]]`, `rvsadm route add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteConfig {
    /// Destination prefix (host bits clear).
    pub prefix: IpAddr,
    /// Prefix length.
    pub len: u8,
    /// Gateway, or `None` for a route on the interface's link.
    pub via: Option<IpAddr>,
    /// Egress interface name.
    pub dev: String,
}

/// A refused `link|addr|route|neigh` command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    /// No interface of that name.
    #[error("Cannot find device \"{0}\"")]
    NoDevice(String),
    /// Not an `ADDRESS/LEN` (or `default` where allowed).
    #[error("any valid prefix is expected rather than \"{0}\"")]
    BadPrefix(String),
    /// Not an IP address.
    #[error("invalid address \"{0}\"")]
    BadAddress(String),
    /// Not a MAC address.
    #[error("\"{0}\" is invalid lladdr")]
    BadLladdr(String),
    /// A route prefix with host bits set.
    #[error("Invalid prefix for given prefix length: {0} (did you mean {1}?)")]
    HostBits(String, String),
    /// What is to be added exists.
    #[error("RTNETLINK answers: File exists ({0})")]
    Exists(String),
    /// What is to be deleted does not exist.
    #[error("RTNETLINK answers: No such process ({0})")]
    Missing(String),
    /// The gateway is on no connected subnet (of the device given).
    #[error("Nexthop has invalid gateway: {0} is on no connected subnet{1}")]
    BadGateway(IpAddr, String),
    /// Not allowed on what the config file owns.
    #[error("{0}")]
    Refused(String),
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
}

/// `ADDRESS/LEN` (a host route, `/32` or `/128`, when no length is
/// given), or `default` when `allow_default` (IPv4's `0.0.0.0/0`; see
/// [`default_for`] for an IPv6 gateway's).
///
/// # Errors
/// [`IpError::BadPrefix`].
pub fn parse_prefix(s: &str, allow_default: bool) -> Result<(IpAddr, u8), IpError> {
    if allow_default && (s == "default" || s == "all") {
        return Ok((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
    }
    let bad = || IpError::BadPrefix(s.to_string());
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
        None => (s, None),
    };
    let a: IpAddr = a.parse().map_err(|_| bad())?;
    if let IpAddr::V6(v6) = a {
        if v6.to_ipv4_mapped().is_some() {
            return Err(bad());
        }
    }
    let max = max_len(a);
    let l = l.unwrap_or(max);
    if l > max {
        return Err(bad());
    }
    Ok((a, l))
}

/// `default` as parsed is IPv4's; with an IPv6 gateway it is `::/0`.
#[must_use]
pub fn default_for((prefix, len): (IpAddr, u8), via: Option<IpAddr>) -> (IpAddr, u8) {
    match via {
        Some(IpAddr::V6(_)) if len == 0 && prefix == IpAddr::V4(Ipv4Addr::UNSPECIFIED) => {
            (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
        }
        _ => (prefix, len),
    }
}

/// Longest prefix of `a`'s family (32 or 128).
fn max_len(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

/// The IPv4 netmask of prefix length `len`.
#[must_use]
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

fn network(a: IpAddr, len: u8) -> IpAddr {
    Addr::from(a).masked(len).ip()
}

fn covers(net: IpAddr, len: u8, a: IpAddr) -> bool {
    net.is_ipv4() == a.is_ipv4() && network(net, len) == network(a, len)
}

/// Where a route came from, as `ip route` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteOrigin {
    /// A connected subnet of an interface address (`proto kernel scope link`).
    Connected,
    /// An interface's `gateway` (`default via ... proto boot`).
    Gateway,
    /// `[[route]]` or `rvsadm route add` (`proto static`).
    Static,
    /// An own address (`table local`, `scope host`).
    Local,
}

/// One route with everything `rvsadm route show` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteView {
    /// Destination prefix.
    pub prefix: IpAddr,
    /// Prefix length.
    pub len: u8,
    /// Gateway, if any.
    pub via: Option<IpAddr>,
    /// Interface name.
    pub dev: String,
    /// Port index of the interface.
    pub port: u16,
    /// Where it came from.
    pub origin: RouteOrigin,
    /// Preferred source (the interface address a connected route belongs to).
    pub src: Option<IpAddr>,
}

/// Checks a new 802.1Q sub-interface `name` (VLAN `id` on `link`) against
/// `interfaces` (for `[[interface]] link/vlan` and `link add ... type
/// vlan`): the parent is a DPDK port (not itself a VLAN: no 802.1ad), the
/// id is 1..=4094, and no other sub-interface of that port has it. Returns
/// the id.
///
/// # Errors
/// [`IpError::NoDevice`] for an unknown parent, [`IpError::Usage`] for a
/// parent that is a sub-interface, [`IpError::Refused`] for a bad or taken id.
pub fn check_vlan(
    interfaces: &[InterfaceConfig],
    name: &str,
    link: &str,
    id: i64,
) -> Result<u16, IpError> {
    let Some(parent) = interfaces.iter().find(|i| i.name == link) else {
        return Err(IpError::NoDevice(link.into()));
    };
    if let Some(v) = &parent.vlan {
        return Err(IpError::Usage(format!("{link} is itself VLAN {} on {}: stacked VLANs (802.1ad, QinQ) are not supported; use a DPDK port as link", v.id, v.link)));
    }
    let id = u16::try_from(id)
        .ok()
        .filter(|id| (1..=dataplane::vlan::VID_MAX).contains(id))
        .ok_or_else(|| {
            IpError::Refused(format!("vlan id {id} is invalid: 802.1Q ids are 1..4094"))
        })?;
    if let Some(other) = interfaces.iter().find(|i| {
        i.vlan
            .as_ref()
            .is_some_and(|v| v.link == link && v.id == id)
    }) {
        return Err(IpError::Refused(format!(
            "VLAN {id} on {link} already exists (interface {:?}); {name:?} needs another id",
            other.name
        )));
    }
    Ok(id)
}

/// The port position of interface `dev`.
pub fn port_of(interfaces: &[InterfaceConfig], dev: &str) -> Option<u16> {
    interfaces
        .iter()
        .position(|i| i.name == dev)
        .and_then(|p| u16::try_from(p).ok())
}

/// Every route of the appliance, in `ip route` order: connected subnets,
/// gateways, static routes, then the local /32s (and /128s); IPv4 and IPv6
/// side by side (each interface's `address6` and `gateway6` too). A route whose prefix an
/// earlier one already has is left out (an added address in an existing
/// subnet adds no second connected route).
#[must_use]
pub fn route_list(
    interfaces: &[InterfaceConfig],
    addresses: &[AddressConfig],
    statics: &[RouteConfig],
) -> Vec<RouteView> {
    let mut out: Vec<RouteView> = Vec::new();
    let mut push = |v: RouteView| {
        let dup = out.iter().any(|o| {
            (o.origin == RouteOrigin::Local) == (v.origin == RouteOrigin::Local)
                && o.prefix == v.prefix
                && o.len == v.len
        });
        // (IpAddr equality keeps the families apart: 0.0.0.0/0 is not ::/0.)
        if !dup {
            out.push(v);
        }
    };
    let own = interfaces
        .iter()
        .map(|i| (i.name.as_str(), IpAddr::V4(i.addr), i.prefix_len))
        .chain(
            interfaces
                .iter()
                .filter_map(|i| i.addr6.map(|(a, l)| (i.name.as_str(), IpAddr::V6(a), l))),
        )
        .chain(addresses.iter().map(|a| (a.dev.as_str(), a.addr, a.len)));
    let own: Vec<_> = own
        .filter_map(|(dev, a, l)| port_of(interfaces, dev).map(|p| (dev, p, a, l)))
        .collect();
    for &(dev, port, a, l) in &own {
        push(RouteView {
            prefix: network(a, l),
            len: l,
            via: None,
            dev: dev.into(),
            port,
            origin: RouteOrigin::Connected,
            src: Some(a),
        });
    }
    for (p, i) in interfaces.iter().enumerate() {
        let Ok(port) = u16::try_from(p) else { continue };
        let gateways = [
            i.gateway
                .map(|g| (IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V4(g))),
            i.gateway6
                .map(|g| (IpAddr::V6(Ipv6Addr::UNSPECIFIED), IpAddr::V6(g))),
        ];
        for (prefix, gw) in gateways.into_iter().flatten() {
            push(RouteView {
                prefix,
                len: 0,
                via: Some(gw),
                dev: i.name.clone(),
                port,
                origin: RouteOrigin::Gateway,
                src: None,
            });
        }
    }
    for r in statics {
        if let Some(port) = port_of(interfaces, &r.dev) {
            push(RouteView {
                prefix: r.prefix,
                len: r.len,
                via: r.via,
                dev: r.dev.clone(),
                port,
                origin: RouteOrigin::Static,
                src: None,
            });
        }
    }
    for &(dev, port, a, _) in &own {
        push(RouteView {
            prefix: a,
            len: max_len(a),
            via: None,
            dev: dev.into(),
            port,
            origin: RouteOrigin::Local,
            src: Some(a),
        });
    }
    out
}

/// The data plane's route tables for `config`: IPv4 routes in `v4`, IPv6
/// ones in `v6`.
#[must_use]
pub fn routes(config: &Config) -> Routes {
    let list = route_list(&config.interfaces, &config.addresses, &config.routes);
    fn hop<A>(r: &RouteView, bits: impl Fn(IpAddr) -> Option<A>) -> NextHop<A> {
        match (r.origin, r.via.and_then(&bits)) {
            (RouteOrigin::Local, _) => NextHop::Local { port: r.port },
            (_, Some(g)) => NextHop::Via {
                port: r.port,
                gateway: g,
            },
            (_, None) => NextHop::OnLink { port: r.port },
        }
    }
    let v4_bits = |a: IpAddr| match a {
        IpAddr::V4(a) => Some(a.octets()),
        IpAddr::V6(_) => None,
    };
    let v6_bits = |a: IpAddr| match a {
        IpAddr::V6(a) => Some(a.octets()),
        IpAddr::V4(_) => None,
    };
    let v4 = list.iter().filter_map(|r| {
        Some(Route {
            prefix: v4_bits(r.prefix)?,
            len: r.len,
            hop: hop(r, v4_bits),
        })
    });
    let v6 = list.iter().filter_map(|r| {
        Some(Route {
            prefix: v6_bits(r.prefix)?,
            len: r.len,
            hop: hop(r, v6_bits),
        })
    });
    // route_list leaves no duplicate and every length fits its family:
    // this cannot fail; an empty table (the fallback to interfaces) if it
    // ever did.
    Routes {
        v4: RouteTable::new(v4).unwrap_or_default(),
        v6: RouteTable::new(v6).unwrap_or_default(),
    }
}

/// The interface's IPv6 address to send neighbour solicitations for
/// `target` from: an address of `port` (configured or added) whose subnet
/// holds `target`, else its first IPv6 address.
#[must_use]
pub fn ns_source(config: &Config, port: u16, target: Ipv6Addr) -> Option<Ipv6Addr> {
    let i = config.interfaces.get(usize::from(port))?;
    let own: Vec<(Ipv6Addr, u8)> = i
        .addr6
        .into_iter()
        .chain(
            config
                .addresses
                .iter()
                .filter(|a| a.dev == i.name)
                .filter_map(|a| match a.addr {
                    IpAddr::V6(v6) => Some((v6, a.len)),
                    IpAddr::V4(_) => None,
                }),
        )
        .collect();
    own.iter()
        .find(|(a, l)| covers(IpAddr::V6(*a), *l, IpAddr::V6(target)))
        .or(own.first())
        .map(|(a, _)| *a)
}

/// Checks a static route against the interfaces, addresses and routes
/// there are, and resolves its interface (from `via` when `dev` is not given).
///
/// # Errors
/// [`IpError`] for an unknown device, host bits in the prefix, a gateway on
/// no connected subnet, a route with neither gateway nor device, or a
/// prefix some route already has.
pub fn check_route(
    interfaces: &[InterfaceConfig],
    addresses: &[AddressConfig],
    statics: &[RouteConfig],
    (prefix, len): (IpAddr, u8),
    via: Option<IpAddr>,
    dev: Option<&str>,
) -> Result<RouteConfig, IpError> {
    if let Some(d) = dev {
        if port_of(interfaces, d).is_none() {
            return Err(IpError::NoDevice(d.into()));
        }
    }
    if via.is_some_and(|v| v.is_ipv4() != prefix.is_ipv4()) {
        return Err(IpError::Usage(format!(
            "gateway {} is not of the family of {}",
            via.map(|v| v.to_string()).unwrap_or_default(),
            show_prefix(prefix, len)
        )));
    }
    if network(prefix, len) != prefix {
        return Err(IpError::HostBits(
            format!("{prefix}/{len}"),
            format!("{}/{len}", network(prefix, len)),
        ));
    }
    let connected = route_list(interfaces, addresses, &[]);
    let dev = match (via, dev) {
        (None, None) => {
            return Err(IpError::Usage(
                "a route needs a gateway (via ADDRESS) or a device (dev NAME)".into(),
            ))
        }
        (None, Some(d)) => d.to_string(),
        (Some(g), d) => {
            let hit = connected
                .iter()
                .filter(|r| {
                    r.origin == RouteOrigin::Connected
                        && covers(r.prefix, r.len, g)
                        && d.is_none_or(|d| d == r.dev)
                })
                .max_by_key(|r| r.len);
            match hit {
                Some(r) => r.dev.clone(),
                None => {
                    return Err(IpError::BadGateway(
                        g,
                        d.map(|d| format!(" of {d}")).unwrap_or_default(),
                    ))
                }
            }
        }
    };
    let all = route_list(interfaces, addresses, statics);
    if let Some(r) = all
        .iter()
        .find(|r| r.origin != RouteOrigin::Local && r.prefix == prefix && r.len == len)
    {
        return Err(IpError::Exists(format!(
            "route {} already exists ({})",
            show_prefix(prefix, len),
            origin_word(r.origin)
        )));
    }
    Ok(RouteConfig {
        prefix,
        len,
        via,
        dev,
    })
}

/// What made a route, in words (for refusals).
#[must_use]
pub fn origin_word(o: RouteOrigin) -> &'static str {
    match o {
        RouteOrigin::Connected => "a connected subnet",
        RouteOrigin::Gateway => "an interface's gateway",
        RouteOrigin::Static => "a static route",
        RouteOrigin::Local => "a local address",
    }
}

/// A prefix as `ip route` prints it (`default` for length 0).
#[must_use]
pub fn show_prefix(p: IpAddr, len: u8) -> String {
    if len == 0 {
        "default".into()
    } else {
        format!("{p}/{len}")
    }
}

/// A MAC address `aa:bb:cc:dd:ee:ff`.
///
/// # Errors
/// [`IpError::BadLladdr`].
pub fn parse_mac(s: &str) -> Result<[u8; 6], IpError> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut m = [0u8; 6];
    if parts.len() != 6 {
        return Err(IpError::BadLladdr(s.into()));
    }
    for (b, p) in m.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 {
            return Err(IpError::BadLladdr(s.into()));
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| IpError::BadLladdr(s.into()))?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn config_routes_are_checked_with_their_line() {
        let base = include_str!("../../../config/lab.toml");
        let with = |route: &str| {
            base.replace("[[service]]", &format!("[[route]]\n{route}\n\n[[service]]"))
        };
        let line = |text: &str, pat: &str| text.lines().position(|l| l.contains(pat)).unwrap() + 1;
        for (route, pat, want) in [
            (
                "destination = \"10.90.0.0/33\"\nvia = \"10.77.0.1\"",
                "10.90.0.0/33",
                "destination must be IPv4/PREFIX",
            ),
            (
                "destination = \"10.90.0.1/16\"\nvia = \"10.77.0.1\"",
                "10.90.0.1/16",
                "Invalid prefix for given prefix length",
            ),
            (
                "destination = \"10.90.0.0/16\"\nvia = \"10.78.0.1\"",
                "10.78.0.1",
                "Nexthop has invalid gateway",
            ),
            (
                "destination = \"10.90.0.0/16\"\ninterface = \"dpdk9\"",
                "dpdk9",
                "Cannot find device \"dpdk9\"",
            ),
            (
                "destination = \"10.77.0.0/24\"\ninterface = \"dpdk0\"",
                "destination = \"10.77.0.0/24",
                "File exists",
            ),
            (
                "destination = \"10.90.0.0/16\"",
                "10.90.0.0/16",
                "needs a gateway",
            ),
            (
                "destination = \"10.90.0.0/16\"\nvia = \"10.77.0.1\"\nmetric = 5",
                "metric = 5",
                "unknown field",
            ),
        ] {
            let text = with(route);
            let e = crate::config::parse(Path::new("r.toml"), &text).unwrap_err();
            assert_eq!(e.at.map(|a| a.0), Some(line(&text, pat)), "{route}: {e}");
            assert!(e.to_string().contains(want), "{route}: {e}");
        }
        let ok = crate::config::parse(
            Path::new("r.toml"),
            &with("destination = \"default\"\nvia = \"10.77.0.1\""),
        )
        .unwrap();
        assert_eq!(
            ok.routes,
            vec![RouteConfig {
                prefix: Ipv4Addr::UNSPECIFIED.into(),
                len: 0,
                via: Some(Ipv4Addr::new(10, 77, 0, 1).into()),
                dev: "dpdk0".into()
            }]
        );
    }
}
