//! The sync daemons' I/O, run by the control loop on every tick: the
//! master drains the workers' rings ([`dataplane::sync_feed::SyncRing`]),
//! batches the entries ([`Master`]) and sends the datagrams; the backup
//! reads datagrams, checks them ([`Backup`], the peer list) and hands the
//! entries to the control loop to install in the workers.
//!
//! Sockets are ordinary UDP sockets of rvsd's network namespace, on the
//! exception path: the sync interface's kernel side (its TAP) holds the
//! interface's address, so the kernel routes sync traffic through the
//! TAP, and the workers put it on the wire (and punt what arrives for the
//! TAP's address or a link-local multicast group back to it). The master
//! binds the interface's address (which also picks the interface for
//! multicast), sends to the group or to each unicast peer, TTL as set,
//! multicast loop off; the backup binds the group (or the interface's
//! address for unicast) on the sync port and joins the group there.
//!
//! Resync on request: the protocol has no request message, so a backup
//! that starts sends [`RESYNC_REQUESTS`] empty sync messages (header only,
//! its SyncID, a second apart) to its peers or the group; a kernel backup
//! takes such a message and ignores it. A box whose backup daemon accepts
//! an empty message from a peer has its master send a full resync at once
//! (at most once a second). A request sent at rvsd's start-up says so
//! ([`wire::HELLO_RESTARTED`]): that resync also carries the copies this box
//! holds of the peers' FULLNAT sessions, which a box both master and backup
//! otherwise leaves to their owner. This needs a backup daemon on the master's box
//! to hear the request (both roles, as the lab and `deploy/` run them);
//! otherwise the periodic resync (`resync_interval`) covers a new backup.
//!
//! IPv6 (an IPv6 group, or IPv6 peers; [`SyncConfig::ipv6`]): the same with
//! the interface's IPv6 address (`address6`), the TAP's interface index for
//! multicast (outgoing interface, hop limit `ttl`, the group joined there,
//! and the index as the scope of a link-local group), and the kernel's
//! `sync_maxlen` less the 48 bytes of IPv6 and UDP headers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::pipeline::sync::InstallReport;
use dataplane::sync_feed::{SyncRecord, SyncRing};

use super::convert;
use super::daemon::{Backup, DaemonConfig, Master};
use super::wire::{self, Role};
use crate::config::sync::SyncConfig;

/// Slots in each worker's ring toward control.
pub const RING_SLOTS: usize = 16_384;

/// Everything counted, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Entries put into datagrams by the master.
    pub entries_sent: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams the socket refused.
    pub send_errors: u64,
    /// Entries lost because a worker's ring was full.
    pub ring_full: u64,
    /// Datagrams lost because the master's queue was full.
    pub queue_full: u64,
    /// Full resyncs done.
    pub resyncs: u64,
    /// Resync requests (empty messages) this box's backup sent.
    pub resync_requests_sent: u64,
    /// Resync requests received from peers.
    pub resync_requests_received: u64,
    /// Datagrams accepted by the backup.
    pub datagrams_received: u64,
    /// Entries accepted by the backup.
    pub entries_received: u64,
    /// Datagrams of another SyncID, dropped.
    pub dropped_sync_id: u64,
    /// Malformed datagrams, dropped whole.
    pub dropped_malformed: u64,
    /// Datagrams from an address not in `peers`, dropped.
    pub dropped_peer: u64,
    /// Entries skipped inside accepted datagrams (the kernel's per-entry reasons).
    pub entries_skipped: u64,
    /// FULLNAT entries refused because their local address is one of this
    /// box's own (overlapping local-address pools between active boxes).
    pub laddr_overlap: u64,
    /// What the workers did with the entries.
    pub install: InstallReport,
}

/// The sync interface: its name, addresses, MTU and kernel index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncIface {
    /// rvs interface name (`--mcast-interface`).
    pub name: String,
    /// Its IPv4 address (the kernel side holds it).
    pub addr: Ipv4Addr,
    /// Its IPv6 address (`address6`), if any: IPv6 sync needs it.
    pub addr6: Option<Ipv6Addr>,
    /// Its MTU.
    pub mtu: u16,
    /// The kernel's index of its TAP (IPv6 multicast names the interface
    /// by it); 0 when unknown.
    pub ifindex: u32,
}

