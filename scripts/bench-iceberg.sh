#!/usr/bin/env bash
# Benchmark PostgreSQL → Iceberg (mirror mode, SQLite catalog, file:// warehouse): the initial
# copy of pgbench_accounts beside PostgreSQL's own COPY … TO STDOUT (FORMAT binary), then a
# backlog of UPDATEs written while zetl is stopped. Prints figures and writes them as JSON
# (.zetl-run/bench-iceberg/figures.json); asserts nothing.
#   ./scripts/bench-iceberg.sh
#   SCALE=10 UPDATES=200000 COMMIT_EVERY=2s ./scripts/bench-iceberg.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${SCALE:-10}"
UPDATES="${UPDATES:-200000}"
# A commit waits for this; the backlog figure includes up to one such wait.
COMMIT_EVERY="${COMMIT_EVERY:-2s}"
RUN_DIR="$PWD/.zetl-run/bench-iceberg"

. scripts/bench-common.sh
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR/lake"
eval "$("$HARNESS" pg start "$RUN_DIR/src")"; SRC_URL=$ZETL_PG_URL
ZETL_PID=
cleanup() {
  [ -n "$ZETL_PID" ] && kill -TERM "$ZETL_PID" 2>/dev/null && wait "$ZETL_PID" 2>/dev/null || true
  "$HARNESS" pg stop "$RUN_DIR/src"
}
trap cleanup EXIT
src() { psql -X -At "$SRC_URL" -c "$1"; }
caught_up() { # lsn
  until [ "$(src "SELECT coalesce(confirmed_flush_lsn >= '$1', false) FROM pg_replication_slots WHERE slot_name = 'zetl_bench'")" = t ]; do
    sleep 0.1
  done
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ { print $2 }') GiB; $(src 'SELECT version()' | cut -d, -f1)"
pgbench -i -q -s "$SCALE" "$SRC_URL" >/dev/null 2>&1
rows=$((SCALE * 100000))
t0=$(now); psql -X -q "$SRC_URL" -c "COPY pgbench_accounts TO STDOUT (FORMAT binary)" >/dev/null; t1=$(now)
ceiling_s=$(echo "$t1 - $t0" | bc)

cat > "$RUN_DIR/zetl.yaml" <<YAML
integrations:
  - name: bench
    source: { kind: postgres, url: "$SRC_URL" }
    target:
      kind: iceberg
      warehouse: "file://$RUN_DIR/lake"
      catalog: { kind: sql, url: "sqlite://$RUN_DIR/lake/catalog.db" }
      commit_every: $COMMIT_EVERY
    tables: { include: ["public.pgbench_accounts"] }
    metrics: { listen: "off" }
YAML
: >"$RUN_DIR/zetl.log"
t0=$(now); "$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>>"$RUN_DIR/zetl.log" & ZETL_PID=$!
until grep -q "initial copy committed at the target" "$RUN_DIR/zetl.log"; do sleep 0.05; done
t1=$(now); copy_s=$(echo "$t1 - $t0" | bc)
copy_rss_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$ZETL_PID/status" 2>/dev/null || echo 0)
kill -TERM "$ZETL_PID"; wait "$ZETL_PID" || true; ZETL_PID=
echo "initial copy of $rows rows: ${copy_s} s, $(rate "$rows" "$copy_s") rows/s incl. start-up (COPY binary to /dev/null: $(rate "$rows" "$ceiling_s") rows/s), peak RSS $((copy_rss_kb / 1024)) MiB"

# The backlog: single-row UPDATEs of random accounts, written while zetl is stopped.
src "SELECT 1" >/dev/null
psql -X -q "$SRC_URL" >/dev/null <<SQL
DO \$\$ BEGIN
  FOR i IN 1..$UPDATES LOOP
    UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1 + (i * 7919) % $rows;
    IF i % 1000 = 0 THEN COMMIT; END IF;
  END LOOP;
END \$\$;
SQL
end_lsn=$(src "SELECT pg_current_wal_insert_lsn()")
t0=$(now); "$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>>"$RUN_DIR/zetl.log" & ZETL_PID=$!
caught_up "$end_lsn"; t1=$(now)
backlog_s=$(echo "$t1 - $t0" | bc)
rss_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$ZETL_PID/status" 2>/dev/null || echo 0)
kill -TERM "$ZETL_PID"; wait "$ZETL_PID" || true; ZETL_PID=
files=$(find "$RUN_DIR/lake" -name '*.parquet' | wc -l)
snapshots=$(find "$RUN_DIR/lake" -name 'snap-*.avro' | wc -l)
echo "backlog of $UPDATES updates: ${backlog_s} s, $(rate "$UPDATES" "$backlog_s") changes/s incl. start-up and the key index read back, peak RSS $((rss_kb / 1024)) MiB"
echo "lake (commit_every $COMMIT_EVERY): $files Parquet files (data and position deletes), $snapshots snapshots, $(du -sh "$RUN_DIR/lake" | cut -f1)"

cat >"$RUN_DIR/figures.json" <<JSON
{
$(figures_head)
  "initial_copy": {"rows": $rows, "seconds": $(num "$copy_s"), "rows_per_s": $(rate "$rows" "$copy_s"), "ceiling_copy_binary_rows_per_s": $(rate "$rows" "$ceiling_s")},
  "backlog": {"changes": $UPDATES, "seconds": $(num "$backlog_s"), "changes_per_s": $(rate "$UPDATES" "$backlog_s")},
  "lake": {"commit_every": "$COMMIT_EVERY", "parquet_files": $files, "snapshots": $snapshots},
  "peak_rss_mib": {"initial_copy": $((copy_rss_kb / 1024)), "backlog": $((rss_kb / 1024))}
}
JSON
echo "figures: $RUN_DIR/figures.json"
