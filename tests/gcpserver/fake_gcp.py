#!/usr/bin/env python3
"""A fake Google Cloud REST server for driftsweep's integration tests (Python 3.11, stdlib only).

    python3 tests/gcpserver/fake_gcp.py --port 8081        (--port 0 picks a free port)

Binds 127.0.0.1 only, plain HTTP/1.1 (keep-alive), prints "listening on 127.0.0.1:PORT", exits 0 on
SIGTERM/SIGINT. Credentials are accepted and ignored (the Rust clients run with anonymous credentials
and `with_endpoint("http://127.0.0.1:PORT")`). Any project id and location are accepted; state is kept
per project (and per location for Certificate Manager).

It serves the HTTP+JSON surface that the official Rust clients send, taken from their generated
transport.rs (google-cloud-compute-v1 4.1.0, google-cloud-iam-admin-v1 1.13.0,
google-cloud-certificatemanager-v1 1.16.0). Those clients always add `$alt=json` (Compute, plus
`$apiVersion=...`) or `$alt=json;enum-encoding=int` (IAM, Certificate Manager); with the latter, enum
fields are answered as numbers, as Google's servers do. Zero-valued enum fields are omitted.

Compute Engine v1 (kind/selfLink/id-as-string/creationTimestamp with offset, www.googleapis.com links):
  GET    /compute/v1/projects/{p}/global/{coll}                    list: maxResults (0..500, default 500),
                                                                  pageToken -> nextPageToken, orderBy
                                                                  ("name", "creationTimestamp desc"),
                                                                  filter when trivial (see below), else ignored
  GET    /compute/v1/projects/{p}/global/{coll}/{name}             get
  DELETE /compute/v1/projects/{p}/global/{coll}/{name}             -> compute#operation (PENDING)
         coll = firewalls | sslCertificates | targetHttpsProxies | targetSslProxies | addresses (global)
                | forwardingRules (global)
  GET    /compute/v1/projects/{p}/aggregated/addresses             addresses.aggregatedList: items {"regions/R":
                                                                  {"addresses": [...]}, "global": ...}, paged
                                                                  over the regional ones; config
                                                                  aggregated_unreachables fills `unreachables`
  GET    /compute/v1/projects/{p}/regions/{r}/{rcoll}[/{name}]     list / get
  DELETE /compute/v1/projects/{p}/regions/{r}/{rcoll}/{name}       -> compute#operation (regional)
         rcoll = addresses | forwardingRules; both also through aggregated/{rcoll}
  GET    /compute/v1/projects/{p}/regions/{r}/operations/{op}      get (a poll);  POST .../wait
  GET    /compute/v1/projects/{p}/aggregated/disks                 disks.aggregatedList ({"zones/Z": {"disks": [...]}})
  GET    /compute/v1/projects/{p}/zones/{z}/disks/{d}              get;  DELETE -> zonal operation (400
                                                                  resourceInUseByAnotherResource while it has users)
  POST   /compute/v1/projects/{p}/zones/{z}/disks/{d}/createSnapshot   {"name", ...} -> zonal operation; the
                                                                  snapshot appears in global/snapshots when DONE
  GET    /compute/v1/projects/{p}/zones/{z}/operations/{op}        get (a poll);  POST .../wait
  Disks are seeded with "zone" (default us-central1-a); "users" (instance names) attach them;
  "resourcePolicies" (snapshot schedule names, in the disk's region) are expanded to links.
  GET    /compute/v1/projects/{p}/global/snapshots[/{s}]          list (paged) / get;  DELETE -> global operation
  Snapshots are seeded with "sourceDisk" ("zone/name"; the seeded disk's id becomes sourceDiskId),
  "sourceSnapshotSchedulePolicy" ("name" or "region/name"; sets autoCreated), "status" (default READY),
  "labels" and "creationTimestamp".
  Addresses are seeded with "region" (regional) or without (global); users (short forwarding rule names
  are expanded) make them IN_USE, else RESERVED. Deleting one with users answers 400
  resourceInUseByAnotherResource. Forwarding rules likewise take "region" or not; a short "target" is
  expanded to a targetHttpsProxy of their scope ("global/targetTcpProxies/x", "regions/R/targetHttpProxies/x"
  name others); loadBalancingScheme defaults to EXTERNAL_MANAGED, and each has a fingerprint.
  Target proxies: global targetHttpProxies | targetHttpsProxies | targetSslProxies | targetTcpProxies,
  regional (seeded with "region") targetHttpProxies | targetHttpsProxies | targetTcpProxies, also through
  aggregated/{coll}. Deleting a proxy a forwarding rule targets answers 400 resourceInUseByAnotherResource.
  Load balancer parts below the proxies: global urlMaps | backendServices | backendBuckets | healthChecks |
  targetGrpcProxies, regional (seeded with "region") urlMaps | backendServices | healthChecks, also through
  aggregated/{coll}. Seeded links (a short name is a part of the seeded one's own scope; "global/C/x",
  "regions/R/C/x" and links also work): a URL map's defaultService, pathMatchers[].defaultService and
  pathMatchers[].pathRules[]/routeRules[].service; a backend service's healthChecks; a gRPC proxy's urlMap; a
  forwarding rule's backendService. Deleting a part something still names answers 400
  resourceInUseByAnotherResource: a URL map a HTTP(S)/gRPC proxy names; a backend service or bucket named
  anywhere in a URL map, a backend service a TCP/SSL proxy or forwarding rule names; a health check a
  backend service or an instance group manager's autoHealingPolicies names.
  GET    /compute/v1/projects/{p}/aggregated/instanceGroupManagers zonal ("zone", default us-central1-a) and
                                                                  regional ("region") groups by scope, paged
  GET    /compute/v1/projects/{p}/global/operations[/{op}]         list / get (each get is one "poll")
  POST   /compute/v1/projects/{p}/global/operations/{op}/wait      finishes the operation at once
  DELETE /compute/v1/projects/{p}/global/operations/{op}           -> 204
  An operation is PENDING when returned by the delete, RUNNING after each poll, and DONE on poll number
  `operation_polls` (config, default 2; 0 = DONE in the delete's own answer). The resource disappears
  only when its operation turns DONE. A second delete of a resource whose delete is still running
  answers 400 resourceNotReady. Deleting an sslCertificate that a targetHttpsProxy/targetSslProxy lists
  answers 400 `resourceInUseByAnotherResource` on the DELETE itself (what the real API does), or, with
  config compute_in_use="operation", an operation that ends DONE with
  error.errors[0].code RESOURCE_IN_USE_BY_ANOTHER_RESOURCE and httpErrorStatusCode 400.
  Compute errors use the API's legacy body {"error": {"code", "message", "errors": [{"message",
  "domain", "reason"}]}} without "status" (config compute_error_status=true adds it).
  Trivial filters: `name = "x"`, `name != x`, `name eq "re"`, `name ne re`, `field:*`, and several
  parenthesised ones ANDed: `(a = "x") (b != "y")`; dotted fields are looked up in the resource JSON.

IAM v1:
  GET    /v1/projects/{p}/serviceAccounts                          list: pageSize (default 20, max 100),
                                                                  pageToken -> nextPageToken, "accounts"
  POST   /v1/projects/{p}/serviceAccounts                          create {"accountId", "serviceAccount"}
  GET    /v1/projects/{p|-}/serviceAccounts/{email|uniqueId}       get
  PATCH  /v1/projects/{p|-}/serviceAccounts/{email|uniqueId}       {"serviceAccount": {...}, "updateMask":
                                                                  "description,displayName"} -> account
  PUT    same                                                      update (displayName/description) -> account
  DELETE same                                                      -> {}
  POST   same:disable | :enable                                    -> {}
  POST   /v1/projects/-/serviceAccounts/{uniqueId}:undelete        -> {"restoredAccount": {...}}
  Missing accounts: 404 NOT_FOUND "Unknown service account".

Certificate Manager v1 (l = any location, usually "global"):
  GET    /v1/projects/{p}/locations/{l}/certificates               list: pageSize (default 50, max 1000),
                                                                  pageToken, filter (trivial), orderBy
  GET    /v1/projects/{p}/locations/{l}/certificates/{c}           get
  DELETE /v1/projects/{p}/locations/{l}/certificates/{c}           -> google.longrunning.Operation
  GET    /v1/projects/{p}/locations/{l}/certificateMaps[/{m}]      list / get (gclbTargets are derived
                                                                  from seeded target proxies naming the map)
  DELETE /v1/projects/{p}/locations/{l}/certificateMaps/{m}        -> Operation (fails while it has entries)
  GET    /v1/projects/{p}/locations/{l}/certificateMaps/{m}/certificateMapEntries[/{e}]   list / get
  DELETE /v1/projects/{p}/locations/{l}/certificateMaps/{m}/certificateMapEntries/{e}   -> Operation
  GET    /v1/projects/{p}/locations/{l}/operations[/{op}]          list / get (each get is one "poll")
  DELETE /v1/projects/{p}/locations/{l}/operations/{op}            -> {}
  POST   /v1/projects/{p}/locations/{l}/operations/{op}:cancel     -> {} (op ends with error code 1)
  Operations answer done:false with OperationMetadata until poll number `operation_polls`, then
  done:true with response {"@type": ".../google.protobuf.Empty"} (the resource is removed then) or
  error {"code", "message"}. A certificate named by a certificate map entry is not deleted: its
  operation ends with error code 9 (FAILED_PRECONDITION); config cm_in_use="request" answers the DELETE
  itself with 400 FAILED_PRECONDITION instead. Listing entries of map "-" answers 404 (the API does not
  document a wildcard) unless config cm_entries_wildcard=true.

Cloud Logging v2 (ConfigServiceV2; enums as numbers with enum-encoding=int):
  GET    /v2/projects/{p}/sinks                                    list: pageSize (default 100, max 1000),
                                                                  pageToken -> nextPageToken, "sinks"
  GET    /v2/projects/{p}/sinks/{s}                                get;  DELETE -> {} (_Default, _Required: 400)
  GET    /v2/projects/{p}/locations/{l|-}/buckets                  list ("-": every location), paged, "buckets"
  GET    /v2/projects/{p}/locations/{l}/buckets/{b}                get
  DELETE /v2/projects/{p}/locations/{l}/buckets/{b}                -> {}; soft: lifecycleState DELETE_REQUESTED
                                                                  (400 FAILED_PRECONDITION when locked, built in or
                                                                  already deleted);  POST .../{b}:undelete
  Sinks are seeded with "name", "destination" (a bucket id, "LOCATION/BUCKET", or a full destination),
  "filter", "disabled", "createTime"; buckets with "name", "location" (default global), "locked",
  "lifecycleState", "createTime" (_Required is locked).
Cloud SQL Admin v1 (google-cloud-sql-v1 2.12.0; enums as numbers with `enum-encoding=int`, except
databaseVersion; errors in the google.rpc style):
  GET    /v1/projects/{p}/instances                                list: maxResults (default and max 500),
                                                                  pageToken -> nextPageToken, "items"; config
                                                                  sql_unreachable_regions adds REGION_UNREACHABLE
                                                                  warnings
  GET    /v1/projects/{p}/instances/{i}                            get (replicaNames derived from the instances
                                                                  whose masterInstanceName names it)
  DELETE /v1/projects/{p}/instances/{i}                            -> sql#operation DELETE; 400 FAILED_PRECONDITION
                                                                  while settings.deletionProtectionEnabled or while
                                                                  it has replicas. enableFinalBackup=true (+
                                                                  finalBackupTtlDays, finalBackupDescription) leaves
                                                                  a FINAL project backup when the operation is DONE;
                                                                  the instance's backup runs go with it
  GET    /v1/projects/{p}/instances/{i}/backupRuns                 list, newest first, maxResults (default 100)
  POST   /v1/projects/{p}/instances/{i}/backupRuns                 insert -> sql#operation BACKUP_VOLUME; an ON_DEMAND
                                                                  SUCCESSFUL run appears when DONE (config
                                                                  sql_backup_error: the operation ends with an error);
                                                                  400 for a read replica
  GET    /v1/projects/{p}/instances/{i}/backupRuns/{id}            get;  DELETE -> sql#operation DELETE_VOLUME, the
                                                                  run gone when DONE
  GET    /v1/projects/{p}/backups                                  the project's backups: pageSize (default 500, max
                                                                  2000), pageToken -> nextPageToken, "backups"
  GET    /v1/projects/{p}/backups/{id}                             get;  DELETE -> sql#operation DELETE_BACKUP, the
                                                                  backup gone when DONE
  GET    /v1/projects/{p}/operations/{op}                          get (a poll): PENDING, RUNNING, DONE after
                                                                  `operation_polls` polls
  Instances are seeded ("sqlInstances") with region (default us-central1), state RUNNABLE, settings
  (settingsVersion, deletionProtectionEnabled false), a private IP, connectionName p:region:name;
  "masterInstanceName" makes a READ_REPLICA_INSTANCE. Backup runs are seeded as "sqlBackupRuns" with
  "instance" (status SUCCESSFUL, type AUTOMATED, times now unless given); project backups as "sqlBackups"
  with "instance" and "id" (type FINAL, state SUCCESSFUL, backupInterval.startTime from "startTime", default
  now; "backupRun", "instanceDeletionTime", "description" kept as given).

Control API (not Google; never written to the request log):
  POST   /_fake/seed       {"project": "p", "location": "global", "projectNumber": "123...",
                            "firewalls": [...], "sslCertificates": [...], "targetHttpsProxies": [...],
                            "targetSslProxies": [...], "serviceAccounts": [...], "certificates": [...],
                            "certificateMaps": [...], "certificateMapEntries": [{"map": "m", ...}],
                            "sqlInstances": [...], "sqlBackupRuns": [{"instance": "i", ...}],
                            "sqlBackups": [{"instance": "i", ...}]}
                           (or a list of such objects). Server-side fields (id, kind, selfLink,
                           creationTimestamp/createTime, fingerprint/etag, uniqueId, full names and links)
                           are filled in unless given. Short references are expanded: proxy
                           sslCertificates ["c"] -> full selfLinks, certificateMap "m" ->
                           //certificatemanager.googleapis.com/projects/p/locations/global/certificateMaps/m,
                           entry certificates ["c"] -> projects/p/locations/l/certificates/c. A map named by
                           an entry is created when missing. -> {"created": n}
  POST   /_fake/faults     append a fault (or a list): {"method": "GET"|null, "path": "<re.search on the
                           decoded path>"|null, "query": "<substring of the decoded query>"|null,
                           "status": 403|429|500|...|null, "retry_after": seconds|null, "delay_ms": int,
                           "times": int|null, "reason": "SERVICE_DISABLED"|"accessNotConfigured"|
                           "rateLimitExceeded"|"forbidden"|..., "message": str|null,
                           "format": "json"|"html"}. The first matching fault with times left applies;
                           status null = delay only. 403 + SERVICE_DISABLED/accessNotConfigured gives the
                           API-disabled body (ErrorInfo SERVICE_DISABLED + LocalizedMessage + Help; Compute
                           also errors[].reason accessNotConfigured); 429 gives RESOURCE_EXHAUSTED with
                           ErrorInfo RATE_LIMIT_EXCEEDED (+ Retry-After when retry_after is set).
  GET    /_fake/faults     the faults with their remaining times and hits
  DELETE /_fake/faults     clear the faults
  POST   /_fake/config     {"operation_polls": n, "compute_in_use": "request"|"operation",
                            "cm_in_use": "operation"|"request", "cm_entries_wildcard": bool,
                            "compute_error_status": bool,
                            "disabled_services": {"project": ["compute.googleapis.com", ...]}}
                           (disabled services answer every call of that project with the API-disabled 403)
  GET    /_fake/config     the config
  GET    /_fake/state      every resource per project (as stored, enums as strings) and the operations
  GET    /_fake/requests   [{"method", "path", "query", "params", "status", "body", "fault", "time",
                             "api_client"}] in order;  DELETE /_fake/requests clears it
  POST   /_fake/reset      empty state, default config, no faults, empty log
  GET    /_fake/help       this text
"""
from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import random
import re
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

