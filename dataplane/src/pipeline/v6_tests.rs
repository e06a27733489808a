//! IPv6 through the pipeline on byte vectors: FULLNAT, NAT, DR and TUN for
//! TCP and UDP, neighbour discovery and echo for owned addresses.

use std::sync::Arc;

use super::tests::{eth, tables_with, CLIENT_MAC, LB_MAC, RS1_MAC, RS2_MAC};
use super::*;
use crate::neigh::{NeighEntry, NeighEvent, NeighMap};
use crate::packet::PacketBuf;
use crate::route::{NextHop, Route, RouteTable, Routes};
use crate::session::Lookup;
use crate::xmit::rewrite::tests::{tcp_packet, udp_packet};

pub(super) fn a(s: &str) -> Addr {
    s.parse::<std::net::IpAddr>().unwrap().into()
}
pub(super) fn ep(s: &str, port: u16) -> Endpoint {
    Endpoint::at(a(s), port)
}

const PREFIX: &str = "fd77::";

pub(super) fn client() -> Endpoint {
    ep("fd77::10", 40000)
}
pub(super) fn vip() -> Endpoint {
    ep("fd77::100", 80)
}
pub(super) fn lip() -> Addr {
    a("fd77::200")
}
pub(super) fn rs(i: u8) -> Endpoint {
    ep(&format!("fd77::1{i}"), 8080)
}

/// The lab's TCP service moved to IPv6, every server forwarding by `forward`.
pub(super) fn v6_tables(forward: Forward) -> Arc<Tables> {
    tables_with((5000, 5009), |t| {
        let s = &mut t.services[0];
        s.vip = vip();
        for (i, r) in s.servers.iter_mut().enumerate() {
            r.addr = rs(i as u8 + 1);
            r.forward = forward;
            if matches!(forward, Forward::Dr | Forward::Tun) {
                r.addr.port = 80;
            }
        }
        t.laddrs = vec![lip()];
        let route = |p: &str, len, hop| Route {
            prefix: a(p).octets(),
            len,
            hop,
        };
        t.routes = Routes {
            v6: RouteTable::new([
                route(PREFIX, 64, NextHop::OnLink { port: 0 }),
                route("fd77::2", 128, NextHop::Local { port: 0 }),
            ])
            .unwrap(),
            ..Routes::default()
        };
    })
}

pub(super) fn known() -> Arc<NeighMap> {
    Arc::new(NeighMap::new(vec![
        NeighEntry {
            ip: rs(1).ip,
            mac: RS1_MAC,
            port: 0,
        },
        NeighEntry {
            ip: rs(2).ip,
            mac: RS2_MAC,
            port: 0,
        },
    ]))
}

fn pipeline(forward: Forward) -> Pipeline {
    Pipeline::new(v6_tables(forward), known(), 64, 42, 0, 1)
}

fn tcp6(smac: MacAddr, src: Endpoint, dst: Endpoint, flags: crate::wire::tcp::TcpFlags) -> Vec<u8> {
    eth(
        LB_MAC,
        smac,
        ethernet::ETHERTYPE_IPV6,
        &tcp_packet(src, dst, flags, b"data"),
    )
}

struct Seen {
    mac: MacAddr,
    src: Endpoint,
    dst: Endpoint,
    hop: u8,
    ok: bool,
}

fn look(f: &[u8]) -> Seen {
    let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
    let (s, d) = (ip.src(), ip.dst());
    let (sp, dp, ok) = if ip.next_header() == ipv4::PROTO_TCP {
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        (t.src_port(), t.dst_port(), t.verify_checksum_v6(s, d))
    } else {
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        (u.src_port(), u.dst_port(), u.verify_checksum_v6(s, d))
    };
    Seen {
        mac: f[0..6].try_into().unwrap(),
        src: Endpoint::at(Addr::v6(s), sp),
        dst: Endpoint::at(Addr::v6(d), dp),
        hop: ip.hop_limit(),
        ok,
    }
}

