//! The sync daemons' state, sans-IO: what `--start-daemon` configures and
//! `-L --daemon` prints ([`DaemonConfig`]), the master's batching and
//! flushing ([`Master`]: entries go out when a datagram is full, or at the
//! latest two seconds after its first entry, as the kernel's
//! `IPVS_SYNC_FLUSH_TIME`), and the backup's filtering and accounting
//! ([`Backup`]: SyncID check, counted drops). Sockets, timers and the
//! worker feed are the caller's.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::wire::{self, Conn, MessageBuilder, PushError, Role, WireError};

/// How long an entry may wait in a half-full datagram (the kernel's
/// `IPVS_SYNC_FLUSH_TIME`, two seconds).
pub const FLUSH_MS: u64 = 2_000;
/// Full datagrams queued for sending at most by default; more are dropped
/// and counted (the kernel's `sync_qlen_max`, `[sync] sync_qlen_max`).
pub const QUEUE_MAX: usize = 4096;

/// One daemon's configuration, as ipvsadm's `--start-daemon` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Master or backup.
    pub role: Role,
    /// `--mcast-interface`.
    pub mcast_ifn: String,
    /// `--syncid` (0..=255; a backup with 0 takes every SyncID).
    pub sync_id: u8,
    /// `--sync-maxlen`, or the default for the role and interface.
    pub maxlen: usize,
    /// `--mcast-group`.
    pub group: IpAddr,
    /// `--mcast-port`.
    pub port: u16,
    /// `--mcast-ttl`.
    pub ttl: u8,
    /// `sync_qlen_max`: full datagrams a master queues at most.
    pub qlen_max: usize,
}

impl DaemonConfig {
    /// The configuration with the kernel's defaults for what is not given.
    #[must_use]
    pub fn new(role: Role, mcast_ifn: &str, dev_mtu: u16) -> Self {
        Self {
            role,
            mcast_ifn: mcast_ifn.to_string(),
            sync_id: 0,
            maxlen: wire::sync_maxlen(role, None, dev_mtu, false),
            group: IpAddr::V4(wire::SYNC_GROUP_V4),
            port: wire::SYNC_PORT,
            ttl: 1,
            qlen_max: QUEUE_MAX,
        }
    }

    /// The line `ipvsadm -L --daemon` prints for this daemon (ipvsadm 1.31's
    /// `list_daemon`).
    #[must_use]
    pub fn ipvsadm_line(&self) -> String {
        let kind = match self.role {
            Role::Master => "master",
            Role::Backup => "backup",
        };
        let mut s = format!(
            "{kind} sync daemon (mcast={}, syncid={}",
            self.mcast_ifn, self.sync_id
        );
        if self.maxlen > 0 {
            let _ = write!(s, ", maxlen={}", self.maxlen);
        }
        let _ = write!(s, ", group={}", self.group);
        if self.port > 0 {
            let _ = write!(s, ", port={}", self.port);
        }
        if self.ttl > 0 {
            let _ = write!(s, ", ttl={}", self.ttl);
        }
        s.push(')');
        s
    }
}

/// A master's counters (metrics and `--stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MasterStats {
    /// Entries put into datagrams.
    pub entries: u64,
    /// Datagrams handed out for sending.
    pub datagrams: u64,
    /// Entries that cannot be encoded (never sent).
    pub invalid: u64,
    /// Datagrams dropped because the send queue was full.
    pub queue_full: u64,
}

/// The master side: batches entries into datagrams.
#[derive(Debug)]
pub struct Master {
    builder: MessageBuilder,
    first_entry_ms: Option<u64>,
    queue: VecDeque<Vec<u8>>,
    qlen_max: usize,
    /// Counters.
    pub stats: MasterStats,
}

impl Master {
    /// A master for `config`.
    #[must_use]
    pub fn new(config: &DaemonConfig) -> Self {
        Self {
            builder: MessageBuilder::new(config.sync_id, config.maxlen),
            first_entry_ms: None,
            queue: VecDeque::new(),
            qlen_max: config.qlen_max.max(1),
            stats: MasterStats::default(),
        }
    }

    /// Adds one entry; a datagram it fills is queued for sending.
    pub fn offer(&mut self, conn: &Conn, now_ms: u64) {
        match self.builder.push(conn) {
            Ok(()) => {}
            Err(PushError::Invalid(_)) => {
                self.stats.invalid += 1;
                return;
            }
            Err(PushError::Full) => {
                self.queue_current();
                if self.builder.push(conn).is_err() {
                    self.stats.invalid += 1;
                    return;
                }
            }
        }
        self.stats.entries += 1;
        self.first_entry_ms.get_or_insert(now_ms);
    }

    fn queue_current(&mut self) {
        if let Some(d) = self.builder.take() {
            if self.queue.len() >= self.qlen_max {
                self.stats.queue_full += 1;
            } else {
                self.queue.push_back(d);
            }
        }
        self.first_entry_ms = None;
    }

    /// The next datagram to send now: a full one, else the current one once
    /// its first entry waited [`FLUSH_MS`].
    pub fn poll_transmit(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        if self.queue.is_empty()
            && self
                .first_entry_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= FLUSH_MS)
        {
            self.queue_current();
        }
        let d = self.queue.pop_front()?;
        self.stats.datagrams += 1;
        Some(d)
    }

    /// Everything pending, at once (a full resync's end, or a stop).
    pub fn flush(&mut self) -> Vec<Vec<u8>> {
        self.queue_current();
        self.stats.datagrams += self.queue.len() as u64;
        self.queue.drain(..).collect()
    }
}

