//! Networking kinds as the API server keeps them: core/v1 Service (with its cluster IP from the
//! service range and node ports allocated as the real server allocates them) and Endpoints,
//! discovery.k8s.io/v1 EndpointSlice, networking.k8s.io/v1 Ingress, IngressClass and
//! NetworkPolicy — defaulting, validation and `kubectl get` columns. Routing traffic to them is
//! the next issue's (kube-proxy's and the ingress controller's roles).

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::resources::{cause, check_metadata, col, is_dns_label, set_default, Resource, AGE};
use super::status::{ApiError, ApiResult, Cause};
use crate::store::{ListOptions, Store};

/// The service IP range and node port range this server allocates from (kube-apiserver's
/// `--service-cluster-ip-range` and `--service-node-port-range`; one API server per process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRanges {
    /// The network (10.43.0.0/16 by default, as k3s has it); its first address is the
    /// `kubernetes` Service's, its tenth the cluster DNS's.
    pub net: (Ipv4Addr, u8),
    /// The node ports (30000-32767).
    pub node_ports: std::ops::RangeInclusive<i64>,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            net: (Ipv4Addr::new(10, 43, 0, 0), 16),
            node_ports: 30000..=32767,
        }
    }
}

impl ServiceRanges {
    /// The `n`th address of the range.
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net.0) + n)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let (net, bits) = self.net;
        let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
        u32::from(ip) & mask == u32::from(net) & mask
    }

    fn cidr(&self) -> String {
        format!("{}/{}", self.net.0, self.net.1)
    }

    fn ports(&self) -> String {
        format!("{}-{}", self.node_ports.start(), self.node_ports.end())
    }
}

static RANGES: std::sync::OnceLock<ServiceRanges> = std::sync::OnceLock::new();

/// Set the ranges (once, before the server starts; later calls change nothing).
pub fn set_ranges(r: ServiceRanges) {
    let _ = RANGES.set(r);
}

/// The ranges in force.
pub fn ranges() -> &'static ServiceRanges {
    RANGES.get_or_init(ServiceRanges::default)
}

