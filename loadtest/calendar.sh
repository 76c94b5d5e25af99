#!/usr/bin/env bash
# Calendar sync benchmarks (issue 17): the #[ignore]d tests of
# tests/api/calendar_bench.rs against a local Radicale — first and incremental
# sync of 5 calendars x 2,000 events, bridge creation and memory, the active
# health check of CAL_BENCH_TENANTS (default 1000) tenants' accounts spread over
# CAL_BENCH_SERVERS (default 4) Radicale processes in Radicale's default
# configuration. They print figures and assert only that the work ran, never a
# time. RELEASE=1 runs them in a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=()
if [[ "${RELEASE:-}" == 1 ]]; then profile=(--release); fi
exec cargo test "${profile[@]}" --test api calendar_bench -- --ignored --nocapture --test-threads 1