/// The kernel's index of interface `name` (its TAP), from sysfs; 0 when
/// there is none.
#[must_use]
pub fn kernel_ifindex(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

impl SyncIface {
    /// The address sync binds for `ipv6`.
    ///
    /// # Errors
    /// An IPv6 sync on an interface without `address6`.
    fn local(&self, ipv6: bool) -> io::Result<IpAddr> {
        if !ipv6 {
            return Ok(IpAddr::V4(self.addr));
        }
        self.addr6.map(IpAddr::V6).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!(
                    "IPv6 sync needs an IPv6 address (address6) on interface {}",
                    self.name
                ),
            )
        })
    }
}

/// `group`:`port` as a destination: an IPv6 group with the interface's
/// index as its scope (a link-local group needs it).
fn group_dest(group: IpAddr, port: u16, ifindex: u32) -> SocketAddr {
    match group {
        IpAddr::V4(_) => SocketAddr::new(group, port),
        IpAddr::V6(g) => SocketAddr::V6(SocketAddrV6::new(g, port, 0, ifindex)),
    }
}

struct MasterSide {
    cfg: DaemonConfig,
    batcher: Master,
    sock: UdpSocket,
    dests: Vec<SocketAddr>,
    rings: Vec<Arc<SyncRing>>,
    ring_dropped: Vec<u64>,
    next_resync: Option<Instant>,
    last_sent: BTreeMap<IpAddr, Instant>,
}

struct BackupSide {
    cfg: DaemonConfig,
    checker: Backup,
    sock: UdpSocket,
    last_seen: BTreeMap<IpAddr, Instant>,
    /// Where resync requests go (the peers, or the group).
    dests: Vec<SocketAddr>,
    /// Resync requests still to send, and when the next one is due.
    hellos_left: u8,
    next_hello: Instant,
    /// The requests say [`wire::HELLO_RESTARTED`] (rvsd's start-up).
    restarted: bool,
}

/// Resync requests a backup sends when it starts, a second apart (one
/// may meet an unresolved neighbour or a peer still starting).
pub const RESYNC_REQUESTS: u8 = 3;
/// A master resyncs on request at most this often.
pub const RESYNC_REQUEST_MIN_GAP: Duration = Duration::from_secs(1);

