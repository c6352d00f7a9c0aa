#!/usr/bin/env python3
"""A fake kube-apiserver for driftsweep's integration tests (Python 3.11, stdlib only).

    python3 tests/apiserver/fake_apiserver.py --port 8080     (--port 0 picks a free port)

Binds 127.0.0.1 only, plain HTTP/1.1 (keep-alive), prints "listening on 127.0.0.1:PORT", exits 0 on
SIGTERM/SIGINT. Authentication headers are accepted and ignored.

It follows kube-apiserver v1.33 semantics and JSON shapes: discovery (legacy and aggregated
apidiscovery.k8s.io/v2), typed lists without per-item kind/apiVersion, label and field selectors with
upstream's parser and error texts, limit/continue served from a consistent snapshot with etcd-style
continue tokens (base64url {"v","rv","start"}) and 410 Expired, DeleteOptions read from the body (or
from the query only when the body is empty, as upstream does), preconditions, propagationPolicy,
finalizers, the garbage collector, the namespace controller, managedFields, server-side apply with
conflicts, metadata-only (PartialObjectMetadata) and Table responses, protobuf request bodies for the
kinds kubectl's typed `create` commands send, and watch (including sendInitialEvents watch-lists).

Controllers run in a background thread every 50 ms (like the real ones, asynchronously):
garbage collector, namespace controller, ServiceAccount "default" and ConfigMap "kube-root-ca.crt"
publishers (they also re-create those two objects when deleted, as real clusters do).
POST /_fake/settle runs them synchronously until nothing is left to do.

Control API (not Kubernetes; never written to the request log):
  POST   /_fake/faults           append a fault (or a list of faults):
                                 {"method": "GET"|null, "path": "<re.search on the path>"|null,
                                  "query": "<substring of the raw query>"|null, "status": 403|410|429|500|...|null,
                                  "retry_after": seconds|null, "delay_ms": int, "times": int|null,
                                  "reason": str, "message": str, "user": str (403), "format": "text" (plain-text body,
                                  like API Priority and Fairness' real 429s)}
                                 the first matching fault with remaining times applies; status null = delay only
  GET    /_fake/faults           the faults with their remaining times and hits
  DELETE /_fake/faults           clear the faults
  GET    /_fake/requests         [{"method","path","query","status","accept","content_type","authorization": bool,
                                   "body": parsed JSON|null, "user_agent", "fault": bool, "time"}] in order
  DELETE /_fake/requests         clear the log
  POST   /_fake/seed             JSON list (or List) of objects, created as a create would (namespaces first), except
                                 that metadata.creationTimestamp, metadata.uid and status are kept -> {"created": n}
  POST   /_fake/expire-continue  every outstanding continue token answers 410 Expired (as after an etcd compaction)
  POST   /_fake/settle           run the controllers until they are idle
  POST   /_fake/reset            back to the start-up state; clears faults and the log (resourceVersions stay monotonic)
  POST   /_fake/config           {"aggregated_discovery": bool, "controllers": bool}
  GET    /_fake/state            {"resourceVersion", "compacted", "snapshots", "objects": {resource: count}}
"""
from __future__ import annotations

import argparse
import base64
import bisect
import collections
import json
import re
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CONTROL_HELP = __doc__

SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "emulationMajor": "1",
    "emulationMinor": "33",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "32",
    "gitVersion": "v1.33.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}

DEFAULT_FORBIDDEN_USER = "system:serviceaccount:driftsweep:driftsweep"
ROOT_CA_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrM3Mtc2Vy\n"
    "dmVyLWNhQGZha2UtYXBpc2VydmVyMB4XDTI1MDEwMTAwMDAwMFoXDTM1MDEwMTAw\n"
    "MDAwMFowIzEhMB8GA1UEAwwYazNzLXNlcnZlci1jYUBmYWtlLWFwaXNlcnZlcjBZ\n"
    "MBMGByqGSM49AgEGCCqGSM49AwEHA0IABFakeFakeFakeFakeFakeFakeFakeFake\n"
    "FakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeo0\n"
    "IwQDAOBgNVHQ8BAf8EBAMCAqQwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNI\n"
    "ADBFAiEAfakefakefakefakefakefakefakefakefakefakefakefakefakeCIGZh\n"
    "a2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZQ==\n"
    "-----END CERTIFICATE-----\n"
)
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
    "such as the internal service (kubernetes.default.svc). No other usage is guaranteed across "
    "distributions of Kubernetes clusters."
)
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
MAX_SNAPSHOTS = 64
MAX_EVENTS = 50000
CONTROLLER_PERIOD = 0.05

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
    "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATED_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. "
    "It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


# --------------------------------------------------------------------------------------------- helpers
def now_ts() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(value):
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except (TypeError, ValueError):
            return None


def jcopy(value):
    """Deep copy of a JSON value (much faster than copy.deepcopy)."""
    t = type(value)
    if t is dict:
        return {k: jcopy(v) for k, v in value.items()}
    if t is list:
        return [jcopy(v) for v in value]
    return value


def dumps(value) -> bytes:
    return (json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def go_quote(s) -> str:
    """Go's %q for the plain strings we meet."""
    return json.dumps(str(s), ensure_ascii=False)


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m" if rem == 0 else f"{minutes}m{rem}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


# --------------------------------------------------------------------------------------------- errors
class ApiError(Exception):
    """An error answered as a metav1.Status, shaped like k8s.io/apimachinery/pkg/api/errors."""

    def __init__(self, code, reason, message, details=None, headers=None, list_meta=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.list_meta = list_meta or {}

    def body(self):
        status = {"kind": "Status", "apiVersion": "v1", "metadata": dict(self.list_meta), "status": "Failure"}
        if self.message:
            status["message"] = self.message
        if self.reason:
            status["reason"] = self.reason
        if self.details is not None:
            status["details"] = self.details
        status["code"] = self.code
        return status


def _details(res, name=None, **extra):
    d = {}
    if name:
        d["name"] = name
    if res is not None:
        if res.group:
            d["group"] = res.group
        d["kind"] = res.plural
    d.update({k: v for k, v in extra.items() if v not in (None, "", [], 0)})
    return d


def err_not_found(res, name):
    return ApiError(404, "NotFound", f"{res.qualified} {go_quote(name)} not found", _details(res, name))


def err_already_exists(res, name, deleting=False):
    msg = f"{res.qualified} {go_quote(name)} already exists"
    if deleting:
        msg = "object is being deleted: " + msg
    return ApiError(409, "AlreadyExists", msg, _details(res, name))


def err_conflict(res_qualified, group, kind_field, name, why):
    d = {"name": name} if name else {}
    if group:
        d["group"] = group
    if kind_field:
        d["kind"] = kind_field
    return ApiError(409, "Conflict", f"Operation cannot be fulfilled on {res_qualified} {go_quote(name)}: {why}", d)


def err_res_conflict(res, name, why):
    return err_conflict(res.qualified, res.group, res.plural, name, why)


OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"


def err_bad_request(message):
    return ApiError(400, "BadRequest", message)


def err_generic(code, message_override=None):
    """errors.NewGenericServerResponse with an empty resource (go-restful level errors)."""
    table = {
        400: ("BadRequest", "the server rejected our request for an unknown reason"),
        401: ("Unauthorized", "the server has asked for the client to provide credentials"),
        404: ("NotFound", "the server could not find the requested resource"),
        405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
        406: ("NotAcceptable", "the server was unable to respond with a content type that the client supports"),
        409: ("Conflict", "the server reported a conflict"),
        415: ("UnsupportedMediaType", message_override or ""),
        422: ("Invalid", "the server rejected our request due to an error in our request"),
        429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
        503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
        504: ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request"),
    }
    reason, msg = table.get(code, ("InternalError" if code >= 500 else "", ""))
    if code >= 500 and code not in table:
        msg = f"an error on the server ({go_quote(message_override or 'unknown')}) has prevented the request from succeeding"
    if message_override and code in (406, 415):
        msg = message_override
    return ApiError(code, reason, msg, {})


class FieldErr:
    """k8s.io/apimachinery/pkg/util/validation/field.Error"""

    def __init__(self, typ, field, detail, value=None, has_value=True):
        self.typ, self.field, self.detail, self.value, self.has_value = typ, field, detail, value, has_value

    def body(self):
        if self.typ == "FieldValueInvalid":
            return f"Invalid value: {_go_value(self.value)}: {self.detail}"
        if self.typ == "FieldValueRequired":
            return f"Required value: {self.detail}" if self.detail else "Required value"
        if self.typ == "FieldValueForbidden":
            return f"Forbidden: {self.detail}" if self.detail else "Forbidden"
        if self.typ == "FieldValueNotSupported":
            return f"Unsupported value: {_go_value(self.value)}: supported values: {self.detail}"
        if self.typ == "FieldValueDuplicate":
            return f"Duplicate value: {_go_value(self.value)}"
        if self.typ == "FieldValueTooLong":
            return f"Too long: {self.detail}"
        return self.detail

    def __str__(self):
        return f"{self.field}: {self.body()}"


def _go_value(v):
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, list):
        return "[]string{" + ", ".join(go_quote(x) for x in v) + "}"
    return str(v)


def err_invalid(group, kind, name, errs):
    qualified_kind = f"{kind}.{group}" if group else kind
    agg = str(errs[0]) if len(errs) == 1 else "[" + ", ".join(str(e) for e in errs) + "]"
    details = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": e.typ, "message": e.body(), "field": e.field} for e in errs]
    return ApiError(422, "Invalid", f"{qualified_kind} {go_quote(name)} is invalid: {agg}", details)


def err_forbidden(res, name, why, causes=None):
    if res is None:
        msg = f"forbidden: {why}"
        details = {}
    elif name:
        msg = f"{res.qualified} {go_quote(name)} is forbidden: {why}"
        details = _details(res, name)
    else:
        msg = f"{res.qualified} is forbidden: {why}"
        details = _details(res)
    if causes:
        details["causes"] = causes
    return ApiError(403, "Forbidden", msg, details)


# --------------------------------------------------------------------------------------------- validation
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CONFIG_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")

MSG_DNS1123_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
MSG_DNS1123_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
MSG_DNS1035_LABEL = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
MSG_QUALIFIED_NAME = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
MSG_QUALIFIED_NAME_FULL = (
    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. "
    "'example.com/MyName')"
)
MSG_LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
MSG_CONFIG_KEY = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)


def is_dns1123_subdomain(v):
    errs = []
    if len(v) > 253:
        errs.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN_RE.match(v):
        errs.append(MSG_DNS1123_SUBDOMAIN)
    return errs


def is_dns1123_label(v):
    errs = []
    if len(v) > 63:
        errs.append("must be no more than 63 characters")
    if not DNS1123_LABEL_RE.match(v):
        errs.append(MSG_DNS1123_LABEL)
    return errs


def is_dns1035_label(v):
    errs = []
    if len(v) > 63:
        errs.append("must be no more than 63 characters")
    if not DNS1035_LABEL_RE.match(v):
        errs.append(MSG_DNS1035_LABEL)
    return errs


def is_path_segment_name(v):
    if v in (".", ".."):
        return [f"may not be '{v}'"]
    errs = []
    for bad in ("/", "%"):
        if bad in v:
            errs.append(f"may not contain '{bad}'")
    return errs


def is_qualified_name(v):
    errs = []
    parts = v.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [MSG_QUALIFIED_NAME_FULL]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not QUALIFIED_NAME_RE.match(name):
        errs.append(MSG_QUALIFIED_NAME)
    return errs


def is_label_value(v):
    errs = []
    if len(v) > 63:
        errs.append("must be no more than 63 characters")
    if not LABEL_VALUE_RE.match(v):
        errs.append(MSG_LABEL_VALUE)
    return errs


NAME_VALIDATORS = {
    "subdomain": is_dns1123_subdomain,
    "label": is_dns1123_label,
    "dns1035": is_dns1035_label,
    "path": is_path_segment_name,
}


# --------------------------------------------------------------------------------------------- label selectors
class SelectorError(Exception):
    pass


_SPECIAL = set("=!(),><")
_WS = set(" \t\r\n")
_TOKENS = {")": "CLOSE", ",": "COMMA", "!": "NOT", "==": "DEQ", "=": "EQ", ">": "GT", "in": "IN", "<": "LT",
           "!=": "NEQ", "notin": "NOTIN", "(": "OPEN"}


def _lex_labels(s):
    items = []
    pos = 0
    n = len(s)
    while True:
        while pos < n and s[pos] in _WS:
            pos += 1
        if pos >= n:
            items.append(("EOS", ""))
            return items
        ch = s[pos]
        if ch in _SPECIAL:
            buf = ""
            last = None
            while pos < n and s[pos] in _SPECIAL:
                buf += s[pos]
                if buf in _TOKENS:
                    last = (_TOKENS[buf], buf)
                    pos += 1
                elif last is not None:
                    break
                else:
                    pos += 1
            if last is None:
                items.append(("ERROR", f"error expected: keyword found '{buf}'"))
            else:
                items.append(last)
        else:
            start = pos
            while pos < n and s[pos] not in _SPECIAL and s[pos] not in _WS:
                pos += 1
            word = s[start:pos]
            items.append((_TOKENS[word], word) if word in ("in", "notin") else ("IDENT", word))


def parse_label_selector(selector):
    """labels.Parse: returns a list of (key, op, values); raises SelectorError with upstream's text."""
    items = _lex_labels(selector)
    pos = [0]

    def look(values_ctx=True):
        tok, lit = items[pos[0]]
        if values_ctx and tok in ("IN", "NOTIN"):
            tok = "IDENT"
        return tok, lit

    def consume(values_ctx=True):
        r = look(values_ctx)
        pos[0] += 1
        return r

    reqs = []

    def parse_requirement():
        op = None
        tok, lit = consume()
        if tok == "NOT":
            op = "!"
            tok, lit = consume()
        if tok != "IDENT":
            raise SelectorError(f"found '{lit}', expected: identifier")
        key = lit
        errs = is_qualified_name(key)
        if errs:
            raise SelectorError(f"<nil>: Invalid value: {go_quote(key)}: {'; '.join(errs)}")
        t, _ = look()
        if op == "!":
            return (key, "!", [])  # "!a=b" then fails on the '=' in the caller, like upstream
        if t in ("EOS", "COMMA"):
            return (key, "exists", [])
        tok, lit = consume(values_ctx=False)
        ops = {"IN": "in", "EQ": "=", "DEQ": "==", "GT": "gt", "LT": "lt", "NOTIN": "notin", "NEQ": "!="}
        if tok not in ops:
            raise SelectorError(f"found '{lit}', expected: in, notin, =, ==, !=, gt, lt")
        op = ops[tok]
        if op in ("in", "notin"):
            tok, lit = consume()
            if tok != "OPEN":
                raise SelectorError(f"found '{lit}' expected: '('")
            tok, lit = look()
            if tok in ("IDENT", "COMMA"):
                values = set()
                while True:
                    t2, l2 = consume()
                    if t2 == "IDENT":
                        values.add(l2)
                        t3, l3 = look()
                        if t3 == "COMMA":
                            continue
                        if t3 == "CLOSE":
                            break
                        raise SelectorError(f"found '{l3}', expected: ',' or ')'")
                    elif t2 == "COMMA":
                        if not values:
                            values.add("")
                        t3, _ = look()
                        if t3 == "CLOSE":
                            values.add("")
                            break
                        if t3 == "COMMA":
                            values.add("")
                    else:
                        raise SelectorError(f"found '{l2}', expected: ',', or identifier")
                t4, _ = consume()
                if t4 != "CLOSE":
                    raise SelectorError(f"found '{lit}', expected: ')'")
            elif tok == "CLOSE":
                consume()
                values = {""}
            else:
                raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        else:
            tok, lit = look()
            if tok in ("EOS", "COMMA"):
                values = {""}
            else:
                tok, lit = consume()
                if tok != "IDENT":
                    raise SelectorError(f"found '{lit}', expected: identifier")
                values = {lit}
        values = sorted(values)
        # NewRequirement validation
        ferrs = []
        if op in ("gt", "lt"):
            if len(values) != 1:
                ferrs.append(f"values: Invalid value: []string{{{', '.join(go_quote(v) for v in values)}}}: "
                             "for 'Gt', 'Lt' operators, exactly one value is required")
            for i, v in enumerate(values):
                if not re.fullmatch(r"[+-]?\d+", v):
                    ferrs.append(f"values[{i}]: Invalid value: {go_quote(v)}: for 'Gt', 'Lt' operators, the value must be an integer")
        for i, v in enumerate(values):
            verrs = is_label_value(v)
            if verrs:
                ferrs.append(f"values[{i}][{key}]: Invalid value: {go_quote(v)}: {'; '.join(verrs)}")
        if ferrs:
            raise SelectorError(ferrs[0] if len(ferrs) == 1 else "[" + ", ".join(ferrs) + "]")
        return (key, op, values)

    while True:
        tok, lit = look()
        if tok == "ERROR":
            raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
        if tok in ("IDENT", "NOT"):
            try:
                r = parse_requirement()
            except SelectorError as e:
                raise SelectorError(f"unable to parse requirement: {e}") from None
            reqs.append(r)
            t, l = consume()
            if t == "EOS":
                break
            if t == "COMMA":
                t2, l2 = look()
                if t2 not in ("IDENT", "NOT"):
                    raise SelectorError(f"found '{l2}', expected: identifier after ','")
                continue
            raise SelectorError(f"found '{l}', expected: ',' or 'end of string'")
        elif tok == "EOS":
            break
        else:
            raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
    return reqs


