#!/usr/bin/env python3
"""The live audit at cluster scale, against the real control plane (issue 16's benchmark).

    scripts/bench-scale.py [--objects 27000] [--runs 3] [--dir /tmp/driftsweep-scale]
                           [--binary target/release/driftsweep] [--down]

Starts (or reuses) the control plane of tests/kube/testenv.py in DIR, applies the AIA
namespaces and driftsweep's own account (k8s/driftsweep: the shipped RBAC), and seeds N objects
in the three AIA namespaces in the issue's proportions: 20/27 ConfigMaps (~400 bytes of data
each), 5/27 Secrets, 2/27 Pods, each Pod reading a ConfigMap and a Secret. Seeding is
idempotent (an object already there is left), with parallel keep-alive creates.

Then, RUNS times, in this order:
  the floor: one keep-alive HTTPS client (the same token) paging every list the audit makes,
    `limit=500`, reading each page's bytes without decoding them; the continue token is read
    from the list's metadata, which the server writes first;
  the audit: `driftsweep run --dry-run` with benches/scale/policy.yaml and the nightly job's
    outputs (JSON, Markdown, HTML, the email body), under the shipped `driftsweep` account.

The lists the floor makes are the ones the first (warm-up) audit logged, so the two read the
same things. Prints each run's times, the ratio, the audit's peak RSS, and the audit's requests
by list next to the floor's page count (they must be equal). Nothing listens beyond 127.0.0.1.
"""

import argparse
import concurrent.futures
import http.client
import json
import math
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTENV = os.path.join(ROOT, "tests", "kube", "testenv.py")
NAMESPACES = ["aia-production", "aia-staging", "aia-monitoring"]
PAGE = 500
CONTINUE = re.compile(rb'"continue":"([^"]*)"')
METADATA_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


class Api:
    """Keep-alive HTTPS to the API server, one connection per thread."""

    def __init__(self, server, ca, cert=None, key=None, token=None):
        url = urllib.parse.urlparse(server)
        self.host, self.port = url.hostname, url.port
        self.context = ssl.create_default_context(cafile=ca)
        if cert:
            self.context.load_cert_chain(cert, key)
        self.token = token
        self.local = threading.local()

    def connection(self):
        if getattr(self.local, "conn", None) is None:
            self.local.conn = http.client.HTTPSConnection(self.host, self.port, context=self.context)
        return self.local.conn

    def request(self, method, path, body=None, accept="application/json"):
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(5):
            try:
                conn = self.connection()
                conn.request(method, path, body=data, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                if response.status == 429 or response.status >= 500:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                return response.status, payload
            except (ConnectionError, http.client.HTTPException, OSError):
                self.local.conn = None
                time.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"{method} {path}: no answer after 5 attempts")


def seed(admin, total):
    configmaps = round(total * 20 / 27)
    secrets = round(total * 5 / 27)
    pods = total - configmaps - secrets
    data = {f"key{i}": "v" * 36 for i in range(10)}  # ~400 bytes
    jobs = []
    for i in range(configmaps):
        ns = NAMESPACES[i % 3]
        jobs.append((f"/api/v1/namespaces/{ns}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"bench-cm-{i:06d}", "labels": {"bench": "scale"}},
            "data": data}))
    for i in range(secrets):
        ns = NAMESPACES[i % 3]
        secret = {"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": f"bench-secret-{i:06d}", "labels": {"bench": "scale"}},
                  "type": "Opaque", "stringData": {"password": "p" * 32}}
        if i % 5 == 4:
            secret["type"] = "kubernetes.io/basic-auth"
            secret["stringData"] = {"username": "bench", "password": "p" * 32}
        jobs.append((f"/api/v1/namespaces/{ns}/secrets", secret))
    for i in range(pods):
        ns = NAMESPACES[i % 3]
        # Pod i reads ConfigMap i*3 and Secret i*2 of its namespace (same index modulo 3).
        cm = f"bench-cm-{(i * 3 + i % 3) % max(configmaps, 1):06d}"
        secret = f"bench-secret-{(i * 3 + i % 3) % max(secrets, 1):06d}"
        jobs.append((f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"bench-pod-{i:06d}", "labels": {"bench": "scale", "app": f"b{i % 50}"}},
            "spec": {"containers": [{
                "name": "app", "image": "us-docker.pkg.dev/aia-prod/aia/aia-api:1.0.0",
                "envFrom": [{"configMapRef": {"name": cm}}],
                "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
                "volumes": [{"name": "s", "secret": {"secretName": secret}}]}}))

    # Kinds already seeded to their count are left as they are (a rerun starts at once).
    def count(resource):
        status, body = admin.request("GET", f"/api/v1/{resource}?limit=1")
        listed = json.loads(body) if status == 200 else {}
        return len(listed.get("items") or []) + listed.get("metadata", {}).get("remainingItemCount", 0)

    have = {r: count(r) for r in ("configmaps", "secrets", "pods")}
    want = {"configmaps": configmaps, "secrets": secrets, "pods": pods}
    jobs = [j for j in jobs if have[j[0].rsplit("/", 1)[-1]] < want[j[0].rsplit("/", 1)[-1]]]

    def create(job):
        path, body = job
        status, payload = admin.request("POST", path, body)
        if status not in (201, 409):
            raise RuntimeError(f"POST {path}: {status} {payload[:300]!r}")
        return status == 201

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        created = sum(pool.map(create, jobs, chunksize=64))
    return {"configmaps": configmaps, "secrets": secrets, "pods": pods,
            "created": created, "seconds": time.monotonic() - started}


