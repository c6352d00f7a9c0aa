#!/usr/bin/env bash
# The project's one release build. scripts/test.sh runs it before the tests, and the Dockerfile
# runs it to build the image's binary, so the image ships the same build the tests ran against.
# `--tests` turns on the dev-dependencies' features; a build without it would compile the
# shared crates with other features and give a different binary. Extra arguments (`--quiet`)
# are passed to cargo.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

exec cargo build --release --locked --lib --bins --tests "$@"
