//! The OpenAPI documents: v3 per group-version (`/openapi/v3/...`) and one v2 document
//! (`/openapi/v2`), made from the kinds served — their schemas are their Kubernetes types'
//! (k8s-openapi carries the real server's schemas and descriptions), their operations list the
//! query parameters they take. kubectl reads them to learn that the server validates fields
//! itself (`fieldValidation` on each PATCH), and `kubectl explain` reads the schemas.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use super::resources::{Resource, RESOURCES};

/// The definitions of `kinds` (and of every type they use), each kind marked with its
/// group-version-kind as the real documents mark it.
fn definitions(kinds: &[&Resource], settings: SchemaSettings) -> Map<String, Value> {
    let mut g = settings.into_generator();
    let refs: Vec<(String, &Resource)> = kinds
        .iter()
        .map(|r| {
            let s = (r.schema)(&mut g);
            let name = s
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
                .unwrap_or("")
                .to_string();
            (name, *r)
        })
        .collect();
    let mut defs = g.take_definitions(true);
    for (name, r) in refs {
        if let Some(d) = defs.get_mut(&name) {
            d["x-kubernetes-group-version-kind"] = json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
        }
    }
    defs
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

fn paths_of(kinds: &[&Resource], v2: bool) -> Map<String, Value> {
    let mut paths = Map::new();
    for r in kinds {
        let base = if r.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let coll = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let write = ["dryRun", "fieldManager", "fieldValidation"];
        let op = |action: &str, params: &[&str]| {
            let mut o = operation(r, action, params);
            if v2 {
                // Swagger 2.0 parameters carry their type themselves.
                for p in o["parameters"].as_array_mut().into_iter().flatten() {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("schema");
                        m.insert("type".into(), json!("string"));
                        m.insert("uniqueItems".into(), json!(true));
                    }
                }
            }
            o
        };
        paths.insert(
            coll.clone(),
            json!({
                "get": op("list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"]),
                "post": op("post", &write),
            }),
        );
        paths.insert(
            format!("{coll}/{{name}}"),
            json!({
                "get": op("get", &[]),
                "put": op("put", &write),
                "patch": op("patch", &["dryRun", "fieldManager", "fieldValidation", "force"]),
                "delete": op("delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            }),
        );
    }
    paths
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": format!("v1.{}.0", super::KUBE_MINOR)})
}

/// The v3 documents by group-version, made once (the kinds served do not change).
fn documents() -> &'static BTreeMap<(String, String), Value> {
    static DOCS: OnceLock<BTreeMap<(String, String), Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut gvs: Vec<(&str, &str)> = RESOURCES.iter().map(|r| (r.group, r.version)).collect();
        gvs.sort();
        gvs.dedup();
        gvs.into_iter()
            .map(|(g, v)| {
                let kinds: Vec<&Resource> = RESOURCES.iter().filter(|r| r.group == g && r.version == v).collect();
                let doc = json!({
                    "openapi": "3.0.0",
                    "info": info(),
                    "paths": paths_of(&kinds, false),
                    "components": {"schemas": definitions(&kinds, SchemaSettings::openapi3())},
                });
                ((g.to_string(), v.to_string()), doc)
            })
            .collect()
    })
}

/// The OpenAPI v3 document of `group/version` ("" group: core).
pub fn document(group: &str, version: &str) -> Option<&'static Value> {
    documents().get(&(group.to_string(), version.to_string()))
}

/// `/openapi/v2`: one Swagger 2.0 document of every kind served.
pub fn v2() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let kinds: Vec<&Resource> = RESOURCES.iter().collect();
        let settings = SchemaSettings::draft07().with(|s| {
            s.definitions_path = "/definitions".into();
            s.meta_schema = None;
        });
        json!({
            "swagger": "2.0",
            "info": info(),
            "paths": paths_of(&kinds, true),
            "definitions": definitions(&kinds, settings),
        })
    })
}

/// `/openapi/v3`: the group-versions and where their documents are.
pub fn index() -> Value {
    let mut paths = Map::new();
    for ((g, v), doc) in documents() {
        let key = if g.is_empty() {
            "api/v1".to_string()
        } else {
            format!("apis/{g}/{v}")
        };
        let hash = format!("{:016X}", fnv(&doc.to_string()));
        paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}));
    }
    json!({"paths": paths})
}

fn fnv(s: &str) -> u64 {
    s.bytes()
        .fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_hold_the_kinds_real_schemas() {
        let core = document("", "v1").unwrap();
        let cm = &core["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(cm["x-kubernetes-group-version-kind"][0]["kind"], "ConfigMap");
        assert!(cm["properties"]["data"]["description"]
            .as_str()
            .unwrap()
            .contains("Data contains the configuration data"));
        let meta = cm["properties"]["metadata"]["allOf"][0]["$ref"].as_str().unwrap();
        assert_eq!(meta, "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        assert!(core["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"].is_object());
        let v2 = v2();
        assert_eq!(
            v2["definitions"]["io.k8s.api.rbac.v1.Role"]["x-kubernetes-group-version-kind"][0]["group"],
            "rbac.authorization.k8s.io"
        );
        assert!(v2["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"].is_object());
        assert!(index()["paths"]["apis/rbac.authorization.k8s.io/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .contains("?hash="));
    }
}
