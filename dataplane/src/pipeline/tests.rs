//! Pipeline scenarios on byte vectors: ARP, echo, a whole FULLNAT TCP
//! connection both ways, expiry, and the refusals.

use std::sync::Arc;

use super::*;
use crate::neigh::{NeighEntry, NeighEvent, NeighMap};
use crate::sched::SchedKind;
use crate::session::{Lookup, Timeouts};
use crate::tables::{Interface, RealServer, Service};
use crate::wire::BROADCAST_MAC;

pub(super) const LB_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x02];
pub(super) const CLIENT_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x10];
pub(super) const RS1_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x11];
pub(super) const RS2_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x12];
pub(super) const LB: [u8; 4] = [10, 77, 0, 2];
pub(super) const CLIENT: Endpoint = Endpoint::new([10, 77, 0, 10], 40000);
pub(super) const VIP: Endpoint = Endpoint::new([10, 77, 0, 100], 80);
pub(super) const LIP: [u8; 4] = [10, 77, 0, 200];
pub(super) const RS1: Endpoint = Endpoint::new([10, 77, 0, 11], 8080);
pub(super) const RS2: Endpoint = Endpoint::new([10, 77, 0, 12], 8080);

fn tables(lports: (u16, u16)) -> Arc<Tables> {
    let mut timeouts = Timeouts::default();
    timeouts.set_tcp(TcpState::TimeWait, 2);
    Arc::new(Tables {
        interfaces: vec![Interface {
            port: 0,
            mac: LB_MAC,
            addr: LB,
            prefix_len: 24,
            gateway: None,
            mtu: 1500,
        }],
        services: vec![Service {
            vip: VIP,
            proto: ipv4::PROTO_TCP,
            sched: SchedKind::RoundRobin,
            laddrs: vec![0],
            servers: vec![
                RealServer {
                    addr: RS1,
                    weight: 1,
                    index: 0,
                    ..Default::default()
                },
                RealServer {
                    addr: RS2,
                    weight: 1,
                    index: 1,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        laddrs: vec![LIP.into()],
        lport_range: lports,
        timeouts,
        rs_count: 2,
        generation: 1,
        routes: Default::default(),
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans: Default::default(),
        marks: Default::default(),
    })
}

pub(super) fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn arp_frame(op: u16, smac: MacAddr, sip: [u8; 4], tip: [u8; 4]) -> Vec<u8> {
    let mut a = [0u8; arp::PACKET_LEN];
    arp::Packet::new_unchecked(&mut a[..]).emit(
        op,
        smac,
        sip,
        if op == arp::OP_REPLY { LB_MAC } else { [0; 6] },
        tip,
    );
    eth(
        if op == arp::OP_REPLY {
            LB_MAC
        } else {
            BROADCAST_MAC
        },
        smac,
        ethernet::ETHERTYPE_ARP,
        &a,
    )
}

pub(super) fn tcp_frame(
    smac: MacAddr,
    src: Endpoint,
    dst: Endpoint,
    flags: crate::wire::tcp::TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    let p = rewrite::tests::tcp_packet(src, dst, flags, payload);
    eth(LB_MAC, smac, ethernet::ETHERTYPE_IPV4, &p)
}

struct Seen {
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Endpoint,
    dst: Endpoint,
    flags: crate::wire::tcp::TcpFlags,
    checksums_ok: bool,
}

fn look(f: &[u8]) -> Seen {
    let e = ethernet::Frame::new_checked(f).unwrap();
    let ip = ipv4::Packet::new_checked(e.payload()).unwrap();
    let t = tcp::Packet::new_checked(ip.payload()).unwrap();
    Seen {
        dst_mac: e.dst(),
        src_mac: e.src(),
        src: Endpoint::new(ip.src(), t.src_port()),
        dst: Endpoint::new(ip.dst(), t.dst_port()),
        flags: t.flags(),
        checksums_ok: ip.verify_checksum() && t.verify_checksum_v4(ip.src(), ip.dst()),
    }
}

pub(super) fn known_servers() -> Arc<NeighMap> {
    Arc::new(NeighMap::new(vec![
        NeighEntry {
            ip: RS1.ip,
            mac: RS1_MAC,
            port: 0,
        },
        NeighEntry {
            ip: RS2.ip,
            mac: RS2_MAC,
            port: 0,
        },
    ]))
}

/// Worker `worker` of `workers`, knowing both real servers' MACs.
fn worker(lports: (u16, u16), capacity: u32, worker: u16, workers: u16) -> Pipeline {
    Pipeline::new(
        tables(lports),
        known_servers(),
        capacity,
        42,
        worker,
        workers,
    )
}

/// The only worker, knowing both real servers' MACs.
pub(super) fn ready(lports: (u16, u16), capacity: u32) -> Pipeline {
    worker(lports, capacity, 0, 1)
}

#[test]
fn answers_arp_for_owned_addresses_only() {
    let mut p = Pipeline::new(tables((1025, 65535)), Arc::default(), 16, 1, 0, 1);
    for owned in [VIP.ip.v4_bits(), LIP, LB] {
        let mut f = arp_frame(arp::OP_REQUEST, CLIENT_MAC, CLIENT.ip.v4_bits(), owned);
        assert_eq!(
            p.process(&mut f, 0, Millis(0)),
            Verdict::Forward { port: 0 }
        );
        let e = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!((e.dst(), e.src()), (CLIENT_MAC, LB_MAC));
        let a = arp::Packet::new_checked(e.payload()).unwrap();
        assert_eq!(
            (a.op(), a.sender_mac(), a.sender_ip()),
            (arp::OP_REPLY, LB_MAC, owned)
        );
        assert_eq!(
            (a.target_mac(), a.target_ip()),
            (CLIENT_MAC, CLIENT.ip.v4_bits())
        );
    }
    let mut f = arp_frame(
        arp::OP_REQUEST,
        CLIENT_MAC,
        CLIENT.ip.v4_bits(),
        [10, 77, 0, 99],
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(0)),
        Verdict::Drop(DropReason::ArpNotForUs)
    );
    assert_eq!(p.counters.arp_replies, 3);
    // The requester was reported to control, once.
    let events: Vec<_> = p.take_neigh_events().collect();
    assert_eq!(
        events,
        vec![NeighEvent::Learned(NeighEntry {
            ip: CLIENT.ip,
            mac: CLIENT_MAC,
            port: 0
        })]
    );
    // An ARP request from a known neighbour with the same MAC reports
    // nothing; a reply (the answer to control's refresh) confirms it.
    let mut p = ready((1025, 65535), 16);
    let mut f = arp_frame(arp::OP_REQUEST, RS1_MAC, RS1.ip.v4_bits(), LB);
    assert_eq!(
        p.process(&mut f, 0, Millis(0)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(p.take_neigh_events().count(), 0);
    let mut f = arp_frame(arp::OP_REPLY, RS1_MAC, RS1.ip.v4_bits(), LB);
    assert_eq!(p.process(&mut f, 0, Millis(0)), Verdict::Consumed);
    assert_eq!(
        p.take_neigh_events().collect::<Vec<_>>(),
        vec![NeighEvent::Learned(NeighEntry {
            ip: RS1.ip,
            mac: RS1_MAC,
            port: 0
        })]
    );
}

#[test]
fn unresolved_real_server_is_reported_and_syn_dropped() {
    let mut p = Pipeline::new(tables((1025, 65535)), Arc::default(), 16, 1, 0, 1);
    let mut syn = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    let Verdict::Hold { next_hop, decision } = p.process(&mut syn, 0, Millis(10)) else {
        panic!("a SYN to an unresolved server is held");
    };
    assert_eq!(next_hop, RS1.ip, "the frame waits for the server's MAC");
    assert!(!p.resolves(RS1.ip));
    assert!(p.sessions().is_empty());
    assert_eq!(
        p.pools()[0].available(),
        p.pools()[0].size() - 1,
        "the held decision keeps its local port"
    );
    // The hold gives up (the frame waited too long): the port goes back.
    p.abandon(decision);
    assert_eq!(
        p.pools()[0].available(),
        p.pools()[0].size(),
        "no port leaked"
    );
    let events: Vec<_> = p.take_neigh_events().collect();
    assert_eq!(
        events,
        vec![NeighEvent::Wanted {
            ip: RS1.ip,
            port: 0
        }]
    );
    // Once control publishes the MAC, the retransmitted SYN goes through.
    p.set_neigh(known_servers());
    assert!(p.resolves(RS1.ip));
    let mut syn = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    assert!(matches!(
        p.process(&mut syn, 0, Millis(1010)),
        Verdict::Forward { .. }
    ));
}

#[test]
fn replies_for_another_workers_session_are_redirected() {
    // Two workers: worker 0 takes even local ports, worker 1 odd ones.
    let mut w = [
        worker((5000, 5009), 16, 0, 2),
        worker((5000, 5009), 16, 1, 2),
    ];
    // A client port whose flow worker 1 owns.
    let client = (40000..)
        .map(|p| Endpoint::new(CLIENT.ip.v4_bits(), p))
        .find(|c| {
            client_owner(
                &FlowKey {
                    src: *c,
                    dst: VIP,
                    proto: 6,
                },
                2,
            ) == 1
        })
        .unwrap();
    // Its SYN reaches worker 0 first: handed over untouched.
    let mut f = tcp_frame(CLIENT_MAC, client, VIP, tcp::SYN, b"");
    assert_eq!(
        w[0].process(&mut f, 0, Millis(1)),
        Verdict::Redirect { worker: 1 }
    );
    assert!(w[0].sessions().is_empty());
    let [w0, w1] = &mut w;
    assert_eq!(
        w1.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let laddr = look(&f).src;
    assert_eq!(laddr.port % 2, 1, "worker 1 allocates from its own slice");
    // The RS's SYN-ACK lands on worker 0 (RSS): handed to worker 1, untouched.
    let mut reply = tcp_frame(RS1_MAC, RS1, laddr, tcp::SYN | tcp::ACK, b"");
    let before = reply.clone();
    assert_eq!(
        w0.process(&mut reply, 0, Millis(2)),
        Verdict::Redirect { worker: 1 }
    );
    assert_eq!(reply, before);
    // The owner forwards it.
    assert_eq!(
        w1.process(&mut reply, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(look(&reply).dst, client);
    // The client's next segment on the wrong worker goes over too.
    let mut ack = tcp_frame(CLIENT_MAC, client, VIP, tcp::ACK, b"");
    assert_eq!(
        w0.process(&mut ack, 0, Millis(3)),
        Verdict::Redirect { worker: 1 }
    );
    assert_eq!(
        w1.process(&mut ack, 0, Millis(3)),
        Verdict::Forward { port: 0 }
    );
    // A reply to a port of worker 0's own slice with no session is dropped.
    let mut stray = tcp_frame(RS1_MAC, RS1, Endpoint::new(LIP, 5002), tcp::ACK, b"");
    assert_eq!(
        w0.process(&mut stray, 0, Millis(3)),
        Verdict::Drop(DropReason::NoSession)
    );
}

#[test]
fn new_tables_keep_sessions_forwarding() {
    let mut p = ready((5000, 5100), 16);
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    p.process(&mut f, 0, Millis(1));
    let (laddr, rs) = (look(&f).src, look(&f).dst);
    // Control removes RS1 from the service.
    let mut t = (*tables((5000, 5100))).clone();
    t.services[0].servers.retain(|r| r.addr != rs);
    let old = p.set_tables(Arc::new(t));
    assert_eq!(old.services[0].servers.len(), 2);
    // The existing session still forwards both ways.
    let mut f = tcp_frame(RS1_MAC, rs, laddr, tcp::SYN | tcp::ACK, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(3)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(look(&f).dst, rs);
    // New connections go to the remaining server only.
    for i in 0..3 {
        let mut f = tcp_frame(
            CLIENT_MAC,
            Endpoint::new(CLIENT.ip.v4_bits(), 41000 + i),
            VIP,
            tcp::SYN,
            b"",
        );
        p.process(&mut f, 0, Millis(4));
        assert_ne!(look(&f).dst, rs);
    }
}

#[test]
fn fullnat_connection_both_ways_then_expiry() {
    let mut p = ready((5000, 5009), 16);
    // Client SYN: becomes LIP:lport -> RS1, toward RS1's MAC.
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let s = look(&f);
    assert_eq!((s.dst_mac, s.src_mac), (RS1_MAC, LB_MAC));
    assert_eq!(s.src.ip.v4_bits(), LIP);
    assert!((5000..=5009).contains(&s.src.port));
    assert_eq!(s.dst, RS1);
    assert!(s.checksums_ok);
    let laddr = s.src;
    assert_eq!(
        p.rs_conns()[0],
        ConnCount {
            active: 0,
            inactive: 1,
            created: 1
        }
    );

    // RS SYN-ACK: back to the client, from the VIP.
    let mut f = tcp_frame(RS1_MAC, RS1, laddr, tcp::SYN | tcp::ACK, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    let s = look(&f);
    assert_eq!(
        (s.dst_mac, s.src, s.dst, s.flags),
        (CLIENT_MAC, VIP, CLIENT, tcp::SYN | tcp::ACK)
    );
    assert!(s.checksums_ok);

    // Handshake completes: established and active.
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        p.process(&mut f, 0, Millis(3)),
        Verdict::Forward { port: 0 }
    );
    assert!(look(&f).checksums_ok);
    assert_eq!(
        p.rs_conns()[0],
        ConnCount {
            active: 1,
            inactive: 0,
            created: 1
        }
    );

    // Server closes, client closes: TIME_WAIT (2 s in these tables).
    for (mac, src, dst, flags) in [
        (RS1_MAC, RS1, laddr, tcp::FIN | tcp::ACK),
        (CLIENT_MAC, CLIENT, VIP, tcp::ACK),
        (CLIENT_MAC, CLIENT, VIP, tcp::FIN | tcp::ACK),
        (RS1_MAC, RS1, laddr, tcp::ACK),
    ] {
        let mut f = tcp_frame(mac, src, dst, flags, b"");
        assert!(matches!(
            p.process(&mut f, 0, Millis(10)),
            Verdict::Forward { .. }
        ));
    }
    let only = p.sessions().iter().next().unwrap();
    assert_eq!(only.state, TcpState::TimeWait);
    assert_eq!(
        p.rs_conns()[0],
        ConnCount {
            active: 0,
            inactive: 1,
            created: 1
        }
    );

    // Not yet expired at 1 s; gone after 2 s, port back in the pool.
    p.housekeeping(Millis(1010), 16);
    assert_eq!(p.sessions().len(), 1);
    p.housekeeping(Millis(2010), 16);
    assert!(p.sessions().is_empty());
    assert_eq!(
        p.rs_conns()[0],
        ConnCount {
            active: 0,
            inactive: 0,
            created: 1
        }
    );
    assert_eq!(p.pools[0].available(), 10);
    assert_eq!(p.counters.sessions_created, 1);
    assert_eq!(p.counters.sessions_expired, 1);

    // A late segment of the dead connection finds nothing.
    let mut f = tcp_frame(RS1_MAC, RS1, laddr, tcp::ACK, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(2020)),
        Verdict::Drop(DropReason::NoSession)
    );
}

#[test]
fn round_robin_alternates_between_servers() {
    let mut p = ready((5000, 5100), 64);
    let mut picked = Vec::new();
    for i in 0..6 {
        let mut f = tcp_frame(
            CLIENT_MAC,
            Endpoint::new(CLIENT.ip.v4_bits(), 40000 + i),
            VIP,
            tcp::SYN,
            b"",
        );
        assert_eq!(
            p.process(&mut f, 0, Millis(1)),
            Verdict::Forward { port: 0 }
        );
        picked.push(look(&f).dst);
    }
    assert_eq!(picked, vec![RS1, RS2, RS1, RS2, RS1, RS2]);
}

#[test]
fn refusals_are_counted() {
    let mut p = ready((5000, 5001), 16);
    // Without the flood guard, which would evict a half-open session to
    // make room (flood_tests.rs).
    p.set_flood_guard(crate::guard::GuardConfig {
        enabled: false,
        ..Default::default()
    });
    // Non-SYN without a session.
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::NoSession)
    );
    // A port with no service on the VIP; an address not ours.
    let mut f = tcp_frame(
        CLIENT_MAC,
        CLIENT,
        Endpoint::new(VIP.ip.v4_bits(), 81),
        tcp::SYN,
        b"",
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::NoService)
    );
    let mut f = tcp_frame(
        CLIENT_MAC,
        CLIENT,
        Endpoint::new([10, 77, 0, 50], 80),
        tcp::SYN,
        b"",
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::NotForUs)
    );
    // Two local ports: the third connection finds the pool exhausted.
    for i in 0..3 {
        let mut f = tcp_frame(
            CLIENT_MAC,
            Endpoint::new(CLIENT.ip.v4_bits(), 41000 + i),
            VIP,
            tcp::SYN,
            b"",
        );
        let v = p.process(&mut f, 0, Millis(1));
        if i < 2 {
            assert_eq!(v, Verdict::Forward { port: 0 });
        } else {
            assert_eq!(v, Verdict::Drop(DropReason::PortExhausted));
        }
    }
    // Truncated (the IP total length now disagrees with the frame) and
    // non-IP frames.
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    f.truncate(14 + 20 + 10);
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::BadLength)
    );
    let mut f = vec![0u8; 10];
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::Malformed)
    );
    let mut f = eth(LB_MAC, CLIENT_MAC, 0x8100, &[0; 40]);
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::UnsupportedL3)
    );
    let mut f = eth(LB_MAC, CLIENT_MAC, 0x86dd, &[0; 40]);
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::Malformed),
        "IPv6 with version 0"
    );
    let c = &p.counters;
    for (r, n) in [
        (DropReason::NoSession, 1),
        (DropReason::NoService, 1),
        (DropReason::NotForUs, 1),
        (DropReason::PortExhausted, 1),
        (DropReason::Malformed, 2),
        (DropReason::BadLength, 1),
        (DropReason::UnsupportedL3, 1),
    ] {
        assert_eq!(c.drops[r as usize], n, "{}", r.name());
    }
}

