//! Following the kernel's addresses on the exception path's interfaces
//! (active/backup failover, `[sync] follow_kernel_addresses`).
//!
//! keepalived (or an operator, `ip addr add VIP dev dpdk0`) puts a VIP on
//! the kernel side of an rvs interface when this box becomes the active
//! one, and takes it away when it stops being so. rvsd learns of each
//! change from the kernel's netlink address notifications
//! (`RTMGRP_IPV4_IFADDR`/`RTMGRP_IPV6_IFADDR`), read through iproute2's
//! `ip -o monitor address`, which subscribes to them and prints one line
//! per event; a dump (`ip -o addr show`) taken after the subscription
//! gives the state to start from. No notify script and no polling.
//!
//! [`parse_line`] reads one such line; [`KernelAddrs`] keeps the addresses
//! per interface; [`Watch`] runs the monitor and hands events to the
//! control loop; [`standby`] says which configured VIPs and local
//! addresses the kernel does not hold, for the data plane to leave alone.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};

use crossbeam_channel::{unbounded, Receiver};

/// One address added to or removed from a kernel interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrEvent {
    /// Added (`true`) or deleted.
    pub added: bool,
    /// The interface's name.
    pub dev: String,
    /// The address.
    pub ip: IpAddr,
}

/// One line of `ip -o monitor address` or `ip -o addr show`:
/// `[Deleted ]IDX: DEV    inet|inet6 ADDR/LEN ...`; `None` for anything else.
#[must_use]
pub fn parse_line(line: &str) -> Option<AddrEvent> {
    let (added, rest) = match line.strip_prefix("Deleted ") {
        Some(r) => (false, r),
        None => (true, line),
    };
    let mut words = rest.split_whitespace();
    let idx = words.next()?;
    idx.strip_suffix(':')?.parse::<u32>().ok()?;
    // `dpdk0.100@dpdk0` for a VLAN device: the name before `@`.
    let dev = words.next()?.split('@').next()?.to_string();
    let family = words.next()?;
    if family != "inet" && family != "inet6" {
        return None;
    }
    let ip: IpAddr = words.next()?.split('/').next()?.parse().ok()?;
    (ip.is_ipv4() == (family == "inet")).then_some(AddrEvent { added, dev, ip })
}

/// The kernel's addresses, per interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelAddrs {
    by_dev: BTreeMap<String, BTreeSet<IpAddr>>,
}

impl KernelAddrs {
    /// Applies one event; true if it changed anything.
    pub fn apply(&mut self, e: &AddrEvent) -> bool {
        let set = self.by_dev.entry(e.dev.clone()).or_default();
        if e.added {
            set.insert(e.ip)
        } else {
            set.remove(&e.ip)
        }
    }

    /// The addresses held on any of `devs`.
    #[must_use]
    pub fn held_on<'a>(&self, devs: impl IntoIterator<Item = &'a str>) -> BTreeSet<IpAddr> {
        devs.into_iter()
            .filter_map(|d| self.by_dev.get(d))
            .flatten()
            .copied()
            .collect()
    }
}

/// The configured VIPs and FULLNAT local addresses the kernel side does
/// not hold: every VIP not in `held`, and every local address not in
/// `held` none of whose services' VIPs is held (a local address follows
/// its VIPs, so keepalived need only move the VIP).
#[must_use]
pub fn standby(services: &[(IpAddr, Vec<IpAddr>)], held: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
    let mut out: BTreeSet<IpAddr> = services
        .iter()
        .map(|(vip, _)| *vip)
        .filter(|v| !held.contains(v))
        .collect();
    let live_laddrs: BTreeSet<IpAddr> = services
        .iter()
        .filter(|(vip, _)| held.contains(vip))
        .flat_map(|(_, l)| l.iter().copied())
        .collect();
    out.extend(
        services
            .iter()
            .flat_map(|(_, l)| l.iter().copied())
            .filter(|l| !held.contains(l) && !live_laddrs.contains(l)),
    );
    out
}

/// The running monitor: events arrive on [`Watch::events`].
#[derive(Debug)]
pub struct Watch {
    child: Child,
    /// Address events, the initial dump's first (as additions).
    pub events: Receiver<AddrEvent>,
}

