# Sourced by audit-chain.sh and access-log-cost.sh: a private PostgreSQL 15
# cluster in /tmp (as `postgres` when run as root, which initdb refuses, as
# `meridian dev` does), migrated by $BIN, with 1,000 tenants t1…t1000 homed in
# us-east1 (ids 00000000-0000-4000-8000-<n, 12 digits>); stopped and removed on
# exit. Sets PGBIN, DIR, PSQL, HZ and defines pg_ticks. Needs BIN and NAME.
PGBIN=$(pg_config --bindir)
DIR=$(mktemp -d "/tmp/meridian-$NAME-XXXX"); chmod 755 "$DIR"
AS=(); if [[ $(id -u) == 0 ]]; then chown postgres "$DIR"; AS=(runuser -u postgres --); fi
trap '"${AS[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
"${AS[@]}" "$PGBIN/initdb" -D "$DIR/data" -U postgres -A trust >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -o "-k $DIR -c listen_addresses='' -c shared_buffers=256MB" -l "$DIR/log" start >/dev/null
"$PGBIN/createdb" -h "$DIR" -U postgres bench
"$BIN" migrate --database-url "postgres://postgres@localhost/bench?host=$DIR" >/dev/null
PSQL=("$PGBIN/psql" -q -h "$DIR" -U postgres bench)
"${PSQL[@]}" -c "INSERT INTO tenants (id, slug, name, home_region, plan)
  SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 't' || g, 'T', 'us-east1', 'enterprise'
  FROM generate_series(1, 1000) g;"
# PostgreSQL's CPU ticks (utime + stime, USER_HZ) so far: every live server
# process plus what the postmaster has reaped of its exited backends (pgbench's
# connections end with each run), so a run's CPU per transaction does not move
# with the machine's load the way its tps does.
pg_ticks() {
  local pm t=0 pid
  pm=$(head -1 "$DIR/data/postmaster.pid")
  t=$(awk '{print $16 + $17}' "/proc/$pm/stat")
  local ticks
  for pid in $(pgrep -P "$pm") "$pm"; do
    # A backend may exit between pgrep and the read: skipped (its time reaches
    # the postmaster's cutime/cstime, read above, only from now on).
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || continue
    [[ -n $ticks ]] && t=$((t + ticks))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
