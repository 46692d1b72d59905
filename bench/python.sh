#!/usr/bin/env bash
# Data-science layer figures (issue 14), by hand as root on a machine where the tests pass
# (they leave the Debian + Python + Flask + Jupyter base in /var/tmp):
#  1. a Flask project without a Dockerfile, first build (dependencies installed);
#  2. the rebuild after a code edit (the dependency layer cached; goal <= 1 s);
#  3. `berth deploy DIR` of it -> the first request answered through its Ingress host;
#  4. the daemon's RSS after.
# Packages come from a package index served on loopback here (a wheel made here) and from the
# base's Debian packages. Starts its own daemon (API on 127.0.0.1:16502, pods on bpbench3
# 10.247.0.0/24, services 10.248.0.0/24, ingress on 127.0.0.1:18080) and removes all it made.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=/var/tmp/berth-test-python-ds-bookworm.tar
[ -f "$BASE" ] || { echo "no $BASE: run the tests once (cargo test -p berth --test python)" >&2; exit 1; }
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
W=$(mktemp -d /tmp/pybench.XXXXXX)
export DOCKER_HOST=unix://$W/run/berth.sock KUBECONFIG=$W/root/kubeconfig
cleanup() {
    set +e
    [ -n "${IPID:-}" ] && kill "$IPID"
    if [ -n "${BPID:-}" ]; then
        "$BERTH" -H "$DOCKER_HOST" undeploy demo --root "$W/root" >/dev/null 2>&1
        kubectl delete pods --all --grace-period=0 --force >/dev/null 2>&1
        docker rm -f $(docker ps -aq) >/dev/null 2>&1
        kill "$BPID"; wait "$BPID"
    fi
    ip link del bpbench3 2>/dev/null
    nft delete table ip berth-bpbench3 2>/dev/null; nft delete table ip berth-svc-bpbench3 2>/dev/null
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# The index: one wheel, tinylib 1.0.
mkdir -p "$W/index/simple/tinylib"
python3 - "$W/index/simple/tinylib/tinylib-1.0-py3-none-any.whl" <<'EOF'
import sys, zipfile
files = {
    "tinylib/__init__.py": "def score(xs, ws):\n    return sum(x * w for x, w in zip(xs, ws))\n",
    "tinylib-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinylib\nVersion: 1.0\n",
    "tinylib-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
files["tinylib-1.0.dist-info/RECORD"] = "".join(f"{n},,\n" for n in files) + "tinylib-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for n, c in files.items():
        z.writestr(n, c)
EOF
python3 -m http.server --bind 127.0.0.1 18090 --directory "$W/index" >/dev/null 2>&1 &
IPID=$!
mkdir -p "$W/demo"
printf 'flask\ntinylib==1.0\n' >"$W/demo/requirements.txt"
echo '{"weights": [0.5, 1.0, 2.0]}' >"$W/demo/model.json"
cat >"$W/demo/app.py" <<'EOF'
import json
from flask import Flask
import tinylib
app = Flask(__name__)
weights = json.load(open("model.json"))["weights"]
@app.route("/predict")
def predict():
    return {"version": 1, "score": tinylib.score([1, 2, 3], weights)}
if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
EOF

"$BERTH" daemon --root "$W/root" --exec-root "$W/run" --bridge none --kube-listen 127.0.0.1:16502 \
    --pod-bridge bpbench3 --pod-cidr 10.247.0.0/24 --service-cidr 10.248.0.0/24 \
    --ingress-http 127.0.0.1:18080 --ingress-https none --dns 127.0.0.1:9 --log-level warn 2>"$W/berth.log" &
BPID=$!
for _ in $(seq 100); do [ -S "$W/run/berth.sock" ] && [ -f "$KUBECONFIG" ] && break; sleep 0.05; done
docker import "$BASE" py:1 >/dev/null
B=(-H "$DOCKER_HOST" build --base py:1 --build-arg PIP_INDEX_URL=http://127.0.0.1:18090/simple -q)

# 1, 2: the first build, then a code edit's rebuild.
t=$(now); "$BERTH" "${B[@]}" -t demo:1 "$W/demo" >/dev/null; echo "first build (pip installs): $(since "$t") s"
sed -i 's/"version": 1/"version": 2/' "$W/demo/app.py"
t=$(now); "$BERTH" "${B[@]}" -t demo:2 "$W/demo" >/dev/null; echo "rebuild after a code edit: $(since "$t") s"

# 3: deploy -> the first answered request through the Ingress host.
sed -i 's/"version": 2/"version": 3/' "$W/demo/app.py"
t=$(now)
"$BERTH" -H "$DOCKER_HOST" deploy "$W/demo" --name demo --port 8000 --root "$W/root" --base py:1 \
    --build-arg PIP_INDEX_URL=http://127.0.0.1:18090/simple >/dev/null 2>&1
until curl -sf -H 'Host: demo.localhost' http://127.0.0.1:18080/predict | grep -q '"version":3'; do sleep 0.05; done
echo "berth deploy DIR -> first answered request: $(since "$t") s"
echo "daemon RSS after all this: $(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$BPID/status) MiB"
