//! Frames the kernel dropped before an af_packet PMD saw them.
//!
//! DPDK 22.11's `net_af_packet` receives through a `PACKET_RX_RING` that
//! the kernel fills from its softirq; when the ring is full the kernel drops
//! the frame and counts it only on the socket (`PACKET_STATISTICS`
//! `tp_drops`), which the PMD never reads: its `imissed` stays 0 however
//! much is lost. The sockets are this process's own file descriptors, so
//! the count is reachable here: find the packet sockets bound to an
//! interface (`/proc/net/packet` names each socket's inode and interface
//! index, `/proc/self/fd` maps our descriptors to inodes) and ask each.
//! Reading `PACKET_STATISTICS` resets the kernel's counters, so
//! [`packet_socket_drops`] returns the drops *since the last call*: one
//! owner must add them up.

use std::collections::HashSet;

/// Frames the kernel dropped on this process's packet sockets bound to
/// interface `ifindex` since the previous call (0 when there are none).
#[must_use]
pub fn packet_socket_drops(ifindex: u32) -> u64 {
    let inodes = packet_inodes(ifindex);
    if inodes.is_empty() {
        return 0;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut drops = 0u64;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok());
        if inode.is_some_and(|i| inodes.contains(&i)) {
            drops += u64::from(tp_drops(fd));
        }
    }
    drops
}

/// Inodes of the packet sockets bound to `ifindex` (`/proc/net/packet`:
/// `sk RefCnt Type Proto Iface R Rmem User Inode`).
fn packet_inodes(ifindex: u32) -> HashSet<u64> {
    let text = std::fs::read_to_string("/proc/net/packet").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let iface = f.get(4)?.parse::<u32>().ok()?;
            let inode = f.get(8)?.parse::<u64>().ok()?;
            (iface == ifindex).then_some(inode)
        })
        .collect()
}

/// `tp_drops` of packet socket `fd` (which the read resets); 0 if the
/// descriptor is not (or no longer) a packet socket.
fn tp_drops(fd: i32) -> u32 {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` and `len` are valid for writes and `len` is `st`'s size;
    // on a descriptor that is not a packet socket (closed and reused since
    // the scan) the kernel fails the call without writing.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            std::ptr::addr_of_mut!(st).cast(),
            &mut len,
        )
    };
    if ret == 0 {
        st.tp_drops
    } else {
        0
    }
}
