#!/usr/bin/env bash
# Noisy-neighbour benchmark: starts its own `meridian dev` (release, temp state dir,
# us-east1 only) and runs `loadtest noisy` against it. Extra arguments go to
# `loadtest noisy` (e.g. --seconds 30 --tenants 10 --rate 20 --noisy-limit 50 --factor 20).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p meridian-local -p loadtest
STATE=$(mktemp -d /tmp/meridian-noisy-XXXX)
chmod 755 "$STATE"
MERIDIAN_LOG__FILTER=warn target/release/meridian --state-dir "$STATE" dev --regions us-east1 >"$STATE/dev.out" 2>"$STATE/dev.err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 100); do grep -q '^ready' "$STATE/dev.out" && break; sleep 0.2; done
grep -q '^ready' "$STATE/dev.out" || { cat "$STATE/dev.out" "$STATE/dev.err"; exit 1; }
BASE=$(awk '/^node us-east1 /{print $3}' "$STATE/dev.out")
target/release/loadtest noisy --base "$BASE" --keys "$STATE/keys.json" --out loadtest/results/noisy-neighbour.json "$@"
