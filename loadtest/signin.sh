#!/usr/bin/env bash
# Sign-in benchmarks (issue 14, "Benchmarks"); see loadtest/README.md.
#   loadtest/signin.sh [out.json]
# Runs the ignored benchmarks of tests/api/signin_bench.rs in a release build:
# LDAP sign-in against a throwaway slapd, the OIDC callback against
# oidc-provider-mock (the test fixtures' own start code), refresh p50/p99 and
# req/s; one node and the embedded PostgreSQL of the test harness. Then the
# token-verification bench (`cargo bench --bench tenant_resolution`), whose
# cached/uncached figures show the request path's cost. Prints the figures and
# writes them as JSON to out.json (default loadtest/results/signin-<date>.json).
# Needs slapd + ldap-utils and the pytools venv (tests/api/pytools.txt), as the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-loadtest/results/signin-$(date -u +%F).json}
OUT=$(realpath -m "$OUT")
rm -f "$OUT"
echo "load average at start: $(cat /proc/loadavg)" >&2
MERIDIAN_BENCH_OUT="$OUT" MERIDIAN_LOG__FILTER=warn \
  cargo test --release -q --test api signin_bench -- --ignored --nocapture --test-threads 1
if [[ ${SKIP_VERIFY_BENCH:-} != 1 ]]; then
  cargo bench --bench tenant_resolution 2>&1 | tee "${OUT%.json}-verify.txt" | grep -E 'p50|p99|time:' || true
fi
echo "load average at end: $(cat /proc/loadavg)" >&2
echo "figures: $OUT" >&2
