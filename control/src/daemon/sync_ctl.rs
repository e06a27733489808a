//! The control loop's side of connection sync (see `docs/sync.md`): it
//! starts and stops the daemons (`[sync]` at start-up, `rvsadm
//! --start-daemon`/`--stop-daemon` at run time), gives each worker its ring
//! when a master starts, drives the [`Engine`] on every tick (send what the
//! workers fed, a full resync when due, read what a master sent), offers
//! received entries to every worker (each installs the ones it owns) and
//! adds up what they report.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use dataplane::pipeline::sync::{record_of, InstallReport};
use dataplane::session::TcpState;
use dataplane::sync_feed::SyncRecord;
use dataplane::sync_policy::SyncPolicy;
use dataplane::worker::Request as WorkerRequest;

use super::Control;
use crate::api::{DaemonSpec, Response};
use crate::config::sync::SyncConfig;
use crate::sync::engine::{Engine, SyncIface};
use crate::sync::wire::Role;

type Reply = (InstallReport, Arc<Vec<SyncRecord>>);

/// Sync's state in the control loop.
pub(super) struct SyncCtl {
    pub(super) engine: Engine,
    replies_tx: Sender<Reply>,
    replies_rx: Receiver<Reply>,
}

impl SyncCtl {
    pub(super) fn new(config: SyncConfig) -> Self {
        let (replies_tx, replies_rx) = unbounded();
        Self {
            engine: Engine::new(config),
            replies_tx,
            replies_rx,
        }
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
            mtu: i.mtu,
        })
    }

    /// Starts the daemons `[sync]` names (start-up); a failure is logged.
    pub(super) fn start_configured_sync(&mut self) {
        let c = self.sync.engine.config.clone();
        for (on, role) in [(c.master, "master"), (c.backup, "backup")] {
            if !on {
                continue;
            }
            let spec = DaemonSpec {
                role: role.into(),
                ..DaemonSpec::default()
            };
            match self.start_daemon(&spec) {
                Response::Error(e) => eprintln!("rvsd: sync: cannot start the {role} daemon: {e}"),
                _ => eprintln!("rvsd: sync: {}", self.sync.engine.daemon_lines().join("; ")),
            }
        }
    }

    /// `--start-daemon`: ipvsadm's settings over the live ones, then the
    /// daemon. A running daemon of that role is refused, as the kernel
    /// refuses it (EEXIST).
    pub(super) fn start_daemon(&mut self, spec: &DaemonSpec) -> Response {
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
                Ok(IpAddr::V4(v4)) if v4.is_multicast() => c.group = v4,
                _ => return Response::Error(format!("invalid IPv4 mcast-group `{g}'")),
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
                for (w, ring) in self.workers.iter().zip(rings) {
                    let feed = Some((ring, SyncPolicy::default()));
                    if w.requests
                        .send_timeout(WorkerRequest::SyncFeed(feed), Duration::from_secs(1))
                        .is_err()
                    {
                        eprintln!("rvsd: worker on lcore {} is not taking requests", w.lcore);
                    }
                }
            }
            Role::Backup => {
                if let Err(e) = self.sync.engine.start_backup(&iface) {
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

    /// Every tick: send, resync, receive, install, count.
    pub(super) fn sync_tick(&mut self) {
        let now = Instant::now();
        self.sync.engine.send_pending(now);
        if self.sync.engine.resync_due(now) {
            let records = self.sync_snapshot();
            self.sync.engine.resync(records, now);
        }
        let got = self.sync.engine.receive(now);
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

    /// Every session worth sending, from every worker (a full resync):
    /// established and closing TCP connections, UDP flows; not half-open
    /// ones, which the kernel never syncs either.
    fn sync_snapshot(&self) -> Vec<SyncRecord> {
        let mut out = Vec::new();
        for w in &self.workers {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if w.requests
                .send_timeout(WorkerRequest::DumpSessions(tx), Duration::from_secs(1))
                .is_err()
            {
                continue;
            }
            let Ok(dump) = rx.recv_timeout(Duration::from_secs(2)) else {
                continue;
            };
            for s in &dump.sessions {
                let half_open = s.proto == 6
                    && matches!(
                        s.state,
                        TcpState::None | TcpState::SynRecv | TcpState::SynSent
                    );
                let left = dump.now.until(s.expires).div_ceil(1000);
                if half_open || left == 0 {
                    continue;
                }
                out.push(record_of(s, u32::try_from(left).unwrap_or(u32::MAX)));
            }
        }
        out
    }
}
