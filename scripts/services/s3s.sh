#!/usr/bin/env bash
# A second S3 server for the tests and the benchmark: s3s-fs 0.14.1 (crates.io), a Rust S3
# server on the local file system that checks SigV4 signatures (moto does not) and is fast
# enough to measure upload throughput.
#
#   scripts/services/s3s.sh start STATEDIR   # install if missing, start, create the bucket,
#                                           # write STATEDIR/s3s.pid and STATEDIR/s3s.env
#   scripts/services/s3s.sh stop STATEDIR
#
# Installed once with `cargo install --locked` into $PGB_TOOLS_DIR/s3s (about 2 to 5 minutes
# of compiling on 2 cores; later starts take about a second). 0.14.1 is the newest release
# that builds with rustc 1.95 (0.15 and later need a newer one).
#
# STATEDIR/s3s.env exports PGB_TEST_S3S_ENDPOINT, PGB_TEST_S3S_BUCKET, PGB_TEST_S3S_REGION,
# PGB_TEST_S3S_ACCESS_KEY_ID and PGB_TEST_S3S_SECRET_ACCESS_KEY. The keys are throwaway test
# values; the server only listens on 127.0.0.1.
set -euo pipefail

SERVICE=s3s
S3S_VERSION=0.14.1
BUCKET=pgb-test
REGION=us-east-1
ACCESS_KEY=pgb-s3s-access-key
SECRET_KEY=pgb-s3s-test-secret
# shellcheck source=scripts/services/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Prints the path of the s3s-fs binary, installing it first if needed.
ensure_s3s_fs() {
    local root="$PGB_TOOLS_DIR/s3s"
    if [[ -x "$root/bin/s3s-fs" ]] && grep -qs "\"s3s-fs $S3S_VERSION " "$root/.crates.toml"; then
        echo "$root/bin/s3s-fs"
        return 0
    fi
    command -v cargo >/dev/null || die "cargo is needed to install s3s-fs (it comes from crates.io)"
    log "installing s3s-fs $S3S_VERSION into $root (cargo install: a few minutes, once)"
    mkdir -p "$root"
    cargo install --quiet --locked --root "$root" --features binary \
        s3s-fs --version "=$S3S_VERSION" >&2
    echo "$root/bin/s3s-fs"
}

answers() { [[ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ]]; }

start() {
    local statedir=$1
    mkdir -p "$statedir"
    if pid_alive "$statedir/s3s.pid" && [[ -f "$statedir/s3s.env" ]]; then
        log "already running (PID $(<"$statedir/s3s.pid"))"
        return 0
    fi
    local bin port pid endpoint data="$statedir/s3s-data"
    bin=$(ensure_s3s_fs)
    # A bucket is a folder under the root.
    mkdir -p "$data/$BUCKET"
    port=$(free_port)
    endpoint="http://127.0.0.1:$port"
    pid=$(spawn "$statedir/s3s.log" "$bin" --host 127.0.0.1 --port "$port" \
        --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$data")
    echo "$pid" >"$statedir/s3s.pid"
    if ! wait_until "$pid" answers "$endpoint/"; then
        tail -n 20 "$statedir/s3s.log" >&2 || true
        die "s3s-fs did not answer on $endpoint (log: $statedir/s3s.log)"
    fi

    cat >"$statedir/s3s.env" <<ENV
export PGB_TEST_S3S_ENDPOINT=$endpoint
export PGB_TEST_S3S_BUCKET=$BUCKET
export PGB_TEST_S3S_REGION=$REGION
export PGB_TEST_S3S_ACCESS_KEY_ID=$ACCESS_KEY
export PGB_TEST_S3S_SECRET_ACCESS_KEY=$SECRET_KEY
ENV
    log "s3s-fs $S3S_VERSION on $endpoint (PID $pid), bucket $BUCKET"
}

[[ $# -eq 2 ]] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop_service "$2" s3s ;;
    *) usage ;;
esac
