//! The controllers (issue 13) through the real kubectl: Deployments and their ReplicaSets —
//! rollouts, history, undo, pause/resume, restart, scale, Recreate, the progress deadline,
//! self-healing, and a daemon killed mid-rollout.

mod common;

use std::time::{Duration, Instant};

use common::Daemon;

fn err(o: &std::process::Output) -> String {
    common::errtext(o)
}

/// Poll `kubectl get ARGS -o jsonpath=PATH` until it prints `want` (60 s at most).
fn wait_for(d: &Daemon, what: &[&str], path: &str, want: &str) -> String {
    let t0 = Instant::now();
    let mut got = String::new();
    while t0.elapsed() < Duration::from_secs(60) {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let jp = format!("jsonpath={path}");
        args.extend(["-o", &jp]);
        got = common::text(&d.kubectl(&args));
        if got == want {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what:?} {path}: wanted {want:?}, last saw {got:?}");
}

/// The ReplicaSets of app `app`: (name, spec replicas, revision), oldest first.
fn replica_sets(d: &Daemon, app: &str) -> Vec<(String, i64, String)> {
    let out = d.kubectl_ok(&[
        "get",
        "rs",
        "-l",
        &format!("app={app}"),
        "--sort-by=.metadata.creationTimestamp",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.replicas} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}{\"\\n\"}{end}",
    ]);
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[2].to_string())
        })
        .collect()
}

fn apply(d: &Daemon, manifest: &str) {
    let o = d.kubectl_in(&["apply", "-f", "-"], manifest);
    assert!(o.status.success(), "{}", err(&o));
}

fn rollout_ok(d: &Daemon, what: &str) -> String {
    d.kubectl_ok(&["rollout", "status", what, "--timeout=60s"])
}

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {kubernetes.io/change-cause: first}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: bb:1
        command: [sh, -c, 'trap \"exit 0\" TERM; sleep 3600 & wait']
";

#[test]
fn deployments_roll_out_keep_history_undo_pause_scale_and_heal() {
    let d = Daemon::start();
    d.busybox("bb:1");
    d.busybox("bb:2");
    apply(&d, WEB);
    assert!(rollout_ok(&d, "deploy/web").contains("successfully rolled out"));
    let rs = replica_sets(&d, "web");
    assert_eq!(rs.len(), 1, "{rs:?}");
    let (first, n, rev) = &rs[0];
    assert_eq!((*n, rev.as_str()), (3, "1"));
    // Its name and its pods' label carry the template's hash, its pods it as their owner.
    let hash = d.kubectl_ok(&["get", "rs", first, "-o", "jsonpath={.metadata.labels.pod-template-hash}"]);
    assert_eq!(first, &format!("web-{hash}"));
    let owners = d.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("pod-template-hash={hash}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {end}",
    ]);
    assert_eq!(owners.trim(), vec![format!("ReplicaSet/{first}"); 3].join(" "));
    assert_eq!(
        d.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.status.readyReplicas} {.status.availableReplicas} {.status.conditions[?(@.type==\"Available\")].status} {.status.conditions[?(@.type==\"Progressing\")].reason}"]),
        "3 3 True NewReplicaSetAvailable"
    );

    // A new image rolls out as a second ReplicaSet; the first is kept at zero.
    d.kubectl_ok(&["set", "image", "deploy/web", "c=bb:2"]);
    d.kubectl_ok(&["annotate", "deploy/web", "--overwrite", "kubernetes.io/change-cause=to bb:2"]);
    rollout_ok(&d, "deploy/web");
    let rs = replica_sets(&d, "web");
    assert_eq!(
        rs.iter().map(|r| (r.1, r.2.as_str())).collect::<Vec<_>>(),
        [(0, "1"), (3, "2")],
        "{rs:?}"
    );
    wait_for(
        &d,
        &["pods", "-l", "app=web"],
        "{.items[*].spec.containers[0].image}",
        "bb:2 bb:2 bb:2",
    );
    let history = d.kubectl_ok(&["rollout", "history", "deploy/web"]);
    assert!(
        history.contains("1         first") && history.contains("2         to bb:2"),
        "{history}"
    );
    let events = d.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=ScalingReplicaSet",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains(&format!("Scaled down replica set {first} from 3 to")), "{events}");

    // Undo: the first template comes back as revision 3, with its own ReplicaSet.
    d.kubectl_ok(&["rollout", "undo", "deploy/web"]);
    rollout_ok(&d, "deploy/web");
    let rs = replica_sets(&d, "web");
    assert_eq!(
        rs.iter().map(|r| (r.0.as_str(), r.1, r.2.as_str())).collect::<Vec<_>>()[0],
        (first.as_str(), 3, "3")
    );
    assert_eq!(
        d.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ]),
        "bb:1 3"
    );
    d.kubectl_ok(&["rollout", "undo", "deploy/web", "--to-revision=2"]);
    rollout_ok(&d, "deploy/web");
    assert_eq!(
        d.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]),
        "bb:2"
    );

    // Scale, paused: the replicas change, the template waits for resume.
    d.kubectl_ok(&["scale", "deploy/web", "--replicas=5"]);
    rollout_ok(&d, "deploy/web");
    d.kubectl_ok(&["rollout", "pause", "deploy/web"]);
    d.kubectl_ok(&["set", "image", "deploy/web", "c=bb:1"]);
    wait_for(
        &d,
        &["deploy", "web"],
        "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        "DeploymentPaused",
    );
    assert_eq!(replica_sets(&d, "web").len(), 2);
    d.kubectl_ok(&["rollout", "resume", "deploy/web"]);
    rollout_ok(&d, "deploy/web");
    wait_for(
        &d,
        &["pods", "-l", "app=web", "--field-selector=status.phase=Running"],
        "{.items[*].spec.containers[0].image}",
        "bb:1 bb:1 bb:1 bb:1 bb:1",
    );
    d.kubectl_ok(&["rollout", "restart", "deploy/web"]);
    rollout_ok(&d, "deploy/web");
    assert_eq!(replica_sets(&d, "web").len(), 3);

    // A deleted pod is replaced; a container that exits is restarted in its pod.
    let pods = d.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    let victim = pods.lines().next().unwrap().to_string();
    d.kubectl_ok(&["delete", &victim, "--wait=false"]);
    wait_for(&d, &["deploy", "web"], "{.status.availableReplicas}", "5");
    let now = d.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--field-selector=status.phase=Running",
        "-o",
        "name",
    ]);
    assert!(!now.lines().any(|p| p == victim), "{now}");

    // Deleting the Deployment takes its ReplicaSets and pods.
    d.kubectl_ok(&["delete", "deploy", "web"]);
    wait_for(&d, &["rs,pods", "-l", "app=web"], "{.items[*].metadata.name}", "");
}

const REC: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: rec}
spec:
  replicas: 2
  progressDeadlineSeconds: 5
  strategy: {type: Recreate}
  selector: {matchLabels: {app: rec}}
  template:
    metadata: {labels: {app: rec}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: bb:1, command: [sleep, '3600']}
";

