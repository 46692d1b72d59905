//! OCI distribution: the registry server ([`server`]) and the client the engine pulls and pushes
//! with ([`client`]).

pub mod client;
pub mod server;
