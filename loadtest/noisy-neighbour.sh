#!/usr/bin/env bash
# Noisy-neighbour benchmarks: start their own `meridian dev` (release, temp state
# dir, us-east1 only) and run against it.
#
#   loadtest/noisy-neighbour.sh [args…]        rate: `loadtest noisy` (a tenant
#       sending 20× its rate limit); args go to it (e.g. --seconds 30 --tenants 10
#       --rate 20 --noisy-limit 50 --factor 20).
#   loadtest/noisy-neighbour.sh cost [args…]   cost: `loadtest fair` (a tenant
#       doing expensive but allowed work — searches of a word in all of its
#       200,000 messages, 200-row pages, writes — while quiet tenants read
#       pages); alone vs with it, median of --runs 5 (default), load average per
#       run, a summary table at the end. Args go to `loadtest fair` (e.g.
#       --seconds 15 --runs 5 --quiet-tenants 5 --quiet-rate 0 --searchers 6).
#       Node settings can be changed through MERIDIAN_LIMITS__COST__* variables
#       (e.g. MERIDIAN_LIMITS__COST__EXPENSIVE_PER_NODE=0 to compare). With the
#       node's and PostgreSQL's pids, each phase records their CPU (cores).
#       OUT=<file> writes the results elsewhere than loadtest/results/noisy-cost.json.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=rate
if [ "${1:-}" = cost ]; then MODE=cost; shift; fi
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p meridian-local -p loadtest
STATE=$(mktemp -d /tmp/meridian-noisy-XXXX)
chmod 755 "$STATE"
# MERIDIAN_BIN=<binary> runs another build of the node (e.g. to alternate two commits).
MERIDIAN_LOG__FILTER=warn "${MERIDIAN_BIN:-target/release/meridian}" --state-dir "$STATE" dev --regions us-east1 >"$STATE/dev.out" 2>"$STATE/dev.err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 300); do grep -q '^ready' "$STATE/dev.out" && break; sleep 0.2; done
grep -q '^ready' "$STATE/dev.out" || { cat "$STATE/dev.out" "$STATE/dev.err"; exit 1; }
BASE=$(awk '/^node us-east1 /{print $3}' "$STATE/dev.out")
mkdir -p loadtest/results
if [ "$MODE" = rate ]; then
  target/release/loadtest noisy --base "$BASE" --keys "$STATE/keys.json" --out loadtest/results/noisy-neighbour.json "$@"
else
  PG=$(awk '/^postgres /{print $2}' "$STATE/dev.out")
  # The node and the postmaster, for the CPU each phase used (`loadtest fair`).
  NODE_PID=$(pgrep -f -- "$STATE serve --region us-east1" | head -1)
  PG_PID=$(head -1 "$STATE/pg/data/postmaster.pid")
  echo "uptime at start: $(uptime)"
  target/release/loadtest fair --base "$BASE" --keys "$STATE/keys.json" \
    --psql "$(pg_config --bindir)/psql" --pg "$PG" --node-pid "$NODE_PID" --pg-pid "$PG_PID" \
    --out "${OUT:-loadtest/results/noisy-cost.json}" "$@"
  echo "uptime at end: $(uptime)"
fi
