#!/usr/bin/env bash
# End-to-end benchmark of `pgsalvage verify` against the raw COPY speed of the same data.
#
#   scripts/bench.sh                 # 1e6 rows, --jobs 2
#   ROWS=10000000 scripts/bench.sh   # 1e7 rows
#   JOBS=4 DAMAGE=0.001 scripts/bench.sh
#   KEEP=1 scripts/bench.sh          # leave the clusters running for profiling
#   THREE_WAY=1 scripts/bench.sh     # a third cluster as --replica (three-way verify)
#   ROWS=2000000 RESTORE="100000 1000000" scripts/bench.sh   # restore sizes for recover/apply
#   RESTORE=0 BASELINE_ONLY=1 scripts/bench.sh  # only the baseline section (below)
#   PEERS=1 scripts/bench.sh         # also time reladiff (data-diff's maintained fork, from PyPI)
#   PG_BASE=13 PG_TARGET=18 scripts/bench.sh  # across majors (PG_REPLICA too): each cluster of that
#                                    # major, 13 to 18, the system's by default; the other majors
#                                    # are the server builds scripts/pg_majors.sh fetches
#
# Builds two throwaway clusters (base and target) on loopback, fills one table of ROWS rows of 13
# mixed columns on both, damages ~DAMAGE of the target's rows (a third deleted, a third updated, a
# third inserted), then measures, after a warm-up read of both:
#   raw COPY   JOBS concurrent psql per source, both sources at once, each streaming its slice with
#              the query shape pgsalvage uses: COPY (SELECT * ... WHERE key range ORDER BY key)
#              TO STDOUT (FORMAT binary) > /dev/null
#   seq COPY   one plain `COPY t TO STDOUT (FORMAT binary)` per source, both at once (reference)
#   pgsalvage  verify --jobs JOBS, wall time and peak RSS (GNU time)
# and prints a table with rows/s, MB/s and the ratio pgsalvage / raw COPY. Then the baseline
# section: taking a baseline of the base (with and without --rows) against the raw COPY of that
# one source, the sizes per 1e6 rows, and the time to compare a baseline with the unchanged
# database and with a baseline of the damaged target. Nothing is left behind.
#
# The issues' targets are judged at the end, each by the median of the ratios of runs taken next
# to each other (a lone lucky run of either side says little on a shared 2-core machine):
# at ROWS >= 1e7 verify <= 1.3 x raw COPY, baseline <= 1.3 x raw COPY and two baselines compared
# in under a second; for 1e5 restored rows and more apply <= 2 x a plain COPY of them. Each
# prints "met" or "MISSED"; any miss makes the script exit 3, so the benchmark fails when the
# code falls short.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_system_packages
[ -x /usr/bin/time ] || { apt-get install -y -qq time >/dev/null; }

ROWS=${ROWS:-1000000}
JOBS=${JOBS:-2}
DAMAGE=${DAMAGE:-0.001}
REPEAT=${REPEAT:-3}
RESTORE=${RESTORE:-100000}

