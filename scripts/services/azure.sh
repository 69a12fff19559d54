#!/usr/bin/env bash
# Azure Blob emulator for the tests: Azurite 3.35.0 (npm) on 127.0.0.1.
#
#   scripts/services/azure.sh start STATEDIR   # install if missing, start, create the
#                                             # container, write STATEDIR/azure.{pid,env}
#   scripts/services/azure.sh stop STATEDIR
#
# STATEDIR/azure.env exports PGB_TEST_AZURE_ENDPOINT, PGB_TEST_AZURE_ACCOUNT,
# PGB_TEST_AZURE_KEY and PGB_TEST_AZURE_CONTAINER. Azurite checks SharedKey signatures and
# honours conditional writes. The account is Azurite's public development account.
set -euo pipefail

SERVICE=azure
AZURITE_VERSION=3.35.0 # 3.37 needs Node 22
CONTAINER=pgb-test
ACCOUNT=devstoreaccount1
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
# shellcheck source=scripts/services/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ensure_azurite() {
    # npm must not run from a folder named "azurite" (it would resolve the name to the folder).
    local dir="$PGB_TOOLS_DIR/npm-tools"
    local pkg="$dir/node_modules/azurite/package.json"
    if [[ -f "$pkg" ]] && grep -q "\"version\": \"$AZURITE_VERSION\"" "$pkg"; then
        echo "$dir"
        return 0
    fi
    pgb_ensure_node
    log "installing azurite@$AZURITE_VERSION into $dir"
    mkdir -p "$dir"
    [[ -f "$dir/package.json" ]] || echo '{"name":"pgb-npm-tools","private":true}' >"$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --omit=dev --loglevel=error "azurite@$AZURITE_VERSION" >&2)
    echo "$dir"
}

# Creates CONTAINER with a SharedKey-signed request (opendal does not create containers).
create_container() {
    local endpoint=$1
    python3 - "$endpoint" "$ACCOUNT" "$KEY" "$CONTAINER" <<'PY'
import base64, hashlib, hmac, sys, urllib.error, urllib.request
from email.utils import formatdate
endpoint, account, key, container = sys.argv[1:]
url = f"{endpoint}/{container}?restype=container"
date = formatdate(usegmt=True)
version = "2021-08-06"
path = urllib.request.urlparse(url).path  # /devstoreaccount1/pgb-test
ctype = "application/octet-stream"  # urllib would add a form content type otherwise
string_to_sign = "\n".join(["PUT", "", "", "", "", ctype, "", "", "", "", "", "",
                            f"x-ms-date:{date}", f"x-ms-version:{version}",
                            f"/{account}{path}\nrestype:container"])
sig = base64.b64encode(hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(url, method="PUT", data=b"", headers={
    "x-ms-date": date, "x-ms-version": version, "Content-Length": "0", "Content-Type": ctype,
    "Authorization": f"SharedKey {account}:{sig}"})
try:
    urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as e:
    if e.code != 409:  # 409: the container already exists
        sys.exit(f"creating container {container}: HTTP {e.code} {e.read()[:300]!r}")
PY
}

answers() { [[ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ]]; }

start() {
    local statedir=$1
    mkdir -p "$statedir"
    if pid_alive "$statedir/azure.pid" && [[ -f "$statedir/azure.env" ]]; then
        log "already running (PID $(<"$statedir/azure.pid"))"
        return 0
    fi
    local dir
    dir=$(ensure_azurite)
    local port pid endpoint data="$statedir/azurite-data"
    mkdir -p "$data"
    port=$(free_port)
    endpoint="http://127.0.0.1:$port/$ACCOUNT"
    pid=$(spawn "$statedir/azure.log" node "$dir/node_modules/azurite/dist/src/blob/main.js" \
        --blobHost 127.0.0.1 --blobPort "$port" --location "$data" \
        --skipApiVersionCheck --loose)
    echo "$pid" >"$statedir/azure.pid"
    if ! wait_until "$pid" answers "$endpoint?comp=list"; then
        tail -n 20 "$statedir/azure.log" >&2 || true
        die "azurite did not answer on $endpoint (log: $statedir/azure.log)"
    fi
    create_container "$endpoint" || die "could not create container $CONTAINER"

    cat >"$statedir/azure.env" <<ENV
export PGB_TEST_AZURE_ENDPOINT=$endpoint
export PGB_TEST_AZURE_ACCOUNT=$ACCOUNT
export PGB_TEST_AZURE_KEY='$KEY'
export PGB_TEST_AZURE_CONTAINER=$CONTAINER
ENV
    log "azurite $AZURITE_VERSION on $endpoint (PID $pid), container $CONTAINER"
}

[[ $# -eq 2 ]] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop_service "$2" azure ;;
    *) usage ;;
esac
