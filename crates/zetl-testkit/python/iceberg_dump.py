"""Reads Iceberg tables through a real reader, position deletes applied, and writes each as a
Parquet file for the whole-table comparison.

    iceberg_dump.py READER CATALOG CATALOG_NAME OUT_DIR schema.table...

CATALOG is the SQLite catalog file or a postgres://user:password@host:port/db URL.

READER is one of
  pyiceberg  pyiceberg's SqlCatalog on zetl's catalog file;
  duckdb     DuckDB's iceberg extension (`iceberg_scan` of the table's current metadata file,
             found in the same catalog), from the PyPI packages of DuckDB and its extensions;
  spark      Spark with the Iceberg runtime, through Iceberg's JdbcCatalog on the same catalog
             (jars prepared by scripts/setup-spark.sh in .tools/spark).

A warehouse on an S3-compatible server is reached at ZETL_S3_ENDPOINT (http://host:port) with
the keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (pyiceberg's and DuckDB's readers).

Values are written as the reader returns them, except UUIDs that pyiceberg returns as fixed
16-byte binary, written as their text so that DuckDB reads them as the source prints them.
Each table's row count goes to stdout as `schema.table rows`.
"""
import glob
import os
import shutil
import sqlite3
import sys
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def as_text_uuids(table):
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        t = field.type
        is_uuid = (pa.types.is_fixed_size_binary(t) and t.byte_width == 16) or str(t) in ("uuid", "extension<arrow.uuid>")
        if is_uuid:
            column = table.column(i).to_pylist()
            text = pa.array([None if v is None else str(uuid.UUID(bytes=bytes(v) if not isinstance(v, uuid.UUID) else v.bytes)) for v in column], pa.string())
            table = table.set_column(i, pa.field(field.name, pa.string()), text)
    return table


def is_postgres(db):
    return db.startswith(("postgres://", "postgresql://"))


def s3_endpoint():
    """The S3-compatible server's URL and keys, when the warehouse is on one."""
    endpoint = os.environ.get("ZETL_S3_ENDPOINT")
    if not endpoint:
        return None
    return endpoint, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]


def read_pyiceberg(db, name, out, tables):
    import pyarrow.parquet as pq
    from pyiceberg.catalog.sql import SqlCatalog

    uri = "postgresql+psycopg2://" + db.split("://", 1)[1] if is_postgres(db) else f"sqlite:///{db}"
    s3 = s3_endpoint()
    props = {}
    if s3:
        props = {"s3.endpoint": s3[0], "s3.access-key-id": s3[1], "s3.secret-access-key": s3[2], "s3.region": "us-east-1"}
    catalog = SqlCatalog(name, uri=uri, **props)
    for qualified in tables:
        table = as_text_uuids(catalog.load_table(qualified).scan().to_arrow())
        pq.write_table(table, f"{out}/{qualified}.parquet")
        print(qualified, table.num_rows)


def metadata_location(db, name, qualified):
    namespace, table = qualified.split(".", 1)
    query = "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?"
    if is_postgres(db):
        import psycopg2

        with psycopg2.connect(db) as catalog, catalog.cursor() as cursor:
            cursor.execute(query.replace("?", "%s"), (name, namespace, table))
            row = cursor.fetchone()
    else:
        with sqlite3.connect(db) as catalog:
            row = catalog.execute(query, (name, namespace, table)).fetchone()
    if row is None:
        sys.exit(f"{qualified} is not in catalog {name} of {db}")
    return row[0]


def read_duckdb(db, name, out, tables):
    import duckdb
    import duckdb_ext

    con = duckdb.connect()
    extensions = os.path.join(list(duckdb_ext.__path__)[0], "extensions")
    con.execute(f"SET extension_directory = '{extensions}'")
    con.execute("LOAD iceberg")
    s3 = s3_endpoint()
    if s3:
        endpoint, key, secret = s3
        con.execute("LOAD httpfs")
        con.execute(
            f"CREATE SECRET lake (TYPE s3, KEY_ID '{key}', SECRET '{secret}', REGION 'us-east-1', "
            f"ENDPOINT '{endpoint.split('://', 1)[1]}', URL_STYLE 'path', USE_SSL {endpoint.startswith('https')})"
        )
    for qualified in tables:
        scan = f"iceberg_scan('{metadata_location(db, name, qualified)}')"
        con.execute(f"COPY (SELECT * FROM {scan}) TO '{out}/{qualified}.parquet' (FORMAT parquet)")
        print(qualified, con.execute(f"SELECT count(*) FROM {scan}").fetchone()[0])


def read_spark(db, name, out, tables):
    from pyspark.sql import SparkSession

    driver = "/usr/share/java/postgresql.jar" if is_postgres(db) else "/usr/share/java/sqlite-jdbc.jar"
    jars = sorted(glob.glob(os.path.join(ROOT, ".tools", "spark", "*.jar"))) + [driver]
    if len(jars) < 3 or not os.path.exists(driver):
        sys.exit("Spark's Iceberg jars or the JDBC driver are missing: run ./scripts/setup-spark.sh")
    catalog = f"spark.sql.catalog.{name}"
    builder = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.extraClassPath", ":".join(jars))
        .config(catalog, "org.apache.iceberg.spark.SparkCatalog")
        .config(f"{catalog}.catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog")
        .config(f"{catalog}.jdbc.schema-version", "V1")
    )
    if is_postgres(db):
        from urllib.parse import urlsplit

        url = urlsplit(db)
        builder = (
            builder.config(f"{catalog}.uri", f"jdbc:postgresql://{url.hostname}:{url.port or 5432}{url.path}")
            .config(f"{catalog}.jdbc.user", url.username)
            .config(f"{catalog}.jdbc.password", url.password or "")
            .config(f"{catalog}.warehouse", "file:///tmp")
        )
    else:
        builder = builder.config(f"{catalog}.uri", f"jdbc:sqlite:{db}").config(
            f"{catalog}.warehouse", "file://" + os.path.dirname(db)
        )
    spark = (
        builder
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for qualified in tables:
            frame = spark.read.table(f"{name}.{qualified}")
            parts = f"{out}/{qualified}.spark"
            frame.coalesce(1).write.mode("overwrite").parquet(parts)
            (part,) = glob.glob(f"{parts}/part-*.parquet")
            shutil.move(part, f"{out}/{qualified}.parquet")
            print(qualified, frame.count())
    finally:
        spark.stop()


READERS = {"pyiceberg": read_pyiceberg, "duckdb": read_duckdb, "spark": read_spark}


def main() -> None:
    reader, db, name, out = sys.argv[1:5]
    READERS[reader](db, name, out, sys.argv[5:])


if __name__ == "__main__":
    main()
