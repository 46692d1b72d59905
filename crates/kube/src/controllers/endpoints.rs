//! The endpoints and endpointslice controllers, in one: for each Service with a selector, the
//! pods it selects that have an address — Endpoints (ready pods in `addresses`, the others in
//! `notReadyAddresses`, terminating pods left out unless `publishNotReadyAddresses`) and
//! EndpointSlices (every such pod, with its `ready`/`serving`/`terminating` conditions),
//! grouped by the ports the Service's `targetPort`s resolve to in each pod (a named
//! targetPort is looked up among the pod's container ports). Services without a selector keep
//! the Endpoints their owner writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::runtime::{key_of, split_key, str_at, Action, Client, Queue};
use super::Informers;
use crate::apiserver::select::selects;
use crate::apiserver::status::ApiResult;

/// EndpointSlices this controller manages carry this `endpointslice.kubernetes.io/managed-by`.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// A pod's address in a Service, with the ports its targetPorts resolve to there.
struct Member<'a> {
    pod: &'a Value,
    ports: Vec<Value>,
    ready: bool,
    terminating: bool,
}

/// The port a Service port's targetPort names in `pod` (none: the pod has no such port).
fn resolve(port: &Value, pod: &Value) -> Option<i64> {
    match &port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => {
            let proto = port["protocol"].as_str().unwrap_or("TCP");
            pod.pointer("/spec/containers")?
                .as_array()?
                .iter()
                .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                .find(|p| p["name"].as_str() == Some(name) && p["protocol"].as_str().unwrap_or("TCP") == proto)
                .and_then(|p| p["containerPort"].as_i64())
        }
        _ => port["port"].as_i64(),
    }
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]})
}

/// The hostname a pod has in a headless Service's DNS: its `hostname` when its `subdomain` is
/// the Service.
fn dns_hostname<'a>(pod: &'a Value, svc: &str) -> Option<&'a str> {
    (str_at(pod, "/spec/subdomain") == svc)
        .then(|| str_at(pod, "/spec/hostname"))
        .filter(|h| !h.is_empty())
}

/// Addresses keyed by IP (for sorting), with their JSON.
type Addresses = Vec<(String, Value)>;

/// The controller.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) queue: Queue,
}

impl Controller {
    /// Queue the Services whose selector takes the pod (before or after the change).
    pub fn pod_changed(&self, old: Option<&Value>, new: Option<&Value>) {
        for pod in [old, new].into_iter().flatten() {
            let ns = str_at(pod, "/metadata/namespace");
            for svc in self.informers.services.list(ns) {
                let sel = &svc["spec"]["selector"];
                if sel.as_object().is_some_and(|m| !m.is_empty()) && selects(&json!({"matchLabels": sel}), pod.pointer("/metadata/labels"))
                {
                    self.queue.add(key_of(&svc));
                }
            }
        }
    }