/// Both daemons' state (either may run, or both, as the kernel's).
pub struct Engine {
    /// The live settings (`[sync]`, as `rvsadm --start-daemon` changes them).
    pub config: SyncConfig,
    master: Option<MasterSide>,
    backup: Option<BackupSide>,
    epoch: Instant,
    buf: Vec<u8>,
    /// A peer asked for a full resync (an empty message reached the backup).
    resync_requested: bool,
    /// One of those peers had just started ([`wire::HELLO_RESTARTED`]):
    /// the resync includes the sessions held for the peers' local
    /// addresses ([`Self::resync_restores_peers`]).
    peer_restarted: bool,
    last_resync: Option<Instant>,
    /// This box's own FULLNAT local addresses, when they must not overlap
    /// a peer's (active appliances; empty with `follow_kernel_addresses`):
    /// a peer's entry on one of them is refused unless the peer carries
    /// it ([`Conn::carried`]).
    pub own_laddrs: BTreeSet<IpAddr>,
    /// The other appliances' local addresses (`peer_local_addresses`):
    /// entries on them are sent as carried.
    pub peer_laddrs: BTreeSet<IpAddr>,
    /// Own local addresses a peer's entries used (refused), for the
    /// daemon's log; drained by it.
    pub overlaps_seen: Vec<IpAddr>,
    /// Counters.
    pub stats: SyncStats,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("master", &self.master.is_some())
            .field("backup", &self.backup.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Engine {
    /// No daemon running yet, settings `config`.
    #[must_use]
    pub fn new(config: SyncConfig) -> Self {
        Self {
            config,
            master: None,
            backup: None,
            epoch: Instant::now(),
            buf: vec![0; 65_536],
            resync_requested: false,
            peer_restarted: false,
            last_resync: None,
            own_laddrs: BTreeSet::new(),
            peer_laddrs: BTreeSet::new(),
            overlaps_seen: Vec::new(),
            stats: SyncStats::default(),
        }
    }

    /// The daemon settings for `role` on `iface`, from the live settings.
    #[must_use]
    pub fn daemon_config(&self, role: Role, iface: &SyncIface) -> DaemonConfig {
        let mut d = DaemonConfig::new(role, &iface.name, iface.mtu);
        d.sync_id = self.config.sync_id;
        d.maxlen = wire::sync_maxlen(role, self.config.maxlen, iface.mtu, self.config.ipv6());
        d.group = self.config.group;
        d.qlen_max = self.config.qlen_max as usize;
        d.port = self.config.port;
        d.ttl = self.config.ttl;
        d
    }

    /// True if `role`'s daemon runs.
    #[must_use]
    pub fn running(&self, role: Role) -> bool {
        match role {
            Role::Master => self.master.is_some(),
            Role::Backup => self.backup.is_some(),
        }
    }

    /// Starts the master on `iface`, fed by `workers` new rings (returned,
    /// for the workers).
    ///
    /// # Errors
    /// The socket's.
    pub fn start_master(
        &mut self,
        iface: &SyncIface,
        workers: usize,
    ) -> io::Result<Vec<Arc<SyncRing>>> {
        let cfg = self.daemon_config(Role::Master, iface);
        let ipv6 = self.config.ipv6();
        let sock = UdpSocket::bind((iface.local(ipv6)?, 0))?;
        if ipv6 {
            let s = socket2::SockRef::from(&sock);
            s.set_multicast_hops_v6(u32::from(cfg.ttl))?;
            s.set_multicast_loop_v6(false)?;
            if iface.ifindex != 0 {
                s.set_multicast_if_v6(iface.ifindex)?;
            }
        } else {
            sock.set_multicast_ttl_v4(u32::from(cfg.ttl))?;
            sock.set_multicast_loop_v4(false)?;
        }
        if self.config.sock_size > 0 {
            socket2::SockRef::from(&sock).set_send_buffer_size(self.config.sock_size as usize)?;
        }
        sock.set_nonblocking(true)?;
        let dests = if self.config.peers.is_empty() {
            vec![group_dest(cfg.group, cfg.port, iface.ifindex)]
        } else {
            self.config
                .peers
                .iter()
                .map(|p| SocketAddr::new(*p, cfg.port))
                .collect()
        };
        let rings: Vec<_> = (0..workers)
            .map(|_| Arc::new(SyncRing::new(RING_SLOTS)))
            .collect();
        let next_resync = (self.config.resync_interval > 0).then(Instant::now);
        self.master = Some(MasterSide {
            batcher: Master::new(&cfg),
            cfg,
            sock,
            dests,
            ring_dropped: vec![0; workers],
            rings: rings.clone(),
            next_resync,
            last_sent: BTreeMap::new(),
        });
        self.config.master = true;
        Ok(rings)
    }

    /// Starts the backup on `iface`. `restarted`: rvsd has just started
    /// and holds no sessions; its resync requests say so
    /// ([`wire::HELLO_RESTARTED`]).
    ///
    /// # Errors
    /// The socket's.
    pub fn start_backup(&mut self, iface: &SyncIface, restarted: bool) -> io::Result<()> {
        let cfg = self.daemon_config(Role::Backup, iface);
        let ipv6 = self.config.ipv6();
        let sock = match (self.config.group, self.config.peers.is_empty()) {
            (IpAddr::V4(g), true) => {
                let s = UdpSocket::bind((g, cfg.port))?;
                s.join_multicast_v4(&g, &iface.addr)?;
                s
            }
            (IpAddr::V6(g), true) => {
                iface.local(true)?;
                let s = UdpSocket::bind(group_dest(self.config.group, cfg.port, iface.ifindex))?;
                s.join_multicast_v6(&g, iface.ifindex)?;
                s
            }
            (_, false) => UdpSocket::bind((iface.local(ipv6)?, cfg.port))?,
        };
        if self.config.sock_size > 0 {
            socket2::SockRef::from(&sock).set_recv_buffer_size(self.config.sock_size as usize)?;
        }
        sock.set_nonblocking(true)?;
        // Its own resync requests do not come back to it.
        if ipv6 {
            socket2::SockRef::from(&sock).set_multicast_loop_v6(false)?;
        } else {
            sock.set_multicast_loop_v4(false)?;
        }
        let dests = if self.config.peers.is_empty() {
            vec![group_dest(cfg.group, cfg.port, iface.ifindex)]
        } else {
            self.config
                .peers
                .iter()
                .map(|p| SocketAddr::new(*p, cfg.port))
                .collect()
        };
        self.backup = Some(BackupSide {
            checker: Backup::new(&cfg),
            cfg,
            sock,
            last_seen: BTreeMap::new(),
            dests,
            hellos_left: RESYNC_REQUESTS,
            // The first at the next tick.
            next_hello: self.epoch,
            restarted,
        });
        self.config.backup = true;
        Ok(())
    }

    /// The port the backup listens on (the configured one; an ephemeral
    /// one when configured as 0, which tests use).
    #[must_use]
    pub fn backup_port(&self) -> Option<u16> {
        self.backup
            .as_ref()
            .and_then(|b| b.sock.local_addr().ok())
            .map(|a| a.port())
    }

    /// Stops `role`'s daemon (what the master has batched is sent first).
    pub fn stop(&mut self, role: Role) {
        match role {
            Role::Master => {
                self.send_pending(Instant::now());
                if let Some(mut m) = self.master.take() {
                    for d in m.batcher.flush() {
                        send(&mut m, &d, &mut self.stats, Instant::now());
                    }
                }
                self.config.master = false;
            }
            Role::Backup => {
                self.backup = None;
                self.config.backup = false;
            }
        }
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.duration_since(self.epoch).as_millis() as u64
    }

    /// Master: drains the workers' rings into datagrams and sends what is
    /// due (full datagrams at once, a partial one after two seconds).
    pub fn send_pending(&mut self, now: Instant) {
        let now_ms = self.now_ms(now);
        let Some(m) = self.master.as_mut() else {
            return;
        };
        for (i, ring) in m.rings.iter().enumerate() {
            while let Some(r) = ring.pop() {
                m.batcher
                    .offer(&convert::conn_of(&r, &self.peer_laddrs), now_ms);
            }
            let d = ring.dropped();
            self.stats.ring_full += d - m.ring_dropped[i];
            m.ring_dropped[i] = d;
        }
        while let Some(d) = m.batcher.poll_transmit(now_ms) {
            send(m, &d, &mut self.stats, now);
        }
        self.stats.entries_sent = m.batcher.stats.entries;
        self.stats.queue_full = m.batcher.stats.queue_full;
    }

    /// Master: true when a full resync is due, by the interval or because
    /// a peer asked (at most once a [`RESYNC_REQUEST_MIN_GAP`]); the caller
    /// then collects every session and calls [`Self::resync`].
    #[must_use]
    pub fn resync_due(&self, now: Instant) -> bool {
        let Some(m) = self.master.as_ref() else {
            return false;
        };
        let asked = self.resync_requested
            && self
                .last_resync
                .is_none_or(|t| now.duration_since(t) >= RESYNC_REQUEST_MIN_GAP);
        asked || m.next_resync.is_some_and(|t| now >= t)
    }

    /// Backup: sends its resync requests when due (see the module doc): an
    /// empty sync message of its SyncID to the peers or the group.
    fn send_resync_requests(&mut self, now: Instant) {
        let Some(b) = self.backup.as_mut() else {
            return;
        };
        if b.hellos_left == 0 || now < b.next_hello {
            return;
        }
        let mut hello = [
            0,
            b.cfg.sync_id,
            0,
            wire::HEADER_LEN as u8,
            0,
            wire::VERSION,
            0,
            0,
        ];
        if b.restarted {
            hello[wire::SPARE_AT] = wire::HELLO_RESTARTED;
        }
        for d in &b.dests {
            if b.sock.send_to(&hello, d).is_ok() {
                self.stats.resync_requests_sent += 1;
            }
        }
        b.hellos_left -= 1;
        b.next_hello = now + Duration::from_secs(1);
    }

    /// True when the due resync answers a peer that has just started
    /// ([`wire::HELLO_RESTARTED`]): it holds nothing, and the sessions this
    /// box holds for the peers' local addresses (copies of theirs it has
    /// not carried) go with the resync, marked carried, so that the flows
    /// a restarted box's local address draws back find their sessions.
    #[must_use]
    pub fn resync_restores_peers(&self) -> bool {
        self.peer_restarted
    }

    /// Master: sends `records` (every session) at once, as a full resync.
    pub fn resync(&mut self, records: impl IntoIterator<Item = SyncRecord>, now: Instant) {
        let now_ms = self.now_ms(now);
        let interval = u64::from(self.config.resync_interval);
        let Some(m) = self.master.as_mut() else {
            return;
        };
        for r in records {
            m.batcher
                .offer(&convert::conn_of(&r, &self.peer_laddrs), now_ms);
        }
        for d in m.batcher.flush() {
            send(m, &d, &mut self.stats, now);
        }
        self.stats.entries_sent = m.batcher.stats.entries;
        m.next_resync = (interval > 0).then(|| now + Duration::from_secs(interval));
        self.stats.resyncs += 1;
        self.resync_requested = false;
        self.peer_restarted = false;
        self.last_resync = Some(now);
    }

    /// Backup: sends its resync requests when due, reads every waiting
    /// datagram (an empty message from a peer is a resync request for this
    /// box's master); returns the entries to install.
    pub fn receive(&mut self, now: Instant) -> Vec<SyncRecord> {
        self.send_resync_requests(now);
        let mut out = Vec::new();
        let Some(b) = self.backup.as_mut() else {
            return out;
        };
        loop {
            let (n, from) = match b.sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            };
            if !self.config.peers.is_empty() && !self.config.peers.contains(&from.ip()) {
                self.stats.dropped_peer += 1;
                continue;
            }
            let before = b.checker.stats;
            let conns = b.checker.receive(&self.buf[..n]);
            let after = b.checker.stats;
            self.stats.dropped_sync_id += after.other_sync_id - before.other_sync_id;
            self.stats.dropped_malformed += after.malformed - before.malformed;
            self.stats.entries_skipped += after.skipped - before.skipped;
            if after.datagrams > before.datagrams {
                self.stats.datagrams_received += 1;
                self.stats.entries_received += conns.len() as u64;
                b.last_seen.insert(from.ip(), now);
                if n == wire::HEADER_LEN {
                    self.stats.resync_requests_received += 1;
                    self.resync_requested = true;
                    if self.buf[wire::SPARE_AT] & wire::HELLO_RESTARTED != 0 {
                        self.peer_restarted = true;
                    }
                }
            }
            for c in &conns {
                if let Some(ip) = convert::overlap(c, &self.own_laddrs) {
                    self.stats.laddr_overlap += 1;
                    self.overlaps_seen.push(ip);
                    continue;
                }
                match convert::record_of(c) {
                    Ok(r) => out.push(r),
                    Err(_) => {
                        self.stats.entries_skipped += 1;
                        self.stats.entries_received = self.stats.entries_received.saturating_sub(1);
                    }
                }
            }
        }
        out
    }

    /// The last reason a datagram was dropped whole, for the log.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.backup
            .as_ref()
            .and_then(|b| b.checker.last_error.as_ref())
            .map(ToString::to_string)
    }

