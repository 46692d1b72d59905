//! Builder integration tests: real Dockerfiles built by a real `berth daemon` through `berth build`,
//! the docker CLI's classic builder and docker-py, and the results run.

mod common;

use std::path::Path;

use common::{errtext, text, Daemon};

fn write(dir: &Path, name: &str, content: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A static HTTP server on a free loopback port (python3 -m http.server), stopped on drop.
struct Server {
    child: std::process::Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string()])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed().as_secs() < 10, "http.server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Count lines of a build's output containing `needle`.
fn count(out: &str, needle: &str) -> usize {
    out.lines().filter(|l| l.contains(needle)).count()
}

fn build_id(d: &Daemon, args: &[&str]) -> (String, String) {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    let o = d.berth(&a);
    let out = format!("{}{}", text(&o), errtext(&o));
    assert!(o.status.success(), "berth build {args:?} failed:\n{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Built ").and_then(|r| r.split_whitespace().next()))
        .unwrap_or_else(|| panic!("no image ID in:\n{out}"))
        .to_string();
    (id, out)
}

const MULTISTAGE: &str = r#"# syntax=docker/dockerfile:1
# escape=\
ARG BASE=bb
FROM ${BASE} AS builder
ARG GREETING=hello
WORKDIR /src
COPY app.txt ./
RUN echo "$GREETING from build" > out.txt \
 # a comment inside a continued line
 && cat app.txt >> out.txt
RUN <<EOF
echo heredoc > /src/here.txt
EOF

FROM bb
ENV APP=/app MODE="fast mode"
COPY --from=builder /src/out.txt /src/here.txt ${APP}/
COPY --chmod=755 <<EOF /usr/local/bin/hello
#!/bin/sh
echo "hi from $APP"
EOF
COPY data/ /data/
LABEL org.example.name="demo" org.example.stage=final
EXPOSE 8080 53/udp
STOPSIGNAL SIGINT
USER 1000:1000
CMD ["sh", "-c", "cat /app/out.txt /app/here.txt; echo $MODE"]
"#;

fn multistage_context(dir: &Path) {
    write(dir, "Dockerfile", MULTISTAGE);
    write(dir, "app.txt", "app v1\n");
    write(dir, "data/keep.log", "kept\n");
    write(dir, "data/secret.log", "never sent\n");
    write(dir, "data/sub/deep.txt", "deep\n");
    write(dir, ".dockerignore", "**/*.log\n!data/keep.log\n");
}

