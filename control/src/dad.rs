//! Duplicate address detection (RFC 4862 §5.4) for the appliance's own
//! IPv6 addresses: interface addresses (`address6`, `rvsadm addr add`) and
//! FULLNAT local addresses.
//!
//! Each new address starts *tentative*: worker 0 sends [`TRANSMITS`] probes
//! (a neighbour solicitation from `::`, see [`dataplane::neigh::emit_dad_probe`])
//! [`RETRANS`] apart, and workers neither answer solicitations for it nor
//! announce it (the snapshot lists it in [`dataplane::tables::Tables::tentative`]).
//! If no other host claims it by then, it is *preferred*: answered,
//! announced by unsolicited advertisement, and defended — a probe from
//! another host is answered with an advertisement to all nodes, which
//! makes that host give the address up. If another host claims it while
//! tentative (it advertises it, or probes for it at the same time), it is
//! *dadfailed*: it stays configured but is never answered for nor
//! announced, as the kernel leaves it; `rvsadm addr del` and `add` try
//! again. The kernel's defaults: one probe, one second.
//!
//! VIPs are not probed: they move between appliances (keepalived takes
//! them over), where a probe would find the previous holder; keepalived
//! adds its IPv6 VIPs with `nodad` for the same reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dataplane::addr::Addr;
use dataplane::tables::Tables;
use dataplane::wire::MacAddr;

/// Probes sent for each new address (the kernel's `dad_transmits`).
pub const TRANSMITS: u32 = 1;
/// Time between probes, and after the last one before the address is
/// preferred (the kernel's `RetransTimer`, 1 s).
pub const RETRANS: Duration = Duration::from_secs(1);
/// Least time between two warnings about one address.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Where an address is in detection, as `ip addr` flags it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being probed; not used yet.
    Tentative,
    /// Nobody else claimed it: in use.
    Preferred,
    /// Another host (at this MAC) claimed it while it was tentative.
    Failed(MacAddr),
}

impl State {
    /// The flags `ip addr` prints after `scope global`.
    #[must_use]
    pub fn flags(self) -> &'static str {
        match self {
            Self::Tentative => "tentative",
            Self::Preferred => "",
            Self::Failed(_) => "dadfailed tentative",
        }
    }
}

/// What a claim on an own address meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The address was tentative: it is a duplicate now, and not used.
    Failed,
    /// The address is in use here and another host claims it too (it is
    /// defended; the claim is worth a warning, not more).
    Conflict,
    /// Nothing to say: not ours, already failed, or warned recently.
    Quiet,
}

#[derive(Debug, Clone)]
struct Probe {
    state: State,
    ports: Vec<u16>,
    left: u32,
    next: Instant,
    warned: Option<Instant>,
}

/// The own IPv6 addresses and where each is in detection.
#[derive(Debug, Default)]
pub struct Dad {
    addrs: BTreeMap<Addr, Probe>,
}

impl Dad {
    /// Takes in the snapshot about to be published: its IPv6 interface and
    /// local addresses that are new start tentative (first probe due now),
    /// those it no longer has are forgotten. Returns the addresses the
    /// snapshot must list as tentative (tentative or failed).
    pub fn update(&mut self, tables: &Tables, now: Instant) -> Vec<Addr> {
        let subjects = subjects(tables);
        self.addrs.retain(|ip, _| subjects.contains(ip));
        for ip in subjects {
            self.addrs.entry(ip).or_insert_with(|| Probe {
                state: State::Tentative,
                ports: crate::announce::ports(tables, ip),
                left: TRANSMITS,
                next: now,
                warned: None,
            });
        }
        self.tentative()
    }

    /// Calls `send(port, ip)` for every probe due at `now`. Returns true
    /// when an address became preferred: the snapshot must change.
    pub fn due(&mut self, now: Instant, mut send: impl FnMut(u16, Addr)) -> bool {
        let mut done = false;
        for (&ip, p) in self
            .addrs
            .iter_mut()
            .filter(|(_, p)| p.state == State::Tentative && p.next <= now)
        {
            if p.left == 0 {
                p.state = State::Preferred;
                done = true;
                continue;
            }
            for &port in &p.ports {
                send(port, ip);
            }
            p.left -= 1;
            p.next = now + RETRANS;
        }
        done
    }

    /// Another host, at `mac`, claims `ip`.
    pub fn claimed(&mut self, ip: Addr, mac: MacAddr, now: Instant) -> Claim {
        let Some(p) = self.addrs.get_mut(&ip) else {
            return Claim::Quiet;
        };
        match p.state {
            State::Tentative => {
                p.state = State::Failed(mac);
                Claim::Failed
            }
            State::Preferred if p.warned.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) => {
                p.warned = Some(now);
                Claim::Conflict
            }
            State::Preferred | State::Failed(_) => Claim::Quiet,
        }
    }

    /// Where `ip` is in detection (`None`: not probed, e.g. a VIP).
    #[must_use]
    pub fn state(&self, ip: Addr) -> Option<State> {
        self.addrs.get(&ip).map(|p| p.state)
    }

    /// The addresses not usable yet or at all.
    #[must_use]
    pub fn tentative(&self) -> Vec<Addr> {
        self.addrs
            .iter()
            .filter(|(_, p)| p.state != State::Preferred)
            .map(|(ip, _)| *ip)
            .collect()
    }
}

