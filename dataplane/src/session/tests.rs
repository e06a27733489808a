use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn session(client_port: u16, lport: u16, expires: u64) -> Session {
    Session {
        proto: 6,
        client: Endpoint::new([10, 0, 0, 10], client_port),
        vip: Endpoint::new([10, 0, 0, 100], 80),
        laddr: Endpoint::new([10, 0, 0, 200], lport),
        rs: Endpoint::new([10, 0, 0, 11], 80),
        service: 0,
        rs_index: 0,
        forward: Forward::FullNat,
        laddr_index: 0,
        state: TcpState::SynRecv,
        expires: Millis(expires),
        client_port: 0,
        client_mac: [0; 6],
        rs_port: 0,
        rs_mac: [0; 6],
        client_addr: ClientAddress::None,
        isn_off: 0,
    }
}

#[test]
fn the_read_ahead_candidate_is_the_session_a_lookup_finds() {
    let mut t = SessionTable::new(1024, 7);
    let sessions: Vec<Session> = (0..500)
        .map(|i| session(10_000 + i, 2000 + i, 1000))
        .collect();
    for s in &sessions {
        t.insert(*s).unwrap();
    }
    for s in &sessions {
        for key in [s.client_key(), s.rs_key()] {
            let h = t.hash_of(&key);
            let Lookup::Hit(slot, _) = t.lookup(&key, Millis(0)) else {
                panic!("{key:?} missing")
            };
            // A tag collision is rare (one in 2^32 per entry examined):
            // the first candidate is the session.
            let c = t.candidate(h).expect("a candidate");
            assert!(std::ptr::eq(c, t.hot(slot).unwrap()), "{key:?}");
        }
    }
    let absent = session(9, 9, 1000).client_key();
    assert!(t.candidate(t.hash_of(&absent)).is_none());
}

#[test]
fn the_ipv6_candidate_is_the_session_and_its_addresses() {
    let mut t = SessionTable::new(1024, 7);
    let v6 = |last: u8, port: u16| {
        Endpoint::at(
            Addr::v6([0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]),
            port,
        )
    };
    let sessions: Vec<Session> = (0..300)
        .map(|i| Session {
            client: v6(10, 10_000 + i),
            vip: v6(100, 80),
            laddr: v6(200, 2000 + i),
            rs: v6(11, 80),
            ..session(0, 0, 1000)
        })
        .collect();
    for s in &sessions {
        t.insert(*s).unwrap();
    }
    for s in &sessions {
        for key in [s.client_key(), s.rs_key()] {
            let Lookup::Hit(slot, _) = t.lookup(&key, Millis(0)) else {
                panic!("{key:?} missing")
            };
            let (hot, cold) = t.candidate_v6(t.hash_of(&key)).expect("a candidate");
            assert!(std::ptr::eq(hot, t.hot(slot).unwrap()), "{key:?}");
            let ends = [s.client, s.vip, s.laddr, s.rs];
            assert_eq!(*cold, ends.map(|e| e.ip.0), "{key:?}");
        }
    }
    let absent = Session {
        client: v6(9, 9),
        ..sessions[0]
    };
    assert!(t.candidate_v6(t.hash_of(&absent.client_key())).is_none());
}

#[test]
fn both_keys_find_the_session() {
    let mut t = SessionTable::new(16, 7);
    let s = session(40000, 2000, 1000);
    let id = t.insert(s).unwrap();
    assert_eq!(
        t.lookup(&s.client_key(), Millis(0)),
        Lookup::Hit(id, Direction::Inbound)
    );
    assert_eq!(
        t.lookup(&s.rs_key(), Millis(0)),
        Lookup::Hit(id, Direction::Outbound)
    );
    assert_eq!(t.lookup(&s.client_key(), Millis(1000)), Lookup::Expired(id));
    assert_eq!(t.len(), 1);
    assert_eq!(t.remove(id), Some(s));
    assert_eq!(t.lookup(&s.client_key(), Millis(0)), Lookup::Miss);
    assert!(t.is_empty());
}

