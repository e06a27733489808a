//! rvs control plane.
#![deny(unsafe_code)]

pub mod acd;
pub mod affinity;
pub mod announce;
pub mod api;
pub mod config;
pub mod dad;
#[cfg(feature = "dpdk")]
pub mod daemon;
pub mod health;
pub mod iproute;
pub mod ipvsadm_fmt;
pub mod ipvsadm_names;
pub mod ipvsadm_opts;
pub mod ipvsadm_rnames;
pub mod kernel_addrs;
pub mod metrics;
pub mod neigh;
pub mod plan;
pub mod runfiles;
#[cfg(feature = "dpdk")]
pub mod serve;
pub mod sync;
pub mod top;
pub mod vip_routes;
pub mod zero;
