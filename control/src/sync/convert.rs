//! Between the workers' [`SyncRecord`]s and the wire's [`Conn`]s: what a
//! master sends of a session, and what a backup installs of an entry.
//!
//! A session whose byte stream rvs changes (a PROXY protocol header
//! inserted, TOA; a SYN proxy's server stream) carries its
//! [`SessionExt`] in two options ([`ext_to_wire`], [`ext_of_wire`]): its
//! sequence shifts in the kernel's own sequence data (`IPVS_OPT_SEQ_DATA`,
//! the meaning matches, below), the rest in rvs's session option.
//!
//! The kernel describes a stream resized at one point by `init_seq` (the
//! sequence number of the segment that grew, in the sender's numbering),
//! `delta` (bytes added so far) and `previous_delta` (before that
//! segment); an inserted PROXY header is exactly such a resize, at the
//! first payload byte, with nothing before it: `init_seq` = the shift's
//! `base`, `delta` = its `delta`, `previous_delta` = 0. The client's
//! stream is the kernel's `in_seq` (`IP_VS_CONN_F_IN_SEQ` when its delta
//! is not 0), the server's stream `out_seq` (`IP_VS_CONN_F_OUT_SEQ`). An
//! entry with a `previous_delta` (a kernel FTP helper's second resize) is
//! not a shift rvs can apply: it is skipped. Sequence data without rvs's
//! session option (a kernel master's) is not applied: rvs has no FTP helper.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use dataplane::addr::Addr;
use dataplane::session::ext::{ExtFlags, SessionExt, SYN_PROXY};
use dataplane::session::{ClientAddress, Endpoint};
use dataplane::sync_feed::{RecordKind, SyncRecord};
use dataplane::tables::Forward;
use dataplane::xmit::seq_shift::SeqShift;

use dataplane::synproxy::ProxyState;

use super::wire::{flags, Conn, Seq, SessionOpt, SynProxyOpt, WireError};

/// What a session's ext becomes on the wire ([`ext_to_wire`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtWire {
    /// The kernel's sequence data (in, out).
    pub seq: (Seq, Seq),
    /// rvs's session option.
    pub session: SessionOpt,
    /// rvs's SYN-proxy option (a SYN-proxied connection only).
    pub syn_proxy: Option<SynProxyOpt>,
    /// `IN_SEQ`/`OUT_SEQ`.
    pub flags: u32,
}

/// The sequence data, rvs's session option and (for a SYN-proxied
/// connection) its SYN-proxy option for a session's ext, and the
/// `IN_SEQ`/`OUT_SEQ` flags (see the module doc). `None` for a session
/// that keeps nothing there (mode `none`).
#[must_use]
pub fn ext_to_wire(mode: ClientAddress, e: &SessionExt) -> Option<ExtWire> {
    if mode == ClientAddress::None && *e == SessionExt::default() {
        return None;
    }
    let seq = |s: SeqShift| Seq {
        init_seq: s.base,
        delta: s.delta,
        previous_delta: 0,
    };
    let mut f = 0;
    if e.to_server.delta != 0 {
        f |= flags::IN_SEQ;
    }
    if e.to_client.delta != 0 {
        f |= flags::OUT_SEQ;
    }
    let opt = SessionOpt {
        mode: mode as u8,
        flags: e.flags.bits(),
        server_next: e.server_next,
    };
    let p = &e.syn_proxy;
    Some(ExtWire {
        seq: (seq(e.to_server), seq(e.to_client)),
        session: opt,
        syn_proxy: e.has(SYN_PROXY).then_some(SynProxyOpt {
            isn: p.isn,
            ts_delta: p.ts_delta,
            client_tsval: p.client_tsval,
            client_win: p.client_win,
            client_wscale: p.client_wscale,
            server_wscale: p.server_wscale,
        }),
        flags: f,
    })
}

