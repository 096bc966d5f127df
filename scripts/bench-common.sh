# Sourced by the bench-*.sh scripts: set up, build in release mode, and small helpers.
HARNESS=target/release/zetl-harness
# ZETL=path/to/another/zetl compares a build with this one on the same machine.
ZETL="${ZETL:-target/release/zetl}"
./scripts/setup.sh
cargo build --release --locked -p zetl -p zetl-testkit 2>&1 | tail -n 1
now() { date +%s.%N; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