#[test]
fn berth_build_multistage_cache_and_reproducibility() {
    let d = Daemon::start();
    d.busybox("bb");
    let ctx = tempfile::tempdir().unwrap();
    multistage_context(ctx.path());
    let c = ctx.path().to_str().unwrap();

    // Cold build: every step runs.
    let (id1, out) = build_id(&d, &["-t", "demo:1", "--build-arg", "GREETING=hey", c]);
    assert!(out.contains("Step 1/"), "{out}");
    assert_eq!(count(&out, "Using cache"), 0, "{out}");
    assert!(out.contains("Running in"), "{out}");

    // The result runs, with the stage's config.
    let run = d.berth_ok(&["run", "--rm", "demo:1"]);
    assert_eq!(run, "hey from build\napp v1\nheredoc\nfast mode", "{run}");
    assert_eq!(d.berth_ok(&["run", "--rm", "demo:1", "hello"]), "hi from /app");
    assert_eq!(d.berth_ok(&["run", "--rm", "demo:1", "id", "-u"]), "1000");
    let files = d.berth_ok(&["run", "--rm", "demo:1", "find", "/data", "-type", "f"]);
    let mut files: Vec<&str> = files.lines().collect();
    files.sort();
    assert_eq!(files, ["/data/keep.log", "/data/sub/deep.txt"], ".dockerignore with an exception");
    let mode = d.berth_ok(&["run", "--rm", "demo:1", "stat", "-c", "%a %u", "/usr/local/bin/hello"]);
    assert_eq!(mode, "755 0");
    let fmt = "{{.Config.User}}|{{.Config.StopSignal}}|{{json .Config.Labels}}|{{json .Config.ExposedPorts}}|{{.Created}}";
    let info = d.berth_ok(&["image", "inspect", "-f", fmt, "demo:1"]);
    assert_eq!(
        info,
        r#"1000:1000|SIGINT|{"org.example.name":"demo","org.example.stage":"final"}|{"53/udp":{},"8080/tcp":{}}|1970-01-01T00:00:00Z"#
    );
    let mtime = d.berth_ok(&["run", "--rm", "demo:1", "stat", "-c", "%Y", "/app/out.txt", "/data/sub/deep.txt"]);
    assert_eq!(mtime, "0\n0", "file times in layers come from the default epoch");
    // Intermediate images are hidden from `images`, shown with -a.
    let listed = d.berth_ok(&["images", "-q"]).lines().count();
    let all = d.berth_ok(&["images", "-a", "-q"]).lines().count();
    assert!(
        all > listed,
        "images -a ({all}) should show the build's intermediate images beyond {listed}"
    );

    // Warm rebuild: every filesystem step is a cache hit, nothing runs, same image.
    let (id2, out) = build_id(&d, &["-t", "demo:1", "--build-arg", "GREETING=hey", c]);
    assert_eq!(id2, id1, "{out}");
    assert_eq!(count(&out, "Using cache"), 6, "{out}");
    assert!(!out.contains("Running in"), "{out}");

    // A changed build arg re-runs from the first step that uses it.
    let (id3, out) = build_id(&d, &["-t", "demo:arg", "--build-arg", "GREETING=yo", c]);
    assert_ne!(id3, id1);
    assert_eq!(
        count(&out, "Using cache"),
        1,
        "only COPY app.txt comes before the arg is used: {out}"
    );

    // Changing one file re-runs its COPY and what follows; the content, not the mtime, is the key.
    write(ctx.path(), "app.txt", "app v2\n");
    let (id4, out) = build_id(&d, &["-t", "demo:2", "--build-arg", "GREETING=hey", c]);
    assert_ne!(id4, id1);
    assert_eq!(count(&out, "Using cache"), 0, "everything from COPY app.txt on runs again: {out}");
    assert_eq!(
        d.berth_ok(&["run", "--rm", "demo:2", "cat", "/app/out.txt"]),
        "hey from build\napp v2"
    );
    write(ctx.path(), "app.txt", "app v1\n");
    let (id5, out) = build_id(&d, &["--build-arg", "GREETING=hey", c]);
    assert_eq!(id5, id1, "same content again: {out}");
    assert_eq!(count(&out, "Using cache"), 6, "{out}");

    // Reproducible: --no-cache gives the same ID, also from a copy with other file times.
    let (id6, out) = build_id(&d, &["--no-cache", "--build-arg", "GREETING=hey", c]);
    assert_eq!(id6, id1, "{out}");
    assert_eq!(count(&out, "Using cache"), 0, "{out}");
    let copy = tempfile::tempdir().unwrap();
    multistage_context(copy.path());
    let st = std::process::Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(copy.path().join("app.txt"))
        .arg(copy.path().join("data/sub/deep.txt"))
        .status()
        .unwrap();
    assert!(st.success());
    let (id7, _) = build_id(&d, &["--no-cache", "--build-arg", "GREETING=hey", copy.path().to_str().unwrap()]);
    assert_eq!(id7, id1, "a copied context with other mtimes builds the same image");

    // The context sent as a tar (as docker sends it) builds the same image as the local directory.
    let mut cmd = d.berth_cmd(&["build", "-q", "--build-arg", "GREETING=hey", c]);
    cmd.env("BERTH_BUILD_SEND_CONTEXT", "1");
    let o = common::run_timeout(cmd, None, 120);
    assert!(o.status.success(), "{}", errtext(&o));
    assert_eq!(text(&o), id1);

    // SOURCE_DATE_EPOCH moves every time; --timestamp now opts out of reproducibility.
    let mut cmd = d.berth_cmd(&["build", "-q", "--build-arg", "GREETING=hey", c]);
    cmd.env("SOURCE_DATE_EPOCH", "1700000000");
    let o = common::run_timeout(cmd, None, 120);
    assert!(o.status.success(), "{}", errtext(&o));
    let id8 = text(&o);
    assert_ne!(id8, id1);
    assert_eq!(
        d.berth_ok(&["image", "inspect", "-f", "{{.Created}}", &id8]),
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(d.berth_ok(&["run", "--rm", &id8, "stat", "-c", "%Y", "/app/out.txt"]), "1700000000");
    let (id9, _) = build_id(&d, &["--timestamp", "now", "--build-arg", "GREETING=hey", c]);
    let created = d.berth_ok(&["image", "inspect", "-f", "{{.Created}}", &id9]);
    assert!(!created.starts_with("1970") && !created.starts_with("2023"), "{created}");

    // --target stops at a stage.
    let (_, _) = build_id(&d, &["-t", "demo:builder", "--target", "builder", c]);
    assert_eq!(
        d.berth_ok(&["run", "--rm", "demo:builder", "cat", "/src/out.txt"]),
        "hello from build\napp v1"
    );

    // No build containers are left behind.
    assert_eq!(d.berth_ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn build_errors_are_clear_and_tag_nothing() {
    let d = Daemon::start();
    d.busybox("bb");
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path().to_str().unwrap();

    // A failing RUN shows its output and exit code; no image is tagged.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM bb\nRUN echo before-fail && exit 3\nCMD [\"true\"]\n",
    );
    let o = d.berth(&["build", "-t", "bad:1", c]);
    let out = format!("{}{}", text(&o), errtext(&o));
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("before-fail"), "{out}");
    assert!(out.contains("returned a non-zero code: 3"), "{out}");
    assert!(!d.berth(&["image", "inspect", "bad:1"]).status.success());
    // As Docker leaves it, the failed step's container stays for inspection; --force-rm removes it.
    let left = d.berth_ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(left.starts_with("Exited (3)") && left.lines().count() == 1, "{left}");
    d.berth_ok(&["rm", "-f", &d.berth_ok(&["ps", "-a", "-q"])]);
    let o = d.berth(&["build", "--force-rm", "-t", "bad:1", c]);
    assert!(!o.status.success());
    assert_eq!(
        d.berth_ok(&["ps", "-a", "-q"]),
        "",
        "--force-rm removes the failed step's container"
    );
    // Same through the docker CLI's classic builder, which exits with the step's code.
    let o = d.docker(&["build", "--force-rm", "-t", "bad:2", c]);
    let out = format!("{}{}", text(&o), errtext(&o));
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("returned a non-zero code: 3"), "{out}");
    assert!(!d.docker(&["image", "inspect", "bad:2"]).status.success());

    // Parse errors name the line.
    write(ctx.path(), "Dockerfile", "FROM bb\nFROBNICATE the thing\n");
    let o = d.berth(&["build", c]);
    let err = errtext(&o);
    assert!(!o.status.success());
    assert!(err.contains("unknown instruction") && err.contains(":2:"), "{err}");

    // A missing COPY source names the file and line.
    write(ctx.path(), "Dockerfile", "FROM bb\n\nCOPY missing.txt /x\n");
    let o = d.berth(&["build", c]);
    let err = errtext(&o);
    assert!(!o.status.success());
    assert!(err.contains("missing.txt") && err.contains("Dockerfile:3"), "{err}");

    // A base image that is not here.
    write(ctx.path(), "Dockerfile", "FROM nosuch/image:1\n");
    let err = errtext(&d.berth(&["build", c]));
    assert!(err.contains("nosuch/image:1"), "{err}");

    // An unknown target.
    write(ctx.path(), "Dockerfile", "FROM bb AS one\n");
    let err = errtext(&d.berth(&["build", "--target", "two", c]));
    assert!(err.contains("two") && err.contains("could not be found"), "{err}");

    // The help states the reproducibility default.
    let help = d.berth_ok(&["build", "--help"]);
    assert!(
        help.contains("SOURCE_DATE_EPOCH") && help.contains("1970-01-01T00:00:00Z"),
        "{help}"
    );

    // The daemon is still fine.
    assert_eq!(d.berth_ok(&["run", "--rm", "bb", "echo", "alive"]), "alive");
}

