//! Pipeline scenarios for UDP and the NAT and DR forwarding methods, on
//! byte vectors (the FULLNAT TCP scenarios are in `tests.rs`).

use std::sync::Arc;

use super::tests::{
    eth, known_servers, tables_with, CLIENT, CLIENT_MAC, LB_MAC, LIP, RS1, RS1_MAC, RS2, RS2_MAC,
    VIP,
};
use super::*;
use crate::session::Timeouts;
use crate::tables::Forward;
use crate::xmit::rewrite::tests::{tcp_packet, udp_packet};

pub(super) const DNS_VIP: Endpoint = Endpoint::new([10, 77, 0, 100], 53);

struct L4 {
    dst_mac: MacAddr,
    src: Endpoint,
    dst: Endpoint,
    ttl: u8,
    checksums_ok: bool,
    udp_checksum: u16,
}

fn udp_frame(
    smac: MacAddr,
    src: Endpoint,
    dst: Endpoint,
    payload: &[u8],
    no_checksum: bool,
) -> Vec<u8> {
    eth(
        LB_MAC,
        smac,
        ethernet::ETHERTYPE_IPV4,
        &udp_packet(src, dst, payload, no_checksum),
    )
}

fn tcp_frame(
    smac: MacAddr,
    src: Endpoint,
    dst: Endpoint,
    flags: crate::wire::tcp::TcpFlags,
) -> Vec<u8> {
    eth(
        LB_MAC,
        smac,
        ethernet::ETHERTYPE_IPV4,
        &tcp_packet(src, dst, flags, b"data"),
    )
}

fn look(f: &[u8]) -> L4 {
    let e = ethernet::Frame::new_checked(f).unwrap();
    let ip = ipv4::Packet::new_checked(e.payload()).unwrap();
    let (src, dst, ok, c) = if ip.protocol() == ipv4::PROTO_UDP {
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        (
            u.src_port(),
            u.dst_port(),
            u.verify_checksum_v4(ip.src(), ip.dst()),
            u.checksum(),
        )
    } else {
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        (
            t.src_port(),
            t.dst_port(),
            t.verify_checksum_v4(ip.src(), ip.dst()),
            0,
        )
    };
    L4 {
        dst_mac: e.dst(),
        src: Endpoint::new(ip.src(), src),
        dst: Endpoint::new(ip.dst(), dst),
        ttl: ip.ttl(),
        checksums_ok: ok && ip.verify_checksum(),
        udp_checksum: c,
    }
}

/// A UDP service on DNS_VIP (FULLNAT) beside the TCP one.
pub(super) fn udp_tables(forward: Forward, udp_secs: u32) -> Arc<Tables> {
    tables_with((5000, 5009), |t| {
        let mut s = t.services[0].clone();
        s.vip = DNS_VIP;
        s.proto = ipv4::PROTO_UDP;
        for (i, r) in s.servers.iter_mut().enumerate() {
            r.addr.port = 5353;
            r.index = 2 + i as u16;
            r.forward = forward;
        }
        t.services.push(s);
        t.rs_count = 4;
        t.timeouts = Timeouts {
            udp_secs,
            ..t.timeouts
        };
    })
}

/// The TCP service with every server forwarding by `forward` (ports mapped
/// to 80 for DR, which keeps the destination).
fn mode_tables(forward: Forward) -> Arc<Tables> {
    tables_with((5000, 5009), |t| {
        for r in &mut t.services[0].servers {
            r.forward = forward;
            if matches!(forward, Forward::Dr | Forward::Tun) {
                r.addr.port = VIP.port;
            }
        }
        if forward != Forward::FullNat {
            t.services[0].laddrs.clear();
        }
    })
}

pub(super) fn pipelines(t: &Arc<Tables>, n: u16) -> Vec<Pipeline> {
    (0..n)
        .map(|i| Pipeline::new(Arc::clone(t), known_servers(), 64, 42, i, n))
        .collect()
}

