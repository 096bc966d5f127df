#!/usr/bin/env bash
# Where zetl's time goes: a CPU profile (perf, sampling at ~1 kHz) of one path, per thread.
#   ./scripts/profile.sh copy       initial copy of pgbench_accounts (SCALE=10: 1M rows) into DuckDB
#   ./scripts/profile.sh backlog    a pgbench TPC-B backlog (LOAD_SECONDS=15) applied from a standing start
#   ./scripts/profile.sh big        one 1M-row source transaction, from its commit until applied
#   ./scripts/profile.sh mariadb    a MariaDB binlog backlog (BACKLOG_TXNS=300 of 1000 updated rows of
#                                   bench-mysql.sh's table) applied from a standing start
#   MEMORY_LIMIT=128MB BATCH_WAIT_MS=2000 BATCH_MAX_BYTES=67108864 ./scripts/profile.sh backlog
#                                   the same with other DuckDB buffer pool and batch settings
# Prints the wall time, CPU seconds per thread and each thread's top symbols; perf.data stays
# in .zetl-run/profile for `perf report -i`. Needs `perf` (Debian's linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${1:-copy}"
SCALE="${SCALE:-10}"
LOAD_SECONDS="${LOAD_SECONDS:-15}"
RUN_DIR="$PWD/.zetl-run/profile"
command -v perf >/dev/null || { echo "profile: perf is missing (apt-get install linux-perf)" >&2; exit 2; }

. scripts/bench-common.sh
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
zetl_pid() { pgrep -f "^$ZETL run -c $RUN_DIR/zetl.yaml" | tail -n 1; }
batch="batch: { max_wait_ms: ${BATCH_WAIT_MS:-500}, max_bytes: ${BATCH_MAX_BYTES:-33554432} }"
duckdb="target: { kind: duckdb, path: \"$RUN_DIR/profile.duckdb\", memory_limit: \"${MEMORY_LIMIT:-256MB}\" }"
copy_then_stop() {
  "$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>"$RUN_DIR/copy.log" &
  until grep -q "initial copy committed at the target" "$RUN_DIR/copy.log"; do sleep 0.05; done
  kill -TERM $!; wait $! || true
}
if [ "$WHAT" = mariadb ]; then
  rows=200000 txns="${BACKLOG_TXNS:-300}" port="${METRICS_PORT:-19189}"
  eval "$("$HARNESS" mariadb start "$RUN_DIR/db")"
  trap '"$HARNESS" mariadb stop "$RUN_DIR/db"' EXIT
  my() { mariadb --no-defaults -h 127.0.0.1 -P "$ZETL_MYSQL_PORT" -u zetl -pzetl -N -B "$@"; }
  my -e "CREATE DATABASE bench; CREATE TABLE bench.items (id int PRIMARY KEY, k int NOT NULL, c char(120) NOT NULL, pad char(60) NOT NULL, KEY (k));
    USE bench; INSERT INTO bench.items SELECT seq, seq % 1000, REPEAT(CHAR(97 + seq % 26), 120), REPEAT('p', 60) FROM seq_1_to_$rows"
  cat > "$RUN_DIR/zetl.yaml" <<YAML
integrations:
  - name: profile
    source: { kind: mysql, url: "$ZETL_MYSQL_URL" }
    $duckdb
    tables: { include: ["bench.*"] }
    metrics: { listen: "127.0.0.1:$port" }
    $batch
YAML
  copy_then_stop
  for i in $(seq 0 $((txns - 1))); do
    echo "UPDATE bench.items SET k = k + 1 WHERE id > $((i * 1000 % rows)) AND id <= $((i * 1000 % rows + 1000));"
  done | my
  what="$((txns * 1000)) row changes in $txns transactions"
  applied() {
    curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null |
      awk '/^zetl_changes_applied_total/ && /table="bench.items"/ { s += $2 } END { printf "%d", s }'
  }
  done_yet() { [ "$(applied)" -ge "$((txns * 1000))" ]; }
else
  eval "$("$HARNESS" pg start "$RUN_DIR/pg")"
  export ZETL_PG_URL
  trap '"$HARNESS" pg stop "$RUN_DIR/pg"' EXIT
  sql() { psql -X -At "$ZETL_PG_URL" -c "$1"; }
  cat > "$RUN_DIR/zetl.yaml" <<YAML
