#!/usr/bin/env bash
# Narrow-first verify over a slow link: bytes on the wire and wall time against a full-row COPY.
#
#   scripts/bench_narrow.sh                      # 2e6 rows, --jobs 2, 0.1 % damage
#   ROWS=5000000 DAMAGE=0.01 scripts/bench_narrow.sh
#   RATE=100mbit DELAY=20ms scripts/bench_narrow.sh
#   WIDE=0 scripts/bench_narrow.sh                # bench.sh's 13 columns (~149 bytes a row)
#
# Needs root (network namespaces). The bench makes its own link: a network namespace holding two
# throwaway clusters (base and target, the system's PostgreSQL), joined to this machine by a veth
# pair whose both ends are shaped with `tc qdisc ... netem rate $RATE delay $DELAY` (1gbit and
# 5ms by default: 10 ms round trips). The tables (bench.sh's 13-column `orders`, plus by default
# a `details` text column that brings a binary COPY row to ~231 bytes, the row the issue sizes
# its tables by; WIDE=0 leaves it out) are filled over Unix sockets, off the link; the damage is bench.sh's (a third of DAMAGE deleted, a third
# updated, a third inserted). Then, over the link, each REPEAT times:
#   COPY       JOBS concurrent `COPY (SELECT * ... key range ORDER BY key) TO STDOUT (FORMAT
#              binary)` per source, both sources at once: the full rows, as fast as the link
#              carries them
#   full       pgsalvage verify --jobs JOBS (full rows)
#   narrow     pgsalvage verify --jobs JOBS --narrow (keys and server-side row hashes, full rows
#              of the differing keys only)
# and prints, per way, the best wall time, the bytes that crossed the link (both directions of
# the host's veth, from its counters: headers included) and the servers' CPU per row read (user +
# system time of both clusters' finished backends, from their postmasters' reaped-children
# times). The issue's goals are judged at the end: narrow moves >= 5 x fewer bytes than the COPY
# and takes <= 0.5 x its time; a miss makes the script exit 3. Nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "error: bench_narrow.sh makes a network namespace: run it as root" >&2; exit 2; }
source scripts/setup.sh
ensure_system_packages

ROWS=${ROWS:-2000000}
JOBS=${JOBS:-2}
DAMAGE=${DAMAGE:-0.001}
REPEAT=${REPEAT:-3}
RATE=${RATE:-1gbit}
WIDE=${WIDE:-1}
DETAILS_COL="" DETAILS_VAL=""
if [ "$WIDE" = 1 ]; then
  DETAILS_COL=", details text"
  DETAILS_VAL=", substr(md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text), 1, 78)"
fi
DELAY=${DELAY:-5ms}

cargo build --locked --release --bin pgsalvage 2>&1 | tail -1
BIN=$PWD/target/release/pgsalvage
BINDIR=${PGSALVAGE_PG_BINDIR:-$(pg_config --bindir)}
[ -x "$BINDIR/initdb" ] || BINDIR=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

TAG=$$
NS=pgsn$TAG
HOST_IF=pgsh$TAG
NS_IF=pgsn$TAG
HOST_IP=10.213.$((TAG % 200)).1
NS_IP=10.213.$((TAG % 200)).2
WORK=$(mktemp -d /tmp/pgsalvage-narrow.XXXXXX)
chmod 755 "$WORK"
chown postgres "$WORK"
in_ns() { ip netns exec "$NS" "$@"; }
as_pg_ns() { ip netns exec "$NS" runuser -u postgres -- "$@"; }

