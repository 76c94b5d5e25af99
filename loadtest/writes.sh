#!/usr/bin/env bash
# Benchmark: the write path of one busy tenant (issue 11). N writers of one tenant,
# each posting to its own channel through the API (wrk, one connection per
# thread, loadtest/writes.lua), against pgbench running a bare INSERT of a message
# at the same concurrency, then pgbench running the API's write transaction at
# SERIALIZABLE in its old shape (the tenant's one usage row) and its new shape (a
# usage shard per client), counting serialization failures (no retries). The API
# and bare INSERT runs alternate for ROUNDS rounds (default 3); the ratio printed
# is the median of the rounds' ratios.
#
#   loadtest/writes.sh [writers=16] [seconds=8]
#   ROUNDS=1 loadtest/writes.sh   # one API run, one bare INSERT run
#   API_ONLY=1 loadtest/writes.sh # the API runs only
#   BIN=/path/to/other/meridian loadtest/writes.sh   # e.g. an older build: API only
#   PIN=1 loadtest/writes.sh   # PostgreSQL on CPU 0; the node, wrk and pgbench on
#                              # CPU 1: the database's core is not shared with the
#                              # node, as on a deployment (2+ cores)
#
# Starts its own `meridian dev --regions us-east1` (release build unless BIN is
# given; state in a temp dir; REGIONS_DIR=<dir> for other ports).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-16}; SECS=${2:-8}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
PGBIN=$(pg_config --bindir)
if [[ -z ${BIN:-} ]]; then cargo build --release -q -p meridian-local; BIN=target/release/meridian; fi
STATE=$(mktemp -d /tmp/meridian-writes-XXXX); chmod 755 "$STATE"
OUT="$STATE/dev.out"
MERIDIAN_LOG__FILTER=warn "$BIN" --state-dir "$STATE" dev --regions us-east1 --regions-dir "${REGIONS_DIR:-regions}" >"$OUT" 2>"$STATE/dev.err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 150); do grep -q '^ready' "$OUT" && break; sleep 0.2; done
grep -q '^ready' "$OUT" || { cat "$OUT" "$STATE/dev.err"; exit 1; }
PG=$(awk '/^postgres /{print $2}' "$OUT")
BASE=$(awk '/^node us-east1 /{print $3}' "$OUT")
export MERIDIAN_NODE=$BASE   # for `meridian token` (its default is the usual 8080)

