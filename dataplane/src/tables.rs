//! The configuration a worker forwards by, as an immutable snapshot.
//!
//! The control side builds a [`Tables`] from the validated config and hands
//! each worker an `Arc` of it; workers only read it. Indices into its vectors
//! (service, real server, local address) are what sessions store, so a
//! snapshot is never mutated in place: a change means a new snapshot.

use crate::marks::{self, MarkRules};
use crate::route::Routes;
use crate::sched::{SchedFlags, SchedKind, SchedTable};
use crate::session::template::TemplateKey;
use crate::session::{Addr, Endpoint, Timeouts};
use crate::vlan::VlanMap;
use crate::wire::MacAddr;

/// A DPDK port, or an 802.1Q sub-interface of one, as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Position of the port in the worker's port list; sub-interfaces
    /// (logical ports, see [`crate::vlan`]) come after the physical ports.
    pub port: u16,
    /// The port's MAC address.
    pub mac: MacAddr,
    /// The interface's own address.
    pub addr: [u8; 4],
    /// Prefix length of the connected subnet.
    pub prefix_len: u8,
    /// Default gateway reached through this interface, if any.
    pub gateway: Option<[u8; 4]>,
    /// Largest IP packet the link carries (TUN's encapsulation checks it).
    pub mtu: u16,
}

impl Interface {
    /// True if `ip` is on this interface's connected subnet.
    #[must_use]
    pub fn on_link(&self, ip: [u8; 4]) -> bool {
        let mask = if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len.min(32)))
        };
        u32::from_be_bytes(ip) & mask == u32::from_be_bytes(self.addr) & mask
    }
}

/// Connection thresholds of a real server (`ipvsadm -x`/`-y`); 0 means none.
///
/// A server whose connections reach `upper` gets no new connections until
/// they fall below `lower` (below 3/4 of `upper` when `lower` is 0), as the
/// kernel's `IP_VS_DEST_F_OVERLOAD`. Each worker enforces its share of the
/// numbers over its own connections; see [`crate::pipeline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Thresholds {
    /// Upper connection threshold (`-x`), 0 for none.
    pub upper: u32,
    /// Lower connection threshold (`-y`), 0 for the default.
    pub lower: u32,
}

/// How packets reach a real server (ipvsadm's `-g`/`-m`/`-i`, plus FULLNAT).
///
/// | mode | toward the RS | the RS replies | appliance sees |
/// |---|---|---|---|
/// | FULLNAT | `laddr:lport → rs:port` | to the local address | both directions |
/// | NAT (`-m`) | `client:cport → rs:port` | through the appliance (its gateway) | both directions |
/// | DR (`-g`) | unchanged, only the destination MAC | straight to the client, from the VIP | client side only |
/// | TUN (`-i`) | IPIP: `dip → rip` around the unchanged packet | straight to the client, from the VIP | client side only |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Forward {
    /// Both addresses rewritten (client → local address, VIP → RS).
    #[default]
    FullNat,
    /// Masquerading: destination rewritten to the RS, replies' source back to the VIP.
    Nat,
    /// Direct routing (gatewaying): the frame goes to the RS's MAC, IP unchanged.
    Dr,
    /// IP-in-IP tunnelling: the unchanged packet inside an IPv4 header to the RS.
    Tun,
}

impl Forward {
    /// The word ipvsadm prints in its Forward column.
    #[must_use]
    pub fn column(self) -> &'static str {
        match self {
            Self::FullNat => "FullNat",
            Self::Nat => "Masq",
            Self::Dr => "Route",
            Self::Tun => "Tunnel",
        }
    }
}

/// A real server of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RealServer {
    /// Address and port connections are sent to.
    pub addr: Endpoint,
    /// Weight (0: no new connections).
    pub weight: u32,
    /// Index in the global real-server numbering (per-RS counters).
    pub index: u16,
    /// Connection thresholds.
    pub thresholds: Thresholds,
    /// Forwarding method.
    pub forward: Forward,
}