#[test]
fn full_table_refuses_new_but_keeps_established() {
    let mut p = ready((5000, 6000), 1);
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let laddr = look(&f).src;
    // Established: the flood guard never evicts it.
    let mut f = tcp_frame(RS1_MAC, RS1, laddr, tcp::SYN | tcp::ACK, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let mut f = tcp_frame(
        CLIENT_MAC,
        Endpoint::new(CLIENT.ip.v4_bits(), 40001),
        VIP,
        tcp::SYN,
        b"",
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::SessionTableFull)
    );
    assert_eq!(
        p.pools[0].available(),
        1000,
        "refused session returned its port"
    );
    let mut f = tcp_frame(RS1_MAC, RS1, laddr, tcp::ACK, b"x");
    assert_eq!(
        p.process(&mut f, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(p.flood_guard().counters.half_open_evicted, 0);
}

#[test]
fn syn_on_time_wait_tuple_starts_a_new_session() {
    let mut p = ready((5000, 5100), 16);
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    p.process(&mut f, 0, Millis(1));
    let (laddr, first) = (look(&f).src, look(&f).dst);
    // The real server refuses (RST): the session closes.
    let mut f = tcp_frame(RS1_MAC, first, laddr, tcp::RST | tcp::ACK, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(p.sessions().iter().next().unwrap().state, TcpState::Close);
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(3)),
        Verdict::Forward { port: 0 }
    );
    assert_ne!(look(&f).dst, first, "rescheduled");
    assert_eq!(p.sessions().len(), 1);
    assert_eq!(p.counters.sessions_created, 2);
}

#[test]
fn answers_ping_to_the_vip() {
    let mut p = ready((5000, 5100), 16);
    let mut icmp_msg = vec![icmp::ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1, b'x'];
    let c = crate::checksum::checksum(&icmp_msg);
    icmp_msg[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0u8; 20];
    ipv4::emit_header(
        &mut ip,
        ipv4::PROTO_ICMP,
        CLIENT.ip.v4_bits(),
        VIP.ip.v4_bits(),
        icmp_msg.len() as u16,
    );
    ip.extend_from_slice(&icmp_msg);
    let mut f = eth(LB_MAC, CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &ip);
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let e = ethernet::Frame::new_checked(&f[..]).unwrap();
    let ip = ipv4::Packet::new_checked(e.payload()).unwrap();
    assert_eq!(
        (ip.src(), ip.dst(), e.dst()),
        (VIP.ip.v4_bits(), CLIENT.ip.v4_bits(), CLIENT_MAC)
    );
    let m = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(m.msg_type(), icmp::ECHO_REPLY);
    assert!(m.verify_checksum() && ip.verify_checksum());
}

#[test]
fn client_flows_spread_over_workers() {
    for workers in [2u16, 3, 4] {
        let mut per = vec![0usize; usize::from(workers)];
        // Even ports only: Linux gives connect() even ephemeral ports.
        for p in (30000..32000u16).step_by(2) {
            per[client_owner(
                &FlowKey {
                    src: Endpoint::new(CLIENT.ip.v4_bits(), p),
                    dst: VIP,
                    proto: 6,
                },
                workers,
            )] += 1;
        }
        let fair = 1000 / usize::from(workers);
        assert!(
            per.iter().all(|&n| n > fair * 8 / 10 && n < fair * 12 / 10),
            "{workers} workers: {per:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Schedulers, persistence, thresholds and draining through the pipeline.

use std::collections::{HashMap, HashSet};

use crate::sched::{self, Member};
use crate::tables::{Persistence, Thresholds};

/// The test tables with `edit` applied.
pub(super) fn tables_with(lports: (u16, u16), edit: impl FnOnce(&mut Tables)) -> Arc<Tables> {
    let mut t = (*tables(lports)).clone();
    edit(&mut t);
    Arc::new(t)
}

/// Workers `0..n` of `n` over `t`.
fn workers(t: &Arc<Tables>, n: u16) -> Vec<Pipeline> {
    (0..n)
        .map(|i| Pipeline::new(Arc::clone(t), known_servers(), 4096, 42, i, n))
        .collect()
}

/// Offers a client SYN to worker `first`, follows a redirect to the owner,
/// and returns (owner, the real server it went to).
fn connect(w: &mut [Pipeline], first: usize, client: Endpoint, now: u64) -> (usize, Endpoint) {
    let mut f = tcp_frame(CLIENT_MAC, client, VIP, tcp::SYN, b"");
    let mut at = first;
    let mut v = w[at].process(&mut f, 0, Millis(now));
    if let Verdict::Redirect { worker } = v {
        at = usize::from(worker);
        v = w[at].process(&mut f, 0, Millis(now));
    }
    assert_eq!(v, Verdict::Forward { port: 0 }, "client {client:?}");
    (at, look(&f).dst)
}

#[test]
fn wrr_two_to_one_over_two_workers() {
    let t = tables_with((5000, 9000), |t| {
        t.services[0].sched = sched::SchedKind::WeightedRoundRobin;
        t.services[0].servers[0].weight = 2;
    });
    let mut w = workers(&t, 2);
    let mut to = HashMap::new();
    for i in 0..300u16 {
        let (_, rs) = connect(
            &mut w,
            usize::from(i % 2),
            Endpoint::new(CLIENT.ip.v4_bits(), 30000 + 2 * i),
            1,
        );
        *to.entry(rs).or_insert(0) += 1;
    }
    let rs1 = to[&RS1];
    assert!((198..=202).contains(&rs1), "{to:?}");
    assert!(
        w.iter().all(|p| p.counters.sessions_created > 50),
        "both workers scheduled"
    );
}

#[test]
fn persistence_keeps_a_client_on_one_server_whichever_worker_gets_it() {
    let t = tables_with((5000, 9000), |t| {
        t.services[0].persistence = Some(Persistence::new(300))
    });
    let mut w = workers(&t, 2);
    let owner = persistent_owner(CLIENT.ip, VIP, 6, 2);
    let mut seen = HashSet::new();
    for i in 0..50u16 {
        // Each SYN first reaches one worker or the other, as RSS would.
        let (at, rs) = connect(
            &mut w,
            usize::from(i % 2),
            Endpoint::new(CLIENT.ip.v4_bits(), 40000 + i),
            10 + u64::from(i),
        );
        assert_eq!(at, owner, "all of one client's connections meet one worker");
        seen.insert(rs);
    }
    assert_eq!(seen.len(), 1, "one server for the client: {seen:?}");
    let tpl = *w[owner].templates().iter().next().unwrap();
    assert_eq!(
        (tpl.controls, tpl.key.client, tpl.rs),
        (50, CLIENT.ip, *seen.iter().next().unwrap())
    );
    assert_eq!(
        tpl.expires,
        Millis(59).plus_secs(300),
        "re-armed by the last connection"
    );
    assert!(w[1 - owner].templates().is_empty());
    // rr alone would have alternated: another client of the same worker goes
    // to the other server.
    let other = (20..=250u8)
        .map(|x| [10, 77, 0, x])
        .find(|c| persistent_owner(Addr::v4(*c), VIP, 6, 2) == owner)
        .unwrap();
    let (_, rs) = connect(&mut w, 0, Endpoint::new(other, 40000), 100);
    assert_ne!(Some(&rs), seen.iter().next());
}

#[test]
fn persistence_netmask_groups_clients_and_templates_expire() {
    let t = tables_with((5000, 9000), |t| {
        t.services[0].persistence = Some(Persistence {
            timeout_secs: 5,
            netmask: [255, 255, 255, 0],
            prefix6: 128,
        });
    });
    let mut w = workers(&t, 1);
    // Two clients of one /24: one template, one server.
    let (_, a) = connect(&mut w, 0, CLIENT, 0);
    let (_, b) = connect(&mut w, 0, Endpoint::new([10, 77, 0, 99], 41000), 1000);
    assert_eq!((a, b), (RS1, RS1));
    assert_eq!(w[0].templates().len(), 1);
    // A connection that stays open keeps the template past its timeout.
    let long = Endpoint::new([10, 77, 0, 50], 42000);
    let (_, c) = connect(&mut w, 0, long, 2000);
    assert_eq!(c, RS1);
    let mut f = tcp_frame(
        RS1_MAC,
        RS1,
        sessions_laddr(&w[0], long),
        tcp::SYN | tcp::ACK,
        b"",
    );
    w[0].process(&mut f, 0, Millis(2001));
    let mut f = tcp_frame(CLIENT_MAC, long, VIP, tcp::ACK, b"");
    w[0].process(&mut f, 0, Millis(2002));
    // The two half-open ones time out (SYN_RECV/NONE); the established one stays.
    for now in [8_000, 20_000, 70_000] {
        w[0].housekeeping(Millis(now), 4096);
    }
    assert_eq!(w[0].sessions().len(), 1);
    let tpl = *w[0].templates().iter().next().unwrap();
    assert_eq!(tpl.controls, 1);
    assert!(
        tpl.expires > Millis(70_000),
        "re-armed while it controls a connection"
    );
    let (_, d) = connect(&mut w, 0, Endpoint::new([10, 77, 0, 7], 43000), 71_000);
    assert_eq!(d, RS1, "still bound");
    // Once nothing holds it and its time is up, it goes; rr resumes.
    let mut rst = tcp_frame(
        RS1_MAC,
        RS1,
        sessions_laddr(&w[0], long),
        tcp::RST | tcp::ACK,
        b"",
    );
    w[0].process(&mut rst, 0, Millis(72_000));
    for now in [200_000, 400_000] {
        w[0].housekeeping(Millis(now), 4096);
    }
    assert!(w[0].sessions().is_empty());
    assert!(w[0].templates().is_empty(), "expired template removed");
    let (_, e) = connect(&mut w, 0, CLIENT, 500_000);
    assert_eq!(e, RS2, "scheduled afresh: rr's next");
}

/// The local address of `client`'s session on `p`.
fn sessions_laddr(p: &Pipeline, client: Endpoint) -> Endpoint {
    p.sessions()
        .iter()
        .find(|s| s.client == client)
        .map(|s| s.laddr)
        .unwrap()
}

#[test]
fn template_points_elsewhere_when_its_server_is_removed() {
    let t = tables_with((5000, 9000), |t| {
        t.services[0].persistence = Some(Persistence::new(300))
    });
    let mut w = workers(&t, 1);
    let (_, a) = connect(&mut w, 0, CLIENT, 0);
    assert_eq!(a, RS1);
    // Weight 0: the kernel keeps sending persistent clients (quiescent
    // templates do not expire by default).
    w[0].set_tables(tables_with((5000, 9000), |t| {
        t.services[0].persistence = Some(Persistence::new(300));
        t.services[0].servers[0].weight = 0;
    }));
    assert_eq!(
        connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 40001), 10).1,
        RS1
    );
    // Removed: rescheduled, and the template follows.
    w[0].set_tables(tables_with((5000, 9000), |t| {
        t.services[0].persistence = Some(Persistence::new(300));
        t.services[0].servers.remove(0);
    }));
    assert_eq!(
        connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 40002), 20).1,
        RS2
    );
    assert_eq!(
        connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 40003), 30).1,
        RS2
    );
    assert_eq!(w[0].templates().iter().next().unwrap().rs, RS2);
}

