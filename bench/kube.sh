#!/usr/bin/env bash
# Kubernetes API and node-agent figures (issue 12), by hand as root on a machine where the
# tests pass:
#  1. daemon RSS idle with the API server and agent on;
#  2. 100 pods applied at once (one manifest) -> all Running: wall time, and each pod's
#     creation -> container start (p50/p99, from the objects' own timestamps);
#  3. daemon RSS (and the shims') with the 100 pods running;
#  4. API latency of get/list/create under 50 concurrent clients (bench/kube_load.py);
#  5. watch fan-out: 100 watchers, 100 creations, delivery latency.
# Starts its own daemon (API on 127.0.0.1:16500, pods on bpbench 10.248.0.0/24) and removes
# everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for p in busybox-static iproute2 nftables; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
[ ${#need[@]} -eq 0 ] || { apt-get update -qq; apt-get install -y -qq "${need[@]}"; }
python3 -c 'import yaml' 2>/dev/null || pip install -q pyyaml
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
W=$(mktemp -d /tmp/kbench.XXXXXX)
export DOCKER_HOST=unix://$W/run/berth.sock KUBECONFIG=$W/root/kubeconfig
cleanup() {
    set +e
    if [ -n "${BPID:-}" ]; then
        kubectl delete pods --all --grace-period=0 --force >/dev/null 2>&1
        docker rm -f $(docker ps -aq) >/dev/null 2>&1
        docker network rm berth-pods >/dev/null 2>&1
        kill "$BPID"; wait "$BPID"
    fi
    ip link del bpbench 2>/dev/null; nft delete table ip berth-bpbench 2>/dev/null
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

mkdir -p "$W/rootfs"/{bin,etc,tmp}
cp /bin/busybox "$W/rootfs/bin/"
for a in sh sleep; do ln -sf busybox "$W/rootfs/bin/$a"; done
tar -C "$W/rootfs" -cf "$W/bb.tar" .
"$BERTH" daemon --root "$W/root" --exec-root "$W/run" --bridge none --kube-listen 127.0.0.1:16500 \
    --pod-bridge bpbench --pod-cidr 10.248.0.0/24 --log-level warn 2>"$W/berth.log" &
BPID=$!
for _ in $(seq 100); do [ -S "$W/run/berth.sock" ] && [ -f "$KUBECONFIG" ] && break; sleep 0.05; done
docker import "$W/bb.tar" bb:1 >/dev/null
sleep 5
echo "daemon RSS idle (API server, store, agent): $(rss $BPID) MiB"

for i in $(seq 0 99); do
    printf -- '---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%s}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {name: c, image: bb:1, command: [sleep, "100000"]}\n' "$i"
done >"$W/pods.yaml"
t0=$(date +%s.%N)
kubectl apply -f "$W/pods.yaml" >/dev/null
while [ "$(kubectl get pods --no-headers 2>/dev/null | grep -c ' Running ')" -lt 100 ]; do sleep 0.2; done
t1=$(date +%s.%N)
echo "100 pods applied -> all Running: $(echo "$t1 - $t0" | bc) s"
kubectl get pods -o json | python3 -c '
import json, sys, datetime
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
d = sorted((p(i["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]) - p(i["metadata"]["creationTimestamp"])).total_seconds() for i in json.load(sys.stdin)["items"])
print(f"  pod creation -> container started (1 s resolution): p50 {d[len(d)//2]:.0f} s, p99 {d[min(len(d)-1, int(len(d)*0.99))]:.0f} s, max {d[-1]:.0f} s")'
sleep 5
shims=0; pss=0; n=0
for p in $(pgrep -f "berth.*shim" || true); do
    shims=$(echo "$shims + $(rss "$p" 2>/dev/null || echo 0)" | bc)
    pss=$(echo "$pss + $(awk '/^Pss:/ {printf "%.1f", $2/1024}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)" | bc)
    n=$((n + 1))
done
echo "daemon RSS with 100 pods running: $(rss $BPID) MiB; $n shims: RSS summed $shims MiB, PSS summed $pss MiB (shared pages counted once)"

python3 bench/kube_load.py "$KUBECONFIG" api 50 20
python3 bench/kube_load.py "$KUBECONFIG" watch 100 100
echo "daemon RSS after the load: $(rss $BPID) MiB"
t0=$(date +%s.%N)
kubectl delete pods --all --grace-period=1 --wait=false >/dev/null
while [ "$(kubectl get pods --no-headers 2>/dev/null | wc -l)" -gt 0 ]; do sleep 0.1; done
echo "100 pods deleted (grace 1 s, busybox sleep ignores SIGTERM) -> all gone: $(echo "$(date +%s.%N) - $t0" | bc) s"
