//! Integration tests: a real `berth daemon` on a temporary root, driven by the real docker CLI, the
//! berth CLI, docker-py and raw HTTP.

mod common;

use std::process::Command;

use common::{errtext, text, Daemon};

#[test]
fn ping_version_and_wire_format() {
    let d = Daemon::start();
    // The daemon remounts a cgroup hierarchy with favordynmods (Linux 6.0+), so that moving a
    // container's first process into its cgroups does not wait for an RCU grace period.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    if (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 0) {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            mi.lines()
                .any(|l| l.contains(" - cgroup") && l.split(' ').next_back().unwrap().split(',').any(|o| o == "favordynmods")),
            "no cgroup mount has favordynmods:\n{mi}"
        );
    }
    let (code, head, body) = d.http("GET", "/_ping", None);
    assert_eq!(code, 200);
    assert_eq!(body, "OK");
    assert!(head.to_ascii_lowercase().contains("api-version: 1.43"), "{head}");
    let (code, _, _) = d.http("HEAD", "/v1.41/_ping", None);
    assert_eq!(code, 200);
    let (code, _, body) = d.http("GET", "/v1.43/version", None);
    assert_eq!(code, 200);
    assert!(body.contains("\"ApiVersion\":\"1.43\""), "{body}");
    // Errors are {"message": ...} with Docker's status codes.
    let (code, _, body) = d.http("GET", "/containers/nope/json", None);
    assert_eq!(code, 404);
    assert!(body.contains("\"message\":\"No such container: nope\""), "{body}");
    let (code, _, body) = d.http("POST", "/containers/create", Some("{not json"));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid JSON body"), "{body}");
    let (code, _, body) = d.http("POST", "/containers/create", Some(r#"{"Image":"missing:1"}"#));
    assert_eq!(code, 404, "{body}");
    let (code, _, body) = d.http("GET", "/containers/json?filters=%7Bbogus", None);
    assert_eq!(code, 400, "{body}");
    // Filters in both JSON forms.
    d.busybox("bb");
    d.docker_ok(&["create", "--name", "f1", "--label", "team=ml", "bb", "true"]);
    let (_, _, list) = d.http(
        "GET",
        "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22team%3Dml%22%5D%7D",
        None,
    );
    assert!(list.contains("/f1"), "{list}");
    let (_, _, list) = d.http(
        "GET",
        "/containers/json?all=1&filters=%7B%22label%22%3A%7B%22team%3Dml%22%3Atrue%7D%7D",
        None,
    );
    assert!(list.contains("/f1"), "{list}");
    let (_, _, list) = d.http(
        "GET",
        "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22team%3Dother%22%5D%7D",
        None,
    );
    assert!(!list.contains("/f1"), "{list}");
}

#[test]
fn docker_cli_container_lifecycle() {
    let d = Daemon::start();
    d.busybox("bb");
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.lines().any(|l| l == "bb:latest"), "{images}");

    // Attached run: output demultiplexed, exit code propagated.
    let o = d.docker(&["run", "--name", "a1", "bb", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(text(&o), "out");
    assert!(errtext(&o).contains("err"));
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", "a1"]),
        "3 exited"
    );

    // --rm removes; env, workdir, user, hostname, entrypoint.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--hostname",
        "box",
        "bb",
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u) $(hostname)",
    ]);
    assert_eq!(out, "bar /tmp 65534 box");
    let envf = d.dir.join("env.list");
    std::fs::write(&envf, "A=1\nB=two\n").unwrap();
    let out = d.docker_ok(&["run", "--rm", "--env-file", envf.to_str().unwrap(), "--entrypoint", "env", "bb"]);
    assert!(out.lines().any(|l| l == "B=two") && out.lines().any(|l| l == "A=1"), "{out}");
    let o = d.docker(&["run", "--rm", "bb", "no-such-binary"]);
    assert_eq!(o.status.code(), Some(127), "{}", errtext(&o));
    assert!(errtext(&o).contains("executable file not found"), "{}", errtext(&o));
    assert!(!d.docker_ok(&["ps", "-a", "--format", "{{.Command}}"]).contains("env"));

    // Stdin.
    let o = d.docker_in(&["run", "-i", "--rm", "bb", "sh", "-c", "tr a-z A-Z"], b"hello stdin\n");
    assert_eq!(text(&o), "HELLO STDIN");

    // Detached, logs, exec, top, stats, pause, rename, update, stop.
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "bb",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done",
    ]);
    assert_eq!(id.len(), 64);
    wait_for_log(&d, "web", "line 2");
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert!(ps.contains("web running"), "{ps}");
    assert_eq!(d.docker_ok(&["ps", "-q"]), id[..12]);
    let ps = d.docker_ok(&["ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}"]);
    assert!(ps.contains("a1") && !ps.contains("web"), "{ps}");
    let logs = d.docker_ok(&["logs", "--tail", "2", "web"]);
    assert_eq!(logs.lines().count(), 2, "{logs}");
    let logs = d.docker_ok(&["logs", "-t", "web"]);
    assert!(logs.lines().next().unwrap().contains("Z line 0"), "{logs}");
    let future = format!("{}", chrono_now() + 3600);
    assert_eq!(
        d.docker_ok(&["logs", "--since", &future, "web"]),
        "",
        "nothing is newer than an hour from now"
    );
    assert!(d.docker_ok(&["logs", "--since", "10m", "web"]).contains("line 0"));
    let o = d.docker_in(&["exec", "-i", "web", "sh", "-c", "read x; echo got:$x"], b"piped-in\n");
    assert_eq!(text(&o), "got:piped-in");
    let o = d.docker(&[
        "exec",
        "-e",
        "X=42",
        "-w",
        "/etc",
        "-u",
        "1000",
        "web",
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u); exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(text(&o), "42 /etc 1000");
    d.docker_ok(&[
        "exec",
        "-d",
        "web",
        "sh",
        "-c",
        "echo detached > /tmp/d.tmp && mv /tmp/d.tmp /tmp/d",
    ]);
    let t0 = std::time::Instant::now();
    while !d.docker(&["exec", "web", "test", "-e", "/tmp/d"]).status.success() {
        assert!(t0.elapsed().as_secs() < 20, "detached exec never ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(d.docker_ok(&["exec", "web", "cat", "/tmp/d"]), "detached");
    let top = d.docker_ok(&["top", "web"]);
    assert!(top.contains("PID") && top.contains("sh -c"), "{top}");
    // With ps arguments, the host's ps runs them, as Docker's does; only the container's lines stay.
    let pid = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "web"]);
    let top = d.docker_ok(&["top", "web", "-o", "pid,comm,args"]);
    let mut lines = top.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND", "COMMAND"]
    );
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.iter().any(|r| r.starts_with(&format!("{pid} ")) && r.contains("sh -c")),
        "{top}"
    );
    assert!(rows.iter().all(|r| !r.contains("berth daemon")), "{top}");
    let o = d.docker(&["top", "web", "-o", "comm"]);
    assert!(errtext(&o).contains("Couldn't find PID field in ps output"), "{}", errtext(&o));
    let stats = d.docker_ok(&["stats", "--no-stream", "web"]);
    assert!(stats.contains("web") && stats.contains("iB / "), "{stats}");
    d.docker_ok(&["pause", "web"]);
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "web"]), "paused");
    d.docker_ok(&["unpause", "web"]);
    d.docker_ok(&["rename", "web", "web2"]);
    d.docker_ok(&["update", "--memory", "64m", "--pids-limit", "50", "web2"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", "web2"]),
        "67108864 50"
    );
    let limit = common::cgroup_value(&id, "memory", "memory.limit_in_bytes", "memory.max", common::same);
    assert_eq!(limit, "67108864");
    d.docker_ok(&["stop", "-t", "5", "web2"]);
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "web2"]), "0");
    assert!(d.docker_ok(&["logs", "--tail", "1", "web2"]).contains("bye"));
    // restart, kill -s, wait.
    d.docker_ok(&["restart", "-t", "1", "web2"]);
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "web2"]), "true");
    d.docker_ok(&["kill", "-s", "KILL", "web2"]);
    assert_eq!(d.docker_ok(&["wait", "web2"]), "137");
    // STOPSIGNAL is honoured.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "--stop-signal",
        "USR1",
        "bb",
        "sh",
        "-c",
        "trap 'exit 9' USR1; echo ready; while true; do sleep 0.1; done",
    ]);
    wait_for_log(&d, "sig", "ready");
    d.docker_ok(&["stop", "sig"]);
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "sig"]), "9");
    // rm refuses a running container unless forced.
    d.docker_ok(&["run", "-d", "--name", "busy", "bb", "sleep", "60"]);
    let o = d.docker(&["rm", "busy"]);
    assert!(!o.status.success());
    assert!(
        errtext(&o).contains("stop the container before removing or force remove"),
        "{}",
        errtext(&o)
    );
    d.docker_ok(&["rm", "-f", "busy"]);
    assert!(d.docker(&["inspect", "busy"]).status.code() != Some(0));
    // Restart policy.
    d.docker_ok(&["run", "-d", "--name", "rp", "--restart", "on-failure:2", "bb", "sh", "-c", "exit 1"]);
    let t0 = std::time::Instant::now();
    while d.docker_ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "rp"]) != "2 exited" {
        assert!(t0.elapsed().as_secs() < 20, "restart policy did not run twice");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn isolation_and_limits() {
    let d = Daemon::start();
    d.busybox("bb");
    // OOM kill.
    assert_oom_killed(&d, "oom", &[]);
    // Fork bomb stops at the pids limit.
    let o = d.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "8",
        "bb",
        "sh",
        "-c",
        "for i in $(seq 1 20); do sleep 2 & done",
    ]);
    assert!(
        errtext(&o).contains("can't fork") || errtext(&o).contains("Resource temporarily unavailable"),
        "{}",
        errtext(&o)
    );
    // CPU quota lands in the cgroup.
    d.docker_ok(&["run", "-d", "--name", "cpu", "--cpus", "0.5", "bb", "sleep", "30"]);
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "cpu"]);
    let quota = common::cgroup_value(&id, "cpu", "cpu.cfs_quota_us", "cpu.max", |v| {
        v.split(' ').next().unwrap_or("").to_string()
    });
    assert_eq!(quota, "50000");
    // Namespaces: own pid 1, own hostname, own network with only loopback.
    assert_eq!(d.docker_ok(&["run", "--rm", "bb", "sh", "-c", "echo $$"]), "1");
    let addrs = d.docker_ok(&["run", "--rm", "--network", "none", "bb", "ip", "-o", "addr"]);
    assert!(
        addrs.contains("127.0.0.1") && !addrs.lines().any(|l| !l.contains(" lo ")),
        "{addrs}"
    );
    let host = nix::unistd::gethostname().unwrap().to_string_lossy().into_owned();
    assert_eq!(d.docker_ok(&["run", "--rm", "--network", "host", "bb", "hostname"]), host);
    // Capabilities: Docker's default set, --cap-drop, --cap-add.
    let o = d.docker(&["run", "--rm", "bb", "ip", "link", "set", "lo", "mtu", "1400"]);
    assert!(!o.status.success(), "NET_ADMIN is not in the default set");
    assert!(
        d.docker(&["run", "--rm", "--cap-drop", "CHOWN", "bb", "chown", "nobody", "/tmp"])
            .status
            .code()
            != Some(0)
    );
    assert!(d.docker(&["run", "--rm", "bb", "chown", "nobody", "/tmp"]).status.success());
    let o = d.docker(&[
        "run",
        "--rm",
        "--cap-add",
        "NET_ADMIN",
        "bb",
        "ip",
        "link",
        "set",
        "lo",
        "mtu",
        "1400",
    ]);
    assert!(o.status.success(), "{}", errtext(&o));
    // Masked and read-only paths; seccomp; no-new-privileges.
    for masked in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"] {
        if std::path::Path::new(masked).exists() {
            assert_eq!(
                d.docker_ok(&["run", "--rm", "bb", "sh", "-c", &format!("wc -c < {masked}")]),
                "0",
                "{masked} must be masked"
            );
        }
    }
    assert!(!d
        .docker(&["run", "--rm", "bb", "sh", "-c", "echo 1 > /proc/sys/kernel/sysrq"])
        .status
        .success());
    let o = d.docker(&["run", "--rm", "--cap-add", "SYS_ADMIN", "bb", "unshare", "-n", "true"]);
    assert!(!o.status.success(), "seccomp must refuse unshare");
    assert!(d
        .docker_ok(&["run", "--rm", "bb", "grep", "NoNewPrivs", "/proc/self/status"])
        .ends_with('0'));
    assert!(d
        .docker_ok(&[
            "run",
            "--rm",
            "--security-opt",
            "no-new-privileges",
            "bb",
            "grep",
            "NoNewPrivs",
            "/proc/self/status"
        ])
        .ends_with('1'));
    assert!(d
        .docker_ok(&["run", "--rm", "bb", "grep", "Seccomp:", "/proc/self/status"])
        .ends_with('2'));
    // Read-only rootfs and tmpfs.
    assert!(!d.docker(&["run", "--rm", "--read-only", "bb", "touch", "/x"]).status.success());
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/scratch",
            "bb",
            "sh",
            "-c",
            "touch /scratch/x && echo ok"
        ]),
        "ok"
    );
    // --init puts tini at pid 1 when it is installed.
    if std::path::Path::new("/usr/bin/tini-static").exists() {
        let ps = d.docker_ok(&["run", "--rm", "--init", "bb", "ps", "-o", "pid,args"]);
        assert!(ps.lines().any(|l| l.trim().starts_with("1 ") && l.contains("docker-init")), "{ps}");
    }
    // --add-host, --dns, --ulimit, --cpuset-cpus are applied.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.local:10.1.2.3",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "corp.example",
        "bb",
        "sh",
        "-c",
        "grep db.local /etc/hosts; cat /etc/resolv.conf",
    ]);
    assert!(
        out.contains("10.1.2.3\tdb.local") && out.contains("nameserver 192.0.2.53") && out.contains("search corp.example"),
        "{out}"
    );
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=512:1024",
            "bb",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn"
        ]),
        "512\n1024"
    );
    d.docker_ok(&["run", "-d", "--name", "pinned", "--cpuset-cpus", "0", "bb", "sleep", "30"]);
    let pid = d.docker_ok(&["inspect", "-f", "{{.Id}}", "pinned"]);
    assert_eq!(
        common::cgroup_value(&pid, "cpuset", "cpuset.cpus", "cpuset.cpus", common::same),
        "0"
    );
    // What is not implemented is refused, not ignored.
    let o = d.docker(&["run", "--rm", "-p", "8080:80", "bb", "true"]);
    assert!(!o.status.success() && errtext(&o).contains("publishing ports"), "{}", errtext(&o));
    let o = d.docker(&["run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "bb", "true"]);
    assert!(!o.status.success() && errtext(&o).contains("Sysctls"), "{}", errtext(&o));
    let o = d.docker(&["run", "--rm", "--ulimit", "bogus=1", "bb", "true"]);
    assert!(!o.status.success());
    // Unknown capability, bad restart policy, unknown flag: clear errors.
    let o = d.docker(&["run", "--rm", "--cap-add", "BOGUS", "bb", "true"]);
    assert!(errtext(&o).contains("unknown capability"), "{}", errtext(&o));
    let o = d.docker(&["run", "--rm", "--definitely-not-a-flag", "bb", "true"]);
    assert!(!o.status.success());
}

#[test]
fn filesystem_images_and_volumes() {
    let d = Daemon::start();
    d.busybox("bb");
    // Named volumes persist across containers.
    d.docker_ok(&["volume", "create", "data"]);
    d.docker_ok(&["run", "--rm", "-v", "data:/data", "bb", "sh", "-c", "echo persisted > /data/f"]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", "-v", "data:/data:ro", "bb", "cat", "/data/f"]),
        "persisted"
    );
    assert!(!d
        .docker(&["run", "--rm", "-v", "data:/data:ro", "bb", "touch", "/data/g"])
        .status
        .success());
    assert!(d.docker_ok(&["volume", "ls", "-q"]).lines().any(|l| l == "data"));
    assert!(d
        .docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"])
        .ends_with("/volumes/data/_data"));
    d.docker_ok(&["create", "--name", "user", "-v", "data:/data", "bb", "true"]);
    assert!(
        !d.docker(&["volume", "rm", "data"]).status.success(),
        "in-use volume must not be removed"
    );
    d.docker_ok(&["rm", "user"]);
    d.docker_ok(&["volume", "rm", "data"]);
    // Bind mounts.
    let hostdir = d.dir.join("hostdir");
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::write(hostdir.join("h"), "fromhost").unwrap();
    let bind = format!("{}:/h", hostdir.display());
    assert_eq!(d.docker_ok(&["run", "--rm", "-v", &bind, "bb", "cat", "/h/h"]), "fromhost");
    // diff, cp both ways, export, commit.
    d.docker_ok(&[
        "run",
        "--name",
        "fs",
        "bb",
        "sh",
        "-c",
        "echo content > /etc/newfile; rm /etc/group",
    ]);
    let diff = d.docker_ok(&["diff", "fs"]);
    assert_eq!(diff, "C /etc\nD /etc/group\nA /etc/newfile", "{diff}");
    let got = d.dir.join("got");
    d.docker_ok(&["cp", "fs:/etc/newfile", got.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "content\n");
    std::fs::write(d.dir.join("up"), "uploaded").unwrap();
    d.docker_ok(&["cp", d.dir.join("up").to_str().unwrap(), "fs:/tmp/"]);
    let tarball = d.dir.join("export.tar");
    d.docker_ok(&["export", "-o", tarball.to_str().unwrap(), "fs"]);
    let mut ar = tar::Archive::new(std::fs::File::open(&tarball).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n == "tmp/up") && names.iter().any(|n| n == "etc/newfile") && !names.iter().any(|n| n == "etc/group"),
        "{names:?}"
    );
    let img = d.docker_ok(&["commit", "-m", "snap", "-c", "ENV SNAP=1", "fs", "snap:1"]);
    assert!(img.starts_with("sha256:"));
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "snap:1",
            "sh",
            "-c",
            "cat /etc/newfile /tmp/up; echo; echo $SNAP; test -e /etc/group || echo gone"
        ]),
        "content\nuploaded\n1\ngone"
    );
    let hist = d.docker_ok(&["history", "--format", "{{.Comment}}", "snap:1"]);
    assert_eq!(hist.lines().next(), Some("snap"));
    // Symlinks inside the container resolve inside it, for cp in both directions.
    d.docker_ok(&[
        "run",
        "--name",
        "esc",
        "bb",
        "sh",
        "-c",
        "ln -s / /escape && ln -s ../../../../../etc /up && echo inside > /etc/marker",
    ]);
    let out = d.dir.join("esc-passwd");
    d.docker_ok(&["cp", "esc:/escape/etc/passwd", out.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(&out).unwrap().contains("user:x:1000"),
        "must be the container's passwd"
    );
    let out = d.dir.join("esc-marker");
    d.docker_ok(&["cp", "esc:/up/marker", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "inside\n");
    let host_probe = d.dir.join("host-probe");
    d.docker_ok(&["cp", d.dir.join("up").to_str().unwrap(), &format!("esc:/escape{}", d.dir.display())]);
    assert!(!host_probe.exists() && !d.dir.join("up").with_file_name("up").is_dir());
    let leaked = std::fs::read_dir(&d.dir).unwrap().count();
    d.docker_ok(&["cp", d.dir.join("up").to_str().unwrap(), "esc:/up/"]);
    assert_eq!(std::fs::read_dir(&d.dir).unwrap().count(), leaked, "nothing may appear on the host");
    assert!(
        !std::path::Path::new("/etc/up").exists(),
        "cp through a container symlink must not write to the host"
    );
    // Tag, rmi (refused while used), save/load round trip, OCI layout.
    d.docker_ok(&["tag", "snap:1", "snap:alias"]);
    let o = d.docker(&["rmi", "bb"]);
    assert!(!o.status.success() && errtext(&o).contains("is being used"), "{}", errtext(&o));
    let saved = d.dir.join("snap.tar");
    d.docker_ok(&["save", "-o", saved.to_str().unwrap(), "snap:1"]);
    let snap_id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "snap:1"]);
    d.docker_ok(&["rmi", "snap:alias"]);
    d.docker_ok(&["rmi", "snap:1"]);
    assert!(d.docker(&["inspect", "snap:1"]).status.code() != Some(0));
    let out = d.docker_ok(&["load", "-i", saved.to_str().unwrap()]);
    assert!(out.contains("Loaded image: snap:1"), "{out}");
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.Id}}", "snap:1"]), snap_id);
    let mut ar = tar::Archive::new(std::fs::File::open(&saved).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    for required in ["oci-layout", "index.json", "manifest.json"] {
        assert!(names.iter().any(|n| n == required), "{required} missing: {names:?}");
    }
    // A corrupt archive is refused and loads nothing.
    let bytes = std::fs::read(&saved).unwrap();
    let broken = d.dir.join("broken.tar");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let before = d.docker_ok(&["images", "-q"]);
    let o = d.docker(&["load", "-i", broken.to_str().unwrap()]);
    assert!(!o.status.success());
    // Berth's own wording, in the stream as Docker sends it (so the CLI prints it as such), with
    // the corrupt bytes it quotes escaped.
    assert!(errtext(&o).contains("invalid archive"), "{}", errtext(&o));
    assert!(!errtext(&o).contains('\u{fffd}'), "{}", errtext(&o));
    let py = format!(
        "import docker\nc = docker.DockerClient(base_url='{}')\ntry:\n    c.images.load(open('{}', 'rb').read())\nexcept docker.errors.ImageLoadError as e:\n    print('refused', e)",
        d.host(),
        broken.display()
    );
    let o = common::python(&py, 60);
    assert!(text(&o).starts_with("refused invalid archive"), "{} {}", text(&o), errtext(&o));
    assert_eq!(d.docker_ok(&["images", "-q"]), before);
    // Prune removes dangling images only.
    let o = d.docker_in(&["import", "-"], &common::busybox_tar());
    assert!(o.status.success());
    let dangling = text(&o);
    d.docker_ok(&["image", "prune", "-f"]);
    assert!(
        d.docker(&["inspect", &dangling]).status.code() != Some(0),
        "the untagged image is pruned"
    );
    assert!(d.docker(&["inspect", "snap:1"]).status.success(), "tagged images stay");
    // A truncated import is refused and leaves no image.
    let tarb = common::busybox_tar();
    let o = d.docker_in(&["import", "-", "half"], &tarb[..tarb.len() / 3]);
    assert!(!o.status.success());
    assert!(d.docker(&["inspect", "half"]).status.code() != Some(0));
}