cleanup() {
  for name in base target; do
    [ -d "$WORK/$name" ] && as_pg_ns "$BINDIR/pg_ctl" -D "$WORK/$name" -m immediate stop >/dev/null 2>&1 || true
  done
  ip link del "$HOST_IF" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== a link of $RATE with $DELAY each way: namespace $NS, $HOST_IP <-> $NS_IP"
ip netns add "$NS"
ip link add "$HOST_IF" type veth peer name "$NS_IF"
ip link set "$NS_IF" netns "$NS"
ip addr add "$HOST_IP/24" dev "$HOST_IF"
ip link set "$HOST_IF" up
in_ns ip addr add "$NS_IP/24" dev "$NS_IF"
in_ns ip link set "$NS_IF" up
in_ns ip link set lo up
# netem shapes rate and delay; a kernel without it (tc: "Specified qdisc kind is unknown") gets
# the rate from tbf and no added delay, which the results then say.
SHAPED="netem rate $RATE, delay $DELAY each way"
if ! tc qdisc add dev "$HOST_IF" root netem rate "$RATE" delay "$DELAY" limit 100000 2>/dev/null; then
  SHAPED="tbf rate $RATE, NO added delay (this kernel has no netem)"
  DELAY=0ms
  tc qdisc add dev "$HOST_IF" root tbf rate "$RATE" burst 256kb latency 50ms
  in_ns tc qdisc add dev "$NS_IF" root tbf rate "$RATE" burst 256kb latency 50ms
else
  in_ns tc qdisc add dev "$NS_IF" root netem rate "$RATE" delay "$DELAY" limit 100000
fi
echo "   shaped: $SHAPED"
command -v ping >/dev/null && ping -c 2 -q "$NS_IP" | tail -1 || true

start_cluster() { # name, port
  local dir=$WORK/$1
  runuser -u postgres -- "$BINDIR/initdb" -D "$dir" -U postgres --locale=C -E UTF8 --auth=trust -N >/dev/null
  echo "host all all $HOST_IP/32 trust" >>"$dir/pg_hba.conf"
  as_pg_ns "$BINDIR/pg_ctl" -D "$dir" -l "$dir.log" -w -o "-p $2 -k $WORK -c listen_addresses=$NS_IP \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=512MB \
    -c max_wal_size=4GB -c checkpoint_timeout=30min -c max_connections=50" start >/dev/null
}
BASE_PORT=55432
TARGET_PORT=55433
PORTS=("$BASE_PORT" "$TARGET_PORT")
start_cluster base "$BASE_PORT"
start_cluster target "$TARGET_PORT"
# Set-up over the Unix sockets, off the link.
local_psql() { local port=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$port" -U postgres "$@"; }
for port in "${PORTS[@]}"; do local_psql "$port" -d postgres -c "CREATE DATABASE bench"; done

FILL="
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id integer NOT NULL, status text NOT NULL, total numeric(12,2) NOT NULL,
  placed_at timestamptz NOT NULL, note text, gift boolean, ratio double precision, ref uuid NOT NULL,
  attrs jsonb, qty smallint NOT NULL, day date NOT NULL, code varchar(16) NOT NULL$DETAILS_COL);
INSERT INTO orders
SELECT g, (g * 7919) % 100000, (ARRAY['pending','paid','shipped','cancelled'])[1 + g % 4],
       ((g * 104729) % 10000000) / 100.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '3 seconds',
       CASE WHEN g % 5 = 0 THEN 'note for order ' || g END, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
       g / 7.0, md5(g::text)::uuid,
       CASE WHEN g % 4 = 0 THEN jsonb_build_object('channel', 'web', 'n', g % 100) END,
       (g % 30000)::smallint, date '2020-01-01' + (g % 3000)::int, 'C-' || (g % 1000000)$DETAILS_VAL
  FROM generate_series(1::bigint, $ROWS) g;
VACUUM ANALYZE orders;
CHECKPOINT;"
echo "== filling $ROWS rows on both clusters (damage $DAMAGE, jobs $JOBS)"
pids=()
for port in "${PORTS[@]}"; do local_psql "$port" -d bench <<<"$FILL" & pids+=($!); done
wait "${pids[@]}"
third=$(python3 -c "print(max(1, int($ROWS * $DAMAGE / 3)))")
local_psql "$TARGET_PORT" -d bench <<<"
  DELETE FROM orders WHERE id IN (SELECT (g * 7717) % $ROWS + 1 FROM generate_series(1::bigint, $third) g);
  UPDATE orders SET status = 'damaged' WHERE id IN (SELECT (g * 6113) % $ROWS + 1 FROM generate_series(1::bigint, $third) g);
  INSERT INTO orders SELECT $ROWS + g, 1, 'new', 1, now(), NULL, NULL, 0, md5(g::text)::uuid, NULL, 1, now(), 'N'$DETAILS_VAL
    FROM generate_series(1::bigint, $third) g;
  VACUUM ANALYZE orders; CHECKPOINT;"
ROW_BYTES=$(( $(local_psql "$BASE_PORT" -d bench -c "COPY orders TO STDOUT (FORMAT binary)" | wc -c) / ROWS ))

link_bytes() { echo $(( $(cat /sys/class/net/$HOST_IF/statistics/rx_bytes) + $(cat /sys/class/net/$HOST_IF/statistics/tx_bytes) )); }
# CPU seconds of both clusters' finished backends (their postmasters' reaped children).
server_cpu() {
  local total=0 pid
  for name in base target; do
    pid=$(head -1 "$WORK/$name/postmaster.pid")
    total=$(awk -v t="$total" '{print t + $16 + $17}' "/proc/$pid/stat")
  done
  echo "scale=6; $total / $(getconf CLK_TCK)" | bc
}

copy_over_link() {
  local pids=() lo hi step=$(( (ROWS + JOBS - 1) / JOBS ))
  for port in "${PORTS[@]}"; do
    for ((j = 0; j < JOBS; j++)); do
      lo=$(( j * step )); hi=$(( (j + 1) * step ))
      [ "$j" -eq $((JOBS - 1)) ] && hi=$(( ROWS * 2 ))
      psql -X -q -h "$NS_IP" -p "$port" -U postgres -d bench \
        -c "COPY (SELECT * FROM orders WHERE id >= $lo AND id < $hi ORDER BY id) TO STDOUT (FORMAT binary)" >/dev/null &
      pids+=($!)
    done
  done
  wait "${pids[@]}"
}
BASE_URL="postgresql://postgres@$NS_IP:$BASE_PORT/bench"
TARGET_URL="postgresql://postgres@$NS_IP:$TARGET_PORT/bench"
verify_full() { "$BIN" verify --base "$BASE_URL" --target "$TARGET_URL" --jobs "$JOBS" -q --json "$WORK/full.json" --findings "$WORK/full.csv" || [ $? -eq 1 ]; }
verify_narrow() { "$BIN" verify --base "$BASE_URL" --target "$TARGET_URL" --jobs "$JOBS" -q --narrow --json "$WORK/narrow.json" --findings "$WORK/narrow.csv" || [ $? -eq 1 ]; }

# One measured run: "seconds bytes cpu".
measure() {
  local b0 c0 t0 t1
  b0=$(link_bytes); c0=$(server_cpu); t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  sleep 0.3 # the backends' exit, reaped by their postmaster
  echo "$(echo "$t1 - $t0" | bc) $(( $(link_bytes) - b0 )) $(echo "$(server_cpu) - $c0" | bc)"
}

echo "== warm-up"
copy_over_link
declare -A BEST_T BEST_B BEST_C
for way in copy full narrow; do BEST_T[$way]=999999; done
for ((r = 1; r <= REPEAT; r++)); do
  for way in copy full narrow; do
    case $way in
      copy) read -r t b c < <(measure copy_over_link) ;;
      full) read -r t b c < <(measure verify_full) ;;
      narrow) read -r t b c < <(measure verify_narrow) ;;
    esac
    printf '   run %d %-7s %7.2f s %12d bytes  server CPU %.2f s\n' "$r" "$way" "$t" "$b" "$c"
    if python3 -c "import sys; sys.exit(0 if float('$t') < float('${BEST_T[$way]}') else 1)"; then
      BEST_T[$way]=$t; BEST_B[$way]=$b; BEST_C[$way]=$c
    fi
  done
