# Sourced by the bench-*.sh scripts: set up, build in release mode, and small helpers.
HARNESS=target/release/zetl-harness
# ZETL=path/to/another/zetl compares a build with this one on the same machine.
ZETL="${ZETL:-target/release/zetl}"
./scripts/setup.sh
cargo build --release --locked -p zetl -p zetl-testkit 2>&1 | tail -n 1
now() { date +%s.%N; }
# CPU seconds so far of the walsender of the harness cluster in data directory $1 (its own
# postmaster's child, not another cluster's), or null when it has none.
walsender_cpu() {
  local ws
  ws=$(pgrep -P "$(head -n 1 "$1/postmaster.pid" 2>/dev/null)" -f walsender 2>/dev/null | head -n 1 || true)
  [ -n "$ws" ] && awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$ws/stat" 2>/dev/null || echo null
}
num() { awk -v x="$1" 'BEGIN { printf "%.3f", x }'; }  # bc writes .5 for 0.5: not JSON
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
# The head of a figures file: when, which commit and build, on what machine and source server
# (JSON members). `figures_head mariadb "$version"` names another server than PostgreSQL.
figures_head() {
  local server="${1:-postgres}" version="${2:-$(postgres --version 2>/dev/null | awk '{ print $3 }')}"
  cat <<JSON
  "when": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)",
  "zetl": "$ZETL",
  "machine": {"cores": $(nproc), "ram_gib": $(free -g | awk '/Mem/ { print $2 }'), "$server": "$version"},
JSON
}
