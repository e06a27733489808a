//! Connection sync between appliances (LVS's `--start-daemon`): the IPVS
//! sync protocol version 1 ([`wire`]). The daemon side (sockets, peers,
//! feeding from the workers, installing on a backup) is issue #15's next step.

pub mod wire;
