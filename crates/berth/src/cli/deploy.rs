//! `berth deploy` and `berth undeploy`: an image (or a directory, built first) served on the
//! daemon's Kubernetes API without writing a manifest — a Deployment, a Service, an Ingress
//! host `NAME.localhost` and with `--autoscale` a HorizontalPodAutoscaler, applied server-side
//! (field manager `berth-deploy`), so that deploying again is a rolling update. It waits for
//! the rollout, showing its progress, and prints the URL; a container that exits at once is
//! reported with its exit code and last log lines. `--dry-run -o yaml` prints the manifests
//! instead: plain Kubernetes objects, valid for any cluster.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use super::client::Client;

/// The field manager deploys apply as.
const MANAGER: &str = "berth-deploy";
/// The label naming a deployed app (the selector of its pods).
const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The label marking what `berth deploy` made.
const MANAGED_LABEL: &str = "app.kubernetes.io/managed-by";

/// Flags of `berth deploy`.
#[derive(clap::Args, Debug)]
pub struct DeployArgs {
    /// The image to deploy, or a directory to build first (its Dockerfile, or as a Python
    /// project when it has none)
    #[arg(value_name = "IMAGE|DIR")]
    pub target: String,
    /// The port the app listens on in its container
    #[arg(long, value_name = "N")]
    pub port: u16,
    /// How many replicas (with --autoscale: where the autoscaler starts)
    #[arg(long, default_value_t = 1, value_name = "R")]
    pub replicas: u32,
    /// Scale between MIN and MAX replicas on CPU (a HorizontalPodAutoscaler)
    #[arg(long, value_name = "MIN-MAX")]
    pub autoscale: Option<String>,
    /// Target CPU utilisation of the replicas' requests for --autoscale (default 80%)
    #[arg(long, value_name = "P%", requires = "autoscale")]
    pub cpu: Option<String>,
    /// CPU each replica requests (default 100m with --autoscale, which scales against it)
    #[arg(long, value_name = "QUANTITY")]
    pub cpu_request: Option<String>,
    /// Memory each replica requests and is limited to (e.g. 256Mi)
    #[arg(long, value_name = "QUANTITY")]
    pub memory: Option<String>,
    /// GPUs each replica gets (an nvidia.com/gpu resource limit, served from the node's CDI specs)
    #[arg(long, value_name = "N")]
    pub gpu: Option<u32>,
    /// The app's name (default: from the image or the directory)
    #[arg(long)]
    pub name: Option<String>,
    /// Environment variables (KEY=VALUE)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The namespace to deploy into
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Print the manifests (with -o yaml|json) instead of applying them
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of --dry-run: yaml or json
    #[arg(short = 'o', long, value_name = "yaml|json", requires = "dry_run")]
    pub output: Option<String>,
    /// How long to wait for the rollout (seconds; 0: do not wait)
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
    /// The daemon's data root (its admin kubeconfig is ROOT/kubeconfig)
    #[arg(long, default_value = "/var/lib/berth")]
    pub root: PathBuf,
    /// Base image when a directory is built as a Python project (as `berth build --base`)
    #[arg(long, value_name = "image")]
    pub base: Option<String>,
    /// Build-time variables when a directory is built (KEY=VALUE)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
}

/// Flags of `berth undeploy`.
#[derive(clap::Args, Debug)]
pub struct UndeployArgs {
    /// The app's name
    pub name: String,
    /// Its namespace
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The daemon's data root (its admin kubeconfig is ROOT/kubeconfig)
    #[arg(long, default_value = "/var/lib/berth")]
    pub root: PathBuf,
}

/// A client of the daemon's Kubernetes API, as its admin kubeconfig says to reach it.
struct Kube {
    http: reqwest::Client,
    server: String,
}

