#!/usr/bin/env bash
# Controller and Service data-path figures (issue 13), by hand as root on a machine where the
# tests pass:
#  1. a 100-replica Deployment applied -> all Available (wall time; goal <= 5 s here);
#  2. a rolling update of it (set image -> rollout complete);
#  3. HPA reaction: CPU load starts -> new replicas asked for (the HPA's lastScaleTime);
#  4. Service connections: requests/s and latency through the ClusterIP vs straight to a pod
#     IP, from a pod (busybox wget in a loop, so both include wget's own start);
#  5. cluster DNS: queries/s answered (UDP, from the host to the pod gateway).
# Starts its own daemon (API on 127.0.0.1:16501, pods on bpbench2 10.249.0.0/24, services
# 10.250.0.0/24, ingress off) and removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for p in busybox-static iproute2 nftables bc; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
[ ${#need[@]} -eq 0 ] || { apt-get update -qq; apt-get install -y -qq "${need[@]}"; }
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
W=$(mktemp -d /tmp/cbench.XXXXXX)
export DOCKER_HOST=unix://$W/run/berth.sock KUBECONFIG=$W/root/kubeconfig
cleanup() {
    set +e
    if [ -n "${BPID:-}" ]; then
        kubectl delete deploy --all >/dev/null 2>&1
        kubectl delete pods --all --grace-period=0 --force >/dev/null 2>&1
        docker rm -f $(docker ps -aq) >/dev/null 2>&1
        kill "$BPID"; wait "$BPID"
    fi
    ip link del bpbench2 2>/dev/null
    nft delete table ip berth-bpbench2 2>/dev/null; nft delete table ip berth-svc-bpbench2 2>/dev/null
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT
now() { date +%s.%N; }

mkdir -p "$W/rootfs"/{bin,etc,tmp}
cp /bin/busybox "$W/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"; done
tar -C "$W/rootfs" -cf "$W/bb.tar" .
"$BERTH" daemon --root "$W/root" --exec-root "$W/run" --bridge none --kube-listen 127.0.0.1:16501 \
    --pod-bridge bpbench2 --pod-cidr 10.249.0.0/24 --service-cidr 10.250.0.0/24 \
    --ingress-http none --ingress-https none --dns 127.0.0.1:9 --log-level warn 2>"$W/berth.log" &
BPID=$!
for _ in $(seq 100); do [ -S "$W/run/berth.sock" ] && [ -f "$KUBECONFIG" ] && break; sleep 0.05; done
docker import "$W/bb.tar" bb:1 >/dev/null
docker tag bb:1 bb:2
sleep 3

# 1, 2: a 100-replica Deployment, then a rolling update of it.
cat >"$W/big.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: big}
spec:
  replicas: 100
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: c, image: bb:1, command: [sleep, '100000']}]
EOF
t0=$(now)
kubectl apply -f "$W/big.yaml" >/dev/null
kubectl rollout status deploy/big --timeout=600s >/dev/null
t1=$(now)
echo "100-replica Deployment applied -> all Available: $(echo "$t1 - $t0" | bc) s"
t0=$(now)
kubectl set image deploy/big c=bb:2 >/dev/null
kubectl rollout status deploy/big --timeout=600s >/dev/null
t1=$(now)
echo "rolling update of it (25% surge/unavailable): $(echo "$t1 - $t0" | bc) s"
kubectl delete deploy big --wait=false >/dev/null
while [ "$(kubectl get pods -l app=big --no-headers 2>/dev/null | wc -l)" -gt 0 ]; do sleep 0.5; done

# 3: HPA reaction time.
cat >"$W/burn.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: c
        image: bb:1
        command: [sh, -c, 'while [ ! -e /go ]; do sleep 0.1; done; while :; do :; done']
        resources: {requests: {cpu: 100m}, limits: {cpu: 200m}}
EOF
kubectl apply -f "$W/burn.yaml" >/dev/null
kubectl rollout status deploy/burn >/dev/null
kubectl autoscale deploy burn --min=1 --max=4 --cpu-percent=50 >/dev/null
sleep 20
pod=$(kubectl get pods -l app=burn -o name)
t0=$(now)
kubectl exec "$pod" -- touch /go
while [ "$(kubectl get deploy burn -o jsonpath='{.spec.replicas}')" = "1" ]; do sleep 0.2; done
t1=$(now)
echo "HPA: CPU load starts -> more replicas asked for: $(echo "$t1 - $t0" | bc) s (15 s sync period, 5 s metrics window)"
kubectl delete hpa burn >/dev/null; kubectl delete deploy burn >/dev/null

# 4: Service connection rate and latency, ClusterIP vs pod IP.
cat >"$W/web.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: c, image: bb:1, command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www']}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: bb:1, command: [sleep, '100000']}]
EOF
kubectl apply -f "$W/web.yaml" >/dev/null
kubectl rollout status deploy/web >/dev/null
kubectl wait --for=condition=Ready pod/client >/dev/null
sleep 1
cip=$(kubectl get svc web -o jsonpath='{.spec.clusterIP}')
pip=$(kubectl get pods -l app=web -o jsonpath='{.items[0].status.podIP}')
# Timed from the host around one exec (busybox's date has no nanoseconds; the exec's own
# ~0.1 s is spread over the 500 requests).
rate() {
    local t0 t1
    t0=$(now)
    kubectl exec client -- sh -c "i=0; while [ \$i -lt 500 ]; do wget -qO- $1 >/dev/null; i=\$((i+1)); done"
    t1=$(now)
    echo "($t1 - $t0) * 2000" | bc | cut -d. -f1
}
via_svc=$(rate "http://$cip/")
via_pod=$(rate "http://$pip:8080/")
echo "500 HTTP requests, one connection each, from a pod: ClusterIP ${via_svc} us/request, pod IP ${via_pod} us/request (ratio $(echo "scale=2; $via_svc / $via_pod" | bc))"

# 5: DNS query rate against the cluster DNS (from the host, UDP, one outstanding query).
python3 - "10.249.0.1" <<'EOF'
import socket, struct, sys, time
def q(i):
    name = b"".join(bytes([len(p)]) + p for p in b"web.default.svc.cluster.local".split(b".")) + b"\0"
    return struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
n = 5000
t = time.time()
for i in range(n):
    s.sendto(q(i), (sys.argv[1], 53))
    s.recv(512)
d = time.time() - t
print(f"cluster DNS: {n} A queries, one at a time: {n / d:.0f} queries/s ({d / n * 1e6:.0f} us each)")
EOF
echo "daemon RSS after all this: $(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$BPID/status) MiB"
