#!/usr/bin/env bash
# Keyless tables: `pgsalvage verify` of a table without a key (compared as a multiset of rows)
# against the raw COPY of the same table from both sources at once.
#
#   scripts/bench_keyless.sh                  # ROWS=10000000 (the issue's size)
#   ROWS=1000000 REPEAT=1 scripts/bench_keyless.sh
#
# One throwaway cluster, two databases (base and a copy damaged at DAMAGE, default 0.001: a
# third of those rows deleted, a third duplicated, a third changed; ORDER=shuffled rewrites the
# target's table in random order, the worst case for verify's matching). Measured after a warm-up
# read, REPEAT times (default 3), each pair side by side:
#   raw COPY   `COPY log TO STDOUT (FORMAT binary)` of both databases at once, to /dev/null
#   pgsalvage  verify --jobs 2: wall time and peak RSS (GNU time)
# Targets (issue 20): median ratio pgsalvage / raw COPY <= 1.5, peak RSS <= 256 MB; each prints
# "met" or "MISSED", and a miss makes the script exit 3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_system_packages
[ -x /usr/bin/time ] || { apt-get install -y -qq time >/dev/null; }
ROWS=${ROWS:-10000000}
DAMAGE=${DAMAGE:-0.001}
REPEAT=${REPEAT:-3}
cargo build --locked --release --bin pgsalvage 2>&1 | tail -1
BIN=$PWD/target/release/pgsalvage
BINDIR=${PGSALVAGE_PG_BINDIR:-$(pg_config --bindir)}
WORK=$(mktemp -d /tmp/pgsalvage-keyless.XXXXXX)
chmod 755 "$WORK"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$BINDIR/initdb" -D "$WORK/d" -U postgres --locale=C -E UTF8 --auth=trust -N >/dev/null
as_pg "$BINDIR/pg_ctl" -D "$WORK/d" -l "$WORK/log" -w -o "-p $port -k $WORK -c listen_addresses=127.0.0.1 \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=512MB -c max_wal_size=4GB" \
  start >/dev/null
trap 'as_pg "$BINDIR/pg_ctl" -D "$WORK/d" -m immediate stop >/dev/null; rm -rf "$WORK"' EXIT
P="psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $port -U postgres"
echo "== filling a keyless table of $ROWS rows (damage $DAMAGE)"
$P -d postgres -c "CREATE DATABASE b"
$P -d b -c "CREATE TABLE log (at timestamptz NOT NULL, level text, msg text, n int);
  INSERT INTO log SELECT timestamptz '2024-01-01 00:00:00+00' + (g / 3) * interval '1 second',
         (ARRAY['info','warn','error'])[1 + g % 3], 'event ' || (g % 100000), g % 1000
    FROM generate_series(1, $ROWS) g;"
$P -d b -c "VACUUM ANALYZE log" -c "CHECKPOINT"
$P -d postgres -c "CREATE DATABASE t TEMPLATE b"
third=$(python3 -c "print(max(1, int($ROWS * $DAMAGE / 3)))")
$P -d t -c "DELETE FROM log WHERE ctid IN (SELECT ctid FROM log TABLESAMPLE SYSTEM (1) LIMIT $third);
  INSERT INTO log SELECT * FROM log TABLESAMPLE SYSTEM (1) LIMIT $third;
  UPDATE log SET n = -1 WHERE ctid IN (SELECT ctid FROM log TABLESAMPLE SYSTEM (1) LIMIT $third);"
if [ "${ORDER:-same}" = shuffled ]; then
  # The worst case for matching as the sources stream: no two copies meet in the window.
  $P -d t -c "CREATE TABLE tmp AS SELECT * FROM log ORDER BY random()" -c "TRUNCATE log" \
    -c "INSERT INTO log SELECT * FROM tmp" -c "DROP TABLE tmp"
fi
$P -d t -c "VACUUM ANALYZE log" -c "CHECKPOINT"
B=postgresql://postgres@127.0.0.1:$port/b T=postgresql://postgres@127.0.0.1:$port/t
raw_copy() {
  $P -d b -c "COPY log TO STDOUT (FORMAT binary)" >/dev/null &
  $P -d t -c "COPY log TO STDOUT (FORMAT binary)" >/dev/null
  wait
}
raw_copy # warm-up
copies=() ours=() peak=0
for i in $(seq "$REPEAT"); do
  start=$(date +%s.%N); raw_copy; end=$(date +%s.%N)
  copies+=("$(python3 -c "print($end - $start)")")
  rc=0
  /usr/bin/time -o "$WORK/time" -f "%e %M" "$BIN" verify --base "$B" --target "$T" --jobs 2 -q \
    --json "$WORK/r.json" >/dev/null 2>"$WORK/err" || rc=$?
  [ "$rc" = 1 ] || { echo "verify exited $rc, wanted 1"; cat "$WORK/err"; exit 2; }
  read -r secs kb < <(tail -1 "$WORK/time")
  ours+=("$secs"); [ "$kb" -gt "$peak" ] && peak=$kb
  printf 'run %d: raw COPY %.2f s, verify %.2f s (%d MB)\n' "$i" "${copies[-1]}" "$secs" $((kb / 1024))
done
python3 - "$WORK/r.json" <<'PY'
import json, sys
t = [t for t in json.load(open(sys.argv[1]))["tables"] if t["table"] == "public.log"][0]
print(f"found: keyless={t['keyless']} missing {t['missing']} extra {t['extra']} copies; rows {t['rows']}")
PY
ratio=$(python3 -c 'import statistics, sys; v=[float(x) for x in sys.argv[1:]]; h=len(v)//2; print(statistics.median(b/a for a, b in zip(v[:h], v[h:])))' "${copies[@]}" "${ours[@]}")
status=0
verdict() { python3 -c 'import sys; print("met" if float(sys.argv[1]) <= float(sys.argv[2]) else "MISSED")' "$1" "$2"; }
v=$(verdict "$ratio" 1.5); [ "$v" = met ] || status=3
printf '%-7s keyless verify / raw COPY (median of %d): %.2f (limit 1.5)\n' "$v" "$REPEAT" "$ratio"
v=$(verdict $((peak / 1024)) 256); [ "$v" = met ] || status=3
printf '%-7s keyless verify peak RSS: %d MB (limit 256)\n' "$v" $((peak / 1024))
exit $status
