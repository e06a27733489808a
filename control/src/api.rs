//! The control socket protocol between `rvsadm` and `rvsd`.
//!
//! A Unix stream socket (mode 0600: root only). The client writes one JSON
//! [`Request`] on a line; the daemon answers one JSON [`Response`] on a line
//! and closes. Plain data, no behaviour: both binaries share these types.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod ip;

/// Default socket path (the config's default).
pub const DEFAULT_SOCKET: &str = crate::config::DEFAULT_SOCKET;

/// What rvsadm asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Services, real servers and their connection counts (`-L -n`).
    ListServices,
    /// The same with persistence template counts (`--persistent-conn`).
    ListServicesWithTemplates,
    /// The connection table (`-L -n -c`).
    ListConnections,
    /// Data-plane counters.
    Stats,
    /// `-a`: add a real server to a service.
    AddServer(ServerSpec),
    /// `-e`: change a real server's weight.
    EditServer(ServerSpec),
    /// `-d`: remove a real server (its connections drain).
    DeleteServer(ServerSpec),
    /// `--set tcp tcpfin udp` (0 leaves a value unchanged).
    SetTimeouts {
        /// ESTABLISHED timeout, seconds.
        tcp: u32,
        /// FIN_WAIT timeout, seconds.
        tcpfin: u32,
        /// UDP timeout, seconds.
        udp: u32,
    },
    /// `-L --timeout`.
    GetTimeouts,
    /// `-A`: add a virtual service.
    AddService(ServiceSpec),
    /// `-E`: change a virtual service's scheduler.
    EditService(ServiceSpec),
    /// `-D`: delete a virtual service (its connections drain).
    DeleteService(ServiceSpec),
    /// `-C`: delete every virtual service.
    Clear,
    /// `-P -z ADDR`: add a FULLNAT local address to a service (DPVS's `--add-laddr`).
    AddLocalAddress {
        /// The service.
        service: ServiceSpec,
        /// The local address.
        addr: String,
    },
    /// `-Q -z ADDR`: remove a FULLNAT local address from a service.
    DeleteLocalAddress {
        /// The service.
        service: ServiceSpec,
        /// The local address.
        addr: String,
    },
    /// `-S`: the rules as `rvsadm` commands that `-R` restores.
    Save,
    /// `--reload`: re-read the config file and apply the difference.
    Reload,
    /// `rvsadm link|addr|route|neigh ...` (iproute-style; see [`ip`]).
    Ip(ip::IpRequest),
    /// `-Z [-t|-u SERVICE]`: zero the packet, byte and connection counters
    /// that `--stats`/`--rate` show, of one service or (`None`) of all. The
    /// data path and `/metrics` keep counting: listings subtract a baseline.
    Zero(Option<ServiceSpec>),
    /// `--export-config`: the running services and timeouts as config TOML.
    ExportConfig,
    /// `rvsadm vips`: the VIP routes offered to a BGP daemon.
    ListVips,
    /// `rvsadm drain [--stay]`: withdraw every VIP route; unless `stay`,
    /// stop after the grace period (as SIGTERM does).
    Drain {
        /// Keep running withdrawn until [`Request::Undrain`].
        stay: bool,
    },
    /// `rvsadm undrain`: announce the VIP routes again, cancel a pending stop.
    Undrain,
    /// `--start-daemon master|backup [--syncid ...]`: start a connection-sync daemon.
    StartDaemon(DaemonSpec),
    /// `--stop-daemon master|backup`.
    StopDaemon {
        /// `master` or `backup`.
        role: String,
    },
    /// `-L --daemon`: the running sync daemons, as ipvsadm prints them.
    ListDaemons,
    /// `rvsadm acl ...`, `rvsadm limit ...`: a service's ACL and limits.
    Access(AccessRequest),
}

/// `rvsadm acl|limit`: list or change a service's ACL rules and limits.
/// Changes apply to new connections only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessRequest {
    /// The rules and limits of one service, or of all (`None`), with their
    /// hit counts.
    List(Option<ServiceSpec>),
    /// Insert `rule` (`allow|deny PREFIX`) at 1-based position `at`, or
    /// append it.
    Add {
        /// The service.
        service: ServiceSpec,
        /// `allow PREFIX` or `deny PREFIX`.
        rule: String,
        /// 1-based position; `None`: last.
        at: Option<usize>,
    },
    /// Remove the rule written `rule`, or at 1-based position `rule`.
    Del {
        /// The service.
        service: ServiceSpec,
        /// `allow|deny PREFIX`, or a position.
        rule: String,
    },
    /// Remove every rule of the service.
    Flush(ServiceSpec),
    /// Set limits by name (`max_conns`, ...; see `config::access::Key`);
    /// those not named keep their value.
    SetLimits {
        /// The service.
        service: ServiceSpec,
        /// Name and value.
        values: Vec<(String, i64)>,
    },
}

