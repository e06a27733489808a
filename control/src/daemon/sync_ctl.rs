//! The control loop's side of connection sync (see `docs/sync.md`): it
//! starts and stops the daemons (`[sync]` at start-up, `rvsadm
//! --start-daemon`/`--stop-daemon` at run time), gives each worker its ring
//! when a master starts, drives the [`Engine`] on every tick (send what the
//! workers fed, a full resync when due, read what a master sent), offers
//! received entries to every worker (each installs the ones it owns) and
//! adds up what they report.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use dataplane::pipeline::sync::{record_of, InstallReport};
use dataplane::session::TcpState;
use dataplane::sync_feed::SyncRecord;
use dataplane::worker::Request as WorkerRequest;

use super::Control;
use crate::api::{DaemonSpec, Response};
use crate::config::sync::SyncConfig;
use crate::config::Config;
use crate::kernel_addrs::{KernelAddrs, Watch};
use crate::sync::convert;
use crate::sync::engine::{Engine, SyncIface};
use crate::sync::wire::Role;
use dataplane::addr::Addr;

type Reply = (InstallReport, Arc<Vec<SyncRecord>>);

/// Sync's state in the control loop.
pub(super) struct SyncCtl {
    pub(super) engine: Engine,
    replies_tx: Sender<Reply>,
    replies_rx: Receiver<Reply>,
    /// The kernel's addresses, when following them.
    watch: Option<Watch>,
    kernel: KernelAddrs,
    /// VIPs and local addresses the kernel side does not hold now.
    standby: BTreeSet<IpAddr>,
    /// Local addresses already logged as overlapping a peer's pool.
    overlap_logged: BTreeSet<IpAddr>,
}

impl SyncCtl {
    pub(super) fn new(config: SyncConfig) -> Self {
        let (replies_tx, replies_rx) = unbounded();
        Self {
            engine: Engine::new(config),
            replies_tx,
            replies_rx,
            watch: None,
            kernel: KernelAddrs::default(),
            standby: BTreeSet::new(),
            overlap_logged: BTreeSet::new(),
        }
    }

    /// With `follow_kernel_addresses`: subscribes to the kernel's address
    /// changes and takes in its current addresses, so that the first
    /// tables already leave what the kernel side does not hold alone.
    ///
    /// # Errors
    /// If the monitor cannot run.
    pub(super) fn follow_start(&mut self, config: &Config) -> std::io::Result<()> {
        if !config.sync.follow_kernel_addresses {
            return Ok(());
        }
        let w = Watch::start()?;
        for e in w.events.try_iter() {
            self.kernel.apply(&e);
        }
        self.watch = Some(w);
        self.standby = self.compute_standby(config);
        Ok(())
    }