/// The addresses of `tables` that are probed: IPv6 interface addresses
/// (their local routes) and IPv6 local addresses, not VIPs.
fn subjects(tables: &Tables) -> Vec<Addr> {
    crate::announce::owned(tables)
        .into_iter()
        .filter(|ip| !ip.is_v4() && !tables.services.iter().any(|s| s.vip.ip == *ip))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;
    use crate::plan::{self, Registry};

    const MAC: MacAddr = [2, 0, 0, 0, 0, 0x77];

    fn tables(extra: &str) -> Tables {
        let text = format!("{}\n{extra}", include_str!("../../config/lab.toml"));
        let c = config::parse(Path::new("lab.toml"), &text).unwrap();
        plan::tables(&c, &[[2, 0, 0, 0, 0, 2]], &mut Registry::default(), 1)
    }

    fn ip(s: &str) -> Addr {
        s.parse::<std::net::IpAddr>().unwrap().into()
    }

    fn sent(d: &mut Dad, at: Instant) -> (Vec<(u16, Addr)>, bool) {
        let mut out = Vec::new();
        let done = d.due(at, |port, ip| out.push((port, ip)));
        (out, done)
    }

    #[test]
    fn a_new_address_is_probed_once_then_preferred_a_second_later() {
        let t = tables("");
        let (mut d, t0) = (Dad::default(), Instant::now());
        let iface = ip("fd77::2");
        assert_eq!(
            d.update(&t, t0),
            vec![iface],
            "the interface address; IPv4 is not probed"
        );
        assert_eq!(d.state(iface), Some(State::Tentative));
        assert_eq!(sent(&mut d, t0), (vec![(0, iface)], false));
        assert_eq!(sent(&mut d, t0 + RETRANS / 2), (vec![], false));
        assert_eq!(
            sent(&mut d, t0 + RETRANS),
            (vec![], true),
            "no probe more: preferred"
        );
        assert_eq!(d.state(iface), Some(State::Preferred));
        assert!(d.tentative().is_empty());
        // Seen again in the next snapshot: not probed again.
        assert!(d.update(&t, t0 + RETRANS * 2).is_empty());
        assert_eq!(sent(&mut d, t0 + RETRANS * 3), (vec![], false));
    }

    #[test]
    fn a_claim_while_tentative_fails_the_address_for_good() {
        let t = tables("");
        let (mut d, t0) = (Dad::default(), Instant::now());
        let iface = ip("fd77::2");
        d.update(&t, t0);
        let _ = sent(&mut d, t0);
        assert_eq!(d.claimed(iface, MAC, t0), Claim::Failed);
        assert_eq!(d.state(iface), Some(State::Failed(MAC)));
        assert_eq!(d.state(iface).unwrap().flags(), "dadfailed tentative");
        assert_eq!(
            sent(&mut d, t0 + RETRANS * 5),
            (vec![], false),
            "never preferred"
        );
        assert_eq!(d.tentative(), vec![iface]);
        assert_eq!(d.claimed(iface, MAC, t0), Claim::Quiet);
        // Removed and added again: probed again.
        let bare = Tables {
            routes: Default::default(),
            ..t.clone()
        };
        assert!(d.update(&bare, t0).is_empty());
        assert_eq!(d.update(&t, t0 + RETRANS), vec![iface]);
        assert_eq!(d.state(iface), Some(State::Tentative));
    }

    #[test]
    fn a_claim_on_a_preferred_address_is_a_rate_limited_conflict() {
        let t = tables("");
        let (mut d, t0) = (Dad::default(), Instant::now());
        let iface = ip("fd77::2");
        d.update(&t, t0);
        let _ = sent(&mut d, t0);
        let _ = sent(&mut d, t0 + RETRANS);
        assert_eq!(d.claimed(iface, MAC, t0 + RETRANS), Claim::Conflict);
        assert_eq!(d.claimed(iface, MAC, t0 + RETRANS * 2), Claim::Quiet);
        assert_eq!(
            d.claimed(iface, MAC, t0 + RETRANS + WARN_EVERY),
            Claim::Conflict
        );
        assert_eq!(
            d.state(iface),
            Some(State::Preferred),
            "kept: it is defended"
        );
        assert_eq!(d.claimed(ip("fd77::99"), MAC, t0), Claim::Quiet, "not ours");
    }

    #[test]
    fn local_addresses_are_probed_vips_are_not() {
        let t = tables(
            r#"
[[service]]
vip = "[fd77::100]:80"
scheduler = "rr"
forward = "fullnat"
local_addresses = ["fd77::200"]
[[service.real_server]]
address = "[fd77::11]:80"
"#,
        );
        let mut d = Dad::default();
        assert_eq!(
            d.update(&t, Instant::now()),
            vec![ip("fd77::2"), ip("fd77::200")]
        );
        assert_eq!(d.state(ip("fd77::100")), None);
    }
}