#[test]
fn recreate_waits_for_the_old_pods_and_a_stuck_rollout_stops_at_its_deadline() {
    let d = Daemon::start();
    d.busybox("bb:1");
    d.busybox("bb:2");
    apply(&d, REC);
    rollout_ok(&d, "deploy/rec");
    let old: Vec<String> = d
        .kubectl_ok(&["get", "pods", "-l", "app=rec", "-o", "name"])
        .lines()
        .map(String::from)
        .collect();
    let old_hash = d.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=rec",
        "-o",
        "jsonpath={.items[0].metadata.labels.pod-template-hash}",
    ]);
    d.kubectl_ok(&["set", "image", "deploy/rec", "c=bb:2"]);
    // Recreate: never an old pod (running or terminating) beside a new one.
    let t0 = Instant::now();
    loop {
        let hashes = d.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=rec",
            "-o",
            "jsonpath={.items[*].metadata.labels.pod-template-hash}",
        ]);
        let hashes: std::collections::BTreeSet<&str> = hashes.split_whitespace().collect();
        assert!(hashes.len() <= 1, "old and new pods side by side: {hashes:?}");
        if hashes.len() == 1 && !hashes.contains(old_hash.as_str()) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no new pods: {hashes:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    rollout_ok(&d, "deploy/rec");
    let new: Vec<String> = d
        .kubectl_ok(&["get", "pods", "-l", "app=rec", "-o", "name"])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|p| !old.contains(p)), "{old:?} {new:?}");

    // A template whose pods never get ready: the rollout stops at the progress deadline,
    // `rollout status` says so, and undo brings the working revision back.
    d.kubectl_ok(&[
        "patch",
        "deploy",
        "rec",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/template/spec/containers/0/readinessProbe","value":{"exec":{"command":["false"]},"periodSeconds":1}}]"#,
    ]);
    let o = d.kubectl(&["rollout", "status", "deploy/rec", "--timeout=60s"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("deployment \"rec\" exceeded its progress deadline"), "{}", err(&o));
    assert_eq!(
        d.kubectl_ok(&[
            "get",
            "deploy",
            "rec",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Progressing\")].status} {.status.conditions[?(@.type==\"Progressing\")].reason}"
        ]),
        "False ProgressDeadlineExceeded"
    );
    d.kubectl_ok(&["rollout", "undo", "deploy/rec"]);
    rollout_ok(&d, "deploy/rec");
    assert_eq!(
        d.kubectl_ok(&["get", "deploy", "rec", "-o", "jsonpath={.status.availableReplicas}"]),
        "2"
    );

    // Refused at the API as the real server refuses them.
    let o = d.kubectl_in(
        &["apply", "-f", "-"],
        &REC.replace("strategy: {type: Recreate}", "strategy: {type: Sideways}"),
    );
    assert!(
        err(&o).contains("spec.strategy.type: Unsupported value: \"Sideways\""),
        "{}",
        err(&o)
    );
    let o = d.kubectl_in(&["apply", "-f", "-"], &REC.replace("replicas: 2", "replicas: -1"));
    assert!(err(&o).contains("spec.replicas: Invalid value: -1"), "{}", err(&o));
}

#[test]
fn a_rollout_resumes_after_the_daemon_is_killed_without_losing_or_doubling_replicas() {
    let mut d = Daemon::start();
    d.busybox("bb:1");
    d.busybox("bb:2");
    // minReadySeconds slows the rollout down to a pod every 2 s or so.
    let slow = WEB.replace(
        "replicas: 3",
        "replicas: 4\n  minReadySeconds: 2\n  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}",
    );
    apply(&d, &slow);
    rollout_ok(&d, "deploy/web");
    d.kubectl_ok(&["set", "image", "deploy/web", "c=bb:2"]);
    wait_for(&d, &["deploy", "web"], "{.status.updatedReplicas}", "2");
    d.crash_and_restart();
    rollout_ok(&d, "deploy/web");
    let rs = replica_sets(&d, "web");
    assert_eq!(rs.iter().map(|r| r.1).collect::<Vec<_>>(), [0, 4], "{rs:?}");
    wait_for(
        &d,
        &["pods", "-l", "app=web"],
        "{.items[*].spec.containers[0].image}",
        "bb:2 bb:2 bb:2 bb:2",
    );
}

/// An HTTP app answering its pod's name on 8080 (named `http`), ready when it answers, leaving
/// the Service's endpoints before it stops (preStop), as a rollout without failed requests
/// needs.
const APP: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 3
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - name: web
        image: bb:1
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www']
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
        lifecycle: {preStop: {exec: {command: [sleep, '2']}}}
---
apiVersion: v1
kind: Service
metadata: {name: app}
spec:
  type: NodePort
  selector: {app: app}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: app-headless}
spec:
  clusterIP: None
  selector: {app: app}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: unready, labels: {app: app}}
spec:
  containers:
  - name: web
    image: bb:1
    command: [sh, -c, 'mkdir -p /www && echo UNREADY > /www/index.html && exec httpd -f -p 8080 -h /www']
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {exec: {command: ['false']}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: c, image: bb:1, command: [sleep, '3600']}
";