/// The mode and ext of an entry's options (see the module doc): the
/// defaults without rvs's session option.
///
/// # Errors
/// An unknown mode or a `previous_delta`, or a SYN-proxied connection
/// (flag) without its SYN-proxy option: the entry is skipped.
pub fn ext_of_wire(
    seq: Option<&(Seq, Seq)>,
    opt: Option<&SessionOpt>,
    syn_proxy: Option<&SynProxyOpt>,
) -> Result<(ClientAddress, SessionExt), WireError> {
    let Some(o) = opt else {
        return Ok((ClientAddress::None, SessionExt::default()));
    };
    let mode = ClientAddress::ALL
        .get(usize::from(o.mode))
        .copied()
        .ok_or(WireError::BadOption(0, super::wire::OPT_RVS_SESSION))?;
    let (i, out) = seq.copied().unwrap_or_default();
    if i.previous_delta != 0 || out.previous_delta != 0 {
        return Err(WireError::BadOption(0, super::wire::OPT_SEQ_DATA));
    }
    let flags = ExtFlags::from_bits_retain(o.flags);
    let syn_proxy = match (flags.contains(SYN_PROXY), syn_proxy) {
        (false, _) => ProxyState::default(),
        (true, Some(p)) => ProxyState {
            isn: p.isn,
            ts_delta: p.ts_delta,
            client_tsval: p.client_tsval,
            client_win: p.client_win,
            client_wscale: p.client_wscale,
            server_wscale: p.server_wscale,
        },
        // Without it the survivor would forward the server's timestamps
        // and windows unadjusted: the client would drop them.
        (true, None) => return Err(WireError::BadOption(0, super::wire::OPT_RVS_SYNPROXY)),
    };
    let e = SessionExt {
        to_server: SeqShift::new(i.init_seq, i.delta),
        to_client: SeqShift::new(out.init_seq, out.delta),
        server_next: o.server_next,
        flags,
        syn_proxy,
    };
    Ok((mode, e))
}

/// IPVS's TCP ESTABLISHED.
const TCP_ESTABLISHED: u8 = 1;

fn sock(e: Endpoint) -> SocketAddr {
    SocketAddr::new(e.ip.ip(), e.port)
}

fn endpoint(a: SocketAddr) -> Endpoint {
    let ip = match a.ip() {
        IpAddr::V4(v4) => Addr::v4(v4.octets()),
        IpAddr::V6(v6) => Addr::v6(v6.octets()),
    };
    Endpoint::at(ip, a.port())
}

/// The local address of entry `c` if it is one of `own` (this box's own
/// pool) and the peer does not carry it: overlapping pools (see
/// `docs/sync.md`), refused. An entry the peer carries on one of our
/// addresses is a flow of ours it took over while we were gone: taken.
#[must_use]
pub fn overlap(c: &Conn, own: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    c.local
        .map(|l| l.ip())
        .filter(|ip| !c.carried && own.contains(ip))
}

/// True if `r` is a FULLNAT session on one of `peer_laddrs` (another
/// appliance's local address): sent as carried.
#[must_use]
pub fn on_peer_laddr(r: &SyncRecord, peer_laddrs: &BTreeSet<IpAddr>) -> bool {
    r.laddr.is_some_and(|l| peer_laddrs.contains(&l.ip.ip()))
}

/// The entry a master sends for `r`. FULLNAT and NAT both travel as
/// masquerading (the kernel's `IP_VS_CONN_F_MASQ`); FULLNAT adds its local
/// address in rvs's option, which a kernel backup skips; one on
/// `peer_laddrs` (another appliance's) is marked carried.
#[must_use]
pub fn conn_of(r: &SyncRecord, peer_laddrs: &BTreeSet<IpAddr>) -> Conn {
    let mut f = match r.forward {
        Forward::FullNat | Forward::Nat => flags::MASQ,
        Forward::Dr => flags::DROUTE,
        Forward::Tun => flags::TUNNEL,
    };
    if r.kind == RecordKind::Template {
        f |= flags::TEMPLATE | flags::NO_CPORT;
    } else if r.proto == 6 && r.state != TCP_ESTABLISHED {
        f |= flags::INACTIVE;
    }
    let ext = if r.kind == RecordKind::Conn {
        ext_to_wire(r.client_addr, &r.ext)
    } else {
        None
    };
    if let Some(x) = ext {
        f |= x.flags;
    }
    Conn {
        protocol: r.proto,
        flags: f,
        state: u16::from(r.state),
        client: sock(r.client),
        vip: sock(r.vip),
        dest: sock(r.rs),
        // A fwmark service's template: protocol IP, the mark as its
        // address, and the mark here, as the kernel sends one.
        fwmark: dataplane::marks::mark_of(r.vip, r.proto).map_or(0, |(m, _)| m),
        timeout_s: r.timeout_s,
        seq: ext.map(|x| x.seq),
        pe: None,
        local: r.laddr.map(sock),
        session: ext.map(|x| x.session),
        syn_proxy: ext.and_then(|x| x.syn_proxy),
        carried: on_peer_laddr(r, peer_laddrs),
        isn_off: if r.kind == RecordKind::Conn {
            r.isn_off
        } else {
            0
        },
    }
}

