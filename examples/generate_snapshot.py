#!/usr/bin/env python3
"""Generate examples/snapshot/: a recorded snapshot of the AIA cluster, registry and project.

The snapshot follows the folder format of DESIGN.md ("Snapshot folder"): every file is the body an
API would have returned (kubectl get ... -o json|yaml, the registry's tags/list with Google's
extension, the GCP REST list responses). It was "recorded" at RECORDED_AT (2026-11-29 07:30 UTC).

Deterministic: uids, digests, ids and timestamps derive from names through hashlib, so running the
script again rewrites byte-identical files. The Deployments, ConfigMaps, ServiceAccounts and
Services of the repository are read from ../k8s/aia (the repository manifests) so the snapshot and
the manifests cannot disagree except where the example wants them to (see README.md beside this).

It also writes examples/expect.json: the verdicts a correct audit gives (hand-decided, listed
below in write_expect; README.md explains them).

usage: python3 examples/generate_snapshot.py   (needs PyYAML)
"""
import base64
import copy
import datetime as dt
import hashlib
import json
import os
import shutil
import uuid

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "snapshot")
MANIFESTS = os.path.join(HERE, "..", "k8s", "aia")

RECORDED_AT = "2026-11-29T07:30:00Z"
PROJECT = "aia-prod"
PROJECT_NUMBER = "123456789012"
REGISTRY_HOST = "us-docker.pkg.dev"
REGISTRY_ROOT = "aia-prod/aia"
IMG = f"{REGISTRY_HOST}/{REGISTRY_ROOT}"
NODES = ["gke-aia-prod-default-pool-1a2b3c4d-7x2k", "gke-aia-prod-default-pool-1a2b3c4d-q9mf",
         "gke-aia-prod-default-pool-1a2b3c4d-zt4w"]


# ---------------------------------------------------------------- deterministic helpers

def h(*parts):
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def make_uid(*parts):
    return str(uuid.UUID(bytes=bytes.fromhex(h("uid", *parts)[:32]), version=4))


def rv(*parts):
    return str(int(h("rv", *parts)[:8], 16) % 90_000_000 + 1_000_000)


def num_id(digits, *parts):
    n = int(h("id", *parts), 16)
    s = str(n)[:digits]
    return s if s[0] != "0" else "1" + s[1:]


def seed_digest(seed):
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def k8s_hash(n, *parts):
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    x = int(h("name", *parts), 16)
    out = ""
    for _ in range(n):
        x, r = divmod(x, len(alphabet))
        out += alphabet[r]
    return out


def parse(ts):
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def ms(ts):
    return str(int(parse(ts).timestamp() * 1000))


