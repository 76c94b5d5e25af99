#!/usr/bin/env bash
# What writing several posts in one transaction saves the database (issue 11,
# item 3; `scope::post_lanes`): pgbench runs the bare autocommit INSERT of a
# message (16 clients), the single post's one-pipeline transaction (16 clients,
# `post-1rt` of write-split.sh), and the lane's batch statement
# (`store::post_batch::BATCH_POST_SQL`'s shape: guards per row, one shard charge,
# the messages, their outbox events and dispatch jobs, COMMIT in the same
# pipeline) with B = 1, 4, 8, 16 posts a transaction, `generate_series` rows in
# place of the node's arrays; then the bare INSERT again. Prints tps and rows/s.
#
#   loadtest/post-batch.sh            # SECS=<seconds> per run, default 8
#
# Starts its own `meridian dev --regions us-east1` (lib-writes.sh; BIN=<binary>,
# default the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
W=16; SECS=${SECS:-8}
source loadtest/lib-writes.sh
printf '%s\n' "$BARE" >"$STATE/bare.sql"
PROLOGUE_1RT=${PROLOGUE%%$'\n'SELECT status*}
printf '\\startpipeline\n%s\n%s\n%s\nCOMMIT;\n\\endpipeline\n' "$PROLOGUE_1RT" "$POST" "$OUTBOX_NEW" >"$STATE/post-1rt.sql"
mk() { # B
B=$1
cat >"$STATE/batch$B.sql" <<SQL
\\startpipeline
$PROLOGUE_1RT
WITH charged AS (UPDATE tenant_usage_shards SET used_bytes = used_bytes + 44*$B
   WHERE tenant_id = '$T' AND shard = :client_id AND cap_bytes = 1099511627776 AND used_bytes + 44*$B <= granted_bytes RETURNING shard),
 p AS (SELECT gen_random_uuid() AS id, '$U'::uuid AS author, 'owner'::text AS role, $BODY::text AS body, g FROM generate_series(1, $B) g)
INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, body_enc, created_at)
SELECT '$T'::uuid, CASE WHEN c.shard IS NULL THEN NULL ELSE p.id END, 'us-east1'::text, $MYCHAN,
  CASE WHEN p.role IS NULL OR EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = '$T'::uuid AND u.id = p.author AND u.status = 'active' AND u.role = p.role) THEN p.author END,
  CASE WHEN (SELECT t.encrypt_messages FROM tenants t WHERE t.id = '$T'::uuid) THEN NULL ELSE p.body END, NULL::bytea, now() FROM p LEFT JOIN charged c ON true;
INSERT INTO outbox_events (tenant_id, id, home_region, kind, subject_kind, subject_id, data)
SELECT '$T', gen_random_uuid(), 'us-east1', 'message.posted', 'message', gen_random_uuid()::text,
  '{"message": {"id": "01a22c64-32f9-7485-8820-f7477733105c", "body": "a post of a busy writer, of ordinary length", "author_id": "$U", "channel_id": "01a22c64-2ba8-77d6-b32f-423e5de1bb75", "created_at": "2026-11-30T12:18:13.883613Z"}}' FROM generate_series(1, $B);
INSERT INTO jobs (id, tenant_id, home_region, kind, payload, max_attempts)
SELECT gen_random_uuid(), '$T'::uuid, 'us-east1'::text, 'outbox.dispatch'::text, '{}'::jsonb, 20::int4 FROM generate_series(1, $B)
WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = '$T'::uuid AND enabled);
COMMIT;
\\endpipeline
SQL
}
for B in 1 4 8 16; do mk $B; done
run() { # name url clients rows-per-tx
  "$PGBIN/pgbench" -n -c"$3" -j2 -T"$SECS" -M prepared --max-tries=1 -f "$STATE/$1.sql" "$2" 2>"$STATE/$1.err" >"$STATE/$1.txt" || { cat "$STATE/$1.err"; exit 1; }
  tps=$(awk '/^tps/{print $3}' "$STATE/$1.txt"); fails=$(awk '/^number of failed/{print $5}' "$STATE/$1.txt")
  python3 -c "print(f'{\"$1\":12} c=$3 {float(\"$tps\"):8.0f} tps  {float(\"$tps\")*$4:8.0f} rows/s fails=$fails')"
}
run bare "$PG" 16 1
run post-1rt "$APP_URL" 16 1
run batch1 "$APP_URL" 16 1
run batch4 "$APP_URL" 4 4
run batch8 "$APP_URL" 2 8
run batch8 "$APP_URL" 4 8
run batch16 "$APP_URL" 2 16
run bare "$PG" 16 1
