//! `rvsd`: bring up EAL, ports and workers from a validated config, then
//! serve the control socket until SIGTERM/SIGINT.
//!
//! Start-up order matters for operators and tests: every check that can fail
//! (config, kernel interfaces, EAL, ports) runs before the control socket
//! exists, so "the socket answers" means "the data plane is forwarding".
//! The main lcore runs this control loop; each worker lcore runs a
//! [`Worker`] until told to stop.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use dataplane::dpdk::{Eal, EalError, LaunchError, LcoreId, Mempool, MempoolError, Port, PortConfig, PortError, QueueId};
use dataplane::fnat::Pipeline;
use dataplane::session::Endpoint;
use dataplane::stats::DropReason;
use dataplane::worker::{Idle, Request as WorkerRequest, Worker, WorkerShared};

use crate::api::{ConnectionView, RealServerView, Request, Response, ServiceView, WorkerStatsView};
use crate::config::{Config, IdlePolicy};
use crate::plan;

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
    #[error("cannot create the mbuf pool ({mbufs} mbufs): {0}", mbufs = .1)]
    Mempool(MempoolError, u32),
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
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

struct WorkerHandle {
    lcore: u32,
    shared: Arc<WorkerShared>,
    requests: Sender<WorkerRequest>,
}

/// Runs the daemon until a stop signal.
///
/// # Errors
/// [`StartError`] if anything fails before the data plane is up.
pub fn run(config: &Config) -> Result<(), StartError> {
    plan::check_kernel_ifaces(config, Path::new("/sys/class/net"))?;
    let args = plan::eal_args(config);
    let eal = Eal::init(&args).map_err(|source| StartError::Eal { args: args[1..].join(" "), source })?;
    let workers = &config.dataplane.worker_lcores;
    let nq = workers.len() as u16;
    let pool = Arc::new(
        Mempool::create("rvs_pkts", config.dataplane.mbufs, 256, 2048 + 128, -1)
            .map_err(|e| StartError::Mempool(e, config.dataplane.mbufs))?,
    );
    let mut ports = Vec::new();
    let mut macs = Vec::new();
    for i in &config.interfaces {
        let id = Port::by_name(i.dpdk_name()).map_err(|source| StartError::NoSuchPort { name: i.name.clone(), device: i.device.clone(), source })?;
        let conf = PortConfig { rx_queues: nq, tx_queues: nq, rx_desc: 1024, tx_desc: 1024 };
        let port_err = |source| StartError::Port { name: i.name.clone(), source };
        let mut port = Port::configure(id, &conf, &pool).map_err(port_err)?;
        port.start().map_err(port_err)?;
        macs.push(port.mac_addr().map_err(port_err)?);
        eprintln!("rvsd: {} ({}) up, MAC {}", i.name, i.device, fmt_mac(&macs[macs.len() - 1]));
        ports.push(port);
    }
    let tables = Arc::new(plan::tables(config, &macs));
    let mut handles = Vec::new();
    for (wi, &lcore) in workers.iter().enumerate() {
        let q = QueueId(wi as u16);
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for (p, i) in ports.iter().zip(&config.interfaces) {
            let port_err = |source| StartError::Port { name: i.name.clone(), source };
            rx.push(p.rx_queue(q).map_err(port_err)?);
            tx.push(p.tx_queue(q).map_err(port_err)?);
        }
        let shared = Arc::new(WorkerShared::new(usize::from(tables.rs_count)));
        let (req_tx, req_rx) = bounded(8);
        let worker = Worker {
            rx,
            tx,
            pool: Arc::clone(&pool),
            pipeline: Pipeline::new(Arc::clone(&tables), config.dataplane.session_capacity, seed(lcore)),
            shared: Arc::clone(&shared),
            requests: req_rx,
            idle: match config.dataplane.idle {
                IdlePolicy::Busy => Idle::Busy,
                IdlePolicy::Backoff => Idle::Backoff,
            },
            tsc_hz: eal.tsc_hz(),
        };
        eal.launch(LcoreId(lcore), Box::new(move || worker.run())).map_err(|e| StartError::Launch(lcore, e))?;
        handles.push(WorkerHandle { lcore, shared, requests: req_tx });
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(StartError::Signals)?;
    }
    let listener = bind_socket(&config.socket)?;
    eprintln!("rvsd: ready: {} worker(s), control socket {}", handles.len(), config.socket.display());
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => serve(stream, config, &handles),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => eprintln!("rvsd: control socket: {e}"),
        }
    }
    eprintln!("rvsd: stopping");
    for h in &handles {
        h.shared.stop.store(true, Ordering::Relaxed);
    }
    eal.wait_all();
    for (p, i) in ports.iter_mut().zip(&config.interfaces) {
        if let Err(e) = p.stop() {
            eprintln!("rvsd: {}: {e}", i.name);
        }
    }
    let _ = std::fs::remove_file(&config.socket);
    eprintln!("rvsd: stopped");
    Ok(())
}