#[test]
fn full_table_refuses_and_keeps_existing() {
    let mut t = SessionTable::new(2, 1);
    let a = t.insert(session(1, 1, 10)).unwrap();
    t.insert(session(2, 2, 10)).unwrap();
    assert_eq!(t.insert(session(3, 3, 10)), Err(InsertError::Full));
    assert_eq!(t.len(), 2);
    assert!(
        matches!(t.lookup(&session(1, 1, 10).client_key(), Millis(0)), Lookup::Hit(id, _) if id == a)
    );
}

#[test]
fn duplicate_keys_are_refused() {
    let mut t = SessionTable::new(4, 1);
    t.insert(session(1, 1, 10)).unwrap();
    assert_eq!(t.insert(session(1, 9, 10)), Err(InsertError::Duplicate));
    assert_eq!(t.insert(session(9, 1, 10)), Err(InsertError::Duplicate));
}

#[test]
fn sweep_removes_expired_within_budget() {
    let mut t = SessionTable::new(8, 3);
    for i in 0..8 {
        t.insert(session(i, i, if i % 2 == 0 { 5 } else { 50 }))
            .unwrap();
    }
    let mut seen = 0;
    let removed = t.sweep(Millis(10), 4, |_, _| seen += 1);
    assert_eq!(removed, seen);
    assert!(removed <= 4);
    t.sweep(Millis(10), 8, |_, _| {});
    assert_eq!(t.len(), 4);
    assert!(t.iter().all(|s| s.expires == Millis(50)));
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, u16, u64),
    Remove(u16),
    Sweep(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u16..64, 0u16..64, 1u64..100).prop_map(|(c, l, e)| Op::Insert(c, l, e)),
        (0u16..64).prop_map(Op::Remove),
        (0u64..120).prop_map(Op::Sweep),
    ]
}

proptest! {
    // Insert / remove / sweep behave like a map keyed by the client key with
    // a side index by RS key. Capacity 32 with 64 possible keys exercises
    // "full" as well as probe chains and backward-shift deletion.
    #[test]
    fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..300)) {
        let mut t = SessionTable::new(32, 99);
        let mut model: HashMap<u16, Session> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(c, l, e) => {
                    let s = session(c, l, e);
                    let dup = model.contains_key(&c) || model.values().any(|m| m.laddr.port == l);
                    let r = t.insert(s);
                    if dup {
                        prop_assert_eq!(r, Err(InsertError::Duplicate));
                    } else if model.len() == 32 {
                        prop_assert_eq!(r, Err(InsertError::Full));
                    } else {
                        prop_assert!(r.is_ok());
                        model.insert(c, s);
                    }
                }
                Op::Remove(c) => {
                    let key = session(c, 0, 0).client_key();
                    let found = match t.lookup(&key, Millis(0)) {
                        Lookup::Hit(id, _) | Lookup::Expired(id) => t.remove(id),
                        Lookup::Miss => None,
                    };
                    prop_assert_eq!(found, model.remove(&c));
                }
                Op::Sweep(now) => {
                    let mut gone = Vec::new();
                    t.sweep(Millis(now), 32, |_, s| gone.push(s.client.port));
                    for c in &gone {
                        prop_assert!(model.get(c).is_some_and(|s| s.expires <= Millis(now)));
                        model.remove(c);
                    }
                    // A full-capacity sweep leaves nothing expired behind.
                    prop_assert!(model.values().all(|s| s.expires > Millis(now)));
                }
            }
            prop_assert_eq!(t.len(), model.len());
            for s in model.values() {
                prop_assert!(matches!(t.lookup(&s.client_key(), Millis(0)), Lookup::Hit(_, Direction::Inbound)));
                prop_assert!(matches!(t.lookup(&s.rs_key(), Millis(0)), Lookup::Hit(_, Direction::Outbound)));
            }
        }
    }
}

