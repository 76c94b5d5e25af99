#!/usr/bin/env bash
# Failover drill: the global mix, with one region taken out after a warm-up.
#
#   loadtest/drill.sh [drain|stop|kill] [region=europe-west1] [seconds=40] [warmup=10]
#
# drain: POST /v1/regions/<r>/drain {"force":true}, undrained at the end;
# stop:  SIGSTOP the region's node process (a frozen node), SIGCONT at the end;
# kill:  SIGKILL it; the other regions keep serving and `meridian dev` restarts the
#        node after RESTART_AFTER seconds (default: half the measured run), so the
#        drill shows the failover and the recovery.
MODE=${1:-drain}; REGION=${2:-europe-west1}; SECS=${3:-40}; WARMUP=${4:-10}
RESTART_AFTER=${RESTART_AFTER:-$((SECS / 2))}
source "$(dirname "$0")/lib-dev.sh"
OUT=loadtest/results; mkdir -p "$OUT"
ACTION=(--action drain)
if [[ $MODE == stop || $MODE == kill ]]; then
  # The node is the `serve --region <r>` child of the dev process started above.
  PID=$(pgrep -P "$DEV" -f -- "serve --region $REGION" | head -1)
  [[ -n $PID ]] || { echo "no node process for $REGION under dev pid $DEV" >&2; exit 1; }
  ACTION=(--action kill --pid "$PID" --signal "$MODE")
  [[ $MODE == stop ]] && STOPPED_PID=$PID
fi
"$L" drill --keys "$STATE/keys.json" "${REGIONS[@]}" "${ROUTING[@]}" --region "$REGION" "${ACTION[@]}" \
  --seconds "$SECS" --warmup "$WARMUP" --out "$OUT/drill-$MODE-$REGION.json"
