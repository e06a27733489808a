//! Flood-guard scenarios: a SYN flood fills the table or the port pool;
//! half-open sessions give way to new connections, established ones keep
//! their place, and half-open sessions get short timeouts while it lasts.

use super::tests::{ready, tcp_frame, CLIENT, CLIENT_MAC, RS1, RS1_MAC, VIP};
use super::*;
use crate::guard::GuardConfig;

fn syn_from(p: &mut Pipeline, last: u8, port: u16, now: u64) -> Verdict {
    let mut f = tcp_frame(
        CLIENT_MAC,
        Endpoint::new([10, 77, 0, last], port),
        VIP,
        tcp::SYN,
        b"",
    );
    p.process(&mut f, 0, Millis(now))
}

/// Opens CLIENT:40000 through to ESTABLISHED; returns the local endpoint.
fn establish(p: &mut Pipeline) -> Endpoint {
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::SYN, b"");
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Forward { port: 0 }
    );
    let e = ethernet::Frame::new_checked(&f[..]).unwrap();
    let ip = ipv4::Packet::new_checked(e.payload()).unwrap();
    let t = tcp::Packet::new_checked(ip.payload()).unwrap();
    let laddr = Endpoint::new(ip.src(), t.src_port());
    for mut f in [
        tcp_frame(RS1_MAC, RS1, laddr, tcp::SYN | tcp::ACK, b""),
        tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b""),
    ] {
        assert_eq!(
            p.process(&mut f, 0, Millis(1)),
            Verdict::Forward { port: 0 }
        );
    }
    laddr
}

fn states(p: &Pipeline) -> Vec<TcpState> {
    p.sessions().iter().map(|s| s.state).collect()
}

