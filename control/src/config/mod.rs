//! The TOML configuration: schema, validation, and errors that point at the
//! offending line.
//!
//! Parsing is two steps. [`raw`] deserialises the file into structs that keep
//! every value's byte span (`toml::Spanned`), refusing unknown keys. Then
//! [`validate`] turns that into a [`Config`] of typed values (addresses,
//! schedulers, timeouts), checking what types cannot say: addresses parse,
//! lcores do not collide, each service has real servers and local addresses.
//! Every refusal is a [`ConfigError`] printed as `FILE:LINE:COL: reason`;
//! nothing else ever sees an unvalidated value.

mod raw;
mod validate;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use dataplane::sched::SchedKind;
use dataplane::session::Timeouts;

use validate::validate;

/// A config that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file as named by the user.
    pub path: PathBuf,
    /// 1-based line and column, when the problem has a place.
    pub at: Option<(usize, usize)>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

/// What rvsd does when a worker finds its queues empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Poll flat out (lowest latency; owns the core).
    Busy,
    /// Sleep briefly after a run of empty polls (labs, CI, shared machines).
    Backoff,
}

/// EAL settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    /// The main (control) lcore.
    pub main_lcore: u32,
    /// Memory in MiB (`-m`).
    pub memory_mb: u32,
    /// Run without hugepages (`--no-huge`).
    pub no_huge: bool,
    /// Do not scan the PCI bus (`--no-pci`).
    pub no_pci: bool,
    /// `--file-prefix`, so several DPDK processes can coexist.
    pub file_prefix: String,
    /// Extra EAL arguments, passed last and unchanged.
    pub extra_args: Vec<String>,
    /// EAL `--lcores` map (lcore to CPU), replacing `-l` when set: lets a
    /// lab run more lcores than the machine has cores.
    pub lcore_map: Option<String>,
}

/// Data-plane settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// One worker per lcore listed.
    pub worker_lcores: Vec<u32>,
    /// Idle behaviour.
    pub idle: IdlePolicy,
    /// Sessions per worker.
    pub session_capacity: u32,
    /// Mbufs in the packet pool.
    pub mbufs: u32,
    /// Local ports used on each local address (inclusive).
    pub lport_range: (u16, u16),
}

/// A DPDK-driven interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Name operators use (`dpdk0`).
    pub name: String,
    /// The DPDK device: a PCI address or a virtual device string.
    pub device: String,
    /// The interface's own address.
    pub addr: Ipv4Addr,
    /// Prefix length of its subnet.
    pub prefix_len: u8,
    /// Default gateway through this interface.
    pub gateway: Option<Ipv4Addr>,
}

impl InterfaceConfig {
    /// The ethdev name DPDK gives the device (`net_af_packet0`, or the PCI address).
    #[must_use]
    pub fn dpdk_name(&self) -> &str {
        self.device.split(',').next().unwrap_or(&self.device)
    }

    /// The device string as EAL gets it: an af_packet device without
    /// `qpairs=` gets one queue pair per worker.
    #[must_use]
    pub fn eal_device(&self, workers: usize) -> String {
        if self.device.starts_with("net_af_packet") && self.devarg("qpairs").is_none() && workers > 1 {
            format!("{},qpairs={workers}", self.device)
        } else {
            self.device.clone()
        }
    }

    /// The value of device argument `key`.
    #[must_use]
    pub fn devarg(&self, key: &str) -> Option<&str> {
        self.device.split(',').skip(1).find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    /// True for a virtual device (`--vdev`), false for a PCI device (`-a`).
    #[must_use]
    pub fn is_vdev(&self) -> bool {
        self.device.starts_with("net_")
    }

    /// The kernel interface a virtual device attaches to (`iface=`), if any.
    #[must_use]
    pub fn kernel_iface(&self) -> Option<&str> {
        self.devarg("iface")
    }
}

/// Forwarding method of a service's real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Both addresses rewritten.
    FullNat,
}

impl Forward {
    /// The word ipvsadm prints in its Forward column.
    #[must_use]
    pub fn column(self) -> &'static str {
        match self {
            Self::FullNat => "FullNat",
        }
    }
}

/// A real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealServerConfig {
    /// Address and port.
    pub addr: SocketAddrV4,
    /// Weight.
    pub weight: u32,
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// VIP and port.
    pub vip: SocketAddrV4,
    /// IP protocol number (6).
    pub proto: u8,
    /// Scheduler.
    pub scheduler: SchedKind,
    /// Forwarding method.
    pub forward: Forward,
    /// FULLNAT local addresses.
    pub local_addresses: Vec<Ipv4Addr>,
    /// Real servers.
    pub real_servers: Vec<RealServerConfig>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// EAL.
    pub dpdk: DpdkConfig,
    /// Data plane.
    pub dataplane: DataplaneConfig,
    /// Where `/metrics` is served (Prometheus text), if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// Print testpmd-style rates to stderr this often (seconds), if set.
    pub print_interval: Option<u32>,
    /// Control socket path.
    pub socket: PathBuf,
    /// Interfaces, in port order.
    pub interfaces: Vec<InterfaceConfig>,
    /// Services.
    pub services: Vec<ServiceConfig>,
    /// Session timeouts.
    pub timeouts: Timeouts,
}

/// Reads and validates `path`.
///
/// # Errors
/// A [`ConfigError`] naming the file, and the line and column where there is one.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        at: None,
        reason: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Validates `text` as if read from `path`.
///
/// # Errors
/// As [`load`].
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        at: e.span().map(|s| line_col(text, s.start)),
        reason: e.message().trim().to_string(),
    })?;
    validate(path, text, raw)
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
