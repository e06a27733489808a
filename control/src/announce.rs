//! Gratuitous ARP and unsolicited neighbour advertisements: telling the
//! link that the appliance now holds an address.
//!
//! Every time control publishes tables (start-up, `rvsadm -A`/`-E`,
//! `rvsadm addr add`, a reload), [`Announcer::update`] compares the
//! addresses the new snapshot owns — VIPs, FULLNAT local addresses,
//! interface addresses, the configured ones and those added at run time —
//! with the previous snapshot's. Each new one is announced [`REPEATS`]
//! times, [`INTERVAL`] apart (keepalived and `arping -U -c 3` do the same;
//! one frame can be lost), by worker 0: a gratuitous ARP for IPv4, an
//! unsolicited Neighbor Advertisement with the override flag for IPv6 (see
//! [`dataplane::neigh`]). It goes out of the port whose connected subnet
//! holds the address (or that carries it, for an interface address), or out
//! of every port when no connected route covers it.
//!
//! Hosts that already hold an entry for the address (a router or client
//! that talked to the previous holder of a VIP) point it at the appliance's
//! MAC at once; Linux creates no new entry from it unless `arp_accept` is
//! set. An address removed and added again is announced again. An IPv6
//! address is announced once duplicate address detection lets it be used
//! (see [`crate::dad`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dataplane::addr::Addr;
use dataplane::route::{NextHop, Route};
use dataplane::tables::Tables;

/// Times each new address is announced.
pub const REPEATS: u32 = 3;
/// Time between two announcements of one address.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Announcements still to send for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    ip: Addr,
    ports: Vec<u16>,
    left: u32,
    next: Instant,
}

/// The addresses announced so far and the announcements still due.
#[derive(Debug, Default)]
pub struct Announcer {
    known: BTreeSet<Addr>,
    pending: Vec<Pending>,
}

impl Announcer {
    /// Takes in the snapshot about to be published: every address it owns
    /// that the previous one did not is due for announcement now. Returns
    /// those addresses. Announcements for addresses it no longer owns are
    /// dropped.
    pub fn update(&mut self, tables: &Tables, now: Instant) -> Vec<Addr> {
        let mut owned = owned(tables);
        // An address in duplicate address detection is announced once it
        // passes (a later snapshot), never if it fails.
        owned.retain(|ip| !tables.is_tentative(*ip));
        // An address on standby (another appliance holds it) is announced
        // when this one takes it over.
        owned.retain(|ip| !tables.is_standby(*ip));
        let new: Vec<Addr> = owned.difference(&self.known).copied().collect();
        self.pending.retain(|p| owned.contains(&p.ip));
        for &ip in &new {
            self.pending.push(Pending {
                ip,
                ports: ports(tables, ip),
                left: REPEATS,
                next: now,
            });
        }
        self.known = owned;
        new
    }

    /// Calls `send(port, ip)` for every announcement due at `now`.
    pub fn due(&mut self, now: Instant, mut send: impl FnMut(u16, Addr)) {
        for p in self.pending.iter_mut().filter(|p| p.next <= now) {
            for &port in &p.ports {
                send(port, p.ip);
            }
            p.left -= 1;
            p.next = now + INTERVAL;
        }
        self.pending.retain(|p| p.left > 0);
    }
}

/// Every address `tables` owns: VIPs, local addresses, interface addresses
/// (the local routes, which include those added at run time).
#[must_use]
pub fn owned(tables: &Tables) -> BTreeSet<Addr> {
    // A firewall-mark service's key is no address; its mark rules' host
    // addresses are (see `dataplane::marks`).
    let mut set: BTreeSet<Addr> = tables
        .services
        .iter()
        .filter(|s| !s.is_fwmark())
        .map(|s| s.vip.ip)
        .collect();
    set.extend(tables.marks.rules.iter().flat_map(|r| {
        r.prefixes
            .iter()
            .filter(|p| p.len() == if p.addr().is_v4() { 32 } else { 128 })
            .map(|p| p.addr())
    }));
    set.extend(tables.laddrs.iter().copied());
    set.extend(
        tables
            .interfaces
            .iter()
            .filter(|i| i.addr != [0; 4])
            .map(|i| Addr::v4(i.addr)),
    );
    set.extend(
        tables
            .routes
            .v4
            .routes()
            .iter()
            .filter(|r| r.len == 32 && matches!(r.hop, NextHop::Local { .. }))
            .map(|r| Addr::v4(r.prefix)),
    );
    set.extend(
        tables
            .routes
            .v6
            .routes()
            .iter()
            .filter(|r| r.len == 128 && matches!(r.hop, NextHop::Local { .. }))
            .map(|r| Addr::v6(r.prefix)),
    );
    set
}

/// The ports to announce `ip` on: the one whose connected route covers it
/// (or whose interface carries it), else all of them.
#[must_use]
pub fn ports(tables: &Tables, ip: Addr) -> Vec<u16> {
    let port = match ip.to_v4() {
        Some(v4) if tables.routes.v4.is_empty() => tables
            .interfaces
            .iter()
            .find(|i| i.on_link(v4))
            .map(|i| i.port),
        Some(v4) => covering_port(tables.routes.v4.lookup(v4)),
        None => covering_port(tables.routes.v6.lookup(ip.octets())),
    };
    match port {
        Some(p) => vec![p],
        None => tables.interfaces.iter().map(|i| i.port).collect(),
    }
}

