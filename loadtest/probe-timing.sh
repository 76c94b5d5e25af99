#!/usr/bin/env bash
# Timing side channel check: does a 404 for another tenant's existing id take
# longer than a 404 for an id that exists nowhere?
#
#   loadtest/probe-timing.sh [runs=5] [pairs=400]
#
# Starts its own `meridian dev` (release build, us-east1 only, state in a temp
# dir), provisions a victim tenant with a channel and a prober tenant, then runs
# `runs` rounds of `pairs` interleaved requests from the prober over one
# keep-alive connection: GET /v1/channels/<victim's channel> and
# GET /v1/channels/<random uuid>, in random order within each pair. Prints the
# median latency of each kind per round and their difference (foreign − random).
# The aim (issue 10): every difference below 0.05 ms, with no consistent sign.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}; PAIRS=${2:-400}

cargo build --release -q -p meridian-local
BIN=target/release/meridian
STATE=$(mktemp -d /tmp/meridian-probe-XXXX)
chmod 755 "$STATE"
OUT="$STATE/dev.out"
MERIDIAN_LOG__FILTER=error "$BIN" --state-dir "$STATE" dev --regions us-east1 >"$OUT" 2>"$STATE/dev.err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 100); do grep -q '^ready' "$OUT" && break; sleep 0.2; done
grep -q '^ready' "$OUT" || { cat "$OUT" "$STATE/dev.err"; exit 1; }
BASE=$(awk '/^node us-east1 /{print $3}' "$OUT")

ADMIN=$("$BIN" --state-dir "$STATE" token --platform-admin)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
provision() {
  curl -sf -X POST "$BASE/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"slug\":\"$1\",\"name\":\"$1\",\"home_region\":\"us-east1\",\"plan\":\"enterprise\",
         \"limits\":{\"requests_per_second\":100000,\"burst\":100000,\"concurrent_requests\":10000},
         \"owner\":{\"email\":\"o@$1.example\",\"display_name\":\"O\"}}"
}
VICTIM=$(provision victim)
VT=$(echo "$VICTIM" | json 'd["id"]'); VU=$(echo "$VICTIM" | json 'd["owner"]["id"]')
VTOKEN=$("$BIN" --state-dir "$STATE" token --tenant "$VT" --user "$VU" --role owner)
CHANNEL=$(curl -sf -X POST "$BASE/v1/channels" -H "Authorization: Bearer $VTOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"secret"}' | json 'd["id"]')
PROBER=$(provision prober)
PT=$(echo "$PROBER" | json 'd["id"]'); PU=$(echo "$PROBER" | json 'd["owner"]["id"]')
PTOKEN=$("$BIN" --state-dir "$STATE" token --tenant "$PT" --user "$PU" --role owner)

python3 - "$BASE" "$PTOKEN" "$CHANNEL" "$RUNS" "$PAIRS" <<'PY'
import http.client, random, statistics, sys, time, urllib.parse, uuid
base, token, channel, runs, pairs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
url = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(url.hostname, url.port)
headers = {"Authorization": f"Bearer {token}"}

def timed(path):
    start = time.perf_counter()
    conn.request("GET", path, headers=headers)
    res = conn.getresponse()
    res.read()
    elapsed = (time.perf_counter() - start) * 1000
    assert res.status == 404, (path, res.status)
    return elapsed

for _ in range(100):  # warm-up: connection, token cache, prepared statements
    timed(f"/v1/channels/{uuid.uuid4()}")
    timed(f"/v1/channels/{channel}")
diffs = []
print(f"{'run':>3} {'foreign p50 ms':>15} {'random p50 ms':>14} {'diff ms':>9}")
for run in range(1, runs + 1):
    foreign, missing = [], []
    for _ in range(pairs):
        kinds = ["foreign", "random"]
        random.shuffle(kinds)
        for kind in kinds:
            if kind == "foreign":
                foreign.append(timed(f"/v1/channels/{channel}"))
            else:
                missing.append(timed(f"/v1/channels/{uuid.uuid4()}"))
    f, m = statistics.median(foreign), statistics.median(missing)
    diffs.append(f - m)
    print(f"{run:>3} {f:>15.3f} {m:>14.3f} {f - m:>+9.3f}")
signs = {d > 0 for d in diffs}
worst = max(abs(d) for d in diffs)
print(f"largest |diff| {worst:.3f} ms; signs: {'+' if signs == {True} else '-' if signs == {False} else 'mixed'}")
print("aim met" if worst < 0.05 and len(signs) > 1 else "aim NOT met")
PY
