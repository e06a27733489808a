//! The SYN proxy through the pipeline, on byte vectors: the SYN answered
//! with a cookie and nothing kept, the ACK that opens the server's side
//! with the client's options, the held first data completing the server's
//! handshake, the offsets on both directions for the connection's life
//! (sequence numbers, SACK edges, timestamps, windows), a bad ACK dropped
//! and counted, a server's refusal, a retransmitted SYN-ACK; FULLNAT and
//! NAT, IPv4 and IPv6, and FULLNAT64.

use super::client_addr_tests::{read, run, seg, Out};
use super::tests::{known_servers, tables_with, CLIENT, CLIENT_MAC, LIP, RS1, RS1_MAC, VIP};
use super::v6_tests;
use super::*;
use crate::synproxy::cookie;
use crate::synproxy::segment::{self, Options};

const ISN_C: u32 = 0xfff0_0000;
const ISN_S: u32 = 7000;
const T0: u64 = 1_000_000;

/// Client SYN options: MSS 1460, SACK-permitted, timestamps, window scale 7.
fn syn_opts(ts: Option<u32>, ws: Option<u8>) -> Vec<u8> {
    let mut o = vec![2, 4, 0x05, 0xb4];
    match ts {
        Some(v) => {
            o.extend_from_slice(&[4, 2, 8, 10]);
            o.extend_from_slice(&v.to_be_bytes());
            o.extend_from_slice(&0u32.to_be_bytes());
        }
        None => o.extend_from_slice(&[1, 1, 4, 2]),
    }
    if let Some(w) = ws {
        o.extend_from_slice(&[1, 3, 3, w]);
    }
    o
}

fn ts_opt(val: u32, ecr: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&val.to_be_bytes());
    o.extend_from_slice(&ecr.to_be_bytes());
    o
}

/// One lab: a pipeline with the SYN proxy on, its endpoints.
struct Lab {
    p: Pipeline,
    client: Endpoint,
    vip: Endpoint,
    rs: Endpoint,
    /// The server sees the connection from here (FULLNAT: the local
    /// address and port; NAT: the client).
    from: Endpoint,
}

fn lab(v4: bool, forward: Forward) -> Lab {
    let (t, client, vip, rs, neigh) = if v4 {
        let t = tables_with((5000, 5009), |t| {
            let s = &mut t.services[0];
            s.syn_proxy = true;
            s.servers.truncate(1);
            s.servers[0].forward = forward;
        });
        (t, CLIENT, VIP, RS1, known_servers())
    } else {
        let t = v6_tests::v6_tables(forward);
        let mut t = (*t).clone();
        t.services[0].syn_proxy = true;
        t.services[0].servers.truncate(1);
        (
            Arc::new(t),
            v6_tests::client(),
            v6_tests::vip(),
            v6_tests::rs(1),
            v6_tests::known(),
        )
    };
    let laddr = if v4 { Addr::from(LIP) } else { v6_tests::lip() };
    let from = if forward == Forward::FullNat {
        Endpoint::at(laddr, 0)
    } else {
        client
    };
    Lab {
        p: Pipeline::new(t, neigh, 64, 42, 0, 1),
        client,
        vip,
        rs,
        from,
    }
}

impl Lab {
    fn send(&mut self, frame: &[u8], now: u64) -> (Verdict, Out) {
        let (v, f) = run(&mut self.p, frame, 200, now);
        let out = if matches!(v, Verdict::Forward { .. }) {
            read(&f)
        } else {
            read(frame)
        };
        (v, out)
    }

    fn client_sends(
        &mut self,
        sa: (u32, u32),
        flags: tcp::TcpFlags,
        opts: &[u8],
        data: &[u8],
        now: u64,
    ) -> (Verdict, Out) {
        let f = seg(CLIENT_MAC, self.client, self.vip, sa, flags, opts, data);
        self.send(&f, now)
    }

    fn server_sends(
        &mut self,
        sa: (u32, u32),
        flags: tcp::TcpFlags,
        opts: &[u8],
        data: &[u8],
        now: u64,
    ) -> (Verdict, Out) {
        let f = seg(RS1_MAC, self.rs, self.from, sa, flags, opts, data);
        self.send(&f, now)
    }

    fn free_ports(&self) -> usize {
        self.p.pools().iter().map(|p| p.available()).sum()
    }
}

