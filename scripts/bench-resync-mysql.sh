#!/usr/bin/env bash
# Benchmark: how far another table falls behind while one big table is copied again
# (`zetl resync`), MariaDB → DuckDB. Prints figures, asserts nothing.
#   ./scripts/bench-resync-mysql.sh                  a 10M-row table with an integer key (filled beside the binlog)
#   KEY=text ./scripts/bench-resync-mysql.sh         the same rows under a text key (filled too)
#   KEY=none ./scripts/bench-resync-mysql.sh         the same rows without a key (copied in one piece, holding the binlog)
#   ROWS=1000000 ./scripts/bench-resync-mysql.sh
# A ticker inserts a row into bench.ticks every 100 ms, noting when; every 0.2 s the sampler
# reads how many of them zetl has applied (zetl_changes_applied_total). A sample's lag is the
# age of the oldest tick not applied yet (0 when all are).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-10000000}"
KEY="${KEY:-int}"
RUN_DIR="$PWD/.zetl-run/bench-resync-mysql"

. scripts/bench-common.sh
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
eval "$("$HARNESS" mariadb start "$RUN_DIR/db")"
ZETL_PID= TICKER_PID= SAMPLER_PID=
cleanup() {
  for pid in "$SAMPLER_PID" "$TICKER_PID"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  [ -n "$ZETL_PID" ] && kill -TERM "$ZETL_PID" 2>/dev/null && wait "$ZETL_PID" 2>/dev/null || true
  "$HARNESS" mariadb stop "$RUN_DIR/db"
}
trap cleanup EXIT
client=(mariadb --no-defaults -h 127.0.0.1 -P "$ZETL_MYSQL_PORT" -u zetl -pzetl)
sql() { "${client[@]}" -N -B -e "$1"; }
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

case "$KEY" in
  int) key_type="bigint PRIMARY KEY"; key_expr="seq" ;;
  text) key_type="varchar(20) PRIMARY KEY"; key_expr="CONCAT('k', seq)" ;;
  none) key_type="bigint"; key_expr="seq" ;;
  *) echo "KEY must be int, text or none" >&2; exit 2 ;;
esac
sql "CREATE DATABASE bench"
sql "USE bench; CREATE TABLE bench.big (id $key_type, v varchar(40), n int);
     INSERT INTO bench.big SELECT $key_expr, md5(seq), seq FROM seq_1_to_$ROWS;
     CREATE TABLE bench.ticks (id int PRIMARY KEY); ANALYZE TABLE bench.big" >/dev/null
cat > "$RUN_DIR/zetl.yaml" <<YAML
integrations:
  - name: rs
    source: { kind: mysql, url: "$ZETL_MYSQL_URL" }
    target: { kind: duckdb, path: "$RUN_DIR/rs.duckdb" }
    tables: { include: ["bench.*"] }
    metrics: { listen: "127.0.0.1:$PORT" }
YAML

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ { print $2 }') GiB; $(sql 'SELECT VERSION()')"
"$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>"$RUN_DIR/zetl.log" &
ZETL_PID=$!
until grep -q "initial copy committed at the target" "$RUN_DIR/zetl.log"; do sleep 0.2; done

( i=0; while true; do i=$((i + 1)); sql "INSERT INTO bench.ticks VALUES ($i)"; echo "$i $(now)"; sleep 0.1; done ) \
  >"$RUN_DIR/ticks.txt" &
TICKER_PID=$!
( while true; do
    applied=$(curl -s "127.0.0.1:$PORT/metrics" | awk '/^zetl_changes_applied_total/ && /table="bench.ticks"/ { s += $2 } END { printf "%d", s }')
    echo "$(now) $applied"
    sleep 0.2
  done ) >"$RUN_DIR/samples.txt" 2>/dev/null &
SAMPLER_PID=$!
sleep 10
t_resync=$(now)
"$ZETL" resync -c "$RUN_DIR/zetl.yaml" bench.big >/dev/null
until grep -q "copied while streaming.*table=bench.big" "$RUN_DIR/zetl.log"; do sleep 0.2; done
t_copied=$(now)
sleep 10
kill "$TICKER_PID"; TICKER_PID=
kill "$SAMPLER_PID"; SAMPLER_PID=
kill -TERM "$ZETL_PID"; wait "$ZETL_PID" || true; ZETL_PID=

how=$(grep -q "in chunks table=bench.big" "$RUN_DIR/zetl.log" && echo "filled beside the binlog" || echo "copied in one piece")
awk -v r="$t_resync" -v c="$t_copied" '
  FNR == NR { at[$1] = $2; n = $1; next }
  {
    t = $1; done = $2; lag = 0
    if (done < n && (done + 1) in at && at[done + 1] < t) lag = t - at[done + 1]
    if (t < r) { if (lag > before) before = lag }
    else if (t <= c) { if (lag > during) during = lag }
    else last = lag
  }
  END { printf "lag of bench.ticks: max %.1f s before the resync, max %.1f s while bench.big was copied again, %.1f s at the end\n", before, during, last }
' "$RUN_DIR/ticks.txt" "$RUN_DIR/samples.txt"
copy_s=$(echo "$t_copied - $t_resync" | bc)
echo "resync of bench.big ($ROWS rows, $KEY key, $how): ${copy_s} s ($(rate "$ROWS" "$copy_s") rows/s incl. the request, which waits up to 10 s)"
