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
use crate::xmit::client_addr::{self as ca, ClientAddress};

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
    lab_telling(v4, forward, ClientAddress::None)
}

/// [`lab`] whose service tells its servers the client by `mode`.
fn lab_telling(v4: bool, forward: Forward, mode: ClientAddress) -> Lab {
    let (t, client, vip, rs, neigh) = if v4 {
        let t = tables_with((5000, 5009), |t| {
            let s = &mut t.services[0];
            s.syn_proxy = true;
            s.client_address = mode;
            s.servers.truncate(1);
            s.servers[0].forward = forward;
        });
        (t, CLIENT, VIP, RS1, known_servers())
    } else {
        let t = v6_tests::v6_tables(forward);
        let mut t = (*t).clone();
        t.services[0].syn_proxy = true;
        t.services[0].client_address = mode;
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

/// [`full_exchange`] on lab `l` whose clients are IPv4 if `v4`; the lab
/// after it, the cookie and our first TSval.
fn exchange(mut l: Lab, v4: bool, forward: Forward) -> (Lab, u32, u32) {
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
    (l, c, our_ts)
}

/// The whole exchange on a master feeding sync, then the connection
/// installed on a backup from its sync record (through the ring's words):
/// the backup carries on with every offset (sequence, timestamps, windows).
fn taken_over(v4: bool, forward: Forward) {
    let mut master = lab(v4, forward);
    let ring = Arc::new(crate::sync_feed::SyncRing::new(16));
    master.p.set_sync_feed(Some((
        Arc::clone(&ring),
        crate::sync_policy::SyncPolicy::default(),
    )));
    let (mut master, c, our_ts) = exchange(master, v4, forward);
    // One more client segment: the policy's threshold (3 inbound packets
    // with the session).
    master.client_sends(
        (ISN_C.wrapping_add(6), c.wrapping_add(7)),
        tcp::ACK,
        &ts_opt(114, our_ts.wrapping_add(1)),
        b"",
        T0 + 10,
    );
    let sent: Vec<_> = std::iter::from_fn(|| ring.pop()).collect();
    let r = *sent.last().expect("the established connection was fed");
    assert_eq!(r.state, TcpState::Established as u8);
    assert!(r.ext.has(crate::session::ext::SYN_PROXY));
    assert_eq!(r.ext.syn_proxy.server_wscale, 5);
    // A resync sends the same.
    let s = master.p.sessions().iter().next().unwrap();
    let ext = master.p.session_ext(&s);
    assert_eq!(super::sync::record_of(&s, &ext, r.timeout_s).ext, r.ext);

    let mut backup = lab(v4, forward);
    backup.from = master.from;
    assert_eq!(
        backup.p.install_synced(&r, Millis(T0 + 50)),
        super::sync::InstallOutcome::Installed
    );
    // The client's next segment (its MAC learned from it) reaches the
    // server in the server's numbering and clock.
    let (v, ack) = backup.client_sends(
        (ISN_C.wrapping_add(6), c.wrapping_add(7)),
        tcp::ACK,
        &ts_opt(115, our_ts.wrapping_add(1)),
        b"",
        T0 + 60,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(ack.checksums_ok);
    assert_eq!((ack.src.ip, ack.dst), (backup.from.ip, backup.rs));
    assert_eq!(ack.ack, ISN_S + 7);
    assert_eq!(parse_opts(&ack).ts, Some((115, 9001)));
    assert_eq!(ack.window, 29200, "the server scales as the client does");
    // The server's next segment reaches the client in the cookie's
    // numbering, its clock ours, its window at the client's scale.
    let (v, resp) = backup.server_sends(
        (ISN_S + 7, ISN_C.wrapping_add(6)),
        tcp::ACK,
        &ts_opt(9002, 115),
        b"more",
        T0 + 61,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(resp.checksums_ok);
    assert_eq!((resp.src, resp.dst), (backup.vip, backup.client));
    assert_eq!(
        (resp.seq, resp.ack),
        (c.wrapping_add(7), ISN_C.wrapping_add(6))
    );
    assert_eq!(parse_opts(&resp).ts, Some((our_ts.wrapping_add(2), 115)));
    assert_eq!(resp.window, (29200u32 << 5 >> 7) as u16);
}

#[test]
fn a_fullnat_v4_connection_taken_over_from_sync_keeps_every_offset() {
    taken_over(true, Forward::FullNat);
}

#[test]
fn a_nat_v6_connection_taken_over_from_sync_keeps_every_offset() {
    taken_over(false, Forward::Nat);
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

/// The server still holds an older connection on the tuple (a restarted
/// box lent the local port again while the server was in TIME_WAIT): it
/// answers the proxy's SYN with an ACK of that connection. The proxy
/// resets it, as a TCP in SYN_SENT does, and sends the SYN again on the
/// client's next retransmission, at most once a second; the server's
/// SYN-ACK then gets the held request.
#[test]
fn a_servers_old_connection_is_reset_and_the_syn_sent_again() {
    let mut l = lab(true, Forward::FullNat);
    let (c, o) = answer(&mut l, &syn_opts(Some(50), Some(9)));
    let (our_ts, _) = o.ts.unwrap();
    let (_, syn) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK,
        &ts_opt(51, our_ts),
        b"",
        T0,
    );
    l.from = l.p.sessions().iter().next().unwrap().laddr;
    let (v, rst) = l.server_sends((4242, 0x1234_5678), tcp::ACK, &ts_opt(9, 1), b"", T0 + 1);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(rst.checksums_ok);
    assert_eq!(rst.flags, tcp::RST);
    assert_eq!((rst.src, rst.dst), (l.from, l.rs));
    assert_eq!(rst.seq, 0x1234_5678, "the ACK's acknowledgement");
    assert_eq!(l.p.synproxy_counters().server_stale_acks, 1);
    let request = |l: &mut Lab, at: u64| {
        l.client_sends(
            (ISN_C.wrapping_add(1), c.wrapping_add(1)),
            tcp::ACK | tcp::PSH,
            &ts_opt(52, our_ts),
            b"GET /",
            at,
        )
    };
    assert_eq!(request(&mut l, T0 + 2).0, Verdict::Consumed, "held");
    assert_eq!(
        request(&mut l, T0 + 400).0,
        Verdict::Drop(DropReason::SynProxyPending),
        "within a second of the last SYN"
    );
    let (v, again) = request(&mut l, T0 + 1_200);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(again.checksums_ok);
    assert_eq!(again.flags, tcp::SYN);
    assert!(again.payload.is_empty());
    assert_eq!(
        (again.src, again.dst, again.seq, again.options.clone()),
        (syn.src, syn.dst, syn.seq, syn.options.clone()),
        "the same SYN as the first"
    );
    assert_eq!(l.p.synproxy_counters().server_syn_retries, 1);
    assert_eq!(
        request(&mut l, T0 + 1_500).0,
        Verdict::Drop(DropReason::SynProxyPending)
    );
    let mut sopts = vec![2, 4, 0x05, 0xb4, 1, 1, 8, 10];
    sopts.extend_from_slice(&4300u32.to_be_bytes());
    sopts.extend_from_slice(&51u32.to_be_bytes());
    let (v, req) = l.server_sends(
        (ISN_S, ISN_C.wrapping_add(1)),
        tcp::SYN | tcp::ACK,
        &sopts,
        b"",
        T0 + 1_600,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(
        req.payload, b"GET /",
        "the held request completes the handshake"
    );
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

/// The SYN proxy and a PROXY header together, both directions: the
/// cookie's MSS leaves room for the header; the held request reaches the
/// server behind the header; then for the connection's life the client's
/// stream moves by the header's length and the server's by cookie −
/// server ISN, SACK edges each way back by the other stream's shift; a
/// retransmission of the first segment carries the header again.
fn proxy_composed(v4: bool, mode: ClientAddress) {
    composed_on(lab_telling(v4, Forward::FullNat, mode), v4, mode);
}

/// [`proxy_composed`] on lab `l` whose clients are IPv4 if `v4`.
fn composed_on(mut l: Lab, v4: bool, mode: ClientAddress) {
    let header = ca::insertion(mode, l.client, l.vip, ipv4::PROTO_TCP).unwrap();
    let header = header.bytes().to_vec();
    let n = header.len() as u32;
    let (c, o) = answer(&mut l, &syn_opts(None, Some(7)));
    let mss = if v4 { 1460 } else { 1440 };
    assert_eq!(o.mss, Some(mss - n as u16), "room for the header");
    let (v, syn) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK,
        &[],
        b"",
        T0,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!((syn.flags, syn.seq), (tcp::SYN, ISN_C));
    assert!(syn.payload.is_empty(), "no header on the SYN");
    l.from = l.p.sessions().iter().next().unwrap().laddr;
    let (v, _) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK | tcp::PSH,
        &[],
        b"GET /",
        T0 + 1,
    );
    assert_eq!(v, Verdict::Consumed, "held");
    // The server's SYN-ACK releases the request, the header in front.
    let (v, req) = l.server_sends(
        (ISN_S, ISN_C.wrapping_add(1)),
        tcp::SYN | tcp::ACK,
        &[2, 4, 0x05, 0xb4, 1, 3, 3, 7],
        b"",
        T0 + 2,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(req.checksums_ok);
    assert_eq!((req.src, req.dst), (l.from, l.rs));
    assert_eq!((req.seq, req.ack), (ISN_C.wrapping_add(1), ISN_S + 1));
    assert_eq!(req.payload, [&header[..], b"GET /"].concat());
    // The server acknowledges header and request, SACKs a later block of
    // the client's stream: the client sees its own numbers and the
    // cookie's.
    let mut sack = vec![1, 1, 5, 10];
    sack.extend_from_slice(&ISN_C.wrapping_add(1 + n + 100).to_be_bytes());
    sack.extend_from_slice(&ISN_C.wrapping_add(1 + n + 200).to_be_bytes());
    let (v, resp) = l.server_sends(
        (ISN_S + 1, ISN_C.wrapping_add(6 + n)),
        tcp::ACK,
        &sack,
        b"200 OK",
        T0 + 3,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(resp.checksums_ok);
    assert_eq!((resp.src, resp.dst), (l.vip, l.client));
    assert_eq!(
        (resp.seq, resp.ack),
        (c.wrapping_add(1), ISN_C.wrapping_add(6))
    );
    let edges = &resp.options[resp.options.len() - 8..];
    assert_eq!(edges[..4], ISN_C.wrapping_add(101).to_be_bytes());
    assert_eq!(edges[4..], ISN_C.wrapping_add(201).to_be_bytes());
    assert_eq!(resp.payload, b"200 OK");
    // The client's next data and its SACK of the server's stream: its
    // sequence number moves by the header, its acknowledgement and SACK
    // edges back to the server's numbering.
    let mut sack = vec![1, 1, 5, 10];
    sack.extend_from_slice(&c.wrapping_add(100).to_be_bytes());
    sack.extend_from_slice(&c.wrapping_add(200).to_be_bytes());
    let (_, more) = l.client_sends(
        (ISN_C.wrapping_add(6), c.wrapping_add(7)),
        tcp::ACK,
        &sack,
        b"more",
        T0 + 4,
    );
    assert!(more.checksums_ok);
    assert_eq!((more.seq, more.ack), (ISN_C.wrapping_add(6 + n), ISN_S + 7));
    let edges = &more.options[more.options.len() - 8..];
    assert_eq!(edges[..4], (ISN_S + 100).to_be_bytes());
    assert_eq!(edges[4..], (ISN_S + 200).to_be_bytes());
    assert_eq!(more.payload, b"more", "one header per stream");
    // A retransmission of the first segment carries the header again.
    let (_, again) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(7)),
        tcp::ACK | tcp::PSH,
        &[],
        b"GET /",
        T0 + 5,
    );
    assert!(again.checksums_ok);
    assert_eq!(again.seq, ISN_C.wrapping_add(1));
    assert_eq!(again.payload, [&header[..], b"GET /"].concat());
    // The server's FIN: shifted like any segment.
    let (_, fin) = l.server_sends(
        (ISN_S + 7, ISN_C.wrapping_add(10 + n)),
        tcp::FIN | tcp::ACK,
        &[],
        b"",
        T0 + 6,
    );
    assert_eq!(
        (fin.seq, fin.ack),
        (c.wrapping_add(7), ISN_C.wrapping_add(10))
    );
}

#[test]
fn proxy_v2_and_syn_proxy_compose_v4() {
    proxy_composed(true, ClientAddress::ProxyV2);
}

#[test]
fn proxy_v1_and_syn_proxy_compose_v4() {
    proxy_composed(true, ClientAddress::ProxyV1);
}

#[test]
fn proxy_v2_and_syn_proxy_compose_v6() {
    proxy_composed(false, ClientAddress::ProxyV2);
}

#[test]
fn proxy_v1_and_syn_proxy_compose_v6() {
    proxy_composed(false, ClientAddress::ProxyV1);
}

#[test]
fn proxy_v2_and_syn_proxy_compose_fullnat64() {
    // The header names the IPv6 client and VIP; the server is IPv4.
    let t = tables_with((5000, 5009), |t| {
        t.services[0].vip = v6_tests::vip();
        t.services[0].syn_proxy = true;
        t.services[0].client_address = ClientAddress::ProxyV2;
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
    composed_on(l, false, ClientAddress::ProxyV2);
}

/// The SYN proxy and TOA: the cookie's MSS leaves room for the option;
/// the ACK rvs sends to complete the server's handshake carries it, and so
/// does the client's first data (acknowledging the server's SYN, in the
/// server's numbering once shifted); once the server has sent data, no
/// more; sequence numbers unchanged on the client's stream.
fn toa_composed(v4: bool) {
    let mut l = lab_telling(v4, Forward::FullNat, ClientAddress::Toa);
    let toa = ca::toa_option(l.client).bytes().to_vec();
    let (c, o) = answer(&mut l, &syn_opts(Some(7), Some(7)));
    let mss = if v4 { 1460 } else { 1440 };
    assert_eq!(o.mss, Some(mss - toa.len() as u16), "room for TOA");
    let (our_ts, _) = o.ts.unwrap();
    l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK,
        &ts_opt(8, our_ts),
        b"",
        T0,
    );
    l.from = l.p.sessions().iter().next().unwrap().laddr;
    let mut sopts = vec![2, 4, 0x05, 0xb4, 1, 1, 8, 10];
    sopts.extend_from_slice(&4242u32.to_be_bytes());
    sopts.extend_from_slice(&8u32.to_be_bytes());
    let (v, ack) = l.server_sends(
        (ISN_S, ISN_C.wrapping_add(1)),
        tcp::SYN | tcp::ACK,
        &sopts,
        b"",
        T0 + 1,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(ack.checksums_ok);
    assert_eq!((ack.src, ack.dst), (l.from, l.rs));
    assert_eq!((ack.seq, ack.ack), (ISN_C.wrapping_add(1), ISN_S + 1));
    assert!(
        ack.options.windows(toa.len()).any(|w| w == toa),
        "TOA on the handshake's ACK: {:?}",
        ack.options
    );
    assert_eq!(parse_opts(&ack).ts, Some((8, 4242)), "timestamps kept");
    // The client's first data acknowledges the server's SYN (in the
    // cookie's numbering): TOA again.
    let (_, first) = l.client_sends(
        (ISN_C.wrapping_add(1), c.wrapping_add(1)),
        tcp::ACK | tcp::PSH,
        &ts_opt(9, our_ts),
        b"GET /",
        T0 + 2,
    );
    assert!(first.checksums_ok);
    assert_eq!((first.seq, first.ack), (ISN_C.wrapping_add(1), ISN_S + 1));
    assert!(first.options.windows(toa.len()).any(|w| w == toa));
    assert_eq!(first.payload, b"GET /");
    // The server answers; the client's next segment acknowledges data:
    // no TOA.
    let (_, resp) = l.server_sends(
        (ISN_S + 1, ISN_C.wrapping_add(6)),
        tcp::ACK,
        &ts_opt(4243, 9),
        b"200 OK",
        T0 + 3,
    );
    assert_eq!(
        (resp.seq, resp.ack),
        (c.wrapping_add(1), ISN_C.wrapping_add(6))
    );
    let (_, next) = l.client_sends(
        (ISN_C.wrapping_add(6), c.wrapping_add(7)),
        tcp::ACK,
        &ts_opt(10, our_ts.wrapping_add(1)),
        b"",
        T0 + 4,
    );
    assert!(next.checksums_ok);
    assert_eq!((next.seq, next.ack), (ISN_C.wrapping_add(6), ISN_S + 7));
    assert!(!next
        .options
        .windows(2)
        .any(|w| w[0] == ca::TOA_KIND && usize::from(w[1]) == toa.len()));
}

#[test]
fn toa_and_syn_proxy_compose_v4() {
    toa_composed(true);
}

#[test]
fn toa_and_syn_proxy_compose_v6() {
    toa_composed(false);
}
