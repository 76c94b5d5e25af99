#!/bin/sh
# Tenant erasure time (issue 16): a tenant with ROWS messages (default 100000)
# erased after a 100 ms grace; prints the time from DELETE to the signed receipt
# and the job's own time (started_at → finished_at). Runs the ignored benchmark in
# tests/api/tenant_erasure_bench.rs against the harness's PostgreSQL.
# Usage: loadtest/tenant-erasure.sh [ROWS]
# Add --release after `cargo test` for optimised figures (a second build).
set -eu
cd "$(dirname "$0")/.."
TENANT_ERASE_BENCH_ROWS="${1:-100000}" \
    exec cargo test --test api tenant_erasure_bench -- --ignored --nocapture