#[test]
fn services_balance_over_ready_pods_resolve_by_name_and_survive_a_rollout() {
    // Names outside the cluster go to a resolver of the test's own, never the machine's.
    let up = common::Upstream::start();
    let d = Daemon::start_with(&["--dns", &format!("127.0.0.1:{}", up.port)]);
    d.busybox("bb:1");
    d.busybox("bb:2");
    apply(&d, APP);
    rollout_ok(&d, "deploy/app");
    wait_for(&d, &["pod", "client"], "{.status.phase}", "Running");
    let exec = |cmd: &str| d.kubectl(&["exec", "client", "--", "sh", "-c", cmd]);
    let ip = d.kubectl_ok(&["get", "svc", "app", "-o", "jsonpath={.spec.clusterIP}"]);
    // Endpoints and slices follow readiness: three ready, the unready pod apart.
    wait_for(
        &d,
        &["endpoints", "app"],
        "{.subsets[0].addresses[*].targetRef.kind}",
        "Pod Pod Pod",
    );
    assert_eq!(
        d.kubectl_ok(&[
            "get",
            "endpoints",
            "app",
            "-o",
            "jsonpath={.subsets[0].notReadyAddresses[*].targetRef.name} {.subsets[0].ports[0].port}"
        ]),
        "unready 8080"
    );
    let slices = d.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=app",
        "-o",
        "jsonpath={.items[0].endpoints[*].conditions.ready}",
    ]);
    assert_eq!(slices.matches("true").count(), 3, "{slices}");
    assert_eq!(slices.matches("false").count(), 1, "{slices}");

    // The cluster IP, from a pod: balanced over the ready pods, never the unready one.
    let seen = common::text(&exec(&format!("for i in $(seq 30); do wget -qO- http://{ip}/; done")));
    let names: std::collections::BTreeSet<&str> = seen.lines().collect();
    assert!(names.len() >= 2 && names.iter().all(|n| n.starts_with("app-")), "{seen}");
    // By name: short (the pod's search path), fully qualified; headless: one A per ready pod.
    assert!(common::text(&exec("wget -qO- http://app/")).starts_with("app-"));
    assert!(common::text(&exec("wget -qO- http://app.default.svc.cluster.local/")).starts_with("app-"));
    let o = exec("nslookup app-headless.default.svc.cluster.local");
    assert_eq!(common::text(&o).matches("Address: 10.").count(), 3, "{}", common::text(&o));
    let o = exec("nslookup -type=SRV _http._tcp.app.default.svc.cluster.local");
    assert!(
        common::text(&o).contains("80 app.default.svc.cluster.local"),
        "{}",
        common::text(&o)
    );
    let o = exec("nslookup nope.default.svc.cluster.local");
    assert!(common::text(&o).contains("NXDOMAIN"), "{}", common::text(&o));
    // Other names are forwarded (to the test's resolver).
    let o = exec("nslookup model.example.org.");
    assert!(common::text(&o).contains("192.0.2.55"), "{}", common::text(&o));
    // The node port on the host's loopback.
    let np = d.kubectl_ok(&["get", "svc", "app", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    let o = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{np}/"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("app-"), "{o:?}");

    // A steady client through a rollout: every request answered, none by the unready pod.
    let client = d.kubectl_cmd(&[
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        "ok=0; bad=0; i=0; while [ $i -lt 200 ]; do r=$(wget -qO- http://app/) && case $r in app-*) ok=$((ok+1));; *) bad=$((bad+1));; esac || bad=$((bad+1)); i=$((i+1)); sleep 0.05; done; echo $ok $bad",
    ]);
    let steady = std::thread::spawn(move || common::run_timeout(client, None, 120));
    std::thread::sleep(Duration::from_secs(1));
    d.kubectl_ok(&["set", "image", "deploy/app", "web=bb:2"]);
    rollout_ok(&d, "deploy/app");
    let o = steady.join().unwrap();
    assert_eq!(common::text(&o), "200 0", "{}", err(&o));

    // ClientIP affinity: one client, one pod.
    d.kubectl_ok(&["patch", "svc", "app", "-p", r#"{"spec":{"sessionAffinity":"ClientIP"}}"#]);
    std::thread::sleep(Duration::from_millis(500));
    let seen = common::text(&exec("for i in $(seq 10); do wget -qO- http://app/; done"));
    let names: std::collections::BTreeSet<&str> = seen.lines().collect();
    assert_eq!(names.len(), 1, "{seen}");

    // No ready endpoint: refused at once, not routed anywhere.
    d.kubectl_ok(&["scale", "deploy/app", "--replicas=0"]);
    wait_for(&d, &["endpoints", "app"], "{.subsets[*].addresses}", "");
    let t0 = Instant::now();
    let o = exec(&format!("wget -qO- http://{ip}/"));
    assert!(!o.status.success() && t0.elapsed() < Duration::from_secs(10), "{o:?}");
    // A Service removed leaves no rule.
    d.kubectl_ok(&["delete", "svc", "app"]);
    let table = format!("berth-svc-{}", d.flag("--pod-bridge").unwrap());
    let t0 = Instant::now();
    loop {
        let rules = std::process::Command::new("nft")
            .args(["list", "table", "ip", &table])
            .output()
            .unwrap();
        let rules = String::from_utf8_lossy(&rules.stdout).to_string();
        if !rules.contains("default/app:") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{rules}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn port_forward_to_a_service_reaches_one_of_its_pods() {
    let d = Daemon::start();
    d.busybox("bb:1");
    apply(
        &d,
        APP.split("---\napiVersion: v1\nkind: Service\nmetadata: {name: app-headless}")
            .next()
            .unwrap(),
    );
    rollout_ok(&d, "deploy/app");
    let mut pf = d.kubectl_cmd(&["port-forward", "svc/app", ":80"]);
    pf.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    // Killed when dropped, also when an assertion fails first.
    let mut child = common::Killed(pf.spawn().unwrap());
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.0.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    // Keep reading (kubectl reports each connection there; a closed pipe would stop it).
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    // "Forwarding from 127.0.0.1:PORT -> 8080"
    let port = line.split(':').nth(1).and_then(|r| r.split(' ').next()).unwrap_or("").to_string();
    assert!(line.contains("-> 8080"), "{line}");
    let o = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    drop(child);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("app-"), "{o:?}");
}

const JOBS: &str = "apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: '* * * * *'
  timeZone: Europe/Paris
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: bb:1, command: [echo, tick]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: idx}
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: bb:1, command: [sh, -c, 'echo index $JOB_COMPLETION_INDEX of $(hostname)']}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: fails}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: bb:1, command: [sh, -c, 'exit 1']}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: policy}
spec:
  podFailurePolicy:
    rules:
    - {action: FailJob, onExitCodes: {containerName: c, operator: In, values: [42]}}
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: bb:1, command: [sh, -c, 'exit 42']}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: slow}
spec:
  activeDeadlineSeconds: 2
  ttlSecondsAfterFinished: 3
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: bb:1, command: [sleep, '100']}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: later}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: bb:1, command: [echo, resumed]}]
";

