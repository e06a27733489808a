//! Telling servers the client's address, through the pipeline on byte
//! vectors: TOA on the handshake's ACK and the first data, PROXY v1 and v2
//! in front of the first payload byte with every later number shifted both
//! ways (SACK included), a retransmitted first segment, FULLNAT64, and the
//! refusals when there is no room. Every FULLNAT connection also has its
//! ISN offset ([`crate::xmit::isn`]): the server's numbers for the
//! client's stream are the client's plus `off` (plus the header's length
//! after it), which these tests check composed with the insertion.

use super::tests::{
    eth, known_servers, tables_with, CLIENT, CLIENT_MAC, LB_MAC, LIP, RS1, RS1_MAC, VIP,
};
use super::*;
use crate::session::ClientAddress;
use crate::wire::ipv6;
use crate::xmit::client_addr::{PROXY_V2_SIG, TOA_KIND};

const ISN_C: u32 = 1000;
const ISN_S: u32 = 5000;

/// A TCP segment in an Ethernet frame, IPv4 or IPv6 by the endpoints'
/// family, checksums filled.
pub(super) fn seg(
    smac: MacAddr,
    src: Endpoint,
    dst: Endpoint,
    (seq, ack): (u32, u32),
    flags: crate::wire::tcp::TcpFlags,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let olen = opts.len().div_ceil(4) * 4;
    let mut t = vec![0u8; 20 + olen];
    t[0..2].copy_from_slice(&src.port.to_be_bytes());
    t[2..4].copy_from_slice(&dst.port.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = (((20 + olen) / 4) as u8) << 4;
    t[13] = flags.bits();
    t[14..16].copy_from_slice(&29200u16.to_be_bytes());
    t[20..20 + opts.len()].copy_from_slice(opts);
    t.extend_from_slice(payload);
    let mut ip;
    if let (Some(s), Some(d)) = (src.ip.to_v4(), dst.ip.to_v4()) {
        tcp::Packet::new_checked(&mut t[..])
            .unwrap()
            .fill_checksum_v4(s, d);
        ip = vec![0u8; 20];
        ipv4::emit_header(&mut ip, ipv4::PROTO_TCP, s, d, t.len() as u16);
        ip.extend_from_slice(&t);
        eth(LB_MAC, smac, ethernet::ETHERTYPE_IPV4, &ip)
    } else {
        let (s, d) = (src.ip.octets(), dst.ip.octets());
        tcp::Packet::new_checked(&mut t[..])
            .unwrap()
            .fill_checksum_v6(s, d);
        ip = vec![0u8; 40];
        ipv6::emit_header(&mut ip, ipv4::PROTO_TCP, s, d, t.len() as u16);
        ip.extend_from_slice(&t);
        eth(LB_MAC, smac, ethernet::ETHERTYPE_IPV6, &ip)
    }
}

/// What a test reads back from a frame (IPv4 or IPv6).
#[derive(Debug)]
pub(super) struct Out {
    pub(super) src: Endpoint,
    pub(super) dst: Endpoint,
    pub(super) seq: u32,
    pub(super) ack: u32,
    pub(super) flags: crate::wire::tcp::TcpFlags,
    pub(super) window: u16,
    pub(super) options: Vec<u8>,
    pub(super) payload: Vec<u8>,
    pub(super) checksums_ok: bool,
}

pub(super) fn read(f: &[u8]) -> Out {
    let (src, dst, l4, ok_ip) = if u16::from_be_bytes([f[12], f[13]]) == ethernet::ETHERTYPE_IPV4 {
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.total_len() + 14, f.len(), "IP length = frame length");
        (
            Addr::v4(ip.src()),
            Addr::v4(ip.dst()),
            ip.payload().to_vec(),
            ip.verify_checksum(),
        )
    } else {
        let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.payload_len() + 54, f.len(), "IP length = frame length");
        (
            Addr::v6(ip.src()),
            Addr::v6(ip.dst()),
            ip.payload().to_vec(),
            true,
        )
    };
    let t = tcp::Packet::new_checked(&l4[..]).unwrap();
    let ok_tcp = match (src.to_v4(), dst.to_v4()) {
        (Some(s), Some(d)) => t.verify_checksum_v4(s, d),
        _ => t.verify_checksum_v6(src.octets(), dst.octets()),
    };
    let hlen = usize::from(l4[12] >> 4) * 4;
    let u32_at = |at: usize| u32::from_be_bytes([l4[at], l4[at + 1], l4[at + 2], l4[at + 3]]);
    Out {
        src: Endpoint::at(src, t.src_port()),
        dst: Endpoint::at(dst, t.dst_port()),
        seq: u32_at(4),
        ack: u32_at(8),
        flags: t.flags(),
        window: u16::from_be_bytes([l4[14], l4[15]]),
        options: l4[20..hlen].to_vec(),
        payload: l4[hlen..].to_vec(),
        checksums_ok: ok_ip && ok_tcp,
    }
}

