//! `rvsd`: bring up EAL, ports and workers from a validated config, then run
//! the control loop until SIGTERM/SIGINT.
//!
//! Start-up order matters for operators and tests: every check that can fail
//! (config, kernel interfaces, EAL, ports) runs before the control socket
//! exists, so "the socket answers" means "the data plane is forwarding".
//! The main lcore runs the control loop ([`Control`]); each worker lcore runs
//! a [`dataplane::worker::Worker`] until told to stop, started from a plan
//! of queues and pipelines by [`dataplane::runtime::start`]. Clients (the
//! control socket, `/metrics`) are served on a thread of their own
//! ([`serve`]), which hands the loop whole requests: no client can make the
//! loop wait.
//!
//! Control owns the live configuration. A change (`rvsadm -a/-e/-d/--set`)
//! builds a new immutable [`dataplane::tables::Tables`] snapshot and sends it to every worker;
//! each switches between bursts and sends the old one back, and the last
//! returned reference frees it here. Neighbour events from workers feed the
//! [`NeighTable`]; a changed table is published the same way.
//!
//! This file holds start-up ([`run`]) and the loop ([`Control::tick`],
//! answering requests); the rest of [`Control`] is in files named for what
//! they do: `rules` (services, servers, local addresses, reload),
//! `listings` (`-L`, `--stats`, `/metrics`), `rates` (`--rate`, `-Z`),
//! `health_sync` (checkers and what their results do to the tables),
//! `ip_views` (`rvsadm link|addr|route|neigh`), `addresses` (own
//! addresses other hosts claim), `kernel` (the exception path's kernel
//! side) and `vip_routes` (routes a BGP daemon exports, drains).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use dataplane::addr::Addr;
use dataplane::dpdk::{
    Eal, EalError, LaunchError, LcoreId, Mempool, MempoolError, Port, PortConfig, PortError,
    QueueId, RingError,
};
use dataplane::neigh::NeighEvent;
use dataplane::pipeline::Pipeline;
use dataplane::runtime::{self, WorkerHandle};
use dataplane::session::{ClientAddress, Endpoint, TcpState};
use dataplane::stats::DropReason;
use dataplane::wire::MacAddr;
use dataplane::worker::{Event, Idle, Request as WorkerRequest, Retired};

use crate::acd::Acd;
use crate::announce::Announcer;
use crate::api::{
    ConnectionView, PortStatsView, RealServerView, Request, Response, ServerSpec, ServiceSpec,
    ServiceView, WorkerStatsView,
};
use crate::config::claims::{service_name, Claims, Use};
use crate::config::{self, Config, Forward, IdlePolicy, RealServerConfig, ServiceConfig};
use crate::dad::{Claim, Dad};
use crate::health::{self, Checker, Connections, DrRoutes, OnFail, Target};
use crate::ipvsadm_fmt;
use crate::metrics;
use crate::neigh::NeighTable;
use crate::plan::{self, Registry};
use crate::runfiles;
use crate::serve::{self, Job};
use dataplane::sched::{SchedFlags, SchedKind};
use dataplane::tables::{Persistence, Thresholds};
use kernel::{configure_kernel_side, kernel_ip, kernel_route};
use rates::{ConnTotals, RateEstimate};
use rules::Change;

mod access;
mod addresses;
mod health_sync;
mod ip_views;
mod kernel;
mod kernel_drops;
mod listings;
mod rates;
mod rules;
mod sync_ctl;
mod vip_routes;

/// Most real servers rvsd numbers while it runs (per-worker counter arrays
/// are sized for this many).
pub const MAX_REAL_SERVERS: usize = 4096;
/// Slots in each worker-to-worker redirect ring.
pub const REDIRECT_RING_SIZE: u32 = 4096;

