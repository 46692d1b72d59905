//! The controllers (kube-controller-manager's part, in the daemon): each an idempotent
//! `reconcile(key) -> Action` fed by informers' changes through a work queue (see
//! [`runtime`]), never a loop over everything. So far: ReplicaSets ([`replicaset`]),
//! Deployments ([`deployment`]), Endpoints and EndpointSlices ([`endpoints`]), Jobs
//! ([`job`]) and CronJobs ([`cronjob`]), StatefulSets and DaemonSets ([`statefulset`]),
//! volumes ([`volumes`]), autoscalers ([`hpa`]), node lifecycle ([`nodes`]), quotas
//! ([`quota`]) and disruption budgets ([`disruption`]).

pub mod cronjob;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod hpa;
pub mod job;
pub mod nodes;
pub mod quota;
pub mod replicaset;
pub mod runtime;
pub mod statefulset;
pub mod volumes;

use std::sync::Arc;

use serde_json::Value;

use crate::apiserver::resources::{find, Resource};
use crate::apiserver::ApiServer;
use runtime::{Change, Client, Informer, Queue};

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

pub(crate) fn jobs() -> &'static Resource {
    resource("batch", "v1", "jobs")
}

pub(crate) fn cron_jobs() -> &'static Resource {
    resource("batch", "v1", "cronjobs")
}

pub(crate) fn hpas() -> &'static Resource {
    resource("autoscaling", "v2", "horizontalpodautoscalers")
}

pub(crate) fn budgets() -> &'static Resource {
    resource("policy", "v1", "poddisruptionbudgets")
}

pub(crate) fn quotas() -> &'static Resource {
    resource("", "v1", "resourcequotas")
}

pub(crate) fn nodes() -> &'static Resource {
    resource("", "v1", "nodes")
}

pub(crate) fn stateful_sets() -> &'static Resource {
    resource("apps", "v1", "statefulsets")
}

pub(crate) fn daemon_sets() -> &'static Resource {
    resource("apps", "v1", "daemonsets")
}

pub(crate) fn revisions() -> &'static Resource {
    resource("apps", "v1", "controllerrevisions")
}

pub(crate) fn ingresses() -> &'static Resource {
    resource("networking.k8s.io", "v1", "ingresses")
}

pub(crate) fn ingress_classes() -> &'static Resource {
    resource("networking.k8s.io", "v1", "ingressclasses")
}

pub(crate) fn secrets() -> &'static Resource {
    resource("", "v1", "secrets")
}

pub(crate) fn pvs() -> &'static Resource {
    resource("", "v1", "persistentvolumes")
}

pub(crate) fn pvcs() -> &'static Resource {
    resource("", "v1", "persistentvolumeclaims")
}

pub(crate) fn storage_classes() -> &'static Resource {
    resource("storage.k8s.io", "v1", "storageclasses")
}

pub(crate) fn services() -> &'static Resource {
    resource("", "v1", "services")
}

pub(crate) fn endpoints() -> &'static Resource {
    resource("", "v1", "endpoints")
}

pub(crate) fn endpoint_slices() -> &'static Resource {
    resource("discovery.k8s.io", "v1", "endpointslices")
}

/// The caches the controllers (and the node's proxy and DNS) share.
pub struct Informers {
    /// Pods.
    pub pods: Arc<Informer>,
    /// ReplicaSets.
    pub replica_sets: Arc<Informer>,
    /// Deployments.
    pub deployments: Arc<Informer>,
    /// Services.
    pub services: Arc<Informer>,
    /// Endpoints.
    pub endpoints: Arc<Informer>,
    /// EndpointSlices.
    pub endpoint_slices: Arc<Informer>,
    /// Jobs.
    pub jobs: Arc<Informer>,
    /// CronJobs.
    pub cron_jobs: Arc<Informer>,
    /// PersistentVolumes.
    pub pvs: Arc<Informer>,
    /// PersistentVolumeClaims.
    pub pvcs: Arc<Informer>,
    /// StorageClasses.
    pub storage_classes: Arc<Informer>,
    /// HorizontalPodAutoscalers (autoscaling/v2).
    pub hpas: Arc<Informer>,
    /// Ingresses.
    pub ingresses: Arc<Informer>,
    /// IngressClasses.
    pub ingress_classes: Arc<Informer>,
    /// Secrets (TLS certificates of Ingresses).
    pub secrets: Arc<Informer>,
    /// StatefulSets.
    pub stateful_sets: Arc<Informer>,
    /// DaemonSets.
    pub daemon_sets: Arc<Informer>,
    /// ControllerRevisions.
    pub revisions: Arc<Informer>,
    /// ResourceQuotas.
    pub quotas: Arc<Informer>,
    /// PodDisruptionBudgets.
    pub budgets: Arc<Informer>,
}

