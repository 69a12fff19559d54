# Shared helpers for scripts/services/*.sh (sourced, not run).
#
# Every service script takes `start STATEDIR` or `stop STATEDIR`. `start` installs what is
# missing into $PGB_TOOLS_DIR (/var/cache/pgb-tools as root, else ~/.cache/pgb-tools;
# idempotently), starts the server on a free port on 127.0.0.1, waits until it answers, creates
# the test bucket or container, and writes STATEDIR/<name>.pid and STATEDIR/<name>.env (export
# lines for the tests). `stop` kills the recorded PID (never by name) and removes the pid file.

# shellcheck source=scripts/lib/ensure-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/ensure-tools.sh"
# Every service script needs python3 (free ports, pip) and curl (readiness probes).
pgb_ensure_cmds python3:python3 curl:curl

log() { printf '%s: %s\n' "$SERVICE" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    echo "usage: $0 start|stop STATEDIR" >&2
    exit 2
}

# A TCP port nobody listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Is the PID in FILE alive?
pid_alive() {
    local file=$1 pid
    [[ -f "$file" ]] || return 1
    pid=$(<"$file")
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# Waits until CMD... succeeds (up to $WAIT_SECS, default 60), or the server PID dies.
wait_until() {
    local pid=$1; shift
    local deadline=$((SECONDS + ${WAIT_SECS:-60}))
    until "$@" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Installs the given pip requirements into DIR with `pip install --target` (once). No venv:
# Debian's python3 may lack ensurepip, and --target also sidesteps PEP 668's
# externally-managed check. Run the tools with PYTHONPATH=DIR.
ensure_pip_target() {
    local dir=$1; shift
    local stamp="$dir/.pgb-installed"
    local want="$*"
    if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
        return 0
    fi
    pgb_ensure_pip
    log "installing $want into $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --no-warn-conflicts --root-user-action=ignore \
        --target "$dir" "$@" >&2
    printf '%s' "$want" >"$stamp"
}

# Starts "$@" in the background with its output in LOG; prints its PID.
spawn() {
    local logfile=$1; shift
    nohup "$@" </dev/null >"$logfile" 2>&1 &
    echo $!
}

# Stops the server whose PID is recorded in STATEDIR/NAME.pid.
stop_service() {
    local statedir=$1 name=$2
    local pidfile="$statedir/$name.pid" pid
    if [[ ! -f "$pidfile" ]]; then
        log "not running (no $pidfile)"
        return 0
    fi
    pid=$(<"$pidfile")
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "PID $pid did not exit after SIGTERM; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "stopped (PID $pid)"
    else
        log "PID ${pid:-?} was not running"
    fi
    rm -f "$pidfile"
}
