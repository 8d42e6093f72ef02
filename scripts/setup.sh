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
  # The HTML report tests look at the pages in a real headless browser.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
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

# pyarrow and DuckDB, the independent Parquet readers of the tests, and kubernetes-validate, which
# checks deploy/kubernetes/*.yaml against the Kubernetes schemas (its PyYAML also reads them for
# the test that runs the Indexed Job as local processes). Never `pip install` into the system's
# python (Debian marks it externally managed and refuses): the system python is used when it
# already has all three, otherwise a virtualenv kept outside the repository ($PGSALVAGE_VENV,
# default ~/.cache/pgsalvage/venv). Exports PGSALVAGE_PYTHON, the interpreter, for cargo test.
ensure_python_readers() {
  local venv="${PGSALVAGE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pgsalvage/venv}"
  local modules='import pyarrow, duckdb, kubernetes_validate'
  if python3 -c "$modules" >/dev/null 2>&1; then
    export PGSALVAGE_PYTHON=python3
    return
  fi
  if "$venv/bin/python" -c "$modules" >/dev/null 2>&1; then
    export PGSALVAGE_PYTHON="$venv/bin/python"
    return
  fi
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "installing: python3-venv" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
  fi
  echo "installing pyarrow, duckdb and kubernetes-validate into $venv (independent Parquet readers and the manifest check for the tests)" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check pyarrow duckdb kubernetes-validate==1.37.0
  export PGSALVAGE_PYTHON="$venv/bin/python"
}
