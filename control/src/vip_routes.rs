//! VIP routes for a BGP speaker: which VIPs the appliance offers to its
//! routers, as host routes in a kernel routing table that BIRD (or any
//! daemon reading kernel tables) exports over BGP.
//!
//! rvs speaks no BGP itself. With `[vip_routes]` in the config, rvsd keeps
//! one route per VIP (`VIP/32` or `/128`, `dev` the exception-path
//! interface, protocol [`PROTO`]) in the configured table, and only while
//! the VIP can be served:
//!
//! - the appliance is up: rvsd writes the routes once its workers run, and
//!   the routes name its TAP interface, so the kernel deletes them with the
//!   TAP when rvsd dies (even by `kill -9`);
//! - some service on the VIP has a usable real server (weight above zero
//!   once health checks are applied, or its sorry server);
//! - the appliance is not draining (`rvsadm drain`, SIGTERM): draining
//!   withdraws every route first and then, after the grace period, stops.
//!
//! FULLNAT local addresses have routes of their own, for fabrics that route
//! them (the real servers send replies to a local address through a router,
//! not over one shared segment): this box's own local addresses with metric
//! [`OWN_LOCAL_METRIC`], and with `peer_local_addresses` the other
//! appliances' with metric [`PEER_LOCAL_METRIC`], which the BGP daemon
//! announces with a longer AS path (BIRD: `krt_metric`). The router then
//! sends a peer's replies here only once the peer's own route is gone (it
//! died), and the sessions this box received from it by connection sync
//! carry on. Local-address routes stay while the box drains (its
//! established connections' replies must still come back) and go with the
//! TAP when rvsd stops.
//!
//! This module decides (plain data, tested here); the daemon runs `ip`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The route protocol number rvsd's VIP routes carry (`ip route ... proto
/// 250`), unassigned in iproute2's `rt_protos`; start-up deletes every
/// route of this protocol from the table (left by a killed rvsd whose TAP
/// survived), and BIRD's `learn` takes them in as routes of another daemon.
pub const PROTO: u32 = 250;

/// The metric of a route to one of this box's own local addresses.
pub const OWN_LOCAL_METRIC: u32 = 1;

/// The metric of a route to a peer appliance's local address: a backup
/// path, announced with a longer AS path.
pub const PEER_LOCAL_METRIC: u32 = 100;

/// Default time from withdrawing the routes to stopping, seconds.
pub const DEFAULT_GRACE_SECS: u32 = 30;

/// `[vip_routes]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipRoutesConfig {
    /// Kernel routing table the routes go to (not `local`, `main` or
    /// `default`: 1..=252 or above 255).
    pub table: u32,
    /// Exception-path interface the routes name (default: the first).
    pub interface: String,
    /// Seconds between withdrawing the routes and stopping (SIGTERM,
    /// `rvsadm drain`); 0 stops at once.
    pub drain_grace: u32,
    /// The FULLNAT local addresses of the other active appliances (ECMP):
    /// never lent here, routed here as a backup path, and a session synced
    /// from a peer on one of them is installed and served here.
    pub peer_local_addresses: Vec<IpAddr>,
}

/// Why a VIP is or is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VipState {
    /// Its route is in the table.
    Announced,
    /// No service on it has a usable real server.
    NoUsableServer,
    /// The appliance is draining.
    Draining,
}

impl VipState {
    /// How `rvsadm vips` names it.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Announced => "announced",
            Self::NoUsableServer => "withdrawn (no usable real server)",
            Self::Draining => "withdrawn (draining)",
        }
    }
}

/// One change to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteChange {
    /// Add (replace) the VIP's route.
    Add(IpAddr),
    /// Delete it.
    Delete(IpAddr),
    /// Add the route to a local address, with this metric.
    AddLocal(IpAddr, u32),
    /// Delete the route to a local address that had this metric.
    DeleteLocal(IpAddr, u32),
}

