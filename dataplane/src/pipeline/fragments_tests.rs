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
use crate::frag_hold::FragHold;
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

/// The worker's part, as `worker.rs` does it with mbufs: a later fragment
/// the pipeline asks to hold waits in a [`FragHold`]; when a first fragment
/// is filed, the frames waiting for its datagram go through the pipeline
/// right after it.
struct Holding {
    p: Pipeline,
    hold: FragHold<Vec<u8>>,
    /// The verdicts of released frames.
    released: Vec<Verdict>,
}

impl Holding {
    fn new(p: Pipeline) -> Self {
        Self {
            p,
            hold: FragHold::default(),
            released: Vec::new(),
        }
    }

    /// Runs `frames` through, as they arrive at `now`; returns what left,
    /// in the order it left, and each arrival's verdict.
    fn run(&mut self, frames: &[Vec<u8>], now: u64) -> (Vec<Vec<u8>>, Vec<Verdict>) {
        let now = Millis(now);
        let mut out = Vec::new();
        let mut verdicts = Vec::new();
        for f in frames {
            let mut buf = vec![0u8; 64 + f.len()];
            buf[64..].copy_from_slice(f);
            let mut pkt = PacketBuf::new(&mut buf, 64, f.len());
            let v = self.p.process_buf(&mut pkt, 0, now);
            match v {
                Verdict::Forward { .. } => out.push(pkt.frame().to_vec()),
                Verdict::HoldFragment { datagram } => {
                    let e = match self.hold.hold(f.clone(), 0, datagram, now) {
                        Ok(()) => FragHoldEvent::Held,
                        Err(_) => FragHoldEvent::Full,
                    };
                    self.p.count_fragment_hold(e);
                }
                _ => {}
            }
            verdicts.push(v);
            if let Some(d) = self.p.take_filed_datagram() {
                self.hold.release(&d);
                while let Some((f, port)) = self.hold.take_released() {
                    let mut buf = vec![0u8; 64 + f.len()];
                    buf[64..].copy_from_slice(&f);
                    let mut pkt = PacketBuf::new(&mut buf, 64, f.len());
                    let v = self.p.process_released_buf(&mut pkt, port, now);
                    if let Verdict::Forward { .. } = v {
                        out.push(pkt.frame().to_vec());
                    }
                    self.released.push(v);
                }
            }
        }
        (out, verdicts)
    }

    fn expire(&mut self, now: u64) {
        let p = &mut self.p;
        self.hold.expire(Millis(now), |_| {
            p.count_fragment_hold(FragHoldEvent::Expired)
        });
    }
}

/// The verdict that holds the IPv4 fragment in `frame`.
fn hold_verdict(frame: &[u8]) -> Verdict {
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    Verdict::HoldFragment {
        datagram: crate::frag::FragKey {
            src: Addr::v4(ip.src()),
            dst: Addr::v4(ip.dst()),
            id: u32::from(ip.ident()),
            proto: ip.protocol(),
        },
    }
}

#[test]
fn later_fragments_before_their_first_wait_for_it_and_follow_it_in_order() {
    let t = udp_tables(Forward::FullNat, 30);
    let mut w = Holding::new(pipelines(&t, 1).remove(0));
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    let mut frames = frames_v4(&split_v4(&whole, 1024, 5), CLIENT_MAC);
    frames.reverse();
    let (out, v) = w.run(&frames, 1);
    assert_eq!(
        v,
        vec![
            hold_verdict(&frames[0]),
            hold_verdict(&frames[1]),
            Verdict::Forward { port: 0 },
        ]
    );
    // The first leaves first, then the held ones in the order they came.
    let offsets: Vec<usize> = out
        .iter()
        .map(|f| ipv4::Packet::new_checked(&f[14..]).unwrap().frag_offset())
        .collect();
    assert_eq!(offsets, vec![0, 2048, 1024]);
    let ips: Vec<Vec<u8>> = out.iter().map(|f| f[14..].to_vec()).collect();
    let (src, dst, ok, data) = udp_of_v4(&join_v4(&ips));
    let s = w.p.sessions().iter().next().unwrap();
    assert_eq!((src, dst.ip, ok), (s.laddr, RS1.ip, true));
    assert_eq!(data, payload());
    assert_eq!(
        *w.p.frag_counters(),
        FragCounters {
            forwarded: 3,
            held: 2,
            released: 2,
            ..Default::default()
        }
    );
    assert!(w.hold.is_empty());
    assert!(w.p.frags.is_empty(), "the datagram completed");
    assert_eq!(
        w.p.counters.rx_packets, 3,
        "released frames are not received twice"
    );
}

