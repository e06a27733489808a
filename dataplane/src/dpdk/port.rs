//! Ethernet ports and their queues: [`Port`], [`RxQueue`], [`TxQueue`].
//!
//! A [`Port`] is the control-side owner of one ethdev: it configures it,
//! starts and stops it, and reads its MAC, link and counters. Per-packet
//! work goes through queue handles instead:
//!
//! * [`Port::rx_queue`]/[`Port::tx_queue`] hand out at most one live handle
//!   per `(port, direction, queue)`; PMD burst functions are not thread-safe
//!   per queue, so this is what keeps two lcores off the same queue. A
//!   handle is `Send` and is meant to be moved into the one worker that
//!   polls it; dropping it releases the queue.
//! * [`Port::stop`] refuses while any handle is alive, and dropping a `Port`
//!   only stops the device when no handle is alive (otherwise it leaves it
//!   running and keeps it claimed forever): a worker is never inside a
//!   burst call while its device is torn down.
//! * A port id can be owned by one `Port` at a time (process-wide claim
//!   bitmap), so two `Port` values never hand out handles for one device.
//!
//! Bursts on a configured-but-not-started port are harmless: DPDK routes
//! them to dummy functions that return 0.
//!
//! Configuration is deliberately plain: no offloads, default queue
//! thresholds, RSS over IP/TCP/UDP (DPDK's default key) when more than one
//! rx queue is asked for and the device supports it. Flow steering belongs
//! in a separate `flow` module.

use std::ffi::{c_char, CStr, CString};
use std::fmt;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dpdk_sys as sys;

use super::batch::{burst_u16, MbufBatch};
use super::eal::eal_ready;
use super::error::DpdkErrno;
use super::mempool::Mempool;

/// An ethdev port number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// A queue number within a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queue {}", self.0)
    }
}

const _: () = assert!(sys::RTE_MAX_ETHPORTS <= 64, "claim bitmap is a u64");

/// Port ids currently owned by a `Port` value.
static CLAIMED_PORTS: AtomicU64 = AtomicU64::new(0);

/// Port errors. Each DPDK failure carries the port and DPDK's errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// EAL has not been initialised yet.
    #[error("eal is not initialised")]
    EalNotInitialised,
    /// The device name contains a NUL byte.
    #[error("invalid device name {name:?}")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No port has this device name.
    #[error("no port named {name:?}: {errno}")]
    NotFound {
        /// The name given.
        name: String,
        /// DPDK's return code.
        errno: DpdkErrno,
    },
    /// The port id does not name an attached device.
    #[error("{port} is not a valid port")]
    InvalidPort {
        /// The port.
        port: PortId,
    },
    /// Another `Port` value already owns this port.
    #[error("{port} is already configured by another owner")]
    AlreadyConfigured {
        /// The port.
        port: PortId,
    },
    /// Queue counts outside `1..=max` for this device.
    #[error(
        "{port}: {rx} rx / {tx} tx queues requested, device supports 1..={max_rx} / 1..={max_tx}"
    )]
    QueueCount {
        /// The port.
        port: PortId,
        /// Requested rx queues.
        rx: u16,
        /// Requested tx queues.
        tx: u16,
        /// Device maximum rx queues.
        max_rx: u16,
        /// Device maximum tx queues.
        max_tx: u16,
    },
    /// `rte_eth_dev_info_get` failed.
    #[error("cannot read device info of {port}: {errno}")]
    Info {
        /// The port.
        port: PortId,
        /// DPDK's return code.
        errno: DpdkErrno,
    },
    /// `rte_eth_dev_configure` or descriptor adjustment failed.
    #[error("cannot configure {port}: {errno}")]
    Configure {
        /// The port.
        port: PortId,
        /// DPDK's return code.
        errno: DpdkErrno,
    },
    /// `rte_eth_rx_queue_setup` failed.
    #[error("cannot set up rx {queue} of {port}: {errno}")]
    RxQueueSetup {
        /// The port.
        port: PortId,
        /// The queue.
        queue: QueueId,
        /// DPDK's return code.
        errno: DpdkErrno,
    },
    /// `rte_eth_tx_queue_setup` failed.
    #[error("cannot set up tx {queue} of {port}: {errno}")]
    TxQueueSetup {
        /// The port.
        port: PortId,
        /// The queue.
        queue: QueueId,
        /// DPDK's return code.
        errno: DpdkErrno,
    },
    /// `rte_eth_dev_start` failed.
    #[error("cannot start {port}: {errno}")]
    Start {
        /// The port.
        port: PortId,
        /// DPDK's return code.
        errno: DpdkErrno,
    },
    /// `rte_eth_dev_stop` failed.
    #[error("cannot stop {port}: {errno}")]
    Stop {
        /// The port.
        port: PortId,
        /// DPDK's return code.
        errno: DpdkErrno,
    },
    /// Queue handles are still alive, so the port cannot be stopped.
    #[error("{port} still has queue handles in use")]
    QueuesInUse {
        /// The port.
        port: PortId,
    },
    /// The queue number is not below the configured queue count.
    #[error("{port} has no {queue}")]
    NoSuchQueue {
        /// The port.
        port: PortId,
        /// The queue.
        queue: QueueId,
    },
    /// A handle for this queue is already alive.
    #[error("{queue} of {port} is already taken")]
    QueueTaken {
        /// The port.
        port: PortId,
        /// The queue.
        queue: QueueId,
    },
    /// `rte_eth_macaddr_get` failed.
    #[error("cannot read mac address of {port}: {errno}")]
    MacAddr {
        /// The port.
        port: PortId,
        /// DPDK's return code.
        errno: DpdkErrno,
    },
    /// `rte_eth_stats_get` failed.
    #[error("cannot read stats of {port}: {errno}")]
    Stats {
        /// The port.
        port: PortId,
        /// DPDK's return code.
        errno: DpdkErrno,
    },
}

