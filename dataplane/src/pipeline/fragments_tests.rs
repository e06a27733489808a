//! Fragmented datagrams through the pipeline, in every forwarding method:
//! a whole UDP datagram (and an ICMP error) is split as a host would split
//! it, each fragment goes through the pipeline, and what leaves is
//! reassembled as the receiver would: its addresses, ports and checksums
//! must be those of the whole datagram forwarded.

use super::modes_tests::{pipelines, udp_tables, DNS_VIP};
use super::tests::{eth, CLIENT, CLIENT_MAC, LB_MAC, LIP, RS1, RS1_MAC};
use super::v6_tests::{ep, known, v6_tables};
use super::*;
use crate::checksum;
use crate::frag::FragCounters;
use crate::packet::PacketBuf;
use crate::xmit::rewrite::tests::udp_packet;

/// Splits the IPv4 packet `p` into fragments of at most `data` bytes of
/// data (a multiple of 8), identification `id`, as a host does.
fn split_v4(p: &[u8], data: usize, id: u16) -> Vec<Vec<u8>> {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let body = &p[ihl..];
    body.chunks(data)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = p[..ihl].to_vec();
            let off = (i * data / 8) as u16;
            let more = (i + 1) * data < body.len();
            f[2..4].copy_from_slice(&((ihl + chunk.len()) as u16).to_be_bytes());
            f[4..6].copy_from_slice(&id.to_be_bytes());
            f[6..8].copy_from_slice(&(off | if more { 0x2000 } else { 0 }).to_be_bytes());
            f[10..12].fill(0);
            let c = checksum::checksum(&f[..ihl]);
            f[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}

/// Reassembles IPv4 fragments (any order), checking each header's checksum.
fn join_v4(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<(usize, &[u8], &[u8])> = frags
        .iter()
        .map(|f| {
            let ip = ipv4::Packet::new_checked(&f[..]).unwrap();
            assert!(ip.verify_checksum(), "fragment header checksum");
            let (h, t) = (ip.header_len(), ip.total_len());
            (ip.frag_offset(), &f[..h], &f[h..t])
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    let mut whole = parts[0].1.to_vec();
    for (off, _, data) in &parts {
        assert_eq!(*off, whole.len() - parts[0].1.len(), "contiguous");
        whole.extend_from_slice(data);
    }
    let len = whole.len() as u16;
    whole[2..4].copy_from_slice(&len.to_be_bytes());
    whole[6..8].fill(0);
    whole
}

/// Splits the IPv6 packet `p` (fixed header, then the transport header)
/// into fragments of at most `data` bytes of data, identification `id`.
fn split_v6(p: &[u8], data: usize, id: u32) -> Vec<Vec<u8>> {
    let next = p[6];
    let body = &p[40..];
    body.chunks(data)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = p[..40].to_vec();
            f[4..6].copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
            f[6] = ipv6::NEXT_FRAGMENT;
            let more = u16::from((i + 1) * data < body.len());
            let off = (i * data) as u16 | more;
            f.extend_from_slice(&[next, 0]);
            f.extend_from_slice(&off.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}

fn join_v6(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<(u16, &[u8])> = frags
        .iter()
        .map(|f| (u16::from_be_bytes([f[42], f[43]]) & 0xfff8, &f[48..]))
        .collect();
    parts.sort_by_key(|p| p.0);
    let mut whole = frags[0][..40].to_vec();
    whole[6] = frags[0][40];
    for (_, data) in &parts {
        whole.extend_from_slice(data);
    }
    let len = (whole.len() - 40) as u16;
    whole[4..6].copy_from_slice(&len.to_be_bytes());
    whole
}

/// Runs `frames` through `p` (with room for an outer header) and returns
/// what was forwarded, Ethernet header and all, with the verdicts.
fn through(p: &mut Pipeline, frames: &[Vec<u8>], now: u64) -> (Vec<Vec<u8>>, Vec<Verdict>) {
    let mut out = Vec::new();
    let mut verdicts = Vec::new();
    for f in frames {
        let mut buf = vec![0u8; 64 + f.len()];
        buf[64..].copy_from_slice(f);
        let mut pkt = PacketBuf::new(&mut buf, 64, f.len());
        let v = p.process_buf(&mut pkt, 0, Millis(now));
        if matches!(v, Verdict::Forward { .. }) {
            out.push(pkt.frame().to_vec());
        }
        verdicts.push(v);
    }
    (out, verdicts)
}

fn frames_v4(packets: &[Vec<u8>], smac: MacAddr) -> Vec<Vec<u8>> {
    packets
        .iter()
        .map(|p| eth(LB_MAC, smac, ethernet::ETHERTYPE_IPV4, p))
        .collect()
}

const PAYLOAD_LEN: usize = 3000;

fn payload() -> Vec<u8> {
    (0..PAYLOAD_LEN).map(|i| (i * 7 + 3) as u8).collect()
}

/// The UDP datagram's endpoints and whether its checksum verifies.
fn udp_of_v4(ip: &[u8]) -> (Endpoint, Endpoint, bool, Vec<u8>) {
    let ip = ipv4::Packet::new_checked(ip).unwrap();
    let u = udp::Packet::new_checked(ip.payload()).unwrap();
    (
        Endpoint::new(ip.src(), u.src_port()),
        Endpoint::new(ip.dst(), u.dst_port()),
        u.verify_checksum_v4(ip.src(), ip.dst()),
        ip.payload()[8..].to_vec(),
    )
}

#[test]
fn fragmented_udp_goes_through_fullnat_both_ways() {
    let t = udp_tables(Forward::FullNat, 30);
    let mut p = pipelines(&t, 1).remove(0);
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    let frags = split_v4(&whole, 1480, 0x4242);
    assert_eq!(frags.len(), 3);
    let (out, v) = through(&mut p, &frames_v4(&frags, CLIENT_MAC), 1);
    assert_eq!(v, vec![Verdict::Forward { port: 0 }; 3]);
    for f in &out {
        let e = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!((e.dst(), e.src()), (RS1_MAC, LB_MAC));
    }
    let ips: Vec<Vec<u8>> = out.iter().map(|f| f[14..].to_vec()).collect();
    let (src, dst, ok, data) = udp_of_v4(&join_v4(&ips));
    let s = p.sessions().iter().next().unwrap();
    assert_eq!(
        (src, dst.ip.v4_bits(), dst.port),
        (s.laddr, RS1.ip.v4_bits(), 5353)
    );
    assert_eq!(src.ip.v4_bits(), LIP);
    assert!(ok, "the reassembled datagram's UDP checksum verifies");
    assert_eq!(data, payload());
    assert_eq!(p.sessions().len(), 1, "one session for the datagram");
    // The server's answer, fragmented too, goes back to the client.
    let reply = udp_packet(s.rs, s.laddr, &payload(), false);
    let (out, v) = through(&mut p, &frames_v4(&split_v4(&reply, 1480, 7), RS1_MAC), 2);
    assert_eq!(v, vec![Verdict::Forward { port: 0 }; 3]);
    let ips: Vec<Vec<u8>> = out.iter().map(|f| f[14..].to_vec()).collect();
    let (src, dst, ok, data) = udp_of_v4(&join_v4(&ips));
    assert_eq!((src, dst, ok), (DNS_VIP, CLIENT, true));
    assert_eq!(data, payload());
    assert_eq!(
        *p.frag_counters(),
        FragCounters {
            forwarded: 6,
            ..Default::default()
        }
    );
    assert!(p.frags.is_empty(), "both datagrams complete: no entry left");
    // One datagram is one packet, all its bytes counted.
    let rs = p.rs_traffic()[usize::from(s.rs_index)];
    assert_eq!((rs.in_pkts, rs.out_pkts), (1, 1));
    assert_eq!(rs.in_bytes, (whole.len() + 2 * 20) as u64);
}

#[test]
fn every_method_carries_fragments() {
    for forward in [Forward::FullNat, Forward::Nat, Forward::Dr, Forward::Tun] {
        let t = udp_tables(forward, 30);
        let mut p = pipelines(&t, 1).remove(0);
        let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
        let frags = split_v4(&whole, 1024, 99);
        let (out, v) = through(&mut p, &frames_v4(&frags, CLIENT_MAC), 1);
        assert_eq!(
            v,
            vec![Verdict::Forward { port: 0 }; frags.len()],
            "{forward:?}"
        );
        let ips: Vec<Vec<u8>> = out
            .iter()
            .map(|f| {
                let ip = &f[14..];
                if forward == Forward::Tun {
                    // IPIP: the fragment itself inside, untouched.
                    assert_eq!(ip[9], tunnel::PROTO_IPIP);
                    ip[20..].to_vec()
                } else {
                    ip.to_vec()
                }
            })
            .collect();
        let joined = join_v4(&ips);
        let (src, dst, ok, data) = udp_of_v4(&joined);
        let rs = Endpoint::new(RS1.ip.v4_bits(), 5353);
        let (want_src, want_dst) = match forward {
            Forward::FullNat => (Endpoint::new(LIP, src.port), rs),
            Forward::Nat => (CLIENT, rs),
            _ => (CLIENT, DNS_VIP),
        };
        assert_eq!((src, dst, ok), (want_src, want_dst, true), "{forward:?}");
        assert_eq!(data, payload());
        if matches!(forward, Forward::Dr | Forward::Tun) {
            for (sent, got) in frags.iter().zip(&ips) {
                assert_eq!(sent, got, "{forward:?}: fragments untouched");
            }
        }
        assert_eq!(p.frag_counters().forwarded, frags.len() as u64);
    }
}

#[test]
fn a_later_fragment_before_its_first_is_dropped_and_counted() {
    let t = udp_tables(Forward::FullNat, 30);
    let mut p = pipelines(&t, 1).remove(0);
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    let mut frames = frames_v4(&split_v4(&whole, 1480, 5), CLIENT_MAC);
    frames.swap(0, 1);
    let (_, v) = through(&mut p, &frames, 1);
    assert_eq!(
        v,
        vec![
            Verdict::Drop(DropReason::Fragment),
            Verdict::Forward { port: 0 },
            Verdict::Forward { port: 0 },
        ]
    );
    let c = *p.frag_counters();
    assert_eq!((c.forwarded, c.no_first), (2, 1));
    // The datagram never completes: its entry times out, and is counted.
    p.housekeeping(Millis(1 + crate::frag::TIMEOUT_MS), 4096);
    assert_eq!(p.frag_counters().timed_out, 1);
    assert!(p.frags.is_empty());
}

#[test]
fn later_fragments_follow_their_first_to_the_owning_worker() {
    let t = udp_tables(Forward::FullNat, 30);
    let mut w = pipelines(&t, 2);
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    let frames = frames_v4(&split_v4(&whole, 1480, 77), CLIENT_MAC);
    let owner = client_owner(
        &FlowKey {
            src: CLIENT,
            dst: DNS_VIP,
            proto: ipv4::PROTO_UDP,
        },
        2,
    );
    let other = 1 - owner;
    // All three reach the other worker first (as RSS would put them).
    let (_, v) = through(&mut w[other], &frames, 1);
    assert_eq!(
        v,
        vec![
            Verdict::Redirect {
                worker: owner as u16
            };
            3
        ]
    );
    let (out, v) = through(&mut w[owner], &frames, 1);
    assert_eq!(v, vec![Verdict::Forward { port: 0 }; 3]);
    let ips: Vec<Vec<u8>> = out.iter().map(|f| f[14..].to_vec()).collect();
    assert!(udp_of_v4(&join_v4(&ips)).2);
}

#[test]
fn a_fragmented_icmp_error_from_the_server_reaches_the_client() {
    let t = udp_tables(Forward::FullNat, 30);
    let mut p = pipelines(&t, 1).remove(0);
    let q = eth(
        LB_MAC,
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &udp_packet(CLIENT, DNS_VIP, b"query", false),
    );
    let (out, _) = through(&mut p, &[q], 1);
    let sent = out[0][14..].to_vec();
    // The server answers with an error quoting the whole packet and 1200
    // bytes of padding after it (as ICMP extensions may), in fragments.
    let mut m = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&sent);
    m.extend(std::iter::repeat_n(0xab, 1200));
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut err = vec![0u8; 20];
    ipv4::emit_header(
        &mut err,
        ipv4::PROTO_ICMP,
        RS1.ip.v4_bits(),
        LIP,
        m.len() as u16,
    );
    err.extend_from_slice(&m);
    let frags = split_v4(&err, 512, 3);
    assert_eq!(frags.len(), 3);
    let (out, v) = through(&mut p, &frames_v4(&frags, RS1_MAC), 2);
    assert_eq!(v, vec![Verdict::Forward { port: 0 }; 3]);
    for f in &out {
        assert_eq!(&f[..6], &CLIENT_MAC);
    }
    let ips: Vec<Vec<u8>> = out.iter().map(|f| f[14..].to_vec()).collect();
    let joined = join_v4(&ips);
    let ip = ipv4::Packet::new_checked(&joined[..]).unwrap();
    assert_eq!(
        (ip.src(), ip.dst()),
        (DNS_VIP.ip.v4_bits(), CLIENT.ip.v4_bits())
    );
    let msg = ip.payload();
    assert_eq!(
        checksum::checksum(msg),
        0,
        "the ICMP checksum verifies whole"
    );
    // The quote is what the client sent.
    let (qsrc, qdst, ok, _) = {
        let inner = &msg[8..8 + 20 + 8];
        (
            Endpoint::new(
                [inner[12], inner[13], inner[14], inner[15]],
                u16::from_be_bytes([inner[20], inner[21]]),
            ),
            Endpoint::new(
                [inner[16], inner[17], inner[18], inner[19]],
                u16::from_be_bytes([inner[22], inner[23]]),
            ),
            checksum::checksum(&inner[..20]) == 0,
            (),
        )
    };
    assert_eq!((qsrc, qdst, ok), (CLIENT, DNS_VIP, true));
    assert_eq!(p.counters.icmp_relayed, 1);
    assert_eq!(p.frag_counters().forwarded, 3);
}

#[test]
fn fragmented_udp_over_ipv6_in_every_method() {
    for forward in [Forward::FullNat, Forward::Nat, Forward::Dr, Forward::Tun] {
        let t = {
            let base = v6_tables(forward);
            let mut t = (*base).clone();
            t.services[0].proto = ipv4::PROTO_UDP;
            std::sync::Arc::new(t)
        };
        let mut p = Pipeline::new(t, known(), 64, 42, 0, 1);
        let (client, vip) = (ep("fd77::10", 40000), ep("fd77::100", 80));
        let whole = udp_packet(client, vip, &payload(), false);
        let frags = split_v6(&whole, 1232, 0xdead_beef);
        let frames: Vec<Vec<u8>> = frags
            .iter()
            .map(|f| eth(LB_MAC, CLIENT_MAC, ethernet::ETHERTYPE_IPV6, f))
            .collect();
        let (out, v) = through(&mut p, &frames, 1);
        assert_eq!(
            v,
            vec![Verdict::Forward { port: 0 }; frags.len()],
            "{forward:?}"
        );
        let ips: Vec<Vec<u8>> = out
            .iter()
            .map(|f| {
                let ip = &f[14..];
                if forward == Forward::Tun {
                    assert_eq!(ip[6], tunnel::NEXT_IPV6);
                    ip[40..].to_vec()
                } else {
                    ip.to_vec()
                }
            })
            .collect();
        let joined = join_v6(&ips);
        let ip = ipv6::Packet::new_checked(&joined[..]).unwrap();
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum_v6(ip.src(), ip.dst()), "{forward:?}");
        let s = p.sessions().iter().next().unwrap();
        let want = match forward {
            Forward::FullNat => (s.laddr, s.rs),
            Forward::Nat => (client, s.rs),
            _ => (client, vip),
        };
        assert_eq!(
            (
                Endpoint::at(Addr::v6(ip.src()), u.src_port()),
                Endpoint::at(Addr::v6(ip.dst()), u.dst_port())
            ),
            want,
            "{forward:?}"
        );
        assert_eq!(&ip.payload()[8..], &payload()[..]);
    }
}

#[test]
fn a_tiny_first_fragment_is_malformed_whatever_the_padding() {
    let t = udp_tables(Forward::FullNat, 30);
    let mut p = pipelines(&t, 1).remove(0);
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    // 4 bytes of data with MF: half a UDP header; the frame is padded to
    // the Ethernet minimum with bytes that are not part of the packet.
    let mut first = whole[..24].to_vec();
    first[2..4].copy_from_slice(&24u16.to_be_bytes());
    first[6] = 0x20;
    first[10..12].fill(0);
    let c = checksum::checksum(&first[..20]);
    first[10..12].copy_from_slice(&c.to_be_bytes());
    let mut frame = eth(LB_MAC, CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &first);
    frame.extend_from_slice(&whole[24..46 - 14 + 24]);
    assert!(frame.len() >= 60);
    assert_eq!(
        p.process(&mut frame, 0, Millis(1)),
        Verdict::Drop(DropReason::Malformed)
    );
    assert!(p.sessions().is_empty());
}

#[test]
fn services_that_insert_the_client_address_drop_fragments() {
    let t = {
        let mut t = (*udp_tables(Forward::FullNat, 30)).clone();
        t.services[1].client_address = crate::xmit::client_addr::ClientAddress::ProxyV2;
        std::sync::Arc::new(t)
    };
    let mut p = pipelines(&t, 1).remove(0);
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    let (_, v) = through(
        &mut p,
        &frames_v4(&split_v4(&whole, 1480, 1), CLIENT_MAC),
        1,
    );
    assert_eq!(v, vec![Verdict::Drop(DropReason::Fragment); 3]);
    assert!(
        p.sessions().is_empty(),
        "no session for a datagram it cannot carry"
    );
    assert_eq!(p.frag_counters().forwarded, 0);
}

#[test]
fn an_overlapping_fragment_ends_its_datagram_and_a_duplicate_goes_alone() {
    let t = udp_tables(Forward::FullNat, 30);
    let mut p = pipelines(&t, 1).remove(0);
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    // Fragments of 1480 bytes, plus one at offset 1472 that overlaps the
    // first's last 8 bytes.
    let mut frames = frames_v4(&split_v4(&whole, 1480, 9), CLIENT_MAC);
    let over = split_v4(&whole, 1472, 9).remove(1);
    frames.insert(1, eth(LB_MAC, CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &over));
    let (_, v) = through(&mut p, &frames, 1);
    assert_eq!(
        v,
        vec![
            Verdict::Forward { port: 0 },
            Verdict::Drop(DropReason::Fragment),
            Verdict::Drop(DropReason::Fragment),
            Verdict::Drop(DropReason::Fragment),
        ],
        "the rest of the datagram goes with it"
    );
    let c = *p.frag_counters();
    assert_eq!((c.forwarded, c.overlapping, c.no_first), (1, 1, 2));
    // Another datagram whose second fragment comes twice: the copy is
    // dropped alone, the datagram completes, the first sent again after
    // completion is a new datagram's.
    let frames = frames_v4(&split_v4(&whole, 1480, 10), CLIENT_MAC);
    let again = [
        frames[0].clone(),
        frames[1].clone(),
        frames[1].clone(),
        frames[2].clone(),
    ];
    let (_, v) = through(&mut p, &again, 2);
    assert_eq!(
        v,
        vec![
            Verdict::Forward { port: 0 },
            Verdict::Forward { port: 0 },
            Verdict::Drop(DropReason::Fragment),
            Verdict::Forward { port: 0 },
        ]
    );
    assert_eq!(p.frag_counters().overlapping, 2);
    assert!(p.frags.is_empty());
}
