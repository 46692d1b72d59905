//! The Kubernetes API server (issue 12) through the real kubectl: discovery, namespaces,
//! configmaps and secrets from files and from kubectl's generators (protobuf bodies), apply,
//! selectors, watch, errors as the real server words them, and state kept across a restart.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::{Daemon, Killed};

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels: {app: model}\ndata:\n  lr: \"0.01\"\n  epochs: \"10\"\n";

fn err(o: &std::process::Output) -> String {
    common::errtext(o)
}

/// GET `path` with the kubeconfig's admin certificate and this Accept header; (headers, body).
fn with_admin_cert(d: &Daemon, path: &str, accept: &str) -> (String, String) {
    use base64::Engine;
    let kc = std::fs::read_to_string(d.kubeconfig()).unwrap();
    let field = |k: &str| kc.lines().find_map(|l| l.trim().strip_prefix(k)).unwrap().trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    for (k, f) in [
        ("client-certificate-data:", "c.pem"),
        ("client-key-data:", "k.pem"),
        ("certificate-authority-data:", "ca.pem"),
    ] {
        std::fs::write(
            dir.path().join(f),
            base64::engine::general_purpose::STANDARD.decode(field(k)).unwrap(),
        )
        .unwrap();
    }
    let server = field("server:");
    let o = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-H", &format!("Accept: {accept}")])
        .arg("--cacert")
        .arg(dir.path().join("ca.pem"))
        .arg("--cert")
        .arg(dir.path().join("c.pem"))
        .arg("--key")
        .arg(dir.path().join("k.pem"))
        .arg(format!("{server}{path}"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_string(), body.to_string())
}

#[test]
fn kubectl_drives_namespaces_configmaps_and_secrets() {
    let d = Daemon::start();
    let meta = std::fs::metadata(d.kubeconfig()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let v = d.kubectl_ok(&["version", "-o", "json"]);
    assert!(v.contains("\"minor\": \"33\""), "{v}");
    let ns = d.kubectl_ok(&["get", "ns", "-o", "name"]);
    assert_eq!(
        ns.trim(),
        "namespace/default\nnamespace/kube-node-lease\nnamespace/kube-public\nnamespace/kube-system"
    );

    // From a file, then applied twice (the second time a change).
    let o = d.kubectl_in(&["create", "-f", "-"], CM);
    assert!(o.status.success(), "{}", err(&o));
    let o = d.kubectl_in(&["apply", "-f", "-"], &CM.replace("\"10\"", "\"20\""));
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(d.kubectl_ok(&["get", "cm", "settings", "-o", "jsonpath={.data.epochs}"]), "20");
    let table = d.kubectl_ok(&["get", "cm", "-l", "app=model"]);
    assert!(table.starts_with("NAME       DATA   AGE\nsettings   2      "), "{table}");
    // Every namespace holds the cluster's CA (`kube-root-ca.crt`), unlabelled.
    assert_eq!(
        d.kubectl_ok(&["get", "cm", "-l", "app!=model", "-o", "name"]).trim(),
        "configmap/kube-root-ca.crt"
    );

    // kubectl's generators send protobuf.
    d.kubectl_ok(&["create", "configmap", "gen", "--from-literal=a=b", "--from-literal=c=d"]);
    d.kubectl_ok(&["create", "secret", "generic", "pw", "--from-literal=password=hunter2"]);
    d.kubectl_ok(&["create", "namespace", "ml"]);
    let secret = d.kubectl_ok(&["get", "secret", "pw", "-o", "jsonpath={.type} {.data.password}"]);
    assert_eq!(secret, "Opaque aHVudGVyMg==");
    let described = d.kubectl_ok(&["describe", "cm", "gen"]);
    assert!(
        described.contains("Name:         gen") && described.contains("a:\n----\nb"),
        "{described}"
    );
    let res = d.kubectl_ok(&["api-resources", "--no-headers"]);
    assert!(
        res.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["configmaps", "cm", "v1", "true", "ConfigMap"]),
        "{res}"
    );
    let explained = d.kubectl_ok(&["explain", "configmap.data"]);
    assert!(explained.contains("KIND:       ConfigMap"), "{explained}");

    // Errors as the real server gives them.
    let o = d.kubectl(&["create", "cm", "Bad_Name", "--from-literal=a=b"]);
    assert!(
        err(&o).contains("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"),
        "{}",
        err(&o)
    );
    let o = d.kubectl(&["create", "cm", "gen", "--from-literal=a=b"]);
    assert!(err(&o).contains("configmaps \"gen\" already exists"), "{}", err(&o));
    let o = d.kubectl(&["get", "cm", "nope"]);
    assert!(
        err(&o).contains("Error from server (NotFound): configmaps \"nope\" not found"),
        "{}",
        err(&o)
    );
    let o = d.kubectl_in(
        &["create", "-f", "-"],
        &CM.replace("name: settings", "name: strict").replace("data:", "dta:"),
    );
    assert!(err(&o).contains("strict decoding error: unknown field \"dta\""), "{}", err(&o));
    let o = d.kubectl(&["-n", "nowhere", "create", "cm", "x", "--from-literal=a=b"]);
    assert!(err(&o).contains("namespaces \"nowhere\" not found"), "{}", err(&o));

    // Every namespace has its default ServiceAccount; more come from the generator.
    assert_eq!(
        d.kubectl_ok(&["-n", "ml", "get", "sa", "-o", "name"]).trim(),
        "serviceaccount/default"
    );
    d.kubectl_ok(&["-n", "ml", "create", "serviceaccount", "builder"]);
    // A kind of another group: leases (coordination.k8s.io/v1), discovered and applied.
    let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: leader\n  namespace: ml\nspec:\n  holderIdentity: node-1\n  leaseDurationSeconds: 15\n";
    let o = d.kubectl_in(&["apply", "-f", "-"], lease);
    assert!(o.status.success(), "{}", err(&o));
    let leases = d.kubectl_ok(&["-n", "ml", "get", "leases"]);
    assert!(leases.starts_with("NAME     HOLDER   AGE\nleader   node-1   "), "{leases}");

    // Deleting a namespace empties it.
    d.kubectl_ok(&["-n", "ml", "create", "cm", "inml", "--from-literal=x=y"]);
    d.kubectl_ok(&["delete", "ns", "ml"]);
    assert!(!d.kubectl_ok(&["get", "ns", "-o", "name"]).contains("namespace/ml"));
    d.kubectl_ok(&["create", "namespace", "ml"]);
    // Made again: only what every new namespace gets.
    assert_eq!(
        d.kubectl_ok(&["-n", "ml", "get", "cm,leases", "-o", "name"]).trim(),
        "configmap/kube-root-ca.crt"
    );
    assert_eq!(
        d.kubectl_ok(&["-n", "ml", "get", "sa", "-o", "name"]).trim(),
        "serviceaccount/default"
    );

    // The admin may do anything (RBAC for service accounts comes later).
    assert_eq!(d.kubectl_ok(&["auth", "can-i", "create", "configmaps"]).trim(), "yes");
    assert_eq!(d.kubectl_ok(&["auth", "can-i", "delete", "nodes"]).trim(), "yes");

    // Aggregated discovery, with its exact media type, for clients that ask for it.
    let (head, body) = with_admin_cert(
        &d,
        "/apis",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
    );
    assert!(
        head.to_lowercase()
            .contains("content-type: application/json;g=apidiscovery.k8s.io;v=v2;as=apigroupdiscoverylist"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let leases = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "coordination.k8s.io")
        .unwrap();
    assert_eq!(leases["versions"][0]["resources"][0]["responseKind"]["kind"], "Lease");
    let (head, _) = with_admin_cert(&d, "/apis", "application/json");
    assert!(head.to_lowercase().contains("content-type: application/json\r"), "{head}");

    // Anonymous requests are refused.
    let port = std::fs::read_to_string(d.kubeconfig()).unwrap();
    let server = port.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().to_string();
    let o = std::process::Command::new("curl")
        .args(["-sk", &format!("{server}/api/v1/namespaces")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\"code\":401"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    d.kubectl_ok(&["delete", "cm", "settings", "gen"]);
    d.kubectl_ok(&["delete", "secret", "pw"]);
}

#[test]
fn kubectl_get_watch_sees_changes_and_the_store_survives_a_restart() {
    let mut d = Daemon::start();
    d.kubectl_ok(&["create", "cm", "watched", "--from-literal=v=1"]);
    let mut w = Killed(
        d.kubectl_cmd(&[
            "get",
            "cm",
            "-w",
            "-o",
            "custom-columns=NAME:.metadata.name,V:.data.v",
            "--no-headers",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(800));
    d.kubectl_ok(&["patch", "cm", "watched", "-p", "{\"data\":{\"v\":\"2\"}}"]);
    d.kubectl_ok(&[
        "patch",
        "cm",
        "watched",
        "--type",
        "json",
        "-p",
        "[{\"op\":\"replace\",\"path\":\"/data/v\",\"value\":\"3\"}]",
    ]);
    d.kubectl_ok(&["create", "cm", "second", "--from-literal=v=9"]);
    std::thread::sleep(Duration::from_millis(800));
    let _ = w.0.kill();
    let mut out = String::new();
    w.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = w.0.wait();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| !l.starts_with("kube-root-ca.crt"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["watched", "1"],
            vec!["watched", "2"],
            vec!["watched", "3"],
            vec!["second", "9"]
        ],
        "{out}"
    );
    let rv = d.kubectl_ok(&["get", "cm", "watched", "-o", "jsonpath={.metadata.resourceVersion}"]);
    // A stale resourceVersion is a conflict.
    let stale = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n  resourceVersion: \"{}\"\ndata:\n  v: \"4\"\n",
        rv.trim().parse::<i64>().unwrap() - 1
    );
    let o = d.kubectl_in(&["replace", "-f", "-"], &stale);
    assert!(
        err(&o).contains("the object has been modified; please apply your changes to the latest version and try again"),
        "{}",
        err(&o)
    );

    d.crash_and_restart();
    assert_eq!(
        d.kubectl_ok(&["get", "cm", "watched", "-o", "jsonpath={.data.v} {.metadata.resourceVersion}"]),
        format!("3 {}", rv.trim())
    );
    d.kubectl_ok(&["delete", "cm", "watched", "second"]);
}

#[test]
fn objects_can_live_in_a_real_etcd() {
    let etcd = common::Etcd::start();
    let store = etcd.url.replace("http://", "etcd://");
    let mut d = Daemon::start_with(&["--datastore", &store]);
    d.kubectl_ok(&["create", "cm", "in-etcd", "--from-literal=k=v"]);
    let o = d.kubectl(&["create", "cm", "in-etcd", "--from-literal=k=v"]);
    assert!(err(&o).contains("configmaps \"in-etcd\" already exists"), "{}", err(&o));
    // The object is etcd's: its key is there, its resourceVersion is etcd's revision.
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode("/registry/core/configmaps/default/in-etcd");
    let got = common::curl_post(&format!("{}/v3/kv/range", etcd.url), &format!("{{\"key\":\"{key}\"}}")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    let rv = d.kubectl_ok(&["get", "cm", "in-etcd", "-o", "jsonpath={.metadata.resourceVersion}"]);
    assert_eq!(v["kvs"][0]["mod_revision"].as_str(), Some(rv.trim()), "{got}");
    d.crash_and_restart();
    assert_eq!(d.kubectl_ok(&["get", "cm", "in-etcd", "-o", "jsonpath={.data.k}"]), "v");
    d.kubectl_ok(&["delete", "cm", "in-etcd"]);
}

#[test]
fn helm_installs_upgrades_rolls_back_and_uninstalls_a_chart() {
    let helm = common::helm_binary();
    let d = Daemon::start();
    let chart = tempfile::tempdir().unwrap();
    let c = chart.path();
    std::fs::create_dir(c.join("templates")).unwrap();
    std::fs::write(c.join("Chart.yaml"), "apiVersion: v2\nname: demo\nversion: 0.1.0\n").unwrap();
    std::fs::write(c.join("values.yaml"), "greeting: hello\n").unwrap();
    std::fs::write(
        c.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    )
    .unwrap();
    std::fs::write(
        c.join("templates/secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-secret\nstringData:\n  token: s3cret\n",
    )
    .unwrap();
    let run = |args: &[&str]| -> String {
        let mut cmd = std::process::Command::new(&helm);
        cmd.env("KUBECONFIG", d.kubeconfig())
            .env("HELM_CACHE_HOME", c.join(".cache"))
            .env("HELM_CONFIG_HOME", c.join(".config"))
            .args(args);
        let o = common::run_timeout(cmd, None, 120);
        assert!(o.status.success(), "helm {args:?}: {}\n{}", common::text(&o), err(&o));
        common::text(&o)
    };
    let chart_dir = c.to_str().unwrap();
    run(&["install", "demo", chart_dir]);
    assert!(run(&["list"]).contains("deployed"));
    assert_eq!(
        d.kubectl_ok(&["get", "cm", "demo-config", "-o", "jsonpath={.data.greeting}"]),
        "hello"
    );
    run(&["upgrade", "demo", chart_dir, "--set", "greeting=bonjour"]);
    assert_eq!(
        d.kubectl_ok(&["get", "cm", "demo-config", "-o", "jsonpath={.data.greeting}"]),
        "bonjour"
    );
    run(&["rollback", "demo", "1"]);
    assert_eq!(
        d.kubectl_ok(&["get", "cm", "demo-config", "-o", "jsonpath={.data.greeting}"]),
        "hello"
    );
    let history = run(&["history", "demo"]);
    assert!(history.contains("Rollback to 1"), "{history}");
    // Releases are Secrets, as Helm keeps them.
    let releases = d.kubectl_ok(&[
        "get",
        "secrets",
        "-l",
        "owner=helm,name=demo",
        "-o",
        "jsonpath={range .items[*]}{.type} {end}",
    ]);
    assert_eq!(releases.trim(), "helm.sh/release.v1 helm.sh/release.v1 helm.sh/release.v1");
    run(&["uninstall", "demo"]);
    assert_eq!(
        d.kubectl_ok(&["get", "cm,secrets", "-o", "name"]).trim(),
        "configmap/kube-root-ca.crt"
    );
}

#[test]
fn the_python_kubernetes_client_works_unchanged() {
    let d = Daemon::start();
    let script = format!(
        r#"
from kubernetes import client, config, watch
config.load_kube_config({kc:?})
v1 = client.CoreV1Api()
print(",".join(n.metadata.name for n in v1.list_namespace().items))
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={{"from": "python"}}), data={{"k": "v"}})
v1.create_namespaced_config_map("default", cm)
print(v1.read_namespaced_config_map("py", "default").data["k"])
v1.patch_namespaced_config_map("py", "default", {{"data": {{"k": "v2"}}}})
events = [(e["type"], e["object"].data["k"]) for e in watch.Watch().stream(v1.list_namespaced_config_map, "default", label_selector="from=python", timeout_seconds=2)]
print(events)
try:
    v1.read_namespaced_config_map("nope", "default")
except client.exceptions.ApiException as e:
    print(e.status, e.reason)
v1.delete_namespaced_config_map("py", "default")
s = v1.create_namespaced_secret("default", client.V1Secret(metadata=client.V1ObjectMeta(name="pys"), string_data={{"p": "w"}}))
print(s.type, s.data["p"])
v1.delete_namespaced_secret("pys", "default")
print(len(v1.list_namespaced_config_map("default").items), len(v1.list_namespaced_secret("default").items))
"#,
        kc = d.kubeconfig().display().to_string()
    );
    let o = common::python(&script, 60);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        common::text(&o),
        "default,kube-node-lease,kube-public,kube-system\nv\n[('ADDED', 'v2')]\n404 Not Found\nOpaque dw==\n1 0"
    );
}

#[test]
fn the_node_registers_itself_and_keeps_its_lease() {
    let d = Daemon::start_with(&["--node-name", "berth-node-1"]);
    let mut nodes = String::new();
    for _ in 0..50 {
        nodes = d.kubectl_ok(&["get", "nodes", "--no-headers"]);
        if !nodes.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cols: Vec<&str> = nodes.split_whitespace().collect();
    assert_eq!((cols[0], cols[1], cols[2]), ("berth-node-1", "Ready", "control-plane"), "{nodes}");
    assert!(cols[4].starts_with("v1.33.0+berth"), "{nodes}");
    let wide = d.kubectl_ok(&["get", "node", "berth-node-1", "-o", "wide", "--no-headers"]);
    assert!(
        wide.contains("berth://") && wide.contains(&std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim().to_string()),
        "{wide}"
    );
    let info = d.kubectl_ok(&[
        "get",
        "node",
        "berth-node-1",
        "-o",
        "jsonpath={.status.capacity.pods} {.status.nodeInfo.operatingSystem} {.metadata.labels.kubernetes\\.io/hostname}",
    ]);
    assert_eq!(info, "110 linux berth-node-1");
    let cpus = d.kubectl_ok(&["get", "node", "berth-node-1", "-o", "jsonpath={.status.allocatable.cpu}"]);
    assert_eq!(cpus.parse::<usize>().unwrap(), std::thread::available_parallelism().unwrap().get());
    let lease = d.kubectl_ok(&[
        "-n",
        "kube-node-lease",
        "get",
        "lease",
        "berth-node-1",
        "-o",
        "jsonpath={.spec.holderIdentity} {.spec.leaseDurationSeconds}",
    ]);
    assert_eq!(lease, "berth-node-1 40");
    d.kubectl_ok(&["label", "node", "berth-node-1", "gpu=true"]);
    assert_eq!(
        d.kubectl_ok(&["get", "nodes", "-l", "gpu=true", "-o", "name"]).trim(),
        "node/berth-node-1"
    );
}

#[test]
fn finalizers_hold_a_deletion_and_owners_take_their_dependents() {
    let d = Daemon::start();
    // A finalizer holds the object, marked, until it is removed.
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\ndata: {a: b}\n";
    let o = d.kubectl_in(&["create", "-f", "-"], held);
    assert!(o.status.success(), "{}", err(&o));
    d.kubectl_ok(&["delete", "cm", "held", "--wait=false"]);
    let marked = d.kubectl_ok(&["get", "cm", "held", "-o", "jsonpath={.metadata.deletionTimestamp}"]);
    assert!(!marked.is_empty(), "marked for deletion");
    let o = d.kubectl(&[
        "patch",
        "cm",
        "held",
        "--type",
        "json",
        "-p",
        "[{\"op\":\"add\",\"path\":\"/metadata/finalizers/-\",\"value\":\"example.com/more\"}]",
    ]);
    assert!(
        err(&o).contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        err(&o)
    );
    d.kubectl_ok(&[
        "patch",
        "cm",
        "held",
        "--type",
        "merge",
        "-p",
        "{\"metadata\":{\"finalizers\":null}}",
    ]);
    assert!(err(&d.kubectl(&["get", "cm", "held"])).contains("not found"));

    // Owners and dependents, for each propagation policy.
    let make = |name: &str, owner: Option<(&str, &str)>| {
        let refs = match owner {
            Some((n, uid)) => format!("  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {n}\n    uid: {uid}\n"),
            None => String::new(),
        };
        let o = d.kubectl_in(
            &["create", "-f", "-"],
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{refs}data: {{a: b}}\n"),
        );
        assert!(o.status.success(), "{}", err(&o));
        d.kubectl_ok(&["get", "cm", name, "-o", "jsonpath={.metadata.uid}"])
    };
    let exists = |name: &str| d.kubectl(&["get", "cm", name]).status.success();
    for (cascade, child_stays) in [("background", false), ("foreground", false), ("orphan", true)] {
        let owner = format!("owner-{cascade}");
        let uid = make(&owner, None);
        let child = format!("child-{cascade}");
        let child_uid = make(&child, Some((&owner, &uid)));
        make(&format!("grandchild-{cascade}"), Some((&child, &child_uid)));
        d.kubectl_ok(&["delete", "cm", &owner, &format!("--cascade={cascade}")]);
        let mut gone = false;
        for _ in 0..50 {
            gone = !exists(&child) && !exists(&format!("grandchild-{cascade}"));
            if gone || child_stays {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if child_stays {
            assert!(exists(&child), "{cascade}: the dependent stays");
            let refs = d.kubectl_ok(&["get", "cm", &child, "-o", "jsonpath={.metadata.ownerReferences}"]);
            assert_eq!(refs.trim(), "", "{cascade}: its reference to the owner is gone");
            assert!(exists(&format!("grandchild-{cascade}")));
        } else {
            assert!(gone, "{cascade}: the dependents went with their owner");
        }
    }
}

/// Poll `kubectl get pod NAME -o jsonpath=…` until it prints `want` (10 s).
fn wait_for(d: &Daemon, pod: &str, path: &str, want: &str) -> String {
    wait_for_object(d, &format!("pod/{pod}"), path, want)
}

/// Poll `kubectl get WHAT -o jsonpath=PATH` until it prints `want` (10 s at most).
fn wait_for_object(d: &Daemon, what: &str, path: &str, want: &str) -> String {
    let mut got = String::new();
    for _ in 0..100 {
        got = d.kubectl_ok(&["get", what, "-o", &format!("jsonpath={path}")]);
        if got == want {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} {path}: {got:?}, expected {want:?}");
}

#[test]
fn a_pod_runs_in_its_sandbox_restarts_logs_and_goes() {
    let d = Daemon::start();
    d.busybox("bb:1");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: bb:1\n    command: [sh, -c, 'echo hello from $(POD) at $MYIP; exec sleep 1000']\n    env:\n    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    - {name: MYIP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n",
    )
    .unwrap();
    d.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    wait_for(&d, "web", "{.status.phase}", "Running");
    let ip = d.kubectl_ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    let net = d.pod_cidr().unwrap();
    assert!(ip.starts_with(net.trim_end_matches("0/24")), "{ip} in {net}");
    let row = d.kubectl_ok(&["get", "pod", "web", "--no-headers"]);
    assert!(row.split_whitespace().take(4).eq(["web", "1/1", "Running", "0"]), "{row}");
    let mut logs = String::new();
    for _ in 0..50 {
        logs = d.kubectl_ok(&["logs", "web"]);
        if !logs.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(logs.trim(), format!("hello from web at {ip}"));
    // The pod's containers are engine containers, the sandbox among them.
    let names = d.docker_ok(&["ps", "--format", "{{.Names}}"]);
    assert!(names.lines().any(|n| n.starts_with("k8s_POD_web_default_")), "{names}");
    assert!(names.lines().any(|n| n.starts_with("k8s_c_web_default_")), "{names}");
    // A container that fails is restarted, and its pod says so.
    d.kubectl_ok(&[
        "run",
        "crash",
        "--image=bb:1",
        "--restart=OnFailure",
        "--command",
        "--",
        "sh",
        "-c",
        "echo boom; exit 3",
    ]);
    let mut restarts = String::new();
    for _ in 0..150 {
        restarts = d.kubectl_ok(&["get", "pod", "crash", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]);
        if restarts.parse::<i64>().unwrap_or(0) >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(restarts.parse::<i64>().unwrap_or(0) >= 1, "{restarts}");
    let last = d.kubectl_ok(&[
        "get",
        "pod",
        "crash",
        "-o",
        "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}",
    ]);
    assert_eq!(last, "3");
    assert_eq!(d.kubectl_ok(&["logs", "crash", "--previous"]).trim(), "boom");
    // `kubectl run -i --rm` waits for its pod through a typed (protobuf) watch, then attaches.
    let o = d.kubectl(&[
        "run",
        "once",
        "-i",
        "--rm",
        "--restart=Never",
        "--image=bb:1",
        "-v=8",
        "--",
        "echo",
        "once",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("Content-Type: application/vnd.kubernetes.protobuf;stream=watch"),
        "{}",
        err(&o)
    );
    assert_eq!(common::text(&o).lines().next(), Some("once"), "{}", err(&o));
    // Deleted: its containers stop and go, then the pod.
    d.kubectl_ok(&["delete", "pod", "web", "crash", "--grace-period=1"]);
    let left = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!left.contains("k8s_"), "{left}");
    assert_eq!(d.kubectl_ok(&["get", "pods", "--no-headers"]), "");
}

/// Start `kubectl port-forward pod/<pod> :<port>` (with `env`); the child and its local port.
fn port_forward(d: &Daemon, pod: &str, port: u16, env: &[(&str, &str)]) -> (Killed, u16, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut cmd = d.kubectl_cmd(&["port-forward", &format!("pod/{pod}"), &format!(":{port}")]);
    cmd.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Killed(cmd.spawn().unwrap());
    let out = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let errs = child.0.stderr.take().unwrap();
    let etx = tx.clone();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(errs).lines().map_while(Result::ok) {
            let _ = etx.send(l);
        }
    });
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            // "Forwarding from 127.0.0.1:40123 -> 8080"
            if let Some(p) = l.strip_prefix("Forwarding from 127.0.0.1:") {
                let local = p.split_whitespace().next().unwrap().parse().unwrap();
                return (child, local, rx);
            }
        }
    }
    panic!("kubectl port-forward did not start");
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn exec_attach_and_port_forward_reach_into_pods() {
    let d = Daemon::start();
    d.busybox("bb:1");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pods.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: bb:1\n    command: [sh, -c, 'echo hi > /tmp/index.html; exec httpd -f -p 127.0.0.1:8080 -h /tmp']\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: att}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: bb:1\n    stdin: true\n    command: [sh, -c, 'while read l; do echo got $l; done']\n",
    )
    .unwrap();
    d.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    wait_for(&d, "web", "{.status.phase}", "Running");
    wait_for(&d, "att", "{.status.phase}", "Running");
    // kubectl's WebSocket (v5.channel.k8s.io) and its SPDY fallback, the same behaviour.
    for env in [
        [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "true")],
        [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")],
    ] {
        let mut c = d.kubectl_cmd(&["exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
        c.envs(env);
        let o = common::run_timeout(c, None, 30);
        assert_eq!(o.status.code(), Some(3), "{env:?}: {}", err(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n", "{env:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("err\ncommand terminated with exit code 3"),
            "{env:?}: {}",
            err(&o)
        );
        let mut c = d.kubectl_cmd(&["exec", "-i", "web", "--", "wc", "-c"]);
        c.envs(env);
        let o = common::run_timeout(c, Some(&vec![b'x'; 200_000]), 30);
        assert!(o.status.success(), "{env:?}: {}", err(&o));
        assert_eq!(common::text(&o), "200000", "{env:?}");
        // With a terminal: the process starts at the client's size.
        let o = std::process::Command::new("script")
            .args(["-qec", &format!(
                "stty cols 123 rows 45; KUBECTL_REMOTE_COMMAND_WEBSOCKETS={} kubectl --kubeconfig {} exec -it web -- sh -c 'tty; stty size; exit 4'",
                env[0].1,
                d.kubeconfig().display()
            ), "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("/dev/pts/") && out.contains("45 123"), "{env:?}: {out}");
        assert_eq!(o.status.code(), Some(4), "{env:?}: {out}");
    }
    let o = d.kubectl(&["exec", "web", "-c", "nope", "--", "true"]);
    assert!(err(&o).contains("container nope is not valid for pod web"), "{}", err(&o));
    let o = d.kubectl(&["exec", "web", "--", "no-such-binary"]);
    assert!(!o.status.success() && err(&o).contains("no-such-binary"), "{}", err(&o));
    // Port-forward reaches a listener on the pod's own loopback: tunnelled in a WebSocket
    // (kubectl's default) and over SPDY.
    for env in [
        ("KUBECTL_PORT_FORWARD_WEBSOCKETS", "true"),
        ("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false"),
    ] {
        let (_pf, local, _) = port_forward(&d, "web", 8080, &[env]);
        for _ in 0..2 {
            let r = http_get(local, "/index.html");
            assert!(r.starts_with("HTTP/1.") && r.ends_with("\nhi\n"), "{env:?}: {r}");
        }
    }
    let (_pf, local, lines) = port_forward(&d, "web", 9999, &[]);
    let _ = std::net::TcpStream::connect(("127.0.0.1", local)).map(|mut s| s.read(&mut [0u8; 16]));
    let t0 = std::time::Instant::now();
    let mut seen = Vec::new();
    while t0.elapsed() < Duration::from_secs(15) && !seen.iter().any(|l: &String| l.contains("error forwarding port 9999")) {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    assert!(seen.iter().any(|l| l.contains("error forwarding port 9999")), "{seen:?}");
    // Attach: input to the container's own process, its output back.
    let mut c = d.kubectl_cmd(&["attach", "-i", "att"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = Killed(c.spawn().unwrap());
    {
        use std::io::Write;
        let mut stdin = child.0.stdin.take().unwrap();
        stdin.write_all(b"one\n").unwrap();
        stdin.flush().unwrap();
        let mut out = child.0.stdout.take().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        let t0 = std::time::Instant::now();
        while !String::from_utf8_lossy(&got).contains("got one") && t0.elapsed() < Duration::from_secs(15) {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        assert!(
            String::from_utf8_lossy(&got).contains("got one"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    drop(child);
    // The Python client: exec (v4.channel.k8s.io) with its exit code, and port-forward over
    // its WebSocket channels.
    let script = format!(
        r#"
from kubernetes import client, config
from kubernetes.stream import stream, portforward
config.load_kube_config({kc:?})
v1 = client.CoreV1Api()
print(repr(stream(v1.connect_get_namespaced_pod_exec, "web", "default", command=["sh", "-c", "echo py; echo e >&2"], stderr=True, stdin=False, stdout=True, tty=False)))
r = stream(v1.connect_get_namespaced_pod_exec, "web", "default", command=["sh", "-c", "exit 7"], stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
r.run_forever(timeout=10)
print(r.returncode)
pf = portforward(v1.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
s = pf.socket(8080)
s.setblocking(True)
s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
data = b""
while True:
    d = s.recv(1024)
    if not d:
        break
    data += d
print(data.split(b"\r\n\r\n")[-1])
"#,
        kc = d.kubeconfig().display().to_string()
    );
    let o = common::python(&script, 60);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(common::text(&o), "'py\\ne\\n'\n7\nb'hi\\n'");
    // Drained: kubectl evicts the pods (policy/v1 Eviction), then the node is unschedulable.
    let node = d.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let o = d.kubectl(&["drain", &node, "--force", "--grace-period=1", "--timeout=60s"]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("pod/web evicted"),
        "{}",
        err(&o)
    );
    assert_eq!(d.kubectl_ok(&["get", "pods", "-o", "name"]), "");
    assert_eq!(
        d.kubectl_ok(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"]),
        "true"
    );
    d.kubectl_ok(&["uncordon", &node]);
}

#[test]
fn service_accounts_get_tokens_and_rbac_decides_what_they_may_do() {
    let d = Daemon::start();
    d.busybox("bb:1");
    let server = d.kubectl_ok(&["config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"]);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(
        &ca,
        d.kubectl_ok(&["get", "configmap", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}"]),
    )
    .unwrap();
    // kubectl as a bearer of `token`, with no client certificate.
    let as_token = |token: &str, args: &[&str]| {
        let mut c = std::process::Command::new("kubectl");
        c.args(["--kubeconfig=/dev/null", "--server", &server, "--certificate-authority"])
            .arg(&ca)
            .args(["--token", token])
            .args(args);
        common::run_timeout(c, None, 30)
    };
    let roles = d.kubectl_ok(&["get", "clusterroles", "-o", "name"]);
    for r in ["cluster-admin", "admin", "edit", "view", "system:discovery"] {
        assert!(
            roles.lines().any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{r}")),
            "{roles}"
        );
    }
    let token = d.kubectl_ok(&["create", "token", "default"]);
    let o = as_token(&token, &["get", "pods"]);
    assert!(
        err(&o).contains("pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        "{}",
        err(&o)
    );
    let o = as_token("not-a-token", &["get", "pods"]);
    assert!(err(&o).contains("Unauthorized"), "{}", err(&o));
    // A user of a client certificate the cluster's CA signs (`berth kubeconfig --user`): its
    // subject's CN is the user, its O the group, as kube-apiserver reads it.
    let admin = d.kubectl_ok(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert_eq!(admin, r#"kubernetes-admin ["system:masters","system:authenticated"]"#);
    let o = common::run_timeout(
        {
            let mut c = std::process::Command::new(common::BERTH);
            c.arg("kubeconfig")
                .arg("--root")
                .arg(&d.root)
                .args(["--user", "alice", "--group", "dev"]);
            c
        },
        None,
        30,
    );
    assert!(o.status.success(), "{}", err(&o));
    let alice_kc = dir.path().join("alice");
    std::fs::write(&alice_kc, &o.stdout).unwrap();
    let as_alice = |args: &[&str]| {
        let mut c = std::process::Command::new("kubectl");
        c.arg("--kubeconfig").arg(&alice_kc).args(args);
        common::run_timeout(c, None, 30)
    };
    let o = as_alice(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert_eq!(common::text(&o), r#"alice ["dev","system:authenticated"]"#, "{}", err(&o));
    let o = as_alice(&["get", "configmaps"]);
    assert!(
        err(&o).contains("configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\""),
        "{}",
        err(&o)
    );
    d.kubectl_ok(&["create", "rolebinding", "dev-view", "--clusterrole=view", "--group=dev"]);
    let o = as_alice(&["get", "configmaps", "-o", "name"]);
    assert!(common::text(&o).contains("configmap/kube-root-ca.crt"), "{}", err(&o));
    let o = as_alice(&["create", "configmap", "x"]);
    assert!(
        err(&o).contains("User \"alice\" cannot create resource \"configmaps\""),
        "{}",
        err(&o)
    );
    d.kubectl_ok(&["delete", "rolebinding", "dev-view"]);

    let can = |args: &[&str]| common::text(&d.kubectl(&[&["auth", "can-i"], args].concat()));
    let sa = "--as=system:serviceaccount:default:default";
    assert_eq!(can(&["list", "pods", sa]), "no");
    // Bound to `view` in its namespace: it reads pods there, and nothing more.
    d.kubectl_ok(&[
        "create",
        "rolebinding",
        "sa-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    assert_eq!(can(&["list", "pods", sa]), "yes");
    assert_eq!(can(&["delete", "pods", sa]), "no");
    assert_eq!(can(&["list", "secrets", sa]), "no");
    assert_eq!(can(&["list", "pods", sa, "-n", "kube-system"]), "no");
    let o = as_token(&token, &["get", "pods"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = as_token(&token, &["get", "secrets"]);
    assert!(err(&o).contains("secrets is forbidden"), "{}", err(&o));
    // Roles by name and paths outside the API, for a user by impersonation.
    d.kubectl_ok(&[
        "create",
        "role",
        "one-secret",
        "--verb=get",
        "--resource=secrets",
        "--resource-name=s1",
    ]);
    d.kubectl_ok(&["create", "rolebinding", "alice-s1", "--role=one-secret", "--user=alice"]);
    d.kubectl_ok(&["create", "clusterrole", "metrics", "--verb=get", "--non-resource-url=/metrics"]);
    d.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "alice-metrics",
        "--clusterrole=metrics",
        "--user=alice",
    ]);
    assert_eq!(can(&["get", "secret/s1", "--as=alice"]), "yes");
    assert_eq!(can(&["get", "secret/s2", "--as=alice"]), "no");
    assert_eq!(can(&["get", "/metrics", "--as=alice"]), "yes");
    assert_eq!(can(&["get", "/logs", "--as=alice"]), "no");
    // No escalation: a namespace admin grants what it holds, and no more.
    d.kubectl_ok(&["create", "sa", "boss"]);
    d.kubectl_ok(&[
        "create",
        "rolebinding",
        "boss-admin",
        "--clusterrole=admin",
        "--serviceaccount=default:boss",
    ]);
    let boss = "--as=system:serviceaccount:default:boss";
    d.kubectl_ok(&["create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob", boss]);
    d.kubectl_ok(&["create", "role", "pod-reader", "--verb=get", "--resource=pods", boss]);
    let o = d.kubectl(&["create", "rolebinding", "esc", "--clusterrole=cluster-admin", "--user=bob", boss]);
    assert!(
        err(&o).contains("is attempting to grant RBAC permissions not currently held"),
        "{}",
        err(&o)
    );
    let o = d.kubectl(&["create", "role", "all", "--verb=*", "--resource=*", boss]);
    assert!(
        err(&o).contains("is attempting to grant RBAC permissions not currently held"),
        "{}",
        err(&o)
    );
    assert_eq!(can(&["list", "pods", "--as=bob"]), "yes");
    let o = d.kubectl_in(
        &["create", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: bad}\nrules:\n- apiGroups: [\"\"]\n  resources: [pods]\n",
    );
    assert!(err(&o).contains("rules[0].verbs: Required value"), "{}", err(&o));
    // A pod gets its service account's token, the CA and its namespace; the token lives as
    // long as the pod.
    d.kubectl_ok(&["run", "tok", "--image=bb:1", "--command", "--", "sleep", "1000"]);
    wait_for(&d, "tok", "{.status.phase}", "Running");
    let dir_ls = d.kubectl_ok(&["exec", "tok", "--", "ls", "/var/run/secrets/kubernetes.io/serviceaccount"]);
    assert_eq!(dir_ls.split_whitespace().collect::<Vec<_>>(), ["ca.crt", "namespace", "token"]);
    assert_eq!(
        d.kubectl_ok(&[
            "exec",
            "tok",
            "--",
            "cat",
            "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        ]),
        "default"
    );
    let pod_token = d.kubectl_ok(&["exec", "tok", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]);
    let o = as_token(&pod_token, &["get", "pod", "tok", "-o", "name"]);
    assert_eq!(common::text(&o), "pod/tok", "{}", err(&o));
    d.kubectl_ok(&["delete", "pod", "tok", "--grace-period=1"]);
    let o = as_token(&pod_token, &["get", "pods"]);
    assert!(err(&o).contains("Unauthorized"), "{}", err(&o));
    // Automounting off: no token; an account that does not exist: no pod.
    d.kubectl_ok(&[
        "run",
        "notok",
        "--image=bb:1",
        "--overrides={\"spec\":{\"automountServiceAccountToken\":false}}",
        "--command",
        "--",
        "sleep",
        "1000",
    ]);
    assert_eq!(d.kubectl_ok(&["get", "pod", "notok", "-o", "jsonpath={.spec.volumes}"]), "");
    let o = d.kubectl(&[
        "run",
        "ghost",
        "--image=bb:1",
        "--overrides={\"spec\":{\"serviceAccountName\":\"ghost\"}}",
    ]);
    assert!(
        err(&o).contains("error looking up service account default/ghost: serviceaccount \"ghost\" not found"),
        "{}",
        err(&o)
    );
    d.kubectl_ok(&["delete", "pod", "notok", "--grace-period=1"]);
}

/// The managedFields of an object: (manager, operation, fieldsV1) each.
fn managed_fields(d: &Daemon, what: &str) -> Vec<(String, String, serde_json::Value)> {
    let out = d.kubectl_ok(&["get", what, "-o", "json", "--show-managed-fields"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or("").to_string(),
                e["operation"].as_str().unwrap_or("").to_string(),
                e["fieldsV1"].clone(),
            )
        })
        .collect()
}

#[test]
fn server_side_apply_tracks_owners_and_kubectl_apply_merges_lists() {
    use serde_json::json;
    let d = Daemon::start();
    // Created by kubectl create: managedFields name it, owning what it wrote.
    d.kubectl_ok(&["create", "configmap", "ssa", "--from-literal=a=1"]);
    assert_eq!(
        managed_fields(&d, "cm/ssa"),
        vec![(
            "kubectl-create".to_string(),
            "Update".to_string(),
            json!({"f:data": {".": {}, "f:a": {}}})
        )]
    );
    // An apply that would change a field kubectl-create owns is a conflict, as the real
    // server words it, and changes nothing.
    let cfg = |a: &str, rest: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"{a}\"\n{rest}");
    let o = d.kubectl_in(&["apply", "--server-side", "-f", "-"], &cfg("2", "  b: \"x\"\n"));
    assert!(!o.status.success());
    assert!(
        err(&o).contains("Apply failed with 1 conflict: conflict with \"kubectl-create\" using v1") && err(&o).contains(": .data.a"),
        "{}",
        err(&o)
    );
    assert_eq!(d.kubectl_ok(&["get", "cm", "ssa", "-o", "jsonpath={.data}"]), r#"{"a":"1"}"#);
    // Forced, the applier takes the field over.
    let o = d.kubectl_in(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &cfg("2", "  b: \"x\"\n"),
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("configmap/ssa serverside-applied"));
    let owners = managed_fields(&d, "cm/ssa");
    assert_eq!(
        owners[0],
        (
            "kubectl".to_string(),
            "Apply".to_string(),
            json!({"f:data": {"f:a": {}, "f:b": {}}})
        )
    );
    assert_eq!(owners[1].0, "kubectl-create");
    assert!(owners[1].2.pointer("/f:data/f:a").is_none(), "{owners:?}");
    // A second manager applies c; the first applies without b: b goes, c (not its) stays.
    let o = d.kubectl_in(
        &["apply", "--server-side", "--field-manager=tuner", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  c: \"3\"\n",
    );
    assert!(o.status.success(), "{}", err(&o));
    let o = d.kubectl_in(&["apply", "--server-side", "-f", "-"], &cfg("2", ""));
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        d.kubectl_ok(&["get", "cm", "ssa", "-o", "jsonpath={.data}"]),
        r#"{"a":"2","c":"3"}"#
    );
    // Sharing a field at the same value is no conflict; an apply to a missing object creates it.
    let o = d.kubectl_in(
        &["apply", "--server-side", "--field-manager=tuner", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"2\"\n  c: \"3\"\n",
    );
    assert!(o.status.success(), "{}", err(&o));
    let o = d.kubectl_in(
        &["apply", "--server-side", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fresh\n  labels: {app: m}\ndata:\n  k: v\n",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        managed_fields(&d, "cm/fresh"),
        vec![(
            "kubectl".to_string(),
            "Apply".to_string(),
            json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
        )]
    );

    // kubectl's client-side apply of a pod sends a strategic merge patch holding
    // $setElementOrder for its containers: the list merges by name, in the order given.
    let pod = |image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: two\nspec:\n  nodeSelector: {{berth.test/none: \"x\"}}\n  containers:\n  - name: first\n    image: busybox\n    command: [sleep, \"1000\"]\n  - name: second\n    image: {image}\n    command: [sleep, \"1000\"]\n"
        )
    };
    let o = d.kubectl_in(&["apply", "-f", "-"], &pod("busybox"));
    assert!(o.status.success(), "{}", err(&o));
    let o = d.kubectl_in(&["apply", "-f", "-"], &pod("busybox:2"));
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        d.kubectl_ok(&[
            "get",
            "pod",
            "two",
            "-o",
            "jsonpath={.spec.containers[*].name} {.spec.containers[*].image}"
        ]),
        "first second busybox busybox:2"
    );
    let owners = managed_fields(&d, "pod/two");
    assert!(
        owners.iter().any(|(m, op, f)| m == "kubectl-client-side-apply"
            && op == "Update"
            && f.pointer("/f:spec/f:containers/k:{\"name\":\"second\"}/f:image").is_some()),
        "{owners:?}"
    );
    d.kubectl_ok(&["delete", "pod", "two", "--wait=false"]);
}

#[test]
fn the_workload_network_and_storage_kinds_are_served_as_kubernetes_serves_them() {
    let d = Daemon::start();
    // The kinds as the API keeps them: the node is cordoned, so that the controllers' pods stay
    // pending (and no image is pulled).
    let node = d.kubectl_ok(&["get", "nodes", "-o", "name"]);
    d.kubectl_ok(&["cordon", node.trim()]);
    // kubectl's generators send protobuf for all of these.
    d.kubectl_ok(&["create", "deployment", "web", "--image=busybox", "--replicas=2", "--port=80"]);
    let wide = d.kubectl_ok(&["get", "deploy", "web", "-o", "wide", "--no-headers"]);
    let cells: Vec<&str> = wide.split_whitespace().collect();
    assert_eq!(
        [cells[0], cells[1], cells[5], cells[6], cells[7]],
        ["web", "0/2", "busybox", "busybox", "app=web"],
        "{wide}"
    );
    let get = |what: &str, path: &str| d.kubectl_ok(&["get", what, "-o", &format!("jsonpath={path}")]);
    assert_eq!(
        get("deploy/web", "{.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.template.spec.restartPolicy} {.metadata.generation}"),
        "25% 10 Always 1"
    );
    d.kubectl_ok(&["scale", "deploy", "web", "--replicas=4"]);
    assert_eq!(get("deploy/web", "{.spec.replicas} {.metadata.generation}"), "4 2");
    let scale = d.kubectl_ok(&["get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/scale"]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(
        (
            scale["kind"].as_str(),
            scale["spec"]["replicas"].as_i64(),
            scale["status"]["selector"].as_str()
        ),
        (Some("Scale"), Some(4), Some("app=web"))
    );
    // A client that prefers protobuf gets protobuf (objects, lists, errors); others JSON.
    for (path, kind) in [
        ("/apis/apps/v1/namespaces/default/deployments/web", "Deployment"),
        ("/apis/apps/v1/namespaces/default/deployments", "DeploymentList"),
        ("/apis/apps/v1/namespaces/default/deployments/nope", "Status"),
    ] {
        let (head, body) = with_admin_cert(&d, path, "application/vnd.kubernetes.protobuf, application/json");
        assert!(
            head.to_lowercase().contains("content-type: application/vnd.kubernetes.protobuf"),
            "{head}"
        );
        assert!(body.starts_with("k8s\0") && body.contains(kind), "{path}: {body:?}");
    }
    let (_, body) = with_admin_cert(&d, "/apis/apps/v1/namespaces/default/deployments/web", "application/json");
    assert!(body.starts_with('{'), "{body}");
    let explained = d.kubectl_ok(&["explain", "deployment.spec.strategy.rollingUpdate.maxSurge"]);
    assert!(
        explained.contains("The maximum number of pods that can be scheduled above the desired number"),
        "{explained}"
    );

    d.kubectl_ok(&["create", "job", "train", "--image=busybox", "--", "echo", "hi"]);
    let uid = get("job/train", "{.metadata.uid}");
    assert_eq!(
        get("job/train", "{.spec.selector.matchLabels.batch\\.kubernetes\\.io/controller-uid} {.spec.template.metadata.labels.job-name} {.spec.backoffLimit} {.spec.template.spec.restartPolicy}"),
        format!("{uid} train 6 Never")
    );
    let o = d.kubectl(&[
        "create",
        "cronjob",
        "nightly",
        "--image=busybox",
        "--schedule=0 25 * * *",
        "--",
        "true",
    ]);
    assert!(
        err(&o).contains(
            "CronJob.batch \"nightly\" is invalid: spec.schedule: Invalid value: \"0 25 * * *\": end of range (25) above maximum (23)"
        ),
        "{}",
        err(&o)
    );
    d.kubectl_ok(&[
        "create",
        "cronjob",
        "nightly",
        "--image=busybox",
        "--schedule=0 3 * * *",
        "--",
        "true",
    ]);
    let o = d.kubectl(&["create", "deployment", "neg", "--image=busybox", "--replicas=-1"]);
    assert!(
        err(&o).contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{}",
        err(&o)
    );
    let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mismatch}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: busybox}]}\n";
    let o = d.kubectl_in(&["apply", "-f", "-"], bad);
    assert!(err(&o).contains("`selector` does not match template `labels`"), "{}", err(&o));

    // Services get a cluster IP from the daemon's --service-cidr (10.43.0.0/16 by default),
    // node ports from its --service-node-port-range (30000-32767).
    d.kubectl_ok(&["expose", "deploy", "web", "--port=80", "--target-port=8080"]);
    d.kubectl_ok(&["create", "service", "nodeport", "np", "--tcp=80:8080"]);
    let ip = get("svc/web", "{.spec.clusterIP}");
    let net = d.flag("--service-cidr").unwrap();
    let prefix = net.trim_end_matches("0/24");
    assert!(
        ip.starts_with(prefix) && ip != format!("{prefix}1") && ip != format!("{prefix}10"),
        "{ip} in {net}"
    );
    let o = d.kubectl(&["create", "service", "clusterip", "out", "--tcp=80", "--clusterip=10.0.0.1"]);
    assert!(
        err(&o).contains(&format!("provided IP is not in the valid range. The range of valid IPs is {net}")),
        "{}",
        err(&o)
    );
    assert_eq!(
        get("svc/web", "{.spec.ports[0].targetPort} {.spec.type} {.spec.selector.app}"),
        "8080 ClusterIP web"
    );
    let np: i64 = get("svc/np", "{.spec.ports[0].nodePort}").parse().unwrap();
    let range = d.flag("--service-node-port-range").unwrap();
    let (lo, hi) = range.split_once('-').unwrap();
    assert!((lo.parse().unwrap()..=hi.parse().unwrap()).contains(&np), "{np} in {range}");
    let svcs = d.kubectl_ok(&["get", "svc", "np", "--no-headers"]);
    assert!(svcs.contains(&format!("80:{np}/TCP")), "{svcs}");

    d.kubectl_ok(&["autoscale", "deploy", "web", "--min=2", "--max=5", "--cpu-percent=60"]);
    let hpa = d.kubectl_ok(&["get", "hpa", "web", "--no-headers"]);
    let hpa: Vec<&str> = hpa.split_whitespace().collect();
    assert_eq!(hpa[..6], ["web", "Deployment/web", "cpu:", "<unknown>/60%", "2", "5"], "{hpa:?}");
    // The same object in autoscaling/v1, and a v1 one seen in v2.
    assert_eq!(
        get(
            "horizontalpodautoscalers.v1.autoscaling/web",
            "{.apiVersion} {.spec.targetCPUUtilizationPercentage}"
        ),
        "autoscaling/v1 60"
    );
    let v1 = "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: old}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 3\n  targetCPUUtilizationPercentage: 50\n";
    let o = d.kubectl_in(&["apply", "-f", "-"], v1);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        get(
            "horizontalpodautoscalers.v2.autoscaling/old",
            "{.spec.minReplicas} {.spec.metrics[0].resource.target.averageUtilization}"
        ),
        "1 50"
    );
    d.kubectl_ok(&["create", "pdb", "webpdb", "--selector=app=web", "--min-available=1"]);
    d.kubectl_ok(&["create", "ingress", "web", "--rule=web.localhost/*=web:80"]);
    assert_eq!(get("ingress/web", "{.spec.rules[0].http.paths[0].pathType}"), "Prefix");
    d.kubectl_ok(&["create", "priorityclass", "high", "--value=1000"]);
    // A quota in a namespace of its own (the controllers' pending pods count in default).
    d.kubectl_ok(&["create", "namespace", "quota-test"]);
    d.kubectl_ok(&["-n", "quota-test", "create", "quota", "q", "--hard=pods=10"]);
    let mut quota = String::new();
    for _ in 0..100 {
        quota = d.kubectl_ok(&["-n", "quota-test", "get", "quota", "q", "--no-headers"]);
        if quota.contains("pods: 0/10") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(quota.contains("pods: 0/10"), "{quota}");

    // Storage from a manifest, applied client-side then server-side (kubectl migrates its
    // managers on the way).
    let storage = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: local-path\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: berth.dev/local-path\n---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv1}\nspec:\n  capacity: {storage: 2Gi}\n  accessModes: [ReadWriteOnce]\n  hostPath: {path: /tmp/berth-test-pv1}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n";
    let o = d.kubectl_in(&["apply", "-f", "-"], storage);
    assert!(o.status.success(), "{}", err(&o));
    let o = d.kubectl_in(&["apply", "--server-side", "-f", "-"], storage);
    assert!(o.status.success() && !err(&o).contains("Warning"), "{}", err(&o));
    // The binder: a volume nobody claims is Available; the claim, given the default class,
    // gets a volume of its own from the local-path provisioner.
    wait_for_object(
        &d,
        "pv/pv1",
        "{.spec.capacity.storage} {.spec.persistentVolumeReclaimPolicy} {.status.phase}",
        "2Gi Retain Available",
    );
    assert!(d.kubectl_ok(&["get", "sc"]).contains("local-path (default)"));
    wait_for_object(
        &d,
        "pvc/data",
        "{.status.phase} {.spec.volumeMode} {.spec.storageClassName}",
        "Bound Filesystem local-path",
    );

    // A StatefulSet applied, then changed: its env list merges by name.
    let sts = |env: &str| {
        format!("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:\n  serviceName: db\n  selector: {{matchLabels: {{app: db}}}}\n  template:\n    metadata: {{labels: {{app: db}}}}\n    spec:\n      containers:\n      - name: db\n        image: busybox\n        env: [{env}]\n")
    };
    let o = d.kubectl_in(&["apply", "-f", "-"], &sts("{name: A, value: \"1\"}"));
    assert!(o.status.success(), "{}", err(&o));
    let o = d.kubectl_in(&["apply", "-f", "-"], &sts("{name: A, value: \"2\"}, {name: B, value: \"3\"}"));
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(get("sts/db", "{.spec.template.spec.containers[0].env[*].value}"), "2 3");
    assert_eq!(
        get("sts/db", "{.spec.podManagementPolicy} {.spec.updateStrategy.type}"),
        "OrderedReady RollingUpdate"
    );

    // Every group is discovered.
    let res = d.kubectl_ok(&["api-resources", "-o", "name"]);
    for r in [
        "deployments.apps",
        "statefulsets.apps",
        "jobs.batch",
        "cronjobs.batch",
        "horizontalpodautoscalers.autoscaling",
        "ingresses.networking.k8s.io",
        "poddisruptionbudgets.policy",
        "storageclasses.storage.k8s.io",
        "endpointslices.discovery.k8s.io",
        "priorityclasses.scheduling.k8s.io",
        "services",
        "endpoints",
        "persistentvolumeclaims",
    ] {
        assert!(res.lines().any(|l| l == r), "{r} missing from {res}");
    }
}

/// A gRPC health server (grpcio's own, with its health servicer) on port 50051 in the network
/// namespace of process `pid`: SERVING at first, NOT_SERVING after a line on its stdin, gone
/// when its stdin closes.
const GRPC_HEALTH_SERVER: &str = r#"
import sys
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
h = health.HealthServicer()
health_pb2_grpc.add_HealthServicer_to_server(h, server)
server.add_insecure_port("0.0.0.0:50051")
h.set("", health_pb2.HealthCheckResponse.SERVING)
h.set("model", health_pb2.HealthCheckResponse.SERVING)
server.start()
print("serving", flush=True)
sys.stdin.readline()
h.set("model", health_pb2.HealthCheckResponse.NOT_SERVING)
print("not serving", flush=True)
sys.stdin.readline()
server.stop(0)
"#;

#[test]
fn grpc_probes_ask_the_pods_health_service() {
    use std::io::{BufRead, Write};
    let d = Daemon::start();
    d.busybox("bb:1");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: g}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: bb:1\n    command: [sleep, \"1000\"]\n    readinessProbe:\n      grpc: {port: 50051, service: model}\n      periodSeconds: 1\n      failureThreshold: 1\n";
    let o = d.kubectl_in(&["apply", "-f", "-"], pod);
    assert!(o.status.success(), "{}", err(&o));
    wait_for(&d, "g", "{.status.containerStatuses[0].started}", "true");
    // Nothing listens yet: not ready, and the kubelet's words in the event.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        d.kubectl_ok(&["get", "pod", "g", "-o", "jsonpath={.status.containerStatuses[0].ready}"]),
        "false"
    );
    let events = d.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=g",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains("Readiness probe failed: timeout: failed to connect service \"10."),
        "{events}"
    );
    // The health server in the pod's network namespace: ready while it says SERVING.
    let id = d.docker_ok(&[
        "ps",
        "-q",
        "--filter",
        "label=io.kubernetes.pod.name=g",
        "--filter",
        "label=io.kubernetes.container.name=c",
    ]);
    let pid = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", id.trim()]);
    let mut server = std::process::Command::new("nsenter")
        .args(["-t", pid.trim(), "-n", "python3", "-c", GRPC_HEALTH_SERVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = server.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    let _server = Killed(server);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "serving");
    wait_for(&d, "g", "{.status.containerStatuses[0].ready}", "true");
    writeln!(stdin).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "not serving");
    wait_for(&d, "g", "{.status.containerStatuses[0].ready}", "false");
    let events = d.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=g",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains("Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")"),
        "{events}"
    );
    drop(stdin);
    d.kubectl_ok(&["delete", "pod", "g", "--wait=false"]);
}