/// The SYN and its answer: the cookie, and nothing kept.
fn answer(l: &mut Lab, opts: &[u8]) -> (u32, Options) {
    let ports = l.free_ports();
    let (v, out) = l.client_sends((ISN_C, 0), tcp::SYN, opts, b"", T0);
    assert_eq!(
        v,
        Verdict::Forward { port: 0 },
        "answered where it came from"
    );
    assert!(out.checksums_ok);
    assert_eq!((out.src, out.dst), (l.vip, l.client));
    assert_eq!(out.flags, tcp::SYN | tcp::ACK);
    assert_eq!(out.ack, ISN_C.wrapping_add(1));
    assert_eq!(l.p.sessions().len(), 0, "no session for a SYN");
    assert_eq!(l.free_ports(), ports, "no local port for a SYN");
    assert_eq!(l.p.synproxy_counters().cookies_sent, 1);
    let mut t = vec![0u8; 20];
    t[12] = (((20 + out.options.len()) / 4) as u8) << 4;
    t.extend_from_slice(&out.options);
    (out.seq, segment::options(&t))
}

fn parse_opts(o: &Out) -> Options {
    let mut t = vec![0u8; 20];
    t[12] = (((20 + o.options.len()) / 4) as u8) << 4;
    t.extend_from_slice(&o.options);
    segment::options(&t)
}

/// The whole exchange with timestamps, SACK and window scale, the first
/// data held, then traffic both ways with every offset applied.
fn full_exchange(v4: bool, forward: Forward) {
    exchange(lab(v4, forward), v4, forward);
}

/// [`full_exchange`] on lab `l` whose clients are IPv4 if `v4`.
fn exchange(mut l: Lab, v4: bool, forward: Forward) {
    let (c, o) = answer(&mut l, &syn_opts(Some(111), Some(7)));
    let mss = if v4 { 1460 } else { 1440 };
    assert_eq!(o.mss, Some(mss), "our MTU's MSS");
    assert_eq!(o.wscale, Some(crate::synproxy::CLIENT_WSCALE));
    assert!(o.sack_perm);
    let (our_ts, ecr) = o.ts.unwrap();
    assert_eq!(ecr, 111, "the client's TSval echoed");
    assert_eq!(
        our_ts & 0x3f,
        7 | 1 << 4,
        "wscale and SACK in the TSval's low bits"
    );

    // The ACK opens the server's side with the client's options.
    let (v, syn) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK,
        &ts_opt(112, our_ts),
        b"",
        T0 + 5,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(syn.checksums_ok);
    assert_eq!(syn.flags, tcp::SYN);
    assert_eq!(syn.dst, l.rs);
    assert_eq!(syn.src.ip, l.from.ip);
    assert_eq!(syn.seq, ISN_C, "the client's own ISN");
    let so = parse_opts(&syn);
    assert_eq!(so.mss, Some(if v4 { 1460 } else { 1440 }));
    assert_eq!(
        (so.wscale, so.sack_perm, so.ts),
        (Some(7), true, Some((112, 0)))
    );
    assert_eq!(l.p.sessions().len(), 1);
    let s = l.p.sessions().iter().next().unwrap();
    assert_eq!(s.state, TcpState::SynSent);
    let from = if forward == Forward::FullNat {
        s.laddr
    } else {
        l.client
    };
    l.from = from;
    assert_eq!(l.p.synproxy_counters().sessions_opened, 1);

    // The request follows at once: held.
    let (v, _) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK | tcp::PSH,
        &ts_opt(113, our_ts),
        b"GET /",
        T0 + 6,
    );
    assert_eq!(v, Verdict::Consumed);
    assert_eq!(l.p.synproxy_counters().data_held, 1);

    // The server's SYN-ACK: answered with the held request, which
    // completes its handshake.
    let mut sopts = vec![2, 4, 0x05, 0x78, 4, 2, 8, 10];
    sopts.extend_from_slice(&9000u32.to_be_bytes());
    sopts.extend_from_slice(&112u32.to_be_bytes());
    sopts.extend_from_slice(&[1, 3, 3, 5]);
    let (v, req) = l.server_sends(
        (ISN_S, ISN_C.wrapping_add(1)),
        tcp::SYN | tcp::ACK,
        &sopts,
        b"",
        T0 + 7,
    );
    assert_eq!(v, Verdict::Forward { port: 0 }, "to the server");
    assert!(req.checksums_ok);
    assert_eq!((req.src, req.dst), (l.from, l.rs));
    assert_eq!((req.seq, req.ack), (ISN_C.wrapping_add(1), ISN_S + 1));
    assert_eq!(req.payload, b"GET /");
    assert_eq!(
        parse_opts(&req).ts,
        Some((113, 9000)),
        "TSecr: the server's clock"
    );
    assert_eq!(
        l.p.sessions().iter().next().unwrap().state,
        TcpState::Established
    );

    // The server's answer reaches the client in the cookie's numbering,
    // its clock ours, its window at the client's scale (5 -> 7).
    let (v, resp) = l.server_sends(
        (ISN_S + 1, ISN_C.wrapping_add(6)),
        tcp::ACK,
        &ts_opt(9001, 113),
        b"200 OK",
        T0 + 8,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(resp.checksums_ok);
    assert_eq!((resp.src, resp.dst), (l.vip, l.client));
    assert_eq!(
        (resp.seq, resp.ack),
        (c.wrapping_add(1), ISN_C.wrapping_add(6))
    );
    assert_eq!(parse_opts(&resp).ts, Some((our_ts.wrapping_add(1), 113)));
    assert_eq!(resp.window, (29200u32 << 5 >> 7) as u16);

    // The client's acknowledgement and SACK blocks, back in the server's.
    let mut opts = ts_opt(114, our_ts.wrapping_add(1));
    opts.extend_from_slice(&[1, 1, 5, 10]);
    opts.extend_from_slice(&c.wrapping_add(100).to_be_bytes());
    opts.extend_from_slice(&c.wrapping_add(200).to_be_bytes());
    let (_, ack) = l.client_sends(
        (ISN_C.wrapping_add(6), c.wrapping_add(7)),
        tcp::ACK,
        &opts,
        b"",
        T0 + 9,
    );
    assert!(ack.checksums_ok);
    assert_eq!(ack.ack, ISN_S + 7);
    assert_eq!(parse_opts(&ack).ts, Some((114, 9001)));
    let sack = &ack.options[ack.options.len() - 8..];
    assert_eq!(sack[..4], (ISN_S + 100).to_be_bytes());
    assert_eq!(sack[4..], (ISN_S + 200).to_be_bytes());
    assert_eq!(ack.window, 29200, "the server scales as the client does");
}

