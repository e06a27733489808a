//! From the raw file to a [`Config`]: every check that needs more than a type.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use dataplane::sched::{SchedFlags, SchedKind};
use dataplane::session::{TcpState, Timeouts};
use toml::Spanned;

use super::claims::{service_name, Claims, Use};
use super::ranges;
use super::raw::{RawConfig, RawTimeouts};
use super::{
    check_client_address, check_forward, check_laddr_family, check_mh_table_size, check_netmask,
    check_netmask6, check_ops, check_server_family, check_thresholds, line_col, parse_forward,
    Config, ConfigError, DataplaneConfig, DpdkConfig, Forward, IdlePolicy, InterfaceConfig,
    Persistence, RealServerConfig, ServiceConfig, ServiceOptions, Thresholds, VlanConfig,
};

pub(super) struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn err_at(
        &self,
        span: std::ops::Range<usize>,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: self.path.to_path_buf(),
            at: Some(line_col(self.text, span.start)),
            reason: reason.into(),
        }
    }
    pub(super) fn at<T>(&self, v: &Spanned<T>, reason: impl Into<String>) -> ConfigError {
        self.err_at(v.span(), reason)
    }
    fn nowhere(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_path_buf(),
            at: None,
            reason: reason.into(),
        }
    }
}

/// Validates a parsed file.
///
/// # Errors
/// The first problem found, as a [`ConfigError`].
pub(super) fn validate(path: &Path, text: &str, raw: RawConfig) -> Result<Config, ConfigError> {
    let cx = Ctx { path, text };
    let dp = &raw.dataplane;

    let worker_lcores = match &dp.worker_lcores {
        Some(w) => {
            if w.get_ref().is_empty() {
                return Err(cx.at(w, "worker_lcores must list at least one lcore"));
            }
            let mut seen = HashSet::new();
            for l in w.get_ref() {
                if *l == raw.dpdk.main_lcore {
                    return Err(cx.at(
                        w,
                        format!("lcore {l} is the main lcore; workers need lcores of their own"),
                    ));
                }
                if !seen.insert(*l) {
                    return Err(cx.at(w, format!("lcore {l} listed twice")));
                }
            }
            w.get_ref().clone()
        }
        None => vec![raw.dpdk.main_lcore + 1],
    };
    let idle = match &dp.idle {
        None => IdlePolicy::Busy,
        Some(s) => match s.get_ref().as_str() {
            "busy" => IdlePolicy::Busy,
            "backoff" => IdlePolicy::Backoff,
            other => {
                return Err(cx.at(
                    s,
                    format!("idle must be \"busy\" or \"backoff\", not {other:?}"),
                ))
            }
        },
    };
    let session_capacity = positive(
        &cx,
        dp.session_capacity.as_ref(),
        1 << 20,
        "session_capacity",
    )?;
    let template_capacity = positive(
        &cx,
        dp.template_capacity.as_ref(),
        dataplane::pipeline::template_capacity(session_capacity),
        "template_capacity",
    )?;
    let mbufs = positive(&cx, dp.mbufs.as_ref(), 16383, "mbufs")?;
    if mbufs < 1024 {
        if let Some(m) = &dp.mbufs {
            return Err(cx.at(m, "mbufs must be at least 1024"));
        }
    }
    let lport_range = match &dp.local_port_range {
        None => (1025, 65535),
        Some(s) => parse_range(s.get_ref()).ok_or_else(|| cx.at(s, format!("local_port_range must be \"FIRST-LAST\" with 1 <= FIRST <= LAST <= 65535, not {:?}", s.get_ref())))?,
    };
    let isn_secret = match &dp.isn_secret {
        None => None,
        Some(s) => Some(parse_secret(s.get_ref()).ok_or_else(|| {
            cx.at(
                s,
                "isn_secret must be 32 hexadecimal digits (16 bytes; e.g. from `openssl rand -hex 16`), the same on both appliances of a pair",
            )
        })?),
    };

    if raw.interface.is_empty() {
        return Err(cx.nowhere("no [[interface]]: rvsd needs at least one DPDK port"));
    }
    let mut interfaces = Vec::new();
    let mut names = HashSet::new();
    // Ports first, in file order, then their 802.1Q sub-interfaces (which
    // are logical ports numbered after the physical ones).
    let (ports, vlans): (Vec<_>, Vec<_>) = raw
        .interface
        .iter()
        .partition(|i| i.link.is_none() && i.vlan.is_none());
    // The kernel interfaces the devices attach to (`iface=`): each
    // interface gets a TAP of its own name on the exception path, which
    // cannot be created under a name the kernel already uses.
    let kernel_ifaces: Vec<(String, String)> = raw
        .interface
        .iter()
        .filter_map(|i| i.device.as_ref())
        .filter_map(|d| {
            let dev = d.get_ref().trim();
            dev.split(',')
                .skip(1)
                .find_map(|kv| kv.strip_prefix("iface="))
                .map(|k| (k.to_string(), dev.to_string()))
        })
        .collect();
    for i in ports.into_iter().chain(vlans) {
        if let Some((_, dev)) = kernel_ifaces.iter().find(|(k, _)| k == i.name.get_ref()) {
            return Err(cx.at(
                &i.name,
                format!(
                    "interface name {:?} is the kernel interface device {dev:?} attaches to: rvsd gives every interface a TAP of its name (the exception path, where ip and tcpdump see it), so the name must differ from the device's iface (e.g. name = \"dpdk0\")",
                    i.name.get_ref()
                ),
            ));
        }
        if !names.insert(i.name.get_ref().clone()) {
            return Err(cx.at(
                &i.name,
                format!("interface {:?} defined twice", i.name.get_ref()),
            ));
        }
        let vlan = interface_kind(&cx, i, &interfaces)?;
        let (addr, prefix_len) = parse_cidr(i.address.get_ref()).ok_or_else(|| {
            cx.at(
                &i.address,
                format!(
                    "address must be IPv4/PREFIX like \"10.0.0.2/24\", not {:?}",
                    i.address.get_ref()
                ),
            )
        })?;
        let gateway = match &i.gateway {
            None => None,
            Some(g) => Some(g.get_ref().parse::<Ipv4Addr>().map_err(|_| {
                cx.at(
                    g,
                    format!("gateway {:?} is not an IPv4 address", g.get_ref()),
                )
            })?),
        };
        let addr6 = match &i.address6 {
            None => None,
            Some(a) => Some(parse_cidr6(a.get_ref()).ok_or_else(|| {
                cx.at(a, format!("address6 must be IPv6/PREFIX like \"fd77::2/64\" (a unicast address, prefix 1..=128), not {:?}", a.get_ref()))
            })?),
        };
        let gateway6 = match &i.gateway6 {
            None => None,
            Some(g) => {
                let gw = g.get_ref().parse::<Ipv6Addr>().map_err(|_| {
                    cx.at(
                        g,
                        format!("gateway6 {:?} is not an IPv6 address", g.get_ref()),
                    )
                })?;
                let Some((a, len)) = addr6 else {
                    return Err(cx.at(g, "gateway6 needs address6 (the gateway must be on the interface's IPv6 subnet)"));
                };
                // A link-local gateway is on every link; otherwise it must
                // be on the interface's subnet.
                let link_local = gw.segments()[0] & 0xffc0 == 0xfe80;
                if !link_local
                    && dataplane::addr::Addr::from(gw).masked(len)
                        != dataplane::addr::Addr::from(a).masked(len)
                {
                    return Err(cx.at(
                        g,
                        format!("gateway6 {gw} is not on the interface's subnet {a}/{len}"),
                    ));
                }
                Some(gw)
            }
        };
        // A sub-interface carries at most its parent's MTU (the tag is not
        // part of it), and by default exactly that.
        let parent_mtu = vlan
            .as_ref()
            .and_then(|v| {
                interfaces
                    .iter()
                    .find(|p: &&InterfaceConfig| p.name == v.link)
            })
            .map(|p| p.mtu);
        let mtu = match &i.mtu {
            None => parent_mtu.unwrap_or(1500),
            Some(m) => {
                let mtu = u16::try_from(*m.get_ref())
                    .ok()
                    .filter(|m| (576..=9216).contains(m))
                    .ok_or_else(|| {
                        cx.at(m, format!("mtu must be 576..9216, not {}", m.get_ref()))
                    })?;
                if let (Some(pm), Some(v)) = (parent_mtu, &vlan) {
                    if mtu > pm {
                        return Err(cx.at(
                            m,
                            format!("mtu {mtu} is larger than its link {}'s mtu {pm}", v.link),
                        ));
                    }
                }
                mtu
            }
        };
        let device = i
            .device
            .as_ref()
            .map(|d| d.get_ref().trim().to_string())
            .unwrap_or_default();
        let ic = InterfaceConfig {
            name: i.name.get_ref().clone(),
            device,
            addr,
            prefix_len,
            gateway,
            addr6,
            gateway6,
            mtu,
            vlan,
        };
        if let Some(d) = &i.device {
            if let Some(q) = ic.devarg("qpairs") {
                if q.parse::<usize>().ok() != Some(worker_lcores.len()) {
                    return Err(cx.at(d, format!("device has qpairs={q} but there are {} workers: each worker needs its own queue pair", worker_lcores.len())));
                }
            }
            if raw.dpdk.no_pci && !ic.is_vdev() {
                return Err(cx.at(
                    d,
                    format!(
                        "device {:?} is a PCI device but [dpdk] no_pci = true",
                        ic.device
                    ),
                ));
            }
        }
        interfaces.push(ic);
    }

    let mut routes = Vec::new();
    for r in &raw.route {
        let dest = super::net::parse_prefix(r.destination.get_ref(), true)
            .map_err(|_| cx.at(&r.destination, format!("destination must be IPv4/PREFIX or IPv6/PREFIX like \"10.80.0.0/24\" or \"fd80::/64\", or \"default\", not {:?}", r.destination.get_ref())))?;
        let via =
            match &r.via {
                None => None,
                Some(v) => Some(v.get_ref().parse::<IpAddr>().map_err(|_| {
                    cx.at(v, format!("via {:?} is not an IP address", v.get_ref()))
                })?),
            };
        let dest = super::net::default_for(dest, via);
        if let Some(v) = &r.via {
            if via.is_some_and(|g| g.is_ipv4() != dest.0.is_ipv4()) {
                return Err(cx.at(
                    v,
                    format!(
                        "via {} is not of the family of destination {}",
                        v.get_ref(),
                        r.destination.get_ref()
                    ),
                ));
            }
        }
        let dev = r.interface.as_ref().map(|d| d.get_ref().as_str());
        let checked =
            super::net::check_route(&interfaces, &[], &routes, dest, via, dev).map_err(|e| {
                let at = match (&e, &r.interface, &r.via) {
                    (super::net::IpError::NoDevice(_), Some(d), _) => d.span(),
                    (super::net::IpError::BadGateway(..), _, Some(v)) => v.span(),
                    _ => r.destination.span(),
                };
                cx.err_at(at, format!("route: {e}"))
            })?;
        routes.push(checked);
    }

    let mut services = Vec::new();
    let mut service_options = BTreeMap::new();
    let mut health = BTreeMap::new();
    let mut vips = HashSet::new();
    let marks = super::marks::validate(&cx, &raw.mark)?;
    for s in &raw.service {
        let (vip, proto, key_span) = service_key(&cx, s)?;
        // How messages name it: the VIP, or `fwmark N`.
        let label = match super::marks::mark_of(vip, proto) {
            Some((m, false)) => format!("fwmark {m}"),
            Some((m, true)) => format!("fwmark {m} (IPv6)"),
            None => vip.to_string(),
        };
        let fwmark = super::marks::is_fwmark(proto);
        if !vips.insert((vip, proto)) {
            return Err(cx.err_at(key_span, format!("service {label} defined twice")));
        }
        let scheduler = match &s.scheduler {
            None => SchedKind::default(),
            Some(n) => SchedKind::from_name(n.get_ref()).ok_or_else(|| {
                cx.at(
                    n,
                    format!(
                        "unknown scheduler {:?} (supported: {})",
                        n.get_ref(),
                        SchedKind::names()
                    ),
                )
            })?,
        };
        let forward = match &s.forward {
            None => Forward::FullNat,
            Some(f) => parse_forward(f.get_ref()).map_err(|e| cx.at(f, e))?,
        };
        let mut local_addresses = Vec::new();
        for a in &s.local_addresses {
            let ip = a.get_ref().parse::<IpAddr>().map_err(|_| {
                cx.at(
                    a,
                    format!("local address {:?} is not an IP address", a.get_ref()),
                )
            })?;
            local_addresses.push(ip);
        }
        if s.real_server.is_empty() {
            return Err(cx.err_at(
                key_span,
                format!("service {label} has no [[service.real_server]]"),
            ));
        }
        let mut real_servers = Vec::new();
        let mut options = ServiceOptions::default();
        let mut any_fullnat = false;
        for r in &s.real_server {
            // A fwmark service's server may have no port: its connections
            // keep the packet's (ipvsadm's `-a -f 1 -r RS`, port 0).
            let bare = || {
                let text = r.address.get_ref();
                let ip = text.parse::<IpAddr>().ok().or_else(|| {
                    text.strip_suffix(":0")
                        .and_then(|a| parse_socket(&format!("{a}:1")))
                        .map(|s| s.ip())
                })?;
                let mapped = matches!(ip, IpAddr::V6(a) if a.to_ipv4_mapped().is_some());
                (fwmark && !mapped).then_some(SocketAddr::new(ip, 0))
            };
            let addr = parse_socket(r.address.get_ref()).or_else(bare).ok_or_else(|| {
                cx.at(
                    &r.address,
                    if fwmark {
                        format!(
                            "real server address must be IPv4[:PORT] or [IPv6]:PORT (or an IPv6 address alone), not {:?}",
                            r.address.get_ref()
                        )
                    } else {
                        format!(
                            "real server address must be IPv4:PORT or [IPv6]:PORT, not {:?}",
                            r.address.get_ref()
                        )
                    },
                )
            })?;
            let weight = match &r.weight {
                None => 1,
                Some(w) => ranges::weight(*w.get_ref()).map_err(|e| cx.at(w, e))?,
            };
            if real_servers
                .iter()
                .any(|x: &RealServerConfig| x.addr == addr)
            {
                return Err(cx.at(&r.address, format!("real server {addr} listed twice")));
            }
            let threshold = |v: &Option<Spanned<i64>>, what: &str| -> Result<u32, ConfigError> {
                match v {
                    None => Ok(0),
                    Some(v) => ranges::threshold(*v.get_ref(), what).map_err(|e| cx.at(v, e)),
                }
            };
            let t = Thresholds {
                upper: threshold(&r.upper_threshold, "upper_threshold")?,
                lower: threshold(&r.lower_threshold, "lower_threshold")?,
            };
            if let Err(e) = check_thresholds(t) {
                return Err(match &r.lower_threshold {
                    Some(l) => cx.at(l, e),
                    None => cx.at(&r.address, e),
                });
            }
            if t != Thresholds::default() {
                options.thresholds.insert(addr, t);
            }
            let rs_forward = match &r.forward {
                None => forward,
                Some(f) => parse_forward(f.get_ref()).map_err(|e| cx.at(f, e))?,
            };
            check_forward(rs_forward, vip, addr)
                .map_err(|e| cx.at(r.forward.as_ref().map_or(&r.address, |f| f), e))?;
            check_server_family(
                vip,
                addr,
                rs_forward,
                real_servers.first().map(|x: &RealServerConfig| x.addr),
            )
            .map_err(|e| {
                cx.at(
                    if addr.is_ipv4() == vip.is_ipv4() {
                        &r.address
                    } else {
                        r.forward.as_ref().map_or(&r.address, |f| f)
                    },
                    e,
                )
            })?;
            if rs_forward != forward {
                options.forwards.insert(addr, rs_forward);
            }
            any_fullnat |= rs_forward == Forward::FullNat;
            real_servers.push(RealServerConfig { addr, weight });
        }
        let servers_v4 = real_servers
            .first()
            .map(|r: &RealServerConfig| r.addr.is_ipv4());
        for (a, ip) in s.local_addresses.iter().zip(&local_addresses) {
            check_laddr_family(vip, servers_v4, *ip).map_err(|e| cx.at(a, e))?;
        }
        if any_fullnat && local_addresses.is_empty() {
            return Err(cx.err_at(
                key_span,
                format!("service {label}: FULLNAT needs local_addresses"),
            ));
        }
        for f in &s.sched_flags {
            let bit =
                SchedFlags::parse(scheduler, f.get_ref()).map_err(|e| cx.at(f, e.to_string()))?;
            options.sched_flags = options.sched_flags.union(bit);
        }
        if let Some(m) = &s.mh_table_size {
            if scheduler != SchedKind::MaglevHashing {
                return Err(cx.at(
                    m,
                    format!(
                        "mh_table_size only applies to the mh scheduler, not {}",
                        scheduler.name()
                    ),
                ));
            }
            let size = u32::try_from(*m.get_ref()).map_err(|_| {
                cx.at(
                    m,
                    format!("mh_table_size must be a prime, not {}", m.get_ref()),
                )
            })?;
            check_mh_table_size(size, real_servers.len()).map_err(|e| cx.at(m, e))?;
            options.mh_table_size = Some(size);
        }
        options.persistence = match &s.persistent {
            None => None,
            Some(p) => match p.get_ref() {
                toml::Value::Boolean(false) => None,
                toml::Value::Boolean(true) => Some(Persistence::new(Persistence::DEFAULT_TIMEOUT)),
                toml::Value::Integer(secs) => Some(Persistence::new(
                    ranges::persistent_secs(*secs).map_err(|e| cx.at(p, e))?,
                )),
                other => {
                    return Err(cx.at(
                        p,
                        format!(
                            "persistent must be a number of seconds or true/false, not {other}"
                        ),
                    ))
                }
            },
        };
        if let Some(m) = &s.persistent_netmask {
            let text = match m.get_ref() {
                toml::Value::String(t) => t.clone(),
                toml::Value::Integer(n) if vip.is_ipv6() => n.to_string(),
                other => return Err(cx.at(m, format!("persistent_netmask must be a dotted netmask like \"255.255.255.0\", not {other}"))),
            };
            if vip.is_ipv6() {
                let len = check_netmask6(&text).map_err(|e| cx.at(m, e))?;
                match options.persistence.as_mut() {
                    Some(p) => p.prefix6 = len,
                    None => {
                        return Err(cx.at(
                            m,
                            "persistent_netmask needs persistent (ipvsadm -M goes with -p)",
                        ))
                    }
                }
            } else {
                let mask: Ipv4Addr = text.parse().map_err(|_| cx.at(m, format!("persistent_netmask must be a dotted netmask like \"255.255.255.0\", not {text:?}")))?;
                check_netmask(mask.octets()).map_err(|e| cx.at(m, e))?;
                match options.persistence.as_mut() {
                    Some(p) => p.netmask = mask.octets(),
                    None => {
                        return Err(cx.at(
                            m,
                            "persistent_netmask needs persistent (ipvsadm -M goes with -p)",
                        ))
                    }
                }
            }
        }
        if let Some(o) = &s.ops {
            options.ops = *o.get_ref();
            check_ops(options.ops, proto).map_err(|e| cx.at(o, e))?;
        }
        if let Some(c) = &s.client_address {
            options.client_address =
                check_client_address(c.get_ref(), proto, forward).map_err(|e| cx.at(c, e))?;
        }
        super::access::validate(&cx, s, vip, &mut options)?;
        if let Some(sp) = &s.syn_proxy {
            options.syn_proxy = *sp.get_ref();
            if options.syn_proxy {
                let forwards = std::iter::once(forward).chain(options.forwards.values().copied());
                super::check_syn_proxy(proto, forwards).map_err(|e| cx.at(sp, e))?;
            }
        }
        if options != ServiceOptions::default() {
            service_options.insert((vip, proto), options);
        }
        if let Some(h) = &s.health_check {
            let at = |span: std::ops::Range<usize>, reason: String| cx.err_at(span, reason);
            let check = super::health::validate(&at, h)?;
            if let (Some(sorry), Some(raw)) =
                (check.sorry_server, h.get_ref().sorry_server.as_ref())
            {
                check_server_family(
                    vip,
                    sorry,
                    forward,
                    real_servers.first().map(|r: &RealServerConfig| r.addr),
                )
                .map_err(|e| cx.at(raw, e))?;
            }
            // A probe goes to the server's port: a fwmark service's server
            // without one (its connections keep the packet's) has none.
            let probes_port = !matches!(
                check.kind,
                crate::health::CheckKind::Icmp | crate::health::CheckKind::Script(_)
            );
            if let Some(r) = real_servers
                .iter()
                .find(|r| probes_port && r.addr.port() == 0)
            {
                return Err(cx.at(
                    h,
                    format!("health_check of service {label}: real server {} has no port to probe (give it one, or use kind \"icmp\" or \"script\")", r.addr.ip()),
                ));
            }
            health.insert((vip, proto), check);
        }
        services.push(ServiceConfig {
            vip,
            proto,
            scheduler,
            forward,
            local_addresses,
            real_servers,
        });
    }

    let mut claims = check_claims(&cx, &raw, &interfaces, &services)?;
    super::marks::check_claims(&cx, &raw.mark, &marks, &mut claims, &interfaces, &services)?;
    let interface_names: Vec<String> = interfaces.iter().map(|i| i.name.clone()).collect();

    let lcore_map = match &raw.dpdk.lcore_map {
        None => None,
        Some(m) => {
            let ids: Vec<u32> = m
                .get_ref()
                .split(',')
                .filter_map(|e| e.split('@').next()?.trim().parse().ok())
                .collect();
            for l in std::iter::once(&raw.dpdk.main_lcore).chain(&worker_lcores) {
                if !ids.contains(l) {
                    return Err(cx.at(
                        m,
                        format!(
                            "lcore_map does not place lcore {l} (write it as \"LCORE@CPU,...\")"
                        ),
                    ));
                }
            }
            Some(m.get_ref().clone())
        }
    };

    let vip_routes = vip_routes(&cx, raw.vip_routes.as_ref(), &raw.interface, &services)?;
    Ok(Config {
        path: PathBuf::from(path),
        dpdk: DpdkConfig {
            main_lcore: raw.dpdk.main_lcore,
            memory_mb: raw.dpdk.memory_mb,
            no_huge: raw.dpdk.no_huge,
            no_pci: raw.dpdk.no_pci,
            file_prefix: raw.dpdk.file_prefix.clone(),
            extra_args: raw.dpdk.extra_args.clone(),
            lcore_map,
        },
        dataplane: DataplaneConfig {
            worker_lcores,
            idle,
            session_capacity,
            template_capacity,
            mbufs,
            lport_range,
            isn_secret,
        },
        socket: control_socket(&cx, raw.control.socket.as_ref())?,
        print_interval: match &raw.metrics.print_interval {
            None => None,
            Some(v) => Some(
                u32::try_from(*v.get_ref())
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| {
                        cx.at(
                            v,
                            format!(
                                "print_interval must be a whole number of seconds >= 1, not {}",
                                v.get_ref()
                            ),
                        )
                    })?,
            ),
        },
        metrics: match &raw.metrics.address {
            None => None,
            Some(a) => Some(a.get_ref().parse().map_err(|_| {
                cx.at(
                    a,
                    format!(
                        "metrics address must be IP:PORT like \"127.0.0.1:9477\", not {:?}",
                        a.get_ref()
                    ),
                )
            })?),
        },
        interfaces,
        routes,
        addresses: Vec::new(),
        services,
        timeouts: timeouts(&cx, &raw.timeouts)?,
        flood_guard: super::flood_guard::flood_guard(&raw.flood_guard)
            .map_err(|(span, e)| cx.err_at(span, e))?,
        service_options,
        health,
        vip_routes,
        sync: super::sync::validate(&raw.sync, &interface_names, &|span, reason| {
            cx.err_at(span, reason)
        })?,
        marks,
    })
}

