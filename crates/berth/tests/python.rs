//! The data-science layer (issue 14): images from Python projects without a Dockerfile,
//! through the built `berth` binary against a daemon on a temporary root. Packages come from
//! a package index this test serves on loopback (a wheel it makes itself) and from the base
//! image's own Debian packages; nothing is fetched from outside.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;

/// A PEP 503 index on 127.0.0.1 serving one wheel, `tinylib 1.0` (made here), until dropped.
struct Index {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Index {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn index() -> Index {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("simple/tinylib");
    std::fs::create_dir_all(&pkg).unwrap();
    // A wheel is a zip: the module, its METADATA, WHEEL and RECORD.
    let make = r#"
import sys, zipfile
path = sys.argv[1]
files = {
    "tinylib/__init__.py": "def score(xs, weights):\n    return sum(x * w for x, w in zip(xs, weights))\n",
    "tinylib-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinylib\nVersion: 1.0\n",
    "tinylib-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: berth-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
files["tinylib-1.0.dist-info/RECORD"] = "".join(f"{n},,\n" for n in files) + "tinylib-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(path, "w") as z:
    for n, c in files.items():
        z.writestr(n, c)
"#;
    let o = Command::new("python3")
        .args(["-c", make])
        .arg(pkg.join("tinylib-1.0-py3-none-any.whl"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::errtext(&o));
    let mut child = Command::new("python3")
        .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0", "--directory"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    let port = line
        .split("port ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect(&line)
        .to_string();
    Index {
        child,
        url: format!("http://127.0.0.1:{port}/simple"),
        _dir: dir,
    }
}

const APP: &str = r#"import json
from flask import Flask
import tinylib

app = Flask(__name__)
weights = json.load(open("model.json"))["weights"]

@app.route("/predict")
def predict():
    return {"version": VERSION, "score": tinylib.score([1, 2, 3], weights)}

VERSION = 1
if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
"#;

fn project(dir: &Path, requirements: &str) {
    std::fs::write(dir.join("requirements.txt"), requirements).unwrap();
    std::fs::write(dir.join("app.py"), APP).unwrap();
    std::fs::write(dir.join("model.json"), r#"{"weights": [0.5, 1.0, 2.0]}"#).unwrap();
}

fn build(d: &Daemon, index: &Index, dir: &Path, tag: &str) -> std::process::Output {
    let arg = format!("PIP_INDEX_URL={}", index.url);
    let mut c = d.berth_cmd(&["build", "-t", tag, "--base", "py:1", "--build-arg", &arg]);
    c.arg(dir);
    common::run_timeout(c, None, 600)
}

#[test]
fn a_python_project_builds_without_a_dockerfile_and_rebuilds_on_cached_dependencies() {
    let reg_port = common::free_port();
    let reg = format!("127.0.0.1:{reg_port}");
    let d = Daemon::start_bridged(&["--registry", &reg]);
    d.python_dev_image("py:1");
    let index = index();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), "flask\ntinylib==1.0\n");
    // The Dockerfile it would be built with, to keep.
    let printed = d.berth_ok(&["build", "--print-dockerfile", "--base", "py:1", dir.path().to_str().unwrap()]);
    assert!(printed.contains("FROM py:1\n"), "{printed}");
    let deps = printed.find("COPY requirements.txt /app/").expect(&printed);
    assert!(deps < printed.find("COPY --chown=1000:1000 . /app/").unwrap(), "{printed}");
    assert!(printed.contains("CMD [\"python\", \"app.py\"]"), "{printed}");

    let o = build(&d, &index, dir.path(), "demo:1");
    let out = common::text(&o);
    assert!(o.status.success(), "{out}\n{}", common::errtext(&o));
    assert!(out.contains("Successfully installed tinylib-1.0"), "{out}");
    // The resolved versions are recorded; the app runs as a user, not root.
    let freeze = d.berth_ok(&["run", "--rm", "demo:1", "cat", "/etc/berth/pip-freeze.txt"]);
    assert!(
        freeze.contains("tinylib==1.0") && freeze.to_lowercase().contains("flask=="),
        "{freeze}"
    );
    assert_eq!(d.berth_ok(&["run", "--rm", "demo:1", "id", "-u"]).trim(), "1000");
    // It serves.
    let port = common::free_port();
    let publish = format!("127.0.0.1:{port}:8000");
    let id = d.berth_ok(&["run", "-d", "--name", "demo", "-p", &publish, "demo:1"]);
    let _cleanup = scopeguard(&d, id.trim());
    let url = format!("http://127.0.0.1:{port}/predict");
    let t0 = Instant::now();
    let body = loop {
        if let Some(b) = common::curl(&url) {
            break b;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no answer: {}",
            d.berth_ok(&["logs", "demo"])
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(body.contains("\"score\":8.5") && body.contains("\"version\":1"), "{body}");

    // A code edit rebuilds on the cached dependency layer: pip does not run again.
    std::fs::write(dir.path().join("app.py"), APP.replace("VERSION = 1", "VERSION = 2")).unwrap();
    let o = build(&d, &index, dir.path(), "demo:2");
    let out = common::text(&o);
    assert!(o.status.success(), "{out}\n{}", common::errtext(&o));
    assert!(
        !out.contains("Successfully installed"),
        "the dependencies were installed again:\n{out}"
    );
    assert!(out.contains("Using cache"), "{out}");
    let v2 = d.berth_ok(&["run", "--rm", "demo:2", "python", "-c", "import app; print(app.VERSION)"]);
    assert_eq!(v2.trim(), "2");

    // What went into it: the generated Dockerfile, the base by digest, the build args, the
    // context, the packages pip resolved.
    let prov: serde_json::Value = serde_json::from_str(&d.berth_ok(&["image", "provenance", "--format", "json", "demo:1"])).unwrap();
    assert_eq!(prov["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(prov["predicateType"], "https://slsa.dev/provenance/v1");
    let manifest = d.berth_ok(&["image", "inspect", "-f", "{{json .}}", "demo:1"]);
    let ext = &prov["predicate"]["buildDefinition"]["externalParameters"];
    assert_eq!(
        ext["dockerfile"]["content"].as_str().unwrap().trim_end(),
        printed.trim_end(),
        "{prov:#}"
    );
    assert_eq!(ext["buildArgs"]["PIP_INDEX_URL"], index.url.as_str());
    assert_eq!(ext["context"]["digest"]["sha256"].as_str().map(str::len), Some(64), "{prov:#}");
    let deps = prov["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
    let base = deps.iter().find(|x| x["name"] == "py:1").expect("the base image");
    assert_eq!(base["digest"]["sha256"].as_str().map(str::len), Some(64), "{base}");
    let uris: Vec<&str> = deps.iter().filter_map(|x| x["uri"].as_str()).collect();
    assert!(uris.contains(&"pkg:pypi/tinylib@1.0"), "{uris:?}");
    assert!(uris.iter().any(|u| u.starts_with("pkg:pypi/flask@")), "{uris:?}");
    let summary = d.berth_ok(&["image", "provenance", "demo:1"]);
    assert!(
        summary.contains("tinylib==1.0") && summary.contains("Base images:   py:1"),
        "{summary}\n{manifest}"
    );
    // The SBOM lists the venv's packages and the base's Debian ones.
    let sbom: serde_json::Value =
        serde_json::from_str(&d.berth_ok(&["image", "provenance", "--sbom", "--format", "json", "demo:1"])).unwrap();
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    let purls: Vec<String> = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str().map(String::from))
        .collect();
    assert!(purls.iter().any(|p| p == "pkg:pypi/tinylib@1.0"), "{purls:?}");
    assert!(purls.iter().any(|p| p.starts_with("pkg:deb/debian/python3@")), "{purls:?}");

    // Between the two builds: the source layer and app.py changed, the dependencies did not.
    let diff: serde_json::Value = serde_json::from_str(&d.berth_ok(&["image", "diff", "--format", "json", "demo:1", "demo:2"])).unwrap();
    let status: Vec<&str> = diff["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(status.iter().filter(|s| **s == "added").count(), 1, "{diff:#}");
    assert_eq!(status.iter().filter(|s| **s == "removed").count(), 1, "{diff:#}");
    let files: Vec<(&str, &str)> = diff["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["status"].as_str().unwrap()))
        .collect();
    assert_eq!(files, [("/app/app.py", "modified")], "{diff:#}");
    assert_eq!(diff["packages"], serde_json::json!([]));
    let text = d.berth_ok(&["image", "diff", "demo:1", "demo:2"]);
    assert!(
        text.contains("M /app/app.py  (content)") && text.contains("Packages: 0 changed"),
        "{text}"
    );

    // They travel with the image through Berth's registry, as referrers of its manifest.
    let remote = format!("{reg}/demo:1");
    d.berth_ok(&["tag", "demo:1", &remote]);
    d.berth_ok(&["push", &remote]);
    let digest = d.berth_ok(&["image", "inspect", "-f", "{{index .RepoDigests 0}}", &remote]);
    let digest = digest.trim().rsplit('@').next().unwrap().to_string();
    let listed = common::curl(&format!("http://{reg}/v2/demo/referrers/{digest}")).unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let types: Vec<&str> = listed["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"application/vnd.in-toto+json") && types.contains(&"application/spdx+json"),
        "{listed:#}"
    );
    let other = Daemon::start();
    other.berth_ok(&["pull", &remote]);
    let pulled: serde_json::Value = serde_json::from_str(&other.berth_ok(&["image", "provenance", "--format", "json", &remote])).unwrap();
    assert_eq!(pulled, prov);
    let pulled_sbom: serde_json::Value =
        serde_json::from_str(&other.berth_ok(&["image", "provenance", "--sbom", "--format", "json", &remote])).unwrap();
    assert_eq!(pulled_sbom, sbom);
    // An image nobody built here has none, and says so.
    other.busybox("bb:1");
    let o = other.berth(&["image", "provenance", "bb:1"]);
    assert!(
        !o.status.success() && common::errtext(&o).contains("carries no provenance"),
        "{}",
        common::errtext(&o)
    );
}

#[test]
fn projects_it_cannot_build_say_why() {
    let d = Daemon::start();
    // Nothing recognisable: the files looked for are named.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), "print(1)\n").unwrap();
    let o = d.berth(&["build", dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        common::errtext(&o).contains("looked for requirements.txt, pyproject.toml, environment.yml"),
        "{}",
        common::errtext(&o)
    );
    // A requirement that cannot be installed: pip's own lines, with the file and line.
    d.python_dev_image("py:1");
    let index = index();
    project(dir.path(), "flask\ntinylib==9.9\n");
    let o = build(&d, &index, dir.path(), "bad:1");
    assert!(!o.status.success());
    let all = format!("{}{}", common::text(&o), common::errtext(&o));
    assert!(all.contains("No matching distribution found for tinylib==9.9"), "{all}");
    assert!(
        all.contains("requirements.txt, line 2: tinylib==9.9 could not be installed"),
        "{all}"
    );
    // --base is for Python project builds only.
    std::fs::write(dir.path().join("Dockerfile"), "FROM py:1\n").unwrap();
    let o = d.berth(&["build", "--base", "py:1", dir.path().to_str().unwrap()]);
    assert!(common::errtext(&o).contains("add --python"), "{}", common::errtext(&o));
}

/// Remove the container when the test ends, however it ends.
fn scopeguard<'a>(d: &'a Daemon, id: &str) -> impl Drop + 'a {
    struct Rm<'a>(&'a Daemon, String);
    impl Drop for Rm<'_> {
        fn drop(&mut self) {
            let _ = self.0.berth(&["rm", "-f", &self.1]);
        }
    }
    Rm(d, id.to_string())
}

#[test]
fn berth_deploy_serves_a_project_rolls_it_autoscales_and_undeploys() {
    let d = Daemon::start();
    d.python_dev_image("py:1");
    d.busybox("bb:1");
    let index = index();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("demo");
    std::fs::create_dir(&app).unwrap();
    project(&app, "flask\ntinylib==1.0\n");
    let root = d.root.to_str().unwrap().to_string();
    let pip = format!("PIP_INDEX_URL={}", index.url);
    let deploy = |extra: &[&str]| {
        let mut args = vec![
            "deploy",
            app.to_str().unwrap(),
            "--port",
            "8000",
            "--root",
            &root,
            "--base",
            "py:1",
            "--build-arg",
            &pip,
        ];
        args.extend_from_slice(extra);
        common::run_timeout(d.berth_cmd(&args), None, 600)
    };
    // The manifests, for any cluster: the real API server's dry run takes them.
    let o = d.berth(&[
        "deploy",
        "demo:1",
        "--port",
        "8000",
        "--autoscale",
        "1-3",
        "--dry-run",
        "-o",
        "yaml",
        "--root",
        &root,
    ]);
    let yaml = common::text(&o);
    assert!(o.status.success(), "{}", common::errtext(&o));
    for kind in [
        "kind: Deployment",
        "kind: Service",
        "kind: Ingress",
        "kind: HorizontalPodAutoscaler",
        "host: demo.localhost",
    ] {
        assert!(yaml.contains(kind), "{kind} missing:\n{yaml}");
    }
    let o = d.kubectl_in(&["apply", "--dry-run=server", "-f", "-"], &yaml);
    assert!(o.status.success(), "{}", common::errtext(&o));

    let o = deploy(&["--replicas", "2"]);
    let out = common::text(&o);
    assert!(o.status.success(), "{out}\n{}", common::errtext(&o));
    let http = d.flag("--ingress-http").unwrap();
    let port = http.rsplit_once(':').unwrap().1;
    assert!(
        out.contains("demo is serving demo:") && out.contains(&format!("at http://demo.localhost:{port}/")),
        "{out}"
    );
    assert_eq!(
        d.kubectl_ok(&["get", "deploy", "demo", "-o", "jsonpath={.status.readyReplicas}"]),
        "2"
    );
    let ask = |path: &str| {
        let o = Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "5",
                "-H",
                "Host: demo.localhost",
                &format!("http://{http}{path}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let body = ask("/predict");
    assert!(body.contains("\"version\":1") && body.contains("\"score\":8.5"), "{body}");
    // Through the Service's cluster IP too.
    let ip = d.kubectl_ok(&["get", "svc", "demo", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(common::curl(&format!("http://{ip}/predict")).is_some_and(|b| b.contains("\"version\":1")));

    // Deploying an edited project again rolls it out; --autoscale adds the autoscaler.
    std::fs::write(app.join("app.py"), APP.replace("VERSION = 1", "VERSION = 2")).unwrap();
    let o = deploy(&["--autoscale", "1-3", "--cpu", "50%"]);
    assert!(o.status.success(), "{}\n{}", common::text(&o), common::errtext(&o));
    assert!(ask("/predict").contains("\"version\":2"));
    assert_eq!(
        d.kubectl_ok(&[
            "get",
            "hpa",
            "demo",
            "-o",
            "jsonpath={.spec.minReplicas} {.spec.maxReplicas} {.spec.metrics[0].resource.target.averageUtilization}"
        ]),
        "1 3 50"
    );
    let revisions = d.kubectl_ok(&["rollout", "history", "deploy/demo"]);
    assert!(revisions.contains("2 "), "{revisions}");

    // An image whose container exits at once: its exit code and last lines, not a wait.
    let bad = dir.path().join("crash");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("Dockerfile"),
        "FROM bb:1\nCMD [\"sh\", \"-c\", \"echo model.bin is missing >&2; exit 3\"]\n",
    )
    .unwrap();
    let mut c = d.berth_cmd(&["deploy", bad.to_str().unwrap(), "--port", "80", "--root", &root, "--timeout", "120"]);
    c.arg("--name").arg("crash");
    let o = common::run_timeout(c, None, 180);
    assert!(!o.status.success());
    let e = common::errtext(&o);
    assert!(
        e.contains("the container exited with code 3") && e.contains("model.bin is missing"),
        "{e}"
    );

    // Undeploy leaves nothing of them behind.
    for n in ["demo", "crash"] {
        d.berth_ok(&["undeploy", n, "--root", &root]);
    }
    let t0 = Instant::now();
    loop {
        let left = d.kubectl_ok(&[
            "get",
            "deploy,svc,ingress,hpa,pods",
            "-l",
            "app.kubernetes.io/managed-by=berth",
            "-o",
            "name",
        ]);
        if left.is_empty() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "left behind: {left}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let o = d.berth(&["undeploy", "demo", "--root", &root]);
    assert!(
        common::errtext(&o).contains("no app \"demo\" deployed by berth"),
        "{}",
        common::errtext(&o)
    );
}

#[test]
fn a_notebook_server_runs_the_projects_environment_and_keeps_the_work_on_the_host() {
    let d = Daemon::start_bridged(&[]);
    d.python_dev_image("py:1");
    let index = index();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), "tinylib==1.0\n");
    let pip = format!("PIP_INDEX_URL={}", index.url);
    let mut c = d.berth_cmd(&["notebook", "--base", "py:1", "--build-arg", &pip, "--name", "nb"]);
    c.arg(dir.path()).stdout(Stdio::piped()).stderr(Stdio::piped());
    struct Server<'a>(Child, &'a Daemon);
    impl Drop for Server<'_> {
        fn drop(&mut self) {
            let _ = self.1.berth(&["rm", "-f", "nb"]);
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Server(c.spawn().unwrap(), &d);
    let mut out = std::io::BufReader::new(server.0.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("Jupyter for") {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let mut e = String::new();
            let _ = std::io::Read::read_to_string(server.0.stderr.as_mut().unwrap(), &mut e);
            panic!("berth notebook ended before printing its URL: {e}");
        }
    }
    let url = line.split_whitespace().last().unwrap().to_string();
    let (base, token) = url.split_once("/?token=").unwrap();
    let api = |path: &str, extra: &[&str]| {
        let o = Command::new("curl")
            .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("{base}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.parse::<u16>().unwrap_or(0), body.to_string())
    };
    let auth = format!("Authorization: token {token}");
    let t0 = Instant::now();
    loop {
        let (code, body) = api("/api/contents", &["-H", &auth]);
        if code == 200 {
            assert!(
                body.contains("app.py") && body.contains("model.json"),
                "the project is the server's directory: {body}"
            );
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the server did not answer: {code} {body}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(api("/api/contents", &[]).0, 403, "the token is required");
    // A notebook saved through the server is a file in the project, on the host.
    let nb = r#"{"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}"#;
    let (code, body) = api(
        "/api/contents/work.ipynb",
        &["-X", "PUT", "-H", &auth, "-H", "Content-Type: application/json", "-d", nb],
    );
    assert!(code == 201 || code == 200, "{code} {body}");
    assert!(dir.path().join("work.ipynb").is_file());
    // The server's Python is the environment's: the project's packages import.
    let o = d.berth(&["exec", "nb", "python", "-c", "import tinylib, notebook, sys; print(sys.prefix)"]);
    assert_eq!(common::text(&o).trim(), "/opt/venv", "{}", common::errtext(&o));
    // Stopped, the container goes and the work stays.
    d.berth_ok(&["stop", "nb"]);
    let t0 = Instant::now();
    while server.0.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "berth notebook did not end with its container"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.berth_ok(&["ps", "-aq", "--filter", "name=nb"]).trim(), "");
    assert!(dir.path().join("work.ipynb").is_file());
}

/// CDI specs for the GPU tests, in a directory of their own: two "GPUs" that are ordinary
/// device nodes (`/dev/zero` and `/dev/full`, so reading and writing them shows which one a
/// container got), environment and a library directory for every GPU, a hook that records on
/// the host that it ran, and a YAML spec of another kind.
fn cdi_specs(dir: &Path, hook_mark: &Path) {
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("lib/libcuda.so.1"), "not really cuda\n").unwrap();
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let gpu = serde_json::json!({
        "cdiVersion": "0.6.0",
        "kind": "nvidia.com/gpu",
        "containerEdits": {
            "env": ["CDI_VENDOR=berth-test"],
            "mounts": [{"hostPath": dir.join("lib"), "containerPath": "/usr/local/cuda/lib", "options": ["ro", "nosuid", "nodev", "bind"]}],
            "hooks": [{"hookName": "createRuntime", "path": "/bin/sh", "args": ["sh", "-c", format!("echo hooked >> {}", hook_mark.display())]}]
        },
        "devices": [
            {"name": "0", "containerEdits": {"env": ["GPU_0=yes"], "deviceNodes": [{"path": "/dev/nvidia0", "hostPath": "/dev/zero"}]}},
            {"name": "1", "containerEdits": {"env": ["GPU_1=yes"], "deviceNodes": [{"path": "/dev/nvidia1", "hostPath": "/dev/full", "permissions": "rw"}]}}
        ]
    });
    std::fs::write(specs.join("gpu.json"), serde_json::to_vec_pretty(&gpu).unwrap()).unwrap();
    std::fs::write(
        specs.join("fpga.yaml"),
        "cdiVersion: 0.5.0\nkind: example.com/fpga\ndevices:\n  - name: a\n    containerEdits:\n      deviceNodes:\n        - {path: /dev/fpga, hostPath: /dev/null, permissions: rw}\n",
    )
    .unwrap();
}

/// What `ls /dev` lists of the GPU nodes, in a container run with `args`.
fn gpu_nodes(d: &Daemon, args: &[&str]) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["bb:1", "sh", "-c", "ls /dev | grep nvidia | tr '\\n' ' '"]);
    d.docker_ok(&a).trim().to_string()
}

#[test]
fn gpus_and_cdi_devices_reach_containers_through_docker_and_compose() {
    let t = tempfile::tempdir().unwrap();
    let mark = t.path().join("hook-ran");
    cdi_specs(t.path(), &mark);
    let specs = t.path().join("specs");
    let d = Daemon::start_with(&["--no-kube", "--cdi-spec-dir", specs.to_str().unwrap()]);
    d.busybox("bb:1");
    let info = d.docker_ok(&["info", "--format", "{{json .CDISpecDirs}}"]);
    assert_eq!(info.trim(), format!("[\"{}\"]", specs.display()));

    // --gpus all: both devices, the spec's edits and each device's.
    let out = d.docker_ok(&[
        "run", "--rm", "--gpus", "all", "bb:1", "sh", "-c",
        "head -c 3 /dev/nvidia0 | od -An -tx1; echo x > /dev/nvidia1 || echo full; echo $CDI_VENDOR $GPU_0 $GPU_1; cat /usr/local/cuda/lib/libcuda.so.1; touch /usr/local/cuda/lib/x 2>/dev/null || echo read-only",
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["00 00 00", "full", "berth-test yes yes", "not really cuda", "read-only"],
        "{out}"
    );
    assert!(
        std::fs::read_to_string(&mark).unwrap().contains("hooked"),
        "the createRuntime hook ran"
    );
    assert_eq!(gpu_nodes(&d, &["--gpus", "1"]), "nvidia0");
    assert_eq!(gpu_nodes(&d, &["--gpus", "\"device=1\""]), "nvidia1");
    assert_eq!(gpu_nodes(&d, &["--device", "nvidia.com/gpu=1"]), "nvidia1");
    assert_eq!(gpu_nodes(&d, &[]), "", "no devices unless asked for");
    // Berth's own CLI takes the same flags.
    let o = d.berth_ok(&[
        "run",
        "--rm",
        "--gpus",
        "all",
        "bb:1",
        "sh",
        "-c",
        "echo $GPU_0$GPU_1; ls /dev | grep -c nvidia",
    ]);
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["yesyes", "2"], "{o}");

    // A CDI device of another kind (from the YAML spec), and a host device with read access only.
    let fpga = d.docker_ok(&[
        "run",
        "--rm",
        "--device",
        "example.com/fpga=a",
        "bb:1",
        "sh",
        "-c",
        "test -c /dev/fpga && echo hi > /dev/fpga && echo ok",
    ]);
    assert_eq!(fpga.trim(), "ok");
    // (/dev/fuse: a node outside Docker's default device rules, harmless to open.)
    let ro = d.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/fuse:/dev/myfuse:r",
        "bb:1",
        "sh",
        "-c",
        ": < /dev/myfuse && echo opened; : > /dev/myfuse",
    ]);
    assert!(!ro.status.success());
    assert_eq!(common::text(&ro).trim(), "opened");
    assert!(common::errtext(&ro).contains("Operation not permitted"), "{}", common::errtext(&ro));

    // Errors name what is missing.
    let e = d.docker(&["run", "--rm", "--gpus", "3", "bb:1", "true"]);
    assert!(
        common::errtext(&e).contains("requested 3 GPUs but nvidia.com/gpu has only 2"),
        "{}",
        common::errtext(&e)
    );
    let e = d.docker(&["run", "--rm", "--device", "example.com/fpga=zz", "bb:1", "true"]);
    assert!(
        common::errtext(&e).contains("unresolvable CDI devices example.com/fpga=zz"),
        "{}",
        common::errtext(&e)
    );
    let e = d.docker(&["run", "--rm", "--device", "/dev/berth-no-such", "bb:1", "true"]);
    assert!(
        common::errtext(&e).contains("error gathering device information"),
        "{}",
        common::errtext(&e)
    );

    // Compose: deploy.resources.reservations.devices and a CDI name in devices.
    let proj = t.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(
        proj.join("compose.yaml"),
        "services:\n  train:\n    image: bb:1\n    network_mode: none\n    command: [sh, -c, 'ls /dev | grep -E \"nvidia|fpga\" | tr \"\\n\" \" \"']\n    devices: [example.com/fpga=a]\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - {driver: nvidia, count: 1, capabilities: [gpu]}\n",
    )
    .unwrap();
    let mut c = d.berth_cmd(&["compose", "run", "--rm", "train"]);
    c.current_dir(&proj);
    let o = common::run_timeout(c, None, 60);
    assert!(o.status.success(), "{}", common::errtext(&o));
    assert_eq!(common::text(&o).trim(), "fpga nvidia0");

    // Without a GPU spec, Docker's own answer.
    std::fs::remove_file(specs.join("gpu.json")).unwrap();
    let e = d.docker(&["run", "--rm", "--gpus", "all", "bb:1", "true"]);
    assert!(
        common::errtext(&e).contains("could not select device driver \"\" with capabilities: [[gpu]]"),
        "{}",
        common::errtext(&e)
    );
}

#[test]
fn pods_get_gpus_as_an_extended_resource() {
    let t = tempfile::tempdir().unwrap();
    let mark = t.path().join("hook-ran");
    cdi_specs(t.path(), &mark);
    let specs = t.path().join("specs");
    let d = Daemon::start_with(&["--cdi-spec-dir", specs.to_str().unwrap()]);
    d.busybox("bb:1");
    let mut cap = String::new();
    for _ in 0..100 {
        cap = d.kubectl_ok(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[0].status.allocatable.nvidia\\.com/gpu} {.items[0].status.capacity.example\\.com/fpga}",
        ]);
        if cap == "2 1" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cap, "2 1");
    let pod = |name: &str, gpus: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: bb:1\n    command: [sh, -c, 'ls /dev | grep nvidia; echo $GPU_0$GPU_1; exec sleep 1000']\n    resources: {{limits: {{nvidia.com/gpu: \"{gpus}\"}}}}\n"
        )
    };
    d.kubectl_in(&["apply", "-f", "-"], &pod("a", "1"));
    let wait_running = |name: &str| {
        for _ in 0..200 {
            if d.kubectl_ok(&["get", "pod", name, "-o", "jsonpath={.status.phase}"]) == "Running" {
                let logs = d.kubectl_ok(&["logs", name]);
                if logs.lines().count() >= 2 {
                    return logs;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("pod {name} did not run: {}", d.kubectl_ok(&["describe", "pod", name]));
    };
    let a = wait_running("a");
    d.kubectl_in(&["apply", "-f", "-"], &pod("b", "1"));
    let b = wait_running("b");
    let mut got = [a.lines().next().unwrap().to_string(), b.lines().next().unwrap().to_string()];
    got.sort();
    assert_eq!(got, ["nvidia0", "nvidia1"], "each pod its own GPU: {a:?} {b:?}");
    assert_eq!(a.lines().nth(1).unwrap().trim(), "yes");

    // No third GPU: the scheduler says why.
    d.kubectl_in(&["apply", "-f", "-"], &pod("c", "1"));
    let mut msg = String::new();
    for _ in 0..100 {
        msg = d.kubectl_ok(&[
            "get",
            "pod",
            "c",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
        ]);
        if !msg.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(msg.contains("Insufficient nvidia.com/gpu"), "{msg}");
    // When one is freed, the waiting pod gets it.
    d.kubectl_ok(&["delete", "pod", "a", "--wait=true"]);
    let c = wait_running("c");
    assert_eq!(
        c.lines().next().unwrap(),
        got.iter().find(|g| **g == a.lines().next().unwrap()).unwrap()
    );

    // Two containers of one pod get one GPU each, not the same one.
    d.kubectl_ok(&["delete", "pod", "b", "c", "--wait=true"]);
    let duo = "apiVersion: v1\nkind: Pod\nmetadata: {name: duo}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: first\n    image: bb:1\n    command: [sh, -c, 'ls /dev | grep nvidia; exec sleep 1000']\n    resources: {limits: {nvidia.com/gpu: \"1\"}}\n  - name: second\n    image: bb:1\n    command: [sh, -c, 'ls /dev | grep nvidia; exec sleep 1000']\n    resources: {limits: {nvidia.com/gpu: \"1\"}}\n";
    let o = d.kubectl_in(&["apply", "-f", "-"], duo);
    assert!(o.status.success(), "{}", common::errtext(&o));
    let mut pair = Vec::new();
    for _ in 0..200 {
        pair = ["first", "second"]
            .iter()
            .map(|c| d.kubectl(&["logs", "duo", "-c", c]).stdout)
            .map(|o| String::from_utf8_lossy(&o).trim().to_string())
            .collect();
        if pair.iter().all(|l| !l.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    pair.sort();
    assert_eq!(
        pair,
        ["nvidia0", "nvidia1"],
        "each container its own GPU: {}",
        d.kubectl_ok(&["describe", "pod", "duo"])
    );

    // Extended resources are whole and cannot be overcommitted.
    let bad = d.kubectl_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n  - name: c\n    image: bb:1\n    resources: {requests: {nvidia.com/gpu: \"1\"}, limits: {nvidia.com/gpu: \"2\"}}\n",
    );
    assert!(
        !bad.status.success(),
        "{} {}",
        common::text(&bad),
        d.kubectl_ok(&["get", "pod", "bad", "-o", "json"])
    );
    assert!(
        common::errtext(&bad).contains("must be equal to nvidia.com/gpu limit of 2"),
        "{}",
        common::errtext(&bad)
    );

    // berth deploy --gpu writes the same limit.
    let y = d.berth_ok(&["deploy", "bb:1", "--port", "80", "--gpu", "1", "--dry-run", "-o", "yaml"]);
    assert!(y.contains("nvidia.com/gpu: '1'") || y.contains("nvidia.com/gpu: \"1\""), "{y}");
}

#[test]
fn the_dashboard_shows_and_acts_in_headless_chromium() {
    let d = Daemon::start();
    d.busybox("bb:1");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "bb:1",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "burner",
        "--cpus",
        "0.5",
        "bb:1",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    // A compose project.
    let proj = tempfile::tempdir().unwrap();
    std::fs::write(
        proj.path().join("compose.yaml"),
        "services:\n  web:\n    image: bb:1\n    network_mode: none\n    command: [sleep, '1000']\n",
    )
    .unwrap();
    let mut c = d.berth_cmd(&["compose", "-p", "shop", "up", "-d"]);
    c.current_dir(proj.path());
    let o = common::run_timeout(c, None, 60);
    assert!(o.status.success(), "{}", common::errtext(&o));
    // A deployment at its second revision (env V=1, then V=2), and its service.
    d.kubectl_in(
        &["apply", "-f", "-"],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n      - name: c\n        image: bb:1\n        command: [sh, -c, 'echo hello from $HOSTNAME; exec sleep 1000']\n        env: [{name: V, value: '1'}]\n",
    );
    d.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    d.kubectl_ok(&["set", "env", "deploy/web", "V=2"]);
    d.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    d.kubectl_ok(&["expose", "deploy/web", "--port", "80"]);
    // A pod no node can take.
    d.kubectl_ok(&[
        "run",
        "hungry",
        "--image=bb:1",
        "--overrides",
        r#"{"spec": {"containers": [{"name": "hungry", "image": "bb:1", "resources": {"requests": {"cpu": "64"}}}]}}"#,
    ]);

    let url = d.berth_ok(&["dashboard"]).trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/?token="), "{url}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dashboard_ui.py");
    // The browser's profile in a directory of the test's; its processes (chromedriver, chromium)
    // carry a marker in their environment, by which they are killed even when the test fails.
    let browser = tempfile::tempdir().unwrap();
    let _browser_guard = Marked(format!("BERTH_UI_TEST={}", browser.path().display()));
    let mut py = Command::new("/usr/bin/python3");
    py.arg(script)
        .env("BERTH_UI_TEST", browser.path())
        .env("DASH_URL", &url)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.join("docker-config"))
        .env("KUBECONFIG", d.kubeconfig());
    let o = common::run_timeout(py, None, 300);
    assert!(
        o.status.success(),
        "the browser test failed:\n{}\n{}",
        common::text(&o),
        common::errtext(&o)
    );
    eprintln!("dashboard timings: {}", common::text(&o).lines().last().unwrap_or(""));

    // Off with a flag.
    let off = Daemon::start_with(&["--no-kube", "--dashboard", "none"]);
    let e = off.berth(&["dashboard"]);
    assert!(!e.status.success());
    assert!(common::errtext(&e).contains("--dashboard none"), "{}", common::errtext(&e));
    // (On a root of its own and bounded in time: were the address accepted, this would run a daemon.)
    let root = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.args(["daemon", "--dashboard", "0.0.0.0:7070", "--no-kube", "--bridge", "none", "--root"])
        .arg(root.path().join("root"))
        .arg("--exec-root")
        .arg(root.path().join("run"));
    let bad = common::run_timeout(c, None, 20);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("only on a loopback address"));
}

/// Kills, when dropped, every process whose environment holds this `NAME=VALUE`.
struct Marked(String);

impl Drop for Marked {
    fn drop(&mut self) {
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if env.split(|b| *b == 0).any(|kv| kv == self.0.as_bytes()) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}