/// A backup's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupStats {
    /// Datagrams accepted.
    pub datagrams: u64,
    /// Entries handed on for installing.
    pub entries: u64,
    /// Datagrams of another SyncID, ignored.
    pub other_sync_id: u64,
    /// Datagrams dropped whole (framing errors).
    pub malformed: u64,
    /// Entries skipped (unknown mandatory option, protocol, state).
    pub skipped: u64,
}

/// The backup side: checks and counts what arrives.
#[derive(Debug, Clone)]
pub struct Backup {
    sync_id: u8,
    /// Counters.
    pub stats: BackupStats,
    /// The last reason a datagram was dropped whole, for the log.
    pub last_error: Option<WireError>,
}

impl Backup {
    /// A backup for `config`.
    #[must_use]
    pub fn new(config: &DaemonConfig) -> Self {
        Self {
            sync_id: config.sync_id,
            stats: BackupStats::default(),
            last_error: None,
        }
    }

    /// The entries to install from one datagram (none if it is dropped).
    pub fn receive(&mut self, datagram: &[u8]) -> Vec<Conn> {
        match wire::parse(datagram) {
            Ok(m) if self.sync_id != 0 && m.sync_id != self.sync_id => {
                self.stats.other_sync_id += 1;
                Vec::new()
            }
            Ok(m) => {
                self.stats.datagrams += 1;
                self.stats.entries += m.conns.len() as u64;
                self.stats.skipped += m.skipped.len() as u64;
                m.conns
            }
            Err(e) => {
                self.stats.malformed += 1;
                self.last_error = Some(e);
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::wire::flags;

    fn conn(port: u16) -> Conn {
        Conn {
            protocol: 6,
            flags: flags::MASQ,
            state: 1,
            client: format!("10.77.0.10:{port}").parse().unwrap(),
            vip: "10.77.0.100:80".parse().unwrap(),
            dest: "10.77.0.11:80".parse().unwrap(),
            fwmark: 0,
            timeout_s: 900,
            seq: None,
            pe: None,
            local: Some("10.77.0.200:2000".parse().unwrap()),
            session: None,
            syn_proxy: None,
            carried: false,
            isn_off: 0,
        }
    }

    #[test]
    fn ipvsadm_prints_what_the_kernel_reports() {
        let mut c = DaemonConfig::new(Role::Master, "eth1", 1500);
        c.sync_id = 7;
        assert_eq!(
            c.ipvsadm_line(),
            "master sync daemon (mcast=eth1, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
        );
        let b = DaemonConfig::new(Role::Backup, "eth1", 9000);
        assert_eq!(
            b.ipvsadm_line(),
            "backup sync daemon (mcast=eth1, syncid=0, maxlen=8972, group=224.0.0.81, port=8848, ttl=1)"
        );
    }

    #[test]
    fn a_master_sends_full_datagrams_at_once_and_a_partial_one_after_two_seconds() {
        let cfg = DaemonConfig::new(Role::Master, "eth1", 1500);
        let mut m = Master::new(&cfg);
        for p in 0..50 {
            m.offer(&conn(p), 1_000);
        }
        // 44 bytes per entry: 33 fill the first datagram.
        let first = m
            .poll_transmit(1_000)
            .expect("a full datagram goes at once");
        assert_eq!(wire::parse(&first).unwrap().conns.len(), 33);
        assert!(m.poll_transmit(1_500).is_none(), "the rest waits");
        let rest = m.poll_transmit(3_000).expect("flushed after 2 s");
        assert_eq!(wire::parse(&rest).unwrap().conns.len(), 17);
        assert!(m.poll_transmit(10_000).is_none());
        assert_eq!(
            m.stats,
            MasterStats {
                entries: 50,
                datagrams: 2,
                invalid: 0,
                queue_full: 0
            }
        );
    }

    #[test]
    fn a_backup_takes_its_sync_id_counts_the_rest_and_survives_garbage() {
        let mut cfg = DaemonConfig::new(Role::Master, "eth1", 1500);
        cfg.sync_id = 3;
        let mut m = Master::new(&cfg);
        m.offer(&conn(1), 0);
        m.offer(&conn(2), 0);
        let d = m.flush().pop().unwrap();

        let mut any = Backup::new(&DaemonConfig::new(Role::Backup, "eth1", 1500));
        assert_eq!(any.receive(&d).len(), 2, "syncid 0 takes every SyncID");
        let mut bcfg = DaemonConfig::new(Role::Backup, "eth1", 1500);
        bcfg.sync_id = 4;
        let mut other = Backup::new(&bcfg);
        assert!(other.receive(&d).is_empty());
        assert_eq!(other.stats.other_sync_id, 1);
        bcfg.sync_id = 3;
        let mut same = Backup::new(&bcfg);
        assert_eq!(same.receive(&d), vec![conn(1), conn(2)]);
        assert!(same.receive(&d[..d.len() - 1]).is_empty());
        assert_eq!(same.stats.malformed, 1);
        assert!(matches!(same.last_error, Some(WireError::Size { .. })));
        assert_eq!(same.stats.entries, 2);
    }
}