    fn compute_standby(&self, config: &Config) -> BTreeSet<IpAddr> {
        if self.watch.is_none() {
            return BTreeSet::new();
        }
        let held = self
            .kernel
            .held_on(config.interfaces.iter().map(|i| i.name.as_str()));
        // A firewall-mark service stands at its mark rules' host addresses.
        let services: Vec<(IpAddr, Vec<IpAddr>)> = config
            .services
            .iter()
            .flat_map(|s| {
                let ips: Vec<IpAddr> = match crate::config::marks::mark_of(s.vip, s.proto) {
                    None => vec![s.vip.ip()],
                    Some((mark, _)) => config
                        .marks
                        .iter()
                        .filter(|m| m.mark == mark)
                        .flat_map(crate::config::marks::MarkConfig::hosts)
                        .collect(),
                };
                ips.into_iter()
                    .map(|ip| (ip, s.local_addresses.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        crate::kernel_addrs::standby(&services, &held)
    }

    /// Recomputes the standby set (services may have changed).
    pub(super) fn recompute_standby(&mut self, config: &Config) {
        self.standby = self.compute_standby(config);
    }

    /// The addresses to put in [`dataplane::tables::Tables::standby`].
    pub(super) fn standby_addrs(&self) -> Vec<Addr> {
        self.standby.iter().map(|a| Addr::from(*a)).collect()
    }

    /// True if `ip` is on standby (another appliance holds it).
    pub(super) fn is_standby(&self, ip: IpAddr) -> bool {
        self.standby.contains(&ip)
    }
}

fn role_of(word: &str) -> Option<Role> {
    match word {
        "master" => Some(Role::Master),
        "backup" => Some(Role::Backup),
        _ => None,
    }
}

impl Control {
    /// The sync interface: `name`, or the first interface.
    fn sync_iface(&self, name: Option<&str>) -> Result<SyncIface, String> {
        let i = match name {
            Some(n) => self
                .config
                .interfaces
                .iter()
                .find(|i| i.name == n)
                .ok_or_else(|| format!("sync interface {n:?} is not an rvs interface"))?,
            None => self
                .config
                .interfaces
                .first()
                .ok_or("no interface for sync")?,
        };
        Ok(SyncIface {
            name: i.name.clone(),
            addr: i.addr,
            addr6: i.addr6.map(|(a, _)| a),
            mtu: i.mtu,
            ifindex: crate::sync::engine::kernel_ifindex(&i.name),
        })
    }

    /// Starts the daemons `[sync]` names; a failure is logged. At rvsd's
    /// start-up (`starting`) the box holds no sessions yet, and its
    /// backup's resync requests say so.
    pub(super) fn start_configured_sync(&mut self, starting: bool) {
        self.set_sync_laddrs();
        let c = self.sync.engine.config.clone();
        for (on, role) in [(c.master, "master"), (c.backup, "backup")] {
            if !on {
                continue;
            }
            let spec = DaemonSpec {
                role: role.into(),
                ..DaemonSpec::default()
            };
            match self.start_daemon_as(&spec, starting) {
                Response::Error(e) => eprintln!("rvsd: sync: cannot start the {role} daemon: {e}"),
                _ => {
                    let lines = self.sync.engine.daemon_lines();
                    let line = lines.iter().find(|l| l.starts_with(role));
                    eprintln!("rvsd: sync: {}", line.map_or("", String::as_str));
                }
            }
        }
    }

    /// A reload changed `[sync]`: stops the running daemons (a master
    /// sends what it batched first), takes the new settings and starts the
    /// daemons they name; a starting backup asks its peers for a full
    /// resync.
    pub(super) fn restart_sync(&mut self, config: SyncConfig) {
        for (role, word) in [(Role::Master, "master"), (Role::Backup, "backup")] {
            if self.sync.engine.running(role) {
                let _ = self.stop_daemon(word);
            }
        }
        self.sync.engine.config = config;
        eprintln!("rvsd: reload: [sync] changed, sync daemons restarted");
        self.start_configured_sync(false);
    }

    /// `--start-daemon`: ipvsadm's settings over the live ones, then the
    /// daemon. A running daemon of that role is refused, as the kernel
    /// refuses it (EEXIST).
    pub(super) fn start_daemon(&mut self, spec: &DaemonSpec) -> Response {
        self.start_daemon_as(spec, false)
    }

    /// [`Self::start_daemon`]; `starting`: at rvsd's start-up (see
    /// [`Self::start_configured_sync`]).
    fn start_daemon_as(&mut self, spec: &DaemonSpec, starting: bool) -> Response {
        let Some(role) = role_of(&spec.role) else {
            return Response::Error("illegal start-daemon parameter specified".into());
        };
        if self.sync.engine.running(role) {
            return Response::Error(format!("the {} sync daemon is already running", spec.role));
        }
        let c = &mut self.sync.engine.config;
        if let Some(i) = &spec.interface {
            c.interface = Some(i.clone());
        }
        if let Some(v) = spec.sync_id {
            c.sync_id = v;
        }
        if let Some(g) = &spec.group {
            match g.parse::<IpAddr>() {
                Ok(ip) if ip.is_multicast() => c.group = ip,
                _ => return Response::Error(format!("invalid mcast-group `{g}'")),
            }
        }
        if let Some(v) = spec.port {
            c.port = v;
        }
        if let Some(v) = spec.ttl {
            c.ttl = v;
        }
        if let Some(v) = spec.maxlen {
            c.maxlen = Some(v);
        }
        let iface = match self.sync_iface(self.sync.engine.config.interface.clone().as_deref()) {
            Ok(i) => i,
            Err(e) => return Response::Error(e),
        };
        match role {
            Role::Master => {
                let rings = match self.sync.engine.start_master(&iface, self.workers.len()) {
                    Ok(r) => r,
                    Err(e) => {
                        return Response::Error(format!("sync master on {}: {e}", iface.name))
                    }
                };
                let policy = self.sync.engine.config.policy();
                for (w, ring) in self.workers.iter().zip(rings) {
                    let feed = Some((ring, policy));
                    if w.requests
                        .send_timeout(WorkerRequest::SyncFeed(feed), Duration::from_secs(1))
                        .is_err()
                    {
                        eprintln!("rvsd: worker on lcore {} is not taking requests", w.lcore);
                    }
                }
            }
            Role::Backup => {
                if let Err(e) = self.sync.engine.start_backup(&iface, starting) {
                    return Response::Error(format!("sync backup on {}: {e}", iface.name));
                }
            }
        }
        Response::Ok
    }

    /// `--stop-daemon`.
    pub(super) fn stop_daemon(&mut self, role: &str) -> Response {
        let Some(r) = role_of(role) else {
            return Response::Error("illegal start_daemon specified".into());
        };
        if !self.sync.engine.running(r) {
            return Response::Error(format!("the {role} sync daemon is not running"));
        }
        if r == Role::Master {
            self.broadcast(|| WorkerRequest::SyncFeed(None));
        }
        self.sync.engine.stop(r);
        Response::Ok
    }

    /// Every tick: follow the kernel's addresses, send, resync, receive,
    /// install, count.
    pub(super) fn sync_tick(&mut self) {
        self.follow_kernel();
        let now = Instant::now();
        self.sync.engine.send_pending(now);
        if self.sync.engine.resync_due(now) {
            let (records, restored) = self.sync_snapshot(self.sync.engine.resync_restores_peers());
            if restored > 0 {
                eprintln!(
                    "rvsd: sync: a peer has restarted: its full resync sends back the {restored} copies held here of the peers' sessions"
                );
            }
            self.sync.engine.resync(records, now);
        }
        let got = self.sync.engine.receive(now);
        self.log_overlaps();
        if !got.is_empty() {
            let batch = Arc::new(got);
            for w in &self.workers {
                let req = WorkerRequest::InstallSynced {
                    batch: Arc::clone(&batch),
                    reply: self.sync.replies_tx.clone(),
                };
                if w.requests
                    .send_timeout(req, Duration::from_millis(200))
                    .is_err()
                {
                    eprintln!(
                        "rvsd: sync: worker on lcore {} is not taking requests",
                        w.lcore
                    );
                }
            }
        }
        while let Ok((report, _batch)) = self.sync.replies_rx.try_recv() {
            self.sync.engine.stats.install.add(&report);
        }
    }

    /// Tells the engine this box's own local addresses and its peers'
    /// (`[vip_routes] peer_local_addresses`). The own ones are given while
    /// this box does not follow the kernel's addresses: active boxes (ECMP)
    /// must each have their own local-address pool (replies come back to
    /// the box that owns the address), so a peer using one of ours means
    /// both hand out the same addresses and ports, and its entries are
    /// refused, unless it carries them (it took over our flows while we
    /// were gone: we take them back). With `follow_kernel_addresses`
    /// (active/backup) the local addresses move with their VIPs between
    /// the boxes by design, and sharing them is right.
    /// Called at start-up and with every change of the config
    /// ([`Self::publish_tables`]).
    pub(super) fn set_sync_laddrs(&mut self) {
        let e = &mut self.sync.engine;
        e.own_laddrs.clear();
        if !self.config.sync.follow_kernel_addresses {
            e.own_laddrs.extend(
                self.config
                    .services
                    .iter()
                    .flat_map(|s| s.local_addresses.iter().copied()),
            );
        }
        e.peer_laddrs.clear();
        if let Some(v) = &self.config.vip_routes {
            e.peer_laddrs.extend(v.peer_local_addresses.iter().copied());
        }
    }

    /// Logs, once per address, the own local addresses peers' entries used
    /// (refused, counted in `laddr_overlap`).
    fn log_overlaps(&mut self) {
        for ip in std::mem::take(&mut self.sync.engine.overlaps_seen) {
            if self.sync.overlap_logged.insert(ip) {
                eprintln!(
                    "rvsd: sync: a peer's FULLNAT sessions use local address {ip}, which is in this \
                     box's own pool: active appliances need pools of their own (refused, counted \
                     in rvs_sync_dropped_total{{reason=\"laddr_overlap\"}}; logged once)"
                );
            }
        }
    }

    /// Takes in the kernel's address changes; when the set of addresses on
    /// standby changes, publishes tables (an address leaving standby is
    /// then announced: gratuitous ARP / unsolicited NA).
    fn follow_kernel(&mut self) {
        let Some(w) = &self.sync.watch else {
            return;
        };
        let mut changed = false;
        for e in w.events.try_iter().collect::<Vec<_>>() {
            changed |= self.sync.kernel.apply(&e);
        }
        // Services come and go too (rvsadm -A/-D, reload): recomputed on
        // every publish as well (see `publish_tables`).
        if changed {
            self.refresh_standby();
        }
    }

    /// Recomputes the standby set from the live config; publishes tables
    /// if it changed.
    pub(super) fn refresh_standby(&mut self) {
        let standby = self.sync.compute_standby(&self.config);
        if standby != self.sync.standby {
            let took: Vec<_> = self.sync.standby.difference(&standby).collect();
            let gave: Vec<_> = standby.difference(&self.sync.standby).collect();
            if !took.is_empty() {
                eprintln!(
                    "rvsd: the kernel side holds {took:?}: answering and forwarding for them"
                );
            }
            if !gave.is_empty() {
                eprintln!("rvsd: the kernel side no longer holds {gave:?}: on standby");
            }
            self.sync.standby = standby;
            self.publish_tables();
        }
    }

    /// Every session worth sending, from every worker (a full resync):
    /// established and closing TCP connections, UDP flows of the VIPs
    /// this box holds; not half-open ones, which the kernel never syncs
    /// either. `restores`: a peer has just started (see
    /// [`Engine::resync_restores_peers`]), and the copies of the peers'
    /// FULLNAT sessions (on their local addresses) go too; how many is
    /// returned beside the records.
    fn sync_snapshot(&self, restores: bool) -> (Vec<SyncRecord>, usize) {
        let mut out = Vec::new();
        let mut restored = 0;
        for w in &self.workers {
            // Page by page (see `WorkerRequest::DumpSessions`).
            let mut from = Some(0);
            while let Some(f) = from {
                let (tx, rx) = crossbeam_channel::bounded(1);
                let req = WorkerRequest::DumpSessions { from: f, reply: tx };
                if w.requests
                    .send_timeout(req, Duration::from_secs(1))
                    .is_err()
                {
                    break;
                }
                let Ok(page) = rx.recv_timeout(Duration::from_secs(2)) else {
                    break;
                };
                from = page.next;
                for ((s, ext), from_peer) in
                    page.sessions.iter().zip(&page.exts).zip(&page.from_peer)
                {
                    // Only what this box serves: the sessions of a VIP
                    // another appliance holds came from it, and must not
                    // go back.
                    if self.sync.is_standby(s.vip.ip.ip()) {
                        continue;
                    }
                    let half_open = s.proto == 6
                        && matches!(
                            s.state,
                            TcpState::None | TcpState::SynRecv | TcpState::SynSent
                        );
                    let left = page.now.until(s.expires).div_ceil(1000);
                    if half_open || left == 0 {
                        continue;
                    }
                    let r = record_of(s, ext, u32::try_from(left).unwrap_or(u32::MAX));
                    // A peer's session this box has not carried: the
                    // peer's to send (a box both master and backup),
                    // unless the peer has restarted without it.
                    if *from_peer {
                        if !(restores && convert::on_peer_laddr(&r, &self.sync.engine.peer_laddrs))
                        {
                            continue;
                        }
                        restored += 1;
                    }
                    out.push(r);
                }
            }
        }
        (out, restored)
    }
}