/// Why rvsd could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configured device names a missing kernel interface.
    #[error(transparent)]
    MissingIface(#[from] plan::MissingIface),
    /// EAL refused its arguments or failed to probe a device.
    #[error("DPDK EAL initialisation failed ({args}): {source}")]
    Eal {
        /// The EAL arguments used.
        args: String,
        /// DPDK's reason.
        source: EalError,
    },
    /// The packet pool could not be created.
    #[error("cannot create the mbuf pool ({1} mbufs): {0}")]
    Mempool(MempoolError, u32),
    /// A redirect ring could not be created.
    #[error("cannot create a redirect ring: {0}")]
    Ring(RingError),
    /// A configured device did not appear as a DPDK port.
    #[error("interface {name}: device {device:?} is not a DPDK port after EAL start-up: {source}")]
    NoSuchPort {
        /// Config name.
        name: String,
        /// Device string.
        device: String,
        /// Lookup error.
        source: PortError,
    },
    /// Port configuration or start failed.
    #[error("interface {name}: {source}")]
    Port {
        /// Config name.
        name: String,
        /// Cause.
        source: PortError,
    },
    /// A worker could not be launched.
    #[error("cannot launch worker on lcore {0}: {1}")]
    Launch(u32, LaunchError),
    /// The control socket could not be created.
    #[error("control socket {path}: {source}")]
    Socket {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// DPDK's runtime directory for the file prefix is in use.
    #[error("{0}")]
    EalRuntime(String),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Says ahead of DPDK's TAP driver why it will log "failed to create
/// multiq qdisc" for every exception-path TAP on a kernel without the
/// `multiq` qdisc, and that rvs does not need it (see
/// [`plan::kernel_lacks_multiq`]).
fn explain_tap_multiq() {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let config = std::fs::read_to_string(format!("/boot/config-{release}"))
        .ok()
        .or_else(|| {
            let out = std::process::Command::new("gzip")
                .args(["-dc", "/proc/config.gz"])
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        });
    let modules = Path::new("/lib/modules").join(release);
    if plan::kernel_lacks_multiq(Path::new("/sys/module"), config.as_deref(), &modules)
        == Some(true)
    {
        eprintln!(
            "rvsd: note: this kernel has no multiq qdisc (CONFIG_NET_SCH_MULTIQ): DPDK's TAP driver \
             will log \"failed to create multiq qdisc\" and \"Disabling rte flow support\" for each \
             exception-path TAP below. Harmless: rvs sets no rte_flow rules on its TAPs."
        );
    }
}

/// Runs the daemon until a stop signal.
///
/// # Errors
/// [`StartError`] if anything fails before the data plane is up.
pub fn run(config: Config) -> Result<(), StartError> {
    plan::check_kernel_ifaces(&config, Path::new("/sys/class/net"))?;
    // What a killed rvsd left (see `runfiles`): refused if still in use.
    let socket_err = |source| StartError::Socket {
        path: config.socket.display().to_string(),
        source,
    };
    if UnixStream::connect(&config.socket).is_ok() {
        return Err(socket_err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another rvsd is answering on it",
        )));
    }
    let prefix = &config.dpdk.file_prefix;
    if !prefix.is_empty() && !prefix.contains('/') && !prefix.starts_with('.') {
        let dir = Path::new(runfiles::EAL_RUNTIME_DIR).join(prefix);
        let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        match runfiles::clean_eal_runtime(&dir, &locks) {
            Ok(runfiles::EalRuntime::RemovedStale) => eprintln!(
                "rvsd: removed {}: DPDK runtime files of a process that is gone (a killed rvsd?)",
                dir.display()
            ),
            Ok(runfiles::EalRuntime::Absent) => {}
            Err(e) => return Err(StartError::EalRuntime(e)),
        }
    }
    // Before EAL: the address monitor is a child process, and must not
    // inherit DPDK's descriptors (a TAP it held open would outlive a
    // killed rvsd, and keepalived would never see the interface go).
    let mut sync = sync_ctl::SyncCtl::new(config.sync.clone());
    sync.follow_start(&config)
        .map_err(|source| StartError::Socket {
            path: "ip monitor address (follow_kernel_addresses)".into(),
            source,
        })?;
    let mut args = plan::eal_args(&config);
    // The exception path: one TAP per interface, named like the interface,
    // 802.1Q sub-interfaces included (the workers take their tag off before
    // punting and put it on what the kernel sends; no kernel VLAN support
    // needed, as DPVS gives each VLAN device its own KNI).
    for (i, c) in config.interfaces.iter().enumerate() {
        args.push(format!("--vdev=net_tap{i},iface={}", c.name));
    }
    explain_tap_multiq();
    let eal = Eal::init(&args).map_err(|source| StartError::Eal {
        args: args[1..].join(" "),
        source,
    })?;
    crate::affinity::choose(crate::affinity::Lcores {
        main: config.dpdk.main_lcore,
        workers: &config.dataplane.worker_lcores,
        map: config.dpdk.lcore_map.as_deref(),
    });
    let lcores = config.dataplane.worker_lcores.clone();
    let n = lcores.len();
    let pool = Arc::new(
        Mempool::create("rvs_pkts", config.dataplane.mbufs, 256, 2048 + 128, -1)
            .map_err(|e| StartError::Mempool(e, config.dataplane.mbufs))?,
    );
    let mut ports = Vec::new();
    let mut macs = Vec::new();
    for i in config.interfaces.iter().filter(|i| i.is_port()) {
        let id = Port::by_name(i.dpdk_name()).map_err(|source| StartError::NoSuchPort {
            name: i.name.clone(),
            device: i.device.clone(),
            source,
        })?;
        let conf = PortConfig {
            rx_queues: n as u16,
            tx_queues: n as u16,
            rx_desc: 1024,
            tx_desc: 1024,
        };
        let port_err = |source| StartError::Port {
            name: i.name.clone(),
            source,
        };
        let mut port = Port::configure(id, &conf, &pool).map_err(port_err)?;
        port.start().map_err(port_err)?;
        macs.push(port.mac_addr().map_err(port_err)?);
        eprintln!(
            "rvsd: {} ({}) up, MAC {}, {n} queue(s)",
            i.name,
            i.device,
            fmt_mac(&macs[macs.len() - 1])
        );
        ports.push(port);
    }
    let port_ids: Vec<_> = ports.iter().map(Port::id).collect();
    let mut taps = Vec::new();
    for (i, c) in config.interfaces.iter().enumerate() {
        let name = format!("net_tap{i}");
        let port_err = |source| StartError::Port {
            name: format!("{} (exception path {name})", c.name),
            source,
        };
        let id = Port::by_name(&name).map_err(port_err)?;
        let conf = PortConfig {
            rx_queues: n as u16,
            tx_queues: n as u16,
            rx_desc: 512,
            tx_desc: 512,
        };
        let mut tap = Port::configure(id, &conf, &pool).map_err(port_err)?;
        tap.start().map_err(port_err)?;
        // A sub-interface has its parent port's MAC.
        let mac = plan::vlans(&config)
            .vlan_of(i as u16)
            .map_or(i, |v| usize::from(v.parent));
        configure_kernel_side(c, &macs[mac]).map_err(|source| StartError::Socket {
            path: format!("exception path {}", c.name),
            source,
        })?;
        for r in config.routes.iter().filter(|r| r.dev == c.name) {
            kernel_route(r, true).map_err(|source| StartError::Socket {
                path: format!("exception path {}", c.name),
                source,
            })?;
        }
        eprintln!(
            "rvsd: {}: exception path up (kernel interface {} {}/{})",
            c.name, c.name, c.addr, c.prefix_len
        );
        taps.push(tap);
    }

    let mut registry = Registry::default();
    let t0 = Instant::now();
    let mut tables = plan::tables(&config, &macs, &mut registry, 1);
    tables.standby = sync.standby_addrs();
    let mut dad = Dad::default();
    tables.tentative = dad.update(&tables, t0);
    let tables = Arc::new(tables);
    let mut neigh = NeighTable::default();
    neigh.want_servers(&tables, t0);
    let neigh_map = Arc::new(neigh.snapshot());
    let mut announce = Announcer::default();
    log_announced(&announce.update(&tables, t0));
    let mut plans = Vec::new();
    let isn_key = config.dataplane.isn_secret.unwrap_or_else(random_isn_key);
    for (wi, &lcore) in lcores.iter().enumerate() {
        let q = QueueId(wi as u16);
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        let mut tap_rx = Vec::new();
        let mut tap_tx = Vec::new();
        for (p, i) in ports.iter().zip(&config.interfaces) {
            let port_err = |source| StartError::Port {
                name: i.name.clone(),
                source,
            };
            rx.push(p.rx_queue(q).map_err(port_err)?);
            tx.push(p.tx_queue(q).map_err(port_err)?);
        }
        // Every interface's TAP, sub-interfaces' after the ports'.
        for (t, i) in taps.iter().zip(&config.interfaces) {
            let port_err = |source| StartError::Port {
                name: i.name.clone(),
                source,
            };
            tap_rx.push(Some(t.rx_queue(q).map_err(port_err)?));
            tap_tx.push(Some(t.tx_queue(q).map_err(port_err)?));
        }
        let mut pipeline = Pipeline::new(
            Arc::clone(&tables),
            Arc::clone(&neigh_map),
            config.dataplane.session_capacity,
            seed(lcore),
            wi as u16,
            n as u16,
        );
        pipeline.set_template_capacity(config.dataplane.template_capacity);
        pipeline.set_flood_guard(config.flood_guard);
        pipeline.enable_punt();
        pipeline.randomize_port_start(seed(lcore).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        pipeline.set_isn_key(isn_key);
        plans.push(runtime::WorkerPlan {
            lcore: LcoreId(lcore),
            rx,
            tx,
            port_ids: port_ids.clone(),
            tap_rx,
            tap_tx,
            pipeline,
            on_start: None,
        });
    }
    let plan = runtime::Plan {
        workers: plans,
        pool: Arc::clone(&pool),
        idle: match config.dataplane.idle {
            IdlePolicy::Busy => Idle::Busy,
            IdlePolicy::Backoff => Idle::Backoff,
        },
        rs_count: MAX_REAL_SERVERS,
        ring_prefix: "rvs_redir".into(),
        ring_size: REDIRECT_RING_SIZE,
    };
    let running = runtime::start(&eal, plan).map_err(|e| match e {
        runtime::StartError::Ring(e) => StartError::Ring(e),
        runtime::StartError::Launch(lcore, e, handles) => {
            handles.stop();
            eal.wait_all();
            StartError::Launch(lcore, e)
        }
    })?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(StartError::Signals)?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .map_err(StartError::Signals)?;
    let metrics_listener = match config.metrics {
        None => None,
        Some(addr) => Some(
            TcpListener::bind(addr).map_err(|source| StartError::Socket {
                path: addr.to_string(),
                source,
            })?,
        ),
    };
    let (listener, stale) = runfiles::bind_control_socket(&config.socket).map_err(socket_err)?;
    if stale {
        eprintln!(
            "rvsd: removed the stale control socket {} (left by a killed rvsd)",
            config.socket.display()
        );
    }
    let (jobs_tx, jobs) = bounded(serve::QUEUE);
    let listeners = serve::Listeners {
        control: listener,
        metrics: metrics_listener,
    };
    serve::start(listeners, jobs_tx).map_err(|source| StartError::Socket {
        path: config.socket.display().to_string(),
        source,
    })?;
    eprintln!(
        "rvsd: ready: {} worker(s), control socket {}{}",
        running.workers.len(),
        config.socket.display(),
        config
            .metrics
            .map(|a| format!(", metrics http://{a}/metrics"))
            .unwrap_or_default()
    );
    let socket_path = config.socket.clone();
    let (health_tx, health_rx) = bounded(1024);
    let config_interfaces = config.interfaces.clone();
    let mut control = Control {
        config,
        registry,
        generation: 1,
        macs,
        workers: running.workers,
        neigh,
        announce,
        dad,
        acd: Acd::default(),
        events: running.events,
        retired: running.retired,
        kernel_drops: kernel_drops::KernelDrops::new(&config_interfaces),
        ports,
        last_reload: None,
        file_routes: Vec::new(),
        health_tx,
        health_rx,
        checkers: std::collections::HashMap::new(),
        dr_routes: DrRoutes::default(),
        down: std::collections::HashSet::new(),
        rates: std::collections::HashMap::new(),
        rates_at: Instant::now(),
        zeroed: crate::zero::Baselines::default(),
        vip_routes: crate::vip_routes::VipRoutes::default(),
        drain: None,
        sync,
    };
    control.file_routes = control.config.routes.clone();
    control.sync_checkers();
    control.start_configured_sync(true);
    // Ready: offer the VIPs that have a usable server (after clearing what
    // a killed rvsd may have left in the table).
    control.flush_vip_routes();
    let effective = control.effective_config();
    control.update_vip_routes(&effective);
    let mut printed: Option<(Instant, crate::top::Reading)> = None;
    loop {
        if stop.swap(false, Ordering::Relaxed) {
            // With VIP routes, the first SIGTERM drains (withdraw, wait the
            // grace period, stop); a second one, or none to withdraw, stops.
            let draining_to_stop = control.drain.is_some_and(|d| d.stop_at.is_some());
            if draining_to_stop
                || control
                    .config
                    .vip_routes
                    .as_ref()
                    .is_none_or(|c| c.drain_grace == 0)
                || control.start_drain(false).is_err()
            {
                break;
            }
        }
        if control.drain_done() {
            eprintln!("rvsd: drain: grace period over");
            break;
        }
        if let Some(every) = control.config.print_interval {
            let due = printed
                .as_ref()
                .is_none_or(|(t, _)| t.elapsed() >= Duration::from_secs(u64::from(every)));
            if due {
                if let Response::Stats { workers, ports } = control.stats() {
                    let now = (Instant::now(), crate::top::Reading { ports, workers });
                    if let Some((t, before)) = &printed {
                        eprint!(
                            "{}",
                            crate::top::render(
                                &now.1,
                                before,
                                now.0.duration_since(*t).as_secs_f64()
                            )
                        );
                    }
                    printed = Some(now);
                }
            }
        }
        if hup.swap(false, Ordering::Relaxed) {
            match control.reload() {
                Response::Error(e) => {
                    eprintln!("rvsd: SIGHUP: reload refused, running config kept: {e}")
                }
                _ => eprintln!("rvsd: SIGHUP: reloaded {}", control.config.path.display()),
            }
        }
        control.tick();
        // Clients' requests, whole (see `serve`): waiting here is the
        // loop's idle time, so a request is answered as soon as it lands.
        match jobs.recv_timeout(Duration::from_millis(10)) {
            Ok(job) => control.run_job(job),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                eprintln!("rvsd: the serving thread is gone; stopping");
                break;
            }
        }
    }
    eprintln!("rvsd: stopping");
    control
        .drain
        .get_or_insert(vip_routes::Drain { stop_at: None });
    control.flush_vip_routes();
    for h in &control.workers {
        h.shared.stop.store(true, Ordering::Relaxed);
    }
    eal.wait_all();
    let mut ports = std::mem::take(&mut control.ports);
    ports.extend(taps);
    drop(control);
    for (p, i) in ports.iter_mut().zip(0..) {
        if let Err(e) = p.stop() {
            eprintln!("rvsd: port {i}: {e}");
        }
    }
    let _ = std::fs::remove_file(&socket_path);
    eprintln!("rvsd: stopped");
    Ok(())
}

