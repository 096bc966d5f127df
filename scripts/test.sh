#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), then runs every test.
# Integration tests start their own PostgreSQL servers through the shared harness
# (crates/zetl-testkit) and stop them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/setup-spark.sh
exec cargo test --workspace --locked "$@"
