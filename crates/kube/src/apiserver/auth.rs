//! Who is asking, and may they: authentication (client certificates from Berth's CA, bearer
//! service-account tokens Berth signed), impersonation (`Impersonate-User`/`-Group`, as
//! `kubectl --as` sends), and RBAC over Roles, ClusterRoles and their bindings.
//!
//! Service-account tokens are JWTs signed with ES256 by a key of the API server's own
//! (`ROOT/kube/pki/sa.key`), with the claims the real server writes (`iss`, `sub`, `aud`,
//! `exp`, `kubernetes.io` with the namespace, service account and bound pod). A token is
//! honoured while it has not expired and what it names — the service account and its bound pod,
//! by UID — still exists.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::resources::RESOURCES;
use super::status::{ApiError, Details};
use crate::store::Store;

/// The issuer and audience of the tokens (the real server's default).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The group of the admin kubeconfig's certificate, bound to `cluster-admin`.
pub const MASTERS: &str = "system:masters";

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `kubernetes-admin`, `system:serviceaccount:<ns>:<name>`, ...
    pub name: String,
    /// Its UID (a service account's), or empty.
    pub uid: String,
    /// Its groups (`system:authenticated` among them).
    pub groups: Vec<String>,
}

impl User {
    /// A client certificate's user: its subject's common name, its organizations as groups.
    pub fn certified(name: String, mut groups: Vec<String>) -> User {
        groups.push("system:authenticated".into());
        User {
            name,
            uid: String::new(),
            groups,
        }
    }

    /// A service account's user.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> User {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.into(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// The service account (namespace, name) this user is.
    pub fn as_service_account(&self) -> Option<(&str, &str)> {
        self.name.strip_prefix("system:serviceaccount:")?.split_once(':')
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Signs and checks service-account tokens.
pub struct Issuer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
}

impl Issuer {
    /// The signing key in `dir/sa.key` (PKCS#8, 0600), made when missing.
    pub fn load_or_create(dir: &Path) -> Result<Issuer, String> {
        let path = dir.join("sa.key");
        let rng = SystemRandom::new();
        let der = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|e| e.to_string())?;
                super::write_private_bytes(&path, doc.as_ref()).map_err(|e| format!("{}: {e}", path.display()))?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).map_err(|e| format!("{}: {e}", path.display()))?;
        let kid = b64(&sha2_digest(key.public_key().as_ref())[..16]);
        Ok(Issuer { key, rng, kid })
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let sig = self.key.sign(&self.rng, input.as_bytes()).expect("ECDSA signing");
        format!("{input}.{}", b64(sig.as_ref()))
    }

    /// The claims of a token this issuer signed, if the signature holds, it has not expired,
    /// and `audience` is among its audiences.
    pub fn verify(&self, token: &str, audience: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (h, c, sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let dec = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok();
        let header: Value = serde_json::from_slice(&dec(h)?).ok()?;
        if header["alg"] != "ES256" {
            return None;
        }
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref());
        public.verify(format!("{h}.{c}").as_bytes(), &dec(sig)?).ok()?;
        let claims: Value = serde_json::from_slice(&dec(c)?).ok()?;
        let now = chrono::Utc::now().timestamp();
        if claims["iss"] != ISSUER || claims["exp"].as_i64()? <= now || claims["nbf"].as_i64().unwrap_or(0) > now + 60 {
            return None;
        }
        let aud_ok = match &claims["aud"] {
            Value::String(a) => a == audience,
            Value::Array(a) => a.iter().any(|x| x == audience),
            _ => false,
        };
        aud_ok.then_some(claims)
    }

    /// A token for service account `sa` (its object) valid `seconds`, for `audiences` (the API
    /// server's when empty), bound to `pod` (its object) when given; and its expiry (RFC 3339).
    pub fn service_account_token(&self, sa: &Value, audiences: &[String], seconds: i64, pod: Option<&Value>) -> (String, String) {
        let now = chrono::Utc::now().timestamp();
        let exp = now + seconds;
        let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
        let aud: Vec<String> = if audiences.is_empty() {
            vec![ISSUER.to_string()]
        } else {
            audiences.to_vec()
        };
        let mut k8s = json!({
            "namespace": s(sa, "/metadata/namespace"),
            "serviceaccount": {"name": s(sa, "/metadata/name"), "uid": s(sa, "/metadata/uid")},
        });
        if let Some(p) = pod {
            k8s["pod"] = json!({"name": s(p, "/metadata/name"), "uid": s(p, "/metadata/uid")});
            let node = s(p, "/spec/nodeName");
            if !node.is_empty() {
                k8s["node"] = json!({"name": node});
            }
        }
        let claims = json!({
            "aud": aud,
            "exp": exp,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": super::objects::uuid(),
            "kubernetes.io": k8s,
            "sub": format!("system:serviceaccount:{}:{}", s(sa, "/metadata/namespace"), s(sa, "/metadata/name")),
        });
        let at = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default();
        (self.sign(&claims), at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    }
}

