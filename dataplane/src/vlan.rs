//! 802.1Q VLAN sub-interfaces, translated at the worker's boundary.
//!
//! A VLAN sub-interface (`dpdk0.100`) is a *logical port*: an index into
//! [`crate::tables::Tables::interfaces`] after the physical ports, with its
//! own addresses, connected routes, neighbours and sessions, exactly like a
//! port. Only the worker knows that it is VLAN `vid` on physical port
//! `parent`, and only at its edges:
//!
//! ```text
//! rx (physical port p) ── tagged? ──no──▶ pipeline(port p)            (untagged: one branch)
//!                           │yes
//!                           ▼
//!        (p, vid) in VlanMap? ──no──▶ drop: unknown_vlan
//!                           │yes: pop the tag
//!                           ▼
//!                  pipeline(logical port)
//!
//! Forward/Punt to a logical port ── push the tag ──▶ the parent's TX queue / TAP
//! ```
//!
//! A tag arrives either in-band (ethertype `0x8100` after the MAC
//! addresses: what NICs without VLAN stripping and DPDK 22.11's
//! `net_af_packet` deliver, the latter re-inserting the tag the kernel took
//! off unless `RTE_ETH_RX_OFFLOAD_VLAN_STRIP` is on) or in the mbuf's
//! metadata (`RTE_MBUF_F_RX_VLAN_STRIPPED` and `vlan_tci`, when a PMD
//! stripped it): [`ingress`] takes both. Tags are always pushed in-band on
//! transmit ([`push`]), which every PMD carries without TX offload support;
//! the 4 bytes come out of the mbuf's headroom and only the 12 bytes of MAC
//! addresses move. A priority tag (VLAN id 0) belongs to the port itself.
//!
//! The exception path gives each sub-interface a TAP of its own (named like
//! it, untagged): the worker punts a sub-interface's frames there after the
//! tag came off, and tags what the kernel sends through it on the way out
//! of the parent port, so the host needs no kernel 802.1Q support.
//!
//! The [`VlanMap`] is part of the published snapshot; lookups are a binary
//! search over a few entries, for tagged frames only. Nothing here
//! allocates after construction.

use crate::packet::PacketBuf;

/// The 802.1Q tag protocol identifier (the ethertype of a tagged frame).
pub const TPID: u16 = 0x8100;
/// Bytes an 802.1Q tag adds to a frame.
pub const TAG_LEN: usize = 4;
/// Largest usable VLAN id (4095 is reserved).
pub const VID_MAX: u16 = 4094;
/// Destination and source MAC addresses: what moves when a tag comes or goes.
const MACS: usize = 12;
const VID_MASK: u16 = 0x0fff;

/// One sub-interface: logical port `port` is VLAN `vid` on physical port `parent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vlan {
    /// The logical port (index in the tables' interfaces).
    pub port: u16,
    /// The physical port carrying it (position in the worker's port list).
    pub parent: u16,
    /// The VLAN id, 1..=4094.
    pub vid: u16,
}

/// The VLAN sub-interfaces of a snapshot, by tag and by logical port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VlanMap {
    /// Sorted by (parent, vid).
    by_tag: Vec<Vlan>,
}

impl VlanMap {
    /// A map of `vlans` (a second entry for the same parent and id, or the
    /// same logical port, is ignored: control validates before this).
    #[must_use]
    pub fn new(vlans: impl IntoIterator<Item = Vlan>) -> Self {
        let mut by_tag: Vec<Vlan> = Vec::new();
        for v in vlans {
            if !by_tag
                .iter()
                .any(|o| (o.parent, o.vid) == (v.parent, v.vid) || o.port == v.port)
            {
                by_tag.push(v);
            }
        }
        by_tag.sort_unstable_by_key(|v| (v.parent, v.vid));
        Self { by_tag }
    }

    /// True without sub-interfaces.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }

    /// Every sub-interface, by (parent, vid).
    #[must_use]
    pub fn vlans(&self) -> &[Vlan] {
        &self.by_tag
    }

    /// The logical port of VLAN `vid` on physical port `parent`.
    #[inline]
    #[must_use]
    pub fn port_of(&self, parent: u16, vid: u16) -> Option<u16> {
        self.by_tag
            .binary_search_by_key(&(parent, vid), |v| (v.parent, v.vid))
            .ok()
            .map(|i| self.by_tag[i].port)
    }

    /// The sub-interface that logical port `port` is, if it is one.
    #[inline]
    #[must_use]
    pub fn vlan_of(&self, port: u16) -> Option<Vlan> {
        self.by_tag.iter().find(|v| v.port == port).copied()
    }
}

/// The tag control information of `frame`'s in-band 802.1Q tag, if it has one.
#[inline]
#[must_use]
pub fn tci(frame: &[u8]) -> Option<u16> {
    match frame.get(MACS..MACS + TAG_LEN) {
        Some(&[0x81, 0x00, hi, lo]) => Some(u16::from_be_bytes([hi, lo])),
        _ => None,
    }
}

