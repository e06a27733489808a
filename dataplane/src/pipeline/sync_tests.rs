//! Connection sync through the pipeline: a master's worker feeds its ring
//! on the kernel's thresholds; a backup's workers install what it sent and
//! carry the connection on, both ways, from the next packet.

use std::sync::Arc;

use super::sync::{InstallOutcome, InstallReport};
use super::tests::{eth, known_servers, tables_with, CLIENT_MAC, LB_MAC, LIP, RS1_MAC};
use super::*;
use crate::addr::Addr;
use crate::session::TcpState;
use crate::sync_feed::{RecordKind, SyncRecord, SyncRing};
use crate::sync_policy::SyncPolicy;
use crate::xmit::rewrite::tests::tcp_packet;

fn frame(
    smac: MacAddr,
    src: Endpoint,
    dst: Endpoint,
    flags: crate::wire::tcp::TcpFlags,
) -> Vec<u8> {
    eth(
        LB_MAC,
        smac,
        ethernet::ETHERTYPE_IPV4,
        &tcp_packet(src, dst, flags, b"x"),
    )
}

fn endpoints(f: &[u8]) -> (MacAddr, Endpoint, Endpoint) {
    let e = ethernet::Frame::new_checked(f).unwrap();
    let ip = ipv4::Packet::new_checked(e.payload()).unwrap();
    let t = tcp::Packet::new_checked(ip.payload()).unwrap();
    (
        e.dst(),
        Endpoint::new(ip.src(), t.src_port()),
        Endpoint::new(ip.dst(), t.dst_port()),
    )
}

fn pipelines(t: &Arc<Tables>, n: u16, neigh: &Arc<NeighMap>) -> Vec<Pipeline> {
    (0..n)
        .map(|i| Pipeline::new(Arc::clone(t), Arc::clone(neigh), 256, 42, i, n))
        .collect()
}

/// Opens a connection from `client` on the right worker of `w` (SYN,
/// SYN-ACK, ACK, one data segment); returns the owner and where the
/// client's packets go (local address, real server).
fn open(w: &mut [Pipeline], client: Endpoint, now: u64) -> (usize, Endpoint, Endpoint) {
    let vip = super::tests::VIP;
    let mut syn = frame(CLIENT_MAC, client, vip, tcp::SYN);
    let mut at = 0;
    if let Verdict::Redirect { worker } = w[0].process(&mut syn, 0, Millis(now)) {
        at = usize::from(worker);
        assert_eq!(
            w[at].process(&mut syn, 0, Millis(now)),
            Verdict::Forward { port: 0 }
        );
    }
    let (_, laddr, rs) = endpoints(&syn);
    let mut synack = frame(RS1_MAC, rs, laddr, tcp::SYN | tcp::ACK);
    assert_eq!(
        w[at].process(&mut synack, 0, Millis(now)),
        Verdict::Forward { port: 0 }
    );
    for flags in [tcp::ACK, tcp::ACK | tcp::PSH] {
        let mut f = frame(CLIENT_MAC, client, vip, flags);
        assert_eq!(
            w[at].process(&mut f, 0, Millis(now)),
            Verdict::Forward { port: 0 }
        );
    }
    (at, laddr, rs)
}

fn drain(rings: &[Arc<SyncRing>]) -> Vec<SyncRecord> {
    rings
        .iter()
        .flat_map(|r| std::iter::from_fn(|| r.pop()))
        .collect()
}

fn feed(w: &mut [Pipeline]) -> Vec<Arc<SyncRing>> {
    w.iter_mut()
        .map(|p| {
            let ring = Arc::new(SyncRing::new(64));
            p.set_sync_feed(Some((Arc::clone(&ring), SyncPolicy::default())));
            ring
        })
        .collect()
}

fn install(w: &mut [Pipeline], records: &[SyncRecord], now: u64) -> InstallReport {
    let mut rep = InstallReport::default();
    for p in w.iter_mut() {
        for r in records {
            rep.count(p.install_synced(r, Millis(now)));
        }
    }
    rep
}