fn sha2_digest(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()
}

/// The stored object of `kind` named `name` (in `namespace`), if there is one.
pub(crate) async fn stored(store: &dyn Store, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
    let res = RESOURCES.iter().find(|r| r.kind == kind)?;
    let kv = store.get(&res.key(namespace, name), None).await.ok()??;
    serde_json::from_slice(&kv.value).ok()
}

/// The user a bearer token stands for, if it is a live service-account token of ours.
pub async fn token_user(store: &dyn Store, issuer: &Issuer, token: &str) -> Option<User> {
    let claims = issuer.verify(token, ISSUER)?;
    let k = &claims["kubernetes.io"];
    let ns = k["namespace"].as_str()?;
    let name = k.pointer("/serviceaccount/name")?.as_str()?;
    let uid = k.pointer("/serviceaccount/uid")?.as_str()?;
    let sa = stored(store, "ServiceAccount", Some(ns), name).await?;
    if sa.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
        return None;
    }
    if let Some(pod) = k.get("pod") {
        let p = stored(store, "Pod", Some(ns), pod["name"].as_str()?).await?;
        if p.pointer("/metadata/uid") != pod.get("uid") || p.pointer("/metadata/deletionTimestamp").is_some_and(|d| !d.is_null()) {
            return None;
        }
    }
    Some(User::service_account(ns, name, uid))
}

/// What a request does, as RBAC sees it.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection, impersonate, ...
    pub verb: String,
    /// A resource request (else a path).
    pub resource_request: bool,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The URL path of a non-resource request.
    pub path: String,
}