#[test]
fn live_restore_after_daemon_kill() {
    let mut d = Daemon::start();
    d.busybox("bb");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done",
    ]);
    assert_eq!(
        d.docker(&["run", "--name", "done", "bb", "sh", "-c", "exit 5"]).status.code(),
        Some(5)
    );
    let pid_before = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "live"]);
    d.crash_and_restart();
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}} {{.State.Pid}}", "live"]),
        format!("true {pid_before}")
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "done"]),
        "exited 5"
    );
    let mut follow = d.docker_cmd(&["logs", "-f", "--tail", "1", "live"]);
    follow.stdout(std::process::Stdio::piped());
    let child = follow.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    d.docker_ok(&["stop", "live"]);
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).matches("tick").count() >= 2);
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "live"]), "0");
    // A container that exits while the daemon is down is seen as exited after restart.
    d.docker_ok(&["run", "-d", "--name", "short", "bb", "sh", "-c", "sleep 1; exit 4"]);
    d.crash_and_restart();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(d.docker_ok(&["wait", "short"]), "4");
}

#[test]
fn tty_attach_and_events() {
    let d = Daemon::start();
    d.busybox("bb");
    // A real pty under `script`, so the docker CLI sees a terminal.
    let cmd = "stty rows 30 cols 100; docker run --rm -t bb sh -c 'tty; stty size'".to_string();
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .env("DOCKER_HOST", d.host())
        .env("COLUMNS", "100")
        .env("LINES", "30");
    let o = common::run_timeout(c, None, 60);
    let out = text(&o);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("30 100"), "the TTY has the client's size: {out}");
    // attach to a running container sees its new output.
    d.docker_ok(&["run", "-d", "--name", "att", "bb", "sh", "-c", "sleep 6; echo late; sleep 0.2"]);
    // exec -it: a pty of the client's size.
    let cmd = "stty rows 22 cols 90; docker exec -it att sh -c 'tty; stty size'".to_string();
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"]).env("DOCKER_HOST", d.host());
    let out = text(&common::run_timeout(c, None, 60));
    assert!(out.contains("/dev/pts/") && out.contains("22 90"), "{out}");
    let o = d.docker(&["attach", "att"]);
    assert!(text(&o).contains("late"), "{}", text(&o));
    // A running container's TTY follows the client's window: a pty driven from Python starts at
    // 20x70, is resized to 33x111 (SIGWINCH to the client), and `stty size` inside sees both.
    let script = d.dir.join("resize.py");
    std::fs::write(&script, RESIZE_PY).unwrap();
    for client in [vec!["docker".to_string()], vec![common::BERTH.to_string(), "-H".into(), d.host()]] {
        let mut c = Command::new("python3");
        c.arg(&script).args(&client).args(["run", "--rm", "-it", "bb", "sh"]);
        c.env("DOCKER_HOST", d.host()).env("DOCKER_CONFIG", d.dir.join("docker-config"));
        let o = common::run_timeout(c, None, 60);
        let out = format!("{}{}", text(&o), errtext(&o)).replace('\r', "");
        let sizes: Vec<&str> = out
            .lines()
            .filter(|l| l.split(' ').all(|w| w.parse::<u16>().is_ok()) && l.contains(' '))
            .collect();
        assert_eq!(sizes, ["20 70", "33 111"], "{client:?}: {out}");
    }
    // Events stream lifecycle events.
    let o = d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!("{}", chrono_now() + 1),
        "--filter",
        "container=att",
        "--format",
        "{{.Action}}",
    ]);
    let ev = text(&o);
    for a in ["create", "start", "die"] {
        assert!(ev.lines().any(|l| l == a), "{a} missing in {ev}");
    }
}

/// Runs argv in a pty of 20x70, asks `stty size`, resizes the pty to 33x111 and signals the client,
/// asks again, exits; prints everything the pty showed.
const RESIZE_PY: &str = r#"
import os, pty, sys, time, fcntl, termios, struct, signal, select
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
def setsize(r, c):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", r, c, 0, 0))
out = b""
def read_for(secs):
    global out
    end = time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                return
setsize(20, 70)
read_for(1.5)
os.write(fd, b"stty size\n"); read_for(1.0)
setsize(33, 111); os.kill(pid, signal.SIGWINCH); read_for(1.0)
os.write(fd, b"stty size\n"); read_for(1.0)
os.write(fd, b"exit\n"); read_for(1.0)
os.waitpid(pid, 0)
print(out.decode(errors="replace"))
"#;

