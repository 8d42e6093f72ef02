# Shared set-up for scripts/*.sh: installs the system packages pgsalvage needs when missing.
# Sourced, not run.

need_packages() {
  local missing=()
  command -v pg_config >/dev/null 2>&1 || missing+=(postgresql-common)
  local bindir
  bindir=$(pg_config --bindir 2>/dev/null || true)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql postgresql-contrib)
  fi
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  echo "${missing[@]:-}"
}

ensure_system_packages() {
  local missing
  missing=$(need_packages)
  if [ -n "$missing" ]; then
    echo "installing: $missing" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing postgresql postgresql-contrib >/dev/null
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust (rustup) first" >&2
    exit 2
  fi
}

ensure_python_readers() {
  if ! python3 -c 'import pyarrow, duckdb' >/dev/null 2>&1; then
    echo "installing pyarrow and duckdb (independent Parquet readers for the tests)" >&2
    python3 -m pip install --quiet --disable-pip-version-check pyarrow duckdb
  fi
}
