//! OCI basics: digests, media types, manifests and image configs, and the content store.

pub mod digest;
pub mod error;
pub mod random;
pub mod spec;
pub mod store;

pub use digest::Digest;
pub use error::{Error, Result};
pub use store::ContentStore;
