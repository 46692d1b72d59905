//! `GET pods/<name>/log`: a container's output from the engine's log, with the kubelet's
//! options (container, follow, previous, tailLines, sinceSeconds, sinceTime, timestamps,
//! limitBytes), streamed as plain text.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::pods::{Pods, CONTAINER};
use crate::apiserver::status::{ApiError, ApiResult};

fn bad(msg: String) -> ApiError {
    ApiError::bad_request(msg)
}

/// The container of `pod` a request names (`container=`), or its only one; the API server's
/// errors otherwise. Logs, exec and attach choose the same way.
pub fn container_named(pod: &Value, wanted: Option<&str>) -> ApiResult<String> {
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let list = |l: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{l}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect()
    };
    let mains = list("containers");
    let names = [list("initContainers"), mains.clone()].concat();
    match wanted.filter(|c| !c.is_empty()) {
        Some(c) if names.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(bad(format!("container {c} is not valid for pod {pod_name}"))),
        None if mains.len() == 1 => Ok(mains[0].clone()),
        None => Err(bad(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// Serve the log of one of `pod`'s containers.
pub async fn serve(pods: Arc<Pods>, pod: Value, q: &std::collections::BTreeMap<String, String>) -> ApiResult<Response> {
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let container = container_named(&pod, q.get("container").map(String::as_str))?;
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let num = |k: &str| -> ApiResult<Option<i64>> {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<i64>().map_err(|_| bad(format!("{k}: invalid value {v:?}"))))
            .transpose()
    };
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
    let all = pods.containers_of(uid);
    let (latest, previous) = Pods::instances(&all, &container);
    let inst = if flag("previous") {
        previous.ok_or_else(|| {
            bad(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            ))
        })?
    } else {
        let waiting = || {
            pod.pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .into_iter()
                .chain(pod.pointer("/status/initContainerStatuses").and_then(Value::as_array))
                .flatten()
                .find(|c| c["name"] == container.as_str())
                .and_then(|c| c.pointer("/state/waiting/reason"))
                .and_then(Value::as_str)
                .unwrap_or("ContainerCreating")
                .to_string()
        };
        match latest {
            Some(c) if c.state.status != "created" => c,
            _ => {
                return Err(bad(format!(
                    "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {}",
                    waiting()
                )))
            }
        }
    };
    debug_assert_eq!(inst.config.labels.get(CONTAINER), Some(&container));
    let mut since = num("sinceSeconds")?.map(|s| chrono::Utc::now().timestamp() as f64 - s as f64);
    if let Some(t) = q.get("sinceTime").filter(|t| !t.is_empty()) {
        let t = chrono::DateTime::parse_from_rfc3339(t).map_err(|_| bad(format!("sinceTime: invalid value {t:?}")))?;
        since = Some(t.timestamp() as f64);
    }
    let opts = engine::streams::LogOptions {
        stdout: true,
        stderr: true,
        follow: flag("follow"),
        timestamps: flag("timestamps"),
        tail: num("tailLines")?.filter(|t| *t >= 0).map(|t| t as usize),
        since,
        until: None,
        raw: true,
    };
    let limit = num("limitBytes")?.filter(|l| *l > 0).map(|l| l as usize);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let engine = pods.engine.clone();
    let id = inst.id.clone();
    tokio::spawn(async move {
        let _ = engine.logs(&id, opts, tx).await;
    });
    let (btx, brx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut left = limit;
        while let Some(mut chunk) = rx.recv().await {
            if let Some(l) = left.as_mut() {
                chunk.truncate(*l);
                *l -= chunk.len();
            }
            if !chunk.is_empty() && btx.send(Ok(bytes::Bytes::from(chunk))).await.is_err() {
                return;
            }
            if left == Some(0) {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(brx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok(([("content-type", "text/plain")], Body::from_stream(stream)).into_response())
}
