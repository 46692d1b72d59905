//! A revisioned key-value store with watch, etcd's model: every write bumps one global revision,
//! which is the resourceVersion of the object written; creates, updates and deletes are compared
//! on a key's revision; lists read at a revision; watches replay from a revision and then follow;
//! compaction drops history older than a revision (a watch or read from before it is `Compacted`,
//! the API server's 410 Gone).
//!
//! One trait, [`Store`], with an embedded implementation on redb ([`redb::RedbStore`], the
//! default) and one on etcd ([`etcd::EtcdStore`]); one conformance suite
//! (`crates/kube/tests/store.rs`) runs against both.
//!
//! Compaction at revision R keeps R: reads at R and watches from R - 1 (events from R on) still
//! work, earlier ones are [`Error::Compacted`] — etcd's rule.

pub mod etcd;
pub mod redb;

use std::future::Future;
use std::pin::Pin;

/// A boxed future (the trait is used as `Arc<dyn Store>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One key's value at a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key (`/registry/pods/default/web`).
    pub key: String,
    /// The value (the serialized object).
    pub value: Vec<u8>,
    /// The revision that created the key (since it last did not exist).
    pub create_revision: i64,
    /// The revision of this value.
    pub mod_revision: i64,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted.
    Delete,
}

/// One change, as a watch sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key's value after a put; for a delete, the last value with `mod_revision` the
    /// revision of the delete.
    pub kv: KeyValue,
    /// The value before (none for a create).
    pub prev: Option<KeyValue>,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The values, in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at.
    pub revision: i64,
    /// More keys follow the last one (ask again with it as `start_after`).
    pub more: bool,
}

/// A list request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read at this revision (none: the current one). Older than the compacted revision is
    /// [`Error::Compacted`]; newer than the current is [`Error::FutureRevision`].
    pub revision: Option<i64>,
    /// Start after this key (a continue token's key).
    pub start_after: Option<String>,
    /// At most this many items (0: all).
    pub limit: usize,
}

/// Errors of a store.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The key does not exist (update, delete).
    #[error("key {0} not found")]
    NotFound(String),
    /// The key exists already (create).
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key's revision is not the one the write was made against.
    #[error("key {key} is at revision {actual}, not {expected}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller read.
        expected: i64,
        /// The key's revision now.
        actual: i64,
    },
    /// The revision asked for was compacted away.
    #[error("revision {requested} has been compacted (oldest kept: {compacted})")]
    Compacted {
        /// What was asked.
        requested: i64,
        /// The compacted revision.
        compacted: i64,
    },
    /// The revision asked for is newer than the store's.
    #[error("revision {requested} is in the future (current: {current})")]
    FutureRevision {
        /// What was asked.
        requested: i64,
        /// The current revision.
        current: i64,
    },
    /// The backend failed (I/O, corruption, connection).
    #[error("store: {0}")]
    Backend(String),
}

/// Result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The events of a watch, in revision order; an `Err` ends it (e.g. compacted while behind).
pub type Watch = tokio::sync::mpsc::Receiver<Result<Event>>;

/// The store.
pub trait Store: Send + Sync {
    /// The current revision.
    fn revision(&self) -> BoxFuture<'_, Result<i64>>;
    /// The compacted revision (history before it is gone).
    fn compacted(&self) -> BoxFuture<'_, Result<i64>>;
    /// A key's value, now or at a revision.
    fn get<'a>(&'a self, key: &'a str, revision: Option<i64>) -> BoxFuture<'a, Result<Option<KeyValue>>>;
    /// The keys under `prefix`, in key order.
    fn list<'a>(&'a self, prefix: &'a str, opts: ListOptions) -> BoxFuture<'a, Result<Page>>;
    /// Create `key`; [`Error::AlreadyExists`] if it exists.
    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<KeyValue>>;
    /// Replace `key`'s value if it is at `expected` (its mod revision; 0: whatever it is).
    fn update<'a>(&'a self, key: &'a str, value: Vec<u8>, expected: i64) -> BoxFuture<'a, Result<KeyValue>>;
    /// Delete `key` if it is at `expected` (0: whatever it is); returns its last value, with
    /// `mod_revision` the revision of the delete.
    fn delete<'a>(&'a self, key: &'a str, expected: i64) -> BoxFuture<'a, Result<KeyValue>>;
    /// The changes under `prefix` after revision `after` (history first, then live), until the
    /// receiver is dropped.
    fn watch<'a>(&'a self, prefix: &'a str, after: i64) -> BoxFuture<'a, Result<Watch>>;
    /// Drop history before `revision` (values current at it are kept).
    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<()>>;
}
