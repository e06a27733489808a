//! Frames the kernel dropped before a port's PMD saw them, the loss no
//! DPDK counter of 22.11's virtual devices shows (their `imissed` stays 0):
//!
//! * **af_packet**: a full receive ring drops on the packet socket, counted
//!   in its `PACKET_STATISTICS` (see `dataplane::dpdk::packet_socket_drops`),
//!   which resets on every read, so the sum is kept here.
//! * **af_xdp**: a full XDP socket receive ring (or an empty fill ring)
//!   fails the XDP redirect, and the driver counts the frame as dropped on
//!   its kernel interface (`rx_dropped`; on veth its per-queue
//!   `rx_queue_N_drops`). The PMD's own `XDP_STATISTICS` socket is not
//!   reachable through 22.11's API (its xstats carry no ring-full count).
//!   Counted from the port's start.
//!
//! Other devices (NICs, net_ring, net_tap, ...) count their own misses in
//! `imissed`: no figure here.

use std::sync::Mutex;

use crate::config::InterfaceConfig;

/// Where a port's kernel drops are read.
enum Source {
    /// af_packet: the packet sockets on this interface index, and the
    /// drops read from them so far.
    PacketSockets {
        ifindex: u32,
        total: u64,
    },
    /// af_xdp: the kernel interface's `rx_dropped`, less its value when
    /// the port started.
    RxDropped {
        iface: String,
        base: u64,
    },
    None,
}

/// Kernel drops of every DPDK port, in port order.
pub(super) struct KernelDrops(Mutex<Vec<Source>>);

fn sysfs_u64(iface: &str, file: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/{file}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl KernelDrops {
    /// For the ports of `interfaces` (sub-interfaces skipped), read after
    /// the ports started.
    pub(super) fn new(interfaces: &[InterfaceConfig]) -> Self {
        let sources = interfaces
            .iter()
            .filter(|i| i.is_port())
            .map(|i| match i.kernel_iface() {
                Some(iface) if i.device.starts_with("net_af_packet") => {
                    match sysfs_u64(iface, "ifindex") {
                        Some(ifindex) => {
                            // Drops before the port started are not this run's.
                            let _ = dataplane::dpdk::packet_socket_drops(ifindex as u32);
                            Source::PacketSockets {
                                ifindex: ifindex as u32,
                                total: 0,
                            }
                        }
                        None => Source::None,
                    }
                }
                Some(iface) if i.device.starts_with("net_af_xdp") => Source::RxDropped {
                    iface: iface.to_string(),
                    base: sysfs_u64(iface, "statistics/rx_dropped").unwrap_or(0),
                },
                _ => Source::None,
            })
            .collect();
        Self(Mutex::new(sources))
    }

    /// Port `port`'s frames dropped by the kernel before its PMD so far;
    /// `None` for a device that counts its own misses.
    pub(super) fn read(&self, port: usize) -> Option<u64> {
        let mut sources = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match sources.get_mut(port)? {
            Source::PacketSockets { ifindex, total } => {
                *total += dataplane::dpdk::packet_socket_drops(*ifindex);
                Some(*total)
            }
            Source::RxDropped { iface, base } => {
                Some(sysfs_u64(iface, "statistics/rx_dropped")?.saturating_sub(*base))
            }
            Source::None => None,
        }
    }
}
