//! The controllers (kube-controller-manager's part, in the daemon): each an idempotent
//! `reconcile(key) -> Action` fed by informers' changes through a work queue (see
//! [`runtime`]), never a loop over everything. So far: ReplicaSets ([`replicaset`]) and
//! Deployments ([`deployment`]).

pub mod deployment;
pub mod replicaset;
pub mod runtime;

use std::sync::Arc;

use serde_json::Value;

use crate::apiserver::resources::{find, Resource};
use crate::apiserver::ApiServer;
use runtime::{Client, Informer, Queue};

fn resource(group: &str, version: &str, plural: &str) -> &'static Resource {
    find(group, version, plural).expect("a served kind")
}

pub(crate) fn pods() -> &'static Resource {
    resource("", "v1", "pods")
}

pub(crate) fn replica_sets() -> &'static Resource {
    resource("apps", "v1", "replicasets")
}

pub(crate) fn deployments() -> &'static Resource {
    resource("apps", "v1", "deployments")
}

/// The caches the controllers share.
pub struct Informers {
    /// Pods.
    pub pods: Arc<Informer>,
    /// ReplicaSets.
    pub replica_sets: Arc<Informer>,
    /// Deployments.
    pub deployments: Arc<Informer>,
}

/// Record an event about `obj` from the controller manager.
pub(crate) async fn event(client: &Client, obj: &Value, kind: &str, reason: &str, message: &str) {
    let source = match obj["kind"].as_str() {
        Some("Deployment") => "deployment-controller",
        Some("ReplicaSet") => "replicaset-controller",
        _ => "kube-controller-manager",
    };
    crate::agent::events::record(client.store(), obj, kind, reason, message, source).await;
}

/// A status as compared and written: without null fields and zero counts (Kubernetes omits
/// them), except the `keep` ones.
pub(crate) fn compact_status(mut status: Value, keep: &[&str]) -> Value {
    if let Some(m) = status.as_object_mut() {
        m.retain(|k, v| keep.contains(&k.as_str()) || !(v.is_null() || v.as_i64() == Some(0)));
        for k in keep {
            m.entry(k.to_string()).or_insert(Value::from(0));
        }
        Value::Object(m.clone())
    } else {
        let mut m = serde_json::Map::new();
        for k in keep {
            m.insert(k.to_string(), Value::from(0));
        }
        Value::Object(m)
    }
}

/// Start the informers and controllers; they run until the daemon stops.
pub async fn run(server: Arc<ApiServer>) {
    let store = server.store.clone();
    let informers = Arc::new(Informers {
        pods: Informer::new(pods()),
        replica_sets: Informer::new(replica_sets()),
        deployments: Informer::new(deployments()),
    });
    // Subscribe before the informers fill, so that their first lists reach the controllers.
    let mut pod_changes = informers.pods.subscribe();
    let mut rs_changes = informers.replica_sets.subscribe();
    let mut d_changes = informers.deployments.subscribe();
    for i in [&informers.pods, &informers.replica_sets, &informers.deployments] {
        tokio::spawn(i.clone().run(store.clone()));
    }
    for i in [&informers.pods, &informers.replica_sets, &informers.deployments] {
        i.synced().await;
    }
    let client = Client::new(server, replicaset::AGENT);
    let (rs_queue, rs_rx) = Queue::new();
    let (d_queue, d_rx) = Queue::new();
    let rsc = Arc::new(replicaset::Controller {
        client: client.clone(),
        informers: informers.clone(),
        queue: rs_queue.clone(),
        expectations: Default::default(),
    });
    let dc = Arc::new(deployment::Controller {
        client,
        informers: informers.clone(),
        queue: d_queue.clone(),
    });
    // Everything once at start (what changed while the daemon was down).
    for k in informers.replica_sets.keys() {
        rs_queue.add(k);
    }
    for k in informers.deployments.keys() {
        d_queue.add(k);
    }
    {
        let (rsc, dc) = (rsc.clone(), dc.clone());
        let informers = informers.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    c = pod_changes.recv() => match c {
                        Ok(c) => {
                            rsc.pod_changed(c.old.as_deref(), c.new.as_deref());
                            if c.new.is_none() {
                                dc.pod_gone(c.object());
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            for k in informers.replica_sets.keys() { rsc.queue.add(k); }
                        }
                        Err(_) => return,
                    },
                    c = rs_changes.recv() => match c {
                        Ok(c) => {
                            rsc.queue.add(runtime::key_of(c.object()));
                            dc.replica_set_changed(c.object());
                            if let (Some(old), Some(new)) = (&c.old, &c.new) {
                                if old["metadata"]["labels"] != new["metadata"]["labels"] {
                                    dc.replica_set_changed(old);
                                }
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            for k in informers.replica_sets.keys() { rsc.queue.add(k); }
                            for k in informers.deployments.keys() { dc.queue.add(k); }
                        }
                        Err(_) => return,
                    },
                    c = d_changes.recv() => match c {
                        Ok(c) => dc.queue.add(runtime::key_of(c.object())),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            for k in informers.deployments.keys() { dc.queue.add(k); }
                        }
                        Err(_) => return,
                    },
                }
            }
        });
    }
    let r = rsc.clone();
    tokio::spawn(runtime::work("replicaset", rs_queue, rs_rx, move |k| {
        let r = r.clone();
        async move { r.reconcile(k).await }
    }));
    let d = dc.clone();
    tokio::spawn(runtime::work("deployment", d_queue, d_rx, move |k| {
        let d = d.clone();
        async move { d.reconcile(k).await }
    }));
}
