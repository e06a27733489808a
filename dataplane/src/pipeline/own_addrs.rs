//! The addresses a new flow's source is checked against
//! ([`super::Pipeline::source_refusal`]), gathered once per tables snapshot
//! into hash sets: the addresses the appliance owns ([`Tables::owns`]: VIPs,
//! local addresses, interface addresses, local host routes, mark rules'
//! host addresses) and its interfaces' subnet broadcasts. Answering from
//! the snapshot's lists walked every local address and interface per new
//! flow (256 and 128 of them in rvs-bench: about a third of a new
//! connection's cycles); a set answers in one or two probes whatever their
//! number. Built when the pipeline adopts tables; read only on the packet
//! path.

use crate::addr::Addr;
use crate::marks::FWMARK_PROTO;
use crate::route::NextHop;
use crate::tables::Tables;

/// A set of addresses: open addressing, linear probing, at most half full.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddrSet {
    /// A power of two of slots (none when empty).
    slots: Vec<Option<Addr>>,
}

impl AddrSet {
    /// The set of `addrs` (duplicates allowed).
    fn of(addrs: impl IntoIterator<Item = Addr>) -> Self {
        let addrs: Vec<Addr> = addrs.into_iter().collect();
        if addrs.is_empty() {
            return Self::default();
        }
        let mut set = Self {
            slots: vec![None; (addrs.len() * 2).next_power_of_two()],
        };
        for a in addrs {
            let mask = set.slots.len() - 1;
            let mut i = Self::home(&a, mask);
            while let Some(b) = set.slots[i] {
                if b == a {
                    break;
                }
                i = (i + 1) & mask;
            }
            set.slots[i] = Some(a);
        }
        set
    }

    #[inline]
    fn home(a: &Addr, mask: usize) -> usize {
        let h = u32::from_ne_bytes(a.fold32()).wrapping_mul(0x9e37_79b1);
        (h.rotate_left(16) as usize) & mask
    }

    /// True if `a` is in the set.
    #[inline]
    pub(crate) fn contains(&self, a: &Addr) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut i = Self::home(a, mask);
        // At most half full: a free slot ends every probe.
        while let Some(b) = &self.slots[i] {
            if b == a {
                return true;
            }
            i = (i + 1) & mask;
        }
        false
    }
}

/// What a tables snapshot owns, as sets (see the module doc).
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnAddrs {
    /// Every address [`Tables::owns`] is true for.
    owned: AddrSet,
    /// The subnet broadcasts of interfaces with a prefix shorter than /31.
    broadcasts: AddrSet,
}

impl OwnAddrs {
    /// The sets of `t`.
    pub(crate) fn of(t: &Tables) -> Self {
        let vips = t
            .services
            .iter()
            .filter(|s| s.proto != FWMARK_PROTO)
            .map(|s| s.vip.ip);
        // `is_local` is true only for an address a /32 (/128) local route
        // names: the longest match there is.
        let local4 = t
            .routes
            .v4
            .routes()
            .iter()
            .filter(|r| r.len == 32 && matches!(r.hop, NextHop::Local { .. }))
            .filter(|r| t.routes.v4.is_local(r.prefix))
            .map(|r| Addr::v4(r.prefix));
        let local6 = t
            .routes
            .v6
            .routes()
            .iter()
            .filter(|r| r.len == 128 && matches!(r.hop, NextHop::Local { .. }))
            .filter(|r| t.routes.v6.is_local(r.prefix))
            .map(|r| Addr::v6(r.prefix));
        let hosts = t.marks.rules.iter().flat_map(|r| {
            r.prefixes.iter().filter_map(|p| {
                let host = if p.addr().is_v4() { 32 } else { 128 };
                (p.len() == host).then(|| p.addr())
            })
        });
        let owned = AddrSet::of(
            vips.chain(t.laddrs.iter().copied())
                .chain(t.interfaces.iter().map(|i| Addr::v4(i.addr)))
                .chain(local4)
                .chain(local6)
                .chain(hosts),
        );
        let broadcasts = AddrSet::of(
            t.interfaces
                .iter()
                .filter(|i| i.prefix_len < 31)
                .map(|i| Addr::v4(super::ingress_check::subnet_broadcast(i.addr, i.prefix_len))),
        );
        Self { owned, broadcasts }
    }

    /// [`Tables::owns`] of the snapshot the sets were made of.
    #[inline]
    pub(crate) fn owns(&self, ip: &Addr) -> bool {
        self.owned.contains(ip)
    }