#[test]
fn a_fullnat_connection_is_sent_on_its_third_packet_and_carries_on_at_the_backup() {
    let t = tables_with((5000, 5999), |_| {});
    let mut master = pipelines(&t, 2, &known_servers());
    let rings = feed(&mut master);
    let client = Endpoint::new([10, 77, 0, 10], 41000);
    let (owner, laddr, rs) = open(&mut master, client, 1_000);
    let sent = drain(&rings);
    assert_eq!(
        sent.len(),
        1,
        "SYN and ACK do not send; the 3rd packet does"
    );
    let r = sent[0];
    assert_eq!(
        (r.kind, r.proto, r.state, r.client, r.vip, r.rs, r.laddr),
        (
            RecordKind::Conn,
            6,
            TcpState::Established as u8,
            client,
            super::tests::VIP,
            rs,
            Some(laddr)
        )
    );
    assert_eq!(r.timeout_s, 900);
    assert_eq!(laddr.ip.v4_bits(), LIP);

    // The backup: same worker count, a neighbour table without the client.
    let mut backup = pipelines(&t, 2, &known_servers());
    let rep = install(&mut backup, &sent, 50_000);
    assert_eq!(rep.installed, 1);
    assert_eq!(backup[owner].sessions().len(), 1);
    assert_eq!(backup[1 - owner].sessions().len(), 0);
    // Again: a refresh, not a second session.
    assert_eq!(install(&mut backup, &sent, 50_001).updated, 1);

    // The client's next segment goes out exactly as the master sent it.
    let mut f = frame(CLIENT_MAC, client, super::tests::VIP, tcp::ACK);
    assert_eq!(
        backup[owner].process(&mut f, 0, Millis(50_002)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(endpoints(&f), (RS1_MAC, laddr, rs));
    // The server's reply, to the client's MAC learned from that segment.
    let mut reply = frame(RS1_MAC, rs, laddr, tcp::ACK);
    assert_eq!(
        backup[owner].process(&mut reply, 0, Millis(50_003)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(endpoints(&reply), (CLIENT_MAC, super::tests::VIP, client));
    // The borrowed port is not lent again on the backup.
    assert_eq!(
        backup[owner].pools()[0].available(),
        backup[owner].pools()[0].size() - 1
    );
}

#[test]
fn closing_states_are_sent_at_once() {
    let t = tables_with((5000, 5999), |_| {});
    let mut w = pipelines(&t, 1, &known_servers());
    let rings = feed(&mut w);
    let client = Endpoint::new([10, 77, 0, 10], 41001);
    let (_, _, _) = open(&mut w, client, 1_000);
    assert_eq!(drain(&rings).len(), 1);
    let mut fin = frame(CLIENT_MAC, client, super::tests::VIP, tcp::FIN | tcp::ACK);
    w[0].process(&mut fin, 0, Millis(1_001));
    let sent = drain(&rings);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].state, TcpState::CloseWait as u8);
    // Without a feed nothing is pushed.
    w[0].set_sync_feed(None);
    let mut f = frame(CLIENT_MAC, client, super::tests::VIP, tcp::ACK);
    w[0].process(&mut f, 0, Millis(1_002));
    assert!(drain(&rings).is_empty());
}

#[test]
fn entries_the_backup_cannot_serve_are_refused_and_counted() {
    let t = tables_with((5000, 5999), |_| {});
    let mut master = pipelines(&t, 2, &known_servers());
    let rings = feed(&mut master);
    for port in 42000..42016 {
        open(&mut master, Endpoint::new([10, 77, 0, 10], port), 1_000);
    }
    let sent = drain(&rings);
    assert_eq!(sent.len(), 16);
    // Three workers: the client rule and the port rule often disagree.
    let mut three = pipelines(&t, 3, &known_servers());
    let rep = install(&mut three, &sent, 2_000);
    assert_eq!(rep.installed + rep.owner_mismatch, 16);
    assert!(rep.owner_mismatch > 0, "{rep:?}");
    let held: usize = three.iter().map(|p| p.sessions().len()).sum();
    assert_eq!(held as u64, rep.installed);

    // Unknown service, unknown server, foreign local address.
    let mut one = pipelines(&t, 1, &known_servers());
    let mut bad = sent[0];
    bad.vip.port = 81;
    assert_eq!(
        one[0].install_synced(&bad, Millis(2_000)),
        InstallOutcome::NoService
    );
    let mut bad = sent[0];
    bad.rs.port = 9;
    assert_eq!(
        one[0].install_synced(&bad, Millis(2_000)),
        InstallOutcome::NoServer
    );
    let mut bad = sent[0];
    bad.laddr = Some(Endpoint::new([10, 77, 0, 201], 5000));
    assert_eq!(
        one[0].install_synced(&bad, Millis(2_000)),
        InstallOutcome::NoLocalAddress
    );
    assert!(one[0].sessions().is_empty());
}

#[test]
fn an_unresolved_server_mac_is_asked_for_and_the_packet_waits() {
    let t = tables_with((5000, 5999), |_| {});
    let mut master = pipelines(&t, 1, &known_servers());
    let rings = feed(&mut master);
    let client = Endpoint::new([10, 77, 0, 10], 43000);
    open(&mut master, client, 1_000);
    let sent = drain(&rings);
    let mut backup = pipelines(&t, 1, &Arc::default());
    assert_eq!(install(&mut backup, &sent, 2_000).installed, 1);
    let mut f = frame(CLIENT_MAC, client, super::tests::VIP, tcp::ACK);
    assert_eq!(
        backup[0].process(&mut f, 0, Millis(2_001)),
        Verdict::Drop(DropReason::NeighbourMiss)
    );
    assert!(backup[0]
        .take_neigh_events()
        .any(|e| matches!(e, NeighEvent::Wanted { .. })));
    // With the server's MAC known, it goes.
    backup[0].set_neigh(known_servers());
    let mut f = frame(CLIENT_MAC, client, super::tests::VIP, tcp::ACK);
    assert_eq!(
        backup[0].process(&mut f, 0, Millis(2_002)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(endpoints(&f).0, RS1_MAC);
}

#[test]
fn persistence_templates_travel_with_their_connections() {
    let t = tables_with((5000, 5999), |t| {
        t.services[0].persistence = Some(crate::tables::Persistence::new(300));
    });
    let mut master = pipelines(&t, 1, &known_servers());
    let rings = feed(&mut master);
    let client = Endpoint::new([10, 77, 0, 10], 44000);
    let (_, _, rs) = open(&mut master, client, 1_000);
    let sent = drain(&rings);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1].kind, RecordKind::Template);
    assert_eq!(
        (sent[1].client.port, sent[1].rs, sent[1].timeout_s),
        (0, rs, 300)
    );
    let mut backup = pipelines(&t, 1, &known_servers());
    // Template first, as the backup would get it after a resync; either order works.
    let rep = install(&mut backup, &[sent[1], sent[0]], 2_000);
    assert_eq!(rep.installed, 2);
    assert_eq!(backup[0].templates().len(), 1);
    assert_eq!(backup[0].templates().iter().next().unwrap().controls, 1);
    // A new connection from the same client goes to the same server.
    let mut syn = frame(
        CLIENT_MAC,
        Endpoint::new([10, 77, 0, 10], 44001),
        super::tests::VIP,
        tcp::SYN,
    );
    assert_eq!(
        backup[0].process(&mut syn, 0, Millis(2_001)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(endpoints(&syn).2, rs);
}

#[test]
fn link_local_multicast_goes_to_the_kernel_side_only_with_an_exception_path() {
    let t = tables_with((5000, 5999), |_| {});
    let mut p = pipelines(&t, 1, &known_servers()).remove(0);
    let group = Endpoint::new([224, 0, 0, 81], 8848);
    let sync = || {
        eth(
            [0x01, 0, 0x5e, 0, 0, 0x51],
            CLIENT_MAC,
            ethernet::ETHERTYPE_IPV4,
            &crate::xmit::rewrite::tests::udp_packet(
                Endpoint::new([10, 77, 0, 3], 40000),
                group,
                b"sync",
                false,
            ),
        )
    };
    assert_eq!(
        p.process(&mut sync(), 0, Millis(1)),
        Verdict::Drop(DropReason::NotForUs)
    );
    p.enable_punt();
    assert_eq!(p.process(&mut sync(), 0, Millis(1)), Verdict::Punt);
    // With TTL 1, as the kernel sends link-local multicast.
    let mut ttl1 = sync();
    {
        let l3 = &mut ttl1[ethernet::HEADER_LEN..];
        l3[8] = 1;
        l3[10..12].fill(0);
        let c = crate::checksum::checksum(&l3[..20]);
        l3[10..12].copy_from_slice(&c.to_be_bytes());
    }
    assert_eq!(p.process(&mut ttl1, 0, Millis(1)), Verdict::Punt);
    // VRRP (protocol 112) to 224.0.0.18.
    let mut vrrp = sync();
    {
        let l3 = &mut vrrp[ethernet::HEADER_LEN..];
        l3[9] = 112;
        l3[16..20].copy_from_slice(&[224, 0, 0, 18]);
        l3[10..12].fill(0);
        let c = crate::checksum::checksum(&l3[..20]);
        l3[10..12].copy_from_slice(&c.to_be_bytes());
    }
    assert_eq!(p.process(&mut vrrp, 0, Millis(1)), Verdict::Punt);
    // A routable group is not for the appliance.
    let mut f = eth(
        [0x01, 0, 0x5e, 0, 1, 1],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &crate::xmit::rewrite::tests::udp_packet(
            Endpoint::new([10, 77, 0, 3], 40000),
            Endpoint::new([239, 0, 1, 1], 8848),
            b"x",
            false,
        ),
    );
    assert_eq!(
        p.process(&mut f, 0, Millis(1)),
        Verdict::Drop(DropReason::NotForUs)
    );
}

#[test]
fn a_vip_on_standby_is_neither_answered_nor_forwarded_until_held() {
    let vip = super::tests::VIP;
    let standby = tables_with((5000, 5999), |t| {
        t.standby = vec![vip.ip, Addr::v4(LIP)];
    });
    let mut master = pipelines(&tables_with((5000, 5999), |_| {}), 1, &known_servers());
    let rings = feed(&mut master);
    let client = Endpoint::new([10, 77, 0, 10], 45000);
    let (_, laddr, rs) = open(&mut master, client, 1_000);
    let sent = drain(&rings);

    let mut backup = pipelines(&standby, 1, &known_servers());
    // Installed while on standby (that is what a backup is for)...
    assert_eq!(install(&mut backup, &sent, 2_000).installed, 1);
    // ...but nothing is forwarded for the VIP or the local address.
    let mut f = frame(CLIENT_MAC, client, vip, tcp::ACK);
    assert_eq!(
        backup[0].process(&mut f, 0, Millis(2_001)),
        Verdict::Drop(DropReason::NotForUs)
    );
    let mut syn = frame(
        CLIENT_MAC,
        Endpoint::new([10, 77, 0, 10], 45001),
        vip,
        tcp::SYN,
    );
    assert_eq!(
        backup[0].process(&mut syn, 0, Millis(2_001)),
        Verdict::Drop(DropReason::NotForUs)
    );
    let mut reply = frame(RS1_MAC, rs, laddr, tcp::ACK);
    assert_eq!(
        backup[0].process(&mut reply, 0, Millis(2_001)),
        Verdict::Drop(DropReason::NotForUs)
    );
    let arp_for = |ip: [u8; 4]| {
        let mut a = [0u8; crate::wire::arp::PACKET_LEN];
        crate::wire::arp::Packet::new_unchecked(&mut a[..]).emit(
            crate::wire::arp::OP_REQUEST,
            CLIENT_MAC,
            client.ip.v4_bits(),
            [0; 6],
            ip,
        );
        eth([0xff; 6], CLIENT_MAC, ethernet::ETHERTYPE_ARP, &a)
    };
    assert_eq!(
        backup[0].process(&mut arp_for(vip.ip.v4_bits()), 0, Millis(2_001)),
        Verdict::Drop(DropReason::ArpNotForUs)
    );
    // The kernel side took the VIP (keepalived): the same session carries on.
    backup[0].set_tables(tables_with((5000, 5999), |_| {}));
    assert_eq!(
        backup[0].process(&mut arp_for(vip.ip.v4_bits()), 0, Millis(2_002)),
        Verdict::Forward { port: 0 }
    );
    let mut f = frame(CLIENT_MAC, client, vip, tcp::ACK);
    assert_eq!(
        backup[0].process(&mut f, 0, Millis(2_003)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(endpoints(&f), (RS1_MAC, laddr, rs));
}

#[test]
fn a_box_that_is_master_and_backup_sends_its_own_sessions_and_installs_the_peers() {
    // Two active boxes, each both roles (the kernel allows both daemons):
    // A's connection goes to B, B's to A; neither sends the other's back.
    let t = tables_with((5000, 5999), |_| {});
    let mut a = pipelines(&t, 1, &known_servers());
    let mut b = pipelines(&t, 1, &known_servers());
    let (ring_a, ring_b) = (feed(&mut a), feed(&mut b));
    let c1 = Endpoint::new([10, 77, 0, 10], 41001);
    let c2 = Endpoint::new([10, 77, 0, 10], 41002);
    let (_, l1, _) = open(&mut a, c1, 1_000);
    let from_a = drain(&ring_a);
    assert_eq!(from_a.len(), 1);
    assert_eq!(install(&mut b, &from_a, 1_001).installed, 1);
    let (_, l2, _) = open(&mut b, c2, 1_002);
    assert_ne!(l1, l2, "B lends another port than the one it holds for A");
    let from_b = drain(&ring_b);
    assert_eq!(from_b.len(), 1, "B sends its own session only: {from_b:?}");
    assert_eq!(from_b[0].client, c2);
    assert_eq!(install(&mut a, &from_b, 1_003).installed, 1);
    assert!(drain(&ring_a).is_empty(), "installing feeds nothing back");
    // Each box holds both; a full resync of each leaves the peer's out.
    for (p, own, peer) in [(&a[0], c1, c2), (&b[0], c2, c1)] {
        assert_eq!(p.sessions().len(), 2);
        let mut page = Vec::new();
        p.sessions().page(0, 256, 256, &mut page);
        let peers: Vec<_> = page
            .iter()
            .filter(|s| p.session_from_peer(s))
            .map(|s| s.client)
            .collect();
        assert_eq!(peers, vec![peer]);
        assert!(page.iter().any(|s| s.client == own));
    }
    // When the router moves c2's flow to A, A carries it and sends it.
    for _ in 0..3 {
        let mut f = frame(CLIENT_MAC, c2, super::tests::VIP, tcp::ACK);
        assert_eq!(
            a[0].process(&mut f, 0, Millis(1_004)),
            Verdict::Forward { port: 0 }
        );
    }
    let s2 = a[0]
        .sessions()
        .get(
            match a[0].sessions().lookup(
                &crate::session::FlowKey {
                    src: c2,
                    dst: super::tests::VIP,
                    proto: 6,
                },
                Millis(1_004),
            ) {
                crate::session::Lookup::Hit(slot, _) => slot,
                other => panic!("{other:?}"),
            },
        )
        .unwrap();
    assert!(!a[0].session_from_peer(&s2));
    let sent = drain(&ring_a);
    assert_eq!(sent.len(), 1, "its 3rd packet here");
    assert_eq!(sent[0].client, c2);
}

#[test]
fn a_peers_flow_carries_on_here_on_its_local_address_which_is_never_lent_or_answered_for() {
    let vip = super::tests::VIP;
    let peer_lip = [10, 77, 0, 201];
    // The peer (active-active): its own pool is 10.77.0.201.
    let peer_tables = tables_with((5000, 5999), |t| {
        t.laddrs = vec![Addr::v4(peer_lip)];
    });
    let mut peer = pipelines(&peer_tables, 1, &known_servers());
    let rings = feed(&mut peer);
    let client = Endpoint::new([10, 77, 0, 10], 46000);
    let (_, laddr, rs) = open(&mut peer, client, 1_000);
    assert_eq!(laddr.ip, Addr::v4(peer_lip));
    let sent = drain(&rings);

    // This box: its own pool (LIP), and the peer's address as a peer's.
    let here = tables_with((5000, 5999), |t| {
        t.laddrs.push(Addr::v4(peer_lip));
        t.services[0].peer_laddrs = vec![1];
    });
    let mut box2 = pipelines(&here, 1, &known_servers());
    assert_eq!(install(&mut box2, &sent, 2_000).installed, 1);
    // Bound to its server, but not counted as scheduled here (`Conns`).
    assert_eq!(box2[0].rs_conns().iter().map(|c| c.total()).sum::<u32>(), 1);
    assert!(box2[0].rs_conns().iter().all(|c| c.created == 0));
    // The router moved the flow here: both ways carry on.
    let mut f = frame(CLIENT_MAC, client, vip, tcp::ACK);
    assert_eq!(
        box2[0].process(&mut f, 0, Millis(2_001)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(endpoints(&f), (RS1_MAC, laddr, rs));
    let mut reply = frame(RS1_MAC, rs, laddr, tcp::ACK);
    assert_eq!(
        box2[0].process(&mut reply, 0, Millis(2_002)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(endpoints(&reply), (CLIENT_MAC, vip, client));
    // New connections take this box's own address only.
    for port in 46001..46011 {
        let (_, l, _) = open(&mut box2, Endpoint::new([10, 77, 0, 10], port), 3_000);
        assert_eq!(l.ip.v4_bits(), LIP);
    }
    // The peer's address is not answered for while the peer lives.
    assert!(!here.holds(Addr::v4(peer_lip)));
    assert!(here.holds(Addr::v4(LIP)));
    assert!(here.is_peer_laddr(Addr::v4(peer_lip)));
    // Without it listed as a peer's, the same entry is refused.
    let mut box3 = pipelines(&tables_with((5000, 5999), |_| {}), 1, &known_servers());
    assert_eq!(
        box3[0].install_synced(&sent[0], Millis(2_000)),
        InstallOutcome::NoLocalAddress
    );
}

#[test]
fn an_active_entry_for_a_newer_connection_on_the_same_client_tuple_replaces_ours() {
    let t = tables_with((5000, 5999), |_| {});
    let mut master = pipelines(&t, 2, &known_servers());
    let rings = feed(&mut master);
    let client = Endpoint::new([10, 77, 0, 10], 41500);
    let (owner, _, rs) = open(&mut master, client, 1_000);
    let sent = drain(&rings);
    assert_eq!(sent.len(), 1);
    // This box holds an older connection from the same client port, to
    // the other server (the client reused its port).
    let mut here = pipelines(&t, 2, &known_servers());
    let other_rs = if rs == super::tests::RS1 {
        super::tests::RS2
    } else {
        super::tests::RS1
    };
    let older = SyncRecord {
        rs: other_rs,
        state: TcpState::TimeWait as u8,
        ..sent[0]
    };
    assert_eq!(install(&mut here, &[older], 1_500).installed, 1);
    // An inactive entry naming yet another connection is an old message:
    // ignored, ours stays.
    let stale = SyncRecord {
        rs,
        state: TcpState::FinWait as u8,
        ..sent[0]
    };
    let rep = install(&mut here, &[stale], 1_600);
    assert_eq!((rep.installed, rep.updated), (0, 0), "{rep:?}");
    let held = |p: &Pipeline| {
        let mut v = Vec::new();
        p.sessions().page(0, 1 << 20, 1 << 20, &mut v);
        v.iter().map(|s| (s.rs, s.state)).collect::<Vec<_>>()
    };
    assert_eq!(held(&here[owner]), [(other_rs, TcpState::TimeWait)]);
    // The master's active entry replaces it: the client's packets go to
    // the master's server from now on.
    assert_eq!(install(&mut here, &sent, 2_000).installed, 1);
    assert_eq!(held(&here[owner]), [(rs, TcpState::Established)]);
    let mut f = frame(CLIENT_MAC, client, super::tests::VIP, tcp::ACK);
    assert_eq!(
        here[owner].process(&mut f, 0, Millis(2_001)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(endpoints(&f).2, rs);
}

#[test]
fn a_peer_that_lends_its_port_again_replaces_the_stale_copy_here() {
    let peer_lip = [10, 77, 0, 201];
    let peer_tables = tables_with((5000, 5999), |t| {
        t.laddrs = vec![Addr::v4(peer_lip)];
    });
    let here = tables_with((5000, 5999), |t| {
        t.laddrs.push(Addr::v4(peer_lip));
        t.services[0].peer_laddrs = vec![1];
    });
    let mut box2 = pipelines(&here, 1, &known_servers());
    // The peer's first life: a connection on its port 5000, copied here.
    let mut peer = pipelines(&peer_tables, 1, &known_servers());
    let rings = feed(&mut peer);
    let (_, first, _) = open(&mut peer, Endpoint::new([10, 77, 0, 10], 47000), 1_000);
    assert_eq!(install(&mut box2, &drain(&rings), 1_100).installed, 1);
    // The peer restarts (its closing entries never came) and lends the
    // same port to another client's connection.
    let mut reborn = pipelines(&peer_tables, 1, &known_servers());
    let rings = feed(&mut reborn);
    let client = Endpoint::new([10, 77, 0, 10], 47001);
    let (_, laddr, rs) = open(&mut reborn, client, 2_000);
    assert_eq!(laddr, first, "the same local address and port");
    let rep = install(&mut box2, &drain(&rings), 2_100);
    assert_eq!((rep.installed, rep.conflict), (1, 0), "{rep:?}");
    assert_eq!(box2[0].sessions().len(), 1, "the stale copy is gone");
    let mut f = frame(CLIENT_MAC, client, super::tests::VIP, tcp::ACK);
    assert_eq!(
        box2[0].process(&mut f, 0, Millis(2_200)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(endpoints(&f), (RS1_MAC, laddr, rs));
    let mut reply = frame(RS1_MAC, rs, laddr, tcp::ACK);
    assert_eq!(
        box2[0].process(&mut reply, 0, Millis(2_201)),
        Verdict::Forward { port: 0 }
    );
    assert_eq!(endpoints(&reply).2, client);
    // On this box's own address a port in use stays a conflict.
    let mut master = pipelines(&tables_with((5000, 5999), |_| {}), 1, &known_servers());
    let rings = feed(&mut master);
    open(&mut master, Endpoint::new([10, 77, 0, 10], 47002), 3_000);
    let sent = drain(&rings);
    let mut box3 = pipelines(&tables_with((5000, 5999), |_| {}), 1, &known_servers());
    open(&mut box3, Endpoint::new([10, 77, 0, 10], 47003), 3_000);
    assert_eq!(
        box3[0].install_synced(&sent[0], Millis(3_100)),
        InstallOutcome::PortInUse
    );
}