/// The control loop's state: the live config and what it was built into.
struct Control {
    config: Config,
    registry: Registry,
    generation: u64,
    macs: Vec<MacAddr>,
    workers: Vec<WorkerHandle>,
    neigh: NeighTable,
    /// Gratuitous ARP / unsolicited NA for addresses the tables gained.
    announce: Announcer,
    /// Duplicate address detection for own IPv6 addresses.
    dad: Dad,
    /// Address conflict detection for IPv4 addresses (see [`crate::acd`]).
    acd: Acd,
    events: Receiver<Event>,
    /// Snapshots workers replaced: the last one returned frees it, here.
    retired: Receiver<Retired>,
    ports: Vec<Port>,
    /// Frames the kernel dropped before each port's PMD (see `kernel_drops`).
    kernel_drops: kernel_drops::KernelDrops,
    /// Last reload: applied?, when (Unix seconds).
    last_reload: Option<(bool, f64)>,
    /// The file's `[[route]]`s at start-up (`rvsadm route` changes the live
    /// list; a reload may not change the file's).
    file_routes: Vec<crate::config::net::RouteConfig>,
    health_tx: Sender<health::Change>,
    health_rx: Receiver<health::Change>,
    /// One health checker per checked (service, real server).
    checkers: std::collections::HashMap<((SocketAddr, u8), SocketAddr), Checker>,
    /// Policy routes that take DR servers' probes to them (see [`health`]).
    dr_routes: DrRoutes,
    /// Real servers their health check found down.
    down: std::collections::HashSet<((SocketAddr, u8), SocketAddr)>,
    /// Rate estimators by real-server index, and when they last ran.
    rates: std::collections::HashMap<usize, RateEstimate>,
    rates_at: Instant,
    /// `rvsadm -Z`: each zeroed real server's counters (conns, packets and
    /// bytes in/out) at that moment, by index; listings show the counters
    /// less these. Workers and `/metrics` keep counting from the start.
    zeroed: crate::zero::Baselines,
    /// The VIP routes in the `[vip_routes]` table.
    vip_routes: crate::vip_routes::VipRoutes,
    /// A drain in progress (`rvsadm drain`, SIGTERM with `[vip_routes]`).
    drain: Option<vip_routes::Drain>,
    /// Connection sync (see `sync_ctl`).
    sync: sync_ctl::SyncCtl,
}

