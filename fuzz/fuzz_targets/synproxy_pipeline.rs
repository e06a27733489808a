//! The SYN proxy through the whole pipeline, on sequences of segments: a
//! worker with three SYN-proxied services (FULLNAT telling its servers the
//! client by PROXY v2, FULLNAT by TOA, and NAT), each with one connection
//! whose server has not answered yet and one whose handshake is complete
//! (primed by real handshakes: SYN, the cookie's SYN-ACK read back, the
//! ACK, the server's SYN-ACK). The fuzz input is up to 16 segments, each on
//! one of those connections in either direction, with fuzzed flags,
//! sequence and acknowledgement numbers near the connection's own,
//! options and payload, 300 ms apart (so retransmission timing and the
//! stash's expiry are reached). Nothing may panic; a frame sent stays
//! inside its buffer; every local port lent is held by a session.
//!
//! The connections' numbers are read from the frames the pipeline wrote,
//! so the fuzzer needs no cookie of its own; checksums are not verified
//! under `cfg(fuzzing)`.
#![no_main]

mod harness;

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::addr::Addr;
use rvs_dataplane::neigh::{NeighEntry, NeighMap};
use rvs_dataplane::pipeline::{Pipeline, Verdict};
use rvs_dataplane::sched::SchedKind;
use rvs_dataplane::session::{Endpoint, Timeouts};
use rvs_dataplane::tables::{Forward, Interface, RealServer, Service, Tables};
use rvs_dataplane::time::Millis;
use rvs_dataplane::wire::MacAddr;
use rvs_dataplane::xmit::client_addr::ClientAddress;

const LB_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x02];
const CLIENT_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x0a];
const RS_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x11];
const TCP: u8 = 6;
const SESSIONS: u32 = 64;
const T0: u64 = 1_000_000;
const ISN_C: u32 = 0xfff0_0000;
const ISN_S: u32 = 0x7000_0000;

const fn v4(last: u8) -> Addr {
    Addr::v4([10, 77, 0, last])
}

/// The services: (VIP port, server port, forwarding, client address).
const SERVICES: [(u16, u16, Forward, ClientAddress); 3] = [
    (85, 8085, Forward::FullNat, ClientAddress::ProxyV2),
    (86, 8086, Forward::FullNat, ClientAddress::Toa),
    (87, 8087, Forward::Nat, ClientAddress::None),
];

fn tables() -> Arc<Tables> {
    let services = SERVICES
        .iter()
        .enumerate()
        .map(|(i, &(vport, rport, forward, client_address))| Service {
            vip: Endpoint::at(v4(100), vport),
            proto: TCP,
            sched: SchedKind::RoundRobin,
            laddrs: if forward == Forward::FullNat {
                vec![0]
            } else {
                vec![]
            },
            servers: vec![RealServer {
                addr: Endpoint::at(v4(11), rport),
                weight: 1,
                index: i as u16,
                forward,
                ..Default::default()
            }],
            client_address,
            syn_proxy: true,
            ..Default::default()
        })
        .collect();
    Arc::new(Tables {
        interfaces: vec![Interface {
            port: 0,
            mac: LB_MAC,
            addr: [10, 77, 0, 2],
            prefix_len: 24,
            gateway: None,
            mtu: 1500,
        }],
        services,
        laddrs: vec![v4(200)],
        lport_range: (5000, 5099),
        timeouts: Timeouts::default(),
        rs_count: SERVICES.len() as u16,
        generation: 1,
        routes: Default::default(),
        marks: Default::default(),
        tentative: Vec::new(),
        vlans: Default::default(),
        standby: Vec::new(),
    })
}

/// One primed connection: its two ends as each side sees them and the
/// numbers each side would use next.
#[derive(Clone, Copy)]
struct Conn {
    client: Endpoint,
    vip: Endpoint,
    rs: Endpoint,
    /// Where the server sees it from (FULLNAT: local address and port).
    from: Endpoint,
    /// Client side: its next sequence number, and the cookie + 1.
    client_seq: u32,
    client_ack: u32,
    /// Server side: its next sequence number, and what it acknowledges.
    server_seq: u32,
    server_ack: u32,
}

/// An IPv4 TCP frame (checksums left zero: not verified when fuzzing).
#[allow(clippy::too_many_arguments)]
fn frame(
    src_mac: MacAddr,
    src: Endpoint,
    dst: Endpoint,
    seq: u32,
    ack: u32,
    flags: u8,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let olen = opts.len() / 4 * 4;
    let tcp_len = 20 + olen + payload.len();
    let mut f = Vec::with_capacity(34 + tcp_len);
    f.extend_from_slice(&LB_MAC);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + tcp_len) as u16;
    f.extend_from_slice(&[0x45, 0, total.to_be_bytes()[0], total.to_be_bytes()[1]]);
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, TCP, 0, 0]);
    f.extend_from_slice(&src.ip.octets()[12..]);
    f.extend_from_slice(&dst.ip.octets()[12..]);
    f.extend_from_slice(&src.port.to_be_bytes());
    f.extend_from_slice(&dst.port.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.push(((20 + olen) / 4) as u8 * 16);
    f.push(flags);
    f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(&opts[..olen]);
    f.extend_from_slice(payload);
    f
}

/// One frame through `p` at `now` ms, described by the pipeline itself.
fn run(p: &mut Pipeline, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
    harness::run(p, frame, Millis(now), false)
}

/// A TCP field of a frame the pipeline wrote (IPv4, 20-byte header).
fn field(f: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([f[34 + at], f[35 + at], f[36 + at], f[37 + at]])
}