cargo build --locked --release --bin pgsalvage 2>&1 | tail -1
BIN=$PWD/target/release/pgsalvage
BINDIR=${PGSALVAGE_PG_BINDIR:-$(pg_config --bindir)}
[ -x "$BINDIR/initdb" ] || BINDIR=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
SYSTEM_MAJOR=$("$BINDIR/postgres" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
if [ -n "${PG_BASE:-}${PG_TARGET:-}${PG_REPLICA:-}" ]; then
  source scripts/pg_majors.sh
  ensure_pg_majors >/dev/null
fi
# The server binaries of a major (empty: the system's).
bindir_of() {
  local major=$1 var
  if [ -z "$major" ] || [ "$major" = "$SYSTEM_MAJOR" ]; then echo "$BINDIR"; return; fi
  var="PGSALVAGE_PG${major}_BINDIR"
  if [ -z "${!var:-}" ]; then
    echo "error: no PostgreSQL $major (the system's is $SYSTEM_MAJOR; scripts/pg_majors.sh has ${PG_MAJOR_VERSIONS[*]%%.*})" >&2
    exit 2
  fi
  echo "${!var}"
}
declare -A BINDIR_OF=([base]=$(bindir_of "${PG_BASE:-}") [target]=$(bindir_of "${PG_TARGET:-}")
                      [replica]=$(bindir_of "${PG_REPLICA:-}"))
for name in base target replica; do [ -n "${BINDIR_OF[$name]}" ] || exit 2; done

WORK=$(mktemp -d /tmp/pgsalvage-bench.XXXXXX)
chmod 755 "$WORK"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"

BASE_URL="" TARGET_URL=""
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo "kept: $BASE_URL $TARGET_URL (stop: pg_ctl -D $WORK/base stop; pg_ctl -D $WORK/target stop)"
    return
  fi
  for name in base target replica; do
    [ -d "$WORK/$name" ] && as_pg "${BINDIR_OF[$name]}/pg_ctl" -D "$WORK/$name" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
TARGETS=$WORK/targets.txt
# One verdict line per target: name, measured value, limit (all numbers).
target() { # name, value, limit
  local verdict
  verdict=$(python3 -c 'import sys; print("met" if float(sys.argv[1]) <= float(sys.argv[2]) else "MISSED")' "$2" "$3")
  printf '%-7s %s: %.2f (limit %s)\n' "$verdict" "$1" "$2" "$3" >>"$TARGETS"
}
median_ratio() { python3 -c 'import statistics, sys; v = [float(x) for x in sys.argv[1:]]; h = len(v) // 2; print(statistics.median(b / a for a, b in zip(v[:h], v[h:])))' "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_cluster() { # name
  local dir=$WORK/$1 bindir=${BINDIR_OF[$1]} port
  port=$(free_port)
  as_pg "$bindir/initdb" -D "$dir" -U postgres --locale=C -E UTF8 --auth=trust -N >/dev/null
  as_pg "$bindir/pg_ctl" -D "$dir" -l "$dir.log" -w -o "-p $port -k $WORK -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=512MB \
    -c max_wal_size=4GB -c checkpoint_timeout=30min -c max_connections=50" start >/dev/null
  echo "$port"
}

psql_on() { # port, args...
  local port=$1; shift
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d bench "$@"
}

FILL="
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id integer NOT NULL, status text NOT NULL, total numeric(12,2) NOT NULL,
  placed_at timestamptz NOT NULL, note text, gift boolean, ratio double precision, ref uuid NOT NULL,
  attrs jsonb, qty smallint NOT NULL, day date NOT NULL, code varchar(16) NOT NULL);
INSERT INTO orders
SELECT g, (g * 7919) % 100000, (ARRAY['pending','paid','shipped','cancelled'])[1 + g % 4],
       ((g * 104729) % 10000000) / 100.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '3 seconds',
       CASE WHEN g % 5 = 0 THEN 'note for order ' || g END, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
       g / 7.0, md5(g::text)::uuid,
       CASE WHEN g % 4 = 0 THEN jsonb_build_object('channel', 'web', 'n', g % 100) END,
       (g % 30000)::smallint, date '2020-01-01' + (g % 3000)::int, 'C-' || (g % 1000000)
  FROM generate_series(1::bigint, $ROWS) g;
VACUUM ANALYZE orders;
CHECKPOINT;"

echo "== setting up two clusters with $ROWS rows (jobs $JOBS, damage $DAMAGE; PostgreSQL: base ${PG_BASE:-$SYSTEM_MAJOR}, target ${PG_TARGET:-$SYSTEM_MAJOR})"
BASE_PORT=$(start_cluster base)
TARGET_PORT=$(start_cluster target)
PORTS=("$BASE_PORT" "$TARGET_PORT")
if [ "${THREE_WAY:-0}" = 1 ]; then
  REPLICA_PORT=$(start_cluster replica)
  PORTS+=("$REPLICA_PORT")
fi
for port in "${PORTS[@]}"; do
  psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE bench"
done
t0=$(date +%s.%N)
pids=()
for port in "${PORTS[@]}"; do psql_on "$port" <<<"$FILL" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
echo "   filled in $(echo "$(date +%s.%N) - $t0" | bc) s"
third=$(python3 -c "print(max(1, int($ROWS * $DAMAGE / 3)))")
psql_on "$TARGET_PORT" <<<"
  DELETE FROM orders WHERE id IN (SELECT (g * 7717) % $ROWS + 1 FROM generate_series(1::bigint, $third) g);
  UPDATE orders SET status = 'damaged' WHERE id IN (SELECT (g * 6113) % $ROWS + 1 FROM generate_series(1::bigint, $third) g);
  INSERT INTO orders SELECT $ROWS + g, 1, 'new', 1, now(), NULL, NULL, 0, md5(g::text)::uuid, NULL, 1, now(), 'N'
    FROM generate_series(1::bigint, $third) g;
  VACUUM ANALYZE orders; CHECKPOINT;"
