#!/usr/bin/env bash
# The access log's cost at the database (issue 16: "cost on the page benchmark
# ≤ 5%"): PostgreSQL CPU per row of a node's flush. pgbench (as meridian_app, 2
# clients, DURATION s, default 10) runs flushes of ROWS rows (default 200) for
# random tenants of 1,000 through `record_access`, the function a node's flush
# calls, and, as the baseline, the same statement building the same arrays
# without writing them; the difference per row is the flush's cost. A private
# PostgreSQL cluster in /tmp; CPU from /proc as in loadtest/audit-chain.sh.
#
#   loadtest/access-log-cost.sh     (MERIDIAN_BIN=<build>; default target/debug/meridian)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MERIDIAN_BIN:-target/debug/meridian}
DURATION=${DURATION:-10}; ROWS=${ROWS:-200}; RUNS=${RUNS:-2}
NAME=accessbench; source loadtest/lib-cluster.sh
ARRAYS="'us-east1',
  array(SELECT gen_random_uuid() FROM generate_series(1, :rows)),
  array(SELECT ('00000000-0000-4000-8000-' || lpad((1 + floor(random() * 1000))::int::text, 12, '0'))::uuid FROM generate_series(1, :rows)),
  array(SELECT gen_random_uuid() FROM generate_series(1, :rows)),
  array(SELECT 'GET' FROM generate_series(1, :rows)),
  array(SELECT '/v1/channels/{id}/messages' FROM generate_series(1, :rows)),
  array(SELECT '/v1/channels/' || gen_random_uuid() || '/messages' FROM generate_series(1, :rows)),
  array(SELECT now() FROM generate_series(1, :rows)),
  array(SELECT now() FROM generate_series(1, :rows)),
  array(SELECT 1 FROM generate_series(1, :rows))"
echo "SELECT record_access($ARRAYS);" >"$DIR/flush.sql"
cat >"$DIR/baseline.sql" <<SQL
SELECT cardinality(a) FROM (SELECT ARRAY[x.*]::text[] AS a FROM (SELECT $ARRAYS) AS x) y;
SQL
run() { # script
  local before after
  before=$(pg_ticks)
  "$PGBIN/pgbench" -n -h "$DIR" -U meridian_app -c 2 -j 2 -T "$DURATION" -D rows="$ROWS" \
    -f "$DIR/$1.sql" bench >"$DIR/run.out" 2>&1 || { cat "$DIR/run.out"; exit 1; }
  sleep 0.2
  after=$(pg_ticks)
  awk -v s="$1" -v rows="$ROWS" -v ticks=$((after - before)) -v hz="$HZ" -v load="$(cut -d' ' -f1 /proc/loadavg)" '
      /number of transactions actually processed/ {split($6, n, "/"); done=n[1]}
      END {printf "%-9s flushes=%s rows_per_flush=%s pg_cpu_per_row=%.1f us load=%s\n",
        s, done, rows, (done > 0 ? ticks * 1e6 / hz / done / rows : 0), load}' "$DIR/run.out"
}
for _ in $(seq 1 "$RUNS"); do run baseline; run flush; done
"${PSQL[@]}" -At -c "SELECT 'rows written: ' || count(*) FROM access_log"