#[test]
fn fullnat_v4_whole_exchange() {
    full_exchange(true, Forward::FullNat);
}

#[test]
fn nat_v4_whole_exchange() {
    full_exchange(true, Forward::Nat);
}

#[test]
fn fullnat_v6_whole_exchange() {
    full_exchange(false, Forward::FullNat);
}

#[test]
fn nat_v6_whole_exchange() {
    full_exchange(false, Forward::Nat);
}

#[test]
fn fullnat64_whole_exchange() {
    // The lab's IPv4 service and servers behind an IPv6 VIP.
    let t = tables_with((5000, 5009), |t| {
        t.services[0].vip = v6_tests::vip();
        t.services[0].syn_proxy = true;
        t.services[0].servers.truncate(1);
        t.routes = v6_tests::v6_tables(Forward::FullNat).routes.clone();
    });
    let l = Lab {
        p: Pipeline::new(t, known_servers(), 64, 42, 0, 1),
        client: v6_tests::client(),
        vip: v6_tests::vip(),
        rs: RS1,
        from: Endpoint::at(Addr::from(LIP), 0),
    };
    exchange(l, false, Forward::FullNat);
}

#[test]
fn without_data_the_ack_is_rebuilt_and_a_retransmitted_syn_ack_answered_again() {
    let mut l = lab(true, Forward::FullNat);
    let (c, o) = answer(&mut l, &syn_opts(Some(50), Some(9)));
    let (our_ts, _) = o.ts.unwrap();
    l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK,
        &ts_opt(51, our_ts),
        b"",
        T0,
    );
    l.from = l.p.sessions().iter().next().unwrap().laddr;
    let mut sopts = vec![2, 4, 0x05, 0xb4, 1, 1, 8, 10];
    sopts.extend_from_slice(&4242u32.to_be_bytes());
    sopts.extend_from_slice(&51u32.to_be_bytes());
    for _ in 0..2 {
        let (v, ack) = l.server_sends(
            (ISN_S, ISN_C.wrapping_add(1)),
            tcp::SYN | tcp::ACK,
            &sopts,
            b"",
            T0 + 1,
        );
        assert_eq!(v, Verdict::Forward { port: 0 });
        assert!(ack.checksums_ok);
        assert_eq!(ack.flags, tcp::ACK);
        assert_eq!((ack.src, ack.dst), (l.from, l.rs));
        assert_eq!((ack.seq, ack.ack), (ISN_C.wrapping_add(1), ISN_S + 1));
        assert_eq!(parse_opts(&ack).ts, Some((51, 4242)));
        assert!(ack.payload.is_empty());
    }
    // The server did not scale its window: the client's windows are
    // unscaled for it, the server's scaled for the client.
    let (_, d) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK,
        &ts_opt(52, our_ts),
        b"x",
        T0 + 2,
    );
    assert_eq!(d.window, 65535, "29200 << 9, capped");
    assert_eq!(l.p.synproxy_counters().server_handshakes, 1);
}

