//! DuckDB target.
