//! OpenAPI v3 documents made from the kinds served (their schema, their operations with the
//! query parameters they take): kubectl reads them to learn that the server validates fields
//! itself (`fieldValidation` on each PATCH) and `kubectl explain` reads the schemas.

use serde_json::{json, Map, Value};

use super::resources::{Resource, Schema, METADATA, RESOURCES};

/// The schema's name in `components.schemas` (`io.k8s.api.core.v1.ConfigMap`).
fn schema_name(res: &Resource, kind: &str) -> String {
    let g = if res.group.is_empty() {
        "core".to_string()
    } else {
        res.group.split('.').next().unwrap_or("").to_string()
    };
    format!("io.k8s.api.{g}.{}.{kind}", res.version)
}

const META_NAME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn describe(s: &Schema, res: &Resource, schemas: &mut Map<String, Value>) -> Value {
    match s {
        Schema::Any => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        Schema::Str => json!({"type": "string", "default": ""}),
        Schema::Bool => json!({"type": "boolean"}),
        Schema::Int => json!({"type": "integer", "format": "int64"}),
        Schema::Map(inner) => json!({"type": "object", "additionalProperties": describe(inner, res, schemas)}),
        Schema::List(inner) => json!({"type": "array", "items": describe(inner, res, schemas)}),
        Schema::Object(name, fields) => {
            let full = if std::ptr::eq(s, &METADATA) {
                META_NAME.to_string()
            } else {
                schema_name(res, name)
            };
            if !schemas.contains_key(&full) {
                schemas.insert(full.clone(), json!({}));
                let mut props = Map::new();
                for (f, fs) in fields.iter() {
                    props.insert(f.to_string(), describe(fs, res, schemas));
                }
                schemas.insert(
                    full.clone(),
                    json!({"type": "object", "description": format!("{name} (as Kubernetes defines it)"), "properties": props}),
                );
            }
            json!({"allOf": [{"$ref": format!("#/components/schemas/{full}")}]})
        }
    }
}

fn param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(res: &Resource, action: &str, verb_params: &[&str]) -> Value {
    let mut params: Vec<Value> = verb_params
        .iter()
        .map(|p| param(p, match *p {
            "fieldValidation" => "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn (the default) or Strict.",
            "dryRun" => "When present, indicates that modifications should not be persisted: All.",
            "labelSelector" => "A selector to restrict the list of returned objects by their labels.",
            "fieldSelector" => "A selector to restrict the list of returned objects by their fields.",
            _ => "",
        }))
        .collect();
    params.push(param("pretty", "If 'true', then the output is pretty printed."));
    json!({
        "operationId": format!("{action}{}", res.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": res.group, "version": res.version, "kind": res.kind},
    })
}

/// The OpenAPI v3 document of `group/version` ("" group: core).
pub fn document(group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&Resource> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    if kinds.is_empty() {
        return None;
    }
    let mut schemas = Map::new();
    let mut paths = Map::new();
    for r in kinds {
        describe(r.schema, r, &mut schemas);
        let name = schema_name(r, r.kind);
        if let Some(s) = schemas.get_mut(&name) {
            s["x-kubernetes-group-version-kind"] = json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
        }
        let base = if r.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{group}/{version}")
        };
        let coll = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let write = ["dryRun", "fieldManager", "fieldValidation"];
        paths.insert(
            coll.clone(),
            json!({
                "get": operation(r, "list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"]),
                "post": operation(r, "post", &write),
            }),
        );
        paths.insert(
            format!("{coll}/{{name}}"),
            json!({
                "get": operation(r, "get", &[]),
                "put": operation(r, "put", &write),
                "patch": operation(r, "patch", &["dryRun", "fieldManager", "fieldValidation", "force"]),
                "delete": operation(r, "delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", super::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `/openapi/v3`: the group-versions and where their documents are.
pub fn index() -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(&str, &str)> = RESOURCES.iter().map(|r| (r.group, r.version)).collect();
    gvs.sort();
    gvs.dedup();
    for (g, v) in gvs {
        let key = if g.is_empty() {
            "api/v1".to_string()
        } else {
            format!("apis/{g}/{v}")
        };
        let hash = format!("{:016X}", fnv(&document(g, v).map(|d| d.to_string()).unwrap_or_default()));
        paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}));
    }
    json!({"paths": paths})
}

fn fnv(s: &str) -> u64 {
    s.bytes()
        .fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}