/// Removes `pkt`'s in-band tag: the MAC addresses move 4 bytes forward over
/// it and the frame starts 4 bytes later. False, changing nothing, if the
/// frame has no tag (or too few bytes after it for an ethertype).
pub fn pop(pkt: &mut PacketBuf<'_>) -> bool {
    let f = pkt.frame_mut();
    if f.len() < MACS + TAG_LEN + 2 || tci(f).is_none() {
        return false;
    }
    f.copy_within(..MACS, TAG_LEN);
    pkt.advance(TAG_LEN);
    true
}

/// Inserts an in-band tag carrying `vid` after `pkt`'s MAC addresses, using
/// 4 bytes of headroom. False, changing nothing, without the headroom or
/// without MAC addresses to move.
pub fn push(pkt: &mut PacketBuf<'_>, vid: u16) -> bool {
    if pkt.frame().len() < MACS || !pkt.prepend(TAG_LEN) {
        return false;
    }
    write_tag(pkt.frame_mut(), vid);
    true
}

/// Given a frame whose first 4 bytes are new room, moves the MAC addresses
/// into it and writes the tag after them.
#[inline]
fn write_tag(f: &mut [u8], vid: u16) {
    f.copy_within(TAG_LEN..TAG_LEN + MACS, 0);
    f[MACS..MACS + 2].copy_from_slice(&TPID.to_be_bytes());
    f[MACS + 2..MACS + TAG_LEN].copy_from_slice(&(vid & VID_MASK).to_be_bytes());
}

/// Where a frame received on `port` belongs: `port` itself if it is
/// untagged (or priority-tagged, VLAN id 0), else the sub-interface of its
/// VLAN on `port`, with an in-band tag removed. `stripped` is the tag a PMD
/// already took off into the mbuf's metadata. `None`: a VLAN `port` has no
/// sub-interface for (the frame is dropped as `unknown_vlan`).
#[inline]
pub fn ingress(
    pkt: &mut PacketBuf<'_>,
    stripped: Option<u16>,
    port: u16,
    map: &VlanMap,
) -> Option<u16> {
    let tci = match stripped {
        Some(t) => t,
        None => match tci(pkt.frame()) {
            None => return Some(port),
            Some(t) => {
                if !pop(pkt) {
                    return None;
                }
                t
            }
        },
    };
    match tci & VID_MASK {
        0 => Some(port),
        vid => map.port_of(port, vid),
    }
}

/// For a frame leaving through logical port `port`: `Some((parent, vid))`
/// if `port` is a sub-interface (the caller tags the frame and sends it out
/// of `parent`), `None` for a physical port.
#[inline]
#[must_use]
pub fn egress(port: u16, map: &VlanMap) -> Option<(u16, u16)> {
    map.vlan_of(port).map(|v| (v.parent, v.vid))
}

/// Mbuf-level versions of [`pop`]/[`push`] for the worker.
#[cfg(feature = "dpdk")]
pub mod mbuf {
    use super::{write_tag, VlanMap, MACS, TAG_LEN};
    use crate::dpdk::Mbuf;
    use crate::packet::PacketBuf;

    /// [`super::ingress`] on an mbuf: the logical port the frame belongs
    /// to, its tag (in-band or in the metadata) consumed; `None` for an
    /// unknown VLAN.
    #[inline]
    pub fn ingress(m: &mut Mbuf, port: u16, map: &VlanMap) -> Option<u16> {
        let stripped = m.take_vlan_stripped();
        if stripped.is_none() && super::tci(m.data()).is_none() {
            return Some(port);
        }
        tagged(m, stripped, port, map)
    }

    #[cold]
    fn tagged(m: &mut Mbuf, stripped: Option<u16>, port: u16, map: &VlanMap) -> Option<u16> {
        let (room, off, len) = m.room_mut();
        let mut pkt = PacketBuf::new(room, off, len);
        let out = super::ingress(&mut pkt, stripped, port, map);
        let (off2, len2) = pkt.window();
        if (off2, len2) != (off, len) && !m.set_window(off2, len2) {
            return None;
        }
        out
    }

    /// Tags `m` with `vid` in-band (4 bytes of headroom). False if the mbuf
    /// has no room in front or is too short.
    #[cold]
    pub fn push(m: &mut Mbuf, vid: u16) -> bool {
        if m.len() < MACS {
            return false;
        }
        match m.prepend(TAG_LEN) {
            Some(_) => {
                write_tag(m.data_mut(), vid);
                true
            }
            None => false,
        }
    }

