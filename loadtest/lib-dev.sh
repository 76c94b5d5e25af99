# Sourced by global.sh and drill.sh: builds release, starts `meridian dev` (with
# --geodns / --wan when this build has them) in a private state directory, waits
# for `ready`, and stops it on exit. Sets M, L, STATE, DEVOUT, DEV, ROUTING, REGIONS.
# REGIONS_DIR=<dir> runs on other region files (e.g. other ports, when another
# dev holds the usual addresses); PORT is then the port the GeoDNS answers refer to.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p meridian-local
cargo build --release -q -p loadtest
M=target/release/meridian
L=target/release/loadtest
STATE=$(mktemp -d /tmp/meridian-global-XXXX); chmod 755 "$STATE"
DEVOUT="$STATE/dev.out"
REGIONS_DIR=${REGIONS_DIR:-regions}
REGIONS=(--regions-dir "$REGIONS_DIR")
DEV_FLAGS=("${REGIONS[@]}")
if "$M" dev --help | grep -q -- --geodns; then
  DEV_FLAGS+=(--geodns)
  ROUTING=(--dns 127.0.0.1:5300 --api-name api.meridian.test --port "${PORT:-8080}")
else
  echo "note: this meridian has no 'dev --geodns': users go to their own region's node (--no-dns)" >&2
  ROUTING=(--no-dns)
fi
if [[ -n ${RESTART_AFTER:-} ]] && "$M" dev --help | grep -q -- --restart-after; then
  DEV_FLAGS+=(--restart-after "$RESTART_AFTER")
fi
if [[ ${WAN:-1} == 1 ]] && "$M" dev --help | grep -q -- --wan; then
  DEV_FLAGS+=(--wan)
fi
MERIDIAN_LOG__FILTER=warn "$M" --state-dir "$STATE" dev "${DEV_FLAGS[@]}" >"$DEVOUT" 2>"$STATE/dev.err" &
DEV=$!
cleanup() {
  if [[ -n ${STOPPED_PID:-} ]]; then kill -CONT "$STOPPED_PID" 2>/dev/null || true; fi
  kill -TERM "$DEV" 2>/dev/null || true
  wait "$DEV" 2>/dev/null || true
  rm -rf "$STATE"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  grep -q '^ready' "$DEVOUT" && break
  kill -0 "$DEV" 2>/dev/null || break
  sleep 0.2
done
grep -q '^ready' "$DEVOUT" || { echo "meridian dev did not get ready:" >&2; cat "$DEVOUT" "$STATE/dev.err" >&2; exit 1; }
echo "meridian dev ready (${DEV_FLAGS[*]}); state $STATE" >&2
