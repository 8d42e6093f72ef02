#!/usr/bin/env bash
# Runs the whole pgsalvage test suite on a fresh machine: installs what is missing (PostgreSQL
# server, OpenSSL headers, the Rust toolchain's components), then `cargo test`. The integration
# tests start their own throwaway PostgreSQL clusters; none is skipped for lack of a server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_system_packages
export RUST_BACKTRACE=1
cargo test --locked --all-targets "$@"
