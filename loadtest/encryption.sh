#!/usr/bin/env bash
# Benchmark: the cost of per-tenant message encryption (issue 15) for ONE tenant,
# policy on vs off, interleaved in the same run (on, off, on, off, …) so that the
# load of a shared machine hits both alike:
#   post: wrk POST /v1/channels/{id}/messages (its own channel per mode)
#   page: wrk GET  /v1/channels/{id}/messages?limit=50 — a channel of sealed
#         bodies (on) or of plaintext bodies (off), 200 messages each
# and the DEK cache hit rate from the node's /metrics afterwards.
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
TENANT_JSON=$(curl -sf -X POST "$BASE/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"slug":"sealed","name":"Sealed","home_region":"us-east1","plan":"enterprise","limits":{"requests_per_second":100000,"burst":100000,"concurrent_requests":10000},"owner":{"email":"o@sealed.example","display_name":"Owner"}}')
T=$(echo "$TENANT_JSON" | json 'd["id"]'); U=$(echo "$TENANT_JSON" | json 'd["owner"]["id"]')
export TOKEN=$("$BIN" --state-dir "$STATE" token --tenant "$T" --user "$U" --role owner)
H=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
channel() { curl -sf -X POST "$BASE/v1/channels" "${H[@]}" -d "{\"name\":\"$1\"}" | json 'd["id"]'; }
policy() { curl -sf -X PATCH "$BASE/v1/tenants/$T/encryption" "${H[@]}" -d "{\"messages\":$1}" >/dev/null; }
declare -A PAGE POST
for mode in on off; do PAGE[$mode]=$(channel "page-$mode"); POST[$mode]=$(channel "post-$mode"); done
# The page channels, through the API (so the sealed one is sealed by the node).
fill() {
  policy "$1"
  seq 1 200 | xargs -P 8 -I{} curl -sf -o /dev/null -X POST "$BASE/v1/channels/${PAGE[$2]}/messages" "${H[@]}" \
    -d '{"body":"message number {} with a body of ordinary length for a chat message"}'
}
fill true on; fill false off

declare -A POST_RPS PAGE_RPS
for round in $(seq 1 "$ROUNDS"); do
  for mode in on off; do
    if [[ $mode == on ]]; then policy true; else policy false; fi
    echo "== round $round, encryption $mode: post (load $(cut -d' ' -f1-3 /proc/loadavg))"
    POST_PATH="/v1/channels/${POST[$mode]}/messages" wrk -t2 -c"$CONNS" -d"${SECS}s" --latency \
      -s loadtest/encryption.lua "$BASE" | tee "$STATE/post.txt" | grep -E 'Requests/sec|^ +(50|99)%|status'
    POST_RPS[$mode]+="$(awk '/^Requests\/sec/{print $2}' "$STATE/post.txt") "
    echo "== round $round, encryption $mode: page (load $(cut -d' ' -f1-3 /proc/loadavg))"
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" \
      "$BASE/v1/channels/${PAGE[$mode]}/messages?limit=50" | tee "$STATE/page.txt" | grep -E 'Requests/sec|^ +(50|99)%|Non-2xx'
    PAGE_RPS[$mode]+="$(awk '/^Requests\/sec/{print $2}' "$STATE/page.txt") "
  done
done
# Every page of the sealed channel must really be sealed bodies read back.
curl -sf "$BASE/v1/channels/${PAGE[on]}/messages?limit=1" -H "Authorization: Bearer $TOKEN" | json 'd["items"][0]["body"]' | grep -q '^message number'
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