/// Queue and descriptor counts for [`Port::configure`]. Descriptor counts
/// are rounded to what the device supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of rx queues (>= 1).
    pub rx_queues: u16,
    /// Number of tx queues (>= 1).
    pub tx_queues: u16,
    /// Descriptors per rx queue.
    pub rx_desc: u16,
    /// Descriptors per tx queue.
    pub tx_desc: u16,
}

/// Basic device counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the device because no rx descriptor was free.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Which queues of a port have a live handle.
#[derive(Debug)]
struct QueueClaims {
    rx: Box<[AtomicBool]>,
    tx: Box<[AtomicBool]>,
}

/// Releases one queue claim on drop.
#[derive(Debug)]
struct QueueClaim {
    claims: Arc<QueueClaims>,
    rx: bool,
    index: usize,
}

impl Drop for QueueClaim {
    fn drop(&mut self) {
        let slots = if self.rx {
            &self.claims.rx
        } else {
            &self.claims.tx
        };
        if let Some(slot) = slots.get(self.index) {
            slot.store(false, Ordering::Release);
        }
    }
}

/// A configured ethdev port (control side).
#[derive(Debug)]
pub struct Port {
    id: PortId,
    started: bool,
    claims: Arc<QueueClaims>,
}

impl Port {
    /// Number of usable ports (`rte_eth_dev_count_avail`); 0 before EAL.
    #[must_use]
    pub fn count() -> u16 {
        // SAFETY: only scans the static device table.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Looks a port up by device name (e.g. `"net_ring0"`,
    /// `"net_af_packet0"`).
    ///
    /// # Errors
    ///
    /// [`PortError::NotFound`] if no attached device has that name.
    #[cold]
    pub fn by_name(name: &str) -> Result<PortId, PortError> {
        let cname = CString::new(name).map_err(|_| PortError::InvalidName {
            name: name.to_owned(),
        })?;
        let mut id: u16 = 0;
        // SAFETY: cname is a valid C string and `id` a valid out pointer;
        // the lookup only reads device data of attached ports.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(PortError::NotFound {
                name: name.to_owned(),
                errno: DpdkErrno::from_ret(ret),
            });
        }
        Ok(PortId(id))
    }

    /// Configures port `id` and sets up its queues (rx queues refill from
    /// `pool`). The port is not started.
    ///
    /// # Errors
    ///
    /// [`PortError::EalNotInitialised`], [`PortError::InvalidPort`],
    /// [`PortError::AlreadyConfigured`] if another `Port` owns `id`,
    /// [`PortError::QueueCount`], or the DPDK step that failed.
    #[cold]
    pub fn configure(id: PortId, conf: &PortConfig, pool: &Mempool) -> Result<Self, PortError> {
        if !eal_ready() {
            return Err(PortError::EalNotInitialised);
        }
        // SAFETY: EAL is initialised; reads the device table.
        if unsafe { sys::rte_eth_dev_is_valid_port(id.0) } == 0 {
            return Err(PortError::InvalidPort { port: id });
        }
        let bit = 1u64 << id.0; // id.0 < RTE_MAX_ETHPORTS <= 64, checked above
        if CLAIMED_PORTS.fetch_or(bit, Ordering::AcqRel) & bit != 0 {
            return Err(PortError::AlreadyConfigured { port: id });
        }
        let result = Self::configure_claimed(id, conf, pool);
        if result.is_err() {
            CLAIMED_PORTS.fetch_and(!bit, Ordering::AcqRel);
        }
        result
    }

    #[cold]
    fn configure_claimed(id: PortId, conf: &PortConfig, pool: &Mempool) -> Result<Self, PortError> {
        let port = id;
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port, `info` is a valid out pointer.
        let ret = unsafe { sys::rte_eth_dev_info_get(id.0, &mut info) };
        if ret != 0 {
            return Err(PortError::Info {
                port,
                errno: DpdkErrno::from_ret(ret),
            });
        }
        if conf.rx_queues == 0
            || conf.tx_queues == 0
            || conf.rx_queues > info.max_rx_queues
            || conf.tx_queues > info.max_tx_queues
        {
            return Err(PortError::QueueCount {
                port,
                rx: conf.rx_queues,
                tx: conf.tx_queues,
                max_rx: info.max_rx_queues,
                max_tx: info.max_tx_queues,
            });
        }

        let mut eth_conf = sys::rte_eth_conf::default();
        let rss_hf = (sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_TCP | sys::RTE_ETH_RSS_UDP)
            & info.flow_type_rss_offloads;
        if conf.rx_queues > 1 && rss_hf != 0 {
            eth_conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            eth_conf.rx_adv_conf.rss_conf.rss_key = ptr::null_mut();
            eth_conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: valid port; eth_conf is a valid, fully initialised struct
        // that DPDK copies.
        let ret =
            unsafe { sys::rte_eth_dev_configure(id.0, conf.rx_queues, conf.tx_queues, &eth_conf) };
        if ret != 0 {
            return Err(PortError::Configure {
                port,
                errno: DpdkErrno::from_ret(ret),
            });
        }

        let (mut rx_desc, mut tx_desc) = (conf.rx_desc, conf.tx_desc);
        // SAFETY: valid, configured port; both pointers are valid u16s.
        let ret =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut rx_desc, &mut tx_desc) };
        if ret != 0 {
            return Err(PortError::Configure {
                port,
                errno: DpdkErrno::from_ret(ret),
            });
        }

        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id.0) };
        // SOCKET_ID_ANY (-1) must pass as the all-ones unsigned value DPDK
        // compares against, which is exactly a bit-cast.
        let socket = u32::from_ne_bytes(socket.to_ne_bytes());
        for q in 0..conf.rx_queues {
            // SAFETY: configured port, q < rx_queues; NULL rx_conf selects the
            // device defaults; the pool is never freed (see mempool.rs), so
            // it outlives the queue.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(id.0, q, rx_desc, socket, ptr::null(), pool.as_ptr())
            };
            if ret != 0 {
                return Err(PortError::RxQueueSetup {
                    port,
                    queue: QueueId(q),
                    errno: DpdkErrno::from_ret(ret),
                });
            }
        }
        for q in 0..conf.tx_queues {
            // SAFETY: configured port, q < tx_queues; NULL tx_conf selects the
            // device defaults.
            let ret = unsafe { sys::rte_eth_tx_queue_setup(id.0, q, tx_desc, socket, ptr::null()) };
            if ret != 0 {
                return Err(PortError::TxQueueSetup {
                    port,
                    queue: QueueId(q),
                    errno: DpdkErrno::from_ret(ret),
                });
            }
        }

        let slots = |n: u16| (0..n).map(|_| AtomicBool::new(false)).collect::<Box<[_]>>();
        Ok(Self {
            id,
            started: false,
            claims: Arc::new(QueueClaims {
                rx: slots(conf.rx_queues),
                tx: slots(conf.tx_queues),
            }),
        })
    }

    /// Starts the device (`rte_eth_dev_start`). Starting a started port is
    /// a no-op.
    ///
    /// # Errors
    ///
    /// [`PortError::Start`] with DPDK's reason.
    #[cold]
    pub fn start(&mut self) -> Result<(), PortError> {
        if self.started {
            return Ok(());
        }
        // SAFETY: configured port owned by self.
        let ret = unsafe { sys::rte_eth_dev_start(self.id.0) };
        if ret != 0 {
            return Err(PortError::Start {
                port: self.id,
                errno: DpdkErrno::from_ret(ret),
            });
        }
        self.started = true;
        // Every multicast group in: VRRP adverts (224.0.0.18), IPVS sync
        // (224.0.0.81 or the configured group) and IPv6 neighbour
        // discovery (solicited-node groups) are for the exception path or
        // the workers, and a NIC's receive filter drops them otherwise
        // (split-brain keepalived pairs). A PMD without the control keeps
        // its default: not an error.
        // SAFETY: started port owned by self.
        let _ = unsafe { sys::rte_eth_allmulticast_enable(self.id.0) };
        Ok(())
    }

    /// Stops the device (`rte_eth_dev_stop`). Refused while any queue
    /// handle is alive: drop the workers' handles (e.g. after
    /// [`Eal::wait_all`](super::Eal::wait_all)) first.
    ///
    /// # Errors
    ///
    /// [`PortError::QueuesInUse`] or [`PortError::Stop`].
    #[cold]
    pub fn stop(&mut self) -> Result<(), PortError> {
        if !self.started {
            return Ok(());
        }
        if self.handles_alive() {
            return Err(PortError::QueuesInUse { port: self.id });
        }
        // SAFETY: configured, started port owned by self, and no queue
        // handle exists, so no burst call can run concurrently.
        let ret = unsafe { sys::rte_eth_dev_stop(self.id.0) };
        if ret != 0 {
            return Err(PortError::Stop {
                port: self.id,
                errno: DpdkErrno::from_ret(ret),
            });
        }
        self.started = false;
        Ok(())
    }

    /// Whether any rx/tx handle of this port is alive. Handles are only
    /// created through `&self`, so with `&mut self` the answer can only
    /// go from true to false concurrently (conservative).
    fn handles_alive(&self) -> bool {
        Arc::strong_count(&self.claims) > 1
    }

    /// The port id.
    #[must_use]
    pub fn id(&self) -> PortId {
        self.id
    }

    /// Whether [`Port::start`] succeeded and the port was not stopped since.
    #[must_use]
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Number of configured rx queues.
    #[must_use]
    pub fn rx_queues(&self) -> u16 {
        u16::try_from(self.claims.rx.len()).unwrap_or(u16::MAX) // built from a u16
    }

    /// Number of configured tx queues.
    #[must_use]
    pub fn tx_queues(&self) -> u16 {
        u16::try_from(self.claims.tx.len()).unwrap_or(u16::MAX) // built from a u16
    }

    /// The port's MAC address.
    ///
    /// # Errors
    ///
    /// [`PortError::MacAddr`] with DPDK's reason.
    pub fn mac_addr(&self) -> Result<[u8; 6], PortError> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port, valid out pointer.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.id.0, &mut addr) };
        if ret != 0 {
            return Err(PortError::MacAddr {
                port: self.id,
                errno: DpdkErrno::from_ret(ret),
            });
        }
        Ok(addr.addr_bytes)
    }

    /// The device name (e.g. `net_ring0`); `"port N"` if DPDK cannot say.
    #[must_use]
    pub fn name(&self) -> String {
        let mut buf = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: valid port; buf has the RTE_ETH_NAME_MAX_LEN bytes the
        // API requires and DPDK NUL-terminates within it.
        let ret = unsafe { sys::rte_eth_dev_get_name_by_port(self.id.0, buf.as_mut_ptr()) };
        if ret != 0 {
            return self.id.to_string();
        }
        // SAFETY: on success buf holds a NUL-terminated string.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    /// Whether the link is up, without waiting (`rte_eth_link_get_nowait`).
    /// False if the link state cannot be read.
    #[must_use]
    pub fn link_up(&self) -> bool {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port, valid out pointer.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id.0, &mut link) };
        ret == 0 && u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP
    }

    /// The port's MTU (`rte_eth_dev_get_mtu`), `None` if it cannot be read.
    #[must_use]
    pub fn mtu(&self) -> Option<u16> {
        let mut mtu = 0u16;
        // SAFETY: valid port, valid out pointer.
        let ret = unsafe { sys::rte_eth_dev_get_mtu(self.id.0, &mut mtu) };
        (ret == 0).then_some(mtu)
    }

    /// Device counters (`rte_eth_stats_get`).
    ///
    /// # Errors
    ///
    /// [`PortError::Stats`] with DPDK's reason.
    pub fn stats(&self) -> Result<PortStats, PortError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port, valid out pointer.
        let ret = unsafe { sys::rte_eth_stats_get(self.id.0, &mut s) };
        if ret != 0 {
            return Err(PortError::Stats {
                port: self.id,
                errno: DpdkErrno::from_ret(ret),
            });
        }
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Extended device counters (`rte_eth_xstats_get_names` +
    /// `rte_eth_xstats_get`), as (name, value) pairs in the driver's order.
    /// Allocates: for control and metrics, never the packet path.
    ///
    /// # Errors
    ///
    /// [`PortError::Stats`] with DPDK's reason.
    #[cold]
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, PortError> {
        let err = |ret: i32| PortError::Stats {
            port: self.id,
            errno: DpdkErrno::from_ret(ret),
        };
        // SAFETY: valid port; a null array with size 0 asks for the count.
        let n = unsafe { sys::rte_eth_xstats_get_names(self.id.0, std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(err(n));
        }
        let len = n as usize;
        let mut names = vec![sys::rte_eth_xstat_name { name: [0; 64] }; len];
        let mut values = vec![sys::rte_eth_xstat::default(); len];
        // SAFETY: `names` has room for `len` entries.
        let got_names =
            unsafe { sys::rte_eth_xstats_get_names(self.id.0, names.as_mut_ptr(), len as u32) };
        // SAFETY: `values` has room for `len` entries.
        let got_values =
            unsafe { sys::rte_eth_xstats_get(self.id.0, values.as_mut_ptr(), len as u32) };
        if got_names < 0 || got_values < 0 {
            return Err(err(got_names.min(got_values)));
        }
        let count = (got_names as usize).min(got_values as usize).min(len);
        Ok(names[..count]
            .iter()
            .zip(&values[..count])
            .map(|(n, v)| {
                let bytes: Vec<u8> = n
                    .name
                    .iter()
                    .take_while(|c| **c != 0)
                    .map(|c| *c as u8)
                    .collect();
                (String::from_utf8_lossy(&bytes).into_owned(), v.value)
            })
            .collect())
    }

    fn claim(&self, q: QueueId, rx: bool) -> Result<QueueClaim, PortError> {
        let slots = if rx { &self.claims.rx } else { &self.claims.tx };
        let index = usize::from(q.0);
        let slot = slots.get(index).ok_or(PortError::NoSuchQueue {
            port: self.id,
            queue: q,
        })?;
        if slot.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueTaken {
                port: self.id,
                queue: q,
            });
        }
        Ok(QueueClaim {
            claims: Arc::clone(&self.claims),
            rx,
            index,
        })
    }

    /// The handle for rx queue `q`. At most one handle per queue is alive at
    /// a time; dropping it frees the queue for another `rx_queue` call.
    ///
    /// # Errors
    ///
    /// [`PortError::NoSuchQueue`] if `q` is not configured,
    /// [`PortError::QueueTaken`] if a handle for it is alive.
    #[cold]
    pub fn rx_queue(&self, q: QueueId) -> Result<RxQueue, PortError> {
        Ok(RxQueue {
            port: self.id.0,
            queue: q.0,
            _claim: self.claim(q, true)?,
        })
    }

    /// The handle for tx queue `q` (same rules as [`Port::rx_queue`]).
    ///
    /// # Errors
    ///
    /// [`PortError::NoSuchQueue`] or [`PortError::QueueTaken`].
    #[cold]
    pub fn tx_queue(&self, q: QueueId) -> Result<TxQueue, PortError> {
        Ok(TxQueue {
            port: self.id.0,
            queue: q.0,
            _claim: self.claim(q, false)?,
        })
    }
}

