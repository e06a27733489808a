//! What the pipeline benches share: the lab's one-service tables (the
//! appliance at 10.77.0.2 on port 0, VIP 10.77.0.100:80/tcp, one real
//! server 10.77.0.11:80, local address 10.77.0.200), and a 54-byte
//! TCP/IPv4 frame (no options, no payload) with valid checksums, as a
//! client or server would send it to the appliance's port
//! (`02:00:00:00:00:02`). Not every bench uses every builder.
#![allow(dead_code)]

use rvs_dataplane::sched::SchedKind;
use rvs_dataplane::session::{Endpoint, Timeouts};
use rvs_dataplane::tables::{Interface, RealServer, Service, Tables};
use rvs_dataplane::wire::{ipv4, tcp};

/// The lab's service: round robin over its one real server, through local
/// address 0, nothing else set (callers change what they measure).
pub fn lab_service() -> Service {
    Service {
        vip: Endpoint::new([10, 77, 0, 100], 80),
        proto: 6,
        sched: SchedKind::RoundRobin,
        laddrs: vec![0],
        servers: vec![RealServer {
            addr: Endpoint::new([10, 77, 0, 11], 80),
            weight: 1,
            index: 0,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The lab's tables with `service` as the only one.
pub fn lab_tables(service: Service) -> Tables {
    Tables {
        interfaces: vec![Interface {
            port: 0,
            mac: [2, 0, 0, 0, 0, 2],
            addr: [10, 77, 0, 2],
            prefix_len: 24,
            gateway: None,
            mtu: 1500,
        }],
        services: vec![service],
        laddrs: vec![[10, 77, 0, 200].into()],
        lport_range: (1025, 65535),
        timeouts: Timeouts::default(),
        rs_count: 1,
        generation: 1,
        routes: Default::default(),
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans: Default::default(),
        marks: Default::default(),
    }
}

/// A frame from `smac`, `src` to `dst`, with `flags` (sequence and
/// acknowledgement numbers 0).
pub fn tcp_frame(smac: [u8; 6], src: Endpoint, dst: Endpoint, flags: tcp::TcpFlags) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&smac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    ipv4::emit_header(
        &mut f[14..],
        ipv4::PROTO_TCP,
        src.ip.v4_bits(),
        dst.ip.v4_bits(),
        20,
    );
    let t = &mut f[34..];
    t[0..2].copy_from_slice(&src.port.to_be_bytes());
    t[2..4].copy_from_slice(&dst.port.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags.bits();
    tcp::Packet::new_checked(&mut f[34..])
        .unwrap()
        .fill_checksum_v4(src.ip.v4_bits(), dst.ip.v4_bits());
    f
}