/// The local-address routes `config` asks for: each FULLNAT local address
/// of a service with [`OWN_LOCAL_METRIC`], each of `[vip_routes]
/// peer_local_addresses` with [`PEER_LOCAL_METRIC`]. Empty without
/// `[vip_routes]`.
#[must_use]
pub fn local_routes(config: &Config) -> BTreeMap<IpAddr, u32> {
    let Some(c) = &config.vip_routes else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<IpAddr, u32> = c
        .peer_local_addresses
        .iter()
        .map(|a| (*a, PEER_LOCAL_METRIC))
        .collect();
    for s in &config.services {
        for a in &s.local_addresses {
            out.insert(*a, OWN_LOCAL_METRIC);
        }
    }
    out
}

/// Whether each VIP of `config` (as the data plane sees it: health applied)
/// has a usable real server on some service. A firewall-mark service has
/// no address of its own: the host addresses of its mark's rules (`/32`,
/// `/128`) stand for it; wider prefixes are the operator's to route.
#[must_use]
pub fn usable_vips(config: &Config) -> BTreeMap<IpAddr, bool> {
    let mut out = BTreeMap::new();
    for s in &config.services {
        let usable = s.real_servers.iter().any(|r| r.weight > 0);
        match crate::config::marks::mark_of(s.vip, s.proto) {
            None => *out.entry(s.vip.ip()).or_insert(false) |= usable,
            Some((mark, v6)) => {
                let hosts = config
                    .marks
                    .iter()
                    .filter(|m| m.mark == mark)
                    .flat_map(crate::config::marks::MarkConfig::hosts)
                    .filter(|ip| ip.is_ipv6() == v6);
                for ip in hosts {
                    *out.entry(ip).or_insert(false) |= usable;
                }
            }
        }
    }
    out
}

/// The routes rvsd has in the table and the state each VIP is in.
#[derive(Debug, Default)]
pub struct VipRoutes {
    announced: BTreeSet<IpAddr>,
    locals: BTreeSet<(IpAddr, u32)>,
    states: BTreeMap<IpAddr, VipState>,
    draining: bool,
}

impl VipRoutes {
    /// Whether the appliance is draining.
    #[must_use]
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Starts (`true`) or ends draining; call [`Self::update`] after.
    pub fn set_draining(&mut self, on: bool) {
        self.draining = on;
    }

    /// Each VIP and its state, as of the last [`Self::update`].
    #[must_use]
    pub fn states(&self) -> &BTreeMap<IpAddr, VipState> {
        &self.states
    }

    /// The local-address routes in the table, with their metrics.
    #[must_use]
    pub fn locals(&self) -> &BTreeSet<(IpAddr, u32)> {
        &self.locals
    }

    /// The changes that bring the local-address routes to `wanted` (see
    /// [`local_routes`]), deletions first. A drain leaves them.
    pub fn update_locals(&mut self, wanted: &BTreeMap<IpAddr, u32>) -> Vec<RouteChange> {
        let wanted: BTreeSet<(IpAddr, u32)> = wanted.iter().map(|(a, m)| (*a, *m)).collect();
        let mut changes: Vec<RouteChange> = self
            .locals
            .difference(&wanted)
            .map(|(a, m)| RouteChange::DeleteLocal(*a, *m))
            .collect();
        changes.extend(
            wanted
                .difference(&self.locals)
                .map(|(a, m)| RouteChange::AddLocal(*a, *m)),
        );
        self.locals = wanted;
        changes
    }

    /// The changes that bring the table to what `usable` asks for, in
    /// address order, deletions first; the table is taken to hold them
    /// once returned (the caller logs a change that failed).
    pub fn update(&mut self, usable: &BTreeMap<IpAddr, bool>) -> Vec<RouteChange> {
        self.states = usable
            .iter()
            .map(|(ip, ok)| {
                let state = if self.draining {
                    VipState::Draining
                } else if *ok {
                    VipState::Announced
                } else {
                    VipState::NoUsableServer
                };
                (*ip, state)
            })
            .collect();
        let wanted: BTreeSet<IpAddr> = self
            .states
            .iter()
            .filter(|(_, s)| **s == VipState::Announced)
            .map(|(ip, _)| *ip)
            .collect();
        let mut changes: Vec<RouteChange> = self
            .announced
            .difference(&wanted)
            .map(|ip| RouteChange::Delete(*ip))
            .collect();
        changes.extend(
            wanted
                .difference(&self.announced)
                .map(|ip| RouteChange::Add(*ip)),
        );
        self.announced = wanted;
        changes
    }
}