#[test]
fn upper_threshold_stops_new_connections_until_below_lower() {
    let t = tables_with((5000, 9000), |t| {
        t.services[0].servers[0].thresholds = Thresholds { upper: 2, lower: 1 };
    });
    let mut w = workers(&t, 1);
    let picks: Vec<_> = (0..6u16)
        .map(|i| connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 40000 + i), 1).1)
        .collect();
    // rr: RS1, RS2, RS1 (now 2 = upper: overloaded), then RS2 only.
    assert_eq!(picks, vec![RS1, RS2, RS1, RS2, RS2, RS2]);
    assert!(w[0].rs_limits()[0].overloaded);
    // One of RS1's two connections ends: 1 is not below lower 1, still out.
    let mine: Vec<Endpoint> = w[0]
        .sessions()
        .iter()
        .filter(|s| s.rs == RS1)
        .map(|s| s.client)
        .collect();
    let mut rst = tcp_frame(
        RS1_MAC,
        RS1,
        sessions_laddr(&w[0], mine[0]),
        tcp::RST | tcp::ACK,
        b"",
    );
    w[0].process(&mut rst, 0, Millis(2));
    w[0].housekeeping(Millis(1_500), 4096); // NONE sessions (2 s) still alive; CLOSE after 10 s
    w[0].housekeeping(Millis(1_600), 4096);
    assert_eq!(
        connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 41000), 1_700).1,
        RS2
    );
    // The other one ends too: 0 < 1, RS1 takes connections again.
    let mut rst = tcp_frame(
        RS1_MAC,
        RS1,
        sessions_laddr(&w[0], mine[1]),
        tcp::RST | tcp::ACK,
        b"",
    );
    w[0].process(&mut rst, 0, Millis(1_800));
    w[0].housekeeping(Millis(12_000), 4096);
    assert_eq!(w[0].rs_conns()[0].total(), 0);
    assert!(!w[0].rs_limits()[0].overloaded);
    assert_eq!(
        connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 42000), 12_100).1,
        RS1
    );
}