impl Attributes {
    /// The attributes of an HTTP request.
    pub fn of(method: &axum::http::Method, path: &str, query: Option<&str>) -> Attributes {
        use axum::http::Method;
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let (group, mut rest): (&str, &[&str]) = match segs.as_slice() {
            ["api", "v1", rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", g, _v, rest @ ..] if !rest.is_empty() => (g, rest),
            _ => {
                let verb = match *method {
                    Method::GET | Method::HEAD => "get",
                    Method::POST => "post",
                    Method::PUT => "put",
                    Method::PATCH => "patch",
                    Method::DELETE => "delete",
                    _ => "",
                };
                return Attributes {
                    verb: verb.into(),
                    path: path.to_string(),
                    ..Default::default()
                };
            }
        };
        let mut watch = query.unwrap_or("").split('&').any(|p| p == "watch=true" || p == "watch=1");
        if rest.first() == Some(&"watch") {
            watch = true;
            rest = &rest[1..];
        }
        let mut a = Attributes {
            resource_request: true,
            group: group.to_string(),
            ..Default::default()
        };
        // namespaces/<ns>/<resource>/<name>/<sub> or <resource>/<name>/<sub>.
        let rest: Vec<&str> = match rest {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => {
                a.namespace = ns.to_string();
                tail.to_vec()
            }
            r => r.to_vec(),
        };
        a.resource = rest.first().unwrap_or(&"").to_string();
        a.name = rest.get(1).unwrap_or(&"").to_string();
        a.subresource = rest.get(2).unwrap_or(&"").to_string();
        if a.resource == "namespaces" && !a.name.is_empty() {
            // A namespace is in itself.
            a.namespace = a.name.clone();
        }
        a.verb = match (method.clone(), a.name.is_empty()) {
            _ if matches!(a.subresource.as_str(), "exec" | "attach" | "portforward") => "create".into(),
            (Method::GET | Method::HEAD, _) if watch => "watch".into(),
            (Method::GET | Method::HEAD, true) => "list".into(),
            (Method::GET | Method::HEAD, false) => "get".into(),
            (Method::POST, _) => "create".into(),
            (Method::PUT, _) => "update".into(),
            (Method::PATCH, _) => "patch".into(),
            (Method::DELETE, true) => "deletecollection".into(),
            (Method::DELETE, false) => "delete".into(),
            (m, _) => m.as_str().to_ascii_lowercase(),
        };
        a
    }

    /// Kubernetes' wording of a refusal.
    pub fn forbidden(&self, user: &User) -> ApiError {
        let message = if !self.resource_request {
            format!("forbidden: User \"{}\" cannot {} path \"{}\"", user.name, self.verb, self.path)
        } else {
            let res = if self.subresource.is_empty() {
                self.resource.clone()
            } else {
                format!("{}/{}", self.resource, self.subresource)
            };
            let what = if self.name.is_empty() {
                res.clone()
            } else {
                format!("{res} \"{}\"", self.name)
            };
            let scope = if self.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{}\"", self.namespace)
            };
            format!(
                "{what} is forbidden: User \"{}\" cannot {} resource \"{res}\" in API group \"{}\" {scope}",
                user.name, self.verb, self.group
            )
        };
        ApiError {
            code: 403,
            reason: "Forbidden",
            message,
            details: Some(Details::of(self.name.clone(), self.group.clone(), self.resource.clone())),
        }
    }
}

fn has(list: &Value, want: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|x| x == "*" || x.as_str() == Some(want)))
}

/// Whether one PolicyRule allows the request.
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if !has(&rule["verbs"], &a.verb) {
        return false;
    }
    if !a.resource_request {
        return rule["nonResourceURLs"].as_array().is_some_and(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .any(|u| u == "*" || u == a.path || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p)))
        });
    }
    if !has(&rule["apiGroups"], &a.group) {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resources_ok = rule["resources"].as_array().is_some_and(|l| {
        l.iter()
            .filter_map(Value::as_str)
            .any(|r| r == "*" || r == combined || (!a.subresource.is_empty() && r == format!("*/{}", a.subresource)))
    });
    if !resources_ok {
        return false;
    }
    match rule["resourceNames"].as_array() {
        Some(names) if !names.is_empty() => !a.name.is_empty() && names.iter().any(|n| n.as_str() == Some(&a.name)),
        _ => true,
    }
}

fn subject_matches(s: &Value, user: &User, binding_ns: &str) -> bool {
    let name = s["name"].as_str().unwrap_or("");
    match s["kind"].as_str().unwrap_or("") {
        "User" => name == user.name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = s["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_ns);
            user.as_service_account() == Some((ns, name))
        }
        _ => false,
    }
}

async fn list(store: &dyn Store, kind: &str, namespace: Option<&str>) -> Vec<Value> {
    let Some(res) = RESOURCES.iter().find(|r| r.kind == kind) else {
        return Vec::new();
    };
    match store.list(&res.prefix(namespace), Default::default()).await {
        Ok(l) => l.items.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect(),
        Err(_) => Vec::new(),
    }
}

