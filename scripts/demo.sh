#!/usr/bin/env bash
# The main job on an embedded default: builds pgsalvage, installs PostgreSQL if missing,
# starts a throwaway local cluster with a damaged-migration scenario and runs `pgsalvage verify`
# on it. Extra arguments go to `pgsalvage demo` (e.g. --rows 200000 --json report.json).
# It builds the same profile as scripts/test.sh (dev, optimized: see Cargo.toml), so the demo and
# the tests share one build; PGSALVAGE_PROFILE=release builds the release binary instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_system_packages
profile="${PGSALVAGE_PROFILE:-dev}"
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
cargo build --locked --profile "$profile" --bin pgsalvage
status=0
"./target/$dir/pgsalvage" demo "$@" || status=$?
echo
echo "pgsalvage exited with $status (0 identical, 1 differences found, 2 error or incomplete)"
# Differences are the expected outcome of the demo.
[ "$status" -le 1 ]