impl Drop for Port {
    /// Stops the port if no queue handle is alive and releases the port id;
    /// otherwise leaves the device running and claimed (a worker may still
    /// be polling it). Never closes the device: for virtual devices close
    /// also detaches the port id.
    fn drop(&mut self) {
        if self.handles_alive() {
            return;
        }
        if self.started && self.stop().is_err() {
            return;
        }
        CLAIMED_PORTS.fetch_and(!(1u64 << self.id.0), Ordering::AcqRel);
    }
}

/// The receive side of one queue: the only handle for it (see module doc).
/// `Send`: move it to the one lcore that polls it.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    _claim: QueueClaim,
}

impl RxQueue {
    /// Receives up to the free space of `out` (`rte_eth_rx_burst`), appending
    /// after what `out` already holds. Returns the number received.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut MbufBatch) -> usize {
        let (ptr, free) = out.spare();
        if free == 0 {
            return 0;
        }
        // SAFETY: this handle is the only user of (port, queue), which was
        // set up by Port::configure; ptr points at `free` writable slots
        // (at most BURST).
        let n = usize::from(unsafe {
            sys::rvs_rte_eth_rx_burst(self.port, self.queue, ptr, burst_u16(free))
        });
        // SAFETY: the PMD wrote `n <= free` received mbufs, which it hands
        // over to us (direct, refcount 1).
        unsafe { out.assume_filled(n.min(free)) };
        n
    }

    /// The port this queue belongs to.
    #[must_use]
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue number.
    #[must_use]
    pub fn queue(&self) -> QueueId {
        QueueId(self.queue)
    }
}

