//! The embedded store, on redb: one file, durable at every acknowledged write (redb commits
//! with fsync), so a `kill -9` loses nothing the caller was told is written.
//!
//! Tables: `log` (revision → the write: kind, key, value, create and previous revision),
//! `history` ((key, revision) → (), the revisions of each key, for reads at a revision),
//! `current` (key → the revision of its live value) and `meta` (the revision, the compacted
//! revision). Writes take one lock across commit and notification, so watchers see events in
//! revision order; a watcher that falls behind the in-memory channel reads the log again.

use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, mpsc};

use super::{BoxFuture, Error, Event, EventKind, KeyValue, ListOptions, Page, Result, Store, Watch};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const HISTORY: TableDefinition<(&str, u64), ()> = TableDefinition::new("history");
const CURRENT: TableDefinition<&str, u64> = TableDefinition::new("current");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The revision of an empty store (etcd's).
const FIRST_REVISION: u64 = 1;

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

/// One write, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: EventKind,
    key: String,
    value: Vec<u8>,
    create_revision: u64,
    prev_revision: u64,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(21 + self.key.len() + self.value.len());
        b.push(match self.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        });
        b.extend_from_slice(&self.create_revision.to_le_bytes());
        b.extend_from_slice(&self.prev_revision.to_le_bytes());
        b.extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        b.extend_from_slice(self.key.as_bytes());
        b.extend_from_slice(&self.value);
        b
    }

    fn decode(b: &[u8]) -> Result<Entry> {
        let bad = || Error::Backend("a log entry is corrupt".into());
        if b.len() < 21 {
            return Err(bad());
        }
        let kind = match b[0] {
            0 => EventKind::Put,
            1 => EventKind::Delete,
            _ => return Err(bad()),
        };
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let key_len = u32::from_le_bytes(b[17..21].try_into().expect("4 bytes")) as usize;
        let key = b.get(21..21 + key_len).ok_or_else(bad)?;
        Ok(Entry {
            kind,
            create_revision: u64_at(1),
            prev_revision: u64_at(9),
            key: String::from_utf8(key.to_vec()).map_err(|_| bad())?,
            value: b[21 + key_len..].to_vec(),
        })
    }

    fn kv(&self, revision: u64) -> KeyValue {
        KeyValue {
            key: self.key.clone(),
            value: self.value.clone(),
            create_revision: self.create_revision as i64,
            mod_revision: revision as i64,
        }
    }
}

/// The store on a redb file.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// Held across a write's commit and its notification.
    write: Mutex<()>,
    events: broadcast::Sender<Arc<Event>>,
}

enum Op {
    Create(Vec<u8>),
    Update(Vec<u8>, i64),
    Delete(i64),
}

impl RedbStore {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<RedbStore> {
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        {
            let mut meta = txn.open_table(META).map_err(backend)?;
            if meta.get("revision").map_err(backend)?.is_none() {
                meta.insert("revision", FIRST_REVISION).map_err(backend)?;
                meta.insert("compacted", 0).map_err(backend)?;
            }
            txn.open_table(LOG).map_err(backend)?;
            txn.open_table(HISTORY).map_err(backend)?;
            txn.open_table(CURRENT).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        let (events, _) = broadcast::channel(1024);
        Ok(RedbStore {
            inner: Arc::new(Inner {
                db,
                write: Mutex::new(()),
                events,
            }),
        })
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Inner) -> Result<T> + Send + 'static) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(backend)?
    }
}