#[test]
fn fullnat_v6_both_ways() {
    let mut p = pipeline(Forward::FullNat);
    let mut f = tcp6(CLIENT_MAC, client(), vip(), tcp::SYN);
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let out = look(&f);
    assert_eq!(
        (out.mac, out.src.ip, out.dst, out.hop),
        (RS1_MAC, lip(), rs(1), 63)
    );
    assert!(out.ok, "checksum after the rewrite");
    let mut r = tcp6(RS1_MAC, rs(1), out.src, tcp::SYN | tcp::ACK);
    assert_eq!(
        p.process(&mut r, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    let back = look(&r);
    assert_eq!(
        (back.mac, back.src, back.dst),
        (CLIENT_MAC, vip(), client())
    );
    assert!(back.ok);
    // The worker's read-ahead finds this session from either direction's frame.
    let session = p.sessions().iter().next().expect("a session");
    let Lookup::Hit(slot, _) = p.sessions().lookup(&session.client_key(), Millis(3)) else {
        panic!("the session is not found by its client key");
    };
    let hot = p.sessions().hot(slot).expect("a live session");
    for f in [
        tcp6(CLIENT_MAC, client(), vip(), tcp::ACK),
        tcp6(RS1_MAC, rs(1), out.src, tcp::ACK),
    ] {
        let h = p.flow_hash(&f).expect("an IPv6 TCP frame has a flow");
        let c = p.sessions().candidate(h).expect("a candidate");
        assert!(
            std::ptr::eq(c, hot),
            "the candidate is the session's hot line"
        );
    }
    // Round robin goes on in IPv6 too.
    let mut f = tcp6(CLIENT_MAC, ep("fd77::10", 40001), vip(), tcp::SYN);
    p.process(&mut f, 0, Millis(3));
    assert_eq!(look(&f).dst, rs(2));
    assert_eq!(p.sessions().len(), 2);
}

#[test]
fn nat_dr_and_udp_v6() {
    let mut p = pipeline(Forward::Nat);
    let mut f = tcp6(CLIENT_MAC, client(), vip(), tcp::SYN);
    p.process(&mut f, 0, Millis(1));
    assert_eq!((look(&f).src, look(&f).dst), (client(), rs(1)));
    let mut r = tcp6(RS1_MAC, rs(1), client(), tcp::SYN | tcp::ACK);
    assert_eq!(
        p.process(&mut r, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        (look(&r).src, look(&r).dst, look(&r).ok),
        (vip(), client(), true)
    );

    let mut p = pipeline(Forward::Dr);
    let mut f = tcp6(CLIENT_MAC, client(), vip(), tcp::SYN);
    let before = f.clone();
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        (&f[0..6], &f[12..]),
        (&RS1_MAC[..], &before[12..]),
        "DR: only the MAC"
    );

    let t = tables_with((5000, 5009), |t| {
        *t = (*v6_tables(Forward::FullNat)).clone();
        t.services[0].proto = ipv4::PROTO_UDP;
    });
    let mut p = Pipeline::new(t, known(), 64, 42, 0, 1);
    let mut q = eth(
        LB_MAC,
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV6,
        &udp_packet(client(), vip(), b"query", false),
    );
    assert_eq!(
        p.process(&mut q, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let out = look(&q);
    assert!(out.ok && out.src.ip == lip());
    let mut ans = eth(
        LB_MAC,
        RS1_MAC,
        ethernet::ETHERTYPE_IPV6,
        &udp_packet(rs(1), out.src, b"answer", false),
    );
    assert_eq!(
        p.process(&mut ans, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        (look(&ans).src, look(&ans).dst, look(&ans).ok),
        (vip(), client(), true)
    );
}

#[test]
fn unknown_server_mac_asks_for_an_ipv6_neighbour() {
    let mut p = Pipeline::new(
        v6_tables(Forward::FullNat),
        Arc::new(NeighMap::default()),
        64,
        42,
        0,
        1,
    );
    let mut f = tcp6(CLIENT_MAC, client(), vip(), tcp::SYN);
    assert!(matches!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Hold { next_hop, .. } if next_hop == rs(1).ip
    ));
    let events: Vec<_> = p.take_neigh_events().collect();
    assert_eq!(
        events,
        vec![NeighEvent::Wanted {
            ip: rs(1).ip,
            port: 0
        }]
    );
}

/// An ND message (`kind`) from `src` about `target` with a link-layer option.
fn nd(kind: u8, smac: MacAddr, src: Addr, dst: Addr, target: Addr, opt: u8) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[opt, 1]);
    m.extend_from_slice(&smac);
    icmpv6::fill_checksum(&mut m, src.octets(), dst.octets());
    let mut ip = vec![0u8; 40];
    ipv6::emit_header(
        &mut ip,
        icmpv6::NEXT_HEADER,
        src.octets(),
        dst.octets(),
        m.len() as u16,
    );
    ip[7] = 255;
    ip.extend_from_slice(&m);
    eth(
        [0x33, 0x33, 0xff, 0, 1, 0],
        smac,
        ethernet::ETHERTYPE_IPV6,
        &ip,
    )
}

#[test]
fn neighbour_solicitations_for_owned_addresses_are_answered() {
    let mut p = pipeline(Forward::FullNat);
    let solicited = a("ff02::1:ff00:100");
    for owned in [vip().ip, lip(), a("fd77::2")] {
        let mut f = nd(
            icmpv6::NEIGHBOR_SOLICITATION,
            CLIENT_MAC,
            client().ip,
            solicited,
            owned,
            icmpv6::OPT_SOURCE_LL,
        );
        assert_eq!(
            p.process(&mut f, 0, Millis(1)),
            Verdict::Forward { port: 0 },
            "{owned}"
        );
        assert_eq!((&f[0..6], &f[6..12]), (&CLIENT_MAC[..], &LB_MAC[..]));
        let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.hop_limit()),
            (owned.octets(), client().ip.octets(), 255)
        );
        let m = ip.payload();
        assert_eq!(m[0], icmpv6::NEIGHBOR_ADVERTISEMENT);
        assert_eq!(icmpv6::checksum(m, ip.src(), ip.dst()), 0);
        assert_eq!(
            icmpv6::link_layer_option(m, icmpv6::OPT_TARGET_LL),
            Some(LB_MAC)
        );
    }
    // The asker was learned (it is on the link); a question about someone else is not answered.
    let learned: Vec<_> = p.take_neigh_events().collect();
    assert!(
        learned.contains(&NeighEvent::Learned(NeighEntry {
            ip: client().ip,
            mac: CLIENT_MAC,
            port: 0
        })),
        "{learned:?}"
    );
    let mut f = nd(
        icmpv6::NEIGHBOR_SOLICITATION,
        CLIENT_MAC,
        client().ip,
        solicited,
        a("fd77::99"),
        icmpv6::OPT_SOURCE_LL,
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(2)),
        Verdict::Drop(DropReason::ArpNotForUs)
    );
    let _ = p.take_neigh_events().count();
    // An advertisement teaches the server's MAC.
    let mut f = nd(
        icmpv6::NEIGHBOR_ADVERTISEMENT,
        [2, 0, 0, 0, 0, 0x13],
        a("fd77::13"),
        a("fd77::2"),
        a("fd77::13"),
        icmpv6::OPT_TARGET_LL,
    );
    assert_eq!(p.process(&mut f, 0, Millis(3)), Verdict::Consumed);
    assert_eq!(
        p.take_neigh_events().collect::<Vec<_>>(),
        vec![NeighEvent::Learned(NeighEntry {
            ip: a("fd77::13"),
            mac: [2, 0, 0, 0, 0, 0x13],
            port: 0
        })]
    );
    // An advertisement with the MAC the worker already has is reported
    // too: it is the answer that keeps control's entry REACHABLE.
    let mut p = pipeline(Forward::FullNat);
    let known = NeighEntry {
        ip: rs(1).ip,
        mac: RS1_MAC,
        port: 0,
    };
    let mut f = nd(
        icmpv6::NEIGHBOR_ADVERTISEMENT,
        known.mac,
        known.ip,
        a("fd77::2"),
        known.ip,
        icmpv6::OPT_TARGET_LL,
    );
    assert_eq!(p.process(&mut f, 0, Millis(3)), Verdict::Consumed);
    assert_eq!(
        p.take_neigh_events().collect::<Vec<_>>(),
        vec![NeighEvent::Learned(known)]
    );
    // A forged hop limit is refused.
    let mut f = nd(
        icmpv6::NEIGHBOR_SOLICITATION,
        CLIENT_MAC,
        client().ip,
        solicited,
        vip().ip,
        icmpv6::OPT_SOURCE_LL,
    );
    f[14 + 7] = 64;
    assert_eq!(
        p.process(&mut f, 0, Millis(4)),
        Verdict::Drop(DropReason::Malformed)
    );
}