#[test]
fn rs_only_sessions_answer_replies_but_not_the_client() {
    let mut t = SessionTable::new(4, 7);
    let s = session(40000, 2000, 1000);
    let id = t.insert_rs_only(s).unwrap();
    assert!(t.is_rs_only(id));
    assert_eq!(
        t.lookup(&s.rs_key(), Millis(0)),
        Lookup::Hit(id, Direction::Outbound)
    );
    assert_eq!(
        t.lookup(&s.client_key(), Millis(0)),
        Lookup::Miss,
        "the client's next datagram is scheduled again"
    );
    // The same client flow may have another one-packet session (another port).
    let again = t.insert_rs_only(session(40000, 2001, 1000)).unwrap();
    assert_eq!(t.insert_rs_only(s), Err(InsertError::Duplicate));
    assert_eq!(t.remove(id), Some(s));
    assert!(!t.is_rs_only(id));
    assert_eq!(t.lookup(&s.rs_key(), Millis(0)), Lookup::Miss);
    // The freed slot serves an ordinary session again, under both keys.
    let full = session(40001, 2002, 1000);
    let id2 = t.insert(full).unwrap();
    assert_eq!(
        t.lookup(&full.client_key(), Millis(0)),
        Lookup::Hit(id2, Direction::Inbound)
    );
    assert_eq!(t.len(), 2);
    assert!(t.remove(again).is_some());
}

#[test]
fn the_hot_part_is_one_cache_line() {
    println!(
        "size_of::<SessionHot>() = {} (align {}), size_of::<Session>() = {}, size_of::<SessionExt>() = {}, {:?} per session",
        std::mem::size_of::<SessionHot>(),
        std::mem::align_of::<SessionHot>(),
        std::mem::size_of::<Session>(),
        std::mem::size_of::<SessionExt>(),
        SessionTable::footprint(1),
    );
    assert!(std::mem::size_of::<SessionHot>() <= 64);
    assert_eq!(std::mem::align_of::<SessionHot>(), 64);
    // The ISN offset fills the line's last four bytes, once padding.
    assert_eq!(std::mem::offset_of!(SessionHot, isn_off), 60);
    assert_eq!(std::mem::size_of::<SessionHot>(), 64);
    // Ten million IPv4 sessions in at most 1.25 GiB.
    let f = SessionTable::footprint(10_000_000);
    println!("10 M sessions: {f:?}, {} bytes IPv4", f.ipv4());
    assert!(f.ipv4() <= 5 << 28, "{f:?}");
}

/// An endpoint of either family, from a small space (so keys collide).
fn endpoint() -> impl Strategy<Value = Endpoint> {
    (any::<bool>(), 0u8..4, 0u16..3).prop_map(|(v6, a, port)| {
        let ip = if v6 {
            Addr::v6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a])
        } else {
            Addr::v4([10, 0, 0, a])
        };
        Endpoint::at(ip, port)
    })
}

proptest! {
    // Sessions with any mix of IPv4 and IPv6 endpoints (FULLNAT64 has
    // both) come back whole, and are found by both keys, until removed.
    #[test]
    fn sessions_of_either_family_come_back_whole(
        ends in proptest::collection::vec((endpoint(), endpoint(), endpoint(), endpoint(), any::<bool>()), 1..40),
    ) {
        let mut t = SessionTable::new(64, 5);
        let mut live: Vec<(SlotId, Session)> = Vec::new();
        for (i, (client, vip, laddr, rs, remove)) in ends.into_iter().enumerate() {
            let s = Session {
                client, vip, laddr, rs,
                rs_index: i as u16,
                state: TcpState::Established,
                client_mac: [2, 0, 0, 0, 0, i as u8],
                ..session(0, 0, 1000)
            };
            let Ok(slot) = t.insert(s) else { continue };
            prop_assert_eq!(t.get(slot), Some(s));
            live.push((slot, s));
            if remove {
                let (slot, s) = live.swap_remove(live.len() / 2);
                prop_assert_eq!(t.remove(slot), Some(s));
                prop_assert_eq!(t.lookup(&s.client_key(), Millis(0)), Lookup::Miss);
                prop_assert_eq!(t.lookup(&s.rs_key(), Millis(0)), Lookup::Miss);
            }
            for (slot, s) in &live {
                prop_assert_eq!(t.get(*slot), Some(*s));
                prop_assert_eq!(t.lookup(&s.client_key(), Millis(0)), Lookup::Hit(*slot, Direction::Inbound));
                prop_assert_eq!(t.lookup(&s.rs_key(), Millis(0)), Lookup::Hit(*slot, Direction::Outbound));
                prop_assert_eq!(t.endpoint(*slot, End::Rs), s.rs);
            }
        }
    }
}

