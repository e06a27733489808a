//! A harness for counting the established path's instructions: one FULLNAT
//! TCP/IPv4 connection (opened by its SYN and the server's SYN-ACK, so it
//! has its server-side ISN offset as every FULLNAT connection does), then
//! `N` times the client's 64-byte ACK and the server's reply, each
//! described and handed to `Pipeline::process_counted` as the worker does
//! with a burst's frames. Not a test and not a timing: run it under
//! callgrind at two lengths and subtract (BENCHMARKS.md, "Established
//! path, session 12"):
//!
//! ```text
//! cargo build --release -p rvs-dataplane --no-default-features --example established_count
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.1 \
//!     target/release/examples/established_count 100000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.2 \
//!     target/release/examples/established_count 200000
//! ```
//!
//! The difference of the two totals over 2 × 100,000 is the instructions a
//! packet (the frame's 64-byte copy into its buffer included). `udp`, `v6`
//! as a second argument: the same with a UDP/IPv4 flow, or TCP/IPv6.

use std::hint::black_box;
use std::sync::Arc;

use rvs_dataplane::neigh::{NeighEntry, NeighMap};
use rvs_dataplane::packet::PacketBuf;
use rvs_dataplane::pipeline::{Pipeline, Verdict};
use rvs_dataplane::sched::SchedKind;
use rvs_dataplane::session::{Endpoint, Timeouts};
use rvs_dataplane::tables::{Interface, RealServer, Service, Tables};
use rvs_dataplane::time::Millis;
use rvs_dataplane::wire::{ipv4, ipv6, tcp, udp};

/// Frame length of the loop method's TCP/IPv4 and UDP/IPv4 frames.
const FRAME_LEN: usize = 64;
/// Frame length of its IPv6 frames.
const FRAME_LEN_V6: usize = 84;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp4,
    Udp4,
    Tcp6,
}

impl Kind {
    fn proto(self) -> u8 {
        match self {
            Kind::Udp4 => ipv4::PROTO_UDP,
            _ => ipv4::PROTO_TCP,
        }
    }
    fn ep(self, a: [u8; 4], port: u16) -> Endpoint {
        if self == Kind::Tcp6 {
            let mut b = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            b[12..].copy_from_slice(&a);
            Endpoint::at(b.into(), port)
        } else {
            Endpoint::new(a, port)
        }
    }
}

fn tables(kind: Kind) -> Tables {
    let mut routes = rvs_dataplane::route::Routes::default();
    if kind == Kind::Tcp6 {
        routes.v6 = rvs_dataplane::route::RouteTable::new([rvs_dataplane::route::Route {
            prefix: kind.ep([0; 4], 0).ip.octets(),
            len: 96,
            hop: rvs_dataplane::route::NextHop::OnLink { port: 0 },
        }])
        .expect("one route");
    }
    Tables {
        interfaces: vec![Interface {
            port: 0,
            mac: [2, 0, 0, 0, 0, 2],
            addr: [10, 77, 0, 2],
            prefix_len: 24,
            gateway: None,
            mtu: 1500,
        }],
        services: vec![Service {
            vip: kind.ep([10, 77, 0, 100], 80),
            proto: kind.proto(),
            sched: SchedKind::RoundRobin,
            laddrs: vec![0],
            servers: vec![RealServer {
                addr: kind.ep([10, 77, 0, 11], 80),
                weight: 1,
                index: 0,
                ..Default::default()
            }],
            ..Default::default()
        }],
        laddrs: vec![kind.ep([10, 77, 0, 200], 0).ip],
        lport_range: (1025, 65535),
        timeouts: Timeouts::default(),
        rs_count: 1,
        generation: 1,
        routes,
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans: Default::default(),
        marks: Default::default(),
    }
}