#[test]
fn a_held_fragment_whose_first_does_not_come_is_dropped_and_counted() {
    let t = udp_tables(Forward::FullNat, 30);
    let mut w = Holding::new(pipelines(&t, 1).remove(0));
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    let frames = frames_v4(&split_v4(&whole, 1480, 6), CLIENT_MAC);
    let (out, _) = w.run(&frames[2..], 1);
    assert!(out.is_empty());
    w.expire(FragHold::<Vec<u8>>::HOLD_MS);
    assert_eq!(w.hold.len(), 1, "not yet");
    w.expire(1 + FragHold::<Vec<u8>>::HOLD_MS);
    assert!(w.hold.is_empty());
    let c = *w.p.frag_counters();
    assert_eq!((c.held, c.released, c.no_first), (1, 0, 1));
    assert_eq!(w.p.counters.drops[DropReason::Fragment as usize], 1);
    // The first and the middle, late: forwarded; the datagram stays
    // incomplete (its last is gone) and its entry times out.
    let now = 2 + FragHold::<Vec<u8>>::HOLD_MS;
    let (out, v) = w.run(&frames[..2], now);
    assert_eq!(v, vec![Verdict::Forward { port: 0 }; 2]);
    assert_eq!(out.len(), 2);
    w.p.housekeeping(
        Millis(now + crate::frag::TIMEOUT_MS),
        8 * crate::frag::CAPACITY,
    );
    assert_eq!(w.p.frag_counters().timed_out, 1);
    assert!(w.p.frags.is_empty());
}

#[test]
fn the_hold_is_bounded_per_datagram_and_per_worker() {
    type H = FragHold<Vec<u8>>;
    let t = udp_tables(Forward::FullNat, 30);
    let mut w = Holding::new(pipelines(&t, 1).remove(0));
    // 3000 bytes in 128-byte pieces: 24 fragments, the 23 later ones first.
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    let frames = frames_v4(&split_v4(&whole, 128, 8), CLIENT_MAC);
    assert!(frames.len() > H::PER_DATAGRAM + 1);
    let later = frames.len() - 1;
    let (out, _) = w.run(&frames[1..], 1);
    assert!(out.is_empty());
    let c = *w.p.frag_counters();
    assert_eq!(
        (c.held, c.hold_full),
        (H::PER_DATAGRAM as u64, (later - H::PER_DATAGRAM) as u64)
    );
    // The first: it and the held ones leave; the rest was dropped.
    let (out, _) = w.run(&frames[..1], 2);
    assert_eq!(out.len(), 1 + H::PER_DATAGRAM);
    assert_eq!(w.p.frag_counters().released, H::PER_DATAGRAM as u64);
    assert!(w.hold.is_empty());
    // Many datagrams' later fragments: the worker's bound.
    let mut frames = Vec::new();
    for id in 0..=H::CAPACITY as u16 {
        frames.push(frames_v4(&split_v4(&whole, 1480, 1000 + id), CLIENT_MAC).remove(2));
    }
    let before = *w.p.frag_counters();
    w.run(&frames, 3);
    let c = *w.p.frag_counters();
    assert_eq!(
        (c.held - before.held, c.hold_full - before.hold_full),
        (H::CAPACITY as u64, 1)
    );
    assert_eq!(w.hold.len(), H::CAPACITY);
}