#[test]
fn the_client_address_flag_lives_in_padding() {
    // 105 bytes of fields padded to 112 before `client_addr` came; its
    // byte took some of the padding: the session did not grow.
    assert_eq!(std::mem::size_of::<Session>(), 112);
    assert_eq!(std::mem::size_of::<Option<Session>>(), 112);
}

#[test]
fn a_reused_slot_starts_with_a_clean_ext() {
    let mut t = SessionTable::new(1, 7);
    let slot = t.insert(session(1000, 5000, 100)).unwrap();
    let (_, ext) = t.get_with_ext(slot).unwrap();
    ext.to_server = crate::xmit::seq_shift::SeqShift::new(1, 50);
    ext.flags = ext::HEADER_SENT;
    t.remove(slot);
    let slot = t.insert(session(1001, 5001, 100)).unwrap();
    assert_eq!(t.ext(slot), Some(&ext::SessionExt::default()));
}

#[test]
fn pages_list_every_session_once_within_their_bounds() {
    let mut t = SessionTable::new(1000, 7);
    for i in 0..300u16 {
        t.insert(session(10_000 + i, 2000 + i, 1000)).unwrap();
    }
    // Holes: every third session gone.
    let slots: Vec<SlotId> = (0..1000u32)
        .map(SlotId)
        .filter(|s| t.get(*s).is_some())
        .collect();
    for s in slots.iter().step_by(3) {
        t.remove(*s);
    }
    let live: Vec<Session> = t.iter().collect();
    assert_eq!(live.len(), 200);
    for (scan, take) in [(64, 16), (1000, 7), (1, 1), (5000, 5000), (100, 1000)] {
        let (mut out, mut from, mut pages) = (Vec::new(), Some(0), 0);
        while let Some(f) = from {
            let before = out.len();
            from = t.page(f, scan, take, &mut out);
            assert!(out.len() - before <= take, "page over its take");
            if let Some(next) = from {
                assert!(next > f && next - f <= scan, "cursor {f} -> {next}");
            }
            pages += 1;
            assert!(pages <= 2000, "paging does not end");
        }
        assert_eq!(out, live, "scan {scan}, take {take}");
    }
    let empty = SessionTable::new(10, 7);
    let mut out = Vec::new();
    assert_eq!(empty.page(0, 4, 4, &mut out), Some(4));
    assert_eq!(empty.page(8, 4, 4, &mut out), None);
    assert!(out.is_empty());
}

