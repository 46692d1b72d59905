//! The store on etcd (v3), for clusters that outgrow one machine: `--datastore
//! etcd://HOST:PORT`. It talks to etcd's own JSON gateway (`/v3/kv/*`, `/v3/watch`) over HTTP,
//! so no gRPC stack is built into Berth; every operation maps onto one etcd request:
//! create/update/delete are transactions compared on the key's create or mod revision, lists
//! are ranges (at a revision, paged), watches are etcd watches from `after + 1` with previous
//! values, compaction is etcd's.

use base64::Engine;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{BoxFuture, Error, Event, EventKind, KeyValue, ListOptions, Page, Result, Store, Watch};

/// The store on an etcd cluster member.
#[derive(Clone)]
pub struct EtcdStore {
    base: String,
    http: reqwest::Client,
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(v: &Value) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or(""))
        .map_err(|e| Error::Backend(format!("etcd sent bad base64: {e}")))
}

fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The end of the range of keys starting with `prefix` (etcd's prefix convention).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut b = prefix.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0xff {
            b.push(last + 1);
            return b;
        }
    }
    vec![0]
}

fn kv(v: &Value) -> Result<KeyValue> {
    Ok(KeyValue {
        key: String::from_utf8(unb64(&v["key"])?).map_err(|_| Error::Backend("a key is not UTF-8".into()))?,
        value: unb64(&v["value"])?,
        create_revision: num(&v["create_revision"]),
        mod_revision: num(&v["mod_revision"]),
    })
}

impl EtcdStore {
    /// Connect to `etcd://HOST:PORT` (or `http://HOST:PORT`) and check that it answers.
    pub async fn connect(url: &str) -> Result<EtcdStore> {
        let hostport = url.strip_prefix("etcd://").or_else(|| url.strip_prefix("http://")).ok_or_else(|| {
            Error::Backend(format!(
                "unsupported datastore {url:?}: use etcd://HOST:PORT (plain HTTP; TLS to etcd is not supported yet)"
            ))
        })?;
        // One crypto provider for the whole binary (the registry client installs the same).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Backend(format!("etcd client: {e}")))?;
        let s = EtcdStore {
            base: format!("http://{}", hostport.trim_end_matches('/')),
            http,
        };
        s.current().await?;
        Ok(s)
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| Error::Backend(format!("etcd {}: {e}", self.base)))?;
        let bytes = resp.bytes().await.map_err(|e| Error::Backend(format!("etcd: {e}")))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Backend(format!("etcd sent bad JSON: {e}")))?;
        if let Some(msg) = v
            .get("error")
            .and_then(Value::as_str)
            .or_else(|| v.get("message").and_then(Value::as_str))
        {
            return Err(Error::Backend(msg.to_string()));
        }
        Ok(v)
    }

    async fn current(&self) -> Result<i64> {
        let v = self.call("/v3/kv/range", json!({"key": b64(b"\0"), "count_only": true})).await?;
        Ok(num(&v["header"]["revision"]))
    }

    /// etcd's compacted revision, learnt from a watch from revision 1 (cancelled with it when
    /// history was compacted).
    async fn compact_revision(&self) -> Result<i64> {
        let resp = self
            .http
            .post(format!("{}/v3/watch", self.base))
            .body(json!({"create_request": {"key": b64(b"\0"), "start_revision": "1"}}).to_string())
            .send()
            .await
            .map_err(|e| Error::Backend(format!("etcd: {e}")))?;
        let mut lines = LineStream::new(resp);
        while let Some(v) = lines.next().await? {
            if v["result"]["canceled"] == json!(true) {
                return Ok(num(&v["result"]["compact_revision"]));
            }
            if v["result"]["created"] == json!(true) {
                // Not cancelled at once: nothing compacted (the next line would say otherwise).
                match tokio::time::timeout(std::time::Duration::from_millis(200), lines.next()).await {
                    Ok(Ok(Some(v))) if v["result"]["canceled"] == json!(true) => return Ok(num(&v["result"]["compact_revision"])),
                    _ => return Ok(0),
                }
            }
        }
        Ok(0)
    }

    /// Map etcd's revision errors onto the store's.
    async fn revision_error(&self, e: Error, requested: i64) -> Error {
        match &e {
            Error::Backend(m) if m.contains("compacted") => Error::Compacted {
                requested,
                compacted: self.compact_revision().await.unwrap_or(0),
            },
            Error::Backend(m) if m.contains("future revision") => Error::FutureRevision {
                requested,
                current: self.current().await.unwrap_or(0),
            },
            _ => e,
        }
    }

    async fn txn(&self, key: &str, compare: Value, op: Value) -> Result<(bool, Value)> {
        let k = b64(key.as_bytes());
        let body = json!({
            "compare": [compare],
            "success": [op],
            "failure": [{"request_range": {"key": k}}],
        });
        let v = self.call("/v3/kv/txn", body).await?;
        Ok((v["succeeded"] == json!(true), v))
    }

    /// A failed compare: the key is missing, or at another revision.
    fn failed(key: &str, v: &Value, expected: i64) -> Error {
        let kvs = &v["responses"][0]["response_range"]["kvs"];
        match kvs.as_array().and_then(|a| a.first()) {
            None => Error::NotFound(key.to_string()),
            Some(cur) => Error::Conflict {
                key: key.to_string(),
                expected,
                actual: num(&cur["mod_revision"]),
            },
        }
    }
}

