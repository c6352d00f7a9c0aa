#!/usr/bin/env python3
"""A real Kubernetes control plane for the tests: etcd, kube-apiserver and
kube-controller-manager on 127.0.0.1, with PKI made here.

    testenv.py up --dir DIR [--reuse] [--idle-minutes N]   start (or reuse), print DIR
    testenv.py down --dir DIR                               stop and remove DIR
    testenv.py status --dir DIR                             exit 0 when it answers

`up` starts a supervisor in its own session that owns the three servers: it stops them all
when one dies, on SIGTERM/SIGINT (what `down` sends), and, with `--idle-minutes`, when no
test touched DIR/heartbeat for that long, so a developer's ad-hoc run never leaves servers
behind for good. DIR then holds:

    admin.kubeconfig   full access (client certificate in system:masters)
    ca.crt             the cluster CA
    state.json         {"server": "https://127.0.0.1:P", "pid": SUPERVISOR, ...}

Binaries: each of etcd, kube-apiserver and kube-controller-manager is taken from
KUBEBUILDER_ASSETS when that folder has it (the envtest convention), else unpacked once from
the xz files in ../shared/kube (DRIFTSWEEP_KUBE_XZ overrides that folder) into
${XDG_CACHE_HOME:-~/.cache}/driftsweep/kube-v1.36.2, checked against their sha256.
Stdlib Python plus the `openssl` command; nothing listens beyond 127.0.0.1.
"""

import argparse
import fcntl
import hashlib
import json
import lzma
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

VERSION = "v1.36.2"
BINARIES = {
    "etcd": "63a4bd05a3dfe17ebab9fe65288c4e98b7def354212871ca56a726f7ce5db913",
    "kube-apiserver": "d8758c4a0a84e7c5af16564b5d9fa6d41d5ecffc2d9cda78560751652a41cd52",
    "kube-controller-manager": "a741b33e0cda71674431ac4483a662bf96a1ec06150140323e658b8ae435ef3b",
}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT = 120
SERVICE_CIDR = "10.0.0.0/24"
ISSUER = "https://kubernetes.default.svc.cluster.local"


class Failure(Exception):
    pass