#[test]
fn held_fragments_follow_their_first_to_the_owning_worker() {
    let t = udp_tables(Forward::FullNat, 30);
    let mut w = pipelines(&t, 2);
    let owner = client_owner(
        &FlowKey {
            src: CLIENT,
            dst: DNS_VIP,
            proto: ipv4::PROTO_UDP,
        },
        2,
    );
    let mut other = Holding::new(w.remove(1 - owner));
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    let mut frames = frames_v4(&split_v4(&whole, 1480, 78), CLIENT_MAC);
    frames.reverse();
    let mut redirected = Vec::new();
    for f in &frames {
        let (_, v) = other.run(std::slice::from_ref(f), 1);
        redirected.push(v[0]);
    }
    let to_owner = Verdict::Redirect {
        worker: owner as u16,
    };
    assert_eq!(
        redirected,
        vec![hold_verdict(&frames[0]), hold_verdict(&frames[1]), to_owner]
    );
    assert_eq!(other.released, vec![to_owner; 2], "right after the first");
    assert_eq!(other.p.frag_counters().released, 2);
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
    let c = *p.frag_counters();
    assert_eq!((c.forwarded, c.client_address, c.held), (0, 3, 0));
    // Its later fragments first: held, then dropped with the first.
    let mut w = Holding::new(p);
    let mut frames = frames_v4(&split_v4(&whole, 1480, 2), CLIENT_MAC);
    frames.reverse();
    let (out, _) = w.run(&frames, 2);
    assert!(out.is_empty());
    assert_eq!(w.released, vec![Verdict::Drop(DropReason::Fragment); 2]);
    let c = *w.p.frag_counters();
    assert_eq!((c.client_address, c.held, c.released), (6, 2, 2));
    assert!(w.hold.is_empty());
}

/// A UDP FULLNAT64 service: IPv6 VIP `[fd77::100]:80`, IPv4 servers and
/// local address (the lab's).
fn fullnat64() -> Pipeline {
    use super::tests::{known_servers, tables_with};
    let t = tables_with((5000, 5009), |t| {
        t.services[0].vip = ep("fd77::100", 80);
        t.services[0].proto = ipv4::PROTO_UDP;
        t.routes = v6_tables(Forward::FullNat).routes.clone();
    });
    Pipeline::new(t, known_servers(), 64, 42, 0, 1)
}

