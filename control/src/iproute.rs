//! The appliance's layer-3 state the way `ip` shows it: interface
//! addresses, routes and neighbours, and `rvsadm link|addr|route|neigh`.
//!
//! Three parts, all without DPDK:
//!
//! - The model: addresses added at run time ([`AddressConfig`]), static
//!   routes ([`RouteConfig`], from `[[route]]` or `rvsadm route add`), and
//!   [`route_list`], the one place that turns interfaces, addresses and
//!   static routes into routes: connected subnets (`proto kernel scope
//!   link`), each interface's gateway (`default via`), static routes, and a
//!   local /32 per own address. [`routes`] builds the data plane's
//!   longest-prefix-match table ([`dataplane::route`]) from that list.
//! - The checks and changes behind `addr add|del` and `route add|del`
//!   ([`addr_add`], [`route_add`], ...): they validate against the live
//!   [`Config`] and change it only when everything is right, so a refused
//!   command changes nothing.
//! - The command line ([`parse`]) and the `ip`-style text ([`render`]);
//!   requests and answers travel as [`IpRequest`] / [`IpResponse`] inside
//!   the control socket's JSON.
//!
//! Errors read like iproute2's (`Cannot find device "x"`, `RTNETLINK
//! answers: File exists`) and make rvsadm exit with status 2, as `ip` does.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::addr::Addr;

use dataplane::route::{NextHop, Route, RouteTable, Routes};
use serde::{Deserialize, Serialize};

use crate::config::{Config, InterfaceConfig};

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

fn mask(len: u8) -> u32 {
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
pub(crate) fn port_of(interfaces: &[InterfaceConfig], dev: &str) -> Option<u16> {
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

fn origin_word(o: RouteOrigin) -> &'static str {
    match o {
        RouteOrigin::Connected => "a connected subnet",
        RouteOrigin::Gateway => "an interface's gateway",
        RouteOrigin::Static => "a static route",
        RouteOrigin::Local => "a local address",
    }
}

fn show_prefix(p: IpAddr, len: u8) -> String {
    if len == 0 {
        "default".into()
    } else {
        format!("{p}/{len}")
    }
}

/// True if the appliance already uses `a` (interface address, added
/// address, VIP or local address).
fn in_use(config: &Config, a: IpAddr) -> Option<String> {
    if let Some(i) = config
        .interfaces
        .iter()
        .find(|i| IpAddr::V4(i.addr) == a || i.addr6.is_some_and(|(v6, _)| IpAddr::V6(v6) == a))
    {
        return Some(format!("{a} is the address of {}", i.name));
    }
    if let Some(x) = config.addresses.iter().find(|x| x.addr == a) {
        return Some(format!("{a}/{} is already on {}", x.len, x.dev));
    }
    if config.services.iter().any(|s| s.vip.ip() == a) {
        return Some(format!("{a} is a virtual service address"));
    }
    if config
        .services
        .iter()
        .any(|s| s.local_addresses.contains(&a))
    {
        return Some(format!("{a} is a FULLNAT local address"));
    }
    None
}

/// `addr add ADDRESS/LEN dev NAME`: checks, then records the address.
///
/// # Errors
/// [`IpError`]: unknown device, malformed prefix, an address in use.
pub fn addr_add(config: &mut Config, addr: &str, dev: &str) -> Result<AddressConfig, IpError> {
    let (a, len) = parse_prefix(addr, false)?;
    let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    if a.is_unspecified() || a.is_multicast() || a.is_loopback() || broadcast {
        return Err(IpError::BadAddress(addr.into()));
    }
    if port_of(&config.interfaces, dev).is_none() {
        return Err(IpError::NoDevice(dev.into()));
    }
    if let Some(why) = in_use(config, a) {
        return Err(IpError::Exists(why));
    }
    crate::config::claims::Claims::of(config)
        .claim(
            a,
            crate::config::claims::Use::Interface,
            format!("of {dev}"),
        )
        .map_err(IpError::Refused)?;
    let added = AddressConfig {
        dev: dev.into(),
        addr: a,
        len,
    };
    config.addresses.push(added.clone());
    Ok(added)
}

/// `addr del ADDRESS[/LEN] dev NAME`: removes an address added at run time
/// (and static routes whose gateway only it made reachable stay refused
/// nowhere: they simply stop resolving).
///
/// # Errors
/// [`IpError`]: unknown device, malformed prefix, no such address, or the
/// interface's configured address.
pub fn addr_del(config: &mut Config, addr: &str, dev: &str) -> Result<AddressConfig, IpError> {
    let (a, len) = parse_prefix(addr, false)?;
    if port_of(&config.interfaces, dev).is_none() {
        return Err(IpError::NoDevice(dev.into()));
    }
    if config.interfaces.iter().any(|i| {
        i.name == dev
            && (IpAddr::V4(i.addr) == a || i.addr6.is_some_and(|(v6, _)| IpAddr::V6(v6) == a))
    }) {
        return Err(IpError::Refused(format!(
            "{a} is {dev}'s configured address (the config file's [[interface]] address): it cannot be deleted at run time"
        )));
    }
    let given_len = addr.contains('/');
    let Some(at) = config
        .addresses
        .iter()
        .position(|x| x.dev == dev && x.addr == a && (!given_len || x.len == len))
    else {
        return Err(IpError::Missing(format!("no address {addr} on {dev}")));
    };
    Ok(config.addresses.remove(at))
}

/// `route add PREFIX [via GW] [dev NAME]`.
///
/// # Errors
/// As [`check_route`], and [`IpError::BadPrefix`] for a malformed prefix.
pub fn route_add(config: &mut Config, spec: &RouteSpec) -> Result<RouteConfig, IpError> {
    let via = spec
        .via
        .as_deref()
        .map(|v| {
            v.parse::<IpAddr>()
                .map_err(|_| IpError::BadAddress(v.into()))
        })
        .transpose()?;
    let p = default_for(parse_prefix(&spec.prefix, true)?, via);
    let r = check_route(
        &config.interfaces,
        &config.addresses,
        &config.routes,
        p,
        via,
        spec.dev.as_deref(),
    )?;
    config.routes.push(r.clone());
    Ok(r)
}

/// `route del PREFIX [via GW] [dev NAME]`: removes a static route.
///
/// # Errors
/// [`IpError`]: malformed prefix, unknown device, no such static route, or
/// a connected route or gateway (those belong to addresses and the file).
pub fn route_del(config: &mut Config, spec: &RouteSpec) -> Result<RouteConfig, IpError> {
    let via = spec
        .via
        .as_deref()
        .map(|v| {
            v.parse::<IpAddr>()
                .map_err(|_| IpError::BadAddress(v.into()))
        })
        .transpose()?;
    let (prefix, len) = default_for(parse_prefix(&spec.prefix, true)?, via);
    if let Some(d) = spec.dev.as_deref() {
        if port_of(&config.interfaces, d).is_none() {
            return Err(IpError::NoDevice(d.into()));
        }
    }
    let matches = |r: &RouteConfig| {
        r.prefix == prefix
            && r.len == len
            && via.is_none_or(|v| r.via == Some(v))
            && spec.dev.as_deref().is_none_or(|d| d == r.dev)
    };
    if let Some(at) = config.routes.iter().position(matches) {
        return Ok(config.routes.remove(at));
    }
    let list = route_list(&config.interfaces, &config.addresses, &config.routes);
    if let Some(r) = list
        .iter()
        .find(|r| r.origin != RouteOrigin::Local && r.prefix == prefix && r.len == len)
    {
        return Err(IpError::Refused(format!(
            "{} is {}: it goes with its address or [[interface]] gateway, not rvsadm route del",
            show_prefix(prefix, len),
            origin_word(r.origin)
        )));
    }
    Err(IpError::Missing(format!(
        "no route {}",
        show_prefix(prefix, len)
    )))
}

// ---------------------------------------------------------------------------
// Protocol

/// A route named on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// `PREFIX/LEN` or `default`.
    pub prefix: String,
    /// `via ADDRESS`.
    pub via: Option<String>,
    /// `dev NAME`.
    pub dev: Option<String>,
}