proptest! {
    /// The describing stage hashes a packet's key from its header fields
    /// (`hash_parts`, addresses folded); the table files it by the key's own
    /// hash: the two must agree for every key of either family.
    #[test]
    fn the_hash_from_parts_is_the_keys_hash(
        seed in any::<u64>(),
        v4 in any::<bool>(),
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        sport in any::<u16>(),
        dport in any::<u16>(),
        proto in any::<u8>(),
    ) {
        let t = SessionTable::new(64, seed);
        let (s4, d4) = ([src[0], src[1], src[2], src[3]], [dst[0], dst[1], dst[2], dst[3]]);
        let (key, folds) = if v4 {
            (
                FlowKey {
                    src: Endpoint::new(s4, sport),
                    dst: Endpoint::new(d4, dport),
                    proto,
                },
                (Addr::fold_v4(s4), Addr::fold_v4(d4)),
            )
        } else {
            (
                FlowKey {
                    src: Endpoint::at(Addr::v6(src), sport),
                    dst: Endpoint::at(Addr::v6(dst), dport),
                    proto,
                },
                (Addr::fold_bytes(&src), Addr::fold_bytes(&dst)),
            )
        };
        prop_assert_eq!(t.hash_parts(folds.0, folds.1, sport, dport, proto), t.hash_of(&key));
    }
}

proptest! {
    // The burst's two-step insert (`insert_client_key` once the client key's
    // lookup has missed, then `file_rs_key`, `remove_unfiled` when that
    // fails) leaves the table as one `insert` does: the same outcome (but
    // which error, when the table is full too), slot and lookups of both
    // keys.
    #[test]
    fn the_two_step_insert_is_an_insert(
        ops in proptest::collection::vec((0u16..48, 0u16..48, 1u64..100, any::<bool>()), 1..200)
    ) {
        let (mut whole, mut steps) = (SessionTable::new(24, 5), SessionTable::new(24, 5));
        for (c, l, e, remove) in ops {
            let s = session(c, l, e);
            let (ck, rk) = (s.client_key(), s.rs_key());
            if let Lookup::Hit(id, Direction::Inbound) = steps.lookup(&ck, Millis(0)) {
                if remove {
                    prop_assert_eq!(whole.remove(id), steps.remove(id));
                }
                continue;
            }
            let (hc, hr) = (steps.hash_of(&ck), steps.hash_of(&rk));
            let want = whole.insert(s);
            let got = match steps.insert_client_key(s, hc, hr) {
                Ok(slot) => match steps.file_rs_key(slot, &rk, hr) {
                    Ok(()) => Ok(slot),
                    Err(err) => {
                        prop_assert_eq!(steps.remove_unfiled(slot), Some(s));
                        Err(err)
                    }
                },
                Err(err) => Err(err),
            };
            match (got, want) {
                // No slot for it: the two steps do not reach the RS key
                // (either error drops the packet alike).
                (Err(InsertError::Full), Err(InsertError::Duplicate)) => {
                    prop_assert_eq!(whole.len(), whole.capacity());
                }
                (got, want) => prop_assert_eq!(got, want),
            }
            prop_assert_eq!(steps.len(), whole.len());
            for key in [ck, rk] {
                prop_assert_eq!(steps.lookup(&key, Millis(0)), whole.lookup(&key, Millis(0)));
            }
        }
    }
}

/// What a table is asked to do between a lookup made ahead and its use.
#[derive(Debug, Clone)]
enum Change {
    Insert(u16, u16, u64),
    TwoStep(u16, u16, u64),
    RsOnly(u16, u16, u64),
    Remove(u16),
    Sweep(u64),
    Nothing,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0u16..32, 0u16..32, 1u64..100).prop_map(|(c, l, e)| Change::Insert(c, l, e)),
        (0u16..32, 0u16..32, 1u64..100).prop_map(|(c, l, e)| Change::TwoStep(c, l, e)),
        (0u16..32, 0u16..32, 1u64..100).prop_map(|(c, l, e)| Change::RsOnly(c, l, e)),
        (0u16..32).prop_map(Change::Remove),
        (0u64..120).prop_map(Change::Sweep),
        Just(Change::Nothing),
    ]
}

