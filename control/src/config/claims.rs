//! Which address is used as what, and which uses cannot share an address.
//!
//! rvsd answers ARP/ND for its VIPs, local addresses and interface
//! addresses: a VIP or local address that is really another host's (a real
//! server's) takes that host's traffic. So one address may not be both:
//!
//! | | VIP | local address | real server | interface |
//! |---|---|---|---|---|
//! | VIP | shared (other ports) | refused | refused | allowed (LVS's "VIP on the director") |
//! | local address | refused | shared (one port pool per address) | refused | refused (the kernel side's ports) |
//! | real server | refused | refused | shared (many services) | refused |
//!
//! The same rules hold for the file (`validate`, with FILE:LINE:COL) and
//! for run-time changes (`rvsadm -A`, `-a`, `-P`, `addr add`), through
//! [`Claims`]. An address of some other host that rvsd does not know of is
//! found on the wire instead: IPv6 DAD ([`crate::dad`]) and IPv4 address
//! conflict detection.

use std::collections::HashMap;
use std::net::IpAddr;

use super::Config;

/// What an address is used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A service's virtual address.
    Vip,
    /// A FULLNAT local address.
    LocalAddress,
    /// A real server's address.
    RealServer,
    /// An address of one of the appliance's interfaces.
    Interface,
}

impl Use {
    fn article(self) -> &'static str {
        match self {
            Use::Vip => "a VIP",
            Use::LocalAddress => "a local address",
            Use::RealServer => "a real server",
            Use::Interface => "an interface address",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Use::Vip => "VIP",
            Use::LocalAddress => "local address",
            Use::RealServer => "real server",
            Use::Interface => "interface address",
        }
    }

    /// Whether one address may be both `self` and `other`.
    #[must_use]
    pub fn may_share(self, other: Use) -> bool {
        use Use::{Interface, LocalAddress, RealServer, Vip};
        matches!(
            (self, other),
            (Vip, Vip)
                | (LocalAddress, LocalAddress)
                | (RealServer, RealServer)
                | (Interface, Interface)
                | (Vip, Interface)
                | (Interface, Vip)
        )
    }
}

/// Why an address cannot be used so.
fn why(new: Use, old: Use) -> &'static str {
    match (new, old) {
        (Use::RealServer, _) | (_, Use::RealServer) => {
            "answering ARP/ND for a real server's address takes that server's traffic"
        }
        (Use::LocalAddress, Use::Interface) | (Use::Interface, Use::LocalAddress) => {
            "the kernel side's connections from the interface address would share its ports"
        }
        _ => "replies to the local address would be taken for traffic to the VIP",
    }
}

/// The addresses in use, each with its use and who holds it.
#[derive(Debug, Default, Clone)]
pub struct Claims {
    held: HashMap<IpAddr, Vec<(Use, String)>>,
}

impl Claims {
    /// Every address `config` uses.
    #[must_use]
    pub fn of(config: &Config) -> Claims {
        let mut c = Claims::default();
        for i in &config.interfaces {
            c.insert(i.addr.into(), Use::Interface, format!("of {}", i.name));
            if let Some((a, _)) = i.addr6 {
                c.insert(a.into(), Use::Interface, format!("of {}", i.name));
            }
        }
        for a in &config.addresses {
            c.insert(a.addr, Use::Interface, format!("of {}", a.dev));
        }
        for m in &config.marks {
            for ip in m.hosts() {
                c.insert(ip, Use::Vip, format!("of mark {}", m.mark));
            }
        }
        for s in &config.services {
            let svc = service_name(s.proto, s.vip);
            if !super::marks::is_fwmark(s.proto) {
                c.insert(s.vip.ip(), Use::Vip, format!("of service {svc}"));
            }
            for l in &s.local_addresses {
                c.insert(*l, Use::LocalAddress, format!("of service {svc}"));
            }
            for r in &s.real_servers {
                c.insert(
                    r.addr.ip(),
                    Use::RealServer,
                    format!("{} of service {svc}", r.addr),
                );
            }
        }
        c
    }

