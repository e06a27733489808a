//! Source hashing (`ip_vs_sh.c`): a static 256-bucket table maps a hash of
//! the client address (plus its port with `sh-port`) to a server.
//!
//! The table is filled in list order, each server taking as many
//! consecutive buckets as its weight (weight 0 still takes one), wrapping
//! until all 256 are assigned; control builds it ([`build`]). The bucket of
//! a client is `hash_32(port + addr, 8)`. If that server has weight 0 or is
//! overloaded the connection is refused, unless `sh-fallback` is set: then
//! the buckets `hash_32(..) + 1, + 2, ...` are tried in turn. Identical on
//! every worker, so a client maps to the same server whichever worker
//! schedules it.

use super::hash::hash_32;
use super::{Backends, Flow, Member, SchedFlags, SchedTable, NO_SERVER};

/// Buckets in the table (`IP_VS_SH_TAB_SIZE`).
pub const TAB_BITS: u32 = 8;
/// Buckets in the table.
pub const TAB_SIZE: usize = 1 << TAB_BITS;

/// `ip_vs_sh_reassign`: the buckets for `members` in list order.
#[must_use]
pub fn build(members: &[Member]) -> Box<[u16]> {
    let mut t = vec![NO_SERVER; TAB_SIZE].into_boxed_slice();
    if members.is_empty() {
        return t;
    }
    let (mut p, mut count) = (0usize, 0u32);
    for slot in t.iter_mut() {
        *slot = p as u16;
        count += 1;
        if count >= members[p].weight {
            p = (p + 1) % members.len();
            count = 0;
        }
    }
    t
}

/// `ip_vs_sh_hashkey`.
#[inline]
#[must_use]
pub fn hashkey(addr: [u8; 4], port: u16, offset: u32) -> usize {
    (offset.wrapping_add(hash_32(
        u32::from(port).wrapping_add(u32::from_be_bytes(addr)),
        TAB_BITS,
    )) as usize)
        & (TAB_SIZE - 1)
}

/// The server for `flow`'s client, or `None` (unavailable without fallback,
/// or no table).
#[inline]
pub fn pick<B: Backends>(
    table: &SchedTable,
    flags: SchedFlags,
    b: &B,
    flow: &Flow,
) -> Option<usize> {
    let SchedTable::Buckets(t) = table else {
        return None;
    };
    let port = if flags.contains(SchedFlags::PORT) {
        flow.client_port
    } else {
        0
    };
    let at = |h: usize| {
        t.get(h)
            .copied()
            .filter(|p| *p != NO_SERVER)
            .map(usize::from)
            .filter(|p| *p < b.len())
    };
    let ihash = hashkey(flow.client, port, 0);
    let first = at(ihash)?;
    if b.available(first) {
        return Some(first);
    }
    if !flags.contains(SchedFlags::FALLBACK) {
        return None;
    }
    for offset in 0..TAB_SIZE as u32 {
        let roffset = (offset + ihash as u32) % TAB_SIZE as u32;
        let d = at(hashkey(flow.client, port, roffset))?;
        if b.available(d) {
            return Some(d);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    fn members(w: &[u32]) -> Vec<Member> {
        w.iter()
            .enumerate()
            .map(|(i, &w)| Member {
                addr: [10, 0, 0, i as u8 + 1],
                port: 80,
                weight: w,
                last_weight: w,
            })
            .collect()
    }

    fn flow(client: [u8; 4], port: u16) -> Flow {
        Flow {
            client,
            client_port: port,
            vip: [10, 0, 0, 100],
            vip_port: 80,
        }
    }

    #[test]
    fn buckets_follow_weights_in_runs() {
        let t = build(&members(&[2, 1, 0]));
        assert_eq!(t[..8], [0, 0, 1, 2, 0, 0, 1, 2]);
        let counts = |t: &[u16]| {
            (0..3)
                .map(|p| t.iter().filter(|&&x| x == p).count())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            counts(&t),
            vec![128, 64, 64],
            "weight 0 still takes a bucket per turn"
        );
        assert!(build(&[]).iter().all(|&x| x == NO_SERVER));
    }

    #[test]
    fn hash_is_the_kernels() {
        // hash_32(0x0a000001, 8) = top byte of 0x0a000001 * 0x61c88647.
        assert_eq!(
            hashkey([10, 0, 0, 1], 0, 0),
            (0x0a00_0001u32.wrapping_mul(0x61c8_8647) >> 24) as usize
        );
        assert_eq!(
            hashkey([10, 0, 0, 1], 5, 3),
            ((0x0a00_0006u32.wrapping_mul(0x61c8_8647) >> 24) as usize + 3) & 255
        );
    }

    #[test]
    fn stable_mapping_port_and_fallback() {
        let m = members(&[1, 1, 1]);
        let table = SchedTable::Buckets(build(&m));
        let mut s = Servers::weights(&[1, 1, 1]);
        let c = [192, 168, 1, 7];
        let a = pick(&table, SchedFlags::NONE, &s, &flow(c, 1000)).unwrap();
        // Same client, any port, any load: same server.
        s.active = vec![50, 60, 70];
        assert_eq!(pick(&table, SchedFlags::NONE, &s, &flow(c, 2000)), Some(a));
        assert_eq!(
            a,
            hashkey(c, 0, 0) % 3,
            "buckets rotate through the servers"
        );
        // sh-port spreads one client's ports.
        let ports: std::collections::HashSet<_> = (0..64)
            .filter_map(|p| pick(&table, SchedFlags::PORT, &s, &flow(c, 40000 + p)))
            .collect();
        assert_eq!(ports.len(), 3);
        // Its server drained: refused, unless sh-fallback.
        s.weight[a] = 0;
        assert_eq!(pick(&table, SchedFlags::NONE, &s, &flow(c, 1)), None);
        let f = pick(&table, SchedFlags::FALLBACK, &s, &flow(c, 1)).unwrap();
        assert_ne!(f, a);
        s.weight = vec![0, 0, 0];
        assert_eq!(pick(&table, SchedFlags::FALLBACK, &s, &flow(c, 1)), None);
    }
}