/// The TSval of a frame's timestamp option, if it has one.
fn tsval(f: &[u8]) -> Option<u32> {
    let hlen = usize::from(f[46] >> 4) * 4;
    let o = &f[54..34 + hlen];
    let mut i = 0;
    while i < o.len() {
        match o[i] {
            0 => return None,
            1 => i += 1,
            8 if i + 10 <= o.len() => {
                return Some(u32::from_be_bytes([o[i + 2], o[i + 3], o[i + 4], o[i + 5]]))
            }
            _ => i += usize::from(o.get(i + 1).copied().unwrap_or(1).max(2)),
        }
    }
    None
}

/// Opens a proxied connection from client port `cport` to service `svc`;
/// with `answered`, the server's SYN-ACK completes it.
fn open(p: &mut Pipeline, svc: usize, cport: u16, answered: bool) -> Conn {
    let (vport, rport, forward, _) = SERVICES[svc];
    let client = Endpoint::at(v4(10), cport);
    let vip = Endpoint::at(v4(100), vport);
    let rs = Endpoint::at(v4(11), rport);
    let mut syn_opts = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    syn_opts.extend_from_slice(&100u32.to_be_bytes());
    syn_opts.extend_from_slice(&[0, 0, 0, 0, 1, 3, 3, 7]);
    let (v, synack) = run(
        p,
        &frame(CLIENT_MAC, client, vip, ISN_C, 0, 0x02, &syn_opts, b""),
        T0,
    );
    assert!(matches!(v, Verdict::Forward { .. }), "the SYN is answered");
    let cookie = field(&synack, 4);
    let mut ack_opts = vec![1, 1, 8, 10];
    ack_opts.extend_from_slice(&101u32.to_be_bytes());
    ack_opts.extend_from_slice(&tsval(&synack).unwrap_or(0).to_be_bytes());
    let (v, syn) = run(
        p,
        &frame(
            CLIENT_MAC,
            client,
            vip,
            ISN_C + 1,
            cookie.wrapping_add(1),
            0x10,
            &ack_opts,
            b"",
        ),
        T0 + 1,
    );
    assert!(matches!(v, Verdict::Forward { .. }), "the cookie checks");
    let from = if forward == Forward::FullNat {
        let port = u16::from_be_bytes([syn[34], syn[35]]);
        Endpoint::at(v4(200), port)
    } else {
        client
    };
    let syn_seq = field(&syn, 4);
    if answered {
        let mut sopts = vec![2, 4, 0x05, 0xb4, 1, 1, 8, 10];
        sopts.extend_from_slice(&5000u32.to_be_bytes());
        sopts.extend_from_slice(&101u32.to_be_bytes());
        sopts.extend_from_slice(&[1, 3, 3, 5]);
        let (v, _) = run(
            p,
            &frame(
                RS_MAC,
                rs,
                from,
                ISN_S,
                syn_seq.wrapping_add(1),
                0x12,
                &sopts,
                b"",
            ),
            T0 + 2,
        );
        assert!(
            matches!(v, Verdict::Forward { .. }),
            "the SYN-ACK is answered"
        );
    }
    Conn {
        client,
        vip,
        rs,
        from,
        client_seq: ISN_C + 1,
        client_ack: cookie.wrapping_add(1),
        server_seq: ISN_S.wrapping_add(1),
        server_ack: syn_seq.wrapping_add(1),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut p = Pipeline::new(
        tables(),
        Arc::new(NeighMap::new(vec![NeighEntry {
            ip: v4(11),
            mac: RS_MAC,
            port: 0,
        }])),
        SESSIONS,
        42,
        0,
        1,
    );
    let conns: Vec<Conn> = (0..SERVICES.len())
        .flat_map(|svc| [false, true].map(|answered| (svc, answered)))
        .enumerate()
        .map(|(i, (svc, answered))| open(&mut p, svc, 40_000 + i as u16, answered))
        .collect();
    harness::ports_accounted(&p, SESSIONS as usize);
    // Each segment: connection and direction, flags, sequence and
    // acknowledgement offsets, options (length, bytes), payload (length,
    // bytes).
    let mut rest = data;
    let mut now = T0 + 10;
    for _ in 0..16 {
        let [sel, flags, s0, s1, a0, a1, olen, plen, tail @ ..] = rest else {
            break;
        };
        let c = conns[usize::from(*sel & 0x7f) % conns.len()];
        let (olen, plen) = (usize::from(*olen % 44).min(tail.len()), usize::from(*plen));
        let (opts, tail) = tail.split_at(olen);
        let (payload, tail) = tail.split_at(plen.min(tail.len()));
        rest = tail;
        let ds = i32::from(i16::from_be_bytes([*s0, *s1])) as u32;
        let da = i32::from(i16::from_be_bytes([*a0, *a1])) as u32;
        let f = if sel & 0x80 == 0 {
            frame(
                CLIENT_MAC,
                c.client,
                c.vip,
                c.client_seq.wrapping_add(ds),
                c.client_ack.wrapping_add(da),
                *flags,
                opts,
                payload,
            )
        } else {
            frame(
                RS_MAC,
                c.rs,
                c.from,
                c.server_seq.wrapping_add(ds),
                c.server_ack.wrapping_add(da),
                *flags,
                opts,
                payload,
            )
        };
        run(&mut p, &f, now);
        harness::ports_accounted(&p, SESSIONS as usize);
        now += 300;
    }
    p.housekeeping(Millis(now + 4_000_000), SESSIONS as usize);
    harness::ports_accounted(&p, SESSIONS as usize);
});
