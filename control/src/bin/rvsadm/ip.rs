//! `rvsadm link|addr|route|neigh`: the iproute2-style command line
//! ([`parse`]), the request to rvsd ([`run`]) and the `ip`-style text of the
//! answer ([`render`]). The requests and answers are
//! [`rvs_control::api::ip`]; rvsd's side is [`rvs_control::iproute`].

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use rvs_control::api::ip::{AddrView, IpRequest, IpResponse, LinkView, RouteSpec};
use rvs_control::config::net::{mask, parse_mac, parse_prefix, show_prefix, IpError, RouteOrigin};

/// `-s` (statistics) and `-4`/`-6` (family), which `ip` takes before the
/// object and rvsadm anywhere.
fn is_flag(w: &str) -> bool {
    matches!(w, "-s" | "-stats" | "-statistics" | "-4" | "-6")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    Link,
    Addr,
    Route,
    Neigh,
}

/// The object `word` names (ip's abbreviations too).
pub(crate) fn object(word: &str) -> Option<Object> {
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

/// `rvsadm OBJECT ...` (`words` as [`super::own`] hands them over, the
/// object first): parses them, asks rvsd at `socket`, prints the answer.
/// Exit status 0; 2 for a bad command line or a refused change (as `ip`);
/// 1 when rvsd cannot be reached.
#[must_use]
pub fn run(prog: &str, socket: &std::path::Path, words: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    if words
        .iter()
        .any(|w| w == "help" || w == "-h" || w == "--help")
    {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let cmd = match parse(words) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match rvs_control::api::call(socket, &rvs_control::api::Request::Ip(cmd.request.clone())) {
        Ok(rvs_control::api::Response::Ip(IpResponse::Refused(e))) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Ok(rvs_control::api::Response::Ip(r)) => {
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
        Ok(rvs_control::api::Response::Error(e)) => {
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
    use std::net::Ipv6Addr;
    use std::path::Path;

    use rvs_control::api::ip::NeighView;
    use rvs_control::config::net::{ns_source, route_list, routes};
    use rvs_control::config::Config;
    use rvs_control::iproute::{addr_add, addr_del, addr_views, route_add, route_del};

    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }
    fn two_arm() -> Config {
        let text = include_str!("../../../../config/lab.toml").replace(
            "[[service]]",
            "[[interface]]\nname = \"dpdk1\"\ndevice = \"net_af_packet1,iface=lb1\"\naddress = \"10.79.0.2/24\"\n\n[[route]]\ndestination = \"10.80.0.0/24\"\nvia = \"10.79.0.254\"\n\n[[service]]",
        );
        rvs_control::config::parse(Path::new("two-arm.toml"), &text).unwrap()
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
        let text = include_str!("../../../../config/lab.toml")
            .replace(
                "address6 = \"fd77::2/64\"",
                "address6 = \"fd77::2/64\"\ngateway6 = \"fd77::1\"",
            )
            .replace(
                "[[service]]",
                "[[route]]\ndestination = \"fd80::/64\"\nvia = \"fd77::fe\"\n\n[[service]]",
            );
        rvs_control::config::parse(Path::new("v6.toml"), &text).unwrap()
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
        assert_eq!(
            ns_source(&c, 0, "fd77::11".parse().unwrap()),
            Some("fd77::2".parse().unwrap())
        );
        let v4_only = rvs_control::config::parse(
            Path::new("v4.toml"),
            &include_str!("../../../../config/lab.toml").replace("address6 = \"fd77::2/64\"", ""),
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