impl Kube {
    fn open(root: &Path) -> Result<Kube> {
        let path = root.join("kubeconfig");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is `berth daemon --root {}` running with its Kubernetes API?)",
                path.display(),
                root.display()
            )
        })?;
        let k: Value = serde_saphyr::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let field = |p: &str| {
            k.pointer(p)
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{}: no {p}", path.display()))
        };
        use base64::Engine;
        let b64 = |p: &str| -> Result<Vec<u8>> {
            base64::engine::general_purpose::STANDARD
                .decode(field(p)?)
                .map_err(|e| anyhow!("{}: {p}: {e}", path.display()))
        };
        let server = field("/clusters/0/cluster/server")?.trim_end_matches('/').to_string();
        let ca = b64("/clusters/0/cluster/certificate-authority-data")?;
        let mut identity = b64("/users/0/user/client-certificate-data")?;
        identity.extend(b64("/users/0/user/client-key-data")?);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
            .identity(reqwest::Identity::from_pem(&identity)?)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Kube { http, server })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<(&str, String)>) -> Result<(u16, Value)> {
        let mut r = self.http.request(method, format!("{}{path}", self.server));
        if let Some((ct, b)) = body {
            r = r.header("content-type", ct).body(b);
        }
        let resp = r
            .send()
            .await
            .with_context(|| format!("reaching the Kubernetes API at {}", self.server))?;
        let code = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((code, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn get(&self, path: &str) -> Result<Option<Value>> {
        match self.call(reqwest::Method::GET, path, None).await? {
            (200, v) => Ok(Some(v)),
            (404, _) => Ok(None),
            (_, v) => bail!("{}", message(&v)),
        }
    }

    /// Server-side apply `obj` at `path` (the object's URL).
    async fn apply(&self, path: &str, obj: &Value) -> Result<Value> {
        let q = format!("{path}?fieldManager={MANAGER}&force=true");
        match self
            .call(reqwest::Method::PATCH, &q, Some(("application/apply-patch+yaml", obj.to_string())))
            .await?
        {
            (200 | 201, v) => Ok(v),
            (_, v) => bail!(
                "{} {}: {}",
                obj["kind"].as_str().unwrap_or(""),
                obj["metadata"]["name"].as_str().unwrap_or(""),
                message(&v)
            ),
        }
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}).to_string();
        match self.call(reqwest::Method::DELETE, path, Some(("application/json", body))).await? {
            (200 | 202, _) => Ok(true),
            (404, _) => Ok(false),
            (_, v) => bail!("{}", message(&v)),
        }
    }
}

fn message(v: &Value) -> String {
    v["message"].as_str().map(String::from).unwrap_or_else(|| v.to_string())
}