/// Wait until a container's logs contain `what`.
fn wait_for_log(d: &Daemon, name: &str, what: &str) {
    let t0 = std::time::Instant::now();
    while !text(&d.docker(&["logs", name])).contains(what) {
        assert!(t0.elapsed().as_secs() < 30, "{name} never logged {what:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn berth_cli_mirrors_docker() {
    let d = Daemon::start();
    let o = d.berth_in(&["import", "-", "bb"], &common::busybox_tar());
    assert!(o.status.success(), "{}", errtext(&o));
    assert!(d.berth_ok(&["images"]).contains("bb"));
    let o = d.berth(&["run", "--name", "b1", "bb", "sh", "-c", "echo hi; exit 2"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(text(&o), "hi");
    let id = d.berth_ok(&["run", "-d", "--name", "b2", "bb", "sh", "-c", "echo up; sleep 30"]);
    assert_eq!(id.len(), 64);
    let t0 = std::time::Instant::now();
    while d.berth_ok(&["logs", "b2"]) != "up" {
        assert!(t0.elapsed().as_secs() < 20, "b2 never logged");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(d.berth_ok(&["ps", "--format", "{{.Names}}"]).contains("b2"));
    assert_eq!(d.berth_ok(&["logs", "b2"]), "up");
    let o = d.berth(&["exec", "b2", "sh", "-c", "exit 6"]);
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(d.berth_ok(&["inspect", "-f", "{{.State.Running}}", "b2"]), "true");
    d.berth_ok(&["stop", "-t", "1", "b2"]);
    d.berth_ok(&["rm", "b1", "b2"]);
    assert_eq!(d.berth_ok(&["ps", "-aq"]), "");
    let o = d.berth_in(&["run", "-i", "--rm", "bb", "cat"], b"piped\n");
    assert_eq!(text(&o), "piped");
    d.berth_ok(&["volume", "create", "v1"]);
    assert!(d.berth_ok(&["volume", "ls"]).contains("v1"));
    d.berth_ok(&["volume", "rm", "v1"]);
    // Every command explains itself.
    for c in [
        "run", "ps", "logs", "exec", "images", "volume", "cp", "save", "load", "import", "commit",
    ] {
        let h = d.berth_ok(&[c, "--help"]);
        assert!(h.contains("Usage"), "{c} --help: {h}");
    }
    let o = d.berth(&["run", "--no-such-flag", "bb"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(errtext(&o).contains("--no-such-flag"), "{}", errtext(&o));
}

#[test]
fn docker_py_sdk() {
    let d = Daemon::start();
    d.busybox("bb");
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
assert c.containers.run("bb", ["echo", "hello py"], remove=True) == b"hello py\n"
ct = c.containers.run("bb", ["sh", "-c", "echo a; sleep 30"], detach=True)
r = ct.exec_run(["sh", "-c", "echo exec; exit 3"])
assert r.exit_code == 3 and r.output == b"exec\n", r
import time; time.sleep(0.3)
assert ct.logs() == b"a\n", ct.logs()
ct.kill()
assert ct.wait()["StatusCode"] == 137
ct.remove()
img = c.images.get("bb")
data = b"".join(img.save())
img.tag("bb", "copy")
assert "bb:copy" in c.images.get("bb:copy").tags
c.images.remove("bb:copy")
loaded = c.images.load(data)
assert loaded[0].id == img.id
v = c.volumes.create("pyvol")
c.containers.run("bb", ["sh", "-c", "echo v > /v/f"], volumes={{"pyvol": {{"bind": "/v", "mode": "rw"}}}}, remove=True)
out = c.containers.run("bb", ["cat", "/v/f"], volumes=["pyvol:/v"], remove=True)
assert out == b"v\n", out
assert c.volumes.get("pyvol").name == "pyvol"
v.remove()
print("ok")
"#,
        host = d.host()
    );
    let o = common::python(&script, 120);
    assert!(o.status.success(), "docker-py failed:\n{}\n{}", text(&o), errtext(&o));
    assert_eq!(text(&o), "ok");
}

/// Real Docker (Debian's docker.io) on its own temporary root, stopped on drop.
struct RealDocker {
    child: std::process::Child,
    host: String,
}

impl RealDocker {
    fn start(dir: &std::path::Path) -> RealDocker {
        let dockerd = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("dockerd (Debian's docker.io) is required: scripts/test.sh installs it");
        std::fs::create_dir_all(dir).unwrap();
        let sock = dir.join("d.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = std::process::Command::new(dockerd)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let rd = RealDocker {
            child,
            host: format!("unix://{}", sock.display()),
        };
        let t0 = std::time::Instant::now();
        loop {
            let o = rd.docker(&["version"]);
            if o.status.success() {
                return rd;
            }
            assert!(
                t0.elapsed().as_secs() < 60,
                "dockerd did not start: {}",
                std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        let mut c = std::process::Command::new("docker");
        c.env("DOCKER_HOST", &self.host).args(args);
        common::run_timeout(c, None, 120)
    }
}

impl Drop for RealDocker {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = std::time::Instant::now();
        while t0.elapsed().as_secs() < 20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn docker_archives_move_both_ways_with_real_docker() {
    let d = Daemon::start();
    d.busybox("bb");
    let rd = RealDocker::start(&d.dir.join("rd"));
    // Real Docker's `docker save` loads into Berth with the same image ID, and runs.
    let tarball = d.dir.join("bb.tar");
    std::fs::write(&tarball, common::busybox_tar()).unwrap();
    let o = rd.docker(&["import", tarball.to_str().unwrap(), "realbb:1"]);
    assert!(o.status.success(), "{}", errtext(&o));
    let real_id = text(&rd.docker(&["inspect", "-f", "{{.Id}}", "realbb:1"]));
    let saved = d.dir.join("real.tar");
    assert!(rd.docker(&["save", "-o", saved.to_str().unwrap(), "realbb:1"]).status.success());
    assert!(d
        .docker_ok(&["load", "-i", saved.to_str().unwrap()])
        .contains("Loaded image: realbb:1"));
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.Id}}", "realbb:1"]), real_id);
    assert_eq!(d.docker_ok(&["run", "--rm", "realbb:1", "echo", "ok"]), "ok");
    // Berth's `save` loads into real Docker with the same image ID, and runs there.
    d.docker_ok(&["run", "--name", "c", "bb", "sh", "-c", "echo berth > /made-by"]);
    d.docker_ok(&["commit", "c", "made:1"]);
    let ours = d.dir.join("ours.tar");
    d.docker_ok(&["save", "-o", ours.to_str().unwrap(), "made:1"]);
    let o = rd.docker(&["load", "-i", ours.to_str().unwrap()]);
    assert!(o.status.success(), "{}", errtext(&o));
    assert_eq!(
        text(&rd.docker(&["inspect", "-f", "{{.Id}}", "made:1"])),
        d.docker_ok(&["inspect", "-f", "{{.Id}}", "made:1"])
    );
    let o = rd.docker(&["run", "--rm", "--network", "none", "made:1", "cat", "/made-by"]);
    assert_eq!(text(&o), "berth", "{}", errtext(&o));
}

#[test]
fn berth_cli_covers_the_rest() {
    let d = Daemon::start();
    let o = d.berth_in(&["import", "-", "bb"], &common::busybox_tar());
    assert!(o.status.success(), "{}", errtext(&o));
    // Lifecycle commands.
    d.berth_ok(&[
        "run",
        "-d",
        "--name",
        "w",
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    let t0 = std::time::Instant::now();
    while d.berth_ok(&["logs", "w"]) != "ready" {
        assert!(t0.elapsed().as_secs() < 20);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(d.berth_ok(&["top", "w"]).contains("sh -c"));
    assert!(d.berth_ok(&["stats", "--no-stream", "w"]).contains("w"));
    d.berth_ok(&["pause", "w"]);
    assert_eq!(d.berth_ok(&["inspect", "-f", "{{.State.Paused}}", "w"]), "true");
    d.berth_ok(&["unpause", "w"]);
    d.berth_ok(&["rename", "w", "w2"]);
    d.berth_ok(&["update", "--pids-limit", "20", "w2"]);
    assert_eq!(d.berth_ok(&["inspect", "-f", "{{.HostConfig.PidsLimit}}", "w2"]), "20");
    d.berth_ok(&["restart", "-t", "1", "w2"]);
    assert_eq!(
        d.berth_ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Running}}", "w2"])
            .split(' ')
            .nth(1),
        Some("true")
    );
    d.berth_ok(&["kill", "-s", "KILL", "w2"]);
    assert_eq!(d.berth_ok(&["wait", "w2"]), "137");
    // Filesystem and image commands.
    assert_eq!(
        d.berth(&["run", "--name", "f", "bb", "sh", "-c", "echo data > /file; rm /etc/group"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(d.berth_ok(&["diff", "f"]), "C /etc\nD /etc/group\nA /file");
    let out = d.dir.join("file.out");
    d.berth_ok(&["cp", "f:/file", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "data\n");
    std::fs::write(d.dir.join("in"), "into").unwrap();
    d.berth_ok(&["cp", d.dir.join("in").to_str().unwrap(), "f:/tmp/in"]);
    let exported = d.dir.join("f.tar");
    d.berth_ok(&["export", "-o", exported.to_str().unwrap(), "f"]);
    let mut ar = tar::Archive::new(std::fs::File::open(&exported).unwrap());
    assert!(ar
        .entries()
        .unwrap()
        .any(|e| e.unwrap().path().unwrap().display().to_string() == "tmp/in"));
    let id = d.berth_ok(&["commit", "-m", "from berth", "f", "made:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(d.berth_ok(&["run", "--rm", "made:1", "cat", "/file", "/tmp/in"]), "data\ninto");
    assert!(d.berth_ok(&["history", "made:1"]).contains("from berth"));
    d.berth_ok(&["tag", "made:1", "made:2"]);
    assert!(d
        .berth_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .any(|l| l == "made:2"));
    let saved = d.dir.join("made.tar");
    d.berth_ok(&["save", "-o", saved.to_str().unwrap(), "made:1"]);
    d.berth_ok(&["rmi", "made:2"]);
    let o = d.berth(&["rmi", "bb"]);
    assert!(!o.status.success(), "an image used by a container is not removed");
    assert!(errtext(&o).contains("is being used"), "{}", errtext(&o));
    d.berth_ok(&["rm", "f", "w2"]);
    d.berth_ok(&["rmi", "made:1"]);
    assert!(d.berth_ok(&["load", "-i", saved.to_str().unwrap()]).contains("made:1"));
    assert_eq!(d.berth_ok(&["image", "inspect", "-f", "{{.Id}}", "made:1"]), id);
    // attach sees output produced after it connects.
    d.berth_ok(&["run", "-d", "--name", "a", "bb", "sh", "-c", "sleep 2; echo attached-out"]);
    assert!(d.berth_ok(&["attach", "a"]).contains("attached-out"));
    assert!(d.berth_ok(&["version"]).contains("1.43"));
    assert!(d.berth_ok(&["info"]).to_lowercase().contains("berth"));
}

/// Run a memory hog limited to 16 MB (with `extra` flags) as container `name`: the OOM killer ends
/// it with 137, and `inspect` says so.
fn assert_oom_killed(d: &Daemon, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-m", "16m", "bb", "sh", "-c", "x=a; while true; do x=$x$x; done"]);
    let o = d.docker(&args);
    assert_eq!(o.status.code(), Some(137), "{}", errtext(&o));
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", name]),
        "true 137"
    );
}

/// The ids of the containers' cgroups left under Berth's parent in the pids hierarchy (or the v2
/// tree): none should outlive its container.
fn leftover_cgroups(ids: &[String]) -> Vec<String> {
    ["/sys/fs/cgroup/pids/berth", "/sys/fs/cgroup/berth"]
        .iter()
        .flat_map(|p| ids.iter().map(move |id| std::path::Path::new(p).join(id)))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn external_runtime_runc() {
    let mut d = Daemon::start_with(&["--add-runtime", "myrunc=/usr/sbin/runc"]);
    d.busybox("bb");
    let info = d.docker_ok(&["info", "--format", "{{json .Runtimes}} {{.DefaultRuntime}}"]);
    assert!(
        info.contains("\"runc\"") && info.contains("\"myrunc\"") && info.ends_with(" berth"),
        "{info}"
    );
    // Attached, detached, exec (with and without a TTY), pause, logs, stop: the same as with the
    // built-in runtime.
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--runtime", "runc", "bb", "echo", "hi from runc"]),
        "hi from runc"
    );
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "r1",
        "--runtime",
        "runc",
        "bb",
        "sh",
        "-c",
        "echo started; exec sleep 30",
    ]);
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", "r1"]), "runc");
    assert_eq!(d.docker_ok(&["exec", "r1", "echo", "exec-ok"]), "exec-ok");
    assert_eq!(d.docker_ok(&["exec", "-t", "r1", "busybox", "tty"]), "/dev/pts/0");
    d.docker_ok(&["pause", "r1"]);
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "r1"]), "paused");
    d.docker_ok(&["unpause", "r1"]);
    assert_eq!(d.docker_ok(&["logs", "r1"]), "started");
    // Live restore: the shim keeps driving runc while the daemon is killed and comes back.
    let pid = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "r1"]);
    d.crash_and_restart();
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}} {{.State.Pid}}", "r1"]),
        format!("true {pid}")
    );
    assert_eq!(d.docker_ok(&["exec", "r1", "echo", "after-restart"]), "after-restart");
    d.docker_ok(&["stop", "-t", "1", "r1"]);
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "r1"]), "137");
    // Exit codes, a missing command (Docker's 127 and message), the OOM killer.
    let o = d.docker(&["run", "--name", "r2", "--runtime", "myrunc", "bb", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    let r2 = d.docker_ok(&["inspect", "-f", "{{.Id}} {{.HostConfig.Runtime}}", "r2"]);
    assert!(r2.ends_with(" myrunc"), "{r2}");
    let o = d.docker(&["run", "--rm", "--runtime", "runc", "bb", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", errtext(&o));
    assert!(
        errtext(&o).contains("exec: \"no-such-command\": executable file not found"),
        "{}",
        errtext(&o)
    );
    assert_oom_killed(&d, "oom", &["--runtime", "runc"]);
    let oom = d.docker_ok(&["inspect", "-f", "{{.Id}}", "oom"]);
    // An unknown runtime is refused at create, as Docker does; `berth run --runtime` works too.
    let o = d.docker(&["run", "--rm", "--runtime", "nope", "bb", "true"]);
    assert!(errtext(&o).contains("unknown or invalid runtime name: nope"), "{}", errtext(&o));
    assert_eq!(
        d.berth_ok(&["run", "--rm", "--runtime", "runc", "bb", "echo", "berth-cli"]),
        "berth-cli"
    );
    // Nothing is left behind: runtime state and cgroups go with the containers.
    d.docker_ok(&["rm", "-f", "r1", "r2", "oom"]);
    let ids = vec![id, r2.split(' ').next().unwrap().to_string(), oom];
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(5)
        && (!leftover_cgroups(&ids).is_empty() || std::fs::read_dir(d.run.join("runtime")).map(|r| r.count()).unwrap_or(0) > 0)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(leftover_cgroups(&ids), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(d.run.join("runtime"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runtime state left: {left:?}");
}

#[test]
fn default_runtime_and_bad_runtime_flags() {
    let d = Daemon::start_with(&["--default-runtime", "runc"]);
    d.busybox("bb");
    d.docker_ok(&["create", "--name", "c", "bb", "true"]);
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", "c"]), "runc");
    d.docker_ok(&["start", "-a", "c"]);
    // The built-in runtime by name still works.
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--runtime", "berth", "bb", "echo", "builtin"]),
        "builtin"
    );
    // A daemon refuses a default runtime it does not know, and a runtime given without a path.
    let t = tempfile::tempdir().unwrap();
    let o = Command::new(common::BERTH)
        .args(["daemon", "--default-runtime", "nope", "--root"])
        .arg(t.path().join("root"))
        .arg("--exec-root")
        .arg(t.path().join("run"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(errtext(&o).contains("--default-runtime nope: no such runtime"), "{}", errtext(&o));
    let o = Command::new(common::BERTH).args(["daemon", "--add-runtime", "x"]).output().unwrap();
    assert!(!o.status.success());
    assert!(errtext(&o).contains("expected NAME=PATH"), "{}", errtext(&o));
}

/// The pid of the zygote serving `run`'s socket, if one is running.
fn zygote_pid(d: &Daemon) -> Option<i32> {
    let sock = d.run.join("zygote.sock");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        // The shims it forked share its command line; they are named berth-shim.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (cmd.contains("shim-zygote") && cmd.contains(sock.to_str()?) && comm.trim() != "berth-shim").then_some(pid)
    })
}

/// The `comm` of the parent of a container's init: its shim.
fn shim_comm(d: &Daemon, name: &str) -> String {
    let pid = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", name]);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid = stat.rsplit(')').next().unwrap().split_whitespace().nth(1).unwrap().to_string();
    std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap().trim().to_string()
}

#[test]
fn shims_are_forked_by_the_zygote_with_exec_as_fallback() {
    let mut d = Daemon::start();
    d.busybox("bb");
    let z = zygote_pid(&d).expect("the daemon starts a shim zygote");
    d.docker_ok(&["run", "-d", "--name", "forked", "bb", "sleep", "60"]);
    assert_eq!(shim_comm(&d, "forked"), "berth-shim");
    // The zygote goes with the daemon, however it goes; its shims stay, and the new daemon has a
    // new zygote.
    d.crash_and_restart();
    let t0 = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{z}")).exists() && t0.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{z}/cmdline")).exists(),
        "the old zygote outlived its daemon"
    );
    assert_eq!(d.docker_ok(&["exec", "forked", "echo", "alive"]), "alive");
    let z2 = zygote_pid(&d).expect("a new zygote");
    // Without a zygote (killed), shims are exec'd: slower, and the same to the user.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(z2), nix::sys::signal::Signal::SIGKILL).unwrap();
    d.docker_ok(&["run", "-d", "--name", "execd", "bb", "sleep", "60"]);
    assert_eq!(shim_comm(&d, "execd"), "berth");
    assert_eq!(d.docker_ok(&["run", "--rm", "bb", "echo", "fallback"]), "fallback");
    d.docker_ok(&["rm", "-f", "forked", "execd"]);
}

#[test]
fn system_df_networks_and_prune() {
    // Docker's side only: with the Kubernetes API its pod network would be listed too.
    let d = Daemon::start_with(&["--no-kube"]);
    d.busybox("bb");
    d.docker_ok(&["volume", "create", "dv"]);
    d.docker_ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "dv:/data",
        "bb",
        "sh",
        "-c",
        "head -c 3000000 /dev/zero > /data/f; head -c 1000000 /dev/zero > /big",
    ]);
    // The writable layer's size in `ps -s` and `inspect -s` (1 MB written, and the image's 2 MB).
    assert_eq!(
        d.docker_ok(&["ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}"])
            .split(" (")
            .next()
            .unwrap(),
        "writer 1MB"
    );
    let sizes = d.docker_ok(&["inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "writer"]);
    let (rw, rootfs) = sizes.split_once(' ').unwrap();
    assert_eq!(rw, "1000000");
    assert!(rootfs.parse::<u64>().unwrap() > 1_000_000, "{sizes}");
    let df = d.docker_ok(&["system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}"]);
    let rows: Vec<&str> = df.lines().collect();
    assert!(rows.contains(&"Containers|1|0|1MB"), "{df}");
    assert!(rows.contains(&"Local Volumes|1|1|3MB"), "{df}");
    assert!(rows.iter().any(|r| r.starts_with("Images|1|1|")), "{df}");
    // A daemon with --bridge none has only the built-in networks (network.rs tests the rest).
    assert_eq!(
        d.docker_ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]),
        "host host\nnone null"
    );
    assert!(d.docker_ok(&["network", "inspect", "-f", "{{.Driver}}", "none"]).contains("null"));
    // The builder's cache goes with `builder prune`; the image it built stays.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nRUN echo one > /one\nRUN echo two > /two\nCMD [\"cat\", \"/two\"]\n",
    )
    .unwrap();
    let c = ctx.path().to_str().unwrap();
    d.berth_ok(&["build", "-q", "-t", "built", c]);
    assert!(d.berth_ok(&["build", "-t", "built", c]).contains("Using cache"));
    let out = d.docker_ok(&["builder", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    let again = d.berth_ok(&["build", "-t", "built", c]);
    assert!(!again.to_lowercase().contains("using cache"), "{again}");
    assert_eq!(d.docker_ok(&["run", "--rm", "built"]), "two");
    // The berth CLI has the same: system df, network ls, events.
    let df = d.berth_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Containers 1") && df.contains("Local Volumes 1"), "{df}");
    assert_eq!(d.berth_ok(&["network", "ls", "-q"]), "host\nnone");
    let ev = d.berth_ok(&["events", "--since", "5m", "--until", "0s", "--filter", "container=writer"]);
    assert!(ev.contains(" container start ") && ev.contains("name=writer"), "{ev}");
    let ev = d.berth_ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "event=die",
        "--filter",
        "container=writer",
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    assert_eq!(ev, "writer");
    // `system prune` (containers, networks, dangling images, build cache) works end to end.
    let out = d.docker_ok(&["system", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
    d.docker_ok(&["run", "--name", "again", "bb", "true"]);
    let out = d.berth_ok(&["system", "prune", "-f"]);
    assert!(
        out.contains("Deleted Container: ") && out.contains("Total reclaimed space"),
        "{out}"
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
    d.docker_ok(&["volume", "rm", "dv"]);
}

/// Details a user of both CLIs runs into: repeated restarts, working directories that do not exist
/// yet, `ps -l` and the list filters, update of every limit, seccomp=unconfined, exit codes of
/// commands that cannot run, API version bounds, and the TTY size from the first byte.
#[test]
fn restarts_workdirs_filters_updates_and_exit_codes() {
    let d = Daemon::start();
    d.busybox("bb");
    // restart, again and again: each one stops and starts the same container cleanly.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "rs",
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    for i in 0..8 {
        if i % 2 == 0 {
            d.docker_ok(&["restart", "-t", "1", "rs"]);
        } else {
            d.berth_ok(&["restart", "-t", "1", "rs"]);
        }
        assert_eq!(
            d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "rs"]),
            "running",
            "after restart {i}"
        );
    }
    // The same when the stop ends in SIGKILL (pid 1 ignores SIGTERM), where the race between the
    // exit's cleanup and the next start was most often lost.
    d.docker_ok(&["run", "-d", "--name", "rk", "bb", "sleep", "1000"]);
    for i in 0..4 {
        d.docker_ok(&["restart", "-t", "1", "rk"]);
        assert_eq!(
            d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "rk"]),
            "running",
            "after restart {i}"
        );
        assert_eq!(d.docker_ok(&["exec", "rk", "echo", "ok"]), "ok");
    }
    d.docker_ok(&["rm", "-f", "rs", "rk"]);

    // A working directory the image lacks is created (mode 0755, root), for both CLIs.
    assert_eq!(d.docker_ok(&["run", "--rm", "-w", "/new/dir", "bb", "pwd"]), "/new/dir");
    assert_eq!(
        d.berth_ok(&["run", "--rm", "-w", "/other", "bb", "stat", "-c", "%a %u", "/other"]),
        "755 0"
    );
    let o = d.docker(&["run", "--rm", "-w", "relative", "bb", "pwd"]);
    assert!(!o.status.success() && errtext(&o).contains("absolute path"), "{}", errtext(&o));

    // ps -l is the newest container, running or not; before/since name containers.
    d.docker_ok(&["run", "-d", "--name", "old", "bb", "sleep", "60"]);
    d.docker_ok(&["run", "--name", "mid", "bb", "true"]);
    d.docker_ok(&["run", "-d", "--name", "new", "bb", "sleep", "60"]);
    d.docker_ok(&["run", "--name", "newest", "bb", "true"]);
    assert_eq!(d.docker_ok(&["ps", "-l", "--format", "{{.Names}}"]), "newest");
    assert_eq!(d.berth_ok(&["ps", "-l", "--format", "{{.Names}}"]), "newest");
    assert_eq!(d.docker_ok(&["ps", "-n", "2", "--format", "{{.Names}}"]), "newest\nnew");
    assert_eq!(
        d.docker_ok(&["ps", "-a", "--filter", "before=mid", "--format", "{{.Names}}"]),
        "old"
    );
    assert_eq!(
        d.docker_ok(&["ps", "-a", "--filter", "since=new", "--format", "{{.Names}}"]),
        "newest"
    );
    // Filters that cannot be applied are refused, never ignored.
    for (args, want) in [
        (vec!["ps", "--filter", "status=bogus"], "status=bogus"),
        (vec!["ps", "--filter", "bogus=1"], "bogus"),
        (vec!["images", "--filter", "dangling=maybe"], "dangling=maybe"),
        (vec!["volume", "ls", "--filter", "bogus=1"], "bogus"),
    ] {
        let o = d.docker(&args);
        assert!(!o.status.success() && errtext(&o).contains(want), "{args:?}: {}", errtext(&o));
    }
    let (st, _, body) = d.http("GET", "/events?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", None);
    assert_eq!(st, 400, "{body}");
    // Image filters by creation order.
    d.docker_ok(&["commit", "mid", "img-a"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    d.docker_ok(&["commit", "newest", "img-b"]);
    let since = d.docker_ok(&["images", "--filter", "since=img-a", "--format", "{{.Repository}}"]);
    assert_eq!(since, "img-b");
    let before = d.docker_ok(&["images", "--filter", "before=img-b", "--format", "{{.Repository}}"]);
    assert!(before.lines().any(|l| l == "img-a") && !before.contains("img-b"), "{before}");

    // update: memory+swap and cpuset reach the cgroup and the record; unsupported ones are refused.
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "old"]);
    d.docker_ok(&["update", "--memory", "64m", "--memory-swap", "128m", "--cpuset-cpus", "0", "old"]);
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpusetCpus}}",
            "old"
        ]),
        "67108864 134217728 0"
    );
    assert_eq!(common::cgroup_value(&id, "cpuset", "cpuset.cpus", "cpuset.cpus", common::same), "0");
    if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            common::cgroup_value(&id, "memory", "memory.memsw.limit_in_bytes", "", common::same),
            "134217728"
        );
    }
    let o = d.docker(&["update", "--memory", "256m", "old"]);
    assert!(errtext(&o).contains("memoryswap"), "{}", errtext(&o));
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "old"]),
        "67108864",
        "a refused update changes nothing"
    );
    d.berth_ok(&["update", "--cpus", "0.5", "old"]);
    let quota = common::cgroup_value(&id, "cpu", "cpu.cfs_quota_us", "cpu.max", |v| {
        v.split(' ').next().unwrap_or("").to_string()
    });
    assert_eq!(quota, "50000");
    let o = d.docker(&["update", "--blkio-weight", "300", "old"]);
    assert!(!o.status.success() && errtext(&o).contains("BlkioWeight"), "{}", errtext(&o));

    // seccomp: Docker's filter by default, none with seccomp=unconfined.
    let status = |extra: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["bb", "grep", "Seccomp:", "/proc/self/status"]);
        d.docker_ok(&a).split_whitespace().last().unwrap_or_default().to_string()
    };
    assert_eq!(status(&[]), "2");
    assert_eq!(status(&["--security-opt", "seccomp=unconfined"]), "0");

    // OOMKilled as Docker reports it: a worker killed for memory counts though pid 1 exits 0.
    let o = d.docker(&[
        "run",
        "--name",
        "oomchild",
        "-m",
        "16m",
        "bb",
        "sh",
        "-c",
        "sh -c 'x=a; while true; do x=$x$x; done'; exit 0",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", errtext(&o));
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oomchild"]),
        "true 0"
    );
    d.docker_ok(&["rm", "oomchild"]);

    // A command that cannot run: 127 when it does not exist, 126 when it is not executable.
    assert_eq!(d.docker(&["run", "--rm", "bb", "no-such-command"]).status.code(), Some(127));
    assert_eq!(d.docker(&["run", "--rm", "bb", "/etc/passwd"]).status.code(), Some(126));
    assert_eq!(d.berth(&["run", "--rm", "bb", "/etc/passwd"]).status.code(), Some(126));

    // A network that does not exist is a 404, as in Docker; so is sharing a container's that does not.
    let (st, _, body) = d.http(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"bb","HostConfig":{"NetworkMode":"nonet"}}"#),
    );
    assert!(st == 404 && body.contains("network nonet not found"), "{st} {body}");
    let (st, _, _) = d.http(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"bb","HostConfig":{"NetworkMode":"container:x"}}"#),
    );
    assert_eq!(st, 404);
    // --cpus after --cpu-quota is refused, as Docker refuses it.
    d.docker_ok(&["run", "-d", "--name", "cq", "--cpu-quota", "20000", "bb", "sleep", "60"]);
    let o = d.docker(&["update", "--cpus", "1", "cq"]);
    assert!(errtext(&o).contains("Nano CPUs cannot be updated"), "{}", errtext(&o));
    d.docker_ok(&["rm", "-f", "cq"]);

    // API versions outside the server's range get Docker's 400.
    let (st, _, body) = d.http("GET", "/v1.99/version", None);
    assert!(st == 400 && body.contains("too new"), "{st} {body}");
    let (st, _, body) = d.http("GET", "/v1.12/version", None);
    assert!(st == 400 && body.contains("too old"), "{st} {body}");
    assert_eq!(d.http("GET", "/v1.41/version", None).0, 200);

    // berth run -t: the TTY has the terminal's size from the first byte (no resize race).
    let cmd = format!("stty rows 33 cols 101; {} -H {} run --rm -t bb stty size", common::BERTH, d.host());
    for _ in 0..3 {
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]);
        let out = text(&common::run_timeout(c, None, 60));
        assert!(out.contains("33 101"), "{out}");
    }
    d.docker_ok(&["rm", "-f", "old", "mid", "new", "newest"]);
}