# --- binaries ------------------------------------------------------------------------------


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def binaries():
    """The path of each binary, unpacking what KUBEBUILDER_ASSETS does not have."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    xz_dir = os.environ.get("DRIFTSWEEP_KUBE_XZ") or os.path.join(
        os.path.dirname(ROOT), "shared", "kube"
    )
    cache = os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "driftsweep",
        f"kube-{VERSION}",
    )
    found = {}
    for name, digest in BINARIES.items():
        if assets and os.access(os.path.join(assets, name), os.X_OK):
            found[name] = os.path.join(assets, name)
            continue
        target = os.path.join(cache, name)
        if os.access(target, os.X_OK):
            found[name] = target
            continue
        source = os.path.join(xz_dir, name + ".xz")
        if not os.path.isfile(source):
            raise Failure(
                f"no {name} binary: set KUBEBUILDER_ASSETS to a folder holding etcd, kube-apiserver "
                f"and kube-controller-manager (e.g. from setup-envtest), or provide {source}"
            )
        os.makedirs(cache, exist_ok=True)
        tmp = f"{target}.{os.getpid()}.tmp"
        with lzma.open(source) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        if sha256(tmp) != digest:
            os.unlink(tmp)
            raise Failure(f"{source} does not unpack to the expected {name} {VERSION} (sha256)")
        os.chmod(tmp, 0o755)
        os.rename(tmp, target)
        found[name] = target
    return found


# --- PKI -----------------------------------------------------------------------------------


def openssl(*args, cwd):
    if shutil.which("openssl") is None:
        raise Failure("the `openssl` command is needed to make the test cluster's certificates")
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise Failure(f"openssl {' '.join(args)}: {result.stderr.strip()}")


def make_pki(pki):
    os.makedirs(pki, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
            "-subj", "/CN=driftsweep-test-ca", cwd=pki)

    def signed(name, subject, extensions):
        with open(os.path.join(pki, f"{name}.ext"), "w") as f:
            f.write(extensions)
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=pki)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "3650",
                "-extfile", f"{name}.ext", cwd=pki)

    signed("serving", "/CN=kube-apiserver",
           "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
           "extendedKeyUsage=serverAuth\n"
           "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
           "DNS:kubernetes.default,DNS:kubernetes.default.svc\n")
    client = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
    signed("admin", "/O=system:masters/CN=driftsweep-test-admin", client)
    signed("controller-manager", "/CN=system:kube-controller-manager", client)
    openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def kubeconfig(path, server, ca, cert, key, user):
    with open(path, "w") as f:
        f.write(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
            f"users:\n- name: {user}\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n"
            f"contexts:\n- name: test\n  context:\n    cluster: test\n    user: {user}\n"
            "current-context: test\n"
        )
    os.chmod(path, 0o600)


# --- processes -----------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, procs, log_dir, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, p in procs.items():
            if p.poll() is not None:
                raise Failure(f"{name} exited with {p.returncode} while starting: {tail(log_dir, name)}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise Failure(f"{what} did not become ready within {timeout} s")


def tail(log_dir, name, lines=15):
    try:
        with open(os.path.join(log_dir, f"{name}.log"), errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def https_get(url, pki, client):
    context = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    context.load_cert_chain(os.path.join(pki, f"{client}.crt"), os.path.join(pki, f"{client}.key"))
    with urllib.request.urlopen(url, context=context, timeout=5) as r:
        return r.read().decode()


def insecure_get(url):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, context=context, timeout=5) as r:
        return r.read().decode()


def supervise(d, idle_minutes):
    """Runs in its own session: starts the servers, writes state.json, then watches them."""
    pki = os.path.join(d, "pki")
    logs = os.path.join(d, "logs")
    os.makedirs(logs, exist_ok=True)
    procs = {}
    stopping = []

    def stop(*_):
        stopping.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        bins = binaries()
        make_pki(pki)
        p = lambda name: os.path.join(pki, name)  # noqa: E731
        etcd_port, etcd_peer, etcd_metrics = free_port(), free_port(), free_port()
        api_port, kcm_port = free_port(), free_port()

        def spawn(name, args):
            log = open(os.path.join(logs, f"{name}.log"), "wb")
            procs[name] = subprocess.Popen(
                [bins[name], *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

        spawn("etcd", [
            "--name=test", f"--data-dir={os.path.join(d, 'etcd')}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--listen-metrics-urls=http://127.0.0.1:{etcd_metrics}",
            "--unsafe-no-fsync=true", "--log-level=error",
            "--quota-backend-bytes=4294967296",
        ])

        def etcd_healthy():
            with urllib.request.urlopen(f"http://127.0.0.1:{etcd_port}/health", timeout=2) as r:
                return '"health":"true"' in r.read().decode()

        wait_until("etcd", etcd_healthy, procs, logs)
        server = f"https://127.0.0.1:{api_port}"
        spawn("kube-apiserver", [
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--tls-cert-file={p('serving.crt')}", f"--tls-private-key-file={p('serving.key')}",
            f"--client-ca-file={p('ca.crt')}",
            f"--service-account-issuer={ISSUER}", f"--api-audiences={ISSUER}",
            f"--service-account-key-file={p('sa.pub')}",
            f"--service-account-signing-key-file={p('sa.key')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC", "--endpoint-reconciler-type=none",
            f"--cert-dir={os.path.join(d, 'apiserver-certs')}",
            "--allow-privileged=true", "--profiling=false", "-v=0",
        ])
        wait_until("kube-apiserver", lambda: https_get(f"{server}/readyz", pki, "admin") == "ok", procs, logs)
        kcm_config = os.path.join(d, "controller-manager.kubeconfig")
        kubeconfig(kcm_config, server, p("ca.crt"), p("controller-manager.crt"),
                   p("controller-manager.key"), "system:kube-controller-manager")
        spawn("kube-controller-manager", [
            f"--kubeconfig={kcm_config}", f"--authentication-kubeconfig={kcm_config}",
            f"--authorization-kubeconfig={kcm_config}",
            "--bind-address=127.0.0.1", f"--secure-port={kcm_port}", "--leader-elect=false",
            "--controllers=*,-service-ca-certificate-publisher-controller",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={p('sa.key')}", f"--root-ca-file={p('ca.crt')}",
            f"--cluster-signing-cert-file={p('ca.crt')}", f"--cluster-signing-key-file={p('ca.key')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--cert-dir={os.path.join(d, 'kcm-certs')}", "-v=0",
        ])
        wait_until("kube-controller-manager",
                   lambda: insecure_get(f"https://127.0.0.1:{kcm_port}/healthz") == "ok", procs, logs)
        admin = os.path.join(d, "admin.kubeconfig")
        kubeconfig(admin, server, p("ca.crt"), p("admin.crt"), p("admin.key"), "admin")
        shutil.copy(p("ca.crt"), os.path.join(d, "ca.crt"))
        touch(os.path.join(d, "heartbeat"))
        write_json(os.path.join(d, "state.json"), {
            "server": server, "pid": os.getpid(), "version": VERSION,
            "admin_kubeconfig": admin, "ca": os.path.join(d, "ca.crt"),
            "client_cert": p("admin.crt"), "client_key": p("admin.key"),
        })
    except Exception as e:  # noqa: BLE001 - whatever failed is reported to `up`
        write_json(os.path.join(d, "failed.json"), {"error": str(e)})
        kill_all(procs)
        return 1

    code = 0
    while not stopping:
        time.sleep(0.5)
        dead = [n for n, p in procs.items() if p.poll() is not None]
        if dead:
            write_json(os.path.join(d, "failed.json"),
                       {"error": f"{dead[0]} exited with {procs[dead[0]].returncode}: {tail(logs, dead[0])}"})
            code = 1
            break
        if idle_minutes and idle_for(os.path.join(d, "heartbeat")) > idle_minutes * 60:
            break
    kill_all(procs)
    shutil.rmtree(os.path.join(d, "etcd"), ignore_errors=True)
    try:
        os.unlink(os.path.join(d, "state.json"))
    except FileNotFoundError:
        pass
    return code


def kill_all(procs):
    # The controller-manager first, etcd last, so nothing logs a storm of lost connections.
    for name in ["kube-controller-manager", "kube-apiserver", "etcd"]:
        p = procs.get(name)
        if p and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def touch(path):
    with open(path, "a"):
        os.utime(path, None)


def idle_for(path):
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return 0


def write_json(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f)
    os.rename(path + ".tmp", path)


def read_state(d):
    try:
        with open(os.path.join(d, "state.json")) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def healthy(d):
    state = read_state(d)
    if not state or not alive(state["pid"]):
        return False
    try:
        return https_get(state["server"] + "/readyz", os.path.join(d, "pki"), "admin") == "ok"
    except OSError:
        return False


def up(d, reuse, idle_minutes):
    os.makedirs(d, exist_ok=True)
    # One starter at a time: parallel test processes wait here and then reuse.
    with open(os.path.join(d, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if reuse and healthy(d):
            touch(os.path.join(d, "heartbeat"))
            return
        down(d, keep_dir=True)
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_supervise", "--dir", d,
             "--idle-minutes", str(idle_minutes or 0)],
            start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "supervisor.log"), "wb"),
        )
        deadline = time.monotonic() + START_TIMEOUT + 30
        while time.monotonic() < deadline:
            if read_state(d):
                return
            failed = os.path.join(d, "failed.json")
            if os.path.exists(failed):
                with open(failed) as f:
                    raise Failure(json.load(f)["error"])
            time.sleep(0.2)
        raise Failure(f"the control plane did not start within {START_TIMEOUT + 30} s (see {d}/logs)")


def down(d, keep_dir=False):
    state = read_state(d)
    if state and alive(state["pid"]):
        os.kill(state["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 30
        while alive(state["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(state["pid"]):
            os.kill(state["pid"], signal.SIGKILL)
    for name in ["state.json", "failed.json"]:
        try:
            os.unlink(os.path.join(d, name))
        except FileNotFoundError:
            pass
    if keep_dir:
        for sub in ["pki", "logs", "etcd", "apiserver-certs", "kcm-certs"]:
            shutil.rmtree(os.path.join(d, sub), ignore_errors=True)
    else:
        shutil.rmtree(d, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "_supervise"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--reuse", action="store_true", help="reuse a healthy one in DIR")
    parser.add_argument("--idle-minutes", type=float, default=0,
                        help="stop after this long without a test (0: until `down`)")
    args = parser.parse_args()
    d = os.path.abspath(args.dir)
    try:
        if args.command == "up":
            up(d, args.reuse, args.idle_minutes)
            print(d)
        elif args.command == "down":
            down(d)
        elif args.command == "status":
            return 0 if healthy(d) else 1
        else:
            return supervise(d, args.idle_minutes)
    except Failure as e:
        print(f"error: test control plane: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
