#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets/) for SECONDS (default 600), one after
# another and one process at a time: the CI machine has 2 cores. Not part of scripts/test.sh;
# the figures in BENCHMARKS.md ("Fuzzing") come from this. Usage: scripts/fuzz.sh [SECONDS]
# Each run's libFuzzer log is fuzz/logs/<target>.log; a crash stops the script and leaves its
# input in fuzz/artifacts/<target>/. New corpus entries land in fuzz/corpus/<target>/; run
# `cargo +nightly fuzz cmin <target>` before committing them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

seconds="${1:-600}"
# cargo-fuzz needs nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP lets a stable toolchain take them.
if cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi

"${fuzz[@]}" build
mkdir -p logs
for target in policy yaml snapshot plan; do
    echo "fuzzing \`$target\` for ${seconds}s" >&2
    mkdir -p "corpus/$target"
    # With -jobs, libFuzzer writes the run's output to fuzz-0.log in the working folder.
    rm -f fuzz-0.log
    status=0
    "${fuzz[@]}" run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -jobs=1 -workers=1 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 || status=$?
    mv fuzz-0.log "logs/$target.log"
    grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec' \
        "logs/$target.log" >&2 || true
    if [ "$status" -ne 0 ] || grep -q 'ERROR: libFuzzer\|panicked at' "logs/$target.log"; then
        echo "\`$target\` crashed: see fuzz/logs/$target.log and fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