fn admit_service(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, true, &mut causes);
    if !o["spec"].is_object() {
        o["spec"] = json!({});
    }
    let spec = &mut o["spec"];
    set_default(spec, "/type", json!("ClusterIP"));
    let ty = spec["type"].as_str().unwrap_or("").to_string();
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty.as_str()) {
        causes.push(cause(
            "FieldValueNotSupported",
            "spec.type",
            format!("Unsupported value: \"{ty}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ));
    }
    set_default(spec, "/sessionAffinity", json!("None"));
    let affinity = spec["sessionAffinity"].as_str().unwrap_or("").to_string();
    match affinity.as_str() {
        "None" => {}
        "ClientIP" => {
            if spec.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds").is_none() {
                spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10800}});
            }
        }
        other => causes.push(cause(
            "FieldValueNotSupported",
            "spec.sessionAffinity",
            format!("Unsupported value: \"{other}\": supported values: \"ClientIP\", \"None\""),
        )),
    }
    if ty == "ExternalName" {
        let name = spec["externalName"].as_str().unwrap_or("");
        if name.is_empty() {
            causes.push(cause("FieldValueRequired", "spec.externalName", "Required value"));
        }
    } else {
        set_default(spec, "/internalTrafficPolicy", json!("Cluster"));
        set_default(spec, "/ipFamilies", json!(["IPv4"]));
        set_default(spec, "/ipFamilyPolicy", json!("SingleStack"));
        if ty == "NodePort" || ty == "LoadBalancer" {
            set_default(spec, "/externalTrafficPolicy", json!("Cluster"));
        }
        if ty == "LoadBalancer" {
            set_default(spec, "/allocateLoadBalancerNodePorts", json!(true));
        }
    }
    let headless = spec["clusterIP"] == "None";
    let mut names = Vec::new();
    let ports = spec.get_mut("ports").and_then(Value::as_array_mut);
    let n = ports.as_ref().map_or(0, |p| p.len());
    if n == 0 && ty != "ExternalName" && !headless {
        causes.push(cause("FieldValueRequired", "spec.ports", "Required value"));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        set_default(p, "/protocol", json!("TCP"));
        let port = p["port"].as_i64().unwrap_or(0);
        if p.get("targetPort").is_none_or(|t| t.is_null() || *t == json!(0) || *t == json!("")) {
            p["targetPort"] = json!(port);
        }
        if !(1..=65535).contains(&port) {
            causes.push(cause(
                "FieldValueInvalid",
                format!("spec.ports[{i}].port"),
                format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
            ));
        }
        let proto = p["protocol"].as_str().unwrap_or("");
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            causes.push(cause(
                "FieldValueNotSupported",
                format!("spec.ports[{i}].protocol"),
                format!("Unsupported value: \"{proto}\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
            ));
        }
        let name = p["name"].as_str().unwrap_or("").to_string();
        if n > 1 && name.is_empty() {
            causes.push(cause("FieldValueRequired", format!("spec.ports[{i}].name"), "Required value"));
        } else if !name.is_empty() && !is_dns_label(&name) {
            causes.push(cause(
                "FieldValueInvalid",
                format!("spec.ports[{i}].name"),
                format!("Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
            ));
        } else if !name.is_empty() && names.contains(&name) {
            causes.push(cause(
                "FieldValueDuplicate",
                format!("spec.ports[{i}].name"),
                format!("Duplicate value: \"{name}\""),
            ));
        }
        names.push(name);
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64).filter(|n| *n != 0) {
            if ty == "ClusterIP" {
                causes.push(cause(
                    "FieldValueForbidden",
                    format!("spec.ports[{i}].nodePort"),
                    "Forbidden: may not be used when `type` is 'ClusterIP'",
                ));
            } else if !ranges().node_ports.contains(&np) {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("spec.ports[{i}].nodePort"),
                    format!(
                        "Invalid value: {np}: provided port is not in the valid range. The range of valid ports is {}",
                        ranges().ports()
                    ),
                ));
            }
        }
        match &p["targetPort"] {
            Value::Number(t) if !(1..=65535).contains(&t.as_i64().unwrap_or(0)) => causes.push(cause(
                "FieldValueInvalid",
                format!("spec.ports[{i}].targetPort"),
                format!("Invalid value: {t}: must be between 1 and 65535, inclusive"),
            )),
            Value::String(t) if !is_dns_label(t) || t.len() > 15 => causes.push(cause(
                "FieldValueInvalid",
                format!("spec.ports[{i}].targetPort"),
                format!("Invalid value: \"{t}\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"),
            )),
            _ => {}
        }
    }
    if let Some(ip) = spec["clusterIP"].as_str().filter(|ip| !ip.is_empty() && *ip != "None") {
        match ip.parse::<Ipv4Addr>() {
            Ok(a) if ranges().contains(a) => {}
            _ => causes.push(cause(
                "FieldValueInvalid",
                "spec.clusterIPs",
                format!(
                    "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {}",
                    ranges().cidr()
                ),
            )),
        }
    }
    if let Some(old) = old {
        // Node ports left out of an update keep what they had (matched by port and protocol).
        let old_ports = old.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
        for p in o.pointer_mut("/spec/ports").and_then(Value::as_array_mut).into_iter().flatten() {
            if p.get("nodePort").is_none_or(|n| n.is_null() || *n == json!(0)) {
                if let Some(was) = old_ports.iter().find(|q| q["port"] == p["port"] && q["protocol"] == p["protocol"]) {
                    if let Some(n) = was.get("nodePort").filter(|n| !n.is_null()) {
                        p["nodePort"] = n.clone();
                    }
                }
            }
        }
        let was = old.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("");
        let now = o.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("");
        if now.is_empty() && !was.is_empty() {
            // A write that leaves the cluster IP out keeps it.
            o["spec"]["clusterIP"] = json!(was);
            o["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
        } else if now != was && ty != "ExternalName" {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.clusterIPs[0]",
                format!("Invalid value: []string{{\"{now}\"}}: may not change once set"),
            ));
        }
    }
    causes
}