#[test]
fn fullnat64_translates_ipv6_fragments_to_ipv4_and_back() {
    let mut p = fullnat64();
    let (client, vip) = (ep("fd77::10", 40000), ep("fd77::100", 80));
    let whole = udp_packet(client, vip, &payload(), false);
    let frags = split_v6(&whole, 1232, 0xdead_beef);
    assert_eq!(frags.len(), 3);
    let frames: Vec<Vec<u8>> = frags
        .iter()
        .map(|f| eth(LB_MAC, CLIENT_MAC, ethernet::ETHERTYPE_IPV6, f))
        .collect();
    let (out, v) = through(&mut p, &frames, 1);
    assert_eq!(v, vec![Verdict::Forward { port: 0 }; 3]);
    let s = p.sessions().iter().next().unwrap();
    // Each IPv6 fragment became an IPv4 fragment (RFC 7915 §5.1.1): the
    // identification's low 16 bits, the offset and M; DF clear; the data
    // as it came (but the first one's UDP ports and checksum).
    for (i, (f, sent)) in out.iter().zip(&frags).enumerate() {
        assert_eq!(
            (&f[..6], u16::from_be_bytes([f[12], f[13]])),
            (&RS1_MAC[..], ethernet::ETHERTYPE_IPV4)
        );
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum(), "fragment {i}: header checksum");
        let data = &sent[48..];
        assert_eq!(
            (
                ip.src(),
                ip.dst(),
                ip.protocol(),
                ip.ttl(),
                ip.header_len(),
                ip.total_len()
            ),
            (
                s.laddr.ip.v4_bits(),
                s.rs.ip.v4_bits(),
                ipv4::PROTO_UDP,
                63,
                20,
                20 + data.len()
            ),
            "fragment {i}"
        );
        assert_eq!(
            (
                ip.ident(),
                ip.frag_offset(),
                ip.more_frags(),
                f[14 + 6] & 0x40
            ),
            (0xbeef, i * 1232, i < 2, 0),
            "fragment {i}: id, offset, MF, DF"
        );
        if i > 0 {
            assert_eq!(ip.payload(), data, "fragment {i}: data untouched");
        } else {
            assert_eq!(&ip.payload()[8..], &data[8..]);
        }
    }
    let ips: Vec<Vec<u8>> = out.iter().map(|f| f[14..].to_vec()).collect();
    let (src, dst, ok, data) = udp_of_v4(&join_v4(&ips));
    assert_eq!((src, dst, ok), (s.laddr, s.rs, true), "reassembled");
    assert_eq!(data, payload());
    // The server's answer, in IPv4 fragments, goes back in IPv6 ones, with
    // a fragment header each (RFC 7915 §4.1).
    let reply = udp_packet(s.rs, s.laddr, &payload(), false);
    let rfrags = split_v4(&reply, 1480, 0x7777);
    let rs_mac = out[0][..6].try_into().unwrap();
    let (back, v) = through(&mut p, &frames_v4(&rfrags, rs_mac), 2);
    assert_eq!(v, vec![Verdict::Forward { port: 0 }; 3]);
    for (i, (f, sent)) in back.iter().zip(&rfrags).enumerate() {
        assert_eq!(
            (&f[..6], u16::from_be_bytes([f[12], f[13]])),
            (&CLIENT_MAC[..], ethernet::ETHERTYPE_IPV6)
        );
        let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
        let fh = ipv6::Fragment::new_checked(&ip).unwrap();
        let data = &sent[20..];
        assert_eq!(
            (ip.src(), ip.dst(), ip.hop_limit(), ip.payload_len()),
            (vip.ip.octets(), client.ip.octets(), 63, 8 + data.len()),
            "fragment {i}"
        );
        assert_eq!(
            fh,
            ipv6::Fragment {
                next_header: ipv4::PROTO_UDP,
                offset: i * 1480,
                more: i < 2,
                ident: 0x7777,
                data_len: data.len(),
            },
            "fragment {i}"
        );
        assert_eq!(f[14 + 41], 0, "reserved");
        if i > 0 {
            assert_eq!(&ip.payload()[8..], data, "fragment {i}: data untouched");
        }
    }
    let ips: Vec<Vec<u8>> = back.iter().map(|f| f[14..].to_vec()).collect();
    let joined = join_v6(&ips);
    let ip = ipv6::Packet::new_checked(&joined[..]).unwrap();
    let u = udp::Packet::new_checked(ip.payload()).unwrap();
    assert!(u.verify_checksum_v6(ip.src(), ip.dst()), "reassembled");
    assert_eq!(
        (u.src_port(), u.dst_port(), &ip.payload()[8..]),
        (vip.port, client.port, &payload()[..])
    );
    assert_eq!(p.frag_counters().forwarded, 6);
    assert!(p.frags.is_empty());
    // Out of order and translated: the later ones wait for the first.
    let mut w = Holding::new(p);
    let mut frames: Vec<Vec<u8>> = split_v6(&whole, 1232, 0xfeed)
        .iter()
        .map(|f| eth(LB_MAC, CLIENT_MAC, ethernet::ETHERTYPE_IPV6, f))
        .collect();
    frames.reverse();
    let (out, _) = w.run(&frames, 3);
    let ips: Vec<Vec<u8>> = out.iter().map(|f| f[14..].to_vec()).collect();
    assert_eq!(ips.len(), 3);
    assert!(udp_of_v4(&join_v4(&ips)).2);
    assert_eq!(w.p.frag_counters().released, 2);
}

