//! A new connection held for its next hop's MAC keeps the decision made for
//! it: released, it is not scheduled a second time (issue #17), and what
//! the decision borrowed goes back when it is not used.

use std::sync::Arc;

use super::tests::{eth, known_servers, tables_with, CLIENT, CLIENT_MAC, LB_MAC, RS1, RS2, VIP};
use super::*;
use crate::neigh::{NeighEntry, NeighMap};
use crate::xmit::rewrite::tests::tcp_packet;

fn syn(cport: u16) -> Vec<u8> {
    eth(
        LB_MAC,
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp_packet(Endpoint::at(CLIENT.ip, cport), VIP, tcp::SYN, b""),
    )
}

/// The IPv4 destination of a frame.
fn dst_of(f: &[u8]) -> Endpoint {
    let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
    let t = tcp::Packet::new_checked(ip.payload()).unwrap();
    Endpoint::new(ip.dst(), t.dst_port())
}

/// Round robin over rs1, rs2 with nothing resolved yet.
fn unresolved() -> Pipeline {
    Pipeline::new(
        tables_with((5000, 5099), |_| {}),
        Arc::default(),
        64,
        42,
        0,
        1,
    )
}

#[test]
fn a_released_syn_goes_to_the_server_it_was_held_for() {
    let mut p = unresolved();
    let mut first = syn(40000);
    let Verdict::Hold { next_hop, decision } = p.process(&mut first, 0, Millis(1)) else {
        panic!("the first SYN waits for rs1's MAC");
    };
    assert_eq!((next_hop, decision.rs_index()), (RS1.ip, 0));
    p.set_neigh(known_servers());
    assert_eq!(
        p.process_held(&mut first, 0, decision, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    let mut seen = vec![dst_of(&first)];
    for cport in 40001..40006 {
        let mut f = syn(cport);
        assert_eq!(
            p.process(&mut f, 0, Millis(3)),
            Verdict::Forward { port: 0 }
        );
        seen.push(dst_of(&f));
    }
    assert_eq!(
        seen,
        vec![RS1, RS2, RS1, RS2, RS1, RS2],
        "rr goes on from the held decision, not from a second pick"
    );
    assert_eq!(p.counters.sessions_created, 6);
    assert_eq!(p.counters.rx_packets, 6, "a released frame is counted once");
    assert_eq!(
        p.pools()[0].size() - p.pools()[0].available(),
        6,
        "one local port per session, none left over"
    );
}

/// The client retransmits its SYN while the first one still waits: the
/// retransmission is dropped (the held one goes when the MAC comes), not
/// scheduled again, so rr goes on from the one decision (the kernel has
/// the connection by then and never schedules it twice).
#[test]
fn a_syn_retransmitted_while_held_is_not_scheduled_again() {
    let mut p = unresolved();
    let (mut a, mut b) = (syn(40000), syn(40000));
    let Verdict::Hold { decision: da, .. } = p.process(&mut a, 0, Millis(1)) else {
        panic!("held");
    };
    assert_eq!(
        p.process(&mut b, 0, Millis(1001)),
        Verdict::Drop(DropReason::NeighbourMiss),
        "the retransmission is not held nor scheduled"
    );
    assert_eq!(p.pools()[0].size() - p.pools()[0].available(), 1);
    p.set_neigh(known_servers());
    assert_eq!(
        p.process_held(&mut a, 0, da, Millis(1002)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(dst_of(&a), RS1);
    // A later retransmission follows the session.
    let mut c = syn(40000);
    assert_eq!(
        p.process(&mut c, 0, Millis(2001)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(dst_of(&c), RS1, "the retransmission follows the session");
    assert_eq!(p.sessions().len(), 1);
    let created: u64 = p.rs_conns().iter().map(|c| c.created).sum();
    assert_eq!(created, 1, "scheduled once (ipvsadm's Conns)");
    // The next connection: rr's next server.
    let mut d = syn(40001);
    assert_eq!(
        p.process(&mut d, 0, Millis(2002)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(dst_of(&d), RS2, "rr moved on once for the held connection");
    // A flow held long ago is scheduled anew (its hold expired).
    p.set_neigh(Arc::default());
    let mut e = syn(40002);
    let Verdict::Hold { decision: de, .. } = p.process(&mut e, 0, Millis(3000)) else {
        panic!("held");
    };
    p.abandon(de);
    let mut e2 = syn(40002);
    assert!(matches!(
        p.process(&mut e2, 0, Millis(6001)),
        Verdict::Hold { .. }
    ));
}

#[test]
fn a_decision_the_tables_no_longer_allow_is_given_back_and_made_again() {
    let mut p = unresolved();
    let mut f = syn(40000);
    let Verdict::Hold { decision, .. } = p.process(&mut f, 0, Millis(1)) else {
        panic!("held");
    };
    assert_eq!(decision.rs_index(), 0);
    // rs1 leaves the service while the frame waits.
    p.set_tables(tables_with((5000, 5099), |t| {
        t.services[0].servers.remove(0);
        t.generation += 1;
    }));
    p.set_neigh(Arc::new(NeighMap::new(vec![NeighEntry {
        ip: RS2.ip,
        mac: [2, 0, 0, 0, 0, 0x12],
        port: 0,
    }])));
    assert_eq!(
        p.process_held(&mut f, 0, decision, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(dst_of(&f), RS2);
    assert_eq!(
        p.pools()[0].size() - p.pools()[0].available(),
        1,
        "the stale decision's port went back"
    );
}