/// A pipeline over the lab's TCP service with `mode`, one server (RS1).
fn pipeline(mode: ClientAddress) -> Pipeline {
    let t = tables_with((5000, 5009), |t| {
        t.services[0].client_address = mode;
        t.services[0].servers.truncate(1);
    });
    Pipeline::new(t, known_servers(), 64, 42, 0, 1)
}

/// Processes `frame` in a buffer with 64 bytes of headroom and `tail`
/// bytes after it.
pub(super) fn run(p: &mut Pipeline, frame: &[u8], tail: usize, now: u64) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0xa5u8; 64 + frame.len() + tail];
    buf[64..64 + frame.len()].copy_from_slice(frame);
    let mut pkt = PacketBuf::new(&mut buf, 64, frame.len());
    let v = p.process_buf(&mut pkt, 0, Millis(now));
    (v, pkt.frame().to_vec())
}

const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];

fn mss_of(options: &[u8]) -> u16 {
    let i = options.iter().position(|&b| b == 2).unwrap();
    u16::from_be_bytes([options[i + 2], options[i + 3]])
}

/// Client SYN and server SYN-ACK (MSS 1460) through `p`: the local port,
/// the MSS the client was told, and the session's ISN offset (the server's
/// numbering of the client's stream minus the client's).
fn handshake(p: &mut Pipeline, client: Endpoint, vip: Endpoint) -> (Endpoint, u16, u32) {
    let syn = seg(
        CLIENT_MAC,
        client,
        vip,
        (ISN_C, 0),
        tcp::SYN,
        &MSS_1460,
        b"",
    );
    let (v, out) = run(p, &syn, 256, 1);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let o = read(&out);
    assert!(o.checksums_ok);
    let off = o.seq.wrapping_sub(ISN_C);
    assert_ne!(off, 0, "the server sees its own ISN");
    assert_eq!(o.options.as_slice(), &MSS_1460[..], "no option changes");
    let local = o.src;
    let synack = seg(
        RS1_MAC,
        RS1,
        local,
        (ISN_S, ISN_C + 1 + off),
        tcp::SYN | tcp::ACK,
        &MSS_1460,
        b"",
    );
    let (v, out) = run(p, &synack, 256, 2);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let o = read(&out);
    assert!(o.checksums_ok);
    assert_eq!((o.seq, o.ack), (ISN_S, ISN_C + 1));
    (local, mss_of(&o.options), off)
}

fn v2_header_v4(client: Endpoint, vip: Endpoint) -> Vec<u8> {
    let mut h = PROXY_V2_SIG.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client.ip.v4_bits());
    h.extend_from_slice(&vip.ip.v4_bits());
    h.extend_from_slice(&client.port.to_be_bytes());
    h.extend_from_slice(&vip.port.to_be_bytes());
    h
}

