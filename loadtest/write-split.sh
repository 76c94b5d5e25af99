#!/usr/bin/env bash
# Where a post's database cost goes (issue 11, item 3): pgbench runs, at the same
# concurrency and one after the other, the bare autocommit INSERT of a message (the
# aim's yardstick), then the API's write transaction in several shapes, so the
# difference between them is one part of the cost each:
#
#   bare            INSERT INTO messages … (autocommit, superuser: no RLS)
#   bare-app        the same INSERT as meridian_app inside BEGIN/set tenant/COMMIT,
#                   pipelined (one round trip): the transaction + RLS, nothing else
#   post-1rt        prologue (BEGIN, tenant setting + statement_timeout), the
#                   post's statement (shard charge + guarded INSERT, which checks
#                   the user itself), the outbox INSERT, the dispatch job if
#                   hooked, COMMIT: one pipeline (the node's post today)
#   post-1rt-rc     the same at READ COMMITTED instead of SERIALIZABLE
#   post-1rt-nooutbox  post-1rt without the outbox INSERT and the webhook check
#   post-1rt-nocharge  the same without the outbox and without the shard charge:
#                   the prologue and the INSERT with its policy guard only
#   (the shapes below, and the two above, also send the prologue's separate user
#   check, as the node did before its post statement checked the user itself)
#   post-2rt        the node's post before that: two round trips
#                   (prologue + post; outbox INSERT + dispatch job if hooked +
#                   COMMIT)
#   post-3rt        the node's post before that: three round trips (prologue + post;
#                   outbox INSERT + webhook check; COMMIT)
#   bare-nogin      the bare INSERT again after `DROP INDEX messages_search_idx`
#                   (last: it changes the schema of this throwaway database)
#
# All at SERIALIZABLE as the API runs them (`--max-tries=1`: a serialization
# failure is counted, not retried), `-M prepared`, each client its own channel and
# usage shard (the shape of `loadtest/writes.sh`).
#
#   loadtest/write-split.sh [clients=16] [seconds=8]
#
# Starts its own `meridian dev --regions us-east1` (BIN=<binary>, default the
# release build; REGIONS_DIR=<dir> for other ports); prints the load average at
# the start of each run and a summary table with each shape's tps as a share of
# the bare INSERT's.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-16}; SECS=${2:-8}
source loadtest/lib-writes.sh
printf '%s\n' "$BARE" >"$STATE/bare.sql"
printf '\\startpipeline\nBEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT set_config(%s, %s, true);\n%s\nCOMMIT;\n\\endpipeline\n' \
  "'app.tenant_id'" "'$T'" "$BARE" >"$STATE/bare-app.sql"
# The node's post sends no separate user check (its statement checks the user).
PROLOGUE_1RT=${PROLOGUE%%$'\n'SELECT status*}
printf '\\startpipeline\n%s\n%s\n%s\nCOMMIT;\n\\endpipeline\n' "$PROLOGUE_1RT" "$POST" "$OUTBOX_NEW" >"$STATE/post-1rt.sql"
sed 's/ISOLATION LEVEL SERIALIZABLE/ISOLATION LEVEL READ COMMITTED/' "$STATE/post-1rt.sql" >"$STATE/post-1rt-rc.sql"
printf '\\startpipeline\n%s\n%s\nCOMMIT;\n\\endpipeline\n' "$PROLOGUE" "$POST" >"$STATE/post-1rt-nooutbox.sql"
NOCHARGE="INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, body_enc)
SELECT '$T'::uuid, gen_random_uuid(), 'us-east1'::text, $MYCHAN, '$U'::uuid,
  CASE WHEN NULL::bytea IS NULL AND (SELECT t.encrypt_messages FROM tenants t WHERE t.id = '$T'::uuid) THEN NULL
       ELSE $BODY::text END, NULL::bytea
RETURNING id, channel_id, author_id, body, created_at;"
printf '\\startpipeline\n%s\n%s\nCOMMIT;\n\\endpipeline\n' "$PROLOGUE" "$NOCHARGE" >"$STATE/post-1rt-nocharge.sql"
printf '\\startpipeline\n%s\n%s\n\\endpipeline\n\\startpipeline\n%s\nCOMMIT;\n\\endpipeline\n' "$PROLOGUE" "$POST" "$OUTBOX_NEW" >"$STATE/post-2rt.sql"
printf '\\startpipeline\n%s\n%s\n\\endpipeline\n\\startpipeline\n%s\n\\endpipeline\nCOMMIT;\n' "$PROLOGUE" "$POST" "$OUTBOX" >"$STATE/post-3rt.sql"

declare -A TPS
run() { # run NAME URL
  echo "== $1 (load average $(cut -d' ' -f1 /proc/loadavg)): pgbench -c$W -j2 -T$SECS -M prepared"
  "$PGBIN/pgbench" -n -c"$W" -j2 -T"$SECS" -M prepared --max-tries=1 --failures-detailed -f "$STATE/$1.sql" "$2" 2>"$STATE/$1.err" \
    | tee "$STATE/$1.txt" | grep -E '^(tps|latency average|number of (failed|serialization))' || { cat "$STATE/$1.err"; exit 1; }
  TPS[$1]=$(awk '/^tps/{print $3}' "$STATE/$1.txt")
}
ORDER=(bare bare-app post-1rt post-1rt-rc post-1rt-nooutbox post-1rt-nocharge post-2rt post-3rt bare)
for name in "${ORDER[@]}"; do
  if [[ $name == bare ]]; then run bare "$PG"; BARES+=("${TPS[bare]}"); else run "$name" "$APP_URL"; fi
done
"$PGBIN/psql" -q "$PG" -c "DROP INDEX messages_search_idx"
cp "$STATE/bare.sql" "$STATE/bare-nogin.sql"; run bare-nogin "$PG"
REF=$(python3 -c "print(sum(map(float, '${BARES[*]}'.split())) / ${#BARES[@]})")
echo "== summary: tps and share of the bare INSERT (mean of its two runs: ${BARES[*]} -> $REF)"
for name in bare-app post-1rt post-1rt-rc post-1rt-nooutbox post-1rt-nocharge post-2rt post-3rt bare-nogin; do
  python3 -c "print(f'{\"$name\":20} {float(\"${TPS[$name]}\"):9.0f} tps  {float(\"${TPS[$name]}\")/$REF:5.2f}')"
done
