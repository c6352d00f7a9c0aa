"""Self-test for the fake Google Cloud REST server (stdlib unittest).

Run from the repository root:  python3 -m unittest tests/gcpserver/test_fake_gcp.py
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "fake_gcp.py")
# What the Rust clients append to every call (see their transport.rs).
COMPUTE_Q = {"$alt": "json", "$apiVersion": "2026-09-01"}
ONEPLATFORM_Q = {"$alt": "json;enum-encoding=int"}
P = "proj-a"
FW = f"/compute/v1/projects/{P}/global/firewalls"
SSL = f"/compute/v1/projects/{P}/global/sslCertificates"
OPS = f"/compute/v1/projects/{P}/global/operations"
SA = f"/v1/projects/{P}/serviceAccounts"
CM = f"/v1/projects/{P}/locations/global"
SQLI = f"/v1/projects/{P}/instances"


def start_server():
    proc = subprocess.Popen([sys.executable, SERVER, "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on 127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()}")
    return proc, int(line.rsplit(":", 1)[1])


def stop_server(proc):
    proc.terminate()
    try:
        return proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()


class FakeGcpTest(unittest.TestCase):
    proc = None
    port = None

    @classmethod
    def setUpClass(cls):
        cls.proc, cls.port = start_server()

    @classmethod
    def tearDownClass(cls):
        stop_server(cls.proc)

    def setUp(self):
        self.call("POST", "/_fake/reset")

    # ---------------------------------------------------------------- helpers
    def call(self, method, path, body=None, query=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        if query:
            path = path + "?" + urllib.parse.urlencode(query)
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode()
        return resp.status, resp, parsed

    def ok(self, method, path, body=None, query=None, expect=200):
        status, _, data = self.call(method, path, body, query)
        self.assertEqual(status, expect, f"{method} {path} -> {status}: {data}")
        return data

    def compute(self, method, path, **kw):
        return self.call(method, path, query={**COMPUTE_Q, **kw.pop("query", {})}, **kw)

    def one(self, method, path, **kw):
        return self.call(method, path, query={**ONEPLATFORM_Q, **kw.pop("query", {})}, **kw)

    def seed(self, **spec):
        spec.setdefault("project", P)
        return self.ok("POST", "/_fake/seed", spec)

    # ---------------------------------------------------------------- Compute
    def test_firewalls_two_pages(self):
        self.seed(firewalls=[{"name": n} for n in ("fw-e", "fw-a", "fw-c", "fw-b", "fw-d")])
        status, _, page1 = self.compute("GET", FW, query={"maxResults": "3"})
        self.assertEqual(status, 200)
        self.assertEqual(page1["kind"], "compute#firewallList")
        self.assertEqual(page1["selfLink"], f"https://www.googleapis.com/compute/v1/projects/{P}/global/firewalls")
        self.assertEqual([f["name"] for f in page1["items"]], ["fw-a", "fw-b", "fw-c"])
        first = page1["items"][0]
        self.assertEqual(first["kind"], "compute#firewall")
        self.assertIsInstance(first["id"], str)
        self.assertTrue(first["id"].isdigit())
        self.assertRegex(first["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[-+]\d\d:\d\d$")
        self.assertEqual(first["selfLink"], f"https://www.googleapis.com/compute/v1/projects/{P}/global/firewalls/fw-a")
        self.assertTrue(first["network"].endswith("/global/networks/default"))
        self.assertIn("nextPageToken", page1)
        status, _, page2 = self.compute("GET", FW, query={"maxResults": "3", "pageToken": page1["nextPageToken"]})
        self.assertEqual(status, 200)
        self.assertEqual([f["name"] for f in page2["items"]], ["fw-d", "fw-e"])
        self.assertNotIn("nextPageToken", page2)
        # the client's parameters reached the server as sent
        log = self.ok("GET", "/_fake/requests")
        self.assertEqual(log[-1]["params"]["$alt"], "json")
        self.assertEqual(log[-1]["params"]["maxResults"], "3")
        # bad token / out-of-range maxResults are 400s in Compute's legacy error shape
        status, _, err = self.compute("GET", FW, query={"pageToken": "garbage"})
        self.assertEqual(status, 400)
        self.assertEqual(err["error"]["errors"][0]["reason"], "invalid")
        self.assertNotIn("status", err["error"])
        status, _, err = self.compute("GET", FW, query={"maxResults": "501"})
        self.assertEqual(status, 400)
        # empty list: no items key
        status, _, empty = self.compute("GET", f"/compute/v1/projects/other/global/firewalls")
        self.assertEqual((status, "items" in empty), (200, False))

    def test_trivial_filter(self):
        self.seed(firewalls=[{"name": "allow-ssh"}, {"name": "allow-http"}, {"name": "deny-all", "disabled": True}])
        _, _, data = self.compute("GET", FW, query={"filter": 'name = "allow-ssh"'})
        self.assertEqual([f["name"] for f in data["items"]], ["allow-ssh"])
        _, _, data = self.compute("GET", FW, query={"filter": "name eq allow-.*"})
        self.assertEqual([f["name"] for f in data["items"]], ["allow-http", "allow-ssh"])
        _, _, data = self.compute("GET", FW, query={"filter": '(name != "allow-ssh") (disabled = false)'})
        self.assertEqual([f["name"] for f in data["items"]], ["allow-http"])
        _, _, data = self.compute("GET", FW, query={"filter": "name = a OR name = b"})  # not trivial: ignored
        self.assertEqual(len(data["items"]), 3)

    def test_delete_operation_pending_then_done(self):
        self.seed(firewalls=[{"name": "fw-old"}])
        status, _, op = self.compute("DELETE", f"{FW}/fw-old")
        self.assertEqual(status, 200)
        self.assertEqual(op["kind"], "compute#operation")
        self.assertEqual(op["operationType"], "delete")
        self.assertEqual(op["status"], "PENDING")
        self.assertEqual(op["targetLink"], f"https://www.googleapis.com/compute/v1/projects/{P}/global/firewalls/fw-old")
        self.assertEqual(op["selfLink"], f"https://www.googleapis.com/compute/v1/projects/{P}/global/operations/{op['name']}")
        self.assertTrue(op["name"].startswith("operation-"))
        self.assertEqual(self.compute("GET", f"{FW}/fw-old")[0], 200)  # still there
        # a second delete while the first runs
        status, _, err = self.compute("DELETE", f"{FW}/fw-old")
        self.assertEqual((status, err["error"]["errors"][0]["reason"]), (400, "resourceNotReady"))
        _, _, polled = self.compute("GET", f"{OPS}/{op['name']}")
        self.assertEqual(polled["status"], "RUNNING")
        self.assertEqual(self.compute("GET", f"{FW}/fw-old")[0], 200)
        _, _, polled = self.compute("GET", f"{OPS}/{op['name']}")
        self.assertEqual(polled["status"], "DONE")
        self.assertEqual(polled["progress"], 100)
        self.assertNotIn("error", polled)
        status, _, err = self.compute("GET", f"{FW}/fw-old")
        self.assertEqual(status, 404)
        self.assertEqual(err["error"]["code"], 404)
        self.assertEqual(err["error"]["errors"][0],
                         {"message": f"The resource 'projects/{P}/global/firewalls/fw-old' was not found",
                          "domain": "global", "reason": "notFound"})
        # operation_polls = 0: DONE in the delete's own answer; wait finishes at once
        self.ok("POST", "/_fake/config", {"operation_polls": 0})
        self.seed(firewalls=[{"name": "fw-2"}, {"name": "fw-3"}])
        _, _, op = self.compute("DELETE", f"{FW}/fw-2")
        self.assertEqual(op["status"], "DONE")
        self.assertEqual(self.compute("GET", f"{FW}/fw-2")[0], 404)
        self.ok("POST", "/_fake/config", {"operation_polls": 5})
        _, _, op = self.compute("DELETE", f"{FW}/fw-3")
        status, _, waited = self.compute("POST", f"{OPS}/{op['name']}/wait")
        self.assertEqual((status, waited["status"]), (200, "DONE"))
        self.assertEqual(self.compute("GET", f"{FW}/fw-3")[0], 404)
        self.assertEqual(self.compute("DELETE", f"{FW}/nope")[0], 404)

    def test_ssl_certificate_in_use_refused(self):
        self.seed(sslCertificates=[{"name": "cert-used"}, {"name": "cert-free"}],
                  targetHttpsProxies=[{"name": "https-proxy", "sslCertificates": ["cert-used"]}],
                  targetSslProxies=[{"name": "ssl-proxy", "certificateMap": "map-1"}])
        _, _, proxy = self.compute("GET", f"/compute/v1/projects/{P}/global/targetHttpsProxies/https-proxy")
        self.assertEqual(proxy["sslCertificates"],
                         [f"https://www.googleapis.com/compute/v1/projects/{P}/global/sslCertificates/cert-used"])
        base64.urlsafe_b64decode(proxy["fingerprint"])
        _, _, sslp = self.compute("GET", f"/compute/v1/projects/{P}/global/targetSslProxies")
        self.assertEqual(sslp["kind"], "compute#targetSslProxyList")
        self.assertEqual(sslp["items"][0]["certificateMap"],
                         f"//certificatemanager.googleapis.com/projects/{P}/locations/global/certificateMaps/map-1")
        # default: refused on the DELETE itself
        status, _, err = self.compute("DELETE", f"{SSL}/cert-used")
        self.assertEqual(status, 400)
        self.assertEqual(err["error"]["errors"][0]["reason"], "resourceInUseByAnotherResource")
        self.assertIn("is already being used by 'projects/proj-a/global/targetHttpsProxies/https-proxy'",
                      err["error"]["message"])
        # selectable: the operation fails instead
        self.ok("POST", "/_fake/config", {"compute_in_use": "operation", "operation_polls": 1})
        _, _, op = self.compute("DELETE", f"{SSL}/cert-used")
        self.assertEqual(op["status"], "PENDING")
        _, _, done = self.compute("GET", f"{OPS}/{op['name']}")
        self.assertEqual(done["status"], "DONE")
        self.assertEqual(done["httpErrorStatusCode"], 400)
        self.assertEqual(done["error"]["errors"][0]["code"], "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE")
        self.assertEqual(self.compute("GET", f"{SSL}/cert-used")[0], 200)
        # an unused one goes
        _, _, op = self.compute("DELETE", f"{SSL}/cert-free")
        _, _, done = self.compute("GET", f"{OPS}/{op['name']}")
        self.assertNotIn("error", done)
        _, _, listed = self.compute("GET", SSL)
        self.assertEqual([c["name"] for c in listed["items"]], ["cert-used"])
        self.assertEqual(listed["items"][0]["type"], "SELF_MANAGED")

    def test_addresses_regional_and_global_aggregated_paged_and_deleted_through_region_operations(self):
        self.seed(addresses=[{"name": "ip-a", "region": "us-central1"}, {"name": "ip-b", "region": "us-central1"},
                             {"name": "ip-c", "region": "europe-west1", "users": ["fr-1"]},
                             {"name": "lb-ip"}])
        agg = f"/compute/v1/projects/{P}/aggregated/addresses"
        _, _, first = self.compute("GET", agg, query={"maxResults": "2"})
        self.assertEqual(first["kind"], "compute#addressAggregatedList")
        self.assertEqual(sorted(first["items"]), ["global", "regions/europe-west1", "regions/us-central1"])
        self.assertEqual([a["name"] for a in first["items"]["global"]["addresses"]], ["lb-ip"])
        self.assertEqual(first["items"]["regions/europe-west1"]["addresses"][0]["status"], "IN_USE")
        _, _, second = self.compute("GET", agg, query={"maxResults": "2", "pageToken": first["nextPageToken"]})
        self.assertEqual([a["name"] for a in second["items"]["regions/us-central1"]["addresses"]], ["ip-b"])
        self.assertNotIn("nextPageToken", second)
        self.assertNotIn("global", second["items"])
        reg = f"/compute/v1/projects/{P}/regions/us-central1/addresses"
        _, _, a = self.compute("GET", f"{reg}/ip-a")
        self.assertEqual((a["status"], a["region"]), ("RESERVED", f"https://www.googleapis.com/compute/v1/projects/{P}/regions/us-central1"))
        status, _, err = self.compute("DELETE", f"/compute/v1/projects/{P}/regions/europe-west1/addresses/ip-c")
        self.assertEqual((status, err["error"]["errors"][0]["reason"]), (400, "resourceInUseByAnotherResource"))
        self.ok("POST", "/_fake/config", {"operation_polls": 1})
        _, _, op = self.compute("DELETE", f"{reg}/ip-a")
        self.assertIn("/regions/us-central1/operations/", op["selfLink"])
        _, _, done = self.compute("GET", f"/compute/v1/projects/{P}/regions/us-central1/operations/{op['name']}")
        self.assertEqual(done["status"], "DONE")
        self.assertEqual(self.compute("GET", f"{reg}/ip-a")[0], 404)
        _, _, op = self.compute("DELETE", f"/compute/v1/projects/{P}/global/addresses/lb-ip")
        self.assertEqual(self.compute("GET", f"{OPS}/{op['name']}")[2]["status"], "DONE")
        self.assertEqual(self.compute("GET", f"/compute/v1/projects/{P}/global/addresses/lb-ip")[0], 404)
        self.ok("POST", "/_fake/config", {"aggregated_unreachables": ["regions/asia-east1"]})
        self.assertEqual(self.compute("GET", agg)[2]["unreachables"], ["regions/asia-east1"])

    def test_forwarding_rules_regional_and_global_aggregated_paged_and_deleted_through_operations(self):
        self.seed(forwardingRules=[{"name": "fr-a", "region": "us-central1", "target": "proxy-a"},
                                   {"name": "fr-b", "region": "us-central1"}, {"name": "fr-web", "target": "web"}])
        agg = f"/compute/v1/projects/{P}/aggregated/forwardingRules"
        _, _, first = self.compute("GET", agg, query={"maxResults": "1"})
        self.assertEqual(first["kind"], "compute#forwardingRuleAggregatedList")
        self.assertEqual([r["name"] for r in first["items"]["global"]["forwardingRules"]], ["fr-web"])
        a = first["items"]["regions/us-central1"]["forwardingRules"][0]
        self.assertEqual(a["target"], f"https://www.googleapis.com/compute/v1/projects/{P}/regions/us-central1/targetHttpsProxies/proxy-a")
        self.assertEqual(a["loadBalancingScheme"], "EXTERNAL_MANAGED")
        self.assertIn("fingerprint", a)
        _, _, second = self.compute("GET", agg, query={"maxResults": "1", "pageToken": first["nextPageToken"]})
        self.assertEqual([r["name"] for r in second["items"]["regions/us-central1"]["forwardingRules"]], ["fr-b"])
        self.assertNotIn("nextPageToken", second)
        glob = f"/compute/v1/projects/{P}/global/forwardingRules"
        _, _, listed = self.compute("GET", glob)
        self.assertEqual(listed["items"][0]["target"], f"https://www.googleapis.com/compute/v1/projects/{P}/global/targetHttpsProxies/web")
        reg = f"/compute/v1/projects/{P}/regions/us-central1/forwardingRules"
        self.assertEqual([r["name"] for r in self.compute("GET", reg)[2]["items"]], ["fr-a", "fr-b"])
        self.ok("POST", "/_fake/config", {"operation_polls": 1})
        _, _, op = self.compute("DELETE", f"{reg}/fr-a")
        self.assertIn("/regions/us-central1/operations/", op["selfLink"])
        self.assertEqual(self.compute("GET", f"/compute/v1/projects/{P}/regions/us-central1/operations/{op['name']}")[2]["status"], "DONE")
        self.assertEqual(self.compute("GET", f"{reg}/fr-a")[0], 404)
        _, _, op = self.compute("DELETE", f"{glob}/fr-web")
        self.assertEqual(self.compute("GET", f"{OPS}/{op['name']}")[2]["status"], "DONE")
        self.assertEqual(self.compute("GET", f"{glob}/fr-web")[0], 404)

    def test_target_proxies_global_and_regional_refused_while_a_forwarding_rule_targets_them(self):
        self.seed(targetHttpProxies=[{"name": "web-http"}, {"name": "reg-http", "region": "us-central1"}],
                  targetTcpProxies=[{"name": "tcp-a"}],
                  forwardingRules=[{"name": "fr-1", "target": "global/targetHttpProxies/web-http"},
                                   {"name": "fr-2", "region": "us-central1",
                                    "target": "regions/us-central1/targetHttpProxies/reg-http"}])
        base = f"/compute/v1/projects/{P}"
        _, _, listed = self.compute("GET", f"{base}/global/targetHttpProxies")
        self.assertEqual([x["name"] for x in listed["items"]], ["web-http"])
        self.assertIn("fingerprint", listed["items"][0])
        _, _, agg = self.compute("GET", f"{base}/aggregated/targetHttpProxies")
        self.assertEqual([x["name"] for x in agg["items"]["regions/us-central1"]["targetHttpProxies"]], ["reg-http"])
        self.assertEqual([x["name"] for x in agg["items"]["global"]["targetHttpProxies"]], ["web-http"])
        reg = f"{base}/regions/us-central1/targetHttpProxies/reg-http"
        status, _, err = self.compute("DELETE", reg)
        self.assertEqual((status, err["error"]["errors"][0]["reason"]), (400, "resourceInUseByAnotherResource"))
        status, _, _ = self.compute("DELETE", f"{base}/global/targetHttpProxies/web-http")
        self.assertEqual(status, 400)
        self.ok("POST", "/_fake/config", {"operation_polls": 0})
        self.compute("DELETE", f"{base}/regions/us-central1/forwardingRules/fr-2")
        _, _, op = self.compute("DELETE", reg)
        self.assertEqual(op["status"], "DONE")
        self.assertEqual(self.compute("GET", reg)[0], 404)
        _, _, op = self.compute("DELETE", f"{base}/global/targetTcpProxies/tcp-a")
        self.assertEqual(self.compute("GET", f"{base}/global/targetTcpProxies/tcp-a")[0], 404)

    def test_lower_load_balancer_parts_paged_linked_and_refused_while_named(self):
        self.seed(urlMaps=[{"name": "web-map", "defaultService": "web-svc",
                            "pathMatchers": [{"name": "pm", "pathRules": [
                                {"paths": ["/s/*"], "service": "global/backendBuckets/assets"}]}]},
                           {"name": "r-map", "region": "us-central1", "defaultService": "r-svc"}],
                  backendServices=[{"name": "web-svc", "healthChecks": ["hc"]},
                                   {"name": "r-svc", "region": "us-central1", "healthChecks": ["r-hc"]},
                                   {"name": "ilb-svc", "region": "us-central1", "loadBalancingScheme": "INTERNAL"}],
                  backendBuckets=[{"name": "assets"}],
                  healthChecks=[{"name": "hc"}, {"name": "heal"}, {"name": "r-hc", "region": "us-central1"}],
                  targetHttpsProxies=[{"name": "web", "urlMap": "web-map"}],
                  targetGrpcProxies=[{"name": "g", "urlMap": "web-map"}],
                  forwardingRules=[{"name": "ilb", "region": "us-central1", "loadBalancingScheme": "INTERNAL",
                                    "backendService": "ilb-svc"}],
                  instanceGroupManagers=[{"name": "mig", "zone": "us-central1-a",
                                          "autoHealingPolicies": [{"healthCheck": "heal"}]},
                                         {"name": "rmig", "region": "us-central1"}])
        base = f"/compute/v1/projects/{P}"
        link = f"https://www.googleapis.com/compute/v1/projects/{P}"
        _, _, page = self.compute("GET", f"{base}/global/healthChecks", query={"maxResults": "1"})
        self.assertEqual([x["name"] for x in page["items"]], ["hc"])
        self.assertIn("nextPageToken", page)
        _, _, page = self.compute("GET", f"{base}/global/healthChecks",
                                  query={"maxResults": "1", "pageToken": page["nextPageToken"]})
        self.assertEqual([x["name"] for x in page["items"]], ["heal"])
        _, _, m = self.compute("GET", f"{base}/global/urlMaps/web-map")
        self.assertEqual(m["defaultService"], f"{link}/global/backendServices/web-svc")
        self.assertEqual(m["pathMatchers"][0]["pathRules"][0]["service"], f"{link}/global/backendBuckets/assets")
        self.assertIn("fingerprint", m)
        _, _, agg = self.compute("GET", f"{base}/aggregated/backendServices")
        self.assertEqual([x["name"] for x in agg["items"]["regions/us-central1"]["backendServices"]],
                         ["ilb-svc", "r-svc"])
        self.assertEqual(agg["items"]["regions/us-central1"]["backendServices"][1]["healthChecks"],
                         [f"{link}/regions/us-central1/healthChecks/r-hc"])
        _, _, groups = self.compute("GET", f"{base}/aggregated/instanceGroupManagers", query={"maxResults": "1"})
        self.assertEqual(list(groups["items"]), ["regions/us-central1"])
        _, _, groups = self.compute("GET", f"{base}/aggregated/instanceGroupManagers",
                                    query={"pageToken": groups["nextPageToken"]})
        mig = groups["items"]["zones/us-central1-a"]["instanceGroupManagers"][0]
        self.assertEqual(mig["autoHealingPolicies"][0]["healthCheck"], f"{link}/global/healthChecks/heal")
        for path in ["global/urlMaps/web-map", "global/backendBuckets/assets", "global/healthChecks/hc",
                     "global/healthChecks/heal", "regions/us-central1/backendServices/ilb-svc",
                     "regions/us-central1/healthChecks/r-hc", "regions/us-central1/backendServices/r-svc"]:
            status, _, err = self.compute("DELETE", f"{base}/{path}")
            self.assertEqual((status, err["error"]["errors"][0]["reason"]), (400, "resourceInUseByAnotherResource"),
                             path)
        self.ok("POST", "/_fake/config", {"operation_polls": 0})
        for path in ["regions/us-central1/urlMaps/r-map", "regions/us-central1/backendServices/r-svc",
                     "regions/us-central1/healthChecks/r-hc", "global/targetGrpcProxies/g",
                     "global/targetHttpsProxies/web", "global/urlMaps/web-map", "global/backendBuckets/assets"]:
            _, _, op = self.compute("DELETE", f"{base}/{path}")
            self.assertEqual(op["status"], "DONE", path)
            self.assertEqual(self.compute("GET", f"{base}/{path}")[0], 404, path)
        state = self.ok("GET", "/_fake/state")["projects"][P]
        self.assertEqual([g["name"] for g in state["instanceGroupManagers"]], ["rmig", "mig"])
        self.assertEqual([s["name"] for s in state["backendServices"]], ["web-svc"])

    def test_every_lower_load_balancer_list_pages_deletes_after_polls_and_takes_faults(self):
        base = f"/compute/v1/projects/{P}"
        two = [{"name": "a"}, {"name": "b"}]
        regional = [{"name": "a", "region": "us-central1"}, {"name": "b", "region": "us-central1"}]
        self.seed(urlMaps=two + regional, backendServices=two + regional, backendBuckets=two,
                  healthChecks=two + regional, targetGrpcProxies=two)
        paths = [f"global/{c}" for c in ("urlMaps", "backendServices", "backendBuckets", "healthChecks",
                                          "targetGrpcProxies")]
        paths += [f"regions/us-central1/{c}" for c in ("urlMaps", "backendServices", "healthChecks")]
        for path in paths:
            _, _, page = self.compute("GET", f"{base}/{path}", query={"maxResults": "1"})
            self.assertEqual([x["name"] for x in page["items"]], ["a"], path)
            self.assertIn("nextPageToken", page, path)
        check = f"{base}/regions/us-central1/healthChecks/a"
        _, _, op = self.compute("DELETE", check)
        self.assertEqual(op["status"], "PENDING")
        self.assertEqual(self.compute("GET", check)[0], 200, "still there while the operation runs")
        op_path = f"{base}/regions/us-central1/operations/{op['name']}"
        while op["status"] != "DONE":
            _, _, op = self.compute("GET", op_path)
        self.assertEqual(self.compute("GET", check)[0], 404)
        self.ok("POST", "/_fake/faults", {"path": "/global/backendBuckets$", "status": 403})
        self.assertEqual(self.compute("GET", f"{base}/global/backendBuckets")[0], 403)
        self.assertEqual(self.compute("GET", f"{base}/global/urlMaps")[0], 200)

    def test_disks_aggregated_snapshot_then_delete_through_zone_operations(self):
        self.seed(disks=[{"name": "data-a", "zone": "us-central1-a"}, {"name": "boot", "zone": "europe-west1-b",
                                                                        "users": ["vm-1"]}])
        agg = f"/compute/v1/projects/{P}/aggregated/disks"
        _, _, listed = self.compute("GET", agg)
        self.assertEqual(sorted(listed["items"]), ["zones/europe-west1-b", "zones/us-central1-a"])
        self.assertEqual(listed["kind"], "compute#diskAggregatedList")
        boot = listed["items"]["zones/europe-west1-b"]["disks"][0]
        self.assertEqual(boot["users"], [f"https://www.googleapis.com/compute/v1/projects/{P}/zones/europe-west1-b/instances/vm-1"])
        status, _, err = self.compute("DELETE", f"/compute/v1/projects/{P}/zones/europe-west1-b/disks/boot")
        self.assertEqual((status, err["error"]["errors"][0]["reason"]), (400, "resourceInUseByAnotherResource"))
        self.ok("POST", "/_fake/config", {"operation_polls": 1})
        zone = f"/compute/v1/projects/{P}/zones/us-central1-a"
        _, _, op = self.compute("POST", f"{zone}/disks/data-a/createSnapshot", body={"name": "final-data-a"})
        self.assertEqual(op["operationType"], "createSnapshot")
        self.assertEqual(self.compute("GET", f"{zone}/operations/{op['name']}")[2]["status"], "DONE")
        _, _, snap = self.compute("GET", f"/compute/v1/projects/{P}/global/snapshots/final-data-a")
        self.assertTrue(snap["sourceDisk"].endswith("/zones/us-central1-a/disks/data-a"))
        _, _, op = self.compute("DELETE", f"{zone}/disks/data-a")
        self.assertEqual(self.compute("GET", f"{zone}/operations/{op['name']}")[2]["status"], "DONE")
        self.assertEqual(self.compute("GET", f"{zone}/disks/data-a")[0], 404)

    def test_snapshots_paged_with_their_disk_and_schedule_and_deleted_through_global_operations(self):
        self.seed(disks=[{"name": "data", "zone": "us-central1-a", "resourcePolicies": ["daily"]}])
        snaps = [{"name": f"snap-{i:03}", "sourceDisk": "us-central1-a/data"} for i in range(3)]
        snaps.append({"name": "auto-1", "sourceDisk": "us-central1-a/data", "sourceSnapshotSchedulePolicy": "daily",
                      "creationTimestamp": "2025-01-01T00:00:00.000-08:00", "labels": {"k": "v"}})
        self.seed(snapshots=snaps)
        coll = f"/compute/v1/projects/{P}/global/snapshots"
        _, _, page = self.compute("GET", coll, query={"maxResults": "2"})
        self.assertEqual(page["kind"], "compute#snapshotList")
        self.assertEqual([s["name"] for s in page["items"]], ["auto-1", "snap-000"])
        _, _, rest = self.compute("GET", coll, query={"maxResults": "2", "pageToken": page["nextPageToken"]})
        self.assertEqual([s["name"] for s in rest["items"]], ["snap-001", "snap-002"])
        self.assertNotIn("nextPageToken", rest)
        auto = page["items"][0]
        _, _, listed = self.compute("GET", f"/compute/v1/projects/{P}/aggregated/disks")
        data = listed["items"]["zones/us-central1-a"]["disks"][0]
        self.assertEqual(auto["sourceDiskId"], data["id"])
        self.assertTrue(auto["autoCreated"])
        self.assertEqual(auto["status"], "READY")
        self.assertEqual(auto["creationTimestamp"], "2025-01-01T00:00:00.000-08:00")
        self.assertEqual(auto["sourceSnapshotSchedulePolicy"], data["resourcePolicies"][0])
        self.assertTrue(data["resourcePolicies"][0].endswith("/regions/us-central1/resourcePolicies/daily"))
        self.ok("POST", "/_fake/config", {"operation_polls": 1})
        _, _, op = self.compute("DELETE", f"{coll}/snap-000")
        self.assertEqual(op["targetLink"], f"https://www.googleapis.com/compute/v1/projects/{P}/global/snapshots/snap-000")
        self.assertEqual(self.compute("GET", f"{coll}/snap-000")[0], 200, "gone only when the operation is DONE")
        self.assertEqual(self.compute("GET", f"{OPS}/{op['name']}")[2]["status"], "DONE")
        self.assertEqual(self.compute("GET", f"{coll}/snap-000")[0], 404)

    # ---------------------------------------------------------------- Cloud Logging
    def test_log_sinks_and_buckets_paged_and_deleted(self):
        sinks = [{"name": f"sink-{i:03}", "destination": "audit"} for i in range(3)]
        sinks += [{"name": "_Default", "destination": "_Default"}, {"name": "_Required", "destination": "_Required"}]
        self.seed(logSinks=sinks, logBuckets=[{"name": "_Default"}, {"name": "_Required"}, {"name": "audit"},
                                              {"name": "eu-logs", "location": "europe-west1", "locked": True}])
        lp = f"/v2/projects/{P}"
        _, _, page = self.one("GET", f"{lp}/sinks", query={"pageSize": "3"})
        self.assertEqual([s["name"] for s in page["sinks"]], ["_Default", "_Required", "sink-000"])
        _, _, rest = self.one("GET", f"{lp}/sinks", query={"pageSize": "3", "pageToken": page["nextPageToken"]})
        self.assertEqual([s["name"] for s in rest["sinks"]], ["sink-001", "sink-002"])
        self.assertNotIn("nextPageToken", rest)
        self.assertEqual(rest["sinks"][0]["destination"],
                         f"logging.googleapis.com/projects/{P}/locations/global/buckets/audit")
        _, _, buckets = self.one("GET", f"{lp}/locations/-/buckets")
        names = [b["name"] for b in buckets["buckets"]]
        self.assertIn(f"projects/{P}/locations/europe-west1/buckets/eu-logs", names)
        self.assertEqual(len(names), 4)
        self.assertEqual({b["lifecycleState"] for b in buckets["buckets"]}, {1}, "enum-encoding=int")
        self.assertEqual(self.one("DELETE", f"{lp}/sinks/_Default")[0], 400)
        self.assertEqual(self.one("DELETE", f"{lp}/sinks/sink-000")[0], 200)
        self.assertEqual(self.one("GET", f"{lp}/sinks/sink-000")[0], 404)
        self.assertEqual(self.one("DELETE", f"{lp}/locations/europe-west1/buckets/eu-logs")[0], 400, "locked")
        self.assertEqual(self.one("DELETE", f"{lp}/locations/global/buckets/audit")[0], 200)
        _, _, audit = self.one("GET", f"{lp}/locations/global/buckets/audit")
        self.assertEqual(audit["lifecycleState"], 2, "soft-deleted: DELETE_REQUESTED")
        self.assertEqual(self.one("POST", f"{lp}/locations/global/buckets/audit:undelete")[0], 200)
        # What driftsweep relies on: the "-" list pages across locations, fields it does not
        # know pass through, a soft delete moves updateTime, a re-seeded sink keeps its identity.
        self.seed(logBuckets=[{"name": "lake", "location": "us", "analyticsEnabled": True,
                               "updateTime": "2026-01-01T00:00:00Z"}])
        _, _, first = self.one("GET", f"{lp}/locations/-/buckets", query={"pageSize": "2"})
        seen = [b["name"] for b in first["buckets"]]
        token = first.get("nextPageToken")
        while token:
            _, _, more = self.one("GET", f"{lp}/locations/-/buckets", query={"pageSize": "2", "pageToken": token})
            seen += [b["name"] for b in more["buckets"]]
            token = more.get("nextPageToken")
        self.assertEqual(len(seen), 5, seen)
        self.assertIn(f"projects/{P}/locations/us/buckets/lake", seen)
        _, _, lake = self.one("GET", f"{lp}/locations/us/buckets/lake")
        self.assertIs(lake["analyticsEnabled"], True)
        self.assertEqual(self.one("DELETE", f"{lp}/locations/us/buckets/lake")[0], 200)
        self.assertNotEqual(self.one("GET", f"{lp}/locations/us/buckets/lake")[2]["updateTime"], lake["updateTime"])
        _, _, before = self.one("GET", f"{lp}/sinks/sink-001")
        self.seed(logSinks=[dict(before, destination="storage.googleapis.com/elsewhere")])
        _, _, after = self.one("GET", f"{lp}/sinks/sink-001")
        self.assertEqual((after["createTime"], after["writerIdentity"]), (before["createTime"], before["writerIdentity"]))
        self.assertEqual(after["destination"], "storage.googleapis.com/elsewhere")
        self.ok("POST", "/_fake/faults", {"path": "^/v2/", "status": 403})
        status, _, err = self.one("GET", f"{lp}/sinks")
        self.assertEqual((status, err["error"]["status"]), (403, "PERMISSION_DENIED"))

    # ---------------------------------------------------------------- IAM
    def test_iam_list_disable_patch_delete(self):
        self.seed(serviceAccounts=[{"accountId": "robot-a", "displayName": "A"}, {"accountId": "robot-b"},
                                   {"email": f"robot-c@{P}.iam.gserviceaccount.com", "description": "old"}])
        status, _, page1 = self.one("GET", SA, query={"pageSize": "2"})
        self.assertEqual(status, 200)
        self.assertEqual(len(page1["accounts"]), 2)
        _, _, page2 = self.one("GET", SA, query={"pageSize": "2", "pageToken": page1["nextPageToken"]})
        self.assertEqual([a["email"] for a in page2["accounts"]], [f"robot-c@{P}.iam.gserviceaccount.com"])
        self.assertNotIn("nextPageToken", page2)
        sa = page1["accounts"][0]
        email = f"robot-a@{P}.iam.gserviceaccount.com"
        self.assertEqual(sa["name"], f"projects/{P}/serviceAccounts/{email}")
        self.assertEqual((sa["email"], sa["projectId"], sa["displayName"]), (email, P, "A"))
        self.assertNotIn("disabled", sa)
        self.assertEqual(sa["oauth2ClientId"], sa["uniqueId"])
        base64.b64decode(sa["etag"], validate=True)
        # get via "-" and via the unique id
        self.assertEqual(self.one("GET", f"/v1/projects/-/serviceAccounts/{email}")[2]["name"], sa["name"])
        self.assertEqual(self.one("GET", f"{SA}/{sa['uniqueId']}")[2]["email"], email)
        # disable / enable
        status, _, body = self.one("POST", f"{SA}/{email}:disable", body={})
        self.assertEqual((status, body), (200, {}))
        self.assertIs(self.one("GET", f"{SA}/{email}")[2]["disabled"], True)
        self.one("POST", f"{SA}/{email}:enable", body={})
        self.assertNotIn("disabled", self.one("GET", f"{SA}/{email}")[2])
        # patch (the Rust client strips serviceAccount.name from the body and sends the mask in camelCase)
        status, _, patched = self.one("PATCH", f"{SA}/{email}",
                                      body={"serviceAccount": {"description": "managed by driftsweep",
                                                               "etag": sa["etag"]},
                                            "updateMask": "description"})
        self.assertEqual(status, 200, patched)
        self.assertEqual(patched["description"], "managed by driftsweep")
        self.assertEqual(patched["displayName"], "A")
        self.assertNotEqual(patched["etag"], sa["etag"])
        status, _, err = self.one("PATCH", f"{SA}/{email}", body={"serviceAccount": {"email": "x"},
                                                                  "updateMask": "email"})
        self.assertEqual((status, err["error"]["status"]), (400, "INVALID_ARGUMENT"))
        # delete
        status, _, body = self.one("DELETE", f"{SA}/{email}")
        self.assertEqual((status, body), (200, {}))
        status, _, err = self.one("GET", f"{SA}/{email}")
        self.assertEqual(status, 404)
        self.assertEqual(err, {"error": {"code": 404, "message": "Unknown service account", "status": "NOT_FOUND"}})
        self.assertEqual(len(self.one("GET", SA)[2]["accounts"]), 2)
        # undelete by unique id
        status, _, restored = self.one("POST", f"/v1/projects/-/serviceAccounts/{sa['uniqueId']}:undelete", body={})
        self.assertEqual((status, restored["restoredAccount"]["email"]), (200, email))

    # ---------------------------------------------------------------- Certificate Manager
    def test_certificate_manager_list_and_delete_via_lro(self):
        self.seed(certificates=[{"name": "cert-a", "managed": {"domains": ["a.example.com"]}},
                                {"name": "cert-b"}, {"name": "cert-c"}],
                  certificateMapEntries=[{"map": "map-1", "name": "entry-1", "hostname": "a.example.com",
                                          "certificates": ["cert-a"]}],
                  targetHttpsProxies=[{"name": "lb", "certificateMap": "map-1"}])
        status, _, page1 = self.one("GET", f"{CM}/certificates", query={"pageSize": "2"})
        self.assertEqual(status, 200)
        self.assertEqual([c["name"] for c in page1["certificates"]],
                         [f"projects/{P}/locations/global/certificates/cert-a",
                          f"projects/{P}/locations/global/certificates/cert-b"])
        self.assertEqual(page1["certificates"][0]["managed"]["state"], 3)  # ACTIVE, enum-encoding=int
        self.assertRegex(page1["certificates"][0]["createTime"], r"Z$")
        _, _, page2 = self.one("GET", f"{CM}/certificates", query={"pageSize": "2",
                                                                  "pageToken": page1["nextPageToken"]})
        self.assertEqual(len(page2["certificates"]), 1)
        self.assertNotIn("nextPageToken", page2)
        # without enum-encoding=int the enums are strings
        _, _, plain = self.call("GET", f"{CM}/certificates/cert-a", query={"$alt": "json"})
        self.assertEqual(plain["managed"]["state"], "ACTIVE")
        # maps and entries
        _, _, maps = self.one("GET", f"{CM}/certificateMaps")
        self.assertEqual(maps["certificateMaps"][0]["gclbTargets"],
                         [{"targetHttpsProxy": f"//compute.googleapis.com/projects/{P}/global/targetHttpsProxies/lb"}])
        _, _, entries = self.one("GET", f"{CM}/certificateMaps/map-1/certificateMapEntries")
        entry = entries["certificateMapEntries"][0]
        self.assertEqual(entry["certificates"], [f"projects/{P}/locations/global/certificates/cert-a"])
        self.assertEqual((entry["hostname"], entry["state"]), ("a.example.com", 1))
        self.assertEqual(self.one("GET", f"{CM}/certificateMaps/-/certificateMapEntries")[0], 404)
        self.ok("POST", "/_fake/config", {"cm_entries_wildcard": True})
        self.assertEqual(len(self.one("GET", f"{CM}/certificateMaps/-/certificateMapEntries")[2]
                             ["certificateMapEntries"]), 1)
        # delete an unused certificate: LRO, removed only when done
        status, _, op = self.one("DELETE", f"{CM}/certificates/cert-b")
        self.assertEqual(status, 200)
        self.assertRegex(op["name"], rf"^projects/{P}/locations/global/operations/operation-")
        self.assertFalse(op.get("done", False))
        self.assertEqual(op["metadata"]["@type"],
                         "type.googleapis.com/google.cloud.certificatemanager.v1.OperationMetadata")
        self.assertEqual(op["metadata"]["target"], f"projects/{P}/locations/global/certificates/cert-b")
        self.assertEqual(op["metadata"]["verb"], "delete")
        _, _, polled = self.one("GET", f"/v1/{op['name']}")
        self.assertFalse(polled.get("done", False))
        self.assertEqual(self.one("GET", f"{CM}/certificates/cert-b")[0], 200)
        _, _, polled = self.one("GET", f"/v1/{op['name']}")
        self.assertIs(polled["done"], True)
        self.assertEqual(polled["response"], {"@type": "type.googleapis.com/google.protobuf.Empty"})
        self.assertIn("endTime", polled["metadata"])
        status, _, err = self.one("GET", f"{CM}/certificates/cert-b")
        self.assertEqual((status, err["error"]["status"]), (404, "NOT_FOUND"))
        # a certificate named by a map entry: the operation fails with FAILED_PRECONDITION (9)
        _, _, op = self.one("DELETE", f"{CM}/certificates/cert-a")
        self.one("GET", f"/v1/{op['name']}")
        _, _, polled = self.one("GET", f"/v1/{op['name']}")
        self.assertIs(polled["done"], True)
        self.assertEqual(polled["error"]["code"], 9)
        self.assertNotIn("response", polled)
        self.assertEqual(self.one("GET", f"{CM}/certificates/cert-a")[0], 200)
        # or the DELETE itself is refused
        self.ok("POST", "/_fake/config", {"cm_in_use": "request"})
        status, _, err = self.one("DELETE", f"{CM}/certificates/cert-a")
        self.assertEqual((status, err["error"]["status"]), (400, "FAILED_PRECONDITION"))

    # ---------------------------------------------------------------- faults
    # ---------------------------------------------------------------- Cloud SQL
    def test_sql_instances_pages_enums_and_replicas(self):
        self.seed(sqlInstances=[{"name": f"db-{i}"} for i in range(3)] +
                  [{"name": "db-0-replica", "masterInstanceName": "db-0"}])
        status, _, page1 = self.one("GET", SQLI, query={"maxResults": "2"})
        self.assertEqual(status, 200)
        self.assertEqual([i["name"] for i in page1["items"]], ["db-0", "db-0-replica"])
        self.assertEqual(page1["items"][0]["state"], 1, "RUNNABLE as a number")
        self.assertEqual(page1["items"][0]["replicaNames"], ["db-0-replica"])
        self.assertEqual(page1["items"][1]["instanceType"], 3)
        self.assertEqual(page1["items"][0]["connectionName"], f"{P}:us-central1:db-0")
        status, _, page2 = self.one("GET", SQLI, query={"maxResults": "2", "pageToken": page1["nextPageToken"]})
        self.assertEqual([i["name"] for i in page2["items"]], ["db-1", "db-2"])
        self.assertNotIn("nextPageToken", page2)
        status, _, named = self.call("GET", f"{SQLI}/db-1")
        self.assertEqual((status, named["state"]), (200, "RUNNABLE"))
        self.assertEqual(self.one("GET", f"{SQLI}/nope")[0], 404)
        self.ok("POST", "/_fake/config", {"sql_unreachable_regions": ["asia-east1"]})
        _, _, warned = self.one("GET", SQLI)
        self.assertEqual(warned["warnings"][0]["code"], 1)
        # a primary with a replica, and a protected instance, refuse deletion
        status, _, err = self.one("DELETE", f"{SQLI}/db-0")
        self.assertEqual((status, err["error"]["status"]), (400, "FAILED_PRECONDITION"))

    def test_sql_backup_then_delete_through_operations_leaves_a_final_backup(self):
        self.ok("POST", "/_fake/config", {"operation_polls": 2})
        self.seed(sqlInstances=[{"name": "old", "settings": {"deletionProtectionEnabled": True}},
                                {"name": "gone"}])
        self.assertEqual(self.one("DELETE", f"{SQLI}/old")[0], 400)
        status, _, op = self.one("POST", f"{SQLI}/gone/backupRuns", body={"description": "before"})
        self.assertEqual((status, op["status"], op["operationType"]), (200, 1, 9))
        opath = f"/v1/projects/{P}/operations/{op['name']}"
        self.assertEqual(self.one("GET", opath)[2]["status"], 2)
        self.assertEqual(self.one("GET", opath)[2]["status"], 3)
        _, _, runs = self.one("GET", f"{SQLI}/gone/backupRuns")
        self.assertEqual([(r["type"], r["status"], r["description"]) for r in runs["items"]], [(2, 5, "before")])
        _, _, op = self.one("DELETE", f"{SQLI}/gone", query={"enableFinalBackup": "true", "finalBackupTtlDays": "7"})
        opath = f"/v1/projects/{P}/operations/{op['name']}"
        self.one("GET", opath)
        self.assertEqual(self.one("GET", f"{SQLI}/gone")[0], 200, "gone only when DONE")
        self.assertEqual(self.one("GET", opath)[2]["status"], 3)
        self.assertEqual(self.one("GET", f"{SQLI}/gone")[0], 404)
        backups = self.ok("GET", "/_fake/state")["projects"][P]["sqlBackups"]
        self.assertEqual([(b["type"], b["instance"]) for b in backups], [("FINAL", "gone")])
        # a failing backup ends its operation with an error and leaves no run
        self.ok("POST", "/_fake/config", {"operation_polls": 0, "sql_backup_error": True})
        self.seed(sqlInstances=[{"name": "again"}])
        _, _, op = self.one("POST", f"{SQLI}/again/backupRuns", body={})
        self.assertEqual(op["status"], 3)
        self.assertEqual(op["error"]["errors"][0]["code"], "BACKUP_FAILED")
        self.assertNotIn("items", self.one("GET", f"{SQLI}/again/backupRuns")[2])

    def test_sql_backup_runs_and_project_backups_page_get_and_delete_through_operations(self):
        self.ok("POST", "/_fake/config", {"operation_polls": 1})
        self.seed(sqlInstances=[{"name": "db"}],
                  sqlBackupRuns=[{"instance": "db", "id": str(i), "enqueuedTime": f"2026-01-0{i}T00:00:00Z"}
                                 for i in range(1, 4)],
                  sqlBackups=[{"instance": "gone", "id": f"b{i}", "startTime": "2025-01-01T00:00:00Z"}
                              for i in range(3)])
        _, _, page1 = self.one("GET", f"{SQLI}/db/backupRuns", query={"maxResults": "2"})
        self.assertEqual([r["id"] for r in page1["items"]], ["3", "2"], "newest first")
        self.assertEqual(page1["items"][0]["status"], 5)
        _, _, page2 = self.one("GET", f"{SQLI}/db/backupRuns",
                               query={"maxResults": "2", "pageToken": page1["nextPageToken"]})
        self.assertEqual([r["id"] for r in page2["items"]], ["1"])
        self.assertEqual(self.one("GET", f"{SQLI}/db/backupRuns/2")[2]["type"], 1)
        self.assertEqual(self.one("GET", f"{SQLI}/db/backupRuns/9")[0], 404)
        _, _, op = self.one("DELETE", f"{SQLI}/db/backupRuns/2")
        self.assertEqual(op["operationType"], 10)
        self.assertEqual(self.one("GET", f"{SQLI}/db/backupRuns/2")[0], 200, "gone only when DONE")
        self.assertEqual(self.one("GET", f"/v1/projects/{P}/operations/{op['name']}")[2]["status"], 3)
        self.assertEqual(self.one("GET", f"{SQLI}/db/backupRuns/2")[0], 404)
        backups = f"/v1/projects/{P}/backups"
        _, _, b1 = self.one("GET", backups, query={"pageSize": "2"})
        self.assertEqual([b["name"] for b in b1["backups"]], [f"projects/{P}/backups/b0", f"projects/{P}/backups/b1"])
        self.assertEqual((b1["backups"][0]["type"], b1["backups"][0]["state"]), (3, 4))
        self.assertEqual(b1["backups"][0]["backupInterval"]["startTime"], "2025-01-01T00:00:00Z")
        _, _, b2 = self.one("GET", backups, query={"pageSize": "2", "pageToken": b1["nextPageToken"]})
        self.assertEqual(len(b2["backups"]), 1)
        self.assertNotIn("nextPageToken", b2)
        self.assertEqual(self.one("GET", f"{backups}/b1")[2]["instance"], "gone")
        _, _, op = self.one("DELETE", f"{backups}/b1")
        self.assertEqual(op["operationType"], 26)
        self.one("GET", f"/v1/projects/{P}/operations/{op['name']}")
        self.assertEqual(self.one("GET", f"{backups}/b1")[0], 404)
        self.ok("POST", "/_fake/faults", {"path": "/backupRuns$", "status": 403})
        self.assertEqual(self.one("GET", f"{SQLI}/db/backupRuns")[0], 403)
        self.assertEqual(self.one("GET", backups)[0], 200, "a fault protects only its path")

    def test_sql_403_protects_only_its_api(self):
        self.seed(sqlInstances=[{"name": "db"}], serviceAccounts=[{"accountId": "robot-x"}])
        self.ok("POST", "/_fake/config", {"disabled_services": {P: ["sqladmin.googleapis.com"]}})
        status, _, err = self.one("GET", SQLI)
        self.assertEqual(status, 403)
        self.assertEqual(err["error"]["details"][0]["metadata"]["service"], "sqladmin.googleapis.com")
        self.assertEqual(self.one("GET", SA)[0], 200)

    def test_service_disabled_403_shape(self):
        self.ok("POST", "/_fake/faults", {"path": "^/compute/", "status": 403, "reason": "SERVICE_DISABLED"})
        status, _, err = self.compute("GET", FW)
        self.assertEqual(status, 403)
        e = err["error"]
        self.assertEqual((e["code"], e["status"]), (403, "PERMISSION_DENIED"))
        self.assertIn("Compute Engine API has not been used in project", e["message"])
        self.assertEqual(e["errors"][0]["reason"], "accessNotConfigured")
        self.assertEqual(e["errors"][0]["domain"], "usageLimits")
        info = e["details"][0]
        self.assertEqual(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo")
        self.assertEqual((info["reason"], info["domain"]), ("SERVICE_DISABLED", "googleapis.com"))
        self.assertEqual(info["metadata"]["service"], "compute.googleapis.com")
        self.assertRegex(info["metadata"]["consumer"], r"^projects/\d+$")
        self.assertEqual({d["@type"] for d in e["details"][1:]},
                         {"type.googleapis.com/google.rpc.LocalizedMessage", "type.googleapis.com/google.rpc.Help"})
        # IAM (a newer API) answers without the legacy "errors" list; here via the config switch
        self.ok("DELETE", "/_fake/faults")
        self.ok("POST", "/_fake/config", {"disabled_services": {P: ["iam.googleapis.com"]}})
        status, _, err = self.one("GET", SA)
        self.assertEqual(status, 403)
        self.assertNotIn("errors", err["error"])
        self.assertEqual(err["error"]["details"][0]["metadata"]["service"], "iam.googleapis.com")
        self.assertEqual(self.one("GET", "/v1/projects/other/serviceAccounts")[0], 200)

    def test_429_then_success(self):
        self.seed(certificates=[{"name": "cert-a"}])
        self.ok("POST", "/_fake/faults", {"method": "GET", "path": "/certificates$", "status": 429, "times": 1,
                                          "retry_after": 2})
        status, resp, err = self.one("GET", f"{CM}/certificates")
        self.assertEqual(status, 429)
        self.assertEqual(resp.getheader("Retry-After"), "2")
        self.assertEqual(err["error"]["status"], "RESOURCE_EXHAUSTED")
        self.assertEqual(err["error"]["details"][0]["reason"], "RATE_LIMIT_EXCEEDED")
        status, _, data = self.one("GET", f"{CM}/certificates")
        self.assertEqual(status, 200)
        self.assertEqual(len(data["certificates"]), 1)
        log = self.ok("GET", "/_fake/requests")
        self.assertEqual([(r["status"], r["fault"]) for r in log], [(429, True), (200, False)])
        faults = self.ok("GET", "/_fake/faults")["faults"]
        self.assertEqual((faults[0]["times"], faults[0]["hits"]), (0, 1))
        # Compute 429s also carry the legacy errors list
        self.ok("POST", "/_fake/faults", {"path": "firewalls", "status": 429, "times": 1})
        status, resp, err = self.compute("GET", FW)
        self.assertEqual((status, err["error"]["errors"][0]["reason"]), (429, "rateLimitExceeded"))
        self.assertIsNone(resp.getheader("Retry-After"))

    def test_state_log_reset(self):
        self.seed(firewalls=[{"name": "fw"}], serviceAccounts=[{"accountId": "robot-x"}],
                  certificates=[{"name": "c"}])
        self.compute("GET", FW)
        state = self.ok("GET", "/_fake/state")
        proj = state["projects"][P]
        self.assertEqual([f["name"] for f in proj["firewalls"]], ["fw"])
        self.assertEqual(len(proj["serviceAccounts"]), 1)
        self.assertEqual(len(proj["locations"]["global"]["certificates"]), 1)
        self.assertEqual(len(self.ok("GET", "/_fake/requests")), 1)  # control calls are not logged
        self.ok("DELETE", "/_fake/requests")
        self.assertEqual(self.ok("GET", "/_fake/requests"), [])
        self.ok("POST", "/_fake/reset")
        self.assertEqual(self.ok("GET", "/_fake/state")["projects"], {})
        status, _, _ = self.call("POST", "/_fake/seed", {"project": P, "firewall": []})
        self.assertEqual(status, 400)


class LifecycleTest(unittest.TestCase):
    def test_sigterm_exits_zero(self):
        proc, port = start_server()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/_fake/config")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(stop_server(proc), 0)


if __name__ == "__main__":
    unittest.main()
