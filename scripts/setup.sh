#!/usr/bin/env bash
# Installs what building, testing and the quick start need on a fresh machine. Idempotent.
#   - libduckdb.so (prebuilt, from the npm registry) into .tools/duckdb: the DuckDB target links
#     it instead of compiling DuckDB's C++ (over an hour on 2 cores).
#   - the duckdb CLI (PyPI duckdb-cli) to look at the warehouse file, same DuckDB version.
#   - moto's server mode (PyPI) for the DynamoDB tests; pyiceberg and DuckDB's iceberg extension
#     (PyPI) to read Iceberg tables (scripts/setup-spark.sh adds Spark for the tests).
#   - PostgreSQL 15 and MariaDB server binaries, if missing (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."

DUCKDB_VERSION=1.5.6            # must match the duckdb crate (=1.10506.0) in Cargo.toml
DUCKDB_NPM="@duckdb/node-bindings-linux-x64@${DUCKDB_VERSION}-r.1"
TOOLS="$PWD/.tools"

say() { printf 'setup: %s\n' "$*" >&2; }

need_apt=()
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql postgresql-client)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server mariadb-client)
command -v pgbench >/dev/null 2>&1 || need_apt+=(postgresql-contrib)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The Iceberg target's SQL catalog links the system's SQLite.
[ -f /usr/include/sqlite3.h ] || need_apt+=(libsqlite3-dev)
# A real OLTP write workload for the MySQL recovery test and benchmark.
command -v sysbench >/dev/null 2>&1 || need_apt+=(sysbench)
# Network fault tests: network namespaces, veth pairs and tc.
{ command -v ip && command -v tc; } >/dev/null 2>&1 || need_apt+=(iproute2)
# Random packet loss in the network-fault tests (this kernel has no netem).
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
# A shifted clock for zetl in the clock-skew tests (libfaketime).
[ -f /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || need_apt+=(libfaketime)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -f "$TOOLS/duckdb/libduckdb.so" ] || [ "$(cat "$TOOLS/duckdb/VERSION" 2>/dev/null)" != "$DUCKDB_VERSION" ]; then
  say "fetching libduckdb $DUCKDB_VERSION"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$DUCKDB_NPM" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$TOOLS/duckdb"
  cp "$tmp/package/libduckdb.so" "$TOOLS/duckdb/"
  echo "$DUCKDB_VERSION" > "$TOOLS/duckdb/VERSION"
  rm -rf "$tmp"
fi

pip_missing=()
python3 -c 'import moto.server, flask' >/dev/null 2>&1 || pip_missing+=("moto[server]")
command -v duckdb >/dev/null 2>&1 || pip_missing+=("duckdb-cli==${DUCKDB_VERSION}")
# A real Iceberg reader for the Iceberg target's tests.
python3 -c 'import pyiceberg.catalog.sql, pyarrow, sqlalchemy' >/dev/null 2>&1 || pip_missing+=("pyiceberg[sql-sqlite,pyarrow]==0.12.*")
# pyiceberg on a PostgreSQL catalog (SQLAlchemy's psycopg2 driver).
python3 -c 'import psycopg2' >/dev/null 2>&1 || pip_missing+=("psycopg2-binary==2.9.*")
# DuckDB's iceberg reader (httpfs for a warehouse on S3): the extension packages must match the
# Python duckdb version exactly.
DUCKDB_READER=1.4.4
python3 -c "import duckdb, duckdb_ext; assert duckdb.__version__ == '$DUCKDB_READER'" >/dev/null 2>&1 \
  && [ -f "$(python3 -c 'import duckdb_ext; print(list(duckdb_ext.__path__)[0])')/extensions/v$DUCKDB_READER/linux_amd64/httpfs.duckdb_extension" ] \
  || pip_missing+=("duckdb==$DUCKDB_READER" "duckdb-ext-iceberg==$DUCKDB_READER.20260205" "duckdb-ext-avro==$DUCKDB_READER.20260205" \
       "duckdb-ext-httpfs==$DUCKDB_READER.20260205")
if [ ${#pip_missing[@]} -gt 0 ]; then
  say "pip installing ${pip_missing[*]}"
  python3 -m pip install -q --disable-pip-version-check "${pip_missing[@]}"
fi
say "ready"