COMPUTE_HOST = "https://www.googleapis.com/compute/v1/"
COMPUTE = "compute.googleapis.com"
IAM = "iam.googleapis.com"
CM = "certificatemanager.googleapis.com"
LOGGING = "logging.googleapis.com"
SQL = "sqladmin.googleapis.com"
SQL_HOST = "https://sqladmin.googleapis.com/v1/"
SERVICE_TITLES = {
    LOGGING: "Cloud Logging API",
    COMPUTE: "Compute Engine API",
    IAM: "Identity and Access Management (IAM) API",
    CM: "Certificate Manager API",
    SQL: "Cloud SQL Admin API",
}
DEFAULT_CONFIG = {
    "operation_polls": 2,
    "compute_in_use": "request",
    "cm_in_use": "operation",
    "cm_entries_wildcard": False,
    "compute_error_status": False,
    "disabled_services": {},
    "aggregated_unreachables": [],
    "sql_unreachable_regions": [],
    "sql_backup_error": False,
}
# Cloud SQL Admin enum numbers (google.cloud.sql.v1), for `enum-encoding=int`.
SQL_ENUMS = {
    "state": {"SQL_INSTANCE_STATE_UNSPECIFIED": 0, "RUNNABLE": 1, "SUSPENDED": 2, "PENDING_DELETE": 3,
              "PENDING_CREATE": 4, "MAINTENANCE": 5, "FAILED": 6, "ONLINE_MAINTENANCE": 7, "REPAIRING": 8},
    "instanceType": {"SQL_INSTANCE_TYPE_UNSPECIFIED": 0, "CLOUD_SQL_INSTANCE": 1, "ON_PREMISES_INSTANCE": 2,
                     "READ_REPLICA_INSTANCE": 3, "READ_POOL_INSTANCE": 5},
    "status": {"SQL_OPERATION_STATUS_UNSPECIFIED": 0, "PENDING": 1, "RUNNING": 2, "DONE": 3},
    "operationType": {"SQL_OPERATION_TYPE_UNSPECIFIED": 0, "DELETE": 5, "BACKUP_VOLUME": 9, "DELETE_VOLUME": 10,
                      "DELETE_BACKUP": 26},
    "code": {"SQL_API_WARNING_CODE_UNSPECIFIED": 0, "REGION_UNREACHABLE": 1},
    "runStatus": {"SQL_BACKUP_RUN_STATUS_UNSPECIFIED": 0, "ENQUEUED": 1, "OVERDUE": 2, "RUNNING": 3, "FAILED": 4,
                  "SUCCESSFUL": 5, "SKIPPED": 6, "DELETION_PENDING": 7, "DELETION_FAILED": 8, "DELETED": 9},
    "runType": {"SQL_BACKUP_RUN_TYPE_UNSPECIFIED": 0, "AUTOMATED": 1, "ON_DEMAND": 2},
    "backupState": {"SQL_BACKUP_STATE_UNSPECIFIED": 0, "ENQUEUED": 1, "RUNNING": 2, "FAILED": 3, "SUCCESSFUL": 4,
                    "DELETING": 5, "DELETION_FAILED": 6},
    "backupType": {"SQL_BACKUP_TYPE_UNSPECIFIED": 0, "AUTOMATED": 1, "ON_DEMAND": 2, "FINAL": 3},
}
COMPUTE_COLLECTIONS = {
    "firewalls": ("compute#firewall", "compute#firewallList", "firewall"),
    "sslCertificates": ("compute#sslCertificate", "compute#sslCertificateList", "ssl_certificate"),
    "targetHttpsProxies": ("compute#targetHttpsProxy", "compute#targetHttpsProxyList", "target_https_proxy"),
    "targetSslProxies": ("compute#targetSslProxy", "compute#targetSslProxyList", "target_ssl_proxy"),
    "addresses": ("compute#address", "compute#addressList", "address"),
    "forwardingRules": ("compute#forwardingRule", "compute#forwardingRuleList", "forwarding_rule"),
    "targetHttpProxies": ("compute#targetHttpProxy", "compute#targetHttpProxyList", "target_http_proxy"),
    "targetTcpProxies": ("compute#targetTcpProxy", "compute#targetTcpProxyList", "target_tcp_proxy"),
    "snapshots": ("compute#snapshot", "compute#snapshotList", "snapshot"),
    "urlMaps": ("compute#urlMap", "compute#urlMapList", "url_map"),
    "backendServices": ("compute#backendService", "compute#backendServiceList", "backend_service"),
    "backendBuckets": ("compute#backendBucket", "compute#backendBucketList", "backend_bucket"),
    "healthChecks": ("compute#healthCheck", "compute#healthCheckList", "health_check"),
    "targetGrpcProxies": ("compute#targetGrpcProxy", "compute#targetGrpcProxyList", "target_grpc_proxy"),
}
# The load balancer parts below the proxies (and gRPC proxies), seeded by seed_lb_part.
LB_PARTS = ("urlMaps", "backendServices", "backendBuckets", "healthChecks", "targetGrpcProxies")
# Zonal collections: stored per zone, listed through `aggregated/`.
ZONAL_COLLECTIONS = {"disks": ("compute#disk", "compute#diskList", "disk")}
# Regional collections: stored per region, listed per region and through `aggregated/`.
REGIONAL_COLLECTIONS = {"addresses", "forwardingRules", "targetHttpProxies", "targetHttpsProxies", "targetTcpProxies",
                        "urlMaps", "backendServices", "healthChecks"}
PROXY_COLLECTIONS = ("targetHttpProxies", "targetHttpsProxies", "targetSslProxies", "targetTcpProxies")
GRPC_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
    500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
COMPUTE_REASON = {
    400: "invalid", 401: "required", 403: "forbidden", 404: "notFound", 409: "alreadyExists",
    412: "conditionNotMet", 429: "rateLimitExceeded", 500: "backendError", 501: "notImplemented",
    502: "backendError",
    503: "backendError", 504: "backendError",
}
DEFAULT_MESSAGE = {
    400: "Invalid request.", 401: "Request is missing required authentication credential.",
    403: "The caller does not have permission", 404: "Requested entity was not found.",
    409: "The operation was aborted.", 412: "Precondition check failed.",
    429: "Resource has been exhausted (e.g. check quota).", 500: "Internal error encountered.",
    501: "Operation is not implemented, or supported, or enabled.", 502: "Bad Gateway",
    503: "The service is currently unavailable.", 504: "The request timed out.",
}
HTTP_REASON = {400: "BAD REQUEST", 403: "FORBIDDEN", 404: "NOT FOUND", 409: "CONFLICT", 500: "INTERNAL SERVER ERROR"}
RPC_CODE = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "NOT_FOUND": 5, "ALREADY_EXISTS": 6,
            "PERMISSION_DENIED": 7, "FAILED_PRECONDITION": 9, "ABORTED": 10, "INTERNAL": 13}
# Certificate Manager enum numbers (google.cloud.certificatemanager.v1), for `enum-encoding=int`.
CM_ENUMS = {
    "scope": {"DEFAULT": 0, "EDGE_CACHE": 1, "ALL_REGIONS": 2},
    "managed.state": {"STATE_UNSPECIFIED": 0, "PROVISIONING": 1, "FAILED": 2, "ACTIVE": 3},
    "managed.provisioningIssue.reason": {"REASON_UNSPECIFIED": 0, "AUTHORIZATION_ISSUE": 1, "RATE_LIMITED": 2},
    "managed.authorizationAttemptInfo[].state": {"STATE_UNSPECIFIED": 0, "AUTHORIZING": 1, "AUTHORIZED": 6,
                                                 "FAILED": 7},
    "managed.authorizationAttemptInfo[].failureReason": {"FAILURE_REASON_UNSPECIFIED": 0, "CONFIG": 1, "CAA": 2,
                                                         "RATE_LIMITED": 3},
    "state": {"SERVING_STATE_UNSPECIFIED": 0, "ACTIVE": 1, "PENDING": 2},
    "matcher": {"MATCHER_UNSPECIFIED": 0, "PRIMARY": 1},
}
CM_ENUM_FIELDS = {
    "certificates": ["scope", "managed.state", "managed.provisioningIssue.reason",
                     "managed.authorizationAttemptInfo[].state", "managed.authorizationAttemptInfo[].failureReason"],
    "certificateMapEntries": ["state", "matcher"],
    "certificateMaps": [],
}
FAKE_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUFakeFakeFakeFakeFakeFakeFakeFakeFakeMAoGCCqGSM49\n"
    "BAMCMBgxFjAUBgNVBAMMDWZha2UuZXhhbXBsZTAeFw0yNTAxMDEwMDAwMDBaFw0z\n"
    "NTAxMDEwMDAwMDBaMBgxFjAUBgNVBAMMDWZha2UuZXhhbXBsZTBZMBMGByqGSM49\n"
    "-----END CERTIFICATE-----\n"
)
PACIFIC = timezone(timedelta(hours=-7))


# --------------------------------------------------------------------------------------------- helpers
def compute_ts(dt: datetime | None = None) -> str:
    """Compute's creationTimestamp: RFC 3339 with milliseconds and the Pacific offset."""
    dt = (dt or datetime.now(timezone.utc)).astimezone(PACIFIC)
    return dt.isoformat(timespec="milliseconds")


def rfc3339_z(dt: datetime | None = None) -> str:
    dt = (dt or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}" + "000Z"


def project_number(project: str) -> str:
    return str(100000000000 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % 899999999999)


def last_segment(value: str) -> str:
    return value.rstrip("/").rsplit("/", 1)[-1]


def b64url_token(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        obj = json.loads(raw)
        if not isinstance(obj, dict) or "k" not in obj:
            raise ValueError
        return obj
    except (ValueError, TypeError, UnicodeDecodeError):
        return None


def lookup(obj, dotted: str):
    cur = obj
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def op_suffix(rng: random.Random) -> str:
    return "%013d-%013x-%08x-%08x" % (int(time.time() * 1000), rng.getrandbits(52), rng.getrandbits(32),
                                      rng.getrandbits(32))


class ApiError(Exception):
    """An error answered in the calling API's JSON error format."""

    def __init__(self, status: int, message: str | None = None, reason: str | None = None,
                 grpc: str | None = None, details: list | None = None, errors: list | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message or DEFAULT_MESSAGE.get(status, "Error")
        self.reason = reason
        self.grpc = grpc or GRPC_STATUS.get(status, "UNKNOWN")
        self.details = details
        self.errors = errors
        self.headers = headers or {}


# --------------------------------------------------------------------------------------------- filters
FILTER_TERM = re.compile(r'^\s*([A-Za-z_][\w.]*)\s*(!=|=|:|\beq\b|\bne\b)\s*(?:"((?:[^"\\]|\\.)*)"|(\S+))\s*$')


def parse_filter(text: str | None):
    """Returns a list of (field, op, value) ANDed terms, or None when the filter is not trivial."""
    if not text or not text.strip():
        return []
    text = text.strip()
    groups = re.findall(r"\(([^()]*)\)", text)
    if groups and re.fullmatch(r"(\s*(AND\s+)?\([^()]*\)\s*)+", text):
        parts = groups
    else:
        parts = re.split(r"\s+AND\s+", text)
    terms = []
    for part in parts:
        m = FILTER_TERM.match(part)
        if not m:
            return None
        value = m.group(3) if m.group(3) is not None else m.group(4)
        terms.append((m.group(1), m.group(2), value))
    return terms


def filter_match(obj, terms) -> bool:
    for field, op, value in terms:
        actual = lookup(obj, field)
        if isinstance(actual, bool):
            actual = "true" if actual else "false"
        elif actual is not None and not isinstance(actual, (dict, list)):
            actual = str(actual)
        if op == ":":
            if value == "*":
                ok = actual not in (None, "", [], {})
            elif isinstance(actual, list):
                ok = value in [str(a) for a in actual]
            else:
                ok = actual is not None and value in str(actual)
        elif op in ("eq", "ne"):
            try:
                ok = actual is not None and re.fullmatch(value, str(actual)) is not None
            except re.error:
                return True
            if op == "ne":
                ok = not ok
        else:
            ok = actual == value
            if op == "!=":
                ok = not ok
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------------------------- store
class Store:
    def __init__(self):
        self.lock = threading.RLock()
        self.rng = random.Random()
        self.reset()

    def reset(self):
        self.projects: dict[str, dict] = {}
        self.compute_ops: dict[tuple, dict] = {}
        self.cm_ops: dict[str, dict] = {}
        self.sql_ops: dict[tuple, dict] = {}
        self.faults: list[dict] = []
        self.requests: list[dict] = []
        self.config = copy.deepcopy(DEFAULT_CONFIG)

    # ---- ids
    def compute_id(self) -> str:
        return str(self.rng.randrange(10 ** 18, 9 * 10 ** 18))

    def unique_id(self) -> str:
        return str(self.rng.randrange(10 ** 20, 2 * 10 ** 20))

    def fingerprint(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(8)).decode()

    def etag(self) -> str:
        return base64.b64encode(self.rng.randbytes(8)).decode()

    # ---- projects
    def project(self, pid: str) -> dict:
        p = self.projects.get(pid)
        if p is None:
            p = {
                "number": project_number(pid),
                "compute": {c: {} for c in COMPUTE_COLLECTIONS},
                "regions": {},
                "zones": {},
                "serviceAccounts": {},
                "deletedServiceAccounts": {},
                "locations": {},
                "logSinks": {},
                "logBuckets": {},
                "sql": {"instances": {}, "backupRuns": {}, "backups": {}},
                "igms": {},
            }
            self.projects[pid] = p
        return p

    def location(self, pid: str, loc: str) -> dict:
        locs = self.project(pid)["locations"]
        if loc not in locs:
            locs[loc] = {"certificates": {}, "certificateMaps": {}, "certificateMapEntries": {}}
        return locs[loc]


STORE = Store()


# --------------------------------------------------------------------------------------------- errors
def error_payload(api: str, err: ApiError, project: str | None, cfg: dict) -> dict:
    if api == "compute":
        errors = err.errors
        if errors is None:
            errors = [{"message": err.message, "domain": "global",
                       "reason": err.reason or COMPUTE_REASON.get(err.status, "invalid")}]
        body = {"code": err.status, "message": err.message, "errors": errors}
        if cfg.get("compute_error_status") or err.details:
            body["status"] = err.grpc
        if err.details:
            body["details"] = err.details
        return {"error": body}
    body = {"code": err.status, "message": err.message, "status": err.grpc}
    if err.details:
        body["details"] = err.details
    return {"error": body}


def service_disabled_error(api: str, service: str, project: str | None, status: int = 403,
                           message: str | None = None) -> ApiError:
    number = project_number(project or "unknown")
    title = SERVICE_TITLES.get(service, service)
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={number}"
    msg = message or (f"{title} has not been used in project {number} before or it is disabled. Enable it by "
                      f"visiting {url} then retry. If you enabled this API recently, wait a few minutes for "
                      "the action to propagate to our systems and retry.")
    details = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
         "domain": "googleapis.com",
         "metadata": {"consumer": f"projects/{number}", "service": service, "serviceTitle": title,
                      "containerInfo": number, "activationUrl": url}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": msg},
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Google developers console API activation", "url": url}]},
    ]
    errors = None
    if api == "compute":
        errors = [{"message": msg, "domain": "usageLimits", "reason": "accessNotConfigured",
                   "extendedHelp": "https://console.developers.google.com"}]
    return ApiError(status, msg, grpc="PERMISSION_DENIED", details=details, errors=errors)


def rate_limit_error(api: str, service: str, project: str | None, method: str, reason: str | None,
                     message: str | None, retry_after) -> ApiError:
    number = project_number(project or "unknown")
    kind = "Read" if method == "GET" else "Write"
    metric = f"{service}/{kind.lower()}_requests"
    msg = message or (f"Quota exceeded for quota metric '{kind} requests' and limit '{kind} requests per minute' "
                      f"of service '{service}' for consumer 'project_number:{number}'.")
    info_reason = reason if reason and reason.isupper() else "RATE_LIMIT_EXCEEDED"
    details = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": info_reason, "domain": "googleapis.com",
         "metadata": {"consumer": f"projects/{number}", "service": service, "quota_metric": metric,
                      "quota_limit": f"{kind}RequestsPerMinutePerProject", "quota_limit_value": "1200",
                      "quota_location": "global", "quota_unit": "1/min/{project}"}},
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Request a higher quota limit.",
                    "url": "https://cloud.google.com/docs/quotas/help/request_increase"}]},
    ]
    errors = None
    if api == "compute":
        errors = [{"message": msg, "domain": "usageLimits",
                   "reason": reason if reason and not reason.isupper() else "rateLimitExceeded"}]
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return ApiError(429, msg, grpc="RESOURCE_EXHAUSTED", details=details, errors=errors, headers=headers)