/// `[vip_routes]`: a table the kernel lets rvsd use, an interface of the
/// file, a grace period in range.
fn vip_routes(
    cx: &Ctx<'_>,
    raw: Option<&Spanned<super::raw::RawVipRoutes>>,
    interfaces: &[super::raw::RawInterface],
    services: &[ServiceConfig],
) -> Result<Option<crate::vip_routes::VipRoutesConfig>, ConfigError> {
    let Some(section) = raw else {
        return Ok(None);
    };
    let r = section.get_ref();
    let table = *r.table.get_ref();
    let table = u32::try_from(table)
        .ok()
        .filter(|t| *t >= 1 && !(253..=255).contains(t))
        .ok_or_else(|| {
            cx.at(
                &r.table,
                format!(
                    "table must be 1..=252 or 256..=4294967295 (253-255 are the kernel's default, main and local), not {table}"
                ),
            )
        })?;
    let interface = match &r.interface {
        Some(name) => {
            if !interfaces
                .iter()
                .any(|i| i.name.get_ref() == name.get_ref())
            {
                return Err(cx.at(name, format!("no [[interface]] named {:?}", name.get_ref())));
            }
            name.get_ref().clone()
        }
        None => match interfaces.first() {
            Some(i) => i.name.get_ref().clone(),
            None => return Err(cx.at(section, "[vip_routes] needs an [[interface]]")),
        },
    };
    let drain_grace = match &r.drain_grace {
        None => crate::vip_routes::DEFAULT_GRACE_SECS,
        Some(g) => u32::try_from(*g.get_ref())
            .ok()
            .filter(|g| *g <= 3600)
            .ok_or_else(|| {
                cx.at(
                    g,
                    format!("drain_grace must be 0..=3600 seconds, not {}", g.get_ref()),
                )
            })?,
    };
    // A peer's local address is never one of this box's: two appliances
    // lending the same local ports would both receive each other's replies.
    let mut peer_local_addresses = Vec::new();
    for a in &r.peer_local_addresses {
        let ip = a.get_ref().parse::<IpAddr>().map_err(|_| {
            cx.at(
                a,
                format!("peer local address {:?} is not an IP address", a.get_ref()),
            )
        })?;
        if let Some(s) = services.iter().find(|s| s.local_addresses.contains(&ip)) {
            return Err(cx.at(
                a,
                format!(
                    "peer local address {ip} is also a local address of service {} here: each appliance needs a pool of its own",
                    s.vip
                ),
            ));
        }
        if let Some(s) = services.iter().find(|s| s.vip.ip() == ip) {
            return Err(cx.at(
                a,
                format!("peer local address {ip} is the VIP of service {}", s.vip),
            ));
        }
        if services
            .iter()
            .any(|s| s.real_servers.iter().any(|r| r.addr.ip() == ip))
        {
            return Err(cx.at(a, format!("peer local address {ip} is a real server")));
        }
        if peer_local_addresses.contains(&ip) {
            return Err(cx.at(a, format!("peer local address {ip} is listed twice")));
        }
        peer_local_addresses.push(ip);
    }
    Ok(Some(crate::vip_routes::VipRoutesConfig {
        table,
        interface,
        drain_grace,
        peer_local_addresses,
    }))
}