#[test]
fn jobs_run_to_completion_fail_by_their_rules_and_cronjobs_fire() {
    let d = Daemon::start();
    d.busybox("bb:1");
    apply(&d, JOBS);
    let wait = |what: &str, cond: &str| d.kubectl_ok(&["wait", &format!("--for=condition={cond}"), what, "--timeout=60s"]);
    // Indexed: one success per index, each pod told its index (and named by it).
    wait("job/idx", "complete");
    assert_eq!(
        d.kubectl_ok(&[
            "get",
            "job",
            "idx",
            "-o",
            "jsonpath={.status.succeeded} {.status.completedIndexes} {.status.failed}"
        ]),
        "3 0-2 0"
    );
    let mut logs: Vec<String> = d
        .kubectl_ok(&["get", "pods", "-l", "job-name=idx", "-o", "name"])
        .lines()
        .map(|p| d.kubectl_ok(&["logs", p]).trim().to_string())
        .collect();
    logs.sort();
    assert_eq!(logs, ["index 0 of idx-0", "index 1 of idx-1", "index 2 of idx-2"]);
    // Counted pods keep no finalizer.
    assert_eq!(
        d.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "job-name=idx",
            "-o",
            "jsonpath={.items[*].metadata.finalizers}"
        ]),
        ""
    );
    // A generator's Job, and its logs through kubectl.
    d.kubectl_ok(&["create", "job", "hello", "--image=bb:1", "--", "echo", "hello"]);
    wait("job/hello", "complete");
    assert_eq!(d.kubectl_ok(&["logs", "job/hello"]).trim(), "hello");
    // Failures: the back-off limit, a FailJob rule, the deadline (and the TTL after it).
    wait("job/fails", "failed");
    assert_eq!(
        d.kubectl_ok(&[
            "get",
            "job",
            "fails",
            "-o",
            "jsonpath={.status.failed} {.status.conditions[?(@.type==\"Failed\")].reason}"
        ]),
        "2 BackoffLimitExceeded"
    );
    wait("job/policy", "failed");
    let msg = d.kubectl_ok(&[
        "get",
        "job",
        "policy",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Failed\")].message}",
    ]);
    assert!(
        msg.starts_with("Container c for pod default/policy-")
            && msg.ends_with("failed with exit code 42 matching FailJob rule at index 0"),
        "{msg}"
    );
    wait_for(&d, &["jobs"], "{.items[?(@.metadata.name==\"slow\")].metadata.name}", "");
    let events = d.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=DeadlineExceeded",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains("Job was active longer than specified deadline"), "{events}");
    // Suspended: no pod until resumed.
    assert_eq!(d.kubectl_ok(&["get", "pods", "-l", "job-name=later", "-o", "name"]), "");
    assert_eq!(
        d.kubectl_ok(&[
            "get",
            "job",
            "later",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Suspended\")].status}"
        ]),
        "True"
    );
    d.kubectl_ok(&["patch", "job", "later", "-p", r#"{"spec":{"suspend":false}}"#]);
    wait("job/later", "complete");
    // The CronJob fires at the next minute: a Job named by its scheduled minute, stamped with
    // the time in its zone.
    let t0 = Instant::now();
    let job = loop {
        let j = d.kubectl_ok(&[
            "get",
            "jobs",
            "-o",
            "jsonpath={.items[?(@.metadata.ownerReferences[0].kind==\"CronJob\")].metadata.name}",
        ]);
        if !j.is_empty() {
            break j;
        }
        assert!(t0.elapsed() < Duration::from_secs(75), "the CronJob never fired");
        std::thread::sleep(Duration::from_millis(500));
    };
    let minutes: i64 = job.strip_prefix("tick-").unwrap().parse().unwrap();
    let stamp = d.kubectl_ok(&[
        "get",
        "job",
        &job,
        "-o",
        "jsonpath={.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    ]);
    assert!(stamp.ends_with(":00+01:00") || stamp.ends_with(":00+02:00"), "{stamp}");
    wait(&format!("job/{job}"), "complete");
    assert_eq!(d.kubectl_ok(&["logs", &format!("job/{job}")]).trim(), "tick");
    let last = d.kubectl_ok(&["get", "cronjob", "tick", "-o", "jsonpath={.status.lastScheduleTime}"]);
    let last: i64 = std::process::Command::new("date")
        .args(["-d", &last, "+%s"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().parse().unwrap())
        .unwrap();
    assert_eq!(last / 60, minutes);
}

const CLAIM: &str = "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: bb:1, command: [sh, -c, 'echo model-v1 > /data/weights'], volumeMounts: [{name: d, mountPath: /data}]}
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
";

#[test]
fn a_claims_data_survives_its_pods_and_goes_with_it() {
    let d = Daemon::start();
    d.busybox("bb:1");
    assert!(d.kubectl_ok(&["get", "storageclass"]).contains("local-path (default)"));
    apply(&d, CLAIM);
    wait_for(&d, &["pvc", "data"], "{.status.phase} {.spec.storageClassName}", "Bound local-path");
    let pv = d.kubectl_ok(&["get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}"]);
    let dir = d.kubectl_ok(&["get", "pv", &pv, "-o", "jsonpath={.spec.hostPath.path}"]);
    assert!(dir.starts_with(&d.root.join("kube/volumes").display().to_string()), "{dir}");
    wait_for(&d, &["pod", "writer"], "{.status.phase}", "Succeeded");
    d.kubectl_ok(&["delete", "pod", "writer"]);
    // Another pod, later, reads what the first wrote.
    let reader = CLAIM
        .split("---\n")
        .nth(1)
        .unwrap()
        .replace("writer", "reader")
        .replace("command: [sh, -c, 'echo model-v1 > /data/weights']", "command: [sleep, '3600']");
    apply(&d, &reader);
    wait_for(&d, &["pod", "reader"], "{.status.phase}", "Running");
    assert_eq!(d.kubectl_ok(&["exec", "reader", "--", "cat", "/data/weights"]).trim(), "model-v1");
    // In use: the claim waits for its pod (pvc-protection), then goes with its volume and data.
    d.kubectl_ok(&["delete", "pvc", "data", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(d.kubectl_ok(&["get", "pvc", "data", "-o", "jsonpath={.status.phase}"]), "Bound");
    d.kubectl_ok(&["delete", "pod", "reader", "--grace-period=1"]);
    wait_for(&d, &["pvc,pv"], "{.items[*].metadata.name}", "");
    assert!(!std::path::Path::new(&dir).exists(), "{dir} was left behind");

    // Retain keeps the volume (Released) and its data; a volume made by hand binds its class.
    let manual = format!(
        "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: keep}}
provisioner: berth.dev/local-path
reclaimPolicy: Retain
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: byhand}}
spec:
  storageClassName: manual
  capacity: {{storage: 5Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: {}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: mine}}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 2Gi}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: kept}}
spec:
  storageClassName: keep
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
",
        d.root.join("byhand").display()
    );
    apply(&d, &manual);
    wait_for(
        &d,
        &["pvc", "mine"],
        "{.status.phase} {.spec.volumeName} {.status.capacity.storage}",
        "Bound byhand 5Gi",
    );
    wait_for(&d, &["pvc", "kept"], "{.status.phase}", "Bound");
    let kept = d.kubectl_ok(&["get", "pvc", "kept", "-o", "jsonpath={.spec.volumeName}"]);
    d.kubectl_ok(&["delete", "pvc", "kept"]);
    wait_for(&d, &["pv", &kept], "{.status.phase}", "Released");
    let kept_dir = d.kubectl_ok(&["get", "pv", &kept, "-o", "jsonpath={.spec.hostPath.path}"]);
    assert!(std::path::Path::new(&kept_dir).is_dir());
}

const BURN: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: bb:1
        command: [sh, -c, 'end=$(($(date +%s)+25)); while [ $(date +%s) -lt $end ]; do :; done; sleep 3600']
        resources: {requests: {cpu: 100m}, limits: {cpu: 200m}}
";

#[test]
fn autoscaling_follows_cpu_load_out_and_back_and_top_prints_usage() {
    let d = Daemon::start();
    d.busybox("bb:1");
    apply(&d, BURN);
    rollout_ok(&d, "deploy/burn");
    d.kubectl_ok(&["autoscale", "deploy", "burn", "--min=1", "--max=3", "--cpu-percent=50"]);
    // Down as soon as the load is gone (the default waits five minutes).
    d.kubectl_ok(&[
        "patch",
        "hpa",
        "burn",
        "-p",
        r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":0}}}}"#,
    ]);
    // kubectl top: the busy pod near its 200m limit, the node's figures.
    let t0 = Instant::now();
    let top = loop {
        let o = d.kubectl(&["top", "pod", "-l", "app=burn", "--no-headers"]);
        let line = common::text(&o);
        let cpu = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.strip_suffix('m'))
            .and_then(|c| c.parse::<u32>().ok());
        if cpu.is_some_and(|c| c >= 100) {
            break line;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no usage: {line} {}", err(&o));
        std::thread::sleep(Duration::from_secs(1));
    };
    let cpu: u32 = top.split_whitespace().nth(1).unwrap().trim_end_matches('m').parse().unwrap();
    assert!(cpu <= 260, "{top}");
    let node = d.kubectl_ok(&["top", "node", "--no-headers"]);
    let cells: Vec<&str> = node.split_whitespace().collect();
    assert!(cells.len() >= 5 && cells[1].ends_with('m') && cells[3].ends_with("Mi"), "{node}");
    // Out under load, back once it ends.
    let t0 = Instant::now();
    wait_for(&d, &["deploy", "burn"], "{.spec.replicas}", "3");
    let out = t0.elapsed();
    wait_for(&d, &["deploy", "burn"], "{.spec.replicas}", "1");
    let status = d.kubectl_ok(&[
        "get",
        "hpa",
        "burn",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"ScalingActive\")].reason}",
    ]);
    assert_eq!(status, "ValidMetricFound");
    let events = d.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=SuccessfulRescale",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains("New size: 3; reason: cpu resource utilization (percentage of request) above target"),
        "{events}"
    );
    assert!(
        events.contains("New size: 1; reason: cpu resource utilization (percentage of request) below target"),
        "{events}"
    );
    eprintln!("scaled out after {out:?}");
}

/// The daemon's ingress proxy address (`--ingress-http` or `--ingress-https`).
fn ingress(d: &Daemon, flag: &str) -> String {
    d.flag(flag).unwrap()
}

