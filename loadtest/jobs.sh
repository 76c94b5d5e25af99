#!/usr/bin/env bash
# Job-queue fairness and scale benchmark (issue 13 item 5); see loadtest/README.md.
#   loadtest/jobs.sh [tenants] [flood] [rate/s] [seconds/phase] [nodes] [--kill]
# Starts `meridian dev` for its embedded PostgreSQL only (the dev node's own worker
# pool is off: MERIDIAN_JOBS__ENABLED=false), then `jobs run` (loadtest/src/bin/jobs.rs)
# with worker processes of its own. Prints the figures as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTS=${1:-1000}; FLOOD=${2:-100000}; RATE=${3:-100}; SECS=${4:-30}; NODES=${5:-2}; KILL=${6:-}
# PROFILE=debug runs the debug build (quicker to build; slower to run).
PROFILE=${PROFILE:-release}
if [[ $PROFILE == release ]]; then cargo build --release -q -p meridian-local -p loadtest; else cargo build -q -p meridian-local -p loadtest; fi
BIN=target/$PROFILE/meridian
STATE=$(mktemp -d /tmp/meridian-jobs-XXXX); chmod 755 "$STATE"
OUT="$STATE/dev.out"
# Own ports (another `meridian dev` may hold 8080/9090): the node only hosts the database.
cp -r regions "$STATE/regions"
sed -i 's/^address = "127.0.0.11:8080"/address = "127.0.0.11:18480"\nadmin_address = "127.0.0.11:19490"/' "$STATE/regions/us-east1.toml"
MERIDIAN_JOBS__ENABLED=false MERIDIAN_LOG__FILTER=warn "$BIN" --state-dir "$STATE" dev --regions-dir "$STATE/regions" --regions us-east1 >"$OUT" 2>"$STATE/dev.err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 100); do grep -q '^ready' "$OUT" && break; sleep 0.2; done
grep -q '^ready' "$OUT" || { cat "$OUT" "$STATE/dev.err"; exit 1; }
PG=$(awk '/^postgres /{print $2}' "$OUT")
APP_URL="postgres://meridian_app:$(cat "$STATE/app.password")@${PG#*@}"
MERIDIAN_LOG__FILTER=warn target/$PROFILE/jobs run --admin-url "$PG" --app-url "$APP_URL" \
  --tenants "$TENANTS" --flood "$FLOOD" --rate "$RATE" --seconds "$SECS" --nodes "$NODES" $KILL
