#!/usr/bin/env bash
# Benchmark: GET /v1/search p50/p99 for one tenant with TENANT messages, first
# alone in the database, then among TOTAL messages (the rest spread over nine
# other tenants): search must cost what the tenant's index postings cost, not
# what the database holds. Two terms: a selective one (`needle`, 1 message in
# 10,000) and one that matches nothing (`zzzabsent`).
#
#   loadtest/search.sh [total=10000000] [tenant=1000000] [requests=300]
#   BEFORE_BIN=/path/to/meridian-built-before-V6 loadtest/search.sh …
#
# With BEFORE_BIN (a release binary built before sql/postgres/V6__search.sql) the
# first phase is measured with it too, on the same data, before this build's
# node applies V6 (that binary cannot start on a database past V5: refinery
# refuses migrations it does not know). At the end the inline search statement
# (the one before V6) and the function call are also timed as meridian_app with
# pgbench, on the full database.
#
# Latency is per request, sequential (one client), measured by curl's time_total;
# the node, PostgreSQL and curl share the machine. Loading 10 M messages takes
# many minutes (each row's tsvector and the GIN index).
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-10000000}; TENANT=${2:-1000000}; REQUESTS=${3:-300}
OTHERS=9
PGBIN=$(pg_config --bindir)

[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p meridian-local
BIN=target/release/meridian
STATE=$(mktemp -d /tmp/meridian-search-XXXX)
chmod 755 "$STATE"
DEV=
stop_dev() { if [ -n "$DEV" ]; then kill -TERM "$DEV" 2>/dev/null || true; wait "$DEV" 2>/dev/null || true; DEV=; fi; }
trap 'stop_dev; rm -rf "$STATE"' EXIT
start_dev() { # $1: binary
  : >"$STATE/dev.out"
  MERIDIAN_LOG__FILTER=warn "$1" --state-dir "$STATE" dev --regions us-east1 >"$STATE/dev.out" 2>>"$STATE/dev.err" &
  DEV=$!
  for _ in $(seq 1 300); do grep -q '^ready' "$STATE/dev.out" && break; sleep 0.2; done
  grep -q '^ready' "$STATE/dev.out" || { cat "$STATE/dev.out" "$STATE/dev.err"; exit 1; }
  PG=$(awk '/^postgres /{print $2}' "$STATE/dev.out")
  BASE=$(awk '/^node us-east1 /{print $3}' "$STATE/dev.out")
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

start_dev "${BEFORE_BIN:-$BIN}"
ADMIN=$("$BIN" --state-dir "$STATE" token --platform-admin)
UNLIMITED='"limits":{"requests_per_second":100000,"burst":100000,"concurrent_requests":10000}'
provision() { # $1 slug → "tenant user channel"
  local j t u tok c
  j=$(curl -sf -X POST "$BASE/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"slug\":\"$1\",\"name\":\"$1\",\"home_region\":\"us-east1\",\"plan\":\"enterprise\",$UNLIMITED,\"owner\":{\"email\":\"o@$1.example\",\"display_name\":\"O\"}}")
  t=$(echo "$j" | json 'd["id"]'); u=$(echo "$j" | json 'd["owner"]["id"]')
  tok=$("$BIN" --state-dir "$STATE" token --tenant "$t" --user "$u" --role owner)
  c=$(curl -sf -X POST "$BASE/v1/channels" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' -d '{"name":"bench"}' | json 'd["id"]')
  echo "$t $u $c"
}
# Messages of tenant $1 (user $2, channel $3): $4 rows, six words of a 50,000-word
# vocabulary each; every 10,000th also says `needle`. In batches of 1 M.
load() {
  local done=0 n
  while [ "$done" -lt "$4" ]; do
    n=$(( $4 - done < 1000000 ? $4 - done : 1000000 ))
    "$PGBIN/psql" -q "$PG" -c "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
      SELECT '$1', gen_random_uuid(), 'us-east1', '$3', '$2',
             concat_ws(' ', 'w' || (random()*50000)::int, 'w' || (random()*50000)::int, 'w' || (random()*50000)::int,
                            'w' || (random()*50000)::int, 'w' || (random()*50000)::int, 'w' || (random()*50000)::int,
                            CASE WHEN g % 10000 = 0 THEN 'needle' END),
             now() - g * interval '1 second'
      FROM generate_series($done + 1, $done + $n) g"
    done=$(( done + n ))
  done
}

read -r T U C < <(provision bench)
TOKEN=$("$BIN" --state-dir "$STATE" token --tenant "$T" --user "$U" --role owner)
echo "== loading $TENANT messages for the measured tenant $T"
load "$T" "$U" "$C" "$TENANT"
"$PGBIN/psql" -q "$PG" -c "VACUUM ANALYZE messages"

measure() { # $1 label
  local q out
  for q in needle zzzabsent; do
    out="$STATE/lat-$q.txt"; : >"$out"
    curl -sf "$BASE/v1/search?q=$q&limit=50" -H "Authorization: Bearer $TOKEN" | json 'len(d["items"])' >"$STATE/hits"
    for _ in $(seq 1 20); do curl -sf -o /dev/null "$BASE/v1/search?q=$q&limit=50" -H "Authorization: Bearer $TOKEN"; done
    for _ in $(seq 1 "$REQUESTS"); do
      curl -sf -o /dev/null -w '%{time_total}\n' "$BASE/v1/search?q=$q&limit=50" -H "Authorization: Bearer $TOKEN" >>"$out"
    done
    python3 - "$1" "$q" "$(cat "$STATE/hits")" "$out" <<'PY'
import sys
label, q, hits, path = sys.argv[1:5]
xs = sorted(float(l) * 1000 for l in open(path) if l.strip())
pct = lambda p: xs[min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1)]
print(f"{label:<44} q={q:<10} hits={hits:>3}  n={len(xs)}  p50 {pct(50):7.2f} ms  p99 {pct(99):7.2f} ms")
PY
  done
}

if [ -n "${BEFORE_BIN:-}" ]; then
  measure "before V6, tenant $TENANT, database $TENANT"
  stop_dev
  start_dev "$BIN"
fi
measure "V6, tenant $TENANT, database $TENANT"

echo "== loading $(( TOTAL - TENANT )) messages for $OTHERS other tenants"
for i in $(seq 1 $OTHERS); do
  read -r t u c < <(provision "other$i")
  load "$t" "$u" "$c" $(( (TOTAL - TENANT) / OTHERS ))
done
"$PGBIN/psql" -q "$PG" -c "VACUUM ANALYZE messages"
"$PGBIN/psql" -At "$PG" -c "SELECT 'messages in the database: ' || count(*) FROM messages"
measure "V6, tenant $TENANT, database $TOTAL"

# The statement before V6 and the function call, as the service role (RLS on),
# on the full database: per-statement latency from pgbench's log.
APP_URL="postgres://meridian_app:$(cat "$STATE/app.password")@${PG#*@}"
for q in needle zzzabsent; do
  printf '%s\n' "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY;" \
    "SELECT set_config('app.tenant_id', '$T', true);" \
    "SELECT m.id, m.channel_id, m.author_id, m.body, m.created_at, ts_rank(m.body_tsv, websearch_to_tsquery('english', '$q')) AS rank FROM messages m WHERE m.tenant_id = '$T' AND m.body_tsv @@ websearch_to_tsquery('english', '$q') ORDER BY rank DESC, m.created_at DESC, m.id DESC LIMIT 51 OFFSET 0;" \
    "COMMIT;" >"$STATE/inline.sql"
  printf '%s\n' "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY;" \
    "SELECT set_config('app.tenant_id', '$T', true);" \
    "SELECT id, channel_id, author_id, body, created_at, rank FROM public.search_messages('$T', '$q', 51, 0);" \
    "COMMIT;" >"$STATE/function.sql"
  for kind in inline function; do
    (cd "$STATE" && rm -f pgbench_log.* && "$PGBIN/pgbench" -n -c1 -t 50 -M prepared -l -f "$kind.sql" "$APP_URL" >/dev/null)
    python3 - "$kind" "$q" "$STATE" <<'PY'
import glob, sys
kind, q, state = sys.argv[1:4]
# One client, no think time: a transaction's latency is the time since the previous
# one ended (pgbench 15 logs 0 µs for some fast transactions in the latency column).
ends = [int(l.split()[4]) * 1_000_000 + int(l.split()[5]) for f in glob.glob(state + "/pgbench_log.*") for l in open(f)]
xs = sorted((b - a) / 1000 for a, b in zip(ends, ends[1:]))
pct = lambda p: xs[min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1)]
print(f"pgbench as meridian_app, {kind:<8} q={q:<10} n={len(xs)}  p50 {pct(50):7.2f} ms  p99 {pct(99):7.2f} ms")
PY
  done
done