BYTES=$(psql_on "$BASE_PORT" -Atc "SELECT pg_relation_size('orders')")
COPY_BYTES=$(psql_on "$BASE_PORT" -Atc "COPY (SELECT 1) TO STDOUT" >/dev/null; \
  psql -X -q -h 127.0.0.1 -p "$BASE_PORT" -U postgres -d bench -c "COPY orders TO STDOUT (FORMAT binary)" | wc -c)

raw_copy() { # run JOBS slices per source, both sources at once
  local pids=() lo hi step=$(( (ROWS + JOBS - 1) / JOBS ))
  for port in "${PORTS[@]}"; do
    for ((j = 0; j < JOBS; j++)); do
      lo=$(( j * step )); hi=$(( (j + 1) * step ))
      [ "$j" -eq $((JOBS - 1)) ] && hi=$(( ROWS * 2 ))
      psql_on "$port" -c "COPY (SELECT * FROM orders WHERE id >= $lo AND id < $hi ORDER BY id) TO STDOUT (FORMAT binary)" >/dev/null &
      pids+=($!)
    done
  done
  wait "${pids[@]}"
}

seq_copy() {
  for port in "${PORTS[@]}"; do
    psql_on "$port" -c "COPY orders TO STDOUT (FORMAT binary)" >/dev/null &
  done
  wait
}

# Wall seconds of a command (its output discarded; exit 1, "differences", is fine).
timed() {
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  "$@" >/dev/null || rc=$?
  t1=$(date +%s.%N)
  [ "$rc" -le 1 ] || { echo "command failed ($rc): $*" >&2; exit 1; }
  echo "$t1 - $t0" | bc
}
best() { sort -g | head -1; }

BASE_URL="postgresql://postgres@127.0.0.1:$BASE_PORT/bench"
TARGET_URL="postgresql://postgres@127.0.0.1:$TARGET_PORT/bench"
REPLICA_ARGS=()
[ -n "${REPLICA_PORT:-}" ] && REPLICA_ARGS=(--replica "postgresql://postgres@127.0.0.1:$REPLICA_PORT/bench")
run_verify() {
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$BIN" verify --base "$BASE_URL" --target "$TARGET_URL" \
    "${REPLICA_ARGS[@]}" --jobs "$JOBS" --quiet --json "$WORK/report.json" >"$WORK/verify.out" || [ $? -eq 1 ]
}

echo "== warm-up"
seq_copy
if [ "${BASELINE_ONLY:-0}" != 1 ]; then
run_verify
cat "$WORK/verify.out"

RAW=() SEQ=() VER=() RSS=()
for ((i = 0; i < REPEAT; i++)); do
  RAW+=("$(timed raw_copy)")
  SEQ+=("$(timed seq_copy)")
  run_verify
  read -r secs kb < <(tail -1 "$WORK/time.txt")
  VER+=("$secs"); RSS+=("$kb")
done
raw=$(printf '%s\n' "${RAW[@]}" | best)
seq=$(printf '%s\n' "${SEQ[@]}" | best)
ver=$(printf '%s\n' "${VER[@]}" | best)
rss=$(printf '%s\n' "${RSS[@]}" | sort -g | tail -1)
ver_median=$(median_ratio "${RAW[@]}" "${VER[@]}")
[ "$ROWS" -lt 10000000 ] || target "verify, $ROWS rows x ${#PORTS[@]} sources / raw COPY, median of $REPEAT paired runs" "$ver_median" 1.3

python3 - "$ROWS" "$JOBS" "$COPY_BYTES" "$BYTES" "$raw" "$seq" "$ver" "$rss" "${#PORTS[@]}" <<'PY'
import sys
rows, jobs, copy_bytes, rel_bytes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
raw, seq, ver, rss_kb = map(float, sys.argv[5:9])
n = int(sys.argv[9])
total_rows, total_mb = n * rows, n * copy_bytes / 1e6
print(f"\n== pgsalvage verify benchmark: {rows:,} rows x {n} sources, jobs {jobs}, "
      f"COPY size {copy_bytes/1e6:.0f} MB per source, table {rel_bytes/1e6:.0f} MB")
