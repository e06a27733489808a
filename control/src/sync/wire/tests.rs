use super::*;
use proptest::prelude::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tcp(client: &str, vip: &str, dest: &str) -> Conn {
    Conn {
        protocol: 6,
        flags: flags::MASQ,
        state: 1,
        client: sa(client),
        vip: sa(vip),
        dest: sa(dest),
        fwmark: 0,
        timeout_s: 900,
        seq: None,
        pe: None,
        local: None,
        session: None,
        syn_proxy: None,
        carried: false,
        isn_off: 0,
    }
}

/// The kernel's `struct ip_vs_sync_v4` laid out by hand, field by field.
#[test]
fn an_ipv4_entry_is_the_kernels_layout_byte_for_byte() {
    let mut b = MessageBuilder::new(7, 1444);
    let mut c = tcp("10.77.0.10:40000", "10.77.0.100:80", "10.77.0.11:8080");
    c.flags = flags::DROUTE | flags::INACTIVE;
    c.state = 3; // SYN_RECV
    c.fwmark = 0x0102_0304;
    b.push(&c).unwrap();
    let got = b.take().unwrap();
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        0, 7, 0, 44, 1, 1, 0, 0,                 // header: reserved, syncid 7, size 44, 1 conn, v1
        0, 6, 0x00, 36,                          // type v4, TCP, version 0 | size 36
        0, 0, 0x01, 0x03,                        // flags INACTIVE | DROUTE
        0, 3,                                    // state
        0x9c, 0x40, 0, 80, 0x1f, 0x90,           // cport 40000, vport 80, dport 8080
        1, 2, 3, 4,                              // fwmark
        0, 0, 0x03, 0x84,                        // timeout 900
        10, 77, 0, 10, 10, 77, 0, 100, 10, 77, 0, 11,
    ];
    assert_eq!(got, want);
    assert_eq!(parse(&got).unwrap().conns, vec![c]);
}

