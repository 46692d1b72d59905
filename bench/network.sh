#!/usr/bin/env bash
# Networking figures (issue 11), by hand as root on a machine where the tests pass:
#  1. HTTP through a published port vs the same server on the host's loopback (ab, 1 KiB and
#     1 MiB files): the userland proxy (127.0.0.1) and the kernel's DNAT path (the bridge's
#     address), as requests/s and MB/s, and their ratio to the host.
#  2. Round trip container -> container on a user network vs a veth pair between two bare
#     namespaces (ping, 200 packets).
#  3. 50 containers started on one network (IPAM + namespace + veth per container), vs the same
#     with --network none.
# Starts its own daemon on a bridge of its own (btbench, 10.249.0.1/24) and removes everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for p in apache2-utils busybox-static iproute2 nftables; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
[ ${#need[@]} -eq 0 ] || { apt-get update -qq; apt-get install -y -qq "${need[@]}"; }
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
W=$(mktemp -d /tmp/nbench.XXXXXX)
export DOCKER_HOST=unix://$W/run/berth.sock
cleanup() {
    set +e
    [ -n "${HPID:-}" ] && kill "$HPID"
    [ -n "${BPID:-}" ] && { docker rm -f $(docker ps -aq) >/dev/null 2>&1; docker network rm benchnet >/dev/null 2>&1; kill "$BPID"; wait "$BPID"; }
    ip netns del nbA 2>/dev/null; ip netns del nbB 2>/dev/null
    for b in btbench btbench2; do ip link del $b 2>/dev/null; nft delete table ip berth-$b 2>/dev/null; done
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT
B() { docker "$@"; }

mkdir -p "$W/rootfs"/{bin,etc,tmp,proc,sys,dev,www}
cp /bin/busybox "$W/rootfs/bin/"
for a in $("$W/rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$W/rootfs/etc/passwd"
head -c 1024 /dev/urandom >"$W/rootfs/www/1k"
head -c 1048576 /dev/urandom >"$W/rootfs/www/1m"
tar -C "$W/rootfs" -cf "$W/bb.tar" .

"$BERTH" daemon --root "$W/root" --exec-root "$W/run" --bridge btbench --bip 10.249.0.1/24 --log-level warn 2>"$W/berth.log" &
BPID=$!
for _ in $(seq 100); do [ -S "$W/run/berth.sock" ] && break; sleep 0.05; done
B import "$W/bb.tar" bb >/dev/null

# 1. HTTP.
busybox httpd -f -p 127.0.0.1:18080 -h "$W/rootfs/www" & HPID=$!
B run -d --name web -p 18081:80 bb httpd -f -p 80 -h /www >/dev/null
sleep 1
rps() { ab -q -k -n "$2" -c 8 "$1" 2>/dev/null | awk '/Requests per second/ {print $4}'; }
mbs() { ab -q -k -n "$2" -c 8 "$1" 2>/dev/null | awk '/Transfer rate/ {printf "%.1f", $3/1024}'; }
for f in 1k:20000 1m:500; do
    file=${f%%:*}; n=${f##*:}
    h_r=$(rps "http://127.0.0.1:18080/$file" "$n"); h_m=$(mbs "http://127.0.0.1:18080/$file" "$n")
    p_r=$(rps "http://127.0.0.1:18081/$file" "$n"); p_m=$(mbs "http://127.0.0.1:18081/$file" "$n")
    k_r=$(rps "http://10.249.0.1:18081/$file" "$n"); k_m=$(mbs "http://10.249.0.1:18081/$file" "$n")
    echo "http $file: host loopback $h_r req/s $h_m MB/s | published via proxy (127.0.0.1) $p_r req/s $p_m MB/s ($(echo "scale=2; $p_r/$h_r" | bc)x) | via DNAT (bridge address) $k_r req/s $k_m MB/s ($(echo "scale=2; $k_r/$h_r" | bc)x)"
done

# 2. Round trips.
B network create --subnet 10.248.0.0/24 -o com.docker.network.bridge.name=btbench2 benchnet >/dev/null
B run -d --name p1 --network benchnet bb sleep 1000 >/dev/null
B run -d --name p2 --network benchnet bb sleep 1000 >/dev/null
rtt() { awk -F/ '/min\/avg\/max/ {print $4}'; }
c=$(B exec p1 ping -q -c 200 -i 0.01 p2 | rtt)
ip netns add nbA; ip netns add nbB
ip link add nbva netns nbA type veth peer name nbvb netns nbB
ip -n nbA addr add 10.247.0.1/24 dev nbva; ip -n nbB addr add 10.247.0.2/24 dev nbvb
ip -n nbA link set nbva up; ip -n nbB link set nbvb up
v=$(ip netns exec nbA busybox ping -q -c 200 -i 0.01 10.247.0.2 | rtt)
echo "rtt container->container on a user network: $c ms avg | bare veth between namespaces: $v ms avg"
B rm -f p1 p2 >/dev/null

# 3. 50 starts.
t0=$(date +%s.%N); for i in $(seq 50); do B run -d --network benchnet bb sleep 1000 >/dev/null; done; t1=$(date +%s.%N)
B rm -f $(B ps -aq) >/dev/null
t2=$(date +%s.%N); for i in $(seq 50); do B run -d --network none bb sleep 1000 >/dev/null; done; t3=$(date +%s.%N)
echo "50 containers started: on a user network $(echo "$t1 - $t0" | bc) s | with --network none $(echo "$t3 - $t2" | bc) s"
B rm -f $(B ps -aq) >/dev/null
