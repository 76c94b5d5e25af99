#!/usr/bin/env bash
# Calendar sync benchmarks (issue 17): the #[ignore]d tests of
# tests/api/calendar_bench.rs against a local Radicale — first and incremental
# sync of 5 calendars x 2,000 events, bridge creation and memory, the active
# health check of CAL_BENCH_TENANTS (default 1000) tenants' accounts. They print
# figures and assert only that the work ran, never a time.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --test api calendar_bench -- --ignored --nocapture --test-threads 1