#[test]
fn threshold_shares_add_up_over_workers() {
    for (upper, workers) in [(5u32, 2u16), (1, 2), (7, 3), (100, 4)] {
        for rs in 0..4u16 {
            let shares: Vec<RsLimit> = (0..workers)
                .map(|w| RsLimit::share(Thresholds { upper, lower: 0 }, rs, w, workers))
                .collect();
            assert_eq!(
                shares.iter().map(|s| s.upper).sum::<u32>(),
                upper,
                "{upper}/{workers}"
            );
            let zero = shares.iter().filter(|s| s.refuses()).count();
            assert_eq!(zero, (workers as u32).saturating_sub(upper) as usize);
        }
    }
    // The worker with the extra connection rotates with the server.
    let first: Vec<u32> = (0..2u16)
        .map(|rs| RsLimit::share(Thresholds { upper: 1, lower: 0 }, rs, 0, 2).upper)
        .collect();
    assert_eq!(first, vec![1, 0]);
    assert_eq!(
        RsLimit::share(Thresholds { upper: 9, lower: 1 }, 0, 1, 2).lower,
        1,
        "lower share at least 1"
    );
}

#[test]
fn weight_zero_drains_while_the_connection_carries_on() {
    let mut w = workers(&tables((5000, 9000)), 1);
    let (_, a) = connect(&mut w, 0, CLIENT, 1);
    assert_eq!(a, RS1);
    let laddr = sessions_laddr(&w[0], CLIENT);
    w[0].set_tables(tables_with((5000, 9000), |t| {
        t.services[0].servers[0].weight = 0
    }));
    // New connections avoid RS1...
    for i in 0..4 {
        assert_eq!(
            connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 41000 + i), 2).1,
            RS2
        );
    }
    // ...while the old one goes on both ways.
    let mut f = tcp_frame(RS1_MAC, RS1, laddr, tcp::SYN | tcp::ACK, b"");
    assert_eq!(
        w[0].process(&mut f, 0, Millis(3)),
        Verdict::Forward { port: 0 }
    );
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"data");
    assert_eq!(
        w[0].process(&mut f, 0, Millis(4)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(look(&f).dst, RS1);
    // All weights 0: no real server.
    w[0].set_tables(tables_with((5000, 9000), |t| {
        t.services[0].servers.iter_mut().for_each(|r| r.weight = 0)
    }));
    let mut f = tcp_frame(
        CLIENT_MAC,
        Endpoint::new(CLIENT.ip.v4_bits(), 45000),
        VIP,
        tcp::SYN,
        b"",
    );
    assert_eq!(
        w[0].process(&mut f, 0, Millis(5)),
        Verdict::Drop(DropReason::NoRealServer)
    );
}

#[test]
fn scheduler_state_survives_unrelated_snapshots() {
    let mut w = workers(&tables((5000, 9000)), 1);
    assert_eq!(
        connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 40000), 1).1,
        RS1
    );
    // A snapshot that changes only timeouts: rr goes on where it was.
    w[0].set_tables(tables_with((5000, 9000), |t| t.timeouts.udp_secs = 10));
    assert_eq!(
        connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 40001), 2).1,
        RS2
    );
    // A new policy starts fresh.
    w[0].set_tables(tables_with((5000, 9000), |t| {
        t.services[0].sched = sched::SchedKind::LeastConnection
    }));
    assert_eq!(
        connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 40002), 3).1,
        RS1,
        "lc: RS1 1 conn vs RS2 1: first"
    );
}

