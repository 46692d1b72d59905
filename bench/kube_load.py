#!/usr/bin/env python3
"""Load on Berth's Kubernetes API (used by bench/kube.sh): latency of get/list/create under N
concurrent clients, and watch fan-out delivery latency. Talks HTTPS with the admin
kubeconfig's client certificate; one keep-alive connection per client thread.

usage: kube_load.py KUBECONFIG api CLIENTS REQUESTS_PER_CLIENT
       kube_load.py KUBECONFIG watch WATCHERS EVENTS
"""
import base64
import http.client
import json
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time

import yaml


def context(kubeconfig):
    kc = yaml.safe_load(open(kubeconfig))
    cluster = kc["clusters"][0]["cluster"]
    user = kc["users"][0]["user"]
    d = tempfile.mkdtemp()
    paths = {}
    for k, f in [("certificate-authority-data", "ca"), ("client-certificate-data", "crt"), ("client-key-data", "key")]:
        src = cluster if k.startswith("certificate-authority") else user
        p = os.path.join(d, f)
        open(p, "wb").write(base64.b64decode(src[k]))
        paths[f] = p
    ctx = ssl.create_default_context(cafile=paths["ca"])
    ctx.load_cert_chain(paths["crt"], paths["key"])
    host, port = cluster["server"].removeprefix("https://").split(":")
    return ctx, host, int(port)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def api(kubeconfig, clients, per):
    ctx, host, port = context(kubeconfig)
    results = {"get": [], "list": [], "create": []}
    lock = threading.Lock()

    def worker(i):
        c = http.client.HTTPSConnection(host, port, context=ctx)
        mine = {"get": [], "list": [], "create": []}
        for j in range(per):
            for op in ("get", "list", "create"):
                if op == "get":
                    req = ("GET", "/api/v1/namespaces/default/configmaps/bench-0", None)
                elif op == "list":
                    req = ("GET", "/api/v1/namespaces/default/configmaps?limit=500", None)
                else:
                    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"load-{i}-{j}"}, "data": {"k": "v"}})
                    req = ("POST", "/api/v1/namespaces/default/configmaps", body)
                t0 = time.perf_counter()
                c.request(req[0], req[1], body=req[2], headers={"Content-Type": "application/json", "Accept": "application/json"})
                r = c.getresponse()
                r.read()
                dt = time.perf_counter() - t0
                if r.status >= 300:
                    raise SystemExit(f"{op}: HTTP {r.status}")
                mine[op].append(dt)
        with lock:
            for k, v in mine.items():
                results[k].extend(v)

    # One object to get.
    c = http.client.HTTPSConnection(host, port, context=ctx)
    c.request("POST", "/api/v1/namespaces/default/configmaps", body=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bench-0"}}), headers={"Content-Type": "application/json"})
    c.getresponse().read()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    total = sum(len(v) for v in results.values())
    print(f"api: {clients} clients x {per} rounds of get+list+create: {total} requests in {wall:.1f} s ({total / wall:.0f} req/s)")
    for op, xs in results.items():
        print(f"  {op:6} p50 {statistics.median(xs) * 1000:7.1f} ms  p99 {pct(xs, 0.99) * 1000:7.1f} ms  (n={len(xs)})")


def watch(kubeconfig, watchers, events):
    ctx, host, port = context(kubeconfig)
    c = http.client.HTTPSConnection(host, port, context=ctx)
    c.request("GET", "/api/v1/namespaces/default/configmaps?limit=1")
    rv = json.loads(c.getresponse().read())["metadata"]["resourceVersion"]
    sent = {}
    got = [[] for _ in range(watchers)]
    ready = threading.Barrier(watchers + 1)

    def watcher(i):
        w = http.client.HTTPSConnection(host, port, context=ctx)
        w.request("GET", f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&labelSelector=fan%3Dout")
        r = w.getresponse()
        ready.wait()
        buf = b""
        n = 0
        while n < events:
            chunk = r.readline()
            if not chunk:
                break
            buf += chunk
            if not buf.endswith(b"\n"):
                continue
            ev = json.loads(buf)
            buf = b""
            if ev["type"] != "ADDED":
                continue
            name = ev["object"]["metadata"]["name"]
            got[i].append(time.perf_counter() - sent.get(name, time.perf_counter()))
            n += 1

    ts = [threading.Thread(target=watcher, args=(i,), daemon=True) for i in range(watchers)]
    for t in ts:
        t.start()
    ready.wait()
    time.sleep(0.5)
    t0 = time.perf_counter()
    for j in range(events):
        name = f"fan-{j}"
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"fan": "out"}}})
        sent[name] = time.perf_counter()
        c.request("POST", "/api/v1/namespaces/default/configmaps", body=body, headers={"Content-Type": "application/json"})
        c.getresponse().read()
        time.sleep(0.01)
    for t in ts:
        t.join(timeout=60)
    wall = time.perf_counter() - t0
    lat = [x for g in got for x in g]
    complete = sum(1 for g in got if len(g) == events)
    print(f"watch: {watchers} watchers, {events} creations: {len(lat)} deliveries in {wall:.1f} s, {complete}/{watchers} watchers saw every event")
    print(f"  delivery p50 {statistics.median(lat) * 1000:.1f} ms  p99 {pct(lat, 0.99) * 1000:.1f} ms  max {max(lat) * 1000:.1f} ms")


if __name__ == "__main__":
    kc, mode, a, b = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    (api if mode == "api" else watch)(kc, a, b)