/// Persistence of a service (`ipvsadm -p [timeout] -M netmask`): new
/// connections from the same client network go to the same real server
/// while a template for it lives (until `timeout_secs` after its last
/// connection, and as long as any of its connections does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Template timeout in seconds (ipvsadm's default is 300).
    pub timeout_secs: u32,
    /// IPv4 client addresses are masked with this before matching (default /32).
    pub netmask: [u8; 4],
    /// IPv6 client addresses keep this many leading bits (ipvsadm's `-M 64`
    /// of an IPv6 service; default 128).
    pub prefix6: u8,
}

impl Persistence {
    /// ipvsadm's `-p` without a value.
    pub const DEFAULT_TIMEOUT: u32 = 300;
    /// ipvsadm's `-M` default.
    pub const DEFAULT_NETMASK: [u8; 4] = [255, 255, 255, 255];

    /// `-p timeout` with the default netmask.
    #[must_use]
    pub const fn new(timeout_secs: u32) -> Self {
        Self {
            timeout_secs,
            netmask: Self::DEFAULT_NETMASK,
            prefix6: 128,
        }
    }

    /// `client` masked with the netmask (IPv4) or cut to the prefix (IPv6).
    #[inline]
    #[must_use]
    pub fn mask(&self, client: Addr) -> Addr {
        match client.to_v4() {
            Some(c) => {
                Addr::v4((u32::from_be_bytes(c) & u32::from_be_bytes(self.netmask)).to_be_bytes())
            }
            None => client.masked(self.prefix6),
        }
    }
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    /// VIP and port.
    pub vip: Endpoint,
    /// IP protocol (6 = TCP).
    pub proto: u8,
    /// Scheduling policy.
    pub sched: SchedKind,
    /// Indices into [`Tables::laddrs`] of the FULLNAT local addresses.
    pub laddrs: Vec<u16>,
    /// Indices into [`Tables::laddrs`] of the other active appliances'
    /// local addresses (`[vip_routes] peer_local_addresses`): never lent
    /// for a new session here, only held by sessions synced from a peer
    /// (its flows, moved here when it failed), and never answered for in
    /// ARP/ND or ping (the peer holds them while it lives).
    pub peer_laddrs: Vec<u16>,
    /// Real servers.
    pub servers: Vec<RealServer>,
    /// Scheduler flags (`-b`).
    pub sched_flags: SchedFlags,
    /// What control built for the policy (sh/dh buckets, Maglev table,
    /// conhash ring; see [`crate::sched::build`]).
    pub sched_table: SchedTable,
    /// Persistence, if any.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`ipvsadm -o`, UDP): every datagram is
    /// scheduled on its own (see [`crate::pipeline`]).
    pub ops: bool,
    /// How its FULLNAT servers learn the client's address
    /// (`client_address`, see [`crate::xmit::client_addr`]).
    pub client_address: crate::xmit::client_addr::ClientAddress,
    /// Allow/deny rules on client prefixes (see [`crate::acl`]).
    pub acl: crate::acl::Acl,
    /// Connection limits and the ICMP answers' rate (see [`crate::limits`]).
    pub limits: crate::limits::Limits,
    /// SYN proxy (`syn_proxy`, TCP FULLNAT and NAT): SYNs are answered
    /// with cookies, the server is connected after the client's ACK (see
    /// [`crate::synproxy`]).
    pub syn_proxy: bool,
}

impl Service {
    /// True for a firewall-mark service (`ipvsadm -f`, see [`crate::marks`]).
    #[inline]
    #[must_use]
    pub fn is_fwmark(&self) -> bool {
        self.proto == marks::FWMARK_PROTO
    }

    /// The persistence template key of a new flow of `proto` from `client`
    /// to `dst`, under persistence `p`: `(masked client, VIP:port, proto)`,
    /// and for a firewall-mark service `(masked client, mark, 0)` whatever
    /// the port and protocol, as the kernel's `ip_vs_sched_persist` keys
    /// them (`<IPPROTO_IP, caddr, 0, fwmark, 0>`).
    #[inline]
    #[must_use]
    pub fn template_key(
        &self,
        p: Persistence,
        client: Addr,
        dst: Endpoint,
        proto: u8,
    ) -> TemplateKey {
        if self.is_fwmark() {
            TemplateKey {
                client: p.mask(client),
                vip: self.vip,
                proto: marks::FWMARK_PROTO,
            }
        } else {
            TemplateKey {
                client: p.mask(client),
                vip: dst,
                proto,
            }
        }
    }