/// The `ip` arguments that make `change` in the table of `c`.
#[must_use]
pub fn ip_args(c: &VipRoutesConfig, change: RouteChange) -> Vec<String> {
    let (verb, ip, metric) = match change {
        RouteChange::Add(ip) => ("replace", ip, None),
        RouteChange::Delete(ip) => ("del", ip, None),
        RouteChange::AddLocal(ip, m) => ("replace", ip, Some(m)),
        RouteChange::DeleteLocal(ip, m) => ("del", ip, Some(m)),
    };
    let (family, len) = if ip.is_ipv4() {
        ("-4", 32)
    } else {
        ("-6", 128)
    };
    let mut args = [
        family,
        "route",
        verb,
        &format!("{ip}/{len}"),
        "dev",
        &c.interface,
        "table",
        &c.table.to_string(),
        "proto",
        &PROTO.to_string(),
    ]
    .map(String::from)
    .to_vec();
    if let Some(m) = metric {
        args.extend(["metric".to_string(), m.to_string()]);
    }
    args
}

/// The `ip` arguments that delete every rvs route of `family` ("-4" or
/// "-6") from the table (start-up, stop).
#[must_use]
pub fn flush_args(c: &VipRoutesConfig, family: &str) -> Vec<String> {
    [
        family,
        "route",
        "flush",
        "table",
        &c.table.to_string(),
        "proto",
        &PROTO.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// `rvsadm vips|drain|undrain`'s usage.
pub const USAGE: &str = "\
Usage:
  rvsadm vips                  the VIP routes offered to a BGP daemon ([vip_routes])
  rvsadm drain [--stay]        withdraw every VIP route, then stop rvsd after the
                               grace period (drain_grace), as SIGTERM does;
                               --stay: keep running withdrawn until undrain
  rvsadm undrain               announce the routes again, cancel a pending stop
Options: --socket PATH (default $RVS_SOCKET or /run/rvs/rvsd.sock)
";

/// Whether `words` are a `vips|drain|undrain` command.
#[must_use]
pub fn is_command(words: &[String]) -> bool {
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--socket" {
            it.next();
        } else if !w.starts_with('-') {
            return matches!(w.as_str(), "vips" | "drain" | "undrain");
        }
    }
    false
}

/// The request `words` ask for, and the socket named, or what is wrong.
///
/// # Errors
/// Unknown words and options.
pub fn parse_command(
    words: &[String],
) -> Result<(crate::api::Request, Option<std::path::PathBuf>), String> {
    use crate::api::Request;
    let mut socket = None;
    let mut stay = false;
    let mut verb = None;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "--socket" => socket = Some(it.next().ok_or("--socket needs a path")?.into()),
            "--stay" => stay = true,
            "vips" | "drain" | "undrain" if verb.is_none() => verb = Some(w.as_str()),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    let req = match verb {
        Some("vips") if !stay => Request::ListVips,
        Some("drain") => Request::Drain { stay },
        Some("undrain") if !stay => Request::Undrain,
        _ => return Err("--stay goes with drain only".into()),
    };
    Ok((req, socket))
}

/// `rvsadm vips`'s text.
#[must_use]
pub fn render(v: &crate::api::VipsView) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "VIP routes: table {}, interface {}, protocol {PROTO}\n",
        v.table, v.interface
    );
    for (ip, state) in &v.vips {
        let _ = writeln!(out, "{:<40} {}", ip.to_string(), state.describe());
    }
    for (ip, metric) in &v.local_routes {
        let whose = if *metric == PEER_LOCAL_METRIC {
            "a peer's"
        } else {
            "own"
        };
        let _ = writeln!(
            out,
            "{:<40} local address ({whose}, metric {metric})",
            ip.to_string()
        );
    }
    if v.draining {
        match v.stop_in_secs {
            Some(s) => {
                let _ = writeln!(out, "draining: rvsd stops in {s} s");
            }
            None => out.push_str("draining: until rvsadm undrain\n"),
        }
    }
    out
}