/// No address used in two ways that cannot share it (see
/// [`super::claims`]), reported at the later of the two in the file.
fn check_claims(
    cx: &Ctx<'_>,
    raw: &RawConfig,
    interfaces: &[InterfaceConfig],
    services: &[ServiceConfig],
) -> Result<Claims, ConfigError> {
    let mut claims = Claims::default();
    for i in &raw.interface {
        let Some(ic) = interfaces.iter().find(|c| c.name == *i.name.get_ref()) else {
            continue;
        };
        let owner = format!("of {}", ic.name);
        claims
            .claim(ic.addr.into(), Use::Interface, owner.clone())
            .map_err(|e| cx.at(&i.address, e))?;
        if let (Some((a, _)), Some(span)) = (ic.addr6, &i.address6) {
            claims
                .claim(a.into(), Use::Interface, owner)
                .map_err(|e| cx.at(span, e))?;
        }
    }
    for (s, svc) in raw.service.iter().zip(services) {
        let name = format!("of service {}", service_name(svc.proto, svc.vip));
        // A fwmark service has no address of its own (its rules' are
        // claimed with the rules).
        if let Some(vip) = s
            .vip
            .as_ref()
            .filter(|_| !super::marks::is_fwmark(svc.proto))
        {
            claims
                .claim(svc.vip.ip(), Use::Vip, name.clone())
                .map_err(|e| cx.at(vip, e))?;
        }
        for (span, ip) in s.local_addresses.iter().zip(&svc.local_addresses) {
            claims
                .claim(*ip, Use::LocalAddress, name.clone())
                .map_err(|e| cx.at(span, e))?;
        }
        for (r, rs) in s.real_server.iter().zip(&svc.real_servers) {
            claims
                .claim(rs.addr.ip(), Use::RealServer, format!("{} {name}", rs.addr))
                .map_err(|e| cx.at(&r.address, e))?;
        }
    }
    Ok(claims)
}

