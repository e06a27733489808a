//! Own addresses claimed by other hosts: IPv6 duplicate address detection
//! ([`crate::dad`]) and IPv4 address conflict detection ([`crate::acd`])
//! as the workers' neighbour events report them.

use super::*;

impl Control {
    /// Another host (at `mac`, seen on `port`) claims own address `ip`.
    pub(super) fn duplicate(&mut self, ip: Addr, mac: MacAddr, port: u16, now: Instant) {
        let dev = self
            .config
            .interfaces
            .get(usize::from(port))
            .map_or("?", |i| i.name.as_str());
        match self.dad.claimed(ip, mac, now) {
            Claim::Failed => eprintln!(
                "rvsd: {dev}: IPv6 duplicate address {ip} detected: {} holds it; not used (rvsadm addr del, then add, to try again)",
                fmt_mac(&mac)
            ),
            Claim::Conflict => eprintln!("rvsd: {dev}: {} advertises {ip}, an address of this appliance; defended", fmt_mac(&mac)),
            Claim::Quiet => {}
        }
    }

    /// Whether `ip` is an IPv4 address this appliance holds or probes for
    /// (VIPs aside: see [`crate::acd`]), so that ARP from another host
    /// with it as sender is a conflict, not a neighbour to learn.
    pub(super) fn is_own_v4(&self, ip: IpAddr) -> bool {
        let IpAddr::V4(v4) = ip else { return false };
        // Another appliance holds a standby address now (active/backup).
        if self.sync.is_standby(ip) {
            return false;
        }
        self.config.interfaces.iter().any(|i| i.addr == v4)
            || self.config.addresses.iter().any(|a| a.addr == ip)
            || self
                .config
                .services
                .iter()
                .any(|s| s.local_addresses.contains(&ip))
    }

    /// ARP from another host (at `mac`, seen on `port`) names own IPv4
    /// address `ip` as its sender.
    pub(super) fn conflict(&mut self, ip: IpAddr, mac: MacAddr, port: u16, now: Instant) {
        let IpAddr::V4(v4) = ip else { return };
        if self.macs.contains(&mac) {
            return; // our own announcement, looped back
        }
        let dev = self
            .config
            .interfaces
            .get(usize::from(port))
            .map_or("?", |i| i.name.as_str());
        let in_use = !self.acd.withheld().any(|w| w == v4);
        match self.acd.heard(v4, mac, in_use, now) {
            Claim::Failed => eprintln!(
                "rvsd: {dev}: IPv4 address conflict: {ip} is in use by {}; not used (rvsadm addr del, then add, to try again)",
                fmt_mac(&mac)
            ),
            Claim::Conflict => {
                eprintln!(
                    "rvsd: {dev}: IPv4 address conflict: {} claims {ip}, an address of this appliance; defended",
                    fmt_mac(&mac)
                );
                if let Some(w) = self.workers.first() {
                    let _ = w.requests.try_send(WorkerRequest::Announce {
                        port,
                        ip: Addr::from(ip),
                    });
                }
            }
            Claim::Quiet => {}
        }
    }
}
