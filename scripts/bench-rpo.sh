#!/usr/bin/env bash
# Benchmark (not a test): the recovery point objective of `archive_command = pgb wal push`
# (archive_timeout = 60s) against `pgb wal stream` (the partial segment stored every
# --partial-interval), under pgbench, read from the repository as a restore would see it.
#
#   scripts/bench-rpo.sh
#   BENCH_PGB=PATH            the pgb binary [default: target/debug/pgb, built if missing]
#   BENCH_PG_BIN=DIR          PostgreSQL's bin directory [default: Debian's 15]
#   BENCH_RPO_SECS=N          pgbench's run before the server is killed [default: 100, longer
#                             than archive_timeout]
#   BENCH_RPO_MODES="..."     which of archive, stream, stream-killed [default: all three;
#                             stream-killed: pgb wal stream is SIGKILLed with the server, as
#                             if its host died too, so it gets no time after the crash]
#   BENCH_RPO_TPS=N           pgbench's rate (-R) with 4 clients [default: 50]
#   BENCH_RPO_RUNS=N          runs per mode [default: 3]
#   BENCH_RPO_PARTIAL=DUR     wal stream's --partial-interval [default: 5s]
#
# Each run: a fresh server (track_commit_timestamp off, fsync off), pgbench -i -s 5, then
# pgbench -c 4 -R TPS for SECS seconds, and the server is killed (pg_ctl -m immediate) while
# pgbench runs. The stream is given --partial-interval plus 2 s to store what it received
# and stopped (SIGTERM). The figure: the last commit on the server (max(mtime) of
# pgbench_history after crash recovery, which replays every commit) minus the newest commit
# the repository holds (`pgb list --windows --json`: newest_commit.at, read from the WAL
# records). Nothing asserts a time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
secs=${BENCH_RPO_SECS:-100}
tps=${BENCH_RPO_TPS:-50}
runs=${BENCH_RPO_RUNS:-3}
partial=${BENCH_RPO_PARTIAL:-5s}
pgb=${BENCH_PGB:-$root/target/debug/pgb}
[[ -x $pgb ]] || cargo build -q -p pgb-cli

state=$(mktemp -d /tmp/pgb-benchrpo.XXXXXX)
chmod 755 "$state"
as_pg() { if [[ $(id -u) == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
data=""
stream_pid=""
cleanup() {
  [[ -n $stream_pid ]] && kill "$stream_pid" 2>/dev/null || true
  [[ -n $data ]] && as_pg "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

# one MODE RUN: prints the RPO in seconds.
one() {
  local mode=$1 n=$2 dir="$state/$1-$2"
  mkdir -p "$dir/repo" "$dir/sock"
  [[ $(id -u) == 0 ]] && chown -R postgres "$dir"
  chmod 777 "$dir" "$dir/repo"
  data=$dir/data
  as_pg "$bin/initdb" -D "$data" -A trust -U postgres --no-sync >/dev/null
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir/sock'"
    echo "fsync = off"
    echo "timezone = 'UTC'"
    echo "wal_level = replica"
    echo "max_wal_senders = 4"
    if [[ $mode == archive ]]; then
      echo "archive_mode = on"
      echo "archive_command = '$pgb wal push %p --repo $dir/repo'"
      echo "archive_timeout = 60s"
    fi
  } >>"$data/postgresql.conf"
  as_pg "$bin/pg_ctl" -D "$data" -l "$dir/log" -w start >/dev/null
  local url="postgres://postgres@127.0.0.1:$port/postgres"
  "$bin/pgbench" -q -i -s 5 "$url" >/dev/null 2>&1
  if [[ $mode == stream* ]]; then
    "$pgb" wal stream --db "$url" --repo "$dir/repo" --create-slot --spool "$dir/spool" \
      --partial-interval "$partial" --pg-bin-dir "$bin" >/dev/null 2>"$dir/stream.log" &
    stream_pid=$!
    sleep 3
  fi
  "$bin/pgbench" -c 4 -R "$tps" -T $((secs + 30)) "$url" >/dev/null 2>&1 &
  local bench=$!
  sleep "$secs"
  if [[ $mode == stream-killed ]]; then
    # The stream's host dies with the server: no time to store the last partial.
    kill -KILL "$stream_pid"; wait "$stream_pid" 2>/dev/null || true
    stream_pid=""
    # and its pg_receivewal (pgb wrote its pid into the spool).
    kill -KILL "$(cat "$dir/spool/pgb-receivewal.pid")" 2>/dev/null || true
  fi
  as_pg "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null
  wait "$bench" 2>/dev/null || true
  if [[ $mode == stream ]]; then
    sleep $(( ${partial%s} + 2 ))
    kill -TERM "$stream_pid"; wait "$stream_pid" || true
    stream_pid=""
  fi
  local newest
  newest=$("$pgb" list --windows --json --repo "$dir/repo" |
    python3 -c 'import json,sys; w=json.load(sys.stdin); print(w[0]["newest_commit"]["at"] if w and w[0].get("newest_commit") else "")')
  # Crash recovery replays every commit: the server's last one.
  sed -i "/^archive_mode/d" "$data/postgresql.conf"
  as_pg "$bin/pg_ctl" -D "$data" -l "$dir/log" -w start >/dev/null
  local last
  last=$("$bin/psql" -XAtc "select to_char(max(mtime), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') from pgbench_history" "$url")
  as_pg "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null
  data=""
  python3 - "$last" "$newest" <<'PY'
import sys, datetime
def t(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
last, newest = sys.argv[1], sys.argv[2]
print("none" if not newest else f"{max(0.0, (t(last) - t(newest)).total_seconds()):.1f}")
PY
}

printf '%-8s %s\n' mode "RPO seconds per run (last commit on the server - newest commit in the repository)"
for mode in ${BENCH_RPO_MODES:-archive stream stream-killed}; do
  line=""
  for ((i = 1; i <= runs; i++)); do line+="$(one "$mode" "$i") "; done
  printf '%-8s %s\n' "$mode" "$line"
done
