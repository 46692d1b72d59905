#!/usr/bin/env bash
# Registry speed, in one run, on loopback:
#  1. skopeo copy of a ~200 MB image (4 gzip layers of 50 MB random data) from an OCI layout to
#     Berth's registry vs to Debian's docker-registry, and back to a fresh OCI layout;
#  2. `berth push` vs real `docker push` (Debian's docker.io) of the same image to docker-registry.
# Every timed run starts from empty registry storage (hyperfine --prepare), so nothing is skipped as
# already present. Prints medians and ratios. Run as root on a machine where the tests pass.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
export DEBIAN_FRONTEND=noninteractive
need=()
for p in docker.io docker-registry skopeo hyperfine busybox-static; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
[ ${#need[@]} -eq 0 ] || { apt-get update -qq; apt-get install -y -qq "${need[@]}"; }
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
DOCKER20=/usr/bin/docker

W=$(mktemp -d /tmp/bench.XXXXXX)
cleanup() {
    set +e
    for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
    [ -n "${BPID:-}" ] && { kill "$BPID"; wait "$BPID"; }
    [ -n "${DPID:-}" ] && { kill "$DPID"; wait "$DPID"; }
    sleep 0.5
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 did not open" >&2; return 1; }

# The image: an OCI layout with 4 gzip layers of 50 MB random data.
python3 - "$W/layout" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
root = sys.argv[1]
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return "sha256:" + d, len(data)
layers, diff_ids = [], []
for i in range(4):
    payload = os.urandom(50 << 20)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo(f"data/part{i}.bin"); info.size = len(payload); info.mtime = 0
        t.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    d, n = put(gzip.compress(raw, compresslevel=1, mtime=0))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
          "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": [{"created_by": "bench"}] * 4}
cd, cn = put(json.dumps(config).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn}, "layers": layers}
md, mn = put(json.dumps(manifest).encode())
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(root, "oci-layout"), "w"))
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
           "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, open(os.path.join(root, "index.json"), "w"))
PY
SIZE=$(du -sm "$W/layout" | cut -f1)

# Reset scripts: a registry on empty storage, on a fixed port.
DR_PORT=$(free_port); BR_PORT=$(free_port)
cat >"$W/dr.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $W/dr-data
http:
  addr: 127.0.0.1:$DR_PORT
EOF
cat >"$W/reset-dr.sh" <<EOF
[ -f $W/dr.pid ] && kill \$(cat $W/dr.pid) 2>/dev/null && while kill -0 \$(cat $W/dr.pid) 2>/dev/null; do sleep 0.02; done
rm -rf $W/dr-data
docker-registry serve $W/dr.yml >$W/dr.log 2>&1 & echo \$! >$W/dr.pid
for _ in \$(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$DR_PORT) 2>/dev/null && exit 0; sleep 0.05; done; exit 1
EOF
cat >"$W/reset-br.sh" <<EOF
[ -f $W/br.pid ] && kill \$(cat $W/br.pid) 2>/dev/null && while kill -0 \$(cat $W/br.pid) 2>/dev/null; do sleep 0.02; done
rm -rf $W/br-data
$BERTH registry serve --addr 127.0.0.1:$BR_PORT --root $W/br-data --anonymous push >$W/br.log 2>&1 & echo \$! >$W/br.pid
for _ in \$(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$BR_PORT) 2>/dev/null && exit 0; sleep 0.05; done; exit 1
EOF
chmod +x "$W"/reset-*.sh

hf() { hyperfine -N --runs "$RUNS" --prepare "$3" --export-json "$W/$1.json" --style none "$2" >/dev/null; }
SK="skopeo --insecure-policy"
hf to_dr "$SK copy -q --dest-tls-verify=false oci:$W/layout:bench docker://127.0.0.1:$DR_PORT/bench:1" "bash $W/reset-dr.sh"
hf to_br "$SK copy -q --dest-tls-verify=false oci:$W/layout:bench docker://127.0.0.1:$BR_PORT/bench:1" "bash $W/reset-br.sh"
# Back: from a registry holding the image to a fresh layout.
bash "$W/reset-dr.sh"; $SK copy -q --dest-tls-verify=false "oci:$W/layout:bench" "docker://127.0.0.1:$DR_PORT/bench:1"
bash "$W/reset-br.sh"; $SK copy -q --dest-tls-verify=false "oci:$W/layout:bench" "docker://127.0.0.1:$BR_PORT/bench:1"
hf from_dr "$SK copy -q --src-tls-verify=false docker://127.0.0.1:$DR_PORT/bench:1 oci:$W/out:bench" "rm -rf $W/out"
hf from_br "$SK copy -q --src-tls-verify=false docker://127.0.0.1:$BR_PORT/bench:1 oci:$W/out:bench" "rm -rf $W/out"

# berth push vs docker push of the same image, to docker-registry on empty storage.
"$BERTH" daemon --root "$W/b/root" --exec-root "$W/b/run" --log-level warn 2>"$W/berth.log" &
BPID=$!
for _ in $(seq 100); do [ -S "$W/b/run/berth.sock" ] && break; sleep 0.05; done
BH=unix://$W/b/run/berth.sock
tar -C "$W/layout" -cf "$W/layout.tar" .
"$BERTH" -H "$BH" load -i "$W/layout.tar" >/dev/null
IMG=$("$BERTH" -H "$BH" images -q | head -1)
"$BERTH" -H "$BH" tag "$IMG" bench:1
"$BERTH" -H "$BH" tag "$IMG" "127.0.0.1:$DR_PORT/pushed:1"
"$BERTH" -H "$BH" save -o "$W/archive.tar" bench:1
mkdir -p "$W/d"
dockerd --data-root "$W/d/data" --exec-root "$W/d/exec" --pidfile "$W/d/docker.pid" -H "unix://$W/d/docker.sock" \
    --bridge none --iptables=false --ip6tables=false >"$W/dockerd.log" 2>&1 &
DPID=$!
DH=unix://$W/d/docker.sock
for _ in $(seq 200); do DOCKER_HOST=$DH $DOCKER20 version >/dev/null 2>&1 && break; sleep 0.1; done
DOCKER_HOST=$DH $DOCKER20 load -i "$W/archive.tar" >/dev/null
DOCKER_HOST=$DH $DOCKER20 tag bench:1 "127.0.0.1:$DR_PORT/pushed:1"
hf berth_push "$BERTH -H $BH push -q 127.0.0.1:$DR_PORT/pushed:1" "bash $W/reset-dr.sh"
hf docker_push "env DOCKER_HOST=$DH $DOCKER20 push 127.0.0.1:$DR_PORT/pushed:1" "bash $W/reset-dr.sh"

python3 - "$W" "$SIZE" <<'PY'
import json, sys
w, size = sys.argv[1], int(sys.argv[2])
def med(n): return json.load(open(f"{w}/{n}.json"))["results"][0]["median"]
rows = [("skopeo copy layout -> registry", "to_br", "to_dr"), ("skopeo copy registry -> layout", "from_br", "from_dr")]
print(f"image: {size} MB (4 gzip layers)")
print(f"{'':34} {'Berth registry':>15} {'docker-registry':>16} {'ratio':>7}")
for name, b, d in rows:
    print(f"{name:34} {med(b):14.2f}s {med(d):15.2f}s {med(d) / med(b):6.2f}x")
bp, dp = med("berth_push"), med("docker_push")
print(f"\npush to docker-registry: berth push {bp:.2f}s, docker push {dp:.2f}s: berth {dp / bp:.1f}x faster (target >= 5x)")
PY