fn curl(args: &[&str]) -> String {
    let o = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ingress_routes_by_host_and_path_and_serves_tls_from_a_secret() {
    let d = Daemon::start();
    d.busybox("bb:1");
    apply(
        &d,
        APP.split("---\napiVersion: v1\nkind: Service\nmetadata: {name: app-headless}")
            .next()
            .unwrap(),
    );
    rollout_ok(&d, "deploy/app");
    assert!(d.kubectl_ok(&["get", "ingressclass"]).contains("berth.dev/ingress"));
    d.kubectl_ok(&[
        "create",
        "ingress",
        "app",
        "--rule=app.localhost/*=app:80",
        "--rule=api.localhost/v1=app:http",
    ]);
    d.kubectl_ok(&["create", "ingress", "dead", "--rule=dead.localhost/*=nothing:80"]);
    let http = ingress(&d, "--ingress-http");
    let (ip, port) = http.rsplit_once(':').unwrap();
    wait_for(&d, &["ingress", "app"], "{.status.loadBalancer.ingress[0].ip}", ip);
    let url = format!("http://{http}/");
    assert!(curl(&["-H", "Host: app.localhost", &url]).starts_with("app-"));
    // Prefix by path elements: /v1 goes to the app (which has no such file), /v2 nowhere.
    assert!(curl(&["-H", "Host: api.localhost", &format!("http://{http}/v1")]).contains("404 Not Found"));
    assert_eq!(
        curl(&["-H", "Host: api.localhost", &format!("http://{http}/v2")]).trim(),
        "default backend - 404"
    );
    assert_eq!(curl(&["-H", "Host: other.localhost", &url]).trim(), "default backend - 404");
    assert!(curl(&["-H", "Host: dead.localhost", &url]).contains("no ready endpoints for service default/nothing"));
    // TLS: the certificate of the Ingress's Secret, by SNI.
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let o = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=secure.localhost",
            "-addext",
            "subjectAltName=DNS:secure.localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    d.kubectl_ok(&[
        "create",
        "secret",
        "tls",
        "secure",
        "--cert",
        crt.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    d.kubectl_ok(&["create", "ingress", "secure", "--rule=secure.localhost/*=app:80,tls=secure"]);
    let https = ingress(&d, "--ingress-https");
    let hport = https.rsplit_once(':').unwrap().1;
    let t0 = Instant::now();
    loop {
        let body = curl(&[
            "--cacert",
            crt.to_str().unwrap(),
            "--resolve",
            &format!("secure.localhost:{hport}:{ip}"),
            &format!("https://secure.localhost:{hport}/"),
        ]);
        if body.starts_with("app-") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Plain HTTP for the TLS host is sent to HTTPS, unless the Ingress says not to.
    let head = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        "Host: secure.localhost",
        &format!("http://{http}/x?y=1"),
    ]);
    assert!(head.starts_with("HTTP/1.1 308"), "{head}");
    assert!(
        head.contains(&format!("location: https://secure.localhost:{hport}/x?y=1")),
        "{head}"
    );
    d.kubectl_ok(&["annotate", "ingress", "secure", "ingress.berth.dev/ssl-redirect=false"]);
    let t0 = Instant::now();
    while !curl(&["-H", "Host: secure.localhost", &url]).starts_with("app-") {
        assert!(t0.elapsed() < Duration::from_secs(10), "the redirect stayed");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A protocol upgrade (what a WebSocket sends) passes through: after the backend's 101, the
    // connection is a tunnel both ways (the backend answers 101, then echoes).
    apply(
        &d,
        r##"apiVersion: v1
kind: ConfigMap
metadata: {name: ws}
data:
  ws.sh: |
    #!/bin/sh
    while read -r l; do l=$(printf %s "$l" | tr -d "\r"); [ -z "$l" ] && break; done
    printf "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    exec cat
---
apiVersion: v1
kind: Pod
metadata: {name: ws, labels: {app: ws}}
spec:
  containers:
  - name: ws
    image: bb:1
    command: [nc, -ll, -p, "8080", -e, /ws/ws.sh]
    ports: [{containerPort: 8080}]
    volumeMounts: [{name: ws, mountPath: /ws}]
  volumes: [{name: ws, configMap: {name: ws, defaultMode: 0755}}]
---
apiVersion: v1
kind: Service
metadata: {name: ws}
spec:
  selector: {app: ws}
  ports: [{port: 80, targetPort: 8080}]
"##,
    );
    wait_for(&d, &["pod", "ws"], "{.status.phase}", "Running");
    d.kubectl_ok(&["create", "ingress", "ws", "--rule=ws.localhost/*=ws:80"]);
    let t0 = Instant::now();
    loop {
        use std::io::{BufRead, Read, Write};
        let mut c = std::net::TcpStream::connect(&http).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /chat HTTP/1.1\r\nHost: ws.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
        let mut r = std::io::BufReader::new(c.try_clone().unwrap());
        let mut status = String::new();
        let _ = r.read_line(&mut status);
        if status.starts_with("HTTP/1.1 101") {
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            c.write_all(b"ping over the tunnel\n").unwrap();
            let mut echo = [0u8; 21];
            r.read_exact(&mut echo).unwrap();
            assert_eq!(&echo, b"ping over the tunnel\n");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "no upgrade: {status:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = port;
}

#[test]
fn helm_create_chart_installs_tests_upgrades_rolls_back_and_uninstalls() {
    let helm = common::helm_binary();
    let d = Daemon::start();
    d.busybox("bb:1");
    // The chart's images, made here (no registry can be reached): nginx:1.16.0 (its appVersion)
    // as busybox's httpd on port 80, and busybox for its test pod.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb:1\nRUN mkdir /www && echo 'hello from demo' > /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    d.berth_ok(&["build", "-q", "-t", "nginx:1.16.0", ctx.path().to_str().unwrap()]);
    d.berth_ok(&["tag", "bb:1", "busybox:1.36"]);
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| -> String {
        let mut cmd = std::process::Command::new(&helm);
        cmd.current_dir(work.path())
            .env("KUBECONFIG", d.kubeconfig())
            .env("HELM_CACHE_HOME", work.path().join(".cache"))
            .env("HELM_CONFIG_HOME", work.path().join(".config"))
            .args(args);
        let o = common::run_timeout(cmd, None, 180);
        assert!(o.status.success(), "helm {args:?}: {}\n{}", common::text(&o), err(&o));
        common::text(&o)
    };
    run(&["create", "demo"]);
    // Its test pod's image pinned to the local tag (`busybox` alone would be pulled).
    let test = work.path().join("demo/templates/tests/test-connection.yaml");
    let t = std::fs::read_to_string(&test).unwrap();
    std::fs::write(&test, t.replace("image: busybox", "image: busybox:1.36")).unwrap();
    run(&[
        "install",
        "demo",
        "./demo",
        "--set",
        "ingress.enabled=true",
        "--set",
        "autoscaling.enabled=true",
        "--wait",
        "--timeout",
        "90s",
    ]);
    for what in ["deployment/demo", "service/demo", "serviceaccount/demo", "ingress/demo", "hpa/demo"] {
        d.kubectl_ok(&["get", what]);
    }
    // Through the Ingress's host rule, and the chart's own test (its pod reaches the Service).
    let http = ingress(&d, "--ingress-http");
    assert_eq!(
        curl(&["-H", "Host: chart-example.local", &format!("http://{http}/")]).trim(),
        "hello from demo"
    );
    let tested = run(&["test", "demo", "--timeout", "90s"]);
    assert!(tested.contains("Phase:          Succeeded"), "{tested}");
    // Upgrade (two replicas, no autoscaler), roll back to the first release.
    run(&["upgrade", "demo", "./demo", "--set", "replicaCount=2", "--wait", "--timeout", "90s"]);
    assert_eq!(
        d.kubectl_ok(&["get", "deploy", "demo", "-o", "jsonpath={.status.readyReplicas}"]),
        "2"
    );
    assert!(!d.kubectl(&["get", "hpa", "demo"]).status.success());
    run(&["rollback", "demo", "1", "--wait", "--timeout", "90s"]);
    d.kubectl_ok(&["get", "hpa", "demo"]);
    assert!(run(&["history", "demo"]).lines().count() >= 4);
    // Uninstalled: nothing of the release is left. (Its test pod is a hook without a delete
    // policy, which Helm leaves on any cluster: the user removes it.)
    run(&["uninstall", "demo", "--wait", "--timeout", "90s"]);
    d.kubectl_ok(&["delete", "pod", "demo-test-connection"]);
    let t0 = Instant::now();
    loop {
        let left = d.kubectl_ok(&[
            "get",
            "all,ingress,serviceaccount,endpoints,endpointslices,secrets",
            "-l",
            "app.kubernetes.io/instance=demo",
            "-o",
            "name",
        ]);
        let pods = d.kubectl_ok(&["get", "pods", "-o", "name"]);
        if left.is_empty() && !pods.contains("demo") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "left behind: {left} {pods}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(d.kubectl_ok(&["get", "secrets", "-l", "owner=helm", "-o", "name"]), "");
}

const STS: &str = "apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: bb:1
        command: [sh, -c, 'mkdir -p /www; [ -e /data/born ] || hostname > /data/born; cp /data/born /www/index.html; exec httpd -f -p 8080 -h /www']
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: bb:1, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: c, image: bb:1, command: [sleep, '3600']}
";

#[test]
fn statefulsets_keep_names_and_claims_in_order_and_daemonsets_cover_the_node() {
    let d = Daemon::start();
    d.busybox("bb:1");
    d.busybox("bb:2");
    apply(&d, STS);
    rollout_ok(&d, "sts/db");
    // Ordered: each pod started once the one before was ready.
    let started: Vec<String> = (0..3)
        .map(|i| d.kubectl_ok(&["get", "pod", &format!("db-{i}"), "-o", "jsonpath={.status.startTime}"]))
        .collect();
    assert!(started[0] <= started[1] && started[1] <= started[2], "{started:?}");
    assert_eq!(
        d.kubectl_ok(&["get", "pvc", "-l", "app=db", "-o", "jsonpath={.items[*].metadata.name}"]),
        "data-db-0 data-db-1 data-db-2"
    );
    // Stable DNS names under the governing Service, each pod with its own claim's data.
    wait_for(&d, &["pod", "client"], "{.status.phase}", "Running");
    let via = |host: &str| {
        d.kubectl_ok(&[
            "exec",
            "client",
            "--",
            "wget",
            "-qO-",
            &format!("http://{host}.db.default.svc.cluster.local:8080/"),
        ])
    };
    assert_eq!(via("db-1").trim(), "db-1");
    // A rolling update, highest ordinal first; history and undo through ControllerRevisions.
    d.kubectl_ok(&["set", "image", "sts/db", "c=bb:2"]);
    rollout_ok(&d, "sts/db");
    assert_eq!(
        d.kubectl_ok(&["get", "pods", "-l", "app=db", "-o", "jsonpath={.items[*].spec.containers[0].image}"]),
        "bb:2 bb:2 bb:2"
    );
    let history = d.kubectl_ok(&["rollout", "history", "sts/db"]);
    assert!(history.contains("1 ") && history.contains("2 "), "{history}");
    // A replaced pod keeps its name and its claim: db-1 still serves what it first wrote.
    d.kubectl_ok(&["delete", "pod", "db-1"]);
    rollout_ok(&d, "sts/db");
    wait_for(&d, &["pod", "db-1"], "{.status.containerStatuses[0].ready}", "true");
    assert_eq!(via("db-1").trim(), "db-1");
    d.kubectl_ok(&["rollout", "undo", "sts/db"]);
    rollout_ok(&d, "sts/db");
    assert_eq!(
        d.kubectl_ok(&["get", "pods", "-l", "app=db", "-o", "jsonpath={.items[*].spec.containers[0].image}"]),
        "bb:1 bb:1 bb:1"
    );
    // Scaled down from the top; the claims stay (retention policy Retain).
    d.kubectl_ok(&["scale", "sts/db", "--replicas=1"]);
    wait_for(&d, &["pods", "-l", "app=db"], "{.items[*].metadata.name}", "db-0");
    assert_eq!(d.kubectl_ok(&["get", "pvc", "-l", "app=db", "-o", "name"]).lines().count(), 3);

    // The DaemonSet: one pod on the node, bound to it; a new template replaces it.
    d.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    let node = d.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    assert_eq!(
        d.kubectl_ok(&["get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[*].spec.nodeName}"]),
        node
    );
    assert_eq!(
        d.kubectl_ok(&[
            "get",
            "ds",
            "agent",
            "-o",
            "jsonpath={.status.desiredNumberScheduled} {.status.numberReady}"
        ]),
        "1 1"
    );
    d.kubectl_ok(&["set", "image", "ds/agent", "c=bb:2"]);
    d.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    wait_for(&d, &["pods", "-l", "app=agent"], "{.items[*].spec.containers[0].image}", "bb:2");
}

fn micro_now() -> String {
    let o = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn a_node_that_stops_heartbeating_goes_unreachable_and_its_pods_are_evicted() {
    let d = Daemon::start_with(&["--node-monitor-grace-period", "12"]);
    // A second node whose kubelet is this test: its Node and Lease made by hand, then left to
    // go stale (the daemon's own node keeps beating).
    let lease = |t: &str| {
        format!("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: far, namespace: kube-node-lease}}\nspec: {{holderIdentity: far, leaseDurationSeconds: 40, renewTime: \"{t}\"}}\n")
    };
    apply(
        &d,
        "apiVersion: v1\nkind: Node\nmetadata: {name: far, labels: {kubernetes.io/hostname: far}}\n",
    );
    apply(&d, &lease(&micro_now()));
    d.kubectl_ok(&[
        "patch", "node", "far", "--subresource=status", "--type=merge", "-p",
        &format!(r#"{{"status":{{"allocatable":{{"cpu":"2","memory":"2Gi","pods":"110"}},"capacity":{{"cpu":"2","memory":"2Gi","pods":"110"}},"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status","lastHeartbeatTime":"{0}","lastTransitionTime":"{0}"}}]}}}}"#, micro_now().split('.').next().unwrap().to_string() + "Z"),
    ]);
    apply(
        &d,
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: remote}
spec:
  replicas: 1
  selector: {matchLabels: {app: remote}}
  template:
    metadata: {labels: {app: remote}}
    spec:
      nodeSelector: {kubernetes.io/hostname: far}
      tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 3}]
      containers: [{name: c, image: bb:1}]
",
    );
    let first = loop {
        let p = d.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=remote",
            "-o",
            "jsonpath={.items[?(@.spec.nodeName==\"far\")].metadata.name}",
        ]);
        if !p.is_empty() {
            break p;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // No heartbeat: unreachable (conditions Unknown, the taints), then the pod evicted after
    // its 3 s toleration, and its ReplicaSet makes another (which the tainted node does not get).
    wait_for(&d, &["node", "far"], "{.status.conditions[?(@.type==\"Ready\")].status}", "Unknown");
    assert!(d.kubectl_ok(&["get", "nodes"]).contains("NotReady"));
    assert_eq!(
        d.kubectl_ok(&["get", "node", "far", "-o", "jsonpath={.spec.taints[*].key}"]),
        "node.kubernetes.io/unreachable node.kubernetes.io/unreachable"
    );
    let t0 = Instant::now();
    loop {
        let ts = d.kubectl_ok(&["get", "pod", &first, "-o", "jsonpath={.metadata.deletionTimestamp}"]);
        if !ts.is_empty() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{first} was never evicted");
        std::thread::sleep(Duration::from_millis(200));
    }
    let events = d.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=TaintManagerEviction",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains(&format!("Marking for deletion Pod default/{first}")), "{events}");
    let t0 = Instant::now();
    loop {
        let pods = d.kubectl_ok(&["get", "pods", "-l", "app=remote", "-o", "name"]);
        if pods.lines().count() == 2 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no replacement: {pods}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Beating again: the taints go.
    apply(&d, &lease(&micro_now()));
    wait_for(&d, &["node", "far"], "{.spec.taints[*].key}", "");
}

#[test]
fn limit_ranges_default_and_bound_containers_and_quotas_hold_a_namespace() {
    let d = Daemon::start();
    d.busybox("bb:1");
    d.kubectl_ok(&["create", "namespace", "team"]);
    d.kubectl_ok(&["-n", "team", "create", "quota", "q", "--hard=pods=2,requests.cpu=1,limits.cpu=2"]);
    apply(
        &d,
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: lr, namespace: team}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m}\n    defaultRequest: {cpu: 200m}\n    max: {cpu: \"1\"}\n",
    );
    let run = |name: &str| d.kubectl(&["-n", "team", "run", name, "--image=bb:1", "--", "sleep", "3600"]);
    assert!(run("a").status.success());
    // The LimitRange's defaults, written into the pod.
    assert_eq!(
        d.kubectl_ok(&[
            "-n",
            "team",
            "get",
            "pod",
            "a",
            "-o",
            "jsonpath={.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.limits.cpu}"
        ]),
        "200m 500m"
    );
    assert!(run("b").status.success());
    // The quota's status follows, and a third pod is refused with the real server's words.
    let t0 = Instant::now();
    loop {
        let q = d.kubectl_ok(&["-n", "team", "get", "quota", "q", "--no-headers"]);
        if q.contains("pods: 2/2") && q.contains("requests.cpu: 400m/1") && q.contains("limits.cpu: 1/2") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{q}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = run("c");
    assert!(
        err(&o).contains("pods \"c\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"),
        "{}",
        err(&o)
    );
    let o = d.kubectl(&[
        "-n",
        "team",
        "run",
        "big",
        "--image=bb:1",
        r#"--overrides={"spec":{"containers":[{"name":"big","image":"bb:1","resources":{"limits":{"cpu":"2"}}}]}}"#,
    ]);
    assert!(
        err(&o).contains("maximum cpu usage per Container is 1, but limit is 2"),
        "{}",
        err(&o)
    );
    // A quota on something this server does not enforce is refused, not taken and ignored.
    let o = d.kubectl(&["-n", "team", "create", "quota", "bad", "--hard=gpus=3"]);
    assert!(err(&o).contains("spec.hard[gpus]: Unsupported value"), "{}", err(&o));
    // Object counts and storage.
    d.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "quota",
        "objs",
        "--hard=services=1,count/deployments.apps=1,requests.storage=1Gi,local-path.storageclass.storage.k8s.io/persistentvolumeclaims=1",
    ]);
    d.kubectl_ok(&["-n", "team", "create", "service", "clusterip", "s1", "--tcp=80"]);
    let o = d.kubectl(&["-n", "team", "create", "service", "clusterip", "s2", "--tcp=80"]);
    assert!(
        err(&o)
            .contains("services \"s2\" is forbidden: exceeded quota: objs, requested: services=1, used: services=1, limited: services=1"),
        "{}",
        err(&o)
    );
    d.kubectl_ok(&["-n", "team", "create", "deployment", "d1", "--image=bb:1", "--replicas=0"]);
    let o = d.kubectl(&["-n", "team", "create", "deployment", "d2", "--image=bb:1", "--replicas=0"]);
    assert!(
        err(&o).contains("deployments.apps \"d2\" is forbidden: exceeded quota: objs, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"),
        "{}",
        err(&o)
    );
    let claim = |name: &str, size: &str| {
        format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, namespace: team}}\nspec: {{storageClassName: local-path, accessModes: [ReadWriteOnce], resources: {{requests: {{storage: {size}}}}}}}\n")
    };
    let o = d.kubectl_in(&["create", "-f", "-"], &claim("big", "2Gi"));
    assert!(
        err(&o).contains("requested: requests.storage=2Gi, used: requests.storage=0, limited: requests.storage=1Gi"),
        "{}",
        err(&o)
    );
    apply(&d, &claim("small", "512Mi"));
    let o = d.kubectl_in(&["create", "-f", "-"], &claim("second", "100Mi"));
    assert!(
        err(&o).contains("limited: local-path.storageclass.storage.k8s.io/persistentvolumeclaims=1"),
        "{}",
        err(&o)
    );
    wait_for(
        &d,
        &["-n", "team", "quota", "objs"],
        "{.status.used.services} {.status.used.count/deployments\\.apps} {.status.used.requests\\.storage}",
        "1 1 512Mi",
    );
    d.kubectl_ok(&["-n", "team", "delete", "service", "s1"]);
    wait_for(&d, &["-n", "team", "quota", "objs"], "{.status.used.services}", "0");
    d.kubectl_ok(&["-n", "team", "create", "service", "clusterip", "s2", "--tcp=80"]);
    // Scopes narrow what a quota counts; a scope that cannot select a resource is refused.
    d.kubectl_ok(&["create", "namespace", "scoped"]);
    let o = d.kubectl(&["-n", "scoped", "create", "quota", "bad", "--hard=cpu=1", "--scopes=BestEffort"]);
    assert!(err(&o).contains("unsupported scope applied to resource"), "{}", err(&o));
    d.kubectl_ok(&["-n", "scoped", "create", "quota", "be", "--hard=pods=1", "--scopes=BestEffort"]);
    let run_in = |name: &str, extra: &[&str]| {
        let mut args = vec!["-n", "scoped", "run", name, "--image=bb:1"];
        args.extend_from_slice(extra);
        args.extend(["--", "sleep", "3600"]);
        d.kubectl(&args)
    };
    assert!(run_in("be1", &[]).status.success());
    let o = run_in("be2", &[]);
    assert!(
        err(&o).contains("exceeded quota: be, requested: pods=1, used: pods=1, limited: pods=1"),
        "{}",
        err(&o)
    );
    let guaranteed = r#"--overrides={"spec":{"containers":[{"name":"g","image":"bb:1","command":["sleep","3600"],"resources":{"requests":{"cpu":"10m"}}}]}}"#;
    let o = run_in("burst", &[guaranteed]);
    assert!(o.status.success(), "a pod that is not BestEffort is not the quota's: {}", err(&o));
    // A pod gone frees its share.
    d.kubectl_ok(&["-n", "team", "delete", "pod", "a", "--grace-period=1"]);
    let t0 = Instant::now();
    while !run("c").status.success() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the quota was not freed");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The one node of a daemon.
