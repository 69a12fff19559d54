#!/usr/bin/env bash
# The main job, end to end (README): installs what is missing, starts a throwaway
# PostgreSQL 15 on 127.0.0.1, loads sample data, backs it up with pgb to a local repository,
# lists and verifies it, restores it into a new database and shows that the data match.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

source scripts/lib/ensure-tools.sh
pgb_ensure_base

echo "==> building pgb (the first build compiles every dependency: several minutes, 15 or more on 2 cores)"
cargo build -p pgb-cli
pgb=${CARGO_TARGET_DIR:-$root/target}/debug/pgb # where cargo builds it

state=$(mktemp -d /tmp/pgb-demo.XXXXXX)
chmod 755 "$state"
trap 'scripts/pg.sh stop "$state" 15 || true; rm -rf "$state"' EXIT
echo "==> starting a throwaway PostgreSQL 15"
scripts/pg.sh start "$state" 15
source "$state/pg15.env"
base=${PGB_TEST_PG_URL%/postgres}
psql=$PGB_TEST_PG_BIN/psql

echo "==> loading sample data into database 'shop'"
"$psql" -X -q -d "$PGB_TEST_PG_URL" -c "create database shop"
"$psql" -X -q -v ON_ERROR_STOP=1 -d "$base/shop" <<'SQL'
create type order_status as enum ('new', 'paid', 'shipped');
create table customers (id serial primary key, name text not null, email text unique, meta jsonb);
create table orders (id bigserial primary key, customer_id int references customers(id),
  status order_status not null, total numeric(12,2), placed_at timestamptz, tags text[], receipt bytea);
insert into customers (name, email, meta)
  select 'Customer ' || g || ' – ünïcødé', 'c' || g || '@example.com', jsonb_build_object('tier', g % 3, 'since', 2000 + g % 25)
  from generate_series(1, 20000) g;
insert into orders (customer_id, status, total, placed_at, tags, receipt)
  select 1 + g % 20000, (array['new','paid','shipped']::order_status[])[1 + g % 3], (g % 997) * 1.25,
         timestamptz '2026-01-01' + g * interval '1 minute', array['t' || g % 7, 'x'], decode(md5(g::text), 'hex')
  from generate_series(1, 200000) g;
create view big_spenders as select customer_id, sum(total) from orders group by customer_id having sum(total) > 5000;
create index on orders (placed_at);
SQL

fingerprint() {
  "$psql" -X -At -d "$base/$1" -c "select (select count(*) from customers) || ' customers, ' ||
     (select count(*) from orders) || ' orders, fingerprint ' ||
     md5((select string_agg(c::text, '|' order by id) from customers c) ||
         (select string_agg(o::text, '|' order by id) from orders o))"
}

repo="file://$root/.pgb-demo/repo"
echo "==> pgb backup --repo $repo --db $base/shop"
"$pgb" backup --repo "$repo" --db "$base/shop" --label demo
echo "==> pgb list"
"$pgb" list --repo "$repo"
echo "==> pgb verify latest"
"$pgb" verify --repo "$repo" latest
echo "==> pgb restore latest --db $base/shop_restored"
"$pgb" restore latest --repo "$repo" --db "$base/shop_restored"

src=$(fingerprint shop)
dst=$(fingerprint shop_restored)
echo "source:   $src"
echo "restored: $dst"
if [[ $src == "$dst" ]]; then
  echo "==> data match: the restored database is identical to the source"
else
  echo "==> MISMATCH between source and restored database" >&2
  exit 1
fi
echo "The repository stays in $root/.pgb-demo/repo (restore it by hand: see docs/restore-by-hand.md)."
