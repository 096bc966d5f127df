#!/usr/bin/env bash
# Benchmark PostgreSQL → DuckDB on this machine; prints figures, asserts nothing.
#   ./scripts/bench.sh                 snapshot at 1M and 10M rows, then 30 s of pgbench TPC-B
#   SCALES="10" STREAM_SECONDS=60 CLIENTS=4 ./scripts/bench.sh
# Beside each zetl figure it prints the ceiling measured on the same server and data:
# the raw `COPY … TO STDOUT (FORMAT binary)` rate of the same table, and for the backlog
# PostgreSQL's own pg_recvlogical receiving the same changes into /dev/null, with the CPU time
# of the walsender that decodes and sends them for each.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALES="${SCALES:-10 100}"
STREAM_SECONDS="${STREAM_SECONDS:-30}"
CLIENTS="${CLIENTS:-4}"
RUN_DIR="$PWD/.zetl-run/bench"

. scripts/bench-common.sh
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
eval "$("$HARNESS" pg start "$RUN_DIR/pg")"
export ZETL_PG_URL
ZETL_PID=
cleanup() {
  [ -n "$ZETL_PID" ] && kill -TERM "$ZETL_PID" 2>/dev/null && wait "$ZETL_PID" 2>/dev/null || true
  "$HARNESS" pg stop "$RUN_DIR/pg"
}
trap cleanup EXIT
sql() { psql -X -At "$ZETL_PG_URL" -c "$1"; }

cat > "$RUN_DIR/zetl.yaml" <<YAML
integrations:
  - name: bench
    source: { kind: postgres, url: "\${ZETL_PG_URL}" }
    target: { kind: duckdb, path: "$RUN_DIR/bench.duckdb" }
    tables: { include: ["public.pgbench_*", "public.bench_*"] }
YAML

