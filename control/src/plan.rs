//! Pure translations of a validated [`Config`] into what the data plane
//! takes: EAL arguments and the forwarding [`Tables`]. No DPDK here, so both
//! are unit-tested directly.

use std::net::SocketAddr;
use std::path::Path;

use dataplane::acl::{Acl, Rule};
use dataplane::addr::Addr;
use dataplane::limits::Limits;
use dataplane::sched::{self, Member, MH_TABLE_SIZE_DEFAULT};
use dataplane::session::Endpoint;
use dataplane::tables::{Interface, RealServer, Service, Tables};
use dataplane::vlan::{Vlan, VlanMap};
use dataplane::wire::MacAddr;

use crate::config::{Config, ServiceConfig, ServiceOptions};

/// The EAL command line for `config` (argument 0 is the program name).
#[must_use]
pub fn eal_args(config: &Config) -> Vec<String> {
    let d = &config.dpdk;
    let mut lcores = vec![d.main_lcore];
    lcores.extend(&config.dataplane.worker_lcores);
    let list: Vec<String> = lcores.iter().map(u32::to_string).collect();
    let (cores_flag, cores) = match &d.lcore_map {
        Some(m) => ("--lcores", m.clone()),
        None => ("-l", list.join(",")),
    };
    let mut a = vec![
        "rvsd".to_string(),
        cores_flag.into(),
        cores,
        "--main-lcore".into(),
        d.main_lcore.to_string(),
        "-m".into(),
        d.memory_mb.to_string(),
        "--file-prefix".into(),
        d.file_prefix.clone(),
        "--log-level".into(),
        "lib.eal:warning".into(),
        "--no-telemetry".into(),
    ];
    if d.no_huge {
        a.push("--no-huge".into());
    }
    if d.no_pci {
        a.push("--no-pci".into());
    }
    for i in config.interfaces.iter().filter(|i| i.is_port()) {
        if i.is_vdev() {
            a.push(format!(
                "--vdev={}",
                i.eal_device(config.dataplane.worker_lcores.len())
            ));
        } else {
            a.push("-a".into());
            a.push(i.device.clone());
        }
    }
    a.extend(d.extra_args.iter().cloned());
    a
}

/// A device refers to something missing on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("interface {name}: device {device:?}: network interface {iface:?} does not exist in this network namespace")]
pub struct MissingIface {
    /// Interface name in the config.
    pub name: String,
    /// Device string.
    pub device: String,
    /// The kernel interface it names.
    pub iface: String,
}

