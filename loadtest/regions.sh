#!/usr/bin/env bash
# Multi-region benchmarks on loopback (no WAN latency emulation):
#  1. the cost of a forwarded request: the same page read at the tenant's home node
#     and at another region's node (one signed hop), wrk -c16;
#  2. relocating a tenant with N messages while a writer keeps posting to it.
#
#   loadtest/regions.sh [seconds=15] [messages=100000]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-15}; MESSAGES=${2:-100000}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
PGBIN=$(pg_config --bindir)
cargo build --release -q -p meridian-local
BIN=target/release/meridian
STATE=$(mktemp -d /tmp/meridian-regions-XXXX); chmod 755 "$STATE"
MERIDIAN_LOG__FILTER=warn "$BIN" --state-dir "$STATE" dev --regions us-east1,europe-west1 >"$STATE/out" 2>"$STATE/err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 150); do grep -q '^ready' "$STATE/out" && break; sleep 0.2; done
grep -q '^ready' "$STATE/out" || { cat "$STATE/out" "$STATE/err"; exit 1; }
PG=$(awk '/^postgres /{print $2}' "$STATE/out")
US=$(awk '/^node us-east1 /{print $3}' "$STATE/out"); EU=$(awk '/^node europe-west1 /{print $3}' "$STATE/out")
M="$BIN --state-dir $STATE"
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
ADMIN=$($M token --platform-admin)
TJ=$(curl -sf -X POST "$EU/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"slug":"far","name":"Far","home_region":"europe-west1","plan":"enterprise","limits":{"requests_per_second":100000,"burst":100000,"concurrent_requests":10000},"owner":{"email":"f@far.example","display_name":"F"}}')
T=$(echo "$TJ" | json 'd["id"]'); U=$(echo "$TJ" | json 'd["owner"]["id"]')
TOKEN=$($M token --tenant "$T" --user "$U" --role owner)
C=$(curl -sf -X POST "$EU/v1/channels" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"c"}' | json 'd["id"]')
"$PGBIN/psql" -q "$PG" -c "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
  SELECT '$T', gen_random_uuid(), 'europe-west1', '$C', '$U', 'message ' || g || ' of ordinary length for a chat line',
         now() - make_interval(secs => g) FROM generate_series(1, $MESSAGES) g;
  INSERT INTO tenant_usage_shards (tenant_id, shard, home_region, used_bytes, granted_bytes)
    SELECT '$T', 0, 'europe-west1', s, s FROM (SELECT sum(octet_length(body))::bigint AS s FROM messages WHERE tenant_id = '$T') x;
  UPDATE tenant_usage SET granted_bytes = granted_bytes + (SELECT sum(octet_length(body))::bigint FROM messages WHERE tenant_id = '$T') WHERE tenant_id = '$T';
  ANALYZE messages;"

for where in "home:$EU" "forwarded:$US"; do
  name=${where%%:*}; base=${where#*:}
  echo "== $name: wrk -t2 -c16 -d${SECS}s $base/v1/channels/$C/messages?limit=50"
  wrk -t2 -c16 -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" "$base/v1/channels/$C/messages?limit=50" \
    | grep -E "Requests/sec|^ +(50|99)%|Non-2xx|Socket errors"
done

echo "== relocation of $MESSAGES messages europe-west1 → us-east1 under writes"
cat >"$STATE/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"body":"written during the relocation"}'
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init() statuses = {} end
function response(status) statuses[status] = (statuses[status] or 0) + 1 end
function done()
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do print("writer status " .. status .. ": " .. n) end
  end
end
LUA
wrk -t1 -c2 -d120s -s "$STATE/post.lua" -H "Authorization: Bearer $TOKEN" "$US/v1/channels/$C/messages" >"$STATE/writer.txt" &
WRITER=$!
sleep 1
START=$(date +%s.%N)
curl -sf -X POST "$US/v1/tenants/$T/relocation" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d '{"to_region":"us-east1"}' >/dev/null
while :; do
  STATUS=$(curl -sf "$US/v1/tenants/$T/relocation" -H "Authorization: Bearer $ADMIN")
  case $(echo "$STATUS" | json 'd["status"]') in done|failed) break;; esac
  sleep 0.5
done
END=$(date +%s.%N)
kill -INT $WRITER; wait $WRITER || true
echo "$STATUS" | json '{k: d[k] for k in ("status","counts_before","counts_after","moved","created_at","finished_at")}'
python3 -c "print(f'relocation wall time (request → done, 0.5 s polling): {$END-$START:.1f} s')"
grep -E "requests in|Non-2xx|Socket errors|writer status" "$STATE/writer.txt" || true
"$PGBIN/psql" -Atq "$PG" -c "SELECT 'rows outside us-east1: ' || count(*) FROM messages WHERE tenant_id = '$T' AND home_region <> 'us-east1'"