/// Every `run`/`create`/`exec`/`logs`/`ps`/`rm` flag of the issue, the same argv through the docker
/// CLI and through `berth`, with the same result.
#[test]
fn run_and_exec_flags_through_both_clients() {
    let mut d = Daemon::start();
    d.busybox("bb");
    let host_dir = d.dir.join("bind");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("f"), "from host\n").unwrap();
    let bind = format!("{}:/m:ro", host_dir.display());
    let envf = d.dir.join("env.list");
    std::fs::write(&envf, "A=1\n# comment\nB=two\n").unwrap();
    let envf = envf.to_str().unwrap().to_string();
    let host = nix::unistd::gethostname().unwrap().to_string_lossy().into_owned();
    // An image whose STOPSIGNAL is USR1.
    d.docker_ok(&[
        "commit",
        "--change",
        "STOPSIGNAL SIGUSR1",
        &{
            d.docker_ok(&["create", "--name", "sigsrc", "bb", "true"]);
            "sigsrc".to_string()
        },
        "bb-usr1",
    ]);
    d.docker_ok(&["rm", "sigsrc"]);
    for client in ["docker", "berth"] {
        let run = |args: &[&str]| -> std::process::Output {
            if client == "docker" {
                d.docker(args)
            } else {
                d.berth(args)
            }
        };
        let ok = |args: &[&str]| -> String {
            let o = run(args);
            assert!(o.status.success(), "{client} {args:?}: {}", errtext(&o));
            text(&o)
        };
        let n = |s: &str| format!("{s}-{client}");
        // Environment, working directory, user and group, hostname.
        assert_eq!(
            ok(&[
                "run",
                "--rm",
                "-e",
                "FOO=bar",
                "-w",
                "/tmp",
                "-u",
                "1000:1001",
                "--hostname",
                "box",
                "bb",
                "sh",
                "-c",
                "echo $FOO $(pwd) $(id -u):$(id -g) $(hostname)"
            ]),
            "bar /tmp 1000:1001 box",
            "{client}"
        );
        let env = ok(&["run", "--rm", "--env-file", &envf, "--entrypoint", "env", "bb"]);
        assert!(
            env.lines().any(|l| l == "A=1") && env.lines().any(|l| l == "B=two"),
            "{client}: {env}"
        );
        // A read-only bind mount and a named volume that outlives its containers.
        assert_eq!(
            ok(&[
                "run",
                "--rm",
                "-v",
                &bind,
                "bb",
                "sh",
                "-c",
                "cat /m/f; touch /m/x 2>/dev/null && echo writable || echo read-only"
            ]),
            "from host\nread-only",
            "{client}"
        );
        let vol = n("vol");
        ok(&[
            "run",
            "--rm",
            "-v",
            &format!("{vol}:/data"),
            "bb",
            "sh",
            "-c",
            "echo kept > /data/k",
        ]);
        assert_eq!(
            ok(&["run", "--rm", "-v", &format!("{vol}:/data"), "bb", "cat", "/data/k"]),
            "kept",
            "{client}"
        );
        assert!(ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", &vol]).starts_with('/'));
        ok(&["volume", "rm", &vol]);
        // Limits land in the container's cgroup.
        let lim = n("lim");
        let id = ok(&[
            "run",
            "-d",
            "--name",
            &lim,
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "bb",
            "sleep",
            "60",
        ]);
        assert_eq!(
            common::cgroup_value(&id, "memory", "memory.limit_in_bytes", "memory.max", common::same),
            "67108864",
            "{client}"
        );
        let quota = common::cgroup_value(&id, "cpu", "cpu.cfs_quota_us", "cpu.max", |v| {
            v.split(' ').next().unwrap_or("").to_string()
        });
        assert_eq!(quota, "50000", "{client}");
        assert_eq!(
            common::cgroup_value(&id, "pids", "pids.max", "pids.max", common::same),
            "50",
            "{client}"
        );
        // rm -f removes a running container.
        ok(&["rm", "-f", &lim]);
        // Read-only root with a tmpfs; capabilities; no-new-privileges; networks.
        assert_eq!(
            ok(&[
                "run",
                "--rm",
                "--read-only",
                "--tmpfs",
                "/run",
                "bb",
                "sh",
                "-c",
                "touch /x 2>/dev/null && echo rw || echo ro; touch /run/ok && echo tmpfs"
            ]),
            "ro\ntmpfs",
            "{client}"
        );
        assert!(ok(&["run", "--rm", "--cap-drop", "ALL", "bb", "grep", "CapEff", "/proc/self/status"]).ends_with("0000000000000000"));
        assert!(
            run(&[
                "run",
                "--rm",
                "--cap-add",
                "NET_ADMIN",
                "bb",
                "ip",
                "link",
                "set",
                "lo",
                "mtu",
                "1400"
            ])
            .status
            .success(),
            "{client}"
        );
        assert!(ok(&[
            "run",
            "--rm",
            "--security-opt",
            "no-new-privileges",
            "bb",
            "grep",
            "NoNewPrivs",
            "/proc/self/status"
        ])
        .ends_with('1'));
        let addrs = ok(&["run", "--rm", "--network", "none", "bb", "ip", "-o", "addr"]);
        assert!(addrs.lines().all(|l| l.contains(" lo ")), "{client}: {addrs}");
        assert_eq!(ok(&["run", "--rm", "--network", "host", "bb", "hostname"]), host);
        if std::path::Path::new("/usr/bin/tini-static").exists() {
            let ps = ok(&["run", "--rm", "--init", "bb", "ps", "-o", "pid,args"]);
            assert!(
                ps.lines().any(|l| l.trim().starts_with("1 ") && l.contains("docker-init")),
                "{client}: {ps}"
            );
        }
        // create, then start -a.
        let c = n("created");
        ok(&["create", "--name", &c, "bb", "echo", "hi from create"]);
        assert_eq!(
            ok(&["ps", "-a", "--filter", &format!("name={c}"), "--format", "{{.Status}}"]),
            "Created"
        );
        assert_eq!(ok(&["start", "-a", &c]), "hi from create", "{client}");
        // A restart policy restarts a failing container, up to its count.
        let rp = n("rp");
        ok(&["run", "-d", "--name", &rp, "--restart", "on-failure:2", "bb", "sh", "-c", "exit 3"]);
        let t0 = std::time::Instant::now();
        while ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", &rp]) != "2 exited" {
            assert!(t0.elapsed().as_secs() < 30, "{client}: on-failure:2 did not run out");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for pol in ["always", "unless-stopped"] {
            let name = n(pol);
            ok(&[
                "run",
                "-d",
                "--name",
                &name,
                "--restart",
                pol,
                "bb",
                "sh",
                "-c",
                "sleep 0.2; exit 1",
            ]);
            let t0 = std::time::Instant::now();
            while ok(&["inspect", "-f", "{{.RestartCount}}", &name]) == "0" {
                assert!(t0.elapsed().as_secs() < 30, "{client}: --restart {pol} did not restart");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            ok(&["rm", "-f", &name]);
        }
        // ps filters; logs --tail, -t, --since, -f.
        let lg = n("lg");
        ok(&[
            "run",
            "-d",
            "--name",
            &lg,
            "--label",
            "role=logger",
            "bb",
            "sh",
            "-c",
            "for i in 1 2 3; do echo line$i; done; sleep 1; echo last",
        ]);
        assert_eq!(ok(&["ps", "--filter", "label=role=logger", "--format", "{{.Names}}"]), lg);
        assert_eq!(
            ok(&["ps", "-a", "--filter", &format!("name={lg}"), "--filter", "status=running", "-q"]).len(),
            12
        );
        assert_eq!(
            ok(&["logs", "-f", &lg]),
            "line1\nline2\nline3\nlast",
            "{client}: logs -f ends with the container"
        );
        assert_eq!(ok(&["logs", "--tail", "2", &lg]), "line3\nlast");
        assert!(ok(&["logs", "-t", &lg])
            .lines()
            .all(|l| l.contains("Z line") || l.contains("Z last")));
        assert_eq!(ok(&["logs", "--since", &format!("{}", chrono_now() + 3600), &lg]), "");
        // exec: -i, -e, -u, -w, -d.
        let ex = n("ex");
        ok(&["run", "-d", "--name", &ex, "bb", "sleep", "60"]);
        let o = if client == "docker" {
            d.docker_in(&["exec", "-i", &ex, "sh", "-c", "read x; echo got:$x"], b"in\n")
        } else {
            d.berth_in(&["exec", "-i", &ex, "sh", "-c", "read x; echo got:$x"], b"in\n")
        };
        assert_eq!(text(&o), "got:in", "{client}");
        let o = run(&[
            "exec",
            "-e",
            "X=42",
            "-w",
            "/etc",
            "-u",
            "1000",
            &ex,
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u); exit 7",
        ]);
        assert_eq!((o.status.code(), text(&o)), (Some(7), "42 /etc 1000".to_string()), "{client}");
        ok(&["exec", "-d", &ex, "sh", "-c", "echo bg > /tmp/b.tmp && mv /tmp/b.tmp /tmp/b"]);
        let t0 = std::time::Instant::now();
        while !run(&["exec", &ex, "test", "-e", "/tmp/b"]).status.success() {
            assert!(t0.elapsed().as_secs() < 20, "{client}: exec -d never ran");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // exec -t: a pty.
        let bin = if client == "docker" {
            "docker".to_string()
        } else {
            format!("{} -H {}", common::BERTH, d.host())
        };
        let mut sc = Command::new("script");
        sc.args([
            "-qec",
            &format!("stty rows 12 cols 34; {bin} exec -it {ex} sh -c 'tty; stty size'"),
            "/dev/null",
        ])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.join("docker-config"));
        let out = text(&common::run_timeout(sc, None, 60));
        assert!(out.contains("/dev/pts/") && out.contains("12 34"), "{client}: {out}");
        ok(&["rm", "-f", &ex]);
        // stop sends the image's STOPSIGNAL.
        let sg = n("sg");
        ok(&[
            "run",
            "-d",
            "--name",
            &sg,
            "bb-usr1",
            "sh",
            "-c",
            "trap 'exit 9' USR1; echo ready; while true; do sleep 0.1; done",
        ]);
        wait_for_log(&d, &sg, "ready");
        ok(&["stop", "-t", "5", &sg]);
        assert_eq!(ok(&["inspect", "-f", "{{.State.ExitCode}}", &sg]), "9", "{client}");
        // rm -v removes the container's anonymous volume.
        let av = n("av");
        ok(&["run", "--name", &av, "-v", "/anon", "bb", "true"]);
        let vname = ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", &av]);
        assert!(ok(&["volume", "ls", "-q"]).lines().any(|l| l == vname), "{client}");
        ok(&["rm", "-v", &av]);
        assert!(
            !ok(&["volume", "ls", "-q"]).lines().any(|l| l == vname),
            "{client}: rm -v left {vname}"
        );
        ok(&["rm", "-f", &c, &rp, &lg, &sg]);
    }
    // docker: update --cpus, rmi -f of an image a container uses.
    let id = d.docker_ok(&["run", "-d", "--name", "up", "bb", "sleep", "60"]);
    d.docker_ok(&["update", "--cpus", "0.25", "up"]);
    let quota = common::cgroup_value(&id, "cpu", "cpu.cfs_quota_us", "cpu.max", |v| {
        v.split(' ').next().unwrap_or("").to_string()
    });
    assert_eq!(quota, "25000");
    d.docker_ok(&["tag", "bb", "bb-copy"]);
    d.docker_ok(&["run", "--name", "user", "bb-usr1", "true"]);
    assert!(!d.docker(&["rmi", "bb-usr1"]).status.success());
    d.docker_ok(&["rmi", "-f", "bb-usr1"]);
    // Live restore seen through berth: a kill -9 of the daemon leaves the container running, and
    // berth's ps, logs -f and stop work on it afterwards.
    d.berth_ok(&[
        "run",
        "-d",
        "--name",
        "lr",
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done",
    ]);
    d.crash_and_restart();
    assert!(d
        .berth_ok(&["ps", "--format", "{{.Names}} {{.State}}"])
        .lines()
        .any(|l| l == "lr running"));
    let mut follow = d.berth_cmd(&["logs", "-f", "--tail", "1", "lr"]);
    follow.stdout(std::process::Stdio::piped());
    let child = follow.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    d.berth_ok(&["stop", "lr"]);
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).matches("tick").count() >= 2);
    assert_eq!(d.berth_ok(&["inspect", "-f", "{{.State.ExitCode}}", "lr"]), "0");
    d.docker_ok(&["rm", "-f", "up", "user", "lr"]);
}

