//! Berth's container networking (design.md, `crates/net`): a network is a bridge plus an IPAM
//! pool, persisted by the engine; attaching a container makes a veth pair into its network
//! namespace and leases it an address; packet rules live in one nftables table of Berth's own.
//!
//! Built so far: [`ipam`], the address pools and their leases.

pub mod ipam;