#[test]
fn udp_fullnat_both_ways_with_the_udp_timeout() {
    let t = udp_tables(Forward::FullNat, 30);
    let mut p = pipelines(&t, 1).remove(0);
    // Any datagram creates a session (no SYN in UDP).
    let mut q = udp_frame(CLIENT_MAC, CLIENT, DNS_VIP, b"query", false);
    assert_eq!(
        p.process(&mut q, 0, Millis(1000)),
        Verdict::Forward { port: 0 }
    );
    let seen = look(&q);
    assert_eq!(
        (seen.src.ip.v4_bits(), seen.dst.port, seen.dst_mac, seen.ttl),
        (LIP, 5353, RS1_MAC, 63)
    );
    assert!(seen.checksums_ok);
    let s = p.sessions().iter().next().unwrap();
    assert_eq!(
        (s.proto, s.state, s.expires),
        (ipv4::PROTO_UDP, TcpState::Established, Millis(31_000))
    );
    let c = p.rs_conns()[2];
    assert_eq!(
        (c.active, c.inactive),
        (0, 1),
        "a UDP session is InActConn, as in IPVS"
    );
    // The answer goes back to the client from the VIP.
    let mut a = udp_frame(
        RS1_MAC,
        Endpoint::new(RS1.ip.v4_bits(), 5353),
        seen.src,
        b"answer",
        false,
    );
    assert_eq!(
        p.process(&mut a, 0, Millis(2000)),
        Verdict::Forward { port: 0 }
    );
    let back = look(&a);
    assert_eq!(
        (back.src, back.dst, back.dst_mac),
        (DNS_VIP, CLIENT, CLIENT_MAC)
    );
    assert!(back.checksums_ok);
    assert_eq!(
        p.sessions().iter().next().unwrap().expires,
        Millis(32_000),
        "every datagram re-arms the UDP timeout"
    );
    // A datagram without checksum keeps none, both ways.
    let mut q = udp_frame(CLIENT_MAC, CLIENT, DNS_VIP, b"again", true);
    assert_eq!(
        p.process(&mut q, 0, Millis(3000)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(look(&q).udp_checksum, 0);
    assert_eq!(p.sessions().len(), 1, "same flow, same session");
    // After the timeout the session goes and its port comes back.
    p.housekeeping(Millis(40_000), 1024);
    assert!(p.sessions().is_empty());
    assert_eq!(p.pools()[0].available(), p.pools()[0].size());
    // A UDP datagram to the TCP service's port is not a service.
    let mut f = udp_frame(CLIENT_MAC, CLIENT, VIP, b"x", false);
    assert_eq!(
        p.process(&mut f, 0, Millis(41_000)),
        Verdict::Drop(DropReason::NoService)
    );
}

#[test]
fn udp_replies_on_another_worker_are_redirected_by_local_port() {
    let t = udp_tables(Forward::FullNat, 300);
    let mut w = pipelines(&t, 2);
    let client = (40000..)
        .map(|p| Endpoint::new(CLIENT.ip.v4_bits(), p))
        .find(|c| {
            client_owner(
                &FlowKey {
                    src: *c,
                    dst: DNS_VIP,
                    proto: ipv4::PROTO_UDP,
                },
                2,
            ) == 1
        })
        .unwrap();
    let mut q = udp_frame(CLIENT_MAC, client, DNS_VIP, b"q", false);
    assert_eq!(
        w[0].process(&mut q, 0, Millis(1)),
        Verdict::Redirect { worker: 1 }
    );
    assert_eq!(
        w[1].process(&mut q, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let l = look(&q).src;
    let mut a = udp_frame(RS1_MAC, look(&q).dst, l, b"a", false);
    assert_eq!(
        w[0].process(&mut a, 0, Millis(2)),
        Verdict::Redirect { worker: 1 }
    );
    assert_eq!(
        w[1].process(&mut a, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(look(&a).dst, client);
}

#[test]
fn nat_rewrites_the_destination_and_the_replies_source() {
    for proto in [ipv4::PROTO_TCP, ipv4::PROTO_UDP] {
        let (t, vip) = if proto == ipv4::PROTO_UDP {
            (udp_tables(Forward::Nat, 300), DNS_VIP)
        } else {
            (mode_tables(Forward::Nat), VIP)
        };
        let mut p = pipelines(&t, 1).remove(0);
        let frame = |smac, src, dst, flags| {
            if proto == ipv4::PROTO_UDP {
                udp_frame(smac, src, dst, b"q", false)
            } else {
                tcp_frame(smac, src, dst, flags)
            }
        };
        let mut f = frame(CLIENT_MAC, CLIENT, vip, tcp::SYN);
        assert_eq!(
            p.process(&mut f, 0, Millis(1)),
            Verdict::Forward { port: 0 }
        );
        let inb = look(&f);
        assert_eq!(
            (inb.src, inb.dst.ip.v4_bits(), inb.dst_mac, inb.ttl),
            (CLIENT, RS1.ip.v4_bits(), RS1_MAC, 63),
            "proto {proto}"
        );
        assert!(inb.checksums_ok);
        assert_eq!(
            p.pools()[0].available(),
            p.pools()[0].size(),
            "NAT borrows no local port"
        );
        let s = p.sessions().iter().next().unwrap();
        assert_eq!((s.forward, s.laddr), (Forward::Nat, CLIENT));
        // The server answers the client through the appliance (its gateway).
        let mut r = frame(RS1_MAC, inb.dst, CLIENT, tcp::SYN | tcp::ACK);
        assert_eq!(
            p.process(&mut r, 0, Millis(2)),
            Verdict::Forward { port: 0 }
        );
        let out = look(&r);
        assert_eq!((out.src, out.dst, out.dst_mac), (vip, CLIENT, CLIENT_MAC));
        assert!(out.checksums_ok);
        // Traffic from a real server that is no reply is not ours.
        let mut other = frame(RS1_MAC, inb.dst, Endpoint::new([8, 8, 8, 8], 53), tcp::ACK);
        assert_eq!(
            p.process(&mut other, 0, Millis(3)),
            Verdict::Drop(DropReason::NoSession)
        );
        // The session ends without giving anything back to a pool.
        p.housekeeping(Millis(10_000_000), 1024);
        assert!(p.sessions().is_empty());
        assert_eq!(p.pools()[0].available(), p.pools()[0].size());
    }
}

#[test]
fn nat_tcp_connection_goes_through_the_ipvs_states() {
    let mut p = pipelines(&mode_tables(Forward::Nat), 1).remove(0);
    let state = |p: &Pipeline| p.sessions().iter().next().unwrap().state;
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN);
    p.process(&mut f, 0, Millis(1));
    let rs = look(&f).dst;
    assert_eq!(state(&p), TcpState::SynRecv);
    for (from_client, flags, want) in [
        (false, tcp::SYN | tcp::ACK, TcpState::SynRecv),
        (true, tcp::ACK, TcpState::Established),
        (false, tcp::FIN | tcp::ACK, TcpState::FinWait),
        (true, tcp::FIN | tcp::ACK, TcpState::TimeWait),
    ] {
        let mut f = if from_client {
            tcp_frame(CLIENT_MAC, CLIENT, VIP, flags)
        } else {
            tcp_frame(RS1_MAC, rs, CLIENT, flags)
        };
        assert_eq!(
            p.process(&mut f, 0, Millis(2)),
            Verdict::Forward { port: 0 }
        );
        assert_eq!(state(&p), want);
    }
    assert_eq!(
        p.rs_conns()[usize::from(p.sessions().iter().next().unwrap().rs_index)].inactive,
        1
    );
}

#[test]
fn nat_replies_find_their_owner_among_workers() {
    for n in [2u16, 3, 4] {
        let t = mode_tables(Forward::Nat);
        let mut w = pipelines(&t, n);
        for cport in 40000..40040u16 {
            let client = Endpoint::new(CLIENT.ip.v4_bits(), cport);
            let owner = client_owner(
                &FlowKey {
                    src: client,
                    dst: VIP,
                    proto: ipv4::PROTO_TCP,
                },
                n,
            );
            let mut f = tcp_frame(CLIENT_MAC, client, VIP, tcp::SYN);
            assert_eq!(
                w[owner].process(&mut f, 0, Millis(1)),
                Verdict::Forward { port: 0 }
            );
            let rs = look(&f).dst;
            // The reply reaches every other worker first: each hands it to the owner, untouched.
            for other in (0..usize::from(n)).filter(|&i| i != owner) {
                let mut r = tcp_frame(RS1_MAC, rs, client, tcp::SYN | tcp::ACK);
                let before = r.clone();
                assert_eq!(
                    w[other].process(&mut r, 0, Millis(2)),
                    Verdict::Redirect {
                        worker: owner as u16
                    },
                    "{n} workers"
                );
                assert_eq!(r, before);
            }
            let mut r = tcp_frame(RS1_MAC, rs, client, tcp::SYN | tcp::ACK);
            assert_eq!(
                w[owner].process(&mut r, 0, Millis(2)),
                Verdict::Forward { port: 0 }
            );
            assert_eq!(look(&r).src, VIP);
        }
    }
}

#[test]
fn nat_replies_of_a_persistent_service_go_to_the_template_owner() {
    let t = tables_with((5000, 5009), |t| {
        for r in &mut t.services[0].servers {
            r.forward = Forward::Nat;
        }
        t.services[0].persistence = Some(crate::tables::Persistence::new(60));
    });
    let mut w = pipelines(&t, 3);
    let client = Endpoint::new(CLIENT.ip.v4_bits(), 40001);
    let owner = persistent_owner(client.ip, VIP, ipv4::PROTO_TCP, 3);
    let mut f = tcp_frame(CLIENT_MAC, client, VIP, tcp::SYN);
    assert_eq!(
        w[owner].process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let rs = look(&f).dst;
    let other = (owner + 1) % 3;
    let mut r = tcp_frame(RS1_MAC, rs, client, tcp::SYN | tcp::ACK);
    assert_eq!(
        w[other].process(&mut r, 0, Millis(2)),
        Verdict::Redirect {
            worker: owner as u16
        }
    );
}

#[test]
fn dr_changes_only_the_destination_mac_and_tracks_input_only() {
    let mut p = pipelines(&mode_tables(Forward::Dr), 1).remove(0);
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN);
    let before = f.clone();
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let e = ethernet::Frame::new_checked(&f[..]).unwrap();
    assert_eq!((e.dst(), e.src()), (RS1_MAC, LB_MAC));
    assert_eq!(
        &f[12..],
        &before[12..],
        "the IP packet is untouched (TTL included)"
    );
    let s = p.sessions().iter().next().unwrap();
    assert_eq!((s.forward, s.state), (Forward::Dr, TcpState::SynRecv));
    // Only the client's half is seen: its ACK establishes, its FIN ends.
    let state = |p: &Pipeline| p.sessions().iter().next().unwrap().state;
    for (flags, want) in [
        (tcp::ACK, TcpState::Established),
        (tcp::ACK | tcp::PSH, TcpState::Established),
        (tcp::FIN | tcp::ACK, TcpState::FinWait),
    ] {
        let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, flags);
        assert_eq!(
            p.process(&mut f, 0, Millis(2)),
            Verdict::Forward { port: 0 }
        );
        assert_eq!(
            ethernet::Frame::new_checked(&f[..]).unwrap().dst(),
            RS1_MAC,
            "same server"
        );
        assert_eq!(state(&p), want);
    }
    // Round robin still alternates for new connections.
    let mut f = tcp_frame(
        CLIENT_MAC,
        Endpoint::new(CLIENT.ip.v4_bits(), 40001),
        VIP,
        tcp::SYN,
    );
    p.process(&mut f, 0, Millis(3));
    assert_eq!(ethernet::Frame::new_checked(&f[..]).unwrap().dst(), RS2_MAC);
    assert_eq!(look(&f).dst, VIP);
}

#[test]
fn dr_udp_and_mixed_methods_in_one_service() {
    let mut p = pipelines(&udp_tables(Forward::Dr, 300), 1).remove(0);
    let mut f = udp_frame(CLIENT_MAC, CLIENT, DNS_VIP, b"q", false);
    let before = f.clone();
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(&f[12..], &before[12..]);
    // One service, one server per method: each connection follows its server's.
    let t = tables_with((5000, 5009), |t| {
        t.services[0].servers[0].forward = Forward::FullNat;
        t.services[0].servers[1].forward = Forward::Nat;
    });
    let mut p = pipelines(&t, 1).remove(0);
    let mut a = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN);
    p.process(&mut a, 0, Millis(1));
    let mut b = tcp_frame(
        CLIENT_MAC,
        Endpoint::new(CLIENT.ip.v4_bits(), 40001),
        VIP,
        tcp::SYN,
    );
    p.process(&mut b, 0, Millis(1));
    assert_eq!(
        (look(&a).src.ip.v4_bits(), look(&a).dst.ip.v4_bits()),
        (LIP, RS1.ip.v4_bits())
    );
    assert_eq!(
        (look(&b).src, look(&b).dst.ip.v4_bits()),
        (Endpoint::new(CLIENT.ip.v4_bits(), 40001), RS2.ip.v4_bits())
    );
}

#[test]
fn tun_encapsulates_toward_the_server_and_returns_frag_needed_when_too_big() {
    use crate::packet::PacketBuf;
    let mut p = pipelines(&mode_tables(Forward::Tun), 1).remove(0);
    let frame = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN);
    let mut buf = vec![0u8; 128 + frame.len()];
    buf[128..].copy_from_slice(&frame);
    let mut pkt = PacketBuf::new(&mut buf, 128, frame.len());
    assert_eq!(
        p.process_buf(&mut pkt, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let out = pkt.frame().to_vec();
    assert_eq!(out.len(), frame.len() + 20);
    let e = ethernet::Frame::new_checked(&out[..]).unwrap();
    assert_eq!((e.dst(), e.src()), (RS1_MAC, LB_MAC));
    let outer = ipv4::Packet::new_checked(e.payload()).unwrap();
    assert_eq!(
        (outer.src(), outer.dst(), outer.protocol()),
        (super::tests::LB, RS1.ip.v4_bits(), tunnel::PROTO_IPIP)
    );
    assert!(outer.verify_checksum());
    assert_eq!(
        outer.payload(),
        &frame[14..],
        "the client's packet inside, untouched"
    );
    let s = p.sessions().iter().next().unwrap();
    assert_eq!((s.forward, s.state), (Forward::Tun, TcpState::SynRecv));
    // Without headroom (plain `process`) the frame cannot grow: counted.
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK);
    assert_eq!(
        p.process(&mut f, 0, Millis(2)),
        Verdict::Drop(DropReason::NoHeadroom)
    );
    // A full-size segment with DF does not fit once wrapped: the client gets
    // "fragmentation needed" with the tunnel's MTU, from the VIP.
    let big = eth(
        LB_MAC,
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp_packet(CLIENT, VIP, tcp::ACK, &[7u8; 1460]),
    );
    let mut buf = vec![0u8; 128 + big.len()];
    buf[128..].copy_from_slice(&big);
    let mut pkt = PacketBuf::new(&mut buf, 128, big.len());
    assert_eq!(
        p.process_buf(&mut pkt, 0, Millis(3)),
        Verdict::Forward { port: 0 }
    );
    let icmp_frame = pkt.frame();
    let e = ethernet::Frame::new_checked(icmp_frame).unwrap();
    assert_eq!((e.dst(), e.src()), (CLIENT_MAC, LB_MAC));
    let ip = ipv4::Packet::new_checked(e.payload()).unwrap();
    assert_eq!(
        (ip.src(), ip.dst(), ip.protocol()),
        (VIP.ip.v4_bits(), CLIENT.ip.v4_bits(), ipv4::PROTO_ICMP)
    );
    let m = ip.payload();
    assert_eq!((m[0], m[1], u16::from_be_bytes([m[6], m[7]])), (3, 4, 1480));
    assert_eq!(p.counters.drops[DropReason::TooBig as usize], 1);
}

/// An ICMP error (`msg_type`/`code`) from `from` about the IP packet inside
/// `about` (a frame), quoting its header and `quote_extra` bytes after it.
fn icmp_error(smac: MacAddr, from: [u8; 4], about: &[u8], quote_extra: usize) -> Vec<u8> {
    let inner = ipv4::Packet::new_checked(&about[14..]).unwrap();
    let quote = &about[14..14 + inner.header_len() + quote_extra];
    let mut m = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quote);
    let c = crate::checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0u8; 20];
    ipv4::emit_header(&mut ip, ipv4::PROTO_ICMP, from, inner.src(), m.len() as u16);
    ip.extend_from_slice(&m);
    eth(LB_MAC, smac, ethernet::ETHERTYPE_IPV4, &ip)
}

/// The outer addresses, the quoted packet's endpoints and whether every
/// checksum (outer, ICMP, quoted header, quoted UDP when whole) verifies.
fn look_icmp(f: &[u8]) -> ([u8; 4], [u8; 4], Endpoint, Endpoint, bool) {
    let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
    let m = ip.payload();
    // The quote may stop short of the length its header claims: raw bytes.
    let ihl = usize::from(m[8] & 0x0f) * 4;
    let (isrc, idst) = ([m[20], m[21], m[22], m[23]], [m[24], m[25], m[26], m[27]]);
    let l4 = &m[8 + ihl..];
    let port = |o: usize| u16::from_be_bytes([l4[o], l4[o + 1]]);
    let mut ok = ip.verify_checksum()
        && crate::checksum::checksum(m) == 0
        && crate::checksum::checksum(&m[8..8 + ihl]) == 0;
    if m[8 + 9] == ipv4::PROTO_UDP && l4.len() >= usize::from(port(4)) {
        ok &= udp::Packet::new_checked(&l4[..usize::from(port(4))])
            .unwrap()
            .verify_checksum_v4(isrc, idst);
    }
    (
        ip.src(),
        ip.dst(),
        Endpoint::new(isrc, port(0)),
        Endpoint::new(idst, port(2)),
        ok,
    )
}

#[test]
fn icmp_errors_from_the_server_reach_the_client_rewritten() {
    for forward in [Forward::FullNat, Forward::Nat] {
        let mut p = pipelines(&udp_tables(forward, 30), 1).remove(0);
        let mut q = udp_frame(CLIENT_MAC, CLIENT, DNS_VIP, b"query", false);
        assert_eq!(
            p.process(&mut q, 0, Millis(1)),
            Verdict::Forward { port: 0 }
        );
        let sent = look(&q);
        // The server has nothing on 5353: port unreachable, quoting all of it.
        let mut e = icmp_error(RS1_MAC, RS1.ip.v4_bits(), &q, 8 + 5);
        assert_eq!(
            p.process(&mut e, 0, Millis(2)),
            Verdict::Forward { port: 0 },
            "{forward:?}"
        );
        assert_eq!(
            ethernet::Frame::new_checked(&e[..]).unwrap().dst(),
            CLIENT_MAC
        );
        let (osrc, odst, isrc, idst, ok) = look_icmp(&e);
        assert_eq!(
            (osrc, odst, isrc, idst),
            (DNS_VIP.ip.v4_bits(), CLIENT.ip.v4_bits(), CLIENT, DNS_VIP),
            "{forward:?}: quotes what the client sent"
        );
        assert!(ok, "{forward:?}: checksums");
        assert_eq!(sent.dst.port, 5353);
        // The other way: the client's error about a reply reaches the server.
        let mut a = udp_frame(
            RS1_MAC,
            Endpoint::new(RS1.ip.v4_bits(), 5353),
            sent.src,
            b"answer",
            false,
        );
        assert_eq!(
            p.process(&mut a, 0, Millis(3)),
            Verdict::Forward { port: 0 }
        );
        let mut e = icmp_error(CLIENT_MAC, CLIENT.ip.v4_bits(), &a, 8);
        assert_eq!(
            p.process(&mut e, 0, Millis(4)),
            Verdict::Forward { port: 0 }
        );
        let (osrc, odst, isrc, idst, ok) = look_icmp(&e);
        assert_eq!(
            (osrc, odst, isrc, idst),
            (
                sent.src.ip.v4_bits(),
                RS1.ip.v4_bits(),
                Endpoint::new(RS1.ip.v4_bits(), 5353),
                sent.src
            ),
            "{forward:?}"
        );
        assert!(ok);
        assert_eq!(p.counters.icmp_relayed, 2);
    }
    // An error quoting nothing we know is not relayed.
    let mut p = pipelines(&udp_tables(Forward::FullNat, 30), 1).remove(0);
    let stray = udp_frame(
        CLIENT_MAC,
        Endpoint::new(LIP, 5001),
        Endpoint::new(RS1.ip.v4_bits(), 5353),
        b"x",
        false,
    );
    let mut e = icmp_error(RS1_MAC, RS1.ip.v4_bits(), &stray, 8);
    assert!(matches!(p.process(&mut e, 0, Millis(5)), Verdict::Drop(_)));
    assert_eq!(p.counters.icmp_relayed, 0);
}

#[test]
fn one_packet_scheduling_schedules_every_datagram_and_the_reply_ends_it() {
    let ops_tables = |forward: Forward| {
        let t = udp_tables(forward, 30);
        let mut t = (*t).clone();
        t.services[1].ops = true;
        Arc::new(t)
    };
    let mut p = pipelines(&ops_tables(Forward::FullNat), 1).remove(0);
    let mut sent = Vec::new();
    for i in 0..4 {
        let mut q = udp_frame(CLIENT_MAC, CLIENT, DNS_VIP, b"query", false);
        assert_eq!(
            p.process(&mut q, 0, Millis(1 + i)),
            Verdict::Forward { port: 0 }
        );
        sent.push(look(&q));
    }
    let servers: Vec<_> = sent.iter().map(|s| s.dst_mac).collect();
    assert_eq!(
        servers,
        [RS1_MAC, RS2_MAC, RS1_MAC, RS2_MAC],
        "one client port, every datagram scheduled anew"
    );
    assert_eq!(p.sessions().len(), 4);
    let free = p.pools()[0].available();
    // Each reply still comes back to the client, and ends its session.
    for s in &sent {
        let mut a = udp_frame(s.dst_mac, s.dst, s.src, b"answer", false);
        assert_eq!(
            p.process(&mut a, 0, Millis(10)),
            Verdict::Forward { port: 0 }
        );
        assert_eq!((look(&a).src, look(&a).dst), (DNS_VIP, CLIENT));
    }
    assert!(p.sessions().is_empty());
    assert_eq!(
        p.pools()[0].available(),
        free + 4,
        "local ports back in the pool"
    );
    // A second reply to an ended one-packet session has nowhere to go.
    let mut a = udp_frame(RS1_MAC, sent[0].dst, sent[0].src, b"late", false);
    assert_eq!(
        p.process(&mut a, 0, Millis(11)),
        Verdict::Drop(DropReason::NoSession)
    );
    // DR: nothing is kept at all; the datagrams still alternate.
    let mut p = pipelines(&ops_tables(Forward::Dr), 1).remove(0);
    let macs: Vec<_> = (0..2)
        .map(|_| {
            let mut q = udp_frame(CLIENT_MAC, CLIENT, DNS_VIP, b"q", false);
            assert_eq!(
                p.process(&mut q, 0, Millis(1)),
                Verdict::Forward { port: 0 }
            );
            look(&q).dst_mac
        })
        .collect();
    assert_eq!(macs, [RS1_MAC, RS2_MAC]);
    assert!(p.sessions().is_empty());
    assert_eq!(p.rs_conns()[2].created + p.rs_conns()[3].created, 2);
}