fn seed(lcore: u32) -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    t ^ u64::from(lcore).rotate_left(32) ^ u64::from(std::process::id())
}

fn bind_socket(path: &Path) -> Result<UnixListener, StartError> {
    let err = |source| StartError::Socket { path: path.display().to_string(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    // A socket file left by a killed daemon would make bind fail.
    if UnixStream::connect(path).is_ok() {
        return Err(err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "another rvsd is answering on it")));
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    Ok(l)
}

fn serve(stream: UnixStream, config: &Config, workers: &[WorkerHandle]) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let Ok(mut reader) = stream.try_clone().map(BufReader::new) else { return };
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let resp = match serde_json::from_str::<Request>(&line) {
        Ok(req) => answer(&req, config, workers),
        Err(e) => Response::Error(format!("bad request: {e}")),
    };
    let mut w = stream;
    if let Ok(mut s) = serde_json::to_string(&resp) {
        s.push('\n');
        let _ = w.write_all(s.as_bytes());
    }
}

fn answer(req: &Request, config: &Config, workers: &[WorkerHandle]) -> Response {
    match req {
        Request::ListServices => {
            refresh(workers);
            let mut rs_index = 0usize;
            let services = config
                .services
                .iter()
                .map(|s| ServiceView {
                    proto: if s.proto == 17 { "UDP".into() } else { "TCP".into() },
                    vip: s.vip.to_string(),
                    scheduler: s.scheduler.name().into(),
                    servers: s
                        .real_servers
                        .iter()
                        .map(|r| {
                            let (active, inactive) = workers.iter().fold((0u64, 0u64), |(a, i), w| {
                                let get = |v: &[std::sync::atomic::AtomicU32]| v.get(rs_index).map_or(0, |x| u64::from(x.load(Ordering::Relaxed)));
                                (a + get(&w.shared.rs_active), i + get(&w.shared.rs_inactive))
                            });
                            rs_index += 1;
                            RealServerView { addr: r.addr.to_string(), forward: s.forward.column().into(), weight: r.weight, active, inactive }
                        })
                        .collect(),
                })
                .collect();
            let table_size = u64::from(config.dataplane.session_capacity) * workers.len() as u64;
            Response::Services { table_size, services }
        }
        Request::ListConnections => {
            let mut out = Vec::new();
            for w in workers {
                let (tx, rx) = bounded(1);
                if w.requests.send_timeout(WorkerRequest::DumpSessions(tx), Duration::from_secs(1)).is_err() {
                    return Response::Error(format!("worker on lcore {} is gone", w.lcore));
                }
                let Ok(dump) = rx.recv_timeout(Duration::from_secs(2)) else {
                    return Response::Error(format!("worker on lcore {} did not answer", w.lcore));
                };
                for s in dump.sessions {
                    out.push(ConnectionView {
                        proto: if s.proto == 17 { "UDP".into() } else { "TCP".into() },
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
        Request::Stats => {
            refresh(workers);
            Response::Stats(
            workers
                .iter()
                .map(|w| {
                    let s = &w.shared;
                    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                    WorkerStatsView {
                        lcore: w.lcore,
                        rx_packets: l(&s.rx_packets),
                        tx_packets: l(&s.tx_packets),
                        sessions: l(&s.sessions),
                        sessions_created: l(&s.sessions_created),
                        sessions_expired: l(&s.sessions_expired),
                        drops: DropReason::ALL
                            .iter()
                            .filter_map(|r| {
                                let n = l(&s.drops[*r as usize]);
                                (n > 0).then(|| (r.name().to_string(), n))
                            })
                            .collect(),
                    }
                })
                .collect(),
            )
        }
    }
}

/// Asks every worker to publish its counters and waits (briefly) for each,
/// so a listing agrees with the connection table.
fn refresh(workers: &[WorkerHandle]) {
    let acks: Vec<_> = workers
        .iter()
        .filter_map(|w| {
            let (tx, rx) = bounded(1);
            w.requests.send_timeout(WorkerRequest::Publish(tx), Duration::from_secs(1)).ok().map(|()| rx)
        })
        .collect();
    for rx in acks {
        let _ = rx.recv_timeout(Duration::from_secs(1));
    }
}

fn endpoint(e: Endpoint) -> String {
    SocketAddrV4::new(Ipv4Addr::from(e.ip), e.port).to_string()
}

fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}
