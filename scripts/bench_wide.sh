#!/usr/bin/env bash
# Peak memory with large values: one bytea of MB MiB (default 50; the issue's second size is 500)
# among 1000 small rows, on two databases of one throwaway cluster. The target loses the large
# row and two small ones are damaged; then verify, recover, apply, verify again (the large value on
# both sides now) and baseline run under GNU time.
#
#   scripts/bench_wide.sh            # MB=50
#   MB=500 scripts/bench_wide.sh
#
# Target (issue 19): every command's peak RSS <= 2 x the largest value + 64 MiB (batches,
# buffers, runtime). Prints "met" or "MISSED" per command and exits 3 on any miss.
# PostgreSQL's text COPY (used by apply) cannot carry a bytea over ~512 MB (hex doubles it past
# the 1 GB allocation limit), so MB stays <= 500.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_system_packages
[ -x /usr/bin/time ] || { apt-get install -y -qq time >/dev/null; }
MB=${MB:-50}
cargo build --locked --release --bin pgsalvage 2>&1 | tail -1
BIN=$PWD/target/release/pgsalvage
BINDIR=${PGSALVAGE_PG_BINDIR:-$(pg_config --bindir)}
WORK=$(mktemp -d /tmp/pgsalvage-wide.XXXXXX)
chmod 755 "$WORK"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$BINDIR/initdb" -D "$WORK/d" -U postgres --auth=trust -N >/dev/null
as_pg "$BINDIR/pg_ctl" -D "$WORK/d" -l "$WORK/log" -w \
  -o "-p $port -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
trap 'as_pg "$BINDIR/pg_ctl" -D "$WORK/d" -m immediate stop >/dev/null; rm -rf "$WORK"' EXIT
P="psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $port -U postgres"
$P -d postgres -c "CREATE DATABASE b"
$P -d b -c "CREATE TABLE wide (id int PRIMARY KEY, v bytea);
  INSERT INTO wide SELECT g, convert_to(repeat(md5(g::text), 100), 'UTF8') FROM generate_series(1, 1000) g;
  INSERT INTO wide VALUES (0, (SELECT string_agg(decode(md5(g::text), 'hex'), '')
                               FROM generate_series(1, $MB * 65536) g));"
$P -d postgres -c "CREATE DATABASE t TEMPLATE b"
$P -d t -c "DELETE FROM wide WHERE id IN (0, 5); UPDATE wide SET v = 'x' WHERE id = 7"
B=postgresql://postgres@127.0.0.1:$port/b T=postgresql://postgres@127.0.0.1:$port/t
LIMIT_KB=$(( (2 * MB + 64) * 1024 ))
status=0
measure() { # name, want exit codes, command...
  local name=$1 want=$2 rc=0; shift 2
  /usr/bin/time -o "$WORK/time" -f "%e %M" "$@" >/dev/null 2>"$WORK/err" || rc=$?
  if ! grep -qw "$rc" <<<"$want"; then
    echo "$name: exit $rc, wanted $want"; cat "$WORK/err"; exit 2
  fi
  read -r secs kb < <(tail -1 "$WORK/time")
  local verdict=met
  [ "$kb" -le "$LIMIT_KB" ] || { verdict=MISSED; status=3; }
  printf '%-7s %-13s %6.2f s  peak RSS %5d MB (limit %d MB)\n' "$verdict" "$name" "$secs" \
    $((kb / 1024)) $((LIMIT_KB / 1024))
}
echo "== one ${MB} MiB bytea among 1000 rows"
measure verify 1 "$BIN" verify --base "$B" --target "$T" -q
measure recover 1 "$BIN" recover --base "$B" --target "$T" --out "$WORK/r" -q
measure apply 0 "$BIN" apply "$WORK/r" --target "$T" -q
measure verify-after 0 "$BIN" verify --base "$B" --target "$T" -q
measure baseline 0 "$BIN" baseline --source "$B" --out "$WORK/bl" -q
exit $status
