#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), then runs every test.
# Integration tests start their own PostgreSQL servers through the shared harness
# (crates/zetl-testkit) and stop them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/setup-spark.sh
# The end-to-end tests spend much of their time waiting on servers and child processes, so
# twice as many run at once as there are cores (on 2 cores, four at once kept both 97 % busy
# through the suite). RUST_TEST_THREADS overrides.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-$(( $(nproc) * 2 ))}"
exec cargo test --workspace --locked "$@"