/// The object's URL (namespaced kinds).
fn url(obj: &Value) -> String {
    let (api, plural) = match obj["kind"].as_str().unwrap_or("") {
        "Deployment" => ("/apis/apps/v1", "deployments"),
        "Service" => ("/api/v1", "services"),
        "Ingress" => ("/apis/networking.k8s.io/v1", "ingresses"),
        _ => ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    };
    format!(
        "{api}/namespaces/{}/{plural}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or("default"),
        obj["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// A name from an image reference or a directory, as a DNS label (RFC 1035).
fn default_name(target: &str) -> String {
    let base = if Path::new(target).is_dir() {
        Path::new(target)
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default()
    } else {
        let repo = target.split('@').next().unwrap_or(target);
        let last = repo.rsplit('/').next().unwrap_or(repo);
        last.split(':').next().unwrap_or(last).to_string()
    };
    let mut n: String = base
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    n = n.trim_matches('-').to_string();
    if n.starts_with(|c: char| c.is_ascii_digit()) {
        n = format!("app-{n}");
    }
    n.truncate(50);
    n.trim_end_matches('-').to_string()
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && !n.ends_with('-')
        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `MIN-MAX`.
fn parse_range(s: &str) -> Result<(u32, u32)> {
    let bad = || anyhow!("--autoscale {s:?}: expected MIN-MAX replicas, e.g. 1-5");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (min, max): (u32, u32) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if min < 1 || max < min {
        bail!("--autoscale {s:?}: MIN must be at least 1 and MAX at least MIN");
    }
    Ok((min, max))
}

/// The manifests of a deploy of `image` as `name`.
fn manifests(a: &DeployArgs, name: &str, image: &str) -> Result<Vec<Value>> {
    let ns = &a.namespace;
    let labels = json!({NAME_LABEL: name, MANAGED_LABEL: "berth"});
    let mut env = Vec::new();
    for e in &a.env {
        let (k, v) = e.split_once('=').ok_or_else(|| anyhow!("--env {e:?}: expected KEY=VALUE"))?;
        if k.is_empty() {
            bail!("--env {e:?}: the name is empty");
        }
        env.push(json!({"name": k, "value": v}));
    }
    let scale = a.autoscale.as_deref().map(parse_range).transpose()?;
    let cpu_target: Option<i64> = match (&scale, &a.cpu) {
        (Some(_), Some(p)) => {
            let n: i64 = p
                .trim_end_matches('%')
                .parse()
                .map_err(|_| anyhow!("--cpu {p:?}: expected a percentage, e.g. 70%"))?;
            if n < 1 {
                bail!("--cpu {p:?}: must be at least 1%");
            }
            Some(n)
        }
        (Some(_), None) => Some(80),
        _ => None,
    };
    let mut requests = serde_json::Map::new();
    if let Some(c) = a.cpu_request.clone().or_else(|| scale.map(|_| "100m".to_string())) {
        requests.insert("cpu".into(), json!(c));
    }
    let mut resources = json!({});
    if let Some(m) = &a.memory {
        requests.insert("memory".into(), json!(m));
        resources["limits"] = json!({"memory": m});
    }
    if let Some(g) = a.gpu.filter(|g| *g > 0) {
        // An extended resource: the limit alone (the request defaults to it).
        if !resources["limits"].is_object() {
            resources["limits"] = json!({});
        }
        resources["limits"][engine::cdi::GPU_KIND] = json!(g.to_string());
    }
    if !requests.is_empty() {
        resources["requests"] = Value::Object(requests);
    }
    let mut container = json!({
        "name": name,
        "image": image,
        "ports": [{"name": "http", "containerPort": a.port}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 2},
    });
    if !env.is_empty() {
        container["env"] = json!(env);
    }
    if resources.as_object().is_some_and(|m| !m.is_empty()) {
        container["resources"] = resources;
    }
    let mut deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {NAME_LABEL: name}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    });
    // With an autoscaler, the replicas are its to set: the deploy does not own the field.
    if scale.is_none() {
        deployment["spec"]["replicas"] = json!(a.replicas);
    }
    let mut out = vec![
        deployment,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"selector": {NAME_LABEL: name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"rules": [{"host": format!("{name}.localhost"), "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": name, "port": {"name": "http"}}}}
            ]}}]},
        }),
    ];
    if let (Some((min, max)), Some(cpu)) = (scale, cpu_target) {
        out.push(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": min, "maxReplicas": max,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}],
            },
        }));
    }
    Ok(out)
}

/// Build a directory for a deploy: the image's ID, tagged `name:<short id>` (a new tag for new
/// content, so that deploying it again rolls out).
async fn build_dir(client: &Client, a: &DeployArgs, name: &str) -> Result<String> {
    let dir = a.target.as_str();
    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        b: super::build::BuildArgs,
    }
    let mut args = vec!["build".to_string(), "-q".to_string()];
    if let Some(b) = &a.base {
        args.extend(["--base".to_string(), b.clone()]);
    }
    for b in &a.build_args {
        args.extend(["--build-arg".to_string(), b.clone()]);
    }
    args.push(dir.to_string());
    let w = <Wrap as clap::Parser>::try_parse_from(args).map_err(|e| anyhow!("{e}"))?;
    eprintln!("Building {dir} ...");
    let id = super::build::build_image(client, w.b).await?;
    let short = id.trim_start_matches("sha256:").chars().take(12).collect::<String>();
    let q = format!("/images/{id}/tag?repo={name}&tag={short}");
    client.post(&q, None).await?;
    Ok(format!("{name}:{short}"))
}

