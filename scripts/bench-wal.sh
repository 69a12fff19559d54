#!/usr/bin/env bash
# Benchmark (not a test) of the WAL archive: `pgb wal push` and `pgb wal fetch` against the
# shell commands a runbook would use. Run through `BENCH_WAL=1 scripts/bench.sh` or directly.
#
#   scripts/bench-wal.sh
#   BENCH_PROFILE=release (or debug: a smoke run of the script, no figures)
#   BENCH_PGB=PATH        use this pgb binary instead of building one
#   BENCH_PG_BIN=DIR      PostgreSQL's bin directory [default: Debian's 15]
#   BENCH_WAL_SEGMENTS=N  segments for the per-segment figures [default: 32]
#   BENCH_PGBENCH_SECS=N  length of the pgbench run the archiver must keep up with [default: 60]
#   BENCH_S3S=1           also keep up with pgbench when archiving to s3s-fs (an S3 server)
#
# It measures, on one throwaway server:
#   per-segment cost  `pgb wal push` of N real segments (process start included, as
#                     archive_command runs it) vs `zstd -3 -T1 | sha256sum` of the same files
#   keeping pace      pgbench -c 4 and bulk inserts for BENCH_PGBENCH_SECS with
#                     archive_command = pgb wal push;
#                     the .ready backlog sampled every second (peak, at the end, drain time)
#   replay            recovery of a base backup through all the archived WAL with
#                     restore_command = 'pgb wal fetch ... --spool' vs 'cp ARCHIVE/%f %p'
#   base backup       pgb backup --physical --wal included vs pg_basebackup -Ft -X fetch to a file, at
#                     two database sizes (BENCH_BASE_SCALES, pgbench scales [default: 20 80]),
#                     with pgb's peak RSS (flat in the database size)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
segments=${BENCH_WAL_SEGMENTS:-32}
pgbench_secs=${BENCH_PGBENCH_SECS:-60}
bin=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
source scripts/lib/ensure-tools.sh
[[ -n ${BENCH_PG_BIN:-} ]] || pgb_ensure_base
command -v zstd >/dev/null || pgb_apt_install zstd

profile=${BENCH_PROFILE:-release}
if [[ -n ${BENCH_PGB:-} ]]; then
  pgb=$BENCH_PGB
else
  echo "==> building pgb ($profile)"
  if [[ $profile == release ]]; then cargo build -q --release -p pgb-cli; else cargo build -q -p pgb-cli; fi
  pgb=${CARGO_TARGET_DIR:-$root/target}/$profile/pgb
fi

