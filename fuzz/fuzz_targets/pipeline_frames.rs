//! The whole pipeline on arbitrary frames: a worker configured as the
//! golden tests' (every forwarding mode, both families, FULLNAT64) plus a
//! firewall-mark service and its mark rule, its
//! session table primed with the golden cases' input frames, then the fuzz
//! input as one frame, processed twice: described first (the worker's
//! read-ahead) and not, on two identically primed pipelines. Neither may
//! panic; both must answer alike; a frame sent stays inside its buffer;
//! after it, every local port lent is held by a session.
//!
//! Checksums are not verified under `cfg(fuzzing)` (see
//! `dataplane/src/pipeline/ingress_check.rs`), so the fuzzer reaches what
//! lies behind them. Seeds: `fuzz/seeds/pipeline_frames` (every golden input
//! frame, written by `fuzz/seeds/gen.py`).
#![no_main]

mod harness;

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::addr::Addr;
use rvs_dataplane::marks;
use rvs_dataplane::neigh::{NeighEntry, NeighMap};
use rvs_dataplane::pipeline::{Pipeline, Verdict};
use rvs_dataplane::route::{NextHop, Route, RouteTable, Routes};
use rvs_dataplane::sched::SchedKind;
use rvs_dataplane::session::{Endpoint, Timeouts};
use rvs_dataplane::tables::{Forward, Interface, RealServer, Service, Tables};
use rvs_dataplane::time::Millis;
use rvs_dataplane::wire::MacAddr;

// ---- the golden tests' configuration (dataplane/tests/golden.rs) ----------

const LB_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x02];
const LB: [u8; 4] = [10, 77, 0, 2];
const LPORTS: (u16, u16) = (5000, 5099);
const TCP: u8 = 6;
const UDP: u8 = 17;
const SESSIONS: u32 = 64;
const SEED: u64 = 42;

/// `10.77.0.<last>`.
const fn v4(last: u8) -> Addr {
    Addr::v4([10, 77, 0, last])
}

/// `fd77::<last>`.
const fn v6(last: u16) -> Addr {
    let [hi, lo] = last.to_be_bytes();
    Addr::v6([0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, hi, lo])
}

/// Real server `n` (1..=4) of a family: 10.77.0.1n or fd77::1n.
const fn rs(n: u8, six: bool) -> Addr {
    if six {
        v6(0x10 + n as u16)
    } else {
        v4(10 + n)
    }
}

/// The MAC of real server `n`, both families: 02:00:00:00:00:1n.
const fn rs_mac(n: u8) -> MacAddr {
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

fn tables() -> Arc<Tables> {
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
    // A firewall-mark service (mark 1, NAT, persistent, a server without
    // a port) that the mark rules give TCP and UDP 443-444 of
    // 10.77.0.110/32 and 10.77.9.0/24: the miss path's classifier.
    rs_index += 1;
    services.push(Service {
        vip: marks::service_vip(1, false),
        proto: marks::FWMARK_PROTO,
        sched: SchedKind::RoundRobin,
        servers: vec![RealServer {
            addr: Endpoint::at(rs(2, false), 0),
            weight: 1,
            index: rs_index - 1,
            forward: Forward::Nat,
            ..Default::default()
        }],
        persistence: Some(rvs_dataplane::tables::Persistence::new(300)),
        ..Default::default()
    });
    let prefix =
        |a, len| rvs_dataplane::acl::Prefix::new(a, len).unwrap_or_else(|| panic!("prefix"));
    let marks = marks::MarkRules {
        rules: vec![marks::MarkRule {
            mark: 1,
            prefixes: vec![prefix(v4(110), 32), prefix(Addr::v4([10, 77, 9, 0]), 24)],
            proto: 0,
            ports: vec![(443, 444)],
        }],
    };
    Arc::new(Tables {
        marks,
        interfaces: vec![Interface {
            port: 0,
            mac: LB_MAC,
            addr: LB,
            prefix_len: 24,
            gateway: None,
            mtu: 1500,
        }],
        services,
        laddrs: vec![v4(200), v6(0x200)],
        lport_range: LPORTS,
        timeouts: Timeouts::default(),
        rs_count: rs_index,
        generation: 1,
        routes,
        tentative: Vec::new(),
        vlans: Default::default(),
        standby: Vec::new(),
    })
}

fn neighbours() -> Arc<NeighMap> {
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

// ---- priming ----------------------------------------------------------------

/// The golden cases whose input frames open sessions before the fuzz frame.
const PRIMERS: [&[u8]; 12] = [
    include_bytes!("../../dataplane/tests/golden/fullnat_tcp_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/fullnat_udp_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/nat_tcp_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/nat_udp_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/dr_tcp_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/tun_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/ops_udp.pcap"),
    include_bytes!("../../dataplane/tests/golden/fullnat_v6.pcap"),
    include_bytes!("../../dataplane/tests/golden/nat_v6.pcap"),
    include_bytes!("../../dataplane/tests/golden/dr_v6.pcap"),
    include_bytes!("../../dataplane/tests/golden/tun_v6.pcap"),
    include_bytes!("../../dataplane/tests/golden/fullnat64.pcap"),
];

/// The input frames of a golden pcap (every other frame, from the first)
/// with their timestamps in ms. The files are ours: little-endian, whole.
fn inputs(pcap: &[u8]) -> Vec<(u64, &[u8])> {
    let u32_at = |o: usize| u32::from_le_bytes(pcap[o..o + 4].try_into().unwrap());
    let (mut at, mut out, mut k) = (24, Vec::new(), 0);
    while at + 16 <= pcap.len() {
        let ms = u64::from(u32_at(at)) * 1000 + u64::from(u32_at(at + 4)) / 1000;
        let len = u32_at(at + 8) as usize;
        let frame = &pcap[at + 16..at + 16 + len];
        if k % 2 == 0 {
            out.push((ms, frame));
        }
        k += 1;
        at += 16 + len;
    }
    out
}

fn primed() -> Pipeline {
    let mut p = Pipeline::new(tables(), neighbours(), SESSIONS, SEED, 0, 1);
    for pcap in PRIMERS {
        for (ms, frame) in inputs(pcap) {
            harness::run(&mut p, frame, Millis(ms), false);
        }
    }
    p
}

fuzz_target!(|data: &[u8]| {
    let (mut a, mut b) = (primed(), primed());
    let now = Millis(10_000);
    let (va, fa) = harness::run(&mut a, data, now, true);
    let (vb, fb) = harness::run(&mut b, data, now, false);
    assert_eq!(va, vb);
    if matches!(va, Verdict::Forward { .. }) {
        assert_eq!(fa, fb);
    }
    harness::ports_accounted(&a, SESSIONS as usize);
    // And once more much later, after housekeeping has swept.
    a.housekeeping(Millis(4_000_000), SESSIONS as usize);
    harness::run(&mut a, data, Millis(4_000_001), true);
    harness::ports_accounted(&a, SESSIONS as usize);
});
