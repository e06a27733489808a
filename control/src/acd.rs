//! IPv4 address conflict detection (RFC 5227), beside IPv6's duplicate
//! address detection ([`crate::dad`]).
//!
//! **Probing.** An IPv4 address added at run time (`rvsadm addr add`)
//! starts *tentative*: it is kept out of the published tables (so no worker
//! answers ARP for it, uses it or announces it) while worker 0 sends
//! [`PROBE_NUM`] ARP requests for it, [`PROBE_INTERVAL`] apart, and then
//! waits [`ANNOUNCE_WAIT`]. A host that holds the address answers; its
//! reply (or any ARP it sends with the address as sender) makes the
//! address *conflicted* (`ip addr`'s "dadfailed tentative"): it stays
//! configured but is never used nor announced; `rvsadm addr del` and `add`
//! try again. Nobody answering, it is *preferred*: it goes into the tables
//! and is announced (gratuitous ARP, see [`crate::announce`]).
//!
//! One difference from RFC 5227 §2.1.1: the probe's sender address is the
//! interface's configured address, not 0.0.0.0 (the workers' ARP request is
//! reused). That address is already the appliance's, so no host's cache
//! learns the tentative one. A simultaneous probe by another host (sender
//! 0.0.0.0) is not seen: only ARP with a sender address is reported by the
//! workers.
//!
//! **Defending** (§2.4 (b), at most once per [`DEFEND_INTERVAL`]): ARP from
//! another host naming an address in use here as its sender (an interface
//! address or a FULLNAT local address; not VIPs, which keepalived moves
//! between appliances on purpose) is logged and answered by a gratuitous
//! ARP, so that the hosts of the link keep the appliance's MAC.
//!
//! Addresses from the config file are not probed: they are in use from
//! start-up, as the kernel uses its own (it has no IPv4 ACD); they are
//! defended.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dataplane::wire::MacAddr;

pub use crate::dad::{Claim, State};

/// Probes per address (RFC 5227 `PROBE_NUM`).
pub const PROBE_NUM: u32 = 3;
/// Time between probes (RFC 5227: random in `PROBE_MIN`..`PROBE_MAX`, 1-2 s).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Wait after the last probe before the address is used (`ANNOUNCE_WAIT`).
pub const ANNOUNCE_WAIT: Duration = Duration::from_secs(2);
/// Least time between two defences of one address (`DEFEND_INTERVAL`).
pub const DEFEND_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Probe {
    state: State,
    port: u16,
    left: u32,
    next: Instant,
}

/// Run-time IPv4 addresses in detection, and when each own address was
/// last defended.
#[derive(Debug, Default)]
pub struct Acd {
    probes: BTreeMap<Ipv4Addr, Probe>,
    defended: BTreeMap<Ipv4Addr, Instant>,
}

impl Acd {
    /// Takes in the run-time IPv4 addresses, each with the port it is on:
    /// new ones start tentative (first probe due now), gone ones are
    /// forgotten.
    pub fn update(&mut self, addrs: &[(Ipv4Addr, u16)], now: Instant) {
        self.probes
            .retain(|ip, _| addrs.iter().any(|(a, _)| a == ip));
        for &(ip, port) in addrs {
            self.probes.entry(ip).or_insert(Probe {
                state: State::Tentative,
                port,
                left: PROBE_NUM,
                next: now,
            });
        }
    }

    /// Calls `send(port, ip)` for every probe due at `now`. Returns true
    /// when an address became preferred: the tables must change.
    pub fn due(&mut self, now: Instant, mut send: impl FnMut(u16, Ipv4Addr)) -> bool {
        let mut done = false;
        for (&ip, p) in self
            .probes
            .iter_mut()
            .filter(|(_, p)| p.state == State::Tentative && p.next <= now)
        {
            if p.left == 0 {
                p.state = State::Preferred;
                done = true;
                continue;
            }
            send(p.port, ip);
            p.left -= 1;
            p.next = now
                + if p.left == 0 {
                    ANNOUNCE_WAIT
                } else {
                    PROBE_INTERVAL
                };
        }
        done
    }

    /// The run-time addresses not to be used (yet, or at all).
    pub fn withheld(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.probes
            .iter()
            .filter(|(_, p)| p.state != State::Preferred)
            .map(|(ip, _)| *ip)
    }