integrations:
  - name: profile
    source: { kind: postgres, url: "\${ZETL_PG_URL}" }
    $duckdb
    tables: { include: ["public.pgbench_*", "public.profile_big"] }
    $batch
YAML
  pgbench -i -q -s "$SCALE" "$ZETL_PG_URL" >/dev/null 2>&1
  sql "VACUUM ANALYZE" >/dev/null
  sql "CREATE TABLE profile_big (id int PRIMARY KEY, v text)" >/dev/null
  caught_up() { [ "$(sql "SELECT coalesce(confirmed_flush_lsn >= '$1', false) FROM pg_replication_slots WHERE slot_name = 'zetl_profile'")" = t ]; }
  if [ "$WHAT" = backlog ]; then
    copy_then_stop
    txns=$(pgbench -n -c 4 -j 2 -T "$LOAD_SECONDS" "$ZETL_PG_URL" 2>/dev/null | awk '/actually processed/ { split($0, a, ": "); split(a[2], b, "/"); print b[1] }')
    lsn=$(sql "SELECT pg_current_wal_insert_lsn()")
    what="$((txns * 4)) changes"
    done_yet() { caught_up "$lsn"; }
  elif [ "$WHAT" = big ]; then
    what="1M rows in one transaction"
    done_yet() { grep -q "initial copy committed at the target" "$RUN_DIR/zetl.log" &&
      sql "INSERT INTO profile_big SELECT g, md5(g::text) FROM generate_series(1, 1000000) g" >/dev/null &&
      echo "committed at the source $(echo "$(now) - $t0" | bc) s after the start" &&
      lsn=$(sql "SELECT pg_current_wal_insert_lsn()") && until caught_up "$lsn"; do sleep 0.05; done; }
  else
    what="$(sql "SELECT count(*) FROM pgbench_accounts") rows"
    done_yet() { grep -q "initial copy committed at the target" "$RUN_DIR/zetl.log"; }
  fi
fi
# CPU seconds so far of the MariaDB server (its binlog dump thread reads for zetl).
mariadbd_cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$(pgrep -f "mariadbd.*$RUN_DIR/db" | head -n 1)/stat"; }
[ "$WHAT" = mariadb ] && server0=$(mariadbd_cpu)
idle0=$(awk '/^cpu / { print $5 + $6 }' /proc/stat)
t0=$(now)
perf record -F 997 -g -o "$RUN_DIR/perf.data" -- "$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>"$RUN_DIR/zetl.log" &
until done_yet; do sleep 0.05; done
t1=$(now)
idle1=$(awk '/^cpu / { print $5 + $6 }' /proc/stat)
# The walsender decodes the WAL for zetl on the same cores: its CPU time is part of the bill.
if [ "$WHAT" = mariadb ]; then
  echo "MariaDB server: $(echo "$(mariadbd_cpu) - $server0" | bc) CPU s during the run"
else
  echo "PostgreSQL walsender: $(walsender_cpu "$RUN_DIR/pg") CPU s"
fi
awk -v i="$((idle1 - idle0))" -v s="$(echo "$t1 - $t0" | bc)" -v n="$(nproc)" \
  'BEGIN { printf "machine idle: %.2f of %d cores on average\n", i / 100 / s, n }'
pid=$(zetl_pid)
rss_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
kill -TERM "$pid"; wait || true
echo "$WHAT: $what in $(echo "$t1 - $t0" | bc) s (perf's start-up included); peak RSS $((rss_kb / 1024)) MiB"
echo "CPU seconds per thread (samples / 997):"
perf script -i "$RUN_DIR/perf.data" -F comm 2>/dev/null | sort | uniq -c | sort -rn | head -n 6 |
  awk '{ printf "  %-18s %.2f s\n", $2, $1 / 997 }'
for comm in zetl-writer tokio-rt-worker zetl; do
  echo "top of $comm:"
  perf report -i "$RUN_DIR/perf.data" --no-children --comm "$comm" --sort dso,sym --stdio -g none 2>/dev/null |
    grep '%' | head -n 12 || true
done