/// A service's key: (VIP, protocol) from `vip` and `protocol`, or for
/// `fwmark` (ipvsadm's `-f`) the mark's key (see [`super::marks`]), with
/// where in the file it was given.
fn service_key(
    cx: &Ctx<'_>,
    s: &super::raw::RawService,
) -> Result<(SocketAddr, u8, std::ops::Range<usize>), ConfigError> {
    match (&s.vip, &s.fwmark) {
        (Some(v), Some(f)) => Err(cx.at(
            f,
            format!(
                "a service has a vip ({:?}) or a fwmark, not both",
                v.get_ref()
            ),
        )),
        (None, None) => Err(
            cx.nowhere("a [[service]] needs a vip (\"10.0.0.100:80\") or a fwmark (ipvsadm's -f)")
        ),
        (None, Some(f)) => {
            let mark = u32::try_from(*f.get_ref())
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(|| {
                    cx.at(
                        f,
                        format!("fwmark must be 1..=4294967295, not {}", f.get_ref()),
                    )
                })?;
            if let Some(p) = &s.protocol {
                return Err(cx.at(p, "a fwmark service takes every protocol its mark is given to: name the protocol in its [[mark]] rules"));
            }
            let v6 = s.ipv6.as_ref().is_some_and(|b| *b.get_ref());
            Ok((
                super::marks::service_key(mark, v6),
                dataplane::marks::FWMARK_PROTO,
                f.span(),
            ))
        }
        (Some(v), None) => {
            if let Some(b) = &s.ipv6 {
                return Err(cx.at(
                    b,
                    "ipv6 goes with fwmark (a vip's address gives its family)",
                ));
            }
            let vip = parse_socket(v.get_ref())
                .ok_or_else(|| cx.at(v, format!("vip must be IPv4:PORT or [IPv6]:PORT like \"10.0.0.100:80\" or \"[fd77::100]:80\", not {:?}", v.get_ref())))?;
            let proto = match &s.protocol {
                None => 6,
                Some(p) => match p.get_ref().as_str() {
                    "tcp" => 6,
                    "udp" => 17,
                    other => {
                        return Err(cx.at(
                            p,
                            format!("protocol must be \"tcp\" or \"udp\", not {other:?}"),
                        ))
                    }
                },
            };
            Ok((vip, proto, v.span()))
        }
    }
}

