//! The file's shape, as serde sees it. Values that need checking stay
//! `Spanned` so errors can point at them.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub dpdk: RawDpdk,
    #[serde(default)]
    pub dataplane: RawDataplane,
    #[serde(default)]
    pub control: RawControl,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub interface: Vec<RawInterface>,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub service: Vec<RawService>,
    /// `[[mark]]`: what gives packets the mark of a fwmark service.
    #[serde(default)]
    pub mark: Vec<super::marks::RawMark>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub vip_routes: Option<Spanned<RawVipRoutes>>,
    #[serde(default)]
    pub sync: super::sync::RawSync,
    #[serde(default)]
    pub flood_guard: super::flood_guard::RawFloodGuard,
}

/// `[vip_routes]`: host routes for the VIPs a BGP daemon exports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVipRoutes {
    pub table: Spanned<i64>,
    #[serde(default)]
    pub interface: Option<Spanned<String>>,
    #[serde(default)]
    pub drain_grace: Option<Spanned<i64>>,
    #[serde(default)]
    pub peer_local_addresses: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDpdk {
    #[serde(default)]
    pub main_lcore: u32,
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    #[serde(default)]
    pub no_huge: bool,
    #[serde(default)]
    pub no_pci: bool,
    #[serde(default = "default_prefix")]
    pub file_prefix: String,
    #[serde(default)]
    pub extra_args: Vec<String>,
    #[serde(default)]
    pub lcore_map: Option<Spanned<String>>,
}

fn default_memory() -> u32 {
    1024
}
fn default_prefix() -> String {
    "rvs".into()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataplane {
    #[serde(default)]
    pub worker_lcores: Option<Spanned<Vec<u32>>>,
    #[serde(default)]
    pub idle: Option<Spanned<String>>,
    #[serde(default)]
    pub session_capacity: Option<Spanned<u32>>,
    #[serde(default)]
    pub template_capacity: Option<Spanned<u32>>,
    #[serde(default)]
    pub mbufs: Option<Spanned<u32>>,
    #[serde(default)]
    pub local_port_range: Option<Spanned<String>>,
    #[serde(default)]
    pub isn_secret: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub address: Option<Spanned<String>>,
    pub print_interval: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub socket: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInterface {
    pub name: Spanned<String>,
    /// A DPDK port's device; absent for an 802.1Q sub-interface.
    #[serde(default)]
    pub device: Option<Spanned<String>>,
    /// An 802.1Q sub-interface's parent interface (with `vlan`).
    #[serde(default)]
    pub link: Option<Spanned<String>>,
    /// An 802.1Q sub-interface's VLAN id (with `link`).
    #[serde(default)]
    pub vlan: Option<Spanned<i64>>,
    pub address: Spanned<String>,
    pub gateway: Option<Spanned<String>>,
    #[serde(default)]
    pub address6: Option<Spanned<String>>,
    #[serde(default)]
    pub gateway6: Option<Spanned<String>>,
    pub mtu: Option<Spanned<i64>>,
}

/// `[[route]]`: a static route (`destination` is `PREFIX/LEN` or `default`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub destination: Spanned<String>,
    pub via: Option<Spanned<String>>,
    pub interface: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    #[serde(default)]
    pub vip: Option<Spanned<String>>,
    /// A firewall-mark service (ipvsadm's `-f`) instead of a VIP.
    #[serde(default)]
    pub fwmark: Option<Spanned<i64>>,
    /// With `fwmark`: the mark's IPv6 service (ipvsadm's `-6`).
    #[serde(default)]
    pub ipv6: Option<Spanned<bool>>,
    #[serde(default)]
    pub protocol: Option<Spanned<String>>,
    #[serde(default)]
    pub scheduler: Option<Spanned<String>>,
    #[serde(default)]
    pub forward: Option<Spanned<String>>,
    #[serde(default)]
    pub local_addresses: Vec<Spanned<String>>,
    #[serde(default)]
    pub sched_flags: Vec<Spanned<String>>,
    /// Seconds, or `true` for ipvsadm's default (300), `false` for none.
    #[serde(default)]
    pub persistent: Option<Spanned<toml::Value>>,
    /// A dotted netmask (IPv4 services) or a prefix length (IPv6, as
    /// ipvsadm's `-M 64`).
    #[serde(default)]
    pub persistent_netmask: Option<Spanned<toml::Value>>,
    /// One-packet scheduling (ipvsadm `-o`), UDP only.
    #[serde(default)]
    pub ops: Option<Spanned<bool>>,
    #[serde(default)]
    pub mh_table_size: Option<Spanned<i64>>,
    /// `none`, `toa`, `proxy-v1` or `proxy-v2` (FULLNAT TCP services).
    #[serde(default)]
    pub client_address: Option<Spanned<String>>,
    /// SYN proxy (DPVS's `--synproxy`), TCP FULLNAT and NAT services.
    #[serde(default)]
    pub syn_proxy: Option<Spanned<bool>>,
    #[serde(default)]
    pub health_check: Option<Spanned<RawHealthCheck>>,
    /// `"allow PREFIX"` / `"deny PREFIX"`, in order (see `access.rs`).
    #[serde(default)]
    pub acl: Vec<Spanned<String>>,
    #[serde(default)]
    pub max_conns: Option<Spanned<i64>>,
    #[serde(default)]
    pub max_conns_per_client: Option<Spanned<i64>>,
    #[serde(default)]
    pub client_prefix_v4: Option<Spanned<i64>>,
    #[serde(default)]
    pub client_prefix_v6: Option<Spanned<i64>>,
    #[serde(default)]
    pub new_conn_rate: Option<Spanned<i64>>,
    #[serde(default)]
    pub new_conn_burst: Option<Spanned<i64>>,
    #[serde(default)]
    pub icmp_rate: Option<Spanned<i64>>,
    #[serde(default)]
    pub icmp_burst: Option<Spanned<i64>>,
    #[serde(default)]
    pub real_server: Vec<RawRealServer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRealServer {
    pub address: Spanned<String>,
    #[serde(default)]
    pub weight: Option<Spanned<i64>>,
    #[serde(default)]
    pub forward: Option<Spanned<String>>,
    #[serde(default)]
    pub upper_threshold: Option<Spanned<i64>>,
    #[serde(default)]
    pub lower_threshold: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub tcp_established: Option<Spanned<i64>>,
    pub tcp_syn_sent: Option<Spanned<i64>>,
    pub tcp_syn_recv: Option<Spanned<i64>>,
    pub tcp_fin_wait: Option<Spanned<i64>>,
    pub tcp_time_wait: Option<Spanned<i64>>,
    pub tcp_close: Option<Spanned<i64>>,
    pub tcp_close_wait: Option<Spanned<i64>>,
    pub tcp_last_ack: Option<Spanned<i64>>,
    pub tcp_listen: Option<Spanned<i64>>,
    pub tcp_synack: Option<Spanned<i64>>,
    pub udp: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealthCheck {
    pub kind: Spanned<String>,
    pub interval: Option<Spanned<toml::Value>>,
    pub timeout: Option<Spanned<toml::Value>>,
    pub delay: Option<Spanned<toml::Value>>,
    pub rise: Option<Spanned<i64>>,
    pub fall: Option<Spanned<i64>>,
    pub path: Option<String>,
    pub status: Option<Spanned<i64>>,
    pub script: Option<Spanned<String>>,
    pub on_fail: Option<Spanned<String>>,
    pub sorry_server: Option<Spanned<String>>,
    pub payload: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
    pub connections: Option<Spanned<String>>,
}
