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

pub mod access;
pub mod claims;
pub mod export;
pub mod flood_guard;
mod health;
pub mod marks;
pub mod net;
pub mod ranges;
mod raw;
pub mod sync;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use dataplane::sched::{is_prime, SchedFlags, SchedKind, MH_TABLE_SIZE_MAX};
use dataplane::session::{ClientAddress, Timeouts};
pub use dataplane::tables::{Persistence, Thresholds};

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
    /// Persistence templates per worker.
    pub template_capacity: u32,
    /// Mbufs in the packet pool.
    pub mbufs: u32,
    /// Local ports used on each local address (inclusive).
    pub lport_range: (u16, u16),
    /// The key of FULLNAT's server-side ISNs (`isn_secret`): the same on
    /// both appliances of a pair; `None`, a random key per start.
    pub isn_secret: Option<[u8; 16]>,
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
    /// The interface's IPv6 address and prefix length (`address6`), if any.
    pub addr6: Option<(Ipv6Addr, u8)>,
    /// IPv6 default gateway through this interface (`gateway6`).
    pub gateway6: Option<Ipv6Addr>,
    /// Largest IP packet the link carries (default 1500; a sub-interface's
    /// default is its parent's).
    pub mtu: u16,
    /// For an 802.1Q sub-interface (`link`, `vlan`): its parent and VLAN
    /// id. Such an interface has no `device`, and comes after every DPDK
    /// port in [`Config::interfaces`].
    pub vlan: Option<VlanConfig>,
}

/// The 802.1Q side of a sub-interface (`ip link add link dpdk0 name
/// dpdk0.100 type vlan id 100`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanConfig {
    /// The parent interface's name (a DPDK port).
    pub link: String,
    /// The VLAN id, 1..=4094.
    pub id: u16,
}

/// Frames in each af_packet queue's receive ring unless the device sets
/// `framecnt=`. DPDK's default (512) overflows when a worker loses its CPU
/// for tens of milliseconds (two workers on one core, a busy lab host), and
/// the kernel drops what does not fit without DPDK seeing a counter; 4096
/// frames of 2 KiB (8 MiB per ring) ride that out.
pub const AF_PACKET_FRAMES: u32 = 4096;

impl InterfaceConfig {
    /// True for a DPDK port, false for an 802.1Q sub-interface.
    #[must_use]
    pub fn is_port(&self) -> bool {
        self.vlan.is_none()
    }

    /// The ethdev name DPDK gives the device (`net_af_packet0`, or the PCI address).
    #[must_use]
    pub fn dpdk_name(&self) -> &str {
        self.device.split(',').next().unwrap_or(&self.device)
    }

    /// The device string as EAL gets it: an af_packet device without
    /// `qpairs=` gets one queue pair per worker, and without `framecnt=` a
    /// ring of [`AF_PACKET_FRAMES`] frames per queue; an af_xdp device
    /// without `queue_count=` one XDP socket per worker (queues 0..N of the
    /// interface, which needs as many channels: `ethtool -L IF combined N`).
    #[must_use]
    pub fn eal_device(&self, workers: usize) -> String {
        let mut device = self.device.clone();
        if self.device.starts_with("net_af_packet") {
            if self.devarg("qpairs").is_none() && workers > 1 {
                device.push_str(&format!(",qpairs={workers}"));
            }
            if self.devarg("framecnt").is_none() {
                device.push_str(&format!(",framecnt={AF_PACKET_FRAMES}"));
            }
        } else if self.device.starts_with("net_af_xdp")
            && self.devarg("queue_count").is_none()
            && workers > 1
        {
            device.push_str(&format!(",queue_count={workers}"));
        }
        device
    }