impl Inner {
    fn meta(&self) -> Result<(u64, u64)> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        let get = |k: &str| -> Result<u64> { Ok(meta.get(k).map_err(backend)?.map(|v| v.value()).unwrap_or(0)) };
        Ok((get("revision")?, get("compacted")?))
    }

    /// Check that `revision` can be read: not compacted, not in the future.
    fn readable(&self, revision: i64) -> Result<u64> {
        let (current, compacted) = self.meta()?;
        if revision < compacted as i64 {
            return Err(Error::Compacted {
                requested: revision,
                compacted: compacted as i64,
            });
        }
        if revision > current as i64 {
            return Err(Error::FutureRevision {
                requested: revision,
                current: current as i64,
            });
        }
        Ok(revision as u64)
    }

    fn write(&self, key: &str, op: Op) -> Result<KeyValue> {
        let _guard = self.write.lock().map_err(backend)?;
        let txn = self.db.begin_write().map_err(backend)?;
        let (event, result) = {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let mut current = txn.open_table(CURRENT).map_err(backend)?;
            let mut log = txn.open_table(LOG).map_err(backend)?;
            let mut history = txn.open_table(HISTORY).map_err(backend)?;
            let revision = meta.get("revision").map_err(backend)?.map(|v| v.value()).unwrap_or(FIRST_REVISION) + 1;
            let prev_rev = current.get(key).map_err(backend)?.map(|v| v.value());
            let prev = match prev_rev {
                Some(r) => {
                    let e = entry_at(&log, r)?;
                    Some(e.kv(r))
                }
                None => None,
            };
            let check = |expected: i64, prev: &Option<KeyValue>| -> Result<()> {
                let Some(p) = prev else {
                    return Err(Error::NotFound(key.to_string()));
                };
                if expected != 0 && p.mod_revision != expected {
                    return Err(Error::Conflict {
                        key: key.to_string(),
                        expected,
                        actual: p.mod_revision,
                    });
                }
                Ok(())
            };
            let (kind, value, create_revision) = match op {
                Op::Create(v) => {
                    if prev.is_some() {
                        return Err(Error::AlreadyExists(key.to_string()));
                    }
                    (EventKind::Put, v, revision)
                }
                Op::Update(v, expected) => {
                    check(expected, &prev)?;
                    (EventKind::Put, v, prev.as_ref().map_or(revision, |p| p.create_revision as u64))
                }
                Op::Delete(expected) => {
                    check(expected, &prev)?;
                    let p = prev.as_ref().expect("checked");
                    (EventKind::Delete, p.value.clone(), p.create_revision as u64)
                }
            };
            let entry = Entry {
                kind,
                key: key.to_string(),
                value,
                create_revision,
                prev_revision: prev_rev.unwrap_or(0),
            };
            log.insert(revision, entry.encode().as_slice()).map_err(backend)?;
            history.insert((key, revision), ()).map_err(backend)?;
            match kind {
                EventKind::Put => {
                    current.insert(key, revision).map_err(backend)?;
                }
                EventKind::Delete => {
                    current.remove(key).map_err(backend)?;
                }
            }
            meta.insert("revision", revision).map_err(backend)?;
            let kv = entry.kv(revision);
            let event = Event {
                kind,
                kv: kv.clone(),
                prev,
            };
            (event, kv)
        };
        txn.commit().map_err(backend)?;
        let _ = self.events.send(Arc::new(event));
        Ok(result)
    }

    fn get(&self, key: &str, revision: Option<i64>) -> Result<Option<KeyValue>> {
        let at = revision.map(|r| self.readable(r)).transpose()?;
        let txn = self.db.begin_read().map_err(backend)?;
        let log = txn.open_table(LOG).map_err(backend)?;
        let rev = match at {
            None => {
                let current = txn.open_table(CURRENT).map_err(backend)?;
                let rev = current.get(key).map_err(backend)?.map(|v| v.value());
                rev
            }
            Some(at) => {
                let history = txn.open_table(HISTORY).map_err(backend)?;
                let mut range = history.range((key, 0u64)..=(key, at)).map_err(backend)?;
                let rev = range.next_back().transpose().map_err(backend)?.map(|(k, _)| k.value().1);
                rev
            }
        };
        let Some(rev) = rev else { return Ok(None) };
        let e = entry_at(&log, rev)?;
        Ok((e.kind == EventKind::Put).then(|| e.kv(rev)))
    }

    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<Page> {
        let (current_rev, _) = self.meta()?;
        let at = match opts.revision {
            Some(r) => self.readable(r)?,
            None => current_rev,
        };
        let txn = self.db.begin_read().map_err(backend)?;
        let log = txn.open_table(LOG).map_err(backend)?;
        let start = match &opts.start_after {
            Some(s) if s.as_str() >= prefix => s.clone(),
            _ => prefix.to_string(),
        };
        let skip_start = opts.start_after.as_deref() == Some(start.as_str());
        let limit = if opts.limit == 0 { usize::MAX } else { opts.limit };
        let mut items = Vec::new();
        let mut more = false;
        let mut push = |rev: u64, items: &mut Vec<KeyValue>| -> Result<bool> {
            if items.len() == limit {
                more = true;
                return Ok(false);
            }
            let e = entry_at(&log, rev)?;
            if e.kind == EventKind::Put {
                items.push(e.kv(rev));
            }
            Ok(true)
        };
        if at == current_rev {
            let current = txn.open_table(CURRENT).map_err(backend)?;
            for row in current.range(start.as_str()..).map_err(backend)? {
                let (k, v) = row.map_err(backend)?;
                let key = k.value();
                if !key.starts_with(prefix) {
                    break;
                }
                if skip_start && key == start {
                    continue;
                }
                if !push(v.value(), &mut items)? {
                    break;
                }
            }
        } else {
            // The latest revision of each key at or before `at`.
            let history = txn.open_table(HISTORY).map_err(backend)?;
            let mut pending: Option<(String, u64)> = None;
            let mut done = false;
            for row in history.range((start.as_str(), 0u64)..).map_err(backend)? {
                let (k, _) = row.map_err(backend)?;
                let (key, rev) = k.value();
                if !key.starts_with(prefix) {
                    break;
                }
                if (skip_start && key == start) || rev > at {
                    continue;
                }
                if let Some((pk, pr)) = pending.take() {
                    if pk != key && !push(pr, &mut items)? {
                        done = true;
                        break;
                    }
                }
                pending = Some((key.to_string(), rev));
            }
            if let (Some((_, pr)), false) = (pending, done) {
                push(pr, &mut items)?;
            }
        }
        Ok(Page {
            items,
            revision: at as i64,
            more,
        })
    }

    /// The events under `prefix` with revisions in (`after`, now]; returns them and the revision
    /// read up to.
    fn history(&self, prefix: &str, after: u64) -> Result<(Vec<Event>, u64)> {
        let (current, compacted) = self.meta()?;
        // Events from `after + 1` on: the compacted revision itself is kept (etcd's rule).
        if after + 1 < compacted {
            return Err(Error::Compacted {
                requested: after as i64,
                compacted: compacted as i64,
            });
        }
        let txn = self.db.begin_read().map_err(backend)?;
        let log = txn.open_table(LOG).map_err(backend)?;
        let mut out = Vec::new();
        for row in log.range(after + 1..=current).map_err(backend)? {
            let (k, v) = row.map_err(backend)?;
            let e = Entry::decode(v.value())?;
            if !e.key.starts_with(prefix) {
                continue;
            }
            let prev = match e.prev_revision {
                0 => None,
                r => match log.get(r).map_err(backend)? {
                    Some(p) => Some(Entry::decode(p.value())?.kv(r)),
                    None => None,
                },
            };
            out.push(Event {
                kind: e.kind,
                kv: e.kv(k.value()),
                prev,
            });
        }
        Ok((out, current))
    }

    fn compact(&self, revision: i64) -> Result<()> {
        let at = self.readable(revision)?;
        let _guard = self.write.lock().map_err(backend)?;
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut log = txn.open_table(LOG).map_err(backend)?;
            let mut history = txn.open_table(HISTORY).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            // Per key, every revision before `at` but the last, and that one too when it is a
            // delete; revision `at` and later are kept whole.
            let mut drop: Vec<(String, u64)> = Vec::new();
            let mut last: Option<(String, u64)> = None;
            for row in history.iter().map_err(backend)? {
                let (k, _) = row.map_err(backend)?;
                let (key, rev) = k.value();
                if rev >= at {
                    continue;
                }
                if let Some((lk, lr)) = last.take() {
                    // An older revision of the same key, or a key whose last state is deleted.
                    if lk == key || is_delete(&log, lr)? {
                        drop.push((lk, lr));
                    }
                }
                last = Some((key.to_string(), rev));
            }
            if let Some((lk, lr)) = last {
                if is_delete(&log, lr)? {
                    drop.push((lk, lr));
                }
            }
            for (k, r) in &drop {
                history.remove((k.as_str(), *r)).map_err(backend)?;
                log.remove(*r).map_err(backend)?;
            }
            meta.insert("compacted", at).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(())
    }
}

