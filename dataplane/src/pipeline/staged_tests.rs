//! Bursts with two-step inserts (`staged.rs`) and lookups made ahead (the
//! worker's lookup stage) against the same frames one by one with whole
//! inserts and lookups made in turn: the same verdicts, frames, counters and
//! sessions, whatever the frames (new connections, duplicates of a SYN in
//! the same burst, the servers' replies to a port just lent, data, resets,
//! frames that are not TCP or UDP) and wherever the bursts end.

use proptest::prelude::*;

use super::tests::{eth, ready, tcp_frame, CLIENT, CLIENT_MAC, LB_MAC, RS1, RS1_MAC, RS2, VIP};
use super::*;
use crate::session::Session;

/// One frame of the small universe the property draws from.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// From the client's port `40000 + n`: a SYN, data, a FIN, a reset.
    Syn(u16),
    Data(u16),
    Fin(u16),
    Rst(u16),
    /// A server's reply (SYN-ACK or ACK) to local port `5000 + n`.
    Reply {
        rs2: bool,
        lport: u16,
        syn: bool,
    },
    /// An ICMP echo request to the VIP (not a described TCP/UDP frame).
    Echo,
}

fn frame_strategy() -> impl Strategy<Value = Frame> {
    prop_oneof![
        6 => (0u16..12).prop_map(Frame::Syn),
        2 => (0u16..12).prop_map(Frame::Data),
        1 => (0u16..12).prop_map(Frame::Fin),
        1 => (0u16..12).prop_map(Frame::Rst),
        3 => (any::<bool>(), 0u16..10, any::<bool>())
            .prop_map(|(rs2, lport, syn)| Frame::Reply { rs2, lport, syn }),
        1 => Just(Frame::Echo),
    ]
}

fn bytes(f: Frame) -> Vec<u8> {
    let client = |n: u16| Endpoint::new(CLIENT.ip.v4_bits(), 40000 + n);
    match f {
        Frame::Syn(n) => tcp_frame(CLIENT_MAC, client(n), VIP, tcp::SYN, b""),
        Frame::Data(n) => tcp_frame(CLIENT_MAC, client(n), VIP, tcp::ACK, b"data"),
        Frame::Fin(n) => tcp_frame(CLIENT_MAC, client(n), VIP, tcp::FIN | tcp::ACK, b""),
        Frame::Rst(n) => tcp_frame(CLIENT_MAC, client(n), VIP, tcp::RST, b""),
        Frame::Reply { rs2, lport, syn } => {
            let (rs, mac) = if rs2 {
                (RS2, super::tests::RS2_MAC)
            } else {
                (RS1, RS1_MAC)
            };
            let flags = if syn { tcp::SYN | tcp::ACK } else { tcp::ACK };
            let laddr = Endpoint::new(super::tests::LIP, 5000 + lport);
            tcp_frame(mac, rs, laddr, flags, b"")
        }
        Frame::Echo => {
            let mut msg = vec![icmp::ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1, b'x'];
            let c = crate::checksum::checksum(&msg);
            msg[2..4].copy_from_slice(&c.to_be_bytes());
            let mut ip = vec![0u8; 20];
            ipv4::emit_header(
                &mut ip,
                ipv4::PROTO_ICMP,
                CLIENT.ip.v4_bits(),
                VIP.ip.v4_bits(),
                msg.len() as u16,
            );
            ip.extend_from_slice(&msg);
            eth(LB_MAC, CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &ip)
        }
    }
}

/// Every session, in slot order, and whether each key finds it.
fn sessions(p: &Pipeline, now: Millis) -> Vec<(Session, bool, bool)> {
    let t = p.sessions();
    t.iter()
        .map(|s| {
            let found = |k| !matches!(t.lookup(&k, now), crate::session::Lookup::Miss);
            (s, found(s.client_key()), found(s.rs_key()))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_staged_burst_ends_as_frames_one_by_one(
        bursts in proptest::collection::vec(
            (proptest::collection::vec(frame_strategy(), 1..40), 0u64..1500),
            1..12,
        ),
        capacity in 6u32..40,
    ) {
        // Ten local ports, two servers, a table smaller than the flows at
        // times: port exhaustion and a full table happen too.
        let (mut a, mut b) = (ready((5000, 5009), capacity), ready((5000, 5009), capacity));
        let mut now = Millis(1);
        for (frames, gap) in bursts {
            // As the worker: the whole burst described and looked up
            // first, then each frame processed.
            let descs: Vec<Option<Desc>> = frames
                .iter()
                .map(|f| {
                    a.describe(&bytes(*f)).map(|mut d| {
                        a.look_ahead(&mut d);
                        d
                    })
                })
                .collect();
            a.begin_burst();
            let mut out_a = Vec::new();
            for (f, d) in frames.iter().zip(&descs) {
                let mut fa = bytes(*f);
                let v = a.process_counted(&mut PacketBuf::whole(&mut fa), 0, d.as_ref(), now);
                out_a.push((v, fa));
            }
            a.end_burst();
            for (i, f) in frames.iter().enumerate() {
                let mut fb = bytes(*f);
                let v = b.process_counted(&mut PacketBuf::whole(&mut fb), 0, None, now);
                prop_assert_eq!(&out_a[i], &(v, fb), "frame {} ({:?})", i, f);
            }
            prop_assert_eq!(&a.counters, &b.counters);
            prop_assert_eq!(sessions(&a, now), sessions(&b, now));
            now = Millis(now.0 + gap);
            a.housekeeping(now, 64);
            b.housekeeping(now, 64);
        }
    }
}

#[test]
fn a_reply_to_a_port_just_lent_finds_its_session_in_the_same_burst() {
    let mut p = ready((5000, 5009), 16);
    p.begin_burst();
    let mut syn = bytes(Frame::Syn(1));
    let d = p.describe(&syn);
    let v = p.process_counted(&mut PacketBuf::whole(&mut syn), 0, d.as_ref(), Millis(1));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(p.staged.len(), 1, "the server-side key waits");
    // The SYN went out from local port 5000 (the pool's first).
    let mut reply = bytes(Frame::Reply {
        rs2: false,
        lport: 0,
        syn: true,
    });
    let d = p.describe(&reply);
    let v = p.process_counted(&mut PacketBuf::whole(&mut reply), 0, d.as_ref(), Millis(1));
    assert_eq!(
        v,
        Verdict::Forward { port: 0 },
        "the SYN-ACK goes to the client"
    );
    assert!(p.staged.is_empty(), "filed before the reply's lookup");
    p.end_burst();
    assert_eq!(p.sessions().len(), 1);
}