#[test]
fn fullnat64_refuses_a_first_fragment_without_udp_checksum_toward_ipv6() {
    let mut p = fullnat64();
    let (client, vip) = (ep("fd77::10", 40000), ep("fd77::100", 80));
    let q = eth(
        LB_MAC,
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV6,
        &udp_packet(client, vip, b"query", false),
    );
    let (out, _) = through(&mut p, &[q], 1);
    let s = p.sessions().iter().next().unwrap();
    let rs_mac: MacAddr = out[0][..6].try_into().unwrap();
    // Without checksum: IPv6 needs one, over data the first fragment does
    // not carry.
    let reply = udp_packet(s.rs, s.laddr, &payload(), true);
    let (_, v) = through(&mut p, &frames_v4(&split_v4(&reply, 1480, 1), rs_mac), 2);
    assert_eq!(v[0], Verdict::Drop(DropReason::Fragment));
}

#[test]
fn an_overlapping_fragment_ends_its_datagram_and_a_duplicate_goes_alone() {
    let t = udp_tables(Forward::FullNat, 30);
    let p = pipelines(&t, 1).remove(0);
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    // Fragments of 1480 bytes, plus one at offset 1472 that overlaps the
    // first's last 8 bytes.
    let mut frames = frames_v4(&split_v4(&whole, 1480, 9), CLIENT_MAC);
    let over = split_v4(&whole, 1472, 9).remove(1);
    frames.insert(1, eth(LB_MAC, CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &over));
    let mut w = Holding::new(p);
    let (_, v) = w.run(&frames, 1);
    // The rest of the datagram finds it ended: held for a first fragment
    // that will not come again (as Linux starts a queue that never
    // completes), then dropped.
    assert_eq!(
        v,
        vec![
            Verdict::Forward { port: 0 },
            Verdict::Drop(DropReason::Fragment),
            hold_verdict(&frames[2]),
            hold_verdict(&frames[3]),
        ],
    );
    w.expire(1 + FragHold::<Vec<u8>>::HOLD_MS);
    let mut p = w.p;
    let c = *p.frag_counters();
    assert_eq!(
        (c.forwarded, c.overlapping, c.held, c.no_first),
        (1, 1, 2, 2)
    );
    assert_eq!(p.counters.drops[DropReason::Fragment as usize], 3);
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

#[test]
fn later_fragments_wait_while_their_first_waits_for_the_servers_mac() {
    let t = udp_tables(Forward::FullNat, 30);
    let p = Pipeline::new(t, std::sync::Arc::default(), 64, 42, 0, 1);
    let mut w = Holding::new(p);
    let whole = udp_packet(CLIENT, DNS_VIP, &payload(), false);
    let frames = frames_v4(&split_v4(&whole, 1480, 11), CLIENT_MAC);
    // The first waits for the server's MAC: not filed, so the later ones
    // are held too (they would find no session yet).
    let (out, v) = w.run(&frames, 1);
    assert!(out.is_empty());
    let Verdict::Hold { decision, .. } = v[0] else {
        panic!("the first fragment waits for the MAC: {:?}", v[0]);
    };
    assert_eq!(
        &v[1..],
        &[hold_verdict(&frames[1]), hold_verdict(&frames[2])]
    );
    assert!(w.p.frags.is_empty(), "nothing filed while it waits");
    // Resolved: the first is released (as the worker's neighbour hold does)
    // and files its datagram; the held fragments follow it.
    w.p.set_neigh(super::tests::known_servers());
    let mut first = frames[0].clone();
    assert_eq!(
        w.p.process_held(&mut first, 0, decision, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    let d = w.p.take_filed_datagram().expect("filed on release");
    assert_eq!(w.hold.release(&d), 2);
    let mut ips = vec![first[14..].to_vec()];
    while let Some((mut f, port)) = w.hold.take_released() {
        let mut pkt = PacketBuf::whole(&mut f);
        assert_eq!(
            w.p.process_released_buf(&mut pkt, port, Millis(2)),
            Verdict::Forward { port: 0 }
        );
        ips.push(f[14..].to_vec());
    }
    let (src, _, ok, data) = udp_of_v4(&join_v4(&ips));
    assert_eq!((src.ip.v4_bits(), ok), (LIP, true));
    assert_eq!(data, payload());
    assert!(w.p.frags.is_empty(), "complete");
}
