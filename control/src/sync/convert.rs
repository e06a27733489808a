//! Between the workers' [`SyncRecord`]s and the wire's [`Conn`]s: what a
//! master sends of a session, and what a backup installs of an entry.

use std::net::{IpAddr, SocketAddr};

use dataplane::addr::Addr;
use dataplane::session::Endpoint;
use dataplane::sync_feed::{RecordKind, SyncRecord};
use dataplane::tables::Forward;

use super::wire::{flags, Conn};

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

/// The entry a master sends for `r`. FULLNAT and NAT both travel as
/// masquerading (the kernel's `IP_VS_CONN_F_MASQ`); FULLNAT adds its local
/// address in rvs's option, which a kernel backup skips.
#[must_use]
pub fn conn_of(r: &SyncRecord) -> Conn {
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
    Conn {
        protocol: r.proto,
        flags: f,
        state: u16::from(r.state),
        client: sock(r.client),
        vip: sock(r.vip),
        dest: sock(r.rs),
        fwmark: 0,
        timeout_s: r.timeout_s,
        seq: None,
        pe: None,
        local: r.laddr.map(sock),
    }
}

/// The record a backup offers its workers for entry `c` (the forwarding
/// method is the backup's own server's; this one is only a hint).
#[must_use]
pub fn record_of(c: &Conn) -> SyncRecord {
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
    SyncRecord {
        kind,
        proto: c.protocol,
        forward,
        state: u8::try_from(c.state).unwrap_or(0),
        client: endpoint(c.client),
        vip: endpoint(c.vip),
        rs: endpoint(c.dest),
        laddr: c.local.map(endpoint),
        timeout_s: c.timeout_s,
    }
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
        }
    }

    #[test]
    fn every_method_and_templates_survive_the_wire() {
        for forward in [Forward::FullNat, Forward::Nat, Forward::Dr, Forward::Tun] {
            for kind in [RecordKind::Conn, RecordKind::Template] {
                let r = rec(forward, kind);
                let mut b = MessageBuilder::new(1, 1472);
                b.push(&conn_of(&r)).unwrap();
                let m = wire::parse(&b.take().unwrap()).unwrap();
                let back = record_of(&m.conns[0]);
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
    fn connections_not_established_are_flagged_inactive() {
        let mut r = rec(Forward::Nat, RecordKind::Conn);
        assert_eq!(conn_of(&r).flags & flags::INACTIVE, 0);
        r.state = 4;
        assert_ne!(conn_of(&r).flags & flags::INACTIVE, 0);
    }
}