/// `[control] socket`: see [`crate::runfiles`] for what is refused.
fn control_socket(cx: &Ctx<'_>, raw: Option<&Spanned<String>>) -> Result<PathBuf, ConfigError> {
    let Some(s) = raw else {
        return Ok(PathBuf::from(super::DEFAULT_SOCKET));
    };
    let path = PathBuf::from(s.get_ref());
    let uid = crate::runfiles::own_uid().unwrap_or(0);
    match crate::runfiles::socket_path_problem(&path, uid) {
        Some(problem) => Err(cx.at(s, problem)),
        None => Ok(path),
    }
}

fn positive(
    cx: &Ctx<'_>,
    v: Option<&Spanned<u32>>,
    default: u32,
    what: &str,
) -> Result<u32, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) if *v.get_ref() == 0 => Err(cx.at(v, format!("{what} must be positive"))),
        Some(v) => Ok(*v.get_ref()),
    }
}

fn timeouts(cx: &Ctx<'_>, raw: &RawTimeouts) -> Result<Timeouts, ConfigError> {
    let mut t = Timeouts::default();
    let tcp = [
        (&raw.tcp_established, TcpState::Established),
        (&raw.tcp_syn_sent, TcpState::SynSent),
        (&raw.tcp_syn_recv, TcpState::SynRecv),
        (&raw.tcp_fin_wait, TcpState::FinWait),
        (&raw.tcp_time_wait, TcpState::TimeWait),
        (&raw.tcp_close, TcpState::Close),
        (&raw.tcp_close_wait, TcpState::CloseWait),
        (&raw.tcp_last_ack, TcpState::LastAck),
        (&raw.tcp_listen, TcpState::Listen),
        (&raw.tcp_synack, TcpState::SynAck),
    ];
    for (v, state) in tcp {
        if let Some(v) = v {
            t.set_tcp(state, secs(cx, v)?);
        }
    }
    if let Some(v) = &raw.udp {
        t.udp_secs = secs(cx, v)?;
    }
    Ok(t)
}