#[test]
fn entries_after_the_first_start_on_four_bytes_and_the_message_stays_under_maxlen() {
    let mut b = MessageBuilder::new(1, sync_maxlen(Role::Master, None, 1500, false));
    let mut c = tcp("10.0.0.1:1", "10.0.0.2:80", "10.0.0.3:80");
    // PE name of 3 bytes: the entry is 36 + 5 = 41 bytes, so the next one pads 3.
    c.pe = Some((b"sip".to_vec(), Vec::new()));
    let mut sent = Vec::new();
    for i in 0..100u16 {
        c.client.set_port(i);
        match b.push(&c) {
            Ok(()) => {}
            Err(PushError::Full) => {
                sent.push(b.take().unwrap());
                b.push(&c).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    sent.extend(b.take());
    let mut ports = Vec::new();
    for d in &sent {
        assert!(d.len() <= 1472, "{} > maxlen", d.len());
        let m = parse(d).unwrap();
        assert_eq!(m.sync_id, 1);
        assert_eq!(usize::from(d[4]), m.conns.len());
        ports.extend(m.conns.iter().map(|c| c.client.port()));
    }
    assert_eq!(ports, (0..100).collect::<Vec<_>>());
    // 44 bytes per entry with its padding: 33 fit in 1472 - 8 (the last unpadded).
    assert_eq!(parse(&sent[0]).unwrap().conns.len(), 33);
    assert_eq!(&sent[0][8 + 41..8 + 44], &[0, 0, 0]);
    assert_eq!(sent.len(), 4);
}

#[test]
fn the_kernels_sync_maxlen() {
    // A master sends 1500-byte packets whatever the MTU; a backup reads up
    // to its interface's MTU.
    assert_eq!(sync_maxlen(Role::Master, None, 9000, false), 1472);
    assert_eq!(sync_maxlen(Role::Master, None, 1500, true), 1452);
    assert_eq!(sync_maxlen(Role::Backup, None, 9000, false), 8972);
    assert_eq!(sync_maxlen(Role::Backup, None, 1400, false), 1472);
    // --sync-maxlen is clamped; a backup reads at least 1024.
    assert_eq!(sync_maxlen(Role::Master, Some(100), 1500, false), 100);
    assert_eq!(sync_maxlen(Role::Backup, Some(100), 1500, false), 1024);
    assert_eq!(sync_maxlen(Role::Master, Some(65535), 1500, false), 65507);
}

#[test]
fn an_unknown_mandatory_option_skips_its_entry_and_an_optional_one_is_ignored() {
    let mut b = MessageBuilder::new(0, 1444);
    b.push(&tcp("10.0.0.1:1", "10.0.0.2:80", "10.0.0.3:80"))
        .unwrap();
    let mut d = b.take().unwrap();
    // Append a 4-byte option to the one entry and fix both sizes.
    let with = |d: &mut Vec<u8>, kind: u8| {
        d.extend_from_slice(&[kind, 2, 0xaa, 0xbb]);
        let n = d.len() as u16;
        d[2..4].copy_from_slice(&n.to_be_bytes());
        let e = (d.len() - 8) as u16;
        d[10..12].copy_from_slice(&e.to_be_bytes());
    };
    let mut skip = d.clone();
    with(&mut skip, OPT_F_PARAM | 9);
    assert_eq!(parse(&skip).unwrap().conns.len(), 1);
    with(&mut d, 9);
    let m = parse(&d).unwrap();
    assert!(m.conns.is_empty());
    assert_eq!(m.skipped, vec![WireError::UnknownOption(0, 9)]);
}

#[test]
fn malformed_datagrams_are_refused_with_a_reason() {
    let mut b = MessageBuilder::new(0, 1444);
    b.push(&tcp("10.0.0.1:1", "10.0.0.2:80", "10.0.0.3:80"))
        .unwrap();
    let d = b.take().unwrap();
    assert_eq!(parse(&d[..5]), Err(WireError::Short(5)));
    let mut v0 = d.clone();
    v0[0] = 1;
    assert_eq!(parse(&v0), Err(WireError::Version0(1)));
    let mut v2 = d.clone();
    v2[5] = 2;
    assert_eq!(parse(&v2), Err(WireError::Version(2)));
    let mut long = d.clone();
    long.push(0);
    assert!(matches!(parse(&long), Err(WireError::Size { .. })));
    let mut two = d.clone();
    two[4] = 2;
    assert_eq!(
        parse(&two),
        Err(WireError::Count {
            header: 2,
            found: 1
        })
    );
    let mut ver = d.clone();
    ver[10] |= 0x10;
    assert_eq!(parse(&ver), Err(WireError::EntryVersion(0, 1)));
    let mut over = d.clone();
    over[11] = 40;
    assert_eq!(parse(&over), Err(WireError::Truncated(0)));
    // Found by scripts/fuzz: an entry whose size is 0 (or below its fixed
    // part) drops the datagram, as the kernel's -20.
    for size in [0u8, 4, 35] {
        let mut tiny = d.clone();
        tiny[11] = size;
        assert_eq!(
            parse(&tiny),
            Err(WireError::EntryShort(0, usize::from(size)))
        );
    }
}

#[test]
fn entries_of_unknown_protocols_or_states_are_skipped_alone() {
    let mut b = MessageBuilder::new(0, 1444);
    let good = tcp("10.0.0.1:1", "10.0.0.2:80", "10.0.0.3:80");
    let mut bad_state = good.clone();
    bad_state.state = 11;
    let mut udp_state = good.clone();
    udp_state.protocol = 17;
    let mut icmp = good.clone();
    icmp.protocol = 1;
    let mut template = icmp.clone();
    template.flags = flags::TEMPLATE;
    for c in [&bad_state, &good, &udp_state, &icmp, &template] {
        b.push(c).unwrap();
    }
    let m = parse(&b.take().unwrap()).unwrap();
    assert_eq!(m.conns, vec![good, template]);
    assert_eq!(
        m.skipped,
        vec![
            WireError::State(0, 6, 11),
            WireError::State(2, 17, 1),
            WireError::Protocol(3, 1)
        ]
    );
}

#[test]
fn mixed_families_never_encode() {
    let c = tcp("10.0.0.1:1", "[fd77::100]:80", "10.0.0.3:80");
    let mut b = MessageBuilder::new(0, 1444);
    assert_eq!(
        b.push(&c),
        Err(PushError::Invalid(WireError::MixedFamilies))
    );
    assert!(b.take().is_none());
}

fn arb_conn() -> impl Strategy<Value = Conn> {
    let v4 = (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p)));
    let v6 = (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p)));
    let addrs = prop_oneof![
        (v4.clone(), v4.clone(), v4.clone(), proptest::option::of(v4)),
        (v6.clone(), v6.clone(), v6.clone(), proptest::option::of(v6)),
    ];
    let seq = (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| Seq {
        init_seq: a,
        delta: b,
        previous_delta: c,
    });
    let pe = (
        proptest::collection::vec(any::<u8>(), 0..=PE_NAME_MAX),
        proptest::collection::vec(any::<u8>(), 0..=40),
    )
        .prop_filter("empty PE", |(n, d)| !n.is_empty() || !d.is_empty());
    (
        (
            prop_oneof![Just(6u8), Just(17), Just(132)],
            any::<u32>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
        ),
        addrs,
        proptest::option::of((seq.clone(), seq)),
        proptest::option::of(pe),
        proptest::option::of((any::<u8>(), any::<u8>(), any::<u32>()).prop_map(
            |(mode, flags, server_next)| SessionOpt {
                mode,
                flags,
                server_next,
            },
        )),
        proptest::option::of(
            (any::<[u32; 3]>(), any::<u16>(), any::<u8>(), any::<u8>()).prop_map(
                |([isn, ts_delta, client_tsval], client_win, client_wscale, server_wscale)| {
                    SynProxyOpt {
                        isn,
                        ts_delta,
                        client_tsval,
                        client_win,
                        client_wscale,
                        server_wscale,
                    }
                },
            ),
        ),
        (any::<bool>(), prop_oneof![Just(0u32), any::<u32>()]),
    )
        .prop_map(
            |(
                (protocol, flags, state, fwmark, timeout_s),
                (c, v, d, l),
                seq,
                pe,
                session,
                syn_proxy,
                (carried, isn_off),
            )| Conn {
                protocol,
                flags,
                // A state the protocol has (TCP 11, UDP 1, SCTP 10), or a template's any.
                state: if flags & flags::TEMPLATE != 0 {
                    state
                } else {
                    state % num_states(protocol).unwrap()
                },
                client: c,
                vip: v,
                dest: d,
                fwmark,
                timeout_s,
                seq,
                pe,
                local: l,
                session,
                syn_proxy,
                carried,
                isn_off,
            },
        )
}