/// The Services every cluster has: `kubernetes` (default; the API server, at the range's first
/// address) and `kube-dns` (kube-system; the cluster DNS, at its tenth), as the real server
/// and CoreDNS's manifest make them. Their Endpoints are the node's (`controllers::node`).
pub async fn ensure_default_services(store: &dyn Store) -> ApiResult<()> {
    let Some(res) = super::resources::find("", "v1", "services") else {
        return Ok(());
    };
    let r = ranges();
    let services = [
        (
            "default",
            "kubernetes",
            r.nth(1),
            json!({"component": "apiserver", "provider": "kubernetes"}),
            json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]),
        ),
        (
            "kube-system",
            "kube-dns",
            r.nth(10),
            json!({"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}),
            json!([
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ]),
        ),
    ];
    for (ns, name, ip, labels, ports) in services {
        let o = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"clusterIP": ip.to_string(), "ports": ports},
        });
        super::objects::ensure_object(store, res, Some(ns), o).await?;
    }
    Ok(())
}

/// The IngressClass `berth` (marked default), served by the node's ingress proxy.
pub async fn ensure_ingress_class(store: &dyn Store) -> ApiResult<()> {
    let Some(res) = super::resources::find("networking.k8s.io", "v1", "ingressclasses") else {
        return Ok(());
    };
    let o = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": crate::ingress::CLASS, "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": crate::ingress::CONTROLLER},
    });
    super::objects::ensure_object(store, res, None, o).await
}

/// The cluster IP and node ports of a new Service (or of an updated one that now needs node
/// ports), allocated from what the other Services hold, as the real server's allocators do.
pub async fn allocate(store: &dyn Store, o: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    let ty = o.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    let res = super::resources::find("", "v1", "services").expect("services are served");
    let page = store.list(&res.prefix(None), ListOptions::default()).await?;
    let mut ips = std::collections::HashSet::new();
    let mut ports = std::collections::HashSet::new();
    let me = o.pointer("/metadata/uid").cloned();
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    for kv in page.items {
        let Ok(svc) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if svc.pointer("/metadata/uid").is_some() && svc.pointer("/metadata/uid") == me.as_ref() {
            continue;
        }
        if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str) {
            ips.insert(ip.to_string());
        }
        for p in svc.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
            if let Some(n) = p["nodePort"].as_i64() {
                ports.insert(n);
            }
        }
    }
    let spec = &mut o["spec"];
    if ty != "ExternalName" && spec["clusterIP"].as_str().is_none_or(str::is_empty) {
        let (net, bits) = ranges().net;
        let size = 1u32 << (32 - bits);
        // .1 is the kubernetes Service's; a pseudo-random start spreads allocations as the
        // real allocator does.
        let start = (getrandom::u32().unwrap_or(7) % (size - 3)) + 2;
        let ip = (0..size - 2)
            .map(|i| Ipv4Addr::from(u32::from(net) + (start + i) % (size - 2) + 1))
            .find(|ip| !ips.contains(&ip.to_string()) && u32::from(*ip) != u32::from(net) + 1)
            .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))?;
        spec["clusterIP"] = json!(ip.to_string());
    } else if let Some(ip) = spec["clusterIP"].as_str().filter(|ip| *ip != "None") {
        if old.is_none() && ips.contains(ip) {
            return Err(ApiError::invalid(
                "",
                "Service",
                &name,
                vec![cause(
                    "FieldValueInvalid",
                    "spec.clusterIPs",
                    format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"),
                )],
            ));
        }
    }
    let spec = &mut o["spec"];
    if let Some(ip) = spec["clusterIP"].as_str().map(String::from) {
        spec["clusterIPs"] = json!([ip]);
    }
    if ty == "NodePort" || (ty == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"] != json!(false)) {
        for p in o["spec"]["ports"].as_array_mut().into_iter().flatten() {
            match p.get("nodePort").and_then(Value::as_i64).filter(|n| *n != 0) {
                Some(n) if ports.contains(&n) => {
                    return Err(ApiError::invalid(
                        "",
                        "Service",
                        &name,
                        vec![cause(
                            "FieldValueInvalid",
                            "spec.ports[0].nodePort",
                            format!("Invalid value: {n}: provided port is already allocated"),
                        )],
                    ))
                }
                Some(n) => {
                    ports.insert(n);
                }
                None => {
                    let node_ports = &ranges().node_ports;
                    let span = node_ports.end() - node_ports.start() + 1;
                    let start = getrandom::u32().unwrap_or(11) as i64 % span;
                    let n = (0..span)
                        .map(|i| node_ports.start() + (start + i) % span)
                        .find(|n| !ports.contains(n))
                        .ok_or_else(|| ApiError::internal("failed to allocate a nodePort: range is full"))?;
                    ports.insert(n);
                    p["nodePort"] = json!(n);
                }
            }
        }
    }
    Ok(())
}

