# Sourced by the write benchmarks (`write-split.sh`, `readers-vs-writer.sh`),
# after `cd` to the repository root with W (writers) set: starts its own
# `meridian dev --regions us-east1` (BIN=<binary>, default the release build;
# REGIONS_DIR=<dir> for other ports), makes a tenant "busy" with W channels and
# usage shards with generous grants, and defines the post's SQL shapes:
# PG, APP_URL (meridian_app), T, U, BARE, PROLOGUE, POST, OUTBOX, OUTBOX_NEW,
# MYCHAN (the client's channel, by pgbench's :client_id).
PGBIN=$(pg_config --bindir)
if [[ -z ${BIN:-} ]]; then cargo build --release -q -p meridian-local; BIN=target/release/meridian; fi
STATE=$(mktemp -d /tmp/meridian-split-XXXX); chmod 755 "$STATE"
OUT="$STATE/dev.out"
MERIDIAN_LOG__FILTER=warn "$BIN" --state-dir "$STATE" dev --regions us-east1 --regions-dir "${REGIONS_DIR:-regions}" >"$OUT" 2>"$STATE/dev.err" &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 1 150); do grep -q '^ready' "$OUT" && break; sleep 0.2; done
grep -q '^ready' "$OUT" || { cat "$OUT" "$STATE/dev.err"; exit 1; }
PG=$(awk '/^postgres /{print $2}' "$OUT")
BASE=$(awk '/^node us-east1 /{print $3}' "$OUT")
export MERIDIAN_NODE=$BASE

ADMIN=$("$BIN" --state-dir "$STATE" token --platform-admin)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
TENANT_JSON=$(curl -sf -X POST "$BASE/v1/tenants" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"slug":"busy","name":"Busy","home_region":"us-east1","plan":"enterprise","owner":{"email":"busy@busy.example","display_name":"Busy"}}')
T=$(echo "$TENANT_JSON" | json 'd["id"]'); U=$(echo "$TENANT_JSON" | json 'd["owner"]["id"]')
CHAN="'00000000-0000-4000-8000-' || lpad(%s::text, 12, '0')"
MYCHAN="($(printf "$CHAN" ":client_id"))::uuid"
BODY="'a post of a busy writer, of ordinary length'"
# Channels client i -> channel i; usage shards with generous grants, so the
# post's charge stays on its fast path.
"$PGBIN/psql" -q "$PG" -c "INSERT INTO channels (tenant_id, id, home_region, name, created_by)
  SELECT '$T', ($(printf "$CHAN" g))::uuid, 'us-east1', 'writer ' || g, '$U' FROM generate_series(0, $W - 1) g;
  INSERT INTO tenant_usage_shards (tenant_id, shard, home_region) SELECT '$T', s, 'us-east1' FROM generate_series(0, 31) s ON CONFLICT DO NOTHING;
  UPDATE tenant_usage_shards SET granted_bytes = used_bytes + 1000000000, cap_bytes = 1099511627776 WHERE tenant_id = '$T';
  UPDATE tenant_usage SET granted_bytes = (SELECT sum(granted_bytes) FROM tenant_usage_shards WHERE tenant_id = '$T') WHERE tenant_id = '$T';"
APP_URL="postgres://meridian_app:$(cat "$STATE/app.password")@${PG#*@}"

BARE="INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body)
VALUES ('$T', gen_random_uuid(), 'us-east1', $MYCHAN, '$U', $BODY);"
PROLOGUE="BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT set_config('app.tenant_id', '$T', true), set_config('statement_timeout', '10000ms', true);
SELECT status = 'active' AND role = 'owner' FROM users WHERE tenant_id = '$T' AND id = '$U';"
# messages::POST_SQL with the node's parameters written in (plaintext body): the
# charge, the INSERT whose id is NULL when the grant is short and whose author_id
# is NULL unless the token's user is still active with its role (both fail the
# statement), the policy guard; `created_at` is the node's.
POST="WITH charged AS (UPDATE tenant_usage_shards SET used_bytes = used_bytes + 44
   WHERE tenant_id = '$T' AND shard = :client_id AND cap_bytes = 1099511627776 AND used_bytes + 44 <= granted_bytes RETURNING shard)
INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, body_enc, created_at)
SELECT '$T'::uuid, CASE WHEN c.shard IS NULL THEN NULL ELSE gen_random_uuid() END, 'us-east1'::text, $MYCHAN,
  CASE WHEN 'owner'::text IS NULL OR EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = '$T'::uuid AND u.id = '$U'::uuid AND u.status = 'active' AND u.role = 'owner'::text) THEN '$U'::uuid END,
  CASE WHEN NULL::bytea IS NULL AND (SELECT t.encrypt_messages FROM tenants t WHERE t.id = '$T'::uuid) THEN NULL
       WHEN NULL::bytea IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tenant_keys k WHERE k.tenant_id = '$T'::uuid AND k.version = NULL::int4 AND k.state = 'active') THEN NULL
       ELSE $BODY::text END, NULL::bytea, now() FROM (SELECT 1) AS one LEFT JOIN charged c ON true;"
OUTBOX="INSERT INTO outbox_events (tenant_id, id, home_region, kind, subject_kind, subject_id, data)
VALUES ('$T', gen_random_uuid(), 'us-east1', 'message.posted', 'message', gen_random_uuid()::text,
  '{\"message\": {\"id\": \"01a22c64-32f9-7485-8820-f7477733105c\", \"body\": \"a post of a busy writer, of ordinary length\", \"author_id\": \"$U\", \"channel_id\": \"01a22c64-2ba8-77d6-b32f-423e5de1bb75\", \"created_at\": \"2026-11-30T12:18:13.883613Z\"}}');
SELECT 1 FROM webhook_endpoints WHERE tenant_id = '$T' AND enabled LIMIT 1;"
# Since issue 11 item 3: the dispatch job inserted only when the tenant has a
# webhook (`outbox::DISPATCH_IF_HOOKED_SQL`) instead of the check the node waited for.
OUTBOX_NEW="${OUTBOX%%SELECT 1 FROM webhook_endpoints*}INSERT INTO jobs (id, tenant_id, home_region, kind, payload, max_attempts)
SELECT gen_random_uuid(), '$T'::uuid, 'us-east1'::text, 'outbox.dispatch'::text, '{}'::jsonb, 20::int4
WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = '$T'::uuid AND enabled);"