print(f"{'measure':<34}{'wall s':>9}{'rows/s':>14}{'MB/s':>9}{'ratio':>8}")
for name, secs in [("raw COPY, key ranges, all sources", raw),
                   ("seq COPY, whole table, all", seq),
                   ("pgsalvage verify", ver)]:
    print(f"{name:<34}{secs:>9.2f}{total_rows/secs:>14,.0f}{total_mb/secs:>9.0f}{secs/raw:>8.2f}")
print(f"pgsalvage peak RSS: {rss_kb/1024:.0f} MB")
PY
echo "median ratio of the runs, each verify to the raw COPY next to it: $(printf '%.2f' "$ver_median")"
fi

# ---------------------------------------------------------------------------------------------
# peers: reladiff (the maintained fork of datafold's data-diff) on the same two tables, every
# column, the same parallelism, in a throwaway virtualenv.
if [ "${PEERS:-0}" = 1 ] && [ "${BASELINE_ONLY:-0}" != 1 ]; then
  python3 -m venv "$WORK/peers" >/dev/null
  "$WORK/peers/bin/pip" install -q reladiff psycopg2-binary >/dev/null
  t_peer=$(timed "$WORK/peers/bin/reladiff" "$BASE_URL" orders "$TARGET_URL" orders -k id -c '%' -j "$JOBS" --stats)
  echo "reladiff (all columns, -j $JOBS): $t_peer s; pgsalvage verify: $ver s; pgsalvage is $(echo "$t_peer / $ver" | bc -l | cut -c1-5) x faster"
fi

# ---------------------------------------------------------------------------------------------
# baselines: one source's raw COPY in JOBS key-range slices vs `pgsalvage baseline --jobs JOBS`.
raw_copy_base() {
  local pids=() lo hi step=$(( (ROWS + JOBS - 1) / JOBS ))
  for ((j = 0; j < JOBS; j++)); do
    lo=$(( j * step )); hi=$(( (j + 1) * step ))
    [ "$j" -eq $((JOBS - 1)) ] && hi=$(( ROWS * 2 ))
    psql_on "$BASE_PORT" -c "COPY (SELECT * FROM orders WHERE id >= $lo AND id < $hi ORDER BY id) TO STDOUT (FORMAT binary)" >/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
}
take_baseline() { # url, out, extra args; prints wall s, peak RSS KB, user s, system s
  local url=$1 out=$2; shift 2
  rm -rf "$out"
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" "$BIN" baseline --source "$url" --out "$out" --jobs "$JOBS" -q "$@" >/dev/null
  tail -1 "$WORK/time.txt"
}
# CPU ticks the processes of cluster $1 have used so far: the postmaster's live children, and
# through the postmaster's cutime/cstime the backends that have ended. Server and client share
# the cores, so a baseline's wall time follows the sum of both sides' CPU.
server_ticks() {
  local pm total=0 p f
  pm=$(head -1 "$WORK/$1/postmaster.pid")
  for p in "$pm" $(pgrep -P "$pm"); do
    read -r -a f <"/proc/$p/stat" 2>/dev/null || continue
    total=$(( total + f[13] + f[14] ))
    [ "$p" = "$pm" ] && total=$(( total + f[15] + f[16] ))
  done
  echo "$total"
}
compare_time() { # base, target
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$BIN" verify --base "$1" --target "$2" --jobs "$JOBS" -q >"$WORK/cmp.out" || [ $? -eq 1 ]
  echo "$(tail -1 "$WORK/time.txt") $(tail -1 "$WORK/cmp.out")"
}
if [ "${BASELINE:-1}" = 1 ]; then
  echo
  echo "== baseline benchmark: $ROWS rows, jobs $JOBS"
  RAWB=(); BL=(); BLR=(); CPU=()
  for ((i = 0; i < REPEAT; i++)); do
    t0=$(server_ticks base)
    RAWB+=("$(timed raw_copy_base)")
    t1=$(server_ticks base)
    read -r s kb us ss < <(take_baseline "$BASE_URL" "$WORK/bl-plain"); BL+=("$s $kb")
    t2=$(server_ticks base)
    CPU+=("$(( t1 - t0 )) $(( t2 - t1 )) $us $ss")
    read -r s kb _ _ < <(take_baseline "$BASE_URL" "$WORK/bl-rows" --rows); BLR+=("$s $kb")
  done
  rawb=$(printf '%s\n' "${RAWB[@]}" | best)
  bl=$(printf '%s\n' "${BL[@]}" | sort -g | head -1)
  blr=$(printf '%s\n' "${BLR[@]}" | sort -g | head -1)
  size_plain=$(du -sb "$WORK/bl-plain" | cut -f1)
  size_rows=$(du -sb "$WORK/bl-rows" | cut -f1)
  take_baseline "$TARGET_URL" "$WORK/bl-target" >/dev/null
  take_baseline "$TARGET_URL" "$WORK/bl-target-rows" --rows >/dev/null
  c_db=$(compare_time "$WORK/bl-plain" "$BASE_URL")
  c_dbr=$(compare_time "$WORK/bl-rows" "$TARGET_URL")
  c_bb=$(compare_time "$WORK/bl-plain" "$WORK/bl-target")
  c_bbr=$(compare_time "$WORK/bl-rows" "$WORK/bl-target-rows")
  pairs=$(for ((i = 0; i < REPEAT; i++)); do echo "${RAWB[$i]} ${BL[$i]%% *} ${BLR[$i]%% *}"; done)
  BLS=(); for x in "${BL[@]}"; do BLS+=("${x%% *}"); done
  BLRS=(); for x in "${BLR[@]}"; do BLRS+=("${x%% *}"); done
  bl_median=$(median_ratio "${RAWB[@]}" "${BLS[@]}")
  blr_median=$(median_ratio "${RAWB[@]}" "${BLRS[@]}")
  # The issue's targets are stated for 1e7 rows; smaller runs print the numbers without a verdict.
  [ "$ROWS" -lt 10000000 ] || target "baseline, $ROWS rows / raw COPY, median of $REPEAT paired runs" "$bl_median" 1.3
  [ "$ROWS" -lt 10000000 ] || target "verify of two baselines ($ROWS rows, $(python3 -c "print($DAMAGE*100)") % changed), seconds" "${c_bb%% *}" 1
  python3 - "$ROWS" "$rawb" "$bl" "$blr" "$size_plain" "$size_rows" "$c_db" "$c_dbr" "$c_bb" "$c_bbr" "$DAMAGE" "$pairs" "$bl_median" "$blr_median" <<'PY'