/// The record a backup offers its workers for entry `c` (the forwarding
/// method is the backup's own server's; this one is only a hint).
///
/// # Errors
/// As [`ext_of_wire`]: the entry is skipped.
pub fn record_of(c: &Conn) -> Result<SyncRecord, WireError> {
    let (client_addr, ext) = ext_of_wire(c.seq.as_ref(), c.session.as_ref(), c.syn_proxy.as_ref())?;
    let kind = if c.flags & flags::TEMPLATE != 0 {
        RecordKind::Template
    } else {
        RecordKind::Conn
    };
    let forward = match c.flags & flags::FWD_MASK {
        flags::DROUTE => Forward::Dr,
        flags::TUNNEL => Forward::Tun,
        _ if c.local.is_some() => Forward::FullNat,
        _ => Forward::Nat,
    };
    Ok(SyncRecord {
        kind,
        proto: c.protocol,
        forward,
        state: u8::try_from(c.state).unwrap_or(0),
        client: endpoint(c.client),
        vip: endpoint(c.vip),
        rs: endpoint(c.dest),
        laddr: c.local.map(endpoint),
        timeout_s: c.timeout_s,
        client_addr,
        ext,
        isn_off: c.isn_off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::wire::{self, MessageBuilder};

    fn rec(forward: Forward, kind: RecordKind) -> SyncRecord {
        SyncRecord {
            kind,
            proto: 6,
            forward,
            state: 1,
            client: Endpoint::new(
                [10, 77, 0, 10],
                if kind == RecordKind::Conn { 40000 } else { 0 },
            ),
            vip: Endpoint::new([10, 77, 0, 100], 80),
            rs: Endpoint::new([10, 77, 0, 11], 8080),
            laddr: (forward == Forward::FullNat && kind == RecordKind::Conn)
                .then_some(Endpoint::new([10, 77, 0, 200], 5001)),
            timeout_s: 900,
            client_addr: ClientAddress::None,
            ext: SessionExt::default(),
            isn_off: 0,
        }
    }

    #[test]
    fn every_method_and_templates_survive_the_wire() {
        for forward in [Forward::FullNat, Forward::Nat, Forward::Dr, Forward::Tun] {
            for kind in [RecordKind::Conn, RecordKind::Template] {
                let r = rec(forward, kind);
                let mut b = MessageBuilder::new(1, 1472);
                b.push(&conn_of(&r, &BTreeSet::new())).unwrap();
                let m = wire::parse(&b.take().unwrap()).unwrap();
                let back = record_of(&m.conns[0]).unwrap();
                // A template's method travels as its flags; NAT and FULLNAT
                // templates both read back as NAT (no local address).
                let want_forward = if kind == RecordKind::Template && forward == Forward::FullNat {
                    Forward::Nat
                } else {
                    forward
                };
                assert_eq!(
                    back,
                    SyncRecord {
                        forward: want_forward,
                        ..r
                    }
                );
            }
        }
    }

    #[test]
    fn a_fwmark_template_carries_its_mark() {
        let r = SyncRecord {
            proto: dataplane::marks::FWMARK_PROTO,
            vip: dataplane::marks::service_vip(7, false),
            rs: Endpoint::new([10, 77, 0, 11], 0),
            ..rec(Forward::Dr, RecordKind::Template)
        };
        let c = conn_of(&r, &BTreeSet::new());
        assert_eq!(
            (c.protocol, c.fwmark, c.vip.to_string()),
            (0, 7, "0.0.0.7:0".into())
        );
        let mut b = MessageBuilder::new(1, 1472);
        b.push(&c).unwrap();
        let m = wire::parse(&b.take().unwrap()).unwrap();
        assert_eq!(record_of(&m.conns[0]).unwrap(), r);
    }

    #[test]
    fn connections_not_established_are_flagged_inactive() {
        let mut r = rec(Forward::Nat, RecordKind::Conn);
        assert_eq!(conn_of(&r, &BTreeSet::new()).flags & flags::INACTIVE, 0);
        r.state = 4;
        assert_ne!(conn_of(&r, &BTreeSet::new()).flags & flags::INACTIVE, 0);
    }

    fn proxy_rec() -> SyncRecord {
        SyncRecord {
            client_addr: ClientAddress::ProxyV1,
            ext: SessionExt {
                to_server: SeqShift::new(1001, 56),
                to_client: SeqShift::new(7001, 0),
                server_next: 7001,
                flags: ExtFlags::all(),
                syn_proxy: Default::default(),
            },
            ..rec(Forward::FullNat, RecordKind::Conn)
        }
    }

    #[test]
    fn a_fullnat_isn_offset_travels_in_rvss_option_and_only_when_set() {
        let mut r = rec(Forward::FullNat, RecordKind::Conn);
        r.isn_off = 0xfedc_ba98;
        let c = conn_of(&r, &BTreeSet::new());
        assert_eq!(c.isn_off, 0xfedc_ba98);
        let mut b = MessageBuilder::new(1, 1472);
        b.push(&c).unwrap();
        let d = b.take().unwrap();
        let at = d
            .windows(2)
            .position(|w| w == [wire::OPT_RVS_ISN, 4])
            .expect("the option is sent");
        assert_eq!(&d[at + 2..at + 6], &0xfedc_ba98u32.to_be_bytes());
        let m = wire::parse(&d).unwrap();
        assert_eq!(record_of(&m.conns[0]).unwrap(), r);
        // Without one (NAT, or an older master) no option, and none installed.
        r.isn_off = 0;
        let c = conn_of(&r, &BTreeSet::new());
        let mut b = MessageBuilder::new(1, 1472);
        b.push(&c).unwrap();
        let d = b.take().unwrap();
        assert!(!d.windows(2).any(|w| w == [wire::OPT_RVS_ISN, 4]));
        assert_eq!(
            record_of(&wire::parse(&d).unwrap().conns[0])
                .unwrap()
                .isn_off,
            0
        );
    }

    #[test]
    fn a_shifted_session_travels_in_the_kernels_seq_data_and_rvss_option() {
        let r = proxy_rec();
        let c = conn_of(&r, &BTreeSet::new());
        // The client's stream is the kernel's in_seq, flagged; the
        // server's is not shifted.
        assert_eq!(c.flags & flags::SEQ_MASK, flags::IN_SEQ);
        let (i, o) = c.seq.unwrap();
        assert_eq!((i.init_seq, i.delta, i.previous_delta), (1001, 56, 0));
        assert_eq!((o.init_seq, o.delta), (7001, 0));
        assert_eq!(
            c.session,
            Some(SessionOpt {
                mode: 2,
                flags: ExtFlags::all().bits(),
                server_next: 7001
            })
        );
        let mut b = MessageBuilder::new(1, 1472);
        b.push(&c).unwrap();
        let m = wire::parse(&b.take().unwrap()).unwrap();
        assert_eq!(record_of(&m.conns[0]).unwrap(), r);
        // A session that changes nothing sends neither option.
        let plain = conn_of(&rec(Forward::FullNat, RecordKind::Conn), &BTreeSet::new());
        assert_eq!((plain.seq, plain.session), (None, None));
    }

    #[test]
    fn kernel_seq_data_alone_is_not_applied_and_a_previous_delta_is_refused() {
        let mut c = conn_of(&proxy_rec(), &BTreeSet::new());
        c.session = None;
        let r = record_of(&c).unwrap();
        assert_eq!(
            (r.client_addr, r.ext),
            (ClientAddress::None, SessionExt::default())
        );
        let mut c = conn_of(&proxy_rec(), &BTreeSet::new());
        if let Some((i, _)) = c.seq.as_mut() {
            i.previous_delta = 3;
        }
        assert!(record_of(&c).is_err());
        let mut c = conn_of(&proxy_rec(), &BTreeSet::new());
        c.session = Some(SessionOpt {
            mode: 9,
            ..c.session.unwrap()
        });
        assert!(record_of(&c).is_err());
    }

    /// A SYN-proxied NAT connection after the server's handshake: the
    /// server's stream shifted, timestamps offset, window scales differ.
    fn syn_proxied_rec() -> SyncRecord {
        use dataplane::session::ext::{CLIENT_ISN, PROXY_TS, SERVER_ISN};
        SyncRecord {
            ext: SessionExt {
                to_server: SeqShift::new(5001, 0),
                to_client: SeqShift::new(9001, 0x8000_0123),
                server_next: 9001,
                flags: SYN_PROXY | CLIENT_ISN | SERVER_ISN | PROXY_TS,
                syn_proxy: ProxyState {
                    isn: 0x8000_9123,
                    ts_delta: 0xfff0_0001,
                    client_tsval: 77,
                    client_win: 502,
                    client_wscale: 7,
                    server_wscale: 9,
                },
            },
            ..rec(Forward::Nat, RecordKind::Conn)
        }
    }

    #[test]
    fn a_syn_proxied_connection_carries_its_handshake_in_rvss_syn_proxy_option() {
        let r = syn_proxied_rec();
        let c = conn_of(&r, &BTreeSet::new());
        // The server's stream is the kernel's out_seq, flagged.
        assert_eq!(c.flags & flags::SEQ_MASK, flags::OUT_SEQ);
        assert_eq!(c.session.unwrap().mode, 0);
        assert_eq!(
            c.syn_proxy,
            Some(SynProxyOpt {
                isn: 0x8000_9123,
                ts_delta: 0xfff0_0001,
                client_tsval: 77,
                client_win: 502,
                client_wscale: 7,
                server_wscale: 9,
            })
        );
        let mut b = MessageBuilder::new(1, 1472);
        b.push(&c).unwrap();
        let m = wire::parse(&b.take().unwrap()).unwrap();
        assert_eq!(record_of(&m.conns[0]).unwrap(), r);
        // A PROXY-protocol session sends no SYN-proxy option.
        let mut p = proxy_rec();
        p.ext.flags.remove(SYN_PROXY);
        assert_eq!(conn_of(&p, &BTreeSet::new()).syn_proxy, None);
    }

    #[test]
    fn a_syn_proxied_entry_without_its_option_is_refused() {
        let mut c = conn_of(&syn_proxied_rec(), &BTreeSet::new());
        c.syn_proxy = None;
        assert_eq!(
            record_of(&c),
            Err(WireError::BadOption(0, wire::OPT_RVS_SYNPROXY))
        );
    }

    #[test]
    fn entries_on_our_own_local_addresses_are_refused_unless_the_peer_carries_them() {
        let own: BTreeSet<IpAddr> = ["10.77.0.200".parse().unwrap()].into_iter().collect();
        let ours = rec(Forward::FullNat, RecordKind::Conn);
        let theirs = SyncRecord {
            laddr: Some(Endpoint::new([10, 77, 0, 201], 5001)),
            ..ours
        };
        let nat = rec(Forward::Nat, RecordKind::Conn);
        let none = BTreeSet::new();
        let ip = own.first().copied();
        assert_eq!(overlap(&conn_of(&ours, &none), &own), ip);
        assert_eq!(overlap(&conn_of(&theirs, &none), &own), None);
        assert_eq!(overlap(&conn_of(&nat, &none), &own), None);
        // The peer sends ours as carried (our address is one of its
        // peer_local_addresses): taken, and it survives the wire.
        let carried = conn_of(&ours, &own);
        assert!(carried.carried && !conn_of(&theirs, &own).carried);
        let mut b = MessageBuilder::new(1, 1444);
        b.push(&carried).unwrap();
        let back = &wire::parse(&b.take().unwrap()).unwrap().conns[0];
        assert_eq!(overlap(back, &own), None);
        assert_eq!(record_of(back).unwrap(), ours);
    }
}