#[test]
fn docker_cli_and_docker_py_build() {
    let d = Daemon::start();
    d.busybox("bb");
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path().to_str().unwrap();
    // An archive ADDed is extracted; a plain file is not.
    let mut tarball = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_cksum();
    tarball.append_data(&mut h, "inner/file.txt", &b"inside"[..]).unwrap();
    let tarball = tarball.into_inner().unwrap();
    std::fs::write(ctx.path().join("bundle.tar"), &tarball).unwrap();
    write(ctx.path(), "plain.txt", "plain\n");
    // ADD of a URL, served on loopback.
    let web = tempfile::tempdir().unwrap();
    write(web.path(), "remote.txt", "from the web\n");
    let server = Server::start(web.path());
    write(
        ctx.path(),
        "build.Dockerfile",
        &"FROM bb AS base\nARG WHO\nRUN echo \"built by $WHO\" > /who\n\
         FROM base AS final\nADD bundle.tar /opt/\nADD --chown=12:34 plain.txt /opt/plain.txt\n\
         ADD http://127.0.0.1:{port}/remote.txt /opt/\n\
         ENTRYPOINT [\"cat\"]\nCMD [\"/who\"]\n"
            .replace("{port}", &server.port.to_string()),
    );
    let out = d.docker_ok(&[
        "build",
        "-f",
        &format!("{c}/build.Dockerfile"),
        "--build-arg",
        "WHO=docker",
        "-t",
        "dk:1",
        c,
    ]);
    assert!(
        out.contains("Successfully tagged dk:1") || out.contains("Successfully built"),
        "{out}"
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "dk:1"]), "built by docker");
    assert_eq!(d.docker_ok(&["run", "--rm", "dk:1", "/opt/inner/file.txt"]), "inside");
    let owner = d.docker_ok(&["run", "--rm", "--entrypoint", "stat", "dk:1", "-c", "%u:%g", "/opt/plain.txt"]);
    assert_eq!(owner, "12:34");
    let remote = d.docker_ok(&["run", "--rm", "--entrypoint", "stat", "dk:1", "-c", "%a", "/opt/remote.txt"]);
    assert_eq!(remote, "600");
    assert_eq!(d.docker_ok(&["run", "--rm", "dk:1", "/opt/remote.txt"]), "from the web");
    // -q prints only the ID.
    let q = d.docker_ok(&[
        "build",
        "-q",
        "-f",
        &format!("{c}/build.Dockerfile"),
        "--build-arg",
        "WHO=docker",
        c,
    ]);
    assert!(q.starts_with("sha256:") && q.lines().count() == 1, "{q}");

    // docker-py's images.build, then the image runs.
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
img, logs = c.images.build(path="{c}", dockerfile="build.Dockerfile", tag="py:1", buildargs={{"WHO": "python"}}, rm=True)
assert "py:1" in img.tags, img.tags
assert c.containers.run("py:1", remove=True) == b"built by python\n"
# A Dockerfile that is not there fails before the build says anything: an HTTP error, as Docker
# answers it (docker-py raises APIError, not BuildError).
try:
    c.images.build(path="{c}", dockerfile="nope.Dockerfile")
    raise SystemExit("expected an APIError")
except docker.errors.APIError as e:
    assert "Cannot locate specified Dockerfile: nope.Dockerfile" in str(e), str(e)
print("ok")
"#,
        host = d.host(),
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", &script]);
    let o = common::run_timeout(cmd, None, 120);
    assert!(o.status.success(), "docker-py failed:\n{}\n{}", text(&o), errtext(&o));
    assert_eq!(text(&o), "ok");
}

#[test]
fn scratch_onbuild_metadata_and_the_docker_default_builder() {
    let d = Daemon::start();
    d.busybox("bb");
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path().to_str().unwrap();
    // FROM scratch, COPY --from an image, SHELL, exec-form RUN, and metadata instructions.
    write(
        ctx.path(),
        "Dockerfile",
        r#"FROM scratch
COPY --from=bb /bin/busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
SHELL ["/bin/sh", "-e", "-c"]
RUN echo "shell is $0" > /shell.txt
ONBUILD RUN echo triggered > /onbuild.txt
HEALTHCHECK --interval=5s --retries=2 CMD ["true"]
VOLUME ["/data"]
MAINTAINER someone@example.com
CMD cat /shell.txt
"#,
    );
    let (_, _) = build_id(&d, &["-t", "base:1", "--label", "tier=base", c]);
    assert_eq!(d.berth_ok(&["run", "--rm", "base:1"]), "shell is /bin/sh");
    let fmt = "{{.Author}}|{{json .Config.Healthcheck}}|{{json .Config.Volumes}}|{{json .Config.OnBuild}}|{{json .Config.Cmd}}|{{.Config.Labels.tier}}";
    assert_eq!(
        d.berth_ok(&["image", "inspect", "-f", fmt, "base:1"]),
        r#"someone@example.com|{"Interval":5000000000,"Retries":2,"Test":["CMD","true"]}|{"/data":{}}|["RUN echo triggered > /onbuild.txt"]|["/bin/sh","-e","-c","cat /shell.txt"]|base"#
    );
    // A child image runs the ONBUILD trigger; the docker CLI's default (no DOCKER_BUILDKIT, no buildx)
    // falls back to the classic builder against Berth.
    let child = tempfile::tempdir().unwrap();
    write(child.path(), "Dockerfile", "FROM base:1\nRUN echo child > /child.txt\n");
    let mut cmd = d.docker_cmd(&["build", "-t", "child:1", child.path().to_str().unwrap()]);
    cmd.env_remove("DOCKER_BUILDKIT");
    let o = common::run_timeout(cmd, None, 120);
    assert!(o.status.success(), "{}\n{}", text(&o), errtext(&o));
    assert_eq!(
        d.docker_ok(&["run", "--rm", "child:1", "cat", "/onbuild.txt", "/child.txt"]),
        "triggered\nchild"
    );
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", "{{json .Config.OnBuild}}", "child:1"]),
        "null"
    );
    // History: one entry per instruction, the metadata ones without a layer.
    let hist = d.docker_ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "base:1"]);
    assert!(
        hist.contains("MAINTAINER someone@example.com") && hist.contains("COPY --from=bb"),
        "{hist}"
    );
}