/// A rootfs tar with busybox and a setuid-root copy of it at /suid: a root shell for anyone who
/// can execute it on the host.
fn setuid_image_tar() -> Vec<u8> {
    let bb = std::fs::read(
        ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap(),
    )
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        match link {
            Some(l) => b.append_link(&mut h, name, l).unwrap(),
            None => b.append_data(&mut h, name, data).unwrap(),
        }
    };
    add("bin", tar::EntryType::Directory, 0o755, &[], None);
    add("tmp", tar::EntryType::Directory, 0o1777, &[], None);
    add("bin/busybox", tar::EntryType::Regular, 0o755, &bb, None);
    for a in ["sh", "cp", "chmod", "sleep", "id"] {
        add(&format!("bin/{a}"), tar::EntryType::Symlink, 0o777, &[], Some("busybox"));
    }
    add("suid", tar::EntryType::Regular, 0o4755, &bb, None);
    b.into_inner().unwrap()
}

/// Every setuid file under `dir` (as root sees them), not following symlinks.
fn setuid_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(md) = e.path().symlink_metadata() else { continue };
        if md.is_dir() {
            setuid_files(&e.path(), out);
        } else if md.is_file() && md.permissions().mode() & 0o4000 != 0 {
            out.push(e.path());
        }
    }
}

