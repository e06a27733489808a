//! The golden tests' worker configuration (see `dataplane/tests/golden.rs`'s
//! module doc, and `tests/golden/gen.py`, which says the same): one port,
//! the services of every forwarding mode in both families and FULLNAT64,
//! the real servers' neighbours. Shared by the golden tests and the
//! `pipeline_frames` fuzz target (`#[path]`-included there), so that the
//! fuzzer's worker cannot drift from the one the golden files describe.
//! Each adds its own extra services on top ([`tables`]).

use std::sync::Arc;

use rvs_dataplane::addr::Addr;
use rvs_dataplane::marks::MarkRules;
use rvs_dataplane::neigh::{NeighEntry, NeighMap};
use rvs_dataplane::route::{NextHop, Route, RouteTable, Routes};
use rvs_dataplane::sched::SchedKind;
use rvs_dataplane::session::{Endpoint, Timeouts};
use rvs_dataplane::tables::{Forward, Interface, RealServer, Service, Tables};
use rvs_dataplane::wire::MacAddr;

pub const LB_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x02];
pub const LB: [u8; 4] = [10, 77, 0, 2];
pub const LPORTS: (u16, u16) = (5000, 5099);
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
/// The session capacity of a golden worker.
pub const SESSIONS: u32 = 64;
/// The seed of a golden worker.
pub const SEED: u64 = 42;

/// `10.77.0.<last>`.
pub const fn v4(last: u8) -> Addr {
    Addr::v4([10, 77, 0, last])
}

/// `fd77::<last>`.
pub const fn v6(last: u16) -> Addr {
    let [hi, lo] = last.to_be_bytes();
    Addr::v6([0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, hi, lo])
}

/// Real server `n` (1..=4) of a family: 10.77.0.1n or fd77::1n.
pub const fn rs(n: u8, six: bool) -> Addr {
    if six {
        v6(0x10 + n as u16)
    } else {
        v4(10 + n)
    }
}

/// The MAC of real server `n`, both families: 02:00:00:00:00:1n.
pub const fn rs_mac(n: u8) -> MacAddr {
    [0x02, 0, 0, 0, 0, 0x10 + n]
}

/// The services of one family: (protocol, VIP port, [(real server, its
/// port)], forwarding, one-packet scheduling).
type ServiceRow = (u8, u16, &'static [(u8, u16)], Forward, bool);
const SERVICES_V4: [ServiceRow; 9] = [
    (TCP, 80, &[(1, 8080)], Forward::FullNat, false),
    (UDP, 53, &[(1, 5353)], Forward::FullNat, false),
    (TCP, 81, &[(2, 8081)], Forward::Nat, false),
    (UDP, 54, &[(2, 5354)], Forward::Nat, false),
    (TCP, 82, &[(3, 82)], Forward::Dr, false),
    (UDP, 55, &[(3, 55)], Forward::Dr, false),
    (TCP, 83, &[(4, 83)], Forward::Tun, false),
    (UDP, 56, &[(4, 56)], Forward::Tun, false),
    (UDP, 57, &[(1, 5357), (2, 5357)], Forward::FullNat, true),
];
/// IPv6: the first eight IPv4 services again.
const SERVICES_V6: &[ServiceRow] = SERVICES_V4.split_at(8).0;
/// FULLNAT64: IPv6 VIP, IPv4 servers and local address.
const SERVICES_64: [ServiceRow; 2] = [
    (TCP, 84, &[(1, 8084)], Forward::FullNat, false),
    (UDP, 58, &[(1, 5358)], Forward::FullNat, false),
];

/// Services 0..=18 of the configuration (every mode, both families,
/// FULLNAT64), their real servers numbered from 0.
pub fn mode_services() -> Vec<Service> {
    // (VIP, servers in IPv6, services, local address: 0 is 10.77.0.200,
    // 1 is fd77::200).
    let families = [
        (v4(100), false, SERVICES_V4.as_slice(), 0),
        (v6(0x100), true, SERVICES_V6, 1),
        (v6(0x100), false, SERVICES_64.as_slice(), 0),
    ];
    let mut services = Vec::new();
    let mut rs_index = 0u16;
    for (vip, six, rows, laddr) in families {
        for &(proto, vport, servers, forward, ops) in rows {
            let servers = servers
                .iter()
                .map(|&(n, port)| {
                    rs_index += 1;
                    RealServer {
                        addr: Endpoint::at(rs(n, six), port),
                        weight: 1,
                        index: rs_index - 1,
                        forward,
                        ..Default::default()
                    }
                })
                .collect();
            services.push(Service {
                vip: Endpoint::at(vip, vport),
                proto,
                sched: SchedKind::RoundRobin,
                laddrs: if forward == Forward::FullNat {
                    vec![laddr]
                } else {
                    vec![]
                },
                servers,
                ops,
                ..Default::default()
            });
        }
    }
    services
}

/// How many real servers `services` number (each server's `index` is
/// below it).
pub fn rs_count(services: &[Service]) -> u16 {
    services
        .iter()
        .flat_map(|s| &s.servers)
        .map(|r| r.index + 1)
        .max()
        .unwrap_or(0)
}

/// The worker's tables: its port, routes and local addresses, with
/// `services` (the [`mode_services`] and the caller's own) and `marks`.
pub fn tables(services: Vec<Service>, marks: MarkRules) -> Arc<Tables> {
    let v6_route = |prefix: Addr, len, hop| Route {
        prefix: prefix.octets(),
        len,
        hop,
    };
    let routes = Routes {
        // IPv4: none, next hops come from the interface's subnet.
        v4: RouteTable::default(),
        v6: RouteTable::new([
            v6_route(v6(0), 64, NextHop::OnLink { port: 0 }),
            v6_route(v6(2), 128, NextHop::Local { port: 0 }),
        ])
        .unwrap_or_else(|e| panic!("IPv6 routes: {e}")),
    };
    Arc::new(Tables {
        interfaces: vec![Interface {
            port: 0,
            mac: LB_MAC,
            addr: LB,
            prefix_len: 24,
            gateway: None,
            mtu: 1500,
        }],
        rs_count: rs_count(&services),
        services,
        laddrs: vec![v4(200), v6(0x200)],
        lport_range: LPORTS,
        timeouts: Timeouts::default(),
        generation: 1,
        routes,
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans: Default::default(),
        marks,
    })
}

/// RS1..RS4 in both families, resolved on port 0.
pub fn neighbours() -> Arc<NeighMap> {
    Arc::new(NeighMap::new(
        (1..=4)
            .flat_map(|n| {
                [false, true].map(|six| NeighEntry {
                    ip: rs(n, six),
                    mac: rs_mac(n),
                    port: 0,
                })
            })
            .collect(),
    ))
}
