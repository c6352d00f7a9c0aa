"""Self-test for the fake kube-apiserver (stdlib unittest).

Run from the repository root:  python3 -m unittest tests/apiserver/test_fake_apiserver.py
kubectl (on PATH) is used as a fidelity cross-check; those tests are skipped when it is missing.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "fake_apiserver.py")
META_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
META_ONE = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


class FakeApiServerTest(unittest.TestCase):
    proc = None
    port = None

    @classmethod
    def setUpClass(cls):
        cls.proc = subprocess.Popen([sys.executable, SERVER, "--port", "0"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        line = cls.proc.stdout.readline().strip()
        if not line.startswith("listening on 127.0.0.1:"):
            cls.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {cls.proc.stderr.read()}")
        cls.port = int(line.rsplit(":", 1)[1])

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(timeout=5)
        finally:
            if cls.proc.poll() is None:
                cls.proc.kill()
            cls.proc.stdout.close()
            cls.proc.stderr.close()

    def setUp(self):
        self.call("POST", "/_fake/reset")

    # ---------------------------------------------------------------- helpers
    def call(self, method, path, body=None, headers=None, query=None, raw=False):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        if query:
            path = path + "?" + urllib.parse.urlencode(query)
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        if raw:
            return resp.status, resp, payload
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode()
        return resp.status, resp, parsed

    def ok(self, method, path, body=None, expect=(200, 201), **kw):
        status, resp, data = self.call(method, path, body, **kw)
        if isinstance(expect, int):
            expect = (expect,)
        self.assertIn(status, expect, f"{method} {path} -> {status}: {data}")
        return data

    def settle(self):
        self.ok("POST", "/_fake/settle")

    def cm(self, name, ns="default", labels=None, **extra):
        meta = {"name": name, "namespace": ns}
        if labels:
            meta["labels"] = labels
        meta.update(extra.pop("meta", {}))
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
        obj.update(extra)
        return obj

    def create_cm(self, name, ns="default", **kw):
        return self.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", self.cm(name, ns, **kw), expect=201)

    def names(self, lst):
        return [i["metadata"]["name"] for i in lst["items"]]

    # ---------------------------------------------------------------- discovery
    def test_discovery(self):
        v = self.ok("GET", "/version")
        self.assertEqual((v["major"], v["minor"], v["gitVersion"]), ("1", "33", "v1.33.0-fake"))
        api = self.ok("GET", "/api")
        self.assertEqual(api["kind"], "APIVersions")
        self.assertEqual(api["versions"], ["v1"])
        self.assertIn("serverAddressByClientCIDRs", api)
        core = self.ok("GET", "/api/v1")
        self.assertEqual(core["kind"], "APIResourceList")
        by_name = {r["name"]: r for r in core["resources"]}
        self.assertFalse(by_name["namespaces"]["namespaced"])
        self.assertEqual(by_name["configmaps"]["kind"], "ConfigMap")
        self.assertIn("cm", by_name["configmaps"]["shortNames"])
        self.assertIn("pods/status", by_name)
        self.assertIn("namespaces/finalize", by_name)
        self.assertNotIn("deletecollection", by_name["namespaces"]["verbs"])
        groups = self.ok("GET", "/apis")
        self.assertEqual(groups["kind"], "APIGroupList")
        names = {g["name"]: g for g in groups["groups"]}
        for g in ("apps", "batch", "networking.k8s.io", "coordination.k8s.io", "rbac.authorization.k8s.io",
                  "policy", "autoscaling"):
            self.assertIn(g, names)
        self.assertEqual(names["autoscaling"]["preferredVersion"]["groupVersion"], "autoscaling/v2")
        apps = self.ok("GET", "/apis/apps/v1")
        self.assertEqual(apps["groupVersion"], "apps/v1")
        self.assertIn("deployments/status", {r["name"] for r in apps["resources"]})
        # aggregated discovery, as kubectl and kube-rs' Discovery::run_aggregated ask for it
        accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                  "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
        status, resp, agg = self.call("GET", "/apis", headers={"Accept": accept})
        self.assertEqual(status, 200)
        self.assertEqual(resp.getheader("Content-Type"), "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
        self.assertEqual(agg["kind"], "APIGroupDiscoveryList")
        apps_agg = next(i for i in agg["items"] if i["metadata"]["name"] == "apps")
        deploy = next(r for r in apps_agg["versions"][0]["resources"] if r["resource"] == "deployments")
        self.assertEqual(deploy["scope"], "Namespaced")
        self.assertEqual(deploy["responseKind"], {"group": "apps", "version": "v1", "kind": "Deployment"})
        # unknown paths
        for path in ("/api/v2", "/apis/nope/v1", "/api/v1/nopes", "/foo"):
            status, _, body = self.call("GET", path)
            self.assertEqual(status, 404, path)
            self.assertEqual(body["message"], "the server could not find the requested resource")
            self.assertEqual(body["reason"], "NotFound")
        status, _, body = self.call("PUT", "/api/v1/namespaces/default/configmaps")
        self.assertEqual((status, body["reason"]), (405, "MethodNotAllowed"))

    # ---------------------------------------------------------------- CRUD
    def test_startup_state(self):
        nss = self.names(self.ok("GET", "/api/v1/namespaces"))
        self.assertEqual(nss, ["default", "kube-node-lease", "kube-public", "kube-system"])
        for ns in nss:
            self.ok("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
            cm = self.ok("GET", f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt")
            self.assertIn("ca.crt", cm["data"])
        ns = self.ok("GET", "/api/v1/namespaces/default")
        self.assertEqual(ns["status"], {"phase": "Active"})
        self.assertEqual(ns["spec"], {"finalizers": ["kubernetes"]})

    def test_create_get_update_semantics(self):
        created = self.create_cm("a", labels={"app": "x"}, data={"k": "v"})
        meta = created["metadata"]
        self.assertEqual(created["kind"], "ConfigMap")
        self.assertTrue(meta["uid"] and meta["resourceVersion"].isdigit())
        self.assertRegex(meta["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        got = self.ok("GET", "/api/v1/namespaces/default/configmaps/a")
        self.assertEqual(got["metadata"]["uid"], meta["uid"])
        # AlreadyExists
        status, _, body = self.call("POST", "/api/v1/namespaces/default/configmaps", self.cm("a"))
        self.assertEqual((status, body["reason"], body["message"]), (409, "AlreadyExists", 'configmaps "a" already exists'))
        self.assertEqual(body["details"], {"name": "a", "kind": "configmaps"})
        # NotFound
        status, _, body = self.call("GET", "/api/v1/namespaces/default/configmaps/zz")
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": 'configmaps "zz" not found', "reason": "NotFound",
                                "details": {"name": "zz", "kind": "configmaps"}, "code": 404})
        status, _, body = self.call("GET", "/apis/apps/v1/namespaces/default/deployments/zz")
        self.assertEqual(body["message"], 'deployments.apps "zz" not found')
        self.assertEqual(body["details"]["group"], "apps")
        # namespace missing / body namespace mismatch / bad name / wrong kind
        status, _, body = self.call("POST", "/api/v1/namespaces/nope/configmaps", self.cm("a", "nope"))
        self.assertEqual((status, body["message"]), (404, 'namespaces "nope" not found'))
        status, _, body = self.call("POST", "/api/v1/namespaces/default/configmaps", self.cm("b", "kube-system"))
        self.assertEqual((status, body["reason"]), (400, "BadRequest"))
        self.assertEqual(body["message"], "the namespace of the provided object does not match the namespace sent on the request")
        status, _, body = self.call("POST", "/api/v1/namespaces/default/configmaps", self.cm("Bad_Name"))
        self.assertEqual((status, body["reason"]), (422, "Invalid"))
        self.assertTrue(body["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'))
        status, _, body = self.call("POST", "/api/v1/namespaces", {"metadata": {"name": "a.b"}})
        self.assertEqual(status, 422)
        self.assertIn("RFC 1123 label", body["message"])
        status, _, body = self.call("POST", "/api/v1/namespaces/default/configmaps",
                                    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
        self.assertEqual(status, 400)
        status, _, body = self.call("POST", "/api/v1/namespaces/default/configmaps",
                                    {"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
        self.assertEqual(status, 400)
        # generateName
        gen = self.ok("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"generateName": "gen-"}}, expect=201)
        self.assertRegex(gen["metadata"]["name"], r"^gen-[a-z0-9]{5}$")
        # update: unconditional without rv, 409 on stale rv, uid/creationTimestamp preserved
        upd = dict(got, data={"k": "v2"})
        del upd["metadata"]["resourceVersion"]
        after = self.ok("PUT", "/api/v1/namespaces/default/configmaps/a", upd)
        self.assertEqual(after["data"], {"k": "v2"})
        self.assertEqual(after["metadata"]["uid"], meta["uid"])
        self.assertEqual(after["metadata"]["creationTimestamp"], meta["creationTimestamp"])
        self.assertGreater(int(after["metadata"]["resourceVersion"]), int(meta["resourceVersion"]))
        stale = dict(after, data={"k": "v3"})
        stale["metadata"] = dict(after["metadata"], resourceVersion=meta["resourceVersion"])
        status, _, body = self.call("PUT", "/api/v1/namespaces/default/configmaps/a", stale)
        self.assertEqual((status, body["reason"]), (409, "Conflict"))
        self.assertEqual(body["message"], 'Operation cannot be fulfilled on configmaps "a": the object has been modified; '
                                          'please apply your changes to the latest version and try again')
        # generation tracking and status subresource
        dep = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
               "status": {"replicas": 99}}
        d = self.ok("POST", "/apis/apps/v1/namespaces/default/deployments", dep, expect=201)
        self.assertEqual(d["metadata"]["generation"], 1)
        self.assertNotIn("replicas", d.get("status", {}))
        d2 = self.ok("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", {"spec": {"replicas": 3}},
                     headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(d2["metadata"]["generation"], 2)
        d3 = self.ok("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", {"metadata": {"labels": {"x": "y"}}},
                     headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(d3["metadata"]["generation"], 2)
        st = self.ok("PATCH", "/apis/apps/v1/namespaces/default/deployments/web/status",
                     {"status": {"replicas": 3}, "spec": {"replicas": 7}},
                     headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual((st["status"]["replicas"], st["spec"]["replicas"]), (3, 3))
        pod = self.ok("POST", "/api/v1/namespaces/default/pods",
                      {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                       "status": {"phase": "Running"}}, expect=201)
        self.assertEqual(pod["status"]["phase"], "Pending")

    def test_patch_types(self):
        self.create_cm("p", labels={"a": "1"}, data={"x": "1", "y": "2"})
        base = "/api/v1/namespaces/default/configmaps/p"
        r = self.ok("PATCH", base, {"data": {"x": None, "z": "3"}}, headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(r["data"], {"y": "2", "z": "3"})
        r = self.ok("PATCH", base, {"metadata": {"finalizers": ["example.com/f"]}},
                    headers={"Content-Type": "application/strategic-merge-patch+json"})
        self.assertEqual(r["metadata"]["finalizers"], ["example.com/f"])
        r = self.ok("PATCH", base, [{"op": "test", "path": "/data/y", "value": "2"},
                                    {"op": "remove", "path": "/metadata/finalizers"},
                                    {"op": "add", "path": "/data/w", "value": "4"},
                                    {"op": "move", "from": "/data/w", "path": "/data/v"},
                                    {"op": "copy", "from": "/data/v", "path": "/data/u"},
                                    {"op": "replace", "path": "/data/z", "value": "9"}],
                    headers={"Content-Type": "application/json-patch+json"})
        self.assertEqual(r["data"], {"y": "2", "z": "9", "v": "4", "u": "4"})
        self.assertNotIn("finalizers", r["metadata"])
        status, _, body = self.call("PATCH", base, [{"op": "test", "path": "/data/y", "value": "nope"}],
                                    headers={"Content-Type": "application/json-patch+json"})
        self.assertEqual((status, body["reason"]), (422, "Invalid"))
        status, _, body = self.call("PATCH", base, {"data": {}}, headers={"Content-Type": "text/plain"})
        self.assertEqual((status, body["reason"]), (415, "UnsupportedMediaType"))
        # server-side apply
        apply_body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sa"}, "data": {"a": "1"}}
        status, _, body = self.call("PATCH", "/api/v1/namespaces/default/configmaps/sa", apply_body,
                                    headers={"Content-Type": "application/apply-patch+yaml"})
        self.assertEqual(status, 422)
        self.assertIn("fieldManager: Required value", body["message"])
        r = self.ok("PATCH", "/api/v1/namespaces/default/configmaps/sa", apply_body,
                    headers={"Content-Type": "application/apply-patch+yaml"}, query={"fieldManager": "tool"}, expect=201)
        self.assertEqual(r["metadata"]["managedFields"][0]["manager"], "tool")
        self.assertEqual(r["metadata"]["managedFields"][0]["operation"], "Apply")
        r = self.ok("PATCH", "/api/v1/namespaces/default/configmaps/sa", dict(apply_body, data={"b": "2"}),
                    headers={"Content-Type": "application/apply-patch+yaml"}, query={"fieldManager": "tool"})
        self.assertEqual(r["data"], {"b": "2"})  # fields the manager stopped applying are removed
        # another manager changes a field owned by "tool" -> conflict unless forced
        self.ok("PATCH", "/api/v1/namespaces/default/configmaps/sa", {"data": {"b": "3"}},
                headers={"Content-Type": "application/merge-patch+json"}, query={"fieldManager": "other"})
        status, _, body = self.call("PATCH", "/api/v1/namespaces/default/configmaps/sa", dict(apply_body, data={"b": "2"}),
                                    headers={"Content-Type": "application/apply-patch+yaml"}, query={"fieldManager": "third"})
        self.assertEqual((status, body["reason"]), (409, "Conflict"))
        self.assertIn('conflict with "other"', body["message"])
        r = self.ok("PATCH", "/api/v1/namespaces/default/configmaps/sa", dict(apply_body, data={"b": "2"}),
                    headers={"Content-Type": "application/apply-patch+yaml"},
                    query={"fieldManager": "third", "force": "true"})
        self.assertEqual(r["data"], {"b": "2"})

    # ---------------------------------------------------------------- lists and selectors
    def test_list_shape_and_selectors(self):
        self.create_cm("a1", labels={"app": "a", "tier": "1"})
        self.create_cm("a2", labels={"app": "a", "tier": "2"})
        self.create_cm("b1", labels={"app": "b"})
        self.create_cm("n1")
        lst = self.ok("GET", "/api/v1/namespaces/default/configmaps")
        self.assertEqual((lst["kind"], lst["apiVersion"]), ("ConfigMapList", "v1"))
        self.assertTrue(lst["metadata"]["resourceVersion"].isdigit())
        self.assertNotIn("kind", lst["items"][0])
        self.assertNotIn("apiVersion", lst["items"][0])
        self.assertEqual(self.names(lst), ["a1", "a2", "b1", "kube-root-ca.crt", "n1"])

        def sel(s):
            return self.names(self.ok("GET", "/api/v1/namespaces/default/configmaps", query={"labelSelector": s}))
        self.assertEqual(sel("app=a"), ["a1", "a2"])
        self.assertEqual(sel("app==a,tier=2"), ["a2"])
        self.assertEqual(sel("app!=a"), ["b1", "kube-root-ca.crt", "n1"])
        self.assertEqual(sel("app in (a,b)"), ["a1", "a2", "b1"])
        self.assertEqual(sel("app notin (a)"), ["b1", "kube-root-ca.crt", "n1"])
        self.assertEqual(sel("tier"), ["a1", "a2"])
        self.assertEqual(sel("!app"), ["kube-root-ca.crt", "n1"])
        self.assertEqual(sel("tier>1"), ["a2"])
        for bad, msg in (("app in", "unable to parse requirement: found '' expected: '('"),
                         ("app=(", None), ("-x", "unable to parse requirement: <nil>: Invalid value: \"-x\""),
                         ("app=a b", None)):
            status, _, body = self.call("GET", "/api/v1/namespaces/default/configmaps", query={"labelSelector": bad})
            self.assertEqual((status, body["reason"]), (400, "BadRequest"), bad)
            if msg:
                self.assertTrue(body["message"].startswith(msg), body["message"])
        # field selectors
        self.assertEqual(self.names(self.ok("GET", "/api/v1/configmaps", query={"fieldSelector": "metadata.name=a1"})), ["a1"])
        self.assertEqual(len(self.ok("GET", "/api/v1/configmaps",
                                     query={"fieldSelector": "metadata.namespace!=default"})["items"]), 3)
        status, _, body = self.call("GET", "/api/v1/configmaps", query={"fieldSelector": "spec.x=1"})
        self.assertEqual((status, body["message"]), (400, '"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"'))
        status, _, body = self.call("GET", "/api/v1/pods", query={"fieldSelector": "spec.bogus=1"})
        self.assertEqual((status, body["message"]), (400, "field label not supported: spec.bogus"))
        self.ok("POST", "/_fake/seed", [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "run", "namespace": "default"},
             "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}, "status": {"phase": "Running"}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pend", "namespace": "default"},
             "spec": {"containers": [{"name": "c", "image": "x"}]}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "default"},
             "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "op", "namespace": "default"},
             "stringData": {"a": "b"}}])
        self.assertEqual(self.names(self.ok("GET", "/api/v1/pods", query={"fieldSelector": "status.phase=Running"})), ["run"])
        self.assertEqual(self.names(self.ok("GET", "/api/v1/pods", query={"fieldSelector": "spec.nodeName="})), ["pend"])
        self.assertEqual(self.names(self.ok("GET", "/api/v1/pods", query={"fieldSelector": "spec.restartPolicy=Always,spec.serviceAccountName=default"})), ["pend", "run"])
        self.assertEqual(self.names(self.ok("GET", "/api/v1/secrets", query={"fieldSelector": "type=kubernetes.io/tls"})), ["tls"])
        op = self.ok("GET", "/api/v1/namespaces/default/secrets/op")
        self.assertEqual((op["data"], op["type"]), ({"a": "Yg=="}, "Opaque"))
        self.assertNotIn("stringData", op)
        self.assertEqual(self.names(self.ok("GET", "/api/v1/namespaces", query={"fieldSelector": "status.phase=Active"}))[:1], ["default"])

    def test_pagination_exactly_once_and_expiry(self):
        self.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "pg"}}, expect=201)
        objs = [self.cm(f"cm-{i:05d}", "pg", labels={"even": str(i % 2 == 0).lower()}) for i in range(1200)]
        self.assertEqual(self.ok("POST", "/_fake/seed", objs)["created"], 1200)
        path = "/api/v1/namespaces/pg/configmaps"
        first = self.ok("GET", path, query={"limit": 100})
        self.assertEqual(len(first["items"]), 100)
        self.assertEqual(first["metadata"]["remainingItemCount"], 1101)  # + kube-root-ca.crt
        seen = self.names(first)
        token = first["metadata"]["continue"]
        rv = first["metadata"]["resourceVersion"]
        # writes between pages must not show up: pages come from the first page's snapshot
        self.create_cm("zz-new", "pg")
        self.ok("DELETE", "/api/v1/namespaces/pg/configmaps/cm-01199")
        pages = 1
        while token:
            page = self.ok("GET", path, query={"limit": 100, "continue": token})
            self.assertEqual(page["metadata"]["resourceVersion"], rv)
            seen += self.names(page)
            token = page["metadata"].get("continue")
            pages += 1
        self.assertEqual(pages, 13)
        self.assertEqual(len(seen), 1201)
        self.assertEqual(len(set(seen)), 1201)
        self.assertIn("cm-01199", seen)
        self.assertNotIn("zz-new", seen)
        self.assertEqual(seen, sorted(seen))
        # with a selector: filtered pages, no remainingItemCount
        sel = self.ok("GET", path, query={"limit": 50, "labelSelector": "even=true"})
        self.assertEqual(len(sel["items"]), 50)
        self.assertNotIn("remainingItemCount", sel["metadata"])
        total = len(sel["items"])
        token = sel["metadata"]["continue"]
        while token:
            page = self.ok("GET", path, query={"limit": 50, "labelSelector": "even=true", "continue": token})
            total += len(page["items"])
            token = page["metadata"].get("continue")
        self.assertEqual(total, 600)
        # expiry
        first = self.ok("GET", path, query={"limit": 500})
        self.ok("POST", "/_fake/expire-continue")
        status, _, body = self.call("GET", path, query={"limit": 500, "continue": first["metadata"]["continue"]})
        self.assertEqual((status, body["reason"], body["code"]), (410, "Expired", 410))
        self.assertTrue(body["message"].startswith("The provided continue parameter is too old to display a consistent list result."))
        self.assertTrue(body["metadata"]["continue"])
        inconsistent = self.ok("GET", path, query={"limit": 1000, "continue": body["metadata"]["continue"]})
        self.assertEqual(inconsistent["items"][0]["metadata"]["name"], "cm-00500")
        status, _, body = self.call("GET", path, query={"limit": 5, "continue": "garbage!"})
        self.assertEqual((status, body["reason"]), (400, "BadRequest"))

    def test_metadata_only_lists_hide_secret_data(self):
        self.ok("POST", "/api/v1/namespaces/default/secrets",
                {"metadata": {"name": "s", "labels": {"a": "b"}}, "data": {"password": "c2VjcmV0"}, "stringData": {"x": "y"}},
                expect=201)
        status, resp, raw = self.call("GET", "/api/v1/secrets", headers={"Accept": META_LIST}, raw=True)
        self.assertEqual(status, 200)
        self.assertEqual(resp.getheader("Content-Type"), META_LIST)
        body = json.loads(raw)
        self.assertEqual((body["kind"], body["apiVersion"]), ("PartialObjectMetadataList", "meta.k8s.io/v1"))
        self.assertEqual(body["items"][0]["kind"], "PartialObjectMetadata")
        self.assertEqual(body["items"][0]["metadata"]["name"], "s")
        self.assertNotIn(b"c2VjcmV0", raw)
        self.assertNotIn(b'"data"', raw)
        self.assertNotIn(b"stringData", raw)
        status, resp, raw = self.call("GET", "/api/v1/namespaces/default/secrets/s", headers={"Accept": META_ONE}, raw=True)
        self.assertEqual(resp.getheader("Content-Type"), META_ONE)
        self.assertEqual(json.loads(raw)["kind"], "PartialObjectMetadata")
        self.assertNotIn(b"c2VjcmV0", raw)
        # fallback clause and 406
        status, resp, _ = self.call("GET", "/api/v1/namespaces/default/secrets/s", headers={"Accept": META_LIST + ",application/json"})
        self.assertEqual(resp.getheader("Content-Type"), "application/json")
        status, _, body = self.call("GET", "/api/v1/namespaces/default/secrets/s", headers={"Accept": META_LIST})
        self.assertEqual((status, body["reason"]), (406, "NotAcceptable"))
        # Table (kubectl get)
        table = self.ok("GET", "/api/v1/namespaces", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
        self.assertEqual(table["kind"], "Table")
        self.assertEqual([c["name"] for c in table["columnDefinitions"]], ["Name", "Status", "Age"])

    # ---------------------------------------------------------------- delete
    def test_delete_preconditions_and_dry_run(self):
        c = self.create_cm("d")
        base = "/api/v1/namespaces/default/configmaps/d"
        status, _, body = self.call("DELETE", base, {"preconditions": {"uid": "not-the-uid"}})
        self.assertEqual((status, body["reason"]), (409, "Conflict"))
        self.assertIn("the UID in the precondition (not-the-uid) does not match the UID in record", body["message"])
        status, _, body = self.call("DELETE", base, {"preconditions": {"resourceVersion": "1"}})
        self.assertEqual((status, body["reason"]), (409, "Conflict"))
        status, _, body = self.call("DELETE", base, {"propagationPolicy": "Sideways"})
        self.assertEqual((status, body["reason"]), (422, "Invalid"))
        # dryRun changes nothing: no rv increment, object stays
        rv_before = self.ok("GET", "/_fake/state")["resourceVersion"]
        dr = self.ok("DELETE", base, {"dryRun": ["All"], "propagationPolicy": "Background"})
        self.assertEqual((dr["kind"], dr["status"]), ("Status", "Success"))
        self.ok("POST", "/api/v1/namespaces/default/configmaps", self.cm("dry"), query={"dryRun": "All"}, expect=201)
        self.ok("PATCH", base, {"data": {"x": "y"}}, headers={"Content-Type": "application/merge-patch+json"},
                query={"dryRun": "All"})
        self.ok("DELETE", "/api/v1/namespaces/default", {"dryRun": ["All"]}, expect=(403,))
        self.assertEqual(self.ok("GET", "/_fake/state")["resourceVersion"], rv_before)
        self.assertNotIn("data", self.ok("GET", base))
        self.call("GET", "/api/v1/namespaces/default/configmaps/dry")
        self.assertEqual(self.call("GET", "/api/v1/namespaces/default/configmaps/dry")[0], 404)
        # matching preconditions: deleted, Status Success with the uid
        ok = self.ok("DELETE", base, {"preconditions": {"uid": c["metadata"]["uid"],
                                                        "resourceVersion": c["metadata"]["resourceVersion"]}})
        self.assertEqual(ok["details"], {"name": "d", "kind": "configmaps", "uid": c["metadata"]["uid"]})
        self.assertEqual(self.call("GET", base)[0], 404)
        # pods answer with the deleted object
        self.ok("POST", "/api/v1/namespaces/default/pods", {"metadata": {"name": "p"},
                                                            "spec": {"containers": [{"name": "c", "image": "x"}]}}, expect=201)
        gone = self.ok("DELETE", "/api/v1/namespaces/default/pods/p")
        self.assertEqual(gone["kind"], "Pod")
        self.assertEqual(self.call("GET", "/api/v1/namespaces/default/pods/p")[0], 404)
        # immortal namespaces
        status, _, body = self.call("DELETE", "/api/v1/namespaces/kube-system")
        self.assertEqual((status, body["message"]), (403, 'namespaces "kube-system" is forbidden: this namespace may not be deleted'))

    def test_finalizers_and_deletion_timestamp(self):
        self.create_cm("f", meta={"finalizers": ["example.com/hold"]})
        base = "/api/v1/namespaces/default/configmaps/f"
        out = self.ok("DELETE", base)
        self.assertEqual(out["kind"], "ConfigMap")
        ts = out["metadata"]["deletionTimestamp"]
        self.assertEqual(out["metadata"]["deletionGracePeriodSeconds"], 0)
        self.assertEqual(self.ok("GET", base)["metadata"]["deletionTimestamp"], ts)
        time.sleep(1.1)
        again = self.ok("DELETE", base)
        self.assertEqual(again["metadata"]["deletionTimestamp"], ts)
        status, _, body = self.call("PATCH", base, {"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}},
                                    headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(status, 422)
        status, _, body = self.call("POST", "/api/v1/namespaces/default/configmaps", self.cm("f"))
        self.assertEqual(body["message"], 'object is being deleted: configmaps "f" already exists')
        # removing the last finalizer removes the object
        self.ok("PATCH", base, {"metadata": {"finalizers": None}}, headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(self.call("GET", base)[0], 404)

    def test_garbage_collection(self):
        rs = self.ok("POST", "/apis/apps/v1/namespaces/default/replicasets",
                     {"metadata": {"name": "rs"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                                                           "template": {"metadata": {"labels": {"a": "b"}},
                                                                        "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
                     expect=201)

        def owned_pod(name, owner, block=True, finalizers=None):
            meta = {"name": name, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner["metadata"]["name"],
                                                       "uid": owner["metadata"]["uid"], "controller": True,
                                                       "blockOwnerDeletion": block}]}
            if finalizers:
                meta["finalizers"] = finalizers
            return self.ok("POST", "/api/v1/namespaces/default/pods",
                           {"metadata": meta, "spec": {"containers": [{"name": "c", "image": "x"}]}}, expect=201)
        owned_pod("p1", rs)
        owned_pod("p2", rs)
        # Background (default): owner gone at once, dependents collected shortly after
        self.ok("DELETE", "/apis/apps/v1/namespaces/default/replicasets/rs")
        self.assertEqual(self.call("GET", "/apis/apps/v1/namespaces/default/replicasets/rs")[0], 404)
        self.settle()
        self.assertEqual(self.names(self.ok("GET", "/api/v1/namespaces/default/pods")), [])
        # Foreground: owner waits (deletionTimestamp + foregroundDeletion) for blocking dependents
        rs = self.ok("POST", "/apis/apps/v1/namespaces/default/replicasets", dict(rs, metadata={"name": "rs2"}), expect=201)
        owned_pod("q1", rs)
        owned_pod("q2", rs, finalizers=["example.com/hold"])
        out = self.ok("DELETE", "/apis/apps/v1/namespaces/default/replicasets/rs2", {"propagationPolicy": "Foreground"})
        self.assertIn("foregroundDeletion", out["metadata"]["finalizers"])
        self.assertTrue(out["metadata"]["deletionTimestamp"])
        self.settle()
        self.assertEqual(self.call("GET", "/api/v1/namespaces/default/pods/q1")[0], 404)
        q2 = self.ok("GET", "/api/v1/namespaces/default/pods/q2")
        self.assertTrue(q2["metadata"]["deletionTimestamp"])
        self.ok("GET", "/apis/apps/v1/namespaces/default/replicasets/rs2")  # still waiting
        self.ok("PATCH", "/api/v1/namespaces/default/pods/q2", {"metadata": {"finalizers": None}},
                headers={"Content-Type": "application/merge-patch+json"})
        self.settle()
        self.assertEqual(self.call("GET", "/apis/apps/v1/namespaces/default/replicasets/rs2")[0], 404)
        # Orphan: dependents survive without the ownerReference
        rs = self.ok("POST", "/apis/apps/v1/namespaces/default/replicasets", dict(rs, metadata={"name": "rs3"}), expect=201)
        owned_pod("o1", rs)
        self.ok("DELETE", "/apis/apps/v1/namespaces/default/replicasets/rs3", {"propagationPolicy": "Orphan"})
        self.settle()
        self.assertEqual(self.call("GET", "/apis/apps/v1/namespaces/default/replicasets/rs3")[0], 404)
        self.assertNotIn("ownerReferences", self.ok("GET", "/api/v1/namespaces/default/pods/o1")["metadata"])
        # batch/v1 Jobs orphan by default and say so in a warning
        job = self.ok("POST", "/apis/batch/v1/namespaces/default/jobs",
                      {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                                                  "containers": [{"name": "c", "image": "x"}]}}}},
                      expect=201)
        self.ok("POST", "/api/v1/namespaces/default/pods",
                {"metadata": {"name": "jp", "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j",
                                                                 "uid": job["metadata"]["uid"]}]},
                 "spec": {"containers": [{"name": "c", "image": "x"}]}}, expect=201)
        status, resp, body = self.call("DELETE", "/apis/batch/v1/namespaces/default/jobs/j", {})
        self.assertEqual(status, 200)
        self.assertIn("child pods are preserved by default", resp.getheader("Warning"))
        self.assertIn("orphan", body["metadata"]["finalizers"])
        self.settle()
        self.ok("GET", "/api/v1/namespaces/default/pods/jp")
        # an object whose owner never existed is collected
        self.ok("POST", "/api/v1/namespaces/default/configmaps",
                self.cm("dangling", meta={"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost",
                                                               "uid": "00000000-0000-0000-0000-000000000000"}]}), expect=201)
        self.settle()
        self.assertEqual(self.call("GET", "/api/v1/namespaces/default/configmaps/dangling")[0], 404)

    def test_namespace_lifecycle(self):
        self.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "doomed"}}, expect=201)
        self.create_cm("plain", "doomed")
        self.create_cm("held", "doomed", meta={"finalizers": ["example.com/hold"]})
        out = self.ok("DELETE", "/api/v1/namespaces/doomed")
        self.assertEqual(out["kind"], "Namespace")
        self.assertEqual(out["status"]["phase"], "Terminating")
        self.assertEqual(out["spec"]["finalizers"], ["kubernetes"])
        self.assertTrue(out["metadata"]["deletionTimestamp"])
        status, _, body = self.call("POST", "/api/v1/namespaces/doomed/configmaps", self.cm("late", "doomed"))
        self.assertEqual((status, body["reason"]), (403, "Forbidden"))
        self.assertEqual(body["message"], 'configmaps "late" is forbidden: unable to create new content in namespace '
                                          'doomed because it is being terminated')
        self.settle()
        self.assertEqual(self.names(self.ok("GET", "/api/v1/namespaces/doomed/configmaps")), ["held"])
        self.assertEqual(self.call("GET", "/api/v1/namespaces/doomed/serviceaccounts/default")[0], 404)
        ns = self.ok("GET", "/api/v1/namespaces/doomed")
        conds = {c["type"]: c for c in ns["status"]["conditions"]}
        self.assertEqual(conds["NamespaceFinalizersRemaining"]["status"], "True")
        self.assertIn("example.com/hold in 1 resource instances", conds["NamespaceFinalizersRemaining"]["message"])
        self.ok("PATCH", "/api/v1/namespaces/doomed/configmaps/held", {"metadata": {"finalizers": None}},
                headers={"Content-Type": "application/merge-patch+json"})
        self.settle()
        self.assertEqual(self.call("GET", "/api/v1/namespaces/doomed")[0], 404)
        # the controllers also work by themselves (no settle); Foreground adds the GC finalizer to the namespace
        ns = self.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "quick"}}, expect=201)
        self.create_cm("inside", "quick")
        out = self.ok("DELETE", "/api/v1/namespaces/quick",
                      {"propagationPolicy": "Foreground", "preconditions": {"uid": ns["metadata"]["uid"]}})
        self.assertEqual(out["metadata"]["finalizers"], ["foregroundDeletion"])
        deadline = time.time() + 5
        while self.call("GET", "/api/v1/namespaces/quick")[0] != 404:
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)

    # ---------------------------------------------------------------- faults and control API
    def test_faults_and_request_log(self):
        self.ok("POST", "/_fake/faults", {"method": "GET", "path": r"^/api/v1/pods$", "status": 403, "times": 1})
        status, _, body = self.call("GET", "/api/v1/pods", headers={"Authorization": "Bearer x"})
        self.assertEqual(status, 403)
        self.assertEqual(body["reason"], "Forbidden")
        self.assertEqual(body["message"], 'pods is forbidden: User "system:serviceaccount:driftsweep:driftsweep" cannot '
                                          'list resource "pods" in API group "" at the cluster scope')
        self.assertEqual(body["details"], {"kind": "pods"})
        self.assertEqual(self.call("GET", "/api/v1/pods")[0], 200)  # times exhausted
        self.ok("POST", "/_fake/faults", {"path": "configmaps", "query": "limit=", "status": 429, "retry_after": 3, "times": 2})
        status, resp, body = self.call("GET", "/api/v1/configmaps", query={"limit": 10})
        self.assertEqual((status, body["reason"]), (429, "TooManyRequests"))
        self.assertEqual(resp.getheader("Retry-After"), "3")
        self.assertEqual(body["details"]["retryAfterSeconds"], 3)
        self.assertEqual(self.call("GET", "/api/v1/configmaps")[0], 200)  # query does not match
        self.ok("POST", "/_fake/faults", {"method": "GET", "path": "/version", "delay_ms": 300, "status": None, "times": 1})
        t0 = time.monotonic()
        self.ok("GET", "/version")
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.ok("POST", "/_fake/faults", {"path": "secrets", "status": 500, "times": 1})
        status, _, body = self.call("GET", "/api/v1/secrets")
        self.assertEqual((status, body["reason"]), (500, "InternalError"))
        self.ok("DELETE", "/_fake/faults")
        log = self.ok("GET", "/_fake/requests")
        self.assertEqual(log[0]["path"], "/api/v1/pods")
        self.assertEqual(log[0]["status"], 403)
        self.assertTrue(log[0]["authorization"])
        self.assertFalse(log[1]["authorization"])
        self.assertEqual(log[2]["query"], "limit=10")
        self.assertFalse(any(e["path"].startswith("/_fake") for e in log))
        self.ok("DELETE", "/_fake/requests")
        self.assertEqual(self.ok("GET", "/_fake/requests"), [])

    def test_seed_keeps_timestamps_and_performance(self):
        objs = [self.cm(f"cm-{i:05d}", "default", data={"i": str(i)}) for i in range(5000)]
        objs[0]["metadata"]["creationTimestamp"] = "2020-01-02T03:04:05Z"
        t0 = time.monotonic()
        self.assertEqual(self.ok("POST", "/_fake/seed", objs)["created"], 5000)
        seed_time = time.monotonic() - t0
        self.assertLess(seed_time, 2.0)
        self.assertEqual(self.ok("GET", "/api/v1/namespaces/default/configmaps/cm-00000")["metadata"]["creationTimestamp"],
                         "2020-01-02T03:04:05Z")
        t0 = time.monotonic()
        count, token = 0, None
        while True:
            q = {"limit": 500}
            if token:
                q["continue"] = token
            page = self.ok("GET", "/api/v1/configmaps", query=q)
            count += len(page["items"])
            token = page["metadata"].get("continue")
            if not token:
                break
        list_time = time.monotonic() - t0
        self.assertEqual(count, 5004)
        self.assertLess(list_time, 1.0)

    # ---------------------------------------------------------------- kubectl cross-check
    @unittest.skipUnless(shutil.which("kubectl"), "kubectl not on PATH")
    def test_kubectl(self):
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = os.path.join(tmp, "config")
            with open(kubeconfig, "w") as f:
                f.write(f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    server: http://127.0.0.1:{self.port}
  name: fake
contexts:
- context:
    cluster: fake
    user: tester
    namespace: default
  name: fake
current-context: fake
users:
- name: tester
  user:
    token: not-checked
""")
            env = dict(os.environ, KUBECONFIG=kubeconfig, HOME=tmp, KUBECACHEDIR=os.path.join(tmp, "cache"))

            def kubectl(*args):
                p = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=20)
                self.assertEqual(p.returncode, 0, f"kubectl {' '.join(args)}: {p.stdout}{p.stderr}")
                return p.stdout
            out = kubectl("get", "ns")
            self.assertIn("kube-system", out)
            self.assertIn("Active", out)
            kubectl("create", "configmap", "kc", "--from-literal=a=b")
            cms = json.loads(kubectl("get", "cm", "-A", "-o", "json", "--show-managed-fields"))
            kc = [i for i in cms["items"] if i["metadata"]["name"] == "kc"]
            self.assertEqual(kc[0]["data"], {"a": "b"})
            self.assertEqual(kc[0]["metadata"]["managedFields"][0]["manager"], "kubectl-create")
            self.assertIn("(server dry run)", kubectl("delete", "cm", "kc", "--dry-run=server"))
            self.ok("GET", "/api/v1/namespaces/default/configmaps/kc")
            kubectl("delete", "cm", "kc")
            self.assertEqual(self.call("GET", "/api/v1/namespaces/default/configmaps/kc")[0], 404)
            # a deletion that has to wait for a finalizer (kubectl watches for it)
            self.create_cm("held", meta={"finalizers": ["example.com/hold"]})
            proc = subprocess.Popen(["kubectl", "delete", "cm", "held", "--timeout=15s"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.time() + 10
            while not self.ok("GET", "/api/v1/namespaces/default/configmaps/held")["metadata"].get("deletionTimestamp"):
                self.assertLess(time.time(), deadline)
                time.sleep(0.05)
            self.ok("PATCH", "/api/v1/namespaces/default/configmaps/held", {"metadata": {"finalizers": None}},
                    headers={"Content-Type": "application/merge-patch+json"})
            out, err = proc.communicate(timeout=20)
            self.assertEqual(proc.returncode, 0, out + err)
            kubectl("create", "namespace", "kc-ns")
            self.assertIn("kube-root-ca.crt", kubectl("get", "cm", "-n", "kc-ns"))
            kubectl("delete", "namespace", "kc-ns", "--timeout=15s")
            self.assertEqual(self.call("GET", "/api/v1/namespaces/kc-ns")[0], 404)


if __name__ == "__main__":
    unittest.main()