type ServiceKey = (SocketAddr, u8);

impl Control {
    /// Drains worker events and sends due ARP requests.
    fn tick(&mut self) {
        self.estimate_rates();
        self.apply_health_results();
        let now = Instant::now();
        let mut changed = false;
        while let Ok(e) = self.events.try_recv() {
            match e {
                Event::Neigh(NeighEvent::Duplicate { ip, mac, port }) => {
                    self.duplicate(ip, mac, port, now)
                }
                Event::Neigh(NeighEvent::Learned(e)) if self.is_own_v4(e.ip.ip()) => {
                    self.conflict(e.ip.ip(), e.mac, e.port, now)
                }
                Event::Neigh(ev) => changed |= self.neigh.apply(ev, now),
            }
        }
        // The last worker to return a snapshot frees it, here.
        while let Ok(old) = self.retired.try_recv() {
            drop(old);
        }
        self.sync_tick();
        changed |= self.neigh.age(now);
        if changed {
            let map = Arc::new(self.neigh.snapshot());
            self.broadcast(|| WorkerRequest::Neigh(Arc::clone(&map)));
        }
        let first = self.workers.first().map(|w| w.requests.clone());
        // IPv4 address conflict detection probes (see `acd`).
        let probed4 = self.acd.due(now, |port, ip| {
            if let Some(w) = &first {
                let _ = w.try_send(WorkerRequest::SendArp {
                    port,
                    target: ip.octets(),
                });
            }
        });
        if probed4 {
            self.publish_tables();
        }
        // A duplicate address detection probe: a solicitation from `::`.
        let probed = self.dad.due(now, |port, ip| {
            if let Some(w) = &first {
                let _ = w.try_send(WorkerRequest::SendNs {
                    port,
                    target: ip.octets(),
                    source: [0; 16],
                });
            }
        });
        if probed {
            // Addresses became preferred: answered and announced from now.
            self.publish_tables();
        }
        self.announce.due(now, |port, ip| {
            if let Some(w) = &first {
                let _ = w.try_send(WorkerRequest::Announce { port, ip });
            }
        });
        let config = &self.config;
        self.neigh.due_requests(now, |port, target| {
            let Some(w) = &first else { return };
            match target.ip() {
                IpAddr::V4(v4) => {
                    let _ = w.try_send(WorkerRequest::SendArp {
                        port,
                        target: v4.octets(),
                    });
                }
                // IPv6 next hops: a neighbour solicitation from the port's
                // IPv6 address (none configured: nothing to ask from).
                IpAddr::V6(v6) => {
                    if let Some(source) = crate::config::net::ns_source(config, port, v6) {
                        let _ = w.try_send(WorkerRequest::SendNs {
                            port,
                            target: v6.octets(),
                            source: source.octets(),
                        });
                    }
                }
            }
        });
    }

