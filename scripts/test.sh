#!/usr/bin/env bash
# Install what the tests need, build, and run every test (unit + integration against a real daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "the integration tests create namespaces, mounts and cgroups: run as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
need=()
for p in build-essential pkg-config libseccomp-dev busybox-static tini iproute2 nftables docker-compose docker.io docker-registry skopeo apache2-utils zstd curl runc openssl procps bzip2 xz-utils debootstrap etcd-server chromium chromium-driver python3-selenium; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
fi
python3 -c 'import docker' 2>/dev/null || pip install -q 'docker==7.1.0'
# docker-py's own integration suite (run from its 6.1.3 sdist by the network tests) needs these.
python3 -c 'import pytest, paramiko' 2>/dev/null || pip install -q pytest paramiko
# The Kubernetes API tests drive the Python kubernetes client too.
python3 -c 'import kubernetes' 2>/dev/null || pip install -q kubernetes
# gRPC probes are tested against grpcio's own health server.
python3 -c 'import grpc, grpc_health' 2>/dev/null || pip install -q grpcio grpcio-health-checking
command -v docker >/dev/null || { echo "the docker CLI (client) is required for the integration tests" >&2; exit 1; }
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads=2