    /// The port a new connection to `dst` reaches server `rs` at: the
    /// server's. A firewall-mark service keeps the packet's destination
    /// port for a server without one (port 0), and always when persistent:
    /// the kernel's `dest->port ? dest->port : vport` (`ip_vs_schedule`)
    /// and `dport = dst_port` when it is not the service's port
    /// (`ip_vs_sched_persist`; a fwmark service's port is 0).
    #[inline]
    #[must_use]
    pub fn server_port(&self, rs: &RealServer, dst: Endpoint) -> u16 {
        if self.is_fwmark() && (rs.addr.port == 0 || self.persistence.is_some()) {
            dst.port
        } else {
            rs.addr.port
        }
    }

    /// The server whose connections go to `rs` (a synced connection's
    /// server): the one at that address and port, or for a firewall-mark
    /// service the one at that address whose connections keep their port.
    #[must_use]
    pub fn server_reached_at(&self, rs: Endpoint) -> Option<&RealServer> {
        self.servers.iter().find(|s| s.addr == rs).or_else(|| {
            self.servers
                .iter()
                .find(|s| s.addr.ip == rs.ip && self.server_port(s, rs) == rs.port)
        })
    }
}

/// Everything the pipeline forwards by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// Ports, in worker port-list order.
    pub interfaces: Vec<Interface>,
    /// Services.
    pub services: Vec<Service>,
    /// FULLNAT local addresses (all services).
    pub laddrs: Vec<Addr>,
    /// Local ports handed out on each local address (inclusive).
    pub lport_range: (u16, u16),
    /// Session timeouts.
    pub timeouts: Timeouts,
    /// Total number of real servers (the global numbering's size).
    pub rs_count: u16,
    /// Increases with every snapshot control publishes.
    pub generation: u64,
    /// Longest-prefix-match routes (connected, local, static, default),
    /// built by control. Empty in hand-built snapshots (tests, benches):
    /// [`Tables::next_hop`] then falls back to the interfaces' subnets and
    /// gateways.
    pub routes: Routes,
    /// Own IPv6 addresses still in duplicate address detection, or found
    /// duplicate (`ip addr`'s "tentative", "dadfailed"): owned, but neither
    /// answered for in neighbour discovery nor announced. Set by control.
    pub tentative: Vec<Addr>,
    /// VIPs and local addresses configured here but held by another
    /// appliance now (active/backup, `[sync] follow_kernel_addresses`):
    /// owned, but neither answered for (ARP, ND, echo), announced nor
    /// forwarded to, until the kernel side holds them. Set by control.
    pub standby: Vec<Addr>,
    /// 802.1Q sub-interfaces: which interfaces after the physical ports are
    /// VLANs of which port (empty without any; see [`crate::vlan`]).
    pub vlans: VlanMap,
    /// Firewall-mark rules (see [`crate::marks`]): what gives a packet
    /// that found no VIP service the mark of a firewall-mark service.
    pub marks: MarkRules,
}

impl Tables {
    /// The service at `vip`, for `proto`.
    #[inline]
    #[must_use]
    pub fn service_at(&self, vip: Endpoint, proto: u8) -> Option<usize> {
        self.services
            .iter()
            .position(|s| s.vip == vip && s.proto == proto)
    }

    /// The firewall-mark service of a flow of `proto` to `dst` that found
    /// no VIP service: the first mark rule matching it gives the mark, and
    /// the service of that mark and `dst`'s family is the one (see
    /// [`crate::marks`]). Cold path (a miss): a walk over the rules.
    #[must_use]
    pub fn marked_service(&self, dst: Endpoint, proto: u8) -> Option<usize> {
        if self.marks.is_empty() {
            return None;
        }
        let mark = self.marks.classify(dst, proto)?;
        self.service_at(
            marks::service_vip(mark, !dst.ip.is_v4()),
            marks::FWMARK_PROTO,
        )
    }

