# Sourced (not run) by the project's scripts: test.sh, demo.sh, bench.sh, pg.sh and
# services/*.sh. It sets PGB_TOOLS_DIR and defines functions that install, only when missing,
# what those scripts need, from Debian 12's own archive (`apt-get install --no-install-recommends`).
# Each function checks first and returns at once when everything is there, so the scripts stay
# fast on a prepared machine and never call apt-get there.
#
#   pgb_ensure_base    curl, ca-certificates, python3, zstd, gzip, age, PostgreSQL 15 (Debian)
#   pgb_ensure_pip     `python3 -m pip` (python3-pip; used with --target or `download`, so
#                      PEP 668's externally-managed check does not apply)
#   pgb_ensure_node    node and npm (nodejs, npm: Node 18 on Debian 12)
#   pgb_ensure_cmds CMD:PACKAGE ...   any other command (e.g. `bc:bc`, `promtool:prometheus`)
#
# Not root: uses `sudo -n` when that works, else says what to install and fails.

# `x=$(f)` must stop the script when f fails (bash does not pass -e into $(...) by default).
shopt -s inherit_errexit

if [[ -z ${PGB_TOOLS_DIR:-} ]]; then
  if [[ $(id -u) == 0 ]]; then PGB_TOOLS_DIR=/var/cache/pgb-tools; else PGB_TOOLS_DIR=$HOME/.cache/pgb-tools; fi
fi
export PGB_TOOLS_DIR

_pgb_apt_updated=${_pgb_apt_updated:-}

# Installs the given Debian packages (with one `apt-get update` per script run).
pgb_apt_install() {
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "missing: $*; install them (apt-get install --no-install-recommends $*) or run as root" >&2
      return 1
    fi
  fi
  echo "installing from Debian: $*" >&2
  # Wait for a concurrent apt/dpkg run instead of failing on its lock.
  local lock=(-o DPkg::Lock::Timeout=300)
  if [[ -z $_pgb_apt_updated ]]; then
    "${sudo[@]}" apt-get "${lock[@]}" update -qq >&2
    _pgb_apt_updated=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq \
    --no-install-recommends "$@" >/dev/null
}

# pgb_ensure_cmds CMD:PACKAGE ...: installs PACKAGE for each CMD that is not on PATH.
pgb_ensure_cmds() {
  local want missing=()
  for want in "$@"; do
    command -v "${want%%:*}" >/dev/null || missing+=("${want#*:}")
  done
  ((${#missing[@]} == 0)) || pgb_apt_install "${missing[@]}"
}

pgb_ensure_base() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
  command -v python3 >/dev/null || missing+=(python3)
  command -v zstd >/dev/null || missing+=(zstd)
  command -v gzip >/dev/null || missing+=(gzip)
  command -v age >/dev/null || missing+=(age)
  [[ -x /usr/lib/postgresql/15/bin/pg_dump ]] || missing+=(postgresql-15)
  ((${#missing[@]} == 0)) || pgb_apt_install "${missing[@]}"
}

pgb_ensure_pip() {
  pgb_ensure_cmds python3:python3
  python3 -m pip --version >/dev/null 2>&1 || pgb_apt_install python3-pip
}

pgb_ensure_node() {
  # Debian's nodejs has no npm of its own; NodeSource's (if present) bundles it.
  local missing=()
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  ((${#missing[@]} == 0)) || pgb_apt_install "${missing[@]}"
}
