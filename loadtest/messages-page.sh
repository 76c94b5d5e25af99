#!/usr/bin/env bash
# Benchmark: GET /v1/channels/{id}/messages?limit=50 through the API (wrk) against
# the same SELECT run by pgbench, at the same connection count, on this machine.
#
#   loadtest/messages-page.sh [connections=16] [seconds=20] [messages=2000]
#
# Starts its own `meridian dev` (release build, state in a temp dir), provisions a
# tenant with one channel of N messages, runs both loads, prints the ratio, and the
# CPU each page request cost the node and PostgreSQL during the API run (utime +
# stime from /proc of the node process and of every PostgreSQL process), and the
# API's whole read transaction sent by pgbench as one pipeline; the SELECT's own
# p50/p99 under pgbench (its per-transaction log), beside the API's.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-16}; SECS=${2:-20}; MESSAGES=${3:-2000}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
PGBIN=$(pg_config --bindir)

# MERIDIAN_BIN=<binary> measures another build (e.g. to compare two commits).
if [[ -z ${MERIDIAN_BIN:-} ]]; then cargo build --release -q -p meridian-local; fi
BIN=${MERIDIAN_BIN:-target/release/meridian}
STATE=$(mktemp -d /tmp/meridian-bench-XXXX)
chmod 755 "$STATE"
OUT="$STATE/dev.out"
MERIDIAN_LOG__FILTER=warn "$BIN" --state-dir "$STATE" dev --regions us-east1 >"$OUT" 2>"$STATE/dev.err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 100); do grep -q '^ready' "$OUT" && break; sleep 0.2; done
grep -q '^ready' "$OUT" || { cat "$OUT" "$STATE/dev.err"; exit 1; }
PG=$(awk '/^postgres /{print $2}' "$OUT")
BASE=$(awk '/^node us-east1 /{print $3}' "$OUT")

