//! The kinds the API server serves: their names for discovery, their Kubernetes type (strict
//! decoding, see [`super::typed`]) and its schema (for the OpenAPI documents),
//! defaulting, validation, and the columns `kubectl get` shows.

use serde_json::{json, Value};

use super::status::Cause;

/// One column of a Table.
#[derive(Debug)]
pub struct Column {
    /// Header.
    pub name: &'static str,
    /// `string`, `integer`, `date`.
    pub kind: &'static str,
    /// `name` for the NAME column.
    pub format: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// 0: always shown; 1: with `-o wide` only.
    pub priority: u8,
}

/// A kind the API server serves.
#[derive(Debug)]
pub struct Resource {
    /// API group ("" for the core group).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name (the URL segment).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// `kubectl get` short names.
    pub short_names: &'static [&'static str],
    /// The kind's schema (its Kubernetes type's), for the OpenAPI documents.
    pub schema: fn(&mut k8s_openapi::schemars::SchemaGenerator) -> k8s_openapi::schemars::Schema,
    /// Columns after NAME (AGE is appended).
    pub columns: &'static [Column],
    /// The cells of those columns for an object.
    pub cells: fn(&Value) -> Vec<Value>,
    /// Defaulting and validation of a new or updated object (`old` for an update).
    pub admit: fn(&mut Value, Option<&Value>) -> Vec<Cause>,
    /// Fields a field selector may name, besides `metadata.name` and `metadata.namespace`.
    pub field_selectors: &'static [&'static str],
    /// Strict decoding through the kind's Kubernetes type.
    pub decode: fn(&Value) -> super::typed::Decoded,
    /// Subresources served (`status`: the spec/status split, see [`Resource::has_status`]).
    pub subresources: &'static [&'static str],
}

impl Resource {
    /// A kind with no columns besides NAME and AGE, no short names, field selectors or
    /// subresources (struct-update syntax adds them).
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
        singular: &'static str,
        namespaced: bool,
        schema: fn(&mut k8s_openapi::schemars::SchemaGenerator) -> k8s_openapi::schemars::Schema,
        decode: fn(&Value) -> super::typed::Decoded,
        admit: fn(&mut Value, Option<&Value>) -> Vec<Cause>,
    ) -> Resource {
        Resource {
            group,
            version,
            kind,
            plural,
            singular,
            namespaced,
            short_names: &[],
            schema,
            columns: &[],
            cells: |_| Vec::new(),
            admit,
            field_selectors: &[],
            decode,
            subresources: &[],
        }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The store prefix of this kind (in `namespace`, when namespaced and given).
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        let g = if self.group.is_empty() { "core" } else { self.group };
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{g}/{}/{ns}/", self.plural),
            _ => format!("/registry/{g}/{}/", self.plural),
        }
    }

    /// Whether the kind has a `status` subresource: writes to the object keep its status, writes
    /// to `/status` change only that.
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.prefix(namespace))
    }
}

const NAME_COLUMN: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name must be unique within a namespace.",
    priority: 0,
};

/// The `Name` column (first) and the `Age` column (last) every kind has.
pub fn name_column() -> &'static Column {
    &NAME_COLUMN
}

pub const fn col(name: &'static str, kind: &'static str, description: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority,
    }
}

/// The AGE column, where a kind places it among its own.
pub const AGE: Column = col(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
    0,
);

