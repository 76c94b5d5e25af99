#!/usr/bin/env bash
# The audit chain's cost on the write path, at the database: pgbench runs an
# audited write transaction (BEGIN SERIALIZABLE, the tenant setting, a channel
# INSERT, the audit event, COMMIT) as meridian_app under RLS, the event written
# four ways:
#   plain   one INSERT, no chain (and V30's index of unchained events dropped:
#           a trail without a chain would not have it);
#   sync    V21's chained append: the head upsert and the INSERT in one statement,
#           in the writing transaction (what tenant events did before V30);
#   sealed  today's write path: one INSERT with seq NULL (the index present),
#           chained later; no sealer runs, so this is the write path alone;
#   sealer  the same, with `meridian audit seal` chaining the region every
#           SEAL_EVERY s (default 1, as `audit.seal_interval_ms`) while pgbench
#           runs: the write path plus the chain's whole cost.
# Spread: a random tenant of 1,000 per transaction; hot: every transaction on one
# tenant. 8 clients, DURATION s (default 15) per run, the variants alternated
# RUNS times (default 2). A private PostgreSQL cluster in /tmp. Each run prints
# tps and PostgreSQL's CPU per committed transaction (from /proc): the CPU figure
# is the one to compare on a loaded machine; `unchained_at_end` is what the
# sealer had not yet chained when pgbench stopped (the sealer's client CPU, in
# the `meridian` process, is not counted).
# PROTOCOL (default `prepared`) is pgbench's -M: the node prepares each
# statement once per connection and reuses it (`prepare_cached`), so `prepared`
# is what the service does; `simple` parses and plans every statement each time.
#
#   loadtest/audit-chain.sh      (MERIDIAN_BIN=<build>; default target/debug/meridian)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MERIDIAN_BIN:-target/debug/meridian}
DURATION=${DURATION:-15}; RUNS=${RUNS:-2}; PROTOCOL=${PROTOCOL:-prepared}; SEAL_EVERY=${SEAL_EVERY:-1}
NAME=auditbench; source loadtest/lib-cluster.sh
PROLOGUE="BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT set_config('app.tenant_id', '00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'), true);
INSERT INTO channels (tenant_id, id, home_region, name, created_by) VALUES (current_setting('app.tenant_id')::uuid, gen_random_uuid(), 'us-east1', md5(random()::text), gen_random_uuid());"
cat >"$DIR/plain.sql" <<SQL
\set t random(1, :tenants)
$PROLOGUE
INSERT INTO audit_events (tenant_id, id, home_region, actor, action, target_kind, target_id, details, created_at) VALUES (current_setting('app.tenant_id')::uuid, gen_random_uuid(), 'us-east1', '0190e2b4-5b1c-7a3e-9f00-3c5d1e2f4a6b', 'channel_created', 'channel', '0190e2b4-5b1c-7a3e-9f00-3c5d1e2f4a6c', '{"name": "general"}', clock_timestamp());
COMMIT;
SQL
cat >"$DIR/sync.sql" <<SQL
\set t random(1, :tenants)
$PROLOGUE
WITH head AS (INSERT INTO audit_heads AS h (tenant_id, home_region, seq, hash) VALUES (current_setting('app.tenant_id')::uuid, 'us-east1', 1, sha256(decode(repeat('00', 32), 'hex') || decode(repeat('ab', 200), 'hex'))) ON CONFLICT (tenant_id) DO UPDATE SET seq = h.seq + 1, hash = sha256(h.hash || decode(repeat('ab', 200), 'hex')) RETURNING seq, hash) INSERT INTO audit_events (tenant_id, id, home_region, actor, action, target_kind, target_id, details, created_at, sealed, seq, hash) SELECT current_setting('app.tenant_id')::uuid, gen_random_uuid(), 'us-east1', '0190e2b4-5b1c-7a3e-9f00-3c5d1e2f4a6b', 'channel_created', 'channel', '0190e2b4-5b1c-7a3e-9f00-3c5d1e2f4a6c', '{"name": "general"}', clock_timestamp(), NULL, head.seq, head.hash FROM head;
COMMIT;
SQL
cp "$DIR/plain.sql" "$DIR/sealed.sql" # the same statement; the schema differs (run)
APP_URL="postgres://meridian_app@localhost/bench?host=$DIR"
run() { # variant tenants
  local before after script=$1 sealer_pid=
  case $1 in
    plain) "${PSQL[@]}" -c "DROP INDEX IF EXISTS audit_events_unsealed_idx" ;;
    *) "${PSQL[@]}" -c "CREATE INDEX IF NOT EXISTS audit_events_unsealed_idx ON audit_events (home_region, tenant_id, created_at, id) WHERE seq IS NULL" ;;
  esac
  [[ $1 == sealer ]] && script=sealed
  # Each run starts with every event chained.
  "$BIN" audit seal --database-url "$APP_URL" --region us-east1 >/dev/null
  before=$(pg_ticks)
  if [[ $1 == sealer ]]; then
    (while :; do "$BIN" audit seal --database-url "$APP_URL" --region us-east1 >/dev/null; sleep "$SEAL_EVERY"; done) &
    sealer_pid=$!
  fi
  "$PGBIN/pgbench" -n -h "$DIR" -U meridian_app -c 8 -j 2 -T "$DURATION" -M "$PROTOCOL" --max-tries 100 \
    -D tenants="$2" -f "$DIR/$script.sql" bench >"$DIR/run.out" 2>&1
  if [[ -n $sealer_pid ]]; then
    kill "$sealer_pid"; wait "$sealer_pid" 2>/dev/null || true
  fi
  sleep 0.2 # the backends' exit, reaped by the postmaster
  after=$(pg_ticks)
  local left
  left=$("${PSQL[@]}" -At -c "SELECT count(*) FROM audit_events WHERE seq IS NULL")
  awk -v s="$1" -v t="$2" -v ticks=$((after - before)) -v hz="$HZ" -v left="$left" \
      -v load="$(cut -d' ' -f1 /proc/loadavg)" '
      /^tps/ {tps=$3} /number of failed transactions/ {failed=$5} /number of transactions retried/ {retried=$5}
      /number of transactions actually processed/ {split($6, n, "/"); done=n[1]}
      END {printf "%-7s tenants=%-5s tps=%s retried=%s failed=%s pg_cpu_per_tx=%.0f us unchained_at_end=%s load=%s\n",
        s, t, tps, retried, failed, (done > 0 ? ticks * 1e6 / hz / done : 0), left, load}' "$DIR/run.out"
}
for tenants in 1000 1; do
  for _ in $(seq 1 "$RUNS"); do
    for variant in plain sync sealed sealer; do run "$variant" "$tenants"; done
  done
done