/// Run `args` as the host's `nobody` (no groups, no capabilities). setpriv itself still holds
/// root's capabilities when it execs (so it could reach anything), hence the shell in between.
fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "/bin/sh",
            "-c",
            "exec \"$0\" \"$@\"",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn state_is_private_to_root() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut d = Daemon::start();
    // An install as an older Berth left it, under a world-readable parent (as /var/lib is).
    let open = |p: &std::path::Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    open(&d.dir, 0o755);
    for p in [
        d.root.clone(),
        d.root.join("image"),
        d.root.join("containers"),
        d.root.join("volumes"),
        d.run.clone(),
        d.run.join("c"),
    ] {
        open(&p, 0o755);
    }
    d.crash_and_restart();
    let mode = |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&d.root), 0o710, "data root");
    assert_eq!(mode(&d.run), 0o710, "exec root");
    for sub in ["image", "containers", "volumes", "tmp"] {
        assert_eq!(mode(&d.root.join(sub)), 0o700, "{sub}");
    }
    assert_eq!(mode(&d.sock), 0o660, "API socket");
    assert_eq!(std::fs::metadata(&d.sock).unwrap().uid(), 0);

    // A hostile image, a running container from it, a setuid binary written into its writable
    // layer and into a volume.
    let o = common::run_timeout(d.docker_cmd(&["import", "-", "hostile"]), Some(&setuid_image_tar()), 60);
    assert!(o.status.success(), "{}", errtext(&o));
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "h",
        "-v",
        "hv:/data",
        "hostile",
        "sh",
        "-c",
        "cp /bin/busybox /tmp/suid2 && chmod 4755 /tmp/suid2 && cp /bin/busybox /data/suid3 && chmod 4755 /data/suid3 && sleep 1000",
    ]);
    let t0 = std::time::Instant::now();
    let mut found = Vec::new();
    while t0.elapsed() < std::time::Duration::from_secs(10) {
        found.clear();
        setuid_files(&d.root, &mut found);
        let names: Vec<_> = found
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        if names.iter().any(|n| n == "suid2") && names.iter().any(|n| n == "suid3") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let names: Vec<_> = found.iter().map(|p| p.display().to_string()).collect();
    for want in ["/suid", "/suid2", "/suid3"] {
        assert!(names.iter().any(|n| n.ends_with(want)), "{want} not found on the host: {names:?}");
    }
    // The layer, the mounted rootfs, the upper dir and the volume each hold one; nobody on the
    // host can run or even see any of them, nor list anything of Berth's.
    assert!(found.len() >= 4, "{names:?}");
    for f in &found {
        let f = f.to_str().unwrap();
        let o = as_nobody(&[f, "id", "-u"]);
        assert!(!o.status.success(), "nobody ran {f}: {}", text(&o));
        assert!(errtext(&o).contains("Permission denied"), "{f}: {}", errtext(&o));
        assert!(!as_nobody(&["test", "-e", f]).status.success(), "nobody sees {f}");
    }
    for dir in [
        &d.root,
        &d.run,
        &d.root.join("image/layers"),
        &d.root.join("containers"),
        &d.root.join("volumes"),
        &d.run.join("c"),
    ] {
        let o = as_nobody(&["ls", dir.to_str().unwrap()]);
        assert!(!o.status.success(), "nobody listed {}: {}", dir.display(), text(&o));
    }
    let o = as_nobody(&["sh", "-c", &format!("echo x > {}/x", d.run.display())]);
    assert!(!o.status.success(), "nobody wrote into the exec root");
    // Nothing the daemon itself wrote (metadata, logs, sockets) is world-writable, whatever the
    // umask it was started with.
    fn world_writable(dir: &std::path::Path, skip: &dyn Fn(&std::path::Path) -> bool, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if skip(&p) {
                continue;
            }
            let Ok(md) = p.symlink_metadata() else { continue };
            if md.file_type().is_symlink() {
                continue;
            }
            if md.permissions().mode() & 0o002 != 0 {
                out.push(p.display().to_string());
            }
            if md.is_dir() {
                world_writable(&p, skip, out);
            }
        }
    }
    // Image and container content is the image's own (its /tmp is 1777 by design).
    let content = |p: &std::path::Path| {
        let s = p.to_string_lossy();
        s.contains("/image/layers/") || s.ends_with("/rootfs") || s.ends_with("/diff") || s.ends_with("/work") || s.ends_with("/_data")
    };
    let mut bad = Vec::new();
    world_writable(&d.root, &content, &mut bad);
    world_writable(&d.run, &|p: &std::path::Path| p.ends_with("runtime"), &mut bad);
    assert!(bad.is_empty(), "world-writable: {bad:?}");
    d.docker_ok(&["rm", "-f", "h"]);
}

/// Poll `f` until it returns true (10 s at most).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(10) {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn healthchecks_as_docker_runs_them() {
    let d = Daemon::start();
    d.busybox("bb");
    let t0 = chrono_now();
    for client in ["docker", "berth"] {
        let run = |args: &[&str]| if client == "docker" { d.docker(args) } else { d.berth(args) };
        let ok = |args: &[&str]| -> String {
            let o = run(args);
            assert!(o.status.success(), "{client} {args:?}: {}", errtext(&o));
            text(&o)
        };
        let name = format!("hc-{client}");
        let slow = format!("hs-{client}");
        ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--health-cmd",
            "test -f /tmp/ok && echo fine",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "bb",
            "sh",
            "-c",
            "touch /tmp/ok; sleep 1000",
        ]);
        // A check that has not run yet: starting.
        ok(&[
            "run",
            "-d",
            "--name",
            &slow,
            "--health-cmd",
            "true",
            "--health-interval",
            "1h",
            "bb",
            "sleep",
            "1000",
        ]);
        assert!(ok(&["ps", "--filter", &format!("name={slow}"), "--format", "{{.Status}}"]).ends_with("(health: starting)"));
        assert!(ok(&["ps", "--filter", "health=starting", "--format", "{{.Names}}"])
            .lines()
            .any(|l| l == slow));
        let status = |n: &str| ok(&["inspect", "-f", "{{.State.Health.Status}}", n]);
        eventually("healthy", || status(&name) == "healthy");
        assert!(ok(&["ps", "--filter", &format!("name={name}"), "--format", "{{.Status}}"]).ends_with("(healthy)"));
        assert_eq!(ok(&["ps", "--filter", "health=healthy", "--format", "{{.Names}}"]), name);
        let last = ok(&[
            "inspect",
            "-f",
            "{{with index .State.Health.Log 0}}{{.ExitCode}} {{.Output}}{{end}}",
            &name,
        ]);
        assert_eq!(last, "0 fine");
        // The check starts failing: unhealthy after two failures in a row.
        ok(&["exec", &name, "rm", "/tmp/ok"]);
        eventually("unhealthy", || status(&name) == "unhealthy");
        let streak: i64 = ok(&["inspect", "-f", "{{.State.Health.FailingStreak}}", &name]).parse().unwrap();
        assert!(streak >= 2, "{streak}");
        eventually("five results kept", || {
            ok(&["inspect", "-f", "{{len .State.Health.Log}}", &name]) == "5"
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert_eq!(ok(&["inspect", "-f", "{{len .State.Health.Log}}", &name]), "5");
        assert!(ok(&["ps", "--format", "{{.Names}} {{.Status}}"]).contains(&format!("{name} Up")));
        assert!(ok(&["ps", "--filter", &format!("name={name}"), "--format", "{{.Status}}"]).ends_with("(unhealthy)"));
        assert_eq!(ok(&["ps", "--filter", "health=unhealthy", "--format", "{{.Names}}"]), name);
        assert_eq!(ok(&["ps", "--filter", "health=none", "--format", "{{.Names}}"]), "");
        ok(&["rm", "-f", &name, &slow]);
    }
    // health_status events, on each change.
    let events = d.docker_ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &(chrono_now() + 1).to_string(),
        "--filter",
        "container=hc-docker",
        "--format",
        "{{.Action}}",
    ]);
    let changes: Vec<&str> = events.lines().filter(|l| l.starts_with("health_status")).collect();
    assert_eq!(changes, ["health_status: healthy", "health_status: unhealthy"], "{events}");

    // HEALTHCHECK from the image, a probe that outlives its timeout, --no-healthcheck.
    let ctx = d.dir.join("hctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nHEALTHCHECK --interval=200ms --timeout=300ms --retries=1 CMD sleep 5\n",
    )
    .unwrap();
    d.docker_ok(&["build", "-q", "-t", "bb-hc", ctx.to_str().unwrap()]);
    d.docker_ok(&["run", "-d", "--name", "img-hc", "bb-hc", "sleep", "1000"]);
    eventually("image check unhealthy", || {
        d.docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", "img-hc"]) == "unhealthy"
    });
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{with index .State.Health.Log 0}}{{.ExitCode}} {{.Output}}{{end}}",
            "img-hc"
        ]),
        "-1 Health check exceeded timeout (300ms)"
    );
    // The timed-out probe was killed: no `sleep 5` is left but the container's own.
    let top = d.docker_ok(&["top", "img-hc"]);
    assert!(!top.contains("sleep 5"), "{top}");
    d.docker_ok(&["run", "-d", "--name", "no-hc", "--no-healthcheck", "bb-hc", "sleep", "1000"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{json .State.Health}} {{json .Config.Healthcheck.Test}}", "no-hc"]),
        "null [\"NONE\"]"
    );
    // Checks Docker refuses at create.
    let o = d.docker(&["run", "--health-cmd", "true", "--health-interval", "10us", "bb", "true"]);
    assert!(
        errtext(&o).contains("Interval in Healthcheck cannot be less than 1ms"),
        "{}",
        errtext(&o)
    );
    let o = d.docker(&["run", "--no-healthcheck", "--health-cmd", "true", "bb", "true"]);
    assert!(!o.status.success());
    let o = d.berth(&["run", "--no-healthcheck", "--health-cmd", "true", "bb", "true"]);
    assert!(
        errtext(&o).contains("--no-healthcheck conflicts with --health-* options"),
        "{}",
        errtext(&o)
    );
    d.docker_ok(&["rm", "-f", "img-hc", "no-hc"]);

    // docker-py, and a check that goes on after the daemon is killed and restarted.
    let script = format!(
        r#"
import docker, time
c = docker.DockerClient(base_url="{host}")
ct = c.containers.run("bb", ["sleep", "1000"], detach=True, name="py-hc",
                      healthcheck={{"test": ["CMD", "true"], "interval": 200_000_000}})
for _ in range(100):
    ct.reload()
    if ct.health == "healthy":
        break
    time.sleep(0.1)
assert ct.health == "healthy", ct.attrs["State"]
print("ok")
"#,
        host = d.host()
    );
    let o = common::python(&script, 60);
    assert!(o.status.success(), "docker-py failed:\n{}\n{}", text(&o), errtext(&o));
    let mut d = d;
    let ends = |d: &Daemon| d.docker_ok(&["inspect", "-f", "{{range .State.Health.Log}}{{.End}} {{end}}", "py-hc"]);
    let before = ends(&d);
    d.crash_and_restart();
    eventually("probes after the restart", || ends(&d) != before);
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", "py-hc"]), "healthy");
}

