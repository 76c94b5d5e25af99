#!/usr/bin/env bash
# Benchmark: the GIN pending list of messages_search_idx (fastupdate) — what it
# saves the writers and what it costs search (issue 11). With fastupdate on
# (PostgreSQL's default) an INSERT appends its entries to one unsorted pending
# list, shared by every tenant, that each search scans whole until VACUUM or
# gin_pending_list_limit (4 MB) merges it into the index — and the INSERT that
# crosses the limit merges it, on its writer's clock.
#
#   loadtest/gin-pending.sh [messages=200000] [writers=16] [seconds=8]
#
# For fastupdate on and off: a tenant with N messages (VACUUMed: the list
# empty), pgbench -cW bare INSERTs of messages for S s (tps, latency average,
# stddev, max), the pending list it left (pgstattuple), then pgbench -c1 searches
# as meridian_app through search_messages (a selective term and one matching
# nothing) with that list still pending. Starts its own `meridian dev` (release
# build unless BIN is given).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}; W=${2:-16}; SECS=${3:-8}
PGBIN=$(pg_config --bindir)
if [[ -z ${BIN:-} ]]; then cargo build --release -q -p meridian; BIN=target/release/meridian; fi
STATE=$(mktemp -d /tmp/meridian-gin-XXXX); chmod 755 "$STATE"
OUT="$STATE/dev.out"
MERIDIAN_LOG__FILTER=warn "$BIN" --state-dir "$STATE" dev --regions us-east1 --regions-dir "${REGIONS_DIR:-regions}" >"$OUT" 2>"$STATE/dev.err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 150); do grep -q '^ready' "$OUT" && break; sleep 0.2; done
grep -q '^ready' "$OUT" || { cat "$OUT" "$STATE/dev.err"; exit 1; }
PG=$(awk '/^postgres /{print $2}' "$OUT")
BASE=$(awk '/^node us-east1 /{print $3}' "$OUT")
ADMIN=$("$BIN" --state-dir "$STATE" token --platform-admin)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
TENANT_JSON=$(curl -sf -X POST "$BASE/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"slug":"gin","name":"Gin","home_region":"us-east1","plan":"enterprise","owner":{"email":"gin@gin.example","display_name":"Gin"}}')
T=$(echo "$TENANT_JSON" | json 'd["id"]'); U=$(echo "$TENANT_JSON" | json 'd["owner"]["id"]')
CHAN="'00000000-0000-4000-8000-' || lpad(%s::text, 12, '0')"
psql_() { "$PGBIN/psql" -qAt "$PG" "$@"; }
psql_ -c "CREATE EXTENSION IF NOT EXISTS pgstattuple;
  INSERT INTO channels (tenant_id, id, home_region, name, created_by)
  SELECT '$T', ($(printf "$CHAN" g))::uuid, 'us-east1', 'c' || g, '$U' FROM generate_series(0, $W - 1) g;
  INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
  SELECT '$T', gen_random_uuid(), 'us-east1', ($(printf "$CHAN" "(g % $W)"))::uuid, '$U',
         'w' || (g::bigint * 7919 % 5003) || ' w' || (g::bigint * 104729 % 4999) || CASE WHEN g % 10000 = 0 THEN ' needle' ELSE ' hay' END,
         now() - make_interval(secs => g) FROM generate_series(1, $N) g;"
cat >"$STATE/insert.sql" <<SQL
\set w random(0, 5002)
INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body)
VALUES ('$T', gen_random_uuid(), 'us-east1', ($(printf "$CHAN" ":client_id"))::uuid, '$U', 'w' || :w || ' a post of a busy writer, of ordinary length');
SQL
APP_URL="postgres://meridian_app:$(cat "$STATE/app.password")@${PG#*@}"
for term in needle zzzabsent; do
  cat >"$STATE/search-$term.sql" <<SQL
BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY;
SELECT set_config('app.tenant_id', '$T', true);
SELECT count(*) FROM public.search_messages('$T'::uuid, '$term'::text, 51::bigint, 0::bigint);
COMMIT;
SQL
done
pending() { psql_ -c "SELECT 'pending list: ' || pending_pages || ' pages, ' || pending_tuples || ' tuples' FROM pgstatginindex('messages_search_idx')"; }
for mode in on off; do
  psql_ -c "ALTER INDEX messages_search_idx SET (fastupdate = $mode);"
  psql_ -c "VACUUM ANALYZE messages;"
  echo "== fastupdate = $mode (load: $(cut -d' ' -f1-3 /proc/loadavg)); $(pending)"
  echo "-- pgbench -c$W -j2 -T$SECS: bare INSERT of a message"
  (cd "$STATE" && "$PGBIN/pgbench" -n -c"$W" -j2 -T"$SECS" -M prepared -l --log-prefix=ins-$mode -f "$STATE/insert.sql" "$PG") | grep -E '^(tps|latency)'
  cat "$STATE"/ins-$mode.* | python3 -c "
import sys; l=sorted(int(x.split()[2]) for x in sys.stdin)
print(f'   INSERT latency p50 {l[len(l)//2]/1000:.2f} ms, p99 {l[int(len(l)*.99)]/1000:.2f} ms, p99.9 {l[int(len(l)*.999)]/1000:.2f} ms, max {l[-1]/1000:.1f} ms')"
  echo "   after the writers: $(pending)"
  for term in needle zzzabsent; do
    echo "-- pgbench -c1 -t200: search '$term' as meridian_app, the list still pending"
    (cd "$STATE" && "$PGBIN/pgbench" -n -c1 -t200 -M prepared -l --log-prefix=s-$mode-$term -f "$STATE/search-$term.sql" "$APP_URL") >/dev/null
    cat "$STATE"/s-$mode-$term.* | python3 -c "
import sys; l=sorted(int(x.split()[2]) for x in sys.stdin)
print(f'   search p50 {l[len(l)//2]/1000:.2f} ms, p99 {l[int(len(l)*.99)]/1000:.2f} ms')"
  done
done