#[test]
fn window_scale_and_sack_survive_a_client_without_timestamps() {
    let mut l = lab(true, Forward::FullNat);
    let (c, o) = answer(&mut l, &syn_opts(None, Some(8)));
    assert_eq!((o.ts, o.wscale, o.sack_perm), (None, Some(7), true));
    let (_, syn) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK,
        &[],
        b"",
        T0,
    );
    let so = parse_opts(&syn);
    assert_eq!(
        (so.wscale, so.sack_perm, so.ts, so.mss),
        (Some(8), true, None, Some(1460))
    );
}

#[test]
fn bad_acks_are_dropped_and_counted_and_a_flood_costs_nothing() {
    let mut l = lab(true, Forward::FullNat);
    let ports = l.free_ports();
    let (c, _) = answer(&mut l, &syn_opts(None, None));
    for (seq, ack) in [
        (ISN_C.wrapping_add(1), c.wrapping_add(0x101)),
        (ISN_C.wrapping_add(1), c ^ 0x0100_0000),
        (ISN_C.wrapping_add(5000), c.wrapping_add(1)),
        (1, 1),
    ] {
        let (v, _) = l.client_sends((seq, ack), tcp::ACK, &[], b"", T0);
        assert_eq!(v, Verdict::Drop(DropReason::SynCookieInvalid));
    }
    // Good once, but too late (more than two minutes).
    let (v, _) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK,
        &[],
        b"",
        T0 + 2 * cookie::PERIOD_MS,
    );
    assert_eq!(v, Verdict::Drop(DropReason::SynCookieInvalid));
    assert_eq!(l.p.synproxy_counters().acks_invalid, 5);
    assert_eq!(l.p.counters.drops[DropReason::SynCookieInvalid as usize], 5);
    // A random-source SYN flood: every SYN answered, nothing kept.
    for i in 0..2000u32 {
        let src = Endpoint::new([198, 18, (i >> 8) as u8, i as u8], 1024 + i as u16);
        let f = seg(
            CLIENT_MAC,
            src,
            l.vip,
            (i, 0),
            tcp::SYN,
            &syn_opts(Some(i), Some(7)),
            b"",
        );
        let (v, _) = l.send(&f, T0 + 1);
        assert_eq!(v, Verdict::Forward { port: 0 });
    }
    assert_eq!(l.p.synproxy_counters().cookies_sent, 2001);
    assert_eq!(l.p.sessions().len(), 0);
    assert_eq!(l.free_ports(), ports);
}

#[test]
fn a_server_refusal_reaches_the_client_in_its_numbering() {
    let mut l = lab(true, Forward::FullNat);
    let (c, _) = answer(&mut l, &syn_opts(None, None));
    l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK,
        &[],
        b"",
        T0,
    );
    l.from = l.p.sessions().iter().next().unwrap().laddr;
    // Data before the server answers, with nothing held yet: kept; a pure
    // ACK meanwhile: dropped, counted.
    let (v, _) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK,
        &[],
        b"",
        T0,
    );
    assert_eq!(v, Verdict::Drop(DropReason::SynProxyPending));
    let (v, rst) = l.server_sends(
        (0, ISN_C.wrapping_add(1)),
        tcp::RST | tcp::ACK,
        &[],
        b"",
        T0 + 1,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(rst.checksums_ok);
    assert_eq!((rst.src, rst.dst), (l.vip, l.client));
    assert_eq!(rst.seq, c.wrapping_add(1), "in the client's window");
}