#[test]
fn every_policy_schedules_through_the_pipeline() {
    for kind in sched::SchedKind::ALL {
        let t = tables_with((5000, 9000), |t| {
            let s = &mut t.services[0];
            s.sched = kind;
            let members: Vec<Member> = s
                .servers
                .iter()
                .map(|r| Member {
                    addr: r.addr.ip.v4_bits(),
                    port: r.addr.port,
                    weight: r.weight,
                    last_weight: r.weight,
                })
                .collect();
            s.sched_table = sched::build(kind, 251, &members);
        });
        let mut w = workers(&t, 2);
        let mut seen = HashSet::new();
        for i in 0..40u16 {
            let client = Endpoint::new([10, 77, 1, i as u8], 40000 + i);
            seen.insert(connect(&mut w, usize::from(i % 2), client, 1).1);
        }
        let want = match kind {
            // Destination hashing and failover put a VIP's connections on one
            // server. The policies that count only *active* connections see
            // none here (these handshakes never complete), so they keep
            // choosing the first server, as the kernel would: sed, nq and ovf
            // by their formulas, lblc/lblcr because nothing is overloaded.
            sched::SchedKind::DestinationHashing
            | sched::SchedKind::WeightedFailover
            | sched::SchedKind::ShortestExpectedDelay
            | sched::SchedKind::NeverQueue
            | sched::SchedKind::WeightedOverflow
            | sched::SchedKind::LocalityLeastConnection
            | sched::SchedKind::LocalityLeastConnectionReplication => 1,
            _ => 2,
        };
        assert_eq!(seen.len(), want, "{}: {seen:?}", kind.name());
    }
}