#[test]
fn proxy_v2_goes_in_front_of_the_first_byte_and_shifts_both_ways() {
    let mut p = pipeline(ClientAddress::ProxyV2);
    let header = v2_header_v4(CLIENT, VIP);
    let n = header.len() as u32;
    assert_eq!(n, 28);
    let (local, mss, off) = handshake(&mut p, CLIENT, VIP);
    assert_eq!(
        mss,
        1460 - 28,
        "the client's segments leave room for the header"
    );
    let to_rs =
        |p: &mut Pipeline, seq: u32, ack: u32, flags: crate::wire::tcp::TcpFlags, data: &[u8]| {
            let f = seg(CLIENT_MAC, CLIENT, VIP, (seq, ack), flags, &[], data);
            let (v, out) = run(p, &f, 256, 3);
            assert_eq!(v, Verdict::Forward { port: 0 });
            let o = read(&out);
            assert!(o.checksums_ok, "{o:?}");
            assert_eq!((o.src, o.dst), (local, RS1));
            o
        };
    // The handshake's ACK: no byte of the stream yet, nothing moves.
    let o = to_rs(&mut p, ISN_C + 1, ISN_S + 1, tcp::ACK, b"");
    assert_eq!(
        (o.seq, o.ack, o.payload.len()),
        (ISN_C + 1 + off, ISN_S + 1, 0)
    );
    // The first data: the header in front of it, at the stream's start.
    let o = to_rs(&mut p, ISN_C + 1, ISN_S + 1, tcp::ACK | tcp::PSH, b"GET /");
    assert_eq!(o.seq, ISN_C + 1 + off);
    assert_eq!(o.payload, [&header[..], b"GET /"].concat());
    assert_eq!((o.window, o.flags), (29200, tcp::ACK | tcp::PSH));
    assert_eq!(p.counters.client_addr_inserted, 1);
    // The server acknowledges header and data and SACKs a later block;
    // the client sees its own numbers.
    let sack = |blocks: &[(u32, u32)]| {
        let mut o = vec![1, 1, 5, 2 + 8 * blocks.len() as u8];
        for (l, r) in blocks {
            o.extend_from_slice(&l.to_be_bytes());
            o.extend_from_slice(&r.to_be_bytes());
        }
        o
    };
    let ack_at = (ISN_C + 1 + n + 5).wrapping_add(off);
    let reply = seg(
        RS1_MAC,
        RS1,
        local,
        (ISN_S + 1, ack_at),
        tcp::ACK,
        &sack(&[(ack_at + 10, ack_at + 20)]),
        b"HTTP/1.1 200",
    );
    let (v, out) = run(&mut p, &reply, 0, 4);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let o = read(&out);
    assert!(o.checksums_ok);
    assert_eq!((o.src, o.dst), (VIP, CLIENT));
    assert_eq!((o.seq, o.ack), (ISN_S + 1, ISN_C + 1 + 5));
    assert_eq!(o.options, sack(&[(ISN_C + 16, ISN_C + 26)]));
    assert_eq!(
        (o.payload.as_slice(), o.window),
        (&b"HTTP/1.1 200"[..], 29200)
    );
    // An acknowledgement of part of the header acknowledges nothing.
    let partial = seg(
        RS1_MAC,
        RS1,
        local,
        (ISN_S + 13, (ISN_C + 10).wrapping_add(off)),
        tcp::ACK,
        &[],
        b"",
    );
    assert_eq!(read(&run(&mut p, &partial, 0, 4).1).ack, ISN_C + 1);
    // The client's next bytes reach the server `n` further on.
    let o = to_rs(&mut p, ISN_C + 6, ISN_S + 13, tcp::ACK, b"more");
    assert_eq!(
        (o.seq, o.ack, o.payload.as_slice()),
        ((ISN_C + 6 + n).wrapping_add(off), ISN_S + 13, &b"more"[..])
    );
    // A retransmission of the first segment carries the header again, once.
    let o = to_rs(&mut p, ISN_C + 1, ISN_S + 13, tcp::ACK, b"GET /");
    assert_eq!(o.payload, [&header[..], b"GET /"].concat());
    assert_eq!(o.seq, ISN_C + 1 + off);
    assert_eq!(p.counters.client_addr_inserted, 2);
    // FIN and RST keep their flags and move like any other number.
    let o = to_rs(&mut p, ISN_C + 10, ISN_S + 13, tcp::FIN | tcp::ACK, b"");
    assert_eq!(
        (o.seq, o.flags),
        ((ISN_C + 10 + n).wrapping_add(off), tcp::FIN | tcp::ACK)
    );
    let o = to_rs(&mut p, ISN_C + 11, 0, tcp::RST, b"");
    assert_eq!(
        (o.seq, o.ack, o.flags),
        ((ISN_C + 11 + n).wrapping_add(off), 0, tcp::RST)
    );
}

