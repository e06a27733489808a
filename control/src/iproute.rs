//! The changes behind `rvsadm addr add|del` and `route add|del`
//! ([`addr_add`], [`route_add`], ...), and the address list `addr show`
//! answers with ([`addr_views`]). They validate against the live [`Config`]
//! and change it only when everything is right, so a refused command
//! changes nothing. The model they change (run-time addresses, static
//! routes, the route list) is [`crate::config::net`]; the requests and
//! answers are [`crate::api::ip`]; the command line and its `ip`-style text
//! are rvsadm's (control/src/bin/rvsadm/ip.rs).
//!
//! Errors read like iproute2's (`Cannot find device "x"`, `RTNETLINK
//! answers: File exists`) and make rvsadm exit with status 2, as `ip` does.

use std::net::IpAddr;

use crate::api::ip::{AddrView, RouteSpec};
use crate::config::net::{
    check_route, default_for, origin_word, parse_prefix, port_of, route_list, show_prefix,
    AddressConfig, IpError, RouteConfig, RouteOrigin,
};
use crate::config::Config;

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
    if config.services.iter().any(|s| s.vip.ip() == a)
        || config.marks.iter().any(|m| m.hosts().any(|h| h == a))
    {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::net::routes;

    fn two_arm() -> Config {
        let text = include_str!("../../config/lab.toml").replace(
            "[[service]]",
            "[[interface]]\nname = \"dpdk1\"\ndevice = \"net_af_packet1,iface=lb1\"\naddress = \"10.79.0.2/24\"\n\n[[route]]\ndestination = \"10.80.0.0/24\"\nvia = \"10.79.0.254\"\n\n[[service]]",
        );
        crate::config::parse(Path::new("two-arm.toml"), &text).unwrap()
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
}