fn node_cells(o: &Value) -> Vec<Value> {
    let conds = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = conds
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True")
        .unwrap_or(false);
    let mut status = if ready { "Ready".to_string() } else { "NotReady".to_string() };
    if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
        .collect();
    roles.sort();
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };
    let addr = |t: &str| {
        o.pointer("/status/addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|a| a["type"] == t)
            .and_then(|a| a["address"].as_str())
            .unwrap_or("<none>")
            .to_string()
    };
    let info = |k: &str| {
        o.pointer(&format!("/status/nodeInfo/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    vec![
        json!(status),
        json!(roles),
        json!(super::table::age(o)),
        json!(info("kubeletVersion")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// Every kind served. The first is Namespace (the server looks namespaces up through it).
pub static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        schema: super::typed::schema::<k8s_openapi::api::core::v1::Namespace>,
        columns: &[Column {
            name: "Status",
            kind: "string",
            format: "",
            description: "The status of the namespace",
            priority: 0,
        }],
        cells: |o| vec![json!(o.pointer("/status/phase").and_then(Value::as_str).unwrap_or(""))],
        admit: admit_namespace,
        field_selectors: &["status.phase"],
        decode: super::typed::decode::<k8s_openapi::api::core::v1::Namespace>,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        schema: super::typed::schema::<k8s_openapi::api::core::v1::Pod>,
        columns: &[
            col(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            col("Status", "string", "The aggregate status of the containers in this pod.", 0),
            col(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                0,
            ),
            AGE,
            col("IP", "string", "The IP address of the pod", 1),
            col("Node", "string", "The name of the node to which the pod is assigned", 1),
            col(
                "Nominated Node",
                "string",
                "The name of the node where the pod is nominated to run",
                1,
            ),
            col("Readiness Gates", "string", "The readiness gates of the pod", 1),
        ],
        cells: super::pods::cells,
        admit: super::pods::admit,
        field_selectors: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        decode: super::typed::decode::<k8s_openapi::api::core::v1::Pod>,
        subresources: &["status", "binding", "log", "exec", "attach", "portforward", "eviction"],
    },
    Resource {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        schema: super::typed::schema::<k8s_openapi::api::core::v1::ConfigMap>,
        columns: &[Column {
            name: "Data",
            kind: "integer",
            format: "",
            description: "Number of data entries",
            priority: 0,
        }],
        cells: |o| vec![json!(count(o, "data") + count(o, "binaryData"))],
        admit: admit_configmap,
        field_selectors: &[],
        decode: super::typed::decode::<k8s_openapi::api::core::v1::ConfigMap>,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        schema: super::typed::schema::<k8s_openapi::api::core::v1::Secret>,
        columns: &[
            Column {
                name: "Type",
                kind: "string",
                format: "",
                description: "The type of the secret",
                priority: 0,
            },
            Column {
                name: "Data",
                kind: "integer",
                format: "",
                description: "Number of data entries",
                priority: 0,
            },
        ],
        cells: |o| vec![json!(o["type"].as_str().unwrap_or("Opaque")), json!(count(o, "data"))],
        admit: admit_secret,
        field_selectors: &["type"],
        decode: super::typed::decode::<k8s_openapi::api::core::v1::Secret>,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        schema: super::typed::schema::<k8s_openapi::api::core::v1::Event>,
        columns: &[
            Column {
                name: "Last Seen",
                kind: "string",
                format: "",
                description: "Time the event was last seen",
                priority: 0,
            },
            Column {
                name: "Type",
                kind: "string",
                format: "",
                description: "Type of the event",
                priority: 0,
            },
            Column {
                name: "Reason",
                kind: "string",
                format: "",
                description: "Why the event happened",
                priority: 0,
            },
            Column {
                name: "Object",
                kind: "string",
                format: "",
                description: "The object the event is about",
                priority: 0,
            },
            Column {
                name: "Message",
                kind: "string",
                format: "",
                description: "What happened",
                priority: 0,
            },
        ],
        cells: |o| {
            let obj = format!(
                "{}/{}",
                o.pointer("/involvedObject/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_lowercase(),
                o.pointer("/involvedObject/name").and_then(Value::as_str).unwrap_or("")
            );
            let last = o
                .get("lastTimestamp")
                .and_then(Value::as_str)
                .or_else(|| o.get("eventTime").and_then(Value::as_str))
                .unwrap_or("");
            let seen = chrono::DateTime::parse_from_rfc3339(last)
                .map(|t| human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()))
                .unwrap_or_else(|_| "<unknown>".into());
            vec![
                json!(seen),
                json!(o["type"].as_str().unwrap_or("")),
                json!(o["reason"].as_str().unwrap_or("")),
                json!(obj),
                json!(o["message"].as_str().unwrap_or("")),
            ]
        },
        admit: |o, _| {
            let mut causes = Vec::new();
            check_metadata(o, false, &mut causes);
            if o.pointer("/involvedObject/kind").is_none() {
                causes.push(cause("FieldValueRequired", "involvedObject", "Required value"));
            }
            causes
        },
        field_selectors: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        decode: super::typed::decode::<k8s_openapi::api::core::v1::Event>,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        schema: super::typed::schema::<k8s_openapi::api::core::v1::ServiceAccount>,
        columns: &[Column {
            name: "Secrets",
            kind: "string",
            format: "",
            description:
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            priority: 0,
        }],
        cells: |o| vec![json!(o.get("secrets").and_then(Value::as_array).map_or(0, Vec::len))],
        admit: |o, _| {
            let mut causes = Vec::new();
            check_metadata(o, false, &mut causes);
            causes
        },
        field_selectors: &[],
        decode: super::typed::decode::<k8s_openapi::api::core::v1::ServiceAccount>,
        subresources: &["token"],
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        schema: super::typed::schema::<k8s_openapi::api::coordination::v1::Lease>,
        columns: &[Column {
            name: "Holder",
            kind: "string",
            format: "",
            description: "holderIdentity contains the identity of the holder of a current lease.",
            priority: 0,
        }],
        cells: |o| vec![json!(o.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or(""))],
        admit: |o, _| {
            let mut causes = Vec::new();
            check_metadata(o, false, &mut causes);
            if let Some(d) = o.pointer("/spec/leaseDurationSeconds").and_then(Value::as_i64) {
                if d <= 0 {
                    causes.push(cause(
                        "FieldValueInvalid",
                        "spec.leaseDurationSeconds",
                        format!("Invalid value: {d}: must be greater than 0"),
                    ));
                }
            }
            causes
        },
        field_selectors: &[],
        decode: super::typed::decode::<k8s_openapi::api::coordination::v1::Lease>,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        schema: super::typed::schema::<k8s_openapi::api::core::v1::Node>,
        columns: &[
            col("Status", "string", "The status of the node", 0),
            col("Roles", "string", "The roles of the node", 0),
            AGE,
            col("Version", "string", "Kubelet Version reported by the node.", 0),
            col("Internal-IP", "string", "List of internal IPs.", 1),
            col("External-IP", "string", "List of external IPs.", 1),
            col("OS-Image", "string", "OS Image reported by the node from /etc/os-release.", 1),
            col("Kernel-Version", "string", "Kernel Version reported by the node.", 1),
            col("Container-Runtime", "string", "Container Runtime Version reported by the node.", 1),
        ],
        cells: node_cells,
        admit: |o, _| {
            let mut causes = Vec::new();
            check_metadata(o, false, &mut causes);
            causes
        },
        field_selectors: &["spec.unschedulable"],
        decode: super::typed::decode::<k8s_openapi::api::core::v1::Node>,
        subresources: &["status"],
    },
    super::rbac::ROLE_RESOURCE,
    super::rbac::CLUSTER_ROLE_RESOURCE,
    super::rbac::ROLE_BINDING_RESOURCE,
    super::rbac::CLUSTER_ROLE_BINDING_RESOURCE,
    super::workloads::DEPLOYMENT,
    super::workloads::REPLICA_SET,
    super::workloads::STATEFUL_SET,
    super::workloads::DAEMON_SET,
    super::workloads::CONTROLLER_REVISION,
    super::workloads::JOB,
    super::workloads::CRON_JOB,
    super::network::SERVICE,
    super::network::ENDPOINTS,
    super::network::ENDPOINT_SLICE,
    super::network::INGRESS,
    super::network::INGRESS_CLASS,
    super::network::NETWORK_POLICY,
    super::storage::PERSISTENT_VOLUME,
    super::storage::PERSISTENT_VOLUME_CLAIM,
    super::storage::STORAGE_CLASS,
    super::storage::POD_DISRUPTION_BUDGET,
    super::storage::HORIZONTAL_POD_AUTOSCALER,
    super::storage::HORIZONTAL_POD_AUTOSCALER_V1,
    super::storage::LIMIT_RANGE,
    super::storage::RESOURCE_QUOTA,
    super::storage::PRIORITY_CLASS,
];

fn count(o: &Value, field: &str) -> usize {
    o.get(field).and_then(Value::as_object).map_or(0, |m| m.len())
}

/// Set the field at JSON `pointer` to `d` when it is missing or null, making the objects on
/// the way (Kubernetes' `SetDefaults_*` pattern).
pub(crate) fn set_default(o: &mut Value, pointer: &str, d: Value) {
    if o.pointer(pointer).is_none_or(Value::is_null) {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
        let mut cur = &mut *o;
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            if !cur[part].is_object() {
                cur[part] = json!({});
            }
            cur = &mut cur[part];
        }
        cur[key] = d;
    }
}

/// Whether `res` is a second version of objects stored in another's form (autoscaling/v1
/// HorizontalPodAutoscalers are stored as v2): reads and writes convert.
pub fn is_view(res: &Resource) -> bool {
    res.group == "autoscaling" && res.version == "v1" && res.kind == "HorizontalPodAutoscaler"
}

/// An object as its kind's stored version has it (see [`is_view`]).
pub fn stored_form(o: &Value) -> Option<Value> {
    (o["apiVersion"] == "autoscaling/v1" && o["kind"] == "HorizontalPodAutoscaler").then(|| super::storage::hpa_v2_from_v1(o.clone()))
}

/// The resource named `plural` (or a short name, or the singular) in `group/version`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub(crate) fn cause(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Cause {
    Cause {
        reason,
        field: field.into(),
        message: message.into(),
    }
}

const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Dot-separated DNS labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Validation of `metadata` common to every kind: the name's format, labels and annotations.
pub fn check_metadata(o: &Value, label_name: bool, causes: &mut Vec<Cause>) {
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let ok = if label_name { is_dns_label(name) } else { is_dns_subdomain(name) };
    if name.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    } else if !ok {
        let rule = if label_name { DNS1123_LABEL } else { DNS1123_SUBDOMAIN };
        causes.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": {rule}"),
        ));
    }
    for (k, v) in o.pointer("/metadata/labels").and_then(Value::as_object).into_iter().flatten() {
        if !is_qualified_name(k) {
            causes.push(cause(
                "FieldValueInvalid",
                "metadata.labels",
                format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            ));
        }
        let v = v.as_str().unwrap_or("");
        let value_ok = v.is_empty()
            || (v.len() <= 63
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && v.as_bytes()[0].is_ascii_alphanumeric()
                && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric());
        if !value_ok {
            causes.push(cause(
                "FieldValueInvalid",
                "metadata.labels",
                format!("Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            ));
        }
    }
    for k in o
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if !is_qualified_name(k) {
            causes.push(cause(
                "FieldValueInvalid",
                "metadata.annotations",
                format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"),
            ));
        }
    }
}

/// `[prefix/]name` as label and annotation keys are.
fn is_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    name_ok && prefix.is_none_or(is_dns_subdomain)
}