#[test]
fn many_layers() {
    // More layers than overlay's option page holds as plain paths.
    let d = Daemon::start();
    d.busybox("bb");
    let ctx = tempfile::tempdir().unwrap();
    let mut df = String::from("FROM bb\n");
    for i in 0..60 {
        df.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    write(ctx.path(), "Dockerfile", &df);
    let (_, _) = build_id(&d, &["-t", "tall:1", ctx.path().to_str().unwrap()]);
    assert_eq!(d.berth_ok(&["run", "--rm", "tall:1", "cat", "/f0", "/f59"]), "0\n59");
    let layers = d.berth_ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", "tall:1"]);
    assert_eq!(layers, "61");
}

#[test]
fn hostile_build_context_stays_inside() {
    let d = Daemon::start();
    let work = tempfile::tempdir().unwrap();
    // A context tar with an entry climbing out with `..` and one through a symlinked directory.
    let mut t = tar::Builder::new(Vec::new());
    let df = b"FROM scratch\nCOPY . /ctx/\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(df.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    t.append_data(&mut h, "Dockerfile", &df[..]).unwrap();
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    l.set_mode(0o777);
    l.set_mtime(0);
    t.append_link(&mut l, "out", work.path()).unwrap();
    for name in ["../../../escape.txt", "out/through-link.txt"] {
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_mtime(0);
        // Raw name bytes: the tar crate refuses to write such paths itself.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        t.append(&h, &b"evil"[..]).unwrap();
    }
    let tarball = work.path().join("ctx.tar");
    std::fs::write(&tarball, t.into_inner().unwrap()).unwrap();
    let mut c = std::process::Command::new("curl");
    c.args([
        "-s",
        "--unix-socket",
        d.sock.to_str().unwrap(),
        "-X",
        "POST",
        "-H",
        "Content-Type: application/x-tar",
    ])
    .arg("--data-binary")
    .arg(format!("@{}", tarball.display()))
    .arg("http://berth/v1.43/build?t=hostile");
    let o = common::run_timeout(c, None, 60);
    let out = text(&o);
    // Refused before the build says anything (an HTTP error), or built without the bad entries.
    assert!(
        out.contains("\"message\"") || out.contains("error") || out.contains("Successfully built"),
        "{out}"
    );
    // Nothing landed outside the context, through `..` or through the symlink.
    assert!(!work.path().join("through-link.txt").exists(), "wrote through a symlink: {out}");
    for dir in [d.root.clone(), d.root.join("tmp"), d.dir.clone(), std::path::PathBuf::from("/tmp")] {
        assert!(!dir.join("escape.txt").exists(), "escaped to {}: {out}", dir.display());
    }
    // The daemon is fine.
    d.busybox("bb");
    assert_eq!(d.berth_ok(&["run", "--rm", "bb", "echo", "ok"]), "ok");
}

#[test]
fn run_steps_get_the_hosts_network_unless_told_otherwise() {
    // Berth has no bridge network: RUN steps share the host's by default, so `pip install` and the
    // like reach their mirrors. Here the "mirror" is a server on the host's loopback.
    let d = Daemon::start();
    d.busybox("bb");
    let web = tempfile::tempdir().unwrap();
    write(web.path(), "pkg.txt", "package\n");
    let server = Server::start(web.path());
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM bb\nRUN busybox wget -q -O /pkg.txt http://127.0.0.1:{}/pkg.txt\nCMD [\"cat\", \"/pkg.txt\"]\n",
            server.port
        ),
    );
    let c = ctx.path().to_str().unwrap();
    d.berth_ok(&["build", "-q", "-t", "net:berth", c]);
    assert_eq!(d.berth_ok(&["run", "--rm", "net:berth"]), "package");
    d.docker_ok(&["build", "-q", "--no-cache", "-t", "net:docker", c]);
    assert_eq!(d.docker_ok(&["run", "--rm", "net:docker"]), "package");
    // --network none: the step has no way out, and the build fails saying which step.
    for o in [
        d.berth(&["build", "--network", "none", "--no-cache", c]),
        d.docker(&["build", "--network", "none", "--no-cache", c]),
    ] {
        assert!(!o.status.success());
        let err = format!("{}{}", text(&o), errtext(&o));
        assert!(err.contains("wget") && err.contains("returned a non-zero code"), "{err}");
    }
    let o = d.berth(&["build", "--network", "bogus", c]);
    assert!(!o.status.success());
    assert!(errtext(&o).contains("networkmode=\"bogus\""), "{}", errtext(&o));
    // The daemon refuses before reading the (here 4 MB) context, and still reads it: the docker
    // CLI, writing it, gets the error rather than a broken pipe.
    std::fs::write(ctx.path().join("big"), vec![7u8; 4 << 20]).unwrap();
    for _ in 0..3 {
        let o = d.docker(&["build", "--network", "bogus", c]);
        assert!(errtext(&o).contains("networkmode=\"bogus\""), "{}", errtext(&o));
    }
}