state=$(mktemp -d /tmp/pgb-benchwal.XXXXXX)
chmod 755 "$state"
as_pg() { if [[ $(id -u) == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
pgdirs=()
s3s_started=0
cleanup() {
  for d in "${pgdirs[@]}"; do as_pg "$bin/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true; done
  ((s3s_started)) && scripts/services/s3s.sh stop "$state" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT
now() { date +%s.%N; }
# rss_of CMD...: runs CMD, prints "wall_s maxrss_kib" of that process (VmHWM, polled).
rss_of() {
  python3 -c '
import os, subprocess, sys, time
t = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
hwm = 0
while p.poll() is None:
    try:
        for line in open(f"/proc/{p.pid}/status"):
            if line.startswith("VmHWM:"):
                hwm = max(hwm, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.02)
if p.returncode != 0:
    sys.exit(p.returncode)
print(f"{time.monotonic() - t:.3f} {hwm}")' "$@"
}
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}'; }
calc() { awk "BEGIN {printf \"%.2f\", $1}"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
shared_dir() { mkdir -p "$1"; chmod 777 "$1"; [[ $(id -u) == 0 ]] && chown postgres: "$1"; return 0; }

# new_server DIR ARCHIVE_COMMAND: initdb, archiving with ARCHIVE_COMMAND, started; sets $port.
new_server() {
  local dir=$1 cmd=$2
  shared_dir "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
  port=$(free_port)
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = replica
archive_mode = on
archive_command = '$cmd'
max_wal_size = 4GB
checkpoint_timeout = 30min
synchronous_commit = off
CONF
  as_pg "$bin/pg_ctl" -D "$dir/data" -w -l "$dir/log" start >/dev/null
  pgdirs+=("$dir/data")
}
psqlc() { "$bin/psql" -X -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }
ready_count() { find "$1/pg_wal/archive_status" -name '*.ready' | wc -l; }

echo "==> $("$bin/postgres" --version); pgb $("$pgb" --version)"

# 1. Real segments: a server archiving with cp, pgbench writing.
raw=$state/raw
shared_dir "$raw"
new_server "$state/a" "cp %p $raw/%f"
a_port=$port
"$bin/pgbench" -q -i -s 10 -h 127.0.0.1 -p "$a_port" -U postgres postgres >/dev/null 2>&1
while (( $(find "$raw" -name '0*' -size 16M | wc -l) < segments )); do
  "$bin/pgbench" -n -T 5 -c 4 -h 127.0.0.1 -p "$a_port" -U postgres postgres >/dev/null 2>&1
  psqlc "$a_port" "select pg_switch_wal()" >/dev/null
done
mapfile -t files < <(find "$raw" -name '0*' -size 16M | sort | head -n "$segments")
sysid=$(psqlc "$a_port" "select system_identifier from pg_control_system()")

echo "==> per-segment cost over ${#files[@]} segments of 16 MiB"
t=$(now)
for f in "${files[@]}"; do zstd -3 -T1 -q -c "$f" | sha256sum >/dev/null; sha256sum "$f" >/dev/null; done
base_s=$(since "$t")
repo=$state/repo-seq
shared_dir "$repo"
t=$(now)
for f in "${files[@]}"; do "$pgb" wal push "$f" --repo "$repo" --parallel 1; done
push_s=$(since "$t")
stored=$(du -sb "$repo" | cut -f1)
echo "    zstd -3 -T1 | sha256sum (+ sha256sum of the input): $(calc "$base_s * 1000 / ${#files[@]}") ms/segment"
echo "    pgb wal push (one process per segment):             $(calc "$push_s * 1000 / ${#files[@]}") ms/segment  ratio $(calc "$push_s / $base_s")x"
echo "    stored: $(calc "$stored / ${#files[@]} / 1048576") MiB/segment"

# 2. Keeping pace with pgbench.
keep_pace() {
  local label=$1 cmd=$2
  new_server "$state/k-$label" "$cmd"
  local p=$port data=$state/k-$label/data
  "$bin/pgbench" -q -i -s 10 -h 127.0.0.1 -p "$p" -U postgres postgres >/dev/null 2>&1
  local before after
  before=$(psqlc "$p" "select pg_current_wal_lsn()")
  "$bin/pgbench" -n -T "$pgbench_secs" -c 4 -h 127.0.0.1 -p "$p" -U postgres postgres >/dev/null 2>&1 &
  local bench=$! peak=0 n samples=()
  # Beside pgbench's small transactions, bulk inserts: the WAL rate of a load or a migration.
  psqlc "$p" "create table bulk (id bigint, note text)" >/dev/null
  local until=$(($(date +%s) + pgbench_secs))
  (while (($(date +%s) < until)); do
    psqlc "$p" "insert into bulk select g, md5(g::text) from generate_series(1, 200000) g" >/dev/null
  done) &
  local bulk=$!
  while kill -0 "$bench" 2>/dev/null; do
    n=$(ready_count "$data"); samples+=("$n"); ((n > peak)) && peak=$n
    sleep 1
  done
  wait "$bulk"
  after=$(psqlc "$p" "select pg_current_wal_lsn()")
  local mb end t
  mb=$(psqlc "$p" "select round(pg_wal_lsn_diff('$after', '$before') / 1048576)")
  end=$(ready_count "$data")
  t=$(now)
  while (( $(ready_count "$data") > 0 )); do sleep 0.2; done
  echo "    $label: pgbench wrote $mb MiB of WAL in ${pgbench_secs}s ($(calc "$mb / $pgbench_secs") MiB/s); .ready backlog peak $peak, at the end $end, drained in $(since "$t")s"
  echo "      backlog per second: ${samples[*]}"
}
echo "==> keeping pace with pgbench -c 4 for ${pgbench_secs}s"
repo=$state/repo-pace
shared_dir "$repo"
keep_pace local "$pgb wal push %p --repo $repo"
if [[ ${BENCH_S3S:-0} == 1 ]]; then
  scripts/services/s3s.sh start "$state" >/dev/null
  s3s_started=1
  # shellcheck disable=SC1091
  source "$state/s3s.env"
  export AWS_ENDPOINT_URL=$PGB_TEST_S3S_ENDPOINT AWS_ACCESS_KEY_ID=$PGB_TEST_S3S_ACCESS_KEY_ID \
    AWS_SECRET_ACCESS_KEY=$PGB_TEST_S3S_SECRET_ACCESS_KEY AWS_REGION=$PGB_TEST_S3S_REGION \
    PGB_S3_FORCE_PATH_STYLE=true
  # The server's archive_command inherits this environment (pg_ctl start below).
  keep_pace s3s "$pgb wal push %p --repo s3://$PGB_TEST_S3S_BUCKET/benchwal-$$"
fi

# 3. Replay: a base backup of server 1, recovered through the WAL archived since.
echo "==> replay: restore_command = pgb wal fetch vs cp"
base=$state/base.tar
"$bin/pg_basebackup" -h 127.0.0.1 -p "$a_port" -U postgres -D - -Ft -X none -c fast >"$base"
chmod 644 "$base"
"$bin/pgbench" -n -T 20 -c 4 -h 127.0.0.1 -p "$a_port" -U postgres postgres >/dev/null 2>&1
psqlc "$a_port" "select pg_switch_wal()" >/dev/null
sleep 2
repo=$state/repo-replay
shared_dir "$repo"
for f in "$raw"/0*; do [[ $f == *.partial ]] || "$pgb" wal push "$f" --repo "$repo" --system-id "$sysid" --parallel 1 2>/dev/null || true; done
chmod -R a+rX "$repo" "$raw"
replay() {
  local label=$1 cmd=$2 dir=$state/r-$1
  shared_dir "$dir"
  mkdir -p "$dir/data" && tar -xf "$base" -C "$dir/data"
  chmod 700 "$dir/data"
  [[ $(id -u) == 0 ]] && chown -R postgres: "$dir"
  local port
  port=$(free_port)
  cat >>"$dir/data/postgresql.auto.conf" <<CONF
port = $port
unix_socket_directories = '$dir'
archive_mode = off
restore_command = '$cmd'
recovery_target_action = 'promote'
CONF
  touch "$dir/data/recovery.signal"
  [[ $(id -u) == 0 ]] && chown postgres: "$dir/data/recovery.signal" "$dir/data/postgresql.auto.conf"
  local t
  t=$(now)
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" start >/dev/null
  pgdirs+=("$dir/data")
  until [[ $(psqlc "$port" "select pg_is_in_recovery()" 2>/dev/null) == f ]]; do sleep 0.1; done
  local s
  s=$(since "$t")
  echo "    $label: recovered in ${s}s" >&2
  echo "$s"
}
cp_s=$(replay cp "cp $raw/%f %p")
pgb_s=$(replay pgb "$pgb wal fetch %f %p --repo $repo --system-id $sysid --spool $state/r-pgb/spool")
echo "    ratio pgb/cp: $(calc "$pgb_s / $cp_s")x ($(ls "$raw" | grep -c '^0') segments)"

# 4. Base backups: pgb backup --physical against pg_basebackup to a local file alone.
echo "==> base backup: pgb backup --physical --wal included vs pg_basebackup -Ft -X fetch -c fast > FILE"
for scale in ${BENCH_BASE_SCALES:-20 80}; do
  "$bin/pgbench" -q -i -s "$scale" -h 127.0.0.1 -p "$a_port" -U postgres postgres >/dev/null 2>&1
  size=$(psqlc "$a_port" "select pg_size_pretty(sum(pg_database_size(oid))) from pg_database")
  psqlc "$a_port" "checkpoint" >/dev/null
  base_t=() pgb_t=() pgb_rss=0
  for run in 1 2 3; do
    t=$(now)
    "$bin/pg_basebackup" -h 127.0.0.1 -p "$a_port" -U postgres -D - -Ft -X fetch -c fast >"$state/bb.tar"
    base_t+=("$(since "$t")")
    rm -f "$state/bb.tar"
    repo=$state/repo-base-$scale-$run
    shared_dir "$repo"
    if ! out=$(rss_of "$pgb" backup --physical --repo "$repo" --pg-bin-dir "$bin" \
      --db "postgres://postgres@127.0.0.1:$a_port/postgres" --wal included --progress none 2>"$state/pgb.err"); then
      echo "    pgb backup --physical failed at scale $scale:"; sed 's/^/      /' "$state/pgb.err"
      continue 2
    fi
    read -r w r <<<"$out"
    pgb_t+=("$w"); ((r > pgb_rss)) && pgb_rss=$r
    rm -rf "$repo"
  done
  bm=$(printf '%s\n' "${base_t[@]}" | sort -n | sed -n 2p)
  pm=$(printf '%s\n' "${pgb_t[@]}" | sort -n | sed -n 2p)
  echo "    scale $scale ($size): pg_basebackup ${bm}s, pgb ${pm}s (ratio $(calc "$pm / $bm")x), pgb peak RSS $((pgb_rss / 1024)) MiB"
done
