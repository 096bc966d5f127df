#!/usr/bin/env bash
# Benchmark: how far the other tables fall behind while one big table is copied again
# (`zetl resync`) under a steady pgbench TPC-B load, PostgreSQL → DuckDB. Prints figures,
# asserts nothing.
#   ./scripts/bench-resync.sh                  a 10M-row table
#   ROWS=1000000 TPS=500 ./scripts/bench-resync.sh
#   RESYNC=in_place ./scripts/bench-resync.sh  fill the table in place (default: replace)
# Lag is measured at the source, independently of zetl's own metrics: every half second the
# sampler notes the WAL position and the slot's confirmed position; a sample's lag is how long
# ago the WAL stood where the slot has confirmed (commit to acknowledged commit, ±0.5 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-10000000}"
TPS="${TPS:-500}"
RESYNC="${RESYNC:-replace}"
RUN_DIR="$PWD/.zetl-run/bench-resync"

. scripts/bench-common.sh
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
eval "$("$HARNESS" pg start "$RUN_DIR/pg")"
export ZETL_PG_URL
ZETL_PID= LOAD_PID= SAMPLER_PID=
cleanup() {
  for pid in "$SAMPLER_PID" "$LOAD_PID"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  [ -n "$ZETL_PID" ] && kill -TERM "$ZETL_PID" 2>/dev/null && wait "$ZETL_PID" 2>/dev/null || true
  "$HARNESS" pg stop "$RUN_DIR/pg"
}
trap cleanup EXIT
sql() { psql -X -At "$ZETL_PG_URL" -c "$1"; }
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cat > "$RUN_DIR/zetl.yaml" <<YAML
integrations:
  - name: rs
    source: { kind: postgres, url: "\${ZETL_PG_URL}" }
    target: { kind: duckdb, path: "$RUN_DIR/rs.duckdb" }
    tables: { include: ["public.pgbench_*", "public.big"] }
    metrics: { listen: "127.0.0.1:$PORT" }
    apply: { resync: $RESYNC }
YAML

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ { print $2 }') GiB; $(postgres --version 2>/dev/null || sql 'SELECT version()' | cut -d, -f1)"
pgbench -i -q -s 1 "$ZETL_PG_URL" >/dev/null 2>&1
sql "CREATE TABLE big (id bigint PRIMARY KEY, v text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, $ROWS) g" >/dev/null
sql "VACUUM ANALYZE" >/dev/null

"$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>"$RUN_DIR/zetl.log" &
ZETL_PID=$!
until grep -q "initial copy committed at the target" "$RUN_DIR/zetl.log"; do sleep 0.2; done

( while true; do
    reported=$(curl -s "127.0.0.1:$PORT/metrics" | awk '/^zetl_lag_seconds/ { print $2 }')
    echo "$(now) $(sql "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn, coalesce(confirmed_flush_lsn - '0/0'::pg_lsn, 0) FROM pg_replication_slots WHERE slot_name = 'zetl_rs'" | tr '|' ' ') ${reported:-0}"
    sleep 0.5
  done ) >"$RUN_DIR/samples.txt" 2>/dev/null &
SAMPLER_PID=$!
pgbench -n -c 2 -j 2 -R "$TPS" -T 100000 "$ZETL_PG_URL" >/dev/null 2>&1 &
LOAD_PID=$!
sleep 15
t_resync=$(now)
"$ZETL" resync -c "$RUN_DIR/zetl.yaml" public.big >/dev/null
until grep -q "table copied while streaming.*table=public.big" "$RUN_DIR/zetl.log"; do sleep 0.2; done
t_copied=$(now)
sleep 15
t_end=$(now)
kill "$LOAD_PID"; wait "$LOAD_PID" 2>/dev/null || true; LOAD_PID=
kill "$SAMPLER_PID"; SAMPLER_PID=
kill -TERM "$ZETL_PID"; wait "$ZETL_PID" || true; ZETL_PID=

# Each sample: its lag is its time minus the first sample time whose WAL position had reached
# the confirmed position (samples before the confirmed position was first seen are skipped).
awk -v r="$t_resync" -v c="$t_copied" '
  { t[NR] = $1; wal[NR] = $2; ok[NR] = $3; if ($1 >= r && $1 <= c + 1 && $4 > reported) reported = $4 }
  END {
    j = 1
    for (i = 1; i <= NR; i++) {
      while (j < i && wal[j] < ok[i]) j++
      if (wal[j] < ok[i] && j == i) continue
      lag = t[i] - t[j]
      if (t[i] < r) { if (lag > before) before = lag }
      else if (t[i] <= c + 1) { if (lag > during) during = lag }
      else { last = lag; if (lag > after_max) after_max = lag }
    }
    printf "lag of the streaming tables: max %.1f s before the resync, max %.1f s while public.big was copied again, max %.1f s in the 15 s after (the new copy replacing the old), %.1f s at the end\n", before, during, after_max, last
    printf "zetl_lag_seconds (zetl'"'"'s own metric) while it was copied: max %.1f s\n", reported
  }' "$RUN_DIR/samples.txt"
copy_s=$(echo "$t_copied - $t_resync" | bc)
echo "apply.resync: $RESYNC; $(grep -o 'the table filled aside replaced the table.*' "$RUN_DIR/zetl.log" | head -1)"
echo "resync of public.big ($ROWS rows) while pgbench TPC-B ran at $TPS tps: copied in ${copy_s} s ($(rate "$ROWS" "$copy_s") rows/s incl. the request)"
