#!/usr/bin/env bash
# Benchmark MariaDB → DuckDB on this machine; prints figures (and writes them as JSON to
# .zetl-run/bench-mysql/figures.json), asserts nothing.
#   ./scripts/bench-mysql.sh                    1M-row snapshot, a 500k-change backlog, 30 s of sysbench
#   ROWS=200000 BACKLOG_TXNS=100 STREAM_SECONDS=10 ./scripts/bench-mysql.sh
# Ceilings measured on the same server and data: `SELECT *` through the mariadb client for the
# snapshot, `mariadb-binlog --read-from-remote-server` (decoding rows) for the binlog.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-1000000}"
BACKLOG_TXNS="${BACKLOG_TXNS:-500}"      # of 1000 updated rows each
STREAM_SECONDS="${STREAM_SECONDS:-30}"
THREADS="${THREADS:-4}"
RUN_DIR="$PWD/.zetl-run/bench-mysql"
METRICS_PORT="${METRICS_PORT:-19188}"

. scripts/bench-common.sh
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
eval "$("$HARNESS" mariadb start "$RUN_DIR/db")"
ZETL_PID=
cleanup() {
  [ -n "$ZETL_PID" ] && kill -TERM "$ZETL_PID" 2>/dev/null && wait "$ZETL_PID" 2>/dev/null || true
  "$HARNESS" mariadb stop "$RUN_DIR/db"
}
trap cleanup EXIT
client=(mariadb --no-defaults -h 127.0.0.1 -P "$ZETL_MYSQL_PORT" -u zetl -pzetl)
sql() { "${client[@]}" -N -B -e "$1"; }
# zetl's count of applied changes, from its metrics endpoint.
applied() {
  curl -s "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null |
    awk '/^zetl_changes_applied_total/ && /table="bench.items"/ { s += $2 } END { printf "%d", s }'
}
lag() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null | awk '/^zetl_lag_seconds/ { print $2 }'; }

sql "CREATE DATABASE bench"
cat > "$RUN_DIR/zetl.yaml" <<YAML
integrations:
  - name: bench
    source: { kind: mysql, url: "$ZETL_MYSQL_URL" }
    target: { kind: duckdb, path: "$RUN_DIR/bench.duckdb" }
    tables: { include: ["bench.*"] }
    metrics: { listen: "127.0.0.1:$METRICS_PORT" }