def shift(ts, **delta):
    return (parse(ts) + dt.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def b64(s):
    return base64.b64encode(s.encode()).decode()


def gce_time(ts, millis=0):
    """Compute Engine style: RFC 3339 in US/Pacific with milliseconds (PST, -08:00, in winter)."""
    t = parse(ts)
    # 2026 DST (-07:00) from 2026-03-08 10:00 UTC to 2026-11-01 09:00 UTC
    dst = parse("2026-03-08T10:00:00Z") <= t < parse("2026-11-01T09:00:00Z")
    if t.year == 2023:
        dst = parse("2023-03-12T10:00:00Z") <= t < parse("2023-11-05T09:00:00Z")
    if t.year == 2024:
        dst = parse("2024-03-10T10:00:00Z") <= t < parse("2024-11-03T09:00:00Z")
    off = -7 if dst else -8
    local = t + dt.timedelta(hours=off)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d" % millis + ("-07:00" if dst else "-08:00")


def write(rel, text):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_json(rel, obj, sort_keys=False):
    write(rel, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


class LiteralDumper(yaml.SafeDumper):
    pass


def _str(dumper, s):
    if "\n" in s:
        return dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", s)


LiteralDumper.add_representer(str, _str)


def k8s_list(items):
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def meta(kind, name, created, namespace=None, labels=None, annotations=None, owner=None, **extra):
    m = {"name": name, "uid": make_uid(kind, namespace or "", name), "resourceVersion": rv(kind, namespace or "", name),
         "creationTimestamp": created}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = labels
    if annotations:
        m["annotations"] = annotations
    if owner:
        m["ownerReferences"] = [owner]
    m.update({k: v for k, v in extra.items() if v is not None})
    return m


def owner_ref(obj, controller=True):
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": True}


# ---------------------------------------------------------------- registry

# The repository's release calendar: when each version was uploaded (UTC).
RELEASES = {
    "1.0.0": "2026-01-08T14:12:31Z", "1.1.0": "2026-01-29T15:03:12Z", "1.2.0": "2026-02-12T13:48:55Z",
    "1.3.0": "2026-03-05T16:21:40Z", "1.4.0": "2026-03-26T14:05:09Z", "1.5.0": "2026-04-16T15:32:27Z",
    "1.6.0": "2026-05-07T13:11:48Z", "1.7.0": "2026-05-28T14:44:03Z", "1.8.0": "2026-06-18T15:09:36Z",
    "1.9.0": "2026-07-09T13:57:14Z", "1.10.0": "2026-07-30T14:26:51Z", "1.11.0": "2026-08-20T15:40:22Z",
    "1.12.0": "2026-09-10T13:35:08Z", "1.12.1": "2026-09-17T16:02:45Z", "1.13.0": "2026-09-24T14:18:19Z",
    "1.13.1": "2026-10-01T15:27:33Z", "1.14.0": "2026-10-15T14:51:02Z", "1.14.1": "2026-10-29T13:39:57Z",
    "1.14.2": "2026-11-05T15:16:41Z", "1.15.0-rc.1": "2026-11-20T14:08:26Z",
}

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

# service -> tagged versions present in the registry
API_VERSIONS = ["1.0.0", "1.1.0", "1.3.0", "1.4.0", "1.6.0", "1.8.0", "1.9.0", "1.10.0", "1.11.0", "1.12.0",
                "1.13.0", "1.13.1", "1.14.0", "1.14.1", "1.14.2", "1.15.0-rc.1"]
FRONTEND_VERSIONS = ["1.2.0", "1.5.0", "1.8.0", "1.12.0", "1.12.1", "1.13.0", "1.13.1", "1.14.0", "1.14.1",
                     "1.14.2", "1.15.0-rc.1"]
ORCHESTRATOR_VERSIONS = ["1.1.0", "1.3.0", "1.4.0", "1.6.0", "1.8.0", "1.10.0", "1.11.0", "1.12.0", "1.13.0",
                         "1.14.0", "1.14.1", "1.14.2", "1.15.0-rc.1"]

DIGEST = {}  # (service, version) -> digest of what the tag points to (the index for multi-arch)


def entry(tags, media_type, size, uploaded, created=None):
    return {"imageSizeBytes": str(size), "layerId": "", "mediaType": media_type, "tag": tags,
            "timeCreatedMs": created if created is not None else ms(shift(uploaded, minutes=-6)),
            "timeUploadedMs": ms(uploaded)}


def size_for(service, seed, base):
    return base + int(h("size", service, seed)[:6], 16) % 4_000_000


def tags_list(repo_path, manifest):
    tags = sorted({t for e in manifest.values() for t in e["tag"]})
    return {"child": [], "manifest": dict(sorted(manifest.items())), "name": repo_path, "tags": tags}


def single_arch_repo(service, versions, untagged, base_size, special_created=None):
    manifest = {}
    for v in versions:
        d = seed_digest(f"{IMG}/{service}:{v}")
        DIGEST[(service, v)] = d
        created = special_created.get(v) if special_created else None
        manifest[d] = entry([v], DOCKER_V2, size_for(service, v, base_size), RELEASES[v], created)
    for seed, uploaded in untagged:
        manifest[seed_digest(f"{IMG}/{service}@{seed}")] = entry([], DOCKER_V2, size_for(service, seed, base_size),
                                                                 uploaded)
    return tags_list(f"{REGISTRY_ROOT}/{service}", manifest)


def write_registry():
    # aia-api: 16 versions plus one untagged digest (the first push of 1.1.0: the release job ran twice
    # and the tag moved to the second build). 1.12.0 was built with reproducible timestamps: the
    # image config says 1980-01-01, the registry knows it was uploaded on 2026-09-10.
    api = single_arch_repo("aia-api", API_VERSIONS, [("first-push-of-1.1.0", "2026-01-29T14:31:05Z")],
                           92_000_000, special_created={"1.12.0": "315532800000"})
    write_json(f"registry/{IMG}/aia-api.json", api)

    # aia-frontend: 11 versions plus three untagged digests from re-pushed release tags, all recent,
    # so that 11 digests are younger than 90 days (keep-N counts digests, tagged or not).
    fe = single_arch_repo("aia-frontend", FRONTEND_VERSIONS,
                          [("first-push-of-1.13.0", "2026-09-24T13:50:02Z"),
                           ("first-push-of-1.14.0", "2026-10-15T14:20:44Z"),
                           ("first-push-of-1.14.1", "2026-10-29T13:12:09Z")], 41_000_000)
    write_json(f"registry/{IMG}/aia-frontend.json", fe)

    # aia-orchestrator: multi-arch; each version is an OCI image index with two child manifests.
    manifest = {}
    for v in ORCHESTRATOR_VERSIONS:
        uploaded = RELEASES[v]
        children = []
        for arch in ("amd64", "arm64"):
            cd = seed_digest(f"{IMG}/aia-orchestrator:{v}/linux/{arch}")
            csize = size_for("aia-orchestrator", v + arch, 118_000_000 if arch == "amd64" else 112_000_000)
            manifest[cd] = entry([], OCI_MANIFEST, csize, shift(uploaded, seconds=-20 if arch == "amd64" else -9))
            children.append({"mediaType": OCI_MANIFEST, "digest": cd,
                             "size": 1500 + int(h("msize", v, arch)[:3], 16) % 600,
                             "platform": {"architecture": arch, "os": "linux"}})
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
        body = json.dumps(index, indent=2)
        d = "sha256:" + hashlib.sha256(body.encode()).hexdigest()  # the index's digest is its own bytes
        DIGEST[("aia-orchestrator", v)] = d
        write(f"registry/{IMG}/aia-orchestrator/manifests/{d}.json", body)
        manifest[d] = entry([v], OCI_INDEX, 0, uploaded)
    write_json(f"registry/{IMG}/aia-orchestrator.json", tags_list(f"{REGISTRY_ROOT}/aia-orchestrator", manifest))

    # old-prototype: a foreign image under the scanned root, not built by this repository.
    proto = {}
    for v, uploaded, tags in [("0.1.0", "2026-01-12T11:05:40Z", ["0.1.0"]),
                              ("0.2.0", "2026-01-26T10:44:18Z", ["0.2.0"]),
                              ("0.3.0", "2026-02-09T12:30:51Z", ["0.3.0", "latest"])]:
        d = seed_digest(f"{IMG}/old-prototype:{v}")
        DIGEST[("old-prototype", v)] = d
        proto[d] = entry(tags, DOCKER_V2, size_for("old-prototype", v, 250_000_000), uploaded)
    write_json(f"registry/{IMG}/old-prototype.json", tags_list(f"{REGISTRY_ROOT}/old-prototype", proto))


# ---------------------------------------------------------------- kubernetes

FAKE_CA = ("-----BEGIN CERTIFICATE-----\n"
           "RkFLRSBDTFVTVEVSIENBIEZPUiBUSEUgRFJJRlRTV0VFUCBFWEFNUExFIC0gTk9UIEEgUkVBTCBDRVJU\n"
           "SUZJQ0FURSAtIERPIE5PVCBVU0UgLSBGQUtFIENMVVNURVIgQ0EgRk9SIFRIRSBEUklGVFNXRUVQIEVY\n"
           "-----END CERTIFICATE-----\n")

SYSTEM_NS_CREATED = "2026-01-05T09:12:44Z"   # cluster creation
AIA_NS_CREATED = "2026-01-06T10:02:17Z"
REPO_NAMESPACES = ["aia-production", "aia-staging", "aia-monitoring"]
SERVICES = ["aia-api", "aia-frontend", "aia-orchestrator"]

# what the cluster runs: (namespace, service) -> (version, by_digest)
RUNNING = {
    ("aia-production", "aia-api"): ("1.14.2", True),
    ("aia-production", "aia-frontend"): ("1.14.2", False),
    ("aia-production", "aia-orchestrator"): ("1.14.2", False),
    ("aia-staging", "aia-api"): ("1.15.0-rc.1", False),
    ("aia-staging", "aia-frontend"): ("1.15.0-rc.1", False),
    ("aia-staging", "aia-orchestrator"): ("1.13.0", False),
}
ROLLOUT = {"1.14.2": "2026-11-06T10:15:22Z", "1.14.1": "2026-10-30T09:48:10Z",
           "1.15.0-rc.1": "2026-11-21T09:40:37Z", "1.13.0": "2026-09-25T11:02:54Z"}


def image_ref(service, version, by_digest=False):
    if by_digest:
        return f"{IMG}/{service}@{DIGEST[(service, version)]}"
    return f"{IMG}/{service}:{version}"


def image_id(service, version):
    return f"{IMG}/{service}@{DIGEST[(service, version)]}"


def load_manifests():
    objs = []
    for fn in sorted(os.listdir(MANIFESTS)):
        if fn.endswith((".yaml", ".yml")):
            with open(os.path.join(MANIFESTS, fn)) as f:
                objs += [d for d in yaml.safe_load_all(f) if d]
    return objs


def namespace_obj(name, created, labels=None, annotations=None):
    lab = {"kubernetes.io/metadata.name": name}
    lab.update(labels or {})
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": meta("Namespace", name, created, labels=lab, annotations=annotations),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def write_namespaces(manifest_ns):
    items = []
    for n in ["default", "gke-managed-system", "gmp-system", "kube-node-lease", "kube-public", "kube-system"]:
        labels = {}
        if n.startswith(("gke-", "gmp-")):
            labels = {"addonmanager.kubernetes.io/mode": "Reconcile"}
        items.append(namespace_obj(n, SYSTEM_NS_CREATED, labels))
    for n in REPO_NAMESPACES:
        items.append(namespace_obj(n, AIA_NS_CREATED, manifest_ns[n]["metadata"].get("labels")))
    items.append(namespace_obj("feature-login-test", "2026-04-22T13:45:10Z", {"team": "aia-frontend"}))
    items.append(namespace_obj("legacy-batch", "2026-02-03T16:20:00Z", {"team": "aia-data"},
                               {"driftsweep.io/keep": "true",
                                "aia.example.com/owner": "data-team; batch jobs run here by hand until Q1 2027"}))
    items.append(namespace_obj("tmp-debug", "2026-11-29T04:31:07Z"))
    write_json("kubernetes/namespaces.json", k8s_list(items), sort_keys=True)


def default_container(c):
    c.setdefault("imagePullPolicy", "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    for p in ("readinessProbe", "livenessProbe"):
        if p in c:
            c[p].setdefault("timeoutSeconds", 1)
            c[p].setdefault("successThreshold", 1)
            c[p].setdefault("failureThreshold", 3)
            c[p]["httpGet"].setdefault("scheme", "HTTP")
    return c


def default_podspec(spec):
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    if "serviceAccountName" in spec:
        spec["serviceAccount"] = spec["serviceAccountName"]
    for c in spec["containers"]:
        default_container(c)
    return spec


def api_access_volume(ns, podname):
    return {"name": "kube-api-access-" + k8s_hash(5, "kaa", ns, podname), "projected": {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


def make_pod(ns, name, created, template, owner, images, node_i, extra_labels=None):
    """images: container name -> (service-or-None, version, image string used, imageID)"""
    spec = copy.deepcopy(template["spec"])
    default_podspec(spec)
    spec.setdefault("serviceAccountName", "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    vol = api_access_volume(ns, name)
    spec.setdefault("volumes", []).append(vol)
    for c in spec["containers"]:
        c.setdefault("volumeMounts", []).append(
            {"name": vol["name"], "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True})
    spec["nodeName"] = NODES[node_i % len(NODES)]
    spec["enableServiceLinks"] = True
    spec["preemptionPolicy"] = "PreemptLowerPriority"
    spec["priority"] = 0
    spec["tolerations"] = [
        {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
        {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists",
         "tolerationSeconds": 300}]
    labels = dict(template["metadata"].get("labels", {}))
    labels.update(extra_labels or {})
    started = shift(created, seconds=9)
    statuses = []
    for c in spec["containers"]:
        img, iid = images[c["name"]]
        statuses.append({"containerID": "containerd://" + h("ctr", ns, name, c["name"]),
                         "image": img, "imageID": iid, "lastState": {}, "name": c["name"], "ready": True,
                         "restartCount": 0, "started": True, "state": {"running": {"startedAt": started}}})
    ready_at = shift(created, seconds=21)
    pod_ip = "10.8.%d.%d" % (int(h("ip", ns, name)[:2], 16) % 8, int(h("ip", ns, name)[2:4], 16) % 250 + 2)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta("Pod", name, created, ns, labels, owner=owner,
                             generateName=name.rsplit("-", 1)[0] + "-" if owner else None),
            "spec": spec,
            "status": {"conditions": [
                {"lastProbeTime": None, "lastTransitionTime": shift(created, seconds=1), "status": "True",
                 "type": "PodScheduled"},
                {"lastProbeTime": None, "lastTransitionTime": started, "status": "True", "type": "Initialized"},
                {"lastProbeTime": None, "lastTransitionTime": ready_at, "status": "True", "type": "ContainersReady"},
                {"lastProbeTime": None, "lastTransitionTime": ready_at, "status": "True", "type": "Ready"}],
                "containerStatuses": statuses,
                "hostIP": "10.128.0.%d" % (10 + node_i % len(NODES)), "phase": "Running", "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}], "qosClass": "Burstable", "startTime": shift(created, seconds=1)}}


def deployment_status(replicas, generation, created, updated):
    conds = [{"lastTransitionTime": shift(created, minutes=1), "lastUpdateTime": shift(created, minutes=1),
              "message": "Deployment has minimum availability.", "reason": "MinimumReplicasAvailable",
              "status": "True", "type": "Available"},
             {"lastTransitionTime": shift(created, minutes=1), "lastUpdateTime": shift(updated, seconds=40),
              "message": "ReplicaSet has successfully progressed.", "reason": "NewReplicaSetAvailable",
              "status": "True", "type": "Progressing"}]
    st = {"conditions": conds, "observedGeneration": generation}
    if replicas:
        st.update({"availableReplicas": replicas, "readyReplicas": replicas, "replicas": replicas,
                   "updatedReplicas": replicas})
    return st


def rs_for(dep, template, revision, created, replicas):
    ns, dname = dep["metadata"]["namespace"], dep["metadata"]["name"]
    img = template["spec"]["containers"][0]["image"]
    pth = k8s_hash(10, "pth", ns, dname, img)
    name = f"{dname}-{pth}"
    t = copy.deepcopy(template)
    t["metadata"]["labels"]["pod-template-hash"] = pth
    sel = copy.deepcopy(dep["spec"]["selector"])
    sel["matchLabels"]["pod-template-hash"] = pth
    labels = dict(t["metadata"]["labels"])
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": meta("ReplicaSet", name, created, ns, labels,
                           {"deployment.kubernetes.io/desired-replicas": str(dep["spec"]["replicas"]),
                            "deployment.kubernetes.io/max-replicas": str(dep["spec"]["replicas"] + 1),
                            "deployment.kubernetes.io/revision": str(revision)},
                           owner_ref(dep), generation=2 if replicas == 0 else 1),
          "spec": {"replicas": replicas, "selector": sel, "template": t},
          "status": {"observedGeneration": 2 if replicas == 0 else 1, "replicas": replicas}}
    if replicas:
        rs["status"].update({"availableReplicas": replicas, "fullyLabeledReplicas": replicas,
                             "readyReplicas": replicas})
    return rs, pth


def write_workloads(manifests):
    items, pods, replicasets = [], [], []
    node_i = 0
    deployments = {}
    for m in manifests:
        if m["kind"] != "Deployment":
            continue
        ns, name = m["metadata"]["namespace"], m["metadata"]["name"]
        version, by_digest = RUNNING[(ns, name)]
        dep = copy.deepcopy(m)
        tmpl = dep["spec"]["template"]
        tmpl["metadata"]["creationTimestamp"] = None
        default_podspec(tmpl["spec"])
        c = tmpl["spec"]["containers"][0]
        assert c["image"].endswith(":${VERSION}")
        c["image"] = image_ref(name, version, by_digest)
        revision = 14 if ns == "aia-production" else 12
        generation = revision + 1
        dep["metadata"] = meta("Deployment", name, "2026-01-06T10:05:41Z", ns,
                               m["metadata"]["labels"], {"deployment.kubernetes.io/revision": str(revision)},
                               generation=generation)
        dep["spec"]["progressDeadlineSeconds"] = 600
        dep["status"] = deployment_status(dep["spec"]["replicas"], generation, dep["metadata"]["creationTimestamp"],
                                          ROLLOUT[version])
        deployments[(ns, name)] = dep
        items.append(dep)

        cur_rs, pth = rs_for(dep, tmpl, revision, ROLLOUT[version], dep["spec"]["replicas"])
        replicasets.append(cur_rs)
        if ns == "aia-production":  # the previous revision, scaled to zero (revisionHistoryLimit keeps it)
            old = copy.deepcopy(tmpl)
            old["spec"]["containers"][0]["image"] = image_ref(name, "1.14.1")
            old_rs, _ = rs_for(dep, old, revision - 1, ROLLOUT["1.14.1"], 0)
            replicasets.append(old_rs)
        for i in range(dep["spec"]["replicas"]):
            pname = f"{cur_rs['metadata']['name']}-{k8s_hash(5, 'pod', ns, name, str(i))}"
            pod_tmpl = copy.deepcopy(cur_rs["spec"]["template"])
            pods.append(make_pod(ns, pname, shift(ROLLOUT[version], seconds=2 + 70 * i), pod_tmpl,
                                 owner_ref(cur_rs), {name: (c["image"], image_id(name, version))}, node_i))
            node_i += 1

    # aia-report-worker: staging, scaled to zero since March; reads its ConfigMap via a projected volume
    # and runs an old orchestrator image (1.3.0, a multi-arch index outside the newest 10).
    rw_labels = {"app.kubernetes.io/name": "aia-report-worker", "app.kubernetes.io/part-of": "aia"}
    rw_tmpl = {"metadata": {"creationTimestamp": None, "labels": dict(rw_labels)}, "spec": default_podspec({
        "serviceAccountName": "aia-orchestrator",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "containers": [{"name": "worker", "image": image_ref("aia-orchestrator", "1.3.0"),
                        "args": ["worker", "--queue", "reports"],
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                      "limits": {"cpu": "500m", "memory": "512Mi"}},
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/aia/report-worker",
                                          "readOnly": True}]}],
        "volumes": [{"name": "config", "projected": {"defaultMode": 420, "sources": [
            {"configMap": {"name": "aia-report-worker-config"}},
            {"downwardAPI": {"items": [{"path": "labels",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}}]}}]}}]})}
    rw = {"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": meta("Deployment", "aia-report-worker", "2026-03-10T11:24:06Z", "aia-staging", rw_labels,
                           {"deployment.kubernetes.io/revision": "1"}, generation=3),
          "spec": {"progressDeadlineSeconds": 600, "replicas": 0, "revisionHistoryLimit": 10,
                   "selector": {"matchLabels": {"app.kubernetes.io/name": "aia-report-worker"}},
                   "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%",
                                                                          "maxUnavailable": "25%"}},
                   "template": rw_tmpl},
          "status": deployment_status(0, 3, "2026-03-10T11:24:06Z", "2026-03-10T11:24:06Z")}
    items.append(rw)
    rw_rs, _ = rs_for(rw, rw_tmpl, 1, "2026-03-10T11:24:06Z", 0)
    replicasets.append(rw_rs)

    # aia-metrics-db: StatefulSet in aia-monitoring; its PVCs come from volumeClaimTemplates.
    # Installed with Helm (the chart's labels), so the audit leaves it to Helm.
    db_labels = {"app.kubernetes.io/name": "aia-metrics-db", "app.kubernetes.io/part-of": "aia",
                 "app.kubernetes.io/managed-by": "Helm"}
    db_helm = {"meta.helm.sh/release-name": "aia-metrics-db", "meta.helm.sh/release-namespace": "aia-monitoring"}
    db_created = "2026-01-08T09:31:15Z"
    db_tmpl = {"metadata": {"creationTimestamp": None, "labels": dict(db_labels)}, "spec": default_podspec({
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "fsGroup": 65534},
        "containers": [{"name": "victoria-metrics", "image": "docker.io/victoriametrics/victoria-metrics:v1.106.1",
                        "args": ["-storageDataPath=/storage", "-retentionPeriod=90d", "-httpListenAddr=:8428"],
                        "ports": [{"name": "http", "containerPort": 8428, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "250m", "memory": "1Gi"},
                                      "limits": {"cpu": "2", "memory": "4Gi"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/storage"}]}]})}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": meta("StatefulSet", "aia-metrics-db", db_created, "aia-monitoring", db_labels, db_helm,
                            generation=2),
           "spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                    "podManagementPolicy": "OrderedReady", "replicas": 2, "revisionHistoryLimit": 10,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": "aia-metrics-db"}},
                    "serviceName": "aia-metrics-db", "template": db_tmpl,
                    "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"},
                    "volumeClaimTemplates": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                              "metadata": {"creationTimestamp": None, "name": "data"},
                                              "spec": {"accessModes": ["ReadWriteOnce"],
                                                       "resources": {"requests": {"storage": "50Gi"}},
                                                       "storageClassName": "premium-rwo",
                                                       "volumeMode": "Filesystem"},
                                              "status": {"phase": "Pending"}}]},
           "status": {"availableReplicas": 2, "collisionCount": 0, "currentReplicas": 2,
                      "currentRevision": "aia-metrics-db-6b9c7d5f4d", "observedGeneration": 2, "readyReplicas": 2,
                      "replicas": 2, "updateRevision": "aia-metrics-db-6b9c7d5f4d", "updatedReplicas": 2}}
    items.append(sts)
    for i in range(2):
        t = copy.deepcopy(db_tmpl)
        t["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": f"data-aia-metrics-db-{i}"}}]
        t["spec"]["hostname"] = f"aia-metrics-db-{i}"
        t["spec"]["subdomain"] = "aia-metrics-db"
        pods.append(make_pod("aia-monitoring", f"aia-metrics-db-{i}", shift("2026-10-12T08:14:03Z", minutes=2 * i),
                             t, owner_ref(sts),
                             {"victoria-metrics": ("docker.io/victoriametrics/victoria-metrics:v1.106.1",
                                                   "docker.io/victoriametrics/victoria-metrics@" +
                                                   seed_digest("victoria-metrics:v1.106.1"))},
                             node_i, {"apps.kubernetes.io/pod-index": str(i),
                                      "controller-revision-hash": "aia-metrics-db-6b9c7d5f4d",
                                      "statefulset.kubernetes.io/pod-name": f"aia-metrics-db-{i}"}))
        node_i += 1

    # aia-frontend-debug: a bare Pod someone started in February with `kubectl run`; it still runs 1.2.0.
    dbg_tmpl = {"metadata": {"labels": {"run": "aia-frontend-debug"}}, "spec": {
        "containers": [{"name": "aia-frontend-debug", "image": image_ref("aia-frontend", "1.2.0"),
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001}}}
    pods.append(make_pod("aia-staging", "aia-frontend-debug", "2026-02-20T16:47:29Z", dbg_tmpl, None,
                         {"aia-frontend-debug": (image_ref("aia-frontend", "1.2.0"), image_id("aia-frontend", "1.2.0"))},
                         node_i))

    # aia-nightly-export: suspended CronJob that mounts the Secret aia-export-credentials.
    cj_labels = {"app.kubernetes.io/name": "aia-nightly-export", "app.kubernetes.io/part-of": "aia"}
    cj = {"apiVersion": "batch/v1", "kind": "CronJob",
          "metadata": meta("CronJob", "aia-nightly-export", "2026-02-14T10:12:50Z", "aia-production", cj_labels,
                           {"aia.example.com/suspended-reason": "export format change pending (AIA-412)"},
                           generation=4),
          "spec": {"concurrencyPolicy": "Forbid", "failedJobsHistoryLimit": 1, "schedule": "30 2 * * *",
                   "successfulJobsHistoryLimit": 3, "suspend": True, "timeZone": "Europe/Berlin",
                   "jobTemplate": {"metadata": {"creationTimestamp": None}, "spec": {
                       "backoffLimit": 2, "template": {"metadata": {"creationTimestamp": None, "labels": cj_labels},
                                                       "spec": default_podspec({
                           "restartPolicy": "OnFailure", "serviceAccountName": "aia-api",
                           "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                           "containers": [{"name": "export", "image": image_ref("aia-api", "1.6.0"),
                                           "args": ["export", "--to", "gs://aia-prod-backups/exports/"],
                                           "env": [{"name": "GOOGLE_APPLICATION_CREDENTIALS",
                                                    "value": "/var/run/secrets/export/key.json"}],
                                           "envFrom": [{"configMapRef": {"name": "aia-api-config"}}],
                                           "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}},
                                           "volumeMounts": [{"name": "export-credentials",
                                                             "mountPath": "/var/run/secrets/export",
                                                             "readOnly": True}]}],
                           "volumes": [{"name": "export-credentials",
                                        "secret": {"secretName": "aia-export-credentials", "defaultMode": 256}}]})}}}},
          "status": {"lastScheduleTime": "2026-05-06T00:30:00Z", "lastSuccessfulTime": "2026-05-06T00:34:12Z"}}
    items.append(cj)

    # Services: those of the manifests, except aia-staging/aia-frontend (missing from the cluster),
    # plus the StatefulSet's headless Service.
    for m in manifests:
        if m["kind"] != "Service":
            continue
        ns, name = m["metadata"]["namespace"], m["metadata"]["name"]
        if (ns, name) == ("aia-staging", "aia-frontend"):
            continue
        svc = copy.deepcopy(m)
        ann = dict(m["metadata"].get("annotations", {}))
        if "cloud.google.com/neg" in ann:
            ann["cloud.google.com/neg-status"] = json.dumps(
                {"network_endpoint_groups": {"80": "k8s1-1a2b3c4d-aia-production-aia-frontend-80-5e6f7a8b"},
                 "zones": ["us-central1-a", "us-central1-b"]}, separators=(",", ":"))
        svc["metadata"] = meta("Service", name, "2026-01-06T10:05:41Z", ns, m["metadata"]["labels"], ann or None)
        ip = "10.12.%d.%d" % (int(h("svc", ns, name)[:2], 16) % 16, int(h("svc", ns, name)[2:4], 16) % 250 + 2)
        svc["spec"].update({"clusterIP": ip, "clusterIPs": [ip], "internalTrafficPolicy": "Cluster",
                            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None"})
        svc["status"] = {"loadBalancer": {}}
        items.append(svc)
    items.append({"apiVersion": "v1", "kind": "Service",
                  "metadata": meta("Service", "aia-metrics-db", db_created, "aia-monitoring", db_labels, db_helm),
                  "spec": {"clusterIP": "None", "clusterIPs": ["None"], "internalTrafficPolicy": "Cluster",
                           "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                           "ports": [{"name": "http", "port": 8428, "protocol": "TCP", "targetPort": "http"}],
                           "selector": {"app.kubernetes.io/name": "aia-metrics-db"}, "sessionAffinity": "None",
                           "type": "ClusterIP"}, "status": {"loadBalancer": {}}})

    # Ingress aia-frontend in aia-production with a TLS block naming the Secret aia-tls-frontend.
    items.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                  "metadata": meta("Ingress", "aia-frontend", "2026-01-07T08:51:33Z", "aia-production",
                                   {"app.kubernetes.io/name": "aia-frontend", "app.kubernetes.io/part-of": "aia"},
                                   {"kubernetes.io/ingress.global-static-ip-name": "aia-frontend-ip",
                                    "ingress.kubernetes.io/backends": json.dumps(
                                        {"k8s1-1a2b3c4d-aia-production-aia-frontend-80-5e6f7a8b": "HEALTHY"},
                                        separators=(",", ":")),
                                    "ingress.kubernetes.io/https-forwarding-rule": "k8s2-fs-abc123-aia-production-aia-frontend-q2w3e4r5",
                                    "ingress.kubernetes.io/https-target-proxy": "k8s2-ts-abc123-aia-production-aia-frontend-q2w3e4r5"},
                                   generation=1, finalizers=["networking.gke.io/ingress-finalizer-V2"]),
                  "spec": {"ingressClassName": "gce",
                           "tls": [{"hosts": ["aia.example.com"], "secretName": "aia-tls-frontend"}],
                           "rules": [{"host": "aia.example.com", "http": {"paths": [
                               {"path": "/", "pathType": "Prefix",
                                "backend": {"service": {"name": "aia-frontend", "port": {"number": 80}}}}]}}]},
                  "status": {"loadBalancer": {"ingress": [{"ip": "34.117.42.19"}]}}})

    all_items = items + replicasets + pods
    write_json("kubernetes/workloads.json", k8s_list(all_items), sort_keys=True)
    # What could call a Service from outside its namespace: none in this cluster, recorded as
    # empty lists so that the audit knows (an unrecorded list keeps every Service).
    for resource in ["validatingwebhookconfigurations.admissionregistration.k8s.io",
                     "mutatingwebhookconfigurations.admissionregistration.k8s.io",
                     "apiservices.apiregistration.k8s.io"]:
        write_json(f"kubernetes/{resource}.json", k8s_list([]))
    write_json("snapshot.json", {"recorded_at": RECORDED_AT, "kubernetes_listed": [
        "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService"]})
    return deployments