    /// The value of device argument `key`.
    #[must_use]
    pub fn devarg(&self, key: &str) -> Option<&str> {
        self.device
            .split(',')
            .skip(1)
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
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

/// Forwarding method of a real server (ipvsadm `-g`/`-m`, FULLNAT); a
/// service's `forward` is its servers' default.
pub use dataplane::tables::Forward;

/// The config word for a forwarding method (`fullnat`, `nat`, `dr`).
#[must_use]
pub fn forward_name(f: Forward) -> &'static str {
    match f {
        Forward::FullNat => "fullnat",
        Forward::Nat => "nat",
        Forward::Dr => "dr",
        Forward::Tun => "tun",
    }
}

/// The forwarding method a config word or ipvsadm word names: `fullnat`,
/// `nat` / `masq` (`-m`), `dr` / `route` / `gatewaying` (`-g`), `tun` /
/// `tunnel` / `ipip` (`-i`).
///
/// # Errors
/// Unknown words.
pub fn parse_forward(word: &str) -> Result<Forward, String> {
    match word {
        "fullnat" => Ok(Forward::FullNat),
        "nat" | "masq" | "masquerading" => Ok(Forward::Nat),
        "dr" | "route" | "gatewaying" => Ok(Forward::Dr),
        "tun" | "tunnel" | "ipip" => Ok(Forward::Tun),
        other => Err(format!(
            "forward must be one of fullnat, nat, dr, tun; not {other:?}"
        )),
    }
}

/// Checks a real server's forwarding method against its service: DR keeps
/// the packet's destination, so the server must listen on the VIP's port
/// (ipvsadm refuses port mapping with `-g`; so does rvs, instead of
/// silently changing the port).
///
/// # Errors
/// Why the combination is refused.
pub fn check_forward(forward: Forward, vip: SocketAddr, rs: SocketAddr) -> Result<(), String> {
    // A fwmark service has no port (its key's is 0): DR and TUN keep
    // each packet's, whatever the server's says (as the kernel's).
    if vip.port() == 0 {
        return Ok(());
    }
    if matches!(forward, Forward::Dr | Forward::Tun) && rs.port() != vip.port() {
        return Err(format!(
            "real server {rs}: forward \"{}\" cannot map port {} to {}: {} leaves the packet unchanged, so the server must listen on the VIP's port (use {}:{} or forward \"nat\"/\"fullnat\")",
            forward_name(forward),
            vip.port(),
            rs.port(),
            if forward == Forward::Dr { "direct routing" } else { "tunnelling" },
            rs.ip(),
            vip.port()
        ));
    }
    Ok(())
}

/// The address family's name (`IPv4`, `IPv6`).
#[must_use]
pub fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Checks real server `rs`, forwarded by `forward`, against service `vip`
/// and the service's other servers (`other`: any one of them). A service's
/// servers share one family: the VIP's, or IPv4 behind an IPv6 VIP
/// (FULLNAT64, which only FULLNAT can do: the other modes leave the
/// client's packet as it is). IPv4 clients to IPv6 servers are refused.
///
/// # Errors
/// The mix, in words.
pub fn check_server_family(
    vip: SocketAddr,
    rs: SocketAddr,
    forward: Forward,
    other: Option<SocketAddr>,
) -> Result<(), String> {
    match (vip.is_ipv4(), rs.is_ipv4()) {
        (true, false) => {
            return Err(format!("service {vip} is IPv4 but real server {rs} is IPv6: IPv4 clients to IPv6 servers are not supported (FULLNAT64 goes the other way)"))
        }
        (false, true) if forward != Forward::FullNat => {
            return Err(format!(
                "real server {rs} is IPv4 behind IPv6 service {vip}: FULLNAT64 translates between the families in FULLNAT only; forward \"{}\" leaves the client's IPv6 packet as it is",
                forward_name(forward)
            ))
        }
        _ => {}
    }
    match other.filter(|o| o.is_ipv4() != rs.is_ipv4()) {
        Some(o) => Err(format!(
            "real server {rs} is {} but real server {o} of the same service is {}: a service's real servers share one address family",
            family(rs.ip()),
            family(o.ip())
        )),
        None => Ok(()),
    }
}

/// Checks FULLNAT local address `a` of service `vip` whose real servers
/// are IPv4 (`servers_v4`; `None`: no server yet, the VIP's family): local
/// addresses are the source toward the servers, so they are of the
/// servers' family (IPv4 local addresses for FULLNAT64).
///
/// # Errors
/// The mix, in words.
pub fn check_laddr_family(
    vip: SocketAddr,
    servers_v4: Option<bool>,
    a: IpAddr,
) -> Result<(), String> {
    let want_v4 = servers_v4.unwrap_or(vip.is_ipv4());
    if a.is_ipv4() == want_v4 {
        return Ok(());
    }
    let toward = if servers_v4.is_some() {
        "its real servers"
    } else {
        "its VIP"
    };
    Err(format!(
        "local address {a} is {} but service {vip} reaches {toward} over {}: local addresses are the source toward the real servers, of their family",
        family(a),
        if want_v4 { "IPv4" } else { "IPv6" }
    ))
}

/// The `client_address` mode named `word`, for a service of `proto`
/// forwarding by `forward`: anything but `none` needs a FULLNAT service,
/// and a UDP service takes `proxy-v2` only.
///
/// # Errors
/// The reason, for an unknown word or another kind of service.
pub fn check_client_address(
    word: &str,
    proto: u8,
    forward: Forward,
) -> Result<ClientAddress, String> {
    let mode = ClientAddress::from_word(word).ok_or_else(|| {
        format!(
            "client_address must be \"none\", \"toa\", \"proxy-v1\" or \"proxy-v2\", not {word:?}"
        )
    })?;
    if !matches!(mode, ClientAddress::None | ClientAddress::ProxyV2) && proto != 6 {
        return Err(format!(
            "client_address {word:?} is for TCP services (UDP services take \"proxy-v2\" only)"
        ));
    }
    if mode != ClientAddress::None && forward != Forward::FullNat {
        return Err(format!(
            "client_address {word:?} is for FULLNAT services (with NAT, DR and TUN the servers see the client)"
        ));
    }
    Ok(mode)
}

/// Checks `syn_proxy` (DPVS's `--synproxy`) on a service of `proto`
/// whose servers forward by `forwards`: the proxy answers TCP handshakes
/// and must see the servers' replies (FULLNAT, NAT). It combines with
/// every `client_address` mode (the proxy shifts the server's stream, a
/// PROXY header the client's; see docs/synproxy.md).
///
/// # Errors
/// The reason, in words.
pub fn check_syn_proxy(
    proto: u8,
    mut forwards: impl Iterator<Item = Forward>,
) -> Result<(), String> {
    if proto != 6 {
        return Err("syn_proxy is for TCP services".into());
    }
    if let Some(f) = forwards.find(|f| !matches!(f, Forward::FullNat | Forward::Nat)) {
        return Err(format!(
            "syn_proxy needs FULLNAT or NAT forwarding (the proxy must see the server's replies), not {:?}",
            forward_name(f)
        ));
    }
    Ok(())
}

/// Checks one-packet scheduling against the service's protocol: ipvsadm
/// takes `-o` for UDP services only.
///
/// # Errors
/// `-o` on a TCP service.
pub fn check_ops(ops: bool, proto: u8) -> Result<(), String> {
    // A fwmark service may be one-packet (for its UDP flows), as ipvsadm
    // allows it.
    if ops && proto != 17 && !marks::is_fwmark(proto) {
        return Err("One-Packet Scheduling (ops) is only for UDP virtual services".into());
    }
    Ok(())
}

/// A real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealServerConfig {
    /// Address and port.
    pub addr: SocketAddr,
    /// Weight.
    pub weight: u32,
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// VIP and port.
    pub vip: SocketAddr,
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    /// Scheduler.
    pub scheduler: SchedKind,
    /// Default forwarding method of its real servers (each may have its
    /// own, in [`ServiceOptions::forwards`]).
    pub forward: Forward,
    /// FULLNAT local addresses.
    pub local_addresses: Vec<IpAddr>,
    /// Real servers.
    pub real_servers: Vec<RealServerConfig>,
}