#[test]
fn proxy_v1_writes_the_text_line() {
    let mut p = pipeline(ClientAddress::ProxyV1);
    let line = b"PROXY TCP4 10.77.0.10 10.77.0.100 40000 80\r\n";
    let (local, mss, off) = handshake(&mut p, CLIENT, VIP);
    assert_eq!(mss, 1460 - line.len() as u16);
    let f = seg(
        CLIENT_MAC,
        CLIENT,
        VIP,
        (ISN_C + 1, ISN_S + 1),
        tcp::ACK,
        &[],
        b"hello",
    );
    let (_, out) = run(&mut p, &f, 256, 3);
    let o = read(&out);
    assert!(o.checksums_ok);
    assert_eq!(o.dst, RS1);
    assert_eq!(o.src, local);
    assert_eq!(o.payload, [&line[..], b"hello"].concat());
    let back = seg(
        RS1_MAC,
        RS1,
        local,
        (
            ISN_S + 1,
            (ISN_C + 1 + line.len() as u32 + 5).wrapping_add(off),
        ),
        tcp::ACK,
        &[],
        b"",
    );
    assert_eq!(read(&run(&mut p, &back, 0, 4).1).ack, ISN_C + 6);
}

#[test]
fn proxy_without_room_drops_and_counts() {
    let mut p = pipeline(ClientAddress::ProxyV2);
    handshake(&mut p, CLIENT, VIP);
    let f = seg(
        CLIENT_MAC,
        CLIENT,
        VIP,
        (ISN_C + 1, ISN_S + 1),
        tcp::ACK,
        &[],
        b"hello",
    );
    let (v, _) = run(&mut p, &f, 0, 3);
    assert_eq!(v, Verdict::Drop(DropReason::NoRoom));
    assert_eq!(p.counters.drops[DropReason::NoRoom as usize], 1);
    // The client's retransmission, with room this time, gets through.
    let (v, out) = run(&mut p, &f, 256, 4);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(read(&out).payload.len(), 28 + 5);
}

#[test]
fn toa_rides_the_handshake_ack_and_the_first_data() {
    let mut p = pipeline(ClientAddress::Toa);
    let (local, mss, off) = handshake(&mut p, CLIENT, VIP);
    assert_eq!(mss, 1460 - 8);
    let mut toa = vec![TOA_KIND, 8];
    toa.extend_from_slice(&CLIENT.port.to_be_bytes());
    toa.extend_from_slice(&CLIENT.ip.v4_bits());
    // The handshake's ACK, padded to Ethernet's 60 bytes as it arrives.
    let mut ack = seg(
        CLIENT_MAC,
        CLIENT,
        VIP,
        (ISN_C + 1, ISN_S + 1),
        tcp::ACK,
        &[],
        b"",
    );
    assert_eq!(ack.len(), 54);
    ack.resize(60, 0);
    let (v, out) = run(&mut p, &ack, 256, 3);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let o = read(&out);
    assert!(o.checksums_ok);
    assert_eq!(
        (o.src, o.dst, o.seq, o.ack),
        (local, RS1, ISN_C + 1 + off, ISN_S + 1)
    );
    assert_eq!(o.options, toa);
    // The first data too (the ACK may be lost), with its own options kept.
    let nop_ts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let f = seg(
        CLIENT_MAC,
        CLIENT,
        VIP,
        (ISN_C + 1, ISN_S + 1),
        tcp::ACK,
        &nop_ts,
        b"GET /",
    );
    let o = read(&run(&mut p, &f, 256, 3).1);
    assert!(o.checksums_ok);
    assert_eq!(o.options, [&nop_ts[..], &toa[..]].concat());
    assert_eq!(
        (o.seq, o.payload.as_slice()),
        (ISN_C + 1 + off, &b"GET /"[..])
    );
    // Once the server has sent data, no more options, no shift.
    let f = seg(
        CLIENT_MAC,
        CLIENT,
        VIP,
        (ISN_C + 6, ISN_S + 100),
        tcp::ACK,
        &[],
        b"x",
    );
    let o = read(&run(&mut p, &f, 256, 3).1);
    assert_eq!((o.options.len(), o.seq), (0, ISN_C + 6 + off));
    // A header with no room for 8 more bytes goes without, counted.
    let full = [1u8; 40];
    let f = seg(
        CLIENT_MAC,
        CLIENT,
        VIP,
        (ISN_C + 1, ISN_S + 1),
        tcp::ACK,
        &full,
        b"",
    );
    let (v, out) = run(&mut p, &f, 256, 3);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(read(&out).options, full);
    assert_eq!(
        (p.counters.client_addr_inserted, p.counters.toa_no_room),
        (2, 1)
    );
}