    /// True if IPv4 `v4` is an interface's subnet broadcast.
    #[inline]
    pub(crate) fn is_broadcast(&self, v4: [u8; 4]) -> bool {
        self.broadcasts.contains(&Addr::v4(v4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Prefix;
    use crate::marks::{MarkRule, MarkRules};
    use crate::route::{Route, RouteTable, Routes};
    use crate::session::{Endpoint, Timeouts};
    use crate::tables::{Interface, Service};
    use proptest::prelude::*;

    /// Addresses drawn from a small space, so that the tables' lists and
    /// the probes meet often; `v6` picks the family.
    fn addr((v6, n): (bool, u8)) -> Addr {
        if v6 {
            Addr::v6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, n])
        } else {
            Addr::v4([10, 0, n >> 4, n & 15])
        }
    }

    fn addrs() -> impl Strategy<Value = Vec<(bool, u8)>> {
        proptest::collection::vec((any::<bool>(), any::<u8>()), 0..40)
    }

    #[allow(clippy::too_many_arguments)]
    fn tables(
        vips: Vec<(bool, u8)>,
        fwmark: Vec<bool>,
        laddrs: Vec<(bool, u8)>,
        ifs: Vec<(u8, u8)>,
        routes: Vec<((bool, u8), u8, bool)>,
        hosts: Vec<((bool, u8), u8)>,
    ) -> Option<Tables> {
        let v4: Vec<Route<[u8; 4]>> = routes
            .iter()
            .filter(|(a, _, _)| !a.0)
            .map(|&(a, len, local)| Route {
                prefix: addr(a).v4_bits(),
                len: 24 + len % 9,
                hop: if local {
                    NextHop::Local { port: 0 }
                } else {
                    NextHop::OnLink { port: 0 }
                },
            })
            .collect();
        let v6: Vec<Route<[u8; 16]>> = routes
            .iter()
            .filter(|(a, _, _)| a.0)
            .map(|&(a, len, local)| Route {
                prefix: addr(a).octets(),
                len: 120 + len % 9,
                hop: if local {
                    NextHop::Local { port: 0 }
                } else {
                    NextHop::OnLink { port: 0 }
                },
            })
            .collect();
        Some(Tables {
            interfaces: ifs
                .iter()
                .enumerate()
                .map(|(k, &(n, len))| Interface {
                    port: k as u16,
                    mac: [2, 0, 0, 0, 0, 1],
                    addr: addr((false, n)).v4_bits(),
                    prefix_len: len % 33,
                    gateway: None,
                    mtu: 1500,
                })
                .collect(),
            services: vips
                .iter()
                .zip(fwmark.iter().chain(std::iter::repeat(&false)))
                .map(|(&a, &fw)| Service {
                    vip: Endpoint::at(addr(a), 80),
                    proto: if fw { FWMARK_PROTO } else { 6 },
                    ..Default::default()
                })
                .collect(),
            laddrs: laddrs.into_iter().map(addr).collect(),
            lport_range: (1024, 65535),
            timeouts: Timeouts::default(),
            rs_count: 0,
            generation: 1,
            routes: Routes {
                // Duplicate prefixes are refused: no table.
                v4: RouteTable::new(v4).ok()?,
                v6: RouteTable::new(v6).ok()?,
            },
            tentative: Vec::new(),
            standby: Vec::new(),
            vlans: Default::default(),
            marks: MarkRules {
                rules: vec![MarkRule {
                    mark: 1,
                    prefixes: hosts
                        .into_iter()
                        .filter_map(|(a, len)| {
                            let max = if a.0 { 128 } else { 32 };
                            Prefix::new(addr(a), max - len % 3)
                        })
                        .collect(),
                    proto: 0,
                    ports: Vec::new(),
                }],
            },
        })
    }

    proptest! {
        /// The sets answer as the snapshot's lists do, for every address
        /// of the small space of both families.
        #[test]
        fn the_sets_answer_as_the_lists(
            vips in addrs(),
            fwmark in proptest::collection::vec(any::<bool>(), 0..40),
            laddrs in addrs(),
            ifs in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..8),
            routes in proptest::collection::vec(((any::<bool>(), any::<u8>()), any::<u8>(), any::<bool>()), 0..8),
            hosts in proptest::collection::vec(((any::<bool>(), any::<u8>()), any::<u8>()), 0..10),
        ) {
            let t = tables(vips, fwmark, laddrs, ifs, routes, hosts);
            prop_assume!(t.is_some());
            let t = t.unwrap();
            let own = OwnAddrs::of(&t);
            for v6 in [false, true] {
                for n in 0..=255u8 {
                    let a = addr((v6, n));
                    prop_assert_eq!(own.owns(&a), t.owns(a), "owns {:?}", a);
                    if let Some(v4) = a.to_v4() {
                        let listed = t.interfaces.iter().any(|i| {
                            i.prefix_len < 31
                                && crate::pipeline::ingress_check::subnet_broadcast(i.addr, i.prefix_len) == v4
                        });
                        prop_assert_eq!(own.is_broadcast(v4), listed, "broadcast {:?}", a);
                    }
                }
            }
        }
    }

    #[test]
    fn an_empty_snapshot_owns_nothing() {
        let t = tables(vec![], vec![], vec![], vec![], vec![], vec![]).unwrap();
        let own = OwnAddrs::of(&t);
        assert!(!own.owns(&Addr::v4([10, 0, 0, 1])));
        assert!(!own.is_broadcast([10, 0, 0, 255]));
    }
}
