//! Running pods (the kubelet's main loop, in the daemon): every pod bound to this node gets a
//! worker that makes the engine hold what the pod asks — a sandbox (a pause container on the
//! cluster bridge, whose network and IPC namespaces the pod's containers join), the init
//! containers in order (sidecars kept running), then the containers, restarted per the
//! restartPolicy with the kubelet's back-off (10 s doubling to 5 min, CrashLoopBackOff) — and
//! writes the pod's status as the kubelet writes it. Everything is read back from the engine's
//! containers (labelled with the pod's uid, container name and attempt), so a daemon restart
//! re-adopts running pods and a worker that dies loses nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::service::ContainerService;
use engine::types::Container;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use super::build;
use super::events::record_at;
use crate::apiserver::objects::{set_condition, stored_bytes};
use crate::store::{Error as StoreError, ListOptions, Store};

/// Labels on every container the agent makes.
pub const UID: &str = "io.kubernetes.pod.uid";
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const CONTAINER: &str = "io.kubernetes.container.name";
pub const ATTEMPT: &str = "io.kubernetes.container.restartCount";
/// The image the container's spec names (the engine's config holds the image ID it resolved to).
pub const IMAGE: &str = "io.kubernetes.container.image";
/// The CDI devices a pod's container was given for its extended resources (comma-separated).
pub const DEVICES: &str = "io.berth.cdi-devices";
/// The sandbox's container name label.
pub const SANDBOX: &str = "POD";

const PODS: &str = "/registry/core/pods/";
const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The cluster bridge pods are on.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    /// The engine network's name.
    pub name: String,
    /// Its subnet (`10.42.0.0/16`).
    pub subnet: String,
    /// Its bridge interface.
    pub bridge: String,
}

impl Default for PodNetwork {
    fn default() -> Self {
        PodNetwork {
            name: "berth-pods".into(),
            subnet: "10.42.0.0/16".into(),
            bridge: "berth-cni0".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ProbeState {
    ready: bool,
    started: bool,
}

struct Worker {
    tx: watch::Sender<Option<Value>>,
    nudge: Arc<Notify>,
}

/// The node's pods.
pub struct Pods {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Arc<dyn ContainerService>,
    node: String,
    dir: PathBuf,
    network: PodNetwork,
    /// Signs the service-account tokens of projected volumes.
    issuer: Arc<crate::apiserver::auth::Issuer>,
    workers: Mutex<HashMap<String, Worker>>,
    probes: Mutex<HashMap<String, ProbeState>>,
    /// Held while a container's devices are chosen and it is created.
    devices: tokio::sync::Mutex<()>,
}

/// A restart waiting for its back-off.
#[derive(Debug, Clone)]
struct Backoff {
    delay: Duration,
    not_before: Instant,
    /// The exited instance it is for.
    after: String,
}

#[derive(Default)]
struct PodState {
    /// Why a container is not running (it could not be made or pulled): reason, message.
    waiting: HashMap<String, (String, String)>,
    backoff: HashMap<String, Backoff>,
    /// The delay of the next back-off of each container.
    next_delay: HashMap<String, Duration>,
    /// Instances whose probes run.
    probed: HashSet<String>,
    /// Containers whose "image already present" event was recorded.
    announced: HashSet<String>,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn k8s_time(t: &str) -> Value {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) if t.timestamp() > 0 => json!(t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        _ => Value::Null,
    }
}

fn attempt(c: &Container) -> i64 {
    c.config.labels.get(ATTEMPT).and_then(|a| a.parse().ok()).unwrap_or(0)
}

fn exited(c: &Container) -> bool {
    !c.state.running && c.state.status != "created"
}

fn terminated(c: &Container) -> Value {
    let reason = if c.state.oom_killed {
        "OOMKilled"
    } else if c.state.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    let mut t = json!({
        "exitCode": c.state.exit_code,
        "reason": reason,
        "startedAt": k8s_time(&c.state.started_at),
        "finishedAt": k8s_time(&c.state.finished_at),
        "containerID": format!("berth://{}", c.id),
    });
    if !c.state.error.is_empty() {
        t["message"] = json!(c.state.error);
    }
    t
}

impl Pods {
    /// The agent's pods on `node`, their files under `dir`.
    pub fn new(
        store: Arc<dyn Store>,
        engine: Arc<dyn ContainerService>,
        node: String,
        dir: PathBuf,
        network: PodNetwork,
        issuer: Arc<crate::apiserver::auth::Issuer>,
    ) -> Arc<Pods> {
        Arc::new(Pods {
            store,
            engine,
            node,
            dir,
            network,
            issuer,
            workers: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashMap::new()),
            devices: tokio::sync::Mutex::new(()),
        })
    }

    /// The engine containers of pod `uid`.
    pub fn containers_of(&self, uid: &str) -> Vec<Container> {
        self.engine
            .containers()
            .into_iter()
            .filter(|c| c.config.labels.get(UID).is_some_and(|u| u == uid))
            .collect()
    }

    /// The latest instance of a pod's container (and the one before it).
    pub fn instances(all: &[Container], name: &str) -> (Option<Container>, Option<Container>) {
        let mut mine: Vec<&Container> = all
            .iter()
            .filter(|c| c.config.labels.get(CONTAINER).is_some_and(|n| n == name))
            .collect();
        mine.sort_by_key(|c| attempt(c));
        let latest = mine.pop().cloned();
        (latest, mine.pop().cloned())
    }

    /// Run until aborted: follow the pods bound here, and the engine's container exits.
    pub async fn run(self: Arc<Self>) {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "making the pods directory");
        }
        let me = self.clone();
        tokio::spawn(async move { me.follow_engine().await });
        loop {
            if let Err(e) = self.follow_store().await {
                tracing::warn!(error = %e, "following pods; starting over");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn mine(&self, pod: &Value) -> bool {
        s(pod, "/spec/nodeName") == self.node
    }

    fn dispatch(self: &Arc<Self>, uid: &str, pod: Option<Value>) {
        let mut workers = self.workers.lock().expect("workers");
        if let Some(w) = workers.get(uid) {
            let _ = w.tx.send(pod);
            return;
        }
        let Some(pod) = pod else { return };
        let (tx, rx) = watch::channel(Some(pod));
        let nudge = Arc::new(Notify::new());
        workers.insert(uid.to_string(), Worker { tx, nudge: nudge.clone() });
        let me = self.clone();
        let uid = uid.to_string();
        tokio::spawn(async move { me.worker(uid, rx, nudge).await });
    }

    async fn follow_store(self: &Arc<Self>) -> Result<(), StoreError> {
        let page = self.store.list(PODS, ListOptions::default()).await?;
        let mut known = HashSet::new();
        for kv in &page.items {
            let pod: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
            if self.mine(&pod) {
                let uid = s(&pod, "/metadata/uid").to_string();
                known.insert(uid.clone());
                self.dispatch(&uid, Some(pod));
            }
        }
        self.remove_orphans(&known).await;
        let mut rx = self.store.watch(PODS, page.revision).await?;
        let mut tidy = tokio::time::interval(Duration::from_secs(60));
        tidy.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { return Ok(()) };
                    let ev = ev?;
                    let pod: Value = serde_json::from_slice(&ev.kv.value).unwrap_or_default();
                    let uid = s(&pod, "/metadata/uid").to_string();
                    match ev.kind {
                        crate::store::EventKind::Delete => {
                            let prev: Value = ev.prev.as_ref().and_then(|p| serde_json::from_slice(&p.value).ok()).unwrap_or(pod);
                            let uid = s(&prev, "/metadata/uid").to_string();
                            self.dispatch(&uid, None);
                        }
                        _ if self.mine(&pod) => self.dispatch(&uid, Some(pod)),
                        _ => {}
                    }
                }
                _ = tidy.tick() => {
                    let page = self.store.list(PODS, ListOptions::default()).await?;
                    let known: HashSet<String> = page.items.iter()
                        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
                        .filter(|p| self.mine(p))
                        .map(|p| s(&p, "/metadata/uid").to_string())
                        .collect();
                    self.remove_orphans(&known).await;
                }
            }
        }
    }