def write_config(manifests):
    items = []
    # --- ConfigMaps
    for ns in REPO_NAMESPACES:
        items.append({"apiVersion": "v1", "kind": "ConfigMap", "data": {"ca.crt": FAKE_CA},
                      "metadata": meta("ConfigMap", "kube-root-ca.crt", AIA_NS_CREATED, ns,
                                       annotations={"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."})})
    sa_uids = {}
    for m in manifests:
        if m["kind"] not in ("ConfigMap", "ServiceAccount"):
            continue
        o = copy.deepcopy(m)
        ns, name = m["metadata"]["namespace"], m["metadata"]["name"]
        o["metadata"] = meta(m["kind"], name, "2026-01-06T10:05:41Z", ns, m["metadata"].get("labels"))
        if m["kind"] == "ServiceAccount":
            sa_uids[(ns, name)] = o["metadata"]["uid"]
        items.append(o)

    def cm(ns, name, created, data, labels=None, annotations=None):
        items.append({"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                      "metadata": meta("ConfigMap", name, created, ns, labels, annotations)})

    cm("aia-staging", "aia-report-worker-config", "2026-03-10T11:22:48Z",
       {"report-worker.yaml": "queue: reports\nconcurrency: 2\noutput: gs://aia-prod-reports/staging/\n"},
       {"app.kubernetes.io/name": "aia-report-worker", "app.kubernetes.io/part-of": "aia"})
    cm("aia-production", "aia-api-config-old", "2026-03-18T09:14:27Z",
       {"ENVIRONMENT": "production", "LOG_LEVEL": "info", "DB_HOST": "10.20.0.3", "DB_NAME": "aia_v1"},
       {"app.kubernetes.io/name": "aia-api"})
    cm("aia-staging", "aia-frontend-experiment", "2026-06-09T14:02:55Z",
       {"EXPERIMENT": "new-checkout-flow", "TRAFFIC_SPLIT": "0.1"})
    cm("aia-production", "aia-feature-flags-draft", "2026-11-29T05:28:44Z",
       {"flags.json": "{\"newDashboard\": false, \"bulkExport\": true}\n"},
       annotations={"aia.example.com/author": "j.doe"})

    # --- Secrets
    def secret(ns, name, created, data, type_="Opaque", labels=None, annotations=None):
        items.append({"apiVersion": "v1", "kind": "Secret", "type": type_,
                      "data": {k: b64(v) for k, v in data.items()},
                      "metadata": meta("Secret", name, created, ns, labels, annotations)})

    for ns in ("aia-production", "aia-staging"):
        secret(ns, "aia-api-db", "2026-01-06T10:04:02Z",
               {"username": "aia_api", "password": f"fake-{ns}-db-password-not-real"})
    secret("aia-production", "aia-export-credentials", "2026-02-14T10:11:37Z",
           {"key.json": '{"type": "service_account", "client_email": "aia-api@aia-prod.iam.gserviceaccount.com", '
                        '"private_key": "FAKE-KEY-FOR-EXAMPLE-ONLY"}'})
    secret("aia-production", "aia-tls-frontend", "2026-01-07T08:49:12Z",
           {"tls.crt": "-----BEGIN CERTIFICATE-----\nFAKE CERTIFICATE FOR aia.example.com\n-----END CERTIFICATE-----\n",
            "tls.key": "-----BEGIN PRIVATE KEY-----\nFAKE KEY FOR EXAMPLE ONLY\n-----END PRIVATE KEY-----\n"},
           "kubernetes.io/tls")
    secret("aia-staging", "aia-tls-staging-old", "2026-01-07T08:52:40Z",
           {"tls.crt": "-----BEGIN CERTIFICATE-----\nFAKE OLD CERTIFICATE FOR staging.aia.example.com\n-----END CERTIFICATE-----\n",
            "tls.key": "-----BEGIN PRIVATE KEY-----\nFAKE KEY FOR EXAMPLE ONLY\n-----END PRIVATE KEY-----\n"},
           "kubernetes.io/tls")
    secret("aia-monitoring", "sh.helm.release.v1.prometheus.v3", "2026-05-12T13:27:06Z",
           {"release": "H4sIAAAAAAAC/fake-gzipped-helm-release-payload-for-example-only"}, "helm.sh/release.v1",
           {"name": "prometheus", "owner": "helm", "status": "deployed", "version": "3",
            "modifiedAt": str(int(parse("2026-05-12T13:27:06Z").timestamp()))})
    secret("aia-production", "aia-api-token", "2026-01-20T15:40:11Z",
           {"ca.crt": FAKE_CA, "namespace": "aia-production", "token": "fake.service-account.token-for-example-only"},
           "kubernetes.io/service-account-token", None,
           {"kubernetes.io/service-account.name": "aia-api",
            "kubernetes.io/service-account.uid": sa_uids[("aia-production", "aia-api")]})
    secret("aia-production", "artifact-registry-pull", "2026-01-06T10:03:30Z",
           {".dockerconfigjson": json.dumps({"auths": {"us-docker.pkg.dev": {
               "auth": b64("_json_key:FAKE-KEY-FOR-EXAMPLE-ONLY")}}}, separators=(",", ":"))},
           "kubernetes.io/dockerconfigjson")
    secret("aia-production", "aia-api-db-2024", "2026-01-06T10:04:02Z",
           {"username": "aia_api", "password": "fake-2024-password-rotated-out"})
    secret("aia-production", "old-slack-webhook", "2026-02-02T11:36:58Z",
           {"url": "https://hooks.slack.example/services/FAKE/FAKE/FAKE"})
    secret("aia-staging", "aia-staging-temp-token", "2026-07-15T12:08:31Z",
           {"token": "fake-temp-token-for-example-only"},
           annotations={"driftsweep.io/keep": "true",
                        "aia.example.com/note": "vendor sandbox token, expires 2027-01; ask j.doe before removing"})

    # --- ServiceAccounts
    for ns in REPO_NAMESPACES:
        items.append({"apiVersion": "v1", "kind": "ServiceAccount",
                      "metadata": meta("ServiceAccount", "default", AIA_NS_CREATED, ns)})
    items.append({"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": meta("ServiceAccount", "aia-ci-deployer", "2026-03-02T08:17:45Z", "aia-staging",
                                   {"app.kubernetes.io/part-of": "aia"},
                                   {"iam.gke.io/gcp-service-account": "old-jenkins@aia-prod.iam.gserviceaccount.com"})})

    # --- PersistentVolumeClaims
    def pvc(ns, name, created, size, sc, labels=None):
        pv = "pvc-" + make_uid("PersistentVolume", ns, name)
        items.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                      "metadata": meta("PersistentVolumeClaim", name, created, ns, labels,
                                       {"pv.kubernetes.io/bind-completed": "yes",
                                        "pv.kubernetes.io/bound-by-controller": "yes",
                                        "volume.beta.kubernetes.io/storage-provisioner": "pd.csi.storage.gke.io",
                                        "volume.kubernetes.io/selected-node": NODES[0],
                                        "volume.kubernetes.io/storage-provisioner": "pd.csi.storage.gke.io"},
                                       finalizers=["kubernetes.io/pvc-protection"]),
                      "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                               "storageClassName": sc, "volumeMode": "Filesystem", "volumeName": pv},
                      "status": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}, "phase": "Bound"}})

    for i in range(2):
        pvc("aia-monitoring", f"data-aia-metrics-db-{i}", shift("2026-01-08T09:31:15Z", seconds=3 + 95 * i), "50Gi",
            "premium-rwo", {"app.kubernetes.io/name": "aia-metrics-db"})
    pvc("aia-monitoring", "scratch-old", "2026-02-20T10:55:19Z", "20Gi", "standard-rwo")

    text = yaml.dump(k8s_list(items), Dumper=LiteralDumper, sort_keys=True, default_flow_style=False, width=100)
    write("kubernetes/config.yaml", text)