/// A frame from `src` to `dst` to the appliance's port, with `flags` (TCP),
/// sequence and acknowledgement numbers, padded with payload to the loop
/// method's length; checksums valid.
fn frame(
    kind: Kind,
    src: Endpoint,
    dst: Endpoint,
    flags: tcp::TcpFlags,
    seq: u32,
    ack: u32,
) -> Vec<u8> {
    let v6 = kind == Kind::Tcp6;
    let (total, l3) = if v6 {
        (FRAME_LEN_V6, ipv6::HEADER_LEN)
    } else {
        (FRAME_LEN, 20)
    };
    let mut f = vec![0u8; total];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2; 6]);
    let l4_len = total - 14 - l3;
    if v6 {
        f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        let ip = &mut f[14..];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        ip[6] = kind.proto();
        ip[7] = 64;
        ip[8..24].copy_from_slice(&src.ip.octets());
        ip[24..40].copy_from_slice(&dst.ip.octets());
    } else {
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        ipv4::emit_header(
            &mut f[14..],
            kind.proto(),
            src.ip.v4_bits(),
            dst.ip.v4_bits(),
            l4_len as u16,
        );
    }
    let t = &mut f[14 + l3..];
    t[0..2].copy_from_slice(&src.port.to_be_bytes());
    t[2..4].copy_from_slice(&dst.port.to_be_bytes());
    if kind == Kind::Udp4 {
        t[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        udp::Packet::new_checked(&mut *t)
            .expect("udp")
            .fill_checksum_v4(src.ip.v4_bits(), dst.ip.v4_bits());
    } else {
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags.bits();
        t[14..16].copy_from_slice(&65535u16.to_be_bytes());
        let mut s = tcp::Packet::new_checked(&mut *t).expect("tcp");
        if v6 {
            s.fill_checksum_v6(src.ip.octets(), dst.ip.octets());
        } else {
            s.fill_checksum_v4(src.ip.v4_bits(), dst.ip.v4_bits());
        }
    }
    f
}

/// One frame as the worker hands it over: described, then processed.
#[inline(never)]
fn one(p: &mut Pipeline, buf: &mut [u8; 128], template: &[u8]) -> Verdict {
    let len = template.len();
    buf[..len].copy_from_slice(template);
    let mut desc = None;
    p.describe_into(&buf[..len], &mut desc);
    let mut pkt = PacketBuf::new(&mut buf[..], 0, len);
    p.process_counted(&mut pkt, 0, desc.as_ref(), Millis(1))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let kind = match args.next().as_deref() {
        Some("udp") => Kind::Udp4,
        Some("v6") => Kind::Tcp6,
        _ => Kind::Tcp4,
    };
    let rs = kind.ep([10, 77, 0, 11], 80);
    let neigh = Arc::new(NeighMap::new(vec![NeighEntry {
        ip: rs.ip,
        mac: [2, 0, 0, 0, 0, 0x11],
        port: 0,
    }]));
    let mut p = Pipeline::new(Arc::new(tables(kind)), neigh, 65536, 1, 0, 1);
    let client = kind.ep([10, 77, 0, 10], 40000);
    let vip = kind.ep([10, 77, 0, 100], 80);
    let local = kind.ep([10, 77, 0, 200], 1025);
    let fwd = Verdict::Forward { port: 0 };
    let (ack, reply) = if kind == Kind::Udp4 {
        let mut first = frame(kind, client, vip, tcp::TcpFlags::empty(), 0, 0);
        assert_eq!(p.process(&mut first, 0, Millis(0)), fwd, "first datagram");
        (
            frame(kind, client, vip, tcp::TcpFlags::empty(), 0, 0),
            frame(kind, rs, local, tcp::TcpFlags::empty(), 0, 0),
        )
    } else {
        let mut syn = frame(kind, client, vip, tcp::SYN, 1, 0);
        assert_eq!(p.process(&mut syn, 0, Millis(0)), fwd, "SYN");
        // The server answers the SYN as it arrived (its ISN shifted).
        let isn = u32::from_be_bytes(syn[syn.len() - 10 - 20 + 4..][..4].try_into().expect("4"));
        let mut synack = frame(
            kind,
            rs,
            local,
            tcp::SYN | tcp::ACK,
            5000,
            isn.wrapping_add(1),
        );
        assert_eq!(p.process(&mut synack, 0, Millis(0)), fwd, "SYN-ACK");
        (
            frame(kind, client, vip, tcp::ACK, 2, 5001),
            frame(kind, rs, local, tcp::ACK, 5001, isn.wrapping_add(1)),
        )
    };
    let mut buf = [0u8; 128];
    for _ in 0..n {
        let a = one(&mut p, &mut buf, black_box(&ack));
        let b = one(&mut p, &mut buf, black_box(&reply));
        if a != fwd || b != fwd {
            eprintln!("not forwarded: {a:?}, {b:?}");
            std::process::exit(1);
        }
    }
    println!("{} packets forwarded", 2 * n);
}
