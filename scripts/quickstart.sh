#!/usr/bin/env bash
# The quick start: a sample PostgreSQL (own data dir and port, via the shared harness), sample
# data, a live pgbench workload, and zetl replicating it all into ./warehouse.duckdb.
#   ./scripts/quickstart.sh            run for 20 s of workload, then stop everything
#   WORKLOAD_SECONDS=60 ./scripts/quickstart.sh
#   KEEP=1 ./scripts/quickstart.sh     leave PostgreSQL running (stop: scripts/quickstart.sh stop)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR="$PWD/.zetl-run"
HARNESS=target/release/zetl-harness
ZETL=target/release/zetl
export ZETL_WAREHOUSE="${ZETL_WAREHOUSE:-$PWD/warehouse.duckdb}"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "${1:-}" = stop ]; then
  "$HARNESS" pg stop "$RUN_DIR/pg"
  exit 0
fi

./scripts/setup.sh
say "building zetl (release; the first build takes a few minutes)"
# The demo replicates PostgreSQL: the DynamoDB source (the AWS SDK, half the build) is left out.
cargo build --release --locked -p zetl -p zetl-testkit --no-default-features

say "starting a sample PostgreSQL with wal_level=logical"
mkdir -p "$RUN_DIR"
eval "$("$HARNESS" pg start "$RUN_DIR/pg")"
export ZETL_PG_URL
cleanup() {
  [ -n "${ZETL_PID:-}" ] && kill -TERM "$ZETL_PID" 2>/dev/null && wait "$ZETL_PID" 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] || "$HARNESS" pg stop "$RUN_DIR/pg"
}
trap cleanup EXIT

say "loading the sample shop (10k customers, 1k products, 100k orders)"
psql -X -q "$ZETL_PG_URL" -c "DROP SCHEMA IF EXISTS shop CASCADE" -f examples/shop.sql
rm -f "$ZETL_WAREHOUSE" "$ZETL_WAREHOUSE.wal"

say "zetl check"
"$ZETL" check -c examples/zetl.yaml

say "zetl run (log: $RUN_DIR/zetl.log)"
"$ZETL" run -c examples/zetl.yaml 2>"$RUN_DIR/zetl.log" &
ZETL_PID=$!

seconds="${WORKLOAD_SECONDS:-20}"
say "live workload: pgbench, 2 clients, ${seconds} s"
pgbench -n -c 2 -T "$seconds" -f examples/workload.pgbench "$ZETL_PG_URL" 2>&1 | grep -E "tps|processed|error|ERROR" || true

say "waiting until the warehouse has every committed change"
target_lsn=$(psql -X -At "$ZETL_PG_URL" -c "SELECT pg_current_wal_insert_lsn()")
for _ in $(seq 1 120); do
  done=$(psql -X -At "$ZETL_PG_URL" -c "SELECT confirmed_flush_lsn >= '$target_lsn' FROM pg_replication_slots WHERE slot_name = 'zetl_shop_to_warehouse'")
  [ "$done" = t ] && break
  sleep 0.5
done
kill -TERM "$ZETL_PID"; wait "$ZETL_PID"; ZETL_PID=
tail -n 3 "$RUN_DIR/zetl.log"

say "source vs warehouse"
for t in customers products orders; do
  src=$(psql -X -At "$ZETL_PG_URL" -c "SELECT count(*) || ' rows, sum ' || coalesce(sum(hashtext(t::text)::bigint), 0) FROM shop.$t t" | cut -d, -f1)
  printf '  shop.%-10s source: %-14s' "$t" "$src"
  if command -v duckdb >/dev/null; then
    printf 'warehouse: %s rows\n' "$(duckdb -readonly -noheader -list "$ZETL_WAREHOUSE" -c "SELECT count(*) FROM shop.$t")"
  else
    echo
  fi
done
cat <<MSG

Done. Look at the warehouse with the DuckDB CLI (installed by scripts/setup.sh):
  duckdb -readonly $ZETL_WAREHOUSE -c "SELECT status, count(*), sum(total) FROM shop.orders GROUP BY 1"
  duckdb -readonly $ZETL_WAREHOUSE -c "SELECT * FROM _zetl.checkpoints"
MSG