import sys
rows, raw = int(sys.argv[1]), float(sys.argv[2])
pairs = [[float(x) for x in line.split()] for line in sys.argv[12].splitlines()]
bl, blr = sys.argv[3].split(), sys.argv[4].split()
plain, withrows = int(sys.argv[5]), int(sys.argv[6])
def row(name, secs, kb=None, ratio=True, note=""):
    r = f"{float(secs)/raw:>8.2f}" if ratio else f"{'':>8}"
    m = f"{int(kb)/1024:>9.0f}" if kb else f"{'':>9}"
    print(f"{name:<46}{float(secs):>9.2f}{r}{m}  {note}")
print(f"{'measure':<46}{'wall s':>9}{'ratio':>8}{'RSS MB':>9}")
row("raw COPY of the source, key ranges", raw)
row("baseline (leaves only)", bl[0], bl[1])
row("baseline --rows", blr[0], blr[1])
for name, arg in [("compare: baseline vs unchanged database", 7),
                  ("compare: --rows baseline vs damaged database", 8),
                  (f"compare: two baselines ({float(sys.argv[11])*100:g} % changed)", 9),
                  ("compare: two --rows baselines", 10)]:
    parts = sys.argv[arg].split(maxsplit=2)
    row(name, parts[0], parts[1], ratio=False, note=parts[2] if len(parts) > 2 else "")
print("median ratio of the runs, each baseline to the raw COPY next to it: "
      f"{float(sys.argv[13]):.2f} (leaves only), {float(sys.argv[14]):.2f} (--rows); "
      "runs: " + ", ".join(f"{r:.1f}/{b:.1f}" for r, b, _ in pairs))
per = 1e6 / rows
print(f"baseline size per 1e6 rows: {plain*per/1e6:.2f} MB without --rows, {withrows*per/1e6:.1f} MB with --rows")
PY
  python3 - "$(getconf CLK_TCK)" "$(printf '%s\n' "${CPU[@]}")" <<'PY'