done

# The two verifies must agree before their speed means anything.
python3 - "$WORK/full.json" "$WORK/narrow.json" "$WORK/full.csv" "$WORK/narrow.csv" <<'EOF'
import json, sys
full, narrow = (json.load(open(p)) for p in sys.argv[1:3])
for field in ("verdict", "totals", "findings"):
    assert full[field] == narrow[field], (field, full[field], narrow[field])
rows = [sorted(open(p).read().splitlines()) for p in sys.argv[3:5]]
assert rows[0] == rows[1], "the --findings files differ"
print(f"   full and narrow agree on all {len(rows[0]) - 1} findings: {full['totals']['missing']} missing, {full['totals']['extra']} extra, {full['totals']['divergent']} divergent")
EOF

READ_ROWS=$(( ROWS * 2 ))
echo
echo "== $ROWS rows x 2 sources ($ROW_BYTES bytes a row in binary COPY), link: $SHAPED; jobs $JOBS, damage $DAMAGE; best of $REPEAT"
printf '%-8s %9s %14s %10s %16s\n' way seconds "link bytes" "bytes/row" "server CPU/row"
for way in copy full narrow; do
  printf '%-8s %9.2f %14d %10.1f %13.2f us\n' "$way" "${BEST_T[$way]}" "${BEST_B[$way]}" \
    "$(echo "${BEST_B[$way]} / $READ_ROWS" | bc -l)" "$(echo "${BEST_C[$way]} * 1000000 / $READ_ROWS" | bc -l)"
done
bytes_ratio=$(echo "${BEST_B[copy]} / ${BEST_B[narrow]}" | bc -l)
time_ratio=$(echo "${BEST_T[narrow]} / ${BEST_T[copy]}" | bc -l)
echo
status=0
verdict() { python3 -c "import sys; print('met' if $1 else 'MISSED')"; }
v1=$(verdict "$bytes_ratio >= 5"); v2=$(verdict "$time_ratio <= 0.5")
printf '%-7s narrow moves %.1f x fewer bytes than the COPY (goal >= 5)\n' "$v1" "$bytes_ratio"
printf '%-7s narrow takes %.2f x the COPY'"'"'s time (goal <= 0.5)\n' "$v2" "$time_ratio"
[ "$v1" = met ] && [ "$v2" = met ] || status=3
exit $status