    fn broadcast(&self, mut make: impl FnMut() -> WorkerRequest) {
        for w in &self.workers {
            if w.requests
                .send_timeout(make(), Duration::from_secs(1))
                .is_err()
            {
                eprintln!("rvsd: worker on lcore {} is not taking requests", w.lcore);
            }
        }
    }

    /// Builds the next tables snapshot from the live config (as health
    /// checks leave it) and sends it.
    fn publish_tables(&mut self) {
        self.sync_checkers();
        let run_time_v4: Vec<_> = self
            .config
            .addresses
            .iter()
            .filter_map(|a| match a.addr {
                IpAddr::V4(v4) => Some((
                    v4,
                    crate::config::net::port_of(&self.config.interfaces, &a.dev)?,
                )),
                IpAddr::V6(_) => None,
            })
            .collect();
        self.acd.update(&run_time_v4, Instant::now());
        self.generation += 1;
        let effective = self.effective_config();
        let mut t = plan::tables(&effective, &self.macs, &mut self.registry, self.generation);
        t.tentative = self.dad.update(&t, Instant::now());
        // Servers added or moved at run time are resolved now, ahead of traffic.
        self.neigh.want_servers(&t, Instant::now());
        self.sync.recompute_standby(&self.config);
        self.set_sync_laddrs();
        t.standby = self.sync.standby_addrs();
        let t = Arc::new(t);
        self.broadcast(|| WorkerRequest::Tables(Arc::clone(&t)));
        log_announced(&self.announce.update(&t, Instant::now()));
        self.update_vip_routes(&effective);
    }