def wait_for_default_accounts(admin):
    for ns in NAMESPACES:
        for _ in range(120):
            status, _ = admin.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
            if status == 200:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"no default ServiceAccount in {ns}")


def audit(binary, kubeconfig, out, log_path):
    env = dict(os.environ, DRIFTSWEEP_LOG="warn,driftsweep::kube::request=debug")
    args = [binary, "run", "--dry-run", "--policy", os.path.join(ROOT, "benches/scale/policy.yaml"),
            "--kubeconfig", kubeconfig,
            "--report", os.path.join(out, "report.json"),
            "--markdown", os.path.join(out, "report.md"),
            "--html", os.path.join(out, "report.html"),
            "--email-preview", os.path.join(out, "email.html"),
            # Two days on, so the seeded objects are past min_age_hours and planned.
            "--now", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2 * 86400))]
    with open(log_path, "w") as log:
        started = time.monotonic()
        child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        with open(log_path) as f:
            sys.exit(f"driftsweep exited {code}:\n{f.read()[-3000:]}")
    requests = []
    with open(log_path) as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            fields = event.get("fields", event)
            if fields.get("message") == "kubernetes request" or event.get("message") == "kubernetes request":
                requests.append(fields)
    return seconds, usage.ru_maxrss / 1024, requests


def list_key(request):
    """A list the audit made: its path, selectors and whether it was metadata-only."""
    query = urllib.parse.parse_qs(request.get("query", ""))
    selectors = {k: v[0] for k, v in query.items() if k in ("fieldSelector", "labelSelector")}
    return (request["path"], tuple(sorted(selectors.items())), request.get("metadataOnly", request.get("metadata_only")) in (True, "true"))


def floor(api, lists):
    pages = {}
    started = time.monotonic()
    for path, selectors, metadata_only in lists:
        token = None
        count = 0
        while True:
            query = {"limit": str(PAGE), **dict(selectors)}
            if token:
                query["continue"] = token
            status, body = api.request("GET", f"{path}?{urllib.parse.urlencode(query)}",
                                       accept=METADATA_ACCEPT if metadata_only else "application/json")
            if status != 200:
                raise RuntimeError(f"floor: GET {path}: {status} {body[:200]!r}")
            count += 1
            match = CONTINUE.search(body[:4096])
            token = match.group(1).decode() if match and match.group(1) else None
            if not token:
                break
        pages[(path, selectors, metadata_only)] = count
    return time.monotonic() - started, pages


