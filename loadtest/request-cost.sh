#!/usr/bin/env bash
# Cost per request, independent of how loaded the machine is: the instructions the
# node executes per messages page and per post (valgrind's callgrind, counted over a
# fixed number of requests), and what each sends to PostgreSQL (every statement of
# one request, from its log). Wall-clock throughput on a shared 2-core machine moves with the other
# work on it; these counts do not.
#
#   loadtest/request-cost.sh [requests=2000] [connections=4] [messages=2000]
#
# MERIDIAN_BIN=<binary> measures another build; CALLGRIND_OUT=<dir> keeps the
# profiles (`callgrind_annotate --inclusive=yes <file>` shows where the
# instructions go). Starts its own `meridian dev` (one region, state in a temp
# dir), restarts its node under valgrind (about 50× slower: the client's speed does
# not matter, only the count), sends the requests over `connections` keep-alive
# connections (loadtest/tools/fixed-requests.py).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}; CONNS=${2:-4}; MESSAGES=${3:-2000}
command -v valgrind >/dev/null || { echo "valgrind missing: apt-get install valgrind" >&2; exit 1; }
PGBIN=$(pg_config --bindir)
if [[ -z ${MERIDIAN_BIN:-} ]]; then cargo build --release -q -p meridian-local; fi
BIN=$(realpath "${MERIDIAN_BIN:-target/release/meridian}")
STATE=$(mktemp -d /tmp/meridian-cost-XXXX)
chmod 755 "$STATE"
KEEP=${CALLGRIND_OUT:-$(mktemp -d /tmp/request-cost-XXXX)}
mkdir -p "$KEEP"
OUT="$STATE/dev.out"
MERIDIAN_LOG__FILTER=warn "$BIN" --state-dir "$STATE" dev --regions us-east1 --restart-after 0 \
  ${REGIONS_DIR:+--regions-dir "$REGIONS_DIR"} >"$OUT" 2>"$STATE/dev.err" &
DEV=$!
VG=
cleanup() {
  [[ -n $VG ]] && kill -TERM "$VG" 2>/dev/null && wait "$VG" 2>/dev/null
  kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"
}
trap cleanup EXIT
for _ in $(seq 1 100); do grep -q '^ready' "$OUT" && break; sleep 0.2; done
grep -q '^ready' "$OUT" || { cat "$OUT" "$STATE/dev.err"; exit 1; }
PG=$(awk '/^postgres /{print $2}' "$OUT")
BASE=$(awk '/^node us-east1 /{print $3}' "$OUT")
export MERIDIAN_NODE=$BASE   # for `meridian token` (its default is the usual 8080)

