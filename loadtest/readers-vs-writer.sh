#!/usr/bin/env bash
# What one tenant's posts cost other tenants' page reads inside PostgreSQL (issue
# 11, item 5: the noisy-neighbour benchmark's writers alone moved the quiet
# tenants' p99 by ≈ +8%, far more than their CPU). pgbench only, no node:
# five clients read a 50-message page in the API's read transaction
# (SERIALIZABLE, READ ONLY, pipelined) in a closed loop, alone and then while
# two clients post at 25 a second in the API's post transaction (the shape of
# `write-split.sh` post-1rt), once at SERIALIZABLE as the node runs it and
# once at READ COMMITTED. Prints per phase the readers' count, p50 and p99
# (from pgbench's per-transaction log) and tps, and the writer's tps.
#
#   loadtest/readers-vs-writer.sh [rounds=3] [seconds=15]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}; SECS=${2:-15}
W=2
source loadtest/lib-writes.sh
printf '\\startpipeline\n%s\n%s\n%s\nCOMMIT;\n\\endpipeline\n' "${PROLOGUE%%$'\n'SELECT status*}" "$POST" "$OUTBOX_NEW" >"$STATE/post.sql"
sed 's/ISOLATION LEVEL SERIALIZABLE/ISOLATION LEVEL READ COMMITTED/' "$STATE/post.sql" >"$STATE/post-rc.sql"
READCHAN="('00000000-0000-4000-8000-' || lpad('999', 12, '0'))::uuid"
"$PGBIN/psql" -q "$PG" -c "INSERT INTO channels (tenant_id, id, home_region, name, created_by)
    VALUES ('$T', $READCHAN, 'us-east1', 'reads', '$U');
  INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
  SELECT '$T', gen_random_uuid(), 'us-east1', $READCHAN, '$U', 'a message of ordinary length to read ' || g,
         now() - g * interval '1 second' FROM generate_series(1, 500) g;" -c "VACUUM ANALYZE messages"
cat >"$STATE/read.sql" <<SQL
\startpipeline
BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY;
SELECT set_config('app.tenant_id', '$T', true), set_config('statement_timeout', '5000ms', true);
SELECT id, channel_id, author_id, body, created_at, body_enc FROM messages
 WHERE tenant_id = '$T' AND channel_id = $READCHAN ORDER BY created_at DESC, id DESC LIMIT 50;
COMMIT;
\endpipeline
SQL
percentiles() { awk '{print $3}' "$@" | sort -n | awk '{a[NR]=$1} END {printf "n=%d p50=%dus p99=%dus", NR, a[int(NR*0.5)], a[int(NR*0.99)]}'; }
phase() { # phase NAME [writer script]
  rm -f "$STATE"/rl.*
  local writer=
  if [[ -n ${2:-} ]]; then
    "$PGBIN/pgbench" -n -c2 -j1 -R 25 -T$((SECS + 1)) -M prepared --max-tries=1 -f "$STATE/$2" "$APP_URL" >"$STATE/w.txt" 2>&1 &
    writer=$!; sleep 0.5
  fi
  (cd "$STATE" && "$PGBIN/pgbench" -n -c5 -j1 -T"$SECS" -M prepared -l --log-prefix=rl -f read.sql "$APP_URL" >r.txt 2>&1)
  local wrote=
  if [[ -n $writer ]]; then wait "$writer"; wrote="writer $(awk '/^tps/{printf "%.1f tps", $3}' "$STATE/w.txt")"; fi
  echo "$1 (load $(cut -d' ' -f1 /proc/loadavg)): readers $(percentiles "$STATE"/rl.*) $(awk '/^tps/{printf "%.0f tps", $3}' "$STATE/r.txt") $wrote"
}
for _ in $(seq 1 "$ROUNDS"); do
  phase alone; phase serializable-writer post.sql; phase alone; phase read-committed-writer post-rc.sql
done