/// The port of a connected or local route.
fn covering_port<A>(route: Option<&Route<A>>) -> Option<u16> {
    match route?.hop {
        NextHop::OnLink { port } | NextHop::Local { port } => Some(port),
        NextHop::Via { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;
    use crate::plan::{self, Registry};

    fn lab() -> config::Config {
        config::parse(Path::new("lab.toml"), include_str!("../../config/lab.toml")).unwrap()
    }

    /// The lab with a second service on `vip` (`rvsadm -A`).
    fn with_vip(vip: &str) -> config::Config {
        let mut c = lab();
        let mut s = c.services[0].clone();
        s.vip = vip.parse().unwrap();
        c.services.push(s);
        c
    }

    fn ip(s: &str) -> Addr {
        Addr::from(s.parse::<std::net::IpAddr>().unwrap())
    }

    fn sent(a: &mut Announcer, at: Instant) -> Vec<(u16, Addr)> {
        let mut out = vec![];
        a.due(at, |p, ip| out.push((p, ip)));
        out
    }

    #[test]
    fn start_up_announces_every_owned_address_three_times() {
        let mut cfg = lab();
        cfg.interfaces[0].addr6 = Some(("fd77::2".parse().unwrap(), 64));
        let t = plan::tables(&cfg, &[[2, 0, 0, 0, 0, 1]], &mut Registry::default(), 1);
        let mut a = Announcer::default();
        let t0 = Instant::now();
        let new = a.update(&t, t0);
        let all = vec![
            ip("10.77.0.2"),
            ip("10.77.0.100"),
            ip("10.77.0.200"),
            ip("fd77::2"),
        ];
        assert_eq!(new, all);
        let first = sent(&mut a, t0);
        assert_eq!(
            first,
            all.iter().map(|a| (0, *a)).collect::<Vec<_>>(),
            "all on dpdk0, IPv6 too"
        );
        assert!(
            sent(&mut a, t0 + Duration::from_millis(500)).is_empty(),
            "1 s apart"
        );
        assert_eq!(sent(&mut a, t0 + INTERVAL), first);
        assert_eq!(sent(&mut a, t0 + 2 * INTERVAL), first);
        assert!(
            sent(&mut a, t0 + 3 * INTERVAL).is_empty(),
            "three times, then done"
        );
        assert!(
            a.update(&t, t0 + 4 * INTERVAL).is_empty(),
            "the same snapshot: nothing new"
        );
        assert!(sent(&mut a, t0 + 4 * INTERVAL).is_empty());
    }

    #[test]
    fn a_new_vip_or_address_is_announced_removed_ones_are_not() {
        let mut reg = Registry::default();
        let mut a = Announcer::default();
        let t0 = Instant::now();
        a.update(&plan::tables(&lab(), &[], &mut reg, 1), t0);
        for s in 0..3 {
            sent(&mut a, t0 + Duration::from_secs(s));
        }
        // `rvsadm -A -t 10.77.0.101:80`, `rvsadm addr add 10.88.0.2/24 dev dpdk0`.
        let mut cfg = with_vip("10.77.0.101:80");
        cfg.addresses.push(crate::config::net::AddressConfig {
            dev: "dpdk0".into(),
            addr: "10.88.0.2".parse().unwrap(),
            len: 24,
        });
        let t1 = t0 + Duration::from_secs(10);
        let new = a.update(&plan::tables(&cfg, &[], &mut reg, 2), t1);
        assert_eq!(new, vec![ip("10.77.0.101"), ip("10.88.0.2")]);
        assert_eq!(
            sent(&mut a, t1),
            vec![(0, ip("10.77.0.101")), (0, ip("10.88.0.2"))]
        );
        // Removed before its last announcement: no more frames; added
        // again later: announced again.
        a.update(&plan::tables(&lab(), &[], &mut reg, 3), t1 + INTERVAL);
        assert!(sent(&mut a, t1 + INTERVAL).is_empty());
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(
            a.update(&plan::tables(&cfg, &[], &mut reg, 4), t2),
            vec![ip("10.77.0.101"), ip("10.88.0.2")]
        );
    }

    #[test]
    fn a_marks_host_addresses_are_announced_its_key_is_not() {
        let text = include_str!("../../config/lab.toml").replacen(
            "[[service]]\n",
            "[[mark]]\nmark = 1\naddresses = [\"10.77.0.110\", \"10.77.9.0/24\"]\n\n[[service]]\nfwmark = 1\nforward = \"dr\"\n[[service.real_server]]\naddress = \"10.77.0.11\"\n\n[[service]]\n",
            1,
        );
        let cfg = config::parse(Path::new("f.toml"), &text).unwrap();
        let t = plan::tables(&cfg, &[], &mut Registry::default(), 1);
        let o = owned(&t);
        assert!(o.contains(&ip("10.77.0.110")), "{o:?}");
        assert!(
            !o.contains(&ip("0.0.0.1")) && !o.contains(&ip("10.77.9.0")),
            "{o:?}"
        );
    }

    #[test]
    fn ports_follow_the_connected_routes() {
        let mut cfg = with_vip("192.0.2.1:80");
        cfg.interfaces.push(config::InterfaceConfig {
            name: "dpdk1".into(),
            addr: "10.79.0.2".parse().unwrap(),
            prefix_len: 24,
            ..cfg.interfaces[0].clone()
        });
        let t = plan::tables(&cfg, &[], &mut Registry::default(), 1);
        assert_eq!(
            ports(&t, ip("10.77.0.100")),
            vec![0],
            "VIP on dpdk0's subnet"
        );
        assert_eq!(ports(&t, ip("10.79.0.2")), vec![1], "dpdk1's own address");
        assert_eq!(ports(&t, ip("10.79.0.50")), vec![1]);
        assert_eq!(
            ports(&t, ip("192.0.2.1")),
            vec![0, 1],
            "on no connected subnet: every port"
        );
        let bare = Tables {
            routes: Default::default(),
            ..t
        };
        assert_eq!(
            ports(&bare, ip("10.79.0.50")),
            vec![1],
            "without routes: the interfaces' subnets"
        );
    }
}