/// RBAC's answer: allowed, and why (the binding and role that allow it).
pub async fn authorize(store: &dyn Store, user: &User, a: &Attributes) -> (bool, String) {
    if user.groups.iter().any(|g| g == MASTERS) {
        return (true, format!("the user is in group {MASTERS}"));
    }
    let mut bindings: Vec<(Value, String)> = list(store, "ClusterRoleBinding", None)
        .await
        .into_iter()
        .map(|b| (b, String::new()))
        .collect();
    if !a.namespace.is_empty() {
        bindings.extend(
            list(store, "RoleBinding", Some(&a.namespace))
                .await
                .into_iter()
                .map(|b| (b, a.namespace.clone())),
        );
    }
    for (b, ns) in bindings {
        let subjects = b["subjects"].as_array().cloned().unwrap_or_default();
        if !subjects.iter().any(|s| subject_matches(s, user, &ns)) {
            continue;
        }
        let role_name = b.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
        let role = match b.pointer("/roleRef/kind").and_then(Value::as_str) {
            Some("ClusterRole") => stored(store, "ClusterRole", None, role_name).await,
            Some("Role") if !ns.is_empty() => stored(store, "Role", Some(&ns), role_name).await,
            _ => None,
        };
        let Some(role) = role else { continue };
        if role["rules"].as_array().into_iter().flatten().any(|r| rule_allows(r, a)) {
            let kind = if ns.is_empty() { "ClusterRoleBinding" } else { "RoleBinding" };
            let bname = b.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let where_ = if ns.is_empty() {
                String::new()
            } else {
                format!(" of namespace \"{ns}\"")
            };
            return (
                true,
                format!(
                    "RBAC: allowed by {kind} \"{bname}\"{where_} to {} \"{role_name}\"",
                    b.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or("")
                ),
            );
        }
    }
    (false, String::new())
}

/// The user a request is made as: `Impersonate-User` and `Impersonate-Group`, when the
/// authenticated `user` may impersonate them.
pub async fn impersonate(store: &dyn Store, user: User, headers: &axum::http::HeaderMap) -> Result<User, ApiError> {
    let Some(target) = headers.get("impersonate-user").and_then(|v| v.to_str().ok()) else {
        if headers.contains_key("impersonate-group") {
            return Err(ApiError::bad_request(
                "requested impersonation of groups without a user (Impersonate-User)",
            ));
        }
        return Ok(user);
    };
    let groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    let check = |resource: &str, namespace: &str, name: &str| Attributes {
        verb: "impersonate".into(),
        resource_request: true,
        group: String::new(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: name.into(),
        ..Default::default()
    };
    let mut new = match target.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
        Some((ns, name)) => {
            let a = check("serviceaccounts", ns, name);
            if !authorize(store, &user, &a).await.0 {
                return Err(a.forbidden(&user));
            }
            let uid = stored(store, "ServiceAccount", Some(ns), name)
                .await
                .and_then(|sa| sa.pointer("/metadata/uid").and_then(Value::as_str).map(String::from))
                .unwrap_or_default();
            User::service_account(ns, name, &uid)
        }
        None => {
            let a = check("users", "", target);
            if !authorize(store, &user, &a).await.0 {
                return Err(a.forbidden(&user));
            }
            User {
                name: target.to_string(),
                uid: String::new(),
                groups: vec!["system:authenticated".into()],
            }
        }
    };
    for g in groups {
        let a = check("groups", "", &g);
        if !authorize(store, &user, &a).await.0 {
            return Err(a.forbidden(&user));
        }
        if !new.groups.contains(&g) {
            new.groups.insert(0, g);
        }
    }
    Ok(new)
}