    /// The service whose NAT real server `rs` is, for `proto`: the owner of
    /// a NAT reply (`rs → client`) that missed a worker's session table is
    /// the owner of `client → that service's VIP`. The first match wins (a
    /// server may be a NAT server of several services: the owner rule does
    /// not depend on the VIP, see [`crate::pipeline::owner`]). Cold path: a
    /// linear scan.
    #[must_use]
    pub fn nat_service_of(&self, rs: Endpoint, proto: u8) -> Option<usize> {
        self.services.iter().position(|s| {
            // A firewall-mark service takes both protocols, and its servers
            // may answer from the port each connection kept.
            (s.proto == proto || s.is_fwmark())
                && s.servers.iter().any(|r| {
                    r.forward == Forward::Nat
                        && r.addr.ip == rs.ip
                        && (r.addr.port == rs.port || s.server_port(r, rs) == rs.port)
                })
        })
    }

    /// The index of the local address `ip`.
    #[inline]
    #[must_use]
    pub fn laddr_index(&self, ip: Addr) -> Option<usize> {
        self.laddrs.iter().position(|a| *a == ip)
    }

    /// True if the appliance owns `ip` (VIP, local address, interface
    /// address, or a host address of a mark rule).
    #[must_use]
    pub fn owns(&self, ip: Addr) -> bool {
        self.services
            .iter()
            .any(|s| s.vip.ip == ip && s.proto != marks::FWMARK_PROTO)
            || self.laddrs.contains(&ip)
            || self.is_interface_addr(ip)
            || self.marks.has_host(ip)
    }

    /// True if `ip` is an own IPv6 address not (or not yet) usable: see
    /// [`Tables::tentative`].
    #[must_use]
    pub fn is_tentative(&self, ip: Addr) -> bool {
        self.tentative.contains(&ip)
    }

    /// True if `ip` is a VIP or local address another appliance holds now:
    /// see [`Tables::standby`].
    #[inline]
    #[must_use]
    pub fn is_standby(&self, ip: Addr) -> bool {
        !self.standby.is_empty() && self.standby.contains(&ip)
    }

    /// True if the appliance owns `ip` and answers for it now: owned, not
    /// on standby, and not a peer's local address only.
    #[inline]
    #[must_use]
    pub fn holds(&self, ip: Addr) -> bool {
        self.owns(ip) && !self.is_standby(ip) && !self.is_peer_laddr(ip)
    }

    /// True if `ip` is a peer appliance's local address and none of this
    /// box's own (see [`Service::peer_laddrs`]). Cold path.
    #[must_use]
    pub fn is_peer_laddr(&self, ip: Addr) -> bool {
        let Some(li) = self.laddr_index(ip) else {
            return false;
        };
        let li = li as u16;
        self.services.iter().any(|s| s.peer_laddrs.contains(&li))
            && !self.services.iter().any(|s| s.laddrs.contains(&li))
    }

    /// True if `ip` is an address of an interface: its configured address,
    /// or one added at run time (`rvsadm addr add`, a local route). Traffic
    /// for these that the balancer does not consume belongs to the kernel.
    #[must_use]
    pub fn is_interface_addr(&self, ip: Addr) -> bool {
        match ip.to_v4() {
            Some(v4) => self.interfaces.iter().any(|i| i.addr == v4) || self.routes.v4.is_local(v4),
            None => self.routes.v6.is_local(ip.octets()),
        }
    }

    /// The IPv6 address of port `port` (its first local route), the source
    /// of what the appliance itself sends there (IPv6 tunnels).
    #[must_use]
    pub fn port_addr6(&self, port: u16) -> Option<[u8; 16]> {
        self.routes
            .v6
            .routes()
            .iter()
            .find(|r| r.len == 128 && r.hop == crate::route::NextHop::Local { port })
            .map(|r| r.prefix)
    }

    /// True if `ip` is a neighbour on `port`'s link: the route table sends
    /// traffic for it out of `port` straight to it (a connected subnet,
    /// configured or added at run time), not through a gateway and not to
    /// the appliance itself. What the data plane learns neighbours by.
    #[inline]
    #[must_use]
    pub fn on_link(&self, port: u16, ip: Addr) -> bool {
        self.next_hop(ip) == Some((port, ip))
    }

