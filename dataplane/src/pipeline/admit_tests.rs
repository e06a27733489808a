//! ACL and limit scenarios through the whole pipeline: a denied client's
//! SYN makes no session, an allowed one does; the limits refuse the
//! connection past them and count; an edit never cuts a session.

use super::tests::{known_servers, tables_with, tcp_frame, CLIENT_MAC, VIP};
use super::*;
use crate::acl::{Acl, Action, Prefix, Rule};
use crate::limits::Limits;
use crate::tables::Service;

fn syn(p: &mut Pipeline, client: [u8; 4], port: u16, now: u64) -> Verdict {
    let mut f = tcp_frame(CLIENT_MAC, Endpoint::new(client, port), VIP, tcp::SYN, b"");
    p.process(&mut f, 0, Millis(now))
}

fn rule(action: Action, a: [u8; 4], len: u8, counter: u16) -> Rule {
    Rule {
        action,
        prefix: Prefix::new(Addr::v4(a), len).unwrap(),
        counter,
    }
}

fn pipeline(edit: impl FnOnce(&mut Service)) -> Pipeline {
    let t = tables_with((5000, 6000), |t| edit(&mut t.services[0]));
    Pipeline::new(t, known_servers(), 256, 42, 0, 1)
}

#[test]
fn the_first_matching_rule_decides_and_counts() {
    let mut p = pipeline(|s| {
        s.acl = Acl {
            rules: vec![
                rule(Action::Allow, [10, 77, 0, 9], 32, 7),
                rule(Action::Deny, [10, 77, 0, 0], 24, 8),
            ],
        };
    });
    assert_eq!(
        syn(&mut p, [10, 77, 0, 9], 1000, 1),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        syn(&mut p, [10, 77, 0, 10], 1000, 1),
        Verdict::Drop(DropReason::AclDeny)
    );
    assert_eq!(
        syn(&mut p, [192, 0, 2, 1], 1000, 1),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(p.sessions().len(), 2, "no session for the denied client");
    assert_eq!((p.access_hits()[7], p.access_hits()[8]), (1, 1));
    assert_eq!(p.counters.drops[DropReason::AclDeny as usize], 1);
}

#[test]
fn an_edit_denying_a_client_keeps_its_session() {
    let mut p = pipeline(|_| {});
    let c = Endpoint::new([10, 77, 0, 9], 1000);
    assert_eq!(
        syn(&mut p, c.ip.v4_bits(), c.port, 1),
        Verdict::Forward { port: 0 }
    );
    let deny = tables_with((5000, 6000), |t| {
        t.services[0].acl.rules = vec![rule(Action::Deny, [0, 0, 0, 0], 0, 0)];
    });
    p.set_tables(deny);
    let mut f = tcp_frame(CLIENT_MAC, c, VIP, tcp::ACK, b"more");
    assert_eq!(
        p.process(&mut f, 0, Millis(2)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        syn(&mut p, c.ip.v4_bits(), 1001, 2),
        Verdict::Drop(DropReason::AclDeny)
    );
}

#[test]
fn limits_refuse_past_them_and_room_comes_back() {
    let mut p = pipeline(|s| {
        s.limits = Limits {
            max_conns: 3,
            max_conns_per_client: 2,
            client_prefix_v4: 24,
            counters: [0, 1, 2, 3],
            ..Limits::default()
        };
    });
    assert_eq!(
        syn(&mut p, [10, 77, 0, 9], 1000, 1),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        syn(&mut p, [10, 77, 0, 10], 1000, 1),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        syn(&mut p, [10, 77, 0, 21], 1000, 1),
        Verdict::Drop(DropReason::ClientConnLimit),
        "a third from the /24"
    );
    assert_eq!(
        syn(&mut p, [192, 0, 2, 1], 1000, 1),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        syn(&mut p, [198, 51, 100, 1], 1000, 1),
        Verdict::Drop(DropReason::ConnLimit),
        "a fourth to the service"
    );
    assert_eq!(&p.access_hits()[..3], &[1, 1, 0]);
    // The half-open sessions time out (SYN_RECV, 60 s): room again.
    p.housekeeping(Millis(200_000), 1024);
    assert_eq!(p.sessions().len(), 0);
    assert_eq!(
        syn(&mut p, [10, 77, 0, 21], 1000, 200_001),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        syn(&mut p, [10, 77, 0, 22], 1000, 200_001),
        Verdict::Forward { port: 0 }
    );
}

#[test]
fn the_rate_limit_refuses_the_burst_overflow() {
    let mut p = pipeline(|s| {
        s.limits = Limits {
            rate: 2,
            burst: 2,
            counters: [0, 1, 2, 3],
            ..Limits::default()
        };
    });
    let c = [10, 77, 0, 9];
    assert_eq!(syn(&mut p, c, 1000, 10), Verdict::Forward { port: 0 });
    assert_eq!(syn(&mut p, c, 1001, 10), Verdict::Forward { port: 0 });
    assert_eq!(
        syn(&mut p, c, 1002, 10),
        Verdict::Drop(DropReason::ClientRateLimit)
    );
    assert_eq!(
        syn(&mut p, [10, 77, 0, 10], 1000, 10),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(
        syn(&mut p, c, 1003, 510),
        Verdict::Forward { port: 0 },
        "half a second: one token"
    );
    assert_eq!(p.access_hits()[2], 1);
}
