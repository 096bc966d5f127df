# zetl in a container: build with the prebuilt libduckdb.so (see docs/architecture.md,
# "DuckDB library"), run on a slim Debian with the library beside the binary.

# --- libduckdb.so, from the npm registry package that ships it -------------------------------
# Must match the duckdb crate (=1.10506.0, DuckDB 1.5.6) pinned in Cargo.toml and setup.sh.
FROM node:22-bookworm-slim AS libduckdb
ARG DUCKDB_NPM=@duckdb/node-bindings-linux-x64@1.5.6-r.1
WORKDIR /fetch
RUN npm pack --silent "$DUCKDB_NPM" >/dev/null \
 && tar xzf ./*.tgz \
 && test -f package/libduckdb.so

# --- build -----------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# .cargo/config.toml points DUCKDB_LIB_DIR at .tools/duckdb and adds the $ORIGIN rpath.
COPY --from=libduckdb /fetch/package/libduckdb.so .tools/duckdb/libduckdb.so
RUN cargo build --release --locked -p zetl \
 && cp target/release/zetl /usr/local/bin/zetl

# --- runtime ---------------------------------------------------------------------------------
FROM debian:bookworm-slim
# libduckdb.so needs libstdc++ (already in the slim image, which apt depends on).
RUN useradd --system --uid 10001 --home-dir /var/lib/zetl --create-home zetl
# The binary's rpath includes $ORIGIN, so libduckdb.so is found beside it.
COPY --from=build /usr/local/bin/zetl /usr/local/bin/zetl
COPY --from=libduckdb /fetch/package/libduckdb.so /usr/local/bin/libduckdb.so
USER zetl
WORKDIR /var/lib/zetl
# The warehouse file lives here; mount a volume to keep it.
VOLUME /var/lib/zetl
# SIGTERM makes zetl stop at the next transaction boundary after committing what it holds.
STOPSIGNAL SIGTERM
CMD ["zetl", "run", "-c", "/etc/zetl/zetl.yaml"]