#[test]
fn echo_to_the_vip_is_answered_and_fragments_are_counted() {
    let mut p = pipeline(Forward::FullNat);
    let mut m = vec![
        icmpv6::ECHO_REQUEST,
        0,
        0,
        0,
        0,
        1,
        0,
        1,
        b'p',
        b'i',
        b'n',
        b'g',
    ];
    icmpv6::fill_checksum(&mut m, client().ip.octets(), vip().ip.octets());
    let mut ip = vec![0u8; 40];
    ipv6::emit_header(
        &mut ip,
        icmpv6::NEXT_HEADER,
        client().ip.octets(),
        vip().ip.octets(),
        m.len() as u16,
    );
    ip.extend_from_slice(&m);
    let mut f = eth(LB_MAC, CLIENT_MAC, ethernet::ETHERTYPE_IPV6, &ip);
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let r = ipv6::Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(
        (r.src(), r.dst(), r.payload()[0]),
        (vip().ip.octets(), client().ip.octets(), icmpv6::ECHO_REPLY)
    );
    assert_eq!(icmpv6::checksum(r.payload(), r.src(), r.dst()), 0);
    // A fragment header (what follows read as one: a later fragment of
    // an unknown datagram): held for its first fragment.
    let mut frag = tcp6(CLIENT_MAC, client(), vip(), tcp::SYN);
    frag[14 + 6] = ipv6::NEXT_FRAGMENT;
    assert!(matches!(
        p.process(&mut frag, 0, Millis(2)),
        Verdict::HoldFragment { .. }
    ));
}