/// A service's scheduling options beyond its scheduler name: ipvsadm's `-b`
/// (scheduler flags), `-p`/`-M` (persistence), the Maglev table size, and
/// its real servers' `-x`/`-y` connection thresholds.
///
/// Kept beside [`ServiceConfig`] in [`Config::service_options`], keyed by
/// the service's (VIP, protocol), so code that builds a `ServiceConfig` or
/// `RealServerConfig` literally needs no change; a service without an entry
/// has the defaults (no flags, no persistence, 251-entry Maglev table, no
/// thresholds). Whoever adds, edits or deletes services and servers at run
/// time keeps the entry in step (see [`Config::service_options_mut`] and
/// [`Config::remove_service_options`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceOptions {
    /// Scheduler flags (`-b`); only those of the service's scheduler.
    pub sched_flags: SchedFlags,
    /// Persistence (`-p [timeout]`, `-M netmask`).
    pub persistence: Option<Persistence>,
    /// Maglev lookup table size for `mh` (a prime); `None`: 251.
    pub mh_table_size: Option<u32>,
    /// Connection thresholds of real servers, by address; absent: none.
    pub thresholds: BTreeMap<SocketAddr, Thresholds>,
    /// Forwarding methods of real servers that differ from the service's
    /// `forward` (ipvsadm's per-server `-g`/`-m`), by address.
    pub forwards: BTreeMap<SocketAddr, Forward>,
    /// One-packet scheduling (`-o`), UDP services only.
    pub ops: bool,
    /// How FULLNAT servers learn the client's address (`client_address`).
    pub client_address: ClientAddress,
    /// ACL rules in order, the first match deciding (`acl`, `rvsadm acl`).
    pub acl: Vec<access::AclRule>,
    /// Connection limits and the ICMP answers' rate (`max_conns`, ...,
    /// `rvsadm limit`); counter indices unset.
    pub limits: dataplane::limits::Limits,
    /// SYN proxy (`syn_proxy`, DPVS's `--synproxy`): TCP FULLNAT and NAT.
    pub syn_proxy: bool,
}