#[test]
fn exec_attach_detach_and_kill_fidelity() {
    let d = Daemon::start();
    d.busybox("bb");
    d.docker_ok(&["run", "-d", "--name", "ex", "bb", "sleep", "1000"]);
    // SIGKILL returns once the container is gone: the next inspect sees 137 every time.
    for i in 0..10 {
        let n = format!("k{i}");
        d.docker_ok(&["run", "-d", "--name", &n, "bb", "sleep", "1000"]);
        d.docker_ok(&["kill", &n]);
        assert_eq!(
            d.docker_ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", &n]),
            "exited 137"
        );
        d.docker_ok(&["rm", &n]);
    }
    // A client that still sends input when the exec ends gets all the output, not a reset.
    for _ in 0..50 {
        let o = d.docker_in(&["exec", "-i", "ex", "echo", "hello out"], b"unread input\n");
        assert_eq!((text(&o), errtext(&o)), ("hello out".to_string(), String::new()));
    }
    let script = format!(
        r#"
import docker, os, pty, select, socket, subprocess, time
c = docker.DockerClient(base_url="{host}")
ct = c.containers.get("ex")
for i in range(int(os.environ.get("EXEC_RUNS", "1000"))):
    r = ct.exec_run(["echo", "hello out"], tty=True)
    assert r.output == b"hello out\r\n", (i, r.output)
    r = ct.exec_run(["sh", "-c", "echo hello out; echo err >&2"], demux=True)
    assert r.output == (b"hello out\n", b"err\n"), (i, r.output)
api = c.api
def raw(exec_tty, start_tty):
    e = api.exec_create("ex", ["echo", "hello out"], tty=exec_tty)
    s = api.exec_start(e["Id"], socket=True, tty=start_tty)._sock
    data = b""
    while True:
        d = s.recv(4096)
        if not d: return data
        data += d
# Framed by the start's Tty, as Docker does.
assert raw(True, False) == b"\x01\x00\x00\x00\x00\x00\x00\x0bhello out\r\n", raw(True, False)
assert raw(False, True) == b"hello out\n"
assert raw(False, False) == b"\x01\x00\x00\x00\x00\x00\x00\x0ahello out\n"
# attach with logs only returns the output so far; with no stream at all, nothing at once.
lg = c.containers.run("bb", ["sh", "-c", "echo one; echo two >&2; sleep 1000"], detach=True, name="lg")
for _ in range(50):
    if lg.logs() == b"one\ntwo\n": break
    time.sleep(0.1)
assert lg.attach(stdout=True, stderr=True, stream=False, logs=True) == b"one\ntwo\n"
# (Waiting instead would end in docker-py's read timeout.)
assert lg.attach(stdout=True, stderr=True, stream=False, logs=False) == b""
assert b"".join(api.attach("lg", stdout=False, stderr=False, stream=True, logs=False)) == b""

def detach(argv, keys, env):
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    out = b""
    deadline = time.time() + 20
    # Type only once the client has put the terminal in raw mode (a cooked one keeps ctrl-q).
    import termios
    while termios.tcgetattr(fd)[3] & termios.ICANON and time.time() < deadline:
        time.sleep(0.02)
    os.write(fd, b"echo mark$((6*7))\r")
    while b"mark42" not in out and time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try: out += os.read(fd, 4096)
            except OSError: break
    assert b"mark42" in out, out
    # One key at a time, as typed.
    for k in keys:
        os.write(fd, bytes([k]))
        time.sleep(0.05)
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            os.close(fd)
            return os.waitstatus_to_exitcode(status)
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try: out += os.read(fd, 4096)
            except OSError: pass
    os.kill(pid, 9)
    raise AssertionError("did not detach: " + repr(out))

env = dict(os.environ, DOCKER_HOST="{host}", DOCKER_CONFIG="{cfg}")
tt = c.containers.run("bb", ["sh"], detach=True, tty=True, stdin_open=True, name="tt")
detach(["docker", "attach", "tt"], b"\x10\x11", env)
tt.reload(); assert tt.status == "running", tt.status
detach(["docker", "exec", "-it", "tt", "sh"], b"\x10\x11", env)
detach(["docker", "attach", "--detach-keys", "ctrl-a,x", "tt"], b"\x01x", env)
# The daemon detaches too (for clients that do not watch for the keys): a raw attach whose
# input holds ctrl-p ctrl-q is closed, the container goes on.
s = socket.socket(socket.AF_UNIX)
s.connect("{sock}")
s.sendall(b"POST /v1.43/containers/tt/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
s.settimeout(10)
head = b""
while b"\r\n\r\n" not in head: head += s.recv(4096)
assert head.startswith(b"HTTP/1.1 101"), head
s.sendall(b"echo x\x10\x11")
rest = b""
while True:
    d = s.recv(4096)
    if not d: break
    rest += d
tt.reload(); assert tt.status == "running", tt.status
# The client's config file names the keys.
os.makedirs("{cfg}", exist_ok=True)
open("{cfg}/config.json", "w").write('{{"detachKeys": "ctrl-e,e"}}')
detach(["docker", "attach", "tt"], b"\x05e", env)
detach(["{berth}", "-H", "{host}", "attach", "tt"], b"\x10\x11", env)
tt.reload(); assert tt.status == "running", tt.status
print("ok")
"#,
        host = d.host(),
        cfg = d.dir.join("docker-config").display(),
        sock = d.sock.display(),
        berth = common::BERTH,
    );
    let o = common::python(&script, 300);
    assert!(o.status.success(), "docker-py failed:\n{}\n{}", text(&o), errtext(&o));
    d.docker_ok(&["rm", "-f", "ex", "lg", "tt"]);
}

/// A docker-archive (`docker save` format) of one image `name` whose layers are `layers` (each
/// as the archive holds it, here gzipped, and its diff ID), at `<i>/layer.tar`.
fn docker_archive(name: &str, layers: &[(Vec<u8>, String)]) -> Vec<u8> {
    let diff_ids: Vec<&str> = layers.iter().map(|(_, d)| d.as_str()).collect();
    let paths: Vec<String> = (0..layers.len()).map(|i| format!("{i}/layer.tar")).collect();
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": [name], "Layers": paths}]);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, path, data).unwrap();
    };
    for (path, (data, _)) in paths.iter().zip(layers) {
        add(path, data);
    }
    add("config.json", &common::image_config(&diff_ids));
    add("manifest.json", manifest.to_string().as_bytes());
    b.into_inner().unwrap()
}

/// `docker load` and docker-py's `images.load` of archive bombs against a daemon with small limits:
/// each is refused with a message naming the limit and the layer, and leaves no blob, no
/// temporary file, no layer directory and no image; a normal image still loads.
#[test]
fn a_gzip_bomb_is_refused_with_nothing_left_behind() {
    let d = Daemon::start_with(&["--max-layer-size", "64m", "--max-image-size", "96m", "--max-layer-entries", "1000"]);
    d.busybox("bb");
    let before = common::image_state(&d);
    let images = d.docker_ok(&["images", "-a", "-q", "--no-trunc"]);
    let unchanged = |what: &str| {
        assert_eq!(common::image_state(&d), before, "{what} left something behind");
        assert_eq!(d.docker_ok(&["images", "-a", "-q", "--no-trunc"]), images, "{what} left an image");
        assert!(
            !d.docker(&["image", "inspect", "bomb:1"]).status.success(),
            "{what} recorded the image"
        );
    };

    // 200 MiB of zeros in about 200 KiB: refused at 64 MiB, with the limit and the layer named.
    let (gz, diff_id) = common::zeros_layer(200 << 20);
    assert!(gz.len() < 1 << 20, "the bomb is {} bytes", gz.len());
    let bomb = d.dir.join("bomb.tar");
    std::fs::write(&bomb, docker_archive("bomb:1", &[(gz, diff_id)])).unwrap();
    let o = d.docker(&["load", "-i", bomb.to_str().unwrap()]);
    assert!(!o.status.success(), "the bomb loaded: {}", text(&o));
    let err = errtext(&o);
    assert!(
        err.contains("layer 0/layer.tar expands past the daemon's --max-layer-size limit of 64 MiB"),
        "{err}"
    );
    unchanged("docker load of a gzip bomb");

    // docker-py: the same refusal, as the load stream's error (Docker answers a failed load so).
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
try:
    c.images.load(open("{bomb}", "rb").read())
    raise SystemExit("the bomb loaded")
except docker.errors.ImageLoadError as e:
    assert "--max-layer-size" in str(e), e
    print(e)
"#,
        host = d.host(),
        bomb = bomb.display()
    );
    let o = common::python(&script, 120);
    assert!(o.status.success(), "docker-py: {}\n{}", text(&o), errtext(&o));
    assert!(text(&o).contains("--max-layer-size limit of 64 MiB"), "{}", text(&o));
    unchanged("docker-py load of a gzip bomb");

    // Two layers of 50 MiB: each within --max-layer-size, together past --max-image-size (the
    // first, already stored when the second is refused, is removed again).
    let two = d.dir.join("two.tar");
    std::fs::write(
        &two,
        docker_archive("bomb:1", &[common::zeros_layer(50 << 20), common::zeros_layer((50 << 20) + 1)]),
    )
    .unwrap();
    let o = d.docker(&["load", "-i", two.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        errtext(&o).contains("--max-image-size limit of 96 MiB at layer 1/layer.tar"),
        "{}",
        errtext(&o)
    );
    unchanged("a load past --max-image-size");

    // Many empty files.
    let many = d.dir.join("many.tar");
    std::fs::write(&many, docker_archive("bomb:1", &[common::many_files_layer(2000)])).unwrap();
    let o = d.docker(&["load", "-i", many.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        errtext(&o).contains("layer 0/layer.tar has more entries than the daemon's --max-layer-entries limit of 1000"),
        "{}",
        errtext(&o)
    );
    unchanged("a load past --max-layer-entries");

    // A normal image still loads under the same limits.
    let saved = d.dir.join("bb.tar");
    d.docker_ok(&["save", "-o", saved.to_str().unwrap(), "bb"]);
    d.docker_ok(&["rmi", "bb"]);
    assert!(d
        .docker_ok(&["load", "-i", saved.to_str().unwrap()])
        .contains("Loaded image: bb:latest"));
    assert_eq!(d.docker_ok(&["run", "--rm", "bb", "echo", "still-loads"]), "still-loads");
}

#[test]
fn logs_mounts_prune_info_and_policies_as_docker_has_them() {
    let d = Daemon::start();
    d.busybox("bb");
    // json-file rotation: max-size/max-file keep the newest lines in at most 3 files of ~1 KiB,
    // `logs` reads them in order, `logs -f` follows across rotations.
    d.docker_ok(&[
        "run",
        "--name",
        "rot",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "bb",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "rot"]);
    let dir = d.root.join("containers").join(&id);
    let logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    assert_eq!(logs.len(), 3, "{logs:?}");
    assert!(logs.iter().all(|n| *n <= 1024), "{logs:?}");
    let out = d.docker_ok(&["logs", "rot"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.last(), Some(&"line-199"));
    let first: usize = lines[0].trim_start_matches("line-").parse().unwrap();
    assert_eq!(lines.len(), 200 - first, "lines in order, none lost between the files");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "rotf",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "bb",
        "sh",
        "-c",
        "sleep 0.5; i=0; while [ $i -lt 100 ]; do echo f-$i; i=$((i+1)); sleep 0.01; done",
    ]);
    let follow = d.docker_ok(&["logs", "-f", "rotf"]);
    assert_eq!(follow.lines().count(), 100, "{follow}");
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "rot"]),
        r#"{"Type":"json-file","Config":{"max-file":"3","max-size":"1k"}}"#
    );
    d.docker_ok(&["create", "--name", "plain", "bb", "true"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "plain"]),
        "json-file"
    );
    for (args, want) in [
        (&["--log-driver", "foo"][..], "logger: no log driver named 'foo' is registered"),
        (&["--log-driver", "syslog"][..], "log driver \"syslog\" is not supported by Berth"),
        (&["--log-opt", "bogus=1"][..], "unknown log opt 'bogus' for json-file log driver"),
        (&["--log-opt", "max-file=2"][..], "max-file cannot be set when max-size is not set"),
        (
            &["--restart", "always:3"][..],
            "maximum retry count can only be used with 'on-failure'",
        ),
        (
            &["--restart", "sometimes"][..],
            "invalid restart policy: unknown policy 'sometimes'",
        ),
        (
            &["--mount", "type=bind,src=/nonexistent-berth,dst=/x"][..],
            "bind source path does not exist: /nonexistent-berth",
        ),
    ] {
        let mut argv = vec!["create"];
        argv.extend_from_slice(args);
        argv.extend(["bb", "true"]);
        let o = d.docker(&argv);
        assert!(!o.status.success() && errtext(&o).contains(want), "{args:?}: {}", errtext(&o));
    }
    let o = d.docker(&["update", "--restart", "on-failure:-1", "plain"]);
    assert!(errtext(&o).contains("maximum retry count cannot be negative"), "{}", errtext(&o));

    // Mounts entries are in inspect, and their options apply.
    let host = d.dir.join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    let bind = format!("type=bind,src={},dst=/b,readonly", host.display());
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "mnt",
        "--mount",
        &bind,
        "--mount",
        "type=volume,src=named,dst=/v",
        "--mount",
        "type=volume,dst=/anon",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1048576",
        "bb",
        "sleep",
        "1000",
    ]);
    let mounts = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}}:{{.Destination}}:{{.RW}} {{end}}",
        "mnt",
    ]);
    for want in ["bind:/b:false", "volume:/v:true", "volume:/anon:true", "tmpfs:/t:true"] {
        assert!(mounts.contains(want), "{want} not in {mounts}");
    }
    let df = d.docker_ok(&["exec", "mnt", "df", "-k", "/t"]);
    assert!(df.lines().last().unwrap().split_whitespace().nth(1) == Some("1024"), "{df}");
    // The anonymous volume is made once: a restart keeps it.
    let anon = || {
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{if eq .Destination \"/anon\"}}{{.Name}}{{end}}{{end}}",
            "mnt",
        ])
    };
    let before = anon();
    d.docker_ok(&["restart", "-t", "0", "mnt"]);
    assert_eq!(anon(), before);
    // As Docker, a container's volumes exist from create on: listed, inspected, and filled from
    // the image (busybox's /etc here) before any start; rm -v takes the anonymous one away.
    let vols_before = d.docker_ok(&["volume", "ls", "-q"]);
    d.docker_ok(&["create", "--name", "made", "-v", "/etc", "-v", "atcreate:/srv", "bb", "true"]);
    // Inspect's HostConfig has every key of the 1.43 schema, unset ones at their zero value.
    let hc: serde_json::Value = serde_json::from_str(&d.docker_ok(&["inspect", "-f", "{{json .HostConfig}}", "made"])).unwrap();
    for (k, want) in [
        ("BlkioWeight", serde_json::json!(0)),
        ("CpuCount", serde_json::json!(0)),
        ("ContainerIDFile", serde_json::json!("")),
        ("PublishAllPorts", serde_json::json!(false)),
        ("ConsoleSize", serde_json::json!([0, 0])),
        ("Dns", serde_json::json!([])),
    ] {
        assert_eq!(hc[k], want, "HostConfig.{k} in {hc}");
    }
    assert!(
        hc["MaskedPaths"].as_array().is_some_and(|p| p.iter().any(|x| x == "/proc/kcore")),
        "{hc}"
    );
    let listed = d.docker_ok(&["volume", "ls", "-q"]);
    assert!(listed.lines().any(|l| l == "atcreate"), "{listed}");
    assert_eq!(listed.lines().count(), vols_before.lines().count() + 2, "{listed}");
    let etc = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{if eq .Destination \"/etc\"}}{{.Name}} {{.Source}}{{end}}{{end}}",
        "made",
    ]);
    let (name, source) = etc.trim().split_once(' ').expect("the /etc volume is in Mounts");
    assert!(
        std::path::Path::new(source).join("passwd").exists(),
        "{source} was not filled from the image"
    );
    d.docker_ok(&["rm", "-v", "made"]);
    let after = d.docker_ok(&["volume", "ls", "-q"]);
    assert!(!after.lines().any(|l| l == name), "{after}");
    assert!(after.lines().any(|l| l == "atcreate"), "a named volume stays: {after}");
    d.docker_ok(&["volume", "rm", "atcreate"]);
    // docker cp goes through the mounts, running or stopped, as Docker's does.
    std::fs::write(host.join("hf"), "host side").unwrap();
    let local = d.dir.join("to-copy");
    std::fs::write(&local, "copied in").unwrap();
    d.docker_ok(&["cp", local.to_str().unwrap(), "mnt:/v/in"]);
    assert_eq!(d.docker_ok(&["exec", "mnt", "cat", "/v/in"]), "copied in");
    let back = d.dir.join("back");
    d.docker_ok(&["cp", "mnt:/b/hf", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "host side");
    let o = d.docker(&["cp", local.to_str().unwrap(), "mnt:/b/"]);
    assert!(errtext(&o).contains("marked read-only"), "{}", errtext(&o));
    d.docker_ok(&["stop", "-t", "0", "mnt"]);
    let back2 = d.dir.join("back2");
    d.docker_ok(&["cp", "mnt:/v/in", back2.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back2).unwrap(), "copied in");
    d.docker_ok(&["rm", "-f", "mnt"]);

    // Prune filters: labels and until select; volumes prune -a takes named ones.
    d.docker_ok(&["create", "--name", "p-keep", "-l", "keep=yes", "bb", "true"]);
    d.docker_ok(&["create", "--name", "p-go", "-l", "team=ml", "bb", "true"]);
    let pruned = d.docker_ok(&["container", "prune", "-f", "--filter", "label=team=ml"]);
    assert!(!pruned.contains(&id), "{pruned}");
    let names = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        !names.contains("p-go") && names.contains("p-keep") && names.contains("rot"),
        "{names}"
    );
    d.docker_ok(&["container", "prune", "-f", "--filter", "until=2000-01-01T00:00:00Z"]);
    assert!(d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]).contains("p-keep"));
    d.docker_ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert_eq!(d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]), "p-keep");
    let o = d.docker(&["container", "prune", "-f", "--filter", "bogus=1"]);
    assert!(errtext(&o).contains("invalid filter 'bogus'"), "{}", errtext(&o));
    d.docker_ok(&["volume", "create", "--label", "team=ml", "vml"]);
    d.docker_ok(&["volume", "create", "vother"]);
    d.docker_ok(&["volume", "prune", "-f"]);
    assert!(
        d.docker_ok(&["volume", "ls", "-q"]).contains("vml"),
        "plain prune keeps named volumes"
    );
    d.docker_ok(&["volume", "prune", "-af", "--filter", "label=team=ml"]);
    let vols = d.docker_ok(&["volume", "ls", "-q"]);
    assert!(!vols.contains("vml") && vols.contains("vother"), "{vols}");

    // /info and /version carry what clients read.
    let info = d.docker_ok(&["info", "--format", "{{json .}}"]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["Swarm"]["LocalNodeState"], "inactive");
    assert_eq!(info["ExperimentalBuild"], false);
    assert_eq!(info["LiveRestoreEnabled"], true);
    assert_eq!(info["IndexServerAddress"], "https://index.docker.io/v1/");
    assert!(info["ID"].as_str().unwrap().len() == 36, "{}", info["ID"]);
    assert_eq!(
        d.docker_ok(&["info", "--format", "{{.ID}}"]),
        info["ID"].as_str().unwrap(),
        "the engine ID is kept"
    );
    let py = format!(
        "import docker; c = docker.DockerClient(base_url='{}'); v = c.version(); i = c.info(); assert v['Experimental'] is False and i['Swarm']['LocalNodeState'] == 'inactive'; im = c.api.inspect_image('bb'); assert im['Container'] == '' and 'Cmd' in im['ContainerConfig']; ns = c.api.inspect_container('p-keep')['NetworkSettings']; assert 'EndpointID' in ns and 'GlobalIPv6Address' in ns; print('ok')",
        d.host()
    );
    let o = common::python(&py, 60);
    assert!(o.status.success(), "{}", errtext(&o));
}

