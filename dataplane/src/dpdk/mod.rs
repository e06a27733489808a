//! The one safe wrapper over DPDK: every call into `dpdk_sys` lives here.
//!
//! The rest of `rvs-dataplane` is `#![deny(unsafe_code)]`; this module is
//! where the FFI is contained, so its invariants are written down once:
//!
//! * **EAL first.** [`Eal::init`] runs `rte_eal_init` at most once per
//!   process. Everything that touches EAL memory ([`Mempool::create`],
//!   [`Port::configure`], [`MbufRing::create`]) checks that it has succeeded
//!   and returns a typed error otherwise, instead of dereferencing EAL state
//!   that does not exist yet. The thread that called `Eal::init` is the main
//!   lcore; [`Eal`] is `!Send` so that `rte_eal_remote_launch` is only ever
//!   called from it.
//! * **Mbuf ownership.** An [`Mbuf`] is a uniquely owned, *direct* mbuf with
//!   reference count 1 (what `rte_pktmbuf_alloc` and PMD receive paths hand
//!   out). Dropping it frees it. Ownership passes to DPDK on a successful
//!   `tx_burst`/`enqueue_burst` and back on `rx_burst`/`dequeue_burst`;
//!   [`MbufBatch`] is the fixed-size array those bursts read and write.
//!   This module never creates indirect (cloned) mbufs, which is what makes
//!   [`Mbuf::data_mut`] sound.
//! * **Single segment.** Byte access ([`Mbuf::data`]) covers the first
//!   segment only; [`Mbuf::set_len`] refuses chained mbufs. Pools are sized
//!   so that a frame fits in one segment and no port enables scatter.
//! * **One user per queue.** A [`RxQueue`]/[`TxQueue`] handle is the only way
//!   to reach a `(port, queue)` pair; [`Port::rx_queue`] hands each one out
//!   at most once at a time, and a [`Port`] refuses to stop (and never stops
//!   on drop) while handles are alive, so no worker can be inside a burst
//!   call while the device is torn down. The handles are `Send`: move each
//!   into the one lcore that polls it.
//! * **Rings are single-producer/single-consumer.** [`MbufRing`] is shared
//!   by reference between exactly one producer and one consumer lcore; a
//!   cheap per-side guard turns accidental concurrent use into an empty
//!   burst instead of undefined behaviour.
//! * **Lifetimes of DPDK objects.** Mempools are never freed (they are
//!   created at start-up and live as long as the process; freeing one while
//!   an mbuf or an rx queue still points into it would be a use-after-free
//!   that the types here cannot rule out). EAL is never cleaned up on drop
//!   for the same reason. Rings free themselves (after freeing any mbufs
//!   still queued) when the last owner drops them.
//!
//! Per-packet work stays in Rust (field access on `rte_mbuf`); calls through
//! the C shim are made once per burst.
//!
//! (`unsafe_code` is allowed for this module by its declaration in
//! `lib.rs`; the crate root denies it everywhere else.)

mod batch;
mod eal;
mod error;
mod hugemem;
mod kernel_drops;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod prefetch;
mod ring;
mod tags;

pub use batch::{MbufBatch, BURST};
pub use eal::{Eal, EalError, LaunchError};
pub use error::DpdkErrno;
pub use hugemem::{Backing, HugeArray, Zeroed};
pub use kernel_drops::packet_socket_drops;
pub use lcore::{current_lcore, rdtsc, socket_id, LcoreId};
pub use mbuf::Mbuf;
pub use mempool::{Mempool, MempoolError};
pub use port::{Port, PortConfig, PortError, PortId, PortStats, QueueId, RxQueue, TxQueue};
pub use prefetch::{prefetch, prefetch_first};
pub use ring::{MbufRing, RingError};
pub use tags::matching as matching_tags;