    /// Hands a frame of sub-interface `port` to another worker: its tag goes
    /// into the metadata, where that worker's [`ingress`] finds it.
    #[cold]
    pub fn mark(m: &mut Mbuf, port: u16, map: &VlanMap) {
        if let Some(v) = map.vlan_of(port) {
            m.set_vlan_stripped(v.vid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> VlanMap {
        VlanMap::new([
            Vlan {
                port: 2,
                parent: 0,
                vid: 100,
            },
            Vlan {
                port: 3,
                parent: 1,
                vid: 100,
            },
            Vlan {
                port: 4,
                parent: 0,
                vid: 7,
            },
        ])
    }

    /// An untagged IPv4 frame (dst, src, 0x0800, payload) with `head` bytes of headroom.
    fn frame(head: usize) -> Vec<u8> {
        let mut v = vec![0xee; head];
        v.extend_from_slice(&[
            1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x08, 0x00, 0x45, 0, 0, 20,
        ]);
        v
    }

    #[test]
    fn push_then_pop_restores_the_frame() {
        let mut buf = frame(8);
        let mut p = PacketBuf::new(&mut buf, 8, 18);
        assert!(push(&mut p, 100));
        assert_eq!(p.window(), (4, 22));
        assert_eq!(
            &p.frame()[..18],
            &[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x81, 0x00, 0x00, 100, 0x08, 0x00]
        );
        assert_eq!(tci(p.frame()), Some(100));
        assert!(pop(&mut p));
        assert_eq!(p.window(), (8, 18));
        assert_eq!(p.frame(), &frame(0)[..]);
        assert!(!pop(&mut p), "no tag left");
        assert_eq!(p.window(), (8, 18));
    }

    #[test]
    fn push_needs_headroom_and_keeps_the_priority_bits_out_of_the_id() {
        let mut buf = frame(3);
        let mut p = PacketBuf::new(&mut buf, 3, 18);
        assert!(!push(&mut p, 100));
        assert_eq!(p.window(), (3, 18), "nothing changed");
        let mut buf = frame(4);
        let mut p = PacketBuf::new(&mut buf, 4, 18);
        assert!(push(&mut p, 0xf123));
        assert_eq!(tci(p.frame()), Some(0x0123));
        let mut short = [0u8; 20];
        assert!(
            !push(&mut PacketBuf::new(&mut short, 10, 10), 5),
            "no MAC addresses to move"
        );
    }

    #[test]
    fn ingress_maps_tags_to_sub_interfaces() {
        let m = map();
        // Untagged: the port itself, untouched.
        let mut buf = frame(4);
        let mut p = PacketBuf::new(&mut buf, 4, 18);
        assert_eq!(ingress(&mut p, None, 0, &m), Some(0));
        assert_eq!(p.window(), (4, 18));
        // In-band VLAN 100 on port 0 → logical port 2, tag gone.
        assert!(push(&mut p, 100));
        assert_eq!(ingress(&mut p, None, 0, &m), Some(2));
        assert_eq!(p.frame(), &frame(0)[..]);
        // The same id on port 1 is another sub-interface.
        assert!(push(&mut p, 100));
        assert_eq!(ingress(&mut p, None, 1, &m), Some(3));
        // Unknown: VLAN 7 exists on port 0 only.
        assert!(push(&mut p, 7));
        assert_eq!(ingress(&mut p, None, 1, &m), None);
        // Stripped by the PMD: metadata only, bytes untouched.
        let mut buf = frame(4);
        let mut p = PacketBuf::new(&mut buf, 4, 18);
        assert_eq!(ingress(&mut p, Some(0x2000 | 7), 0, &m), Some(4));
        assert_eq!(p.window(), (4, 18));
        assert_eq!(ingress(&mut p, Some(9), 0, &m), None);
        // Priority tag (id 0): the port itself, tag removed.
        assert!(push(&mut p, 0));
        assert_eq!(ingress(&mut p, None, 1, &m), Some(1));
        assert_eq!(p.frame(), &frame(0)[..]);
        // A tag with nothing after it is malformed: dropped.
        let mut t = [1u8, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x81, 0, 0, 100];
        assert_eq!(ingress(&mut PacketBuf::whole(&mut t), None, 0, &m), None);
    }

    #[test]
    fn the_map_answers_both_ways() {
        let m = map();
        assert_eq!(m.port_of(0, 100), Some(2));
        assert_eq!(m.port_of(1, 100), Some(3));
        assert_eq!(m.port_of(0, 7), Some(4));
        assert_eq!(m.port_of(1, 7), None);
        assert_eq!(egress(2, &m), Some((0, 100)));
        assert_eq!(egress(4, &m), Some((0, 7)));
        assert_eq!(egress(0, &m), None);
        assert!(VlanMap::default().is_empty() && !m.is_empty());
        let dup = VlanMap::new([
            Vlan {
                port: 2,
                parent: 0,
                vid: 100,
            },
            Vlan {
                port: 3,
                parent: 0,
                vid: 100,
            },
        ]);
        assert_eq!(dup.vlans().len(), 1);
    }
}