#[test]
fn namespaces_devices_and_volumes_from() {
    let d = Daemon::start();
    d.busybox("bb");
    let ns = |p: &str| std::fs::read_link(p).unwrap().display().to_string();
    // --pid container:<name> sees the donor's processes; --pid host the host's.
    d.docker_ok(&["run", "-d", "--name", "pdonor", "bb", "sleep", "1001"]);
    let ps = d.docker_ok(&["run", "--rm", "--pid", "container:pdonor", "bb", "ps"]);
    assert!(ps.contains("sleep 1001"), "{ps}");
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap();
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--pid", "host", "bb", "cat", "/proc/1/comm"]),
        host_init.trim()
    );
    let o = d.docker(&["run", "--rm", "--pid", "container:nosuch", "bb", "true"]);
    assert!(!o.status.success() && errtext(&o).contains("No such container"), "{}", errtext(&o));
    // IPC: a shareable donor's namespace and /dev/shm are joined; a private one is refused.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "idonor",
        "--ipc",
        "shareable",
        "bb",
        "sh",
        "-c",
        "echo shared > /dev/shm/x; sleep 1000",
    ]);
    eventually("the donor's shm file", || {
        d.docker(&["exec", "idonor", "cat", "/dev/shm/x"]).status.success()
    });
    let donor_ipc = d.docker_ok(&["exec", "idonor", "readlink", "/proc/self/ns/ipc"]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--ipc",
            "container:idonor",
            "bb",
            "sh",
            "-c",
            "readlink /proc/self/ns/ipc; cat /dev/shm/x"
        ]),
        format!("{donor_ipc}\nshared")
    );
    let o = d.docker(&["run", "--rm", "--ipc", "container:pdonor", "bb", "true"]);
    assert!(errtext(&o).contains("non-shareable IPC"), "{}", errtext(&o));
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--ipc", "host", "bb", "readlink", "/proc/self/ns/ipc"]),
        ns("/proc/self/ns/ipc")
    );
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--ipc",
            "none",
            "bb",
            "sh",
            "-c",
            "grep -c ' /dev/shm ' /proc/mounts || true"
        ]),
        "0"
    );
    assert_eq!(d.docker_ok(&["inspect", "-f", "{{.HostConfig.IpcMode}}", "pdonor"]), "private");
    // UTS host: the host's name.
    let host = nix::unistd::gethostname().unwrap().to_string_lossy().into_owned();
    assert_eq!(d.docker_ok(&["run", "--rm", "--uts", "host", "bb", "hostname"]), host);
    let o = d.docker(&["run", "--rm", "--uts", "host", "-h", "x", "bb", "true"]);
    assert!(
        errtext(&o).contains("conflicting options: hostname and the UTS mode"),
        "{}",
        errtext(&o)
    );
    // --device-cgroup-rule lets the container make (and use) a device the defaults do not allow.
    let mk = ["sh", "-c", "mknod /tmp/null2 c 1 3 && echo ok > /tmp/null2 && echo made"];
    let mut argv = vec!["run", "--rm", "--device-cgroup-rule", "c 1:3 rwm", "bb"];
    argv.extend(mk);
    assert_eq!(d.docker_ok(&argv), "made");
    // (The docker CLI checks the format itself; the daemon does too.)
    let (code, _, body) = d.http(
        "POST",
        "/v1.43/containers/create",
        Some(r#"{"Image": "bb", "Cmd": ["true"], "HostConfig": {"DeviceCgroupRules": ["x 1:3 rwm"]}}"#),
    );
    assert!(code == 400 && body.contains("invalid device cgroup rule format"), "{code} {body}");
    // --volumes-from: the donor's volumes and binds, read-only when asked.
    let hd = d.dir.join("vf-host");
    std::fs::create_dir_all(&hd).unwrap();
    std::fs::write(hd.join("file"), "from host").unwrap();
    let bind = format!("{}:/h:ro", hd.display());
    d.docker_ok(&[
        "run",
        "--name",
        "vdonor",
        "-v",
        "vfvol:/data",
        "-v",
        &bind,
        "-v",
        "/anon",
        "bb",
        "true",
    ]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "vdonor",
            "bb",
            "sh",
            "-c",
            "echo x > /data/f && echo a > /anon/a && cat /h/file"
        ]),
        "from host"
    );
    let o = d.docker(&["run", "--rm", "--volumes-from", "vdonor:ro", "bb", "sh", "-c", "echo y > /data/f"]);
    assert!(
        !o.status.success() && errtext(&o).contains("Read-only file system"),
        "{}",
        errtext(&o)
    );
    d.docker_ok(&["create", "--name", "joiner", "--volumes-from", "vdonor", "bb", "true"]);
    let mounts = d.docker_ok(&["inspect", "-f", "{{range .Mounts}}{{.Destination}} {{end}}", "joiner"]);
    for want in ["/data", "/h", "/anon"] {
        assert!(mounts.split_whitespace().any(|m| m == want), "{want} not in {mounts}");
    }
    // The volume is in use by the joiner even once the donor is gone.
    d.docker_ok(&["rm", "vdonor"]);
    let o = d.docker(&["volume", "rm", "vfvol"]);
    assert!(errtext(&o).contains("volume is in use"), "{}", errtext(&o));
    assert_eq!(d.docker_ok(&["start", "-a", "joiner"]), "");
    let py = format!(
        "import docker; c = docker.DockerClient(base_url='{}'); print(c.containers.run('bb', ['cat', '/data/f'], volumes_from=['joiner'], pid_mode='container:pdonor', remove=True).decode().strip())",
        d.host()
    );
    let o = common::python(&py, 60);
    assert!(o.status.success(), "{}", errtext(&o));
    assert_eq!(text(&o), "x");
    d.docker_ok(&["rm", "-f", "pdonor", "idonor", "joiner"]);
}

#[test]
fn remaining_host_config_fields_apply_or_are_refused() {
    let d = Daemon::start();
    d.busybox("bb");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--oom-score-adj", "500", "bb", "cat", "/proc/self/oom_score_adj"]),
        "500"
    );
    let host_cg = std::fs::read_link("/proc/self/ns/cgroup").unwrap().display().to_string();
    assert_ne!(
        d.docker_ok(&["run", "--rm", "--cgroupns", "private", "bb", "readlink", "/proc/self/ns/cgroup"]),
        host_cg
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--cgroupns", "host", "bb", "readlink", "/proc/self/ns/cgroup"]),
        host_cg
    );
    let masked = "grep -c ' /proc/keys ' /proc/mounts || true";
    assert_eq!(d.docker_ok(&["run", "--rm", "bb", "sh", "-c", masked]), "1");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--security-opt", "systempaths=unconfined", "bb", "sh", "-c", masked]),
        "0"
    );
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--domainname",
            "example.org",
            "bb",
            "cat",
            "/proc/sys/kernel/domainname"
        ]),
        "example.org"
    );
    let id = d.docker_ok(&["run", "-d", "--memory-reservation", "100m", "bb", "sleep", "1000"]);
    let soft = common::cgroup_value(&id, "memory", "memory.soft_limit_in_bytes", "memory.low", common::same);
    assert_eq!(soft, "104857600");
    d.docker_ok(&["rm", "-f", &id]);
    let o = d.docker(&["create", "--mac-address", "02:42:ac:11:00:02", "bb", "true"]);
    assert!(errtext(&o).contains("mac-address"), "{}", errtext(&o));
    for (hc, want) in [
        (r#"{"Isolation": "hyperv"}"#, "invalid isolation 'hyperv' on linux"),
        (r#"{"OomScoreAdj": 2000}"#, "range for oom score adj is [-1000, 1000]"),
        (r#"{"IOMaximumIOps": 10}"#, "Invalid QoS settings"),
        (r#"{"VolumeDriver": "nfs"}"#, "is not supported by Berth (local is)"),
        (r#"{"CgroupnsMode": "shared"}"#, "invalid cgroup namespace mode"),
    ] {
        let body = format!(r#"{{"Image": "bb", "Cmd": ["true"], "HostConfig": {hc}}}"#);
        let (code, _, resp) = d.http("POST", "/v1.43/containers/create", Some(&body));
        assert!(code == 400 && resp.contains(want), "{hc}: {code} {resp}");
    }
    let (code, _, resp) = d.http(
        "POST",
        "/v1.43/containers/create",
        Some(r#"{"Image": "bb", "Cmd": ["true"], "HostConfig": {}, "NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["db"]}}}}"#),
    );
    assert!(
        code == 400 && resp.contains("network-scoped alias is supported only for containers in user defined networks"),
        "{code} {resp}"
    );
    let (code, _, resp) = d.http(
        "POST",
        "/v1.43/containers/create",
        Some(r#"{"Image": "bb", "Cmd": ["true"], "HostConfig": {"CpuPercent": 50}}"#),
    );
    assert!(code == 201 && resp.contains("does not support CPU percent"), "{code} {resp}");
    let o = d.docker(&[
        "update",
        "--cpu-rt-runtime",
        "1000",
        &serde_json::from_str::<serde_json::Value>(&resp).unwrap()["Id"].as_str().unwrap()[..12],
    ]);
    assert!(!o.status.success(), "{}", text(&o));
}
