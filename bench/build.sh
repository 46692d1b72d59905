#!/usr/bin/env bash
# Build speed: the same Dockerfile (FROM a busybox base, COPY a 50 MB file, RUN, ENV, CMD) built by
# Berth, by real Docker's classic builder and by real Docker's BuildKit, cold (--no-cache) and warm
# (everything cached), in one run. Prints medians and ratios. RUN steps have no network on any of
# them (--network none on each).
#
# Real Docker is Debian's docker.io (dockerd 20.10 with its embedded BuildKit); its own 20.10 CLI at
# /usr/bin/docker drives BuildKit without the buildx plugin (the newer CLI first on PATH needs
# buildx, which Debian 12 does not package). Run as root on a machine where the tests pass.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
export DEBIAN_FRONTEND=noninteractive
need=()
for p in docker.io hyperfine busybox-static; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
[ ${#need[@]} -eq 0 ] || { apt-get update -qq; apt-get install -y -qq "${need[@]}"; }
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
DOCKER20=/usr/bin/docker

W=$(mktemp -d /tmp/bench.XXXXXX)
cleanup() {
    set +e
    [ -n "${BPID:-}" ] && { kill "$BPID"; wait "$BPID"; }
    [ -n "${DPID:-}" ] && { kill "$DPID"; wait "$DPID"; }
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT

# A busybox rootfs and the build context.
mkdir -p "$W/rootfs"/{bin,etc,tmp,proc,sys,dev}
cp /bin/busybox "$W/rootfs/bin/"
for a in $("$W/rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$W/rootfs/etc/passwd"
tar -C "$W/rootfs" -cf "$W/bb.tar" .
mkdir -p "$W/ctx"
head -c 50M /dev/urandom >"$W/ctx/big.bin"
cat >"$W/ctx/Dockerfile" <<'EOF'
FROM bb
COPY big.bin /data/big.bin
RUN wc -c /data/big.bin > /size.txt
ENV MODE=bench
CMD ["cat", "/size.txt"]
EOF

# Berth.
"$BERTH" daemon --root "$W/b/root" --exec-root "$W/b/run" --log-level warn 2>"$W/berth.log" &
BPID=$!
for _ in $(seq 100); do [ -S "$W/b/run/berth.sock" ] && break; sleep 0.05; done
BH=unix://$W/b/run/berth.sock
"$BERTH" -H "$BH" import "$W/bb.tar" bb >/dev/null

# Docker (its own daemon, no bridge, no iptables).
mkdir -p "$W/d"
dockerd --data-root "$W/d/data" --exec-root "$W/d/exec" --pidfile "$W/d/docker.pid" -H "unix://$W/d/docker.sock" \
    --bridge none --iptables=false --ip6tables=false >"$W/dockerd.log" 2>&1 &
DPID=$!
DH=unix://$W/d/docker.sock
for _ in $(seq 200); do DOCKER_HOST=$DH $DOCKER20 version >/dev/null 2>&1 && break; sleep 0.1; done
DOCKER_HOST=$DH $DOCKER20 import "$W/bb.tar" bb >/dev/null

hf() { hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$W/$1.json" --style none "$2" >/dev/null 2>&1 || hyperfine --warmup 1 --runs "$RUNS" --export-json "$W/$1.json" --style none "$2" >/dev/null; }
hf berth_cold "$BERTH -H $BH build -q --network none --no-cache -t out $W/ctx"
hf berth_warm "$BERTH -H $BH build -q --network none -t out $W/ctx"
hf berth_docker_cli_warm "env DOCKER_HOST=$BH DOCKER_BUILDKIT=0 docker build -q -t out $W/ctx"
hf classic_cold "env DOCKER_HOST=$DH DOCKER_BUILDKIT=0 $DOCKER20 build -q --network none --no-cache -t out $W/ctx"
hf classic_warm "env DOCKER_HOST=$DH DOCKER_BUILDKIT=0 $DOCKER20 build -q --network none -t out $W/ctx"
hf buildkit_cold "env DOCKER_HOST=$DH DOCKER_BUILDKIT=1 $DOCKER20 build -q --network none --no-cache -t out $W/ctx"
hf buildkit_warm "env DOCKER_HOST=$DH DOCKER_BUILDKIT=1 $DOCKER20 build -q --network none -t out $W/ctx"

# Reproducibility, measured: two cold builds give the same ID on Berth, not on Docker.
b1=$("$BERTH" -H "$BH" build -q --network none --no-cache "$W/ctx"); b2=$("$BERTH" -H "$BH" build -q --network none --no-cache "$W/ctx")
d1=$(DOCKER_HOST=$DH DOCKER_BUILDKIT=0 $DOCKER20 build -q --network none --no-cache "$W/ctx"); d2=$(DOCKER_HOST=$DH DOCKER_BUILDKIT=0 $DOCKER20 build -q --network none --no-cache "$W/ctx")

python3 - "$W" "$b1" "$b2" "$d1" "$d2" <<'PY'
import json, sys
w = sys.argv[1]
def med(n): return json.load(open(f"{w}/{n}.json"))["results"][0]["median"] * 1000
print(f"{'build (50 MB COPY + RUN + ENV + CMD)':44} {'cold ms':>9} {'warm ms':>9}")
rows = [("berth build", "berth"), ("docker classic builder (DOCKER_BUILDKIT=0)", "classic"), ("docker BuildKit (DOCKER_BUILDKIT=1)", "buildkit")]
for name, k in rows:
    print(f"{name:44} {med(k + '_cold'):9.0f} {med(k + '_warm'):9.0f}")
print(f"{'docker CLI (classic) -> berth daemon':44} {'':>9} {med('berth_docker_cli_warm'):9.0f}")
bc, bw = med("berth_cold"), med("berth_warm")
for name, k in rows[1:]:
    c, wm = med(k + "_cold"), med(k + "_warm")
    print(f"vs {name}: cold {c / bc:.2f}x (target >= 1x), warm {wm / bw:.2f}x (target >= 5x)")
print(f"same ID from two --no-cache builds: berth {sys.argv[2] == sys.argv[3]}, docker classic {sys.argv[4] == sys.argv[5]}")
PY
