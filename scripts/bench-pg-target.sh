#!/usr/bin/env bash
# Benchmark PostgreSQL → PostgreSQL: zetl beside PostgreSQL's own logical replication
# (CREATE SUBSCRIPTION) on the same backlog, same machine, same run. Prints figures and writes
# them as JSON (.zetl-run/bench-pg-target/figures.json); asserts nothing.
#   ./scripts/bench-pg-target.sh
#   SCALE=5 BACKLOG_SECONDS=15 CLIENTS=4 ./scripts/bench-pg-target.sh
# Both replicate the same WAL: pgbench writes a backlog while zetl is stopped and the
# subscription disabled; then zetl catches up (timed), then the subscription (timed).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${SCALE:-10}"
BACKLOG_SECONDS="${BACKLOG_SECONDS:-30}"
CLIENTS="${CLIENTS:-4}"
RUN_DIR="$PWD/.zetl-run/bench-pg-target"

. scripts/bench-common.sh
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
eval "$("$HARNESS" pg start "$RUN_DIR/src")"; SRC_URL=$ZETL_PG_URL; SRC_PORT=$ZETL_PG_PORT
eval "$("$HARNESS" pg start "$RUN_DIR/dst")"; DST_URL=$ZETL_PG_URL
ZETL_PID=
cleanup() {
  [ -n "$ZETL_PID" ] && kill -TERM "$ZETL_PID" 2>/dev/null && wait "$ZETL_PID" 2>/dev/null || true
  psql -X -q "$DST_URL" -c "DROP SUBSCRIPTION IF EXISTS native" >/dev/null 2>&1 || true
  "$HARNESS" pg stop "$RUN_DIR/src"; "$HARNESS" pg stop "$RUN_DIR/dst"
}
trap cleanup EXIT
src() { psql -X -At "$SRC_URL" -c "$1"; }
dst() { psql -X -At "$DST_URL" -c "$1"; }
caught_up() { # slot, lsn
  until [ "$(src "SELECT coalesce(confirmed_flush_lsn >= '$2', false) FROM pg_replication_slots WHERE slot_name = '$1'")" = t ]; do
    sleep 0.1
  done
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ { print $2 }') GiB; $(src 'SELECT version()' | cut -d, -f1)"
pgbench -i -q -s "$SCALE" "$SRC_URL" >/dev/null 2>&1
rows=$((SCALE * 100000))

cat > "$RUN_DIR/zetl.yaml" <<YAML
integrations:
  - name: bench
    source: { kind: postgres, url: "$SRC_URL" }
    target: { kind: postgres, url: "$DST_URL", schemas: { public: zetl } }
    tables: { include: ["public.pgbench_*"] }
    metrics: { listen: "off" }
YAML
: >"$RUN_DIR/zetl.log"
t0=$(now); "$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>>"$RUN_DIR/zetl.log" & ZETL_PID=$!
until grep -q "initial copy committed at the target" "$RUN_DIR/zetl.log"; do sleep 0.05; done
t1=$(now); zetl_copy_s=$(echo "$t1 - $t0" | bc)

# The native subscriber: the same tables (pg_dump of their definitions) in schema public.
pg_dump -s -t 'pgbench_*' "$SRC_URL" | psql -X -q "$DST_URL" >/dev/null
src "CREATE PUBLICATION native FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history" >/dev/null
t0=$(now)
dst "CREATE SUBSCRIPTION native CONNECTION 'host=127.0.0.1 port=$SRC_PORT dbname=zetl user=zetl password=zetl' PUBLICATION native" >/dev/null 2>&1
until [ "$(dst "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" = 0 ]; do sleep 0.1; done
t1=$(now); native_copy_s=$(echo "$t1 - $t0" | bc)
echo "initial copy of $rows accounts rows: zetl ${zetl_copy_s} s ($(rate "$rows" "$zetl_copy_s") rows/s incl. start-up), native table sync ${native_copy_s} s ($(rate "$rows" "$native_copy_s") rows/s)"

# The backlog: both stopped while pgbench writes.
kill -TERM "$ZETL_PID"; wait "$ZETL_PID" || true; ZETL_PID=
dst "ALTER SUBSCRIPTION native DISABLE" >/dev/null
sleep 1
txns=$(pgbench -n -c "$CLIENTS" -j 2 -T "$BACKLOG_SECONDS" "$SRC_URL" 2>/dev/null | awk '/number of transactions actually processed/ { split($0, a, ": "); split(a[2], b, "/"); print b[1] }')
end_lsn=$(src "SELECT pg_current_wal_insert_lsn()")
changes=$((txns * 4))

t0=$(now); "$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>>"$RUN_DIR/zetl.log" & ZETL_PID=$!
caught_up zetl_bench "$end_lsn"; t1=$(now)
zetl_s=$(echo "$t1 - $t0" | bc)
zetl_rss_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$ZETL_PID/status" 2>/dev/null || echo 0)
kill -TERM "$ZETL_PID"; wait "$ZETL_PID" || true; ZETL_PID=

t0=$(now); dst "ALTER SUBSCRIPTION native ENABLE" >/dev/null
caught_up native "$end_lsn"; t1=$(now)
native_s=$(echo "$t1 - $t0" | bc)

echo "backlog   pgbench TPC-B $CLIENTS clients $BACKLOG_SECONDS s: $txns txns = $changes changes"
echo "          zetl:   $(rate "$changes" "$zetl_s") changes/s (${zetl_s} s incl. start-up), peak RSS $((zetl_rss_kb / 1024)) MiB"
echo "          native: $(rate "$changes" "$native_s") changes/s (${native_s} s, CREATE SUBSCRIPTION's apply worker)"
for t in accounts branches tellers history; do
  a=$(dst "SELECT count(*) FROM zetl.pgbench_$t"); b=$(dst "SELECT count(*) FROM public.pgbench_$t"); c=$(src "SELECT count(*) FROM pgbench_$t")
  echo "          rows pgbench_$t: source $c, zetl $a, native $b"
done

cat >"$RUN_DIR/figures.json" <<JSON
{
$(figures_head)
  "initial_copy": {"rows": $rows, "zetl_s": $(num "$zetl_copy_s"), "zetl_rows_per_s": $(rate "$rows" "$zetl_copy_s"),
    "native_s": $(num "$native_copy_s"), "native_rows_per_s": $(rate "$rows" "$native_copy_s")},
  "backlog": {"changes": $changes, "zetl_s": $(num "$zetl_s"), "zetl_changes_per_s": $(rate "$changes" "$zetl_s"),
    "native_s": $(num "$native_s"), "native_changes_per_s": $(rate "$changes" "$native_s")},
  "peak_rss_mib": {"backlog": $((zetl_rss_kb / 1024))}
}
JSON
echo "figures: $RUN_DIR/figures.json"
