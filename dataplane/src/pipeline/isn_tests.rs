//! FULLNAT's server-side ISN through the pipeline ([`crate::xmit::isn`]):
//! the SYN's ISN and timestamp, a retransmitted SYN, a reused tuple, the
//! offset on every later segment both ways (SACK included), IPv4 and IPv6,
//! the one-pass path against the long way, NAT untouched, and sync.

use proptest::prelude::*;

use super::client_addr_tests::{read, run, seg};
use super::tests::{known_servers, tables_with, CLIENT, CLIENT_MAC, RS1, RS1_MAC, VIP};
use super::*;
use crate::session::Lookup;
use crate::wire::tcp;
use crate::xmit::isn::IsnKey;

/// MSS, SACK permitted, timestamps, NOP, window scale (Linux's SYN).
const SYN_OPTS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 1, 0x86, 0xa0, 0, 0, 0, 0, 1, 3, 3, 7,
];
const ISN_C: u32 = 0xffff_ff00; // wraps round within the test
const ISN_S: u32 = 5000;

/// A one-server FULLNAT pipeline (worker 0 of 1, seed 42).
fn pipeline() -> Pipeline {
    Pipeline::new(
        tables_with((5000, 5009), |t| t.services[0].servers.truncate(1)),
        known_servers(),
        64,
        42,
        0,
        1,
    )
}

/// The client's SYN through `p` at `now`: what reached the server.
fn syn(p: &mut Pipeline, client: Endpoint, isn: u32, now: u64) -> super::client_addr_tests::Out {
    let f = seg(CLIENT_MAC, client, VIP, (isn, 0), tcp::SYN, &SYN_OPTS, b"");
    let (v, out) = run(p, &f, 0, now);
    assert_eq!(v, Verdict::Forward { port: 0 });
    read(&out)
}

#[test]
fn the_syn_gets_the_servers_isn_without_timestamp_and_a_retransmission_the_same() {
    let mut p = pipeline();
    let o = syn(&mut p, CLIENT, ISN_C, 1000);
    assert!(o.checksums_ok);
    assert_eq!(o.dst, RS1);
    // The ISN the pipeline's default key gives that tuple at 1000 ms.
    let key = IsnKey::from_seed(42);
    assert_eq!(o.seq, key.isn(o.src, RS1, Millis(1000)));
    let mut want = SYN_OPTS;
    want[6..16].fill(1);
    assert_eq!(o.options, want, "timestamp to NOPs, MSS/SACK/wscale kept");
    // The client retransmits its SYN a second later: the same ISN.
    let again = syn(&mut p, CLIENT, ISN_C, 2000);
    assert_eq!((again.src, again.seq), (o.src, o.seq));
    assert_eq!(p.sessions.len(), 1);
}

#[test]
fn a_new_connection_on_a_reused_tuple_starts_further_on() {
    // One local port: the second connection reuses the first's tuple.
    let t = tables_with((5000, 5000), |t| t.services[0].servers.truncate(1));
    let mut p = Pipeline::new(t, known_servers(), 64, 42, 0, 1);
    let first = syn(&mut p, CLIENT, ISN_C, 1000);
    let slot = match p.sessions.lookup(
        &FlowKey {
            src: CLIENT,
            dst: VIP,
            proto: 6,
        },
        Millis(1000),
    ) {
        Lookup::Hit(slot, _) => slot,
        other => panic!("{other:?}"),
    };
    p.expire(slot);
    // Another client socket, an ISN lower than the first's: the server
    // still sees a larger one (8 s later: 8000 ms of 15 625 steps).
    let other = Endpoint::new(CLIENT.ip.v4_bits(), 40001);
    let second = syn(&mut p, other, 7, 9000);
    assert_eq!(second.src, first.src, "the same local port");
    assert_eq!(second.seq.wrapping_sub(first.seq), 8000 * 15_625);
}

#[test]
fn two_appliances_with_one_key_number_a_tuple_by_wall_time() {
    // One local port, so both take the same tuple. The two workers started
    // 40 s apart (their `now` differs by that much at one wall time); the
    // ISN clock runs on their common wall clock.
    let t = || tables_with((5000, 5000), |t| t.services[0].servers.truncate(1));
    let secret = [7u8; 16];
    let (mut a, mut b) = (
        Pipeline::new(t(), known_servers(), 64, 1, 0, 1),
        Pipeline::new(t(), known_servers(), 64, 2, 0, 1),
    );
    let start_a = 1_765_000_000_000; // ms since the Unix epoch
    let start_b = start_a + 40_000;
    for (p, start) in [(&mut a, start_a), (&mut b, start_b)] {
        p.set_isn_key(secret);
        p.set_isn_epoch(start);
    }
    // `a` at wall time start_b + 5 s, `b` 3 s later: `b`'s ISN for the
    // same tuple is 3 s of ISN clock further on, whatever each worker's
    // own `now`.
    let wall = start_b + 5_000;
    let first = syn(&mut a, CLIENT, ISN_C, wall - start_a);
    let second = syn(&mut b, CLIENT, 7, wall + 3_000 - start_b);
    assert_eq!(second.src, first.src, "the same tuple");
    assert_eq!(second.seq.wrapping_sub(first.seq), 3_000 * 15_625);
    assert_eq!(
        first.seq,
        IsnKey::from_bytes(secret).isn(first.src, RS1, Millis(wall))
    );
    // Without the shared key, the numbering is unrelated.
    let mut c = Pipeline::new(t(), known_servers(), 64, 3, 0, 1);
    c.set_isn_epoch(start_b);
    let third = syn(&mut c, CLIENT, 7, wall + 3_000 - start_b);
    assert_ne!(third.seq.wrapping_sub(first.seq), 3_000 * 15_625);
}

