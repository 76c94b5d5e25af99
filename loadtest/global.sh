#!/usr/bin/env bash
# Global user mix, edge-first vs single region: the same users and mix twice,
# routed by the GeoDNS (each location to its nearest healthy region), then every
# user sent to us-east1; prints p50/p99 per location side by side.
#
#   loadtest/global.sh [seconds=30] [users-per-location=4]     (WAN=0 to skip --wan;
#   LOCAL_SHARE=75: that percent of each location's users belong to a tenant homed there)
source "$(dirname "$0")/lib-dev.sh"
SECS=${1:-30}; USERS=${2:-4}
OUT=loadtest/results; mkdir -p "$OUT"
COMMON=(--keys "$STATE/keys.json" "${REGIONS[@]}" --seconds "$SECS" --users-per-location "$USERS"
  --local-share "${LOCAL_SHARE:-0}")
SUFFIX=$([[ ${LOCAL_SHARE:-0} == 0 ]] || echo "-local${LOCAL_SHARE}")
EDGE="$OUT/global-edge$SUFFIX.json"; SINGLE="$OUT/global-us-east1$SUFFIX.json"
"$L" global "${COMMON[@]}" "${ROUTING[@]}" --out "$EDGE"
"$L" global "${COMMON[@]}" --fixed-region us-east1 --out "$SINGLE"
echo
echo "p50 / p99 ms per location: ${ROUTING[*]}  vs  --fixed-region us-east1"
jq -r -n --slurpfile a "$EDGE" --slurpfile b "$SINGLE" '
  (["location", "edge_p50", "edge_p99", "us-east1_p50", "us-east1_p99"] | @tsv),
  (($a[0].by_location | keys[]) as $l
   | [$l, $a[0].by_location[$l].p50_ms, $a[0].by_location[$l].p99_ms,
          $b[0].by_location[$l].p50_ms, $b[0].by_location[$l].p99_ms]
   | @tsv)' | column -t