/// Checks that every kernel interface a virtual device attaches to exists
/// (`/sys/class/net/IFACE`), so a typo gets a clear message instead of an
/// EAL probe failure.
///
/// # Errors
/// The first missing interface.
pub fn check_kernel_ifaces(config: &Config, sys_class_net: &Path) -> Result<(), MissingIface> {
    for i in &config.interfaces {
        if let Some(iface) = i.kernel_iface() {
            if !sys_class_net.join(iface).exists() {
                return Err(MissingIface {
                    name: i.name.clone(),
                    device: i.device.clone(),
                    iface: iface.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Whether the running kernel has no `multiq` queueing discipline.
///
/// DPDK's TAP driver (the exception path) adds a `multiq` qdisc to every TAP
/// for its rte_flow support; on a kernel built without `CONFIG_NET_SCH_MULTIQ`
/// it logs "failed to create multiq qdisc" and "Disabling rte flow support"
/// per TAP and carries on. rvs puts no rte_flow rules on its TAPs, so this is
/// harmless, and rvsd says so in its log. `None` when it cannot tell.
#[must_use]
pub fn kernel_lacks_multiq(
    sys_module: &Path,
    kernel_config: Option<&str>,
    module_dir: &Path,
) -> Option<bool> {
    if sys_module.join("sch_multiq").exists() {
        return Some(false);
    }
    if let Some(cfg) = kernel_config {
        if cfg.lines().any(|l| l.starts_with("CONFIG_NET_SCH_MULTIQ=")) {
            // Built in, or a module the kernel loads on demand.
            return Some(false);
        }
        if cfg.contains("# CONFIG_NET_SCH_MULTIQ is not set") {
            return Some(true);
        }
    }
    if module_dir.exists() {
        let found = std::fs::read_dir(module_dir.join("kernel/net/sched"))
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("sch_multiq.ko"))
            })
            .unwrap_or(false);
        return Some(!found);
    }
    None
}

/// Stable numbering of local addresses and real servers across snapshots.
///
/// Sessions and per-worker counters refer to local addresses and real
/// servers by index, and a session outlives the snapshot it was created
/// under. So indices are handed out append-only: a real server removed and
/// added back gets its old index; a removed one's index is never reused for
/// another while rvsd runs.
///
/// It also remembers each server's last non-zero weight (the kernel's
/// `last_weight`): the Maglev table is built from it, so setting a weight to
/// 0 (draining) leaves every other client's mapping alone.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    laddrs: Vec<Addr>,
    servers: Vec<(SocketAddr, u8, SocketAddr)>,
    last_weight: Vec<u32>,
    /// Hit counters of ACL rules and limits: (service, what it counts),
    /// append-only like the servers, so a counter survives edits of the
    /// other rules.
    counters: Vec<(SocketAddr, u8, String)>,
}

impl Registry {
    /// The hit-counter index of `what` (`"deny 10.0.0.0/8"`, `"max_conns"`,
    /// ...) of service (`vip`, `proto`); `u16::MAX` (not counted) once
    /// [`dataplane::limits::MAX_COUNTERS`] are taken.
    pub fn counter(&mut self, vip: SocketAddr, proto: u8, what: &str) -> u16 {
        if let Some(i) = self.counter_of(vip, proto, what) {
            return i;
        }
        if self.counters.len() >= dataplane::limits::MAX_COUNTERS {
            return u16::MAX;
        }
        self.counters.push((vip, proto, what.to_string()));
        (self.counters.len() - 1) as u16
    }

    /// The hit-counter index of `what` of service (`vip`, `proto`), if it
    /// has one.
    #[must_use]
    pub fn counter_of(&self, vip: SocketAddr, proto: u8, what: &str) -> Option<u16> {
        self.counters
            .iter()
            .position(|(v, p, w)| *v == vip && *p == proto && w == what)
            .map(|i| i as u16)
    }

    fn laddr(&mut self, a: Addr) -> u16 {
        let i = self.laddrs.iter().position(|x| *x == a).unwrap_or_else(|| {
            self.laddrs.push(a);
            self.laddrs.len() - 1
        });
        i as u16
    }

    fn server(&mut self, vip: SocketAddr, proto: u8, rs: SocketAddr) -> u16 {
        let key = (vip, proto, rs);
        let i = self
            .servers
            .iter()
            .position(|x| *x == key)
            .unwrap_or_else(|| {
                self.servers.push(key);
                self.last_weight.push(0);
                self.servers.len() - 1
            });
        i as u16
    }

    /// Records server `index`'s current weight and returns its last weight:
    /// updated unless the new weight is 0 (a server first seen at 0 has 0).
    fn last_weight(&mut self, index: u16, weight: u32) -> u32 {
        let Some(w) = self.last_weight.get_mut(usize::from(index)) else {
            return weight;
        };
        if weight != 0 {
            *w = weight;
        }
        *w
    }

    /// Real servers numbered so far.
    #[must_use]
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// The index of a real server, if it was ever numbered.
    #[must_use]
    pub fn server_index(&self, vip: SocketAddr, proto: u8, rs: SocketAddr) -> Option<usize> {
        self.servers.iter().position(|x| *x == (vip, proto, rs))
    }
}

/// The forwarding tables for `config`, given each port's MAC (port order),
/// numbering through `registry`, stamped with `generation`.
#[must_use]
pub fn tables(
    config: &Config,
    macs: &[MacAddr],
    registry: &mut Registry,
    generation: u64,
) -> Tables {
    let vlans = vlans(config);
    let interfaces = config
        .interfaces
        .iter()
        .enumerate()
        .map(|(i, c)| Interface {
            port: i as u16,
            // A sub-interface has its parent port's MAC, as in Linux.
            mac: macs
                .get(vlans.vlan_of(i as u16).map_or(i, |v| usize::from(v.parent)))
                .copied()
                .unwrap_or_default(),
            addr: c.addr.octets(),
            prefix_len: c.prefix_len,
            gateway: c.gateway.map(|g| g.octets()),
            mtu: c.mtu,
        })
        .collect();
    let services = config
        .services
        .iter()
        .map(|s| service(config, s, registry))
        .collect();
    Tables {
        interfaces,
        services,
        laddrs: registry.laddrs.clone(),
        lport_range: config.dataplane.lport_range,
        timeouts: config.timeouts,
        rs_count: registry.servers.len() as u16,
        generation,
        routes: crate::config::net::routes(config),
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans,
        marks: crate::config::marks::rules(&config.marks),
    }
}

/// The 802.1Q sub-interfaces of `config` as logical ports of their parents.
#[must_use]
pub fn vlans(config: &Config) -> VlanMap {
    let pos = |name: &str| {
        config
            .interfaces
            .iter()
            .position(|i| i.name == name)
            .and_then(|p| u16::try_from(p).ok())
    };
    VlanMap::new(config.interfaces.iter().enumerate().filter_map(|(i, c)| {
        let v = c.vlan.as_ref()?;
        Some(Vlan {
            port: u16::try_from(i).ok()?,
            parent: pos(&v.link)?,
            vid: v.id,
        })
    }))
}

/// One service of the snapshot, with its scheduler's table built here, on
/// the control thread (workers never build Maglev tables or rings).
fn service(config: &Config, s: &ServiceConfig, registry: &mut Registry) -> Service {
    let defaults = ServiceOptions::default();
    let opts = config.service_options(s.vip, s.proto).unwrap_or(&defaults);
    let servers: Vec<RealServer> = s
        .real_servers
        .iter()
        .map(|r| RealServer {
            addr: Endpoint::at(Addr::from(r.addr.ip()), r.addr.port()),
            weight: r.weight,
            index: registry.server(s.vip, s.proto, r.addr),
            thresholds: opts.thresholds.get(&r.addr).copied().unwrap_or_default(),
            forward: opts.forward_of(r.addr, s.forward),
        })
        .collect();
    let members: Vec<Member> = servers
        .iter()
        .map(|r| Member {
            addr: r.addr.ip.fold32(),
            port: r.addr.port,
            weight: r.weight,
            last_weight: registry.last_weight(r.index, r.weight),
        })
        .collect();
    Service {
        vip: Endpoint::at(Addr::from(s.vip.ip()), s.vip.port()),
        proto: s.proto,
        sched: s.scheduler,
        laddrs: s
            .local_addresses
            .iter()
            .map(|a| registry.laddr(Addr::from(*a)))
            .collect(),
        // A peer's local addresses of the family of this service's own
        // (FULLNAT services only: a synced session's local address).
        peer_laddrs: config
            .vip_routes
            .iter()
            .flat_map(|v| &v.peer_local_addresses)
            .filter(|p| s.local_addresses.iter().any(|l| l.is_ipv4() == p.is_ipv4()))
            .map(|a| registry.laddr(Addr::from(*a)))
            .collect(),
        sched_table: sched::build(
            s.scheduler,
            opts.mh_table_size.unwrap_or(MH_TABLE_SIZE_DEFAULT),
            &members,
        ),
        sched_flags: opts.sched_flags,
        persistence: opts.persistence,
        ops: opts.ops,
        client_address: opts.client_address,
        acl: Acl {
            rules: opts
                .acl
                .iter()
                .map(|r| Rule {
                    action: r.action,
                    prefix: r.prefix,
                    counter: registry.counter(s.vip, s.proto, &r.to_string()),
                })
                .collect(),
        },
        limits: Limits {
            counters: LIMIT_COUNTERS.map(|c| registry.counter(s.vip, s.proto, c)),
            ..opts.limits
        },
        syn_proxy: opts.syn_proxy,
        servers,
    }
}

/// What the four counters of [`Limits::counters`] count, as listings name them.
pub const LIMIT_COUNTERS: [&str; 4] = [
    "max_conns",
    "max_conns_per_client",
    "new_conn_rate",
    "icmp_rate",
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;

    fn lab() -> Config {
        config::parse(Path::new("lab.toml"), include_str!("../../config/lab.toml")).unwrap()
    }

    #[test]
    fn eal_args_for_the_lab() {
        let a = eal_args(&lab());
        let s = a.join(" ");
        assert!(
            s.starts_with("rvsd -l 0,1 --main-lcore 0 -m 256 --file-prefix rvs-lab"),
            "{s}"
        );
        assert!(s.contains("--no-huge") && s.contains("--no-pci"));
        assert!(
            a.contains(&"--vdev=net_af_packet0,iface=lb0,framecnt=4096".to_string()),
            "{s}"
        );
    }

    #[test]
    fn af_packet_and_af_xdp_devices_get_a_queue_per_worker_unless_set() {
        let mut c = lab();
        c.dataplane.worker_lcores = vec![1, 2];
        assert_eq!(
            c.interfaces[0].eal_device(2),
            "net_af_packet0,iface=lb0,qpairs=2,framecnt=4096"
        );
        c.interfaces[0].device = "net_af_packet0,iface=lb0,qpairs=2,framecnt=1024".into();
        assert_eq!(
            c.interfaces[0].eal_device(2),
            "net_af_packet0,iface=lb0,qpairs=2,framecnt=1024"
        );
        c.interfaces[0].device = "net_tap0,iface=t0".into();
        assert_eq!(c.interfaces[0].eal_device(2), "net_tap0,iface=t0");
        c.interfaces[0].device = "net_af_xdp0,iface=lb0".into();
        assert_eq!(c.interfaces[0].eal_device(1), "net_af_xdp0,iface=lb0");
        assert_eq!(
            c.interfaces[0].eal_device(2),
            "net_af_xdp0,iface=lb0,queue_count=2"
        );
    }

    #[test]
    fn tables_for_the_lab() {
        let mut reg = Registry::default();
        let t = tables(&lab(), &[[2, 0, 0, 0, 0, 1]], &mut reg, 7);
        assert_eq!(t.generation, 7);
        assert_eq!(t.interfaces[0].mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(t.laddrs, vec![Addr::v4([10, 77, 0, 200])]);
        assert_eq!(t.rs_count, 2);
        assert_eq!(
            t.services[0].servers[1].addr,
            Endpoint::new([10, 77, 0, 12], 80)
        );
        assert_eq!(t.services[0].servers[1].index, 1);
        assert_eq!(t.lport_range, (1025, 65535));
    }

    #[test]
    fn vlan_sub_interfaces_are_logical_ports_of_their_parent() {
        let text = include_str!("../../config/lab.toml").replace(
            "[[service]]",
            "[[interface]]\nname = \"dpdk0.100\"\nlink = \"dpdk0\"\nvlan = 100\naddress = \"10.78.0.2/24\"\n\n[[service]]",
        );
        let cfg = config::parse(Path::new("vlan.toml"), &text).unwrap();
        let a = eal_args(&cfg).join(" ");
        assert_eq!(
            a.matches("--vdev").count(),
            1,
            "a sub-interface is no EAL device: {a}"
        );
        let t = tables(&cfg, &[[2, 0, 0, 0, 0, 1]], &mut Registry::default(), 1);
        assert_eq!(t.interfaces.len(), 2);
        assert_eq!(
            (
                t.interfaces[1].port,
                t.interfaces[1].mac,
                t.interfaces[1].addr
            ),
            (1, [2, 0, 0, 0, 0, 1], [10, 78, 0, 2])
        );
        assert_eq!(t.vlans.port_of(0, 100), Some(1));
        assert_eq!(dataplane::vlan::egress(1, &t.vlans), Some((0, 100)));
        assert_eq!(
            t.next_hop(Addr::v4([10, 78, 0, 11])),
            Some((1, Addr::v4([10, 78, 0, 11]))),
            "its connected subnet"
        );
        assert!(t.is_interface_addr(Addr::v4([10, 78, 0, 2])));
    }

    #[test]
    fn indices_survive_removal_and_re_adding() {
        let mut cfg = lab();
        let mut reg = Registry::default();
        let first = tables(&cfg, &[], &mut reg, 1);
        let rs2 = cfg.services[0].real_servers.remove(1);
        cfg.services[0].real_servers.remove(0);
        cfg.services[0]
            .real_servers
            .push(crate::config::RealServerConfig {
                addr: "10.77.0.13:80".parse().unwrap(),
                weight: 1,
            });
        cfg.services[0].real_servers.push(rs2);
        let second = tables(&cfg, &[], &mut reg, 2);
        assert_eq!(
            second.services[0].servers[0].index, 2,
            "a new server gets a new index"
        );
        assert_eq!(
            second.services[0].servers[1].index, first.services[0].servers[1].index,
            "rs2 keeps its index"
        );
        assert_eq!(second.rs_count, 3);
    }

    #[test]
    fn scheduling_options_and_tables_reach_the_snapshot() {
        let mut cfg = lab();
        let (vip, rs1) = (cfg.services[0].vip, cfg.services[0].real_servers[0].addr);
        cfg.services[0].scheduler = dataplane::sched::SchedKind::MaglevHashing;
        let o = cfg.service_options_mut(vip, 6);
        o.sched_flags = dataplane::sched::SchedFlags::FALLBACK;
        o.mh_table_size = Some(4093);
        o.persistence = Some(dataplane::tables::Persistence::new(120));
        o.thresholds.insert(
            rs1,
            dataplane::tables::Thresholds {
                upper: 10,
                lower: 5,
            },
        );
        let mut reg = Registry::default();
        let t = tables(&cfg, &[], &mut reg, 1);
        let s = &t.services[0];
        assert_eq!(s.sched_flags, dataplane::sched::SchedFlags::FALLBACK);
        assert_eq!(s.persistence.map(|p| p.timeout_secs), Some(120));
        assert_eq!(s.servers[0].thresholds.upper, 10);
        assert_eq!(
            s.servers[1].thresholds,
            dataplane::tables::Thresholds::default()
        );
        let dataplane::sched::SchedTable::Maglev(m) = &s.sched_table else {
            panic!("no Maglev table: {:?}", s.sched_table)
        };
        assert_eq!(m.len(), 4093);
        // Draining a server (weight 0) keeps the Maglev table as it was
        // (the kernel's last_weight): no other client moves.
        cfg.services[0].real_servers[0].weight = 0;
        let drained = tables(&cfg, &[], &mut reg, 2);
        assert_eq!(drained.services[0].sched_table, s.sched_table);
        assert_eq!(drained.services[0].servers[0].weight, 0);
        // Deleting the service's options gives the defaults back.
        cfg.remove_service_options(vip, 6);
        let plain = tables(&cfg, &[], &mut reg, 3);
        assert_eq!(
            (plain.services[0].persistence, plain.services[0].sched_flags),
            (None, dataplane::sched::SchedFlags::NONE)
        );
        let dataplane::sched::SchedTable::Maglev(m) = &plain.services[0].sched_table else {
            panic!()
        };
        assert_eq!(m.len(), 251, "default size");
    }

    #[test]
    fn forwarding_methods_reach_the_snapshot_per_server() {
        let mut cfg = lab();
        let (vip, rs2) = (cfg.services[0].vip, cfg.services[0].real_servers[1].addr);
        cfg.services[0].forward = crate::config::Forward::Dr;
        cfg.service_options_mut(vip, 6)
            .forwards
            .insert(rs2, crate::config::Forward::Nat);
        let t = tables(&cfg, &[], &mut Registry::default(), 1);
        let f: Vec<_> = t.services[0].servers.iter().map(|r| r.forward).collect();
        assert_eq!(
            f,
            vec![
                dataplane::tables::Forward::Dr,
                dataplane::tables::Forward::Nat
            ]
        );
        assert_eq!(t.nat_service_of(t.services[0].servers[1].addr, 6), Some(0));
        assert_eq!(
            t.nat_service_of(t.services[0].servers[0].addr, 6),
            None,
            "a DR server is no NAT server"
        );
    }

    #[test]
    fn ipv6_services_and_routes_reach_the_snapshot() {
        let text = include_str!("../../config/lab.toml")
            .replace(
                "# Session timeouts",
                "[[service]]\nvip = \"[fd77::100]:80\"\nlocal_addresses = [\"fd77::200\"]\n[[service.real_server]]\naddress = \"[fd77::11]:80\"\n# Session timeouts",
            );
        let cfg = config::parse(Path::new("v6.toml"), &text).unwrap();
        let t = tables(&cfg, &[], &mut Registry::default(), 1);
        let v6 = |s: &str| Addr::from(s.parse::<std::net::IpAddr>().unwrap());
        let s = &t.services[1];
        assert_eq!(s.vip, Endpoint::at(v6("fd77::100"), 80));
        assert_eq!(s.servers[0].addr, Endpoint::at(v6("fd77::11"), 80));
        assert_eq!(
            s.laddrs
                .iter()
                .map(|i| t.laddrs[usize::from(*i)])
                .collect::<Vec<_>>(),
            vec![v6("fd77::200")]
        );
        assert_eq!(t.service_at(Endpoint::at(v6("fd77::100"), 80), 6), Some(1));
        assert_eq!(t.next_hop(v6("fd77::11")), Some((0, v6("fd77::11"))));
        assert!(
            t.is_interface_addr(v6("fd77::2"))
                && t.owns(v6("fd77::100"))
                && t.owns(v6("fd77::200"))
        );
        assert_eq!(
            t.services[0].vip,
            Endpoint::new([10, 77, 0, 100], 80),
            "IPv4 as before"
        );
    }

    #[test]
    fn missing_kernel_iface_is_named() {
        let dir = std::env::temp_dir().join(format!("rvs-sysnet-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lb0")).unwrap();
        assert!(check_kernel_ifaces(&lab(), &dir).is_ok());
        std::fs::remove_dir(dir.join("lb0")).unwrap();
        let e = check_kernel_ifaces(&lab(), &dir).unwrap_err();
        assert!(e.to_string().contains("\"lb0\" does not exist"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn multiq_missing_is_told_from_the_kernels_config_modules_and_sysfs() {
        let dir = std::env::temp_dir().join(format!("rvs-multiq-{}", std::process::id()));
        let sys = dir.join("sys");
        let mods = dir.join("lib/modules/x");
        std::fs::create_dir_all(&sys).unwrap();
        let none = dir.join("nowhere");
        // This machine's kind: a kernel config without it, no modules.
        let unset = "CONFIG_NET_SCH_HTB=y\n# CONFIG_NET_SCH_MULTIQ is not set\n";
        assert_eq!(kernel_lacks_multiq(&sys, Some(unset), &none), Some(true));
        assert_eq!(
            kernel_lacks_multiq(&sys, Some("CONFIG_NET_SCH_MULTIQ=m\n"), &none),
            Some(false)
        );
        assert_eq!(kernel_lacks_multiq(&sys, None, &none), None);
        // Debian's kernels: a loadable module.
        std::fs::create_dir_all(mods.join("kernel/net/sched")).unwrap();
        assert_eq!(kernel_lacks_multiq(&sys, None, &mods), Some(true));
        std::fs::write(mods.join("kernel/net/sched/sch_multiq.ko.xz"), b"").unwrap();
        assert_eq!(kernel_lacks_multiq(&sys, None, &mods), Some(false));
        // Loaded already.
        std::fs::create_dir_all(sys.join("sch_multiq")).unwrap();
        assert_eq!(kernel_lacks_multiq(&sys, Some(unset), &none), Some(false));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
