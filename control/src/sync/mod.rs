//! Connection sync between appliances (LVS's `--start-daemon`): the IPVS
//! sync protocol version 1 ([`wire`]), the daemons' sans-IO state
//! ([`daemon`]: configuration and `-L --daemon`, the master's batching, the
//! backup's checks), and, in the data plane, when a session is worth
//! sending (`dataplane::sync_policy`). Sockets, the worker feed and
//! installing sessions on a backup are issue #15's next step.

pub mod daemon;
pub mod wire;