    fn answer(&mut self, req: Request) -> Response {
        match req {
            Request::ListServices => self.list_services(),
            Request::ListServicesWithTemplates => self.list_services_with(true),
            Request::ListConnections => listings::list_connections(&self.worker_lines()),
            Request::Stats => self.stats(),
            Request::AddServer(spec) => self.change_server(&spec, Change::Add),
            Request::EditServer(spec) => self.change_server(&spec, Change::Edit),
            Request::DeleteServer(spec) => self.change_server(&spec, Change::Delete),
            Request::SetTimeouts { tcp, tcpfin, udp } => {
                // 0 leaves a timeout unchanged; others as the config's.
                for v in [tcp, tcpfin, udp].into_iter().filter(|v| *v > 0) {
                    if let Err(e) = config::ranges::timeout_secs(i64::from(v)) {
                        return Response::Error(e);
                    }
                }
                let t = &mut self.config.timeouts;
                if tcp > 0 {
                    t.set_tcp(TcpState::Established, tcp);
                }
                if tcpfin > 0 {
                    t.set_tcp(TcpState::FinWait, tcpfin);
                }
                if udp > 0 {
                    t.udp_secs = udp;
                }
                self.publish_tables();
                Response::Ok
            }
            Request::GetTimeouts => {
                let t = &self.config.timeouts;
                Response::Timeouts {
                    tcp: t.tcp(TcpState::Established),
                    tcpfin: t.tcp(TcpState::FinWait),
                    udp: t.udp_secs,
                }
            }
            Request::AddService(spec) => self.change_service(&spec, Change::Add),
            Request::EditService(spec) => self.change_service(&spec, Change::Edit),
            Request::DeleteService(spec) => self.change_service(&spec, Change::Delete),
            Request::Clear => {
                for (vip, proto) in self
                    .config
                    .services
                    .iter()
                    .map(|s| (s.vip, s.proto))
                    .collect::<Vec<_>>()
                {
                    self.config.remove_service_options(vip, proto);
                }
                self.config.services.clear();
                self.publish_tables();
                Response::Ok
            }
            Request::AddLocalAddress { service, addr } => self.change_laddr(&service, &addr, true),
            Request::DeleteLocalAddress { service, addr } => {
                self.change_laddr(&service, &addr, false)
            }
            Request::Save => match self.list_services() {
                Response::Services { services, .. } => {
                    Response::Rules(ipvsadm_fmt::save(&services))
                }
                other => other,
            },
            Request::Reload => self.reload(),
            Request::Ip(r) => Response::Ip(self.ip(r)),
            Request::Zero(spec) => self.zero(spec.as_ref()),
            Request::ExportConfig => {
                let mut text = config::export::services_toml(&self.config);
                if self.sync.engine.config.enabled() {
                    text.push_str(&config::sync::toml(&self.sync.engine.config));
                }
                Response::ConfigToml(text)
            }
            Request::ListVips => self.list_vips(),
            Request::Drain { stay } => match self.start_drain(stay) {
                Ok(()) => self.list_vips(),
                Err(e) => Response::Error(e),
            },
            Request::Undrain => match self.end_drain() {
                Ok(()) => self.list_vips(),
                Err(e) => Response::Error(e),
            },
            Request::StartDaemon(spec) => self.start_daemon(&spec),
            Request::StopDaemon { role } => self.stop_daemon(&role),
            Request::ListDaemons => Response::Daemons(self.sync.engine.daemon_lines()),
            Request::Access(r) => self.access(r),
        }
    }