/// What `rvsadm link|addr|route|neigh` asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpRequest {
    /// `link show`.
    LinkShow,
    /// `addr show`.
    AddrShow,
    /// `addr add ADDRESS/LEN dev NAME`.
    AddrAdd {
        /// `ADDRESS/LEN`.
        addr: String,
        /// Interface.
        dev: String,
    },
    /// `addr del ADDRESS[/LEN] dev NAME`.
    AddrDel {
        /// `ADDRESS[/LEN]`.
        addr: String,
        /// Interface.
        dev: String,
    },
    /// `route show`.
    RouteShow,
    /// `route add`.
    RouteAdd(RouteSpec),
    /// `route del`.
    RouteDel(RouteSpec),
    /// `neigh show`.
    NeighShow,
    /// `neigh add ADDRESS lladdr MAC dev NAME`: a permanent entry.
    NeighAdd {
        /// Address.
        addr: String,
        /// MAC address.
        lladdr: String,
        /// Interface.
        dev: String,
    },
    /// `neigh del ADDRESS dev NAME`.
    NeighDel {
        /// Address.
        addr: String,
        /// Interface.
        dev: String,
    },
}

/// A DPDK port as `link show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    /// Interface name.
    pub name: String,
    /// The DPDK device string.
    pub device: String,
    /// MAC address.
    pub mac: [u8; 6],
    /// Link up.
    pub up: bool,
    /// MTU (0 if the device does not say).
    pub mtu: u32,
    /// Counters: rx packets, rx bytes, rx errors, rx missed, rx no-mbuf,
    /// tx packets, tx bytes, tx errors.
    pub stats: [u64; 8],
    /// For an 802.1Q sub-interface: its parent's name and the VLAN id.
    #[serde(default)]
    pub vlan: Option<(String, u16)>,
}

/// An address as `addr show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrView {
    /// Interface name.
    pub dev: String,
    /// Address.
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
    /// From the config file (`false`: added with `rvsadm addr add`).
    pub configured: bool,
    /// Duplicate address detection's word for an IPv6 address, as `ip`
    /// prints it: "tentative", "dadfailed tentative", or nothing.
    #[serde(default)]
    pub flags: String,
}

/// A neighbour as `neigh show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighView {
    /// Address.
    pub addr: std::net::IpAddr,
    /// Interface name.
    pub dev: String,
    /// MAC, once resolved.
    pub lladdr: Option<[u8; 6]>,
    /// `REACHABLE`, `INCOMPLETE`, `FAILED` or `PERMANENT`.
    pub state: String,
}

/// What rvsd answers to an [`IpRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpResponse {
    /// `link show`, one per DPDK port in port order.
    Links(Vec<LinkView>),
    /// `addr show`: the links (for their headers) and every address.
    Addrs(Vec<LinkView>, Vec<AddrView>),
    /// `route show`.
    Routes(Vec<RouteView>),
    /// `neigh show`.
    Neighbours(Vec<NeighView>),
    /// A change was applied.
    Done,
    /// The request was refused (nothing changed).
    Refused(String),
}