/// The transmit side of one queue: the only handle for it (see module doc).
/// `Send`: move it to the one lcore that sends on it.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    _claim: QueueClaim,
}

impl TxQueue {
    /// Sends from the front of `pkts` (`rte_eth_tx_burst`). Sent mbufs now
    /// belong to the device; unsent ones stay in `pkts`, in order, for the
    /// caller to retry or drop. Returns the number sent.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut MbufBatch) -> usize {
        let n = pkts.len();
        if n == 0 {
            return 0;
        }
        // SAFETY: this handle is the only user of (port, queue); the first
        // n slots of pkts are owned mbufs.
        let sent = usize::from(unsafe {
            sys::rvs_rte_eth_tx_burst(self.port, self.queue, pkts.raw_ptr(), burst_u16(n))
        });
        // SAFETY: the PMD took ownership of the first `sent <= n` mbufs.
        unsafe { pkts.forget_front(sent.min(n)) };
        sent
    }

    /// The port this queue belongs to.
    #[must_use]
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue number.
    #[must_use]
    pub fn queue(&self) -> QueueId {
        QueueId(self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display() {
        assert_eq!(PortId(2).to_string(), "port 2");
        assert_eq!(QueueId(1).to_string(), "queue 1");
    }

    #[test]
    fn setup_needs_eal() {
        // Unit tests never initialise EAL.
        assert_eq!(Port::count(), 0);
        assert!(matches!(
            Port::by_name("net_ring0"),
            Err(PortError::NotFound { .. })
        ));
    }

    #[test]
    fn queue_handles_are_send() {
        fn is_send<T: Send>() {}
        is_send::<RxQueue>();
        is_send::<TxQueue>();
    }
}