/// The roles and bindings every cluster starts with (a subset of the real bootstrap policy):
/// cluster-admin for `system:masters`; discovery, self-reviews and public info for every
/// authenticated user; and the user-facing `admin`, `edit` and `view` roles for bindings.
pub fn bootstrap_policy() -> Vec<(&'static str, Value)> {
    let read = json!(["get", "list", "watch"]);
    let write = json!(["create", "delete", "deletecollection", "patch", "update"]);
    let core_read = json!([
        "pods",
        "pods/log",
        "pods/status",
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "replicationcontrollers/status",
        "serviceaccounts",
        "services",
        "services/status",
        "bindings",
        "events",
        "limitranges",
        "namespaces/status",
        "resourcequotas",
        "resourcequotas/status",
        "namespaces"
    ]);
    let apps = json!([
        "deployments",
        "deployments/scale",
        "deployments/status",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets",
        "statefulsets/scale",
        "statefulsets/status",
        "daemonsets",
        "daemonsets/status",
        "controllerrevisions"
    ]);
    let view_rules = json!([
        {"apiGroups": [""], "resources": core_read, "verbs": read},
        {"apiGroups": ["apps"], "resources": apps, "verbs": read},
        {"apiGroups": ["batch"], "resources": ["jobs", "jobs/status", "cronjobs", "cronjobs/status"], "verbs": read},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], "verbs": read},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingresses/status", "networkpolicies"], "verbs": read},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"], "verbs": read},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": read},
    ]);
    let mut edit_rules = view_rules.as_array().cloned().unwrap_or_default();
    edit_rules.extend([
        json!({"apiGroups": [""], "resources": ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "pods/eviction", "configmaps", "endpoints", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"], "verbs": write}),
        json!({"apiGroups": [""], "resources": ["secrets", "pods/attach", "pods/exec", "pods/portforward", "services/proxy"], "verbs": read}),
        json!({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}),
        json!({"apiGroups": ["apps"], "resources": apps, "verbs": write}),
        json!({"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": write}),
        json!({"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": write}),
        json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": write}),
        json!({"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": write}),
        json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": write}),
    ]);
    let mut admin_rules = edit_rules.clone();
    admin_rules.push(json!({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}));
    admin_rules.push(json!({"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]}));
    let role = |name: &str, rules: Value| json!({"metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}, "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}, "rules": rules});
    let binding = |name: &str, role: &str, groups: &[&str]| {
        json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}, "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": groups.iter().map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g})).collect::<Vec<_>>(),
        })
    };
    vec![
        (
            "ClusterRole",
            role(
                "cluster-admin",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
            ),
        ),
        ("ClusterRole", role("admin", Value::Array(admin_rules))),
        ("ClusterRole", role("edit", Value::Array(edit_rules))),
        ("ClusterRole", role("view", view_rules)),
        (
            "ClusterRole",
            role(
                "system:discovery",
                json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
            ),
        ),
        (
            "ClusterRole",
            role(
                "system:basic-user",
                json!([{"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]}, {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}]),
            ),
        ),
        (
            "ClusterRole",
            role(
                "system:public-info-viewer",
                json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
            ),
        ),
        ("ClusterRoleBinding", binding("cluster-admin", "cluster-admin", &[MASTERS])),
        (
            "ClusterRoleBinding",
            binding("system:discovery", "system:discovery", &["system:authenticated"]),
        ),
        (
            "ClusterRoleBinding",
            binding("system:basic-user", "system:basic-user", &["system:authenticated"]),
        ),
        (
            "ClusterRoleBinding",
            binding(
                "system:public-info-viewer",
                "system:public-info-viewer",
                &["system:authenticated", "system:unauthenticated"],
            ),
        ),
    ]
}

/// Make the bootstrap roles and bindings that are missing (existing ones are left as they are).
pub async fn ensure_policy(store: &dyn Store) -> Result<(), ApiError> {
    for (kind, mut o) in bootstrap_policy() {
        let Some(res) = RESOURCES.iter().find(|r| r.kind == kind) else {
            continue;
        };
        let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        let key = res.key(None, &name);
        if store.get(&key, None).await?.is_some() {
            continue;
        }
        o["metadata"]["uid"] = json!(super::objects::uuid());
        o["metadata"]["creationTimestamp"] = json!(super::objects::now());
        match store.create(&key, super::objects::stored_bytes(&o)).await {
            Ok(_) | Err(crate::store::Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

tokio::task_local! {
    /// The user a request is made as, while the server handles it.
    pub static REQUESTER: User;
}

/// The user of the request being handled (none outside one).
pub fn requester() -> Option<User> {
    REQUESTER.try_with(|u| u.clone()).ok()
}

/// Does `user` hold everything `rule` grants (in `namespace`; empty: cluster-wide)?
async fn holds(store: &dyn Store, user: &User, rule: &Value, namespace: &str) -> bool {
    let strs = |k: &str| -> Vec<String> {
        rule[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    let (verbs, urls) = (strs("verbs"), strs("nonResourceURLs"));
    for verb in &verbs {
        if !urls.is_empty() {
            for path in &urls {
                let a = Attributes {
                    verb: verb.clone(),
                    path: path.clone(),
                    ..Default::default()
                };
                if !authorize(store, user, &a).await.0 {
                    return false;
                }
            }
            continue;
        }
        let names = strs("resourceNames");
        let names = if names.is_empty() { vec![String::new()] } else { names };
        for group in strs("apiGroups") {
            for res in strs("resources") {
                let (resource, subresource) = match res.split_once('/') {
                    Some((r, s)) => (r.to_string(), s.to_string()),
                    None => (res.clone(), String::new()),
                };
                for name in &names {
                    let a = Attributes {
                        verb: verb.clone(),
                        resource_request: true,
                        group: group.clone(),
                        resource: resource.clone(),
                        subresource: subresource.clone(),
                        namespace: namespace.to_string(),
                        name: name.clone(),
                        path: String::new(),
                    };
                    if !authorize(store, user, &a).await.0 {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// RBAC's escalation check on a Role, ClusterRole or binding being written by the current
/// requester: a role may grant only what its writer holds (or the writer has `escalate` on
/// it); a binding may only point at a role whose grants its writer holds (or has `bind` on).
pub async fn check_escalation(store: &dyn Store, kind: &str, namespace: &str, obj: &Value) -> Result<(), ApiError> {
    let Some(user) = requester() else { return Ok(()) };
    if user.groups.iter().any(|g| g == MASTERS) {
        return Ok(());
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let rbac = "rbac.authorization.k8s.io";
    let may = |verb: &str, resource: &str, ns: &str, name: &str| Attributes {
        verb: verb.into(),
        resource_request: true,
        group: rbac.into(),
        resource: resource.into(),
        namespace: ns.into(),
        name: name.into(),
        ..Default::default()
    };
    let (plural, rules, ns) = match kind {
        "Role" | "ClusterRole" => {
            let plural = if kind == "Role" { "roles" } else { "clusterroles" };
            if authorize(store, &user, &may("escalate", plural, namespace, &name)).await.0 {
                return Ok(());
            }
            (plural, obj["rules"].as_array().cloned().unwrap_or_default(), namespace.to_string())
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let plural = if kind == "RoleBinding" {
                "rolebindings"
            } else {
                "clusterrolebindings"
            };
            let role_kind = obj.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or("");
            let role_name = obj.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
            let role_plural = if role_kind == "Role" { "roles" } else { "clusterroles" };
            if authorize(store, &user, &may("bind", role_plural, namespace, role_name)).await.0 {
                return Ok(());
            }
            let role = match role_kind {
                "Role" => stored(store, "Role", Some(namespace), role_name).await,
                _ => stored(store, "ClusterRole", None, role_name).await,
            };
            let rules = role.and_then(|r| r["rules"].as_array().cloned()).unwrap_or_default();
            (plural, rules, namespace.to_string())
        }
        _ => return Ok(()),
    };
    for rule in &rules {
        if !holds(store, &user, rule, &ns).await {
            return Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "{plural}.{rbac} \"{name}\" is forbidden: user \"{}\" (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{rule}",
                    user.name, user.groups
                ),
                details: Some(Details::of(name.clone(), rbac, plural)),
            });
        }
    }
    Ok(())
}

/// Shared by the server and its node agent.
pub type SharedIssuer = Arc<Issuer>;