/// .dockerignore exceptions let in exactly what they name (and the cache follows them), WORKDIR
/// makes its directory, a stage's `ARG NAME` takes the pre-FROM default, ADD unpacks bzip2 and xz
/// tars, and an ONBUILD heredoc survives into the child build.
#[test]
fn ignore_exceptions_workdir_meta_args_compressed_add_and_onbuild_heredocs() {
    let d = Daemon::start();
    d.busybox("bb");
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path().to_str().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        r#"ARG V=from-meta
ARG W=meta-w
FROM --platform=$BUILDPLATFORM bb
ARG V
ARG W=stage-w
ARG TARGETARCH
WORKDIR /work/deep
RUN pwd > /pwd.txt && echo "V=$V W=$W A=$TARGETARCH" > /args.txt
COPY . /app/
ADD a.tar.bz2 /bz/
ADD a.tar.xz /xz/
ONBUILD RUN <<EOF
echo from-onbuild-heredoc > /onbuild.txt
EOF
"#,
    );
    write(ctx.path(), "secret.txt", "must not be sent\n");
    write(ctx.path(), "readme.md", "docs\n");
    write(ctx.path(), "data/big.bin", "excluded\n");
    write(ctx.path(), "data/keep.txt", "k1\n");
    write(ctx.path(), "data/sub/x.md", "excluded too\n");
    write(ctx.path(), "empty/skip.bin", "excluded\n");
    write(ctx.path(), ".dockerignore", "secret.txt\n!*.md\ndata\n!data/keep.txt\nempty\n");
    // The same small tree, compressed both ways.
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "inner/file.txt", "packed\n");
    for (flag, name) in [("-j", "a.tar.bz2"), ("-J", "a.tar.xz")] {
        let st = std::process::Command::new("tar")
            .args([
                flag,
                "-cf",
                ctx.path().join(name).to_str().unwrap(),
                "-C",
                src.path().to_str().unwrap(),
                "inner",
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let (_, out) = build_id(&d, &["-t", "ign:1", c]);
    let files = d.berth_ok(&["run", "--rm", "ign:1", "find", "/app", "-type", "f"]);
    let mut files: Vec<&str> = files.lines().collect();
    files.sort();
    assert_eq!(
        files,
        [
            "/app/.dockerignore",
            "/app/Dockerfile",
            "/app/a.tar.bz2",
            "/app/a.tar.xz",
            "/app/data/keep.txt",
            "/app/readme.md"
        ],
        "{out}"
    );
    let o = d.berth(&["run", "--rm", "ign:1", "ls", "/app/empty"]);
    assert!(!o.status.success(), "an excluded directory with nothing re-included is not created");
    assert_eq!(
        d.berth_ok(&[
            "run",
            "--rm",
            "ign:1",
            "cat",
            "/pwd.txt",
            "/args.txt",
            "/bz/inner/file.txt",
            "/xz/inner/file.txt"
        ]),
        format!("/work/deep\nV=from-meta W=stage-w A={}\npacked\npacked", oci::spec::host_arch())
    );
    // A re-included file's content is part of the cache key: changing it re-runs its COPY.
    write(ctx.path(), "data/keep.txt", "k2\n");
    let (id2, out) = build_id(&d, &["-t", "ign:2", c]);
    assert_eq!(d.berth_ok(&["run", "--rm", "ign:2", "cat", "/app/data/keep.txt"]), "k2", "{out}");
    // ...while an excluded file changing does not.
    write(ctx.path(), "data/big.bin", "changed but excluded\n");
    let (id3, out) = build_id(&d, &["-t", "ign:3", c]);
    assert_eq!(id2, id3, "{out}");
    assert!(!out.contains("Running in"), "nothing re-runs:\n{out}");
    // The ONBUILD heredoc runs in a child build.
    let child = tempfile::tempdir().unwrap();
    write(child.path(), "Dockerfile", "FROM ign:1\n");
    build_id(&d, &["-t", "ign-child", child.path().to_str().unwrap()]);
    assert_eq!(
        d.berth_ok(&["run", "--rm", "ign-child", "cat", "/onbuild.txt"]),
        "from-onbuild-heredoc"
    );
}

/// Lines of a build's output with every 12- or 64-digit hex ID as `<id>`; the docker CLI's
/// deprecation notice, its context upload line and blank lines left out.
fn normalized(out: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for l in out.lines() {
        if l.contains("DEPRECATED")
            || l.contains("BuildKit is currently")
            || l.contains("environment-variable")
            || l.starts_with("Sending build context to Docker daemon")
            || l.trim().is_empty()
        {
            continue;
        }
        let mut o = String::new();
        let mut run = String::new();
        for ch in l.chars().chain(std::iter::once(' ')) {
            if ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase() {
                run.push(ch);
                continue;
            }
            if run.len() == 12 || run.len() == 64 {
                o.push_str("<id>");
            } else {
                o.push_str(&run);
            }
            run.clear();
            o.push(ch);
        }
        lines.push(o.trim_end().to_string());
    }
    lines
}

/// POST /build with a tar of `dir` through curl; the status and the body.
fn post_build(d: &Daemon, dir: &Path, query: &str) -> (u16, String) {
    let tarball = dir.with_extension("tar");
    let st = std::process::Command::new("tar")
        .args(["-cf", tarball.to_str().unwrap(), "-C", dir.to_str().unwrap(), "."])
        .status()
        .unwrap();
    assert!(st.success());
    let mut c = std::process::Command::new("curl");
    c.args([
        "-s",
        "-w",
        "\n%{http_code}",
        "--unix-socket",
        d.sock.to_str().unwrap(),
        "-X",
        "POST",
    ])
    .args(["-H", "Content-Type: application/x-tar", "--data-binary"])
    .arg(format!("@{}", tarball.display()))
    .arg(format!("http://berth/v1.43/build?{query}"));
    let o = common::run_timeout(c, None, 120);
    let out = text(&o);
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.parse().unwrap_or(0), body.to_string())
}

/// The classic builder's stream, message for message as Docker writes it (checked against Docker
/// 20.10's own daemon): the step line and its newline apart, ` ---> <id>` after every step, a
/// RUN step's stderr in red, an `aux` ID per stage, `--label` as LABEL steps, a failed step's exit
/// code in `errorDetail` (and as the docker CLI's exit status), a quiet build's held-back output
/// before its error, and errors before the build has said anything as HTTP errors.
#[test]
fn stream_messages_are_shaped_as_dockers() {
    let d = Daemon::start();
    d.busybox("bb");
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    write(
        &ctx,
        "Dockerfile",
        "ARG BASE=bb\nFROM $BASE\nENV A=1\nRUN echo out && sleep 0.2 && echo err >&2\nCOPY f.txt /f.txt\nCMD [\"sh\"]\n",
    );
    write(&ctx, "f.txt", "f\n");
    let c = ctx.to_str().unwrap();
    let out = d.docker_ok(&["build", "--label", "b=2", "--label", "a=1", "-t", "lines:1", c]);
    assert_eq!(
        normalized(&out),
        [
            "Step 1/8 : ARG BASE=bb",
            "Step 2/8 : FROM $BASE",
            " ---> <id>",
            "Step 3/8 : ENV A=1",
            " ---> <id>",
            "Step 4/8 : RUN echo out && sleep 0.2 && echo err >&2",
            " ---> Running in <id>",
            "out",
            "\u{1b}[91merr",
            "\u{1b}[0mRemoving intermediate container <id>",
            " ---> <id>",
            "Step 5/8 : COPY f.txt /f.txt",
            " ---> <id>",
            "Step 6/8 : CMD [\"sh\"]",
            " ---> <id>",
            "Step 7/8 : LABEL a=1",
            " ---> <id>",
            "Step 8/8 : LABEL b=2",
            " ---> <id>",
            "Successfully built <id>",
            "Successfully tagged lines:1",
        ],
        "{out}"
    );
    // The same on the wire, with the image ID said once per stage.
    let (code, body) = post_build(&d, &ctx, "t=lines:2&nocache=1");
    assert_eq!(code, 200, "{body}");
    let msgs: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let streams: Vec<&str> = msgs.iter().filter_map(|m| m["stream"].as_str()).collect();
    assert_eq!(
        &streams[..4],
        ["Step 1/6 : ARG BASE=bb", "\n", "Step 2/6 : FROM $BASE", "\n"],
        "{body}"
    );
    assert!(streams.contains(&"\u{1b}[91merr\n\u{1b}[0m"), "{body}");
    let aux: Vec<&serde_json::Value> = msgs.iter().filter(|m| m.get("aux").is_some()).collect();
    assert_eq!(aux.len(), 1, "{body}");
    let id = aux[0]["aux"]["ID"].as_str().unwrap();
    assert_eq!(streams[streams.len() - 2], format!("Successfully built {}\n", &id[7..19]), "{body}");

    // Two stages: an aux message after each; FROM scratch has no ID to show; ONBUILD triggers run
    // within their FROM step.
    let ms = work.path().join("ms");
    write(
        &ms,
        "Dockerfile",
        "FROM scratch AS s0\nCOPY f.txt /f\nFROM bb AS s1\nONBUILD RUN echo trig\nFROM s1\nCOPY --from=s0 /f /g\n",
    );
    write(&ms, "f.txt", "x\n");
    let out = d.docker_ok(&["build", ms.to_str().unwrap()]);
    assert_eq!(
        normalized(&out),
        [
            "Step 1/6 : FROM scratch AS s0",
            " --->",
            "Step 2/6 : COPY f.txt /f",
            " ---> <id>",
            "Step 3/6 : FROM bb AS s1",
            " ---> <id>",
            "Step 4/6 : ONBUILD RUN echo trig",
            " ---> <id>",
            "Step 5/6 : FROM s1",
            "# Executing 1 build trigger",
            " ---> Running in <id>",
            "trig",
            "Removing intermediate container <id>",
            " ---> <id>",
            "Step 6/6 : COPY --from=s0 /f /g",
            " ---> <id>",
            "Successfully built <id>",
        ],
        "{out}"
    );
    let (_, body) = post_build(&d, &ms, "");
    assert_eq!(body.matches("\"aux\"").count(), 3, "{body}");

    // A failing RUN: its output, then the error with the step's exit code.
    let fail = work.path().join("fail");
    write(&fail, "Dockerfile", "FROM bb\nRUN echo before-fail && echo to-err >&2 && exit 3\n");
    let (code, body) = post_build(&d, &fail, "");
    assert_eq!(code, 200);
    let last: serde_json::Value = serde_json::from_str(body.lines().last().unwrap()).unwrap();
    let msg = "The command '/bin/sh -c echo before-fail && echo to-err >&2 && exit 3' returned a non-zero code: 3";
    assert_eq!(
        last,
        serde_json::json!({"errorDetail": {"code": 3, "message": msg}, "error": msg}),
        "{body}"
    );
    // Quiet: the output held back comes before the error (the docker CLI shows it on stderr).
    let (_, body) = post_build(&d, &fail, "q=1");
    assert!(body.contains("before-fail") && body.contains("\"code\":3"), "{body}");
    let o = d.docker(&["build", "-q", fail.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let err = errtext(&o);
    assert!(err.contains("before-fail") && err.contains(msg), "{err}");
    assert_eq!(text(&o), "");
    // Quiet and fine: the ID alone, no aux.
    let (_, body) = post_build(&d, &ctx, "q=1");
    assert_eq!(body.lines().count(), 1, "{body}");
    assert!(body.starts_with("{\"stream\":\"sha256:"), "{body}");
    // Nothing said yet: an HTTP error, as Docker answers a missing or broken Dockerfile.
    let (code, body) = post_build(&d, &ctx, "dockerfile=nope");
    assert_eq!(
        (code, body.as_str()),
        (400, r#"{"message":"Cannot locate specified Dockerfile: nope"}"#)
    );
    write(&fail, "Dockerfile", "FROM bb\nFROBNICATE\n");
    let (code, body) = post_build(&d, &fail, "");
    assert!(code == 400 && body.contains("FROBNICATE"), "{code} {body}");
    let o = d.docker(&["build", fail.to_str().unwrap()]);
    assert!(errtext(&o).contains("Error response from daemon:"), "{}", errtext(&o));

    // docker-py: a failing RUN is a BuildError with Docker's message and the step's output in
    // its build log; a good build returns the image.
    write(&fail, "Dockerfile", "FROM bb\nRUN echo before-fail && echo to-err >&2 && exit 3\n");
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
try:
    c.images.build(path="{fail}")
    raise SystemExit("expected a BuildError")
except docker.errors.BuildError as e:
    assert e.msg == "{msg}", e.msg
    log = "".join(m.get("stream", "") for m in e.build_log)
    assert "before-fail" in log and "\x1b[91mto-err" in log, log
img, logs = c.images.build(path="{ctx}", tag="py:lines")
assert "py:lines" in img.tags, img.tags
assert any(m.get("aux", {{}}).get("ID") == img.id for m in logs)
print("ok")
"#,
        host = d.host(),
        fail = fail.display(),
        ctx = ctx.display(),
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", &script]);
    let o = common::run_timeout(cmd, None, 120);
    assert!(o.status.success(), "docker-py failed:\n{}\n{}", text(&o), errtext(&o));
}

/// The query parameters that set up RUN steps' containers (as Docker's classic builder makes them
/// from the build options) through the docker CLI, docker-py and berth; a Dockerfile outside the
/// context as the clients send it (inside the tar under a private name); and what is refused.
#[test]
fn run_step_settings_dockerfile_outside_and_refusals() {
    let d = Daemon::start();
    d.busybox("bb");
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    write(&ctx, "in-ctx.txt", "from the context\n");
    write(
        &work.path().join("elsewhere"),
        "Dockerfile",
        "FROM bb\nCOPY . /ctx/\nRUN cat /ctx/in-ctx.txt; grep -w /dev/shm /proc/mounts; grep -w myhost /etc/hosts; \
         echo nofile=$(ulimit -n):$(ulimit -Hn); echo links=$(ip -o link | wc -l); echo names=,$(ip -o link | cut -d: -f2 | tr -d ' ' | tr '\\n' ,)\n",
    );
    // docker build -f ../elsewhere/Dockerfile . from inside the context.
    let mut cmd = d.docker_cmd(&[
        "build",
        "--no-cache",
        "-f",
        "../elsewhere/Dockerfile",
        "--shm-size",
        "32m",
        "--add-host",
        "myhost:10.9.8.7",
        "--ulimit",
        "nofile=1000:2000",
        "--isolation",
        "default",
        "--network",
        "none",
        "-t",
        "out:1",
        ".",
    ]);
    cmd.current_dir(&ctx);
    let o = common::run_timeout(cmd, None, 120);
    let out = text(&o);
    assert!(o.status.success(), "{out}\n{}", errtext(&o));
    for want in ["from the context", "size=32768k", "10.9.8.7\tmyhost", "nofile=1000:2000", "links=1"] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
    // The Dockerfile the CLI put into the context is not copied (its .dockerignore names it).
    let listed = d.docker_ok(&["run", "--rm", "out:1", "ls", "-a", "/ctx"]);
    assert!(!listed.contains(".dockerfile."), "{listed}");
    // --network host and default: the host's interfaces (its default route's among them;
    // counting them would race with the other tests' bridges and veths).
    let routes = std::fs::read_to_string("/proc/net/route").unwrap();
    let uplink = routes
        .lines()
        .skip(1)
        .find(|l| l.split_whitespace().nth(1) == Some("00000000"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("lo")
        .to_string();
    for net in ["host", "default"] {
        let f = work.path().join("elsewhere/Dockerfile");
        let out = d.docker_ok(&[
            "build",
            "--no-cache",
            "--network",
            net,
            "-f",
            f.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ]);
        assert!(
            out.contains(&format!(",{uplink},")) && !out.contains("links=1\n"),
            "--network {net}:\n{out}"
        );
    }
    // A memory limit applies to RUN steps (with no swap beyond it, 64 MiB do not fit in 16).
    let mem = work.path().join("mem");
    write(&mem, "Dockerfile", "FROM bb\nRUN dd if=/dev/zero of=/dev/null bs=64M count=1\n");
    let m = mem.to_str().unwrap();
    d.docker_ok(&["build", "-q", "--force-rm", "--no-cache", m]);
    let o = d.docker(&["build", "--force-rm", "--no-cache", "-m", "16m", "--memory-swap", "16m", m]);
    assert_eq!(o.status.code(), Some(137), "{}\n{}", text(&o), errtext(&o));
    assert!(errtext(&o).contains("returned a non-zero code: 137"), "{}", errtext(&o));

    // docker-py, with the Dockerfile outside the context given by its path.
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
img, logs = c.images.build(path="{ctx}", dockerfile="{df}", nocache=True, rm=True, shmsize=16 * 1024 * 1024,
    extra_hosts={{"myhost": "10.1.1.1"}}, network_mode="none", isolation="default",
    container_limits={{"memory": 64 * 1024 * 1024, "cpushares": 512}})
out = "".join(m.get("stream", "") for m in logs)
for want in ["from the context", "size=16384k", "10.1.1.1\tmyhost", "links=1"]:
    assert want in out, (want, out)
print("ok")
"#,
        host = d.host(),
        ctx = ctx.display(),
        df = work.path().join("elsewhere/Dockerfile").display(),
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", &script]);
    let o = common::run_timeout(cmd, None, 120);
    assert!(o.status.success(), "docker-py failed:\n{}\n{}", text(&o), errtext(&o));

    // berth build takes the same flags.
    let f = work.path().join("elsewhere/Dockerfile");
    let (_, out) = build_id(
        &d,
        &[
            "--no-cache",
            "-f",
            f.to_str().unwrap(),
            "--shm-size",
            "8m",
            "--add-host",
            "myhost=10.2.2.2",
            "--ulimit",
            "nofile=500",
            "--network",
            "none",
            ctx.to_str().unwrap(),
        ],
    );
    for want in ["size=8192k", "10.2.2.2\tmyhost", "nofile=500:500", "links=1"] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }

    // Refused with Docker's words, or saying what Berth does not do.
    let c = ctx.to_str().unwrap();
    let f = f.to_str().unwrap();
    for (args, want) in [
        (
            vec!["--security-opt", "seccomp=unconfined"],
            "security options are not supported on linux",
        ),
        (vec!["--isolation", "hyperv"], "unsupported isolation: \"hyperv\""),
        (
            vec!["--network", "container:abc"],
            "sharing another container's network is not supported",
        ),
        (vec!["--network", "mynet"], "networkmode=\"mynet\""),
        (vec!["--cgroup-parent", "x"], "cgroupparent=\"x\""),
        (vec!["-m", "1k"], "Minimum memory limit allowed is 6MB"),
    ] {
        let mut a = vec!["build", "-f", f];
        a.extend(args.iter().copied());
        a.push(c);
        let o = d.docker(&a);
        assert!(!o.status.success(), "{args:?} was accepted");
        let err = errtext(&o);
        assert!(err.contains("Error response from daemon") && err.contains(want), "{args:?}: {err}");
    }
    for (query, status, want) in [
        ("version=3", 400, "invalid version \\\"3\\\""),
        ("version=2", 400, "BuildKit"),
        ("securityopt=", 400, "security options are not supported on linux"),
        ("ulimits=x", 400, "error reading ulimit settings"),
        ("cachefrom=x", 400, "error reading cache-from"),
        ("shmsize=-1", 400, "SHM size can not be less than 0"),
        (
            "ulimits=%5B%7B%22Name%22%3A%22nofile%22%2C%22Soft%22%3A2000%2C%22Hard%22%3A1000%7D%5D",
            400,
            "soft limit 2000 is above the hard limit 1000",
        ),
        ("outputs=%5B%7B%22Type%22%3A%22tar%22%7D%5D", 400, "outputs="),
        ("squash=1", 400, "squash"),
        ("session=x", 400, "session="),
        ("buildid=x", 400, "buildid="),
    ] {
        let (code, body) = post_build(&d, &ctx, query);
        assert!(code == status && body.contains(want), "{query}: {code} {body}");
    }
    // What the clients send by default is taken.
    write(&ctx, "Dockerfile", "FROM bb\nCOPY in-ctx.txt /\n");
    let (code, body) = post_build(
        &d,
        &ctx,
        "cachefrom=%5B%5D&rm=False&forcerm=False&isolation=&version=1&q=1&ulimits=null&extrahosts=",
    );
    assert!(code == 200 && body.starts_with("{\"stream\":\"sha256:"), "{code} {body}");
    // A context compressed with bzip2 or xz, as the API allows.
    for (flag, ext) in [("-j", "tar.bz2"), ("-J", "tar.xz")] {
        let t = work.path().join(format!("ctx.{ext}"));
        let st = std::process::Command::new("tar")
            .args([flag, "-cf", t.to_str().unwrap(), "-C", c, "."])
            .status()
            .unwrap();
        assert!(st.success());
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "--unix-socket", d.sock.to_str().unwrap(), "-X", "POST", "--data-binary"])
            .arg(format!("@{}", t.display()))
            .arg("http://berth/v1.43/build?q=1");
        let out = text(&common::run_timeout(cmd, None, 60));
        assert!(out.starts_with("{\"stream\":\"sha256:"), "{ext}: {out}");
    }
}

/// rm and forcerm as Docker's classic builder has them: RUN steps' containers are removed after
/// each step that succeeds unless rm=0 (docker-py's default), a failed step's is left unless
/// forcerm. A kept container holds the step's changes.
#[test]
fn rm_and_forcerm_keep_or_remove_step_containers() {
    let d = Daemon::start();
    d.busybox("bb");
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path().to_str().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM bb\nRUN echo one > /one\nENV X=1\nRUN cat /one > /two\nCMD [\"cat\", \"/two\"]\n",
    );
    let ps = || {
        let s = d.docker_ok(&["ps", "-a", "-q"]);
        s.lines().map(String::from).collect::<Vec<_>>()
    };
    let out = d.docker_ok(&["build", "--rm=false", "-t", "keep:1", c]);
    assert_eq!(count(&out, "Running in"), 2, "{out}");
    assert_eq!(count(&out, "Removing intermediate container"), 0, "{out}");
    let kept = ps();
    assert_eq!(kept.len(), 2, "one per RUN step: {kept:?}");
    let diffs: Vec<String> = kept.iter().map(|id| d.docker_ok(&["diff", id])).collect();
    assert!(
        diffs.contains(&"A /one".to_string()) && diffs.contains(&"A /two".to_string()),
        "{diffs:?}"
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "keep:1"]), "one");
    // The same image again, now with the containers removed (the default).
    let out = d.docker_ok(&["build", "--no-cache", "-t", "keep:2", c]);
    assert_eq!(count(&out, "Removing intermediate container"), 2, "{out}");
    assert_eq!(ps().len(), 2);
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "keep:1"]),
        d.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "keep:2"])
    );
    for id in ps() {
        d.docker_ok(&["rm", &id]);
    }
    // docker-py sends rm=False unless told otherwise.
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
c.images.build(path="{c}", nocache=True)
assert len(c.containers.list(all=True)) == 2
c.images.build(path="{c}", nocache=True, rm=True)
assert len(c.containers.list(all=True)) == 2
c.images.build(path="{c}", nocache=True, forcerm=True)
assert len(c.containers.list(all=True)) == 2
print("ok")
"#,
        host = d.host(),
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", &script]);
    let o = common::run_timeout(cmd, None, 120);
    assert!(o.status.success(), "docker-py failed:\n{}\n{}", text(&o), errtext(&o));
    for id in ps() {
        d.docker_ok(&["rm", &id]);
    }
    // A failed step's container stays unless --force-rm; --rm=false keeps the successful ones too.
    write(ctx.path(), "Dockerfile", "FROM bb\nRUN echo ok > /ok\nRUN exit 4\n");
    let o = d.docker(&["build", "--no-cache", c]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(d.docker_ok(&["ps", "-a", "--format", "{{.Status}}"]).lines().count(), 1);
    assert!(d.docker_ok(&["ps", "-a", "--format", "{{.Status}}"]).starts_with("Exited (4)"));
    let o = d.docker(&["build", "--no-cache", "--force-rm", c]);
    assert_eq!(o.status.code(), Some(4));
    assert!(text(&o).contains("Removing intermediate container"), "{}", text(&o));
    assert_eq!(ps().len(), 1);
    let o = d.berth(&["build", "--no-cache", "--rm=false", c]);
    assert!(!o.status.success());
    assert_eq!(ps().len(), 3, "berth build --rm=false keeps both step containers");
}

