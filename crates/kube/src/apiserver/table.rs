//! `Table` responses (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): the columns the
//! real server prints for `kubectl get`, rows with the objects' metadata.

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::resources::{human_duration, name_column, Resource};

/// Does the client ask for a Table?
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|a| a.contains("as=Table") && a.contains("g=meta.k8s.io") && a.contains("v=v1") && !a.contains("v=v1beta1"))
}

/// The AGE cell of an object.
pub fn age(o: &Value) -> String {
    let created = o.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("");
    match chrono::DateTime::parse_from_rfc3339(created) {
        Ok(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

/// A Table of `objects` of one kind.
pub fn table(res: &Resource, objects: &[Value], resource_version: &str) -> Value {
    let mut cols = vec![name_column()];
    cols.extend(res.columns.iter());
    let mut defs: Vec<Value> = cols
        .iter()
        .map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority}))
        .collect();
    // Age goes last unless the kind places it (its cells then give it, see [`age`]).
    let placed = res.columns.iter().any(|c| c.name == "Age" || c.name == "Created At");
    if !placed {
        let c = &super::resources::AGE;
        defs.push(json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority}));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
            let default_class = o
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(super::storage::DEFAULT_CLASS))
                .is_some_and(|v| v == "true");
            if res.kind == "StorageClass" && default_class {
                name.push_str(" (default)");
            }
            let mut cells = vec![json!(name)];
            cells.extend((res.cells)(o));
            if !placed {
                cells.push(json!(age(o)));
            }
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    })
}