#[test]
fn exception_path_takes_what_is_for_the_appliance_itself() {
    let mut p = ready((5000, 5100), 16);
    // Without an exception path: TCP to the interface address is dropped.
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, Endpoint::new(LB, 22), tcp::SYN, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::NoService)
    );
    p.enable_punt();
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, Endpoint::new(LB, 22), tcp::SYN, b"");
    assert_eq!(p.process(&mut f, 0, Millis(1)), Verdict::Punt);
    // ARP replies reach the kernel too; requests for owned addresses are still answered here.
    let mut f = arp_frame(arp::OP_REPLY, RS1_MAC, RS1.ip.v4_bits(), LB);
    assert_eq!(p.process(&mut f, 0, Millis(1)), Verdict::Punt);
    let mut f = arp_frame(arp::OP_REQUEST, CLIENT_MAC, CLIENT.ip.v4_bits(), LB);
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    // The VIP's services and addresses not ours are unchanged.
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let mut f = tcp_frame(
        CLIENT_MAC,
        CLIENT,
        Endpoint::new(VIP.ip.v4_bits(), 81),
        tcp::SYN,
        b"",
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::NoService)
    );
    let mut f = tcp_frame(
        CLIENT_MAC,
        CLIENT,
        Endpoint::new([10, 77, 0, 50], 80),
        tcp::SYN,
        b"",
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::NotForUs)
    );
}

