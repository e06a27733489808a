//! Firewall-mark services through the pipeline: a flow that finds no VIP
//! service is given its mark by the mark rules and scheduled by the
//! service of that mark; persistence binds a client across every port and
//! protocol of one mark; servers without a port keep the packet's port.

use std::collections::HashSet;
use std::sync::Arc;

use super::tests::{known_servers, tcp_frame, CLIENT, CLIENT_MAC, LB_MAC, RS1, RS2, VIP};
use super::*;
use crate::acl::Prefix;
use crate::marks::{self, MarkRule, MarkRules};
use crate::sched::SchedKind;
use crate::tables::{Interface, Persistence, RealServer, Service};

const OTHER: Endpoint = Endpoint::new([10, 77, 0, 101], 443);

fn prefix(a: [u8; 4], len: u8) -> Prefix {
    Prefix::new(Addr::v4(a), len).unwrap()
}

/// Mark 1: TCP to VIP (/32) and 10.77.0.101 (/32) on 80 and 443; mark 2:
/// anything to 10.99.0.0/16. The service of mark 1 (NAT, rr) has both
/// servers without a port; `vip_service` adds a TCP service at VIP:80.
fn tables(persistent: bool, vip_service: bool) -> Arc<Tables> {
    let server = |ip: Addr, index| RealServer {
        addr: Endpoint::at(ip, 0),
        weight: 1,
        index,
        forward: Forward::Nat,
        ..Default::default()
    };
    let mut services = vec![Service {
        vip: marks::service_vip(1, false),
        proto: marks::FWMARK_PROTO,
        sched: SchedKind::RoundRobin,
        servers: vec![server(RS1.ip, 0), server(RS2.ip, 1)],
        persistence: persistent.then(|| Persistence::new(300)),
        ..Default::default()
    }];
    if vip_service {
        services.insert(
            0,
            Service {
                vip: VIP,
                proto: ipv4::PROTO_TCP,
                sched: SchedKind::RoundRobin,
                servers: vec![RealServer {
                    addr: Endpoint::at(RS2.ip, 8080),
                    weight: 1,
                    index: 2,
                    forward: Forward::Nat,
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
    }
    Arc::new(Tables {
        interfaces: vec![Interface {
            port: 0,
            mac: LB_MAC,
            addr: [10, 77, 0, 2],
            prefix_len: 24,
            gateway: None,
            mtu: 1500,
        }],
        services,
        laddrs: vec![],
        lport_range: (1024, 65535),
        timeouts: Default::default(),
        rs_count: 3,
        generation: 1,
        routes: Default::default(),
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans: Default::default(),
        marks: MarkRules {
            rules: vec![
                MarkRule {
                    mark: 1,
                    prefixes: vec![prefix(VIP.ip.v4_bits(), 32), prefix(OTHER.ip.v4_bits(), 32)],
                    proto: 0,
                    ports: vec![(80, 80), (443, 443)],
                },
                MarkRule {
                    mark: 2,
                    prefixes: vec![prefix([10, 99, 0, 0], 16)],
                    proto: 0,
                    ports: vec![],
                },
            ],
        },
    })
}

fn workers(t: &Arc<Tables>, n: u16) -> Vec<Pipeline> {
    (0..n)
        .map(|i| Pipeline::new(Arc::clone(t), known_servers(), 1024, 42, i, n))
        .collect()
}

/// Sends `f` to worker `first`, following a redirect; the verdict and
/// the frame's destination after it.
fn offer(w: &mut [Pipeline], first: usize, f: &mut [u8], now: u64) -> (Verdict, Endpoint, usize) {
    let mut at = first;
    let mut v = w[at].process(f, 0, Millis(now));
    if let Verdict::Redirect { worker } = v {
        at = usize::from(worker);
        v = w[at].process(f, 0, Millis(now));
    }
    (v, dst_of(f), at)
}

fn dst_of(f: &[u8]) -> Endpoint {
    let e = ethernet::Frame::new_checked(f).unwrap();
    let ip = ipv4::Packet::new_checked(e.payload()).unwrap();
    let l4 = ip.payload();
    Endpoint::new(ip.dst(), u16::from_be_bytes([l4[2], l4[3]]))
}

fn udp_frame(src: Endpoint, dst: Endpoint) -> Vec<u8> {
    let p = rewrite::tests::udp_packet(src, dst, b"hello", false);
    super::tests::eth(LB_MAC, CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &p)
}

#[test]
fn a_marked_flow_goes_to_the_marks_service_keeping_its_port() {
    let t = tables(false, false);
    let mut w = workers(&t, 1);
    let mut seen = Vec::new();
    for (i, dst) in [VIP, Endpoint::new(VIP.ip.v4_bits(), 443), OTHER, VIP]
        .into_iter()
        .enumerate()
    {
        let client = Endpoint::new(CLIENT.ip.v4_bits(), 41000 + i as u16);
        let mut f = tcp_frame(CLIENT_MAC, client, dst, tcp::SYN, b"");
        let (v, to, _) = offer(&mut w, 0, &mut f, 1);
        assert_eq!(v, Verdict::Forward { port: 0 }, "{dst:?}");
        assert_eq!(
            to.port, dst.port,
            "a server without a port keeps the packet's"
        );
        seen.push(to.ip);
    }
    assert_eq!(
        seen,
        vec![RS1.ip, RS2.ip, RS1.ip, RS2.ip],
        "rr over one service"
    );
    let s = w[0].sessions().iter().next().unwrap();
    assert_eq!(s.service, 0);
    // A port the rule does not name: the VIP has no such service.
    let mut f = tcp_frame(
        CLIENT_MAC,
        CLIENT,
        Endpoint::new(VIP.ip.v4_bits(), 22),
        tcp::SYN,
        b"",
    );
    assert_eq!(
        w[0].process(&mut f, 0, Millis(2)),
        Verdict::Drop(DropReason::NoService)
    );
    // Mark 2 has no service: not ours.
    let mut f = tcp_frame(
        CLIENT_MAC,
        CLIENT,
        Endpoint::new([10, 99, 1, 1], 80),
        tcp::SYN,
        b"",
    );
    assert_eq!(
        w[0].process(&mut f, 0, Millis(2)),
        Verdict::Drop(DropReason::NotForUs)
    );
}

#[test]
fn a_vip_service_comes_before_the_marks() {
    let t = tables(false, true);
    let mut w = workers(&t, 1);
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    assert_eq!(offer(&mut w, 0, &mut f, 1).1, Endpoint::at(RS2.ip, 8080));
    let c2 = Endpoint::new(CLIENT.ip.v4_bits(), 40001);
    let mut f = tcp_frame(
        CLIENT_MAC,
        c2,
        Endpoint::new(VIP.ip.v4_bits(), 443),
        tcp::SYN,
        b"",
    );
    let (v, to, _) = offer(&mut w, 0, &mut f, 1);
    assert_eq!((v, to.port), (Verdict::Forward { port: 0 }, 443));
}

#[test]
fn persistence_binds_a_client_over_every_port_and_protocol_of_the_mark() {
    let t = tables(true, false);
    for n in [1, 3] {
        let mut w = workers(&t, n);
        let mut servers = HashSet::new();
        let mut owners = HashSet::new();
        for i in 0..12u16 {
            let client = Endpoint::new(CLIENT.ip.v4_bits(), 42000 + i);
            let dst = [VIP, Endpoint::new(VIP.ip.v4_bits(), 443), OTHER][usize::from(i % 3)];
            let mut f = if i % 2 == 0 {
                tcp_frame(CLIENT_MAC, client, dst, tcp::SYN, b"")
            } else {
                udp_frame(client, dst)
            };
            let (v, to, at) = offer(&mut w, usize::from(i % n), &mut f, 10 + u64::from(i));
            assert_eq!(v, Verdict::Forward { port: 0 });
            assert_eq!(to.port, dst.port);
            servers.insert(to.ip);
            owners.insert(at);
        }
        assert_eq!(servers.len(), 1, "one server for the client: {servers:?}");
        assert_eq!(owners.len(), 1, "one worker holds its template");
        let owner = *owners.iter().next().unwrap();
        let tpls: Vec<_> = w[owner].templates().iter().copied().collect();
        assert_eq!(tpls.len(), 1, "{tpls:?}");
        let k = tpls[0].key;
        assert_eq!(
            (k.client, k.vip, k.proto, tpls[0].controls),
            (CLIENT.ip, marks::service_vip(1, false), 0, 12),
            "keyed (client, mark, 0) as the kernel keys a fwmark template"
        );
        // Another client may go elsewhere: rr still schedules new clients.
        let mut other_servers = HashSet::new();
        for c in 20..40u8 {
            let mut f = tcp_frame(
                CLIENT_MAC,
                Endpoint::new([10, 77, 0, c], 5000),
                VIP,
                tcp::SYN,
                b"",
            );
            other_servers.insert(offer(&mut w, 0, &mut f, 100).1.ip);
        }
        assert_eq!(other_servers.len(), 2);
    }
}

#[test]
fn a_marks_host_addresses_are_held_as_vips_are() {
    let t = tables(false, false);
    assert!(t.holds(OTHER.ip), "a /32 of a mark rule");
    assert!(
        !t.holds(Addr::v4([10, 99, 0, 1])),
        "inside a wider prefix: routed to us, not ARPed"
    );
    assert!(
        !t.holds(marks::service_vip(1, false).ip),
        "the mark's own key is no address"
    );
}

#[test]
fn a_nat_reply_on_another_worker_is_redirected_to_the_owner() {
    for persistent in [false, true] {
        let t = tables(persistent, false);
        let mut w = workers(&t, 2);
        for i in 0..8u16 {
            let client = Endpoint::new(CLIENT.ip.v4_bits(), 43000 + i);
            let dst = Endpoint::new(VIP.ip.v4_bits(), 443);
            let mut f = tcp_frame(CLIENT_MAC, client, dst, tcp::SYN, b"");
            let (v, rs, owner) = offer(&mut w, usize::from(i % 2), &mut f, 1);
            assert_eq!(v, Verdict::Forward { port: 0 });
            // The server answers from the port the connection kept.
            let mut reply = tcp_frame(LB_MAC, rs, client, tcp::SYN | tcp::ACK, b"");
            let other = 1 - owner;
            assert_eq!(
                w[other].process(&mut reply, 0, Millis(2)),
                Verdict::Redirect {
                    worker: owner as u16
                },
                "persistent {persistent}, client {client:?}"
            );
            assert_eq!(
                w[owner].process(&mut reply, 0, Millis(2)),
                Verdict::Forward { port: 0 }
            );
            let e = ethernet::Frame::new_checked(&reply[..]).unwrap();
            let ip = ipv4::Packet::new_checked(e.payload()).unwrap();
            let t = tcp::Packet::new_checked(ip.payload()).unwrap();
            assert_eq!(
                Endpoint::new(ip.src(), t.src_port()),
                dst,
                "the client sees the address it called"
            );
        }
    }
}