ADMIN=$("$BIN" --state-dir "$STATE" token --platform-admin)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
TENANT_JSON=$(curl -sf -X POST "$BASE/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"slug":"bench","name":"Bench","home_region":"us-east1","plan":"enterprise","limits":{"requests_per_second":100000,"burst":100000,"concurrent_requests":10000},"owner":{"email":"bench@bench.example","display_name":"Bench"}}')
T=$(echo "$TENANT_JSON" | json 'd["id"]'); U=$(echo "$TENANT_JSON" | json 'd["owner"]["id"]')
TOKEN=$("$BIN" --state-dir "$STATE" token --tenant "$T" --user "$U" --role owner)
C=$(curl -sf -X POST "$BASE/v1/channels" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"bench"}' | json 'd["id"]')
"$PGBIN/psql" -q "$PG" -c "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
  SELECT '$T', gen_random_uuid(), 'us-east1', '$C', '$U', 'message number ' || g || ' with a body of ordinary length for a chat message',
         now() - make_interval(secs => g) FROM generate_series(1, $MESSAGES) g; ANALYZE messages;"
PAGE="$BASE/v1/channels/$C/messages?limit=50"
POST="$BASE/v1/channels/$C/messages"
POST_BODY='{"body":"a message of ordinary length for a chat, posted by the benchmark"}'

# The node again, as dev started it (same arguments and environment), under callgrind.
NODE_PID=$(pgrep -f -- "$STATE serve --region us-east1" | head -1)
mapfile -d '' NODE_ARGS <"/proc/$NODE_PID/cmdline"
mapfile -d '' NODE_ENV <"/proc/$NODE_PID/environ"
kill -TERM "$NODE_PID"
while kill -0 "$NODE_PID" 2>/dev/null; do sleep 0.1; done
env -i "${NODE_ENV[@]}" valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$STATE/callgrind.out" "$BIN" "${NODE_ARGS[@]:1}" \
  >"$STATE/node.out" 2>"$STATE/node.err" &
VG=$!
for _ in $(seq 1 600); do curl -sf "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -sf "$BASE/healthz" >/dev/null || { cat "$STATE/node.err"; exit 1; }
FIXED=loadtest/tools/fixed-requests.py
"$FIXED" "$PAGE" "$TOKEN" 200 "$CONNS" >/dev/null   # warm-up: caches, pools, statements
"$FIXED" "$POST" "$TOKEN" 50 "$CONNS" --post "$POST_BODY" >/dev/null

xacts() { "$PGBIN/psql" -tAq "$PG" -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"; }

# measure NAME CONNECTIONS URL [--post BODY]: instructions the node executes per
# request (its background tasks included: they run meanwhile), and PostgreSQL
# transactions per request (background ones included). PostgreSQL's CPU is not
# measured here: against a node slowed 50× by valgrind it says little; it is
# measured under real load by messages-page.sh.
measure() {
  local name=$1 conns=$2; shift 2
  callgrind_control -z "$VG" >/dev/null 2>&1
  local x0 x1 statuses start elapsed
  x0=$(xacts); start=$(date +%s.%N)
  callgrind_control -i on "$VG" >/dev/null 2>&1
  statuses=$("$FIXED" "$1" "$TOKEN" "$N" "$conns" "${@:2}")
  callgrind_control -i off "$VG" >/dev/null 2>&1
  x1=$(xacts)
  elapsed=$(python3 -c "import time; print(f'{time.time() - $start:.0f}')")
  callgrind_control -d "$name" "$VG" >/dev/null 2>&1
  sleep 1
  local file ir
  file=$(ls -t "$STATE"/callgrind.out* | head -1)
  cp "$file" "$KEEP/$name.callgrind"
  ir=$(awk '/^totals:/{print $2}' "$file")
  python3 -c "
n=$N; ir=$ir
print(f'$name: {n} requests ($statuses) over $conns connections in $elapsed s: node {ir/n:,.0f} '
      f'instructions per request, {($x1-$x0-2)/n:.2f} PostgreSQL transactions per request')"
}
echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
measure page "$CONNS" "$PAGE"
# Posts over one connection: concurrent posts of the valgrind-slowed node would
# conflict and retry more than at full speed, which would count their retries.
measure post 1 "$POST" --post "$POST_BODY"

# What one page request sends to PostgreSQL, statement by statement.
"$PGBIN/psql" -q "$PG" -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
LOG="$STATE/pg/postgres.log"; FROM=$(wc -c <"$LOG")
"$FIXED" "$PAGE" "$TOKEN" 1 1 >/dev/null
"$FIXED" "$POST" "$TOKEN" 1 1 --post "$POST_BODY" >/dev/null
sleep 0.5
"$PGBIN/psql" -q "$PG" -c "ALTER SYSTEM RESET log_min_duration_statement" -c "SELECT pg_reload_conf()" >/dev/null
echo "== what one page request and then one post send to PostgreSQL (log_min_duration_statement = 0)"
tail -c +"$((FROM + 1))" "$LOG" | grep -E 'duration:' | sed -E 's/^.*duration: //' | cut -c1-160
echo "profiles: $KEEP (callgrind_annotate --inclusive=yes $KEEP/page.callgrind | head -60)"
