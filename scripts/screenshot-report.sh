#!/usr/bin/env bash
# Renders the HTML body of the example report email in headless Chromium to docs/report-example.png, the
# picture the README shows of what arrives in the team's inbox. Installs Debian's chromium
# when missing. Usage: scripts/screenshot-report.sh [OUT.png]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out="${1:-docs/report-example.png}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

cargo build --release --quiet
target/release/driftsweep run --policy policies/aia.yaml --snapshot examples/snapshot \
    --email-preview "$work/report.html" 2>/dev/null

# The flags keep Chromium off the network (this machine has none) and out of any profile.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --hide-scrollbars --window-size=1000,2750 \
    --screenshot="$work/report.png" "file://$work/report.html" >/dev/null 2>&1

mkdir -p "$(dirname "$out")"
mv "$work/report.png" "$out"
echo "wrote $out" >&2