/// What the controllers need of the daemon.
#[derive(Clone)]
pub struct Config {
    /// Where provisioned volumes live (`ROOT/kube/volumes`).
    pub volumes: std::path::PathBuf,
    /// This node's name (none: no node here, nothing provisioned).
    pub node: Option<String>,
    /// The node's resource metrics (for the autoscalers).
    pub metrics: Option<Arc<crate::agent::metrics::Metrics>>,
    /// How long a node's Lease may go unrenewed before it is unreachable.
    pub node_grace: std::time::Duration,
}

impl Default for Informers {
    fn default() -> Self {
        Self::new()
    }
}

impl Informers {
    /// Empty caches (filled once [`run`] runs them).
    pub fn new() -> Informers {
        Informers {
            pods: Informer::new(pods()),
            replica_sets: Informer::new(replica_sets()),
            deployments: Informer::new(deployments()),
            services: Informer::new(services()),
            endpoints: Informer::new(endpoints()),
            endpoint_slices: Informer::new(endpoint_slices()),
            jobs: Informer::new(jobs()),
            cron_jobs: Informer::new(cron_jobs()),
            pvs: Informer::new(pvs()),
            pvcs: Informer::new(pvcs()),
            storage_classes: Informer::new(storage_classes()),
            hpas: Informer::new(hpas()),
            ingresses: Informer::new(ingresses()),
            ingress_classes: Informer::new(ingress_classes()),
            secrets: Informer::new(secrets()),
            stateful_sets: Informer::new(stateful_sets()),
            daemon_sets: Informer::new(daemon_sets()),
            revisions: Informer::new(revisions()),
            quotas: Informer::new(quotas()),
            budgets: Informer::new(budgets()),
        }
    }

    pub(crate) fn all(&self) -> [&Arc<Informer>; 20] {
        [
            &self.pods,
            &self.replica_sets,
            &self.deployments,
            &self.services,
            &self.endpoints,
            &self.endpoint_slices,
            &self.jobs,
            &self.cron_jobs,
            &self.pvs,
            &self.pvcs,
            &self.storage_classes,
            &self.hpas,
            &self.ingresses,
            &self.ingress_classes,
            &self.secrets,
            &self.stateful_sets,
            &self.daemon_sets,
            &self.revisions,
            &self.quotas,
            &self.budgets,
        ]
    }
}