fn node_name(d: &Daemon) -> String {
    d.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"])
}

#[test]
fn disruption_budgets_hold_evictions_and_drain_waits_for_them() {
    let d = Daemon::start();
    d.busybox("bb:1");
    apply(&d, &WEB.replace("first", "pdb"));
    rollout_ok(&d, "deployment/web");
    d.kubectl_ok(&["create", "pdb", "web", "--selector=app=web", "--min-available=3"]);
    wait_for(
        &d,
        &["pdb", "web"],
        "{.status.expectedPods} {.status.desiredHealthy} {.status.currentHealthy} {.status.disruptionsAllowed} {.status.conditions[0].reason}",
        "3 3 3 0 InsufficientPods",
    );
    let node = node_name(&d);
    let pods = || d.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"]);
    let before = pods();
    // The budget has no disruption to give: drain retries the 429s until its timeout.
    let o = d.kubectl(&["drain", &node, "--pod-selector=app=web", "--timeout=6s"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{}",
        err(&o)
    );
    assert_eq!(pods(), before, "no pod may go while the budget allows none");
    // One disruption allowed: one pod is evicted (marked as an eviction's target) and its
    // replacement waits on the cordoned node, so the budget is spent and drain waits again.
    d.kubectl_ok(&["patch", "pdb", "web", "--type=merge", "-p", r#"{"spec":{"minAvailable":2}}"#]);
    wait_for(&d, &["pdb", "web"], "{.status.disruptionsAllowed}", "1");
    let o = d.kubectl(&["drain", &node, "--pod-selector=app=web", "--timeout=8s"]);
    assert!(!o.status.success(), "{}", common::text(&o));
    assert!(common::text(&o).contains("evicted"), "{}", common::text(&o));
    let now = pods();
    let kept = before.split(' ').filter(|p| now.split(' ').any(|n| n == *p)).count();
    assert_eq!(kept, 2, "exactly one pod evicted: {before} -> {now}");
    wait_for(&d, &["pdb", "web"], "{.status.currentHealthy} {.status.disruptionsAllowed}", "2 0");
    let pending = d.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--field-selector=status.phase=Pending",
        "-o",
        "name",
    ]);
    assert_eq!(pending.lines().count(), 1, "{pending}");
    // Uncordoned, the replacement runs and the budget has its disruption back.
    d.kubectl_ok(&["uncordon", &node]);
    wait_for(&d, &["pdb", "web"], "{.status.currentHealthy} {.status.disruptionsAllowed}", "3 1");
    // maxUnavailable counts against the Deployment's scale, and follows it.
    d.kubectl_ok(&["delete", "pdb", "web"]);
    d.kubectl_ok(&["create", "pdb", "web", "--selector=app=web", "--max-unavailable=34%"]);
    wait_for(&d, &["pdb", "web"], "{.status.expectedPods} {.status.desiredHealthy}", "3 1");
    d.kubectl_ok(&["scale", "deployment/web", "--replicas=4"]);
    wait_for(&d, &["pdb", "web"], "{.status.expectedPods} {.status.desiredHealthy}", "4 2");
    // Two budgets over one pod: the eviction API does not choose between them.
    d.kubectl_ok(&["create", "pdb", "other", "--selector=app=web", "--min-available=1"]);
    let one = d.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]);
    let o = d.kubectl(&["drain", &node, "--pod-selector=app=web", "--timeout=3s"]);
    assert!(
        err(&o).contains("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."),
        "{}",
        err(&o)
    );
    assert!(pods().contains(&one));
    d.kubectl_ok(&["uncordon", &node]);
    // A status written by a client on create is not believed.
    let o = d.kubectl_in(
        &["create", "-f", "-"],
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: forged}\nspec: {minAvailable: 10, selector: {matchLabels: {app: none}}}\nstatus: {disruptionsAllowed: 5, currentHealthy: 5, desiredHealthy: 0, expectedPods: 5}\n",
    );
    assert!(o.status.success(), "{}", err(&o));
    wait_for(&d, &["pdb", "forged"], "{.status.disruptionsAllowed} {.status.expectedPods}", "0 0");
}

