//! `rvsd`: bring up EAL, ports and workers from a validated config, then run
//! the control loop until SIGTERM/SIGINT.
//!
//! Start-up order matters for operators and tests: every check that can fail
//! (config, kernel interfaces, EAL, ports) runs before the control socket
//! exists, so "the socket answers" means "the data plane is forwarding".
//! The main lcore runs the control loop ([`Control`]); each worker lcore runs
//! a [`Worker`] until told to stop. Clients (the control socket, `/metrics`)
//! are served on a thread of their own ([`serve`]), which hands the loop
//! whole requests: no client can make the loop wait.
//!
//! Control owns the live configuration. A change (`rvsadm -a/-e/-d/--set`)
//! builds a new immutable [`dataplane::tables::Tables`] snapshot and sends it to every worker;
//! each switches between bursts and sends the old one back, and the last
//! returned reference frees it here. Neighbour events from workers feed the
//! [`NeighTable`]; a changed table is published the same way.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use dataplane::addr::Addr;
use dataplane::dpdk::{
    Eal, EalError, LaunchError, LcoreId, MbufRing, Mempool, MempoolError, Port, PortConfig,
    PortError, QueueId, RingError,
};
use dataplane::neigh::NeighEvent;
use dataplane::pipeline::Pipeline;
use dataplane::session::{Endpoint, TcpState};
use dataplane::stats::DropReason;
use dataplane::wire::MacAddr;
use dataplane::worker::{Event, HeldFrames, Idle, Request as WorkerRequest, Worker, WorkerShared};

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

struct WorkerHandle {
    lcore: u32,
    shared: Arc<WorkerShared>,
    requests: Sender<WorkerRequest>,
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

    // rings[i][j]: worker i -> worker j.
    let mut rings: Vec<Vec<Option<Arc<MbufRing>>>> = vec![vec![None; n]; n];
    for (i, row) in rings.iter_mut().enumerate() {
        for (j, slot) in row.iter_mut().enumerate() {
            if i != j {
                *slot = Some(Arc::new(
                    MbufRing::create(&format!("rvs_redir_{i}_{j}"), REDIRECT_RING_SIZE, -1)
                        .map_err(StartError::Ring)?,
                ));
            }
        }
    }

    let mut registry = Registry::default();
    let t0 = Instant::now();
    let mut tables = plan::tables(&config, &macs, &mut registry, 1);
    let mut dad = Dad::default();
    tables.tentative = dad.update(&tables, t0);
    let tables = Arc::new(tables);
    let mut neigh = NeighTable::default();
    for svc in &tables.services {
        for rs in &svc.servers {
            if let Some((port, nh)) = tables.next_hop(rs.addr.ip) {
                neigh.want(nh, port, t0);
            }
        }
    }
    let neigh_map = Arc::new(neigh.snapshot());
    let mut announce = Announcer::default();
    log_announced(&announce.update(&tables, t0));
    let (events_tx, events_rx) = bounded(4096);
    let mut handles = Vec::new();
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
        pipeline.enable_punt();
        let shared = Arc::new(WorkerShared::new(MAX_REAL_SERVERS));
        let (req_tx, req_rx) = bounded(64);
        let worker = Worker {
            rx,
            tx,
            port_ids: port_ids.clone(),
            tap_rx,
            tap_tx,
            redirect_out: rings[wi].clone(),
            redirect_in: rings.iter().filter_map(|row| row[wi].clone()).collect(),
            events: events_tx.clone(),
            pool: Arc::clone(&pool),
            pipeline,
            shared: Arc::clone(&shared),
            requests: req_rx,
            idle: match config.dataplane.idle {
                IdlePolicy::Busy => Idle::Busy,
                IdlePolicy::Backoff => Idle::Backoff,
            },
            tsc_hz: eal.tsc_hz(),
            held: HeldFrames::default(),
        };
        eal.launch(LcoreId(lcore), Box::new(move || worker.run()))
            .map_err(|e| StartError::Launch(lcore, e))?;
        handles.push(WorkerHandle {
            lcore,
            shared,
            requests: req_tx,
        });
    }
    drop(events_tx);

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
        handles.len(),
        config.socket.display(),
        config
            .metrics
            .map(|a| format!(", metrics http://{a}/metrics"))
            .unwrap_or_default()
    );
    let socket_path = config.socket.clone();
    let (health_tx, health_rx) = bounded(1024);
    let mut control = Control {
        config,
        registry,
        generation: 1,
        macs,
        workers: handles,
        neigh,
        announce,
        dad,
        acd: Acd::default(),
        events: events_rx,
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
    };
    control.file_routes = control.config.routes.clone();
    control.sync_checkers();
    let mut printed: Option<(Instant, crate::top::Reading)> = None;
    while !stop.load(Ordering::Relaxed) {
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
    ports: Vec<Port>,
    /// Last reload: applied?, when (Unix seconds).
    last_reload: Option<(bool, f64)>,
    /// The file's `[[route]]`s at start-up (`rvsadm route` changes the live
    /// list; a reload may not change the file's).
    file_routes: Vec<crate::iproute::RouteConfig>,
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
}

type ServiceKey = (SocketAddr, u8);

impl Control {
    /// Starts checkers for checked servers that lack one (or whose check or
    /// target changed) and stops those of servers or checks that are gone.
    fn sync_checkers(&mut self) {
        let mut wanted = std::collections::HashSet::new();
        let mut dr_pairs = std::collections::HashSet::new();
        let services = self.config.services.clone();
        for s in &services {
            let key: ServiceKey = (s.vip, s.proto);
            let Some(check) = self.config.health.get(&key).cloned() else {
                continue;
            };
            for r in &s.real_servers {
                wanted.insert((key, r.addr));
                let forward = self
                    .config
                    .service_options
                    .get(&key)
                    .map_or(s.forward, |o| o.forward_of(r.addr, s.forward));
                // A TUN server on a connected subnet holds the VIP too and
                // is probed there like a DR one (not encapsulated: the
                // kernel may have no ipip); a routed one at its address.
                let on_vip = forward == Forward::Dr
                    || (forward == Forward::Tun && self.iface_for(r.addr.ip()).is_some());
                let target = if on_vip {
                    dr_pairs.insert((s.vip.ip(), r.addr.ip()));
                    self.dr_target(s.vip, r.addr)
                } else {
                    Target::direct(r.addr)
                };
                let current = self
                    .checkers
                    .get(&(key, r.addr))
                    .is_some_and(|c| c.runs(&check, target));
                if !current {
                    let up = !self.down.contains(&(key, r.addr));
                    let c = health::spawn(
                        check.clone(),
                        key,
                        r.addr,
                        target,
                        up,
                        self.health_tx.clone(),
                    );
                    self.checkers.insert((key, r.addr), c);
                }
            }
        }
        self.checkers.retain(|k, _| wanted.contains(k));
        self.down.retain(|k| wanted.contains(k));
        self.dr_routes.retain(&dr_pairs);
    }