/// A service's ACL and limits as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessView {
    /// `TCP  10.0.0.1:80`, as `-L -n` names it.
    pub service: String,
    /// Rules in order, with the connections each matched (all workers).
    pub rules: Vec<(String, u64)>,
    /// Limits by name, their value, and the connections (or ICMP answers,
    /// for `icmp_rate`) each refused; `None` for settings that refuse
    /// nothing themselves (prefix lengths, bursts).
    pub limits: Vec<(String, u32, Option<u64>)>,
}

/// For [`Request::ListVips`], [`Request::Drain`] and [`Request::Undrain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipsView {
    /// The kernel table the routes go to.
    pub table: u32,
    /// The interface they name.
    pub interface: String,
    /// Draining?
    pub draining: bool,
    /// Seconds until rvsd stops (rounded up), if a drain will stop it.
    pub stop_in_secs: Option<u64>,
    /// Each VIP and its state.
    pub vips: Vec<(std::net::IpAddr, crate::vip_routes::VipState)>,
    /// The local-address routes and their metrics.
    #[serde(default)]
    pub local_routes: Vec<(std::net::IpAddr, u32)>,
}

/// A sync daemon named on the command line (`--start-daemon`); `None`
/// keeps the config's `[sync]` value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSpec {
    /// `master` or `backup`.
    pub role: String,
    /// `--mcast-interface`.
    pub interface: Option<String>,
    /// `--syncid`.
    pub sync_id: Option<u8>,
    /// `--mcast-group`.
    pub group: Option<String>,
    /// `--mcast-port`.
    pub port: Option<u16>,
    /// `--mcast-ttl`.
    pub ttl: Option<u8>,
    /// `--sync-maxlen`.
    pub maxlen: Option<u16>,
}

/// A virtual service named on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// `tcp` or `udp`.
    pub proto: String,
    /// `IP:PORT`.
    pub vip: String,
    /// `-s` scheduler (`None`: wlc on add, unchanged on edit).
    pub scheduler: Option<String>,
    /// `-p [timeout]`.
    pub persistent: Option<u32>,
    /// `-M netmask`.
    pub netmask: Option<String>,
    /// `-b` scheduler flags.
    pub sched_flags: Option<String>,
    /// `-o` one-packet scheduling.
    pub ops: bool,
    /// `--client-address MODE` (rvs's own): `none`, `toa`, `proxy-v1`,
    /// `proxy-v2`; `None` keeps the service's (`none` for a new one).
    #[serde(default)]
    pub client_address: Option<String>,
    /// `-j|--synproxy enable|disable` (DPVS's): `None` keeps the
    /// service's (off for a new one).
    #[serde(default)]
    pub syn_proxy: Option<bool>,
}

/// A real server named on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// `tcp` or `udp`.
    pub proto: String,
    /// Service `IP:PORT`.
    pub vip: String,
    /// Real server `IP:PORT` (port defaults to the service's).
    pub rs: String,
    /// Weight (`None`: 1 on add, unchanged on edit).
    pub weight: Option<u32>,
    /// Forwarding method asked for (`fullnat`, `masq`, `route`, `tunnel`; `None`: the service's).
    pub forward: Option<String>,
    /// `-x` upper connection threshold (`None`: 0 on add, unchanged on edit).
    pub upper_threshold: Option<u32>,
    /// `-y` lower connection threshold.
    pub lower_threshold: Option<u32>,
}

/// A real server as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerView {
    /// `IP:PORT`.
    pub addr: String,
    /// ipvsadm's Forward column (`FullNat`, `Masq`, `Route`, `Tunnel`).
    pub forward: String,
    /// Weight.
    pub weight: u32,
    /// `-x` upper threshold (0: none).
    pub upper_threshold: u32,
    /// `-y` lower threshold (0: default).
    pub lower_threshold: u32,
    /// Live persistence templates pointing at it (all workers).
    pub persist_conns: u64,
    /// Counters (`--stats`): connections, packets in/out, bytes in/out.
    pub stats: [u64; 5],
    /// Rates (`--rate`): connections/s, packets/s in/out, bytes/s in/out.
    pub rates: [u64; 5],
    /// ESTABLISHED connections (all workers).
    pub active: u64,
    /// Other connections (all workers).
    pub inactive: u64,
}

