#!/usr/bin/env bash
# The soak: zetl killed with SIGKILL at random moments under pgbench (PostgreSQL → DuckDB,
# → PostgreSQL and → Iceberg), sysbench (MariaDB → DuckDB, → PostgreSQL and → Iceberg) and boto3
# (DynamoDB → DuckDB, → PostgreSQL and → Iceberg) workloads, CYCLES times per combination, then
# the whole target compared with the whole source. Prints one `soak:` line per combination.
#   CYCLES=100 ./scripts/soak.sh        # the long run; the test run includes CYCLES=10
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export SOAK_CYCLES="${CYCLES:-100}"
cargo test --locked -p zetl --test e2e -- soak:: --nocapture --test-threads=1 2>&1 \
  | grep --line-buffered -E '^soak:|^test |test result|panicked|random seed'