fn service_ports(o: &Value) -> String {
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(n) => format!("{}:{n}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

fn service_cells(o: &Value) -> Vec<Value> {
    let ty = o.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
    let cluster_ip = o.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("<none>");
    let mut external: Vec<String> = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()).map(String::from))
        .collect();
    external.extend(
        o.pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| i.as_str().map(String::from)),
    );
    let external = match ty {
        "ExternalName" => o.pointer("/spec/externalName").and_then(Value::as_str).unwrap_or("").to_string(),
        "LoadBalancer" if external.is_empty() => "<pending>".into(),
        _ if external.is_empty() => "<none>".into(),
        _ => external.join(","),
    };
    let selector = super::select::map_string(o.pointer("/spec/selector"));
    vec![
        json!(ty),
        json!(cluster_ip),
        json!(external),
        json!(service_ports(o)),
        json!(super::table::age(o)),
        json!(selector),
    ]
}

fn admit_endpoints(o: &mut Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    for (i, s) in o["subsets"].as_array().into_iter().flatten().enumerate() {
        for (j, a) in s["addresses"].as_array().into_iter().flatten().enumerate() {
            if a["ip"].as_str().is_none_or(|ip| ip.parse::<std::net::IpAddr>().is_err()) {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("subsets[{i}].addresses[{j}].ip"),
                    format!("Invalid value: {}: must be a valid IP address", a["ip"]),
                ));
            }
        }
        for (j, p) in s["ports"].as_array().into_iter().flatten().enumerate() {
            let n = p["port"].as_i64().unwrap_or(0);
            if !(1..=65535).contains(&n) {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("subsets[{i}].ports[{j}].port"),
                    format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                ));
            }
        }
    }
    causes
}

