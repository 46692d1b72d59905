#!/usr/bin/env bash
# Fresh machine to a running container: install build deps, build Berth, start the daemon on its
# default root, import a busybox image made from Debian's busybox-static, run a container, build an
# image from a Dockerfile and run it, list the containers.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for p in build-essential pkg-config libseccomp-dev busybox-static tini iproute2 nftables; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi
cargo build --release -p berth
BERTH=$PWD/target/release/berth
if ! $BERTH version >/dev/null 2>&1 || ! [ -S /run/berth/berth.sock ]; then
    nohup "$BERTH" daemon >/var/log/berth.log 2>&1 &
    for _ in $(seq 50); do [ -S /run/berth/berth.sock ] && break; sleep 0.1; done
fi
# A busybox base image from Debian's static busybox.
rootfs=$(mktemp -d)
ctx=$(mktemp -d)
trap 'rm -rf "$rootfs" "$ctx"' EXIT
mkdir -p "$rootfs"/{bin,etc,tmp,root}
cp /bin/busybox "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
tar -C "$rootfs" -c . | $BERTH import - busybox:latest
$BERTH rm -f hello-berth >/dev/null 2>&1 || true
$BERTH run --name hello-berth busybox echo "Hello from a Berth container"
# A reproducible build: the same Dockerfile and context give the same image ID anywhere.
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox
RUN echo "Hello from an image Berth built" > /motd
CMD ["cat", "/motd"]
EOF
$BERTH build -t hello-build "$ctx"
$BERTH run --rm hello-build
$BERTH ps -a
echo "The daemon keeps running (log: /var/log/berth.log). Try: DOCKER_HOST=unix:///run/berth/berth.sock docker run --rm -it busybox sh"
echo "Its dashboard (open in a browser on this machine): $($BERTH dashboard 2>/dev/null || echo 'off')"
