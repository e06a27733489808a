//! Destination hashing (`ip_vs_dh.c`): a static 256-bucket table maps a hash
//! of the packet's destination address to a server; the buckets are dealt
//! out one per server in list order (weights play no part beyond 0). A
//! server of weight 0 or overloaded means no server: there is no fallback.
//!
//! The destination of a connection to a virtual service is its VIP, so for
//! an `IP:port` service every connection hashes alike and goes to one
//! server: as in the kernel, dh is meant for services that catch many
//! destination addresses (cache clusters). Identical on every worker.

use super::hash::hash_32;
use super::{Backends, Flow, Member, SchedTable, NO_SERVER};

/// Bits of the bucket index (`IP_VS_DH_TAB_BITS`).
pub const TAB_BITS: u32 = 8;
/// Buckets in the table.
pub const TAB_SIZE: usize = 1 << TAB_BITS;

/// `ip_vs_dh_reassign`: bucket `i` gets server `i mod n`.
#[must_use]
pub fn build(members: &[Member]) -> Box<[u16]> {
    (0..TAB_SIZE)
        .map(|i| {
            if members.is_empty() {
                NO_SERVER
            } else {
                (i % members.len()) as u16
            }
        })
        .collect()
}

/// `ip_vs_dh_hashkey`.
#[inline]
#[must_use]
pub fn hashkey(addr: [u8; 4]) -> usize {
    hash_32(u32::from_be_bytes(addr), TAB_BITS) as usize
}

/// The server for `flow`'s destination, or `None`.
#[inline]
pub fn pick<B: Backends>(table: &SchedTable, b: &B, flow: &Flow) -> Option<usize> {
    let SchedTable::Buckets(t) = table else {
        return None;
    };
    let p = usize::from(*t.get(hashkey(flow.vip))?);
    (p != usize::from(NO_SERVER) && p < b.len() && b.available(p)).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    #[test]
    fn one_bucket_per_server_and_stable() {
        let m: Vec<Member> = (0..3)
            .map(|i| Member {
                addr: [10, 0, 0, i + 1],
                port: 80,
                weight: 5,
                last_weight: 5,
            })
            .collect();
        let t = build(&m);
        assert_eq!(t[..6], [0, 1, 2, 0, 1, 2]);
        let table = SchedTable::Buckets(t);
        let mut s = Servers::weights(&[5, 5, 5]);
        let f = |vip: [u8; 4]| Flow {
            client: [1, 2, 3, 4],
            client_port: 9,
            vip,
            vip_port: 80,
        };
        let want = hashkey([10, 0, 0, 100]) % 3;
        assert_eq!(pick(&table, &s, &f([10, 0, 0, 100])), Some(want));
        // Another destination hashes elsewhere in general.
        let spread: std::collections::HashSet<_> = (0..50)
            .filter_map(|i| pick(&table, &s, &f([10, 0, 1, i])))
            .collect();
        assert_eq!(spread.len(), 3);
        s.over[want] = true;
        assert_eq!(pick(&table, &s, &f([10, 0, 0, 100])), None, "no fallback");
    }
}
