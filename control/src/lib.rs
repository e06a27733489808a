//! rvs control plane.
#![deny(unsafe_code)]

pub mod config;
pub mod api;
pub mod iproute;
pub mod ipvsadm_fmt;
pub mod plan;
#[cfg(feature = "dpdk")]
pub mod daemon;
pub mod neigh;
pub mod announce;
pub mod dad;
pub mod metrics;
pub mod top;
pub mod zero;
pub mod health;
