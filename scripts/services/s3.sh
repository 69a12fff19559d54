#!/usr/bin/env bash
# S3 emulator for the tests: moto 5.2.5 (PyPI) on 127.0.0.1.
#
#   scripts/services/s3.sh start STATEDIR   # install if missing, start, create the bucket,
#                                          # write STATEDIR/s3.pid and STATEDIR/s3.env
#   scripts/services/s3.sh stop STATEDIR    # kill the recorded PID
#
# STATEDIR/s3.env exports PGB_TEST_S3_ENDPOINT, PGB_TEST_S3_BUCKET, PGB_TEST_S3_REGION,
# PGB_TEST_S3_ACCESS_KEY_ID and PGB_TEST_S3_SECRET_ACCESS_KEY. moto accepts any key pair: it
# does not check SigV4 signatures, so bad-credential tests cannot be proven against it.
set -euo pipefail

SERVICE=s3
MOTO_VERSION=5.2.5
BUCKET=pgb-test
REGION=us-east-1
# shellcheck source=scripts/services/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

start() {
    local statedir=$1
    mkdir -p "$statedir"
    if pid_alive "$statedir/s3.pid" && [[ -f "$statedir/s3.env" ]]; then
        log "already running (PID $(<"$statedir/s3.pid"))"
        return 0
    fi
    local pydir="$PGB_TOOLS_DIR/pip/moto-$MOTO_VERSION"
    ensure_pip_target "$pydir" "moto[s3]==$MOTO_VERSION" flask flask-cors

    local port pid endpoint
    port=$(free_port)
    endpoint="http://127.0.0.1:$port"
    pid=$(spawn "$statedir/s3.log" env PYTHONPATH="$pydir" python3 -m moto.server -H 127.0.0.1 -p "$port")
    echo "$pid" >"$statedir/s3.pid"
    if ! wait_until "$pid" curl -fsS -o /dev/null "$endpoint/"; then
        tail -n 20 "$statedir/s3.log" >&2 || true
        die "moto did not answer on $endpoint (log: $statedir/s3.log)"
    fi
    curl -fsS -o /dev/null -X PUT "$endpoint/$BUCKET" || die "could not create bucket $BUCKET"

    cat >"$statedir/s3.env" <<ENV
export PGB_TEST_S3_ENDPOINT=$endpoint
export PGB_TEST_S3_BUCKET=$BUCKET
export PGB_TEST_S3_REGION=$REGION
export PGB_TEST_S3_ACCESS_KEY_ID=pgb-test-access-key
export PGB_TEST_S3_SECRET_ACCESS_KEY=pgb-test-secret-key
ENV
    log "moto $MOTO_VERSION on $endpoint (PID $pid), bucket $BUCKET"
}

[[ $# -eq 2 ]] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop_service "$2" s3 ;;
    *) usage ;;
esac
