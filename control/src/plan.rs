//! Pure translations of a validated [`Config`] into what the data plane
//! takes: EAL arguments and the forwarding [`Tables`]. No DPDK here, so both
//! are unit-tested directly.

use std::path::Path;

use dataplane::session::Endpoint;
use dataplane::tables::{Interface, RealServer, Service, Tables};
use dataplane::wire::MacAddr;

use crate::config::Config;

/// The EAL command line for `config` (argument 0 is the program name).
#[must_use]
pub fn eal_args(config: &Config) -> Vec<String> {
    let d = &config.dpdk;
    let mut lcores = vec![d.main_lcore];
    lcores.extend(&config.dataplane.worker_lcores);
    let list: Vec<String> = lcores.iter().map(u32::to_string).collect();
    let mut a = vec![
        "rvsd".to_string(),
        "-l".into(),
        list.join(","),
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
    for i in &config.interfaces {
        if i.is_vdev() {
            a.push(format!("--vdev={}", i.device));
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
                return Err(MissingIface { name: i.name.clone(), device: i.device.clone(), iface: iface.to_string() });
            }
        }
    }
    Ok(())
}

/// The forwarding tables for `config`, given each port's MAC (port order).
#[must_use]
pub fn tables(config: &Config, macs: &[MacAddr]) -> Tables {
    let interfaces = config
        .interfaces
        .iter()
        .enumerate()
        .map(|(i, c)| Interface {
            port: i as u16,
            mac: macs.get(i).copied().unwrap_or_default(),
            addr: c.addr.octets(),
            prefix_len: c.prefix_len,
            gateway: c.gateway.map(|g| g.octets()),
        })
        .collect();
    let mut laddrs: Vec<[u8; 4]> = Vec::new();
    let mut rs_count: u16 = 0;
    let services = config
        .services
        .iter()
        .map(|s| {
            let mut li = Vec::new();
            for a in &s.local_addresses {
                let o = a.octets();
                let idx = laddrs.iter().position(|x| *x == o).unwrap_or_else(|| {
                    laddrs.push(o);
                    laddrs.len() - 1
                });
                li.push(idx as u16);
            }
            let servers = s
                .real_servers
                .iter()
                .map(|r| {
                    let rs = RealServer { addr: Endpoint::new(r.addr.ip().octets(), r.addr.port()), weight: r.weight, index: rs_count };
                    rs_count += 1;
                    rs
                })
                .collect();
            Service {
                vip: Endpoint::new(s.vip.ip().octets(), s.vip.port()),
                proto: s.proto,
                sched: s.scheduler,
                laddrs: li,
                servers,
            }
        })
        .collect();
    Tables { interfaces, services, laddrs, lport_range: config.dataplane.lport_range, timeouts: config.timeouts, rs_count }
}


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
        assert!(s.starts_with("rvsd -l 0,1 --main-lcore 0 -m 256 --file-prefix rvs-lab"), "{s}");
        assert!(s.contains("--no-huge") && s.contains("--no-pci"));
        assert!(a.contains(&"--vdev=net_af_packet0,iface=lb0".to_string()));
    }

    #[test]
    fn tables_for_the_lab() {
        let t = tables(&lab(), &[[2, 0, 0, 0, 0, 1]]);
        assert_eq!(t.interfaces[0].mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(t.laddrs, vec![[10, 77, 0, 200]]);
        assert_eq!(t.rs_count, 2);
        assert_eq!(t.services[0].servers[1].addr, Endpoint::new([10, 77, 0, 12], 80));
        assert_eq!(t.services[0].servers[1].index, 1);
        assert_eq!(t.lport_range, (1025, 65535));
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
}