# ---------------------------------------------------------------- gcp

def write_gcp():
    net = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks"
    base = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global"

    def fw(name, created, network, sources, allowed, priority=1000, description="", target_tags=None):
        r = {"kind": "compute#firewall", "id": num_id(19, "fw", name), "creationTimestamp": gce_time(created, 117),
             "name": name, "description": description, "network": f"{net}/{network}", "priority": priority,
             "sourceRanges": sources}
        if target_tags:
            r["targetTags"] = target_tags
        r.update({"allowed": allowed, "direction": "INGRESS", "logConfig": {"enable": False}, "disabled": False,
                  "selfLink": f"{base}/firewalls/{name}"})
        return r

    gke_tag = ["gke-aia-prod-1a2b3c4d-node"]
    firewalls = [
        fw("aia-allow-https", "2026-01-05T08:40:21Z", "aia-vpc", ["0.0.0.0/0"],
           [{"IPProtocol": "tcp", "ports": ["443"]}], description="HTTPS to the AIA load balancer",
           target_tags=gke_tag),
        fw("aia-allow-health-checks", "2026-01-05T08:40:23Z", "aia-vpc", ["35.191.0.0/16", "130.211.0.0/22"],
           [{"IPProtocol": "tcp", "ports": ["8080"]}], description="Google Cloud health checks to AIA pods",
           target_tags=gke_tag),
        fw("default-allow-ssh", "2026-01-02T17:03:44Z", "default", ["0.0.0.0/0"],
           [{"IPProtocol": "tcp", "ports": ["22"]}], 65534, "Allow SSH from anywhere"),
        fw("gke-aia-prod-1a2b3c4d-all", "2026-01-05T09:12:50Z", "aia-vpc", ["10.8.0.0/14"],
           [{"IPProtocol": "tcp"}, {"IPProtocol": "udp"}, {"IPProtocol": "icmp"}, {"IPProtocol": "esp"},
            {"IPProtocol": "ah"}, {"IPProtocol": "sctp"}], target_tags=gke_tag),
        fw("gke-aia-prod-1a2b3c4d-ssh", "2026-01-05T09:12:51Z", "aia-vpc", ["34.136.21.88/32"],
           [{"IPProtocol": "tcp", "ports": ["22"]}], target_tags=gke_tag),
        fw("k8s-fw-l7--abc123", "2026-01-07T08:53:02Z", "aia-vpc", ["130.211.0.0/22", "35.191.0.0/16"],
           [{"IPProtocol": "tcp", "ports": ["30000-32767", "8080"]}],
           description='{"kubernetes.io/cluster-id":"abc123"}', target_tags=gke_tag),
        fw("temp-debug-allow-8080", "2026-05-19T14:26:37Z", "aia-vpc", ["0.0.0.0/0"],
           [{"IPProtocol": "tcp", "ports": ["8080"]}], description="temporary, for debugging the orchestrator",
           target_tags=gke_tag),
    ]
    write_json("gcp/firewalls.json", {"kind": "compute#firewallList", "id": f"projects/{PROJECT}/global/firewalls",
                                      "items": firewalls, "selfLink": f"{base}/firewalls"})

    def bucket(name, created, location="US", storage_class="STANDARD", updated=None, metageneration="1"):
        loc_type = "multi-region" if location in ("US", "EU", "ASIA") else "region"
        t = parse(created).strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (int(h("ms", name)[:3], 16) % 1000)
        u = parse(updated or created).strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (int(h("ms", name)[:3], 16) % 1000)
        return {"kind": "storage#bucket", "selfLink": f"https://www.googleapis.com/storage/v1/b/{name}", "id": name,
                "name": name, "projectNumber": PROJECT_NUMBER, "generation": num_id(16, "gen", name),
                "metageneration": metageneration, "location": location, "storageClass": storage_class,
                "etag": "CA" + ("E" if metageneration == "1" else "I") + "=",
                "timeCreated": t, "updated": u,
                "softDeletePolicy": {"retentionDurationSeconds": "604800", "effectiveTime": t},
                "iamConfiguration": {"bucketPolicyOnly": {"enabled": True, "lockedTime": shift(created, days=90)[:-1] + ".000Z"},
                                     "uniformBucketLevelAccess": {"enabled": True, "lockedTime": shift(created, days=90)[:-1] + ".000Z"},
                                     "publicAccessPrevention": "enforced"},
                "locationType": loc_type, "rpo": "DEFAULT" if loc_type != "region" else None}

    buckets = [
        bucket("aia-prod-backups", "2026-01-05T08:31:02Z", "US", "NEARLINE", "2026-03-02T10:11:45Z", "2"),
        bucket("aia-prod-reports", "2026-01-05T08:31:40Z", "US-CENTRAL1"),
        bucket("aia-prod-tmp-exports", "2026-04-28T15:19:22Z", "US-CENTRAL1"),
        bucket("aia-prod_cloudbuild", "2026-01-05T08:57:13Z", "US"),
        bucket("artifacts.aia-prod.appspot.com", "2026-01-05T08:58:36Z", "US"),
        bucket(f"gcf-sources-{PROJECT_NUMBER}-us-central1", "2026-02-11T12:44:08Z", "US-CENTRAL1"),
    ]
    for b in buckets:
        if b["rpo"] is None:
            del b["rpo"]
    write_json("gcp/buckets.json", {"kind": "storage#buckets", "items": buckets})

    def sa(email, display, description=None):
        uid = num_id(21, "sa", email)
        r = {"name": f"projects/{PROJECT}/serviceAccounts/{email}", "projectId": PROJECT, "uniqueId": uid,
             "email": email, "displayName": display,
             "etag": base64.b64encode(bytes.fromhex(h("etag", email)[:16])).decode(), "oauth2ClientId": uid}
        if description:
            r["description"] = description
        return r

    accounts = [
        sa(f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com", "Compute Engine default service account"),
        sa("aia-api@aia-prod.iam.gserviceaccount.com", "AIA API", "Workload identity of aia-api"),
        sa("aia-frontend@aia-prod.iam.gserviceaccount.com", "AIA frontend", "Workload identity of aia-frontend"),
        sa("aia-orchestrator@aia-prod.iam.gserviceaccount.com", "AIA orchestrator",
           "Workload identity of aia-orchestrator"),
        sa("aia-prod@appspot.gserviceaccount.com", "App Engine default service account"),
        sa("old-jenkins@aia-prod.iam.gserviceaccount.com", "Jenkins (old CI)", "used by the Jenkins deploy job"),
    ]
    write_json("gcp/serviceAccounts.json", {"accounts": accounts})

    def ssl(name, created, type_, domains=None, expire=None, description=""):
        r = {"kind": "compute#sslCertificate", "id": num_id(19, "ssl", name), "creationTimestamp": gce_time(created, 402),
             "name": name, "description": description, "selfLink": f"{base}/sslCertificates/{name}", "type": type_}
        if type_ == "MANAGED":
            r["managed"] = {"domains": domains, "status": "ACTIVE", "domainStatus": {d: "ACTIVE" for d in domains}}
        else:
            r["certificate"] = ("-----BEGIN CERTIFICATE-----\nFAKE SELF-MANAGED WILDCARD CERTIFICATE FOR "
                                "*.aia.example.com - EXAMPLE ONLY\n-----END CERTIFICATE-----\n")
        r["subjectAlternativeNames"] = domains
        r["expireTime"] = expire
        return r

    certs = [
        ssl("aia-frontend-cert", "2026-01-07T08:50:05Z", "MANAGED", ["aia.example.com"],
            gce_time("2027-01-25T08:50:05Z")),
        ssl("legacy-wildcard-2023", "2023-11-02T15:20:11Z", "SELF_MANAGED", ["*.aia.example.com", "aia.example.com"],
            gce_time("2024-11-02T23:59:59Z"), "wildcard certificate from the 2023 setup"),
        ssl("mcrt-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "2026-01-07T08:53:40Z", "MANAGED",
            ["api.aia.example.com"], gce_time("2027-02-05T08:53:40Z"),
            '{"kubernetes.io/managed-certificate":"aia-production/aia-api-managed-cert"}'),
    ]
    write_json("gcp/sslCertificates.json", {"kind": "compute#sslCertificateList",
                                            "id": f"projects/{PROJECT}/global/sslCertificates",
                                            "items": certs, "selfLink": f"{base}/sslCertificates"})

    def cmcert(cid, created, updated, domains, state, expire, issue=None):
        managed = {"domains": domains, "state": state,
                   "authorizationAttemptInfo": [{"domain": d, "state": "AUTHORIZED" if state == "ACTIVE" else "FAILED"}
                                                for d in domains]}
        if issue:
            managed["provisioningIssue"] = issue
            for a in managed["authorizationAttemptInfo"]:
                a["failureReason"] = "CONFIG"
                a["details"] = "The domain's DNS record does not point to the load balancer."
        r = {"name": f"projects/{PROJECT}/locations/global/certificates/{cid}", "createTime": created,
             "updateTime": updated, "managed": managed, "sanDnsnames": domains, "scope": "DEFAULT"}
        if expire:
            r["expireTime"] = expire
        return r

    cm_certs = [
        cmcert("aia-api-cert", "2026-01-07T09:02:18.604823151Z", "2026-11-02T09:10:44.118205640Z",
               ["api.aia.example.com"], "ACTIVE", "2027-01-31T08:10:42Z"),
        cmcert("old-api-cert", "2026-01-12T16:44:05.930117820Z", "2026-04-13T03:12:09.551620004Z",
               ["api-v1.aia.example.com"], "FAILED", None,
               {"reason": "AUTHORIZATION_ISSUE",
                "details": "Authorization of api-v1.aia.example.com failed: DNS record no longer points to the load balancer."}),
    ]
    write_json("gcp/certificates.json", {"certificates": cm_certs})

    # Static addresses: what `snapshot` writes (global and regional in one REST list body).
    compute = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}"

    def address(name, created, ip, region=None, users=(), status=None, **extra):
        where = f"{compute}/regions/{region}" if region else f"{compute}/global"
        r = {"kind": "compute#address", "id": num_id(19, "addr", name), "creationTimestamp": gce_time(created, 412),
             "name": name, "address": ip, "addressType": extra.pop("addressType", "EXTERNAL"),
             "status": status or ("IN_USE" if users else "RESERVED"), "selfLink": f"{where}/addresses/{name}",
             "labelFingerprint": "42WmSpB8rSM="}
        if region:
            r["region"] = where
            r["networkTier"] = "PREMIUM"
        if users:
            r["users"] = list(users)
        r.update(extra)
        return r

    addresses = [
        address("aia-frontend-ip", "2026-01-07T08:50:11Z", "34.120.88.17",
                users=[f"{compute}/global/forwardingRules/k8s2-fs-aia-frontend-abc123"], ipVersion="IPV4"),
        address("google-managed-services-aia-vpc", "2026-01-05T08:31:40Z", "10.20.0.0",
                addressType="INTERNAL", purpose="VPC_PEERING", prefixLength=16,
                network=f"{compute}/global/networks/aia-vpc"),
        address("old-staging-ip", "2026-03-02T10:14:55Z", "35.202.14.9", region="us-central1",
                description="staging load balancer before the move to the Ingress"),
    ]
    write_json("gcp/addresses.json", {"kind": "compute#addressList", "items": addresses})

    def disk(name, zone, created, users=(), detached=None, **extra):
        where = f"{compute}/zones/{zone}"
        r = {"kind": "compute#disk", "id": num_id(19, "disk", name), "creationTimestamp": gce_time(created, 233),
             "name": name, "sizeGb": extra.pop("sizeGb", "10"), "zone": where, "status": "READY",
             "selfLink": f"{where}/disks/{name}", "type": f"{where}/diskTypes/pd-balanced",
             "labelFingerprint": "42WmSpB8rSM=", "physicalBlockSizeBytes": "4096"}
        if users:
            r["users"] = [f"{where}/instances/{u}" for u in users]
            r["lastAttachTimestamp"] = gce_time(created, 501)
        if detached:
            r["lastDetachTimestamp"] = gce_time(detached, 17)
        r.update(extra)
        return r

    disks = [
        disk("gke-aia-prod-default-pool-1a2b3c4d-x7k2", "us-central1-a", "2026-01-05T09:14:02Z",
             users=["gke-aia-prod-default-pool-1a2b3c4d-x7k2"], sizeGb="100",
             labels={"goog-gke-node": "", "goog-k8s-cluster-name": "aia-prod"}),
        disk("pvc-5b0c2f8e-3d41-4c6a-9e1f-7a2b8c9d0e1f", "us-central1-a", "2026-01-08T11:20:45Z",
             users=["gke-aia-prod-default-pool-1a2b3c4d-x7k2"], sizeGb="20",
             description='{"kubernetes.io/created-for/pv/name":"pvc-5b0c2f8e-3d41-4c6a-9e1f-7a2b8c9d0e1f",'
                         '"kubernetes.io/created-for/pvc/name":"data-aia-metrics-db-0",'
                         '"kubernetes.io/created-for/pvc/namespace":"aia-production",'
                         '"storage.gke.io/created-by":"pd.csi.storage.gke.io"}'),
        disk("old-jenkins-data", "us-central1-a", "2025-06-10T13:02:19Z", detached="2026-02-14T18:40:00Z",
             sizeGb="200", description="Jenkins home, before the move to Cloud Build"),
    ]
    write_json("gcp/disks.json", {"kind": "compute#diskList", "items": disks})
    # The snapshots' sources, beside them (`snapshot` records the disks again for them).
    write_json("gcp/snapshotDisks.json", {"kind": "compute#diskList", "items": disks})

    def snapshot(name, disk, zone, created, **extra):
        r = {"kind": "compute#snapshot", "id": num_id(19, "snap", name), "name": name, "status": "READY",
             "creationTimestamp": gce_time(created, 120),
             "sourceDisk": f"{compute}/zones/{zone}/disks/{disk}", "sourceDiskId": num_id(19, "disk", disk),
             "selfLink": f"{compute}/global/snapshots/{name}", "storageBytes": "1073741824",
             "labelFingerprint": "42WmSpB8rSM="}
        r.update(extra)
        return r

    # Hand-made snapshots of a disk deleted in the summer: the three newest are kept, the oldest
    # is past retention.
    snapshots = [snapshot(f"old-analytics-2026{d}", "old-analytics", "us-central1-a", f"2026-{d[:2]}-{d[2:]}T09:00:00Z")
                 for d in ["0701", "0715", "0801", "0815"]]
    write_json("gcp/snapshots.json", {"kind": "compute#snapshotList", "items": snapshots})

    # The load balancers' top: the Ingress-era rule and proxy of aia-web (allowlisted, the proxy
    # in use by the rule), and a promotion's rule and proxy left behind. No HTTPS proxy list is
    # recorded here, so the certificates are judged as before.
    def forwarding_rule(name, proxy, created, ip, n):
        return {"kind": "compute#forwardingRule", "id": num_id(19, "fr", name), "creationTimestamp": gce_time(created, 90),
                "name": name, "IPAddress": ip, "IPProtocol": "TCP", "portRange": "80-80",
                "target": f"{compute}/global/targetHttpProxies/{proxy}", "loadBalancingScheme": "EXTERNAL_MANAGED",
                "networkTier": "PREMIUM", "fingerprint": ["a3ExclAwdlY2eVk=", "b2xkcHJvbW8="][n],
                "selfLink": f"{compute}/global/forwardingRules/{name}"}

    def http_proxy(name, url_map, created, n):
        return {"kind": "compute#targetHttpProxy", "id": num_id(19, "thp", name), "creationTimestamp": gce_time(created, 95),
                "name": name, "urlMap": f"{compute}/global/urlMaps/{url_map}",
                "fingerprint": ["d2ViaHR0cA==", "cHJvbW9odHRw"][n], "selfLink": f"{compute}/global/targetHttpProxies/{name}"}

    write_json("gcp/forwardingRules.json", {"kind": "compute#forwardingRuleList", "items": [
        forwarding_rule("aia-web-fr", "aia-web-http", "2026-03-02T17:00:00Z", "203.0.113.10", 0),
        forwarding_rule("old-promo-fr", "old-promo-http", "2025-10-01T16:00:00Z", "203.0.113.11", 1)]})
    write_json("gcp/targetHttpProxies.json", {"kind": "compute#targetHttpProxyList", "items": [
        http_proxy("aia-web-http", "aia-web", "2026-03-02T17:00:00Z", 0),
        http_proxy("old-promo-http", "old-promo", "2025-10-01T16:00:00Z", 1)]})

    # The rest of each chain: aia-web's URL map sends to its backend service (health-checked)
    # and serves /static/* from a backend bucket; the promotion's map, service, bucket and check
    # were left behind with its rule. Every list that could name a part is recorded (empty when
    # the project has none), or no part would be proved unused.
    for name, kind in [("targetHttpsProxies", "targetHttpsProxyList"), ("targetSslProxies", "targetSslProxyList"),
                       ("targetTcpProxies", "targetTcpProxyList"), ("targetGrpcProxies", "targetGrpcProxyList"),
                       ("regionTargetHttpProxies", "targetHttpProxyList"),
                       ("regionTargetHttpsProxies", "targetHttpsProxyList"),
                       ("regionTargetTcpProxies", "targetTcpProxyList"),
                       ("instanceGroupManagers", "instanceGroupManagerList")]:
        write_json(f"gcp/{name}.json", {"kind": f"compute#{kind}", "items": []})

    def lb_part(coll, kind, name, created, **fields):
        return {"kind": f"compute#{kind}", "id": num_id(19, coll, name), "creationTimestamp": gce_time(created, 97),
                "name": name, "fingerprint": "Zm9vYmFy", "selfLink": f"{compute}/global/{coll}/{name}", **fields}

    def url_map(name, service, bucket, created):
        return lb_part("urlMaps", "urlMap", name, created, defaultService=f"{compute}/global/backendServices/{service}",
                       hostRules=[{"hosts": ["*"], "pathMatcher": "paths"}],
                       pathMatchers=[{"name": "paths", "defaultService": f"{compute}/global/backendServices/{service}",
                                      "pathRules": [{"paths": ["/static/*"],
                                                     "service": f"{compute}/global/backendBuckets/{bucket}"}]}])

    def backend_service(name, check, created):
        return lb_part("backendServices", "backendService", name, created, protocol="HTTP", port=80,
                       loadBalancingScheme="EXTERNAL_MANAGED", timeoutSec=30,
                       healthChecks=[f"{compute}/global/healthChecks/{check}"])

    write_json("gcp/urlMaps.json", {"kind": "compute#urlMapList", "items": [
        url_map("aia-web", "aia-web-backend", "aia-web-static", "2026-03-02T17:00:00Z"),
        url_map("old-promo", "old-promo-backend", "old-promo-assets", "2025-10-01T16:00:00Z")]})
    write_json("gcp/backendServices.json", {"kind": "compute#backendServiceList", "items": [
        backend_service("aia-web-backend", "aia-web-hc", "2026-03-02T17:00:00Z"),
        backend_service("old-promo-backend", "old-promo-hc", "2025-10-01T16:00:00Z")]})
    write_json("gcp/backendBuckets.json", {"kind": "compute#backendBucketList", "items": [
        lb_part("backendBuckets", "backendBucket", n, c, bucketName=n, enableCdn=True)
        for n, c in [("aia-web-static", "2026-03-02T17:00:00Z"), ("old-promo-assets", "2025-10-01T16:00:00Z")]]})
    write_json("gcp/healthChecks.json", {"kind": "compute#healthCheckList", "items": [
        lb_part("healthChecks", "healthCheck", n, c, type="HTTP", checkIntervalSec=5, timeoutSec=5,
                httpHealthCheck={"port": 80, "requestPath": "/healthz"})
        for n, c in [("aia-web-hc", "2026-03-02T17:00:00Z"), ("old-promo-hc", "2025-10-01T16:00:00Z")]]})

    # Cloud SQL: the product's database (allowlisted), the v1 database that the old API
    # ConfigMap still names by its private address (kept while that ConfigMap exists), and a
    # reporting database nothing names any more.
    def sql_instance(name, created, ip, version, protected=False):
        return {"kind": "sql#instance", "name": name, "project": PROJECT, "region": "us-central1",
                "state": "RUNNABLE", "instanceType": "CLOUD_SQL_INSTANCE", "databaseVersion": "POSTGRES_15",
                "connectionName": f"{PROJECT}:us-central1:{name}", "createTime": created,
                "ipAddresses": [{"type": "PRIVATE", "ipAddress": ip}],
                "etag": f"etag-{name}", "selfLink": f"https://sqladmin.googleapis.com/v1/projects/{PROJECT}/instances/{name}",
                "settings": {"kind": "sql#settings", "tier": "db-custom-2-7680", "settingsVersion": version,
                             "deletionProtectionEnabled": protected, "userLabels": {"team": "aia"}}}

    write_json("gcp/sqlInstances.json", {"kind": "sql#instancesList", "items": [
        sql_instance("aia-prod-db", "2026-03-01T10:00:00.000Z", "10.20.0.5", "14", protected=True),
        sql_instance("legacy-orders-v1", "2025-06-12T08:30:00.000Z", "10.20.0.3", "31"),
        sql_instance("old-reporting-db", "2025-02-03T15:45:00.000Z", "10.20.0.9", "6")]})

    # Cloud SQL backups: last night's automated run of each instance, and the backups retained
    # after the billing database was deleted: its two newest are kept, the oldest is an orphan.
    def backup_run(instance, run_id, started):
        return {"kind": "sql#backupRun", "id": run_id, "instance": instance, "status": "SUCCESSFUL",
                "type": "AUTOMATED", "enqueuedTime": started, "startTime": started, "endTime": started,
                "selfLink": f"https://sqladmin.googleapis.com/v1/projects/{PROJECT}/instances/{instance}/backupRuns/{run_id}"}

    for i, instance in enumerate(["aia-prod-db", "legacy-orders-v1", "old-reporting-db"]):
        write_json(f"gcp/sqlBackupRuns/{instance}.json", {"kind": "sql#backupRunsList", "items": [
            backup_run(instance, f"176438160000{i}", "2026-11-29T03:00:00.000Z")]})

    def retained(backup_id, started):
        return {"kind": "sql#backup", "name": f"projects/{PROJECT}/backups/{backup_id}", "type": "AUTOMATED",
                "instance": "old-billing-db", "state": "SUCCESSFUL", "location": "us",
                "backupInterval": {"startTime": started, "endTime": started},
                "instanceDeletionTime": "2026-03-31T09:00:00Z",
                "selfLink": f"https://sqladmin.googleapis.com/v1/projects/{PROJECT}/backups/{backup_id}"}

    write_json("gcp/sqlBackups.json", {"backups": [
        retained("1743300000001", "2026-03-30T03:00:00Z"),
        retained("1743200000001", "2026-03-29T03:00:00Z"),
        retained("1743100000001", "2026-03-28T03:00:00Z")]})

    # Cloud Logging: the project's own sinks and buckets, the AIA audit sink and its bucket, and
    # the export to the retired SIEM's bucket (the sink goes first, then the bucket only it fed).
    writer = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-logging.iam.gserviceaccount.com"
    audit_ids = ["cloudaudit.googleapis.com/activity", "externalaudit.googleapis.com/activity",
                 "cloudaudit.googleapis.com/system_event", "externalaudit.googleapis.com/system_event",
                 "cloudaudit.googleapis.com/access_transparency", "externalaudit.googleapis.com/access_transparency"]

    def sink(name, location, bucket, created, log_filter, **extra):
        r = {"name": name, "destination": f"logging.googleapis.com/projects/{PROJECT}/locations/{location}/buckets/{bucket}",
             "filter": log_filter, "writerIdentity": writer, "createTime": created, "updateTime": created}
        r.update(extra)
        return r

    def log_bucket(location, name, created, days, **extra):
        r = {"name": f"projects/{PROJECT}/locations/{location}/buckets/{name}", "createTime": created,
             "updateTime": created, "retentionDays": days, "lifecycleState": "ACTIVE"}
        r.update(extra)
        return r

    project_made = "2025-06-02T10:00:00.000000Z"
    write_json("gcp/logSinks.json", {"sinks": [
        sink("_Default", "global", "_Default", project_made,
             " AND ".join(f'NOT LOG_ID("{i}")' for i in audit_ids)),
        sink("_Required", "global", "_Required", project_made, " OR ".join(f'LOG_ID("{i}")' for i in audit_ids)),
        sink("aia-audit", "global", "aia-audit", "2026-02-10T09:00:00.000000Z",
             'resource.type="k8s_container" AND resource.labels.namespace_name=~"^aia-"'),
        sink("legacy-siem-export", "europe-west1", "legacy-siem", "2024-09-16T13:20:00.000000Z", "severity>=WARNING",
             description="Exports warnings to the old SIEM's bucket (retired in 2025)")]})
    write_json("gcp/logBuckets.json", {"buckets": [
        log_bucket("europe-west1", "legacy-siem", "2024-09-16T13:15:00.000000Z", 90,
                   description="The old SIEM's log store"),
        log_bucket("global", "_Default", project_made, 30, description="Default bucket"),
        log_bucket("global", "_Required", project_made, 400, description="Audit bucket", locked=True),
        log_bucket("global", "aia-audit", "2026-02-10T08:55:00.000000Z", 365, description="AIA workloads' logs")]})