    /// `ipvsadm -L --daemon`'s lines: the master's, then the backup's.
    #[must_use]
    pub fn daemon_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(m) = &self.master {
            v.push(m.cfg.ipvsadm_line());
        }
        if let Some(b) = &self.backup {
            v.push(b.cfg.ipvsadm_line());
        }
        v
    }

    /// Seconds since the last datagram from (backup) or to (master) each
    /// peer, by role.
    #[must_use]
    pub fn peer_ages(&self, now: Instant) -> Vec<(&'static str, IpAddr, f64)> {
        let mut v = Vec::new();
        if let Some(m) = &self.master {
            for (ip, t) in &m.last_sent {
                v.push(("master", *ip, now.duration_since(*t).as_secs_f64()));
            }
        }
        if let Some(b) = &self.backup {
            for (ip, t) in &b.last_seen {
                v.push(("backup", *ip, now.duration_since(*t).as_secs_f64()));
            }
        }
        v
    }

    /// The counters and peer ages in Prometheus's text format.
    #[must_use]
    pub fn metrics_text(&self, now: Instant) -> String {
        let s = &self.stats;
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, rows: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP rvs_sync_{name} {help}");
            let _ = writeln!(out, "# TYPE rvs_sync_{name} counter");
            for (labels, v) in rows {
                let _ = writeln!(out, "rvs_sync_{name}{labels} {v}");
            }
        };
        counter(
            "entries_sent_total",
            "Connection entries the master put into sync datagrams.",
            &[("", s.entries_sent)],
        );
        counter(
            "datagrams_sent_total",
            "Sync datagrams the master sent.",
            &[("", s.datagrams_sent)],
        );
        counter(
            "entries_received_total",
            "Connection entries the backup accepted.",
            &[("", s.entries_received)],
        );
        counter(
            "datagrams_received_total",
            "Sync datagrams the backup accepted.",
            &[("", s.datagrams_received)],
        );
        counter(
            "dropped_total",
            "Sync datagrams or entries dropped, by reason.",
            &[
                ("{reason=\"wrong_syncid\"}", s.dropped_sync_id),
                ("{reason=\"malformed\"}", s.dropped_malformed),
                ("{reason=\"unconfigured_peer\"}", s.dropped_peer),
                ("{reason=\"entry_skipped\"}", s.entries_skipped),
                ("{reason=\"ring_full\"}", s.ring_full),
                ("{reason=\"queue_full\"}", s.queue_full),
                ("{reason=\"send_error\"}", s.send_errors),
                ("{reason=\"unknown_service\"}", s.install.unknown),
                ("{reason=\"owner_mismatch\"}", s.install.owner_mismatch),
                ("{reason=\"conflict\"}", s.install.conflict),
                ("{reason=\"laddr_overlap\"}", s.laddr_overlap),
            ],
        );
        counter(
            "installed_total",
            "Synced entries installed (new) or updated in the workers.",
            &[
                ("{how=\"new\"}", s.install.installed),
                ("{how=\"updated\"}", s.install.updated),
            ],
        );
        counter(
            "resyncs_total",
            "Full resyncs the master sent.",
            &[("", s.resyncs)],
        );
        counter(
            "resync_requests_total",
            "Resync requests (empty sync messages) the backup sent and received.",
            &[
                ("{direction=\"sent\"}", s.resync_requests_sent),
                ("{direction=\"received\"}", s.resync_requests_received),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP rvs_sync_daemon_running Whether the sync daemon of a role runs."
        );
        let _ = writeln!(out, "# TYPE rvs_sync_daemon_running gauge");
        for (role, on) in [
            ("master", self.master.is_some()),
            ("backup", self.backup.is_some()),
        ] {
            let _ = writeln!(
                out,
                "rvs_sync_daemon_running{{role=\"{role}\"}} {}",
                u8::from(on)
            );
        }
        let _ = writeln!(
            out,
            "# HELP rvs_sync_last_sync_age_seconds Seconds since the last sync datagram to (master) or from (backup) a peer."
        );
        let _ = writeln!(out, "# TYPE rvs_sync_last_sync_age_seconds gauge");
        for (role, ip, age) in self.peer_ages(now) {
            let _ = writeln!(
                out,
                "rvs_sync_last_sync_age_seconds{{role=\"{role}\",peer=\"{ip}\"}} {age:.3}"
            );
        }
        out
    }
}