def labels_match(reqs, labels):
    for key, op, values in reqs:
        has = key in labels
        v = labels.get(key)
        if op in ("=", "==", "in"):
            if not has or v not in values:
                return False
        elif op in ("!=", "notin"):
            if has and v in values:
                return False
        elif op == "exists":
            if not has:
                return False
        elif op == "!":
            if has:
                return False
        elif op in ("gt", "lt"):
            if not has:
                return False
            try:
                lv = int(v)
                rv = int(values[0])
            except (TypeError, ValueError):
                return False
            if (op == "gt" and not lv > rv) or (op == "lt" and not lv < rv):
                return False
    return True


# --------------------------------------------------------------------------------------------- field selectors
def _split_field_terms(s):
    terms, cur, i = [], "", 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur += c + s[i + 1]
            i += 2
            continue
        if c == ",":
            terms.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    terms.append(cur)
    return terms


def _unescape_field_value(v):
    out, i = "", 0
    while i < len(v):
        c = v[i]
        if c == "\\":
            if i + 1 >= len(v):
                raise SelectorError("invalid field selector: invalid escape sequence: \\")
            nxt = v[i + 1]
            if nxt not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{nxt}")
            out += nxt
            i += 2
            continue
        if c in ",=":
            raise SelectorError(f"invalid field selector: unescaped {c} in value")
        out += c
        i += 1
    return out


def parse_field_selector(selector):
    """fields.ParseSelector -> list of (field, op, value) with op in {'=', '!='}."""
    reqs = []
    for part in sorted(_split_field_terms(selector)):
        if part == "":
            continue
        found = None
        for i in range(len(part)):
            for op in ("!=", "==", "="):
                if part.startswith(op, i):
                    found = (part[:i], op, part[i + len(op):])
                    break
            if found:
                break
        if not found:
            raise SelectorError(f"invalid selector: '{selector}'; can't understand '{part}'")
        lhs, op, rhs = found
        reqs.append((lhs, "!=" if op == "!=" else "=", _unescape_field_value(rhs)))
    return reqs


