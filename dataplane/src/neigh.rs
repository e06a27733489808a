//! Neighbours as the data plane sees them: a read-only snapshot of resolved
//! (IP → MAC) entries published by control, and the events a worker sends
//! control about them.
//!
//! Workers never resolve anything themselves. A worker that sees an ARP
//! packet from an on-link host reports what it learned ([`NeighEvent::Learned`]);
//! one that needs a MAC it does not have reports [`NeighEvent::Wanted`] and
//! drops the packet (counted as `neighbour_miss`; TCP retransmits the SYN).
//! Control keeps the table (states, retries, refresh), asks a worker to send
//! ARP requests, and publishes a new [`NeighMap`] to every worker when an
//! entry changes, so all workers agree whichever one the reply reached.

use crate::addr::Addr;
use crate::wire::{arp, ethernet, MacAddr, BROADCAST_MAC};

/// Length of an ARP frame (Ethernet header + ARP), without padding.
pub const ARP_FRAME_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;

/// A resolved neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighEntry {
    /// Address.
    pub ip: Addr,
    /// Its MAC.
    pub mac: MacAddr,
    /// Port position it was seen on.
    pub port: u16,
}

/// The published neighbour snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NeighMap {
    entries: Vec<NeighEntry>,
}

impl NeighMap {
    /// A snapshot of `entries`.
    #[must_use]
    pub fn new(mut entries: Vec<NeighEntry>) -> Self {
        entries.sort_unstable_by_key(|e| e.ip);
        entries.dedup_by_key(|e| e.ip);
        Self { entries }
    }

    /// The MAC of `ip`, if resolved.
    #[inline]
    #[must_use]
    pub fn lookup(&self, ip: Addr) -> Option<MacAddr> {
        self.entries.binary_search_by_key(&ip, |e| e.ip).ok().map(|i| self.entries[i].mac)
    }

    /// All entries, sorted by address.
    #[must_use]
    pub fn entries(&self) -> &[NeighEntry] {
        &self.entries
    }
}

/// What a worker tells control about neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighEvent {
    /// An ARP packet showed `ip` at `mac` on `port`.
    Learned(NeighEntry),
    /// A packet needed the MAC of `ip` (next hop on `port`).
    Wanted {
        /// Address to resolve.
        ip: Addr,
        /// Port position to ask on.
        port: u16,
    },
}

/// Writes a broadcast ARP request for `target` from (`mac`, `ip`) into `frame`.
pub fn emit_request(frame: &mut [u8; ARP_FRAME_LEN], mac: MacAddr, ip: [u8; 4], target: [u8; 4]) {
    let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
    if let Ok(mut eth) = ethernet::Frame::new_checked(l2) {
        eth.set_dst(BROADCAST_MAC);
        eth.set_src(mac);
        eth.set_ethertype(ethernet::ETHERTYPE_ARP);
    }
    // `l3` is exactly one ARP packet long; new_checked would refuse the
    // still-zeroed type fields, so write through an unchecked view.
    arp::Packet::new_unchecked(l3).emit(arp::OP_REQUEST, mac, ip, [0; 6], target);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_in_snapshot() {
        let m = NeighMap::new(vec![
            NeighEntry { ip: Addr::v4([10, 0, 0, 12]), mac: [2; 6], port: 0 },
            NeighEntry { ip: Addr::v4([10, 0, 0, 11]), mac: [1; 6], port: 0 },
        ]);
        assert_eq!(m.lookup(Addr::v4([10, 0, 0, 11])), Some([1; 6]));
        assert_eq!(m.lookup(Addr::v4([10, 0, 0, 12])), Some([2; 6]));
        assert_eq!(m.lookup(Addr::v4([10, 0, 0, 13])), None);
    }

    #[test]
    fn request_frame_parses() {
        let mut f = [0u8; ARP_FRAME_LEN];
        emit_request(&mut f, [1; 6], [10, 0, 0, 2], [10, 0, 0, 11]);
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.dst(), BROADCAST_MAC);
        assert_eq!(eth.ethertype(), ethernet::ETHERTYPE_ARP);
        let a = arp::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!((a.op(), a.sender_ip(), a.target_ip()), (arp::OP_REQUEST, [10, 0, 0, 2], [10, 0, 0, 11]));
    }
}