fn secs(cx: &Ctx<'_>, v: &Spanned<i64>) -> Result<u32, ConfigError> {
    ranges::timeout_secs(*v.get_ref()).map_err(|e| cx.at(v, e))
}

fn parse_socket(s: &str) -> Option<SocketAddr> {
    let sa: SocketAddr = s.parse().ok()?;
    // `[::ffff:a.b.c.d]:p` is the IPv4 service a.b.c.d:p, written as such.
    let sa = match sa.ip() {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => return None,
        _ => sa,
    };
    (sa.port() != 0).then_some(sa)
}

fn parse_cidr6(s: &str) -> Option<(Ipv6Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let p: u8 = p.parse().ok()?;
    let a: Ipv6Addr = a.parse().ok()?;
    let unicast = !a.is_unspecified()
        && !a.is_multicast()
        && !a.is_loopback()
        && a.to_ipv4_mapped().is_none();
    ((1..=128).contains(&p) && unicast).then_some((a, p))
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let p: u8 = p.parse().ok()?;
    (p <= 32).then_some((a.parse().ok()?, p))
}

/// 32 hexadecimal digits as 16 bytes (`isn_secret`).
fn parse_secret(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a >= 1 && a <= b).then_some((a, b))
}

/// What kind of interface `i` is: a DPDK port (`device`; `None`) or an
/// 802.1Q sub-interface (`link` and `vlan`) of a port among `ports` (the
/// interfaces validated so far: every port comes before any sub-interface).
fn interface_kind(
    cx: &Ctx<'_>,
    i: &super::raw::RawInterface,
    ports: &[InterfaceConfig],
) -> Result<Option<VlanConfig>, ConfigError> {
    let name = i.name.get_ref();
    match (&i.device, &i.link, &i.vlan) {
        (Some(d), None, None) => {
            if d.get_ref().trim().is_empty() {
                return Err(cx.at(d, "device is empty"));
            }
            Ok(None)
        }
        (None, None, None) => Err(cx.at(&i.name, format!("interface {name:?} needs a device (a DPDK port) or link and vlan (an 802.1Q sub-interface of one)"))),
        (Some(_), Some(l), _) => Err(cx.at(l, format!("interface {name:?} has both device and link: a DPDK port has a device, an 802.1Q sub-interface a link and a vlan"))),
        (Some(_), None, Some(v)) => Err(cx.at(v, format!("interface {name:?} has both device and vlan: a DPDK port has a device, an 802.1Q sub-interface a link and a vlan"))),
        (None, None, Some(v)) => Err(cx.at(v, format!("interface {name:?}: vlan needs link (the parent interface)"))),
        (None, Some(l), None) => Err(cx.at(l, format!("interface {name:?}: link needs vlan (the 802.1Q VLAN id)"))),
        (None, Some(l), Some(v)) => {
            let id = super::net::check_vlan(ports, name, l.get_ref(), *v.get_ref()).map_err(|e| match e {
                super::net::IpError::NoDevice(_) | super::net::IpError::Usage(_) => cx.at(l, e.to_string()),
                _ => cx.at(v, e.to_string()),
            })?;
            Ok(Some(VlanConfig { link: l.get_ref().clone(), id }))
        }
    }
}
