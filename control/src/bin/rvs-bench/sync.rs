//! The connection-sync scenario of issue #15 (`--sync`): rvsd's own sync
//! engine (`rvs_control::sync::engine`: worker rings drained, entries
//! encoded and batched, `sendto`, `recvfrom`, the backup's checks, entries
//! back to records) as a master and a backup over loopback UDP, unicast,
//! on the kernel's default `sync_maxlen`; and a backup worker installing
//! what it received (`Pipeline::install_synced`). No DPDK: the forwarding
//! cost with the feed on and off is the loop method's (`cycle`).
//!
//! Figures: the entries and datagrams per second the master sends alone
//! (its socket's backlog is dropped by the kernel, as a backup that cannot
//! keep up would), then with the backup reading at the same time (each on
//! its own thread: what the pair sustains, and what the backup lost), the
//! bytes on the wire per connection entry (the IP and UDP headers' share
//! included), and the entries per second one worker installs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dataplane::pipeline::Pipeline;
use dataplane::session::{ClientAddress, Endpoint};
use dataplane::sync_feed::{RecordKind, SyncRecord};
use dataplane::tables::Forward;
use dataplane::time::Millis;
use rvs_control::config::sync::SyncConfig;
use rvs_control::sync::convert::conn_of;
use rvs_control::sync::engine::{kernel_ifindex, Engine, SyncIface};
use rvs_control::sync::wire::{MessageBuilder, Role};

use crate::gen::{client_tuple, laddr_ip, neigh, rs, tables, LPORT, N_LADDR, VIP};
use crate::Res;

/// One sync case's figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SyncRow {
    /// Entries in a full datagram, and its UDP payload size.
    pub per_datagram: usize,
    pub datagram_bytes: usize,
    /// Bytes on the wire per entry: the datagram, its UDP and IPv4 headers, shared.
    pub entry_bytes: f64,
    /// The master alone: entries/s and datagrams/s sent.
    pub alone: (f64, f64),
    /// Master and backup together: entries/s sent, entries/s received.
    pub sent: f64,
    pub received: f64,
    /// Datagrams/s received.
    pub received_dgrams: f64,
    /// Entries sent and not received (the backup's socket overflowed), %.
    pub lost_pct: f64,
    /// Entries/s one worker installs (new sessions).
    pub install: f64,
}

/// Record `i` of a case: a distinct client, the generator's VIP and servers,
/// FULLNAT's local address and port distinct too (so all install).
fn record(i: u32, forward: Forward) -> SyncRecord {
    SyncRecord {
        kind: RecordKind::Conn,
        proto: 6,
        forward,
        state: 1,
        client: client_tuple(i),
        vip: VIP,
        rs: rs(i).0,
        laddr: (forward == Forward::FullNat)
            .then(|| Endpoint::new(laddr_ip(i % N_LADDR), LPORT.0 + (i / N_LADDR) as u16)),
        timeout_s: 900,
        client_addr: ClientAddress::None,
        ext: Default::default(),
        isn_off: 0,
    }
}

fn lo() -> SyncIface {
    SyncIface {
        name: "lo".into(),
        addr: Ipv4Addr::LOCALHOST,
        addr6: Some(Ipv6Addr::LOCALHOST),
        mtu: 1500,
        ifindex: kernel_ifindex("lo"),
    }
}

/// Distinct records a case cycles through (all install on one worker).
const RECORDS: u32 = 200_000;

/// A master and a backup engine over loopback, as two boxes.
fn pair() -> Res<(
    Engine,
    Engine,
    std::sync::Arc<dataplane::sync_feed::SyncRing>,
)> {
    let cfg = |port| SyncConfig {
        sync_id: 15,
        port,
        peers: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        resync_interval: 0,
        ..SyncConfig::default()
    };
    let mut b = Engine::new(cfg(0));
    b.start_backup(&lo(), false)?;
    let port = b.backup_port().ok_or("the backup has no port")?;
    let mut m = Engine::new(cfg(port));
    let ring = m.start_master(&lo(), 1)?.remove(0);
    Ok((m, b, ring))
}

