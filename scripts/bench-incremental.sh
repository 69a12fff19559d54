#!/usr/bin/env bash
# Benchmark (not a test) of incremental base backups on PostgreSQL 17: a full
# `pgb backup --physical` of a pgbench database, 1% of pgbench_accounts updated, then
# `pgb backup --physical --incremental`; the same two with pg_basebackup alone (-Ft to a file,
# --incremental=<the full one's backup_manifest>) for reference; then the chain restored
# (`pgb restore --pgdata`: both backups fetched, verified, extracted, pg_combinebackup).
#
#   scripts/bench-incremental.sh
#   BENCH_PGB=PATH        use this pgb binary [default: target/$BENCH_PROFILE/pgb, built]
#   BENCH_PROFILE=release|debug [default: release]
#   BENCH_PG_BIN=DIR      PostgreSQL 17's bin directory [default: $PGB_TEST_PG17_BIN]
#   BENCH_SCALE=N         pgbench scale [default: 20, about 300 MB]
#   BENCH_UPDATE_PCT=N    percent of pgbench_accounts rows updated between the backups [default: 1]
#   BENCH_UPDATE=spread|clustered  which rows: every (100/N)th aid, so most pages change
#                         (spread, the default), or the first N% of aids (clustered)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${BENCH_PG_BIN:-${PGB_TEST_PG17_BIN:-/var/cache/pgb-tools/pg17/bin}}
scale=${BENCH_SCALE:-20}
pct=${BENCH_UPDATE_PCT:-1}
mode=${BENCH_UPDATE:-spread}
profile=${BENCH_PROFILE:-release}
if [[ -n ${BENCH_PGB:-} ]]; then
  pgb=$BENCH_PGB
else
  echo "==> building pgb ($profile)"
  if [[ $profile == release ]]; then cargo build -q --release -p pgb-cli; else cargo build -q -p pgb-cli; fi
  pgb=${CARGO_TARGET_DIR:-$root/target}/$profile/pgb
fi

state=$(mktemp -d /tmp/pgb-benchinc.XXXXXX)
chmod 755 "$state"
as_pg() { if [[ $(id -u) == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
cleanup() {
  [[ ${ok:-0} == 1 ]] || tail -n 15 "$state/pg/log" >&2 || true
  as_pg "$bin/pg_ctl" -D "$state/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }
size() { du -sb "$1" | cut -f1; }
mb() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1e6:.1f} MB')" "$1"; }

repo=$state/repo
mkdir -p "$repo" "$state/pg" "$state/data"
chmod 700 "$state/data"
[[ $(id -u) == 0 ]] && chown postgres "$repo" "$state/pg" "$state/data"
port=$((20000 + RANDOM % 20000))
as_pg "$bin/initdb" -D "$state/data" -A trust -U postgres >/dev/null
cat >>"$state/data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$state/pg'
listen_addresses = '127.0.0.1'
summarize_wal = on
archive_mode = on
archive_command = '$pgb wal push %p --repo $repo'
CONF
as_pg "$bin/pg_ctl" -D "$state/data" -l "$state/pg/log" -w start >/dev/null
url="postgres://postgres@127.0.0.1:$port/postgres"
psql() { "$bin/psql" -X -q -At -d "$url" "$@"; }

echo "==> pgbench -i -s $scale"
"$bin/pgbench" -i -q -s "$scale" "$url" >/dev/null 2>&1
echo "database: $(mb "$(psql -c "select pg_database_size('postgres')")")"

backup() { "$pgb" backup --physical --repo "$repo" --db "$url" --pg-bin-dir "$bin" --json "$@"; }
t0=$(now); backup >"$state/full.json"; t1=$(now)
full_s=$(secs "$t0" "$t1")
full_id=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("manifest", d)["id"])' "$state/full.json")

# The same with pg_basebackup alone, for reference (its backup_manifest is the parent of the next).
mkdir -p "$state/ref"
t0=$(now); "$bin/pg_basebackup" -d "$url" -D "$state/ref/full" -Ft -X none -c fast --manifest-checksums=SHA256 2>/dev/null; t1=$(now)
ref_full_s=$(secs "$t0" "$t1")

echo "==> updating $pct% of pgbench_accounts ($mode)"
if [[ $mode == clustered ]]; then
  psql -c "update pgbench_accounts set abalance = abalance + 1 where aid <= (select count(*) * $pct / 100 from pgbench_accounts)"
else
  psql -c "update pgbench_accounts set abalance = abalance + 1 where aid % (100 / $pct) = 0"
fi
psql -c "checkpoint"

t0=$(now); "$bin/pg_basebackup" -d "$url" -D "$state/ref/inc" -Ft -X none -c fast --manifest-checksums=SHA256 --incremental="$state/ref/full/backup_manifest" 2>/dev/null; t1=$(now)
ref_inc_s=$(secs "$t0" "$t1")

t0=$(now); backup --incremental >"$state/inc.json"; t1=$(now)
inc_s=$(secs "$t0" "$t1")
psql -c "select pg_switch_wal()" >/dev/null
sleep 2

stored() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); m=d.get("manifest", d); print(sum(a["stored_size"] for a in m["artifacts"]), sum(a["plain_size"] for a in m["artifacts"]), (m["physical"].get("incremental") or {}).get("parent", "-"))' "$1"; }
read -r full_stored full_plain _ < <(stored "$state/full.json")
read -r inc_stored inc_plain inc_parent < <(stored "$state/inc.json")
[[ $inc_parent == "$full_id" ]] || { echo "the incremental is not on the full backup ($inc_parent)" >&2; exit 1; }

t0=$(now); "$pgb" restore latest --repo "$repo" --pgdata "$state/restored" --pg-bin-dir "$bin" >/dev/null; t1=$(now)
restore_s=$(secs "$t0" "$t1")

echo
echo "| | full | incremental ($pct% of accounts updated, $mode) | incremental / full |"
echo "|---|---:|---:|---:|"
python3 - "$full_s" "$inc_s" "$full_stored" "$inc_stored" "$full_plain" "$inc_plain" "$ref_full_s" "$ref_inc_s" "$(size "$state/ref/full")" "$(size "$state/ref/inc")" <<'PY'
import sys
fs, is_, fst, ist, fp, ip, rf, ri, rfs, ris = sys.argv[1:]
mb = lambda b: f"{int(b) / 1e6:.1f} MB"
print(f"| `pgb backup --physical [--incremental]`: time | {fs} s | {is_} s | {float(is_) / float(fs):.2f}x |")
print(f"| stored (zstd) | {mb(fst)} | {mb(ist)} | {int(ist) / int(fst):.3f}x |")
print(f"| tar (uncompressed) | {mb(fp)} | {mb(ip)} | {int(ip) / int(fp):.3f}x |")
print(f"| `pg_basebackup -Ft -X none [--incremental]` to files: time | {rf} s | {ri} s | {float(ri) / float(rf):.2f}x |")
print(f"| its output | {mb(rfs)} | {mb(ris)} | {int(ris) / int(rfs):.3f}x |")
PY
echo "restore of the chain (fetch + verify + extract both, pg_combinebackup): $restore_s s"
ok=1