    /// Bring one Service's Endpoints and EndpointSlices to the pods it selects.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let (ns, name) = split_key(&key);
        let Some(svc) = self.informers.services.get(&key) else {
            // Its slices go with it (they are its dependents); its Endpoints are ours to remove.
            if let Some(ep) = self.informers.endpoints.get(&key) {
                self.client
                    .delete(super::endpoints(), ns, name, str_at(&ep, "/metadata/uid"))
                    .await?;
            }
            return Ok(Action::Done);
        };
        let selector = svc["spec"]["selector"].clone();
        if selector.as_object().is_none_or(|m| m.is_empty()) || str_at(&svc, "/spec/type") == "ExternalName" {
            return Ok(Action::Done);
        }
        let publish_not_ready = svc.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true));
        let pods = self.informers.pods.list(ns);
        let svc_ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
        let mut members = Vec::new();
        for pod in &pods {
            if !selects(&json!({"matchLabels": selector}), pod.pointer("/metadata/labels"))
                || str_at(pod, "/status/podIP").is_empty()
                || matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
            {
                continue;
            }
            let ports: Vec<Value> = svc_ports
                .iter()
                .filter_map(|p| {
                    let port = resolve(p, pod)?;
                    let mut e = json!({"port": port, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
                    if let Some(n) = p["name"].as_str().filter(|n| !n.is_empty()) {
                        e["name"] = json!(n);
                    }
                    if let Some(a) = p.get("appProtocol").filter(|a| !a.is_null()) {
                        e["appProtocol"] = a.clone();
                    }
                    Some(e)
                })
                .collect();
            if ports.is_empty() && !svc_ports.is_empty() {
                continue;
            }
            let terminating = pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
            members.push(Member {
                pod,
                ports,
                ready: pod_ready(pod),
                terminating,
            });
        }
        self.sync_endpoints(&svc, &members, publish_not_ready).await?;
        self.sync_slices(&svc, &members, publish_not_ready).await?;
        Ok(Action::Done)
    }

    fn labels(svc: &Value) -> serde_json::Map<String, Value> {
        let mut labels = svc["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        if str_at(svc, "/spec/clusterIP") == "None" {
            labels.insert("service.kubernetes.io/headless".into(), json!(""));
        }
        labels
    }

    async fn sync_endpoints(&self, svc: &Value, members: &[Member<'_>], publish_not_ready: bool) -> ApiResult<()> {
        let (ns, name) = (str_at(svc, "/metadata/namespace"), str_at(svc, "/metadata/name"));
        // Subsets by port set, addresses sorted by IP (as the real controller repacks them).
        let mut groups: BTreeMap<String, (Vec<Value>, Addresses, Addresses)> = BTreeMap::new();
        for m in members.iter().filter(|m| !m.terminating || publish_not_ready) {
            let mut ports = m.ports.clone();
            ports.sort_by_key(|p| p["name"].as_str().unwrap_or("").to_string());
            let g = groups
                .entry(Value::from(ports.clone()).to_string())
                .or_insert_with(|| (ports, vec![], vec![]));
            let ip = str_at(m.pod, "/status/podIP").to_string();
            let mut a = json!({"ip": ip, "targetRef": target_ref(m.pod)});
            if let Some(n) = m
                .pod
                .pointer("/spec/nodeName")
                .filter(|n| n.as_str().is_some_and(|n| !n.is_empty()))
            {
                a["nodeName"] = n.clone();
            }
            if let Some(h) = dns_hostname(m.pod, name) {
                a["hostname"] = json!(h);
            }
            if m.ready || publish_not_ready {
                g.1.push((ip, a));
            } else {
                g.2.push((ip, a));
            }
        }
        let subsets: Vec<Value> = groups
            .into_values()
            .map(|(ports, mut ready, mut not_ready)| {
                ready.sort_by(|a, b| a.0.cmp(&b.0));
                not_ready.sort_by(|a, b| a.0.cmp(&b.0));
                let mut s = json!({"ports": ports});
                if !ready.is_empty() {
                    s["addresses"] = Value::from(ready.into_iter().map(|x| x.1).collect::<Vec<_>>());
                }
                if !not_ready.is_empty() {
                    s["notReadyAddresses"] = Value::from(not_ready.into_iter().map(|x| x.1).collect::<Vec<_>>());
                }
                s
            })
            .collect();
        let labels = Self::labels(svc);
        let key = format!("{ns}/{name}");
        match self.informers.endpoints.get(&key) {
            Some(ep) => {
                let same = ep["subsets"].as_array().map_or(subsets.is_empty(), |s| *s == subsets)
                    && ep["metadata"]["labels"].as_object().cloned().unwrap_or_default() == labels;
                if !same {
                    let mut o = (*ep).clone();
                    o["metadata"]["labels"] = Value::Object(labels);
                    o["subsets"] = Value::from(subsets);
                    self.client.update(super::endpoints(), &o).await?;
                }
            }
            None => {
                let o = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns, "labels": labels}, "subsets": subsets});
                match self.client.create(super::endpoints(), ns, o).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn sync_slices(&self, svc: &Value, members: &[Member<'_>], publish_not_ready: bool) -> ApiResult<()> {
        let (ns, name) = (str_at(svc, "/metadata/namespace"), str_at(svc, "/metadata/name"));
        let mut groups: BTreeMap<String, (Vec<Value>, Addresses)> = BTreeMap::new();
        for m in members {
            let mut ports = m.ports.clone();
            ports.sort_by_key(|p| p["name"].as_str().unwrap_or("").to_string());
            for p in &mut ports {
                if p.get("name").is_none() {
                    p["name"] = json!("");
                }
            }
            let g = groups
                .entry(Value::from(ports.clone()).to_string())
                .or_insert_with(|| (ports, vec![]));
            let ip = str_at(m.pod, "/status/podIP").to_string();
            let mut e = json!({
                "addresses": [ip],
                "conditions": {"ready": (m.ready || publish_not_ready) && !m.terminating, "serving": m.ready || publish_not_ready, "terminating": m.terminating},
                "targetRef": target_ref(m.pod),
            });
            if let Some(n) = m
                .pod
                .pointer("/spec/nodeName")
                .filter(|n| n.as_str().is_some_and(|n| !n.is_empty()))
            {
                e["nodeName"] = n.clone();
            }
            if let Some(h) = dns_hostname(m.pod, name) {
                e["hostname"] = json!(h);
            }
            g.1.push((ip, e));
        }
        let mut labels = Self::labels(svc);
        labels.insert("kubernetes.io/service-name".into(), json!(name));
        labels.insert("endpointslice.kubernetes.io/managed-by".into(), json!(MANAGED_BY));
        let mut existing: Vec<Arc<Value>> = self
            .informers
            .endpoint_slices
            .list(ns)
            .into_iter()
            .filter(|s| {
                s.pointer("/metadata/labels/kubernetes.io~1service-name").and_then(Value::as_str) == Some(name)
                    && s.pointer("/metadata/labels/endpointslice.kubernetes.io~1managed-by")
                        .and_then(Value::as_str)
                        == Some(MANAGED_BY)
            })
            .collect();
        existing.sort_by_key(|s| str_at(s, "/metadata/name").to_string());
        // A Service with no endpoints still has one (empty) slice, with its ports.
        if groups.is_empty() {
            groups.insert(String::new(), (vec![], vec![]));
        }
        let owner = json!({"apiVersion": "v1", "kind": "Service", "name": name, "uid": svc["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true});
        for (ports, mut endpoints) in groups.into_values() {
            endpoints.sort_by(|a, b| a.0.cmp(&b.0));
            let endpoints: Vec<Value> = endpoints.into_iter().map(|x| x.1).collect();
            // Reuse the slice with these ports, else any left over.
            let at = existing
                .iter()
                .position(|s| s["ports"].as_array().is_some_and(|p| *p == ports))
                .or(if existing.is_empty() { None } else { Some(0) });
            match at.map(|i| existing.remove(i)) {
                Some(s) => {
                    let same = s["ports"].as_array().is_some_and(|p| *p == ports)
                        && s["endpoints"].as_array().map_or(endpoints.is_empty(), |e| *e == endpoints)
                        && s["metadata"]["labels"].as_object().cloned().unwrap_or_default() == labels;
                    if !same {
                        let mut o = (*s).clone();
                        o["metadata"]["labels"] = Value::Object(labels.clone());
                        o["ports"] = Value::from(ports);
                        o["endpoints"] = Value::from(endpoints);
                        self.client.update(super::endpoint_slices(), &o).await?;
                    }
                }
                None => {
                    let o = json!({
                        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"generateName": format!("{name}-"), "namespace": ns, "labels": labels, "ownerReferences": [owner]},
                        "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
                    });
                    self.client.create(super::endpoint_slices(), ns, o).await?;
                }
            }
        }
        for s in existing {
            self.client
                .delete(
                    super::endpoint_slices(),
                    ns,
                    str_at(&s, "/metadata/name"),
                    str_at(&s, "/metadata/uid"),
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_ports_resolve_by_number_and_by_name() {
        let pod = json!({"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}]}});
        assert_eq!(resolve(&json!({"port": 80, "targetPort": 9000}), &pod), Some(9000));
        assert_eq!(resolve(&json!({"port": 80, "targetPort": "http"}), &pod), Some(8080));
        assert_eq!(
            resolve(&json!({"port": 53, "targetPort": "dns", "protocol": "UDP"}), &pod),
            Some(5353)
        );
        assert_eq!(resolve(&json!({"port": 53, "targetPort": "dns"}), &pod), None);
        assert_eq!(resolve(&json!({"port": 80}), &pod), Some(80));
    }
}
