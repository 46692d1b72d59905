//! Berth's container networking (design.md, `crates/net`): a network is a bridge plus an IPAM
//! pool, persisted by the engine; attaching a container makes a veth pair into its network
//! namespace and leases it an address; packet rules live in one nftables table of Berth's own.

pub mod dns;
pub mod ipam;
pub mod link;
pub mod netns;
pub mod proxy;
pub mod rules;

/// Errors of host networking; each names the operation and what it acted on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {target}: {source}")]
    Sys {
        op: &'static str,
        target: String,
        #[source]
        source: nix::Error,
    },
    #[error("{op} {target}: {source}")]
    Io {
        op: &'static str,
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} {target}: {message}")]
    Netlink { op: &'static str, target: String, message: String },
    #[error(transparent)]
    Ipam(#[from] ipam::Error),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