/// SACK option (NOP, NOP, kind 5) with `blocks`.
fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
    let mut o = vec![1, 1, 5, 2 + 8 * blocks.len() as u8];
    for (l, r) in blocks {
        o.extend_from_slice(&l.to_be_bytes());
        o.extend_from_slice(&r.to_be_bytes());
    }
    o
}

#[test]
fn every_later_segment_moves_by_the_offset_both_ways_sack_included() {
    for long_way in [false, true] {
        let mut p = pipeline();
        p.long_way = long_way;
        let o = syn(&mut p, CLIENT, ISN_C, 1);
        let (local, off) = (o.src, o.seq.wrapping_sub(ISN_C));
        let at = |n: u32| ISN_C.wrapping_add(n);
        // The server's SYN-ACK acknowledges its own numbering.
        let f = seg(
            RS1_MAC,
            RS1,
            local,
            (ISN_S, at(1).wrapping_add(off)),
            tcp::SYN | tcp::ACK,
            &[],
            b"",
        );
        let o = read(&run(&mut p, &f, 0, 2).1);
        assert!(o.checksums_ok);
        assert_eq!((o.dst, o.seq, o.ack), (CLIENT, ISN_S, at(1)));
        // The client's data: its seq forward, its ack untouched.
        let f = seg(
            CLIENT_MAC,
            CLIENT,
            VIP,
            (at(1), ISN_S + 1),
            tcp::ACK | tcp::PSH,
            &[],
            b"GET /",
        );
        let o = read(&run(&mut p, &f, 0, 3).1);
        assert!(o.checksums_ok);
        assert_eq!((o.seq, o.ack), (at(1).wrapping_add(off), ISN_S + 1));
        // The server acknowledges and SACKs: both back.
        let sacked = [(at(100).wrapping_add(off), at(200).wrapping_add(off))];
        let f = seg(
            RS1_MAC,
            RS1,
            local,
            (ISN_S + 1, at(6).wrapping_add(off)),
            tcp::ACK,
            &sack(&sacked),
            b"ok",
        );
        let o = read(&run(&mut p, &f, 0, 4).1);
        assert!(o.checksums_ok, "long way {long_way}");
        assert_eq!(o.ack, at(6));
        assert_eq!(o.options, sack(&[(at(100), at(200))]));
        assert_eq!(o.payload, b"ok");
    }
}

#[test]
fn nat_sessions_keep_the_clients_numbers() {
    let t = tables_with((5000, 5009), |t| {
        t.services[0].servers.truncate(1);
        t.services[0].servers[0].forward = crate::tables::Forward::Nat;
    });
    let mut p = Pipeline::new(t, known_servers(), 64, 42, 0, 1);
    let o = syn(&mut p, CLIENT, ISN_C, 1);
    assert_eq!(
        (o.src, o.seq, o.options.as_slice()),
        (CLIENT, ISN_C, &SYN_OPTS[..])
    );
}

#[test]
fn ipv6_fullnat_moves_both_ways_on_the_one_pass_path() {
    use super::v6_tests::{client, known, rs, v6_tables, vip};
    let mut p = Pipeline::new(
        v6_tables(crate::tables::Forward::FullNat),
        known(),
        64,
        42,
        0,
        1,
    );
    let f = seg(
        CLIENT_MAC,
        client(),
        vip(),
        (ISN_C, 0),
        tcp::SYN,
        &SYN_OPTS,
        b"",
    );
    let o = read(&run(&mut p, &f, 0, 1).1);
    assert!(o.checksums_ok);
    let (local, server, off) = (o.src, o.dst, o.seq.wrapping_sub(ISN_C));
    assert_ne!(off, 0);
    assert!(o.options[6..16].iter().all(|&b| b == 1));
    assert!([rs(1), rs(2)].contains(&server));
    let f = seg(
        RS1_MAC,
        server,
        local,
        (ISN_S, ISN_C.wrapping_add(1 + off)),
        tcp::SYN | tcp::ACK,
        &[],
        b"",
    );
    let o = read(&run(&mut p, &f, 0, 2).1);
    assert!(o.checksums_ok);
    assert_eq!(o.ack, ISN_C.wrapping_add(1));
    let f = seg(
        CLIENT_MAC,
        client(),
        vip(),
        (ISN_C.wrapping_add(1), ISN_S + 1),
        tcp::ACK,
        &[],
        b"x",
    );
    let o = read(&run(&mut p, &f, 0, 3).1);
    assert!(o.checksums_ok);
    assert_eq!(o.seq, ISN_C.wrapping_add(1 + off));
}