    /// Containers of pods that no longer exist (deleted while the daemon was down) go.
    async fn remove_orphans(self: &Arc<Self>, known: &HashSet<String>) {
        let busy: HashSet<String> = self.workers.lock().expect("workers").keys().cloned().collect();
        let mut gone: HashSet<String> = HashSet::new();
        for c in self.engine.containers() {
            if let Some(uid) = c.config.labels.get(UID) {
                if !known.contains(uid) && !busy.contains(uid) {
                    let _ = self.engine.remove(&c.id).await;
                    gone.insert(uid.clone());
                }
            }
        }
        for uid in gone {
            self.remove_pod_dir(&uid);
        }
    }

    fn remove_pod_dir(&self, uid: &str) {
        let d = self.dir.join(uid);
        build::unmount_all(&d);
        if d.exists() {
            if let Err(e) = std::fs::remove_dir_all(&d) {
                tracing::warn!(dir = %d.display(), error = %e, "removing a pod's directory");
            }
        }
    }

    async fn follow_engine(self: Arc<Self>) {
        loop {
            let mut rx = self.engine.events();
            loop {
                match rx.recv().await {
                    Ok(e) if e.kind == "container" && matches!(e.action.as_str(), "die" | "start" | "destroy" | "oom") => {
                        if let Some(uid) = e.actor.attributes.get(UID) {
                            if let Some(w) = self.workers.lock().expect("workers").get(uid) {
                                w.nudge.notify_one();
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        for w in self.workers.lock().expect("workers").values() {
                            w.nudge.notify_one();
                        }
                    }
                    Err(_) => break,
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn worker(self: Arc<Self>, uid: String, mut rx: watch::Receiver<Option<Value>>, nudge: Arc<Notify>) {
        let mut st = PodState::default();
        loop {
            let pod = rx.borrow_and_update().clone();
            let next = match pod {
                None => {
                    self.teardown(&uid, 0, None).await;
                    None
                }
                Some(p) => self.sync(&p, &mut st).await,
            };
            let Some(wait) = next else { break };
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                _ = nudge.notified() => {},
                _ = tokio::time::sleep(wait) => {},
            }
        }
        self.workers.lock().expect("workers").remove(&uid);
    }

    /// Stop a pod's containers (their preStop hooks first, then the stop signal and `grace`
    /// seconds), then its sandbox; remove them all and its files.
    async fn teardown(&self, uid: &str, grace: i64, pod: Option<&Value>) {
        let all = self.containers_of(uid);
        let mut stops = Vec::new();
        for c in all
            .iter()
            .filter(|c| c.state.running && c.config.labels.get(CONTAINER).is_some_and(|n| n != SANDBOX))
        {
            let engine = self.engine.clone();
            let id = c.id.clone();
            let name = c.config.labels.get(CONTAINER).cloned().unwrap_or_default();
            let spec = pod.and_then(|p| {
                ["containers", "initContainers"]
                    .iter()
                    .filter_map(|l| p.pointer(&format!("/spec/{l}")).and_then(Value::as_array))
                    .flatten()
                    .find(|x| x["name"] == name.as_str())
                    .cloned()
            });
            let ip = pod.map(|p| s(p, "/status/podIP").to_string()).unwrap_or_default();
            if let (Some(p), Some(_)) = (pod, spec.as_ref()) {
                record_at(
                    self.store.as_ref(),
                    p,
                    Some(&format!("spec.containers{{{name}}}")),
                    "Normal",
                    "Killing",
                    &format!("Stopping container {name}"),
                    "kubelet",
                )
                .await;
            }
            stops.push(tokio::spawn(async move {
                let start = Instant::now();
                if let Some(h) = spec
                    .as_ref()
                    .and_then(|c| c.pointer("/lifecycle/preStop"))
                    .filter(|h| h.is_object())
                {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(grace.max(0) as u64),
                        super::probe::run(&engine, &id, spec.as_ref().expect("spec"), h, &ip),
                    )
                    .await;
                }
                let left = (grace - start.elapsed().as_secs() as i64).max(0);
                let _ = engine.stop(&id, left).await;
            }));
        }
        for s in stops {
            let _ = s.await;
        }
        for c in &all {
            if c.state.running {
                let _ = self.engine.stop(&c.id, 0).await;
            }
            if let Err(e) = self.engine.remove(&c.id).await {
                tracing::warn!(container = %c.id, error = %e, "removing a pod's container");
            }
            self.probes.lock().expect("probes").remove(&c.id);
        }
        self.remove_pod_dir(uid);
    }

    /// A deleted pod whose finalizers keep it (a Job's, say) ends in a terminal phase, as the
    /// kubelet leaves it: Succeeded when every container exited 0 and none is restarted,
    /// Failed otherwise.
    async fn terminal_phase(&self, pod: &Value) {
        let key = format!("{PODS}{}/{}", s(pod, "/metadata/namespace"), s(pod, "/metadata/name"));
        for _ in 0..5 {
            let Ok(Some(kv)) = self.store.get(&key, None).await else { return };
            let mut cur: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
            let holds = cur
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            if s(&cur, "/metadata/uid") != s(pod, "/metadata/uid") || !holds || matches!(s(&cur, "/status/phase"), "Succeeded" | "Failed") {
                return;
            }
            let all_zero = cur
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    !cs.is_empty()
                        && cs
                            .iter()
                            .all(|c| c.pointer("/state/terminated/exitCode").and_then(Value::as_i64) == Some(0))
                });
            let phase = if all_zero && s(&cur, "/spec/restartPolicy") != "Always" {
                "Succeeded"
            } else {
                "Failed"
            };
            cur["status"]["phase"] = json!(phase);
            match self
                .store
                .update(&key, crate::apiserver::objects::stored_bytes(&cur), kv.mod_revision)
                .await
            {
                Ok(_) => return,
                Err(crate::store::Error::Conflict { .. }) => continue,
                Err(_) => return,
            }
        }
    }

    /// The kubelet's final delete of a pod it stopped: gone from the store (if still the same pod).
    async fn finish_delete(&self, pod: &Value) {
        let key = format!("{PODS}{}/{}", s(pod, "/metadata/namespace"), s(pod, "/metadata/name"));
        for _ in 0..5 {
            let Ok(Some(kv)) = self.store.get(&key, None).await else { return };
            let cur: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
            if s(&cur, "/metadata/uid") != s(pod, "/metadata/uid") {
                return;
            }
            let res = crate::apiserver::resources::find("", "v1", "pods").expect("pods are served");
            let store = self.store.clone();
            match crate::apiserver::gc::remove(
                &store,
                res,
                kv.clone(),
                kv.mod_revision,
                crate::apiserver::gc::Propagation::Background,
            )
            .await
            {
                Ok(_) => return,
                Err(e) if e.reason == "Conflict" => continue,
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e.message, "deleting a stopped pod");
                    return;
                }
            }
        }
    }