/// Publish the Endpoints of the Services the node itself serves: `kubernetes` (the API server,
/// also listening on the pod network's gateway) and `kube-dns` (the cluster DNS there).
pub async fn publish_node_endpoints(server: Arc<ApiServer>, gateway: std::net::Ipv4Addr, api_port: u16) {
    let client = Client::new(server, replicaset::AGENT);
    let wanted = [
        crate::dns::node_endpoints("kubernetes", "default", gateway, &[("https", api_port, "TCP")]),
        crate::dns::node_endpoints("kube-dns", "kube-system", gateway, &[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]),
    ];
    for want in wanted {
        let ns = runtime::str_at(&want, "/metadata/namespace").to_string();
        let name = runtime::str_at(&want, "/metadata/name").to_string();
        for _ in 0..5 {
            let r = match client.create(endpoints(), &ns, want.clone()).await {
                Err(e) if e.code == 409 => {
                    let path = format!("/registry/core/endpoints/{ns}/{name}");
                    match client.store().get(&path, None).await {
                        Ok(Some(kv)) => {
                            let mut cur = crate::apiserver::objects::from_kv(endpoints(), &kv).unwrap_or_default();
                            if cur["subsets"] == want["subsets"] {
                                Ok(Value::Null)
                            } else {
                                cur["subsets"] = want["subsets"].clone();
                                client.update(endpoints(), &cur).await
                            }
                        }
                        _ => Err(e),
                    }
                }
                r => r,
            };
            match r {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(endpoints = %name, error = %e.message, "publishing the node's endpoints");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Record an event about `obj` from the controller manager.
pub(crate) async fn event(client: &Client, obj: &Value, kind: &str, reason: &str, message: &str) {
    let source = match obj["kind"].as_str() {
        Some("Deployment") => "deployment-controller",
        Some("ReplicaSet") => "replicaset-controller",
        Some("Job") => "job-controller",
        Some("CronJob") => "cronjob-controller",
        Some("StatefulSet") => "statefulset-controller",
        Some("DaemonSet") => "daemonset-controller",
        Some("HorizontalPodAutoscaler") => "horizontal-pod-autoscaler",
        Some("PodDisruptionBudget") => "controllermanager",
        _ => "kube-controller-manager",
    };
    crate::agent::events::record(client.store(), obj, kind, reason, message, source).await;
}

/// A status as compared and written: without null fields and zero counts (Kubernetes omits
/// them), except the `keep` ones.
pub(crate) fn compact_status(status: Value, keep: &[&str]) -> Value {
    let mut m = match status {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    m.retain(|k, v| keep.contains(&k.as_str()) || !(v.is_null() || v.as_i64() == Some(0)));
    for k in keep {
        m.entry(k.to_string()).or_insert(Value::from(0));
    }
    Value::Object(m)
}

/// Call `f` on each change `informer` sees (from its first list on: subscribe before it
/// runs), and `lagged` when changes were missed (the receiver fell behind).
pub(crate) fn on_change(informer: &Informer, f: impl Fn(&Change) + Send + 'static, lagged: impl Fn() + Send + 'static) {
    let mut rx = informer.subscribe();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(c) => f(&c),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => lagged(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Serve a queue with one controller's reconcile method.
macro_rules! serve {
    ($name:expr, $queue:expr, $rx:expr, $ctrl:expr, $method:ident) => {{
        let c = $ctrl.clone();
        serve($name, $queue, $rx, move |k| {
            let c = c.clone();
            async move { c.$method(k).await }
        });
    }};
}

/// Whether an update may change what the object takes of a quota (a Service's type or ports,
/// a claim's request).
fn changed_usage(c: &Change) -> bool {
    match (&c.old, &c.new) {
        (Some(a), Some(b)) => a.get("spec") != b.get("spec"),
        _ => true,
    }
}

/// Queue every object of `informer` that changes (all of them when changes were missed).
fn queue_changes(informer: &Arc<Informer>, queue: &Queue) {
    let (q, q2, i) = (queue.clone(), queue.clone(), informer.clone());
    on_change(informer, move |c| q.add(runtime::key_of(c.object())), move || requeue_all(&q2, &i));
}

/// Serve `queue` with `reconcile`, one key at a time.
fn serve<F, Fut>(name: &'static str, queue: Queue, rx: tokio::sync::mpsc::UnboundedReceiver<String>, reconcile: F)
where
    F: Fn(String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = crate::apiserver::status::ApiResult<runtime::Action>> + Send + 'static,
{
    tokio::spawn(runtime::work(name, queue, rx, reconcile));
}

/// Queue every key of `informer`.
fn requeue_all(queue: &Queue, informer: &Informer) {
    for k in informer.keys() {
        queue.add(k);
    }
}

/// Start the informers and controllers; they run until the daemon stops. The informers are
/// returned for the node's components (proxy, DNS) to share.
pub async fn run(server: Arc<ApiServer>, cfg: Config) -> Arc<Informers> {
    let store = server.store.clone();
    let informers = Arc::new(Informers::new());
    let client = Client::new(server, replicaset::AGENT);
    let (rs_queue, rs_rx) = Queue::new();
    let (d_queue, d_rx) = Queue::new();
    let (ep_queue, ep_rx) = Queue::new();
    let rsc = Arc::new(replicaset::Controller {
        client: client.clone(),
        informers: informers.clone(),
        queue: rs_queue.clone(),
        expectations: Default::default(),
    });
    let dc = Arc::new(deployment::Controller {
        client: client.clone(),
        informers: informers.clone(),
        queue: d_queue.clone(),
    });
    let epc = Arc::new(endpoints::Controller {
        client: client.clone(),
        informers: informers.clone(),
        queue: ep_queue.clone(),
    });
    let (job_queue, job_rx) = Queue::new();
    let (cj_queue, cj_rx) = Queue::new();
    let jc = Arc::new(job::Controller {
        client: client.clone(),
        informers: informers.clone(),
        queue: job_queue.clone(),
        expectations: Default::default(),
        backoff: Default::default(),
    });
    let cjc = Arc::new(cronjob::Controller {
        client: client.clone(),
        informers: informers.clone(),
        queue: cj_queue.clone(),
    });
    let (sts_queue, sts_rx) = Queue::new();
    let (ds_queue, ds_rx) = Queue::new();
    let ssc = Arc::new(statefulset::StatefulSets {
        client: client.clone(),
        informers: informers.clone(),
        queue: sts_queue.clone(),
    });
    let dsc = Arc::new(statefulset::DaemonSets {
        client: client.clone(),
        informers: informers.clone(),
        queue: ds_queue.clone(),
    });
    let (quota_queue, quota_rx) = Queue::new();
    let qc = Arc::new(quota::Controller {
        client: client.clone(),
        informers: informers.clone(),
        queue: quota_queue.clone(),
    });
    let (pdb_queue, pdb_rx) = Queue::new();
    let pdbc = Arc::new(disruption::Controller {
        client: client.clone(),
        informers: informers.clone(),
        queue: pdb_queue.clone(),
    });
    let lifecycle = Arc::new(nodes::Controller {
        client: client.clone(),
        informers: informers.clone(),
        grace: cfg.node_grace,
    });
    let (claim_queue, claim_rx) = Queue::new();
    let (pv_queue, pv_rx) = Queue::new();
    let (hpa_queue, hpa_rx) = Queue::new();
    let hc = Arc::new(hpa::Controller {
        client: client.clone(),
        informers: informers.clone(),
        metrics: cfg.metrics.clone(),
        history: Default::default(),
    });
    let vc = Arc::new(volumes::Controller {
        client,
        informers: informers.clone(),
        claims: claim_queue.clone(),
        dir: cfg.volumes.clone(),
        node: cfg.node.clone().unwrap_or_default(),
    });
    // Subscribe before the informers fill, so that their first lists reach the controllers.
    {
        let (rsc, dc, epc, jc, vc) = (rsc.clone(), dc.clone(), epc.clone(), jc.clone(), vc.clone());
        let (ssc, dsc, qc, pdbc) = (ssc.clone(), dsc.clone(), qc.clone(), pdbc.clone());
        let (q1, q2, q3, q4, i2) = (
            rs_queue.clone(),
            ep_queue.clone(),
            job_queue.clone(),
            pdb_queue.clone(),
            informers.clone(),
        );
        on_change(
            &informers.pods,
            move |c| {
                rsc.pod_changed(c.old.as_deref(), c.new.as_deref());
                epc.pod_changed(c.old.as_deref(), c.new.as_deref());
                jc.pod_changed(c.old.as_deref(), c.new.as_deref());
                vc.pod_changed(c.object());
                ssc.pod_changed(c.object());
                dsc.pod_changed(c.object());
                qc.object_changed(c.object());
                pdbc.pod_changed(c.old.as_deref(), c.new.as_deref());
                if c.new.is_none() {
                    dc.pod_gone(c.object());
                }
            },
            move || {
                requeue_all(&q1, &i2.replica_sets);
                requeue_all(&q2, &i2.services);
                requeue_all(&q3, &i2.jobs);
                requeue_all(&q4, &i2.budgets);
            },
        );
    }
    {
        let (rq, dc) = (rs_queue.clone(), dc.clone());
        let (rq2, dq2, i2) = (rs_queue.clone(), d_queue.clone(), informers.clone());
        on_change(
            &informers.replica_sets,
            move |c| {
                rq.add(runtime::key_of(c.object()));
                dc.replica_set_changed(c.object());
                if let (Some(old), Some(new)) = (&c.old, &c.new) {
                    if old["metadata"]["labels"] != new["metadata"]["labels"] {
                        dc.replica_set_changed(old);
                    }
                }
            },
            move || {
                requeue_all(&rq2, &i2.replica_sets);
                requeue_all(&dq2, &i2.deployments);
            },
        );
    }
    {
        queue_changes(&informers.deployments, &d_queue);
    }
    {
        let (jq, cjc2, jq2, cq2, i2) = (
            job_queue.clone(),
            cjc.clone(),
            job_queue.clone(),
            cj_queue.clone(),
            informers.clone(),
        );
        on_change(
            &informers.jobs,
            move |c| {
                jq.add(runtime::key_of(c.object()));
                cjc2.job_changed(c.object());
            },
            move || {
                requeue_all(&jq2, &i2.jobs);
                requeue_all(&cq2, &i2.cron_jobs);
            },
        );
        queue_changes(&informers.cron_jobs, &cj_queue);
    }
    {
        let (cq, cq2, i2, pq0) = (claim_queue.clone(), claim_queue.clone(), informers.clone(), pv_queue.clone());
        on_change(
            &informers.pvcs,
            move |c| {
                cq.add(runtime::key_of(c.object()));
                // A claim gone: its volume is released.
                if c.new.is_none() {
                    let v = runtime::str_at(c.object(), "/spec/volumeName");
                    if !v.is_empty() {
                        pq0.add(v.to_string());
                    }
                }
            },
            move || requeue_all(&cq2, &i2.pvcs),
        );
        queue_changes(&informers.pvs, &pv_queue);
        let (cq3, cq4, i4, i5) = (claim_queue.clone(), claim_queue.clone(), informers.clone(), informers.clone());
        on_change(
            &informers.storage_classes,
            move |_| requeue_all(&cq3, &i4.pvcs),
            move || requeue_all(&cq4, &i5.pvcs),
        );
    }
    {
        queue_changes(&informers.stateful_sets, &sts_queue);
        queue_changes(&informers.daemon_sets, &ds_queue);
    }
    {
        // A quota changed is looked at again; so are its namespace's when an object of a kind
        // quotas count comes or goes (pods are seen above).
        for inf in informers
            .all()
            .into_iter()
            .filter(|i| i.resource().namespaced && i.resource().kind != "Pod")
        {
            let (qc, qq, i2) = (qc.clone(), quota_queue.clone(), informers.clone());
            let quotas = std::ptr::eq(inf.as_ref(), informers.quotas.as_ref());
            on_change(
                inf,
                move |c| {
                    if quotas {
                        qc.queue.add(runtime::key_of(c.object()));
                    }
                    if changed_usage(c) {
                        qc.object_changed(c.object());
                    }
                },
                move || requeue_all(&qq, &i2.quotas),
            );
        }
        queue_changes(&informers.budgets, &pdb_queue);
        // A budget scaled by its pods' controllers: their scale changes it.
        for inf in [&informers.replica_sets, &informers.deployments, &informers.stateful_sets] {
            let (pc, pq, i2) = (pdbc.clone(), pdb_queue.clone(), informers.clone());
            on_change(inf, move |c| pc.owner_changed(c.object()), move || requeue_all(&pq, &i2.budgets));
        }
    }
    {
        queue_changes(&informers.hpas, &hpa_queue);
    }
    // A Service's, its Endpoints' or its slices' change: look at the Service again.
    for inf in [&informers.services, &informers.endpoints, &informers.endpoint_slices] {
        let (q, q2, i2) = (ep_queue.clone(), ep_queue.clone(), informers.clone());
        let slices = std::ptr::eq(inf.as_ref(), informers.endpoint_slices.as_ref());
        on_change(
            inf,
            move |c| {
                let o = c.object();
                let key = if slices {
                    let ns = runtime::str_at(o, "/metadata/namespace");
                    match o.pointer("/metadata/labels/kubernetes.io~1service-name").and_then(Value::as_str) {
                        Some(svc) => format!("{ns}/{svc}"),
                        None => return,
                    }
                } else {
                    runtime::key_of(o)
                };
                q.add(key);
            },
            move || requeue_all(&q2, &i2.services),
        );
    }
    for i in informers.all() {
        tokio::spawn(i.clone().run(store.clone()));
    }
    for i in informers.all() {
        i.synced().await;
    }
    serve!("replicaset", rs_queue, rs_rx, rsc, reconcile);
    serve!("deployment", d_queue, d_rx, dc, reconcile);
    serve!("endpoints", ep_queue, ep_rx, epc, reconcile);
    serve!("job", job_queue, job_rx, jc, reconcile);
    if cfg.node.is_some() {
        serve!("persistentvolumeclaim", claim_queue, claim_rx, vc, reconcile_claim);
        serve!("persistentvolume", pv_queue, pv_rx, vc, reconcile_volume);
    }
    tokio::spawn(lifecycle.run());
    serve!("resourcequota", quota_queue, quota_rx, qc, reconcile);
    serve!("disruption", pdb_queue, pdb_rx, pdbc, reconcile);
    serve!("statefulset", sts_queue, sts_rx, ssc, reconcile);
    serve!("daemonset", ds_queue, ds_rx, dsc, reconcile);
    serve!("horizontalpodautoscaler", hpa_queue, hpa_rx, hc, reconcile);
    serve!("cronjob", cj_queue, cj_rx, cjc, reconcile);
    informers
}
