#!/usr/bin/env bash
# Runs the whole pgsalvage test suite on a fresh machine: installs what is missing (PostgreSQL
# server, OpenSSL headers, Chromium for the HTML report tests, pyarrow and DuckDB in a virtualenv
# for the independent Parquet check; never pip into the system's python), fetches server
# builds of the other PostgreSQL majors (13, 14, 16, 17, 18; scripts/pg_majors.sh, cached outside
# the repository) for the cross-version tests, then `cargo test`, then reads the Parquet files the
# tests exported with pyarrow and DuckDB. The integration tests start their own throwaway
# PostgreSQL clusters; none is skipped for lack of a server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/pg_majors.sh
ensure_system_packages
ensure_python_readers
ensure_pg_majors
export RUST_BACKTRACE=1
export PGSALVAGE_PARQUET_EXPORT
PGSALVAGE_PARQUET_EXPORT=$(mktemp -d /tmp/pgsalvage-parquet.XXXXXX)
trap 'rm -rf "$PGSALVAGE_PARQUET_EXPORT"' EXIT
cargo test --locked --all-targets "$@"
echo "== independent Parquet readers (pyarrow, DuckDB)"
"$PGSALVAGE_PYTHON" scripts/check_parquet.py "$PGSALVAGE_PARQUET_EXPORT/every_kind.parquet" "$PGSALVAGE_PARQUET_EXPORT/every_kind.expected.json"
"$PGSALVAGE_PYTHON" scripts/check_parquet.py "$PGSALVAGE_PARQUET_EXPORT/pg_types.parquet" tests/fixtures/pg_types.expected.json