    /// Where a DR server's probes go: the VIP (at the server's port, which
    /// DR keeps), routed to that server through the exception path of the
    /// interface it is on. Without such an interface or route, the server's
    /// own address (logged: that checks the host, not the VIP service).
    fn dr_target(&mut self, vip: SocketAddr, rs: SocketAddr) -> Target {
        let result = match self.iface_for(rs.ip()) {
            Some(dev) => self
                .dr_routes
                .target(SocketAddr::new(vip.ip(), rs.port()), rs.ip(), &dev),
            None => Err(format!("{rs} is on no interface's subnet")),
        };
        result.unwrap_or_else(|e| {
            eprintln!("rvsd: health: DR server {rs} of {vip}: cannot route probes to the VIP ({e}); probing {rs} itself");
            Target::direct(rs)
        })
    }

    /// The interface whose connected subnet holds `ip`, by name.
    fn iface_for(&self, ip: IpAddr) -> Option<String> {
        let on_link = |i: &&crate::config::InterfaceConfig| match ip {
            IpAddr::V4(ip) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(i.prefix_len))
                    .unwrap_or(0);
                u32::from(i.addr) & mask == u32::from(ip) & mask
            }
            IpAddr::V6(ip) => i
                .addr6
                .is_some_and(|(a, len)| Addr::from(a).masked(len) == Addr::from(ip).masked(len)),
        };
        self.config
            .interfaces
            .iter()
            .find(on_link)
            .map(|i| i.name.clone())
    }

    /// Asks every worker to drop its sessions to `server` of `service`
    /// (after the tables without it went out) and logs how many there were.
    fn flush_server(&self, service: ServiceKey, server: SocketAddr) {
        let Some(index) = self.registry.server_index(service.0, service.1, server) else {
            return;
        };
        let Ok(rs_index) = u16::try_from(index) else {
            return;
        };
        let mut flushed = 0;
        for w in &self.workers {
            let (tx, rx) = bounded(1);
            if w.requests
                .send_timeout(
                    WorkerRequest::FlushServer {
                        rs_index,
                        reply: tx,
                    },
                    Duration::from_secs(1),
                )
                .is_ok()
            {
                flushed += rx.recv_timeout(Duration::from_secs(1)).unwrap_or(0);
            }
        }
        eprintln!(
            "rvsd: health: reset {flushed} connection(s) to {server} of {}/{}",
            proto_name(service.1),
            service.0
        );
    }

    /// The config as the data plane should see it: servers found down are
    /// inhibited (weight 0) or removed, and a service with none left up
    /// uses its sorry server.
    fn effective_config(&self) -> Config {
        let mut c = self.config.clone();
        // IPv4 addresses being probed, or found in use elsewhere: not yet
        // (or never) the appliance's.
        let withheld: Vec<_> = self.acd.withheld().map(IpAddr::V4).collect();
        c.addresses.retain(|a| !withheld.contains(&a.addr));
        for s in &mut c.services {
            let key: ServiceKey = (s.vip, s.proto);
            let Some(check) = self.config.health.get(&key) else {
                continue;
            };
            let all_down = !s.real_servers.is_empty()
                && s.real_servers
                    .iter()
                    .all(|r| self.down.contains(&(key, r.addr)));
            match check.on_fail {
                OnFail::Inhibit => {
                    for r in &mut s.real_servers {
                        if self.down.contains(&(key, r.addr)) {
                            r.weight = 0;
                        }
                    }
                }
                OnFail::Remove => s
                    .real_servers
                    .retain(|r| !self.down.contains(&(key, r.addr))),
            }
            if all_down {
                if let Some(sorry) = check.sorry_server {
                    if check.on_fail == OnFail::Inhibit {
                        s.real_servers.retain(|r| r.addr == sorry);
                    }
                    if !s.real_servers.iter().any(|r| r.addr == sorry) {
                        s.real_servers.push(RealServerConfig {
                            addr: sorry,
                            weight: 1,
                        });
                    }
                }
            }
        }
        c
    }

    /// Drains worker events and sends due ARP requests.
    fn tick(&mut self) {
        self.estimate_rates();
        let mut health_changed = false;
        let mut to_flush = Vec::new();
        while let Ok(ch) = self.health_rx.try_recv() {
            if !self.checkers.contains_key(&(ch.service, ch.server)) {
                continue; // a checker stopped since
            }
            let key = (ch.service, ch.server);
            let was_down = self.down.contains(&key);
            if ch.up && was_down {
                self.down.remove(&key);
            } else if !ch.up && !was_down {
                self.down.insert(key);
            } else {
                continue;
            }
            health_changed = true;
            if !ch.up
                && self
                    .config
                    .health
                    .get(&ch.service)
                    .is_some_and(|c| c.connections == Connections::Reset)
            {
                to_flush.push(key);
            }
            eprintln!(
                "rvsd: health: real server {} of {}/{} is {} ({})",
                ch.server,
                proto_name(ch.service.1),
                ch.service.0,
                if ch.up { "UP" } else { "DOWN" },
                ch.detail
            );
        }
        if health_changed {
            self.publish_tables();
        }
        for (service, server) in to_flush {
            self.flush_server(service, server);
        }
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
                // The last worker to return a snapshot frees it, here.
                Event::RetiredTables(_) | Event::RetiredNeigh(_) => {}
            }
        }
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
                    if let Some(source) = crate::iproute::ns_source(config, port, v6) {
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

    /// Another host (at `mac`, seen on `port`) claims own address `ip`.
    fn duplicate(&mut self, ip: Addr, mac: MacAddr, port: u16, now: Instant) {
        let dev = self
            .config
            .interfaces
            .get(usize::from(port))
            .map_or("?", |i| i.name.as_str());
        match self.dad.claimed(ip, mac, now) {
            Claim::Failed => eprintln!(
                "rvsd: {dev}: IPv6 duplicate address {ip} detected: {} holds it; not used (rvsadm addr del, then add, to try again)",
                fmt_mac(&mac)
            ),
            Claim::Conflict => eprintln!("rvsd: {dev}: {} advertises {ip}, an address of this appliance; defended", fmt_mac(&mac)),
            Claim::Quiet => {}
        }
    }

    /// Whether `ip` is an IPv4 address this appliance holds or probes for
    /// (VIPs aside: see [`crate::acd`]), so that ARP from another host
    /// with it as sender is a conflict, not a neighbour to learn.
    fn is_own_v4(&self, ip: IpAddr) -> bool {
        let IpAddr::V4(v4) = ip else { return false };
        self.config.interfaces.iter().any(|i| i.addr == v4)
            || self.config.addresses.iter().any(|a| a.addr == ip)
            || self
                .config
                .services
                .iter()
                .any(|s| s.local_addresses.contains(&ip))
    }

    /// ARP from another host (at `mac`, seen on `port`) names own IPv4
    /// address `ip` as its sender.
    fn conflict(&mut self, ip: IpAddr, mac: MacAddr, port: u16, now: Instant) {
        let IpAddr::V4(v4) = ip else { return };
        if self.macs.contains(&mac) {
            return; // our own announcement, looped back
        }
        let dev = self
            .config
            .interfaces
            .get(usize::from(port))
            .map_or("?", |i| i.name.as_str());
        let in_use = !self.acd.withheld().any(|w| w == v4);
        match self.acd.heard(v4, mac, in_use, now) {
            Claim::Failed => eprintln!(
                "rvsd: {dev}: IPv4 address conflict: {ip} is in use by {}; not used (rvsadm addr del, then add, to try again)",
                fmt_mac(&mac)
            ),
            Claim::Conflict => {
                eprintln!(
                    "rvsd: {dev}: IPv4 address conflict: {} claims {ip}, an address of this appliance; defended",
                    fmt_mac(&mac)
                );
                if let Some(w) = self.workers.first() {
                    let _ = w.requests.try_send(WorkerRequest::Announce {
                        port,
                        ip: Addr::from(ip),
                    });
                }
            }
            Claim::Quiet => {}
        }
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
                    crate::iproute::port_of(&self.config.interfaces, &a.dev)?,
                )),
                IpAddr::V6(_) => None,
            })
            .collect();
        self.acd.update(&run_time_v4, Instant::now());
        self.generation += 1;
        let effective = self.effective_config();
        let mut t = plan::tables(&effective, &self.macs, &mut self.registry, self.generation);
        t.tentative = self.dad.update(&t, Instant::now());
        let t = Arc::new(t);
        self.broadcast(|| WorkerRequest::Tables(Arc::clone(&t)));
        log_announced(&self.announce.update(&t, Instant::now()));
    }

    fn answer(&mut self, req: Request) -> Response {
        match req {
            Request::ListServices => self.list_services(),
            Request::ListServicesWithTemplates => self.list_services_with(true),
            Request::ListConnections => self.list_connections(),
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
                Response::ConfigToml(config::export::services_toml(&self.config))
            }
        }
    }

    /// Finds the service `spec` names: its index, or the error to answer.
    fn find_service(
        &self,
        spec: &ServiceSpec,
    ) -> Result<(SocketAddr, u8, Option<usize>), Response> {
        let proto = match spec.proto.as_str() {
            "tcp" => 6,
            "udp" => 17,
            p => return Err(Response::Error(format!("unknown protocol {p}"))),
        };
        let vip = parse_endpoint(&spec.vip)
            .ok_or_else(|| Response::Error(format!("invalid service address {}", spec.vip)))?;
        let at = self
            .config
            .services
            .iter()
            .position(|s| s.vip == vip && s.proto == proto);
        Ok((vip, proto, at))
    }

    fn change_service(&mut self, spec: &ServiceSpec, change: Change) -> Response {
        let (vip, proto, at) = match self.find_service(spec) {
            Ok(x) => x,
            Err(r) => return r,
        };
        if let Err(e) = config::check_ops(spec.ops, proto) {
            return Response::Error(e);
        }
        // As ipvsadm: -A and -E take the whole definition; what is not given
        // takes its default (wlc, no persistence, no flags).
        let name = spec.scheduler.as_deref().unwrap_or("wlc");
        let Some(scheduler) = SchedKind::from_name(name) else {
            return Response::Error(format!("Scheduler not found: ip_vs_{name}"));
        };
        let mut flags = SchedFlags::default();
        for f in spec
            .sched_flags
            .iter()
            .flat_map(|f| f.split(','))
            .filter(|f| !f.is_empty())
        {
            match SchedFlags::parse(scheduler, f) {
                Ok(bit) => flags = flags.union(bit),
                Err(e) => return Response::Error(e.to_string()),
            }
        }
        let persistence = match (spec.persistent, &spec.netmask) {
            (None, Some(_)) => {
                return Response::Error("-M (netmask) needs a persistent service (-p)".into())
            }
            (None, None) => None,
            (Some(t), mask) => {
                if let Err(e) = config::ranges::persistent_secs(i64::from(t)) {
                    return Response::Error(e);
                }
                let mut p = Persistence::new(t);
                if let Some(m) = mask.as_deref().filter(|_| vip.is_ipv6()) {
                    match config::check_netmask6(m) {
                        Ok(len) => p.prefix6 = len,
                        Err(e) => return Response::Error(e),
                    }
                } else if let Some(m) = mask {
                    match m.parse::<Ipv4Addr>() {
                        Ok(m)
                            if u32::from(m).leading_ones() + u32::from(m).trailing_zeros()
                                == 32 =>
                        {
                            p.netmask = m.octets()
                        }
                        _ => return Response::Error(format!("illegal persistence netmask {m}")),
                    }
                }
                Some(p)
            }
        };
        if let (Change::Add, None) = (change, at) {
            let name = format!("of service {}", service_name(proto, vip));
            if let Err(e) = Claims::of(&self.config).claim(vip.ip(), Use::Vip, name) {
                return Response::Error(e);
            }
        }
        match (change, at) {
            (Change::Add, Some(_)) => return Response::Error("Service already exists".into()),
            (Change::Edit | Change::Delete, None) => {
                return Response::Error("Service not defined".into())
            }
            (Change::Delete, Some(i)) => {
                self.config.services.remove(i);
                self.config.remove_service_options(vip, proto);
                self.publish_tables();
                return Response::Ok;
            }
            (Change::Add | Change::Edit, _) => {}
        }
        let servers = at.map_or(0, |i| self.config.services[i].real_servers.len());
        let mut options = self
            .config
            .service_options(vip, proto)
            .cloned()
            .unwrap_or_default();
        options.sched_flags = flags;
        options.persistence = persistence;
        options.ops = spec.ops;
        if scheduler != SchedKind::MaglevHashing {
            options.mh_table_size = None;
        }
        if let Err(e) = options.check_for(scheduler, servers, vip.is_ipv4()) {
            return Response::Error(e);
        }
        match at {
            None => self.config.services.push(ServiceConfig {
                vip,
                proto,
                scheduler,
                forward: Forward::FullNat,
                local_addresses: Vec::new(),
                real_servers: Vec::new(),
            }),
            Some(i) => self.config.services[i].scheduler = scheduler,
        }
        *self.config.service_options_mut(vip, proto) = options;
        self.publish_tables();
        Response::Ok
    }

    fn change_laddr(&mut self, spec: &ServiceSpec, addr: &str, add: bool) -> Response {
        let (vip, _, at) = match self.find_service(spec) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let Some(i) = at else {
            return Response::Error("Service not defined".into());
        };
        let Ok(ip) = addr.parse::<IpAddr>() else {
            return Response::Error(format!("invalid local address {addr}"));
        };
        let servers_v4 = self.config.services[i]
            .real_servers
            .first()
            .map(|r| r.addr.is_ipv4());
        if let Err(e) = config::check_laddr_family(vip, servers_v4, ip) {
            return Response::Error(e);
        }
        if add {
            let name = format!(
                "of service {}",
                service_name(self.config.services[i].proto, vip)
            );
            if let Err(e) = Claims::of(&self.config).claim(ip, Use::LocalAddress, name) {
                return Response::Error(e);
            }
        }
        let list = &mut self.config.services[i].local_addresses;
        match (add, list.iter().position(|a| *a == ip)) {
            (true, Some(_)) => return Response::Error("Local address already exists".into()),
            (true, None) => list.push(ip),
            (false, None) => return Response::Error("No such local address".into()),
            (false, Some(j)) => {
                list.remove(j);
            }
        }
        self.publish_tables();
        Response::Ok
    }

    /// `rvsadm link|addr|route|neigh`: listings, and changes checked on a
    /// copy of the config, applied to the kernel side (exception path)
    /// first, and only then made live and published. A refusal changes
    /// nothing.
    fn ip(&mut self, r: crate::iproute::IpRequest) -> crate::iproute::IpResponse {
        use crate::iproute::{self as ipr, IpRequest as Q, IpResponse as A};
        let mut next = self.config.clone();
        let kernel = match r {
            Q::LinkShow => return A::Links(self.links()),
            Q::AddrShow => {
                let mut views = ipr::addr_views(&self.config);
                for v in &mut views {
                    let state = match v.addr {
                        IpAddr::V6(_) => self.dad.state(v.addr.into()),
                        IpAddr::V4(v4) => self.acd.state(v4),
                    };
                    v.flags = state.map_or("", crate::dad::State::flags).into();
                }
                return A::Addrs(self.links(), views);
            }
            Q::RouteShow => {
                return A::Routes(ipr::route_list(
                    &self.config.interfaces,
                    &self.config.addresses,
                    &self.config.routes,
                ))
            }
            Q::NeighShow => return A::Neighbours(self.neigh_views()),
            Q::NeighAdd { addr, lladdr, dev } => {
                return self.neigh_change(&addr, Some(&lladdr), &dev)
            }
            Q::NeighDel { addr, dev } => return self.neigh_change(&addr, None, &dev),
            Q::AddrAdd { addr, dev } => ipr::addr_add(&mut next, &addr, &dev).map(|a| {
                let cidr = format!("{}/{}", a.addr, a.len);
                if a.addr.is_ipv6() {
                    // The TAP may have IPv6 off (no address6 in the file).
                    let _ = std::fs::write(
                        format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", a.dev),
                        "0",
                    );
                    kernel_ip(&["-6", "addr", "add", &cidr, "dev", &a.dev, "nodad"])
                } else {
                    kernel_ip(&["addr", "add", &cidr, "dev", &a.dev])
                }
            }),
            Q::AddrDel { addr, dev } => ipr::addr_del(&mut next, &addr, &dev).map(|a| {
                kernel_ip(&[
                    "addr",
                    "del",
                    &format!("{}/{}", a.addr, a.len),
                    "dev",
                    &a.dev,
                ])
            }),
            Q::RouteAdd(spec) => ipr::route_add(&mut next, &spec).map(|r| kernel_route(&r, true)),
            Q::RouteDel(spec) => ipr::route_del(&mut next, &spec).map(|r| kernel_route(&r, false)),
        };
        match kernel {
            Err(e) => A::Refused(e.to_string()),
            Ok(Err(e)) => A::Refused(format!("exception path: {e}")),
            Ok(Ok(())) => {
                self.config = next;
                self.publish_tables();
                A::Done
            }
        }
    }

    fn links(&self) -> Vec<crate::iproute::LinkView> {
        let ports = self
            .ports
            .iter()
            .zip(&self.config.interfaces)
            .zip(&self.macs)
            .map(|((p, i), mac)| {
                let st = p.stats().unwrap_or_default();
                crate::iproute::LinkView {
                    name: i.name.clone(),
                    device: i.device.clone(),
                    mac: *mac,
                    up: p.link_up(),
                    mtu: p.mtu().map_or(0, u32::from),
                    stats: [
                        st.ipackets,
                        st.ibytes,
                        st.ierrors,
                        st.imissed,
                        st.rx_nombuf,
                        st.opackets,
                        st.obytes,
                        st.oerrors,
                    ],
                    vlan: None,
                }
            });
        let mut links: Vec<_> = ports.collect();
        for i in &self.config.interfaces {
            let Some(v) = &i.vlan else { continue };
            let Some(parent) = links.iter().find(|l| l.name == v.link).cloned() else {
                continue;
            };
            links.push(crate::iproute::LinkView {
                name: i.name.clone(),
                device: String::new(),
                mtu: u32::from(i.mtu),
                stats: [0; 8],
                vlan: Some((v.link.clone(), v.id)),
                ..parent
            });
        }
        links
    }

    fn neigh_views(&self) -> Vec<crate::iproute::NeighView> {
        self.neigh
            .iter()
            .map(|(ip, mac, port, state)| crate::iproute::NeighView {
                addr: ip.ip(),
                dev: self
                    .config
                    .interfaces
                    .get(usize::from(port))
                    .map_or_else(|| format!("port{port}"), |i| i.name.clone()),
                lladdr: mac,
                state: state.name().into(),
            })
            .collect()
    }

    /// `neigh add` (with a MAC) or `neigh del`: a permanent entry in the
    /// neighbour table, published to the workers at once.
    fn neigh_change(
        &mut self,
        addr: &str,
        lladdr: Option<&str>,
        dev: &str,
    ) -> crate::iproute::IpResponse {
        use crate::iproute::{IpError, IpResponse as A};
        let refuse = |e: IpError| A::Refused(e.to_string());
        let Ok(ip) = addr.parse::<IpAddr>() else {
            return refuse(IpError::BadAddress(addr.into()));
        };
        let Some(port) = self.config.interfaces.iter().position(|i| i.name == dev) else {
            return refuse(IpError::NoDevice(dev.into()));
        };
        let changed =
            match lladdr {
                Some(m) => {
                    let mac = match crate::iproute::parse_mac(m) {
                        Ok(mac) => mac,
                        Err(e) => return refuse(e),
                    };
                    if self.neigh.iter().any(|(a, _, _, s)| {
                        a == Addr::from(ip) && s == crate::neigh::State::Permanent
                    }) {
                        return refuse(IpError::Exists(format!(
                            "{ip} is already a permanent neighbour"
                        )));
                    }
                    let entry = dataplane::neigh::NeighEntry {
                        ip: Addr::from(ip),
                        mac,
                        port: port as u16,
                    };
                    if !self.neigh.add_static(entry, Instant::now()) {
                        return A::Refused("the neighbour table is full".into());
                    }
                    true
                }
                None => {
                    if !self
                        .neigh
                        .iter()
                        .any(|(a, _, p, _)| a == Addr::from(ip) && usize::from(p) == port)
                    {
                        return refuse(IpError::Missing(format!("no neighbour {ip} on {dev}")));
                    }
                    self.neigh.remove(Addr::from(ip))
                }
            };
        if changed {
            let map = Arc::new(self.neigh.snapshot());
            self.broadcast(|| WorkerRequest::Neigh(Arc::clone(&map)));
        }
        A::Done
    }

    /// Re-reads the config file; applies services and timeouts if nothing
    /// that needs a restart changed. The running config stays otherwise.
    fn reload(&mut self) -> Response {
        let r = self.try_reload();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_reload = Some((!matches!(r, Response::Error(_)), now));
        r
    }

    fn try_reload(&mut self) -> Response {
        let new = match config::load(&self.config.path) {
            Ok(c) => c,
            Err(e) => return Response::Error(e.to_string()),
        };
        let old = &self.config;
        let fixed = [
            ("[dpdk]", new.dpdk != old.dpdk),
            ("[dataplane]", new.dataplane != old.dataplane),
            ("[control] socket", new.socket != old.socket),
            ("[metrics] address", new.metrics != old.metrics),
            ("[[interface]]", new.interfaces != old.interfaces),
            ("[[route]]", new.routes != self.file_routes),
        ];
        if let Some((what, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Response::Error(format!(
                "{}: {what} cannot change at run time (restart rvsd to apply it)",
                new.path.display()
            ));
        }
        let servers = |c: &Config| -> std::collections::HashSet<(SocketAddr, u8, SocketAddr)> {
            c.services
                .iter()
                .flat_map(|s| s.real_servers.iter().map(move |r| (s.vip, s.proto, r.addr)))
                .collect()
        };
        let (before, after) = (servers(&self.config), servers(&new));
        self.config.services = new.services;
        self.config.timeouts = new.timeouts;
        self.config.service_options = new.service_options;
        self.config.health = new.health;
        self.publish_tables();
        // A server the file adds back starts its --stats from zero, as
        // `rvsadm -a` does (unless connections it had still run).
        let readded: Vec<_> = after
            .difference(&before)
            .filter_map(|&(v, p, r)| Some((self.registry.server_index(v, p, r)?, v, p, r)))
            .collect();
        if !readded.is_empty() {
            self.refresh();
            for (i, vip, proto, rs) in readded {
                self.zero_if_idle(i, vip, proto, rs);
            }
        }
        Response::Ok
    }

    fn change_server(&mut self, spec: &ServerSpec, change: Change) -> Response {
        let proto = match spec.proto.as_str() {
            "tcp" => 6,
            "udp" => 17,
            p => return Response::Error(format!("unknown protocol {p}")),
        };
        let Some(vip) = parse_endpoint(&spec.vip) else {
            return Response::Error(format!("invalid service address {}", spec.vip));
        };
        let Some(svc) = self
            .config
            .services
            .iter()
            .position(|s| s.vip == vip && s.proto == proto)
        else {
            return Response::Error("Service not defined".into());
        };
        let rs = match parse_endpoint(&spec.rs) {
            Some(a) => a,
            None => match spec
                .rs
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(ip) => SocketAddr::new(ip, vip.port()),
                Err(_) => {
                    return Response::Error(format!("invalid real server address {}", spec.rs))
                }
            },
        };
        // The method: as given (-g/-m/--fullnat); otherwise unchanged on -e,
        // and the service's default on -a (FULLNAT unless the file says
        // otherwise). rvsadm always sends one (ipvsadm's default is -g).
        let service_default = self.config.services[svc].forward;
        let current = self.config.server_forward(&self.config.services[svc], rs);
        let forward = match spec.forward.as_deref() {
            Some(word) => match config::parse_forward(word) {
                Ok(f) => f,
                Err(e) => return Response::Error(e),
            },
            None if matches!(change, Change::Edit) => current,
            None => service_default,
        };
        if matches!(change, Change::Add) {
            let name = format!("{rs} of service {}", service_name(proto, vip));
            if let Err(e) = Claims::of(&self.config).claim(rs.ip(), Use::RealServer, name) {
                return Response::Error(e);
            }
        }
        if !matches!(change, Change::Delete) {
            if let Err(e) = config::check_forward(forward, vip, rs) {
                return Response::Error(e);
            }
            let service = &self.config.services[svc];
            let other = service
                .real_servers
                .iter()
                .map(|r| r.addr)
                .find(|a| *a != rs);
            if let Err(e) = config::check_server_family(vip, rs, forward, other) {
                return Response::Error(e);
            }
            if let Some(l) = service
                .local_addresses
                .iter()
                .find(|l| l.is_ipv4() != rs.is_ipv4())
            {
                return Response::Error(format!("real server {rs} is {} but the service's local address {l} is {}: remove it first (-Q)", config::family(rs.ip()), config::family(*l)));
            }
            if forward == Forward::FullNat && self.config.services[svc].local_addresses.is_empty() {
                return Response::Error(format!("service {vip} has no FULLNAT local address: add one first with -P -t {vip} -z ADDRESS"));
            }
            if forward == Forward::Nat {
                // A NAT reply is matched to its service by its source: one
                // service per protocol may use a given server with NAT.
                let clash = self.config.services.iter().enumerate().any(|(i, s)| {
                    i != svc
                        && s.proto == proto
                        && s.real_servers.iter().any(|r| {
                            r.addr == rs && self.config.server_forward(s, r.addr) == Forward::Nat
                        })
                });
                if clash {
                    return Response::Error(format!(
                        "real server {rs} is already a NAT server of another service"
                    ));
                }
            }
        }
        if let Some(w) = spec.weight {
            if let Err(e) = config::ranges::weight(i64::from(w)) {
                return Response::Error(e);
            }
        }
        for (t, what) in [
            (spec.upper_threshold, "upper threshold"),
            (spec.lower_threshold, "lower threshold"),
        ] {
            if let Some(Err(e)) = t.map(|t| config::ranges::threshold(i64::from(t), what)) {
                return Response::Error(e);
            }
        }
        let thresholds = |old: Thresholds| Thresholds {
            upper: spec.upper_threshold.unwrap_or(old.upper),
            lower: spec.lower_threshold.unwrap_or(old.lower),
        };
        let old_t = self
            .config
            .service_options(vip, proto)
            .and_then(|o| o.thresholds.get(&rs).copied())
            .unwrap_or_default();
        let new_t = thresholds(if matches!(change, Change::Add) {
            Thresholds::default()
        } else {
            old_t
        });
        if let Err(e) = config::check_thresholds(new_t) {
            return Response::Error(e);
        }
        // A server added back (same service, address and port) keeps its
        // registry index, whose counters run on. Once no connection holds
        // it, it starts from zero, as a new IPVS destination does (the
        // kernel keeps a removed one's counters only while connections
        // still refer to it, in its destination trash).
        let mut readded = None;
        let servers = &mut self.config.services[svc].real_servers;
        let at = servers.iter().position(|r| r.addr == rs);
        match (change, at) {
            (Change::Add, Some(_)) => return Response::Error("Destination already exists".into()),
            (Change::Add, None) => {
                readded = self.registry.server_index(vip, proto, rs);
                if readded.is_none() && self.registry.server_count() >= MAX_REAL_SERVERS {
                    return Response::Error(format!(
                        "too many real servers (at most {MAX_REAL_SERVERS} while rvsd runs)"
                    ));
                }
                servers.push(RealServerConfig {
                    addr: rs,
                    weight: spec.weight.unwrap_or(1),
                });
            }
            (Change::Edit | Change::Delete, None) => {
                return Response::Error("No such destination".into())
            }
            (Change::Edit, Some(i)) => {
                if let Some(w) = spec.weight {
                    servers[i].weight = w;
                }
            }
            (Change::Delete, Some(i)) => {
                servers.remove(i);
            }
        }
        let options = self.config.service_options_mut(vip, proto);
        if matches!(change, Change::Delete) || new_t == Thresholds::default() {
            options.thresholds.remove(&rs);
        } else {
            options.thresholds.insert(rs, new_t);
        }
        if matches!(change, Change::Delete) || forward == service_default {
            options.forwards.remove(&rs);
        } else {
            options.forwards.insert(rs, forward);
        }
        self.publish_tables();
        if let Some(i) = readded {
            self.refresh();
            self.zero_if_idle(i, vip, proto, rs);
        }
        Response::Ok
    }

    /// Answers one client request (see [`serve`]). A client gone since
    /// misses its answer; nothing else changes.
    fn run_job(&mut self, job: Job) {
        match job {
            Job::Control { request, reply } => {
                let _ = reply.send(self.answer(request));
            }
            Job::Metrics { reply } => {
                let text = metrics::render(&self.metrics_snapshot()).map_err(|e| e.to_string());
                let _ = reply.send(text);
            }
        }
    }

    fn metrics_snapshot(&self) -> metrics::Snapshot {
        self.refresh();
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let workers = self
            .workers
            .iter()
            .map(|w| {
                let s = &w.shared;
                metrics::WorkerSample {
                    lcore: w.lcore,
                    rx_packets: l(&s.rx_packets),
                    tx_packets: l(&s.tx_packets),
                    rx_bytes: l(&s.rx_bytes),
                    tx_bytes: l(&s.tx_bytes),
                    drops: DropReason::ALL
                        .iter()
                        .map(|r| (r.name(), l(&s.drops[*r as usize])))
                        .collect(),
                    redirected_out: l(&s.redirected_out),
                    redirected_in: l(&s.redirected_in),
                    polls: l(&s.polls),
                    empty_polls: l(&s.empty_polls),
                    sessions: l(&s.sessions),
                    session_capacity: u64::from(self.config.dataplane.session_capacity),
                    sessions_created: l(&s.sessions_created),
                    sessions_expired: l(&s.sessions_expired),
                    generation: l(&s.generation),
                }
            })
            .collect();
        let ports = self
            .ports
            .iter()
            .zip(&self.config.interfaces)
            .map(|(p, i)| {
                let st = p.stats().unwrap_or_default();
                metrics::PortSample {
                    name: i.name.clone(),
                    basic: [
                        st.ipackets,
                        st.opackets,
                        st.ibytes,
                        st.obytes,
                        st.imissed,
                        st.ierrors,
                        st.oerrors,
                        st.rx_nombuf,
                    ],
                    link_up: p.link_up(),
                    xstats: p.xstats().unwrap_or_default(),
                }
            })
            .collect();
        let mut servers = Vec::new();
        let mut services = Vec::new();
        let effective = self.effective_config();
        for svc in &effective.services {
            let label = metrics::service_label(proto_name(svc.proto), svc.vip);
            for r in &svc.real_servers {
                let ConnTotals {
                    active,
                    inactive,
                    created: connections,
                    ..
                } = self.server_totals(svc.vip, svc.proto, r.addr);
                servers.push(metrics::ServerSample {
                    up: !self.down.contains(&((svc.vip, svc.proto), r.addr)),
                    service: label.clone(),
                    server: metrics::server_label(r.addr),
                    weight: r.weight,
                    active,
                    inactive,
                    connections,
                });
            }
            services.push(label);
        }
        let mut neighbours = vec![
            ("incomplete", 0),
            ("reachable", 0),
            ("stale", 0),
            ("failed", 0),
        ];
        for (_, _, _, state) in self.neigh.iter() {
            let i = match state {
                crate::neigh::State::Incomplete => 0,
                crate::neigh::State::Reachable | crate::neigh::State::Permanent => 1,
                crate::neigh::State::Stale => 2,
                crate::neigh::State::Failed => 3,
            };
            neighbours[i].1 += 1;
        }
        let routes = crate::iproute::route_list(
            &self.config.interfaces,
            &self.config.addresses,
            &self.config.routes,
        )
        .iter()
        .filter(|r| r.origin != crate::iproute::RouteOrigin::Local)
        .count() as u64;
        let (last_reload_ok, last_reload_time) = self.last_reload.unwrap_or((true, 0.0));
        metrics::Snapshot {
            workers,
            ports,
            servers,
            services,
            neighbours,
            routes,
            generation: self.generation,
            last_reload_ok,
            last_reload_time,
        }
    }

    /// Asks every worker to publish its counters and waits (briefly) for
    /// each, so a listing agrees with the connection table.
    fn refresh(&self) {
        let acks: Vec<_> = self
            .workers
            .iter()
            .filter_map(|w| {
                let (tx, rx) = bounded(1);
                w.requests
                    .send_timeout(WorkerRequest::Publish(tx), Duration::from_secs(1))
                    .ok()
                    .map(|()| rx)
            })
            .collect();
        for rx in acks {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
    }

    /// A real server's connection counts summed over workers.
    fn server_totals(&self, vip: SocketAddr, proto: u8, rs: SocketAddr) -> ConnTotals {
        let Some(i) = self.registry.server_index(vip, proto, rs) else {
            return ConnTotals::default();
        };
        let mut t = ConnTotals::default();
        for w in &self.workers {
            let s = &w.shared;
            t.active += s
                .rs_active
                .get(i)
                .map_or(0, |x| u64::from(x.load(Ordering::Relaxed)));
            t.inactive += s
                .rs_inactive
                .get(i)
                .map_or(0, |x| u64::from(x.load(Ordering::Relaxed)));
            t.created += s.rs_created.get(i).map_or(0, |x| x.load(Ordering::Relaxed));
            for (sum, v) in t.traffic.iter_mut().zip(&s.rs_traffic) {
                *sum += v.get(i).map_or(0, |x| x.load(Ordering::Relaxed));
            }
        }
        t
    }

    /// Every 2 s: feeds each real server's counters to its rate estimator.
    fn estimate_rates(&mut self) {
        let now = Instant::now();
        let secs = now.duration_since(self.rates_at).as_secs_f64();
        if secs < 2.0 {
            return;
        }
        self.rates_at = now;
        let keys: Vec<_> = self
            .config
            .services
            .iter()
            .flat_map(|s| s.real_servers.iter().map(move |r| (s.vip, s.proto, r.addr)))
            .collect();
        for (vip, proto, rs) in keys {
            let Some(i) = self.registry.server_index(vip, proto, rs) else {
                continue;
            };
            let totals = self.server_totals(vip, proto, rs).stats();
            self.rates.entry(i).or_default().update(totals, secs);
        }
    }

    /// `-Z`: takes the counters of every real server of `spec` (all
    /// services if `None`) as their new zero, and restarts their rate
    /// estimators from 0, as the kernel's `ip_vs_zero_stats` does.
    fn zero(&mut self, spec: Option<&ServiceSpec>) -> Response {
        let services: Vec<ServiceKey> = match spec {
            None => self
                .config
                .services
                .iter()
                .map(|s| (s.vip, s.proto))
                .collect(),
            Some(spec) => match self.find_service(spec) {
                Ok((vip, proto, Some(_))) => vec![(vip, proto)],
                Ok((_, _, None)) => return Response::Error("No such service".into()),
                Err(r) => return r,
            },
        };
        self.refresh();
        for (vip, proto) in services {
            let Some(s) = self
                .config
                .services
                .iter()
                .find(|s| s.vip == vip && s.proto == proto)
            else {
                continue;
            };
            for r in s.real_servers.iter().map(|r| r.addr).collect::<Vec<_>>() {
                let Some(i) = self.registry.server_index(vip, proto, r) else {
                    continue;
                };
                self.zero_server(i, vip, proto, r);
            }
        }
        Response::Ok
    }

    /// A real server added back: its `--stats` start from zero unless
    /// connections it had still run (call after [`Self::refresh`]).
    fn zero_if_idle(&mut self, i: usize, vip: SocketAddr, proto: u8, rs: SocketAddr) {
        let held = self.server_totals(vip, proto, rs);
        if held.active + held.inactive == 0 {
            self.zero_server(i, vip, proto, rs);
        }
    }

    /// Zeroes the counters `--stats`/`--rate` show for server `i` (registry
    /// index of `rs` in service `vip`/`proto`) at their current values.
    fn zero_server(&mut self, i: usize, vip: SocketAddr, proto: u8, rs: SocketAddr) {
        let now = self.server_totals(vip, proto, rs).stats();
        self.zeroed.zero(i, now);
        if let Some(est) = self.rates.get_mut(&i) {
            est.zero(now);
        }
    }

    /// Live persistence templates per real server index, all workers.
    fn template_counts(&self) -> Vec<u64> {
        let mut total: Vec<u64> = Vec::new();
        for w in &self.workers {
            let (tx, rx) = bounded(1);
            if w.requests
                .send_timeout(WorkerRequest::CountTemplates(tx), Duration::from_secs(1))
                .is_err()
            {
                continue;
            }
            if let Ok(counts) = rx.recv_timeout(Duration::from_secs(2)) {
                if total.len() < counts.len() {
                    total.resize(counts.len(), 0);
                }
                for (t, c) in total.iter_mut().zip(counts) {
                    *t += u64::from(c);
                }
            }
        }
        total
    }

    fn list_services(&self) -> Response {
        self.list_services_with(false)
    }

    fn list_services_with(&self, templates: bool) -> Response {
        self.refresh();
        let persist = if templates {
            self.template_counts()
        } else {
            Vec::new()
        };
        let effective = self.effective_config();
        let services = effective
            .services
            .iter()
            .map(|s| {
                let opts = self.config.service_options(s.vip, s.proto);
                let mut flags = String::new();
                if let Some(o) = opts {
                    let names = o.sched_flags.names(s.scheduler);
                    if !names.is_empty() {
                        flags += &format!(" ({})", names.join(","));
                    }
                    if let Some(p) = o.persistence {
                        flags += &format!(" persistent {}", p.timeout_secs);
                        if p.netmask != Persistence::DEFAULT_NETMASK {
                            flags += &format!(" mask {}", Ipv4Addr::from(p.netmask));
                        }
                        // ipvsadm prints an IPv6 service's mask as its prefix length.
                        if p.prefix6 != 128 {
                            flags += &format!(" mask {}", p.prefix6);
                        }
                    }
                    if o.ops {
                        flags += " ops";
                    }
                }
                ServiceView {
                    proto: proto_name(s.proto).into(),
                    vip: s.vip.to_string(),
                    scheduler: s.scheduler.name().into(),
                    flags,
                    local_addresses: s.local_addresses.iter().map(ToString::to_string).collect(),
                    servers: s
                        .real_servers
                        .iter()
                        .map(|r| {
                            let idx = self.registry.server_index(s.vip, s.proto, r.addr);
                            let totals = self.server_totals(s.vip, s.proto, r.addr);
                            let ConnTotals {
                                active, inactive, ..
                            } = totals;
                            let rates = idx
                                .and_then(|i| self.rates.get(&i))
                                .map_or([0; 5], RateEstimate::rates);
                            let t = opts
                                .and_then(|o| o.thresholds.get(&r.addr).copied())
                                .unwrap_or_default();
                            RealServerView {
                                addr: r.addr.to_string(),
                                forward: effective.server_forward(s, r.addr).column().into(),
                                weight: r.weight,
                                upper_threshold: t.upper,
                                lower_threshold: t.lower,
                                persist_conns: idx
                                    .and_then(|i| persist.get(i).copied())
                                    .unwrap_or(0),
                                stats: self.zeroed.since(idx, totals.stats()),
                                rates,
                                active,
                                inactive,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let table_size =
            u64::from(self.config.dataplane.session_capacity) * self.workers.len() as u64;
        Response::Services {
            table_size,
            services,
        }
    }

    fn list_connections(&self) -> Response {
        let mut out = Vec::new();
        for w in &self.workers {
            let (tx, rx) = bounded(1);
            if w.requests
                .send_timeout(WorkerRequest::DumpSessions(tx), Duration::from_secs(1))
                .is_err()
            {
                return Response::Error(format!(
                    "worker on lcore {} is not taking requests",
                    w.lcore
                ));
            }
            let Ok(dump) = rx.recv_timeout(Duration::from_secs(2)) else {
                return Response::Error(format!("worker on lcore {} did not answer", w.lcore));
            };
            for s in dump.sessions {
                out.push(ConnectionView {
                    proto: proto_name(s.proto).into(),
                    expires_in_secs: dump.now.until(s.expires).div_ceil(1000),
                    state: s.state.name().into(),
                    client: endpoint(s.client),
                    vip: endpoint(s.vip),
                    rs: endpoint(s.rs),
                    laddr: endpoint(s.laddr),
                    worker: w.lcore,
                });
            }
        }
        Response::Connections(out)
    }

    fn stats(&self) -> Response {
        self.refresh();
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ports = self
            .ports
            .iter()
            .zip(&self.config.interfaces)
            .map(|(p, i)| {
                let st = p.stats().unwrap_or_default();
                PortStatsView {
                    name: i.name.clone(),
                    rx_packets: st.ipackets,
                    tx_packets: st.opackets,
                    rx_bytes: st.ibytes,
                    tx_bytes: st.obytes,
                    rx_missed: st.imissed,
                    rx_errors: st.ierrors,
                    tx_errors: st.oerrors,
                }
            })
            .collect();
        let workers = self
            .workers
            .iter()
            .map(|w| {
                let s = &w.shared;
                WorkerStatsView {
                    lcore: w.lcore,
                    rx_packets: l(&s.rx_packets),
                    tx_packets: l(&s.tx_packets),
                    rx_bytes: l(&s.rx_bytes),
                    tx_bytes: l(&s.tx_bytes),
                    sessions: l(&s.sessions),
                    sessions_created: l(&s.sessions_created),
                    sessions_expired: l(&s.sessions_expired),
                    redirected_out: l(&s.redirected_out),
                    redirected_in: l(&s.redirected_in),
                    generation: l(&s.generation),
                    polls: l(&s.polls),
                    empty_polls: l(&s.empty_polls),
                    drops: DropReason::ALL
                        .iter()
                        .filter_map(|r| {
                            let n = l(&s.drops[*r as usize]);
                            (n > 0).then(|| (r.name().to_string(), n))
                        })
                        .collect(),
                }
            })
            .collect();
        Response::Stats { workers, ports }
    }
}

/// A real server's connections, all workers.
#[derive(Debug, Clone, Copy, Default)]
struct ConnTotals {
    active: u64,
    inactive: u64,
    created: u64,
    /// Packets in, packets out, bytes in, bytes out.
    traffic: [u64; 4],
}

impl ConnTotals {
    /// ipvsadm's five counters: conns, inpkts, outpkts, inbytes, outbytes.
    fn stats(&self) -> [u64; 5] {
        [
            self.created,
            self.traffic[0],
            self.traffic[1],
            self.traffic[2],
            self.traffic[3],
        ]
    }
}

/// The kernel's rate estimator (`ip_vs_est.c`): every 2 s, each rate moves
/// a quarter of the way toward the last interval's rate.
#[derive(Debug, Clone, Default)]
struct RateEstimate {
    last: [u64; 5],
    rates: [f64; 5],
    primed: bool,
}

impl RateEstimate {
    fn update(&mut self, now: [u64; 5], secs: f64) {
        if self.primed && secs > 0.0 {
            for ((rate, n), l) in self.rates.iter_mut().zip(now).zip(self.last) {
                let r = n.saturating_sub(l) as f64 / secs;
                *rate += (r - *rate) / 4.0;
            }
        }
        self.last = now;
        self.primed = true;
    }

    fn rates(&self) -> [u64; 5] {
        self.rates.map(|r| r.round() as u64)
    }

    /// `-Z`: rates from 0, the next interval measured from `now`.
    fn zero(&mut self, now: [u64; 5]) {
        self.rates = [0.0; 5];
        self.last = now;
    }
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Add,
    Edit,
    Delete,
}

fn proto_name(p: u8) -> &'static str {
    if p == 17 {
        "UDP"
    } else {
        "TCP"
    }
}

/// Gives the kernel side of an interface's exception path the interface's
/// MAC and address (and its gateway), so replies to the appliance's own
/// traffic come back to the port and the kernel's view matches the wire.
fn configure_kernel_side(c: &crate::config::InterfaceConfig, mac: &MacAddr) -> std::io::Result<()> {
    // Without an IPv6 address the kernel side sends no IPv6 at all (no
    // link-local, router or neighbour solicitations); with one, it carries
    // it without duplicate address detection (the data plane owns the
    // port and answers for it).
    if c.addr6.is_some() {
        for (key, value) in [
            ("accept_dad", "0"),
            ("accept_ra", "0"),
            ("disable_ipv6", "0"),
        ] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/{key}", c.name), value);
        }
    } else {
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", c.name),
            "1",
        );
    }
    // An af_packet port shares its frames with the kernel's own interface:
    // keep that kernel interface from answering for the exception path's
    // address (ARP) or accepting its traffic (strict reverse-path filter),
    // or the kernel would see every such packet twice. NIC ports bound to
    // DPDK need none of this.
    if let Some(iface) = c.kernel_iface() {
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{iface}/arp_ignore"), "8");
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{iface}/rp_filter"), "1");
    }
    let ip = |args: &[&str]| -> std::io::Result<()> {
        let out = std::process::Command::new("ip").args(args).output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    let mac = fmt_mac(mac);
    ip(&["link", "set", "dev", &c.name, "address", &mac])?;
    ip(&["link", "set", "dev", &c.name, "up"])?;
    ip(&[
        "addr",
        "replace",
        &format!("{}/{}", c.addr, c.prefix_len),
        "dev",
        &c.name,
    ])?;
    if let Some(gw) = c.gateway {
        ip(&[
            "route",
            "replace",
            "default",
            "via",
            &gw.to_string(),
            "dev",
            &c.name,
        ])?;
    }
    if let Some((a, len)) = c.addr6 {
        ip(&[
            "-6",
            "addr",
            "replace",
            &format!("{a}/{len}"),
            "dev",
            &c.name,
            "nodad",
        ])?;
        if let Some(gw) = c.gateway6 {
            ip(&[
                "-6",
                "route",
                "replace",
                "default",
                "via",
                &gw.to_string(),
                "dev",
                &c.name,
            ])?;
        }
    }
    Ok(())
}

/// Runs `ip ARGS` (the kernel side of the exception path).
fn kernel_ip(args: &[&str]) -> std::io::Result<()> {
    let out = std::process::Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Adds (`replace`) or deletes static route `r` on the kernel side, so the
/// appliance's own traffic (health checks, ping) takes the same way.
fn kernel_route(r: &crate::iproute::RouteConfig, add: bool) -> std::io::Result<()> {
    let dest = if r.len == 0 {
        "default".to_string()
    } else {
        format!("{}/{}", r.prefix, r.len)
    };
    let via = r.via.map(|v| v.to_string());
    let family = if r.prefix.is_ipv6() { "-6" } else { "-4" };
    let mut args = vec![
        family,
        "route",
        if add { "replace" } else { "del" },
        dest.as_str(),
    ];
    if let Some(v) = &via {
        args.extend(["via", v.as_str()]);
    }
    args.extend(["dev", r.dev.as_str()]);
    kernel_ip(&args)
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