/// Every address of the interfaces, configured ones first.
#[must_use]
pub fn addr_views(config: &Config) -> Vec<AddrView> {
    let mut out = Vec::new();
    for i in &config.interfaces {
        out.push(AddrView {
            dev: i.name.clone(),
            addr: IpAddr::V4(i.addr),
            len: i.prefix_len,
            configured: true,
            flags: String::new(),
        });
        for a in config
            .addresses
            .iter()
            .filter(|a| a.dev == i.name && a.addr.is_ipv4())
        {
            out.push(AddrView {
                dev: a.dev.clone(),
                addr: a.addr,
                len: a.len,
                configured: false,
                flags: String::new(),
            });
        }
        if let Some((a, len)) = i.addr6 {
            out.push(AddrView {
                dev: i.name.clone(),
                addr: IpAddr::V6(a),
                len,
                configured: true,
                flags: String::new(),
            });
        }
        for a in config
            .addresses
            .iter()
            .filter(|a| a.dev == i.name && a.addr.is_ipv6())
        {
            out.push(AddrView {
                dev: a.dev.clone(),
                addr: a.addr,
                len: a.len,
                configured: false,
                flags: String::new(),
            });
        }
    }
    out
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

// ---------------------------------------------------------------------------
// Command line

/// True if `words` (rvsadm's arguments) are an iproute-style command:
/// the first word other than `-s` names an object (ip's abbreviations too).
#[must_use]
pub fn is_command(words: &[String]) -> bool {
    words
        .iter()
        .find(|w| !is_flag(w))
        .is_some_and(|w| object(w).is_some())
}

/// `-s` (statistics) and `-4`/`-6` (family), which `ip` takes before the
/// object and rvsadm anywhere.
fn is_flag(w: &str) -> bool {
    matches!(w, "-s" | "-stats" | "-statistics" | "-4" | "-6")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    Link,
    Addr,
    Route,
    Neigh,
}

fn object(word: &str) -> Option<Object> {
    match word {
        "link" | "l" => Some(Object::Link),
        "addr" | "address" | "a" => Some(Object::Addr),
        "route" | "r" | "ro" => Some(Object::Route),
        "neigh" | "neighbour" | "neighbor" | "n" => Some(Object::Neigh),
        _ => None,
    }
}

/// A parsed command: the request and whether `-s` (statistics) was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The request.
    pub request: IpRequest,
    /// `-s`: counters with `link show`.
    pub stats: bool,
    /// `dev NAME` filter for listings.
    pub dev: Option<String>,
    /// `-6`: IPv6 routes (`ip -6 route`), only IPv6 addresses; `-4`: only
    /// IPv4. Without either, routes are IPv4's (as `ip route`) and
    /// addresses both families' (as `ip addr`).
    pub family: Option<u8>,
}

/// Parses `OBJECT [-s] [COMMAND [ARGS]]` (the words after `rvsadm`).
///
/// # Errors
/// [`IpError::Usage`] (or a malformed-value error) for a bad command line.
pub fn parse(words: &[String]) -> Result<Command, IpError> {
    // `-s` goes before the object in ip (`ip -s link`); here anywhere.
    let stats = words
        .iter()
        .any(|w| matches!(w.as_str(), "-s" | "-stats" | "-statistics"));
    let family = words.iter().rev().find_map(|w| match w.as_str() {
        "-4" => Some(4),
        "-6" => Some(6),
        _ => None,
    });
    let mut it = words.iter().map(String::as_str).filter(|w| !is_flag(w));
    let obj = it
        .next()
        .and_then(object)
        .ok_or_else(|| IpError::Usage("expected link, addr, route or neigh".into()))?;
    let verb = it.next().unwrap_or("show");
    let rest: Vec<&str> = it.collect();
    let usage = |m: &str| IpError::Usage(m.into());
    // KEY VALUE pairs after the leading argument.
    let pairs = |from: &[&str], keys: &[&str]| -> Result<Vec<(String, String)>, IpError> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < from.len() {
            let k = from[i];
            if !keys.contains(&k) {
                return Err(IpError::Usage(format!(
                    "unknown argument \"{k}\" (expected one of: {})",
                    keys.join(", ")
                )));
            }
            let v = from
                .get(i + 1)
                .ok_or_else(|| IpError::Usage(format!("\"{k}\" needs a value")))?;
            out.push((k.to_string(), (*v).to_string()));
            i += 2;
        }
        Ok(out)
    };
    let get = |p: &[(String, String)], k: &str| {
        p.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    };
    let show = matches!(verb, "show" | "list" | "ls" | "lst" | "sh" | "s");
    let (request, dev) = match (obj, verb) {
        (Object::Link, _) if show => {
            let p = pairs(&rest, &["dev"])?;
            (IpRequest::LinkShow, get(&p, "dev"))
        }
        (Object::Addr, _) if show => {
            let p = pairs(&rest, &["dev"])?;
            (IpRequest::AddrShow, get(&p, "dev"))
        }
        (Object::Route, _) if show => {
            let p = pairs(&rest, &["dev"])?;
            (IpRequest::RouteShow, get(&p, "dev"))
        }
        (Object::Neigh, _) if show => {
            let p = pairs(&rest, &["dev"])?;
            (IpRequest::NeighShow, get(&p, "dev"))
        }
        (Object::Addr, "add" | "del" | "delete") => {
            let (addr, tail) = rest
                .split_first()
                .ok_or_else(|| usage("addr add|del needs ADDRESS/LEN dev NAME"))?;
            let p = pairs(tail, &["dev"])?;
            let dev = get(&p, "dev").ok_or_else(|| usage("addr add|del needs dev NAME"))?;
            parse_prefix(addr, false)?;
            let addr = (*addr).to_string();
            (
                if verb == "add" {
                    IpRequest::AddrAdd { addr, dev }
                } else {
                    IpRequest::AddrDel { addr, dev }
                },
                None,
            )
        }
        (Object::Route, "add" | "del" | "delete") => {
            let (prefix, tail) = rest
                .split_first()
                .ok_or_else(|| usage("route add|del needs PREFIX [via ADDRESS] [dev NAME]"))?;
            let p = pairs(tail, &["via", "dev"])?;
            parse_prefix(prefix, true)?;
            let via = get(&p, "via");
            if let Some(v) = &via {
                v.parse::<IpAddr>()
                    .map_err(|_| IpError::BadAddress(v.clone()))?;
            }
            let spec = RouteSpec {
                prefix: (*prefix).to_string(),
                via,
                dev: get(&p, "dev"),
            };
            if verb == "add" && spec.via.is_none() && spec.dev.is_none() {
                return Err(usage("route add needs via ADDRESS or dev NAME"));
            }
            (
                if verb == "add" {
                    IpRequest::RouteAdd(spec)
                } else {
                    IpRequest::RouteDel(spec)
                },
                None,
            )
        }
        (Object::Neigh, "add" | "replace" | "del" | "delete") => {
            let (addr, tail) = rest
                .split_first()
                .ok_or_else(|| usage("neigh add|del needs ADDRESS [lladdr MAC] dev NAME"))?;
            addr.parse::<IpAddr>()
                .map_err(|_| IpError::BadAddress((*addr).to_string()))?;
            let p = pairs(tail, &["lladdr", "dev", "nud"])?;
            let dev = get(&p, "dev").ok_or_else(|| usage("neigh add|del needs dev NAME"))?;
            let addr = (*addr).to_string();
            if verb.starts_with("del") {
                (IpRequest::NeighDel { addr, dev }, None)
            } else {
                let lladdr =
                    get(&p, "lladdr").ok_or_else(|| usage("neigh add needs lladdr MAC"))?;
                parse_mac(&lladdr)?;
                (IpRequest::NeighAdd { addr, lladdr, dev }, None)
            }
        }
        (_, v) => {
            return Err(IpError::Usage(format!(
                "Command \"{v}\" is unknown, try \"rvsadm {} help\"",
                words[0]
            )))
        }
    };
    Ok(Command {
        request,
        stats,
        dev,
        family,
    })
}

