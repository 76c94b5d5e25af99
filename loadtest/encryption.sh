#!/usr/bin/env bash
# Benchmark: the cost of per-tenant message encryption (issue 15): two tenants
# of the same plan on one node, "sealed" (policy on) and "plain" (policy off),
# loaded one at a time and interleaved (sealed, plain, sealed, plain, …) so
# that the load of a shared machine hits both alike:
#   post: wrk POST /v1/channels/{id}/messages (the tenant's post channel)
#   page: wrk GET  /v1/channels/{id}/messages?limit=50 — 200 sealed bodies
#         (sealed) or plaintext bodies (plain)
# and the DEK cache hit rate from the node's /metrics afterwards. The policies
# are set once, before any message: toggling one tenant's policy between runs
# would start its `messages.seal` job over the other mode's rows in the middle
# of the measurement. Every status wrk saw is printed.
#
#   loadtest/encryption.sh [connections=16] [seconds=10] [rounds=2]
#
# Starts its own `meridian dev --regions us-east1` (release build unless BIN is
# given; state in a temp dir). Prints the load average before every run.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-16}; SECS=${2:-10}; ROUNDS=${3:-2}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
if [[ -z ${BIN:-} ]]; then cargo build --release -q -p meridian-local; BIN=target/release/meridian; fi
STATE=$(mktemp -d /tmp/meridian-enc-XXXX); chmod 755 "$STATE"
OUT="$STATE/dev.out"
MERIDIAN_LOG__FILTER=warn "$BIN" --state-dir "$STATE" dev --regions us-east1 >"$OUT" 2>"$STATE/dev.err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 150); do grep -q '^ready' "$OUT" && break; sleep 0.2; done
grep -q '^ready' "$OUT" || { cat "$OUT" "$STATE/dev.err"; exit 1; }
BASE=$(awk '/^node us-east1 /{print $3}' "$OUT")
METRICS=$(awk '/^metrics us-east1 /{print $3}' "$OUT")

ADMIN=$("$BIN" --state-dir "$STATE" token --platform-admin)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
tenant() {
  curl -sf -X POST "$BASE/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"slug\":\"$1\",\"name\":\"$1\",\"home_region\":\"us-east1\",\"plan\":\"enterprise\",\"limits\":{\"requests_per_second\":100000,\"burst\":100000,\"concurrent_requests\":10000},\"owner\":{\"email\":\"o@$1.example\",\"display_name\":\"Owner\"}}"
}
declare -A TOKEN_OF PAGE POST
for mode in on off; do
  slug=$([[ $mode == on ]] && echo sealed || echo plain)
  TJ=$(tenant "$slug")
  T=$(echo "$TJ" | json 'd["id"]'); U=$(echo "$TJ" | json 'd["owner"]["id"]')
  TOKEN_OF[$mode]=$("$BIN" --state-dir "$STATE" token --tenant "$T" --user "$U" --role owner)
  H=(-H "Authorization: Bearer ${TOKEN_OF[$mode]}" -H 'Content-Type: application/json')
  [[ $mode == on ]] && curl -sf -X PATCH "$BASE/v1/tenants/$T/encryption" "${H[@]}" -d '{"messages":true}' >/dev/null
  PAGE[$mode]=$(curl -sf -X POST "$BASE/v1/channels" "${H[@]}" -d '{"name":"page"}' | json 'd["id"]')
  POST[$mode]=$(curl -sf -X POST "$BASE/v1/channels" "${H[@]}" -d '{"name":"post"}' | json 'd["id"]')
  # The page channel, through the API (so the sealed one is sealed by the node).
  seq 1 200 | xargs -P 8 -I{} curl -sf -o /dev/null -X POST "$BASE/v1/channels/${PAGE[$mode]}/messages" "${H[@]}" \
    -d '{"body":"message number {} with a body of ordinary length for a chat message"}'
done

declare -A POST_RPS PAGE_RPS
for round in $(seq 1 "$ROUNDS"); do
  for mode in on off; do
    export TOKEN=${TOKEN_OF[$mode]}
    echo "== round $round, encryption $mode: post (load $(cut -d' ' -f1-3 /proc/loadavg))"
    METHOD=POST REQ_PATH="/v1/channels/${POST[$mode]}/messages" wrk -t2 -c"$CONNS" -d"${SECS}s" --latency \
      -s loadtest/encryption.lua "$BASE" | tee "$STATE/post.txt" | grep -E 'Requests/sec|^ +(50|99)%|status'
    POST_RPS[$mode]+="$(awk '/^Requests\/sec/{print $2}' "$STATE/post.txt") "
    echo "== round $round, encryption $mode: page (load $(cut -d' ' -f1-3 /proc/loadavg))"
    METHOD=GET REQ_PATH="/v1/channels/${PAGE[$mode]}/messages?limit=50" wrk -t2 -c"$CONNS" -d"${SECS}s" --latency \
      -s loadtest/encryption.lua "$BASE" | tee "$STATE/page.txt" | grep -E 'Requests/sec|^ +(50|99)%|status'
    PAGE_RPS[$mode]+="$(awk '/^Requests\/sec/{print $2}' "$STATE/page.txt") "
  done
done
# The sealed tenant's page must really be sealed bodies read back.
curl -sf "$BASE/v1/channels/${PAGE[on]}/messages?limit=1" -H "Authorization: Bearer ${TOKEN_OF[on]}" | json 'd["items"][0]["body"]' | grep -q '^message number'
curl -sf "$METRICS" | grep -E '^meridian_(dek|keyring)[a-z_]*' || echo "(no DEK cache metrics found)"
python3 - "${POST_RPS[on]}" "${POST_RPS[off]}" "${PAGE_RPS[on]}" "${PAGE_RPS[off]}" <<'PY'
import sys
post_on, post_off, page_on, page_off = ([float(x) for x in a.split()] for a in sys.argv[1:])
mean = lambda xs: sum(xs) / len(xs)
for name, on, off in (("post", post_on, post_off), ("page", page_on, page_off)):
    print(f"{name}: on {' '.join(f'{x:.0f}' for x in on)} req/s (mean {mean(on):.0f}), "
          f"off {' '.join(f'{x:.0f}' for x in off)} (mean {mean(off):.0f}): "
          f"encryption costs {100 * (1 - mean(on) / mean(off)):.1f}% of throughput")
PY