/// `--cache-from` on a daemon that never built the image: the image saved on one daemon and loaded
/// on a fresh one stands for the steps it recorded (same layers, same image), through the docker
/// CLI, docker-py and berth; a changed input stops the reuse from that step on.
#[test]
fn cache_from_reuses_a_loaded_images_layers() {
    let a = Daemon::start();
    a.busybox("bb");
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    write(
        &ctx,
        "Dockerfile",
        "FROM bb\nENV GREETING=hi\nCOPY f.txt /f.txt\nRUN echo $GREETING > /g && date +%s%N > /stamp\nRUN cat /g /f.txt > /both\nCMD [\"cat\", \"/both\"]\n",
    );
    write(&ctx, "f.txt", "content\n");
    let c = ctx.to_str().unwrap();
    let id = a.docker_ok(&["build", "-q", "-t", "cf:1", c]);
    let stamp = a.docker_ok(&["run", "--rm", "cf:1", "cat", "/stamp"]);
    let saved = work.path().join("saved.tar");
    a.docker_ok(&["save", "-o", saved.to_str().unwrap(), "bb", "cf:1"]);
    drop(a);

    let b = Daemon::start();
    b.docker_ok(&["load", "-i", saved.to_str().unwrap()]);
    // Without --cache-from the loaded image is not a cache: the steps run.
    let out = b.docker_ok(&["build", "--no-cache", c]);
    assert_eq!(count(&out, "Running in"), 2, "{out}");
    // With it, every step that makes a layer is taken from it, and the result is the same image.
    let out = b.docker_ok(&["build", "--cache-from", "cf:1", "-t", "cf:2", c]);
    assert_eq!(count(&out, "Using cache"), 3, "{out}");
    assert_eq!(count(&out, "Running in"), 0, "{out}");
    assert_eq!(b.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "cf:2"]), id, "{out}");
    assert_eq!(b.docker_ok(&["run", "--rm", "cf:2", "cat", "/stamp"]), stamp);
    // docker-py's cache_from, and a name that is not there (skipped, as Docker skips it).
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
img, logs = c.images.build(path="{c}", cache_from=["nosuch:image", "cf:1"], rm=True)
out = "".join(m.get("stream", "") for m in logs)
assert out.count("Using cache") == 3 and "Running in" not in out, out
assert img.id == "{id}", img.id
img, logs = c.images.build(path="{c}", cache_from=["nosuch:image"], rm=True)
out = "".join(m.get("stream", "") for m in logs)
assert "Using cache" not in out, out
print("ok")
"#,
        host = b.host(),
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", &script]);
    let o = common::run_timeout(cmd, None, 120);
    assert!(o.status.success(), "docker-py failed:\n{}\n{}", text(&o), errtext(&o));
    // A changed file: its COPY and what follows run again; berth build takes --cache-from too.
    write(&ctx, "f.txt", "changed\n");
    let (_, out) = build_id(&b, &["--cache-from", "cf:1", "-t", "cf:3", c]);
    assert_eq!(count(&out, "Using cache"), 0, "{out}");
    assert_eq!(count(&out, "Running in"), 2, "{out}");
    assert_eq!(b.docker_ok(&["run", "--rm", "cf:3"]), "hi\nchanged");
    assert_ne!(b.docker_ok(&["run", "--rm", "cf:3", "cat", "/stamp"]), stamp);
}