def describe(key):
    path, selectors, metadata_only = key
    text = path.rsplit("/", 1)[-1]
    for k, v in selectors:
        text += f" {k}={v}"
    return text + (" (metadata)" if metadata_only else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=27000)
    parser.add_argument("--runs", type=int, default=3,
                        help="floor-then-audit pairs to measure; 0 seeds and warms up only")
    parser.add_argument("--dir", default="/tmp/driftsweep-scale")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/driftsweep"))
    parser.add_argument("--down", action="store_true", help="stop the control plane afterwards")
    args = parser.parse_args()

    run(sys.executable, TESTENV, "up", "--dir", args.dir, "--reuse", "--idle-minutes", "60")
    with open(os.path.join(args.dir, "state.json")) as f:
        state = json.load(f)
    admin = Api(state["server"], state["ca"], state["client_cert"], state["client_key"])
    kubectl = ["kubectl", "--kubeconfig", state["admin_kubeconfig"]]
    run(*kubectl, "apply", "--server-side", "-f", os.path.join(ROOT, "k8s/aia/namespaces.yaml"))
    for f in ("namespace.yaml", "serviceaccounts.yaml", "rbac.yaml"):
        run(*kubectl, "apply", "--server-side", "-n", "driftsweep", "-f", os.path.join(ROOT, "k8s/driftsweep", f))
    wait_for_default_accounts(admin)
    seeded = seed(admin, args.objects)
    print(f"seeded {args.objects} objects ({seeded['configmaps']} ConfigMaps, {seeded['secrets']} "
          f"Secrets, {seeded['pods']} Pods): {seeded['created']} created in {seeded['seconds']:.1f} s")

    status, body = admin.request("POST", "/api/v1/namespaces/driftsweep/serviceaccounts/driftsweep/token",
                                 {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                  "spec": {"expirationSeconds": 7200}})
    if status != 201:
        sys.exit(f"token request: {status} {body[:300]!r}")
    token = json.loads(body)["status"]["token"]
    work = tempfile.mkdtemp(prefix="driftsweep-scale-")
    kubeconfig = os.path.join(work, "kubeconfig")
    with open(kubeconfig, "w") as f:
        f.write("apiVersion: v1\nkind: Config\n"
                f"clusters:\n- name: c\n  cluster:\n    server: {state['server']}\n"
                f"    certificate-authority: {state['ca']}\n"
                f"users:\n- name: u\n  user:\n    token: {token}\n"
                "contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n")
    os.chmod(kubeconfig, 0o600)
    api = Api(state["server"], state["ca"], token=token)

    _, _, warmup = audit(args.binary, kubeconfig, work, os.path.join(work, "warmup.log"))
    lists = sorted({list_key(r) for r in warmup if r.get("method") == "GET" and "limit=" in r.get("query", "")})
    results = []
    for i in range(args.runs):
        floor_s, pages = floor(api, lists)
        audit_s, rss, requests = audit(args.binary, kubeconfig, work, os.path.join(work, f"run{i}.log"))
        results.append((floor_s, audit_s, rss, requests, pages))
        print(f"run {i + 1}: floor {floor_s:.2f} s, audit {audit_s:.2f} s, ratio {audit_s / floor_s:.2f}, "
              f"peak RSS {rss:.0f} MB, {len(requests)} requests")

    if not results:
        print(f"seeded and warmed up; kubeconfig and the warm-up log are in {work}")
        if args.down:
            run(sys.executable, TESTENV, "down", "--dir", args.dir)
        return
    floor_s, audit_s, rss, requests, pages = sorted(results, key=lambda r: r[1] / r[0])[len(results) // 2]
    by_list = {}
    others = {}
    for r in requests:
        if r.get("method") == "GET" and "limit=" in r.get("query", ""):
            key = list_key(r)
            by_list[key] = by_list.get(key, 0) + 1
        else:
            what = f"{r.get('method')} {r.get('path')}"
            others[what] = others.get(what, 0) + 1
    print(f"\nmedian run: floor {floor_s:.2f} s, audit {audit_s:.2f} s, ratio {audit_s / floor_s:.2f}, "
          f"peak RSS {rss:.0f} MB")
    print(f"\n| list | audit requests | floor pages |\n| --- | ---: | ---: |")
    mismatches = 0
    for key in sorted(set(by_list) | set(pages)):
        a, p = by_list.get(key, 0), pages.get(key, 0)
        mismatches += a != p
        print(f"| {describe(key)} | {a} | {p}{'' if a == p else '  MISMATCH'} |")
    print(f"| all lists | {sum(by_list.values())} | {sum(pages.values())} |")
    for what, n in sorted(others.items()):
        print(f"| (not a list) {what} | {n} | |")
    expected = {"configmaps": seeded["configmaps"], "secrets": seeded["secrets"], "pods": seeded["pods"]}
    print("\nseeded pages: " + ", ".join(f"{k} ⌈{v}/{PAGE}⌉ = {math.ceil(v / PAGE)}" for k, v in expected.items()))
    if args.down:
        run(sys.executable, TESTENV, "down", "--dir", args.dir)
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