proptest! {
    // A lookup made ahead (the worker's lookup stage) and used after any
    // change of the table (or none) answers as a lookup made then: every
    // client and RS key of the test's space, looked up ahead before each
    // change, then at a time before and after their expiry.
    #[test]
    fn a_lookup_made_ahead_answers_as_one_made_now(
        changes in proptest::collection::vec(change(), 1..150)
    ) {
        let mut t = SessionTable::new(16, 7);
        let keys: Vec<FlowKey> = (0u16..32)
            .flat_map(|p| [session(p, 0, 0).client_key(), session(0, p, 0).rs_key()])
            .collect();
        for c in changes {
            let ahead: Vec<Ahead> = keys.iter().map(|k| t.look_ahead(k, t.hash_of(k))).collect();
            match c {
                Change::Insert(c, l, e) => {
                    let _ = t.insert(session(c, l, e));
                }
                Change::TwoStep(c, l, e) => {
                    let s = session(c, l, e);
                    let (ck, rk) = (s.client_key(), s.rs_key());
                    let (hc, hr) = (t.hash_of(&ck), t.hash_of(&rk));
                    if t.find_both(&ck, hc).is_none() {
                        if let Ok(slot) = t.insert_client_key(s, hc, hr) {
                            if t.file_rs_key(slot, &rk, hr).is_err() {
                                t.remove_unfiled(slot);
                            }
                        }
                    }
                }
                Change::RsOnly(c, l, e) => {
                    let _ = t.insert_rs_only(session(c, l, e));
                }
                Change::Remove(c) => {
                    if let Lookup::Hit(id, _) | Lookup::Expired(id) =
                        t.lookup(&session(c, 0, 0).client_key(), Millis(0))
                    {
                        t.remove(id);
                    }
                }
                Change::Sweep(now) => {
                    t.sweep(Millis(now), 8, |_, _| {});
                }
                Change::Nothing => {}
            }
            for (k, a) in keys.iter().zip(&ahead) {
                let h = t.hash_of(k);
                for now in [Millis(0), Millis(50)] {
                    prop_assert_eq!(t.lookup_ahead(k, h, *a, now), t.lookup_hashed(k, h, now));
                }
            }
        }
    }
}

#[test]
fn a_hit_made_ahead_outlives_inserts_and_a_miss_outlives_removals() {
    let mut t = SessionTable::new(16, 7);
    let s = session(1, 1, 100);
    let k = s.client_key();
    let h = t.hash_of(&k);
    let before = t.look_ahead(&k, h);
    assert_eq!(before.payload, Ahead::MISS);
    let slot = t.insert(s).unwrap();
    // Stale: looked up again, the session is found.
    assert_eq!(
        t.lookup_ahead(&k, h, before, Millis(0)),
        Lookup::Hit(slot, Direction::Inbound)
    );
    let now = t.look_ahead(&k, h);
    assert_eq!(now.stamp, t.taken);
    assert_eq!(now.payload, SessionTable::pack(slot.0, Direction::Inbound));
    assert_eq!(
        t.lookup_ahead(&k, h, Ahead::NONE, Millis(0)),
        Lookup::Hit(slot, Direction::Inbound)
    );
    // A hit stays valid while sessions are only added...
    t.insert(session(2, 2, 100)).unwrap();
    assert_eq!(now.stamp, t.taken);
    assert_eq!(
        t.lookup_ahead(&k, h, now, Millis(0)),
        Lookup::Hit(slot, Direction::Inbound)
    );
    // ...a miss does not.
    let other = session(3, 3, 100).client_key();
    let missed = t.look_ahead(&other, t.hash_of(&other));
    let third = t.insert(session(3, 3, 100)).unwrap();
    assert_ne!(missed.stamp, t.filed);
    assert_eq!(
        t.lookup_ahead(&other, t.hash_of(&other), missed, Millis(0)),
        Lookup::Hit(third, Direction::Inbound)
    );
    // A removal makes a hit stale.
    t.remove(slot).unwrap();
    assert_ne!(now.stamp, t.taken);
    assert_eq!(t.lookup_ahead(&k, h, now, Millis(0)), Lookup::Miss);
}
