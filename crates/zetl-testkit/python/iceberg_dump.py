"""Reads Iceberg tables through pyiceberg (its SqlCatalog on zetl's catalog file), position
deletes applied, and writes each as a Parquet file for the whole-table comparison.

    iceberg_dump.py CATALOG_DB CATALOG_NAME OUT_DIR schema.table...

Values are written as pyiceberg returns them, except UUIDs (fixed 16-byte binary), written as
their text so that DuckDB reads them as the source prints them. Each table's row count goes to
stdout as `schema.table rows`.
"""
import sys
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog


def as_text_uuids(table: pa.Table) -> pa.Table:
    for i, field in enumerate(table.schema):
        t = field.type
        is_uuid = (pa.types.is_fixed_size_binary(t) and t.byte_width == 16) or str(t) in ("uuid", "extension<arrow.uuid>")
        if is_uuid:
            column = table.column(i).to_pylist()
            text = pa.array([None if v is None else str(uuid.UUID(bytes=bytes(v) if not isinstance(v, uuid.UUID) else v.bytes)) for v in column], pa.string())
            table = table.set_column(i, pa.field(field.name, pa.string()), text)
    return table


def main() -> None:
    db, name, out = sys.argv[1:4]
    catalog = SqlCatalog(name, uri=f"sqlite:///{db}")
    for qualified in sys.argv[4:]:
        table = catalog.load_table(qualified).scan().to_arrow()
        table = as_text_uuids(table)
        pq.write_table(table, f"{out}/{qualified}.parquet")
        print(qualified, table.num_rows)


if __name__ == "__main__":
    main()
