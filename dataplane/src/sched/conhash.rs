//! Consistent hashing on the client address (DPVS `ip_vs_conhash.c`).
//!
//! Each server with weight above 0 puts `weight / gcd * 160` points on a
//! 32-bit hash ring (DPVS's `REPLICA`); a client goes to the owner of the
//! first point at or after the hash of its address, wrapping around. Adding
//! or removing one server of `N` moves about `1/N` of the clients. A server
//! found overloaded is not replaced by the next one (DPVS returns no server
//! too). Control builds the ring ([`build`]); workers binary-search it.
//!
//! Points are hashed with SipHash-1-3 under fixed keys over (address, port,
//! replica), so the ring is the same on every run and host; DPVS uses MD5
//! over the text form, which this does not reproduce. Very unequal weights
//! are scaled down so a ring has at most [`MAX_POINTS`] points.

use super::hash::{hsiphash, hsiphash_u32, SipKey};
use super::{gcd_of, Backends, Flow, Member, SchedTable};

/// Points per unit of weight (DPVS `REPLICA`).
pub const REPLICA: u32 = 160;
/// Most points on one ring (2 MiB of `(u32, u16)` pairs).
pub const MAX_POINTS: u64 = 1 << 18;
const POINT_KEY: SipKey = SipKey(0x636f_6e68_6173_6831, 0x7276_7320_7269_6e67);
const CLIENT_KEY: SipKey = SipKey(0x636f_6e68_6173_6832, 0x7276_7320_6b65_7973);

/// The ring for `members` in list order: `(hash, position)`, sorted.
#[must_use]
pub fn build(members: &[Member]) -> Box<[(u32, u16)]> {
    let gcd = gcd_of(members.iter().map(|m| m.weight));
    if gcd == 0 {
        return Box::new([]);
    }
    let units: u64 = members.iter().map(|m| u64::from(m.weight / gcd)).sum();
    let want = units * u64::from(REPLICA);
    let mut ring = Vec::with_capacity(want.min(MAX_POINTS) as usize);
    for (p, m) in members.iter().enumerate() {
        if m.weight == 0 {
            continue;
        }
        let mut n = u64::from(m.weight / gcd) * u64::from(REPLICA);
        if want > MAX_POINTS {
            n = (n * MAX_POINTS / want).max(1);
        }
        for r in 0..n as u32 {
            let mut id = [0u8; 10];
            id[..4].copy_from_slice(&m.addr);
            id[4..6].copy_from_slice(&m.port.to_be_bytes());
            id[6..].copy_from_slice(&r.to_le_bytes());
            ring.push((hsiphash(&id, POINT_KEY), p as u16));
        }
    }
    ring.sort_unstable();
    ring.into_boxed_slice()
}

/// The owner of `flow`'s client on the ring, if available.
#[inline]
pub fn pick<B: Backends>(table: &SchedTable, b: &B, flow: &Flow) -> Option<usize> {
    let SchedTable::Ring(ring) = table else {
        return None;
    };
    if ring.is_empty() {
        return None;
    }
    let h = hsiphash_u32(u32::from_be_bytes(flow.client), CLIENT_KEY);
    let at = ring.partition_point(|(x, _)| *x < h);
    let p = usize::from(ring[if at == ring.len() { 0 } else { at }].1);
    (p < b.len() && b.available(p)).then_some(p)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::testkit::Servers;
    use super::*;

    fn members(n: usize) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                addr: [10, 2, 0, i as u8 + 1],
                port: 80,
                weight: 1,
                last_weight: 1,
            })
            .collect()
    }

    fn owners(ring: &[(u32, u16)], s: &Servers, clients: u32) -> HashMap<u32, usize> {
        let t = SchedTable::Ring(ring.into());
        (0..clients)
            .filter_map(|c| {
                let f = Flow {
                    client: (0x0a00_0000 + c).to_be_bytes(),
                    client_port: 1,
                    vip: [0; 4],
                    vip_port: 0,
                };
                pick(&t, s, &f).map(|p| (c, p))
            })
            .collect()
    }

    #[test]
    fn balanced_stable_and_minimal_moves() {
        let all = members(8);
        let ring = build(&all);
        assert_eq!(ring.len(), 8 * 160);
        let before = owners(&ring, &Servers::weights(&[1; 8]), 20000);
        let mut per = [0usize; 8];
        for p in before.values() {
            per[*p] += 1;
        }
        assert!(per.iter().all(|&n| (1500..3500).contains(&n)), "{per:?}");
        // Remove server 3: only its clients move.
        let mut rest = all.clone();
        rest.remove(3);
        let after = owners(&build(&rest), &Servers::weights(&[1; 7]), 20000);
        let id = |p: usize| if p >= 3 { p + 1 } else { p };
        let moved = before.iter().filter(|(c, p)| id(after[c]) != **p).count();
        assert_eq!(moved, per[3], "exactly the removed server's clients move");
        assert_eq!(build(&all), ring, "deterministic");
    }

    #[test]
    fn weights_scale_points_and_zero_is_off_the_ring() {
        let mut m = members(3);
        m[0].weight = 2;
        m[1].weight = 4;
        m[2].weight = 0;
        let ring = build(&m);
        assert_eq!(ring.len(), (1 + 2) * 160, "gcd 2");
        assert!(ring.iter().all(|(_, p)| *p != 2));
        let mut s = Servers::weights(&[2, 4, 0]);
        s.over[1] = true;
        let o = owners(&ring, &s, 1000);
        assert!(o.values().all(|&p| p == 0), "overloaded owner: no server");
        assert!(build(&[]).is_empty());
    }
}