def fault_error(api: str, service: str, project: str | None, method: str, fault: dict) -> ApiError:
    status = int(fault["status"])
    reason = fault.get("reason")
    message = fault.get("message")
    if reason in ("SERVICE_DISABLED", "accessNotConfigured"):
        return service_disabled_error(api, service, project, status, message)
    if status == 429:
        return rate_limit_error(api, service, project, method, reason, message, fault.get("retry_after"))
    details = None
    compute_reason = None
    if reason and reason.isupper():
        details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": service}]
    elif reason:
        compute_reason = reason
    if status == 403 and not message:
        message = ("Required permission denied for this resource (or it may not exist)." if api != "compute"
                   else f"Required permission for 'projects/{project}' was denied")
    err = ApiError(status, message, reason=compute_reason, grpc=fault.get("grpc_status"), details=details)
    if fault.get("retry_after") is not None:
        err.headers["Retry-After"] = str(fault["retry_after"])
    return err


# --------------------------------------------------------------------------------------------- paging
def sorted_with_order(items: list, order_by: str | None, default_field: str) -> list:
    """Sorts by `orderBy` ("field" or "field desc"), ties broken by name (the key paginate_names uses)."""
    field, desc = default_field, False
    if order_by:
        parts = order_by.strip().split()
        if parts and re.fullmatch(r"[A-Za-z_][\w.]*", parts[0]):
            field = parts[0]
            desc = len(parts) > 1 and parts[1].lower() == "desc"
    return sorted(items, key=lambda i: (str(lookup(i, field) or ""), str(i.get("name", ""))), reverse=desc)


# --------------------------------------------------------------------------------------------- compute
def compute_link(project: str, coll: str, name: str) -> str:
    return f"{COMPUTE_HOST}projects/{project}/global/{coll}/{name}"


def compute_ref(project: str, coll: str, value: str) -> str:
    """Expands a short reference (a name, or projects/..., or global/...) into a full selfLink."""
    if value.startswith("http://") or value.startswith("https://"):
        return value
    if value.startswith("projects/"):
        return COMPUTE_HOST + value
    if value.startswith("global/"):
        return f"{COMPUTE_HOST}projects/{project}/{value}"
    return compute_link(project, coll, value)


def scoped_ref(project: str, region: str | None, coll: str, value: str) -> str:
    """A reference from a resource of `region` (None: global): a short name is one of `coll` in the
    same scope; `regions/R/...` and `global/...` are expanded; links are kept."""
    if value.startswith("regions/"):
        return f"{COMPUTE_HOST}projects/{project}/{value}"
    if "/" not in value and region:
        return f"{COMPUTE_HOST}projects/{project}/regions/{region}/{coll}/{value}"
    return compute_ref(project, coll, value)


def cm_map_ref(project: str, value: str) -> str:
    if value.startswith("//"):
        return value
    if value.startswith("projects/"):
        return f"//{CM}/{value}"
    return f"//{CM}/projects/{project}/locations/global/certificateMaps/{value}"


def seed_compute(store: Store, project: str, coll: str, spec: dict) -> dict:
    obj = copy.deepcopy(spec)
    if not obj.get("name"):
        raise ApiError(400, f"seed: {coll} item without a name: {spec}")
    obj["name"] = last_segment(obj["name"])
    kind = COMPUTE_COLLECTIONS[coll][0]
    obj.setdefault("kind", kind)
    obj.setdefault("id", store.compute_id())
    obj["id"] = str(obj["id"])
    obj.setdefault("creationTimestamp", compute_ts())
    obj["selfLink"] = compute_link(project, coll, obj["name"])
    if coll == "addresses":
        region = obj.pop("region", None)
        if region:
            region = last_segment(region)
            obj["region"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}"
            obj["selfLink"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}/addresses/{obj['name']}"
        obj["users"] = [compute_ref(project, "forwardingRules", u) for u in obj.get("users", [])]
        if not obj["users"]:
            del obj["users"]
        obj.setdefault("status", "IN_USE" if obj.get("users") else "RESERVED")
        obj.setdefault("address", "203.0.113.%d" % (int(obj["id"]) % 250 + 1))
        obj.setdefault("addressType", "EXTERNAL")
        obj.setdefault("networkTier", "PREMIUM")
        obj.setdefault("labelFingerprint", store.fingerprint())
        return obj
    if coll == "snapshots":
        return seed_snapshot(store, project, obj)
    if coll == "forwardingRules":
        region = obj.pop("region", None)
        if region:
            region = last_segment(region)
            obj["region"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}"
            obj["selfLink"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}/forwardingRules/{obj['name']}"
        if obj.get("target"):
            obj["target"] = scoped_ref(project, region, "targetHttpsProxies", obj["target"])
        if obj.get("backendService"):
            obj["backendService"] = scoped_ref(project, region, "backendServices", obj["backendService"])
        obj.setdefault("loadBalancingScheme", "EXTERNAL_MANAGED")
        obj.setdefault("IPProtocol", "TCP")
        obj.setdefault("IPAddress", "198.51.100.%d" % (int(obj["id"]) % 250 + 1))
        obj.setdefault("portRange", "443-443")
        obj.setdefault("networkTier", "PREMIUM")
        obj.setdefault("fingerprint", store.fingerprint())
        obj.setdefault("labelFingerprint", store.fingerprint())
        return obj
    if coll in LB_PARTS:
        return seed_lb_part(store, project, coll, obj)
    if coll == "firewalls":
        obj["network"] = compute_ref(project, "networks", obj.get("network", "default"))
        obj.setdefault("priority", 1000)
        obj.setdefault("direction", "INGRESS")
        if obj["direction"] == "INGRESS" and not obj.get("sourceTags") and not obj.get("sourceServiceAccounts"):
            obj.setdefault("sourceRanges", ["0.0.0.0/0"])
        if "allowed" not in obj and "denied" not in obj:
            obj["allowed"] = [{"IPProtocol": "all"}]
        obj.setdefault("logConfig", {"enable": False})
        obj.setdefault("disabled", False)
    elif coll == "sslCertificates":
        obj.setdefault("type", "MANAGED" if "managed" in obj else "SELF_MANAGED")
        if obj["type"] == "MANAGED":
            managed = obj.setdefault("managed", {})
            domains = managed.setdefault("domains", [f"{obj['name']}.example.com"])
            managed.setdefault("status", "ACTIVE")
            managed.setdefault("domainStatus", {d: "ACTIVE" for d in domains})
            obj.setdefault("subjectAlternativeNames", list(domains))
            if managed["status"] == "ACTIVE":
                obj.setdefault("certificate", FAKE_PEM)
                obj.setdefault("expireTime", compute_ts(datetime.now(timezone.utc) + timedelta(days=90)))
        else:
            obj.setdefault("certificate", FAKE_PEM)
            obj.setdefault("subjectAlternativeNames", [f"{obj['name']}.example.com"])
            obj.setdefault("expireTime", compute_ts(datetime.now(timezone.utc) + timedelta(days=365)))
        obj.pop("privateKey", None)
    else:
        region = last_segment(obj.pop("region")) if obj.get("region") else None
        if region:
            obj["region"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}"
            obj["selfLink"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}/{coll}/{obj['name']}"
        if "sslCertificates" in obj:
            obj["sslCertificates"] = [compute_ref(project, "sslCertificates", c) for c in obj["sslCertificates"]]
        if obj.get("certificateMap"):
            obj["certificateMap"] = cm_map_ref(project, obj["certificateMap"])
        if obj.get("sslPolicy"):
            obj["sslPolicy"] = compute_ref(project, "sslPolicies", obj["sslPolicy"])
        if coll in ("targetHttpsProxies", "targetHttpProxies"):
            obj["urlMap"] = scoped_ref(project, region, "urlMaps", obj.get("urlMap", f"{obj['name']}-url-map"))
            if coll == "targetHttpsProxies":
                obj.setdefault("quicOverride", "NONE")
            obj.setdefault("fingerprint", store.fingerprint())
        else:
            obj["service"] = scoped_ref(project, region, "backendServices",
                                        obj.get("service", f"{obj['name']}-backend"))
            obj.setdefault("proxyHeader", "NONE")
    return obj


def seed_lb_part(store: Store, project: str, coll: str, obj: dict) -> dict:
    """A URL map, backend service or bucket, health check or gRPC proxy, global or (with "region")
    regional. Short names in its links are parts of its own scope."""
    region = last_segment(obj.pop("region")) if obj.get("region") else None
    if region:
        obj["region"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}"
        obj["selfLink"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}/{coll}/{obj['name']}"

    def ref(target_coll, value):
        return scoped_ref(project, region, target_coll, value)

    if coll == "urlMaps":
        if obj.get("defaultService"):
            obj["defaultService"] = ref("backendServices", obj["defaultService"])
        for matcher in obj.get("pathMatchers") or []:
            if matcher.get("defaultService"):
                matcher["defaultService"] = ref("backendServices", matcher["defaultService"])
            for rule in (matcher.get("pathRules") or []) + (matcher.get("routeRules") or []):
                if rule.get("service"):
                    rule["service"] = ref("backendServices", rule["service"])
        obj.setdefault("fingerprint", store.fingerprint())
    elif coll == "backendServices":
        obj["healthChecks"] = [ref("healthChecks", h) for h in obj.get("healthChecks") or []]
        if not obj["healthChecks"]:
            del obj["healthChecks"]
        obj.setdefault("loadBalancingScheme", "EXTERNAL_MANAGED")
        obj.setdefault("protocol", "HTTP")
        obj.setdefault("timeoutSec", 30)
        obj.setdefault("fingerprint", store.fingerprint())
    elif coll == "backendBuckets":
        obj.setdefault("bucketName", obj["name"])
        obj.setdefault("enableCdn", False)
    elif coll == "healthChecks":
        obj.setdefault("type", "HTTP")
        obj.setdefault("httpHealthCheck", {"port": 80})
        obj.setdefault("checkIntervalSec", 5)
        obj.setdefault("timeoutSec", 5)
    elif coll == "targetGrpcProxies":
        if obj.get("urlMap"):
            obj["urlMap"] = compute_ref(project, "urlMaps", obj["urlMap"])
        obj.setdefault("fingerprint", store.fingerprint())
    return obj


def seed_igm(store: Store, project: str, spec: dict) -> tuple[str, dict]:
    """A managed instance group, zonal ("zone", default us-central1-a) or regional ("region"); a short
    autohealing health check is a global one, "regions/R/healthChecks/x" a regional one."""
    obj = copy.deepcopy(spec)
    if not obj.get("name"):
        raise ApiError(400, f"seed: instance group manager without a name: {spec}")
    obj.setdefault("kind", "compute#instanceGroupManager")
    obj["id"] = str(obj.get("id") or store.compute_id())
    obj.setdefault("creationTimestamp", compute_ts())
    if obj.get("region"):
        scope = f"regions/{last_segment(obj['region'])}"
    else:
        scope = f"zones/{last_segment(obj.get('zone') or 'us-central1-a')}"
    obj[scope.split("/")[0][:-1]] = f"{COMPUTE_HOST}projects/{project}/{scope}"
    obj["selfLink"] = f"{COMPUTE_HOST}projects/{project}/{scope}/instanceGroupManagers/{obj['name']}"
    for policy in obj.get("autoHealingPolicies") or []:
        if policy.get("healthCheck"):
            policy["healthCheck"] = compute_ref(project, "healthChecks", policy["healthCheck"])
    obj.setdefault("targetSize", 1)
    return scope, obj


def igm_aggregated(ctx, project):
    """instanceGroupManagers.aggregatedList: zonal and regional groups by scope, paged over all."""
    groups = ctx.store.project(project)["igms"]
    flat = [{"name": key, "_scope": key[0], "_obj": groups[key]} for key in sorted(groups)]
    for entry in flat:
        entry["name"] = f"{entry['_scope']}/{entry['_obj']['name']}"
    size = compute_max_results(ctx.params)
    token = ctx.params.get("pageToken")
    bad = ApiError(400, f"Invalid value for field 'pageToken': '{token}'. Invalid page token.", reason="invalid")
    page, nxt = paginate_names(flat, size, token, f"compute/{project}/aggregated/instanceGroupManagers", bad, None)
    items = {}
    for entry in page:
        items.setdefault(entry["_scope"], {"instanceGroupManagers": []})["instanceGroupManagers"].append(
            copy.deepcopy(entry["_obj"]))
    body = {"kind": "compute#instanceGroupManagerAggregatedList",
            "id": f"projects/{project}/aggregated/instanceGroupManagers", "items": items,
            "selfLink": f"{COMPUTE_HOST}projects/{project}/aggregated/instanceGroupManagers"}
    if nxt:
        body["nextPageToken"] = nxt
    return 200, body


def every_part(store: Store, project: str, coll: str) -> list[dict]:
    """The global and regional resources of one collection."""
    p = store.project(project)
    items = list(p["compute"].get(coll, {}).values())
    for colls in p["regions"].values():
        items.extend(colls.get(coll, {}).values())
    return items