/// The master's loop for `wall`: a worker's share of records into the ring,
/// then what rvsd's control loop does (drain, encode, batch, send). Returns
/// (entries, datagrams) sent.
fn master_for(
    m: &mut Engine,
    ring: &dataplane::sync_feed::SyncRing,
    recs: &[SyncRecord],
    wall: Duration,
) -> (u64, u64) {
    let (e0, d0) = (m.stats.entries_sent, m.stats.datagrams_sent);
    let t = Instant::now();
    let mut i = 0usize;
    while t.elapsed() < wall {
        for _ in 0..1024 {
            ring.push(&recs[i]);
            i = (i + 1) % recs.len();
        }
        m.send_pending(Instant::now());
    }
    (m.stats.entries_sent - e0, m.stats.datagrams_sent - d0)
}

/// One case (FULLNAT or NAT), each phase `wall` long.
pub(crate) fn sync_run(forward: Forward, wall: Duration) -> Res<SyncRow> {
    let recs: Vec<SyncRecord> = (0..RECORDS).map(|i| record(i, forward)).collect();
    let mut row = SyncRow::default();
    // A full datagram at the master's default sync_maxlen (1472 over IPv4).
    let mut mb = MessageBuilder::new(
        15,
        rvs_control::sync::wire::sync_maxlen(Role::Master, None, 1500, false),
    );
    let mut n = 0;
    while mb.push(&conn_of(&recs[n], &Default::default())).is_ok() {
        n += 1;
    }
    let d = mb.take().ok_or("no datagram")?;
    row.per_datagram = n;
    row.datagram_bytes = d.len();
    row.entry_bytes = (d.len() + 8 + 20) as f64 / n as f64;

    // The master alone (nobody reads the backup's socket).
    let (mut m, mut b, ring) = pair()?;
    let (e, dg) = master_for(&mut m, &ring, &recs, wall);
    let s = wall.as_secs_f64();
    row.alone = (e as f64 / s, dg as f64 / s);
    drop((m, b, ring));

    // Together: the backup reads on its own thread while the master sends.
    let (mut m, b2, ring) = pair()?;
    b = b2;
    let done = AtomicBool::new(false);
    let (sent, (got, dgrams, took)) = std::thread::scope(|sc| {
        let backup = sc.spawn(|| {
            let (e0, d0) = (b.stats.entries_received, b.stats.datagrams_received);
            let t = Instant::now();
            let mut idle_since: Option<Instant> = None;
            loop {
                let got = b.receive(Instant::now());
                if got.is_empty() {
                    if done.load(Ordering::Acquire) {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_millis(200) {
                            break;
                        }
                    }
                    std::hint::spin_loop();
                } else {
                    idle_since = None;
                }
            }
            (
                b.stats.entries_received - e0,
                b.stats.datagrams_received - d0,
                t.elapsed().as_secs_f64() - 0.2,
            )
        });
        let sent = master_for(&mut m, &ring, &recs, wall);
        done.store(true, Ordering::Release);
        (sent, backup.join().unwrap_or((0, 0, 1.0)))
    });
    row.sent = sent.0 as f64 / s;
    row.received = got as f64 / took.max(1e-3);
    row.received_dgrams = dgrams as f64 / took.max(1e-3);
    row.lost_pct = 100.0 * sent.0.saturating_sub(got) as f64 / (sent.0.max(1)) as f64;

    // One backup worker installing new sessions (the whole table refilled
    // each round; the records arrive as control hands them on).
    let mut t = (*tables(1)).clone();
    for rs in &mut t.services[0].servers {
        rs.forward = forward;
    }
    let t = std::sync::Arc::new(t);
    let mut installed = 0u64;
    let mut spent = 0.0;
    while spent < s {
        let mut p = Pipeline::new(t.clone(), neigh(), RECORDS, 1, 0, 1);
        let t0 = Instant::now();
        for r in &recs {
            let _ = p.install_synced(r, Millis(1_000));
        }
        spent += t0.elapsed().as_secs_f64();
        installed += u64::from(p.sessions().len() as u32);
        if p.sessions().len() != recs.len() {
            return Err(format!(
                "{} of {} synced sessions installed",
                p.sessions().len(),
                recs.len()
            )
            .into());
        }
    }
    row.install = installed as f64 / spent;
    Ok(row)
}
