//! The Kubernetes API server (issue 12) through the real kubectl: discovery, namespaces,
//! configmaps and secrets from files and from kubectl's generators (protobuf bodies), apply,
//! selectors, watch, errors as the real server words them, and state kept across a restart.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::Daemon;

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels: {app: model}\ndata:\n  lr: \"0.01\"\n  epochs: \"10\"\n";

/// A child process killed (and reaped) when dropped, also when the test fails first.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    assert_eq!(d.kubectl_ok(&["get", "cm", "-l", "app!=model", "-o", "name"]).trim(), "");

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
    assert_eq!(d.kubectl_ok(&["-n", "ml", "get", "cm,leases", "-o", "name"]).trim(), "");
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
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
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
    assert_eq!(d.kubectl_ok(&["get", "cm,secrets", "-o", "name"]).trim(), "");
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
        "default,kube-node-lease,kube-public,kube-system\nv\n[('ADDED', 'v2')]\n404 Not Found\nOpaque dw==\n0 0"
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
    let mut got = String::new();
    for _ in 0..100 {
        got = d.kubectl_ok(&["get", "pod", pod, "-o", &format!("jsonpath={path}")]);
        if got == want {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("pod {pod} {path}: {got:?}, expected {want:?}");
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
    assert!(ip.starts_with("10.42."), "{ip}");
    let row = d.kubectl_ok(&["get", "pod", "web", "--no-headers"]);
    assert!(row.split_whitespace().take(3).eq(["web", "1/1", "Running"]), "{row}");
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
    // Deleted: its containers stop and go, then the pod.
    d.kubectl_ok(&["delete", "pod", "web", "crash", "--grace-period=1"]);
    let left = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!left.contains("k8s_"), "{left}");
    assert_eq!(d.kubectl_ok(&["get", "pods", "--no-headers"]), "");
}
