#!/usr/bin/env bash
# Benchmark (not a test): pgb backup against the physical limit and the runbooks' pipeline.
#
#   scripts/bench.sh [SIZE_GB ...]     default: 0.5 1
#   BENCH_RUNS=3 (repetitions, alternating A B C D A B C D ...)
#   BENCH_S3=1   also back up to, verify from and restore from the S3 emulator (moto),
#                reporting upload/download throughput and peak RSS
#
# For each database size it builds a deterministic database of mixed types (pgbench tables
# plus a table of text, jsonb, numerics, timestamps and bytea with indexes), then times:
#   limit   pg_dump -Fc -Z0 -f FILE                 (no compression: the physical limit)
#   gzip    pg_dump -Fp | gzip > FILE               (the runbooks' pipeline)
#   fc      pg_dump -Fc -f FILE                     (pg_dump's built-in compression)
#   pgb     pgb backup --repo file://DIR            (zstd:3, sha256, manifest)
# and the restore side: pg_restore from the -Fc -Z0 file vs pgb restore (streamed).
# It prints medians, ratios, output sizes and pgb's peak RSS (/usr/bin/time -v).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${BENCH_RUNS:-3}
sizes=("$@")
((${#sizes[@]})) || sizes=(0.5 1)

if [[ $(id -u) == 0 ]]; then export PGB_TOOLS_DIR=${PGB_TOOLS_DIR:-/var/cache/pgb-tools}; fi
source scripts/lib/ensure-tools.sh
command -v bc >/dev/null && [[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time bc >/dev/null; }

echo "==> building pgb (release)"
cargo build -q --release -p pgb-cli
pgb=$root/target/release/pgb

state=$(mktemp -d /tmp/pgb-bench.XXXXXX)
chmod 755 "$state"
work=${BENCH_DIR:-$root/.pgb-bench}
mkdir -p "$work"
trap 'scripts/pg.sh stop "$state" 15 || true; [[ ${BENCH_S3:-0} == 1 ]] && scripts/services/s3.sh stop "$state"; rm -rf "$state"' EXIT
scripts/pg.sh start "$state" 15
source "$state/pg15.env"
if [[ ${BENCH_S3:-0} == 1 ]]; then
  scripts/services/s3.sh start "$state"
  source "$state/s3.env"
  export AWS_ENDPOINT_URL=$PGB_TEST_S3_ENDPOINT AWS_ACCESS_KEY_ID=$PGB_TEST_S3_ACCESS_KEY_ID \
    AWS_SECRET_ACCESS_KEY=$PGB_TEST_S3_SECRET_ACCESS_KEY AWS_REGION=$PGB_TEST_S3_REGION \
    PGB_S3_FORCE_PATH_STYLE=true
fi
bin=$PGB_TEST_PG_BIN
base=${PGB_TEST_PG_URL%/postgres}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }

for size in "${sizes[@]}"; do
  db=bench_${size/./_}
  echo "==> building a ~${size} GB database ($db)"
  "$bin/psql" -X -q -d "$PGB_TEST_PG_URL" -c "drop database if exists $db" -c "create database $db"
  scale=$(awk -v s="$size" 'BEGIN {printf "%d", s * 40}')
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

  declare -A times=() ; declare -A outsize=()
  pgb_rss=(); s3_rss_up=(); s3_rss_down=()
  for ((r = 1; r <= runs; r++)); do
    rm -rf "$work/out" && mkdir -p "$work/out"
    t=$(now); "$bin/pg_dump" -Fc -Z0 -f "$work/out/limit.dump" "$base/$db"; times[limit]+="$(echo "$(now) - $t" | bc) "
    outsize[limit]=$(stat -c %s "$work/out/limit.dump")
    t=$(now); bash -c "set -o pipefail; '$bin/pg_dump' -Fp '$base/$db' | gzip > '$work/out/plain.sql.gz'"; times[gzip]+="$(echo "$(now) - $t" | bc) "
    outsize[gzip]=$(stat -c %s "$work/out/plain.sql.gz")
    t=$(now); "$bin/pg_dump" -Fc -f "$work/out/fc.dump" "$base/$db"; times[fc]+="$(echo "$(now) - $t" | bc) "
    outsize[fc]=$(stat -c %s "$work/out/fc.dump")
    rm -rf "$work/repo"
    t=$(now)
    /usr/bin/time -v -o "$work/out/time.txt" "$pgb" -q backup --repo "file://$work/repo" --db "$base/$db" >/dev/null
    times[pgb]+="$(echo "$(now) - $t" | bc) "
    pgb_rss+=("$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/out/time.txt")")
    outsize[pgb]=$(find "$work/repo/backups" -name 'data.*' ! -name '*.sha256' -printf '%s\n')
    # Restore: pg_restore from the uncompressed file vs pgb's streamed restore.
    "$bin/psql" -X -q -d "$PGB_TEST_PG_URL" -c "drop database if exists r1" -c "drop database if exists r2" -c "create database r1"
    t=$(now); "$bin/pg_restore" --no-owner -d "$base/r1" "$work/out/limit.dump"; times[pg_restore]+="$(echo "$(now) - $t" | bc) "
    t=$(now); "$pgb" -q restore latest --repo "file://$work/repo" --db "$base/r2" >/dev/null; times[pgb_restore]+="$(echo "$(now) - $t" | bc) "
    t=$(now); "$pgb" -q verify --repo "file://$work/repo" latest >/dev/null; times[pgb_verify]+="$(echo "$(now) - $t" | bc) "
    if [[ ${BENCH_S3:-0} == 1 ]]; then
      s3repo="s3://$PGB_TEST_S3_BUCKET/bench-$r-$RANDOM"
      t=$(now)
      /usr/bin/time -v -o "$work/out/s3up.txt" "$pgb" -q backup --repo "$s3repo" --db "$base/$db" >/dev/null
      times[s3_backup]+="$(echo "$(now) - $t" | bc) "
      s3_rss_up+=("$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/out/s3up.txt")")
      t=$(now)
      /usr/bin/time -v -o "$work/out/s3down.txt" "$pgb" -q verify --repo "$s3repo" latest >/dev/null
      times[s3_verify]+="$(echo "$(now) - $t" | bc) "
      s3_rss_down+=("$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/out/s3down.txt")")
      "$bin/psql" -X -q -d "$PGB_TEST_PG_URL" -c "drop database if exists r3"
      t=$(now); "$pgb" -q restore latest --repo "$s3repo" --db "$base/r3" >/dev/null; times[s3_restore]+="$(echo "$(now) - $t" | bc) "
      "$pgb" -q prune --repo "$s3repo" --keep-last 1 >/dev/null
    fi
  done
  echo
  echo "### size ${size} GB (database $dbsize, uncompressed custom dump $((outsize[limit] / 1000000)) MB), $runs runs, medians"
  printf '%-12s %10s %12s %s\n' contender "median s" "output MB" "runs"
  keys=(limit gzip fc pgb pg_restore pgb_restore pgb_verify)
  [[ ${BENCH_S3:-0} == 1 ]] && keys+=(s3_backup s3_verify s3_restore)
  for k in "${keys[@]}"; do
    m=$(echo "${times[$k]}" | tr ' ' '\n' | grep . | median)
    eval "med_$k=$m"
    o=${outsize[$k]:-}
    printf '%-12s %10.2f %12s %s\n' "$k" "$m" "${o:+$((o / 1000000))}" "${times[$k]}"
  done
  printf 'pgb / limit        = %.2f   (target <= 1.15)\n' "$(echo "$med_pgb / $med_limit" | bc -l)"
  printf 'gzip pipeline / pgb = %.2f   (target >= 2.5)\n' "$(echo "$med_gzip / $med_pgb" | bc -l)"
  printf 'pgb output / gzip output = %.2f   (target <= 1.00)\n' "$(echo "${outsize[pgb]} / ${outsize[gzip]}" | bc -l)"
  printf 'pgb restore / pg_restore = %.2f\n' "$(echo "$med_pgb_restore / $med_pg_restore" | bc -l)"
  echo "pgb peak RSS (KiB) per run: ${pgb_rss[*]}"
  if [[ ${BENCH_S3:-0} == 1 ]]; then
    printf 'S3 upload (backup) throughput: %.0f MB/s stored, %.0f MB/s of dump\n' \
      "$(echo "${outsize[pgb]} / 1000000 / $med_s3_backup" | bc -l)" "$(echo "${outsize[limit]} / 1000000 / $med_s3_backup" | bc -l)"
    printf 'S3 download (verify: fetch, sha256, decompress, pg_restore --list) throughput: %.0f MB/s stored\n' \
      "$(echo "${outsize[pgb]} / 1000000 / $med_s3_verify" | bc -l)"
    echo "pgb peak RSS (KiB), S3 backup: ${s3_rss_up[*]}; S3 verify: ${s3_rss_down[*]}"
  fi
  s3_rss_up=(); s3_rss_down=()
  "$bin/psql" -X -q -d "$PGB_TEST_PG_URL" -c "drop database if exists r1" -c "drop database if exists r2" -c "drop database $db"
  unset times outsize
done
rm -rf "$work"
