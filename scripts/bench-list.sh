#!/usr/bin/env bash
# Benchmark (not a test) of listing a large repository: `pgb list --json` of N backups on the
# S3 emulator (s3s-fs, or moto with BENCH_LIST_SERVER=moto), for N = 100, 1,000 and 10,000
# (issue 19: it must grow no faster than linearly).
#
#   scripts/bench-list.sh
#   BENCH_LIST_COUNTS="100 1000 10000"  the repository sizes [default]
#   BENCH_LIST_RUNS=3                   timed runs per size; the median is reported
#   BENCH_LIST_SERVER=s3s               s3s-fs (files on disk) [default], or moto (in memory):
#                                       each emulator's own LIST cost grows with the bucket
#   BENCH_PGB=PATH                      this pgb binary [default: target-rel/release/pgb,
#                                       target/release/pgb, else target/debug/pgb]
#
# Per size it starts its own emulator (scripts/services/s3s.sh or s3.sh start) on a fresh folder, so the
# server holds that repository only, fills it through the library with N committed backups of a
# 1 KiB fake dump (crates/pgb-storage-s3/examples/fill_repository.rs, 32 at once: seconds, not
# N `pgb backup` processes), then times `pgb list --repo s3://... --json` and splits one more run
# by its log: the LIST of backups/ (pages of 1,000 keys, streamed: the manifest GETs, 16 at
# once, run while it goes on) and the rest (the reads still running when the LIST ended, and
# the checks). Prints the figures and the time per backup against the smallest N.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
counts=${BENCH_LIST_COUNTS:-100 1000 10000}
runs=${BENCH_LIST_RUNS:-3}
case ${BENCH_LIST_SERVER:-s3s} in
    s3s) service=s3s vars=PGB_TEST_S3S name=s3s-fs ;;
    moto) service=s3 vars=PGB_TEST_S3 name=moto ;;
    *) echo "bench-list: BENCH_LIST_SERVER is s3s or moto" >&2; exit 2 ;;
esac

pgb=${BENCH_PGB:-}
if [[ -z $pgb ]]; then
    for p in target-rel/release/pgb target/release/pgb target/debug/pgb; do
        if [[ -x $p ]]; then pgb=$p; break; fi
    done
fi
[[ -n $pgb && -x $pgb ]] || { echo "bench-list: no pgb binary (cargo build -p pgb-cli)" >&2; exit 1; }
case $pgb in
    *release*) build=release ;;
    *) build="debug (no release build found: figures are of an unoptimised binary)" ;;
esac
cargo build --quiet -p pgb-storage-s3 --example fill_repository
fill=$(ls -t target/debug/examples/fill_repository | head -n 1)