proptest! {
    #[test]
    fn what_is_built_parses_back(conns in proptest::collection::vec(arb_conn(), 1..60), id: u8) {
        let mut b = MessageBuilder::new(id, 1444);
        let mut got = Vec::new();
        for c in &conns {
            if b.push(c) == Err(PushError::Full) {
                let d = b.take().unwrap();
                prop_assert!(d.len() <= 1444);
                got.extend(parse(&d).unwrap().conns);
                b.push(c).unwrap();
            }
        }
        got.extend(parse(&b.take().unwrap()).unwrap().conns);
        prop_assert_eq!(got, conns);
    }

    #[test]
    fn any_bytes_parse_or_fail_without_panicking(d in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse(&d);
    }

    #[test]
    fn a_corrupted_message_parses_or_fails_without_panicking(
        c in arb_conn(), at in any::<prop::sample::Index>(), byte: u8,
    ) {
        let mut b = MessageBuilder::new(0, 1444);
        b.push(&c).unwrap();
        let mut d = b.take().unwrap();
        let i = at.index(d.len());
        d[i] = byte;
        let _ = parse(&d);
    }
}

/// A one-entry message `d` whose last option (at `opt`) has `len` bytes
/// of data: longer data (a field a later rvs adds) padded with 0xaa, or
/// shorter; the message's and the entry's sizes follow.
fn last_option_resized(d: &[u8], opt: usize, len: u8) -> Vec<u8> {
    let mut m = d.to_vec();
    m.truncate(opt + 2 + usize::from(len).min(usize::from(d[opt + 1])));
    m.resize(opt + 2 + usize::from(len), 0xaa);
    m[opt + 1] = len;
    let n = m.len() as u16;
    m[2..4].copy_from_slice(&n.to_be_bytes());
    let grown = m.len() as isize - d.len() as isize;
    m[HEADER_LEN + 3] = (isize::from(d[HEADER_LEN + 3]) + grown) as u8;
    m
}