fn yaml_docs(objs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for o in objs {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(o).map_err(|e| anyhow!("{e}"))?);
    }
    Ok(out)
}

pub async fn deploy(client: &Client, a: DeployArgs) -> Result<i32> {
    let name = a.name.clone().unwrap_or_else(|| default_name(&a.target));
    if !valid_name(&name) {
        bail!("{name:?} is not a valid app name (lowercase letters, digits and '-', starting with a letter, at most 63): give one with --name");
    }
    if a.port == 0 {
        bail!("--port 0: give the port the app listens on");
    }
    if a.dry_run {
        let image = if Path::new(&a.target).is_dir() {
            format!("{name}:<built from {}>", a.target)
        } else {
            a.target.clone()
        };
        let objs = manifests(&a, &name, &image)?;
        match a.output.as_deref().unwrap_or("yaml") {
            "yaml" => print!("{}", yaml_docs(&objs)?),
            "json" => println!(
                "{}",
                serde_json::to_string_pretty(&json!({"apiVersion": "v1", "kind": "List", "items": objs}))?
            ),
            o => bail!("-o {o:?}: expected yaml or json"),
        }
        return Ok(0);
    }
    let kube = Kube::open(&a.root)?;
    let image = if Path::new(&a.target).is_dir() {
        build_dir(client, &a, &name).await?
    } else {
        a.target.clone()
    };
    let objs = manifests(&a, &name, &image)?;
    for o in &objs {
        kube.apply(&url(o), o).await?;
    }
    // An autoscaler no longer asked for goes.
    if a.autoscale.is_none() {
        let hpa = format!("/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers/{name}", a.namespace);
        if let Some(h) = kube.get(&hpa).await? {
            if h.pointer(&format!("/metadata/labels/{}", MANAGED_LABEL.replace('/', "~1"))) == Some(&json!("berth")) {
                kube.delete(&hpa).await?;
            }
        }
    }
    if a.timeout > 0 {
        wait(&kube, &a.namespace, &name, &image, Duration::from_secs(a.timeout)).await?;
    }
    let ing = kube
        .get(&format!("/apis/networking.k8s.io/v1/namespaces/{}/ingresses/{name}", a.namespace))
        .await?
        .unwrap_or_default();
    let port = ing
        .pointer("/status/loadBalancer/ingress/0/ports/0/port")
        .and_then(Value::as_i64)
        .unwrap_or(80);
    let host = format!("{name}.localhost");
    let url = if port == 80 {
        format!("http://{host}/")
    } else {
        format!("http://{host}:{port}/")
    };
    println!("{name} is serving {image} at {url}");
    Ok(0)
}