    /// The port and next-hop address toward `ip`, by longest-prefix match
    /// in [`Tables::routes`]. Without routes: the first interface `ip` is
    /// on-link for, else the first interface with a gateway.
    #[must_use]
    pub fn next_hop(&self, ip: Addr) -> Option<(u16, Addr)> {
        let Some(ip) = ip.to_v4() else {
            return self
                .routes
                .v6
                .next_hop(ip.octets())
                .map(|(port, hop)| (port, Addr::v6(hop)));
        };
        if !self.routes.v4.is_empty() {
            return self
                .routes
                .v4
                .next_hop(ip)
                .map(|(port, hop)| (port, Addr::v4(hop)));
        }
        if let Some(i) = self.interfaces.iter().find(|i| i.on_link(ip)) {
            return Some((i.port, Addr::v4(ip)));
        }
        self.interfaces
            .iter()
            .find_map(|i| i.gateway.map(|g| (i.port, Addr::v4(g))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_link_and_next_hop() {
        let t = Tables {
            interfaces: vec![Interface {
                port: 0,
                mac: [0; 6],
                addr: [10, 0, 0, 2],
                prefix_len: 24,
                gateway: Some([10, 0, 0, 1]),
                mtu: 1500,
            }],
            services: vec![],
            laddrs: vec![[10, 0, 0, 200].into()],
            lport_range: (1024, 65535),
            timeouts: Timeouts::default(),
            rs_count: 0,
            generation: 1,
            routes: Routes::default(),
            tentative: Vec::new(),
            standby: Vec::new(),
            vlans: VlanMap::default(),
            marks: Default::default(),
        };
        assert_eq!(
            t.next_hop(Addr::v4([10, 0, 0, 9])),
            Some((0, Addr::v4([10, 0, 0, 9])))
        );
        assert_eq!(
            t.next_hop(Addr::v4([8, 8, 8, 8])),
            Some((0, Addr::v4([10, 0, 0, 1])))
        );
        assert!(
            t.owns(Addr::v4([10, 0, 0, 200]))
                && t.owns(Addr::v4([10, 0, 0, 2]))
                && !t.owns(Addr::v4([10, 0, 0, 3]))
        );
    }

    #[test]
    fn routes_pick_the_port_and_own_added_addresses() {
        use crate::route::{NextHop, Route, RouteTable};
        let ifs = vec![
            Interface {
                port: 0,
                mac: [0; 6],
                addr: [10, 78, 0, 2],
                prefix_len: 24,
                gateway: None,
                mtu: 1500,
            },
            Interface {
                port: 1,
                mac: [1; 6],
                addr: [10, 79, 0, 2],
                prefix_len: 24,
                gateway: None,
                mtu: 1500,
            },
        ];
        let route = |prefix, len, hop| Route { prefix, len, hop };
        let v4 = RouteTable::new([
            route([10, 78, 0, 0], 24, NextHop::OnLink { port: 0 }),
            route([10, 79, 0, 0], 24, NextHop::OnLink { port: 1 }),
            route(
                [10, 80, 0, 0],
                24,
                NextHop::Via {
                    port: 1,
                    gateway: [10, 79, 0, 254],
                },
            ),
            route(
                [0, 0, 0, 0],
                0,
                NextHop::Via {
                    port: 0,
                    gateway: [10, 78, 0, 1],
                },
            ),
            route([10, 79, 0, 9], 32, NextHop::Local { port: 1 }),
        ])
        .unwrap();
        let t = Tables {
            interfaces: ifs,
            services: vec![],
            laddrs: vec![],
            lport_range: (1024, 65535),
            timeouts: Timeouts::default(),
            rs_count: 0,
            generation: 1,
            routes: Routes {
                v4,
                ..Routes::default()
            },
            tentative: Vec::new(),
            standby: Vec::new(),
            vlans: VlanMap::default(),
            marks: Default::default(),
        };
        assert_eq!(
            t.next_hop(Addr::v4([10, 79, 0, 11])),
            Some((1, Addr::v4([10, 79, 0, 11])))
        );
        assert_eq!(
            t.next_hop(Addr::v4([10, 80, 0, 5])),
            Some((1, Addr::v4([10, 79, 0, 254])))
        );
        assert_eq!(
            t.next_hop(Addr::v4([1, 1, 1, 1])),
            Some((0, Addr::v4([10, 78, 0, 1])))
        );
        assert!(
            t.owns(Addr::v4([10, 79, 0, 9]))
                && t.is_interface_addr(Addr::v4([10, 79, 0, 9]))
                && !t.owns(Addr::v4([10, 79, 0, 10]))
        );
    }

    #[test]
    fn on_link_follows_the_routes_not_the_configured_subnet() {
        use crate::route::{NextHop, Route, RouteTable};
        let route = |prefix, len, hop| Route { prefix, len, hop };
        // Port 0 is configured 10.77.0.2/24; 10.88.0.0/24 was added at run
        // time (`rvsadm addr add 10.88.0.2/24`), with its local route.
        let v4 = RouteTable::new([
            route([10, 77, 0, 0], 24, NextHop::OnLink { port: 0 }),
            route([10, 77, 0, 2], 32, NextHop::Local { port: 0 }),
            route([10, 88, 0, 0], 24, NextHop::OnLink { port: 0 }),
            route([10, 88, 0, 2], 32, NextHop::Local { port: 0 }),
            route(
                [10, 90, 0, 0],
                24,
                NextHop::Via {
                    port: 0,
                    gateway: [10, 77, 0, 1],
                },
            ),
        ])
        .unwrap();
        let t = Tables {
            interfaces: vec![Interface {
                port: 0,
                mac: [0; 6],
                addr: [10, 77, 0, 2],
                prefix_len: 24,
                gateway: None,
                mtu: 1500,
            }],
            services: vec![],
            laddrs: vec![],
            lport_range: (1024, 65535),
            timeouts: Timeouts::default(),
            rs_count: 0,
            generation: 1,
            routes: Routes {
                v4,
                ..Routes::default()
            },
            tentative: Vec::new(),
            standby: Vec::new(),
            vlans: VlanMap::default(),
            marks: Default::default(),
        };
        assert!(t.on_link(0, Addr::v4([10, 77, 0, 11])));
        assert!(
            t.on_link(0, Addr::v4([10, 88, 0, 7])),
            "a subnet added at run time is on-link"
        );
        assert!(
            !t.interfaces[0].on_link([10, 88, 0, 7]),
            "the configured subnet alone would say no"
        );
        assert!(!t.on_link(1, Addr::v4([10, 88, 0, 7])), "on another port");
        assert!(!t.on_link(0, Addr::v4([10, 90, 0, 7])), "behind a gateway");
        assert!(
            !t.on_link(0, Addr::v4([10, 88, 0, 2])),
            "the appliance's own address"
        );
        assert!(!t.on_link(0, Addr::v4([192, 168, 0, 1])), "no route");
        // Without routes (hand-built snapshots), the interfaces' subnets.
        let bare = Tables {
            routes: Routes::default(),
            ..t
        };
        assert!(
            bare.on_link(0, Addr::v4([10, 77, 0, 11]))
                && !bare.on_link(0, Addr::v4([10, 88, 0, 7]))
        );
    }

    #[test]
    fn persistence_masks_clients() {
        let p = Persistence {
            timeout_secs: 300,
            netmask: [255, 255, 255, 0],
            prefix6: 64,
        };
        let v6 = Addr::from("2001:db8:1:2:aaaa::7".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(p.mask(v6).to_string(), "2001:db8:1:2::");
        assert_eq!(Persistence::new(60).mask(v6), v6);
        assert_eq!(
            p.mask(Addr::v4([192, 168, 7, 42])),
            Addr::v4([192, 168, 7, 0])
        );
        assert_eq!(
            Persistence::new(60).mask(Addr::v4([192, 168, 7, 42])),
            Addr::v4([192, 168, 7, 42])
        );
    }
}
