//! A worker's neighbour (ARP) cache, just enough for the lab: learned from
//! ARP packets, resolved on demand by ARP requests sent from the worker's
//! housekeeping, re-requested each second while unresolved and refreshed
//! every 30 s. Bounded: at most [`CAPACITY`] entries; when full, new
//! addresses are not tracked (resolution fails and is counted as a
//! neighbour miss). The full neighbour subsystem (control-owned table,
//! states, NDP, queued packets) is issue #7.

use crate::time::Millis;
use crate::wire::{arp, ethernet, MacAddr, BROADCAST_MAC};

/// Maximum tracked neighbours.
pub const CAPACITY: usize = 1024;
/// Length of an ARP frame (Ethernet header + ARP), without padding.
pub const ARP_FRAME_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;
const RETRY_MS: u64 = 1000;
const REFRESH_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    ip: [u8; 4],
    port: u16,
    mac: Option<MacAddr>,
    last_request: Option<Millis>,
    updated: Millis,
}

/// The cache.
#[derive(Debug, Default)]
pub struct NeighCache {
    entries: Vec<Entry>,
}

impl NeighCache {
    /// An empty cache with its capacity reserved.
    #[must_use]
    pub fn new() -> Self {
        Self { entries: Vec::with_capacity(CAPACITY) }
    }

    /// The MAC of `ip`, if resolved.
    #[inline]
    #[must_use]
    pub fn lookup(&self, ip: [u8; 4]) -> Option<MacAddr> {
        self.entries.iter().find(|e| e.ip == ip).and_then(|e| e.mac)
    }

    /// Records that `ip` is at `mac` (seen on `port`).
    pub fn learn(&mut self, ip: [u8; 4], mac: MacAddr, port: u16, now: Millis) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.ip == ip) {
            e.mac = Some(mac);
            e.port = port;
            e.updated = now;
        } else if self.entries.len() < CAPACITY {
            self.entries.push(Entry { ip, port, mac: Some(mac), last_request: None, updated: now });
        }
    }

    /// Asks for `ip` to be resolved on `port` (an ARP request goes out at the
    /// next [`NeighCache::due_requests`]).
    pub fn want(&mut self, ip: [u8; 4], port: u16) {
        if !self.entries.iter().any(|e| e.ip == ip) && self.entries.len() < CAPACITY {
            self.entries.push(Entry { ip, port, mac: None, last_request: None, updated: Millis(0) });
        }
    }

    /// Resolved entries, for listings.
    pub fn resolved(&self) -> impl Iterator<Item = ([u8; 4], MacAddr)> + '_ {
        self.entries.iter().filter_map(|e| e.mac.map(|m| (e.ip, m)))
    }

    /// Calls `send(port, target_ip)` for each entry needing an ARP request
    /// now: unresolved and not asked within a second, or resolved but not
    /// refreshed for 30 s.
    pub fn due_requests(&mut self, now: Millis, mut send: impl FnMut(u16, [u8; 4])) {
        for e in &mut self.entries {
            let asked_recently = e.last_request.is_some_and(|t| t.until(now) < RETRY_MS);
            let due = match e.mac {
                None => !asked_recently,
                Some(_) => e.updated.until(now) >= REFRESH_MS && !asked_recently,
            };
            if due {
                e.last_request = Some(now);
                send(e.port, e.ip);
            }
        }
    }
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
    fn want_then_request_then_learn() {
        let mut n = NeighCache::new();
        n.want([10, 0, 0, 11], 0);
        let mut sent = vec![];
        n.due_requests(Millis(0), |p, ip| sent.push((p, ip)));
        assert_eq!(sent, vec![(0, [10, 0, 0, 11])]);
        sent.clear();
        n.due_requests(Millis(500), |p, ip| sent.push((p, ip)));
        assert!(sent.is_empty(), "retried too soon");
        n.due_requests(Millis(1000), |p, ip| sent.push((p, ip)));
        assert_eq!(sent.len(), 1);
        n.learn([10, 0, 0, 11], [2; 6], 0, Millis(1100));
        assert_eq!(n.lookup([10, 0, 0, 11]), Some([2; 6]));
        sent.clear();
        n.due_requests(Millis(20_000), |p, ip| sent.push((p, ip)));
        assert!(sent.is_empty());
        n.due_requests(Millis(31_100), |p, ip| sent.push((p, ip)));
        assert_eq!(sent.len(), 1, "refresh after 30 s");
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