ADMIN=$("$BIN" --state-dir "$STATE" token --platform-admin)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
TENANT_JSON=$(curl -sf -X POST "$BASE/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"slug":"busy","name":"Busy","home_region":"us-east1","plan":"enterprise","limits":{"requests_per_second":100000,"burst":100000,"concurrent_requests":10000},"owner":{"email":"busy@busy.example","display_name":"Busy"}}')
T=$(echo "$TENANT_JSON" | json 'd["id"]'); U=$(echo "$TENANT_JSON" | json 'd["owner"]["id"]')
TOKEN=$("$BIN" --state-dir "$STATE" token --tenant "$T" --user "$U" --role owner)
# Channels with known ids (thread / client i -> channel i), created directly.
CHAN="'00000000-0000-4000-8000-' || lpad(%s::text, 12, '0')"
"$PGBIN/psql" -q "$PG" -c "INSERT INTO channels (tenant_id, id, home_region, name, created_by)
  SELECT '$T', ($(printf "$CHAN" g))::uuid, 'us-east1', 'writer ' || g, '$U' FROM generate_series(0, $W - 1) g;"

# CPU ticks (utime + stime, USER_HZ) of the node and of every PostgreSQL process
# over the API run, as loadtest/messages-page.sh counts them: CPU per post moves
# less with the machine's other load than posts/s does.
ticks() { local t=0 pid; for pid in "$@"; do [[ -r /proc/$pid/stat ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$t"; }
NODE_PID=$(pgrep -f -- "$STATE serve --region us-east1" | head -1)
PG_MAIN=$(head -1 "$STATE/pg/data/postmaster.pid")
pg_pids() { echo "$PG_MAIN" $(pgrep -P "$PG_MAIN"); }
# Clients run through $ON_CLIENT_CPU (empty unless PIN=1).
ON_CLIENT_CPU=()
if [[ ${PIN:-0} == 1 ]]; then
  for pid in $(pg_pids); do taskset -a -p -c 0 "$pid" >/dev/null; done  # backends forked later inherit it
  taskset -a -p -c 1 "$NODE_PID" >/dev/null
  ON_CLIENT_CPU=(taskset -c 1)
  echo "pinned: PostgreSQL on CPU 0; the node, wrk and pgbench on CPU 1"
fi
source loadtest/lib-sched.sh; sched_note
cat >"$STATE/insert.sql" <<SQL
INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body)
VALUES ('$T', gen_random_uuid(), 'us-east1', ($(printf "$CHAN" ":client_id"))::uuid, '$U', 'a post of a busy writer, of ordinary length');
SQL
# ROUNDS rounds (default 3), each the API run then the bare INSERT: on two shared
# cores either figure alone swings by ±10% from run to run, so the ratio is
# taken per round (the two runs next to each other) and its median printed.
ROUNDS=${ROUNDS:-3}
API_LIST=(); DB_LIST=(); API_REQS=0; NODE_T=0; PG_T=0
for round in $(seq 1 "$ROUNDS"); do
  NODE0=$(ticks "$NODE_PID"); PG0=$(ticks $(pg_pids))
  echo "== round $round, API: $W writers, each its own channel: wrk -t$W -c$W -d${SECS}s POST /v1/channels/{own}/messages (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  TOKEN=$TOKEN "${ON_CLIENT_CPU[@]}" wrk -t"$W" -c"$W" -d"${SECS}s" --latency -s loadtest/writes.lua "$BASE" | tee "$STATE/wrk.txt"
  NODE1=$(ticks "$NODE_PID"); PG1=$(ticks $(pg_pids))
  NODE_T=$((NODE_T + NODE1 - NODE0)); PG_T=$((PG_T + PG1 - PG0))
  API_LIST+=("$(awk '/^Requests\/sec/{print $2}' "$STATE/wrk.txt")")
  API_REQS=$((API_REQS + $(awk '/requests in/{print $1}' "$STATE/wrk.txt")))
  [[ ${API_ONLY:-0} == 1 ]] && continue
  echo "== round $round, DB: pgbench -c$W -j2 -T$SECS -M prepared, a bare INSERT of a message (autocommit, superuser)"
  "${ON_CLIENT_CPU[@]}" "$PGBIN/pgbench" -n -c"$W" -j2 -T"$SECS" -M prepared -f "$STATE/insert.sql" "$PG" | tee "$STATE/pgbench.txt" | grep -E '^(tps|latency)'
  DB_LIST+=("$(awk '/^tps/{print $3}' "$STATE/pgbench.txt")")
done
python3 -c "
n=$API_REQS; hz=$(getconf CLK_TCK)
print(f'CPU per post over the API runs: node {$NODE_T/hz/n*1e6:.0f} µs, PostgreSQL {$PG_T/hz/n*1e6:.0f} µs ({n} requests)')"
# The API's posts by their ids (the node's are UUIDv7, the bare INSERT's v4): the
# bare INSERT writes past the quota, so only the API's bytes are charged.
"$PGBIN/psql" -qAt "$PG" -c "SELECT 'stored message bytes of the API posts ' || sum(octet_length(body)) FROM messages WHERE tenant_id = '$T' AND substr(id::text, 15, 1) = '7'"
"$PGBIN/psql" -qAt "$PG" -c "SELECT 'usage shards: used ' || sum(used_bytes) || ', granted ' || sum(granted_bytes) || ', central ' || (SELECT granted_bytes FROM tenant_usage WHERE tenant_id = '$T') FROM tenant_usage_shards WHERE tenant_id = '$T'" 2>/dev/null || true
if [[ ${API_ONLY:-0} == 1 ]]; then
  echo "API posts/s per round: ${API_LIST[*]}"
  exit 0
fi

# The API's write transaction (src/db/tx.rs prologue, src/store/messages.rs post) as
# the service role at SERIALIZABLE, without retries: how many fail with 40001.
APP_URL="postgres://meridian_app:$(cat "$STATE/app.password")@${PG#*@}"
# Generous grants on every shard, so the new shape stays on its fast path.
"$PGBIN/psql" -q "$PG" -c "INSERT INTO tenant_usage_shards (tenant_id, shard, home_region) SELECT '$T', s, 'us-east1' FROM generate_series(0, 31) s ON CONFLICT DO NOTHING;
  UPDATE tenant_usage_shards SET granted_bytes = used_bytes + 1000000000, cap_bytes = 1099511627776 WHERE tenant_id = '$T';
  UPDATE tenant_usage SET granted_bytes = (SELECT sum(granted_bytes) FROM tenant_usage_shards WHERE tenant_id = '$T') WHERE tenant_id = '$T';"
PROLOGUE="BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT set_config('app.tenant_id', '$T', true);
SELECT status = 'active' AND role = 'owner' FROM users WHERE tenant_id = '$T' AND id = '$U';
SELECT 1 FROM channels WHERE tenant_id = '$T' AND id = ($(printf "$CHAN" ":client_id"))::uuid;"
cat >"$STATE/old.sql" <<SQL
$PROLOGUE
UPDATE tenant_usage SET storage_bytes = storage_bytes + 44 WHERE tenant_id = '$T' AND storage_bytes + 44 <= 1099511627776;
INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body)
VALUES ('$T', gen_random_uuid(), 'us-east1', ($(printf "$CHAN" ":client_id"))::uuid, '$U', 'a post of a busy writer, of ordinary length');
COMMIT;
SQL
cat >"$STATE/new.sql" <<SQL
$PROLOGUE
WITH charged AS (UPDATE tenant_usage_shards SET used_bytes = used_bytes + 44
   WHERE tenant_id = '$T' AND shard = :client_id AND cap_bytes = 1099511627776 AND used_bytes + 44 <= granted_bytes RETURNING shard)
INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body)
SELECT '$T', gen_random_uuid(), 'us-east1', ($(printf "$CHAN" ":client_id"))::uuid, '$U', 'a post of a busy writer, of ordinary length' FROM charged;
COMMIT;
SQL
for shape in old new; do
  echo "== DB: pgbench -c$W, the API's write transaction at SERIALIZABLE, $shape shape (no retries)"
  "${ON_CLIENT_CPU[@]}" "$PGBIN/pgbench" -n -c"$W" -j2 -T"$SECS" -M prepared --max-tries=1 --failures-detailed -f "$STATE/$shape.sql" "$APP_URL" 2>/dev/null \
    | grep -E '^(tps|latency|number of (transactions actually processed|failed|serialization))'
done
python3 -c "
import statistics as st
api=[float(x) for x in '${API_LIST[*]}'.split()]; db=[float(x) for x in '${DB_LIST[*]}'.split()]
for i,(a,d) in enumerate(zip(api,db),1): print(f'round {i}: API {a:.0f} posts/s, bare INSERT {d:.0f} tps, ratio {a/d:.2f}')
print(f'ratio API/bare INSERT = {st.median(a/d for a,d in zip(api,db)):.2f} (median of {len(api)} rounds; API median {st.median(api):.0f} posts/s, pgbench median {st.median(db):.0f} tps)')"
