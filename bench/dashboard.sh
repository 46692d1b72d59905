#!/usr/bin/env bash
# The dashboard's figures (issue 14.6), by hand as root (needs chromium, chromium-driver and
# python3-selenium, as the tests do):
#  1. the daemon's RSS with the dashboard idle, then while a page has watched it for 30 s;
#  2. the page's load (navigation timing) and the time until the first rows are drawn, in
#     headless Chromium, median of 5 cold loads;
#  3. /api/state and /api/metrics: time per request (median of 50) and size.
# Starts its own daemon on a temporary root (--no-kube, no bridge; dashboard on 127.0.0.1:17070)
# with 30 busybox containers (2 of them busy), and removes all it made.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
W=$(mktemp -d /tmp/dashbench.XXXXXX)
export DOCKER_HOST=unix://$W/run/berth.sock
cleanup() {
    set +e
    if [ -n "${BPID:-}" ]; then
        docker rm -f $(docker ps -aq) >/dev/null 2>&1
        kill "$BPID"; wait "$BPID"
    fi
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$BPID/status"; }

"$BERTH" daemon --root "$W/root" --exec-root "$W/run" --bridge none --no-kube --dashboard 127.0.0.1:17070 \
    --log-level warn 2>"$W/berth.log" &
BPID=$!
for _ in $(seq 100); do [ -S "$W/run/berth.sock" ] && break; sleep 0.05; done
rootfs=$W/rootfs
mkdir -p "$rootfs"/{bin,etc,tmp}
cp /bin/busybox "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
tar -C "$rootfs" -c . | docker import - bb:1 >/dev/null
for i in $(seq 28); do docker run -d --name idle$i bb:1 sh -c 'while true; do echo tick; sleep 1; done' >/dev/null; done
docker run -d --name busy1 --cpus 0.5 bb:1 sh -c 'while :; do :; done' >/dev/null
docker run -d --name busy2 --cpus 0.5 bb:1 sh -c 'while :; do :; done' >/dev/null
sleep 2
echo "daemon RSS, 30 containers, dashboard idle: $(rss) MiB"

URL=$("$BERTH" -H "$DOCKER_HOST" dashboard)
BASE=${URL%%/\?*}
PROFILES=$W /usr/bin/python3 - "$URL" <<'EOF'
import json, os, statistics, sys, tempfile, time
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

url = sys.argv[1]
loads, firsts, renders = [], [], []
for i in range(6):
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
              f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=os.environ['PROFILES'])}"]:
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    try:
        t = time.time()
        d.get(url)
        while not d.find_elements(By.CSS_SELECTOR, '#containers tr[data-name="busy2"]'):
            time.sleep(0.005)
        first = time.time() - t
        nav = d.execute_script("const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;")
        drawn = d.execute_script("const m = performance.getEntriesByName('berth-first-render')[0]; return m ? m.startTime : null;")
        if i > 0:  # the first start of Chromium warms the disk cache
            loads.append(nav)
            firsts.append(first * 1000)
            renders.append(drawn)
        if i == 5:
            time.sleep(30)  # a page watching: samples every 2 s
            rows = len(d.find_elements(By.CSS_SELECTOR, "#containers tbody tr"))
            plots = len([e for e in d.find_elements(By.CSS_SELECTOR, "#containers svg.plot") if int(e.get_attribute("data-samples") or 0) > 10])
            print(f"after 30 s watching: {rows} rows, {plots} plots with > 10 samples")
    finally:
        d.quit()
print(f"page load (navigation, loadEventEnd): median {statistics.median(loads):.1f} ms over {len(loads)} cold loads")
print(f"navigation start -> first data drawn (in the page): median {statistics.median(renders):.1f} ms")
print(f"driver.get -> rows seen through WebDriver (includes its round trips and the token redirect): median {statistics.median(firsts):.1f} ms")
EOF
echo "daemon RSS after a page watched for 30 s: $(rss) MiB"
C=$(curl -s -D - -o /dev/null "$URL" | sed -n 's/^set-cookie: berth_dashboard=\([^;]*\).*/\1/ip')
for p in state metrics; do
    for _ in $(seq 50); do curl -s -o /dev/null -w '%{time_total} %{size_download}\n' -b "berth_dashboard=$C" "$BASE/api/$p"; done |
        sort -n | awk -v p="$p" '{t[NR]=$1; s=$2} END {printf "/api/%s: median %.1f ms, %d bytes\n", p, t[int((NR+1)/2)]*1000, s}'
done
