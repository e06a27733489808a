//! Connection sync between appliances (LVS's `--start-daemon`): the IPVS
//! sync protocol version 1 ([`wire`]), the daemons' sans-IO state
//! ([`daemon`]: configuration and `-L --daemon`, the master's batching, the
//! backup's checks), between workers' records and wire entries
//! ([`convert`]), and the sockets the control loop drives ([`engine`]). In
//! the data plane: when a session is worth sending
//! (`dataplane::sync_policy`), the workers' rings (`dataplane::sync_feed`)
//! and installing received sessions (`dataplane::pipeline::sync`).

pub mod convert;
pub mod daemon;
pub mod engine;
pub mod wire;
