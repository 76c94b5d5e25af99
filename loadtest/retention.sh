#!/bin/sh
# The retention job's delete rate (issue 16 item 4) and the delete batch's plan
# as the service role with RLS on. Runs the ignored benchmark in
# tests/api/retention_bench.rs against the harness's PostgreSQL: ROWS old
# messages of one tenant deleted by `retention.enforce` (rows/s), another
# tenant's ROWS old messages kept.
# Usage: loadtest/retention.sh [ROWS]   (default 200000)
set -eu
cd "$(dirname "$0")/.."
RETENTION_BENCH_ROWS="${1:-200000}" \
    exec cargo test --test api retention_bench -- --ignored --nocapture