work=$(mktemp -d /tmp/pgb-bench-list.XXXXXX)
cleanup() {
    scripts/services/$service.sh stop "$work/s3s" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

millis() { date +%s%3N; }
# sha256 of an empty body, the signed payload hash of a GET.
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
# Seconds (3 decimals) between two RFC 3339 timestamps of the log.
span() { python3 -c 'import sys,datetime as d
p=lambda s: d.datetime.fromisoformat(s.rstrip("Z")[:26])
print(f"{(p(sys.argv[2])-p(sys.argv[1])).total_seconds():.3f}")' "$1" "$2"; }

echo "pgb list on $name: $pgb, $build build; $(nproc) cores; $(date -u +%F)"
printf '%8s %7s %8s %10s %6s %6s %8s %9s %8s %12s\n' backups fill_s list_s ms/backup ratio \
    pages page_ms list_ms rest_ms rest_ms/bkp
base=
for n in $counts; do
    scripts/services/$service.sh stop "$work/s3s" >/dev/null 2>&1 || true
    rm -rf "$work/s3s"
    scripts/services/$service.sh start "$work/s3s" >/dev/null 2>&1
    # shellcheck disable=SC1090
    source "$work/s3s/$service.env"
    endpoint_var=${vars}_ENDPOINT bucket_var=${vars}_BUCKET key_var=${vars}_ACCESS_KEY_ID
    secret_var=${vars}_SECRET_ACCESS_KEY region_var=${vars}_REGION
    PGB_TEST_S3S_ENDPOINT=${!endpoint_var} PGB_TEST_S3S_BUCKET=${!bucket_var}
    export AWS_ACCESS_KEY_ID=${!key_var}
    export AWS_SECRET_ACCESS_KEY=${!secret_var}
    export AWS_REGION=${!region_var} AWS_ENDPOINT_URL_S3=$PGB_TEST_S3S_ENDPOINT
    prefix="bench-list-$n-$(date +%s)"
    repo="s3://$PGB_TEST_S3S_BUCKET/$prefix"
    t0=$(millis)
    "$fill" "$PGB_TEST_S3S_ENDPOINT" "$PGB_TEST_S3S_BUCKET" "$prefix" "$n" 32 >/dev/null
    fill_s=$(awk -v a="$t0" -v b="$(millis)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
    times=()
    for _ in $(seq "$runs"); do
        t0=$(millis)
        got=$("$pgb" list --repo "$repo" --json | grep -c '"id":' || true)
        times+=($(($(millis) - t0)))
        [[ $got -eq $n ]] || { echo "bench-list: listed $got backups, wrote $n" >&2; exit 1; }
    done
    med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
    # One more run, split by the log: start -> "listed prefix=backups" -> the end.
    start=$(date -u +%FT%T.%6NZ)
    RUST_LOG=pgb_storage_opendal::adapter=debug "$pgb" list --repo "$repo" --json \
        2>"$work/log" >/dev/null
    end=$(date -u +%FT%T.%6NZ)
    listed=$(grep 'listed' "$work/log" | grep 'prefix="backups"' | head -n 1 | cut -d' ' -f1)
    objects=$(grep 'listed' "$work/log" | grep 'prefix="backups"' | head -n 1 |
        sed 's/.*count=\([0-9]*\).*/\1/')
    pages=$(((objects + 999) / 1000))
    # The server's own time for one LIST page of 1,000 keys (curl signs it), taken 3 times.
    page_ms=$(for _ in 1 2 3; do
        curl -sf -o /dev/null -w '%{time_total}\n' --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
            --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: $empty" \
            "$PGB_TEST_S3S_ENDPOINT/$PGB_TEST_S3S_BUCKET?list-type=2&max-keys=1000&prefix=$prefix%2Fbackups%2F"
    done | sort -n | sed -n 2p | awk '{ printf "%d", $1 * 1000 }')
    [[ -n $page_ms ]] || { echo "bench-list: the LIST by curl failed" >&2; exit 1; }
    list_ms=$(awk -v s="$(span "$start" "$listed")" 'BEGIN { printf "%d", s * 1000 }')
    rest_ms=$(awk -v s="$(span "$listed" "$end")" 'BEGIN { printf "%d", s * 1000 }')
    per=$(awk -v t="$med" -v n="$n" 'BEGIN { printf "%.3f", t / n }')
    base=${base:-$per}
    ratio=$(awk -v p="$per" -v b="$base" 'BEGIN { printf "%.2f", p / b }')
    rest_per=$(awk -v t="$rest_ms" -v n="$n" 'BEGIN { printf "%.2f", t / n }')
    printf '%8d %7s %8.2f %10s %6s %6d %8s %9s %8s %12s\n' "$n" "$fill_s" \
        "$(awk -v t="$med" 'BEGIN { print t / 1000 }')" "$per" "$ratio" "$pages" "$page_ms" \
        "$list_ms" "$rest_ms" "$rest_per"
done
echo "list_s: median of $runs runs (process start included); ratio: ms/backup against the"
echo "first size (1.00 or less: linear or better); pages: LIST requests for backups/ (1,000"
echo "keys each); page_ms: the server's time for one such page (curl, median of 3); list_ms:"
echo "start to the end of the LIST of backups/ (manifest reads, 16 at once, overlap it); rest_ms:"
echo "the reads left when it ended, and the checks (list_ms and rest_ms from one extra run with"
echo "a debug log)."
