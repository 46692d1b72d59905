//! rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding — their
//! validation as the real server's, and `kubectl get` columns. Enforcement is
//! in [`super::auth`].

use serde_json::{json, Value};

use super::resources::{cause, Column, Resource};
use super::status::Cause;

/// RBAC names are path segments (`system:discovery` is one), not DNS names.
fn check_name(o: &Value, causes: &mut Vec<Cause>) {
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    } else if name == "." || name == ".." {
        causes.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": may not be '{name}'"),
        ));
    } else if let Some(c) = ['/', '%'].iter().find(|c| name.contains(**c)) {
        causes.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": may not contain '{c}'"),
        ));
    }
}

fn admit_role(o: &mut Value, _old: Option<&Value>, cluster: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_name(o, &mut causes);
    for (i, r) in o["rules"].as_array().into_iter().flatten().enumerate() {
        let empty = |k: &str| r[k].as_array().is_none_or(Vec::is_empty);
        if empty("verbs") {
            causes.push(cause(
                "FieldValueRequired",
                format!("rules[{i}].verbs"),
                "Required value: verbs must contain at least one value",
            ));
        }
        if !empty("nonResourceURLs") {
            if !cluster {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("rules[{i}].nonResourceURLs"),
                    "Invalid value: []string{...}: namespaced rules cannot apply to non-resource URLs",
                ));
            } else if !empty("apiGroups") || !empty("resources") {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("rules[{i}].nonResourceURLs"),
                    "Invalid value: []string{...}: rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
        } else if empty("apiGroups") {
            causes.push(cause(
                "FieldValueRequired",
                format!("rules[{i}].apiGroups"),
                "Required value: resource rules must supply at least one api group",
            ));
        } else if empty("resources") {
            causes.push(cause(
                "FieldValueRequired",
                format!("rules[{i}].resources"),
                "Required value: resource rules must supply at least one resource",
            ));
        }
    }
    causes
}