/// The log entry of revision `rev`, which must exist.
fn entry_at(log: &impl ReadableTable<u64, &'static [u8]>, rev: u64) -> Result<Entry> {
    Entry::decode(
        log.get(rev)
            .map_err(backend)?
            .ok_or_else(|| backend("a log entry is missing"))?
            .value(),
    )
}

fn is_delete(log: &redb::Table<u64, &[u8]>, rev: u64) -> Result<bool> {
    Ok(match log.get(rev).map_err(backend)? {
        Some(v) => Entry::decode(v.value())?.kind == EventKind::Delete,
        None => false,
    })
}

impl Store for RedbStore {
    fn revision(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move { self.blocking(|i| Ok(i.meta()?.0 as i64)).await })
    }

    fn compacted(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move { self.blocking(|i| Ok(i.meta()?.1 as i64)).await })
    }

    fn get<'a>(&'a self, key: &'a str, revision: Option<i64>) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        let key = key.to_string();
        Box::pin(async move { self.blocking(move |i| i.get(&key, revision)).await })
    }

    fn list<'a>(&'a self, prefix: &'a str, opts: ListOptions) -> BoxFuture<'a, Result<Page>> {
        let prefix = prefix.to_string();
        Box::pin(async move { self.blocking(move |i| i.list(&prefix, &opts)).await })
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<KeyValue>> {
        let key = key.to_string();
        Box::pin(async move { self.blocking(move |i| i.write(&key, Op::Create(value))).await })
    }

    fn update<'a>(&'a self, key: &'a str, value: Vec<u8>, expected: i64) -> BoxFuture<'a, Result<KeyValue>> {
        let key = key.to_string();
        Box::pin(async move { self.blocking(move |i| i.write(&key, Op::Update(value, expected))).await })
    }

    fn delete<'a>(&'a self, key: &'a str, expected: i64) -> BoxFuture<'a, Result<KeyValue>> {
        let key = key.to_string();
        Box::pin(async move { self.blocking(move |i| i.write(&key, Op::Delete(expected))).await })
    }

    fn watch<'a>(&'a self, prefix: &'a str, after: i64) -> BoxFuture<'a, Result<Watch>> {
        let prefix = prefix.to_string();
        Box::pin(async move {
            if after < 0 {
                return Err(Error::Compacted {
                    requested: after,
                    compacted: 0,
                });
            }
            // Subscribe before reading the history, so nothing falls between the two.
            let mut live = self.inner.events.subscribe();
            let p = prefix.clone();
            let (events, mut last) = self.blocking(move |i| i.history(&p, after as u64)).await?;
            let (tx, rx) = mpsc::channel(256);
            let store = self.clone();
            tokio::spawn(async move {
                for e in events {
                    if tx.send(Ok(e)).await.is_err() {
                        return;
                    }
                }
                loop {
                    let e = tokio::select! {
                        e = live.recv() => e,
                        _ = tx.closed() => return,
                    };
                    match e {
                        Ok(e) => {
                            let rev = e.kv.mod_revision as u64;
                            if rev <= last {
                                continue;
                            }
                            last = rev;
                            if e.kv.key.starts_with(&prefix) && tx.send(Ok((*e).clone())).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Fell behind the channel: read what was missed from the log.
                            let p = prefix.clone();
                            let from = last;
                            match store.blocking(move |i| i.history(&p, from)).await {
                                Ok((missed, upto)) => {
                                    for e in missed {
                                        if tx.send(Ok(e)).await.is_err() {
                                            return;
                                        }
                                    }
                                    last = upto;
                                }
                                Err(e) => {
                                    let _ = tx.send(Err(e)).await;
                                    return;
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
            Ok(rx)
        })
    }

    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.blocking(move |i| i.compact(revision)).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let e = Entry {
            kind: EventKind::Delete,
            key: "/registry/pods/default/web".into(),
            value: b"{\"kind\":\"Pod\"}".to_vec(),
            create_revision: 7,
            prev_revision: 9,
        };
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        assert!(Entry::decode(&[9; 30]).is_err());
        assert!(Entry::decode(&[0; 5]).is_err());
    }
}
