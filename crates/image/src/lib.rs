//! Images: safe layer unpack, deterministic layer diffs, overlay snapshots and the image store.

pub mod archive;
pub mod compare;
pub mod diff;
pub mod error;
pub mod limits;
pub mod reference;
pub mod sbom;
pub mod snapshot;
pub mod store;
pub mod unpack;
pub mod view;

pub use error::{Error, Result};
pub use limits::{Limit, LimitExceeded, Limits};
pub use reference::Reference;
pub use store::{ImageStore, ImageSummary, LayerInfo};
