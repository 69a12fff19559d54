#!/usr/bin/env bash
# Benchmark (not a test): what network faults cost. pgb backs up, verifies and restores the
# same database through pgb-faultproxy in front of the S3 emulator (moto), once with no faults
# and once with one request in N faulted (503, 500, 429, a reset before forwarding, a download
# cut at half), alternating, and prints the median time of each step, the retries pgb logged
# (`pgb -v`) and the faults the proxy applied.
#
#   scripts/bench-network.sh [ROWS]     default 400000 rows (about 25 MB of dump)
#   BENCH_RUNS=3  BENCH_ONE_IN=10  BENCH_SEED=42  BENCH_PROFILE=debug|release (default debug)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rows=${1:-400000}
runs=${BENCH_RUNS:-3}
one_in=${BENCH_ONE_IN:-10}
seed=${BENCH_SEED:-42}
profile=${BENCH_PROFILE:-debug}

if [[ $(id -u) == 0 ]]; then export PGB_TOOLS_DIR=${PGB_TOOLS_DIR:-/var/cache/pgb-tools}; fi

flag=(); [[ $profile == release ]] && flag=(--release)
echo "==> building pgb and the proxy ($profile)"
cargo build -q "${flag[@]}" -p pgb-cli --bin pgb
cargo build -q "${flag[@]}" -p pgb-faultproxy --example faultproxy
pgb=${CARGO_TARGET_DIR:-$root/target}/$profile/pgb
proxy=${CARGO_TARGET_DIR:-$root/target}/$profile/examples/faultproxy

state=$(mktemp -d /tmp/pgb-bench-net.XXXXXX)
chmod 755 "$state"
trap 'scripts/pg.sh stop "$state" 15 || true; scripts/services/s3.sh stop "$state" || true; rm -rf "$state"' EXIT
scripts/pg.sh start "$state" 15
scripts/services/s3.sh start "$state"
source "$state/pg15.env"
source "$state/s3.env"
export AWS_ACCESS_KEY_ID=$PGB_TEST_S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$PGB_TEST_S3_SECRET_ACCESS_KEY \
  AWS_REGION=$PGB_TEST_S3_REGION PGB_S3_FORCE_PATH_STYLE=true PGB_S3_PART_SIZE_MIB=5
bin=$PGB_TEST_PG_BIN
base=${PGB_TEST_PG_URL%/postgres}
psql() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

db=bench_net
echo "==> building the database ($rows rows)"
psql -d "$PGB_TEST_PG_URL" -c "drop database if exists $db" -c "create database $db"
psql -d "$base/$db" -c "create table t (id int primary key, note text, doc jsonb);
  insert into t select g, md5(g::text) || md5((g * 7)::text), jsonb_build_object('g', g, 'h', md5(g::text))
  from generate_series(1, $rows) g;"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# One backup + verify + restore through a fresh proxy faulting one request in $1 (0: none).
# Appends "mode step seconds retries" lines to $state/results and the proxy's summary to
# $state/faults.
run_once() {
  local n=$1 run=$2 repo url
  rm -f "$state/in" && mkfifo "$state/in"
  "$proxy" "$PGB_TEST_S3_ENDPOINT" s3 "$n" "$((seed + run))" <"$state/in" >"$state/proxy.out" &
  local pid=$!
  exec 3>"$state/in"
  until grep -q '^listening' "$state/proxy.out" 2>/dev/null; do sleep 0.1; done
  url=$(awk '/^listening/ {print $2}' "$state/proxy.out")
  repo=s3://$PGB_TEST_S3_BUCKET/bench-net-$n-$run-$RANDOM
  export AWS_ENDPOINT_URL=$url
  for step in backup verify restore; do
    local t0 t1 args
    case $step in
      backup) args=(backup -v --repo "$repo" --db "$base/$db") ;;
      verify) args=(verify -v --repo "$repo" latest) ;;
      restore)
        psql -d "$PGB_TEST_PG_URL" -c "drop database if exists ${db}_restored"
        args=(restore latest -v --repo "$repo" --db "$base/${db}_restored") ;;
    esac
    t0=$(now)
    "$pgb" "${args[@]}" 2>"$state/err" >/dev/null || { cat "$state/err" >&2; exit 1; }
    t1=$(now)
    echo "$n $step $(echo "$t1 - $t0" | bc) $(grep -c 'retrying storage request' "$state/err" || true) $(grep -c 'resuming with a range request' "$state/err" || true) $run" >>"$state/results"
  done
  exec 3>&-
  wait "$pid" || true
  { echo "one in $n, run $run:"; tail -n +2 "$state/proxy.out"; } >>"$state/faults"
  "$pgb" prune --repo "$repo" --keep-last 0 >/dev/null 2>&1 || true
}

for run in $(seq 1 "$runs"); do
  for n in 0 "$one_in"; do
    echo "==> run $run, faults: $([[ $n == 0 ]] && echo none || echo "one in $n")"
    run_once "$n" "$run"
  done
done

echo
echo "median seconds (retries logged, downloads resumed; summed over $runs runs):"
printf '%-8s %22s %22s\n' step "no faults" "one in $one_in"
for step in backup verify restore; do
  cols=()
  for n in 0 "$one_in"; do
    t=$(awk -v n="$n" -v s="$step" '$1 == n && $2 == s {print $3}' "$state/results" | median)
    r=$(awk -v n="$n" -v s="$step" '$1 == n && $2 == s {r += $4; m += $5} END {print r "/" m}' "$state/results")
    cols+=("$(printf '%.2f s (%s)' "$t" "$r")")
  done
  printf '%-8s %22s %22s\n' "$step" "${cols[0]}" "${cols[1]}"
done
cols=()
for n in 0 "$one_in"; do
  t=$(awk -v n="$n" '$1 == n {s[$6] += $3} END {for (r in s) print s[r]}' "$state/results" | median)
  r=$(awk -v n="$n" '$1 == n {r += $4; m += $5} END {print r "/" m}' "$state/results")
  cols+=("$(printf '%.2f s (%s)' "$t" "$r")")
done
printf '%-8s %22s %22s\n' "all 3" "${cols[0]}" "${cols[1]}"
echo
echo "faults applied by the proxy, per run:"
cat "$state/faults"
