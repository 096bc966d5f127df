#!/usr/bin/env python3
"""The figures of one `bench-all.sh` run beside the last run's, written into docs/benchmarks.md.

    bench-table.py RUNS_DIR DOC LAST_JSON

Reads each script's `RUNS_DIR/<script>/figures.json`, merges them into `RUNS_DIR/bench-all.json`,
renders the summary table (this run, the last run from LAST_JSON, the ceiling or native figure
and the target) between the `bench-all` markers of DOC, prints it, and makes this run the last
one (LAST_JSON, kept in the repository so the next run is compared with it).
"""

import json
import pathlib
import sys

SCRIPTS = {
    "postgres_to_duckdb": "bench",
    "postgres_to_postgres": "bench-pg-target",
    "mariadb_to_duckdb": "bench-mysql",
    "postgres_to_iceberg": "bench-iceberg",
    "dynamodb_to_duckdb": "bench-dynamodb",
}
BEGIN, END = "<!-- bench-all: begin -->", "<!-- bench-all: end -->"


def k(n):
    return "%.2fM" % (n / 1e6) if n >= 1e6 else "%.0fk" % (n / 1e3) if n >= 1e4 else "%d" % n


def recvlogical(backlog):
    """The backlog's ceiling, absent from runs before it was measured."""
    rate = backlog.get("ceiling_pg_recvlogical_changes_per_s")
    return "pg_recvlogical %s changes/s" % k(rate) if rate else "—"


def rows(f):
    """(path, figure, ceiling or native, target) per line of the table."""
    pg, pp, my, ice, ddb = (f[n] for n in SCRIPTS)
    big = pg["snapshot"][-1]
    rss = max(v or 0 for run in f.values() for v in run["peak_rss_mib"].values())
    return [
        ("PG → DuckDB copy, %s rows" % k(big["rows"]), "%s rows/s" % k(big["rows_per_s"]),
         "COPY binary %s rows/s" % k(big["ceiling_rows_per_s"]), "≥ 60 % of ceiling"),
        ("PG → DuckDB backlog", "%s changes/s" % k(pg["backlog"]["changes_per_s"]),
         recvlogical(pg["backlog"]), "≥ 250k"),
        ("PG → DuckDB 1M-row transaction, after its commit",
         "%.2f s" % pg["one_1m_row_transaction"]["applied_s_after_commit"], "—", "—"),
        ("PG → PG copy, %s rows" % k(pp["initial_copy"]["rows"]), "%s rows/s" % k(pp["initial_copy"]["zetl_rows_per_s"]),
         "native %s rows/s" % k(pp["initial_copy"]["native_rows_per_s"]), "≥ native"),
        ("PG → PG backlog", "%s changes/s" % k(pp["backlog"]["zetl_changes_per_s"]),
         "native %s changes/s" % k(pp["backlog"]["native_changes_per_s"]), "≥ 2× native"),
        ("MariaDB → DuckDB copy, %s rows" % k(my["snapshot"]["rows"]), "%s rows/s" % k(my["snapshot"]["rows_per_s"]),
         "SELECT %s rows/s" % k(my["snapshot"]["ceiling_select_rows_per_s"]), "—"),
        ("MariaDB → DuckDB backlog", "%s changes/s" % k(my["backlog"]["changes_per_s"]),
         "mariadb-binlog %s changes/s" % k(my["backlog"]["ceiling_binlog_changes_per_s"]), "≥ 300k"),
        ("PG → Iceberg copy, %s rows" % k(ice["initial_copy"]["rows"]), "%s rows/s" % k(ice["initial_copy"]["rows_per_s"]),
         "COPY binary %s rows/s" % k(ice["initial_copy"]["ceiling_copy_binary_rows_per_s"]), "—"),
        ("PG → Iceberg backlog", "%s changes/s" % k(ice["backlog"]["changes_per_s"]), "—", "—"),
        ("DynamoDB (moto) → DuckDB seed", "%s items/s" % k(ddb["seed"]["items_per_s"]),
         "Scan %s items/s" % k(ddb["seed"]["ceiling_scan_items_per_s"]), "—"),
        ("Peak RSS, largest of any run", "%d MiB" % rss, "—", "≤ 256 MB"),
    ]


def head(f):
    pg = f["postgres_to_duckdb"]
    m = pg["machine"]
    return "%s, commit %s, %d cores, %d GiB, PostgreSQL %s" % (
        pg["when"][:10], pg["commit"], m["cores"], m["ram_gib"], m["postgres"])


def table(now, last):
    before = {r[0]: r[1] for r in rows(last)} if last else {}
    out = ["This run: %s." % head(now), "Last run: %s." % (head(last) if last else "none recorded"), "",
           "| Path | This run | Last run | Ceiling / native | Issue 14's target |", "|---|---|---|---|---|"]
    for path, figure, ceiling, target in rows(now):
        out.append("| %s | %s | %s | %s | %s |" % (path, figure, before.get(path, "—"), ceiling, target))
    return "\n".join(out)


def main(runs_dir, doc, last_json):
    runs, doc, last_json = pathlib.Path(runs_dir), pathlib.Path(doc), pathlib.Path(last_json)
    now = {name: json.loads((runs / d / "figures.json").read_text()) for name, d in SCRIPTS.items()}
    last = json.loads(last_json.read_text()) if last_json.exists() else None
    text = table(now, last)
    merged = json.dumps(now, indent=2) + "\n"
    (runs / "bench-all.json").write_text(merged)
    page = doc.read_text()
    if BEGIN not in page or END not in page:
        sys.exit("%s has no %s … %s section to write the table into" % (doc, BEGIN, END))
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    doc.write_text(page[:start] + "\n" + text + "\n" + page[end:])
    last_json.write_text(merged)
    print(text)
    print("\nwritten into %s; figures: %s and %s" % (doc, runs / "bench-all.json", last_json))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