#[test]
fn a_backup_applies_the_masters_offset() {
    use crate::sync_feed::SyncRing;
    use crate::sync_policy::SyncPolicy;
    let mut m = pipeline();
    let ring = Arc::new(SyncRing::new(16));
    m.set_sync_feed(Some((Arc::clone(&ring), SyncPolicy::default())));
    let o = syn(&mut m, CLIENT, ISN_C, 1);
    let (local, off) = (o.src, o.seq.wrapping_sub(ISN_C));
    for now in 2..4 {
        let f = seg(
            CLIENT_MAC,
            CLIENT,
            VIP,
            (ISN_C.wrapping_add(1), ISN_S + 1),
            tcp::ACK,
            &[],
            b"",
        );
        run(&mut m, &f, 0, now);
    }
    let r = ring.pop().expect("the session was fed");
    assert_eq!(r.isn_off, off);
    // The backup, another key: its own ISNs would differ; it keeps the master's.
    let mut b = Pipeline::new(
        tables_with((5000, 5009), |t| t.services[0].servers.truncate(1)),
        known_servers(),
        64,
        7,
        0,
        1,
    );
    assert_eq!(
        b.install_synced(&r, Millis(10)),
        super::sync::InstallOutcome::Installed
    );
    let f = seg(
        CLIENT_MAC,
        CLIENT,
        VIP,
        (ISN_C.wrapping_add(9), ISN_S + 1),
        tcp::ACK,
        &[],
        b"more",
    );
    let o = read(&run(&mut b, &f, 0, 11).1);
    assert_eq!(
        (o.src, o.seq),
        (local, ISN_C.wrapping_add(9).wrapping_add(off))
    );
    let f = seg(
        RS1_MAC,
        RS1,
        local,
        (ISN_S + 1, ISN_C.wrapping_add(13).wrapping_add(off)),
        tcp::ACK,
        &[],
        b"",
    );
    let o = read(&run(&mut b, &f, 0, 12).1);
    assert!(o.checksums_ok);
    assert_eq!((o.dst, o.ack), (CLIENT, ISN_C.wrapping_add(13)));
}

/// One segment of a random conversation: direction, seq/ack steps, flags,
/// SACK blocks (relative), payload length.
#[derive(Debug, Clone)]
struct Step {
    inbound: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    blocks: Vec<(u32, u32)>,
    len: usize,
}

fn arb_step() -> impl Strategy<Value = Step> {
    (
        any::<bool>(),
        any::<u32>(),
        any::<u32>(),
        prop_oneof![
            Just(0x10u8),
            Just(0x18),
            Just(0x11),
            Just(0x04),
            Just(0x14),
            any::<u8>()
        ],
        proptest::collection::vec((any::<u32>(), any::<u32>()), 0..4),
        0usize..64,
    )
        .prop_map(|(inbound, seq, ack, flags, blocks, len)| Step {
            inbound,
            seq,
            ack,
            flags: flags & !0x02, // no new SYNs: one session
            blocks,
            len,
        })
}

proptest! {
    // The one-pass path and the long way write the same bytes for the same
    // session and segments, whatever they hold.
    #[test]
    fn the_one_pass_path_agrees_with_the_long_way(isn in any::<u32>(), v6 in any::<bool>(),
                                                  steps in proptest::collection::vec(arb_step(), 1..12)) {
        use super::v6_tests::{client, known, v6_tables, vip};
        let (mut a, mut b, c, v) = if v6 {
            let t = v6_tables(crate::tables::Forward::FullNat);
            (Pipeline::new(Arc::clone(&t), known(), 64, 42, 0, 1),
             Pipeline::new(t, known(), 64, 42, 0, 1), client(), vip())
        } else {
            (pipeline(), pipeline(), CLIENT, VIP)
        };
        b.long_way = true;
        let f = seg(CLIENT_MAC, c, v, (isn, 0), tcp::SYN, &SYN_OPTS, b"");
        let (oa, ob) = (run(&mut a, &f, 0, 1), run(&mut b, &f, 0, 1));
        prop_assert_eq!(&oa, &ob);
        let o = read(&oa.1);
        let (local, server) = (o.src, o.dst);
        for (i, s) in steps.iter().enumerate() {
            let opts = if s.blocks.is_empty() { Vec::new() } else { sack(&s.blocks) };
            let payload = vec![0x5a; s.len];
            let flags = tcp::TcpFlags::from_bits_retain(s.flags);
            let f = if s.inbound {
                seg(CLIENT_MAC, c, v, (s.seq, s.ack), flags, &opts, &payload)
            } else {
                seg(RS1_MAC, server, local, (s.seq, s.ack), flags, &opts, &payload)
            };
            let now = 2 + i as u64;
            let (oa, ob) = (run(&mut a, &f, 0, now), run(&mut b, &f, 0, now));
            prop_assert_eq!(&oa, &ob, "step {}: {:?}", i, s);
            if oa.0 == (Verdict::Forward { port: 0 }) {
                prop_assert!(read(&oa.1).checksums_ok);
            }
        }
    }
}