start_zetl() {
  "$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>>"$RUN_DIR/zetl.log" &
  ZETL_PID=$!
}
# Stops zetl; its peak RSS (kB) is left in LAST_RSS_KB.
stop_zetl() {
  LAST_RSS_KB=$(awk '/VmHWM/ { print $2 }' "/proc/$ZETL_PID/status" 2>/dev/null || echo 0)
  kill -TERM "$ZETL_PID"; wait "$ZETL_PID" || true; ZETL_PID=
}
wait_caught_up() {
  local lsn="$1"
  until [ "$(sql "SELECT coalesce(confirmed_flush_lsn >= '$lsn', false) FROM pg_replication_slots WHERE slot_name = 'zetl_bench'")" = t ]; do
    sleep 0.1
  done
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ { print $2 }') GiB; $(postgres --version 2>/dev/null || sql 'SELECT version()' | cut -d, -f1)"
for scale in $SCALES; do
  rows=$((scale * 100000))
  if [ -n "$ZETL_PID" ]; then stop_zetl; snapshot_rss_kb=$LAST_RSS_KB; fi
  sql "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history, bench_big" >/dev/null
  sql "CREATE TABLE bench_big (id int PRIMARY KEY, v text)" >/dev/null
  sql "SELECT pg_drop_replication_slot('zetl_bench') FROM pg_replication_slots WHERE slot_name = 'zetl_bench'" >/dev/null
  rm -f "$RUN_DIR/bench.duckdb" "$RUN_DIR/bench.duckdb.wal"
  pgbench -i -q -s "$scale" "$ZETL_PG_URL" >/dev/null 2>&1
  sql "VACUUM ANALYZE" >/dev/null

  t0=$(now); psql -X -q "$ZETL_PG_URL" -c "COPY pgbench_accounts TO STDOUT (FORMAT binary)" >/dev/null; t1=$(now)
  copy_rate=$(rate "$rows" "$(echo "$t1 - $t0" | bc)")

  : >"$RUN_DIR/zetl.log"
  t0=$(now); start_zetl
  until grep -q "initial copy committed at the target" "$RUN_DIR/zetl.log"; do sleep 0.05; done
  t1=$(now)
  total=$(sql "SELECT (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_branches) + (SELECT count(*) FROM pgbench_tellers)")
  snap_s=$(echo "$t1 - $t0" | bc)
  echo "snapshot  ${rows} accounts rows: zetl $(rate "$total" "$snap_s") rows/s (${snap_s} s incl. start-up)   ceiling COPY binary to /dev/null: ${copy_rate} rows/s"
  snapshots="${snapshots:+$snapshots, }{\"rows\": $rows, \"rows_per_s\": $(rate "$total" "$snap_s"), \"seconds\": $(num "$snap_s"), \"ceiling_rows_per_s\": $copy_rate}"
done

# Streaming: pgbench's TPC-B-like script (3 updates, 1 insert per transaction) against the
# last scale, with zetl following; lag sampled every second.
wal_before=$(sql "SELECT pg_current_wal_insert_lsn()")
: >"$RUN_DIR/lag.txt"
( while kill -0 "$ZETL_PID" 2>/dev/null; do
    sql "SELECT pg_current_wal_insert_lsn() - confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'zetl_bench'" >>"$RUN_DIR/lag.txt" 2>/dev/null || true
    sleep 1
  done ) &
sampler=$!
t0=$(now)
txns=$(pgbench -n -c "$CLIENTS" -j 2 -T "$STREAM_SECONDS" "$ZETL_PG_URL" 2>/dev/null | awk '/number of transactions actually processed/ { split($0, a, ": "); split(a[2], b, "/"); print b[1] }')
t_load=$(now)
end_lsn=$(sql "SELECT pg_current_wal_insert_lsn()")
wait_caught_up "$end_lsn"
t_done=$(now)
kill "$sampler" 2>/dev/null || true
changes=$((txns * 4))
load_s=$(echo "$t_load - $t0" | bc); total_s=$(echo "$t_done - $t0" | bc); drain_s=$(echo "$t_done - $t_load" | bc)
max_lag=$(sort -n "$RUN_DIR/lag.txt" | tail -n 1)
wal=$(sql "SELECT pg_wal_lsn_diff('$end_lsn', '$wal_before')::bigint")
# Backlog: zetl stopped while the same workload runs, then started: how fast it catches up.
stop_zetl; stream_rss_kb=$LAST_RSS_KB
# A second slot at the same position: pg_recvlogical receives the same backlog later.
sql "CREATE PUBLICATION bench_ceiling FOR ALL TABLES" >/dev/null
sql "SELECT pg_create_logical_replication_slot('bench_ceiling', 'pgoutput')" >/dev/null
backlog_txns=$(pgbench -n -c "$CLIENTS" -j 2 -T "$STREAM_SECONDS" "$ZETL_PG_URL" 2>/dev/null | awk '/number of transactions actually processed/ { split($0, a, ": "); split(a[2], b, "/"); print b[1] }')
backlog_lsn=$(sql "SELECT pg_current_wal_insert_lsn()")
t0=$(now); start_zetl; wait_caught_up "$backlog_lsn"; t1=$(now); backlog_ws=$(walsender_cpu "$RUN_DIR/pg")
backlog_s=$(echo "$t1 - $t0" | bc)
echo "backlog   ${backlog_txns} txns = $((backlog_txns * 4)) changes applied from a standing start in ${backlog_s} s: $(rate "$((backlog_txns * 4))" "$backlog_s") changes/s (incl. start-up); walsender ${backlog_ws} CPU s"

# One 1M-row source transaction: streamed by the server while in progress, spilled to disk by
# zetl, applied at its commit in one target transaction.
big_start=$(sql "SELECT pg_current_wal_insert_lsn()")
t0=$(now)
sql "INSERT INTO bench_big SELECT g, md5(g::text) FROM generate_series(1, 1000000) g" >/dev/null
t_committed=$(now)
wait_caught_up "$(sql "SELECT pg_current_wal_insert_lsn()")"
t_applied=$(now)
big_wal=$(sql "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$big_start')::bigint")
stop_zetl; rss_kb=$LAST_RSS_KB
# The backlog's ceiling: PostgreSQL's own client receiving the same changes, writing nothing.
r0=$(now)
pg_recvlogical -d "$ZETL_PG_URL" --slot bench_ceiling --start --endpos "$backlog_lsn" \
  -o proto_version=2 -o publication_names=bench_ceiling -f /dev/null &
recv_pid=$!
# The last reading before the walsender exits (pg_recvlogical outlives it briefly).
while kill -0 "$recv_pid" 2>/dev/null; do
  cpu=$(walsender_cpu "$RUN_DIR/pg"); [ "$cpu" != null ] && recv_ws=$cpu
  sleep 0.05
done
wait "$recv_pid"; recv_s=$(echo "$(now) - $r0" | bc)
sql "SELECT pg_drop_replication_slot('bench_ceiling')" >/dev/null
echo "          ceiling: pg_recvlogical into /dev/null $(rate "$((backlog_txns * 4))" "$recv_s") changes/s (${recv_s} s); walsender ${recv_ws:-null} CPU s"
grep -o 'lag_s=[0-9.]*' "$RUN_DIR/zetl.log" | cut -d= -f2 | sort -n | tail -n 1 >"$RUN_DIR/lag_s.txt" || true
echo "streaming pgbench TPC-B ${CLIENTS} clients ${STREAM_SECONDS} s: ${txns} txns = ${changes} changes, $((wal / 1048576)) MiB WAL"
echo "          source rate $(rate "$changes" "$load_s") changes/s; zetl applied all $(rate "$changes" "$total_s") changes/s end to end; caught up ${drain_s} s after the load stopped"
echo "          lag: max $((${max_lag:-0} / 1024)) KiB of WAL behind (sampled 1/s); max commit-to-commit lag $(cat "$RUN_DIR/lag_s.txt" 2>/dev/null || echo '?') s (progress log)"
echo "one 1M-row transaction ($((big_wal / 1048576)) MiB WAL): committed at the source in $(echo "$t_committed - $t0" | bc) s, applied at the target $(echo "$t_applied - $t_committed" | bc) s after its commit"
echo "peak RSS of zetl: $(( ${snapshot_rss_kb:-0} / 1024 )) MiB (first snapshot run); $((stream_rss_kb / 1024)) MiB (last snapshot + live streaming); $((rss_kb / 1024)) MiB (backlog + 1M-row transaction)"

# The same figures as JSON, with the machine and the commit, to compare a run with the last.
cat >"$RUN_DIR/figures.json" <<JSON
{
$(figures_head)
  "snapshot": [$snapshots],
  "streaming": {"clients": $CLIENTS, "seconds": $STREAM_SECONDS, "changes": $changes,
    "source_changes_per_s": $(rate "$changes" "$load_s"), "end_to_end_changes_per_s": $(rate "$changes" "$total_s"),
    "catch_up_s": $(num "$drain_s"), "max_lag_wal_bytes": ${max_lag:-0}, "max_lag_s": $(cat "$RUN_DIR/lag_s.txt" 2>/dev/null | grep . || echo null)},
  "backlog": {"changes": $((backlog_txns * 4)), "seconds": $(num "$backlog_s"), "changes_per_s": $(rate "$((backlog_txns * 4))" "$backlog_s"),
    "walsender_cpu_s": $backlog_ws, "ceiling_pg_recvlogical_changes_per_s": $(rate "$((backlog_txns * 4))" "$recv_s"),
    "ceiling_walsender_cpu_s": ${recv_ws:-null}},
  "one_1m_row_transaction": {"applied_s_after_commit": $(num "$(echo "$t_applied - $t_committed" | bc)")},
  "peak_rss_mib": {"first_snapshot": $([ -n "${snapshot_rss_kb:-}" ] && echo $((snapshot_rss_kb / 1024)) || echo null), "snapshot_and_streaming": $((stream_rss_kb / 1024)), "backlog_and_big_transaction": $((rss_kb / 1024))}
}
JSON
echo "figures: $RUN_DIR/figures.json"