fn endpoints_cells(o: &Value) -> Vec<Value> {
    let mut eps = Vec::new();
    for s in o["subsets"].as_array().into_iter().flatten() {
        let ports: Vec<i64> = s["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64())
            .collect();
        for a in s["addresses"].as_array().into_iter().flatten() {
            let ip = a["ip"].as_str().unwrap_or("");
            if ports.is_empty() {
                eps.push(ip.to_string());
            }
            for p in &ports {
                eps.push(format!("{ip}:{p}"));
            }
        }
    }
    let shown = if eps.is_empty() {
        "<none>".to_string()
    } else if eps.len() > 3 {
        format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
    } else {
        eps.join(",")
    };
    vec![json!(shown), json!(super::table::age(o))]
}

fn admit_endpoint_slice(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    let at = o["addressType"].as_str().unwrap_or("");
    if !["IPv4", "IPv6", "FQDN"].contains(&at) {
        causes.push(cause(
            "FieldValueNotSupported",
            "addressType",
            format!("Unsupported value: \"{at}\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""),
        ));
    }
    if let Some(old) = old {
        if old["addressType"] != o["addressType"] {
            causes.push(cause("FieldValueInvalid", "addressType", "Invalid value: field is immutable"));
        }
    }
    for (i, e) in o["endpoints"].as_array().into_iter().flatten().enumerate() {
        if e["addresses"].as_array().is_none_or(Vec::is_empty) {
            causes.push(cause(
                "FieldValueRequired",
                format!("endpoints[{i}].addresses"),
                "Required value: must contain at least 1 address",
            ));
        }
    }
    causes
}

fn endpoint_slice_cells(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["port"].as_i64().map(|n| n.to_string()))
        .collect();
    let addrs: Vec<String> = o["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let addrs = if addrs.is_empty() {
        "<unset>".to_string()
    } else if addrs.len() > 3 {
        format!("{} + {} more...", addrs[..3].join(","), addrs.len() - 3)
    } else {
        addrs.join(",")
    };
    vec![
        json!(o["addressType"].as_str().unwrap_or("")),
        json!(if ports.is_empty() { "<unset>".to_string() } else { ports.join(",") }),
        json!(addrs),
        json!(super::table::age(o)),
    ]
}

fn check_backend(b: &Value, at: &str, causes: &mut Vec<Cause>) {
    match (
        b.get("service").filter(|s| !s.is_null()),
        b.get("resource").filter(|s| !s.is_null()),
    ) {
        (Some(_), Some(_)) => causes.push(cause(
            "FieldValueInvalid",
            at,
            "Invalid value: \"\": cannot set both resource and service backends",
        )),
        (None, None) => causes.push(cause(
            "FieldValueInvalid",
            at,
            "Invalid value: \"\": resource or service backend is required",
        )),
        (Some(s), None) => {
            if s["name"].as_str().is_none_or(str::is_empty) {
                causes.push(cause("FieldValueRequired", format!("{at}.service.name"), "Required value"));
            }
            let num = s.pointer("/port/number").and_then(Value::as_i64);
            let name = s.pointer("/port/name").and_then(Value::as_str).filter(|n| !n.is_empty());
            match (num, name) {
                (Some(_), Some(_)) => causes.push(cause(
                    "FieldValueInvalid",
                    format!("{at}.service.port"),
                    "Invalid value: \"\": cannot set both port name & port number",
                )),
                (None, None) => causes.push(cause(
                    "FieldValueInvalid",
                    format!("{at}.service.port"),
                    "Invalid value: \"\": port name or number is required",
                )),
                (Some(n), None) if !(1..=65535).contains(&n) => causes.push(cause(
                    "FieldValueInvalid",
                    format!("{at}.service.port.number"),
                    format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                )),
                _ => {}
            }
        }
        (None, Some(_)) => {}
    }
}

fn admit_ingress(o: &mut Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    if let Some(b) = o.pointer("/spec/defaultBackend").filter(|b| !b.is_null()) {
        check_backend(b, "spec.defaultBackend", &mut causes);
    }
    let no_rules = o.pointer("/spec/rules").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if no_rules && o.pointer("/spec/defaultBackend").is_none_or(Value::is_null) {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.rules",
            "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified",
        ));
    }
    for (i, r) in o.pointer("/spec/rules").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if let Some(h) = r["host"].as_str() {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            if !super::resources::is_dns_subdomain(bare) || h.parse::<std::net::IpAddr>().is_ok() {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("spec.rules[{i}].host"),
                    format!("Invalid value: \"{h}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
                ));
            }
        }
        let paths = r.pointer("/http/paths").and_then(Value::as_array);
        if r.get("http").is_some_and(|h| !h.is_null()) && paths.is_none_or(Vec::is_empty) {
            causes.push(cause("FieldValueRequired", format!("spec.rules[{i}].http.paths"), "Required value"));
        }
        for (j, p) in paths.into_iter().flatten().enumerate() {
            let at = format!("spec.rules[{i}].http.paths[{j}]");
            let ty = p["pathType"].as_str().unwrap_or("");
            match ty {
                "" => causes.push(cause(
                    "FieldValueRequired",
                    format!("{at}.pathType"),
                    "Required value: pathType must be specified",
                )),
                "Exact" | "Prefix" => {
                    let path = p["path"].as_str().unwrap_or("");
                    if !path.starts_with('/') {
                        causes.push(cause(
                            "FieldValueInvalid",
                            format!("{at}.path"),
                            format!("Invalid value: \"{path}\": must be an absolute path"),
                        ));
                    }
                }
                "ImplementationSpecific" => {}
                other => causes.push(cause(
                    "FieldValueNotSupported",
                    format!("{at}.pathType"),
                    format!("Unsupported value: \"{other}\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""),
                )),
            }
            check_backend(&p["backend"], &format!("{at}.backend"), &mut causes);
        }
    }
    causes
}