impl Watch {
    /// Subscribes (`ip -o monitor address`), then dumps the current
    /// addresses (`ip -o addr show`), so no change between the two is lost.
    ///
    /// # Errors
    /// If `ip` cannot be run.
    pub fn start() -> std::io::Result<Self> {
        let mut child = Command::new("ip")
            .args(["-o", "monitor", "address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("ip monitor: no stdout"))?;
        let (tx, events) = unbounded();
        let dump = Command::new("ip").args(["-o", "addr", "show"]).output()?;
        for e in String::from_utf8_lossy(&dump.stdout)
            .lines()
            .filter_map(parse_line)
        {
            let _ = tx.send(e);
        }
        std::thread::Builder::new()
            .name("rvs-addr-watch".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(e) = parse_line(&line) {
                        if tx.send(e).is_err() {
                            break;
                        }
                    }
                }
            })?;
        Ok(Self { child, events })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn monitor_and_dump_lines() {
        assert_eq!(
            parse_line("3: dpdk0    inet 10.77.0.100/32 scope global dpdk0\\       valid_lft forever preferred_lft forever"),
            Some(AddrEvent { added: true, dev: "dpdk0".into(), ip: ip("10.77.0.100") })
        );
        assert_eq!(
            parse_line("Deleted 3: dpdk0    inet 10.77.0.100/32 scope global dpdk0\\       valid_lft forever"),
            Some(AddrEvent { added: false, dev: "dpdk0".into(), ip: ip("10.77.0.100") })
        );
        assert_eq!(
            parse_line("5: dpdk0.100@dpdk0    inet6 fd77::100/128 scope global nodad \\       valid_lft forever"),
            Some(AddrEvent { added: true, dev: "dpdk0.100".into(), ip: ip("fd77::100") })
        );
        for junk in [
            "",
            "Deleted",
            "x: dpdk0 inet 1.2.3.4/32",
            "3: dpdk0 link/ether 02:00:00:00:00:01",
            "3: dpdk0 inet6 10.0.0.1/32",
        ] {
            assert_eq!(parse_line(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn addresses_follow_events_per_interface() {
        let mut k = KernelAddrs::default();
        let ev = |added, dev: &str, a| AddrEvent {
            added,
            dev: dev.into(),
            ip: ip(a),
        };
        assert!(k.apply(&ev(true, "dpdk0", "10.77.0.100")));
        assert!(!k.apply(&ev(true, "dpdk0", "10.77.0.100")));
        k.apply(&ev(true, "eth0", "10.77.0.101"));
        assert_eq!(k.held_on(["dpdk0"]), BTreeSet::from([ip("10.77.0.100")]));
        assert!(k.apply(&ev(false, "dpdk0", "10.77.0.100")));
        assert!(k.held_on(["dpdk0"]).is_empty());
    }

    #[test]
    fn local_addresses_follow_their_vips() {
        let services = vec![
            (ip("10.77.0.100"), vec![ip("10.77.0.200")]),
            (
                ip("10.77.0.101"),
                vec![ip("10.77.0.200"), ip("10.77.0.201")],
            ),
        ];
        let all = standby(&services, &BTreeSet::new());
        assert_eq!(all.len(), 4);
        let one = standby(&services, &BTreeSet::from([ip("10.77.0.101")]));
        assert_eq!(one, BTreeSet::from([ip("10.77.0.100")]));
        let laddr_only = standby(&services, &BTreeSet::from([ip("10.77.0.201")]));
        assert!(!laddr_only.contains(&ip("10.77.0.201")));
        assert!(laddr_only.contains(&ip("10.77.0.200")));
    }

    /// The real thing: a monitor in this namespace sees what `ip addr`
    /// does to an interface (a veth pair made for the test in a namespace
    /// of its own when permitted; skipped silently is not an option, so it
    /// uses the loopback device, which always exists).
    #[test]
    fn the_monitor_reports_real_kernel_changes() {
        let Ok(w) = Watch::start() else {
            panic!("ip monitor could not start: is iproute2 installed?");
        };
        // Give the subscription a moment, then change an address on lo.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let a = "127.77.0.9";
        let add = Command::new("ip")
            .args(["addr", "add", &format!("{a}/32"), "dev", "lo"])
            .status();
        if !add.is_ok_and(|s| s.success()) {
            // Not permitted here (no CAP_NET_ADMIN): the dump must still have lo's 127.0.0.1.
            let first: Vec<AddrEvent> = w.events.try_iter().collect();
            assert!(
                first
                    .iter()
                    .any(|e| e.dev == "lo" && e.ip == ip("127.0.0.1")),
                "{first:?}"
            );
            return;
        }
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{a}/32"), "dev", "lo"])
            .status();
        let mut k = KernelAddrs::default();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(e) = w.events.recv_timeout(std::time::Duration::from_millis(100)) {
                k.apply(&e);
                if e.ip == ip(a) {
                    seen.push(e.added);
                    if seen == [true, false] {
                        break;
                    }
                }
            }
        }
        assert_eq!(seen, vec![true, false]);
        assert!(k.held_on(["lo"]).contains(&ip("127.0.0.1")));
    }
}