fn admit_namespace(o: &mut Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, true, &mut causes);
    if o.pointer("/spec/finalizers").is_none() {
        o["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    let phase = o.pointer("/status/phase").and_then(Value::as_str).unwrap_or("").to_string();
    if phase.is_empty() {
        o["status"] = json!({"phase": "Active"});
    }
    // The name label Kubernetes puts on every namespace.
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let labels = o["metadata"]
        .as_object_mut()
        .map(|m| m.entry("labels").or_insert_with(|| json!({})));
    if let Some(Value::Object(l)) = labels {
        l.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    causes
}

fn check_keys(o: &Value, field: &str, causes: &mut Vec<Cause>) {
    for k in o.get(field).and_then(Value::as_object).into_iter().flatten().map(|(k, _)| k) {
        let ok =
            !k.is_empty() && k.len() <= 253 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) && k != "." && k != "..";
        if !ok {
            causes.push(cause(
                "FieldValueInvalid",
                format!("{field}[{k}]"),
                format!("Invalid value: \"{k}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
            ));
        }
    }
}

fn immutable(o: &Value, old: Option<&Value>, fields: &[&str], causes: &mut Vec<Cause>) {
    let Some(old) = old else { return };
    if old["immutable"] != json!(true) {
        return;
    }
    for f in fields {
        if o.get(*f) != old.get(*f) {
            causes.push(cause(
                "FieldValueForbidden",
                *f,
                "Forbidden: field is immutable when `immutable` is set",
            ));
        }
    }
    if o["immutable"] != json!(true) {
        causes.push(cause(
            "FieldValueForbidden",
            "immutable",
            "Forbidden: field is immutable when `immutable` is set",
        ));
    }
}

fn admit_configmap(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    check_keys(o, "data", &mut causes);
    check_keys(o, "binaryData", &mut causes);
    let size: usize = ["data", "binaryData"]
        .iter()
        .flat_map(|f| o.get(*f).and_then(Value::as_object).into_iter().flatten())
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > 1 << 20 {
        causes.push(cause("FieldValueTooLong", "", "Too long: must have at most 1048576 bytes"));
    }
    immutable(o, old, &["data", "binaryData"], &mut causes);
    causes
}

fn admit_secret(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    use base64::Engine;
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    // stringData is write-only: merged into data (base64), as the real server does.
    if let Some(Value::Object(sd)) = o.as_object_mut().and_then(|m| m.remove("stringData")) {
        let data = o.as_object_mut().map(|m| m.entry("data").or_insert_with(|| json!({})));
        if let Some(Value::Object(d)) = data {
            for (k, v) in sd {
                let s = v.as_str().unwrap_or("").to_string();
                d.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(s)));
            }
        }
    }
    if o.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        o["type"] = json!("Opaque");
    }
    check_keys(o, "data", &mut causes);
    for (k, v) in o.get("data").and_then(Value::as_object).into_iter().flatten() {
        if base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).is_err() {
            causes.push(cause(
                "FieldValueInvalid",
                format!("data[{k}]"),
                "Invalid value: illegal base64 data",
            ));
        }
    }
    if let Some(old) = old {
        if old.get("type") != o.get("type") {
            causes.push(cause("FieldValueInvalid", "type", "Invalid value: field is immutable"));
        }
    }
    immutable(o, old, &["data"], &mut causes);
    causes
}

/// Kubernetes' `HumanDuration` (the AGE column).
pub fn human_duration(secs: i64) -> String {
    if secs < 0 {
        return "<invalid>".into();
    }
    let (m, h) = (secs / 60, secs / 3600);
    let d = h / 24;
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            x => format!("{h}h{x}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{d}d"),
            x => format!("{d}d{x}h"),
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        match d % 365 {
            0 => format!("{}y", d / 365),
            x => format!("{}y{x}d", d / 365),
        }
    } else {
        format!("{}y", d / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_durations() {
        assert!(is_dns_label("web-1") && !is_dns_label("Web") && !is_dns_label("-a") && !is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("a.b-c.d") && !is_dns_subdomain("a..b"));
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(3 * 86400), "3d");
    }

    #[test]
    fn secrets_take_string_data_and_default_their_type() {
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}});
        assert!(admit_secret(&mut s, None).is_empty());
        assert_eq!(s["data"]["password"], "aHVudGVyMg==");
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        let mut bad = json!({"metadata": {"name": "Bad_Name"}, "data": {"k": "***"}});
        let causes = admit_secret(&mut bad, None);
        assert_eq!(causes.len(), 2, "{causes:?}");
    }
}
