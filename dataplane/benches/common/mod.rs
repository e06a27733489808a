//! What the pipeline benches share: a 54-byte TCP/IPv4 frame (no options,
//! no payload) with valid checksums, as a client or server would send it
//! to the appliance's port (`02:00:00:00:00:02`).

use rvs_dataplane::session::Endpoint;
use rvs_dataplane::wire::{ipv4, tcp};

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
