#!/usr/bin/env bash
# Every benchmark in one run, one after the other on this machine, then their figures in one
# JSON file (.zetl-run/bench-all.json) and one Markdown table beside the last run's
# (docs/bench-all.json), written into docs/benchmarks.md (scripts/bench-table.py). Asserts
# nothing. Takes about 15 minutes on two cores.
#   ./scripts/bench-all.sh
#   ZETL=path/to/another/zetl ./scripts/bench-all.sh     the same for another build
set -euo pipefail
cd "$(dirname "$0")/.."
for bench in bench bench-pg-target bench-mysql bench-iceberg bench-dynamodb; do
  echo "== $bench"
  "./scripts/$bench.sh"
done
python3 scripts/bench-table.py .zetl-run docs/benchmarks.md docs/bench-all.json