    fn insert(&mut self, ip: IpAddr, what: Use, owner: String) {
        self.held.entry(ip).or_default().push((what, owner));
    }

    /// Records `ip` as used as `what` by `owner` (as "of service TCP/..."),
    /// unless it is already used in a way it cannot share.
    ///
    /// # Errors
    /// The refusal, naming the address, both uses and why.
    pub fn claim(&mut self, ip: IpAddr, what: Use, owner: String) -> Result<(), String> {
        if let Some((old, old_owner)) = self
            .held
            .get(&ip)
            .and_then(|h| h.iter().find(|(u, _)| !what.may_share(*u)))
        {
            return Err(format!(
                "{ip} cannot be {} {owner}: it is the {} {old_owner} ({})",
                what.article(),
                old.name(),
                why(what, *old)
            ));
        }
        self.insert(ip, what, owner);
        Ok(())
    }
}

/// `TCP/10.0.0.1:80`, as metrics and logs name a service.
#[must_use]
pub fn service_name(proto: u8, vip: std::net::SocketAddr) -> String {
    match super::marks::mark_of(vip, proto) {
        Some((m, false)) => format!("FWM/{m}"),
        Some((m, true)) => format!("FWM/{m}/IPv6"),
        None => format!("{}/{vip}", if proto == 17 { "UDP" } else { "TCP" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_table_is_symmetric() {
        let all = [Use::Vip, Use::LocalAddress, Use::RealServer, Use::Interface];
        for a in all {
            for b in all {
                assert_eq!(a.may_share(b), b.may_share(a), "{a:?} {b:?}");
            }
            assert!(a.may_share(a), "{a:?} shares with itself");
        }
    }

    #[test]
    fn a_real_servers_address_is_nobody_elses() {
        let mut c = Claims::default();
        c.claim(
            ip("10.0.0.11"),
            Use::RealServer,
            "10.0.0.11:80 of service TCP/10.0.0.100:80".into(),
        )
        .unwrap();
        let e = c
            .claim(
                ip("10.0.0.11"),
                Use::Vip,
                "of service TCP/10.0.0.11:8080".into(),
            )
            .unwrap_err();
        assert_eq!(e, "10.0.0.11 cannot be a VIP of service TCP/10.0.0.11:8080: it is the real server 10.0.0.11:80 of service TCP/10.0.0.100:80 (answering ARP/ND for a real server's address takes that server's traffic)");
        assert!(c
            .claim(ip("10.0.0.11"), Use::LocalAddress, "x".into())
            .is_err());
        assert!(c
            .claim(ip("10.0.0.11"), Use::Interface, "x".into())
            .is_err());
        // Another service may use the same server.
        c.claim(ip("10.0.0.11"), Use::RealServer, "y".into())
            .unwrap();
    }

    #[test]
    fn local_addresses_are_shared_but_not_with_vips_or_interfaces() {
        let mut c = Claims::default();
        c.claim(ip("10.0.0.2"), Use::Interface, "of dpdk0".into())
            .unwrap();
        c.claim(ip("10.0.0.200"), Use::LocalAddress, "a".into())
            .unwrap();
        c.claim(ip("10.0.0.200"), Use::LocalAddress, "b".into())
            .unwrap();
        assert!(c.claim(ip("10.0.0.200"), Use::Vip, "c".into()).is_err());
        assert!(c
            .claim(ip("10.0.0.2"), Use::LocalAddress, "d".into())
            .is_err());
        // A VIP on the appliance's own address is LVS's classic setup.
        c.claim(ip("10.0.0.2"), Use::Vip, "e".into()).unwrap();
        c.claim(ip("10.0.0.100"), Use::Vip, "f".into()).unwrap();
        assert!(c
            .claim(ip("10.0.0.100"), Use::RealServer, "g".into())
            .is_err());
    }
}