    /// Where run-time address `ip` is in detection (`None`: not probed).
    #[must_use]
    pub fn state(&self, ip: Ipv4Addr) -> Option<State> {
        self.probes.get(&ip).map(|p| p.state)
    }

    /// Another host, at `mac`, sent ARP with sender address `ip`; `in_use`
    /// says whether `ip` is an address the appliance uses (and defends).
    pub fn heard(&mut self, ip: Ipv4Addr, mac: MacAddr, in_use: bool, now: Instant) -> Claim {
        match self.probes.get_mut(&ip).map(|p| &mut p.state) {
            Some(s @ State::Tentative) => {
                *s = State::Failed(mac);
                return Claim::Failed;
            }
            Some(State::Failed(_)) => return Claim::Quiet,
            Some(State::Preferred) | None => {}
        }
        if !in_use {
            return Claim::Quiet;
        }
        let last = self.defended.get(&ip);
        if last.is_some_and(|t| now.duration_since(*t) < DEFEND_INTERVAL) {
            return Claim::Quiet;
        }
        self.defended.insert(ip, now);
        Claim::Conflict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = [2, 0, 0, 0, 0, 0x77];
    const A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 77);

    fn sent(a: &mut Acd, at: Instant) -> (Vec<(u16, Ipv4Addr)>, bool) {
        let mut out = Vec::new();
        let done = a.due(at, |port, ip| out.push((port, ip)));
        (out, done)
    }

    #[test]
    fn three_probes_a_second_apart_then_two_seconds_then_in_use() {
        let (mut a, t0) = (Acd::default(), Instant::now());
        a.update(&[(A, 1)], t0);
        assert_eq!(a.withheld().collect::<Vec<_>>(), vec![A]);
        assert_eq!(sent(&mut a, t0), (vec![(1, A)], false));
        assert_eq!(sent(&mut a, t0 + PROBE_INTERVAL / 2), (vec![], false));
        assert_eq!(sent(&mut a, t0 + PROBE_INTERVAL), (vec![(1, A)], false));
        assert_eq!(sent(&mut a, t0 + PROBE_INTERVAL * 2), (vec![(1, A)], false));
        let last = t0 + PROBE_INTERVAL * 2;
        assert_eq!(sent(&mut a, last + ANNOUNCE_WAIT / 2), (vec![], false));
        assert_eq!(a.state(A), Some(State::Tentative));
        assert_eq!(sent(&mut a, last + ANNOUNCE_WAIT), (vec![], true));
        assert_eq!(a.state(A), Some(State::Preferred));
        assert_eq!(a.withheld().count(), 0);
        // Seen again: not probed again.
        a.update(&[(A, 1)], last + ANNOUNCE_WAIT);
        assert_eq!(sent(&mut a, last + ANNOUNCE_WAIT * 5), (vec![], false));
    }

    #[test]
    fn an_answer_while_probing_withholds_the_address_for_good() {
        let (mut a, t0) = (Acd::default(), Instant::now());
        a.update(&[(A, 0)], t0);
        let _ = sent(&mut a, t0);
        assert_eq!(a.heard(A, MAC, false, t0), Claim::Failed);
        assert_eq!(a.state(A).unwrap().flags(), "dadfailed tentative");
        assert_eq!(sent(&mut a, t0 + Duration::from_secs(60)), (vec![], false));
        assert_eq!(a.withheld().collect::<Vec<_>>(), vec![A]);
        assert_eq!(a.heard(A, MAC, false, t0), Claim::Quiet);
        // Deleted and added again: probed again.
        a.update(&[], t0);
        a.update(&[(A, 0)], t0);
        assert_eq!(a.state(A), Some(State::Tentative));
    }

    #[test]
    fn an_address_in_use_is_defended_once_per_interval() {
        let (mut a, t0) = (Acd::default(), Instant::now());
        let own = Ipv4Addr::new(10, 77, 0, 200);
        assert_eq!(a.heard(own, MAC, true, t0), Claim::Conflict);
        assert_eq!(
            a.heard(own, MAC, true, t0 + Duration::from_secs(1)),
            Claim::Quiet
        );
        assert_eq!(
            a.heard(own, MAC, true, t0 + DEFEND_INTERVAL),
            Claim::Conflict
        );
        assert_eq!(
            a.heard(Ipv4Addr::new(10, 77, 0, 9), MAC, false, t0),
            Claim::Quiet,
            "not ours"
        );
    }
}