fn admit_binding(o: &mut Value, old: Option<&Value>, cluster: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_name(o, &mut causes);
    let rr = &o["roleRef"];
    let kind = rr["kind"].as_str().unwrap_or("");
    if rr["apiGroup"] != "rbac.authorization.k8s.io" {
        causes.push(cause(
            "FieldValueNotSupported",
            "roleRef.apiGroup",
            format!(
                "Unsupported value: {:?}: supported values: \"rbac.authorization.k8s.io\"",
                rr["apiGroup"].as_str().unwrap_or("")
            ),
        ));
    }
    let kinds: &[&str] = if cluster { &["ClusterRole"] } else { &["Role", "ClusterRole"] };
    if !kinds.contains(&kind) {
        causes.push(cause(
            "FieldValueNotSupported",
            "roleRef.kind",
            format!(
                "Unsupported value: {kind:?}: supported values: {}",
                kinds.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if rr["name"].as_str().unwrap_or("").is_empty() {
        causes.push(cause("FieldValueRequired", "roleRef.name", "Required value"));
    }
    if let Some(old) = old {
        if old["roleRef"] != o["roleRef"] {
            causes.push(cause("FieldValueInvalid", "roleRef", "Invalid value: cannot change roleRef"));
        }
    }
    for (i, s) in o["subjects"].as_array().into_iter().flatten().enumerate() {
        let f = |k: &str| format!("subjects[{i}].{k}");
        if s["name"].as_str().unwrap_or("").is_empty() {
            causes.push(cause("FieldValueRequired", f("name"), "Required value"));
        }
        match s["kind"].as_str().unwrap_or("") {
            "ServiceAccount" => {
                if cluster && s["namespace"].as_str().unwrap_or("").is_empty() {
                    causes.push(cause("FieldValueRequired", f("namespace"), "Required value"));
                }
            }
            "User" | "Group" => {
                if s["apiGroup"] != "rbac.authorization.k8s.io" {
                    causes.push(cause(
                        "FieldValueNotSupported",
                        f("apiGroup"),
                        "Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
                    ));
                }
            }
            other => causes.push(cause(
                "FieldValueNotSupported",
                f("kind"),
                format!("Unsupported value: {other:?}: supported values: \"ServiceAccount\", \"User\", \"Group\""),
            )),
        }
    }
    causes
}

fn created_at(o: &Value) -> Vec<Value> {
    vec![o.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null)]
}

fn binding_cells(o: &Value) -> Vec<Value> {
    let names = |kind: &str| -> String {
        let v: Vec<String> = o["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["kind"] == kind)
            .map(|s| match (kind, s["namespace"].as_str()) {
                ("ServiceAccount", Some(ns)) => format!("{ns}/{}", s["name"].as_str().unwrap_or("")),
                _ => s["name"].as_str().unwrap_or("").to_string(),
            })
            .collect();
        v.join(", ")
    };
    vec![
        json!(format!(
            "{}/{}",
            o.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or(""),
            o.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("")
        )),
        json!(super::table::age(o)),
        json!(names("User")),
        json!(names("Group")),
        json!(names("ServiceAccount")),
    ]
}

const CREATED_AT: &[Column] = &[Column {
    name: "Created At",
    kind: "date",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
    priority: 0,
}];
const BINDING_COLUMNS: &[Column] = &[
    Column {
        name: "Role",
        kind: "string",
        format: "",
        description: "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
        priority: 0,
    },
    super::resources::AGE,
    Column {
        name: "Users",
        kind: "string",
        format: "",
        description: "Users in the binding",
        priority: 1,
    },
    Column {
        name: "Groups",
        kind: "string",
        format: "",
        description: "Groups in the binding",
        priority: 1,
    },
    Column {
        name: "ServiceAccounts",
        kind: "string",
        format: "",
        description: "ServiceAccounts in the binding",
        priority: 1,
    },
];

const GROUP: &str = "rbac.authorization.k8s.io";

/// The four RBAC kinds.
pub const ROLE_RESOURCE: Resource = Resource {
    group: GROUP,
    version: "v1",
    kind: "Role",
    plural: "roles",
    singular: "role",
    namespaced: true,
    short_names: &[],
    schema: super::typed::schema::<k8s_openapi::api::rbac::v1::Role>,
    columns: CREATED_AT,
    cells: created_at,
    admit: |o, old| admit_role(o, old, false),
    field_selectors: &[],
    decode: super::typed::decode::<k8s_openapi::api::rbac::v1::Role>,
    subresources: &[],
};
pub const CLUSTER_ROLE_RESOURCE: Resource = Resource {
    group: GROUP,
    version: "v1",
    kind: "ClusterRole",
    plural: "clusterroles",
    singular: "clusterrole",
    namespaced: false,
    short_names: &[],
    schema: super::typed::schema::<k8s_openapi::api::rbac::v1::ClusterRole>,
    columns: CREATED_AT,
    cells: created_at,
    admit: |o, old| admit_role(o, old, true),
    field_selectors: &[],
    decode: super::typed::decode::<k8s_openapi::api::rbac::v1::ClusterRole>,
    subresources: &[],
};
pub const ROLE_BINDING_RESOURCE: Resource = Resource {
    group: GROUP,
    version: "v1",
    kind: "RoleBinding",
    plural: "rolebindings",
    singular: "rolebinding",
    namespaced: true,
    short_names: &[],
    schema: super::typed::schema::<k8s_openapi::api::rbac::v1::RoleBinding>,
    columns: BINDING_COLUMNS,
    cells: binding_cells,
    admit: |o, old| admit_binding(o, old, false),
    field_selectors: &[],
    decode: super::typed::decode::<k8s_openapi::api::rbac::v1::RoleBinding>,
    subresources: &[],
};
pub const CLUSTER_ROLE_BINDING_RESOURCE: Resource = Resource {
    group: GROUP,
    version: "v1",
    kind: "ClusterRoleBinding",
    plural: "clusterrolebindings",
    singular: "clusterrolebinding",
    namespaced: false,
    short_names: &[],
    schema: super::typed::schema::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>,
    columns: BINDING_COLUMNS,
    cells: binding_cells,
    admit: |o, old| admit_binding(o, old, true),
    field_selectors: &[],
    decode: super::typed::decode::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>,
    subresources: &[],
};
