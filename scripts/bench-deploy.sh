#!/usr/bin/env bash
# Deploy and rollback timings of three services on the real control plane (the kubelet
# stand-in runs the Pods) and Debian's registry: the figures in BENCHMARKS.md. Run after
# `scripts/test.sh` has installed the test tools; starts its own control plane if none runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for run in 1 2 3; do
    cargo nextest run --release --cargo-quiet --no-capture \
        -E 'binary(it) & test(/^deploy::(a_healthy_deploy|rollback_to_a_version)/)' 2>&1 \
        | grep '^bench:' | sed "s/^/run $run: /"
done