#[test]
fn a_full_template_table_schedules_without_affinity_and_counts_it() {
    let t = tables_with((5000, 9000), |t| {
        t.services[0].persistence = Some(Persistence::new(300))
    });
    let mut w = workers(&t, 1);
    w[0].set_template_capacity(1);
    assert_eq!(w[0].templates().capacity(), 1);
    let (_, a) = connect(&mut w, 0, CLIENT, 0);
    // A second client finds no room for its template: scheduled plainly.
    let other = Endpoint::new([10, 77, 0, 99], 41000);
    let (_, b) = connect(&mut w, 0, other, 1);
    let (_, c) = connect(&mut w, 0, Endpoint::new(other.ip.v4_bits(), 41001), 2);
    assert_eq!(w[0].templates_full, 2);
    assert_eq!(w[0].templates().len(), 1);
    assert_ne!(b, c, "no affinity without a template: rr alternates");
    assert_eq!(
        connect(&mut w, 0, Endpoint::new(CLIENT.ip.v4_bits(), 40001), 3).1,
        a,
        "the first client keeps its server"
    );
}

#[test]
fn read_ahead_points_at_the_session_each_direction_will_use() {
    let mut p = ready((5000, 5009), 16);
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    let h = p.flow_hash(&f).expect("a TCP frame has a flow");
    assert!(p.sessions().candidate(h).is_none(), "no session yet");
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let laddr = look(&f).src;
    let s = p.sessions().iter().next().unwrap();
    let Lookup::Hit(slot, _) = p.sessions().lookup(&s.client_key(), Millis(1)) else {
        panic!("the session is not found by its client key");
    };
    let hot = p.sessions().hot(slot).expect("a live session");
    for f in [
        tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"x"),
        tcp_frame(RS1_MAC, RS1, laddr, tcp::SYN | tcp::ACK, b""),
    ] {
        let h = p.flow_hash(&f).expect("a TCP frame has a flow");
        let c = p.sessions().candidate(h).expect("a candidate");
        assert!(
            std::ptr::eq(c, hot),
            "the candidate is the session's hot line"
        );
    }
    assert_eq!(
        p.flow_hash(&arp_frame(
            arp::OP_REQUEST,
            CLIENT_MAC,
            CLIENT.ip.v4_bits(),
            LB
        )),
        None
    );
    let short = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"");
    assert_eq!(
        p.flow_hash(&short[..ethernet::HEADER_LEN + 20 + 3]),
        None,
        "no room for the ports"
    );
}