impl ServiceOptions {
    /// The forwarding method of real server `rs` of a service whose
    /// default is `default`.
    #[must_use]
    pub fn forward_of(&self, rs: SocketAddr, default: Forward) -> Forward {
        self.forwards.get(&rs).copied().unwrap_or(default)
    }

    /// Checks the options against the service's scheduler and number of
    /// real servers (what validation checks for a file; for run-time edits).
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self, scheduler: SchedKind, servers: usize) -> Result<(), String> {
        self.check_for(scheduler, servers, true)
    }

    /// As [`ServiceOptions::check`], for a service of the given family
    /// (`v4` false: an IPv6 service, whose persistence cannot mask).
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check_for(&self, scheduler: SchedKind, servers: usize, v4: bool) -> Result<(), String> {
        for name in self.sched_flags.names(scheduler) {
            SchedFlags::parse(scheduler, name).map_err(|e| e.to_string())?;
        }
        if let Some(m) = self.mh_table_size {
            check_mh_table_size(m, servers)?;
            if scheduler != SchedKind::MaglevHashing {
                return Err(format!(
                    "mh_table_size only applies to the mh scheduler, not {}",
                    scheduler.name()
                ));
            }
        }
        if let Some(p) = self.persistence {
            if p.timeout_secs == 0 {
                return Err("persistence timeout must be at least 1 second".into());
            }
            check_netmask(p.netmask)?;
            if !v4 && p.netmask != Persistence::DEFAULT_NETMASK {
                return Err(
                    "an IPv6 service's persistence netmask is a prefix length (ipvsadm -M 64)"
                        .into(),
                );
            }
            if !(1..=128).contains(&p.prefix6) {
                return Err(format!(
                    "persistence prefix length {} is not 1..=128",
                    p.prefix6
                ));
            }
        }
        for (addr, t) in &self.thresholds {
            check_thresholds(*t).map_err(|e| format!("real server {addr}: {e}"))?;
        }
        Ok(())
    }
}

/// A Maglev table size must be a prime, larger than the number of servers
/// (the kernel refuses more servers than entries).
///
/// # Errors
/// Why `size` is refused.
pub fn check_mh_table_size(size: u32, servers: usize) -> Result<(), String> {
    if !is_prime(size) || size > MH_TABLE_SIZE_MAX {
        return Err(format!("mh_table_size must be a prime up to {MH_TABLE_SIZE_MAX} (251, 4093, 65521, 65537, ...), not {size}"));
    }
    if servers >= size as usize {
        return Err(format!(
            "mh_table_size {size} must exceed the number of real servers ({servers})"
        ));
    }
    Ok(())
}