fn ingress_cells(o: &Value) -> Vec<Value> {
    let hosts: Vec<String> = o
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| r["host"].as_str().unwrap_or("*").to_string())
        .collect();
    let addrs: Vec<String> = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()).map(String::from))
        .collect();
    let tls = o.pointer("/spec/tls").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
    vec![
        json!(o.pointer("/spec/ingressClassName").and_then(Value::as_str).unwrap_or("<none>")),
        json!(if hosts.is_empty() { "*".to_string() } else { hosts.join(",") }),
        json!(addrs.join(",")),
        json!(if tls { "80, 443" } else { "80" }),
        json!(super::table::age(o)),
    ]
}

fn admit_ingress_class(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    let c = o.pointer("/spec/controller").and_then(Value::as_str).unwrap_or("");
    if c.is_empty() {
        causes.push(cause("FieldValueRequired", "spec.controller", "Required value"));
    }
    if let Some(old) = old {
        if old.pointer("/spec/controller") != o.pointer("/spec/controller") {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.controller",
                format!("Invalid value: \"{c}\": field is immutable"),
            ));
        }
    }
    causes
}

fn admit_network_policy(o: &mut Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    if !o["spec"].is_object() {
        o["spec"] = json!({});
    }
    if o.pointer("/spec/podSelector").is_none_or(Value::is_null) {
        o["spec"]["podSelector"] = json!({});
    }
    if o.pointer("/spec/policyTypes").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        let mut types = vec![json!("Ingress")];
        if o.pointer("/spec/egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty()) {
            types.push(json!("Egress"));
        }
        o["spec"]["policyTypes"] = json!(types);
    }
    for (i, t) in o
        .pointer("/spec/policyTypes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !["Ingress", "Egress"].contains(&t.as_str().unwrap_or("")) {
            causes.push(cause(
                "FieldValueNotSupported",
                format!("spec.policyTypes[{i}]"),
                format!("Unsupported value: {t}: supported values: \"Egress\", \"Ingress\""),
            ));
        }
    }
    for dir in ["ingress", "egress"] {
        for (i, r) in o
            .pointer(&format!("/spec/{dir}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (j, p) in r["ports"].as_array().into_iter().flatten().enumerate() {
                if let Some(proto) = p["protocol"].as_str() {
                    if !["TCP", "UDP", "SCTP"].contains(&proto) {
                        causes.push(cause(
                            "FieldValueNotSupported",
                            format!("spec.{dir}[{i}].ports[{j}].protocol"),
                            format!("Unsupported value: \"{proto}\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
                        ));
                    }
                }
            }
        }
    }
    causes
}

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as networking;

/// core/v1 Service.
pub const SERVICE: Resource = Resource {
    short_names: &["svc"],
    columns: &[
        col("Type", "string", "The type of the service.", 0),
        col("Cluster-IP", "string", "The cluster IP of the service.", 0),
        col("External-IP", "string", "The external IP of the service.", 0),
        col("Port(s)", "string", "The ports of the service.", 0),
        AGE,
        col("Selector", "string", "The selector of the service.", 1),
    ],
    cells: service_cells,
    field_selectors: &["spec.clusterIP", "spec.type"],
    subresources: &["status"],
    ..Resource::new(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        super::typed::schema::<core::Service>,
        super::typed::decode::<core::Service>,
        admit_service,
    )
};