#[test]
fn fullnat64_proxy_v2_carries_the_ipv6_client() {
    let a = |s: &str| Addr::from(s.parse::<std::net::IpAddr>().unwrap());
    let (client, vip) = (
        Endpoint::at(a("fd77::10"), 40000),
        Endpoint::at(a("fd77::100"), 80),
    );
    let t = tables_with((5000, 5009), |t| {
        t.services[0].vip = vip;
        t.services[0].client_address = ClientAddress::ProxyV2;
        t.services[0].servers.truncate(1);
        let route = |p: &str, len, hop| crate::route::Route {
            prefix: a(p).octets(),
            len,
            hop,
        };
        t.routes = crate::route::Routes {
            v6: crate::route::RouteTable::new([
                route("fd77::", 64, crate::route::NextHop::OnLink { port: 0 }),
                route("fd77::2", 128, crate::route::NextHop::Local { port: 0 }),
            ])
            .unwrap(),
            ..crate::route::Routes::default()
        };
    });
    let mut p = Pipeline::new(t, known_servers(), 64, 42, 0, 1);
    let syn = seg(
        CLIENT_MAC,
        client,
        vip,
        (ISN_C, 0),
        tcp::SYN,
        &MSS_1460,
        b"",
    );
    let o = read(&run(&mut p, &syn, 256, 1).1);
    assert!(o.checksums_ok);
    assert_eq!((o.src.ip, o.dst), (Addr::v4(LIP), RS1));
    let off = o.seq.wrapping_sub(ISN_C);
    assert_ne!(off, 0, "FULLNAT64 renumbers the client's stream too");
    let local = o.src;
    let synack = seg(
        RS1_MAC,
        RS1,
        local,
        (ISN_S, ISN_C + 1 + off),
        tcp::SYN | tcp::ACK,
        &MSS_1460,
        b"",
    );
    let o = read(&run(&mut p, &synack, 256, 2).1);
    assert_eq!((o.src, o.dst), (vip, client));
    assert_eq!(mss_of(&o.options), 1460 - 52);
    let f = seg(
        CLIENT_MAC,
        client,
        vip,
        (ISN_C + 1, ISN_S + 1),
        tcp::ACK,
        &[],
        b"GET /",
    );
    let (v, out) = run(&mut p, &f, 256, 3);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let o = read(&out);
    assert!(o.checksums_ok, "IPv4 after insertion and translation");
    assert_eq!((o.src, o.dst, o.seq), (local, RS1, ISN_C + 1 + off));
    let mut header = PROXY_V2_SIG.to_vec();
    header.extend_from_slice(&[0x21, 0x21, 0, 36]);
    header.extend_from_slice(&client.ip.octets());
    header.extend_from_slice(&vip.ip.octets());
    header.extend_from_slice(&client.port.to_be_bytes());
    header.extend_from_slice(&vip.port.to_be_bytes());
    assert_eq!(o.payload, [&header[..], b"GET /"].concat());
    let back = seg(
        RS1_MAC,
        RS1,
        local,
        (ISN_S + 1, (ISN_C + 1 + 52 + 5).wrapping_add(off)),
        tcp::ACK,
        &[],
        b"ok",
    );
    let o = read(&run(&mut p, &back, 256, 4).1);
    assert!(o.checksums_ok);
    assert_eq!((o.dst, o.ack), (client, ISN_C + 6));
}

