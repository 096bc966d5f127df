#!/usr/bin/env bash
# Installs what the Spark reader test of the Iceberg target needs (the test run calls it; the
# quick start does not). Idempotent.
#   - Java 17 and SQLite's JDBC driver (Debian), Spark 3.5 (PyPI pyspark);
#   - the Iceberg Spark runtime jar, taken from PyPI's snowpark-connect-deps-iceberg into
#     .tools/spark. That jar refers to Jackson under Iceberg's shaded package but lacks those
#     classes: they are made here from the Jackson jars pyspark ships, by
#     crates/zetl-testkit/python/relocate_jackson.py. Nothing of this is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

ICEBERG_DEPS="snowpark-connect-deps-iceberg==1.0.3"
RUNTIME_JAR="iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
SPARK="$PWD/.tools/spark"

say() { printf 'setup-spark: %s\n' "$*" >&2; }

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
[ -f /usr/share/java/sqlite-jdbc.jar ] || need_apt+=(libxerial-sqlite-jdbc-java)
[ -f /usr/share/java/postgresql.jar ] || need_apt+=(libpostgresql-jdbc-java)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import pyspark; assert pyspark.__version__.startswith("3.5.")' >/dev/null 2>&1; then
  say "pip installing pyspark 3.5"
  python3 -m pip install -q --disable-pip-version-check "pyspark==3.5.*"
fi

if [ ! -f "$SPARK/$RUNTIME_JAR" ] || [ ! -f "$SPARK/iceberg-jackson.jar" ]; then
  say "preparing the Iceberg runtime for Spark"
  tmp="$(mktemp -d)"
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "$ICEBERG_DEPS"
  mkdir -p "$SPARK"
  python3 - "$tmp"/*.whl "$RUNTIME_JAR" "$SPARK" <<'EOF'
import sys, zipfile
wheel, jar, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as w, open(f"{out}/{jar}", "wb") as f:
    f.write(w.read(f"snowpark_connect_deps_iceberg/jars/{jar}"))
EOF
  jars="$(python3 -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
  python3 crates/zetl-testkit/python/relocate_jackson.py "$SPARK/iceberg-jackson.jar" \
    "$jars"/jackson-core-2*.jar "$jars"/jackson-databind-2*.jar "$jars"/jackson-annotations-2*.jar >/dev/null
  rm -rf "$tmp"
fi
say "ready"