fn send(m: &mut MasterSide, d: &[u8], stats: &mut SyncStats, now: Instant) {
    for dest in &m.dests {
        match m.sock.send_to(d, dest) {
            Ok(_) => {
                stats.datagrams_sent += 1;
                m.last_sent.insert(dest.ip(), now);
            }
            Err(_) => stats.send_errors += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::session::Endpoint;
    use dataplane::sync_feed::RecordKind;
    use dataplane::tables::Forward;

    fn lo() -> SyncIface {
        SyncIface {
            name: "lo".into(),
            addr: Ipv4Addr::LOCALHOST,
            addr6: Some(Ipv6Addr::LOCALHOST),
            mtu: 1500,
            ifindex: kernel_ifindex("lo"),
        }
    }

    fn rec(port: u16) -> SyncRecord {
        SyncRecord {
            kind: RecordKind::Conn,
            proto: 6,
            forward: Forward::FullNat,
            state: 1,
            client: Endpoint::new([10, 77, 0, 10], port),
            vip: Endpoint::new([10, 77, 0, 100], 80),
            rs: Endpoint::new([10, 77, 0, 11], 8080),
            laddr: Some(Endpoint::new([10, 77, 0, 200], 5000 + port % 100)),
            timeout_s: 900,
            client_addr: dataplane::session::ClientAddress::None,
            ext: Default::default(),
            isn_off: 0,
        }
    }

    /// A master and a backup over loopback (unicast), as two boxes would be.
    fn pair(master_id: u8, backup_id: u8) -> (Engine, Engine, Vec<Arc<SyncRing>>, u16) {
        let cfg = |id, port| SyncConfig {
            sync_id: id,
            port,
            peers: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            resync_interval: 0,
            ..SyncConfig::default()
        };
        let mut b = Engine::new(cfg(backup_id, 0));
        b.start_backup(&lo(), false).unwrap();
        let port = b.backup_port().unwrap();
        let mut m = Engine::new(cfg(master_id, port));
        let rings = m.start_master(&lo(), 2).unwrap();
        (m, b, rings, port)
    }

    fn wait_for(b: &mut Engine, n: usize) -> Vec<SyncRecord> {
        let mut got = Vec::new();
        for _ in 0..200 {
            got.extend(b.receive(Instant::now()));
            if got.len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        got
    }

    #[test]
    fn worker_records_reach_the_backup_over_udp() {
        let (mut m, mut b, rings, port) = pair(5, 5);
        for p in 0..40 {
            rings[usize::from(p % 2)].push(&rec(p));
        }
        let t0 = Instant::now();
        m.send_pending(t0);
        assert_eq!(m.stats.datagrams_sent, 1, "33 entries fill one datagram");
        m.send_pending(t0 + Duration::from_secs(2));
        assert_eq!(m.stats.datagrams_sent, 2, "the rest after two seconds");
        let got = wait_for(&mut b, 40);
        assert_eq!(got.len(), 40);
        let mut ports: Vec<u16> = got.iter().map(|r| r.client.port).collect();
        ports.sort_unstable();
        assert_eq!(ports, (0..40).collect::<Vec<_>>());
        assert_eq!(got.iter().find(|r| r.client.port == 7), Some(&rec(7)));
        assert_eq!(b.stats.entries_received, 40);
        assert_eq!(
            m.daemon_lines(),
            vec![format!("master sync daemon (mcast=lo, syncid=5, maxlen=1472, group=224.0.0.81, port={port}, ttl=1)")]
        );
        assert!(b
            .metrics_text(Instant::now())
            .contains("rvs_sync_last_sync_age_seconds{role=\"backup\",peer=\"127.0.0.1\"}"));
    }

    #[test]
    fn ipv6_peers_carry_ipv6_sessions() {
        let cfg = |port| SyncConfig {
            sync_id: 6,
            port,
            peers: vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
            resync_interval: 0,
            ..SyncConfig::default()
        };
        let mut b = Engine::new(cfg(0));
        b.start_backup(&lo(), false).unwrap();
        let port = b.backup_port().unwrap();
        let mut m = Engine::new(cfg(port));
        let rings = m.start_master(&lo(), 1).unwrap();
        let v6 = |s: &str, port| {
            Endpoint::at(
                dataplane::addr::Addr::v6(s.parse::<Ipv6Addr>().unwrap().octets()),
                port,
            )
        };
        let recs: Vec<SyncRecord> = (0..30)
            .map(|i| SyncRecord {
                client: v6("fd77::10", 40000 + i),
                vip: v6("fd77::100", 80),
                rs: v6("fd77::11", 8080),
                laddr: Some(v6("fd77::200", 5000 + i)),
                ..rec(i)
            })
            .collect();
        for r in &recs {
            rings[0].push(r);
        }
        let t0 = Instant::now();
        m.send_pending(t0);
        m.send_pending(t0 + Duration::from_secs(2));
        // 72-byte entries plus the 20-byte local option, in 1452-byte
        // datagrams (1500 less 48 bytes of IPv6 and UDP headers).
        assert!(m.daemon_lines()[0].contains("maxlen=1452"));
        assert_eq!(m.stats.datagrams_sent, 2);
        let got = wait_for(&mut b, 30);
        assert_eq!(got, recs);
        assert!(b
            .metrics_text(Instant::now())
            .contains("rvs_sync_last_sync_age_seconds{role=\"backup\",peer=\"::1\"}"));
        // An interface without an IPv6 address cannot speak IPv6 sync.
        let mut no6 = Engine::new(cfg(port));
        let e = no6
            .start_master(
                &SyncIface {
                    addr6: None,
                    ..lo()
                },
                1,
            )
            .unwrap_err();
        assert!(e.to_string().contains("address6"), "{e}");
    }

    #[test]
    fn a_starting_backup_asks_and_the_peers_master_resyncs_at_once() {
        let a_ip = Ipv4Addr::new(127, 0, 0, 1);
        let b_ip = Ipv4Addr::new(127, 0, 0, 2);
        let iface = |addr| SyncIface { addr, ..lo() };
        let cfg = |peer: Ipv4Addr, port| SyncConfig {
            sync_id: 9,
            port,
            peers: vec![IpAddr::V4(peer)],
            resync_interval: 3600,
            ..SyncConfig::default()
        };
        // Box A: both daemons, as the lab runs them.
        let mut a = Engine::new(cfg(b_ip, 0));
        a.start_backup(&iface(a_ip), false).unwrap();
        let port = a.backup_port().unwrap();
        a.config.port = port;
        a.start_master(&iface(a_ip), 1).unwrap();
        let t0 = Instant::now();
        a.resync(Vec::new(), t0);
        assert!(!a.resync_due(t0), "the interval is an hour");
        // Box B's backup starts: it asks A.
        let mut b = Engine::new(cfg(a_ip, port));
        b.start_backup(&iface(b_ip), false).unwrap();
        let t1 = Instant::now();
        assert!(b.receive(t1).is_empty());
        assert_eq!(b.stats.resync_requests_sent, 1);
        let mut asked = false;
        for _ in 0..200 {
            assert!(a.receive(t0 + Duration::from_secs(2)).is_empty());
            if a.resync_due(t0 + Duration::from_secs(2)) {
                asked = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(asked, "A's master resyncs on B's request");
        assert!(
            !a.resync_restores_peers(),
            "B's backup did not start with rvsd: B holds its sessions"
        );
        assert_eq!(a.stats.resync_requests_received, 1);
        assert_eq!(a.stats.entries_received, 0);
        a.resync(Vec::new(), t0 + Duration::from_secs(2));
        assert!(!a.resync_due(t0 + Duration::from_secs(2)));
        // Three requests a second apart, then no more.
        for s in 1..5 {
            b.receive(t1 + Duration::from_secs(s));
        }
        assert_eq!(b.stats.resync_requests_sent, 3);
        assert!(a
            .metrics_text(Instant::now())
            .contains("rvs_sync_resync_requests_total{direction=\"received\"} 1"));
        // B restarts (rvsd's start-up): its request says so, and A's next
        // resync gives B back the sessions A holds for it.
        for _ in 0..50 {
            a.receive(t0 + Duration::from_secs(2));
            std::thread::sleep(Duration::from_millis(2));
        }
        b.stop(Role::Backup);
        b.start_backup(&iface(b_ip), true).unwrap();
        b.receive(Instant::now());
        let t4 = t0 + Duration::from_secs(4);
        let mut restores = false;
        for _ in 0..200 {
            a.receive(t4);
            if a.resync_due(t4) {
                restores = a.resync_restores_peers();
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(restores, "A's resync answers a restarted peer");
        a.resync(Vec::new(), t4);
        assert!(!a.resync_restores_peers(), "once");
    }

    #[test]
    fn a_full_resync_sends_everything_at_once() {
        let (mut m, mut b, _rings, _) = pair(0, 0);
        m.resync((0..100).map(rec), Instant::now());
        assert_eq!(m.stats.datagrams_sent, 4);
        assert_eq!(m.stats.resyncs, 1);
        assert_eq!(wait_for(&mut b, 100).len(), 100);
    }

    #[test]
    fn bad_datagrams_are_counted_and_nothing_is_installed() {
        let (mut m, mut b, rings, port) = pair(3, 4);
        rings[0].push(&rec(1));
        m.send_pending(Instant::now());
        m.stop(Role::Master);
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        // The header says 100 bytes; the datagram has 8.
        s.send_to(&[0, 4, 0, 100, 0, 1, 0, 0], (Ipv4Addr::LOCALHOST, port))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(b.receive(Instant::now()).is_empty());
        assert_eq!(b.stats.dropped_sync_id, 1);
        assert_eq!(b.stats.dropped_malformed, 1);
        assert!(b.last_error().is_some());
        // From an address not in `peers`.
        b.config.peers = vec![IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))];
        s.send_to(&[0, 4, 0, 8, 0, 1, 0, 0], (Ipv4Addr::LOCALHOST, port))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(b.receive(Instant::now()).is_empty());
        assert_eq!(b.stats.dropped_peer, 1);
        assert_eq!(b.stats.entries_received, 0);
    }

    #[test]
    fn a_full_ring_is_counted() {
        let (mut m, _b, rings, _) = pair(0, 0);
        for p in 0..(RING_SLOTS + 3) {
            rings[0].push(&rec(p as u16));
        }
        m.send_pending(Instant::now());
        assert_eq!(m.stats.ring_full, 3);
    }
}
