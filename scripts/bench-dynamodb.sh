#!/usr/bin/env bash
# Benchmark DynamoDB → DuckDB against moto's server on this machine; prints figures (and writes
# them as JSON to .zetl-run/bench-dynamodb/figures.json), asserts nothing.
#   ./scripts/bench-dynamodb.sh                      a 10k-item seed, then a 5k-change backlog
#   ITEMS=10000 CHANGES=5000 ./scripts/bench-dynamodb.sh
# moto is a single-threaded Python server: it bounds every figure here. The ceilings beside
# zetl's are boto3 reading the same server (a paginated Scan, the stream from its oldest record).
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS="${ITEMS:-10000}"
CHANGES="${CHANGES:-5000}"
SEGMENTS="${SEGMENTS:-4}"
RUN_DIR="$PWD/.zetl-run/bench-dynamodb"
METRICS_PORT="${METRICS_PORT:-19189}"

. scripts/bench-common.sh
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
eval "$("$HARNESS" moto start "$RUN_DIR/moto")"
ZETL_PID=
cleanup() {
  [ -n "$ZETL_PID" ] && kill -TERM "$ZETL_PID" 2>/dev/null && wait "$ZETL_PID" 2>/dev/null || true
  "$HARNESS" moto stop "$RUN_DIR/moto"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
driver() { python3 crates/zetl-testkit/python/dynamo.py "$ZETL_MOTO_URL" "$@"; }
applied() {
  curl -s "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null |
    awk '/^zetl_changes_applied_total/ && /table="dynamodb.bench"/ { s += $2 } END { printf "%d", s }'
}
cat > "$RUN_DIR/zetl.yaml" <<YAML
integrations:
  - name: bench
    source: { kind: dynamodb, region: us-east-1, endpoint_url: "$ZETL_MOTO_URL", scan: { segments: $SEGMENTS } }
    target: { kind: duckdb, path: "$RUN_DIR/bench.duckdb" }
    tables: { include: ["bench"] }
    metrics: { listen: "127.0.0.1:$METRICS_PORT" }
YAML
start_zetl() { "$ZETL" run -c "$RUN_DIR/zetl.yaml" 2>>"$RUN_DIR/zetl.log" & ZETL_PID=$!; }
stop_zetl() {
  LAST_RSS_KB=$(awk '/VmHWM/ { print $2 }' "/proc/$ZETL_PID/status" 2>/dev/null || echo 0)
  kill -TERM "$ZETL_PID"; wait "$ZETL_PID" || true; ZETL_PID=
}
wait_applied() { until [ "$(applied)" -ge "$1" ]; do sleep 0.2; done; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ { print $2 }') GiB; moto $(python3 -c 'import moto; print(moto.__version__)')"
driver create bench
t0=$(now); driver load bench 0 "$ITEMS" 0; t1=$(now)
echo "load      $ITEMS items (13 attributes of every type) written by boto3 BatchWriteItem: $(rate "$ITEMS" "$(echo "$t1 - $t0" | bc)") items/s"
t0=$(now); driver dump bench >/dev/null; t1=$(now)
scan_rate=$(rate "$ITEMS" "$(echo "$t1 - $t0" | bc)")

t0=$(now); start_zetl
until grep -q "initial copy committed at the target" "$RUN_DIR/zetl.log"; do sleep 0.05; done
t1=$(now); seed_s=$(echo "$t1 - $t0" | bc)
echo "seed      $ITEMS items, $SEGMENTS segments: zetl $(rate "$ITEMS" "$seed_s") items/s (${seed_s} s incl. start-up)   ceiling boto3 Scan: $scan_rate items/s"
# After the seed the stream is read from its oldest record (the load's inserts): let it drain.
wait_applied "$ITEMS"
stop_zetl; seed_rss_kb=$LAST_RSS_KB

# Backlog: whole-item rewrites while zetl is stopped, then applied from a standing start.
driver load bench 0 "$CHANGES" 1
t0=$(now); records=$(driver read-stream bench); t1=$(now)
read_rate=$(rate "$records" "$(echo "$t1 - $t0" | bc)")
t0=$(now); start_zetl; wait_applied "$CHANGES"; t1=$(now)
backlog_s=$(echo "$t1 - $t0" | bc)
stop_zetl
echo "stream    $CHANGES changes behind: zetl $(rate "$CHANGES" "$backlog_s") changes/s (${backlog_s} s incl. start-up)   ceiling boto3 GetRecords: $read_rate records/s"
echo "peak RSS  seed $((seed_rss_kb / 1024)) MiB, stream $((LAST_RSS_KB / 1024)) MiB"

cat >"$RUN_DIR/figures.json" <<JSON
{
$(figures_head moto "$(python3 -c 'import moto; print(moto.__version__)')")
  "seed": {"items": $ITEMS, "segments": $SEGMENTS, "seconds": $(num "$seed_s"), "items_per_s": $(rate "$ITEMS" "$seed_s"), "ceiling_scan_items_per_s": $scan_rate},
  "backlog": {"changes": $CHANGES, "seconds": $(num "$backlog_s"), "changes_per_s": $(rate "$CHANGES" "$backlog_s"), "ceiling_get_records_per_s": $read_rate},
  "peak_rss_mib": {"seed": $((seed_rss_kb / 1024)), "stream": $((LAST_RSS_KB / 1024))}
}
JSON
echo "figures: $RUN_DIR/figures.json"