# ---------------------------------------------------------------- expected verdicts (hand-decided)

def write_expect():
    """examples/expect.json: what a correct audit of this snapshot says (see README.md).

    Same shape as shared/conformance expect.json ("expect", "blocked", "optional_keep"), plus
    "why" (prose), "reasons" (DESIGN.md codes, a hint), and the drift that depends on ${VERSION}.
    """
    out = []

    def k8s(kind, ns, name, action, why, reasons=()):
        e = {"provider": "kubernetes", "kind": kind, "name": name, "action": action}
        if ns:
            e["namespace"] = ns
        e.update({"reasons": list(reasons), "why": why})
        out.append(e)

    for n in ["default", "kube-system", "kube-public", "kube-node-lease", "gke-managed-system", "gmp-system"]:
        k8s("Namespace", None, n, "keep", "built-in floor (kube-*, default, gke-*, gmp-*)",
            ["protected-namespace"] if n in ("kube-system", "kube-public") else ["system-managed"])
    for n in REPO_NAMESPACES:
        k8s("Namespace", None, n, "keep", "a repository namespace (policy and namespaces.yaml)")
    k8s("Namespace", None, "feature-login-test", "delete", "not defined by the repository, 7 months old",
        ["not-in-allowlist"])
    k8s("Namespace", None, "legacy-batch", "keep", "opt-out annotation driftsweep.io/keep=true", ["opt-out"])
    k8s("Namespace", None, "tmp-debug", "keep", "created 2026-11-29T04:31:07Z, younger than 24 h", ["too-young"])

    for ns in REPO_NAMESPACES:
        k8s("ConfigMap", ns, "kube-root-ca.crt", "keep", "managed by Kubernetes", ["system-managed"])
        k8s("ServiceAccount", ns, "default", "keep", "managed by Kubernetes", ["system-managed"])
    for ns in ("aia-production", "aia-staging"):
        for svc in SERVICES:
            k8s("ConfigMap", ns, f"{svc}-config", "keep", "defined by k8s/aia and used by the Deployment", ["in-use"])
            k8s("ServiceAccount", ns, svc, "keep", "defined by k8s/aia and used by the Deployment", ["in-use"])
        k8s("Secret", ns, "aia-api-db", "keep", "env secretKeyRef of Deployment aia-api (not committed)", ["in-use"])
    k8s("ConfigMap", "aia-staging", "aia-report-worker-config", "keep",
        "projected volume of Deployment aia-report-worker (replicas: 0), which is planned: kept until it is gone",
        ["used-only-by-orphans"])
    k8s("ConfigMap", "aia-production", "aia-api-config-old", "delete", "no manifest, no reference", ["not-in-allowlist"])
    k8s("ConfigMap", "aia-staging", "aia-frontend-experiment", "delete", "no manifest, no reference",
        ["not-in-allowlist"])
    k8s("ConfigMap", "aia-production", "aia-feature-flags-draft", "keep",
        "orphan, but created 2026-11-29T05:28:44Z: younger than 24 h", ["too-young"])
    k8s("Secret", "aia-production", "aia-export-credentials", "keep",
        "secret volume of CronJob aia-nightly-export (suspend: true), which is planned: kept until it is gone",
        ["used-only-by-orphans"])
    k8s("Secret", "aia-production", "aia-tls-frontend", "keep", "TLS block of Ingress aia-frontend (and keep rule)",
        ["in-use"])
    k8s("Secret", "aia-staging", "aia-tls-staging-old", "keep", "unused, but policy keep rule {kind: Secret, name: aia-tls-*}")
    k8s("Secret", "aia-monitoring", "sh.helm.release.v1.prometheus.v3", "keep", "type helm.sh/release.v1",
        ["system-managed"])
    k8s("Secret", "aia-production", "aia-api-token", "keep", "type kubernetes.io/service-account-token",
        ["system-managed"])
    k8s("Secret", "aia-production", "artifact-registry-pull", "keep",
        "imagePullSecrets of ServiceAccount aia-orchestrator", ["in-use"])
    k8s("Secret", "aia-production", "aia-api-db-2024", "delete", "no manifest, no reference", ["not-in-allowlist"])
    k8s("Secret", "aia-production", "old-slack-webhook", "delete", "no manifest, no reference", ["not-in-allowlist"])
    k8s("Secret", "aia-staging", "aia-staging-temp-token", "keep", "opt-out annotation", ["opt-out"])
    k8s("ServiceAccount", "aia-staging", "aia-ci-deployer", "delete", "no manifest, no reference",
        ["not-in-allowlist"])
    for i in range(2):
        k8s("PersistentVolumeClaim", "aia-monitoring", f"data-aia-metrics-db-{i}", "keep",
            "mounted by Pod aia-metrics-db-%d (StatefulSet volumeClaimTemplates); delete_pvcs is false" % i, ["in-use"])
    k8s("PersistentVolumeClaim", "aia-monitoring", "scratch-old", "keep",
        "orphan, but the policy has delete_pvcs: false (would be delete with delete_pvcs: true)")

    # Workloads and networking (policies/aia.yaml audits them).
    for ns in ("aia-production", "aia-staging"):
        for svc in SERVICES:
            k8s("Deployment", ns, svc, "keep", "defined by k8s/aia", ["defined-in-repository"])
            if (ns, svc) != ("aia-staging", "aia-frontend"):
                k8s("Service", ns, svc, "keep", "defined by k8s/aia", ["defined-in-repository"])
    k8s("Deployment", "aia-staging", "aia-report-worker", "delete",
        "not defined by the repository; runs aia-orchestrator:1.3.0 (`other-version` when the run knows the "
        "repository's version, e.g. with --version)", ["not-in-repository"])
    k8s("CronJob", "aia-production", "aia-nightly-export", "delete",
        "not defined by the repository; runs aia-api:1.6.0 (`other-version` when the run knows the "
        "repository's version)", ["not-in-repository"])
    k8s("StatefulSet", "aia-monitoring", "aia-metrics-db", "keep", "installed by the Helm release aia-metrics-db",
        ["managed-elsewhere"])
    k8s("Service", "aia-monitoring", "aia-metrics-db", "keep", "installed by the Helm release aia-metrics-db",
        ["managed-elsewhere"])
    k8s("Ingress", "aia-production", "aia-frontend", "keep",
        "not defined by the repository, but the policy's keep rule names it", ["keep-rule"])

    drift = [{"provider": "kubernetes", "kind": "Service", "namespace": "aia-staging", "name": "aia-frontend",
              "action": "drift", "reasons": ["missing"], "why": "defined in k8s/aia/aia-frontend.yaml, absent"}]

    def dep(ns, name, running):
        return {"provider": "kubernetes", "kind": "Deployment", "namespace": ns, "name": name, "action": "drift",
                "reasons": ["version-drift"], "why": f"runs {running}"}
    version_drift = {
        "1.15.0-rc.1": [dep("aia-production", s, "1.14.2") for s in SERVICES] +
                       [dep("aia-staging", "aia-orchestrator", "1.13.0")],
        "1.14.2": [dep("aia-staging", "aia-api", "1.15.0-rc.1"), dep("aia-staging", "aia-frontend", "1.15.0-rc.1"),
                   dep("aia-staging", "aia-orchestrator", "1.13.0")],
    }

    def img(repo, version, action, why, reasons):
        d = DIGEST[(repo, version)] if not version.startswith("sha256:") else version
        out.append({"provider": "registry", "kind": "Image", "name": f"{IMG}/{repo}@{d}", "action": action,
                    "reasons": reasons, "why": f"{repo} {version}: {why}"})

    def untagged(repo, seed):
        return seed_digest(f"{IMG}/{repo}@{seed}")

    # aia-api (17 digests, newest first by upload time)
    for v in ["1.15.0-rc.1", "1.14.2", "1.14.1"]:
        img("aia-api", v, "keep", "run by the cluster, among the newest 10", ["in-use", "recent-version"])
    for v in ["1.14.0", "1.13.1", "1.13.0"]:
        img("aia-api", v, "keep", "among the newest 10", ["recent-version", "within-max-age"])
    img("aia-api", "1.12.0", "keep", "among the newest 10 by upload time (2026-09-10); its timeCreatedMs is "
        "1980-01-01, which must not be used when timeUploadedMs exists", ["recent-version", "within-max-age"])
    for v in ["1.11.0", "1.10.0", "1.9.0"]:
        img("aia-api", v, "keep", "older than 90 days but among the newest 10", ["recent-version"])
    img("aia-api", "1.8.0", "delete", "11th newest and 163 days old", [])
    img("aia-api", "1.6.0", "keep", "old, but the suspended CronJob aia-nightly-export runs it", ["in-use"])
    for v in ["1.4.0", "1.3.0", "1.1.0", "1.0.0"]:
        img("aia-api", v, "delete", "outside the newest 10 and older than 90 days", [])
    img("aia-api", untagged("aia-api", "first-push-of-1.1.0"), "delete",
        "untagged (first push of 1.1.0), 303 days old", [])
    # aia-frontend (14 digests)
    for v in ["1.15.0-rc.1", "1.14.2", "1.14.1"]:
        img("aia-frontend", v, "keep", "run by the cluster, among the newest 10", ["in-use", "recent-version"])
    for v in ["1.14.0", "1.13.1", "1.13.0", "1.12.1"]:
        img("aia-frontend", v, "keep", "among the newest 10", ["recent-version", "within-max-age"])
    for seed in ["first-push-of-1.14.1", "first-push-of-1.14.0", "first-push-of-1.13.0"]:
        img("aia-frontend", untagged("aia-frontend", seed), "keep",
            f"untagged ({seed}), among the newest 10: keep-N counts digests, tagged or not",
            ["recent-version", "within-max-age"])
    img("aia-frontend", "1.12.0", "keep", "11th newest but only 79 days old", ["within-max-age"])
    img("aia-frontend", "1.8.0", "delete", "outside the newest 10 and older than 90 days", [])
    img("aia-frontend", "1.5.0", "delete", "outside the newest 10 and older than 90 days", [])
    img("aia-frontend", "1.2.0", "keep", "289 days old, but Pod aia-staging/aia-frontend-debug runs it", ["in-use"])
    # aia-orchestrator (13 image indexes, each with 2 child manifests that are not versions)
    for v in ["1.14.2", "1.14.1", "1.13.0"]:
        img("aia-orchestrator", v, "keep", "run by the cluster, among the newest 10", ["in-use", "recent-version"])
    for v in ["1.15.0-rc.1", "1.14.0", "1.12.0"]:
        img("aia-orchestrator", v, "keep", "among the newest 10", ["recent-version", "within-max-age"])
    for v in ["1.11.0", "1.10.0", "1.8.0", "1.6.0"]:
        img("aia-orchestrator", v, "keep", "older than 90 days but among the newest 10 indexes", ["recent-version"])
    img("aia-orchestrator", "1.3.0", "keep", "old, but Deployment aia-staging/aia-report-worker (replicas: 0) "
        "runs it", ["in-use"])
    img("aia-orchestrator", "1.4.0", "delete", "11th newest index, 247 days old", [])
    img("aia-orchestrator", "1.1.0", "delete", "outside the newest 10 and older than 90 days", [])
    for v in ["0.3.0", "0.2.0", "0.1.0"]:
        img("old-prototype", v, "delete", "not one of the repository's images, under the scanned root",
            ["foreign-image"])

    kept_children, deleted_children = [], []
    for v in ORCHESTRATOR_VERSIONS:
        d = DIGEST[("aia-orchestrator", v)]
        with open(os.path.join(OUT, f"registry/{IMG}/aia-orchestrator/manifests/{d}.json")) as f:
            kids = [f"{IMG}/aia-orchestrator@{c['digest']}" for c in json.load(f)["manifests"]]
        (deleted_children if v in ("1.4.0", "1.1.0") else kept_children).extend(kids)

    def gcp(kind, name, action, why, reasons=()):
        out.append({"provider": "gcp", "kind": kind, "name": name, "action": action, "reasons": list(reasons),
                    "why": why})
    gcp("FirewallRule", "aia-allow-https", "keep", "in the allowlist")
    gcp("FirewallRule", "aia-allow-health-checks", "keep", "in the allowlist")
    for n in ["gke-aia-prod-1a2b3c4d-all", "gke-aia-prod-1a2b3c4d-ssh", "k8s-fw-l7--abc123"]:
        gcp("FirewallRule", n, "keep", "created by GKE", ["system-managed"])
    gcp("FirewallRule", "default-allow-ssh", "delete", "not in the allowlist", ["not-in-allowlist"])
    gcp("FirewallRule", "temp-debug-allow-8080", "delete", "not in the allowlist", ["not-in-allowlist"])
    gcp("Bucket", "aia-prod-backups", "keep", "in the allowlist")
    gcp("Bucket", "aia-prod-reports", "keep", "in the allowlist")
    for n in ["aia-prod_cloudbuild", "artifacts.aia-prod.appspot.com", f"gcf-sources-{PROJECT_NUMBER}-us-central1"]:
        gcp("Bucket", n, "keep", "created by Google", ["system-managed"])
    gcp("Bucket", "aia-prod-tmp-exports", "delete", "not in the allowlist (enforce deletes it only if empty: "
        "delete_non_empty is false)", ["not-in-allowlist"])
    for n in ["aia-api", "aia-frontend", "aia-orchestrator"]:
        gcp("IamServiceAccount", f"{n}@aia-prod.iam.gserviceaccount.com", "keep", "matches aia-*@aia-prod...")
    gcp("IamServiceAccount", f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com", "keep",
        "Compute Engine default", ["system-managed"])
    gcp("IamServiceAccount", "aia-prod@appspot.gserviceaccount.com", "keep", "App Engine default",
        ["system-managed"])
    gcp("IamServiceAccount", "old-jenkins@aia-prod.iam.gserviceaccount.com", "delete", "not in the allowlist",
        ["not-in-allowlist"])
    gcp("SslCertificate", "aia-frontend-cert", "keep", "matches aia-*")
    gcp("SslCertificate", "mcrt-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "keep", "GKE managed certificate",
        ["system-managed"])
    gcp("SslCertificate", "legacy-wildcard-2023", "delete", "not in the allowlist (expired 2024-11-02)",
        ["not-in-allowlist"])
    gcp("Certificate", "aia-api-cert", "keep", "matches aia-*")
    gcp("Certificate", "old-api-cert", "delete", "not in the allowlist", ["not-in-allowlist"])
    gcp("Address", "aia-frontend-ip", "keep", "matches aia-*, and the Ingress's forwarding rule uses it",
        ["in-allowlist", "in-use"])
    gcp("Address", "google-managed-services-aia-vpc", "keep",
        "purpose VPC_PEERING: the private service access range (it lists no users)", ["system-managed"])
    gcp("Address", "us-central1/old-staging-ip", "delete", "RESERVED, no users, not in the allowlist",
        ["not-in-allowlist"])
    gcp("Disk", "us-central1-a/gke-aia-prod-default-pool-1a2b3c4d-x7k2", "keep", "a GKE node's boot disk, attached",
        ["system-managed", "in-use"])
    gcp("Disk", "us-central1-a/pvc-5b0c2f8e-3d41-4c6a-9e1f-7a2b8c9d0e1f", "keep",
        "the disk of aia-metrics-db's PersistentVolume", ["system-managed", "in-use"])
    gcp("Disk", "us-central1-a/old-jenkins-data", "delete",
        "READY, attached to nothing since 2026-02-14, not in the allowlist (enforce snapshots it first)",
        ["not-in-allowlist"])
    for d in ["0715", "0801", "0815"]:
        gcp("Snapshot", f"old-analytics-2026{d}", "keep", "one of the 3 newest snapshots of its disk",
            ["recent-version"])
    gcp("Snapshot", "old-analytics-20260701", "delete",
        "older than 30 days and 3 newer snapshots of its disk are kept", ["expired"])
    gcp("ForwardingRule", "aia-web-fr", "keep", "in the allowlist")
    gcp("TargetProxy", "http/aia-web-http", "keep", "in the allowlist, and used by ForwardingRule aia-web-fr",
        ["in-use"])
    gcp("ForwardingRule", "old-promo-fr", "delete", "not in the allowlist", ["not-in-allowlist"])
    gcp("TargetProxy", "http/old-promo-http", "delete",
        "not in the allowlist; used only by ForwardingRule old-promo-fr, deleted before it", ["not-in-allowlist"])
    gcp("UrlMap", "aia-web", "keep", "in the allowlist, and used by TargetProxy http/aia-web-http", ["in-use"])
    gcp("BackendService", "aia-web-backend", "keep", "in the allowlist, and used by UrlMap aia-web", ["in-use"])
    gcp("BackendBucket", "aia-web-static", "keep", "in the allowlist, and used by UrlMap aia-web", ["in-use"])
    gcp("HealthCheck", "aia-web-hc", "keep", "in the allowlist, and used by BackendService aia-web-backend",
        ["in-use"])
    gcp("UrlMap", "old-promo", "delete",
        "not in the allowlist; used only by TargetProxy http/old-promo-http, deleted before it", ["not-in-allowlist"])
    gcp("BackendService", "old-promo-backend", "delete",
        "not in the allowlist; used only by UrlMap old-promo, deleted before it", ["not-in-allowlist"])
    gcp("BackendBucket", "old-promo-assets", "delete",
        "not in the allowlist; used only by UrlMap old-promo, deleted before it (its Cloud Storage bucket stays)",
        ["not-in-allowlist"])
    gcp("HealthCheck", "old-promo-hc", "delete",
        "not in the allowlist; used only by BackendService old-promo-backend, deleted before it", ["not-in-allowlist"])

    gcp("SqlInstance", "aia-prod-db", "keep",
        "in the allowlist, deletion protection is on, and ConfigMap aia-production/aia-api-config names its address",
        ["in-allowlist", "deletion-protected", "in-use"])
    gcp("SqlInstance", "legacy-orders-v1", "keep",
        "not in the allowlist, but ConfigMap aia-production/aia-api-config-old names its address 10.20.0.3",
        ["in-use"])
    gcp("SqlInstance", "old-reporting-db", "delete",
        "not in the allowlist, nothing names it (enforce takes a backup, then deletes with a final backup)",
        ["not-in-allowlist"])

    for i, instance in enumerate(["aia-prod-db", "legacy-orders-v1", "old-reporting-db"]):
        gcp("SqlBackup", f"{instance}/176438160000{i}", "keep",
            "last night's automated backup: the newest of its instance", ["recent-version", "within-max-age"]
            + (["in-allowlist"] if instance.startswith("aia-") else []) + ["too-young"])
    for b in ["1743300000001", "1743200000001"]:
        gcp("SqlBackup", f"old-billing-db/backups/{b}", "keep",
            "retained after old-billing-db was deleted: one of its 2 newest", ["recent-version"])
    gcp("SqlBackup", "old-billing-db/backups/1743100000001", "delete",
        "retained after old-billing-db was deleted, older than 90 days, and 2 newer ones are kept", ["expired"])

    for n in ["_Default", "_Required"]:
        gcp("LogSink", n, "keep", "the project's own sink", ["system-managed"])
        gcp("LogBucket", f"global/{n}", "keep", f"the project's own bucket, written by LogSink {n}"
            + (" (and locked)" if n == "_Required" else ""),
            ["system-managed", "in-use"] + (["retention-locked"] if n == "_Required" else []))
    gcp("LogSink", "aia-audit", "keep", "in the allowlist")
    gcp("LogBucket", "global/aia-audit", "keep", "in the allowlist, and LogSink aia-audit writes to it",
        ["in-allowlist", "in-use"])
    gcp("LogSink", "legacy-siem-export", "delete", "not in the allowlist", ["not-in-allowlist"])
    gcp("LogBucket", "europe-west1/legacy-siem", "delete",
        "not in the allowlist; only LogSink legacy-siem-export writes to it, deleted before it", ["not-in-allowlist"])

    n_del = sum(1 for e in out if e["action"] == "delete")
    doc = {"recorded_at": RECORDED_AT, "now": RECORDED_AT,
           "policy": "policies/aia.yaml", "snapshot": "examples/snapshot",
           "expect": out, "blocked": False, "deletions": n_del,
           "optional_keep": kept_children,
           "deleted_with_index": deleted_children,
           "drift": drift, "version_drift": version_drift}
    with open(os.path.join(HERE, "expect.json"), "w") as f:
        f.write(json.dumps(doc, indent=1) + "\n")
    return n_del


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    manifests = load_manifests()
    manifest_ns = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Namespace"}
    write_registry()
    write_namespaces(manifest_ns)
    write_workloads(manifests)
    write_config(manifests)
    write_gcp()
    n_del = write_expect()
    print(f"wrote {OUT} (recorded at {RECORDED_AT}) and expect.json ({n_del} expected deletions)")


if __name__ == "__main__":
    main()