import statistics, sys
tick = int(sys.argv[1])
runs = [[float(x) for x in line.split()] for line in sys.argv[2].splitlines()]
med = lambda xs: statistics.median(xs)
print("CPU seconds, median of the runs: raw COPY server "
      f"{med([r[0] for r in runs]) / tick:.2f}; baseline server {med([r[1] for r in runs]) / tick:.2f}, "
      f"client {med([r[2] + r[3] for r in runs]):.2f} (user {med([r[2] for r in runs]):.2f}, "
      f"system {med([r[3] for r in runs]):.2f})")
PY
fi

# ---------------------------------------------------------------------------------------------
# recover + apply: delete N rows on the target, write the recovery, apply it; compare the apply
# with a plain COPY of the same N rows (text, from a file) into an empty copy of the table. The
# apply is repeated REPEAT times (undo.sql puts the target back in between, then VACUUM), each
# next to a COPY, and the best of each is reported with the median of the pairs' ratios.
echo
echo "== recover/apply benchmark (restored rows: $RESTORE, best of $REPEAT)"
printf '%-12s%12s%12s%14s%12s%8s%14s\n' "rows" "recover s" "apply s" "COPY into s" "files MB" "ratio" "median ratio"
for n in ${RESTORE}; do
  [ "$n" -gt 0 ] || continue
  if [ "$n" -ge "$ROWS" ]; then echo "skip $n: needs ROWS > $n"; continue; fi
  step=$(( ROWS / n ))
  psql_on "$TARGET_PORT" -qc "DELETE FROM orders WHERE id % $step = 0 AND id <= $(( n * step ))" >/dev/null
  psql_on "$TARGET_PORT" -qc "VACUUM orders" >/dev/null
  out=$WORK/recovery-$n
  t_rec=$(timed "$BIN" recover --base "$BASE_URL" --target "$TARGET_URL" --jobs "$JOBS" --quiet --out "$out")
  mb=$(du -sm "$out" | cut -f1)
  psql_on "$BASE_PORT" -qc "COPY (SELECT * FROM orders WHERE id % $step = 0 AND id <= $(( n * step ))) TO STDOUT" >"$WORK/rows-$n.txt"
  APPLY=(); COPY=()
  for ((i = 0; i < REPEAT; i++)); do
    if [ "$i" -gt 0 ]; then
      psql -X -q -v ON_ERROR_STOP=1 -f "$out/undo.sql" "$TARGET_URL" >/dev/null
      psql_on "$TARGET_PORT" -qc "VACUUM orders" >/dev/null
    fi
    APPLY+=("$(timed "$BIN" apply "$out" --target "$TARGET_URL")")
    psql_on "$TARGET_PORT" -qc "DROP TABLE IF EXISTS orders_copy; CREATE TABLE orders_copy (LIKE orders INCLUDING ALL)" 2>/dev/null
    COPY+=("$(timed bash -c "psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $TARGET_PORT -U postgres -d bench -c 'COPY orders_copy FROM STDIN' <'$WORK/rows-$n.txt'")")
    psql_on "$TARGET_PORT" -qc "DROP TABLE orders_copy"
  done
  median=$(median_ratio "${COPY[@]}" "${APPLY[@]}")
  python3 - "$n" "$t_rec" "$mb" "${APPLY[*]}" "${COPY[*]}" "$median" <<'PY'
import sys
n, rec, mb, median = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[6])
apply, copy = [float(x) for x in sys.argv[4].split()], [float(x) for x in sys.argv[5].split()]
print(f"{n:<12}{rec:>12.2f}{min(apply):>12.2f}{min(copy):>14.2f}{mb:>12}{min(apply)/min(copy):>8.2f}{median:>14.2f}")
PY
  [ "$n" -lt 100000 ] || target "apply of $n restored rows / COPY of them into an empty table, median of $REPEAT paired runs" "$median" 2
  rm -rf "$out" "$WORK/rows-$n.txt"
done

echo
echo "== targets (each the median ratio of paired runs; see the top of this script)"
if [ -s "$TARGETS" ]; then cat "$TARGETS"; else echo "none measured"; fi
if grep -q '^MISSED' "$TARGETS" 2>/dev/null; then exit 3; fi