#[test]
fn priority_classes_order_admission_and_preempt_lower_priority_pods() {
    let d = Daemon::start();
    d.busybox("bb:1");
    // The built-in classes, as every cluster has them.
    let pcs = d.kubectl_ok(&["get", "priorityclasses"]);
    assert!(pcs.contains("system-node-critical") && pcs.contains("2000001000"), "{pcs}");
    apply(
        &d,
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: low}\nvalue: 10\n---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: polite}\nvalue: 1000\npreemptionPolicy: Never\n",
    );
    // Admission: an unknown class, and a priority that is not the class's, are refused.
    let pod = |name: &str, class: &str, cpu: i64, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {name}}}}}\nspec:\n  priorityClassName: {class}\n  terminationGracePeriodSeconds: 1\n{extra}  containers:\n  - name: c\n    image: bb:1\n    command: [sh, -c, 'trap \"exit 0\" TERM; sleep 3600 & wait']\n    resources: {{requests: {{cpu: {cpu}m}}}}\n"
        )
    };
    let o = d.kubectl_in(&["create", "-f", "-"], &pod("x", "nope", 10, ""));
    assert!(err(&o).contains("no PriorityClass with name nope was found"), "{}", err(&o));
    let o = d.kubectl_in(&["create", "-f", "-"], &pod("x", "low", 10, "  priority: 5\n"));
    assert!(
        err(&o).contains("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 10"),
        "{}",
        err(&o)
    );
    // A low-priority pod holding most of the node's CPU.
    let cpu = d.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[0].status.allocatable.cpu}"]);
    let milli: i64 = match cpu.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => cpu.parse::<i64>().unwrap() * 1000,
    };
    let (big, half) = (milli * 7 / 10, milli / 2);
    apply(&d, &pod("filler", "low", big, ""));
    wait_for(&d, &["pod", "filler"], "{.status.phase} {.spec.priority}", "Running 10");
    // A pod that will not preempt waits, saying why.
    apply(&d, &pod("waiter", "polite", half, ""));
    let t0 = Instant::now();
    loop {
        let m = d.kubectl_ok(&[
            "get",
            "pod",
            "waiter",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
        ]);
        if m.contains("Insufficient cpu") {
            assert!(m.contains("preemption: not eligible due to preemptionPolicy=Never."), "{m}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    d.kubectl_ok(&["delete", "pod", "waiter", "--grace-period=0"]);
    // A high-priority pod preempts it: the victim is marked and told by whom, the preemptor is
    // nominated and then runs there.
    apply(&d, &pod("vip", "high", half, ""));
    wait_for(&d, &["pod", "vip"], "{.status.phase}", "Running");
    let uid = d.kubectl_ok(&["get", "pod", "vip", "-o", "jsonpath={.metadata.uid}"]);
    let t0 = Instant::now();
    loop {
        let ev = d.kubectl_ok(&[
            "get",
            "events",
            "--field-selector=reason=Preempted",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        if !ev.is_empty() {
            assert!(ev.contains(&format!("Preempted by pod {uid} on node")), "{ev}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no Preempted event");
        std::thread::sleep(Duration::from_millis(200));
    }
    let gone = d.kubectl(&["get", "pod", "filler"]);
    assert!(err(&gone).contains("not found"), "the victim is gone: {}", err(&gone));
    // A lower-priority pod finds no victim above it.
    apply(&d, &pod("late", "low", big, ""));
    let t0 = Instant::now();
    loop {
        let m = d.kubectl_ok(&[
            "get",
            "pod",
            "late",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
        ]);
        if m.contains("Insufficient cpu") {
            assert!(
                m.contains("preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."),
                "{m}"
            );
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(d.kubectl_ok(&["get", "pod", "vip", "-o", "jsonpath={.status.phase}"]), "Running");
    // A global default names itself into pods that name no class; only one may exist.
    apply(
        &d,
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: std}\nvalue: 100\nglobalDefault: true\n",
    );
    let o = d.kubectl_in(
        &["create", "-f", "-"],
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: std2}\nvalue: 50\nglobalDefault: true\n",
    );
    assert!(
        err(&o).contains("PriorityClass std is already marked as default. Only one default can exist"),
        "{}",
        err(&o)
    );
    d.kubectl_ok(&["run", "plain", "--image=bb:1", "--", "sleep", "1"]);
    assert_eq!(
        d.kubectl_ok(&["get", "pod", "plain", "-o", "jsonpath={.spec.priorityClassName} {.spec.priority}"]),
        "std 100"
    );
}