/// core/v1 Endpoints.
pub const ENDPOINTS: Resource = Resource {
    short_names: &["ep"],
    columns: &[col("Endpoints", "string", "The endpoints of the service.", 0), AGE],
    cells: endpoints_cells,
    ..Resource::new(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        super::typed::schema::<core::Endpoints>,
        super::typed::decode::<core::Endpoints>,
        admit_endpoints,
    )
};

/// discovery.k8s.io/v1 EndpointSlice.
pub const ENDPOINT_SLICE: Resource = Resource {
    columns: &[
        col("AddressType", "string", "The address type of the slice.", 0),
        col("Ports", "string", "The ports of the slice.", 0),
        col("Endpoints", "string", "The endpoints of the slice.", 0),
        AGE,
    ],
    cells: endpoint_slice_cells,
    ..Resource::new(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        super::typed::schema::<discovery::EndpointSlice>,
        super::typed::decode::<discovery::EndpointSlice>,
        admit_endpoint_slice,
    )
};

/// networking.k8s.io/v1 Ingress.
pub const INGRESS: Resource = Resource {
    short_names: &["ing"],
    columns: &[
        col(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for ingress.",
            0,
        ),
        col(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
            0,
        ),
        col(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
            0,
        ),
        col("Ports", "string", "Ports of TLS configurations that open", 0),
        AGE,
    ],
    cells: ingress_cells,
    subresources: &["status"],
    ..Resource::new(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        true,
        super::typed::schema::<networking::Ingress>,
        super::typed::decode::<networking::Ingress>,
        admit_ingress,
    )
};

/// networking.k8s.io/v1 IngressClass.
pub const INGRESS_CLASS: Resource = Resource {
    columns: &[
        col("Controller", "string", "Controller that is responsible for handling this class", 0),
        col("Parameters", "string", "A reference to a resource with additional parameters", 0),
        AGE,
    ],
    cells: |o| {
        let p = o
            .pointer("/spec/parameters")
            .filter(|p| p.is_object())
            .map(|p| format!("{}/{}", p["kind"].as_str().unwrap_or(""), p["name"].as_str().unwrap_or("")))
            .unwrap_or_else(|| "<none>".into());
        vec![
            json!(o.pointer("/spec/controller").and_then(Value::as_str).unwrap_or("")),
            json!(p),
            json!(super::table::age(o)),
        ]
    },
    ..Resource::new(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        "ingressclass",
        false,
        super::typed::schema::<networking::IngressClass>,
        super::typed::decode::<networking::IngressClass>,
        admit_ingress_class,
    )
};

/// networking.k8s.io/v1 NetworkPolicy.
pub const NETWORK_POLICY: Resource = Resource {
    short_names: &["netpol"],
    columns: &[col("Pod-Selector", "string", "Pod selector of the network policy.", 0), AGE],
    cells: |o| {
        let s = o
            .pointer("/spec/podSelector")
            .map(super::select::selector_string)
            .unwrap_or_default();
        vec![
            json!(if s.is_empty() { "<none>".to_string() } else { s }),
            json!(super::table::age(o)),
        ]
    },
    ..Resource::new(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        true,
        super::typed::schema::<networking::NetworkPolicy>,
        super::typed::decode::<networking::NetworkPolicy>,
        admit_network_policy,
    )
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_defaulted_and_validated() {
        let mut s = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        assert!(admit_service(&mut s, None).is_empty());
        assert_eq!(s["spec"]["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        let mut bad =
            json!({"metadata": {"name": "Web"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}, {"port": 70000}]}});
        let fields: Vec<String> = admit_service(&mut bad, None).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.ports[0].name",
                "spec.ports[0].nodePort",
                "spec.ports[1].port",
                "spec.ports[1].name",
                "spec.ports[1].targetPort"
            ]
        );
        let mut i = json!({"metadata": {"name": "i"}, "spec": {"rules": [{"host": "a.localhost", "http": {"paths": [{"path": "x", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
        let c = admit_ingress(&mut i, None);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.rules[0].http.paths[0].path");
    }
}
