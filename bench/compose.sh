#!/usr/bin/env bash
# Compose figures (issue 11), by hand as root on a machine where the tests pass: `up -d` of a
# five-service project (a web server with a published port and a healthcheck, a store, three
# workers that wait for web to be healthy), cold and again with nothing to do, then `down`:
#  1. berth compose against Berth;
#  2. docker-compose 1.29 (Debian's) against Berth;
#  3. docker-compose 1.29 against a real dockerd (docker.io), when one can be started here: its
#     own data root and socket, --iptables=false and no default bridge, so the host is untouched.
# Each figure is the median of 5 runs (seconds, wall clock). Removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for p in busybox-static iproute2 nftables docker-compose docker.io; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
[ ${#need[@]} -eq 0 ] || { apt-get update -qq; apt-get install -y -qq "${need[@]}"; }
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
W=$(mktemp -d /tmp/cbench.XXXXXX)
cleanup() {
    set +e
    for h in "unix://$W/run/berth.sock" "unix://$W/docker.sock"; do
        DOCKER_HOST=$h docker rm -f $(DOCKER_HOST=$h docker ps -aq 2>/dev/null) >/dev/null 2>&1
        DOCKER_HOST=$h docker network prune -f >/dev/null 2>&1
    done
    [ -n "${DPID:-}" ] && { kill "$DPID"; wait "$DPID"; }
    [ -n "${BPID:-}" ] && { kill "$BPID"; wait "$BPID"; }
    ip link del btcomp 2>/dev/null; nft delete table ip berth-btcomp 2>/dev/null
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/rootfs"/{bin,etc,tmp,www} "$W/app"
cp /bin/busybox "$W/rootfs/bin/"
for a in $("$W/rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$W/rootfs/etc/passwd"
echo hello >"$W/rootfs/www/index.html"
tar -C "$W/rootfs" -cf "$W/bb.tar" .
cat >"$W/app/docker-compose.yml" <<'YAML'
version: "3.8"
services:
  web:
    image: bb
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["127.0.0.1:18090:80"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1/"]
      interval: 1s
      retries: 20
  store:
    image: bb
    command: ["sleep", "600"]
    stop_grace_period: 1s
    volumes: ["data:/data"]
  worker1: &worker
    image: bb
    command: ["sh", "-c", "while true; do wget -qO- http://web/ >/dev/null; sleep 1; done"]
    stop_grace_period: 1s
    depends_on:
      web: {condition: service_healthy}
      store: {condition: service_started}
  worker2: *worker
  worker3: *worker
volumes:
  data:
YAML

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
secs() { local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc; }
measure() { # label, compose command...
    local label=$1; shift
    local cold=() warm=() down=()
    for _ in 1 2 3 4 5; do
        cold+=("$(cd "$W/app" && secs "$@" up -d)")
        warm+=("$(cd "$W/app" && secs "$@" up -d)")
        down+=("$(cd "$W/app" && secs "$@" down -v)")
    done
    printf '%s: up -d %ss, up -d again %ss, down -v %ss\n' "$label" \
        "$(printf '%s\n' "${cold[@]}" | median)" "$(printf '%s\n' "${warm[@]}" | median)" "$(printf '%s\n' "${down[@]}" | median)"
}

"$BERTH" daemon --root "$W/root" --exec-root "$W/run" --bridge btcomp --bip 10.248.0.1/24 --log-level warn 2>"$W/berth.log" &
BPID=$!
for _ in $(seq 100); do [ -S "$W/run/berth.sock" ] && break; sleep 0.05; done
export DOCKER_HOST=unix://$W/run/berth.sock
docker import "$W/bb.tar" bb >/dev/null
measure "berth compose -> berth" "$BERTH" -H "$DOCKER_HOST" compose -p cb
measure "docker-compose 1.29 -> berth" docker-compose -p cb

if command -v dockerd >/dev/null; then
    dockerd --data-root "$W/docker" --exec-root "$W/docker-run" -H "unix://$W/docker.sock" --pidfile "$W/docker.pid" \
        --iptables=false --ip6tables=false --bridge=none >"$W/dockerd.log" 2>&1 &
    DPID=$!
    for _ in $(seq 200); do [ -S "$W/docker.sock" ] && break; sleep 0.05; done
    export DOCKER_HOST=unix://$W/docker.sock
    if docker info >/dev/null 2>&1; then
        docker import "$W/bb.tar" bb >/dev/null
        measure "docker-compose 1.29 -> dockerd $(dockerd --version | awk '{print $3}' | tr -d ,)" docker-compose -p cb
    else
        echo "dockerd did not start here (see $W/dockerd.log); no comparison"
    fi
fi