    fn facts(&self, pod_ip: &str) -> build::NodeFacts {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        build::NodeFacts {
            pod_ip: pod_ip.to_string(),
            host_ip: super::internal_ip().unwrap_or_default(),
            cpu_milli: cpus * 1000,
            memory: super::memory_kib() as i64 * 1024,
        }
    }

    fn labels(pod: &Value, container: &str, attempt: i64) -> BTreeMap<String, String> {
        [
            (UID, s(pod, "/metadata/uid")),
            (POD_NAME, s(pod, "/metadata/name")),
            (POD_NAMESPACE, s(pod, "/metadata/namespace")),
            (CONTAINER, container),
            (ATTEMPT, &attempt.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn engine_name(pod: &Value, container: &str, attempt: i64) -> String {
        format!(
            "k8s_{container}_{}_{}_{}_{attempt}",
            s(pod, "/metadata/name"),
            s(pod, "/metadata/namespace"),
            s(pod, "/metadata/uid")
        )
    }

    /// A new sandbox for the pod: a pause container on the cluster bridge (or the host's
    /// network), host name the pod's.
    async fn make_sandbox(&self, pod: &Value, attempt: i64) -> Result<Container, String> {
        use engine::types::NetworkMode;
        let image = self.engine.pause_image().map_err(|e| e.to_string())?;
        let mut req = engine::containers::CreateRequest {
            sandbox: true,
            ..Default::default()
        };
        req.config.image = image;
        req.config.labels = Self::labels(pod, SANDBOX, attempt);
        let host_net = pod.pointer("/spec/hostNetwork") == Some(&Value::Bool(true));
        if host_net {
            req.host_config.network_mode = NetworkMode::Host;
        } else {
            self.engine
                .ensure_network(&self.network.name, &self.network.subnet, &self.network.bridge)
                .map_err(|e| format!("the pod network: {e}"))?;
            req.host_config.network_mode = NetworkMode::Named(self.network.name.clone());
            let hostname = pod
                .pointer("/spec/hostname")
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty())
                .unwrap_or(s(pod, "/metadata/name"));
            req.config.hostname = hostname.chars().take(63).collect();
            if let Some(sub) = pod.pointer("/spec/subdomain").and_then(Value::as_str).filter(|h| !h.is_empty()) {
                req.config.domainname = format!("{sub}.{}.svc.cluster.local", s(pod, "/metadata/namespace"));
            }
        }
        req.host_config.ipc_mode = "shareable".into();
        req.host_config.extra.insert("Runtime".into(), json!(engine::BUILTIN_RUNTIME));
        let mut hosts = Vec::new();
        for a in pod.pointer("/spec/hostAliases").and_then(Value::as_array).into_iter().flatten() {
            for h in a["hostnames"].as_array().into_iter().flatten() {
                hosts.push(format!("{}:{}", h.as_str().unwrap_or(""), a["ip"].as_str().unwrap_or("")));
            }
        }
        if !hosts.is_empty() {
            req.host_config.extra_hosts = Some(hosts);
        }
        let dns = pod.pointer("/spec/dnsConfig");
        let list = |k: &str| -> Option<Vec<String>> {
            dns.and_then(|d| d.get(k))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        };
        let host_net = pod.pointer("/spec/hostNetwork") == Some(&Value::Bool(true));
        let mut opts: Option<Vec<String>> = dns.and_then(|d| d.get("options")).and_then(Value::as_array).map(|a| {
            a.iter()
                .map(|o| match o["value"].as_str() {
                    Some(v) => format!("{}:{v}", o["name"].as_str().unwrap_or("")),
                    None => o["name"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        });
        match (s(pod, "/spec/dnsPolicy"), host_net) {
            ("None", _) => {
                req.host_config.dns = list("nameservers");
                req.host_config.dns_search = list("searches");
            }
            // The cluster DNS first, as the kubelet writes resolv.conf: its Service's address,
            // the pod's namespace and the cluster's domains searched, ndots:5.
            ("ClusterFirst" | "", false) | ("ClusterFirstWithHostNet", _) => {
                let ns = s(pod, "/metadata/namespace");
                let mut servers = vec![crate::apiserver::network::ranges().nth(10).to_string()];
                servers.extend(list("nameservers").unwrap_or_default());
                let mut search = vec![
                    format!("{ns}.svc.cluster.local"),
                    "svc.cluster.local".into(),
                    "cluster.local".into(),
                ];
                search.extend(list("searches").unwrap_or_default());
                req.host_config.dns = Some(servers);
                req.host_config.dns_search = Some(search);
                let mut o = vec!["ndots:5".to_string()];
                for x in opts.take().unwrap_or_default() {
                    let key = x.split(':').next().unwrap_or("").to_string();
                    o.retain(|y| y.split(':').next() != Some(key.as_str()));
                    o.push(x);
                }
                opts = Some(o);
            }
            // Default (or ClusterFirst on the host's network): the node's resolv.conf.
            _ => {
                if let Some(n) = list("nameservers") {
                    req.host_config.dns = Some(n);
                }
                if let Some(sr) = list("searches") {
                    req.host_config.dns_search = Some(sr);
                }
            }
        }
        if opts.is_some() {
            req.host_config.dns_options = opts;
        }
        let name = Self::engine_name(pod, SANDBOX, attempt);
        let id = self.engine.create(&name, req).await.map_err(|e| e.to_string())?;
        if let Err(e) = self.engine.start(&id).await {
            let _ = self.engine.remove(&id).await;
            return Err(e.to_string());
        }
        self.engine.container(&id).map_err(|e| e.to_string())
    }

    fn pod_ip(&self, sandbox: &Container, pod: &Value) -> String {
        if pod.pointer("/spec/hostNetwork") == Some(&Value::Bool(true)) {
            return super::internal_ip().unwrap_or_default();
        }
        sandbox
            .endpoints
            .get(&self.network.name)
            .map(|e| e.ip_address.to_string())
            .unwrap_or_default()
    }

    /// Make the image there as the pull policy says.
    async fn ensure_image(&self, pod: &Value, c: &Value, name: &str, st: &mut PodState) -> Result<String, (String, String)> {
        let image = c["image"].as_str().unwrap_or("");
        let policy = c["imagePullPolicy"].as_str().unwrap_or("IfNotPresent");
        let local = self.engine.image_id(image);
        let field = format!("spec.containers{{{name}}}");
        let pull = match (policy, &local) {
            ("Never", None) => {
                return Err((
                    "ErrImageNeverPull".into(),
                    format!("Container image \"{image}\" is not present with pull policy of Never"),
                ))
            }
            ("Always", _) | (_, None) => true,
            _ => false,
        };
        if !pull {
            if st.announced.insert(name.to_string()) {
                record_at(
                    self.store.as_ref(),
                    pod,
                    Some(&field),
                    "Normal",
                    "Pulled",
                    &format!("Container image \"{image}\" already present on machine"),
                    "kubelet",
                )
                .await;
            }
            return Ok(local.expect("present"));
        }
        if let Some(b) = st.backoff.get(&format!("pull:{name}")) {
            if Instant::now() < b.not_before {
                return Err(("ImagePullBackOff".into(), format!("Back-off pulling image \"{image}\"")));
            }
        }
        record_at(
            self.store.as_ref(),
            pod,
            Some(&field),
            "Normal",
            "Pulling",
            &format!("Pulling image \"{image}\""),
            "kubelet",
        )
        .await;
        let t = Instant::now();
        match self.engine.pull(image).await {
            Ok(id) => {
                st.backoff.remove(&format!("pull:{name}"));
                record_at(
                    self.store.as_ref(),
                    pod,
                    Some(&field),
                    "Normal",
                    "Pulled",
                    &format!("Successfully pulled image \"{image}\" in {:.3}s", t.elapsed().as_secs_f64()),
                    "kubelet",
                )
                .await;
                Ok(id)
            }
            Err(e) => {
                let key = format!("pull:{name}");
                let delay = st.backoff.get(&key).map_or(INITIAL_BACKOFF, |b| (b.delay * 2).min(MAX_BACKOFF));
                st.backoff.insert(
                    key,
                    Backoff {
                        delay,
                        not_before: Instant::now() + delay,
                        after: String::new(),
                    },
                );
                let msg = format!("Failed to pull image \"{image}\": {e}");
                record_at(self.store.as_ref(), pod, Some(&field), "Warning", "Failed", &msg, "kubelet").await;
                Err(("ErrImagePull".into(), msg))
            }
        }
    }

    /// A container could not be made or started: a `Failed` event, and the reason its status
    /// shows while it waits.
    async fn failed(&self, pod: &Value, st: &mut PodState, name: String, reason: &str, msg: String) {
        let field = format!("spec.containers{{{name}}}");
        record_at(
            self.store.as_ref(),
            pod,
            Some(&field),
            "Warning",
            "Failed",
            &format!("Error: {msg}"),
            "kubelet",
        )
        .await;
        st.waiting.insert(name, (reason.to_string(), msg));
    }

    /// Make and start one instance of container `c`.
    async fn start_container(self: &Arc<Self>, pod: &Value, c: &Value, sandbox: &Container, attempt: i64, st: &mut PodState) -> bool {
        let name = c["name"].as_str().unwrap_or("").to_string();
        let field = format!("spec.containers{{{name}}}");
        let image = match self.ensure_image(pod, c, &name, st).await {
            Ok(i) => i,
            Err(w) => {
                st.waiting.insert(name, w);
                return false;
            }
        };
        let pod_ip = self.pod_ip(sandbox, pod);
        let facts = self.facts(&pod_ip);
        let made = async {
            let vols = build::prepare_volumes(
                self.store.as_ref(),
                pod,
                &self.dir.join(s(pod, "/metadata/uid")).join("volumes"),
                &facts,
                &self.issuer,
            )
            .await?;
            let env = build::environment(self.store.as_ref(), pod, c, &facts).await?;
            let binds = build::binds(c, &vols)?;
            build::create_request(pod, c, &image, &sandbox.id, &env, binds, Self::labels(pod, &name, attempt))
        }
        .await;
        let mut req = match made {
            Ok(r) => r,
            Err((reason, msg)) => {
                self.failed(pod, st, name, reason, msg).await;
                return false;
            }
        };
        req.config.labels.insert(IMAGE.into(), c["image"].as_str().unwrap_or("").into());
        // Logs stay bounded, as the kubelet rotates them (10 MiB, 5 files).
        req.host_config.log_config.kind = "json-file".into();
        req.host_config.log_config.config = [
            ("max-size".to_string(), "10m".to_string()),
            ("max-file".to_string(), "5".to_string()),
        ]
        .into();
        let ename = Self::engine_name(pod, &name, attempt);
        // A leftover of the same attempt (a create that failed half-way) goes first.
        if let Ok(old) = self.engine.container(&ename) {
            let _ = self.engine.remove(&old.id).await;
        }
        // Extended resources: devices of the node chosen (and the container created) under one
        // lock, so two pods never get the same one.
        let devices_held = self.devices.lock().await;
        match self.assign_devices(pod, c) {
            Ok(names) if names.is_empty() => {}
            Ok(names) => {
                req.config.labels.insert(DEVICES.into(), names.join(","));
                req.host_config
                    .extra
                    .insert("DeviceRequests".into(), json!([{"Driver": "cdi", "DeviceIDs": names}]));
            }
            Err(msg) => {
                self.failed(pod, st, name, "UnexpectedAdmissionError", msg).await;
                return false;
            }
        }
        let created = self.engine.create(&ename, req).await;
        drop(devices_held);
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                self.failed(pod, st, name, "CreateContainerError", e.to_string()).await;
                return false;
            }
        };
        record_at(
            self.store.as_ref(),
            pod,
            Some(&field),
            "Normal",
            "Created",
            &format!("Created container: {name}"),
            "kubelet",
        )
        .await;
        if let Err(e) = self.engine.start(&id).await {
            self.failed(pod, st, name, "RunContainerError", e.to_string()).await;
            return false;
        }
        st.waiting.remove(&name);
        record_at(
            self.store.as_ref(),
            pod,
            Some(&field),
            "Normal",
            "Started",
            &format!("Started container {name}"),
            "kubelet",
        )
        .await;
        if let Some(h) = c.pointer("/lifecycle/postStart").filter(|h| h.is_object()) {
            if let Err(e) = super::probe::run(&self.engine, &id, c, h, &pod_ip).await {
                let msg = format!("PostStartHook failed: {e}");
                record_at(
                    self.store.as_ref(),
                    pod,
                    Some(&field),
                    "Warning",
                    "FailedPostStartHook",
                    &msg,
                    "kubelet",
                )
                .await;
                let _ = self.engine.stop(&id, 0).await;
            }
        }
        self.spawn_probes(pod, c, &id, &pod_ip, st);
        true
    }

    /// The CDI devices for a container's extended resources (`nvidia.com/gpu: 1`): the ones an
    /// earlier instance of it had, else free ones (held by no other container).
    fn assign_devices(&self, pod: &Value, c: &Value) -> Result<Vec<String>, String> {
        let want: Vec<(String, i64)> = crate::scheduler::extended(c).filter(|(_, n)| *n > 0).collect();
        if want.is_empty() {
            return Ok(vec![]);
        }
        let uid = s(pod, "/metadata/uid");
        let name = c["name"].as_str().unwrap_or("");
        // What this container had before, and what every other container holds (its pod's
        // other containers included).
        let (mut before, mut taken) = (BTreeSet::new(), BTreeSet::new());
        for x in self.engine.containers() {
            let l = &x.config.labels;
            let Some(devices) = l.get(DEVICES) else { continue };
            let mine = l.get(UID).map(String::as_str) == Some(uid) && l.get(CONTAINER).map(String::as_str) == Some(name);
            let set = if mine { &mut before } else { &mut taken };
            set.extend(devices.split(',').map(String::from));
        }
        let kinds = self.engine.cdi_devices();
        let mut out = Vec::new();
        for (kind, n) in want {
            let have = kinds.get(&kind).cloned().unwrap_or_default();
            let qualified: Vec<String> = have.iter().map(|d| format!("{kind}={d}")).collect();
            let mut pick: Vec<String> = qualified.iter().filter(|q| before.contains(*q)).cloned().collect();
            pick.extend(qualified.iter().filter(|q| !before.contains(*q) && !taken.contains(*q)).cloned());
            pick.truncate(n as usize);
            if pick.len() < n as usize {
                let free = qualified.iter().filter(|q| !taken.contains(*q)).count();
                return Err(format!(
                    "Allocate failed due to requested number of devices unavailable for {kind}. Requested: {n}, Available: {free} (of {})",
                    qualified.len()
                ));
            }
            out.extend(pick);
        }
        Ok(out)
    }

    fn spawn_probes(self: &Arc<Self>, pod: &Value, c: &Value, id: &str, pod_ip: &str, st: &mut PodState) {
        if !st.probed.insert(id.to_string()) {
            return;
        }
        let has = |k: &str| c.get(k).is_some_and(Value::is_object);
        let initial = ProbeState {
            ready: !has("readinessProbe"),
            started: !has("startupProbe"),
        };
        self.probes.lock().expect("probes").insert(id.to_string(), initial);
        if !has("readinessProbe") && !has("livenessProbe") && !has("startupProbe") {
            return;
        }
        let me = self.clone();
        let (pod, c, id, ip) = (pod.clone(), c.clone(), id.to_string(), pod_ip.to_string());
        tokio::spawn(async move { me.probe_loop(pod, c, id, ip).await });
    }

    fn set_probe(&self, id: &str, f: impl FnOnce(&mut ProbeState)) -> bool {
        let mut p = self.probes.lock().expect("probes");
        let Some(e) = p.get_mut(id) else { return false };
        let before = (e.ready, e.started);
        f(e);
        before != (e.ready, e.started)
    }

    fn nudge(&self, uid: &str) {
        if let Some(w) = self.workers.lock().expect("workers").get(uid) {
            w.nudge.notify_one();
        }
    }

    /// The container's probes, until it stops: startup first, then liveness and readiness.
    async fn probe_loop(self: Arc<Self>, pod: Value, c: Value, id: String, ip: String) {
        let uid = s(&pod, "/metadata/uid").to_string();
        let name = c["name"].as_str().unwrap_or("").to_string();
        let field = format!("spec.containers{{{name}}}");
        let secs = |p: &Value, k: &str, d: u64| p[k].as_u64().unwrap_or(d);
        let started_at = Instant::now();
        let mut counts: HashMap<&str, (u64, u64)> = HashMap::new();
        let mut last_run: HashMap<&str, Instant> = HashMap::new();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            match self.engine.container(&id) {
                Ok(ct) if ct.state.running => {}
                _ => break,
            }
            let started = self.probes.lock().expect("probes").get(&id).is_some_and(|p| p.started);
            let kinds: &[&str] = if started {
                &["livenessProbe", "readinessProbe"]
            } else {
                &["startupProbe"]
            };
            for kind in kinds {
                let Some(p) = c.get(*kind).filter(|p| p.is_object()) else {
                    continue;
                };
                if started_at.elapsed() < Duration::from_secs(secs(p, "initialDelaySeconds", 0)) {
                    continue;
                }
                let period = Duration::from_secs(secs(p, "periodSeconds", 10).max(1));
                if last_run.get(kind).is_some_and(|t| t.elapsed() < period) {
                    continue;
                }
                last_run.insert(kind, Instant::now());
                let r = super::probe::run(&self.engine, &id, &c, p, &ip).await;
                let (ok, fail) = counts.entry(kind).or_default();
                match &r {
                    Ok(_) => {
                        *ok += 1;
                        *fail = 0;
                    }
                    Err(_) => {
                        *fail += 1;
                        *ok = 0;
                    }
                }
                let (ok, fail) = (*ok, *fail);
                let success = ok >= secs(p, "successThreshold", 1).max(1);
                let failed = fail >= secs(p, "failureThreshold", 3).max(1);
                let what = match *kind {
                    "livenessProbe" => "Liveness",
                    "readinessProbe" => "Readiness",
                    _ => "Startup",
                };
                if let Err(e) = &r {
                    record_at(
                        self.store.as_ref(),
                        &pod,
                        Some(&field),
                        "Warning",
                        "Unhealthy",
                        &format!("{what} probe failed: {e}"),
                        "kubelet",
                    )
                    .await;
                }
                match *kind {
                    "readinessProbe" => {
                        let changed = if success {
                            self.set_probe(&id, |s| s.ready = true)
                        } else if failed {
                            self.set_probe(&id, |s| s.ready = false)
                        } else {
                            false
                        };
                        if changed {
                            self.nudge(&uid);
                        }
                    }
                    "startupProbe" if success => {
                        self.set_probe(&id, |s| s.started = true);
                        self.nudge(&uid);
                    }
                    _ if failed => {
                        let msg = format!("Container {name} failed {} probe, will be restarted", what.to_lowercase());
                        record_at(self.store.as_ref(), &pod, Some(&field), "Normal", "Killing", &msg, "kubelet").await;
                        let grace = pod
                            .pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_i64)
                            .unwrap_or(30);
                        let _ = self.engine.stop(&id, grace).await;
                        return;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Restart an exited instance now, later (its back-off: the wait), or never (none).
    fn restart_due(&self, name: &str, inst: &Container, st: &mut PodState) -> Option<Duration> {
        if let Some(b) = st.backoff.get(name).filter(|b| b.after == inst.id) {
            return Some(b.not_before.saturating_duration_since(Instant::now()));
        }
        // First time this exit is seen: a run of 10 minutes resets the back-off.
        let ran = chrono::DateTime::parse_from_rfc3339(&inst.state.finished_at)
            .ok()
            .zip(chrono::DateTime::parse_from_rfc3339(&inst.state.started_at).ok())
            .map(|(f, s)| (f - s).num_seconds())
            .unwrap_or(0);
        let delay = if ran >= 600 {
            Duration::ZERO
        } else {
            st.next_delay.get(name).copied().unwrap_or(Duration::ZERO)
        };
        st.next_delay.insert(
            name.to_string(),
            if delay.is_zero() {
                INITIAL_BACKOFF
            } else {
                (delay * 2).min(MAX_BACKOFF)
            },
        );
        st.backoff.insert(
            name.to_string(),
            Backoff {
                delay,
                not_before: Instant::now() + delay,
                after: inst.id.clone(),
            },
        );
        Some(delay)
    }

    /// Make the engine hold what the pod asks, then write its status. When to look again
    /// (none: the worker is done).
    async fn sync(self: &Arc<Self>, pod: &Value, st: &mut PodState) -> Option<Duration> {
        let uid = s(pod, "/metadata/uid").to_string();
        if pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
            let grace = pod
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30);
            self.teardown(&uid, grace, Some(pod)).await;
            self.terminal_phase(pod).await;
            self.finish_delete(pod).await;
            return None;
        }
        let phase = s(pod, "/status/phase");
        if matches!(phase, "Succeeded" | "Failed") {
            // Finished: nothing restarts; the sandbox goes (its address is freed).
            for c in self.containers_of(&uid).iter().filter(|c| c.state.running) {
                let _ = self.engine.stop(&c.id, 0).await;
            }
            return Some(Duration::from_secs(3600));
        }
        if self.deadline_exceeded(pod).await {
            return Some(Duration::from_secs(5));
        }
        let mut all = self.containers_of(&uid);
        // The sandbox: the running one, or a new one (then every container starts again).
        let (sb, _) = Self::instances(&all, SANDBOX);
        let sandbox = match sb {
            Some(s) if s.state.running => s,
            old => {
                let next = old.as_ref().map_or(0, |o| attempt(o) + 1);
                for c in all.iter().filter(|c| c.state.running) {
                    let _ = self.engine.stop(&c.id, 0).await;
                }
                if let Some(o) = &old {
                    let _ = self.engine.remove(&o.id).await;
                }
                match self.make_sandbox(pod, next).await {
                    Ok(s) => {
                        all = self.containers_of(&uid);
                        s
                    }
                    Err(e) => {
                        record_at(
                            self.store.as_ref(),
                            pod,
                            None,
                            "Warning",
                            "FailedCreatePodSandBox",
                            &format!("Failed to create pod sandbox: {e}"),
                            "kubelet",
                        )
                        .await;
                        self.write_status(pod, st, None, &all).await;
                        return Some(Duration::from_secs(5));
                    }
                }
            }
        };
        let policy = s(pod, "/spec/restartPolicy").to_string();
        let pod_ip = self.pod_ip(&sandbox, pod);
        let mut wake = Duration::from_secs(30);
        let mut failed_init = false;
        // Init containers, in order.
        let mut init_done = true;
        for c in pod.pointer("/spec/initContainers").and_then(Value::as_array).into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or("");
            let sidecar = c["restartPolicy"] == "Always";
            let (latest, _) = Self::instances(&all, name);
            match latest {
                None => {
                    let started = self.start_container(pod, c, &sandbox, 0, st).await;
                    if !(sidecar && started) {
                        init_done = false;
                        wake = wake.min(Duration::from_secs(2));
                        break;
                    }
                }
                Some(i) if i.state.running => {
                    self.spawn_probes(pod, c, &i.id, &pod_ip, st);
                    let started = self.probes.lock().expect("probes").get(&i.id).is_none_or(|p| p.started);
                    if !(sidecar && started) {
                        init_done = false;
                        break;
                    }
                }
                Some(i) if !sidecar && exited(&i) && i.state.exit_code == 0 => {}
                Some(i) if exited(&i) || i.state.status == "created" => {
                    if !sidecar && policy == "Never" {
                        failed_init = true;
                        init_done = false;
                        break;
                    }
                    if let Some(d) = self.restart_due(name, &i, st) {
                        if d.is_zero() {
                            st.backoff.remove(name);
                            self.start_container(pod, c, &sandbox, attempt(&i) + 1, st).await;
                        } else {
                            wake = wake.min(d);
                        }
                    }
                    if !sidecar {
                        init_done = false;
                        break;
                    }
                }
                Some(_) => {
                    init_done = false;
                    break;
                }
            }
        }
        if init_done {
            for c in pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or("");
                let (latest, _) = Self::instances(&all, name);
                match latest {
                    None => {
                        if !self.start_container(pod, c, &sandbox, 0, st).await {
                            wake = wake.min(Duration::from_secs(2));
                        }
                    }
                    Some(i) if i.state.running => {
                        self.spawn_probes(pod, c, &i.id, &pod_ip, st);
                        // A changed image (the one mutable field) restarts the container.
                        if i.config.labels.get(IMAGE).map(String::as_str) != c["image"].as_str() {
                            let grace = pod
                                .pointer("/spec/terminationGracePeriodSeconds")
                                .and_then(Value::as_i64)
                                .unwrap_or(30);
                            let _ = self.engine.stop(&i.id, grace).await;
                            st.next_delay.remove(name);
                            self.start_container(pod, c, &sandbox, attempt(&i) + 1, st).await;
                        }
                    }
                    Some(i) => {
                        let again = match policy.as_str() {
                            "Always" => true,
                            "OnFailure" => i.state.exit_code != 0 || i.state.status == "created",
                            _ => false,
                        };
                        if again {
                            if let Some(d) = self.restart_due(name, &i, st) {
                                if d.is_zero() {
                                    st.backoff.remove(name);
                                    self.start_container(pod, c, &sandbox, attempt(&i) + 1, st).await;
                                } else {
                                    wake = wake.min(d);
                                }
                            }
                        }
                    }
                }
            }
        }
        // Only the latest instance and the one before it are kept (for `logs --previous`).
        let all = self.containers_of(&uid);
        let mut by_name: HashMap<String, Vec<&Container>> = HashMap::new();
        for c in &all {
            by_name
                .entry(c.config.labels.get(CONTAINER).cloned().unwrap_or_default())
                .or_default()
                .push(c);
        }
        for (_, mut v) in by_name {
            v.sort_by_key(|c| std::cmp::Reverse(attempt(c)));
            for old in v.iter().skip(2).filter(|c| !c.state.running) {
                let _ = self.engine.remove(&old.id).await;
            }
        }
        let all = self.containers_of(&uid);
        let wrote = self.write_status(pod, st, Some((&sandbox, failed_init)), &all).await;
        if !wrote {
            wake = wake.min(Duration::from_millis(500));
        }
        Some(wake)
    }

    /// `activeDeadlineSeconds` passed: the pod's containers stop and it fails. Whether it did.
    async fn deadline_exceeded(&self, pod: &Value) -> bool {
        let Some(deadline) = pod.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_i64) else {
            return false;
        };
        let Ok(start) = chrono::DateTime::parse_from_rfc3339(s(pod, "/status/startTime")) else {
            return false;
        };
        if deadline > (chrono::Utc::now() - start.with_timezone(&chrono::Utc)).num_seconds() {
            return false;
        }
        for c in self.containers_of(s(pod, "/metadata/uid")).iter().filter(|c| c.state.running) {
            let _ = self.engine.stop(&c.id, 0).await;
        }
        let msg = "Pod was active on the node longer than the specified deadline";
        record_at(self.store.as_ref(), pod, None, "Normal", "DeadlineExceeded", msg, "kubelet").await;
        self.update_status(pod, |o| {
            o["status"]["phase"] = json!("Failed");
            o["status"]["reason"] = json!("DeadlineExceeded");
            o["status"]["message"] = json!(msg);
        })
        .await;
        true
    }

    /// Change the stored pod's status with `f` (if it is still this pod). Whether it was written.
    async fn update_status(&self, pod: &Value, f: impl Fn(&mut Value)) -> bool {
        let key = format!("{PODS}{}/{}", s(pod, "/metadata/namespace"), s(pod, "/metadata/name"));
        for _ in 0..5 {
            let Ok(Some(kv)) = self.store.get(&key, None).await else {
                return false;
            };
            let mut cur: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
            if s(&cur, "/metadata/uid") != s(pod, "/metadata/uid") {
                return false;
            }
            let before = cur.clone();
            f(&mut cur);
            if cur == before {
                return true;
            }
            match self.store.update(&key, stored_bytes(&cur), kv.mod_revision).await {
                Ok(_) => return true,
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "writing a pod's status");
                    return false;
                }
            }
        }
        false
    }

    fn container_status(
        &self,
        c: &Value,
        latest: Option<&Container>,
        previous: Option<&Container>,
        st: &PodState,
        pending_init: bool,
    ) -> Value {
        let name = c["name"].as_str().unwrap_or("");
        let mut cs = json!({
            "name": name,
            "image": c["image"],
            "imageID": "",
            "ready": false,
            "restartCount": latest.map_or(0, attempt),
            "started": false,
            "state": {},
            "lastState": {},
        });
        let waiting = |reason: &str, message: &str| {
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        };
        if let Some(p) = previous.filter(|p| exited(p)) {
            cs["lastState"] = json!({"terminated": terminated(p)});
        }
        match latest {
            Some(i) => {
                cs["containerID"] = json!(format!("berth://{}", i.id));
                cs["imageID"] = json!(i.image);
                if i.state.running {
                    let probe = self.probes.lock().expect("probes").get(&i.id).copied().unwrap_or(ProbeState {
                        ready: true,
                        started: true,
                    });
                    cs["state"] = json!({"running": {"startedAt": k8s_time(&i.state.started_at)}});
                    cs["started"] = json!(probe.started);
                    cs["ready"] = json!(probe.ready && probe.started);
                } else if let Some(b) = st.backoff.get(name).filter(|b| b.after == i.id && !b.delay.is_zero()) {
                    let pod = i.config.labels.get(POD_NAME).cloned().unwrap_or_default();
                    let ns = i.config.labels.get(POD_NAMESPACE).cloned().unwrap_or_default();
                    let uid = i.config.labels.get(UID).cloned().unwrap_or_default();
                    cs["state"] = waiting(
                        "CrashLoopBackOff",
                        &format!(
                            "back-off {}s restarting failed container={name} pod={pod}_{ns}({uid})",
                            b.delay.as_secs()
                        ),
                    );
                    cs["lastState"] = json!({"terminated": terminated(i)});
                } else if let Some((r, m)) = st.waiting.get(name) {
                    cs["state"] = waiting(r, m);
                    if exited(i) {
                        cs["lastState"] = json!({"terminated": terminated(i)});
                    }
                } else if exited(i) {
                    cs["state"] = json!({"terminated": terminated(i)});
                } else {
                    cs["state"] = waiting("ContainerCreating", "");
                }
            }
            None => {
                cs["state"] = match st.waiting.get(name) {
                    Some((r, m)) => waiting(r, m),
                    None if pending_init => waiting("PodInitializing", ""),
                    None => waiting("ContainerCreating", ""),
                };
            }
        }
        cs
    }

    /// Write the pod's status from what the engine holds. Whether it was written (or unchanged).
    async fn write_status(&self, pod: &Value, st: &PodState, sandbox: Option<(&Container, bool)>, all: &[Container]) -> bool {
        let policy = s(pod, "/spec/restartPolicy");
        let inits: Vec<Value> = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mains: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let failed_init = sandbox.is_some_and(|(_, f)| f);
        // Init containers are done when each non-sidecar one exited 0 and each sidecar started.
        let mut pending: Vec<String> = Vec::new();
        let mut init_statuses = Vec::new();
        for c in &inits {
            let name = c["name"].as_str().unwrap_or("");
            let (latest, prev) = Self::instances(all, name);
            let cs = self.container_status(c, latest.as_ref(), prev.as_ref(), st, false);
            let sidecar = c["restartPolicy"] == "Always";
            let done = if sidecar {
                cs["started"] == true
            } else {
                cs.pointer("/state/terminated/exitCode") == Some(&json!(0))
            };
            if !done {
                pending.push(name.to_string());
            }
            init_statuses.push(cs);
        }
        let initialized = pending.is_empty();
        let mut statuses = Vec::new();
        let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
        let mut unready = Vec::new();
        for c in &mains {
            let name = c["name"].as_str().unwrap_or("");
            let (latest, prev) = Self::instances(all, name);
            let cs = self.container_status(c, latest.as_ref(), prev.as_ref(), st, !initialized);
            if cs["state"]["running"].is_object() {
                running += 1;
            } else if cs["state"]["terminated"].is_object() {
                stopped += 1;
                if cs["state"]["terminated"]["exitCode"] == 0 {
                    succeeded += 1;
                }
            } else if cs["lastState"]["terminated"].is_object() {
                stopped += 1;
            } else {
                waiting += 1;
            }
            if cs["ready"] != true {
                unready.push(name.to_string());
            }
            statuses.push(cs);
        }
        let phase = if failed_init {
            "Failed"
        } else if !initialized || waiting > 0 {
            "Pending"
        } else if running > 0 {
            "Running"
        } else if stopped > 0 {
            match policy {
                "Always" => "Running",
                _ if stopped == succeeded => "Succeeded",
                "Never" => "Failed",
                _ => "Running",
            }
        } else {
            "Pending"
        };
        let pod_ip = sandbox.map(|(s, _)| self.pod_ip(s, pod)).unwrap_or_default();
        let host_ip = super::internal_ip().unwrap_or_default();
        let sandbox_ready = sandbox.is_some_and(|(s, _)| s.state.running);
        let finished = matches!(phase, "Succeeded" | "Failed");
        self.update_status(pod, |o| {
            let qos = crate::apiserver::pods::qos_class(&o["spec"]);
            let status = &mut o["status"];
            if !status.is_object() {
                *status = json!({});
            }
            status["phase"] = json!(phase);
            if status.get("startTime").is_none_or(Value::is_null) {
                status["startTime"] = json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
            }
            status["hostIP"] = json!(host_ip);
            status["hostIPs"] = json!([{"ip": host_ip}]);
            if pod_ip.is_empty() {
                if let Some(m) = status.as_object_mut() {
                    m.remove("podIP");
                    m.remove("podIPs");
                }
            } else {
                status["podIP"] = json!(pod_ip);
                status["podIPs"] = json!([{"ip": pod_ip}]);
            }
            if !init_statuses.is_empty() {
                status["initContainerStatuses"] = json!(init_statuses);
            }
            status["containerStatuses"] = json!(statuses);
            if status.get("qosClass").is_none_or(Value::is_null) {
                status["qosClass"] = json!(qos);
            }
            let t = |b: bool| if b { "True" } else { "False" };
            set_condition(o, "PodReadyToStartContainers", t(sandbox_ready), "", "");
            if initialized {
                set_condition(o, "Initialized", "True", "", "");
            } else {
                set_condition(
                    o,
                    "Initialized",
                    "False",
                    "ContainersNotInitialized",
                    &format!("containers with incomplete status: [{}]", pending.join(" ")),
                );
            }
            let ready = unready.is_empty() && initialized && !finished;
            let (reason, msg) = if finished {
                ("PodCompleted", String::new())
            } else if ready {
                ("", String::new())
            } else {
                (
                    "ContainersNotReady",
                    format!("containers with unready status: [{}]", unready.join(" ")),
                )
            };
            set_condition(o, "ContainersReady", t(ready), reason, &msg);
            set_condition(o, "Ready", t(ready), reason, &msg);
            set_condition(o, "PodScheduled", "True", "", "");
            // Conditions in the kubelet's order.
            if let Some(conds) = o["status"]["conditions"].as_array_mut() {
                let order = [
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                ];
                conds.sort_by_key(|c| order.iter().position(|x| c["type"] == *x).unwrap_or(order.len()));
            }
        })
        .await
    }
}
