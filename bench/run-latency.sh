#!/usr/bin/env bash
# `run --rm bb true` latency: Berth vs real Docker vs crun vs the unshare+chroot floor, in one run.
# Prints medians and ratios, and the Berth daemon's idle RSS. Run as root on a machine where the
# tests pass. Installs docker.io, crun and hyperfine from Debian if missing; starts its own dockerd
# (own data root and socket, no bridge) and its own Berth daemon, and stops both at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
export DEBIAN_FRONTEND=noninteractive
need=()
for p in docker.io crun hyperfine busybox-static; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
[ ${#need[@]} -eq 0 ] || { apt-get update -qq; apt-get install -y -qq "${need[@]}"; }
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
DOCKER=$(command -v docker)

W=$(mktemp -d /tmp/bench.XXXXXX)
cleanup() {
    set +e
    [ -n "${BPID:-}" ] && { DOCKER_HOST=unix://$W/b/run/berth.sock $DOCKER rm -f $(DOCKER_HOST=unix://$W/b/run/berth.sock $DOCKER ps -aq) >/dev/null 2>&1; kill "$BPID"; wait "$BPID"; }
    [ -n "${DPID:-}" ] && { kill "$DPID"; wait "$DPID"; }
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT

# A busybox rootfs.
mkdir -p "$W/rootfs"/{bin,etc,tmp,proc,sys,dev}
cp /bin/busybox "$W/rootfs/bin/"
for a in $("$W/rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$W/rootfs/etc/passwd"
tar -C "$W/rootfs" -cf "$W/bb.tar" .

# Berth.
"$BERTH" daemon --root "$W/b/root" --exec-root "$W/b/run" --bridge none --log-level warn 2>"$W/berth.log" &
BPID=$!
for _ in $(seq 100); do [ -S "$W/b/run/berth.sock" ] && break; sleep 0.05; done
BH=unix://$W/b/run/berth.sock
"$BERTH" -H "$BH" import "$W/bb.tar" bb >/dev/null
sleep 1
IDLE_RSS=$(awk '/VmRSS/{print $2}' /proc/$BPID/status)
# The shim zygote the daemon starts (its forked shims share its command line but are named berth-shim).
ZPID=$(for p in $(pgrep -f "shim-zygote --socket $W/b/run/zygote.sock"); do [ "$(cat /proc/$p/comm)" = berth ] && echo $p; done | head -1)
ZYGOTE_RSS=$(awk '/VmRSS/{print $2}' /proc/$ZPID/status)

# crun bundle (crun needs a private mount namespace without the cgroup2 mount on this hybrid host).
mkdir -p "$W/bundle" && cp -a "$W/rootfs" "$W/bundle/rootfs"
(cd "$W/bundle" && crun spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open("config.json", "w"))
PY
)

# Each system is measured while the others are idle: Berth first, then Docker is started. Dirty
# pages from what ran before (a previous run's Docker data being deleted) are written out first.
sync; sleep 2
hf() { hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$W/$1.json" --style none "$2" >/dev/null 2>&1 || hyperfine --warmup 3 --runs "$RUNS" --export-json "$W/$1.json" --style none "$2" >/dev/null; }
hf berth "$BERTH -H $BH run --rm bb true"
hf berth_docker_cli "env DOCKER_HOST=$BH $DOCKER run --rm bb true"
hf berth_runc "$BERTH -H $BH run --rm --runtime runc bb true"

# Docker (its own daemon, no bridge, no iptables).
mkdir -p "$W/d"
dockerd --data-root "$W/d/data" --exec-root "$W/d/exec" --pidfile "$W/d/docker.pid" -H "unix://$W/d/docker.sock" \
    --bridge none --iptables=false --ip6tables=false >"$W/dockerd.log" 2>&1 &
DPID=$!
for _ in $(seq 200); do DOCKER_HOST=unix://$W/d/docker.sock $DOCKER version >/dev/null 2>&1 && break; sleep 0.1; done
DOCKER_HOST=unix://$W/d/docker.sock $DOCKER import "$W/bb.tar" bb >/dev/null

hf docker "env DOCKER_HOST=unix://$W/d/docker.sock $DOCKER run --rm --network none bb true"
unshare -m bash -c "umount /sys/fs/cgroup/unified 2>/dev/null; cd $W/bundle; hyperfine -N --warmup 3 --runs $RUNS --export-json $W/crun.json --style none 'crun run -b $W/bundle benchctr' >/dev/null"
hf floor "unshare -m -p -f -u -i -n chroot $W/rootfs /bin/true"

RSS=$(awk '/VmRSS/{print $2}' /proc/$BPID/status)
python3 - "$W" "$RSS" "$IDLE_RSS" "$ZYGOTE_RSS" <<'PY'
import json, sys
w, rss, idle, zyg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def med(n): return json.load(open(f"{w}/{n}.json"))["results"][0]["median"] * 1000
rows = [("berth run --rm bb true (berth CLI)", med("berth")),
        ("docker CLI -> berth daemon", med("berth_docker_cli")),
        ("berth run --rm --runtime runc bb true", med("berth_runc")),
        ("docker run --rm bb true (real Docker)", med("docker")),
        ("crun run (bundle)", med("crun")),
        ("unshare+chroot floor", med("floor"))]
b = rows[0][1]
print(f"{'command':42} {'median ms':>10} {'vs berth':>9}")
for name, m in rows:
    print(f"{name:42} {m:10.1f} {m / b:8.2f}x")
print(f"\nBerth is {rows[3][1] / b:.1f}x faster than Docker (target >= 10x); median {b:.1f} ms (target <= 30 ms)")
print(f"Berth daemon RSS: idle {idle / 1024:.1f} MiB (target <= 30 MiB), after the runs {rss / 1024:.1f} MiB; "
      f"its shim zygote {zyg / 1024:.1f} MiB")
PY