#[test]
fn a_described_frame_is_handled_exactly_as_an_undescribed_one() {
    // Two identical workers: one describes every frame first, as the
    // worker's read-ahead does; the other classifies it alone.
    let (mut a, mut b) = (ready((5000, 5009), 16), ready((5000, 5009), 16));
    let syn = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    let data = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"payload");
    let mut low_ttl = data.clone();
    low_ttl[ethernet::HEADER_LEN + 8] = 1;
    let mut fragment = data.clone();
    fragment[ethernet::HEADER_LEN + 6] = 0x20; // MF
    for f in [&mut low_ttl, &mut fragment] {
        ipv4::Packet::new_checked(&mut f[ethernet::HEADER_LEN..])
            .unwrap()
            .fill_checksum();
    }
    let short = data[..ethernet::HEADER_LEN + 20 + 3].to_vec();
    let arp = arp_frame(arp::OP_REQUEST, CLIENT_MAC, CLIENT.ip.v4_bits(), LB);
    let mut frames = vec![syn, data, low_ttl, fragment, short, arp];
    // The server's reply, to the local port the first SYN was given.
    let mut first = frames[0].clone();
    b.process(&mut first, 0, Millis(0));
    let mut reply = tcp_frame(RS1_MAC, RS1, look(&first).src, tcp::SYN | tcp::ACK, b"");
    let mut b = ready((5000, 5009), 16);
    frames.push(std::mem::take(&mut reply));
    for (i, f) in frames.iter().enumerate() {
        let (mut fa, mut fb) = (f.clone(), f.clone());
        let d = a.describe(&fa);
        assert_eq!(d.is_some(), i < 3 || i == 6, "frame {i} described");
        // As the worker's read-ahead describes: into a slot that holds the
        // burst before's descriptor (and for a cut frame too).
        for len in [fa.len(), 13, 0] {
            let mut slot = a.describe(&frames[1]);
            a.describe_into(&fa[..len], &mut slot);
            assert_eq!(slot, a.describe(&fa[..len]), "frame {i} cut to {len}");
        }
        let va = a.process_desc(&mut PacketBuf::whole(&mut fa), 0, d.as_ref(), Millis(1));
        let vb = b.process(&mut fb, 0, Millis(1));
        assert_eq!((va, &fa), (vb, &fb), "frame {i}");
    }
    assert_eq!(a.counters, b.counters);
}

#[test]
fn a_syn_no_server_can_take_is_answered_with_port_unreachable_rate_limited() {
    let t = tables((5000, 9000));
    let mut t = (*t).clone();
    t.services[0].servers.iter_mut().for_each(|r| r.weight = 0);
    let mut p = Pipeline::new(Arc::new(t), known_servers(), 16, 42, 0, 1);
    let syn = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    let mut verdicts = Vec::new();
    for i in 0..8 {
        let mut room = vec![0u8; 512];
        room[128..128 + syn.len()].copy_from_slice(&syn);
        let mut pkt = PacketBuf::new(&mut room, 128, syn.len());
        let v = p.process_buf(&mut pkt, 0, Millis(1000 + i));
        if i == 0 {
            let f = pkt.frame();
            let e = ethernet::Frame::new_checked(f).unwrap();
            assert_eq!((e.dst(), e.src()), (CLIENT_MAC, LB_MAC));
            let ip = ipv4::Packet::new_checked(e.payload()).unwrap();
            assert_eq!(
                (ip.src(), ip.dst(), ip.protocol()),
                (VIP.ip.v4_bits(), CLIENT.ip.v4_bits(), ipv4::PROTO_ICMP)
            );
            assert_eq!(&ip.payload()[..2], &[3, 3], "port unreachable");
            assert_eq!(&ip.payload()[8..], &syn[14..], "the SYN quoted whole");
        }
        verdicts.push(v);
    }
    let fwd = Verdict::Forward { port: 0 };
    let no = Verdict::Drop(DropReason::NoRealServer);
    assert_eq!(verdicts, [fwd, fwd, fwd, fwd, fwd, fwd, no, no]);
    assert_eq!(p.counters.drops[DropReason::PortUnreachable as usize], 6);
    assert_eq!(p.counters.drops[DropReason::NoRealServer as usize], 2);
    // A segment that is not a SYN is not answered (it schedules nothing).
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(9000)),
        Verdict::Drop(DropReason::NoSession)
    );
}

#[test]
fn a_wrong_checksum_inside_a_session_is_forwarded_still_wrong() {
    // Only a packet that would create a session is summed; the rest keep
    // the incremental update, which must neither fix nor trip over a wrong
    // checksum (debug builds compare before and after).
    let mut p = ready((5000, 5100), 16);
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"data");
    let sum = ethernet::HEADER_LEN + 20 + 16;
    f[sum] ^= 0x5a;
    assert_eq!(
        p.process(&mut f, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    assert!(!look(&f).checksums_ok, "a wrong checksum stays wrong");
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"data");
    assert_eq!(
        p.process(&mut f, 0, Millis(3)),
        Verdict::Forward { port: 0 }
    );
    assert!(look(&f).checksums_ok);
}