/// Usage text of the iproute-style commands.
pub const USAGE: &str = "\
Usage: rvsadm link show [-s] [dev NAME]
       rvsadm [-4|-6] addr show [dev NAME]
       rvsadm addr add|del ADDRESS/LEN dev NAME
       rvsadm [-6] route show [dev NAME]
       rvsadm route add|del PREFIX|default [via ADDRESS] [dev NAME]
       rvsadm neigh show [dev NAME]
       rvsadm neigh add ADDRESS lladdr MAC dev NAME
       rvsadm neigh del ADDRESS dev NAME
";

/// `rvsadm OBJECT ...`: parses `words`, asks rvsd at `$RVS_SOCKET` (or
/// `--socket PATH`, or the default), prints the answer. Exit status 0; 2 for
/// a bad command line or a refused change (as `ip`); 1 when rvsd cannot be
/// reached.
#[must_use]
pub fn run(prog: &str, words: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    let mut words = words.to_vec();
    let mut socket = std::env::var_os("RVS_SOCKET").map_or_else(
        || std::path::PathBuf::from(crate::api::DEFAULT_SOCKET),
        std::path::PathBuf::from,
    );
    if let Some(i) = words.iter().position(|w| w == "--socket") {
        if i + 1 >= words.len() {
            eprintln!("{prog}: --socket needs a path");
            return ExitCode::from(2);
        }
        socket = words.remove(i + 1).into();
        words.remove(i);
    }
    if words
        .iter()
        .any(|w| w == "help" || w == "-h" || w == "--help")
    {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let cmd = match parse(&words) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match crate::api::call(&socket, &crate::api::Request::Ip(cmd.request.clone())) {
        Ok(crate::api::Response::Ip(IpResponse::Refused(e))) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Ok(crate::api::Response::Ip(r)) => {
            if let Some(d) = &cmd.dev {
                let known = match &r {
                    IpResponse::Links(l) | IpResponse::Addrs(l, _) => {
                        l.iter().any(|l| &l.name == d)
                    }
                    _ => true,
                };
                if !known {
                    eprintln!("Device \"{d}\" does not exist.");
                    return ExitCode::from(1);
                }
            }
            use std::io::Write as _;
            let _ = std::io::stdout()
                .lock()
                .write_all(render(&cmd, &r).as_bytes());
            ExitCode::SUCCESS
        }
        Ok(crate::api::Response::Error(e)) => {
            eprintln!("{prog}: {e}");
            ExitCode::from(1)
        }
        Ok(other) => {
            eprintln!("{prog}: unexpected answer from rvsd: {other:?}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::from(1)
        }
    }
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn link_head(out: &mut String, index: usize, l: &LinkView) {
    let flags = if l.up {
        "BROADCAST,MULTICAST,UP,LOWER_UP"
    } else {
        "BROADCAST,MULTICAST,UP"
    };
    let state = if l.up { "UP" } else { "DOWN" };
    let name = match &l.vlan {
        Some((parent, _)) => format!("{}@{parent}", l.name),
        None => l.name.clone(),
    };
    let _ = writeln!(
        out,
        "{}: {name}: <{flags}> mtu {} state {state}",
        index + 1,
        l.mtu
    );
    let _ = writeln!(
        out,
        "    link/ether {} brd ff:ff:ff:ff:ff:ff",
        mac_text(&l.mac)
    );
}

/// The `ip`-style text of an answer.
#[must_use]
pub fn render(cmd: &Command, resp: &IpResponse) -> String {
    let mut out = String::new();
    let wanted = |d: &str| cmd.dev.as_deref().is_none_or(|w| w == d);
    match resp {
        IpResponse::Links(links) => {
            for (n, l) in links.iter().enumerate().filter(|(_, l)| wanted(&l.name)) {
                link_head(&mut out, n, l);
                if let Some((_, id)) = &l.vlan {
                    // A sub-interface has no counters of its own (its
                    // frames are counted on its parent port).
                    let _ = writeln!(out, "    vlan protocol 802.1Q id {id}");
                    continue;
                }
                let _ = writeln!(out, "    device {}", l.device);
                if cmd.stats {
                    let s = &l.stats;
                    let _ = writeln!(
                        out,
                        "    RX: {:>12} {:>10} {:>7} {:>7} {:>8}",
                        "bytes", "packets", "errors", "missed", "no-mbuf"
                    );
                    let _ = writeln!(
                        out,
                        "        {:>12} {:>10} {:>7} {:>7} {:>8}",
                        s[1], s[0], s[2], s[3], s[4]
                    );
                    let _ = writeln!(
                        out,
                        "    TX: {:>12} {:>10} {:>7}",
                        "bytes", "packets", "errors"
                    );
                    let _ = writeln!(out, "        {:>12} {:>10} {:>7}", s[6], s[5], s[7]);
                }
            }
        }
        IpResponse::Addrs(links, addrs) => {
            for (n, l) in links.iter().enumerate().filter(|(_, l)| wanted(&l.name)) {
                link_head(&mut out, n, l);
                let family_ok =
                    |a: &&AddrView| cmd.family.is_none_or(|f| (f == 6) == a.addr.is_ipv6());
                for a in addrs.iter().filter(|a| a.dev == l.name).filter(family_ok) {
                    match a.addr {
                        IpAddr::V4(v4) => {
                            let brd = if a.len < 31 {
                                format!(" brd {}", Ipv4Addr::from(u32::from(v4) | !mask(a.len)))
                            } else {
                                String::new()
                            };
                            let secondary = if a.configured { "" } else { " secondary" };
                            let flags = if a.flags.is_empty() {
                                String::new()
                            } else {
                                format!(" {}", a.flags)
                            };
                            let _ = writeln!(
                                out,
                                "    inet {}/{}{brd} scope global{secondary}{flags} {}",
                                a.addr, a.len, a.dev
                            );
                        }
                        IpAddr::V6(_) => {
                            let flags = if a.flags.is_empty() {
                                String::new()
                            } else {
                                format!(" {}", a.flags)
                            };
                            let _ =
                                writeln!(out, "    inet6 {}/{} scope global{flags}", a.addr, a.len);
                        }
                    }
                }
            }
        }
        IpResponse::Routes(routes) => {
            // `ip route`, or `ip -6 route`.
            let v6 = cmd.family == Some(6);
            for r in routes.iter().filter(|r| {
                r.origin != RouteOrigin::Local && wanted(&r.dev) && r.prefix.is_ipv6() == v6
            }) {
                let mut line = show_prefix(r.prefix, r.len);
                if let Some(v) = r.via {
                    let _ = write!(line, " via {v}");
                }
                let _ = write!(line, " dev {}", r.dev);
                match r.origin {
                    RouteOrigin::Connected => line += " proto kernel scope link",
                    RouteOrigin::Gateway => line += " proto boot",
                    RouteOrigin::Static => line += " proto static",
                    RouteOrigin::Local => {}
                }
                if r.via.is_none() && r.origin == RouteOrigin::Static {
                    line += " scope link";
                }
                if let Some(s) = r.src {
                    let _ = write!(line, " src {s}");
                }
                out += &line;
                out.push('\n');
            }
        }
        IpResponse::Neighbours(ns) => {
            for n in ns.iter().filter(|n| wanted(&n.dev)) {
                let ll = n
                    .lladdr
                    .map(|m| format!(" lladdr {}", mac_text(&m)))
                    .unwrap_or_default();
                let _ = writeln!(out, "{} dev {}{ll} {}", n.addr, n.dev, n.state);
            }
        }
        IpResponse::Done | IpResponse::Refused(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn two_arm() -> Config {
        let text = include_str!("../../config/lab.toml").replace(
            "[[service]]",
            "[[interface]]\nname = \"dpdk1\"\ndevice = \"net_af_packet1,iface=lb1\"\naddress = \"10.79.0.2/24\"\n\n[[route]]\ndestination = \"10.80.0.0/24\"\nvia = \"10.79.0.254\"\n\n[[service]]",
        );
        crate::config::parse(Path::new("two-arm.toml"), &text).unwrap()
    }

    #[test]
    fn parses_commands() {
        for line in ["link show -s", "link -s show", "-s link"] {
            let c = parse(&words(line)).unwrap();
            assert_eq!((c.request, c.stats), (IpRequest::LinkShow, true), "{line}");
        }
        assert!(!parse(&words("link show")).unwrap().stats);
        assert_eq!(parse(&words("addr")).unwrap().request, IpRequest::AddrShow);
        assert_eq!(
            parse(&words("a add 10.0.0.3/24 dev dpdk0"))
                .unwrap()
                .request,
            IpRequest::AddrAdd {
                addr: "10.0.0.3/24".into(),
                dev: "dpdk0".into()
            }
        );
        assert_eq!(
            parse(&words("route add default via 10.0.0.1"))
                .unwrap()
                .request,
            IpRequest::RouteAdd(RouteSpec {
                prefix: "default".into(),
                via: Some("10.0.0.1".into()),
                dev: None
            })
        );
        assert_eq!(
            parse(&words("route show dev dpdk1"))
                .unwrap()
                .dev
                .as_deref(),
            Some("dpdk1")
        );
        assert_eq!(
            parse(&words(
                "neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev dpdk0"
            ))
            .unwrap()
            .request,
            IpRequest::NeighAdd {
                addr: "10.0.0.9".into(),
                lladdr: "02:00:00:00:00:09".into(),
                dev: "dpdk0".into()
            }
        );
    }

    #[test]
    fn refuses_bad_command_lines() {
        for (line, want) in [
            (
                "addr add 10.0.0.300/24 dev dpdk0",
                "any valid prefix is expected rather than \"10.0.0.300/24\"",
            ),
            (
                "addr add 10.0.0.3/33 dev dpdk0",
                "rather than \"10.0.0.3/33\"",
            ),
            ("addr add 10.0.0.3/24", "needs dev NAME"),
            ("addr add 10.0.0.3/24 dev", "\"dev\" needs a value"),
            ("route add 10.1.0.0/16", "needs via ADDRESS or dev NAME"),
            (
                "route add 10.1.0.0/16 via nowhere",
                "invalid address \"nowhere\"",
            ),
            (
                "route add 10.1.0.0/16 gw 10.0.0.1",
                "unknown argument \"gw\"",
            ),
            (
                "neigh add 10.0.0.9 lladdr 02:00:00:00:00 dev dpdk0",
                "\"02:00:00:00:00\" is invalid lladdr",
            ),
            ("link frob", "Command \"frob\" is unknown"),
            ("tunnel show", "expected link, addr, route or neigh"),
        ] {
            let e = parse(&words(line)).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn routes_of_a_two_arm_config() {
        let c = two_arm();
        let list = route_list(&c.interfaces, &c.addresses, &c.routes);
        let text = render(
            &Command {
                request: IpRequest::RouteShow,
                stats: false,
                dev: None,
                family: None,
            },
            &IpResponse::Routes(list),
        );
        assert_eq!(
            text,
            "10.77.0.0/24 dev dpdk0 proto kernel scope link src 10.77.0.2\n\
             10.79.0.0/24 dev dpdk1 proto kernel scope link src 10.79.0.2\n\
             10.80.0.0/24 via 10.79.0.254 dev dpdk1 proto static\n"
        );
        let t = routes(&c);
        assert_eq!(t.v4.next_hop([10, 80, 0, 7]), Some((1, [10, 79, 0, 254])));
        assert_eq!(t.v4.next_hop([10, 79, 0, 11]), Some((1, [10, 79, 0, 11])));
        assert_eq!(t.v4.next_hop([10, 77, 0, 10]), Some((0, [10, 77, 0, 10])));
        assert_eq!(t.v4.next_hop([8, 8, 8, 8]), None, "no default route");
        assert!(t.v4.is_local([10, 79, 0, 2]));
    }

    #[test]
    fn config_routes_are_checked_with_their_line() {
        let base = include_str!("../../config/lab.toml");
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

    #[test]
    fn addr_add_and_del_check_everything_first() {
        let mut c = two_arm();
        let before = c.clone();
        for (addr, dev, want) in [
            ("10.77.0.3/24", "nosuch", "Cannot find device \"nosuch\""),
            ("10.77.0.2/24", "dpdk0", "10.77.0.2 is the address of dpdk0"),
            ("10.77.0.100/32", "dpdk0", "virtual service address"),
            ("10.77.0.200/32", "dpdk0", "FULLNAT local address"),
            ("10.77.0/24", "dpdk0", "any valid prefix"),
        ] {
            let e = addr_add(&mut c, addr, dev).unwrap_err().to_string();
            assert!(e.contains(want), "{addr} {dev}: {e}");
            assert_eq!(c, before, "a refused add changes nothing");
        }
        addr_add(&mut c, "10.77.0.3/24", "dpdk0").unwrap();
        addr_add(&mut c, "10.81.0.2/24", "dpdk1").unwrap();
        let e = addr_add(&mut c, "10.77.0.3/24", "dpdk0").unwrap_err();
        assert!(matches!(e, IpError::Exists(_)), "{e}");
        let t = routes(&c);
        assert!(t.v4.is_local([10, 77, 0, 3]));
        assert_eq!(
            t.v4.next_hop([10, 81, 0, 9]),
            Some((1, [10, 81, 0, 9])),
            "the new subnet is connected"
        );
        let e = addr_del(&mut c, "10.77.0.2/24", "dpdk0").unwrap_err();
        assert!(matches!(e, IpError::Refused(_)), "{e}");
        assert!(matches!(
            addr_del(&mut c, "10.77.0.4", "dpdk0"),
            Err(IpError::Missing(_))
        ));
        addr_del(&mut c, "10.77.0.3", "dpdk0").unwrap();
        addr_del(&mut c, "10.81.0.2/24", "dpdk1").unwrap();
        assert_eq!(c, before);
    }

    #[test]
    fn route_add_and_del() {
        let mut c = two_arm();
        let before = c.clone();
        let spec = |p: &str, via: Option<&str>, dev: Option<&str>| RouteSpec {
            prefix: p.into(),
            via: via.map(Into::into),
            dev: dev.map(Into::into),
        };
        for (s, want) in [
            (
                spec("10.90.0.1/16", Some("10.79.0.254"), None),
                "Invalid prefix for given prefix length: 10.90.0.1/16 (did you mean 10.90.0.0/16?)",
            ),
            (
                spec("10.90.0.0/16", Some("10.99.0.1"), None),
                "Nexthop has invalid gateway: 10.99.0.1",
            ),
            (
                spec("10.90.0.0/16", Some("10.77.0.1"), Some("dpdk1")),
                "10.77.0.1 is on no connected subnet of dpdk1",
            ),
            (
                spec("10.90.0.0/16", None, Some("nosuch")),
                "Cannot find device \"nosuch\"",
            ),
            (spec("10.80.0.0/24", Some("10.77.0.1"), None), "File exists"),
            (spec("10.79.0.0/24", None, Some("dpdk1")), "File exists"),
            (
                spec("10.90.0.0/99", None, Some("dpdk1")),
                "any valid prefix",
            ),
        ] {
            let e = route_add(&mut c, &s).unwrap_err().to_string();
            assert!(e.contains(want), "{s:?}: {e}");
            assert_eq!(c, before);
        }
        let r = route_add(&mut c, &spec("default", Some("10.77.0.1"), None)).unwrap();
        assert_eq!(r.dev, "dpdk0");
        assert_eq!(
            routes(&c).v4.next_hop([8, 8, 8, 8]),
            Some((0, [10, 77, 0, 1]))
        );
        let e = route_del(&mut c, &spec("10.79.0.0/24", None, None)).unwrap_err();
        assert!(matches!(e, IpError::Refused(_)), "{e}");
        assert!(matches!(
            route_del(&mut c, &spec("10.91.0.0/24", None, None)),
            Err(IpError::Missing(_))
        ));
        route_del(&mut c, &spec("default", None, None)).unwrap();
        route_del(
            &mut c,
            &spec("10.80.0.0/24", Some("10.79.0.254"), Some("dpdk1")),
        )
        .unwrap();
        assert!(c.routes.is_empty());
    }

    #[test]
    fn renders_links_addresses_and_neighbours() {
        let link = LinkView {
            name: "dpdk0".into(),
            device: "net_af_packet0,iface=lb0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            up: true,
            mtu: 1500,
            stats: [10, 1000, 0, 1, 2, 20, 2000, 0],
            vlan: None,
        };
        let cmd = |request, stats| Command {
            request,
            stats,
            dev: None,
            family: None,
        };
        let text = render(
            &cmd(IpRequest::LinkShow, true),
            &IpResponse::Links(vec![link.clone()]),
        );
        assert!(
            text.starts_with(
                "1: dpdk0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP\n    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("        1000         10       0       1        2\n"),
            "{text}"
        );
        let addrs = vec![
            AddrView {
                dev: "dpdk0".into(),
                addr: Ipv4Addr::new(10, 77, 0, 2).into(),
                len: 24,
                configured: true,
                flags: String::new(),
            },
            AddrView {
                dev: "dpdk0".into(),
                addr: Ipv4Addr::new(10, 77, 0, 3).into(),
                len: 24,
                configured: false,
                flags: String::new(),
            },
        ];
        let sub = LinkView {
            name: "dpdk0.100".into(),
            device: String::new(),
            vlan: Some(("dpdk0".into(), 100)),
            stats: [0; 8],
            ..link.clone()
        };
        let text = render(
            &cmd(IpRequest::LinkShow, true),
            &IpResponse::Links(vec![link.clone(), sub]),
        );
        assert!(
            text.ends_with("2: dpdk0.100@dpdk0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP\n    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff\n    vlan protocol 802.1Q id 100\n"),
            "{text}"
        );
        let text = render(
            &cmd(IpRequest::AddrShow, false),
            &IpResponse::Addrs(vec![link], addrs),
        );
        assert!(text.contains("    inet 10.77.0.2/24 brd 10.77.0.255 scope global dpdk0\n    inet 10.77.0.3/24 brd 10.77.0.255 scope global secondary dpdk0\n"), "{text}");
        let n = vec![
            NeighView {
                addr: Ipv4Addr::new(10, 77, 0, 11).into(),
                dev: "dpdk0".into(),
                lladdr: Some([2, 0, 0, 0, 0, 0x11]),
                state: "REACHABLE".into(),
            },
            NeighView {
                addr: Ipv4Addr::new(10, 77, 0, 13).into(),
                dev: "dpdk0".into(),
                lladdr: None,
                state: "INCOMPLETE".into(),
            },
        ];
        assert_eq!(
            render(&cmd(IpRequest::NeighShow, false), &IpResponse::Neighbours(n)),
            "10.77.0.11 dev dpdk0 lladdr 02:00:00:00:00:11 REACHABLE\n10.77.0.13 dev dpdk0 INCOMPLETE\n"
        );
    }

    fn dual_stack() -> Config {
        let text = include_str!("../../config/lab.toml")
            .replace(
                "address6 = \"fd77::2/64\"",
                "address6 = \"fd77::2/64\"\ngateway6 = \"fd77::1\"",
            )
            .replace(
                "[[service]]",
                "[[route]]\ndestination = \"fd80::/64\"\nvia = \"fd77::fe\"\n\n[[service]]",
            );
        crate::config::parse(Path::new("v6.toml"), &text).unwrap()
    }

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn ipv6_routes_reach_the_v6_table() {
        let c = dual_stack();
        let t = routes(&c);
        assert_eq!(
            t.v6.next_hop(v6("fd77::11")),
            Some((0, v6("fd77::11"))),
            "connected"
        );
        assert_eq!(
            t.v6.next_hop(v6("fd80::9")),
            Some((0, v6("fd77::fe"))),
            "static"
        );
        assert_eq!(
            t.v6.next_hop(v6("2001:db8::1")),
            Some((0, v6("fd77::1"))),
            "gateway6"
        );
        assert!(t.v6.is_local(v6("fd77::2")) && !t.v6.is_local(v6("fd77::3")));
        assert_eq!(
            t.v4.next_hop([10, 77, 0, 11]),
            Some((0, [10, 77, 0, 11])),
            "IPv4 as before"
        );
        let list = IpResponse::Routes(route_list(&c.interfaces, &c.addresses, &c.routes));
        let show = |words_: &str| render(&parse(&words(words_)).unwrap(), &list);
        assert_eq!(
            show("route show"),
            "10.77.0.0/24 dev dpdk0 proto kernel scope link src 10.77.0.2\n",
            "ip route: IPv4"
        );
        assert_eq!(
            show("-6 route show"),
            "fd77::/64 dev dpdk0 proto kernel scope link src fd77::2\n\
             default via fd77::1 dev dpdk0 proto boot\n\
             fd80::/64 via fd77::fe dev dpdk0 proto static\n"
        );
        assert!(
            is_command(&words("-6 route show"))
                && is_command(&words("-4 addr"))
                && !is_command(&words("-6 -A -t [fd77::1]:80"))
        );
        assert_eq!(
            ns_source(&c, 0, "fd77::11".parse().unwrap()),
            Some("fd77::2".parse().unwrap())
        );
        let v4_only = crate::config::parse(
            Path::new("v4.toml"),
            &include_str!("../../config/lab.toml").replace("address6 = \"fd77::2/64\"", ""),
        )
        .unwrap();
        assert_eq!(
            ns_source(&v4_only, 0, "fd77::11".parse().unwrap()),
            None,
            "no IPv6 address: nothing to solicit from"
        );
    }

    #[test]
    fn ipv6_addresses_and_routes_at_run_time() {
        let mut c = dual_stack();
        let before = c.clone();
        for (addr, want) in [
            ("fd77::2/64", "is the address of dpdk0"),
            ("fd77::/129", "any valid prefix"),
            ("ff02::1/128", "invalid address"),
            ("::ffff:10.0.0.1/128", "any valid prefix"),
        ] {
            let e = addr_add(&mut c, addr, "dpdk0").unwrap_err().to_string();
            assert!(e.contains(want), "{addr}: {e}");
            assert_eq!(c, before);
        }
        addr_add(&mut c, "fd77::3/64", "dpdk0").unwrap();
        addr_add(&mut c, "fd81::2/64", "dpdk0").unwrap();
        let t = routes(&c);
        assert!(t.v6.is_local(v6("fd77::3")));
        assert_eq!(t.v6.next_hop(v6("fd81::9")), Some((0, v6("fd81::9"))));
        let mut views = addr_views(&c);
        views[2].flags = "dadfailed tentative".into();
        let link = LinkView {
            name: "dpdk0".into(),
            device: String::new(),
            mac: [2, 0, 0, 0, 0, 1],
            up: true,
            mtu: 1500,
            stats: [0; 8],
            vlan: None,
        };
        let addrs = IpResponse::Addrs(vec![link], views);
        let text = render(&parse(&words("addr show")).unwrap(), &addrs);
        assert!(text.contains("    inet 10.77.0.2/24 brd 10.77.0.255 scope global dpdk0\n    inet6 fd77::2/64 scope global\n    inet6 fd77::3/64 scope global dadfailed tentative\n"), "{text}");
        let text = render(&parse(&words("-6 addr show")).unwrap(), &addrs);
        assert!(
            !text.contains("inet ") && text.contains("inet6 fd77::3/64"),
            "{text}"
        );
        let text = render(&parse(&words("-4 addr")).unwrap(), &addrs);
        assert!(
            text.contains("inet 10.77.0.2/24") && !text.contains("inet6"),
            "{text}"
        );
        assert!(matches!(
            addr_del(&mut c, "fd77::2/64", "dpdk0"),
            Err(IpError::Refused(_))
        ));
        addr_del(&mut c, "fd77::3", "dpdk0").unwrap();
        addr_del(&mut c, "fd81::2/64", "dpdk0").unwrap();
        assert_eq!(c, before);
        let spec = |p: &str, via: Option<&str>| RouteSpec {
            prefix: p.into(),
            via: via.map(Into::into),
            dev: None,
        };
        let e = route_add(&mut c, &spec("fd90::/64", Some("10.77.0.1")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not of the family"), "{e}");
        let e = route_add(&mut c, &spec("default", Some("fd77::9")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("File exists"),
            "gateway6 has the IPv6 default: {e}"
        );
        let r = route_add(&mut c, &spec("fd90::/64", Some("fd77::9"))).unwrap();
        assert_eq!(
            (r.dev.as_str(), r.via),
            ("dpdk0", Some("fd77::9".parse().unwrap()))
        );
        assert_eq!(
            routes(&c).v6.next_hop(v6("fd90::1")),
            Some((0, v6("fd77::9")))
        );
        route_del(&mut c, &spec("fd90::/64", None)).unwrap();
        assert_eq!(c, before);
        assert!(parse(&words("addr add fd77::5/64 dev dpdk0")).is_ok());
        assert!(parse(&words(
            "neigh add fd77::11 lladdr 02:00:00:00:00:11 dev dpdk0"
        ))
        .is_ok());
        assert!(parse(&words("route add fd90::/64 via fd77::1")).is_ok());
    }
}
