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
PGBIN=$(pg_config --bindir)
DURATION=${DURATION:-10}; ROWS=${ROWS:-200}; RUNS=${RUNS:-2}
DIR=$(mktemp -d /tmp/meridian-accessbench-XXXX); chmod 755 "$DIR"
AS=(); if [[ $(id -u) == 0 ]]; then chown postgres "$DIR"; AS=(runuser -u postgres --); fi
trap '"${AS[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
"${AS[@]}" "$PGBIN/initdb" -D "$DIR/data" -U postgres -A trust >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -o "-k $DIR -c listen_addresses='' -c shared_buffers=256MB" -l "$DIR/log" start >/dev/null
"$PGBIN/createdb" -h "$DIR" -U postgres bench
"$BIN" migrate --database-url "postgres://postgres@localhost/bench?host=$DIR" >/dev/null
"$PGBIN/psql" -q -h "$DIR" -U postgres bench -c "INSERT INTO tenants (id, slug, name, home_region, plan)
  SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 't' || g, 'T', 'us-east1', 'enterprise'
  FROM generate_series(1, 1000) g;"
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
pg_ticks() {
  local pm t=0 pid
  pm=$(head -1 "$DIR/data/postmaster.pid")
  t=$(awk '{print $16 + $17}' "/proc/$pm/stat")
  for pid in $(pgrep -P "$pm") "$pm"; do
    [[ -r /proc/$pid/stat ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
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
"$PGBIN/psql" -At -h "$DIR" -U postgres bench -c "SELECT 'rows written: ' || count(*) FROM access_log"
