#!/usr/bin/env bash
# Samples the newest loadtest/jobs.sh PostgreSQL every 0.5 s (pg_stat_activity, queue,
# pg_stat_database, pg_locks) into $1 and tails its log (slow statements >= 200 ms,
# lock waits >= 100 ms are turned on). Start it just before jobs.sh; stop it after.
OUT=${1:-/tmp/jobs-samples.txt}
: > "$OUT"
touch /tmp/.jobs-sample-start
while true; do
  D=$(find /tmp -maxdepth 1 -name 'meridian-jobs-*' -newer /tmp/.jobs-sample-start 2>/dev/null | head -1)
  [[ -n $D && -f $D/dev.out ]] && grep -q '^postgres ' "$D/dev.out" && break
  sleep 0.5
done
PG=$(awk '/^postgres /{print $2}' "$D/dev.out")
echo "dir $D pg $PG" >> "$OUT"
tail -n0 -F "$D/pg/postgres.log" > "${OUT%.txt}.pglog" 2>/dev/null &
TAILPID=$!
psql "$PG" -qAt -c "ALTER SYSTEM SET log_min_duration_statement = 200" -c "ALTER SYSTEM SET log_lock_waits = on" -c "ALTER SYSTEM SET deadlock_timeout = '100ms'" -c "SELECT pg_reload_conf()" >> "$OUT" 2>&1
while [[ -d $D ]]; do
  {
  echo "=== $(date +%T.%N | cut -c1-12)"
  psql "$PG" -qAt -F' | ' <<'SQL'
SELECT 'act', state, coalesce(wait_event_type,'-'), coalesce(wait_event,'-'), left(regexp_replace(query, '\s+', ' ', 'g'), 60), count(*)
  FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
 GROUP BY 2,3,4,5 ORDER BY 6 DESC LIMIT 12;
SELECT 'q', payload->>'phase', state, count(*), round(extract(epoch from now() - min(created_at))::numeric, 2)
  FROM jobs WHERE state IN ('queued','running') GROUP BY 2,3;
SELECT 'db', xact_commit, xact_rollback, deadlocks FROM pg_stat_database WHERE datname = current_database();
SELECT 'locks', mode, granted, count(*) FROM pg_locks WHERE locktype in ('tuple','transactionid') GROUP BY 2,3;
SQL
  } >> "$OUT" 2>&1
  sleep 0.5
done
kill $TAILPID