/// A service as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// `TCP` or `UDP`.
    pub proto: String,
    /// `VIP:PORT`.
    pub vip: String,
    /// Scheduler name.
    pub scheduler: String,
    /// What ipvsadm prints after the scheduler (` persistent 300`, ...), may be empty.
    pub flags: String,
    /// FULLNAT local addresses.
    pub local_addresses: Vec<String>,
    /// Real servers.
    pub servers: Vec<RealServerView>,
}

/// A connection as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    /// `TCP` or `UDP`.
    pub proto: String,
    /// Seconds until expiry.
    pub expires_in_secs: u64,
    /// State name.
    pub state: String,
    /// Client `IP:PORT`.
    pub client: String,
    /// Virtual `IP:PORT`.
    pub vip: String,
    /// Real server `IP:PORT`.
    pub rs: String,
    /// FULLNAT local `IP:PORT`.
    pub laddr: String,
    /// Worker holding the session.
    pub worker: u32,
}

/// Counters of one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatsView {
    /// lcore id.
    pub lcore: u32,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Sessions in the table.
    pub sessions: u64,
    /// Sessions created.
    pub sessions_created: u64,
    /// Sessions removed.
    pub sessions_expired: u64,
    /// Packets handed to other workers.
    pub redirected_out: u64,
    /// Packets taken from other workers.
    pub redirected_in: u64,
    /// Generation of the tables in force.
    pub generation: u64,
    /// Poll-loop iterations.
    pub polls: u64,
    /// Iterations that received nothing.
    pub empty_polls: u64,
    /// Drops by reason name (non-zero only).
    pub drops: Vec<(String, u64)>,
    /// Flood guard on (`dataplane::guard`).
    #[serde(default)]
    pub guard_on: bool,
    /// Flood-guard counters by name.
    #[serde(default)]
    pub guard: Vec<(String, u64)>,
    /// Feature events by name (`dataplane::stats::EVENT_NAMES`).
    #[serde(default)]
    pub events: Vec<(String, u64)>,
    /// Fragment counters by name (`dataplane::frag::FragCounters`).
    #[serde(default)]
    pub frags: Vec<(String, u64)>,
    /// SYN-proxy counters by name (`dataplane::synproxy::Counters`).
    #[serde(default)]
    pub synproxy: Vec<(String, u64)>,
}

/// Counters of one DPDK port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatsView {
    /// Interface name.
    pub name: String,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Missed on receive.
    pub rx_missed: u64,
    /// Frames the kernel dropped before the PMD saw them (af_packet: full
    /// packet-socket ring; af_xdp: full XDP socket ring); `None` for a
    /// device that counts its own misses in `rx_missed`.
    pub rx_kernel_dropped: Option<u64>,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}

/// What rvsd answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// For [`Request::ListServices`]; `table_size` is the session capacity.
    Services {
        /// Session capacity, all workers.
        table_size: u64,
        /// Services.
        services: Vec<ServiceView>,
    },
    /// For [`Request::ListConnections`].
    Connections(Vec<ConnectionView>),
    /// For [`Request::Stats`].
    Stats {
        /// Per worker.
        workers: Vec<WorkerStatsView>,
        /// Per port.
        ports: Vec<PortStatsView>,
    },
    /// For [`Request::Save`]: one command per line.
    Rules(String),
    /// Done.
    Ok,
    /// For [`Request::GetTimeouts`].
    Timeouts {
        /// ESTABLISHED, seconds.
        tcp: u32,
        /// FIN_WAIT, seconds.
        tcpfin: u32,
        /// UDP, seconds.
        udp: u32,
    },
    /// For [`Request::ExportConfig`]: `[[service]]` tables and `[timeouts]`.
    ConfigToml(String),
    /// For [`Request::Ip`].
    Ip(ip::IpResponse),
    /// For [`Request::ListVips`], [`Request::Drain`], [`Request::Undrain`].
    Vips(VipsView),
    /// For [`Request::ListDaemons`]: one line per daemon.
    Daemons(Vec<String>),
    /// For [`Request::Access`]`(`[`AccessRequest::List`]`)`.
    Access(Vec<AccessView>),
    /// The request failed.
    Error(String),
}

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect (daemon not running, or not root).
    #[error("cannot connect to rvsd at {path}: {source}")]
    Connect {
        /// Socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The exchange broke off.
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    /// The answer was not understood.
    #[error("bad answer from rvsd: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Sends `req` to the daemon at `path` and returns its answer.
///
/// # Errors
/// [`ClientError`] if the daemon cannot be reached or answers nonsense.
pub fn call(path: &Path, req: &Request) -> Result<Response, ClientError> {
    let mut s = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.display().to_string(),
        source,
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    Ok(serde_json::from_str(&answer)?)
}
