#!/usr/bin/env bash
# Scale benchmark: starts its own `meridian dev` (release, temp state dir, us-east1
# only), runs `loadtest scale` against it (results/scale.json), then restarts the
# node on the same database and records the fresh node's memory with every tenant
# loaded at start (results/scale-restart.json). Extra arguments go to the first
# `loadtest scale` (e.g. --tenants 100000 --concurrency 8).
# The node listens on $SCALE_ADDRESS (default 127.0.0.111:8080), not the region
# file's address, so a `meridian dev` already running on this machine is never
# mistaken for this one.
set -euo pipefail
cd "$(dirname "$0")/.."
ADDRESS=${SCALE_ADDRESS:-127.0.0.111:8080}
if ss -Hltn "( sport = :${ADDRESS##*:} )" | grep -q "${ADDRESS%:*}:"; then
    echo "something already listens on $ADDRESS; set SCALE_ADDRESS to a free address" >&2
    exit 1
fi
cargo build --release -q -p meridian-local -p loadtest
STATE=$(mktemp -d /tmp/meridian-scale-XXXX)
chmod 755 "$STATE"
mkdir "$STATE/regions"
cp regions/*.toml "$STATE/regions/"
sed -i "s/^address = .*/address = \"$ADDRESS\"/" "$STATE/regions/us-east1.toml"
DEV=
start() {
    MERIDIAN_LOG__FILTER=warn target/release/meridian --state-dir "$STATE" dev --regions us-east1 --regions-dir "$STATE/regions" >"$STATE/dev.out" 2>"$STATE/dev.err" &
    DEV=$!
    for _ in $(seq 1 600); do grep -qs '^ready' "$STATE/dev.out" && break; sleep 0.2; done
    grep -q '^ready' "$STATE/dev.out" || { cat "$STATE/dev.out" "$STATE/dev.err"; exit 1; }
}
stop() { kill -TERM "$DEV" 2>/dev/null || true; wait "$DEV" 2>/dev/null || true; }
trap 'stop; rm -rf "$STATE"' EXIT
start
BASE=$(awk '/^node us-east1 /{print $3}' "$STATE/dev.out")
target/release/loadtest scale --base "$BASE" --keys "$STATE/keys.json" --out loadtest/results/scale.json "$@"
stop
start
# Let the start-up load's garbage be returned and the first refreshes run.
sleep 5
target/release/loadtest scale --base "$BASE" --keys "$STATE/keys.json" --tenants 0 --out loadtest/results/scale-restart.json