#[test]
fn a_full_table_evicts_a_half_open_session_not_the_established_one() {
    let mut p = ready((5000, 6000), 4);
    let laddr = establish(&mut p);
    for i in 0..3 {
        assert_eq!(
            syn_from(&mut p, 50 + i, 1000, 2),
            Verdict::Forward { port: 0 }
        );
    }
    assert_eq!(p.sessions().len(), 4);
    // A fifth connection, 3 s later: one of the three half-open sessions
    // (old enough: half the 5 s half-open timeout) goes.
    assert_eq!(
        syn_from(&mut p, 60, 1000, 3000),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(p.flood_guard().counters.half_open_evicted, 1);
    assert_eq!(p.counters.sessions_expired, 1);
    let st = states(&p);
    assert_eq!(
        st.iter().filter(|s| **s == TcpState::Established).count(),
        1,
        "{st:?}"
    );
    assert_eq!(p.sessions().len(), 4);
    // The established connection carries on both ways.
    let mut f = tcp_frame(CLIENT_MAC, CLIENT, VIP, tcp::ACK, b"data");
    assert_eq!(
        p.process(&mut f, 0, Millis(3001)),
        Verdict::Forward { port: 0 }
    );
    let mut f = tcp_frame(RS1_MAC, RS1, laddr, tcp::ACK, b"data");
    assert_eq!(
        p.process(&mut f, 0, Millis(3001)),
        Verdict::Forward { port: 0 }
    );
    assert!(
        p.flood_guard().is_on(),
        "a full table is above the high-water mark"
    );
}

#[test]
fn without_the_guard_a_full_table_refuses() {
    let mut p = ready((5000, 6000), 2);
    p.set_flood_guard(GuardConfig {
        enabled: false,
        ..GuardConfig::default()
    });
    assert_eq!(syn_from(&mut p, 50, 1000, 1), Verdict::Forward { port: 0 });
    assert_eq!(syn_from(&mut p, 51, 1000, 1), Verdict::Forward { port: 0 });
    assert_eq!(
        syn_from(&mut p, 52, 1000, 1),
        Verdict::Drop(DropReason::SessionTableFull)
    );
    assert_eq!(p.flood_guard().counters, Default::default());
}

#[test]
fn an_exhausted_port_pool_lends_a_half_open_sessions_port() {
    // Two local ports, a big table: the pool runs out first.
    let mut p = ready((5000, 5001), 64);
    establish(&mut p);
    assert_eq!(syn_from(&mut p, 50, 1000, 2), Verdict::Forward { port: 0 });
    assert_eq!(p.pools()[0].available(), 0);
    // Too young to give way yet (a real handshake may be under way).
    assert_eq!(
        syn_from(&mut p, 51, 1000, 2001),
        Verdict::Drop(DropReason::PortExhausted)
    );
    assert_eq!(
        syn_from(&mut p, 51, 1000, 2502),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(p.flood_guard().counters.half_open_evicted, 1);
    let clients: Vec<_> = p.sessions().iter().map(|s| s.client.ip).collect();
    assert!(
        clients.contains(&CLIENT.ip),
        "the established session stays"
    );
    assert!(clients.contains(&Addr::v4([10, 77, 0, 51])));
    assert!(!clients.contains(&Addr::v4([10, 77, 0, 50])));
    // The newcomer completes its handshake (the client's ACK establishes,
    // as in IPVS): only established sessions hold ports, and a new
    // connection is refused.
    let mut f = tcp_frame(
        CLIENT_MAC,
        Endpoint::new([10, 77, 0, 51], 1000),
        VIP,
        tcp::ACK,
        b"",
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(2503)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        syn_from(&mut p, 52, 1000, 9000),
        Verdict::Drop(DropReason::PortExhausted)
    );
    assert_eq!(p.flood_guard().counters.half_open_evicted, 1);
}

#[test]
fn a_new_session_rate_above_the_limit_shortens_half_open_timeouts() {
    let mut p = ready((5000, 6000), 64);
    p.set_flood_guard(GuardConfig {
        new_session_rate: 3,
        half_open_timeout_secs: 2,
        ..GuardConfig::default()
    });
    let syn_recv = p.tables().timeouts.tcp(TcpState::SynRecv);
    assert!(syn_recv > 2);
    for i in 0..4 {
        assert_eq!(
            syn_from(&mut p, 50 + i, 1000, 10),
            Verdict::Forward { port: 0 }
        );
    }
    // The fourth went over the rate: the guard is on for the next ones.
    assert!(!p.flood_guard().is_on());
    assert_eq!(syn_from(&mut p, 60, 1000, 20), Verdict::Forward { port: 0 });
    assert!(p.flood_guard().is_on());
    let s = p
        .sessions()
        .iter()
        .find(|s| s.client.ip == Addr::v4([10, 77, 0, 60]))
        .unwrap();
    assert_eq!(s.state, TcpState::SynRecv);
    assert_eq!(s.expires, Millis(20).plus_secs(2));
    let early = p
        .sessions()
        .iter()
        .find(|s| s.client.ip == Addr::v4([10, 77, 0, 50]))
        .unwrap();
    assert_eq!(early.expires, Millis(10).plus_secs(syn_recv));
    assert_eq!(p.flood_guard().counters.half_open_short, 1);
    assert_eq!(p.flood_guard().counters.on, 1);
    // Quiet for two windows: off again; half-open sessions get the full timeout.
    p.housekeeping(Millis(1100), 0);
    p.housekeeping(Millis(2200), 0);
    assert!(!p.flood_guard().is_on());
    assert_eq!(
        syn_from(&mut p, 61, 1000, 2300),
        Verdict::Forward { port: 0 }
    );
    let late = p
        .sessions()
        .iter()
        .find(|s| s.client.ip == Addr::v4([10, 77, 0, 61]))
        .unwrap();
    assert_eq!(late.expires, Millis(2300).plus_secs(syn_recv));
}

#[test]
fn the_oldest_half_open_session_goes_first() {
    let mut p = ready((5000, 6000), 3);
    // Slots are reused last-freed-first, so the order in the table is not
    // the order of arrival: .52 arrives first here but is not in slot 0.
    for (i, last) in [52u8, 50, 51].into_iter().enumerate() {
        assert_eq!(
            syn_from(&mut p, last, 1000, 10 + i as u64),
            Verdict::Forward { port: 0 }
        );
    }
    assert_eq!(
        syn_from(&mut p, 60, 1000, 4000),
        Verdict::Forward { port: 0 }
    );
    let mut clients: Vec<_> = p.sessions().iter().map(|s| s.client.ip).collect();
    clients.sort_unstable();
    assert_eq!(
        clients,
        [50u8, 51, 60].map(|l| Addr::v4([10, 77, 0, l])).to_vec(),
        "the first to arrive was evicted"
    );
}

#[test]
fn eviction_finds_the_few_port_holders_of_a_big_table() {
    // Two ports, 4096 slots: the sessions holding ports sit in the lowest
    // slots, and every new SYN of a flood must find one to evict.
    let mut p = ready((5000, 5001), 4096);
    for i in 0..200u16 {
        assert_eq!(
            syn_from(&mut p, 50, 1000 + i, u64::from(i) * 1500),
            Verdict::Forward { port: 0 },
            "SYN {i}"
        );
    }
    assert_eq!(p.flood_guard().counters.half_open_evicted, 198);
    assert_eq!(p.sessions().len(), 2);
}
