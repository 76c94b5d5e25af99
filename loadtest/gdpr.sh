#!/bin/sh
# GDPR export throughput and peak memory, and user erasure time (issue 16).
# Runs the ignored benchmark in tests/api/gdpr_bench.rs against the harness's
# PostgreSQL: ROWS messages exported (rows/s, peak RSS growth), then a user with
# ERASE_ROWS messages erased under the `delete` policy.
# Usage: loadtest/gdpr.sh [ROWS] [ERASE_ROWS]   (defaults 1000000, 100000)
# Add --release after `cargo test` for optimised figures (a second build).
set -eu
cd "$(dirname "$0")/.."
GDPR_BENCH_ROWS="${1:-1000000}" GDPR_BENCH_ERASE_ROWS="${2:-100000}" \
    exec cargo test --test api gdpr_bench -- --ignored --nocapture