/// Runs `rvsadm vips|drain|undrain` (exit 2 on bad words, 255 when rvsd
/// refuses, 1 when it cannot be reached).
pub fn run(prog: &str, words: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    if words.iter().any(|w| w == "-h" || w == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (req, socket) = match parse_command(words) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{prog}: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let socket = socket
        .or_else(|| std::env::var_os("RVS_SOCKET").map(Into::into))
        .unwrap_or_else(|| crate::api::DEFAULT_SOCKET.into());
    match crate::api::call(&socket, &req) {
        Ok(crate::api::Response::Vips(v)) => {
            print!("{}", render(&v));
            ExitCode::SUCCESS
        }
        Ok(crate::api::Response::Error(e)) => {
            eprintln!("{e}");
            ExitCode::from(255)
        }
        Ok(other) => {
            eprintln!("{prog}: unexpected answer {other:?}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn usable(list: &[(&str, bool)]) -> BTreeMap<IpAddr, bool> {
        list.iter().map(|(a, u)| (ip(a), *u)).collect()
    }

    #[test]
    fn announces_usable_vips_and_withdraws_when_servers_go() {
        let mut r = VipRoutes::default();
        let ch = r.update(&usable(&[("10.0.0.1", true), ("10.0.0.2", false)]));
        assert_eq!(ch, vec![RouteChange::Add(ip("10.0.0.1"))]);
        assert_eq!(r.states()[&ip("10.0.0.2")], VipState::NoUsableServer);
        // Nothing changed: nothing to do.
        assert!(r
            .update(&usable(&[("10.0.0.1", true), ("10.0.0.2", false)]))
            .is_empty());
        let ch = r.update(&usable(&[("10.0.0.1", false), ("10.0.0.2", true)]));
        assert_eq!(
            ch,
            vec![
                RouteChange::Delete(ip("10.0.0.1")),
                RouteChange::Add(ip("10.0.0.2"))
            ]
        );
        // A VIP whose services are all deleted goes too.
        let ch = r.update(&usable(&[]));
        assert_eq!(ch, vec![RouteChange::Delete(ip("10.0.0.2"))]);
        assert!(r.states().is_empty());
    }

    #[test]
    fn local_address_routes_follow_the_config_and_carry_their_metric() {
        let mut r = VipRoutes::default();
        let wanted: BTreeMap<IpAddr, u32> = [
            (ip("10.83.0.1"), OWN_LOCAL_METRIC),
            (ip("10.83.0.2"), PEER_LOCAL_METRIC),
        ]
        .into();
        assert_eq!(
            r.update_locals(&wanted),
            vec![
                RouteChange::AddLocal(ip("10.83.0.1"), OWN_LOCAL_METRIC),
                RouteChange::AddLocal(ip("10.83.0.2"), PEER_LOCAL_METRIC)
            ]
        );
        // A drain withdraws VIPs only.
        r.set_draining(true);
        assert!(r.update(&usable(&[("10.0.0.1", true)])).is_empty());
        assert!(r.update_locals(&wanted).is_empty());
        // An address that changes hands: the old route goes first.
        let moved: BTreeMap<IpAddr, u32> = [(ip("10.83.0.2"), OWN_LOCAL_METRIC)].into();
        assert_eq!(
            r.update_locals(&moved),
            vec![
                RouteChange::DeleteLocal(ip("10.83.0.1"), OWN_LOCAL_METRIC),
                RouteChange::DeleteLocal(ip("10.83.0.2"), PEER_LOCAL_METRIC),
                RouteChange::AddLocal(ip("10.83.0.2"), OWN_LOCAL_METRIC)
            ]
        );
        let c = VipRoutesConfig {
            table: 100,
            interface: "dpdk0".into(),
            drain_grace: 30,
            peer_local_addresses: vec![],
        };
        assert_eq!(
            ip_args(
                &c,
                RouteChange::AddLocal(ip("10.83.0.2"), PEER_LOCAL_METRIC)
            )
            .join(" "),
            "-4 route replace 10.83.0.2/32 dev dpdk0 table 100 proto 250 metric 100"
        );
    }

    #[test]
    fn draining_withdraws_everything_and_undrain_restores() {
        let mut r = VipRoutes::default();
        let u = usable(&[("10.0.0.1", true), ("fd00::1", true), ("10.0.0.3", false)]);
        assert_eq!(r.update(&u).len(), 2);
        r.set_draining(true);
        let ch = r.update(&u);
        assert_eq!(
            ch,
            vec![
                RouteChange::Delete(ip("10.0.0.1")),
                RouteChange::Delete(ip("fd00::1"))
            ]
        );
        assert!(r.states().values().all(|s| *s == VipState::Draining));
        // Servers coming back while draining change nothing.
        assert!(r
            .update(&usable(&[
                ("10.0.0.1", true),
                ("fd00::1", true),
                ("10.0.0.3", true)
            ]))
            .is_empty());
        r.set_draining(false);
        assert_eq!(r.update(&u).len(), 2);
    }

    #[test]
    fn a_vip_with_one_usable_service_is_announced() {
        use crate::config::{Forward, RealServerConfig, ServiceConfig};
        use dataplane::sched::SchedKind;
        let svc = |port: u16, weight: u32| ServiceConfig {
            vip: format!("10.0.0.1:{port}").parse().unwrap(),
            proto: 6,
            scheduler: SchedKind::RoundRobin,
            forward: Forward::Dr,
            local_addresses: vec![],
            real_servers: vec![RealServerConfig {
                addr: "10.0.1.1:80".parse().unwrap(),
                weight,
            }],
        };
        let mut c = crate::config::parse(
            std::path::Path::new("lab.toml"),
            include_str!("../../config/lab.toml"),
        )
        .unwrap();
        c.services = vec![svc(80, 0), svc(443, 1)];
        assert_eq!(usable_vips(&c), usable(&[("10.0.0.1", true)]));
        c.services = vec![svc(80, 0), svc(443, 0)];
        assert_eq!(usable_vips(&c), usable(&[("10.0.0.1", false)]));
    }

    #[test]
    fn commands_parse_and_render() {
        use crate::api::{Request, VipsView};
        let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert!(is_command(&words("--socket /x vips")));
        assert!(is_command(&words("drain --stay")));
        assert!(!is_command(&words("-L -n")));
        assert_eq!(
            parse_command(&words("drain")).unwrap().0,
            Request::Drain { stay: false }
        );
        assert_eq!(
            parse_command(&words("drain --stay --socket /s")).unwrap(),
            (Request::Drain { stay: true }, Some("/s".into()))
        );
        assert!(parse_command(&words("vips --stay")).is_err());
        assert!(parse_command(&words("undrain now")).is_err());
        let v = VipsView {
            table: 100,
            interface: "dpdk0".into(),
            draining: true,
            stop_in_secs: Some(12),
            vips: vec![(ip("10.0.0.1"), VipState::Draining)],
            local_routes: vec![
                (ip("10.83.0.1"), OWN_LOCAL_METRIC),
                (ip("10.83.0.2"), PEER_LOCAL_METRIC),
            ],
        };
        assert_eq!(
            render(&v),
            "VIP routes: table 100, interface dpdk0, protocol 250\n\
             10.0.0.1                                 withdrawn (draining)\n\
             10.83.0.1                                local address (own, metric 1)\n\
             10.83.0.2                                local address (a peer's, metric 100)\n\
             draining: rvsd stops in 12 s\n"
        );
    }

    #[test]
    fn ip_arguments_name_table_protocol_and_tap() {
        let c = VipRoutesConfig {
            table: 100,
            interface: "dpdk0".into(),
            drain_grace: 5,
            peer_local_addresses: vec![],
        };
        assert_eq!(
            ip_args(&c, RouteChange::Add(ip("10.0.0.1"))).join(" "),
            "-4 route replace 10.0.0.1/32 dev dpdk0 table 100 proto 250"
        );
        assert_eq!(
            ip_args(&c, RouteChange::Delete(ip("fd00::1"))).join(" "),
            "-6 route del fd00::1/128 dev dpdk0 table 100 proto 250"
        );
        assert_eq!(
            flush_args(&c, "-4").join(" "),
            "-4 route flush table 100 proto 250"
        );
    }
}