ADMIN=$("$BIN" --state-dir "$STATE" token --platform-admin)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
TENANT_JSON=$(curl -sf -X POST "$BASE/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"slug":"bench","name":"Bench","home_region":"us-east1","plan":"enterprise","limits":{"requests_per_second":100000,"burst":100000,"concurrent_requests":10000},"owner":{"email":"bench@bench.example","display_name":"Bench"}}')
T=$(echo "$TENANT_JSON" | json 'd["id"]'); U=$(echo "$TENANT_JSON" | json 'd["owner"]["id"]')
TOKEN=$("$BIN" --state-dir "$STATE" token --tenant "$T" --user "$U" --role owner)
C=$(curl -sf -X POST "$BASE/v1/channels" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"bench"}' | json 'd["id"]')
# Bulk-load messages directly (the API path is not what is measured here).
"$PGBIN/psql" -q "$PG" -c "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
  SELECT '$T', gen_random_uuid(), 'us-east1', '$C', '$U', 'message number ' || g || ' with a body of ordinary length for a chat message',
         now() - make_interval(secs => g) FROM generate_series(1, $MESSAGES) g; ANALYZE messages;"

URL="$BASE/v1/channels/$C/messages?limit=50"
curl -sf "$URL" -H "Authorization: Bearer $TOKEN" | json 'len(d["items"])' | grep -qx 50

# CPU ticks (utime + stime, USER_HZ) of the given processes, summed.
ticks() { local t=0 pid; for pid in "$@"; do [[ -r /proc/$pid/stat ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$t"; }
NODE_PID=$(pgrep -f -- "$STATE serve --region us-east1" | head -1)
PG_MAIN=$(head -1 "$STATE/pg/data/postmaster.pid")
pg_pids() { echo "$PG_MAIN" $(pgrep -P "$PG_MAIN"); }
HZ=$(getconf CLK_TCK)
NODE0=$(ticks "$NODE_PID"); PG0=$(ticks $(pg_pids))
# PERF_OUT=<file>: also sample the node with perf (call graphs) during the API run.
if [[ -n ${PERF_OUT:-} ]]; then
  perf record -F 997 --call-graph dwarf,16384 -p "$NODE_PID" -o "$PERF_OUT" -- sleep "$SECS" 2>"$STATE/perf.err" &
  PERF=$!
fi
source loadtest/lib-sched.sh; sched_note
echo "== API: wrk -t2 -c$CONNS -d${SECS}s $URL (load: $(cut -d' ' -f1-3 /proc/loadavg))"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" "$URL" | tee "$STATE/wrk.txt"
NODE1=$(ticks "$NODE_PID"); PG1=$(ticks $(pg_pids))
if [[ -n ${PERF_OUT:-} ]]; then wait "$PERF" || cat "$STATE/perf.err" >&2; fi
API_RPS=$(awk '/^Requests\/sec/{print $2}' "$STATE/wrk.txt")
API_REQS=$(awk '/requests in/{print $1}' "$STATE/wrk.txt")
P50=$(awk '$1=="50%"{print $2}' "$STATE/wrk.txt"); P99=$(awk '$1=="99%"{print $2}' "$STATE/wrk.txt")
python3 -c "
n=$API_REQS; hz=$HZ
print(f'CPU per page request: node {($NODE1-$NODE0)/hz/n*1e6:.0f} µs, PostgreSQL {($PG1-$PG0)/hz/n*1e6:.0f} µs ({n} requests; p50 $P50, p99 $P99)')"

# The same page as the API's first page: src/store/messages.rs PAGE_SQL, LIMIT 51.
cat >"$STATE/page.sql" <<SQL
SELECT id, channel_id, author_id, body, created_at, body_enc FROM messages
 WHERE tenant_id = '$T' AND channel_id = '$C'
 ORDER BY created_at DESC, id DESC LIMIT 51;
SQL
echo "== DB: pgbench -c$CONNS -j2 -T$SECS -M prepared (same SELECT)"
# -l: every transaction's latency, so the SELECT's own tail at this concurrency on
# this machine can be set beside the API's p50/p99 (wrk's, above).
(cd "$STATE" && "$PGBIN/pgbench" -n -c"$CONNS" -j2 -T"$SECS" -M prepared -l --log-prefix=select -f "$STATE/page.sql" "$PG") | tee "$STATE/pgbench.txt"
DB_TPS=$(awk '/^tps/{print $3}' "$STATE/pgbench.txt")
cat "$STATE"/select.* | python3 -c "
import sys
us = sorted(int(line.split()[2]) for line in sys.stdin)
q = lambda p: us[min(len(us) - 1, int(p * len(us)))] / 1000
print(f'pgbench SELECT latency: p50 {q(0.50):.2f} ms, p99 {q(0.99):.2f} ms, max {us[-1] / 1000:.2f} ms ({len(us)} transactions)')"

# For context: the API's whole read transaction (src/db/tx.rs), as the service role.
APP_URL="postgres://meridian_app:$(cat "$STATE/app.password")@${PG#*@}"
cat >"$STATE/tx.sql" <<SQL
BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY;
SELECT set_config('app.tenant_id', '$T', true);
SELECT status FROM users WHERE tenant_id = '$T' AND id = '$U';
SELECT id, channel_id, author_id, body, created_at, body_enc FROM messages
 WHERE tenant_id = '$T' AND channel_id = '$C'
 ORDER BY created_at DESC, id DESC LIMIT 51;
COMMIT;
SQL
echo "== DB: pgbench, the API's full read transaction as meridian_app, one statement per round trip"
"$PGBIN/pgbench" -n -c"$CONNS" -j2 -T"$SECS" -M prepared -f "$STATE/tx.sql" "$APP_URL" | grep -E '^(tps|latency)'
{ echo '\startpipeline'; cat "$STATE/tx.sql"; echo '\endpipeline'; } >"$STATE/tx-pipeline.sql"
echo "== DB: pgbench, the same transaction sent as one pipeline"
"$PGBIN/pgbench" -n -c"$CONNS" -j2 -T"$SECS" -M prepared -f "$STATE/tx-pipeline.sql" "$APP_URL" | grep -E '^(tps|latency)'
python3 -c "print(f'ratio API/pgbench = {float(\"$API_RPS\")/float(\"$DB_TPS\"):.2f}  (API {float(\"$API_RPS\"):.0f} req/s, pgbench {float(\"$DB_TPS\"):.0f} tps)')"