/// JSON objects, one per line, from a streamed response.
struct LineStream {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl LineStream {
    fn new(resp: reqwest::Response) -> Self {
        LineStream {
            body: resp.bytes_stream().boxed(),
            buf: Vec::new(),
        }
    }

    async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| Error::Backend(format!("etcd watch: {e}")));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(Error::Backend(format!("etcd watch: {e}"))),
                None if self.buf.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => {
                    let line = std::mem::take(&mut self.buf);
                    return serde_json::from_slice(&line)
                        .map(Some)
                        .map_err(|e| Error::Backend(format!("etcd watch: {e}")));
                }
            }
        }
    }
}

/// The compare of an update or delete: the key is at `expected` (0: it exists at all).
fn expected_compare(k: &str, expected: i64) -> Value {
    if expected == 0 {
        json!({"key": k, "target": "CREATE", "result": "GREATER", "create_revision": "0"})
    } else {
        json!({"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": expected.to_string()})
    }
}

impl Store for EtcdStore {
    fn revision(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(self.current())
    }

    fn compacted(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(self.compact_revision())
    }

    fn get<'a>(&'a self, key: &'a str, revision: Option<i64>) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        Box::pin(async move {
            let mut body = json!({"key": b64(key.as_bytes())});
            if let Some(r) = revision {
                body["revision"] = json!(r.to_string());
            }
            let v = match self.call("/v3/kv/range", body).await {
                Ok(v) => v,
                Err(e) => return Err(self.revision_error(e, revision.unwrap_or(0)).await),
            };
            v["kvs"].as_array().and_then(|a| a.first()).map(kv).transpose()
        })
    }

    fn list<'a>(&'a self, prefix: &'a str, opts: ListOptions) -> BoxFuture<'a, Result<Page>> {
        Box::pin(async move {
            let start = match &opts.start_after {
                Some(s) if s.as_str() >= prefix => {
                    let mut k = s.as_bytes().to_vec();
                    k.push(0);
                    k
                }
                _ => prefix.as_bytes().to_vec(),
            };
            let mut body = json!({"key": b64(&start), "range_end": b64(&prefix_end(prefix))});
            if opts.limit > 0 {
                body["limit"] = json!(opts.limit.to_string());
            }
            if let Some(r) = opts.revision {
                body["revision"] = json!(r.to_string());
            }
            let v = match self.call("/v3/kv/range", body).await {
                Ok(v) => v,
                Err(e) => return Err(self.revision_error(e, opts.revision.unwrap_or(0)).await),
            };
            let items = v["kvs"].as_array().into_iter().flatten().map(kv).collect::<Result<Vec<_>>>()?;
            Ok(Page {
                items,
                revision: opts.revision.unwrap_or_else(|| num(&v["header"]["revision"])),
                more: v["more"] == json!(true),
            })
        })
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<KeyValue>> {
        Box::pin(async move {
            let k = b64(key.as_bytes());
            let compare = json!({"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"});
            let (ok, v) = self
                .txn(key, compare, json!({"request_put": {"key": k, "value": b64(&value)}}))
                .await?;
            if !ok {
                return Err(Error::AlreadyExists(key.to_string()));
            }
            let rev = num(&v["header"]["revision"]);
            Ok(KeyValue {
                key: key.to_string(),
                value,
                create_revision: rev,
                mod_revision: rev,
            })
        })
    }

    fn update<'a>(&'a self, key: &'a str, value: Vec<u8>, expected: i64) -> BoxFuture<'a, Result<KeyValue>> {
        Box::pin(async move {
            let k = b64(key.as_bytes());
            let compare = expected_compare(&k, expected);
            let (ok, v) = self
                .txn(
                    key,
                    compare,
                    json!({"request_put": {"key": k, "value": b64(&value), "prev_kv": true}}),
                )
                .await?;
            if !ok {
                return Err(Self::failed(key, &v, expected));
            }
            let prev = &v["responses"][0]["response_put"]["prev_kv"];
            Ok(KeyValue {
                key: key.to_string(),
                value,
                create_revision: num(&prev["create_revision"]),
                mod_revision: num(&v["header"]["revision"]),
            })
        })
    }

    fn delete<'a>(&'a self, key: &'a str, expected: i64) -> BoxFuture<'a, Result<KeyValue>> {
        Box::pin(async move {
            let k = b64(key.as_bytes());
            let compare = expected_compare(&k, expected);
            let (ok, v) = self
                .txn(key, compare, json!({"request_delete_range": {"key": k, "prev_kv": true}}))
                .await?;
            if !ok {
                return Err(Self::failed(key, &v, expected));
            }
            let prev = v["responses"][0]["response_delete_range"]["prev_kvs"]
                .as_array()
                .and_then(|a| a.first())
                .ok_or_else(|| Error::NotFound(key.to_string()))?;
            let mut gone = kv(prev)?;
            gone.mod_revision = num(&v["header"]["revision"]);
            Ok(gone)
        })
    }

    fn watch<'a>(&'a self, prefix: &'a str, after: i64) -> BoxFuture<'a, Result<Watch>> {
        Box::pin(async move {
            // etcd creates a watch from a compacted revision and cancels it a moment later; ask
            // first with a read at that revision, which fails at once.
            let current = self.current().await?;
            if after < current {
                let probe = json!({"key": b64(b"\0"), "count_only": true, "revision": (after + 1).to_string()});
                if let Err(e) = self.call("/v3/kv/range", probe).await {
                    return Err(self.revision_error(e, after).await);
                }
            }
            let body = json!({"create_request": {
                "key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix)),
                "start_revision": (after + 1).to_string(), "prev_kv": true,
            }});
            let resp = self
                .http
                .post(format!("{}/v3/watch", self.base))
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| Error::Backend(format!("etcd: {e}")))?;
            let mut lines = LineStream::new(resp);
            // The first message says whether the watch stands (or was compacted away).
            let first = lines.next().await?.ok_or_else(|| Error::Backend("etcd closed the watch".into()))?;
            if first["result"]["canceled"] == json!(true) {
                return Err(Error::Compacted {
                    requested: after,
                    compacted: num(&first["result"]["compact_revision"]),
                });
            }
            let (tx, rx) = mpsc::channel(256);
            tokio::spawn(async move {
                let mut pending = Some(first);
                loop {
                    let msg = match pending.take() {
                        Some(m) => m,
                        None => match tokio::select! { m = lines.next() => m, _ = tx.closed() => return } {
                            Ok(Some(m)) => m,
                            Ok(None) => return,
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        },
                    };
                    let r = &msg["result"];
                    if r["canceled"] == json!(true) {
                        let _ = tx
                            .send(Err(Error::Compacted {
                                requested: after,
                                compacted: num(&r["compact_revision"]),
                            }))
                            .await;
                        return;
                    }
                    for e in r["events"].as_array().into_iter().flatten() {
                        let delete = e["type"] == "DELETE";
                        let prev = if e["prev_kv"].is_object() { kv(&e["prev_kv"]).ok() } else { None };
                        let ev = if delete {
                            let Some(p) = prev.clone() else { continue };
                            Event {
                                kind: EventKind::Delete,
                                kv: KeyValue {
                                    mod_revision: num(&e["kv"]["mod_revision"]),
                                    ..p
                                },
                                prev,
                            }
                        } else {
                            match kv(&e["kv"]) {
                                Ok(k) => Event {
                                    kind: EventKind::Put,
                                    kv: k,
                                    prev,
                                },
                                Err(err) => {
                                    let _ = tx.send(Err(err)).await;
                                    return;
                                }
                            }
                        };
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                }
            });
            Ok(rx)
        })
    }

    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            match self
                .call("/v3/kv/compaction", json!({"revision": revision.to_string(), "physical": true}))
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(self.revision_error(e, revision).await),
            }
        })
    }
}