#[test]
fn sessions_without_a_mode_are_untouched() {
    let mut p = pipeline(ClientAddress::None);
    let (_, mss, _) = handshake(&mut p, CLIENT, VIP);
    assert_eq!(mss, 1460);
    let f = seg(
        CLIENT_MAC,
        CLIENT,
        VIP,
        (ISN_C + 1, ISN_S + 1),
        tcp::ACK,
        &[],
        b"hello",
    );
    let o = read(&run(&mut p, &f, 256, 3).1);
    assert_eq!((o.payload.as_slice(), o.options.len()), (&b"hello"[..], 0));
    assert_eq!(p.counters.client_addr_inserted, 0);
}

#[test]
fn udp_proxy_v2_rides_every_datagram_toward_the_server() {
    use crate::xmit::rewrite::tests::udp_packet;
    let t = tables_with((5000, 5009), |t| {
        let s = &mut t.services[0];
        s.proto = ipv4::PROTO_UDP;
        s.client_address = ClientAddress::ProxyV2;
        s.servers.truncate(1);
    });
    let mut p = Pipeline::new(t, known_servers(), 64, 42, 0, 1);
    let mut header = PROXY_V2_SIG.to_vec();
    header.extend_from_slice(&[0x21, 0x12, 0, 12]);
    header.extend_from_slice(&CLIENT.ip.v4_bits());
    header.extend_from_slice(&VIP.ip.v4_bits());
    header.extend_from_slice(&CLIENT.port.to_be_bytes());
    header.extend_from_slice(&VIP.port.to_be_bytes());
    let mut local = None;
    for (i, no_checksum) in [(0, false), (1, true), (2, false)] {
        let q = eth(
            LB_MAC,
            CLIENT_MAC,
            ethernet::ETHERTYPE_IPV4,
            &udp_packet(CLIENT, VIP, b"query", no_checksum),
        );
        let (v, out) = run(&mut p, &q, 256, i + 1);
        assert_eq!(v, Verdict::Forward { port: 0 });
        let ip = ipv4::Packet::new_checked(&out[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.total_len() + 14, out.len());
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(usize::from(u.len_field()), ip.payload().len());
        assert_eq!(&ip.payload()[8..], [&header[..], b"query"].concat());
        if no_checksum {
            assert_eq!(u.checksum(), 0, "no checksum stays none");
        } else {
            assert!(u.verify_checksum_v4(ip.src(), ip.dst()));
        }
        assert_eq!(ip.dst(), RS1.ip.v4_bits());
        local = Some(Endpoint::new(ip.src(), u.src_port()));
    }
    // The answer goes back as it came, nothing to take off.
    let a = eth(
        LB_MAC,
        RS1_MAC,
        ethernet::ETHERTYPE_IPV4,
        &udp_packet(RS1, local.unwrap(), b"answer", false),
    );
    let (v, out) = run(&mut p, &a, 0, 5);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(&out[14 + 28..], b"answer");
    assert_eq!(p.counters.client_addr_inserted, 3);
}

#[test]
fn a_connection_keeps_the_mode_it_started_with() {
    let mut p = pipeline(ClientAddress::ProxyV2);
    handshake(&mut p, CLIENT, VIP);
    // The service's mode changes (reload, rvsadm -E) mid-connection.
    let t = tables_with((5000, 5009), |t| t.services[0].servers.truncate(1));
    p.set_tables(t);
    let f = seg(
        CLIENT_MAC,
        CLIENT,
        VIP,
        (ISN_C + 1, ISN_S + 1),
        tcp::ACK,
        &[],
        b"hello",
    );
    let o = read(&run(&mut p, &f, 256, 3).1);
    assert_eq!(o.payload.len(), 28 + 5, "the header still goes in");
    // A new connection follows the new mode.
    let other = Endpoint::new([10, 77, 0, 10], 40001);
    let syn = seg(CLIENT_MAC, other, VIP, (ISN_C, 0), tcp::SYN, &MSS_1460, b"");
    run(&mut p, &syn, 256, 4);
    let f = seg(
        CLIENT_MAC,
        other,
        VIP,
        (ISN_C + 1, 1),
        tcp::ACK,
        &[],
        b"hello",
    );
    assert_eq!(read(&run(&mut p, &f, 256, 5).1).payload, b"hello");
}

#[test]
fn a_proxy_session_synced_to_a_backup_keeps_its_shift_and_its_header() {
    use crate::sync_feed::SyncRing;
    use crate::sync_policy::SyncPolicy;
    let mut p = pipeline(ClientAddress::ProxyV2);
    let ring = Arc::new(SyncRing::new(16));
    p.set_sync_feed(Some((Arc::clone(&ring), SyncPolicy::default())));
    let header = v2_header_v4(CLIENT, VIP);
    let n = header.len() as u32;
    let (local, _, off) = handshake(&mut p, CLIENT, VIP);
    for (flags, data) in [(tcp::ACK, &b""[..]), (tcp::ACK | tcp::PSH, &b"GET /"[..])] {
        let f = seg(
            CLIENT_MAC,
            CLIENT,
            VIP,
            (ISN_C + 1, ISN_S + 1),
            flags,
            &[],
            data,
        );
        assert_eq!(run(&mut p, &f, 256, 3).0, Verdict::Forward { port: 0 });
    }
    // The 3rd inbound packet sent the session, through the ring's words.
    let r = ring.pop().expect("the session was fed");
    assert!(ring.pop().is_none());
    assert_eq!(r.client_addr, ClientAddress::ProxyV2);
    assert_eq!(
        (
            r.ext.to_server.base,
            r.ext.to_server.delta,
            r.ext.server_next
        ),
        (ISN_C + 1, n, ISN_S + 1)
    );
    assert_eq!(r.isn_off, off, "the ISN offset travels too");
    // The backup installs it and carries on as the master would have.
    let mut b = pipeline(ClientAddress::ProxyV2);
    assert_eq!(
        b.install_synced(&r, Millis(10)),
        super::sync::InstallOutcome::Installed
    );
    let to_rs = |b: &mut Pipeline, seq: u32, ack: u32, data: &[u8]| {
        let f = seg(CLIENT_MAC, CLIENT, VIP, (seq, ack), tcp::ACK, &[], data);
        let (v, out) = run(b, &f, 256, 11);
        assert_eq!(v, Verdict::Forward { port: 0 });
        let o = read(&out);
        assert!(o.checksums_ok, "{o:?}");
        assert_eq!((o.src, o.dst), (local, RS1));
        o
    };
    // The client's next bytes reach the server `n` further on.
    let o = to_rs(&mut b, ISN_C + 6, ISN_S + 13, b"more");
    assert_eq!(
        (o.seq, o.payload.as_slice()),
        ((ISN_C + 6 + n).wrapping_add(off), &b"more"[..])
    );
    // The server's acknowledgement is taken back for the client.
    let reply = seg(
        RS1_MAC,
        RS1,
        local,
        (ISN_S + 13, (ISN_C + 10 + n).wrapping_add(off)),
        tcp::ACK,
        &[],
        b"",
    );
    let (v, out) = run(&mut b, &reply, 0, 12);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let o = read(&out);
    assert!(o.checksums_ok);
    assert_eq!((o.dst, o.ack), (CLIENT, ISN_C + 10));
    // A retransmission of the first segment carries the header, once.
    let o = to_rs(&mut b, ISN_C + 1, ISN_S + 13, b"GET /");
    assert_eq!(o.payload, [&header[..], b"GET /"].concat());
    assert_eq!(o.seq, ISN_C + 1 + off);
    // Without the ext (what an older master sent) the backup would have
    // sent the client's bytes unshifted: the test above can fail.
    let mut plain = r;
    plain.client_addr = ClientAddress::None;
    plain.ext = crate::session::ext::SessionExt::default();
    plain.isn_off = 0;
    let mut c = pipeline(ClientAddress::ProxyV2);
    c.install_synced(&plain, Millis(10));
    let f = seg(
        CLIENT_MAC,
        CLIENT,
        VIP,
        (ISN_C + 6, ISN_S + 13),
        tcp::ACK,
        &[],
        b"more",
    );
    assert_eq!(read(&run(&mut c, &f, 256, 11).1).seq, ISN_C + 6);
}