#[test]
fn tun_v6_wraps_in_ipv6_from_the_interface_address() {
    let mut p = pipeline(Forward::Tun);
    let frame = tcp6(CLIENT_MAC, client(), vip(), tcp::SYN);
    let mut buf = vec![0u8; 128 + frame.len()];
    buf[128..].copy_from_slice(&frame);
    let mut pkt = PacketBuf::new(&mut buf, 128, frame.len());
    assert_eq!(
        p.process_buf(&mut pkt, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let f = pkt.frame();
    let outer = ipv6::Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(
        (outer.src(), outer.dst(), outer.next_header()),
        (a("fd77::2").octets(), rs(1).ip.octets(), tunnel::NEXT_IPV6)
    );
    assert_eq!(outer.payload(), &frame[14..]);
}

#[test]
fn fullnat64_takes_ipv6_clients_to_ipv4_servers_and_back() {
    use super::tests::{known_servers, LIP, RS1};
    // The lab's IPv4 service with an IPv6 VIP in front.
    let t = tables_with((5000, 5009), |t| {
        t.services[0].vip = vip();
        t.routes = v6_tables(Forward::FullNat).routes.clone();
    });
    let mut p = Pipeline::new(t, known_servers(), 64, 42, 0, 1);
    let run = |p: &mut Pipeline, frame: &[u8], now: u64| -> (Verdict, Vec<u8>) {
        let mut buf = vec![0u8; 64 + frame.len()];
        buf[64..].copy_from_slice(frame);
        let mut pkt = PacketBuf::new(&mut buf, 64, frame.len());
        let v = p.process_buf(&mut pkt, 0, Millis(now));
        (v, pkt.frame().to_vec())
    };
    let syn = tcp6(CLIENT_MAC, client(), vip(), tcp::SYN);
    let (v, out) = run(&mut p, &syn, 1);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(
        (
            out.len(),
            &out[0..6],
            u16::from_be_bytes([out[12], out[13]])
        ),
        (syn.len() - 20, &RS1_MAC[..], ethernet::ETHERTYPE_IPV4)
    );
    let ip = ipv4::Packet::new_checked(&out[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src(), ip.dst(), ip.ttl()), (LIP, RS1.ip.v4_bits(), 63));
    let t4 = tcp::Packet::new_checked(ip.payload()).unwrap();
    assert!(t4.verify_checksum_v4(ip.src(), ip.dst()));
    assert_eq!(t4.dst_port(), RS1.port);
    let lport = t4.src_port();
    // The server's answer goes back to the client in IPv6.
    let reply = eth(
        LB_MAC,
        RS1_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp_packet(RS1, Endpoint::new(LIP, lport), tcp::SYN | tcp::ACK, b"data"),
    );
    let (v, back) = run(&mut p, &reply, 2);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(back.len(), reply.len() + 20);
    let seen = look(&back);
    assert_eq!(
        (seen.mac, seen.src, seen.dst, seen.hop),
        (CLIENT_MAC, vip(), client(), 63)
    );
    assert!(seen.ok, "IPv6 checksum after translation");
    // Without headroom the reply cannot grow: counted, not corrupted.
    let mut r = reply.clone();
    assert_eq!(
        p.process(&mut r, 0, Millis(3)),
        Verdict::Drop(DropReason::NoHeadroom)
    );
}

#[test]
fn icmpv6_errors_from_the_server_reach_the_client_rewritten() {
    let t = tables_with((5000, 5009), |t| {
        *t = (*v6_tables(Forward::FullNat)).clone();
        t.services[0].proto = ipv4::PROTO_UDP;
    });
    let mut p = Pipeline::new(t, known(), 64, 42, 0, 1);
    let mut q = eth(
        LB_MAC,
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV6,
        &udp_packet(client(), vip(), b"query", false),
    );
    assert_eq!(
        p.process(&mut q, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let sent = look(&q);
    // rs1 has nothing on the port: "port unreachable" to the local address, quoting the datagram.
    let mut m = vec![1u8, 4, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&q[14..]);
    icmpv6::fill_checksum(&mut m, rs(1).ip.octets(), sent.src.ip.octets());
    let mut ip = vec![0u8; 40];
    ipv6::emit_header(
        &mut ip,
        icmpv6::NEXT_HEADER,
        rs(1).ip.octets(),
        sent.src.ip.octets(),
        m.len() as u16,
    );
    ip.extend_from_slice(&m);
    let mut e = eth(LB_MAC, RS1_MAC, ethernet::ETHERTYPE_IPV6, &ip);
    assert_eq!(
        p.process(&mut e, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(&e[0..6], &CLIENT_MAC[..]);
    let out = ipv6::Packet::new_checked(&e[14..]).unwrap();
    assert_eq!(
        (out.src(), out.dst()),
        (vip().ip.octets(), client().ip.octets())
    );
    let msg = out.payload();
    assert_eq!(icmpv6::checksum(msg, out.src(), out.dst()), 0);
    let quoted = ipv6::Packet::new_checked(&msg[8..]).unwrap();
    assert_eq!(
        (quoted.src(), quoted.dst()),
        (client().ip.octets(), vip().ip.octets()),
        "quotes what the client sent"
    );
    let u = udp::Packet::new_checked(quoted.payload()).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (client().port, vip().port));
    assert!(u.verify_checksum_v6(quoted.src(), quoted.dst()));
    assert_eq!(p.counters.icmp_relayed, 1);
}

#[test]
fn advertisements_are_sized_exactly_whatever_the_solicitation_carried() {
    let mut p = pipeline(Forward::FullNat);
    let solicited = a("ff02::1:ff00:100");
    // No source link-layer option (24 bytes) and two options (40 bytes).
    for extra in [0usize, 2] {
        let mut f = nd(
            icmpv6::NEIGHBOR_SOLICITATION,
            CLIENT_MAC,
            client().ip,
            solicited,
            vip().ip,
            icmpv6::OPT_SOURCE_LL,
        );
        let ns_len = 24 + 8 * extra;
        f.truncate(14 + 40 + 24);
        for _ in 0..extra {
            f.extend_from_slice(&[icmpv6::OPT_SOURCE_LL, 1, 2, 0, 0, 0, 0, 0x10]);
        }
        f[14 + 4..14 + 6].copy_from_slice(&(ns_len as u16).to_be_bytes());
        let (s, d) = (client().ip.octets(), solicited.octets());
        icmpv6::fill_checksum(&mut f[54..], s, d);
        let mut buf = vec![0u8; f.len() + 64];
        buf[..f.len()].copy_from_slice(&f);
        let mut pkt = PacketBuf::new(&mut buf, 0, f.len());
        assert_eq!(
            p.process_buf(&mut pkt, 0, Millis(1)),
            Verdict::Forward { port: 0 }
        );
        let out = pkt.frame();
        assert_eq!(out.len(), 14 + 40 + 32, "{extra} options");
        let ip = ipv6::Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(ip.payload_len(), 32);
        assert_eq!(icmpv6::checksum(ip.payload(), ip.src(), ip.dst()), 0);
        assert_eq!(
            icmpv6::link_layer_option(ip.payload(), icmpv6::OPT_TARGET_LL),
            Some(LB_MAC)
        );
    }
}

/// A duplicate address detection probe for `target` from `smac`.
fn dad_probe(smac: MacAddr, target: Addr) -> Vec<u8> {
    let mut f = [0u8; crate::neigh::DAD_FRAME_LEN];
    crate::neigh::emit_dad_probe(&mut f, smac, target.octets());
    f.to_vec()
}

#[test]
fn an_owned_address_is_defended_against_another_hosts_probe() {
    let mut p = pipeline(Forward::FullNat);
    let probe = dad_probe(CLIENT_MAC, a("fd77::2"));
    let mut buf = vec![0u8; probe.len() + 64];
    buf[..probe.len()].copy_from_slice(&probe);
    let mut pkt = PacketBuf::new(&mut buf, 0, probe.len());
    assert_eq!(
        p.process_buf(&mut pkt, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let f = pkt.frame();
    assert_eq!(f.len(), 14 + 40 + 32, "with the target link-layer option");
    // RFC 4861 §7.2.4: to all nodes, not solicited, override set.
    assert_eq!(
        (&f[0..6], &f[6..12]),
        (&[0x33, 0x33, 0, 0, 0, 1][..], &LB_MAC[..])
    );
    let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(
        (ip.src(), ip.dst(), ip.hop_limit()),
        (a("fd77::2").octets(), crate::neigh::ALL_NODES, 255)
    );
    let m = ip.payload();
    assert_eq!(
        (m[0], m[4]),
        (icmpv6::NEIGHBOR_ADVERTISEMENT, icmpv6::NA_OVERRIDE)
    );
    assert_eq!(icmpv6::checksum(m, ip.src(), ip.dst()), 0);
    assert_eq!(
        icmpv6::link_layer_option(m, icmpv6::OPT_TARGET_LL),
        Some(LB_MAC)
    );
    assert_eq!(p.take_neigh_events().count(), 0, "a probe teaches nothing");
    // Someone else's address is not ours to defend; our own probe, seen
    // again, is not a duplicate.
    let mut f = dad_probe(CLIENT_MAC, a("fd77::99"));
    assert_eq!(
        p.process(&mut f, 0, Millis(2)),
        Verdict::Drop(DropReason::ArpNotForUs)
    );
    let mut f = dad_probe(LB_MAC, a("fd77::2"));
    assert_eq!(
        p.process(&mut f, 0, Millis(2)),
        Verdict::Drop(DropReason::ArpNotForUs)
    );
}

#[test]
fn a_tentative_address_is_not_answered_and_a_claim_on_it_is_reported() {
    let mut t = (*v6_tables(Forward::FullNat)).clone();
    t.tentative = vec![lip()];
    let mut p = Pipeline::new(Arc::new(t), known(), 64, 42, 0, 1);
    let solicited = a("ff02::1:ff00:200");
    let mut f = nd(
        icmpv6::NEIGHBOR_SOLICITATION,
        CLIENT_MAC,
        client().ip,
        solicited,
        lip(),
        icmpv6::OPT_SOURCE_LL,
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::ArpNotForUs),
        "not answered while tentative"
    );
    let _ = p.take_neigh_events().count();
    // Another host probing for it at the same time: a duplicate.
    let mut f = dad_probe(CLIENT_MAC, lip());
    assert_eq!(p.process(&mut f, 0, Millis(2)), Verdict::Consumed);
    assert_eq!(
        p.take_neigh_events().collect::<Vec<_>>(),
        vec![NeighEvent::Duplicate {
            ip: lip(),
            mac: CLIENT_MAC,
            port: 0
        }]
    );
    // Another host advertising it (it holds it): a duplicate, and not a neighbour.
    let mut f = nd(
        icmpv6::NEIGHBOR_ADVERTISEMENT,
        RS2_MAC,
        lip(),
        a("ff02::1"),
        lip(),
        icmpv6::OPT_TARGET_LL,
    );
    assert_eq!(p.process(&mut f, 0, Millis(3)), Verdict::Consumed);
    assert_eq!(
        p.take_neigh_events().collect::<Vec<_>>(),
        vec![NeighEvent::Duplicate {
            ip: lip(),
            mac: RS2_MAC,
            port: 0
        }]
    );
    // The other owned addresses are answered as before.
    let mut f = nd(
        icmpv6::NEIGHBOR_SOLICITATION,
        CLIENT_MAC,
        client().ip,
        solicited,
        vip().ip,
        icmpv6::OPT_SOURCE_LL,
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(4)),
        Verdict::Forward { port: 0 }
    );
}

#[test]
fn an_ipv6_fullnat_session_is_synced_and_carries_on_at_the_backup() {
    use crate::sync_feed::SyncRing;
    use crate::sync_policy::SyncPolicy;
    let mut p = pipeline(Forward::FullNat);
    let ring = Arc::new(SyncRing::new(16));
    p.set_sync_feed(Some((Arc::clone(&ring), SyncPolicy::default())));
    let mut f = tcp6(CLIENT_MAC, client(), vip(), tcp::SYN);
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let out = look(&f);
    let mut r = tcp6(RS1_MAC, rs(1), out.src, tcp::SYN | tcp::ACK);
    assert_eq!(
        p.process(&mut r, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    for flags in [tcp::ACK, tcp::ACK | tcp::PSH] {
        let mut f = tcp6(CLIENT_MAC, client(), vip(), flags);
        assert_eq!(
            p.process(&mut f, 0, Millis(3)),
            Verdict::Forward { port: 0 }
        );
    }
    let rec = ring.pop().expect("the 3rd packet sent the session");
    assert_eq!(
        (rec.client, rec.vip, rec.rs, rec.laddr),
        (client(), vip(), rs(1), Some(out.src))
    );
    let mut b = pipeline(Forward::FullNat);
    assert_eq!(
        b.install_synced(&rec, Millis(10)),
        super::sync::InstallOutcome::Installed
    );
    // Both directions go on from the backup as from the master.
    let mut f = tcp6(CLIENT_MAC, client(), vip(), tcp::ACK);
    assert_eq!(
        b.process(&mut f, 0, Millis(11)),
        Verdict::Forward { port: 0 }
    );
    let o = look(&f);
    assert_eq!((o.mac, o.src, o.dst, o.ok), (RS1_MAC, out.src, rs(1), true));
    let mut r = tcp6(RS1_MAC, rs(1), out.src, tcp::ACK);
    assert_eq!(
        b.process(&mut r, 0, Millis(12)),
        Verdict::Forward { port: 0 }
    );
    let back = look(&r);
    assert_eq!((back.src, back.dst, back.ok), (vip(), client(), true));
}

#[test]
fn routing_headers_to_a_vip_are_dropped_as_source_routes() {
    let mut p = pipeline(Forward::FullNat);
    // Type 0 with a segment left and without (RFC 5095), Mobile IPv6's
    // type 2, segment routing's type 4: all `source_route`, no session.
    for (kind, left) in [(0u8, 1u8), (0, 0), (2, 1), (4, 0)] {
        let syn = tcp6(CLIENT_MAC, client(), vip(), tcp::SYN);
        let mut rh = vec![ipv4::PROTO_TCP, 2, kind, left, 0, 0, 0, 0];
        rh.extend_from_slice(&rs(1).ip.octets());
        let mut f = syn[..14 + 40].to_vec();
        f[14 + 6] = ipv6::NEXT_ROUTING;
        let plen = u16::from_be_bytes([f[14 + 4], f[14 + 5]]) + rh.len() as u16;
        f[14 + 4..14 + 6].copy_from_slice(&plen.to_be_bytes());
        f.extend_from_slice(&rh);
        f.extend_from_slice(&syn[14 + 40..]);
        assert_eq!(
            p.process(&mut f, 0, Millis(1)),
            Verdict::Drop(DropReason::SourceRoute),
            "type {kind}, {left} left"
        );
    }
    // Too short to name its type.
    let mut f = tcp6(CLIENT_MAC, client(), vip(), tcp::SYN)[..14 + 40].to_vec();
    f[14 + 6] = ipv6::NEXT_ROUTING;
    f[14 + 4..14 + 6].copy_from_slice(&2u16.to_be_bytes());
    f.extend_from_slice(&[ipv4::PROTO_TCP, 0]);
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::Malformed)
    );
    assert_eq!(p.counters.drops[DropReason::SourceRoute as usize], 4);
    assert_eq!(p.sessions().len(), 0);
}