/// An IPv6 persistence prefix length as ipvsadm takes it (`-M 64`, or
/// `/64`): IPv6 clients persist by that many leading bits.
///
/// # Errors
/// Not a number 1..=128.
pub fn check_netmask6(text: &str) -> Result<u8, String> {
    match text.trim_start_matches('/').parse::<u8>() {
        Ok(n @ 1..=128) => Ok(n),
        _ => Err(format!("an IPv6 service's persistence netmask is a prefix length 1..=128 (ipvsadm -M 64), not {text:?}")),
    }
}

/// A persistence netmask must have contiguous one bits (255.255.255.0).
///
/// # Errors
/// Why `mask` is refused.
pub fn check_netmask(mask: [u8; 4]) -> Result<(), String> {
    let m = u32::from_be_bytes(mask);
    if m.leading_ones() + m.trailing_zeros() != 32 {
        return Err(format!(
            "netmask {} is not contiguous",
            Ipv4Addr::from(mask)
        ));
    }
    Ok(())
}

/// The lower threshold may not exceed the upper (the kernel's `-ERANGE`).
///
/// # Errors
/// Why `t` is refused.
pub fn check_thresholds(t: Thresholds) -> Result<(), String> {
    if t.lower > t.upper {
        return Err(format!(
            "lower_threshold {} is higher than upper_threshold {}",
            t.lower, t.upper
        ));
    }
    Ok(())
}

/// Control socket path when `[control] socket` is not set.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

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
    /// Static routes (`[[route]]`, `rvsadm route add`); see [`crate::iproute`].
    pub routes: Vec<net::RouteConfig>,
    /// Interface addresses added at run time (`rvsadm addr add`); never in the file.
    pub addresses: Vec<net::AddressConfig>,
    /// Services.
    pub services: Vec<ServiceConfig>,
    /// Session timeouts.
    pub timeouts: Timeouts,
    /// The data plane's flood guard (`[flood_guard]`, init-only).
    pub flood_guard: dataplane::guard::GuardConfig,
    /// Scheduling options of services, by (VIP, protocol); see
    /// [`ServiceOptions`].
    pub service_options: BTreeMap<(SocketAddr, u8), ServiceOptions>,
    /// Health checks by service (VIP, protocol).
    pub health: BTreeMap<(SocketAddr, u8), crate::health::HealthCheck>,
    /// `[vip_routes]`: VIP host routes for a BGP daemon, if configured.
    pub vip_routes: Option<crate::vip_routes::VipRoutesConfig>,
    /// Connection sync and failover (`[sync]`).
    pub sync: sync::SyncConfig,
    /// `[[mark]]`: the firewall-mark rules (see [`marks`]).
    pub marks: Vec<marks::MarkConfig>,
}

impl Config {
    /// The options of service (`vip`, `proto`), if any differ from the defaults.
    #[must_use]
    pub fn service_options(&self, vip: SocketAddr, proto: u8) -> Option<&ServiceOptions> {
        self.service_options.get(&(vip, proto))
    }

    /// The forwarding method of real server `rs` of `service`: its own, else
    /// the service's.
    #[must_use]
    pub fn server_forward(&self, service: &ServiceConfig, rs: SocketAddr) -> Forward {
        self.service_options(service.vip, service.proto)
            .map_or(service.forward, |o| o.forward_of(rs, service.forward))
    }

    /// The options of service (`vip`, `proto`), created with the defaults if
    /// missing (for `-A`/`-E -b/-p/-M` and `-a`/`-e -x/-y`).
    pub fn service_options_mut(&mut self, vip: SocketAddr, proto: u8) -> &mut ServiceOptions {
        self.service_options.entry((vip, proto)).or_default()
    }

    /// Forgets the options of a deleted service (`-D`, `-C`).
    pub fn remove_service_options(&mut self, vip: SocketAddr, proto: u8) -> Option<ServiceOptions> {
        self.service_options.remove(&(vip, proto))
    }
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
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
