#!/usr/bin/env bash
# Every benchmark in one run, one after the other on this machine, then their figures in one
# JSON file (.zetl-run/bench-all.json) and one Markdown table to paste beside the last run's in
# docs/benchmarks.md. Asserts nothing. Takes about 15 minutes on two cores.
#   ./scripts/bench-all.sh
#   ZETL=path/to/another/zetl ./scripts/bench-all.sh     the same for another build
set -euo pipefail
cd "$(dirname "$0")/.."
for bench in bench bench-pg-target bench-mysql bench-iceberg bench-dynamodb; do
  echo "== $bench"
  "./scripts/$bench.sh"
done
python3 - <<'PY'
import json, pathlib
runs = pathlib.Path(".zetl-run")
paths = {"postgres_to_duckdb": "bench", "postgres_to_postgres": "bench-pg-target",
         "mariadb_to_duckdb": "bench-mysql", "postgres_to_iceberg": "bench-iceberg",
         "dynamodb_to_duckdb": "bench-dynamodb"}
figures = {name: json.loads((runs / d / "figures.json").read_text()) for name, d in paths.items()}
(runs / "bench-all.json").write_text(json.dumps(figures, indent=2) + "\n")
pg, pp, my, ice, ddb = (figures[n] for n in paths)
big = pg["snapshot"][-1]
rows = [
    ("PG → DuckDB copy, %d rows" % big["rows"], "%d rows/s" % big["rows_per_s"], "COPY binary %d rows/s" % big["ceiling_rows_per_s"]),
    ("PG → DuckDB backlog", "%d changes/s" % pg["backlog"]["changes_per_s"], "—"),
    ("PG → DuckDB 1M-row transaction, after its commit", "%.2f s" % pg["one_1m_row_transaction"]["applied_s_after_commit"], "—"),
    ("PG → PG copy, %d rows" % pp["initial_copy"]["rows"], "%d rows/s" % pp["initial_copy"]["zetl_rows_per_s"], "native %d rows/s" % pp["initial_copy"]["native_rows_per_s"]),
    ("PG → PG backlog", "%d changes/s" % pp["backlog"]["zetl_changes_per_s"], "native %d changes/s" % pp["backlog"]["native_changes_per_s"]),
    ("MariaDB → DuckDB copy, %d rows" % my["snapshot"]["rows"], "%d rows/s" % my["snapshot"]["rows_per_s"], "SELECT %d rows/s" % my["snapshot"]["ceiling_select_rows_per_s"]),
    ("MariaDB → DuckDB backlog", "%d changes/s" % my["backlog"]["changes_per_s"], "mariadb-binlog %d changes/s" % my["backlog"]["ceiling_binlog_changes_per_s"]),
    ("PG → Iceberg copy, %d rows" % ice["initial_copy"]["rows"], "%d rows/s" % ice["initial_copy"]["rows_per_s"], "COPY binary %d rows/s" % ice["initial_copy"]["ceiling_copy_binary_rows_per_s"]),
    ("PG → Iceberg backlog", "%d changes/s" % ice["backlog"]["changes_per_s"], "—"),
    ("DynamoDB (moto) → DuckDB seed", "%d items/s" % ddb["seed"]["items_per_s"], "Scan %d items/s" % ddb["seed"]["ceiling_scan_items_per_s"]),
    ("Peak RSS, largest of any run", "%d MiB" % max(v or 0 for f in figures.values() for v in f["peak_rss_mib"].values()), "—"),
]
m = pg["machine"]
print("\n%s, commit %s, %d cores, %d GiB, PostgreSQL %s\n" % (pg["when"][:10], pg["commit"], m["cores"], m["ram_gib"], m["postgres"]))
print("| Path | zetl | Ceiling / native |\n|---|---|---|")
for r in rows:
    print("| %s | %s | %s |" % r)
print("\nfigures: .zetl-run/bench-all.json")
PY
