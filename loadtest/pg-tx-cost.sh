#!/usr/bin/env bash
# PostgreSQL CPU per transaction for variants of the API's page read transaction,
# run by pgbench as meridian_app (8 clients, 10 s; CPU ticks of pgbench's backends
# over 7 s of it): pipelined (one Sync), with the statement_timeout setting, at
# REPEATABLE READ, one statement per round trip; and the page SELECT alone.
#
#   loadtest/pg-tx-cost.sh        (MERIDIAN_BIN=<build> for another build's schema)
#
# A sample is spoiled (even negative) when a counted backend exits inside the window.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${MERIDIAN_BIN:-} ]]; then cargo build --release -q -p meridian-local; fi
BIN=${MERIDIAN_BIN:-target/release/meridian}
PGBIN=$(pg_config --bindir)
STATE=$(mktemp -d /tmp/meridian-pgcost-XXXX); chmod 755 "$STATE"; OUT="$STATE/dev.out"
MERIDIAN_LOG__FILTER=warn "$BIN" --state-dir "$STATE" dev --regions us-east1 >"$OUT" 2>"$STATE/dev.err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 100); do grep -q '^ready' "$OUT" && break; sleep 0.2; done
PG=$(awk '/^postgres /{print $2}' "$OUT"); BASE=$(awk '/^node us-east1 /{print $3}' "$OUT")
ADMIN=$("$BIN" --state-dir "$STATE" token --platform-admin)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
TJ=$(curl -sf -X POST "$BASE/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"slug":"bench","name":"Bench","home_region":"us-east1","plan":"enterprise","owner":{"email":"bench@bench.example","display_name":"Bench"}}')
T=$(echo "$TJ" | json 'd["id"]'); U=$(echo "$TJ" | json 'd["owner"]["id"]')
TOKEN=$("$BIN" --state-dir "$STATE" token --tenant "$T" --user "$U" --role owner)
C=$(curl -sf -X POST "$BASE/v1/channels" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"bench"}' | json 'd["id"]')
"$PGBIN/psql" -q "$PG" -c "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
  SELECT '$T', gen_random_uuid(), 'us-east1', '$C', '$U', 'message number ' || g || ' with a body of ordinary length for a chat message',
         now() - make_interval(secs => g) FROM generate_series(1, 2000) g; ANALYZE messages;"
# Stop the node: only pgbench talks to PostgreSQL now.
kill -STOP $(pgrep -f -- "$STATE serve --region us-east1" | head -1)
APP_URL="postgres://meridian_app:$(cat "$STATE/app.password")@${PG#*@}"
PG_MAIN=$(head -1 "$STATE/pg/data/postmaster.pid")
# Backends of pgbench's connections only (autovacuum workers come and go).
ticks() { local t=0 pid v; for pid in $(pgrep -P "$PG_MAIN" -f 'postgres: (meridian_app|postgres) '); do v=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || continue; t=$((t + ${v:-0})); done; echo "$t"; }
HZ=$(getconf CLK_TCK)
# The page with the cursor as literal NULLs (the form before the split): no
# parameters, so pgbench's prepared statement is planned once either way.
PAGE="SELECT id, channel_id, author_id, body, created_at FROM messages WHERE tenant_id = '$T' AND channel_id = '$C' AND (NULL::timestamptz IS NULL OR (created_at, id) < (NULL::timestamptz, NULL::uuid)) ORDER BY created_at DESC, id DESC LIMIT 51;"
variant() { # name isolation settimeout pipeline
  local f="$STATE/$1.sql"
  { [[ $4 == 1 ]] && echo '\startpipeline'
    echo "BEGIN ISOLATION LEVEL $2, READ ONLY;"
    if [[ $3 == 1 ]]; then echo "SELECT set_config('app.tenant_id', '$T', true), set_config('statement_timeout', '5000ms', true);"
    else echo "SELECT set_config('app.tenant_id', '$T', true);"; fi
    echo "SELECT status = 'active' AND role = 'owner' FROM users WHERE tenant_id = '$T' AND id = '$U';"
    echo "$PAGE"; echo "COMMIT;"
    [[ $4 == 1 ]] && echo '\endpipeline'; } >"$f"
  local c=8 t0 t1
  "$PGBIN/pgbench" -n -c$c -j2 -T10 -M prepared -f "$f" "$APP_URL" >"$STATE/$1.out" 2>&1 &
  local pb=$!
  sleep 2; t0=$(ticks); sleep 7; t1=$(ticks)
  wait $pb
  local tps; tps=$(awk '/^tps/{print $3}' "$STATE/$1.out")
  python3 -c "print(f'$1: PostgreSQL {($t1-$t0)/$HZ/(7*$tps)*1e6:.0f} µs CPU per transaction ({$tps:.0f} tps)')"
}
[[ -n ${1:-} ]] && { "$@"; exit; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in 1 2; do
variant pipelined-serializable SERIALIZABLE 0 1
variant pipelined-serializable-timeout SERIALIZABLE 1 1
variant pipelined-repeatable-timeout "REPEATABLE READ" 1 1
variant roundtrips-serializable-timeout SERIALIZABLE 1 0
done
echo "SELECT id, channel_id, author_id, body, created_at, body_enc FROM messages WHERE tenant_id = '$T' AND channel_id = '$C' ORDER BY created_at DESC, id DESC LIMIT 51;" >"$STATE/select.sql"
"$PGBIN/pgbench" -n -c8 -j2 -T10 -M prepared -f "$STATE/select.sql" "$PG" >"$STATE/sel.out" 2>&1 &
pb=$!; sleep 2; t0=$(ticks); sleep 7; t1=$(ticks); wait $pb; tps=$(awk '/^tps/{print $3}' "$STATE/sel.out")
python3 -c "print(f'the page SELECT alone as superuser: PostgreSQL {($t1-$t0)/$HZ/(7*$tps)*1e6:.0f} µs CPU per statement ({$tps:.0f} tps)')"