#[test]
fn the_session_option_takes_longer_data_and_refuses_shorter() {
    let mut c = tcp("10.0.0.1:1000", "10.0.0.100:80", "10.0.0.2:80");
    c.session = Some(SessionOpt {
        mode: 2,
        flags: 5,
        server_next: 9,
    });
    let mut b = MessageBuilder::new(1, 1444);
    b.push(&c).unwrap();
    let d = b.take().unwrap();
    // The option is last in the entry: lengthen its data by 2 (a field a
    // later rvs adds), then shorten it by 1.
    let opt = d.len() - 8;
    assert_eq!(d[opt], OPT_RVS_SESSION);
    assert_eq!(
        parse(&last_option_resized(&d, opt, 8)).unwrap().conns,
        vec![c]
    );
    assert_eq!(
        parse(&last_option_resized(&d, opt, 5)),
        Err(WireError::BadOption(0, OPT_RVS_SESSION))
    );
}

#[test]
fn the_syn_proxy_option_is_16_bytes_takes_longer_data_and_refuses_shorter() {
    let mut c = tcp("10.0.0.1:1000", "10.0.0.100:80", "10.0.0.2:80");
    c.syn_proxy = Some(SynProxyOpt {
        isn: 0x0102_0304,
        ts_delta: 0x0506_0708,
        client_tsval: 0x090a_0b0c,
        client_win: 0x0d0e,
        client_wscale: 7,
        server_wscale: 15,
    });
    let mut b = MessageBuilder::new(1, 1444);
    b.push(&c).unwrap();
    let d = b.take().unwrap();
    let opt = d.len() - 18;
    #[rustfmt::skip]
    assert_eq!(&d[opt..], &[
        OPT_RVS_SYNPROXY, 16,
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 7, 15,
    ]);
    assert_eq!(
        parse(&last_option_resized(&d, opt, 18)).unwrap().conns,
        vec![c]
    );
    assert_eq!(
        parse(&last_option_resized(&d, opt, 15)),
        Err(WireError::BadOption(0, OPT_RVS_SYNPROXY))
    );
}

#[test]
fn the_carried_option_is_three_bytes() {
    let mut c = tcp("10.77.0.10:40000", "10.77.0.100:80", "10.77.0.11:80");
    c.local = Some("10.77.0.200:5000".parse().unwrap());
    c.carried = true;
    let mut b = MessageBuilder::new(1, 1444);
    b.push(&c).unwrap();
    let d = b.take().unwrap();
    let at = HEADER_LEN + ENTRY_V4_LEN + 8;
    assert_eq!(d[at..at + 3], [OPT_RVS_CARRIED, 1, 1]);
    assert_eq!(parse(&d).unwrap().conns, [c.clone()]);
    // Another value is malformed: the entry is skipped.
    let mut bad = d.clone();
    bad[at + 2] = 2;
    assert!(parse(&bad).map_or(true, |m| m.conns.is_empty()));
}