YAML
start_zetl() { "$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>>"$RUN_DIR/zetl.log" & ZETL_PID=$!; }
stop_zetl() {
  LAST_RSS_KB=$(awk '/VmHWM/ { print $2 }' "/proc/$ZETL_PID/status" 2>/dev/null || echo 0)
  kill -TERM "$ZETL_PID"; wait "$ZETL_PID" || true; ZETL_PID=
}
wait_applied() { until [ "$(applied)" -ge "$1" ]; do sleep 0.1; done; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ { print $2 }') GiB; $(sql 'SELECT VERSION()')"
# sysbench's table shape: id, k, c char(120), pad char(60).
sql "CREATE TABLE bench.items (id int PRIMARY KEY, k int NOT NULL, c char(120) NOT NULL, pad char(60) NOT NULL, KEY (k))"
sql "USE bench; INSERT INTO bench.items SELECT seq, seq % 1000, REPEAT(CHAR(97 + seq % 26), 120), REPEAT('p', 60) FROM seq_1_to_$ROWS"
sql "ANALYZE TABLE bench.items" >/dev/null
t0=$(now); "${client[@]}" -B -e "SELECT * FROM bench.items" >/dev/null; t1=$(now)
select_rate=$(rate "$ROWS" "$(echo "$t1 - $t0" | bc)")

t0=$(now); start_zetl
until grep -q "initial copy committed at the target" "$RUN_DIR/zetl.log"; do sleep 0.05; done
t1=$(now); snap_s=$(echo "$t1 - $t0" | bc)
echo "snapshot  $ROWS rows: zetl $(rate "$ROWS" "$snap_s") rows/s (${snap_s} s incl. start-up)   ceiling SELECT * through the client: $select_rate rows/s"
stop_zetl; snapshot_rss_kb=$LAST_RSS_KB

# Backlog: updates written while zetl is stopped, then applied from a standing start.
sql "FLUSH BINARY LOGS"
start_file=$(sql "SHOW MASTER STATUS" | cut -f1)
for i in $(seq 0 $((BACKLOG_TXNS - 1))); do
  echo "UPDATE bench.items SET k = k + 1 WHERE id > $((i * 1000)) AND id <= $((i * 1000 + 1000));"
done | "${client[@]}"
changes=$((BACKLOG_TXNS * 1000))
t0=$(now); "${client[@]}" -e "SELECT 1" >/dev/null
mariadb-binlog --no-defaults --read-from-remote-server -h 127.0.0.1 -P "$ZETL_MYSQL_PORT" -u zetl -pzetl \
  --to-last-log --verbose "$start_file" >/dev/null 2>&1 || true
t1=$(now); binlog_rate=$(rate "$changes" "$(echo "$t1 - $t0" | bc)")
t0=$(now); start_zetl; wait_applied "$changes"; t1=$(now)
backlog_s=$(echo "$t1 - $t0" | bc)
echo "backlog   $changes row changes in $BACKLOG_TXNS txns: zetl $(rate "$changes" "$backlog_s") changes/s (${backlog_s} s incl. start-up)   ceiling mariadb-binlog --verbose: $binlog_rate changes/s (whole binlog since the snapshot)"

# Live: sysbench oltp_write_only on its own tables beside ours (2 updates, 1 delete, 1 insert a txn).
sb=(sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$ZETL_MYSQL_PORT"
    --mysql-user=zetl --mysql-password=zetl --mysql-db=bench --tables=4 --table-size=100000)
"${sb[@]}" prepare >/dev/null
sleep 2
: >"$RUN_DIR/lag.txt"
( while kill -0 "$ZETL_PID" 2>/dev/null; do lag >>"$RUN_DIR/lag.txt"; sleep 1; done ) &
sampler=$!
txns=$("${sb[@]}" --threads="$THREADS" --time="$STREAM_SECONDS" run | awk '/transactions:/ { print $2 }')
t_load=$(now)
until [ "$(lag | awk '{ print ($1 == 0) }')" = 1 ]; do sleep 0.1; done
t_done=$(now)
kill "$sampler" 2>/dev/null || true
stop_zetl; stream_rss_kb=$LAST_RSS_KB
echo "streaming sysbench oltp_write_only $THREADS threads $STREAM_SECONDS s: $txns txns = $((txns * 4)) changes, source rate $(rate "$((txns * 4))" "$STREAM_SECONDS") changes/s"
echo "          lag: max $(sort -n "$RUN_DIR/lag.txt" | tail -n 1) s (sampled 1/s); 0 again $(echo "$t_done - $t_load" | bc) s after the load stopped"
echo "peak RSS of zetl: $((snapshot_rss_kb / 1024)) MiB (snapshot); $((stream_rss_kb / 1024)) MiB (backlog + live streaming)"

cat >"$RUN_DIR/figures.json" <<JSON
{
$(figures_head mariadb "$(sql 'SELECT VERSION()')")
  "snapshot": {"rows": $ROWS, "seconds": $(num "$snap_s"), "rows_per_s": $(rate "$ROWS" "$snap_s"), "ceiling_select_rows_per_s": $select_rate},
  "backlog": {"changes": $changes, "seconds": $(num "$backlog_s"), "changes_per_s": $(rate "$changes" "$backlog_s"), "ceiling_binlog_changes_per_s": $binlog_rate},
  "streaming": {"threads": $THREADS, "seconds": $STREAM_SECONDS, "changes": $((txns * 4)), "source_changes_per_s": $(rate "$((txns * 4))" "$STREAM_SECONDS"),
    "max_lag_s": $(sort -n "$RUN_DIR/lag.txt" | tail -n 1 | grep . || echo null), "catch_up_s": $(num "$(echo "$t_done - $t_load" | bc)")},
  "peak_rss_mib": {"snapshot": $((snapshot_rss_kb / 1024)), "backlog_and_streaming": $((stream_rss_kb / 1024))}
}
JSON
echo "figures: $RUN_DIR/figures.json"