def links_in(value) -> set:
    """Every string anywhere in a resource."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return set().union(*(links_in(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(links_in(v) for v in value.values())) if value else set()
    return set()


def lb_users(store: Store, project: str, coll: str, link: str) -> list[str]:
    """What still names the load balancer part at `link` (the API refuses its delete then)."""
    users = []
    if coll == "urlMaps":
        for c in ("targetHttpProxies", "targetHttpsProxies", "targetGrpcProxies"):
            users += [o["selfLink"] for o in every_part(store, project, c) if o.get("urlMap") == link]
    if coll in ("backendServices", "backendBuckets"):
        users += [o["selfLink"] for o in every_part(store, project, "urlMaps") if link in links_in(o)]
    if coll == "backendServices":
        for c in ("targetTcpProxies", "targetSslProxies"):
            users += [o["selfLink"] for o in every_part(store, project, c) if o.get("service") == link]
        users += [o["selfLink"] for o in every_part(store, project, "forwardingRules")
                  if o.get("backendService") == link]
    if coll == "healthChecks":
        users += [o["selfLink"] for o in every_part(store, project, "backendServices")
                  if link in (o.get("healthChecks") or [])]
        users += [o["selfLink"] for o in store.project(project)["igms"].values()
                  if any(h.get("healthCheck") == link for h in o.get("autoHealingPolicies") or [])]
    return sorted(users)


def schedule_ref(project: str, value: str) -> str:
    """A snapshot schedule (resource policy): "name" or "region/name" -> its full link."""
    if value.startswith("http"):
        return value
    region, _, name = value.rpartition("/")
    return f"{COMPUTE_HOST}projects/{project}/regions/{region or 'us-central1'}/resourcePolicies/{name}"


def seed_snapshot(store: Store, project: str, obj: dict) -> dict:
    """A snapshot: "sourceDisk" as "zone/name" (or a link) takes the seeded disk's id as sourceDiskId
    when that disk exists; "sourceSnapshotSchedulePolicy" as "name" or "region/name" marks it autoCreated."""
    disk = obj.get("sourceDisk")
    if disk and not disk.startswith("http"):
        zone, _, name = disk.rpartition("/")
        zone = zone or "us-central1-a"
        obj["sourceDisk"] = f"{COMPUTE_HOST}projects/{project}/zones/{zone}/disks/{name}"
        existing = zonal_store(store, project, zone, "disks").get(name)
        if existing:
            obj.setdefault("sourceDiskId", existing["id"])
    if obj.get("sourceDisk"):
        # A disk that is gone (never seeded) keeps one id for all its snapshots, as it had.
        digest = int(hashlib.sha256(obj["sourceDisk"].encode()).hexdigest(), 16)
        obj.setdefault("sourceDiskId", str(10 ** 18 + digest % (8 * 10 ** 18)))
    if obj.get("sourceSnapshotSchedulePolicy"):
        obj["sourceSnapshotSchedulePolicy"] = schedule_ref(project, obj["sourceSnapshotSchedulePolicy"])
        obj.setdefault("sourceSnapshotSchedulePolicyId", store.compute_id())
        obj.setdefault("autoCreated", True)
    obj.setdefault("status", "READY")
    obj.setdefault("diskSizeGb", "10")
    obj.setdefault("storageBytes", "1073741824")
    obj.setdefault("storageBytesStatus", "UP_TO_DATE")
    obj.setdefault("storageLocations", ["us"])
    obj.setdefault("snapshotType", "STANDARD")
    obj.setdefault("labelFingerprint", store.fingerprint())
    return obj


def seed_disk(store: Store, project: str, spec: dict) -> tuple[str, dict]:
    obj = copy.deepcopy(spec)
    if not obj.get("name"):
        raise ApiError(400, f"seed: disk without a name: {spec}")
    zone = last_segment(obj.pop("zone", "us-central1-a"))
    obj.setdefault("kind", "compute#disk")
    obj.setdefault("id", store.compute_id())
    obj["id"] = str(obj["id"])
    obj.setdefault("creationTimestamp", compute_ts())
    obj["zone"] = f"{COMPUTE_HOST}projects/{project}/zones/{zone}"
    obj["selfLink"] = f"{obj['zone']}/disks/{obj['name']}"
    obj.setdefault("sizeGb", "10")
    obj.setdefault("status", "READY")
    obj.setdefault("type", f"{obj['zone']}/diskTypes/pd-balanced")
    obj["users"] = [u if u.startswith("http") else f"{obj['zone']}/instances/{u}" for u in obj.get("users", [])]
    if not obj["users"]:
        del obj["users"]
    if obj.get("resourcePolicies"):
        region = zone.rsplit("-", 1)[0]
        obj["resourcePolicies"] = [schedule_ref(project, r if "/" in r else f"{region}/{r}")
                                   for r in obj["resourcePolicies"]]
    obj.setdefault("labelFingerprint", store.fingerprint())
    return zone, obj


def zonal_store(store: Store, project: str, zone: str, coll: str) -> dict:
    return store.project(project)["zones"].setdefault(zone, {}).setdefault(coll, {})


def zone_disk_get(ctx, project, zone, name):
    obj = zonal_store(ctx.store, project, zone, "disks").get(name)
    if obj is None:
        raise ApiError(404, f"The resource 'projects/{project}/zones/{zone}/disks/{name}' was not found",
                       reason="notFound")
    return 200, copy.deepcopy(obj)


def zone_op(ctx, project, zone, target, op_type, finish):
    store = ctx.store
    op_name = "operation-" + op_suffix(store.rng)
    now = compute_ts()
    op = {"kind": "compute#operation", "id": store.compute_id(), "name": op_name, "operationType": op_type,
          "targetLink": target["selfLink"], "targetId": target["id"], "status": "PENDING",
          "user": "driftsweep@fake.iam.gserviceaccount.com", "progress": 0, "insertTime": now, "startTime": now,
          "zone": f"{COMPUTE_HOST}projects/{project}/zones/{zone}",
          "selfLink": f"{COMPUTE_HOST}projects/{project}/zones/{zone}/operations/{op_name}"}
    rec = {"project": project, "target": ("disks", target["name"]), "op": op, "zone": zone,
           "polls_left": int(store.config["operation_polls"]), "finish": finish}
    store.compute_ops[(project, op_name)] = rec
    if rec["polls_left"] <= 0:
        finish_compute_op(store, rec)
    return 200, copy.deepcopy(op)


def zone_disk_delete(ctx, project, zone, name):
    disks = zonal_store(ctx.store, project, zone, "disks")
    obj = disks.get(name)
    if obj is None:
        raise ApiError(404, f"The resource 'projects/{project}/zones/{zone}/disks/{name}' was not found",
                       reason="notFound")
    if obj.get("users"):
        raise ApiError(400, f"The disk resource 'projects/{project}/zones/{zone}/disks/{name}' is already being "
                            f"used by '{obj['users'][0]}'", reason="resourceInUseByAnotherResource")

    def finish(store, rec):
        if name not in disks:
            rec["op"]["error"] = {"errors": [{"code": "RESOURCE_NOT_FOUND", "message": "not found"}]}
            return
        del disks[name]
    return zone_op(ctx, project, zone, obj, "delete", finish)


def zone_disk_create_snapshot(ctx, project, zone, name):
    disks = zonal_store(ctx.store, project, zone, "disks")
    obj = disks.get(name)
    if obj is None:
        raise ApiError(404, f"The resource 'projects/{project}/zones/{zone}/disks/{name}' was not found",
                       reason="notFound")
    body = ctx.json_body()
    snap_name = body.get("name")
    if not snap_name:
        raise ApiError(400, "Invalid value for field 'resource.name': ''.", reason="invalid")
    snaps = ctx.store.project(project)["compute"]["snapshots"]
    if snap_name in snaps:
        raise ApiError(409, f"The resource 'projects/{project}/global/snapshots/{snap_name}' already exists",
                       reason="alreadyExists")

    def finish(store, rec):
        snap = seed_compute(store, project, "snapshots",
                            {**body, "sourceDisk": obj["selfLink"], "sourceDiskId": obj["id"],
                             "diskSizeGb": obj.get("sizeGb", "10"), "status": "READY"})
        snaps[snap_name] = snap
    return zone_op(ctx, project, zone, obj, "createSnapshot", finish)


def zone_op_get(ctx, project, zone, op_name):
    return compute_op_get(ctx, project, op_name)


def zone_op_wait(ctx, project, zone, op_name):
    return compute_op_wait(ctx, project, op_name)


def ssl_cert_users(store: Store, project: str, cert_name: str) -> list[str]:
    link = compute_link(project, "sslCertificates", cert_name)
    users = []
    comp = store.project(project)["compute"]
    for coll in ("targetHttpsProxies", "targetSslProxies"):
        for proxy in comp[coll].values():
            if link in proxy.get("sslCertificates", []) or \
                    any(last_segment(c) == cert_name and f"/projects/{project}/" in c
                        for c in proxy.get("sslCertificates", [])):
                users.append(f"projects/{project}/global/{coll}/{proxy['name']}")
    return sorted(users)


def proxy_users(store: Store, project: str, link: str) -> list[str]:
    """The forwarding rules (global and regional) whose target is the proxy at `link`."""
    p = store.project(project)
    rules = list(p["compute"]["forwardingRules"].values())
    for colls in p["regions"].values():
        rules.extend(colls.get("forwardingRules", {}).values())
    return sorted(r["selfLink"] for r in rules if r.get("target") == link)


def compute_in_use_message(project: str, coll: str, name: str, user: str) -> str:
    singular = COMPUTE_COLLECTIONS[coll][2]
    return f"The {singular} resource 'projects/{project}/global/{coll}/{name}' is already being used by '{user}'"


def region_of(obj: dict) -> str | None:
    return last_segment(obj["region"]) if obj.get("region") else None


def regional_store(store: Store, project: str, region: str, coll: str) -> dict:
    return store.project(project)["regions"].setdefault(region, {}).setdefault(coll, {})


def container(store: Store, project: str, coll: str, region: str | None) -> dict:
    if region:
        return regional_store(store, project, region, coll)
    return store.project(project)["compute"][coll]


def compute_not_found(project: str, coll: str, name: str) -> ApiError:
    return ApiError(404, f"The resource 'projects/{project}/global/{coll}/{name}' was not found", reason="notFound")


def compute_max_results(q) -> int:
    raw = q.get("maxResults")
    if raw is None or raw == "":
        return 500
    try:
        size = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid value for field 'maxResults': '{raw}'. Must be an integer.", reason="invalid")
    if size < 0 or size > 500:
        raise ApiError(400, f"Invalid value for field 'maxResults': '{size}'. Must be less than or equal to 500",
                       reason="invalid")
    return size or 500


def compute_list(ctx, project, coll):
    store = ctx.store
    q = ctx.params
    size = compute_max_results(q)
    items = list(store.project(project)["compute"][coll].values())
    terms = parse_filter(q.get("filter"))
    if terms is None:
        ctx.notes.append("filter ignored (not trivial)")
    elif terms:
        items = [i for i in items if filter_match(i, terms)]
    items = sorted_with_order(items, q.get("orderBy"), "name")
    token = q.get("pageToken")
    bad = ApiError(400, f"Invalid value for field 'pageToken': '{token}'. Invalid page token.", reason="invalid")
    page, next_token = paginate_names(items, size, token, f"compute/{project}/{coll}", bad, q.get("orderBy"))
    body = {"kind": COMPUTE_COLLECTIONS[coll][1], "id": f"projects/{project}/global/{coll}"}
    if page:
        body["items"] = copy.deepcopy(page)
    body["selfLink"] = f"{COMPUTE_HOST}projects/{project}/global/{coll}"
    if next_token:
        body["nextPageToken"] = next_token
    return 200, body


def paginate_names(items, size, token, scope, bad, order_by):
    """Pages `items` (already sorted); the continuation key is the sort key of the last item returned."""
    field = "name"
    desc = False
    if order_by:
        parts = order_by.strip().split()
        if parts and re.fullmatch(r"[A-Za-z_][\w.]*", parts[0]):
            field = parts[0]
            desc = len(parts) > 1 and parts[1].lower() == "desc"

    def key(i):
        return (str(lookup(i, field) or ""), str(i.get("name", "")))

    start = 0
    if token:
        t = decode_token(token)
        if t is None or t.get("s") != scope or not isinstance(t.get("k"), list) or len(t["k"]) != 2:
            raise bad
        last = tuple(t["k"])
        start = len(items)
        for n, item in enumerate(items):
            k = key(item)
            if (k < last) if desc else (k > last):
                start = n
                break
    page = items[start:start + size]
    next_token = None
    if page and start + size < len(items):
        next_token = b64url_token({"s": scope, "k": list(key(page[-1]))})
    return page, next_token


def compute_get(ctx, project, coll, name):
    obj = ctx.store.project(project)["compute"][coll].get(name)
    if obj is None:
        raise compute_not_found(project, coll, name)
    return 200, copy.deepcopy(obj)


def pending_compute_delete(store: Store, project: str, coll: str, name: str, region=None):
    for rec in store.compute_ops.values():
        if rec["project"] == project and rec["target"] == (coll, name) and rec.get("region") == region \
                and rec["op"]["status"] != "DONE":
            return rec
    return None


def compute_delete(ctx, project, coll, name, region=None):
    store = ctx.store
    obj = container(store, project, coll, region).get(name)
    if obj is None:
        raise compute_not_found(project, coll, name)
    if coll == "addresses" and obj.get("users"):
        raise ApiError(400, compute_in_use_message(project, coll, name, obj["users"][0]),
                       reason="resourceInUseByAnotherResource")
    if pending_compute_delete(store, project, coll, name, region):
        raise ApiError(400, f"The resource 'projects/{project}/global/{coll}/{name}' is not ready",
                       reason="resourceNotReady")
    if coll in LB_PARTS:
        users = lb_users(store, project, coll, obj["selfLink"])
        if users:
            raise ApiError(400, compute_in_use_message(project, coll, name, users[0]),
                           reason="resourceInUseByAnotherResource")
    if coll in PROXY_COLLECTIONS:
        users = proxy_users(store, project, obj["selfLink"])
        if users:
            raise ApiError(400, compute_in_use_message(project, coll, name, users[0]),
                           reason="resourceInUseByAnotherResource")
    if coll == "sslCertificates" and store.config["compute_in_use"] == "request":
        users = ssl_cert_users(store, project, name)
        if users:
            raise ApiError(400, compute_in_use_message(project, coll, name, users[0]),
                           reason="resourceInUseByAnotherResource")
    op_name = "operation-" + op_suffix(store.rng)
    now = compute_ts()
    op = {
        "kind": "compute#operation",
        "id": store.compute_id(),
        "name": op_name,
        "operationType": "delete",
        "targetLink": obj["selfLink"],
        "targetId": obj["id"],
        "status": "PENDING",
        "user": "driftsweep@fake.iam.gserviceaccount.com",
        "progress": 0,
        "insertTime": now,
        "startTime": now,
        "selfLink": f"{COMPUTE_HOST}projects/{project}/global/operations/{op_name}",
    }
    if region:
        op["region"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}"
        op["selfLink"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}/operations/{op_name}"
    if ctx.params.get("requestId"):
        op["clientOperationId"] = ctx.params["requestId"]
    rec = {"project": project, "target": (coll, name), "op": op, "polls_left": int(store.config["operation_polls"]),
           "region": region}
    store.compute_ops[(project, op_name)] = rec
    if rec["polls_left"] <= 0:
        finish_compute_op(store, rec)
    return 200, copy.deepcopy(op)


def finish_compute_op(store: Store, rec: dict):
    op = rec["op"]
    if rec.get("finish"):
        op["status"] = "DONE"
        op["progress"] = 100
        op["endTime"] = compute_ts()
        rec["finish"](store, rec)
        return
    project = rec["project"]
    coll, name = rec["target"]
    objects = container(store, project, coll, rec.get("region"))
    op["status"] = "DONE"
    op["progress"] = 100
    op["endTime"] = compute_ts()
    if name not in objects:
        msg = f"The resource 'projects/{project}/global/{coll}/{name}' was not found"
        op["error"] = {"errors": [{"code": "RESOURCE_NOT_FOUND", "message": msg}]}
        op["httpErrorStatusCode"] = 404
        op["httpErrorMessage"] = "NOT FOUND"
        return
    if coll == "sslCertificates":
        users = ssl_cert_users(store, project, name)
        if users:
            op["error"] = {"errors": [{"code": "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
                                       "message": compute_in_use_message(project, coll, name, users[0])}]}
            op["httpErrorStatusCode"] = 400
            op["httpErrorMessage"] = "BAD REQUEST"
            return
    del objects[name]


def region_not_found(project, region, coll, name) -> ApiError:
    return ApiError(404, f"The resource 'projects/{project}/regions/{region}/{coll}/{name}' was not found",
                    reason="notFound")


def region_compute_get(ctx, project, region, coll, name):
    obj = regional_store(ctx.store, project, region, coll).get(name)
    if obj is None:
        raise region_not_found(project, region, coll, name)
    return 200, copy.deepcopy(obj)


def region_compute_delete(ctx, project, region, coll, name):
    if name not in regional_store(ctx.store, project, region, coll):
        raise region_not_found(project, region, coll, name)
    return compute_delete(ctx, project, coll, name, region)


def region_compute_list(ctx, project, region, coll):
    items = sorted(regional_store(ctx.store, project, region, coll).values(), key=lambda i: i["name"])
    size = compute_max_results(ctx.params)
    token = ctx.params.get("pageToken")
    bad = ApiError(400, f"Invalid value for field 'pageToken': '{token}'. Invalid page token.", reason="invalid")
    page, nxt = paginate_names(items, size, token, f"compute/{project}/{region}/{coll}", bad, None)
    body = {"kind": COMPUTE_COLLECTIONS[coll][1], "id": f"projects/{project}/regions/{region}/{coll}"}
    if page:
        body["items"] = copy.deepcopy(page)
    body["selfLink"] = f"{COMPUTE_HOST}projects/{project}/regions/{region}/{coll}"
    if nxt:
        body["nextPageToken"] = nxt
    return 200, body


def aggregated_list(ctx, project, coll):
    """addresses.aggregatedList: the regional resources by scope (`regions/R`), paged over all of
    them in (region, name) order, and the global ones under `global` on the first page."""
    if coll not in REGIONAL_COLLECTIONS and coll not in ZONAL_COLLECTIONS:
        raise ApiError(404, f"fake_gcp: no aggregated list of {coll}", reason="notFound")
    p = ctx.store.project(project)
    scopes, prefix = (p["zones"], "zones") if coll in ZONAL_COLLECTIONS else (p["regions"], "regions")
    flat = []
    for region in sorted(scopes):
        for name in sorted(scopes[region].get(coll, {})):
            flat.append({"name": f"{region}/{name}", "_obj": scopes[region][coll][name]})
    size = compute_max_results(ctx.params)
    token = ctx.params.get("pageToken")
    bad = ApiError(400, f"Invalid value for field 'pageToken': '{token}'. Invalid page token.", reason="invalid")
    page, nxt = paginate_names(flat, size, token, f"compute/{project}/aggregated/{coll}", bad, None)
    items = {}
    for entry in page:
        region = entry["name"].split("/", 1)[0]
        items.setdefault(f"{prefix}/{region}", {coll: []})[coll].append(copy.deepcopy(entry["_obj"]))
    if not token and coll in REGIONAL_COLLECTIONS:
        globals_ = [copy.deepcopy(v) for _, v in sorted(p["compute"][coll].items())]
        items["global"] = {coll: globals_} if globals_ else {
            "warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope 'global' on this page."}}
    kinds = ZONAL_COLLECTIONS if coll in ZONAL_COLLECTIONS else COMPUTE_COLLECTIONS
    body = {"kind": f"compute#{kinds[coll][0].split('#')[1]}AggregatedList",
            "id": f"projects/{project}/aggregated/{coll}", "items": items,
            "selfLink": f"{COMPUTE_HOST}projects/{project}/aggregated/{coll}"}
    if ctx.store.config.get("aggregated_unreachables"):
        body["unreachables"] = list(ctx.store.config["aggregated_unreachables"])
    if nxt:
        body["nextPageToken"] = nxt
    return 200, body


def region_op_get(ctx, project, region, op_name):
    return compute_op_get(ctx, project, op_name)


def region_op_wait(ctx, project, region, op_name):
    return compute_op_wait(ctx, project, op_name)


def compute_op_record(ctx, project, op_name):
    rec = ctx.store.compute_ops.get((project, op_name))
    if rec is None:
        raise ApiError(404, f"The resource 'projects/{project}/global/operations/{op_name}' was not found",
                       reason="notFound")
    return rec


def compute_op_get(ctx, project, op_name):
    rec = compute_op_record(ctx, project, op_name)
    op = rec["op"]
    if op["status"] != "DONE":
        rec["polls_left"] -= 1
        if rec["polls_left"] <= 0:
            finish_compute_op(ctx.store, rec)
        else:
            op["status"] = "RUNNING"
            op["progress"] = min(99, op.get("progress", 0) + 50)
    return 200, copy.deepcopy(op)


def compute_op_wait(ctx, project, op_name):
    rec = compute_op_record(ctx, project, op_name)
    if rec["op"]["status"] != "DONE":
        rec["polls_left"] = 0
        finish_compute_op(ctx.store, rec)
    return 200, copy.deepcopy(rec["op"])


def compute_op_delete(ctx, project, op_name):
    compute_op_record(ctx, project, op_name)
    del ctx.store.compute_ops[(project, op_name)]
    return 204, None


def compute_op_list(ctx, project):
    ops = [r["op"] for (p, _), r in ctx.store.compute_ops.items() if p == project]
    ops.sort(key=lambda o: o["name"])
    size = compute_max_results(ctx.params)
    token = ctx.params.get("pageToken")
    bad = ApiError(400, f"Invalid value for field 'pageToken': '{token}'. Invalid page token.", reason="invalid")
    page, nxt = paginate_names(ops, size, token, f"compute/{project}/operations", bad, None)
    body = {"kind": "compute#operationList", "id": f"projects/{project}/global/operations"}
    if page:
        body["items"] = copy.deepcopy(page)
    body["selfLink"] = f"{COMPUTE_HOST}projects/{project}/global/operations"
    if nxt:
        body["nextPageToken"] = nxt
    return 200, body


# --------------------------------------------------------------------------------------------- IAM
def seed_service_account(store: Store, project: str, spec: dict) -> dict:
    obj = copy.deepcopy(spec)
    account_id = obj.pop("accountId", None)
    email = obj.get("email")
    if not email:
        name = obj.get("name")
        if name and "@" in name:
            email = last_segment(name)
        elif account_id or name:
            email = f"{account_id or name}@{project}.iam.gserviceaccount.com"
        else:
            raise ApiError(400, f"seed: service account without email/accountId: {spec}")
    obj["email"] = email
    obj["name"] = f"projects/{project}/serviceAccounts/{email}"
    obj["projectId"] = project
    obj.setdefault("uniqueId", store.unique_id())
    obj["uniqueId"] = str(obj["uniqueId"])
    obj.setdefault("oauth2ClientId", obj["uniqueId"])
    obj.setdefault("etag", store.etag())
    if not obj.get("disabled"):
        obj.pop("disabled", None)
    for k in ("displayName", "description"):
        if obj.get(k) == "":
            obj.pop(k)
    return obj


def iam_find(store: Store, project: str, ident: str):
    projects = store.projects.items() if project == "-" else [(project, store.project(project))]
    for pid, p in projects:
        sa = p["serviceAccounts"].get(ident)
        if sa is not None:
            return pid, sa
        for sa in p["serviceAccounts"].values():
            if sa["uniqueId"] == ident:
                return pid, sa
    return None, None


def iam_get_or_404(store, project, ident):
    pid, sa = iam_find(store, project, ident)
    if sa is None:
        raise ApiError(404, "Unknown service account", grpc="NOT_FOUND")
    return pid, sa


def iam_list(ctx, project):
    q = ctx.params
    size = 20
    if q.get("pageSize"):
        try:
            size = int(q["pageSize"])
        except ValueError:
            raise ApiError(400, f"Invalid value at 'page_size' (TYPE_INT32), \"{q['pageSize']}\"")
        if size < 0:
            raise ApiError(400, "Page size must be non-negative.")
        size = min(size or 20, 100)
    accounts = sorted(ctx.store.project(project)["serviceAccounts"].values(), key=lambda a: a["email"])
    token = q.get("pageToken")
    bad = ApiError(400, "Invalid page token.", grpc="INVALID_ARGUMENT")
    scope = f"iam/{project}"
    start = 0
    if token:
        t = decode_token(token)
        if t is None or t.get("s") != scope:
            raise bad
        start = next((n for n, a in enumerate(accounts) if a["email"] > t["k"]), len(accounts))
    page = accounts[start:start + size]
    body = {}
    if page:
        body["accounts"] = copy.deepcopy(page)
    if page and start + size < len(accounts):
        body["nextPageToken"] = b64url_token({"s": scope, "k": page[-1]["email"]})
    return 200, body


def iam_get(ctx, project, ident):
    _, sa = iam_get_or_404(ctx.store, project, ident)
    return 200, copy.deepcopy(sa)


def iam_create(ctx, project):
    body = ctx.json_body()
    account_id = body.get("accountId")
    if not account_id or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])", account_id) or not 6 <= len(account_id) <= 30:
        raise ApiError(400, "Invalid account ID: must match [a-z]([-a-z0-9]*[a-z0-9]) with 6-30 characters.")
    email = f"{account_id}@{project}.iam.gserviceaccount.com"
    accounts = ctx.store.project(project)["serviceAccounts"]
    if email in accounts:
        raise ApiError(409, f"Service account {account_id} already exists within project projects/{project}.",
                       grpc="ALREADY_EXISTS")
    spec = dict(body.get("serviceAccount") or {})
    spec = {k: v for k, v in spec.items() if k in ("displayName", "description")}
    spec["email"] = email
    sa = seed_service_account(ctx.store, project, spec)
    accounts[email] = sa
    return 200, copy.deepcopy(sa)


def iam_patch(ctx, project, ident):
    pid, sa = iam_get_or_404(ctx.store, project, ident)
    body = ctx.json_body()
    update = body.get("serviceAccount") or {}
    mask = body.get("updateMask")
    if isinstance(mask, dict):
        mask = ",".join(mask.get("paths", []))
    if not mask:
        mask = ctx.params.get("updateMask", "")
    paths = [p.strip() for p in (mask or "").split(",") if p.strip()]
    if not paths:
        raise ApiError(400, "Field update_mask is required.", grpc="INVALID_ARGUMENT")
    changed = False
    for path in paths:
        field = {"display_name": "displayName", "displayName": "displayName",
                 "description": "description"}.get(path)
        if field is None:
            raise ApiError(400, f"Invalid update_mask path: '{path}'. Only display_name and description can "
                                "be updated.", grpc="INVALID_ARGUMENT")
        value = update.get(field, "")
        if value:
            changed |= sa.get(field) != value
            sa[field] = value
        elif field in sa:
            del sa[field]
            changed = True
    if changed:
        sa["etag"] = ctx.store.etag()
    return 200, copy.deepcopy(sa)


def iam_update(ctx, project, ident):
    _, sa = iam_get_or_404(ctx.store, project, ident)
    body = ctx.json_body()
    for field in ("displayName", "description"):
        if body.get(field):
            sa[field] = body[field]
        else:
            sa.pop(field, None)
    sa["etag"] = ctx.store.etag()
    return 200, copy.deepcopy(sa)


def iam_delete(ctx, project, ident):
    pid, sa = iam_get_or_404(ctx.store, project, ident)
    p = ctx.store.project(pid)
    del p["serviceAccounts"][sa["email"]]
    p["deletedServiceAccounts"][sa["uniqueId"]] = sa
    return 200, {}


def iam_set_disabled(disabled: bool):
    def handler(ctx, project, ident):
        _, sa = iam_get_or_404(ctx.store, project, ident)
        if disabled:
            sa["disabled"] = True
        else:
            sa.pop("disabled", None)
        return 200, {}
    return handler


def iam_undelete(ctx, project, ident):
    projects = ctx.store.projects.items() if project == "-" else [(project, ctx.store.project(project))]
    for pid, p in projects:
        sa = p["deletedServiceAccounts"].get(ident)
        if sa is not None:
            if sa["email"] in p["serviceAccounts"]:
                raise ApiError(400, "Service account with the same email already exists.",
                               grpc="FAILED_PRECONDITION")
            del p["deletedServiceAccounts"][ident]
            p["serviceAccounts"][sa["email"]] = sa
            return 200, {"restoredAccount": copy.deepcopy(sa)}
    raise ApiError(404, "Unknown service account", grpc="NOT_FOUND")


# --------------------------------------------------------------------------------------------- Certificate Manager
def cm_name(project, loc, coll, name, map_name=None):
    if coll == "certificateMapEntries":
        return f"projects/{project}/locations/{loc}/certificateMaps/{map_name}/certificateMapEntries/{name}"
    return f"projects/{project}/locations/{loc}/{coll}/{name}"


def cm_cert_ref(project, loc, value):
    if value.startswith("projects/"):
        return value
    return cm_name(project, loc, "certificates", value)


def seed_cm(store: Store, project: str, loc: str, coll: str, spec: dict) -> dict:
    obj = copy.deepcopy(spec)
    map_name = None
    if coll == "certificateMapEntries":
        map_name = obj.pop("map", None)
        if not map_name and isinstance(obj.get("name"), str) and "/certificateMaps/" in obj["name"]:
            map_name = obj["name"].split("/certificateMaps/")[1].split("/")[0]
        if not map_name:
            raise ApiError(400, f"seed: certificateMapEntries item without a map: {spec}")
        map_name = last_segment(map_name)
    if not obj.get("name"):
        raise ApiError(400, f"seed: {coll} item without a name: {spec}")
    short = last_segment(obj["name"])
    obj["name"] = cm_name(project, loc, coll, short, map_name)
    now = rfc3339_z()
    obj.setdefault("createTime", now)
    obj.setdefault("updateTime", obj["createTime"])
    if coll == "certificates":
        if "managed" in obj:
            managed = obj["managed"]
            domains = managed.setdefault("domains", [f"{short}.example.com"])
            managed.setdefault("state", "ACTIVE")
            if managed["state"] == "ACTIVE":
                managed.setdefault("authorizationAttemptInfo",
                                   [{"domain": d, "state": "AUTHORIZED"} for d in domains])
                obj.setdefault("pemCertificate", FAKE_PEM)
                obj.setdefault("expireTime", rfc3339_z(datetime.now(timezone.utc) + timedelta(days=90)))
            obj.setdefault("sanDnsnames", list(domains))
        else:
            self_managed = obj.setdefault("selfManaged", {})
            self_managed.pop("pemPrivateKey", None)
            obj.setdefault("pemCertificate", self_managed.pop("pemCertificate", None) or FAKE_PEM)
            obj.setdefault("sanDnsnames", [f"{short}.example.com"])
            obj.setdefault("expireTime", rfc3339_z(datetime.now(timezone.utc) + timedelta(days=365)))
    elif coll == "certificateMapEntries":
        obj["certificates"] = [cm_cert_ref(project, loc, c) for c in obj.get("certificates", [])]
        if "hostname" not in obj and "matcher" not in obj:
            obj["matcher"] = "PRIMARY"
        obj.setdefault("state", "ACTIVE")
        obj["_map"] = map_name
    return obj


def cm_render(store: Store, coll: str, obj: dict, project: str, loc: str, enum_int: bool) -> dict:
    out = copy.deepcopy({k: v for k, v in obj.items() if not k.startswith("_")})
    if coll == "certificateMaps" and "gclbTargets" not in out:
        targets = []
        map_ref = f"//{CM}/{obj['name']}"
        comp = store.project(project)["compute"]
        for pcoll, key in (("targetHttpsProxies", "targetHttpsProxy"), ("targetSslProxies", "targetSslProxy")):
            for proxy in sorted(comp[pcoll].values(), key=lambda x: x["name"]):
                if proxy.get("certificateMap") == map_ref:
                    targets.append({key: f"//{COMPUTE}/projects/{project}/global/{pcoll}/{proxy['name']}"})
        if targets:
            out["gclbTargets"] = targets
    for path in CM_ENUM_FIELDS.get(coll, []):
        convert_enum(out, path, CM_ENUMS[path], enum_int)
    return out


def convert_enum(obj, path: str, values: dict, enum_int: bool):
    head, _, rest = path.partition(".")
    is_list = head.endswith("[]")
    key = head[:-2] if is_list else head
    if not isinstance(obj, dict) or key not in obj:
        return
    if rest:
        children = obj[key] if is_list and isinstance(obj[key], list) else [obj[key]]
        for child in children:
            convert_enum(child, rest, values, enum_int)
        return
    value = obj[key]
    number = values.get(value) if isinstance(value, str) else value
    if number == 0:
        del obj[key]
    elif enum_int and isinstance(number, int):
        obj[key] = number
    elif not enum_int and isinstance(value, int):
        names = {v: k for k, v in values.items()}
        obj[key] = names.get(value, value)


def cm_page_size(params, default=50, maximum=1000):
    raw = params.get("pageSize")
    if not raw:
        return default
    try:
        size = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"")
    if size < 0:
        raise ApiError(400, "page_size must be non-negative")
    return min(size or default, maximum)


def cm_list_response(ctx, project, loc, coll, items, field):
    q = ctx.params
    terms = parse_filter(q.get("filter"))
    rendered = [cm_render(ctx.store, coll, i, project, loc, False) for i in items]
    pairs = list(zip(rendered, items))
    if terms is None:
        ctx.notes.append("filter ignored (not trivial)")
    elif terms:
        pairs = [p for p in pairs if filter_match(p[0], terms)]
    sorted_items = sorted_with_order([p[1] for p in pairs], q.get("orderBy"), "name")
    token = q.get("pageToken")
    bad = ApiError(400, "The provided page token is invalid.", grpc="INVALID_ARGUMENT")
    page, nxt = paginate_names(sorted_items, cm_page_size(q), token, f"cm/{project}/{loc}/{coll}/{field}", bad,
                               q.get("orderBy"))
    body = {}
    if page:
        body[field] = [cm_render(ctx.store, coll, i, project, loc, ctx.enum_int) for i in page]
    if nxt:
        body["nextPageToken"] = nxt
    return 200, body


def cm_not_found(name):
    return ApiError(404, f"Resource '{name}' was not found", grpc="NOT_FOUND")


def cm_list_certificates(ctx, project, loc):
    items = list(ctx.store.location(project, loc)["certificates"].values())
    return cm_list_response(ctx, project, loc, "certificates", items, "certificates")


def cm_list_maps(ctx, project, loc):
    items = list(ctx.store.location(project, loc)["certificateMaps"].values())
    return cm_list_response(ctx, project, loc, "certificateMaps", items, "certificateMaps")


def cm_list_entries(ctx, project, loc, map_name):
    state = ctx.store.location(project, loc)
    if map_name == "-" and ctx.store.config["cm_entries_wildcard"]:
        items = list(state["certificateMapEntries"].values())
    else:
        if map_name not in state["certificateMaps"]:
            raise cm_not_found(cm_name(project, loc, "certificateMaps", map_name))
        items = [e for (m, _), e in state["certificateMapEntries"].items() if m == map_name]
    return cm_list_response(ctx, project, loc, "certificateMapEntries", items, "certificateMapEntries")


def cm_lookup(ctx, project, loc, coll, name, map_name=None):
    state = ctx.store.location(project, loc)
    key = (map_name, name) if coll == "certificateMapEntries" else name
    obj = state[coll].get(key)
    if obj is None:
        raise cm_not_found(cm_name(project, loc, coll, name, map_name))
    return state, key, obj


def cm_get(coll):
    def handler(ctx, project, loc, *names):
        if coll == "certificateMapEntries":
            map_name, name = names
        else:
            map_name, name = None, names[0]
        _, _, obj = cm_lookup(ctx, project, loc, coll, name, map_name)
        return 200, cm_render(ctx.store, coll, obj, project, loc, ctx.enum_int)
    return handler


def cm_cert_users(store: Store, project: str, loc: str, cert_full: str) -> list[str]:
    state = store.location(project, loc)
    return sorted(e["name"] for e in state["certificateMapEntries"].values() if cert_full in e.get("certificates", []))


def cm_delete(coll):
    def handler(ctx, project, loc, *names):
        store = ctx.store
        if coll == "certificateMapEntries":
            map_name, name = names
        else:
            map_name, name = None, names[0]
        state, key, obj = cm_lookup(ctx, project, loc, coll, name, map_name)
        if store.config["cm_in_use"] == "request":
            problem = cm_delete_problem(store, project, loc, coll, obj)
            if problem:
                raise ApiError(400, problem, grpc="FAILED_PRECONDITION")
        op_name = f"projects/{project}/locations/{loc}/operations/operation-{op_suffix(store.rng)}"
        op = {
            "name": op_name,
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.certificatemanager.v1.OperationMetadata",
                "createTime": rfc3339_z(),
                "target": obj["name"],
                "verb": "delete",
                "requestedCancellation": False,
                "apiVersion": "v1",
            },
            "done": False,
        }
        rec = {"op": op, "coll": coll, "key": key, "project": project, "loc": loc,
               "polls_left": int(store.config["operation_polls"])}
        store.cm_ops[op_name] = rec
        if rec["polls_left"] <= 0:
            finish_cm_op(store, rec)
        return 200, cm_render_op(rec["op"])
    return handler


def cm_delete_problem(store, project, loc, coll, obj) -> str | None:
    if coll == "certificates":
        users = cm_cert_users(store, project, loc, obj["name"])
        if users:
            return (f"can't delete certificate \"{obj['name']}\": it is referenced by certificate map entry "
                    f"\"{users[0]}\"")
    if coll == "certificateMaps":
        short = last_segment(obj["name"])
        entries = [e for (m, _), e in store.location(project, loc)["certificateMapEntries"].items() if m == short]
        if entries:
            return (f"can't delete certificate map \"{obj['name']}\": it still contains certificate map entries; "
                    "remove all the entries from the map first")
    return None


def cm_render_op(op):
    out = copy.deepcopy(op)
    if not out.get("done"):
        out.pop("done", None)  # proto3 JSON omits false
    return out


def finish_cm_op(store: Store, rec: dict, cancelled: bool = False):
    op = rec["op"]
    op["done"] = True
    op["metadata"]["endTime"] = rfc3339_z()
    state = store.location(rec["project"], rec["loc"])
    obj = state[rec["coll"]].get(rec["key"])
    if cancelled:
        op["metadata"]["requestedCancellation"] = True
        op["error"] = {"code": RPC_CODE["CANCELLED"], "message": "Operation was cancelled."}
        return
    if obj is None:
        op["error"] = {"code": RPC_CODE["NOT_FOUND"], "message": f"Resource '{op['metadata']['target']}' was not found"}
        return
    problem = cm_delete_problem(store, rec["project"], rec["loc"], rec["coll"], obj)
    if problem:
        op["error"] = {"code": RPC_CODE["FAILED_PRECONDITION"], "message": problem}
        return
    del state[rec["coll"]][rec["key"]]
    op["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}


def cm_op_record(ctx, project, loc, op_id):
    name = f"projects/{project}/locations/{loc}/operations/{op_id}"
    rec = ctx.store.cm_ops.get(name)
    if rec is None:
        raise ApiError(404, f"Operation '{name}' not found", grpc="NOT_FOUND")
    return name, rec


def cm_op_get(ctx, project, loc, op_id):
    _, rec = cm_op_record(ctx, project, loc, op_id)
    if not rec["op"]["done"]:
        rec["polls_left"] -= 1
        if rec["polls_left"] <= 0:
            finish_cm_op(ctx.store, rec)
    return 200, cm_render_op(rec["op"])


def cm_op_delete(ctx, project, loc, op_id):
    name, _ = cm_op_record(ctx, project, loc, op_id)
    del ctx.store.cm_ops[name]
    return 200, {}


def cm_op_cancel(ctx, project, loc, op_id):
    _, rec = cm_op_record(ctx, project, loc, op_id)
    if not rec["op"]["done"]:
        finish_cm_op(ctx.store, rec, cancelled=True)
    return 200, {}


def cm_op_list(ctx, project, loc):
    prefix = f"projects/{project}/locations/{loc}/operations/"
    ops = sorted((r["op"] for n, r in ctx.store.cm_ops.items() if n.startswith(prefix)), key=lambda o: o["name"])
    token = ctx.params.get("pageToken")
    bad = ApiError(400, "The provided page token is invalid.", grpc="INVALID_ARGUMENT")
    page, nxt = paginate_names(ops, cm_page_size(ctx.params, 100, 1000), token, f"cmops/{project}/{loc}", bad, None)
    body = {}
    if page:
        body["operations"] = [cm_render_op(o) for o in page]
    if nxt:
        body["nextPageToken"] = nxt
    return 200, body


# --------------------------------------------------------------------------------------------- Cloud Logging
LOG_LIFECYCLE = {"LIFECYCLE_STATE_UNSPECIFIED": 0, "ACTIVE": 1, "DELETE_REQUESTED": 2, "UPDATING": 3,
                 "CREATING": 4, "FAILED": 5}
LOG_FLOOR = ("_Default", "_Required")


def seed_log_sink(store: Store, project: str, spec: dict) -> dict:
    obj = copy.deepcopy(spec)
    if not obj.get("name"):
        raise ApiError(400, f"seed: logSinks item without a name: {spec}")
    obj["name"] = last_segment(obj["name"])
    dest = obj.get("destination")
    if not dest:
        dest = f"{LOGGING}/projects/{project}/locations/global/buckets/{obj['name']}"
    elif "/" not in dest:  # a bucket id, in this project's global location
        dest = f"{LOGGING}/projects/{project}/locations/global/buckets/{dest}"
    elif ".googleapis.com/" not in dest and dest.count("/") == 1:  # LOCATION/BUCKET (not a host/path)
        loc, bucket = dest.split("/", 1)
        dest = f"{LOGGING}/projects/{project}/locations/{loc}/buckets/{bucket}"
    obj["destination"] = dest
    now = rfc3339_z()
    obj.setdefault("createTime", now)
    obj.setdefault("updateTime", obj["createTime"])
    obj.setdefault("writerIdentity", f"serviceAccount:service-{project_number(project)}@gcp-sa-logging.iam.gserviceaccount.com")
    if not obj.get("disabled"):
        obj.pop("disabled", None)
    return obj


def seed_log_bucket(store: Store, project: str, spec: dict) -> tuple[tuple, dict]:
    obj = copy.deepcopy(spec)
    if not obj.get("name"):
        raise ApiError(400, f"seed: logBuckets item without a name: {spec}")
    loc = obj.pop("location", None) or "global"
    if "/locations/" in obj["name"]:
        loc = obj["name"].split("/locations/")[1].split("/")[0]
    short = last_segment(obj["name"])
    obj["name"] = f"projects/{project}/locations/{loc}/buckets/{short}"
    now = rfc3339_z()
    obj.setdefault("createTime", now)
    obj.setdefault("updateTime", obj["createTime"])
    obj.setdefault("retentionDays", 400 if short == "_Required" else 30)
    obj.setdefault("lifecycleState", "ACTIVE")
    if short == "_Required":
        obj.setdefault("locked", True)
    if not obj.get("locked"):
        obj.pop("locked", None)
    return (loc, short), obj


def log_render_bucket(obj: dict, enum_int: bool) -> dict:
    out = copy.deepcopy(obj)
    state = out.get("lifecycleState")
    number = LOG_LIFECYCLE.get(state, state) if isinstance(state, str) else state
    if number == 0:
        out.pop("lifecycleState", None)
    elif enum_int:
        out["lifecycleState"] = number
    return out


def log_page(ctx, items, field, scope, default=100, maximum=1000):
    items = sorted(items, key=lambda i: i["name"])
    token = ctx.params.get("pageToken")
    bad = ApiError(400, "page token is not valid", grpc="INVALID_ARGUMENT")
    page, nxt = paginate_names(items, cm_page_size(ctx.params, default, maximum), token, scope, bad, None)
    body = {}
    if page:
        body[field] = page
    if nxt:
        body["nextPageToken"] = nxt
    return body


def log_sinks_list(ctx, project):
    items = [copy.deepcopy(s) for s in ctx.store.project(project)["logSinks"].values()]
    return 200, log_page(ctx, items, "sinks", f"logging/{project}/sinks")


def log_sink_lookup(ctx, project, name):
    obj = ctx.store.project(project)["logSinks"].get(name)
    if obj is None:
        raise ApiError(404, f"Sink {name} does not exist", grpc="NOT_FOUND")
    return obj


def log_sink_get(ctx, project, name):
    return 200, copy.deepcopy(log_sink_lookup(ctx, project, name))


def log_sink_delete(ctx, project, name):
    log_sink_lookup(ctx, project, name)
    if name in LOG_FLOOR:
        raise ApiError(400, f"Sink {name} cannot be deleted", grpc="FAILED_PRECONDITION")
    del ctx.store.project(project)["logSinks"][name]
    return 200, {}


def log_buckets_list(ctx, project, loc):
    buckets = ctx.store.project(project)["logBuckets"]
    items = [log_render_bucket(b, ctx.enum_int) for (l, _), b in buckets.items() if loc == "-" or l == loc]
    return 200, log_page(ctx, items, "buckets", f"logging/{project}/{loc}/buckets")


def log_bucket_lookup(ctx, project, loc, name):
    obj = ctx.store.project(project)["logBuckets"].get((loc, name))
    if obj is None:
        raise ApiError(404, f"Bucket projects/{project}/locations/{loc}/buckets/{name} does not exist",
                       grpc="NOT_FOUND")
    return obj


def log_bucket_get(ctx, project, loc, name):
    return 200, log_render_bucket(log_bucket_lookup(ctx, project, loc, name), ctx.enum_int)


def log_bucket_delete(ctx, project, loc, name):
    """Soft delete: DELETE_REQUESTED (undeletable for 7 days). Locked and built-in buckets are refused."""
    obj = log_bucket_lookup(ctx, project, loc, name)
    if name in LOG_FLOOR:
        raise ApiError(400, f"Bucket {name} cannot be deleted", grpc="FAILED_PRECONDITION")
    if obj.get("locked"):
        raise ApiError(400, f"Bucket {obj['name']} is locked and cannot be deleted", grpc="FAILED_PRECONDITION")
    if obj.get("lifecycleState") == "DELETE_REQUESTED":
        raise ApiError(400, f"Bucket {obj['name']} is already deleted", grpc="FAILED_PRECONDITION")
    obj["lifecycleState"] = "DELETE_REQUESTED"
    obj["updateTime"] = rfc3339_z()
    return 200, {}


def log_bucket_undelete(ctx, project, loc, name):
    obj = log_bucket_lookup(ctx, project, loc, name)
    if obj.get("lifecycleState") != "DELETE_REQUESTED":
        raise ApiError(400, f"Bucket {obj['name']} is not deleted", grpc="FAILED_PRECONDITION")
    obj["lifecycleState"] = "ACTIVE"
    return 200, {}

# --------------------------------------------------------------------------------------------- cloud sql
def sql_enum(value, values: dict, enum_int: bool):
    if enum_int and isinstance(value, str) and value in values:
        return values[value]
    return value


def seed_sql_instance(store: Store, project: str, spec: dict) -> dict:
    obj = copy.deepcopy(spec)
    name = obj.get("name")
    if not name:
        raise ApiError(400, f"seed: Cloud SQL instance without a name: {spec}")
    region = obj.setdefault("region", "us-central1")
    obj.setdefault("kind", "sql#instance")
    obj["project"] = project
    obj.setdefault("state", "RUNNABLE")
    obj.setdefault("instanceType", "READ_REPLICA_INSTANCE" if obj.get("masterInstanceName") else "CLOUD_SQL_INSTANCE")
    obj.setdefault("databaseVersion", "POSTGRES_15")
    obj.setdefault("backendType", "SECOND_GEN")
    obj.setdefault("connectionName", f"{project}:{region}:{name}")
    obj.setdefault("createTime", rfc3339_z())
    obj.setdefault("gceZone", f"{region}-a")
    obj.setdefault("etag", store.etag())
    obj["selfLink"] = f"{SQL_HOST}projects/{project}/instances/{name}"
    if "ipAddresses" not in obj:
        n = store.rng.randrange(1, 250)
        obj["ipAddresses"] = [{"type": "PRIVATE", "ipAddress": f"10.20.{n}.{store.rng.randrange(2, 250)}"}]
    settings = obj.setdefault("settings", {})
    settings.setdefault("kind", "sql#settings")
    settings.setdefault("tier", "db-custom-1-3840")
    settings["settingsVersion"] = str(settings.get("settingsVersion", "1"))
    settings.setdefault("deletionProtectionEnabled", False)
    settings.setdefault("activationPolicy", "ALWAYS")
    return obj


def sql_render(store: Store, project: str, obj: dict, enum_int: bool) -> dict:
    out = copy.deepcopy(obj)
    replicas = sorted(i["name"] for i in store.project(project)["sql"]["instances"].values()
                      if i.get("masterInstanceName") in (obj["name"], f"{project}:{obj['name']}"))
    if replicas:
        out["replicaNames"] = replicas
    for key in ("state", "instanceType"):
        out[key] = sql_enum(out.get(key), SQL_ENUMS[key], enum_int)
    return out


def sql_not_found(project: str, name: str) -> ApiError:
    return ApiError(404, f"The Cloud SQL instance does not exist.", grpc="NOT_FOUND")


def sql_instance(store: Store, project: str, name: str) -> dict:
    obj = store.project(project)["sql"]["instances"].get(name)
    if obj is None:
        raise sql_not_found(project, name)
    return obj


def sql_list(ctx, project):
    store = ctx.store
    items = sorted(store.project(project)["sql"]["instances"].values(), key=lambda i: i["name"])
    try:
        size = int(ctx.params.get("maxResults") or 500)
    except ValueError:
        raise ApiError(400, "Invalid value for maxResults", grpc="INVALID_ARGUMENT")
    size = min(size or 500, 500)
    bad = ApiError(400, "Invalid request: the page token is invalid.", grpc="INVALID_ARGUMENT")
    page, nxt = paginate_names(items, size, ctx.params.get("pageToken"), f"sql/{project}", bad, None)
    body = {"kind": "sql#instancesList"}
    unreachable = store.config.get("sql_unreachable_regions") or []
    if unreachable:
        body["warnings"] = [{"code": sql_enum("REGION_UNREACHABLE", SQL_ENUMS["code"], ctx.enum_int),
                             "message": f"Region(s) {', '.join(unreachable)} unreachable.",
                             "region": r} for r in unreachable]
    if page:
        body["items"] = [sql_render(store, project, i, ctx.enum_int) for i in page]
    if nxt:
        body["nextPageToken"] = nxt
    return 200, body


def sql_get(ctx, project, name):
    return 200, sql_render(ctx.store, project, sql_instance(ctx.store, project, name), ctx.enum_int)


def sql_op(ctx, project, target: dict, op_type: str, finish):
    store = ctx.store
    op_name = str(uuid.UUID(int=store.rng.getrandbits(128)))
    op = {"kind": "sql#operation", "name": op_name, "operationType": op_type, "status": "PENDING",
          "targetId": target["name"], "targetProject": project,
          "targetLink": f"{SQL_HOST}projects/{project}/instances/{target['name']}",
          "selfLink": f"{SQL_HOST}projects/{project}/operations/{op_name}",
          "insertTime": rfc3339_z(), "user": "driftsweep@fake.iam.gserviceaccount.com"}
    rec = {"project": project, "op": op, "polls_left": int(store.config["operation_polls"]), "finish": finish}
    store.sql_ops[(project, op_name)] = rec
    if rec["polls_left"] <= 0:
        finish_sql_op(store, rec)
    return 200, sql_render_op(op, ctx.enum_int)


def finish_sql_op(store: Store, rec: dict):
    op = rec["op"]
    op["status"] = "DONE"
    op["endTime"] = rfc3339_z()
    error = rec["finish"](store, rec)
    if error:
        op["error"] = {"kind": "sql#operationErrors", "errors": [{"kind": "sql#operationError", **error}]}


def sql_render_op(op: dict, enum_int: bool) -> dict:
    out = copy.deepcopy(op)
    for key in ("status", "operationType"):
        out[key] = sql_enum(out[key], SQL_ENUMS[key], enum_int)
    return out


def sql_op_get(ctx, project, op_name):
    rec = ctx.store.sql_ops.get((project, op_name))
    if rec is None:
        raise ApiError(404, f"The operation {op_name} does not exist.", grpc="NOT_FOUND")
    if rec["op"]["status"] != "DONE":
        rec["op"]["status"] = "RUNNING"
        rec["polls_left"] -= 1
        if rec["polls_left"] <= 0:
            finish_sql_op(ctx.store, rec)
    return 200, sql_render_op(rec["op"], ctx.enum_int)


def sql_delete(ctx, project, name):
    store = ctx.store
    sql = store.project(project)["sql"]
    obj = sql_instance(store, project, name)
    if obj["settings"].get("deletionProtectionEnabled"):
        raise ApiError(400, "The instance is protected. Please disable the deletion protection and try again. "
                            "To disable deletion protection, update the instance settings with "
                            "deletionProtectionEnabled set to false.", grpc="FAILED_PRECONDITION")
    if sql_render(store, project, obj, False).get("replicaNames"):
        raise ApiError(400, "The requested operation is not valid for a primary instance with read replicas.",
                       grpc="FAILED_PRECONDITION")
    final = ctx.params.get("enableFinalBackup") == "true"
    ttl = ctx.params.get("finalBackupTtlDays")
    description = ctx.params.get("finalBackupDescription") or ""

    def finish(store, rec):
        if name not in sql["instances"]:
            return {"code": "INSTANCE_NOT_FOUND", "message": "The Cloud SQL instance does not exist."}
        gone = sql["instances"].pop(name)
        sql["backupRuns"].pop(name, None)
        if final:
            backup_id = str(store.rng.randrange(10 ** 12, 10 ** 13))
            now = datetime.now(timezone.utc)
            expiry = now + timedelta(days=int(ttl or 30))
            sql["backups"][backup_id] = {
                "name": f"projects/{project}/backups/{backup_id}", "kind": "sql#backup", "type": "FINAL",
                "instance": name, "description": description, "state": "SUCCESSFUL",
                "databaseVersion": gone.get("databaseVersion"), "backupInterval": {"startTime": rfc3339_z(now),
                                                                                 "endTime": rfc3339_z(now)},
                "expiryTime": rfc3339_z(expiry), "location": gone.get("region"),
                "selfLink": f"{SQL_HOST}projects/{project}/backups/{backup_id}"}
        return None
    return sql_op(ctx, project, obj, "DELETE", finish)


def sql_backup_insert(ctx, project, name):
    store = ctx.store
    sql = store.project(project)["sql"]
    obj = sql_instance(store, project, name)
    if obj.get("instanceType") == "READ_REPLICA_INSTANCE":
        raise ApiError(400, "Backups are not supported for read replicas.", grpc="INVALID_ARGUMENT")
    body = ctx.json_body()

    def finish(store, rec):
        if store.config.get("sql_backup_error"):
            return {"code": "BACKUP_FAILED", "message": "The backup failed (fake_gcp config sql_backup_error)."}
        if name not in sql["instances"]:
            return {"code": "INSTANCE_NOT_FOUND", "message": "The Cloud SQL instance does not exist."}
        run_id = str(store.rng.randrange(10 ** 12, 10 ** 13))
        now = rfc3339_z()
        sql["backupRuns"].setdefault(name, {})[run_id] = {
            "kind": "sql#backupRun", "id": run_id, "status": "SUCCESSFUL", "type": "ON_DEMAND",
            "description": body.get("description", ""), "instance": name, "enqueuedTime": now, "startTime": now,
            "endTime": now, "backupKind": "SNAPSHOT", "location": obj.get("region"),
            "selfLink": f"{SQL_HOST}projects/{project}/instances/{name}/backupRuns/{run_id}"}
        return None
    return sql_op(ctx, project, obj, "BACKUP_VOLUME", finish)


def sql_backup_runs_list(ctx, project, name):
    store = ctx.store
    sql_instance(store, project, name)
    runs = sorted(store.project(project)["sql"]["backupRuns"].get(name, {}).values(),
                  key=lambda r: (r.get("enqueuedTime", ""), r["id"]), reverse=True)
    size = min(int(ctx.params.get("maxResults") or 100) or 100, 500)
    token = ctx.params.get("pageToken")
    start = 0
    if token:
        t = decode_token(token)
        if t is None or t.get("s") != f"runs/{project}/{name}":
            raise ApiError(400, "Invalid request: the page token is invalid.", grpc="INVALID_ARGUMENT")
        start = int(t["k"])
    page = runs[start:start + size]
    body = {"kind": "sql#backupRunsList"}
    if page:
        body["items"] = []
        for r in page:
            body["items"].append(sql_render_run(r, ctx.enum_int))
    if start + size < len(runs):
        body["nextPageToken"] = b64url_token({"s": f"runs/{project}/{name}", "k": start + size})
    return 200, body


def sql_render_run(run: dict, enum_int: bool) -> dict:
    out = copy.deepcopy(run)
    out["status"] = sql_enum(out["status"], SQL_ENUMS["runStatus"], enum_int)
    out["type"] = sql_enum(out["type"], SQL_ENUMS["runType"], enum_int)
    return out


def sql_run(store: Store, project: str, name: str, run_id: str) -> dict:
    run = store.project(project)["sql"]["backupRuns"].get(name, {}).get(run_id)
    if run is None:
        raise ApiError(404, "The backup run does not exist.", grpc="NOT_FOUND")
    return run


def sql_backup_run_get(ctx, project, name, run_id):
    sql_instance(ctx.store, project, name)
    return 200, sql_render_run(sql_run(ctx.store, project, name, run_id), ctx.enum_int)


def sql_backup_run_delete(ctx, project, name, run_id):
    obj = sql_instance(ctx.store, project, name)
    sql_run(ctx.store, project, name, run_id)

    def finish(store, rec):
        store.project(project)["sql"]["backupRuns"].get(name, {}).pop(run_id, None)
        return None
    return sql_op(ctx, project, obj, "DELETE_VOLUME", finish)


def sql_render_backup(b: dict, enum_int: bool) -> dict:
    out = copy.deepcopy(b)
    out["state"] = sql_enum(out.get("state"), SQL_ENUMS["backupState"], enum_int)
    out["type"] = sql_enum(out.get("type"), SQL_ENUMS["backupType"], enum_int)
    return out


def sql_project_backup(store: Store, project: str, backup_id: str) -> dict:
    b = store.project(project)["sql"]["backups"].get(backup_id)
    if b is None:
        raise ApiError(404, "The backup does not exist.", grpc="NOT_FOUND")
    return b


def sql_backups_list(ctx, project):
    backups = sorted(ctx.store.project(project)["sql"]["backups"].items())
    try:
        size = int(ctx.params.get("pageSize") or 500)
    except ValueError:
        raise ApiError(400, "Invalid value for pageSize", grpc="INVALID_ARGUMENT")
    size = min(size or 500, 2000)
    token = ctx.params.get("pageToken")
    start = 0
    if token:
        t = decode_token(token)
        if t is None or t.get("s") != f"backups/{project}":
            raise ApiError(400, "Invalid request: the page token is invalid.", grpc="INVALID_ARGUMENT")
        start = int(t["k"])
    page = backups[start:start + size]
    body = {}
    if page:
        body["backups"] = [sql_render_backup(b, ctx.enum_int) for _, b in page]
    if start + size < len(backups):
        body["nextPageToken"] = b64url_token({"s": f"backups/{project}", "k": start + size})
    return 200, body


def sql_backup_get(ctx, project, backup_id):
    return 200, sql_render_backup(sql_project_backup(ctx.store, project, backup_id), ctx.enum_int)


def sql_backup_delete(ctx, project, backup_id):
    b = sql_project_backup(ctx.store, project, backup_id)

    def finish(store, rec):
        store.project(project)["sql"]["backups"].pop(backup_id, None)
        return None
    return sql_op(ctx, project, {"name": b["instance"]}, "DELETE_BACKUP", finish)


# --------------------------------------------------------------------------------------------- routing
SEG = r"([^/]+)"
COMPUTE_COLL = (r"(firewalls|sslCertificates|targetHttpsProxies|targetSslProxies|addresses|snapshots|forwardingRules"
                r"|targetHttpProxies|targetTcpProxies|urlMaps|backendServices|backendBuckets|healthChecks"
                r"|targetGrpcProxies)")
REGION_COLL = (r"(addresses|forwardingRules|targetHttpProxies|targetHttpsProxies|targetTcpProxies|urlMaps"
               r"|backendServices|healthChecks)")
SA = r"([^/:]+)"
CMP = rf"/v1/projects/{SEG}/locations/{SEG}"
ROUTES = [
    ("GET", rf"/compute/v1/projects/{SEG}/global/operations", compute_op_list),
    ("GET", rf"/compute/v1/projects/{SEG}/global/operations/{SEG}", compute_op_get),
    ("POST", rf"/compute/v1/projects/{SEG}/global/operations/{SEG}/wait", compute_op_wait),
    ("DELETE", rf"/compute/v1/projects/{SEG}/global/operations/{SEG}", compute_op_delete),
    ("GET", rf"/compute/v1/projects/{SEG}/aggregated/instanceGroupManagers", igm_aggregated),
    ("GET", rf"/compute/v1/projects/{SEG}/aggregated/{SEG}", aggregated_list),
    ("GET", rf"/compute/v1/projects/{SEG}/regions/{SEG}/{REGION_COLL}", region_compute_list),
    ("GET", rf"/compute/v1/projects/{SEG}/regions/{SEG}/{REGION_COLL}/{SEG}", region_compute_get),
    ("DELETE", rf"/compute/v1/projects/{SEG}/regions/{SEG}/{REGION_COLL}/{SEG}", region_compute_delete),
    ("GET", rf"/compute/v1/projects/{SEG}/zones/{SEG}/disks/{SEG}", zone_disk_get),
    ("DELETE", rf"/compute/v1/projects/{SEG}/zones/{SEG}/disks/{SEG}", zone_disk_delete),
    ("POST", rf"/compute/v1/projects/{SEG}/zones/{SEG}/disks/{SEG}/createSnapshot", zone_disk_create_snapshot),
    ("GET", rf"/compute/v1/projects/{SEG}/zones/{SEG}/operations/{SEG}", zone_op_get),
    ("POST", rf"/compute/v1/projects/{SEG}/zones/{SEG}/operations/{SEG}/wait", zone_op_wait),
    ("GET", rf"/compute/v1/projects/{SEG}/regions/{SEG}/operations/{SEG}", region_op_get),
    ("POST", rf"/compute/v1/projects/{SEG}/regions/{SEG}/operations/{SEG}/wait", region_op_wait),
    ("GET", rf"/compute/v1/projects/{SEG}/global/{COMPUTE_COLL}", compute_list),
    ("GET", rf"/compute/v1/projects/{SEG}/global/{COMPUTE_COLL}/{SEG}", compute_get),
    ("DELETE", rf"/compute/v1/projects/{SEG}/global/{COMPUTE_COLL}/{SEG}", compute_delete),
    ("GET", rf"/v1/projects/{SEG}/serviceAccounts", iam_list),
    ("POST", rf"/v1/projects/{SEG}/serviceAccounts", iam_create),
    ("GET", rf"/v1/projects/{SEG}/serviceAccounts/{SA}", iam_get),
    ("PATCH", rf"/v1/projects/{SEG}/serviceAccounts/{SA}", iam_patch),
    ("PUT", rf"/v1/projects/{SEG}/serviceAccounts/{SA}", iam_update),
    ("DELETE", rf"/v1/projects/{SEG}/serviceAccounts/{SA}", iam_delete),
    ("POST", rf"/v1/projects/{SEG}/serviceAccounts/{SA}:disable", iam_set_disabled(True)),
    ("POST", rf"/v1/projects/{SEG}/serviceAccounts/{SA}:enable", iam_set_disabled(False)),
    ("POST", rf"/v1/projects/{SEG}/serviceAccounts/{SA}:undelete", iam_undelete),
    ("GET", rf"{CMP}/certificates", cm_list_certificates),
    ("GET", rf"{CMP}/certificates/{SEG}", cm_get("certificates")),
    ("DELETE", rf"{CMP}/certificates/{SEG}", cm_delete("certificates")),
    ("GET", rf"{CMP}/certificateMaps", cm_list_maps),
    ("GET", rf"{CMP}/certificateMaps/{SEG}", cm_get("certificateMaps")),
    ("DELETE", rf"{CMP}/certificateMaps/{SEG}", cm_delete("certificateMaps")),
    ("GET", rf"{CMP}/certificateMaps/{SEG}/certificateMapEntries", cm_list_entries),
    ("GET", rf"{CMP}/certificateMaps/{SEG}/certificateMapEntries/{SEG}", cm_get("certificateMapEntries")),
    ("DELETE", rf"{CMP}/certificateMaps/{SEG}/certificateMapEntries/{SEG}", cm_delete("certificateMapEntries")),
    ("GET", rf"/v1/projects/{SEG}/instances", sql_list),
    ("GET", rf"/v1/projects/{SEG}/instances/{SEG}", sql_get),
    ("DELETE", rf"/v1/projects/{SEG}/instances/{SEG}", sql_delete),
    ("GET", rf"/v1/projects/{SEG}/instances/{SEG}/backupRuns", sql_backup_runs_list),
    ("POST", rf"/v1/projects/{SEG}/instances/{SEG}/backupRuns", sql_backup_insert),
    ("GET", rf"/v1/projects/{SEG}/instances/{SEG}/backupRuns/{SEG}", sql_backup_run_get),
    ("DELETE", rf"/v1/projects/{SEG}/instances/{SEG}/backupRuns/{SEG}", sql_backup_run_delete),
    ("GET", rf"/v1/projects/{SEG}/backups", sql_backups_list),
    ("GET", rf"/v1/projects/{SEG}/backups/{SEG}", sql_backup_get),
    ("DELETE", rf"/v1/projects/{SEG}/backups/{SEG}", sql_backup_delete),
    ("GET", rf"/v1/projects/{SEG}/operations/{SEG}", sql_op_get),
    ("GET", rf"{CMP}/operations", cm_op_list),
    ("GET", rf"{CMP}/operations/([^/:]+)", cm_op_get),
    ("DELETE", rf"{CMP}/operations/([^/:]+)", cm_op_delete),
    ("POST", rf"{CMP}/operations/([^/:]+):cancel", cm_op_cancel),
    ("GET", rf"/v2/projects/{SEG}/sinks", log_sinks_list),
    ("GET", rf"/v2/projects/{SEG}/sinks/{SEG}", log_sink_get),
    ("DELETE", rf"/v2/projects/{SEG}/sinks/{SEG}", log_sink_delete),
    ("GET", rf"/v2/projects/{SEG}/locations/{SEG}/buckets", log_buckets_list),
    ("GET", rf"/v2/projects/{SEG}/locations/{SEG}/buckets/([^/:]+)", log_bucket_get),
    ("DELETE", rf"/v2/projects/{SEG}/locations/{SEG}/buckets/([^/:]+)", log_bucket_delete),
    ("POST", rf"/v2/projects/{SEG}/locations/{SEG}/buckets/([^/:]+):undelete", log_bucket_undelete),
]
ROUTES = [(m, re.compile(p + "$"), h) for m, p, h in ROUTES]


def classify(path: str):
    """-> (api style, service name, project) for error formatting and disabled-service checks."""
    m = re.match(r"/compute/v1/projects/([^/]+)", path)
    if m or path.startswith("/compute/"):
        return "compute", COMPUTE, m.group(1) if m else None
    m = re.match(r"/v1/projects/([^/]+)/serviceAccounts", path)
    if m:
        return "iam", IAM, m.group(1)
    m = re.match(r"/v1/projects/([^/]+)/(instances|operations|backups)(/|$)", path)
    if m:
        return "sql", SQL, m.group(1)
    m = re.match(r"/v1/projects/([^/]+)/locations", path)
    if m:
        return "cm", CM, m.group(1)
    m = re.match(r"/v2/projects/([^/]+)", path)
    if m:
        return "logging", LOGGING, m.group(1)
    return "other", "googleapis.com", None


class Ctx:
    def __init__(self, store, params, body_bytes, enum_int):
        self.store = store
        self.params = params
        self.body_bytes = body_bytes
        self.enum_int = enum_int
        self.notes = []

    def json_body(self) -> dict:
        if not self.body_bytes:
            return {}
        try:
            obj = json.loads(self.body_bytes)
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.", grpc="INVALID_ARGUMENT")
        if not isinstance(obj, dict):
            raise ApiError(400, "Invalid JSON payload received. Expected an object.", grpc="INVALID_ARGUMENT")
        return obj


# --------------------------------------------------------------------------------------------- control
SEED_KEYS = {"project", "location", "projectNumber", "firewalls", "sslCertificates", "targetHttpsProxies",
             "targetSslProxies", "addresses", "forwardingRules", "targetHttpProxies", "targetTcpProxies", "snapshots", "disks", "serviceAccounts", "certificates", "certificateMaps", "certificateMapEntries", "logSinks", "logBuckets",
             "sqlInstances", "sqlBackupRuns", "sqlBackups", "urlMaps", "backendServices", "backendBuckets",
             "healthChecks", "targetGrpcProxies", "instanceGroupManagers"}


def seed(store: Store, spec: dict) -> int:
    if not isinstance(spec, dict):
        raise ApiError(400, "seed: expected an object or a list of objects")
    unknown = set(spec) - SEED_KEYS
    if unknown:
        raise ApiError(400, f"seed: unknown keys {sorted(unknown)}; known: {sorted(SEED_KEYS)}")
    project = spec.get("project") or "test-project"
    loc = spec.get("location") or "global"
    p = store.project(project)
    if spec.get("projectNumber"):
        p["number"] = str(spec["projectNumber"])
    n = 0
    for coll in COMPUTE_COLLECTIONS:
        for item in spec.get(coll) or []:
            obj = seed_compute(store, project, coll, item)
            container(store, project, coll, region_of(obj))[obj["name"]] = obj
            n += 1
    for item in spec.get("instanceGroupManagers") or []:
        scope, obj = seed_igm(store, project, item)
        p["igms"][(scope, obj["name"])] = obj
        n += 1
    for item in spec.get("disks") or []:
        zone, obj = seed_disk(store, project, item)
        zonal_store(store, project, zone, "disks")[obj["name"]] = obj
        n += 1
    for item in spec.get("sqlInstances") or []:
        obj = seed_sql_instance(store, project, item)
        p["sql"]["instances"][obj["name"]] = obj
        n += 1
    for item in spec.get("sqlBackupRuns") or []:
        run = copy.deepcopy(item)
        instance = run.get("instance")
        if not instance:
            raise ApiError(400, f"seed: backup run without an instance: {item}")
        run.setdefault("id", str(store.rng.randrange(10 ** 12, 10 ** 13)))
        run["id"] = str(run["id"])
        run.setdefault("kind", "sql#backupRun")
        run.setdefault("status", "SUCCESSFUL")
        run.setdefault("type", "AUTOMATED")
        run.setdefault("enqueuedTime", rfc3339_z())
        run.setdefault("startTime", run["enqueuedTime"])
        run.setdefault("endTime", run["enqueuedTime"])
        run["selfLink"] = f"{SQL_HOST}projects/{project}/instances/{instance}/backupRuns/{run['id']}"
        p["sql"]["backupRuns"].setdefault(instance, {})[run["id"]] = run
        n += 1
    for item in spec.get("sqlBackups") or []:
        b = copy.deepcopy(item)
        instance = b.get("instance")
        if not instance:
            raise ApiError(400, f"seed: backup without an instance: {item}")
        backup_id = str(b.pop("id", None) or store.rng.randrange(10 ** 12, 10 ** 13))
        start = b.pop("startTime", None) or rfc3339_z()
        b.setdefault("kind", "sql#backup")
        b.setdefault("type", "FINAL")
        b.setdefault("state", "SUCCESSFUL")
        b.setdefault("backupInterval", {"startTime": start, "endTime": start})
        b["name"] = f"projects/{project}/backups/{backup_id}"
        b["selfLink"] = f"{SQL_HOST}projects/{project}/backups/{backup_id}"
        p["sql"]["backups"][backup_id] = b
        n += 1
    for item in spec.get("serviceAccounts") or []:
        obj = seed_service_account(store, project, item)
        p["serviceAccounts"][obj["email"]] = obj
        n += 1
    for item in spec.get("logSinks") or []:
        obj = seed_log_sink(store, project, item)
        p["logSinks"][obj["name"]] = obj
        n += 1
    for item in spec.get("logBuckets") or []:
        key, obj = seed_log_bucket(store, project, item)
        p["logBuckets"][key] = obj
        n += 1
    state = store.location(project, loc)
    for coll in ("certificates", "certificateMaps"):
        for item in spec.get(coll) or []:
            obj = seed_cm(store, project, loc, coll, item)
            state[coll][last_segment(obj["name"])] = obj
            n += 1
    for item in spec.get("certificateMapEntries") or []:
        obj = seed_cm(store, project, loc, "certificateMapEntries", item)
        map_name = obj["_map"]
        if map_name not in state["certificateMaps"]:
            state["certificateMaps"][map_name] = seed_cm(store, project, loc, "certificateMaps", {"name": map_name})
        state["certificateMapEntries"][(map_name, last_segment(obj["name"]))] = obj
        n += 1
    return n


def dump_state(store: Store) -> dict:
    projects = {}
    for pid, p in sorted(store.projects.items()):
        out = {"projectNumber": p["number"]}
        for coll in COMPUTE_COLLECTIONS:
            out[coll] = [p["compute"][coll][k] for k in sorted(p["compute"][coll])]
        out["instanceGroupManagers"] = [p["igms"][k] for k in sorted(p["igms"])]
        out["regions"] = {r: {c: [objs[k] for k in sorted(objs)] for c, objs in colls.items()}
                          for r, colls in sorted(p["regions"].items())}
        out["zones"] = {z: {c: [objs[k] for k in sorted(objs)] for c, objs in colls.items()}
                        for z, colls in sorted(p["zones"].items())}
        out["serviceAccounts"] = [p["serviceAccounts"][k] for k in sorted(p["serviceAccounts"])]
        out["deletedServiceAccounts"] = list(p["deletedServiceAccounts"].values())
        out["logSinks"] = [p["logSinks"][k] for k in sorted(p["logSinks"])]
        out["logBuckets"] = [p["logBuckets"][k] for k in sorted(p["logBuckets"])]
        out["sqlInstances"] = [p["sql"]["instances"][k] for k in sorted(p["sql"]["instances"])]
        out["sqlBackupRuns"] = {i: list(runs.values()) for i, runs in sorted(p["sql"]["backupRuns"].items())}
        out["sqlBackups"] = [p["sql"]["backups"][k] for k in sorted(p["sql"]["backups"])]
        out["locations"] = {}
        for loc, st in sorted(p["locations"].items()):
            out["locations"][loc] = {
                "certificates": [st["certificates"][k] for k in sorted(st["certificates"])],
                "certificateMaps": [cm_render(store, "certificateMaps", st["certificateMaps"][k], pid, loc, False)
                                    for k in sorted(st["certificateMaps"])],
                "certificateMapEntries": [cm_render(store, "certificateMapEntries", st["certificateMapEntries"][k],
                                                    pid, loc, False) for k in sorted(st["certificateMapEntries"])],
            }
        projects[pid] = out
    return {
        "projects": projects,
        "operations": {
            "compute": [dict(r["op"], _project=r["project"], _pollsLeft=r["polls_left"])
                        for r in store.compute_ops.values()],
            "certificatemanager": [dict(r["op"], _pollsLeft=r["polls_left"]) for r in store.cm_ops.values()],
            "sql": [dict(r["op"], _pollsLeft=r["polls_left"]) for r in store.sql_ops.values()],
        },
    }


FAULT_KEYS = {"method", "path", "query", "status", "retry_after", "delay_ms", "times", "reason", "message",
              "format", "grpc_status"}


def add_fault(store: Store, spec: dict):
    if not isinstance(spec, dict):
        raise ApiError(400, "fault must be an object")
    unknown = set(spec) - FAULT_KEYS
    if unknown:
        raise ApiError(400, f"fault: unknown keys {sorted(unknown)}")
    fault = {k: spec.get(k) for k in FAULT_KEYS}
    fault["delay_ms"] = int(fault["delay_ms"] or 0)
    if fault["path"]:
        re.compile(fault["path"])
    fault["hits"] = 0
    store.faults.append(fault)


def match_fault(store: Store, method: str, path: str, query: str):
    for fault in store.faults:
        if fault["times"] is not None and fault["times"] <= 0:
            continue
        if fault["method"] and fault["method"].upper() != method:
            continue
        if fault["path"] and not re.search(fault["path"], path):
            continue
        if fault["query"] and fault["query"] not in query:
            continue
        if fault["times"] is not None:
            fault["times"] -= 1
        fault["hits"] += 1
        return dict(fault)
    return None


def control(store: Store, method: str, path: str, body: bytes):
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return 400, {"error": "invalid JSON"}
    if path == "/_fake/help":
        return 200, {"help": __doc__}
    if path == "/_fake/reset" and method == "POST":
        store.reset()
        return 200, {"reset": True}
    if path == "/_fake/seed" and method == "POST":
        specs = data if isinstance(data, list) else [data or {}]
        n = sum(seed(store, s) for s in specs)
        return 200, {"created": n}
    if path == "/_fake/faults":
        if method == "POST":
            for spec in data if isinstance(data, list) else [data or {}]:
                add_fault(store, spec)
            return 200, {"faults": len(store.faults)}
        if method == "GET":
            return 200, {"faults": store.faults}
        if method == "DELETE":
            store.faults = []
            return 200, {"faults": 0}
    if path == "/_fake/config":
        if method == "POST":
            data = data or {}
            unknown = set(data) - set(DEFAULT_CONFIG)
            if unknown:
                raise ApiError(400, f"config: unknown keys {sorted(unknown)}; known: {sorted(DEFAULT_CONFIG)}")
            if "compute_in_use" in data and data["compute_in_use"] not in ("request", "operation"):
                raise ApiError(400, "config: compute_in_use must be 'request' or 'operation'")
            if "cm_in_use" in data and data["cm_in_use"] not in ("request", "operation"):
                raise ApiError(400, "config: cm_in_use must be 'request' or 'operation'")
            store.config.update(data)
            return 200, store.config
        if method == "GET":
            return 200, store.config
    if path == "/_fake/state" and method == "GET":
        return 200, dump_state(store)
    if path == "/_fake/requests":
        if method == "GET":
            return 200, store.requests
        if method == "DELETE":
            store.requests = []
            return 200, {"requests": 0}
    return 404, {"error": f"unknown control endpoint {method} {path}; see GET /_fake/help"}


# --------------------------------------------------------------------------------------------- HTTP
GFE_HTML = ("<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error {code} ({text})!!1</title>\n"
            "  <p><b>{code}.</b> <ins>That\u2019s an error.</ins>\n  <p>The server encountered an error. "
            "<ins>That\u2019s all we know.</ins>\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        if getattr(self.server, "verbose", False):
            sys.stderr.write("fake_gcp: " + (fmt % args) + "\n")

    def _read_body(self) -> bytes:
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload, headers: dict | None = None, content_type="application/json; charset=UTF-8"):
        if payload is None:
            data = b""
        elif isinstance(payload, (bytes, str)):
            data = payload.encode() if isinstance(payload, str) else payload
        else:
            data = (json.dumps(payload, indent=2) + "\n").encode()
        self.send_response(status)
        if data or status != 204:
            self.send_header("Content-Type", content_type)
        self.send_header("Vary", "Origin, X-Origin, Referer")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    def _handle(self):
        split = urlsplit(self.path)
        path = unquote(split.path)
        raw_query = split.query
        body = self._read_body()
        store = STORE
        if path.startswith("/_fake/"):
            with store.lock:
                try:
                    status, payload = control(store, self.command, path, body)
                except ApiError as e:
                    status, payload = e.status, {"error": e.message}
            self._send(status, payload)
            return
        params = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        query = unquote(raw_query)
        alt = params.get("$alt") or params.get("alt") or ""
        enum_int = "enum-encoding=int" in alt
        api, service, project = classify(path)
        try:
            parsed_body = json.loads(body) if body else None
        except ValueError:
            parsed_body = body.decode(errors="replace")
        entry = {"method": self.command, "path": path, "query": query, "params": params, "status": None,
                 "body": parsed_body, "fault": False, "time": time.time(),
                 "api_client": self.headers.get("x-goog-api-client")}
        headers = {}
        with store.lock:
            fault = match_fault(store, self.command, path, query)
            store.requests.append(entry)
            cfg = dict(store.config)
        if fault and fault["delay_ms"]:
            time.sleep(fault["delay_ms"] / 1000.0)
        content_type = "application/json; charset=UTF-8"
        with store.lock:
            try:
                if fault and fault["status"]:
                    entry["fault"] = True
                    err = fault_error(api, service, project, self.command, fault)
                    if fault.get("format") == "html":
                        status = err.status
                        payload = GFE_HTML.format(code=status, text=HTTP_REASON.get(status, "Error").title())
                        content_type = "text/html; charset=UTF-8"
                        headers.update(err.headers)
                        raise _Answered(status, payload)
                    raise err
                if project and service in (cfg.get("disabled_services") or {}).get(project, []):
                    raise service_disabled_error(api, service, project)
                ctx = Ctx(store, params, body, enum_int)
                handler, groups, allowed = None, (), []
                for method, rx, h in ROUTES:
                    m = rx.match(path)
                    if m:
                        if method == self.command:
                            handler, groups = h, m.groups()
                            break
                        allowed.append(method)
                if handler is None:
                    if allowed:
                        raise ApiError(501, f"fake_gcp does not implement {self.command} {path} "
                                            f"(implemented: {', '.join(sorted(set(allowed)))})", grpc="UNIMPLEMENTED")
                    raise ApiError(404, f"fake_gcp: no such method {self.command} {path}", grpc="NOT_FOUND")
                status, payload = handler(ctx, *groups)
                if ctx.notes:
                    entry["notes"] = ctx.notes
            except _Answered as a:
                status, payload = a.status, a.payload
            except ApiError as e:
                status, payload = e.status, error_payload(api, e, project, cfg)
                headers.update(e.headers)
            entry["status"] = status
        self._send(status, payload, headers, content_type)

    def _safe(self):
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # report instead of dropping the connection
            import traceback
            traceback.print_exc()
            try:
                self._send(500, {"error": {"code": 500, "message": f"fake_gcp internal error: {exc!r}",
                                           "status": "INTERNAL"}})
            except Exception:
                pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _safe


class _Answered(Exception):
    def __init__(self, status, payload):
        super().__init__(status)
        self.status = status
        self.payload = payload


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    ap = argparse.ArgumentParser(description="fake Google Cloud REST server (test double)")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = pick a free one)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    server = Server(("127.0.0.1", args.port), Handler)
    server.verbose = args.verbose
    port = server.server_address[1]

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