/// Wait for the Deployment's rollout of `image`, showing its progress; fail with the reason
/// when its pods cannot start.
async fn wait(kube: &Kube, ns: &str, name: &str, image: &str, timeout: Duration) -> Result<()> {
    let t0 = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
    loop {
        let d = kube.get(&path).await?.ok_or_else(|| anyhow!("the Deployment {name} is gone"))?;
        let st = |f: &str| d.pointer(&format!("/status/{f}")).and_then(Value::as_i64).unwrap_or(0);
        let want = d.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
        let observed = st("observedGeneration") >= d.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        let line = format!(
            "Waiting for {name}: {}/{want} replicas ready, {} updated",
            st("availableReplicas").min(want),
            st("updatedReplicas")
        );
        if line != last {
            if tty {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
            let _ = std::io::stderr().flush();
            last = line;
        }
        if observed && st("updatedReplicas") >= want && st("availableReplicas") >= want && st("replicas") <= want {
            if tty {
                eprintln!();
            }
            return Ok(());
        }
        if let Some(why) = failing(kube, ns, name, image).await? {
            if tty {
                eprintln!();
            }
            bail!("{why}");
        }
        if t0.elapsed() > timeout {
            if tty {
                eprintln!();
            }
            bail!(
                "{name} was not ready after {}s ({last}); see `kubectl describe deployment {name}`",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Why the new pods cannot run, if they cannot: a container that exited (with its code and
/// last log lines), an image that cannot be had.
async fn failing(kube: &Kube, ns: &str, name: &str, image: &str) -> Result<Option<String>> {
    let sel = format!("{NAME_LABEL}={name}");
    let sel = percent_encoding::utf8_percent_encode(&sel, percent_encoding::NON_ALPHANUMERIC).to_string();
    let pods = kube
        .get(&format!("/api/v1/namespaces/{ns}/pods?labelSelector={sel}"))
        .await?
        .unwrap_or_default();
    for p in pods["items"].as_array().into_iter().flatten() {
        if p.pointer("/spec/containers/0/image").and_then(Value::as_str) != Some(image) {
            continue;
        }
        let pod = p["metadata"]["name"].as_str().unwrap_or("");
        for cs in p
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let waiting = cs.pointer("/state/waiting/reason").and_then(Value::as_str).unwrap_or("");
            if matches!(
                waiting,
                "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull"
            ) {
                let msg = cs.pointer("/state/waiting/message").and_then(Value::as_str).unwrap_or("");
                return Ok(Some(format!("{name}: pod {pod} cannot get its image {image}: {waiting}: {msg}")));
            }
            let term = cs
                .pointer("/state/terminated")
                .filter(|t| t.is_object())
                .or_else(|| cs.pointer("/lastState/terminated").filter(|t| t.is_object()));
            let Some(t) = term else { continue };
            let code = t["exitCode"].as_i64().unwrap_or(0);
            let logs_path = format!("/api/v1/namespaces/{ns}/pods/{pod}/log?tailLines=20");
            let logs = match kube.call(reqwest::Method::GET, &logs_path, None).await? {
                (200, Value::String(s)) => s,
                (200, v) => v.to_string(),
                _ => String::new(),
            };
            let previous = match kube.call(reqwest::Method::GET, &format!("{logs_path}&previous=true"), None).await? {
                (200, Value::String(s)) => s,
                _ => String::new(),
            };
            let logs = if logs.trim().is_empty() { previous } else { logs };
            let tail: Vec<&str> = logs.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
            return Ok(Some(format!(
                "{name}: the container exited with code {code} ({}){}",
                t["reason"].as_str().unwrap_or("Error"),
                if tail.is_empty() {
                    " and wrote no log".to_string()
                } else {
                    format!("; its last log lines:\n{}", tail.join("\n"))
                }
            )));
        }
    }
    Ok(None)
}

pub async fn undeploy(a: UndeployArgs) -> Result<i32> {
    let kube = Kube::open(&a.root)?;
    let ns = &a.namespace;
    let n = &a.name;
    let mut any = false;
    for path in [
        format!("/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{n}"),
        format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{n}"),
        format!("/api/v1/namespaces/{ns}/services/{n}"),
        format!("/apis/apps/v1/namespaces/{ns}/deployments/{n}"),
    ] {
        if let Some(o) = kube.get(&path).await? {
            if o.pointer(&format!("/metadata/labels/{}", MANAGED_LABEL.replace('/', "~1"))) != Some(&json!("berth")) {
                eprintln!("{path}: not made by berth deploy, left alone");
                continue;
            }
            any |= kube.delete(&path).await?;
        }
    }
    if !any {
        bail!("no app {n:?} deployed by berth in namespace {ns}");
    }
    println!("{n} undeployed");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ranges() {
        assert_eq!(default_name("registry.local:5000/team/Model_Server:v2"), "model-server");
        assert_eq!(default_name("3d:1"), "app-3d");
        assert!(valid_name("demo") && !valid_name("Demo") && !valid_name("-x"));
        assert_eq!(parse_range("2-5").unwrap(), (2, 5));
        assert!(parse_range("5-2").is_err() && parse_range("0-2").is_err() && parse_range("x").is_err());
    }
}