def _get_path(obj, path):
    cur = obj
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _pod_fields(o):
    spec, status = o.get("spec") or {}, o.get("status") or {}
    pod_ips = status.get("podIPs") or []
    return {
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.restartPolicy": spec.get("restartPolicy", ""),
        "spec.schedulerName": spec.get("schedulerName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
        "status.phase": status.get("phase", ""),
        "status.podIP": (pod_ips[0].get("ip", "") if pod_ips else status.get("podIP", "")),
        "status.nominatedNodeName": status.get("nominatedNodeName", ""),
    }


FIELD_LABELS = {
    # (group, plural): (accepted labels incl. aliases -> canonical, selectable-fields fn, reject message fn)
    ("", "pods"): (
        {x: x for x in ("metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
                        "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                        "status.podIP", "status.podIPs", "status.nominatedNodeName")} | {"spec.host": "spec.nodeName"},
        _pod_fields, lambda l: f"field label not supported: {l}"),
    ("", "nodes"): (
        {"metadata.name": "metadata.name", "spec.unschedulable": "spec.unschedulable"},
        lambda o: {"spec.unschedulable": "true" if (o.get("spec") or {}).get("unschedulable") else "false"},
        lambda l: f"field label not supported: {l}"),
    ("", "replicationcontrollers"): (
        {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace", "status.replicas": "status.replicas"},
        lambda o: {"status.replicas": str((o.get("status") or {}).get("replicas", 0))},
        lambda l: f"field label not supported: {l}"),
    ("", "namespaces"): (
        {"metadata.name": "metadata.name", "status.phase": "status.phase"},
        lambda o: {"status.phase": (o.get("status") or {}).get("phase", ""), "name": o["metadata"]["name"]},
        lambda l: f"field label not supported: {l}"),
    ("", "secrets"): (
        {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace", "type": "type"},
        lambda o: {"type": o.get("type", "")},
        lambda l: f"field label not supported: {l}"),
    ("", "services"): (
        {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace",
         "spec.clusterIP": "spec.clusterIP", "spec.type": "spec.type"},
        lambda o: {"spec.clusterIP": (o.get("spec") or {}).get("clusterIP", ""), "spec.type": (o.get("spec") or {}).get("type", "")},
        lambda l: f"field label not supported: {l}"),
    ("batch", "jobs"): (
        {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace", "status.successful": "status.successful"},
        lambda o: {"status.successful": str((o.get("status") or {}).get("succeeded", 0))},
        lambda l: f"field label {go_quote(l)} not supported for batchv1.Job"),
}
DEFAULT_FIELD_LABELS = (
    {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace"},
    lambda o: {},
    lambda l: f'{go_quote(l)} is not a known field selector: only "metadata.name", "metadata.namespace"',
)


def compile_field_selector(res, selector):
    reqs = parse_field_selector(selector)
    accepted, fn, reject = FIELD_LABELS.get(res.key, DEFAULT_FIELD_LABELS)
    out = []
    for field, op, value in reqs:
        if field not in accepted:
            raise SelectorError(reject(field))
        out.append((accepted[field], op, value))
    return out, fn


def fields_match(reqs, fn, obj):
    if not reqs:
        return True
    meta = obj["metadata"]
    fs = fn(obj)
    fs["metadata.name"] = meta.get("name", "")
    fs["metadata.namespace"] = meta.get("namespace", "")
    for field, op, value in reqs:
        actual = fs.get(field, "")
        if (op == "=") != (actual == value):
            return False
    return True


# --------------------------------------------------------------------------------------------- resources
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class Res:
    def __init__(self, group, version, plural, singular, kind, namespaced=True, short=(), categories=(),
                 status=False, generation=False, return_deleted=False, gc_default="DeleteDependents",
                 names="subdomain", subresources=None, verbs=None, columns=None):
        self.group, self.version, self.plural, self.singular, self.kind = group, version, plural, singular, kind
        self.namespaced = namespaced
        self.short = list(short)
        self.categories = list(categories)
        self.status = status
        self.generation = generation
        self.return_deleted = return_deleted
        self.gc_default = gc_default
        self.names = names
        self.verbs = verbs or list(ALL_VERBS)
        self.subresources = subresources if subresources is not None else ({"status": ["get", "patch", "update"]} if status else {})
        self.columns = columns
        self.gv = f"{group}/{version}" if group else version
        self.key = (group, plural)
        self.qualified = f"{plural}.{group}" if group else plural
        self.qualified_kind = f"{kind}.{group}" if group else kind


def _age(o):
    ts = parse_ts(o["metadata"].get("creationTimestamp"))
    if ts is None:
        return "<unknown>"
    return human_duration((datetime.now(timezone.utc) - ts).total_seconds())


def _pod_row(o):
    spec, st = o.get("spec") or {}, o.get("status") or {}
    containers = spec.get("containers") or []
    cstat = st.get("containerStatuses") or []
    ready = sum(1 for c in cstat if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in cstat)
    reason = st.get("reason") or st.get("phase") or ""
    if o["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    ips = st.get("podIPs") or []
    return [f"{ready}/{len(containers)}", reason, restarts, _age(o),
            ips[0]["ip"] if ips else (st.get("podIP") or "<none>"), spec.get("nodeName") or "<none>",
            st.get("nominatedNodeName") or "<none>", "<none>"]


def _svc_ports(o):
    ports = (o.get("spec") or {}).get("ports") or []
    parts = []
    for p in ports:
        s = f"{p.get('port')}"
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        parts.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _replicas_row(o):
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0), _age(o)]


def _col(name, typ="string", fmt="", desc="", priority=0):
    return {"name": name, "type": typ, "format": fmt, "description": desc, "priority": priority}


NAME_COL = _col("Name", "string", "name", NAME_DESCRIPTION)
AGE_COL = _col("Age", "string", "", "CreationTimestamp is a timestamp representing the server time when this object was created.")
COLUMNS = {
    "namespaces": ([NAME_COL, _col("Status", desc="The status of the namespace"), AGE_COL],
                   lambda o: [(o.get("status") or {}).get("phase", ""), _age(o)]),
    "configmaps": ([NAME_COL, _col("Data", "integer", desc="Number of data entries"), AGE_COL],
                   lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o)]),
    "secrets": ([NAME_COL, _col("Type", desc="The type of the secret"), _col("Data", "integer", desc="Number of data entries"), AGE_COL],
                lambda o: [o.get("type", ""), len(o.get("data") or {}), _age(o)]),
    "serviceaccounts": ([NAME_COL, _col("Secrets", "string", desc="Secrets is a list of the secrets in the same namespace"), AGE_COL],
                        lambda o: [len(o.get("secrets") or []), _age(o)]),
    "pods": ([NAME_COL, _col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
              _col("Status", desc="The aggregate status of the containers in this pod."),
              _col("Restarts", "string", desc="The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
              AGE_COL, _col("IP", desc="IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", priority=1),
              _col("Node", desc="NodeName is a request to schedule this pod onto a specific node.", priority=1),
              _col("Nominated Node", desc="nominatedNodeName is set when this pod preempts other pods on the node.", priority=1),
              _col("Readiness Gates", desc="If specified, all readiness gates will be evaluated for pod readiness.", priority=1)],
             _pod_row),
    "services": ([NAME_COL, _col("Type", desc="type determines how the Service is exposed."),
                  _col("Cluster-IP", desc="clusterIP is the IP address of the service"),
                  _col("External-IP", desc="externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
                  _col("Port(s)", desc="The list of ports that are exposed by this service."), AGE_COL,
                  _col("Selector", desc="Route service traffic to pods with label keys and values matching this selector.", priority=1)],
                 lambda o: [(o.get("spec") or {}).get("type", ""), (o.get("spec") or {}).get("clusterIP", "<none>"),
                            "<none>", _svc_ports(o), _age(o),
                            ",".join(f"{k}={v}" for k, v in sorted(((o.get("spec") or {}).get("selector") or {}).items())) or "<none>"]),
    "deployments": ([NAME_COL, _col("Ready", desc="Number of the pod with ready state"),
                     _col("Up-to-date", "integer", desc="Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                     _col("Available", "integer", desc="Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                     AGE_COL], _replicas_row),
}


R = Res
RESOURCES = [
    R("", "v1", "namespaces", "namespace", "Namespace", namespaced=False, short=["ns"], status=True, return_deleted=True,
      names="label", verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
      subresources={"finalize": ["update"], "status": ["get", "patch", "update"]}),
    R("", "v1", "pods", "pod", "Pod", short=["po"], categories=["all"], status=True, generation=True, return_deleted=True),
    R("", "v1", "configmaps", "configmap", "ConfigMap", short=["cm"]),
    R("", "v1", "secrets", "secret", "Secret"),
    R("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", short=["pvc"], status=True,
      return_deleted=True),
    R("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", short=["sa"], return_deleted=True),
    R("", "v1", "services", "service", "Service", short=["svc"], categories=["all"], status=True, return_deleted=True,
      names="dns1035"),
    R("", "v1", "endpoints", "endpoints", "Endpoints", short=["ep"]),
    R("", "v1", "replicationcontrollers", "replicationcontroller", "ReplicationController", short=["rc"],
      categories=["all"], status=True, generation=True, gc_default="OrphanDependents"),
    R("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", namespaced=False, short=["pv"], status=True,
      return_deleted=True),
    R("", "v1", "nodes", "node", "Node", namespaced=False, short=["no"], status=True),
    R("apps", "v1", "deployments", "deployment", "Deployment", short=["deploy"], categories=["all"], status=True, generation=True),
    R("apps", "v1", "statefulsets", "statefulset", "StatefulSet", short=["sts"], categories=["all"], status=True, generation=True),
    R("apps", "v1", "daemonsets", "daemonset", "DaemonSet", short=["ds"], categories=["all"], status=True, generation=True),
    R("apps", "v1", "replicasets", "replicaset", "ReplicaSet", short=["rs"], categories=["all"], status=True, generation=True),
    R("batch", "v1", "jobs", "job", "Job", categories=["all"], status=True, generation=True, gc_default="OrphanDependents"),
    R("batch", "v1", "cronjobs", "cronjob", "CronJob", short=["cj"], categories=["all"], status=True, generation=True),
    R("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", short=["ing"], status=True, generation=True),
    R("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", short=["netpol"], generation=True),
    R("coordination.k8s.io", "v1", "leases", "lease", "Lease"),
    R("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", names="path"),
    R("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", names="path"),
    R("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", namespaced=False, names="path"),
    R("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding",
      namespaced=False, names="path"),
    R("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", short=["pdb"], status=True,
      generation=True),
    R("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler",
      short=["hpa"], categories=["all"], status=True),
]
del R
RES_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
RES_BY_KEY = {r.key: r for r in RESOURCES}
RES_BY_GVK = {(r.gv, r.kind): r for r in RESOURCES}
RES_BY_GK = {(r.group, r.kind): r for r in RESOURCES}
NS_RES = RES_BY_KEY[("", "namespaces")]
GROUP_VERSIONS = []  # ordered (group, version) like the real server
for _r in RESOURCES:
    if (_r.group, _r.version) not in GROUP_VERSIONS:
        GROUP_VERSIONS.append((_r.group, _r.version))

# Endpoints answer with this warning since v1.33 (KEP-4974).
WARNINGS_BY_RESOURCE = {("", "endpoints"): "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"}
JOB_ORPHAN_WARNING = ("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to "
                      "remove them or set propagationPolicy=Orphan to suppress this warning")


# --------------------------------------------------------------------------------------------- defaulting
def _default_container(c):
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image", "")
    if "imagePullPolicy" not in c:
        last = image.rsplit("/", 1)[-1]
        tag = last.split("@")[0].split(":")[1] if ":" in last.split("@")[0] else ""
        c["imagePullPolicy"] = "Always" if ("@" not in last and (tag in ("", "latest"))) else "IfNotPresent"
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")


def default_pod_spec(spec):
    if not isinstance(spec, dict):
        return
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            _default_container(c)
    for c in spec.get("initContainers") or []:
        if isinstance(c, dict):
            _default_container(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")


def default_template(obj):
    tpl = (obj.get("spec") or {}).get("template")
    if isinstance(tpl, dict):
        tpl.setdefault("metadata", {})
        default_pod_spec(tpl.get("spec"))


def _default_pod(o):
    spec = o.get("spec")
    default_pod_spec(spec)
    if isinstance(spec, dict):
        # ServiceAccount admission
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        # DefaultTolerationSeconds admission
        tol = spec.setdefault("tolerations", [])
        keys = {t.get("key") for t in tol if isinstance(t, dict)}
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if key not in keys:
                tol.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})


def _default_deployment(o):
    spec = o.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    default_template(o)


def _default_service(o, existing=None):
    spec = o.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        if existing is not None and (existing.get("spec") or {}).get("clusterIP"):
            spec.setdefault("clusterIP", existing["spec"]["clusterIP"])
            spec.setdefault("clusterIPs", existing["spec"].get("clusterIPs", [existing["spec"]["clusterIP"]]))
        spec.setdefault("clusterIP", STORE.allocate_ip())
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))


def _default_job(o):
    spec = o.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        spec.setdefault("manualSelector", False)
    default_template(o)


def _default_cronjob(o):
    spec = o.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        jt = spec.get("jobTemplate")
        if isinstance(jt, dict):
            jt.setdefault("metadata", {})
            tpl = (jt.get("spec") or {}).get("template")
            if isinstance(tpl, dict):
                tpl.setdefault("metadata", {})
                default_pod_spec(tpl.get("spec"))


def _default_pvc(o):
    spec = o.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")


def _default_secret(o):
    o.setdefault("type", "Opaque")


DEFAULTERS = {
    ("", "pods"): _default_pod,
    ("apps", "deployments"): _default_deployment,
    ("apps", "replicasets"): lambda o: (o.setdefault("spec", {}).setdefault("replicas", 1), default_template(o)),
    ("apps", "statefulsets"): lambda o: (o.setdefault("spec", {}).setdefault("replicas", 1), default_template(o)),
    ("apps", "daemonsets"): default_template,
    ("", "replicationcontrollers"): lambda o: (o.setdefault("spec", {}).setdefault("replicas", 1), default_template(o)),
    ("batch", "jobs"): _default_job,
    ("batch", "cronjobs"): _default_cronjob,
    ("", "persistentvolumeclaims"): _default_pvc,
    ("", "secrets"): _default_secret,
}


# --------------------------------------------------------------------------------------------- managed fields
_SET_LISTS = {"finalizers"}
_KEYED_LISTS = {"ownerReferences": ("uid",)}


def _list_item_key(field, item):
    if field in _KEYED_LISTS:
        keys = _KEYED_LISTS[field]
        if isinstance(item, dict) and all(k in item for k in keys):
            return "k:" + json.dumps({k: item[k] for k in keys}, separators=(",", ":"))
        return None
    if isinstance(item, dict) and "name" in item and isinstance(item["name"], str):
        return "k:" + json.dumps({"name": item["name"]}, separators=(",", ":"))
    return None


_META_TRACKED = ("labels", "annotations", "finalizers", "ownerReferences")


def field_leaves(obj, top=True):
    """Set of leaf paths (tuples of 'f:x' / 'k:{..}' / 'v:..' segments) describing an object's fields."""
    out = set()

    def walk(value, prefix, field):
        if isinstance(value, dict):
            if not value:
                out.add(prefix)
                return
            for k, v in value.items():
                walk(v, prefix + ("f:" + k,), k)
            if all(not isinstance(v, (dict, list)) for v in value.values()):
                out.add(prefix + (".",))
        elif isinstance(value, list):
            if field in _SET_LISTS and all(not isinstance(x, (dict, list)) for x in value):
                if not value:
                    out.add(prefix)
                for x in value:
                    out.add(prefix + ("v:" + json.dumps(x, separators=(",", ":")),))
                return
            keys = [_list_item_key(field, x) for x in value]
            if value and all(keys) and len(set(keys)) == len(keys):
                for k, x in zip(keys, value):
                    out.add(prefix + (k, "."))
                    if isinstance(x, dict):
                        for kk, vv in x.items():
                            walk(vv, prefix + (k, "f:" + kk), kk)
                return
            out.add(prefix)
        else:
            out.add(prefix)

    for k, v in obj.items():
        if k in ("apiVersion", "kind"):
            continue
        if k == "metadata":
            if isinstance(v, dict):
                for mk in _META_TRACKED:
                    if mk in v:
                        walk(v[mk], ("f:metadata", "f:" + mk), mk)
            continue
        walk(v, ("f:" + k,), k)
    return out


def _leaf_value(obj, path):
    cur = obj
    for seg in path:
        if seg == ".":
            return ("node",)
        if seg.startswith("f:"):
            if not isinstance(cur, dict) or seg[2:] not in cur:
                return ("absent",)
            cur = cur[seg[2:]]
        elif seg.startswith("k:"):
            want = json.loads(seg[2:])
            if not isinstance(cur, list):
                return ("absent",)
            for x in cur:
                if isinstance(x, dict) and all(x.get(k) == v for k, v in want.items()):
                    cur = x
                    break
            else:
                return ("absent",)
        elif seg.startswith("v:"):
            want = json.loads(seg[2:])
            return ("val", want) if isinstance(cur, list) and want in cur else ("absent",)
    return ("val", json.dumps(cur, sort_keys=True))


def leaves_to_fields_v1(leaves):
    tree = {}
    for path in sorted(leaves):
        node = tree
        for seg in path:
            node = node.setdefault(seg, {})
    return tree


def fields_v1_to_leaves(tree, prefix=()):
    out = set()
    if not tree:
        if prefix:
            out.add(prefix)
        return out
    for k, v in tree.items():
        out |= fields_v1_to_leaves(v, prefix + (k,))
    return out


def _managed_entries(obj):
    entries = []
    for e in obj.get("metadata", {}).get("managedFields") or []:
        if isinstance(e, dict):
            entries.append(e)
    return entries


def update_managed_fields(old, new, manager, operation, api_version, subresource=None, applied_leaves=None,
                          force_owned=None):
    """Recompute metadata.managedFields of `new` (a fresh dict) for a write by `manager`."""
    entries = [jcopy(e) for e in _managed_entries(old)] if old is not None else []
    parsed = []
    for e in entries:
        parsed.append([e, fields_v1_to_leaves(e.get("fieldsV1") or {})])
    new_leaves = field_leaves(new)
    if old is None:
        changed = new_leaves
        removed = set()
    else:
        old_leaves = field_leaves(old)
        removed = old_leaves - new_leaves
        changed = {p for p in new_leaves if p not in old_leaves or _leaf_value(old, p) != _leaf_value(new, p)}
    if applied_leaves is not None:
        owned_now = set(applied_leaves) & new_leaves
    else:
        owned_now = changed
    ts = now_ts()
    mine = None
    for pe in parsed:
        e, leaves = pe
        leaves -= removed
        same = (e.get("manager", "") == (manager or "") and e.get("operation") == operation
                and e.get("subresource", "") == (subresource or ""))
        if same:
            mine = pe
        elif operation == "Update" or force_owned:
            leaves -= owned_now if operation == "Update" else (force_owned or set())
    if mine is None:
        e = {}
        if manager:
            e["manager"] = manager
        e["operation"] = operation
        e["apiVersion"] = api_version
        mine = [e, set()]
        parsed.append(mine)
    if applied_leaves is not None:
        mine[1] = set(owned_now)
    else:
        mine[1] |= owned_now
    mine[0]["time"] = ts
    out = []
    for e, leaves in parsed:
        if not leaves:
            continue
        ne = {}
        if e.get("manager"):
            ne["manager"] = e["manager"]
        ne["operation"] = e.get("operation", "Update")
        ne["apiVersion"] = e.get("apiVersion", api_version)
        ne["time"] = e.get("time", ts) if e is not mine[0] else ts
        ne["fieldsType"] = "FieldsV1"
        ne["fieldsV1"] = leaves_to_fields_v1(leaves)
        if (e.get("subresource") or (subresource if e is mine[0] else None)):
            ne["subresource"] = e.get("subresource") or subresource
        out.append(ne)
    if out:
        new["metadata"]["managedFields"] = out
    else:
        new["metadata"].pop("managedFields", None)


# --------------------------------------------------------------------------------------------- patches
def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return jcopy(patch)
    result = jcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


_SMP_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "imagePullSecrets": "name", "ports": "containerPort",
    "conditions": "type", "ownerReferences": "uid", "hostAliases": "ip", "volumeDevices": "devicePath",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name", "secrets": "name",
}
_SMP_SET_LISTS = {"finalizers"}


def strategic_merge_patch(target, patch, field=None):
    """Strategic merge patch for the list fields kube-apiserver knows about; other lists are replaced."""
    if not isinstance(patch, dict):
        return jcopy(patch)
    if patch.get("$patch") == "replace":
        p = {k: v for k, v in patch.items() if k != "$patch"}
        return jcopy(p)
    if patch.get("$patch") == "delete":
        return None
    result = jcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            if isinstance(result.get(name), list) and isinstance(v, list):
                result[name] = [x for x in result[name] if x not in v]
            continue
        if v is None:
            result.pop(k, None)
            continue
        cur = result.get(k)
        if isinstance(v, list) and k in _SMP_MERGE_KEYS and all(isinstance(x, dict) for x in v):
            mk = _SMP_MERGE_KEYS[k]
            base = [jcopy(x) for x in cur] if isinstance(cur, list) else []
            for item in v:
                directive = item.get("$patch")
                idx = next((i for i, x in enumerate(base) if isinstance(x, dict) and x.get(mk) == item.get(mk)), None)
                if directive == "delete":
                    if idx is not None:
                        base.pop(idx)
                    continue
                if idx is None:
                    base.append({kk: vv for kk, vv in item.items() if kk != "$patch"})
                else:
                    base[idx] = strategic_merge_patch(base[idx], item, k)
            result[k] = base
        elif isinstance(v, list) and k in _SMP_SET_LISTS:
            base = list(cur) if isinstance(cur, list) else []
            for x in v:
                if x not in base:
                    base.append(x)
            result[k] = base
        elif isinstance(v, dict):
            merged = strategic_merge_patch(cur, v, k)
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        else:
            result[k] = jcopy(v)
    return result


class JsonPatchError(Exception):
    pass


def _ptr_parts(ptr):
    if ptr == "":
        return []
    if not ptr.startswith("/"):
        raise JsonPatchError(f"invalid JSON pointer {go_quote(ptr)}")
    return [p.replace("~1", "/").replace("~0", "~") for p in ptr[1:].split("/")]


def _ptr_parent(doc, parts):
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, dict):
            if p not in cur:
                raise JsonPatchError("doc is missing path: " + "/" + "/".join(parts))
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise JsonPatchError("doc is missing path: " + "/" + "/".join(parts)) from None
        else:
            raise JsonPatchError("doc is missing path: " + "/" + "/".join(parts))
    return cur


def _ptr_get(doc, parts):
    if not parts:
        return doc
    parent = _ptr_parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError("doc is missing key: /" + "/".join(parts))
        return parent[last]
    if isinstance(parent, list):
        try:
            return parent[int(last)]
        except (ValueError, IndexError):
            raise JsonPatchError("doc is missing key: /" + "/".join(parts)) from None
    raise JsonPatchError("doc is missing key: /" + "/".join(parts))


def _ptr_add(doc, parts, value, replace=False):
    if not parts:
        return value
    parent = _ptr_parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise JsonPatchError("replace operation does not apply: doc is missing key: /" + "/".join(parts))
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        else:
            try:
                i = int(last)
            except ValueError:
                raise JsonPatchError("invalid index " + last) from None
            if replace:
                if not 0 <= i < len(parent):
                    raise JsonPatchError("replace operation does not apply: doc is missing key: /" + "/".join(parts))
                parent[i] = value
            else:
                if not 0 <= i <= len(parent):
                    raise JsonPatchError(f"Unable to access invalid index: {i}")
                parent.insert(i, value)
    else:
        raise JsonPatchError("doc is missing path: /" + "/".join(parts))
    return doc


def _ptr_remove(doc, parts):
    parent = _ptr_parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError("remove operation does not apply: doc is missing path: /" + "/".join(parts))
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            return parent.pop(int(last))
        except (ValueError, IndexError):
            raise JsonPatchError("remove operation does not apply: doc is missing path: /" + "/".join(parts)) from None
    raise JsonPatchError("remove operation does not apply: doc is missing path: /" + "/".join(parts))


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise ValueError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = jcopy(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise ValueError("json: cannot unmarshal into Go value of type jsonpatch.Operation")
        kind = op.get("op")
        path = _ptr_parts(op.get("path", ""))
        if kind == "add":
            doc = _ptr_add(doc, path, jcopy(op.get("value")))
        elif kind == "remove":
            _ptr_remove(doc, path)
        elif kind == "replace":
            doc = _ptr_add(doc, path, jcopy(op.get("value")), replace=True)
        elif kind == "test":
            try:
                actual = _ptr_get(doc, path)
            except JsonPatchError:
                actual = None
            if actual != op.get("value"):
                raise JsonPatchError(f"testing value {op.get('path')} failed: test failed")
        elif kind == "move":
            frm = _ptr_parts(op.get("from", ""))
            value = _ptr_remove(doc, frm)
            doc = _ptr_add(doc, path, value)
        elif kind == "copy":
            frm = _ptr_parts(op.get("from", ""))
            doc = _ptr_add(doc, path, jcopy(_ptr_get(doc, frm)))
        else:
            raise JsonPatchError(f"Unexpected kind: {kind}")
    return doc


# --------------------------------------------------------------------------------------------- the store
def obj_key(ns, name):
    return f"{ns}/{name}" if ns else name


class Store:
    """All cluster state. Every method expects self.lock to be held by the caller (RLock)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.faults = []
        self.requests = []
        self.aggregated_discovery = True
        self.controllers_enabled = True
        self._reset_state()

    # ---- state
    def _reset_state(self):
        # resourceVersions stay monotonic across resets (clients and watches may hold old ones);
        # continue tokens from before a reset answer 410 like after an etcd compaction.
        self.rv = max(getattr(self, "rv", 0), 100)
        self.objects = {r.key: {} for r in RESOURCES}  # res.key -> {(ns, name): obj}
        self.by_uid = {}  # uid -> (res.key, ns, name)
        self.dependents = collections.defaultdict(set)  # owner uid -> {(res.key, ns, name)}
        self.snapshots = collections.OrderedDict()  # (res.key, scope, rv) -> (keys, objs)
        self.compacted_rv = self.rv
        self.rv += 1
        self.events = collections.deque(maxlen=MAX_EVENTS)
        self.gc_queue = collections.deque()
        self.gc_pending = set()
        self.ip_counter = 10
        self.watchers = 0

    def reset(self):
        self._reset_state()
        self.faults = []
        self.requests = []
        self.aggregated_discovery = True
        self.controllers_enabled = True
        self.bootstrap()
        self.cond.notify_all()

    def allocate_ip(self):
        self.ip_counter += 1
        return f"10.96.{self.ip_counter // 250}.{self.ip_counter % 250 + 1}"

    def next_rv(self):
        self.rv += 1
        return self.rv

    # ---- raw access
    def get(self, res, ns, name):
        return self.objects[res.key].get((ns or "", name))

    def _index_refs(self, res, obj, add):
        meta = obj["metadata"]
        ident = (res.key, meta.get("namespace", ""), meta["name"])
        for ref in meta.get("ownerReferences") or []:
            uid = ref.get("uid") if isinstance(ref, dict) else None
            if not uid:
                continue
            if add:
                self.dependents[uid].add(ident)
            else:
                s = self.dependents.get(uid)
                if s is not None:
                    s.discard(ident)
                    if not s:
                        del self.dependents[uid]

    def put(self, res, obj, event="MODIFIED", keep_rv=False):
        """Commit obj (which must be a fresh dict nobody else holds) and bump the revision."""
        meta = obj["metadata"]
        k = (meta.get("namespace", "") or "", meta["name"])
        old = self.objects[res.key].get(k)
        if not keep_rv:
            meta["resourceVersion"] = str(self.next_rv())
            obj["metadata"] = meta = order_meta(meta)
        if old is not None:
            self._index_refs(res, old, False)
        self.objects[res.key][k] = obj
        self.by_uid[meta["uid"]] = (res.key, k[0], k[1])
        self._index_refs(res, obj, True)
        self._record(event if old is not None else "ADDED", res, obj)
        self._gc_note_write(res, old, obj)
        return obj

    def remove(self, res, ns, name):
        k = (ns or "", name)
        old = self.objects[res.key].pop(k, None)
        if old is None:
            return None
        self._index_refs(res, old, False)
        uid = old["metadata"]["uid"]
        if self.by_uid.get(uid) == (res.key, k[0], k[1]):
            del self.by_uid[uid]
        gone = dict(old)
        gone["metadata"] = dict(old["metadata"])
        gone["metadata"]["resourceVersion"] = str(self.next_rv())
        self._record("DELETED", res, gone)
        # garbage collector: dependents of the removed object, and owners waiting for their dependents
        for dep in list(self.dependents.get(uid, ())):
            self._gc_enqueue(dep)
        for ref in old["metadata"].get("ownerReferences") or []:
            if isinstance(ref, dict) and ref.get("uid") in self.by_uid:
                self._gc_enqueue(self.by_uid[ref["uid"]])
        return old

    def _record(self, etype, res, obj):
        self.events.append((self.rv, etype, res.key, obj))
        if self.watchers:
            self.cond.notify_all()

    # ---- garbage collector bookkeeping
    def _gc_enqueue(self, ident):
        if ident not in self.gc_pending:
            self.gc_pending.add(ident)
            self.gc_queue.append(ident)

    def _gc_note_write(self, res, old, new):
        meta = new["metadata"]
        ident = (res.key, meta.get("namespace", ""), meta["name"])
        if meta.get("ownerReferences"):
            old_refs = (old or {}).get("metadata", {}).get("ownerReferences")
            if old is None or old_refs != meta.get("ownerReferences"):
                self._gc_enqueue(ident)
        fins = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and ("orphan" in fins or "foregroundDeletion" in fins):
            self._gc_enqueue(ident)
            for dep in list(self.dependents.get(meta["uid"], ())):
                self._gc_enqueue(dep)

    # ---- bootstrap
    def bootstrap(self):
        for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
            self.create_namespace_direct(ns)
        self.ensure_namespace_defaults()
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "kubernetes", "namespace": "default",
                            "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                        "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "type": "ClusterIP",
                        "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                        "internalTrafficPolicy": "Cluster"},
               "status": {"loadBalancer": {}}}
        ep = {"apiVersion": "v1", "kind": "Endpoints",
              "metadata": {"name": "kubernetes", "namespace": "default",
                           "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
              "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                           "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}
        bootstrap_ann = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
        bootstrap_lbl = {"kubernetes.io/bootstrapping": "rbac-defaults"}
        crs = [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "cluster-admin", "labels": dict(bootstrap_lbl), "annotations": dict(bootstrap_ann)},
             "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                       {"nonResourceURLs": ["*"], "verbs": ["*"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "view", "labels": dict(bootstrap_lbl, **{"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
                          "annotations": dict(bootstrap_ann)},
             "rules": [{"apiGroups": [""], "resources": ["configmaps", "pods", "services"], "verbs": ["get", "list", "watch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "cluster-admin", "labels": dict(bootstrap_lbl), "annotations": dict(bootstrap_ann)},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]},
        ]
        for o in [svc, ep] + crs:
            res = RES_BY_GVK[(o["apiVersion"], o["kind"])]
            self.insert_new(res, o, manager="kube-apiserver", keep_status=True)

    def create_namespace_direct(self, name):
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        self.insert_new(NS_RES, ns, manager="kube-apiserver")

    def insert_new(self, res, obj, manager=None, keep_status=False, creation_ts=None, uid=None):
        obj = jcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["uid"] = uid or str(uuid.uuid4())
        meta["creationTimestamp"] = creation_ts or now_ts()
        prepare_for_create(res, obj, keep_status=keep_status)
        obj = canonical(res, obj)
        update_managed_fields(None, obj, manager, "Update", res.gv)
        obj = canonical(res, obj)
        return self.put(res, obj)

    # ---- controllers (run with the lock held)
    def ensure_namespace_defaults(self):
        """ServiceAccount controller + root-ca-cert-publisher: every active namespace has both objects."""
        sa_res = RES_BY_KEY[("", "serviceaccounts")]
        cm_res = RES_BY_KEY[("", "configmaps")]
        for (_, ns), nsobj in list(self.objects[NS_RES.key].items()):
            if nsobj["metadata"].get("deletionTimestamp"):
                continue
            if (ns, "default") not in self.objects[sa_res.key]:
                self.insert_new(sa_res, {"apiVersion": "v1", "kind": "ServiceAccount",
                                         "metadata": {"name": "default", "namespace": ns}},
                                manager="kube-controller-manager")
            cm = self.objects[cm_res.key].get((ns, "kube-root-ca.crt"))
            want_ann = {"kubernetes.io/description": ROOT_CA_DESCRIPTION}
            if cm is None:
                self.insert_new(cm_res, {"apiVersion": "v1", "kind": "ConfigMap",
                                         "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "annotations": want_ann},
                                         "data": {"ca.crt": ROOT_CA_PEM}}, manager="kube-controller-manager")
            elif not cm["metadata"].get("deletionTimestamp") and (
                    cm.get("data") != {"ca.crt": ROOT_CA_PEM}
                    or (cm["metadata"].get("annotations") or {}).get("kubernetes.io/description") != ROOT_CA_DESCRIPTION):
                new = jcopy(cm)
                new["data"] = {"ca.crt": ROOT_CA_PEM}
                new.pop("binaryData", None)
                new["metadata"].setdefault("annotations", {})["kubernetes.io/description"] = ROOT_CA_DESCRIPTION
                new = canonical(cm_res, new)
                update_managed_fields(cm, new, "kube-controller-manager", "Update", "v1")
                self.put(cm_res, canonical(cm_res, new))

    def run_gc(self, budget=100000):
        """Garbage collector (attemptToDeleteItem / attemptToOrphan / processDeletingDependentsItem)."""
        worked = False
        while self.gc_queue and budget > 0:
            budget -= 1
            ident = self.gc_queue.popleft()
            self.gc_pending.discard(ident)
            res = RES_BY_KEY[ident[0]]
            obj = self.objects[ident[0]].get((ident[1], ident[2]))
            if obj is None:
                continue
            worked = True
            self._gc_attempt(res, obj)
        return worked

    def _owner_state(self, dep_res, dep_obj, ref):
        """solid / dangling / waiting (waitingForDependentsDeletion) / unknown for one ownerReference."""
        api_version = ref.get("apiVersion", "")
        group = api_version.split("/")[0] if "/" in api_version else ""
        ores = RES_BY_GK.get((group, ref.get("kind")))
        if ores is None:
            return "unknown"
        ns = dep_obj["metadata"].get("namespace", "") if ores.namespaced else ""
        if ores.namespaced and not dep_res.namespaced:
            return "unknown"
        owner = self.objects[ores.key].get((ns, ref.get("name", "")))
        if owner is None or owner["metadata"]["uid"] != ref.get("uid"):
            return "dangling"
        m = owner["metadata"]
        if m.get("deletionTimestamp") and "foregroundDeletion" in (m.get("finalizers") or []):
            return "waiting"
        return "solid"

    def _gc_attempt(self, res, obj):
        meta = obj["metadata"]
        fins = meta.get("finalizers") or []
        uid = meta["uid"]
        ns, name = meta.get("namespace", ""), meta["name"]
        if meta.get("deletionTimestamp"):
            if "orphan" in fins:
                for dep in list(self.dependents.get(uid, ())):
                    dres = RES_BY_KEY[dep[0]]
                    dobj = self.objects[dep[0]].get((dep[1], dep[2]))
                    if dobj is None:
                        continue
                    new = jcopy(dobj)
                    new["metadata"]["ownerReferences"] = [r for r in new["metadata"].get("ownerReferences") or []
                                                          if r.get("uid") != uid]
                    if not new["metadata"]["ownerReferences"]:
                        del new["metadata"]["ownerReferences"]
                    new = canonical(dres, new)
                    update_managed_fields(dobj, new, "kube-controller-manager", "Update", dres.gv)
                    self.put(dres, canonical(dres, new))
                self._remove_finalizer(res, self.get(res, ns, name), "orphan")
                return
            if "foregroundDeletion" not in fins:
                return  # being deleted: wait for the final deletion
            # processDeletingDependentsItem
            blocking = False
            for dep in list(self.dependents.get(uid, ())):
                dobj = self.objects[dep[0]].get((dep[1], dep[2]))
                if dobj is None:
                    continue
                self._gc_enqueue(dep)
                for r in dobj["metadata"].get("ownerReferences") or []:
                    if r.get("uid") == uid and r.get("blockOwnerDeletion"):
                        blocking = True
            if not blocking:
                self._remove_finalizer(res, obj, "foregroundDeletion")
                return
            # fall through: it may itself be a dependent of a waiting owner
            if not meta.get("ownerReferences"):
                return
        refs = meta.get("ownerReferences") or []
        if not refs:
            return
        solid, dangling, waiting = [], [], []
        for r in refs:
            st = self._owner_state(res, obj, r)
            if st in ("solid", "unknown"):
                solid.append(r)
            elif st == "dangling":
                dangling.append(r)
            else:
                waiting.append(r)
        if solid:
            if not dangling and not waiting:
                return
            drop = {r.get("uid") for r in dangling + waiting}
            new = jcopy(obj)
            new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") not in drop]
            new = canonical(res, new)
            update_managed_fields(obj, new, "kube-controller-manager", "Update", res.gv)
            self.put(res, canonical(res, new))
            return
        if meta.get("deletionTimestamp"):
            return
        if waiting and self.dependents.get(uid):
            policy = "Foreground"
        elif "orphan" in fins:
            policy = "Orphan"
        elif "foregroundDeletion" in fins:
            policy = "Foreground"
        else:
            policy = "Background"
        try:
            self.delete_object(res, ns, name, {"propagationPolicy": policy, "preconditions": {"uid": uid}})
        except ApiError:
            pass

    def _remove_finalizer(self, res, obj, finalizer):
        if obj is None or finalizer not in (obj["metadata"].get("finalizers") or []):
            return
        new = jcopy(obj)
        new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"] if f != finalizer]
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
        new = canonical(res, new)
        update_managed_fields(obj, new, "kube-controller-manager", "Update", res.gv)
        self.commit_update(res, obj, canonical(res, new))

    def commit_update(self, res, old, new, dry_run=False):
        """Store an update; an update that empties the finalizers of a deleting object removes it."""
        meta = new["metadata"]
        if (old["metadata"].get("deletionTimestamp") and not meta.get("finalizers")
                and not old["metadata"].get("deletionGracePeriodSeconds")
                and not (res is NS_RES and (new.get("spec") or {}).get("finalizers"))):
            if not dry_run:
                self.remove(res, meta.get("namespace", ""), meta["name"])
            return new
        if dry_run:
            return new
        return self.put(res, new)

    def run_namespace_controller(self):
        worked = False
        for (_, name), ns in list(self.objects[NS_RES.key].items()):
            meta = ns["metadata"]
            if not meta.get("deletionTimestamp"):
                continue
            worked = True
            spec_fins = (ns.get("spec") or {}).get("finalizers") or []
            if "kubernetes" in spec_fins:
                remaining = collections.Counter()
                fin_remaining = collections.Counter()
                for res in RESOURCES:
                    if not res.namespaced:
                        continue
                    for (ons, oname), obj in list(self.objects[res.key].items()):
                        if ons != name:
                            continue
                        if not obj["metadata"].get("deletionTimestamp"):
                            try:
                                self.delete_object(res, ons, oname, {"propagationPolicy": "Background"})
                            except ApiError:
                                pass
                        cur = self.objects[res.key].get((ons, oname))
                        if cur is not None:
                            remaining[f"{res.plural}.{res.group}"] += 1
                            for f in cur["metadata"].get("finalizers") or []:
                                fin_remaining[f] += 1
                self._update_ns_conditions(name, remaining, fin_remaining)
                if remaining:
                    continue
                cur = self.get(NS_RES, "", name)
                new = jcopy(cur)
                new["spec"]["finalizers"] = [f for f in spec_fins if f != "kubernetes"]
                if not new["spec"]["finalizers"]:
                    del new["spec"]["finalizers"]
                new = canonical(NS_RES, new)
                update_managed_fields(cur, new, "kube-controller-manager", "Update", "v1", subresource="finalize")
                self.put(NS_RES, canonical(NS_RES, new))
                spec_fins = new["spec"].get("finalizers") or []
            cur = self.get(NS_RES, "", name)
            if cur is not None and not spec_fins and not cur["metadata"].get("finalizers"):
                self.remove(NS_RES, "", name)
        return worked

    def _update_ns_conditions(self, name, remaining, fin_remaining):
        cur = self.get(NS_RES, "", name)
        if cur is None:
            return
        now = now_ts()
        ok = {
            "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
            "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
            "NamespaceDeletionContentFailure": ("ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
            "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
            "NamespaceFinalizersRemaining": ("ContentRemoved", "All content successfully removed"),
        }
        want = {}
        for t, (reason, msg) in ok.items():
            want[t] = ("False", reason, msg)
        if remaining:
            items = sorted(f"{k} has {v} resource instances" for k, v in remaining.items())
            want["NamespaceContentRemaining"] = ("True", "SomeResourcesRemain", "Some resources are remaining: " + ", ".join(items))
        if fin_remaining:
            items = sorted(f"{k} in {v} resource instances" for k, v in fin_remaining.items())
            want["NamespaceFinalizersRemaining"] = ("True", "SomeFinalizersRemain",
                                                    "Some content in the namespace has finalizers remaining: " + ", ".join(items))
        conds = [dict(c) for c in (cur.get("status") or {}).get("conditions") or []]
        changed = False
        for t in ok:
            st, reason, msg = want[t]
            existing = next((c for c in conds if c.get("type") == t), None)
            if existing is None:
                conds.append({"type": t, "status": st, "lastTransitionTime": now, "reason": reason, "message": msg})
                changed = True
            elif (existing.get("status"), existing.get("reason"), existing.get("message")) != (st, reason, msg):
                if existing.get("status") != st:
                    existing["lastTransitionTime"] = now
                existing.update({"status": st, "reason": reason, "message": msg})
                changed = True
        if changed:
            new = jcopy(cur)
            new.setdefault("status", {})["conditions"] = conds
            new = canonical(NS_RES, new)
            update_managed_fields(cur, new, "kube-controller-manager", "Update", "v1", subresource="status")
            self.put(NS_RES, canonical(NS_RES, new))

    def controllers_pass(self):
        worked = self.run_gc()
        worked = self.run_namespace_controller() or worked
        self.ensure_namespace_defaults()
        worked = self.run_gc() or worked
        return worked

    # ---- delete (shared by the API, the GC and the namespace controller)
    def delete_object(self, res, ns, name, options, dry_run=False, warnings=None):
        """registry.Store.Delete. Returns (http_status, body_obj)."""
        obj = self.get(res, ns, name)
        if obj is None:
            raise err_not_found(res, name)
        meta = obj["metadata"]
        pre = options.get("preconditions") or {}
        if res is NS_RES:
            return self._delete_namespace(obj, options, pre, dry_run)
        if pre.get("uid") is not None and pre["uid"] != meta["uid"]:
            raise err_conflict(res.qualified_kind, res.group, res.kind, name,
                               f"the UID in the precondition ({pre['uid']}) does not match the UID in record "
                               f"({meta['uid']}). The object might have been deleted and then recreated")
        if pre.get("resourceVersion") is not None and pre["resourceVersion"] != meta["resourceVersion"]:
            raise err_conflict(res.qualified_kind, res.group, res.kind, name,
                               f"the ResourceVersion in the precondition ({pre['resourceVersion']}) does not match the "
                               f"ResourceVersion in record ({meta['resourceVersion']}). The object might have been modified")
        policy = options.get("propagationPolicy")
        orphan_opt = options.get("orphanDependents")
        if res.gc_default == "OrphanDependents" and res.key == ("batch", "jobs") and policy is None \
                and orphan_opt is None and warnings is not None:
            warnings.append(JOB_ORPHAN_WARNING)
        fins = list(meta.get("finalizers") or [])
        # deletionFinalizersForGarbageCollection
        if orphan_opt is not None:
            should_orphan = bool(orphan_opt)
        elif policy in ("Orphan", "Background", "Foreground"):
            should_orphan = policy == "Orphan"
        elif "orphan" in fins:
            should_orphan = True
        elif "foregroundDeletion" in fins:
            should_orphan = False
        else:
            should_orphan = res.gc_default == "OrphanDependents"
        if orphan_opt is not None:
            should_foreground = False
        elif policy in ("Orphan", "Background", "Foreground"):
            should_foreground = policy == "Foreground"
        else:
            should_foreground = "foregroundDeletion" in fins
        new_fins = [f for f in fins if f not in ("orphan", "foregroundDeletion")]
        if should_orphan:
            new_fins.append("orphan")
        if should_foreground:
            new_fins.append("foregroundDeletion")
        # (an empty new list means the only pending finalizers were GC ones the options dropped: delete now)
        if new_fins:
            new = jcopy(obj)
            nm = new["metadata"]
            nm["finalizers"] = new_fins
            if not nm.get("deletionTimestamp") and res.generation and nm.get("generation"):
                nm["generation"] = nm["generation"] + 1
            nm.setdefault("deletionTimestamp", now_ts())
            nm["deletionGracePeriodSeconds"] = 0
            new = canonical(res, new)
            if new == obj:
                out = obj
            elif dry_run:
                out = new
            else:
                out = self.put(res, new)
            status = 202 if orphan_opt is False else 200
            return status, self._finalize_delete_body(res, out, deleted=False)
        if dry_run:
            return 200, self._finalize_delete_body(res, obj, deleted=True)
        self.remove(res, ns, name)
        return 200, self._finalize_delete_body(res, obj, deleted=True)

    def _finalize_delete_body(self, res, obj, deleted):
        if not deleted:
            return obj
        if res.return_deleted:
            return obj
        meta = obj["metadata"]
        details = {"name": meta["name"]}
        if res.group:
            details["group"] = res.group
        details["kind"] = res.plural
        details["uid"] = meta["uid"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _delete_namespace(self, ns, options, pre, dry_run):
        name = ns["metadata"]["name"]
        if name in IMMORTAL_NAMESPACES:
            raise err_forbidden(NS_RES, name, "this namespace may not be deleted")
        if pre.get("uid") is not None and pre["uid"] != ns["metadata"]["uid"]:
            raise err_res_conflict(NS_RES, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                                 f"UID in object meta: {ns['metadata']['uid']}")
        if pre.get("resourceVersion") is not None and pre["resourceVersion"] != ns["metadata"]["resourceVersion"]:
            raise err_res_conflict(NS_RES, name, f"Precondition failed: ResourceVersion in precondition: "
                                                 f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                                 f"{ns['metadata']['resourceVersion']}")
        if not ns["metadata"].get("deletionTimestamp"):
            new = jcopy(ns)
            new["metadata"]["deletionTimestamp"] = now_ts()
            new.setdefault("status", {})["phase"] = "Terminating"
            # pkg/registry/core/namespace/storage: shouldHaveOrphanFinalizer / shouldHaveDeleteDependentsFinalizer
            policy = options.get("propagationPolicy")
            orphan_opt = options.get("orphanDependents")
            fins = list(new["metadata"].get("finalizers") or [])
            if orphan_opt is not None:
                want = {"orphan": bool(orphan_opt), "foregroundDeletion": not orphan_opt}
            elif policy is not None:
                want = {"orphan": policy == "Orphan", "foregroundDeletion": policy == "Foreground"}
            else:
                want = {"orphan": "orphan" in fins, "foregroundDeletion": "foregroundDeletion" in fins}
            for f, should in want.items():
                if should and f not in fins:
                    fins.append(f)
                elif not should and f in fins:
                    fins.remove(f)
            if fins:
                new["metadata"]["finalizers"] = fins
            else:
                new["metadata"].pop("finalizers", None)
            new = canonical(NS_RES, new)
            if dry_run:
                return 200, new
            return 200, self.put(NS_RES, new)
        if (ns.get("spec") or {}).get("finalizers"):
            return 200, ns
        if ns["metadata"].get("finalizers"):
            return 200, ns
        if not dry_run:
            self.remove(NS_RES, "", name)
        return 200, ns


STORE = Store()


# --------------------------------------------------------------------------------------------- object shaping
META_ORDER = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
              "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
              "ownerReferences", "finalizers", "managedFields")


def order_meta(meta):
    out = {k: meta[k] for k in META_ORDER if k in meta}
    for k, v in meta.items():
        if k not in out:
            out[k] = v
    return out


def canonical(res, obj):
    """Order fields like the Go structs serialize them (kind, apiVersion, metadata, ...)."""
    out = {"kind": res.kind, "apiVersion": res.gv}
    meta = obj.get("metadata") or {}
    m = {}
    for k in META_ORDER:
        if k in meta and meta[k] not in (None, "", [], {}):
            m[k] = meta[k]
    for k, v in meta.items():
        if k not in m and k not in META_ORDER and v is not None:
            m[k] = v
    out["metadata"] = m
    for k, v in obj.items():
        if k in ("kind", "apiVersion", "metadata") or v is None:
            continue
        out[k] = v
    if "status" in out:  # status last, like most Go types
        out["status"] = out.pop("status")
    return out


def prepare_for_create(res, obj, keep_status=False):
    """Strategy.PrepareForCreate + defaulting."""
    meta = obj["metadata"]
    for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields", "generation"):
        meta.pop(k, None)
    if res.generation:
        meta["generation"] = 1
    if res.status and not keep_status:
        obj.pop("status", None)
    if res is NS_RES:
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        fins = [f for f in spec.get("finalizers") or [] if isinstance(f, str)]
        if "kubernetes" not in fins:
            fins.append("kubernetes")
        obj["spec"] = dict(spec, finalizers=fins)
        obj["status"] = {"phase": "Active"}
    elif res.key == ("", "pods"):
        status = obj.get("status") if keep_status and obj.get("status") else {}
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", _qos(obj))
        obj["status"] = status
    elif res.key == ("", "secrets"):
        _fold_string_data(obj)
    elif res.key == ("", "services"):
        obj.setdefault("status", {"loadBalancer": {}})
    elif res.key == ("", "persistentvolumeclaims"):
        obj.setdefault("status", {"phase": "Pending"})
    elif res.key == ("", "persistentvolumes"):
        obj.setdefault("status", {"phase": "Pending"})
    elif res.status and res.key != ("", "nodes") and not obj.get("status"):
        obj["status"] = {}
    d = DEFAULTERS.get(res.key)
    if d is not None:
        d(obj)
    if res.key == ("", "services"):
        _default_service(obj)


def _qos(pod):
    containers = ((pod.get("spec") or {}).get("containers") or []) + ((pod.get("spec") or {}).get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        r = (c or {}).get("resources") or {}
        req, lim = r.get("requests") or {}, r.get("limits") or {}
        if req or lim:
            any_set = True
        for k in ("cpu", "memory"):
            if k not in lim or (k in req and req[k] != lim[k]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _fold_string_data(obj):
    sd = obj.pop("stringData", None)
    if isinstance(sd, dict) and sd:
        data = obj.setdefault("data", {})
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def validate_object(res, obj, old=None):
    """A practical subset of ValidateObjectMeta plus the per-kind checks a deletion tool can trip over."""
    errs = []
    meta = obj["metadata"]
    name = meta.get("name", "")
    if old is None:
        if not name and not meta.get("generateName"):
            errs.append(FieldErr("FieldValueRequired", "metadata.name", "name or generateName is required"))
        elif name:
            for m in NAME_VALIDATORS[res.names](name):
                errs.append(FieldErr("FieldValueInvalid", "metadata.name", m, name))
    if res.namespaced and not meta.get("namespace"):
        errs.append(FieldErr("FieldValueRequired", "metadata.namespace", ""))
    for k, v in (meta.get("labels") or {}).items():
        for m in is_qualified_name(k):
            errs.append(FieldErr("FieldValueInvalid", "metadata.labels", m, k))
        if not isinstance(v, str):
            raise err_bad_request(f"{res.kind} in version {go_quote(res.version)} cannot be handled as a {res.kind}: "
                                  f"json: cannot unmarshal {type(v).__name__} into Go struct field ObjectMeta.metadata.labels of type string")
        for m in is_label_value(v):
            errs.append(FieldErr("FieldValueInvalid", "metadata.labels", m, v))
    total = 0
    for k, v in (meta.get("annotations") or {}).items():
        for m in is_qualified_name(k.lower()):
            errs.append(FieldErr("FieldValueInvalid", "metadata.annotations", m, k))
        if not isinstance(v, str):
            raise err_bad_request(f"{res.kind} in version {go_quote(res.version)} cannot be handled as a {res.kind}: "
                                  f"json: cannot unmarshal {type(v).__name__} into Go struct field ObjectMeta.metadata.annotations of type string")
        total += len(k) + len(v)
    if total > 256 * 1024:
        errs.append(FieldErr("FieldValueTooLong", "metadata.annotations", "must have at most 262144 bytes"))
    fins = meta.get("finalizers") or []
    for f in fins:
        if "/" not in f and f not in ("kubernetes", "orphan", "foregroundDeletion"):
            errs.append(FieldErr("FieldValueInvalid", "metadata.finalizers", "name is neither a standard finalizer name nor is it fully qualified", f))
    if "orphan" in fins and "foregroundDeletion" in fins:
        errs.append(FieldErr("FieldValueInvalid", "metadata.finalizers",
                             "finalizer orphan and foregroundDeletion cannot be both set", fins))
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        if not isinstance(ref, dict):
            continue
        for fld in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(fld):
                errs.append(FieldErr("FieldValueInvalid", f"metadata.ownerReferences.{fld}", f"{fld} must not be empty",
                                     ref.get(fld, "")))
    if old is not None:
        om = old["metadata"]
        if om.get("deletionTimestamp"):
            added = [f for f in fins if f not in (om.get("finalizers") or [])]
            if added:
                errs.append(FieldErr("FieldValueForbidden", "metadata.finalizers",
                                     f"no new finalizers can be added if the object is being deleted, found new finalizers []string{{{', '.join(go_quote(x) for x in added)}}}"))
    if res.key in (("", "configmaps"), ("", "secrets")):
        for fld in ("data", "binaryData"):
            for k in (obj.get(fld) or {}):
                if not CONFIG_KEY_RE.match(k) or len(k) > 253:
                    errs.append(FieldErr("FieldValueInvalid", f"{fld}[{k}]", MSG_CONFIG_KEY, k))
        if old is not None and old.get("immutable"):
            if (obj.get("data") != old.get("data") or obj.get("binaryData") != old.get("binaryData")):
                errs.append(FieldErr("FieldValueForbidden", "data", "field is immutable when `immutable` is set"))
            if not obj.get("immutable"):
                errs.append(FieldErr("FieldValueForbidden", "immutable", "field is immutable when `immutable` is set"))
    if res.key == ("", "secrets"):
        for k, v in (obj.get("data") or {}).items():
            try:
                base64.b64decode(v, validate=True)
            except Exception:
                raise err_bad_request(f"Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 0") from None
        if old is not None and old.get("type") != obj.get("type"):
            errs.append(FieldErr("FieldValueInvalid", "type", "field is immutable", obj.get("type")))
    if errs:
        raise err_invalid(res.group, res.kind, name, errs)


# --------------------------------------------------------------------------------------------- negotiation
def parse_accept(header):
    """Accept header -> list of (type, params dict) in client order (q-values ignored like most clients)."""
    out = []
    for clause in (header or "").split(","):
        clause = clause.strip()
        if not clause:
            continue
        parts = [p.strip() for p in clause.split(";")]
        params = {}
        for p in parts[1:]:
            if "=" in p:
                k, v = p.split("=", 1)
                params[k.strip().lower()] = v.strip()
        out.append((parts[0].lower(), params))
    if not out:
        out.append(("application/json", {}))
    return out


JSON_TYPES = ("application/json", "*/*", "application/*")
ACCEPT_406 = ("only the following media types are accepted: application/json, application/yaml, "
              "application/vnd.kubernetes.protobuf")


def negotiate(accept, allowed):
    """Pick the first clause we can serve. allowed: set of transform names ('Table', 'PartialObjectMetadata', ...).

    Returns (transform or None, version, media_type for the Content-Type)."""
    for mt, params in parse_accept(accept):
        if mt not in JSON_TYPES and mt not in ("application/yaml",):
            continue
        as_ = params.get("as")
        if not as_:
            if mt == "application/yaml":
                return None, None, "application/yaml"
            return None, None, "application/json"
        g, v = params.get("g", ""), params.get("v", "")
        if as_ in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList") and g == "meta.k8s.io" and v in ("v1", "v1beta1"):
            if as_ in allowed:
                return as_, v, f"application/json;as={as_};g=meta.k8s.io;v={v}"
        if as_ == "APIGroupDiscoveryList" and g == "apidiscovery.k8s.io" and v in ("v2", "v2beta1") and as_ in allowed:
            return as_, v, f"application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"
    raise ApiError(406, "NotAcceptable", ACCEPT_406, {})


def to_partial(obj, version="v1"):
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}", "metadata": obj["metadata"]}


def to_table(res, objs, list_meta, include, version="v1"):
    cols, fn = COLUMNS.get(res.plural, (None, None))
    if cols is None:
        cols = [NAME_COL, _col("Created At", "date", "", CREATED_DESCRIPTION)]

        def fn(o):
            return [o["metadata"].get("creationTimestamp")]
    rows = []
    for o in objs:
        row = {"cells": [o["metadata"]["name"]] + fn(o)}
        if include == "Object":
            row["object"] = o if "kind" in o else dict({"kind": res.kind, "apiVersion": res.gv}, **o)
        elif include != "None":
            row["object"] = to_partial(o, version)
        rows.append(row)
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": list_meta,
            "columnDefinitions": cols, "rows": rows}


# --------------------------------------------------------------------------------------------- discovery
def legacy_resource_list(group, version):
    rl = []
    for r in RESOURCES:
        if r.group != group or r.version != version:
            continue
        e = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs}
        if r.short:
            e["shortNames"] = r.short
        if r.categories:
            e["categories"] = r.categories
        rl.append(e)
        for sub, verbs in r.subresources.items():
            rl.append({"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                       "kind": r.kind, "verbs": verbs})
    rl.sort(key=lambda e: e["name"])
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": rl}


def legacy_group(group):
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions,
            "preferredVersion": versions[0]}


def aggregated(groups, version):
    items = []
    for group in groups:
        versions = []
        for g, v in GROUP_VERSIONS:
            if g != group:
                continue
            resources = []
            for r in sorted((r for r in RESOURCES if r.group == g and r.version == v), key=lambda r: r.plural):
                e = {"resource": r.plural, "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                     "scope": "Namespaced" if r.namespaced else "Cluster", "singularResource": r.singular,
                     "verbs": r.verbs}
                if r.short:
                    e["shortNames"] = r.short
                if r.categories:
                    e["categories"] = r.categories
                if r.subresources:
                    e["subresources"] = [{"subresource": s, "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                                          "verbs": verbs} for s, verbs in sorted(r.subresources.items())]
                resources.append(e)
            versions.append({"version": v, "resources": resources, "freshness": "Current"})
        md = {"name": group, "creationTimestamp": None} if group else {"creationTimestamp": None}
        items.append({"metadata": md, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}", "metadata": {}, "items": items}


def api_groups():
    seen = []
    for g, _ in GROUP_VERSIONS:
        if g and g not in seen:
            seen.append(g)
    return seen


# --------------------------------------------------------------------------------------------- continue tokens
def encode_continue(rv, start_key):
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start_key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token):
    try:
        pad = "=" * (-len(token) % 4)
        data = base64.urlsafe_b64decode(token + pad)
        c = json.loads(data)
        if not isinstance(c, dict):
            raise ValueError("json: cannot unmarshal into Go value of type storage.continueToken")
    except Exception as e:  # noqa: BLE001 - mirror "continue key is not valid: <err>"
        raise err_bad_request(f"invalid continue token: continue key is not valid: {e}") from None
    if c.get("v") != "meta.k8s.io/v1":
        raise err_bad_request(f"invalid continue token: continue key is not valid: server does not recognize this "
                              f"encoded version {c.get('v')}")
    rv = c.get("rv")
    if not isinstance(rv, int) or rv == 0:
        raise err_bad_request("invalid continue token: continue key is not valid: incorrect encoded start "
                              "resourceVersion (version meta.k8s.io/v1)")
    start = c.get("start")
    if not isinstance(start, str) or not start:
        raise err_bad_request("invalid continue token: continue key is not valid: encoded start key empty "
                              "(version meta.k8s.io/v1)")
    return rv, start


# --------------------------------------------------------------------------------------------- protobuf
# kubectl's typed clients send application/vnd.kubernetes.protobuf bodies: the "k8s\x00" magic followed by a
# runtime.Unknown envelope. We decode the handful of kinds kubectl's `create <kind>` commands send.
PB_SCHEMA = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   4: ("selfLink", "string"), 5: ("uid", "string"), 6: ("resourceVersion", "string"),
                   7: ("generation", "int"), 8: ("creationTimestamp", "Time"), 9: ("deletionTimestamp", "Time"),
                   10: ("deletionGracePeriodSeconds", "int"), 11: ("labels", "map:string"),
                   12: ("annotations", "map:string"), 13: ("ownerReferences", "[]OwnerReference"),
                   14: ("finalizers", "[]string")},
    "OwnerReference": {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"), 5: ("apiVersion", "string"),
                       6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:string"), 3: ("binaryData", "map:bytes"),
                  4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:bytes"), 3: ("type", "string"),
               4: ("stringData", "map:string"), 5: ("immutable", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "NamespaceStatus")},
    "NamespaceSpec": {1: ("finalizers", "[]string")},
    "NamespaceStatus": {1: ("phase", "string")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 2: ("secrets", "[]ObjectReference"),
                       3: ("imagePullSecrets", "[]LocalObjectReference"), 4: ("automountServiceAccountToken", "bool")},
    "ObjectReference": {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"), 4: ("uid", "string"),
                        5: ("apiVersion", "string"), 6: ("resourceVersion", "string"), 7: ("fieldPath", "string")},
    "LocalObjectReference": {1: ("name", "string")},
}
PB_KINDS = {("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Namespace"), ("v1", "ServiceAccount")}


def _pb_fields(buf):
    i, n = 0, len(buf)
    while i < n:
        key, i = _pb_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _pb_varint(buf, i)
        elif wt == 2:
            ln, i = _pb_varint(buf, i)
            v = buf[i:i + ln]
            i += ln
        elif wt == 1:
            v = int.from_bytes(buf[i:i + 8], "little")
            i += 8
        elif wt == 5:
            v = int.from_bytes(buf[i:i + 4], "little")
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield num, v


def _pb_varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def pb_decode(buf, typ):
    schema = PB_SCHEMA[typ]
    out = {}
    for num, v in _pb_fields(buf):
        if num not in schema:
            continue
        name, ftype = schema[num]
        if ftype.startswith("[]"):
            out.setdefault(name, []).append(_pb_scalar(v, ftype[2:]))
        elif ftype.startswith("map:"):
            entry = dict(_pb_fields(v))
            key = entry.get(1, b"").decode()
            val = entry.get(2, b"")
            out.setdefault(name, {})[key] = base64.b64encode(val).decode() if ftype == "map:bytes" else val.decode()
        else:
            out[name] = _pb_scalar(v, ftype)
    return out


def _pb_scalar(v, ftype):
    if ftype == "string":
        return v.decode()
    if ftype == "bytes":
        return v
    if ftype == "bool":
        return bool(v)
    if ftype == "int":
        return v - (1 << 64) if v >= (1 << 63) else v
    if ftype == "Time":
        t = pb_decode(v, "Time")
        return datetime.fromtimestamp(t.get("seconds", 0), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return pb_decode(v, ftype)


def _pb_clean(v):
    if isinstance(v, dict):
        return {k: _pb_clean(x) for k, x in v.items() if x not in ("", None, 0, False) or k in ("data", "immutable")}
    if isinstance(v, list):
        return [_pb_clean(x) for x in v]
    return v


def decode_protobuf_object(body):
    if not body.startswith(b"k8s\x00"):
        raise err_bad_request("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    env = pb_decode(body[4:], "Unknown")
    tm = env.get("typeMeta") or {}
    api_version, kind = tm.get("apiVersion", ""), tm.get("kind", "")
    if (api_version, kind) not in PB_KINDS:
        raise ApiError(415, "UnsupportedMediaType",
                       f"the fake apiserver cannot decode protobuf for {api_version}/{kind}; send application/json", {})
    obj = _pb_clean(pb_decode(env.get("raw", b""), kind))
    out = {"apiVersion": api_version, "kind": kind}
    out.update(obj)
    return out


# --------------------------------------------------------------------------------------------- HTTP layer
class Response:
    def __init__(self, code, body, content_type="application/json", headers=None):
        self.code = code
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


class Request:
    def __init__(self, method, path, query_raw, headers, body_bytes):
        self.method = method
        self.path = path
        self.query_raw = query_raw
        self.query = {k: v[-1] for k, v in parse_qs(query_raw, keep_blank_values=True).items()}
        self.query_multi = parse_qs(query_raw, keep_blank_values=True)
        self.headers = headers
        self.body_bytes = body_bytes
        self.accept = headers.get("Accept", "")
        self.content_type = headers.get("Content-Type", "")
        self.warnings = []
        self.user_agent = headers.get("User-Agent", "")

    def json_body(self, allow_empty=False):
        if not self.body_bytes or not self.body_bytes.strip():
            if allow_empty:
                return None
            raise err_bad_request("the body of the request was empty")
        ct = self.content_type.split(";")[0].strip().lower()
        if ct == "application/vnd.kubernetes.protobuf":
            try:
                return decode_protobuf_object(self.body_bytes)
            except (ValueError, IndexError, KeyError, UnicodeDecodeError) as e:
                raise err_bad_request(f"unable to decode protobuf body: {e}") from None
        if ct not in ("application/json", "application/yaml", "") and not ct.endswith("+json"):
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted media types include: "
                           f"application/json, application/yaml, application/vnd.kubernetes.protobuf", {})
        try:
            return json.loads(self.body_bytes)
        except ValueError as e:
            raise err_bad_request(f"couldn't get version/kind; json parse error: {e}") from None

    def dry_run(self):
        vals = self.query_multi.get("dryRun", [])
        for v in vals:
            if v != "All":
                raise err_invalid("meta.k8s.io", "CreateOptions" if self.method == "POST" else
                                  ("PatchOptions" if self.method == "PATCH" else "UpdateOptions"), "",
                                  [FieldErr("FieldValueNotSupported", "dryRun", '"All"', v)])
        return bool(vals)

    def field_manager(self):
        fm = self.query.get("fieldManager")
        if fm:
            if len(fm) > 128:
                raise err_invalid("meta.k8s.io", "CreateOptions", "", [FieldErr("FieldValueTooLong", "fieldManager", "may not be more than 128 bytes")])
            return fm
        ua = self.user_agent.split("/")[0]
        return "".join(ch for ch in ua if ch.isprintable())[:128]


def _resource_or_404(group, version, plural):
    res = RES_BY_PATH.get((group, version, plural))
    if res is None:
        raise err_generic(404)
    return res


def route(req: Request) -> Response:
    path = req.path
    if path in ("/healthz", "/livez", "/readyz"):
        return Response(200, b"ok", "text/plain; charset=utf-8")
    if path == "/version" or path == "/version/":
        return Response(200, dumps(SERVER_VERSION))
    segs = [s for s in path.split("/") if s]
    if not segs or segs[0] not in ("api", "apis"):
        raise err_generic(404)
    if segs[0] == "api":
        if len(segs) == 1:
            return discovery_root(req, core=True)
        group, version, rest = "", segs[1], segs[2:]
        if version != "v1":
            raise err_generic(404)
    else:
        if len(segs) == 1:
            return discovery_root(req, core=False)
        if len(segs) == 2:
            if req.method != "GET":
                raise err_generic(405)
            if segs[1] not in api_groups():
                raise err_generic(404)
            return Response(200, dumps(legacy_group(segs[1])))
        group, version, rest = segs[1], segs[2], segs[3:]
        if (group, version) not in GROUP_VERSIONS:
            raise err_generic(404)
    if not rest:
        if req.method != "GET":
            raise err_generic(405)
        return Response(200, dumps(legacy_resource_list(group, version)))
    ns = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in NS_RES.subresources):
        ns = rest[1]
        rest = rest[2:]
        res = _resource_or_404(group, version, rest[0])
        if not res.namespaced:
            raise err_generic(404)
    else:
        res = _resource_or_404(group, version, rest[0])
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) >= 3 else None
    if len(rest) > 3:
        raise err_generic(404)
    if sub is not None and sub not in res.subresources:
        raise err_generic(404)
    if name is not None and res.namespaced and ns is None:
        raise err_generic(404)  # /api/v1/configmaps/x does not exist
    for w in [WARNINGS_BY_RESOURCE.get(res.key)]:
        if w:
            req.warnings.append(w)
    m = req.method
    if name is None:
        if m == "GET":
            if req.query.get("watch") in ("true", "1"):
                return watch_collection(req, res, ns)
            return list_collection(req, res, ns)
        if m == "POST":
            if res.namespaced and ns is None:
                raise err_generic(405)
            return create(req, res, ns)
        if m == "DELETE" and "deletecollection" in res.verbs:
            return delete_collection(req, res, ns)
        raise err_generic(405)
    if sub is None:
        if m == "GET":
            if req.query.get("watch") in ("true", "1"):
                raise err_generic(405)
            return get_one(req, res, ns, name)
        if m == "PUT":
            return update(req, res, ns, name)
        if m == "PATCH":
            return patch(req, res, ns, name)
        if m == "DELETE":
            return delete_one(req, res, ns, name)
        raise err_generic(405)
    verbs = res.subresources[sub]
    if m == "GET" and "get" in verbs:
        return get_one(req, res, ns, name)
    if m == "PUT" and "update" in verbs:
        return update(req, res, ns, name, sub=sub)
    if m == "PATCH" and "patch" in verbs:
        return patch(req, res, ns, name, sub=sub)
    raise err_generic(405)


def discovery_root(req, core):
    if req.method != "GET":
        raise err_generic(405)
    allowed = {"APIGroupDiscoveryList"} if STORE.aggregated_discovery else set()
    try:
        transform, version, ctype = negotiate(req.accept, allowed)
    except ApiError:
        transform, version, ctype = None, None, "application/json"
    if transform == "APIGroupDiscoveryList":
        body = aggregated([""] if core else api_groups(), version)
        return Response(200, dumps(body), ctype, {"Vary": "Accept"})
    if core:
        body = {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}
    else:
        body = {"kind": "APIGroupList", "apiVersion": "v1", "groups": [legacy_group(g) for g in api_groups()]}
    return Response(200, dumps(body), "application/json", {"Vary": "Accept"})


# ---- reads
def _check_ns_path(res, ns):
    return ns if res.namespaced else ""


def get_one(req, res, ns, name):
    transform, version, ctype = negotiate(req.accept, {"Table", "PartialObjectMetadata"})
    with STORE.lock:
        obj = STORE.get(res, _check_ns_path(res, ns), name)
        if obj is None:
            raise err_not_found(res, name)
        rv = STORE.rv
    if transform == "PartialObjectMetadata":
        return Response(200, dumps(to_partial(obj, version)), ctype)
    if transform == "Table":
        return Response(200, dumps(to_table(res, [obj], {"resourceVersion": str(rv)}, req.query.get("includeObject", "Metadata"), version)), ctype)
    return Response(200, dumps(obj), ctype)


def _parse_selectors(req, res):
    label_reqs, field_reqs, field_fn = [], [], None
    ls = req.query.get("labelSelector", "")
    fs = req.query.get("fieldSelector", "")
    try:
        if ls:
            label_reqs = parse_label_selector(ls)
        if fs:
            field_reqs, field_fn = compile_field_selector(res, fs)
    except SelectorError as e:
        raise err_bad_request(str(e)) from None
    return label_reqs, field_reqs, field_fn


def _parse_limit(req):
    lim = req.query.get("limit", "")
    if lim == "":
        return 0
    try:
        v = int(lim)
    except ValueError:
        raise err_bad_request(f"strconv.ParseInt: parsing {go_quote(lim)}: invalid syntax") from None
    return max(v, 0)


def list_items(req, res, ns):
    """Returns (items, list_meta). Implements limit/continue with consistent snapshots."""
    label_reqs, field_reqs, field_fn = _parse_selectors(req, res)
    limit = _parse_limit(req)
    cont = req.query.get("continue", "")
    rv_param = req.query.get("resourceVersion", "")
    rv_match = req.query.get("resourceVersionMatch", "")
    if cont and rv_match:
        raise err_invalid("meta.k8s.io", "ListOptions", "", [FieldErr("FieldValueForbidden", "resourceVersionMatch",
                                                                      "resourceVersionMatch is forbidden when continue is provided")])
    if rv_match and not rv_param:
        raise err_invalid("meta.k8s.io", "ListOptions", "", [FieldErr("FieldValueForbidden", "resourceVersionMatch",
                                                                      "resourceVersionMatch is forbidden unless resourceVersion is provided")])
    if cont and rv_param and rv_param != "0":
        raise err_bad_request("specifying resource version is not allowed when using continue")
    if rv_param and rv_param != "0":
        try:
            int(rv_param)
        except ValueError:
            raise err_bad_request(f"invalid resource version: strconv.ParseUint: parsing {go_quote(rv_param)}: invalid syntax") from None
    if rv_param == "0" and not cont:
        limit = 0  # served from the watch cache, which ignores limit
    scope = ns if (res.namespaced and ns is not None) else None
    has_sel = bool(label_reqs or field_reqs)

    def matches(o):
        meta = o["metadata"]
        if label_reqs and not labels_match(label_reqs, meta.get("labels") or {}):
            return False
        if field_reqs and not fields_match(field_reqs, field_fn, o):
            return False
        return True

    with STORE.lock:
        if cont:
            token_rv, start = decode_continue(cont)
            snap = None
            if token_rv > 0:
                if token_rv <= STORE.compacted_rv:
                    snap = None
                else:
                    snap = STORE.snapshots.get((res.key, scope, token_rv))
                    if snap is not None:
                        STORE.snapshots.move_to_end((res.key, scope, token_rv))
                    elif token_rv == STORE.rv:
                        snap = _take_snapshot(res, scope)
                if snap is None:
                    # etcd compacted that revision: 410 with an inconsistent-continue token (rv -1)
                    last = start[:-1] if start.endswith("\x00") else start
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                                   "list result. You can start a new list without the continue parameter, or use the "
                                   "continue token in this response to retrieve the remainder of the results. "
                                   "Continuing with the provided token results in an inconsistent list - objects that "
                                   "were created, modified, or deleted between the time the first chunk was returned "
                                   "and now may show up in the list.", None,
                                   list_meta={"continue": encode_continue(-1, last + "\x00")})
                list_rv = token_rv
            else:
                snap = _take_snapshot(res, scope)
                list_rv = STORE.rv
            keys, objs = snap
            idx = bisect.bisect_left(keys, start)
        else:
            keys, objs = _take_snapshot(res, scope)
            list_rv = STORE.rv
            idx = 0
        out = []
        n = len(keys)
        i = idx
        last_key = None
        while i < n:
            if limit and len(out) >= limit:
                break
            o = objs[i]
            if not has_sel or matches(o):
                out.append(o)
                last_key = keys[i]
            i += 1
        meta = {"resourceVersion": str(list_rv)}
        if limit and i < n:
            meta["continue"] = encode_continue(list_rv, last_key + "\x00")
            if not has_sel:
                meta["remainingItemCount"] = n - i
            sk = (res.key, scope, list_rv)
            if sk not in STORE.snapshots:
                STORE.snapshots[sk] = (keys, objs)
                while len(STORE.snapshots) > MAX_SNAPSHOTS:
                    STORE.snapshots.popitem(last=False)
    return out, meta


def _take_snapshot(res, scope):
    items = STORE.objects[res.key]
    if scope is None:
        pairs = [(obj_key(k[0], k[1]), o) for k, o in items.items()]
    else:
        pairs = [(k[1], o) for k, o in items.items() if k[0] == scope]
    pairs.sort(key=lambda p: p[0])
    return [p[0] for p in pairs], [p[1] for p in pairs]


def strip_item(o):
    """Typed lists carry no per-item kind/apiVersion."""
    return {k: v for k, v in o.items() if k not in ("kind", "apiVersion")}


def list_collection(req, res, ns):
    transform, version, ctype = negotiate(req.accept, {"Table", "PartialObjectMetadataList"})
    items, meta = list_items(req, res, ns)
    if transform == "PartialObjectMetadataList":
        body = {"kind": "PartialObjectMetadataList", "apiVersion": f"meta.k8s.io/{version}", "metadata": meta,
                "items": [to_partial(o, version) for o in items]}
        return Response(200, dumps(body), ctype)
    if transform == "Table":
        return Response(200, dumps(to_table(res, items, meta, req.query.get("includeObject", "Metadata"), version)), ctype)
    body = {"kind": f"{res.kind}List", "apiVersion": res.gv, "metadata": meta, "items": [strip_item(o) for o in items]}
    return Response(200, dumps(body), ctype)


# ---- watch
class WatchStream:
    def __init__(self, res, ns, req):
        self.res, self.ns, self.req = res, ns, req


def watch_collection(req, res, ns):
    label_reqs, field_reqs, field_fn = _parse_selectors(req, res)
    negotiate(req.accept, set())
    return Response(200, WatchStream(res, ns, (label_reqs, field_reqs, field_fn)), "application/json")


def run_watch(handler, stream, req):
    res, ns = stream.res, stream.ns
    label_reqs, field_reqs, field_fn = stream.req
    timeout = req.query.get("timeoutSeconds")
    deadline = time.monotonic() + (int(timeout) if timeout and timeout.isdigit() else 1800)
    rv_param = req.query.get("resourceVersion", "")
    send_initial = req.query.get("sendInitialEvents") == "true"
    bookmarks = req.query.get("allowWatchBookmarks") == "true"
    scope = ns if res.namespaced and ns is not None else None

    def visible(o):
        m = o["metadata"]
        if scope is not None and m.get("namespace") != scope:
            return False
        if label_reqs and not labels_match(label_reqs, m.get("labels") or {}):
            return False
        if field_reqs and not fields_match(field_reqs, field_fn, o):
            return False
        return True

    def send(ev):
        data = dumps(ev)
        handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        handler.wfile.flush()

    initial = []
    with STORE.lock:
        STORE.watchers += 1
        start_rv = STORE.rv
        if rv_param in ("", "0") or send_initial:
            keys, objs = _take_snapshot(res, scope)
            initial = [o for o in objs if visible(o)]
        else:
            try:
                start_rv = int(rv_param)
            except ValueError:
                start_rv = STORE.rv
            oldest = STORE.events[0][0] if STORE.events else STORE.rv
            if start_rv < oldest - 1 or start_rv <= STORE.compacted_rv:
                initial = None
    try:
        if initial is None:
            send({"type": "ERROR", "object": ApiError(410, "Expired", f"too old resource version: {rv_param} ({STORE.rv})").body()})
            return
        for o in initial:
            send({"type": "ADDED", "object": o})
        if send_initial:
            send({"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.gv, "metadata": {
                "resourceVersion": str(start_rv), "annotations": {"k8s.io/initial-events-end": "true"}}}})
        last = start_rv
        while time.monotonic() < deadline and not SHUTDOWN.is_set():
            batch = []
            with STORE.lock:
                if not STORE.events or STORE.events[-1][0] <= last:
                    STORE.cond.wait(timeout=1.0)
                for ev in reversed(STORE.events):
                    if ev[0] <= last:
                        break
                    batch.append(ev)
                batch.reverse()
                if STORE.events:
                    last = max(last, STORE.events[-1][0])
            for erv, etype, rkey, obj in batch:
                if rkey == res.key and visible(obj):
                    send({"type": etype, "object": obj})
            if bookmarks and not batch:
                send({"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.gv,
                                                      "metadata": {"resourceVersion": str(last)}}})
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass
    finally:
        with STORE.lock:
            STORE.watchers -= 1
        try:
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            pass


# ---- writes
def _decode_object(req, res, body, patch_apply=False):
    if not isinstance(body, dict):
        raise err_bad_request(f"the object provided is unrecognized (must be of type {res.kind}): couldn't get "
                              f"version/kind; json parse error: json: cannot unmarshal {type(body).__name__} into Go "
                              f"value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; "
                              f"Kind string \"json:\\\"kind,omitempty\\\"\" }}")
    kind = body.get("kind")
    api_version = body.get("apiVersion")
    if patch_apply and (not kind or not api_version):
        missing = "Kind" if not kind else "Version"
        raise err_bad_request(f"Object '{missing}' is missing in '{json.dumps(body, separators=(',', ':'))}'")
    if kind and kind != res.kind:
        gv = api_version or res.gv
        other = RES_BY_GVK.get((gv, kind))
        prefix = f"{kind} in version {go_quote(gv.split('/')[-1])} cannot be handled as a {res.kind}: "
        if other is None:
            raise err_bad_request(prefix + f"no kind {go_quote(kind)} is registered for version {go_quote(gv)} in "
                                           f"scheme \"pkg/api/legacyscheme/scheme.go:30\"")
        internal = (res.group.split(".")[0] or "core")
        raise err_bad_request(prefix + f"converting ({other.version}.{kind}) to ({internal}.{res.kind}): unknown conversion")
    if api_version and api_version != res.gv:
        raise err_bad_request(f"the API version in the data ({api_version}) does not match the expected API version ({res.gv})")
    meta = body.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise err_bad_request(f"{res.kind} in version {go_quote(res.version)} cannot be handled as a {res.kind}: "
                              "json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta")
    obj = jcopy(body)
    obj.setdefault("metadata", {})
    return obj


def _ensure_namespace(res, obj, ns):
    meta = obj["metadata"]
    if not res.namespaced:
        meta.pop("namespace", None)
        return
    objns = meta.get("namespace", "")
    if objns == ns:
        return
    if not objns:
        meta["namespace"] = ns
        return
    raise err_bad_request("the namespace of the provided object does not match the namespace sent on the request")


def _admit_namespace(res, ns, name):
    """NamespaceLifecycle admission for create."""
    if not res.namespaced:
        return
    nso = STORE.get(NS_RES, "", ns)
    if nso is None:
        raise err_not_found(NS_RES, ns)
    if nso["metadata"].get("deletionTimestamp") or (nso.get("status") or {}).get("phase") == "Terminating":
        raise err_forbidden(res, name, f"unable to create new content in namespace {ns} because it is being terminated",
                            causes=[{"reason": "NamespaceTerminating", "message": f"namespace {ns} is being terminated",
                                     "field": "metadata.namespace"}])


def _generate_name(base):
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    import random
    if len(base) > 58:
        base = base[:58]
    return base + "".join(random.choice(alphabet) for _ in range(5))


def do_create(res, obj, ns, dry_run, manager, creation_ts=None, uid=None, keep_status=False, operation="Update",
              applied_leaves=None):
    """Store.Create. Caller holds the lock."""
    meta = obj["metadata"]
    for k in ("uid", "creationTimestamp"):
        meta.pop(k, None)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = _generate_name(meta["generateName"])
    _ensure_namespace(res, obj, ns)
    meta["uid"] = uid or str(uuid.uuid4())
    meta["creationTimestamp"] = creation_ts or now_ts()
    prepare_for_create(res, obj, keep_status=keep_status)
    validate_object(res, obj)
    _admit_namespace(res, meta.get("namespace", ""), meta["name"])
    if meta.get("resourceVersion"):
        raise err_bad_request("resourceVersion can not be set for Create requests")
    existing = STORE.get(res, meta.get("namespace", ""), meta["name"])
    if existing is not None:
        raise err_already_exists(res, meta["name"], deleting=bool(existing["metadata"].get("deletionTimestamp")))
    obj = canonical(res, obj)
    update_managed_fields(None, obj, manager, operation, res.gv, applied_leaves=applied_leaves)
    obj = canonical(res, obj)
    if dry_run:
        return obj
    STORE.put(res, obj)
    if res is NS_RES:
        STORE.ensure_namespace_defaults()
    return obj


def create(req, res, ns):
    transform, version, ctype = negotiate(req.accept, {"Table", "PartialObjectMetadata"})
    body = req.json_body()
    obj = _decode_object(req, res, body)
    dry_run = req.dry_run()
    with STORE.lock:
        out = do_create(res, obj, ns or "", dry_run, req.field_manager())
    return _respond_obj(201, res, out, transform, version, ctype, req)


def _respond_obj(code, res, obj, transform, version, ctype, req):
    if obj.get("kind") == "Status":
        return Response(code, dumps(obj), "application/json")
    if transform == "PartialObjectMetadata":
        return Response(code, dumps(to_partial(obj, version)), ctype)
    if transform == "Table":
        return Response(code, dumps(to_table(res, [obj], {}, req.query.get("includeObject", "Metadata"), version)), ctype)
    return Response(code, dumps(obj), ctype)


def _spec_changed(res, old, new):
    ignore = ("metadata", "status", "kind", "apiVersion")
    return {k: v for k, v in old.items() if k not in ignore} != {k: v for k, v in new.items() if k not in ignore}


def prepare_update(res, old, new, sub=None):
    """rest.BeforeUpdate + Strategy.PrepareForUpdate: returns the object to store."""
    nm, om = new["metadata"], old["metadata"]
    for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "selfLink"):
        if k in om:
            nm[k] = om[k]
        else:
            nm.pop(k, None)
    nm["name"] = om["name"]
    if res.namespaced:
        nm["namespace"] = om["namespace"]
    if sub == "status":
        out = jcopy(old)
        out["metadata"]["resourceVersion"] = nm.get("resourceVersion", om["resourceVersion"])
        if "status" in new:
            out["status"] = new["status"]
        else:
            out.pop("status", None)
        return out
    if sub == "finalize":
        out = jcopy(old)
        out["metadata"]["resourceVersion"] = nm.get("resourceVersion", om["resourceVersion"])
        fins = (new.get("spec") or {}).get("finalizers")
        out.setdefault("spec", {})
        if fins:
            out["spec"]["finalizers"] = fins
        else:
            out["spec"].pop("finalizers", None)
        return out
    if res.status:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    if res is NS_RES:
        new["spec"] = old.get("spec", {})
        nm.setdefault("labels", {})["kubernetes.io/metadata.name"] = om["name"]
    if res.key == ("", "secrets"):
        _fold_string_data(new)
    d = DEFAULTERS.get(res.key)
    if d is not None:
        d(new)
    if res.key == ("", "services"):
        _default_service(new, existing=old)
    if res.generation and _spec_changed(res, old, new):
        nm["generation"] = int(om.get("generation", 1)) + 1
    return new


def do_update(req, res, ns, name, new, sub=None, dry_run=False, manager=None, operation="Update",
              applied_leaves=None, force_owned=None, patch_rv_ok=False, uid_precondition=True):
    """Store.Update with the lock held. Returns (code, obj)."""
    scope_ns = ns if res.namespaced else ""
    old = STORE.get(res, scope_ns, name)
    if old is None:
        raise err_not_found(res, name)
    nm = new["metadata"]
    if nm.get("name", name) != name:
        raise err_bad_request(f"the name of the object ({nm.get('name')}) does not match the name on the URL ({name})")
    _ensure_namespace(res, new, scope_ns)
    body_uid = nm.get("uid")
    if uid_precondition and body_uid and body_uid != old["metadata"]["uid"]:
        key = f"/registry/{res.qualified if res.group else res.plural}/{scope_ns + '/' if scope_ns else ''}{name}"
        raise err_res_conflict(res, name, f"StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, "
                                          f"AdditionalErrorMsg: Precondition failed: UID in precondition: {body_uid}, "
                                          f"UID in object meta: {old['metadata']['uid']}")
    body_rv = nm.get("resourceVersion")
    if body_rv:
        if body_rv != old["metadata"]["resourceVersion"]:
            raise err_res_conflict(res, name, OPTIMISTIC_LOCK)
    nm["resourceVersion"] = old["metadata"]["resourceVersion"]
    stored = prepare_update(res, old, new, sub=sub)
    validate_object(res, stored, old=old)
    stored = canonical(res, stored)
    update_managed_fields(old, stored, manager, operation, res.gv, subresource=sub, applied_leaves=applied_leaves,
                          force_owned=force_owned)
    stored = canonical(res, stored)
    cmp_old = {k: v for k, v in old.items()}
    if stored == cmp_old:
        return 200, old
    # managed-fields-only timestamp changes are ignored like upstream
    if _without_mf_time(stored) == _without_mf_time(old):
        return 200, old
    out = STORE.commit_update(res, old, stored, dry_run=dry_run)
    return 200, out


def _without_mf_time(o):
    c = dict(o)
    m = dict(c.get("metadata") or {})
    m["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in m.get("managedFields") or []]
    c["metadata"] = m
    return c


def update(req, res, ns, name, sub=None):
    transform, version, ctype = negotiate(req.accept, {"Table", "PartialObjectMetadata"})
    body = req.json_body()
    new = _decode_object(req, res, body)
    dry_run = req.dry_run()
    with STORE.lock:
        code, out = do_update(req, res, ns, name, new, sub=sub, dry_run=dry_run, manager=req.field_manager())
    return _respond_obj(code, res, out, transform, version, ctype, req)


PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply-cbor",
}


def patch(req, res, ns, name, sub=None):
    transform, version, ctype = negotiate(req.accept, {"Table", "PartialObjectMetadata"})
    ct = req.content_type.split(";")[0].strip().lower()
    ptype = PATCH_TYPES.get(ct)
    if ptype is None or ptype == "apply-cbor":
        raise ApiError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - accepted media types include: "
                       f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
                       f"application/strategic-merge-patch+json", {})
    force = req.query.get("force")
    if force is not None and ptype != "apply":
        raise err_invalid("meta.k8s.io", "PatchOptions", "", [FieldErr("FieldValueForbidden", "force", "may not be specified for non-apply patch")])
    if ptype == "apply" and not req.query.get("fieldManager"):
        raise err_invalid("meta.k8s.io", "PatchOptions", "", [FieldErr("FieldValueRequired", "fieldManager", "is required for apply patch")])
    dry_run = req.dry_run()
    try:
        body = json.loads(req.body_bytes or b"null")
    except ValueError as e:
        if ptype == "apply":
            raise err_bad_request(f"error decoding YAML: error converting YAML to JSON: {e}") from None
        raise err_bad_request(f"error decoding patch: {e}") from None
    manager = req.field_manager()
    scope_ns = ns if res.namespaced else ""
    with STORE.lock:
        old = STORE.get(res, scope_ns, name)
        if ptype == "apply":
            return _apply(req, res, scope_ns, name, old, body, sub, dry_run, manager, force == "true",
                          transform, version, ctype)
        if old is None:
            raise err_not_found(res, name)
        base = jcopy(old)
        try:
            if ptype == "merge":
                if not isinstance(body, dict):
                    raise err_bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
                new = merge_patch(base, body)
            elif ptype == "strategic":
                if not isinstance(body, dict):
                    raise err_bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
                new = strategic_merge_patch(base, body)
            else:
                try:
                    new = json_patch(base, body)
                except ValueError as e:
                    raise err_bad_request(str(e)) from None
        except JsonPatchError:
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {}) from None
        if not isinstance(new, dict):
            raise err_bad_request("the object provided is unrecognized")
        new = _decode_object(req, res, new)
        # a patch carrying metadata.resourceVersion is an optimistic lock; without one it applies to the latest
        if isinstance(body, dict) and not (body.get("metadata") or {}).get("resourceVersion"):
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        code, out = do_update(req, res, ns, name, new, sub=sub, dry_run=dry_run, manager=manager)
    return _respond_obj(code, res, out, transform, version, ctype, req)


def _merge_apply(base, cfg, field=None):
    if isinstance(cfg, dict) and isinstance(base, dict):
        out = dict(base)
        for k, v in cfg.items():
            out[k] = _merge_apply(base.get(k), v, k)
        return out
    if isinstance(cfg, list) and isinstance(base, list):
        keys_c = [_list_item_key(field, x) for x in cfg]
        keys_b = [_list_item_key(field, x) for x in base]
        if cfg and all(keys_c) and all(keys_b):
            out = list(base)
            for kc, x in zip(keys_c, cfg):
                idx = next((i for i, kb in enumerate(keys_b) if kb == kc), None)
                if idx is None:
                    out.append(jcopy(x))
                else:
                    out[idx] = _merge_apply(base[idx], x, field)
            return out
        if field in _SET_LISTS:
            out = list(base)
            for x in cfg:
                if x not in out:
                    out.append(x)
            return out
    return jcopy(cfg)


def _remove_leaf(obj, path):
    """Remove one leaf path from obj (used when an applier stops owning a field)."""
    cur = obj
    for i, seg in enumerate(path):
        last = i == len(path) - 1 or (i == len(path) - 2 and path[-1] == ".")
        if seg == ".":
            return
        if seg.startswith("f:"):
            key = seg[2:]
            if not isinstance(cur, dict) or key not in cur:
                return
            if last:
                del cur[key]
                return
            cur = cur[key]
        elif seg.startswith("k:"):
            want = json.loads(seg[2:])
            if not isinstance(cur, list):
                return
            for j, x in enumerate(cur):
                if isinstance(x, dict) and all(x.get(k) == v for k, v in want.items()):
                    if last:
                        cur.pop(j)
                        return
                    cur = x
                    break
            else:
                return
        elif seg.startswith("v:"):
            want = json.loads(seg[2:])
            if isinstance(cur, list) and want in cur:
                cur.remove(want)
            return


def _apply(req, res, ns, name, old, body, sub, dry_run, manager, force, transform, version, ctype):
    cfg = _decode_object(req, res, body, patch_apply=True)
    cm = cfg["metadata"]
    if cm.get("name") and cm["name"] != name:
        raise err_bad_request(f"the name of the object ({cm['name']}) does not match the name on the URL ({name})")
    cm["name"] = name
    applied = field_leaves(cfg)
    if old is None:
        if sub is not None:
            raise err_not_found(res, name)
        obj = jcopy(cfg)
        out = do_create(res, obj, ns, dry_run, manager, operation="Apply", applied_leaves=applied)
        return _respond_obj(201, res, out, transform, version, ctype, req)
    # conflicts: fields owned by other managers whose value would change
    conflicts = []
    force_owned = set()
    for e in _managed_entries(old):
        if e.get("manager", "") == manager and e.get("operation") == "Apply":
            continue
        if (e.get("subresource") or None) != sub:
            continue
        owned = fields_v1_to_leaves(e.get("fieldsV1") or {})
        for p in sorted(applied & owned):
            if p and p[-1] == ".":
                continue
            if _leaf_value(old, p) != _leaf_value(cfg, p):
                conflicts.append((e, p))
                force_owned.add(p)
    if conflicts and not force:
        causes = []
        lines = []
        for e, p in conflicts:
            fpath = "." + ".".join(s[2:] if s.startswith("f:") else f"[{s[2:]}]" for s in p)
            fpath = fpath.replace(".[", "[")
            causes.append({"reason": "FieldManagerConflict",
                           "message": f"conflict with {go_quote(e.get('manager', ''))}" +
                                      (f" using {e.get('apiVersion')}" if e.get("apiVersion") else ""),
                           "field": fpath})
            lines.append(f"- {e.get('manager', '')}: {fpath}")
        if len(conflicts) == 1:
            e, _ = conflicts[0]
            msg = f"Apply failed with 1 conflict: conflict with {go_quote(e.get('manager', ''))}" + \
                  (f" using {e.get('apiVersion')}" if e.get("apiVersion") else "") + f": {causes[0]['field']}"
        else:
            msg = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(
                f"conflict with {go_quote(e.get('manager', ''))}: {c['field']}" for (e, _), c in zip(conflicts, causes))
        raise ApiError(409, "Conflict", msg, {"causes": causes})
    # fields this manager applied before but no longer applies, owned by nobody else, are removed
    base = jcopy(old)
    prev_mine = set()
    others = set()
    for e in _managed_entries(old):
        leaves = fields_v1_to_leaves(e.get("fieldsV1") or {})
        if e.get("manager", "") == manager and e.get("operation") == "Apply":
            prev_mine |= leaves
        else:
            others |= leaves
    for p in sorted(prev_mine - applied - others, key=len, reverse=True):
        _remove_leaf(base, p)
    new = _merge_apply(base, {k: v for k, v in cfg.items() if k not in ("kind", "apiVersion")})
    new["metadata"] = _merge_apply(base["metadata"], {k: v for k, v in cm.items() if k in _META_TRACKED})
    new["metadata"]["resourceVersion"] = cm.get("resourceVersion") or old["metadata"]["resourceVersion"]
    new["kind"], new["apiVersion"] = res.kind, res.gv
    code, out = do_update(req, res, ns, name, new, sub=sub, dry_run=dry_run, manager=manager, operation="Apply",
                          applied_leaves=applied, force_owned=force_owned)
    return _respond_obj(code, res, out, transform, version, ctype, req)


def parse_delete_options(req):
    body = req.json_body(allow_empty=True)
    if body is None:
        opts = {}
        q = req.query
        if "gracePeriodSeconds" in q:
            opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"]) if q["gracePeriodSeconds"].lstrip("-").isdigit() else None
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "orphanDependents" in q:
            opts["orphanDependents"] = q["orphanDependents"] == "true"
        if "dryRun" in req.query_multi:
            opts["dryRun"] = req.query_multi["dryRun"]
    else:
        if not isinstance(body, dict):
            raise err_bad_request("json: cannot unmarshal into Go value of type v1.DeleteOptions")
        opts = body
        kind = opts.get("kind")
        if kind and kind != "DeleteOptions":
            raise err_bad_request(f"no kind {go_quote(kind)} is registered for version \"meta.k8s.io/v1\"")
    errs = []
    policy = opts.get("propagationPolicy")
    if opts.get("orphanDependents") is not None and policy is not None:
        errs.append(FieldErr("FieldValueInvalid", "propagationPolicy",
                             "orphanDependents and deletionPropagation cannot be both set", policy))
    if policy is not None and policy not in ("Foreground", "Background", "Orphan"):
        errs.append(FieldErr("FieldValueNotSupported", "propagationPolicy", '"Foreground", "Background", "Orphan", nil', policy))
    dr = opts.get("dryRun") or []
    if isinstance(dr, str):
        dr = [dr]
    for v in dr:
        if v != "All":
            errs.append(FieldErr("FieldValueNotSupported", "dryRun", '"All"', v))
    if errs:
        raise err_invalid("meta.k8s.io", "DeleteOptions", "", errs)
    pre = opts.get("preconditions")
    if pre is not None and not isinstance(pre, dict):
        raise err_bad_request("json: cannot unmarshal into Go struct field DeleteOptions.preconditions of type v1.Preconditions")
    return opts, bool(dr)


def delete_one(req, res, ns, name):
    opts, dry_run = parse_delete_options(req)
    with STORE.lock:
        code, out = STORE.delete_object(res, ns if res.namespaced else "", name, opts, dry_run=dry_run, warnings=req.warnings)
    if out.get("kind") == "Status":
        return Response(code, dumps(out), "application/json")
    transform, version, ctype = negotiate(req.accept, {"Table", "PartialObjectMetadata"})
    return _respond_obj(code, res, out, transform, version, ctype, req)


def delete_collection(req, res, ns):
    opts, dry_run = parse_delete_options(req)
    items, meta = list_items(req, res, ns)
    with STORE.lock:
        for o in items:
            m = o["metadata"]
            try:
                STORE.delete_object(res, m.get("namespace", ""), m["name"], dict(opts), dry_run=dry_run, warnings=None)
            except ApiError as e:
                if e.code != 404:
                    raise
    body = {"kind": f"{res.kind}List", "apiVersion": res.gv, "metadata": meta, "items": [strip_item(o) for o in items]}
    return Response(200, dumps(body))


# --------------------------------------------------------------------------------------------- faults & control
def _verb_for(req):
    segs = [s for s in req.path.split("/") if s]
    m = req.method
    # resource request?
    info = {"resource": "", "group": "", "namespace": "", "name": "", "sub": ""}
    try:
        if segs and segs[0] == "api" and len(segs) >= 3:
            rest = segs[2:]
        elif segs and segs[0] == "apis" and len(segs) >= 4:
            info["group"] = segs[1]
            rest = segs[3:]
        else:
            rest = None
        if rest is not None:
            if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
                info["namespace"] = rest[1]
                rest = rest[2:]
            info["resource"] = rest[0]
            if len(rest) >= 2:
                info["name"] = rest[1]
            if len(rest) >= 3:
                info["sub"] = rest[2]
            if info["resource"] == "namespaces" and info["name"]:
                info["namespace"] = info["name"]
    except IndexError:
        pass
    watch = req.query.get("watch") in ("true", "1")
    if m == "GET":
        verb = "watch" if watch else ("get" if info["name"] else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if info["name"] else "deletecollection"}.get(m, m.lower())
    return verb, info


def fault_error(fault, req):
    code = int(fault["status"])
    verb, info = _verb_for(req)
    retry = fault.get("retry_after")
    headers = {}
    if retry is not None:
        headers["Retry-After"] = str(int(retry))
    if fault.get("format") == "text":
        text = fault.get("message") or {429: "Too many requests, please try again later."}.get(code, "error")
        return Response(code, (text + "\n").encode(), "text/plain; charset=utf-8", headers)
    reason = fault.get("reason")
    message = fault.get("message")
    details = None
    res_like = None
    if info["resource"]:
        res_like = Res(info["group"], "v1", info["resource"], info["resource"], info["resource"])
    if code == 403:
        user = fault.get("user") or DEFAULT_FORBIDDEN_USER
        resource = info["resource"] + (f"/{info['sub']}" if info["sub"] else "")
        if res_like is not None:
            scope = f"in the namespace {go_quote(info['namespace'])}" if info["namespace"] else "at the cluster scope"
            why = f"User {go_quote(user)} cannot {verb} resource {go_quote(resource)} in API group {go_quote(info['group'])} {scope}"
            err = err_forbidden(res_like, info["name"], why)
        else:
            err = err_forbidden(None, "", f"User {go_quote(user)} cannot {verb.lower()} path {go_quote(req.path)}")
        reason, message, details = reason or err.reason, message or err.message, err.details
    elif code == 401:
        reason, message = reason or "Unauthorized", message or "Unauthorized"
    elif code == 429:
        reason, message = reason or "TooManyRequests", message or "Too many requests, please try again later."
        details = {}
    elif code == 410:
        reason = reason or "Expired"
        message = message or ("The provided continue parameter is too old to display a consistent list result. You "
                              "can start a new list without the continue parameter.")
    elif code == 404:
        if res_like is not None and info["name"]:
            e = err_not_found(res_like, info["name"])
            reason, message, details = reason or e.reason, message or e.message, e.details
        else:
            reason, message, details = reason or "NotFound", message or "the server could not find the requested resource", {}
    elif code == 409:
        if res_like is not None and info["name"]:
            e = err_res_conflict(res_like, info["name"], OPTIMISTIC_LOCK)
            reason, message, details = reason or e.reason, message or e.message, e.details
        else:
            reason, message = reason or "Conflict", message or "the server reported a conflict"
    elif code == 500:
        inner = message or "injected fault"
        reason, message, details = reason or "InternalError", f"Internal error occurred: {inner}", {"causes": [{"message": inner}]}
    elif code == 503:
        reason, message = reason or "ServiceUnavailable", message or "the server is currently unable to handle the request"
    elif code == 504:
        reason, message = reason or "Timeout", message or "Timeout: request did not complete within requested timeout - context deadline exceeded"
        details = {}
    else:
        g = err_generic(code, message)
        reason, message, details = reason or g.reason, message or g.message, g.details
    if retry is not None:
        details = dict(details or {})
        details["retryAfterSeconds"] = int(retry)
    err = ApiError(code, reason, message, details, headers)
    return Response(code, dumps(err.body()), "application/json", headers)


def match_fault(req):
    """Returns the fault dict to apply (times decremented) or None."""
    with STORE.lock:
        for f in STORE.faults:
            if f.get("times") is not None and f["times"] <= 0:
                continue
            if f.get("method") and f["method"].upper() != req.method:
                continue
            if f.get("path") and not re.search(f["path"], req.path):
                continue
            if f.get("query") and f["query"] not in req.query_raw:
                continue
            if f.get("times") is not None:
                f["times"] -= 1
            f["hits"] = f.get("hits", 0) + 1
            return dict(f)
    return None


def control(req: Request) -> Response:
    p = req.path.rstrip("/")
    m = req.method
    if p == "/_fake" or p == "/_fake/help":
        return Response(200, CONTROL_HELP.encode(), "text/plain; charset=utf-8")
    if p == "/_fake/faults":
        if m == "POST":
            body = req.json_body()
            faults = body if isinstance(body, list) else [body]
            for f in faults:
                if not isinstance(f, dict):
                    raise err_bad_request("a fault is a JSON object")
                if f.get("path"):
                    try:
                        re.compile(f["path"])
                    except re.error as e:
                        raise err_bad_request(f"bad path regex: {e}") from None
                f.setdefault("delay_ms", 0)
                f.setdefault("times", None)
                f.setdefault("status", None)
                f["hits"] = 0
            with STORE.lock:
                STORE.faults.extend(faults)
                n = len(STORE.faults)
            return Response(200, dumps({"faults": n}))
        if m == "GET":
            with STORE.lock:
                return Response(200, dumps(STORE.faults))
        if m == "DELETE":
            with STORE.lock:
                STORE.faults = []
            return Response(200, dumps({"faults": 0}))
    if p == "/_fake/requests":
        if m == "GET":
            with STORE.lock:
                return Response(200, dumps(STORE.requests))
        if m == "DELETE":
            with STORE.lock:
                STORE.requests = []
            return Response(200, dumps({"requests": 0}))
    if p == "/_fake/seed" and m == "POST":
        body = req.json_body()
        if isinstance(body, dict) and body.get("kind", "").endswith("List") and isinstance(body.get("items"), list):
            body = body["items"]
        if not isinstance(body, list):
            raise err_bad_request("seed takes a JSON list of objects")
        manager = req.query.get("fieldManager") or "kubectl-create"
        n = seed(body, manager)
        return Response(200, dumps({"created": n}))
    if p == "/_fake/expire-continue" and m == "POST":
        with STORE.lock:
            STORE.snapshots.clear()
            STORE.compacted_rv = STORE.rv
            STORE.next_rv()  # like etcd, the compaction marker moves the revision on
        return Response(200, dumps({"compacted": STORE.compacted_rv}))
    if p == "/_fake/reset" and m == "POST":
        with STORE.lock:
            STORE.reset()
        return Response(200, dumps({"reset": True}))
    if p == "/_fake/settle" and m == "POST":
        deadline = time.monotonic() + 10
        passes = 0
        while time.monotonic() < deadline:
            with STORE.lock:
                rv_before = STORE.rv
                STORE.controllers_pass()
                passes += 1
                if STORE.rv == rv_before and not STORE.gc_queue:
                    break
        return Response(200, dumps({"passes": passes}))
    if p == "/_fake/config" and m == "POST":
        body = req.json_body()
        with STORE.lock:
            if "aggregated_discovery" in body:
                STORE.aggregated_discovery = bool(body["aggregated_discovery"])
            if "controllers" in body:
                STORE.controllers_enabled = bool(body["controllers"])
            return Response(200, dumps({"aggregated_discovery": STORE.aggregated_discovery,
                                        "controllers": STORE.controllers_enabled}))
    if p == "/_fake/state" and m == "GET":
        with STORE.lock:
            return Response(200, dumps({"resourceVersion": STORE.rv, "compacted": STORE.compacted_rv,
                                        "snapshots": len(STORE.snapshots),
                                        "objects": {r.qualified: len(STORE.objects[r.key]) for r in RESOURCES}}))
    raise err_generic(404)


def seed(objs, manager):
    def order(o):
        kind = o.get("kind") if isinstance(o, dict) else None
        return 0 if kind == "Namespace" else 1

    created = 0
    with STORE.lock:
        for i, raw in enumerate(sorted(objs, key=order)):
            if not isinstance(raw, dict):
                raise err_bad_request(f"seed item {i} is not an object")
            res = RES_BY_GVK.get((raw.get("apiVersion"), raw.get("kind")))
            if res is None:
                raise err_bad_request(f"seed item {i}: unknown apiVersion/kind {raw.get('apiVersion')}/{raw.get('kind')}")
            obj = jcopy(raw)
            meta = obj.setdefault("metadata", {})
            meta.pop("resourceVersion", None)
            ts = meta.get("creationTimestamp")
            uid = meta.get("uid")
            ns = meta.get("namespace", "") if res.namespaced else ""
            if res.namespaced and not ns:
                ns = "default"
                meta["namespace"] = ns
            try:
                do_create(res, obj, ns, False, manager, creation_ts=ts, uid=uid, keep_status=True)
            except ApiError as e:
                raise ApiError(e.code, e.reason, f"seed item {i} ({res.kind} {ns + '/' if ns else ''}{meta.get('name')}): {e.message}",
                               e.details) from None
            created += 1
    return created


# --------------------------------------------------------------------------------------------- server
SHUTDOWN = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self):
        split = urlsplit(self.path)
        path = split.path or "/"
        body = self._read_body()
        hdrs = {"Accept": self.headers.get("Accept", ""), "Content-Type": self.headers.get("Content-Type", ""),
                "User-Agent": self.headers.get("User-Agent", "")}
        req = Request(self.command, path, split.query, hdrs, body)
        if path == "/_fake" or path.startswith("/_fake/"):
            try:
                resp = control(req)
            except ApiError as e:
                resp = Response(e.code, dumps(e.body()), "application/json", e.headers)
            self._send(resp)
            return
        fault = match_fault(req)
        resp = None
        if fault is not None:
            if fault.get("delay_ms"):
                time.sleep(fault["delay_ms"] / 1000.0)
            if fault.get("status"):
                resp = fault_error(fault, req)
        if resp is None:
            try:
                resp = route(req)
            except ApiError as e:
                resp = Response(e.code, dumps(e.body()), "application/json", e.headers)
            except Exception as e:  # noqa: BLE001 - a bug in the fake must still answer like the server
                import traceback
                traceback.print_exc()
                err = ApiError(500, "InternalError", f"Internal error occurred: {e}", {"causes": [{"message": str(e)}]})
                resp = Response(500, dumps(err.body()))
        if req.warnings:
            resp.headers["Warning"] = [f'299 - "{w}"' for w in req.warnings]
        self._log(req, resp, fault)
        self._send(resp, req)

    def _log(self, req, resp, fault):
        parsed = None
        if req.body_bytes and req.body_bytes.strip():
            try:
                if req.content_type.split(";")[0].strip() == "application/vnd.kubernetes.protobuf":
                    parsed = decode_protobuf_object(req.body_bytes)
                else:
                    parsed = json.loads(req.body_bytes)
            except Exception:  # noqa: BLE001 - the log keeps null for bodies it cannot parse
                parsed = None
        entry = {"method": req.method, "path": req.path, "query": req.query_raw, "status": resp.code,
                 "accept": req.accept, "content_type": req.content_type,
                 "authorization": bool(self.headers.get("Authorization")), "body": parsed,
                 "user_agent": req.user_agent, "fault": fault is not None and bool(fault.get("status")),
                 "time": time.time()}
        with STORE.lock:
            STORE.requests.append(entry)

    def _send(self, resp, req=None):
        if isinstance(resp.body, WatchStream):
            self.send_response(200)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Audit-Id", str(uuid.uuid4()))
            self.end_headers()
            run_watch(self, resp.body, req)
            self.close_connection = True
            return
        self.send_response(resp.code)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", resp.content_type)
        for k, v in resp.headers.items():
            if isinstance(v, list):
                for x in v:
                    self.send_header(k, x)
            else:
                self.send_header(k, v)
        if resp.code >= 400:
            self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    verbose = False


def controller_loop():
    while not SHUTDOWN.wait(CONTROLLER_PERIOD):
        with STORE.lock:
            if STORE.controllers_enabled:
                try:
                    STORE.controllers_pass()
                except Exception:  # noqa: BLE001
                    import traceback
                    traceback.print_exc()


def main(argv=None):
    ap = argparse.ArgumentParser(description="fake kube-apiserver (test double)")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = pick a free one)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    with STORE.lock:
        STORE.reset()
    server = Server(("127.0.0.1", args.port), Handler)
    server.verbose = args.verbose
    port = server.server_address[1]

    def stop(signum, frame):
        SHUTDOWN.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=controller_loop, name="controllers", daemon=True).start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        SHUTDOWN.set()
        with STORE.lock:
            STORE.cond.notify_all()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
