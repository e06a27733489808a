//! rvs data plane.
//!
//! Everything a poll-mode worker touches per packet lives here. The packet
//! logic (`wire`, `checksum`, `session`, `laddr`, `sched`, `pipeline`,
//! `xmit`, `local`) is plain
//! Rust over byte slices: it builds and tests without DPDK. The `dpdk`
//! feature adds the one module allowed to call into `dpdk-sys` ([`dpdk`]) and
//! the worker loop that glues the two together.
#![deny(unsafe_code)]

#[cfg(feature = "dpdk")]
#[allow(unsafe_code)]
pub mod dpdk;

pub mod acl;
pub mod addr;
pub mod checksum;
pub mod frag;
pub mod frag_hold;
pub mod guard;
pub mod hold;
pub mod laddr;
pub mod limits;
pub mod local;
pub mod marks;
pub mod neigh;
pub mod packet;
pub mod pipeline;
pub mod route;
#[cfg(feature = "dpdk")]
pub mod runtime;
pub mod sched;
pub mod session;
pub mod stats;
pub mod sync_feed;
pub mod sync_policy;
pub mod synproxy;
pub mod tables;
pub mod time;
pub mod vlan;
pub mod wire;
#[cfg(feature = "dpdk")]
pub mod worker;
pub mod xmit;
