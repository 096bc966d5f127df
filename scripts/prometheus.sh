#!/usr/bin/env bash
# Optional: a real Prometheus (Debian's package) scraping a running zetl during the quick
# start's workload; prints what Prometheus stored. Everything runs on 127.0.0.1 and stops.
#   ./scripts/prometheus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR="$PWD/.zetl-run/prometheus"
HARNESS=target/release/zetl-harness
ZETL=target/release/zetl
PROM_PORT="${PROM_PORT:-19090}"
METRICS_PORT=9187

command -v prometheus >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
./scripts/setup.sh
cargo build --release --locked -p zetl -p zetl-testkit 2>&1 | tail -n 1
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
eval "$("$HARNESS" pg start "$RUN_DIR/pg")"
export ZETL_PG_URL ZETL_WAREHOUSE="$RUN_DIR/warehouse.duckdb"
ZETL_PID=; PROM_PID=
cleanup() {
  [ -n "$ZETL_PID" ] && kill -TERM "$ZETL_PID" 2>/dev/null && wait "$ZETL_PID" 2>/dev/null || true
  [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null || true
  "$HARNESS" pg stop "$RUN_DIR/pg"
}
trap cleanup EXIT

psql -X -q "$ZETL_PG_URL" -f examples/shop.sql
"$ZETL" run -c examples/zetl.yaml 2>"$RUN_DIR/zetl.log" &
ZETL_PID=$!

cat >"$RUN_DIR/prometheus.yml" <<YAML
global: { scrape_interval: 2s }
scrape_configs:
  - job_name: zetl
    static_configs: [{ targets: ["127.0.0.1:$METRICS_PORT"] }]
YAML
prometheus --config.file="$RUN_DIR/prometheus.yml" --storage.tsdb.path="$RUN_DIR/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$RUN_DIR/prometheus.log" 2>&1 &
PROM_PID=$!

pgbench -n -c 2 -T "${WORKLOAD_SECONDS:-15}" -f examples/workload.pgbench "$ZETL_PG_URL" 2>&1 | grep -E "tps" || true
sleep 5
query() {
  curl -s --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print("\n".join("  %s %s" % (x["metric"], x["value"][1]) for x in r) or "  (no data)")'
}
echo "Prometheus (http://127.0.0.1:$PROM_PORT) stored:"
for q in 'up{job="zetl"}' 'zetl_phase' 'zetl_lag_seconds' 'zetl_lag_bytes' \
         'sum by (op) (zetl_changes_applied_total)' 'rate(zetl_transactions_applied_total[30s])' \
         'histogram_quantile(0.95, rate(zetl_apply_duration_seconds_bucket[30s]))'; do
  echo "$q"; query "$q"
done