    /// Answers one client request (see [`serve`]). A client gone since
    /// misses its answer; nothing else changes.
    fn run_job(&mut self, job: Job) {
        match job {
            // The session listing pages through every worker's table: it
            // runs beside the loop, which goes on serving meanwhile.
            Job::Control {
                request: Request::ListConnections,
                reply,
            } => {
                let workers = self.worker_lines();
                let spawned =
                    std::thread::Builder::new()
                        .name("rvsd-list".into())
                        .spawn(move || {
                            let _ = reply.send(listings::list_connections(&workers));
                        });
                if let Err(e) = spawned {
                    eprintln!("rvsd: cannot start a listing thread: {e}");
                }
            }
            Job::Control { request, reply } => {
                let _ = reply.send(self.answer(request));
            }
            Job::Metrics { reply } => {
                let text = metrics::render(&self.metrics_snapshot())
                    .map(|t| t + &self.sync.engine.metrics_text(Instant::now()))
                    .map_err(|e| e.to_string());
                let _ = reply.send(text);
            }
        }
    }
}

fn proto_name(p: u8) -> &'static str {
    if p == 17 {
        "UDP"
    } else {
        "TCP"
    }
}

/// The key of FULLNAT's server-side ISNs (`dataplane::xmit::isn`): 16
/// bytes from the kernel's random source, once per start; the seed's
/// mix (time, pid) if it cannot be read.
fn random_isn_key() -> [u8; 16] {
    use std::io::Read as _;
    let mut key = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key));
    if let Err(e) = read {
        eprintln!("rvsd: /dev/urandom: {e}; the ISN key comes from the clock");
        key[..8].copy_from_slice(&seed(0).to_le_bytes());
        key[8..].copy_from_slice(&seed(1).rotate_left(17).to_le_bytes());
    }
    key
}

fn seed(lcore: u32) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ u64::from(lcore).rotate_left(32) ^ u64::from(std::process::id())
}

/// Logs the addresses about to be announced (gratuitous ARP / unsolicited NA).
fn log_announced(new: &[Addr]) {
    if !new.is_empty() {
        let list: Vec<String> = new.iter().map(|a| a.ip().to_string()).collect();
        eprintln!(
            "rvsd: announcing {} (gratuitous ARP / unsolicited NA)",
            list.join(" ")
        );
    }
}

/// A service or real server address as rvsadm sends it: `a.b.c.d:port` or
/// `[v6]:port` (port not 0; an IPv4-mapped IPv6 address is no IPv6 one).
fn parse_endpoint(s: &str) -> Option<SocketAddr> {
    let a: SocketAddr = s.parse().ok()?;
    let mapped = matches!(a.ip(), IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
    (!mapped).then_some(a)
}

/// `a.b.c.d:port` or `[v6]:port`, as ipvsadm prints endpoints.
fn endpoint(e: Endpoint) -> String {
    std::net::SocketAddr::new(e.ip.ip(), e.port).to_string()
}

fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
